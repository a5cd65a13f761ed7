"""The ``unique-xr`` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="unique_xr: daily 30 m GPP from satellite imagery.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_output"),
                             help="Output folder (inputs/, cube/*.zarr, cube/quicklook.png, cube/gpp_map.png)."),
    seed: int = typer.Option(0, help="Seed of the synthetic layers."),
    engine: str = typer.Option("stackstac", help="Loader engine: stackstac or odc."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Run the pipeline on the embedded sample region: search -> load -> mask -> indices -> Zarr -> GPP + PNGs."""
    from rich.console import Console
    from rich.table import Table

    from unique_xr.errors import UniqueXrError
    from unique_xr.pipeline import run_demo

    console = Console(width=max(Console().width, 110))
    try:
        result = run_demo(out, seed=seed, engine=engine, progress=progress)
    except UniqueXrError as err:
        _fail(err)
    layer, gpp = result.data_layer, result.gpp
    table = Table(title="Sample data: what is real and what is synthetic")
    for col in ("layer", "kind", "source"):
        table.add_column(col)
    for name, kind, source in result.staged.provenance:
        table.add_row(name, f"[green]{kind}[/]" if kind == "real" else f"[yellow]{kind}[/]", source)
    console.print(table)
    for name, path in layer.stores.items():
        console.print(f"[bold]{name}[/]: {path}  {layer.summary['cubes'][name]}")
    if layer.quicklook:
        console.print(f"quicklook: {layer.quicklook}")
    for name, path in gpp.stores.items():
        s = gpp.summary[name]
        console.print(f"[bold]{name}[/]: {path}  {s['sizes']}  GPP {s['min']:.2f} to {s['max']:.2f} g C m-2 d-1 "
                      f"(mean {s['mean']:.2f}, {100 * s['valid_fraction']:.0f} % of pixel-days estimated)")
        if s["inputs_absent"] != "none":
            console.print(f"  [yellow]inputs absent from the sample, treated as missing:[/] {s['inputs_absent']}")
    if gpp.gpp_map:
        console.print(f"GPP map: {gpp.gpp_map}")
    console.print("[yellow]The sample's MODIS and meteorology are synthetic: the GPP shows the machinery, "
                  "not a validated product.[/]")
    total = layer.summary["total_seconds"] + gpp.summary["total_seconds"]
    console.print(f"done in {total:.1f} s (data layer {layer.summary['total_seconds']} s, graph built in "
                  f"{layer.summary['graph_seconds']} s; GPP {gpp.summary['total_seconds']} s)")


@app.command()
def collections() -> None:
    """List the collections unique_xr knows, with their ids per provider."""
    from unique_xr.search.collections import COLLECTIONS

    for name, spec in COLLECTIONS.items():
        ids = ", ".join(f"{p}: {i}" for p, i in spec.ids.items())
        typer.echo(f"{name:16s} {spec.cadence:8s} {spec.resolution:>6.0f} m  {ids}")


@app.command("search")
def search_cmd(
    collection: str = typer.Argument(..., help="Registry name or provider id, e.g. mcd43a4 or landsat-c2-l2."),
    bbox: str = typer.Option(..., help="west,south,east,north in degrees."),
    datetime: str = typer.Option(..., help="start/end, e.g. 2023-06-01/2023-06-30."),
    provider: str = typer.Option("planetary-computer", help="planetary-computer, earth-search, a URL or a local catalog."),
    out: Optional[Path] = typer.Option(None, help="Write the ItemCollection JSON here."),
) -> None:
    """Search a STAC API or local catalog and print the item ids."""
    from unique_xr.errors import UniqueXrError
    from unique_xr.search.stac import search

    try:
        box = tuple(float(v) for v in bbox.split(","))
        items = search(collection, bbox=box, datetime=datetime, provider=provider)
    except (UniqueXrError, ValueError) as err:
        _fail(err)
    for item in items:
        typer.echo(item.id)
    if out:
        out.write_text(json.dumps(items.to_dict()))
        typer.echo(f"wrote {len(items)} items to {out}")



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

    from unique_xr.errors import UniqueXrError
    from unique_xr.models.lgbm import TrainConfig
    from unique_xr.models.lgbm import train as train_model
    from unique_xr.models.report import print_report

    console = Console(width=max(Console().width, 110))
    try:
        config = TrainConfig(
            kind=model, target=target, folds=folds, fold_scheme=fold_scheme, seed=seed,
            params=json.loads(params) if params else {}, early_stopping_rounds=early_stopping,
            num_boost_round=max_trees, baselines=baselines, n_jobs=threads,
        )
        with console.status("cross-validating") as status:
            result = train_model(table, config, progress=lambda k, n: status.update(f"fold {k}/{n} done"))
        result.save(out)
    except (UniqueXrError, ValueError, FileNotFoundError) as err:
        _fail(err)
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
    from unique_xr.errors import UniqueXrError
    from unique_xr.models.lgbm import load_model

    try:
        gpp = load_model(model).predict(table, allow_missing=tuple(allow_missing or ()))
    except (UniqueXrError, ValueError, FileNotFoundError) as err:
        _fail(err)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    gpp.to_csv(tmp, index=False, float_format="%.4f")
    tmp.replace(out)
    n = int(gpp["gpp"].notna().sum())
    typer.echo(f"{out}: {len(gpp)} rows, {n} with GPP ({len(gpp) - n} NaN where the surface reflectance is missing)")


@app.command("join-landsat")
def join_landsat(
    landsat: Path = typer.Option(..., exists=True, dir_okay=False, help="Landsat C2 L2 values at towers (site, date, SR_B*, ST_B*, QA_PIXEL)."),
    daily: Path = typer.Option(..., exists=True, dir_okay=False, help="Daily tower table with GPP and meteorology."),
    out: Path = typer.Option(..., help="CSV (.csv.gz) to write: the GPP_L training table."),
) -> None:
    """Join Landsat observations at towers with the towers' daily GPP: the table `train --model gpp_l` takes."""
    from unique_xr.errors import UniqueXrError
    from unique_xr.towers import landsat_training_table

    try:
        joined = landsat_training_table(landsat, daily)
    except (UniqueXrError, ValueError) as err:
        _fail(err)
    joined.to_csv(out, index=False)
    typer.echo(f"{out}: {len(joined)} Landsat rows on {joined['site'].nunique()} sites")


if __name__ == "__main__":  # pragma: no cover
    app()
