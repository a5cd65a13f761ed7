r"""Calibrating the ensemble's prediction interval on pairs the model was not trained on.

The spread of a diffusion ensemble says how much fine-scale detail the model is unsure of; it does
not know how wrong the coarse input itself is (a 16-day composite against one clear day, a coarse
pixel that misses a field). On real pairs the Student-t interval of
:func:`unique_xr.downscale.api.interval_half_width` therefore covers less than it promises.
:func:`calibrate` measures that on held-out pairs, split-conformal style: with the score
:math:`s = |y - \bar y| / \sigma` of every clear pixel (truth :math:`y`, ensemble mean
:math:`\bar y`, spread :math:`\sigma`), the scale is the :math:`\lceil (n + 1)\,0.9 \rceil`-th
smallest score, and the interval becomes :math:`\bar y \pm q\,\sigma`. The pixels of one image are
not exchangeable with those of another date, so this is an empirical calibration: it holds as far
as the calibration dates resemble the dates predicted later (check it on a further held-out date,
as ``docs/downscale.md`` does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from unique_xr.downscale.conditioning import DownscaleInputError

__all__ = ["LEVEL", "MIN_PIXELS", "calibrate", "conformal_scale"]

#: The interval the package reports (90 %).
LEVEL = 0.9
#: Fewest clear calibration pixels accepted.
MIN_PIXELS = 100


def conformal_scale(mean: Any, spread: Any, truth: Any, *, level: float = LEVEL) -> tuple[float, int]:
    """The spread multiplier whose interval ``mean +- q * spread`` holds ``level`` of the truth pixels.

    Pixels where any of the three is missing, or the spread is 0, are left out. Returns
    ``(q, pixels used)``.

    >>> truth = np.arange(1, 11, dtype=float)   # |error| / spread = 1, 2, ..., 10
    >>> conformal_scale(np.zeros(10), np.ones(10), truth)
    (10.0, 10)
    >>> conformal_scale(np.zeros(10), np.ones(10), truth, level=0.5)
    (6.0, 10)
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level}.")
    mean, spread, truth = (np.asarray(a, dtype=np.float64).ravel() for a in (mean, spread, truth))
    if not mean.shape == spread.shape == truth.shape:
        raise DownscaleInputError(f"mean, spread and truth must have one shape; got {mean.shape}, {spread.shape}, "
                                  f"{truth.shape}.")
    ok = np.isfinite(mean) & np.isfinite(spread) & np.isfinite(truth) & (spread > 0)
    n = int(ok.sum())
    if n == 0:
        raise DownscaleInputError("No pixel has a truth, an ensemble mean and a positive spread together: "
                                  "calibration needs clear fine pixels and more than one member.")
    scores = np.sort(np.abs(truth[ok] - mean[ok]) / spread[ok])
    rank = min(n, math.ceil((n + 1) * level))
    return float(scores[rank - 1]), n


def calibrate(model, coarse: Sequence[xr.DataArray], fine: Sequence[xr.DataArray], *,
              aux: Sequence[xr.DataArray] | xr.Dataset | None = None, factor: int | None = None, members: int = 8,
              steps: int | None = None, sampler: str | None = None, seed: int = 0, level: float = LEVEL,
              device: str = "cpu", out=None, allow_out_of_range: bool = False,
              priors: Sequence[xr.Dataset | None] | None = None, dates: Sequence[Any] | None = None, **kwargs: Any):
    """Calibrate ``model``'s 90 % interval on coarse/fine pairs it was **not** trained on.

    Each coarse image is downscaled with ``members`` members (as :func:`unique_xr.downscale.downscale`,
    which gets ``aux``, ``factor``, ``steps``, ``sampler``, ``seed``, ``device`` and ``kwargs``), the
    scores of all clear pixels of all pairs are pooled, and the scale :func:`conformal_scale` finds is
    stored in ``model.interval``; later predictions with more than one member use
    ``mean +- scale * spread``. Use the member count, sampler and steps you will predict with: the
    spread depends on them. With ``out`` the calibrated model folder is written there (its token
    changes: the intervals do). ``steps`` must be >= 1 (None: the model's). Inputs unlike the training
    data are refused as by :func:`~unique_xr.downscale.downscale`; ``allow_out_of_range=True`` turns
    that into a warning. Scheme S3: ``priors`` and ``dates`` give each pair's prior and day (see
    :func:`~unique_xr.downscale.downscale`).

    Returns the model, calibrated (the same object). ``model.interval`` records the scale, the pixels,
    the settings and the coverage of the Student-t interval before calibration.
    """
    from unique_xr.downscale.api import downscale, interval_half_width, sampling_steps

    coarse, fine = list(coarse), list(fine)
    if not coarse or len(coarse) != len(fine):
        raise DownscaleInputError(f"calibrate pairs coarse i with fine i: got {len(coarse)} coarse and {len(fine)} "
                                  "fine images (at least one pair).")
    if members < 2:
        raise DownscaleInputError(f"An interval needs an ensemble: members must be at least 2, got {members}.")
    steps_used = sampling_steps(steps, model)  # refuses 0 and negatives before the model is touched
    model.interval = None  # calibrate the Student-t interval, not an earlier calibration
    means, spreads, truths = [], [], []
    priors = list(priors) if priors is not None else [None] * len(coarse)
    dates = list(dates) if dates is not None else [None] * len(coarse)
    if len(priors) != len(coarse) or len(dates) != len(coarse):
        raise DownscaleInputError(f"calibrate needs one prior and one date per pair; got {len(priors)} priors and "
                                  f"{len(dates)} dates for {len(coarse)} pairs.")
    for c, f, prior, date in zip(coarse, fine, priors, dates):
        ds = downscale(c, model, aux=aux, factor=factor, members=members, steps=steps, sampler=sampler, seed=seed,
                       device=device, name="calibration", allow_out_of_range=allow_out_of_range, prior=prior,
                       date=date, **kwargs)
        truth = np.asarray(f.values, dtype=np.float64)
        if truth.shape != ds["calibration"].shape:
            raise DownscaleInputError(f"The fine image has {truth.shape} px but the prediction {ds['calibration'].shape}: "
                                      "give each fine image on the prediction's grid.")
        means.append(ds["calibration"].values.ravel())
        spreads.append(ds["calibration_spread"].values.ravel())
        truths.append(truth.ravel())
    mean, spread, truth = np.concatenate(means), np.concatenate(spreads), np.concatenate(truths)
    scale, n = conformal_scale(mean, spread, truth, level=level)
    if n < MIN_PIXELS:
        raise DownscaleInputError(f"Only {n} clear calibration pixels (at least {MIN_PIXELS} needed); add pairs "
                                  "or clearer images.")
    ok = np.isfinite(mean) & np.isfinite(spread) & np.isfinite(truth) & (spread > 0)
    before = float(np.mean(np.abs(truth[ok] - mean[ok]) <= interval_half_width(spread[ok], members)))
    model.interval = {"scale": round(scale, 6), "level": level, "pixels": n, "pairs": len(coarse),
                      "members": members, "steps": steps_used,
                      "sampler": sampler or model.config.sampler, "seed": seed,
                      "coverage_uncalibrated": round(before, 4)}
    if out is not None:
        model.save(out)
    return model
