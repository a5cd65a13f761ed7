"""Feature maps and annual GPP/NEE maps from cubes, block by block, lazily (``ds.gpp.estimate_annual``).

The flow for one spatial block (numpy only)::

    (time, y, x) inputs -> step_means per calendar year and row (step_of_day, as for tables)
        -> FeatureMaps (+ forest one-hot from the land cover) -> AnnualCNN.encode -> predict_encoded

A row of a pixel-year is the mean of the finite samples whose date falls in it (the rule of
:func:`~unique_xr.models.cnn.featuremap.feature_maps_from_table`), so a cube holding a table's
series gives that table's maps and predictions. On Dask, time is one chunk per block (the rows
need the whole year) and the graph has one task per spatial block; the model travels as a
single :class:`CnnHandle` key that every block depends on, so each worker receives it once.

Missing data
    Cells without a sample are missing and the CNN reads them as such (no gap filling). A
    pixel-year with *no* observed cell gets NaN rather than the model's prior guess, which would
    look like data; ``observed_fraction`` reports the share of observed cells of every pixel-year
    so a stricter threshold is one ``where`` away. A year the cube covers only in part (a cube
    from July to June) has its other rows missing, and is predicted as such.
Forests
    With ``forests_only`` (the default), pixels whose land cover is not one of the model's forest
    types (IGBP numbers 1-5 or codes ``ENF``...) get NaN; without it, they are predicted with an
    all-zero forest type, as the model sees an unknown class.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from unique_xr.errors import MissingVariableError, SpecError
from unique_xr.models.cnn.featuremap import (
    TIME_STEPS,
    FeatureMaps,
    MapSpec,
    step_of_day,
)
from unique_xr.models.handle import WorkerHandle
from unique_xr.schema import DIMS
from unique_xr.models.cnn.schema import ANNUAL_UNITS
from unique_xr.towers.sites import IGBP_CLASSES, igbp_code

__all__ = ["CnnHandle", "estimate_annual", "feature_maps_from_cube", "forest_type_index", "step_means",
           "to_feature_maps"]

#: Time steps x pixels (per variable) of one Dask block; larger spatial chunks are split.
MAX_BLOCK_CELLS = 2**23
#: Pixel-years encoded at once inside a block (about 4 KB each for 8-day maps).
BATCH_MAPS = 8192


# --------------------------------------------------------------------------------------------
# numpy kernels


def step_means(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of the finite values of each group along axis 0: ``(n_groups, *values.shape[1:])`` float32.

    ``group`` (one integer in ``[0, n_groups)`` per entry of axis 0) need not be sorted; groups
    without a finite value are NaN. Sums run in float64, as for tables.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.models.cnn.cube import step_means
    >>> step_means(np.array([1.0, 3.0, np.nan, 5.0]), np.array([0, 0, 2, 2]), 3).tolist()
    [2.0, nan, 5.0]
    """
    out = np.full((n_groups, *values.shape[1:]), np.nan, dtype=np.float32)
    if len(group) == 0:
        return out
    order = np.argsort(group, kind="stable")
    present, starts = np.unique(np.asarray(group)[order], return_index=True)
    sorted_values = np.asarray(values, dtype=np.float64)[order]
    ok = np.isfinite(sorted_values)
    sums = np.add.reduceat(np.where(ok, sorted_values, 0.0), starts, axis=0)
    counts = np.add.reduceat(ok, starts, axis=0, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[present] = np.where(counts > 0, sums / counts, np.nan)
    return out


def forest_type_index(land_cover: np.ndarray, forest_types: Sequence[str]) -> np.ndarray:
    """Index into ``forest_types`` of each pixel's land cover, -1 where it is none of them.

    ``land_cover`` holds MCD12Q1 ``LC_Type1`` numbers (1-17, in the order of
    :data:`~unique_xr.towers.sites.IGBP_CLASSES`; others, such as the fill value 255 or NaN, are
    no class) or IGBP codes / names (``"ENF"``, ``"Mixed Forests"``; unknown names raise
    :class:`~unique_xr.errors.TowerDataError`).

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.models.cnn.cube import forest_type_index
    >>> forest_type_index(np.array([1, 4, 10, 255]), ("ENF", "EBF", "DNF", "DBF", "MF")).tolist()
    [0, 3, -1, -1]
    """
    lc = np.asarray(land_cover)
    position = {t: j for j, t in enumerate(forest_types)}
    if lc.dtype.kind in "iuf":
        lut = np.array([-1] + [position.get(code, -1) for code in IGBP_CLASSES], dtype=np.int16)
        number = np.where(np.isfinite(lc), lc, 0) if lc.dtype.kind == "f" else lc
        valid = (number >= 1) & (number <= len(IGBP_CLASSES)) & (number == np.floor(number))
        return np.where(valid, lut[np.clip(number, 0, len(IGBP_CLASSES)).astype(np.int64)], -1).astype(np.int16)
    uniques, inverse = np.unique(lc.astype(object).astype(str), return_inverse=True)
    codes = igbp_code(pd.Series(uniques, dtype="string"))
    lut = np.array([position.get(c, -1) if isinstance(c, str) else -1 for c in codes], dtype=np.int16)
    return lut[inverse].reshape(lc.shape)


def _one_hot(kind: np.ndarray, n_types: int) -> np.ndarray:
    forest = np.zeros((len(kind), n_types), dtype=np.float32)
    ok = np.flatnonzero(kind >= 0)
    forest[ok, kind[ok]] = 1.0
    return forest


def _year_maps(flat: list[np.ndarray], sl: slice, group: np.ndarray, n_years: int, n_steps: int) -> np.ndarray:
    """``(year, pixel, step, variable)`` maps of the pixels ``sl`` of ``(time, pixel)`` arrays."""
    stacked = np.stack([f[:, sl] for f in flat], axis=-1)  # (time, pixel, variable)
    means = step_means(stacked, group, n_years * n_steps)
    return means.reshape(n_years, n_steps, *means.shape[1:]).transpose(0, 2, 1, 3)


def _block_maps(group: np.ndarray, *arrays: np.ndarray, n_years: int, n_steps: int) -> np.ndarray:
    """Feature-map values of one block: ``(year, y, x, step, variable)`` float32."""
    nt, ny, nx = arrays[0].shape
    flat = [a.reshape(nt, ny * nx) for a in arrays]
    out = np.empty((n_years, ny * nx, n_steps, len(arrays)), dtype=np.float32)
    step = max(1, BATCH_MAPS // n_years)  # bounds the float64 copy of the inputs
    for start in range(0, ny * nx, step):
        sl = slice(start, min(start + step, ny * nx))
        out[:, sl] = _year_maps(flat, sl, np.asarray(group), n_years, n_steps)
    return out.reshape(n_years, ny, nx, n_steps, len(arrays))


@dataclass(frozen=True, kw_only=True)
class _AnnualPlan:
    """What a block needs besides the data and the model: small, so it travels with every task."""

    spec: MapSpec
    n_years: int
    forests_only: bool
    batch_maps: int = BATCH_MAPS
    threads: int | None = None

    def __dask_tokenize__(self):
        return ("unique_xr.cnn._AnnualPlan", json.dumps(self.spec.to_dict(), sort_keys=True), self.n_years,
                self.forests_only, self.batch_maps, self.threads)


def _block_estimate(handle: CnnHandle, group: np.ndarray, land_cover: np.ndarray | None, *arrays: np.ndarray,
                    plan: _AnnualPlan) -> np.ndarray:
    """Annual GPP, NEE and the observed share of one block: ``(3, year, y, x)`` float32."""
    spec, n_years = plan.spec, plan.n_years
    nt, ny, nx = arrays[0].shape
    npix = ny * nx
    kind = (forest_type_index(land_cover, spec.forest_types).reshape(npix) if land_cover is not None
            else np.full(npix, -1, dtype=np.int16))
    flat = [a.reshape(nt, npix) for a in arrays]
    out = np.full((3, n_years, npix), np.nan, dtype=np.float32)
    step = max(1, plan.batch_maps // n_years)
    for start in range(0, npix, step):
        sl = slice(start, min(start + step, npix))
        maps = _year_maps(flat, sl, np.asarray(group), n_years, spec.n_steps)  # (year, pixel, step, var)
        observed = np.isfinite(maps).mean(axis=(2, 3))
        out[2, :, sl] = observed
        use = observed > 0
        if plan.forests_only:
            use &= kind[sl][None, :] >= 0
        years, pixels = np.nonzero(use)
        if len(years):
            fm = FeatureMaps(spec, maps[years, pixels], _one_hot(kind[sl][pixels], len(spec.forest_types)))
            pred = handle.predict(fm, threads=plan.threads)
            out[0, years, start + pixels] = pred[:, 0]
            out[1, years, start + pixels] = pred[:, 1]
    return out.reshape(3, n_years, ny, nx)


class CnnHandle(WorkerHandle):
    """A trained :class:`~unique_xr.models.cnn.model.AnnualCNN` as one Dask graph key (a :class:`WorkerHandle`).

    It carries the weights as bytes and the model's description, tokenized by
    :attr:`AnnualCNN.token <unique_xr.models.cnn.model.AnnualCNN.token>`, so every block depends on the
    same key, a worker receives the model once and builds it (and its networks) once per process.
    """

    kind = "annual_cnn"

    def __init__(self, model: Any) -> None:
        self.data = model.weights_bytes()
        self.describe = model.describe()
        self.token = model.token

    def build(self):
        from unique_xr.models.cnn.model import AnnualCNN

        return AnnualCNN.from_weights(self.describe, self.data)

    def predict(self, maps: FeatureMaps, *, threads: int | None = None) -> np.ndarray:
        """``(gpp, nee)`` per map with ``threads`` torch threads; the networks are built once per process."""
        return self.get().predict(maps, threads=threads)


# --------------------------------------------------------------------------------------------
# the xarray side


def _as_model(model: Any):
    from unique_xr.models.cnn.model import AnnualCNN, load_cnn

    if isinstance(model, AnnualCNN):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_cnn(model)
    raise SpecError(f"model must be an AnnualCNN or a model folder (unique-xr cnn train), got {type(model).__name__}.")


def _time_groups(ds: xr.Dataset, spec: MapSpec) -> tuple[np.ndarray, np.ndarray]:
    """The calendar years of the cube and each time sample's ``year_index * n_steps + row``."""
    times = pd.DatetimeIndex(ds["time"].values)
    n_steps, days = TIME_STEPS[spec.time_step]
    distinct = times.unique().sort_values()
    native = float(np.median(np.diff(distinct.asi8)) / 86400e9) if len(distinct) > 1 else np.nan
    if days and np.isfinite(native) and native > days + 0.5:
        raise SpecError(
            f"The cube's time samples are {native:.0f} days apart (median), coarser than the {spec.time_step} "
            f"rows the model's maps have: most rows would be empty by construction. Use a model trained on "
            f"{'monthly' if native > 17 else '16-day'} maps, or a cube with samples at least every {days} days."
        )
    years, year_index = np.unique(times.year.to_numpy().astype(np.int64), return_inverse=True)
    row = step_of_day(times.dayofyear.to_numpy(), times.month.to_numpy(), spec.time_step)
    return years, (year_index * n_steps + row).astype(np.int64)


def _check_cube(ds: xr.Dataset, spec: MapSpec, land_cover: str | None, what: str) -> None:
    missing_dims = [d for d in DIMS if d not in ds.dims]
    if missing_dims:
        raise SpecError(f"{what} needs dims {DIMS}; the cube has {tuple(ds.dims)} (missing {missing_dims}). "
                        "Rename spatial dims to y/x (e.g. ds.rename(lat='y', lon='x')).")
    if ds.sizes["time"] == 0:
        raise SpecError(f"{what}: the cube has no time steps; select a time range with data.")
    absent = [v for v in spec.variables if v not in ds.data_vars]
    if absent:
        like = next((v for v in spec.variables if v in ds.data_vars), "<a (time, y, x) variable>")
        raise MissingVariableError(
            f"The model's feature maps need variable(s) {absent}, but the cube has {sorted(map(str, ds.data_vars))}. "
            f"Load or rename them; to use the model without one, add it on purpose as an all-NaN variable, e.g. "
            f"ds[{absent[0]!r}] = xr.full_like(ds[{like!r}], np.nan): the CNN reads it as missing everywhere."
        )
    for v in spec.variables:
        if set(ds[v].dims) != set(DIMS):
            raise SpecError(f"Variable {v!r} has dims {ds[v].dims}; the model's inputs must be (time, y, x).")
    if land_cover is not None:
        if land_cover not in ds.variables:
            raise MissingVariableError(
                f"The land cover {land_cover!r} is not in the cube (it has {sorted(map(str, ds.data_vars))}). Pass "
                "land_cover='<name>' (IGBP numbers 1-17 as MCD12Q1 LC_Type1, or codes), or land_cover=None with "
                "forests_only=False to predict every pixel as an unknown forest type.")
        if set(ds[land_cover].dims) != {"y", "x"}:
            raise SpecError(f"The land cover {land_cover!r} has dims {ds[land_cover].dims}; it must be (y, x): "
                            f"select one year first, e.g. ds[{land_cover!r}].isel(time=-1, drop=True).")


def _spatial_chunks(ds: xr.Dataset, names: Sequence[str], chunks: dict[str, int] | None) -> tuple[int, int]:
    ref = next((ds[n] for n in names if ds[n].chunks is not None), None)
    cy = max(ref.chunksizes["y"]) if ref is not None else ds.sizes["y"]
    cx = max(ref.chunksizes["x"]) if ref is not None else ds.sizes["x"]
    if chunks:
        return chunks.get("y", cy), chunks.get("x", cx)
    while ds.sizes["time"] * cy * cx > MAX_BLOCK_CELLS and (cy > 1 or cx > 1):
        cy, cx = (math.ceil(cy / 2), cx) if cy >= cx else (cy, math.ceil(cx / 2))
    return cy, cx


def _blockwise_args(ds: xr.Dataset, names: Sequence[str], land_cover: str | None,
                    chunks: dict[str, int] | None) -> list[Any]:
    """The land cover (when given) and the inputs as ``(dask array, index)`` pairs, time in one chunk."""
    import dask.array as da

    cy, cx = _spatial_chunks(ds, [*names, *([land_cover] if land_cover else [])], chunks)
    args: list[Any] = []
    for n in ([land_cover] if land_cover else []) + list(names):
        var = ds[n].transpose(*(d for d in DIMS if d in ds[n].dims))
        shape = (-1, cy, cx) if var.ndim == 3 else (cy, cx)
        data = var.data.rechunk(shape) if isinstance(var.data, da.Array) else da.from_array(var.data, chunks=shape)
        args += [data, "tyx" if var.ndim == 3 else "yx"]
    return args


def _spatial_coords(ds: xr.Dataset) -> dict[str, Any]:
    return {k: v for k, v in ds.coords.items() if set(v.dims) <= {"y", "x"}}


def feature_maps_from_cube(ds: xr.Dataset, spec: MapSpec | None = None, *, land_cover: str | None = "igbp",
                           chunks: dict[str, int] | None = None) -> xr.DataArray:
    """The feature map of every pixel and calendar year of a cube, lazily on Dask input.

    Parameters
    ----------
    ds
        Dims ``time, y, x`` holding ``spec.variables`` (e.g. :func:`unique_xr.testing.forest.synthetic_forest_cube`).
    spec
        Variables, time step and forest types (a model's ``model.spec``); :class:`MapSpec` defaults when None.
    land_cover
        A ``(y, x)`` variable carried along as a coordinate (for :func:`to_feature_maps`); None for none.
    chunks
        Spatial chunks ``{"y": .., "x": ..}`` (default: the input's, split so a block holds at most
        :data:`MAX_BLOCK_CELLS` cells per variable). Time is always one chunk.

    Returns
    -------
    xarray.DataArray
        ``feature_map`` (float32), dims ``(year, y, x, step, variable)``: the mean of the samples in each
        row, NaN where a row has none.

    Raises
    ------
    MissingVariableError
        A variable of ``spec`` is absent (add an all-NaN variable to use a model without it).
    SpecError
        The cube's samples are coarser than the spec's rows (monthly samples, 8-day rows).

    Examples
    --------
    >>> from unique_xr.models.cnn.cube import feature_maps_from_cube
    >>> from unique_xr.models.cnn.featuremap import MapSpec
    >>> from unique_xr.testing.forest import synthetic_forest_cube
    >>> maps = feature_maps_from_cube(synthetic_forest_cube(ny=4, nx=4, chunks={"y": 2}), MapSpec())
    >>> maps.dims, maps.shape
    (('year', 'y', 'x', 'step', 'variable'), (2, 4, 4, 12, 6))
    """
    spec = spec or MapSpec()
    _check_cube(ds, spec, land_cover, "feature_maps_from_cube")
    years, group = _time_groups(ds, spec)
    names = list(spec.variables)
    kw = {"n_years": len(years), "n_steps": spec.n_steps}
    if any(ds[n].chunks is not None for n in names):
        import dask.array as da

        data = da.blockwise(_block_maps, "ayxsv", da.from_array(group, chunks=-1), "t",
                            *_blockwise_args(ds, names, None, chunks),
                            new_axes={"a": len(years), "s": spec.n_steps, "v": len(names)}, concatenate=True,
                            dtype=np.float32, meta=np.empty((0,) * 5, np.float32), token="cnn-feature-maps", **kw)
    else:
        data = _block_maps(group, *(ds[n].transpose(*DIMS).values for n in names), **kw)
    coords = {**_spatial_coords(ds), "year": years, "step": np.arange(spec.n_steps), "variable": names}
    if land_cover is not None:
        coords[land_cover] = ds[land_cover].transpose("y", "x")
    return xr.DataArray(data, dims=("year", "y", "x", "step", "variable"), coords=coords, name="feature_map",
                        attrs={"long_name": f"CNN feature map values ({spec.time_step} rows)",
                               "time_step": spec.time_step, "land_cover": land_cover or ""})


def to_feature_maps(maps: xr.DataArray, spec: MapSpec) -> FeatureMaps:
    """Computed :class:`FeatureMaps` of every (year, y, x) of :func:`feature_maps_from_cube`'s output.

    ``keys`` holds ``year, y, x, forest_type`` (None where the land cover is no forest type of the spec).
    """
    if list(maps["variable"].values) != list(spec.variables) or maps.sizes["step"] != spec.n_steps:
        raise SpecError(f"The maps hold variables {list(maps['variable'].values)} in {maps.sizes['step']} rows; "
                        f"the spec needs {list(spec.variables)} in {spec.n_steps}. Build them with this spec.")
    maps = maps.transpose("year", "y", "x", "step", "variable")
    n_years, ny, nx = maps.shape[:3]
    name = maps.attrs.get("land_cover") or None
    kind = (forest_type_index(maps[name].values, spec.forest_types) if name else np.full((ny, nx), -1, np.int16))
    kind = np.broadcast_to(kind, (n_years, ny, nx)).reshape(-1)
    index = pd.MultiIndex.from_product([maps["year"].values, maps["y"].values, maps["x"].values],
                                       names=["year", "y", "x"])
    keys = index.to_frame(index=False).assign(
        forest_type=[spec.forest_types[k] if k >= 0 else None for k in kind])
    values = np.asarray(maps.values, dtype=np.float32).reshape(-1, spec.n_steps, len(spec.variables))
    return FeatureMaps(spec, values, _one_hot(kind, len(spec.forest_types)), keys)


def estimate_annual(ds: xr.Dataset, model: Any, *, land_cover: str | None = "igbp", forests_only: bool = True,
                    chunks: dict[str, int] | None = None, threads: int | None = None) -> xr.Dataset:
    """Annual GPP and NEE maps with the gap-tolerant CNN, one task per spatial block on Dask input.

    Parameters
    ----------
    ds
        Dims ``time, y, x`` holding the model's variables (``model.spec.variables``) at least as
        often as its rows (monthly samples for a monthly model), and a ``(y, x)`` land cover.
    model
        An :class:`~unique_xr.models.cnn.model.AnnualCNN` or a folder written by ``unique-xr cnn train``.
    land_cover
        The land-cover variable: MCD12Q1 ``LC_Type1`` numbers 1-17 or IGBP codes. None: no land
        cover (every pixel an unknown forest type; needs ``forests_only=False``).
    forests_only
        NaN on pixels whose land cover is none of the model's forest types.
    chunks
        Spatial chunks of the blocks, as in :func:`feature_maps_from_cube`.
    threads
        torch CPU threads per block. Default: 1 on Dask input, where blocks already run in
        parallel (one thread per block keeps a worker's cores from being oversubscribed), and
        the model's ``config.threads`` (else torch's setting) on in-memory input.

    Returns
    -------
    xarray.Dataset
        ``gpp_annual`` and ``nee_annual`` (float32, g C m-2 yr-1, dims ``year, y, x``; NEE < 0 is
        uptake), NaN off forest and where a pixel-year has no observed cell, and
        ``observed_fraction`` (share of the feature map's cells with a value). ``model_token`` in
        the attributes names the model.

    Raises
    ------
    MissingVariableError, SpecError
        As :func:`feature_maps_from_cube`; also for a missing land cover, checked before any graph exists.

    Examples
    --------
    >>> from unique_xr.testing.forest import synthetic_forest_cube
    >>> ds = synthetic_forest_cube(chunks={"y": 8, "x": 8})
    >>> annual = ds.gpp.estimate_annual(model)  # doctest: +SKIP
    >>> annual["gpp_annual"].dims  # doctest: +SKIP
    ('year', 'y', 'x')
    """
    model = _as_model(model)
    spec = model.spec
    if land_cover is None and forests_only:
        raise SpecError("forests_only=True needs a land cover to tell forests from the rest; pass "
                        "land_cover='<variable>' or forests_only=False.")
    _check_cube(ds, spec, land_cover, "estimate_annual")
    years, group = _time_groups(ds, spec)
    names = list(spec.variables)
    lazy = any(ds[n].chunks is not None for n in [*names, *([land_cover] if land_cover else [])])
    if threads is None and lazy:
        threads = 1
    plan = _AnnualPlan(spec=spec, n_years=len(years), forests_only=forests_only, threads=threads)
    handle = CnnHandle(model)
    if lazy:
        import dask
        import dask.array as da

        args = _blockwise_args(ds, names, land_cover, chunks)
        if land_cover is None:
            args = [None, None, *args]
        data = da.blockwise(_block_estimate, "cayx", dask.delayed(handle, pure=True, traverse=False), None,
                            da.from_array(group, chunks=-1), "t", *args, plan=plan,
                            new_axes={"c": 3, "a": len(years)}, concatenate=True, dtype=np.float32,
                            meta=np.empty((0,) * 4, np.float32), token="cnn-annual")
    else:
        lc = ds[land_cover].transpose("y", "x").values if land_cover else None
        data = _block_estimate(handle, group, lc, *(ds[n].transpose(*DIMS).values for n in names), plan=plan)
    return _wrap(data, ds, years, names, land_cover, plan, handle)


def _wrap(data, ds: xr.Dataset, years: np.ndarray, names: list[str], land_cover: str | None, plan: _AnnualPlan,
          handle: CnnHandle) -> xr.Dataset:
    coords = {**_spatial_coords(ds), "year": years}
    grid_mapping = next((ds[n].attrs["grid_mapping"] for n in names if "grid_mapping" in ds[n].attrs), None)
    if grid_mapping is None and "spatial_ref" in ds.coords:
        grid_mapping = "spatial_ref"
    common = {"model_token": handle.token, **({"grid_mapping": grid_mapping} if grid_mapping else {})}
    dims = ("year", "y", "x")
    out = xr.Dataset({
        "gpp_annual": (dims, data[0], {
            "long_name": "annual gross primary production", "units": ANNUAL_UNITS, "cell_methods": "year: sum",
            "comment": "grams of carbon per square metre and year; NaN off forest and where no input was observed",
            **common}),
        "nee_annual": (dims, data[1], {
            "long_name": "annual net ecosystem exchange (< 0 is uptake)", "units": ANNUAL_UNITS,
            "cell_methods": "year: sum",
            "comment": "grams of carbon per square metre and year; NEE < 0 is uptake by the ecosystem "
                       "(FLUXNET sign convention)", **common}),
        "observed_fraction": (dims, data[2], {
            "long_name": "share of the feature map's cells with an observed value", "units": "1",
            "valid_range": [0.0, 1.0], **common}),
    }, coords=coords)
    out.attrs = {"Conventions": "CF-1.10", "source": "unique_xr annual CNN (gap-tolerant, Wu EGU2020-2135)",
                 "model_kind": "annual_cnn", "model_token": handle.token, "time_step": plan.spec.time_step,
                 "inputs": " ".join(names), "forests_only": int(plan.forests_only),
                 "land_cover": land_cover or ""}
    return out
