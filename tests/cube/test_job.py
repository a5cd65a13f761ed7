"""The cube job end to end: what it writes, resuming after kills, reruns, and bad input that leaves the store intact."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from unique_xr.errors import CubeStoreError, EmptySearchError, ModelFolderError, SpecError
from unique_xr.pipeline.job import run_cube
from unique_xr.write.store import CubeStore, open_cube

from .conftest import write_toml  # noqa: TID252 - the cube tests' own helpers


def assert_same_cube(a: Path, b: Path) -> None:
    """Two cubes equal variable by variable, every value (NaN equal), same coordinates."""
    x, y = open_cube(a), open_cube(b)
    assert sorted(x.data_vars) == sorted(y.data_vars)
    for name in x.data_vars:
        xr.testing.assert_equal(x[name].load(), y[name].load())


# ----------------------------------------------------------------------------- what a job writes
def test_fitted_job_writes_a_complete_cf_cube(fitted):
    result, spec = fitted
    assert result.units_total == result.units_done == result.units_run == 4
    ds = open_cube(result.out)
    assert ds["gpp"].dims == ("time", "y", "x") and ds["gpp"].shape == (2, 256, 256)
    assert ds["gpp"].dtype == np.float32 and "gpp_spread" in ds and "land_cover" in ds
    gpp = ds["gpp"].values
    # a downscaler trained for 20 steps: plausible magnitudes, not accurate ones (members may dip below 0)
    assert np.isfinite(gpp).mean() > 0.5 and np.nanmin(gpp) >= -10 and np.nanmax(gpp) < 60
    assert float(ds["gpp_spread"].mean()) > 0  # two members that differ
    assert ds["gpp"].attrs["units"] == "g m-2 d-1" and ds["gpp"].attrs["cell_methods"] == "time: mean"
    assert ds["gpp"].attrs["standard_name"] == "gross_primary_productivity_of_biomass_expressed_as_carbon"
    assert ds["time"].attrs["bounds"] == "time_bnds" and ds["x"].attrs["standard_name"] == "projection_x_coordinate"
    assert (ds["time_bnds"][:, 1] - ds["time_bnds"][:, 0] == np.timedelta64(1, "D")).all()
    attrs = ds.attrs
    assert attrs["Conventions"] == "CF-1.10" and attrs["job_token"] == spec.token
    assert json.loads(attrs["job_spec"])["start"] == "2019-01-29"
    tokens = json.loads(attrs["model_tokens"])
    assert set(tokens) == {"gpp_m", "gpp_l", "downscaler"}  # gpp_l made the pairs the downscaler was fitted on
    # the fitted downscaler is stored with the output, its token in the provenance
    from unique_xr.downscale import load_downscaler

    model = load_downscaler(result.out / "downscaler")
    assert model.token == tokens["downscaler"] and model.card["job_token"] == spec.token
    assert model.card["factor"] == 16
    assert json.loads(attrs["input_items"])["mcd43a4"]
    assert not any(isinstance(v, bool) for v in attrs.values())
    assert (result.out / "stac" / "collection.json").is_file()


def test_polygon_region_is_nan_outside(given_spec, cluster, tmp_path):
    """A GeoJSON region: pixels outside the polygon are NaN, those inside are estimated."""
    from pyproj import Transformer

    from unique_xr.load.region import polygon_mask

    left, bottom, right, top = 585135.0, -2231025.0, 592815.0, -2223345.0
    to_lonlat = Transformer.from_crs("EPSG:32623", "EPSG:4326", always_xy=True)
    # a triangle over the upper-left half of the small region
    corners = [to_lonlat.transform(x, y) for x, y in ((left + 100, top - 100), (right - 100, top - 100),
                                                      (left + 100, bottom + 100), (left + 100, top - 100))]
    geojson = tmp_path / "area.geojson"
    geojson.write_text(json.dumps({"type": "Polygon", "coordinates": [corners]}))
    spec = given_spec(tmp_path / "out", bounds=None, geometry=str(geojson))
    result = run_cube(spec, client=cluster, progress=False)
    ds = open_cube(result.out)
    inside = polygon_mask(spec.region_geometry, spec.grids[0])
    gpp = ds["gpp"].values
    assert np.isnan(gpp[:, ~inside]).all()
    assert np.isfinite(gpp[:, inside]).mean() > 0.5
    assert (ds["land_cover"].fillna(0).values[~inside] == 0).all()


def test_each_model_is_loaded_once_per_worker(clean, cluster):
    """The downscaler travels as one graph key and is materialised once per worker process, over every unit
    and every run that shares the cluster."""
    from unique_xr.models.handle import handle_loads

    token = json.loads(open_cube(clean[0].out).attrs["model_tokens"])["downscaler"]
    counts = [per_worker.get(token, 0) for per_worker in cluster.run(handle_loads).values()]
    assert max(counts) == 1 and sum(counts) >= 1


# ----------------------------------------------------------------------------- resuming
def test_rerun_of_a_finished_job_recomputes_and_changes_nothing(clean):
    result, spec = clean
    before = CubeStore.open(result.out).latest().id
    t0 = time.perf_counter()
    again = run_cube(spec, client=None, progress=False)  # no cluster is even started
    assert again.units_run == 0 and again.snapshot == before == result.snapshot
    assert time.perf_counter() - t0 < 10


def test_sigkill_of_the_job_then_rerun_equals_a_clean_run(clean, given_spec, cluster, tmp_path):
    """The job (a subprocess with its own LocalCluster) is killed after one commit, with another unit running."""
    reference, _ = clean
    spec = given_spec(tmp_path / "out", in_flight=2)
    toml = write_toml(spec, tmp_path / "job.toml")
    proc = subprocess.Popen([sys.executable, "-m", "unique_xr.cli", "cube", "run", str(toml), "--workers", "2",
                             "--no-plot"], start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if CubeStore.exists(spec.out) and len(CubeStore.open(spec.out).units_done()) >= 1:
                break  # (the store appears whole: it is made aside and renamed into place)
            if proc.poll() is not None:
                pytest.fail(f"the job ended before it could be killed: {proc.stdout.read().decode()[-2000:]}")
            time.sleep(0.05)
        else:
            pytest.fail("no unit was committed within 240 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the job and its workers, mid-unit
        proc.wait(30)
    store = CubeStore.open(spec.out)
    done = store.units_done()
    assert 1 <= len(done) < 4, done  # killed with units left
    killed_at = store.latest().id
    ds = open_cube(spec.out)  # the last commit opens
    assert ds.attrs["units_done"] == len(done)
    resumed = run_cube(spec, client=cluster, progress=False)
    assert resumed.units_run == 4 - len(done)  # only the units not committed were computed
    assert killed_at in [s.id for s in CubeStore.open(spec.out).history()]
    assert_same_cube(spec.out, reference.out)


def test_a_killed_worker_does_not_stop_the_job(clean, given_spec, cluster, tmp_path):
    """A worker of the job's cluster is SIGKILLed while it computes; its nanny restarts it and the job finishes."""
    reference, _ = clean
    spec = given_spec(tmp_path / "out", in_flight=4)
    pids = cluster.run(os.getpid)
    killed = []

    def kill_one_when_busy():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            busy = [w for w, tasks in cluster.processing().items() if tasks]
            if busy:
                time.sleep(0.5)
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.1)

    killer = threading.Thread(target=kill_one_when_busy)
    killer.start()
    result = run_cube(spec, client=cluster, progress=False)
    killer.join()
    assert killed, "no worker was killed"
    assert result.units_done == 4
    assert_same_cube(spec.out, reference.out)
    cluster.wait_for_workers(2, timeout=60)


# ----------------------------------------------------------------------------- bad input
def test_an_output_holding_another_specs_cube_is_refused_and_untouched(clean, given_spec):
    result, spec = clean
    before = CubeStore.open(result.out).latest().id
    other = given_spec(result.out, members=3)
    with pytest.raises(CubeStoreError, match=r"another spec.*\[downscaling\] members: this spec has 3"):
        run_cube(other, progress=False)
    assert CubeStore.open(result.out).latest().id == before


def test_a_period_without_data_is_a_clear_error_and_writes_nothing(given_spec, tmp_path):
    spec = given_spec(tmp_path / "out", start="2021-06-01", end="2021-06-03")
    with pytest.raises(EmptySearchError, match="No 'modis-43A4-061' items .* between 2021-06-01"):
        run_cube(spec, progress=False)
    assert not CubeStore.exists(tmp_path / "out")


def test_missing_or_damaged_model_folders_are_clear_errors(given_spec, fitted, tmp_path):
    with pytest.raises(ModelFolderError):
        run_cube(given_spec(tmp_path / "a", downscaler=str(tmp_path / "nowhere")), progress=False)
    damaged = tmp_path / "damaged"
    import shutil

    shutil.copytree(fitted[0].out / "downscaler", damaged)
    weights = damaged / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelFolderError, match="weights"):
        run_cube(given_spec(tmp_path / "b", downscaler=str(damaged)), progress=False)
    assert not CubeStore.exists(tmp_path / "a") and not CubeStore.exists(tmp_path / "b")


def test_a_model_whose_inputs_the_data_cannot_provide_is_refused(given_spec, tmp_path):
    """The downscaler conditions on elevation; a job without a DEM cannot give it."""
    spec = given_spec(tmp_path / "out", dem=None)
    with pytest.raises(Exception, match=r"elevation.*cannot provide|cannot provide.*elevation"):
        run_cube(spec, progress=False)
    assert not CubeStore.exists(tmp_path / "out")


@pytest.mark.parametrize("changes, match", [
    ({"crs": "EPSG:4326"}, r"\[region\] crs = 'EPSG:4326'.*geographic"),
    ({"bounds": None, "bbox": (500000.0, 0.0, 510000.0, 10.0)}, r"\[region\] bbox .*not in degrees"),
    ({"end": "2019-01-01"}, r"\[period\] end = '2019-01-01': is before"),
    ({"unit_size": 100}, r"\[units\] size = 100: must be a multiple of \[output\] chunk"),
    ({"members": 0}, r"\[downscaling\] members = 0"),
])
def test_invalid_specs_name_the_key_and_the_value(given_spec, tmp_path, changes, match):
    with pytest.raises(SpecError, match=match):
        given_spec(tmp_path, **changes)


def test_an_invalid_polygon_is_refused(given_spec, tmp_path):
    bowtie = tmp_path / "bowtie.geojson"
    bowtie.write_text(json.dumps({"type": "Polygon", "coordinates": [[[-44.1, -20.1], [-44.0, -20.0], [-44.0, -20.1],
                                                                      [-44.1, -20.0], [-44.1, -20.1]]]}))
    spec = given_spec(tmp_path / "out", bounds=None, geometry=str(bowtie))
    with pytest.raises(SpecError, match="not a valid polygon: Self-intersection"):
        spec.grids  # noqa: B018 - the region is read when the grid is made


def test_a_store_that_fails_to_write_keeps_its_last_commit(given_spec, tmp_path, monkeypatch):
    """A full disk while the units write: a clear error, the last commit intact, and a rerun finishes the job."""
    import errno

    from icechunk.store import IcechunkStore

    spec = given_spec(tmp_path / "out")
    original = IcechunkStore.set

    async def full_disk(self, key, value):
        if key.startswith(("gpp/c/", "gpp_spread/c/")):  # the units' chunks, not the template's coordinates
            raise OSError(errno.ENOSPC, "No space left on device")
        return await original(self, key, value)

    monkeypatch.setattr(IcechunkStore, "set", full_disk)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as c, \
            distributed.Client(c, set_as_default=False) as client:
        with pytest.raises(CubeStoreError, match="No space left on device.*keeps its last commit"):
            run_cube(spec, client=client, progress=False)
    store = CubeStore.open(spec.out)
    assert store.units_done() == set() and store.latest().message.startswith("template")
    monkeypatch.setattr(IcechunkStore, "set", original)


def test_a_unit_with_a_chunk_missing_is_not_committed(clean, tmp_path):
    """Silent partial writes: the commit checks every expected chunk of the unit."""
    import shutil

    shutil.copytree(clean[0].out / "cube.icechunk", tmp_path / "cube.icechunk")
    store = CubeStore.open(tmp_path)
    before = store.latest().id
    write, _targets = store.begin_unit(["gpp"], {"gpp": (slice(0, 2), slice(0, 128), slice(0, 128))})
    with pytest.raises(CubeStoreError, match=r"unit y0-x0-d0: 2 of 2 chunks of /gpp were not written"):
        store.commit_unit(write, [], "y0-x0-d0", metadata={})
    assert CubeStore.open(tmp_path).latest().id == before


# ----------------------------------------------------------------------------- exports of a job's cube
def test_netcdf_export_of_a_job_passes_cf_1_10(clean, tmp_path):
    from unique_xr.write.export import export_cube

    nc = export_cube(clean[0].out, "netcdf", tmp_path / "cube.nc")
    checker = Path(sys.executable).parent / "compliance-checker"
    run = subprocess.run([str(checker), "--test=cf:1.10", str(nc)], capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stdout[-3000:]
    plain = xr.open_dataset(nc)
    xr.testing.assert_equal(plain["gpp"].load(), open_cube(clean[0].out)["gpp"].load().drop_vars("spatial_ref")
                            .assign_coords(spatial_ref=plain["spatial_ref"]))


distributed = pytest.importorskip("distributed")


# ----------------------------------------------------------------------------- the sample job
def test_the_sample_spec_is_the_staged_sample_on_the_nested_grid(tmp_path):
    from unique_xr.pipeline.spec import sample_spec

    spec = sample_spec(tmp_path)
    fine, coarse = spec.grids
    assert fine.shape == (320, 416) and coarse.resolution == 480.0 and fine.coarsen_factor(coarse) == 16
    assert spec.downscaler == "fit" and Path(spec.source).is_file() and spec.members > 1
    assert spec.token == sample_spec(tmp_path).token  # the same staged inputs: the same job


@pytest.mark.slow
def test_cube_run_sample_from_the_command_line(tmp_path):
    """The README's main command (the same code as the small jobs above, on the whole sample region)."""
    out = tmp_path / "sample_cube"
    run = subprocess.run([sys.executable, "-m", "unique_xr.cli", "cube", "run", "--sample", "--out", str(out)],
                         capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "units" in run.stdout and (out / "cube.png").is_file() and (out / "stac" / "collection.json").is_file()
    ds = open_cube(out)
    assert ds.attrs["units_done"] == ds.attrs["units_total"] and np.isfinite(ds["gpp"].values).mean() > 0.5
    # the README's claim: on units not fitted on, the cube follows GPP_L at 30 m better than bicubic GPP_M
    found = re.search(r"r with GPP_L = (-?[\d.]+) for the cube \(scheme s3\), (-?[\d.]+) for bicubic",
                      " ".join(run.stdout.split()))
    assert found, run.stdout[-2000:]
    assert float(found[1]) > float(found[2]) + 0.1, found[0]


def test_the_job_fits_scheme_s3_and_conditions_on_gpp_l_history(fitted):
    """The default job-fitted downscaler is S3; the structure check scores it on units it was not fitted on."""
    from unique_xr.downscale import load_downscaler
    from unique_xr.pipeline.check import structure_check
    from unique_xr.pipeline.stages import history_dates, search_inputs

    result, spec = fitted
    model = load_downscaler(result.out / "downscaler")
    assert model.scheme == "s3" and model.norm.prior and spec.scheme == "s3"
    assert open_cube(result.out).attrs["downscaling_scheme"] == "s3"
    items = search_inputs(spec, landsat=True, history=True)
    # the history reaches back prior_days before the period: 2019-01-14 is the prior of 2019-01-29/30
    assert history_dates(spec, items, spec.days) == ["2019-01-14"]
    check = structure_check(spec, result.out, items=items)
    fitted_units = {u.split("@")[0] for u in model.card["fitted_on"]}
    assert check["date"] == "2019-01-30" and check["pixels"] > 1000
    assert not fitted_units & set(check["units"]) and check["units"]
    assert -1 <= check["r_bicubic"] <= 1 and -1 <= check["r_downscaled"] <= 1


def test_an_s3_downscaler_without_a_gpp_l_model_is_refused(given_spec, tmp_path):
    spec = given_spec(tmp_path / "out", gpp_l=None)
    with pytest.raises(Exception, match=r"scheme-s3 model.*gpp_l"):
        run_cube(spec, progress=False)
    assert not CubeStore.exists(tmp_path / "out")
