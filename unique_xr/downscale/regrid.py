"""A coarse field on a fine grid that it does not nest in: bilinear resampling with odc-geo.

The downscaler reads its coarse input either on a grid nested in the fine one (each coarse pixel
an exact ``k x k`` block) or already on the fine grid. A 500 m MODIS grid built over the same
bounds as a 30 m Landsat grid does not nest (500 / 30 is not whole, and the edges are snapped
differently), so the coarse field is resampled onto the fine grid first. Training and prediction
must resample the same way, so both call :func:`coarse_onto_grid`. :func:`average_onto_grid` goes
the other way (a fine field averaged over coarse cells), to make training pairs from fine images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from unique_xr.errors import GridError
from unique_xr.grid import GridSpec

__all__ = ["average_onto_grid", "coarse_onto_grid"]


def coarse_onto_grid(coarse: xr.DataArray, grid: GridSpec | Any, *, keep_gaps: bool = True,
                     chunks: tuple[int, int] | None = None) -> xr.DataArray:
    """Resample a coarse ``(..., y, x)`` field onto ``grid``, bilinear between coarse pixel centres.

    Parameters
    ----------
    coarse
        A field with ``x``/``y`` pixel-centre coordinates and a ``spatial_ref`` coordinate (as
        :meth:`unique_xr.GridSpec.attach`, the data layer's stores and odc-geo give it), float, NaN
        for missing.
    grid
        The fine target grid, a :class:`~unique_xr.grid.GridSpec` or an odc-geo ``GeoBox`` (any CRS;
        odc-geo reprojects when it differs).
    keep_gaps
        NaN wherever the coarse pixel containing the fine pixel's centre is missing (default). Without
        it, bilinear resampling fills single missing coarse pixels from their valid neighbours.
    chunks
        ``(y, x)`` chunk of the output on Dask input (default: the whole grid, one chunk per step of
        the leading dimensions).

    Returns
    -------
    xarray.DataArray
        float32 on ``grid`` (coordinates and CF grid mapping attached; odc-geo's coordinates for a
        ``GeoBox``), the other dimensions and the attributes of ``coarse`` kept; lazy on Dask input.

    Examples
    --------
    >>> from unique_xr.grid import GridSpec
    >>> coarse_grid = GridSpec(crs="EPSG:32633", resolution=100.0, bounds=(0.0, 0.0, 300.0, 200.0))
    >>> field = coarse_grid.attach(xr.DataArray(np.array([[1.0, 2.0, 3.0], [1.0, 2.0, np.nan]]), dims=("y", "x")))
    >>> fine = coarse_onto_grid(field, coarse_grid.refine(2))
    >>> fine.shape, float(fine[0, 2]), bool(np.isnan(fine[3, 5]))
    ((4, 6), 1.75, True)
    """
    from odc.geo.xr import xr_reproject

    if not {"y", "x"} <= set(coarse.dims) or "spatial_ref" not in coarse.coords:
        raise GridError(
            f"coarse_onto_grid needs a field with y/x dims and a spatial_ref coordinate; got dims {coarse.dims} "
            f"and coords {sorted(map(str, coarse.coords))}. Attach its grid first (GridSpec.attach)."
        )
    lead = [d for d in coarse.dims if d not in ("y", "x")]
    src = _plain(coarse, lead)
    attrs = {k: v for k, v in coarse.attrs.items() if k not in ("grid_mapping", "valid_range")}
    geobox = grid.to_geobox() if isinstance(grid, GridSpec) else grid
    kw = {"chunks": tuple(chunks or geobox.shape)} if src.chunks is not None else {}
    out = xr_reproject(src, geobox, resampling="bilinear", src_nodata=np.nan, dst_nodata=np.nan, **kw)
    if keep_gaps:
        nearest = xr_reproject(src, geobox, resampling="nearest", src_nodata=np.nan, dst_nodata=np.nan, **kw)
        out = out.where(nearest.notnull())
    out = out.astype(np.float32).rename(coarse.name)
    if isinstance(grid, GridSpec):
        out = grid.attach(out.drop_vars([c for c in out.coords if c not in lead]))
    out.attrs = {**attrs, "grid_mapping": "spatial_ref"}
    return out


def _plain(da: xr.DataArray, lead: list[str]) -> xr.DataArray:
    out = da.transpose(*lead, "y", "x").astype(np.float32)
    out = out.drop_vars([c for c in out.coords if c not in ("x", "y", "spatial_ref", *lead)])
    out.attrs, out.encoding = {}, {}
    return out


def average_onto_grid(fine: xr.DataArray, grid: GridSpec, *, min_valid: float = 0.5) -> xr.DataArray:
    """Average a fine ``(..., y, x)`` field over the cells of a coarser ``grid`` (odc-geo ``average``).

    Each coarse cell is the area-weighted mean of the valid fine pixels it covers, and NaN where
    they cover less than ``min_valid`` of it (clouds, fill, the edge of the fine field).

    Examples
    --------
    >>> from unique_xr.grid import GridSpec
    >>> fine_grid = GridSpec(crs="EPSG:32633", resolution=50.0, bounds=(0.0, 0.0, 200.0, 100.0))
    >>> field = fine_grid.attach(xr.DataArray(np.array([[1.0, 3.0, 5.0, np.nan], [1.0, 3.0, 7.0, np.nan]]),
    ...                                       dims=("y", "x")))
    >>> average_onto_grid(field, fine_grid.with_resolution(100.0)).values
    array([[2., 6.]], dtype=float32)
    >>> bool(np.isnan(average_onto_grid(field, fine_grid.with_resolution(100.0), min_valid=0.5001)[0, 1]))
    True
    """
    from odc.geo.xr import xr_reproject

    if not {"y", "x"} <= set(fine.dims) or "spatial_ref" not in fine.coords:
        raise GridError(
            f"average_onto_grid needs a field with y/x dims and a spatial_ref coordinate; got dims {fine.dims}. "
            "Attach its grid first (GridSpec.attach)."
        )
    lead = [d for d in fine.dims if d not in ("y", "x")]
    src = _plain(fine, lead)
    geobox = grid.to_geobox()
    kw = {"chunks": grid.shape} if src.chunks is not None else {}
    mean = xr_reproject(src, geobox, resampling="average", src_nodata=np.nan, dst_nodata=np.nan, **kw)
    share = xr_reproject(src.notnull().astype(np.float32), geobox, resampling="average", dst_nodata=np.nan, **kw)
    out = mean.where(share >= min_valid).astype(np.float32).rename(fine.name)
    out = grid.attach(out.drop_vars([c for c in out.coords if c not in lead]))
    out.attrs = {**{k: v for k, v in fine.attrs.items() if k != "valid_range"}, "grid_mapping": "spatial_ref"}
    return out
