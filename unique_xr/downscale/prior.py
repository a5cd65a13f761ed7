"""Scheme S3's prior: the most recent clear fine observation before the target day, per pixel (numpy only).

Spatiotemporal fusion (STARFM and its successors) predicts a fine image from the nearest clear fine
image and the coarse change since then. Scheme S3 gives the diffusion model the same information as
conditioning (:class:`~unique_xr.downscale.conditioning.PriorFields`): per pixel the latest clear
fine value before the target day, the coarse field of that day at the pixel and the age in days.

* :func:`composite`: from dated fine images, per pixel the latest valid value before a day and which
  image it came from (a cloudy pixel on the last date takes the one before, and so on).
* :func:`cell_mean_on_fine`: the coarse field *implied* by a fine image (its NaN-aware mean over each
  coarse cell, interpolated bilinearly between cell centres like the coarse field itself), for a
  prior whose coarse image of the same day is not at hand.
* :func:`prior_fields`: the two together, as the model's input.

* :func:`training_priors` / :func:`prior_patches`: the priors of training pairs (from their earlier
  pairs and history images of the same place) and, per patch, the variant the network is shown.
* :func:`fit_prior_gain`: the weight of the prior's detail in the fusion base the network corrects.
* :func:`window_fields`: the prior of a prediction window (the kernel of a lazy prediction).

The xarray side (a lazy prior for every day of a cube) is
:func:`unique_xr.downscale.api.prior_from_history`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from unique_xr.downscale.conditioning import DownscaleInputError, Normalisation, PriorFields, upsample_bilinear

__all__ = ["GAIN_DECAYS", "MIN_CELL_VALID", "cell_mean_on_fine", "composite", "day_numbers", "fit_prior_gain",
           "no_prior", "prior_fields", "prior_gain_from_stack", "prior_patches", "stack_has_prior", "training_priors",
           "window_fields"]

#: A coarse cell's mean of a fine prior is used when at least this share of its pixels is clear.
MIN_CELL_VALID = 0.25


def composite(fines: Sequence[np.ndarray], days: Sequence[float], target: float) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the latest valid fine value strictly before ``target`` and the index of its image.

    Parameters
    ----------
    fines
        ``(H, W)`` images, NaN where not clear.
    days
        Their days (any numeric day count, e.g. days since 1970), one per image, in any order.
    target
        The day to predict; images on that day or later are ignored.

    Returns
    -------
    (fine, index)
        ``fine`` (NaN: no prior) and ``index`` (-1: no prior), both ``(H, W)``.

    Examples
    --------
    >>> a, b = np.array([[1.0, 2.0]]), np.array([[np.nan, 5.0]])
    >>> composite([a, b], [10, 20], 30)
    (array([[1., 5.]]), array([[0, 1]]))
    """
    if len(fines) != len(days):
        raise DownscaleInputError(f"composite needs one day per fine image; got {len(fines)} images, {len(days)} days.")
    shape = np.shape(fines[0]) if len(fines) else (0, 0)
    fine = np.full(shape, np.nan)
    index = np.full(shape, -1, dtype=np.int64)
    for i in sorted((i for i in range(len(fines)) if days[i] < target), key=lambda i: days[i]):
        ok = np.isfinite(fines[i])
        fine[ok] = np.asarray(fines[i], dtype=np.float64)[ok]
        index[ok] = i
    return fine, index


def cell_mean_on_fine(fine: np.ndarray, factor: int, *, origin: tuple[int, int] = (0, 0), rows=None, cols=None,
                      coarse_shape: tuple[int, int] | None = None) -> np.ndarray:
    """The coarse field a fine image implies: its mean over each coarse cell, bilinear between cell centres.

    ``fine`` is a window of the fine grid starting at fine pixel ``origin`` (a multiple of
    ``factor``, as the blocks of a lazy prediction are), covering whole cells; ``rows``/``cols``
    are the global fine pixels wanted (default: the window) and ``coarse_shape`` the whole
    region's coarse shape. Cells with less than :data:`MIN_CELL_VALID` clear pixels are NaN.

    Examples
    --------
    >>> f = np.array([[1.0, 3.0, 5.0, 5.0], [1.0, 3.0, 5.0, np.nan]])
    >>> cell_mean_on_fine(f, 2)
    array([[2.  , 2.75, 4.25, 5.  ],
           [2.  , 2.75, 4.25, 5.  ]], dtype=float32)
    """
    k = int(factor)
    if k < 2:
        raise DownscaleInputError("A fine prior's coarse-cell mean needs a nested coarse grid (factor >= 2); with the "
                                  "coarse field on the fine grid, give the prior's coarse image (--prior-coarse).")
    if origin[0] % k or origin[1] % k:
        raise DownscaleInputError(f"The fine window starts at {origin}, not on a coarse cell edge (factor {k}).")
    h, w = np.shape(fine)
    ch, cw = -(-h // k), -(-w // k)
    padded = np.full((ch * k, cw * k), np.nan)
    padded[:h, :w] = fine
    cells = padded.reshape(ch, k, cw, k)
    clear = np.isfinite(cells).mean(axis=(1, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells
        means = np.nanmean(cells, axis=(1, 3))
    means[clear < MIN_CELL_VALID] = np.nan
    rows = np.arange(origin[0], origin[0] + h) if rows is None else rows
    cols = np.arange(origin[1], origin[1] + w) if cols is None else cols
    if not np.isfinite(means).any():
        return np.full((len(rows), len(cols)), np.nan, dtype=np.float32)
    corigin = (origin[0] // k, origin[1] // k)
    return upsample_bilinear(means, k, rows=rows, cols=cols, origin=corigin,
                             coarse_shape=coarse_shape or (corigin[0] + ch, corigin[1] + cw))


def no_prior(shape: tuple[int, ...], doy: float) -> PriorFields:
    """A prior with no pixel: S3 then conditions on the coarse field, the auxiliaries and the day only."""
    empty = np.full(shape, np.nan)
    return PriorFields(fine=empty, coarse=empty, age=empty, observed=0.0, doy=doy)


def prior_fields(fines: Sequence[np.ndarray], days: Sequence[float], target: float, *, doy: float,
                 coarse_up: Sequence[np.ndarray] | None = None, factor: int | None = None) -> PriorFields:
    """The S3 prior for ``target`` from dated fine images (and their coarse fields on the fine grid).

    With ``coarse_up`` (one per fine image) the prior's coarse field is the observed one of its day;
    without, the fine prior's own cell mean (:func:`cell_mean_on_fine`, needs ``factor``).
    """
    fine, index = composite(fines, days, target)
    age = np.where(index >= 0, target - np.asarray(days, dtype=np.float64)[np.maximum(index, 0)], np.nan)
    if coarse_up is not None:
        source, observed = coarse_up, 1.0
    else:
        source, observed = [cell_mean_on_fine(f, factor) for f in fines], 0.0
    coarse = np.full(fine.shape, np.nan)
    for i, c in enumerate(source):
        sel = index == i
        coarse[sel] = np.asarray(c, dtype=np.float64)[sel]
    return PriorFields(fine=fine, coarse=coarse, age=age, observed=observed, doy=doy)


def day_numbers(dates: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Days since 1970-01-01 and day of year (1-366) of each date."""
    try:
        d = np.array([np.datetime64(v, "D") for v in dates])
    except (TypeError, ValueError) as err:
        raise DownscaleInputError(f"dates must be days such as '2015-08-27'; got {list(dates)!r} ({err}).") from err
    days = d.astype(np.int64).astype(np.float64)
    doys = (d - d.astype("datetime64[Y]")).astype(np.int64).astype(np.float64) + 1
    return days, doys


#: Raw prior channels carried through patch cutting before the variant of each patch is chosen.
_RAW_PRIOR = ("coarse_up", "prior_fine", "prior_coarse_observed", "prior_coarse_mean", "age", "doy")


def training_priors(fine_np, coarse_up, days, doys, k: int, groups=None, extra=((), (), ())) -> np.ndarray:
    """``(pairs, 6, H, W)``: each pair's coarse field and its prior (:data:`_RAW_PRIOR`) from the earlier images.

    The prior's sources are the pairs and the ``extra`` ``(fines, days, groups)`` history images (no coarse).
    """
    groups = list(groups) if groups is not None else [0] * len(fine_np)
    sources = [*fine_np, *extra[0]]
    source_days = [*days, *extra[1]]
    source_groups = [*groups, *(extra[2] if len(extra[2]) else [0] * len(extra[0]))]
    source_up = [*coarse_up, *(np.full(f.shape, np.nan) for f in extra[0])]
    means = [cell_mean_on_fine(f, k) if k > 1 else np.full(f.shape, np.nan) for f in sources]
    out = []
    for i, up in enumerate(coarse_up):
        # other places' images are never a prior: their day is moved past every target
        place = [d if g == groups[i] else np.inf for d, g in zip(source_days, source_groups)]
        fine, index = composite(sources, place, days[i])
        has = index >= 0
        obs, mean = np.full(fine.shape, np.nan), np.full(fine.shape, np.nan)
        for j in np.unique(index[has]):
            sel = index == j
            obs[sel], mean[sel] = source_up[j][sel], means[j][sel]
        age = np.where(has, days[i] - np.asarray(source_days)[np.maximum(index, 0)], np.nan)
        out.append(np.stack([up, fine, obs, mean, age, np.full(fine.shape, doys[i])]))
    return np.stack(out).astype(np.float32)


#: Decay lengths (days) tried by :func:`fit_prior_gain`; ``inf``: the weight does not fall with age.
GAIN_DECAYS = (8.0, 16.0, 32.0, 64.0, 128.0, 256.0, float("inf"))


def fit_prior_gain(change: np.ndarray, detail: np.ndarray, age: np.ndarray) -> tuple[float, float]:
    """``(weight, decay)`` of the S3 fusion base, by least squares over pixels with a prior.

    Fits ``change ~ weight * exp(-age / decay) * detail`` where ``change`` is the fine value minus
    the upsampled coarse field of the target day and ``detail`` the prior's fine value minus its
    coarse field (``detail`` NaN or ``age`` NaN: no prior). ``weight`` is clipped to [0, 1] and
    ``decay`` taken from :data:`GAIN_DECAYS`. Without any pixel with a prior: ``(0.0, inf)``.

    Examples
    --------
    >>> d = np.array([1.0, -2.0, 3.0]); age = np.array([10.0, 10.0, 10.0])
    >>> fit_prior_gain(0.5 * d, d, age)
    (0.5, inf)
    """
    y, x, a = (np.ravel(np.asarray(v, dtype=np.float64)) for v in (change, detail, age))
    ok = np.isfinite(y) & np.isfinite(x) & np.isfinite(a) & (x != 0)
    y, x, a = y[ok], x[ok], a[ok]
    best = (0.0, float("inf"), float(np.sum(y * y)))
    for decay in reversed(GAIN_DECAYS):  # no decay first: a decay is chosen only where it fits better
        g = x * np.exp(-np.clip(a, 0, None) / decay)
        gg = float(np.sum(g * g))
        if gg == 0:
            continue
        weight = float(np.clip(np.sum(y * g) / gg, 0.0, 1.0))
        sse = float(np.sum((y - weight * g) ** 2))
        if sse < best[2] - 1e-12 * max(best[2], 1.0):
            best = (weight, decay, sse)
    return round(best[0], 6), best[1]


def prior_gain_from_stack(stack: np.ndarray, residual_std: float) -> tuple[float, float]:
    """:func:`fit_prior_gain` on :func:`training_priors`' whole-image stack (target first, raw prior last)."""
    _, fine, obs, mean, age, _ = _raw_channels(stack)
    coarse = np.where(np.isfinite(obs), obs, mean)
    return fit_prior_gain(stack[:, 0].astype(np.float64) * residual_std, fine - coarse, age)


def stack_has_prior(stack: np.ndarray) -> bool:
    """Whether any pixel of :func:`training_priors`' stack (raw prior channels last) has a prior."""
    return bool(np.isfinite(stack[:, _RAW_PRIOR.index("prior_fine") - len(_RAW_PRIOR)]).any())


def _raw_channels(stack: np.ndarray) -> tuple[np.ndarray, ...]:
    """The :data:`_RAW_PRIOR` channels (last in a stack of pairs or patches), float64, in that order."""
    n_raw = len(_RAW_PRIOR)
    return tuple(stack[:, i - n_raw].astype(np.float64) for i in range(n_raw))


def prior_patches(patches: np.ndarray, norm: Normalisation, *, dropout: float, seed: int, nested: bool) -> np.ndarray:
    """Patches with raw prior channels -> the network's S3 channels, a prior variant drawn per patch.

    A share ``dropout`` of the patches loses its prior; of the rest, half see the observed coarse
    field of the prior's day and half the fine prior's own cell mean (when the grid is nested).
    The target (first channel, ``fine - coarse`` standardised) becomes the residual over the
    fusion base of the variant drawn (:meth:`Normalisation.base`).
    """
    head = patches[:, :-len(_RAW_PRIOR)]
    up, fine, obs, mean, age, doy = _raw_channels(patches)
    u = np.random.default_rng(seed).random(len(patches))[:, None, None]
    use_mean = (((u >= dropout + (1 - dropout) / 2) & nested) | ~np.isfinite(obs)) & np.isfinite(mean)
    coarse = np.where(use_mean, mean, obs)
    fine = np.where(u < dropout, np.nan, fine)
    prior = PriorFields(fine=fine, coarse=coarse, age=age, observed=np.where(use_mean, 0.0, 1.0), doy=doy)
    channels = prior.channels(norm, up).transpose(1, 0, 2, 3)
    head = head.copy()
    head[:, 0] -= (norm.base(up, prior) - up.astype(np.float32)) / np.float32(norm.residual_std)
    return np.concatenate([head, channels], axis=1).astype(np.float32)


def window_fields(prior, doy, shape, rows, cols, origin, coarse_shape, factor):
    """:class:`PriorFields` of the tiles' window from the prior's arrays over the block's input window."""
    if doy is None or not np.isfinite(doy):
        raise DownscaleInputError("A scheme-s3 model needs the target day (date=..., or a time coordinate).")
    if prior is None:
        return no_prior(shape, doy)
    fine, age, coarse = prior
    take = np.ix_(rows - origin[0], cols - origin[1])
    fine_w = np.asarray(fine, dtype=np.float64)[take]
    observed = np.zeros(shape)
    if coarse is not None:
        coarse_w = np.asarray(coarse, dtype=np.float64)[take]
        observed = np.isfinite(coarse_w).astype(np.float64)
    if coarse is None or (factor > 1 and not observed.all()):
        implied = cell_mean_on_fine(np.asarray(fine, dtype=np.float64), factor, origin=origin, rows=rows, cols=cols,
                                    coarse_shape=coarse_shape)
        coarse_w = implied if coarse is None else np.where(observed > 0, coarse_w, implied)
    return PriorFields(fine=fine_w, coarse=coarse_w, age=np.asarray(age, dtype=np.float64)[take], observed=observed,
                       doy=doy)
