"""The GeoTIFF file workflow as Python functions (:mod:`unique_xr.downscale.files`), without the command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import rasterio
from affine import Affine

from unique_xr.downscale.conditioning import DownscaleInputError
from unique_xr.downscale.files import (
    calibrate_from_files,
    fit_from_files,
    predict_from_files,
    read_band,
)

from .conftest import paired_images

K = 8


def _write(path, values, transform):
    profile = {"driver": "GTiff", "width": values.shape[1], "height": values.shape[0], "count": 1,
               "dtype": "float32", "crs": "EPSG:32650", "transform": transform}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.asarray(values, "float32")[None])
    return path


@pytest.fixture(scope="module")
def tif_pairs(tmp_path_factory):
    """Three coarse (240 m, nested by 8) / fine (30 m) GeoTIFF pairs and a class map on the fine grid."""
    folder = tmp_path_factory.mktemp("pairs")
    coarse, fine, lc = paired_images(n=3, shape=(48, 64))
    fine_t = Affine(30.0, 0, 500_000.0, 0, -30.0, 4_000_000.0)
    coarse_t = Affine(30.0 * K, 0, 500_000.0, 0, -30.0 * K, 4_000_000.0)
    c = [_write(folder / f"coarse_{i}.tif", a.values, coarse_t) for i, a in enumerate(coarse)]
    f = [_write(folder / f"fine_{i}.tif", a.values, fine_t) for i, a in enumerate(fine)]
    return c, f, _write(folder / "landcover.tif", lc.values, fine_t)


def test_fit_predict_calibrate_from_files(tif_pairs, tmp_path):
    coarse, fine, lc = tif_pairs
    model = fit_from_files(coarse[:2], fine[:2], aux=[lc], scheme="s2", out=tmp_path / "model", preset="quick",
                           steps=3)
    assert model.card["inputs"]["factors"] == [K, K] and (tmp_path / "model" / "card.json").is_file()
    grid, ds = predict_from_files(tmp_path / "model", coarse[2], aux=[lc], out=tmp_path / "pred.tif", members=2,
                                  steps=1)
    assert grid.shape == read_band(fine[2], None).shape and ds.attrs["downscaling_alignment"]
    with rasterio.open(tmp_path / "pred.tif") as src:
        assert src.count == len(ds.data_vars) and src.shape == grid.shape
    calibrated = calibrate_from_files(tmp_path / "model", coarse[2:], fine[2:], aux=[lc], out=tmp_path / "cal",
                                      members=2, steps=1)
    assert calibrated.interval["pairs"] == 1 and (tmp_path / "cal" / "card.json").is_file()


def test_file_workflow_refuses_bad_input_before_training(tif_pairs, tmp_path):
    coarse, fine, _ = tif_pairs
    with pytest.raises(DownscaleInputError, match="Scheme s2 conditions on auxiliary layers"):
        fit_from_files(coarse, fine, scheme="s2", out=tmp_path / "m")
    with pytest.raises(DownscaleInputError, match="as many --coarse as --fine"):
        fit_from_files(coarse, fine[:1], scheme="s1", out=tmp_path / "m")
    with pytest.raises(DownscaleInputError, match="needs --scheme s2"):
        fit_from_files(coarse, fine, scheme="s1", out=tmp_path / "m", texture=True)
    assert not (tmp_path / "m").exists()


def test_the_file_workflow_needs_no_command_line_library():
    code = "import sys, unique_xr.downscale.files; print('typer' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert run.stdout.strip() == "False"
