"""Tower-pixel tables and the read_towers dispatcher, on the real files."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from unique_xr.load.masks import landsat_clear
from unique_xr.towers import (
    KNOWN_LAYOUTS,
    TowerDataError,
    TowerFileWarning,
    clear_tower_table,
    read_tower_table,
    read_towers,
)


@pytest.fixture(scope="module")
def landsat(pixel_tables) -> pd.DataFrame:
    return read_tower_table(pixel_tables / "landsat7_c2l2_at_towers.csv.gz")


@pytest.fixture(scope="module")
def training(pixel_tables) -> pd.DataFrame:
    return read_tower_table(pixel_tables / "daily_gpp_x_modis_x_met.csv.gz")


def test_training_table_keys_units_and_untouched_columns(training, pixel_tables):
    raw = pd.read_csv(pixel_tables / "daily_gpp_x_modis_x_met.csv.gz")
    assert list(training.columns[:2]) == ["site", "date"] and training["date"].dtype == "datetime64[ns]"
    assert len(training) == len(raw) and list(training.columns[2:]) == [c for c in raw.columns if c not in ("site", "date")]
    assert (training["date"] == training["date"].dt.floor("D")).all()
    assert training["date"].iloc[0] == pd.Timestamp(raw["date"].iloc[0])
    np.testing.assert_array_equal(training["gpp_obs"].to_numpy(), raw["gpp_obs"].to_numpy())
    assert training.attrs["layout"] == "modis_at_towers" and training.attrs["resolution"] == "DD"
    units = training.attrs["units"]
    assert units["gpp_obs"] == units["gpp_pmodel"] == "g m-2 d-1"
    assert units["tower_vpd"] == "Pa" and units["tower_temp"] == "degC" and units["t2m_era5"] == "K"
    assert units["LST_Day_1km_Terra"] == "K" and units["Nadir_Reflectance_Band1"] == "1"
    assert not training.duplicated(["site", "date"]).any()


def test_landsat_table_keeps_acquisition_time_and_uses_the_local_solar_day(landsat):
    assert list(landsat.columns[:3]) == ["site", "date", "acquisition_time"]
    assert "sitename" not in landsat.columns and landsat.attrs["layout"] == "landsat_at_towers"
    first = landsat.iloc[0]
    assert first["site"] == "AU-ASM" and first["acquisition_time"] == pd.Timestamp("2010-01-08 00:58:27.253999872")
    assert first["date"] == pd.Timestamp("2010-01-08")
    # AU-Whr (145 E) is imaged at 23:56 UTC, i.e. 09:36 local solar time of the next day
    whr = landsat[(landsat["site"] == "AU-Whr") & (landsat["acquisition_time"].dt.hour == 23)]
    assert len(whr) > 0
    assert (whr["date"] == whr["acquisition_time"].dt.floor("D") + pd.Timedelta("1D")).all()
    assert "local solar day" in landsat.attrs["date_rule"]


def test_pmodel_outputs_truncated_upstream_warns_and_renames(towers):
    path = towers / "fluxnet2015_daily_gpp_pmodel_25sites" / "pmodel_outputs.csv"
    assert path.read_text().rstrip().splitlines()[-1] == "DK-Sor,1,,,"  # the fragment of a cut-off row
    with pytest.warns(TowerFileWarning, match=r"dropped 1 row.*DK-Sor,1"):
        df = read_tower_table(path)
    assert list(df.columns) == ["site", "date", "gpp_obs", "gpp_unc", "gpp_pmodel"]
    assert df.attrs["layout"] == "mlflx_pmodel_outputs" and df["date"].notna().all()
    last = df.iloc[-1]
    assert (last["site"], last["date"]) == ("DK-Sor", pd.Timestamp("1998-10-24"))
    assert last["gpp_obs"] == pytest.approx(1.43131) and last["gpp_pmodel"] == pytest.approx(1.734686017036438)


def test_many_bad_dates_are_an_error_not_a_warning(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("sitename,date,gpp\n" + "".join(f"XX-Abc,day{i},1.0\n" for i in range(30)))
    with pytest.raises(TowerDataError, match="30 of 30 rows"):
        read_tower_table(bad)


def test_fluxdatakit_meteorology_parquet_units(towers):
    df = read_tower_table(towers / "fluxdatakit_daily_meteorology_100sites" / "daily_meteo.parquet")
    assert df.attrs["layout"] == "fluxdatakit_daily_meteo" and df["site"].nunique() > 50
    units = df.attrs["units"]
    assert (units["temp"], units["vpd"], units["ppfd"], units["prec"]) == ("degC", "Pa", "mol m-2 s-1", "kg m-2 s-1")
    assert df["vpd"].median() > 100  # Pa, not hPa or kPa
    assert df["date"].dtype == "datetime64[ns]"


def test_clear_landsat_table_scales_and_masks(landsat):
    out = clear_tower_table(landsat)
    qa = landsat["QA_PIXEL"]
    has = qa.notna()
    expected_clear = landsat_clear(qa[has].astype("uint16").to_numpy())
    np.testing.assert_array_equal(out.loc[has, "clear"].to_numpy(), expected_clear)
    assert not out.loc[~has, "clear"].any()
    row = out[(out["clear"]) & (out["SR_B3"] > 8000)].iloc[0]
    assert row["red"] == pytest.approx(row["SR_B3"] * 2.75e-5 - 0.2, rel=1e-5)
    assert row["nir"] == pytest.approx(row["SR_B4"] * 2.75e-5 - 0.2, rel=1e-5)
    assert row["lst_day"] == pytest.approx(row["ST_B6"] * 0.00341802 + 149.0, rel=1e-5)
    assert out.loc[~out["clear"], ["red", "nir", "lst_day"]].isna().all().all()
    assert out["red"].max() < 1.6 and out["lst_day"].dropna().between(200, 350).all()
    assert out.attrs["units"]["red"] == "1" and out.attrs["units"]["lst_day"] == "K"
    assert "red" not in landsat.columns  # the input is not modified
    assert clear_tower_table(landsat, snow=False)["clear"].sum() >= out["clear"].sum()


def test_clear_modis_table_removes_raw_fill_and_cloudy_lst(training):
    # the shared table holds the raw fill 32767 on '*_b5b6fill' days: a model must never see it
    assert (training["Nadir_Reflectance_Band2"] == 32767).sum() > 1000
    out = clear_tower_table(training)
    assert out["nir"].max() <= 1.6 and np.isnan(out.loc[training["Nadir_Reflectance_Band2"] == 32767, "nir"]).all()
    good = training["QA_Band2"] == "full_inversion"
    np.testing.assert_allclose(out.loc[good, "nir"], training.loc[good, "Nadir_Reflectance_Band2"], rtol=1e-6)
    magnitude = training["QA_Band1"] == "magnitude_inversion"
    assert clear_tower_table(training, allow_magnitude=False).loc[magnitude, "red"].isna().all()
    cloudy = training["LST_Day_1km_Terra_QA"] == "not_produced_cloud"
    assert out.loc[cloudy, "lst_day_terra"].isna().all()
    other = training["LST_Day_1km_Terra_QA"] == "other_quality"
    assert out.loc[other, "lst_day_terra"].notna().any()
    assert clear_tower_table(training, allow_other_quality=False).loc[other, "lst_day_terra"].isna().all()
    with pytest.raises(TowerDataError, match="QA_PIXEL"):
        clear_tower_table(training[["site", "date", "gpp_obs"]])


# ------------------------------------------------------------------------------ dispatcher
def test_read_towers_recognises_every_layout(towers, fr_pue_yy, fdk_dd, halfhourly, agds, pixel_tables):
    cases = {
        fr_pue_yy: ("fluxnet", "YY"),
        fdk_dd["CH-Lae"]: ("fluxnet", "DD"),
        halfhourly["DE-Tha"]: ("bigleaf_halfhourly", "HH"),
        agds / "ddf_allsites_daily_fullcols.csv": ("fluxnet_table", "DD"),
        pixel_tables / "landsat7_c2l2_at_towers.csv.gz": ("landsat_at_towers", "DD"),
        pixel_tables / "modis_nbar_lst_daily_at_towers.parquet": ("modis_at_towers", "DD"),
        towers / "fluxnet2015_monthly_cardamom_204sites" / "fluxnet2015_monthly_gpp_nee_et.csv": ("tower_table", "MM"),
    }
    for path, (layout, resolution) in cases.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            df = read_towers(path)
        assert (df.attrs["layout"], df.attrs["resolution"]) == (layout, resolution), path.name
        assert df.columns[0] == "site"


def test_read_towers_rejects_unknown_files_listing_the_layouts(towers, tmp_path):
    with pytest.raises(TowerDataError) as info:
        read_towers(towers / "site_metadata" / "fluxdatakit_fdk_site_fullyearsequence.csv")
    message = str(info.value)
    assert all(name in message for name in KNOWN_LAYOUTS) and "start_gpp" in message
    with pytest.raises(TowerDataError, match="read_site_metadata"):
        read_towers(towers / "site_metadata" / "fluxdatakit_fdk_site_info.csv")
    renamed = tmp_path / "fluxes.csv"
    renamed.write_text("TIMESTAMP,GPP_NT_VUT_REF\n20100101,1.0\n20100102,2.0\n")
    with pytest.raises(TowerDataError, match="site="):
        read_towers(renamed)
    assert read_towers(renamed, site="XX-Tst").attrs["site"] == "XX-Tst"
    with pytest.raises(FileNotFoundError, match="pmodel_outputs.csv"):
        read_towers(towers / "fluxnet2015_daily_gpp_pmodel_25sites" / "missing.csv")
