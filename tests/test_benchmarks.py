"""Smoke runs of the benchmarks so they do not rot (timings are not checked here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_load_smoke(tmp_path):
    out = tmp_path / "load.json"
    record = _module("bench_load").main(["--size", "96", "--dates", "2", "--repeat", "1", "--chunk", "64",
                                         "--out", str(out)])
    assert json.loads(out.read_text()) == record
    # the figures are made on the same pixels as the rasterio baseline
    assert all(r["same_pixels_as_baseline"] for r in record["unique_xr"].values())
    assert record["tasks_linear_in_chunks"]
    assert record["region"]["pixels"] == 2 * 96 * 96


def test_bench_estimate_smoke(tmp_path):
    out, out_big = tmp_path / "estimate.json", tmp_path / "estimate_big.json"
    record = _module("bench_estimate").main([
        "--shape-m", "40", "16", "16", "--shape-l", "3", "32", "32", "--block-m", "16", "8", "--block-l", "32", "16",
        "--repeat", "1", "--trees", "10",
        "--compiled-trees", "20", "--compiled-leaves", "7", "--compiled-rows", "2000",
        "--big-feature-gb", "0.01", "--big-days", "40", "--big-chunks", "8", "16", "16",
        "--task-shape-l", "3", "32", "32", "--task-shape-m", "40", "16", "16", "--task-sides", "1", "2",
        "--out", str(out), "--out-big", str(out_big)])
    saved = json.loads(out.read_text())
    assert saved["estimate_vs_predict"] == record["estimate_vs_predict"]
    # the figures are made on the same pixels as the numpy reference, bit for bit
    for kind in ("gpp_m", "gpp_l"):
        a = record["estimate_vs_predict"][kind]
        assert a["same_pixels_bit_identical"] and a["count_matches_finite_features"]
        assert a["cube"]["pixel_days"] == (40 * 16 * 16 if kind == "gpp_m" else 3 * 32 * 32)
    compiled = record["compiled_engine"]
    assert "skipped" in compiled or compiled["gpp_m_20_trees"]["threads_1"]["within_1e-5_relative"]
    assert all(t["fit"]["estimate_tasks"]["linear"] for t in record["tasks_per_chunk"].values())
    big = json.loads(out_big.read_text())
    assert big["big"]["pixel_days"] >= 9 * big["small"]["pixel_days"]
    assert big["big"]["zarr_gpp_first_day_finite_share"] > 0.5


def test_bench_downscale_smoke(tmp_path):
    import pytest

    pytest.importorskip("torch")
    out = tmp_path / "downscale.json"
    record = _module("bench_downscale").main(["--quick", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["sampling"] == record["sampling"]
    assert saved["device"] == "cpu" and saved["machine"]["cpus"] >= 1 and saved["machine"]["torch"]
    for key in ("model_size", "network_evaluations", "sampling", "bf16_vs_fp32_sampling", "batch_effect_tiles_per_s",
                "tiling", "training", "derived", "h100_hour_goal"):
        assert saved[key], key
    # the presets the figures are about, counted (random weights of their shapes)
    cpu, large = saved["model_size"]["cpu"], saved["model_size"]["large"]
    assert 1e6 < cpu["parameters"] < large["parameters"]
    assert 0 < cpu["gflop_per_tile_evaluation"] < large["gflop_per_tile_evaluation"]
    # every measured rate is positive, and the ratios are made from them
    assert all(r["tile_evaluations_per_s"] > 0 for r in saved["network_evaluations"].values())
    assert all(r["tiles_per_s"] > 0 and r["megapixels_per_s"] > 0 for r in saved["sampling"].values())
    assert all(v > 0 for k, v in saved["bf16_vs_fp32_sampling"].items() if k.startswith("ddim_"))
    assert set(saved["batch_effect_tiles_per_s"]["by_batch"]) == {"1", "2"}
    assert saved["training"]["steps_per_s"] > 0
    # the tiled Dask result is the eager one, every pixel covered, with more tiles computed
    tiling = saved["tiling"]
    assert tiling["dask_equals_eager_max_abs_difference"] < 1e-5 and tiling["output_finite_share"] == 1.0
    assert tiling["tiles_dask"] >= tiling["tiles_eager"] > 1
    assert tiling["eager_vs_bare_tiles"] > 0 and tiling["dask_vs_eager"] > 0
    derived = next(iter(saved["derived"]["by_sampling_config"].values()))
    assert derived["national_year_hours"] > derived["national_day_hours"] > 0
    # a year in one H100-hour: 40 G pixel-days / 3600 s over (160 - 32)^2 new pixels per tile
    assert abs(saved["h100_hour_goal"]["large"]["tiles_per_s_needed"] - 40e9 / 3600 / 128**2) < 1
