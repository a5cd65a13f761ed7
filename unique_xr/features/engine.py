"""The feature engine: raw model inputs over ``(time, pixel)`` -> the tree models' feature matrix.

numpy in, numpy out; nothing here knows xarray, pandas or the model card. The recipe
(:class:`unique_xr.models.features.Recipe`) decides the parameters, resolves names and units at the
edge, and calls :func:`feature_matrix`; tower tables (pivoted to ``(time, site)``) and cube blocks
(``(time, y * x)``) both come through here, so a pixel with a tower's inputs gets the tower's
features.

One compiled pass per pixel (:func:`feature_matrix`) does, per reflectance band: QA and valid-range
mask, linear interpolation of interior gaps of at most ``gap`` (time units of ``t``), a centred
running median of ``smooth`` steps; per day: the LST of the two overpasses (their mean where both
are seen), its gap fill and centred running mean, the vegetation indices (the formulas of
:mod:`unique_xr.features.indices`), day of year, top-of-atmosphere radiation, the products of
indices and radiation, the meteorology and its trailing means — and writes each row of the
float64 matrix the tree engines read without a copy, with the count of finite features per row.

The column order is :func:`feature_names`. The windows follow xarray's ``rolling(time=w)``: centred
windows cover ``[i - w + 1 + (w - 1) // 2, i + (w - 1) // 2]``, trailing ones ``[i - w + 1, i]``;
NaN is skipped and one value is enough (``min_periods=1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from unique_xr._jit import jit
from unique_xr.features.indices import evi_value, kndvi_from_ndvi_squared, nd_value, nirv_value

__all__ = [
    "INDEX_FEATURES",
    "FeatureMatrix",
    "centred_median",
    "feature_matrix",
    "feature_names",
    "fill_gaps",
    "toa_radiation",
]

#: the index features every recipe derives, in column order after the bands
INDEX_FEATURES = ("ndvi", "evi", "nirv", "kndvi", "lswi", "nd_swir2")
_MET = ("air_temperature", "shortwave_radiation", "vpd")
#: band roles the indices read, in this order, from the bands given to :func:`feature_matrix`
INDEX_ROLES = ("red", "nir", "blue", "swir1", "swir2")


def feature_names(roles: Sequence[str], met_windows: Sequence[int]) -> tuple[str, ...]:
    """Column names of :func:`feature_matrix` for bands ``roles`` and trailing ``met_windows``."""
    out = [f"b_{r}" for r in roles]
    out += [*INDEX_FEATURES, "lst", "doy", "rad_toa", "nirv_x_rad_toa", "evi_x_rad_toa", *_MET, "nirv_x_shortwave"]
    for w in met_windows:
        out += [f"{m}_{w}d" for m in _MET]
    return tuple(out)


def toa_radiation(lat_deg, doy):
    """Daily mean top-of-atmosphere shortwave radiation (W m-2), FAO-56 eq. 21-25.

    .. math::
        R_a = \\frac{S_0}{\\pi} d_r \\left[\\omega_s \\sin\\varphi \\sin\\delta
              + \\cos\\varphi \\cos\\delta \\sin\\omega_s\\right]

    Examples
    --------
    >>> round(float(toa_radiation(0.0, 80)), 0)  # equator, late March
    438.0
    >>> float(toa_radiation(-70.0, 172))  # polar night
    0.0
    """
    doy = np.asarray(doy, dtype="float64") if not hasattr(doy, "dims") else doy
    phi = np.deg2rad(lat_deg)
    dr = 1 + 0.033 * np.cos(2 * np.pi * doy / 365)
    dec = 0.409 * np.sin(2 * np.pi * doy / 365 - 1.39)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(dec), -1, 1))
    return 1367.0 / np.pi * dr * (ws * np.sin(phi) * np.sin(dec) + np.cos(phi) * np.cos(dec) * np.sin(ws))


# --------------------------------------------------------------------------------------------
# one series at a time (compiled; called by the fused kernel and, through the wrappers below, alone)


@jit(inline="always")
def _fill_series(x, t, max_gap):
    """In place: linear interpolation of interior NaN runs whose valid neighbours are at most
    ``max_gap`` apart in ``t`` (``np.interp``'s formula); leading and trailing NaN stay."""
    last = -1
    for i in range(x.shape[0]):
        v = x[i]
        if v == v:
            if last >= 0 and i - last > 1 and t[i] - t[last] <= max_gap:
                y0, x0 = x[last], t[last]
                slope = (v - y0) / (t[i] - x0)
                for k in range(last + 1, i):
                    x[k] = slope * (t[k] - x0) + y0
            last = i


@jit(inline="always")
def _insert(win, k, v):
    j = k
    while j > 0 and win[j - 1] > v:
        win[j] = win[j - 1]
        j -= 1
    win[j] = v
    return k + 1


@jit(inline="always")
def _remove(win, k, v):
    j = 0
    while win[j] != v:
        j += 1
    for m in range(j, k - 1):
        win[m] = win[m + 1]
    return k - 1


@jit(inline="always")
def _replace(win, k, old, new):
    """Swap ``old`` (in the sorted ``win[:k]``) for ``new``, moving only the values between them.
    Positions are found by counting (no data-dependent branch per value)."""
    j = 0
    p = 0
    for m in range(k):
        v = win[m]
        j += v < old
        p += v < new
    if p > j:
        for m in range(j, p - 1):
            win[m] = win[m + 1]
        win[p - 1] = new
    else:
        for m in range(j, p, -1):
            win[m] = win[m - 1]
        win[p] = new


@jit
def _median_series(x, window, out, win):
    """Centred running median of ``x`` into ``out`` (not ``x``); ``win`` is scratch of ``window``."""
    n = x.shape[0]
    half = (window - 1) // 2
    k = 0
    for j in range(min(half, n)):  # the first window's right part
        if x[j] == x[j]:
            k = _insert(win, k, x[j])
    for i in range(n):
        add = i + half
        drop = i - window + half
        a = x[add] if add < n else np.nan
        d = x[drop] if drop >= 0 else np.nan
        if a == a and d == d:
            _replace(win, k, d, a)
        else:
            if a == a:
                k = _insert(win, k, a)
            if d == d:
                k = _remove(win, k, d)
        if k == 0:
            out[i] = np.nan
        elif k % 2 == 1:
            out[i] = win[k // 2]
        else:
            out[i] = (win[k // 2 - 1] + win[k // 2]) / 2.0


#: the longest window summed in numpy's pairwise order (numpy's pairwise block; longer windows are
#: summed in order, equal within a few ulp)
_PAIRWISE_MAX = 128


@jit(inline="always")
def _prepare_window(x, z, cnt, pad):
    """``z``: ``x`` with NaN as 0 and ``pad`` zeros on both sides; ``cnt[i]``: values in ``x[:i]``."""
    n = x.shape[0]
    z[:pad] = 0.0
    z[pad + n:] = 0.0
    cnt[0] = 0
    for i in range(n):
        v = x[i]
        ok = v == v
        z[pad + i] = v if ok else 0.0
        cnt[i + 1] = cnt[i] + ok


@jit(inline="always")
def _window_mean(z, cnt, pad, start, width):
    """Mean of the values of ``x[start:start + width]`` that exist (NaN if none), from
    :func:`_prepare_window`'s ``z`` and ``cnt``.

    The sum runs in numpy's pairwise order over the whole window (NaN and positions outside the
    series as 0), so the mean equals xarray's ``rolling(...).mean()`` bit for bit."""
    n = cnt.shape[0] - 1
    c = cnt[min(max(start + width, 0), n)] - cnt[min(max(start, 0), n)]
    if c == 0:
        return np.nan
    k = start + pad
    if width < 8 or width > _PAIRWISE_MAX:
        s = -0.0
        for j in range(width):
            s += z[k + j]
        return s / c
    r0, r1, r2, r3 = z[k], z[k + 1], z[k + 2], z[k + 3]
    r4, r5, r6, r7 = z[k + 4], z[k + 5], z[k + 6], z[k + 7]
    i = 8
    end = width - width % 8
    while i < end:
        r0 += z[k + i]
        r1 += z[k + i + 1]
        r2 += z[k + i + 2]
        r3 += z[k + i + 3]
        r4 += z[k + i + 4]
        r5 += z[k + i + 5]
        r6 += z[k + i + 6]
        r7 += z[k + i + 7]
        i += 8
    s = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < width:
        s += z[k + i]
        i += 1
    return s / c


@jit
def _mean_series(x, lo_off, hi_off, out):
    """Running mean over ``[i - lo_off, i + hi_off]`` of ``x`` into ``out`` (not ``x``), NaN skipped."""
    n = x.shape[0]
    pad = lo_off + hi_off + 1
    z = np.empty(n + 2 * pad)
    cnt = np.empty(n + 1, dtype=np.int64)
    _prepare_window(x, z, cnt, pad)
    for i in range(n):
        out[i] = _window_mean(z, cnt, pad, i - lo_off, pad)


# --------------------------------------------------------------------------------------------
# the fused kernel


#: pixels whose series are read together: each read of a time step takes a whole cache line of
#: float32 values instead of one value per line (the inputs are (time, pixel), the work per pixel)
TILE = 16


@jit
def _kernel(bands, qa, lst, met, rad_table, rad_col, doy, t, gap, lst_gap, smooth, lst_window, windows, roles,
            pixel_major, X, count, keep, kept):
    nt, npix = bands[0].shape
    nb = len(bands)
    nf = X.shape[1]
    has_qa = qa.shape[0] > 0
    nw = windows.shape[0]
    band = np.empty((nb, TILE, nt))
    raw = np.empty((TILE, nt))
    lstv = np.empty((TILE, nt))
    metv = np.empty((3, TILE, nt))
    pad = 1
    for w in range(nw):
        pad = max(pad, windows[w])
    zmet = np.empty((3, nt + 2 * pad))
    cnt = np.empty((3, nt + 1), dtype=np.int64)
    win = np.empty(max(smooth, 1))
    lst_half = (lst_window - 1) // 2
    for p0 in range(0, npix, TILE):
        pn = min(TILE, npix - p0)
        # reflectance: QA and range mask, gap fill, running median
        for b in range(nb):
            src = bands[b]
            for i in range(nt):
                for q in range(pn):
                    v = np.float64(src[i, p0 + q])
                    if has_qa and not qa[b, i, p0 + q]:
                        v = np.nan
                    raw[q, i] = v if (v > 0.0 and v < 1.0) else np.nan
            for q in range(pn):
                if gap > 0:
                    _fill_series(raw[q], t, gap)
                if smooth > 1:
                    _median_series(raw[q], smooth, band[b, q], win)
                else:
                    band[b, q, :] = raw[q]
        # land-surface temperature: the mean of the overpasses seen, gap-filled and smoothed
        for i in range(nt):
            for q in range(pn):
                s = 0.0
                c = 0
                for a in lst:
                    v = np.float64(a[i, p0 + q])
                    if v == v:
                        s += v
                        c += 1
                raw[q, i] = s / c if c > 0 else np.nan
        for q in range(pn):
            if lst_gap > 0:
                _fill_series(raw[q], t, lst_gap)
            if lst_window > 1:
                _mean_series(raw[q], lst_window - 1 - lst_half, lst_half, lstv[q])
            else:
                lstv[q, :] = raw[q]
        for m in range(3):
            src = met[m]
            for i in range(nt):
                for q in range(pn):
                    metv[m, q, i] = np.float64(src[i, p0 + q])
        # the rows
        for q in range(pn):
            p = p0 + q
            if nw > 0:
                for m in range(3):
                    _prepare_window(metv[m, q], zmet[m], cnt[m], pad)
            col = rad_col[p]
            for i in range(nt):
                row = p * nt + i if pixel_major else i * npix + p
                out = X[row]
                for b in range(nb):
                    out[b] = band[b, q, i]
                red, nir, blue = band[roles[0], q, i], band[roles[1], q, i], band[roles[2], q, i]
                nd = nd_value(nir, red)
                nirv = nirv_value(red, nir)
                evi = evi_value(blue, red, nir)
                rad = rad_table[i, col]
                out[nb] = nd
                out[nb + 1] = evi
                out[nb + 2] = nirv
                out[nb + 3] = nd * nd  # kNDVI = tanh(NDVI^2): tanh after the pass, see feature_matrix
                kept[0, row] = nd * nd
                out[nb + 4] = nd_value(nir, band[roles[3], q, i])
                out[nb + 5] = nd_value(nir, band[roles[4], q, i])
                out[nb + 6] = lstv[q, i]
                out[nb + 7] = doy[i]
                out[nb + 8] = rad
                out[nb + 9] = nirv * rad
                out[nb + 10] = evi * rad
                for m in range(3):
                    out[nb + 11 + m] = metv[m, q, i]
                out[nb + 14] = nirv * metv[1, q, i]
                for w in range(nw):
                    width = windows[w]
                    for m in range(3):  # trailing means
                        out[nb + 15 + 3 * w + m] = _window_mean(zmet[m], cnt[m], pad, i - width + 1, width)
                n = 0
                for j in range(nf):
                    if np.isfinite(out[j]):
                        n += 1
                count[row] = n
                for k in range(keep.shape[0]):
                    kept[k + 1, row] = out[keep[k]]


class FeatureMatrix(NamedTuple):
    """What :func:`feature_matrix` returns."""

    X: np.ndarray  #: ``(rows, features)`` float64, C-contiguous
    count: np.ndarray  #: finite features per row, uint8
    columns: dict[str, np.ndarray]  #: the features asked for with ``keep``, each contiguous


def _as_2d(a, nt: int, npix: int, dtype) -> np.ndarray:
    a = np.asarray(a)
    if a.shape != (nt, npix):
        a = np.broadcast_to(a, (nt, npix))
    return np.ascontiguousarray(a, dtype=dtype)


def feature_matrix(
    bands: Sequence[np.ndarray],
    roles: Sequence[str],
    lst: Sequence[np.ndarray],
    met: Sequence[np.ndarray],
    rad_table: np.ndarray,
    rad_col: np.ndarray,
    doy: np.ndarray,
    t: np.ndarray,
    *,
    qa: Sequence[np.ndarray] | None = None,
    gap: float = 0.0,
    lst_gap: float = 0.0,
    smooth: int = 1,
    lst_window: int = 1,
    met_windows: Sequence[int] = (),
    pixel_major: bool = True,
    out: np.ndarray | None = None,
    keep: Sequence[str] = (),
) -> FeatureMatrix:
    """The feature matrix of one batch of pixels, in one compiled pass per pixel.

    Parameters
    ----------
    bands
        Reflectance per band role, each ``(time, pixel)`` (or broadcastable to it), unitless.
        Values outside ``(0, 1)`` are masked.
    roles
        The role of each band; must include ``red``, ``nir``, ``blue``, ``swir1``, ``swir2``.
    lst
        One or two land-surface temperatures (K) per ``(time, pixel)``; their mean where both exist.
    met
        Air temperature (degC), shortwave radiation (W m-2), VPD (hPa), each ``(time, pixel)``.
    rad_table, rad_col
        Top-of-atmosphere radiation of pixel ``p`` on step ``i`` is ``rad_table[i, rad_col[p]]``
        (see :func:`radiation_lookup`).
    doy, t
        Day of year per step, and the step's time as float (any unit ``gap`` is given in).
    qa
        Per band, True where the retrieval is usable (default: all usable).
    gap, lst_gap
        Longest interior gap of the bands and of LST that is interpolated, in units of ``t``
        (0: none).
    smooth, lst_window
        Centred running median of the bands and running mean of LST, in steps (1: none).
    met_windows
        Trailing means of the three meteorological inputs, in steps.
    pixel_major
        Rows ordered ``pixel * time + step`` (default, each pixel's rows contiguous) or
        ``step * pixel + pixel``.
    out
        ``(time * pixel, n_features)`` float64, C-contiguous, to write into.
    keep
        Features also wanted as contiguous columns (written in the same pass; reading a column of
        the row-major matrix afterwards would be one more pass over all of it).

    Returns
    -------
    FeatureMatrix
        ``X``, the float64 matrix (columns :func:`feature_names`); ``count``, the finite features
        per row (uint8); ``columns``, the features of ``keep`` by name.
    """
    first = next(np.asarray(b) for b in bands)
    nt, npix = first.shape if first.ndim == 2 else (len(doy), first.shape[-1])
    arrays = [np.asarray(a) for a in (*bands, *lst, *met)]
    dtype = "float32" if all(a.dtype == np.float32 for a in arrays) else "float64"
    bands_ = tuple(_as_2d(b, nt, npix, dtype) for b in bands)
    lst_ = tuple(_as_2d(a, nt, npix, dtype) for a in lst)
    met_ = tuple(_as_2d(a, nt, npix, dtype) for a in met)
    qa_ = (np.stack([_as_2d(q, nt, npix, bool) for q in qa]) if qa is not None
           else np.empty((0, 0, 0), dtype=bool))
    role_index = np.array([list(roles).index(r) for r in INDEX_ROLES], dtype=np.int64)
    names = feature_names(roles, met_windows)
    if out is None:
        out = np.empty((nt * npix, len(names)), dtype="float64")
    elif out.shape != (nt * npix, len(names)) or out.dtype != np.float64 or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous float64 of shape {(nt * npix, len(names))}, got {out.shape}")
    count = np.empty(nt * npix, dtype=np.uint8)
    keep = tuple(keep)
    kept = np.empty((1 + len(keep), nt * npix), dtype="float64")
    _kernel(bands_, qa_, lst_, met_, np.ascontiguousarray(rad_table, dtype="float64"),
            np.ascontiguousarray(rad_col, dtype=np.int64), np.ascontiguousarray(doy, dtype="float64"),
            np.ascontiguousarray(t, dtype="float64"), float(gap), float(lst_gap), int(smooth), int(lst_window),
            np.asarray(met_windows, dtype=np.int64), role_index, bool(pixel_major), out, count,
            np.array([names.index(k) for k in keep], dtype=np.int64), kept)
    # kNDVI's tanh through numpy's own (vectorised) tanh, which the xarray features used: libm's tanh
    # inside the compiled pass differs by one ulp on a third of the tower rows, enough to move
    # LightGBM's histogram bins and so the published scores
    kndvi = kndvi_from_ndvi_squared(kept[0])
    out[:, len(roles) + INDEX_FEATURES.index("kndvi")] = kndvi
    columns = {k: (kndvi if k == "kndvi" else kept[i + 1]) for i, k in enumerate(keep)}
    return FeatureMatrix(out, count, columns)


def radiation_lookup(lat: np.ndarray, doy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``rad_table, rad_col`` for :func:`feature_matrix`: TOA radiation once per distinct latitude.

    ``lat`` is ``(pixel,)`` (a cube: rows of a projected grid share few latitudes) or
    ``(time, pixel)`` (a table, whose rows carry their own latitude).
    """
    lat = np.asarray(lat, dtype="float64")
    doy = np.asarray(doy, dtype="float64")
    if lat.ndim == 2:
        return toa_radiation(lat, doy[:, None]), np.arange(lat.shape[1], dtype=np.int64)
    uniq, inverse = np.unique(lat, return_inverse=True)
    if np.isnan(uniq).any():  # np.unique keeps every NaN apart
        first_nan = int(np.argmax(np.isnan(uniq)))
        inverse = np.minimum(inverse, first_nan)
        uniq = uniq[: first_nan + 1]
    return toa_radiation(uniq[None, :], doy[:, None]), inverse.astype(np.int64).reshape(-1)


# --------------------------------------------------------------------------------------------
# the series kernels alone, over the last axis of any array


@jit
def _fill_rows(a, t, max_gap, out):
    for r in range(a.shape[0]):
        out[r, :] = a[r, :]
        _fill_series(out[r], t, max_gap)


@jit
def _median_rows(a, window, out):
    win = np.empty(window)
    for r in range(a.shape[0]):
        _median_series(a[r], window, out[r], win)


def _rows(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype="float64").reshape(-1, np.shape(a)[-1]))


def fill_gaps(a: np.ndarray, t: np.ndarray, max_gap: float) -> np.ndarray:
    """Interpolate interior NaN runs along the last axis whose neighbours are at most ``max_gap``
    apart in ``t`` (float, same units); leading and trailing NaN stay. float64 out."""
    rows = _rows(a)
    out = np.empty_like(rows)
    _fill_rows(rows, np.ascontiguousarray(t, dtype="float64"), float(max_gap), out)
    return out.reshape(np.shape(a))


def centred_median(a: np.ndarray, window: int) -> np.ndarray:
    """Centred running median along the last axis (``rolling(center=True, min_periods=1).median()``)."""
    rows = _rows(a)
    out = np.empty_like(rows)
    _median_rows(rows, int(window), out)
    return out.reshape(np.shape(a))
