"""Fixtures for the downscaling tests: seeded paired images and a small trained model."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("torch")


def paired_images(n: int = 3, shape=(96, 128), factor: int = 8, seed: int = 0):
    """Fine images whose sub-coarse structure follows a class map, their k x k block means, and the map.

    The fine field is a date-dependent level plus a class effect plus noise, so the class map
    (scheme S2's auxiliary) explains what the coarse field cannot.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    classes = np.repeat(np.repeat(rng.integers(1, 4, (h // 4, w // 4)), 4, 0), 4, 1).astype(np.float64)
    effect = {1.0: 0.0, 2.0: 0.25, 3.0: -0.15}
    lc = xr.DataArray(classes, dims=("y", "x"), name="landcover")
    fine, coarse = [], []
    for i in range(n):
        level = 0.3 + 0.1 * i + 0.05 * np.sin(np.linspace(0, 3, w))[None, :]
        f = level + np.vectorize(effect.get)(classes) + 0.02 * rng.standard_normal((h, w))
        fine.append(xr.DataArray(f, dims=("y", "x"), name="ndvi"))
        coarse.append(xr.DataArray(f.reshape(h // factor, factor, w // factor, factor).mean((1, 3)), dims=("y", "x"),
                                   name="ndvi"))
    return coarse, fine, lc


@pytest.fixture(scope="session")
def pairs():
    return paired_images()


@pytest.fixture(scope="session")
def quick_model(pairs, tmp_path_factory):
    """A scheme-S2 model of the ``quick`` preset, trained for a few seconds (not for accuracy)."""
    from unique_xr.downscale import DownscaleConfig, fit

    coarse, fine, lc = pairs
    out = tmp_path_factory.mktemp("model")
    model = fit(coarse, fine, aux=[lc], scheme="s2", config=DownscaleConfig.preset("quick", train_steps=20), out=out)
    return model, out


@pytest.fixture(scope="session")
def held_out_pair():
    """One more pair of the same kind, with other noise: a date the quick model never saw."""
    return paired_images(n=1, seed=7)
