"""Real recorded Planetary Computer STAC items, made readable offline.

:func:`recorded_items` returns the real Item JSON that the Planetary Computer STAC API answered for
each collection of the registry (shipped in ``unique_xr/testing/data/recorded``, see its
SOURCE.md). Their asset hrefs point at Azure Blob storage, so :func:`localize_items` writes one
small COG per asset the registry knows and points the href at it: the COG lies inside the item's
footprint, on the item's native grid (MODIS sinusoidal from ``proj:wkt2``, Landsat UTM from
``proj:epsg``, DEM / land cover in their own CRS), with raw values that are plausible for the
asset (dtype, nodata, valid range, scale from the registry; QA bands hold real bit patterns:
clear, water, cloud, dilated cloud and shadow). ``proj:shape``, ``proj:transform`` (and
``proj:bbox`` / ``proj:geometry`` where present) are rewritten to describe the small file;
everything else stays the real metadata. :func:`write_item_collection` writes the result as a
catalog file that :func:`unique_xr.testing.stac_server.serve_stac` or a local search reads.

Examples
--------
>>> import tempfile
>>> from unique_xr.testing.recorded import localize_items, recorded_items
>>> items = localize_items(recorded_items("mcd43a4"), tempfile.mkdtemp(), assets=["red", "nir"], size=16)
>>> items[0]["properties"]["proj:shape"]
[16, 16]
"""

from __future__ import annotations

import copy
import json
import zlib
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from unique_xr.errors import UnknownAssetError
from unique_xr.search.collections import (
    ESA_WORLDCOVER_CLASSES,
    IO_LULC_CLASSES,
    AssetSpec,
    CollectionSpec,
    get_collection,
)

__all__ = [
    "RECORDED_COLLECTIONS",
    "recorded_dir",
    "recorded_items",
    "localize_items",
    "write_item_collection",
    "localized_catalog",
]

#: Planetary Computer collection ids with a recorded item (one each, plus 4 Tasmania Landsat items).
RECORDED_COLLECTIONS: tuple[str, ...] = (
    "modis-43A4-061",
    "modis-09A1-061",
    "modis-13A1-061",
    "modis-11A1-061",
    "modis-15A2H-061",
    "modis-17A2H-061",
    "landsat-c2-l2",
    "cop-dem-glo-30",
    "nasadem",
    "esa-worldcover",
    "io-lulc",
)
_EXTRA_FILES = ("items/landsat-c2-l2-pc.json",)
_PROJ_GRID_KEYS = ("proj:shape", "proj:transform", "proj:bbox", "proj:geometry")
_DROP_ASSET_KEYS = ("file:size", "file:checksum", "file:header_size")


def recorded_dir() -> Path:
    """Folder of the shipped recorded item JSON."""
    return Path(str(resources.files("unique_xr.testing") / "data" / "recorded"))


def recorded_items(collection: str | CollectionSpec | None = None) -> list[dict[str, Any]]:
    """The real recorded Planetary Computer items (fresh copies), optionally of one collection.

    Parameters
    ----------
    collection
        Registry name, provider id or alias (``"mcd43a4"``, ``"modis-43A4-061"``); None: all.
    """
    root = recorded_dir()
    files = [root / "items_from_cassettes" / f"{c}.itemcollection.json" for c in RECORDED_COLLECTIONS]
    files += [root / f for f in _EXTRA_FILES]
    items: dict[str, dict[str, Any]] = {}
    for f in files:
        data = json.loads(f.read_text())
        for item in data["features"] if isinstance(data, dict) else data:
            items.setdefault(item["id"], item)
    out = list(items.values())
    if collection is not None:
        cid = get_collection(collection).collection_id("planetary-computer")
        out = [it for it in out if it.get("collection") == cid]
    return copy.deepcopy(out)


# ------------------------------------------------------------------------------ grids
def _crs_of(item: dict[str, Any], asset: dict[str, Any]) -> str:
    for source in (asset, item["properties"]):
        code = source.get("proj:code")
        if code:
            return str(code)
        if source.get("proj:epsg"):
            return f"EPSG:{int(source['proj:epsg'])}"
        if source.get("proj:wkt2"):
            return str(source["proj:wkt2"])
        if source.get("proj:projjson"):
            return json.dumps(source["proj:projjson"])
    return "EPSG:4326"


def _native_grid(item: dict[str, Any], asset: dict[str, Any]):
    """(crs, Affine, (height, width), where) of an asset: its own proj fields, else the item's."""
    from affine import Affine

    where = "asset" if "proj:transform" in asset and "proj:shape" in asset else "item"
    source = asset if where == "asset" else item["properties"]
    if "proj:transform" not in source or "proj:shape" not in source:
        raise ValueError(f"item {item['id']!r} has no proj:transform / proj:shape to place a local COG on")
    t = source["proj:transform"]
    return _crs_of(item, asset), Affine(*t[:6]), tuple(int(v) for v in source["proj:shape"]), where


def _footprint(item: dict[str, Any]):
    from shapely.geometry import box, shape

    geom = item.get("geometry")
    return shape(geom) if geom else box(*item["bbox"][:4])


def _window_inside(footprint, to_lonlat, transform, row0: int, col0: int, h: int, w: int) -> bool:
    """True if the window's corners and edge midpoints lie inside the lon/lat footprint."""
    from shapely.geometry import Point

    fr = np.array([0, 0, 1, 1, 0.5, 0, 1, 0.5, 0.5])
    fc = np.array([0, 1, 0, 1, 0, 0.5, 0.5, 1, 0.5])
    xs, ys = transform @ (col0 + fc * w, row0 + fr * h)
    lon, lat = to_lonlat.transform(np.asarray(xs), np.asarray(ys))
    points = zip(lon, lat, strict=True)
    return all(np.isfinite(a) and np.isfinite(b) and footprint.contains(Point(a, b)) for a, b in points)


def _centers(center) -> list[tuple[float, float]]:
    """``None``, one ``(lon, lat)`` or a sequence of them, as a list of candidates."""
    if center is None:
        return []
    if len(center) == 2 and all(isinstance(v, int | float) for v in center):
        return [(float(center[0]), float(center[1]))]
    return [(float(lon), float(lat)) for lon, lat in center]


def _choose_window(item, crs: str, transform, shape: tuple[int, int], size: int,
                   centers: list[tuple[float, float]]) -> tuple[int, int, int, int]:
    """``(row0, col0, h, w)`` of a ``size``-pixel window of the native grid inside the footprint."""
    from pyproj import Transformer
    from shapely.geometry import Point

    height, width = shape
    h, w = min(size, height), min(size, width)
    footprint = _footprint(item)
    to_native = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    rep = footprint.representative_point()
    candidates = [c for c in centers if footprint.contains(Point(*c))] + [(rep.x, rep.y)]
    west, south, east, north = footprint.bounds
    grid = [(lon, lat) for lon in np.linspace(west, east, 9)[1:-1] for lat in np.linspace(south, north, 9)[1:-1]]
    candidates += sorted(grid, key=lambda p: (p[0] - rep.x) ** 2 + (p[1] - rep.y) ** 2)
    first = None
    for lon, lat in candidates:
        x, y = to_native.transform(lon, lat)
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        col, row = ~transform @ (x, y)
        col0 = int(np.clip(round(col - w / 2), 0, width - w))
        row0 = int(np.clip(round(row - h / 2), 0, height - h))
        first = first or (row0, col0, h, w)
        if _window_inside(footprint, to_lonlat, transform, row0, col0, h, w):
            return row0, col0, h, w
    if first is None:
        raise ValueError(f"could not place a {size}-pixel window inside item {item['id']!r}")
    return first


def _window_metadata(transform, row0: int, col0: int, h: int, w: int, n_transform: int) -> dict[str, Any]:
    from affine import Affine

    t = transform @ Affine.translation(col0, row0)
    values = [t.a, t.b, t.c, t.d, t.e, t.f] + ([0.0, 0.0, 1.0] if n_transform == 9 else [])
    xs, ys = t @ (np.array([0, w, w, 0]), np.array([0, 0, h, h]))
    minx, maxx, miny, maxy = float(min(xs)), float(max(xs)), float(min(ys)), float(max(ys))
    ring = [[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]
    return {
        "proj:shape": [h, w],
        "proj:transform": values,
        "proj:bbox": [minx, miny, maxx, maxy],
        "proj:geometry": {"type": "Polygon", "coordinates": [ring]},
        "_affine": t,
    }


# ----------------------------------------------------------------------------- values
def _smooth(rng: np.random.Generator, shape: tuple[int, int], cells: int = 4) -> np.ndarray:
    """A smooth random field in [0, 1] (bilinear upsampling of coarse noise)."""
    h, w = shape
    coarse = rng.random((cells + 1, cells + 1))
    yi, xi = np.linspace(0, cells, h), np.linspace(0, cells, w)
    rows = np.array([np.interp(xi, np.arange(cells + 1), r) for r in coarse])
    field = np.array([np.interp(yi, np.arange(cells + 1), rows[:, j]) for j in range(w)]).T
    lo, hi = field.min(), field.max()
    return (field - lo) / (hi - lo) if hi > lo else np.zeros(shape)


def _scene(item_id: str, seed: int, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Per-item surface and sky: vegetation, water, clouds (with a dilated ring) and their shadows."""
    rng = np.random.default_rng([seed, zlib.crc32(item_id.encode())])
    veg = _smooth(rng, shape)
    water = _smooth(rng, shape) < 0.06
    cloud_field = _smooth(rng, shape, cells=3)
    cloud = cloud_field > 0.88
    dilated = (cloud_field > 0.80) & ~cloud
    shift = max(1, shape[0] // 16)
    shadow = np.roll(cloud, (shift, shift), axis=(0, 1)) & ~cloud & ~dilated
    return {
        "veg": veg, "water": water & ~cloud, "cloud": cloud, "dilated": dilated, "shadow": shadow,
        "terrain": _smooth(rng, shape, cells=5), "noise": rng.normal(1.0, 0.03, shape), "rng": rng,
    }


# physical surface reflectance of vegetation-free ground (a) and its change with vegetation cover (b)
_REFLECTANCE = {
    "coastal": (0.07, -0.03), "blue": (0.06, -0.03), "green": (0.09, -0.03), "red": (0.11, -0.08),
    "nir": (0.20, 0.25), "nir2": (0.22, 0.20), "swir1": (0.26, -0.10), "swir2": (0.19, -0.11),
}
_WATER_REFLECTANCE = {"coastal": 0.06, "blue": 0.05, "green": 0.04, "red": 0.03, "nir": 0.01}
_SINGLE_ACQUISITION = ("landsat-c2-l2", "mod09a1")  # clouds show in the reflectance itself


def _reflectance(role: str, s: dict[str, np.ndarray], collection: str) -> np.ndarray:
    a, b = _REFLECTANCE.get(role, (0.15, 0.0))
    value = (a + b * s["veg"]) * s["noise"]
    value = np.where(s["water"], _WATER_REFLECTANCE.get(role, 0.005), value)
    if collection in _SINGLE_ACQUISITION:
        value = np.where(s["shadow"], value * 0.4, value)
        value = np.where(s["cloud"], 0.55 if role not in ("swir1", "swir2") else 0.35, value)
    return value


def _bits_landsat(s) -> np.ndarray:
    # QA_PIXEL: bit1 dilated, 3 cloud, 4 shadow, 6 clear, 7 water; confidences cloud 8-9, shadow 10-11,
    # snow 12-13, cirrus 14-15 (01 low, 11 high)
    low = (1 << 8) | (1 << 10) | (1 << 12) | (1 << 14)
    qa = np.full(s["veg"].shape, low | (1 << 6), dtype=np.uint16)  # clear land: 21824
    qa[s["water"]] = low | (1 << 6) | (1 << 7)  # clear water: 21952
    qa[s["dilated"]] = low | (1 << 1)  # 21762
    qa[s["shadow"]] = (1 << 4) | (1 << 8) | (3 << 10) | (1 << 12) | (1 << 14)  # 23824
    qa[s["cloud"]] = (1 << 3) | (3 << 8) | (1 << 10) | (1 << 12) | (1 << 14)  # 22280
    return qa


def _qa(collection: str, a: AssetSpec, s, platform: str) -> np.ndarray:
    shape, rng = s["veg"].shape, s["rng"]
    cloud, water = s["cloud"], s["water"]
    layout = a.qa_layout
    if layout == "landsat_qa_pixel":
        return _bits_landsat(s)
    if layout == "mcd43a4_mandatory":  # 0 full BRDF inversion, 1 magnitude inversion
        return np.where(cloud | (rng.random(shape) < 0.15), 1, 0)
    if layout == "mod09a1_state":  # bits 0-1 cloud state, 2 shadow, 3-5 land/water, 6-7 aerosol, 10 cloud, 13 adjacent
        state = np.full(shape, (1 << 3) | (1 << 6))  # clear land, low aerosol: 72
        state = np.where(water, (3 << 3) | (1 << 6), state)  # shallow inland water: 88
        state = np.where(s["dilated"], state | (1 << 13), state)
        state = np.where(s["shadow"], state | (1 << 2), state)
        return np.where(cloud, 1 | (1 << 3) | (1 << 6) | (1 << 10), state)  # 1097
    if layout == "mod13a1_reliability":  # 0 good, 1 marginal, 3 cloudy
        return np.where(cloud, 3, np.where(rng.random(shape) < 0.15, 1, 0))
    if layout == "mod11a1_qc":  # bits 0-1: 00 good, 01 other quality, 10 not produced (cloud)
        return np.where(cloud, 2, np.where(rng.random(shape) < 0.2, 1 | (1 << 6), 0))
    aqua = 2 if "aqua" in platform.lower() else 0
    if a.key == "sur_refl_qc_500m":  # bits 0-1 MODLAND, 30 atmospheric correction done
        return np.where(cloud, (1 << 30) | 1, 1 << 30)
    if a.key.endswith("VI_Quality"):  # bits 0-1 VI quality, 2-5 usefulness, 6-7 aerosol, 10 mixed cloud,
        # 11-13 land/water
        clear = np.where(water, (1 << 6) | (3 << 11), (1 << 6) | (1 << 11))  # 6208 water, 2112 land
        return np.where(cloud, 2 | (12 << 2) | (1 << 6) | (1 << 10) | (1 << 11), clear)
    if a.key in ("FparLai_QC", "Psn_QC_500m"):  # bit0 MODLAND, 1 sensor (Aqua), 3-4 cloud state, 5-7 algorithm
        return np.where(cloud, 1 | aqua | (1 << 3) | (3 << 5), aqua)
    return np.zeros(shape)  # qa_radsat and other flag bands: nothing saturated / flagged


def _landcover_codes(collection: str, s) -> np.ndarray:
    v, water = s["veg"], s["water"]
    if collection == "esa-worldcover":
        codes = sorted(ESA_WORLDCOVER_CLASSES)
        edges, classes, water_code = [0.15, 0.3, 0.5, 0.7], [60, 20, 30, 40, 10], 80
    else:
        codes = sorted(IO_LULC_CLASSES)
        edges, classes, water_code = [0.15, 0.3, 0.5, 0.7], [8, 6, 3, 5, 2], 1
    assert set(classes) <= set(codes) and water_code in codes
    out = np.asarray(classes)[np.digitize(v, edges)]
    return np.where(water, water_code, out)


def _day_of_year(item: dict[str, Any], s) -> np.ndarray:
    import pandas as pd

    props = item["properties"]
    start = pd.Timestamp(props.get("start_datetime") or props["datetime"])
    end = pd.Timestamp(props.get("end_datetime") or props["datetime"])
    first, last = start.dayofyear, max(start.dayofyear, end.dayofyear if end.year == start.year else 366)
    return s["rng"].integers(first, last + 1, size=s["veg"].shape)


def _physical(collection: str, a: AssetSpec, item: dict[str, Any], s) -> np.ndarray | None:
    """Physical values of a non-QA asset (None: the raw values are produced directly)."""
    v, water, cloud = s["veg"], s["water"], s["cloud"]
    if a.kind == "reflectance":
        return _reflectance(a.role, s, collection)
    if a.kind == "index":
        red, nir, blue = (_reflectance(r, s, "") for r in ("red", "nir", "blue"))
        if a.role == "evi":
            return 2.5 * (nir - red) / (nir + 6 * red - 7.5 * blue + 1)
        return (nir - red) / (nir + red)
    if a.kind == "temperature":
        lst = 283.0 + 5.0 * (1 - v) if "night" in a.role else 293.0 + 14.0 * (1 - v)
        lst = np.where(water, 291.0, lst) * s["noise"] ** 0.1
        if collection == "landsat-c2-l2":
            return np.where(cloud, 268.0, lst)
        return np.where(cloud, np.nan, lst)  # MODIS LST is not produced under cloud
    if a.kind == "biophysical":
        value = 0.3 + 5.5 * v if a.role == "lai" else 0.1 + 0.8 * v
        return np.where(water, np.nan, value)
    if a.kind == "flux":
        value = 0.5 + 9.0 * v if a.role.startswith("gpp") else 0.3 + 5.0 * v
        return np.where(water, np.nan, value)
    if a.kind == "elevation":
        return 20.0 + 1200.0 * s["terrain"]
    return None


def _raw_values(collection: str, a: AssetSpec, item: dict[str, Any], s) -> np.ndarray:
    dtype = np.dtype(a.dtype)
    if a.kind == "qa":
        raw = _qa(collection, a, s, str(item["properties"].get("platform", "")))
        return raw.astype(dtype)
    if a.kind == "landcover":
        return _landcover_codes(collection, s).astype(dtype)
    if a.kind == "angle":
        return _day_of_year(item, s).astype(dtype)
    phys = _physical(collection, a, item, s)
    if phys is None:
        raise UnknownAssetError(f"no synthetic value model for asset {a.key!r} (kind {a.kind!r}) of {collection!r}")
    raw = (phys - a.offset) / a.scale
    if a.valid_range is not None:
        raw = np.clip(raw, *a.valid_range)
    if dtype.kind in "iu":
        raw = np.round(raw)
    missing = ~np.isfinite(raw)
    if missing.any():
        if a.nodata is None:
            raise UnknownAssetError(f"asset {a.key!r} of {collection!r} has missing pixels but no nodata value")
        raw = np.where(missing, a.nodata, raw)
    return raw.astype(dtype)


# ---------------------------------------------------------------------------- localize
def _is_raster(asset: dict[str, Any]) -> bool:
    return "image/tiff" in str(asset.get("type", "")) or "raster:bands" in asset


def _resolve_assets(spec: CollectionSpec, item: dict[str, Any], names: Sequence[str] | None,
                    matched: set[str]) -> list[AssetSpec]:
    if names is None:
        return [a for a in spec.assets if a.key in item["assets"]]
    out = []
    for name in names:
        try:
            a = spec.asset(name)
        except UnknownAssetError:
            continue
        if a.key in item["assets"]:
            out.append(a)
            matched.add(name)
    return out


def localize_items(
    items: Iterable[dict[str, Any]],
    directory: str | Path,
    *,
    assets: Sequence[str] | None = None,
    size: int = 64,
    seed: int = 0,
    center: tuple[float, float] | Sequence[tuple[float, float]] | None = None,
) -> list[dict[str, Any]]:
    """Copies of ``items`` whose registry assets point at small local COGs written under ``directory``.

    Parameters
    ----------
    items
        STAC item dicts of registry collections (e.g. :func:`recorded_items`); not modified.
    directory
        Where ``<collection>/<item id>/<asset key>.tif`` are written.
    assets
        Asset keys or roles to write (each item takes those its collection has); None: every
        registry asset present in the item. Other assets keep their real (remote) hrefs.
    size
        Width and height of each COG in native pixels (smaller if the native grid is smaller).
    seed
        Seed of the synthetic values (each item also mixes in its id, so items differ).
    center
        ``(lon, lat)``, or a list of them, to centre the windows on: each item takes the first
        that lies inside its footprint (the window is then shifted, if need be, to stay on the
        native grid and inside the footprint); default: a point inside the footprint.

    Returns
    -------
    list of dict
        The rewritten items: local absolute hrefs; ``proj:shape`` / ``proj:transform`` (and
        ``proj:bbox`` / ``proj:geometry`` where present) describe the written files. Where those
        fields were item-level and some raster assets stay remote, the remote assets keep the
        real values as asset-level fields, so every asset's grid stays true.
    """
    from unique_xr.testing.cog import write_cog

    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    directory = Path(directory).resolve()
    centers = _centers(center)
    matched: set[str] = set()
    out = []
    for original in items:
        item = copy.deepcopy(original)
        spec = get_collection(item["collection"])
        chosen = _resolve_assets(spec, item, assets, matched)
        props = item["properties"]
        windows: dict[tuple, dict[str, Any]] = {}
        item_level_meta = None
        for a in chosen:
            asset = item["assets"][a.key]
            crs, transform, shape, where = _native_grid(item, asset)
            key = (crs, tuple(transform)[:6], shape)
            if key not in windows:
                row0, col0, h, w = _choose_window(item, crs, transform, shape, size, centers)
                source = asset if where == "asset" else props
                windows[key] = _window_metadata(transform, row0, col0, h, w, len(source["proj:transform"]))
            meta = windows[key]
            t = meta["_affine"]
            h, w = meta["proj:shape"]
            scene = _scene(item["id"], seed, (h, w))
            data = _raw_values(spec.name, a, item, scene)
            path = directory / item["collection"] / item["id"] / f"{a.key}.tif"
            block = 128 if max(h, w) <= 128 else 256  # GDAL's COG driver wants >= 128
            write_cog(path, data, crs=crs, transform=t, nodata=a.nodata, blocksize=block)
            asset["href"] = str(path)
            for k in _DROP_ASSET_KEYS:
                asset.pop(k, None)
            for band in asset.get("raster:bands", []) or []:
                band.pop("statistics", None)
                band.pop("histogram", None)
            if where == "asset":  # (an item-level proj:bbox would otherwise be inherited by the asset)
                for k in _PROJ_GRID_KEYS:
                    if k in asset or k in props or k in ("proj:shape", "proj:transform"):
                        asset[k] = copy.deepcopy(meta[k])
            else:
                item_level_meta = meta
        if item_level_meta is not None:
            localized = {a.key for a in chosen}
            original_grid = {k: copy.deepcopy(props[k]) for k in _PROJ_GRID_KEYS if k in props}
            for key, asset in item["assets"].items():  # remote rasters keep their true grid
                if key not in localized and _is_raster(asset) and "proj:transform" not in asset:
                    for k, v in original_grid.items():
                        asset.setdefault(k, copy.deepcopy(v))
            for k in _PROJ_GRID_KEYS:
                if k in props or k in ("proj:shape", "proj:transform"):
                    props[k] = copy.deepcopy(item_level_meta[k])
        out.append(item)
    if assets is not None:
        unknown = sorted(set(assets) - matched)
        if unknown:
            raise UnknownAssetError(
                f"asset(s) {unknown} matched no item: not an asset key or role of these items' collections "
                f"({sorted({it['collection'] for it in out})})."
            )
    return out


def write_item_collection(items: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write items as a catalog file: ``.json`` (FeatureCollection), ``.ndjson`` or ``.parquet``.

    stac-geoparquet is written with rustac. (rustac 0.9 cannot put items that have a
    ``proj:geometry`` property and items that lack it in one file; write one file per collection.)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    items = list(items)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".geoparquet"):
        from unique_xr._optional import import_optional

        rustac = import_optional("rustac", purpose="writing stac-geoparquet")
        rustac.write_sync(str(path), items)
    elif suffix in (".ndjson", ".jsonl"):
        path.write_text("".join(json.dumps(it) + "\n" for it in items))
    else:
        path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    return path


def localized_catalog(
    directory: str | Path,
    collections: Sequence[str] | None = None,
    *,
    assets: Sequence[str] | None = None,
    size: int = 64,
    seed: int = 0,
    center: tuple[float, float] | Sequence[tuple[float, float]] | None = None,
) -> Path:
    """Localize the recorded items (of ``collections``, default all) and write ``catalog.json`` there.

    Returns the catalog path, ready for :func:`~unique_xr.testing.stac_server.serve_stac` or for
    ``search(..., provider=path)``. ``assets``, ``size``, ``seed`` and ``center`` are those of
    :func:`localize_items`; the COGs go to ``directory/cogs``.
    """
    if collections is None:
        items = recorded_items()
    else:
        items = [it for c in collections for it in recorded_items(c)]
    local = localize_items(items, Path(directory) / "cogs", assets=assets, size=size, seed=seed, center=center)
    return write_item_collection(local, Path(directory) / "catalog.json")
