"""Occlusion sensitivity of the annual CNN: values, missing cells, forest-type means, figures."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from unique_xr.errors import SpecError
from unique_xr.models.cnn.attribution import (
    attribution_figure,
    by_forest_type,
    occlusion_sensitivity,
    step_importance,
    variable_importance,
)
from unique_xr.models.cnn.featuremap import FeatureMaps, MapSpec


class LinearProbe:
    """A stand-in model whose annual GPP is ``sum(weight[v] * value)`` over observed cells (NEE its negative).

    Variables with weight 0 are ignored by construction, so hiding them must change nothing.
    """

    def __init__(self, weights):
        self.weights = np.asarray(weights, dtype=np.float64)

    def encode(self, maps, observed=None):
        obs = maps.observed if observed is None else (observed & maps.observed)
        return np.stack([np.where(obs, maps.values, 0.0), obs], axis=1).astype(np.float32)

    def predict_encoded(self, x):
        gpp = (x[:, 0].astype(np.float64) * self.weights).sum(axis=(1, 2))
        return np.stack([gpp, -gpp], axis=1)


@pytest.fixture(scope="module")
def gappy_maps(training_set):
    """40 real site-years, among them ones with missing cells."""
    maps, _ = training_set
    gappy = np.flatnonzero(~maps.observed.all(axis=(1, 2)))[:20]
    full = np.flatnonzero(maps.observed.all(axis=(1, 2)))[:20]
    return maps.subset(np.sort(np.concatenate([gappy, full])))


@pytest.fixture(scope="module")
def sensitivity(tiny_model, gappy_maps):
    return occlusion_sensitivity(tiny_model, gappy_maps, batch_size=300)


def test_shape_and_nan_exactly_where_cells_were_missing(sensitivity, gappy_maps):
    observed = gappy_maps.observed
    assert sensitivity.shape == (*observed.shape, 2)
    assert (~observed).any()
    assert np.isnan(sensitivity[~observed]).all()
    assert np.isfinite(sensitivity[observed]).all()
    assert (np.abs(sensitivity[observed]) > 0).mean() > 0.5  # the tiny CNN does read its inputs


def test_sensitivity_is_full_minus_one_cell_hidden(tiny_model, sensitivity, gappy_maps):
    full = tiny_model.predict(gappy_maps)
    i, t, v = np.nonzero(gappy_maps.observed)
    for k in np.random.default_rng(0).choice(i.size, size=5, replace=False):
        observed = gappy_maps.observed.copy()
        observed[i[k], t[k], v[k]] = False
        hidden = tiny_model.predict(gappy_maps, observed)[i[k]]
        np.testing.assert_allclose(sensitivity[i[k], t[k], v[k]], full[i[k]] - hidden, rtol=1e-6, atol=1e-6)


def test_batch_size_does_not_change_the_result(tiny_model, sensitivity, gappy_maps):
    small = gappy_maps.subset(np.arange(6))
    # float32 batches of other sizes may round differently: 1e-3 g C m-2 yr-1 is far below any effect
    np.testing.assert_allclose(occlusion_sensitivity(tiny_model, small, batch_size=7), sensitivity[:6],
                               rtol=1e-4, atol=1e-3)


def test_cells_the_model_ignores_get_zero(gappy_maps):
    weights = np.array([0.0, 2.0, 0.0, -1.0, 0.5, 0.0])  # lai, et and precip ignored
    out = occlusion_sensitivity(LinearProbe(weights), gappy_maps, batch_size=500)
    observed = gappy_maps.observed
    ignored = observed & (weights == 0)[None, None, :]
    assert ignored.sum() > 100
    assert (out[ignored] == 0).all()
    # the cells it reads contribute exactly weight * value, with the sign of each target
    read = observed & (weights != 0)[None, None, :]
    expected = (gappy_maps.values * weights)[read]
    np.testing.assert_allclose(out[..., 0][read], expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out[..., 1][read], -expected, rtol=1e-5, atol=1e-4)
    whole = variable_importance(LinearProbe(weights), gappy_maps)
    assert whole.shape == (len(gappy_maps), 6, 2)
    np.testing.assert_allclose(whole[:, [0, 2, 5], 0][np.isfinite(whole[:, [0, 2, 5], 0])], 0.0)
    has_evi = observed[:, :, 1].any(axis=1)
    assert np.isnan(whole[~has_evi, 1]).all()
    np.testing.assert_allclose(whole[has_evi, 1, 0], np.nansum(gappy_maps.values[has_evi, :, 1], axis=1) * 2.0,
                               rtol=1e-5)


def test_variable_and_step_importance(tiny_model, gappy_maps):
    by_var = variable_importance(tiny_model, gappy_maps)
    by_step = step_importance(tiny_model, gappy_maps)
    assert by_var.shape == (len(gappy_maps), 6, 2) and by_step.shape == (len(gappy_maps), 12, 2)
    none_seen = ~gappy_maps.observed.any(axis=1)  # (n, variables) wholly missing
    np.testing.assert_array_equal(np.isnan(by_var[..., 0]), none_seen)
    observed = gappy_maps.observed.copy()
    observed[:, 3, :] = False  # April hidden for every map
    np.testing.assert_allclose(by_step[:, 3], tiny_model.predict(gappy_maps) - tiny_model.predict(gappy_maps, observed),
                               rtol=1e-6, atol=1e-6)


def test_by_forest_type(sensitivity, gappy_maps):
    absolute = by_forest_type(sensitivity, gappy_maps)
    signed = by_forest_type(sensitivity, gappy_maps, signed=True)
    seen = set(gappy_maps.keys["igbp"])
    assert list(absolute) == [t for t in gappy_maps.spec.forest_types if t in seen]
    for name, mean in absolute.items():
        assert mean.shape == (12, 6, 2)
        assert np.nanmin(mean) >= 0
        np.testing.assert_array_equal(np.isnan(signed[name]), np.isnan(mean))
        assert (np.abs(signed[name])[np.isfinite(mean)] <= mean[np.isfinite(mean)] + 1e-9).all()
        rows = (gappy_maps.keys["igbp"] == name).to_numpy()
        with warnings.catch_warnings():  # nanmean warns on cells no site-year of the type had
            warnings.simplefilter("ignore", RuntimeWarning)
            np.testing.assert_allclose(mean, np.nanmean(np.abs(sensitivity[rows]), axis=0))
    with pytest.raises(SpecError, match="maps"):
        by_forest_type(sensitivity[:3], gappy_maps)


def test_by_forest_type_nan_where_no_site_year_had_the_cell():
    spec = MapSpec(variables=("evi", "et"))
    values = np.ones((2, 12, 2), np.float32)
    keys = pd.DataFrame({"site": ["A", "B"], "year": [2001, 2001], "igbp": ["ENF", "DBF"]})
    maps = FeatureMaps(spec, values, np.zeros((2, 5), np.float32), keys)
    s = np.ones((2, 12, 2, 2))
    s[0, :, 1] = np.nan  # ENF never had et
    out = by_forest_type(s, maps)
    assert np.isnan(out["ENF"][:, 1]).all() and (out["ENF"][:, 0] == 1).all() and (out["DBF"] == 1).all()


def test_attribution_figures_written(sensitivity, gappy_maps, tmp_path):
    counts = gappy_maps.keys["igbp"].value_counts().to_dict()
    for target in ("gpp", "nee"):
        path = attribution_figure(by_forest_type(sensitivity, gappy_maps), gappy_maps.spec,
                                  tmp_path / f"attribution_{target}.png", target=target, counts=counts)
        assert path.is_file() and path.stat().st_size > 10_000
    signed = attribution_figure(by_forest_type(sensitivity, gappy_maps, signed=True), gappy_maps.spec,
                                tmp_path / "signed" / "a.png")
    assert signed.is_file()


def test_attribution_figure_refuses_bad_input(sensitivity, gappy_maps, tmp_path):
    by_type = by_forest_type(sensitivity, gappy_maps)
    with pytest.raises(SpecError, match="target"):
        attribution_figure(by_type, gappy_maps.spec, tmp_path / "x.png", target="reco")
    with pytest.raises(SpecError, match="shape"):
        attribution_figure({"ENF": np.zeros((12, 6))}, gappy_maps.spec, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
