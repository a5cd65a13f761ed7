"""Feature maps of the annual CNN (``unique_xr.models.cnn.featuremap``).

Real data: the MetaFlux monthly forest table (``forest`` fixture, see conftest.py) and the agds
daily FLUXNET2015 subset ``../shared/data/towers/fluxnet2015_daily_4sites`` (geco-bern/agds; values
FLUXNET2015 DD, CC-BY-4.0, Pastorello et al. 2020; see its SOURCE.txt). Generated daily tables check
the row assignment and the averaging against values known in closed form.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from unique_xr.errors import SpecError
from unique_xr.models.cnn.featuremap import (
    DEFAULT_VARIABLES,
    TIME_STEPS,
    FeatureMaps,
    MapSpec,
    feature_maps_from_table,
    forest_one_hot,
    step_of_day,
)
from unique_xr.models.cnn.schema import FOREST_TYPES, INPUTS

AGDS = "towers/fluxnet2015_daily_4sites"
DAILY_VARIABLES = ("TA_F", "P_F", "VPD_F")


@pytest.fixture(scope="module")
def daily(shared_data) -> pd.DataFrame:
    """The agds daily table: site, time, igbp and FLUXNET daily columns of 4 forest sites."""
    folder = shared_data / AGDS
    raw = pd.read_csv(folder / "ddf_allsites_daily_fullcols.csv", parse_dates=["TIMESTAMP"])
    meta = pd.read_csv(folder / "site_meta.csv")[["siteid", "classid"]]
    table = raw.merge(meta, on="siteid").rename(columns={"siteid": "site", "TIMESTAMP": "time", "classid": "igbp"})
    return table[["site", "time", "igbp", *DAILY_VARIABLES, "GPP_NT_VUT_REF"]]


def _doy_table(years=(2007, 2008), site="XX-Doy", igbp="DBF") -> pd.DataFrame:
    """A generated daily table whose variable ``doy`` is the day of the year (and ``neg`` its negative)."""
    times = pd.DatetimeIndex(np.concatenate([pd.date_range(f"{y}-01-01", f"{y}-12-31", freq="D") for y in years]))
    return pd.DataFrame({"site": site, "time": times, "igbp": igbp,
                         "doy": times.dayofyear.astype(float), "neg": -times.dayofyear.astype(float)})


# ----------------------------------------------------------------------------- step_of_day
def test_step_of_day_16_day_boundaries():
    doy = np.array([1, 16, 17, 32, 33, 352, 353, 365, 366])
    month = np.ones_like(doy)
    assert step_of_day(doy, month, "16-day").tolist() == [0, 0, 1, 1, 2, 21, 22, 22, 22]


def test_step_of_day_8_day_boundaries():
    doy = np.array([1, 8, 9, 16, 17, 360, 361, 365, 366])
    assert step_of_day(doy, np.ones_like(doy), "8-day").tolist() == [0, 0, 1, 1, 2, 44, 45, 45, 45]


def test_step_of_day_monthly_uses_the_month():
    assert step_of_day(np.array([1, 366, 200]), np.array([1, 12, 7]), "monthly").tolist() == [0, 11, 6]


def test_step_of_day_covers_every_row_exactly_once_a_year():
    for name, (n_steps, days) in TIME_STEPS.items():
        for year in (2007, 2008):
            times = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")
            rows = step_of_day(times.dayofyear.to_numpy(), times.month.to_numpy(), name)
            assert rows.min() == 0 and rows.max() == n_steps - 1
            assert (np.diff(rows) >= 0).all() and set(np.diff(rows)) <= {0, 1}
            if days:
                counts = np.bincount(rows)
                assert (counts[:-1] == days).all()
                assert counts[-1] == (365 if year == 2007 else 366) - days * (n_steps - 1)


def test_step_of_day_unknown_step():
    with pytest.raises(SpecError, match="time_step"):
        step_of_day(np.array([1]), np.array([1]), "weekly")


# ------------------------------------------------------------------------------------ MapSpec
def test_mapspec_defaults_and_shapes():
    spec = MapSpec()
    assert spec.variables == DEFAULT_VARIABLES == tuple(INPUTS)
    assert spec.forest_types == FOREST_TYPES
    assert spec.time_step == "monthly" and spec.n_steps == 12
    assert spec.columns == (*INPUTS, *(f"forest_{t}" for t in FOREST_TYPES))
    assert spec.shape == (12, 11)
    assert MapSpec(time_step="16-day").shape == (23, 11)
    assert MapSpec(time_step="8-day", variables=("evi",), forest_types=()).shape == (46, 1)


def test_mapspec_validation():
    with pytest.raises(SpecError, match="time_step"):
        MapSpec(time_step="daily")
    with pytest.raises(SpecError, match="at least one"):
        MapSpec(variables=())
    with pytest.raises(SpecError, match="repeats"):
        MapSpec(variables=("evi", "evi"))
    with pytest.raises(SpecError, match="repeats"):
        MapSpec(forest_types=("ENF", "ENF"))


def test_mapspec_lists_become_tuples_and_round_trip():
    spec = MapSpec(variables=["evi", "lai"], time_step="8-day", forest_types=["ENF"])
    assert spec.variables == ("evi", "lai") and spec.forest_types == ("ENF",)
    assert hash(spec) == hash(MapSpec(variables=("evi", "lai"), time_step="8-day", forest_types=("ENF",)))
    assert MapSpec.from_dict(spec.to_dict()) == spec
    assert spec != MapSpec(variables=("evi", "lai"), time_step="16-day", forest_types=("ENF",))


# ----------------------------------------------------------------------- shapes from tables
def test_monthly_maps_of_the_real_forest_table(forest, annual, forest_maps):
    n_site_years = forest.groupby(["site", forest["time"].dt.year]).ngroups
    assert forest_maps.values.shape == (n_site_years, 12, len(DEFAULT_VARIABLES))
    assert forest_maps.values.dtype == np.float32
    assert forest_maps.forest.shape == (n_site_years, len(FOREST_TYPES))
    assert list(forest_maps.keys.columns) == ["site", "year", "igbp"]
    # sorted by site and year, the same order as annual_fluxes (the training set relies on it)
    assert (forest_maps.keys[["site", "year"]].to_numpy() == annual[["site", "year"]].to_numpy()).all()
    assert (forest_maps.keys["igbp"].to_numpy() == annual["igbp"].to_numpy()).all()


def test_monthly_map_cell_is_the_table_value(forest, forest_maps):
    # a monthly table has one record per row, so the map holds it unchanged
    k = np.flatnonzero((forest_maps.keys["site"] == "FI-Hyy") & (forest_maps.keys["year"] == 2008))[0]
    months = forest[(forest["site"] == "FI-Hyy") & (forest["time"].dt.year == 2008)]
    for j, name in enumerate(DEFAULT_VARIABLES):
        assert np.allclose(forest_maps.values[k, :, j], months[name].to_numpy(), equal_nan=True, rtol=1e-6)
    assert forest_maps.forest[k].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]  # ENF


@pytest.mark.parametrize("time_step", ["monthly", "16-day", "8-day"])
def test_shapes_from_a_real_daily_table(daily, time_step):
    spec = MapSpec(variables=DAILY_VARIABLES, time_step=time_step)
    maps = feature_maps_from_table(daily, spec)
    # CH-Dav 1997-2014, CH-Lae 2004-2014, FI-Hyy 1996-2014, FR-Pue 2000-2014
    assert len(maps) == 18 + 11 + 19 + 15
    assert maps.values.shape == (63, TIME_STEPS[time_step][0], 3)
    assert maps.forest.shape == (63, 5)
    assert maps.keys.groupby("site").size().to_dict() == {"CH-Dav": 18, "CH-Lae": 11, "FI-Hyy": 19, "FR-Pue": 15}
    assert maps.observed.mean() > 0.95


@pytest.mark.parametrize(("time_step", "row", "first", "last"), [
    ("16-day", 1, "2008-01-17", "2008-02-01"),
    ("16-day", 22, "2008-12-18", "2008-12-31"),   # days 353-366 of a leap year
    ("8-day", 1, "2008-01-09", "2008-01-16"),
    ("8-day", 45, "2008-12-26", "2008-12-31"),    # days 361-366
    ("monthly", 1, "2008-02-01", "2008-02-29"),
])
def test_daily_cell_is_the_mean_of_its_days(daily, time_step, row, first, last):
    maps = feature_maps_from_table(daily, MapSpec(variables=DAILY_VARIABLES, time_step=time_step))
    k = np.flatnonzero((maps.keys["site"] == "FI-Hyy") & (maps.keys["year"] == 2008))[0]
    days = daily[(daily["site"] == "FI-Hyy") & daily["time"].between(first, last)]
    assert len(days) == (pd.Timestamp(last) - pd.Timestamp(first)).days + 1
    for j, name in enumerate(DAILY_VARIABLES):
        assert maps.values[k, row, j] == pytest.approx(days[name].mean(), rel=1e-5, abs=1e-6)


def test_daily_cell_by_hand(daily):
    # FI-Hyy, 8-day row 45 of 2008 = days 361-366 = 26-31 December; TA_F in the file:
    # -0.126, -0.705, -4.549, -2.043, -0.435, -0.637 degC -> mean -8.495 / 6 = -1.41583
    days = daily[(daily["site"] == "FI-Hyy") & daily["time"].between("2008-12-26", "2008-12-31")]
    assert np.allclose(days["TA_F"], [-0.126, -0.705, -4.549, -2.043, -0.435, -0.637])
    maps = feature_maps_from_table(daily, MapSpec(variables=("TA_F",), time_step="8-day"))
    k = np.flatnonzero((maps.keys["site"] == "FI-Hyy") & (maps.keys["year"] == 2008))[0]
    assert maps.values[k, 45, 0] == pytest.approx(-1.41583, abs=1e-5)
    one_week = feature_maps_from_table(days, MapSpec(variables=("TA_F",), time_step="8-day"))
    assert one_week.values[0, 45, 0] == pytest.approx(-1.41583, abs=1e-5)
    assert one_week.observed[0].sum() == 1  # the other 45 rows have no record


def test_nan_records_are_left_out_of_the_mean():
    table = _doy_table(years=(2007,))
    table.loc[table["doy"] <= 8, "doy"] = np.nan          # row 0 of 8-day: all missing
    table.loc[table["doy"].between(9, 12), "doy"] = np.nan  # row 1: only days 13-16 remain
    maps = feature_maps_from_table(table, MapSpec(variables=("doy",), time_step="8-day"))
    assert np.isnan(maps.values[0, 0, 0]) and not maps.observed[0, 0, 0]
    assert maps.values[0, 1, 0] == pytest.approx(14.5)
    assert maps.values[0, 2, 0] == pytest.approx(20.5)


@pytest.mark.parametrize("time_step", ["monthly", "16-day", "8-day"])
def test_generated_daily_table_rows_hold_the_mean_day(time_step):
    table = _doy_table()
    maps = feature_maps_from_table(table, MapSpec(variables=("doy", "neg"), time_step=time_step))
    n_steps, days = TIME_STEPS[time_step]
    assert maps.values.shape == (2, n_steps, 2)
    assert maps.keys["year"].tolist() == [2007, 2008]
    assert maps.observed.all()
    for k, year in enumerate((2007, 2008)):
        times = pd.date_range(f"{year}-01-01", f"{year}-12-31")
        rows = times.month - 1 if days == 0 else np.minimum((times.dayofyear - 1) // days, n_steps - 1)
        expected = pd.Series(times.dayofyear.astype(float)).groupby(np.asarray(rows)).mean().to_numpy()
        assert np.allclose(maps.values[k, :, 0], expected)
        assert np.allclose(maps.values[k, :, 1], -expected)
    if time_step == "16-day":  # days 353-365 / 353-366
        assert maps.values[:, 22, 0].tolist() == [359.0, 359.5]
        assert maps.values[0, 0, 0] == 8.5
    if time_step == "8-day":  # days 361-365 / 361-366
        assert maps.values[:, 45, 0].tolist() == [363.0, 363.5]


def test_maps_from_a_generated_daily_fluxnet_csv(tmp_path):
    # a daily multi-site table in the MetaFlux layout, written and read back through read_forest_table
    from unique_xr.towers.forest import read_forest_table

    rng = np.random.default_rng(0)
    frames = []
    for site, pft, lat, years in (("AA-Enf", "ENF", 61.8, ("2007", "2008")), ("BB-Gra", "GRA", 45.0, ("2008",)),
                                  ("CC-Dbf", "DBF", -33.0, ("2008",))):
        times = pd.date_range(f"{years[0]}-01-01", f"{years[-1]}-12-31", freq="D")
        n = len(times)
        frames.append(pd.DataFrame({
            "Site": site, "TIMESTAMP": times.strftime("%Y%m%d"), "PFT": pft, "Lat": lat,
            "LAI": rng.uniform(0, 5, n), "EVI": rng.uniform(0, 0.6, n), "LE_CORR": rng.uniform(0, 150, n),
            "TA_ERA": rng.normal(10, 5, n), "TA_ERA_DAY": rng.normal(13, 5, n), "P_ERA": rng.exponential(2, n),
            "GPP_NT_VUT_REF": rng.uniform(0, 10, n), "NEE_VUT_REF": rng.normal(-1, 2, n),
        }))
    table = pd.concat(frames)
    table.loc[table.sample(frac=0.1, random_state=0).index, "EVI"] = np.nan
    path = tmp_path / "daily_forest.csv"
    table.to_csv(path, index=False)
    forest_daily = read_forest_table(path)
    assert forest_daily.attrs["resolution"] == "DD"
    assert sorted(forest_daily["site"].unique()) == ["AA-Enf", "CC-Dbf"]  # no grassland
    for time_step, n_steps in (("monthly", 12), ("16-day", 23), ("8-day", 46)):
        maps = feature_maps_from_table(forest_daily, MapSpec(time_step=time_step))
        assert maps.values.shape == (3, n_steps, 6)
        assert maps.keys[["site", "year"]].values.tolist() == [["AA-Enf", 2007], ["AA-Enf", 2008], ["CC-Dbf", 2008]]
        assert maps.forest.tolist() == [[1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 1, 0]]
        # 8 or more days a row: a 10 % gap in EVI leaves no row empty (and nights at 61.8 N stay > 3 h)
        assert maps.observed.all()
    # one cell by hand: EVI of AA-Enf, 16-day row 1 of 2008 (17 Jan - 1 Feb), NaN days left out
    maps = feature_maps_from_table(forest_daily, MapSpec(time_step="16-day"))
    days = table[(table["Site"] == "AA-Enf") & table["TIMESTAMP"].between("20080117", "20080201")]
    assert len(days) == 16
    assert maps.values[1, 1, 1] == pytest.approx(days["EVI"].mean(), rel=1e-6)


def test_row_order_of_the_table_does_not_matter(daily):
    spec = MapSpec(variables=DAILY_VARIABLES, time_step="16-day")
    a = feature_maps_from_table(daily, spec)
    b = feature_maps_from_table(daily.sample(frac=1.0, random_state=0).reset_index(drop=True), spec)
    assert np.array_equal(a.values, b.values, equal_nan=True)
    assert a.keys.equals(b.keys)


# -------------------------------------------------------------------------------------- masks
def test_observed_is_isfinite(forest_maps):
    assert forest_maps.observed.dtype == bool
    assert np.array_equal(forest_maps.observed, np.isfinite(forest_maps.values))
    assert 0.0 < forest_maps.missing_fraction < 0.5
    assert forest_maps.missing_fraction == pytest.approx(1 - np.isfinite(forest_maps.values).mean())


def test_missing_months_give_missing_rows(forest):
    site_year = (forest["site"] == "FI-Hyy") & (forest["time"].dt.year == 2008)
    gappy = forest[~(site_year & forest["time"].dt.month.isin([6, 7]))]
    maps = feature_maps_from_table(gappy)
    k = np.flatnonzero((maps.keys["site"] == "FI-Hyy") & (maps.keys["year"] == 2008))[0]
    assert not maps.observed[k, 5:7].any()
    assert np.isnan(maps.values[k, 5:7]).all()
    full = feature_maps_from_table(forest)
    assert full.observed[k, 5:7].sum() >= 10  # June and July are observed in the full table
    others = [0, 1, 2, 3, 4, *range(7, 12)]
    assert np.array_equal(maps.values[k, others], full.values[k, others], equal_nan=True)
    assert np.array_equal(np.delete(maps.values, k, 0), np.delete(full.values, k, 0), equal_nan=True)


def test_site_year_with_a_few_days_of_a_daily_table(daily):
    few = daily[(daily["site"] == "CH-Lae") & daily["time"].between("2010-03-01", "2010-03-20")]
    maps = feature_maps_from_table(few, MapSpec(variables=DAILY_VARIABLES, time_step="16-day"))
    assert len(maps) == 1
    # days 60-79 of 2010: rows 3 (49-64) and 4 (65-80)
    assert np.flatnonzero(maps.observed[0].any(axis=1)).tolist() == [3, 4]


# --------------------------------------------------------------------------------- forest type
def test_forest_one_hot_known_unknown_and_non_forest():
    onehot = forest_one_hot(["ENF", "MF", None, "GRA", np.nan, "DNF", pd.NA], FOREST_TYPES)
    assert onehot.dtype == np.float32
    assert onehot.tolist() == [
        [1, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0],
    ]
    assert forest_one_hot(["ENF"], ()).shape == (1, 0)


def test_non_forest_site_gets_an_all_zero_forest_row():
    table = pd.concat([_doy_table(site="AA-For", igbp="EBF", years=(2007,)),
                       _doy_table(site="BB-Gra", igbp="GRA", years=(2007,)),
                       _doy_table(site="CC-Unk", igbp=None, years=(2007,))])
    maps = feature_maps_from_table(table, MapSpec(variables=("doy",)))
    assert maps.keys["site"].tolist() == ["AA-For", "BB-Gra", "CC-Unk"]
    assert maps.forest.tolist() == [[0, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    assert maps.keys["igbp"].tolist()[:2] == ["EBF", "GRA"] and pd.isna(maps.keys["igbp"][2])


def test_forest_types_follow_the_spec(forest):
    spec = MapSpec(variables=("evi",), forest_types=("MF", "ENF"))
    maps = feature_maps_from_table(forest, spec)
    igbp = maps.keys["igbp"].to_numpy()
    assert np.array_equal(maps.forest[:, 0] == 1, igbp == "MF")
    assert np.array_equal(maps.forest[:, 1] == 1, igbp == "ENF")
    assert (maps.forest[np.isin(igbp, ["EBF", "DBF"])] == 0).all()


# ------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("time_step", ["16-day", "8-day"])
def test_monthly_table_is_too_coarse_for_finer_rows(forest, time_step):
    with pytest.raises(SpecError, match="coarser than the"):
        feature_maps_from_table(forest, MapSpec(time_step=time_step))


def test_weekly_records_are_fine_for_8_day_rows():
    weekly = _doy_table(years=(2007,)).iloc[::7]
    maps = feature_maps_from_table(weekly, MapSpec(variables=("doy",), time_step="8-day"))
    assert maps.values.shape == (1, 46, 1)
    assert maps.observed.mean() > 0.9


def test_missing_columns_are_refused(forest):
    with pytest.raises(SpecError, match="'ndvi'"):
        feature_maps_from_table(forest, MapSpec(variables=("evi", "ndvi")))
    with pytest.raises(SpecError, match="'igbp'"):
        feature_maps_from_table(forest.drop(columns=["igbp"]))
    with pytest.raises(SpecError, match="no rows"):
        feature_maps_from_table(forest.iloc[:0])


def test_other_key_column_names():
    table = _doy_table(years=(2007,)).rename(columns={"site": "station", "time": "date", "igbp": "pft"})
    maps = feature_maps_from_table(table, MapSpec(variables=("doy",)), site="station", time="date", igbp="pft")
    assert maps.keys["site"].tolist() == ["XX-Doy"] and maps.forest[0, 3] == 1


# ------------------------------------------------------------------------- FeatureMaps methods
def test_flat_shape_and_names(forest_maps):
    x, names = forest_maps.flat()
    n, steps, n_vars = forest_maps.values.shape
    assert x.shape == (n, steps * n_vars + len(FOREST_TYPES)) == (n, 12 * 6 + 5)
    assert len(names) == x.shape[1] == len(set(names))
    assert names[:7] == ["lai_00", "evi_00", "et_00", "t_day_00", "t_night_00", "precip_00", "lai_01"]
    assert names[-5:] == [f"forest_{t}" for t in FOREST_TYPES]
    # every named column holds that cell
    col = names.index("t_night_07")
    assert np.array_equal(x[:, col], forest_maps.values[:, 7, 4], equal_nan=True)
    assert np.array_equal(x[:, -5:], forest_maps.forest)
    assert np.isnan(x).sum() == (~forest_maps.observed).sum()


def test_flat_names_of_an_8_day_map():
    maps = feature_maps_from_table(_doy_table(years=(2007,)), MapSpec(variables=("doy", "neg"), time_step="8-day"))
    x, names = maps.flat()
    assert x.shape == (1, 46 * 2 + 5)
    assert names[90:92] == ["doy_45", "neg_45"] and x[0, 90] == 363.0


def test_subset_and_with_values(forest_maps):
    idx = np.array([5, 0, 17])
    sub = forest_maps.subset(idx)
    assert len(sub) == 3 and sub.spec == forest_maps.spec
    assert np.array_equal(sub.values, forest_maps.values[idx], equal_nan=True)
    assert np.array_equal(sub.forest, forest_maps.forest[idx])
    assert sub.keys.index.tolist() == [0, 1, 2]
    assert sub.keys["site"].tolist() == forest_maps.keys["site"].iloc[idx].tolist()
    mask = np.zeros(len(forest_maps), bool)
    mask[[1, 2]] = True
    assert len(forest_maps.subset(mask)) == 2

    hidden = np.where(sub.observed, sub.values, np.nan).astype(np.float64)
    hidden[:, :6] = np.nan
    other = sub.with_values(hidden)
    assert other.values.dtype == np.float32
    assert other.observed[:, :6].sum() == 0
    assert other.forest is sub.forest and other.keys is sub.keys
    assert np.isnan(sub.values[:, :6]).mean() < 1  # the original is untouched
    with pytest.raises(SpecError, match="shape"):
        sub.with_values(sub.values[:, :6])


def test_featuremaps_validation():
    spec = MapSpec(variables=("a", "b"))
    with pytest.raises(SpecError, match="values have shape"):
        FeatureMaps(spec, np.zeros((3, 12, 3), np.float32), np.zeros((3, 5), np.float32))
    with pytest.raises(SpecError, match="values have shape"):
        FeatureMaps(spec, np.zeros((3, 23, 2), np.float32), np.zeros((3, 5), np.float32))
    with pytest.raises(SpecError, match="forest has shape"):
        FeatureMaps(spec, np.zeros((3, 12, 2), np.float32), np.zeros((3, 4), np.float32))
    empty = FeatureMaps(spec, np.zeros((0, 12, 2), np.float32), np.zeros((0, 5), np.float32))
    assert len(empty) == 0 and empty.missing_fraction == 0.0


def test_maps_without_keys_can_be_subset():
    # keys default to an empty frame (maps of cubes have none); subsetting (as fit_cnn does) must work
    spec = MapSpec(variables=("a", "b"))
    maps = FeatureMaps(spec, np.ones((4, 12, 2), np.float32), np.zeros((4, 5), np.float32))
    sub = maps.subset(np.array([0, 2]))
    assert len(sub) == 2 and len(sub.keys) in (0, 2)


def test_keys_of_the_wrong_length_are_refused():
    spec = MapSpec(variables=("a",))
    with pytest.raises(SpecError, match="keys"):
        FeatureMaps(spec, np.ones((4, 12, 1), np.float32), np.zeros((4, 5), np.float32),
                    pd.DataFrame({"site": ["a", "b"]}))
