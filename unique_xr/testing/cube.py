"""Lazy synthetic model-input cubes of any size, for ``ds.gpp.estimate`` tests and benchmarks.

:func:`synthetic_inputs` returns a Dask-backed :class:`xarray.Dataset` holding what the GPP models
read, named as the data layer and the collection registry name it (``red``, ``nir``, ...,
``lst_day``, ``air_temperature``, ``shortwave_radiation``, ``vpd``), on a
:class:`~unique_xr.grid.GridSpec`. Nothing is generated until a block is computed, so a cube of
100 GB costs nothing to build and only its blocks' memory while computed.

Every value is a function of the seed and the pixel's world position and day, never of the block
it falls in: blocks are generated independently, and the same cube chunked differently holds
bit-identical values. The scene reuses the scene model of :mod:`unique_xr.testing._scene` (the
synthetic COG regions use it too): value noise keyed by world lattice positions (:func:`_scene.fbm`),
ESA WorldCover classes with their plant-functional-type phenology curves
(:func:`_scene.group_curves`) and spectra, mixed linearly by the green cover

.. math::

    \\rho_b = s\\,\\mathrm{bg}_b\\,(1 - f_c) + v\\,\\mathrm{veg}_b\\,f_c,
    \\qquad f_c = f_0 + a\\,h_g(t)

Clouds are thresholded value noise per day (NaN in reflectance and LST; the day's cloud cover
varies around ``cloud_fraction``); air temperature follows latitude, season, elevation and a
smooth daily anomaly; shortwave radiation is the top-of-atmosphere value times a transmissivity
that falls with the day's cloud cover; VPD follows from temperature and a cloud-dependent
relative humidity.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from unique_xr.errors import GridError, SpecError
from unique_xr.grid import GridSpec
from unique_xr.schema import DIMS, cf_attrs
from unique_xr.testing import _scene

__all__ = ["KINDS", "VARIABLES", "generate_block", "synthetic_inputs"]

KINDS = ("gpp_m", "gpp_l")

_MET = ("air_temperature", "shortwave_radiation", "vpd")
#: Variables of each kind, in the order they are generated. ``lst_day_aqua`` is the MYD11A1 (Aqua)
#: day LST the GPP_M model also reads (the registry has no MYD11A1 collection yet).
VARIABLES: dict[str, tuple[str, ...]] = {
    "gpp_m": ("red", "nir", "blue", "green", "nir2", "swir1", "swir2", "lst_day", "lst_day_aqua", *_MET),
    "gpp_l": ("blue", "green", "red", "nir", "swir1", "swir2", "lst_day", *_MET),
}

#: time step, pixel size (m) and default shape of each kind
_STEP_DAYS = {"gpp_m": 1, "gpp_l": 16}
_RESOLUTION = {"gpp_m": 500.0, "gpp_l": 30.0}
_DEFAULT_SHAPE = {"gpp_m": (365, 64, 64), "gpp_l": (23, 256, 256)}
#: default centre: the Hainich forest (DE-Hai eddy-covariance site), Germany, UTM zone 32N
_DEFAULT_LONLAT = (10.45, 51.08)

_CLASSES = (10, 20, 30, 40, 80)  # broadleaf forest, shrubland, grassland, cropland, water
_FRACTIONS = (0.30, 0.10, 0.22, 0.33, 0.05)
_BASE_ELEVATION_M = 350.0
_RELIEF_M = 250.0
_CLOUD_SCALE_M = 2000.0  # finest octave of the cloud noise: clouds are kilometres across


@dataclass(frozen=True, kw_only=True)
class _CubeScene:
    """What a block needs besides its coordinates; small, travels with every task."""

    kind: str
    seed: int
    cloud_fraction: float
    lat: float  # grid centre latitude (climate and radiation are region-wide)

    @property
    def params(self) -> _scene.SceneParams:
        return _scene.SceneParams(seed=self.seed, classes=_CLASSES, fractions=_FRACTIONS,
                                  base_elevation_m=_BASE_ELEVATION_M, relief_m=_RELIEF_M, southern=self.lat < 0)

    def __dask_tokenize__(self):
        return ("unique_xr.testing.cube._CubeScene", self.kind, self.seed, self.cloud_fraction, self.lat)


# --------------------------------------------------------------------------------------------
# the numpy kernel: one block from its days and pixel-centre coordinates


def _noise(x: np.ndarray, y: np.ndarray, seed: int, name: str, finest: float, octaves: int) -> np.ndarray:
    """Value noise at world positions; float64 so that it does not depend on the block's extent."""
    return _scene.fbm(x, y, seed=seed, name=name, finest=finest, octaves=octaves, dtype=np.float64)


def _unit(z: np.ndarray) -> np.ndarray:
    """Roughly standard-normal noise to roughly uniform [0, 1]."""
    return 0.5 * (1.0 + np.tanh(0.8 * z))


def _day_noise(seed: int, name: str, days: np.ndarray) -> np.ndarray:
    """Smooth noise along time (a few days' correlation), keyed by the day number."""
    return _noise(days.astype(np.float64), np.zeros(1), seed, name, finest=3.0, octaves=3)[0]


def _static(scene: _CubeScene, y: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
    """Elevation, land-cover class, phenology group and brightness of each pixel (``(ny, nx)``)."""
    seed = scene.seed
    elevation = _BASE_ELEVATION_M + _RELIEF_M * _noise(x, y, seed, "elevation", 4000.0, 5)
    cuts = np.cumsum(_FRACTIONS)[:-1]
    thresholds = np.array([NormalDist().inv_cdf(c) for c in cuts])
    class_index = np.searchsorted(thresholds, _noise(x, y, seed, "landcover", 1500.0, 4)).astype(np.intp)
    n_shifts = _scene.SHIFTS.size
    shift = np.minimum((_unit(_noise(x, y, seed, "phenology", 1000.0, 3)) * n_shifts).astype(np.intp), n_shifts - 1)
    pft_f0 = np.array([_scene.PFTS[c].f0 for c in _CLASSES])
    pft_amp = np.array([_scene.PFTS[c].amp for c in _CLASSES])
    return {
        "elevation": elevation,
        "class_index": class_index,
        "group": class_index * n_shifts + shift,
        "f0": pft_f0[class_index],
        "amp": pft_amp[class_index] * (0.7 + 0.3 * _unit(_noise(x, y, seed, "vigour", 800.0, 3))),
        "soil": np.clip(1.0 + 0.15 * _noise(x, y, seed, "soil", 600.0, 3), 0.7, 1.3),
        "veg": np.clip(1.0 + 0.08 * _noise(x, y, seed, "canopy", 600.0, 3), 0.85, 1.15),
    }


def _cloud_cover(scene: _CubeScene, days: np.ndarray) -> np.ndarray:
    """Each day's cloud-cover fraction: ``cloud_fraction`` varied by smooth day-to-day noise."""
    if scene.cloud_fraction <= 0.0:
        return np.zeros(days.size)
    if scene.cloud_fraction >= 1.0:
        return np.ones(days.size)
    vary = 0.8 * np.tanh(_day_noise(scene.seed, "cloudiness", days))
    return np.clip(scene.cloud_fraction * (1.0 + vary), 0.0, 0.97)


def generate_block(days: np.ndarray, y: np.ndarray, x: np.ndarray, *, scene: _CubeScene) -> np.ndarray:
    """Every variable of one block: ``(len(VARIABLES[kind]), time, y, x)`` float32.

    ``days`` are day numbers since 1970-01-01, ``y``/``x`` pixel-centre coordinates in metres.
    Each value depends on ``scene``, its day and its position only.
    """
    from unique_xr.models.features import toa_radiation

    days = np.asarray(days, dtype=np.int64)
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    names = VARIABLES[scene.kind]
    nt, ny, nx = days.size, y.size, x.size
    out = np.empty((len(names), nt, ny, nx), dtype=np.float32)
    if out.size == 0:
        return out
    seed = scene.seed
    params = scene.params
    static = _static(scene, y, x)
    doy = pd.DatetimeIndex(days.astype("datetime64[D]")).dayofyear.to_numpy().astype(np.float64)
    curves = _scene.group_curves(params, doy)  # (nt, groups)
    fc = (static["f0"] + static["amp"] * curves[:, static["group"]]).astype(np.float32)  # (nt, ny, nx)

    cover = _cloud_cover(scene, days)
    cloud = np.zeros((nt, ny, nx), dtype=bool)
    for i, (day, c) in enumerate(zip(days, cover, strict=True)):
        if c >= 1.0:
            cloud[i] = True
        elif c > 0.0:
            field = _noise(x, y, seed, f"cloud/{day}", _CLOUD_SCALE_M, 4)
            cloud[i] = field > NormalDist().inv_cdf(1.0 - c)

    bg, veg = _scene._spectra_by_class(params)  # (7 bands, classes)
    index = {name: i for i, name in enumerate(names)}
    for band_i, band in enumerate(_scene.BANDS):
        if band not in index:
            continue
        background = (static["soil"] * bg[band_i][static["class_index"]]).astype(np.float32)
        canopy = (static["veg"] * veg[band_i][static["class_index"]]).astype(np.float32)
        refl = out[index[band]]
        np.multiply(fc, canopy - background, out=refl)
        refl += background
        refl[cloud] = np.nan

    # meteorology: region-wide climate at the grid centre, lapse rate by pixel elevation
    lat = np.full(1, scene.lat)
    anomaly = 2.5 * _day_noise(seed, "temperature", days)
    air_k = _scene.air_temperature(lat, _BASE_ELEVATION_M, doy, anomaly)  # (nt,) at the base elevation
    lapse = (-0.0065 * (static["elevation"] - _BASE_ELEVATION_M)).astype(np.float32)
    air_c = (air_k - 273.15).astype(np.float32)[:, None, None] + lapse  # (nt, ny, nx)
    toa = np.asarray(toa_radiation(scene.lat, doy), dtype=np.float64)
    shortwave = toa * (0.75 - 0.5 * cover) * (1.0 + 0.05 * _day_noise(seed, "radiation", days))
    humidity = np.clip(0.45 + 0.4 * cover + 0.08 * _day_noise(seed, "humidity", days), 0.2, 0.98)
    saturation = 6.112 * np.exp(17.67 * air_c / (air_c + 243.5))  # hPa (Bolton 1980)
    out[index["air_temperature"]] = air_c
    out[index["shortwave_radiation"]] = np.maximum(shortwave, 0.0).astype(np.float32)[:, None, None]
    out[index["vpd"]] = saturation * (1.0 - humidity.astype(np.float32))[:, None, None]

    # land surface temperature: warmer than the air where the ground is bare in summer
    sun = 0.5 + 0.5 * np.cos(2 * np.pi * (_scene.season_doy(doy, params.southern) - 172) / 365.25)
    lst = (air_c + 273.15 + 2.0) + (4.0 + 8.0 * sun.astype(np.float32))[:, None, None] * (1.0 - fc)
    water = static["class_index"] == _CLASSES.index(80)
    lst = np.where(water, air_c + 273.15 - 1.0, lst)
    lst[cloud] = np.nan
    out[index["lst_day"]] = lst
    if "lst_day_aqua" in index:  # 13:30 overpass: a little warmer than Terra's 10:30
        out[index["lst_day_aqua"]] = lst + np.float32(1.5)
    return out


# --------------------------------------------------------------------------------------------
# the xarray side


def _default_grid(kind: str, ny: int, nx: int) -> GridSpec:
    from pyproj import Transformer

    lon, lat = _DEFAULT_LONLAT
    epsg = 32600 + int((lon + 180) // 6) + 1
    cx, cy = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(lon, lat)
    res = _RESOLUTION[kind]
    left = round(cx / res) * res - (nx // 2) * res
    top = round(cy / res) * res + (ny // 2) * res
    return GridSpec(crs=f"EPSG:{epsg}", resolution=res, bounds=(left, top - ny * res, left + nx * res, top))


def _centre_latitude(grid: GridSpec) -> float:
    from pyproj import Transformer

    left, bottom, right, top = grid.bounds
    _, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform((left + right) / 2,
                                                                                   (bottom + top) / 2)
    return float(lat)


def _normalize_chunks(chunks: dict[str, int] | None, shape: tuple[int, int, int]):
    from dask.array.core import normalize_chunks

    default = {"time": -1, "y": 256, "x": 256}
    chunks = dict(default if chunks is None else chunks)
    unknown = set(chunks) - set(DIMS)
    if unknown:
        raise SpecError(f"chunks may only name {DIMS}, got {sorted(unknown)} in {chunks!r}.")
    sizes = []
    for dim in DIMS:
        c = chunks.get(dim, -1)
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or (c < 1 and c != -1):
            raise SpecError(f"chunks[{dim!r}] must be a positive integer or -1 (whole axis), got {c!r}.")
        sizes.append(int(c))
    return normalize_chunks(tuple(sizes), shape=shape)


def synthetic_inputs(
    kind: str = "gpp_m",
    *,
    shape: tuple[int, int, int] | None = None,
    chunks: dict[str, int] | None = None,
    seed: int = 0,
    start: Any = "2020-01-01",
    grid: GridSpec | None = None,
    cloud_fraction: float = 0.2,
) -> xr.Dataset:
    """A lazy, seeded cube of GPP model inputs, named as the data layer names them.

    Parameters
    ----------
    kind
        ``"gpp_m"``: daily MCD43A4 NBAR roles (``red, nir, blue, green, nir2, swir1, swir2``),
        ``lst_day`` and ``lst_day_aqua`` (K), ``air_temperature`` (degC),
        ``shortwave_radiation`` (W m-2) and ``vpd`` (hPa). ``"gpp_l"``: Landsat roles
        (``blue, green, red, nir, swir1, swir2``), ``lst_day`` (K) and the same meteorology,
        one date every 16 days.
    shape
        ``(time, y, x)``; default ``(365, 64, 64)`` for ``gpp_m``, ``(23, 256, 256)`` for ``gpp_l``.
    chunks
        ``{"time": .., "y": .., "x": ..}``; -1 or an absent key means the whole axis
        (default ``{"time": -1, "y": 256, "x": 256}``). Values do not depend on the chunks.
    seed
        Non-negative integer; the same seed gives the same values.
    start
        First day of the time axis.
    grid
        Target grid (its shape must be ``shape[1:]``). Default: a UTM zone 32N grid centred on
        the Hainich forest, Germany (51.08 N), of 500 m pixels for ``gpp_m`` and 30 m for ``gpp_l``.
    cloud_fraction
        Mean share of pixels under cloud on a date (NaN reflectance and LST); each date's share
        varies around it.

    Returns
    -------
    xarray.Dataset
        Float32 Dask-backed variables ``(time, y, x)`` with CF attributes, the grid's ``x``/``y``
        coordinates and ``spatial_ref`` grid mapping. Nothing is computed.

    Examples
    --------
    >>> from unique_xr.testing.cube import synthetic_inputs
    >>> ds = synthetic_inputs("gpp_l", shape=(4, 64, 64), chunks={"y": 32, "x": 32}, seed=1)
    >>> sorted(ds.data_vars)[:4], ds["nir"].data.numblocks
    (['air_temperature', 'blue', 'green', 'lst_day'], (1, 2, 2))
    >>> bool(((ds["nir"] > 0) & (ds["nir"] < 1)).sum() > 0.6 * ds["nir"].size)
    True
    """
    import dask.array as da
    from dask.array import PerformanceWarning
    from dask.base import tokenize

    if kind not in KINDS:
        raise SpecError(f"kind must be one of {KINDS}, got {kind!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SpecError(f"seed must be a non-negative integer, got {seed!r}.")
    if not (isinstance(cloud_fraction, (int, float)) and 0.0 <= float(cloud_fraction) <= 1.0):
        raise SpecError(f"cloud_fraction must lie in [0, 1], got {cloud_fraction!r}.")
    shape = _DEFAULT_SHAPE[kind] if shape is None else tuple(shape)
    if len(shape) != 3 or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in shape):
        raise SpecError(f"shape must be three positive integers (time, y, x), got {shape!r}.")
    nt, ny, nx = (int(n) for n in shape)
    if grid is None:
        grid = _default_grid(kind, ny, nx)
    elif not isinstance(grid, GridSpec):
        raise SpecError(f"grid must be a unique_xr.grid.GridSpec, got {type(grid).__name__}.")
    elif grid.shape != (ny, nx):
        raise GridError(f"The grid is {grid.shape[0]}x{grid.shape[1]} pixels but shape asks for {ny}x{nx}; "
                        f"pass shape=({nt}, {grid.shape[0]}, {grid.shape[1]}).")
    try:
        first = pd.Timestamp(start).normalize()
    except (TypeError, ValueError) as err:
        raise SpecError(f"start must be a date such as '2020-01-01', got {start!r}.") from err
    times = pd.date_range(first, periods=nt, freq=f"{_STEP_DAYS[kind]}D")
    days = times.values.astype("datetime64[D]").astype(np.int64)
    tchunks, ychunks, xchunks = _normalize_chunks(chunks, (nt, ny, nx))

    scene = _CubeScene(kind=kind, seed=int(seed), cloud_fraction=float(cloud_fraction), lat=_centre_latitude(grid))
    names = VARIABLES[kind]
    token = tokenize(scene, days, grid, tchunks, ychunks, xchunks)
    with warnings.catch_warnings():  # many blocks from three 1-D coordinate arrays is the point here
        warnings.simplefilter("ignore", PerformanceWarning)
        stacked = da.blockwise(
            generate_block, "vtyx",
            da.from_array(days, chunks=(tchunks,), name=f"synthetic-days-{token}"), "t",
            da.from_array(grid.y, chunks=(ychunks,), name=f"synthetic-y-{token}"), "y",
            da.from_array(grid.x, chunks=(xchunks,), name=f"synthetic-x-{token}"), "x",
            new_axes={"v": len(names)}, dtype=np.float32, meta=np.empty((0, 0, 0, 0), dtype=np.float32),
            name=f"synthetic-{kind}-{token}", scene=scene,
        )
    data_vars = {name: (DIMS, stacked[i], _attrs(name)) for i, name in enumerate(names)}
    ds = xr.Dataset(data_vars, coords={"time": times})
    ds.attrs = {
        "title": f"unique_xr synthetic {kind} model inputs",
        "source": "unique_xr.testing.cube.synthetic_inputs",
        "seed": int(seed),
        "cloud_fraction": float(cloud_fraction),
    }
    return grid.attach(ds)


def _attrs(name: str) -> dict[str, Any]:
    if name == "nir2":
        return {"long_name": "surface reflectance, near infrared ~1.24 um", "units": "1", "valid_range": [-0.2, 1.6]}
    if name == "lst_day_aqua":
        return cf_attrs("lst_day", long_name="land surface temperature, day (Aqua, 13:30)")
    return cf_attrs(name)

