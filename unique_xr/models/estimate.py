"""Apply a tower-trained GPP model to a cube, block by block, lazily (``ds.gpp.estimate``).

The flow for one block (numpy only; :func:`predict_block`)::

    raw variables (table names or registry roles) -> resolve_arrays -> feature engine (one
        compiled pass: the feature matrix) -> tree engine -> x radiation scale, NaN where
        reflectance is missing

It is the same code path as ``unique-xr predict`` on a table, so a cube holding the table's
columns gives the table's GPP. On Dask the graph has one task per output block (plus the rechunk of
the inputs when needed): :func:`estimate` builds it with :func:`dask.array.blockwise`, explicit
``meta`` and dtype, and the model as a single key that every block depends on, so each worker
receives the model once.

Chunks
    ``gpp_m`` features run along time (gap filling, running medians, trailing means), so each block
    holds the whole time axis of its pixels. ``gpp_l`` is pointwise and keeps the input's time
    chunks. For both, space is split further when a block would exceed :data:`MAX_BLOCK_ROWS`
    pixel-days. Inside a
    block, pixels are processed in batches of about :data:`BATCH_ROWS` pixel-days, which bounds the
    float64 feature matrix (about 250 bytes per pixel-day).
Threads
    Each block calls the trees with one thread by default: Dask already runs one block per core,
    so tree threads x Dask threads stays at most the number of cores. Eager (numpy) input uses
    every core the process may use.
"""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from unique_xr.errors import MissingVariableError, SpecError
from unique_xr.grid import pixel_lonlat
from unique_xr.models.engines import ModelHandle
from unique_xr.features.engine import FeatureMatrix, feature_matrix, radiation_lookup
from unique_xr.models.features import (
    Recipe,
    engine_inputs,
    engine_params,
    has_landsat_dn,
    input_columns,
    landsat_dn_to_roles,
    resolve_arrays,
)
from unique_xr.schema import DIMS, cf_attrs

__all__ = ["BATCH_ROWS", "MAX_BLOCK_ROWS", "BlockPlan", "estimate", "predict_block"]

BATCH_ROWS = 2**19  # pixel-days per feature matrix inside a block (~130 MB of float64 features)
MAX_BLOCK_ROWS = 2**22  # pixel-days per Dask block for time-dependent recipes

COUNT_NAME = "n_valid_features"


@dataclass(frozen=True)
class BlockPlan:
    """What a block needs besides the data: small, so it may travel with every task."""

    recipe: Recipe
    names: tuple[str, ...]  # raw variables passed to the block, in order
    static: tuple[bool, ...]  # True for (y, x) variables, False for (time, y, x)
    features: tuple[str, ...]
    transform: str
    required: tuple[str, ...]  # features without which GPP is NaN (GppModel.required)
    allow_missing: tuple[str, ...]
    crs: str | None  # latitude is computed from x/y in this CRS when the cube has none
    threads: int
    from_features: bool = False  # the variables are the model's features themselves
    batch_rows: int = BATCH_ROWS

    def __dask_tokenize__(self):
        return ("unique_xr.BlockPlan", self.recipe, self.names, self.static, self.features, self.transform,
                self.required, self.allow_missing, self.crs, self.threads, self.from_features, self.batch_rows)


# --------------------------------------------------------------------------------------------
# the numpy kernel


def predict_block(handle: ModelHandle, time: np.ndarray, *arrays: np.ndarray, plan: BlockPlan) -> np.ndarray:
    """GPP and the count of valid features for one block: ``(2, time, y, x)`` float32.

    ``arrays`` are the raw variables named in ``plan.names`` (``(time, y, x)``, or ``(y, x)`` where
    ``plan.static``), followed by the ``y`` and ``x`` coordinates when ``plan.crs`` is set.
    Features are derived by the feature engine (:func:`unique_xr.features.engine.feature_matrix`)
    straight into the matrix the trees read, each pixel's days in consecutive rows, in batches of
    about ``plan.batch_rows`` pixel-days (one matrix allocated per block).
    """
    data = list(arrays[: len(plan.names)])
    names = list(plan.names)
    static = list(plan.static)
    shape = next((a.shape for a, s in zip(data, static, strict=True) if not s), None)
    if shape is None:
        raise SpecError("predict_block needs at least one (time, y, x) variable.")
    nt, ny, nx = shape
    if plan.crs is not None:
        y, x = arrays[len(plan.names):]
        data.append(pixel_lonlat(np.asarray(y), np.asarray(x), plan.crs)[1])
        names.append("lat")
        static.append(True)
    npix = ny * nx
    flat = [a.reshape(npix) if s else a.reshape(nt, npix) for a, s in zip(data, static, strict=True)]
    times = pd.DatetimeIndex(np.asarray(time).astype("datetime64[ns]"))
    clock = _Clock(doy=times.dayofyear.to_numpy().astype("float64"),
                   t=times.asi8.astype("float64"))
    out = np.full((2, npix, nt), np.nan, dtype="float32")
    step = max(1, min(plan.batch_rows // max(nt, 1), npix))
    buffer = np.empty((step * nt, len(plan.features)), dtype="float64")
    for start in range(0, npix, step):
        sl = slice(start, min(start + step, npix))
        columns = {n: a[sl] if s else a[:, sl] for n, a, s in zip(names, flat, static, strict=True)}
        # units are checked on the first batch of each block: a median per variable is cheap once
        X, count, kept = _feature_matrix(columns, clock, plan, check_units=start == 0,
                                         out=buffer[: (sl.stop - start) * nt])
        gpp = predict_matrix(handle, X, plan, columns=kept)
        out[0, sl] = gpp.reshape(-1, nt)
        out[1, sl] = count.reshape(-1, nt)
    return out.transpose(0, 2, 1).reshape(2, nt, ny, nx)


@dataclass(frozen=True)
class _Clock:
    doy: np.ndarray  # day of year per step
    t: np.ndarray  # time per step, float nanoseconds


def _feature_matrix(columns: dict[str, np.ndarray], clock: _Clock, plan: BlockPlan, *, check_units: bool,
                    out: np.ndarray) -> FeatureMatrix:
    """``(pixel * time, feature)`` float64 matrix of one batch (each pixel's days consecutive), the
    count of finite features per row, and the features :func:`predict_matrix` reads, contiguous."""
    nt, npix = len(clock.t), next(a.shape[-1] for a in columns.values())
    if plan.from_features:
        view = out.reshape(npix, nt, len(plan.features))
        for j, f in enumerate(plan.features):
            view[:, :, j] = np.broadcast_to(columns[f], (nt, npix)).T
        return FeatureMatrix(out, np.isfinite(out).sum(axis=1).astype(np.uint8), {})
    from unique_xr.models.lgbm import gpp_features

    arrays = _inputs(columns, plan.recipe, plan.allow_missing, check_units=check_units, shape=(nt, npix))
    rad_table, rad_col = radiation_lookup(arrays["lat"], clock.doy)
    return feature_matrix(**engine_inputs(arrays, plan.recipe), rad_table=rad_table, rad_col=rad_col,
                          doy=clock.doy, t=clock.t, pixel_major=True, out=out, keep=gpp_features(plan.transform, plan.required),
                          **engine_params(plan.recipe))


def _inputs(columns: dict[str, np.ndarray], recipe: Recipe, allow_missing: tuple[str, ...], *, check_units: bool,
            shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Canonical inputs of one batch (numpy): the tower tables' raw Landsat DN are converted first."""
    if recipe.kind == "gpp_l" and has_landsat_dn(columns):
        frame = pd.DataFrame({n: np.broadcast_to(v, shape).reshape(-1) for n, v in columns.items()})
        frame = landsat_dn_to_roles(frame, recipe)
        columns = {c: frame[c].to_numpy().reshape(shape) for c in frame.columns}
    return resolve_arrays(columns, recipe, allow_missing=allow_missing, check_units=check_units,
                          nan_like=lambda: np.full(shape, np.nan), float64=False)


def predict_matrix(handle: ModelHandle, X: np.ndarray, plan: BlockPlan,
                   columns: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """GPP (float32) of the rows of a feature matrix; ``columns`` holds features already taken
    out of it (contiguous), the rest are read from ``X``."""
    from unique_xr.models.lgbm import to_gpp

    index = {f: i for i, f in enumerate(plan.features)}
    columns = columns or {}
    raw = handle.predict(X, threads=plan.threads)
    gpp = to_gpp(raw, lambda name: columns[name] if name in columns else X[:, index[name]], plan.transform,
                 plan.required)
    return gpp.astype("float32")


# --------------------------------------------------------------------------------------------
# the xarray side


def _as_model(model: Any):
    from unique_xr.models.lgbm import GppModel, load_model

    if isinstance(model, GppModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_model(model)
    raise SpecError(f"model must be a GppModel or a model directory, got {type(model).__name__}.")


def _crs(ds: xr.Dataset) -> str | None:
    names = [ds[v].attrs.get("grid_mapping") for v in ds.data_vars] + ["spatial_ref", "crs"]
    for name in names:
        if name and name in ds.variables:
            attrs = ds[name].attrs
            crs = attrs.get("crs_wkt") or attrs.get("spatial_ref")
            if crs:
                return crs
    epsg = ds.attrs.get("crs") or ds.attrs.get("proj:code")
    return str(epsg) if epsg else None


def _daily(ds: xr.Dataset) -> tuple[xr.Dataset, pd.DatetimeIndex | None]:
    """Put ``ds`` on a regular daily axis; return the days to select afterwards (None: as given)."""
    days = pd.DatetimeIndex(ds["time"].values).normalize()
    if days.has_duplicates:
        dup = days[days.duplicated()].unique()[:3]
        raise SpecError(
            f"The cube has more than one time step on {[str(d.date()) for d in dup]}; the daily GPP_M model "
            "needs one value per day. Mosaic per day first (e.g. load(..., groupby='solar_day')) or average."
        )
    ds = ds.assign_coords(time=days)
    full = pd.date_range(days.min(), days.max(), freq="D")
    if len(full) == len(days) and (full == days).all():
        return ds, None
    return ds.sortby("time").reindex(time=full), days


def _spatial_chunks(ds: xr.Dataset, names: Sequence[Hashable], nt_block: int,
                    chunks: dict[str, int] | None) -> dict[str, Any]:
    ref = next((ds[n] for n in names if ds[n].chunks is not None and "y" in ds[n].dims), None)
    cy = max(ref.chunksizes["y"]) if ref is not None else ds.sizes["y"]
    cx = max(ref.chunksizes["x"]) if ref is not None else ds.sizes["x"]
    if chunks:
        return {"y": chunks.get("y", cy), "x": chunks.get("x", cx)}
    while nt_block * cy * cx > MAX_BLOCK_ROWS and (cy > 1 or cx > 1):
        if cy >= cx:
            cy = math.ceil(cy / 2)
        else:
            cx = math.ceil(cx / 2)
    return {"y": cy, "x": cx}


def estimate(
    ds: xr.Dataset,
    model: Any,
    *,
    engine: str = "lightgbm",
    allow_missing: Sequence[str] = (),
    threads: int | None = None,
    chunks: dict[str, int] | None = None,
    cache: str | os.PathLike | None = None,
    from_features: bool = False,
) -> xr.Dataset:
    """Daily GPP from a cube with a tower-trained model, lazily on Dask input.

    Parameters
    ----------
    ds
        Dims ``time, y, x``; a ``time`` coordinate. Variables named as the model's training table
        (``Nadir_Reflectance_Band2``, ``tower_temp``, ``lat``...) or as the collection registry and
        the data layer name them (``nir``, ``lst_day``, ``air_temperature``...); site-level inputs
        may be ``(y, x)``. Without a ``lat``/``latitude`` variable, latitude is computed from the
        ``x``/``y`` coordinates and the grid mapping (``spatial_ref``).
    model
        A :class:`~unique_xr.models.lgbm.GppModel` or a directory written by ``unique-xr train``.
    engine
        ``"lightgbm"`` or ``"lleaves"`` (compiled; see :mod:`unique_xr.models.engines`).
    allow_missing
        Canonical inputs knowingly absent (they become NaN, which the trees treat as missing).
    threads
        Tree threads per block (default: 1 on Dask input, every available core on numpy input).
    chunks
        Spatial chunks ``{"y": .., "x": ..}`` of the output (default: those of the input, split
        further so a block holds at most :data:`MAX_BLOCK_ROWS` pixel-days).
    cache
        Folder for compiled models (default :func:`unique_xr.models.engines.cache_dir`).
    from_features
        The variables are the model's features themselves, named and in the units of its card
        (``b_nir``, ``ndvi``, ``rad_toa``...), for example a feature cube cached to Zarr for several
        models: no derivation, and no whole-time-axis blocks.

    Returns
    -------
    xarray.Dataset
        ``gpp`` (float32, g m-2 d-1, NaN where the reflectance is missing) and ``n_valid_features``
        (uint8, how many of the model's features had a value), on the input's coordinates.

    Raises
    ------
    MissingVariableError
        An input of the model is absent under every accepted name (checked before anything runs).
    UnitsError
        At compute time, when a block's input is far outside its valid range (a unit mistake).
    """
    model = _as_model(model)
    recipe = model.recipe
    missing_dims = [d for d in DIMS if d not in ds.dims]
    if missing_dims:
        raise SpecError(
            f"estimate needs dims {DIMS}; the cube has {tuple(ds.dims)} (missing {missing_dims}). "
            "Rename spatial dims to y/x (e.g. ds.rename(lat='y', lon='x'))."
        )
    allow_missing = tuple(allow_missing)
    model.check_allow_missing(allow_missing)
    if from_features:
        names, crs = _feature_variables(ds, model), None
    else:
        names, crs = _input_variables(ds, recipe, allow_missing)
    static = tuple("time" not in ds[n].dims for n in names)
    original = ds
    sub = ds[names]
    days = None
    if recipe.kind == "gpp_m" and not from_features:
        sub, days = _daily(sub)
    sub = sub.transpose(*DIMS, missing_dims="ignore")
    lazy = any(sub[n].chunks is not None for n in names)
    plan = BlockPlan(recipe=recipe, names=tuple(names), static=static, features=tuple(model.features),
                     transform=model.card.target_transform, required=model.required, allow_missing=allow_missing,
                     crs=crs,
                     threads=threads or (1 if lazy else _cores()), from_features=from_features)
    handle = ModelHandle.from_booster(model.booster, engine=engine, cache=cache)
    time_ns = sub["time"].values.astype("datetime64[ns]").astype("int64")
    if lazy:
        data = _blockwise(sub, plan, handle, time_ns, chunks)
    else:
        coords = (sub["y"].values, sub["x"].values) if crs else ()
        data = predict_block(handle, time_ns, *(sub[n].values for n in names), *coords, plan=plan)
    out = _wrap(data, sub, original, plan, handle, model)
    if days is not None:
        out = out.sel(time=days)
    return out.assign_coords(time=original["time"].values)


def _check_dims(ds: xr.Dataset, names: Sequence[Hashable]) -> None:
    for n in names:
        if set(ds[n].dims) - set(DIMS) or not {"y", "x"} <= set(ds[n].dims):
            raise SpecError(f"Variable {n!r} has dims {ds[n].dims}; inputs must be (time, y, x) or (y, x).")


def _feature_variables(ds: xr.Dataset, model) -> list[str]:
    missing = [f for f in model.features if f not in ds.data_vars]
    if missing:
        raise MissingVariableError(
            f"from_features=True needs every model feature as a variable; missing {missing}. The model's features "
            f"are {model.features} (units in its card); or pass the raw inputs with from_features=False."
        )
    _check_dims(ds, model.features)
    return list(model.features)


def _input_variables(ds: xr.Dataset, recipe: Recipe, allow_missing: tuple[str, ...]) -> tuple[list[str], str | None]:
    """The variables the recipe reads, and the CRS to compute latitude in when there is no ``lat``."""
    accepted = input_columns(recipe)
    names = [str(n) for n in ds.data_vars if n in accepted]
    _check_dims(ds, names)
    crs = None
    if not any(n in ds.variables for n in ("lat", "latitude")):
        crs = _crs(ds)
        if crs is None:
            raise MissingVariableError(
                "The model needs latitude: give a 'lat' variable (degrees north) or x/y coordinates with a "
                "CF grid mapping ('spatial_ref' with crs_wkt, as GridSpec.attach and rioxarray write)."
            )
    # every input must be findable now, before a graph exists: a zero-size batch computes nothing
    empty = {n: np.empty((0, 0) if "time" in ds[n].dims else (0,), ds[n].dtype) for n in names}
    _inputs(empty, recipe, allow_missing + (("lat",) if crs else ()), check_units=False, shape=(0, 0))
    return names, crs


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _blockwise(sub: xr.Dataset, plan: BlockPlan, handle: ModelHandle, time_ns: np.ndarray,
               chunks: dict[str, int] | None):
    import dask
    import dask.array as da

    nt = sub.sizes["time"]
    tchunk = -1 if plan.recipe.kind == "gpp_m" else None
    if tchunk is None:
        ref = next((sub[n] for n in plan.names if sub[n].chunks is not None and "time" in sub[n].dims), None)
        tchunk = ref.chunksizes["time"] if ref is not None else nt
    spatial = _spatial_chunks(sub, plan.names, nt if tchunk == -1 else max(tchunk), chunks)
    target = {"time": tchunk, **spatial}
    arrays = []
    for n in plan.names:  # rechunked with dask itself: xarray peeks into object arrays (computing them)
        var = sub[n]
        chunks = tuple(target[d] for d in var.dims)
        arrays.append(var.data.rechunk(chunks) if isinstance(var.data, da.Array)
                      else da.from_array(var.data, chunks=chunks))
    ref = next(a for a, s in zip(arrays, plan.static, strict=True) if not s)
    tchunks, ychunks, xchunks = ref.chunks
    args: list[Any] = [dask.delayed(handle, pure=True, traverse=False), None,
                       da.from_array(time_ns, chunks=(tchunks,)), "t"]
    for arr, s in zip(arrays, plan.static, strict=True):
        args += [arr, "yx" if s else "tyx"]
    if plan.crs is not None:
        args += [da.from_array(sub["y"].values, chunks=(ychunks,)), "y",
                 da.from_array(sub["x"].values, chunks=(xchunks,)), "x"]
    return da.blockwise(
        predict_block, "ctyx", *args, plan=plan, new_axes={"c": 2}, dtype="float32",
        meta=np.empty((0, 0, 0, 0), dtype="float32"), token=f"gpp-estimate-{plan.recipe.kind}",
    )


def _wrap(data, sub: xr.Dataset, original: xr.Dataset, plan: BlockPlan, handle: ModelHandle, model) -> xr.Dataset:
    coords = {k: v for k, v in original.coords.items() if set(v.dims) <= {"y", "x"}}
    coords["time"] = sub["time"]
    grid_mapping = next((original[n].attrs["grid_mapping"] for n in plan.names
                         if "grid_mapping" in original[n].attrs), None)
    if grid_mapping is None and "spatial_ref" in original.coords:
        grid_mapping = "spatial_ref"
    spatial = {"grid_mapping": grid_mapping} if grid_mapping else {}
    gpp = xr.DataArray(data[0], dims=DIMS, coords=coords, attrs=cf_attrs(
        "gpp", cell_methods="time: mean", model_kind=plan.recipe.kind, model_token=handle.token,
        engine=handle.engine, **spatial))
    count = xr.DataArray(data[1], dims=DIMS, coords=coords).astype("uint8")
    count.attrs = {"long_name": "number of model features with a value", "units": "1",
                   "valid_range": [0, len(plan.features)], **spatial}
    out = xr.Dataset({"gpp": gpp, COUNT_NAME: count})
    out.attrs = {"Conventions": "CF-1.10", "source": f"unique_xr {plan.recipe.kind} LightGBM model",
                 "model_kind": plan.recipe.kind, "model_token": handle.token, "engine": handle.engine,
                 "model_trees": int(model.card.best_iteration or 0)}
    return out
