"""FLUXNET-named readers on the real files: official FLUXNET2015 MM/YY, FluxDataKit DD, agds, MetaFlux, bigleaf HH."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pandas as pd
import pytest

from unique_xr.errors import MissingVariableError
from unique_xr.towers import (
    TowerDataError,
    fluxnet_units,
    parse_fluxnet_filename,
    read_bigleaf_halfhourly,
    read_fluxnet,
    read_fluxnet_table,
)


# ------------------------------------------------------------------------- official MM / YY
def test_monthly_fr_pue_values_units_and_timestamps(fr_pue_mm):
    mm = read_fluxnet(fr_pue_mm)
    assert list(mm.columns[:2]) == ["site", "time"] and "TIMESTAMP" not in mm.columns
    assert mm.shape == (96, 2 + 321) and (mm["site"] == "FR-Pue").all()
    assert mm["time"].dtype == "datetime64[ns]"
    assert mm["time"].iloc[0] == pd.Timestamp("2007-01-01") and mm["time"].iloc[-1] == pd.Timestamp("2014-12-01")
    first = mm.iloc[0]
    assert first["GPP_NT_VUT_REF"] == pytest.approx(2.37041) and first["P_F"] == pytest.approx(0.755)
    assert first["TA_F"] == pytest.approx(8.009)
    attrs = mm.attrs
    assert attrs["resolution"] == "MM" and attrs["site"] == "FR-Pue" and attrs["product"] == "FLUXNET2015"
    assert attrs["source"] == fr_pue_mm.name
    units = attrs["units"]
    assert units["GPP_NT_VUT_REF"] == units["NEE_VUT_REF"] == units["RECO_NT_VUT_REF"] == "g m-2 d-1"
    assert units["P_F"] == "mm d-1" and units["TA_F"] == "degC" and units["VPD_F"] == "hPa"
    assert units["SW_IN_F"] == "W m-2" and units["PA_F"] == "kPa" and units["NEE_VUT_REF_QC"] == "1"
    # -9999 became NaN, and nothing numeric is left at the missing code
    raw = pd.read_csv(fr_pue_mm)
    assert (raw == -9999).to_numpy().sum() > 0
    assert not (mm.select_dtypes("number") == -9999).to_numpy().any()
    assert int(mm.isna().to_numpy().sum()) >= int((raw == -9999).to_numpy().sum())


def test_yearly_file_with_cr_line_endings(fr_pue_yy):
    raw = fr_pue_yy.read_bytes()
    assert b"\r" in raw and b"\n" not in raw  # the upstream file really is CR-only
    yy = read_fluxnet(fr_pue_yy)
    assert yy.shape[0] == 8 and yy.attrs["resolution"] == "YY"
    assert yy["time"].dt.year.tolist() == list(range(2007, 2015))
    assert (yy["time"].dt.dayofyear == 1).all()
    assert yy.attrs["units"]["GPP_NT_VUT_REF"] == "g m-2 yr-1" and yy.attrs["units"]["P_F"] == "mm yr-1"
    row = yy.set_index(yy["time"].dt.year).loc[2007]
    assert row["GPP_NT_VUT_REF"] == pytest.approx(1471.48) and row["P_F"] == pytest.approx(570.2)


def test_yearly_gpp_equals_the_months_times_their_days(fr_pue_mm, fr_pue_yy):
    """MM is g C m-2 d-1 (the mean day), YY g C m-2 yr-1: sum(month x days) must give the year."""
    mm, yy = read_fluxnet(fr_pue_mm), read_fluxnet(fr_pue_yy)
    days = mm["time"].dt.days_in_month
    for column in ("GPP_NT_VUT_REF", "GPP_DT_VUT_REF", "P_F"):
        from_months = (mm[column] * days).groupby(mm["time"].dt.year).sum()
        yearly = yy.set_index(yy["time"].dt.year)[column]
        # YY is aggregated from the half-hours, not from the rounded monthly values: within 5 %
        np.testing.assert_allclose(from_months.to_numpy(), yearly.to_numpy(), rtol=0.05)
    # and the units differ by that factor: months ~ a few g per day, years ~ a thousand g
    assert mm["GPP_NT_VUT_REF"].max() < 15 and yy["GPP_NT_VUT_REF"].min() > 500


def test_columns_argument_reads_a_subset_and_names_missing_ones(fr_pue_mm):
    mm = read_fluxnet(fr_pue_mm, columns=["GPP_NT_VUT_REF", "NEE_VUT_REF_QC"])
    assert sorted(mm.columns) == ["GPP_NT_VUT_REF", "NEE_VUT_REF_QC", "site", "time"]
    with pytest.raises(MissingVariableError, match="GPP_XX"):
        read_fluxnet(fr_pue_mm, columns=["GPP_XX"])


# ------------------------------------------------------------------------------ FluxDataKit DD
def test_fluxdatakit_daily_both_sites(fdk_dd):
    lae = read_fluxnet(fdk_dd["CH-Lae"])
    assert lae.attrs["resolution"] == "DD" and lae.attrs["product"] == "FLUXDATAKIT" and lae.shape[0] == 4018
    assert lae["time"].iloc[0] == pd.Timestamp("2004-01-01") and lae["time"].diff().dropna().eq(pd.Timedelta("1D")).all()
    first = lae.iloc[0]
    assert first["GPP_NT_VUT_REF"] == pytest.approx(-0.0138243904026846)
    assert first["P_F"] == pytest.approx(0.946000002659275)
    assert np.isnan(first["NETRAD"])  # "NA" in the file
    units = lae.attrs["units"]
    assert units["GPP_DT_VUT_REF"] == "g m-2 d-1" and units["TA_F_MDS"] == "degC" and units["VPD_F_MDS"] == "hPa"
    assert units["LAI"] == "m2 m-2" and units["FPAR"] == "1" and units["P_F"] == "mm d-1"
    pue = read_fluxnet(fdk_dd["FR-Pue"])
    assert pue.shape[0] == 5479 and pue.attrs["site"] == "FR-Pue"
    assert pue["NEE_VUT_REF_QC"].between(0, 1).all()  # DD QC is a fraction


def test_site_and_resolution_without_the_standard_name(fdk_dd, fr_pue_mm, tmp_path):
    renamed = tmp_path / "fr_pue_monthly.csv"
    shutil.copy(fr_pue_mm, renamed)
    with pytest.raises(TowerDataError, match="site="):
        read_fluxnet(renamed)
    mm = read_fluxnet(renamed, site="FR-Pue")
    assert mm.attrs["resolution"] == "MM" and mm.attrs["site"] == "FR-Pue"  # from the 6-digit TIMESTAMP
    daily = tmp_path / "lae.csv"
    shutil.copy(fdk_dd["CH-Lae"], daily)
    assert read_fluxnet(daily, site="CH-Lae").attrs["resolution"] == "DD"  # ISO dates
    # a name that contradicts the timestamps is caught
    lying = tmp_path / "FLX_FR-Pue_FLUXNET2015_FULLSET_DD_2007-2014_2-3.csv"
    shutil.copy(fr_pue_mm, lying)
    with pytest.raises(TowerDataError, match="looks like MM"):
        read_fluxnet(lying)
    with pytest.raises(TowerDataError, match="contradicts"):
        read_fluxnet(fr_pue_mm, site="CH-Lae")


def test_half_hourly_and_weekly_timestamps_from_their_width(tmp_path):
    hh = tmp_path / "FLX_XX-Tst_FLUXNET2015_SUBSET_HH_2010-2010_1-4.csv"
    hh.write_text("TIMESTAMP_START,TIMESTAMP_END,GPP_NT_VUT_REF,NEE_VUT_REF_QC,P_F\n"
                  "201007011200,201007011230,12.5,0,-9999\n201007011230,201007011300,13.0,1,0.2\n")
    df = read_fluxnet(hh)
    assert df["time"].tolist() == [pd.Timestamp("2010-07-01 12:00"), pd.Timestamp("2010-07-01 12:30")]
    assert "TIMESTAMP_END" not in df.columns and np.isnan(df["P_F"].iloc[0])
    assert df.attrs["units"]["GPP_NT_VUT_REF"] == "umol m-2 s-1" and df.attrs["units"]["P_F"] == "mm"
    ww = tmp_path / "weekly.csv"
    ww.write_text("TIMESTAMP_START,TIMESTAMP_END,GPP_NT_VUT_REF\n20100101,20100107,1.0\n20100108,20100114,1.5\n")
    assert read_fluxnet(ww, site="XX-Tst").attrs["resolution"] == "WW"
    hr = tmp_path / "hourly.csv"
    hr.write_text("TIMESTAMP_START,TIMESTAMP_END,GPP_NT_VUT_REF\n201001010000,201001010100,1\n201001010100,201001010200,1\n")
    assert read_fluxnet(hr, site="XX-Tst").attrs["resolution"] == "HR"
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("TIMESTAMP,GPP_NT_VUT_REF\n20100101,1\n201001,2\n")
    with pytest.raises(TowerDataError, match="one width"):
        read_fluxnet(mixed, site="XX-Tst")


def test_filename_parser_and_units_table():
    name = parse_fluxnet_filename("AMF_US-Ha1_FLUXNET_FULLSET_HH_1991-2020_3-5.csv")
    assert (name.site, name.product, name.resolution, name.first_year, name.last_year) == (
        "US-Ha1", "FLUXNET", "HH", 1991, 2020)
    assert parse_fluxnet_filename("FLX_FR-Pue_FLUXNET2015_FULLSET_MM_2007-2014_2-3.csv").dataset == "FULLSET"
    units = fluxnet_units(["GPP_DT_VUT_REF", "NEE_VUT_REF_QC", "P_F", "LE_F_MDS", "PPFD_IN", "NIGHT_D",
                           "SWC_F_MDS_1", "TIMESTAMP"], "HH")
    assert units == {"GPP_DT_VUT_REF": "umol m-2 s-1", "NEE_VUT_REF_QC": "1", "P_F": "mm", "LE_F_MDS": "W m-2",
                     "PPFD_IN": "umol m-2 s-1", "SWC_F_MDS_1": "%"}
    with pytest.raises(TowerDataError, match="resolution"):
        fluxnet_units(["TA_F"], "daily")


# --------------------------------------------------------------------------- multi-site tables
def test_agds_daily_tables(agds):
    full = read_fluxnet_table(agds / "ddf_allsites_daily_fullcols.csv")
    assert full.attrs["resolution"] == "DD" and sorted(full.attrs["site"]) == ["CH-Dav", "CH-Lae", "FI-Hyy", "FR-Pue"]
    assert list(full.columns[:2]) == ["site", "time"] and "siteid" not in full.columns
    first = full.iloc[0]
    assert first["site"] == "CH-Dav" and first["time"] == pd.Timestamp("1997-01-01")
    assert first["GPP_NT_VUT_REF"] == pytest.approx(0.696531) and first["NEE_VUT_REF_QC"] == pytest.approx(0.729167)
    assert full.attrs["units"]["GPP_NT_VUT_REF"] == "g m-2 d-1" and full.attrs["units"]["SWC_F_MDS_1"] == "%"
    stepwise = read_fluxnet_table(agds / "df_for_stepwise_regression.csv")
    assert len(stepwise) == len(full) == 23011 and "NEE_VUT_REF_QC" not in stepwise.columns


def test_metaflux_monthly_table(towers):
    df = read_fluxnet_table(towers / "fluxnet2015_monthly_metaflux_206sites" / "metaflux_fluxnet2015_monthly.csv.gz")
    assert df.attrs["resolution"] == "MM" and df["site"].nunique() > 100
    assert (df["time"].dt.day == 1).all() and df.attrs["units"]["GPP_NT_VUT_REF"] == "g m-2 d-1"
    assert {"Lat", "Lon", "PFT", "split"} <= set(df.columns)  # the other columns are kept unchanged


# ------------------------------------------------------------------------------ bigleaf HH
def test_bigleaf_halfhourly_renamed_to_fluxnet(halfhourly, tmp_path):
    path = halfhourly["AT-Neu"]
    df = read_bigleaf_halfhourly(path)
    assert df.attrs["site"] == "AT-Neu" and df.attrs["resolution"] == "HH" and len(df) == 1488
    assert df["time"].iloc[0] == pd.Timestamp("2010-07-01 00:00") and df["time"].iloc[-1] == pd.Timestamp(
        "2010-07-31 23:30")
    assert df["time"].diff().dropna().eq(pd.Timedelta("30min")).all()
    for name in ("TA_F", "VPD_F", "PPFD_IN", "NEE_VUT_USTAR50", "NEE_VUT_USTAR50_QC", "GPP_NT_VUT_USTAR50",
                 "RECO_NT_VUT_USTAR50", "LE_F_MDS", "G_F_MDS"):
        assert name in df.columns
    assert not any(c in df.columns for c in ("Tair", "GPP_qc", "year", "hour"))  # GPP_qc is a copy of NEE_qc
    with path.open() as f:
        first = next(csv.DictReader(f))
    assert df["VPD_F"].iloc[0] == pytest.approx(10 * float(first["VPD"]))  # kPa -> hPa
    assert df["TA_F"].iloc[0] == pytest.approx(float(first["Tair"]))
    units = df.attrs["units"]
    assert units["VPD_F"] == "hPa" and units["GPP_NT_VUT_USTAR50"] == "umol m-2 s-1" and units["P_F"] == "mm"
    tharandt = read_bigleaf_halfhourly(halfhourly["DE-Tha"])
    assert "LW_IN_F" in tharandt.columns and tharandt["time"].iloc[0] == pd.Timestamp("2014-06-01")
    renamed = tmp_path / "neustift.csv"
    shutil.copy(path, renamed)
    with pytest.raises(TowerDataError, match="site='AT-Neu'"):
        read_bigleaf_halfhourly(renamed)
    assert read_bigleaf_halfhourly(renamed, site="AT-Neu")["GPP_NT_VUT_USTAR50"].equals(df["GPP_NT_VUT_USTAR50"])
