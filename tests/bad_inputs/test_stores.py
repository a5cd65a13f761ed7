"""Damaged, racing and stale Zarr caches: what ``to_zarr`` / ``open_zarr`` must refuse or repair.

Each case was found by a tester on a store that ``open_zarr`` accepted (reading wrong values) or a
write that reported success while losing another one. Killed writers are real processes killed
with ``os._exit`` at the moment named, so the folders they leave are exactly what a kill leaves.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import unique_xr
from unique_xr.errors import CacheError
from unique_xr.grid import GridSpec
from unique_xr.load import cache

GRID = GridSpec(crs="EPSG:32633", resolution=30.0, bounds=(500000, 4000000, 500000 + 30 * 8, 4000000 + 30 * 8))


def cube(value: float = 1.0, *, wait=None) -> xr.Dataset:
    """A (2, 8, 8) cube; Dask chunks (1, 4, 4), so 8 chunks of ``gpp``, 2x2 per date.

    ``wait``, if given, is called in the (single-chunk) ``gate`` variable's task while the store is written.
    """
    gpp = np.full((2, 8, 8), value, "float32") + np.arange(64, dtype="float32").reshape(8, 8)
    ds = xr.Dataset(
        {"gpp": (("time", "y", "x"), gpp, {"units": "gC m-2 d-1"})},
        coords={"time": pd.date_range("2021-06-01", periods=2, freq="16D")},
    )
    ds = GRID.attach(ds).chunk({"time": 1, "y": 4, "x": 4})
    if wait is not None:

        def gate(block):
            wait()
            return block

        data = xr.full_like(ds["gpp"].isel(time=[0]), value).chunk({"y": 8, "x": 8}).data
        ds["gate"] = (("t1", "y", "x"), data.map_blocks(gate, dtype="float32", meta=np.array((), "float32")))
    return ds


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- damaged stores ------------------------------------------------------------------------------


def test_deleted_chunk_file_is_refused_at_open_with_the_path(tmp_path):
    path = cache.to_zarr(cube(), tmp_path / "cube.zarr")
    (path / "gpp" / "c" / "1" / "0" / "1").unlink()  # used to read back as NaN, silently
    with pytest.raises(CacheError, match="damaged") as err:
        cache.open_zarr(path)
    text = str(err.value)
    assert str(path / "gpp") in text and "should have 8 chunk files" in text and "holds 7" in text
    assert "overwrite=True" in text


def test_truncated_chunk_file_is_refused_at_open_naming_the_array(tmp_path):
    path = cache.to_zarr(cube(), tmp_path / "cube.zarr")
    chunk = path / "gpp" / "c" / "0" / "1" / "1"
    chunk.write_bytes(chunk.read_bytes()[:5])  # used to fail at compute with a bare RuntimeError
    with pytest.raises(CacheError, match=r"array 'gpp' should have 8 chunk files of \d+ bytes in all"):
        cache.open_zarr(path)


def test_added_chunk_file_is_refused(tmp_path):
    path = cache.to_zarr(cube(), tmp_path / "cube.zarr")
    stray = path / "gpp" / "c" / "1" / "1" / "2"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes((path / "gpp" / "c" / "0" / "0" / "0").read_bytes())
    with pytest.raises(CacheError, match="holds 9"):
        cache.open_zarr(path)


def test_missing_array_folder_is_refused(tmp_path):
    import shutil

    path = cache.to_zarr(cube(), tmp_path / "cube.zarr")
    shutil.rmtree(path / "gpp")  # xarray would open the rest of the store without a word
    with pytest.raises(CacheError, match=r"array 'gpp' is missing"):
        cache.open_zarr(path)


def test_store_with_the_old_plain_mark_is_refused(tmp_path):
    import zarr

    path = cache.to_zarr(cube(), tmp_path / "cube.zarr")
    zarr.open_group(path, mode="r+", zarr_format=3).attrs[cache.COMPLETE_ATTR] = True  # as written before
    with pytest.raises(CacheError, match=r"old or malformed completion mark .*cannot be checked.*overwrite=True"):
        cache.open_zarr(path)


def test_store_with_a_malformed_mark_is_refused_and_recovery_survives_it(tmp_path):
    import zarr

    path = cache.to_zarr(cube(), tmp_path / "cube.zarr")
    group = zarr.open_group(path, mode="r+", zarr_format=3)
    group.attrs[cache.COMPLETE_ATTR] = {"format": 1, "run": None, "arrays": {"gpp": 3}}  # an edited mark
    with pytest.raises(CacheError, match=r"malformed completion mark"):
        cache.open_zarr(path)
    assert cache.recover(path) == []


def test_mark_lists_the_chunk_files_and_skipped_fill_chunks_are_not_damage(tmp_path):
    import zarr

    ds = cube()
    ds["empty"] = ds["gpp"] * np.nan  # all fill: Zarr writes no chunk file for it
    path = cache.to_zarr(ds, tmp_path / "cube.zarr")
    mark = zarr.open_group(path, mode="r").attrs[cache.COMPLETE_ATTR]
    assert mark["format"] == 1 and mark["run"] is None
    sizes = sum(f.stat().st_size for f in (path / "gpp" / "c").rglob("*") if f.is_file())
    assert mark["arrays"]["gpp"] == {"chunks": 8, "bytes": sizes}
    assert mark["arrays"]["empty"] == {"chunks": 0, "bytes": 0}
    assert {"time", "y", "x", "spatial_ref"} <= set(mark["arrays"])
    back = cache.open_zarr(path)
    assert cache.COMPLETE_ATTR not in back.attrs and bool(back["empty"].isnull().all())


# --- runs ------------------------------------------------------------------------------------------


def test_store_of_another_run_is_refused(tmp_path):
    path = cache.to_zarr(cube(), tmp_path / "cube.zarr", run="3f9c2a")
    assert cache.open_zarr(path, run="3f9c2a").attrs[cache.RUN_ATTR] == "3f9c2a"
    assert cache.open_zarr(path).attrs[cache.RUN_ATTR] == "3f9c2a"  # no run asked: any run is accepted
    mixed = r"written by run '3f9c2a', not by run 'b71e04'.*mixes outputs of different runs"
    with pytest.raises(CacheError, match=mixed):
        cache.open_zarr(path, run="b71e04")


def test_store_without_a_run_is_refused_when_a_run_is_asked_and_copies_do_not_inherit_it(tmp_path):
    first = cache.to_zarr(cube(), tmp_path / "first.zarr", run="3f9c2a")
    copy = cache.to_zarr(cache.open_zarr(first), tmp_path / "copy.zarr")  # no run: the source's is dropped
    assert cache.RUN_ATTR not in cache.open_zarr(copy).attrs
    with pytest.raises(CacheError, match=r"records no run, not by run '3f9c2a'.*open the store without run="):
        cache.open_zarr(copy, run="3f9c2a")


# --- racing writers --------------------------------------------------------------------------------


def _write_in_threads(targets_and_kwargs, barrier_parties: int):
    """Run to_zarr calls in threads whose (single) gate tasks meet at a barrier; returns results/errors."""
    barrier = threading.Barrier(barrier_parties, timeout=60)
    results: dict[int, object] = {}

    def run(i, target, kwargs):
        try:
            results[i] = cache.to_zarr(cube(float(10 * (i + 1)), wait=barrier.wait), target, **kwargs)
        except BaseException as err:  # noqa: BLE001 - reported to the test
            results[i] = err

    threads = [threading.Thread(target=run, args=(i, t, kw)) for i, (t, kw) in enumerate(targets_and_kwargs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_two_exclusive_writers_racing_exactly_one_wins(tmp_path):
    target = tmp_path / "cube.zarr"
    results = _write_in_threads([(target, {"mode": "w-"}), (target, {"mode": "w-"})], 2)
    errors = {i: r for i, r in results.items() if isinstance(r, BaseException)}
    assert len(errors) == 1, results  # before: both reported success, one store silently replaced the other
    (loser, err), = errors.items()
    assert isinstance(err, CacheError) and "Another writer created" in str(err)
    winner = 1 - loser
    back = cache.open_zarr(target)
    assert float(back["gate"].max()) == 10 * (winner + 1)  # the store on disk is the winner's
    assert hidden(tmp_path) == []  # the loser's partial folder was removed


def test_two_overwriters_racing_last_wins_and_it_is_logged(tmp_path, caplog):
    target = cache.to_zarr(cube(0.0), tmp_path / "cube.zarr")
    with caplog.at_level("WARNING", logger="unique_xr.load.cache"):
        results = _write_in_threads([(target, {"mode": "w"}), (target, {"mode": "w"})], 2)
    assert all(r == target for r in results.values()), results
    back = cache.open_zarr(target)  # complete and verified
    assert float(back["gate"].max()) in (10.0, 20.0)
    assert any("another writer put" in r.getMessage() for r in caplog.records)
    assert hidden(tmp_path) == []


# --- killed writers ----------------------------------------------------------------------------------

KILLED_WRITER = r"""
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("stores_cases", sys.argv[1])
cases = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cases)
from unique_xr.load import cache
target, when = sys.argv[2], sys.argv[3]

def die(*args, **kwargs):
    os._exit(17)

if when == "between-renames":  # after the old store is moved aside, before the new one is moved in
    for name in ("rename", "replace"):
        real = getattr(os, name)
        def killing(src, dst, *args, _real=real, **kwargs):
            if ".partial-" in os.path.basename(os.fspath(src)):
                die()
            return _real(src, dst, *args, **kwargs)
        setattr(os, name, killing)
    cache.to_zarr(cases.cube(2.0), target, overwrite=True)
else:  # mid-write: a chunk task kills the process
    cache.to_zarr(cases.cube(2.0, wait=die), target, overwrite=True)
raise SystemExit("the writer was not killed")
"""


def kill_writer(target: Path, when: str) -> int:
    """Run to_zarr in a process killed at ``when``; returns the (now dead) writer's pid."""
    env = {**os.environ, "PYTHONPATH": str(Path(unique_xr.__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, __file__, str(target), when], env=env,
                            stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 17, err
    return proc.pid


def test_kill_between_renames_open_zarr_recovers_the_new_version(tmp_path):
    target = cache.to_zarr(cube(1.0), tmp_path / "cube.zarr")
    kill_writer(target, "between-renames")
    assert not target.exists() and len(hidden(tmp_path)) == 2  # both versions hidden
    back = cache.open_zarr(target)  # before: "No Zarr cache"
    xr.testing.assert_equal(back["gpp"], cube(2.0)["gpp"])
    assert hidden(tmp_path) == []


def test_kill_between_renames_recover_reports_what_it_did(tmp_path):
    target = cache.to_zarr(cube(1.0), tmp_path / "cube.zarr")
    pid = kill_writer(target, "between-renames")
    done = cache.recover(target)
    assert len(done) == 2, done
    assert done[0].startswith("moved the finished write .cube.zarr.partial-") and f"pid {pid}" in done[0]
    assert done[1].startswith("removed ") and ".cube.zarr.old-" in done[1]
    xr.testing.assert_equal(cache.open_zarr(target)["gpp"], cube(2.0)["gpp"])
    assert cache.recover(target) == []


def test_kill_between_renames_with_a_damaged_new_version_puts_the_old_one_back(tmp_path):
    target = cache.to_zarr(cube(1.0), tmp_path / "cube.zarr")
    kill_writer(target, "between-renames")
    partial, = (p for p in tmp_path.iterdir() if ".partial-" in p.name)
    (partial / "gpp" / "c" / "0" / "0" / "0").unlink()
    done = cache.recover(target)
    assert done[0].startswith("moved the previous store .cube.zarr.old-"), done
    xr.testing.assert_equal(cache.open_zarr(target)["gpp"], cube(1.0)["gpp"])
    assert hidden(tmp_path) == []


def test_partial_of_a_dead_writer_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "cube.zarr"
    kill_writer(target, "mid-write")
    assert [n.startswith(".cube.zarr.partial-") for n in hidden(tmp_path)] == [True]
    cache.to_zarr(cube(3.0), target)
    assert hidden(tmp_path) == []  # before: the dead writer's partial folder stayed forever
    xr.testing.assert_equal(cache.open_zarr(target)["gpp"], cube(3.0)["gpp"])


def test_partial_of_a_live_writer_is_left_alone(tmp_path):
    target = tmp_path / "cube.zarr"
    started, release = threading.Event(), threading.Event()
    outcome = {}

    def wait():
        started.set()
        assert release.wait(60)

    def write():
        try:
            outcome["path"] = cache.to_zarr(cube(4.0, wait=wait), target)
        except BaseException as err:  # noqa: BLE001 - reported to the test
            outcome["error"] = err

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert started.wait(60)
        before = hidden(tmp_path)
        assert len(before) == 1 and before[0].startswith(".cube.zarr.partial-")
        assert cache.recover(target) == []  # our own pid: alive
        with pytest.raises(CacheError, match="No Zarr cache"):
            cache.open_zarr(target)
        assert hidden(tmp_path) == before
    finally:
        release.set()
        writer.join(60)
    assert outcome.get("path") == target, outcome
    xr.testing.assert_equal(cache.open_zarr(target)["gpp"], cube(4.0)["gpp"])


def test_folders_of_writers_on_another_host_are_left_alone(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store = cache.to_zarr(cube(), tmp_path / "elsewhere.zarr")
    foreign = tmp_path / f".cube.zarr.partial-0123456789ab-{dead.pid}-another-host.example.org"
    store.rename(foreign)  # a finished write of a pid that, on this host, no longer runs
    assert cache.recover(tmp_path / "cube.zarr") == []
    assert foreign.is_dir() and not (tmp_path / "cube.zarr").exists()
