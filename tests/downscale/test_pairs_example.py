"""Smoke runs of examples/downscale_pairs.py: the baselines on the full images, the diffusion rows on a corner."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from unique_xr.downscale.baselines import bicubic
from unique_xr.downscale.metrics import rmse

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "downscale_pairs.py"


@pytest.fixture(scope="module")
def dp():
    spec = importlib.util.spec_from_file_location("downscale_pairs", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _outputs(tmp_path):
    return ["--out-json", str(tmp_path / "scores.json"), "--figures", str(tmp_path / "figures"),
            "--models", str(tmp_path / "models")]


def test_baselines_on_every_set(dp, shared_data, tmp_path):
    record = dp.main(["--no-diffusion", "--data", str(shared_data / "pairs"), *_outputs(tmp_path)])
    assert json.loads((tmp_path / "scores.json").read_text())["table"] == record["table"]
    assert sorted(record["sets"]) == sorted(dp.SETS)
    for name in dp.SETS:
        assert (tmp_path / "figures" / f"downscale_{name}.png").stat().st_size > 10_000
    ndvi = record["sets"]["ndvi"]["scores"]["239"]
    methods = ndvi["methods"]
    # every method is scored on the same pixels: the 134120 CFmask-clear ones of DOY 239
    assert ndvi["n"] == 134_120 and {s["n"] for s in methods.values()} == {134_120}
    # the premise, measured: regressions fitted across dates do worse than bicubic here
    assert methods["bicubic"]["rmse"] == pytest.approx(0.0629, abs=5e-4)
    assert methods["linear"]["rmse"] > methods["bicubic"]["rmse"]
    assert methods["per-class"]["rmse"] > methods["bicubic"]["rmse"]
    # the bicubic row is bicubic(MODIS) scored against Landsat, recomputed here independently
    truth = dp.read_ndvi_landsat(239, shared_data / "pairs").values
    up = bicubic(dp.read_ndvi_modis(239, shared_data / "pairs").values, 8)
    assert methods["bicubic"]["rmse"] == pytest.approx(rmse(up, truth), rel=1e-12)
    assert "| ndvi | 239 | per-class | 134120 |" in record["table"]
    # bicubic + the training dates' texture, recomputed here from the library function
    from unique_xr.downscale.texture import texture_prior

    train = [dp.read_ndvi_landsat(d, shared_data / "pairs") for d in (104, 191, 200, 216)]
    with_texture = up + np.nan_to_num(texture_prior(train, 8).values)
    assert methods["bicubic + texture"]["rmse"] == pytest.approx(rmse(with_texture, truth), rel=1e-6)
    assert methods["bicubic + texture"]["rmse"] < 0.9 * methods["bicubic"]["rmse"]
    # how much of the error is in the coarse image: the perfect-coarse bound, the date's own offset
    diag = record["sets"]["ndvi"]["coarse_input"]["239"]
    assert diag["perfect_coarse"]["rmse"] < diag["bicubic_rmse"] and -0.35 < diag["perfect_coarse"]["vs_bicubic"] < -0.2
    assert 0.4 < diag["coarse_vs_block_mean"]["r"] < 0.8 and diag["own_bias_removed"]["vs_bicubic"] < 0
    assert set(record["sets"]["yanco"]["coarse_input"]) == {"20160308"} and not record["sets"]["cia"]["coarse_input"]
    assert "| ndvi | 239 |" in record["coarse_input_table"]


def test_texture_variant_uses_the_training_dates_only(dp, shared_data):
    pairs = dp.load_pairs("ndvi", shared_data / "pairs")
    fit_aux, predict_aux = dp.variant_aux(pairs, "s2t", pairs.train)
    assert [a.name for a in fit_aux] == ["landcover", "texture"] == [a.name for a in predict_aux]
    assert fit_aux[1].dims == ("pair", "y", "x") and fit_aux[1].sizes["pair"] == 4 and predict_aux[1].dims == ("y", "x")
    # the held-out dates' fine images do not enter the layer
    blanked = dataclasses.replace(pairs, fine={d: (a * np.nan if d in pairs.test else a) for d, a in pairs.fine.items()})
    np.testing.assert_array_equal(dp.variant_aux(blanked, "s2t", pairs.train)[1][1].values, predict_aux[1].values)
    assert dp.variant_aux(pairs, "s1", pairs.train) == (None, None)


@pytest.mark.slow  # ~20 s alone on 2 cores (most of it importing torch and 3 x 30 training steps); 52 s under load
def test_quick_run_with_the_diffusion_model(dp, shared_data, tmp_path):
    pytest.importorskip("torch")
    record = dp.main(["--quick", "--sets", "ndvi", "--schemes", "s1", "s2", "s2t", "--data", str(shared_data / "pairs"),
                      *_outputs(tmp_path)])
    result = record["sets"]["ndvi"]
    assert result["test"] == ["239"] and result["shape"] == [64, 64]
    methods = result["scores"]["239"]["methods"]
    assert {"bicubic", "linear", "per-class", "bicubic + texture", "diffusion S1", "diffusion S2",
            "diffusion S2 + texture"} <= set(methods)
    for label in ("diffusion S1", "diffusion S2", "diffusion S2 + texture"):
        scores = methods[label]
        assert np.isfinite(scores["rmse"]) and 0 < scores["coverage90"] <= 1 and scores["mean_spread"] > 0
        assert result["timings"][label]["fit_s"] > 0
    assert (tmp_path / "models" / "ndvi_s2").is_dir()
    assert (tmp_path / "figures" / "downscale_ndvi.png").exists()


def test_quick_run_with_a_calibrated_interval(dp, shared_data, tmp_path):
    """--calibrate: a model fitted without the last training date sets the scale; means are unchanged."""
    pytest.importorskip("torch")
    record = dp.main(["--quick", "--sets", "ndvi", "--schemes", "s1", "--calibrate", "--data", str(shared_data / "pairs"),
                      *_outputs(tmp_path)])
    result = record["sets"]["ndvi"]
    info = result["calibrations"]["diffusion S1"]
    assert info["calibration_date"] == "216" and info["fitted_on"] == ["104", "191", "200"]
    assert info["scale"] > 0 and info["pixels"] > 0
    plain, calibrated = (result["scores"]["239"]["methods"][k] for k in ("diffusion S1", "diffusion S1, calibrated interval"))
    assert calibrated["rmse"] == plain["rmse"] and calibrated["mean_spread"] == plain["mean_spread"]
    assert 0 < calibrated["coverage90"] <= 1
    assert (tmp_path / "models" / "ndvi_s1_calib" / "weights.pt").exists()
