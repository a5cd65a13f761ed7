"""Combining cubes of the data layer: static layers over the years, reflectance with its day's drivers.

* :func:`latest_valid`: ``(time, y, x)`` -> ``(y, x)``, the newest map wins and older ones fill its gaps.
* :func:`with_drivers`: each reflectance time gets the daily drivers of its calendar day.

Both are lazy on chunked input.
"""

from __future__ import annotations

from unique_xr.errors import GridError, MissingVariableError, SpecError

__all__ = ["latest_valid", "with_drivers"]


def latest_valid(da):
    """``(time, y, x)`` -> ``(y, x)``: per pixel, the most recent non-missing value (lazy).

    For static layers found at any date (a DEM, yearly land cover): the newest map wins and older
    ones only fill its gaps. Unlike a max over time, class codes of different years never mix.
    """
    out = da.isel(time=-1, drop=True)
    for i in range(da.sizes["time"] - 2, -1, -1):
        out = out.fillna(da.isel(time=i, drop=True))
    return out


def with_drivers(reflectance, drivers):
    """``reflectance`` with the daily drivers of the same calendar day at each of its times (lazy).

    Landsat times carry the overpass time of day while daily drivers are stamped at midnight: each
    reflectance time gets the drivers of its day and keeps its own time stamp. Both cubes must be on
    the same grid (same ``x``/``y``).
    """
    import pandas as pd
    import xarray as xr

    days = pd.DatetimeIndex(reflectance["time"].values).normalize()
    have = pd.DatetimeIndex(drivers["time"].values).normalize()
    if have.has_duplicates:
        raise SpecError(
            f"The drivers have more than one time step on {[str(d.date()) for d in have[have.duplicated()][:3]]}; "
            "with_drivers needs daily drivers (unique_xr.features.meteo.daily_drivers makes them)."
        )
    absent = days.difference(have)
    if len(absent):
        raise MissingVariableError(
            f"The drivers have no values on {[str(d.date()) for d in absent[:5]]}; they cover "
            f"{have.min().date()}..{have.max().date()}. Build them over the reflectance cube's period "
            "(DataLayerSpec.datetime, or daily_drivers(..., time=(start, end)))."
        )
    clash = sorted(set(map(str, reflectance.data_vars)) & set(map(str, drivers.data_vars)))
    if clash:
        raise SpecError(f"Reflectance and drivers both have variables {clash}; rename one before combining them.")
    met = drivers[list(drivers.data_vars)].assign_coords(time=have)
    met = met.sel(time=days).assign_coords(time=reflectance["time"].values)
    try:
        return xr.merge([reflectance, met], join="exact", compat="override", combine_attrs="override")
    except ValueError as err:
        raise GridError(
            f"Reflectance ({reflectance.sizes['y']} x {reflectance.sizes['x']}) and drivers "
            f"({drivers.sizes['y']} x {drivers.sizes['x']}) are not on the same grid: {err}. Make the drivers "
            "with daily_drivers(reanalysis, grid) on the reflectance cube's GridSpec."
        ) from err
