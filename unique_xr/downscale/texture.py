"""The fine-scale texture of past fine images, as an auxiliary layer for scheme S2.

Much of what a coarse pixel hides repeats from one date to the next: field edges, ridges and
valleys, rivers, towns. The *sub-coarse anomaly* of a fine image is what is left after taking
away the smooth field its own coarse-cell means give (the bicubic interpolation of its
``factor x factor`` block means, :func:`~unique_xr.downscale.baselines.bicubic`); its mean over
the training images is a static 30 m layer, like a DEM, that the model can learn to scale and
shape by the coarse field of a new date::

    prior = texture_prior(fine_train, factor=8)                        # (y, x), for prediction
    per_pair = texture_prior(fine_train, factor=8, leave_one_out=True)  # (pair, y, x), for fitting
    model = fit(coarse_train, fine_train, aux=[landcover, per_pair], scheme="s2", factor=8)
    out = downscale(coarse_new, model, aux=[landcover, prior], factor=8)

Fit with the leave-one-out layers: each training pair then sees the texture of the *other*
images, as a new date sees the texture of all of them. With the plain mean a training pair
would find its own anomaly in the layer (one part in ``n``), and the model would learn to trust
the layer more than a new date allows.

Only the training images enter the layer; a held-out date's own fine image never does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from unique_xr.downscale.baselines import bicubic, block_mean
from unique_xr.downscale.conditioning import DownscaleInputError

__all__ = ["sub_coarse_anomaly", "texture_prior"]

NAME = "texture"


def sub_coarse_anomaly(fine: np.ndarray, factor: int) -> np.ndarray:
    """``fine`` minus the bicubic interpolation of its own ``factor x factor`` block means.

    NaN where ``fine`` is NaN, or where a block is entirely missing (its mean spreads NaN over
    the neighbouring fine pixels, as :func:`~unique_xr.downscale.baselines.bicubic` does).

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.downscale.texture import sub_coarse_anomaly
    >>> flat = np.full((8, 8), 0.5)
    >>> bool(np.abs(sub_coarse_anomaly(flat, 4)).max() < 1e-12)  # a field without detail has none
    True
    """
    fine = np.asarray(fine, dtype=np.float64)
    if fine.ndim != 2:
        raise DownscaleInputError(f"Expected a 2-D fine image; got shape {fine.shape}.")
    if factor < 2:
        raise DownscaleInputError(f"factor must be at least 2 (fine pixels per coarse pixel side); got {factor}.")
    return fine - bicubic(block_mean(fine, factor), factor, shape=fine.shape)


def texture_prior(fine: Sequence[xr.DataArray] | xr.DataArray, factor: int, *,
                  leave_one_out: bool = False, name: str = NAME) -> xr.DataArray:
    """Mean sub-coarse anomaly of the fine images: a static fine-grid auxiliary for scheme S2.

    Parameters
    ----------
    fine
        The training fine images, ``(y, x)`` each (a list, or one DataArray with a ``time``
        dimension), NaN where cloudy or missing; all on one grid.
    factor
        Fine pixels per coarse pixel side (the coarse grid the model will downscale from).
    leave_one_out
        Return one layer per image, each the mean over the *other* images (dims
        ``pair, y, x``): what :func:`~unique_xr.downscale.api.fit` should see for each pair.
    name
        Name of the layer; predictions look auxiliaries up by the names in the model card.

    Returns
    -------
    xarray.DataArray
        float32 on the fine grid (coordinates of the first image), NaN where no image (other than
        the left-out one) was clear; the model reads NaN as "no texture known" (0).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from unique_xr.downscale.texture import texture_prior
    >>> rng = np.random.default_rng(0)
    >>> pattern = rng.normal(0, 0.05, (16, 16))
    >>> days = [xr.DataArray(0.6 + 0.1 * d + pattern, dims=("y", "x")) for d in range(3)]
    >>> prior = texture_prior(days, factor=4)
    >>> prior.dims, bool(np.corrcoef(prior.values.ravel(), pattern.ravel())[0, 1] > 0.8)
    (('y', 'x'), True)
    >>> texture_prior(days, factor=4, leave_one_out=True).dims
    ('pair', 'y', 'x')
    """
    from unique_xr.downscale.api import (
        _as_list,  # the same list-or-time-stack rule as fit
    )

    images = _as_list(fine)
    if not images:
        raise DownscaleInputError("texture_prior needs at least one fine image.")
    if leave_one_out and len(images) < 2:
        raise DownscaleInputError("A leave-one-out texture needs at least two fine images; got one.")
    for img in images:
        if set(img.dims) != {"y", "x"}:
            raise DownscaleInputError(f"Expected (y, x) fine images; got dims {img.dims}.")
    images = [img.transpose("y", "x") for img in images]
    ref = images[0]
    if any(img.shape != ref.shape for img in images):
        raise DownscaleInputError(f"The fine images must share one grid; got shapes {[img.shape for img in images]}.")
    anomalies = np.stack([sub_coarse_anomaly(img.values, factor) for img in images])
    valid = np.isfinite(anomalies)
    sums, counts = np.where(valid, anomalies, 0.0).sum(axis=0), valid.sum(axis=0)
    attrs = {"long_name": "mean sub-coarse anomaly of the training fine images", "factor": int(factor),
             "units": ref.attrs.get("units", ""), "images": len(images)}
    coords = {k: v for k, v in ref.coords.items() if set(v.dims) <= {"y", "x"}}
    if not leave_one_out:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(counts > 0, sums / counts, np.nan).astype(np.float32)
        return xr.DataArray(mean, dims=("y", "x"), coords=coords, name=name, attrs=attrs)
    own = np.where(valid, anomalies, 0.0)
    others = counts[None] - valid
    with np.errstate(invalid="ignore", divide="ignore"):
        loo = np.where(others > 0, (sums[None] - own) / others, np.nan).astype(np.float32)
    return xr.DataArray(loo, dims=("pair", "y", "x"), coords=coords, name=name,
                        attrs={**attrs, "leave_one_out": 1})
