"""The seeded scene model behind :mod:`unique_xr.testing.synthetic` — pure numpy, no I/O, no xarray.

A scene is a set of static per-pixel fields on a north-up 30 m grid (elevation, land cover, plant
functional type phenology parameters, background and canopy brightness) plus functions of time:

* terrain: fractal (fBm) value noise whose octaves are random lattices laid out in world metres, so
  hills and clouds have physical sizes whatever the grid size;
* land cover: ESA WorldCover classes allocated in exact proportions from suitability scores
  (water in the lowest ground, forest on slopes, cropland in rectangular parcels on flats, towns in
  noise blobs on flat ground...);
* phenology: a double-logistic seasonal curve per class, shifted per pixel by elevation and noise
  (cropland: per parcel) in whole 4-day steps, so each pixel belongs to one of ``K * Q`` curves;
* reflectance: linear mixing of a background spectrum (soil on a soil line, water, urban, snow,
  litter) and a class canopy spectrum by the fractional green cover ``fc``:

  .. math::

     \\rho_b = s\\,\\mathrm{bg}_b\\,(1 - f_c) + v\\,\\mathrm{veg}_b\\,f_c,
     \\qquad f_c = f_0 + a\\,h_{g}(t)

  Because :math:`\\rho_b` is linear in the curve value :math:`h_g(t)`, the mean over any set of
  pixels (a 500 m MODIS cell) is a small matrix product of per-cell sums that are computed once
  (:func:`area_tables`, :func:`area_means`): daily MODIS costs almost nothing and equals the exact
  area mean of the 30 m truth.
* clouds: thresholded fBm per date (exact cloud fraction), shadows displaced away from the sun,
  a dilation ring, thin-cloud haze and cirrus; QA_PIXEL bits composed per the Landsat Collection 2
  layout (:func:`landsat_qa_pixel`).
* weather: daily temperature, humidity, radiation and rain series with seasonal cycles and noise.

Everything is deterministic in ``seed``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

#: Internal band order of every spectrum (the MODIS 7 land bands, by role).
BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "nir2", "swir1", "swir2")
_B = {b: i for i, b in enumerate(BANDS)}

#: Background and canopy spectra (surface reflectance), in :data:`BANDS` order. The soil spectrum
#: sits on the soil line nir = 1.2 red + 0.03; brightness ``s`` moves a pixel along it.
SPECTRA: dict[str, tuple[float, ...]] = {
    "soil": (0.07, 0.11, 0.15, 0.21, 0.26, 0.31, 0.27),
    "wet_soil": (0.04, 0.06, 0.07, 0.10, 0.10, 0.08, 0.05),
    "rock": (0.12, 0.15, 0.18, 0.23, 0.26, 0.30, 0.26),
    "litter": (0.05, 0.08, 0.10, 0.20, 0.25, 0.25, 0.17),
    "urban": (0.09, 0.10, 0.11, 0.15, 0.18, 0.20, 0.18),
    "water": (0.05, 0.045, 0.03, 0.015, 0.01, 0.006, 0.004),
    "snow": (0.85, 0.83, 0.80, 0.72, 0.48, 0.07, 0.05),
    "broadleaf": (0.025, 0.06, 0.03, 0.38, 0.35, 0.17, 0.07),
    "crop_leaf": (0.025, 0.075, 0.03, 0.48, 0.45, 0.22, 0.09),
    "grass_leaf": (0.03, 0.08, 0.04, 0.40, 0.38, 0.23, 0.11),
    "shrub_leaf": (0.035, 0.07, 0.045, 0.30, 0.30, 0.22, 0.12),
    "wetland_leaf": (0.03, 0.07, 0.04, 0.33, 0.30, 0.15, 0.07),
    "moss": (0.04, 0.07, 0.06, 0.25, 0.25, 0.20, 0.12),
}
CLOUD_SPECTRUM = np.array([0.50, 0.48, 0.47, 0.48, 0.45, 0.35, 0.25], dtype=np.float32)
HAZE_SPECTRUM = np.array([1.0, 0.9, 0.8, 0.6, 0.5, 0.3, 0.2], dtype=np.float32)
SHADOW_FACTOR = np.array([0.45, 0.40, 0.35, 0.30, 0.30, 0.25, 0.25], dtype=np.float32)


@dataclass(frozen=True)
class PFT:
    """Plant functional type of one land-cover class: green-cover phenology and spectra."""

    name: str
    f0: float  # dormant-season green cover
    amp: float  # seasonal green-cover amplitude
    sos: float  # day of year of the spring inflection (northern hemisphere)
    eos: float  # day of year of the autumn inflection
    r_up: float  # green-up rate (1/day)
    r_down: float  # senescence rate (1/day)
    background: str
    canopy: str
    default_fraction: float


#: ESA WorldCover code -> plant functional type.
PFTS: dict[int, PFT] = {
    10: PFT("deciduous_broadleaf_forest", 0.15, 0.72, 125, 285, 0.12, 0.08, "litter", "broadleaf", 0.33),
    20: PFT("shrubland", 0.15, 0.35, 110, 270, 0.08, 0.06, "soil", "shrub_leaf", 0.06),
    30: PFT("grassland", 0.20, 0.55, 100, 250, 0.09, 0.07, "soil", "grass_leaf", 0.16),
    40: PFT("cropland", 0.02, 0.85, 140, 225, 0.14, 0.16, "soil", "crop_leaf", 0.34),
    50: PFT("built_up", 0.05, 0.12, 115, 280, 0.08, 0.08, "urban", "grass_leaf", 0.06),
    60: PFT("bare_sparse", 0.01, 0.05, 140, 250, 0.08, 0.08, "rock", "grass_leaf", 0.03),
    70: PFT("snow_ice", 0.0, 0.0, 150, 250, 0.1, 0.1, "snow", "grass_leaf", 0.02),
    80: PFT("water", 0.0, 0.0, 150, 250, 0.1, 0.1, "water", "grass_leaf", 0.05),
    90: PFT("herbaceous_wetland", 0.20, 0.55, 130, 275, 0.09, 0.07, "wet_soil", "wetland_leaf", 0.04),
    95: PFT("mangroves", 0.70, 0.10, 120, 300, 0.05, 0.05, "wet_soil", "broadleaf", 0.02),
    100: PFT("moss_lichen", 0.15, 0.30, 165, 245, 0.12, 0.10, "rock", "moss", 0.02),
}
#: Order in which classes claim pixels; the last class present takes what is left.
_PRIORITY: tuple[int, ...] = (80, 70, 60, 90, 95, 50, 10, 20, 100, 40, 30)
#: Phenology shifts (days) a pixel can take: ``Q`` levels.
SHIFTS: np.ndarray = np.arange(-12, 13, 4, dtype=np.float64)

_LAPSE = 0.0065  # K per m
_DOY_YEAR = 365.25


# ------------------------------------------------------------------------------------- noise
def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (wrapping uint64 arithmetic)."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def salt(seed: int, name: str) -> int:
    """A 64-bit key for stream ``name`` of ``seed``."""
    z = np.array([(int(seed) * 0x9E3779B97F4A7C15 + zlib.crc32(name.encode())) % 2**64], dtype=np.uint64)
    return int(_mix64(z)[0])


def hash_uniform(key: int, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """Uniform values in [-1, 1) that depend only on ``key`` and the integer lattice position."""
    with np.errstate(over="ignore"):
        z = np.uint64(key) + np.asarray(ix, dtype=np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = _mix64(z)
        z = z + np.asarray(iy, dtype=np.int64).astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        z = _mix64(z)
    return (z >> np.uint64(11)).astype(np.float64) * (2.0 / 2**53) - 1.0


def rng_for(seed: int, name: str) -> np.random.Generator:
    """An independent numpy Generator for stream ``name``."""
    return np.random.default_rng([salt(seed, name), int(seed) % 2**63])


def _cubic_weights(t: np.ndarray) -> tuple[np.ndarray, ...]:
    """Catmull-Rom weights of the 4 lattice points around fractional position ``t`` in [0, 1)."""
    t2, t3 = t * t, t * t * t
    return (
        0.5 * (-t3 + 2 * t2 - t),
        0.5 * (3 * t3 - 5 * t2 + 2),
        0.5 * (-3 * t3 + 4 * t2 + t),
        0.5 * (t3 - t2),
    )


def _interp_axis(values: np.ndarray, pos: np.ndarray, axis: int, dtype) -> np.ndarray:
    """Catmull-Rom interpolation of ``values`` along ``axis`` at fractional indices ``pos``.

    ``pos`` must keep one lattice point of margin on each side (``1 <= pos < n - 2``).
    """
    i = np.floor(pos).astype(np.intp)
    w = _cubic_weights((pos - i).astype(dtype))
    out = None
    for k, wk in enumerate(w):
        taken = np.take(values, i + (k - 1), axis=axis)
        term = taken * (wk[np.newaxis, :] if axis == 1 else wk[:, np.newaxis])
        out = term if out is None else out + term
    return out


def _cubic_variance() -> float:
    """Mean over t of the variance of Catmull-Rom-interpolated iid uniform(-1, 1) values."""
    t = (np.arange(1000) + 0.5) / 1000
    return float(np.mean(sum(w**2 for w in _cubic_weights(t)))) / 3.0


_CUBIC_VAR = _cubic_variance()


def fbm(
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    name: str,
    finest: float,
    octaves: int,
    hurst: float = 0.8,
    dtype=np.float32,
) -> np.ndarray:
    """Fractal value noise (about zero mean, unit variance) at pixel centres ``y`` x ``x`` (metres).

    Octave ``k`` is a random lattice of spacing ``finest * 2**k`` metres (amplitude proportional to
    spacing ** ``hurst``), keyed by world lattice indices; all octaves are summed on the finest
    lattice, which is then interpolated (Catmull-Rom, separable) to the pixels.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ix0 = int(np.floor(x.min() / finest)) - 2
    ix1 = int(np.floor(x.max() / finest)) + 3
    iy0 = int(np.floor(y.min() / finest)) - 2
    iy1 = int(np.floor(y.max() / finest)) + 3
    lx = np.arange(ix0, ix1 + 1)
    ly = np.arange(iy0, iy1 + 1)
    lattice = np.zeros((ly.size, lx.size))
    total_var = 0.0
    for k in range(octaves):
        amp = 2.0 ** (k * hurst)
        total_var += amp**2
        key = salt(seed, f"{name}/octave{k}")
        if k == 0:
            lattice += amp * hash_uniform(key, lx[np.newaxis, :], ly[:, np.newaxis])
            continue
        step = 2**k
        px, py = lx / step, ly / step
        jx = np.arange(int(np.floor(px.min())) - 1, int(np.floor(px.max())) + 3)
        jy = np.arange(int(np.floor(py.min())) - 1, int(np.floor(py.max())) + 3)
        coarse = hash_uniform(key, jx[np.newaxis, :], jy[:, np.newaxis])
        tmp = _interp_axis(coarse, px - jx[0], axis=1, dtype=np.float64)
        lattice += amp * _interp_axis(tmp, py - jy[0], axis=0, dtype=np.float64)
    lattice /= np.sqrt(total_var * _CUBIC_VAR)
    lattice = lattice.astype(dtype)
    tmp = _interp_axis(lattice, (x / finest - ix0).astype(dtype), axis=1, dtype=dtype)
    return _interp_axis(tmp, (y / finest - iy0).astype(dtype), axis=0, dtype=dtype)


def linear_interp_2d(coarse: np.ndarray, rows: np.ndarray, cols: np.ndarray, ny: int, nx: int) -> np.ndarray:
    """Bilinearly interpolate ``coarse`` (values at pixel indices ``rows`` x ``cols``) to ``(ny, nx)``."""

    def axis_pos(nodes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        p = np.arange(n)
        i = np.clip(np.searchsorted(nodes, p, side="right") - 1, 0, nodes.size - 2)
        return i, (p - nodes[i]) / (nodes[i + 1] - nodes[i])

    iy, ty = axis_pos(rows, ny)
    ix, tx = axis_pos(cols, nx)
    tmp = coarse[:, ix] * (1 - tx) + coarse[:, ix + 1] * tx
    return tmp[iy] * (1 - ty)[:, np.newaxis] + tmp[iy + 1] * ty[:, np.newaxis]


# -------------------------------------------------------------------------------- static scene
@dataclass(frozen=True, kw_only=True)
class SceneParams:
    """What the scene model needs from a synthetic region spec."""

    seed: int
    classes: tuple[int, ...]  # ESA WorldCover codes
    fractions: tuple[float, ...]  # same length, sums to 1
    base_elevation_m: float
    relief_m: float
    southern: bool  # flip the seasons
    resolution: float = 30.0


@dataclass(frozen=True, kw_only=True)
class StaticScene:
    """Static per-pixel fields on a grid; all arrays ``(ny, nx)``."""

    params: SceneParams
    elevation: np.ndarray  # float32, m
    slope: np.ndarray  # float32, degrees
    landcover: np.ndarray  # uint8, ESA WorldCover code
    class_index: np.ndarray  # uint8, index into params.classes
    group: np.ndarray  # uint8, class_index * Q + shift index
    f0: np.ndarray  # float32, dormant green cover
    amp: np.ndarray  # float32, seasonal green-cover amplitude (f0 + amp <= 1)
    soil: np.ndarray  # float32, background brightness
    veg: np.ndarray  # float32, canopy brightness

    def window(self, rows: slice, cols: slice) -> StaticScene:
        """A view of a sub-window (no copy)."""
        kw = {
            name: getattr(self, name)[rows, cols]
            for name in ("elevation", "slope", "landcover", "class_index", "group", "f0", "amp", "soil", "veg")
        }
        return StaticScene(params=self.params, **kw)

    @property
    def n_groups(self) -> int:
        return len(self.params.classes) * SHIFTS.size


def _allocate(scores: dict[int, Callable[[], np.ndarray]], classes: tuple[int, ...], fractions: tuple[float, ...],
              shape: tuple[int, int]) -> np.ndarray:
    """Give each class its exact share of pixels, best score first, in :data:`_PRIORITY` order.

    ``scores`` maps each class to a function computing its suitability (evaluated one at a time).
    """
    n = int(np.prod(shape))
    out = np.zeros(n, dtype=np.uint8)
    free = np.arange(n)
    order = [c for c in _PRIORITY if c in classes]
    frac = dict(zip(classes, fractions))
    for code in order[:-1]:
        k = min(int(round(frac[code] * n)), free.size)
        if k <= 0:
            continue
        s = scores[code]().ravel()[free]
        take = np.argpartition(-s, k - 1)[:k] if k < free.size else np.arange(free.size)
        out[free[take]] = code
        free = np.delete(free, take)
    out[free] = order[-1]
    return out.reshape(shape)


def build_static(params: SceneParams, x: np.ndarray, y: np.ndarray) -> StaticScene:
    """Terrain, land cover and per-pixel phenology on pixel centres ``y`` (rows) x ``x`` (cols)."""
    seed, res = params.seed, params.resolution
    ny, nx = y.size, x.size
    noise = lambda name, finest, octaves, hurst=0.7: fbm(  # noqa: E731
        x, y, seed=seed, name=name, finest=finest, octaves=octaves, hurst=hurst
    )
    # terrain: fBm from 60 m to ~15 km, valley floors flattened
    z = noise("terrain", 60.0, 9, 0.9)
    elevation = params.base_elevation_m + 0.25 * params.relief_m * z
    floor = params.base_elevation_m - 0.4 * params.relief_m
    elevation = np.where(elevation < floor, floor + 0.1 * (elevation - floor), elevation).astype(np.float32)
    gy, gx = np.gradient(elevation, res) if min(ny, nx) > 1 else (np.zeros_like(elevation),) * 2
    slope = np.degrees(np.arctan(np.hypot(gx, gy))).astype(np.float32)

    e = (elevation - elevation.mean()) / (elevation.std() + 1e-6)
    sl = (slope - slope.mean()) / (slope.std() + 1e-6)
    patches = noise("patches", 120.0, 5)
    parcel_value, parcel_shift, parcel_amp = _parcels(seed, x, y)
    scores = {  # suitability of each class (higher claims first); computed only for classes present
        80: lambda: -e,
        70: lambda: e + 0.3 * patches,
        60: lambda: e + 0.5 * sl + 0.3 * patches,
        90: lambda: -e + 0.6 * patches,
        95: lambda: -e + patches,
        50: lambda: noise("towns", 240.0, 4, 0.5) - 0.5 * sl - 0.3 * e,
        10: lambda: 0.9 * sl + noise("forest", 120.0, 5),
        20: lambda: 0.5 * e + 0.5 * sl + patches,
        100: lambda: e - patches,
        40: lambda: -0.8 * sl + 0.6 * parcel_value + 0.6 * patches,
        30: lambda: -patches,
    }
    landcover = _allocate(scores, params.classes, params.fractions, (ny, nx))

    lut = np.zeros(256, dtype=np.uint8)
    for k, code in enumerate(params.classes):
        lut[code] = k
    class_index = lut[landcover]
    is_crop = landcover == 40

    # phenology: later at altitude (~2.5 d per 100 m), noise elsewhere, per parcel for crops
    shift = 0.025 * (elevation - params.base_elevation_m) + 5.0 * noise("phenoshift", 240.0, 4)
    shift = np.where(is_crop, parcel_shift, shift)
    step = SHIFTS[1] - SHIFTS[0]
    q = np.clip(np.round((shift - np.float32(SHIFTS[0])) / np.float32(step)), 0, SHIFTS.size - 1).astype(np.uint8)
    group = (class_index * SHIFTS.size + q).astype(np.uint8)

    f0_c = np.array([PFTS[c].f0 for c in params.classes], dtype=np.float32)[class_index]
    amp_c = np.array([PFTS[c].amp for c in params.classes], dtype=np.float32)[class_index]
    f0 = np.clip(f0_c + 0.03 * noise("f0", 120.0, 4) * (f0_c > 0), 0.0, 0.95).astype(np.float32)
    amp_factor = np.where(is_crop, parcel_amp, 1.0 + 0.12 * noise("amp", 120.0, 4))
    amp = np.clip(amp_c * amp_factor, 0.0, 1.0 - f0).astype(np.float32)

    white = rng_for(seed, "white")  # pixel-scale texture
    soil = 1.0 + 0.15 * noise("soil", 120.0, 5) + 0.04 * white.standard_normal((ny, nx), dtype=np.float32)
    soil = np.clip(soil, 0.5, 1.6, out=soil)
    veg = 1.0 + 0.08 * noise("canopy", 120.0, 4) + 0.03 * white.standard_normal((ny, nx), dtype=np.float32)
    veg = np.clip(veg, 0.7, 1.3, out=veg)
    return StaticScene(
        params=params, elevation=elevation, slope=slope, landcover=landcover, class_index=class_index,
        group=group, f0=f0, amp=amp, soil=soil, veg=veg,
    )


def _parcels(seed: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rectangular field parcels (~270 x 180 m, staggered rows): a score, a phenology shift, an amplitude factor."""
    wx, wy = 270.0, 180.0
    rows = np.floor(y / wy).astype(np.int64)
    offset = (hash_uniform(salt(seed, "parcel/offset"), 0, rows) + 1) * 0.5 * wx
    cols = np.floor((x[np.newaxis, :] + offset[:, np.newaxis]) / wx).astype(np.int64)
    c0, r0 = int(cols.min()), int(rows.min())
    lc = np.arange(c0, int(cols.max()) + 1)[np.newaxis, :]
    lr = np.arange(r0, int(rows.max()) + 1)[:, np.newaxis]
    flat = (rows - r0)[:, np.newaxis] * lc.size + (cols - c0)
    def per_parcel(name: str, scale: float, offset: float) -> np.ndarray:
        table = (offset + scale * hash_uniform(salt(seed, name), lc, lr)).astype(np.float32)
        return np.take(table, flat)

    value = per_parcel("parcel/value", 1.0, 0.0)
    shift = per_parcel("parcel/shift", 12.0, 0.0)
    amp = per_parcel("parcel/amp", 0.15, 0.9)
    return value, shift, amp


# ------------------------------------------------------------------------------------- phenology
def season_doy(doy: np.ndarray | float, southern: bool) -> np.ndarray:
    """Day of the *growing* year: the calendar day of year, moved half a year in the south."""
    d = np.asarray(doy, dtype=np.float64)
    return np.mod(d + (_DOY_YEAR / 2 if southern else 0.0), _DOY_YEAR)


def group_curves(params: SceneParams, doy: np.ndarray | float) -> np.ndarray:
    """Seasonal curve ``h_g(doy)`` in [0, 1] of every phenology group: shape ``(T, K * Q)``."""
    d = season_doy(np.atleast_1d(doy), params.southern)[:, np.newaxis]
    sos = np.repeat([PFTS[c].sos for c in params.classes], SHIFTS.size) + np.tile(SHIFTS, len(params.classes))
    eos = np.repeat([PFTS[c].eos for c in params.classes], SHIFTS.size) + np.tile(SHIFTS, len(params.classes))
    r_up = np.repeat([PFTS[c].r_up for c in params.classes], SHIFTS.size)
    r_down = np.repeat([PFTS[c].r_down for c in params.classes], SHIFTS.size)
    h = np.zeros((d.shape[0], sos.size))
    for wrap in (-_DOY_YEAR, 0.0, _DOY_YEAR):  # periodic: neighbouring years' seasons
        dd = d + wrap
        h += 1 / (1 + np.exp(-r_up * (dd - sos))) - 1 / (1 + np.exp(-r_down * (dd - eos)))
    return np.clip(h, 0.0, 1.0)


def _spectra_by_class(params: SceneParams) -> tuple[np.ndarray, np.ndarray]:
    """Background and canopy spectra, ``(7, K)`` each."""
    bg = np.array([SPECTRA[PFTS[c].background] for c in params.classes], dtype=np.float64).T
    veg = np.array([SPECTRA[PFTS[c].canopy] for c in params.classes], dtype=np.float64).T
    return bg, veg


def green_cover(static: StaticScene, curves_t: np.ndarray) -> np.ndarray:
    """Fractional green cover ``f0 + amp * h_g(t)`` for one date (``curves_t``: shape ``(K*Q,)``)."""
    return static.f0 + static.amp * curves_t.astype(np.float32)[static.group]


def reflectance(static: StaticScene, fc: np.ndarray, band: str) -> np.ndarray:
    """Cloud-free surface reflectance of ``band`` (float32) given green cover ``fc``."""
    bg, veg = _spectra_by_class(static.params)
    b = _B[band]
    bg_px = np.take(bg[b].astype(np.float32), static.class_index)
    bg_px *= static.soil
    out = np.take(veg[b].astype(np.float32), static.class_index)
    out *= static.veg
    out -= bg_px
    out *= fc
    out += bg_px
    return out


def land_surface_temperature(static: StaticScene, fc: np.ndarray, t2m_k: float, doy: float) -> np.ndarray:
    """Clear-sky late-morning land surface temperature (K): air temperature at the pixel's
    elevation, warmer where the ground is bare in summer, water near air temperature."""
    params = static.params
    air = t2m_k - _LAPSE * (static.elevation - params.base_elevation_m) + 2.0
    sun = 0.5 + 0.5 * np.cos(2 * np.pi * (season_doy(doy, params.southern) - 172) / _DOY_YEAR)
    lst = air + (4.0 + 8.0 * sun) * (1.0 - fc)
    water = np.isin(static.landcover, (80, 70))
    return np.where(water, air - 1.0, lst).astype(np.float32)


# --------------------------------------------------------------------------- 500 m area means
@dataclass(frozen=True)
class AreaTables:
    """Per-cell sums from which the area mean of every band on any date is a matrix product."""

    count: np.ndarray  # (ncells,)
    bg_static: np.ndarray  # (ncells, K): sum of soil * (1 - f0) per class
    veg_static: np.ndarray  # (ncells, K): sum of veg * f0 per class
    bg_dynamic: np.ndarray  # (ncells, G): sum of soil * amp per group
    veg_dynamic: np.ndarray  # (ncells, G): sum of veg * amp per group

    def __add__(self, other: AreaTables) -> AreaTables:
        return AreaTables(*(a + b for a, b in zip(self.__dict__.values(), other.__dict__.values())))


def area_tables(static: StaticScene, cell: np.ndarray, ncells: int) -> AreaTables:
    """Sums per coarse cell (``cell``: int array like the scene, -1 = in no cell)."""
    k, g = len(static.params.classes), static.n_groups
    inside = cell >= 0
    c = cell[inside].astype(np.int64)
    ci = static.class_index[inside].astype(np.int64)
    gi = static.group[inside].astype(np.int64)
    soil, veg = static.soil[inside].astype(np.float64), static.veg[inside].astype(np.float64)
    f0, amp = static.f0[inside].astype(np.float64), static.amp[inside].astype(np.float64)

    def sums(index, width, weights):
        return np.bincount(c * width + index, weights=weights, minlength=ncells * width).reshape(ncells, width)

    return AreaTables(
        count=np.bincount(c, minlength=ncells).astype(np.float64),
        bg_static=sums(ci, k, soil * (1 - f0)),
        veg_static=sums(ci, k, veg * f0),
        bg_dynamic=sums(gi, g, soil * amp),
        veg_dynamic=sums(gi, g, veg * amp),
    )


def area_means(params: SceneParams, tables: AreaTables, curves_t: np.ndarray) -> np.ndarray:
    """Mean cloud-free reflectance per cell on one date: ``(7, ncells)``, NaN for empty cells."""
    bg, veg = _spectra_by_class(params)  # (7, K)
    q = SHIFTS.size
    bg_g, veg_g = np.repeat(bg, q, axis=1), np.repeat(veg, q, axis=1)  # (7, G)
    total = (
        tables.bg_static @ bg.T
        + tables.veg_static @ veg.T
        + tables.veg_dynamic @ (veg_g * curves_t).T
        - tables.bg_dynamic @ (bg_g * curves_t).T
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / tables.count[:, np.newaxis]).T


# ------------------------------------------------------------------------------------- clouds
def beta_fraction(rng: np.random.Generator, mean: float, concentration: float = 2.5) -> float:
    """A per-date fraction drawn around ``mean`` (exactly 0 or 1 when the mean is)."""
    if mean <= 0.0:
        return 0.0
    if mean >= 1.0:
        return 1.0
    return float(rng.beta(mean * concentration, (1 - mean) * concentration))


def threshold_for_fraction(field: np.ndarray, fraction: float) -> float:
    """The value above which ``fraction`` of ``field`` lies (+inf for 0, -inf for 1)."""
    if fraction <= 0.0:
        return np.inf
    if fraction >= 1.0:
        return -np.inf
    k = int(round((1.0 - fraction) * field.size))
    k = min(max(k, 0), field.size - 1)
    return float(np.partition(field.ravel(), k)[k]) - 1e-7


def solar_angles(lat_deg: float, lon_deg: float, doy: int, hour_utc: float) -> tuple[float, float]:
    """Approximate solar (azimuth, elevation) in degrees, azimuth clockwise from north."""
    lat = np.radians(lat_deg)
    decl = np.radians(23.44) * np.sin(2 * np.pi * (284 + doy) / 365.0)
    hour_angle = np.radians(15.0 * (hour_utc + lon_deg / 15.0 - 12.0))
    sin_el = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    el = np.arcsin(np.clip(sin_el, -1, 1))
    az = np.arctan2(-np.sin(hour_angle), np.tan(decl) * np.cos(lat) - np.sin(lat) * np.cos(hour_angle))
    return float(np.degrees(az) % 360.0), float(np.degrees(el))


@dataclass(frozen=True)
class CloudLayer:
    """The atmosphere of one Landsat date on the region: boolean layers and how they alter pixels."""

    cloud: np.ndarray  # bool (ny, nx): high-confidence cloud
    shadow: np.ndarray  # bool: cloud shadow (not under cloud)
    dilated: np.ndarray  # bool: 3-pixel ring around clouds (not cloud)
    cirrus: np.ndarray  # bool: high-confidence cirrus
    medium: np.ndarray  # bool: thin cloud edge (medium cloud confidence, hazy)
    opacity: np.ndarray  # float32 per cloud pixel (row-major order), 0.55..1
    haze: np.ndarray  # float32 per medium pixel, 0..1
    brightness: float

    @cached_property
    def _flat(self) -> dict[str, np.ndarray]:
        return {name: np.flatnonzero(getattr(self, name)) for name in ("cloud", "shadow", "cirrus", "medium")}

    def apply_reflectance(self, refl: np.ndarray, band: str) -> np.ndarray:
        """Add haze and cirrus, darken shadows, blend in cloud, in place on a float32 ``(ny, nx)`` array."""
        b, flat, r = _B[band], self._flat, refl.reshape(-1)
        r[flat["medium"]] += self.haze * np.float32(0.04 * HAZE_SPECTRUM[b])
        r[flat["cirrus"]] += np.float32(0.02)
        r[flat["shadow"]] *= SHADOW_FACTOR[b]
        c = flat["cloud"]
        r[c] = (1 - self.opacity) * r[c] + self.opacity * np.float32(CLOUD_SPECTRUM[b] * self.brightness)
        return refl

    def apply_temperature(self, lst: np.ndarray, air_k: float) -> np.ndarray:
        """Cooler shadows and cold cloud tops, in place (K)."""
        flat, t = self._flat, lst.reshape(-1)
        t[flat["shadow"]] -= np.float32(3.0)
        c = flat["cloud"]
        t[c] = (1 - self.opacity) * t[c] + self.opacity * (air_k - 20.0 - 20.0 * self.opacity)
        return lst


def make_clouds(
    field: np.ndarray,
    offset: tuple[int, int],
    shape: tuple[int, int],
    shadow_shift: tuple[int, int],
    cloud_fraction: float,
    cirrus_field: np.ndarray,
    cirrus_fraction: float,
    brightness: float = 1.0,
    fill: np.ndarray | None = None,
) -> CloudLayer:
    """Threshold a smooth ``field`` into clouds covering exactly ``cloud_fraction`` of the region.

    ``field`` covers the region (at ``offset`` inside it, size ``shape``) plus the strip the
    shadows come from: the shadow of a cloud at pixel ``p`` falls on ``p + shadow_shift``
    (rows, cols). ``cirrus_field`` is on the region only. The dilation ring grows from the clouds
    outside ``fill`` (no data), as a cloud mask can only dilate what it saw.
    """
    (r0, c0), (ny, nx), (dr, dc) = offset, shape, shadow_shift
    region = field[r0:r0 + ny, c0:c0 + nx]
    thr = threshold_for_fraction(region, cloud_fraction)
    cloud = region > thr
    shadow = (field[r0 - dr:r0 - dr + ny, c0 - dc:c0 - dc + nx] > thr) & ~cloud
    medium = ~cloud & (region > thr - 0.25)
    cirrus = cirrus_field > threshold_for_fraction(cirrus_field, cirrus_fraction)
    return CloudLayer(
        cloud=cloud, shadow=shadow, dilated=dilate(cloud if fill is None else cloud & ~fill, 3) & ~cloud,
        cirrus=cirrus, medium=medium,
        opacity=np.clip(0.55 + 0.45 * (region[cloud] - thr) / 0.8, 0.55, 1.0).astype(np.float32),
        haze=np.clip(1.0 - (thr - region[medium]) / 0.25, 0.0, 1.0).astype(np.float32),
        brightness=float(brightness),
    )


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square binary dilation by ``radius`` pixels (separable)."""
    out = mask.copy()
    for axis in (0, 1):
        src = out.copy()
        n = src.shape[axis]
        for k in range(1, min(radius, n - 1) + 1):
            lo, hi = [slice(None)] * 2, [slice(None)] * 2
            lo[axis], hi[axis] = slice(0, n - k), slice(k, n)
            out[tuple(lo)] |= src[tuple(hi)]
            out[tuple(hi)] |= src[tuple(lo)]
    return out


def landsat_qa_pixel(clouds: CloudLayer, *, fill: np.ndarray, snow: np.ndarray, water: np.ndarray) -> np.ndarray:
    """Landsat Collection 2 QA_PIXEL (uint16) of a date.

    Bits: 0 fill, 1 dilated cloud, 2 cirrus (high), 3 cloud (high), 4 cloud shadow (high), 5 snow
    (high), 6 clear (no cloud and no dilated cloud), 7 water (and not cloud); confidence pairs
    8-9 cloud, 10-11 shadow, 12-13 snow, 14-15 cirrus: 3 high where flagged, 1 low elsewhere (cloud:
    2 medium at thin cloud edges). Fill pixels are exactly 1.
    """
    u16 = lambda m: m.astype(np.uint16)  # noqa: E731
    cloud, dilated, shadow, cirrus = clouds.cloud, clouds.dilated, clouds.shadow, clouds.cirrus
    qa = (
        (u16(dilated) << 1) | (u16(cirrus) << 2) | (u16(cloud) << 3) | (u16(shadow) << 4) | (u16(snow) << 5)
        | (u16(~cloud & ~dilated) << 6) | (u16(water & ~cloud) << 7)
        | ((1 + u16(clouds.medium) + 2 * u16(cloud)) << 8)
        | ((1 + 2 * u16(shadow)) << 10) | ((1 + 2 * u16(snow)) << 12) | ((1 + 2 * u16(cirrus)) << 14)
    )
    qa[fill] = 1
    return qa


# -------------------------------------------------------------------------------------- weather
@dataclass(frozen=True)
class Weather:
    """Daily weather series for the region (one value per day from the start date)."""

    doy: np.ndarray  # day of year of each day
    t2m_anomaly: np.ndarray  # K
    cloudiness: np.ndarray  # 0..1
    rain_m: np.ndarray  # m per day at the region centre


def make_weather(seed: int, doy: np.ndarray) -> Weather:
    """Autocorrelated daily temperature anomalies and cloudiness; rain on cloudy days."""
    rng = rng_for(seed, "weather")
    n = doy.size
    eps = rng.standard_normal((2, n))
    anom, cloud = np.zeros(n), np.zeros(n)
    a, c = 0.0, 0.0
    for i in range(n):
        a = 0.75 * a + np.sqrt(1 - 0.75**2) * 2.5 * eps[0, i]
        c = 0.6 * c + np.sqrt(1 - 0.6**2) * eps[1, i]
        anom[i], cloud[i] = a, c
    cloudiness = 1 / (1 + np.exp(-1.5 * cloud))
    wet = rng.random(n) < 0.1 + 0.6 * cloudiness
    rain = np.where(wet, rng.gamma(0.8, 6.0, n), 0.0) / 1000.0
    return Weather(doy=doy, t2m_anomaly=anom, cloudiness=cloudiness, rain_m=rain)


def air_temperature(lat: np.ndarray, elevation: np.ndarray, doy: np.ndarray, anomaly: np.ndarray) -> np.ndarray:
    """Daily mean 2 m temperature (K): climatology by latitude, seasonal cycle, lapse rate, anomaly.

    ``lat``/``elevation`` broadcast against ``doy``/``anomaly`` (give the time axis first).
    """
    alat = np.abs(lat)
    mean = 300.0 - 0.55 * np.maximum(alat - 15.0, 0.0)
    amplitude = 0.18 * alat
    sign = np.where(lat >= 0, 1.0, -1.0)
    season = -sign * amplitude * np.cos(2 * np.pi * (doy - 20.0) / _DOY_YEAR)
    return mean + season - _LAPSE * elevation + anomaly


def daily_toa_radiation(lat: np.ndarray, doy: np.ndarray) -> np.ndarray:
    """Top-of-atmosphere daily insolation (J m-2 d-1), FAO-56 eq. 21."""
    phi = np.radians(lat)
    dr = 1 + 0.033 * np.cos(2 * np.pi * doy / 365.0)
    decl = 0.409 * np.sin(2 * np.pi * doy / 365.0 - 1.39)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(decl), -1, 1))
    ra = (24 * 60 / np.pi) * 0.0820 * dr * (ws * np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.sin(ws))
    return ra * 1e6  # MJ -> J
