"""Copies of a finished cube for tools that cannot read Icechunk: plain Zarr v3, CF NetCDF, daily COGs.

:func:`export_cube` reads the latest committed snapshot of ``OUT/cube.icechunk`` lazily and writes
one of three formats. Every export is written under a private temporary name beside ``path`` and
renamed into place only when complete (:func:`publish`), so a failure leaves no half-written output
and an existing ``path`` is replaced only with ``overwrite=True``.

- ``"zarr"``: a Zarr v3 store with the store's chunks, codecs and attributes (consolidated
  metadata, so ``xr.open_zarr(path)`` opens it without listing the store);
- ``"netcdf"``: one NetCDF-4 file following CF 1.10 (checked by ``compliance-checker
  --test=cf:1.10`` in the tests), written chunk by chunk with Dask;
- ``"geotiff"``: a folder of Cloud-Optimised GeoTIFFs, ``gpp_YYYY-MM-DD.tif``, one per day, with
  ``gpp`` as band 1 and ``gpp_spread`` as band 2 when the cube has it; NaN is the nodata value.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from unique_xr._files import ensure_folder
from unique_xr.errors import OutputPathError, SpecError

__all__ = ["FORMATS", "export_cube", "netcdf_dataset", "publish", "staged"]

#: Export formats and what each writes.
FORMATS: dict[str, str] = {
    "zarr": "a plain Zarr v3 store (a folder)",
    "netcdf": "one CF-1.10 NetCDF-4 file",
    "geotiff": "a folder of Cloud-Optimised GeoTIFFs, one per day",
}
#: Largest side (pixels) of the Dask chunks an export reads: whole store chunks, up to 64 MB of float32.
READ_SIDE = 4096
#: Encoding keys carried from the store into the Zarr export (the rest describe the Icechunk copy).
_ZARR_ENCODING = ("chunks", "compressors", "filters", "dtype", "_FillValue", "units", "calendar")


def export_cube(out: str | os.PathLike, fmt: str, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the latest committed cube in ``out`` to ``path`` as ``fmt`` (``"zarr"``, ``"netcdf"``, ``"geotiff"``).

    Parameters
    ----------
    out
        The job's output folder (holding ``cube.icechunk``).
    fmt
        ``"zarr"`` (a Zarr v3 folder), ``"netcdf"`` (one CF-1.10 file) or ``"geotiff"`` (a folder of
        ``gpp_YYYY-MM-DD.tif`` COGs).
    path
        Where to write; its parent folder is created.
    overwrite
        Replace an existing ``path``. Without it an existing path is an error and nothing is written.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    SpecError
        ``fmt`` is not one of :data:`FORMATS`.
    OutputPathError
        ``path`` exists (and ``overwrite`` is False), or it is, holds or lies inside the cube store.
    CubeStoreError
        ``out`` holds no cube.
    """
    from unique_xr.write.store import REPO_NAME, open_cube

    if fmt not in FORMATS:
        choices = ", ".join(f"{name!r} ({what})" for name, what in FORMATS.items())
        raise SpecError(f"Unknown export format {fmt!r}; choose one of {choices}.")
    path = Path(path)
    store = (Path(out) / REPO_NAME).resolve()
    target = path.resolve()
    if target == store or target in store.parents or store in target.parents:
        raise OutputPathError(f"Cannot export to {str(path)!r}: it is, holds or lies inside the cube store {store}. "
                              "Choose a path outside the job's folder, e.g. --out cube.nc.")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise OutputPathError(f"{str(path)!r} already exists; nothing was written. Choose another path, or pass "
                              "overwrite=True to replace it.")
    ds = open_cube(out, chunks=_read_chunks(open_cube(out)))
    ds.attrs = {**ds.attrs, "history": _history(ds.attrs, fmt)}
    ensure_folder(path.parent, what="The export's folder")
    with staged(path) as tmp:
        _WRITERS[fmt](ds, tmp)
    return path


# ---------------------------------------------------------------------------- writers
def _write_zarr(ds, tmp: Path) -> None:
    import warnings

    ds = ds.copy()
    for var in ds.variables.values():
        var.encoding = {k: v for k, v in var.encoding.items() if k in _ZARR_ENCODING}
    with warnings.catch_warnings():
        # consolidated metadata is a zarr-python extension of v3 (other readers ignore it); it lets
        # a plain ``xr.open_zarr(path)`` open the store without listing it or warning
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        ds.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=True, compute=True)


def netcdf_dataset(ds):
    """``ds`` with the attributes and encodings of a CF-1.10 NetCDF-4 file (lazy; nothing is computed).

    What ``to_netcdf`` would otherwise get wrong for a cube opened from its Zarr store: coordinate
    variables get no ``_FillValue`` (CF 2.5.1), ``flag_values`` take the on-disk type of their
    variable (CF 3.5; JSON attributes in Zarr lose it), the grid mapping gets a ``long_name``, every
    global attribute is one NetCDF can hold, and data variables are compressed in their store chunks.
    """
    from unique_xr.write.cf import TIME_UNITS, netcdf_safe

    ds = ds.copy()
    for name, var in ds.variables.items():
        old = var.encoding
        if name in ds.dims or name.endswith("_bnds"):
            enc: dict[str, Any] = {"_FillValue": None}
            if np.issubdtype(var.dtype, np.datetime64):
                enc.update(units=old.get("units", TIME_UNITS), calendar=old.get("calendar", "standard"),
                           dtype=np.dtype(old.get("dtype", "int32")).name)
        elif var.ndim == 0:
            enc = {}
        else:
            dtype = np.dtype(np.dtype(old.get("dtype", var.dtype)).name)  # native byte order, as netCDF4 expects
            fill = old.get("_FillValue")
            enc = {"dtype": dtype, "zlib": True, "complevel": 4, "shuffle": True,
                   "chunksizes": tuple(old.get("chunks") or (c[0] for c in var.chunks)),
                   "_FillValue": None if fill is None else dtype.type(fill)}
            if "flag_values" in var.attrs:
                var.attrs["flag_values"] = np.asarray(var.attrs["flag_values"], dtype=dtype)
        var.encoding = enc
    for name in {var.attrs["grid_mapping"] for var in ds.data_vars.values() if "grid_mapping" in var.attrs}:
        ds[name].attrs.setdefault("long_name", "coordinate reference system")
    ds.attrs = netcdf_safe(ds.attrs)
    return ds


def _write_netcdf(ds, tmp: Path) -> None:
    netcdf_dataset(ds).to_netcdf(tmp, format="NETCDF4", engine="netcdf4", compute=True)


def _write_geotiff(ds, tmp: Path) -> None:
    import pandas as pd
    import xarray as xr

    from unique_xr._optional import import_optional
    from unique_xr.grid import GridSpec

    import_optional("rioxarray", purpose="GeoTIFF export")
    grid = GridSpec.from_xarray(ds)
    bands = [name for name in ("gpp", "gpp_spread") if name in ds.data_vars]
    tmp.mkdir()
    tags = {"units": ds["gpp"].attrs.get("units", ""), "job_token": str(ds.attrs.get("job_token", "")),
            "snapshot": str(ds.attrs.get("snapshot", ""))}
    for i, day in enumerate(pd.DatetimeIndex(ds["time"].values)):
        # one day at a time: the whole cube is never in memory
        values = np.stack([ds[name].isel(time=i).values for name in bands])
        image = xr.DataArray(values, dims=("band", "y", "x"),
                             coords={"band": np.arange(1, len(bands) + 1), "y": ds["y"].values, "x": ds["x"].values},
                             attrs={**tags, "date": f"{day:%Y-%m-%d}", "long_name": tuple(bands)})
        image = image.rio.write_crs(grid.crs).rio.write_transform(grid.transform).rio.write_nodata(np.nan)
        image.rio.to_raster(tmp / f"gpp_{day:%Y-%m-%d}.tif", driver="COG", compress="DEFLATE")


_WRITERS: dict[str, Callable[[Any, Path], None]] = {"zarr": _write_zarr, "netcdf": _write_netcdf,
                                                     "geotiff": _write_geotiff}


# ---------------------------------------------------------------------------- files
@contextmanager
def staged(final: str | os.PathLike) -> Iterator[Path]:
    """A private temporary path beside ``final`` to write into; published at ``final`` on success.

    On success the file or folder written at the temporary path replaces ``final`` (:func:`publish`);
    on any failure (including an interrupt) it is removed and ``final`` is left as it was.
    """
    final = Path(final)
    tmp = _temporary(final)
    try:
        yield tmp
        publish(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def publish(tmp: Path, final: Path) -> None:
    """Put the finished file or folder ``tmp`` at ``final``, replacing what is there.

    A file replaces a file atomically (``os.replace``). A folder cannot replace a folder in one
    step: the old one is first renamed aside, then removed once the new one is in place, so
    ``final`` is missing for an instant but never half-written; if the second rename fails the old
    one is put back.
    """
    tmp, final = Path(tmp), Path(final)
    folders = tmp.is_dir() or (final.is_dir() and not final.is_symlink())
    if not folders or not (final.exists() or final.is_symlink()):
        os.replace(tmp, final)
        return
    aside = _temporary(final, "old")
    os.replace(final, aside)
    try:
        os.replace(tmp, final)
    except BaseException:
        os.replace(aside, final)
        raise
    _remove(aside)


def _temporary(path: Path, kind: str = "tmp") -> Path:
    """A private sibling of ``path`` (same folder, so renames stay on one file system)."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{threading.get_ident()}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- helpers
def _read_chunks(ds) -> dict[str, int]:
    """Dask chunks for reading: the store's along time, whole store chunks in y/x up to :data:`READ_SIDE` pixels."""
    cy, cx = ds["gpp"].encoding["chunks"][-2:]
    return {"y": cy * max(1, READ_SIDE // cy), "x": cx * max(1, READ_SIDE // cx)}


def _history(attrs, fmt: str) -> str:
    from unique_xr import __version__

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{now} exported to {fmt} by unique_xr {__version__} from snapshot {attrs.get('snapshot', '?')}"
    return f"{attrs['history']}\n{line}" if attrs.get("history") else line
