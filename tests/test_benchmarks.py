"""Smoke runs of the benchmarks so they do not rot (timings are not checked here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

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


@pytest.mark.slow  # the job runs 4 times (fit, 2 sizes, 2 workers): 37-42 s on 2 cores shared with other jobs (load ~3)
def test_bench_cube_smoke(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("distributed")
    pytest.importorskip("icechunk")
    out = tmp_path / "cube.json"
    record = _module("bench_cube").main([
        "--sizes", "64", "128", "--unit-size", "64", "--chunk", "64", "--days", "2", "--fit-steps", "2",
        "--workers", "1", "--scaling-size", "64", "--smoke", "--work", str(tmp_path / "work"),
        "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["runs"] == record["runs"] and out.with_suffix(".md").read_text().startswith("# bench_cube")
    # every size ran to the end: all units committed, a positive rate, peaks measured for the client and the worker
    for run, side in zip(saved["runs"], (64, 128)):
        assert run["region_px"] == [side, side] and run["units_run"] == run["units"] == (side // 64) ** 2
        assert run["pixel_days"] == side * side * 2 and run["pixel_days_per_second"] > 0
        assert run["memory"]["client_peak_gb"] > 0 and all(g > 0 for g in run["memory"]["worker_peak_gb"])
    assert saved["memory_flat"]["client_ratio"] > 0 and saved["memory_flat"]["worker_ratio"] > 0
    # tasks per unit: counted for every unit of every size, the same for units of the same kind
    assert [len(t["units"]) for t in saved["tasks_per_unit"].values()] == [1, 4]
    assert all(u["tasks"] > 0 for t in saved["tasks_per_unit"].values() for u in t["units"])
    assert saved["tasks_constant"]
    assert saved["workers_1_vs_2"]["one_worker"]["workers"] == 1 and saved["workers_1_vs_2"]["two_workers"]["workers"] == 2
    stages = saved["stages"]
    assert set(stages["seconds"]) == {"data_layer_static", "data_layer_daily", "gpp_m", "downscaling", "write_and_commit"}
    assert abs(sum(stages["share"].values()) - 1) < 0.01 and stages["downscaling_kernel_calls"]["staged"] == 2
    national = saved["national"]
    assert national["measured_end_to_end"]["core_hours_per_national_year"] > 0
    assert "no GPU" in " ".join(national["assumptions"])
