"""Daily meteorological drivers from ERA5 / ERA5-Land style files, with hand-computed expectations.

Synthetic reanalysis files are written in ``tmp_path``; the VPD formula is also checked against real
FluxDataKit tower rows (CC-BY-4.0, read from ``../shared/data/towers``, not copied).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pyproj import Transformer

from unique_xr.errors import GridError, MissingVariableError, UnitsError
from unique_xr.features.meteo import (
    bilinear_regular,
    daily_drivers,
    open_reanalysis,
    saturation_vapour_pressure,
    vapour_pressure_deficit,
)
from unique_xr.grid import GridSpec
from unique_xr.testing import raise_if_dask_computes

GRID = GridSpec(crs="EPSG:32633", resolution=500.0, bounds=(500000, 5000000, 503000, 5003000))  # 6 x 6 px
NODE_PIXEL = (2, 3)  # (row, col) of the pixel whose centre is put exactly on a reanalysis node
TO_LONLAT = Transformer.from_crs(GRID.crs, "EPSG:4326", always_xy=True)
LON_P, LAT_P = TO_LONLAT.transform(GRID.x[NODE_PIXEL[1]], GRID.y[NODE_PIXEL[0]])
TIMES = pd.date_range("2020-07-01T00:00", "2020-07-03T00:00", freq="h")  # 49 hourly steps


def es_by_hand(t: float) -> float:
    """FAO-56 / Tetens, written out independently of the library: hPa from degC."""
    return 6.108 * math.exp(17.27 * t / (t + 237.3))


def per_step_ssrd_w(times: pd.DatetimeIndex) -> np.ndarray:
    """Mean flux (W m-2) of the hour *ending* at each time: 200 for hours ending 07..18 UTC, else 0;
    240 for the hour ending 2020-07-02 00:00 (which belongs to 1 July)."""
    w = np.where((times.hour >= 7) & (times.hour <= 18), 200.0, 0.0)
    w[times == pd.Timestamp("2020-07-02T00:00")] = 240.0
    return w


def per_step_tp_m(times: pd.DatetimeIndex) -> np.ndarray:
    """1 mm per hour in hours ending during 1 July (01:00 .. 2 July 00:00), then 0.5 mm."""
    return np.where(times <= pd.Timestamp("2020-07-02T00:00"), 0.001, 0.0005)


def since_midnight(per_step: np.ndarray, times: pd.DatetimeIndex) -> np.ndarray:
    """ERA5-Land style: accumulate the per-step values from 00 UTC; the 00 UTC value is the previous day's total."""
    out = np.empty_like(per_step)
    acc = 0.0
    for k, t in enumerate(times):
        acc = (acc if t.hour != 1 else 0.0) + per_step[k]
        out[k] = acc
    return out


def make_reanalysis(*, era5_land: bool = False, long_names: bool = False, t_units: str = "K", t_offset: float = 273.15) -> xr.Dataset:
    """A 7 x 7 node, 0.1 deg, hourly reanalysis around the grid, latitude descending like ERA5.

    At node (LAT_P, LON_P): t2m alternates 15 / 25 degC by hour on 1 July (16 / 26 on 2 July);
    d2m is 10 degC everywhere. t2m varies linearly in space (+2 K per deg lon, +3 K per deg lat),
    ssrd and tp by a factor (1 + 0.5 * dlon), so bilinear interpolation is exact for them.
    """
    lat = LAT_P + 0.1 * np.arange(3, -4, -1)
    lon = LON_P + 0.1 * np.arange(-3, 4)
    dlat = (lat - LAT_P)[None, :, None]
    dlon = (lon - LON_P)[None, None, :]
    day = (TIMES.normalize() - TIMES[0].normalize()).days.values
    t_node = 15.0 + 10.0 * (TIMES.hour.values % 2) + day
    t2m = t_offset + t_node[:, None, None] + 2.0 * dlon + 3.0 * dlat
    d2m = np.full_like(t2m, t_offset + 10.0)
    factor = 1.0 + 0.5 * dlon + 0 * dlat
    ssrd_step = 3600.0 * per_step_ssrd_w(TIMES)
    tp_step = per_step_tp_m(TIMES)
    if era5_land:
        ssrd_step, tp_step = since_midnight(ssrd_step, TIMES), since_midnight(tp_step, TIMES)
    ssrd = ssrd_step[:, None, None] * factor
    tp = tp_step[:, None, None] * factor
    names = (
        {"t2m": "2m_temperature", "d2m": "2m_dewpoint_temperature", "ssrd": "surface_solar_radiation_downwards", "tp": "total_precipitation"}
        if long_names
        else {"t2m": "t2m", "d2m": "d2m", "ssrd": "ssrd", "tp": "tp"}
    )
    dims = ("valid_time", "latitude", "longitude") if not long_names else ("time", "lat", "lon")
    coords = {dims[0]: TIMES, dims[1]: lat, dims[2]: lon}
    ds = xr.Dataset(
        {
            names["t2m"]: (dims, t2m.astype("float32"), {"units": t_units, "long_name": "2 metre temperature"}),
            names["d2m"]: (dims, d2m.astype("float32"), {"units": t_units}),
            names["ssrd"]: (dims, ssrd.astype("float32"), {"units": "J m**-2"}),
            names["tp"]: (dims, tp.astype("float32"), {"units": "m"}),
        },
        coords=coords,
        attrs={"title": "ERA5-Land hourly (synthetic)" if era5_land else "ERA5 hourly (synthetic)"},
    )
    return ds


@pytest.fixture
def era5_file(tmp_path):
    path = tmp_path / "era5.nc"
    make_reanalysis().to_netcdf(path)
    return path


# ----------------------------------------------------------------------------- kernels
def test_vpd_formula_at_values_worked_by_hand():
    # es(20) = 6.108 * exp(17.27 * 20 / 257.3) = 6.108 * exp(1.342402) = 6.108 * 3.828230 = 23.3828 hPa
    assert float(saturation_vapour_pressure(20.0)) == pytest.approx(23.3828, abs=1e-3)
    # es(0) = 6.108 hPa exactly
    assert float(saturation_vapour_pressure(0.0)) == pytest.approx(6.108, abs=1e-12)
    # es(30) = 6.108 * exp(518.1 / 267.3) = 6.108 * exp(1.938272) = 6.108 * 6.946894 = 42.4316 hPa
    assert float(saturation_vapour_pressure(30.0)) == pytest.approx(42.4316, abs=1e-3)
    # VPD(30, 20) = 42.4316 - 23.3828 = 19.0488 hPa
    assert float(vapour_pressure_deficit(30.0, 20.0)) == pytest.approx(19.0488, abs=2e-3)
    assert float(vapour_pressure_deficit(10.0, 10.0)) == 0.0
    assert float(vapour_pressure_deficit(10.0, 10.5)) == 0.0  # supersaturated -> 0, not negative
    assert np.isnan(vapour_pressure_deficit(np.nan, 10.0))


def test_vpd_formula_against_real_fluxdatakit_tower_days(shared_data):
    """FluxDataKit daily met (CC-BY-4.0): vpd = es(temp) - vapr. Rebuild the dewpoint from vapr and check
    our VPD(temp, dewpoint) reproduces the tower's vpd column on real site-days."""
    df = pd.read_csv(
        shared_data / "towers/fluxdatakit_daily_meteorology_100sites/DERIVED_daily_gpp_x_meteo.csv",
        usecols=["sitename", "date", "temp", "vapr", "vpd"],
    )
    rows = df[df["sitename"].isin(["CH-Oe1", "CZ-wet", "DK-Sor"])].dropna()
    rows = rows[rows["vpd"] > 10.0].iloc[::5]  # dry enough that vapr < es(temp)
    assert len(rows) > 500
    e_hpa = rows["vapr"].to_numpy() / 100.0
    ln = np.log(e_hpa / 6.108)
    dewpoint = 237.3 * ln / (17.27 - ln)  # Tetens inverted by hand
    ours_hpa = vapour_pressure_deficit(rows["temp"].to_numpy(), dewpoint)
    tower_hpa = rows["vpd"].to_numpy() / 100.0
    diff = np.abs(ours_hpa - tower_hpa)
    assert np.median(diff) < 0.01  # hPa
    assert np.percentile(diff, 95) < 0.05


def test_bilinear_kernel_exact_on_linear_fields_and_nodes():
    lat_nodes, lon_nodes = np.array([0.0, 1.0, 2.0]), np.array([10.0, 10.5, 11.0, 11.5])
    field = 3.0 + 2.0 * lat_nodes[:, None] - 4.0 * lon_nodes[None, :]
    lat, lon = np.array([[0.25, 1.9]]), np.array([[10.1, 11.4]])
    np.testing.assert_allclose(bilinear_regular(field, lat_nodes, lon_nodes, lat, lon), 3 + 2 * lat - 4 * lon)
    # on a node: the node's value, even next to NaN corners (renormalised weights)
    field_nan = field.copy()
    field_nan[2, 2] = np.nan
    assert bilinear_regular(field_nan, lat_nodes, lon_nodes, np.array(1.0), np.array(10.5)) == field[1, 1]
    # a cell with one NaN corner averages the others with their renormalised weights
    got = bilinear_regular(field_nan, lat_nodes, lon_nodes, np.array(1.5), np.array(10.75))
    assert got == pytest.approx((field[1, 1] + field[1, 2] + field[2, 1]) / 3)
    assert bilinear_regular(field, lat_nodes, lon_nodes, np.array(0.2), np.array(10.4), method="nearest") == field[0, 1]


# ----------------------------------------------------------------------------- daily drivers
def test_hourly_era5_to_daily_by_hand(era5_file):
    out = daily_drivers(era5_file, GRID)
    assert list(out.time.dt.strftime("%Y-%m-%d").values) == ["2020-07-01", "2020-07-02"]  # 3 July is incomplete
    assert out["air_temperature"].dims == ("time", "y", "x")
    assert all(out[v].dtype == np.float32 for v in out.data_vars)
    r, c = NODE_PIXEL
    node = out.isel(y=r, x=c)
    # hourly T alternates 15 / 25 degC (day 1) and 16 / 26 (day 2)
    np.testing.assert_allclose(node["air_temperature"].values, [20.0, 21.0], atol=1e-4)
    # VPD is averaged hourly, not computed from the daily mean temperature
    vpd_day1 = (es_by_hand(15) + es_by_hand(25)) / 2 - es_by_hand(10)
    vpd_day2 = (es_by_hand(16) + es_by_hand(26)) / 2 - es_by_hand(10)
    np.testing.assert_allclose(node["vpd"].values, [vpd_day1, vpd_day2], rtol=1e-5)
    assert abs(vpd_day1 - (es_by_hand(20) - es_by_hand(10))) > 0.3  # the two orders really differ
    # per-hour accumulations: day 1 = 12 h x 200 + the hour ending 2 July 00:00 (240) -> 2640 / 24 = 110 W m-2
    np.testing.assert_allclose(node["shortwave_radiation"].values, [110.0, 100.0], rtol=1e-5)
    np.testing.assert_allclose(node["precipitation"].values, [24.0, 12.0], rtol=1e-5)
    for name, units in [("air_temperature", "degC"), ("vpd", "hPa"), ("shortwave_radiation", "W m-2"), ("precipitation", "mm d-1")]:
        assert out[name].attrs["units"] == units
        assert out[name].attrs["grid_mapping"] == "spatial_ref"
    assert out.attrs["accumulation_ssrd"] == "per_step"
    assert GridSpec.from_xarray(out) == GRID


def test_interpolation_is_exact_on_a_node_and_for_linear_fields(era5_file):
    out = daily_drivers(era5_file, GRID, variables=("air_temperature", "shortwave_radiation"))
    xx, yy = np.meshgrid(GRID.x, GRID.y)
    lon, lat = TO_LONLAT.transform(xx, yy)
    # t2m is linear in space: bilinear interpolation must reproduce it at every pixel centre
    expected_t = 20.0 + 2.0 * (lon - LON_P) + 3.0 * (lat - LAT_P)
    np.testing.assert_allclose(out["air_temperature"].values[0], expected_t, atol=1e-4)
    np.testing.assert_allclose(out["shortwave_radiation"].values[1], 100.0 * (1 + 0.5 * (lon - LON_P)), rtol=1e-5)
    # the pixel on the node carries the node's own daily value
    ds = make_reanalysis()
    node_t = ds["t2m"].sel(latitude=LAT_P, longitude=LON_P).sel(valid_time="2020-07-01").mean() - 273.15
    assert out["air_temperature"].values[0][NODE_PIXEL] == pytest.approx(float(node_t), abs=1e-5)


def test_era5_land_since_midnight_accumulations(tmp_path):
    path = tmp_path / "era5_land.nc"
    make_reanalysis(era5_land=True).to_netcdf(path)
    r, c = NODE_PIXEL
    auto = daily_drivers(path, GRID, variables=("shortwave_radiation", "precipitation"))
    assert auto.attrs["accumulation_ssrd"] == "since_midnight"  # from the title attribute
    np.testing.assert_allclose(auto["shortwave_radiation"].values[:, r, c], [110.0, 100.0], rtol=1e-5)
    np.testing.assert_allclose(auto["precipitation"].values[:, r, c], [24.0, 12.0], rtol=1e-5)
    # same values detected from the data alone (in memory, no telling attributes)
    ds = make_reanalysis(era5_land=True)
    ds.attrs = {}
    detected = daily_drivers(ds, GRID, variables=("shortwave_radiation",))
    assert detected.attrs["accumulation_ssrd"] == "since_midnight"
    np.testing.assert_allclose(detected["shortwave_radiation"].values[:, r, c], [110.0, 100.0], rtol=1e-5)
    # treated as per-step, the cumulative values would be wildly wrong: the choice matters
    wrong = daily_drivers(ds, GRID, variables=("precipitation",), accumulation="per_step", time="2020-07-01")
    assert wrong["precipitation"].values[0, r, c] > 100


def test_lazy_file_without_telling_attributes_asks_how_it_accumulates(tmp_path):
    """A lazily opened hourly file that names neither ERA5 nor ERA5-Land: no guessing."""
    from unique_xr.errors import SpecError

    path = tmp_path / "anonymous.nc"
    ds = make_reanalysis(era5_land=True)
    ds.attrs = {}
    ds.to_netcdf(path)
    with pytest.raises(SpecError, match="since_midnight"):
        daily_drivers(path, GRID, variables=("precipitation",))
    r, c = NODE_PIXEL
    told = daily_drivers(path, GRID, variables=("precipitation",), accumulation="since_midnight")
    np.testing.assert_allclose(told["precipitation"].values[:, r, c], [24.0, 12.0], rtol=1e-5)


def test_daily_input_and_long_names_and_time_selection():
    ds = make_reanalysis(long_names=True)
    out = daily_drivers(ds, GRID, time=("2020-07-02", "2020-07-02"))
    assert list(out.time.dt.day.values) == [2]
    r, c = NODE_PIXEL
    assert out["air_temperature"].values[0, r, c] == pytest.approx(21.0, abs=1e-4)
    # a daily file (one step per day): temperatures are daily means, accumulations daily totals
    daily = xr.Dataset(
        {
            "temperature_2m": (("time", "lat", "lon"), np.full((2, 3, 3), 293.15), {"units": "K"}),
            "dewpoint_temperature_2m": (("time", "lat", "lon"), np.full((2, 3, 3), 283.15), {"units": "K"}),
            "surface_solar_radiation_downwards_sum": (("time", "lat", "lon"), np.full((2, 3, 3), 8.64e6), {"units": "J m-2"}),
            "total_precipitation_sum": (("time", "lat", "lon"), np.full((2, 3, 3), 0.0035), {"units": "m"}),
        },
        coords={"time": pd.date_range("2021-05-01", periods=2), "lat": LAT_P + np.array([-0.1, 0, 0.1]), "lon": LON_P + np.array([-0.1, 0, 0.1])},
    )
    d = daily_drivers(daily, GRID)
    np.testing.assert_allclose(d["air_temperature"].values, 20.0, atol=1e-4)
    np.testing.assert_allclose(d["vpd"].values, es_by_hand(20) - es_by_hand(10), rtol=1e-5)
    np.testing.assert_allclose(d["shortwave_radiation"].values, 100.0, rtol=1e-6)  # 8.64 MJ / 86400 s
    np.testing.assert_allclose(d["precipitation"].values, 3.5, rtol=1e-5)


def test_full_chain_reproduces_real_tower_temperature_and_vpd(shared_data):
    """Feed real FluxDataKit daily temp + (dewpoint from vapr) as a uniform daily 'reanalysis'."""
    df = pd.read_csv(
        shared_data / "towers/fluxdatakit_daily_meteorology_100sites/DERIVED_daily_gpp_x_meteo.csv",
        usecols=["sitename", "date", "temp", "vapr", "vpd"],
    )
    rows = df[(df["sitename"] == "CH-Oe1") & (df["vpd"] > 10.0)].dropna().iloc[:40]
    ln = np.log(rows["vapr"].to_numpy() / 100.0 / 6.108)
    dewpoint = 237.3 * ln / (17.27 - ln)
    n = len(rows)
    shape = (n, 3, 3)
    ds = xr.Dataset(
        {
            "t2m": (("time", "latitude", "longitude"), np.broadcast_to(rows["temp"].to_numpy()[:, None, None] + 273.15, shape), {"units": "K"}),
            "d2m": (("time", "latitude", "longitude"), np.broadcast_to(dewpoint[:, None, None] + 273.15, shape), {"units": "K"}),
        },
        coords={
            "time": pd.DatetimeIndex(rows["date"]).values,
            "latitude": LAT_P + np.array([0.1, 0, -0.1]),
            "longitude": LON_P + np.array([-0.1, 0, 0.1]),
        },
    )
    days = pd.DatetimeIndex(rows["date"])
    out = daily_drivers(ds, GRID, variables=("air_temperature", "vpd"), time=(days[0], days[-1]))
    got = out.sel(time=days).isel(y=0, x=0)
    np.testing.assert_allclose(got["air_temperature"].values, rows["temp"].to_numpy(), atol=1e-3)
    np.testing.assert_allclose(got["vpd"].values, rows["vpd"].to_numpy() / 100.0, atol=0.02)


# ----------------------------------------------------------------------------- errors
def test_temperature_units_mistakes(tmp_path):
    # degC attrs + degC values: converted properly, same result as Kelvin
    celsius = daily_drivers(make_reanalysis(t_units="degC", t_offset=0.0), GRID, variables=("air_temperature",))
    kelvin = daily_drivers(make_reanalysis(), GRID, variables=("air_temperature",))
    np.testing.assert_allclose(celsius["air_temperature"].values, kelvin["air_temperature"].values, atol=1e-4)
    # attrs say degC, values are ~290 K
    with pytest.raises(UnitsError, match=r"say degC.*looks like Kelvin"):
        daily_drivers(make_reanalysis(t_units="degC"), GRID, variables=("air_temperature",))
    # attrs say K, values are ~15 degC
    with pytest.raises(UnitsError, match=r"say Kelvin.*looks like degC"):
        daily_drivers(make_reanalysis(t_offset=0.0), GRID, variables=("vpd",))
    with pytest.raises(UnitsError, match="unknown temperature units"):
        daily_drivers(make_reanalysis(t_units="F"), GRID, variables=("air_temperature",))
    # on Dask input the value check runs (and raises) when computed, not while building
    path = tmp_path / "wrong.nc"
    make_reanalysis(t_units="degC").to_netcdf(path)
    with raise_if_dask_computes():
        lazy = daily_drivers(path, GRID, variables=("air_temperature",))
    with pytest.raises(UnitsError, match="looks like Kelvin"):
        lazy.compute()


def test_missing_variable_and_outside_domain(era5_file):
    ds = make_reanalysis().drop_vars("d2m")
    with pytest.raises(MissingVariableError, match=r"\['d2m'\].*2m_dewpoint_temperature"):
        daily_drivers(ds, GRID)
    assert "vpd" not in daily_drivers(ds, GRID, variables=("air_temperature",)).data_vars
    far = GridSpec(crs="EPSG:32633", resolution=500.0, bounds=(600000, 5000000, 603000, 5003000))  # ~1.3 deg east
    with pytest.raises(GridError, match="not inside the reanalysis domain"):
        daily_drivers(era5_file, far)
    with pytest.raises(FileNotFoundError, match="No reanalysis"):
        open_reanalysis(era5_file.parent / "nope.nc")


# ----------------------------------------------------------------------------- laziness
def test_daily_drivers_lazy_on_dask_and_equal_to_numpy(era5_file):
    opened = open_reanalysis(era5_file)
    assert opened["t2m"].chunks is not None and set(opened.data_vars) == {"t2m", "d2m", "ssrd", "tp"}
    with raise_if_dask_computes():
        lazy = daily_drivers(era5_file, GRID, chunks={"y": 4, "x": 4})
    assert lazy["vpd"].chunks[1:] == ((4, 2), (4, 2))
    eager = daily_drivers(make_reanalysis(), GRID)
    xr.testing.assert_allclose(lazy.compute(), eager, rtol=1e-6)
