"""Readers of the real coarse/fine pairs in ../shared/data/pairs (examples/downscale_pairs.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from unique_xr.downscale.baselines import block_mean
from unique_xr.downscale.metrics import pearson_r

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "downscale_pairs.py"


@pytest.fixture(scope="module")
def dp():
    spec = importlib.util.spec_from_file_location("downscale_pairs", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pairs_dir(shared_data):
    return shared_data / "pairs"


def test_modis_composite_band_of_a_day(dp):
    assert [dp.modis_band_for_doy(d) for d in (1, 16, 17, 104, 239, 344, 360, 366)] == [1, 1, 2, 7, 15, 22, 23, 23]


def test_ndvi_landsat_keeps_only_clear_pixels(dp, pairs_dir):
    ndvi = dp.read_ndvi_landsat(239, pairs_dir)
    assert ndvi.dims == ("y", "x") and ndvi.shape == (552, 576) and ndvi.dtype == np.float32
    # 134120 pixels are CFmask-clear on DOY 239 (the rest: shadow, cloud, fill)
    assert int(np.isfinite(ndvi.values).sum()) == 134_120
    assert 0.09 < float(ndvi.min()) and float(ndvi.max()) < 0.94
    assert np.allclose(np.diff(ndvi["x"].values), 30.0) and np.allclose(np.diff(ndvi["y"].values), -30.0)
    # DOY 344 has two -10000 fill pixels flagged clear: they must be NaN, not -1
    winter = dp.read_ndvi_landsat(344, pairs_dir)
    assert float(np.nanmin(winter.values)) > -0.7
    assert int(np.isfinite(winter.values).sum()) == 271_590 - 2


def test_ndvi_modis_is_nested_in_the_landsat_grid(dp, pairs_dir):
    modis = dp.read_ndvi_modis(239, pairs_dir)
    landsat = dp.read_ndvi_landsat(239, pairs_dir)
    assert modis.shape == (69, 72) and modis.attrs["factor"] == 8 and modis.attrs["composite_doys"] == "225-240"
    assert np.isfinite(modis.values).all()
    # each MODIS pixel centre is the centre of its 8 x 8 Landsat block
    np.testing.assert_allclose(modis["x"].values, landsat["x"].values.reshape(72, 8).mean(axis=1))
    np.testing.assert_allclose(modis["y"].values, landsat["y"].values.reshape(69, 8).mean(axis=1))


@pytest.mark.parametrize("doy", [104, 191, 200, 216, 239, 344, 360])
def test_ndvi_block_means_follow_modis(dp, pairs_dir, doy):
    # measured r: 0.80, 0.73, 0.52, 0.71, 0.56, 0.85, 0.79 (a 16-day composite against one clear day)
    fine = dp.read_ndvi_landsat(doy, pairs_dir).values
    modis = dp.read_ndvi_modis(doy, pairs_dir).values
    assert pearson_r(block_mean(fine, 8), modis) > 0.5


def test_ndvi_blocks_are_aligned_at_the_top_left(dp, pairs_dir):
    # blocks shifted by half a MODIS pixel agree worse (DOY 104: r 0.80 aligned, 0.74 shifted by 4 px)
    fine = dp.read_ndvi_landsat(104, pairs_dir).values
    modis = dp.read_ndvi_modis(104, pairs_dir).values[:68, :71]
    aligned = pearson_r(block_mean(fine, 8)[:68, :71], modis)
    shifted = pearson_r(block_mean(fine[4:, 4:], 8)[:68, :71], modis)
    assert aligned > shifted + 0.03


def test_landcover_has_four_classes_on_the_landsat_grid(dp, pairs_dir):
    lc = dp.read_landcover(pairs_dir)
    assert lc.shape == (552, 576) and lc.dtype == np.uint8
    values, counts = np.unique(lc.values, return_counts=True)
    assert values.tolist() == [1, 2, 3, 4] and counts.tolist() == [51256, 97518, 107468, 61710]


def test_cia_reads_georeferenced_ndvi_and_bands(dp, pairs_dir):
    fine = dp.read_cia(306, "landsat", data=pairs_dir)
    coarse = dp.read_cia(306, "modis", data=pairs_dir)
    assert fine.shape == coarse.shape == (250, 250) and fine.attrs["crs"] == "EPSG:32755"
    assert fine["x"].values[0] == pytest.approx(401012.5 + 25.0)  # 50 m pixel centres
    assert np.isfinite(fine.values).all() and np.nanmax(np.abs(fine.values)) <= 1
    nir = dp.read_cia(306, "landsat", "nir", data=pairs_dir)
    assert 0.2 < float(nir.mean()) < 0.26  # SOURCE.txt: reflectance 0-1
    # MODIS (resampled by the producers) follows Landsat: measured r = 0.60 at 50 m on DOY 306
    assert pearson_r(coarse.values, fine.values) > 0.5


def test_boreas_ndvi_matches_the_documented_means(dp, pairs_dir):
    # SOURCE.txt: NDVI ETM 0.60/0.73/0.75 vs MODIS 0.65/0.76/0.78
    for date, tm, modis in (("0524", 0.60, 0.65), ("0711", 0.73, 0.76), ("0812", 0.75, 0.78)):
        fine = dp.read_boreas(date, "tm", data=pairs_dir)
        coarse = dp.read_boreas(date, "modis", data=pairs_dir)
        assert fine.shape == (400, 400) and fine.attrs["crs"].startswith("none")
        assert float(np.nanmean(fine.values)) == pytest.approx(tm, abs=0.01)
        assert float(np.nanmean(coarse.values)) == pytest.approx(modis, abs=0.01)


def test_yanco_modis_blocks_collapse_to_their_own_grid(dp, pairs_dir):
    fine = dp.read_yanco("20160205", "landsat", pairs_dir)
    coarse = dp.read_yanco("20160205", "modis", pairs_dir)
    assert fine.shape == (400, 400) and coarse.shape == (40, 40) and coarse.attrs["factor"] == 10
    assert fine.attrs["crs"] == "EPSG:4326" and coarse["x"].values[0] == pytest.approx(146.005)
    assert int(np.isnan(fine.values).sum()) == 1  # the one -3.4e38 nodata pixel
    assert 290 < float(np.nanmin(fine.values)) and float(np.nanmax(fine.values)) < 325
    assert pearson_r(block_mean(fine.values, 10), coarse.values) > 0.75  # measured 0.80


def test_yanco_march_modis_does_not_follow_landsat(dp, pairs_dir):
    # A property of the data, stated in docs/downscale.md: on 2016-03-08 the MODIS image is
    # uncorrelated with the same day's Landsat at 1 km (r = -0.005, against 0.80 on 02-05 and
    # 0.54 for the 02-18 MODIS image), so no downscaler can recover that day's pattern from it.
    fine = dp.read_yanco("20160308", "landsat", pairs_dir).values
    same_day = dp.read_yanco("20160308", "modis", pairs_dir).values
    earlier = dp.read_yanco("20160218", "modis", pairs_dir).values
    assert abs(pearson_r(block_mean(fine, 10), same_day)) < 0.1
    assert pearson_r(block_mean(fine, 10), earlier) > 0.45


def test_lgc_ndvi_from_red_and_nir_and_its_synthetic_coarse_blocks(dp, pairs_dir):
    fine = dp.read_lgc("20041126", "landsat", data=pairs_dir)
    coarse = dp.read_lgc("20041126", "modis", data=pairs_dir)
    assert fine.shape == (480, 480) and coarse.shape == (30, 30) and coarse.attrs["factor"] == 16
    assert np.isfinite(fine.values).all() and float(np.abs(fine.values).max()) <= 1
    # measured NDVI means before / after the flood: 0.34 / 0.47 (red = band 2, NIR = band 3)
    assert float(fine.mean()) == pytest.approx(0.339, abs=0.005)
    assert float(dp.read_lgc("20041228", "landsat", data=pairs_dir).mean()) == pytest.approx(0.466, abs=0.005)
    # the coarse image is synthetic: the NDVI of the 16 x 16 block means of the Landsat red and NIR
    red, nir = (dp.read_lgc("20041126", "landsat", band, data=pairs_dir).values for band in ("red", "nir"))
    red, nir = block_mean(red, 16), block_mean(nir, 16)
    np.testing.assert_allclose(coarse.values, (nir - red) / (nir + red), atol=1e-3)  # rounded integers: 4e-4
    np.testing.assert_allclose(coarse["x"].values, fine["x"].values.reshape(30, 16).mean(axis=1))
    classes = dp.read_lgc_classes(pairs_dir)
    values, counts = np.unique(classes.values, return_counts=True)
    assert values.tolist() == [1, 2, 3, 4] and counts.tolist() == [74351, 139591, 15482, 976]


#: Meteorological season of every fine date, named for the hemisphere (cia, yanco, lgc: Australia).
SEASONS = {
    "ndvi": ["spring", "summer", "summer", "summer", "summer", "winter", "winter"],
    "cia": ["spring", "spring", "spring"],
    "boreas": ["spring", "summer", "summer"],
    "yanco": ["summer", "autumn"],
    "lgc": ["spring", "summer"],
}


def test_load_pairs_dates_seasons_and_crop(dp, pairs_dir):
    pairs = dp.load_pairs("ndvi", pairs_dir)
    assert pairs.dates == ("104", "191", "200", "216", "239", "344", "360") == pairs.test
    assert pairs.calendar["239"] == "2015-08-27" and pairs.calendar["344"] == "2015-12-10"
    assert pairs.held_in("239") == ("104", "191", "200", "216", "344", "360")
    assert pairs.earlier("239") == ("104", "191", "200", "216") and pairs.earlier("104") == ()
    assert pairs.factor == 8 and len(pairs.aux) == 1
    assert pairs.coarse_on_fine("239").shape == (552, 576) == pairs.coarse_for_model("239").shape
    assert dp.load_pairs("ndvi", pairs_dir, test=["344"]).test == ("344",)
    small = pairs.crop(64)
    assert small.fine["239"].shape == (64, 64) and small.coarse["239"].shape == (8, 8)
    assert small.classes.shape == (64, 64) and small.aux[0].shape == (64, 64)
    for name in dp.SETS:
        other = dp.load_pairs(name, pairs_dir)
        assert [other.season(d)[0] for d in other.dates] == SEASONS[name], name
        for d in other.dates:
            assert other.coarse_on_fine(d).shape == other.fine[d].shape
    assert dp.load_pairs("yanco", pairs_dir).earlier("20160308") == ("20160205",)
    with pytest.raises(ValueError, match="not among"):
        dp.load_pairs("cia", pairs_dir, test=["239"])


def test_the_example_doctests_pass(dp):
    import doctest

    assert doctest.testmod(dp).failed == 0


def test_missing_data_folder_says_where_it_looked(dp, tmp_path):
    with pytest.raises(FileNotFoundError, match="--data"):
        dp.read_ndvi_landsat(239, tmp_path)
    with pytest.raises(ValueError, match="DOY"):
        dp.read_ndvi_landsat(248, tmp_path)
