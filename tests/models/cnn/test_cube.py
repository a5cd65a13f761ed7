"""Annual GPP/NEE maps from cubes (``ds.gpp.estimate_annual``): lazy, blockwise, and the table path's numbers."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import unique_xr  # noqa: F401  (registers the .gpp accessor)
from unique_xr.errors import MissingVariableError, SpecError
from unique_xr.models.cnn import cube as cnn_cube
from unique_xr.models.cnn.cube import (
    CnnHandle,
    estimate_annual,
    feature_maps_from_cube,
    forest_type_index,
    step_means,
    to_feature_maps,
)
from unique_xr.models.cnn.featuremap import MapSpec, feature_maps_from_table
from unique_xr.models.cnn.model import fit_cnn
from unique_xr.models.cnn.schema import ANNUAL_UNITS, FOREST_TYPES
from unique_xr.testing import raise_if_dask_computes
from unique_xr.testing.forest import synthetic_forest_cube
from unique_xr.towers.sites import IGBP_CLASSES

CHUNKS = {"y": 8, "x": 8}
CODES = np.array(list(IGBP_CLASSES))
FOREST_INPUTS = ("lai", "evi", "et", "t_day", "t_night", "precip")


def _forest(ds: xr.Dataset) -> np.ndarray:
    return ds["igbp"].values <= 5


def _with_empty_year(ds: xr.Dataset) -> tuple[xr.Dataset, tuple[int, int]]:
    """The cube with every input of one forest pixel missing in 2010 (its 2011 kept)."""
    iy, ix = (int(i[0]) for i in np.nonzero(_forest(ds)))
    ds = ds.copy(deep=True)
    in_2010 = (ds["time"].dt.year == 2010).values
    for name in FOREST_INPUTS:
        ds[name].values[in_2010, iy, ix] = np.nan
    return ds, (iy, ix)


@pytest.fixture(scope="module")
def monthly():
    """Numpy-backed monthly cube, 2 years x 16 x 16, 10 % cells missing, one forest pixel-year empty."""
    return _with_empty_year(synthetic_forest_cube(ny=16, nx=16, time_step="monthly", seed=1))


@pytest.fixture(scope="module")
def daily():
    return synthetic_forest_cube(ny=8, nx=8, time_step="daily", seed=2, missing=0.3)


@pytest.fixture(scope="module")
def eight_day_model(tiny_config):
    """A tiny CNN on 8-day maps of a synthetic cube (targets made up from LAI): for the machinery only."""
    spec = MapSpec(time_step="8-day")
    ds = synthetic_forest_cube(ny=8, nx=8, time_step="8-day", seed=3)
    maps = to_feature_maps(feature_maps_from_cube(ds, spec), spec)
    gpp = 300.0 * np.nanmean(maps.values[:, :, 0], axis=1)
    return fit_cnn(maps, np.stack([gpp, -0.25 * gpp], axis=1), tiny_config)


def _table(ds: xr.Dataset, iy, ix) -> pd.DataFrame:
    """Pixels' series laid out as a forest table (``site, time, igbp`` and the inputs), one site ``"yy-xx"`` each."""
    frames = []
    for i, j in zip(np.atleast_1d(iy), np.atleast_1d(ix), strict=True):
        pixel = ds.isel(y=int(i), x=int(j))
        frame = pd.DataFrame({name: pixel[name].values.astype(np.float64) for name in FOREST_INPUTS})
        frames.append(frame.assign(site=f"{i:02d}-{j:02d}", time=pixel["time"].values,
                                   igbp=CODES[int(pixel["igbp"]) - 1]))
    return pd.concat(frames, ignore_index=True)


def _assert_same(a: xr.Dataset, b: xr.Dataset) -> None:
    """Equal up to float32 rounding: torch's kernels may round differently for other batch sizes."""
    xr.testing.assert_allclose(a, b, rtol=1e-6, atol=0)
    assert a.attrs == b.attrs and all(a[n].attrs == b[n].attrs for n in a.data_vars)
    for n in a.data_vars:
        np.testing.assert_array_equal(np.isnan(a[n].values), np.isnan(b[n].values))


# ------------------------------------------------------------------------------ numpy kernels


def test_step_means_unsorted_groups_gaps_and_empty_groups():
    values = np.array([[1.0, np.nan], [5.0, 2.0], [3.0, np.nan], [np.nan, np.nan]])
    got = step_means(values, np.array([2, 0, 2, 1]), 4)
    np.testing.assert_array_equal(got, np.array([[5, 2], [np.nan, np.nan], [2, np.nan], [np.nan, np.nan]], "f4"))
    assert got.dtype == np.float32
    assert step_means(np.empty((0, 3)), np.empty(0, int), 2).shape == (2, 3)


def test_forest_type_index_numbers_fill_values_and_codes():
    types = FOREST_TYPES  # ENF, EBF, DNF, DBF, MF = LC_Type1 1..5
    assert forest_type_index(np.array([[1, 5], [10, 255]], np.uint8), types).tolist() == [[0, 4], [-1, -1]]
    assert forest_type_index(np.array([4.0, np.nan, 2.5, 0.0]), types).tolist() == [3, -1, -1, -1]
    assert forest_type_index(np.array(["DBF", "Mixed Forests", "GRA", None], object), types).tolist() == [3, 4, -1, -1]
    assert forest_type_index(np.array([1, 4]), ("DBF",)).tolist() == [-1, 0]
    with pytest.raises(ValueError, match="Unknown IGBP"):
        forest_type_index(np.array(["forest"]), types)


# ------------------------------------------------------------------------------ the synthetic cube


def test_synthetic_forest_cube_is_seeded_and_plausible():
    a = synthetic_forest_cube(ny=6, nx=7, time_step="8-day", seed=5, missing=0.2)
    b = synthetic_forest_cube(ny=6, nx=7, time_step="8-day", seed=5, missing=0.2, chunks={"y": 3})
    xr.testing.assert_identical(a, b.compute())
    assert dict(a.sizes) == {"time": 92, "y": 6, "x": 7} and b["lai"].chunks is not None
    assert set(FOREST_INPUTS) <= set(a.data_vars) and a["igbp"].dims == ("y", "x")
    assert a["et"].attrs["units"] == "mm d-1" and a["t_day"].attrs["units"] == "degC"
    assert 0.15 < float(a["lai"].isnull().mean()) < 0.25
    lai = a["lai"].where(a["igbp"] == 4).mean(("y", "x"))  # deciduous broadleaf: leafless winter
    assert float(lai.sel(time="2010-07").mean()) > 2 * float(lai.sel(time="2010-01").mean())
    c = synthetic_forest_cube(ny=16, nx=16, seed=5)
    assert _forest(c).any() and not _forest(c).all()
    other = synthetic_forest_cube(ny=6, nx=7, time_step="8-day", seed=6, missing=0.2)
    assert not np.array_equal(other["lai"].values, a["lai"].values, equal_nan=True)


# ------------------------------------------------------------------------------ feature maps


@pytest.mark.parametrize("which", ["monthly", "daily"])
def test_feature_maps_equal_the_table_path(which, monthly, daily):
    ds = monthly[0] if which == "monthly" else daily
    spec = MapSpec()
    maps = feature_maps_from_cube(ds.chunk(CHUNKS), spec)
    assert maps.dims == ("year", "y", "x", "step", "variable") and maps.dtype == np.float32
    assert maps.shape == (2, ds.sizes["y"], ds.sizes["x"], 12, 6)
    assert list(maps["variable"].values) == list(spec.variables) and maps["year"].values.tolist() == [2010, 2011]
    computed = maps.compute()
    for iy, ix in [(0, 0), (ds.sizes["y"] - 1, 3)]:
        table = feature_maps_from_table(_table(ds, iy, ix), spec)
        np.testing.assert_array_equal(computed.isel(y=iy, x=ix).values, table.values)


def test_to_feature_maps_keys_and_one_hot(monthly):
    ds = monthly[0]
    spec = MapSpec()
    fm = to_feature_maps(feature_maps_from_cube(ds, spec), spec)
    assert fm.values.shape == (2 * 16 * 16, 12, 6) and list(fm.keys.columns) == ["year", "y", "x", "forest_type"]
    forest = np.tile(_forest(ds).reshape(-1), 2)
    np.testing.assert_array_equal(fm.forest.sum(axis=1), forest.astype("f4"))
    assert fm.keys.loc[forest, "forest_type"].isin(FOREST_TYPES).all() and fm.keys.loc[~forest, "forest_type"].isna().all()


def test_missing_variable_names_it_and_lists_the_cube():
    ds = synthetic_forest_cube(ny=2, nx=2)
    with pytest.raises(MissingVariableError, match=r"\['et'\].*'lai'.*all-NaN"):
        feature_maps_from_cube(ds.drop_vars("et"))
    ds["et"] = xr.full_like(ds["lai"], np.nan)  # an explicit all-NaN variable is accepted
    assert bool(feature_maps_from_cube(ds).sel(variable="et").isnull().all())
    with pytest.raises(MissingVariableError, match="land cover 'lc'"):
        feature_maps_from_cube(ds, land_cover="lc")
    with pytest.raises(SpecError, match="no time steps"):
        feature_maps_from_cube(ds.isel(time=[]))
    with pytest.raises(SpecError, match=r"dims \('y', 'x'\)"):
        feature_maps_from_cube(ds.assign(lai=ds["lai"].isel(time=0)))


def test_cube_coarser_than_the_rows_is_refused():
    ds = synthetic_forest_cube(ny=2, nx=2, time_step="monthly")
    with pytest.raises(SpecError, match=r"31 days apart.*8-day"):
        feature_maps_from_cube(ds, MapSpec(time_step="8-day"))
    eight = synthetic_forest_cube(ny=2, nx=2, time_step="8-day")
    with pytest.raises(SpecError, match="16 days apart.*trained on 16-day maps"):
        feature_maps_from_cube(eight.isel(time=slice(None, None, 2)), MapSpec(time_step="8-day"))
    assert feature_maps_from_cube(eight, MapSpec(time_step="16-day")).sizes["step"] == 23


# ------------------------------------------------------------------------------ annual maps


def test_estimate_annual_is_lazy_with_dims_coords_and_attrs(monthly, tiny_model):
    ds = monthly[0].chunk(CHUNKS)
    with raise_if_dask_computes():
        out = ds.gpp.estimate_annual(tiny_model)
        feature_maps_from_cube(ds, tiny_model.spec)
    assert set(out.data_vars) == {"gpp_annual", "nee_annual", "observed_fraction"}
    for name in out.data_vars:
        assert out[name].dims == ("year", "y", "x") and out[name].dtype == np.float32
        assert out[name].chunks == ((2,), (8, 8), (8, 8))
        assert out[name].attrs["grid_mapping"] == "spatial_ref"
    np.testing.assert_array_equal(out["y"], ds["y"])
    np.testing.assert_array_equal(out["x"], ds["x"])
    assert out["year"].values.tolist() == [2010, 2011] and "spatial_ref" in out.coords
    assert out["gpp_annual"].attrs["units"] == out["nee_annual"].attrs["units"] == ANNUAL_UNITS == "g m-2 yr-1"
    assert "< 0 is uptake" in out["nee_annual"].attrs["long_name"]
    assert out.attrs["model_token"] == tiny_model.token == out["gpp_annual"].attrs["model_token"]
    assert out.attrs["time_step"] == "monthly"


def test_finite_on_forest_with_gaps_nan_off_forest_and_on_empty_years(monthly, tiny_model):
    ds, (iy, ix) = monthly
    out = estimate_annual(ds.chunk(CHUNKS), tiny_model).compute()
    forest = np.broadcast_to(_forest(ds), (2, 16, 16)).copy()
    observed = out["observed_fraction"].values
    assert 0.8 < observed[forest].mean() < 0.95  # 10 % of cells missing at random: every map has gaps
    forest[0, iy, ix] = False  # its 2010 inputs are all missing
    for name in ("gpp_annual", "nee_annual"):
        values = out[name].values
        assert np.isfinite(values[forest]).all()
        assert np.isnan(values[np.broadcast_to(~_forest(ds), (2, 16, 16))]).all()
        assert np.isnan(values[0, iy, ix]) and np.isfinite(values[1, iy, ix])
    assert observed[0, iy, ix] == 0.0
    everywhere = estimate_annual(ds, tiny_model, forests_only=False)
    assert np.isfinite(everywhere["gpp_annual"].values).sum() == 2 * 16 * 16 - 1


def test_numpy_input_equals_dask_input_whatever_the_chunks(monthly, tiny_model):
    ds = monthly[0]
    eager = estimate_annual(ds, tiny_model)
    assert isinstance(eager["gpp_annual"].data, np.ndarray)
    for chunks in (CHUNKS, {"y": 5, "x": 16}, {"y": 2, "x": 2}):
        _assert_same(ds.chunk(chunks).gpp.estimate_annual(tiny_model).compute(), eager)


def test_cube_estimate_equals_model_predict_on_the_table(monthly, daily, tiny_model):
    """The same pixel as a table (feature_maps_from_table -> model.predict) gives the cube's numbers."""
    compared = 0
    for ds in (monthly[0], daily):
        out = estimate_annual(ds.chunk(CHUNKS), tiny_model).compute()
        iy, ix = np.nonzero(_forest(ds))  # row-major, as the table's sites "yy-xx" sort
        maps = feature_maps_from_table(_table(ds, iy, ix), tiny_model.spec)
        pred = tiny_model.predict(maps).reshape(len(iy), 2, 2)  # (pixel, year, gpp/nee)
        assert maps.keys["year"].tolist() == [2010, 2011] * len(iy)
        seen = out["observed_fraction"].values[:, iy, ix].T > 0  # the cube leaves empty years NaN, by design
        for k, name in enumerate(("gpp_annual", "nee_annual")):
            np.testing.assert_allclose(out[name].values[:, iy, ix].T[seen], pred[..., k][seen], rtol=1e-6)
        compared += int(seen.sum())
    assert compared == 2 * (_forest(monthly[0]).sum() + _forest(daily).sum()) - 1


def test_eight_day_model_on_eight_day_and_daily_cubes(eight_day_model, daily):
    eight = synthetic_forest_cube(ny=8, nx=8, time_step="8-day", seed=4, missing=0.2)
    for ds in (eight, daily):
        out = estimate_annual(ds.chunk({"y": 4, "x": 8}), eight_day_model).compute()
        assert out.attrs["time_step"] == "8-day"
        assert np.isfinite(out["gpp_annual"].values[:, _forest(ds)]).all()
        iy, ix = (int(i[0]) for i in np.nonzero(_forest(ds)))
        pred = eight_day_model.predict(feature_maps_from_table(_table(ds, iy, ix), eight_day_model.spec))
        np.testing.assert_allclose(out["gpp_annual"].values[:, iy, ix], pred[:, 0], rtol=1e-6)
    with pytest.raises(SpecError, match="coarser than the 8-day"):
        estimate_annual(synthetic_forest_cube(ny=2, nx=2), eight_day_model)


def test_model_is_one_graph_key_that_every_block_depends_on(monthly, tiny_model, monkeypatch):
    out = estimate_annual(monthly[0].chunk(CHUNKS), tiny_model)
    graph = dict(out.__dask_graph__())
    handle_keys = [k for k in graph if str(k).startswith("CnnHandle-")]
    assert len(handle_keys) == 1
    blocks = [k for k in graph if isinstance(k, tuple) and k[0].startswith("cnn-annual-")]
    assert len(blocks) == 4  # one task per 8 x 8 block
    handle = CnnHandle(tiny_model)
    maps = to_feature_maps(feature_maps_from_cube(monthly[0].isel(y=[0], x=[0, 1]), tiny_model.spec), tiny_model.spec)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(handle)).predict(maps), tiny_model.predict(maps))
    pickled = []
    monkeypatch.setattr(CnnHandle, "__getstate__", lambda self: pickled.append(1) or {"token": self.token})
    for task in graph.values():  # each task on its own, as a scheduler ships it
        pickle.dumps(task)
    assert len(pickled) == 1  # the model travels in its own key, not inside the four block tasks


def test_model_pickles_without_built_networks(monthly, tiny_model):
    fresh = pickle.loads(pickle.dumps(tiny_model))
    size = len(pickle.dumps(fresh))
    fresh.networks()  # built, as after a first prediction
    assert len(pickle.dumps(fresh)) == size
    maps = to_feature_maps(feature_maps_from_cube(monthly[0].isel(y=[0], x=[0, 1]), tiny_model.spec), tiny_model.spec)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fresh)).predict(maps), tiny_model.predict(maps))


def test_lazy_blocks_use_one_torch_thread_and_restore_the_setting(monthly, tiny_model, monkeypatch):
    import torch

    from unique_xr.models.cnn.net import AnnualNet

    seen, real = [], AnnualNet.forward

    def spy(self, x):  # the thread count the network runs with
        seen.append(torch.get_num_threads())
        return real(self, x)

    monkeypatch.setattr(AnnualNet, "forward", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        lazy = estimate_annual(monthly[0].chunk(CHUNKS), tiny_model).compute(scheduler="threads", num_workers=2)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
        seen.clear()
        eager = estimate_annual(monthly[0], tiny_model, threads=2)
        assert set(seen) == {2}
    finally:
        torch.set_num_threads(before)
    _assert_same(lazy, eager)


def test_land_cover_codes_model_folder_and_options(monthly, tiny_model, tmp_path):
    ds = monthly[0]
    as_codes = ds.assign(igbp=(("y", "x"), CODES[ds["igbp"].values - 1].astype(object)))
    folder = tiny_model.save(tmp_path / "cnn")
    xr.testing.assert_identical(estimate_annual(as_codes, folder), estimate_annual(ds, tiny_model))
    with pytest.raises(SpecError, match="forests_only=True needs a land cover"):
        estimate_annual(ds, tiny_model, land_cover=None)
    unknown = estimate_annual(ds.chunk(CHUNKS), tiny_model, land_cover=None, forests_only=False).compute()
    assert np.isfinite(unknown["gpp_annual"].values).sum() == 2 * 16 * 16 - 1  # all but the empty pixel-year
    with pytest.raises(MissingVariableError, match="'precip'"):
        ds.drop_vars("precip").gpp.estimate_annual(tiny_model)
    with pytest.raises(SpecError, match="AnnualCNN"):
        estimate_annual(ds, object())


def test_large_blocks_are_split_in_space(monthly, tiny_model, monkeypatch):
    monkeypatch.setattr(cnn_cube, "MAX_BLOCK_CELLS", 24 * 8 * 8)  # 24 months x 64 pixels per block
    ds = monthly[0].chunk({"time": 6})  # time chunks are joined, space is split
    out = estimate_annual(ds, tiny_model)
    assert out["gpp_annual"].chunks == ((2,), (8, 8), (8, 8))
    _assert_same(out.compute(), estimate_annual(monthly[0], tiny_model))
    assert feature_maps_from_cube(ds, tiny_model.spec, chunks={"y": 16, "x": 4}).chunks[1:3] == ((16,), (4,) * 4)
