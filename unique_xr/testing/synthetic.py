"""A seeded synthetic region: COGs and STAC items shaped like the real Planetary Computer ones.

:func:`make_region` writes, for a 30 m UTM :class:`~unique_xr.grid.GridSpec` and a date range,

* ``landsat-c2-l2`` scenes every ``landsat_every_days`` (blue, green, red, nir08, swir16, swir22,
  lwir11 as uint16 DN with the registry's scale/offset, and QA_PIXEL with every Collection 2 bit
  set from the generated clouds, shadows, dilation ring, cirrus, water and snow);
* ``modis-43A4-061`` daily NBAR (int16, scale 1e-4, fill 32767) and mandatory QA (0 full,
  1 magnitude, 255 fill) on the real global 500 m sinusoidal tile grid (``proj:epsg: null``,
  ``proj:wkt2``), each NBAR pixel the exact area mean of the 30 m truth plus small noise;
* a ``cop-dem-glo-30`` DEM (float32 m, EPSG:4326, 1 arc-second rows, tiled by 1 degree) and an
  ``esa-worldcover`` map (uint8 class codes, EPSG:4326, 1/12000 degree, tiled by 3 degrees);
* an ERA5-Land-style daily NetCDF (``t2m``, ``d2m``, ``ssrd``, ``tp``) on a 0.1 degree grid;
* one STAC ItemCollection JSON per collection plus a combined one (and stac-geoparquet on request).

Landsat items are stamped at 10:30 local solar time, MODIS items at local solar noon (the NBAR
reference time); asset hrefs are absolute local paths.

The scene itself (terrain, land cover, phenology per plant functional type, reflectance, clouds,
weather) is the pure-numpy model in :mod:`unique_xr.testing._scene`. :meth:`SyntheticRegion.truth`
gives the cloud-free 30 m truth for checking whatever a pipeline recovers from the files.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from unique_xr.errors import CRSError, GridError, SpecError
from unique_xr.grid import GridSpec
from unique_xr.search.collections import ESA_WORLDCOVER_CLASSES
from unique_xr.testing import _products as products
from unique_xr.testing import _scene
from unique_xr.testing._products import (
    DEM_ID,
    LANDSAT_ID,
    MODIS_ID,
    MODIS_PIXEL_SIZE,
    MODIS_WKT,
    MODIS_X0,
    MODIS_Y0,
    WORLDCOVER_ID,
    ring,
    transformer,
)

__all__ = ["SyntheticRegionSpec", "SyntheticRegion", "make_region", "MODIS_WKT", "MODIS_PIXEL_SIZE"]

_RES = 30.0
_DEFAULT_CLASSES = (10, 20, 30, 40, 50, 80)


def _as_date(value: Any, name: str) -> dt.date:
    """A date from a ``date``, ``datetime``, ISO string, numpy datetime64 or pandas Timestamp."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        if isinstance(value, np.datetime64):
            return dt.date.fromisoformat(str(value.astype("datetime64[D]")))
        if hasattr(value, "date") and callable(value.date):  # pandas.Timestamp
            return value.date()
        return dt.date.fromisoformat(str(value)[:10])
    except (TypeError, ValueError) as err:
        raise SpecError(f"{name} must be a date such as '2023-06-01', got {value!r}") from err


# ---------------------------------------------------------------------------------- spec
@dataclass(frozen=True, kw_only=True)
class SyntheticRegionSpec:
    """What to generate: grid, dates, products and scene knobs. Same spec, same bytes.

    Parameters
    ----------
    seed
        Non-negative integer; every random draw derives from it.
    grid
        The 30 m UTM target grid (WGS84 UTM, EPSG 326xx/327xx). See :meth:`square` / :meth:`around`.
    start, end
        First and last day (inclusive); dates, ISO strings or datetime64.
    landsat_every_days
        Landsat revisit; scenes on ``start``, ``start + n``, ... (platforms alternate landsat-8/9).
    modis, modis_every_days
        Write MCD43A4 NBAR, daily by default.
    landsat, dem, worldcover, met
        Switch the other products off (e.g. for benchmarks of one path).
    cloud_fraction
        Mean cloud cover of a Landsat date; each date draws its own fraction around it (beta).
    cirrus_fraction
        Mean share of pixels flagged high-confidence cirrus on a date.
    scene_edge_probability
        Chance that a Landsat swath edge crosses the region on a date (fill beyond it).
    landcover_classes, landcover_fractions
        ESA WorldCover codes present and their shares (default shares from the class table).
    base_elevation_m, relief_m
        Typical elevation and relief of the fractal terrain.
    landsat_noise, modis_noise
        Standard deviation of reflectance noise added to Landsat pixels / MODIS cells.
    modis_gap_fraction, modis_magnitude_fraction
        Mean share of MODIS cells per day that are fill (QA 255) / magnitude inversions (QA 1).
    """

    seed: int
    grid: GridSpec
    start: dt.date
    end: dt.date
    landsat_every_days: int = 16
    landsat: bool = True
    modis: bool = True
    modis_every_days: int = 1
    dem: bool = True
    worldcover: bool = True
    met: bool = True
    cloud_fraction: float = 0.3
    cirrus_fraction: float = 0.05
    scene_edge_probability: float = 0.3
    landcover_classes: tuple[int, ...] = _DEFAULT_CLASSES
    landcover_fractions: tuple[float, ...] | None = None
    base_elevation_m: float = 400.0
    relief_m: float = 800.0
    landsat_noise: float = 0.003
    modis_noise: float = 0.004
    modis_gap_fraction: float = 0.1
    modis_magnitude_fraction: float = 0.2

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise SpecError(f"seed must be a non-negative integer, got {self.seed!r}")
        set_("seed", int(self.seed))
        if not isinstance(self.grid, GridSpec):
            raise SpecError(
                f"grid must be a unique_xr.grid.GridSpec, got {type(self.grid).__name__}. "
                "Use SyntheticRegionSpec.square(size_px=..., seed=..., lonlat=(lon, lat)) to build one."
            )
        epsg = self.grid.epsg
        if epsg is None or not (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
            raise CRSError(
                "The synthetic region lives on a WGS84 UTM grid like Landsat (EPSG:326xx/327xx), "
                f"got {self.grid.crs!r}. "
                "Use SyntheticRegionSpec.around(lonlat=(lon, lat), shape=(ny, nx), ...) to pick the zone."
            )
        west, _, east, _ = self.grid.bounds_latlon
        if east - west > 90.0:
            raise CRSError(
                f"The grid {self.grid.bounds} in {self.grid.crs} crosses the antimeridian (its longitudes span "
                f"{west:.2f}..{east:.2f}); the synthetic lat/lon products cannot wrap. Centre it at least half "
                "its width away from 180 degrees."
            )
        if abs(self.grid.resolution - _RES) > 1e-9:
            raise GridError(
                f"The synthetic region grid must have Landsat's 30 m pixels, got {self.grid.resolution} m. "
                "Coarser grids come from loading the region's items onto them."
            )
        set_("start", _as_date(self.start, "start"))
        set_("end", _as_date(self.end, "end"))
        if self.end < self.start:
            raise SpecError(f"end ({self.end}) is before start ({self.start}); swap them.")
        for name in ("landsat_every_days", "modis_every_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise SpecError(f"{name} must be an integer >= 1, got {value!r}")
            set_(name, int(value))
        for name in ("landsat", "modis", "dem", "worldcover", "met"):
            set_(name, bool(getattr(self, name)))
        for name in ("cloud_fraction", "cirrus_fraction", "scene_edge_probability", "modis_gap_fraction",
                     "modis_magnitude_fraction"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise SpecError(f"{name} must lie in [0, 1], got {getattr(self, name)!r}")
            set_(name, value)
        if self.modis_gap_fraction + self.modis_magnitude_fraction > 1.0:
            raise SpecError(
                f"modis_gap_fraction + modis_magnitude_fraction must not exceed 1, got "
                f"{self.modis_gap_fraction} + {self.modis_magnitude_fraction}"
            )
        for name in ("landsat_noise", "modis_noise", "relief_m"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value >= 0):
                raise SpecError(f"{name} must be a finite number >= 0, got {getattr(self, name)!r}")
            set_(name, value)
        base = float(self.base_elevation_m)
        if not -400.0 <= base <= 8000.0:
            raise SpecError(f"base_elevation_m must lie in [-400, 8000] m, got {self.base_elevation_m!r}")
        set_("base_elevation_m", base)
        self._validate_landcover()

    def _validate_landcover(self) -> None:
        classes = tuple(int(c) for c in self.landcover_classes)
        unknown = [c for c in classes if c not in _scene.PFTS]
        if not classes or unknown or len(set(classes)) != len(classes):
            raise SpecError(
                f"landcover_classes must be distinct ESA WorldCover codes from {sorted(_scene.PFTS)}, "
                f"got {self.landcover_classes!r}" + (f" (unknown: {unknown})" if unknown else "")
            )
        if self.landcover_fractions is None:
            raw = tuple(_scene.PFTS[c].default_fraction for c in classes)
        else:
            raw = tuple(float(f) for f in self.landcover_fractions)
            if len(raw) != len(classes) or any(not (f >= 0 and math.isfinite(f)) for f in raw) or sum(raw) <= 0:
                raise SpecError(
                    f"landcover_fractions must be {len(classes)} non-negative numbers (one per class in "
                    f"{classes}) with a positive sum, got {self.landcover_fractions!r}"
                )
        total = sum(raw)
        object.__setattr__(self, "landcover_classes", classes)
        object.__setattr__(self, "landcover_fractions", tuple(round(f / total, 12) for f in raw))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def around(
        cls,
        *,
        lonlat: tuple[float, float] = (10.45, 51.08),
        shape: tuple[int, int],
        seed: int,
        start: Any = "2023-06-01",
        end: Any = "2023-07-15",
        **kwargs: Any,
    ) -> SyntheticRegionSpec:
        """A spec on a ``shape = (ny, nx)`` 30 m grid of the UTM zone of ``lonlat``, centred there.

        The default point is the Hainich forest (DE-Hai eddy-covariance site), Germany.
        """
        from pyproj import Transformer

        lon, lat = (float(v) for v in lonlat)
        if not (-180 <= lon <= 180 and -80 <= lat <= 84):
            raise CRSError(f"lonlat must be (lon, lat) in degrees inside UTM coverage (-80..84 N), got {lonlat!r}")
        ny, nx = (int(n) for n in shape)
        if ny < 2 or nx < 2:
            raise GridError(f"shape must be at least (2, 2) pixels, got {shape!r}")
        zone = min(int((lon + 180) // 6) + 1, 60)
        epsg = (32600 if lat >= 0 else 32700) + zone
        x, y = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(lon, lat)
        left = round(x / _RES) * _RES - (nx // 2) * _RES
        top = round(y / _RES) * _RES + (ny // 2) * _RES
        grid = GridSpec(crs=f"EPSG:{epsg}", resolution=_RES, bounds=(left, top - ny * _RES, left + nx * _RES, top))
        return cls(seed=seed, grid=grid, start=start, end=end, **kwargs)

    @classmethod
    def square(cls, *, size_px: int, seed: int, lonlat: tuple[float, float] = (10.45, 51.08), **kwargs: Any):
        """A ``size_px`` x ``size_px`` 30 m UTM region centred on ``lonlat`` (see :meth:`around`)."""
        return cls.around(lonlat=lonlat, shape=(size_px, size_px), seed=seed, **kwargs)

    # ------------------------------------------------------------------ derived
    def _every(self, step_days: int) -> tuple[dt.date, ...]:
        """``start``, ``start + step``, ... up to ``end``."""
        n = (self.end - self.start).days // step_days + 1
        return tuple(self.start + dt.timedelta(days=i * step_days) for i in range(n))

    @property
    def landsat_dates(self) -> tuple[dt.date, ...]:
        """Local acquisition dates of the Landsat scenes."""
        return self._every(self.landsat_every_days) if self.landsat else ()

    @property
    def modis_dates(self) -> tuple[dt.date, ...]:
        """Days with MCD43A4 items."""
        return self._every(self.modis_every_days) if self.modis else ()

    @property
    def days(self) -> tuple[dt.date, ...]:
        """Every day from start to end (the meteorology's time axis)."""
        return self._every(1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (written to ``region.json``, and the tokenisation key)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, GridSpec):
                value = value.to_dict()
            elif isinstance(value, dt.date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def __dask_tokenize__(self):
        return ("unique_xr.SyntheticRegionSpec", json.dumps(self.to_dict(), sort_keys=True))


# ---------------------------------------------------------------------------------- world
@dataclass
class _World:
    """Everything derived from a spec before writing: padded grid, static scene, MODIS window."""

    spec: SyntheticRegionSpec
    padded: GridSpec  # region grown so every product around it is fully covered
    offset: tuple[int, int]  # (row, col) of the region's top-left pixel in the padded grid
    static: _scene.StaticScene  # on the padded grid
    lon: float  # region centre
    lat: float
    modis_window: tuple[int, int, int, int]  # global (row0, col0, nrows, ncols) of the 500 m cells
    weather: _scene.Weather

    @property
    def params(self) -> _scene.SceneParams:
        return self.static.params

    @property
    def elevation(self) -> np.ndarray:
        """Elevation on the padded grid."""
        return self.static.elevation

    @property
    def landcover(self) -> np.ndarray:
        """Land cover on the padded grid."""
        return self.static.landcover

    def slim(self) -> None:
        """Copy out the region, then drop the padded fields only the 500 m tables needed."""
        _ = self.region
        empty = np.empty((0, 0), np.float32)
        self.static = _scene.StaticScene(
            params=self.static.params, elevation=self.static.elevation, landcover=self.static.landcover,
            slope=empty, class_index=empty, group=empty, f0=empty, amp=empty, soil=empty, veg=empty)

    @property
    def region_slices(self) -> tuple[slice, slice]:
        (r, c), (ny, nx) = self.offset, self.spec.grid.shape
        return slice(r, r + ny), slice(c, c + nx)

    @cached_property
    def region(self) -> _scene.StaticScene:
        """The static scene on the region itself (contiguous copies)."""
        view = self.static.window(*self.region_slices)
        return _scene.StaticScene(params=view.params, **{
            f.name: np.ascontiguousarray(getattr(view, f.name)) for f in fields(view) if f.name != "params"})

    def local_doy(self, when: dt.datetime) -> float:
        """Fractional day of year at local solar time."""
        local = when + dt.timedelta(hours=self.lon / 15.0)
        start = dt.datetime(local.year, 1, 1)
        return 1.0 + (local - start).total_seconds() / 86400.0

    def day_index(self, when: dt.datetime) -> int:
        local = (when + dt.timedelta(hours=self.lon / 15.0)).date()
        return int(np.clip((local - self.spec.start).days, 0, len(self.weather.doy) - 1))

    def t2m(self, when: dt.datetime) -> float:
        """Daily mean 2 m air temperature (K) at the region's base elevation."""
        i = self.day_index(when)
        return float(_scene.air_temperature(
            np.float64(self.lat), np.float64(self.spec.base_elevation_m), self.weather.doy[i],
            self.weather.t2m_anomaly[i],
        ))

    def modis_grid(self) -> GridSpec:
        r0, c0, nr, nc = self.modis_window
        left, top = MODIS_X0 + c0 * MODIS_PIXEL_SIZE, MODIS_Y0 - r0 * MODIS_PIXEL_SIZE
        return GridSpec(crs=MODIS_WKT, resolution=MODIS_PIXEL_SIZE,
                        bounds=(left, top - nr * MODIS_PIXEL_SIZE, left + nc * MODIS_PIXEL_SIZE, top))


def _modis_window_for(grid: GridSpec) -> tuple[int, int, int, int]:
    xs, ys = transformer(grid.crs, MODIS_WKT).transform(*ring(grid.bounds, 64))
    c0 = int(math.floor((xs.min() - MODIS_X0) / MODIS_PIXEL_SIZE))
    c1 = int(math.ceil((xs.max() - MODIS_X0) / MODIS_PIXEL_SIZE))
    r0 = int(math.floor((MODIS_Y0 - ys.max()) / MODIS_PIXEL_SIZE))
    r1 = int(math.ceil((MODIS_Y0 - ys.min()) / MODIS_PIXEL_SIZE))
    return r0, c0, r1 - r0, c1 - c0


def _padded_grid(grid: GridSpec, lon: float, lat: float) -> tuple[GridSpec, tuple[int, int]]:
    """The region grown by whole pixels to hold every MODIS cell that touches it and its lat/lon box."""
    to_utm = transformer(MODIS_WKT, grid.crs)
    sx, sy = transformer("EPSG:4326", MODIS_WKT).transform(lon, lat)
    corner = np.array([0.0, 1.0, 1.0, 0.0]) * MODIS_PIXEL_SIZE
    cx, cy = to_utm.transform(sx + corner, sy + np.roll(corner, 1))
    margin = 2 + int(math.ceil(max(np.ptp(cx), np.ptp(cy)) / _RES))
    west, south, east, north = grid.bounds_latlon
    pad = 0.002  # degrees: the lat/lon products snap their boxes outward by at most a pixel
    lx, ly = transformer("EPSG:4326", grid.crs).transform(*ring((west - pad, south - pad, east + pad, north + pad), 64))
    left, bottom, right, top = grid.bounds
    need = (left - lx.min(), bottom - ly.min(), lx.max() - right, ly.max() - top)
    grow = [max(margin, math.ceil(d / _RES)) for d in need]  # left, bottom, right, top
    bounds = (left - grow[0] * _RES, bottom - grow[1] * _RES, right + grow[2] * _RES, top + grow[3] * _RES)
    return GridSpec(crs=grid.crs, resolution=_RES, bounds=bounds), (grow[3], grow[0])


def _build_world(spec: SyntheticRegionSpec) -> _World:
    grid = spec.grid
    left, bottom, right, top = grid.bounds
    lon, lat = transformer(grid.crs, "EPSG:4326").transform((left + right) / 2, (bottom + top) / 2)
    padded, offset = _padded_grid(grid, lon, lat)
    params = _scene.SceneParams(
        seed=spec.seed, classes=spec.landcover_classes, fractions=spec.landcover_fractions,
        base_elevation_m=spec.base_elevation_m, relief_m=spec.relief_m, southern=lat < 0, resolution=_RES,
    )
    static = _scene.build_static(params, padded.x, padded.y)
    doy = np.array([d.timetuple().tm_yday for d in spec.days], dtype=np.float64)
    return _World(
        spec=spec, padded=padded, offset=offset, static=static, lon=float(lon), lat=float(lat),
        modis_window=_modis_window_for(grid), weather=_scene.make_weather(spec.seed, doy),
    )


# ---------------------------------------------------------------------------------- region
@dataclass(frozen=True, kw_only=True)
class SyntheticRegion:
    """What :func:`make_region` wrote: the spec, the files and their STAC items.

    Attributes
    ----------
    items
        STAC item dicts by collection id (``landsat-c2-l2``, ``modis-43A4-061``, ``cop-dem-glo-30``,
        ``esa-worldcover``), hrefs absolute local paths.
    item_collection_paths
        ItemCollection JSON per collection id, and ``"all"`` for the combined file.
    met_path
        The ERA5-Land-style daily NetCDF (None when ``spec.met`` is False).
    geoparquet_paths
        stac-geoparquet per collection id, when requested (mixing the collections in one file
        trips rustac 0.9 on MODIS's ``proj:geometry``).
    landsat_times, modis_times
        The items' ``datetime`` values (UTC, naive), in order.
    modis_grid_500m
        The 500 m sinusoidal grid of the MODIS cells written (None without MODIS).
    """

    spec: SyntheticRegionSpec
    directory: Path
    items: dict[str, list[dict[str, Any]]]
    item_collection_paths: dict[str, Path]
    met_path: Path | None
    geoparquet_paths: dict[str, Path] = field(default_factory=dict)
    landsat_times: tuple[dt.datetime, ...] = ()
    modis_times: tuple[dt.datetime, ...] = ()
    modis_grid_500m: GridSpec | None = field(default=None, repr=False)

    @property
    def grid(self) -> GridSpec:
        """The 30 m UTM grid of the region."""
        return self.spec.grid

    @cached_property
    def _world(self) -> _World:
        world = _build_world(self.spec)
        world.slim()
        return world

    def truth(self, times: Iterable[Any] | None = None):
        """The true, cloud-free state on the 30 m grid, as an ``xarray.Dataset``.

        Parameters
        ----------
        times
            UTC times to evaluate (datetimes, datetime64, ISO strings); default the Landsat
            acquisition times. Phenology is continuous, so any time works (``lst`` uses the
            weather of the nearest day from ``spec.start`` to ``spec.end``).

        Returns
        -------
        xarray.Dataset
            ``blue, green, red, nir, nir2, swir1, swir2, ndvi, green_cover, lst`` on
            ``(time, y, x)`` (float32), and ``landcover`` (ESA WorldCover code), ``elevation``,
            ``slope`` on ``(y, x)``, with the grid's coordinates and CF attributes.
        """
        import pandas as pd
        import xarray as xr

        from unique_xr.schema import cf_attrs

        world = self._world
        when = list(self.landsat_times) if times is None else [pd.Timestamp(t).to_pydatetime() for t in times]
        when = [w.replace(tzinfo=None) if w.tzinfo is None else w.astimezone(dt.timezone.utc).replace(tzinfo=None)
                for w in when]
        static = world.region
        ny, nx = self.grid.shape
        curves = _scene.group_curves(static.params, np.array([world.local_doy(w) for w in when]))
        data = {b: np.empty((len(when), ny, nx), np.float32) for b in (*_scene.BANDS, "green_cover", "lst")}
        for i, w in enumerate(when):
            fc = _scene.green_cover(static, curves[i])
            data["green_cover"][i] = fc
            for b in _scene.BANDS:
                data[b][i] = _scene.reflectance(static, fc, b)
            data["lst"][i] = _scene.land_surface_temperature(static, fc, world.t2m(w), world.local_doy(w))
        with np.errstate(invalid="ignore", divide="ignore"):
            ndvi = ((data["nir"] - data["red"]) / (data["nir"] + data["red"])).astype(np.float32)
        dims = ("time", "y", "x")
        attrs = {b: cf_attrs(b) for b in _scene.BANDS}
        attrs["nir2"] = {"long_name": "surface reflectance, near infrared ~1.24 um (MODIS band 5)", "units": "1"}
        ds = xr.Dataset(
            {
                **{b: (dims, data[b], attrs[b]) for b in _scene.BANDS},
                "ndvi": (dims, ndvi, cf_attrs("ndvi")),
                "green_cover": (dims, data["green_cover"],
                                {"long_name": "fractional green vegetation cover", "units": "1"}),
                "lst": (dims, data["lst"], cf_attrs("lst_day")),
                "landcover": (("y", "x"), static.landcover.copy(), {
                    "long_name": "ESA WorldCover class", "flag_values": list(ESA_WORLDCOVER_CLASSES),
                    "flag_meanings": " ".join(ESA_WORLDCOVER_CLASSES.values())}),
                "elevation": (("y", "x"), static.elevation.copy(), cf_attrs("elevation")),
                "slope": (("y", "x"), static.slope.copy(), cf_attrs("slope")),
            },
            coords={"time": np.array(when, dtype="datetime64[ns]")},
            attrs={"title": "unique_xr synthetic region: cloud-free truth", "seed": self.spec.seed,
                   "source": "unique_xr.testing.synthetic"},
        )
        return self.grid.attach(ds)


# ---------------------------------------------------------------------------------- make_region
def make_region(
    directory: str | os.PathLike[str],
    spec: SyntheticRegionSpec,
    *,
    stac_geoparquet: bool = False,
    compress: str = "DEFLATE",
) -> SyntheticRegion:
    """Write a synthetic region's COGs, STAC items and meteorology under ``directory``.

    Parameters
    ----------
    directory
        Output folder (created; existing files of the same names are overwritten).
    spec
        What to generate.
    stac_geoparquet
        Also write ``stac/<collection>.parquet`` with rustac (the ``stac`` extra).
    compress
        COG compression (``"DEFLATE"`` like the real files; ``"ZSTD"`` writes about twice as fast).

    Returns
    -------
    SyntheticRegion

    Notes
    -----
    Products are computed and written one date at a time; memory peaks near 150 bytes per region
    pixel (static fields on a padded grid, one date of bands, the 10 m land cover). A 2000 x 2000
    region with 6 Landsat dates and 31 MODIS days takes about 20 s on 2 cores, two thirds of it in
    GDAL writing COGs (``compress="ZSTD"`` helps); a 32 x 32 one under a second per product day.

    Examples
    --------
    >>> import tempfile
    >>> from unique_xr.testing.synthetic import SyntheticRegionSpec, make_region
    >>> spec = SyntheticRegionSpec.square(size_px=32, seed=0, start="2023-06-01", end="2023-06-17",
    ...                                   modis_every_days=4)
    >>> region = make_region(tempfile.mkdtemp(), spec)
    >>> sorted(region.items)
    ['cop-dem-glo-30', 'esa-worldcover', 'landsat-c2-l2', 'modis-43A4-061']
    >>> len(region.items["landsat-c2-l2"]), len(region.items["modis-43A4-061"])
    (2, 5)
    >>> region.items["modis-43A4-061"][0]["properties"]["proj:epsg"] is None
    True
    >>> truth = region.truth()
    >>> truth["ndvi"].dims, truth.sizes["time"]
    (('time', 'y', 'x'), 2)
    """
    if not isinstance(spec, SyntheticRegionSpec):
        raise SpecError(f"spec must be a SyntheticRegionSpec, got {type(spec).__name__}")
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    world = _build_world(spec)
    modis_tables = products.modis_tables(world) if spec.modis else None
    world.slim()  # keep only what the lat/lon products and the region need
    items: dict[str, list[dict[str, Any]]] = {}
    writer = products.Writer(compress)
    if spec.landsat:
        items[LANDSAT_ID] = [products.landsat_item(world, i, d, root, writer) for i, d in enumerate(spec.landsat_dates)]
    if spec.modis:
        items[MODIS_ID] = products.modis_items(world, root, writer, *modis_tables)
    if spec.dem:
        items[DEM_ID] = products.dem_items(world, root, writer)
    if spec.worldcover:
        items[WORLDCOVER_ID] = products.worldcover_items(world, root, writer)
    met_path = products.write_met(world, root) if spec.met else None

    stac_dir = root / "stac"
    stac_dir.mkdir(exist_ok=True)
    paths = {cid: products.write_item_collection(stac_dir / f"{cid}.json", its) for cid, its in items.items()}
    everything = [it for its in items.values() for it in its]
    paths["all"] = products.write_item_collection(stac_dir / "all.json", everything)
    parquet: dict[str, Path] = {}
    if stac_geoparquet:  # one file per collection: their property schemas differ
        from unique_xr._optional import import_optional

        rustac = import_optional("rustac", purpose="writing stac-geoparquet")
        for cid, its in items.items():
            parquet[cid] = stac_dir / f"{cid}.parquet"
            rustac.write_sync(str(parquet[cid]), its)
    (root / "region.json").write_text(json.dumps(spec.to_dict(), indent=1, sort_keys=True))
    return SyntheticRegion(
        spec=spec, directory=root, items=items, item_collection_paths=paths, met_path=met_path,
        geoparquet_paths=parquet,
        landsat_times=tuple(products.parse_time(it["properties"]["datetime"]) for it in items.get(LANDSAT_ID, [])),
        modis_times=tuple(sorted({products.parse_time(it["properties"]["datetime"])
                                  for it in items.get(MODIS_ID, [])})),
        modis_grid_500m=world.modis_grid() if spec.modis else None,
    )


