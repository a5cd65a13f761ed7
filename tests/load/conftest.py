"""Fixtures for the load tests: real recorded Planetary Computer items re-pointed at small local COGs.

The item JSON comes from ``../shared/data/stac/planetary_computer_responses/items_from_cassettes``
(Planetary Computer STAC API responses recorded in stac-utils/stac-geoparquet, MIT). We keep each
item's property and asset structure (MODIS: ``proj:epsg: null`` + sinusoidal ``proj:wkt2``;
Landsat: ``proj:epsg``; ``raster:bands``) and only change what a crop changes: ``id``, datetimes,
``proj:shape``/``proj:transform``/``proj:geometry``, ``bbox``/``geometry``, and the asset hrefs,
which point at COGs written in ``tmp_path`` with known pixel values.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from affine import Affine
from pyproj import CRS, Transformer

from unique_xr.testing.cog import write_cog

PC_ITEMS = Path("stac") / "planetary_computer_responses" / "items_from_cassettes"

#: MODIS sinusoidal sphere (the WKT in the recorded items).
MODIS_SPHERE_RADIUS = 6371007.181


def _first_feature(shared_data: Path, name: str) -> dict[str, Any]:
    path = shared_data / PC_ITEMS / f"{name}.itemcollection.json"
    return json.loads(path.read_text())["features"][0]


@pytest.fixture(scope="session")
def modis_template(shared_data) -> dict[str, Any]:
    """The real MCD43A4 item (tile h35v10) as recorded from the Planetary Computer."""
    item = _first_feature(shared_data, "modis-43A4-061")
    assert item["properties"]["proj:epsg"] is None and "Sinusoidal" in item["properties"]["proj:wkt2"]
    return item


@pytest.fixture(scope="session")
def landsat_template(shared_data) -> dict[str, Any]:
    """The real Landsat 9 C2 L2 item (path 90 row 91, EPSG:32655) as recorded from the Planetary Computer."""
    item = _first_feature(shared_data, "landsat-c2-l2")
    assert item["properties"]["proj:epsg"] == 32655
    return item


def _lonlat_box(crs: Any, transform: Affine, shape: tuple[int, int]) -> tuple[list[float], dict[str, Any]]:
    """lon/lat bbox and polygon of a raster (edges densified)."""
    height, width = shape
    t = np.linspace(0, 1, 11)
    cols = np.concatenate([t * width, np.full(11, width), (1 - t) * width, np.zeros(11)])
    rows = np.concatenate([np.zeros(11), t * height, np.full(11, height), (1 - t) * height])
    xs, ys = transform @ (cols, rows)
    lon, lat = Transformer.from_crs(CRS.from_user_input(crs), "EPSG:4326", always_xy=True).transform(xs, ys)
    bbox = [float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())]
    corners = [[bbox[0], bbox[1]], [bbox[2], bbox[1]], [bbox[2], bbox[3]], [bbox[0], bbox[3]], [bbox[0], bbox[1]]]
    return bbox, {"type": "Polygon", "coordinates": [corners]}


def _crop_item(
    template: Mapping[str, Any],
    folder: Path,
    *,
    item_id: str,
    crs: Any,
    transform: Affine,
    data: Mapping[str, np.ndarray],
    nodata: Mapping[str, float | None],
    properties: Mapping[str, Any],
) -> dict[str, Any]:
    item = copy.deepcopy(dict(template))
    item["id"] = item_id
    item["links"] = []
    shape = next(iter(data.values())).shape
    props = item["properties"]
    props.update(properties)
    props["proj:shape"] = list(shape)
    props["proj:transform"] = list(transform)[:6]
    if "proj:geometry" in props:
        left, top = transform @ (0, 0)
        right, bottom = transform @ (shape[1], shape[0])
        props["proj:geometry"] = {
            "type": "Polygon",
            "coordinates": [[[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]],
        }
    item["bbox"], item["geometry"] = _lonlat_box(crs, transform, shape)
    assets = {}
    for key, asset in item["assets"].items():
        if key in data:
            path = write_cog(folder / f"{item_id}_{key}.tif", data[key], crs=crs, transform=transform,
                             nodata=nodata.get(key), blocksize=256)
            assets[key] = {**asset, "href": str(path)}
        elif "data" not in asset.get("roles", []):
            assets[key] = asset  # keep the non-raster assets (hdf, metadata, ...) as they are
    item["assets"] = assets
    return item


@pytest.fixture
def modis_item(tmp_path, modis_template) -> Callable[..., dict[str, Any]]:
    """Factory: an MCD43A4 item whose assets are COG crops of tile h35v10 starting at (row_off, col_off).

    ``data`` maps asset keys to int16/uint8 arrays; the files record nodata 32767 (NBAR) / 255 (QA)
    like the Planetary Computer COGs, while the item, like the recorded one, has none.
    """
    props = modis_template["properties"]
    tile_transform = Affine(*props["proj:transform"][:6])
    wkt = props["proj:wkt2"]

    def make(data: Mapping[str, np.ndarray], *, row_off: int, col_off: int, item_id: str = "MCD43A4.A2025061.test",
             start: str = "2025-03-02T00:00:00Z", file_nodata: bool = True) -> dict[str, Any]:
        transform = tile_transform @ Affine.translation(col_off, row_off)
        nodata = {k: (255 if "Quality" in k else 32767) if file_nodata else None for k in data}
        return _crop_item(
            modis_template, tmp_path, item_id=item_id, crs=wkt, transform=transform, data=data, nodata=nodata,
            properties={"start_datetime": start, "datetime": start.replace("T00:00:00Z", "T23:59:59Z")},
        )

    make.tile_transform = tile_transform  # type: ignore[attr-defined]
    make.wkt = wkt  # type: ignore[attr-defined]
    return make


@pytest.fixture
def landsat_item(tmp_path, landsat_template) -> Callable[..., dict[str, Any]]:
    """Factory: a Landsat C2 L2 item whose assets are 30 m COG crops at (row_off, col_off) of the scene grid."""
    props = landsat_template["properties"]
    scene_transform = Affine(*props["proj:transform"][:6])

    def make(data: Mapping[str, np.ndarray], *, row_off: int = 0, col_off: int = 0,
             item_id: str = "LC09_L2SP_090091_20250310_02_T1", datetime: str = "2025-03-10T23:53:08.935246Z",
             nodata: Mapping[str, float | None] | None = None) -> dict[str, Any]:
        transform = scene_transform @ Affine.translation(col_off, row_off)
        nd = {k: (1 if k == "qa_pixel" else 0) for k in data} if nodata is None else dict(nodata)
        return _crop_item(
            landsat_template, tmp_path, item_id=item_id, crs="EPSG:32655", transform=transform, data=data,
            nodata=nd, properties={"datetime": datetime},
        )

    make.scene_transform = scene_transform  # type: ignore[attr-defined]
    return make
