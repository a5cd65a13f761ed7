"""The synthetic region generator: determinism, QA bits, scale/offset, 500 m area means, STAC shape."""

from __future__ import annotations

import dataclasses
import datetime as dt
import doctest
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import CRS, Transformer

from unique_xr.errors import CRSError, GridError, SpecError
from unique_xr.grid import GridSpec
from unique_xr.search.collections import get_collection
from unique_xr.testing import synthetic
from unique_xr.testing.synthetic import (
    MODIS_PIXEL_SIZE,
    MODIS_WKT,
    SyntheticRegionSpec,
    make_region,
)

LANDSAT = get_collection("landsat-c2-l2")
MODIS = get_collection("mcd43a4")
CLASSES = (10, 30, 40, 50, 70, 80)


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """A non-square region with every product; swath edges on every date; no Landsat noise."""
    spec = SyntheticRegionSpec.around(
        lonlat=(10.45, 51.08), shape=(96, 128), seed=7, start="2023-06-01", end="2023-06-20",
        modis_every_days=4, cloud_fraction=0.4, cirrus_fraction=0.1, scene_edge_probability=1.0,
        landcover_classes=CLASSES, landcover_fractions=(0.3, 0.15, 0.3, 0.08, 0.05, 0.12),
        landsat_noise=0.0, modis_noise=0.002,
    )
    return make_region(tmp_path_factory.mktemp("region"), spec, stac_geoparquet=True)


@pytest.fixture(scope="module")
def truth(region):
    return region.truth()


def read(href: str) -> tuple[np.ndarray, rasterio.profiles.Profile]:
    with rasterio.open(href) as src:
        return src.read(1), src.profile


# ------------------------------------------------------------------------------------ spec
def test_spec_is_validated_frozen_and_tokenized():
    dask = pytest.importorskip("dask")
    spec = SyntheticRegionSpec.square(size_px=40, seed=3)
    assert spec.grid.shape == (40, 40) and spec.grid.crs == "EPSG:32632" and spec.start == dt.date(2023, 6, 1)
    assert dask.base.tokenize(spec) == dask.base.tokenize(SyntheticRegionSpec.square(size_px=40, seed=3))
    assert dask.base.tokenize(spec) != dask.base.tokenize(SyntheticRegionSpec.square(size_px=40, seed=4))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 5
    assert sum(spec.landcover_fractions) == pytest.approx(1.0)

    web_mercator = GridSpec(crs="EPSG:3857", resolution=30, bounds=(0, 0, 300, 300))
    antimeridian = GridSpec(crs="EPSG:32760", resolution=30, bounds=(818010, 8172420, 820410, 8174340))
    utm_10m = GridSpec(crs="EPSG:32632", resolution=10, bounds=(500000, 5600000, 500300, 5600300))
    bad = [
        (CRSError, dict(grid=web_mercator)),
        (CRSError, dict(grid=antimeridian)),
        (GridError, dict(grid=utm_10m)),
        (SpecError, dict(seed=-1)),
        (SpecError, dict(start="2023-07-01", end="2023-06-01")),
        (SpecError, dict(landcover_classes=(10, 42))),
        (SpecError, dict(landcover_fractions=(0.5, 0.5))),
        (SpecError, dict(cloud_fraction=1.5)),
        (SpecError, dict(start="not a date")),
    ]
    for error, change in bad:
        with pytest.raises(error) as info:
            dataclasses.replace(spec, **change)
        assert isinstance(info.value, ValueError) and len(str(info.value)) > 30


def test_around_picks_the_utm_zone_and_centres_the_grid():
    south = SyntheticRegionSpec.around(lonlat=(147.3, -42.9), shape=(20, 50), seed=0)
    assert south.grid.crs == "EPSG:32755" and south.grid.shape == (20, 50)
    west, s, east, n = south.grid.bounds_latlon
    assert west < 147.3 < east and s < -42.9 < n
    assert dataclasses.replace(south, start="2023-06-02").landsat_dates[0] == dt.date(2023, 6, 2)
    assert len(SyntheticRegionSpec.square(size_px=8, seed=0, start="2023-01-01", end="2023-02-02").landsat_dates) == 3


# ------------------------------------------------------------------------------- determinism
def _digest(directory: Path) -> dict[str, str]:
    """sha256 of every file, with the directory itself blanked out of the JSON (absolute hrefs)."""
    out = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".json":
                data = data.replace(str(directory).encode(), b"<root>")
            out[str(path.relative_to(directory))] = hashlib.sha256(data).hexdigest()
    return out


def test_same_seed_same_bytes_different_seed_different_pixels(tmp_path):
    spec = SyntheticRegionSpec.square(size_px=32, seed=11, start="2023-06-01", end="2023-06-17", modis_every_days=8)
    a = make_region(tmp_path / "a", spec)
    b = make_region(tmp_path / "b", spec)
    c = make_region(tmp_path / "c", dataclasses.replace(spec, seed=12))
    digest_a, digest_b = _digest(a.directory), _digest(b.directory)
    assert len(digest_a) > 40 and digest_a == digest_b
    assert any(p.endswith(".tif") or p.endswith(".TIF") for p in digest_a)
    red_a = read(a.items["landsat-c2-l2"][0]["assets"]["red"]["href"])[0]
    red_c = read(c.items["landsat-c2-l2"][0]["assets"]["red"]["href"])[0]
    assert red_a.shape == red_c.shape and not np.array_equal(red_a, red_c)
    ta, tb, tc = a.truth(), b.truth(), c.truth()
    assert ta.identical(tb)
    assert not np.array_equal(ta["elevation"].values, tc["elevation"].values)


# ---------------------------------------------------------------------------------- Landsat
def test_landsat_qa_pixel_bits_follow_collection2(region, truth):
    landcover = truth["landcover"].values
    any_cloud = any_fill = any_shadow = any_water = False
    for item in region.items["landsat-c2-l2"]:
        qa, profile = read(item["assets"]["qa_pixel"]["href"])
        red = read(item["assets"]["red"]["href"])[0]
        blue = read(item["assets"]["blue"]["href"])[0].astype(float) * 2.75e-5 - 0.2
        assert qa.dtype == np.uint16 and profile["nodata"] == 1
        fill, dilated, cirrus, cloud = (qa & 1) > 0, (qa >> 1) & 1 > 0, (qa >> 2) & 1 > 0, (qa >> 3) & 1 > 0
        shadow, snow, clear, water = (qa >> 4) & 1 > 0, (qa >> 5) & 1 > 0, (qa >> 6) & 1 > 0, (qa >> 7) & 1 > 0
        cloud_conf, shadow_conf = (qa >> 8) & 3, (qa >> 10) & 3
        snow_conf, cirrus_conf = (qa >> 12) & 3, (qa >> 14) & 3
        valid = ~fill
        # fill: exactly 1, and only where the band has no data
        assert fill.any() and valid.any()
        assert np.all(qa[fill] == 1) and np.all(red[fill] == 0) and np.all(red[valid] > 0)
        # clear = neither cloud nor dilated cloud
        assert np.array_equal(clear[valid], ~(cloud | dilated)[valid])
        assert not np.any(cloud & clear) and not np.any(cloud & dilated)
        # confidences: high where flagged, low (or medium cloud) elsewhere
        assert np.all(cloud_conf[cloud] == 3) and np.all(np.isin(cloud_conf[valid & ~cloud], (1, 2)))
        assert np.all(shadow_conf[valid] == np.where(shadow, 3, 1)[valid])
        assert np.all(cirrus_conf[valid] == np.where(cirrus, 3, 1)[valid])
        assert np.all(snow_conf[valid] == np.where(snow, 3, 1)[valid])
        # water and snow from the land cover, never under cloud
        assert np.array_equal(water[valid], ((landcover == 80) & ~cloud)[valid])
        assert np.array_equal(snow[valid], ((landcover == 70) & ~cloud)[valid])
        assert not np.any(shadow & cloud)
        # the dilation ring: within 3 pixels of a cloud, and every cloud's neighbours are in it
        if cloud.any():
            near = np.zeros_like(cloud)
            for dy in range(-3, 4):
                for dx in range(-3, 4):
                    near |= np.roll(np.roll(cloud, dy, 0), dx, 1)
            assert np.all(near[dilated])
            edge = np.zeros_like(cloud)
            edge[1:] |= cloud[:-1]
            edge[:-1] |= cloud[1:]
            assert np.all(dilated[edge & ~cloud & valid])
            # clouds are bright
            assert blue[cloud & valid].mean() > 0.3 > blue[clear & ~cirrus & ~shadow & valid].mean()
        expected_cover = 100.0 * (cloud & valid).sum() / valid.sum()
        assert item["properties"]["eo:cloud_cover"] == pytest.approx(expected_cover, abs=0.01)
        any_cloud |= cloud.any()
        any_fill |= fill.any()
        any_shadow |= shadow.any()
        any_water |= water.any()
    assert any_cloud and any_fill and any_shadow and any_water


def test_landsat_dn_decode_to_the_truth_with_registry_scale_offset(region, truth):
    for t, item in enumerate(region.items["landsat-c2-l2"]):
        qa = read(item["assets"]["qa_pixel"]["href"])[0]
        clean = ((qa & 0b11111) == 0) & ((qa >> 6) & 1 == 1) & ((qa >> 8) & 3 == 1)  # clear, low confidence
        assert clean.mean() > 0.2
        for key in ("blue", "green", "red", "nir08", "swir16", "swir22", "lwir11"):
            asset = LANDSAT.asset(key)
            raster = item["assets"][key]["raster:bands"][0]
            assert (raster["scale"], raster["offset"], raster["nodata"], raster["data_type"]) == (
                asset.scale, asset.offset, asset.nodata, asset.dtype)
            dn, profile = read(item["assets"][key]["href"])
            assert dn.dtype == np.uint16 and profile["nodata"] == 0
            value = dn.astype(np.float64) * asset.scale + asset.offset
            expected = truth["lst" if key == "lwir11" else asset.role].values[t]
            np.testing.assert_allclose(value[clean], expected[clean], atol=asset.scale / 2 + 1e-5)
    # shadows are darker than the ground they fall on
    item = region.items["landsat-c2-l2"][0]
    qa = read(item["assets"]["qa_pixel"]["href"])[0]
    shadow = ((qa >> 4) & 1 == 1) & ((qa >> 3) & 1 == 0) & ((qa & 1) == 0)
    nir = read(item["assets"]["nir08"]["href"])[0] * 2.75e-5 - 0.2
    if shadow.any():
        assert np.all(nir[shadow] < truth["nir"].values[0][shadow])


def test_truth_is_consistent_and_scene_is_plausible(region, truth):
    ny, nx = region.grid.shape
    assert truth.sizes == {"time": 2, "y": ny, "x": nx}
    assert truth["red"].dtype == np.float32 and truth["red"].attrs["units"] == "1"
    np.testing.assert_allclose(truth["x"].values, region.grid.x)
    ndvi = (truth["nir"] - truth["red"]) / (truth["nir"] + truth["red"])
    np.testing.assert_allclose(truth["ndvi"].values, ndvi.values, rtol=1e-5, atol=1e-6)
    assert set(np.unique(truth["landcover"].values)) <= set(CLASSES)
    lc, slope, elev = truth["landcover"].values, truth["slope"].values, truth["elevation"].values
    water_ndvi = truth["ndvi"].values[0][lc == 80]
    assert water_ndvi.size and water_ndvi.max() < 0
    if (lc == 80).any():
        assert elev[lc == 80].mean() < elev.mean()
    assert slope[lc == 10].mean() > slope[lc == 40].mean()  # forest on slopes, crops on flats
    seasons = region.truth(times=["2023-03-01T10:00", "2023-07-15T10:00"])
    crop = seasons["ndvi"].values[:, lc == 40].mean(axis=1)
    assert crop[1] - crop[0] > 0.3  # cropland greens up
    for name in ("blue", "green", "red", "nir", "swir1", "swir2"):
        assert 0 <= float(seasons[name].min()) and float(seasons[name].max()) < 1


# ---------------------------------------------------------------------------------- MODIS
def test_modis_nbar_is_the_500m_area_mean_of_the_truth(region):
    items = region.items["modis-43A4-061"]
    assert len(items) == len(region.spec.modis_dates) == 5
    truth = region.truth(times=region.modis_times)
    ny, nx = region.grid.shape
    xx, yy = np.meshgrid(region.grid.x, region.grid.y)
    sx, sy = Transformer.from_crs(region.grid.crs, MODIS_WKT, always_xy=True).transform(xx, yy)
    roles = {b: MODIS.asset(f"Nadir_Reflectance_Band{b}").role for b in range(1, 8)}
    diffs = []
    for item in items:
        t = region.modis_times.index(dt.datetime.fromisoformat(item["properties"]["datetime"].rstrip("Z")))
        qa, profile = read(item["assets"]["BRDF_Albedo_Band_Mandatory_Quality_Band1"]["href"])
        assert qa.dtype == np.uint8 and set(np.unique(qa)) <= {0, 1, 255}
        tr = profile["transform"]
        col = np.floor((sx - tr.c) / tr.a).astype(int)
        row = np.floor((sy - tr.f) / tr.e).astype(int)
        h, w = qa.shape
        inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        cell = np.where(inside, row * w + col, 0)
        count = np.bincount(cell[inside], minlength=h * w)
        whole = count >= 0.98 * (MODIS_PIXEL_SIZE / 30.0) ** 2  # cells entirely inside the region
        good = whole & (qa.ravel() == 0)
        assert whole.sum() >= 10
        for b, role in roles.items():
            nbar, prof = read(item["assets"][f"Nadir_Reflectance_Band{b}"]["href"])
            assert nbar.dtype == np.int16 and prof["nodata"] == 32767
            assert np.array_equal(nbar == 32767, qa == 255)
            sums = np.bincount(cell[inside], weights=truth[role].values[t][inside], minlength=h * w)
            mean = sums / np.maximum(count, 1)
            diffs.append(nbar.ravel()[good] * 1e-4 - mean[good])
    diff = np.concatenate(diffs)  # NBAR - area mean over full-inversion cells: the noise (sd 0.002) alone
    assert diff.size > 100
    assert np.abs(diff).max() < 5 * 0.002 + 1e-4
    assert abs(diff.mean()) < 0.0005 and 0.0015 < diff.std() < 0.0025


def test_modis_items_are_sinusoidal_with_null_epsg_on_the_global_grid(region):
    for item in region.items["modis-43A4-061"]:
        props = item["properties"]
        assert props["proj:epsg"] is None and props["proj:wkt2"] == MODIS_WKT
        wkt_crs = CRS.from_wkt(props["proj:wkt2"])
        assert "Sinusoidal" in props["proj:wkt2"] and wkt_crs.ellipsoid.semi_major_metre == pytest.approx(6371007.181)
        a, _, x0, _, e, y0 = props["proj:transform"]
        assert a == -e == pytest.approx(463.312716525, abs=1e-6)
        # aligned to the global tile grid, and the tile numbers say which tile
        col, row = (x0 + 20015109.354) / a, (10007554.677 - y0) / a
        assert col == pytest.approx(round(col), abs=1e-6) and row == pytest.approx(round(row), abs=1e-6)
        assert round(col) // 2400 == props["modis:horizontal-tile"]
        assert round(row) // 2400 == props["modis:vertical-tile"]
        assert (props["modis:horizontal-tile"], props["modis:vertical-tile"]) == (18, 3)
        for asset in item["assets"].values():
            with rasterio.open(asset["href"]) as src:
                assert CRS.from_wkt(src.crs.to_wkt()).equals(wkt_crs)
                assert list(src.transform)[:6] == pytest.approx(props["proj:transform"])
                assert [src.height, src.width] == props["proj:shape"]


# ---------------------------------------------------------------------------------- STAC
def test_items_validate_and_match_their_cogs(region):
    pystac = pytest.importorskip("pystac")
    assert set(region.items) == {"landsat-c2-l2", "modis-43A4-061", "cop-dem-glo-30", "esa-worldcover"}
    for cid, items in region.items.items():
        collection = pystac.ItemCollection.from_file(str(region.item_collection_paths[cid]))
        assert [i.id for i in collection] == [i["id"] for i in items]
        for raw in items:
            item = pystac.Item.from_dict(raw)
            assert item.collection_id == cid and len(item.bbox) == 4
            for key, asset in item.assets.items():
                assert Path(asset.href).is_file(), (cid, key)
                shape = raw["assets"][key].get("proj:shape", raw["properties"].get("proj:shape"))
                transform = raw["assets"][key].get("proj:transform", raw["properties"].get("proj:transform"))
                with rasterio.open(asset.href) as src:
                    assert [src.height, src.width] == shape
                    assert list(src.transform)[:6] == pytest.approx(transform, rel=1e-12, abs=1e-9)
                    epsg = raw["properties"]["proj:epsg"]
                    if epsg is not None:
                        assert src.crs.to_epsg() == epsg
                    if "raster:bands" in raw["assets"][key]:
                        assert src.dtypes[0] == raw["assets"][key]["raster:bands"][0]["data_type"]
    everything = pystac.ItemCollection.from_file(str(region.item_collection_paths["all"]))
    assert len(everything) == sum(len(v) for v in region.items.values())
    landsat = region.items["landsat-c2-l2"]
    assert [i["properties"]["platform"] for i in landsat] == ["landsat-8", "landsat-9"]
    assert all(i["properties"]["proj:epsg"] == 32632 for i in landsat)
    assert json.loads((region.directory / "region.json").read_text())["seed"] == 7
    rustac = pytest.importorskip("rustac")
    assert set(region.geoparquet_paths) == set(region.items)
    for cid, path in region.geoparquet_paths.items():
        assert [f["id"] for f in rustac.read_sync(str(path))["features"]] == [i["id"] for i in region.items[cid]]


def test_dem_and_worldcover_are_lat_lon_and_agree_with_the_truth(region, truth):
    (dem_item,) = region.items["cop-dem-glo-30"]
    (wc_item,) = region.items["esa-worldcover"]
    assert dem_item["id"] == "Copernicus_DSM_COG_10_N51_00_E010_00_DEM"
    assert wc_item["id"] == "ESA_WorldCover_10m_2021_v200_N51E009"
    xx, yy = np.meshgrid(region.grid.x, region.grid.y)
    lon, lat = Transformer.from_crs(region.grid.crs, "EPSG:4326", always_xy=True).transform(xx, yy)
    with rasterio.open(dem_item["assets"]["data"]["href"]) as src:
        assert src.crs.to_epsg() == 4326 and src.dtypes[0] == "float32"
        assert src.res[1] == pytest.approx(1 / 3600) and src.res[0] == pytest.approx(1.5 / 3600)  # 50-60 N
        # pixel centres on whole arc-seconds, like Copernicus GLO-30
        top_centre_arcsec = (src.transform.f - src.res[1] / 2) * 3600
        assert top_centre_arcsec == pytest.approx(round(top_centre_arcsec))
        dem = np.array([v[0] for v in src.sample(zip(lon.ravel(), lat.ravel()))]).reshape(lon.shape)
    assert np.abs(dem - truth["elevation"].values).mean() < 2.0
    with rasterio.open(wc_item["assets"]["map"]["href"]) as src:
        assert src.crs.to_epsg() == 4326 and src.dtypes[0] == "uint8" and src.res[0] == pytest.approx(1 / 12000)
        wc = np.array([v[0] for v in src.sample(zip(lon.ravel(), lat.ravel()))]).reshape(lon.shape)
    assert set(np.unique(wc)) <= set(CLASSES)
    assert (wc == truth["landcover"].values).mean() > 0.9


def test_met_netcdf_is_era5_land_shaped(region):
    xr = pytest.importorskip("xarray")
    with xr.open_dataset(region.met_path) as met:
        assert {v: met[v].attrs["units"] for v in ("t2m", "d2m", "ssrd", "tp")} == {
            "t2m": "K", "d2m": "K", "ssrd": "J m-2", "tp": "m"}
        assert met["t2m"].dims == ("time", "latitude", "longitude")
        assert met.sizes["time"] == len(region.spec.days)
        assert met["time"].values[0] == np.datetime64("2023-06-01")
        west, south, east, north = region.grid.bounds_latlon
        lat, lon = met["latitude"].values, met["longitude"].values
        assert lat[0] > lat[-1] and lat.max() >= north and lat.min() <= south
        assert lon.min() <= west and lon.max() >= east
        np.testing.assert_allclose(np.diff(lon), 0.1)
        t2m, d2m, ssrd, tp = (met[v].values for v in ("t2m", "d2m", "ssrd", "tp"))
    assert 270 < t2m.min() and t2m.max() < 310 and np.all(d2m < t2m)
    assert 2e6 < ssrd.min() and ssrd.max() < 3.6e7  # June at 51 N, J m-2 per day
    assert np.all(tp >= 0) and tp.max() < 0.2 and np.all(np.isfinite(t2m))


def test_the_loader_reads_the_synthetic_items_back_to_the_truth(region, truth):
    pytest.importorskip("stackstac")
    import unique_xr

    items = unique_xr.search("landsat-c2-l2", bbox=region.grid.bounds_latlon, datetime="2023-06-01/2023-06-20",
                             provider=region.item_collection_paths["landsat-c2-l2"])
    assert [i.id for i in items] == [i["id"] for i in region.items["landsat-c2-l2"]]
    landsat = unique_xr.load(items, grid=region.grid, collection="landsat-c2-l2", assets=["red", "qa_pixel"]).compute()
    qa = landsat["qa_pixel"].values
    clean = ((qa & 0b11111) == 0) & ((qa >> 6) & 1 == 1) & ((qa >> 8) & 3 == 1)
    np.testing.assert_allclose(landsat["red"].values[clean], truth["red"].values[clean], atol=2e-5)
    modis = unique_xr.load(region.items["modis-43A4-061"], grid=region.grid, collection="mcd43a4",
                           assets=["red", "qa_red"]).compute()
    assert modis.sizes["time"] == len(region.spec.modis_dates)
    good = modis["qa_red"].values == 0
    modis_truth = region.truth(times=region.modis_times)["red"].values
    assert good.mean() > 0.3 and abs(np.mean(modis["red"].values[good] - modis_truth[good])) < 0.005


# ---------------------------------------------------------------------------------- sizes
@pytest.mark.parametrize("shape", [(32, 32), (17, 45)])
def test_any_size_works(tmp_path, shape):
    spec = SyntheticRegionSpec.around(lonlat=(-60.2, -3.1), shape=shape, seed=1, start="2023-01-01",
                                      end="2023-01-03", modis_every_days=2, met=False, worldcover=False)
    region = make_region(tmp_path, spec)
    assert region.met_path is None and "esa-worldcover" not in region.items
    assert region.grid.crs == "EPSG:32720"
    (item,) = region.items["landsat-c2-l2"]
    for asset in item["assets"].values():
        assert read(asset["href"])[0].shape == shape
    assert region.truth()["ndvi"].shape == (1, *shape)
    assert region.modis_grid_500m is not None and len(region.items["modis-43A4-061"]) >= 2


def test_make_region_docstring_example_runs():
    result = doctest.testmod(synthetic, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0
