"""Benchmark: the national cube job end to end — pixel-days/s, time per stage, memory vs region size, tasks per unit.

One seeded synthetic region (:func:`unique_xr.testing.synthetic.make_region`: Landsat C2 L2, MODIS
MCD43A4, a DEM, WorldCover and ERA5-Land-style meteorology as COGs/NetCDF, with a local STAC
catalog of all items) is written once at the largest size, in UTM zone 52 (South Korea), on a grid
whose edges lie on the job's 480 m lattice. Each job is :func:`unique_xr.pipeline.job.run_cube` over
a centred square of the region, read through the catalog exactly as a STAC API would be, with the
CPU test configuration of the downscaler: the ``quick`` preset, 2 members x 2 DDIM steps (as
``sample_spec``), the shipped sample GPP_M/GPP_L models, ``unit_size`` x ``unit_size`` units,
``chunk``-pixel output chunks, one day per time chunk.

The downscaler is fitted **once** by the job on the smallest square (``downscaler="fit"``, quick
preset, ``--fit-steps`` steps); every measured run is then given that folder, so all sizes use the
same model. Figures:

a. **end to end**, per size: pixel-days per second over the wall clock of ``run_cube`` (search,
   model loading, template, every unit, the output STAC), on a fresh ``distributed.LocalCluster``
   of ``--workers`` processes x 1 thread made here and passed as ``client=`` (its start-up and the
   workers' imports of torch, LightGBM, GDAL and Icechunk are done before the clock starts); the
   workers' CPU seconds per wall second, and pixel-days per worker CPU second (what a worker does
   with a core of its own: on a shared machine the wall clock understates it); unit commit times.
b. **memory**, per size: the client's peak RSS during ``run_cube`` (kernel high-water mark
   ``VmHWM``, reset with ``/proc/self/clear_refs`` just before) and each worker's (``VmHWM`` of the
   worker process, reset once the cluster is up), plus a ``--sample-every`` seconds psutil sampler
   of the workers' RSS (they agree). Flat = the largest region's peaks within ``--flat-tolerance``
   of the smallest's.
c. **tasks per unit**: ``len(graph.__dask_graph__())`` of ``job._unit_graph`` for every unit of
   every size (what the job submits per unit); constant = one count per kind of unit (its window,
   the unit and its halo clipped at the region's edge, and where the window starts against the
   chunk lattice), whatever the region size.
d. **1 vs 2 workers**: the ``--scaling-size`` square again with 1 worker (and with 2 if the sizes
   ran with another count).
e. **share of time per stage**: one unit (an interior one of the largest square, its window the
   unit plus the downscaler's halo on every side) with the synchronous scheduler in this process,
   stage by stage, each stage's input persisted in memory first: data layer (MODIS, meteorology,
   DEM, land-cover fractions), GPP_M (LightGBM on the coarse grid), downscaling (tiles, members,
   sampler), write (dominant land cover, Icechunk chunk writes, fork merge, the checked commit;
   into a copy of the store). The same unit's whole graph computed in one go is the check; the
   calls of the downscaling kernel (``predict_block``, once per block and day) are counted in both.
f. **arithmetic, not measured**: a national year (South Korea at 30 m: about 111 M pixels a day,
   40 G pixel-days a year) from the measured rates, with the assumptions stated in the record.

Run from the repository root::

    python benchmarks/bench_cube.py          # 11 min on 2 shared cores; results/cube.json + cube.md

``--smoke`` (the test's tiny run) makes the workers threads of this process: fast, but then the
workers' memory and CPU are this process's.

Results go to ``--out`` (default ``benchmarks/results/cube.json``) and a markdown table next to it
(``.md``), with the command that made them and the machine they ran on.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import math
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"

#: One national day (South Korea, ~100,000 km2 at 30 m) and a national year, as in issues 5 and 16.
NATIONAL_DAY_PIXELS = 111e6
NATIONAL_YEAR_PIXEL_DAYS = 40e9
#: The region's centre: Gyeonggi-do, South Korea (UTM zone 52 N), inside one 1-degree DEM tile and one
#: 3-degree WorldCover tile at every size here, so every unit reads the same number of files.
LONLAT = (127.5, 37.5)
CRS = "EPSG:32652"
RESOLUTION = 30.0
COARSE_FACTOR = 16
ANCHOR = 15.0  # the job's default: Landsat C2 pixel edges
START = "2023-06-01"


# --------------------------------------------------------------------------------------------
# inputs and specs


def lattice_grid(side: int):
    """A ``side`` x ``side`` 30 m grid round :data:`LONLAT` whose edges are on the job's coarse lattice."""
    from pyproj import Transformer

    from unique_xr.grid import GridSpec

    if side % COARSE_FACTOR:
        raise ValueError(f"side={side} must be a multiple of {COARSE_FACTOR}")
    x, y = Transformer.from_crs("EPSG:4326", CRS, always_xy=True).transform(*LONLAT)
    cell = RESOLUTION * COARSE_FACTOR
    left = ANCHOR + cell * math.floor((x - side * RESOLUTION / 2) / cell)
    top = ANCHOR + cell * math.floor((y + side * RESOLUTION / 2) / cell)
    return GridSpec(crs=CRS, resolution=RESOLUTION, bounds=(left, top - side * RESOLUTION,
                                                            left + side * RESOLUTION, top))


def centred(grid, side: int):
    """The centred ``side`` x ``side`` window of ``grid`` (offset a whole number of coarse cells)."""
    ny, _ = grid.shape
    off = (ny - side) // 2 // COARSE_FACTOR * COARSE_FACTOR
    return grid.window((off, off + side), (off, off + side))


def make_inputs(folder: Path, side: int, days: int, seed: int):
    """The synthetic region: every product; Landsat on the first and last day (two dates for the fit)."""
    from unique_xr.testing.synthetic import SyntheticRegionSpec, make_region

    end = str(dt.date.fromisoformat(START) + dt.timedelta(days=days - 1))
    spec = SyntheticRegionSpec(seed=seed, grid=lattice_grid(side), start=START, end=end,
                               landsat_every_days=max(1, days - 1), cloud_fraction=0.1, scene_edge_probability=0.0)
    return make_region(folder, spec)


def job_spec(region, side: int, out: Path, downscaler: str, args):
    from unique_xr.pipeline.spec import CubeJobSpec
    from unique_xr.sample import SAMPLE_MISSING_INPUTS, sample_model

    grid = centred(region.grid, side)
    return CubeJobSpec(
        bounds=grid.bounds, crs=CRS, resolution=RESOLUTION, coarse_factor=COARSE_FACTOR, anchor=ANCHOR,
        start=str(region.spec.start), end=str(region.spec.end), source=str(region.item_collection_paths["all"]),
        meteo=str(region.met_path), gpp_m=str(sample_model("gpp_m")), gpp_l=str(sample_model("gpp_l")),
        downscaler=downscaler, allow_missing=SAMPLE_MISSING_INPUTS, members=args.members, steps=args.steps,
        seed=0, device="cpu", fit_preset="quick", fit_steps=args.fit_steps, fit_units=1, fit_dates=2,
        unit_size=args.unit_size, chunk=args.chunk, time_chunk=1, in_flight=args.in_flight, out=str(out),
        title="bench_cube: synthetic region (not a GPP product)")


# --------------------------------------------------------------------------------------------
# memory


def _status(pid: int | str) -> dict[str, int]:
    """VmRSS and VmHWM of a process (bytes)."""
    out = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) * 1024
    return out


def _reset_peak(pid: int | str) -> bool:
    """Reset a process's RSS high-water mark (Linux >= 4.0); False where the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Watch:
    """Samples the workers' RSS every ``every`` seconds in a thread; peaks from the kernel's ``VmHWM``."""

    def __init__(self, pids: list[int], every: float) -> None:
        import psutil

        self.pids, self.every = pids, every
        self.procs = [psutil.Process(p) for p in pids]
        self.samples: list[list[int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            row = []
            for p in self.procs:
                try:
                    row.append(p.memory_info().rss)
                except (OSError, psutil.Error):  # a worker that went away
                    row.append(0)
            self.samples.append(row)
            self._stop.wait(self.every)

    def __enter__(self):
        self.reset = all(_reset_peak(p) for p in [*self.pids, "self"])
        self.start_rss = {"client": _status("self").get("VmRSS", 0),
                          "workers": [_status(p).get("VmRSS", 0) for p in self.pids]}
        self.cpu0 = [sum(p.cpu_times()[:2]) for p in self.procs]
        self.cpu_client0 = time.process_time()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu = [sum(p.cpu_times()[:2]) - c for p, c in zip(self.procs, self.cpu0)]
        self.cpu_client = time.process_time() - self.cpu_client0
        self.peak = {"client": _status("self").get("VmHWM", 0), "workers": [_status(p).get("VmHWM", 0)
                                                                             for p in self.pids]}

    def record(self, seconds: float) -> dict:
        sampled = np.asarray(self.samples or [[0] * len(self.pids)], dtype=float)
        def gb(b: float) -> float:
            return round(b / 1e9, 3)

        return {
            "client_peak_gb": gb(self.peak["client"]), "client_start_gb": gb(self.start_rss["client"]),
            "worker_peak_gb": [gb(b) for b in self.peak["workers"]],
            "worker_start_gb": [gb(b) for b in self.start_rss["workers"]],
            "worker_peak_above_start_gb": [gb(p - b) for p, b in zip(self.peak["workers"], self.start_rss["workers"])],
            "worker_peak_sampled_gb": [gb(b) for b in sampled.max(axis=0)],
            "samples": len(self.samples), "sample_every_s": self.every, "peaks_reset_before_run": self.reset,
            "worker_cpu_seconds_per_wall_second": [round(c / seconds, 2) for c in self.cpu],
            "client_cpu_seconds_per_wall_second": round(self.cpu_client / seconds, 2),
        }


# --------------------------------------------------------------------------------------------
# a, b, d. runs


class _Commits(logging.Handler):
    """Times of the job's ``unit ... committed`` log lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("unit "):
            self.times.append(time.perf_counter())


#: What a worker imports to run a unit (torch, LightGBM, GDAL, Icechunk): imported before the clock starts.
WORKER_MODULES = ("torch", "lightgbm", "rasterio", "stackstac", "icechunk", "zarr", "unique_xr.downscale.api",
                  "unique_xr.models.estimate", "unique_xr.load.stack", "unique_xr.pipeline.stages")


@contextlib.contextmanager
def cluster(workers: int, processes: bool = True):
    """A LocalCluster of ``workers`` processes x 1 thread, its workers' imports done; ``(client, pids, seconds)``.

    ``processes=False`` (smoke runs) makes the workers threads of this process: no start-up, but the
    workers' memory is then this process's.
    """
    import importlib

    import distributed

    t0 = time.perf_counter()
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                                  dashboard_address=":0", silence_logs=logging.ERROR) as lc, \
            distributed.Client(lc) as client:
        pids = [w.process.pid if processes else os.getpid() for w in lc.workers.values()]
        for name in WORKER_MODULES:
            with contextlib.suppress(ImportError):
                client.run(importlib.import_module, name)
        yield client, pids, time.perf_counter() - t0


class Clusters:
    """A fresh cluster of worker processes for every run, or (``smoke``) one in-process cluster per worker count."""

    def __init__(self, smoke: bool) -> None:
        self.reuse, self.stack, self.kept = smoke, contextlib.ExitStack(), {}

    @contextlib.contextmanager
    def get(self, workers: int):
        if not self.reuse:
            with cluster(workers) as c:
                yield c
            return
        if workers not in self.kept:
            self.kept[workers] = self.stack.enter_context(cluster(workers, processes=False))
            yield self.kept[workers]
        else:
            client, pids, _ = self.kept[workers]
            yield client, pids, 0.0

    def close(self) -> None:
        self.stack.close()


def run_job(spec, workers: int, every: float, clusters: Clusters) -> dict:
    """``run_cube(spec, client=...)`` on a fresh LocalCluster, with its memory and commit times."""
    from unique_xr.pipeline.job import run_cube

    log = logging.getLogger("unique_xr.cube")
    handler = _Commits()
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.INFO)
    try:
        with clusters.get(workers) as (client, pids, startup), Watch(pids, every) as watch:
            t0 = time.perf_counter()
            result = run_cube(spec, client=client, progress=False, stac=True)
            wall = time.perf_counter() - t0
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    fine, _ = spec.grids
    pixel_days = fine.shape[0] * fine.shape[1] * len(spec.days)
    commits = [t - t0 for t in handler.times]
    return {
        "region_px": list(fine.shape), "days": len(spec.days), "pixel_days": pixel_days, "workers": workers,
        "units": result.units_total, "units_run": result.units_run,
        "seconds": round(wall, 2), "pixel_days_per_second": round(pixel_days / wall, 1),
        "job_reported_pixel_days_per_second": result.pixel_days_per_second,
        "cluster_startup_and_worker_imports_s_not_timed": round(startup, 1),
        "commit_times_s": [round(t, 2) for t in commits],
        "load_average_end": round(os.getloadavg()[0], 2),
        "memory": watch.record(wall),
    }


# --------------------------------------------------------------------------------------------
# c. tasks per unit


def tasks_per_unit(spec) -> dict:
    """Tasks of every unit's graph (``job._unit_graph``) with the unit's window (unit + halo, clipped at the edge).

    A unit's graph depends on its window's shape and on where the window starts against the output
    chunk lattice (the data layer is cut from the window's origin, the prediction blocks on the
    lattice), not on the region: units of the same kind have the same number of tasks in every region.
    """
    from unique_xr.downscale import load_downscaler
    from unique_xr.pipeline import job, stages
    from unique_xr.pipeline.units import plan_units
    from unique_xr.search.collections import ESA_WORLDCOVER_CLASSES
    from unique_xr.write.store import CubeStore

    fine, _ = spec.grids
    models = job._load_models(spec)
    items = stages.search_inputs(spec, landsat=False)
    plan = stages.DownscalingPlan(spec, load_downscaler(spec.downscaler))
    store = CubeStore.open(spec.out)
    units = plan_units(fine.shape, size=spec.unit_size, n_days=len(spec.days), unit_days=spec.unit_days)
    out = []
    t0 = time.perf_counter()
    for unit in units:
        graph, _ = job._unit_graph(spec, unit, items, models, plan, store, ESA_WORLDCOVER_CLASSES)
        y0, y1, x0, x1 = unit.window(plan.halo, fine.shape)
        out.append({"unit": unit.id, "window_px": [y1 - y0, x1 - x0], "window_origin_mod_chunk":
                    [y0 % spec.chunk, x0 % spec.chunk], "tasks": len(graph.__dask_graph__())})
    return {"halo_px": plan.halo, "units": out, "build_seconds_per_unit": round((time.perf_counter() - t0) / len(units), 3)}


# --------------------------------------------------------------------------------------------
# e. stages


def _pick_unit(units, shape, halo):
    """An interior unit (its halo entirely inside the region), else the first."""
    for u in units:
        if u.rows[0] >= halo and u.cols[0] >= halo and u.rows[1] + halo <= shape[0] and u.cols[1] + halo <= shape[1]:
            return u
    return units[0]


def stage_times(spec, work: Path) -> dict:
    """Seconds of each stage of one unit, synchronous scheduler, each stage's input persisted first."""
    import dask

    from unique_xr.downscale import api, load_downscaler
    from unique_xr.pipeline import job, stages
    from unique_xr.pipeline.units import plan_units
    from unique_xr.search.collections import ESA_WORLDCOVER_CLASSES
    from unique_xr.write.store import CubeStore

    copy = work / "stage-store"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(Path(spec.out) / "cube.icechunk", copy / "cube.icechunk")
    store = CubeStore.open(copy)
    fine, _ = spec.grids
    models = job._load_models(spec)
    items = stages.search_inputs(spec, landsat=False)
    plan = stages.DownscalingPlan(spec, load_downscaler(spec.downscaler))
    units = plan_units(fine.shape, size=spec.unit_size, n_days=len(spec.days), unit_days=spec.unit_days)
    unit = _pick_unit(units, fine.shape, plan.halo)
    days = spec.days[unit.days[0]: unit.days[1]]
    window = unit.window(plan.halo, fine.shape)
    meta = {"job_token": spec.token, "units_total": len(units)}
    seconds, kernel_calls = {}, {"n": 0}
    predict_block = api.predict_block

    def counted(*a, **kw):  # what the blockwise kernel calls once per (block, day)
        kernel_calls["n"] += 1
        return predict_block(*a, **kw)

    with dask.config.set(scheduler="sync"), mock.patch.object(api, "predict_block", counted):
        c0, t0 = time.process_time(), time.perf_counter()
        cubes = stages.data_layer(spec, items, window, days=[str(d.date()) for d in days])
        static = cubes.pop("static").persist()
        seconds["data_layer_static"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cubes = {k: v.persist() for k, v in cubes.items()}
        cubes["static"] = static
        seconds["data_layer_daily"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        gpp_m = stages.gpp_stage(spec, cubes, {"gpp_m": models["gpp_m"]}, days=days)["gpp_m"].persist()
        seconds["gpp_m"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds = stages.downscaled(spec, unit, gpp_m, cubes["static"], plan, window=window).persist()
        seconds["downscaling"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with mock.patch.object(stages, "data_layer", lambda *a, **k: cubes), \
                mock.patch.object(stages, "gpp_stage", lambda *a, **k: {"gpp_m": gpp_m}), \
                mock.patch.object(stages, "downscaled", lambda *a, **k: ds):
            graph, write = job._unit_graph(spec, unit, items, models, plan, store, ESA_WORLDCOVER_CLASSES)
        (forks,) = dask.compute(graph)
        store.commit_unit(write, forks, unit.id, metadata=meta)
        seconds["write_and_commit"] = time.perf_counter() - t0
        cpu = time.process_time() - c0
        staged = sum(seconds.values())
        staged_calls, kernel_calls["n"] = kernel_calls["n"], 0
        # the same unit's whole graph, as the job builds it, in one go (the check)
        t0 = time.perf_counter()
        graph, write = job._unit_graph(spec, unit, items, models, plan, store, ESA_WORLDCOVER_CLASSES)
        (forks,) = dask.compute(graph)
        store.commit_unit(write, forks, unit.id, metadata=meta)
        whole = time.perf_counter() - t0
    shutil.rmtree(copy, ignore_errors=True)
    px = unit.pixel_days
    n_days = len(days)
    win_px = (window[1] - window[0]) * (window[3] - window[2])
    return {
        "unit": unit.id, "unit_px": [unit.rows[1] - unit.rows[0], unit.cols[1] - unit.cols[0]],
        "window_px": [window[1] - window[0], window[3] - window[2]], "days": n_days, "pixel_days": px,
        "scheduler": "sync (one thread, this process)",
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "share": {k: round(v / staged, 3) for k, v in seconds.items()},
        "microseconds_per_pixel_day": {k: round(v / px * 1e6, 2) for k, v in seconds.items()},
        "static_microseconds_per_unit_pixel": round(seconds["data_layer_static"] / (px / n_days) * 1e6, 2),
        "staged_total_seconds": round(staged, 3), "staged_cpu_seconds_per_wall_second": round(cpu / staged, 2),
        "whole_unit_graph_seconds": round(whole, 3),
        "whole_unit_pixel_days_per_second_one_thread": round(px / whole, 1),
        "downscaling_kernel_calls": {"staged": staged_calls, "whole_unit_graph": kernel_calls["n"]},
        "window_pixels_per_unit_pixel": round(win_px / (px / n_days), 3),
    }


# --------------------------------------------------------------------------------------------
# f. national arithmetic


def worker_cpu_rate(run: dict) -> float:
    """Pixel-days per CPU second of the workers: what a worker does with a core of its own."""
    cpu = sum(run["memory"]["worker_cpu_seconds_per_wall_second"]) * run["seconds"]
    return run["pixel_days"] / cpu if cpu else float("nan")


def national(record: dict) -> dict:
    """A national year from the measured rates (arithmetic, not measured); every assumption in the record."""
    runs, st, days = record["runs"], record["stages"], record["config"]["days"]
    largest, two = runs[-1], record["workers_1_vs_2"]["two_workers"]
    per_cpu = worker_cpu_rate(largest)
    per_px = st["microseconds_per_pixel_day"]
    daily = sum(v for k, v in per_px.items() if k != "data_layer_static")
    # a year-long unit (unit_days = 365) reads the static layers once for 365 days instead of once for ``days``
    year_unit = daily + st["static_microseconds_per_unit_pixel"] / 365
    calls = st["downscaling_kernel_calls"]
    twice = calls["whole_unit_graph"] / max(calls["staged"], 1)

    def core_hours(us_per_pixel_day: float) -> int:
        return round(NATIONAL_YEAR_PIXEL_DAYS * us_per_pixel_day / 1e6 / 3600)

    return {
        "national_year_pixel_days": NATIONAL_YEAR_PIXEL_DAYS, "national_day_pixels": NATIONAL_DAY_PIXELS,
        "measured_end_to_end": {
            "basis": f"the {largest['region_px'][0]} px run: pixel-days per CPU second of its workers",
            "pixel_days_per_worker_cpu_second": round(per_cpu, 1),
            "pixel_days_per_worker_cpu_second_every_run": [round(worker_cpu_rate(r), 1) for r in runs],
            "core_hours_per_national_year": core_hours(1e6 / per_cpu),
            "core_hours_per_national_day": round(NATIONAL_DAY_PIXELS / per_cpu / 3600, 2),
            "cores_for_a_national_year_in_24_h": math.ceil(NATIONAL_YEAR_PIXEL_DAYS / per_cpu / 3600 / 24),
            "this_shared_machine_hours_per_national_year_2_workers": round(
                NATIONAL_YEAR_PIXEL_DAYS / two["pixel_days_per_second"] / 3600),
        },
        "from_stages_one_thread": {
            "microseconds_per_pixel_day_as_measured": round(sum(per_px.values()), 2),
            "microseconds_per_pixel_day_year_long_units": round(year_unit, 2),
            "core_hours_per_national_year_year_long_units": core_hours(year_unit),
            "downscaling_share_year_long_units": round(per_px["downscaling"] / year_unit, 3),
            "job_computes_downscaling_times": round(twice, 2),
            "core_hours_per_national_year_year_long_units_as_the_job_runs_today": core_hours(
                year_unit + (twice - 1) * per_px["downscaling"]),
            "core_hours_per_national_year_everything_but_the_downscaling": core_hours(
                year_unit - per_px["downscaling"]),
        },
        "assumptions": [
            ("time is linear in pixel-days: a unit's work and memory do not depend on the region (measured: tasks "
             "per unit and peak memory against region size)"),
            ("one worker per core, and a worker with a core of its own does what it did per CPU second here (the "
             "machine was shared: wall-clock rates understate it; the pixel-days per worker CPU second agree "
             "across the runs)"),
            ("the CPU test configuration of the downscaler (quick preset: 8 x (1, 2) channels, 32 px tiles, 2 members "
             "x 2 DDIM steps); a production network costs orders of magnitude more per pixel (bench_downscale.py)"),
            (f"measured over {days} days per unit: the static layers (DEM, land-cover fractions) are read once per "
             "unit, so year-long units (unit_days = 365) spread them over 365 days (the from_stages figures)"),
            "the client (search, graphs, commits: 0.1-0.25 CPU s/s here) on a core of its own, not counted",
            "inputs on a local disk (synthetic COGs), no network reads; Planetary Computer reads add their latency",
            "MODIS on the 480 m lattice; Landsat not read (the downscaler is given, not fitted)",
            "the output store on a local disk; one day per time chunk",
            "CPU only: no GPU was lent in this session",
        ],
    }


def summarise(record: dict) -> dict:
    """The derived figures (memory flatness, 1 vs 2 workers, the national arithmetic) from the measured ones."""
    runs, tol = record["runs"], record["config"]["flat_tolerance"]
    small, big = runs[0]["memory"], runs[-1]["memory"]
    client_ratio = round(big["client_peak_gb"] / small["client_peak_gb"], 3)
    worker_ratio = round(max(big["worker_peak_gb"]) / max(small["worker_peak_gb"]), 3)
    record["memory_flat"] = {
        "client_ratio": client_ratio, "worker_ratio": worker_ratio, "tolerance": tol,
        "flat": bool(client_ratio <= tol and worker_ratio <= tol),
        "worker_growth_during_run_gb": [max(r["memory"]["worker_peak_above_start_gb"]) for r in runs],
        "client_growth_during_run_gb": [round(r["memory"]["client_peak_gb"] - r["memory"]["client_start_gb"], 3)
                                        for r in runs]}
    scaling = record["workers_1_vs_2"]
    one, two = scaling["one_worker"], scaling["two_workers"]
    scaling["speedup"] = round(one["seconds"] / two["seconds"], 3)
    scaling["worker_cpu_seconds_per_wall_second_total"] = [
        round(sum(r["memory"]["worker_cpu_seconds_per_wall_second"]), 2) for r in (one, two)]
    scaling["pixel_days_per_worker_cpu_second"] = [round(worker_cpu_rate(r), 1) for r in (one, two)]
    record["national"] = national(record)
    return record


# --------------------------------------------------------------------------------------------
# record


def _machine() -> dict:
    import dask
    import distributed
    import torch
    import xarray

    info = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "dask": dask.__version__, "distributed": distributed.__version__,
            "xarray": xarray.__version__, "torch": torch.__version__, "gpu": None}
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        info["icechunk"] = version("icechunk")
        info["lightgbm"] = version("lightgbm")
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(Exception):
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 1e9, 1)
    return info


def markdown(record: dict) -> str:
    runs, st, nat = record["runs"], record["stages"], record["national"]
    me, fs = nat["measured_end_to_end"], nat["from_stages_one_thread"]
    machine, flat, scaling = record["machine"], record["memory_flat"], record["workers_1_vs_2"]
    lines = [
        f"# bench_cube: the national cube job end to end ({record['config']['description']})", "",
        "```bash", record["command"], "```", "",
        (f"Machine: {machine.get('cpu_model', '?')}, {machine['cpus']} CPUs, {machine.get('memory_gb', '?')} GB; "
         f"load average {record['load_average_start_end']} (start, end); no GPU was lent."), "",
        ("| region | units | workers | pixel-days | wall | pixel-days/s | worker CPU s/s | pixel-days per worker "
         "CPU s | client peak | worker peak (each) | worker growth during the run |"),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in [*runs, *(v for k, v in (("1", scaling["one_worker"]), ("2", scaling["two_workers"]))
                       if v not in runs)]:
        m = r["memory"]
        lines.append(f"| {r['region_px'][0]} x {r['region_px'][1]} | {r['units']} | {r['workers']} | "
                     f"{r['pixel_days'] / 1e6:.2f} M | {r['seconds']:.1f} s | {r['pixel_days_per_second']:,.0f} | "
                     f"{', '.join(str(c) for c in m['worker_cpu_seconds_per_wall_second'])} | "
                     f"{worker_cpu_rate(r):,.0f} | "
                     f"{m['client_peak_gb']:.2f} GB | {', '.join(f'{g:.2f}' for g in m['worker_peak_gb'])} GB | "
                     f"{', '.join(f'{g:.2f}' for g in m['worker_peak_above_start_gb'])} GB |")
    lines += [
        "", (f"Peak memory, largest / smallest region: client {flat['client_ratio']}x, worker {flat['worker_ratio']}x "
             f"(flat within {flat['tolerance']}x: **{flat['flat']}**). 1 -> 2 workers on {scaling['region_px']} px: "
             f"**{scaling['speedup']}x** wall clock, the workers getting "
             f"{' -> '.join(map(str, scaling['worker_cpu_seconds_per_wall_second_total']))} CPU s/s in all; "
             f"{' -> '.join(f'{v:,.0f}' for v in scaling['pixel_days_per_worker_cpu_second'])} pixel-days per worker "
             "CPU second."), "",
        ("Tasks per unit, by the unit's window (unit + halo, clipped at the region's edge) and where it starts "
         "against the chunk lattice:"), "",
        "| region | units | window -> tasks per unit |", "| --- | --- | --- |"]
    for size, t in record["tasks_per_unit"].items():
        groups = "; ".join(f"{w} -> {', '.join(map(str, sorted(set(n))))}" for w, n in t["by_window"].items())
        lines.append(f"| {size} | {len(t['units'])} | {groups} |")
    lines += [
        "", f"One count per kind of unit across every region size: **{record['tasks_constant']}**.", "",
        (f"Stages of one unit ({st['unit']}: {st['unit_px'][0]} x {st['unit_px'][1]} px, window "
         f"{st['window_px'][0]} x {st['window_px'][1]}, {st['days']} days; {st['scheduler']}, each stage's input "
         "persisted):"), "",
        "| stage | seconds | share | us per pixel-day |", "| --- | --- | --- | --- |"]
    for k, v in st["seconds"].items():
        lines.append(f"| {k} | {v:.2f} | {st['share'][k]:.1%} | {st['microseconds_per_pixel_day'][k]:.1f} |")
    calls = st["downscaling_kernel_calls"]
    lines += [
        f"| total (staged) | {st['staged_total_seconds']:.2f} | | |",
        f"| the job's whole unit graph in one go | {st['whole_unit_graph_seconds']:.2f} | | |", "",
        (f"Downscaling kernel calls for this unit: {calls['staged']} staged, {calls['whole_unit_graph']} in the "
         "job's unit graph."), "",
        (f"National year (40 G pixel-days), arithmetic: measured end to end "
         f"{me['pixel_days_per_worker_cpu_second']:,.0f} pixel-days per worker CPU second -> "
         f"**{me['core_hours_per_national_year']:,} core-hours** ({me['core_hours_per_national_day']} per national day; "
         f"{me['cores_for_a_national_year_in_24_h']:,} cores for a year in 24 h; "
         f"{me['this_shared_machine_hours_per_national_year_2_workers']:,} h on this shared machine). From the "
         f"stages, year-long units: {fs['microseconds_per_pixel_day_year_long_units']} us per pixel-day -> "
         f"{fs['core_hours_per_national_year_year_long_units']:,} core-hours with the downscaling computed once, "
         f"{fs['core_hours_per_national_year_year_long_units_as_the_job_runs_today']:,} as the job computes it "
         f"({fs['job_computes_downscaling_times']}x). Assumptions:"), ""]
    lines += [f"- {a}" for a in nat["assumptions"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], help="region sides (30 m px)")
    parser.add_argument("--days", type=int, default=4, help="days of the period (Landsat on the first and last)")
    parser.add_argument("--unit-size", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--fit-steps", type=int, default=50)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="workers of the runs at every size")
    parser.add_argument("--scaling-size", type=int, default=None, help="side rerun with 1 worker (default: middle)")
    parser.add_argument("--sample-every", type=float, default=0.25)
    parser.add_argument("--flat-tolerance", type=float, default=1.25)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--downscaler", default="fit",
                        help="a fitted downscaler folder instead of the job fitting one on the smallest square")
    parser.add_argument("--smoke", action="store_true",
                        help="workers as threads of this process, one cluster per worker count (smoke runs: fast, "
                             "but worker memory is then this process's)")
    parser.add_argument("--work", type=Path, default=None, help="folder for the inputs and stores (default: temp)")
    parser.add_argument("--out", type=Path, default=RESULTS / "cube.json")
    args = parser.parse_args(argv)
    sizes = sorted(args.sizes)
    scaling = args.scaling_size or sizes[len(sizes) // 2]

    import unique_xr

    for name in ("distributed", "bokeh", "tornado"):
        logging.getLogger(name).setLevel(logging.ERROR)
    command = ("python benchmarks/bench_cube.py " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    load_start = os.getloadavg()
    t_start = time.perf_counter()
    clusters = Clusters(args.smoke)
    with contextlib.ExitStack() as stack:
        stack.callback(clusters.close)
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_cube_")))
        t0 = time.perf_counter()
        region = make_inputs(work / "inputs", max(sizes), args.days, args.seed)
        t_inputs = time.perf_counter() - t0
        timings = {"inputs": round(t_inputs, 1)}

        # the downscaler: fitted once by the job, on the smallest square
        t0 = time.perf_counter()
        fit_run, downscaler = None, args.downscaler
        if downscaler == "fit":
            fit_spec = job_spec(region, sizes[0], work / "fit", "fit", args)
            fit_run = run_job(fit_spec, args.workers, args.sample_every, clusters)
            downscaler = str(work / "fit" / "downscaler")
        timings["fit_run"] = round(time.perf_counter() - t0, 1)

        runs, specs = [], {}
        for side in sizes:
            spec = job_spec(region, side, work / f"cube_{side}", downscaler, args)
            specs[side] = spec
            runs.append(run_job(spec, args.workers, args.sample_every, clusters))
            print(f"{side} px, {args.workers} workers: {runs[-1]['seconds']} s, "
                  f"{runs[-1]['pixel_days_per_second']:,.0f} pixel-days/s", file=sys.stderr)
        timings["runs"] = round(time.perf_counter() - t0 - timings["fit_run"], 1)
        scaling_runs = {args.workers: next(r for r in runs if r["region_px"][0] == scaling)}
        for w in (1, 2):
            if w not in scaling_runs:
                spec = job_spec(region, scaling, work / f"cube_{scaling}_w{w}", downscaler, args)
                scaling_runs[w] = run_job(spec, w, args.sample_every, clusters)
                print(f"{scaling} px, {w} workers: {scaling_runs[w]['seconds']} s", file=sys.stderr)

        t0 = time.perf_counter()
        tasks = {}
        for side in sizes:
            t = tasks_per_unit(specs[side])
            by_window: dict[str, list[int]] = {}
            for u in t["units"]:
                kind = (f"{u['window_px'][0]}x{u['window_px'][1]} at +{u['window_origin_mod_chunk'][0]}"
                        f"/+{u['window_origin_mod_chunk'][1]}")
                by_window.setdefault(kind, []).append(u["tasks"])
            tasks[f"{side}x{side}"] = {**t, "by_window": by_window}
        merged: dict[str, set[int]] = {}
        for t in tasks.values():
            for w, n in t["by_window"].items():
                merged.setdefault(w, set()).update(n)
        tasks_constant = all(len(n) == 1 for n in merged.values())
        timings["tasks"] = round(time.perf_counter() - t0, 1)

        t0 = time.perf_counter()
        stages_record = stage_times(specs[sizes[-1]], work)
        timings["stages"] = round(time.perf_counter() - t0, 1)

    record = {
        "benchmark": "national cube job end to end (run_cube) on a synthetic region through a local STAC catalog",
        "command": command,
        "machine": _machine(),
        "gpu_lent": False,
        "load_average_start_end": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        "unique_xr_version": unique_xr.__version__,
        "config": {
            "description": f"quick-preset downscaler, {args.members} members x {args.steps} DDIM steps, "
                           f"{args.unit_size} px units, {args.chunk} px chunks, {args.days} days",
            "region": {"lonlat": list(LONLAT), "crs": CRS, "largest_px": max(sizes), "seed": args.seed,
                       "start": str(region.spec.start), "end": str(region.spec.end),
                       "landsat_dates": [str(d) for d in region.spec.landsat_dates],
                       "products": sorted(region.items)},
            "job": {k: v for k, v in specs[sizes[-1]].to_dict().items()
                    if k in ("resolution", "coarse_factor", "members", "steps", "unit_size", "chunk", "time_chunk",
                             "in_flight", "scheme", "tree_engine", "engine", "device")},
            "downscaler": ({"fitted_on_px": sizes[0], "fit_preset": "quick", "fit_steps": args.fit_steps}
                           if args.downscaler == "fit" else {"folder": args.downscaler}),
            "workers": args.workers, "threads_per_worker": 1, "fresh_worker_processes_per_run": not args.smoke,
            "days": args.days, "flat_tolerance": args.flat_tolerance,
        },
        "fit_run": fit_run,
        "runs": runs,
        "workers_1_vs_2": {"region_px": scaling, "one_worker": scaling_runs[1], "two_workers": scaling_runs[2]},
        "tasks_per_unit": tasks,
        "tasks_per_unit_by_window": {w: sorted(n) for w, n in merged.items()},
        "tasks_constant": tasks_constant,
        "stages": stages_record,
        "section_seconds": timings,
        "total_seconds": round(time.perf_counter() - t_start, 1),
    }
    summarise(record)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(record))
    print(json.dumps({k: record[k] for k in ("memory_flat", "tasks_constant", "workers_1_vs_2", "national")},
                     indent=2, default=str))
    return record


if __name__ == "__main__":
    main()
