import numpy as np
import pytest
import xarray as xr

from unique_xr import GridSpec
from unique_xr.errors import CRSError, GridError


def test_pixel_centres_and_shape():
    g = GridSpec(crs="EPSG:32633", resolution=30, bounds=(500000, 4000000, 503000, 4001500))
    assert g.shape == (50, 100)
    assert g.x[0] == 500015.0 and g.x[-1] == 502985.0
    assert g.y[0] == 4001485.0 and g.y[-1] == 4000015.0
    assert g.transform.c == 500000 and g.transform.f == 4001500 and g.transform.e == -30


def test_crs_is_canonicalised():
    assert GridSpec(crs=32633, resolution=10, bounds=(0, 0, 100, 100)).crs == "EPSG:32633"
    assert GridSpec(crs="+proj=utm +zone=33 +datum=WGS84", resolution=10, bounds=(0, 0, 100, 100)).crs == "EPSG:32633"


def test_rejects_fractional_pixels_with_a_fix():
    with pytest.raises(GridError, match="not a whole number") as err:
        GridSpec(crs="EPSG:32633", resolution=30, bounds=(0, 0, 100, 90))
    assert "from_bounds" in str(err.value)


@pytest.mark.parametrize("bounds", [(10, 0, 0, 10), (0, 10, 10, 0), (0, 0, np.inf, 10)])
def test_rejects_bad_bounds(bounds):
    with pytest.raises(GridError):
        GridSpec(crs="EPSG:32633", resolution=1, bounds=bounds)


def test_rejects_geographic_and_unknown_crs():
    with pytest.raises(CRSError, match="projected"):
        GridSpec(crs="EPSG:4326", resolution=0.001, bounds=(0, 0, 1, 1))
    with pytest.raises(CRSError, match="Could not understand"):
        GridSpec(crs="EPSG:999999", resolution=30, bounds=(0, 0, 30, 30))


def test_from_bounds_snaps_outward_edge_and_centre():
    g = GridSpec.from_bounds((583490, -2231680, 595480, -2222690), crs="EPSG:32623", resolution=30)
    assert g.bounds == (583470.0, -2231700.0, 595500.0, -2222670.0)
    c = GridSpec.from_bounds((583490, -2231680, 595480, -2222690), crs="EPSG:32623", resolution=30, anchor="center")
    # Landsat convention: pixel centres on multiples of 30 m
    assert c.bounds == (583485.0, -2231685.0, 595485.0, -2222685.0)
    assert c.x[0] % 30 == 0 and c.y[0] % 30 == 0


def test_from_bbox_picks_utm_zone_and_covers_bbox():
    bbox = (-44.2, -20.2, -44.1, -20.1)
    g = GridSpec.from_bbox(bbox, resolution=30)
    assert g.crs == "EPSG:32723"
    w, s, e, n = g.bounds_latlon
    assert w <= bbox[0] and s <= bbox[1] and e >= bbox[2] and n >= bbox[3]
    with pytest.raises(CRSError):
        GridSpec.from_bbox((10, 50, 5, 51), resolution=30)


def test_attach_and_roundtrip():
    g = GridSpec(crs="EPSG:32633", resolution=30, bounds=(500000, 4000000, 503000, 4001500))
    ds = g.attach(xr.Dataset({"a": (("time", "y", "x"), np.zeros((2, *g.shape), "f4"))}))
    assert ds.a.attrs["grid_mapping"] == "spatial_ref"
    assert "crs_wkt" in ds.spatial_ref.attrs
    np.testing.assert_array_equal(ds.x.values, g.x)
    assert GridSpec.from_xarray(ds) == g
    with pytest.raises(GridError, match="sizes"):
        g.attach(xr.Dataset({"a": (("y", "x"), np.zeros((3, 3)))}))


def test_geobox_matches():
    g = GridSpec(crs="EPSG:32633", resolution=500, bounds=(500000, 4000000, 510000, 4005000))
    gb = g.to_geobox()
    assert gb.shape == g.shape
    np.testing.assert_allclose(gb.coords["x"].values, g.x)
    np.testing.assert_allclose(gb.coords["y"].values, g.y)


def test_nesting_and_token():
    from dask.base import tokenize

    fine = GridSpec(crs="EPSG:32633", resolution=30, bounds=(0, 0, 480, 480))
    coarse = GridSpec(crs="EPSG:32633", resolution=480, bounds=(0, 0, 480, 480))
    assert fine.coarsen_factor(coarse) == 16
    with pytest.raises(GridError):
        fine.coarsen_factor(GridSpec(crs="EPSG:32633", resolution=500, bounds=(0, 0, 500, 500)))
    with pytest.raises(GridError, match="pixel edges"):  # 300 m cells offset by half a fine pixel
        GridSpec(crs="EPSG:32633", resolution=30, bounds=(0, 0, 600, 600)).coarsen_factor(
            GridSpec(crs="EPSG:32633", resolution=300, bounds=(15, 15, 315, 315)))
    with pytest.raises(GridError):
        fine.coarsen_factor(GridSpec(crs="EPSG:32632", resolution=480, bounds=(0, 0, 480, 480)))
    assert fine.refine(3).coarsen_factor(fine) == 3
    assert tokenize(fine) == tokenize(GridSpec.from_dict(fine.to_dict()))
    assert tokenize(fine) != tokenize(coarse)


# ------------------------------------------------------------------------ properties (hypothesis)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from unique_xr.testing.strategies import bounds_within, grids  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(grids())
def test_any_grid_roundtrips_through_xarray_and_dict(grid):
    ds = grid.attach(xr.Dataset({"v": (("y", "x"), np.zeros(grid.shape, "f4"))}))
    assert GridSpec.from_xarray(ds) == grid if min(grid.shape) >= 2 else True
    assert GridSpec.from_dict(grid.to_dict()) == grid
    assert len(grid.x) == grid.shape[1] and len(grid.y) == grid.shape[0]
    assert np.all(np.diff(grid.x) > 0) and np.all(np.diff(grid.y) < 0)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_from_bounds_snaps_outward_to_whole_pixels(data):
    grid = data.draw(grids())
    raw = data.draw(bounds_within(grid))
    anchor = data.draw(st.sampled_from(["edge", "center"]))
    snapped = GridSpec.from_bounds(raw, crs=grid.crs, resolution=grid.resolution, anchor=anchor)
    left, bottom, right, top = snapped.bounds
    tol = 1e-6 * grid.resolution
    assert left <= raw[0] + tol and bottom <= raw[1] + tol and right >= raw[2] - tol and top >= raw[3] - tol
    # never more than one pixel of slack on a side
    assert raw[0] - left < grid.resolution + tol and right - raw[2] < grid.resolution + tol
    edge = snapped.x[0] - grid.resolution / 2 if anchor == "edge" else snapped.x[0]
    assert abs(edge / grid.resolution - round(edge / grid.resolution)) < 1e-6


@settings(max_examples=40, deadline=None)
@given(grids(max_pixels=20), st.integers(1, 5))
def test_refined_grids_nest(grid, k):
    fine = grid.refine(k)
    assert fine.coarsen_factor(grid) == k
    assert fine.shape == (grid.shape[0] * k, grid.shape[1] * k)
