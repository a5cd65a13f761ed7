"""``unique-xr cube run / status / export / plot``: the national cube job from the command line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from unique_xr.cli._common import _fail, app

cube_app = typer.Typer(help="The national cube job: a region and a period in, a daily 30 m GPP cube out.",
                       no_args_is_help=True)
app.add_typer(cube_app, name="cube")


def _logging(verbose: bool) -> None:
    """Job messages (units committed, dashboard link) on stderr; quiet libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log = logging.getLogger("unique_xr")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    for name in ("distributed", "bokeh", "tornado"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)


@cube_app.command("run")
def cube_run(
    config: Optional[Path] = typer.Argument(None, help="The job's TOML spec (see docs/cube.md)."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: the spec's \\[output] path)."),
    sample: bool = typer.Option(False, "--sample", help="Run the embedded sample region (offline; needs --out)."),
    scheduler: Optional[str] = typer.Option(None, help="Address of an existing Dask scheduler (tcp://host:8786)."),
    workers: Optional[int] = typer.Option(None, help="Workers of the LocalCluster started when no --scheduler."),
    threads_per_worker: Optional[int] = typer.Option(None, help="Threads per LocalCluster worker (default 1)."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress",
                                            help="A live bar (default: only on a terminal; log lines otherwise)."),
    plot: Optional[bool] = typer.Option(None, "--plot/--no-plot",
                                        help="Draw OUT/cube.png (map and time series; reads the whole cube) when the "
                                             "job finishes (default: with --sample only)."),
    verbose: bool = typer.Option(False, help="Also show Dask's own log messages."),
) -> None:
    """Run or resume the cube job of a spec; a finished job reruns in no time and changes nothing."""
    from rich.console import Console

    from unique_xr.pipeline.job import run_cube

    _logging(verbose)
    if sample == (config is not None):
        _fail("give either CONFIG.toml or --sample (the embedded sample region)")
    if sample:
        from unique_xr.pipeline.spec import sample_spec

        if out is None:
            _fail("--sample needs --out DIR")
        spec = sample_spec(out)
    else:
        spec = config
    result = run_cube(spec, out=out, scheduler=scheduler, workers=workers, threads_per_worker=threads_per_worker,
                      progress=progress)
    console = Console(stderr=False)
    console.print(f"cube: {result.store} ({result.units_done}/{result.units_total} units; {result.units_run} run now "
                  f"in {result.seconds:.1f} s, {result.pixel_days_per_second:,.0f} pixel-days/s; snapshot "
                  f"{result.snapshot})")
    if result.stac:
        console.print(f"STAC: {result.stac}")
    if sample:
        from unique_xr.pipeline.check import structure_check

        check = structure_check(spec, result.out)
        console.print(f"30 m structure on {check['date']} (units {', '.join(check['units'])}, not fitted on; "
                      f"{check['pixels']:,} px): r with GPP_L = {check['r_downscaled']:.3f} for the cube "
                      f"(scheme {check['scheme']}), {check['r_bicubic']:.3f} for bicubic GPP_M")
    if plot or (plot is None and sample):
        from unique_xr.write.figures import cube_plot
        from unique_xr.write.store import open_cube

        png = cube_plot(open_cube(result.out), result.out / "cube.png")
        console.print(f"map and time series: {png}")


@cube_app.command("status")
def cube_status(out: Path = typer.Argument(..., help="The job's output folder.")) -> None:
    """The spec in short, units done / total, the last commit and the time per unit."""
    from rich.console import Console

    from unique_xr.write.status import cube_status as status

    Console().print(status(out))


@cube_app.command("export")
def cube_export(
    out: Path = typer.Argument(..., help="The job's output folder."),
    format: str = typer.Option(..., "--format", help="zarr (plain Zarr v3), netcdf (CF-1.10) or geotiff (a COG per day)."),
    to: Path = typer.Option(..., "--out", help="Where to write (a .zarr folder, a .nc file, or a folder of COGs)."),
    overwrite: bool = typer.Option(False, help="Replace an existing output."),
) -> None:
    """Export the latest committed cube for tools that cannot read Icechunk."""
    from unique_xr.write.export import export_cube

    path = export_cube(out, format, to, overwrite=overwrite)
    typer.echo(f"{format}: {path}")


@cube_app.command("plot")
def cube_plot_command(
    out: Path = typer.Argument(..., help="The job's output folder."),
    to: Path = typer.Option(..., "--out", help="The PNG to write."),
    day: Optional[str] = typer.Option(None, help="Map this day (YYYY-MM-DD) instead of the period mean."),
    start: Optional[str] = typer.Option(None, help="Map the mean from this day ..."),
    end: Optional[str] = typer.Option(None, help="... to this day (both needed)."),
) -> None:
    """A map of a day or of the period mean, and the time series of the region and per land-cover class."""
    from unique_xr.write.figures import cube_plot
    from unique_xr.write.store import open_cube

    if (start is None) != (end is None):
        _fail("--start and --end go together")
    period = (start, end) if start is not None else None
    path = cube_plot(open_cube(out), to, day=day, period=period)
    typer.echo(f"plot: {path}")
