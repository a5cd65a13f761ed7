"""The xarray side of downscaling: training patches with xbatcher, and tiled lazy prediction.

``fit`` turns paired coarse/fine images (plus auxiliaries for scheme S2) into patches and
trains a :class:`~unique_xr.downscale.model.Downscaler`; ``downscale`` applies one to a coarse
field, one Dask task per output chunk and time step, each computing the global-lattice tiles
that touch its chunk (:mod:`unique_xr.downscale.tiling`), so the result does not depend on
the chunking. The model is one key of the graph and is loaded once per worker process.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from unique_xr._threads import torch_threads
from unique_xr.downscale.conditioning import (
    DownscaleInputError,
    Normalisation,
    block_replicate,
    conserve_mass,
    upsample_bilinear,
)
from unique_xr.downscale.config import DEFAULT_MEMBERS, DownscaleConfig
from unique_xr.downscale.prior import (day_numbers, prior_gain_from_stack, prior_patches, stack_has_prior, training_priors,
                                      window_fields)
from unique_xr.downscale.ranges import check_factor, check_trained_range, physical_range, training_ranges
from unique_xr.downscale.blockwise import downscale_window, halo
from unique_xr.downscale.tiling import TilePlan, predict_region, reflect_index
from unique_xr.models.handle import WorkerHandle

#: Student-t quantile for the 90 % prediction interval of one new member, by ensemble size - 1.
_T95 = {1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860, 9: 1.833, 10: 1.812,
        15: 1.753, 20: 1.725, 30: 1.697, 60: 1.671}


def _t95(dof: int) -> float:
    keys = sorted(_T95)
    best = max((k for k in keys if k <= dof), default=1)
    return _T95[best] if dof <= 60 else 1.645


def interval_half_width(spread: np.ndarray, members: int, interval: dict[str, Any] | None = None) -> np.ndarray:
    """Half-width of the 90 % interval of one new member from the ensemble ``spread``.

    Uncalibrated: ``t(0.95, N - 1) * spread * sqrt(1 + 1/N)`` (members exchangeable with the truth).
    Calibrated (``interval`` of :func:`unique_xr.downscale.calibration.calibrate`): ``scale * spread``.

    >>> float(interval_half_width(np.array(1.0), 8, {"scale": 2.5}))
    2.5
    """
    if interval is not None:
        return float(interval["scale"]) * spread
    return _t95(members - 1) * spread * math.sqrt(1 + 1 / members)


def _as_list(items) -> list[xr.DataArray]:
    if items is None:
        return []
    if isinstance(items, xr.DataArray):
        if "time" in items.dims:
            return [items.isel(time=i) for i in range(items.sizes["time"])]
        return [items]
    return list(items)


def _values(da: xr.DataArray) -> np.ndarray:
    if set(da.dims) - {"y", "x"} or da.ndim != 2:
        raise DownscaleInputError(f"Expected a 2-D (y, x) image, got dims {da.dims}; select one band/time first.")
    return np.asarray(da.transpose("y", "x").values, dtype=np.float64)


def _aux_values(da: xr.DataArray, n_pairs: int) -> np.ndarray:
    """A static ``(y, x)`` layer, or ``(pair, y, x)`` with one layer per training pair."""
    extra = [d for d in da.dims if d not in ("y", "x")]
    if not extra:
        return _values(da)
    if len(extra) == 1 and da.sizes[extra[0]] == n_pairs and {"y", "x"} <= set(da.dims):
        return np.asarray(da.transpose(extra[0], "y", "x").values, dtype=np.float64)
    raise DownscaleInputError(
        f"Auxiliary {da.name!r} has dims {dict(da.sizes)}: an auxiliary is a (y, x) layer, or one layer per "
        f"training pair with a leading dimension of length {n_pairs} (e.g. a leave-one-out texture_prior)."
    )


def infer_factor(coarse_shape: tuple[int, int], fine_shape: tuple[int, int], factor: int | None = None) -> int:
    """1 when the coarse image is already on the fine grid, else the whole nesting factor."""
    if factor is not None:
        expected = (coarse_shape[0] * factor, coarse_shape[1] * factor)
        if tuple(fine_shape) != expected and tuple(coarse_shape) != tuple(fine_shape):
            raise DownscaleInputError(
                f"factor={factor} expects a fine grid of {expected} for a coarse image of {coarse_shape}; "
                f"the fine grid is {fine_shape}."
            )
        return factor if tuple(coarse_shape) != tuple(fine_shape) else 1
    if tuple(coarse_shape) == tuple(fine_shape):
        return 1
    ratios = {fine_shape[0] / coarse_shape[0], fine_shape[1] / coarse_shape[1]}
    if len(ratios) == 1 and float(next(iter(ratios))).is_integer():
        return int(next(iter(ratios)))
    raise DownscaleInputError(
        f"The coarse image {coarse_shape} neither matches the fine grid {fine_shape} nor nests in it by a whole "
        "factor. Resample it onto the fine grid first (e.g. odc-geo xr_reproject, bilinear), or crop both "
        "so the coarse pixels are exact k x k blocks."
    )


def coarse_on_fine(coarse: np.ndarray, factor: int) -> np.ndarray:
    """The coarse field on the fine grid: bilinear between coarse centres, or as is when ``factor == 1``."""
    return coarse.astype(np.float32) if factor == 1 else upsample_bilinear(coarse, factor)


def training_patches(stack: np.ndarray, patch: int, *, min_valid: float) -> np.ndarray:
    """Overlapping ``patch x patch`` patches of ``stack`` ``(pairs, 1 + C, H, W)`` cut with xbatcher.

    Patches overlap by half a patch; those whose target is valid on less than ``min_valid``
    of their pixels are dropped. Returns ``(N, 1 + C, patch, patch)`` float32.
    """
    from unique_xr._optional import import_optional

    xbatcher = import_optional("xbatcher", purpose="cutting training patches")
    h, w = stack.shape[-2:]
    if min(h, w) < patch:
        raise DownscaleInputError(f"Training images of {h} x {w} px are smaller than patch={patch}; lower the patch size.")
    ds = xr.Dataset({"stack": (("pair", "channel", "y", "x"), stack)},
                    coords={"pair": np.arange(stack.shape[0]), "channel": np.arange(stack.shape[1])})
    gen = xbatcher.BatchGenerator(ds, input_dims={"y": patch, "x": patch},
                                  input_overlap={"y": patch // 2, "x": patch // 2})
    out = []
    for batch in gen:
        arr = batch["stack"].unstack("sample").transpose("pair", "channel", "y", "x").values
        keep = np.isfinite(arr[:, 0]).mean(axis=(1, 2)) >= min_valid
        out.append(arr[keep])
    return np.concatenate(out).astype(np.float32) if out else np.empty((0, *stack.shape[1:2], patch, patch), np.float32)


def fit(
    coarse: xr.DataArray | Sequence[xr.DataArray],
    fine: xr.DataArray | Sequence[xr.DataArray],
    *,
    aux: Sequence[xr.DataArray] | None = None,
    scheme: str = "s1",
    factor: int | None = None,
    config: DownscaleConfig | None = None,
    out: str | Path | None = None,
    device: str = "cpu",
    precision: str = "auto",
    resume: bool = False,
    progress: bool = False,
    aux_kinds: Sequence[str | None] | None = None,
    stop_after: int | None = None,
    card: dict[str, Any] | None = None,
    dates: Sequence[Any] | None = None,
    prior_dropout: float = 0.2,
    groups: Sequence[Any] | None = None,
    history: Sequence[tuple[Any, Any, xr.DataArray]] | None = None,
    fusion_base: bool = True,
):
    """Train a conditional diffusion downscaler on paired images of one variable.

    Parameters
    ----------
    coarse, fine
        Pairs of 2-D ``(y, x)`` images (lists, or DataArrays with a ``time`` dimension), the same
        variable in the same units. Coarse images are on the fine grid already or on a grid that
        nests in it (each coarse pixel an exact ``factor x factor`` block; inferred from the shapes).
        NaN in ``fine`` (clouds, fill) is ignored by the loss; NaN in ``coarse`` is filled from the
        nearest valid pixel for conditioning and flagged in a mask channel.
    aux
        Scheme S2 only: static layers on the fine grid, e.g. a DEM and a land-cover map (integer
        rasters with few values become one channel per class; ``aux_kinds`` overrides). A layer
        may instead hold one image per training pair (a leading dimension of the pairs' length),
        as :func:`~unique_xr.downscale.texture.texture_prior` with ``leave_one_out=True`` gives;
        prediction then takes the one static layer of the same name.
    scheme
        ``"s1"`` (coarse only), ``"s2"`` (coarse + auxiliaries) or ``"s3"`` (fusion: coarse,
        optional auxiliaries, the latest clear fine observation before each pair's day with its
        age and the coarse field of its day, and the day of year; needs ``dates``).
    config
        :class:`DownscaleConfig` (default: the ``"cpu"`` preset).
    out
        Model folder; with it, checkpoints are written while training and ``resume=True`` continues.
    device, precision
        Where to train (``"cpu"``, ``"cuda"``, ``"auto"``) and ``"auto"`` (bf16 autocast on CUDA),
        ``"bf16"`` or ``"fp32"``.
    stop_after
        Stop at this step leaving a checkpoint in ``out`` (continue with ``resume=True``; a resume
        may also raise ``train_steps`` to train longer, the learning-rate schedule then stretches).
    dates
        Scheme S3: the day of each pair (anything ``numpy.datetime64`` reads, e.g. ``"2015-08-27"``).
        Each pair's prior is, per pixel, the latest clear fine value among the pairs of earlier
        days (:func:`unique_xr.downscale.prior.composite`); pairs of the first day have none.
    prior_dropout
        Scheme S3: share of training patches shown without their prior, so that pixels without a
        prior stay well predicted (from the coarse field, auxiliaries and day). The prior's coarse
        field is, for half the other patches, the observed coarse image of its day and for the rest
        the fine prior's own cell mean (what a prediction without ``prior.coarse`` uses).
    groups
        Scheme S3, pairs from several places (e.g. the work units of a cube job): one label per
        pair; a pair's prior comes only from pairs of the same label (default: all one place).
    history
        Scheme S3: more fine images that may be a pair's prior without being a pair themselves
        (their coarse image is missing, say): ``(date, group, fine)`` tuples on the fine grid.
        Their prior coarse field is always their own cell mean.
    fusion_base
        Scheme S3: the network learns the correction to a fusion base, today's upsampled coarse
        field plus the prior's sub-coarse detail weighted by ``w * exp(-age / L)`` (``w`` and
        ``L`` fitted by least squares on the pairs and stored in the card's normalisation), rather
        than to the coarse field alone. False: the residual over the coarse field, as S1/S2.
    card
        Extra entries for the model card (e.g. the input files). The card also records the nesting
        ``factor`` and ``training_ranges``, the finite value range of the coarse, fine and auxiliary
        training images, against which :func:`downscale` checks new inputs.

    Returns
    -------
    Downscaler
    """
    from unique_xr.downscale.model import Downscaler, train

    config = config or DownscaleConfig.preset("cpu")
    norm, patches, record = training_set(coarse, fine, aux=aux, scheme=scheme, factor=factor, config=config,
                                         aux_kinds=aux_kinds, dates=dates, prior_dropout=prior_dropout, groups=groups,
                                         history=history, fusion_base=fusion_base)
    model = Downscaler.new(config, norm, scheme)
    model.card.update({**record, **(card or {})})
    return train(model, patches, out=out, device=device, precision=precision, resume=resume, progress=progress,
                 stop_after=stop_after)


def training_set(coarse, fine, *, aux=None, scheme: str, factor: int | None, config: DownscaleConfig,
                 aux_kinds=None, dates=None, prior_dropout: float = 0.2, norm: Normalisation | None = None,
                 groups=None, history=None, fusion_base: bool = True):
    """``(norm, patches, card entries)`` of :func:`fit`'s training data; ``norm`` given: that of a fitted model.

    The patches are ``(N, 1 + C, P, P)``: the standardised residual target, then the network's
    conditioning channels (for S3 with the prior variant of each patch already drawn).
    """
    coarse, fine, aux = _as_list(coarse), _as_list(fine), _as_list(aux)
    if scheme == "s1" and aux:
        raise DownscaleInputError("Scheme s1 conditions on the coarse field only; drop the auxiliaries or use scheme='s2'.")
    if scheme == "s2" and not aux:
        raise DownscaleInputError("Scheme s2 needs auxiliaries on the fine grid (e.g. a DEM and land cover); pass aux=[...].")
    if scheme == "s3" and (dates is None or len(dates) != len(fine)):
        raise DownscaleInputError(f"Scheme s3 needs the day of every pair (dates=[...], CLI: --dates); got "
                                  f"{'none' if dates is None else len(dates)} for {len(fine)} pairs.")
    if scheme != "s3" and dates is not None:
        raise DownscaleInputError(f"dates are used by scheme s3 only (the prior of each pair); scheme {scheme!r} "
                                  "ignores them: drop dates or use scheme='s3'.")
    if not coarse or len(coarse) != len(fine):
        raise DownscaleInputError(f"fit needs coarse and fine images in pairs; got {len(coarse)} coarse and {len(fine)} fine.")
    fine_np = [_values(f) for f in fine]
    shape = fine_np[0].shape
    if any(f.shape != shape for f in fine_np):
        raise DownscaleInputError(f"All fine images must share one grid; got shapes {sorted({f.shape for f in fine_np})}.")
    coarse_np = [_values(c) for c in coarse]
    k = infer_factor(coarse_np[0].shape, shape, factor)
    coarse_up = [coarse_on_fine(c, infer_factor(c.shape, shape, factor)) for c in coarse_np]
    aux_np = [_aux_values(a, len(fine)) for a in aux]
    for a, arr in zip(aux, aux_np):
        if arr.shape[-2:] != shape:
            raise DownscaleInputError(f"Auxiliary {a.name!r} is {arr.shape}, the fine grid {shape}: put it on the fine grid.")
    names = [str(a.name) if a.name is not None else f"aux{i}" for i, a in enumerate(aux)]
    fitted = norm is not None
    if norm is None:
        norm = Normalisation.fit(coarse_up, fine_np, aux_np, aux_names=names,
                                 aux_kinds=list(aux_kinds) if aux_kinds else None, prior=scheme == "s3")
    base = dataclasses.replace(norm, prior=False)  # the channels before the prior's
    stack = np.stack([np.concatenate([norm.residual(f, c)[None],
                                      base.conditioning(c, [a[i] if a.ndim == 3 else a for a in aux_np])])
                      for i, (f, c) in enumerate(zip(fine_np, coarse_up))])
    record: dict[str, Any] = {}
    if scheme == "s3":
        days, doys = day_numbers(dates)
        if groups is not None and len(groups) != len(fine):
            raise DownscaleInputError(f"groups needs one label per pair; got {len(groups)} for {len(fine)} pairs.")
        extra_fine, extra_days, extra_groups = [], [], []
        for when, group, image in history or ():
            extra_fine.append(_values(image))
            extra_days.append(day_numbers([when])[0][0])
            extra_groups.append(group)
        if any(f.shape != shape for f in extra_fine):
            raise DownscaleInputError("Every history image must be on the pairs' fine grid.")
        stack = np.concatenate([stack, training_priors(fine_np, coarse_up, days, doys, k, groups,
                                                  (extra_fine, extra_days, extra_groups))], axis=1)
        if not stack_has_prior(stack):
            warnings.warn("No training pair of this scheme-s3 fit has a prior (every pair is the first clear date of "
                          "its place), so the model cannot learn to use one and its predictions with a prior are "
                          "untrained. Give pairs of two or more dates per place, or use scheme 's2'.", UserWarning,
                          stacklevel=3)
        if fusion_base and not fitted:
            weight, decay = prior_gain_from_stack(stack, norm.residual_std)
            norm = dataclasses.replace(norm, prior_weight=weight, prior_decay=decay)
        record = {"dates": [str(np.datetime64(d, "D")) for d in dates], "prior_dropout": prior_dropout}
    patches = training_patches(stack, config.patch, min_valid=config.min_valid)
    if scheme == "s3":
        patches = prior_patches(patches, norm, dropout=prior_dropout, seed=config.seed, nested=k > 1)
    record = {
        "variable": str(fine[0].name) if fine[0].name is not None else None,
        "units": fine[0].attrs.get("units"),
        "factor": k,
        "pairs": len(fine),
        "fine_shape": list(shape),
        "valid_fine_pixels": int(sum(np.isfinite(f).sum() for f in fine_np)),
        # what downscale() accepts without allow_out_of_range (unique_xr.downscale.ranges)
        "training_ranges": training_ranges(coarse_np, fine_np, dict(zip(names, aux_np))),
        **record,
    }
    return norm, patches, record


class DownscalerHandle(WorkerHandle):
    """A model as bytes (weights + card) with its token (a :class:`~unique_xr.models.handle.WorkerHandle`):
    pickled once into a graph, loaded once per process."""

    kind = "downscaler"

    def __init__(self, model) -> None:
        self.data = model.weights_bytes()
        self.describe = model.describe()
        self.token = model.token

    def build(self):
        from unique_xr.downscale.model import Downscaler

        return Downscaler.from_weights(self.describe, self.data)


def predict_block(
    handle: DownscalerHandle,
    coarse: np.ndarray,
    coarse_origin: tuple[int, int],
    coarse_shape: tuple[int, int],
    aux: list[np.ndarray],
    aux_origin: tuple[int, int],
    box: tuple[int, int, int, int],
    plan: TilePlan,
    *,
    factor: int,
    members: int,
    steps: int | None,
    sampler: str | None,
    seed: int,
    conserve: bool,
    device: str,
    precision: str,
    batch_size: int,
    threads: int | None = None,
    ranges: dict[str, Any] | None = None,
    allow_out_of_range: bool = False,
    prior: Sequence[np.ndarray | None] | None = None,
    doy: float | None = None,
) -> np.ndarray:
    """numpy kernel: statistics ``(S, y1 - y0, x1 - x0)`` of the members for one output box.

    ``coarse`` is a window of the coarse field starting at ``coarse_origin`` (on the fine grid when
    ``factor == 1``); ``aux`` are windows of the auxiliaries starting at ``aux_origin``. ``S`` is 1
    (mean) for one member, else 4 (mean, spread, lower, upper). With ``ranges`` (the card's
    ``training_ranges``) the windows are first checked against them (:func:`_check_ranges`).
    Scheme S3: ``prior`` is ``(fine, age, coarse or None)``, windows like the auxiliaries (None: no
    pixel has a prior) and ``doy`` the target day of year.
    """
    model = handle.get()
    y0, y1, x0, x1 = box
    if ranges is not None:
        _check_ranges(coarse, aux, ranges, [a.name for a in model.norm.aux], allow=allow_out_of_range,
                      where=f" (in the output block y {y0}:{y1}, x {x0}:{x1})")
    (wy0, wy1), (wx0, wx1) = plan.window(y0, y1, 0), plan.window(x0, x1, 1)
    h, w = plan.shape
    rows, cols = reflect_index(np.arange(wy0, wy1), h), reflect_index(np.arange(wx0, wx1), w)
    coarse = np.asarray(coarse, dtype=np.float64)
    if factor == 1:
        up = coarse[np.ix_(rows - coarse_origin[0], cols - coarse_origin[1])].astype(np.float32)
    else:
        up = upsample_bilinear(coarse, factor, rows=rows, cols=cols, origin=coarse_origin, coarse_shape=coarse_shape)
    aux_w = [np.asarray(a)[np.ix_(rows - aux_origin[0], cols - aux_origin[1])] for a in aux]
    fields_of_prior = None
    if model.norm.prior:
        fields_of_prior = window_fields(prior, doy, up.shape, rows, cols, aux_origin, coarse_shape, factor)
    cond = model.norm.conditioning(up, aux_w, fields_of_prior)
    sample = model.sampler_fn(steps=steps, sampler=sampler, device=device, precision=precision)
    with torch_threads(threads):
        residual = predict_region(sample, cond, (wy0, wx0), box, plan, members=members, seed=seed,
                                  batch_size=batch_size)
    inner = (slice(y0 - wy0, y1 - wy0), slice(x0 - wx0, x1 - wx0))
    up_box = up[inner]
    fields = model.norm.to_field(residual, model.norm.base(up, fields_of_prior)[inner])
    if conserve:
        block = block_replicate(coarse, factor, rows=np.arange(y0, y1), cols=np.arange(x0, x1), origin=coarse_origin)
        fields = conserve_mass(fields, block, factor)
    fields = np.where(np.isfinite(up_box), fields, np.nan)
    mean = fields.mean(axis=0)
    if members == 1:
        return mean[None].astype(np.float32)
    spread = fields.std(axis=0, ddof=1)
    half = interval_half_width(spread, members, model.interval)
    return np.stack([mean, spread, mean - half, mean + half]).astype(np.float32)


def _check_ranges(coarse, aux, ranges: dict[str, Any], aux_names, *, allow: bool, where: str = "") -> None:
    """The coarse field and each auxiliary against the value ranges the model was trained on."""
    check_trained_range(coarse, ranges.get("coarse"), "The coarse field", allow=allow, where=where)
    for name, values in zip(aux_names, aux):
        check_trained_range(values, (ranges.get("aux") or {}).get(name), f"Auxiliary {name!r}", allow=allow, where=where,
                            physical=physical_range(name))


def sampling_steps(steps: int | None, model) -> int:
    """``steps`` network evaluations per member, or the model's default when None; below 1 is refused."""
    if steps is None:
        return model.config.sample_steps
    if not (steps >= 1 and int(steps) == steps):
        raise DownscaleInputError(f"steps (sampling steps: network evaluations per member) must be a whole number "
                                  f">= 1; got {steps!r}. Leave it out (CLI: omit --steps) for the model's default "
                                  f"of {model.config.sample_steps}.")
    return int(steps)


def downscale(
    coarse: xr.DataArray,
    model,
    *,
    aux: Sequence[xr.DataArray] | None = None,
    factor: int | None = None,
    members: int | None = None,
    steps: int | None = None,
    sampler: str | None = None,
    seed: int = 0,
    prior: xr.Dataset | None = None,
    date: Any = None,
    tile: int | None = None,
    overlap: int | None = None,
    conserve: bool = False,
    device: str = "cpu",
    precision: str = "auto",
    chunks: int | tuple[int, int] | None = None,
    batch_size: int | None = None,
    name: str | None = None,
    resources: dict[str, Any] | None = None,
    threads: int | None = None,
    allow_out_of_range: bool = False,
) -> xr.Dataset:
    """Downscale a coarse field with a trained model, tile by tile, lazily on Dask input.

    Parameters
    ----------
    coarse
        ``(y, x)`` or ``(time, y, x)``; on the fine grid already, or nested in it by ``factor``
        (inferred from the auxiliaries' shape when they are given).
    model
        A :class:`~unique_xr.downscale.model.Downscaler` or a model folder.
    aux
        The auxiliaries the model was trained with (scheme S2), on the fine grid: a list in the
        training order, or a Dataset holding variables with the training names.
    members
        Ensemble size (default :data:`~unique_xr.downscale.config.DEFAULT_MEMBERS`). The output
        ``<name>`` is the mean of the members: the estimate with the least expected squared error.
        ``members=1`` gives one random draw instead (sharper, but further from the truth on average);
        the output's ``estimate`` attribute says which it is. With more than one member, the output
        also has ``<name>_spread`` (member standard deviation) and ``<name>_lower`` / ``<name>_upper``:
        the 90 % prediction interval of one new member, mean +- t(0.95, N-1) * spread * sqrt(1 + 1/N)
        (or the calibrated width).
    steps, sampler
        Network evaluations (>= 1) and ``"ddim"``/``"ddpm"`` (default: the model's). When the model
        folder holds a distilled sampler of ``steps`` evaluations (:func:`~unique_xr.downscale.distill`)
        and ``sampler`` is not given, that one is used.
    prior, date
        Scheme S3. ``prior``: a Dataset on the fine grid with ``fine`` (the latest clear fine value
        before the target day, NaN where none), ``age`` (days since then) and optionally ``coarse``
        (the coarse field of the prior's day at each pixel, on the fine grid; without it, or where it
        is NaN, the fine prior's own coarse-cell mean is used), each ``(y, x)`` or ``(time, y, x)``
        like ``coarse``; :func:`prior_from_history` makes it from a fine time series, lazily. None:
        no pixel has a prior (the model then relies on the coarse field, auxiliaries and day).
        ``date``: the target day of a ``(y, x)`` coarse field (a ``time`` coordinate gives it otherwise).
    seed
        Noise seed; the noise is a function of seed, member and global pixel position.
    tile, overlap
        Tile side and overlap in fine pixels (default: the model's).
    conserve
        Shift each member so its mean over every coarse cell equals the coarse value
        (needs a nested coarse grid, ``factor > 1``).
    chunks
        Output chunk ``(y, x)`` (or one side for both) in fine pixels. Default: lazy only if ``coarse``
        or ``aux`` is Dask-backed, with the auxiliaries' chunks, else 1024 (2048 on CUDA, where
        the tiles recomputed at chunk borders cost relatively more).
    batch_size
        Tiles x members per network call (default 8 on CPU, 64 on CUDA).
    resources
        Dask resource annotation of the prediction tasks, e.g. ``{"GPU": 1}`` (default when
        ``device`` is CUDA). Dask's low-level task fusion drops annotations, so compute or write
        the result under ``dask.config.set({"optimization.fuse.active": False})`` on a cluster
        whose GPU workers declare the resource.
    threads
        torch threads per task (default: 1 when lazy, since Dask runs tasks in parallel; torch's
        own default when eager).
    allow_out_of_range
        Inputs unlike the training data are refused with a :class:`DownscaleInputError`: a nesting
        factor (coarse pixel / output pixel) the model was not fitted at, and coarse or auxiliary
        values outside the card's ``training_ranges`` by more than half the larger of their span
        and magnitude (:mod:`unique_xr.downscale.ranges`; cards without ranges skip that part). True turns the
        refusal into a ``UserWarning``. The factor is checked at once; the values at once for
        in-memory input, and for lazy input per block when it is computed (the graph stays lazy;
        the error is raised by the block's task).

    Returns
    -------
    xarray.Dataset
        ``<name>`` (ensemble mean, float32) on the fine grid, plus spread and interval when
        ``members > 1``.
    """
    import dask
    import dask.array as dsa

    from unique_xr.downscale.model import Downscaler, load_downscaler, resolve_device

    if not isinstance(model, Downscaler):
        model = load_downscaler(model)
    device = resolve_device(device)
    aux = _select_aux(aux, model)
    name = name or (str(coarse.name) if coarse.name is not None else model.card.get("variable") or "field")
    members = DEFAULT_MEMBERS if members is None else members
    if members < 1:
        raise DownscaleInputError(f"members must be >= 1; got {members}.")
    if prior is not None and not model.norm.prior:
        raise DownscaleInputError(f"A prior was given but the model is scheme {model.scheme}, which does not "
                                  "condition on one: drop prior or fit scheme s3.")
    if set(coarse.dims) - {"time", "y", "x"} or not {"y", "x"} <= set(coarse.dims):
        raise DownscaleInputError(f"coarse must have dims (y, x) or (time, y, x); got {coarse.dims}.")
    timed = "time" in coarse.dims
    coarse = coarse.transpose(*(("time",) if timed else ()), "y", "x")
    cshape = (coarse.sizes["y"], coarse.sizes["x"])
    if aux:
        fshape = (aux[0].sizes["y"], aux[0].sizes["x"])
        k = infer_factor(cshape, fshape, factor)
    else:
        k = factor or 1
        fshape = (cshape[0] * k, cshape[1] * k)
    if conserve and k == 1:
        raise DownscaleInputError("conserve=True needs the coarse field on its own nested grid (factor > 1), "
                                  "so the coarse cells are known.")
    trained = model.norm.aux
    if len(aux) != len(trained):
        raise DownscaleInputError(f"The model ({model.scheme}) was trained with {len(trained)} auxiliaries "
                                  f"{[a.name for a in trained]}; got {len(aux)}.")
    steps = sampling_steps(steps, model)
    used_sampler, _ = model.sampler_for(steps, sampler)
    # inputs unlike the training data (unique_xr.downscale.ranges): the factor here, the values below
    check_factor(k, model.card, allow=allow_out_of_range)
    ranges = model.card.get("training_ranges")
    cfg = model.config
    plan = TilePlan.make(fshape, tile=tile or cfg.tile, overlap=cfg.overlap if overlap is None else overlap,
                         stride=model.stride)
    handle = DownscalerHandle(model)
    n_stats = 1 if members == 1 else 4
    lazy = chunks is not None or coarse.chunks is not None or any(a.chunks is not None for a in aux)
    batch_size = batch_size or (64 if device.startswith("cuda") else 8)
    kw = dict(factor=k, members=members, steps=steps, sampler=sampler, seed=seed, conserve=conserve,
              device=device, precision=precision, batch_size=batch_size,
              threads=threads if threads is not None or not lazy else 1)
    times = range(coarse.sizes["time"]) if timed else [None]
    aux_data = [a.transpose("y", "x").data for a in aux]
    doys, prior_data = _s3_inputs(model, coarse, timed, prior, date, fshape)

    if not lazy:
        aux_np = [np.asarray(a) for a in aux_data]
        if ranges is not None:  # in memory: the whole field at once, before any prediction
            _check_ranges(np.asarray(coarse.data), aux_np, ranges, [a.name for a in trained], allow=allow_out_of_range)
        box = (0, fshape[0], 0, fshape[1])
        prior_np = None if prior_data is None else [None if p is None else np.asarray(p) for p in prior_data]
        blocks = [predict_block(handle, np.asarray(coarse.data if t is None else coarse.data[t]), (0, 0), cshape,
                                aux_np, (0, 0), box, plan, doy=doys[i],
                                prior=None if prior_np is None else [None if p is None else (p if t is None else p[t])
                                                                     for p in prior_np], **kw)
                  for i, t in enumerate(times)]
        data = np.stack(blocks, axis=1)
    else:
        if isinstance(chunks, int):
            sides = (chunks, chunks)
        elif chunks is not None:
            sides = tuple(chunks)
        elif aux and aux[0].chunks:
            sides = (aux[0].chunksizes["y"][0], aux[0].chunksizes["x"][0])
        else:
            sides = (2048, 2048) if device.startswith("cuda") else (1024, 1024)
        # blocks hold whole coarse cells and at least the halo their tiles read (unique_xr.downscale.blockwise)
        depth = halo(plan.tile, k)
        sides = tuple(max(k, -(-side // k) * k, depth) for side in sides)
        resources = resources or ({"GPU": 1} if device.startswith("cuda") else None)
        if ranges is not None:  # lazy: each block checks the windows it reads when it runs
            kw.update(ranges=ranges, allow_out_of_range=allow_out_of_range)
        cdata = coarse.data if timed else coarse.data[None]
        cdata = (cdata if dask.is_dask_collection(cdata) else dsa.from_array(np.asarray(cdata))).rechunk({0: 1})
        adata = [a if dask.is_dask_collection(a) else dsa.from_array(np.asarray(a)) for a in aux_data]
        whole = (0, fshape[0], 0, fshape[1])
        pdata = None
        if prior_data is not None:
            pdata = [None if p is None else (p if dask.is_dask_collection(p) else dsa.from_array(np.asarray(p)))
                     for p in prior_data]
            pdata = [None if p is None else (p if timed else p[None]) for p in pdata]
        data = downscale_window(cdata, adata, handle, plan=plan, factor=k, coarse_shape=cshape, window=whole,
                                box=whole, chunk=sides, n_stats=n_stats, resources=resources,
                                doys=doys if model.norm.prior else None, prior=pdata,
                                **{key: v for key, v in kw.items() if key != "factor"})
    out = _as_dataset(data, coarse, aux, name, fshape, k, timed, members, model)
    out.attrs.update({"downscaling_sampler": used_sampler, "downscaling_steps": steps})
    if model.norm.prior:
        out.attrs["downscaling_prior"] = ("the latest clear fine observation before each day (scheme s3)"
                                          if prior is not None else "none: no pixel had a prior (scheme s3)")
    return out


def _s3_inputs(model, coarse: xr.DataArray, timed: bool, prior, date, fshape):
    """Day of year per time step and the prior's ``[fine, age, coarse or None]`` arrays ``(t, y, x)`` / ``(y, x)``."""
    if not model.norm.prior:
        return [None] * (coarse.sizes["time"] if timed else 1), None
    if timed:
        when = coarse["time"].values
    elif date is not None:
        when = [date]
    elif "time" in coarse.coords and coarse["time"].size == 1:
        when = [coarse["time"].values.reshape(-1)[0]]
    else:
        raise DownscaleInputError("A scheme-s3 model conditions on the day of year: pass date='YYYY-MM-DD' for a "
                                  "(y, x) coarse field (CLI: --date), or give coarse a time coordinate.")
    doys = [float(v) for v in day_numbers(when)[1]]
    if prior is None:
        return doys, None
    if isinstance(prior, xr.DataArray) or not all(v in prior for v in ("fine", "age")):
        raise DownscaleInputError("prior must be a Dataset with 'fine' (latest clear fine value before the day) and "
                                  "'age' (days since), optionally 'coarse'; prior_from_history(history, days) makes one.")
    dims = ("time", "y", "x") if timed else ("y", "x")
    arrays = []
    for v in ("fine", "age", "coarse"):
        if v not in prior:
            arrays.append(None)
            continue
        da = prior[v]
        if set(da.dims) != set(dims):
            raise DownscaleInputError(f"prior[{v!r}] has dims {da.dims}; expected {dims} like the coarse field.")
        da = da.transpose(*dims)
        if da.shape[-2:] != tuple(fshape):
            raise DownscaleInputError(f"prior[{v!r}] is {da.shape[-2:]} px, the fine grid {tuple(fshape)}: "
                                      "the prior must be on the fine grid.")
        if timed and da.sizes["time"] != coarse.sizes["time"]:
            raise DownscaleInputError(f"prior[{v!r}] has {da.sizes['time']} times, the coarse field "
                                      f"{coarse.sizes['time']}: give one prior per day (prior_from_history).")
        arrays.append(da.data)
    return doys, arrays


def prior_from_history(history: xr.DataArray, days, *, coarse: xr.DataArray | None = None,
                       max_age: float | None = None) -> xr.Dataset:
    """The S3 prior of each of ``days`` from a fine time series: per pixel the latest clear value before the day.

    Parameters
    ----------
    history
        ``(time, y, x)`` fine observations (e.g. GPP_L on Landsat days), NaN where not clear.
    days
        The target days (e.g. the coarse field's ``time``).
    coarse
        Optional ``(time, y, x)`` coarse field on the fine grid at the same times as ``history``;
        then the prior's ``coarse`` is the observed one of the prior's day.
    max_age
        Observations more than this many days before a day are not its prior (so a day's prior does
        not depend on how far back the history given happens to reach).

    Returns
    -------
    xarray.Dataset
        ``fine``, ``age`` (days) and, with ``coarse``, ``coarse``: ``(time, y, x)`` over ``days``,
        lazy when ``history`` is (one :func:`~unique_xr.features.combine.latest_valid` per day over
        the observations before it).
    """
    from unique_xr.features.combine import latest_valid

    history = history.sortby("time")
    hist_days = history["time"].values.astype("datetime64[D]")
    targets = np.asarray(days).astype("datetime64[D]")
    fine, age, prior_coarse = [], [], []
    for day in targets:
        recent = hist_days >= day - np.timedelta64(int(max_age), "D") if max_age is not None else True
        before = np.flatnonzero((hist_days < day) & recent)
        if before.size == 0:
            empty = xr.full_like(history.isel(time=0, drop=True), np.nan, dtype=np.float32)
            fine.append(empty), age.append(empty), prior_coarse.append(empty)
            continue
        h = history.isel(time=before)
        fine.append(latest_valid(h))
        stamp = xr.DataArray((day - hist_days[before]).astype(np.float32), dims="time")
        age.append(latest_valid(h.notnull().where(h.notnull()) * stamp))
        if coarse is not None:
            prior_coarse.append(latest_valid(coarse.isel(time=before).where(h.notnull())))
    out = {"fine": xr.concat(fine, "time"), "age": xr.concat(age, "time")}
    if coarse is not None:
        out["coarse"] = xr.concat(prior_coarse, "time")
    return xr.Dataset(out).assign_coords(time=np.asarray(days))


def _select_aux(aux, model) -> list[xr.DataArray]:
    """Auxiliaries as a list in training order (a Dataset is indexed by the names in the model card)."""
    if not isinstance(aux, xr.Dataset):
        return _as_list(aux)
    names = [a.name for a in model.norm.aux]
    missing = [n for n in names if n not in aux]
    if missing:
        raise DownscaleInputError(f"The auxiliary Dataset lacks {missing}, which the model was trained with "
                                  f"(it has {sorted(map(str, aux.data_vars))}); rename or add them.")
    return [aux[n] for n in names]


def _fine_coords(coarse: xr.DataArray, aux: list[xr.DataArray], fshape, k: int) -> dict[str, Any]:
    if aux:
        return {"y": aux[0]["y"].values, "x": aux[0]["x"].values} if "x" in aux[0].coords else {}
    if "x" not in coarse.coords or "y" not in coarse.coords:
        return {}
    out = {}
    for dim in ("y", "x"):
        c = coarse[dim].values.astype(np.float64)
        if k == 1:
            out[dim] = c
            continue
        step = (c[1] - c[0]) if c.size > 1 else 1.0
        edge = c[0] - step / 2
        out[dim] = edge + (np.arange(fshape[0 if dim == "y" else 1]) + 0.5) * step / k
    return out


def _as_dataset(data, coarse, aux, name, fshape, k, timed, members, model) -> xr.Dataset:
    coords = _fine_coords(coarse, aux, fshape, k)
    dims = ("time", "y", "x") if timed else ("y", "x")
    if timed:
        coords["time"] = coarse["time"].values
    else:
        data = data[:, 0]
    names = [name] if members == 1 else [name, f"{name}_spread", f"{name}_lower", f"{name}_upper"]
    units = coarse.attrs.get("units")
    estimate = (f"mean of {members} members: the estimate with the least expected error" if members > 1 else
                "one random member (members=1): a sample, not the best estimate; ask for members > 1 for the mean")
    descriptions = {name: ("ensemble mean of the diffusion downscaling" if members > 1
                           else "one sample of the diffusion downscaling"),
                    f"{name}_spread": "standard deviation of the ensemble members",
                    f"{name}_lower": "lower bound of the 90 % prediction interval",
                    f"{name}_upper": "upper bound of the 90 % prediction interval"}
    out = xr.Dataset({n: (dims, data[i]) for i, n in enumerate(names)}, coords=coords)
    for n in names:
        out[n].attrs = {"long_name": descriptions[n], **({"units": units} if units else {}), "model_token": model.token}
    if members > 1:
        how = (f"mean +- {model.interval['scale']:.3f} x spread (calibrated on held-out pairs)" if model.interval
               else "mean +- t(0.95, members - 1) x spread x sqrt(1 + 1/members)")
        for n in (f"{name}_lower", f"{name}_upper"):
            out[n].attrs["interval"] = how
    for extra in ("spatial_ref",):
        src = aux[0] if aux else coarse
        if extra in src.coords:
            out = out.assign_coords({extra: src[extra]})
            for n in names:
                out[n].attrs["grid_mapping"] = extra
    out[name].attrs["estimate"] = estimate
    out.attrs.update({"downscaling_scheme": model.scheme, "downscaling_members": members,
                      "downscaling_estimate": estimate,
                      "downscaling_factor": k, "model_token": model.token})
    return out
