"""Writers of the synthetic region's products and their STAC items (used by :mod:`.synthetic`).

Each writer takes the derived state of a region (``synthetic._World``: spec, padded grid, static
scene, MODIS window, weather) and writes COGs with :func:`~unique_xr.testing.cog.write_cog`,
returning STAC item dicts shaped like the Planetary Computer's (same collection ids, asset keys,
``proj:*``, ``raster:bands``, ``eo:bands``, classification fields).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from unique_xr.search.collections import ESA_WORLDCOVER_CLASSES, get_collection
from unique_xr.testing import _scene
from unique_xr.testing.cog import write_cog

if TYPE_CHECKING:
    from unique_xr.testing.synthetic import _World

LANDSAT = get_collection("landsat-c2-l2")
MCD43A4 = get_collection("mcd43a4")
COPDEM = get_collection("cop-dem-glo-30")
WORLDCOVER = get_collection("esa-worldcover")
LANDSAT_ID = LANDSAT.collection_id("planetary-computer")
MODIS_ID = MCD43A4.collection_id("planetary-computer")
DEM_ID = COPDEM.collection_id("planetary-computer")
WORLDCOVER_ID = WORLDCOVER.collection_id("planetary-computer")

#: The MODIS sinusoidal CRS exactly as the Planetary Computer items give it in ``proj:wkt2``.
MODIS_WKT = (
    'PROJCS["unnamed",GEOGCS["Unknown datum based upon the custom spheroid",DATUM["Not specified (based on '
    'custom spheroid)",SPHEROID["Custom spheroid",6371007.181,0]],PRIMEM["Greenwich",0],UNIT["degree",'
    '0.0174532925199433,AUTHORITY["EPSG","9122"]]],PROJECTION["Sinusoidal"],PARAMETER["longitude_of_center",0],'
    'PARAMETER["false_easting",0],PARAMETER["false_northing",0],UNIT["Meter",1],AXIS["Easting",EAST],'
    'AXIS["Northing",NORTH]]'
)
MODIS_PIXEL_SIZE = 463.3127165275  # m: 1111950.519667 m tiles of 2400 pixels
MODIS_X0, MODIS_Y0 = -20015109.354, 10007554.677  # top-left corner of tile h00v00
MODIS_TILE_PX = 2400

_RES = 30.0
_LANDSAT_BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")  # roles written as SR
#: STAC key -> (file suffix, eo:bands name, common name, centre um, fwhm um, title)
_LANDSAT_ASSETS: dict[str, tuple[str, str, str, float, float, str]] = {
    "blue": ("SR_B2", "OLI_B2", "blue", 0.48, 0.06, "Blue Band"),
    "green": ("SR_B3", "OLI_B3", "green", 0.56, 0.06, "Green Band"),
    "red": ("SR_B4", "OLI_B4", "red", 0.65, 0.04, "Red Band"),
    "nir08": ("SR_B5", "OLI_B5", "nir08", 0.87, 0.03, "Near Infrared Band 0.8"),
    "swir16": ("SR_B6", "OLI_B6", "swir16", 1.61, 0.09, "Short-wave Infrared Band 1.6"),
    "swir22": ("SR_B7", "OLI_B7", "swir22", 2.2, 0.19, "Short-wave Infrared Band 2.2"),
    "lwir11": ("ST_B10", "TIRS_B10", "lwir11", 10.9, 0.59, "Surface Temperature Band"),
}
#: MODIS band -> (common name, centre um, fwhm um) as the Planetary Computer items list them.
_MODIS_EO = {1: ("red", 0.645, 0.5), 2: ("nir08", 0.8585, 0.35), 3: ("blue", 0.469, 0.2), 4: ("green", 0.555, 0.2),
             5: ("lwir12", 1.24, 0.2), 6: ("swir16", 1.64, 0.24), 7: ("swir22", 2.13, 0.5)}
_QA_BITS = (  # Landsat C2 QA_PIXEL bit fields: name, offset, length, class names
    ("fill", 0, 1, ("not_fill", "fill")), ("dilated_cloud", 1, 1, ("not_dilated", "dilated")),
    ("cirrus", 2, 1, ("not_cirrus", "cirrus")), ("cloud", 3, 1, ("not_cloud", "cloud")),
    ("cloud_shadow", 4, 1, ("not_shadow", "shadow")), ("snow", 5, 1, ("not_snow", "snow")),
    ("clear", 6, 1, ("not_clear", "clear")), ("water", 7, 1, ("not_water", "water")),
    ("cloud_confidence", 8, 2, ("not_set", "low", "medium", "high")),
    ("cloud_shadow_confidence", 10, 2, ("not_set", "low", "reserved", "high")),
    ("snow_confidence", 12, 2, ("not_set", "low", "reserved", "high")),
    ("cirrus_confidence", 14, 2, ("not_set", "low", "reserved", "high")),
)
_WC_COLORS = {10: "006400", 20: "FFBB22", 30: "FFFF4C", 40: "F096FF", 50: "FA0000", 60: "B4B4B4", 70: "F0F0F0",
              80: "0064C8", 90: "0096A0", 95: "00CF75", 100: "FAE6A0"}
_COG = "image/tiff; application=geotiff; profile=cloud-optimized"
_EXT = "https://stac-extensions.github.io/{}/schema.json"


@lru_cache(maxsize=32)
def transformer(src: str, dst: str):
    """A cached always-xy pyproj Transformer (used from the main thread only)."""
    from pyproj import Transformer

    return Transformer.from_crs(src, dst, always_xy=True)


def ring(bounds: tuple[float, float, float, float], n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A densified closed boundary of a rectangle (counter-clockwise from bottom-left)."""
    left, bottom, right, top = bounds
    t = np.linspace(0, 1, n, endpoint=False)
    xs = np.concatenate([left + t * (right - left), np.full(n, right), right - t * (right - left), np.full(n, left)])
    ys = np.concatenate([np.full(n, bottom), bottom + t * (top - bottom), np.full(n, top), top - t * (top - bottom)])
    return np.append(xs, xs[0]), np.append(ys, ys[0])


class Writer:
    """Writes every COG of a region with the same compression, and counts them."""

    def __init__(self, compress: str) -> None:
        self.compress, self.count = compress, 0

    def cog(self, path: Path, data: np.ndarray, **kw: Any) -> str:
        write_cog(path, data, compress=self.compress, **kw)
        self.count += 1
        return str(path)


def _iso(when: dt.datetime) -> str:
    """A naive UTC datetime as STAC text."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def parse_time(text: str) -> dt.datetime:
    """STAC datetime text (UTC, trailing Z) -> naive UTC datetime."""
    return dt.datetime.fromisoformat(text.rstrip("Z"))


def _geojson(lons: np.ndarray, lats: np.ndarray) -> tuple[dict[str, Any], list[float]]:
    coords = [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lons, lats)]
    if coords[0] != coords[-1]:
        coords.append(coords[0])
    bbox = [float(np.min(lons)), float(np.min(lats)), float(np.max(lons)), float(np.max(lats))]
    return {"type": "Polygon", "coordinates": [coords]}, bbox


def write_item_collection(path: Path, items: Sequence[dict[str, Any]]) -> Path:
    """Write ``items`` as a GeoJSON FeatureCollection (a STAC ItemCollection)."""
    path.write_text(json.dumps({"type": "FeatureCollection", "features": list(items)}, indent=1))
    return path


# ---------------------------------------------------------------------------------- Landsat
def _to_dn(values: np.ndarray, asset, fill: np.ndarray) -> np.ndarray:
    """Physical values -> uint16 DN with the registry's scale/offset (in place on ``values``), fill -> nodata."""
    values -= np.float32(asset.offset)
    values /= np.float32(asset.scale)
    np.rint(values, out=values)
    np.clip(values, 1, 65535, out=values)
    dn = values.astype(np.uint16)
    dn[fill] = int(asset.nodata)
    return dn


def _clip_polygon(poly: list[tuple[float, float]], a: float, b: float, c: float) -> list[tuple[float, float]]:
    """Keep the part of a convex polygon where ``a*x + b*y <= c`` (Sutherland-Hodgman, one edge)."""
    out = []
    for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1]):
        d1, d2 = a * x1 + b * y1 - c, a * x2 + b * y2 - c
        if d1 <= 0:
            out.append((x1, y1))
        if d1 * d2 < 0:
            t = d1 / (d1 - d2)
            out.append((x1 + t * (x2 - x1), y1 + t * (y2 - y1)))
    return out


def _wrs_path_row(lon: float, lat: float) -> tuple[int, int]:
    """A plausible WRS-2 path/row for a point (descending pass; near the real ones at mid-latitudes)."""
    path = int(((-53.8 - lon) % 360.0) / 360.0 * 233) + 1
    row = min(248, max(1, round(60 - lat / 1.45)))
    return path, row


def landsat_item(world: _World, index: int, date: dt.date, root: Path, writer: Writer) -> dict[str, Any]:
    """Write one Landsat C2 L2 scene on the region grid (6 SR bands, ST, QA_PIXEL) and return its item.

    Draws the date's cloud and cirrus cover, cloud height (hence shadow offset, away from the sun at
    10:30 local solar time) and, with ``scene_edge_probability``, a tilted swath edge with fill beyond.
    """
    spec, grid = world.spec, world.spec.grid
    ny, nx = grid.shape
    rng = _scene.rng_for(spec.seed, f"landsat/{date.isoformat()}")
    f_cloud = _scene.beta_fraction(rng, spec.cloud_fraction)
    f_cirrus = _scene.beta_fraction(rng, spec.cirrus_fraction)
    cloud_height = rng.uniform(1000.0, 3000.0)
    cloud_brightness = rng.uniform(0.85, 1.1)
    edge = rng.random() < spec.scene_edge_probability
    edge_cut, edge_east, edge_tilt = rng.uniform(0.05, 0.35), rng.random() < 0.5, math.tan(math.radians(12.0))

    hour = 10.5 - world.lon / 15.0
    when = dt.datetime.combine(date, dt.time()) + dt.timedelta(hours=hour)
    doy = world.local_doy(when)
    azimuth, elevation = _scene.solar_angles(world.lat, world.lon, date.timetuple().tm_yday, hour % 24)
    reach = min(cloud_height / math.tan(math.radians(max(elevation, 5.0))), 6000.0)
    drow = int(round(reach * math.cos(math.radians(azimuth)) / _RES))  # shadow offset, rows grow south
    dcol = int(round(-reach * math.sin(math.radians(azimuth)) / _RES))

    fill = np.zeros((ny, nx), dtype=bool)
    footprint = [(0.0, 0.0), (float(nx), 0.0), (float(nx), float(ny)), (0.0, float(ny))]
    if edge:  # a swath edge, tilted like Landsat's, cuts off one side of the region
        sign = 1.0 if edge_east else -1.0
        s = sign * ((np.arange(nx) + 0.5)[np.newaxis, :] + edge_tilt * (np.arange(ny) + 0.5)[:, np.newaxis])
        s_thr = _scene.threshold_for_fraction(s, edge_cut)
        fill = s > s_thr
        footprint = _clip_polygon(footprint, sign, sign * edge_tilt, s_thr)
    # clouds on the region plus the strip their shadows come from
    r_lo, c_lo = min(0, -drow), min(0, -dcol)
    ys = grid.y[0] - np.arange(r_lo, max(ny, ny - drow)) * _RES
    xs = grid.x[0] + np.arange(c_lo, max(nx, nx - dcol)) * _RES
    tag = date.isoformat()
    clouds = _scene.make_clouds(
        _scene.fbm(xs, ys, seed=spec.seed, name=f"cloud/{tag}", finest=90.0, octaves=7, hurst=0.6),
        (-r_lo, -c_lo), (ny, nx), (drow, dcol), f_cloud,
        _scene.fbm(grid.x, grid.y, seed=spec.seed, name=f"cirrus/{tag}", finest=240.0, octaves=5, hurst=0.8),
        f_cirrus, cloud_brightness, fill,
    )
    static = world.region
    fc = _scene.green_cover(static, _scene.group_curves(static.params, doy)[0])
    noise_rng = _scene.rng_for(spec.seed, f"landsat-noise/{tag}")
    platform = "landsat-8" if index % 2 == 0 else "landsat-9"
    path, row = _wrs_path_row(world.lon, world.lat)
    acq = when.strftime("%Y%m%d")
    item_id = f"LC0{platform[-1]}_L2SP_{path:03d}{row:03d}_{acq}_02_T1"
    stem = f"LC0{platform[-1]}_L2SP_{path:03d}{row:03d}_{acq}_{(when + dt.timedelta(days=1)):%Y%m%d}_02_T1"
    folder = root / LANDSAT_ID / item_id
    cog = dict(crs=grid.crs, transform=grid.transform)
    assets: dict[str, Any] = {}
    for role in _LANDSAT_BANDS:
        asset = LANDSAT.asset(role)
        refl = clouds.apply_reflectance(_scene.reflectance(static, fc, role), role)
        if spec.landsat_noise:
            refl += noise_rng.standard_normal((ny, nx), dtype=np.float32) * np.float32(spec.landsat_noise)
        name = f"{stem}_{_LANDSAT_ASSETS[asset.key][0]}.TIF"
        assets[asset.key] = writer.cog(folder / name, _to_dn(refl, asset, fill), nodata=int(asset.nodata), **cog)
    t2m = world.t2m(when)
    lst = clouds.apply_temperature(_scene.land_surface_temperature(static, fc, t2m, doy), t2m)
    st = LANDSAT.asset("lwir11")
    assets["lwir11"] = writer.cog(folder / f"{stem}_ST_B10.TIF", _to_dn(lst, st, fill), nodata=int(st.nodata), **cog)
    lc = static.landcover
    qa = _scene.landsat_qa_pixel(clouds, fill=fill, snow=lc == 70, water=lc == 80)
    qa_nodata = int(LANDSAT.asset("qa_pixel").nodata)
    assets["qa_pixel"] = writer.cog(folder / f"{stem}_QA_PIXEL.TIF", qa, nodata=qa_nodata, **cog)

    cloud = clouds.cloud
    valid = ~fill
    n_valid = max(int(valid.sum()), 1)
    land = valid & (lc != 80)
    cloud_cover = round(100.0 * float((cloud & valid).sum()) / n_valid, 2)
    cloud_land = round(100.0 * float((cloud & land).sum()) / max(int(land.sum()), 1), 2)
    px, py = zip(*footprint)
    tr = grid.transform
    ux, uy = tr.c + tr.a * np.array(px), tr.f + tr.e * np.array(py)
    geometry, bbox = _geojson(*transformer(grid.crs, "EPSG:4326").transform(ux, uy))
    properties = {
        "gsd": 30, "datetime": _iso(when), "platform": platform, "proj:epsg": grid.epsg,
        "proj:shape": [ny, nx], "description": "Landsat Collection 2 Level-2 (synthetic, unique_xr.testing)",
        "instruments": ["oli", "tirs"], "eo:cloud_cover": cloud_cover, "proj:transform": list(grid.transform)[:6],
        "view:off_nadir": 0, "landsat:wrs_row": f"{row:03d}", "landsat:scene_id":
        f"LC{platform[-1]}{path:03d}{row:03d}{when:%Y%j}LGN00", "landsat:wrs_path": f"{path:03d}",
        "landsat:wrs_type": "2", "view:sun_azimuth": round(azimuth, 8), "landsat:correction": "L2SP",
        "view:sun_elevation": round(elevation, 8), "landsat:cloud_cover_land": cloud_land,
        "landsat:collection_number": "02", "landsat:collection_category": "T1", "sci:doi": "10.5066/P9OGBGM6",
    }
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": LANDSAT_ID,
        "bbox": bbox, "geometry": geometry, "properties": properties, "links": [],
        "assets": {key: _landsat_asset(key, href) for key, href in assets.items()},
        "stac_extensions": [_EXT.format(e) for e in ("raster/v1.1.0", "eo/v1.0.0", "view/v1.0.0",
                                                     "projection/v1.1.0", "classification/v1.0.0",
                                                     "scientific/v1.0.0")]
        + ["https://landsat.usgs.gov/stac/landsat-extension/v1.1.1/schema.json"],
    }


def _landsat_asset(key: str, href: str) -> dict[str, Any]:
    spec = LANDSAT.asset(key)
    if key == "qa_pixel":
        bitfields = [
            {"name": name, "offset": off, "length": n, "description": name.replace("_", " "),
             "classes": [{"name": c, "value": v} for v, c in enumerate(classes)]}
            for name, off, n, classes in _QA_BITS
        ]
        return {"href": href, "type": _COG, "roles": ["cloud", "cloud-shadow", "snow-ice", "water-mask"],
                "title": "Pixel Quality Assessment Band", "classification:bitfields": bitfields,
                "description": "Collection 2 Level-1 Pixel Quality Assessment Band (QA_PIXEL)",
                "raster:bands": [{"unit": "bit index", "nodata": int(spec.nodata), "data_type": spec.dtype,
                                  "spatial_resolution": 30}]}
    suffix, band_name, common, centre, fwhm, title = _LANDSAT_ASSETS[key]
    raster = {"scale": spec.scale, "nodata": int(spec.nodata), "offset": spec.offset, "data_type": spec.dtype,
              "spatial_resolution": 30}
    asset = {"href": href, "type": _COG, "title": title,
             "eo:bands": [{"name": band_name, "common_name": common, "center_wavelength": centre,
                           "full_width_half_max": fwhm}],
             "raster:bands": [raster]}
    if key == "lwir11":
        raster["unit"] = "kelvin"
        asset.update(gsd=100, roles=["data", "temperature"],
                     description="Collection 2 Level-2 Thermal Infrared Band (ST_B10) Surface Temperature")
    else:
        asset.update(roles=["data", "reflectance"],
                     description=f"Collection 2 Level-2 {title} ({suffix}) Surface Reflectance")
    return asset


# ---------------------------------------------------------------------------------- MODIS
def modis_tables(world: _World, block_rows: int = 256) -> tuple[_scene.AreaTables, np.ndarray]:
    """Per-cell sums of the padded scene over the MODIS window, and which cells are whole.

    Each padded 30 m pixel belongs to the 500 m cell holding its centre (coordinates interpolated
    from an exact transform every 16 pixels; error well under a centimetre). Works in row blocks.
    """
    padded, (r0, c0, nr, nc) = world.padded, world.modis_window
    ny, nx = padded.shape
    step = 16
    rows = np.unique(np.append(np.arange(0, ny, step), ny - 1))
    cols = np.unique(np.append(np.arange(0, nx, step), nx - 1))
    sx, sy = transformer(padded.crs, MODIS_WKT).transform(*np.meshgrid(padded.x[cols], padded.y[rows]))
    tables = None
    for b0 in range(0, ny, block_rows):
        b1 = min(ny, b0 + block_rows)
        # the coarse rows bracketing this block, re-indexed to it
        k0 = max(0, int(np.searchsorted(rows, b0, side="right")) - 1)
        k1 = min(rows.size - 1, max(int(np.searchsorted(rows, b1 - 1, side="left")), k0 + 1))
        nodes = rows[k0:k1 + 1] - b0
        bx = _scene.linear_interp_2d(sx[k0:k1 + 1], nodes, cols, b1 - b0, nx)
        by = _scene.linear_interp_2d(sy[k0:k1 + 1], nodes, cols, b1 - b0, nx)
        col = np.floor((bx - MODIS_X0) / MODIS_PIXEL_SIZE).astype(np.int64) - c0
        row = np.floor((MODIS_Y0 - by) / MODIS_PIXEL_SIZE).astype(np.int64) - r0
        cell = np.where((col >= 0) & (col < nc) & (row >= 0) & (row < nr), row * nc + col, -1)
        part = _scene.area_tables(world.static.window(slice(b0, b1), slice(None)), cell, nr * nc)
        tables = part if tables is None else tables + part
    # a cell is whole when its four corners fall inside the padded grid (one pixel of slack)
    cx = MODIS_X0 + (c0 + np.arange(nc + 1)) * MODIS_PIXEL_SIZE
    cy = MODIS_Y0 - (r0 + np.arange(nr + 1)) * MODIS_PIXEL_SIZE
    ux, uy = transformer(MODIS_WKT, padded.crs).transform(*np.meshgrid(cx, cy))
    left, bottom, right, top = padded.bounds
    ok = (ux > left + _RES) & (ux < right - _RES) & (uy > bottom + _RES) & (uy < top - _RES)
    whole = ok[:-1, :-1] & ok[1:, :-1] & ok[:-1, 1:] & ok[1:, 1:] & (tables.count.reshape(nr, nc) > 0)
    return tables, whole


def modis_items(world: _World, root: Path, writer: Writer, tables: _scene.AreaTables, whole: np.ndarray):
    """One MCD43A4 item per day and MODIS tile: NBAR = area mean of the truth + noise, QA 0/1/255.

    The seven mandatory-QA assets of a day carry the same values (one inversion outcome per cell).
    """
    spec = world.spec
    r0, c0, nr, nc = world.modis_window
    xs = MODIS_X0 + (c0 + np.arange(nc) + 0.5) * MODIS_PIXEL_SIZE
    ys = MODIS_Y0 - (r0 + np.arange(nr) + 0.5) * MODIS_PIXEL_SIZE
    # split the window by the global 10 x 10 degree tiles
    tiles = []
    for v in range(r0 // MODIS_TILE_PX, (r0 + nr - 1) // MODIS_TILE_PX + 1):
        for h in range(c0 // MODIS_TILE_PX, (c0 + nc - 1) // MODIS_TILE_PX + 1):
            rs = slice(max(r0, v * MODIS_TILE_PX) - r0, min(r0 + nr, (v + 1) * MODIS_TILE_PX) - r0)
            cs = slice(max(c0, h * MODIS_TILE_PX) - c0, min(c0 + nc, (h + 1) * MODIS_TILE_PX) - c0)
            tiles.append((h, v, rs, cs))
    nbar_spec = MCD43A4.asset("Nadir_Reflectance_Band1")
    qa_spec = MCD43A4.asset("BRDF_Albedo_Band_Mandatory_Quality_Band1")
    band_index = [_scene.BANDS.index(role) for role in ("red", "nir", "blue", "green", "nir2", "swir1", "swir2")]
    items = []
    for day in spec.modis_dates:
        noon = dt.datetime.combine(day, dt.time()) + dt.timedelta(hours=12.0 - world.lon / 15.0)
        curves = _scene.group_curves(world.params, world.local_doy(noon))[0]
        mean = _scene.area_means(world.params, tables, curves)[band_index].reshape(7, nr, nc)
        rng = _scene.rng_for(spec.seed, f"modis/{day.isoformat()}")
        gaps = _scene.fbm(xs, ys, seed=spec.seed, name=f"modis-gap/{day.isoformat()}", finest=2000.0, octaves=5)
        magn = _scene.fbm(xs, ys, seed=spec.seed, name=f"modis-magnitude/{day.isoformat()}", finest=2000.0, octaves=5)
        f_gap = _scene.beta_fraction(rng, spec.modis_gap_fraction)
        f_mag = min(_scene.beta_fraction(rng, spec.modis_magnitude_fraction), 1.0 - f_gap)
        # fill outside the synthetic world and in smooth "persistent cloud" gaps; magnitude
        # inversions (noisier) in other smooth patches; both as shares of the whole cells
        gap = ~whole
        if whole.any():
            gap |= gaps > _scene.threshold_for_fraction(gaps[whole], f_gap)
        usable = whole & ~gap
        magnitude = np.zeros_like(usable)
        if usable.any():
            share = min(1.0, f_mag * whole.sum() / usable.sum())
            magnitude = usable & (magn > _scene.threshold_for_fraction(magn[usable], share))
        noise = rng.standard_normal((7, nr, nc)) * spec.modis_noise * np.where(magnitude, 2.0, 1.0)
        nbar = np.clip(np.rint((mean + noise) / nbar_spec.scale), *nbar_spec.valid_range)
        nbar = np.where(gap, nbar_spec.nodata, nbar).astype(np.int16)
        qa = np.where(gap, qa_spec.nodata, np.where(magnitude, 1, 0)).astype(np.uint8)
        for h, v, rs, cs in tiles:
            items.append(_modis_item(world, day, noon, h, v, rs, cs, nbar[:, rs, cs], qa[rs, cs], root, writer))
    return items


def _modis_item(world, day, noon, h, v, rs, cs, nbar, qa, root, writer) -> dict[str, Any]:
    r0, c0, _, _ = world.modis_window
    top = MODIS_Y0 - (r0 + rs.start) * MODIS_PIXEL_SIZE
    left = MODIS_X0 + (c0 + cs.start) * MODIS_PIXEL_SIZE
    ny, nx = qa.shape
    right, bottom = left + nx * MODIS_PIXEL_SIZE, top - ny * MODIS_PIXEL_SIZE
    from affine import Affine

    transform = Affine(MODIS_PIXEL_SIZE, 0.0, left, 0.0, -MODIS_PIXEL_SIZE, top)
    produced = dt.datetime.combine(day + dt.timedelta(days=9), dt.time())
    item_id = f"MCD43A4.A{day:%Y}{day.timetuple().tm_yday:03d}.h{h:02d}v{v:02d}.061.{produced:%Y%j%H%M%S}"
    folder = root / MODIS_ID / item_id
    assets = {}
    for b in range(1, 8):
        key = f"Nadir_Reflectance_Band{b}"
        common, centre, fwhm = _MODIS_EO[b]
        href = writer.cog(folder / f"{item_id}_{key}.tif", nbar[b - 1], crs=MODIS_WKT, transform=transform,
                          nodata=int(MCD43A4.asset(key).nodata))
        assets[key] = {"href": href, "type": _COG, "roles": ["data", "reflectance"],
                       "title": f"NBAR at local solar noon for Band {b}",
                       "eo:bands": [{"name": key, "common_name": common, "center_wavelength": centre,
                                     "full_width_half_max": fwhm}],
                       # like the real items: scale, no nodata (the registry knows it is 32767)
                       "raster:bands": [{"scale": MCD43A4.asset(key).scale, "data_type": "int16",
                                         "spatial_resolution": 500}]}
    for b in range(1, 8):
        key = f"BRDF_Albedo_Band_Mandatory_Quality_Band{b}"
        href = writer.cog(folder / f"{item_id}_{key}.tif", qa, crs=MODIS_WKT, transform=transform,
                          nodata=int(MCD43A4.asset(key).nodata))
        assets[key] = {"href": href, "type": _COG, "roles": ["data"],
                       "title": f"BRDF Albedo Mandatory Quality for Band {b}",
                       "eo:bands": [{"name": key}], "raster:bands": [{"data_type": "uint8", "spatial_resolution": 500}],
                       "classification:classes": [
                           {"value": 0, "description": "Processed, good quality (full BRDF inversions)"},
                           {"value": 1, "description": "Processed, see other QA (magnitude BRDF inversions)"}]}
    sx, sy = ring((left, bottom, right, top), 4)
    geometry, bbox = _geojson(*transformer(MODIS_WKT, "EPSG:4326").transform(sx, sy))
    corners = [[right, bottom], [right, top], [left, top], [left, bottom], [right, bottom]]
    properties = {
        # as on Planetary Computer: start = the nominal day (A<yyyyddd>), end = 7 days later, datetime midway
        "datetime": f"{(day + dt.timedelta(days=3)).isoformat()}T23:59:59.999500Z",
        "start_datetime": f"{day.isoformat()}T00:00:00Z",
        "end_datetime": f"{(day + dt.timedelta(days=7)).isoformat()}T23:59:59.999000Z", "platform": "", "instruments": [],
        "proj:epsg": None, "proj:wkt2": MODIS_WKT, "proj:shape": [ny, nx],
        "proj:transform": list(transform)[:6], "proj:geometry": {"type": "Polygon", "coordinates": [corners]},
        "modis:tile-id": f"51{h:03d}{v:03d}", "modis:horizontal-tile": h, "modis:vertical-tile": v,
    }
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": MODIS_ID, "bbox": bbox,
        "geometry": geometry, "properties": properties, "links": [], "assets": assets,
        "stac_extensions": [_EXT.format(e) for e in ("projection/v1.1.0", "raster/v1.1.0", "eo/v1.1.0",
                                                     "classification/v1.0.0")],
    }


# ---------------------------------------------------------------------------------- DEM, land cover
def _latlon_tiles(world: _World, pixel_deg_lat: float, tile_deg: int, lon_pixel, centred: bool):
    """Global lat/lon pixel windows covering the region, split by ``tile_deg`` tiles.

    Yields ``(lat0, lon0, transform, shape)`` per tile (lat0/lon0: the tile's south-west corner).
    ``centred``: pixel centres (not edges) sit on multiples of the pixel size (Copernicus DEM).
    """
    from affine import Affine

    west, south, east, north = world.spec.grid.bounds_latlon
    half = 0.5 if centred else 0.0
    for lat0 in range(math.floor(south / tile_deg) * tile_deg - tile_deg, math.ceil(north / tile_deg) * tile_deg + 1,
                      tile_deg):
        dlon, n_lat = lon_pixel(lat0), round(tile_deg / pixel_deg_lat)
        top_edge = lat0 + tile_deg + half * pixel_deg_lat  # top edge of the tile's first row
        j0 = max(0, math.floor((top_edge - north) / pixel_deg_lat))
        j1 = min(n_lat, math.ceil((top_edge - south) / pixel_deg_lat))
        for lon0 in range(math.floor(west / tile_deg) * tile_deg - tile_deg, math.ceil(east / tile_deg) * tile_deg + 1,
                          tile_deg):
            n_lon = round(tile_deg / dlon)
            left_edge = lon0 - half * dlon  # left edge of the tile's first column
            i0 = max(0, math.floor((west - left_edge) / dlon))
            i1 = min(n_lon, math.ceil((east - left_edge) / dlon))
            if i1 <= i0 or j1 <= j0:
                continue
            transform = Affine(dlon, 0.0, left_edge + i0 * dlon, 0.0, -pixel_deg_lat, top_edge - j0 * pixel_deg_lat)
            yield lat0, lon0, transform, (j1 - j0, i1 - i0)


def _copdem_lon_pixel(lat0: int) -> float:
    """Copernicus DEM GLO-30 longitude spacing (degrees) of the 1-degree tile starting at ``lat0``."""
    equatorward = lat0 if lat0 >= 0 else -(lat0 + 1)
    for limit, arcsec in ((50, 1.0), (60, 1.5), (70, 2.0), (80, 3.0), (85, 5.0)):
        if equatorward < limit:
            return arcsec / 3600.0
    return 10.0 / 3600.0


def _reproject_from_padded(world: _World, source: np.ndarray, transform, shape, dtype, resampling, nodata):
    """Resample a padded-grid field onto an EPSG:4326 window."""
    from rasterio.warp import Resampling, reproject

    out = np.full(shape, nodata, dtype=dtype)
    reproject(source=source, destination=out, src_transform=world.padded.transform, src_crs=world.padded.crs,
              dst_transform=transform, dst_crs="EPSG:4326", resampling=getattr(Resampling, resampling),
              src_nodata=None, dst_nodata=nodata)
    return out


def _ns_ew(lat0: int, lon0: int, sep: str = "") -> str:
    """Tile name from its south-west corner: ``N51E009`` (``sep="_"``: ``N51_E009``)."""
    return f"{'N' if lat0 >= 0 else 'S'}{abs(lat0):02d}{sep}{'E' if lon0 >= 0 else 'W'}{abs(lon0):03d}"


def _latlon_geometry(transform, shape) -> tuple[dict[str, Any], list[float]]:
    """GeoJSON polygon and bbox of a lat/lon raster window."""
    ny, nx = shape
    left, top = transform.c, transform.f
    right, bottom = left + nx * transform.a, top + ny * transform.e
    return _geojson(np.array([right, right, left, left, right]), np.array([bottom, top, top, bottom, bottom]))


def dem_items(world: _World, root: Path, writer: Writer) -> list[dict[str, Any]]:
    """Copernicus GLO-30-style DEM items: 1-degree tiles (cropped to the region), float32 metres,
    EPSG:4326, pixel centres on whole arc-seconds, longitude spacing widening with latitude."""
    nodata = float(COPDEM.asset("data").nodata)
    items = []
    for lat0, lon0, transform, shape in _latlon_tiles(world, 1 / 3600, 1, _copdem_lon_pixel, centred=True):
        name = _ns_ew(lat0, lon0, sep="_00_") + "_00"
        item_id = f"Copernicus_DSM_COG_10_{name}_DEM"
        dem = _reproject_from_padded(world, world.elevation, transform, shape, np.float32, "bilinear", nodata)
        href = writer.cog(root / DEM_ID / f"{item_id}.tif", dem, crs="EPSG:4326", transform=transform, nodata=nodata)
        geometry, bbox = _latlon_geometry(transform, shape)
        items.append({
            "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": DEM_ID, "bbox": bbox,
            "geometry": geometry, "links": [],
            "properties": {"gsd": 30, "datetime": "2021-04-22T00:00:00Z", "platform": "TanDEM-X", "proj:epsg": 4326,
                           "proj:shape": list(shape), "proj:transform": list(transform)[:6]},
            "assets": {"data": {"href": href, "title": name, "type": _COG, "roles": ["data"]}},
            "stac_extensions": [_EXT.format("projection/v1.0.0")],
        })
    return items


def worldcover_items(world: _World, root: Path, writer: Writer) -> list[dict[str, Any]]:
    """ESA WorldCover-style items: 3-degree tiles (cropped to the region) of the 30 m classes,
    resampled (nearest) to the 1/12000 degree grid, uint8 codes, nodata 0."""
    items = []
    for lat0, lon0, transform, shape in _latlon_tiles(world, 1 / 12000, 3, lambda _: 1 / 12000, centred=False):
        tile = _ns_ew(lat0, lon0)
        item_id = f"ESA_WorldCover_10m_2021_v200_{tile}"
        lc = _reproject_from_padded(world, world.landcover, transform, shape, np.uint8, "nearest", 0)
        href = writer.cog(root / WORLDCOVER_ID / f"{item_id}_Map.tif", lc, crs="EPSG:4326", transform=transform,
                          nodata=0)
        geometry, bbox = _latlon_geometry(transform, shape)
        classes = [{"value": c, "color-hint": _WC_COLORS[c], "description": n.replace("_", " ").capitalize()}
                   for c, n in ESA_WORLDCOVER_CLASSES.items()]
        items.append({
            "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": WORLDCOVER_ID, "bbox": bbox,
            "geometry": geometry, "links": [],
            "properties": {
                "datetime": None, "start_datetime": "2021-01-01T00:00:00Z", "end_datetime": "2021-12-31T23:59:59Z",
                "mission": "sentinel-1, sentinel-2", "platform": "sentinel-1a, sentinel-1b, sentinel-2a, sentinel-2b",
                "instruments": ["c-sar", "msi"], "grid:code": f"ESAWORLDCOVER-{tile}", "proj:epsg": 4326,
                "description": "ESA WorldCover product at 10m resolution (synthetic, unique_xr.testing)",
                "esa_worldcover:product_tile": tile, "esa_worldcover:product_version": "2.0.0",
            },
            "assets": {"map": {
                "href": href, "type": _COG, "roles": ["data"], "title": "Land Cover Classes",
                "proj:shape": list(shape), "proj:transform": list(transform)[:6],
                "raster:bands": [{"name": "Band1", "nodata": 0, "sampling": "area", "data_type": "uint8",
                                  "description": "Classification values", "spatial_resolution": 10}],
                "classification:classes": classes,
            }},
            "stac_extensions": [_EXT.format(e) for e in ("projection/v1.1.0", "grid/v1.1.0", "raster/v1.1.0",
                                                         "classification/v1.0.0")],
        })
    return items


# ---------------------------------------------------------------------------------- meteorology
def _netcdf_engine() -> str:
    """The first NetCDF writer xarray can use here."""
    import importlib.util

    for module, engine in (("netCDF4", "netcdf4"), ("h5netcdf", "h5netcdf"), ("scipy", "scipy")):
        if importlib.util.find_spec(module) is not None:
            return engine
    from unique_xr._optional import import_optional

    import_optional("netCDF4", purpose="writing the synthetic ERA5-Land-style NetCDF")
    return "netcdf4"


def write_met(world: _World, root: Path) -> Path:
    """ERA5-Land-style daily NetCDF on 0.1 degree points covering the region."""
    import xarray as xr

    spec, weather = world.spec, world.weather
    west, south, east, north = spec.grid.bounds_latlon
    lat = np.arange(math.ceil(north * 10 - 1e-9), math.floor(south * 10 + 1e-9) - 1, -1) / 10.0
    lon = np.arange(math.floor(west * 10 + 1e-9), math.ceil(east * 10 - 1e-9) + 1) / 10.0
    glon, glat = np.meshgrid(lon, lat)
    ux, uy = transformer("EPSG:4326", world.padded.crs).transform(glon, glat)
    tr = world.padded.transform
    cols, rows = (ux - tr.c) / tr.a, (uy - tr.f) / tr.e
    ny, nx = world.padded.shape
    elev = world.elevation[np.clip(rows.astype(int), 0, ny - 1), np.clip(cols.astype(int), 0, nx - 1)]
    rng = _scene.rng_for(spec.seed, "met")
    nt = weather.doy.size
    doy = weather.doy[:, None, None]
    t2m = _scene.air_temperature(glat[None], elev[None], doy, weather.t2m_anomaly[:, None, None])
    t2m = t2m + 0.3 * rng.standard_normal(t2m.shape)
    dry = 1.5 + 7.0 * (1 - weather.cloudiness)[:, None, None]  # dew-point depression, K
    depression = np.maximum(dry + 0.5 * rng.standard_normal(t2m.shape), 0.3)
    ssrd = _scene.daily_toa_radiation(glat[None], doy) * (0.75 - 0.5 * weather.cloudiness)[:, None, None]
    ssrd = ssrd * (1 + 0.03 * rng.standard_normal(t2m.shape))
    key = _scene.salt(spec.seed, "met/rain")
    rain_factor = 1.0 + 0.3 * _scene.hash_uniform(key, np.rint(glon * 10), np.rint(glat * 10))
    tp = weather.rain_m[:, None, None] * rain_factor[None]
    dims = ("time", "latitude", "longitude")
    f32 = lambda a: np.asarray(a, dtype=np.float32).reshape(nt, lat.size, lon.size)  # noqa: E731
    ds = xr.Dataset(
        {
            "t2m": (dims, f32(t2m), {"units": "K", "long_name": "2 metre temperature",
                                     "standard_name": "air_temperature", "cell_methods": "time: mean"}),
            "d2m": (dims, f32(t2m - depression), {"units": "K", "long_name": "2 metre dewpoint temperature",
                                                  "standard_name": "dew_point_temperature",
                                                  "cell_methods": "time: mean"}),
            "ssrd": (dims, f32(np.maximum(ssrd, 0)), {
                "units": "J m-2", "long_name": "Surface short-wave (solar) radiation downwards, daily accumulation",
                "standard_name": "integral_wrt_time_of_surface_downwelling_shortwave_flux_in_air",
                "cell_methods": "time: sum"}),
            "tp": (dims, f32(tp), {"units": "m", "long_name": "Total precipitation, daily accumulation",
                                   "standard_name": "lwe_thickness_of_precipitation_amount",
                                   "cell_methods": "time: sum"}),
        },
        coords={
            "time": ("time", np.array([np.datetime64(d, "ns") for d in spec.days]), {"long_name": "time"}),
            "latitude": ("latitude", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "longitude": ("longitude", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={"Conventions": "CF-1.8", "title": "Synthetic ERA5-Land-style daily meteorology",
               "source": "unique_xr.testing.synthetic (seeded; not ERA5 data)", "seed": spec.seed},
    )
    path = root / "era5-land" / f"era5_land_daily_{spec.start:%Y%m%d}_{spec.end:%Y%m%d}.nc"
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = _netcdf_engine()
    encoding = {v: {"dtype": "float32"} for v in ds.data_vars}
    compression = {"netcdf4": {"zlib": True, "complevel": 4}, "h5netcdf": {"compression": "gzip"}}.get(engine, {})
    for v in encoding:
        encoding[v].update(compression)
    encoding["time"] = {"units": f"days since {spec.start.isoformat()}", "calendar": "proleptic_gregorian"}
    ds.to_netcdf(path, engine=engine, encoding=encoding)
    return path
