"""``unique-xr downscale fit / predict / calibrate / distill``: diffusion downscaling of GeoTIFFs (UNIQUE step 2).

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
        help="Schemes s2, s3: auxiliary layers on the fine grid (a DEM, a land-cover map; integer maps with few "
             "values become one channel per class)."),
    scheme: Literal["s1", "s2", "s3"] = typer.Option(
        ..., help="s1: coarse only; s2: coarse + auxiliaries; s3: fusion (+ the latest earlier fine image and the "
                  "day; needs --dates)."),
    dates: Optional[list[str]] = typer.Option(
        None, metavar="YYYY-MM-DD...",
        help="Scheme s3: the day of each pair, in the order of the pairs; each pair's prior is the latest earlier "
             "fine image among them (per pixel, the latest clear one)."),
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
                           progress=progress, texture=texture, dates=dates)
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
    members: Optional[int] = typer.Option(
        None, min=1, help="Ensemble members (default 8). Band 1 is their mean, the best estimate; --members 1 writes "
                          "one random sample instead."),
    steps: Optional[int] = typer.Option(
        None, help="Network evaluations per member (default: the model's); a distilled sampler of that many "
                   "evaluations is used when the model has one (unique-xr downscale distill)."),
    sampler: Optional[Literal["ddim", "ddpm", "distilled"]] = typer.Option(
        None, help="Sampler (default: distilled when the model has one for --steps, else the model's)."),
    seed: int = typer.Option(0, help="Noise seed."),
    date: Optional[str] = typer.Option(None, metavar="YYYY-MM-DD", help="Scheme s3: the day to predict."),
    prior_fine: Optional[Path] = typer.Option(
        None, help="Scheme s3: the latest clear fine image before --date, on the output grid (NaN: no prior)."),
    prior_date: Optional[str] = typer.Option(None, metavar="YYYY-MM-DD", help="Scheme s3: the day of --prior-fine."),
    prior_coarse: Optional[Path] = typer.Option(
        None, help="Scheme s3: the coarse image of --prior-date (default: the coarse field averaged from "
                   "--prior-fine)."),
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
                                  allow_out_of_range=allow_out_of_range, date=date, prior_fine=prior_fine,
                                  prior_date=prior_date, prior_coarse=prior_coarse)

    mean = ds[next(iter(ds.data_vars))].values
    typer.echo(f"{out}: {grid.shape[0]} x {grid.shape[1]} px, {len(ds.data_vars)} band(s) "
               f"({', '.join(ds.data_vars)}), {100 * float(np.isfinite(mean).mean()):.1f} % valid, "
               f"{ds.attrs.get('downscaling_alignment')}")
    typer.echo(f"  band 1: {ds.attrs['downscaling_estimate']}; sampler {ds.attrs['downscaling_sampler']}, "
               f"{ds.attrs['downscaling_steps']} evaluations per member")


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


@downscale_app.command("distill", cls=ValuesAfterOneFlag)
def downscale_distill(
    model: Path = typer.Option(..., help="Model folder written by `unique-xr downscale fit`."),
    steps: int = typer.Option(4, min=1, help="Fewest network evaluations wanted (a power of two below --start)."),
    start: int = typer.Option(16, help="Evaluations of the first teacher (the model's DDIM); every round halves it."),
    coarse: Optional[list[Path]] = typer.Option(
        None, metavar="PATH...", help="Training pairs as for fit (default: the files the model was fitted on)."),
    fine: Optional[list[Path]] = typer.Option(None, metavar="PATH..."),
    aux: Optional[list[Path]] = typer.Option(None, metavar="PATH...", help="The model's auxiliary layers."),
    dates: Optional[list[str]] = typer.Option(None, metavar="YYYY-MM-DD...", help="Scheme s3: the day of each pair."),
    round_steps: Optional[int] = typer.Option(
        None, help="Optimiser steps per round (default: a quarter of the model's training steps, at least 50)."),
    out: Optional[Path] = typer.Option(None, help="Folder to write (default: MODEL, rewritten)."),
    device: Literal["cpu", "cuda", "auto"] = typer.Option("cpu", help="Where to train."),
    precision: Literal["auto", "bf16", "fp32"] = typer.Option("auto", help="auto: bf16 autocast on CUDA, fp32 on CPU."),
    band: Optional[int] = typer.Option(None, help="Band (1-based) to read from multi-band coarse/fine files."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Distil a fitted model into samplers of few network evaluations (progressive distillation), stored in MODEL."""
    import time

    from unique_xr.downscale.files import distill_from_files

    if (coarse is None) != (fine is None):
        from unique_xr.downscale.conditioning import DownscaleInputError

        raise DownscaleInputError("Give both --coarse and --fine (the training pairs), or neither (the model's own).")
    started = time.perf_counter()
    fitted = distill_from_files(model, coarse or [], fine or [], steps=steps, start=start, aux=aux or [],
                                dates=dates, round_steps=round_steps, device=device, precision=precision, band=band,
                                out=out, progress=progress)
    info = fitted.distilled
    losses = ", ".join(f"{r['teacher_steps']}->{r['student_steps']}: {r['final_loss']:.4f}" for r in info["rounds"])
    typer.echo(f"{out or model}: distilled samplers of {info['steps']} evaluations from {info['from_steps']}-step DDIM "
               f"({info['round_steps']} steps per round; final losses {losses}), {time.perf_counter() - started:.1f} s")
