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
    out: Path = typer.Option(Path("demo_output"), help="Output folder (inputs/, cube/*.zarr, cube/quicklook.png)."),
    seed: int = typer.Option(0, help="Seed of the synthetic layers."),
    engine: str = typer.Option("stackstac", help="Loader engine: stackstac or odc."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Run the pipeline on the embedded sample region: search -> load -> mask -> indices -> Zarr + PNG."""
    from rich.console import Console
    from rich.table import Table

    from unique_xr.errors import UniqueXrError
    from unique_xr.pipeline import run_demo

    console = Console(width=max(Console().width, 110))
    try:
        result, staged = run_demo(out, seed=seed, engine=engine, progress=progress)
    except UniqueXrError as err:
        _fail(err)
    table = Table(title="Sample data: what is real and what is synthetic")
    for col in ("layer", "kind", "source"):
        table.add_column(col)
    for layer, kind, source in staged.provenance:
        table.add_row(layer, f"[green]{kind}[/]" if kind == "real" else f"[yellow]{kind}[/]", source)
    console.print(table)
    for name, path in result.stores.items():
        console.print(f"[bold]{name}[/]: {path}  {result.summary['cubes'][name]}")
    if result.quicklook:
        console.print(f"quicklook: {result.quicklook}")
    console.print(f"done in {result.summary['total_seconds']} s (graph built in {result.summary['graph_seconds']} s)")


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


if __name__ == "__main__":  # pragma: no cover
    app()
