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
