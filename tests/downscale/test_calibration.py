"""Calibration of the ensemble interval on held-out pairs (split-conformal scale of the spread)."""

from __future__ import annotations

import numpy as np
import pytest

from unique_xr.downscale.calibration import calibrate, conformal_scale
from unique_xr.downscale.conditioning import DownscaleInputError


def test_conformal_scale_gaussian_errors_give_the_normal_quantile():
    rng = np.random.default_rng(0)
    spread = rng.uniform(0.5, 2.0, 200_000)
    truth = spread * rng.standard_normal(spread.size)
    q, n = conformal_scale(np.zeros_like(truth), spread, truth)
    assert n == truth.size
    assert q == pytest.approx(1.6449, abs=0.02)
    covered = np.abs(truth) <= q * spread
    assert covered.mean() >= 0.9


def test_conformal_scale_leaves_out_missing_and_zero_spread():
    truth = np.array([1.0, 2.0, np.nan, 4.0, 100.0])
    spread = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    q, n = conformal_scale(np.zeros(5), spread, truth, level=0.5)
    assert n == 3  # nan truth and zero spread dropped
    assert q == 2.0  # scores 1, 2, 4: the ceil(4 * 0.5) = 2nd smallest


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5])
def test_conformal_scale_refuses_bad_level(level):
    with pytest.raises(ValueError, match="level"):
        conformal_scale([0.0], [1.0], [1.0], level=level)


def test_conformal_scale_refuses_no_usable_pixel_and_shape_mismatch():
    with pytest.raises(DownscaleInputError, match="No pixel"):
        conformal_scale([0.0, 1.0], [0.0, np.nan], [1.0, 1.0])
    with pytest.raises(DownscaleInputError, match="one shape"):
        conformal_scale([0.0, 1.0], [1.0], [1.0, 1.0])


@pytest.fixture
def fresh_model(quick_model):
    """A copy of the session model read from its folder (calibrate changes the object it gets)."""
    from unique_xr.downscale import load_downscaler

    return load_downscaler(quick_model[1])


def test_calibrated_interval_covers_the_calibration_pixels(fresh_model, held_out_pair, tmp_path):
    from unique_xr.downscale import downscale, load_downscaler

    coarse, fine, lc = held_out_pair  # a pair the model never saw
    before = fresh_model.token
    model = calibrate(fresh_model, coarse, fine, aux=[lc], members=4, steps=3, out=tmp_path / "calibrated")
    info = model.interval
    assert info["pixels"] == fine[0].size and info["members"] == 4 and info["steps"] == 3
    assert info["scale"] > 0 and 0.0 <= info["coverage_uncalibrated"] <= 1.0
    assert model.token != before  # the intervals differ, so the outputs do

    again = load_downscaler(tmp_path / "calibrated")
    assert again.interval == info and again.token == model.token
    ds = downscale(coarse[0], again, aux=[lc], members=4, steps=3)
    truth = fine[0].values
    mean, spread = ds["ndvi"].values, ds["ndvi_spread"].values
    np.testing.assert_allclose(ds["ndvi_upper"].values - mean, info["scale"] * spread, rtol=1e-5, atol=1e-6)
    inside = (truth >= ds["ndvi_lower"].values) & (truth <= ds["ndvi_upper"].values)
    assert inside.mean() >= 0.9  # conformal: at least the level on the calibration pixels themselves
    assert "calibrated" in ds["ndvi_lower"].attrs["interval"]


def test_uncalibrated_model_keeps_its_token_and_student_t_interval(quick_model, held_out_pair):
    from unique_xr.downscale import downscale, load_downscaler

    model, folder = quick_model
    assert model.interval is None and "interval" not in model.describe()
    assert load_downscaler(folder).token == model.token
    coarse, _, lc = held_out_pair
    ds = downscale(coarse[0], model, aux=[lc], members=4, steps=3)
    assert "t(0.95" in ds["ndvi_upper"].attrs["interval"]


def test_calibrate_refuses_bad_input(fresh_model, held_out_pair):
    coarse, fine, lc = held_out_pair
    with pytest.raises(DownscaleInputError, match="at least 2"):
        calibrate(fresh_model, coarse, fine, aux=[lc], members=1)
    with pytest.raises(DownscaleInputError, match="coarse i with fine i"):
        calibrate(fresh_model, coarse, [], aux=[lc])
    cloudy = [f.where(f < -10) for f in fine]  # every fine pixel missing
    with pytest.raises(DownscaleInputError, match="No pixel"):
        calibrate(fresh_model, coarse, cloudy, aux=[lc], members=2, steps=2)
