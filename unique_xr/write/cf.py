"""The national cube's layout: CF 1.10 variables, coordinates, bounds and provenance attributes.

:func:`cube_template` is the empty cube the job writes first (coordinates and metadata, no data);
the work units then fill its regions. Every attribute is a string or a number (NetCDF has no
booleans), so any export of the store passes through ``to_netcdf``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from unique_xr.grid import GridSpec
from unique_xr.schema import GPP_STANDARD_NAME, GPP_UNITS

__all__ = ["CONVENTIONS", "cube_template", "global_attrs", "landcover_flags", "netcdf_safe"]

CONVENTIONS = "CF-1.10"
TIME_UNITS = "days since 1970-01-01"


def landcover_flags(classes: Mapping[int, str]) -> dict[str, Any]:
    """CF flag attributes of a class map: ``flag_values`` and ``flag_meanings``."""
    codes = sorted(classes)
    return {"flag_values": np.array(codes, dtype=np.uint8), "flag_meanings": " ".join(classes[c] for c in codes)}


def cube_template(fine: GridSpec, days: Sequence[Any], *, members: int, chunk: int, time_chunk: int,
                  classes: Mapping[int, str] | None, attrs: Mapping[str, Any]):
    """The lazy, empty cube: ``gpp`` (and ``gpp_spread``), ``land_cover``, ``time_bnds``, CF attributes.

    Data variables are Dask arrays of NaN (nothing is computed; the job writes only their metadata),
    coordinates and ``time_bnds`` are real values.
    """
    import dask.array as dsa
    import pandas as pd
    import xarray as xr

    time = pd.DatetimeIndex(days).normalize()
    ny, nx = fine.shape
    shape, chunks = (len(time), ny, nx), (time_chunk, chunk, chunk)

    def empty():
        return dsa.full(shape, np.nan, dtype=np.float32, chunks=chunks)

    ds = xr.Dataset(coords={"time": time})
    ds["gpp"] = (("time", "y", "x"), empty(), {
        "standard_name": GPP_STANDARD_NAME, "long_name": "gross primary productivity (daily mean, 30 m)",
        "units": GPP_UNITS, "cell_methods": "time: mean",
        "comment": f"GPP_M (MODIS, daily, coarse grid) downscaled by a diffusion model; mean of {members} member(s)"})
    if members > 1:
        ds["gpp_spread"] = (("time", "y", "x"), empty(), {
            "long_name": f"standard deviation of gross primary productivity over the {members} ensemble members",
            "units": GPP_UNITS, "cell_methods": "time: mean"})
    if classes:
        ds["land_cover"] = (("y", "x"), dsa.zeros((ny, nx), dtype=np.uint8, chunks=(chunk, chunk)), {
            "long_name": "dominant land-cover class of the 30 m pixel", **landcover_flags(classes)})
    bounds = np.stack([time.values, (time + pd.Timedelta(days=1)).values], axis=1)
    ds["time_bnds"] = (("time", "nv"), bounds)
    ds = fine.attach(ds)
    ds["time"].attrs = {"standard_name": "time", "long_name": "day", "axis": "T", "bounds": "time_bnds"}
    for name in ("x", "y"):
        ds[name].attrs["long_name"] = f"{name} coordinate of projection (pixel centre)"
    ds.attrs = dict(attrs)
    for name in ds.data_vars:
        if name != "time_bnds":
            ds[name].encoding = {"chunks": chunks if ds[name].ndim == 3 else (chunk, chunk),
                                 **({"_FillValue": np.float32(np.nan)} if ds[name].dtype == np.float32 else
                                    {"_FillValue": np.uint8(0)})}
    for name in ("time", "time_bnds"):
        ds[name].encoding = {"units": TIME_UNITS, "calendar": "standard", "dtype": "int32"}
    return ds


def global_attrs(*, title: str, institution: str, references: str, comment: str | None, spec_json: str,
                 job_token: str, model_tokens: Mapping[str, str], input_items: Mapping[str, Sequence[str]],
                 version: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """CF global attributes plus provenance: the spec (JSON), its token, the models' tokens and the items used."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = {
        "title": title, "Conventions": CONVENTIONS, "institution": institution,
        "source": "unique_xr national cube job: tower-trained LightGBM GPP_M (MODIS) downscaled to 30 m by a "
                  "conditional diffusion model (UNIQUE, EGU26-4160)",
        "history": f"{now} created by unique_xr {version} (unique-xr cube run)",
        "references": references,
        "unique_xr_version": version, "job_spec": spec_json, "job_token": job_token,
        "model_tokens": json.dumps(dict(model_tokens), sort_keys=True),
        "input_items": json.dumps({k: list(v) for k, v in input_items.items()}, sort_keys=True),
        **({"comment": comment} if comment else {}), **dict(extra or {}),
    }
    return netcdf_safe(out)


def netcdf_safe(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes NetCDF can hold: booleans become 0/1 ints, None is dropped, mappings become JSON."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, (bool, np.bool_)):
            value = int(value)
        elif isinstance(value, Mapping):
            value = json.dumps(value, sort_keys=True, default=str)
        out[key] = value
    return out
