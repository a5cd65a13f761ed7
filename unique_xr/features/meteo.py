"""Daily meteorological drivers on the target grid from an ERA5 / ERA5-Land style reanalysis.

The models need four daily drivers, float32 on the target grid with dims ``(time, y, x)``:

=======================  =========  =====================================================
``air_temperature``      degC       daily mean of 2 m temperature (``t2m``)
``vpd``                  hPa        daily mean vapour pressure deficit from ``t2m``, ``d2m``
``shortwave_radiation``  W m-2      daily mean downward shortwave flux from ``ssrd`` (J m-2)
``precipitation``        mm d-1     daily total precipitation from ``tp`` (m)
=======================  =========  =====================================================

Order of operations: select the area and days, derive the hourly quantities (VPD is computed at
each time step, then averaged, since it is non-linear in temperature), aggregate to days on the
reanalysis grid, and only then interpolate to the target pixel centres. Linear interpolation and
daily means/sums commute, so this equals interpolating every hour, at a fraction of the cost.

Accumulated variables (``ssrd``, ``tp``) come in three flavours, handled by ``accumulation``:

* ``"per_step"``: ERA5 hourly (CDS single levels, ARCO-ERA5): each value is the accumulation over
  the step *ending* at its time stamp; the day ``D`` total is the sum over the steps ending in
  ``(D 00:00, D+1 00:00]``.
* ``"since_midnight"``: ERA5-Land hourly: values accumulate from 00 UTC, so the value at
  ``D+1 00:00`` is the full total of day ``D`` (and values at other hours are partial sums).
* daily input (one time step per day): the value is the day's total (e.g. the ``*_sum`` bands of
  ERA5-Land DAILY_AGGR); daily ``W m-2`` or ``mm`` inputs are taken as daily means / totals.

``"auto"`` picks ``since_midnight`` when the dataset's attributes mention ERA5-Land, or, for data
already in memory, when the series only grows within each day and drops after 00 UTC; otherwise
``per_step``. Dask-backed data cannot be inspected without computing, so pass ``accumulation=``
explicitly for ERA5-Land files without such attributes. The choice is recorded in ``attrs``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from unique_xr.errors import GridError, MissingVariableError, SpecError, UnitsError
from unique_xr.grid import GridSpec, pixel_lonlat
from unique_xr.schema import cf_attrs, check_range

__all__ = [
    "open_reanalysis",
    "daily_drivers",
    "saturation_vapour_pressure",
    "vapour_pressure_deficit",
    "bilinear_regular",
    "DRIVERS",
]

#: The drivers :func:`daily_drivers` can make, and the reanalysis variables each one needs.
DRIVERS: dict[str, tuple[str, ...]] = {
    "air_temperature": ("t2m",),
    "vpd": ("t2m", "d2m"),
    "shortwave_radiation": ("ssrd",),
    "precipitation": ("tp",),
}

#: Accepted names for each canonical short name, in order of preference. ``*_hourly`` bands
#: (Earth Engine ERA5-Land HOURLY) are per-step accumulations.
_ALIASES: dict[str, tuple[str, ...]] = {
    "t2m": ("t2m", "2t", "2m_temperature", "temperature_2m", "2m_air_temperature"),
    "d2m": ("d2m", "2d", "2m_dewpoint_temperature", "dewpoint_temperature_2m"),
    "ssrd": (
        "ssrd",
        "surface_solar_radiation_downwards_hourly",
        "surface_solar_radiation_downwards",
        "surface_solar_radiation_downwards_sum",
    ),
    "tp": ("tp", "total_precipitation_hourly", "total_precipitation", "total_precipitation_sum"),
}
_PER_STEP_ALIASES = {"surface_solar_radiation_downwards_hourly", "total_precipitation_hourly"}
_ACCUMULATION_ATTR = "unique_xr_accumulation"

_KELVIN = {"k", "kelvin", "kelvins", "degk", "deg_k"}
_CELSIUS = {"degc", "deg_c", "c", "°c", "celsius", "degree_celsius", "degrees_celsius", "degreec", "degc "}
_J_M2 = {"j m-2", "j m**-2", "j/m2", "j/m^2", "j m^-2", "jm-2"}
_W_M2 = {"w m-2", "w m**-2", "w/m2", "w/m^2", "w m^-2", "wm-2"}
_METRES = {"m", "metre", "metres", "meter", "meters", "m of water equivalent"}
_MILLIMETRES = {"mm", "kg m-2", "kg m**-2", "mm d-1", "mm/day", "mm day-1", "kg m-2 d-1"}

Accumulation = Literal["auto", "per_step", "since_midnight"]


# ---------------------------------------------------------------------------------------------
# numpy kernels
# ---------------------------------------------------------------------------------------------
def saturation_vapour_pressure(t_degc: np.ndarray) -> np.ndarray:
    """Saturation vapour pressure over water (hPa), Tetens' formula as given in FAO-56 (eq. 11).

    .. math:: e_s(T) = 6.108 \\exp\\left(\\frac{17.27\\,T}{T + 237.3}\\right)

    with ``T`` in degC (Allen et al. 1998, FAO Irrigation and Drainage Paper 56). The same form
    and coefficients are used by FLUXNET-derived drivers (e.g. rsofun/FluxDataKit), so tower and
    gridded VPD agree. Over water at all temperatures (no ice branch).

    Examples
    --------
    >>> from unique_xr.features.meteo import saturation_vapour_pressure
    >>> round(float(saturation_vapour_pressure(20.0)), 3)
    23.383
    """
    t = np.asarray(t_degc, dtype=np.float64)
    return 6.108 * np.exp(17.27 * t / (t + 237.3))


def vapour_pressure_deficit(t_degc: np.ndarray, dewpoint_degc: np.ndarray) -> np.ndarray:
    """Vapour pressure deficit (hPa) from air and dewpoint temperature (degC).

    ``VPD = e_s(T) - e_s(T_d)``: the actual vapour pressure is the saturation vapour pressure at
    the dewpoint; both from :func:`saturation_vapour_pressure` (Tetens / FAO-56). Negative values
    (dewpoint above air temperature, supersaturation or rounding) are set to 0.

    Examples
    --------
    >>> from unique_xr.features.meteo import vapour_pressure_deficit
    >>> round(float(vapour_pressure_deficit(25.0, 15.0)), 3)
    14.624
    """
    vpd = saturation_vapour_pressure(t_degc) - saturation_vapour_pressure(dewpoint_degc)
    return np.where(vpd < 0.0, 0.0, vpd)  # NaN stays NaN


def _neighbours(nodes: np.ndarray, points: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower index, upper index and weight of the upper node for ``points`` among ascending ``nodes``."""
    n = nodes.size
    p = np.clip(points, nodes[0], nodes[-1])
    if n == 1:
        zero = np.zeros(p.shape, dtype=np.intp)
        return zero, zero, np.zeros(p.shape)
    lo = np.clip(np.searchsorted(nodes, p, side="right") - 1, 0, n - 2)
    w = (p - nodes[lo]) / (nodes[lo + 1] - nodes[lo])
    if method == "nearest":
        w = np.where(w >= 0.5, 1.0, 0.0)
    return lo, lo + 1, w


def bilinear_regular(
    values: np.ndarray,
    lat_nodes: np.ndarray,
    lon_nodes: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    method: Literal["linear", "nearest"] = "linear",
) -> np.ndarray:
    """Interpolate fields on a regular lat/lon grid at arbitrary points.

    Parameters
    ----------
    values
        ``(..., nlat, nlon)`` fields on the nodes.
    lat_nodes, lon_nodes
        Strictly ascending node coordinates.
    lat, lon
        Point coordinates, arrays of one shape ``S`` (same longitude convention as ``lon_nodes``).
        Points beyond the outer nodes are clamped to them.
    method
        ``"linear"`` (bilinear) or ``"nearest"``.

    Returns
    -------
    numpy.ndarray
        ``(..., *S)``. Weights are renormalised over the non-NaN corners (e.g. the land-only
        nodes of ERA5-Land at a coast); a point whose corners are all NaN is NaN. A point on a
        node gets exactly that node's value.
    """
    values = np.asarray(values)
    lat, lon = np.broadcast_arrays(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
    i0, i1, wy = _neighbours(np.asarray(lat_nodes, dtype=np.float64), lat, method)
    j0, j1, wx = _neighbours(np.asarray(lon_nodes, dtype=np.float64), lon, method)
    num = np.zeros(values.shape[:-2] + lat.shape)
    den = np.zeros_like(num)
    for ii, jj, w in ((i0, j0, (1 - wy) * (1 - wx)), (i0, j1, (1 - wy) * wx), (i1, j0, wy * (1 - wx)), (i1, j1, wy * wx)):
        corner = values[..., ii, jj]
        ok = ~np.isnan(corner) & (w > 0)
        num += np.where(ok, corner * w, 0.0)
        den += np.where(ok, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


# ---------------------------------------------------------------------------------------------
# opening
# ---------------------------------------------------------------------------------------------
def _rename_variables(ds: xr.Dataset) -> xr.Dataset:
    renames: dict[str, str] = {}
    hints: dict[str, str] = {}
    for short, aliases in _ALIASES.items():
        for alias in aliases:
            if alias in ds.data_vars:
                renames[alias] = short
                if alias in _PER_STEP_ALIASES:
                    hints[short] = "per_step"
                break
    out = ds[list(renames)].rename({k: v for k, v in renames.items() if k != v})
    for short, hint in hints.items():
        out[short].attrs[_ACCUMULATION_ATTR] = hint
    return out


def _rename_coords(ds: xr.Dataset) -> xr.Dataset:
    renames = {}
    for canonical, aliases in (("time", ("valid_time", "date")), ("latitude", ("lat",)), ("longitude", ("lon",))):
        if canonical not in ds.variables:
            for alias in aliases:
                if alias in ds.variables:
                    renames[alias] = canonical
                    break
    ds = ds.rename(renames)
    for name in ("time", "latitude", "longitude"):
        if name not in ds.dims:
            raise SpecError(
                f"The reanalysis has no {name!r} dimension (accepted: time/valid_time, latitude/lat, "
                f"longitude/lon); it has dims {dict(ds.sizes)}."
            )
    if "number" in ds.dims:  # ensemble member dim
        if ds.sizes["number"] != 1:
            raise SpecError(f"Ensemble data with {ds.sizes['number']} members: select one, e.g. ds.isel(number=0).")
        ds = ds.squeeze("number", drop=True)
    if "expver" in ds.dims:  # ERA5 final (1) and ERA5T (5) in one file: take the first non-missing
        parts = [ds.isel(expver=i, drop=True) for i in range(ds.sizes["expver"])]
        merged = parts[0]
        for part in parts[1:]:
            merged = merged.combine_first(part)
        ds = merged
    extra = set(ds.dims) - {"time", "latitude", "longitude"}
    if extra:
        raise SpecError(f"Unexpected dimension(s) {sorted(extra)} in the reanalysis; select single levels first.")
    return ds.drop_vars([c for c in ("number", "expver", "step", "surface") if c in ds.coords and c not in ds.dims])


def open_reanalysis(path_or_ds: str | os.PathLike | xr.Dataset, *, chunks: Any = None) -> xr.Dataset:
    """Open an ERA5 / ERA5-Land style reanalysis with canonical names, lazily.

    Parameters
    ----------
    path_or_ds
        A NetCDF file, a Zarr store (local directory, or a URL such as ``gs://...`` read with
        fsspec), or an ``xarray.Dataset``.
        Recognised variables: ``t2m`` / ``2m_temperature`` / ``temperature_2m``, ``d2m`` /
        ``2m_dewpoint_temperature`` / ``dewpoint_temperature_2m``, ``ssrd`` /
        ``surface_solar_radiation_downwards[_hourly|_sum]``, ``tp`` / ``total_precipitation[_hourly|_sum]``.
        Coordinates: ``latitude``/``lat``, ``longitude``/``lon``, ``time``/``valid_time``.
    chunks
        Dask chunks for files (default ``{}``: the file's own chunks, lazy). Ignored for Datasets.

    Returns
    -------
    xarray.Dataset
        Variables renamed to ``t2m``, ``d2m``, ``ssrd``, ``tp`` (those present; others dropped),
        dims ``(time, latitude, longitude)`` sorted by time, with the original attributes.
    """
    if isinstance(path_or_ds, xr.Dataset):
        ds = path_or_ds
    elif "://" in os.fspath(path_or_ds):  # a remote Zarr store (e.g. ARCO-ERA5 on gs://), via fsspec
        ds = xr.open_zarr(os.fspath(path_or_ds), chunks={} if chunks is None else chunks)
    else:
        path = Path(path_or_ds)
        if not path.exists():
            raise FileNotFoundError(f"No reanalysis file or store at {str(path)!r}. Check the path (NetCDF file or Zarr store).")
        chunks = {} if chunks is None else chunks
        if path.is_dir() or path.suffix == ".zarr":
            ds = xr.open_zarr(path, chunks=chunks)
        else:
            from unique_xr._optional import import_optional

            try:
                import_optional("h5netcdf", purpose="reading NetCDF reanalysis files")
            except ImportError:
                import_optional("netCDF4", purpose="reading NetCDF reanalysis files")
            ds = xr.open_dataset(path, chunks=chunks)
        ds.attrs.setdefault("source_path", str(path))
    ds = _rename_coords(ds)
    attrs = dict(ds.attrs)
    out = _rename_variables(ds)
    if not bool(np.all(np.diff(out["time"].values.astype("datetime64[ns]").astype(np.int64)) > 0)):
        out = out.sortby("time")
    out.attrs = attrs
    return out


# ---------------------------------------------------------------------------------------------
# units
# ---------------------------------------------------------------------------------------------
def _units(da: xr.DataArray) -> str:
    return str(da.attrs.get("units", "")).strip().lower()


def _check_block(block: np.ndarray, lo: float, hi: float, message: str) -> np.ndarray:
    """Kernel: return ``block`` unchanged, or raise UnitsError when its finite median is outside [lo, hi]."""
    check_range(block, "", (lo, hi), message=message)
    return block


def _checked(da: xr.DataArray, lo: float, hi: float, message: str) -> xr.DataArray:
    """Lazily attach a range check: raises at compute time on Dask, immediately on numpy."""
    return xr.apply_ufunc(
        _check_block,
        da,
        kwargs={"lo": lo, "hi": hi, "message": message},
        dask="parallelized",
        output_dtypes=[da.dtype],
        keep_attrs=True,
    )


def _temperature_degc(da: xr.DataArray, name: str) -> xr.DataArray:
    units = _units(da)
    if units in _KELVIN or units == "":
        seen = units or "none (ERA5 default K assumed)"
        out = _checked(
            da,
            150.0,
            350.0,
            f"{name}: units {seen!r} say Kelvin, but the median value is {{median:.4g}}, which looks like "
            "degC. Fix the 'units' attribute (ds[name].attrs['units'] = 'degC') or convert the values to K.",
        )
        return out - 273.15
    if units in _CELSIUS:
        return _checked(
            da,
            -90.0,
            60.0,
            f"{name}: units {da.attrs.get('units')!r} say degC, but the median value is {{median:.4g}}, which "
            "looks like Kelvin. Fix the 'units' attribute (ds[name].attrs['units'] = 'K') or subtract 273.15.",
        )
    raise UnitsError(f"{name}: unknown temperature units {da.attrs.get('units')!r}; expected 'K' or 'degC'.")


# ---------------------------------------------------------------------------------------------
# time
# ---------------------------------------------------------------------------------------------
def _step(times: pd.DatetimeIndex) -> pd.Timedelta:
    if len(times) < 2:
        return pd.Timedelta(days=1)
    diffs = np.unique(np.diff(times.values))
    step = pd.Timedelta(np.median(np.diff(times.values)))
    if len(diffs) > 1 and step < pd.Timedelta(days=1):
        # gaps are fine (they make incomplete days), other irregular steps are not
        if np.any(np.asarray(diffs) % np.timedelta64(step) != np.timedelta64(0)):
            raise SpecError(f"Irregular reanalysis time steps {sorted({pd.Timedelta(d) for d in diffs})}; resample first.")
    if step < pd.Timedelta(days=1) and pd.Timedelta(days=1) % step != pd.Timedelta(0):
        raise SpecError(f"The reanalysis step {step} does not divide a day; expected hourly, 3-hourly, 6-hourly or daily.")
    if step > pd.Timedelta(days=1):
        raise SpecError(f"The reanalysis step is {step}; daily_drivers needs daily or sub-daily data.")
    return step


def _complete_days(labels: pd.DatetimeIndex, per_day: int) -> pd.DatetimeIndex:
    days = labels.floor("D")
    counts = pd.Series(1, index=days).groupby(level=0).sum()
    return pd.DatetimeIndex(counts.index[counts.values == per_day])


def _daily_mean(da: xr.DataArray, step: pd.Timedelta) -> tuple[xr.DataArray, pd.DatetimeIndex]:
    """Daily means over ``[D 00:00, D+1 00:00)`` and the days with every step present."""
    per_day = int(pd.Timedelta(days=1) / step)
    times = pd.DatetimeIndex(da["time"].values)
    complete = _complete_days(times, per_day)
    if per_day == 1:
        return da.assign_coords(time=times.floor("D")), complete
    daily = da.resample(time="1D").mean(skipna=False)
    return daily, complete


def _looks_since_midnight(da: xr.DataArray, step: pd.Timedelta) -> bool:
    """For in-memory data: does the spatial mean grow (never fall) within days and drop after 00 UTC?"""
    series = np.asarray(da.mean(("latitude", "longitude"), skipna=True).values, dtype=np.float64)
    times = pd.DatetimeIndex(da["time"].values)
    if series.size < 3 or not np.isfinite(series).any():
        return False
    diffs = np.diff(series)
    consecutive = np.diff(times.values) == np.timedelta64(step)
    after_reset = (times[1:] - step).floor("D") != (times[:-1] - step).floor("D")  # step ending at 00 -> next one starts a day
    scale = np.nanmax(np.abs(series)) or 1.0
    within = consecutive & ~np.asarray(after_reset)
    at_reset = consecutive & np.asarray(after_reset)
    never_falls = bool(np.all(diffs[within] >= -1e-6 * scale))
    accumulates = bool(np.any(diffs[within] > 1e-6 * scale))  # a constant series is per-step
    drops = bool(np.any(diffs[at_reset] < -1e-6 * scale))
    return never_falls and accumulates and drops


def _accumulation_kind(ds: xr.DataArray, da: xr.DataArray, accumulation: Accumulation, step: pd.Timedelta) -> str:
    if step >= pd.Timedelta(days=1):
        return "daily_total"
    if accumulation != "auto":
        return accumulation
    if da.attrs.get(_ACCUMULATION_ATTR):
        return str(da.attrs[_ACCUMULATION_ATTR])
    text = " ".join(str(v) for attrs in (ds.attrs, da.attrs) for v in attrs.values()).lower()
    if "era5-land" in text or "era5_land" in text or "era5land" in text:
        return "since_midnight"
    if da.chunks is None:  # in memory: the values tell (a running total that resets at 00 UTC)
        return "since_midnight" if _looks_since_midnight(da, step) else "per_step"
    if "era5" in text:  # ERA5 proper (the Land variant was caught above): per-step accumulations
        return "per_step"
    raise SpecError(
        f"Cannot tell how {da.name!r} accumulates without reading it: its attributes name neither ERA5 nor "
        "ERA5-Land, and the data are lazy. Summing ERA5-Land's running totals as if they were hourly "
        "amounts would multiply daily precipitation and radiation several times, so unique_xr will not "
        "guess. Pass accumulation='per_step' (ERA5: each step holds the amount of that hour) or "
        "accumulation='since_midnight' (ERA5-Land: totals since 00 UTC) to daily_drivers()."
    )


def _daily_total(da: xr.DataArray, kind: str, step: pd.Timedelta) -> tuple[xr.DataArray, pd.DatetimeIndex]:
    """Daily totals of an accumulated variable and the days they are complete for."""
    times = pd.DatetimeIndex(da["time"].values)
    if kind == "daily_total":
        return da.assign_coords(time=times.floor("D")), pd.DatetimeIndex(times.floor("D").unique())
    if kind == "since_midnight":
        midnight = np.flatnonzero(times == times.floor("D"))
        out = da.isel(time=midnight)
        days = times[midnight] - pd.Timedelta(days=1)
        return out.assign_coords(time=days), days
    if kind == "per_step":
        starts = times - step  # label each step by its start: steps ending at D+1 00:00 belong to D
        per_day = int(pd.Timedelta(days=1) / step)
        shifted = da.assign_coords(time=starts)
        daily = shifted.resample(time="1D").sum(skipna=False)
        return daily, _complete_days(starts, per_day)
    raise SpecError(f"accumulation must be 'auto', 'per_step' or 'since_midnight', got {kind!r}.")


def _day_range(time: Any, times: pd.DatetimeIndex) -> tuple[pd.Timestamp, pd.Timestamp]:
    if time is None:
        return times[0].floor("D"), times[-1].floor("D")
    if isinstance(time, slice):
        start, stop = time.start, time.stop
    elif isinstance(time, (tuple, list)) and len(time) == 2:
        start, stop = time
    else:
        start = stop = time
    first = pd.Timestamp(start).floor("D") if start is not None else times[0].floor("D")
    last = pd.Timestamp(stop).floor("D") if stop is not None else times[-1].floor("D")
    if last < first:
        raise SpecError(f"time=({start!r}, {stop!r}) ends before it starts.")
    return first, last


# ---------------------------------------------------------------------------------------------
# space
# ---------------------------------------------------------------------------------------------
def _interp_block(values, y, x, *, crs, lat_nodes, lon_nodes, lon_360, method):
    """Kernel for one output block: pixel centres -> lat/lon (pyproj) -> bilinear on the nodes."""
    lon, lat = pixel_lonlat(y, x, crs)
    if lon_360:
        lon = np.mod(lon, 360.0)
    return bilinear_regular(values, lat_nodes, lon_nodes, lat, lon, method=method).astype(np.float32)


def _subset_domain(ds: xr.Dataset, grid: GridSpec) -> tuple[xr.Dataset, bool]:
    """Cut the reanalysis to the grid's lat/lon box plus one node; check coverage; sort ascending."""
    west, south, east, north = grid.bounds_latlon
    lon = np.asarray(ds["longitude"].values, dtype=np.float64)
    lat = np.asarray(ds["latitude"].values, dtype=np.float64)
    lon_360 = bool(lon.max() > 180.0)
    if lon_360:
        if west < 0 <= east:  # the grid straddles Greenwich: move the dataset to -180..180
            ds = ds.assign_coords(longitude=((ds["longitude"] + 180.0) % 360.0) - 180.0).sortby("longitude")
            lon = np.asarray(ds["longitude"].values, dtype=np.float64)
            lon_360 = False
        else:
            west, east = west % 360.0, east % 360.0
    if lat[0] > lat[-1]:
        ds = ds.isel(latitude=slice(None, None, -1))
        lat = lat[::-1]
    if lon[0] > lon[-1]:
        ds = ds.isel(longitude=slice(None, None, -1))
        lon = lon[::-1]
    dlat = float(np.median(np.diff(lat))) if lat.size > 1 else 0.0
    dlon = float(np.median(np.diff(lon))) if lon.size > 1 else 0.0
    # pixels up to half a reanalysis cell beyond the outer nodes take the edge nodes' values
    if west < lon[0] - dlon / 2 or east > lon[-1] + dlon / 2 or south < lat[0] - dlat / 2 or north > lat[-1] + dlat / 2:
        raise GridError(
            f"The target grid (lon {west:.4f}..{east:.4f}, lat {south:.4f}..{north:.4f}) is not inside the "
            f"reanalysis domain (lon {lon[0]:.4f}..{lon[-1]:.4f}, lat {lat[0]:.4f}..{lat[-1]:.4f}, "
            f"spacing {dlon:g} x {dlat:g} deg). Download the reanalysis for an area that covers the grid "
            "with at least one node of margin."
        )
    i0 = max(int(np.searchsorted(lat, south, side="right")) - 2, 0)
    i1 = min(int(np.searchsorted(lat, north, side="left")) + 2, lat.size)
    j0 = max(int(np.searchsorted(lon, west, side="right")) - 2, 0)
    j1 = min(int(np.searchsorted(lon, east, side="left")) + 2, lon.size)
    return ds.isel(latitude=slice(i0, i1), longitude=slice(j0, j1)), lon_360


def _regrid(daily: xr.DataArray, grid: GridSpec, *, lon_360: bool, method: str, chunks: Mapping[str, int]) -> xr.DataArray:
    kwargs = {
        "crs": grid.crs,
        "lat_nodes": np.asarray(daily["latitude"].values, dtype=np.float64),
        "lon_nodes": np.asarray(daily["longitude"].values, dtype=np.float64),
        "lon_360": lon_360,
        "method": method,
    }
    values = daily.transpose("time", "latitude", "longitude").data
    if daily.chunks is None:
        data = _interp_block(values, grid.y, grid.x, **kwargs)
    else:
        import dask.array as dsa

        values = values.rechunk({1: -1, 2: -1})
        ys = dsa.from_array(grid.y, chunks=chunks.get("y", 1024))
        xs = dsa.from_array(grid.x, chunks=chunks.get("x", 1024))
        data = dsa.blockwise(
            _interp_block, "tyx",
            values, "tab",
            ys, "y",
            xs, "x",
            concatenate=True,
            dtype=np.float32,
            meta=np.empty((0, 0, 0), dtype=np.float32),
            **kwargs,
        )
    return xr.DataArray(data, dims=("time", "y", "x"), coords={"time": daily["time"].values})


# ---------------------------------------------------------------------------------------------
# drivers
# ---------------------------------------------------------------------------------------------
def _shortwave(ds: xr.Dataset, da: xr.DataArray, accumulation: Accumulation, step: pd.Timedelta):
    units = _units(da)
    if units in _W_M2:
        daily, days = _daily_mean(da, step)
        return daily.clip(min=0.0), days, "mean of W m-2 values"
    if units not in _J_M2 and units != "":
        raise UnitsError(f"ssrd: unknown units {da.attrs.get('units')!r}; expected 'J m-2' (accumulated) or 'W m-2'.")
    kind = _accumulation_kind(ds, da, accumulation, step)
    total, days = _daily_total(da, kind, step)
    return (total / 86400.0).clip(min=0.0), days, kind


def _precipitation(ds: xr.Dataset, da: xr.DataArray, accumulation: Accumulation, step: pd.Timedelta):
    units = _units(da)
    if units in _METRES or units == "":
        factor = 1000.0
    elif units in _MILLIMETRES:
        factor = 1.0
    else:
        raise UnitsError(f"tp: unknown units {da.attrs.get('units')!r}; expected 'm' (ERA5) or 'mm'.")
    kind = _accumulation_kind(ds, da, accumulation, step)
    total, days = _daily_total(da, kind, step)
    return (total * factor).clip(min=0.0), days, kind  # ERA5 packs tiny negative totals


def daily_drivers(
    reanalysis: str | os.PathLike | xr.Dataset,
    grid: GridSpec,
    *,
    time: Any = None,
    method: Literal["linear", "nearest"] = "linear",
    variables: Sequence[str] = tuple(DRIVERS),
    accumulation: Accumulation = "auto",
    chunks: Mapping[str, int] | None = None,
) -> xr.Dataset:
    """Daily air temperature, VPD, shortwave radiation and precipitation on ``grid``.

    Parameters
    ----------
    reanalysis
        Path of a NetCDF file / Zarr store, or a Dataset (see :func:`open_reanalysis`), hourly
        (or 3-/6-hourly) or daily, ERA5 or ERA5-Land style. Units are read from ``attrs``:
        temperatures in K (or degC), ``ssrd`` in J m-2 (or W m-2), ``tp`` in m (or mm).
    grid
        Target grid. Values are interpolated at the latitude/longitude of each pixel centre
        (computed with pyproj from ``grid.x``/``grid.y``).
    time
        Days to make: ``None`` (all complete days), a date, ``(start, end)`` or ``slice(start, end)``,
        both ends inclusive.
    method
        ``"linear"`` (bilinear) or ``"nearest"``.
    variables
        Which drivers to make (default all four, see :data:`DRIVERS`).
    accumulation
        How ``ssrd``/``tp`` accumulate in sub-daily data; see the module docstring.
    chunks
        Output chunks along ``y``/``x`` for Dask input (default 1024 each); time chunks follow the input.

    Returns
    -------
    xarray.Dataset
        float32 variables with CF attributes, dims ``(time, y, x)``, ``time`` = day start (UTC),
        the grid's coordinates and ``spatial_ref``. Only days complete in every input variable
        are kept. Lazy on Dask input: nothing is computed while building; unit checks on values
        then run, and raise, at compute time.

    Raises
    ------
    MissingVariableError
        A needed reanalysis variable is absent.
    UnitsError
        Unknown units, or values that disagree with them (e.g. ~290 with units degC).
    GridError
        The grid is not inside the reanalysis domain.
    SpecError
        No complete day in the requested period, or irregular time steps.

    Notes
    -----
    VPD uses Tetens' formula in its FAO-56 form (:func:`saturation_vapour_pressure`), computed at
    each time step and then averaged. No elevation (lapse-rate) correction is applied.
    """
    unknown = [v for v in variables if v not in DRIVERS]
    if unknown or not variables:
        raise SpecError(f"Unknown driver(s) {unknown}; choose from {list(DRIVERS)}.")
    if method not in ("linear", "nearest"):
        raise SpecError(f"method must be 'linear' or 'nearest', got {method!r}.")
    ds = open_reanalysis(reanalysis)
    needed = sorted({name for v in variables for name in DRIVERS[v]})
    missing = [n for n in needed if n not in ds.data_vars]
    if missing:
        accepted = {n: list(_ALIASES[n]) for n in missing}
        raise MissingVariableError(
            f"Drivers {list(variables)} need reanalysis variable(s) {missing} (accepted names: {accepted}), but the "
            f"dataset has {sorted(map(str, ds.data_vars))}. Download them, or ask for fewer drivers with variables=."
        )
    ds, lon_360 = _subset_domain(ds[needed], grid)
    times = pd.DatetimeIndex(ds["time"].values)
    step = _step(times)
    first, last = _day_range(time, times)
    ds = ds.sel(time=slice(first, last + pd.Timedelta(days=1)))
    if ds.sizes["time"] == 0:
        raise SpecError(f"No reanalysis time steps between {first.date()} and {last.date()}; the data cover {times[0]} .. {times[-1]}.")

    daily: dict[str, xr.DataArray] = {}
    day_sets: list[pd.DatetimeIndex] = []
    notes: dict[str, str] = {}
    if "air_temperature" in variables or "vpd" in variables:
        t = _temperature_degc(ds["t2m"], "t2m")
        if "air_temperature" in variables:
            daily["air_temperature"], days = _daily_mean(t, step)
            day_sets.append(days)
        if "vpd" in variables:
            td = _temperature_degc(ds["d2m"], "d2m")
            vpd = xr.apply_ufunc(vapour_pressure_deficit, t, td, dask="parallelized", output_dtypes=[np.float64])
            daily["vpd"], days = _daily_mean(vpd, step)
            day_sets.append(days)
    if "shortwave_radiation" in variables:
        daily["shortwave_radiation"], days, notes["ssrd"] = _shortwave(ds, ds["ssrd"], accumulation, step)
        day_sets.append(days)
    if "precipitation" in variables:
        daily["precipitation"], days, notes["tp"] = _precipitation(ds, ds["tp"], accumulation, step)
        day_sets.append(days)

    wanted = pd.date_range(first, last, freq="D")
    keep = wanted
    for days in day_sets:
        keep = keep.intersection(days)
    if keep.empty:
        raise SpecError(
            f"No complete day between {first.date()} and {last.date()} in the reanalysis ({times[0]} .. {times[-1]}, "
            f"step {step}): a day needs every step from 00 UTC to 24 UTC (accumulations: {notes or 'none'})."
        )

    chunks = dict(chunks or {})
    out = {}
    for name in variables:
        field = daily[name].sel(time=keep)
        field = _regrid(field, grid, lon_360=lon_360, method=method, chunks=chunks)
        lo, hi = cf_attrs(name)["valid_range"]
        field = _checked(
            field,
            lo,
            hi,
            f"{name}: daily median {{median:.4g}} {cf_attrs(name)['units']} is outside [{lo}, {hi}]; check the units "
            "of the reanalysis variable it comes from.",
        )
        field.attrs = cf_attrs(name, grid_mapping="spatial_ref")
        out[name] = field
    result = grid.attach(xr.Dataset(out))
    result["time"].attrs = {"long_name": "day (UTC) the value covers, 00 UTC start", "standard_name": "time"}
    result.attrs = {
        "source": str(ds.attrs.get("source_path", ds.attrs.get("title", "reanalysis dataset"))),
        "interpolation": f"{'bilinear' if method == 'linear' else 'nearest'} at pixel-centre lat/lon (pyproj)",
        "vpd_formula": "Tetens (FAO-56 eq. 11): es = 6.108 exp(17.27 T / (T + 237.3)) hPa; VPD = es(T) - es(Td), hourly then daily mean",
        **{f"accumulation_{k}": v for k, v in notes.items()},
    }
    return result

