"""Per-class summaries of a GPP cube: values against numpy, period sums, NaN, laziness, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import unique_xr  # noqa: F401  (registers ds.gpp)
from unique_xr.errors import AllFillError, MissingVariableError, SpecError, UnitsError
from unique_xr.grid import GridSpec
from unique_xr.schema import GPP_UNITS, cf_attrs, is_dask
from unique_xr.search.collections import ESA_WORLDCOVER_CLASSES
from unique_xr.testing import raise_if_dask_computes
from unique_xr.write.summary import ALL, ALL_CODE, summarise

NT, NY, NX = 20, 48, 64
START = "2020-02-20"  # 10 days of February (leap year) and 10 of March
#: class code -> base GPP (g m-2 d-1); shrubland (20) is listed in flag_values but occurs nowhere
BASE = {10: 8.0, 30: 4.0, 40: 6.0, 80: 1.0}


def make_cube(seed: int = 0, *, chunks: dict | None = None) -> xr.Dataset:
    """Four land-cover stripes plus no-data pixels (code 0), noisy GPP with NaN holes; water all NaN on day 3."""
    rng = np.random.default_rng(seed)
    codes = np.zeros((NY, NX), "uint8")
    codes[:, :16], codes[:, 16:32], codes[:, 32:56], codes[:40, 56:] = 10, 30, 40, 80
    base = np.vectorize(lambda c: BASE.get(int(c), np.nan))(codes).astype("float32")
    days = np.arange(NT, dtype="float32")[:, None, None]
    gpp = (base[None] * (1 + 0.02 * days) + rng.normal(0, 0.5, (NT, NY, NX))).astype("float32")
    gpp[rng.random(gpp.shape) < 0.1] = np.nan  # clouds
    gpp[3][codes == 80] = np.nan  # no water pixel on day 3
    gpp[:, :, 60:] = np.nan  # outside the region
    grid = GridSpec(crs="EPSG:32633", resolution=30.0, bounds=(500_000.0, 4_000_000.0, 500_000.0 + 30 * NX,
                                                               4_000_000.0 + 30 * NY))
    flags = sorted(ESA_WORLDCOVER_CLASSES)
    ds = xr.Dataset(
        {"gpp": (("time", "y", "x"), gpp, cf_attrs("gpp", cell_methods="time: mean")),
         "land_cover": (("y", "x"), codes, {"flag_values": flags,
                                            "flag_meanings": " ".join(ESA_WORLDCOVER_CLASSES[c] for c in flags)})},
        coords={"time": pd.date_range(START, periods=NT)},
    )
    ds = grid.attach(ds)
    ds["time_bnds"] = (("time", "nv"), np.stack([ds["time"].values, ds["time"].values + np.timedelta64(1, "D")], 1))
    return ds.chunk(chunks or {"time": 7, "y": 24, "x": 32})


def numpy_means(ds: xr.Dataset) -> dict[int, np.ndarray]:
    """code -> daily nanmean over that class's pixels; -1 -> over every listed class."""
    gpp, codes = ds["gpp"].values, ds["land_cover"].values
    out = {c: np.array([np.nanmean(g[codes == c]) if np.isfinite(g[codes == c]).any() else np.nan for g in gpp])
           for c in BASE}
    anyclass = np.isin(codes, list(BASE))
    out[-1] = np.array([np.nanmean(g[anyclass]) for g in gpp])
    return out


@pytest.fixture(scope="module")
def cube() -> xr.Dataset:
    return make_cube()


def test_class_means_equal_numpy(cube):
    out = summarise(cube).compute()
    assert out["class"].values.tolist() == ["tree_cover", "grassland", "cropland", "permanent_water", ALL]
    assert out["code"].values.tolist() == [10, 30, 40, 80, ALL_CODE]
    expect = numpy_means(cube.compute())
    for code, want in expect.items():
        got = out["gpp"].sel({"class": out["class"][out["code"] == code].item()}).values
        np.testing.assert_allclose(got, want, rtol=1e-5, equal_nan=True)
    assert out["gpp"].dims == ("class", "time") and set(out.coords) == {"class", "code", "time"}
    assert out["gpp"].attrs["units"] == GPP_UNITS
    assert out["gpp"].attrs["cell_methods"] == "time: mean area: mean where land_cover"


def test_pixels_and_valid_pixels(cube):
    out = summarise(cube).compute()
    codes = cube["land_cover"].values
    want = [int((codes == c).sum()) for c in BASE]
    assert out["pixels"].values.tolist() == [*want, sum(want)]
    assert out.attrs["pixel_area_m2"] == 900.0
    gpp = cube["gpp"].values
    np.testing.assert_array_equal(out["valid_pixels"].sel({"class": "cropland"}).values,
                                  np.isfinite(gpp[:, codes == 40]).sum(axis=1))


def test_nan_day_of_a_class_is_nan_not_zero(cube):
    out = summarise(cube).compute()
    water = out.sel({"class": "permanent_water"})
    assert np.isnan(water["gpp"].values[3]) and water["valid_pixels"].values[3] == 0
    assert np.isfinite(water["gpp"].values[np.arange(NT) != 3]).all()


def test_absent_classes_dropped(cube):
    out = summarise(cube)
    assert "shrubland" not in out["class"].values and "no_data" not in out["class"].values
    assert 0 not in out["code"].values  # no-data pixels belong to no class


def test_result_is_lazy():
    ds = make_cube()
    with raise_if_dask_computes(max_computes=1):  # only the 2-D labels, to find the classes present
        out = summarise(ds, freq="MS")
    assert is_dask(out["gpp"]) and is_dask(out["valid_days"])
    eager_labels = ds.assign(land_cover=ds["land_cover"].compute())
    with raise_if_dask_computes():
        out = eager_labels.gpp.summary()
    assert is_dask(out["gpp"]) and is_dask(out["valid_pixels"])


def test_period_sums_monthly_and_seasonal(cube):
    daily = summarise(cube).compute()
    for freq, labels in (("MS", ["2020-02-01", "2020-03-01"]), ("QS-DEC", ["2019-12-01", "2020-03-01"])):
        out = summarise(cube, freq=freq).compute()
        assert [f"{t:%Y-%m-%d}" for t in pd.DatetimeIndex(out["time"].values)] == labels
        assert out["days"].values.tolist() == [10, 10]
        assert out["gpp"].attrs["units"] == "g m-2"
        for name in out["class"].values:
            d = daily["gpp"].sel({"class": name}).values
            want = [np.nanmean(d[:10]) * 10, np.nanmean(d[10:]) * 10]
            np.testing.assert_allclose(out["gpp"].sel({"class": name}).values, want, rtol=1e-5)
            assert out["valid_days"].sel({"class": name}).values.tolist() == [
                int(np.isfinite(d[:10]).sum()), int(np.isfinite(d[10:]).sum())]
    seasonal = summarise(cube, freq="QS-DEC")
    assert seasonal["season"].values.tolist() == ["DJF", "MAM"]
    assert seasonal["calendar_days"].values.tolist() == [91, 92]  # Dec-Feb 2019/20 (leap), Mar-May
    assert summarise(cube, freq="MS")["valid_days"].sel({"class": "permanent_water"}).values.tolist() == [9, 10]


def test_annual_sum_is_mean_times_days_in_cube(cube):
    out = summarise(cube, freq="YS").compute()
    daily = summarise(cube).compute()
    assert out["days"].values.tolist() == [NT] and out["calendar_days"].values.tolist() == [366]
    np.testing.assert_allclose(out["gpp"].values[:, 0], np.nanmean(daily["gpp"].values, axis=1) * NT, rtol=1e-5)


def test_by_dataarray_float_labels_and_none(cube):
    """Labels decoded to float with NaN for the fill, passed as a DataArray without flags: named by code."""
    labels = cube["land_cover"].where(cube["land_cover"] > 0).astype("float32")
    labels.attrs = {}
    out = summarise(cube, by=labels).compute()
    assert out["class"].values.tolist() == ["10", "30", "40", "80", ALL]
    np.testing.assert_allclose(out["gpp"].values, summarise(cube)["gpp"].values, rtol=1e-6, equal_nan=True)
    whole = summarise(cube, by=None).compute()
    assert whole["class"].values.tolist() == [ALL] and whole["pixels"].values.tolist() == [NY * NX]
    np.testing.assert_allclose(whole["gpp"].values[0], np.nanmean(cube["gpp"].values, axis=(1, 2)), rtol=1e-5)


def test_missing_by_is_a_clear_error(cube):
    with pytest.raises(MissingVariableError, match=r"no variable 'pft'.*\(on \(y, x\): \['land_cover'\]\).*by=None"):
        summarise(cube, by="pft")
    with pytest.raises(MissingVariableError, match="gpp_spread"):
        summarise(cube, variable="gpp_spread")


def test_bad_inputs_are_clear_errors(cube):
    with pytest.raises(SpecError, match=r"dims \('time', 'y', 'x'\).*must be \(y, x\)"):
        summarise(cube, by=cube["gpp"])
    with pytest.raises(SpecError, match="'W'.*'YS'"):
        summarise(cube, freq="W")
    with pytest.raises(SpecError, match="not a pandas frequency"):
        summarise(cube, freq="every spring")
    bad_units = cube.assign(gpp=cube["gpp"].assign_attrs(units="g m-2"))
    with pytest.raises(UnitsError, match="d-1"):
        summarise(bad_units, freq="YS")
    with pytest.raises(AllFillError, match=r"flag_values \[10, 20.*values seen are \[0\]"):
        summarise(cube, by=(cube["land_cover"] * 0).assign_attrs(cube["land_cover"].attrs))
    flags = cube["land_cover"].assign_attrs(flag_meanings="only_one")
    with pytest.raises(SpecError, match="differ in length"):
        summarise(cube, by=flags)
