"""unique_xr.testing.recorded and .stac_server: real recorded items made readable offline, served on loopback."""

from __future__ import annotations

import json
import socket
import urllib.request

import numpy as np
import pytest
import rasterio
from pyproj import CRS, Transformer
from shapely.geometry import Point, shape

from unique_xr.errors import UnknownAssetError
from unique_xr.search.collections import ESA_WORLDCOVER_CLASSES, IO_LULC_CLASSES, get_collection
from unique_xr.testing.recorded import RECORDED_COLLECTIONS, localize_items, recorded_items, write_item_collection
from unique_xr.testing.stac_server import serve_stac

#: Landsat QA_PIXEL values the localized files use: clear land, clear water, dilated cloud, cloud, shadow
LANDSAT_QA_VALUES = {21824, 21952, 21762, 22280, 23824}
_GRID_KEYS = ("proj:shape", "proj:transform", "proj:bbox", "proj:geometry")


def _local_assets(item):
    spec = get_collection(item["collection"])
    return [(spec.asset(k), a) for k, a in item["assets"].items() if a["href"].startswith("/")]


def _grid(item, asset, key):
    return asset.get(key, item["properties"].get(key))


def test_recorded_items_are_the_real_ones():
    items = recorded_items()
    counts = {cid: sum(it["collection"] == cid for it in items) for cid in RECORDED_COLLECTIONS}
    assert counts == {**{cid: 1 for cid in RECORDED_COLLECTIONS}, "landsat-c2-l2": 5}
    (nbar,) = recorded_items("mcd43a4")
    assert nbar["id"] == "MCD43A4.A2025061.h35v10.061.2025070035331"
    assert nbar["assets"]["Nadir_Reflectance_Band1"]["href"].startswith("https://modiseuwest.blob.core.windows.net/")
    nbar["id"] = "changed"  # callers get copies
    assert recorded_items("mcd43a4")[0]["id"] != "changed"


def test_localized_cogs_lie_inside_the_footprint_in_the_native_crs(localized_items):
    transformers: dict[str, Transformer] = {}
    for item in localized_items:
        footprint = shape(item["geometry"])
        local = _local_assets(item)
        assert local, item["id"]
        for spec, asset in local:
            with rasterio.open(asset["href"]) as src:
                wkt = src.crs.to_wkt()
                if wkt not in transformers:
                    transformers[wkt] = Transformer.from_crs(wkt, "EPSG:4326", always_xy=True)
                to_lonlat = transformers[wkt]
                crs = CRS.from_wkt(wkt)
                if item["collection"].startswith("modis"):
                    assert crs.to_epsg() is None and "Sinusoidal" in crs.to_wkt()
                    assert crs == CRS.from_wkt(item["properties"]["proj:wkt2"])
                else:
                    epsg = item["properties"]["proj:epsg"]
                    assert crs.to_epsg() == epsg
                assert list(src.shape) == _grid(item, asset, "proj:shape")
                assert list(src.transform)[:6] == pytest.approx(_grid(item, asset, "proj:transform")[:6])
                if _grid(item, asset, "proj:bbox") is not None:
                    assert list(src.bounds) == pytest.approx(_grid(item, asset, "proj:bbox"))
                left, bottom, right, top = src.bounds
                lon, lat = to_lonlat.transform([left, right, left, right], [bottom, bottom, top, top])
                corners = [Point(x, y) for x, y in zip(lon, lat, strict=True)]
                assert all(footprint.contains(c) for c in corners), (item["id"], spec.key)
                assert src.dtypes[0] == spec.dtype
                assert src.nodata == spec.nodata or (src.nodata is None and spec.nodata is None)


def test_localized_values_are_plausible_for_each_asset(localized_items):
    for item in localized_items:
        for spec, asset in _local_assets(item):
            with rasterio.open(asset["href"]) as src:
                raw = src.read(1)
            valid = raw if spec.nodata is None else raw[raw != spec.nodata]
            assert valid.size > 0.5 * raw.size, (item["id"], spec.key)  # mostly valid data, not fill
            if spec.valid_range is not None:
                assert valid.min() >= spec.valid_range[0] and valid.max() <= spec.valid_range[1], spec.key
            physical = valid * spec.scale + spec.offset
            if spec.kind == "reflectance":
                assert 0.0 <= physical.min() and physical.max() <= 0.7
            elif spec.kind == "temperature":
                assert 260 <= physical.min() and physical.max() <= 330
            elif spec.kind == "elevation":
                assert -500 <= physical.min() and physical.max() <= 9000
            elif spec.key == "qa_pixel":
                assert set(np.unique(raw)) <= LANDSAT_QA_VALUES and 21824 in set(np.unique(raw))
            elif spec.kind == "landcover":
                classes = ESA_WORLDCOVER_CLASSES if item["collection"] == "esa-worldcover" else IO_LULC_CLASSES
                assert set(np.unique(raw)) <= set(classes)


def test_vegetation_looks_like_vegetation(localized_items):
    (landsat,) = [it for it in localized_items if it["id"] == "LC09_L2SP_089089_20240417_02_T1"]

    def read(key):
        with rasterio.open(landsat["assets"][key]["href"]) as src:
            return src.read(1) * 2.75e-5 - 0.2

    with rasterio.open(landsat["assets"]["qa_pixel"]["href"]) as src:
        clear_land = src.read(1) == 21824
    red, nir = read("red"), read("nir08")
    ndvi = (nir - red) / (nir + red)
    assert clear_land.mean() > 0.5
    assert np.median(ndvi[clear_land]) > 0.2  # clear land pixels are vegetated


def test_only_the_grid_and_local_hrefs_change(localized_items):
    originals = {it["id"]: it for it in recorded_items()}
    for item in localized_items:
        original = originals[item["id"]]
        assert item["geometry"] == original["geometry"] and item["bbox"] == original["bbox"]
        strip = lambda props: {k: v for k, v in props.items() if k not in _GRID_KEYS}  # noqa: E731
        assert strip(item["properties"]) == strip(original["properties"])
        assert set(item["assets"]) == set(original["assets"])
        for key, asset in item["assets"].items():
            before = original["assets"][key]
            if asset["href"].startswith("/"):
                assert {k for k in before if k not in asset} <= {"file:size", "file:checksum", "file:header_size"}
                assert asset.get("raster:bands") == before.get("raster:bands")
            else:  # remote assets keep their href and the real grid (pinned at asset level where it was the item's)
                assert asset["href"] == before["href"]
                for k in _GRID_KEYS:
                    if k in asset:
                        assert asset[k] == before.get(k, original["properties"].get(k))


def test_localize_selected_assets_and_seed(tmp_path):
    items = recorded_items("landsat")[:1]
    one = localize_items(items, tmp_path / "a", assets=["red", "qa_pixel"], size=16, seed=1)[0]
    same = localize_items(items, tmp_path / "b", assets=["red", "qa_pixel"], size=16, seed=1)[0]
    other = localize_items(items, tmp_path / "c", assets=["red"], size=16, seed=2)[0]
    assert sorted(k for k, a in one["assets"].items() if a["href"].startswith("/")) == ["qa_pixel", "red"]
    assert one["properties"]["proj:shape"] == [16, 16]

    def pixels(item):
        with rasterio.open(item["assets"]["red"]["href"]) as src:
            return src.read(1)

    assert np.array_equal(pixels(one), pixels(same)) and not np.array_equal(pixels(one), pixels(other))
    with pytest.raises(UnknownAssetError, match="thermal_infrared"):
        localize_items(items, tmp_path / "d", assets=["thermal_infrared"])


def test_center_moves_the_window(tmp_path):
    (nbar,) = recorded_items("mcd43a4")
    a = localize_items([nbar], tmp_path / "a", assets=["red"], size=8, center=(178.8, -17.3))[0]
    b = localize_items([nbar], tmp_path / "b", assets=["red"], size=8, center=(175.0, -12.0))[0]
    sinusoidal = Transformer.from_crs(nbar["properties"]["proj:wkt2"], "EPSG:4326", always_xy=True)
    for item, (lon, lat) in ((a, (178.8, -17.3)), (b, (175.0, -12.0))):
        t = item["properties"]["proj:transform"]
        x, y = t[2] + 4 * t[0], t[5] + 4 * t[4]  # the window centre
        got_lon, got_lat = sinusoidal.transform(x, y)
        assert got_lon == pytest.approx(lon, abs=0.05) and got_lat == pytest.approx(lat, abs=0.05)
    # a centre west of the tile's true (sinusoidal) edge, though inside PC's coarse lon/lat polygon,
    # gives a window clamped onto the tile's first column
    c = localize_items([nbar], tmp_path / "c", assets=["red"], size=8, center=(178.0, -17.8))[0]
    assert c["properties"]["proj:transform"][2] == nbar["properties"]["proj:transform"][2]


def test_session_windows_overlap_the_search_areas(localized_items):
    """The Fiji and Tasmania searches find items whose local pixels really lie in the searched box."""
    from shapely.geometry import box

    from .conftest import FIJI, TASMANIA

    for item in localized_items:
        area = FIJI if item["collection"].startswith("modis") else TASMANIA
        if item["id"] in ("LC09_L2SP_089089_20240417_02_T1", "LC09_L2SP_089090_20240417_02_T1") or area is FIJI:
            spec, asset = _local_assets(item)[0]
            with rasterio.open(asset["href"]) as src:
                to_lonlat = Transformer.from_crs(src.crs.to_wkt(), "EPSG:4326", always_xy=True)
                lon, lat = to_lonlat.transform([src.bounds.left, src.bounds.right], [src.bounds.bottom, src.bounds.top])
            assert box(*area).contains(box(min(lon), min(lat), max(lon), max(lat))), item["id"]


def test_write_item_collection_formats(localized_items, tmp_path):
    landsat = [it for it in localized_items if it["collection"] == "landsat-c2-l2"]
    as_json = json.loads(write_item_collection(landsat, tmp_path / "c.json").read_text())
    assert as_json["type"] == "FeatureCollection" and len(as_json["features"]) == 5
    lines = write_item_collection(landsat, tmp_path / "c.ndjson").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [it["id"] for it in landsat]
    assert write_item_collection(landsat, tmp_path / "c.parquet").stat().st_size > 0


def test_serve_stac_lifecycle(tmp_path):
    items = recorded_items("nasadem")
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps(items))  # a bare JSON list, which rustac itself rejects
    with serve_stac([listing]) as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/collections") as resp:
            ids = [c["id"] for c in json.load(resp)["collections"]]
        assert ids == ["nasadem"]
        port = int(url.rsplit(":", 1)[1])
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):  # the server is gone
        s.connect(("127.0.0.1", port))


def test_serve_stac_refuses_non_loopback_hosts_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="loopback"):
        with serve_stac([tmp_path / "x.json"], host="0.0.0.0"):
            pass
    with pytest.raises(FileNotFoundError, match="x.json"):
        with serve_stac([tmp_path / "x.json"]):
            pass
