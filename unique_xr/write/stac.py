"""The output catalogue of a cube: a STAC Collection and one Item per calendar year under ``OUT/stac/``.

The Collection describes the whole cube with the datacube extension (``cube:dimensions``,
``cube:variables``) and a projection summary, and records how far the job got
(``unique_xr:job_token``, ``unique_xr:units_done``, ``unique_xr:units_total``, and the Icechunk
snapshot it describes). Items split the cube by calendar year: each covers the grid's footprint
(lon/lat) over the days of that year in the cube, with the projection extension. The Icechunk
store is the data asset of the Collection and of every Item. The catalogue is self-contained
(relative links and asset hrefs), so the output folder can be moved or copied as a whole.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import numpy as np

from unique_xr._optional import import_optional

__all__ = ["STAC_FOLDER", "cube_collection", "write_stac"]

#: Folder of the catalogue inside the job's output folder.
STAC_FOLDER = "stac"
#: License of the catalogue: no single SPDX licence covers a product derived from inputs under several
#: licences (MODIS, Landsat, ESA WorldCover, ERA5, tower data); STAC 1.1 asks for ``"other"`` then
#: (``"proprietary"`` is deprecated there).
LICENSE = "other"
_ZARR_MEDIA_TYPE = "application/vnd+zarr"
_FOOTPRINT_POINTS = 21  # points per edge of the densified footprint (as GridSpec.bounds_latlon)


def write_stac(out: str | os.PathLike) -> Path:
    """Write the STAC catalogue of the cube in ``out`` to ``out/stac/``; returns ``out/stac/collection.json``.

    One Item per calendar year of the cube: the simplest split that a search by date can use and that
    stays small for a national cube (a work unit per Item would mean thousands of Items that all
    point at the same store). The catalogue is built in a private folder beside ``out/stac`` and
    swapped in when complete, so a previous catalogue is replaced whole or not at all.

    Raises
    ------
    CubeStoreError
        ``out`` holds no cube.
    """
    from unique_xr.write.export import staged
    from unique_xr.write.store import REPO_NAME, CubeStore

    pystac = import_optional("pystac", purpose="the cube's STAC catalogue")
    out = Path(out).resolve()
    store = CubeStore.open(out)
    ds = store.dataset()  # coordinates and attributes only; no data variable is read
    collection = cube_collection(ds, metadata=store.metadata, snapshot=store.latest().id,
                                 store_href=str(out / REPO_NAME))
    final = out / STAC_FOLDER
    with staged(final) as tmp:  # a sibling of out/stac, so relative hrefs stay right after the swap
        collection.normalize_hrefs(str(tmp / "collection.json"))  # a file name: the folder name has dots
        collection.make_asset_hrefs_relative()
        collection.make_all_asset_hrefs_relative()
        collection.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return final / "collection.json"


def cube_collection(ds, *, metadata: dict[str, Any], snapshot: str, store_href: str):
    """The STAC Collection (with its yearly Items) of a cube opened from its store.

    Parameters
    ----------
    ds
        The cube (as :meth:`~unique_xr.write.store.CubeStore.dataset` opens it); only its coordinates
        and attributes are read.
    metadata
        The store's commit metadata (``job_token``, ``units_done``, ``units_total``).
    snapshot
        The Icechunk snapshot id the catalogue describes.
    store_href
        Absolute path of the Icechunk repository (made relative when the catalogue is saved).
    """
    import pandas as pd

    pystac = import_optional("pystac", purpose="the cube's STAC catalogue")
    from pystac.extensions.datacube import DatacubeExtension, Dimension, Variable
    from pystac.extensions.projection import ProjectionExtension

    from unique_xr import __version__
    from unique_xr.grid import GridSpec

    grid = GridSpec.from_xarray(ds)
    days = pd.DatetimeIndex(ds["time"].values)
    geometry, bbox = _footprint(grid)
    token = str(metadata.get("job_token") or ds.attrs.get("job_token") or "")
    attrs = ds.attrs
    start, end = _day_range(days)

    providers = [pystac.Provider(name="unique_xr", roles=[pystac.ProviderRole.PROCESSOR],
                                 description=f"unique_xr {attrs.get('unique_xr_version', __version__)}: the national "
                                             "daily GPP cube job",
                                 url="https://github.com/unique-xr/unique_xr")]
    if attrs.get("institution"):
        providers.insert(0, pystac.Provider(name=str(attrs["institution"]), roles=[pystac.ProviderRole.PRODUCER]))
    collection = pystac.Collection(
        id=f"unique-xr-gpp-{token[:16]}" if token else "unique-xr-gpp",
        title=str(attrs.get("title", "unique_xr daily GPP cube")),
        description=_description(attrs, grid, days),
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[start, end]])),
        license=LICENSE, providers=providers,
        keywords=["gross primary productivity", "GPP", "carbon flux", "daily", f"{grid.resolution:g} m", "datacube"],
        extra_fields={"unique_xr:job_token": token,
                      "unique_xr:units_done": sorted(metadata.get("units_done", [])),
                      "unique_xr:units_total": int(metadata.get("units_total", 0)),
                      "unique_xr:snapshot": snapshot},
    )
    collection.add_asset("cube", _store_asset(pystac, store_href, snapshot))

    cube = DatacubeExtension.ext(collection, add_if_missing=True)
    cube.apply(dimensions={name: Dimension.from_dict(d) for name, d in _dimensions(grid, start, end).items()},
               variables={name: Variable.from_dict(v) for name, v in _variables(ds).items()})
    summary = ProjectionExtension.summaries(collection, add_if_missing=True)
    if grid.epsg is not None:
        summary.code = [grid.crs]
    else:  # a CRS without an EPSG code is named by its WKT2
        collection.summaries.add("proj:wkt2", [grid.crs])

    for year in sorted(set(days.year)):
        in_year = days[days.year == year]
        first, last = _day_range(in_year)
        item = pystac.Item(id=f"{collection.id}-{year}", geometry=geometry, bbox=bbox, datetime=None,
                           start_datetime=first, end_datetime=last,
                           properties={"title": f"{collection.title}, {year} ({len(in_year)} days)",
                                       "unique_xr:job_token": token})
        proj = ProjectionExtension.ext(item, add_if_missing=True)
        if grid.epsg is not None:
            proj.code = grid.crs
        else:
            proj.wkt2 = grid.crs
        proj.shape = list(grid.shape)
        proj.transform = list(grid.transform)[:6]
        proj.bbox = list(grid.bounds)
        item.add_asset("cube", _store_asset(pystac, store_href, snapshot))
        collection.add_item(item)
    return collection


# ---------------------------------------------------------------------------- parts
def _store_asset(pystac, href: str, snapshot: str):
    return pystac.Asset(
        href=href, media_type=_ZARR_MEDIA_TYPE, roles=["data"], title="GPP cube (Icechunk repository)",
        description=("An Icechunk repository: a versioned Zarr v3 store (branch main, snapshot "
                     f"{snapshot}). Open it with unique_xr.open_cube(folder) or icechunk + xarray; "
                     "`unique-xr cube export` writes plain Zarr, NetCDF or GeoTIFF copies."))


def _dimensions(grid, start: dt.datetime, end: dt.datetime) -> dict[str, dict[str, Any]]:
    left, bottom, right, top = grid.bounds
    reference = grid.epsg if grid.epsg is not None else grid.crs
    return {
        "x": {"type": "spatial", "axis": "x", "extent": [left, right], "step": grid.resolution,
              "reference_system": reference, "description": "pixel-centre easting; extent is the pixel edges"},
        "y": {"type": "spatial", "axis": "y", "extent": [bottom, top], "step": grid.resolution,
              "reference_system": reference,
              "description": "pixel-centre northing, decreasing (north-up); extent is the pixel edges"},
        "time": {"type": "temporal", "extent": [_iso(start), _iso(end)], "step": "P1D",
                 "description": "the day (UTC); values are daily means"},
    }


def _variables(ds) -> dict[str, dict[str, Any]]:
    out = {}
    for name in ("gpp", "gpp_spread", "land_cover"):
        if name not in ds.data_vars:
            continue
        var = ds[name]
        entry: dict[str, Any] = {"type": "data" if name.startswith("gpp") else "auxiliary",
                                 "dimensions": list(var.dims),
                                 "description": str(var.attrs.get("long_name", name))}
        if "units" in var.attrs:
            entry["unit"] = str(var.attrs["units"])
        if "flag_values" in var.attrs:
            entry["values"] = [int(v) for v in np.atleast_1d(var.attrs["flag_values"])]
            entry["description"] += f"; classes: {var.attrs.get('flag_meanings', '')}"
        out[name] = entry
    return out


def _description(attrs, grid, days) -> str:
    ny, nx = grid.shape
    crs = grid.crs if grid.epsg is not None else "a CRS without an EPSG code, see proj:wkt2"
    parts = [(f"Daily gross primary productivity on a {grid.resolution:g} m grid ({ny} x {nx} pixels, {crs}), "
              f"{days[0]:%Y-%m-%d} to {days[-1]:%Y-%m-%d} ({len(days)} days).")]
    parts += [str(attrs[key]).rstrip(".") + "." for key in ("source", "comment") if attrs.get(key)]
    parts.append("License: derived from inputs under several licences (see the references and input_items "
                 "attributes of the store); no single SPDX identifier applies.")
    return " ".join(parts)


def _footprint(grid) -> tuple[dict[str, Any], list[float]]:
    """The grid's outline in lon/lat (densified, counter-clockwise) as GeoJSON, and its bbox."""
    from pyproj import Transformer

    left, bottom, right, top = grid.bounds
    n = _FOOTPRINT_POINTS
    ramp = np.linspace(0.0, 1.0, n)[:-1]
    xs = np.concatenate([left + (right - left) * ramp, np.full(n - 1, right), right - (right - left) * ramp,
                         np.full(n - 1, left)])
    ys = np.concatenate([np.full(n - 1, bottom), bottom + (top - bottom) * ramp, np.full(n - 1, top),
                         top - (top - bottom) * ramp])
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    ring = [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat)]
    ring.append(ring[0])
    bbox = [min(p[0] for p in ring), min(p[1] for p in ring), max(p[0] for p in ring), max(p[1] for p in ring)]
    return {"type": "Polygon", "coordinates": [ring]}, bbox


def _day_range(days) -> tuple[dt.datetime, dt.datetime]:
    """First instant of the first day and last second of the last day (STAC end times are inclusive), UTC."""
    first = days.min().to_pydatetime().replace(tzinfo=dt.UTC)
    last = days.max().to_pydatetime().replace(tzinfo=dt.UTC) + dt.timedelta(days=1, seconds=-1)
    return first, last


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
