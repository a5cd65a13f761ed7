"""Benchmark: diffusion downscaling speed (network, sampler, tiling, Dask, training) and the national arithmetic.

The networks have **random weights** of the presets' shapes (``DownscaleConfig.preset``): the
speed of a convolutional network does not depend on what it learned. The output convolution, zero
at initialisation, gets small seeded random weights so the sampler does not run on a constant.
The shape is scheme S2 as used for GPP: conditioning = upsampled coarse field, its validity mask,
a DEM and the fractions of the 11 ESA WorldCover classes (14 channels); ``--aux-classes 0`` gives S1.
Every figure is the best of ``--repeat`` runs, the runs of the variants compared interleaved; each
run records its process CPU seconds per wall second (2.0 on this 2-core machine = both cores ours).

a. **size**: parameters and FLOPs per network evaluation of one tile (``torch.utils.flop_counter``
   on the meta device; multiply-add = 2 FLOPs) for the ``cpu`` and ``large`` presets at their tiles.
b. **network evaluations/s** (tile-evaluations per second) for batches of ``--batches`` tiles, fp32
   against bf16 autocast, NCHW against channels_last; ratios to fp32 NCHW of the same batch.
c. **sampling**: tiles/s and megapixels/s through ``Downscaler.sampler_fn`` (numpy in, DDIM, numpy
   out; what ``predict_region`` calls) at ``--steps`` DDIM steps for fp32 and bf16 (each with the
   memory format that was faster in b), the bf16/fp32 ratio; and the batch-size effect at
   ``--batch-steps`` steps. On CUDA also the sampler on tensors already on the device.
d. **tiling and Dask**: ``downscale`` of a ``--field`` x ``--field`` fine field (coarse at factor 16,
   plus DEM and land cover) computed eagerly, against the sum of its tiles' sampler calls in the
   batches ``predict_region`` forms (the overhead of conditioning, position-keyed noise, blending
   and xarray); and ``downscale`` on chunked input with the Dask threaded scheduler against eager
   (more tiles are computed there: the tiles that touch two chunks are computed for each).
e. **training**: optimiser steps/s of ``unique_xr.downscale.model.train`` (the preset's batch and
   patch; fp32 on CPU, bf16 on CUDA, the ``precision="auto"`` defaults).
f. **arithmetic, not measured**: from the measured tiles/s, the time of one national day
   (111 M fine pixels) and of a national year (40 G pixel-days), and what the goal "a national
   year in <= 1 H100-hour" needs in tiles/s and FLOP/s.

Run from the repository root::

    python benchmarks/bench_downscale.py                 # CPU, the "cpu" preset, ~6 min on 2 shared cores
    python benchmarks/bench_downscale.py --device cuda   # GPU, the "large" preset in bf16

Results go to ``--out`` (default ``benchmarks/results/downscale.json``, or ``downscale_cuda.json``
with ``--device cuda``) with the command that made them and the machine they ran on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"

#: One national day (fine pixels at 30 m) and a national year (pixel-days), as in issue 5.
NATIONAL_DAY_PIXELS = 111e6
NATIONAL_YEAR_PIXEL_DAYS = 40e9
PIXEL_KM2 = 0.03 * 0.03
#: NVIDIA's published dense (no sparsity) bf16 tensor-core peak of an H100 SXM; a spec, not a measurement.
H100_SXM_BF16_DENSE_FLOPS = 989e12
#: ESA WorldCover class codes: the land-cover auxiliary of the S2-shaped model (one channel each).
WORLDCOVER_CLASSES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100)
FACTOR = 16  # 500 m -> 30 m is about 16.7; the nearest nesting factor the tiles accept


# --------------------------------------------------------------------------------------------
# models and inputs


def make_model(preset: str, aux_classes: int, seed: int = 0, **overrides):
    """A random-weight :class:`~unique_xr.downscale.model.Downscaler` of ``preset``'s shape."""
    import torch

    from unique_xr.downscale.conditioning import AuxSpec, Normalisation
    from unique_xr.downscale.config import DownscaleConfig
    from unique_xr.downscale.model import Downscaler

    config = DownscaleConfig.preset(preset, seed=seed, **overrides)
    aux = ()
    if aux_classes:
        aux = (AuxSpec(name="dem", kind="continuous", mean=300.0, std=150.0),
               AuxSpec(name="landcover", kind="categorical", classes=WORLDCOVER_CLASSES[:aux_classes]))
    norm = Normalisation(field_mean=3.0, field_std=2.0, residual_std=1.0, aux=aux)
    model = Downscaler.new(config, norm, "s2" if aux_classes else "s1")
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.net.out.parameters():
            p.copy_(0.02 * torch.randn(p.shape, generator=gen))
    model.net.eval()
    return model


def synthetic_field(side: int, aux_classes: int, seed: int = 0):
    """A smooth coarse field at ``side / FACTOR`` px, and a DEM and land cover on the ``side`` fine grid."""
    import xarray as xr
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    n = side // FACTOR
    coarse = 3.0 + 2.0 * gaussian_filter(rng.standard_normal((n, n)), 2, mode="wrap") * 4
    dem = 300.0 + 150.0 * gaussian_filter(rng.standard_normal((side, side)), 8, mode="wrap") * 8
    classes = np.asarray(WORLDCOVER_CLASSES[:max(aux_classes, 1)])
    blocks = rng.integers(0, len(classes), (side // 8, side // 8))
    lc = classes[np.repeat(np.repeat(blocks, 8, 0), 8, 1)].astype(np.float64)
    coarse = xr.DataArray(coarse.astype(np.float32), dims=("y", "x"), name="gpp")
    aux = [xr.DataArray(dem, dims=("y", "x"), name="dem"), xr.DataArray(lc, dims=("y", "x"), name="landcover")]
    return coarse, (aux if aux_classes else [])


def conditioning_tiles(model, batch: int, tile: int, aux_classes: int, seed: int = 0) -> np.ndarray:
    """``(batch, C, tile, tile)`` conditioning cut from a synthetic field with the model's own transform."""
    from unique_xr.downscale.conditioning import upsample_bilinear

    side = max(FACTOR * 2, -(-tile // FACTOR) * FACTOR)
    tiles = []
    for i in range(batch):
        coarse, aux = synthetic_field(side, aux_classes, seed=seed + i)
        up = upsample_bilinear(coarse.values, FACTOR)
        cond = model.norm.conditioning(up, [a.values for a in aux])
        tiles.append(cond[:, :tile, :tile])
    return np.ascontiguousarray(np.stack(tiles), dtype=np.float32)


def tile_noise(batch: int, tile: int, seed: int = 0) -> np.ndarray:
    from unique_xr.downscale.tiling import position_noise

    return np.stack([position_noise(seed, m, 0, np.arange(tile), np.arange(tile))[None] for m in range(batch)])


# --------------------------------------------------------------------------------------------
# timing


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def interleaved(fns: dict, device: str, repeat: int, warm: dict | None = None) -> dict:
    """Best wall seconds of each callable over ``repeat`` rounds (callables interleaved within a round).

    Returns ``{name: {"seconds": best, "cpu_seconds_per_wall_second": ...}}``; ``warm[name]`` (or the
    callable itself) runs once, untimed, before the first round.
    """
    for name, fn in fns.items():
        (warm or {}).get(name, fn)()
    best: dict = {}
    for _ in range(max(1, repeat)):
        for name, fn in fns.items():
            _sync(device)
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            _sync(device)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            if name not in best or wall < best[name]["seconds"]:
                best[name] = {"seconds": wall, "cpu_seconds_per_wall_second": round(cpu / wall, 2)}
    return best


def _memory_format(model, channels_last: bool):
    import torch

    model.net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    return model


def _variant(precision: str, channels_last: bool) -> str:
    return f"{precision}{'_channels_last' if channels_last else ''}"


# --------------------------------------------------------------------------------------------
# a. size


def model_size(preset: str, aux_classes: int) -> dict:
    """Parameters and FLOPs of one network evaluation of one tile (counted on the meta device)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from unique_xr.downscale.config import DownscaleConfig
    from unique_xr.downscale.net import ConditionalUNet, count_parameters

    cfg = DownscaleConfig.preset(preset)
    cond = 2 + (1 + aux_classes if aux_classes else 0)
    with torch.device("meta"):
        net = ConditionalUNet(cond, base_channels=cfg.base_channels, channel_mults=cfg.channel_mults)
        x = torch.empty(1, 1, cfg.tile, cfg.tile)
        c = torch.empty(1, cond, cfg.tile, cfg.tile)
        t = torch.zeros(1, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(x, c, t)
    flops = counter.get_total_flops()
    step = cfg.tile - cfg.overlap
    return {"preset": preset, "base_channels": cfg.base_channels, "channel_mults": list(cfg.channel_mults),
            "cond_channels": cond, "parameters": count_parameters(net), "tile": cfg.tile, "overlap": cfg.overlap,
            "new_pixels_per_tile": step * step,
            "gflop_per_tile_evaluation": round(flops / 1e9, 3),
            "gflop_per_new_pixel_per_step": round(flops / (step * step) / 1e9, 6),
            "counted_ops": sorted(str(k) for k in counter.get_flop_counts()["Global"])}


# --------------------------------------------------------------------------------------------
# b. network evaluations


def bench_network(model, tile: int, batches, variants, device: str, repeat: int, evals: int,
                  aux_classes: int) -> dict:
    """Tile-evaluations/s of ``variants`` (``(precision, channels_last, batches)``) at their batches."""
    import torch

    from unique_xr.downscale.model import autocast

    cond_all = torch.from_numpy(conditioning_tiles(model, max(batches), tile, aux_classes)).to(device)
    fns, meta = {}, {}
    for b in batches:
        x = torch.randn(b, 1, tile, tile, generator=torch.Generator().manual_seed(b)).to(device)
        c = cond_all[:b].contiguous()
        t = torch.full((b,), 500, dtype=torch.long, device=device)
        for precision, channels_last, only in variants:
            if b not in only:
                continue
            name = f"{_variant(precision, channels_last)}_batch_{b}"
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            xx, cc = x.contiguous(memory_format=fmt), c.contiguous(memory_format=fmt)

            def run(xx=xx, cc=cc, t=t, precision=precision, channels_last=channels_last):
                _memory_format(model, channels_last)
                with torch.no_grad(), autocast(device, precision):
                    for _ in range(evals):
                        model.net(xx, cc, t)

            fns[name] = run
            meta[name] = {"precision": precision, "channels_last": channels_last, "batch": b}
    # one untimed call per variant at the smallest batch loads the kernels; the best of ``repeat``
    # absorbs the per-shape set-up of the larger batches
    warm = {name: (fn if meta[name]["batch"] == min(batches) else (lambda: None)) for name, fn in fns.items()}
    timed = interleaved(fns, device, repeat, warm=warm)
    out = {}
    for name, m in meta.items():
        sec = timed[name]["seconds"]
        out[name] = {**m, "evaluations": evals, **timed[name], "seconds": round(sec, 4),
                     "tile_evaluations_per_s": round(m["batch"] * evals / sec, 3)}
    for name, r in out.items():
        ref = out.get(f"fp32_batch_{r['batch']}")
        if ref:
            r["vs_fp32_nchw_same_batch"] = round(r["tile_evaluations_per_s"] / ref["tile_evaluations_per_s"], 3)
    _memory_format(model, False)
    return out


def best_layout(network: dict, precision: str, batch: int) -> bool:
    """channels_last if it was faster for ``precision`` at the measured batch nearest ``batch``."""
    batches = sorted({r["batch"] for r in network.values()}, key=lambda b: (abs(b - batch), -b))
    b = batches[0]
    plain = network.get(f"{precision}_batch_{b}")
    last = network.get(f"{precision}_channels_last_batch_{b}")
    if plain is None or last is None:
        return last is not None
    return last["tile_evaluations_per_s"] > plain["tile_evaluations_per_s"]


# --------------------------------------------------------------------------------------------
# c. sampling


def bench_sampling(model, tile: int, jobs, device: str, repeat: int, aux_classes: int,
                   device_resident: bool) -> dict:
    """Tiles/s of DDIM sampling for ``jobs`` (``(precision, channels_last, steps, batch)``), interleaved."""
    import torch

    from unique_xr.downscale.model import autocast

    largest = max(job[3] for job in jobs)
    cond_all = conditioning_tiles(model, largest, tile, aux_classes)
    noise_all = tile_noise(largest, tile)
    fns, warm, meta = {}, {}, {}
    for precision, channels_last, steps, batch in jobs:
        cond, noise = cond_all[:batch], noise_all[:batch]
        name = f"{_variant(precision, channels_last)}_ddim_{steps}_batch_{batch}"

        def run(steps=steps, precision=precision, channels_last=channels_last, cond=cond, noise=noise, n=0):
            _memory_format(model, channels_last)
            sample = model.sampler_fn(steps=n or steps, sampler="ddim", device=device, precision=precision)
            return sample(cond, lambda k: noise)

        fns[name] = run
        warm[name] = lambda run=run: run(n=1)
        meta[name] = {"path": "sampler_fn (numpy in/out)", "precision": precision,
                      "channels_last": channels_last, "steps": steps, "batch": batch}
        if device_resident:
            c_t, z_t = torch.from_numpy(cond).to(device), torch.from_numpy(noise).to(device)

            def run_d(steps=steps, precision=precision, channels_last=channels_last, c_t=c_t, z_t=z_t, n=0):
                _memory_format(model, channels_last)
                fmt = torch.channels_last if channels_last else torch.contiguous_format
                with autocast(device, precision):
                    return model.diffusion.sample(model.net, c_t.contiguous(memory_format=fmt),
                                                  noise=lambda k: z_t.contiguous(memory_format=fmt),
                                                  sampler="ddim", steps=n or steps, clip=8.0)

            fns[name + "_device_resident"] = run_d
            warm[name + "_device_resident"] = lambda run_d=run_d: run_d(n=1)
            meta[name + "_device_resident"] = {**meta[name], "path": "Diffusion.sample on device tensors"}
    timed = interleaved(fns, device, repeat, warm=warm)
    out = {}
    for name, m in meta.items():
        sec = timed[name]["seconds"]
        tiles_per_s = m["batch"] / sec
        out[name] = {**m, **timed[name], "seconds": round(sec, 3), "tiles_per_s": round(tiles_per_s, 4),
                     "megapixels_per_s": round(tiles_per_s * tile * tile / 1e6, 5),
                     "tile_evaluations_per_s": round(tiles_per_s * m["steps"], 3)}
    _memory_format(model, False)
    return out


# --------------------------------------------------------------------------------------------
# d. tiling and Dask


def bench_tiling(model, field: int, chunk: int, steps: int, batch_size: int, device: str, precision: str,
                 threads: int, repeat: int, aux_classes: int) -> dict:
    import dask

    from unique_xr.downscale import downscale
    from unique_xr.downscale.api import coarse_on_fine
    from unique_xr.downscale.tiling import (
        TilePlan,
        position_noise,
        predict_region,
        reflect_index,
    )

    cfg = model.config
    coarse, aux = synthetic_field(field, aux_classes)
    plan = TilePlan.make((field, field), tile=cfg.tile, overlap=cfg.overlap, stride=model.stride)
    t = cfg.tile

    def conditioning():
        up = coarse_on_fine(coarse.values.astype(np.float64), FACTOR)
        rows = reflect_index(np.arange(plan.padded[0]), field)
        cols = reflect_index(np.arange(plan.padded[1]), field)
        return model.norm.conditioning(up[np.ix_(rows, cols)], [a.values[np.ix_(rows, cols)] for a in aux])

    def network_free(cond_tiles, noise):  # what predict_region asks of the sampler, without the network
        noise(0)
        return np.zeros((cond_tiles.shape[0], t, t), np.float32)

    # the direct cost of everything but the network: conditioning, position-keyed noise, blending
    cond = conditioning()
    direct = interleaved({"conditioning": conditioning,
                          "noise_and_blending": lambda: predict_region(network_free, cond, (0, 0),
                                                                       (0, field, 0, field), plan,
                                                                       batch_size=batch_size)},
                         "cpu", max(3, repeat))
    # the tiles and batches predict_region forms for the whole field, cut and noised outside the clock
    jobs = [(sy, sx) for sy in plan.starts_y for sx in plan.starts_x]
    batches = []
    for i in range(0, len(jobs), batch_size):
        part = jobs[i: i + batch_size]
        batches.append((np.stack([cond[:, sy: sy + t, sx: sx + t] for sy, sx in part]),
                        np.stack([position_noise(0, 0, 0, np.arange(sy, sy + t), np.arange(sx, sx + t))[None]
                                  for sy, sx in part])))
    sample = model.sampler_fn(steps=steps, sampler="ddim", device=device, precision=precision)

    def bare():
        for c, z in batches:
            sample(c, lambda k, z=z: z)

    kw = {"aux": aux, "factor": FACTOR, "steps": steps, "sampler": "ddim", "device": device,
          "precision": precision, "batch_size": batch_size}
    results = {}

    def eager():
        results["eager"] = downscale(coarse, model, **kw)

    lazy_coarse = coarse.chunk()
    lazy_aux = [a.chunk({"y": chunk, "x": chunk}) for a in aux]
    t0 = time.perf_counter()
    graph = downscale(lazy_coarse, model, **{**kw, "aux": lazy_aux}, chunks=chunk)
    t_graph = time.perf_counter() - t0

    def lazy():
        with dask.config.set(scheduler="threads", num_workers=threads):
            results["dask"] = graph.compute()

    timed = interleaved({"bare_tiles": bare, "eager": eager, "dask": lazy}, device, repeat)
    darr = graph[coarse.name].data
    chunk_bounds = [np.cumsum((0,) + c) for c in darr.chunks]
    dask_tiles = sum(len(plan.touching(int(y0), int(y1), 0)) * len(plan.touching(int(x0), int(x1), 1))
                     for y0, y1 in zip(chunk_bounds[0][:-1], chunk_bounds[0][1:])
                     for x0, x1 in zip(chunk_bounds[1][:-1], chunk_bounds[1][1:]))
    diff = float(np.nanmax(np.abs(results["dask"][coarse.name].values - results["eager"][coarse.name].values)))
    s_bare, s_eager, s_dask = (timed[k]["seconds"] for k in ("bare_tiles", "eager", "dask"))
    s_direct = sum(v["seconds"] for v in direct.values())
    return {
        "field": [field, field], "coarse": list(coarse.shape), "factor": FACTOR, "tile": t, "overlap": cfg.overlap,
        "steps": steps, "precision": precision, "batch_size": batch_size,
        "tiles_eager": plan.n_tiles, "tile_batches_eager": len(batches),
        "dask_chunk": chunk, "dask_chunks": int(np.prod(darr.numblocks)), "tiles_dask": dask_tiles,
        "dask_tasks": len(dict(graph.__dask_graph__())), "dask_threads": threads,
        "graph_seconds": round(t_graph, 4),
        "seconds": {k: round(v["seconds"], 3) for k, v in timed.items()},
        "cpu_seconds_per_wall_second": {k: v["cpu_seconds_per_wall_second"] for k, v in timed.items()},
        "eager_vs_bare_tiles": round(s_eager / s_bare, 3),
        "overhead_direct": {"seconds": {k: round(v["seconds"], 4) for k, v in direct.items()},
                            "seconds_per_tile": round(s_direct / plan.n_tiles, 5),
                            "bare_plus_direct_vs_bare": round((s_bare + s_direct) / s_bare, 4)},
        "dask_vs_eager": round(s_dask / s_eager, 3),
        "dask_tiles_vs_eager_tiles": round(dask_tiles / plan.n_tiles, 3),
        "dask_equals_eager_max_abs_difference": diff,
        "output_finite_share": float(np.isfinite(results["dask"][coarse.name].values).mean()),
    }


# --------------------------------------------------------------------------------------------
# e. training


def bench_training(preset: str, aux_classes: int, steps: int, device: str, repeat: int) -> dict:
    from unique_xr.downscale.model import train

    probe = make_model(preset, aux_classes)
    cfg = probe.config
    rng = np.random.default_rng(0)
    channels = 1 + probe.norm.cond_channels
    patches = rng.standard_normal((max(2 * cfg.batch_size, 16), channels, cfg.patch, cfg.patch)).astype(np.float32)

    def run(n=steps):
        model = make_model(preset, aux_classes, train_steps=n)
        train(model, patches, device=device, precision="auto")

    timed = interleaved({"train": run}, device, repeat, warm={"train": lambda: run(1)})["train"]
    sec = timed["seconds"]
    return {"preset": preset, "batch_size": cfg.batch_size, "patch": cfg.patch, "steps": steps,
            "precision": "bf16" if device.startswith("cuda") else "fp32", **timed, "seconds": round(sec, 3),
            "steps_per_s": round(steps / sec, 4), "patches_per_s": round(steps * cfg.batch_size / sec, 3),
            "note": "includes the per-call setup of train() (EMA copy, optimiser), small next to the steps"}


# --------------------------------------------------------------------------------------------
# f. arithmetic


def derive(sampling: dict, size: dict, device: str) -> dict:
    """National day/year costs from each measured sampling rate, and the 1-H100-hour goal's needs."""
    new = size["new_pixels_per_tile"]
    per_config = {}
    for name, r in sampling.items():
        out_px_s = r["tiles_per_s"] * new
        per_config[name] = {
            "output_megapixels_per_s": round(out_px_s / 1e6, 5),
            "km2_per_hour_at_30m": round(out_px_s * 3600 * PIXEL_KM2, 1),
            "national_day_hours": round(NATIONAL_DAY_PIXELS / out_px_s / 3600, 3),
            "national_year_hours": round(NATIONAL_YEAR_PIXEL_DAYS / out_px_s / 3600, 1),
            "national_year_days": round(NATIONAL_YEAR_PIXEL_DAYS / out_px_s / 86400, 1),
            "achieved_tflop_per_s": round(r["tile_evaluations_per_s"] * size["gflop_per_tile_evaluation"] / 1e3, 4),
            "achieved_share_of_h100_bf16_peak": round(r["tile_evaluations_per_s"] * size["gflop_per_tile_evaluation"]
                                                      * 1e9 / H100_SXM_BF16_DENSE_FLOPS, 6),
        }
    return {
        "method": "arithmetic from the measured tiles/s, not measured: output pixels = tiles x (tile - overlap)^2 "
                  "(each pixel is new in one tile; the overlap is recomputed)",
        "device": device,
        "national_day_pixels": NATIONAL_DAY_PIXELS,
        "national_year_pixel_days": NATIONAL_YEAR_PIXEL_DAYS,
        "by_sampling_config": per_config,
    }


def h100_goal(sizes: dict, steps_list) -> dict:
    """What a national year in one H100-hour needs, for each preset and step count (arithmetic)."""
    px_s = NATIONAL_YEAR_PIXEL_DAYS / 3600.0
    out = {"method": "arithmetic, not measured; peak = NVIDIA's published dense bf16 figure for H100 SXM "
                     f"({H100_SXM_BF16_DENSE_FLOPS / 1e12:.0f} TFLOP/s)",
           "output_pixels_per_s_needed": round(px_s)}
    for preset, s in sizes.items():
        tiles_s = px_s / s["new_pixels_per_tile"]
        rows = {}
        for steps in sorted(set(steps_list) | {1, 2, 4}):
            flops = tiles_s * steps * s["gflop_per_tile_evaluation"] * 1e9
            rows[f"ddim_{steps}"] = {"tile_evaluations_per_s": round(tiles_s * steps),
                                     "tflop_per_s_needed": round(flops / 1e12, 1),
                                     "share_of_h100_bf16_peak": round(flops / H100_SXM_BF16_DENSE_FLOPS, 3)}
        out[preset] = {"tile": s["tile"], "overlap": s["overlap"], "tiles_per_s_needed": round(tiles_s, 1),
                       "by_steps": rows,
                       "max_steps_at_full_peak": math.floor(H100_SXM_BF16_DENSE_FLOPS /
                                                            (tiles_s * s["gflop_per_tile_evaluation"] * 1e9))}
    return out


# --------------------------------------------------------------------------------------------


def _machine(device: str) -> dict:
    import dask
    import torch
    import xarray

    info = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "dask": dask.__version__, "xarray": xarray.__version__,
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "device": device}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(Exception):
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 1e9, 1)
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(device).total_memory / 1e9, 1)
    return info


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (bf16 autocast, channels_last on CUDA)")
    parser.add_argument("--preset", default=None, help="timed network: default 'cpu' on CPU, 'large' on CUDA")
    parser.add_argument("--aux-classes", type=int, default=len(WORLDCOVER_CLASSES),
                        help="land-cover classes of the S2 conditioning (0: scheme S1)")
    parser.add_argument("--steps", nargs="+", type=int, default=[10, 25, 50], help="DDIM steps for c")
    parser.add_argument("--batches", nargs="+", type=int, default=None,
                        help="tiles per batch for b (default 1 4 8 on CPU, 16 64 256 on CUDA)")
    parser.add_argument("--sample-batch", type=int, default=None,
                        help="tiles per batch of the steps sweep in c (default 1 on CPU, 64 on CUDA)")
    parser.add_argument("--compare-steps", nargs="+", type=int, default=None,
                        help="DDIM steps at which the other precision is sampled too (default: all on CUDA, "
                             "the first of --steps on CPU)")
    parser.add_argument("--batch-steps", type=int, default=10, help="DDIM steps of the batch-size effect in c")
    parser.add_argument("--field", type=int, default=None, help="fine field side for d (default 512 CPU, 2048 CUDA)")
    parser.add_argument("--chunk", type=int, default=None, help="Dask chunk side for d (default 256 CPU, 1024 CUDA)")
    parser.add_argument("--tiling-steps", type=int, default=1, help="DDIM steps in d (overhead is per tile)")
    parser.add_argument("--tiling-batch", type=int, default=None, help="tile batch in d (default 8 CPU, 64 CUDA)")
    parser.add_argument("--threads", type=int, default=None, help="Dask threads in d (default: CPUs; 2 on CUDA)")
    parser.add_argument("--train-steps", type=int, default=None, help="optimiser steps timed in e (5 CPU, 50 CUDA)")
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs (interleaved)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for the smoke test (seconds)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    import unique_xr
    from unique_xr.downscale.model import resolve_device

    device = resolve_device(args.device)
    cuda = device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True
    preset = args.preset or ("large" if cuda else "cpu")
    batches = args.batches or ([16, 64, 256] if cuda else [1, 4, 8])
    sample_batch = args.sample_batch or (64 if cuda else 1)
    tiling_batch = args.tiling_batch or (64 if cuda else 8)
    train_steps = args.train_steps or (50 if cuda else 5)
    field = args.field or (2048 if cuda else 512)
    chunk = args.chunk or (1024 if cuda else 256)
    threads = args.threads or (2 if cuda else os.cpu_count() or 1)
    steps_list, repeat = list(args.steps), args.repeat
    compare_steps = args.compare_steps or (steps_list if cuda else steps_list[:1])
    batch_steps = args.batch_steps
    evals = 10 if cuda else 1
    if args.quick:
        preset = "quick"
        batches, sample_batch, tiling_batch, train_steps = [1, 2], 1, 4, 2
        steps_list, compare_steps, batch_steps, field, chunk, repeat, evals = [2, 3], [2], 2, 64, 32, 1, 1
    out_path = args.out or RESULTS / ("downscale_cuda.json" if cuda else "downscale.json")
    command = "python benchmarks/bench_downscale.py " + " ".join(argv if argv is not None else sys.argv[1:])
    load_start = os.getloadavg()
    t_start = time.perf_counter()
    # the device's default precision ("auto": bf16 on CUDA, fp32 on CPU) at every size; the other
    # one at the smallest and largest batch (on CPU without native bf16 it is several times slower)
    default_precision = "bf16" if cuda else "fp32"
    other_precision = "fp32" if cuda else "bf16"
    ends = sorted({min(batches), max(batches)})

    sections: dict = {}
    clock = time.perf_counter()
    sizes = {p: model_size(p, args.aux_classes) for p in dict.fromkeys(["cpu", "large", preset])}
    model = make_model(preset, args.aux_classes)
    model.to(device)
    tile = model.config.tile
    variants = [(default_precision, False, batches), (default_precision, True, batches),
                (other_precision, False, ends), (other_precision, True, ends)]
    network = bench_network(model, tile, batches, variants, device, repeat, evals, args.aux_classes)
    sections["a_b_size_and_network"], clock = round(time.perf_counter() - clock, 1), time.perf_counter()

    layout = {(p, b): best_layout(network, p, b) for p in ("fp32", "bf16") for b in batches}
    jobs = [(default_precision, layout[default_precision, sample_batch], s, sample_batch) for s in steps_list]
    jobs += [(other_precision, layout[other_precision, sample_batch], s, sample_batch) for s in compare_steps]
    jobs += [(default_precision, layout[default_precision, b], batch_steps, b) for b in batches
             if b != sample_batch or batch_steps not in steps_list]
    sampling = bench_sampling(model, tile, jobs, device, repeat, args.aux_classes, device_resident=cuda)

    def rate(precision, steps, batch):
        return sampling[f"{_variant(precision, layout[precision, batch])}_ddim_{steps}_batch_{batch}"]["tiles_per_s"]

    ratios = {f"ddim_{s}": round(rate("bf16", s, sample_batch) / rate("fp32", s, sample_batch), 3)
              for s in compare_steps}
    batch_effect = {str(b): rate(default_precision, batch_steps, b) for b in batches}
    sections["c_sampling"], clock = round(time.perf_counter() - clock, 1), time.perf_counter()

    tiling = bench_tiling(model, field, chunk, args.tiling_steps, tiling_batch, device, default_precision,
                          threads, repeat, args.aux_classes)
    per_eval = {r["batch"]: r["tile_evaluations_per_s"] for r in network.values()
                if r["precision"] == default_precision and not r["channels_last"]}
    evals_per_s = per_eval.get(tiling_batch) or max(per_eval.values())
    overhead = tiling["overhead_direct"]["seconds_per_tile"]
    tiling["derived_overhead_share"] = {
        "method": "arithmetic: direct overhead per tile / (that + steps / network tile-evaluations per s at "
                  "this batch, NCHW, from b)",
        **{f"ddim_{s}": round(overhead / (overhead + s / evals_per_s), 4) for s in steps_list}}
    sections["d_tiling_and_dask"], clock = round(time.perf_counter() - clock, 1), time.perf_counter()
    training = bench_training(preset, args.aux_classes, train_steps, device, repeat)
    sections["e_training"] = round(time.perf_counter() - clock, 1)

    record = {
        "benchmark": "diffusion downscaling: network, DDIM sampler, tiling, Dask, training; national arithmetic",
        "command": command,
        "machine": _machine(device),
        "device": device,
        "gpu_lent": cuda,
        "load_average_start_end": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        "unique_xr_version": unique_xr.__version__,
        "weights": "random (seeded) weights of the preset's shape; speed does not depend on training",
        "scheme_shape": {"scheme": "s2" if args.aux_classes else "s1", "aux_classes": args.aux_classes,
                         "cond_channels": model.norm.cond_channels},
        "timed_preset": preset,
        "model_size": sizes,
        "network_evaluations": network,
        "sampling": sampling,
        "sampling_layout_chosen": {f"{p}_batch_{b}": ("channels_last" if cl else "nchw")
                                   for (p, b), cl in layout.items()},
        "bf16_vs_fp32_sampling": {"batch": sample_batch, **ratios},
        "batch_effect_tiles_per_s": {"steps": batch_steps, "precision": default_precision, "by_batch": batch_effect},
        "tiling": tiling,
        "training": training,
        "derived": derive(sampling, sizes[preset], device),
        "h100_hour_goal": h100_goal({p: sizes[p] for p in dict.fromkeys(["cpu", "large", preset])}, steps_list),
        "total_seconds": round(time.perf_counter() - t_start, 1),
        "section_seconds": sections,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()
