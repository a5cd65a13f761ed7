"""Site-grouped folds, metrics, temporal aggregation and the score table."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from unique_xr.errors import FoldLeakageError, MissingVariableError, SpecError
from unique_xr.models.cv import (
    Folds,
    check_no_leakage,
    inner_split,
    site_folds,
    spatial_block_folds,
)
from unique_xr.models.scores import aggregate, metrics, score_table

# ---------------------------------------------------------------------------------------------
# site folds on the real table
# ---------------------------------------------------------------------------------------------


def _test_sets_partition(folds: Folds, n_rows: int) -> None:
    tested = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(tested), np.arange(n_rows))


def test_site_folds_real_table_no_leakage_and_full_cover(feature_frame):
    sites = feature_frame["site"].to_numpy()
    folds = site_folds(sites, n_folds=5, seed=3)
    assert isinstance(folds, Folds) and len(folds) == 5 and folds.scheme == "site-kfold"
    check_no_leakage(folds, sites, require_cover=True)
    _test_sets_partition(folds, len(sites))
    for (train, test), names in zip(folds, folds.test_sites, strict=True):
        assert not set(sites[train]) & set(sites[test])
        assert sorted(set(sites[test])) == names
        assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(sites)))
    # 19 sites in 5 folds: 4, 4, 4, 4, 3 sites
    assert sorted(len(names) for names in folds.test_sites) == [3, 4, 4, 4, 4]


@pytest.mark.parametrize("n_folds", [2, 3, 7, 10, 19])
def test_site_folds_sizes_differ_by_at_most_one_site(feature_frame, n_folds):
    folds = site_folds(feature_frame["site"], n_folds=n_folds, seed=1)
    sizes = [len(names) for names in folds.test_sites]
    assert len(folds) == n_folds and sum(sizes) == 19 and max(sizes) - min(sizes) <= 1


def test_site_folds_seeded_and_reproducible(feature_frame):
    sites = feature_frame["site"]
    a, b, c = site_folds(sites, 5, seed=0), site_folds(sites, 5, seed=0), site_folds(sites, 5, seed=1)
    assert a.test_sites == b.test_sites
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    assert a.test_sites != c.test_sites


def test_site_folds_default_20_on_19_sites_is_leave_one_site_out(feature_frame):
    with pytest.warns(UserWarning, match="leave-one-site-out"):
        folds = site_folds(feature_frame["site"])
    assert len(folds) == 19 and folds.scheme == "leave-one-site-out" and folds.requested == 20
    assert all(len(names) == 1 for names in folds.test_sites)
    card = json.loads(json.dumps(folds.to_dict()))
    assert card["n_folds"] == 19 and card["requested"] == 20 and card["seed"] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert site_folds(feature_frame["site"], n_folds=19).scheme == "leave-one-site-out"


@pytest.mark.parametrize(
    ("sites", "n_folds", "match"),
    [
        (["A", "B", "C"], 1, "n_folds must be an integer >= 2"),
        (["A", "B", "C"], 2.0, "n_folds must be an integer >= 2"),
        (["A", "A"], 2, "at least 2 sites"),
        (["A", None, "B"], 2, "missing label"),
        ([["A", "B"]], 2, "1-D"),
    ],
)
def test_site_folds_refuses_bad_input(sites, n_folds, match):
    with pytest.raises(SpecError, match=match):
        site_folds(sites, n_folds)


def test_check_no_leakage_names_the_leaking_fold_and_site():
    sites = np.array(["A", "A", "B", "B", "C"])
    good = [(np.array([0, 1, 2, 3]), np.array([4])), (np.array([4]), np.array([0, 1, 2, 3]))]
    check_no_leakage(good, sites, require_cover=True)
    leaky = [good[0], (np.array([0, 4]), np.array([1, 2, 3]))]
    with pytest.raises(FoldLeakageError, match=r"fold 1 leaks: site\(s\) \['A'\]"):
        check_no_leakage(leaky, sites)
    with pytest.raises(SpecError, match="out of range"):
        check_no_leakage([(np.array([0]), np.array([5]))], sites)
    with pytest.raises(SpecError, match="1 row\\(s\\) are never tested"):
        check_no_leakage([(np.array([4]), np.array([0, 1, 2, 3]))], sites, require_cover=True)
    # a row-level (not only site-level) overlap is refused too
    with pytest.raises(SpecError):
        check_no_leakage([(np.array([0, 1]), np.array([1]))], sites)


# ---------------------------------------------------------------------------------------------
# spatial blocks and inner split
# ---------------------------------------------------------------------------------------------


def test_spatial_blocks_never_split_and_cover(feature_frame):
    f = feature_frame
    folds = spatial_block_folds(f["site"], f["lat"], f["lon"], n_folds=5, block_deg=5.0, seed=2)
    assert len(folds) == 5 and folds.scheme == "spatial-block"
    check_no_leakage(folds, f["site"], require_cover=True)
    blocks = folds.params["blocks"]
    assert set(blocks) == set(f["site"])
    fold_of_site = {s: k for k, names in enumerate(folds.test_sites) for s in names}
    fold_of_block: dict[str, set[int]] = {}
    for s, block in blocks.items():
        fold_of_block.setdefault(block, set()).add(fold_of_site[s])
    assert all(len(v) == 1 for v in fold_of_block.values())
    # the block labels are right: DE-Tha (50.96 N, 13.57 E) and DE-Gri (50.95 N, 13.51 E) share a block
    assert blocks["DE-Tha"] == blocks["DE-Gri"] == "lat[50,55) lon[10,15)"
    assert blocks["AU-DaS"] == blocks["AU-DaP"] != blocks["AU-ASM"]
    assert fold_of_site["DE-Tha"] == fold_of_site["DE-Gri"]
    assert len(fold_of_block) == 13  # occupied 5-degree blocks of the 19 sites


def test_spatial_blocks_more_folds_than_blocks_warns(feature_frame):
    f = feature_frame
    with pytest.warns(UserWarning, match="leave-one-block-out"):
        folds = spatial_block_folds(f["site"], f["lat"], f["lon"], n_folds=20, block_deg=10.0)
    assert folds.scheme == "leave-one-block-out" and len(folds) == 10
    check_no_leakage(folds, f["site"], require_cover=True)


def test_spatial_blocks_refuses_inconsistent_or_missing_coordinates():
    with pytest.raises(SpecError, match="site 'A' has more than one coordinate"):
        spatial_block_folds(["A", "A", "B"], [10.0, 30.0, -20.0], [0.0, 0.0, 0.0], n_folds=2)
    with pytest.raises(SpecError, match="missing or out-of-range"):
        spatial_block_folds(["A", "B"], [10.0, np.nan], [0.0, 0.0], n_folds=2)
    with pytest.raises(SpecError, match="one 5.0 deg block"):
        spatial_block_folds(["A", "B"], [50.1, 50.2], [8.0, 8.1], n_folds=2)


def test_inner_split_is_site_grouped_inside_a_fold(feature_frame):
    sites = feature_frame["site"].to_numpy()
    outer_train, _ = site_folds(sites, n_folds=4, seed=0)[0]
    fold_sites = sites[outer_train]
    train, val = inner_split(fold_sites, fraction=0.2, seed=5)
    assert not set(fold_sites[train]) & set(fold_sites[val])
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(fold_sites.size))
    n_sites = len(set(fold_sites))
    assert len(set(fold_sites[val])) == round(0.2 * n_sites)
    # positions map back to the full table
    assert set(sites[outer_train[val]]) == set(fold_sites[val])
    # different seeds hold out different sites; tiny folds keep one site on each side
    assert set(fold_sites[inner_split(fold_sites, seed=6)[1]]) != set(fold_sites[val])
    small_train, small_val = inner_split(["A", "B"], fraction=0.9)
    assert small_train.size == 1 and small_val.size == 1
    with pytest.raises(SpecError, match="strictly between 0 and 1"):
        inner_split(fold_sites, fraction=1.0)
    with pytest.raises(SpecError, match="at least 2 sites"):
        inner_split(["A", "A"])


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------


def test_metrics_match_hand_computations():
    rng = np.random.default_rng(42)
    obs = rng.gamma(2.0, 2.0, 500)
    pred = 0.8 * obs + rng.normal(0.5, 1.0, 500)
    obs[[3, 10]] = np.nan
    pred[[10, 20]] = np.inf
    ok = np.isfinite(obs) & np.isfinite(pred)
    o, p = obs[ok], pred[ok]
    m = metrics(obs, pred)
    assert m["n"] == 497
    assert m["r"] == pytest.approx(np.corrcoef(o, p)[0, 1], rel=1e-12)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((p - o) ** 2)), rel=1e-12)
    assert m["bias"] == pytest.approx(np.mean(p) - np.mean(o), rel=1e-12)
    assert m["mae"] == pytest.approx(np.mean(np.abs(p - o)), rel=1e-12)
    r2 = 1 - np.sum((p - o) ** 2) / np.sum((o - o.mean()) ** 2)
    assert m["r2"] == pytest.approx(r2, rel=1e-12)
    assert m["r2"] != pytest.approx(m["r"] ** 2, rel=1e-3)  # R2 is not r squared


def test_metrics_bias_sign_and_perfect_prediction():
    obs = np.array([1.0, 2.0, 4.0, 8.0])
    over = metrics(obs, obs + 1.5)
    assert over["bias"] == pytest.approx(1.5) and over["r"] == pytest.approx(1.0)
    assert metrics(obs, obs - 2.0)["bias"] == pytest.approx(-2.0)
    perfect = metrics(obs, obs)
    assert perfect["rmse"] == 0.0 and perfect["r2"] == 1.0 and perfect["mae"] == 0.0
    # worse than the observed mean gives a negative R2
    assert metrics(obs, obs[::-1])["r2"] < 0


def test_metrics_too_few_pairs_or_constant_series_give_nan_not_errors():
    few = metrics([1.0, 2.0, np.nan], [1.0, 2.0, 3.0])
    assert few["n"] == 2 and all(np.isnan(few[k]) for k in ("r", "rmse", "bias", "r2", "mae"))
    flat = metrics([3.0, 3.0, 3.0], [1.0, 2.0, 3.0])
    assert np.isnan(flat["r"]) and np.isnan(flat["r2"]) and flat["rmse"] == pytest.approx(np.sqrt(5 / 3))
    flat_pred = metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert np.isnan(flat_pred["r"]) and flat_pred["r2"] == pytest.approx(0.0)
    with pytest.raises(SpecError, match="same shape"):
        metrics([1.0, 2.0], [1.0, 2.0, 3.0])


# ---------------------------------------------------------------------------------------------
# aggregation on a small hand-made frame
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def two_year_frame() -> pd.DataFrame:
    """Site A from 2003-12-20 to 2004-01-20 (obs = day index), site B for 3 days in 2004."""
    days = pd.date_range("2003-12-20", "2004-01-20")
    a = pd.DataFrame({"site": "A", "date": days, "igbp": "GRA", "obs": np.arange(len(days), dtype=float)})
    a["m1"] = a["obs"] + 1.0
    a["m2"] = a["obs"] * 2.0
    b = pd.DataFrame(
        {"site": "B", "date": pd.date_range("2004-06-01", periods=3), "igbp": "ENF", "obs": 1.0, "m1": 2.0, "m2": 3.0}
    )
    return pd.concat([a, b], ignore_index=True)


def test_aggregate_8day_windows_restart_on_january_first(two_year_frame):
    out = aggregate(two_year_frame, "8D", cols=["obs", "m1", "m2"], min_fraction=0.5)
    a = out[out["site"] == "A"]
    # 2003 windows: day 353-360 (Dec 19-26, 7 of 8 days present), day 361-365 (Dec 27-31, 5 days)
    # 2004 windows: Jan 1-8, Jan 9-16, Jan 17-24 (Jan 17-20: 4 of 8 days, kept at 0.5)
    expected_starts = pd.to_datetime(["2003-12-19", "2003-12-27", "2004-01-01", "2004-01-09", "2004-01-17"])
    assert list(a["date"]) == list(expected_starts)
    assert list(a["window_days"]) == [8, 5, 8, 8, 8]
    assert list(a["n_days"]) == [7, 5, 8, 8, 4]
    # Dec 27-31 are day indices 7..11 of site A
    row = a[a["date"] == "2003-12-27"].iloc[0]
    assert row["obs"] == pytest.approx(9.0) and row["m1"] == pytest.approx(10.0) and row["m2"] == pytest.approx(18.0)
    # a leap year's last window is 6 days (361-366)
    leap = pd.DataFrame({"site": "X", "date": pd.date_range("2004-12-26", "2004-12-31"), "obs": 1.0})
    assert aggregate(leap, "8D", cols=["obs"])["window_days"].tolist() == [6]
    # site B: 3 of the 8 days of its window -> dropped at 0.5, kept at 0.3
    assert "B" not in set(out["site"])
    assert aggregate(two_year_frame, "8D", cols=["obs"], min_fraction=0.3)["site"].eq("B").sum() == 1


def test_aggregate_missing_prediction_removes_days_from_every_column(two_year_frame):
    frame = two_year_frame.copy()
    jan = frame["date"].between("2004-01-01", "2004-01-08") & (frame["site"] == "A")
    # m2 missing on 5 of the 8 days of Jan 1-8: only 3 common days < 4 -> the window goes for all
    frame.loc[jan & frame["date"].dt.day.le(5), "m2"] = np.nan
    out = aggregate(frame, "8D", cols=["obs", "m1", "m2"])
    assert pd.Timestamp("2004-01-01") not in set(out.loc[out["site"] == "A", "date"])
    # but averaging obs alone keeps it
    assert pd.Timestamp("2004-01-01") in set(aggregate(frame, "8D", cols=["obs"])["date"])
    # one missing day: the window stays, and obs is averaged over the same 7 days as the models
    frame = two_year_frame.copy()
    frame.loc[frame["date"].eq("2004-01-03") & frame["site"].eq("A"), "m1"] = np.nan
    out = aggregate(frame, "8D", cols=["obs", "m1", "m2"]).set_index("date")
    kept = two_year_frame[jan & ~two_year_frame["date"].eq("2004-01-03")]
    assert out.loc["2004-01-01", "n_days"] == 7
    assert out.loc["2004-01-01", "obs"] == pytest.approx(kept["obs"].mean())
    assert out.loc["2004-01-01", "obs"] != pytest.approx(two_year_frame.loc[jan, "obs"].mean())


def test_aggregate_month_year_and_day(two_year_frame):
    month = aggregate(two_year_frame, "MS", cols=["obs", "m1"], carry=["igbp"])
    a = month[month["site"] == "A"]
    # Dec 2003: 12 of 31 days (< 0.5), Jan 2004: 20 of 31 days
    assert a["date"].tolist() == [pd.Timestamp("2004-01-01")]
    assert a["window_days"].tolist() == [31] and a["n_days"].tolist() == [20] and a["igbp"].tolist() == ["GRA"]
    assert a["obs"].iloc[0] == pytest.approx(np.arange(12, 32).mean())
    assert month.columns.tolist() == ["site", "date", "igbp", "obs", "m1", "n_days", "window_days"]
    year = aggregate(two_year_frame, "YS", cols=["obs"], min_fraction=0.03)
    assert year["window_days"].tolist() == [365, 366]  # A: 12/365, 20/366 kept; B: 3/366 dropped
    day = aggregate(two_year_frame, "D", cols=["obs", "m1"])
    assert len(day) == len(two_year_frame) and np.array_equal(day["obs"], two_year_frame["obs"])


def test_aggregate_refuses_bad_input(two_year_frame):
    with pytest.raises(SpecError, match="unknown time scale"):
        aggregate(two_year_frame, "W", cols=["obs"])
    with pytest.raises(SpecError, match="min_fraction"):
        aggregate(two_year_frame, "MS", cols=["obs"], min_fraction=0.0)
    with pytest.raises(MissingVariableError, match="lightgbm"):
        aggregate(two_year_frame, "MS", cols=["obs", "lightgbm"])
    with pytest.raises(SpecError, match="duplicate"):
        aggregate(pd.concat([two_year_frame, two_year_frame.iloc[:1]]), "MS", cols=["obs"])
    changing = two_year_frame.assign(igbp=np.where(two_year_frame.index % 2, "GRA", "CRO"))
    with pytest.raises(SpecError, match="change within"):
        aggregate(changing, "MS", cols=["obs"], carry=["igbp"])


# ---------------------------------------------------------------------------------------------
# score table
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def oof_frame(feature_frame) -> pd.DataFrame:
    """A slice of the real table with two synthetic 'models' (P-model as one, a noisy copy of obs)."""
    rng = np.random.default_rng(0)
    oof = feature_frame[feature_frame["gpp_obs"].notna()][["site", "date", "igbp", "gpp_obs", "gpp_pmodel"]].copy()
    oof["noisy"] = oof["gpp_obs"] + rng.normal(0.3, 1.0, len(oof))
    oof.loc[oof.sample(frac=0.2, random_state=1).index, "noisy"] = np.nan
    return oof.reset_index(drop=True)


def test_score_table_scores_every_model_on_identical_rows(oof_frame):
    table = score_table(oof_frame, models=["noisy", "gpp_pmodel"], by=["overall", "igbp"])
    assert set(table["scale"]) == {"D", "8D", "MS", "YS"}
    assert set(table["group_by"]) == {"overall", "igbp"}
    per_model = table.pivot_table(index=["scale", "group_by", "group"], columns="model", values="n")
    assert (per_model["noisy"] == per_model["gpp_pmodel"]).all()
    # daily overall row equals metrics() on the rows where obs and both models are finite
    common = oof_frame[oof_frame[["gpp_obs", "noisy", "gpp_pmodel"]].notna().all(axis=1)]
    row = table.query("model == 'noisy' and scale == 'D' and group == 'all'").iloc[0]
    expected = metrics(common["gpp_obs"], common["noisy"])
    assert row["n"] == expected["n"] == len(common) and row["n_sites"] == 17  # FI-Hyy, FR-Pue have no P-model
    for key in ("r", "rmse", "bias", "r2", "mae"):
        assert row[key] == pytest.approx(expected[key], rel=1e-12)
    assert row["bias"] == pytest.approx(0.3, abs=0.05)
    # per-IGBP groups split the same rows
    igbp_n = table.query("model == 'noisy' and scale == 'D' and group_by == 'igbp'")["n"].sum()
    assert igbp_n == row["n"]
    # aggregating averages the noise away: RMSE falls from daily to monthly
    rmse = table.query("model == 'noisy' and group == 'all'").set_index("scale")["rmse"]
    assert rmse["D"] > rmse["8D"] > rmse["MS"]


def test_score_table_common_false_scores_each_model_on_its_own_rows(oof_frame):
    own = score_table(oof_frame, models=["noisy", "gpp_pmodel"], by=["overall"], scales=["D"], common=False)
    n = own.set_index("model")["n"]
    assert n["noisy"] == oof_frame["noisy"].notna().sum()
    assert n["gpp_pmodel"] == oof_frame[["gpp_obs", "gpp_pmodel"]].notna().all(axis=1).sum()
    assert n["noisy"] != n["gpp_pmodel"]
    shared = score_table(oof_frame, models=["noisy", "gpp_pmodel"], by=["overall"], scales=["D"])
    assert (shared["n"] < own["n"]).all()


def test_score_table_site_groups_and_errors(oof_frame):
    table = score_table(oof_frame, models=["noisy"], by=["site"], scales=["MS"])
    assert set(table["group"]) == set(oof_frame["site"]) and (table["n_sites"] == 1).all()
    with pytest.raises(MissingVariableError, match="lightgbm"):
        score_table(oof_frame, models=["lightgbm"])
    with pytest.raises(SpecError, match="unknown time scale"):
        score_table(oof_frame, models=["noisy"], scales=["M"])
    with pytest.raises(SpecError, match="at least one model"):
        score_table(oof_frame, models=[])
