"""Zarr v3 cache: round trips, chunk alignment, atomic writes, clear errors, laziness."""

from __future__ import annotations

import json

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from unique_xr.errors import CacheError
from unique_xr.grid import GridSpec
from unique_xr.load.cache import COMPLETE_ATTR, open_zarr, to_zarr
from unique_xr.schema import cf_attrs
from unique_xr.testing import raise_if_dask_computes

GRID = GridSpec(crs="EPSG:32633", resolution=30.0, bounds=(500000, 4000000, 500000 + 30 * 40, 4000000 + 30 * 24))


def make_cube(backend: str = "numpy", *, chunks=None) -> xr.Dataset:
    rng = np.random.default_rng(7)
    ny, nx = GRID.shape
    red = rng.uniform(0, 0.3, (5, ny, nx)).astype("float32")
    red[1, 3:6, 4:9] = np.nan
    clear = (rng.uniform(size=(5, ny, nx)) > 0.2).astype("uint8")
    ds = xr.Dataset(
        {
            "red": (("time", "y", "x"), red, cf_attrs("red")),
            "clear": (("time", "y", "x"), clear, cf_attrs("clear")),
        },
        coords={"time": pd.date_range("2021-06-01", periods=5, freq="16D")},
        attrs={"title": "test cube", "history": "2026-01-01T00:00:00Z made by hand"},
    )
    ds = GRID.attach(ds)
    if backend == "dask":
        ds = ds.chunk(chunks or {"time": 2, "y": 12, "x": 16})
    return ds


def test_round_trip_equal(tmp_path, backend):
    ds = make_cube(backend)
    before = ds.copy(deep=True)
    path = to_zarr(ds, tmp_path / "cube.zarr", attrs={"stage": "masked"})
    assert path == (tmp_path / "cube.zarr").absolute()
    back = open_zarr(path)
    xr.testing.assert_equal(back, ds)  # values, dims, coords, NaN
    for name in ds.variables:
        assert back[name].dtype == ds[name].dtype, name
        assert back[name].attrs == ds[name].attrs, name
    assert np.isnan(back["red"].values[1, 3:6, 4:9]).all()
    assert back.attrs["title"] == "test cube" and back.attrs["stage"] == "masked"
    assert back.attrs["Conventions"] == "CF-1.10"
    assert back.attrs["unique_xr_version"]
    lines = back.attrs["history"].splitlines()
    assert lines[0] == "2026-01-01T00:00:00Z made by hand" and "to_zarr cube.zarr" in lines[1]
    assert GridSpec.from_dict(json.loads(back.attrs["unique_xr_grid"])) == GRID
    assert GridSpec.from_xarray(back) == GRID  # spatial_ref came back as a coordinate
    assert back["red"].attrs["grid_mapping"] == "spatial_ref"
    assert COMPLETE_ATTR not in back.attrs
    xr.testing.assert_identical(ds, before)  # the input is not modified


def test_encoding_chunks_equal_dask_chunks_and_irregular_are_regularised(tmp_path):
    ds = make_cube("dask", chunks={"time": 2, "y": 12, "x": 16})
    ds["red"] = ds["red"].chunk({"x": (16, 8, 16)})  # irregular along x
    path = to_zarr(ds, tmp_path / "c.zarr")
    import zarr

    group = zarr.open_group(path, mode="r")
    assert group["red"].chunks == (2, 12, 16)
    assert group["clear"].chunks == (2, 12, 16)
    back = open_zarr(path)
    assert back["red"].chunks == ((2, 2, 1), (12, 12), (16, 16, 8))
    assert back["red"].encoding["chunks"] == (2, 12, 16)
    # explicit chunks win
    path2 = to_zarr(ds, tmp_path / "c2.zarr", chunks={"time": 5, "y": 24, "x": 8})
    assert zarr.open_group(path2, mode="r")["red"].chunks == (5, 24, 8)


def test_static_cube_and_plain_xarray_can_read_zarr_v3(tmp_path):
    static = GRID.attach(xr.Dataset({"elevation": (("y", "x"), np.arange(24 * 40, dtype="float32").reshape(24, 40), cf_attrs("elevation"))}))
    path = to_zarr(static, tmp_path / "static.zarr")
    import zarr

    assert zarr.open_group(path, mode="r").metadata.zarr_format == 3
    assert (path / "zarr.json").is_file() and not (path / ".zgroup").exists()
    plain = xr.open_zarr(path, zarr_format=3, consolidated=False)
    np.testing.assert_array_equal(plain["elevation"].values, static["elevation"].values)
    mark = plain.attrs[COMPLETE_ATTR]  # plain readers see the mark, with what the finished store holds
    assert mark["format"] == 1 and mark["run"] is None
    assert mark["arrays"]["elevation"]["chunks"] >= 1 and mark["arrays"]["elevation"]["bytes"] > 0


def test_failing_task_midway_leaves_nothing(tmp_path):
    ds = make_cube("dask")

    def explode(block, block_info=None):
        if block_info[0]["chunk-location"] == (1, 1, 1):
            raise RuntimeError("boom in one chunk")
        return block

    ds["red"] = ds["red"].copy(data=dsa.map_blocks(explode, ds["red"].data, dtype="float32", meta=np.array((), "float32")))
    target = tmp_path / "cube.zarr"
    with pytest.raises(RuntimeError, match="boom in one chunk"):
        to_zarr(ds, target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # no partial/temporary directory left either


def test_failing_overwrite_keeps_the_previous_store(tmp_path):
    target = to_zarr(make_cube(), tmp_path / "cube.zarr")
    bad = make_cube("dask")
    bad["red"] = bad["red"].copy(data=bad["red"].data.map_blocks(lambda b: 1 / 0, dtype="float32"))
    with pytest.raises(ZeroDivisionError):
        to_zarr(bad, target, overwrite=True)
    xr.testing.assert_equal(open_zarr(target), make_cube())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube.zarr"]


def test_mode_and_overwrite(tmp_path):
    target = to_zarr(make_cube(), tmp_path / "cube.zarr")
    with pytest.raises(CacheError, match="overwrite=True"):
        to_zarr(make_cube(), target)
    changed = make_cube()
    changed["red"] = changed["red"] + 1
    to_zarr(changed, target, overwrite=True)
    np.testing.assert_allclose(open_zarr(target)["red"].values, changed["red"].values)
    to_zarr(make_cube(), target, mode="w")
    xr.testing.assert_equal(open_zarr(target), make_cube())
    not_zarr = tmp_path / "my_thesis"
    not_zarr.mkdir()
    (not_zarr / "chapter1.tex").write_text("precious")
    with pytest.raises(CacheError, match="not a Zarr store"):
        to_zarr(make_cube(), not_zarr, overwrite=True)
    assert (not_zarr / "chapter1.tex").read_text() == "precious"
    with pytest.raises(ValueError, match="mode"):
        to_zarr(make_cube(), tmp_path / "x.zarr", mode="a")


def test_open_missing_or_incomplete_is_a_cache_error(tmp_path):
    with pytest.raises(CacheError, match=r"No Zarr cache at .*missing\.zarr.*to_zarr"):
        open_zarr(tmp_path / "missing.zarr")
    # a store written by someone else (or an interrupted write) lacks the completion mark
    make_cube().to_zarr(tmp_path / "foreign.zarr", zarr_format=3, consolidated=False)
    with pytest.raises(CacheError, match="incomplete"):
        open_zarr(tmp_path / "foreign.zarr")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CacheError, match="not a Zarr v3 store"):
        open_zarr(tmp_path / "empty")


def test_validates_the_cube(tmp_path):
    bad = xr.Dataset({"red": (("x", "y"), np.zeros((3, 4), "float32"))})
    with pytest.raises(ValueError, match="end in"):
        to_zarr(bad, tmp_path / "bad.zarr")
    assert not (tmp_path / "bad.zarr").exists()
    with pytest.raises(CacheError, match="local path"):
        to_zarr(make_cube(), "s3://bucket/cube.zarr")


def test_write_and_open_are_lazy(tmp_path):
    ds = make_cube("dask")
    path = to_zarr(ds, tmp_path / "cube.zarr")
    with raise_if_dask_computes():
        back = open_zarr(path)
        total = back["red"].sum()
    assert back["red"].chunks is not None
    assert float(total) == pytest.approx(float(ds["red"].sum()), rel=1e-6)
    # the write itself computes the graph exactly once
    with raise_if_dask_computes(max_computes=1):
        to_zarr(ds, tmp_path / "again.zarr")
