"""``unique-xr downscale fit / predict / calibrate``: diffusion downscaling of GeoTIFFs (UNIQUE step 2).

Argument parsing and reporting only: the file workflow is :mod:`unique_xr.downscale.files`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from unique_xr.cli._common import ValuesAfterOneFlag, app

downscale_app = typer.Typer(help="Diffusion downscaling of single-band GeoTIFFs: fit on coarse/fine pairs, predict.",
                            no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(downscale_app, name="downscale")


@downscale_app.command("fit", cls=ValuesAfterOneFlag)
def downscale_fit(
    coarse: list[Path] = typer.Option(
        ..., metavar="PATH...",
        help="Coarse single-band GeoTIFFs, one per pair: on their own grid (nested or not) or on the fine grid."),
    fine: list[Path] = typer.Option(
        ..., metavar="PATH...",
        help="Fine single-band GeoTIFFs of the same variable, one per coarse file, all on one grid; "
             "NaN/nodata pixels are left out of training."),
    aux: Optional[list[Path]] = typer.Option(
        None, metavar="PATH...",
        help="Scheme s2: auxiliary layers on the fine grid (a DEM, a land-cover map; integer maps with few "
             "values become one channel per class)."),
    scheme: Literal["s1", "s2"] = typer.Option(..., help="s1: coarse only; s2: coarse + auxiliaries."),
    out: Path = typer.Option(..., help="Model folder to write (weights.pt, card.json, checkpoint.pt)."),
    texture: bool = typer.Option(
        False, "--texture",
        help="Scheme s2: also condition on the texture of the fine files (their mean sub-coarse anomaly; "
             "leave-one-out while fitting), written to MODEL_DIR/texture.tif and used by predict and calibrate "
             "without an --aux entry. Needs coarse files on a grid nested in the fine one."),
    preset: Literal["quick", "cpu", "large"] = typer.Option(
        "cpu", help="Model size and schedule: quick (tests), cpu, large (GPU)."),
    steps: Optional[int] = typer.Option(None, help="Training steps (overrides the preset's)."),
    device: Literal["cpu", "cuda", "auto"] = typer.Option("cpu", help="Where to train."),
    precision: Literal["auto", "bf16", "fp32"] = typer.Option("auto", help="auto: bf16 autocast on CUDA, fp32 on CPU."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt (same inputs and options)."),
    seed: Optional[int] = typer.Option(None, help="Seed of patch order, augmentation and noise (default: preset's)."),
    band: Optional[int] = typer.Option(
        None, help="Band (1-based) to read from multi-band coarse/fine files (single-band files are read as is)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train a downscaler on coarse/fine GeoTIFF pairs (coarse i pairs with fine i) and write MODEL_DIR."""
    import time

    from unique_xr.downscale.files import fit_from_files

    started = time.perf_counter()
    model = fit_from_files(coarse, fine, aux=aux or [], scheme=scheme, out=out, preset=preset, steps=steps,
                           device=device, precision=precision, resume=resume, seed=seed, band=band,
                           progress=progress, texture=texture)
    card = model.card
    training = card.get("training", {})
    typer.echo(f"{out}: scheme {model.scheme}, {card['pairs']} pair(s), factor {card['factor']}, "
               f"{training.get('patches')} patches, {training.get('steps')} steps, final loss "
               f"{training.get('final_loss', float('nan')):.4f}, {time.perf_counter() - started:.1f} s")
    for kind, how in zip(card["inputs"]["coarse"], card["inputs"]["alignment"]):
        typer.echo(f"  {kind}: {how}")


@downscale_app.command("predict", cls=ValuesAfterOneFlag)
def downscale_predict(
    model: Path = typer.Option(..., help="Model folder written by `unique-xr downscale fit`."),
    coarse: Path = typer.Option(..., help="Coarse single-band GeoTIFF to downscale."),
    out: Path = typer.Option(
        ..., help="GeoTIFF to write on the fine grid (float32, nodata NaN): band 1 the ensemble mean; with "
                  "--members > 1 also the spread and the lower and upper bounds of the 90 % interval."),
    aux: Optional[list[Path]] = typer.Option(
        None, metavar="PATH...",
        help="Scheme s2: the model's auxiliary layers, in the order of fit; their grid is the output grid."),
    members: int = typer.Option(1, min=1, help="Ensemble members."),
    steps: Optional[int] = typer.Option(None, help="Sampling steps (default: the model's)."),
    sampler: Optional[Literal["ddim", "ddpm"]] = typer.Option(None, help="Sampler (default: the model's)."),
    seed: int = typer.Option(0, help="Noise seed."),
    tile: Optional[int] = typer.Option(None, help="Tile side in fine pixels (default: the model's)."),
    overlap: Optional[int] = typer.Option(None, help="Tile overlap in fine pixels (default: the model's)."),
    conserve: bool = typer.Option(
        False, "--conserve", help="Make each coarse cell's mean equal the coarse value (coarse on a nested grid)."),
    device: Literal["cpu", "cuda", "auto"] = typer.Option("cpu", help="Where to run."),
    precision: Literal["auto", "bf16", "fp32"] = typer.Option("auto", help="auto: bf16 autocast on CUDA, fp32 on CPU."),
    band: Optional[int] = typer.Option(None, help="Band (1-based) to read from a multi-band coarse file."),
    like: Optional[Path] = typer.Option(
        None, help="Without --aux: a raster on the output grid (default: the coarse area at the training pixel size)."),
    factor: Optional[int] = typer.Option(
        None, help="Without --aux or --like: output pixels per coarse pixel along each axis (default: the model's)."),
    allow_out_of_range: bool = typer.Option(
        False, "--allow-out-of-range",
        help="Predict, with a warning, inputs unlike the training data (values far outside the trained range, "
             "a factor the model was not fitted at), which are refused otherwise."),
) -> None:
    """Downscale one coarse GeoTIFF with a fitted model and write the fine-grid GeoTIFF."""
    import numpy as np

    from unique_xr.downscale.files import predict_from_files

    grid, ds = predict_from_files(model, coarse, out=out, aux=aux or [], members=members, steps=steps,
                                  sampler=sampler, seed=seed, tile=tile, overlap=overlap, conserve=conserve,
                                  device=device, precision=precision, band=band, like=like, factor=factor,
                                  allow_out_of_range=allow_out_of_range)

    mean = ds[next(iter(ds.data_vars))].values
    typer.echo(f"{out}: {grid.shape[0]} x {grid.shape[1]} px, {len(ds.data_vars)} band(s) "
               f"({', '.join(ds.data_vars)}), {100 * float(np.isfinite(mean).mean()):.1f} % valid, "
               f"{ds.attrs.get('downscaling_alignment')}")


@downscale_app.command("calibrate", cls=ValuesAfterOneFlag)
def downscale_calibrate(
    model: Path = typer.Option(..., help="Model folder written by `unique-xr downscale fit`."),
    coarse: list[Path] = typer.Option(..., metavar="PATH...",
                                      help="Coarse GeoTIFFs of dates the model was NOT trained on, one per pair."),
    fine: list[Path] = typer.Option(..., metavar="PATH...",
                                    help="Fine GeoTIFFs of the same dates (the truth; NaN/nodata left out)."),
    aux: Optional[list[Path]] = typer.Option(None, metavar="PATH...", help="Scheme s2: the model's auxiliary layers."),
    out: Optional[Path] = typer.Option(None, help="Folder for the calibrated model (default: MODEL, rewritten)."),
    members: int = typer.Option(8, min=2, help="Ensemble members: use the count you will predict with."),
    steps: Optional[int] = typer.Option(None, help="Sampling steps (default: the model's)."),
    sampler: Optional[Literal["ddim", "ddpm"]] = typer.Option(None, help="Sampler (default: the model's)."),
    seed: int = typer.Option(0, help="Noise seed."),
    device: Literal["cpu", "cuda", "auto"] = typer.Option("cpu", help="Where to run."),
    band: Optional[int] = typer.Option(None, help="Band (1-based) to read from multi-band coarse/fine files."),
    allow_out_of_range: bool = typer.Option(
        False, "--allow-out-of-range",
        help="Calibrate, with a warning, on inputs unlike the training data (refused otherwise)."),
) -> None:
    """Calibrate the 90 % interval of `predict --members N` on held-out pairs (conformal scale of the spread)."""
    from unique_xr.downscale.files import calibrate_from_files

    fitted = calibrate_from_files(model, coarse, fine, aux=aux or [], out=out, members=members, steps=steps,
                                  sampler=sampler, seed=seed, device=device, band=band,
                                  allow_out_of_range=allow_out_of_range)
    info = fitted.interval
    typer.echo(f"{out or model}: 90 % interval = mean +- {info['scale']:.3f} x spread ({info['pixels']} pixels of "
               f"{info['pairs']} pair(s), {members} members); the uncalibrated interval covered "
               f"{100 * info['coverage_uncalibrated']:.1f} %")
