"""Rebuild the embedded sample data in ``unique_xr/data/sample/`` from ``../shared/data``.

Run from the repository root::

    python examples/prepare_sample_data.py

What it does, and nothing else: the two real Landsat 8 Collection 2 Level-2 crops of scene
218074 (Brumadinho, Minas Gerais, Brazil; 2019-01-14 and 2019-01-30; CC-0 via xlandsat) are
unpacked, georeferenced from their MTL files (the crops carry no georeferencing; the MTL corner
coordinates are pixel centres), and written unchanged (same uint16 DN) as COGs, together with a
STAC ItemCollection shaped like the Planetary Computer ``landsat-c2-l2`` items. The crops have no
QA_PIXEL band; the demo adds one from the seeded synthetic generator and says so.
"""

from __future__ import annotations

import json
import re
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "scenes" / "landsat8_c2l2_crops"
OUT = ROOT / "unique_xr" / "data" / "sample" / "landsat"
SCENES = [
    "LC08_L2SP_218074_20190114_20200829_02_T1",
    "LC08_L2SP_218074_20190130_20200829_02_T1",
]
# file band -> STAC asset key (Landsat 8/9, Collection 2)
BANDS = {"SR_B2": "blue", "SR_B3": "green", "SR_B4": "red", "SR_B5": "nir08", "SR_B6": "swir16", "SR_B7": "swir22"}
EO_NAMES = {"blue": "blue", "green": "green", "red": "red", "nir08": "nir08", "swir16": "swir16", "swir22": "swir22"}

sys.path.insert(0, str(ROOT))
from unique_xr.testing.cog import write_cog  # noqa: E402


def _mtl(text: str, key: str) -> str:
    m = re.search(rf"^\s*{key}\s*=\s*\"?([^\"\n]+)\"?", text, re.M)
    if m is None:
        raise KeyError(key)
    return m.group(1).strip()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    items = []
    for scene in SCENES:
        with tempfile.TemporaryDirectory() as tmp, tarfile.open(SHARED / f"{scene}-cropped.tar.gz") as tar:
            tar.extractall(tmp, filter="data")
            mtl_text = (Path(tmp) / f"{scene}_MTL.txt").read_text()
            res = float(_mtl(mtl_text, "GRID_CELL_SIZE_REFLECTIVE"))
            zone = int(_mtl(mtl_text, "UTM_ZONE"))
            ulx = float(_mtl(mtl_text, "CORNER_UL_PROJECTION_X_PRODUCT"))
            uly = float(_mtl(mtl_text, "CORNER_UL_PROJECTION_Y_PRODUCT"))
            rows = int(_mtl(mtl_text, "REFLECTIVE_LINES"))
            cols = int(_mtl(mtl_text, "REFLECTIVE_SAMPLES"))
            # USGS convention: northern-hemisphere UTM zone with negative northings south of the equator
            epsg = 32600 + zone
            transform = Affine(res, 0.0, ulx - res / 2, 0.0, -res, uly + res / 2)
            date = _mtl(mtl_text, "DATE_ACQUIRED")
            time = _mtl(mtl_text, "SCENE_CENTER_TIME").rstrip("Z")[:15]
            assets = {}
            for band, key in BANDS.items():
                with rasterio.open(Path(tmp) / f"{scene}_{band}.TIF") as src:
                    dn = src.read(1)
                if dn.shape != (rows, cols):
                    raise ValueError(f"{scene} {band}: shape {dn.shape} != MTL {(rows, cols)}")
                name = f"{scene}_{band}.tif"
                write_cog(OUT / name, dn.astype(np.uint16), crs=f"EPSG:{epsg}", transform=transform, nodata=0)
                assets[key] = {
                    "href": name,
                    "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                    "title": f"{band} surface reflectance",
                    "roles": ["data", "reflectance"],
                    "eo:bands": [{"name": band, "common_name": EO_NAMES[key]}],
                    "raster:bands": [{"scale": 2.75e-05, "nodata": 0, "offset": -0.2, "data_type": "uint16",
                                      "spatial_resolution": 30}],
                }
            (OUT / f"{scene}_MTL.txt").write_text(mtl_text)
            assets["mtl.txt"] = {"href": f"{scene}_MTL.txt", "type": "text/plain", "roles": ["metadata"]}
        left, top = transform.c, transform.f
        right, bottom = left + cols * res, top - rows * res
        from pyproj import Transformer

        tr = Transformer.from_crs(epsg, 4326, always_xy=True)
        lon, lat = tr.transform([left, right, right, left], [bottom, bottom, top, top])
        ring = [[float(x), float(y)] for x, y in zip(lon, lat)] + [[float(lon[0]), float(lat[0])]]
        items.append({
            "type": "Feature", "stac_version": "1.0.0",
            "stac_extensions": [
                "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
                "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            ],
            "id": scene.replace("_20200829", ""), "collection": "landsat-c2-l2",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "bbox": [min(lon), min(lat), max(lon), max(lat)],
            "properties": {
                "datetime": f"{date}T{time}Z", "platform": "landsat-8", "instruments": ["oli", "tirs"],
                "eo:cloud_cover": float(_mtl(mtl_text, "CLOUD_COVER")),
                "view:sun_elevation": float(_mtl(mtl_text, "SUN_ELEVATION")),
                "view:sun_azimuth": float(_mtl(mtl_text, "SUN_AZIMUTH")),
                "landsat:wrs_path": "218", "landsat:wrs_row": "074", "landsat:collection_category": "T1",
                "proj:epsg": epsg, "proj:shape": [rows, cols], "proj:transform": list(transform)[:6],
                "unique_xr:source": "xlandsat sample crop (CC-0); values unchanged, georeferenced from the MTL",
            },
            "assets": assets, "links": [],
        })
    (OUT / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}, indent=1))
    print(f"wrote {len(items)} items and their COGs to {OUT}")


if __name__ == "__main__":
    main()
