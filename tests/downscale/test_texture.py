"""The texture layer of past fine images (scheme S2 auxiliary) and per-pair auxiliaries in ``fit``."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from unique_xr.downscale import DownscaleConfig, downscale, fit
from unique_xr.downscale import api as downscale_api
from unique_xr.downscale.baselines import bicubic, block_mean
from unique_xr.downscale.conditioning import DownscaleInputError
from unique_xr.downscale.texture import sub_coarse_anomaly, texture_prior

K = 8


def _days(n=4, shape=(64, 80), seed=0, cloud=True):
    """Days of one persistent fine pattern on a changing smooth level; a cloud on day 0."""
    rng = np.random.default_rng(seed)
    pattern = rng.normal(0.0, 0.05, shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    days = []
    for d in range(n):
        smooth = 0.5 + 0.1 * d + 0.05 * np.sin(xx / 20 + d) + 0.03 * np.cos(yy / 15)
        values = smooth + pattern + 0.01 * rng.standard_normal(shape)
        if cloud and d == 0:
            values[10:30, 20:50] = np.nan
        days.append(xr.DataArray(values, dims=("y", "x"), name="ndvi", attrs={"units": "1"}))
    return days, pattern


def test_anomaly_is_the_field_minus_the_bicubic_of_its_block_means():
    days, _ = _days(1, cloud=False)
    f = days[0].values
    np.testing.assert_allclose(sub_coarse_anomaly(f, K), f - bicubic(block_mean(f, K), K, shape=f.shape))
    # linear in the field; a smooth field has little anomaly away from the edges, a fine pattern keeps it
    yy, xx = np.mgrid[:64, :80]
    smooth, pattern = 0.5 + 0.001 * xx + 0.0005 * yy, np.random.default_rng(1).normal(0, 0.05, (64, 80))
    np.testing.assert_allclose(sub_coarse_anomaly(smooth + pattern, K),
                               sub_coarse_anomaly(smooth, K) + sub_coarse_anomaly(pattern, K), atol=1e-12)
    inner = (slice(K, -K), slice(K, -K))
    assert np.abs(sub_coarse_anomaly(smooth, K)[inner]).max() < 0.05 * sub_coarse_anomaly(pattern, K).std()
    with pytest.raises(DownscaleInputError, match="2-D"):
        sub_coarse_anomaly(np.zeros((2, 8, 8)), K)
    with pytest.raises(DownscaleInputError, match="factor"):
        sub_coarse_anomaly(f, 1)


def test_prior_recovers_the_persistent_pattern_and_skips_clouds():
    days, pattern = _days()
    prior = texture_prior(days, K)
    assert prior.dims == ("y", "x") and prior.dtype == np.float32 and prior.name == "texture"
    assert prior.attrs["images"] == 4 and prior.attrs["factor"] == K and prior.attrs["units"] == "1"
    truth = sub_coarse_anomaly(pattern, K)  # the pattern's own sub-coarse part
    inner = (slice(8, -8), slice(8, -8))
    r = np.corrcoef(prior.values[inner].ravel(), truth[inner].ravel())[0, 1]
    assert r > 0.95
    # under day 0's cloud the other three days still give a value, equal to their own mean
    assert np.isfinite(prior.values[15, 30])
    three = texture_prior(days[1:], K)
    np.testing.assert_allclose(prior.values[15, 30], three.values[15, 30], rtol=1e-5)
    # a time-stacked DataArray gives the same layer as the list
    stacked = xr.concat(days, dim="time")
    np.testing.assert_array_equal(texture_prior(stacked, K).values, prior.values)


def test_leave_one_out_layer_is_the_prior_of_the_other_images():
    days, _ = _days()
    loo = texture_prior(days, K, leave_one_out=True)
    assert loo.dims == ("pair", "y", "x") and loo.sizes["pair"] == 4
    for i in range(4):
        others = texture_prior([d for j, d in enumerate(days) if j != i], K)
        np.testing.assert_allclose(loo.values[i], others.values, rtol=1e-5, atol=1e-7, equal_nan=True)
    # a pixel that only the left-out image saw is NaN, not that image's own value
    only_day0 = [days[0]] + [xr.full_like(d, np.nan) for d in days[1:]]
    lone = texture_prior(only_day0, K, leave_one_out=True)
    assert np.isnan(lone.values[0]).all() and np.isfinite(lone.values[1][np.isfinite(days[0].values)]).any()


def test_bad_input_is_refused():
    days, _ = _days(2)
    with pytest.raises(DownscaleInputError, match="at least one"):
        texture_prior([], K)
    with pytest.raises(DownscaleInputError, match="at least two"):
        texture_prior(days[:1], K, leave_one_out=True)
    with pytest.raises(DownscaleInputError, match="one grid"):
        texture_prior([days[0], days[1][:-8]], K)
    with pytest.raises(DownscaleInputError, match=r"\(y, x\)"):
        texture_prior([days[0].expand_dims(band=[1])], K)


def test_fit_gives_each_pair_its_own_layer_and_predicts_with_the_static_one(pairs, monkeypatch):
    coarse, fine, lc = pairs
    loo = texture_prior(fine, K, leave_one_out=True)
    prior = texture_prior(fine, K)
    seen = {}
    real = downscale_api.training_patches

    def spy(stack, patch, **kwargs):
        seen["stack"] = stack.copy()
        return real(stack, patch, **kwargs)

    monkeypatch.setattr(downscale_api, "training_patches", spy)
    model = fit(coarse, fine, aux=[lc, loo], scheme="s2", factor=K,
                config=DownscaleConfig.preset("quick", train_steps=2))
    spec = model.norm.aux[1]
    assert spec.name == "texture" and spec.kind == "continuous"
    # channels: residual, coarse, mask, 3 land-cover classes, texture
    for i in range(len(fine)):
        np.testing.assert_allclose(seen["stack"][i, -1], spec.encode(loo.values[i])[0], rtol=1e-6)
    out = downscale(coarse[0], model, aux=[lc, prior], factor=K, steps=2)
    assert bool(np.isfinite(out["ndvi"]).all())
    with pytest.raises(DownscaleInputError, match="one layer per training pair"):
        fit(coarse, fine, aux=[lc, loo.isel(pair=slice(0, 2))], scheme="s2", factor=K,
            config=DownscaleConfig.preset("quick", train_steps=2))
