"""The figure of a finished GPP cube: a map of one day or a period mean, and the region and per-class time series.

Built for national cubes: the map is averaged down to at most :data:`MAX_MAP_PIXELS` pixels on its long
side before anything is computed, and the time series comes from the lazy per-class reduction of
:func:`unique_xr.write.summary.summarise`; the full cube is never held in memory.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from unique_xr._files import save_figure
from unique_xr._optional import import_optional
from unique_xr.errors import SpecError
from unique_xr.schema import GPP_UNITS, require_variables
from unique_xr.write.quicklook import GPP_LABEL, _day_index, _extent
from unique_xr.write.summary import ALL, summarise

#: Most pixels drawn along the long side of the map; larger grids are block-averaged down.
MAX_MAP_PIXELS = 1000


def scale_bar_length(width: float, fraction: float = 0.2) -> float:
    """The largest 1, 2 or 5 x 10^n not above ``fraction`` of ``width`` (same units as ``width``).

    Examples
    --------
    >>> scale_bar_length(1920.0), scale_bar_length(48_000.0), scale_bar_length(700_000.0)
    (200.0, 5000.0, 100000.0)
    """
    target = width * fraction
    if not target > 0:
        raise ValueError(f"A scale bar needs a positive width, got {width}.")
    power = 10.0 ** math.floor(math.log10(target))
    return next(m * power for m in (5, 2, 1) if m * power <= target * (1 + 1e-9))


def _length_label(metres: float) -> str:
    """``"500 m"``, ``"2 km"``."""
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"


def _area_label(pixels: int, pixel_area_m2: float) -> str:
    """``"1,234 km2"`` (``"0.69 km2"`` when small), or ``"N px"`` when the pixel area is unknown."""
    if not np.isfinite(pixel_area_m2):
        return f"{pixels:,} px"
    km2 = pixels * pixel_area_m2 / 1e6
    return f"{km2:,.0f} km2" if km2 >= 10 else f"{km2:.2g} km2"


def _map_layer(gpp: xr.DataArray, day: str | None, period: tuple[str, str] | None) -> tuple[xr.DataArray, str]:
    """(lazy 2-D map of one day or a period mean, a line saying which), checked against the cube's days."""
    times = gpp["time"].values
    span = f"{pd.Timestamp(times[0]):%Y-%m-%d} to {pd.Timestamp(times[-1]):%Y-%m-%d}"
    if day is not None and period is not None:
        raise SpecError("Give day= or period=, not both.")
    if day is not None:
        i = _day_index(times, day)
        if i < 0:
            raise SpecError(f"day={day!r} is not in the cube, which runs {span} ({len(times)} days); "
                            "choose a day in that range.")
        return gpp.isel(time=i), f"on {pd.Timestamp(times[i]):%Y-%m-%d}"
    if period is not None:
        try:
            start, end = (pd.Timestamp(p).normalize() for p in period)
        except (TypeError, ValueError) as err:
            raise SpecError(f"period={period!r} must be two dates ('YYYY-MM-DD', 'YYYY-MM-DD'): {err}") from None
        days = pd.DatetimeIndex(times).normalize()
        if start > end or start < days.min() or end > days.max():
            raise SpecError(f"period={period!r} must be a start <= end inside the cube, which runs {span}.")
        gpp = gpp.isel(time=np.flatnonzero((days >= start) & (days <= end)))
    first, last = pd.Timestamp(gpp["time"].values[0]), pd.Timestamp(gpp["time"].values[-1])
    return gpp.mean("time"), f"mean of {gpp.sizes['time']} days, {first:%Y-%m-%d} to {last:%Y-%m-%d}"


def _coarsened(layer: xr.DataArray, max_pixels: int = MAX_MAP_PIXELS) -> tuple[xr.DataArray, int]:
    """``layer`` block-averaged so its long side has at most ``max_pixels`` pixels, and the factor used."""
    factor = max(1, math.ceil(max(layer.sizes["y"], layer.sizes["x"]) / max_pixels))
    if factor == 1:
        return layer, 1
    return layer.coarsen(y=factor, x=factor, boundary="trim").mean(), factor


def _label(da: xr.DataArray) -> str:
    """The house GPP label (quicklook's) when the units are the canonical ones, else ``name (units)``."""
    units = da.attrs.get("units", "?")
    return GPP_LABEL if units == GPP_UNITS else f"{da.name} ({units})"


def _crs_name(ds: xr.Dataset) -> str:
    """``"EPSG:32633"`` (or whatever the grid calls its CRS), or ``""`` when the cube has no grid mapping."""
    from unique_xr.grid import GridSpec

    try:
        return GridSpec.from_xarray(ds).crs
    except (ValueError, RuntimeError):  # no or odd grid mapping: the axes go without the CRS name
        return ""


def _draw_scale_bar(ax, extent_km: tuple[float, float, float, float], patheffects) -> None:
    """A black bar of a round length in the lower left corner, labelled in m or km."""
    left, right, bottom, top = extent_km
    length_km = scale_bar_length((right - left) * 1000.0) / 1000.0
    x0, y0 = left + 0.05 * (right - left), bottom + 0.06 * (top - bottom)
    halo = [patheffects.withStroke(linewidth=5, foreground="white")]
    ax.plot([x0, x0 + length_km], [y0, y0], color="black", linewidth=3, solid_capstyle="butt", path_effects=halo)
    ax.text(x0 + length_km / 2, y0 + 0.025 * (top - bottom), _length_label(length_km * 1000.0), ha="center",
            va="bottom", fontsize=8, path_effects=halo)


def cube_plot(ds: xr.Dataset, path: str | Path, *, day: str | None = None, period: tuple[str, str] | None = None,
              title: str | None = None, dpi: int = 100) -> Path:
    """Draw a GPP map and the region and per-class time series of a cube into one PNG.

    Parameters
    ----------
    ds
        Cube with ``gpp`` ``(time, y, x)`` on a projected grid in metres, optionally ``land_cover``
        ``(y, x)`` with ``flag_values`` / ``flag_meanings`` (then one line per class).
    path
        PNG to write.
    day
        ``"YYYY-MM-DD"``: map that day.
    period
        ``("YYYY-MM-DD", "YYYY-MM-DD")``: map the mean of those days (both included). Default (neither
        ``day`` nor ``period``): the mean over every day of the cube.
    title
        First line of the figure title.
    dpi
        Resolution of the PNG.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    SpecError
        ``day`` or ``period`` outside the cube's time span (the message gives it).

    Notes
    -----
    The map's colour scale runs from 0 to the 99th percentile of what is shown; grey is no value.
    Grids longer than :data:`MAX_MAP_PIXELS` on a side are block-averaged (NaN-skipping) before
    drawing; the caption says by how much. Axes are in km of the cube's CRS. The time series are
    the daily means over the pixels of the region and of each class (:func:`summarise`); the mapped
    day or period is shaded on them.
    """
    require_variables(ds, ["gpp"], purpose="cube_plot")
    mpl = import_optional("matplotlib", purpose="drawing the cube plot")
    mpl.use("Agg")
    import dask
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib import patheffects

    gpp = ds["gpp"]
    layer, which = _map_layer(gpp, day, period)
    layer, factor = _coarsened(layer)
    by = "land_cover" if "land_cover" in ds and set(ds["land_cover"].dims) == {"y", "x"} else None
    image, table = dask.compute(layer, summarise(ds, by=by, variable="gpp"))
    image = np.asarray(image.transpose("y", "x"), dtype="float32")

    fig, (ax_map, ax_ts) = plt.subplots(1, 2, figsize=(13.0, 5.2), layout="constrained",
                                        gridspec_kw={"width_ratios": [1.0, 1.25]})
    finite = image[np.isfinite(image)]
    vmax = max(float(np.percentile(finite, 99)) if finite.size else 1.0, 1e-3)
    extent_km = tuple(v / 1000.0 for v in _extent(layer))
    shown = ax_map.imshow(image, cmap=mpl.colormaps["YlGn"].with_extremes(bad="0.82"), vmin=0.0, vmax=vmax,
                          extent=extent_km, origin="upper" if gpp["y"][0] > gpp["y"][-1] else "lower",
                          interpolation="nearest" if factor == 1 else "antialiased")
    crs = _crs_name(ds)
    ax_map.set_xlabel(f"x (km{', ' + crs if crs else ''})")
    ax_map.set_ylabel(f"y (km{', ' + crs if crs else ''})")
    ax_map.set_title(f"GPP, {which}", fontsize=10)
    _draw_scale_bar(ax_map, extent_km, patheffects)
    bar = fig.colorbar(shown, ax=ax_map, shrink=0.9, pad=0.02)
    bar.set_label(_label(gpp))

    times = pd.DatetimeIndex(table["time"].values)
    marker = "o" if times.size <= 31 else None
    classes = [c for c in table["class"].values.tolist() if c != ALL]
    colours = mpl.colormaps["tab20" if len(classes) > 10 else "tab10"]
    for k, name in enumerate(classes):
        row = table.sel({"class": name})
        ax_ts.plot(times, row["gpp"].values, color=colours(k), linewidth=1.2, marker=marker, markersize=2.5,
                   label=f"{name.replace('_', ' ')} ({_area_label(int(row['pixels']), table.attrs['pixel_area_m2'])})")
    ax_ts.plot(times, table["gpp"].sel({"class": ALL}).values, color="black", linewidth=2.2, marker=marker,
               markersize=3, label="region (all classes)" if classes else "region")
    if day is not None:
        ax_ts.axvline(pd.Timestamp(day), color="0.4", linestyle="--", linewidth=1, label="mapped day")
    elif period is not None:
        ax_ts.axvspan(pd.Timestamp(period[0]), pd.Timestamp(period[1]), color="0.85", zorder=0, label="mapped period")
    ax_ts.set_ylabel(_label(gpp))
    ax_ts.set_title(f"Daily GPP, region and {'per ' + table.attrs['summary_by'] + ' class' if classes else 'mean'}",
                    fontsize=10)
    locator = mdates.AutoDateLocator()
    ax_ts.xaxis.set_major_locator(locator)
    ax_ts.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax_ts.grid(alpha=0.3)
    ax_ts.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)

    ny, nx = gpp.sizes["y"], gpp.sizes["x"]
    note = f"{ny} x {nx} pixels" + (f", drawn averaged {factor} x {factor}" if factor > 1 else "")
    fig.suptitle(f"{title or 'Daily gross primary productivity'}\n{note}; grey: no value", fontsize=10)
    path = Path(path)
    save_figure(fig, path, dpi=dpi)
    plt.close(fig)
    return path
