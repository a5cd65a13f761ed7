"""The national cube job: a spec in, a resumable, CF-compliant daily 30 m GPP cube out, on any Dask cluster.

:func:`run_cube` searches once, fits the downscaler on the region's own pairs (or takes one),
writes the store's template, then submits the work units in waves (at most ``in_flight`` at
once). Each unit is a bounded graph: data layer -> GPP_M -> blockwise downscaling -> Icechunk
writes from the workers; the client merges the workers' changes, checks every chunk of the unit
was written and commits it with the list of finished units. A rerun of the same spec continues
after the last commit; a finished job reruns in no time and changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unique_xr.errors import CubeStoreError, SpecError
from unique_xr.pipeline.progress import JobProgress, logger
from unique_xr.pipeline.spec import CubeJobSpec, read_spec
from unique_xr.pipeline.units import WorkUnit, plan_units

__all__ = ["CubeResult", "resolve_spec", "run_cube"]

DOWNSCALER_DIR = "downscaler"


@dataclass(frozen=True)
class CubeResult:
    """What :func:`run_cube` did: where the cube is, how many units exist / were done / ran now, how fast."""

    out: Path
    store: Path
    units_total: int
    units_done: int
    units_run: int
    snapshot: str
    seconds: float
    pixel_days_per_second: float
    stac: Path | None


def resolve_spec(spec_or_toml: CubeJobSpec | str | os.PathLike, out: str | os.PathLike | None = None) -> CubeJobSpec:
    """A spec from a :class:`CubeJobSpec` or a TOML path, with ``out`` (if given) as its output folder."""
    if isinstance(spec_or_toml, CubeJobSpec):
        spec = spec_or_toml if out is None else spec_or_toml.replace(out=str(out))
    elif isinstance(spec_or_toml, (str, os.PathLike)):
        spec = read_spec(spec_or_toml, out=str(out) if out is not None else None)
    else:
        raise SpecError(f"run_cube takes a CubeJobSpec or the path of a TOML spec, got {type(spec_or_toml).__name__}.")
    if spec.out is None:
        raise SpecError("No output folder: set [output] path in the spec or pass out= (CLI: --out DIR).")
    return spec


def check_store_spec(spec: CubeJobSpec, out: Path):
    """The store in ``out`` if it was made by this spec, None if there is none; another spec's is refused."""
    from unique_xr.write.store import CubeStore

    if not CubeStore.exists(out):
        return None
    store = CubeStore.open(out)
    meta = store.metadata
    if meta.get("job_token") == spec.token:
        return store
    try:
        theirs = json.loads(meta.get("job_spec", "{}"))
    except json.JSONDecodeError:
        theirs = {}
    diffs = spec.differences(theirs) or ["the model folders' contents (their card checksums differ)"]
    raise CubeStoreError(
        f"{out} holds a cube made from another spec; nothing was written. What differs: " + "; ".join(diffs) +
        ". Use another --out folder, or move that cube away to start over.")


@contextlib.contextmanager
def _cluster(client, *, scheduler: str | None, workers: int | None, threads_per_worker: int | None,
             resources: Mapping[str, float] | None):
    """The client to use: the one given, one connected to ``scheduler``, or a new LocalCluster."""
    from unique_xr._optional import import_optional

    distributed = import_optional("distributed", purpose="the national cube job")
    if client is not None:
        yield client
        return
    if scheduler:
        with distributed.Client(scheduler) as c:
            logger.info("connected to %s; dashboard %s", scheduler, c.dashboard_link)
            yield c
        return
    n = workers or max(1, min(4, (os.cpu_count() or 2) // (threads_per_worker or 1)))
    kw = {"resources": dict(resources)} if resources else {}
    with distributed.LocalCluster(n_workers=n, threads_per_worker=threads_per_worker or 1, processes=True,
                                  dashboard_address=":0", **kw) as cluster, distributed.Client(cluster) as c:
        logger.info("LocalCluster of %d workers x %d threads; dashboard %s", n, threads_per_worker or 1,
                    c.dashboard_link)
        yield c


def _load_models(spec: CubeJobSpec) -> dict[str, Any]:
    from unique_xr.models.lgbm import load_model

    models = {"gpp_m": load_model(spec.gpp_m)}
    if spec.gpp_l is not None:  # the downscaler's training pairs, and scheme S3's prior
        models["gpp_l"] = load_model(spec.gpp_l)
    for kind, model in models.items():
        if model.card.kind != kind:
            raise SpecError(f"[models] {kind} = {getattr(spec, kind)!r} is a {model.card.kind!r} model; give a "
                            f"{kind} model there.")
    return models


def _given_downscaler(spec: CubeJobSpec):
    """The downscaler folder of the spec, loaded (None: the job fits one); an S3 one needs a GPP_L model."""
    from unique_xr.downscale import load_downscaler

    if spec.downscaler == "fit":
        return None
    model = load_downscaler(spec.downscaler)
    if model.norm.prior and spec.gpp_l is None:
        raise SpecError(f"[models] downscaler = {spec.downscaler!r} is a scheme-s3 model: it conditions on the latest "
                        "GPP_L before each day, so the job needs [models] gpp_l = a GPP_L model folder.")
    return model


def _downscaler(spec: CubeJobSpec, out: Path, items, units, models, client, given=None):
    """The given downscaler, or the job's own: fitted once on the region's pairs and kept in ``out/downscaler``."""
    import dask

    from unique_xr.downscale import DownscaleConfig, fit, load_downscaler
    from unique_xr.pipeline import stages

    if given is not None:
        return given
    folder = out / DOWNSCALER_DIR
    if (folder / "card.json").is_file():
        model = load_downscaler(folder)
        if model.card.get("job_token") == spec.token:
            logger.info("using the downscaler fitted earlier by this job (%s)", folder)
            return model
    overrides = {"train_steps": spec.fit_steps} if spec.fit_steps else {}
    config = DownscaleConfig.preset(spec.fit_preset, seed=spec.seed, **overrides)
    # before any fitting: the fitted model's tiles must fit the blocks
    stages.check_chunk(spec, config.tile, hint=", or another [downscaling] fit_preset")
    in_period = [d for d in stages.landsat_dates(items[stages.LANDSAT]) if spec.start <= d <= spec.end]
    dates = stages.spread_dates(in_period, spec.fit_dates)
    chosen = stages.fit_units(units, spec.fit_units)
    logger.info("fitting the downscaler on %d units x %d Landsat dates (%s)", len(chosen), len(dates),
                ", ".join(dates))
    t0 = time.perf_counter()
    lazy = stages.fit_pairs(spec, items, chosen, dates, models)
    (computed,) = dask.compute(lazy, scheduler=client)
    coarse, fine, aux, used, history = stages.pairs_for_training(computed, dates)
    logger.info("%d training pairs computed in %.1f s", len(fine), time.perf_counter() - t0)
    partial = out / ".downscaler-partial"
    shutil.rmtree(partial, ignore_errors=True)
    use_aux = spec.scheme != "s1" and bool(aux)
    s3 = {"dates": [u.split("@")[1] for u in used], "groups": [u.split("@")[0] for u in used],
          "history": history} if spec.scheme == "s3" else {}
    model = fit(coarse, fine, aux=aux if use_aux else None, scheme=spec.scheme, factor=spec.coarse_factor,
                aux_kinds=["continuous"] * len(aux) if use_aux else None,
                config=config, out=partial,
                device=spec.device, **s3,
                card={"job_token": spec.token, "made_by": "unique-xr cube run", "fitted_on": used,
                      "prior_history": [f"{unit}@{day}" for day, unit, _ in history] if spec.scheme == "s3" else [],
                      "training_data": "the job's own region: GPP_M (coarse grid) -> GPP_L (30 m) on Landsat dates"})
    logger.info("downscaler fitted in %.1f s (%s steps)", time.perf_counter() - t0, model.config.train_steps)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)
    return load_downscaler(folder)


def _collect(*parts):
    """The ForkSessions of a unit's write tasks, flattened (each reduction gives one, maybe in an object array)."""
    out = []
    for part in parts:
        if isinstance(part, np.ndarray):
            out.extend(_collect(*part.ravel().tolist()))
        elif isinstance(part, (list, tuple)):
            out.extend(_collect(*part))
        else:
            out.append(part)
    return out


def _unit_graph(spec: CubeJobSpec, unit: WorkUnit, items, models, plan, store, classes):
    """The lazy writes of one unit: a delayed list of the workers' forks, and what the commit must check."""
    import dask
    import dask.array as dsa
    from icechunk.dask import computing_meta, extract_session, merge_sessions_array_kwargs

    from unique_xr.load.region import polygon_mask
    from unique_xr.pipeline import stages

    fine, _ = spec.grids
    days = spec.days[unit.days[0]: unit.days[1]]
    window = unit.window(plan.halo, fine.shape)
    s3 = plan.model.norm.prior
    history = stages.history_dates(spec, items, days) if s3 else []
    cubes = stages.data_layer(spec, items, window, days=[str(d.date()) for d in days], landsat_days=history,
                              landsat_may_be_cloudy=True)
    gpp = stages.gpp_stage(spec, cubes, {k: models[k] for k in (("gpp_m", "gpp_l") if s3 else ("gpp_m",))}, days=days)
    prior = stages.unit_prior(spec, gpp.get("gpp_l"), days) if s3 else None
    grid = fine.window(unit.rows, unit.cols)
    mask = polygon_mask(spec.region_geometry, grid) if spec.region_geometry is not None else None
    ds = stages.downscaled(spec, unit, gpp["gpp_m"], cubes["static"], plan, window=window, mask=mask, prior=prior)
    t, r, c = slice(*unit.days), slice(*unit.rows), slice(*unit.cols)
    sources, regions = {"gpp": (ds["gpp"].data, (t, r, c))}, {}
    if "gpp_spread" in ds:
        sources["gpp_spread"] = (ds["gpp_spread"].data, (t, r, c))
    if classes and unit.days[0] == 0:
        y0, x0 = unit.rows[0] - window[0], unit.cols[0] - window[2]
        static = cubes["static"].isel(y=slice(y0, y0 + grid.shape[0]), x=slice(x0, x0 + grid.shape[1]))
        lc = stages.dominant_class(static, classes)
        if lc is not None:
            if mask is not None:
                lc = lc.where(mask, 0).astype(np.uint8)
            sources["land_cover"] = (lc.data.rechunk(spec.chunk), (r, c))
    regions = {name: region for name, (_, region) in sources.items()}
    write, targets = store.begin_unit(list(sources), regions)
    stored = dsa.store([s for s, _ in sources.values()], targets, regions=list(regions.values()), compute=False,
                       return_stored=True, load_stored=False, lock=False)
    merged = [dsa.reduction(arr, name="ice-changeset", chunk=computing_meta(extract_session),
                            aggregate=computing_meta(merge_sessions_array_kwargs), split_every=None,
                            concatenate=False, keepdims=False, dtype=object, meta=np.array([object()], dtype=object))
              for arr in stored]
    # one delayed over the list: the arrays are optimised together, so the prediction they share runs once
    return dask.delayed(_collect)(merged), write


def run_cube(spec_or_toml: CubeJobSpec | str | os.PathLike, out: str | os.PathLike | None = None, client=None, *,
             scheduler: str | None = None, workers: int | None = None, threads_per_worker: int | None = None,
             progress: bool | None = None, stac: bool = True) -> CubeResult:
    """Run (or resume) the cube job of a spec; see the module docstring.

    Parameters
    ----------
    spec_or_toml
        A :class:`~unique_xr.pipeline.spec.CubeJobSpec` or the path of its TOML file.
    out
        Output folder (default: the spec's ``[output] path``): ``cube.icechunk`` (the store),
        ``downscaler/`` (a job-fitted model), ``stac/`` (the output catalog).
    client
        A ``distributed.Client`` to run on; else ``scheduler`` (an address) is connected to, else a
        ``LocalCluster`` of ``workers`` x ``threads_per_worker`` is started for the job.
    progress
        A live bar (True), log lines only (False), or a bar on a terminal (None).
    stac
        Write the output STAC Collection and Items when the job finishes.
    """
    from unique_xr import __version__
    from unique_xr._files import ensure_folder
    from unique_xr.pipeline import stages
    from unique_xr.search.collections import ESA_WORLDCOVER_CLASSES, IO_LULC_CLASSES
    from unique_xr.write.cf import cube_template, global_attrs
    from unique_xr.write.store import CubeStore

    t0 = time.perf_counter()
    spec = resolve_spec(spec_or_toml, out)
    out = Path(spec.out)
    store = check_store_spec(spec, out)  # another spec's cube is refused before anything is written
    ensure_folder(out, what="The cube's output folder")
    fine, _ = spec.grids
    units = plan_units(fine.shape, size=spec.unit_size, n_days=len(spec.days), unit_days=spec.unit_days)
    if spec.region_geometry is not None:  # tiles wholly outside the polygon stay NaN: not computed, not counted
        from unique_xr.load.region import polygon_mask

        units = [u for u in units if polygon_mask(spec.region_geometry, fine.window(u.rows, u.cols)).any()]
    if store is not None and store.units_done() >= {u.id for u in units}:
        logger.info("all %d units of %s are committed; nothing to do", len(units), out)
        return _result(spec, out, store, units, 0, t0, 0, stac and not (out / "stac" / "collection.json").is_file())
    models = _load_models(spec)
    given = _given_downscaler(spec)
    s3 = (given.scheme if given is not None else spec.scheme) == "s3"
    items = stages.search_inputs(spec, landsat=spec.downscaler == "fit", history=s3)
    classes = None
    if spec.landcover:
        classes = ESA_WORLDCOVER_CLASSES if spec.landcover == "esa-worldcover" else IO_LULC_CLASSES
    from unique_xr.downscale.model import resolve_device

    # "auto" is what this machine has (stages.DownscalingPlan resolves it the same way for the tasks)
    gpu = resolve_device(spec.device).startswith("cuda")
    if gpu and client is None and scheduler is None and workers is None:
        import torch

        workers = max(torch.cuda.device_count(), 1)  # a LocalCluster of one worker per GPU
    with _cluster(client, scheduler=scheduler, workers=workers, threads_per_worker=threads_per_worker,
                  resources={"GPU": 1} if gpu else None) as c:
        downscaler = _downscaler(spec, out, items, units, models, c, given=given)
        plan = stages.DownscalingPlan(spec, downscaler)
        tokens = {kind: model.card.model_sha256 or "" for kind, model in models.items()}
        tokens["downscaler"] = downscaler.token
        if store is None:
            # the model's inputs against what the data layer gives, before anything is written
            plan.check_inputs(stages.static_layers(spec, items, units[0].window(plan.halo, fine.shape)))
            attrs = global_attrs(
                title=spec.title or "Daily gross primary productivity at 30 m (unique_xr)",
                institution=spec.institution, references=spec.references, comment=spec.comment,
                spec_json=spec.to_json(), job_token=spec.token, model_tokens=tokens,
                input_items={k: [it.id for it in v] for k, v in items.items()}, version=__version__,
                extra={"downscaling_members": spec.members, "downscaling_steps": plan.steps,
                       "downscaling_seed": spec.seed, "downscaling_scheme": downscaler.scheme,
                       "coarse_factor": spec.coarse_factor})
            template = cube_template(fine, spec.days, members=spec.members, chunk=spec.chunk,
                                     time_chunk=spec.time_chunk, classes=classes, attrs=attrs)
            store = CubeStore.create(out, template, metadata={"job_token": spec.token, "job_spec": spec.to_json(),
                                                              "units_total": len(units), "model_tokens": tokens})
        made_with = store.metadata.get("model_tokens") or {}
        if made_with.get("downscaler") not in (None, downscaler.token):
            raise CubeStoreError(
                f"The units in {out} were downscaled by model {made_with['downscaler']}, this run would use "
                f"{downscaler.token} (was {out / DOWNSCALER_DIR} refitted or replaced?); mixing them would give a cube "
                "of two models. Restore that model folder, or start over in another --out folder.")
        done = store.units_done()
        todo = deque(u for u in units if u.id not in done)
        meta = {"job_token": spec.token, "job_spec": spec.to_json(), "units_total": len(units), "model_tokens": tokens}
        bar = JobProgress(len(units), len(units) - len(todo), live=progress)
        ran = 0
        try:
            ran = _waves(spec, todo, c, items, models, plan, store, classes, meta, bar)
        finally:
            bar.close()
    return _result(spec, out, store, units, ran, t0, bar.pixel_days, stac)


def _waves(spec, todo, client, items, models, plan, store, classes, meta, bar) -> int:
    """Submit units keeping at most ``spec.in_flight`` in flight; commit each as it finishes."""
    import dask
    from distributed import as_completed

    inflight: dict[Any, tuple[WorkUnit, Any, float]] = {}
    fuse = {"optimization.fuse.active": False} if plan.resources else {}

    def submit():
        unit = todo.popleft()
        graph, write = _unit_graph(spec, unit, items, models, plan, store, classes)
        with dask.config.set(fuse):
            future = client.compute(graph)
        inflight[future] = (unit, write, time.perf_counter())
        return future

    queue = as_completed([submit() for _ in range(min(spec.in_flight, len(todo)))], loop=client.loop)
    ran = 0
    for future in queue:
        unit, write, started = inflight.pop(future)
        try:
            forks = future.result()
        except Exception as err:
            for other in inflight:
                other.cancel()
            raise CubeStoreError(f"Work unit {unit.id} failed ({type(err).__name__}: {err}); it was not committed and "
                                 "the store keeps its last commit. Fix the cause and rerun the job to resume.") from err
        store.commit_unit(write, forks, unit.id, metadata=meta)
        ran += 1
        bar.unit_done(unit.id, unit.pixel_days, time.perf_counter() - started)
        if todo:
            queue.add(submit())
    return ran


def _result(spec, out: Path, store, units, ran: int, t0: float, pixel_days: int, stac: bool) -> CubeResult:
    stac_path = None
    if stac:
        from unique_xr.write.stac import write_stac

        stac_path = write_stac(out)
    elif (out / "stac" / "collection.json").is_file():
        stac_path = out / "stac" / "collection.json"
    seconds = time.perf_counter() - t0
    return CubeResult(out=out, store=out / "cube.icechunk", units_total=len(units), units_done=len(store.units_done()),
                      units_run=ran, snapshot=store.latest().id, seconds=round(seconds, 3),
                      pixel_days_per_second=round(pixel_days / seconds, 1) if seconds else 0.0, stac=stac_path)


logging.getLogger("unique_xr").addHandler(logging.NullHandler())
