"""Runs of examples/downscale_pairs.py: leave-one-date-out baselines on full images, diffusion on a corner."""

from __future__ import annotations

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


def _day(iso: str) -> int:
    return int(np.datetime64(iso, "D").astype(np.int64))


def test_leave_one_date_out_baselines(dp, shared_data, tmp_path):
    pairs_dir = shared_data / "pairs"
    record = dp.main(["--no-diffusion", "--sets", "ndvi", "--test", "104", "239", "--data", str(pairs_dir),
                      *_outputs(tmp_path)])
    written = json.loads((tmp_path / "scores.json").read_text())
    assert written["table"] == record["table"] and written["season_table"] == record["season_table"]
    assert list(record["sets"]) == ["ndvi"] and record["sets"]["ndvi"]["complete"]
    ndvi = record["sets"]["ndvi"]["scores"]
    assert list(ndvi) == ["104", "239"]
    fold = ndvi["239"]
    methods = fold["methods"]
    # fitted on every other date, earlier and later; the prior only from the earlier ones
    assert fold["held_in"] == ["104", "191", "200", "216", "344", "360"]
    assert fold["prior"]["dates"] == ["104", "191", "200", "216"] and fold["prior"]["share"] == 1.0
    assert (fold["date"], fold["season"], fold["months"]) == ("2015-08-27", "summer", "JJA")
    # every method is scored on the same pixels: the 134120 CFmask-clear ones of DOY 239
    assert list(methods) == ["bicubic", "linear", "per-class", "bicubic + texture", "naive fusion", "STARFM"]
    assert fold["n"] == 134_120 and {s["n"] for s in methods.values()} == {134_120}
    truth = dp.read_ndvi_landsat(239, pairs_dir).values
    up = bicubic(dp.read_ndvi_modis(239, pairs_dir).values, 8)
    assert methods["bicubic"]["rmse"] == pytest.approx(0.0629, abs=5e-4)
    assert methods["bicubic"]["rmse"] == pytest.approx(rmse(up, truth), rel=1e-12)
    # naive fusion and STARFM, recomputed here from the library functions: the per-pixel latest clear
    # value of DOY 104-216 with the bicubic MODIS of its own date
    from unique_xr.downscale.fusion import naive_fusion, starfm
    from unique_xr.downscale.prior import composite
    from unique_xr.downscale.texture import texture_prior

    earlier = (104, 191, 200, 216)
    prior, index = composite([dp.read_ndvi_landsat(d, pairs_dir).values for d in earlier],
                             [_day(dp.doy_date(2015, d)) for d in earlier], _day("2015-08-27"))
    prior_coarse = np.full(prior.shape, np.nan)
    for i, d in enumerate(earlier):
        prior_coarse[index == i] = bicubic(dp.read_ndvi_modis(d, pairs_dir).values, 8)[index == i]
    assert (index == 3).mean() > 0.9  # DOY 216 is clear almost everywhere: most of the prior is 23 days old
    assert methods["naive fusion"]["rmse"] == pytest.approx(rmse(naive_fusion(up, prior, prior_coarse), truth), rel=1e-6)
    assert methods["STARFM"]["rmse"] == pytest.approx(rmse(starfm(up, prior, prior_coarse), truth), rel=1e-6)
    assert methods["STARFM"]["rmse"] < methods["bicubic"]["rmse"]
    # the texture layer comes from the six held-in dates, later ones included, never from DOY 239
    held_in = [dp.read_ndvi_landsat(d, pairs_dir) for d in (104, 191, 200, 216, 344, 360)]
    with_texture = up + np.nan_to_num(texture_prior(held_in, 8).values)
    assert methods["bicubic + texture"]["rmse"] == pytest.approx(rmse(with_texture, truth), rel=1e-6)
    # DOY 104 has no earlier date: no prior, so both fusion rows are bicubic, and the tables say so
    first = ndvi["104"]
    assert first["prior"] is None and (first["season"], first["months"]) == ("spring", "MAM")
    for name in ("naive fusion", "STARFM"):
        assert first["methods"][name]["rmse"] == first["methods"]["bicubic"]["rmse"]
    assert "| ndvi | 104 (2015-04-14) † | spring (MAM) | none † | STARFM |" in record["table"]
    assert "| ndvi | 239 (2015-08-27) | summer (JJA) | 104, 191, 200, 216: 100% px, 24 d | per-class | 134120 |" \
        in record["table"]
    assert list(record["season_summary"]) == ["spring", "summer"]
    assert "| spring | naive fusion | ndvi 104 † | +0.0% |" in record["season_table"]
    # how much of the error is in the coarse image (texture from the held-in dates)
    diag = record["sets"]["ndvi"]["coarse_input"]["239"]
    assert diag["perfect_coarse"]["rmse"] < diag["bicubic_rmse"] and -0.35 < diag["perfect_coarse"]["vs_bicubic"] < -0.2
    assert (tmp_path / "figures" / "downscale_ndvi.png").stat().st_size > 10_000


def test_lgc_fold_and_the_season_table(dp, shared_data, tmp_path):
    record = dp.main(["--no-diffusion", "--sets", "boreas", "lgc", "--test", "0524", "20041228",
                      "--data", str(shared_data / "pairs"), *_outputs(tmp_path)])
    # LGC: southern hemisphere, December is summer; 16 x 16 synthetic coarse blocks; prior from 2004-11-26
    lgc = record["sets"]["lgc"]
    flood = lgc["scores"]["20041228"]
    assert lgc["factor"] == 16 and "SYNTHETIC" in lgc["notes"]["coarse"]
    assert (flood["season"], flood["months"]) == ("summer", "DJF") and flood["prior"]["dates"] == ["20041126"]
    assert flood["n"] == 480 * 480 and {s["n"] for s in flood["methods"].values()} == {480 * 480}
    assert {"per-class", "bicubic + texture", "naive fusion", "STARFM"} <= set(flood["methods"])
    # BOREAS 05-24: northern spring, the set's first date, so no prior
    spring = record["sets"]["boreas"]["scores"]["0524"]
    assert (spring["season"], spring["prior"]) == ("spring", None)
    summary = record["season_summary"]
    assert list(summary) == ["spring", "summer"]
    assert summary["spring"]["naive fusion"] == {"dates": ["boreas 0524 †"], "mean_rmse_vs_bicubic": 0.0,
                                                  "min": 0.0, "max": 0.0}
    assert summary["summer"]["STARFM"]["mean_rmse_vs_bicubic"] == flood["methods"]["STARFM"]["rmse_vs_bicubic"]
    assert "| summer | STARFM | lgc 20041228 |" in record["season_table"]
    assert (tmp_path / "figures" / "downscale_lgc.png").stat().st_size > 10_000


def test_merge_keeps_the_other_sets(dp, shared_data, tmp_path):
    args = ["--no-diffusion", "--data", str(shared_data / "pairs"), *_outputs(tmp_path)]
    dp.main(["--sets", "cia", "--test", "306", *args])
    record = dp.main(["--sets", "boreas", "--test", "0524", "--merge", *args])
    assert list(record["sets"]) == ["cia", "boreas"]
    assert json.loads((tmp_path / "scores.json").read_text())["sets"]["cia"]["scores"]["306"]["season"] == "spring"
    assert record["sets"]["boreas"]["scores"]["0524"]["prior"] is None  # the first date of the set


def test_fold_selection_tokens(dp):
    assert dp._names_fold(["ndvi:239", "306"], "ndvi", "239") and dp._names_fold(["306"], "cia", "306")
    assert not dp._names_fold(["ndvi:239"], "cia", "239") and not dp._names_fold(None, "ndvi", "239")
    assert dp._names_fold(["344"], "ndvi", "344", plain_set="ndvi")
    assert not dp._names_fold(["306"], "cia", "306", plain_set="ndvi")


def test_quick_s3_run_with_distillation(dp, shared_data, tmp_path):
    """S3 on a corner with and without a prior, then the distilled samplers against 20-step DDIM."""
    pytest.importorskip("torch")
    argv = ["--quick", "--sets", "ndvi", "--schemes", "s3", "--test", "104", "239", "--train-steps", "3",
            "--members", "2", "--steps", "2", "--distill-dates", "239", "--distill-round-steps", "1", "--threads", "1",
            "--data", str(shared_data / "pairs"), *_outputs(tmp_path)]
    record = dp.main(argv)
    result = record["sets"]["ndvi"]
    assert result["test"] == ["104", "239"] and result["shape"] == [64, 64]
    for d in ("104", "239"):
        fold = result["scores"][d]
        s3 = fold["methods"]["diffusion S3"]
        assert np.isfinite(s3["rmse"]) and s3["crps"] > 0 and 0 <= s3["coverage90"] <= 1 and s3["mean_spread"] > 0
        assert {s["n"] for s in fold["methods"].values()} == {fold["n"]}
        assert result["timings"][d]["diffusion S3"]["fit_s"] > 0
        assert result["timings"][d]["diffusion S3"]["model_reused"] is False
    assert result["scores"]["104"]["prior"] is None  # S3 predicted without a prior there
    check = record["distillation"]["ndvi"]["239"]
    assert check["round_steps"] == 1 and list(check["rows"]) == [label for label, _, _ in dp.DISTILL_ROWS]
    assert [r["sampler"] for r in check["rows"].values()] == ["distilled", "distilled", "distilled", "ddim"]
    assert all(np.isfinite(r["rmse"]) and r["crps"] > 0 for r in check["rows"].values())
    assert "| ndvi | 239 | distilled, 4 evaluations | 4 |" in record["distillation_table"]
    assert (tmp_path / "models" / "quick" / "ndvi_s3_239" / "weights.pt").exists()
    assert (tmp_path / "models" / "quick" / "ndvi_s3_239_distilled_r1" / "weights.pt").exists()
    # a stopped run continues: with --reuse-models the models and predictions are read back, not redone
    again = dp.main([*argv, "--reuse-models"])
    assert again["table"] == record["table"] and again["distillation_table"] == record["distillation_table"]
    reused, made = again["sets"]["ndvi"]["timings"]["239"]["diffusion S3"], result["timings"]["239"]["diffusion S3"]
    assert reused["model_reused"] is True and reused["model_token"] == made["model_token"]
