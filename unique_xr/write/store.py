"""The cube store: a versioned Zarr v3 store (Icechunk) filled one work unit per commit.

The job writes a template (coordinates, metadata, no data) and commits it with the job token;
then each work unit's arrays are written from the workers into forks of a session
(:mod:`icechunk.dask`), merged on the client, checked chunk by chunk, and committed with the
list of finished units. A killed job leaves the last commit intact: whatever a dying unit wrote
is not in any snapshot. Reopening with another spec is refused before anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unique_xr._optional import import_optional
from unique_xr.errors import CubeStoreError

__all__ = ["REPO_NAME", "CubeStore", "open_cube"]

REPO_NAME = "cube.icechunk"
BRANCH = "main"


def _icechunk():
    ic = import_optional("icechunk", purpose="the national cube store")
    # Icechunk warns that a local-filesystem repository is not safe for concurrent commits: the job commits from
    # its client alone, one unit after the other (workers only write chunks into forks)
    ic.set_logs_filter("error")
    return ic


@dataclass(frozen=True)
class UnitWrite:
    """A unit in flight: its session, its fork, and the chunk coordinates it must write per array."""

    session: Any
    fork: Any
    expected: dict[str, set[tuple[int, ...]]]


class CubeStore:
    """An Icechunk repository at ``folder/cube.icechunk`` holding one job's cube."""

    def __init__(self, folder: str | os.PathLike, repo) -> None:
        self.folder = Path(folder)
        self.repo = repo

    # ------------------------------------------------------------------ opening
    @classmethod
    def exists(cls, folder: str | os.PathLike) -> bool:
        return (Path(folder) / REPO_NAME).is_dir()

    @classmethod
    def open(cls, folder: str | os.PathLike) -> CubeStore:
        """An existing store (read or resume); a folder without one is a clear error."""
        ic = _icechunk()
        path = Path(folder) / REPO_NAME
        if not path.is_dir():
            raise CubeStoreError(f"No cube in {folder}: {path} does not exist. Run `unique-xr cube run` with "
                                 f"--out {folder} first.")
        try:
            repo = ic.Repository.open(ic.local_filesystem_storage(str(path)))
        except Exception as err:  # icechunk raises its own error types for damaged repositories
            raise CubeStoreError(f"{path} is not a readable Icechunk repository ({err}); it was damaged or is not a "
                                 "unique_xr cube. Move it away and run the job again.") from err
        return cls(folder, repo)

    @classmethod
    def create(cls, folder: str | os.PathLike, template, *, metadata: Mapping[str, Any]) -> CubeStore:
        """A new store with the template's coordinates and metadata, committed as the first snapshot."""
        import shutil

        ic = _icechunk()
        path = Path(folder) / REPO_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        # made beside its place and renamed there once the template is committed: a job killed meanwhile leaves no
        # half-made repository at OUT/cube.icechunk, only a hidden folder the next run clears
        partial = path.parent / f".{REPO_NAME}-partial"
        shutil.rmtree(partial, ignore_errors=True)
        repo = ic.Repository.create(ic.local_filesystem_storage(str(partial)))
        session = repo.writable_session(BRANCH)
        template.to_zarr(session.store, compute=False, mode="w", consolidated=False, zarr_format=3)
        session.commit("template: coordinates and metadata", metadata={**metadata, "units_done": []})
        os.replace(partial, path)
        return cls(folder, ic.Repository.open(ic.local_filesystem_storage(str(path))))

    # ------------------------------------------------------------------ state
    def latest(self):
        """The newest snapshot of the branch (``.id``, ``.message``, ``.metadata``, ``.written_at``)."""
        return next(iter(self.repo.ancestry(branch=BRANCH)))

    def history(self) -> list[Any]:
        """Snapshots, newest first, without the repository's own first one."""
        return [s for s in self.repo.ancestry(branch=BRANCH) if not s.metadata.get("__root")]

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.latest().metadata)

    def units_done(self) -> set[str]:
        return set(self.metadata.get("units_done", []))

    def dataset(self, *, chunks: Any = None):
        """The latest committed cube, lazily (plain xarray over the read-only session)."""
        import xarray as xr

        session = self.repo.readonly_session(branch=BRANCH)
        return xr.open_zarr(session.store, consolidated=False, chunks=chunks, zarr_format=3)

    # ------------------------------------------------------------------ writing units
    def begin_unit(self, names: Sequence[str], regions: Mapping[str, tuple[slice, ...]]) -> tuple[UnitWrite, list]:
        """A session and fork for one unit, and the fork's arrays for ``names`` (write-empty-chunks on).

        Every chunk of the region is written even when it is all NaN, so that a missing chunk always
        means a failed write (:meth:`commit_unit` checks).
        """
        import zarr

        session = self.repo.writable_session(BRANCH)
        fork = session.fork()
        targets, expected = [], {}
        for name in names:
            arr = zarr.open_array(fork.store, path=name, mode="r+", config={"write_empty_chunks": True})
            targets.append(arr)
            expected[f"/{name}"] = _chunk_keys(regions[name], arr.shape, arr.chunks)
        return UnitWrite(session=session, fork=fork, expected=expected), targets

    def commit_unit(self, write: UnitWrite, forks: Iterable[Any], unit_id: str, *, metadata: Mapping[str, Any]) -> str:
        """Merge the workers' forks, check every expected chunk was written, commit; returns the snapshot id."""
        ic = _icechunk()
        forks = list(forks)
        if forks:
            write.session.merge(*forks)
        updated = {k: {tuple(c) for c in v} for k, v in write.session.status().updated_chunks.items()}
        for array, chunks in write.expected.items():
            missing = chunks - updated.get(array, set())
            if missing:
                raise CubeStoreError(
                    f"Work unit {unit_id}: {len(missing)} of {len(chunks)} chunks of {array} were not written (e.g. "
                    f"{sorted(missing)[:3]}); the unit is not committed and the store keeps its last commit. Rerun "
                    "the job to redo the unit.")
        done = sorted(self.units_done() | {unit_id})
        meta = {**metadata, "unit": unit_id, "units_done": done}
        return write.session.commit(f"unit {unit_id}", metadata=meta, rebase_with=ic.ConflictDetector())


def _chunk_keys(region: tuple[slice, ...], shape: Sequence[int], chunks: Sequence[int]) -> set[tuple[int, ...]]:
    """Chunk grid coordinates covered by ``region`` (slices with explicit bounds)."""
    import itertools

    ranges = []
    for sl, n, c in zip(region, shape, chunks):
        start, stop = sl.start or 0, n if sl.stop is None else sl.stop
        ranges.append(range(start // c, -(-stop // c)))
    return set(itertools.product(*ranges))


def open_cube(folder: str | os.PathLike, *, chunks: Any = None):
    """The latest committed cube in ``folder`` (as ``unique-xr cube run --out`` wrote it) as an xarray Dataset.

    ``gpp`` ``(time, y, x)`` in g m-2 d-1 (and ``gpp_spread`` with several members), ``land_cover``,
    ``time_bnds``, the CF grid mapping and the job's provenance in the attributes; lazy. Units not yet
    written are NaN; ``ds.attrs["units_done"]`` / ``["units_total"]`` say how far the job got.
    """
    store = CubeStore.open(folder)
    ds = store.dataset(chunks=chunks)
    meta = store.metadata
    ds.attrs["units_done"] = len(meta.get("units_done", []))
    if "units_total" in meta:
        ds.attrs["units_total"] = int(meta["units_total"])
    ds.attrs["snapshot"] = store.latest().id
    return ds
