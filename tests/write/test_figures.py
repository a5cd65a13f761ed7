"""The cube figure: a PNG for a day, a period and the whole span; clear errors outside the cube."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from unique_xr.errors import SpecError
from unique_xr.testing import raise_if_dask_computes
from unique_xr.write.figures import (
    _coarsened,
    _length_label,
    cube_plot,
    scale_bar_length,
)

# the synthetic cube of the summary tests (no __init__.py here: test folders are not packages)
_spec = importlib.util.spec_from_file_location("_summary_cube", Path(__file__).with_name("test_summary.py"))
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
make_cube = _module.make_cube

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def cube():
    return make_cube(seed=1)


@pytest.mark.parametrize("when", [{"day": "2020-02-25"}, {"period": ("2020-03-01", "2020-03-05")}, {}],
                         ids=["day", "period", "default"])
def test_writes_a_png(cube, tmp_path, when):
    path = cube_plot(cube, tmp_path / "cube.png", title="Synthetic cube", **when)
    assert path == tmp_path / "cube.png"
    assert path.read_bytes()[:8] == PNG
    assert path.stat().st_size > 10_000


def test_without_land_cover_draws_the_region_only(cube, tmp_path):
    path = cube_plot(cube.drop_vars("land_cover"), tmp_path / "region.png")
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000


def test_day_outside_the_cube_names_the_range(cube, tmp_path):
    with pytest.raises(SpecError, match=r"2021-01-01.*2020-02-20 to 2020-03-10"):
        cube_plot(cube, tmp_path / "x.png", day="2021-01-01")
    with pytest.raises(SpecError, match=r"2020-02-20 to 2020-03-10"):
        cube_plot(cube, tmp_path / "x.png", period=("2020-03-01", "2020-04-01"))
    with pytest.raises(SpecError, match="not both"):
        cube_plot(cube, tmp_path / "x.png", day="2020-03-01", period=("2020-03-01", "2020-03-02"))
    assert not (tmp_path / "x.png").exists()


def test_map_is_coarsened_lazily_before_computing(cube):
    big = cube["gpp"].isel(time=0).pad(y=(0, 2100 - cube.sizes["y"]), x=(0, 900 - cube.sizes["x"]))
    with raise_if_dask_computes():
        small, factor = _coarsened(big)
    assert factor == 3 and small.sizes == {"y": 700, "x": 300}
    assert _coarsened(cube["gpp"].isel(time=0))[1] == 1


@pytest.mark.parametrize(("width", "length", "label"),
                         [(1920.0, 200.0, "200 m"), (48_000.0, 5000.0, "5 km"), (1_000_000.0, 200_000.0, "200 km"),
                          (7.0, 1.0, "1 m"), (26_000.0, 5000.0, "5 km"), (9_990.0, 1000.0, "1 km")])
def test_scale_bar_is_a_round_length(width, length, label):
    assert scale_bar_length(width) == pytest.approx(length)
    assert _length_label(scale_bar_length(width)) == label
    assert np.log10(length / (width / 5)) <= 0
