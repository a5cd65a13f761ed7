"""Output STAC and exports of a real (small) Icechunk cube: core STAC schemas, datacube fields, CF 1.10, values, files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import pytest
import xarray as xr

from unique_xr.errors import CubeStoreError, OutputPathError, SpecError
from unique_xr.grid import GridSpec
from unique_xr.search.collections import ESA_WORLDCOVER_CLASSES
from unique_xr.write import export as export_module
from unique_xr.write.cf import cube_template, global_attrs
from unique_xr.write.export import FORMATS, export_cube
from unique_xr.write.stac import write_stac
from unique_xr.write.store import CubeStore, open_cube

GRID = GridSpec(crs="EPSG:32652", resolution=30.0, bounds=(350_010.0, 4_150_020.0, 350_010.0 + 64 * 30, 4_150_020.0 + 64 * 30))
DAYS = pd.date_range("2022-12-30", "2023-01-03")  # spans a year end: two yearly Items
CLASSES = {code: ESA_WORLDCOVER_CLASSES[code] for code in (10, 30, 40, 80)}
UNIT = "y0-x0-d0"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def cube(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """A committed one-unit cube (gpp with NaN holes, gpp_spread, land cover) and the arrays written into it."""
    import dask
    import dask.array as dsa
    from icechunk.dask import store_dask

    out = tmp_path_factory.mktemp("job")
    attrs = global_attrs(title="unique_xr test cube", institution="unique_xr tests", references="EGU26-4160",
                         comment=None, spec_json="{}", job_token="t", model_tokens={"gpp_m": "m1"},
                         input_items={"modis": ["a", "b"]}, version="0.1.0", extra={"demo": True})
    template = cube_template(GRID, DAYS, members=2, chunk=32, time_chunk=1, classes=CLASSES, attrs=attrs)
    store = CubeStore.create(out, template, metadata={"job_token": "t", "job_spec": "{}", "units_total": 1})
    rng = np.random.default_rng(16)
    values = {"gpp": rng.uniform(0, 12, (len(DAYS), 64, 64)).astype("float32"),
              "gpp_spread": rng.uniform(0, 1, (len(DAYS), 64, 64)).astype("float32"),
              "land_cover": rng.choice(list(CLASSES), (64, 64)).astype("uint8")}
    values["gpp"][:, :5, :7] = np.nan  # outside the region
    values["gpp"][2, 40:, 40:] = np.nan  # a gap on one day
    regions = {name: tuple(slice(0, n) for n in arr.shape) for name, arr in values.items()}
    write, targets = store.begin_unit(list(values), regions)
    sources = [dsa.from_array(arr, chunks=(1, 32, 32) if arr.ndim == 3 else (32, 32)) for arr in values.values()]
    with dask.config.set(scheduler="sync"):
        fork = store_dask(sources=sources, targets=targets, regions=list(regions.values()))
    store.commit_unit(write, [fork], UNIT, metadata={"job_token": "t", "units_total": 1})
    return out, values


def assert_cube_equal(actual: xr.Dataset, expected: xr.Dataset) -> None:
    """Every data variable equal, value for value (NaN equal), with the same dims and coordinates."""
    assert set(actual.data_vars) == set(expected.data_vars)
    for name in expected.data_vars:
        xr.testing.assert_equal(actual[name].drop_vars("spatial_ref"), expected[name].drop_vars("spatial_ref"))


# ---------------------------------------------------------------------------- STAC
def rustac_validate(path: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """``rustac validate`` of ``path`` against the core STAC schemas, offline.

    rustac bundles the core schemas but fetches extension schemas from the internet, so the
    copy validated here lists no ``stac_extensions``; the extension fields are checked by reading
    them back with pystac's extensions instead.
    """
    value = json.loads(path.read_text())
    value.pop("stac_extensions", None)
    core = tmp_path / f"core-{path.name}"
    core.write_text(json.dumps(value))
    return subprocess.run([str(BIN / "rustac"), "validate", str(core)], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def stac(cube) -> Path:
    return write_stac(cube[0])


def test_stac_files_validate_against_the_core_schemas(stac, tmp_path):
    files = [stac, *sorted(stac.parent.glob("*/*.json"))]
    assert [p.stem for p in files[1:]] == ["unique-xr-gpp-t-2022", "unique-xr-gpp-t-2023"]
    for path in files:
        run = rustac_validate(path, tmp_path)
        assert run.returncode == 0, f"{path}: {run.stdout}{run.stderr}"
    # the validator does reject bad STAC offline: an Item with neither datetime nor a start
    item = json.loads(files[1].read_text())
    del item["properties"]["start_datetime"]
    (tmp_path / "broken.json").write_text(json.dumps(item))
    run = rustac_validate(tmp_path / "broken.json", tmp_path)
    assert run.returncode != 0 and "start_datetime" in run.stdout


def test_stac_collection_reads_back_with_the_datacube_and_projection_extensions(cube, stac):
    from pystac.extensions.datacube import (
        DatacubeExtension,
        DimensionType,
        VariableType,
    )
    from pystac.extensions.projection import ProjectionExtension

    collection = pystac.Collection.from_file(str(stac))
    dc = DatacubeExtension.ext(collection)
    assert set(dc.dimensions) == {"x", "y", "time"}
    x, y, time = dc.dimensions["x"], dc.dimensions["y"], dc.dimensions["time"]
    assert x.dim_type == DimensionType.SPATIAL and x.extent == [GRID.bounds[0], GRID.bounds[2]] and x.step == 30.0
    assert y.extent == [GRID.bounds[1], GRID.bounds[3]] and y.reference_system == 32652
    assert time.dim_type == DimensionType.TEMPORAL and time.step == "P1D"
    assert time.extent == ["2022-12-30T00:00:00Z", "2023-01-03T23:59:59Z"]
    assert set(dc.variables) == {"gpp", "gpp_spread", "land_cover"}
    assert dc.variables["gpp"].var_type == VariableType.DATA and dc.variables["gpp"].unit == "g m-2 d-1"
    assert dc.variables["gpp"].dimensions == ["time", "y", "x"]
    assert dc.variables["land_cover"].var_type == VariableType.AUXILIARY
    assert dc.variables["land_cover"].dimensions == ["y", "x"]
    assert dc.variables["land_cover"].values == sorted(CLASSES)
    assert ProjectionExtension.summaries(collection).code == ["EPSG:32652"]
    assert collection.license == "other"
    assert [p.roles for p in collection.providers][-1] == ["processor"]
    assert collection.extra_fields["unique_xr:job_token"] == "t"
    assert collection.extra_fields["unique_xr:units_done"] == [UNIT]
    assert collection.extra_fields["unique_xr:units_total"] == 1
    store = (cube[0] / "cube.icechunk").resolve()
    assert collection.assets["cube"].href == "../cube.icechunk"
    west, south, east, north = collection.extent.spatial.bboxes[0]
    assert np.allclose([west, south, east, north], GRID.bounds_latlon)

    items = {item.id: item for item in collection.get_items()}
    years = {i.id[-4:]: (i.properties["start_datetime"], i.properties["end_datetime"]) for i in items.values()}
    assert years == {"2022": ("2022-12-30T00:00:00Z", "2022-12-31T23:59:59Z"),
                     "2023": ("2023-01-01T00:00:00Z", "2023-01-03T23:59:59Z")}
    for item in items.values():
        proj = ProjectionExtension.ext(item)
        assert proj.code == "EPSG:32652" and proj.shape == [64, 64] and proj.bbox == list(GRID.bounds)
        assert proj.transform == [30.0, 0.0, GRID.bounds[0], 0.0, -30.0, GRID.bounds[3]]
        asset = item.assets["cube"]
        assert asset.media_type == "application/vnd+zarr" and asset.roles == ["data"]
        assert "Icechunk repository" in asset.description
        assert Path(asset.get_absolute_href()).resolve() == store  # relative href that resolves to the store
        assert item.bbox == collection.extent.spatial.bboxes[0]


def test_write_stac_replaces_the_previous_catalogue_whole(cube, stac):
    out = cube[0]
    (stac.parent / "stale").mkdir(exist_ok=True)
    assert write_stac(out) == stac
    assert not (stac.parent / "stale").exists()
    assert sorted(p.name for p in out.iterdir()) == ["cube.icechunk", "stac"]  # no temporary folders left


def test_write_stac_without_a_cube_is_a_clear_error(tmp_path):
    with pytest.raises(CubeStoreError, match="No cube"):
        write_stac(tmp_path)


# ---------------------------------------------------------------------------- exports
def compliance(path: Path) -> tuple[int, dict]:
    """``compliance-checker --test=cf:1.10`` (normal criteria, offline): exit code and the JSON report."""
    run = subprocess.run([str(BIN / "compliance-checker"), "--test=cf:1.10", "--format=json", "-o", "-", str(path)],
                         capture_output=True, text=True, timeout=120, check=False)
    report = json.loads(run.stdout[run.stdout.index("{"):])["cf:1.10"]
    return run.returncode, report


def failures(report: dict) -> list[str]:
    return [f"{r['name']}: {r['msgs']}" for level in ("high_priorities", "medium_priorities")
            for r in report[level] if r["value"][0] < r["value"][1]]


def test_netcdf_export_passes_cf_1_10_and_opens_with_plain_xarray(cube, tmp_path):
    out, values = cube
    path = export_cube(out, "netcdf", tmp_path / "cube.nc")
    code, report = compliance(path)
    assert failures(report) == [] and code == 0
    assert report["high_count"] == report["medium_count"] == 0

    with xr.open_dataset(path) as ds:
        assert ds["time"].dtype.kind == "M" and list(ds["time"].values) == list(DAYS.values)
        assert ds["time_bnds"].dtype.kind == "M"
        assert ds["gpp"].attrs["grid_mapping"] == "spatial_ref" and "crs_wkt" in ds["spatial_ref"].attrs
        assert GridSpec.from_xarray(ds) == GRID
        assert_cube_equal(ds, open_cube(out))
        np.testing.assert_array_equal(ds["gpp"].values, values["gpp"])
        assert ds.attrs["job_token"] == "t" and ds.attrs["demo"] == 1
        assert "exported to netcdf" in ds.attrs["history"].splitlines()[-1]


def test_the_compliance_check_catches_what_the_export_fixes(cube, tmp_path):
    """A naive ``to_netcdf`` of the store fails CF 1.10 (so the check above is not vacuous)."""
    naive = tmp_path / "naive.nc"
    open_cube(cube[0]).to_netcdf(naive)
    code, report = compliance(naive)
    found = " ".join(failures(report))
    assert code != 0 and "_FillValue" in found and "flag_values" in found


def test_zarr_export_opens_without_icechunk_and_equals_the_cube(cube, tmp_path):
    out, _ = cube
    path = export_cube(out, "zarr", tmp_path / "cube.zarr")
    assert (path / "zarr.json").is_file()
    with xr.open_zarr(path) as ds:
        assert ds["gpp"].encoding["chunks"] == (1, 32, 32)
        assert_cube_equal(ds, open_cube(out))
        assert ds.attrs["job_token"] == "t" and ds["gpp"].attrs["units"] == "g m-2 d-1"


def test_geotiff_export_writes_one_cog_per_day(cube, tmp_path):
    import rasterio

    out, values = cube
    path = export_cube(out, "geotiff", tmp_path / "tifs")
    names = sorted(p.name for p in path.iterdir())
    assert names == [f"gpp_{day:%Y-%m-%d}.tif" for day in DAYS]
    for i, name in enumerate(names):
        with rasterio.open(path / name) as src:
            assert src.crs.to_epsg() == 32652 and src.transform == GRID.transform
            assert src.count == 2 and src.descriptions == ("gpp", "gpp_spread") and np.isnan(src.nodata)
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            np.testing.assert_array_equal(src.read(1), values["gpp"][i])
            np.testing.assert_array_equal(src.read(2), values["gpp_spread"][i])


def test_export_refuses_an_existing_path_unless_overwrite(cube, tmp_path):
    out, _ = cube
    path = tmp_path / "cube.nc"
    path.write_text("keep me")
    with pytest.raises(OutputPathError, match="already exists.*overwrite=True"):
        export_cube(out, "netcdf", path)
    assert path.read_text() == "keep me"
    folder = tmp_path / "tifs"
    folder.mkdir()
    (folder / "old.tif").write_text("old")
    export_cube(out, "geotiff", folder, overwrite=True)
    assert not (folder / "old.tif").exists() and len(list(folder.iterdir())) == len(DAYS)


def test_a_failed_export_leaves_nothing_behind(cube, tmp_path, monkeypatch):
    def half_then_fail(ds, tmp):
        tmp.mkdir()
        (tmp / "gpp_2022-12-30.tif").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setitem(export_module._WRITERS, "geotiff", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        export_cube(cube[0], "geotiff", tmp_path / "tifs")
    assert list(tmp_path.iterdir()) == []


def test_export_bad_format_and_paths_are_clear_errors(cube, tmp_path):
    out, _ = cube
    with pytest.raises(SpecError, match="'tiff'.*'zarr'.*'netcdf'.*'geotiff'"):
        export_cube(out, "tiff", tmp_path / "x")
    assert set(FORMATS) == {"zarr", "netcdf", "geotiff"}
    for inside in (out, out / "cube.icechunk", out / "cube.icechunk" / "x.nc"):
        with pytest.raises(OutputPathError, match="cube store"):
            export_cube(out, "netcdf", inside, overwrite=True)
    assert CubeStore.open(out).units_done() == {UNIT}
    with pytest.raises(CubeStoreError, match="No cube"):
        export_cube(tmp_path / "nothing", "zarr", tmp_path / "cube.zarr")


def test_a_grid_without_an_epsg_code_is_described_by_its_wkt2():
    from pystac.extensions.datacube import DatacubeExtension
    from pystac.extensions.projection import ProjectionExtension

    from unique_xr.write.stac import cube_collection

    lcc = "+proj=lcc +lat_1=30 +lat_2=60 +lat_0=38 +lon_0=127.5 +x_0=0 +y_0=0 +ellps=GRS80 +units=m +no_defs"
    grid = GridSpec(crs=lcc, resolution=30.0, bounds=(0.0, 0.0, 960.0, 960.0))
    assert grid.epsg is None
    template = cube_template(grid, DAYS[:2], members=1, chunk=32, time_chunk=1, classes=None, attrs={"title": "x"})
    collection = cube_collection(template, metadata={"units_done": [], "units_total": 4}, snapshot="s",
                                 store_href="/nowhere/cube.icechunk")
    item = next(iter(collection.get_items()))
    assert ProjectionExtension.ext(item).wkt2 == grid.crs and ProjectionExtension.ext(item).code is None
    assert collection.summaries.get_list("proj:wkt2") == [grid.crs]
    dc = DatacubeExtension.ext(collection)
    assert dc.dimensions["x"].reference_system == grid.crs and set(dc.variables) == {"gpp"}
    assert collection.id == "unique-xr-gpp" and collection.extra_fields["unique_xr:units_total"] == 4
