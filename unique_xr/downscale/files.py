"""The GeoTIFF file workflow of the downscaler: fit, predict and calibrate from single-band files.

What ``unique-xr downscale fit / predict / calibrate`` do, as plain functions for Python users and
jobs (no typer): read the files (:mod:`unique_xr.downscale.io`), relate the coarse files to the fine
grid, call :func:`unique_xr.downscale.fit`, :func:`~unique_xr.downscale.downscale` or
:func:`~unique_xr.downscale.calibrate`, and write the model folder or the prediction GeoTIFF.

* :func:`fit_from_files`: coarse/fine pairs (+ auxiliaries, + the texture of the fine files) -> model folder.
* :func:`predict_from_files`: a model folder and one coarse file -> a fine-grid GeoTIFF.
* :func:`calibrate_from_files`: held-out coarse/fine pairs -> the model's calibrated 90 % interval.

Errors are :class:`~unique_xr.downscale.conditioning.DownscaleInputError` and name the command-line
options (``--aux``, ``--texture``...) of the matching keyword arguments (``aux``, ``texture``...).
torch is imported when a model is fitted, loaded or applied (extra ``torch``).

Examples
--------
>>> from unique_xr.downscale.files import fit_from_files, predict_from_files
>>> model = fit_from_files(["gpp_500m_0114.tif", "gpp_500m_0130.tif"], ["gpp_30m_0114.tif", "gpp_30m_0130.tif"],
...                        aux=["dem.tif"], scheme="s2", out="model")  # doctest: +SKIP
>>> grid, ds = predict_from_files("model", "gpp_500m_0122.tif", aux=["dem.tif"], out="gpp_30m_0122.tif",
...                               members=4)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

__all__ = ["TEXTURE_FILE", "calibrate_from_files", "distill_from_files", "fit_from_files", "model_aux",
           "predict_from_files", "read_band"]

#: The texture layer ``fit --texture`` writes into the model folder.
TEXTURE_FILE = "texture.tif"

_Path = str | PathLike[str]


def read_band(path: _Path, band: int | None):
    """One band of a raster file as float32 with NaN for missing values.

    Parameters
    ----------
    path
        A GeoTIFF (or any raster rasterio reads).
    band
        1-based band to read from a multi-band file; single-band files are read as they are,
        whatever ``band`` says (the ``--band`` option of the commands).

    Returns
    -------
    xarray.DataArray
        ``(y, x)``, as :func:`unique_xr.downscale.io.read_single_band` reads it.
    """
    from unique_xr.downscale.io import band_count, read_single_band

    return read_single_band(path, band=band if band is not None and band_count(path) > 1 else None)


def fit_from_files(coarse: Sequence[_Path], fine: Sequence[_Path], *, aux: Sequence[_Path] = (), scheme: str,
                   out: _Path, preset: str = "cpu", steps: int | None = None, device: str = "cpu",
                   precision: str = "auto", resume: bool = False, seed: int | None = None, band: int | None = None,
                   progress: bool = False, texture: bool = False, dates: Sequence[str] | None = None):
    """Train a downscaler on coarse/fine GeoTIFF pairs (coarse i pairs with fine i) and write its folder.

    Parameters
    ----------
    coarse
        Coarse single-band GeoTIFFs, one per pair: on their own grid (nested in the fine one or
        not; see :func:`unique_xr.downscale.io.align_coarse`) or on the fine grid.
    fine
        Fine single-band GeoTIFFs of the same variable, one per coarse file, all on one grid;
        NaN/nodata pixels are left out of training.
    aux
        Scheme ``"s2"``: auxiliary layers on the fine grid (a DEM, a land-cover map; integer maps
        with few values become one channel per class).
    scheme
        ``"s1"`` (coarse only), ``"s2"`` (coarse + auxiliaries) or ``"s3"`` (fusion: + the latest
        earlier fine image and the day; auxiliaries optional; needs ``dates``).
    out
        Model folder to write (``weights.pt``, ``card.json``, ``checkpoint.pt``).
    dates
        Scheme ``"s3"``: the day of each pair (``YYYY-MM-DD``), in the order of the pairs; each
        pair's prior is, per pixel, the latest clear fine value among the pairs of earlier days.
    preset
        Model size and schedule of :meth:`~unique_xr.downscale.DownscaleConfig.preset`: ``"quick"``
        (tests), ``"cpu"``, ``"large"`` (GPU).
    steps, seed
        Training steps and seed of patch order, augmentation and noise (None: the preset's).
    device, precision
        Where to train (``"cpu"``, ``"cuda"``, ``"auto"``) and ``"auto"`` (bf16 autocast on CUDA,
        fp32 on CPU), ``"bf16"`` or ``"fp32"``.
    resume
        Continue from ``out/checkpoint.pt`` (same inputs and options).
    band
        Band (1-based) to read from multi-band coarse/fine files (see :func:`read_band`).
    progress
        Show a progress bar.
    texture
        Scheme ``"s2"``: also condition on the texture of the fine files (their mean sub-coarse
        anomaly, leave-one-out while fitting; :func:`unique_xr.downscale.texture_prior`), written to
        ``out/texture.tif`` (:data:`TEXTURE_FILE`) and used by :func:`predict_from_files` and
        :func:`calibrate_from_files` without an ``aux`` entry. Needs coarse files on one grid nested
        in the fine one, and at least two pairs.

    Returns
    -------
    unique_xr.downscale.model.Downscaler
        The fitted model; its card records the input files, the band, the factors, how each
        coarse file was aligned and the fine grid.

    Raises
    ------
    DownscaleInputError
        Inputs that do not fit the scheme, unequal numbers of coarse and fine files, ``steps`` < 1,
        or ``texture`` without nested coarse files or with a single pair.
    """
    from unique_xr.downscale import DownscaleConfig, fit
    from unique_xr.downscale.conditioning import DownscaleInputError
    from unique_xr.downscale.io import (
        align_coarse,
        common_grid,
        grid_record,
        read_single_band,
        write_prediction,
    )
    from unique_xr.downscale.texture import texture_prior

    coarse, fine, aux = list(coarse), list(fine), list(aux)
    if scheme == "s3" and not dates:
        raise DownscaleInputError("Scheme s3 needs the day of each pair: add --dates YYYY-MM-DD ... in the order of "
                                  "the --coarse/--fine pairs.")
    if scheme != "s3" and dates:
        raise DownscaleInputError(f"--dates is used by scheme s3 only; drop it or use --scheme s3 (got {scheme}).")
    if dates and len(dates) != len(fine):
        raise DownscaleInputError(f"--dates needs one day per pair: got {len(dates)} dates for {len(fine)} pairs.")
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
    fine_da = [read_band(p, band) for p in fine]
    grid = common_grid(fine_da, "--fine")
    aux_da = [read_single_band(p) for p in aux]
    grid = common_grid([*fine_da, *aux_da], "--fine and --aux") if aux_da else grid
    aligned = [align_coarse(read_band(p, band), grid) for p in coarse]
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
                precision=precision, resume=resume, progress=progress, card={"inputs": inputs},
                dates=list(dates) if dates else None)
    if prior is not None:
        write_prediction(prior.to_dataset(), Path(out) / TEXTURE_FILE, grid, tags={"content": prior.attrs["long_name"]})
    return model


def model_aux(model, model_dir: _Path, aux_da: Sequence[Any], what: str) -> list[Any]:
    """The user's auxiliaries plus, for a ``fit --texture`` model, the texture layer of its folder.

    Parameters
    ----------
    model
        A loaded :class:`~unique_xr.downscale.model.Downscaler`.
    model_dir
        Its folder (where a texture model keeps :data:`TEXTURE_FILE`).
    aux_da
        The auxiliary layers given, as DataArrays, in the order of fit.
    what
        How the layers were given, for the error message (``"--aux"``).

    Returns
    -------
    list of xarray.DataArray
        ``aux_da``, followed by the texture layer when the model was fitted with one.

    Raises
    ------
    DownscaleInputError
        When the count of layers differs from the model's, or the texture file is missing.
    """
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


def predict_from_files(model_dir: _Path, coarse: _Path, *, out: _Path, aux: Sequence[_Path] = (), members: int | None = None,
                       steps: int | None = None, sampler: str | None = None, seed: int = 0, tile: int | None = None,
                       overlap: int | None = None, conserve: bool = False, device: str = "cpu",
                       precision: str = "auto", band: int | None = None, like: _Path | None = None,
                       factor: int | None = None, allow_out_of_range: bool = False, date: str | None = None,
                       prior_fine: _Path | None = None, prior_date: str | None = None,
                       prior_coarse: _Path | None = None):
    """Downscale one coarse GeoTIFF with a fitted model and write the fine-grid GeoTIFF.

    Parameters
    ----------
    model_dir
        Model folder written by :func:`fit_from_files` (or ``unique-xr downscale fit``).
    coarse
        Coarse single-band GeoTIFF to downscale.
    out
        GeoTIFF to write on the fine grid (float32, nodata NaN): band 1 the ensemble mean; with
        ``members`` > 1 also the spread and the lower and upper bounds of the 90 % interval.
    aux
        Scheme ``"s2"``: the model's auxiliary layers, in the order of fit; their grid is the output
        grid (a texture model adds its own texture layer, see :func:`model_aux`).
    members, steps, sampler, seed
        Ensemble members (None: :data:`~unique_xr.downscale.config.DEFAULT_MEMBERS`, whose mean is the
        best estimate; 1 writes one random sample), sampling steps and sampler (``"ddim"``, ``"ddpm"``,
        ``"distilled"``; None: the distilled sampler of ``steps`` when the model has one, else the
        model's), noise seed.
    tile, overlap
        Tile side and overlap in fine pixels (None: the model's).
    conserve
        Make each coarse cell's mean equal the coarse value (coarse on a nested grid).
    device, precision
        Where to run, and ``"auto"`` (bf16 autocast on CUDA, fp32 on CPU), ``"bf16"`` or ``"fp32"``.
    band
        Band (1-based) to read from a multi-band coarse file.
    like
        Without auxiliaries: a raster on the output grid (default: the coarse area at the training
        pixel size).
    factor
        Without auxiliaries or ``like``: output pixels per coarse pixel along each axis (default:
        the model's).
    allow_out_of_range
        Predict, with a warning, inputs unlike the training data (values far outside the trained
        range, a factor the model was not fitted at), which are refused otherwise.
    date, prior_fine, prior_date, prior_coarse
        Scheme ``"s3"``: the target day (``YYYY-MM-DD``, required); the latest clear fine image before
        it (on the output grid; NaN pixels have no prior) and its day; optionally the coarse image of
        that day (aligned like ``coarse``); without it the model uses the coarse field averaged from
        the prior fine image (nested coarse grids only). Without ``prior_fine`` no pixel has a prior.

    Returns
    -------
    tuple
        ``(grid, ds)``: the output grid (an odc-geo ``GeoBox``) and the prediction written to
        ``out``, whose ``downscaling_alignment`` attribute says how the coarse file was related to it.

    Raises
    ------
    DownscaleInputError
        Both ``like`` and ``factor``; ``like``/``factor`` with auxiliaries; auxiliaries unlike the
        model's (see :func:`model_aux`).
    """
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
    _check_prior_options(model, date, prior_fine, prior_date, prior_coarse)
    coarse_da = read_band(coarse, band)
    aux_da = model_aux(model, model_dir, [read_single_band(p) for p in aux], "--aux")
    prior_da = read_single_band(prior_fine, name="prior_fine") if prior_fine is not None else None
    if aux_da and (like is not None or factor is not None):
        raise DownscaleInputError("With auxiliaries (--aux, or a model's texture layer) the output grid is theirs; "
                                  "drop --like/--factor.")
    if aux_da:
        grid = common_grid([*aux_da, *([prior_da] if prior_da is not None else [])], "--aux and --prior-fine")
    elif prior_da is not None and like is None and factor is None:
        grid = common_grid([prior_da], "--prior-fine")
    elif like is not None:
        grid = read_grid(like)
    else:
        inputs = model.card.get("inputs", {})
        grid = prediction_grid(coarse_da, factor=factor, trained_factor=model.card.get("factor", 1),
                               trained_grid=inputs.get("fine_grid"))
    aligned, k = align_coarse(coarse_da, grid)
    prior = None
    if prior_da is not None:
        prior = _prior_dataset(prior_da, grid, date, prior_date, prior_coarse, band)
    ds = downscale(aligned, model, aux=aux_da, factor=k, members=members, steps=steps, sampler=sampler, seed=seed,
                   tile=tile, overlap=overlap, conserve=conserve, device=device, precision=precision,
                   allow_out_of_range=allow_out_of_range, prior=prior, date=date)
    ds.attrs["downscaling_alignment"] = aligned.attrs["alignment"]
    tags = {"source_coarse": str(coarse), "source_model": str(model_dir), "seed": seed,
            "sampler": ds.attrs["downscaling_sampler"], "steps": ds.attrs["downscaling_steps"],
            "estimate": ds.attrs["downscaling_estimate"]}
    if model.norm.prior:
        tags.update({"date": str(date), "prior_fine": str(prior_fine), "prior_date": str(prior_date),
                     "prior_coarse": str(prior_coarse)})
    write_prediction(ds, out, grid, tags=tags)
    return grid, ds


def _check_prior_options(model, date, prior_fine, prior_date, prior_coarse) -> None:
    """The S3 options of predict: all of date, and prior date with prior fine; none for S1/S2."""
    from unique_xr.downscale.conditioning import DownscaleInputError

    given = [n for n, v in (("--date", date), ("--prior-fine", prior_fine), ("--prior-date", prior_date),
                            ("--prior-coarse", prior_coarse)) if v is not None]
    if not model.norm.prior:
        if given:
            raise DownscaleInputError(f"{', '.join(given)}: the model is scheme {model.scheme}, which conditions on "
                                      "no prior or day; drop them, or fit with --scheme s3.")
        return
    if date is None:
        raise DownscaleInputError("The model is scheme s3: give the target day with --date YYYY-MM-DD.")
    if (prior_fine is None) != (prior_date is None):
        raise DownscaleInputError("--prior-fine and --prior-date go together: the latest clear fine image before "
                                  "--date and its day.")
    if prior_coarse is not None and prior_fine is None:
        raise DownscaleInputError("--prior-coarse is the coarse image of the prior's day: give --prior-fine and "
                                  "--prior-date with it.")


def _prior_dataset(prior_da, grid, date, prior_date, prior_coarse, band):
    """The prior Dataset of :func:`unique_xr.downscale.downscale` from the prior fine file (and its coarse file)."""
    import numpy as np
    import xarray as xr

    from unique_xr.downscale.api import coarse_on_fine
    from unique_xr.downscale.prior import day_numbers
    from unique_xr.downscale.conditioning import DownscaleInputError
    from unique_xr.downscale.io import align_coarse, describe_grid, grid_of, shares_grid

    days, _ = day_numbers([date, prior_date])
    age = float(days[0] - days[1])
    if age <= 0:
        raise DownscaleInputError(f"--prior-date {prior_date} is not before --date {date}: the prior is the latest "
                                  "clear fine image BEFORE the target day.")
    prior_grid = grid_of(prior_da)
    if not shares_grid(grid, prior_grid):
        raise DownscaleInputError(f"--prior-fine is {describe_grid(prior_grid)}, the output grid "
                                  f"{describe_grid(grid)}: give the prior on the output grid (the --aux grid, the "
                                  "--like grid, or the coarse grid refined by --factor).")
    fine = np.asarray(prior_da.values, dtype=np.float32)
    data = {"fine": (("y", "x"), fine), "age": (("y", "x"), np.where(np.isfinite(fine), age, np.nan))}
    if prior_coarse is not None:
        aligned, k = align_coarse(read_band(prior_coarse, band), grid)
        data["coarse"] = (("y", "x"), coarse_on_fine(np.asarray(aligned.values, dtype=np.float64), k))
    return xr.Dataset(data)


def distill_from_files(model_dir: _Path, coarse: Sequence[_Path], fine: Sequence[_Path], *, steps: int = 4,
                       start: int = 16, aux: Sequence[_Path] = (), dates: Sequence[str] | None = None,
                       round_steps: int | None = None, device: str = "cpu", precision: str = "auto",
                       band: int | None = None, out: _Path | None = None, progress: bool = False):
    """Distil a model folder into few-step samplers (:func:`unique_xr.downscale.distill`, in :mod:`unique_xr.downscale.distillation`) and write it.

    ``coarse``/``fine``/``aux``/``dates`` as for :func:`fit_from_files`; without them, the files the
    model was fitted on (its card's ``inputs``) are used.
    """
    from unique_xr.downscale import distill, load_downscaler
    from unique_xr.downscale.conditioning import DownscaleInputError
    from unique_xr.downscale.io import align_coarse, common_grid, read_single_band

    model = load_downscaler(model_dir)
    inputs = model.card.get("inputs", {})
    given = bool(list(coarse))
    coarse, fine = (list(coarse), list(fine)) if given else (inputs.get("coarse", []), inputs.get("fine", []))
    if not coarse or not fine:
        raise DownscaleInputError("distill trains on coarse/fine pairs: give --coarse and --fine (the model's card "
                                  "does not list the files it was fitted on).")
    aux = list(aux) if given else inputs.get("aux", [])
    dates = list(dates) if dates else model.card.get("dates") if model.norm.prior else None
    fine_da = [read_band(p, band) for p in fine]
    aux_da = model_aux(model, model_dir, [read_single_band(p) for p in aux], "--aux")
    grid = common_grid([*fine_da, *aux_da], "--fine and --aux")
    aligned = [align_coarse(read_band(p, band), grid) for p in coarse]
    if aux_da and model.card.get("inputs", {}).get("texture"):
        raise DownscaleInputError("distill does not handle --texture models yet (their training texture is "
                                  "leave-one-out); distil an s1, s2 or s3 model.")
    return distill(model, [a for a, _ in aligned], fine_da, aux=aux_da, dates=dates,
                   factor=aligned[0][1] if aligned else None, steps=steps, start=start, round_steps=round_steps,
                   device=device, precision=precision, out=out if out is not None else model_dir, progress=progress)


def calibrate_from_files(model_dir: _Path, coarse: Sequence[_Path], fine: Sequence[_Path], *,
                         aux: Sequence[_Path] = (), out: _Path | None = None, members: int = 8,
                         steps: int | None = None, sampler: str | None = None, seed: int = 0, device: str = "cpu",
                         band: int | None = None, allow_out_of_range: bool = False):
    """Calibrate a model's 90 % interval on held-out coarse/fine GeoTIFF pairs and write the model folder.

    Parameters
    ----------
    model_dir
        Model folder written by :func:`fit_from_files` (or ``unique-xr downscale fit``).
    coarse, fine
        Coarse GeoTIFFs of dates the model was **not** trained on, and the fine GeoTIFFs of the same
        dates (the truth; NaN/nodata left out), coarse i pairing with fine i; all coarse files on one grid.
    aux
        Scheme ``"s2"``: the model's auxiliary layers (see :func:`model_aux`).
    out
        Folder for the calibrated model (None: ``model_dir``, rewritten).
    members
        Ensemble members (at least 2): use the count you will predict with.
    steps, sampler, seed, device
        Sampling steps and sampler (None: the model's), noise seed, where to run.
    band
        Band (1-based) to read from multi-band coarse/fine files.
    allow_out_of_range
        Calibrate, with a warning, on inputs unlike the training data (refused otherwise).

    Returns
    -------
    unique_xr.downscale.model.Downscaler
        The calibrated model; its ``interval`` holds the scale, the pixels and pairs used and the
        coverage of the uncalibrated interval (see :func:`unique_xr.downscale.calibration.calibrate`).

    Raises
    ------
    DownscaleInputError
        Unequal numbers of coarse and fine files, coarse files on different grids, auxiliaries
        unlike the model's.
    """
    from unique_xr.downscale import load_downscaler
    from unique_xr.downscale.calibration import calibrate
    from unique_xr.downscale.conditioning import DownscaleInputError
    from unique_xr.downscale.io import align_coarse, common_grid, read_single_band

    coarse, fine = list(coarse), list(fine)
    if len(coarse) != len(fine):
        raise DownscaleInputError(f"calibrate pairs coarse i with fine i; got {len(coarse)} coarse and "
                                  f"{len(fine)} fine files.")
    fitted = load_downscaler(model_dir)
    if fitted.norm.prior:
        raise DownscaleInputError(
            f"{model_dir} is a scheme-s3 model: each calibration pair needs its own prior and day, which this command "
            "does not take. Calibrate it in Python: unique_xr.downscale.calibrate(model, coarse, fine, priors=[...], "
            "dates=[...]).")
    fine_da = [read_band(p, band) for p in fine]
    aux_da = model_aux(fitted, model_dir, [read_single_band(p) for p in aux], "--aux")
    grid = common_grid([*fine_da, *aux_da], "--fine and --aux")
    aligned = [align_coarse(read_band(p, band), grid) for p in coarse]
    factors = {k for _, k in aligned}
    if len(factors) > 1:
        raise DownscaleInputError(f"The coarse files sit on different grids (factors {sorted(factors)}); "
                                  "calibrate them in separate runs.")
    calibrate(fitted, [a for a, _ in aligned], fine_da, aux=aux_da, factor=factors.pop(), members=members,
              steps=steps, sampler=sampler, seed=seed, device=device, out=out if out is not None else model_dir,
              allow_out_of_range=allow_out_of_range)
    return fitted
