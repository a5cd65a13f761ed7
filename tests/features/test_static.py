"""Static layers: Horn slope, land-cover fractions (nested and reprojected), combined layers.

Real data (read from ``../shared/data``, see each folder's SOURCE.txt):

* Mongon, Peru: ASTER GDEM 30.85 m, EPSG:32717 (spDataLarge, CC0).
* Zion, Utah: NLCD 2011 ~31.5 m, NAD83 / UTM 12N (spDataLarge, CC0; NLCD is public domain).
* Slovenia: eo-learn TestEOPatch LULC ~10 m, EPSG:32633 (eo-learn, MIT).

The Zion and Slovenia rasters have slightly non-square pixels (31.530 x 31.525 m and 9.995 x 9.997 m),
so no square target grid nests in them exactly. The nested tests therefore put the *real class
values* of a crop on their nominal square grid (pixel = the file's x pixel size for Zion, 10 m for
Slovenia; top-left corner kept); the reprojection test uses the files' true georeferencing.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from unique_xr.errors import CRSError, GridError, SpecError
from unique_xr.features.static import landcover_fractions, slope_degrees, static_layers, terrain
from unique_xr.grid import GridSpec
from unique_xr.testing import raise_if_dask_computes

pytestmark = pytest.mark.filterwarnings(
    # raised inside odc-geo's chunked reprojection (an in-memory GDAL dataset), harmless
    "ignore::rasterio.errors.NotGeoreferencedWarning",
    "ignore::PendingDeprecationWarning",
    "ignore::DeprecationWarning",
)

MONGON_DEM = "scenes/zion_nlcd_srtm_and_mongon_dem_ndvi/mongon_peru/dem.tif"
ZION_NLCD = "scenes/zion_nlcd_srtm_and_mongon_dem_ndvi/zion_utah/nlcd2011.tif"
SLOVENIA_LULC = "scenes/slovenia_s2_ndvi_dem_landcover/lulc_class.tif"

NLCD = {
    11: "open_water", 21: "developed_open", 22: "developed_low", 23: "developed_medium", 31: "barren",
    41: "deciduous_forest", 42: "evergreen_forest", 43: "mixed_forest", 52: "shrub", 71: "grassland",
    81: "pasture", 82: "crops", 90: "woody_wetlands", 95: "herbaceous_wetlands",
}
EOLEARN = {1: "cultivated", 2: "forest", 3: "grassland", 4: "shrubland", 8: "artificial"}


def _read(path):
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1), src.transform, src.crs


def _on_square_grid(values: np.ndarray, *, crs: str, left: float, top: float, res: float, chunks=None) -> xr.DataArray:
    ny, nx = values.shape
    fine = GridSpec(crs=crs, resolution=res, bounds=(left, top - ny * res, left + nx * res, top))
    da = fine.attach(xr.DataArray(values, dims=("y", "x")))
    return da.chunk(chunks) if chunks else da


def _fractions_by_hand(block: np.ndarray, classes: dict[int, str], nodata: int = 0) -> dict[str, float]:
    valid = block != nodata
    return {name: np.count_nonzero(block == code) / np.count_nonzero(valid) for code, name in classes.items()}


# ----------------------------------------------------------------------------- slope kernel
def test_slope_of_planes_is_exact_everywhere_including_edges():
    res = 30.0
    yy, xx = np.mgrid[0:6, 0:7] * res
    # z rises 1 m per metre eastward (45 deg) and falls 0.5 m per metre southward
    plane = 1.0 * xx - 0.5 * yy + 100.0
    expected = math.degrees(math.atan(math.hypot(1.0, 0.5)))
    np.testing.assert_allclose(slope_degrees(plane, res), expected, rtol=1e-6)
    np.testing.assert_array_equal(slope_degrees(np.full((4, 4), 7.0), res), 0.0)
    assert slope_degrees(plane, res).dtype == np.float32


def test_slope_uses_dx_and_dy_separately():
    yy, xx = np.mgrid[0:5, 0:5].astype(float)
    z = 10.0 * xx + 0.0 * yy  # 10 m per column
    # dx = 20 m: gradient 0.5 -> atan(0.5)
    np.testing.assert_allclose(slope_degrees(z, (20.0, 5.0)), math.degrees(math.atan(0.5)), rtol=1e-6)


def test_slope_is_nan_at_nan_and_its_neighbours_only():
    z = np.arange(36, dtype=float).reshape(6, 6) * 3.0
    z[2, 3] = np.nan
    s = slope_degrees(z, 30.0)
    nan = np.isnan(s)
    expected = np.zeros_like(nan)
    expected[1:4, 2:5] = True
    np.testing.assert_array_equal(nan, expected)


def test_slope_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        slope_degrees(np.zeros(5), 30.0)
    with pytest.raises(SpecError, match="positive"):
        slope_degrees(np.zeros((3, 3)), -30.0)


def test_slope_mongon_aster_dem_against_hand_computation(shared_data):
    """Horn slope at real pixels, with the 3x3 windows written out and worked by hand."""
    z, transform, _ = _read(shared_data / MONGON_DEM)
    res = transform.a
    assert res == pytest.approx(30.85) and -transform.e == pytest.approx(30.85)
    s = slope_degrees(z, res)

    def horn(a, b, c, d, f, g, h, i):
        dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8 * 30.85)
        dzdy = ((g + 2 * h + i) - (a + 2 * b + c)) / (8 * 30.85)
        return math.degrees(math.atan(math.sqrt(dzdx**2 + dzdy**2)))

    # interior pixel (row 40, col 60)
    assert z[39:42, 59:62].tolist() == [[693, 694, 703], [677, 677, 684], [661, 661, 667]]
    # dz/dx = (2738 - 2708) / 246.8 = 0.12156; dz/dy = (2650 - 2784) / 246.8 = -0.54295 -> 29.09 deg
    expected = horn(693, 694, 703, 677, 684, 661, 661, 667)
    assert expected == pytest.approx(29.09, abs=0.01)
    assert s[40, 60] == pytest.approx(expected, abs=1e-4)
    # interior pixel (row 80, col 30), a steady slope to the east
    assert z[79:82, 29:32].tolist() == [[404, 415, 424], [399, 410, 420], [394, 405, 416]]
    assert s[80, 30] == pytest.approx(horn(404, 415, 424, 399, 420, 394, 405, 416), abs=1e-4)
    # top edge pixel (row 0, col 50): the missing row above is the odd reflection 2*row0 - row1
    assert z[0:2, 49:52].tolist() == [[769, 771, 770], [781, 784, 783]]
    above = [2 * 769 - 781, 2 * 771 - 784, 2 * 770 - 783]  # 757, 758, 757
    assert s[0, 50] == pytest.approx(horn(*above, 769, 770, 781, 784, 783), abs=1e-4)


# ----------------------------------------------------------------------------- terrain (xarray)
def test_terrain_dask_equals_numpy_across_chunk_borders(shared_data):
    rioxarray = pytest.importorskip("rioxarray")
    eager = terrain(rioxarray.open_rasterio(shared_data / MONGON_DEM))
    lazy_in = rioxarray.open_rasterio(shared_data / MONGON_DEM, chunks={"y": 17, "x": 40})
    with raise_if_dask_computes():
        lazy = terrain(lazy_in)
    assert lazy["slope"].chunks == ((17,) * 6 + (15,), (40, 40, 37))
    np.testing.assert_array_equal(lazy["slope"].values, eager["slope"].values)
    np.testing.assert_array_equal(lazy["elevation"].values, eager["elevation"].values)
    assert eager["slope"].dtype == np.float32 and eager["elevation"].dtype == np.float32
    assert eager["slope"].attrs["units"] == "degree"
    assert eager["elevation"].attrs["standard_name"] == "surface_altitude"
    assert eager["slope"].attrs["grid_mapping"] == "spatial_ref"
    assert float(eager["elevation"].min()) == 238.0 and float(eager["elevation"].max()) == 1094.0


def test_terrain_masks_nodata_and_rejects_geographic_dem():
    grid = GridSpec(crs="EPSG:32633", resolution=30.0, bounds=(0, 0, 120, 90))
    dem = grid.attach(xr.DataArray(np.array([[5, 6, 7, 8], [5, 6, -9999, 8], [5, 6, 7, 8]], "int16"), dims=("y", "x")))
    dem.attrs["_FillValue"] = -9999
    out = terrain(dem)
    assert np.isnan(out["elevation"].values[1, 2]) and out["elevation"].values[0, 0] == 5
    assert np.isnan(out["slope"].values[0, 1]) and np.isfinite(out["slope"].values[0, 0])
    geo = dem.rio.write_crs("EPSG:4326")
    with pytest.raises(CRSError, match="geographic"):
        terrain(geo)


# ----------------------------------------------------------------------------- fractions, synthetic
def test_fractions_nested_small_example_with_nodata_padding_and_unlisted_class(backend):
    values = np.array(
        [
            [1, 1, 2, 2],
            [1, 2, 2, 9],  # 9: valid land of a class not asked for
            [0, 0, 1, 1],
            [0, 0, 1, 2],
        ],
        dtype="uint8",
    )
    lc = _on_square_grid(values, crs="EPSG:32633", left=1000, top=2000, res=10.0, chunks={"y": 2, "x": 2} if backend == "dask" else None)
    # the target is one 20 m cell wider on the right than the land cover
    grid = GridSpec(crs="EPSG:32633", resolution=20.0, bounds=(1000, 1960, 1060, 2000))
    with raise_if_dask_computes():
        out = landcover_fractions(lc, grid, {1: "forest", 2: "crop"})
    assert "nested" in out.attrs["method"]
    forest, crop = out["frac_forest"].values, out["frac_crop"].values
    np.testing.assert_allclose(forest[0, :2], [3 / 4, 0 / 4])
    np.testing.assert_allclose(crop[0, :2], [1 / 4, 3 / 4])  # top-right block: 2, 2, 2, 9
    assert np.isnan(forest[1, 0]) and np.isnan(crop[1, 0])  # only nodata
    np.testing.assert_allclose([forest[1, 1], crop[1, 1]], [3 / 4, 1 / 4])
    assert np.isnan(forest[:, 2]).all()  # outside the land cover
    assert out["frac_forest"].dtype == np.float32
    assert GridSpec.from_xarray(out) == grid


def test_fractions_treat_nan_and_the_rasters_own_nodata_as_missing():
    as_float = np.array([[1, np.nan], [2, 2]], dtype="float32")  # e.g. rioxarray.open_rasterio(masked=True)
    lc = _on_square_grid(as_float, crs="EPSG:32633", left=0, top=20, res=10.0)
    grid = GridSpec(crs="EPSG:32633", resolution=20.0, bounds=(0, 0, 20, 20))
    out = landcover_fractions(lc, grid, {1: "a", 2: "b"})
    assert float(out["frac_a"][0, 0]) == pytest.approx(1 / 3) and float(out["frac_b"][0, 0]) == pytest.approx(2 / 3)
    with_fill = _on_square_grid(np.array([[1, 255], [255, 2]], "uint8"), crs="EPSG:32633", left=0, top=20, res=10.0)
    with_fill.attrs["_FillValue"] = 255  # as rioxarray reports a GeoTIFF's nodata
    out = landcover_fractions(with_fill, grid, {1: "a", 2: "b"})
    assert float(out["frac_a"][0, 0]) == 0.5 and float(out["frac_b"][0, 0]) == 0.5


def test_fractions_are_lazy_and_dask_equals_numpy(rng):
    values = rng.integers(0, 4, size=(60, 90)).astype("uint8")
    grid = GridSpec(crs="EPSG:32633", resolution=30.0, bounds=(0, 0, 900, 600))
    eager = landcover_fractions(_on_square_grid(values, crs="EPSG:32633", left=0, top=600, res=10.0), grid, {1: "a", 2: "b", 3: "c"})
    lazy_in = _on_square_grid(values, crs="EPSG:32633", left=0, top=600, res=10.0, chunks={"y": 25, "x": 40})
    with raise_if_dask_computes():
        lazy = landcover_fractions(lazy_in, grid, {1: "a", 2: "b", 3: "c"})
    xr.testing.assert_identical(lazy.compute(), eager)
    total = sum(eager[v] for v in eager.data_vars)
    np.testing.assert_allclose(total.values, 1.0, rtol=1e-6)  # every cell has valid pixels of listed classes


def test_fractions_reprojected_path_is_lazy_and_sums_to_one(rng):
    values = rng.integers(1, 4, size=(80, 80)).astype("uint8")
    # 10 m UTM 33N raster onto a 50 m grid in UTM 32N: not nested -> reprojection path
    lc = _on_square_grid(values, crs="EPSG:32633", left=500000, top=5000800, res=10.0, chunks={"y": 32, "x": 32})
    west, south, east, north = GridSpec(crs="EPSG:32633", resolution=10.0, bounds=(500100, 5000100, 500700, 5000700)).bounds_latlon
    grid = GridSpec.from_bbox((west, south, east, north), crs="EPSG:32632", resolution=50.0)
    with raise_if_dask_computes():
        out = landcover_fractions(lc, grid, {1: "a", 2: "b", 3: "c"})
    assert "reprojected" in out.attrs["method"] and "coarsened by 5" in out.attrs["method"]
    total = sum(out[v] for v in out.data_vars).values
    covered = np.isfinite(total)
    assert covered.mean() > 0.9
    np.testing.assert_allclose(total[covered], 1.0, rtol=1e-6)


def test_fractions_offset_grid_is_not_nested():
    # 10 m land cover starting 4 m east of the 30 m target grid: class 1 for x 4..74, class 2 for x 74..124
    values = np.repeat(np.array([[1] * 7 + [2] * 5], "uint8"), 6, axis=0)
    lc = _on_square_grid(values, crs="EPSG:32633", left=4.0, top=60.0, res=10.0)
    grid = GridSpec(crs="EPSG:32633", resolution=30.0, bounds=(0, 0, 120, 60))
    out = landcover_fractions(lc, grid, {1: "west", 2: "east"})
    assert "reprojected" in out.attrs["method"] and "coarsened by 3" in out.attrs["method"]
    # each 30 m cell is sampled at 10 m sub-pixel centres (5, 15, 25 m, ...), nearest fine pixel
    np.testing.assert_allclose(out["frac_west"].values, [[1, 1, 1 / 3, 0]] * 2)  # cell x 60-90: 65 -> 1, 75, 85 -> 2
    np.testing.assert_allclose(out["frac_east"].values, [[0, 0, 2 / 3, 1]] * 2)


def test_fractions_errors():
    lc = _on_square_grid(np.ones((4, 4), "uint8"), crs="EPSG:32633", left=0, top=40, res=10.0)
    grid = GridSpec(crs="EPSG:32633", resolution=20.0, bounds=(0, 0, 40, 40))
    with pytest.raises(SpecError, match="also nodata"):
        landcover_fractions(lc, grid, {0: "water"})
    with pytest.raises(SpecError, match="identifier"):
        landcover_fractions(lc, grid, {1: "tree cover"})
    far = GridSpec(crs="EPSG:32633", resolution=20.0, bounds=(10000, 0, 10040, 40))
    with pytest.raises(GridError, match="does not overlap"):
        landcover_fractions(lc, far, {1: "forest"})
    far_utm32 = GridSpec(crs="EPSG:32632", resolution=20.0, bounds=(500000, 0, 500040, 40))
    with pytest.raises(GridError, match="does not overlap"):
        landcover_fractions(lc, far_utm32, {1: "forest"})  # reprojection path
    no_crs = xr.DataArray(np.ones((4, 4), "uint8"), dims=("y", "x"), coords={"y": [35.0, 25, 15, 5], "x": [5.0, 15, 25, 35]})
    with pytest.raises(CRSError, match="no CRS"):
        landcover_fractions(no_crs, grid, {1: "forest"})


# ----------------------------------------------------------------------------- fractions, real data
ZION_ROWS, ZION_COLS = slice(1200, 1260), slice(420, 480)  # 60 x 60 px crop with 11 NLCD classes


@pytest.fixture(scope="module")
def zion_crop(request):
    shared = request.getfixturevalue("shared_data")
    lc, transform, _ = _read(shared / ZION_NLCD)
    crop = lc[ZION_ROWS, ZION_COLS]
    res = transform.a  # 31.5303 m; the file's y pixel is 31.5247 m (0.02 % smaller)
    left = transform.c + ZION_COLS.start * transform.a
    top = transform.f + ZION_ROWS.start * transform.e
    return crop, left, top, res


@pytest.mark.parametrize("factor", [3, 10])
def test_fractions_zion_nlcd_nested_against_hand_counts(zion_crop, factor):
    crop, left, top, res = zion_crop
    lc = _on_square_grid(crop, crs="EPSG:26912", left=left, top=top, res=res, chunks={"y": 30, "x": 30})
    grid = GridSpec(crs="EPSG:26912", resolution=factor * res, bounds=(left, top - 60 * res, left + 60 * res, top))
    out = landcover_fractions(lc, grid, NLCD).compute()
    assert "exact" in out.attrs["method"]
    assert out.sizes == {"y": 60 // factor, "x": 60 // factor}
    if factor == 10:
        # cell (1, 1) = crop rows 10-19, cols 10-19, counted by hand from the printed block:
        # 39 shrub (52), 23 developed open (21), 19 woody wetlands (90), 8 barren (31),
        # 5 grassland (71), 4 pasture (81), 2 developed low (22) -> 100 pixels
        hand = {"shrub": 39, "developed_open": 23, "woody_wetlands": 19, "barren": 8, "grassland": 5, "pasture": 4, "developed_low": 2}
        for name, count in hand.items():
            assert out[f"frac_{name}"].values[1, 1] == pytest.approx(count / 100)
        assert out["frac_evergreen_forest"].values[1, 1] == 0
    else:
        # cell (4, 1) = crop rows 12-14, cols 3-5: [[21, 52, 52], [21, 21, 21], [90, 21, 52]]
        assert crop[12:15, 3:6].tolist() == [[21, 52, 52], [21, 21, 21], [90, 21, 52]]
        assert out["frac_developed_open"].values[4, 1] == pytest.approx(5 / 9)
        assert out["frac_shrub"].values[4, 1] == pytest.approx(3 / 9)
        assert out["frac_woody_wetlands"].values[4, 1] == pytest.approx(1 / 9)
    # every cell, against a count of its block
    for i, j in [(0, 0), (1, 1), (2, 3), (5, 4)]:
        block = crop[i * factor : (i + 1) * factor, j * factor : (j + 1) * factor]
        for name, frac in _fractions_by_hand(block, NLCD).items():
            assert out[f"frac_{name}"].values[i, j] == pytest.approx(frac, abs=1e-6)
    total = sum(out[v] for v in out.data_vars)
    np.testing.assert_allclose(total.values, 1.0, rtol=1e-6)


def test_fractions_slovenia_lulc_10m_to_30m_nested_against_hand_counts(shared_data):
    rioxarray = pytest.importorskip("rioxarray")
    raw = rioxarray.open_rasterio(shared_data / SLOVENIA_LULC).squeeze("band", drop=True)
    values = raw.values[:99, :99]  # 33 x 33 cells of 30 m
    left, top = float(raw.rio.transform().c), float(raw.rio.transform().f)
    lc = _on_square_grid(values, crs="EPSG:32633", left=left, top=top, res=10.0)  # nominal S2 10 m grid
    grid = GridSpec(crs="EPSG:32633", resolution=30.0, bounds=(left, top - 990, left + 990, top))
    out = landcover_fractions(lc, grid, EOLEARN, nodata=0)
    assert "exact" in out.attrs["method"]
    # hand counts of printed 3x3 blocks (0 = no data, left out of the denominator)
    assert values[0:3, 21:24].tolist() == [[3, 0, 4], [3, 0, 0], [3, 3, 0]]  # cell (0, 7)
    assert out["frac_grassland"].values[0, 7] == pytest.approx(4 / 5)
    assert out["frac_shrubland"].values[0, 7] == pytest.approx(1 / 5)
    assert values[0:3, 42:45].tolist() == [[8, 2, 2], [4, 2, 2], [4, 2, 2]]  # cell (0, 14)
    assert out["frac_forest"].values[0, 14] == pytest.approx(6 / 9)
    assert out["frac_shrubland"].values[0, 14] == pytest.approx(2 / 9)
    assert out["frac_artificial"].values[0, 14] == pytest.approx(1 / 9)
    assert (values[0:3, 12:15] == 0).all()  # cell (0, 4): only no data
    assert all(np.isnan(out[v].values[0, 4]) for v in out.data_vars)
    total = sum(out[v] for v in out.data_vars).values
    valid_cells = np.array([[(values[i * 3 : i * 3 + 3, j * 3 : j * 3 + 3] != 0).any() for j in range(33)] for i in range(33)])
    np.testing.assert_array_equal(np.isfinite(total), valid_cells)
    np.testing.assert_allclose(total[valid_cells], 1.0, rtol=1e-6)


def test_fractions_zion_real_georeferencing_reprojected_matches_pixel_shares(shared_data):
    """The file's own (non-square, NAD83) grid onto a 90 m WGS84 UTM grid: the reprojection path."""
    rioxarray = pytest.importorskip("rioxarray")
    lc = rioxarray.open_rasterio(shared_data / ZION_NLCD, chunks={"y": 256, "x": 256})
    grid = GridSpec(crs="EPSG:32612", resolution=90.0, bounds=(312000, 4120020, 321000, 4129020))
    with raise_if_dask_computes():
        out = landcover_fractions(lc, grid, NLCD)
    assert "reprojected" in out.attrs["method"]
    out = out.compute()
    total = sum(out[v] for v in out.data_vars).values
    np.testing.assert_allclose(total, 1.0, rtol=1e-6)
    # area shares over the whole 9 km box, by hand from the fine pixels whose centres fall in it
    # (NAD83 and WGS84 UTM 12N differ by ~1 m here, less than a 31.5 m pixel)
    values, transform, _ = _read(shared_data / ZION_NLCD)
    rows, cols = np.mgrid[0 : values.shape[0], 0 : values.shape[1]]
    xs = transform.c + (cols + 0.5) * transform.a
    ys = transform.f + (rows + 0.5) * transform.e
    inside = (xs >= 312000) & (xs < 321000) & (ys >= 4120020) & (ys < 4129020)
    for code, name in NLCD.items():
        share = np.count_nonzero(values[inside] == code) / np.count_nonzero(inside)
        assert float(out[f"frac_{name}"].mean()) == pytest.approx(share, abs=0.005), name


# ----------------------------------------------------------------------------- combined
def test_static_layers_reprojects_dem_and_combines(shared_data):
    rioxarray = pytest.importorskip("rioxarray")
    dem = rioxarray.open_rasterio(shared_data / MONGON_DEM)
    grid = GridSpec(crs="EPSG:32717", resolution=90.0, bounds=(795000, 8932200, 797700, 8934900))
    lc_values = np.ones((90, 90), "uint8")
    lc_values[:, 45:] = 2
    lc = _on_square_grid(lc_values, crs="EPSG:32717", left=795000, top=8934900, res=30.0)
    out = static_layers(dem, lc, grid, {1: "west", 2: "east"})
    assert set(out.data_vars) == {"elevation", "slope", "frac_west", "frac_east"}
    assert GridSpec.from_xarray(out) == grid
    assert all(out[v].dtype == np.float32 for v in out.data_vars)
    z = out["elevation"].values
    assert np.isfinite(z).all() and 238 <= z.min() and z.max() <= 1094
    np.testing.assert_allclose(out["frac_west"].values[:, :15], 1.0)
    np.testing.assert_allclose(out["frac_east"].values[:, 15:], 1.0)
    # bilinear: a 90 m pixel centre's elevation lies within the range of the 30.85 m pixels around it
    fine = dem.squeeze("band", drop=True)
    x, y = float(out.x[10]), float(out.y[10])
    around = fine.sel(x=slice(x - 31, x + 31), y=slice(y + 31, y - 31)).values
    assert around.min() <= z[10, 10] <= around.max()
    # the same from Dask inputs: lazy, and equal
    dem_lazy = rioxarray.open_rasterio(shared_data / MONGON_DEM, chunks={"y": 50, "x": 50})
    with raise_if_dask_computes():
        lazy = static_layers(dem_lazy, lc.chunk({"y": 45, "x": 30}), grid, {1: "west", 2: "east"})
    assert all(lazy[v].chunks is not None for v in lazy.data_vars)
    xr.testing.assert_allclose(lazy.compute(), out, rtol=1e-5)


def test_static_layers_uses_dem_on_grid_as_is():
    grid = GridSpec(crs="EPSG:32633", resolution=30.0, bounds=(0, 0, 90, 60))
    dem = grid.attach(xr.DataArray(np.arange(6, dtype="float32").reshape(2, 3) * 30, dims=("y", "x")))
    lc = _on_square_grid(np.full((6, 9), 3, "uint8"), crs="EPSG:32633", left=0, top=60, res=10.0)
    out = static_layers(dem, lc, grid, {3: "grass"})
    np.testing.assert_array_equal(out["elevation"].values, dem.values)
    np.testing.assert_array_equal(out["frac_grass"].values, 1.0)
