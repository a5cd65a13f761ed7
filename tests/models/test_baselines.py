"""Baselines: hand-checked equations, skill on held-out real sites, round trips, fallbacks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from unique_xr.errors import MissingVariableError, NotFittedError, SpecError
from unique_xr.models.baselines import (
    Baseline,
    LightUseEfficiency,
    LinearVI,
    PModelColumn,
    TrainingMean,
    baseline_from_dict,
    fapar_from_ndvi,
    fit_predict_in_folds,
    par_from_shortwave,
    temperature_scalar,
    vpd_scalar,
)
from unique_xr.models.cv import site_folds
from unique_xr.models.scores import metrics


def _round_trip(model: Baseline) -> Baseline:
    return baseline_from_dict(json.loads(json.dumps(model.to_dict())))


@pytest.fixture(scope="module")
def out_of_fold(training_frame) -> pd.DataFrame:
    """Out-of-fold predictions of every baseline in the same 5 site-grouped folds of the real table."""
    folds = site_folds(training_frame["site"], n_folds=5, seed=0)
    oof = training_frame[["site", "date", "igbp", "gpp_obs"]].copy()
    for factory in (TrainingMean, LinearVI, LightUseEfficiency, PModelColumn):
        oof[factory.default_name] = fit_predict_in_folds(factory, training_frame, "gpp_obs", folds)
    return oof


# ---------------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------------


def test_kernels_by_hand():
    assert par_from_shortwave(np.array([100.0]))[0] == pytest.approx(100 * 0.45 * 86400 / 1e6)
    assert fapar_from_ndvi(np.array([0.5]))[0] == pytest.approx(1.24 * 0.5 - 0.168)
    assert fapar_from_ndvi(np.array([0.05, 0.97])).tolist() == [0.0, 1.0]
    assert temperature_scalar(np.array([-5.0, 2.5, 20.0]), -5.0, 5.0).tolist() == [0.0, 0.75, 1.0]
    assert vpd_scalar(np.array([5.0, 20.0, 30.0, 50.0]), 10.0, 30.0).tolist() == [1.0, 0.5, 0.0, 0.0]
    assert np.isnan(temperature_scalar(np.array([np.nan]), 0.0, 1.0)).all()


# ---------------------------------------------------------------------------------------------
# skill on held-out sites of the real table (these can fail)
# ---------------------------------------------------------------------------------------------


def test_baselines_beat_the_training_mean_on_held_out_sites(out_of_fold):
    common = out_of_fold[out_of_fold[["gpp_obs", "training_mean", "linear_vi", "lue_mod17"]].notna().all(axis=1)]
    assert len(common) > 8000 and common["site"].nunique() == 19
    floor = metrics(common["gpp_obs"], common["training_mean"])
    linear = metrics(common["gpp_obs"], common["linear_vi"])
    lue = metrics(common["gpp_obs"], common["lue_mod17"])
    assert linear["rmse"] < 0.85 * floor["rmse"] and linear["r"] > 0.55 and linear["r2"] > 0.3
    assert lue["rmse"] < 0.75 * floor["rmse"] and lue["r"] > 0.65 and lue["r2"] > 0.45
    assert abs(lue["bias"]) < 0.5


def test_lue_covers_every_row_with_ndvi_and_pmodel_is_the_column(out_of_fold, training_frame):
    # LUE is complete where NDVI is known (radiation falls back to rad_toa, met scalars to 1)
    assert training_frame["sw_in"].isna().sum() > 1000 and training_frame["vpd"].isna().sum() > 1000
    assert out_of_fold["lue_mod17"].notna().all()
    # LinearVI is NaN exactly where a vegetation index is missing
    any_vi_missing = training_frame[["ndvi", "evi", "nirv"]].isna().any(axis=1)
    assert np.array_equal(out_of_fold["linear_vi"].isna(), any_vi_missing)
    assert np.array_equal(out_of_fold["pmodel"].to_numpy(), training_frame["gpp_pmodel"].to_numpy(), equal_nan=True)


# ---------------------------------------------------------------------------------------------
# LinearVI
# ---------------------------------------------------------------------------------------------


def test_linear_vi_recovers_exact_coefficients_and_skips_nan_rows():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"ndvi": rng.uniform(0, 1, 50), "evi": rng.uniform(0, 1, 50), "nirv": rng.uniform(0, 0.4, 50)})
    y = 0.5 + 4.0 * frame["ndvi"] - 2.0 * frame["evi"] + 10.0 * frame["nirv"]
    frame.loc[3, "evi"] = np.nan
    y = y.to_numpy()
    y[7] = 1e6  # would wreck the fit if a NaN-target row were not skipped...
    y[7] = np.nan
    model = LinearVI().fit(frame, y)
    assert model.fitted["n_rows"] == 48
    assert model.fitted["intercept"] == pytest.approx(0.5)
    assert model.fitted["coef"] == pytest.approx({"ndvi": 4.0, "evi": -2.0, "nirv": 10.0})
    pred = model.predict(frame)
    assert np.isnan(pred[3]) and np.isfinite(np.delete(pred, 3)).all()


def test_linear_vi_errors():
    frame = pd.DataFrame({"ndvi": [0.1, 0.2, 0.3], "evi": [0.1, 0.2, np.nan]})
    with pytest.raises(NotFittedError, match="not fitted"):
        LinearVI(features=["ndvi"]).predict(frame)
    with pytest.raises(MissingVariableError, match=r"\['nirv'\]"):
        LinearVI().fit(frame, [1.0, 2.0, 3.0])
    with pytest.raises(SpecError, match="only 2 row"):
        LinearVI(features=["ndvi", "evi"]).fit(frame, [1.0, 2.0, 3.0])
    with pytest.raises(SpecError, match="one target per row"):
        LinearVI(features=["ndvi"]).fit(frame, [1.0, 2.0])
    fitted = LinearVI(features=["ndvi"]).fit(frame, [1.0, 2.0, 3.0])
    with pytest.raises(MissingVariableError, match="ndvi"):
        fitted.predict(frame.rename(columns={"ndvi": "NDVI"}))


# ---------------------------------------------------------------------------------------------
# light-use efficiency
# ---------------------------------------------------------------------------------------------


def _synthetic_lue_frame(n: int, igbp: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "igbp": igbp,
            "ndvi": rng.uniform(0.2, 0.9, n),
            "sw_in": rng.uniform(30, 320, n),
            "rad_toa": rng.uniform(350, 450, n),
            "ta": rng.uniform(-15, 30, n),
            "vpd": rng.uniform(0, 50, n),
        }
    )


def test_lue_calibration_recovers_per_class_parameters():
    truth = {
        "ENF": {"eps_max": 0.9, "t_low": -5.0, "t_high": 10.0, "vpd_low": 5.0, "vpd_high": 40.0},
        "CRO": {"eps_max": 1.6, "t_low": 0.0, "t_high": 20.0, "vpd_low": 15.0, "vpd_high": 60.0},
    }
    parts = []
    for k, (igbp, p) in enumerate(truth.items()):
        part = _synthetic_lue_frame(400, igbp, seed=k)
        ramps = {key: p[key] for key in ("t_low", "t_high", "vpd_low", "vpd_high")}
        part["gpp"] = p["eps_max"] * LightUseEfficiency().scalars(part, **ramps)
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    model = LightUseEfficiency().fit(frame, "gpp")
    for igbp, p in truth.items():
        got = model.fitted["classes"][igbp]
        assert got["eps_max"] == pytest.approx(p["eps_max"], rel=1e-9)
        for key in ("t_low", "t_high", "vpd_low", "vpd_high"):
            assert got[key] == p[key]
        assert got["train_rmse"] == pytest.approx(0.0, abs=1e-9)
    assert np.allclose(model.predict(frame), frame["gpp"], rtol=1e-9)
    # hand check of one prediction with the MOD17 equation
    row = frame.iloc[[5]]
    p = truth["ENF"]
    f_t = np.clip((row["ta"].iloc[0] - p["t_low"]) / (p["t_high"] - p["t_low"]), 0, 1)
    f_v = np.clip((p["vpd_high"] - row["vpd"].iloc[0]) / (p["vpd_high"] - p["vpd_low"]), 0, 1)
    fapar = np.clip(1.24 * row["ndvi"].iloc[0] - 0.168, 0, 1)
    par = 0.45 * row["sw_in"].iloc[0] * 0.0864
    assert model.predict(row)[0] == pytest.approx(p["eps_max"] * f_t * f_v * fapar * par, rel=1e-9)


def test_lue_real_table_eps_max_positive_and_per_class(training_frame):
    model = LightUseEfficiency().fit(training_frame, "gpp_obs")
    classes = model.fitted["classes"]
    assert set(classes) == set(training_frame["igbp"])  # 8 IGBP classes, each with >= 100 rows
    eps = {igbp: p["eps_max"] for igbp, p in classes.items()}
    assert all(0.2 < e < 4.0 for e in eps.values())  # g C MJ-1, MOD17's BPLUT spans ~0.8-1.3
    assert len({round(e, 6) for e in eps.values()}) == len(eps)  # calibrated per class, not one value
    assert 0.3 < model.fitted["toa_fraction"] < 0.8  # mean all-sky transmissivity
    for p in classes.values():
        assert p["t_low"] < p["t_high"] and p["vpd_low"] < p["vpd_high"] and p["n_rows"] >= 100
    # per-class parameters fit the training rows better than the pooled ones
    per_class = metrics(training_frame["gpp_obs"], model.predict(training_frame))["rmse"]
    pooled_only = LightUseEfficiency(min_rows=10**9).fit(training_frame, "gpp_obs")
    assert pooled_only.fitted["classes"] == {} and len(pooled_only.fitted["pooled_classes"]) == 8
    assert per_class < metrics(training_frame["gpp_obs"], pooled_only.predict(training_frame))["rmse"]


def test_lue_unseen_class_uses_pooled_fallback(training_frame):
    train = training_frame[training_frame["igbp"] != "CSH"]
    model = LightUseEfficiency().fit(train, "gpp_obs")
    assert "CSH" not in model.fitted["classes"]
    test = training_frame[training_frame["igbp"] == "CSH"].head(200)
    pooled = model.fitted["pooled"]
    ramps = {k: pooled[k] for k in ("t_low", "t_high", "vpd_low", "vpd_high")}
    expected = pooled["eps_max"] * model.scalars(test, **ramps)
    assert np.allclose(model.predict(test), expected, rtol=1e-12, equal_nan=True)
    assert (model.parameters_for(test["igbp"])["source"] == "pooled").all()
    # a missing class label and a made-up one get the same pooled prediction
    assert np.allclose(model.predict(test.assign(igbp=None)), expected, equal_nan=True)
    assert np.allclose(model.predict(test.assign(igbp="XYZ")), expected, equal_nan=True)
    # ...and differ from what a class with its own parameters gets
    assert not np.allclose(model.predict(test.assign(igbp="GRA")), expected, equal_nan=True)


def test_lue_small_class_pooled_and_missing_input_rules(training_frame):
    model = LightUseEfficiency(min_rows=300).fit(training_frame, "gpp_obs")
    assert "EBF" in model.fitted["pooled_classes"] and "EBF" not in model.fitted["classes"]  # 259 rows
    rows = training_frame[(training_frame["igbp"] == "GRA") & training_frame[["sw_in", "ta", "vpd"]].notna().all(axis=1)]
    rows = rows.head(50)
    params = model.fitted["classes"]["GRA"]
    base = model.predict(rows)
    # missing ta / vpd -> scalar 1, i.e. the same as a temperature above t_high / a VPD below vpd_low
    assert np.allclose(model.predict(rows.assign(ta=np.nan)), model.predict(rows.assign(ta=params["t_high"] + 1)))
    assert np.allclose(model.predict(rows.assign(vpd=np.nan)), model.predict(rows.assign(vpd=0.0)))
    # missing sw_in -> toa_fraction * rad_toa
    k = model.fitted["toa_fraction"]
    assert np.allclose(model.predict(rows.assign(sw_in=np.nan)), model.predict(rows.assign(sw_in=k * rows["rad_toa"])))
    assert np.isnan(model.predict(rows.assign(sw_in=np.nan, rad_toa=np.nan))).all()
    assert np.isnan(model.predict(rows.assign(ndvi=np.nan))).all()
    assert np.isfinite(base).all() and (base >= 0).all()
    with pytest.raises(MissingVariableError, match="vpd"):
        model.predict(rows.drop(columns="vpd"))


# ---------------------------------------------------------------------------------------------
# round trips and the P-model column
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [LinearVI, LightUseEfficiency, PModelColumn, TrainingMean, lambda: LinearVI(features=["ndvi"], name="lin_ndvi")],
)
def test_to_dict_from_dict_round_trip_gives_identical_predictions(training_frame, make):
    model = make().fit(training_frame, "gpp_obs")
    again = _round_trip(model)
    assert type(again) is type(model) and again.name == model.name
    assert again.to_dict() == model.to_dict()
    assert np.array_equal(again.predict(training_frame), model.predict(training_frame), equal_nan=True)
    assert type(model).from_dict(model.to_dict()).name == model.name


def test_from_dict_refuses_foreign_descriptions():
    with pytest.raises(SpecError, match="not a baseline description"):
        baseline_from_dict({"class": "XGBoost"})
    with pytest.raises(SpecError, match="use Baseline.from_dict"):
        LinearVI.from_dict(TrainingMean().to_dict())


def test_pmodel_column_predicts_the_column_and_refuses_a_missing_one():
    frame = pd.DataFrame({"gpp_pmodel": [1.0, None, 3.0], "other": [5.0, 6.0, 7.0]})
    assert np.array_equal(PModelColumn().predict(frame), [1.0, np.nan, 3.0], equal_nan=True)
    assert PModelColumn(column="other", name="x").fit(frame, [0, 0, 0]).predict(frame).tolist() == [5.0, 6.0, 7.0]
    with pytest.raises(MissingVariableError, match="gpp_pmodel"):
        PModelColumn().predict(frame.drop(columns="gpp_pmodel"))


# ---------------------------------------------------------------------------------------------
# fit_predict_in_folds
# ---------------------------------------------------------------------------------------------


def test_fit_predict_in_folds_uses_only_training_rows(training_frame):
    folds = site_folds(training_frame["site"], n_folds=4, seed=2)
    y = training_frame["gpp_obs"].to_numpy()
    oof, models = fit_predict_in_folds(TrainingMean(), training_frame, y, folds, return_models=True)
    for (train, test), model in zip(folds, models, strict=True):
        assert np.allclose(oof[test], y[train].mean())
        assert model.fitted["n_rows"] == train.size
    assert np.isfinite(oof).all()
    # a lambda factory and partial folds: untested rows stay NaN
    partial = fit_predict_in_folds(lambda: LinearVI(features=["ndvi"]), training_frame, y, folds[:1])
    assert np.isnan(partial[folds[1][1]]).all() and np.isfinite(partial[folds[0][1]]).all()


def test_fit_predict_in_folds_refuses_leaky_or_overlapping_folds(training_frame):
    sites = training_frame["site"].to_numpy()
    rows = np.arange(len(sites))
    leaky = [(rows[: len(rows) // 2], rows[len(rows) // 2 - 1 :])]
    assert sites[len(rows) // 2 - 1] in set(sites[: len(rows) // 2])
    with pytest.raises(SpecError, match="leaks"):
        fit_predict_in_folds(TrainingMean, training_frame, "gpp_obs", leaky)
    folds = site_folds(sites, n_folds=3)
    twice = [folds[0], (folds[1][0], np.concatenate([folds[1][1], folds[0][1]]))]
    with pytest.raises(SpecError):
        fit_predict_in_folds(TrainingMean, training_frame.drop(columns="site"), "gpp_obs", twice)
