"""Diffusion downscaling (UNIQUE step 2): coarse field -> fine field, S1 (coarse only), S2 (+ auxiliaries) or
S3 (fusion: + the latest clear fine observation before the day, its age, and the day of year).

The torch model (:mod:`~unique_xr.downscale.net`, :mod:`~unique_xr.downscale.diffusion`,
:mod:`~unique_xr.downscale.model`) knows nothing of xarray; :mod:`~unique_xr.downscale.api`
cuts training patches with xbatcher and predicts tiled, blended and lazily per chunk;
:mod:`~unique_xr.downscale.tiling`, :mod:`~unique_xr.downscale.conditioning` and
:mod:`~unique_xr.downscale.texture` are numpy only.
torch is imported when a function that needs it is called (extra ``torch``).
"""

from __future__ import annotations

from typing import Any

from unique_xr.downscale.config import DownscaleConfig
from unique_xr.downscale.texture import texture_prior

__all__ = ["DownscaleConfig", "calibrate", "distill", "downscale", "fit", "load_downscaler", "prior_from_history",
           "texture_prior"]


def fit(*args: Any, **kwargs: Any):
    """Train a downscaler; see :func:`unique_xr.downscale.api.fit`."""
    from unique_xr.downscale.api import fit as _fit

    return _fit(*args, **kwargs)


def downscale(*args: Any, **kwargs: Any):
    """Apply a downscaler; see :func:`unique_xr.downscale.api.downscale`."""
    from unique_xr.downscale.api import downscale as _downscale

    return _downscale(*args, **kwargs)


def load_downscaler(*args: Any, **kwargs: Any):
    """Read a model folder; see :func:`unique_xr.downscale.model.load_downscaler`."""
    from unique_xr.downscale.model import load_downscaler as _load

    return _load(*args, **kwargs)


def distill(*args: Any, **kwargs: Any):
    """Distil a fitted model into few-step samplers; see :func:`unique_xr.downscale.distillation.distill`."""
    from unique_xr.downscale.distillation import distill as _distill

    return _distill(*args, **kwargs)


def prior_from_history(*args: Any, **kwargs: Any):
    """Scheme S3's prior for each day from a fine time series; see :func:`unique_xr.downscale.api.prior_from_history`."""
    from unique_xr.downscale.api import prior_from_history as _prior

    return _prior(*args, **kwargs)


def calibrate(*args: Any, **kwargs: Any):
    """Calibrate the ensemble interval on held-out pairs; see :func:`unique_xr.downscale.calibration.calibrate`."""
    from unique_xr.downscale.calibration import calibrate as _calibrate

    return _calibrate(*args, **kwargs)

