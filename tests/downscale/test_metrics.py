"""Scores of downscaled fields: NaN handling, closed forms and an independent SSIM computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unique_xr.downscale.metrics import (
    bias,
    interval_coverage,
    pearson_r,
    rmse,
    score_table,
    ssim,
)
from unique_xr.errors import SpecError


def _smooth_image(rng, shape=(40, 48)):
    y, x = np.mgrid[: shape[0], : shape[1]]
    return np.sin(x / 5.0) + np.cos(y / 7.0) + 0.1 * rng.standard_normal(shape)


def test_rmse_bias_r_use_pixels_finite_in_both():
    pred = np.array([1.0, 2.0, 4.0, np.nan, 10.0])
    truth = np.array([1.0, 1.0, 2.0, 5.0, np.inf])
    # pairs used: (1, 1), (2, 1), (4, 2)
    assert rmse(pred, truth) == pytest.approx(math.sqrt((0 + 1 + 4) / 3))
    assert bias(pred, truth) == pytest.approx(1.0)
    assert pearson_r(pred, truth) == pytest.approx(np.corrcoef([1, 2, 4], [1, 1, 2])[0, 1])


def test_scores_are_nan_without_pairs_and_r_nan_for_constant_side():
    assert math.isnan(rmse([np.nan], [1.0])) and math.isnan(bias([np.nan], [1.0]))
    assert math.isnan(pearson_r([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert math.isnan(pearson_r([1.0], [2.0]))


def test_shape_mismatch_raises():
    with pytest.raises(SpecError, match="same shape"):
        rmse(np.zeros(3), np.zeros(4))


def test_ssim_of_identical_images_is_one_with_and_without_gaps(rng):
    img = _smooth_image(rng)
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    gappy = img.copy()
    gappy[10:20, 5:30] = np.nan
    assert ssim(gappy, gappy) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_constant_images_has_the_closed_form():
    # constant images: variances and covariance vanish, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b, L = 0.6, 0.8, 2.0
    c1 = (0.01 * L) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(np.full((20, 20), a), np.full((20, 20), b), data_range=L) == pytest.approx(expected, rel=1e-12)


def _ssim_by_hand(pred, truth, data_range, sigma=1.5):
    """Direct weighted sums over each pixel's 11 x 11 window (symmetric padding), finite pixels only."""
    radius = int(3.5 * sigma + 0.5)
    k1 = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel = np.outer(k1, k1) / k1.sum() ** 2
    ok = np.isfinite(pred) & np.isfinite(truth)
    pad = lambda a: np.pad(a, radius, mode="symmetric")  # scipy's "reflect"
    p, t, w = pad(np.where(ok, pred, 0.0)), pad(np.where(ok, truth, 0.0)), pad(ok.astype(float))
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    ny, nx = pred.shape
    for i in range(radius, ny - radius):
        for j in range(radius, nx - radius):
            if not ok[i, j]:
                continue
            win = (slice(i, i + 2 * radius + 1), slice(j, j + 2 * radius + 1))
            kw = kernel * w[win]
            sw = kw.sum()
            mp, mt = (kw * p[win]).sum() / sw, (kw * t[win]).sum() / sw
            vp = (kw * p[win] ** 2).sum() / sw - mp**2
            vt = (kw * t[win] ** 2).sum() / sw - mt**2
            cov = (kw * p[win] * t[win]).sum() / sw - mp * mt
            values.append((2 * mp * mt + c1) * (2 * cov + c2) / ((mp**2 + mt**2 + c1) * (vp + vt + c2)))
    return float(np.mean(values))


def test_ssim_equals_a_direct_window_computation_with_gaps(rng):
    truth = _smooth_image(rng, (18, 21))
    pred = 0.7 * truth + 0.3 + 0.2 * rng.standard_normal(truth.shape)
    truth[7, 9] = np.nan
    pred[3:5, 12] = np.nan
    expected = _ssim_by_hand(pred, truth, data_range=3.0)
    assert ssim(pred, truth, data_range=3.0) == pytest.approx(expected, rel=1e-10)
    # the default data_range is the finite truth's range
    expected_default = _ssim_by_hand(pred, truth, data_range=float(np.nanmax(truth) - np.nanmin(truth)))
    assert ssim(pred, truth) == pytest.approx(expected_default, rel=1e-10)


def test_ssim_falls_with_noise_and_is_symmetric(rng):
    truth = _smooth_image(rng)
    scores = [ssim(truth + s * rng.standard_normal(truth.shape), truth, data_range=4.0) for s in (0.05, 0.2, 0.8)]
    assert scores[0] > scores[1] > scores[2]
    noisy = truth + 0.3 * rng.standard_normal(truth.shape)
    assert ssim(noisy, truth, data_range=4.0) == pytest.approx(ssim(truth, noisy, data_range=4.0), rel=1e-12)
    texture = 5.0 + rng.standard_normal(truth.shape)
    assert ssim(10.0 - texture, texture, data_range=4.0) < -0.5  # same local means, opposite structure


def test_ssim_ignores_values_under_the_mask(rng):
    truth = _smooth_image(rng)
    pred = truth + 0.2 * rng.standard_normal(truth.shape)
    truth[5:15, 5:15] = np.nan
    other = pred.copy()
    other[5:15, 5:15] = 1e6  # whatever the prediction says where the truth is missing
    assert ssim(other, truth, data_range=4.0) == pytest.approx(ssim(pred, truth, data_range=4.0), rel=1e-12)


def test_ssim_rejects_bad_input():
    with pytest.raises(SpecError, match="2-D"):
        ssim(np.zeros(10), np.zeros(10))
    with pytest.raises(SpecError, match="data_range"):
        ssim(np.ones((12, 12)), np.ones((12, 12)))  # constant truth: no default range


def test_interval_coverage_counts_finite_truth_inside_closed_interval():
    lower = np.array([0.0, 0.0, 0.0, 0.0, np.nan, 0.0])
    upper = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    truth = np.array([0.0, 1.0, 1.5, -0.1, 0.5, np.nan])
    assert interval_coverage(lower, upper, truth) == pytest.approx(2 / 4)
    assert math.isnan(interval_coverage([np.nan], [1.0], [0.5]))


def test_interval_coverage_of_a_calibrated_gaussian_ensemble(rng):
    truth = rng.standard_normal(20_000)
    # the central 90 % interval of N(0, 1) is +-1.645
    assert interval_coverage(np.full_like(truth, -1.6449), np.full_like(truth, 1.6449), truth) == pytest.approx(
        0.9, abs=0.01)


def test_score_table(rng):
    truth = 3.0 + _smooth_image(rng)
    truth[0, :5] = np.nan
    pred = truth + 0.5
    scores = score_table(pred, truth)
    assert set(scores) == {"rmse", "bias", "r", "ssim", "n"}
    assert scores["n"] == truth.size - 5
    assert scores["rmse"] == pytest.approx(0.5) and scores["bias"] == pytest.approx(0.5)
    assert scores["r"] == pytest.approx(1.0)
    assert 0.9 < scores["ssim"] < 1.0
