"""`unique-xr cnn train / predict / evaluate` on real MetaFlux forest site-years (the command-line contract)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from unique_xr.cli import app

runner = CliRunner()

#: Training sites (ENF, DBF, EBF, MF) and sites the model never sees.
TRAIN_SITES = ["BE-Bra", "CA-Qfo", "DE-Tha", "FI-Hyy", "IT-Ren", "US-Ha1", "US-MMS", "US-UMB", "AU-Tum", "GF-Guy",
               "CH-Lae", "BE-Vie", "US-Syv", "DE-Hai", "FR-Fon", "CA-Oas", "US-Me2", "NL-Loo", "IT-Col", "US-WCr"]
UNSEEN_SITES = ["IT-Lav", "DK-Sor", "CA-Man", "BR-Sa1"]


@pytest.fixture(scope="module")
def raw(metaflux_path):
    """The MetaFlux table as laid out on disk (TIMESTAMP, Site, PFT, FLUXNET names)."""
    return pd.read_csv(metaflux_path)


@pytest.fixture(scope="module")
def tables(raw, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cnn_tables")
    train = raw[raw["Site"].isin(TRAIN_SITES)]
    unseen = raw[raw["Site"].isin(UNSEEN_SITES) | (raw["PFT"] == "GRA") & raw["Site"].isin(["US-Var"])].copy()
    assert train["Site"].nunique() >= 12 and unseen["Site"].nunique() == 5
    # gaps: 30 % of the unseen input cells NaN at random, and one site-year with no input at all
    rng = np.random.default_rng(0)
    inputs = ["LAI", "EVI", "LE_CORR", "TA_ERA", "TA_ERA_DAY", "P_ERA"]
    for col in inputs:
        unseen.loc[rng.random(len(unseen)) < 0.3, col] = np.nan
    blank = (unseen["Site"] == "IT-Lav") & (unseen["TIMESTAMP"] // 100 == 2010)
    unseen.loc[blank, inputs] = np.nan
    train.to_csv(folder / "train.csv.gz", index=False)
    unseen.to_csv(folder / "unseen.csv", index=False)
    return folder / "train.csv.gz", folder / "unseen.csv", unseen


@pytest.fixture(scope="module")
def trained(tables, tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn_model") / "m"
    res = runner.invoke(app, ["cnn", "train", "--table", str(tables[0]), "--out", str(out), "--epochs", "3",
                              "--members", "1", "--threads", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_train_writes_a_model_folder_with_its_card(trained):
    out, output = trained
    card = json.loads((out / "card.json").read_text())
    assert card["kind"] == "annual_cnn" and card["units"] == "g m-2 yr-1"
    assert set(card["training"]["sites"]) <= set(TRAIN_SITES) and "IT-Lav" not in card["training"]["sites"]
    assert {i["name"]: i["paper"] for i in card["inputs"]}["lai"] == "NDVI"  # stand-ins are stated
    assert "uptake" in card["sign_convention"] and card["config"]["epochs"] == 3
    assert "forest site-years" in output and "left out" in output


def test_predict_every_forest_site_year_of_an_unseen_gappy_table(trained, tables, tmp_path):
    _, unseen_path, unseen = tables
    out = tmp_path / "p.csv"
    res = runner.invoke(app, ["cnn", "predict", "--model", str(trained[0]), "--table", str(unseen_path),
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(out)
    assert list(pred.columns) == ["site", "year", "gpp", "nee"]
    forest = unseen[unseen["PFT"].isin(["ENF", "EBF", "DNF", "DBF", "MF"])]
    expected = set(zip(forest["Site"], forest["TIMESTAMP"] // 100))
    assert set(zip(pred["site"], pred["year"])) == expected and len(pred) == len(expected)
    assert "US-Var" not in set(pred["site"])  # a grassland: not a forest site-year
    assert np.isfinite(pred[["gpp", "nee"]].to_numpy()).all()
    assert ((pred["site"] == "IT-Lav") & (pred["year"] == 2010)).sum() == 1  # no input at all: still a row


def test_evaluate_a_trained_model_on_a_table(trained, tables, tmp_path):
    res = runner.invoke(app, ["cnn", "evaluate", "--model", str(trained[0]), "--table", str(tables[0]),
                              "--out", str(tmp_path / "ev"), "--missing", "0", "0.5"])
    assert res.exit_code == 0, res.output
    skill = pd.read_csv(tmp_path / "ev" / "skill.csv")
    assert sorted(skill["missing"].unique()) == [0.0, 0.5] and set(skill["target"]) == {"gpp", "nee"}
    assert (skill["n"] > 50).all() and np.isfinite(skill["rmse"]).all()


def test_clear_errors(trained, tables, tmp_path):
    bad = tmp_path / "no_forest.csv"
    pd.read_csv(tables[1]).assign(PFT="GRA").to_csv(bad, index=False)
    res = runner.invoke(app, ["cnn", "predict", "--model", str(trained[0]), "--table", str(bad),
                              "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 1 and "no forest site-months" in res.output and not (tmp_path / "p.csv").exists()
    res = runner.invoke(app, ["cnn", "predict", "--model", str(tmp_path / "nowhere"), "--table", str(tables[1]),
                              "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 1 and "not an annual CNN model folder" in res.output
    res = runner.invoke(app, ["cnn", "train", "--table", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "m")])
    assert res.exit_code == 1 and "missing.csv" in res.output
