r"""Classic spatiotemporal-fusion baselines: a coarse image of today and one earlier fine/coarse pair.

A deep downscaler that sees an earlier fine image (scheme S3's prior) has to beat what
remote-sensing fusion has done for years with the same inputs. Both functions here take three
2-D images on the **fine** grid, the coarse ones already resampled onto it, NaN marking missing
pixels: ``coarse_today`` (:math:`C_0`), and the prior pair ``prior_fine`` (:math:`F_k`) and
``prior_coarse`` (:math:`C_k`) of an earlier date. They know nothing of xarray or Dask.

:func:`naive_fusion` adds the coarse change since the prior date to the prior fine image,

.. math::

    \hat F_0 = F_k + (C_0 - C_k),

and returns :math:`C_0` where there is no prior.

:func:`starfm` is the Spatial and Temporal Adaptive Reflectance Fusion Model of Gao, Masek,
Schwaller & Hall (2006), "On the blending of the Landsat and MODIS surface reflectance:
predicting daily Landsat surface reflectance", *IEEE Transactions on Geoscience and Remote
Sensing* 44(8), 2207-2218, doi:10.1109/TGRS.2006.872081, with one input pair. Each fine pixel
is predicted as a weighted mean of the naive predictions of *spectrally similar* pixels in a
``window x window`` square around it (eq. 5 of the paper, one pair):

.. math::

    \hat F_0(c) = \sum_{p} W_p \,\bigl(F_k(p) + C_0(p) - C_k(p)\bigr),
    \qquad W_p = \frac{1 / C_p}{\sum_q 1 / C_q},
    \qquad C_p = S_p \, T_p \, D_p,

with the spectral difference :math:`S_p = |F_k(p) - C_k(p)|` (eq. 6), the temporal difference
:math:`T_p = |C_k(p) - C_0(p)|` (eq. 7) and the relative distance :math:`D_p = 1 + d_p / A`
(eqs. 8-9), :math:`d_p` the distance in fine pixels from the central pixel :math:`c`.

A pixel :math:`p` of the window enters the sum when all three of its images are valid and

* it is spectrally similar to the centre: :math:`|F_k(p) - F_k(c)| \le 2\,\sigma(F_k) / m`,
  with :math:`\sigma(F_k)` the standard deviation of the whole prior fine image and :math:`m`
  the estimated number of land-cover classes (``n_classes``);
* it is no worse than the centre, up to the uncertainties :math:`\sigma_f` of the fine and
  :math:`\sigma_c` of the coarse images (eqs. 15-16 of the paper, which asks for both):
  :math:`S_p \le S_c + \sqrt{\sigma_f^2 + \sigma_c^2}` and
  :math:`T_p \le T_c + \sqrt{2}\,\sigma_c`.

Ties are accepted, so the central pixel is always a candidate of its own window. Special cases
(section II of the paper): where the central pixel has :math:`T_c = 0` (no coarse change) the
prediction is :math:`F_k(c)`, where it has :math:`S_c = 0` it is :math:`C_0(c)`, i.e. the
centre's own naive prediction in both cases. Candidates with :math:`C_p = 0` would take an
infinite weight: when there are any, the prediction is the plain mean of their naive
predictions (the limit of :math:`1/(C_p + \varepsilon)` as :math:`\varepsilon \to 0`). A pixel
without a valid candidate gets its naive prediction, one without a prior (non-finite
:math:`F_k` or :math:`C_k`) gets :math:`C_0`, and one without :math:`C_0` stays NaN. The
window is cut at the image edges.

This is the paper's algorithm, not its reference C implementation (StarFM v1.x), which differs
in ways documented by the ImageFusion library (Kaufmann et al.): it weights with
:math:`(S+1)(T+1)D`, accepts candidates passing *either* filter, and with one pair drops
:math:`T` from the weight.

Defaults of :func:`starfm` and where they come from:

* ``window=51`` fine pixels: the reference implementation's ``MAX_SEARCH_DISTANCE = 750`` m at
  Landsat's 30 m, i.e. 25 pixels each side of the centre (a 1500 m window, three MODIS 500 m
  pixels); 51 is also the default of the ImageFusion STARFM implementation.
* ``distance_scale`` :math:`A` = half the window, ``(window - 1) / 2`` fine pixels (25 for 51),
  so :math:`D` runs from 1 at the centre to 2 at the middle of the window's edge. The paper
  only calls :math:`A` "a constant that defines the relative importance of spatial distance";
  the reference and ImageFusion implementations scale by half the window.
* ``n_classes=4``, the estimated number of land-cover classes :math:`m` in the similarity
  threshold :math:`2\sigma/m`.
* ``fine_uncertainty = coarse_uncertainty = 0.005``: the reference implementation's shipped
  parameter files use ``LANDSAT_UNCERTAINTY = MODIS_UNCERTAINTY = 50`` with
  ``SCALE_FACTOR = 10000``, i.e. 0.005 reflectance. They are in the units of the images: for
  NDVI keep about 0.005-0.01, for GPP in gC m-2 d-1 use the product's noise level (0.1-0.3, say).

Examples
--------
>>> import numpy as np
>>> from unique_xr.downscale.fusion import naive_fusion, starfm
>>> prior_fine = np.array([[0.2, 0.4, np.nan]])
>>> prior_coarse = np.array([[0.3, 0.3, 0.3]])
>>> coarse_today = np.array([[0.5, 0.5, 0.5]])
>>> naive_fusion(coarse_today, prior_fine, prior_coarse)
array([[0.4, 0.6, 0.5]], dtype=float32)
>>> starfm(coarse_today, prior_fine, prior_coarse, window=3)
array([[0.4, 0.6, 0.5]], dtype=float32)
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np

from unique_xr.errors import SpecError

__all__ = ["naive_fusion", "starfm"]

#: Defaults of :func:`starfm`; see the module docstring for their sources.
STARFM_WINDOW = 51
STARFM_CLASSES = 4
STARFM_FINE_UNCERTAINTY = 0.005
STARFM_COARSE_UNCERTAINTY = 0.005

#: Rows of the image processed at a time by the window loop (keeps the work arrays in cache).
_ROW_BLOCK = 48


def _images(coarse_today: Any, prior_fine: Any, prior_coarse: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    named = {"coarse_today": coarse_today, "prior_fine": prior_fine, "prior_coarse": prior_coarse}
    arrays = {}
    for name, a in named.items():
        a = np.asarray(a, dtype=np.float64)
        if a.ndim != 2:
            raise SpecError(f"{name} must be a 2-D (y, x) array on the fine grid; got shape {a.shape}.")
        arrays[name] = a
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise SpecError(f"coarse_today, prior_fine and prior_coarse must share one fine grid; got shapes {shapes}. "
                        "Resample the coarse images onto the fine grid first.")
    return arrays["coarse_today"], arrays["prior_fine"], arrays["prior_coarse"]


def _naive(coarse_today: np.ndarray, prior_fine: np.ndarray, prior_coarse: np.ndarray) -> np.ndarray:
    """float64 naive fusion; non-finite inputs count as missing."""
    has_prior = np.isfinite(prior_fine) & np.isfinite(prior_coarse)
    today = np.where(np.isfinite(coarse_today), coarse_today, np.nan)
    with np.errstate(invalid="ignore"):
        return np.where(has_prior, prior_fine + (today - prior_coarse), today)


def naive_fusion(coarse_today: Any, prior_fine: Any, prior_coarse: Any) -> np.ndarray:
    r"""Prior fine image plus the coarse change since its date: :math:`F_k + (C_0 - C_k)`.

    Parameters
    ----------
    coarse_today : array-like, 2-D
        Coarse image of the target date, resampled onto the fine grid (:math:`C_0`).
    prior_fine : array-like, 2-D
        Fine image of the prior date (:math:`F_k`).
    prior_coarse : array-like, 2-D
        Coarse image of the prior date on the fine grid (:math:`C_k`).

    Returns
    -------
    numpy.ndarray
        float32 of the common shape: :math:`F_k + (C_0 - C_k)` where both prior images are
        finite, :math:`C_0` elsewhere, NaN where :math:`C_0` is not finite.

    Raises
    ------
    SpecError
        If an input is not 2-D or the shapes differ.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.downscale.fusion import naive_fusion
    >>> naive_fusion([[1.0, 2.0, np.nan]], [[1.5, np.nan, 1.0]], [[1.0, 1.0, 1.0]])
    array([[1.5, 2. , nan]], dtype=float32)
    """
    return _naive(*_images(coarse_today, prior_fine, prior_coarse)).astype(np.float32)


def _check_number(value: Any, name: str, *, positive: bool = False) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        kind = "a positive" if positive else "a non-negative"
        raise SpecError(f"{name} must be {kind} finite number; got {value!r}.")
    return float(value)


def starfm(
    coarse_today: Any,
    prior_fine: Any,
    prior_coarse: Any,
    *,
    window: int = STARFM_WINDOW,
    n_classes: float = STARFM_CLASSES,
    fine_uncertainty: float = STARFM_FINE_UNCERTAINTY,
    coarse_uncertainty: float = STARFM_COARSE_UNCERTAINTY,
    distance_scale: float | None = None,
) -> np.ndarray:
    r"""STARFM (Gao et al., 2006) prediction of today's fine image from one prior fine/coarse pair.

    The algorithm, its special cases and the sources of the defaults are described in
    :mod:`unique_xr.downscale.fusion`. In short, the prediction at each pixel is the
    :math:`1/(S\,T\,D)`-weighted mean of :math:`F_k + C_0 - C_k` over the similar pixels of the
    surrounding ``window x window`` square that pass the paper's spectral and temporal filters.

    Parameters
    ----------
    coarse_today : array-like, 2-D
        Coarse image of the target date, resampled onto the fine grid (:math:`C_0`).
    prior_fine : array-like, 2-D
        Fine image of the prior date (:math:`F_k`).
    prior_coarse : array-like, 2-D
        Coarse image of the prior date on the fine grid (:math:`C_k`).
    window : int, default 51
        Side of the square search window in fine pixels; odd, at least 3.
    n_classes : float, default 4
        Estimated number of land-cover classes :math:`m`; pixels within
        :math:`2\sigma(F_k)/m` of the central pixel's prior fine value are similar.
    fine_uncertainty, coarse_uncertainty : float, default 0.005
        Uncertainties :math:`\sigma_f`, :math:`\sigma_c` of the fine and coarse images, in
        their units (0.005 is for reflectance in 0-1).
    distance_scale : float, optional
        The constant :math:`A` of :math:`D = 1 + d/A`, in fine pixels; default half the
        window, ``(window - 1) / 2``.

    Returns
    -------
    numpy.ndarray
        float32 of the common shape; NaN exactly where ``coarse_today`` is not finite.

    Raises
    ------
    SpecError
        If an input is not 2-D, the shapes differ or a parameter is out of range.

    Notes
    -----
    Runs in numpy over the ``window**2`` offsets of the window, a block of rows at a time;
    a 576 x 552 image with the default window takes about 4-5 s on one core.

    Examples
    --------
    A uniform change on a two-class prior moves each class by the change:

    >>> import numpy as np
    >>> from unique_xr.downscale.fusion import starfm
    >>> prior_fine = np.array([[0.2, 0.2, 0.6, 0.6]])
    >>> prior_coarse = np.full((1, 4), 0.4)
    >>> starfm(prior_coarse + 0.1, prior_fine, prior_coarse, window=3)
    array([[0.3, 0.3, 0.7, 0.7]], dtype=float32)
    """
    coarse_today, prior_fine, prior_coarse = _images(coarse_today, prior_fine, prior_coarse)
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 3 or window % 2 == 0:
        raise SpecError(f"window must be an odd integer >= 3 (fine pixels per side); got {window!r}.")
    half = int(window) // 2
    classes = _check_number(n_classes, "n_classes", positive=True)
    sigma_fine = _check_number(fine_uncertainty, "fine_uncertainty")
    sigma_coarse = _check_number(coarse_uncertainty, "coarse_uncertainty")
    scale = float(half) if distance_scale is None else _check_number(distance_scale, "distance_scale", positive=True)

    naive = _naive(coarse_today, prior_fine, prior_coarse)
    valid = np.isfinite(prior_fine) & np.isfinite(prior_coarse) & np.isfinite(coarse_today)
    if not valid.any():
        return naive.astype(np.float32)
    fine = np.where(valid, prior_fine, np.nan)
    spectral = np.abs(fine - prior_coarse)
    temporal = np.abs(prior_coarse - coarse_today)
    prior_ok = np.isfinite(prior_fine)
    threshold = 2.0 * float(np.std(prior_fine[prior_ok])) / classes

    predicted = _starfm_windows(
        fine, spectral, temporal, np.where(valid, naive, np.nan),
        threshold=threshold,
        spectral_tolerance=math.hypot(sigma_fine, sigma_coarse),
        temporal_tolerance=math.sqrt(2.0) * sigma_coarse,
        half=half, scale=scale,
    )
    # the paper's special cases: no coarse change -> F_k, fine equals coarse -> C_0 (the naive value)
    weighted = valid & (spectral > 0) & (temporal > 0) & np.isfinite(predicted)
    return np.where(weighted, predicted, naive).astype(np.float32)


def _starfm_windows(fine: np.ndarray, spectral: np.ndarray, temporal: np.ndarray, local: np.ndarray, *,
                    threshold: float, spectral_tolerance: float, temporal_tolerance: float,
                    half: int, scale: float) -> np.ndarray:
    """Weighted mean of ``local`` over each pixel's filtered window; NaN where no candidate.

    All inputs are float64 of one shape and NaN wherever a pixel is not a valid candidate.
    Candidates with ``spectral * temporal == 0`` take over the pixel (plain mean of their
    ``local``) when there are any.
    """
    ny, nx = fine.shape
    valid = np.isfinite(local)
    product = spectral * temporal
    zero = valid & (product == 0)
    any_zero = bool(zero.any())

    def padded(a: np.ndarray, fill: float) -> np.ndarray:
        return np.pad(a, half, mode="constant", constant_values=fill)

    # candidate-side arrays: comparisons with NaN are False, so invalid pixels never pass
    fine_p = padded(fine, np.nan)
    spectral_p = padded(spectral, np.nan)
    temporal_p = padded(temporal, np.nan)
    with np.errstate(divide="ignore"):
        inverse_p = padded(np.where(valid & ~zero, 1.0 / np.where(zero | ~valid, 1.0, product), 0.0), 0.0)
    local_p = padded(np.where(valid, local, 0.0), 0.0)
    zero_p = padded(zero, False)
    # centre-side limits (NaN for invalid centres: nothing passes)
    spectral_limit = spectral + spectral_tolerance
    temporal_limit = temporal + temporal_tolerance

    offsets = [(dy, dx) for dy in range(-half, half + 1) for dx in range(-half, half + 1)]
    inverse_distance = [1.0 / (1.0 + math.hypot(dy, dx) / scale) for dy, dx in offsets]

    out = np.full((ny, nx), np.nan)
    for r0 in range(0, ny, _ROW_BLOCK):
        r1 = min(r0 + _ROW_BLOCK, ny)
        rows = r1 - r0
        if not valid[r0:r1].any():
            continue
        centre_fine = fine[r0:r1]
        s_limit = spectral_limit[r0:r1]
        t_limit = temporal_limit[r0:r1]
        weight_sum = np.zeros((rows, nx))
        value_sum = np.zeros((rows, nx))
        zero_count = np.zeros((rows, nx)) if any_zero else None
        zero_sum = np.zeros((rows, nx)) if any_zero else None
        diff = np.empty((rows, nx))
        ok = np.empty((rows, nx), dtype=bool)
        test = np.empty((rows, nx), dtype=bool)
        weight = np.empty((rows, nx))
        for (dy, dx), inv_d in zip(offsets, inverse_distance):
            ys = slice(r0 + half + dy, r1 + half + dy)
            xs = slice(half + dx, half + dx + nx)
            # spectrally similar to the centre
            np.subtract(fine_p[ys, xs], centre_fine, out=diff)
            np.abs(diff, out=diff)
            np.less_equal(diff, threshold, out=ok)
            # no worse than the centre, up to the uncertainties (eqs. 15-16, both)
            np.less_equal(spectral_p[ys, xs], s_limit, out=test)
            ok &= test
            np.less_equal(temporal_p[ys, xs], t_limit, out=test)
            ok &= test
            # weight 1 / (S T D)
            np.multiply(inverse_p[ys, xs], inv_d, out=weight)
            weight *= ok
            weight_sum += weight
            weight *= local_p[ys, xs]
            value_sum += weight
            if any_zero:
                ok &= zero_p[ys, xs]
                zero_count += ok
                np.multiply(local_p[ys, xs], ok, out=weight)
                zero_sum += weight
        with np.errstate(invalid="ignore", divide="ignore"):
            block = value_sum / weight_sum
            if any_zero:
                block = np.where(zero_count > 0, zero_sum / zero_count, block)
        out[r0:r1] = np.where(np.isfinite(block), block, np.nan)
    return out
