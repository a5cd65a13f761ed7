"""Raw DN bands + QA -> scaled, masked reflectance, ``clear`` and indices in one compiled pass per chunk.

``load(..., mask=..., indices=...)`` gives the same cube as
``add_indices(apply_qa_mask(load(...), collection, **options), indices)``, but instead of one pass
per stage (scale each band, decode each QA layer, mask each band, each index, each unit check) every
chunk goes through :func:`scale_mask_index_block` once. Nothing about the products is written here:

- physical values come from the loader's lookup table of every raw value
  (:func:`unique_xr.load.stack.to_physical`'s table),
- QA status (clear / flagged / fill) from :func:`unique_xr.load.masks.status_table`, the layout's own
  kernels run once over every possible QA value,
- index values from :func:`unique_xr.features.indices.index_value`, the one copy of the formulas,

and the per-block unit check and the all-masked error are the ones of the unfused path.

Two layers: :func:`scale_mask_index_block` (numpy in, numpy out) and :func:`scale_mask_index` (lazy
xarray/Dask assembly, the same global all-masked gate as :func:`~unique_xr.load.masks.apply_qa_mask`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from unique_xr import schema
from unique_xr._jit import jit
from unique_xr.features.indices import INDEX_CODES, _check_reflectance, _index_def, index_attrs, index_into
from unique_xr.load.masks import (
    _describe,
    _lazy_all_masked_check,
    _nodata,
    _pass_mask,
    _qa_layers,
    _split_options,
    status_table,
)
from unique_xr.search.collections import CollectionSpec

__all__ = ["FusedPlan", "scale_mask_index", "scale_mask_index_block"]

_BandParams = tuple[str, Any, Any, float, float]  # raw dtype, nodata, valid_range, scale, offset (to_physical's)


@dataclass(frozen=True, kw_only=True)
class FusedPlan:
    """What one fused block computes; small and hashable (it travels in every task, its tables do not).

    ``bands``: per band, the raw dtype and :func:`~unique_xr.load.stack.to_physical` parameters;
    ``band_qa``: per band, the QA layer that masks it alone (-1: all layers, the ``clear`` mask);
    ``qa``: per QA layer, (layout, dtype, nodata, options as sorted items); ``indices``: (name, band
    positions in ``INDICES[name].bands`` order); ``checks``: (band position, role, index) unit checks.
    """

    bands: tuple[_BandParams, ...]
    band_qa: tuple[int, ...]
    qa: tuple[tuple[str, str, float | None, tuple], ...]
    indices: tuple[tuple[str, tuple[int, ...]], ...] = ()
    checks: tuple[tuple[int, str, str], ...] = ()


@functools.lru_cache(maxsize=32)
def _tables(plan: FusedPlan):
    """The plan's lookup tables as the kernel takes them (built once per process and plan)."""
    from unique_xr.load.stack import _physical_table

    def stacked(tables, dtype, pad):  # one row per table, one column more than the longest, filled with pad
        out = np.full((len(tables), max(t.size for t in tables) + 1), pad, dtype=dtype)
        for row, table in zip(out, tables):
            row[:table.size] = table
        return out

    band_tables = stacked([_physical_table(*p) for p in plan.bands], np.float32, np.nan)
    status = stacked([status_table(layout, dtype, nodata=nodata, options=dict(opts))
                      for layout, dtype, nodata, opts in plan.qa], np.uint8, 2)
    band_offsets = np.array([np.iinfo(np.dtype(p[0])).min for p in plan.bands], np.int64)
    qa_offsets = np.array([np.iinfo(np.dtype(q[1])).min for q in plan.qa], np.int64)
    codes = np.array([INDEX_CODES[name] for name, _ in plan.indices], np.int64)
    index_bands = np.zeros((len(plan.indices), 3), np.int64)
    for k, (_, positions) in enumerate(plan.indices):
        index_bands[k, :len(positions)] = positions
    return band_tables, band_offsets, np.array(plan.band_qa, np.int64), status, qa_offsets, codes, index_bands


@jit
def _scale_mask_index(bands, band_tables, band_offsets, band_qa, qas, status_tables, qa_offsets, codes,
                      index_bands, out, clear, out_indices):
    """The fused loops over flat pixels; returns (number clear, number fill in any QA layer)."""
    n = clear.size
    nan_slot = band_tables.shape[1] - 1
    clear[:] = 0  # first as flags: bit 0 not clear in some layer, bit 1 fill in some layer
    for q in range(len(qas)):
        qa, table, offset = qas[q], status_tables[q], qa_offsets[q]
        for i in range(n):
            status = table[np.int64(qa[i]) - offset]
            clear[i] |= (status != 1) | ((status == 2) << 1)
    n_clear = 0
    n_fill = 0
    for i in range(n):
        flags = clear[i]
        n_fill += flags >> 1
        clear[i] = 1 - (flags & 1)
        n_clear += clear[i]
    for b in range(len(bands)):
        raw, table, offset, q = bands[b], band_tables[b], band_offsets[b], band_qa[b]
        # a masked pixel reads the table's last entry (NaN): arithmetic, not a branch the CPU mispredicts
        if q < 0:
            for i in range(n):
                usable = np.int64(clear[i])
                out[b, i] = table[(np.int64(raw[i]) - offset) * usable + nan_slot * (1 - usable)]
        else:  # masked by its own QA layer only (MCD43A4: qa_red masks red)
            qa, status, qa_offset = qas[q], status_tables[q], qa_offsets[q]
            for i in range(n):
                usable = np.int64(status[np.int64(qa[i]) - qa_offset] == 1)
                out[b, i] = table[(np.int64(raw[i]) - offset) * usable + nan_slot * (1 - usable)]
    for k in range(codes.size):
        index_into(codes[k], out[index_bands[k, 0]], out[index_bands[k, 1]], out[index_bands[k, 2]], out_indices[k])
    return n_clear, n_fill


def _flat_tuple(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Flat C-contiguous views (cast to one common dtype if they differ): one numba type per count."""
    dtype = np.result_type(*arrays)
    return tuple(np.ascontiguousarray(a, dtype=dtype).reshape(-1) for a in arrays)


def scale_mask_index_block(*arrays: np.ndarray, plan: FusedPlan):
    """One chunk: raw bands then raw QA layers (same shape, order of ``plan``) -> (bands, clear, indices, counts).

    ``bands``: float32 ``(n_bands, *shape)``, physical and NaN where masked or missing; ``clear``: uint8
    ``shape``; ``indices``: float32 ``(n_indices, *shape)``; ``counts``: int64 ``[clear, fill]`` pixels.
    Raises :class:`~unique_xr.errors.UnitsError` like the unfused index's per-block check.
    """
    n_bands = len(plan.bands)
    shape = np.shape(arrays[0])
    n = int(np.prod(shape))
    out = np.empty((n_bands, n), np.float32)
    clear = np.empty(n, np.uint8)
    out_indices = np.empty((len(plan.indices), n), np.float32)
    band_tables, band_offsets, band_qa, status, qa_offsets, codes, index_bands = _tables(plan)
    n_clear, n_fill = _scale_mask_index(
        _flat_tuple(arrays[:n_bands]), band_tables, band_offsets, band_qa, _flat_tuple(arrays[n_bands:]), status,
        qa_offsets, codes, index_bands, out, clear, out_indices,
    )
    for position, role, index in plan.checks:
        _check_reflectance(out[position], role, index)
    return (out.reshape(n_bands, *shape), clear.reshape(shape), out_indices.reshape(-1, *shape),
            np.array([n_clear, n_fill], np.int64))


def _count(result, *, which: int, ndim: int) -> np.ndarray:
    return np.full((1,) * ndim, result[3][which], np.int64)


def _part(result, part: int, position: int | None = None) -> np.ndarray:
    return result[part] if position is None else result[part][position]


def _shared_attrs(all_attrs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Attributes combined as xarray combines the QA layers' masks in apply_qa_mask (conflicting ones dropped)."""
    out: dict[str, Any] = {}
    dropped: set[str] = set()
    for attrs in all_attrs:
        for key, value in attrs.items():
            if key in out and out[key] != value:
                dropped.add(key)
            out.setdefault(key, value)
    return {k: v for k, v in out.items() if k not in dropped}


def scale_mask_index(
    ds: xr.Dataset,
    spec: CollectionSpec,
    physical: Mapping[str, _BandParams],
    *,
    indices: Sequence[str] = (),
    drop_qa: bool = True,
    check_all_masked: bool = True,
    options: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """A loaded cube whose non-QA bands still hold raw DN -> the masked cube with ``clear`` and ``indices``.

    ``physical`` gives each raw band's :func:`~unique_xr.load.stack.to_physical` parameters. The result
    equals ``add_indices(apply_qa_mask(<ds scaled>, spec, drop_qa=..., check_all_masked=..., **options),
    indices)``, errors included; lazy (nothing is computed here).
    """
    import dask.array as dsa

    options = dict(options or {})
    names = [indices] if isinstance(indices, str) else list(indices)
    index_specs = [_index_def(n) for n in names]
    layers = _qa_layers(ds, spec)
    per_layout = _split_options(layers, options)
    what = _describe(spec, layers, options)
    qa_roles = {a.role for a in spec.assets if a.is_qa}
    band_names = [str(v) for v in ds.data_vars if v not in qa_roles]
    needed = list(dict.fromkeys(b for s in index_specs for b in s.bands))
    schema.require_variables(ds, needed, purpose=f"indices {names}")

    own = {target: q for q, layer in enumerate(layers) for target in layer.targets}
    position = {name: b for b, name in enumerate(band_names)}
    checks = {}
    for s in index_specs:
        for role in s.bands:
            checks.setdefault(role, (position[role], role, s.name))
    plan = FusedPlan(
        bands=tuple(physical[name] for name in band_names),
        band_qa=tuple(own.get(name, -1) for name in band_names),
        qa=tuple((layer.asset.qa_layout, layer.asset.dtype, _nodata(ds[layer.var], layer.asset),
                  tuple(sorted(per_layout[layer.asset.qa_layout].items()))) for layer in layers),
        indices=tuple((s.name, tuple(position[b] for b in s.bands)) for s in index_specs),
        checks=tuple(checks.values()),
    )
    inputs = [ds[name].data for name in band_names] + [ds[layer.var].data for layer in layers]
    ndim = inputs[0].ndim
    result = dsa.map_blocks(scale_mask_index_block, *inputs, plan=plan, dtype=np.float32,
                            meta=np.empty((0,) * ndim, np.float32), token="scale-mask-index")
    if check_all_masked:
        block_chunks = tuple((1,) * len(c) for c in result.chunks)
        n_clear, n_fill = (
            result.map_blocks(_count, which=which, ndim=ndim, chunks=block_chunks, dtype=np.int64,
                              meta=np.empty((0,) * ndim, np.int64)).sum()
            for which in (0, 1)
        )
        ok = _lazy_all_masked_check(n_clear, n_fill, n_total=int(np.prod(result.shape)),
                                    shape=dict(ds[layers[0].var].sizes), what=what)
        index = tuple(f"d{i}" for i in range(ndim))
        result = dsa.blockwise(_pass_mask, index, result, index, ok, (), dtype=np.float32,
                               meta=np.empty((0,) * ndim, np.float32), token="after-all-masked-check")

    def take(part, dtype, pos=None):
        return result.map_blocks(_part, part, pos, dtype=dtype, meta=np.empty((0,) * ndim, dtype))

    out = ds.copy()
    for b, name in enumerate(band_names):
        out[name] = ds[name].copy(data=take(0, np.float32, b))
    clear_attrs = schema.cf_attrs("clear", comment=what)
    grid_mapping = ds[layers[0].var].attrs.get("grid_mapping")
    if grid_mapping is not None:
        clear_attrs["grid_mapping"] = grid_mapping
    out["clear"] = xr.DataArray(take(1, np.uint8), dims=ds[layers[0].var].dims, coords=ds[layers[0].var].coords,
                                attrs={**_shared_attrs([ds[layer.var].attrs for layer in layers]), **clear_attrs})
    if drop_qa:
        out = out.drop_vars([v for v in out.data_vars if v in qa_roles])
    for k, s in enumerate(index_specs):
        band = out[s.bands[0]]
        out[s.name] = band.copy(data=take(2, np.float32, k)).rename(s.name).assign_attrs(index_attrs(s.name, band))
    return out

