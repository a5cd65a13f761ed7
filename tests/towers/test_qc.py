"""Daily GPP QC on real tower data: thresholds, NT/DT, HH -> daily against hand computation, unit mistakes."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from unique_xr.errors import MissingVariableError, SpecError, UnitsError
from unique_xr.towers import (
    annual_gpp,
    check_gpp_units,
    daily_gpp,
    monthly_gpp,
    read_bigleaf_halfhourly,
    read_fluxnet,
    read_fluxnet_table,
    umol_co2_to_gc_per_day,
)


@pytest.fixture(scope="module")
def pue_dd(fdk_dd) -> pd.DataFrame:
    return read_fluxnet(fdk_dd["FR-Pue"])


@pytest.fixture(scope="module")
def neu_hh(halfhourly) -> pd.DataFrame:
    return read_bigleaf_halfhourly(halfhourly["AT-Neu"])


# ------------------------------------------------------------------------------------- DD
def test_threshold_drops_exactly_the_low_quality_days(pue_dd):
    out = daily_gpp(pue_dd, min_quality=0.8)
    qc = pue_dd["NEE_VUT_REF_QC"]
    keep = (qc >= 0.8) & pue_dd["GPP_NT_VUT_REF"].notna()
    assert len(out) == int(keep.sum()) and 0 < len(out) < len(pue_dd)
    assert out["date"].tolist() == pue_dd.loc[keep, "time"].tolist()
    np.testing.assert_array_equal(out["gpp"].to_numpy(), pue_dd.loc[keep, "GPP_NT_VUT_REF"].to_numpy())
    assert (out["gpp_qc"] >= 0.8).all() and out.attrs["n_below_quality"] == int((~keep).sum())
    assert out.attrs["units"]["gpp"] == "g m-2 d-1" and out.attrs["quality_column"] == "NEE_VUT_REF_QC"
    assert list(out.columns) == ["site", "date", "gpp", "gpp_qc"]
    flagged = daily_gpp(pue_dd, min_quality=0.8, drop=False)
    assert len(flagged) == len(pue_dd) and flagged["gpp_ok"].to_numpy().tolist() == keep.tolist()
    assert len(daily_gpp(pue_dd, min_quality=0.95)) < len(out) < len(daily_gpp(pue_dd, min_quality=0.5))
    assert len(daily_gpp(pue_dd, min_quality=None)) == len(pue_dd)


def test_nt_dt_and_mean_select_their_columns(pue_dd):
    nt = daily_gpp(pue_dd, partitioning="NT", min_quality=None)
    dt = daily_gpp(pue_dd, partitioning="DT", min_quality=None)
    both = daily_gpp(pue_dd, partitioning="mean", min_quality=None)
    np.testing.assert_array_equal(nt["gpp"], pue_dd["GPP_NT_VUT_REF"])
    np.testing.assert_array_equal(dt["gpp"], pue_dd["GPP_DT_VUT_REF"])
    np.testing.assert_allclose(both["gpp"], (pue_dd["GPP_NT_VUT_REF"] + pue_dd["GPP_DT_VUT_REF"]) / 2)
    assert not np.allclose(nt["gpp"], dt["gpp"])
    assert both.attrs["gpp_columns"] == ["GPP_NT_VUT_REF", "GPP_DT_VUT_REF"] and dt.attrs["partitioning"] == "DT"
    with pytest.raises(SpecError, match="partitioning"):
        daily_gpp(pue_dd, partitioning="night")
    with pytest.raises(MissingVariableError, match="GPP_DT_VUT_REF"):
        daily_gpp(pue_dd.drop(columns="GPP_DT_VUT_REF"), partitioning="DT")


def test_fluxdatakit_file_without_nee_qc_uses_the_gpp_qc_column(fdk_dd):
    lae = read_fluxnet(fdk_dd["CH-Lae"])
    assert "NEE_VUT_REF_QC" not in lae.columns
    out = daily_gpp(lae, partitioning="DT")
    assert out.attrs["quality_column"] == "GPP_DT_VUT_REF_QC" and len(out) == len(lae)


def test_agds_tables_with_and_without_a_quality_column(agds):
    full = read_fluxnet_table(agds / "ddf_allsites_daily_fullcols.csv")
    out = daily_gpp(full)
    assert set(out["site"]) == {"CH-Dav", "CH-Lae", "FI-Hyy", "FR-Pue"} and (out["gpp_qc"] >= 0.8).all()
    stepwise = read_fluxnet_table(agds / "df_for_stepwise_regression.csv")
    with pytest.raises(MissingVariableError, match="min_quality=None"):
        daily_gpp(stepwise)
    kept = daily_gpp(stepwise, min_quality=None)
    assert len(kept) == stepwise["GPP_NT_VUT_REF"].notna().sum() and kept["gpp_qc"].isna().all()


def test_monthly_and_annual(fr_pue_mm, fr_pue_yy):
    months = monthly_gpp(read_fluxnet(fr_pue_mm))
    assert len(months) == 96 and months["gpp"].iloc[0] == pytest.approx(2.37041)
    assert months.attrs["units"]["gpp"] == "g m-2 d-1" and months["month"].iloc[1] == pd.Timestamp("2007-02-01")
    years = annual_gpp(read_fluxnet(fr_pue_yy), partitioning="DT")
    assert years["year"].tolist() == list(range(2007, 2015)) and years.attrs["units"]["gpp"] == "g m-2 yr-1"
    assert years["gpp"].iloc[0] == pytest.approx(1468.13)
    with pytest.raises(SpecError, match="annual_gpp"):
        daily_gpp(read_fluxnet(fr_pue_yy))


# ------------------------------------------------------------------------------------- HH
def test_half_hourly_aggregation_matches_a_hand_computation(neu_hh, halfhourly):
    """AT-Neu, 15 July 2010 (day of year 196): mean of 48 half-hours x 12.011e-6 g/umol x 86400 s."""
    with halfhourly["AT-Neu"].open() as f:
        rows = [r for r in csv.DictReader(f) if float(r["doy"]) == 196]
    assert len(rows) == 48
    gpp = [float(r["GPP"]) for r in rows]
    expected = sum(gpp) / 48 * 12.011e-6 * 86400
    good = sum(float(r["NEE_qc"]) in (0.0, 1.0) for r in rows) / 48
    out = daily_gpp(neu_hh, min_quality=None).set_index("date")
    day = out.loc[pd.Timestamp("2010-07-15")]
    assert day["gpp"] == pytest.approx(expected, rel=1e-12)
    assert day["gpp_qc"] == pytest.approx(good) and day["n_records"] == 48
    assert 5 < day["gpp"] < 30  # a productive mountain meadow in July
    assert umol_co2_to_gc_per_day(1.0) == pytest.approx(1.0377504)
    assert len(out) == 31 and out.attrs["source_resolution"] == "HH"
    assert out.attrs["gpp_columns"] == ["GPP_NT_VUT_USTAR50"] and out.attrs["quality_column"] == "NEE_VUT_USTAR50_QC"


def test_half_hourly_quality_equals_the_fluxnet_daily_fraction(halfhourly, agds):
    """The HH-derived quality fraction is FLUXNET's DD NEE_VUT_REF_QC, and the GPP agrees (USTAR50 vs REF)."""
    hh = daily_gpp(read_bigleaf_halfhourly(halfhourly["FR-Pue"]), min_quality=None)
    dd = read_fluxnet_table(agds / "ddf_allsites_daily_fullcols.csv")
    dd = dd[(dd["site"] == "FR-Pue") & dd["time"].between("2012-05-01", "2012-05-31")].set_index("time")
    assert len(hh) == len(dd) == 31
    np.testing.assert_allclose(hh["gpp_qc"].to_numpy(), dd["NEE_VUT_REF_QC"].to_numpy(), atol=1e-5)
    np.testing.assert_allclose(hh["gpp"].to_numpy(), dd["GPP_NT_VUT_REF"].to_numpy(), atol=0.15)
    assert np.corrcoef(hh["gpp"], dd["GPP_NT_VUT_REF"])[0, 1] > 0.99


def test_half_hourly_threshold_and_incomplete_days(neu_hh):
    strict = daily_gpp(neu_hh, min_quality=1.0)
    everything = daily_gpp(neu_hh, min_quality=None)
    assert (strict["gpp_qc"] == 1.0).all() and len(strict) == int((everything["gpp_qc"] == 1.0).sum())
    assert len(strict) < len(everything)
    # remove one half-hour of 3 July: that day is incomplete and dropped, whatever its quality
    cut = neu_hh.drop(index=neu_hh.index[(neu_hh["time"] == pd.Timestamp("2010-07-03 12:00"))])
    out = daily_gpp(cut, min_quality=None)
    assert pd.Timestamp("2010-07-03") not in set(out["date"]) and out.attrs["n_incomplete_days"] == 1
    gap = neu_hh.copy()
    gap.loc[gap["time"] == pd.Timestamp("2010-07-04 13:00"), "GPP_NT_VUT_USTAR50"] = np.nan
    assert pd.Timestamp("2010-07-04") not in set(daily_gpp(gap, min_quality=None)["date"])


# --------------------------------------------------------------------------- unit mistakes
def test_unit_mistakes_raise_units_error(neu_hh, pue_dd, fr_pue_mm):
    with pytest.raises(UnitsError, match="already daily"):
        daily_gpp(pue_dd, resolution="HH")  # a daily file treated as half-hourly
    with pytest.raises(UnitsError, match="median time step"):
        daily_gpp(neu_hh, resolution="DD")  # a half-hourly file treated as daily
    # daily values repeated at every half-hour: right time step, no diurnal cycle
    flat = neu_hh.copy()
    flat["GPP_NT_VUT_USTAR50"] = flat.groupby(flat["time"].dt.floor("D"))["GPP_NT_VUT_USTAR50"].transform("mean")
    with pytest.raises(UnitsError, match="diurnal cycle"):
        daily_gpp(flat)
    # monthly sums (g C m-2 month-1) mislabelled as daily means
    monthly_sums = pue_dd.assign(GPP_NT_VUT_REF=pue_dd["GPP_NT_VUT_REF"] * 30)
    with pytest.raises(UnitsError, match="largest plausible"):
        daily_gpp(monthly_sums)
    with pytest.raises(UnitsError, match="NEE"):
        check_gpp_units(pue_dd["NEE_VUT_REF"].to_numpy() - 2.0)
    check_gpp_units(pue_dd["GPP_NT_VUT_REF"].to_numpy())  # the real values pass
    yearly_as_daily = read_fluxnet(fr_pue_mm)
    yearly_as_daily["GPP_NT_VUT_REF"] *= 365
    with pytest.raises(UnitsError):
        monthly_gpp(yearly_as_daily)


def test_bad_arguments(pue_dd):
    with pytest.raises(SpecError, match=r"\[0, 1\]"):
        daily_gpp(pue_dd, min_quality=80)
    no_attrs = pue_dd.copy()
    no_attrs.attrs = {}
    with pytest.raises(SpecError, match="resolution="):
        daily_gpp(no_attrs)
    assert len(daily_gpp(no_attrs, resolution="DD")) > 0
    with pytest.raises(MissingVariableError, match="'time'"):
        daily_gpp(pue_dd.drop(columns="time"))
