"""Tests of unique_xr.load.stack.load: grid, values, laziness, signing, errors, both engines.

Items are the real recorded Planetary Computer MCD43A4 and Landsat C2 L2 items (see conftest.py),
re-pointed at small COGs with known pixel values written in ``tmp_path``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

from unique_xr.errors import AllFillError, AssetReadError, CRSError, SpecError, UnknownAssetError
from unique_xr.grid import GridSpec
from unique_xr.load.stack import DEFAULT_CHUNKS, load, to_physical
from unique_xr.schema import cf_attrs
from unique_xr.testing import raise_if_dask_computes

ENGINES = ["stackstac", "odc"]
NBAR_RED = "Nadir_Reflectance_Band1"
QA_RED = "BRDF_Albedo_Band_Mandatory_Quality_Band1"

# A 500 m UTM 60S grid on Vanua Levu (Fiji), inside MODIS tile h35v10 of the recorded item.
MODIS_GRID = GridSpec.from_bbox((179.2, -16.7, 179.4, -16.5), crs="EPSG:32760", resolution=500)


# ---------------------------------------------------------------------------------- MODIS fixture
def _sinusoidal_position(grid: GridSpec, wkt: str, transform: Affine):
    """(row, col) as floats, in the crop's pixel space, of every target pixel centre (by hand, pyproj)."""
    gx, gy = np.meshgrid(grid.x, grid.y)
    sx, sy = Transformer.from_crs(grid.crs, wkt, always_xy=True).transform(gx, gy)
    cols, rows = ~transform @ (sx, sy)
    return rows, cols


@pytest.fixture
def modis_case(modis_item):
    """An MCD43A4 crop with value 100 + 200*row + col at (row, col), plus a fill and an invalid pixel."""
    wkt, tile_transform = modis_item.wkt, modis_item.tile_transform
    rows, cols = _sinusoidal_position(MODIS_GRID, wkt, tile_transform)
    row_off, col_off = int(rows.min()) - 4, int(cols.min()) - 4
    height, width = int(rows.max()) - row_off + 5, int(cols.max()) - col_off + 5
    r, c = np.mgrid[0:height, 0:width]
    red = (100 + 200 * r + c).astype("int16")
    qa = ((r + c) % 2).astype("uint8")
    transform = tile_transform @ Affine.translation(col_off, row_off)
    rows, cols = _sinusoidal_position(MODIS_GRID, wkt, transform)
    src_r, src_c = np.floor(rows).astype(int), np.floor(cols).astype(int)
    # the source pixels under target pixels (5, 5) and (20, 30): fill, and a value below valid_range
    red[src_r[5, 5], src_c[5, 5]] = 32767
    qa[src_r[5, 5], src_c[5, 5]] = 255
    red[src_r[20, 30], src_c[20, 30]] = -5
    item = modis_item({NBAR_RED: red, QA_RED: qa}, row_off=row_off, col_off=col_off)
    # distance of each target centre from the nearest source pixel edge, in source pixels
    margin = np.minimum.reduce([rows % 1, 1 - rows % 1, cols % 1, 1 - cols % 1])
    return {"item": item, "red": red, "qa": qa, "src_rc": (src_r, src_c), "margin": margin,
            "offsets": {"row_off": row_off, "col_off": col_off}, "transform": transform}


# ------------------------------------------------------------------------------------------- MODIS
@pytest.mark.parametrize("engine", ENGINES)
def test_modis_sinusoidal_item_loads_onto_utm_grid_with_hand_computed_values(modis_case, engine):
    item = modis_case["item"]
    assert item["properties"]["proj:epsg"] is None  # real-shaped: only the sinusoidal WKT says the CRS
    with raise_if_dask_computes():
        ds = load([item], grid=MODIS_GRID, collection="modis-43A4-061", assets=["red", "qa_red"], engine=engine)

    assert ds.red.dims == ("time", "y", "x")
    np.testing.assert_array_equal(ds.x.values, MODIS_GRID.x)
    np.testing.assert_array_equal(ds.y.values, MODIS_GRID.y)
    assert ds.red.dtype == np.float32 and ds.qa_red.dtype == np.uint8
    assert ds.time.values.tolist() == [np.datetime64("2025-03-02T00:00:00", "ns").astype(int)]  # start_datetime

    red, qa = ds.red.values[0], ds.qa_red.values[0]
    src_r, src_c = modis_case["src_rc"]
    expected_raw = modis_case["red"][src_r, src_c].astype(np.float64)
    expected = np.where((expected_raw == 32767) | (expected_raw < 0), np.nan, expected_raw * 1e-4).astype(np.float32)
    # GDAL's warper approximates the transform to 0.125 px; away from source pixel edges it must be exact
    safe = modis_case["margin"] > 0.15
    assert safe.mean() > 0.4
    np.testing.assert_array_equal(red[safe], expected[safe])
    np.testing.assert_array_equal(qa[safe], modis_case["qa"][src_r, src_c][safe])
    # a few pixels by hand, spelled out
    for j, i in [(0, 0), (10, 17), (44, 43)]:
        if safe[j, i]:
            assert red[j, i] == np.float32((100 + 200 * src_r[j, i] + src_c[j, i]) * 1e-4)
    assert np.isnan(red[5, 5]) and qa[5, 5] == 255  # file fill 32767 / 255
    assert np.isnan(red[20, 30]) and qa[20, 30] in (0, 1)  # raw -5 is below valid_range


def test_modis_engines_give_identical_cubes(modis_case):
    kwargs = dict(grid=MODIS_GRID, collection="mcd43a4", assets=["red", "qa_red"])
    a = load([modis_case["item"]], engine="stackstac", **kwargs).compute()
    b = load([modis_case["item"]], engine="odc", **kwargs).compute()
    for name in ("red", "qa_red"):
        assert a[name].dtype == b[name].dtype
        np.testing.assert_array_equal(a[name].values, b[name].values)
    for coord in ("time", "y", "x"):
        np.testing.assert_array_equal(a[coord].values, b[coord].values)
    assert a.spatial_ref.attrs == b.spatial_ref.attrs
    assert (a.attrs["engine"], b.attrs["engine"]) == ("stackstac", "odc")


def test_attrs_record_scale_offset_source_and_cf(modis_case):
    ds = load([modis_case["item"]], grid=MODIS_GRID, collection="mcd43a4", assets=["red", "qa_red"])
    red = ds.red.attrs
    assert red["source_asset"] == NBAR_RED
    assert red["scale_factor_applied"] == 1e-4 and red["add_offset_applied"] == 0.0
    assert red["units"] == "1" and red["grid_mapping"] == "spatial_ref"
    assert red["long_name"] == cf_attrs("red")["long_name"]
    qa = ds.qa_red.attrs
    assert qa["nodata"] == 255 and qa["source_asset"] == QA_RED and qa["qa_layout"] == "mcd43a4_mandatory"
    assert ds.attrs["collection"] == "mcd43a4" and ds.attrs["engine"] == "stackstac"
    assert ds.attrs["item_ids"] == [modis_case["item"]["id"]]
    assert GridSpec.from_dict(ds.attrs["grid"]) == MODIS_GRID
    assert GridSpec.from_xarray(ds) == MODIS_GRID


# ----------------------------------------------------------------------------------------- Landsat
def _landsat_grid(landsat_item, *, row_off: int, col_off: int, shape: tuple[int, int]) -> GridSpec:
    t = landsat_item.scene_transform @ Affine.translation(col_off, row_off)
    left, top = t.c, t.f
    return GridSpec(crs="EPSG:32655", resolution=30,
                    bounds=(left, top - 30 * shape[0], left + 30 * shape[1], top))


@pytest.mark.parametrize("engine", ENGINES)
def test_landsat_on_its_own_grid_gives_dn_times_scale_plus_offset_exactly(landsat_item, rng, engine):
    dn = rng.integers(5000, 46000, size=(40, 48)).astype("uint16")
    dn[:3, :] = 0  # nodata
    qa = rng.integers(0, 2**16, size=dn.shape).astype("uint16")
    qa[:3, :] = 1
    item = landsat_item({"red": dn, "qa_pixel": qa}, row_off=3000, col_off=4000)
    grid = _landsat_grid(landsat_item, row_off=3000, col_off=4000, shape=dn.shape)

    ds = load([item], grid=grid, collection="landsat-c2-l2", assets=["red", "qa_pixel"], engine=engine).compute()

    valid = (dn >= 7273) & (dn <= 43636)
    expected = np.where(valid, dn.astype(np.float64) * 2.75e-5 - 0.2, np.nan).astype(np.float32)
    np.testing.assert_array_equal(ds.red.values[0], expected)
    assert np.isnan(ds.red.values[0, :3]).all() and (~valid[3:]).any()  # nodata and out-of-range both NaN
    assert ds.qa_pixel.dtype == np.uint16
    np.testing.assert_array_equal(ds.qa_pixel.values[0], qa)
    assert ds.time.values[0] == np.datetime64("2025-03-10T23:53:08.935246", "ns")


@pytest.fixture
def landsat_day(landsat_item, rng):
    """Three items: two overlapping scenes of one overpass (same solar day) and one 16 days later."""
    shape = (32, 32)
    first = rng.integers(8000, 40000, size=shape).astype("uint16")
    first[:, :10] = 0  # the first scene has no data on its west side
    second = rng.integers(8000, 40000, size=shape).astype("uint16")
    later = rng.integers(8000, 40000, size=shape).astype("uint16")
    qa1, qa2, qa3 = (rng.integers(2, 2**15, size=shape).astype("uint16") for _ in range(3))
    qa1[:, :10] = 1
    items = [
        landsat_item({"red": later, "qa_pixel": qa3}, row_off=500, col_off=500, item_id="LC09_later",
                     datetime="2025-03-26T23:53:10Z"),
        landsat_item({"red": second, "qa_pixel": qa2}, row_off=500, col_off=500, item_id="LC09_row92",
                     datetime="2025-03-10T23:53:32Z"),
        landsat_item({"red": first, "qa_pixel": qa1}, row_off=500, col_off=500, item_id="LC09_row91",
                     datetime="2025-03-10T23:53:08Z"),
    ]
    grid = _landsat_grid(landsat_item, row_off=500, col_off=500, shape=shape)
    return {"items": items, "grid": grid, "red": (first, second, later), "qa": (qa1, qa2, qa3)}


@pytest.mark.parametrize("engine", ENGINES)
def test_same_day_items_are_mosaicked_first_valid_wins(landsat_day, engine):
    ds = load(landsat_day["items"], grid=landsat_day["grid"], collection="landsat-c2-l2",
              assets=["red", "qa_pixel"], engine=engine)
    assert ds.time.values.tolist() == [np.datetime64("2025-03-10T23:53:08", "ns").astype(int),
                                       np.datetime64("2025-03-26T23:53:10", "ns").astype(int)]
    assert ds.attrs["item_ids"] == ["LC09_row91", "LC09_row92", "LC09_later"]
    first, second, later = (v.astype(np.float64) * 2.75e-5 - 0.2 for v in landsat_day["red"])
    expected_day1 = np.where(landsat_day["red"][0] == 0, second, first).astype(np.float32)
    red = ds.red.values
    np.testing.assert_array_equal(red[0], expected_day1)
    np.testing.assert_array_equal(red[1], later.astype(np.float32))
    qa1, qa2, qa3 = landsat_day["qa"]
    np.testing.assert_array_equal(ds.qa_pixel.values[0], np.where(qa1 == 1, qa2, qa1))
    np.testing.assert_array_equal(ds.qa_pixel.values[1], qa3)


@pytest.mark.parametrize("resolution", [30, 120])
def test_engines_agree_with_hand_nearest_on_a_shifted_and_a_coarser_grid(landsat_item, rng, resolution):
    # Landsat pixel edges sit at 15 m (mod 30); a grid snapped to multiples of 30 m puts every 30 m pixel
    # centre exactly on a source edge (a nearest-neighbour tie), and the 120 m grid needs overviews or
    # full-resolution warping. Both engines must pick the source pixel containing each target centre
    # (edges belong to the pixel right/below), from full resolution.
    dn = rng.integers(8000, 40000, size=(1024, 1024)).astype("uint16")
    item = landsat_item({"red": dn}, row_off=2000, col_off=2000)
    t = landsat_item.scene_transform @ Affine.translation(2000, 2000)
    assert t.c % 30 == 15
    grid = GridSpec.from_bounds((t.c + 100, t.f - 15000, t.c + 15000, t.f - 100), crs="EPSG:32655",
                                resolution=resolution)
    a = load([item], grid=grid, collection="landsat-c2-l2", assets=["red"], engine="stackstac").red.values[0]
    b = load([item], grid=grid, collection="landsat-c2-l2", assets=["red"], engine="odc").red.values[0]
    gx, gy = np.meshgrid(grid.x, grid.y)
    cols, rows = ~t @ (gx, gy)
    expected = (dn[np.floor(rows).astype(int), np.floor(cols).astype(int)] * 2.75e-5 - 0.2).astype(np.float32)
    np.testing.assert_array_equal(a, expected)
    np.testing.assert_array_equal(b, expected)


def test_groupby_none_keeps_one_step_per_item_and_engines_agree(landsat_day):
    kwargs = dict(grid=landsat_day["grid"], collection="landsat-c2-l2", assets=["red"], groupby=None)
    a = load(landsat_day["items"], engine="stackstac", **kwargs).compute()
    b = load(landsat_day["items"], engine="odc", **kwargs).compute()
    assert a.sizes["time"] == 3 and bool((np.diff(a.time.values) > np.timedelta64(0)).all())
    assert np.isnan(a.red.values[0, :, :10]).all()  # the first scene's own nodata, not mosaicked
    np.testing.assert_array_equal(a.red.values, b.red.values)


def test_accepts_pystac_item_collection(landsat_day):
    import pystac

    collection = pystac.ItemCollection([pystac.Item.from_dict(copy.deepcopy(d)) for d in landsat_day["items"]])
    from_pystac = load(collection, grid=landsat_day["grid"], collection="landsat-c2-l2", assets=["red"])
    from_dicts = load(landsat_day["items"], grid=landsat_day["grid"], collection="landsat-c2-l2", assets=["red"])
    np.testing.assert_array_equal(from_pystac.red.values, from_dicts.red.values)


# --------------------------------------------------------------------------------- laziness, chunks
@pytest.mark.parametrize("engine", ENGINES)
def test_load_is_lazy_and_chunked(landsat_day, engine):
    with raise_if_dask_computes():
        ds = load(landsat_day["items"], grid=landsat_day["grid"], collection="landsat-c2-l2",
                  assets=["red", "qa_pixel"], engine=engine, chunks={"y": 16, "x": 8})
        _ = ds.red.mean()  # still lazy
    assert ds.red.chunks == ((1, 1), (16, 16), (8, 8, 8, 8))
    default = load(landsat_day["items"], grid=landsat_day["grid"], collection="landsat-c2-l2", assets=["red"],
                   engine=engine)
    assert default.red.chunks == ((1, 1), (32,), (32,))  # the default 1024 is capped to the 32x32 grid
    assert DEFAULT_CHUNKS == {"time": 1, "y": 1024, "x": 1024}


@pytest.mark.parametrize("engine", ENGINES)
def test_task_count_is_linear_in_chunks(landsat_day, engine):
    def n_tasks(chunk: int) -> int:
        ds = load(landsat_day["items"], grid=landsat_day["grid"], collection="landsat-c2-l2", assets=["red"],
                  engine=engine, chunks={"y": chunk, "x": chunk})
        return len(ds.red.data.__dask_graph__())

    t1, t4, t16 = n_tasks(32), n_tasks(16), n_tasks(8)  # 1, 4 and 16 spatial chunks
    assert t16 - t4 == 4 * (t4 - t1)


# ------------------------------------------------------------------------------------------- signing
@pytest.mark.parametrize("engine", ENGINES)
def test_sign_is_called_at_read_time_only_inside_a_retrying_gdal_env(landsat_item, rng, engine):
    dn = rng.integers(8000, 40000, size=(16, 16)).astype("uint16")
    item = landsat_item({"red": dn}, row_off=10, col_off=10)
    local = item["assets"]["red"]["href"]
    item["assets"]["red"]["href"] = "https://landsateuwest.blob.core.windows.net/landsat-c2/red.TIF"
    calls, envs = [], []

    def sign(href: str) -> str:
        calls.append(href)
        envs.append(rasterio.env.getenv() if rasterio.env.hasenv() else {})
        return local  # a "signed" URL that, unlike the unsigned one, can be read

    grid = _landsat_grid(landsat_item, row_off=10, col_off=10, shape=dn.shape)
    with raise_if_dask_computes():
        ds = load([item], grid=grid, collection="landsat-c2-l2", assets=["red"], engine=engine, sign=sign)
    assert calls == []  # building the graph signs nothing
    values = ds.red.values
    assert calls and set(calls) == {"https://landsateuwest.blob.core.windows.net/landsat-c2/red.TIF"}
    np.testing.assert_array_equal(values[0], (dn * 2.75e-5 - 0.2).astype(np.float32))
    assert all(env.get("GDAL_HTTP_MAX_RETRY") == "5" and env.get("GDAL_HTTP_RETRY_DELAY") == "1" for env in envs)


# -------------------------------------------------------------------------------------- read errors
@pytest.mark.parametrize("engine", ENGINES)
def test_corrupt_file_raises_asset_read_error_on_compute(landsat_item, rng, engine):
    dn = rng.integers(8000, 40000, size=(16, 16)).astype("uint16")
    item = landsat_item({"red": dn}, row_off=10, col_off=10)
    path = Path(item["assets"]["red"]["href"])
    path.write_bytes(b"II*\x00 this is not a GeoTIFF " * 40)
    grid = _landsat_grid(landsat_item, row_off=10, col_off=10, shape=dn.shape)
    ds = load([item], grid=grid, collection="landsat-c2-l2", assets=["red"], engine=engine)  # lazy: no error yet
    with pytest.raises(AssetReadError) as info:
        ds.compute()
    message = str(info.value)
    assert str(path) in message and "'red'" in message and "leave this item out" in message


@pytest.mark.parametrize("engine", ENGINES)
def test_truncated_cog_raises_asset_read_error(landsat_item, rng, engine):
    dn = rng.integers(8000, 40000, size=(600, 600)).astype("uint16")  # big enough for several tiles
    item = landsat_item({"red": dn}, row_off=10, col_off=10)
    path = Path(item["assets"]["red"]["href"])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    grid = _landsat_grid(landsat_item, row_off=10, col_off=10, shape=dn.shape)
    ds = load([item], grid=grid, collection="landsat-c2-l2", assets=["red"], engine=engine)
    with pytest.raises(AssetReadError, match="red"):
        ds.compute()


@pytest.mark.parametrize("engine", ENGINES)
def test_all_fill_asset_raises_all_fill_error_naming_item_and_asset(modis_case, modis_item, engine):
    red = np.full(modis_case["red"].shape, 32767, dtype="int16")
    item = modis_item({NBAR_RED: red}, **modis_case["offsets"], item_id="MCD43A4.empty")
    ds = load([item], grid=MODIS_GRID, collection="mcd43a4", assets=["red"], engine=engine)
    with pytest.raises(AllFillError) as info:
        ds.compute()
    assert NBAR_RED in str(info.value) and "MCD43A4.empty" in str(info.value)
    accepted = load([item], grid=MODIS_GRID, collection="mcd43a4", assets=["red"], engine=engine,
                    on_all_fill="nan").red.values
    assert np.isnan(accepted).all()


def test_all_fill_check_sees_registry_nodata_the_file_does_not_record(modis_item, modis_case):
    red = np.full(modis_case["red"].shape, 32767, dtype="int16")
    item = modis_item({NBAR_RED: red}, **modis_case["offsets"], file_nodata=False)
    with rasterio.open(item["assets"][NBAR_RED]["href"]) as src:
        assert src.nodata is None
    with pytest.raises(AllFillError):
        load([item], grid=MODIS_GRID, collection="mcd43a4", assets=["red"]).compute()


# ---------------------------------------------------------------------------- errors before compute
def test_asset_missing_from_items_is_unknown_asset_error(landsat_day):
    items = copy.deepcopy(landsat_day["items"])
    del items[1]["assets"]["qa_pixel"]
    with pytest.raises(UnknownAssetError) as info:
        load(items, grid=landsat_day["grid"], collection="landsat-c2-l2", assets=["red", "qa_pixel"])
    message = str(info.value)
    assert "'qa_pixel'" in message and "LC09_row92" in message and "'red'" in message
    with pytest.raises(UnknownAssetError, match="no asset or role 'nir9'"):
        load(items, grid=landsat_day["grid"], collection="landsat-c2-l2", assets=["nir9"])


def test_item_without_a_crs_is_crs_error(modis_case):
    item = copy.deepcopy(modis_case["item"])
    del item["properties"]["proj:wkt2"]  # proj:epsg stays null: nothing says what the transform means
    with pytest.raises(CRSError, match="Cannot determine the CRS of item"):
        load([item], grid=MODIS_GRID, collection="mcd43a4", assets=["red"])


@pytest.mark.parametrize("engine", ENGINES)
def test_grid_outside_every_item_is_crs_error(modis_case, engine):
    elsewhere = GridSpec.from_bbox((11.0, 46.0, 11.1, 46.1), resolution=500)  # the Alps, not Fiji
    with raise_if_dask_computes(), pytest.raises(CRSError, match="does not overlap any of the 1 items"):
        load([modis_case["item"]], grid=elsewhere, collection="mcd43a4", assets=["red"], engine=engine)


def test_stackstac_needs_an_epsg_grid_and_odc_does_not(modis_case, modis_item):
    t = modis_case["transform"] @ Affine.translation(2, 2)  # the MODIS pixel grid itself, 20 x 30 pixels
    res = t.a
    sinusoidal = GridSpec(crs=modis_item.wkt, resolution=res, bounds=(t.c, t.f - 20 * res, t.c + 30 * res, t.f))
    assert sinusoidal.epsg is None
    with pytest.raises(CRSError, match="engine='odc'"):
        load([modis_case["item"]], grid=sinusoidal, collection="mcd43a4", assets=["red"])
    ds = load([modis_case["item"]], grid=sinusoidal, collection="mcd43a4", assets=["red"], engine="odc")
    raw = modis_case["red"][2:22, 2:32].astype(np.float64)
    expected = np.where((raw == 32767) | (raw < 0), np.nan, raw * 1e-4).astype(np.float32)
    np.testing.assert_array_equal(ds.red.values[0], expected)


def test_bad_arguments_are_spec_errors(landsat_day):
    kwargs = dict(grid=landsat_day["grid"], collection="landsat-c2-l2", assets=["red"])
    with pytest.raises(SpecError, match="engine"):
        load(landsat_day["items"], engine="gdal", **kwargs)
    with pytest.raises(SpecError, match="resampling"):
        load(landsat_day["items"], resampling="nearst", **kwargs)
    with pytest.raises(SpecError, match="chunks"):
        load(landsat_day["items"], chunks={"band": 1}, **kwargs)
    with pytest.raises(SpecError, match="GridSpec"):
        load(landsat_day["items"], grid=(0, 0, 1, 1), collection="landsat-c2-l2")
    with pytest.raises(SpecError, match="modis-43A4-061"):
        load(landsat_day["items"], grid=landsat_day["grid"], collection="mcd43a4", assets=["red"])


def test_to_physical_kernel():
    raw = np.array([[0, 7272, 7273, 43636, 43637, np.nan]])
    out = to_physical(raw, nodata=0, valid_range=(7273, 43636), scale=2.75e-5, offset=-0.2)
    assert out.dtype == np.float32
    expected = np.array([[np.nan, np.nan, 7273 * 2.75e-5 - 0.2, 43636 * 2.75e-5 - 0.2, np.nan, np.nan]], np.float32)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("engine", ENGINES)
def test_real_recorded_items_build_a_lazy_graph_from_metadata_alone(modis_template, landsat_template, engine):
    # the unmodified Planetary Computer items: hrefs on Azure blob storage, never opened here
    landsat_grid = GridSpec.from_bbox((146.5, -44.8, 146.7, -44.6), resolution=30)  # EPSG:32755; item in 32655
    with raise_if_dask_computes():
        modis = load([modis_template], grid=MODIS_GRID, collection="modis-43A4-061", engine=engine)
        landsat = load([landsat_template], grid=landsat_grid, collection="landsat-c2-l2", engine=engine)
        again = load([landsat_template], grid=landsat_grid, collection="landsat-c2-l2", engine=engine)
    assert list(modis.data_vars) == ["red", "nir", "blue", "swir1", "qa_red", "qa_nir"]
    assert list(landsat.data_vars) == ["blue", "green", "red", "nir", "swir1", "swir2", "qa_pixel"]
    assert modis.time.values[0] == np.datetime64("2025-03-02T00:00:00", "ns")
    assert landsat.red.shape == (1, *landsat_grid.shape) and landsat.qa_pixel.dtype == np.uint16
    assert landsat.red.data.name == again.red.data.name  # deterministic task names


def test_readers_survive_pickling_to_dask_workers():
    import pickle

    from rasterio.enums import Resampling
    from stackstac.raster_spec import RasterSpec

    from unique_xr.load.readers import AssetHref, CheckedOdcDriver, CheckedRioReader

    href = pickle.loads(pickle.dumps(AssetHref("https://x/y.tif", item_id="LC09_a", asset_key="red")))
    assert href == "https://x/y.tif" and (href.item_id, href.asset_key) == ("LC09_a", "red")
    assert "LC09_a" in href.describe()
    driver = pickle.loads(pickle.dumps(CheckedOdcDriver(asset_key="red", nodata=0, sign=str.upper)))
    assert (driver.asset_key, driver.nodata, driver.sign("a")) == ("red", 0, "A")
    reader = CheckedRioReader(
        asset_key="red", nodata=0, sign=str.upper, check_all_fill=False, url=href,
        spec=RasterSpec(epsg=32655, bounds=(0, 0, 60, 60), resolutions_xy=(30, 30)), resampling=Resampling.nearest,
        dtype=np.dtype("float64"), fill_value=np.nan, scale_offset=(1, 0),
    )
    copy_ = pickle.loads(pickle.dumps(reader))
    assert (copy_.sign, copy_.check_all_fill, copy_.nodata, copy_.url.item_id) == (str.upper, False, 0, "LC09_a")
    assert copy_.errors_as_nodata == ()  # read errors are never turned into fill


def test_item_whose_footprint_misses_the_grid_is_left_out(tmp_path):
    """Raster rectangles overlap the grid, but one item's valid-data geometry does not: no NaN time step."""
    import copy

    from unique_xr.testing.synthetic import SyntheticRegionSpec, make_region

    spec = SyntheticRegionSpec.square(size_px=64, seed=2, start="2023-06-01", end="2023-06-17", modis=False,
                                      dem=False, worldcover=False, met=False, cloud_fraction=0.0,
                                      scene_edge_probability=0.0)
    region = make_region(tmp_path, spec)
    first, second = (copy.deepcopy(it) for it in region.items["landsat-c2-l2"])
    # the second scene's valid data only covers a sliver in the north-east corner of the region
    w, s, e, n = region.grid.bounds_latlon
    corner = [[e - 0.001, n - 0.001], [e + 0.01, n - 0.001], [e + 0.01, n + 0.01], [e - 0.001, n - 0.001]]
    second["geometry"] = {"type": "Polygon", "coordinates": [corner]}
    sw = GridSpec(crs=region.grid.crs, resolution=30.0,
                  bounds=(region.grid.bounds[0], region.grid.bounds[1],
                          region.grid.bounds[0] + 900.0, region.grid.bounds[1] + 900.0))
    ds = load([first, second], grid=sw, collection="landsat-c2-l2", assets=["red"])
    assert ds.sizes["time"] == 1 and ds.attrs["item_ids"] == [first["id"]]
    assert np.isfinite(ds.red.values).all()
    # the whole region still overlaps both footprints' rectangles and the first geometry: both kept
    assert load([first, second], grid=region.grid, collection="landsat-c2-l2", assets=["red"]).sizes["time"] == 2
