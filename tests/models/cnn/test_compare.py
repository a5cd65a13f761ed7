"""The CNN against the classic models: folds, shared hidden cells, skill table, files (real MetaFlux site-years)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("lightgbm")

from unique_xr.errors import FoldLeakageError, SpecError
from unique_xr.models.cnn.compare import (
    CLASSIC_MODELS,
    MODELS,
    compare_models,
    evaluation_mask,
    flat_features,
    missingness_figure,
)

SHARES = (0.0, 0.5)
N_FOLDS = 3
SEED = 7


@pytest.fixture(scope="module")
def subset(training_set):
    """The first 90 usable site-years (about 15 sites): enough for 3 site-grouped folds."""
    maps, y = training_set
    index = np.arange(90)
    return maps.subset(index), y[index]


@pytest.fixture(scope="module")
def comparison(subset, tiny_config):
    maps, y = subset
    return compare_models(maps, y, n_folds=N_FOLDS, missing=SHARES, config=tiny_config, seed=SEED, threads=1,
                          keep_models=True)


def _fold_maps(comparison, maps, k):
    sites = maps.keys["site"].to_numpy()
    test = np.flatnonzero(np.isin(sites, comparison.folds["test_sites"][k]))
    return maps.subset(test)


def test_folds_are_site_disjoint_and_cover_every_site(comparison, subset):
    maps, _ = subset
    groups = [set(g) for g in comparison.folds["test_sites"]]
    assert len(groups) == N_FOLDS
    assert sum(len(g) for g in groups) == len(set().union(*groups)) == maps.keys["site"].nunique()
    # every prediction of fold k is of a site that fold tests, so never of a training site
    for k, frame in comparison.predictions.groupby("fold"):
        assert set(frame["site"]) <= groups[k]
    per_row = comparison.predictions.query("model == 'cnn' and missing == 0 and target == 'gpp'")
    assert len(per_row) == len(maps)  # each site-year tested exactly once


def test_leaking_folds_are_refused(subset, tiny_config):
    maps, y = subset
    rows = np.arange(len(maps))
    with pytest.raises(FoldLeakageError, match="leaks"):
        compare_models(maps, y, folds=[(rows[:50], rows[40:])], models=("svr",), missing=(0.0,))


def test_every_model_sees_the_same_hidden_cells(comparison, subset):
    maps, _ = subset
    pred = comparison.predictions
    for k, fitted in comparison.models.items():
        test_maps = _fold_maps(comparison, maps, k)
        observed = test_maps.observed
        for share in SHARES:
            mask = evaluation_mask(observed, share, seed=SEED, fold=k)
            hidden = (observed & ~mask).sum(axis=(1, 2))
            assert hidden.sum() == round(share * observed.sum())
            at = pred[(pred["fold"] == k) & (pred["missing"] == share)]
            for name in MODELS:
                rows = at[at["model"] == name]
                np.testing.assert_array_equal(rows.loc[rows["target"] == "gpp", "hidden"], hidden)
                # the recorded predictions are what the fitted model gives on exactly this mask
                expected = fitted[name].predict(test_maps, mask)
                for j, target in enumerate(("gpp", "nee")):
                    np.testing.assert_allclose(rows.loc[rows["target"] == target, "pred"], expected[:, j],
                                               rtol=1e-9, atol=1e-6)


def test_share_zero_keeps_the_features_unmodified(comparison, subset):
    maps, _ = subset
    test_maps = _fold_maps(comparison, maps, 0)
    mask = evaluation_mask(test_maps.observed, 0.0, seed=SEED, fold=0)
    np.testing.assert_array_equal(flat_features(test_maps, mask), test_maps.flat()[0])
    at_half = flat_features(test_maps, evaluation_mask(test_maps.observed, 0.5, seed=SEED, fold=0))
    n_cells = test_maps.values[0].size
    extra_nan = np.isnan(at_half[:, :n_cells]).sum() - np.isnan(test_maps.values).sum()
    assert extra_nan == round(0.5 * test_maps.observed.sum())
    np.testing.assert_array_equal(at_half[:, n_cells:], test_maps.forest)  # forest type is never hidden
    assert (comparison.predictions.query("missing == 0")["hidden"] == 0).all()


def test_evaluation_masks_differ_between_folds_and_shares():
    observed = np.ones((5, 12, 6), bool)
    a = evaluation_mask(observed, 0.3, seed=0, fold=0)
    assert (a == evaluation_mask(observed, 0.3, seed=0, fold=0)).all()
    assert (a != evaluation_mask(observed, 0.3, seed=0, fold=1)).any()
    assert (a != evaluation_mask(observed, 0.3, seed=1, fold=0)).any()


def test_skill_table_shape_and_columns(comparison, subset):
    maps, y = subset
    skill = comparison.skill
    assert list(skill.columns) == ["model", "missing", "target", "n", "r", "rmse", "bias", "rmse_rel"]
    assert len(skill) == len(MODELS) * len(SHARES) * 2
    assert list(skill["model"].iloc[:4]) == list(MODELS)
    assert (skill["n"] == len(maps)).all()
    np.testing.assert_allclose(skill.query("missing == 0")["rmse_rel"], 1.0)
    # bias and RMSE agree with the predictions they summarise
    cnn = comparison.predictions.query("model == 'cnn' and missing == 0.5 and target == 'nee'")
    row = skill.query("model == 'cnn' and missing == 0.5 and target == 'nee'").iloc[0]
    assert row["bias"] == pytest.approx(np.mean(cnn["pred"] - cnn["obs"]))
    np.testing.assert_allclose(np.sort(cnn["obs"]), np.sort(y[:, 1]))


def test_predictions_are_finite_at_half_missing_for_every_model(comparison):
    half = comparison.predictions.query("missing == 0.5")
    assert set(half["model"]) == set(MODELS)
    assert np.isfinite(half["pred"]).all()
    assert (half["hidden"] > 0).mean() > 0.9


def test_meta_and_files(comparison, subset, tmp_path):
    maps, _ = subset
    meta = comparison.meta
    assert meta["natural_missing"] == pytest.approx(maps.missing_fraction, abs=1e-4)
    assert meta["missing_total"]["0.5"] > meta["missing_total"]["0.0"] == pytest.approx(maps.missing_fraction, abs=1e-4)
    assert meta["site_years"] == len(maps) and meta["sites"] == maps.keys["site"].nunique()
    assert set(meta["seconds"]) == set(MODELS) and meta["config"]["epochs"] == 3
    out = comparison.to_files(tmp_path / "eval")
    assert {p.name for p in out.iterdir()} == {"skill.csv", "predictions.csv", "summary.json"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["folds"]["scheme"] == "site-kfold" and len(summary["skill"]) == len(comparison.skill)
    figure = missingness_figure(comparison.skill, tmp_path / "fig" / "missingness.png", natural_missing=0.1)
    assert figure.stat().st_size > 10_000


def test_markdown_table(comparison):
    one = comparison.table(missing=0.5).splitlines()
    assert len(one) == 2 + len(MODELS)
    assert one[0].startswith("| hidden | model | GPP r | GPP RMSE")
    assert all(line.startswith("| 50 % |") for line in one[2:])
    assert sum("**" in line for line in one[2:]) >= 1  # the lowest RMSE is marked
    assert len(comparison.table().splitlines()) == 2 + len(MODELS) * len(SHARES)
    with pytest.raises(SpecError, match="0.3"):
        comparison.table(missing=0.3)


@pytest.mark.parametrize("kwargs, match", [({"models": ("cnn", "knn")}, "knn"), ({"missing": (0.0, 1.0)}, "within"),
                                           ({"missing": ()}, "within")])
def test_bad_arguments(subset, kwargs, match):
    maps, y = subset
    with pytest.raises(SpecError, match=match):
        compare_models(maps, y, **kwargs)


def test_targets_must_be_two_columns(subset):
    maps, y = subset
    with pytest.raises(SpecError, match="targets must have shape"):
        compare_models(maps, y[:, :1], models=CLASSIC_MODELS)


@pytest.mark.slow
def test_example_script_quick_run(metaflux_path, tmp_path, capsys):
    path = Path(__file__).resolve().parents[3] / "examples" / "forest_cnn.py"
    spec = importlib.util.spec_from_file_location("forest_cnn_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--quick", "--table", str(metaflux_path), "--out", str(tmp_path), "--threads", "1"])
    printed = capsys.readouterr().out
    assert "| 50 % | CNN (gap-tolerant) |" in printed
    names = {p.name for p in tmp_path.iterdir()}
    assert {"skill.csv", "summary.json", "table.md", "attribution.json", "missingness.png",
            "attribution_gpp.png", "attribution_nee.png"} <= names
    assert len(result.folds["test_sites"]) == 3 and np.isfinite(result.predictions["pred"]).all()
