"""The issue's acceptance path through the public API: ``unique_xr.search`` against a real STAC API
on loopback, then ``unique_xr.load`` onto one explicit UTM grid, lazily."""

from __future__ import annotations

import json

import numpy as np
import pytest

import unique_xr as ux
from unique_xr.testing import raise_if_dask_computes
from unique_xr.testing.recorded import recorded_items
from unique_xr.testing.stac_server import serve_stac
from unique_xr.testing.synthetic import SyntheticRegionSpec, make_region

from .conftest import FIJI, LANDSAT_CENTER, MODIS_CENTER, TASMANIA


def test_public_search_returns_the_recorded_items(stac_api):
    modis = ux.search("modis-43A4-061", bbox=FIJI, datetime="2025-03-01/2025-03-31", provider=stac_api, cache=False)
    assert [i.id for i in modis] == [it["id"] for it in recorded_items("mcd43a4")]
    landsat = ux.search("landsat-c2-l2", bbox=TASMANIA, datetime="2024-04-17", provider=stac_api, cache=False)
    recorded = {it["id"] for it in recorded_items("landsat-c2-l2")}
    assert landsat and {i.id for i in landsat} <= recorded


@pytest.mark.parametrize("engine", ["stackstac", "odc"])
def test_recorded_modis_and_landsat_load_lazily_onto_utm_grids(stac_api, engine):
    modis = ux.search("mcd43a4", bbox=FIJI, datetime="2025-03-01/2025-03-31", provider=stac_api, cache=False)
    landsat = ux.search("landsat-c2-l2", bbox=TASMANIA, datetime="2024-04-17", provider=stac_api, cache=False)
    fiji = ux.GridSpec.from_bbox((MODIS_CENTER[0] - 0.02, MODIS_CENTER[1] - 0.02, MODIS_CENTER[0] + 0.02,
                                  MODIS_CENTER[1] + 0.02), resolution=500)
    tas = ux.GridSpec.from_bbox((LANDSAT_CENTER[0] - 0.003, LANDSAT_CENTER[1] - 0.003, LANDSAT_CENTER[0] + 0.003,
                                 LANDSAT_CENTER[1] + 0.003), resolution=30, anchor="center")
    assert fiji.crs == "EPSG:32760" and tas.crs == "EPSG:32755"
    with raise_if_dask_computes():
        m = ux.load(modis, grid=fiji, collection="mcd43a4", assets=["red", "nir", "qa_red"], engine=engine)
        ls = ux.load(landsat, grid=tas, collection="landsat-c2-l2", assets=["red", "nir08", "qa_pixel"], engine=engine)
    assert m.red.chunks is not None and ls.red.chunks is not None
    m, ls = m.compute(), ls.compute()
    assert np.isfinite(m.red.values).mean() > 0.9 and np.isfinite(ls.red.values).mean() > 0.9
    assert 0 <= float(np.nanmin(ls.red)) and float(np.nanmax(ls.red)) <= 1.0


def test_one_region_modis_and_landsat_on_one_utm_grid(tmp_path):
    """Synthetic MODIS (sinusoidal) and Landsat (UTM) of one place, through a loopback API, on one grid."""
    spec = SyntheticRegionSpec.square(size_px=64, seed=5, start="2023-06-01", end="2023-06-17",
                                      cloud_fraction=0.0, scene_edge_probability=0.0, modis_gap_fraction=0.0)
    region = make_region(tmp_path / "region", spec)
    catalog = tmp_path / "catalog.json"
    items = region.items["landsat-c2-l2"] + region.items["modis-43A4-061"]
    catalog.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    with serve_stac([catalog]) as url:
        found_l = ux.search("landsat-c2-l2", bbox=region.grid, datetime="2023-06-01/2023-06-17", provider=url,
                            cache=False)
        found_m = ux.search("mcd43a4", bbox=region.grid, datetime="2023-06-01/2023-06-17", provider=url, cache=False)
        # MCD43A4 items span the 8 days after their nominal day (as on Planetary Computer): a daily product
        # is selected by its nominal day, so 5-7 June gives those three days, not also 29 May-4 June
        three = ux.search("mcd43a4", bbox=region.grid, datetime="2023-06-05/2023-06-07", provider=url, cache=False)
    local = ux.search("mcd43a4", bbox=region.grid, datetime="2023-06-05/2023-06-07", provider=catalog)
    for found in (three, local):
        assert [i.properties["start_datetime"][:10] for i in found] == ["2023-06-05", "2023-06-06", "2023-06-07"]
        assert found[0].properties["end_datetime"][:10] == "2023-06-12"
    assert {i.id for i in found_l} == {it["id"] for it in region.items["landsat-c2-l2"]}
    assert len(found_m) == 17
    with raise_if_dask_computes():
        ls = ux.load(found_l, grid=region.grid, collection="landsat-c2-l2", assets=["red", "nir08"])
        md = ux.load(found_m, grid=region.grid, collection="mcd43a4", assets=["red", "nir"])
    np.testing.assert_array_equal(ls.x.values, md.x.values)
    np.testing.assert_array_equal(ls.y.values, md.y.values)
    truth = region.truth()
    first = ls.red.isel(time=0).values
    want = truth.red.sel(time=ls.time[0]).values
    # the generator adds sensor noise (and a little cirrus), so compare robustly: same picture, same level
    assert np.nanmedian(np.abs(first - want)) < 0.005
    assert np.corrcoef(first[np.isfinite(first)], want[np.isfinite(first)])[0, 1] > 0.95
    # MODIS on the 30 m grid: each pixel holds its 500 m cell, so the scene mean matches the truth's
    assert abs(float(md.nir.isel(time=0).mean()) - float(truth.nir.isel(time=0).mean())) < 0.03
