"""Forest tables for the annual CNN (``unique_xr.towers.forest``) on the real FLUXNET2015 tables.

Data (see each folder's SOURCE.txt): the MetaFlux monthly table (leap-stc/metaflux, MIT; values from
FLUXNET2015, CC-BY-4.0, Pastorello et al. 2020; Nathaniel et al. 2023), the agds daily 4-site subset
(geco-bern/agds; FLUXNET2015 DD values, CC-BY-4.0) and the official FR-Pue FULLSET MM/YY files.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from unique_xr.towers._common import TowerDataError
from unique_xr.towers.fluxnet import read_fluxnet, read_fluxnet_table
from unique_xr.towers.forest import (
    FOREST_TYPES,
    INPUTS,
    LATENT_HEAT,
    annual_fluxes,
    day_length_hours,
    forest_table,
    read_forest_table,
)

METAFLUX = "fluxnet2015_monthly_metaflux_206sites/metaflux_fluxnet2015_monthly.csv.gz"
#: Days of the months of a leap year (FI-Hyy 2008 below).
LEAP_MONTH_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


@pytest.fixture(scope="module")
def metaflux_raw(towers) -> pd.DataFrame:
    return read_fluxnet_table(towers / METAFLUX)


@pytest.fixture(scope="module")
def forest(towers) -> pd.DataFrame:
    return read_forest_table(towers / METAFLUX)


@pytest.fixture(scope="module")
def annual(forest) -> pd.DataFrame:
    return annual_fluxes(forest)


@pytest.fixture(scope="module")
def agds_daily(agds) -> pd.DataFrame:
    """The agds daily 4-site table with the IGBP class and latitude of site_meta.csv joined on."""
    raw = read_fluxnet_table(agds / "ddf_allsites_daily_fullcols.csv")
    meta = pd.read_csv(agds / "site_meta.csv")[["siteid", "classid", "lat"]]
    joined = raw.merge(meta.rename(columns={"siteid": "site", "classid": "igbp"}), on="site", how="left")
    joined.attrs = dict(raw.attrs)
    return joined


def _row(table: pd.DataFrame, site: str, time: str) -> pd.Series:
    rows = table[(table["site"] == site) & (table["time"] == pd.Timestamp(time))]
    assert len(rows) == 1, f"expected one row of {site} at {time}, found {len(rows)}"
    return rows.iloc[0]


def _site_year(table: pd.DataFrame, site: str, year: int) -> pd.Series:
    rows = table[(table["site"] == site) & (table["year"] == year)]
    assert len(rows) == 1
    return rows.iloc[0]


# ------------------------------------------------------------------------------ day length
def test_day_length_is_twelve_hours_at_the_equator_and_at_the_equinox():
    # equator: 12 h all year; any latitude: ~12 h at the March equinox (declination ~0 on day 80)
    assert np.allclose(day_length_hours(np.zeros(4), [1, 80, 172, 355]), 12.0)
    assert np.allclose(day_length_hours([-60.0, -30.0, 30.0, 60.0], [80] * 4), 12.0, atol=0.1)


def test_day_length_polar_day_and_night():
    hours = day_length_hours([80.0, 80.0, -80.0, -80.0], [172, 355, 172, 355])
    assert hours.tolist() == [24.0, 0.0, 0.0, 24.0]


def test_day_length_known_values_and_hemisphere_symmetry():
    # geometric day length (sun's centre on the horizon) at 60 N on the solstices: 18.5 h / 5.5 h
    # (almanacs give ~18.8 h / ~5.9 h because they add refraction and the solar disc's radius)
    summer, winter = day_length_hours([60.0, 60.0], [172, 355])
    assert summer == pytest.approx(18.49, abs=0.05)
    assert winter == pytest.approx(5.51, abs=0.05)
    lat = np.linspace(-89.0, 89.0, 37)
    for doy in (1, 100, 200, 300):
        north, south = day_length_hours(lat, np.full_like(lat, doy)), day_length_hours(-lat, np.full_like(lat, doy))
        assert np.allclose(north + south, 24.0)
    # longer days further north in June
    june = day_length_hours(np.linspace(0.0, 66.0, 12), np.full(12, 172))
    assert (np.diff(june) > 0).all()


# ------------------------------------------------------------------------- read_forest_table
def test_read_forest_table_keeps_only_forest_rows(forest, metaflux_raw):
    assert set(forest["igbp"].unique()) <= set(FOREST_TYPES)
    n_forest = int(metaflux_raw["PFT"].isin(FOREST_TYPES).sum())
    assert len(forest) == n_forest > 8000
    assert {"ENF", "EBF", "DBF", "MF"} <= set(forest["igbp"])
    everything = forest_table(metaflux_raw, forests_only=False)
    assert len(everything) == len(metaflux_raw)
    assert {"GRA", "CRO"} <= set(everything["igbp"])


def test_read_forest_table_columns_and_attrs(forest, towers):
    assert list(forest.columns[:4]) == ["site", "time", "igbp", "lat"]
    assert set(INPUTS) | {"gpp", "nee", "nee_qc"} <= set(forest.columns)
    used = forest.attrs["inputs"]
    assert used == {
        "lai": "LAI", "evi": "EVI", "et": "LE_CORR", "t_day": "TA_ERA_DAY",
        "t_night": "TA_ERA & TA_ERA_DAY & day length", "precip": "P_ERA",
        "gpp": "GPP_NT_VUT_REF", "nee": "NEE_VUT_REF",
    }
    assert forest.attrs["resolution"] == "MM"
    assert forest.attrs["source"] == str(towers / METAFLUX)
    assert forest.attrs["units"]["et"] == "mm d-1"


def test_et_is_latent_heat_over_the_heat_of_vaporisation(forest, metaflux_raw):
    # FI-Hyy, June 2008: LE_CORR 66.9095 W m-2 -> 66.9095 * 86400 / 2.45e6 = 2.3596 mm d-1
    raw = _row(metaflux_raw, "FI-Hyy", "2008-06-01")
    assert raw["LE_CORR"] == pytest.approx(66.9095)
    assert LATENT_HEAT == 2.45e6
    assert _row(forest, "FI-Hyy", "2008-06-01")["et"] == pytest.approx(66.9095 * 86400 / 2.45e6)
    assert _row(forest, "FI-Hyy", "2008-06-01")["et"] == pytest.approx(2.35958, abs=1e-5)
    # the whole column, where LE_CORR is there
    merged = forest.merge(metaflux_raw[["site", "time", "LE_CORR"]], on=["site", "time"])
    assert np.allclose(merged["et"], merged["LE_CORR"] * 86400 / LATENT_HEAT, equal_nan=True)


def test_t_night_by_hand_on_a_real_row(forest, metaflux_raw):
    # FI-Hyy (61.84741 N), June 2008: the middle of the month is 1 June + 15 days = 16 June,
    # day 168 of the leap year 2008. Cooper: declination = 23.44 deg * sin(2 pi (284 + 168) / 365).
    raw = _row(metaflux_raw, "FI-Hyy", "2008-06-01")
    t_mean, t_day, lat = raw["TA_ERA"], raw["TA_ERA_DAY"], raw["Lat"]
    assert (t_mean, t_day, lat) == pytest.approx((13.092, 13.582, 61.84741))
    decl = np.radians(23.44) * np.sin(2 * np.pi * (284 + 168) / 365)
    hours = 24 / np.pi * np.arccos(-np.tan(np.radians(lat)) * np.tan(decl))
    assert hours == pytest.approx(19.18, abs=0.01)
    expected = (24 * t_mean - hours * t_day) / (24 - hours)
    assert expected == pytest.approx(11.14, abs=0.01)
    row = _row(forest, "FI-Hyy", "2008-06-01")
    assert row["t_night"] == pytest.approx(expected, abs=1e-9)
    assert row["t_day"] == t_day


def test_t_night_matches_the_official_night_means(fr_pue_mm):
    # The official FULLSET MM file carries TA_ERA_NIGHT itself: the derived night mean agrees
    # to a few tenths of a degree (the day length is geometric, FLUXNET splits at SW_IN_POT > 0).
    raw = read_fluxnet(fr_pue_mm).assign(igbp="EBF", lat=43.7414)
    with pytest.warns(UserWarning, match="lai"):
        table = forest_table(raw)
    diff = table["t_night"].to_numpy() - raw["TA_ERA_NIGHT"].to_numpy()
    assert np.isfinite(diff).sum() == len(raw) == 96
    assert np.abs(diff).max() < 0.4
    assert np.abs(diff).mean() < 0.2


def test_t_night_missing_in_polar_summer(forest):
    # FI-Sod (67.36 N) in June has a night shorter than MIN_NIGHT_HOURS: left missing
    june = forest[(forest["site"] == "FI-Sod") & (forest["time"].dt.month == 6)]
    assert len(june) > 5
    assert june["t_night"].isna().all()
    assert june["t_day"].notna().all()


def test_t_night_in_polar_night_is_the_daily_mean(forest, metaflux_raw):
    # FI-Sod in December: the sun does not rise at mid-month (day length 0), so the whole day is
    # night and the night mean is the 24-h mean, although TA_ERA_DAY is (rightly) missing.
    assert day_length_hours([67.36239], [350])[0] == 0.0
    raw = _row(metaflux_raw, "FI-Sod", "2005-12-01")
    assert np.isnan(raw["TA_ERA_DAY"])
    assert _row(forest, "FI-Sod", "2005-12-01")["t_night"] == pytest.approx(raw["TA_ERA"])


def test_t_night_does_not_depend_on_attrs_surviving(metaflux_raw, forest):
    # pandas drops attrs in merges and some concats; a monthly table without them must give the
    # same night temperatures (mid-month day length), not those of the first of each month.
    plain = metaflux_raw.copy()
    plain.attrs = {}
    again = forest_table(plain)
    assert np.allclose(again["t_night"], forest["t_night"], equal_nan=True)


def test_forest_table_needs_site_time_and_igbp(metaflux_raw):
    with pytest.raises(TowerDataError, match="IGBP class column"):
        forest_table(metaflux_raw.drop(columns=["PFT"]))
    with pytest.raises(TowerDataError, match="'site', 'time'"):
        forest_table(metaflux_raw.drop(columns=["site"]))


def test_forest_table_refuses_a_yearly_table(fr_pue_yy):
    yearly = read_fluxnet(fr_pue_yy).assign(igbp="EBF", lat=43.7414)
    assert yearly.attrs["resolution"] == "YY"
    with pytest.raises(TowerDataError, match="'YY'"):
        forest_table(yearly)


def test_forest_table_on_a_daily_table_warns_about_absent_inputs(agds_daily):
    assert agds_daily.attrs["resolution"] == "DD"
    with pytest.warns(UserWarning, match=r"no column for input\(s\)") as record:
        table = forest_table(agds_daily)
    message = str(record[0].message)
    for name in ("lai", "evi", "et", "t_day", "t_night"):
        assert name in message
    assert "precip" not in message.split("looked for")[0]
    assert sorted(table["site"].unique()) == ["CH-Dav", "CH-Lae", "FI-Hyy", "FR-Pue"]
    assert len(table) == len(agds_daily) == 23011
    for name in ("lai", "evi", "et", "t_day", "t_night"):
        assert table[name].isna().all()
        assert table.attrs["inputs"][name] is None
    assert table.attrs["inputs"]["precip"] == "P_F"
    assert np.array_equal(table["precip"].to_numpy(), agds_daily["P_F"].to_numpy(), equal_nan=True)
    assert table.attrs["inputs"]["gpp"] == "GPP_NT_VUT_REF"
    assert "nee" not in table.columns  # the subset has NEE's QC flag but not NEE itself
    assert table.groupby("site")["igbp"].first().to_dict() == {
        "CH-Dav": "ENF", "CH-Lae": "MF", "FI-Hyy": "ENF", "FR-Pue": "EBF"}


def test_forest_table_silent_when_every_input_is_there(metaflux_raw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        forest_table(metaflux_raw)


# ------------------------------------------------------------------------------ annual sums
def test_annual_sum_by_hand_on_a_real_leap_year(annual, forest):
    # FI-Hyy 2008, monthly mean GPP (g C m-2 d-1) from the table, times the days of each month
    gpp = [0.046630, 0.203352, 0.330738, 2.017650, 5.403280, 7.101790,
           7.738060, 5.944730, 3.788670, 1.356290, 0.293126, -0.003004]
    nee = [0.555605, 0.453878, 0.373193, -0.830778, -3.003230, -2.763450,
           -2.544860, -1.310970, -0.461044, 0.884084, 0.806445, 0.766252]
    months = forest[(forest["site"] == "FI-Hyy") & (forest["time"].dt.year == 2008)]
    assert np.allclose(months["gpp"], gpp, atol=1e-6) and np.allclose(months["nee"], nee, atol=1e-6)
    row = _site_year(annual, "FI-Hyy", 2008)
    assert row["gpp"] == pytest.approx(sum(g * d for g, d in zip(gpp, LEAP_MONTH_DAYS)), rel=1e-6)
    assert row["gpp"] == pytest.approx(1047.25, abs=0.01)
    assert row["nee"] == pytest.approx(sum(n * d for n, d in zip(nee, LEAP_MONTH_DAYS)), rel=1e-6)
    assert row["nee"] < 0  # a sink: NEE < 0 is uptake
    assert row["gpp_months"] == row["nee_months"] == 12
    assert row["quality"] == pytest.approx(months["nee_qc"].mean())
    assert row["igbp"] == "ENF" and bool(row["usable"])


def test_annual_one_row_per_site_year(annual, forest):
    site_years = forest.groupby(["site", forest["time"].dt.year]).ngroups
    assert len(annual) == site_years
    assert not annual.duplicated(["site", "year"]).any()
    assert list(annual.columns) == ["site", "year", "igbp", "gpp", "gpp_months", "nee", "nee_months",
                                    "quality", "usable"]


def test_annual_needs_twelve_months(forest):
    months = forest[(forest["site"] == "FI-Hyy") & (forest["time"].dt.year.isin([2007, 2008]))]
    gappy = months.copy()
    gappy.loc[(gappy["time"] == "2008-07-01"), "gpp"] = np.nan   # a gap in the value
    gappy = gappy[gappy["time"] != "2007-11-01"]                   # a month with no row at all
    out = annual_fluxes(gappy).set_index("year")
    assert np.isnan(out.loc[2008, "gpp"]) and out.loc[2008, "gpp_months"] == 11
    assert np.isfinite(out.loc[2008, "nee"]) and out.loc[2008, "nee_months"] == 12
    assert np.isnan(out.loc[2007, "gpp"]) and np.isnan(out.loc[2007, "nee"])
    assert not out["usable"].any()
    # with min_months=11 the 11 months are scaled to the 366 days of the year
    loose = annual_fluxes(gappy, min_months=11).set_index("year")
    july = months[months["time"] == "2008-07-01"].index
    kept = months[months["time"].dt.year == 2008].drop(index=july)
    covered = 366 - 31
    expected = float((kept["gpp"] * kept["time"].dt.days_in_month).sum()) * 366 / covered
    assert loose.loc[2008, "gpp"] == pytest.approx(expected)


def test_annual_usable_leaves_out_broken_and_low_quality_years(annual):
    # CA-Man 2005: one constant GPP of -1.6 g C m-2 d-1 all year, NEE quality 0.02
    man = _site_year(annual, "CA-Man", 2005)
    assert man["gpp"] < 0 and man["quality"] < 0.05 and not man["usable"]
    # IT-Ren 2000, 2001 and 2004: a near-zero constant
    ren = annual[annual["site"] == "IT-Ren"].set_index("year")
    assert not ren.loc[[2000, 2001, 2004], "usable"].any()
    assert ren.loc[[2002, 2003, 2005], "usable"].all()
    # low quality alone: AR-SLu 2009 has a plausible GPP but 3 % good NEE records
    slu = _site_year(annual, "AR-SLu", 2009)
    assert slu["gpp"] > 0 and slu["quality"] < 0.5 and not slu["usable"]
    usable = annual[annual["usable"]]
    assert (usable["quality"] >= 0.5).all() and (usable["gpp"] > 0).all()
    assert usable[["gpp", "nee"]].notna().all().all()
    assert 500 < len(usable) < len(annual)


def test_annual_min_quality_zero_keeps_low_quality_years(forest):
    sub = forest[forest["site"].isin(["AR-SLu", "CA-Man"])]
    strict, loose = annual_fluxes(sub), annual_fluxes(sub, min_quality=0.0)
    assert loose["usable"].sum() > strict["usable"].sum()
    assert bool(loose.set_index(["site", "year"]).loc[("AR-SLu", 2009), "usable"])
    assert not loose.set_index(["site", "year"]).loc[("CA-Man", 2005), "usable"]  # negative GPP


def test_annual_does_not_depend_on_row_order_or_index(forest, annual):
    sub = forest[forest["site"].isin(["FI-Hyy", "CA-Man", "IT-Ren"])].sample(frac=1.0, random_state=3)
    out = annual_fluxes(sub)
    ref = annual[annual["site"].isin(["FI-Hyy", "CA-Man", "IT-Ren"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(out, ref, check_dtype=False)


def test_annual_from_a_daily_table_is_the_sum_of_the_days(agds_daily):
    with pytest.warns(UserWarning):
        table = forest_table(agds_daily)
    out = annual_fluxes(table).set_index(["site", "year"])
    days = table[(table["site"] == "FI-Hyy") & (table["time"].dt.year == 2008)]
    assert len(days) == 366 and days["gpp"].notna().all()
    assert out.loc[("FI-Hyy", 2008), "gpp"] == pytest.approx(days["gpp"].sum())
    assert out.loc[("FI-Hyy", 2008), "gpp_months"] == 12
    # no NEE in the table: nothing is usable as a (gpp, nee) target
    assert "nee" not in out.columns and not out["usable"].any()
    assert out["quality"].isna().all()


def test_annual_argument_checks(forest):
    with pytest.raises(TowerDataError, match="min_months"):
        annual_fluxes(forest, min_months=0)
    with pytest.raises(TowerDataError, match="min_months"):
        annual_fluxes(forest, min_months=13)
    with pytest.raises(TowerDataError, match="min_quality"):
        annual_fluxes(forest, min_quality=1.5)
    with pytest.raises(TowerDataError, match="no flux targets"):
        annual_fluxes(forest.drop(columns=["gpp", "nee"]))
