"""Baselines of the downscaling evaluation: aggregation, cubic upsampling, per-class regression."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from unique_xr.downscale.baselines import (
    RegressionBaseline,
    bicubic,
    block_mean,
    linear_baseline,
)
from unique_xr.errors import SpecError


def test_block_mean_ignores_nan_and_handles_partial_edge_blocks():
    fine = np.arange(30.0).reshape(5, 6)
    fine[0, 0] = np.nan
    out = block_mean(fine, 2)
    assert out.shape == (3, 3)
    assert out[0, 0] == pytest.approx((1 + 6 + 7) / 3)
    assert out[1, 2] == pytest.approx(fine[2:4, 4:6].mean())
    assert out[2, 1] == pytest.approx(fine[4, 2:4].mean())  # bottom row: half blocks


def test_block_mean_of_an_all_missing_block_is_nan_silently():
    fine = np.ones((4, 4))
    fine[:2, :2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = block_mean(fine, 2)
    assert np.isnan(out[0, 0]) and np.all(out.ravel()[1:] == 1.0)


def test_bad_factor_is_refused():
    with pytest.raises(SpecError, match="factor"):
        block_mean(np.ones((4, 4)), 0)
    with pytest.raises(SpecError, match="factor"):
        bicubic(np.ones((4, 4)), 2.5)


def test_bicubic_keeps_a_constant_field_and_its_shape():
    out = bicubic(np.full((5, 7), 3.25), 4)
    assert out.shape == (20, 28)
    np.testing.assert_allclose(out, 3.25)
    assert bicubic(np.ones((5, 7)), 4, shape=(18, 27)).shape == (18, 27)


def test_bicubic_passes_through_coarse_values_at_their_centres():
    # with an odd factor, fine pixel k*I + (k-1)/2 has its centre on coarse centre I
    rng = np.random.default_rng(1)
    coarse = rng.standard_normal((6, 5))
    out = bicubic(coarse, 3)
    np.testing.assert_allclose(out[1::3, 1::3], coarse, atol=1e-12)


def test_bicubic_maps_fine_centres_to_coarse_coordinates():
    # a smooth field sampled at coarse centres: the fine values must follow the same field at
    # coarse coordinate (i + 0.5) / k - 0.5 (interior pixels, away from the padded edges)
    k = 4
    field = lambda u, v: np.sin(0.4 * u) + np.cos(0.3 * v)
    coarse = field(*np.mgrid[:20, :20].astype(float))
    u = (np.arange(80) + 0.5) / k - 0.5
    expected = field(*np.meshgrid(u, u, indexing="ij"))
    out = bicubic(coarse, k)
    inner = (slice(16, -16), slice(16, -16))
    assert np.abs(out - expected)[inner].max() < 2e-3
    # a half-pixel error in the mapping would be ~100 times worse
    shifted = field(*np.meshgrid(np.arange(80) / k, np.arange(80) / k, indexing="ij"))
    assert np.abs(out - shifted)[inner].max() > 0.05


def test_bicubic_puts_missing_coarse_pixels_back_as_nan_only_over_their_block():
    coarse = np.add.outer(np.arange(6.0), np.arange(6.0))
    coarse[2, 3] = np.nan
    out = bicubic(coarse, 4)
    missing = np.isnan(out)
    assert missing[8:12, 12:16].all() and missing.sum() == 16
    # the neighbours were interpolated from a nearest-filled field, not dragged to NaN or zero
    assert np.all(np.isfinite(out[4:16, 8:20][~missing[4:16, 8:20]]))
    assert np.all(np.isnan(bicubic(np.full((3, 3), np.nan), 2)))


def _synthetic(rng, n_dates=3, shape=(30, 40)):
    classes = np.where(np.arange(shape[1])[None, :] < 20, 1, 2) * np.ones(shape, dtype=int)
    classes[:2, :2] = 3  # a class with 4 pixels per date
    ups, fines = [], []
    for _ in range(n_dates):
        up = rng.uniform(0.2, 0.9, shape)
        fine = np.where(classes == 1, 0.1 + 0.8 * up, -0.2 + 1.5 * up) + 0.01 * rng.standard_normal(shape)
        fine[rng.random(shape) < 0.2] = np.nan  # clouds
        ups.append(up)
        fines.append(fine)
    return ups, fines, classes


def test_per_class_regression_recovers_class_coefficients(rng):
    ups, fines, classes = _synthetic(rng)
    model = RegressionBaseline(min_pixels=50).fit(ups, fines, classes=classes)
    np.testing.assert_allclose(model.coef_[1], [0.1, 0.8], atol=0.01)
    np.testing.assert_allclose(model.coef_[2], [-0.2, 1.5], atol=0.01)
    assert 3 not in model.coef_  # too few pixels: uses the global fit
    test_up = rng.uniform(0.2, 0.9, classes.shape)
    pred = model.predict(test_up, classes=classes)
    truth = np.where(classes == 1, 0.1 + 0.8 * test_up, -0.2 + 1.5 * test_up)
    sel = classes != 3
    assert np.abs(pred - truth)[sel].max() < 0.01
    np.testing.assert_allclose(pred[~sel], (model.coef_[None][0] + model.coef_[None][1] * test_up)[~sel])
    # a class never seen in training also falls back to the global fit
    unseen = classes.copy()
    unseen[5, 5] = 9
    assert model.predict(test_up, classes=unseen)[5, 5] == pytest.approx(
        model.coef_[None][0] + model.coef_[None][1] * test_up[5, 5])


def test_one_class_fit_is_worse_when_classes_differ(rng):
    ups, fines, classes = _synthetic(rng)
    single = linear_baseline(ups, fines)
    assert set(single.coef_) == {None}
    per_class = RegressionBaseline().fit(ups, fines, classes=classes)
    test_up = rng.uniform(0.2, 0.9, classes.shape)
    truth = np.where(classes == 1, 0.1 + 0.8 * test_up, -0.2 + 1.5 * test_up)
    err_single = np.sqrt(np.mean((single.predict(test_up) - truth) ** 2))
    err_class = np.sqrt(np.mean((per_class.predict(test_up, classes=classes) - truth) ** 2))
    assert err_class < 0.2 * err_single


def test_regression_with_a_continuous_auxiliary(rng):
    shape = (20, 20)
    elevation = rng.uniform(0, 1, shape)
    ups = [rng.uniform(0, 1, shape) for _ in range(2)]
    fines = [0.5 + 2.0 * u - 0.7 * elevation for u in ups]
    model = RegressionBaseline().fit(ups, fines, aux=elevation)
    np.testing.assert_allclose(model.coef_[None], [0.5, 2.0, -0.7], atol=1e-10)
    up = rng.uniform(0, 1, shape)
    up[0, 0] = np.nan
    pred = model.predict(up, aux=[elevation])
    assert np.isnan(pred[0, 0]) and np.allclose(pred.ravel()[1:], (0.5 + 2.0 * up - 0.7 * elevation).ravel()[1:])
    with pytest.raises(SpecError, match="aux"):
        model.predict(up)


def test_regression_input_errors(rng):
    with pytest.raises(SpecError, match="not fitted"):
        RegressionBaseline().predict(np.ones((3, 3)))
    with pytest.raises(SpecError, match="as many"):
        RegressionBaseline().fit([np.ones((3, 3))], [])
    with pytest.raises(SpecError, match="grid"):
        RegressionBaseline().fit([np.ones((3, 3))], [np.ones((3, 4))])
    with pytest.raises(SpecError, match="finite"):
        RegressionBaseline().fit([np.ones((3, 3))], [np.full((3, 3), np.nan)])
