"""LightGBM GPP models: site-grouped training, model card round trip, prediction errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from unique_xr.errors import MissingVariableError, SpecError, UnitsError
from unique_xr.models.card import CARD_FILE
from unique_xr.models.lgbm import TrainConfig, load_model, train

pytest.importorskip("lightgbm")


def test_no_site_is_ever_in_its_own_training_fold(small_result, daily_table):
    oof, folds = small_result.oof, small_result.folds
    assert len(folds) == 4
    sites = oof["site"].to_numpy()
    for k, (tr, te) in enumerate(folds):
        assert not set(sites[tr]) & set(sites[te])
        assert (oof["fold"].to_numpy()[te] == k).all()
    # every training row is predicted exactly once, out of fold
    assert sorted(np.concatenate([te for _, te in folds])) == list(range(len(oof)))
    assert oof.groupby("site")["fold"].nunique().eq(1).all()


def test_out_of_fold_predictions_have_skill_and_beat_a_vi_regression(small_result):
    s = small_result.scores
    daily = s[(s["scale"] == "D") & (s["group_by"] == "overall")].set_index("model")
    assert {"lightgbm", "linear_vi", "lue_mod17", "pmodel"} <= set(daily.index)
    assert daily["n"].nunique() == 1  # same rows for every model
    assert daily.loc["lightgbm", "r"] > 0.6
    assert daily.loc["lightgbm", "rmse"] < daily.loc["linear_vi", "rmse"]
    assert set(s["scale"]) == {"D", "8D", "MS", "YS"}
    assert len(set(s.loc[s["group_by"] == "igbp", "group"])) >= 3


def test_model_card_round_trip_gives_identical_predictions(small_result, daily_table, tmp_path):
    small_result.save(tmp_path / "m")
    card = json.loads((tmp_path / "m" / CARD_FILE).read_text())
    assert card["kind"] == "gpp_m" and card["target"] == "gpp_obs" and card["target_units"] == "g m-2 d-1"
    assert {f["name"] for f in card["features"]} >= {"ndvi", "nirv_x_rad_toa", "air_temperature_30d"}
    assert all(f["units"] for f in card["features"])
    assert {s["site"] for s in card["training"]["sites"]} == set(daily_table["site"])
    assert card["cv"]["summary_daily"]["lightgbm"]["n"] > 1000
    assert card["versions"]["lightgbm"] != "not installed"
    tower_vpd = next(i for i in card["inputs"] if i["name"] == "vpd")
    assert tower_vpd["used_in_training"] == ["tower_vpd"]
    loaded = load_model(tmp_path / "m")
    a = small_result.model.predict(daily_table)
    b = loaded.predict(daily_table)
    np.testing.assert_array_equal(a["gpp"].to_numpy(), b["gpp"].to_numpy())
    assert (tmp_path / "m" / "cv_scores.csv").is_file()
    oof = pd.read_csv(tmp_path / "m" / "cv_predictions.csv.gz")
    assert {"site", "date", "gpp_obs", "lightgbm", "fold"} <= set(oof.columns)


def test_prediction_on_unseen_sites_is_finite_where_inputs_exist(small_result, shared_data):
    from unique_xr.towers import read_tower_table

    df = read_tower_table(shared_data / "towers/fluxnet2015_daily_gpp_x_modis_nbar_lst/daily_gpp_x_modis_x_met.csv.gz")
    unseen = df[df["site"].isin(["DE-Tha", "FI-Hyy"]) & df["date"].between("2012-01-01", "2012-12-31")]
    out = small_result.model.predict(unseen.reset_index(drop=True))
    assert list(out.columns) == ["site", "date", "gpp"] and len(out) == len(unseen)
    nir = unseen["Nadir_Reflectance_Band2"].where(unseen["Nadir_Reflectance_Band2"] < 1).notna().to_numpy()
    assert np.isfinite(out["gpp"].to_numpy()[nir]).all()
    gpp = out["gpp"].to_numpy()
    assert np.nanmax(gpp) < 30 and np.nanmean(gpp) > 0.5
    # summer uptake exceeds winter uptake at a boreal forest
    fi = out[out["site"] == "FI-Hyy"].assign(month=lambda d: pd.to_datetime(d["date"]).dt.month)
    assert fi.loc[fi["month"] == 7, "gpp"].mean() > 3 * fi.loc[fi["month"] == 1, "gpp"].mean()


def test_missing_or_misnamed_feature_is_a_clear_error(small_result, daily_table):
    renamed = daily_table.rename(columns={"Nadir_Reflectance_Band6": "nbar_b6"})
    with pytest.raises(MissingVariableError, match="Nadir_Reflectance_Band6"):
        small_result.model.predict(renamed)
    feats = small_result.model.features_from_table(daily_table).drop(columns=["lst"])
    with pytest.raises(MissingVariableError, match="lst"):
        small_result.model.predict_features(feats)


def test_target_in_wrong_units_is_refused(daily_table):
    bad = daily_table.assign(gpp_obs=daily_table["gpp_obs"] * 365)  # annual sums given as daily
    with pytest.raises(UnitsError, match="median"):
        train(bad, TrainConfig(folds=0, num_boost_round=5, early_stopping_rounds=0))
    with pytest.raises(MissingVariableError, match="gpp_obs"):
        train(daily_table.drop(columns=["gpp_obs"]), TrainConfig(folds=0))


def test_config_validation():
    with pytest.raises(SpecError):
        TrainConfig(kind="gpp_x")
    with pytest.raises(SpecError):
        TrainConfig(folds=1)
    with pytest.raises(SpecError):
        TrainConfig(fold_scheme="random")


def test_corrupt_model_directory(tmp_path, small_result):
    with pytest.raises(FileNotFoundError, match="model_card.json"):
        load_model(tmp_path)
    small_result.save(tmp_path / "m")
    (tmp_path / "m" / "model.txt").unlink()
    with pytest.raises(FileNotFoundError, match="model.txt"):
        load_model(tmp_path / "m")


def test_spatial_block_folds_and_gpp_l(daily_table, shared_data):
    from unique_xr.towers import landsat_training_table

    d = shared_data / "towers/fluxnet2015_daily_gpp_x_modis_nbar_lst"
    table = landsat_training_table(d / "landsat7_c2l2_at_towers.csv.gz", d / "daily_gpp_x_modis_x_met.csv.gz")
    result = train(table, TrainConfig(kind="gpp_l", folds=3, fold_scheme="block", block_deg=10.0,
                                      num_boost_round=60, early_stopping_rounds=0, n_jobs=1))
    assert result.folds.scheme.startswith("spatial")
    s = result.scores
    assert set(s["scale"]) == {"D"}
    r = s[(s["model"] == "lightgbm") & (s["group_by"] == "overall")]["r"].item()
    assert r > 0.5
