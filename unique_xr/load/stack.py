"""STAC items -> a lazy, Dask-backed ``xarray.Dataset`` on one explicit :class:`~unique_xr.grid.GridSpec`.

:func:`load` is the entry of the load stage. It does, in this order and before any pixel is read:

1. resolve the requested assets against the collection registry (keys or roles) and check every item
   has them;
2. (:mod:`unique_xr.load.prepare`) work out each asset's CRS from its STAC projection metadata (``proj:epsg``/``proj:code``, or
   ``proj:wkt2``/``proj:projjson`` — MODIS items on the Planetary Computer carry ``proj:epsg: null``
   and a sinusoidal WKT) and its footprint *in the grid's CRS*; items that do not touch the grid are
   dropped, and a grid that touches no item is a :class:`~unique_xr.errors.CRSError`;
3. build one lazy stack per asset with the chosen engine — stackstac (default) or odc-stac — on
   exactly the grid's pixels, reading raw values through the readers of
   :mod:`unique_xr.load.readers` (signing at read time, GDAL retries, typed read errors, all-fill
   check);
4. apply the registry's nodata, valid range, scale and offset (never the items' ``raster:bands``),
   mosaic the items of one day (first valid value wins) and attach the grid's coordinates.

Both engines see the same items, footprints, dtypes and fill values, resample from full resolution
(no overviews), and go through the same post-processing, so with nearest resampling they give the
same numbers to the pixel: each target pixel takes the source pixel that contains its centre (a
centre exactly on a source edge belongs to the pixel right/below it — which is every pixel when a
30 m grid anchored at 0 m meets Landsat's grid, anchored at 15 m; align the grid to avoid that).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr

from unique_xr._optional import import_optional
from unique_xr.errors import CRSError, EmptySearchError, SpecError
from unique_xr.grid import GridSpec
from unique_xr.load.prepare import (
    _as_item_dicts,
    _check_assets_present,
    _check_collection,
    _group_items,
    _ItemRecord,
    _prepare_items,
)
from unique_xr.schema import cf_attrs
from unique_xr.search.collections import AssetSpec, CollectionSpec, get_collection

__all__ = ["load", "to_physical", "DEFAULT_CHUNKS", "ENGINES"]

#: Dask chunks of the output when ``chunks=None`` (``y``/``x`` capped to the grid).
DEFAULT_CHUNKS: dict[str, int] = {"time": 1, "y": 1024, "x": 1024}
ENGINES: tuple[str, ...] = ("stackstac", "odc")
_GROUPBYS = ("solar_day", "id", None)
#: asset kinds whose values are codes, not quantities: always resampled with nearest
_CATEGORICAL_KINDS = ("qa", "landcover")


# ==================================================================================== public API
def load(
    items: Any,
    *,
    grid: GridSpec,
    collection: str | CollectionSpec,
    assets: Sequence[str] | None = None,
    engine: Literal["stackstac", "odc"] = "stackstac",
    chunks: Mapping[str, int] | None = None,
    resampling: str = "nearest",
    sign: Callable[[str], str] | None = None,
    groupby: Literal["solar_day", "id"] | None = "solar_day",
    on_all_fill: Literal["raise", "nan"] = "raise",
    mask: bool | Mapping[str, Any] = False,
    indices: str | Sequence[str] = (),
) -> xr.Dataset:
    """Load STAC items as a lazy ``(time, y, x)`` Dataset on ``grid``, one variable per asset role.

    Parameters
    ----------
    items
        A ``pystac.ItemCollection``, a list of ``pystac.Item`` or of item dicts, or a GeoJSON
        FeatureCollection dict — all of ``collection``.
    grid
        The target grid. Output ``x``/``y`` are exactly ``grid.x``/``grid.y`` (pixel centres).
    collection
        Registry name or provider id (``"mcd43a4"``, ``"landsat-c2-l2"``) or a ``CollectionSpec``.
    assets
        Asset keys or roles (``["red", "nir", "qa_pixel"]``); default: the collection's defaults.
    engine
        ``"stackstac"`` (default; needs a grid with an EPSG code) or ``"odc"`` (odc-stac).
    chunks
        Output Dask chunks, merged over :data:`DEFAULT_CHUNKS`; ``-1`` means the whole dimension.
    resampling
        GDAL resampling for quantities (``"nearest"``, ``"bilinear"``, ``"average"``...). QA and
        land-cover assets are always resampled with ``"nearest"``.
    sign
        ``href -> href`` applied inside the Dask task that opens each file (e.g.
        ``planetary_computer.sign``); never called while the graph is built.
    groupby
        ``"solar_day"``: items of the same day are mosaicked into one time step, first valid value
        (in time order) winning, so ``time`` is unique. The day is the local solar day at the grid's
        centre longitude for instantaneous items, and the UTC date of ``start_datetime`` for composites.
        ``"id"`` or ``None``: one time step per item.
    on_all_fill
        ``"raise"`` (default): an asset that is fill everywhere raises
        :class:`~unique_xr.errors.AllFillError` when it is read. ``"nan"``: accept it as missing data.
    mask
        ``True`` or a dict of :func:`~unique_xr.load.masks.apply_qa_mask` keywords (``drop_qa``,
        ``check_all_masked`` and the layout options, e.g. ``{"snow": False}``): return the QA-masked
        cube, as ``apply_qa_mask(load(...), collection, **mask)`` would.
    indices
        Vegetation indices to add (:data:`~unique_xr.features.indices.INDICES`), as
        :func:`~unique_xr.features.indices.add_indices` would. With ``mask``, scaling, QA masking and
        the indices run as one compiled pass per chunk (:mod:`unique_xr.load.fused`) when every band
        is read raw (8/16-bit, nearest) — the same values, metadata and errors as the separate stages.

    Returns
    -------
    xarray.Dataset
        Lazy, Dask-backed. Non-QA variables are float32 physical values (registry scale/offset
        applied; raw nodata and raw values outside ``valid_range`` are NaN). QA variables keep their
        raw integer dtype; pixels with no data read hold the ``nodata`` attribute's value.

    Raises
    ------
    UnknownAssetError
        An asset is not in the registry, or is missing from some items.
    CRSError
        An item's CRS cannot be determined, the grid touches no item, or ``engine="stackstac"``
        with a grid that has no EPSG code.
    EmptySearchError
        ``items`` is empty.

    Read errors (:class:`~unique_xr.errors.AssetReadError`) and all-fill assets
    (:class:`~unique_xr.errors.AllFillError`) are raised when the data are computed.

    Examples
    --------
    A tiny synthetic region (MODIS items on the sinusoidal grid, as on Planetary Computer), loaded
    onto its 30 m UTM grid:

    >>> import tempfile
    >>> import unique_xr as ux
    >>> from unique_xr.testing import SyntheticRegionSpec, make_region
    >>> spec = SyntheticRegionSpec.square(size_px=32, seed=0, start="2023-06-01", end="2023-06-03",
    ...                                   landsat=False, dem=False, worldcover=False, met=False)
    >>> region = make_region(tempfile.mkdtemp(), spec)
    >>> ds = ux.load(region.items["modis-43A4-061"], grid=region.grid, collection="mcd43a4",
    ...              assets=["red", "nir"])
    >>> ds.red.dims, ds.sizes["time"], ds.red.dtype
    (('time', 'y', 'x'), 3, dtype('float32'))
    >>> ds.red.attrs["source_asset"], ds.red.attrs["scale_factor_applied"]
    ('Nadir_Reflectance_Band1', 0.0001)
    >>> ds.red.dims
    ('time', 'y', 'x')
    """
    spec = get_collection(collection)
    _check_arguments(grid=grid, engine=engine, resampling=resampling, sign=sign, groupby=groupby,
                     on_all_fill=on_all_fill)
    asset_specs = spec.resolve_assets(assets)
    item_dicts = _as_item_dicts(items)
    if not item_dicts:
        raise EmptySearchError(
            f"load() got no items for {spec.name!r}. Run unique_xr.search(...) for an area and dates "
            "that have data, and pass its result."
        )
    _check_collection(item_dicts, spec)
    _check_assets_present(item_dicts, asset_specs, spec)
    out_chunks = _resolve_chunks(chunks, grid)
    records = _prepare_items(item_dicts, asset_specs, grid)
    groups = _group_items(records, groupby, grid)

    stack_asset = _stack_asset_stackstac if engine == "stackstac" else _stack_asset_odc
    by_id = {r.id: r for r in records}
    mask_options = _mask_options(mask)
    fused = mask_options is not None and _fusable(asset_specs, resampling)
    variables, physical = {}, {}
    for asset in asset_specs:
        is_qa = asset.is_qa
        asset_resampling = "nearest" if asset.kind in _CATEGORICAL_KINDS else resampling
        if is_qa:
            raw_dtype, fill = np.dtype(asset.dtype), _qa_fill(asset)
        elif asset_resampling == "nearest" and asset.nodata is not None and _small_int(asset.dtype):
            # nearest keeps raw values: read them in their own dtype, fill with the raw nodata, and let
            # to_physical's lookup table turn both into physical values / NaN (no float64 round trip)
            raw_dtype = np.dtype(asset.dtype)
            fill = raw_dtype.type(asset.nodata)  # a numpy scalar: stackstac checks it casts to the dtype
        else:  # interpolating resamplers need floats; NaN marks what nothing was read into
            raw_dtype, fill = np.dtype("float64"), np.nan
        raw, ids = stack_asset(
            records, asset, grid=grid, chunks=out_chunks, resampling=asset_resampling, dtype=raw_dtype,
            fill=fill, sign=sign, check_all_fill=on_all_fill == "raise",
        )
        missing = None
        if is_qa:
            values, dtype = raw, raw_dtype
        elif fused:  # raw DN until the fused kernel; mosaicked where the physical value would be NaN
            values, dtype, physical[asset.role] = raw, raw_dtype, _physical_params(asset)
            missing = functools.partial(_physical_missing, params=physical[asset.role])
        else:
            values, dtype, fill = _physical_lazy(raw, asset), np.dtype("float32"), np.nan
        cube = _mosaic(values, ids, groups, fill=fill, dtype=dtype, grid=grid, chunks=out_chunks, missing=missing)
        if out_chunks["time"] != 1:
            cube = cube.rechunk({0: out_chunks["time"]})
        variables[asset.role] = (("time", "y", "x"), cube, _variable_attrs(asset, asset_resampling))

    times = np.array([by_id[group[0]].time for group in groups], dtype="datetime64[ns]")
    ds = xr.Dataset(
        variables,
        coords={"time": ("time", times, {"standard_name": "time", "axis": "T"})},
        attrs={
            "collection": spec.name,
            "collection_title": spec.title,
            "engine": engine,
            "item_ids": [r.id for r in records],
            "groupby": str(groupby),
            "grid": grid.to_dict(),
        },
    )
    ds = grid.attach(ds)
    if fused:
        from unique_xr.load.fused import scale_mask_index

        return scale_mask_index(ds, spec, physical, indices=indices, **mask_options)
    if mask_options is not None:
        from unique_xr.load.masks import apply_qa_mask

        ds = apply_qa_mask(ds, spec, drop_qa=mask_options["drop_qa"],
                           check_all_masked=mask_options["check_all_masked"], **mask_options["options"])
    if indices:
        from unique_xr.features.indices import add_indices

        ds = add_indices(ds, indices)
    return ds


def _mask_options(mask) -> dict[str, Any] | None:
    """``load(mask=...)`` -> the keywords of :func:`~unique_xr.load.fused.scale_mask_index` (None: no mask)."""
    if mask is False or mask is None:
        return None
    if mask is not True and not isinstance(mask, Mapping):
        raise SpecError(f"mask must be True, False or a dict of apply_qa_mask keywords, got {mask!r}.")
    options = dict(mask) if isinstance(mask, Mapping) else {}
    return {"drop_qa": options.pop("drop_qa", True), "check_all_masked": options.pop("check_all_masked", True),
            "options": options}


def _fusable(asset_specs: Sequence[AssetSpec], resampling: str) -> bool:
    """Whether every band is read raw (8/16-bit, nearest, with a nodata) and every QA layer is 8/16-bit."""
    bands = [a for a in asset_specs if not a.is_qa]
    return bool(bands) and resampling == "nearest" and all(
        _small_int(a.dtype) and (a.is_qa or a.nodata is not None) for a in asset_specs
    )


def _physical_params(asset: AssetSpec) -> tuple:
    """The arguments of :func:`_physical_table` for a band read raw."""
    return (np.dtype(asset.dtype).str, asset.nodata, asset.valid_range, asset.scale, asset.offset)


def _nan_in_table(raw: np.ndarray, *, params: tuple) -> np.ndarray:
    return np.isnan(to_physical(raw, nodata=params[1], valid_range=params[2], scale=params[3], offset=params[4]))


def _physical_missing(raw, *, params: tuple):
    """Lazy: where a raw band's physical value is NaN (nodata or outside the valid range)."""
    return raw.map_blocks(_nan_in_table, params=params, dtype=bool, meta=np.empty((0,) * raw.ndim, bool))


def _small_int(dtype: str) -> bool:
    d = np.dtype(dtype)
    return d.kind in "iu" and d.itemsize <= 2


@functools.lru_cache(maxsize=64)
def _physical_table(dtype: str, nodata, valid_range, scale: float, offset: float) -> np.ndarray:
    """float32 physical value of every raw value of an 8/16-bit integer ``dtype`` (NaN where missing)."""
    info = np.iinfo(np.dtype(dtype))
    every = np.arange(info.min, info.max + 1, dtype=np.float64)
    return to_physical(every, nodata=nodata, valid_range=valid_range, scale=scale, offset=offset)


def to_physical(
    raw: np.ndarray,
    *,
    nodata: float | None,
    valid_range: tuple[float, float] | None,
    scale: float,
    offset: float,
) -> np.ndarray:
    """Raw values -> float32 physical values: ``raw * scale + offset``, NaN where raw is missing.

    Missing: NaN already, equal to ``nodata``, or outside ``valid_range`` (raw units). The
    arithmetic is done in float64 and rounded once to float32.

    Examples
    --------
    >>> import numpy as np
    >>> to_physical(np.array([0.0, 10000.0, 20000.0, 50000.0]), nodata=0, valid_range=(7273, 43636),
    ...             scale=2.75e-5, offset=-0.2)  # Landsat C2 L2 surface reflectance
    array([  nan, 0.075, 0.35 ,   nan], dtype=float32)
    """
    raw = np.asarray(raw)
    if raw.dtype.kind in "iu" and raw.dtype.itemsize <= 2:
        # 8- and 16-bit rasters (all of MODIS and Landsat): one gather through a lookup table of
        # every possible raw value, computed exactly as below; far faster than float64 arithmetic.
        table = _physical_table(raw.dtype.str, nodata, valid_range, scale, offset)
        return table[raw.astype(np.int32) - np.iinfo(raw.dtype).min if raw.dtype.kind == "i" else raw]
    values = raw.astype(np.float64)
    missing = np.isnan(values)
    if nodata is not None:
        missing |= values == nodata
    if valid_range is not None:
        missing |= (values < valid_range[0]) | (values > valid_range[1])
    out = values * scale + offset
    out[missing] = np.nan
    return out.astype(np.float32)


# ============================================================================== argument checks
def _check_arguments(*, grid, engine, resampling, sign, groupby, on_all_fill) -> None:
    if not isinstance(grid, GridSpec):
        raise SpecError(
            f"grid must be a unique_xr.GridSpec, got {type(grid).__name__}. Build one with "
            "GridSpec.from_bbox((west, south, east, north), resolution=30)."
        )
    if engine not in ENGINES:
        raise SpecError(f"engine must be one of {ENGINES}, got {engine!r}.")
    if engine == "stackstac" and grid.epsg is None:
        raise CRSError(
            f"stackstac needs a target CRS with an EPSG code, but the grid's CRS has none ({grid.crs[:60]}...). "
            "Use engine='odc', or a grid in an EPSG CRS such as the UTM zone of the area."
        )
    from rasterio.enums import Resampling

    if not isinstance(resampling, str) or resampling not in Resampling.__members__:
        raise SpecError(
            f"resampling must be one of {sorted(Resampling.__members__)}, got {resampling!r}."
        )
    if sign is not None and not callable(sign):
        raise SpecError(f"sign must be a callable href -> href (e.g. planetary_computer.sign), got {sign!r}.")
    if groupby not in _GROUPBYS:
        raise SpecError(f"groupby must be one of {_GROUPBYS}, got {groupby!r}.")
    if on_all_fill not in ("raise", "nan"):
        raise SpecError(f"on_all_fill must be 'raise' or 'nan', got {on_all_fill!r}.")


def _resolve_chunks(chunks: Mapping[str, int] | None, grid: GridSpec) -> dict[str, int]:
    chunks = dict(chunks or {})
    unknown = set(chunks) - set(DEFAULT_CHUNKS)
    if unknown:
        raise SpecError(f"chunks may only name {tuple(DEFAULT_CHUNKS)}, got {sorted(unknown)}.")
    out = {**DEFAULT_CHUNKS, **chunks}
    ny, nx = grid.shape
    for dim, size in out.items():
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or (size < 1 and size != -1):
            raise SpecError(f"chunks[{dim!r}] must be a positive int or -1 (whole dimension), got {size!r}.")
    out["y"] = ny if out["y"] == -1 else min(int(out["y"]), ny)
    out["x"] = nx if out["x"] == -1 else min(int(out["x"]), nx)
    out["time"] = int(out["time"])
    return out


# ============================================================================ engines (raw values)
def _qa_fill(asset: AssetSpec) -> int:
    """"No data read" for a QA asset: its registry nodata, else the dtype's largest value."""
    dtype = np.dtype(asset.dtype)
    value = asset.nodata if asset.nodata is not None else np.iinfo(dtype).max
    return dtype.type(value)


def _asset_href(record: _ItemRecord, key: str):
    from unique_xr.load.readers import AssetHref

    return AssetHref(record.item["assets"][key]["href"], item_id=record.id, asset_key=key)


def _stack_asset_stackstac(records, asset: AssetSpec, *, grid, chunks, resampling, dtype, fill, sign,
                           check_all_fill):
    """Raw values of one asset for the items that touch the grid: ``(n_items, y, x)`` dask array, ids."""
    stackstac = import_optional("stackstac", purpose="loading STAC items (engine='stackstac')")
    from rasterio.enums import Resampling

    from unique_xr.load import readers

    plain = []
    for r in records:
        footprint = r.footprints[asset.key]
        if footprint is None:
            continue
        plain.append({
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": r.id,
            # stackstac only understands proj:epsg, so each asset is described by its footprint
            # already in the grid's CRS; the file itself is read and warped with its own CRS.
            "properties": {"datetime": str(r.time) + "Z", "proj:epsg": grid.epsg, "proj:bbox": list(footprint)},
            "assets": {asset.key: {"href": _asset_href(r, asset.key), "type": "image/tiff"}},
        })
    if not plain:
        return None, []
    reader = functools.partial(
        readers.CheckedRioReader, asset_key=asset.key, nodata=asset.nodata, sign=sign,
        check_all_fill=check_all_fill,
    )
    arr = stackstac.stack(
        plain, assets=[asset.key], epsg=grid.epsg, resolution=grid.resolution, bounds=grid.bounds,
        snap_bounds=False, resampling=Resampling[resampling], chunksize=(1, 1, chunks["y"], chunks["x"]),
        dtype=dtype, fill_value=fill, rescale=False, sortby_date=False, xy_coords="center",
        properties=False, band_coords=False, gdal_env=readers.gdal_env(), errors_as_nodata=(), reader=reader,
    )
    _check_same_grid(arr.shape[-2:], arr.attrs["transform"], grid, engine="stackstac")
    return arr.data[:, 0], [str(i) for i in arr["id"].values]


def _by_input_order(item, parsed, idx: int) -> int:
    """odc-stac ``groupby``: one time step per item, in the order given."""
    return idx


def _stack_asset_odc(records, asset: AssetSpec, *, grid, chunks, resampling, dtype, fill, sign,
                     check_all_fill):
    """Like :func:`_stack_asset_stackstac`, with odc-stac (which reads ``proj:wkt2`` itself)."""
    odc_stac = import_optional("odc.stac", purpose="loading STAC items (engine='odc')")
    pystac = import_optional("pystac", purpose="loading STAC items (engine='odc')")
    from unique_xr.load import readers

    items, ids = [], []
    for r in records:
        if r.footprints[asset.key] is None:
            continue
        d = {k: v for k, v in r.item.items() if k not in ("assets", "links")}
        asset_dict = dict(r.item["assets"][asset.key])
        asset_dict.setdefault("type", "image/tiff; application=geotiff")
        d.update(assets={asset.key: asset_dict}, links=[])
        d.setdefault("stac_version", "1.0.0")
        d.setdefault("type", "Feature")
        d.setdefault("geometry", None)
        d.pop("collection", None)  # odc groups band config by collection id; one asset per call needs none
        items.append(pystac.Item.from_dict(d, preserve_dict=False))
        ids.append(r.id)
    if not items:
        return None, []
    driver = readers.CheckedOdcDriver(asset_key=asset.key, nodata=asset.nodata, sign=sign,
                                      check_all_fill=check_all_fill)
    ds = odc_stac.load(
        items, bands=[asset.key], geobox=grid.to_geobox(), groupby=_by_input_order,
        preserve_original_order=True, resampling=resampling, dtype=str(dtype), nodata=fill,
        chunks={"time": 1, "y": chunks["y"], "x": chunks["x"]}, fail_on_error=True, driver=driver,
        use_overviews=False,  # like stackstac's warped VRT: resample from full resolution
    )
    arr = ds[asset.key]
    _check_same_grid(arr.shape[-2:], ds.odc.geobox.transform, grid, engine="odc")
    if arr.sizes["time"] != len(ids):
        raise RuntimeError(f"odc-stac returned {arr.sizes['time']} time steps for {len(ids)} items")  # pragma: no cover
    return arr.data, ids


def _check_same_grid(shape, transform, grid: GridSpec, *, engine: str) -> None:
    if tuple(shape) != grid.shape or not transform.almost_equals(grid.transform, precision=1e-6 * grid.resolution):
        raise RuntimeError(  # pragma: no cover - a guard against engine behaviour changing under us
            f"{engine} built a {tuple(shape)} grid with transform {transform}, not the requested "
            f"{grid.shape} with {grid.transform}. Please report this."
        )


# ======================================================================= post-processing (lazy)
def _physical_lazy(raw, asset: AssetSpec):
    """:func:`to_physical` mapped over each chunk of a raw dask array."""
    import dask.array as da

    if raw is None:
        return None
    return da.map_blocks(
        to_physical, raw, dtype=np.float32, meta=np.empty((0,) * raw.ndim, np.float32),
        nodata=asset.nodata, valid_range=asset.valid_range, scale=asset.scale, offset=asset.offset,
    )


def _mosaic(values, ids: list[str], groups: list[list[str]], *, fill, dtype, grid: GridSpec, chunks, missing=None):
    """One ``(time, y, x)`` array: per group of items, the first non-fill value in time order.

    ``missing(array)`` (lazy boolean) says which values are not valid; default NaN, or ``fill`` for integers.
    """
    import dask.array as da

    if values is not None and [[i] for i in ids] == groups:
        return values  # nothing to mosaic and nothing missing: keep the engine's graph as it is
    position = {item_id: i for i, item_id in enumerate(ids)}
    spatial_chunks = (chunks["y"], chunks["x"])
    layers = []
    for group in groups:
        parts = [values[position[i]] for i in group if i in position]
        if not parts:  # no item of this day touches the grid for this asset
            layers.append(da.full(grid.shape, fill, dtype=dtype, chunks=spatial_chunks))
            continue
        out = parts[0]
        for part in parts[1:]:
            if missing is not None:
                gaps = missing(out)
            else:
                gaps = da.isnan(out) if np.issubdtype(dtype, np.floating) else out == fill
            out = da.where(gaps, part, out)
        layers.append(out)
    return da.stack(layers)


def _variable_attrs(asset: AssetSpec, resampling: str) -> dict[str, Any]:
    common = {"source_asset": asset.key, "resampling": resampling}
    if asset.is_qa:
        attrs = cf_attrs(asset.role, **common, nodata=int(_qa_fill(asset)), units="1")
        if asset.qa_layout:
            attrs["qa_layout"] = asset.qa_layout
    else:
        attrs = cf_attrs(
            asset.role, **common, scale_factor_applied=float(asset.scale), add_offset_applied=float(asset.offset),
            units=asset.units,
        )
        if asset.nodata is not None:
            attrs["raw_nodata"] = float(asset.nodata) if not float(asset.nodata).is_integer() else int(asset.nodata)
        if asset.valid_range is not None:
            attrs["raw_valid_range"] = [float(v) for v in asset.valid_range]
    attrs.setdefault("long_name", f"{asset.role} ({asset.key})")
    return attrs

