"""A region as a polygon: read from a GeoJSON file (lon/lat) and burnt onto a grid as a mask."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from unique_xr.errors import CRSError, SpecError
from unique_xr.grid import GridSpec

__all__ = ["read_polygon", "polygon_mask"]


def read_polygon(path: str | os.PathLike):
    """The (multi)polygon of a GeoJSON file (a geometry, a Feature or a FeatureCollection, unioned), lon/lat.

    Refuses files that are not GeoJSON, hold no polygon, are invalid (self-intersecting rings...) or
    whose coordinates are not degrees, each with what was seen and how to fix it.
    """
    import shapely
    from shapely.geometry import shape

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"[region] geometry = {str(path)!r}: no such file.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SpecError(f"[region] geometry = {str(path)!r} is not GeoJSON: {err}") from None
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        geoms = [f.get("geometry") for f in data.get("features", [])]
    elif isinstance(data, dict) and data.get("type") == "Feature":
        geoms = [data.get("geometry")]
    else:
        geoms = [data]
    try:
        shapes = [shape(g) for g in geoms if g]
    except (AttributeError, KeyError, TypeError, ValueError, shapely.errors.GEOSException) as err:
        raise SpecError(f"[region] geometry = {str(path)!r}: not a GeoJSON geometry ({err}).") from None
    polygons = [s for s in shapes if s.geom_type in ("Polygon", "MultiPolygon")]
    if not polygons:
        raise SpecError(f"[region] geometry = {str(path)!r} holds no polygon (found {[s.geom_type for s in shapes]}); "
                        "give the region's outline as a Polygon or MultiPolygon.")
    invalid = [shapely.is_valid_reason(p) for p in polygons if not p.is_valid]
    if invalid:
        raise SpecError(f"[region] geometry = {str(path)!r} is not a valid polygon: {invalid[0]}. Repair it (e.g. "
                        "shapely.make_valid, or QGIS 'Fix geometries') and try again.")
    geom = shapely.union_all(polygons)
    west, south, east, north = geom.bounds
    if not (-180 <= west and east <= 180 and -90 <= south and north <= 90):
        raise CRSError(f"[region] geometry = {str(path)!r} has coordinates {geom.bounds} that are not lon/lat degrees; "
                       "GeoJSON is WGS84 longitude/latitude (RFC 7946): reproject the file to EPSG:4326.")
    if geom.area == 0:
        raise SpecError(f"[region] geometry = {str(path)!r} has no area.")
    return geom


def polygon_mask(geometry, grid: GridSpec) -> np.ndarray:
    """``(y, x)`` bool: True where a pixel centre of ``grid`` lies inside the lon/lat ``geometry``."""
    from rasterio.features import geometry_mask
    from shapely.ops import transform

    from pyproj import Transformer

    to_grid = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True)
    projected = transform(to_grid.transform, geometry)
    return geometry_mask([projected], out_shape=grid.shape, transform=grid.transform, invert=True)
