"""A seeded synthetic forest cube: the annual CNN's inputs on a small grid, with gaps.

:func:`synthetic_forest_cube` returns an :class:`xarray.Dataset` with dims ``(time, y, x)`` holding
the time-varying inputs of the annual GPP/NEE CNN, named as :data:`unique_xr.models.cnn.schema.INPUTS`
names them (``lai``, ``evi``, ``et``, ``t_day``, ``t_night``, ``precip``, in those units), and a
static ``igbp`` land-cover layer ``(y, x)`` with MODIS MCD12Q1 ``LC_Type1`` numbers 1-17 (the
order of :data:`unique_xr.towers.sites.IGBP_CLASSES`; forests are 1-5).

Every pixel follows a seasonal cycle shaped by its class: evergreen forests keep most of their
leaves through the winter, deciduous ones lose them, grasslands and crops green up later and
shorter, water stays bare. Temperature follows one regional cycle plus a small per-pixel offset;
precipitation is a skewed daily draw. ``missing`` is the share of cells (per variable and time
step) set to NaN at random, as clouds and bad retrievals leave them. Values depend on the seed and
the grid only; ``chunks`` chunks the same values with Dask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from unique_xr.errors import SpecError
from unique_xr.grid import GridSpec
from unique_xr.models.cnn.schema import INPUTS
from unique_xr.towers.sites import IGBP_CLASSES

__all__ = ["FOREST_CUBE_STEPS", "synthetic_forest_cube"]

#: Time steps of the generator: ``monthly`` (first of each month), ``8-day`` (days 1, 9, ... as
#: the MODIS 8-day products) and ``daily``.
FOREST_CUBE_STEPS = ("monthly", "8-day", "daily")

#: Land-cover classes drawn (LC_Type1 numbers) and their shares: mostly forest, some not.
_CLASSES = (1, 2, 4, 5, 10, 12, 17)  # ENF, EBF, DBF, MF, GRA, CRO, WAT
_SHARES = (0.25, 0.1, 0.25, 0.15, 0.1, 0.1, 0.05)
#: class number -> (winter greenness 0-1, green-up day, senescence day)
_PHENOLOGY = {1: (0.8, 80, 300), 2: (0.95, 60, 330), 3: (0.2, 130, 260), 4: (0.15, 110, 290),
              5: (0.5, 100, 295), 10: (0.1, 120, 240), 12: (0.05, 140, 230), 17: (0.0, 120, 240)}
_PEAK_LAI = {1: 4.5, 2: 5.5, 3: 3.0, 4: 5.0, 5: 4.8, 10: 2.0, 12: 3.0, 17: 0.0}


def _times(years: Sequence[int], time_step: str) -> pd.DatetimeIndex:
    if time_step == "monthly":
        return pd.DatetimeIndex([pd.Timestamp(y, m, 1) for y in years for m in range(1, 13)])
    if time_step == "8-day":
        return pd.DatetimeIndex([pd.Timestamp(y, 1, 1) + pd.Timedelta(days=8 * k) for y in years for k in range(46)])
    return pd.DatetimeIndex(np.concatenate([pd.date_range(f"{y}-01-01", f"{y}-12-31", freq="D") for y in years]))


def _land_cover(rng: np.random.Generator, ny: int, nx: int, patch: int) -> np.ndarray:
    """Patches of ``patch`` x ``patch`` pixels of one class (a few single pixels differ)."""
    py, px = -(-ny // patch), -(-nx // patch)
    coarse = rng.choice(_CLASSES, size=(py, px), p=_SHARES)
    lc = np.repeat(np.repeat(coarse, patch, axis=0), patch, axis=1)[:ny, :nx]
    speckle = rng.random((ny, nx)) < 0.05
    return np.where(speckle, rng.choice(_CLASSES, size=(ny, nx), p=_SHARES), lc).astype(np.uint8)


def _greenness(doy: np.ndarray, lc: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Green fraction 0-1, ``(time, y, x)``: logistic green-up and senescence around the class's days."""
    base, up, down = (np.vectorize(lambda c, i=i: _PHENOLOGY[int(c)][i])(lc).astype(float) for i in range(3))
    d = doy[:, None, None]
    season = 1.0 / (1.0 + np.exp(-(d - up - shift) / 8.0)) - 1.0 / (1.0 + np.exp(-(d - down - shift) / 10.0))
    return base + (1.0 - base) * np.clip(season, 0.0, 1.0)


def synthetic_forest_cube(*, ny: int = 16, nx: int = 16, years: Sequence[int] = (2010, 2011),
                          time_step: str = "monthly", chunks: dict[str, int] | None = None, seed: int = 0,
                          missing: float = 0.1, patch: int = 4) -> xr.Dataset:
    """A small forest cube holding the annual CNN's inputs and an IGBP land-cover layer.

    Parameters
    ----------
    ny, nx
        Grid size (500 m pixels in UTM zone 32N, near the Hainich forest).
    years
        Calendar years covered, each in full.
    time_step
        One of :data:`FOREST_CUBE_STEPS`.
    chunks
        Dask chunks (e.g. ``{"time": -1, "y": 8, "x": 8}``); None returns numpy-backed variables.
    seed
        Seed of land cover, per-pixel offsets, weather and gaps.
    missing
        Share of cells (each variable, time step and pixel) set to NaN, within [0, 1).
    patch
        Side of the land-cover patches in pixels.

    Returns
    -------
    xarray.Dataset
        ``lai, evi, et, t_day, t_night, precip`` (float32, ``(time, y, x)``, units attrs) and
        ``igbp`` (uint8, ``(y, x)``, LC_Type1 numbers with CF ``flag_values``/``flag_meanings``),
        with ``x``/``y`` pixel-centre coordinates and a ``spatial_ref`` grid mapping.

    Examples
    --------
    >>> from unique_xr.testing.forest import synthetic_forest_cube
    >>> ds = synthetic_forest_cube(ny=4, nx=5, time_step="8-day")
    >>> dict(ds.sizes), ds["lai"].attrs["units"], int(ds["igbp"].max()) <= 17
    ({'time': 92, 'y': 4, 'x': 5}, 'm2 m-2', True)
    """
    if time_step not in FOREST_CUBE_STEPS:
        raise SpecError(f"time_step must be one of {FOREST_CUBE_STEPS}; got {time_step!r}.")
    if not 0.0 <= missing < 1.0:
        raise SpecError(f"missing is a share of cells within [0, 1); got {missing}.")
    if ny < 1 or nx < 1 or patch < 1 or not len(years):
        raise SpecError(f"Need ny, nx, patch >= 1 and at least one year; got ny={ny}, nx={nx}, patch={patch}, "
                        f"years={list(years)}.")
    rng = np.random.default_rng(seed)
    times = _times([int(y) for y in years], time_step)
    doy = times.dayofyear.to_numpy().astype(float)
    nt = len(times)
    lc = _land_cover(rng, ny, nx, patch)
    shift = rng.normal(0.0, 6.0, (ny, nx))  # phenology a few days early or late
    green = _greenness(doy, lc, shift)
    peak = np.vectorize(lambda c: _PEAK_LAI[int(c)])(lc).astype(float) * rng.uniform(0.8, 1.2, (ny, nx))
    noise = lambda scale: rng.normal(0.0, scale, (nt, ny, nx))
    season_t = -np.cos(2 * np.pi * (doy - 15.0) / 365.25)[:, None, None]  # -1 mid-January, +1 mid-July
    t_offset = rng.normal(0.0, 0.8, (ny, nx))
    anomaly = rng.normal(0.0, 2.0, (nt, 1, 1))  # weather shared by the region
    t_mean = 8.5 + 10.5 * season_t + t_offset + anomaly
    water = lc == 17
    values = {
        "lai": np.clip(peak * green + noise(0.2), 0.0, None),
        "evi": np.clip(0.08 + 0.5 * green * np.where(water, 0.0, 1.0) + noise(0.02), -0.1, 1.0),
        "et": np.clip(0.3 + 3.2 * green * np.clip(season_t + 1.0, 0.0, 2.0) / 2.0 + noise(0.25), 0.0, None),
        "t_day": t_mean + 4.0 + noise(1.0),
        "t_night": t_mean - 4.0 + noise(1.0),
        "precip": rng.gamma(0.6, 3.5, (nt, ny, nx)) * (1.0 + 0.3 * season_t),
    }
    grid = GridSpec(crs="EPSG:32632", resolution=500.0,
                    bounds=(600_000.0, 5_660_000.0 - 500.0 * ny, 600_000.0 + 500.0 * nx, 5_660_000.0))
    data_vars = {}
    for name, arr in values.items():
        arr = arr.astype(np.float32)
        if missing:
            arr[rng.random(arr.shape) < missing] = np.nan
        data_vars[name] = (("time", "y", "x"), arr, {"units": INPUTS[name]["units"],
                                                     "long_name": f"synthetic {name} ({INPUTS[name]['paper']})"})
    codes = list(IGBP_CLASSES)
    data_vars["igbp"] = (("y", "x"), lc, {
        "long_name": "IGBP land cover (MCD12Q1 LC_Type1 numbers)", "units": "1",
        "flag_values": list(range(1, len(codes) + 1)), "flag_meanings": " ".join(codes)})
    ds = grid.attach(xr.Dataset(data_vars, coords={"time": times}))
    ds.attrs = {"title": "unique_xr synthetic forest cube", "seed": seed, "time_step": time_step}
    return ds.chunk(chunks) if chunks is not None else ds
