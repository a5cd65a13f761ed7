"""``unique-xr downscale fit/predict`` and the GeoTIFF I/O behind it, on real image pairs.

The inputs are small GeoTIFFs cut from ../shared/data/pairs (see each folder's SOURCE.txt):

* the IFSDAF NDVI set (Liu et al. 2019; Landsat-8 and MODIS public domain): Landsat NDVI 30 m with
  CFmask (non-clear pixels written as nodata), MODIS 16-day NDVI 240 m nested by 8, a 4-class land
  cover; 64 x 96 fine pixels from the top-left corner. The files carry no real CRS, so EPSG:32650
  is assigned with their own transform (origin 1 m, 1 m).
* the Yanco LST pair (Yu et al. 2023, MIT; Landsat/MODIS public domain): MODIS already on the
  Landsat grid, EPSG:4326, a 64 x 64 crop.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from rasterio.windows import Window
from typer.testing import CliRunner

from unique_xr.cli import app
from unique_xr.downscale.io import (
    align_coarse,
    common_grid,
    grid_of,
    prediction_grid,
    read_grid,
    read_single_band,
    shares_grid,
    write_prediction,
)

NDVI = "pairs/ifsdaf_landsat8_ndvi_modis_ndvi_landcover"
SCENES = {104: "LC81250382015104LGN00", 200: "LC81250382015200LGN00", 216: "LC81250382015216LGN00",
          344: "LC81250382015344LGN00"}
YANCO = "pairs/yanco_landsat_modis_lst"
ROWS, COLS, K = 64, 96, 8
FINE_TRANSFORM = Affine(30.0, 0.0, 1.0, 0.0, -30.0, 1.0)
COARSE_TRANSFORM = Affine(240.0, 0.0, 1.0, 0.0, -240.0, 1.0)
QUICK = ["--preset", "quick", "--steps", "3", "--no-progress"]

needs_torch = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("torch", "xbatcher")),
    reason="needs the torch extra (torch, xbatcher)",
)


# ---------------------------------------------------------------------------------------------
# helpers: real data as small GeoTIFFs
# ---------------------------------------------------------------------------------------------
def _read_envi(path: Path, band: int = 1) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ENVI 'Arbitrary' map info: not georeferenced
        with rasterio.open(path) as src:
            return src.read(band)


def _write(path: Path, values: np.ndarray, transform, *, crs="EPSG:32650", nodata=None, scale=None) -> Path:
    values = np.asarray(values)
    if values.ndim == 2:
        values = values[None]
    profile = {"driver": "GTiff", "height": values.shape[1], "width": values.shape[2], "count": values.shape[0],
               "dtype": values.dtype, "transform": transform, "crs": crs, "nodata": nodata}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(values)
            if scale is not None:
                dst.scales = (scale,) * values.shape[0]
    return path


def _run(*args: str):
    return CliRunner().invoke(app, ["downscale", *[str(a) for a in args]])


def _ok(result):
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}\n{result.exception!r}"
    return result


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ndvi(shared_data, tmp_path_factory) -> dict[str, Path]:
    """IFSDAF NDVI pairs as int16 GeoTIFFs with nodata and scale 1e-4, like the real products."""
    src = shared_data / NDVI
    out = tmp_path_factory.mktemp("ndvi")
    files = {}
    modis = {doy: _read_envi(src / "MOD_16Day_ndvi", band=(doy - 1) // 16 + 1)[: ROWS // K, : COLS // K]
             for doy in SCENES}
    for doy, scene in SCENES.items():
        value = _read_envi(src / "landsat8_ndvi_cfmask" / f"{scene}_ndvi")[:ROWS, :COLS]
        clear = (_read_envi(src / "landsat8_ndvi_cfmask" / f"{scene}_mask")[:ROWS, :COLS] == 0) & (value > -9999)
        files[f"fine{doy}"] = _write(out / f"landsat_{doy}.tif", np.where(clear, value, -9999).astype(np.int16),
                                     FINE_TRANSFORM, nodata=-9999, scale=1e-4)
        files[f"coarse{doy}"] = _write(out / f"modis_{doy}.tif", modis[doy].astype(np.int16), COARSE_TRANSFORM,
                                       nodata=-3000, scale=1e-4)
    gap = modis[200].astype(np.int16).copy()
    gap[2:4, 5:7] = -3000  # a 2 x 2 coarse hole (480 m x 480 m)
    files["coarse200_gap"] = _write(out / "modis_200_gap.tif", gap, COARSE_TRANSFORM, nodata=-3000, scale=1e-4)
    gap = modis[344].astype(np.int16).copy()
    gap[3:5, 1:3] = -3000
    files["coarse344_gap"] = _write(out / "modis_344_gap.tif", gap, COARSE_TRANSFORM, nodata=-3000, scale=1e-4)
    files["landcover"] = _write(out / "landcover.tif", _read_envi(src / "landcover")[:ROWS, :COLS], FINE_TRANSFORM)
    for doy in (104, 200, 344):  # the MODIS images on their own geographic grid (the reprojection path)
        files[f"geo{doy}"] = _to_lonlat(files[f"coarse{doy}"], out / f"modis_{doy}_lonlat.tif")
    stack = np.stack([modis[d] for d in (104, 200, 216)]).astype(np.int16)
    files["multiband"] = _write(out / "modis_3bands.tif", stack, COARSE_TRANSFORM, nodata=-3000, scale=1e-4)
    return files


def _to_lonlat(path: Path, dst_path: Path) -> Path:
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    with rasterio.open(path) as src:
        transform, width, height = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height, *src.bounds)
        values = src.read(1, masked=True).astype(np.float32).filled(np.nan) * np.float32(src.scales[0])
        out = np.full((height, width), np.nan, np.float32)
        reproject(values, out, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                  dst_crs="EPSG:4326", resampling=Resampling.nearest, src_nodata=np.nan, dst_nodata=np.nan)
    return _write(dst_path, out, transform, crs="EPSG:4326", nodata=np.nan)


@pytest.fixture(scope="module")
def yanco(shared_data, tmp_path_factory) -> dict[str, Path]:
    """A 64 x 64 crop of the Yanco LST pairs (EPSG:4326, MODIS already on the Landsat grid)."""
    out = tmp_path_factory.mktemp("yanco")
    window = Window(120, 200, 64, 64)
    files = {}
    for key, name in (("fine0205", "Landsat_LST_cloudrm_20160205"), ("fine0308", "Landsat_LST_cloudrm_20160308"),
                      ("coarse0205", "MOD11A1_LST_cloudrm_20160205"), ("coarse0308", "MOD11A1_LST_cloudrm_20160308")):
        with rasterio.open(shared_data / YANCO / f"{name}.tif") as src:
            values = src.read(1, window=window)
            if key == "fine0205":  # a real-looking cloud: a block of the file's nodata value
                values[10:20, 30:45] = src.nodata
            files[key] = _write(out / f"{name}.tif", values, src.window_transform(window), crs=src.crs,
                                nodata=src.nodata)
    return files


@pytest.fixture(scope="module")
def s1_model(ndvi, tmp_path_factory) -> Path:
    """S1 on nested MODIS/Landsat pairs; DOY 200 has real cloud gaps (fine) and a coarse hole."""
    out = tmp_path_factory.mktemp("models") / "s1"
    _ok(_run("fit", "--coarse", ndvi["coarse104"], ndvi["coarse200_gap"], ndvi["coarse216"],
             "--fine", ndvi["fine104"], ndvi["fine200"], ndvi["fine216"], "--scheme", "s1", "--out", out, *QUICK))
    return out


@pytest.fixture(scope="module")
def s2_model(ndvi, tmp_path_factory) -> Path:
    """S2 with land cover; the coarse images are on a lon/lat grid, so they are reprojected."""
    out = tmp_path_factory.mktemp("models") / "s2"
    _ok(_run("fit", "--coarse", ndvi["geo104"], ndvi["geo200"], "--fine", ndvi["fine104"], ndvi["fine200"],
             "--aux", ndvi["landcover"], "--scheme", "s2", "--out", out, *QUICK))
    return out


# ---------------------------------------------------------------------------------------------
# reading, aligning, writing
# ---------------------------------------------------------------------------------------------
def test_read_single_band_applies_nodata_and_scale(ndvi, shared_data):
    da = read_single_band(ndvi["fine200"])
    assert da.dims == ("y", "x") and da.shape == (ROWS, COLS) and da.dtype == np.float32
    mask = _read_envi(shared_data / NDVI / "landsat8_ndvi_cfmask" / f"{SCENES[200]}_mask")[:ROWS, :COLS]
    raw = _read_envi(shared_data / NDVI / "landsat8_ndvi_cfmask" / f"{SCENES[200]}_ndvi")[:ROWS, :COLS]
    clear = (mask == 0) & (raw > -9999)
    assert 0.3 < clear.mean() < 0.9  # real clouds in this crop
    np.testing.assert_array_equal(np.isfinite(da.values), clear)
    np.testing.assert_allclose(da.values[clear], raw[clear] * 1e-4, rtol=1e-6)
    assert grid_of(da).affine == FINE_TRANSFORM and grid_of(da).crs.epsg == 32650


def test_read_single_band_refuses_several_bands_without_band(ndvi):
    from unique_xr.downscale.conditioning import DownscaleInputError

    with pytest.raises(DownscaleInputError, match=r"3 bands.*--band N"):
        read_single_band(ndvi["multiband"])
    second = read_single_band(ndvi["multiband"], band=2)
    np.testing.assert_array_equal(second.values, read_single_band(ndvi["coarse200"]).values)


def test_align_coarse_nested_crops_a_larger_coarse_image(ndvi):
    fine = read_single_band(ndvi["fine104"])
    coarse = read_single_band(ndvi["coarse104"])
    aligned, k = align_coarse(coarse, fine)
    assert k == K and aligned.shape == (ROWS // K, COLS // K) and "nested" in aligned.attrs["alignment"]
    np.testing.assert_array_equal(aligned.values, coarse.values)
    # a fine grid over the coarse pixels (2..6, 3..9): the matching coarse window is cut out
    part = fine.isel(y=slice(16, 48), x=slice(24, 72))
    window, k = align_coarse(coarse, part)
    assert k == K
    np.testing.assert_array_equal(window.values, coarse.values[2:6, 3:9])
    # beyond the coarse image's edge: NaN
    from odc.geo.geobox import GeoBox

    outside = GeoBox((ROWS, COLS), FINE_TRANSFORM @ Affine.translation(-16, 0), "EPSG:32650")
    padded, k = align_coarse(coarse, outside)
    assert np.isnan(padded.values[:, :2]).all() and np.isfinite(padded.values[:, 2:]).all()


def test_align_coarse_reprojects_a_grid_that_does_not_nest(ndvi, tmp_path):
    coarse = read_single_band(ndvi["coarse104"])
    fine = read_single_band(ndvi["fine104"])
    shifted = _write(tmp_path / "shifted.tif", (coarse.values * 1e4).astype(np.int16),
                     COARSE_TRANSFORM @ Affine.translation(0.1, 0), nodata=-3000, scale=1e-4)  # 24 m east
    aligned, k = align_coarse(read_single_band(shifted), fine)
    assert k == 1 and aligned.shape == (ROWS, COLS) and aligned.attrs["alignment"] == "reprojected (bilinear)"
    # bilinear between the coarse centres: inside the coarse pixel range of the field, mostly valid
    assert np.isfinite(aligned.values[:, 1:]).all()
    assert np.nanmin(aligned.values) >= coarse.values.min() - 1e-6
    assert np.nanmax(aligned.values) <= coarse.values.max() + 1e-6
    # a coarse gap stays a gap over the fine pixels whose centres fall in it, nowhere else
    holey = read_single_band(ndvi["coarse200_gap"]).assign_coords(x=coarse.x + 24)
    aligned, _ = align_coarse(holey, fine)
    gap = np.zeros((ROWS, COLS), bool)
    gap[16:32, 41:57] = True  # coarse rows 2-3 and cols 5-6 (x 1225 to 1705 m): fine centres 30 i + 16 in there
    np.testing.assert_array_equal(np.isnan(aligned.values[:, 1:]), gap[:, 1:])


def test_align_coarse_without_georeferencing_goes_by_shape(ndvi, tmp_path):
    fine = read_single_band(ndvi["fine104"])
    coarse = read_single_band(ndvi["coarse104"])
    bare = _write(tmp_path / "bare.tif", coarse.values, Affine.identity(), crs=None)
    aligned, k = align_coarse(read_single_band(bare), fine)
    assert k == K and "by shape" in aligned.attrs["alignment"]
    same = _write(tmp_path / "same.tif", fine.values, Affine.identity(), crs=None)
    aligned, k = align_coarse(read_single_band(same), fine)
    assert k == 1 and grid_of(aligned).affine == FINE_TRANSFORM
    odd = _write(tmp_path / "odd.tif", fine.values[:50, :50], Affine.identity(), crs=None)
    with pytest.raises(ValueError, match="by shape alone"):
        align_coarse(read_single_band(odd), fine)


def test_common_grid_takes_files_without_crs_by_shape(ndvi, yanco, tmp_path):
    landcover = read_single_band(ndvi["landcover"])
    bare = _write(tmp_path / "landcover_bare.tif", landcover.values.astype(np.uint8), Affine.identity(), crs=None)
    grid = common_grid([read_single_band(bare), read_single_band(ndvi["fine104"])], "--fine and --aux")
    assert grid == read_grid(ndvi["fine104"])
    with pytest.raises(ValueError, match=r"20160205.tif is 64 x 64 px.*landcover_bare.tif is 64 x 96 px, no georef"):
        common_grid([read_single_band(bare), read_single_band(yanco["fine0205"])], "--fine")


def test_files_without_crs_share_a_grid_only_where_their_transforms_allow(ndvi, tmp_path):
    """No CRS and no transform: taken to lie on the other grid; no CRS but a transform: it must be the other's."""
    values = read_single_band(ndvi["landcover"]).values.astype(np.uint8)
    fine = read_single_band(ndvi["fine104"])  # EPSG:32650, FINE_TRANSFORM
    same = _write(tmp_path / "same.tif", values, FINE_TRANSFORM, crs=None)
    moved = _write(tmp_path / "moved.tif", values, FINE_TRANSFORM * Affine.translation(1, 0), crs=None)
    moved_too = _write(tmp_path / "moved_too.tif", values, FINE_TRANSFORM * Affine.translation(1, 0), crs=None)
    assert common_grid([read_single_band(same), fine], "--fine and --aux") == read_grid(ndvi["fine104"])
    assert shares_grid(grid_of(read_single_band(moved)), grid_of(read_single_band(moved_too)))
    for other in (fine, read_single_band(same)):
        assert not shares_grid(grid_of(read_single_band(moved)), grid_of(other))
        with pytest.raises(ValueError, match=r"moved.tif is 64 x 96 px of 30 x 30, corner \(31, 1\), no CRS"):
            common_grid([other, read_single_band(moved)], "--fine and --aux")


def test_prediction_grid_for_s1(ndvi, yanco):
    coarse = read_single_band(ndvi["coarse344"])
    fine = read_grid(ndvi["fine344"])
    assert prediction_grid(coarse, trained_factor=K) == fine
    assert prediction_grid(coarse, factor=4).shape == (ROWS // 2, COLS // 2)
    record = {"crs": "EPSG:32650", "transform": list(FINE_TRANSFORM)[:6], "shape": [10, 10], "resolution": [30.0, 30.0]}
    assert prediction_grid(coarse, trained_grid=record) == fine
    lst = read_single_band(yanco["coarse0308"])
    assert prediction_grid(lst, trained_factor=1) == read_grid(yanco["fine0308"])


def test_write_prediction_is_atomic(tmp_path, ndvi, monkeypatch):
    import unique_xr.downscale.io as dsio

    grid = read_grid(ndvi["fine104"])
    target = tmp_path / "out.tif"
    good = xr.Dataset({"ndvi": (("y", "x"), np.ones(grid.shape, np.float32))})
    write_prediction(good, target, grid)
    before = _sha(target)
    bad = xr.Dataset({"ndvi": (("y", "x"), np.ones((3, 3), np.float32))})
    with pytest.raises(ValueError, match="shape"):
        write_prediction(bad, target, grid)

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(dsio.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_prediction(good.assign(ndvi=good.ndvi * 2), target, grid)
    assert _sha(target) == before and sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]
    with rasterio.open(target) as src:
        assert src.crs.to_epsg() == 32650 and src.transform == grid.affine and src.descriptions == ("mean",)


# ---------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------
def test_help_lists_fit_and_predict():
    result = _ok(_run("--help"))
    assert "fit" in result.stdout and "predict" in result.stdout


@needs_torch
def test_fit_s1_records_its_inputs(s1_model, ndvi):
    card = json.loads((s1_model / "card.json").read_text())
    assert card["scheme"] == "s1" and card["factor"] == K and card["pairs"] == 3
    inputs = card["inputs"]
    assert inputs["coarse"] == [str(ndvi[k]) for k in ("coarse104", "coarse200_gap", "coarse216")]
    assert inputs["fine"] == [str(ndvi[k]) for k in ("fine104", "fine200", "fine216")] and inputs["aux"] == []
    assert inputs["factors"] == [K, K, K] and all("nested" in a for a in inputs["alignment"])
    assert inputs["fine_grid"]["crs"] == "EPSG:32650" and inputs["fine_grid"]["shape"] == [ROWS, COLS]
    # fine NaN (clouds) is left out of training: fewer valid pixels than the three images hold
    assert card["valid_fine_pixels"] < 3 * ROWS * COLS


@needs_torch
def test_predict_s1_writes_the_fine_grid(s1_model, ndvi, tmp_path):
    out = tmp_path / "sub" / "pred.tif"
    _ok(_run("predict", "--model", s1_model, "--coarse", ndvi["coarse344"], "--out", out, "--steps", "2",
             "--members", "1"))
    with rasterio.open(out) as pred, rasterio.open(ndvi["fine344"]) as truth:
        assert (pred.count, pred.shape, pred.dtypes) == (1, truth.shape, ("float32",))
        assert "not the best estimate" in pred.tags()["estimate"]  # one draw, and the file says so
        assert pred.crs == truth.crs and pred.transform == truth.transform
        assert pred.descriptions == ("mean",) and np.isnan(pred.nodata)
        mean = pred.read(1)
    coarse = read_single_band(ndvi["coarse344"]).values
    assert np.isfinite(mean).all()
    # centred on the coarse field: its 8 x 8 block means follow MODIS
    blocks = mean.reshape(ROWS // K, K, COLS // K, K).mean(axis=(1, 3))
    assert abs(float(blocks.mean() - coarse.mean())) < 0.1
    assert not list(out.parent.glob(".*tmp"))
    # with --conserve every member, hence the mean, keeps each MODIS cell's value
    kept = tmp_path / "conserved.tif"
    _ok(_run("predict", "--model", s1_model, "--coarse", ndvi["coarse344"], "--out", kept, "--steps", "2",
             "--members", "2", "--conserve"))
    with rasterio.open(kept) as pred:
        conserved = pred.read(1)
    np.testing.assert_allclose(conserved.reshape(ROWS // K, K, COLS // K, K).mean(axis=(1, 3)), coarse, atol=1e-5)


@needs_torch
def test_predict_with_a_coarse_hole_is_nan_only_there(s1_model, ndvi, tmp_path):
    out = tmp_path / "gap.tif"
    _ok(_run("predict", "--model", s1_model, "--coarse", ndvi["coarse344_gap"], "--out", out, "--steps", "2"))
    with rasterio.open(out) as src:
        mean = src.read(1)
    hole = np.zeros((ROWS // K, COLS // K), bool)
    hole[3:5, 1:3] = True
    np.testing.assert_array_equal(np.isnan(mean), np.kron(hole, np.ones((K, K), bool)))


@needs_torch
def test_predict_s2_members_write_mean_spread_and_interval(s2_model, ndvi, tmp_path):
    card = json.loads((s2_model / "card.json").read_text())
    assert card["factor"] == 1 and card["inputs"]["alignment"] == ["reprojected (bilinear)"] * 2
    out = tmp_path / "members.tif"
    _ok(_run("predict", "--model", s2_model, "--coarse", ndvi["geo344"], "--aux", ndvi["landcover"], "--out", out,
             "--members", "3", "--steps", "2", "--seed", "1"))
    with rasterio.open(out) as pred, rasterio.open(ndvi["landcover"]) as lc:
        assert pred.count == 4 and pred.descriptions == ("mean", "spread", "lower", "upper")
        assert pred.crs == lc.crs and pred.transform == lc.transform and pred.shape == lc.shape
        mean, spread, lower, upper = pred.read()
    valid = np.isfinite(mean)
    assert valid.mean() > 0.9
    assert (spread[valid] > 0).all() and (lower[valid] < mean[valid]).all() and (mean[valid] < upper[valid]).all()


@needs_torch
def test_calibrate_then_predict_uses_the_calibrated_interval(s1_model, ndvi, tmp_path):
    """calibrate on a date the model never saw (344), then predict it: the interval is mean +- scale x spread."""
    import shutil

    model = tmp_path / "s1"
    shutil.copytree(s1_model, model)
    before = json.loads((model / "card.json").read_text())
    assert "interval" not in before
    result = _ok(_run("calibrate", "--model", model, "--coarse", ndvi["coarse344"], "--fine", ndvi["fine344"],
                      "--members", "3", "--steps", "2"))
    assert "x spread" in result.stdout and "uncalibrated interval covered" in result.stdout
    card = json.loads((model / "card.json").read_text())
    interval = card["interval"]
    assert interval["members"] == 3 and interval["steps"] == 2 and interval["pairs"] == 1 and interval["scale"] > 0
    out = tmp_path / "p.tif"
    _ok(_run("predict", "--model", model, "--coarse", ndvi["coarse344"], "--out", out, "--members", "3",
             "--steps", "2"))
    with rasterio.open(out) as pred, rasterio.open(ndvi["fine344"]) as truth_src:
        mean, spread, lower, upper = pred.read()
        truth = truth_src.read(1, masked=True).astype(np.float64).filled(np.nan) * truth_src.scales[0]
    ok = np.isfinite(mean) & np.isfinite(truth)
    np.testing.assert_allclose((upper - mean)[ok], interval["scale"] * spread[ok], rtol=1e-4, atol=1e-6)
    inside = (truth[ok] >= lower[ok]) & (truth[ok] <= upper[ok])
    assert inside.mean() >= 0.9  # the same date, members, steps and seed as the calibration
    bad = _run("calibrate", "--model", model, "--coarse", ndvi["coarse344"], ndvi["coarse216"], "--fine",
               ndvi["fine344"])
    assert bad.exit_code == 1 and "coarse i with fine i" in bad.output


@needs_torch
def test_fit_texture_stores_the_layer_and_predict_uses_it(ndvi, yanco, tmp_path):
    from unique_xr.downscale.texture import texture_prior

    model = tmp_path / "s2t"
    fines = [ndvi["fine104"], ndvi["fine200"], ndvi["fine216"]]
    _ok(_run("fit", "--coarse", ndvi["coarse104"], ndvi["coarse200"], ndvi["coarse216"], "--fine", *fines,
             "--aux", ndvi["landcover"], "--texture", "--scheme", "s2", "--out", model, *QUICK))
    card = json.loads((model / "card.json").read_text())
    assert card["inputs"]["texture"] == "texture.tif"
    assert [a["name"] for a in card["normalisation"]["aux"]] == ["landcover", "texture"]
    stored = read_single_band(model / "texture.tif")
    assert grid_of(stored) == grid_of(read_single_band(ndvi["landcover"]))
    expected = texture_prior([read_single_band(f) for f in fines], K)
    np.testing.assert_allclose(stored.values, expected.values, rtol=1e-6, equal_nan=True)
    out = tmp_path / "p.tif"
    _ok(_run("predict", "--model", model, "--coarse", ndvi["coarse344"], "--aux", ndvi["landcover"], "--out", out,
             "--steps", "2"))
    with rasterio.open(out) as pred:
        assert pred.shape == (ROWS, COLS) and np.isfinite(pred.read(1)).mean() > 0.9
    missing = _run("predict", "--model", model, "--coarse", ndvi["coarse344"], "--out", tmp_path / "q.tif")
    assert missing.exit_code == 1 and "['landcover']" in missing.stderr and "texture.tif" in missing.stderr
    (model / "texture.tif").unlink()
    gone = _run("predict", "--model", model, "--coarse", ndvi["coarse344"], "--aux", ndvi["landcover"],
                "--out", tmp_path / "q.tif")
    assert gone.exit_code == 1 and "is missing" in gone.stderr and not (tmp_path / "q.tif").exists()
    for args, message in (
            (["--coarse", ndvi["coarse104"], ndvi["coarse200"], "--fine", *fines[:2], "--scheme", "s1"], "--scheme s2"),
            (["--coarse", yanco["coarse0205"], yanco["coarse0308"], "--fine", yanco["fine0205"], yanco["fine0308"],
              "--scheme", "s2"], "nested"),
            (["--coarse", ndvi["coarse104"], "--fine", fines[0], "--scheme", "s2"], "at least two pairs")):
        result = _run("fit", *args, "--texture", "--out", tmp_path / "bad", *QUICK)
        assert result.exit_code == 1 and message in result.stderr, (args, result.stderr)
        assert not (tmp_path / "bad").exists()


@needs_torch
def test_same_grid_pair_in_lonlat(yanco, tmp_path):
    model = tmp_path / "lst"
    _ok(_run("fit", "--coarse", yanco["coarse0205"], "--fine", yanco["fine0205"], "--scheme", "s1", "--out", model,
             *QUICK))
    card = json.loads((model / "card.json").read_text())
    assert card["factor"] == 1 and card["inputs"]["alignment"] == ["same grid"]
    assert card["valid_fine_pixels"] == 64 * 64 - 10 * 15  # the cloud block is not trained on
    out = tmp_path / "lst.tif"
    _ok(_run("predict", "--model", model, "--coarse", yanco["coarse0308"], "--out", out, "--steps", "2"))
    with rasterio.open(out) as pred, rasterio.open(yanco["fine0308"]) as truth:
        assert pred.crs.to_epsg() == 4326 and pred.transform == truth.transform and pred.shape == truth.shape
        mean = pred.read(1)
    assert np.isfinite(mean).all() and 280 < float(mean.mean()) < 330  # kelvin


@needs_torch
def test_resume_completes_an_interrupted_fit(s1_model, ndvi, tmp_path):
    args = ["--coarse", ndvi["coarse104"], ndvi["coarse200_gap"], ndvi["coarse216"],
            "--fine", ndvi["fine104"], ndvi["fine200"], ndvi["fine216"], "--scheme", "s1", *QUICK]
    broken = tmp_path / "broken"
    shutil.copytree(s1_model, broken)
    for name in ("weights.pt", "card.json"):  # as if killed after the last checkpoint
        (broken / name).unlink()
    _ok(_run("fit", *args, "--out", broken, "--resume"))
    assert _sha(broken / "weights.pt") == _sha(s1_model / "weights.pt")
    assert json.loads((broken / "card.json").read_text())["inputs"]["factors"] == [K, K, K]
    result = _run("fit", *args, "--out", tmp_path / "empty", "--resume")
    assert result.exit_code == 1 and "no checkpoint" in result.stderr


def _fit_error_cases(ndvi, yanco, out):
    c, f = ndvi["coarse104"], ndvi["fine104"]
    base = ["--out", out, *QUICK]
    return {
        "pairs": (["--coarse", c, ndvi["coarse200"], "--fine", f, "--scheme", "s1"], "2 coarse and 1 fine"),
        "pairs, flag repeated": (["--coarse", c, "--fine", f, "--coarse", c, "--scheme", "s1"], "2 coarse and 1 fine"),
        "missing": (["--coarse", "nowhere.tif", "--fine", f, "--scheme", "s1"], "nowhere.tif: no such file"),
        "s2 without aux": (["--coarse", c, "--fine", f, "--scheme", "s2"], "--aux"),
        "s1 with aux": (["--coarse", c, "--fine", f, "--aux", ndvi["landcover"], "--scheme", "s1"], "--scheme s2"),
        "fine grids": (["--coarse", c, c, "--fine", f, yanco["fine0205"], "--scheme", "s1"], "share one grid"),
        "multiband": (["--coarse", ndvi["multiband"], "--fine", f, "--scheme", "s1"], "--band"),
        "aux grid": (["--coarse", c, "--fine", f, "--aux", yanco["fine0205"], "--scheme", "s2"], "share one grid"),
        "no overlap": (["--coarse", yanco["coarse0205"], "--fine", f, "--scheme", "s1"], "no valid pixel"),
    }, base


@pytest.mark.parametrize("case", ["pairs", "pairs, flag repeated", "missing", "s2 without aux", "s1 with aux",
                                  "fine grids", "multiband", "aux grid", "no overlap"])
def test_fit_errors_exit_1_with_a_message(ndvi, yanco, case, tmp_path):
    cases, base = _fit_error_cases(ndvi, yanco, tmp_path / "model")
    args, message = cases[case]
    result = _run("fit", *args, *base)
    assert result.exit_code == 1, result.stdout
    assert result.stderr.startswith("error:") and message in result.stderr
    assert not (tmp_path / "model").exists()


@needs_torch
def test_predict_errors_exit_1_with_a_message(s1_model, s2_model, ndvi, tmp_path):
    out = tmp_path / "never.tif"
    cases = [
        (["--model", tmp_path / "nothing", "--coarse", ndvi["coarse344"]], "not a downscaling model folder"),
        (["--model", s2_model, "--coarse", ndvi["geo344"]], "1 auxiliary layer(s) ['landcover']; got 0"),
        (["--model", s1_model, "--coarse", ndvi["geo344"], "--like", ndvi["fine344"], "--conserve"], "conserve"),
        (["--model", s1_model, "--coarse", ndvi["multiband"]], "--band"),
    ]
    for args, message in cases:
        result = _run("predict", *args, "--out", out, "--steps", "1")
        assert result.exit_code == 1 and message in result.stderr, (args, result.stderr)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# scheme s3 (fusion) and distilled samplers on the command line
# ---------------------------------------------------------------------------------------------
S3_DATES = {104: "2015-04-14", 200: "2015-07-19", 216: "2015-08-04", 344: "2015-12-10"}


@pytest.fixture(scope="module")
def s3_model(ndvi, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "s3"
    _ok(_run("fit", "--coarse", ndvi["coarse104"], ndvi["coarse200"], ndvi["coarse216"],
             "--fine", ndvi["fine104"], ndvi["fine200"], ndvi["fine216"], "--aux", ndvi["landcover"],
             "--dates", S3_DATES[104], S3_DATES[200], S3_DATES[216], "--scheme", "s3", "--out", out, *QUICK))
    return out


@needs_torch
def test_fit_s3_needs_dates_one_per_pair(ndvi, tmp_path):
    result = _run("fit", "--coarse", ndvi["coarse104"], ndvi["coarse200"], "--fine", ndvi["fine104"], ndvi["fine200"],
                  "--scheme", "s3", "--out", tmp_path / "m", *QUICK)
    assert result.exit_code == 1 and "--dates" in result.stderr
    result = _run("fit", "--coarse", ndvi["coarse104"], ndvi["coarse200"], "--fine", ndvi["fine104"], ndvi["fine200"],
                  "--dates", S3_DATES[104], "--scheme", "s3", "--out", tmp_path / "m", *QUICK)
    assert result.exit_code == 1 and "one day per pair" in result.stderr
    assert not (tmp_path / "m" / "weights.pt").exists()


@needs_torch
def test_predict_s3_with_and_without_prior_coarse(s3_model, ndvi, tmp_path):
    card = json.loads((s3_model / "card.json").read_text())
    assert card["scheme"] == "s3" and card["dates"] == [S3_DATES[d] for d in (104, 200, 216)]
    base = ["predict", "--model", s3_model, "--coarse", ndvi["coarse344"], "--aux", ndvi["landcover"],
            "--date", S3_DATES[344], "--steps", "2", "--members", "2"]
    implied, observed = tmp_path / "implied.tif", tmp_path / "observed.tif"
    _ok(_run(*base, "--prior-fine", ndvi["fine216"], "--prior-date", S3_DATES[216], "--out", implied))
    _ok(_run(*base, "--prior-fine", ndvi["fine216"], "--prior-date", S3_DATES[216], "--prior-coarse",
             ndvi["coarse216"], "--out", observed))
    none = tmp_path / "none.tif"
    _ok(_run(*base, "--out", none))
    bands = {}
    for name, path in (("implied", implied), ("observed", observed), ("none", none)):
        with rasterio.open(path) as src:
            assert src.count == 4 and src.tags()["date"] == S3_DATES[344]
            bands[name] = src.read(1)
            assert np.isfinite(bands[name]).all()
    # the prior reaches the network, and so does which coarse field of its day is used (a 3-step model: small)
    assert np.abs(bands["implied"] - bands["none"]).max() > 1e-6
    assert np.abs(bands["implied"] - bands["observed"]).max() > 1e-7
    # the S3 options are checked before anything runs
    result = _run("predict", "--model", s3_model, "--coarse", ndvi["coarse344"], "--aux", ndvi["landcover"],
                  "--steps", "2", "--out", tmp_path / "x.tif")
    assert result.exit_code == 1 and "--date" in result.stderr
    result = _run(*base, "--prior-fine", ndvi["fine216"], "--prior-date", S3_DATES[344], "--out", tmp_path / "y.tif")
    assert result.exit_code == 1 and "not before" in result.stderr
    assert not (tmp_path / "x.tif").exists() and not (tmp_path / "y.tif").exists()


@needs_torch
def test_s3_prior_must_lie_on_the_like_or_factor_grid(ndvi, tmp_path):
    """Without auxiliaries the output grid comes from --like or --factor; a prior fine image on another grid
    (here the same size, moved by one fine pixel) is refused, not read as if it lay on the output grid."""
    model = tmp_path / "s3_plain"
    _ok(_run("fit", "--coarse", ndvi["coarse104"], ndvi["coarse216"], "--fine", ndvi["fine104"], ndvi["fine216"],
             "--dates", S3_DATES[104], S3_DATES[216], "--scheme", "s3", "--out", model, *QUICK))
    with rasterio.open(ndvi["fine216"]) as src:
        values = src.read(1)
    moved = _write(tmp_path / "moved.tif", values, FINE_TRANSFORM * Affine.translation(1, 0), nodata=-9999, scale=1e-4)
    base = ["predict", "--model", model, "--coarse", ndvi["coarse344"], "--date", S3_DATES[344],
            "--prior-date", S3_DATES[216], "--steps", "1", "--members", "1"]
    for grid in (["--like", ndvi["fine344"]], ["--factor", "8"]):
        result = _run(*base, *grid, "--prior-fine", moved, "--out", tmp_path / "bad.tif")
        assert result.exit_code == 1 and "--prior-fine is 64 x 96 px of 30 x 30, corner (31, 1)" in result.stderr, \
            result.stderr
        assert not (tmp_path / "bad.tif").exists()
        _ok(_run(*base, *grid, "--prior-fine", ndvi["fine216"], "--out", tmp_path / "good.tif"))


@needs_torch
def test_s1_predict_refuses_s3_options(s1_model, ndvi, tmp_path):
    result = _run("predict", "--model", s1_model, "--coarse", ndvi["coarse344"], "--out", tmp_path / "p.tif",
                  "--date", "2015-12-10")
    assert result.exit_code == 1 and "scheme s1" in result.stderr


@needs_torch
def test_distill_then_predict_with_the_distilled_sampler(s3_model, ndvi, tmp_path):
    out = tmp_path / "distilled"
    result = _ok(_run("distill", "--model", s3_model, "--steps", "2", "--start", "8", "--round-steps", "3",
                      "--out", out, "--no-progress"))
    assert "distilled samplers of [2, 4]" in result.stdout
    card = json.loads((out / "card.json").read_text())
    assert card["distilled"]["steps"] == [2, 4] and card["distilled"]["from_steps"] == 8
    pred = tmp_path / "p.tif"
    result = _ok(_run("predict", "--model", out, "--coarse", ndvi["coarse344"], "--aux", ndvi["landcover"],
                      "--date", S3_DATES[344], "--prior-fine", ndvi["fine216"], "--prior-date", S3_DATES[216],
                      "--steps", "2", "--members", "2", "--out", pred))
    assert "sampler distilled, 2 evaluations" in result.stdout
    with rasterio.open(pred) as src:
        assert src.tags()["sampler"] == "distilled"
    result = _run("distill", "--model", s3_model, "--steps", "3", "--out", tmp_path / "bad", "--no-progress")
    assert result.exit_code == 1 and "power of two" in result.stderr
