"""``unique-xr cnn train / predict / evaluate``: the gap-tolerant CNN for annual forest GPP and NEE."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from unique_xr.cli._common import ValuesAfterOneFlag, app


cnn_app = typer.Typer(help="Gap-tolerant CNN for annual forest GPP and NEE from tower tables (MetaFlux monthly layout).",
                      no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(cnn_app, name="cnn")

_TABLE_HELP = ("Multi-site table laid out like the MetaFlux monthly FLUXNET2015 table (TIMESTAMP YYYYMM, Site, Lat, "
               "PFT, LAI, EVI, LE_CORR, TA_ERA, TA_ERA_DAY, P_ERA, GPP_NT_VUT_REF, NEE_VUT_REF); forest rows are used.")


def _cnn_config(epochs, members, seed, threads, occlusion=True):
    from unique_xr.models.cnn.model import CnnConfig

    base = CnnConfig()
    return CnnConfig(epochs=epochs or base.epochs, members=members or base.members, seed=seed, threads=threads,
                     occlusion=base.occlusion if occlusion else None)


@cnn_app.command("train")
def cnn_train(
    table: Path = typer.Option(..., help=_TABLE_HELP),
    out: Path = typer.Option(..., help="Model folder to write (weights.pt, card.json)."),
    time_step: Literal["monthly", "16-day", "8-day"] = typer.Option(
        "monthly", help="Rows of the feature map; 16-day and 8-day need a daily table."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs (default: the shipped configuration's)."),
    members: Optional[int] = typer.Option(None, help="Networks in the ensemble (default: the shipped configuration's)."),
    seed: int = typer.Option(0, help="Seed of weights, shuffling and occlusions."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads."),
    occlusion: bool = typer.Option(True, help="Train with occlusions (--no-occlusion: an ablation)."),
    min_quality: float = typer.Option(0.5, help="Least mean NEE quality flag of a training site-year."),
    progress: bool = typer.Option(True, help="Print a line per ensemble member."),
) -> None:
    """Train the annual GPP/NEE CNN on every usable forest site-year of TABLE and write MODEL_DIR."""
    import time

    from unique_xr.models.cnn.featuremap import MapSpec
    from unique_xr.models.cnn.run import train_from_table

    started = time.perf_counter()
    model = train_from_table(table, out, config=_cnn_config(epochs, members, seed, threads, occlusion),
                             spec=MapSpec(time_step=time_step), min_quality=min_quality, progress=progress)
    tr = model.card["training"]
    typer.echo(f"{out}: {tr['site_years']} forest site-years on {len(tr['sites'])} sites "
               f"({', '.join(f'{k} {v}' for k, v in tr['site_years_by_type'].items())}); "
               f"{tr['excluded_site_years']} site-years without a usable annual sum left out; "
               f"{100 * tr['missing_fraction']:.1f} % of input cells missing; model {model.token}; "
               f"{time.perf_counter() - started:.1f} s")


@cnn_app.command("predict")
def cnn_predict(
    model: Path = typer.Option(..., help="Model folder written by `unique-xr cnn train`."),
    table: Path = typer.Option(..., help=_TABLE_HELP + " Targets are not needed; NaN input cells are fine."),
    out: Path = typer.Option(..., help="CSV to write: site, year, gpp, nee (annual sums, g C m-2 yr-1; NEE < 0 is "
                                       "uptake), one row per forest site-year of TABLE."),
) -> None:
    """Annual GPP and NEE for every forest site-year of TABLE, including unseen sites and gappy inputs."""
    from unique_xr.models.cnn.model import load_cnn
    from unique_xr.models.cnn.run import predict_table, write_csv

    frame = predict_table(load_cnn(model), table)
    write_csv(frame, out)
    typer.echo(f"{out}: {len(frame)} forest site-years on {frame['site'].nunique()} sites; GPP "
               f"{frame['gpp'].min():.0f} to {frame['gpp'].max():.0f}, NEE {frame['nee'].min():.0f} to "
               f"{frame['nee'].max():.0f} g C m-2 yr-1")


@cnn_app.command("evaluate", cls=ValuesAfterOneFlag)
def cnn_evaluate(
    table: Path = typer.Option(..., help=_TABLE_HELP),
    out: Path = typer.Option(..., help="Folder for skill.csv, predictions.csv, summary.json and figures."),
    model: Optional[Path] = typer.Option(
        None, help="Score this trained model on TABLE's usable site-years instead of cross-validating."),
    folds: int = typer.Option(10, help="Site-grouped folds of the cross-validation."),
    missing: list[float] = typer.Option([0.0, 0.1, 0.3, 0.5], metavar="SHARE...",
                                        help="Shares of observed input cells hidden at random in the test maps."),
    models: list[str] = typer.Option(["cnn", "rf", "svr", "lgbm"], metavar="NAME...",
                                     help="Models to compare: cnn, rf, svr, lgbm; cnn_plain is the CNN trained without occlusions."),
    epochs: Optional[int] = typer.Option(None, help="CNN training epochs per fold."),
    members: Optional[int] = typer.Option(None, help="CNN ensemble members per fold."),
    seed: int = typer.Option(0, help="Seed of folds, models and hidden cells."),
    threads: Optional[int] = typer.Option(None, help="CPU threads of the models."),
    figures: bool = typer.Option(True, help="Also draw the skill-vs-missingness figure."),
    progress: bool = typer.Option(True, help="Print a line per fold."),
) -> None:
    """Cross-validate the CNN against random forest, SVR and LightGBM in the same site-grouped folds, at
    several shares of missing inputs (or score one trained model with --model)."""
    from unique_xr.models.cnn.run import load_training_set, score_model, write_csv

    if model is not None:
        from unique_xr.models.cnn.model import load_cnn

        skill = score_model(load_cnn(model), table, missing=missing, seed=seed)
        write_csv(skill, out / "skill.csv")
        typer.echo(skill.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        return
    from unique_xr.models.cnn.compare import compare_models, missingness_figure

    maps, targets, _ = load_training_set(table)
    result = compare_models(maps, targets, n_folds=folds, missing=tuple(missing), models=tuple(models),
                            config=_cnn_config(epochs, members, seed, threads), seed=seed, threads=threads,
                            progress=progress)
    result.to_files(out)
    if figures:
        missingness_figure(result.skill, out / "missingness.png", natural_missing=result.meta["natural_missing"])
    for share in missing:
        typer.echo(f"\n{100 * share:.0f} % of input cells hidden\n{result.table(missing=share)}")
    typer.echo(f"\nwritten to {out}")
