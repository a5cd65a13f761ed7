"""The lazy synthetic input cube: laziness, determinism, value ranges, and GPP from a real model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pyproj import CRS

import unique_xr  # noqa: F401  (registers ds.gpp)
from unique_xr.errors import GridError, SpecError
from unique_xr.grid import GridSpec
from unique_xr.models.features import RECIPES, input_columns
from unique_xr.testing import raise_if_dask_computes
from unique_xr.testing.cube import VARIABLES, synthetic_inputs

TABLE = "towers/fluxnet2015_daily_gpp_x_modis_nbar_lst/daily_gpp_x_modis_x_met.csv.gz"
REFLECTANCE = ("red", "nir", "blue", "green", "nir2", "swir1", "swir2")


@pytest.fixture(scope="module")
def gpp_m_cube() -> xr.Dataset:
    """A year of daily 500 m inputs on 48 x 40 pixels, computed once."""
    return synthetic_inputs("gpp_m", shape=(365, 48, 40), chunks={"y": 24, "x": 40}, seed=3).compute()


@pytest.fixture(scope="module")
def tiny_gpp_m_model(shared_data):
    """A 20-tree GPP_M model trained by the library on the real daily tower table (about 2 s)."""
    from unique_xr.models.lgbm import TrainConfig, train
    from unique_xr.towers import read_tower_table

    table = read_tower_table(shared_data / TABLE)
    config = TrainConfig(folds=0, num_boost_round=20, early_stopping_rounds=0, baselines=False)
    return train(table, config).model


@pytest.mark.parametrize("kind", ["gpp_m", "gpp_l"])
def test_building_computes_nothing(kind):
    with raise_if_dask_computes():
        ds = synthetic_inputs(kind, shape=(40, 64, 48), chunks={"time": 16, "y": 32, "x": 32})
    assert tuple(ds.data_vars) == VARIABLES[kind]
    for name, var in ds.data_vars.items():
        assert var.dims == ("time", "y", "x")
        assert var.dtype == np.float32
        assert var.chunks == ((16, 16, 8), (32, 32), (32, 16)), name
        assert var.attrs["grid_mapping"] == "spatial_ref"
        assert var.attrs["units"] in ("1", "K", "degC", "W m-2", "hPa")
    # every variable is an input the model of that kind reads under its data-layer name
    assert set(VARIABLES[kind]) <= input_columns(RECIPES[kind])
    assert ds["lst_day"].attrs["standard_name"] == "surface_temperature"
    assert ds["shortwave_radiation"].attrs["units"] == "W m-2"


def test_a_100_gb_cube_is_free_until_a_block_is_computed():
    with raise_if_dask_computes():
        ds = synthetic_inputs("gpp_m", shape=(3650, 768, 768), chunks={"time": 365, "y": 32, "x": 32})
    assert ds.nbytes > 100e9
    one_block = ds.isel(time=slice(365, 730), y=slice(32, 64), x=slice(0, 32))
    assert one_block["nir"].data.npartitions == 1
    values = one_block.compute()
    assert np.isfinite(values["nir"].values).mean() > 0.3


def test_same_seed_same_values_whatever_the_chunks(gpp_m_cube):
    again = synthetic_inputs("gpp_m", shape=(365, 48, 40), chunks={"time": 200, "y": 17, "x": 20}, seed=3)
    xr.testing.assert_identical(again.compute(), gpp_m_cube)
    other = synthetic_inputs("gpp_m", shape=(365, 48, 40), chunks={"y": 24, "x": 40}, seed=4)["nir"].values
    assert not np.array_equal(other, gpp_m_cube["nir"].values, equal_nan=True)


def test_the_land_surface_depends_on_position_only():
    """A small grid inside a larger one sees the same reflectance and clouds at the same places
    (the climate follows the grid's centre latitude, so temperatures differ slightly)."""
    small = synthetic_inputs("gpp_l", shape=(5, 16, 16), seed=9, grid=_grid(30.0, 16, 16, left=600_000.0))
    large = synthetic_inputs("gpp_l", shape=(5, 48, 64), seed=9, grid=_grid(30.0, 48, 64, left=600_000.0 - 30 * 20))
    window = large.isel(y=slice(0, 16), x=slice(20, 36)).compute()
    for name in ("blue", "green", "red", "nir", "swir1", "swir2"):
        np.testing.assert_array_equal(small[name].values, window[name].values)
    assert np.isnan(window["nir"].values).any()


def test_value_ranges_and_clouds(gpp_m_cube):
    ds = gpp_m_cube
    cloud = np.isnan(ds["nir"].values)
    assert 0.12 < cloud.mean() < 0.28  # cloud_fraction=0.2 on average over the year
    per_day = cloud.mean(axis=(1, 2))
    assert per_day.std() > 0.03  # each day has its own cover
    for name in REFLECTANCE:
        values = ds[name].values
        np.testing.assert_array_equal(np.isnan(values), cloud)
        assert np.nanmin(values) > 0.0 and np.nanmax(values) < 1.0, name
    for name in ("lst_day", "lst_day_aqua"):
        np.testing.assert_array_equal(np.isnan(ds[name].values), cloud)
        assert 240.0 < np.nanmin(ds[name].values) and np.nanmax(ds[name].values) < 330.0
    for name, lo, hi in (("air_temperature", -30.0, 40.0), ("shortwave_radiation", 0.0, 400.0), ("vpd", 0.0, 60.0)):
        values = ds[name].values
        assert np.isfinite(values).all(), name
        assert lo <= values.min() and values.max() <= hi, name
    # a northern mid-latitude year: green and warm in July, brown and cold in January
    ndvi = ((ds["nir"] - ds["red"]) / (ds["nir"] + ds["red"])).mean(("y", "x"))
    july, january = ds["time"].dt.month == 7, ds["time"].dt.month == 1
    assert float(ndvi[july].mean()) > float(ndvi[january].mean()) + 0.2
    assert float(ds["air_temperature"][july].mean()) > float(ds["air_temperature"][january].mean()) + 10.0
    assert float(ds["shortwave_radiation"][july].mean()) > 3 * float(ds["shortwave_radiation"][january].mean())
    # land cover varies in space: more than one spectrum in July
    assert float(ds["nir"][july].std()) > 0.03


def test_gpp_l_axis_and_grid():
    ds = synthetic_inputs("gpp_l", shape=(4, 8, 8), start="2021-03-05", cloud_fraction=0.0).compute()
    assert list(pd.DatetimeIndex(ds["time"].values).strftime("%Y-%m-%d")) == [
        "2021-03-05", "2021-03-21", "2021-04-06", "2021-04-22"]
    grid = GridSpec.from_xarray(ds)
    assert grid.resolution == 30.0 and grid.crs == "EPSG:32632"
    assert not any(np.isnan(ds[n].values).any() for n in ds.data_vars)  # no clouds asked
    assert GridSpec.from_xarray(synthetic_inputs("gpp_m", shape=(2, 4, 4))).resolution == 500.0
    lat = CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"]).to_epsg()
    assert lat == 32632


def test_grid_argument_and_errors():
    grid = _grid(500.0, 6, 5, left=400_000.0, epsg=32733)  # southern hemisphere
    ds = synthetic_inputs("gpp_m", shape=(10, 6, 5), grid=grid)
    assert GridSpec.from_xarray(ds) == grid
    with pytest.raises(GridError, match="shape"):
        synthetic_inputs("gpp_m", shape=(10, 5, 5), grid=grid)
    with pytest.raises(SpecError, match="kind"):
        synthetic_inputs("gpp_x")
    with pytest.raises(SpecError, match="cloud_fraction"):
        synthetic_inputs(cloud_fraction=1.5)
    with pytest.raises(SpecError, match="chunks may only name"):
        synthetic_inputs(chunks={"t": 4})
    with pytest.raises(SpecError, match="shape"):
        synthetic_inputs(shape=(0, 4, 4))
    with pytest.raises(SpecError, match="seed"):
        synthetic_inputs(seed=-1)


def test_estimate_gives_gpp_on_clear_pixels(gpp_m_cube, tiny_gpp_m_model):
    cube = synthetic_inputs("gpp_m", shape=(365, 48, 40), chunks={"y": 24, "x": 40}, seed=3)
    out = cube.gpp.estimate(tiny_gpp_m_model).compute()
    gpp = out["gpp"].values
    clear = np.isfinite(gpp_m_cube["nir"].values)
    assert np.isfinite(gpp[clear]).mean() > 0.95
    assert np.nanmin(gpp) > -1.0 and np.nanmax(gpp) < 30.0
    month = out["time"].dt.month
    assert float(out["gpp"][month == 7].mean()) > 2 * float(out["gpp"][month == 1].mean())


def _grid(res: float, ny: int, nx: int, *, left: float, epsg: int = 32632) -> GridSpec:
    top = 5_650_000.0 if epsg < 32700 else 7_000_000.0
    return GridSpec(crs=f"EPSG:{epsg}", resolution=res, bounds=(left, top - ny * res, left + nx * res, top))
