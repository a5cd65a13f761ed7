"""A PNG quicklook of the cubes a job wrote, for a person to glance at."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

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
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
