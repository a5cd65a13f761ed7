r"""Scores of a downscaled field against a fine-grid truth: RMSE, bias, correlation, SSIM, coverage, CRPS.

Every function takes plain arrays of the same shape (numpy, or anything :func:`numpy.asarray`
accepts, such as a computed DataArray) and scores only the pixels that are finite in both the
prediction and the truth, so cloud and fill masks (NaN) need no special handling by the caller.
A positive bias means the prediction is too high.

:func:`ssim` is the structural similarity index of Wang et al. (2004) with the 11 x 11 Gaussian
window (:math:`\sigma = 1.5`) of the paper, written with :func:`scipy.ndimage.gaussian_filter`
(scikit-image is not a dependency). Missing pixels are handled by normalised convolution: the
local means and moments are weighted sums over the finite neighbours only, which without gaps
is exactly the usual Gaussian filter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unique_xr._optional import import_optional
from unique_xr.errors import SpecError

__all__ = ["bias", "crps_gaussian", "interval_coverage", "pearson_r", "rmse", "score_table", "ssim"]

#: SSIM stabilising constants of Wang et al. (2004): C1 = (K1 L)^2, C2 = (K2 L)^2.
K1, K2 = 0.01, 0.03
#: The Gaussian is cut at this many sigmas: 3.5 * 1.5 rounds to the paper's 11 x 11 window.
TRUNCATE = 3.5


def _pair(pred: Any, truth: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both arrays as float64 and the mask of pixels finite in both."""
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape:
        raise SpecError(
            f"pred and truth must have the same shape; got {pred.shape} and {truth.shape}. "
            "Put the prediction on the truth's grid first."
        )
    return pred, truth, np.isfinite(pred) & np.isfinite(truth)


def rmse(pred: Any, truth: Any) -> float:
    r"""Root-mean-square error :math:`\sqrt{\overline{(p - t)^2}}` over pixels finite in both.

    Parameters
    ----------
    pred, truth : array-like, same shape
        Prediction and truth; NaN/inf pixels in either are left out.

    Returns
    -------
    float
        NaN when no pixel is finite in both.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.downscale.metrics import rmse
    >>> rmse([1.0, 2.0, np.nan], [1.0, 4.0, 3.0])
    1.4142135623730951
    """
    p, t, ok = _pair(pred, truth)
    return float(np.sqrt(np.mean((p[ok] - t[ok]) ** 2))) if ok.any() else float("nan")


def bias(pred: Any, truth: Any) -> float:
    r"""Mean error :math:`\overline{p - t}` over pixels finite in both (positive: too high).

    Examples
    --------
    >>> from unique_xr.downscale.metrics import bias
    >>> bias([2.0, 3.0], [1.0, 1.0])
    1.5
    """
    p, t, ok = _pair(pred, truth)
    return float(np.mean(p[ok] - t[ok])) if ok.any() else float("nan")


def pearson_r(pred: Any, truth: Any) -> float:
    """Pearson correlation over pixels finite in both.

    Returns NaN with fewer than two such pixels or when either side is constant on them.

    Examples
    --------
    >>> from unique_xr.downscale.metrics import pearson_r
    >>> round(pearson_r([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 9.0]), 4)
    0.9944
    """
    p, t, ok = _pair(pred, truth)
    if ok.sum() < 2:
        return float("nan")
    dp, dt = p[ok] - p[ok].mean(), t[ok] - t[ok].mean()
    denom = np.sqrt(np.sum(dp**2) * np.sum(dt**2))
    return float(np.sum(dp * dt) / denom) if denom > 0 else float("nan")


def ssim(pred: Any, truth: Any, *, data_range: float | None = None, sigma: float = 1.5) -> float:
    r"""Mean structural similarity (Wang et al. 2004) of a 2-D prediction and truth.

    At each pixel, with Gaussian-weighted local means :math:`\mu`, variances :math:`\sigma^2`
    and covariance :math:`\sigma_{pt}`,

    .. math::

        \mathrm{SSIM} = \frac{(2\mu_p\mu_t + C_1)(2\sigma_{pt} + C_2)}
                             {(\mu_p^2 + \mu_t^2 + C_1)(\sigma_p^2 + \sigma_t^2 + C_2)},
        \qquad C_1 = (0.01 L)^2,\; C_2 = (0.03 L)^2,

    and the score is its mean over the pixels finite in both images, leaving out (as
    scikit-image does) a border as wide as the window radius. The local moments use only finite
    neighbours (normalised convolution: each weighted sum is divided by the sum of the weights
    of the finite pixels), so a cloud mask does not drag the means towards a fill value.

    Parameters
    ----------
    pred, truth : array-like, 2-D, same shape
        Prediction and truth; NaN/inf marks missing pixels.
    data_range : float, optional
        :math:`L`, the dynamic range of the variable. Default: max - min of the finite truth
        (the convention of most downscaling papers; pass a fixed value, e.g. 2 for NDVI, to
        compare scores across images).
    sigma : float
        Standard deviation of the Gaussian window in pixels (the window is cut at 3.5 sigma,
        11 x 11 for the default 1.5).

    Returns
    -------
    float
        1 for identical images; NaN when no pixel is left to average.

    Raises
    ------
    SpecError
        The arrays are not 2-D or differ in shape, ``sigma`` or ``data_range`` is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.downscale.metrics import ssim
    >>> truth = np.add.outer(np.arange(20.0), np.arange(20.0))
    >>> ssim(truth, truth)
    1.0
    >>> round(ssim(truth + 5.0, truth), 4)   # a constant offset only lowers the luminance term
    0.9701
    """
    p, t, ok = _pair(pred, truth)
    if p.ndim != 2:
        raise SpecError(f"ssim needs 2-D images; got shape {p.shape}. Score each time step separately.")
    if not sigma > 0:
        raise SpecError(f"sigma must be positive; got {sigma}.")
    if data_range is None:
        data_range = float(np.nanmax(t[ok]) - np.nanmin(t[ok])) if ok.any() else float("nan")
    if not data_range > 0:
        raise SpecError(
            f"data_range must be positive; got {data_range} (a constant truth has no range: pass data_range=)."
        )
    ndimage = import_optional("scipy.ndimage", purpose="SSIM")
    radius = int(TRUNCATE * sigma + 0.5)

    def smooth(a: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(a, sigma, mode="reflect", truncate=TRUNCATE)

    w = ok.astype(np.float64)
    p0, t0 = np.where(ok, p, 0.0), np.where(ok, t, 0.0)
    weight = smooth(w)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu_p, mu_t = smooth(p0) / weight, smooth(t0) / weight
        var_p = smooth(p0 * p0) / weight - mu_p**2
        var_t = smooth(t0 * t0) / weight - mu_t**2
        cov = smooth(p0 * t0) / weight - mu_p * mu_t
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    index = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    keep = ok.copy()
    if radius > 0:
        keep[:radius], keep[-radius:], keep[:, :radius], keep[:, -radius:] = False, False, False, False
    return float(np.mean(index[keep])) if keep.any() else float("nan")


def interval_coverage(lower: Any, upper: Any, truth: Any) -> float:
    """Share of the finite truth pixels that fall inside ``[lower, upper]``.

    For a 90 % ensemble interval (5 % and 95 % member quantiles) a calibrated ensemble gives
    about 0.9; less means the spread is too narrow (over-confident). Pixels where the truth
    or either bound is not finite are left out.

    Examples
    --------
    >>> from unique_xr.downscale.metrics import interval_coverage
    >>> interval_coverage([0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.5, 1.0, 2.0, float("nan")])
    0.6666666666666666
    """
    lo, t, ok_lo = _pair(lower, truth)
    hi, _, ok_hi = _pair(upper, truth)
    ok = ok_lo & ok_hi
    if not ok.any():
        return float("nan")
    return float(np.mean((t[ok] >= lo[ok]) & (t[ok] <= hi[ok])))


def crps_gaussian(mean: Any, spread: Any, truth: Any) -> float:
    r"""Mean CRPS of the Gaussian :math:`N(\mu, \sigma^2)` with the ensemble's mean and spread, over finite pixels.

    The continuous ranked probability score of a normal forecast has the closed form
    (Gneiting & Raftery 2007, eq. 21)

    .. math::

        \mathrm{CRPS}(N(\mu, \sigma^2), y) = \sigma \left[ z\,\bigl(2\Phi(z) - 1\bigr) + 2\varphi(z)
        - \frac{1}{\sqrt{\pi}} \right], \qquad z = \frac{y - \mu}{\sigma},

    with :math:`\Phi` and :math:`\varphi` the standard normal CDF and density. It is in the units
    of the variable, lower is better, and for :math:`\sigma = 0` it is the absolute error
    :math:`|y - \mu|`, so a point forecast's CRPS is its mean absolute error. Given an ensemble's
    mean and member standard deviation this scores the Gaussian with those two moments, not the
    empirical distribution of the members.

    Parameters
    ----------
    mean, spread, truth : array-like, same shape
        Ensemble mean :math:`\mu`, spread :math:`\sigma \ge 0` and truth :math:`y`; pixels where
        any of them is not finite are left out.

    Returns
    -------
    float
        NaN when no pixel is finite in all three.

    Raises
    ------
    SpecError
        The shapes differ or a finite spread is negative.

    Examples
    --------
    >>> from unique_xr.downscale.metrics import crps_gaussian
    >>> round(crps_gaussian([0.0], [1.0], [0.0]), 4)   # (2 phi(0) - 1 / sqrt(pi)) = 0.2337
    0.2337
    >>> crps_gaussian([1.0, 2.0], [0.0, 0.0], [0.0, 4.0])   # zero spread: the mean absolute error
    1.5
    """
    special = import_optional("scipy.special", purpose="the Gaussian CRPS")
    mu, t, ok = _pair(mean, truth)
    sigma, _, ok_sigma = _pair(spread, truth)
    ok &= ok_sigma
    if (sigma[ok] < 0).any():
        raise SpecError(f"spread must be >= 0 (a standard deviation); got a minimum of {sigma[ok].min()}.")
    if not ok.any():
        return float("nan")
    mu, t, sigma = mu[ok], t[ok], sigma[ok]
    error = np.abs(t - mu)
    crps = error.copy()
    spread_on = sigma > 0
    s = sigma[spread_on]
    z = (t[spread_on] - mu[spread_on]) / s
    crps[spread_on] = s * (z * (2.0 * special.ndtr(z) - 1.0) + 2.0 * np.exp(-0.5 * z**2) / np.sqrt(2.0 * np.pi)
                           - 1.0 / np.sqrt(np.pi))
    return float(np.mean(crps))


def score_table(pred: Any, truth: Any, *, data_range: float | None = None) -> dict[str, float]:
    """RMSE, bias, Pearson r and SSIM of a 2-D prediction, and the number of pixels scored.

    Parameters
    ----------
    pred, truth : array-like, 2-D, same shape
        Prediction and truth; NaN marks missing pixels.
    data_range : float, optional
        Passed to :func:`ssim`.

    Returns
    -------
    dict
        ``rmse``, ``bias``, ``r``, ``ssim`` (floats) and ``n`` (int, pixels finite in both).

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.downscale.metrics import score_table
    >>> truth = np.add.outer(np.arange(20.0), np.arange(20.0))
    >>> scores = score_table(truth + 1.0, truth)
    >>> scores["rmse"], scores["bias"], scores["r"], scores["n"]
    (1.0, 1.0, 1.0, 400)
    """
    p, t, ok = _pair(pred, truth)
    return {
        "rmse": rmse(p, t),
        "bias": bias(p, t),
        "r": pearson_r(p, t),
        "ssim": ssim(p, t, data_range=data_range),
        "n": int(ok.sum()),
    }
