"""Write small Cloud-Optimized GeoTIFFs (used by the synthetic generator, recorded-item fixtures and the demo)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def write_cog(
    path: str | Path,
    data: np.ndarray,
    *,
    crs: Any,
    transform: Any,
    nodata: float | int | None = None,
    blocksize: int = 256,
    compress: str = "DEFLATE",
    tags: dict[str, str] | None = None,
) -> Path:
    """Write ``data`` (``(y, x)`` or ``(band, y, x)``) as a COG with internal tiles and overviews.

    Parameters
    ----------
    crs
        Anything rasterio accepts (``"EPSG:32633"``, WKT, ``rasterio.crs.CRS``).
    transform
        ``affine.Affine`` of the top-left pixel corner.
    nodata
        Fill value recorded in the file (None: none recorded).
    """
    import rasterio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise ValueError(f"write_cog expects (y, x) or (band, y, x) data, got shape {np.shape(data)}")
    count, height, width = arr.shape
    profile = {
        "driver": "COG",
        "width": width,
        "height": height,
        "count": count,
        "dtype": arr.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "compress": compress,
        "blocksize": blocksize,
        "overview_resampling": "nearest",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        if tags:
            dst.update_tags(**tags)
    return path
