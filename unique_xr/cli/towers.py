"""``unique-xr train``, ``predict`` and ``join-landsat``: the tower-trained GPP models (UNIQUE step 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from unique_xr.cli._common import app


@app.command()
def train(
    table: Path = typer.Option(..., exists=True, dir_okay=False, help="Tower table (csv, csv.gz, parquet): site, date, inputs, target."),
    target: str = typer.Option(..., help="Column of observed daily GPP in g C m-2 d-1, e.g. gpp_obs."),
    out: Path = typer.Option(..., help="Model directory to write (model.txt, model_card.json, cv_scores.csv, cv_predictions.csv.gz)."),
    model: str = typer.Option("gpp_m", help="gpp_m (daily MODIS NBAR table) or gpp_l (Landsat table joined with GPP)."),
    folds: int = typer.Option(20, help="Outer cross-validation folds (site-grouped); 0 skips cross-validation."),
    fold_scheme: str = typer.Option("site", help="site (site-grouped K-fold) or block (lat/lon blocks held out)."),
    seed: int = typer.Option(0, help="Seed of folds, bagging and inner splits."),
    params: Optional[str] = typer.Option(None, help='LightGBM parameters as JSON, e.g. \'{"num_leaves": 63}\'.'),
    early_stopping: int = typer.Option(100, help="Early-stopping patience on an inner site-grouped split (0: off)."),
    max_trees: int = typer.Option(1000, help="Most boosting rounds."),
    baselines: bool = typer.Option(True, help="Score linear-VI, light-use-efficiency and P-model baselines in the same folds."),
    threads: Optional[int] = typer.Option(None, help="LightGBM threads (default 1; tower tables are small)."),
) -> None:
    """Train GPP_M or GPP_L on a tower table, with site-grouped cross-validation; print and save the report."""
    from rich.console import Console

    from unique_xr.models.lgbm import TrainConfig
    from unique_xr.models.lgbm import train as train_model
    from unique_xr.models.report import print_report

    console = Console(width=max(Console().width, 110))
    config = TrainConfig(
        kind=model, target=target, folds=folds, fold_scheme=fold_scheme, seed=seed,
        params=json.loads(params) if params else {}, early_stopping_rounds=early_stopping,
        num_boost_round=max_trees, baselines=baselines, n_jobs=threads,
    )
    with console.status("cross-validating") as status:
        result = train_model(table, config, progress=lambda k, n: status.update(f"fold {k}/{n} done"))
    result.save(out)
    print_report(result, console=console)
    console.print(f"model written to [bold]{out}[/] in {result.seconds} s")


@app.command()
def predict(
    model: Path = typer.Option(..., exists=True, file_okay=False, help="Model directory written by `unique-xr train`."),
    table: Path = typer.Option(..., exists=True, dir_okay=False, help="Table of the training layout (may hold unseen sites)."),
    out: Path = typer.Option(..., help="CSV to write: site, date, gpp (g m-2 d-1)."),
    allow_missing: Optional[list[str]] = typer.Option(None, help="Model input knowingly absent (becomes NaN); repeatable."),
) -> None:
    """Predict daily GPP for every row of a table with a trained model."""
    from unique_xr._files import write_csv
    from unique_xr.models.lgbm import load_model

    gpp = load_model(model).predict(table, allow_missing=tuple(allow_missing or ()))
    write_csv(gpp, out, float_format="%.4f")
    n = int(gpp["gpp"].notna().sum())
    typer.echo(f"{out}: {len(gpp)} rows, {n} with GPP ({len(gpp) - n} NaN where the surface reflectance is missing)")


@app.command("join-landsat")
def join_landsat(
    landsat: Path = typer.Option(..., exists=True, dir_okay=False, help="Landsat C2 L2 values at towers (site, date, SR_B*, ST_B*, QA_PIXEL)."),
    daily: Path = typer.Option(..., exists=True, dir_okay=False, help="Daily tower table with GPP and meteorology."),
    out: Path = typer.Option(..., help="CSV (.csv.gz) to write: the GPP_L training table."),
) -> None:
    """Join Landsat observations at towers with the towers' daily GPP: the table `train --model gpp_l` takes."""
    from unique_xr._files import write_csv
    from unique_xr.towers import landsat_training_table

    joined = landsat_training_table(landsat, daily)
    write_csv(joined, out)
    typer.echo(f"{out}: {len(joined)} Landsat rows on {joined['site'].nunique()} sites")
