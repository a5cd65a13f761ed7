"""Canonical names, dimensions, units and CF attributes, and the checks run between stages.

Every stage hands the next one an ``xarray.Dataset`` with dims ``(time, y, x)`` (static layers:
``(y, x)``), pixel-centre coordinates from a :class:`~unique_xr.grid.GridSpec`, float32 data
with NaN for missing values, and CF attributes on each variable. The ``validate_*`` functions
here are called at stage boundaries so a mistake is caught where it is made.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from unique_xr.errors import MissingVariableError, UnitsError

DIMS: tuple[str, str, str] = ("time", "y", "x")
SPATIAL_DIMS: tuple[str, str] = ("y", "x")

GPP_UNITS = "g m-2 d-1"
GPP_STANDARD_NAME = "gross_primary_productivity_of_biomass_expressed_as_carbon"

#: Canonical variable names -> CF attributes. Bands are named by role (``red``, ``nir``...) so the
#: same index code works for MODIS and Landsat; the collection registry maps asset keys to roles.
VARIABLES: dict[str, dict[str, Any]] = {
    # surface reflectance (unitless, after scale/offset)
    "blue": {"long_name": "surface reflectance, blue", "units": "1", "valid_range": (-0.2, 1.6)},
    "green": {"long_name": "surface reflectance, green", "units": "1", "valid_range": (-0.2, 1.6)},
    "red": {"long_name": "surface reflectance, red", "units": "1", "valid_range": (-0.2, 1.6)},
    "nir": {"long_name": "surface reflectance, near infrared", "units": "1", "valid_range": (-0.2, 1.6)},
    "nir2": {"long_name": "surface reflectance, near infrared ~1.24 um", "units": "1", "valid_range": (-0.2, 1.6)},
    "swir1": {"long_name": "surface reflectance, shortwave infrared ~1.6 um", "units": "1", "valid_range": (-0.2, 1.6)},
    "swir2": {"long_name": "surface reflectance, shortwave infrared ~2.2 um", "units": "1", "valid_range": (-0.2, 1.6)},
    # land surface temperature
    "lst_day": {"long_name": "land surface temperature, day", "standard_name": "surface_temperature", "units": "K", "valid_range": (150.0, 360.0)},
    "lst_night": {"long_name": "land surface temperature, night", "standard_name": "surface_temperature", "units": "K", "valid_range": (150.0, 360.0)},
    # vegetation indices
    "ndvi": {"long_name": "normalized difference vegetation index", "units": "1", "valid_range": (-1.0, 1.0)},
    "evi": {"long_name": "enhanced vegetation index", "units": "1", "valid_range": (-1.0, 1.0)},
    "evi2": {"long_name": "two-band enhanced vegetation index", "units": "1", "valid_range": (-1.0, 1.0)},
    "nirv": {"long_name": "near-infrared reflectance of vegetation", "units": "1", "valid_range": (-1.0, 1.0)},
    "kndvi": {"long_name": "kernel normalized difference vegetation index", "units": "1", "valid_range": (0.0, 1.0)},
    "lswi": {"long_name": "land surface water index", "units": "1", "valid_range": (-1.0, 1.0)},
    # static layers
    "elevation": {"long_name": "surface elevation", "standard_name": "surface_altitude", "units": "m", "valid_range": (-500.0, 9000.0)},
    "slope": {"long_name": "terrain slope", "units": "degree", "valid_range": (0.0, 90.0)},
    # meteorological drivers. Air temperature: the records bound every daily mean (-89.2 degC,
    # Vostok 1983; 56.7 degC, Death Valley 1913), so a loader masking outside the range never drops a
    # real value, and the unit check on medians still refuses Kelvin (a median of 250-310).
    "air_temperature": {"long_name": "daily mean 2 m air temperature", "standard_name": "air_temperature", "units": "degC", "valid_range": (-90.0, 60.0)},
    "vpd": {"long_name": "daily mean vapour pressure deficit", "units": "hPa", "valid_range": (0.0, 120.0)},
    "shortwave_radiation": {"long_name": "daily mean downward shortwave radiation at the surface", "standard_name": "surface_downwelling_shortwave_flux_in_air", "units": "W m-2", "valid_range": (0.0, 500.0)},
    "precipitation": {"long_name": "daily total precipitation", "standard_name": "lwe_thickness_of_precipitation_amount", "units": "mm d-1", "valid_range": (0.0, 1000.0)},
    # coordinates
    "latitude": {"long_name": "latitude", "standard_name": "latitude", "units": "degrees_north", "valid_range": (-90.0, 90.0)},
    # masks
    "clear": {"long_name": "pixel passed the QA mask", "units": "1", "flag_values": (0, 1), "flag_meanings": "masked clear"},
    # target
    "gpp": {"long_name": "gross primary productivity", "standard_name": GPP_STANDARD_NAME, "units": GPP_UNITS, "valid_range": (0.0, 60.0)},
}


def cf_attrs(name: str, **extra: Any) -> dict[str, Any]:
    """CF attributes of canonical variable ``name`` (``valid_range`` as a list), merged with ``extra``."""
    attrs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in VARIABLES.get(name, {}).items()}
    attrs.update(extra)
    return attrs


def require_variables(ds, names: Iterable[str], *, purpose: str) -> None:
    """Raise :class:`MissingVariableError` listing what ``purpose`` needs and what ``ds`` has."""
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise MissingVariableError(
            f"{purpose} needs variable(s) {missing}, but the dataset has {sorted(map(str, ds.data_vars))}. "
            "Load the bands it needs (see unique_xr.search.collections for each collection's band roles) "
            "or rename yours to the canonical names."
        )


def validate_cube(ds, *, static: bool = False) -> None:
    """Check dims and coordinates of a stage output: ``(time, y, x)`` (``(y, x)`` when static)."""
    want = SPATIAL_DIMS if static else DIMS
    for name, var in ds.data_vars.items():
        if tuple(var.dims[-2:]) != SPATIAL_DIMS:
            raise ValueError(
                f"Variable {name!r} has dims {var.dims}; unique_xr cubes end in ('y', 'x'). "
                "Transpose with ds.transpose(..., 'y', 'x')."
            )
    for dim in want:
        if dim not in ds.dims:
            raise ValueError(f"Cube is missing dimension {dim!r}; it has {tuple(ds.dims)} and needs {want}.")


#: values a unit check's median is taken over (larger inputs are sampled with a stride)
CHECK_SAMPLE = 65_536


def sample_for_check(values: np.ndarray) -> np.ndarray:
    """At most about :data:`CHECK_SAMPLE` of ``values`` (flattened, every n-th), for :func:`check_range`:
    a median per block stays cheap on large blocks."""
    flat = np.asarray(values).reshape(-1)
    return flat[:: max(1, flat.size // CHECK_SAMPLE)]


def check_range(
    values: np.ndarray,
    name: str,
    valid_range: tuple[float, float] | None = None,
    *,
    what: str = "",
    message: str | None = None,
) -> None:
    """Raise :class:`UnitsError` when finite ``values`` fall far outside the valid range of ``name``.

    Catches unit mistakes (reflectance left as integer DN, Kelvin given as Celsius, a scale applied
    twice). Only the median is tested, so a few bad pixels do not trip it. ``message``, if given,
    replaces the default text; ``{median}`` in it is filled with the median seen.
    """
    lo, hi = valid_range if valid_range is not None else VARIABLES[name]["valid_range"]
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return
    med = float(np.median(finite))
    if not (lo <= med <= hi):
        if message is not None:
            raise UnitsError(message.format(median=med))
        units = VARIABLES.get(name, {}).get("units", "?")
        raise UnitsError(
            f"{what or name}: median value {med:.4g} is outside the valid range [{lo}, {hi}] {units}. "
            "This usually means a unit mistake — integer DN not scaled, scale applied twice, "
            "or Kelvin vs Celsius. Check the collection's scale/offset."
        )


def is_dask(obj) -> bool:
    """Whether an xarray object is backed by Dask (and so must stay lazy)."""
    return obj.chunks is not None
