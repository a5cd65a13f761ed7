"""Model inputs and features: aliases, units, gap filling, and tables vs cubes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from unique_xr.errors import MissingVariableError, UnitsError
from unique_xr.models.features import (
    RECIPES,
    derive_features,
    features_from_table,
    resolve_inputs,
)

GPP_M = RECIPES["gpp_m"]


def _table(days: int = 60, site: str = "XX-Test") -> pd.DataFrame:
    rng = np.random.default_rng(0)
    date = pd.date_range("2010-05-01", periods=days, freq="D")
    df = pd.DataFrame({"site": site, "date": date, "lat": 45.0})
    for i, base in enumerate((0.05, 0.30, 0.03, 0.07, 0.30, 0.18, 0.10), start=1):
        df[f"Nadir_Reflectance_Band{i}"] = base + rng.normal(0, 0.002, days)
        df[f"QA_Band{i}"] = "full_inversion"
    df["LST_Day_1km_Terra"] = 295.0
    df["LST_Day_1km_Aqua"] = np.nan
    df["t2m_era5"] = 290.15
    df["tower_temp"] = np.where(np.arange(days) % 2 == 0, 20.0, np.nan)
    df["ssrd_era5"] = 200.0 * 86400
    df["tower_ppfd"] = np.nan
    df["tower_vpd"] = 1000.0
    return df


def test_aliases_convert_units_and_prefer_the_tower():
    df = _table()
    feats = features_from_table(df, GPP_M)
    ta = feats["air_temperature"].to_numpy()
    # tower 20 degC on even days, ERA5 290.15 K = 17 degC elsewhere
    np.testing.assert_allclose(ta[::2], 20.0)
    np.testing.assert_allclose(ta[1::2], 17.0, atol=1e-9)
    np.testing.assert_allclose(feats["shortwave_radiation"], 200.0)  # J m-2 d-1 -> W m-2
    np.testing.assert_allclose(feats["vpd"], 10.0)  # Pa -> hPa


def test_reflectance_left_as_dn_is_a_units_error():
    df = _table()
    df["Nadir_Reflectance_Band2"] = df["Nadir_Reflectance_Band2"] * 10000
    with pytest.raises(UnitsError, match="Nadir_Reflectance_Band2"):
        features_from_table(df, GPP_M)


def test_missing_input_is_an_error_naming_the_accepted_columns():
    df = _table().drop(columns=["tower_vpd"])
    with pytest.raises(MissingVariableError) as err:
        features_from_table(df, GPP_M)
    msg = str(err.value)
    assert "vpd" in msg and "tower_vpd" in msg and "allow_missing" in msg
    feats = features_from_table(df, GPP_M, allow_missing=("vpd",))
    assert feats["vpd"].isna().all() and feats["ndvi"].notna().all()


def test_short_gaps_are_filled_and_long_gaps_stay_missing():
    df = _table(days=120)
    red = df["Nadir_Reflectance_Band1"].to_numpy().copy()
    red[10:20] = np.nan  # 10-day gap: filled
    red[50:110] = np.nan  # 60-day gap: longer than gap_days + the smoothing half-window
    df["Nadir_Reflectance_Band1"] = red
    df.loc[5, "QA_Band1"] = "not_produced"  # QA rejects a retrieval
    feats = features_from_table(df, GPP_M)
    assert feats["b_red"].iloc[5:25].notna().all()
    assert feats["b_red"].iloc[60:100].isna().all()
    assert feats["b_nir"].notna().all()  # NIR untouched -> rows keep a prediction


def test_fill_values_and_rejected_qa_never_reach_the_features():
    df = _table()
    df.loc[:, "Nadir_Reflectance_Band2"] = 32767.0  # the raw fill of *_b5b6fill days
    df.loc[:, "QA_Band2"] = "magnitude_inversion_b5b6fill"
    feats = features_from_table(df, GPP_M)
    assert feats["b_nir"].isna().all() and feats["ndvi"].isna().all()


def test_trailing_met_windows_use_only_past_days():
    df = _table(days=40)
    df["tower_temp"] = np.arange(40, dtype=float)
    feats = features_from_table(df, GPP_M)
    np.testing.assert_allclose(feats["air_temperature_7d"].iloc[10], np.mean(np.arange(4, 11)))


def test_rows_keep_table_order_with_several_sites():
    a, b = _table(site="AA-One"), _table(site="BB-Two")
    b["tower_temp"] = 5.0
    df = pd.concat([a, b]).sample(frac=1.0, random_state=1).reset_index(drop=True)
    feats = features_from_table(df, GPP_M)
    is_b = (df["site"] == "BB-Two").to_numpy()
    np.testing.assert_allclose(feats["air_temperature"].to_numpy()[is_b], 5.0)
    # every row carries its own site's features: the same as computing each site alone
    for site, alone in (("AA-One", a), ("BB-Two", b)):
        rows = (df["site"] == site).to_numpy()
        order = (df.loc[rows, "date"] - alone["date"].iloc[0]).dt.days.to_numpy()
        expected = features_from_table(alone, GPP_M).iloc[order].reset_index(drop=True)
        pd.testing.assert_frame_equal(feats[rows].reset_index(drop=True), expected)


def test_a_cube_with_registry_names_gives_the_table_features():
    """A (time, y, x) cube named by registry roles derives the same features as the table."""
    df = _table()
    table_feats = features_from_table(df, GPP_M)
    roles = ("red", "nir", "blue", "green", "nir2", "swir1", "swir2")
    time = df["date"].to_numpy()

    def cube(values):
        return (("time", "y", "x"), np.broadcast_to(np.asarray(values, float)[:, None, None], (len(df), 2, 2)))

    ds = xr.Dataset(
        {role: cube(df[f"Nadir_Reflectance_Band{i}"]) for i, role in enumerate(roles, start=1)}
        | {"lst_day": cube(df["LST_Day_1km_Terra"]), "lst_day_aqua": cube(df["LST_Day_1km_Aqua"]),
           "air_temperature": cube(df["tower_temp"].fillna(df["t2m_era5"] - 273.15)),
           "shortwave_radiation": cube(df["ssrd_era5"] / 86400), "vpd": cube(df["tower_vpd"] / 100),
           "lat": (("y", "x"), np.full((2, 2), 45.0))},
        coords={"time": time},
    )
    feats = derive_features(resolve_inputs(ds, GPP_M), GPP_M)
    assert feats["ndvi"].dims == ("time", "y", "x")
    for name in GPP_M.features:
        np.testing.assert_allclose(feats[name].isel(y=1, x=0).values, table_feats[name].to_numpy(), rtol=1e-12,
                                   err_msg=name)


def test_landsat_table_is_cloud_masked(shared_data):
    from unique_xr.towers import read_tower_table

    df = read_tower_table(shared_data / "towers/fluxnet2015_daily_gpp_x_modis_nbar_lst/landsat7_c2l2_at_towers.csv.gz")
    df = df.head(400).assign(lat=lambda d: d["latitude"], tower_temp=20.0, tower_ppfd=np.nan, tower_vpd=800.0,
                             ssrd_era5=np.nan)
    feats = features_from_table(df, RECIPES["gpp_l"])
    assert len(feats) == len(df)
    clear_water_free = (df["QA_PIXEL"] == 5440).to_numpy() & df["SR_B3"].notna().to_numpy()  # clear land
    cloudy = (df["QA_PIXEL"] == 22280).to_numpy() | (df["QA_PIXEL"] == 21824).to_numpy() | \
        (df["QA_PIXEL"] == 5896).to_numpy()
    assert feats["ndvi"].to_numpy()[clear_water_free].size and np.isfinite(feats["ndvi"].to_numpy()[clear_water_free]).all()
    assert np.isnan(feats["b_red"].to_numpy()[cloudy & ~clear_water_free]).all()
    lst = feats["lst"].to_numpy()[clear_water_free]
    assert 250 < np.nanmedian(lst) < 340


@pytest.mark.parametrize("irregular", [False, True])
def test_fill_gaps_and_centred_median_equal_xarray(irregular, backend):
    """The vectorised gap filling and bottleneck median give xarray's own values, bit for bit."""
    from unique_xr.models.features import centred_median, fill_gaps

    rng = np.random.default_rng(7)
    days = pd.date_range("2020-01-01", periods=400)
    if irregular:
        days = days[np.sort(rng.choice(400, 290, replace=False))]
    a = rng.normal(0.3, 0.1, (len(days), 3, 4))
    a[rng.random(a.shape) < 0.6] = np.nan
    a[:25, 0, 0] = np.nan  # leading gap stays
    a[-40:, 0, 1] = np.nan  # trailing gap stays
    a[:, 0, 2] = np.nan  # an empty series
    da = xr.DataArray(a, dims=("time", "y", "x"), coords={"time": days})
    filled_ref = da.interpolate_na("time", max_gap=pd.Timedelta(days=31), use_coordinate=True)
    src = da.chunk({"y": 1}) if backend == "dask" else da
    np.testing.assert_array_equal(fill_gaps(src, 31).values, filled_ref.values)
    for window in (15, 4):
        ref = filled_ref.rolling(time=window, center=True, min_periods=1).median()
        filled = filled_ref.chunk({"y": 1}) if backend == "dask" else filled_ref
        np.testing.assert_array_equal(centred_median(filled, window).values, ref.values)
    assert np.isnan(fill_gaps(da, 31).values[:25, 0, 0]).all()
