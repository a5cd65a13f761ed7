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
g. **few-step sampling** (issue 17), on scheme S3's shape (S2's channels and the 7 prior channels)
   with distilled students for 1, 2 and 4 evaluations stored as ``unique_xr.downscale.distillation``
   stores them: tiles/s and pixel-days/s (one member of one pixel = one pixel-day) at ``--evals``
   network evaluations (the students where they exist, DDIM with the full network otherwise)
   through ``Downscaler.sampler_fn``, fp32 and bf16 interleaved; the ratios to ``--reference-steps``
   DDIM steps and bf16/fp32; FLOPs per tile (evaluations x counted FLOPs per evaluation); the default
   output (``predict_region`` with ``DEFAULT_MEMBERS`` members) against one member; the national
   year in hours and CPU core-hours of this machine and in H100-hours at the counted FLOPs
   (arithmetic against the H100's published peak). On CUDA (or with ``--sweep``) also the sweep
   of ``--batches`` x NCHW/channels_last x ``torch.compile`` off/on x ``--evals`` on device tensors.

``--sections`` runs a subset (``few_step`` alone: about 3 minutes on 2 shared cores with
``--budget-s 170``); ``--budget-s`` skips what would end after the budget and records it as
skipped. ``benchmarks/gpu_check.sh`` runs g and ``pytest -m gpu`` on a GPU machine in 8 minutes.
Run from the repository root::

    python benchmarks/bench_downscale.py                 # CPU, the "cpu" preset, ~9 min on 2 shared cores
    python benchmarks/bench_downscale.py --device cuda   # GPU, the "large" preset in bf16
    python benchmarks/bench_downscale.py --sections few_step --budget-s 170

Results go to ``--out`` (default ``benchmarks/results/downscale.json``, ``downscale_<sections>.json``
for a subset, ``_cuda`` before ``.json`` with ``--device cuda``; g also writes a ``.md`` beside
it) with the command that made them and the machine they ran on.
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


def make_model(preset: str, aux_classes: int, seed: int = 0, prior: bool = False, **overrides):
    """A random-weight :class:`~unique_xr.downscale.model.Downscaler` of ``preset``'s shape.

    ``prior=True`` gives scheme S3's shape: S2's conditioning followed by the prior channels.
    """
    import torch

    from unique_xr.downscale.conditioning import AuxSpec, Normalisation
    from unique_xr.downscale.config import DownscaleConfig
    from unique_xr.downscale.model import Downscaler

    config = DownscaleConfig.preset(preset, seed=seed, **overrides)
    aux = ()
    if aux_classes:
        aux = (AuxSpec(name="dem", kind="continuous", mean=300.0, std=150.0),
               AuxSpec(name="landcover", kind="categorical", classes=WORLDCOVER_CLASSES[:aux_classes]))
    norm = Normalisation(field_mean=3.0, field_std=2.0, residual_std=1.0, aux=aux, prior=prior)
    model = Downscaler.new(config, norm, "s3" if prior else ("s2" if aux_classes else "s1"))
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
    """``(batch, C, tile, tile)`` conditioning cut from a synthetic field with the model's own transform.

    An S3-shaped model gets a synthetic prior: a fine image 8 days old whose coarse field differs
    from today's.
    """
    from unique_xr.downscale.conditioning import PriorFields, upsample_bilinear

    side = max(FACTOR * 2, -(-tile // FACTOR) * FACTOR)
    tiles = []
    for i in range(batch):
        coarse, aux = synthetic_field(side, aux_classes, seed=seed + i)
        up = upsample_bilinear(coarse.values, FACTOR)
        prior = None
        if model.norm.prior:
            rng = np.random.default_rng(seed + i)
            prior = PriorFields(fine=up + 0.5 * rng.standard_normal(up.shape), coarse=up - 0.3,
                                age=np.full(up.shape, 8.0), observed=1.0, doy=200.0)
        cond = model.norm.conditioning(up, [a.values for a in aux], prior=prior)
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

    for net in (model.net, *model.students.values()):
        net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    return model


def _variant(precision: str, channels_last: bool) -> str:
    return f"{precision}{'_channels_last' if channels_last else ''}"


# --------------------------------------------------------------------------------------------
# a. size


def model_size(preset: str, aux_classes: int, prior: bool = False) -> dict:
    """Parameters and FLOPs of one network evaluation of one tile (counted on the meta device).

    ``prior=True`` counts scheme S3's shape (S2's channels and the prior channels).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from unique_xr.downscale.conditioning import PRIOR_CHANNELS
    from unique_xr.downscale.config import DownscaleConfig
    from unique_xr.downscale.net import ConditionalUNet, count_parameters

    cfg = DownscaleConfig.preset(preset)
    cond = 2 + (1 + aux_classes if aux_classes else 0) + (len(PRIOR_CHANNELS) if prior else 0)
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
# g. few-step sampling

#: Evaluations of the distilled students given to the model of g, as ``unique_xr.downscale.distillation`` stores them.
STUDENT_STEPS = (1, 2, 4)
#: Seconds a compiled group of the GPU sweep needs left before it starts (the compilation is not interruptible).
MIN_COMPILE_SECONDS = 90.0


def add_students(model, steps=STUDENT_STEPS, from_steps: int = 16):
    """Give ``model`` distilled students of ``steps`` evaluations the way the library stores them.

    The students are copies of the network, random weights included: a student costs what its
    teacher costs per evaluation, which is all a speed benchmark needs.
    """
    import copy

    model.students = {n: copy.deepcopy(model.net).eval() for n in steps}
    model.distilled = {"steps": list(steps), "from_steps": from_steps}
    return model


def run_budgeted(fns: dict, estimates: dict, device: str, repeat: int, deadline: float | None) -> tuple[dict, dict]:
    """Best wall seconds of each callable over up to ``repeat`` interleaved rounds, within ``deadline``.

    A callable runs in a round only when its estimate (the longest it took so far, else
    ``estimates[name]``) ends before ``deadline`` (``time.perf_counter()`` seconds; None: no limit).
    Returns ``(timed, skipped)``: ``timed[name]`` has ``seconds`` (best), ``runs`` and the process CPU
    seconds per wall second of the best run; ``skipped[name]`` the estimate of a callable that never ran.
    """
    timed: dict = {}
    for _ in range(max(1, repeat)):
        for name, fn in fns.items():
            guess = timed[name]["longest"] if name in timed else estimates[name]
            if deadline is not None and time.perf_counter() + guess > deadline:
                continue
            _sync(device)
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            _sync(device)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            r = timed.setdefault(name, {"runs": 0, "longest": 0.0})
            r["runs"] += 1
            r["longest"] = max(r["longest"], wall)
            if "seconds" not in r or wall < r["seconds"]:
                r.update(seconds=wall, cpu_seconds_per_wall_second=round(cpu / wall, 2))
    for r in timed.values():
        r.pop("longest")
    skipped = {name: {"estimated_seconds": round(estimates[name], 2),
                      "reason": "would have ended after the time budget (--budget-s)"}
               for name in fns if name not in timed}
    return timed, skipped


def _rates(seconds: float, batch: int, evaluations: int, size: dict) -> dict:
    """Tiles/s, pixel-days/s (one member: each tile adds ``(tile - overlap)^2`` new pixels) and FLOP/s."""
    tiles_s = batch / seconds
    return {"tiles_per_s": round(tiles_s, 4),
            "pixel_days_per_s": round(tiles_s * size["new_pixels_per_tile"], 1),
            "tile_evaluations_per_s": round(tiles_s * evaluations, 3),
            "achieved_tflop_per_s": round(tiles_s * evaluations * size["gflop_per_tile_evaluation"] / 1e3, 5)}


def national_year(pixel_days_per_s: float, cpu_seconds_per_wall_second: float | None, members: int) -> dict:
    """Hours of the measuring machine for a national year at ``pixel_days_per_s`` (arithmetic)."""
    hours = NATIONAL_YEAR_PIXEL_DAYS / pixel_days_per_s / 3600
    out = {"machine_hours_one_member": round(hours, 1), f"machine_hours_default_output_{members}_members":
           round(hours * members, 1)}
    if cpu_seconds_per_wall_second is not None:
        out["cpu_core_hours_one_member"] = round(hours * cpu_seconds_per_wall_second, 1)
        out[f"cpu_core_hours_default_output_{members}_members"] = round(hours * cpu_seconds_per_wall_second * members, 1)
    return out


def h100_arithmetic(sizes: dict, evaluations, members: int) -> dict:
    """H100-hours of a national year at the counted FLOPs against the H100's published bf16 peak."""
    out = {"method": "arithmetic, not measured: national-year FLOPs = 40 G pixel-days / new pixels per tile x "
                     "evaluations x counted FLOPs per evaluation; hours at NVIDIA's published dense bf16 peak of an "
                     f"H100 SXM ({H100_SXM_BF16_DENSE_FLOPS / 1e12:.0f} TFLOP/s; a spec, not a measurement) and at "
                     "35 % of it (what a UNet of this size may reach; an assumption)"}
    for preset, s in sizes.items():
        tiles = NATIONAL_YEAR_PIXEL_DAYS / s["new_pixels_per_tile"]
        rows = {}
        for n in evaluations:
            flops = tiles * n * s["gflop_per_tile_evaluation"] * 1e9
            at_peak = flops / H100_SXM_BF16_DENSE_FLOPS / 3600
            rows[str(n)] = {"pflop_one_member": round(flops / 1e15, 1),
                            "h100_hours_at_peak_one_member": round(at_peak, 3),
                            "h100_hours_at_35_percent_one_member": round(at_peak / 0.35, 3),
                            f"h100_hours_at_peak_default_output_{members}_members": round(at_peak * members, 3),
                            f"h100_hours_at_35_percent_default_output_{members}_members":
                                round(at_peak * members / 0.35, 3)}
        out[preset] = {"cond_channels": s["cond_channels"], "gflop_per_tile_evaluation": s["gflop_per_tile_evaluation"],
                       "new_pixels_per_tile": s["new_pixels_per_tile"], "by_evaluations": rows}
    return out


def bench_few_step(model, evaluations, precisions, batch: int, device: str, repeat: int, aux_classes: int,
                   size: dict, reference: int, deadline: float | None) -> dict:
    """Tiles/s of the distilled students and of DDIM through ``Downscaler.sampler_fn``, precisions interleaved.

    Also the default output (``predict_region`` with :data:`DEFAULT_MEMBERS` members on one tile)
    against one member's sampler call, at the fewest evaluations, in ``precisions[0]``.
    """
    from unique_xr.downscale.config import DEFAULT_MEMBERS
    from unique_xr.downscale.tiling import TilePlan, predict_region

    tile = model.config.tile
    cond = conditioning_tiles(model, batch, tile, aux_classes)
    noise = tile_noise(batch, tile)
    fns, meta, estimates = {}, {}, {}
    # untimed first calls of one evaluation (the fewest-step student, the teacher) give the seconds per evaluation
    per_eval = {}
    for precision in precisions:
        firsts = [(1, model.sampler_fn(steps=1, sampler="ddim", device=device, precision=precision))]
        if model.students:
            n = min(model.students)
            firsts.append((n, model.sampler_fn(steps=n, device=device, precision=precision)))
        for n, sample in firsts:
            _sync(device)
            t0 = time.perf_counter()
            sample(cond, lambda k: noise)
            _sync(device)
            per_eval[precision] = min(per_eval.get(precision, math.inf), (time.perf_counter() - t0) / n)

    fewest, first = min(evaluations), precisions[0]
    one_tile = TilePlan.make((tile, tile), tile=tile, overlap=model.config.overlap, stride=model.stride)
    default_sample = model.sampler_fn(steps=fewest, device=device, precision=first)
    fns["default_output_predict_region"] = lambda: predict_region(default_sample, cond[0], (0, 0), (0, tile, 0, tile),
                                                                  one_tile, members=DEFAULT_MEMBERS, batch_size=batch)
    fns["one_member_sampler_fn"] = lambda: default_sample(cond[:1], lambda k: noise[:1])
    estimates["default_output_predict_region"] = DEFAULT_MEMBERS * fewest * per_eval[first]
    estimates["one_member_sampler_fn"] = fewest * per_eval[first]
    for n in evaluations:
        for precision in precisions:
            distilled = n in model.students
            name = f"{precision}_{'distilled' if distilled else 'ddim'}_{n}"
            sample = model.sampler_fn(steps=n, sampler=None if distilled else "ddim", device=device,
                                      precision=precision)
            fns[name] = lambda sample=sample: sample(cond, lambda k: noise)
            estimates[name] = n * per_eval[precision] * 1.1
            meta[name] = {"precision": precision, "evaluations": n, "batch": batch,
                          "sampler": (f"distilled student ({n} evaluations, nested_steps)" if distilled
                                      else f"DDIM, {n} steps, full network")}
    timed, skipped = run_budgeted(fns, estimates, device, repeat, deadline)

    runs = {}
    for name, m in meta.items():
        if name in timed:
            t = timed[name]
            runs[name] = {**m, **t, "seconds": round(t["seconds"], 4), **_rates(t["seconds"], batch, m["evaluations"], size),
                          "gflop_per_tile_one_member": round(m["evaluations"] * size["gflop_per_tile_evaluation"], 3)}
    vs_reference, bf16_vs_fp32 = {}, {}
    for precision in precisions:
        ref = runs.get(f"{precision}_ddim_{reference}")
        if ref:
            vs_reference[precision] = {str(r["evaluations"]): round(r["tiles_per_s"] / ref["tiles_per_s"], 3)
                                       for r in runs.values() if r["precision"] == precision}
    for n in evaluations:
        pair = [r for r in runs.values() if r["evaluations"] == n]
        by = {r["precision"]: r["tiles_per_s"] for r in pair}
        if "bf16" in by and "fp32" in by:
            bf16_vs_fp32[str(n)] = round(by["bf16"] / by["fp32"], 3)
    cpu = not device.startswith("cuda")
    national = {name: {"pixel_days_per_s": r["pixel_days_per_s"],
                       **national_year(r["pixel_days_per_s"], r["cpu_seconds_per_wall_second"] if cpu else None,
                                       DEFAULT_MEMBERS)}
                for name, r in runs.items()}
    default_output = {"members": DEFAULT_MEMBERS, "evaluations": fewest, "precision": first,
                      "note": "the default output (predict / ds.gpp.downscale without --members) is the mean of "
                              f"{DEFAULT_MEMBERS} members: {DEFAULT_MEMBERS} samples per pixel-day"}
    if {"default_output_predict_region", "one_member_sampler_fn"} <= set(timed):
        s_default = timed["default_output_predict_region"]["seconds"]
        s_one = timed["one_member_sampler_fn"]["seconds"]
        default_output.update(predict_region_seconds=round(s_default, 4), one_member_seconds=round(s_one, 4),
                              runs=timed["default_output_predict_region"]["runs"],
                              default_output_vs_one_member_cost=round(s_default / s_one, 3))
    return {
        "method": "Downscaler.sampler_fn (numpy in and out, what predict_region calls) on the same tiles and noise "
                  f"for every configuration; the students for {sorted(model.students)} evaluations (sampler "
                  "chosen by steps=), DDIM with the full network otherwise; precisions and evaluation counts "
                  "interleaved in each round",
        "batch": batch, "precisions": list(precisions), "reference": f"ddim_{reference}",
        "estimated_seconds_per_evaluation": {p: round(v, 4) for p, v in per_eval.items()},
        "runs": runs,
        "skipped": skipped,
        f"vs_ddim_{reference}_tiles_per_s": vs_reference,
        "bf16_vs_fp32_tiles_per_s": bf16_vs_fp32,
        "default_output": default_output,
        "national_year": {"method": "arithmetic from the measured pixel-days/s, not measured: hours = 40 G "
                                    "pixel-days / pixel-days per s / 3600; CPU core-hours = those hours x the "
                                    "process CPU seconds per wall second of the run; the default output costs "
                                    f"{DEFAULT_MEMBERS}x one member",
                          "by_run": national},
    }


def bench_few_step_sweep(model, evaluations, batches, compile_modes, precision: str, device: str, repeat: int,
                         aux_classes: int, size: dict, deadline: float | None, save=None) -> dict:
    """The GPU sweep: batch sizes x NCHW/channels_last x eager/``torch.compile`` x evaluations, within ``deadline``.

    Tensors stay on the device (``Diffusion.sample`` with the net and steps ``sampler_fn`` would
    choose), so the figures are the network's and the sampler's, without host transfers. Groups run
    eager first; a group that cannot start before the deadline (a compiled one needs
    :data:`MIN_COMPILE_SECONDS`) is recorded as skipped. ``save(partial)`` is called after each group.
    """
    import torch

    from unique_xr.downscale.diffusion import nested_steps
    from unique_xr.downscale.model import autocast

    tile, largest = model.config.tile, max(batches)
    few = conditioning_tiles(model, min(largest, 16), tile, aux_classes)
    cond_all = torch.from_numpy(np.concatenate([few] * -(-largest // len(few)))[:largest]).to(device)
    noise_all = torch.randn(largest, 1, tile, tile, generator=torch.Generator().manual_seed(0)).to(device)

    def net_and_steps(n):
        if n in model.students:
            return model.students[n], nested_steps(model.config.timesteps, n)
        return model.net, None

    def left():
        return math.inf if deadline is None else deadline - time.perf_counter()

    out = {"method": "Diffusion.sample on device tensors, the network and diffusion steps sampler_fn chooses "
                     f"(students for {sorted(model.students)} evaluations, DDIM otherwise), {precision} autocast",
           "precision": precision, "batches": list(batches), "evaluations": list(evaluations),
           "groups": {}, "runs": {}, "skipped": {}}
    for compiled in compile_modes:
        for channels_last in (True, False):
            group = f"{'compiled' if compiled else 'eager'}_{'channels_last' if channels_last else 'nchw'}"
            need = MIN_COMPILE_SECONDS if compiled else 5.0
            if left() < need:
                out["skipped"][group] = {"reason": f"less than {need:.0f} s of the time budget left", "left_s": round(left(), 1)}
                continue
            _memory_format(model, channels_last)
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            wrapped: dict = {}
            if compiled:  # one compiled graph per batch and layout: more than dynamo's default 8 per function
                import torch._dynamo

                for key in ("recompile_limit", "cache_size_limit"):
                    if hasattr(torch._dynamo.config, key):
                        setattr(torch._dynamo.config, key, max(64, getattr(torch._dynamo.config, key)))

            def runner(net, compiled=compiled, wrapped=wrapped):
                if not compiled:
                    return net
                if id(net) not in wrapped:
                    wrapped[id(net)] = torch.compile(net, dynamic=False)
                return wrapped[id(net)]

            def call(net, c, z, n, ts):
                with autocast(device, precision):
                    return model.diffusion.sample(net, c, noise=lambda k: z, sampler="ddim", steps=n, clip=8.0, ts=ts)

            info = {"compiled": compiled, "channels_last": channels_last, "first_call_seconds": {}, "errors": {}}
            fns, estimates, meta = {}, {}, {}
            for b in sorted(batches, reverse=compiled):  # compiled: the largest batch first, the figure that counts
                if left() < (need if not fns else 5.0):
                    info["errors"][str(b)] = "not started: time budget"
                    continue
                c = cond_all[:b].contiguous(memory_format=fmt)
                z = noise_all[:b].contiguous(memory_format=fmt)
                try:
                    # one-evaluation calls of each network used: the first compiles it (or autotunes cuDNN);
                    # a compiled one runs at its speed from about the third call
                    firsts = []
                    for net in dict.fromkeys(net_and_steps(n)[0] for n in evaluations):
                        calls = []
                        for _ in range(3 if compiled else 1):
                            _sync(device)
                            t0 = time.perf_counter()
                            call(runner(net), c, z, 1, None)
                            _sync(device)
                            calls.append(round(time.perf_counter() - t0, 4))
                        firsts.append(calls)
                except (RuntimeError, ImportError, OSError) as err:  # out of memory, a compiler failure: recorded
                    info["errors"][str(b)] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                    if device.startswith("cuda"):
                        torch.cuda.empty_cache()
                    continue
                info["first_call_seconds"][str(b)] = firsts
                per_eval = max(calls[-1] for calls in firsts)
                for n in evaluations:
                    net, ts = net_and_steps(n)
                    net = runner(net)
                    name = f"{group}_batch_{b}_evals_{n}"
                    fns[name] = lambda net=net, c=c, z=z, n=n, ts=ts: call(net, c, z, n, ts)
                    estimates[name] = n * per_eval * 1.1
                    meta[name] = {"group": group, "compiled": compiled, "channels_last": channels_last, "batch": b,
                                  "evaluations": n, "sampler": "distilled" if n in model.students else "ddim"}
            timed, skipped = run_budgeted(fns, estimates, device, repeat, deadline)
            for name, m in meta.items():
                if name in timed:
                    t = timed[name]
                    rates = _rates(t["seconds"], m["batch"], m["evaluations"], size)
                    out["runs"][name] = {**m, "seconds": round(t["seconds"], 5), "runs": t["runs"], **rates,
                                         "share_of_h100_bf16_peak": round(rates["achieved_tflop_per_s"] * 1e12
                                                                          / H100_SXM_BF16_DENSE_FLOPS, 4)}
            out["skipped"].update(skipped)
            out["groups"][group] = info
            wrapped.clear()
            if save is not None:
                save(out)
    _memory_format(model, False)
    best = {}
    for r in out["runs"].values():
        key = str(r["evaluations"])
        if key not in best or r["tiles_per_s"] > best[key]["tiles_per_s"]:
            best[key] = {k: r[k] for k in ("group", "batch", "tiles_per_s", "pixel_days_per_s", "achieved_tflop_per_s")}
            best[key]["national_year_hours_of_this_gpu_one_member"] = round(
                NATIONAL_YEAR_PIXEL_DAYS / r["pixel_days_per_s"] / 3600, 3)
    out["best_by_evaluations"] = best
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


def few_step_markdown(record: dict) -> str:
    """The few-step section of ``record`` as the Markdown page written next to the JSON."""
    fs, machine = record["few_step"], record["machine"]
    size = fs["model_size"]
    runs, ref = fs["runs"], fs["reference"]
    members = fs["default_output"]["members"]
    load = record["load_average_start_end"]
    lines = [
        f"# bench_downscale, few-step sampling: distilled students against DDIM ({record['device']})", "",
        "```bash", record["command"], "```", "",
        f"Machine: {machine.get('cpu_model', '?')}, {machine['cpus']} CPUs, torch {machine['torch']} "
        f"(intra-op threads: {machine['torch_threads']}; CPU capability {machine['torch_cpu_capability']})"
        + (f", GPU {machine['gpu']}" if "gpu" in machine else "") + f"; load average {load[0]} -> {load[1]} "
        "(1-minute, start -> end). The machine was shared: absolute rates are under that load; the ratios compare "
        "configurations run interleaved in the same rounds.", "",
        (f"Model: scheme S3's shape ({size['cond_channels']} conditioning channels) of the `{size['preset']}` preset, "
        f"random weights, students for {fs['students']} evaluations stored as `distill` stores them; tile "
        f"{size['tile']}, overlap {size['overlap']} ({size['new_pixels_per_tile']:,} new pixels per tile); "
        f"{size['gflop_per_tile_evaluation']} GFLOP per network evaluation of one tile (counted). Batch "
        f"{fs['batch']} tile(s); one member of one tile = {size['new_pixels_per_tile']:,} pixel-days."), "",
        (f"| evaluations | sampler | precision | tiles/s | pixel-days/s | vs {ref.replace('_', ' ').upper()} | "
        "GFLOP per tile | runs | CPU s per wall s |"),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    vs = fs[f"vs_{ref}_tiles_per_s"]
    for r in sorted(runs.values(), key=lambda r: (r["evaluations"], r["precision"] != "fp32")):
        ratio = vs.get(r["precision"], {}).get(str(r["evaluations"]))
        lines.append(f"| {r['evaluations']} | {r['sampler'].split(' (')[0].split(',')[0]} | {r['precision']} | "
                     f"{r['tiles_per_s']:.4g} | {r['pixel_days_per_s']:,.0f} | "
                     f"{'' if ratio is None else f'{ratio:.2f}x'} | {r['gflop_per_tile_one_member']:.4g} | "
                     f"{r['runs']} | {r['cpu_seconds_per_wall_second']} |")
    if fs["bf16_vs_fp32_tiles_per_s"]:
        lines += ["", "bf16 / fp32 tiles/s at the same evaluations: " + ", ".join(
            f"{n}: {v:.2f}x" for n, v in fs["bf16_vs_fp32_tiles_per_s"].items()) + "."]
    d = fs["default_output"]
    if "default_output_vs_one_member_cost" in d:
        lines += ["", (f"Default output ({members} members, `predict_region` over one tile, {d['evaluations']} "
                      f"evaluation(s), {d['precision']}): {d['predict_region_seconds']} s against "
                      f"{d['one_member_seconds']} s for one member's sampler call: "
                      f"**{d['default_output_vs_one_member_cost']}x**.")]
    lines += ["", "National year (40 G pixel-days; arithmetic from the rates above, not measured):", "",
              ("| evaluations | precision | hours of this machine, one member | CPU core-hours, one member | "
              f"CPU core-hours, default output ({members} members) |"), "| --- | --- | --- | --- | --- |"]
    for name, n in fs["national_year"]["by_run"].items():
        r = runs[name]
        lines.append(f"| {r['evaluations']} | {r['precision']} | {n['machine_hours_one_member']:,.0f} | "
                     f"{n.get('cpu_core_hours_one_member', float('nan')):,.0f} | "
                     f"{n.get(f'cpu_core_hours_default_output_{members}_members', float('nan')):,.0f} |")
    h100 = fs["h100_arithmetic"]
    lines += ["", ("H100-hours of a national year at the counted FLOPs against NVIDIA's published dense bf16 peak of "
                  f"an H100 SXM ({H100_SXM_BF16_DENSE_FLOPS / 1e12:.0f} TFLOP/s: a spec, not a measurement), and at "
                  "35 % of it (an assumption):"), "",
              ("| preset | evaluations | PFLOP, one member | at peak, one member | at peak, default output | "
              "at 35 %, one member | at 35 %, default output |"), "| --- | --- | --- | --- | --- | --- | --- |"]
    for preset, p in h100.items():
        if preset == "method":
            continue
        for n, row in p["by_evaluations"].items():
            lines.append(f"| {preset} | {n} | {row['pflop_one_member']:,} | {row['h100_hours_at_peak_one_member']} | "
                         f"{row[f'h100_hours_at_peak_default_output_{members}_members']} | "
                         f"{row['h100_hours_at_35_percent_one_member']} | "
                         f"{row[f'h100_hours_at_35_percent_default_output_{members}_members']} |")
    if fs["skipped"]:
        lines += ["", "Skipped (time budget): " + ", ".join(
            f"{k} (estimated {v['estimated_seconds']} s)" for k, v in fs["skipped"].items()) + "."]
    sweep = fs.get("sweep")
    if sweep:
        lines += ["", f"## Sweep ({sweep['precision']}, tensors on the device)", "",
                  "| group | batch | evaluations | tiles/s | pixel-days/s | TFLOP/s | share of H100 bf16 peak | runs |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in sweep["runs"].values():
            lines.append(f"| {r['group']} | {r['batch']} | {r['evaluations']} | {r['tiles_per_s']:.4g} | "
                         f"{r['pixel_days_per_s']:,.0f} | {r['achieved_tflop_per_s']} | "
                         f"{r['share_of_h100_bf16_peak']} | {r['runs']} |")
        if sweep["skipped"]:
            lines += ["", "Skipped: " + ", ".join(sorted(sweep["skipped"])) + "."]
    if not record["gpu_lent"]:
        lines += ["", ("No GPU was lent for this run: there is no GPU figure here (`benchmarks/gpu_check.sh` makes "
                      "them on a machine with CUDA).")]
    return "\n".join(lines) + "\n"


SECTIONS = ("network", "sampling", "tiling", "training", "few_step")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (bf16 autocast, channels_last on CUDA)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="sections to run: network (a, b), sampling (c, f), tiling (d), training (e), "
                             "few_step (g); default all")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="time budget of the run in seconds: sections (and the runs of g) that would end "
                             "after it are skipped and recorded as skipped (default: none)")
    parser.add_argument("--preset", default=None, help="timed network: default 'cpu' on CPU, 'large' on CUDA")
    parser.add_argument("--aux-classes", type=int, default=len(WORLDCOVER_CLASSES),
                        help="land-cover classes of the S2 conditioning (0: scheme S1)")
    parser.add_argument("--steps", nargs="+", type=int, default=[10, 25, 50], help="DDIM steps for c")
    parser.add_argument("--batches", nargs="+", type=int, default=None,
                        help="tiles per batch for b and g's GPU sweep (default 1 4 8 on CPU, 16 64 256 on CUDA)")
    parser.add_argument("--sample-batch", type=int, default=None,
                        help="tiles per batch of the steps sweep in c and of g (default 1 on CPU, 64 on CUDA)")
    parser.add_argument("--compare-steps", nargs="+", type=int, default=None,
                        help="DDIM steps at which the other precision is sampled too (default: all on CUDA, "
                             "the first of --steps on CPU)")
    parser.add_argument("--batch-steps", type=int, default=10, help="DDIM steps of the batch-size effect in c")
    parser.add_argument("--field", type=int, default=None, help="fine field side for d (default 512 CPU, 2048 CUDA)")
    parser.add_argument("--chunk", type=int, default=None, help="Dask chunk side for d (default 256 CPU, 1024 CUDA)")
    parser.add_argument("--tiling-steps", type=int, default=1, help="DDIM steps in d (overhead is per tile)")
    parser.add_argument("--tiling-batch", type=int, default=None, help="tile batch in d (default 8 CPU, 64 CUDA)")
    parser.add_argument("--threads", type=int, default=None, help="Dask threads in d (default: CPUs; 2 on CUDA)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's, one per core); 1 on a machine other jobs "
                             "load, where threads that wait for each other slow every operation")
    parser.add_argument("--train-steps", type=int, default=None, help="optimiser steps timed in e (5 CPU, 50 CUDA)")
    parser.add_argument("--evals", nargs="+", type=int, default=[1, 2, 4, 20, 50],
                        help="network evaluations per tile in g: the students' counts (1 2 4) use them, the "
                             "others DDIM with the full network")
    parser.add_argument("--reference-steps", type=int, default=20, help="DDIM steps the rates of g are compared to")
    parser.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=None,
                        help="g's sweep of batches x layouts x torch.compile x evaluations (default: on CUDA only)")
    parser.add_argument("--compile", choices=("off", "on", "both"), default=None,
                        help="torch.compile in the sweep (default both on CUDA, off on CPU)")
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs (interleaved)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for the smoke test (seconds)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default results/downscale.json, downscale_<sections>.json for a subset; "
                             "_cuda before .json on CUDA); g also writes a .md beside it")
    args = parser.parse_args(argv)

    import torch

    import unique_xr
    from unique_xr.downscale.conditioning import PRIOR_CHANNELS
    from unique_xr.downscale.config import DEFAULT_MEMBERS
    from unique_xr.downscale.model import resolve_device

    t_start = time.perf_counter()
    deadline = None if args.budget_s is None else t_start + args.budget_s
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    device = resolve_device(args.device)
    cuda = device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True
    selected = [s for s in SECTIONS if s in args.sections]
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
    evaluations, reference = sorted(set(args.evals)), args.reference_steps
    sweep = cuda if args.sweep is None else args.sweep
    compile_modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile or ("both" if cuda else "off")]
    evals = 10 if cuda else 1
    if args.quick:
        preset = "quick"
        batches, sample_batch, tiling_batch, train_steps = [1, 2], 1, 4, 2
        steps_list, compare_steps, batch_steps, field, chunk, repeat, evals = [2, 3], [2], 2, 64, 32, 1, 1
        evaluations, reference = [1, 2, 4, 8], 8
    if reference not in evaluations or reference in STUDENT_STEPS:
        parser.error(f"--reference-steps {reference} must be one of --evals {evaluations} and not a student's "
                     f"count {STUDENT_STEPS} (it names a DDIM run).")
    suffix = "" if selected == list(SECTIONS) else "_" + "_".join(selected)
    out_path = args.out or RESULTS / f"downscale{suffix}{'_cuda' if cuda else ''}.json"
    command = "python benchmarks/bench_downscale.py " + " ".join(argv if argv is not None else sys.argv[1:])
    load_start = os.getloadavg()
    # the device's default precision ("auto": bf16 on CUDA, fp32 on CPU) at every size; the other
    # one at the smallest and largest batch (on CPU without native bf16 it is several times slower)
    default_precision = "bf16" if cuda else "fp32"
    other_precision = "fp32" if cuda else "bf16"
    ends = sorted({min(batches), max(batches)})

    record = {
        "benchmark": "diffusion downscaling: network, DDIM sampler, tiling, Dask, training, few-step sampling; "
                     "national arithmetic",
        "command": command,
        "machine": _machine(device),
        "device": device,
        "gpu_lent": cuda,
        "load_average_start_end": [round(load_start[0], 2), None],
        "unique_xr_version": unique_xr.__version__,
        "weights": "random (seeded) weights of the preset's shape; speed does not depend on training",
        "timed_preset": preset,
        "sections_run": [],
        "sections_skipped": {},
    }
    sections: dict = {}

    def save() -> None:
        record["load_average_start_end"][1] = round(os.getloadavg()[0], 2)
        record["total_seconds"] = round(time.perf_counter() - t_start, 1)
        record["section_seconds"] = sections
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(record, indent=2) + "\n")
        if "few_step" in record:
            out_path.with_suffix(".md").write_text(few_step_markdown(record))

    def start(section: str) -> bool:
        if section not in selected:
            return False
        if deadline is not None and time.perf_counter() >= deadline:
            record["sections_skipped"][section] = "the time budget (--budget-s) was spent before it started"
            return False
        record["sections_run"].append(section)
        return True

    clock = time.perf_counter()
    sizes = {p: model_size(p, args.aux_classes) for p in dict.fromkeys(["cpu", "large", preset])}
    record["model_size"] = sizes
    record["h100_hour_goal"] = h100_goal(sizes, steps_list)
    model, tile, network, layout = None, None, None, {}
    if any(s in selected for s in ("network", "sampling", "tiling")):
        model = make_model(preset, args.aux_classes)
        model.to(device)
        tile = model.config.tile
        record["scheme_shape"] = {"scheme": model.scheme, "aux_classes": args.aux_classes,
                                  "cond_channels": model.norm.cond_channels}
    if start("network"):
        variants = [(default_precision, False, batches), (default_precision, True, batches),
                    (other_precision, False, ends), (other_precision, True, ends)]
        network = bench_network(model, tile, batches, variants, device, repeat, evals, args.aux_classes)
        record["network_evaluations"] = network
        sections["a_b_size_and_network"], clock = round(time.perf_counter() - clock, 1), time.perf_counter()
        save()

    if start("sampling"):
        # each precision in the memory format that was faster in b (without b: channels_last on CUDA only)
        layout = {(p, b): best_layout(network, p, b) if network else cuda for p in ("fp32", "bf16")
                  for b in set(batches) | {sample_batch}}
        jobs = [(default_precision, layout[default_precision, sample_batch], s, sample_batch) for s in steps_list]
        jobs += [(other_precision, layout[other_precision, sample_batch], s, sample_batch) for s in compare_steps]
        jobs += [(default_precision, layout[default_precision, b], batch_steps, b) for b in batches
                 if b != sample_batch or batch_steps not in steps_list]
        sampling = bench_sampling(model, tile, jobs, device, repeat, args.aux_classes, device_resident=cuda)

        def rate(precision, steps, batch):
            return sampling[f"{_variant(precision, layout[precision, batch])}_ddim_{steps}_batch_{batch}"]["tiles_per_s"]

        record["sampling"] = sampling
        record["sampling_layout_chosen"] = {f"{p}_batch_{b}": ("channels_last" if cl else "nchw")
                                            for (p, b), cl in layout.items()}
        record["bf16_vs_fp32_sampling"] = {"batch": sample_batch, **{
            f"ddim_{s}": round(rate("bf16", s, sample_batch) / rate("fp32", s, sample_batch), 3)
            for s in compare_steps}}
        record["batch_effect_tiles_per_s"] = {"steps": batch_steps, "precision": default_precision,
                                              "by_batch": {str(b): rate(default_precision, batch_steps, b)
                                                           for b in batches}}
        record["derived"] = derive(sampling, sizes[preset], device)
        sections["c_sampling"], clock = round(time.perf_counter() - clock, 1), time.perf_counter()
        save()

    if start("tiling"):
        tiling = bench_tiling(model, field, chunk, args.tiling_steps, tiling_batch, device, default_precision,
                              threads, repeat, args.aux_classes)
        if network:
            per_eval = {r["batch"]: r["tile_evaluations_per_s"] for r in network.values()
                        if r["precision"] == default_precision and not r["channels_last"]}
            evals_per_s = per_eval.get(tiling_batch) or max(per_eval.values())
            overhead = tiling["overhead_direct"]["seconds_per_tile"]
            tiling["derived_overhead_share"] = {
                "method": "arithmetic: direct overhead per tile / (that + steps / network tile-evaluations per s at "
                          "this batch, NCHW, from b)",
                **{f"ddim_{s}": round(overhead / (overhead + s / evals_per_s), 4) for s in steps_list}}
        record["tiling"] = tiling
        sections["d_tiling_and_dask"], clock = round(time.perf_counter() - clock, 1), time.perf_counter()
        save()

    if start("training"):
        record["training"] = bench_training(preset, args.aux_classes, train_steps, device, repeat)
        sections["e_training"], clock = round(time.perf_counter() - clock, 1), time.perf_counter()
        save()

    if start("few_step"):
        del model  # one network at a time on the device
        s3_sizes = {p: model_size(p, args.aux_classes, prior=True) for p in dict.fromkeys(["cpu", "large", preset])}
        s3 = add_students(make_model(preset, args.aux_classes, prior=True))
        s3.to(device)
        precisions = [default_precision, other_precision]
        few_step = bench_few_step(s3, evaluations, precisions, sample_batch, device, repeat, args.aux_classes,
                                  s3_sizes[preset], reference, deadline)
        few_step = {"scheme_shape": {"scheme": "s3", "cond_channels": s3.norm.cond_channels,
                                     "s2_channels": s3.norm.cond_channels - len(PRIOR_CHANNELS),
                                     "prior_channels": list(PRIOR_CHANNELS)},
                    "students": sorted(s3.students), "distilled": s3.distilled, "model_size": s3_sizes[preset],
                    "evaluations": evaluations, "default_members": DEFAULT_MEMBERS, **few_step,
                    "h100_arithmetic": h100_arithmetic(s3_sizes, evaluations, DEFAULT_MEMBERS)}
        record["few_step"] = few_step
        save()
        if sweep:
            def save_sweep(partial):
                few_step["sweep"] = partial
                save()

            few_step["sweep"] = bench_few_step_sweep(
                s3, evaluations, batches, compile_modes, default_precision, device, repeat, args.aux_classes,
                s3_sizes[preset], deadline, save=save_sweep)
        sections["g_few_step"] = round(time.perf_counter() - clock, 1)

    save()
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()
