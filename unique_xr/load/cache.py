"""A Zarr v3 cache for any stage of the pipeline: chunk-aligned, CF-attributed, never half-written.

:func:`to_zarr` writes into a hidden sibling directory (``.<name>.partial-<token>-<pid>-<host>``),
sets the completion mark ``unique_xr_complete`` only once every chunk is written, and then renames
the store into place. The mark records the run that wrote the store and, per array, the number of
chunk files and their total size (layout in :mod:`unique_xr.load._store_integrity`). A write that
fails (a task raising midway, a full disk, Ctrl-C) removes the partial directory and re-raises, so
the target path either holds a complete store or nothing; with ``mode="w-"`` a store that another
writer renamed into place first is never replaced.

:func:`open_zarr` refuses stores without the mark, with a mark of an older layout, whose chunk
files differ from the mark's listing (deleted, truncated, added), or written by another run than
the one asked for. Both functions first call :func:`recover`, which puts back the store of a writer
killed between its renames and deletes the hidden folders of writers that no longer run.

Chunks: every Dask chunk becomes exactly one Zarr chunk (encoding chunks = Dask chunks), so
parallel writes never touch the same Zarr chunk; irregular Dask chunks are first made regular.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import xarray as xr

from unique_xr.errors import CacheError
from unique_xr.load._store_integrity import (
    COMPLETE_ATTR,
    RUN_ATTR,
    check_store,
    install,
    make_mark,
    recover,
    writer_folder,
)
from unique_xr.load._store_integrity import local_path as _local_path
from unique_xr.schema import validate_cube

__all__ = ["to_zarr", "open_zarr", "recover", "COMPLETE_ATTR", "RUN_ATTR"]

CONVENTIONS = "CF-1.10"


def _regular(chunks: tuple[int, ...]) -> int | None:
    """The chunk size if ``chunks`` are regular (all equal but a smaller last one), else None."""
    first = chunks[0]
    if all(c == first for c in chunks[:-1]) and chunks[-1] <= first:
        return first
    return None


def _prepare(ds: xr.Dataset, chunks: Mapping[str, int] | None) -> xr.Dataset:
    """Dask-chunk every data variable regularly and set encoding chunks equal to the Dask chunks."""
    ds = ds.copy()
    if chunks:
        unknown = set(chunks) - set(ds.dims)
        if unknown:
            raise ValueError(f"chunks names dims {sorted(unknown)} that the dataset does not have {tuple(ds.dims)}.")
        ds = ds.chunk(dict(chunks))
    for name in list(ds.variables):
        var = ds[name].variable
        fill = var.attrs.pop("_FillValue", None)
        var.encoding = {} if fill is None else {"_FillValue": fill}
    for name in list(ds.variables):
        if name in ds.indexes or ds[name].ndim == 0:
            continue
        da = ds[name]
        if da.chunks is None:
            if name not in ds.data_vars:
                continue  # in-memory coordinates: Zarr's own chunking is fine
            da = da.chunk("auto")
        sizes_by_dim = dict(zip(da.dims, da.chunks, strict=True))
        regular = {dim: _regular(sizes) or max(sizes) for dim, sizes in sizes_by_dim.items()}
        if any(_regular(sizes) is None for sizes in sizes_by_dim.values()):
            da = da.chunk(regular)
        encoding = dict(ds[name].encoding)
        encoding["chunks"] = tuple(regular[d] for d in da.dims)
        da.encoding = encoding
        if name in ds.data_vars:
            ds[name] = da
        else:
            ds = ds.assign_coords({name: da.variable})
    return ds


def _provenance(ds: xr.Dataset, attrs: Mapping[str, Any] | None, target: Path, run: str | None) -> dict[str, Any]:
    import unique_xr
    from unique_xr.grid import GridSpec

    out = dict(ds.attrs)
    out.update(attrs or {})
    out["Conventions"] = CONVENTIONS
    out["unique_xr_version"] = unique_xr.__version__
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{stamp} unique_xr {unique_xr.__version__}: to_zarr {target.name}"
    out["history"] = f"{out['history']}\n{line}" if out.get("history") else line
    try:
        out["unique_xr_grid"] = json.dumps(GridSpec.from_xarray(ds).to_dict())
    except Exception:  # noqa: BLE001 - no grid (e.g. a reanalysis stage): the attribute is optional
        out.pop("unique_xr_grid", None)
    out.pop(COMPLETE_ATTR, None)
    out.pop(RUN_ATTR, None)  # a copied run token would name a run that did not write this store
    if run is not None:
        out[RUN_ATTR] = run
    return out


def _is_zarr_store(path: Path) -> bool:
    return path.is_dir() and any((path / marker).exists() for marker in ("zarr.json", ".zgroup", ".zarray"))


def _compute_quietly(delayed: Any) -> None:
    """Compute a delayed write so that, when a task fails, no other task is still writing afterwards.

    Dask's threaded scheduler raises as soon as one task fails while its pool threads finish the
    tasks they hold, which could recreate chunk files after the partial store was removed. On the
    local threaded scheduler we therefore run our own pool and wait for it to drain (cancelling what
    has not started) before the error propagates. Other schedulers (distributed, synchronous, a
    user's own) are used as configured.
    """
    import dask

    scheduler = dask.config.get("scheduler", None)
    try:
        from distributed import default_client

        default_client()
        has_client = True
    except (ImportError, ValueError):
        has_client = False
    if has_client or scheduler not in (None, "threads", "threading"):
        dask.compute(delayed)
        return
    from concurrent.futures import ThreadPoolExecutor

    workers = dask.config.get("num_workers", None) or os.cpu_count() or 1
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="unique_xr-zarr")
    try:
        dask.compute(delayed, scheduler="threads", pool=pool)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def to_zarr(
    ds: xr.Dataset,
    store: str | os.PathLike,
    *,
    mode: Literal["w-", "w"] = "w-",
    overwrite: bool = False,
    chunks: Mapping[str, int] | None = None,
    attrs: Mapping[str, Any] | None = None,
    run: str | None = None,
) -> Path:
    """Write a cube to a Zarr v3 store atomically, chunk-aligned and with CF attributes.

    Parameters
    ----------
    ds
        A cube with dims ``(time, y, x)``, or a static ``(y, x)`` one (checked with
        :func:`unique_xr.schema.validate_cube`). Dask-backed data are written in parallel.
    store
        Local directory path of the store to create.
    mode
        ``"w-"`` (default) fails if ``store`` exists, also when another writer renames its store into
        place while this one writes. ``"w"`` replaces it (only if it is a Zarr store); when writers
        race, the last one to finish wins and the replacement is logged.
    overwrite
        Same as ``mode="w"``.
    chunks
        ``{dim: size}`` to rechunk to before writing. Otherwise the Dask chunks are kept (made
        regular if they are not); numpy-backed variables get Dask's ``"auto"`` chunks.
    attrs
        Extra global attributes.
    run
        Token of the run (job) writing the store, recorded in the completion mark and as the global
        attribute ``unique_xr_run``; ``open_zarr(..., run=...)`` then refuses stores of other runs.

    Returns
    -------
    pathlib.Path
        The absolute path of the written store.

    Raises
    ------
    CacheError
        ``store`` exists (``mode="w-"``) or another writer created it meanwhile, ``store`` is not a
        Zarr store (``mode="w"``), or ``store`` is not a local path.

    Notes
    -----
    Global attributes added: ``Conventions = "CF-1.10"``, ``unique_xr_version``, a ``history`` line,
    ``unique_xr_grid`` (the :class:`~unique_xr.grid.GridSpec` as JSON, when the cube has one),
    ``unique_xr_run`` (when ``run`` is given; an inherited one is dropped otherwise) and, set last,
    the completion mark ``unique_xr_complete``::

        {"format": 1, "run": run, "arrays": {name: {"chunks": n_files, "bytes": total_size}, ...}}

    listing, for every array, the chunk files the finished store holds (Zarr skips chunks that
    hold only the fill value, so the listing is read from the disk). Variable attributes (``units``,
    ``grid_mapping``...) and the ``spatial_ref`` grid-mapping coordinate are written as they are.
    Before writing, :func:`recover` cleans up after killed writers of ``store``.

    Examples
    --------
    >>> import numpy as np, xarray as xr, tempfile, pathlib
    >>> from unique_xr.grid import GridSpec
    >>> from unique_xr.load.cache import to_zarr, open_zarr
    >>> grid = GridSpec(crs="EPSG:32633", resolution=30.0, bounds=(0, 0, 120, 60))
    >>> ds = grid.attach(xr.Dataset({"elevation": (("y", "x"), np.ones((2, 4), "float32"))}))
    >>> path = to_zarr(ds, pathlib.Path(tempfile.mkdtemp()) / "static.zarr")
    >>> open_zarr(path)["elevation"].attrs["grid_mapping"]
    'spatial_ref'
    """
    if mode not in ("w-", "w"):
        raise ValueError(f"mode must be 'w-' (fail if the store exists) or 'w' (replace it), got {mode!r}.")
    if run is not None and not (isinstance(run, str) and run):
        raise ValueError(f"run must be a non-empty string (the run's token), got {run!r}.")
    replace = overwrite or mode == "w"
    target = _local_path(store)
    validate_cube(ds, static="time" not in ds.dims)
    recover(target)
    replaced = None  # the inode of the store this write replaces
    if target.exists():
        if not replace:
            raise CacheError(
                f"A store already exists at {str(target)!r}. Pass overwrite=True (or mode='w') to replace it, "
                "or open it with unique_xr.open_zarr."
            )
        if not (_is_zarr_store(target) or (target.is_dir() and not any(target.iterdir()))):
            raise CacheError(
                f"Refusing to overwrite {str(target)!r}: it exists but is not a Zarr store. Remove it yourself "
                "or choose another path."
            )
        replaced = target.stat().st_ino
    prepared = _prepare(ds, chunks)
    prepared.attrs = _provenance(ds, attrs, target, run)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = writer_folder(target, "partial")
    try:
        _compute_quietly(prepared.to_zarr(partial, mode="w-", zarr_format=3, consolidated=False, compute=False))
        import zarr

        group = zarr.open_group(partial, mode="r+", zarr_format=3)
        group.attrs[COMPLETE_ATTR] = make_mark(partial, run=run)  # last: only a finished store carries it
        install(partial, target, replace=replace, replaced=replaced)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target


def open_zarr(store: str | os.PathLike, *, chunks: Any = None, run: str | None = None) -> xr.Dataset:
    """Open a cache written by :func:`to_zarr`, lazily (Dask-backed), after checking it is intact.

    :func:`recover` runs first (a store whose writer was killed between its renames is put back).
    The chunk files on disk are then compared with the listing in the completion mark: their
    number and total size per array, by listing files only (no chunk is read).

    Parameters
    ----------
    store
        Path of the store.
    chunks
        Dask chunks. Default ``{}``: exactly the stored Zarr chunks (which equal the Dask chunks
        the cube was written with). ``"auto"`` lets Dask pick multiples of them.
    run
        Token of the run the store must come from (as passed to ``to_zarr(..., run=...)``).
        Default: accept a store of any run.

    Raises
    ------
    CacheError
        No store at ``store``, not a Zarr v3 store, an incomplete store, a store with the old
        completion mark (``True``, which cannot be verified), a damaged store (chunk files deleted,
        truncated or added after the write), or a store written by another run than ``run``.
    """
    path = _local_path(store)
    recover(path)
    if not path.exists():
        raise CacheError(
            f"No Zarr cache at {str(path)!r}. Write it first with unique_xr.to_zarr(ds, {str(path)!r}), "
            "or check the path."
        )
    if not (path / "zarr.json").is_file():
        raise CacheError(
            f"{str(path)!r} is not a Zarr v3 store (no zarr.json). unique_xr caches are written with "
            "unique_xr.to_zarr; rewrite it with overwrite=True."
        )
    check_store(path, run=run)
    try:
        ds = xr.open_zarr(path, zarr_format=3, consolidated=False, chunks={} if chunks is None else chunks)
    except Exception as err:  # noqa: BLE001 - any read failure of a cache is a cache problem
        raise CacheError(f"Could not open the Zarr cache at {str(path)!r}: {err}. Rewrite it with overwrite=True.") from err
    ds.attrs.pop(COMPLETE_ATTR, None)
    return ds
