"""``unique-xr demo``, ``collections`` and ``search``: the data layer from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from unique_xr.cli._common import app


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_output"),
                             help="Output folder (inputs/, cube/*.zarr incl. gpp_30m_daily.zarr, cube/quicklook.png, "
                                  "cube/gpp_map.png, cube/gpp_downscaled.png)."),
    seed: int = typer.Option(0, help="Seed of the synthetic layers."),
    engine: str = typer.Option("stackstac", help="Loader engine: stackstac or odc."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Run the pipeline on the embedded sample region: search -> load -> mask -> indices -> Zarr -> GPP ->
    30 m downscaling + PNGs."""
    from rich.console import Console
    from rich.table import Table

    from unique_xr.pipeline.demo import run_demo

    console = Console(width=max(Console().width, 110))
    result = run_demo(out, seed=seed, engine=engine, progress=progress)
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
    down = result.downscaled
    if down is not None:
        s = down.summary
        console.print(f"[bold]gpp_30m_daily[/]: {down.store}  {s['sizes']}  GPP_M downscaled to 30 m "
                      f"(diffusion model {s['model_token']}, {s['members']} members, {s['steps']} DDIM steps): "
                      f"{s['min']:.2f} to {s['max']:.2f} g C m-2 d-1 (mean {s['mean']:.2f}, mean spread "
                      f"{s.get('spread_mean', float('nan')):.2f}, {100 * s['valid_fraction']:.0f} % of pixel-days)")
        if down.figure:
            console.print(f"downscaled GPP map: {down.figure}")
    else:
        console.print("[yellow]downscaling skipped: torch is not installed (pip install torch==2.13.0, then the "
                      "extra: pip install -e \".[torch]\").[/]")
    console.print("[yellow]The sample's MODIS and meteorology are synthetic: the GPP shows the machinery, "
                  "not a validated product.[/]")
    steps = [("data layer", layer.summary["total_seconds"]), ("GPP", gpp.summary["total_seconds"])]
    if down is not None:
        steps.append(("downscaling", down.summary["total_seconds"]))
    total = sum(seconds for _, seconds in steps)
    console.print(f"done in {total:.1f} s (graph built in {layer.summary['graph_seconds']} s; "
                  + "; ".join(f"{name} {seconds} s" for name, seconds in steps) + ")")


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
    from unique_xr._files import write_atomic
    from unique_xr.errors import SpecError
    from unique_xr.search.stac import search

    try:
        box = tuple(float(v) for v in bbox.split(","))
    except ValueError as err:
        raise SpecError(f"--bbox must be four numbers west,south,east,north in degrees, got {bbox!r}.") from err
    items = search(collection, bbox=box, datetime=datetime, provider=provider)
    for item in items:
        typer.echo(item.id)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, json.dumps(items.to_dict()).encode())
        typer.echo(f"wrote {len(items)} items to {out}")
