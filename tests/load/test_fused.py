"""load(mask=..., indices=...): one fused kernel per chunk, the same cube and errors as the separate stages.

The scene: real Landsat 7 C2 L2 surface-reflectance DNs and QA_PIXEL values seen at flux towers
(tests/data/pixels), laid out as COGs behind the real recorded Planetary Computer item (conftest), plus
hand-made nodata and out-of-range DNs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from affine import Affine

from unique_xr.errors import AllMaskedError, UnitsError
from unique_xr.features.indices import INDICES, add_indices
from unique_xr.grid import GridSpec
from unique_xr.load.fused import FusedPlan, scale_mask_index_block
from unique_xr.load.masks import apply_qa_mask
from unique_xr.load.stack import load
from unique_xr.search.collections import LANDSAT_FILE_BANDS, get_collection
from unique_xr.testing import raise_if_dask_computes

PIXELS = Path(__file__).resolve().parents[1] / "data" / "pixels"
SHAPE = (24, 40)
ROLES = ("blue", "red", "nir", "swir1")  # every band an index takes


@pytest.fixture(scope="module")
def real_pixels() -> dict[str, np.ndarray]:
    """Rows of the real tower table tiled over SHAPE, keyed by asset key (role -> SR band of Landsat 7)."""
    l7 = pd.read_csv(PIXELS / "landsat7_c2l2_qa_pixel_at_towers.csv")
    landsat = get_collection("landsat-c2-l2")
    rows = np.random.default_rng(7).integers(0, len(l7), size=SHAPE)
    bands = LANDSAT_FILE_BANDS["landsat-7"]
    data = {landsat.asset(role).key: l7[bands[role]].to_numpy("uint16")[rows] for role in ROLES}
    data["red"][0, :5] = 0  # nodata
    data["nir08"][1, :5] = 50000  # above the valid range
    data["qa_pixel"] = l7["QA_PIXEL"].to_numpy("uint16")[rows]
    return data


def _grid(landsat_item, *, row_off: int, col_off: int) -> GridSpec:
    t = landsat_item.scene_transform @ Affine.translation(col_off, row_off)
    return GridSpec(crs="EPSG:32655", resolution=30, bounds=(t.c, t.f - 30 * SHAPE[0], t.c + 30 * SHAPE[1], t.f))


def _assert_same_cube(fused, ref):
    assert list(fused.data_vars) == list(ref.data_vars)
    fused, ref = fused.compute(), ref.compute()
    for name in ref.data_vars:
        assert fused[name].dtype == ref[name].dtype and fused[name].attrs == ref[name].attrs, name
        np.testing.assert_allclose(fused[name].values, ref[name].values, rtol=1e-6, atol=1e-6, err_msg=name)
    assert fused.coords.to_dataset().identical(ref.coords.to_dataset()) and fused.attrs == ref.attrs


def test_fused_load_equals_the_separate_stages_on_a_real_scene(landsat_item, real_pixels):
    # two overlapping items of one day (raw mosaic: nodata and out-of-range DNs give way) and a later date
    first = {k: v.copy() for k, v in real_pixels.items()}
    first["red"][:, :8] = 0
    items = [landsat_item(first, row_off=700, col_off=900, item_id="LE07_a"),
             landsat_item({k: v[::-1] for k, v in real_pixels.items()}, row_off=700, col_off=900, item_id="LE07_b",
                          datetime="2025-03-10T23:53:30Z"),
             landsat_item(real_pixels, row_off=700, col_off=900, item_id="LE07_c", datetime="2025-03-26T23:53:10Z")]
    kw = {"grid": _grid(landsat_item, row_off=700, col_off=900), "collection": "landsat-c2-l2",
          "assets": [get_collection("landsat-c2-l2").asset(r).key for r in ROLES] + ["qa_pixel"],
          "chunks": {"y": 24, "x": 24}}
    with raise_if_dask_computes():
        fused = load(items, mask=True, indices=list(INDICES), **kw)
        fused_snow = load(items, mask={"snow": False, "drop_qa": False}, indices="ndvi", **kw)
    assert fused.ndvi.data.npartitions == 2 * 2
    loaded = load(items, **kw)
    ref = add_indices(apply_qa_mask(loaded, "landsat-c2-l2"), list(INDICES))
    _assert_same_cube(fused, ref)
    assert 0 < int(fused.clear.sum()) < fused.clear.size and np.isfinite(fused.ndvi.values).any()
    _assert_same_cube(fused_snow, add_indices(apply_qa_mask(loaded, "landsat-c2-l2", snow=False, drop_qa=False),
                                              "ndvi"))


def test_fused_load_errors_as_the_separate_stages(landsat_item, real_pixels):
    cloudy = {"red": real_pixels["red"], "nir08": real_pixels["nir08"],
              "qa_pixel": np.full(SHAPE, 5896, np.uint16)}  # a real cloud value everywhere
    item = landsat_item(cloudy, row_off=100, col_off=100)
    kw = {"grid": _grid(landsat_item, row_off=100, col_off=100), "collection": "landsat-c2-l2",
          "assets": ["red", "nir08", "qa_pixel"], "chunks": {"y": 16, "x": 16}}
    with raise_if_dask_computes():
        fused = load([item], mask=True, indices=["ndvi"], **kw)
    with pytest.raises(AllMaskedError) as fused_error:
        fused.ndvi.compute()
    with pytest.raises(AllMaskedError) as ref_error:
        add_indices(apply_qa_mask(load([item], **kw), "landsat-c2-l2"), ["ndvi"]).ndvi.compute()
    assert str(fused_error.value) == str(ref_error.value)
    load([item], mask={"check_all_masked": False}, indices=["ndvi"], **kw).ndvi.compute()  # no check: all NaN
    with pytest.raises(TypeError, match="Unknown QA option"):
        load([item], mask={"clouds": False}, **kw)


def test_fused_block_runs_the_unit_check_of_the_index():
    raw = np.full((1, 4, 4), 20000, np.uint16)
    qa = np.full((1, 4, 4), 21824, np.uint16)
    band = ("<u2", 0, (7273, 43636), 1.0, 0.0)  # scale not applied: DN would reach NDVI
    plan = FusedPlan(bands=(band, band), band_qa=(-1, -1), qa=(("landsat_qa_pixel", "uint16", 1.0, ()),),
                     indices=(("ndvi", (0, 1)),), checks=((0, "red", "ndvi"),))
    with pytest.raises(UnitsError, match="NDVI input band 'red'"):
        scale_mask_index_block(raw, raw, qa, plan=plan)
    bands, clear, ndvi, counts = scale_mask_index_block(raw, raw, qa, plan=FusedPlan(
        bands=(band, band), band_qa=(-1, -1), qa=plan.qa, indices=plan.indices))
    assert bands.shape == (2, 1, 4, 4) and clear.all() and (ndvi == 0).all() and counts.tolist() == [16, 0]


def test_fused_block_masks_each_mcd43a4_band_by_its_own_qa():
    import xarray as xr

    from unique_xr.load.stack import _physical_params, to_physical

    modis = get_collection("mcd43a4")
    raw = {r: np.random.default_rng(3).integers(-100, 32767, size=(1, 3, 5)).astype(np.int16) for r in ("red", "nir")}
    qa = {f"qa_{r}": np.random.default_rng(i).choice(np.uint8([0, 1, 2, 255]), size=(1, 3, 5))
          for i, r in enumerate(("red", "nir"))}
    phys = {r: to_physical(v, **{k: getattr(modis.asset(r), k) for k in ("nodata", "valid_range", "scale", "offset")})
            for r, v in raw.items()}
    ref = apply_qa_mask(xr.Dataset({k: (("time", "y", "x"), v) for k, v in {**phys, **qa}.items()}), "mcd43a4")
    plan = FusedPlan(bands=tuple(_physical_params(modis.asset(r)) for r in raw), band_qa=(0, 1),
                     qa=tuple(("mcd43a4_mandatory", "uint8", 255.0, ()) for _ in qa), indices=(("ndvi", (0, 1)),))
    bands, clear, ndvi, counts = scale_mask_index_block(*raw.values(), *qa.values(), plan=plan)
    np.testing.assert_array_equal(bands[0], ref.red.values)
    np.testing.assert_array_equal(bands[1], ref.nir.values)
    np.testing.assert_array_equal(clear, ref.clear.values)
    np.testing.assert_allclose(ndvi[0], add_indices(ref, "ndvi").ndvi.values, rtol=1e-6)
    assert counts.tolist() == [int(ref.clear.sum()), int(((qa["qa_red"] == 255) | (qa["qa_nir"] == 255)).sum())]
