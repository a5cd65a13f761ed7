"""Prepare STAC items for the loader: plain dicts, times, CRSs and footprints in the grid's CRS.

Everything here reads metadata only (no pixels): which items touch the grid, when each was taken,
what CRS each asset is in (``proj:epsg``/``proj:code``, or ``proj:wkt2``/``proj:projjson`` for MODIS
items without an EPSG code), and how items group into output time steps.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from unique_xr.errors import CRSError, SpecError, UnknownAssetError
from unique_xr.grid import GridSpec
from unique_xr.search.collections import AssetSpec, CollectionSpec
from unique_xr.search.spec import bbox_2d

_BBox = tuple[float, float, float, float]


# ===================================================================================== items
def _absolute_href(asset) -> str:
    """An asset's href made absolute against its item's self link — except an absolute local path.

    pystac treats ``/data/x.tif`` as relative to a URL self link (an item fetched from a STAC API,
    e.g. ``rustac serve`` over a local catalog) and would turn it into ``http://host/data/x.tif``;
    a POSIX or Windows absolute path is already where the file is.
    """
    href = asset.href
    if "://" not in href and os.path.isabs(href):
        return href
    return asset.get_absolute_href() or href


def _as_item_dicts(items: Any) -> list[dict[str, Any]]:
    """Plain item dicts (absolute asset hrefs), duplicates by id dropped, from any accepted input."""
    if isinstance(items, Mapping):
        if items.get("type") == "FeatureCollection":
            items = items.get("features", [])
        else:
            items = [items]
    elif hasattr(items, "to_dict") and hasattr(items, "assets"):
        items = [items]  # one pystac.Item
    elif hasattr(items, "to_dict") and hasattr(items, "items"):
        items = list(items)  # pystac.ItemCollection
    if not isinstance(items, Iterable):
        raise SpecError(f"items must be a pystac ItemCollection or a list of items, got {type(items).__name__}.")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(item, Mapping):
            d = copy.deepcopy(dict(item))
        elif hasattr(item, "to_dict") and hasattr(item, "assets"):
            d = item.to_dict(include_self_link=False, transform_hrefs=False)
            for key, asset in item.assets.items():
                d["assets"][key]["href"] = _absolute_href(asset)
        else:
            raise SpecError(f"Each item must be a pystac.Item or an item dict, got {type(item).__name__}.")
        if "id" not in d or not isinstance(d.get("properties"), Mapping) or not isinstance(d.get("assets"), Mapping):
            raise SpecError(f"Not a STAC item (needs 'id', 'properties' and 'assets'): keys {sorted(d)}.")
        if d["id"] in seen:
            continue
        seen.add(d["id"])
        out.append(d)
    return out


def _check_collection(item_dicts: list[dict[str, Any]], spec: CollectionSpec) -> None:
    known = {spec.name, *spec.ids.values()}
    seen = {d.get("collection") for d in item_dicts} - {None}
    other = seen - known
    if other:
        raise SpecError(
            f"The items belong to collection(s) {sorted(other)}, but are being loaded as {spec.name!r} "
            f"({sorted(spec.ids.values())}). Pass collection= matching the items, and load one collection per call."
        )


def _check_assets_present(item_dicts, asset_specs: tuple[AssetSpec, ...], spec: CollectionSpec) -> None:
    for asset in asset_specs:
        lacking = [d for d in item_dicts if asset.key not in d["assets"]]
        if lacking:
            keys = sorted({k for d in lacking for k in d["assets"]})
            ids = [d["id"] for d in lacking]
            raise UnknownAssetError(
                f"Asset {asset.key!r} (role {asset.role!r}) of {spec.name!r} is missing from {len(ids)} of "
                f"{len(item_dicts)} items: {ids[:5]}{' ...' if len(ids) > 5 else ''}. Those items have assets "
                f"{keys}. Request assets every item has (assets=[...]), or leave those items out."
            )


@dataclass(frozen=True, kw_only=True)
class _ItemRecord:
    """What the loader needs from one item, worked out once before any graph is built."""

    id: str
    time: np.datetime64
    composite: bool
    item: dict[str, Any]
    footprints: dict[str, _BBox | None]  # asset key -> bounds in the grid CRS (None: does not touch the grid)


def _item_time(d: Mapping[str, Any]) -> tuple[np.datetime64, bool]:
    import pandas as pd

    props = d["properties"]
    start, when = props.get("start_datetime"), props.get("datetime")
    value, composite = (start, True) if start else (when, False)
    if not value:
        raise SpecError(
            f"Item {d['id']!r} has neither 'datetime' nor 'start_datetime' in its properties; "
            "cannot place it in time."
        )
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return np.datetime64(ts.to_datetime64(), "ns"), composite


def _prepare_items(item_dicts, asset_specs, grid: GridSpec) -> list[_ItemRecord]:
    """Time and per-asset footprints of each item; items touching the grid, sorted by (time, id)."""
    records = []
    for d in item_dicts:
        time, composite = _item_time(d)
        footprints = {
            a.key: _overlap_or_none(_asset_footprint(d, a.key, grid), grid) for a in asset_specs
        }
        if any(fp is not None for fp in footprints.values()) and not _geometry_misses_grid(d, grid):
            records.append(_ItemRecord(id=d["id"], time=time, composite=composite, item=d, footprints=footprints))
    if not records:
        boxes = [d.get("bbox") for d in item_dicts[:5]]
        raise CRSError(
            f"The grid ({grid.crs}, bounds {grid.bounds}, lon/lat {tuple(round(v, 4) for v in grid.bounds_latlon)}) "
            f"does not overlap any of the {len(item_dicts)} items (lon/lat bboxes {boxes}"
            f"{' ...' if len(item_dicts) > 5 else ''}). Check the grid's CRS and bounds (x/y order, UTM zone), "
            "or search items for the grid's area: search(..., bbox=grid.bounds_latlon)."
        )
    records.sort(key=lambda r: (r.time, r.id))
    return records


def _geometry_misses_grid(d: Mapping[str, Any], grid: GridSpec) -> bool:
    """Whether the item's ``geometry`` (its valid-data footprint) lies wholly outside the grid.

    The raster rectangle (``proj:transform`` x ``proj:shape``) of a Landsat scene is far larger than
    its tilted valid-data footprint; an item whose rectangle touches the grid but whose footprint
    does not would otherwise become an all-NaN time step. Unreadable geometries keep the item.
    """
    geometry = d.get("geometry")
    if not geometry:
        return False
    try:
        from odc.geo.geom import Geometry, box

        footprint = Geometry(geometry, "EPSG:4326").to_crs(grid.crs, resolution=grid.resolution * 32)
        if footprint.is_empty or not footprint.is_valid:
            return False
        return not footprint.intersects(box(*grid.bounds, grid.crs))
    except Exception:  # noqa: BLE001 - a geometry we cannot project is no reason to drop data
        return False


def _group_items(records: list[_ItemRecord], groupby, grid: GridSpec) -> list[list[str]]:
    """Item ids per output time step, in time order."""
    if groupby in (None, "id"):
        return [[r.id] for r in records]
    lon = _grid_centre_lon(grid)
    solar_offset = np.timedelta64(int(round(lon / 15.0 * 3600)), "s")
    groups: dict[np.datetime64, list[str]] = {}
    for r in records:
        day = (r.time if r.composite else r.time + solar_offset).astype("datetime64[D]")
        groups.setdefault(day, []).append(r.id)
    return [groups[day] for day in sorted(groups)]


def _grid_centre_lon(grid: GridSpec) -> float:
    from pyproj import Transformer

    left, bottom, right, top = grid.bounds
    lon, _ = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform((left + right) / 2, (bottom + top) / 2)
    return float(lon)


# ====================================================================== CRS and footprints
_PROJ_KEYS = ("proj:epsg", "proj:code", "proj:wkt2", "proj:projjson", "proj:transform", "proj:shape", "proj:bbox")


def _asset_proj(d: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The projection fields of asset ``key``: the item's, overridden by the asset's own."""
    props, asset = d["properties"], d["assets"][key]
    out = {k: props.get(k) for k in _PROJ_KEYS}
    for k in _PROJ_KEYS:
        if k in asset:
            out[k] = asset[k]
    if any(k in asset for k in ("proj:epsg", "proj:code", "proj:wkt2", "proj:projjson")):
        # an asset that states its own CRS replaces the item's CRS fields entirely
        for k in ("proj:epsg", "proj:code", "proj:wkt2", "proj:projjson"):
            out[k] = asset.get(k)
    return out


@functools.lru_cache(maxsize=256)
def _parse_crs(kind: str, value: str):
    from pyproj import CRS

    if kind == "epsg":
        return CRS.from_epsg(int(value))
    if kind == "projjson":
        return CRS.from_json(value)
    return CRS.from_user_input(value)


def _asset_crs(proj: Mapping[str, Any], item_id: str, key: str):
    from pyproj.exceptions import CRSError as PyprojCRSError

    candidates = [("epsg", proj.get("proj:epsg")), ("code", proj.get("proj:code")),
                  ("wkt2", proj.get("proj:wkt2")), ("projjson", proj.get("proj:projjson"))]
    for kind, value in candidates:
        if value is None or value == "":
            continue
        text = json.dumps(value) if kind == "projjson" and not isinstance(value, str) else str(value)
        try:
            return _parse_crs(kind, text)
        except (PyprojCRSError, ValueError, TypeError) as err:
            raise CRSError(
                f"Item {item_id!r}, asset {key!r}: could not parse proj:{kind} {str(value)[:80]!r}: {err}. "
                "Fix the item's projection metadata."
            ) from err
    raise CRSError(
        f"Cannot determine the CRS of item {item_id!r}, asset {key!r}: proj:epsg is "
        f"{proj.get('proj:epsg')!r} and there is no proj:code, proj:wkt2 or proj:projjson. The loader needs "
        "it to place the asset on the grid before reading. Use items with the STAC projection extension "
        "(Planetary Computer and Earth Search items have it; rio-stac adds it to local files)."
    )


@functools.lru_cache(maxsize=256)
def _transformer(src, dst: str):
    from pyproj import Transformer

    return Transformer.from_crs(src, dst, always_xy=True)


def _asset_footprint(d: Mapping[str, Any], key: str, grid: GridSpec) -> _BBox | None:
    """Bounds of asset ``key`` in the grid's CRS (densified edges, padded by two grid pixels)."""
    from affine import Affine

    proj = _asset_proj(d, key)
    crs = _asset_crs(proj, d["id"], key)
    transform, shape, bbox = proj.get("proj:transform"), proj.get("proj:shape"), proj.get("proj:bbox")
    n = 33
    t = np.linspace(0.0, 1.0, n)
    if transform is not None and shape is not None:
        height, width = shape[-2], shape[-1]
        cols = np.concatenate([t * width, np.full(n, width), (1 - t) * width, np.zeros(n)])
        rows = np.concatenate([np.zeros(n), t * height, np.full(n, height), (1 - t) * height])
        xs, ys = Affine(*transform[:6]) @ (cols, rows)
        src = crs
    elif bbox is not None:
        left, bottom, right, top = bbox_2d(bbox)
        xs = np.concatenate([left + t * (right - left), np.full(n, right), right - t * (right - left), np.full(n, left)])
        ys = np.concatenate([np.full(n, bottom), bottom + t * (top - bottom), np.full(n, top), top - t * (top - bottom)])
        src = crs
    elif d.get("bbox") is not None:
        west, south, east, north = bbox_2d(d["bbox"])
        if east < west:  # crosses the antimeridian
            east += 360.0
        xs = np.concatenate([west + t * (east - west), np.full(n, east), east - t * (east - west), np.full(n, west)])
        ys = np.concatenate([np.full(n, south), south + t * (north - south), np.full(n, north), north - t * (north - south)])
        xs = (xs + 180.0) % 360.0 - 180.0
        src = "EPSG:4326"
    else:
        raise CRSError(
            f"Item {d['id']!r}, asset {key!r} has no proj:transform/proj:shape, proj:bbox or bbox: its "
            "footprint is unknown. Add the projection extension to the item."
        )
    src_key = src if isinstance(src, str) else src.to_wkt()
    with np.errstate(all="ignore"):
        gx, gy = _transformer(src_key, grid.crs).transform(np.asarray(xs, float), np.asarray(ys, float))
    ok = np.isfinite(gx) & np.isfinite(gy) & (np.abs(gx) < 1e15) & (np.abs(gy) < 1e15)
    if not ok.any():
        return None
    pad = 2 * grid.resolution
    return (float(gx[ok].min()) - pad, float(gy[ok].min()) - pad, float(gx[ok].max()) + pad, float(gy[ok].max()) + pad)


def _overlap_or_none(bounds: _BBox | None, grid: GridSpec) -> _BBox | None:
    if bounds is None:
        return None
    left, bottom, right, top = grid.bounds
    if bounds[0] < right and bounds[2] > left and bounds[1] < top and bounds[3] > bottom:
        return bounds
    return None
