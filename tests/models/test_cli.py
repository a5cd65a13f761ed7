"""`unique-xr train` / `predict` / `join-landsat` on real tower tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from unique_xr.cli import app

runner = CliRunner()


def test_train_then_predict_on_unseen_sites(daily_table, shared_data, tmp_path):
    train_sites = daily_table[daily_table["site"] != "FR-Pue"]
    unseen = daily_table[daily_table["site"] == "FR-Pue"]
    table, other = tmp_path / "train.csv", tmp_path / "unseen.csv.gz"
    train_sites.to_csv(table, index=False)
    unseen.to_csv(other, index=False)
    res = runner.invoke(app, ["train", "--table", str(table), "--target", "gpp_obs", "--out", str(tmp_path / "m"),
                              "--folds", "3", "--max-trees", "60", "--early-stopping", "10"])
    assert res.exit_code == 0, res.output
    assert "lightgbm" in res.output and "lue_mod17" in res.output
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["cv"]["n_folds"] == 3 and "FR-Pue" not in {s["site"] for s in card["training"]["sites"]}
    res = runner.invoke(app, ["predict", "--model", str(tmp_path / "m"), "--table", str(other),
                              "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(tmp_path / "p.csv")
    assert list(pred.columns) == ["site", "date", "gpp"] and len(pred) == len(unseen)
    assert (pred["site"] == "FR-Pue").all()
    assert np.isfinite(pred["gpp"]).mean() > 0.95


def test_predict_reports_missing_columns(small_result, daily_table, tmp_path):
    small_result.save(tmp_path / "m")
    daily_table.drop(columns=["tower_temp", "t2m_era5"]).to_csv(tmp_path / "t.csv", index=False)
    res = runner.invoke(app, ["predict", "--model", str(tmp_path / "m"), "--table", str(tmp_path / "t.csv"),
                              "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 1
    assert "air_temperature" in res.output and "t2m_era5" in res.output
    assert not (tmp_path / "p.csv").exists()


def test_join_landsat(shared_data, tmp_path):
    d = shared_data / "towers/fluxnet2015_daily_gpp_x_modis_nbar_lst"
    res = runner.invoke(app, ["join-landsat", "--landsat", str(d / "landsat7_c2l2_at_towers.csv.gz"),
                              "--daily", str(d / "daily_gpp_x_modis_x_met.csv.gz"), "--out", str(tmp_path / "l.csv.gz")])
    assert res.exit_code == 0, res.output
    joined = pd.read_csv(tmp_path / "l.csv.gz")
    assert {"gpp_obs", "QA_PIXEL", "SR_B4", "tower_temp"} <= set(joined.columns)
    assert joined["site"].nunique() >= 15
