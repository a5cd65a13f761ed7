"""PNG pictures of what a job wrote, for a person to glance at: the data-layer quicklook and the GPP map."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from unique_xr._files import save_figure
from unique_xr._optional import import_optional


def _panels(cubes: Mapping[str, object]) -> list[tuple[str, object, str]]:
    """(title, 2-D DataArray, colormap) for what is present."""
    out = []
    ls = cubes.get("landsat_30m")
    if ls is not None:
        first = ls.isel(time=0)
        out.append((f"Landsat RGB {str(first.time.values)[:10]}", first[["red", "green", "blue"]], "rgb"))
        out.append((f"Landsat NDVI {str(ls.time.values[-1])[:10]}", ls["ndvi"].isel(time=-1), "YlGn"))
    md = cubes.get("modis_500m")
    if md is not None:
        out.append((f"MODIS NDVI, mean of {md.sizes['time']} days", md["ndvi"].mean("time"), "YlGn"))
    st = cubes.get("static_30m")
    if st is not None:
        if "elevation" in st:
            out.append(("Elevation (m)", st["elevation"], "terrain"))
        fracs = [v for v in st.data_vars if str(v).startswith("frac_")]
        if fracs:
            top = max(fracs, key=lambda v: float(st[v].mean()))
            out.append((f"{top} (share of cell)", st[top], "viridis"))
    mt = cubes.get("meteo_30m")
    if mt is not None and "air_temperature" in mt:
        out.append(("Air temperature, period mean (degC)", mt["air_temperature"].mean("time"), "coolwarm"))
    return out


def quicklook(cubes: Mapping[str, object], path: str | Path, *, dpi: int = 90) -> Path:
    """Draw up to six panels from the cubes (``landsat_30m``, ``modis_500m``, ``static_30m``, ``meteo_30m``)."""
    mpl = import_optional("matplotlib", purpose="drawing the quicklook")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(cubes)
    if not panels:
        raise ValueError(f"Nothing to draw: none of the expected cubes in {sorted(cubes)}")
    ncol = min(3, len(panels))
    nrow = int(np.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.8 * nrow), squeeze=False)
    for ax, (title, da, cmap) in zip(axes.flat, panels):
        if cmap == "rgb":
            rgb = np.stack([np.asarray(da[b]) for b in ("red", "green", "blue")], axis=-1)
            lo, hi = np.nanpercentile(rgb, [2, 98]) if np.isfinite(rgb).any() else (0, 1)
            ax.imshow(np.clip((rgb - lo) / (hi - lo + 1e-9), 0, 1))
        else:
            img = ax.imshow(np.asarray(da), cmap=cmap)
            fig.colorbar(img, ax=ax, shrink=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    save_figure(fig, path, dpi=dpi)
    plt.close(fig)
    return path


GPP_LABEL = "GPP (g C m-2 d-1)"


def _extent(da) -> tuple[float, float, float, float]:
    """``imshow`` extent (left, right, bottom, top) from pixel-centre ``x``/``y`` coordinates."""
    x, y = np.asarray(da["x"], dtype="float64"), np.asarray(da["y"], dtype="float64")
    dx = abs(x[1] - x[0]) if x.size > 1 else 1.0
    dy = abs(y[1] - y[0]) if y.size > 1 else 1.0
    return (x.min() - dx / 2, x.max() + dx / 2, y.min() - dy / 2, y.max() + dy / 2)


def _gpp_panels(cubes: Mapping[str, object], max_30m: int) -> list[tuple[str, object]]:
    """(title, 2-D gpp DataArray): GPP_L on each Landsat date, then GPP_M on the first of them."""
    import pandas as pd

    out = []
    fine = cubes.get("gpp_30m")
    dates = []
    if fine is not None:
        for i in range(min(fine.sizes["time"], max_30m)):
            when = pd.Timestamp(fine["time"].values[i])
            dates.append(when.normalize())
            out.append((f"GPP_L, 30 m, Landsat {when:%Y-%m-%d}", fine["gpp"].isel(time=i)))
    coarse = cubes.get("gpp_500m")
    if coarse is not None:
        days = pd.DatetimeIndex(coarse["time"].values).normalize()
        i = next((int(np.flatnonzero(days == d)[0]) for d in dates if d in days), coarse.sizes["time"] // 2)
        out.append((f"GPP_M, 500 m, {days[i]:%Y-%m-%d}", coarse["gpp"].isel(time=i)))
    return out


def gpp_map(cubes: Mapping[str, object], path: str | Path, *, max_30m: int = 3, title: str | None = None,
            dpi: int = 100) -> Path:
    """Map daily GPP: GPP_L at 30 m on each Landsat date and GPP_M at 500 m on the first of those days.

    Parameters
    ----------
    cubes
        ``{"gpp_30m": Dataset, "gpp_500m": Dataset}`` (either may be absent), each with ``gpp``
        ``(time, y, x)`` as :func:`unique_xr.pipeline.build_gpp` writes them.
    path
        PNG to write.
    max_30m
        Most Landsat dates drawn.
    title
        First line of the figure title; a second line lists the inputs that were absent (the
        stores' ``inputs_absent`` attribute).

    Every panel shares one colour scale (0 to the 99th percentile of all values) and one colourbar in
    g C m-2 d-1, and the extent of the first panel, so 30 m and 500 m are directly comparable; grey
    is no estimate (cloud, fill or no reflectance).
    """
    mpl = import_optional("matplotlib", purpose="drawing the GPP map")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    panels = _gpp_panels(cubes, max_30m)
    if not panels:
        raise ValueError(f"Nothing to draw: neither 'gpp_30m' nor 'gpp_500m' in {sorted(cubes)}")
    images = [np.asarray(da, dtype="float32") for _, da in panels]
    finite = np.concatenate([im[np.isfinite(im)] for im in images])
    vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
    cmap = mpl.colormaps["YlGn"].with_extremes(bad="0.82")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels) + 1.0, 3.9), squeeze=False,
                             layout="constrained")
    extent = _extent(panels[0][1])
    for ax, (name, da), im in zip(axes.flat, panels, images, strict=True):
        shown = ax.imshow(im, cmap=cmap, vmin=0.0, vmax=max(vmax, 1e-3), extent=_extent(da), interpolation="nearest")
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.85, pad=0.02)
    bar.set_label(GPP_LABEL)
    km = ((extent[1] - extent[0]) / 1000.0, (extent[3] - extent[2]) / 1000.0)
    fig.supxlabel(f"each panel {km[0]:.1f} x {km[1]:.1f} km; grey: no estimate (cloud, shadow, fill or no reflectance)",
                  fontsize=8)
    absent = [f"{name}: {c.attrs['inputs_absent']}" for name, c in cubes.items()
              if c.attrs.get("inputs_absent") not in (None, "none")]
    lines = [title or "Daily gross primary productivity"]
    if absent:
        lines.append("inputs absent (treated as missing): " + "; ".join(absent))
    fig.suptitle("\n".join(lines), fontsize=10)
    path = Path(path)
    save_figure(fig, path, dpi=dpi)
    plt.close(fig)
    return path


def _day_index(times, day) -> int:
    """Index of the calendar day ``day`` in ``times`` (any time of day), or -1."""
    import pandas as pd

    days = pd.DatetimeIndex(times).normalize()
    hit = np.flatnonzero(days == pd.Timestamp(day).normalize())
    return int(hit[0]) if hit.size else -1


def gpp_downscaled_map(cubes: Mapping[str, object], path: str | Path, *, day: str | None = None,
                       title: str | None = None, dpi: int = 100) -> Path:
    """Map one day of downscaled GPP: GPP_M at 500 m, the 30 m ensemble mean, its spread, and GPP_L.

    Parameters
    ----------
    cubes
        ``{"gpp_30m_daily": Dataset}`` with ``gpp`` (ensemble mean) and ``gpp_spread`` ``(time, y, x)``
        as :func:`unique_xr.pipeline.build_downscaled_gpp` writes them; optionally ``gpp_500m``
        (GPP_M, drawn first) and ``gpp_30m`` (GPP_L, drawn last when it has the day).
    path
        PNG to write.
    day
        ``"YYYY-MM-DD"`` to draw. Default: the first Landsat day of ``gpp_30m`` that the downscaled
        series has (so GPP_L can be compared), else its middle day.
    title
        First line of the figure title.

    The GPP panels share one colour scale (0 to the 99th percentile) in g C m-2 d-1 and the extent of
    the 30 m grid; the spread has its own scale. Grey is no estimate. Panels are drawn with
    matplotlib's ``"antialiased"`` interpolation: the 30 m grids have more pixels than the panels.
    """
    import pandas as pd

    mpl = import_optional("matplotlib", purpose="drawing the downscaled GPP map")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    daily = cubes.get("gpp_30m_daily")
    if daily is None:
        raise ValueError(f"Nothing to draw: no 'gpp_30m_daily' in {sorted(cubes)}")
    times = daily["time"].values
    fine, coarse = cubes.get("gpp_30m"), cubes.get("gpp_500m")
    if day is None:
        landsat_days = [] if fine is None else list(pd.DatetimeIndex(fine["time"].values).normalize())
        day = next((d for d in landsat_days if _day_index(times, d) >= 0), pd.Timestamp(times[len(times) // 2]))
    i = _day_index(times, day)
    if i < 0:
        raise ValueError(f"{pd.Timestamp(day):%Y-%m-%d} is not in the downscaled series "
                         f"({pd.Timestamp(times[0]):%Y-%m-%d} to {pd.Timestamp(times[-1]):%Y-%m-%d}).")
    when = f"{pd.Timestamp(times[i]):%Y-%m-%d}"
    members = daily.attrs.get("downscaling_members", "?")
    gpp_panels = []
    if coarse is not None and _day_index(coarse["time"].values, day) >= 0:
        gpp_panels.append((f"GPP_M, 500 m, {when}", coarse["gpp"].isel(time=_day_index(coarse["time"].values, day))))
    gpp_panels.append((f"GPP_M downscaled to 30 m, {when}\nmean of {members} members", daily["gpp"].isel(time=i)))
    spread = daily["gpp_spread"].isel(time=i) if "gpp_spread" in daily else None
    if fine is not None and _day_index(fine["time"].values, day) >= 0:
        gpp_panels.append((f"GPP_L, 30 m, Landsat {when}\n(for comparison)",
                           fine["gpp"].isel(time=_day_index(fine["time"].values, day))))
    images = [np.asarray(da, dtype="float32") for _, da in gpp_panels]
    finite = np.concatenate([im[np.isfinite(im)] for im in images])
    vmax = max(float(np.percentile(finite, 99)) if finite.size else 1.0, 1e-3)
    cmap = mpl.colormaps["YlGn"].with_extremes(bad="0.82")
    n = len(gpp_panels) + (spread is not None)
    fig, axes = plt.subplots(1, n, figsize=(4.0 * n + 1.6, 3.9), squeeze=False, layout="constrained")
    axes = list(axes.flat)
    extent = _extent(daily["gpp"])
    order = list(range(len(gpp_panels)))
    if spread is not None:  # the spread goes right after the downscaled mean
        at = 2 if len(gpp_panels) > 1 and gpp_panels[0][0].startswith("GPP_M, 500") else 1
        order.insert(at, None)
    gpp_axes = []
    for ax, k in zip(axes, order, strict=True):
        if k is None:
            im = np.asarray(spread, dtype="float32")
            top = float(np.nanpercentile(im, 99)) if np.isfinite(im).any() else 1.0
            shown_spread = ax.imshow(im, cmap=mpl.colormaps["magma_r"].with_extremes(bad="0.82"), vmin=0.0,
                                     vmax=max(top, 1e-3), extent=_extent(spread), interpolation="antialiased")
            ax.set_title(f"Ensemble spread (member std), {when}", fontsize=10)
            bar = fig.colorbar(shown_spread, ax=ax, shrink=0.85, pad=0.02)
            bar.set_label("spread (g C m-2 d-1)")
        else:
            name, da = gpp_panels[k]
            shown = ax.imshow(images[k], cmap=cmap, vmin=0.0, vmax=vmax, extent=_extent(da), interpolation="antialiased")
            ax.set_title(name, fontsize=10)
            gpp_axes.append(ax)
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(shown, ax=gpp_axes, shrink=0.85, pad=0.02, location="left")
    bar.set_label(GPP_LABEL)
    km = ((extent[1] - extent[0]) / 1000.0, (extent[3] - extent[2]) / 1000.0)
    model = daily.attrs.get("model_token", "?")
    steps = daily.attrs.get("downscaling_steps", "?")
    fig.supxlabel(f"each panel {km[0]:.1f} x {km[1]:.1f} km; scheme {daily.attrs.get('downscaling_scheme', '?')}, "
                  f"{members} members, {steps} DDIM steps, model {model}; grey: no estimate", fontsize=8)
    fig.suptitle(title or "Daily GPP downscaled 500 m -> 30 m", fontsize=10)
    path = Path(path)
    save_figure(fig, path, dpi=dpi)
    plt.close(fig)
    return path
