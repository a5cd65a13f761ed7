"""``unique-xr downscale fit / predict / calibrate``: diffusion downscaling of GeoTIFFs (UNIQUE step 2)."""

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

    started = time.perf_counter()
    model = _fit_from_files(coarse, fine, aux or [], scheme=scheme, out=out, preset=preset, steps=steps,
                            device=device, precision=precision, resume=resume, seed=seed, band=band,
                            progress=progress, texture=texture)
    card = model.card
    training = card.get("training", {})
    typer.echo(f"{out}: scheme {model.scheme}, {card['pairs']} pair(s), factor {card['factor']}, "
               f"{training.get('patches')} patches, {training.get('steps')} steps, final loss "
               f"{training.get('final_loss', float('nan')):.4f}, {time.perf_counter() - started:.1f} s")
    for kind, how in zip(card["inputs"]["coarse"], card["inputs"]["alignment"]):
        typer.echo(f"  {kind}: {how}")


def _read_band(path, band):
    """``--band`` picks a band of multi-band files; single-band files are read as they are."""
    from unique_xr.downscale.io import band_count, read_single_band

    return read_single_band(path, band=band if band is not None and band_count(path) > 1 else None)


def _fit_from_files(coarse, fine, aux, *, scheme, out, preset, steps, device, precision, resume, seed, band,
                    progress, texture=False):
    from unique_xr.downscale import DownscaleConfig, fit
    from unique_xr.downscale.conditioning import DownscaleInputError
    from unique_xr.downscale.io import align_coarse, common_grid, grid_record, read_single_band, write_prediction
    from unique_xr.downscale.texture import texture_prior

    if texture and scheme != "s2":
        raise DownscaleInputError("--texture adds an auxiliary layer, so it needs --scheme s2.")
    if scheme == "s2" and not aux and not texture:
        raise DownscaleInputError("Scheme s2 conditions on auxiliary layers: add --aux DEM.tif LANDCOVER.tif ... "
                                  "(on the fine grid) or --texture, or use --scheme s1.")
    if scheme == "s1" and aux:
        raise DownscaleInputError(f"Scheme s1 conditions on the coarse field only, but {len(aux)} --aux file(s) were "
                                  "given: drop --aux or use --scheme s2.")
    if len(coarse) != len(fine):
        raise DownscaleInputError(f"fit pairs coarse i with fine i, so it needs as many --coarse as --fine files; "
                                  f"got {len(coarse)} coarse and {len(fine)} fine.")
    if steps is not None and steps < 1:
        raise DownscaleInputError(f"--steps {steps}: training needs at least one step (a model that never trained "
                                  f"would predict noise). Give --steps 1 or more, or leave it out for the "
                                  f"{preset} preset's number.")
    overrides = {k: v for k, v in (("train_steps", steps), ("seed", seed)) if v is not None}
    config = DownscaleConfig.preset(preset, **overrides)
    fine_da = [_read_band(p, band) for p in fine]
    grid = common_grid(fine_da, "--fine")
    aux_da = [read_single_band(p) for p in aux]
    grid = common_grid([*fine_da, *aux_da], "--fine and --aux") if aux_da else grid
    aligned = [align_coarse(_read_band(p, band), grid) for p in coarse]
    inputs = {
        "coarse": [str(p) for p in coarse], "fine": [str(p) for p in fine], "aux": [str(p) for p in aux],
        "band": band, "factors": [k for _, k in aligned], "alignment": [a.attrs["alignment"] for a, _ in aligned],
        "fine_grid": grid_record(grid),
    }
    prior = None
    if texture:
        factors = {k for _, k in aligned}
        if len(factors) != 1 or factors == {1}:
            raise DownscaleInputError(
                f"--texture needs coarse files on one grid nested in the fine grid (a whole factor > 1); the coarse "
                f"files came out at factor(s) {sorted(factors)}. Drop --texture, or give coarse files on their own "
                "coarser grid.")
        if len(fine_da) < 2:
            raise DownscaleInputError("--texture needs at least two pairs: each pair is fitted with the texture of "
                                      "the others.")
        (k,) = factors
        aux_da = [*aux_da, texture_prior(fine_da, k, leave_one_out=True)]
        prior = texture_prior(fine_da, k)
        inputs["texture"] = TEXTURE_FILE
    model = fit([a for a, _ in aligned], fine_da, aux=aux_da, scheme=scheme, config=config, out=out, device=device,
                precision=precision, resume=resume, progress=progress, card={"inputs": inputs})
    if prior is not None:
        write_prediction(prior.to_dataset(), Path(out) / TEXTURE_FILE, grid, tags={"content": prior.attrs["long_name"]})
    return model


#: The texture layer ``fit --texture`` writes into the model folder.
TEXTURE_FILE = "texture.tif"


def _model_aux(model, model_dir, aux_da, what: str):
    """The user's auxiliaries plus, for a ``fit --texture`` model, the texture layer of its folder."""
    from unique_xr.downscale.conditioning import DownscaleInputError
    from unique_xr.downscale.io import read_single_band

    stored = model.card.get("inputs", {}).get("texture")
    own = len(model.norm.aux) - (1 if stored else 0)
    if len(aux_da) != own:
        names = [a.name for a in model.norm.aux][:own]
        extra = f" (the texture layer is read from {Path(model_dir) / stored})" if stored else ""
        raise DownscaleInputError(f"The model (scheme {model.scheme}) was trained with {own} auxiliary layer(s) "
                                  f"{names}{extra}; got {len(aux_da)} {what} file(s). Pass the same layers in the "
                                  "same order.")
    if not stored:
        return aux_da
    path = Path(model_dir) / stored
    if not path.exists():
        raise DownscaleInputError(f"The model was fitted with --texture but {path} is missing: copy the whole model "
                                  "folder, or fit again.")
    return [*aux_da, read_single_band(path, name="texture")]


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

    grid, ds = _predict_from_files(model, coarse, aux or [], out=out, members=members, steps=steps,
                                   sampler=sampler, seed=seed, tile=tile, overlap=overlap, conserve=conserve,
                                   device=device, precision=precision, band=band, like=like, factor=factor,
                                   allow_out_of_range=allow_out_of_range)

    mean = ds[next(iter(ds.data_vars))].values
    typer.echo(f"{out}: {grid.shape[0]} x {grid.shape[1]} px, {len(ds.data_vars)} band(s) "
               f"({', '.join(ds.data_vars)}), {100 * float(np.isfinite(mean).mean()):.1f} % valid, "
               f"{ds.attrs.get('downscaling_alignment')}")


def _predict_from_files(model_dir, coarse, aux, *, out, members, steps, sampler, seed, tile, overlap, conserve,
                        device, precision, band, like, factor, allow_out_of_range=False):
    from unique_xr.downscale import downscale, load_downscaler
    from unique_xr.downscale.conditioning import DownscaleInputError
    from unique_xr.downscale.io import (
        align_coarse,
        common_grid,
        prediction_grid,
        read_grid,
        read_single_band,
        write_prediction,
    )

    if like is not None and factor is not None:
        raise DownscaleInputError("--like sets the output grid, --factor derives it from the coarse grid: give one.")
    model = load_downscaler(model_dir)
    coarse_da = _read_band(coarse, band)
    aux_da = _model_aux(model, model_dir, [read_single_band(p) for p in aux], "--aux")
    if aux_da and (like is not None or factor is not None):
        raise DownscaleInputError("With auxiliaries (--aux, or a model's texture layer) the output grid is theirs; "
                                  "drop --like/--factor.")
    if aux_da:
        grid = common_grid(aux_da, "--aux")
    elif like is not None:
        grid = read_grid(like)
    else:
        inputs = model.card.get("inputs", {})
        grid = prediction_grid(coarse_da, factor=factor, trained_factor=model.card.get("factor", 1),
                               trained_grid=inputs.get("fine_grid"))
    aligned, k = align_coarse(coarse_da, grid)
    ds = downscale(aligned, model, aux=aux_da, factor=k, members=members, steps=steps, sampler=sampler, seed=seed,
                   tile=tile, overlap=overlap, conserve=conserve, device=device, precision=precision,
                   allow_out_of_range=allow_out_of_range)
    ds.attrs["downscaling_alignment"] = aligned.attrs["alignment"]
    tags = {"source_coarse": str(coarse), "source_model": str(model_dir), "seed": seed,
            "sampler": sampler or model.config.sampler,
            "steps": steps if steps is not None else model.config.sample_steps}
    write_prediction(ds, out, grid, tags=tags)
    return grid, ds



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
    from unique_xr.downscale import load_downscaler
    from unique_xr.downscale.calibration import calibrate
    from unique_xr.downscale.conditioning import DownscaleInputError
    from unique_xr.downscale.io import align_coarse, common_grid, read_single_band
    if len(coarse) != len(fine):
        raise DownscaleInputError(f"calibrate pairs coarse i with fine i; got {len(coarse)} coarse and "
                                  f"{len(fine)} fine files.")
    fitted = load_downscaler(model)
    fine_da = [_read_band(p, band) for p in fine]
    aux_da = _model_aux(fitted, model, [read_single_band(p) for p in aux or []], "--aux")
    grid = common_grid([*fine_da, *aux_da], "--fine and --aux")
    aligned = [align_coarse(_read_band(p, band), grid) for p in coarse]
    factors = {k for _, k in aligned}
    if len(factors) > 1:
        raise DownscaleInputError(f"The coarse files sit on different grids (factors {sorted(factors)}); "
                                  "calibrate them in separate runs.")
    calibrate(fitted, [a for a, _ in aligned], fine_da, aux=aux_da, factor=factors.pop(), members=members,
              steps=steps, sampler=sampler, seed=seed, device=device, out=out or model,
              allow_out_of_range=allow_out_of_range)
    info = fitted.interval
    typer.echo(f"{out or model}: 90 % interval = mean +- {info['scale']:.3f} x spread ({info['pixels']} pixels of "
               f"{info['pairs']} pair(s), {members} members); the uncalibrated interval covered "
               f"{100 * info['coverage_uncalibrated']:.1f} %")
