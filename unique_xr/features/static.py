"""Static layers on the target grid: elevation, slope and land-cover class fractions.

Three layers, as everywhere in unique_xr:

* numpy kernel: :func:`slope_degrees` (Horn 1981), knows nothing of xarray or Dask;
* xarray functions: :func:`terrain`, :func:`landcover_fractions`, :func:`static_layers` name the
  dimensions, check the georeferencing and stay lazy on Dask input;
* the ``.gpp`` accessor only hands off to them.

Land-cover fractions are *area shares*: ``frac_forest`` of a 30 m cell is the share of the cell's
valid (non-nodata) fine pixels that are forest. When the fine raster nests in the target grid (same
CRS, whole number of fine pixels per cell, edges aligned) the result is exact and computed with a
one-hot encoding and ``coarsen(...).sum()``. Otherwise the fine raster is first resampled (nearest)
onto an intermediate grid in the target CRS whose pixel is ``resolution / k``, ``k`` chosen so the
fine resolution is roughly preserved, and that grid is coarsened by ``k``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import xarray as xr

from unique_xr.errors import CRSError, GridError, SpecError
from unique_xr.grid import GridSpec
from unique_xr.schema import cf_attrs, is_dask

__all__ = ["slope_degrees", "terrain", "landcover_fractions", "static_layers"]

#: Largest accumulated misalignment, in fine pixels over the whole fine raster, for which a fine
#: raster still counts as nested in the target grid (covers floating-point noise in transforms).
_NEST_TOL = 1e-3


# ---------------------------------------------------------------------------------------------
# numpy kernel
# ---------------------------------------------------------------------------------------------
def _as_pair(resolution: float | tuple[float, float]) -> tuple[float, float]:
    if np.ndim(resolution) == 0:
        dx = dy = float(resolution)  # type: ignore[arg-type]
    else:
        dx, dy = (float(abs(r)) for r in resolution)  # type: ignore[union-attr]
    if not (math.isfinite(dx) and math.isfinite(dy) and dx > 0 and dy > 0):
        raise SpecError(f"resolution must be positive and finite (dx, dy) in metres, got {resolution!r}")
    return dx, dy


def slope_degrees(elevation: np.ndarray, resolution: float | tuple[float, float]) -> np.ndarray:
    """Terrain slope in degrees with Horn's (1981) 3x3 finite differences.

    For the 3x3 window ``a b c / d e f / g h i`` around each pixel:

    .. math::

        \\frac{\\partial z}{\\partial x} = \\frac{(c + 2f + i) - (a + 2d + g)}{8\\,\\Delta x}, \\qquad
        \\frac{\\partial z}{\\partial y} = \\frac{(g + 2h + i) - (a + 2b + c)}{8\\,\\Delta y}, \\qquad
        \\text{slope} = \\arctan\\sqrt{(\\partial z/\\partial x)^2 + (\\partial z/\\partial y)^2}

    Parameters
    ----------
    elevation
        2-D array ``(y, x)`` of elevations in the same units as ``resolution`` (metres).
    resolution
        Pixel size ``dx`` or ``(dx, dy)`` (absolute values are used).

    Returns
    -------
    numpy.ndarray
        float32 slope in degrees, same shape. A pixel is NaN when it or any of its 8 neighbours is NaN.

    Notes
    -----
    Edge handling: the array is extended by one pixel on each side by *odd* reflection
    (``2 * edge - inner``, a linear extrapolation), so along the outer rows/columns the centred
    difference becomes the one-sided difference between the edge pixel and its inner neighbour.
    A plane therefore has the same slope at the edges as inside (GDAL's ``gdaldem`` leaves the
    edges as nodata instead). A dimension of length 1 has zero derivative along it.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.features.static import slope_degrees
    >>> plane = np.add.outer(np.zeros(4), np.arange(5) * 30.0)  # rises 30 m per 30 m pixel eastward
    >>> np.round(slope_degrees(plane, 30.0), 3)[0]
    array([45., 45., 45., 45., 45.], dtype=float32)
    """
    z = np.asarray(elevation, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"slope_degrees expects a 2-D (y, x) array, got shape {z.shape}")
    dx, dy = _as_pair(resolution)
    if z.size == 0:
        return np.empty(z.shape, dtype=np.float32)
    pad_y = "reflect" if z.shape[0] > 1 else "edge"
    pad_x = "reflect" if z.shape[1] > 1 else "edge"
    p = np.pad(z, ((1, 1), (0, 0)), mode=pad_y, **({"reflect_type": "odd"} if pad_y == "reflect" else {}))
    p = np.pad(p, ((0, 0), (1, 1)), mode=pad_x, **({"reflect_type": "odd"} if pad_x == "reflect" else {}))
    a, b, c = p[:-2, :-2], p[:-2, 1:-1], p[:-2, 2:]
    d, f = p[1:-1, :-2], p[1:-1, 2:]
    g, h, i = p[2:, :-2], p[2:, 1:-1], p[2:, 2:]
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * dx)
    dzdy = ((g + 2 * h + i) - (a + 2 * b + c)) / (8.0 * dy)
    slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
    # the centre pixel does not enter Horn's differences: NaN there must still give NaN
    slope[np.isnan(z)] = np.nan
    return slope.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# helpers on georeferenced DataArrays
# ---------------------------------------------------------------------------------------------
def _squeeze_band(da: xr.DataArray, what: str) -> xr.DataArray:
    """Drop a length-1 ``band`` dim (``rioxarray.open_rasterio`` output); require ``(y, x)``."""
    if "band" in da.dims:
        if da.sizes["band"] != 1:
            raise ValueError(
                f"{what} has {da.sizes['band']} bands; pass a single band, e.g. da.sel(band=1)."
            )
        da = da.squeeze("band", drop=True)
    if set(da.dims) != {"y", "x"}:
        raise ValueError(f"{what} must have dims ('y', 'x') (optionally 'band' of length 1), got {da.dims}.")
    return da.transpose("y", "x")


def _source_crs(da: xr.DataArray, what: str):
    """The CRS of ``da`` from its ``spatial_ref`` coordinate (via rioxarray), as a ``pyproj.CRS``."""
    import rioxarray  # noqa: F401  (registers .rio)
    from pyproj import CRS

    crs = da.rio.crs
    if crs is None:
        raise CRSError(
            f"{what} has no CRS. Open it with rioxarray.open_rasterio, or give it a spatial_ref coordinate "
            "(GridSpec.attach or da.rio.write_crs('EPSG:...'))."
        )
    return CRS.from_user_input(crs.to_wkt())


def _source_transform(da: xr.DataArray):
    """The affine transform of ``da``'s top-left corner, from its (possibly cropped) coordinates."""
    import rioxarray  # noqa: F401

    recalc = da.sizes["x"] > 1 and da.sizes["y"] > 1
    return da.rio.transform(recalc=recalc)


def _resolution_from_coords(da: xr.DataArray) -> tuple[float, float]:
    if da.sizes["x"] < 2 or da.sizes["y"] < 2:
        raise GridError(f"Need at least 2 pixels along x and y to know the pixel size, got sizes {dict(da.sizes)}.")
    x, y = np.asarray(da["x"]), np.asarray(da["y"])
    return float(abs(x[1] - x[0])), float(abs(y[1] - y[0]))



# ---------------------------------------------------------------------------------------------
# terrain
# ---------------------------------------------------------------------------------------------
def _elevation_float(elevation: xr.DataArray) -> xr.DataArray:
    """float32 elevation with the raster's nodata (``_FillValue``) turned into NaN."""
    import rioxarray  # noqa: F401

    nodata = elevation.rio.nodata if "spatial_ref" in elevation.coords or "_FillValue" in elevation.attrs else None
    z = elevation.astype(np.float32)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        z = z.where(elevation != nodata)
    return z


def terrain(elevation: xr.DataArray) -> xr.Dataset:
    """Elevation and Horn (1981) slope of a projected DEM, lazily on Dask input.

    Parameters
    ----------
    elevation
        ``(y, x)`` DataArray (a length-1 ``band`` dim is dropped) in metres on a projected grid,
        e.g. from ``rioxarray.open_rasterio`` or a cube made by :meth:`GridSpec.attach`. The
        raster's nodata value becomes NaN.

    Returns
    -------
    xarray.Dataset
        ``elevation`` (m) and ``slope`` (degree), float32 with CF attributes, on the input's
        coordinates. On Dask input ``slope`` is built with ``dask.array.map_overlap`` (depth 1) and
        equals the numpy result across chunk borders; see :func:`slope_degrees` for edges.

    Raises
    ------
    CRSError
        The DEM is on a geographic (degree) grid: reproject it first, e.g. with
        :func:`static_layers`, which puts it on the target grid.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from unique_xr.grid import GridSpec
    >>> from unique_xr.features.static import terrain
    >>> grid = GridSpec(crs="EPSG:32633", resolution=30.0, bounds=(0, 0, 150, 120))
    >>> dem = grid.attach(xr.DataArray(np.add.outer(np.zeros(4), np.arange(5) * 30.0), dims=("y", "x")))
    >>> float(terrain(dem)["slope"][2, 2])
    45.0
    """
    da = _squeeze_band(elevation, "elevation")
    if "spatial_ref" in da.coords:
        crs = _source_crs(da, "elevation")
        if crs.is_geographic:
            raise CRSError(
                "Slope needs elevations on a projected grid in metres, but the DEM's CRS is geographic "
                f"({crs.name}). Reproject it onto the target grid first: static_layers(dem, ..., grid=grid) "
                "does this (bilinear)."
            )
    dx, dy = _resolution_from_coords(da)
    z = _elevation_float(da)
    if is_dask(z):
        import dask.array as dsa

        slope_data = dsa.map_overlap(
            slope_degrees,
            z.data,
            depth=1,
            boundary="none",  # outer edges: slope_degrees' own odd reflection, as in numpy
            dtype=np.float32,
            meta=np.empty((0, 0), dtype=np.float32),
            resolution=(dx, dy),
        )
    else:
        slope_data = slope_degrees(z.values, (dx, dy))
    slope = xr.DataArray(slope_data, dims=("y", "x"), coords=z.coords)
    has_grid_mapping = "spatial_ref" in z.coords
    extra = {"grid_mapping": "spatial_ref"} if has_grid_mapping else {}
    elevation_out = z.copy()
    elevation_out.attrs = cf_attrs("elevation", **extra)
    slope.attrs = cf_attrs("slope", comment="Horn (1981) 3x3 finite differences; edges one-sided", **extra)
    return xr.Dataset({"elevation": elevation_out, "slope": slope})


# ---------------------------------------------------------------------------------------------
# land-cover fractions
# ---------------------------------------------------------------------------------------------
def _validate_classes(classes: Mapping[int, str], nodata: int) -> dict[int, str]:
    if not classes:
        raise SpecError("classes must map at least one class code to a name, e.g. {10: 'tree', 40: 'crop'}.")
    out: dict[int, str] = {}
    for code, name in classes.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise SpecError(
                f"Class name {name!r} (code {code}) must be a valid identifier such as 'forest' or 'built_up'; "
                "it becomes the variable name 'frac_<name>'."
            )
        if int(code) == int(nodata):
            raise SpecError(f"Class {name!r} uses code {code}, which is also nodata={nodata}. Pick another nodata.")
        out[int(code)] = name
    if len(set(out.values())) != len(out):
        raise SpecError(f"Class names must be unique, got {list(out.values())}.")
    return out


def _normalise_landcover(da: xr.DataArray, nodata: int) -> xr.DataArray:
    """Integer classes with every missing value (NaN, the raster's own nodata) set to ``nodata``."""
    import rioxarray  # noqa: F401

    src_nodata = da.rio.nodata if ("spatial_ref" in da.coords or "_FillValue" in da.attrs) else None
    values = da
    if np.issubdtype(da.dtype, np.floating):
        missing = da.isnull()
        if src_nodata is not None and not math.isnan(float(src_nodata)):
            missing = missing | (da == src_nodata)
        values = da.where(~missing, nodata).astype(np.int32)
    elif np.issubdtype(da.dtype, np.integer):
        dtype = da.dtype
        if not (np.iinfo(dtype).min <= nodata <= np.iinfo(dtype).max):
            dtype = np.dtype(np.int32)
            values = values.astype(dtype)
        if src_nodata is not None and not math.isnan(float(src_nodata)) and int(src_nodata) != nodata:
            values = values.where(da != src_nodata, nodata).astype(dtype)
    else:
        raise TypeError(f"Land cover must hold integer class codes, got dtype {da.dtype}.")
    values.attrs = {}
    values.encoding = {}
    return values


def _nesting(transform, shape: tuple[int, int], same_crs: bool, grid: GridSpec) -> tuple[int, int, int, int] | None:
    """``(ky, kx, row0, col0)`` when the fine raster nests in ``grid``, else None.

    ``ky``/``kx`` fine pixels per target cell; ``row0``/``col0`` the fine-pixel index of the
    target's top-left corner (may be negative or past the raster: padding follows).
    """
    if not same_crs or transform.b != 0 or transform.d != 0 or transform.a <= 0 or transform.e >= 0:
        return None
    ny, nx = shape
    res = grid.resolution
    left, _, _, top = grid.bounds
    fx, fy = transform.a, -transform.e
    kx, ky = res / fx, res / fy
    col0, row0 = (left - transform.c) / fx, (transform.f - top) / fy
    ok = (
        round(kx) >= 1
        and round(ky) >= 1
        and abs(kx - round(kx)) * (nx / round(kx) + 1) < _NEST_TOL
        and abs(ky - round(ky)) * (ny / round(ky) + 1) < _NEST_TOL
        and abs(col0 - round(col0)) < _NEST_TOL
        and abs(row0 - round(row0)) < _NEST_TOL
    )
    return (round(ky), round(kx), round(row0), round(col0)) if ok else None


def _window(fine: xr.DataArray, start: int, length: int, dim: str, nodata: int) -> xr.DataArray:
    """Fine pixels ``start .. start + length`` along ``dim``, padded with ``nodata`` outside the raster."""
    n = fine.sizes[dim]
    lo, hi = max(start, 0), min(start + length, n)
    if hi <= lo:
        raise GridError(
            f"The land cover ({n} pixels along {dim}) does not overlap the target grid at all. "
            "Check that both cover the same area (and CRS)."
        )
    out = fine.isel({dim: slice(lo, hi)}).drop_vars(dim, errors="ignore")
    before, after = lo - start, start + length - hi
    if before or after:
        out = out.pad({dim: (before, after)}, mode="constant", constant_values=nodata)
    return out


def _fine_resolution_in(crs_src, transform, shape, crs_dst) -> float:
    """Approximate fine pixel size (geometric mean of dx, dy) expressed in ``crs_dst`` units."""
    from pyproj import Transformer

    ny, nx = shape
    col, row = nx / 2.0, ny / 2.0
    def corner(c: float, r: float) -> tuple[float, float]:
        return (transform.c + c * transform.a + r * transform.b, transform.f + c * transform.d + r * transform.e)

    pts = [corner(col, row), corner(col + 1, row), corner(col, row + 1)]
    tr = Transformer.from_crs(crs_src, crs_dst, always_xy=True)
    (x0, y0), (x1, y1), (x2, y2) = (tr.transform(px, py) for px, py in pts)
    dx, dy = math.hypot(x1 - x0, y1 - y0), math.hypot(x2 - x0, y2 - y0)
    return math.sqrt(dx * dy)


def _check_overlap(crs_src, transform, shape, grid: GridSpec) -> None:
    """Raise GridError when the fine raster's footprint misses the target grid entirely."""
    from pyproj import Transformer

    ny, nx = shape
    xs = [transform.c, transform.c + nx * transform.a]
    ys = [transform.f, transform.f + ny * transform.e]
    tr = Transformer.from_crs(crs_src, grid.crs, always_xy=True)
    left, bottom, right, top = tr.transform_bounds(min(xs), min(ys), max(xs), max(ys), densify_pts=21)
    g_left, g_bottom, g_right, g_top = grid.bounds
    if right <= g_left or left >= g_right or top <= g_bottom or bottom >= g_top:
        raise GridError(
            f"The land cover (bounds {left:.1f}, {bottom:.1f}, {right:.1f}, {top:.1f} in {grid.crs}) does not "
            f"overlap the target grid {grid.bounds}. Check that both cover the same area."
        )


def _align_chunks(fine: xr.DataArray, ky: int, kx: int) -> xr.DataArray:
    """Rechunk Dask data so chunk sizes are whole multiples of the coarsening factors."""
    if not is_dask(fine):
        return fine
    cy, cx = max(fine.chunks[0]), max(fine.chunks[1])
    return fine.chunk({"y": max(ky, (cy // ky) * ky), "x": max(kx, (cx // kx) * kx)})


def landcover_fractions(
    landcover: xr.DataArray,
    grid: GridSpec,
    classes: Mapping[int, str],
    *,
    nodata: int = 0,
) -> xr.Dataset:
    """Share of each land-cover class inside each cell of ``grid``, from finer land cover.

    Parameters
    ----------
    landcover
        Fine ``(y, x)`` integer class raster (a length-1 ``band`` dim is dropped) with a CRS:
        ``rioxarray.open_rasterio`` output, or a DataArray with a ``spatial_ref`` coordinate
        (e.g. from :meth:`GridSpec.attach`). Dask-backed input gives lazy output.
    grid
        The target grid, typically 30 m or 500 m.
    classes
        ``{code: name}``; one variable ``frac_<name>`` per class. Codes present in the raster but
        not listed still count as valid area, so the fractions then sum to less than 1.
    nodata
        Class code meaning "no data". The raster's own nodata (``_FillValue``) and NaN are treated
        the same way. Nodata pixels are left out of the denominator.

    Returns
    -------
    xarray.Dataset
        float32 ``frac_<name>`` in ``[0, 1]`` on ``grid``; each cell's fractions sum to 1 where its
        valid pixels all belong to listed classes; NaN where the cell holds only nodata (or lies
        outside the land cover). ``attrs["method"]`` says which path was used.

    Notes
    -----
    *Nested* (exact): same CRS, a whole number of fine pixels per target cell along x and y, and
    the target edges on fine-pixel edges. Each class is one-hot encoded and counted with
    ``coarsen(...).sum()``. *Otherwise*: nearest-neighbour resampling (odc-geo ``xr_reproject``)
    onto an intermediate grid in the target CRS with pixel ``resolution / k``,
    ``k = round(resolution / fine_resolution)``, then coarsening by ``k``; each fine pixel then
    counts for the intermediate pixels whose centres fall in it, so shares are accurate to about
    one intermediate pixel along each cell edge.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from unique_xr.grid import GridSpec
    >>> from unique_xr.features.static import landcover_fractions
    >>> fine = GridSpec(crs="EPSG:32633", resolution=10.0, bounds=(0, 0, 30, 30))
    >>> lc = fine.attach(xr.DataArray(np.array([[1, 1, 2], [1, 2, 2], [0, 0, 0]], "uint8"), dims=("y", "x")))
    >>> out = landcover_fractions(lc, fine.with_resolution(30.0), {1: "forest", 2: "crop"})
    >>> float(out.frac_forest[0, 0]), float(out.frac_crop[0, 0])
    (0.5, 0.5)
    """
    classes = _validate_classes(classes, nodata)
    da = _squeeze_band(landcover, "landcover")
    crs_src = _source_crs(da, "landcover")
    from pyproj import CRS

    crs_dst = CRS.from_user_input(grid.crs)
    transform = _source_transform(da)
    fine = _normalise_landcover(da, nodata)
    ny, nx = grid.shape
    nest = _nesting(transform, (da.sizes["y"], da.sizes["x"]), crs_src.equals(crs_dst, ignore_axis_order=True), grid)
    if nest is not None:
        ky, kx, row0, col0 = nest
        method = f"nested: one-hot and coarsen by {ky}x{kx} fine pixels (exact)"
        fine = fine.drop_vars([c for c in fine.coords], errors="ignore")
        fine = _window(fine, row0, ny * ky, "y", nodata)
        fine = _window(fine, col0, nx * kx, "x", nodata)
    else:
        from odc.geo.xr import xr_reproject

        _check_overlap(crs_src, transform, (da.sizes["y"], da.sizes["x"]), grid)
        k = max(1, round(grid.resolution / _fine_resolution_in(crs_src, transform, (da.sizes["y"], da.sizes["x"]), crs_dst)))
        ky = kx = k
        intermediate = GridSpec(crs=grid.crs, resolution=grid.resolution / k, bounds=grid.bounds)
        src = da.copy(data=fine.data)
        src.attrs = {"nodata": nodata}
        src.encoding = {}
        fine = xr_reproject(src, intermediate.to_geobox(), resampling="nearest", dst_nodata=nodata)
        fine = fine.drop_vars([c for c in fine.coords], errors="ignore")
        method = f"reprojected (nearest) to {grid.resolution / k:g} {grid.crs} pixels, then coarsened by {k}"
    fine = _align_chunks(fine, ky, kx)
    window = {"y": ky, "x": kx}
    valid = (fine != nodata).coarsen(window).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = valid.astype(np.float32).where(valid > 0)
        variables = {}
        for code, name in classes.items():
            count = (fine == code).coarsen(window).sum().astype(np.float32)
            frac = (count / denom).astype(np.float32)
            frac.attrs = {
                "long_name": f"fraction of cell area covered by land-cover class {name!r} (code {code})",
                "units": "1",
                "valid_range": [0.0, 1.0],
                "class_code": code,
                "grid_mapping": "spatial_ref",
            }
            variables[f"frac_{name}"] = frac
    out = grid.attach(xr.Dataset(variables))
    out.attrs = {"method": method, "nodata": nodata}
    return out


# ---------------------------------------------------------------------------------------------
# combined
# ---------------------------------------------------------------------------------------------
def _on_grid(da: xr.DataArray, grid: GridSpec) -> bool:
    if "x" not in da.coords or "y" not in da.coords or da.sizes.get("y") != grid.shape[0] or da.sizes.get("x") != grid.shape[1]:
        return False
    tol = 1e-6 * grid.resolution
    if not (np.allclose(da["x"].values, grid.x, atol=tol, rtol=0) and np.allclose(da["y"].values, grid.y, atol=tol, rtol=0)):
        return False
    if "spatial_ref" not in da.coords:
        return False
    from pyproj import CRS

    return _source_crs(da, "dem").equals(CRS.from_user_input(grid.crs), ignore_axis_order=True)


def static_layers(
    dem: xr.DataArray,
    landcover: xr.DataArray,
    grid: GridSpec,
    classes: Mapping[int, str],
    *,
    nodata: int = 0,
) -> xr.Dataset:
    """Elevation, slope and land-cover fractions on ``grid`` in one static ``(y, x)`` Dataset.

    Parameters
    ----------
    dem
        Elevation in metres. Used as is when already on ``grid`` (same CRS and pixel centres);
        otherwise reprojected onto ``grid`` with bilinear resampling (odc-geo), lazily on Dask.
    landcover, classes, nodata
        As in :func:`landcover_fractions`.

    Returns
    -------
    xarray.Dataset
        ``elevation``, ``slope`` and ``frac_<name>`` per class, float32, with CF attributes and the
        grid's ``spatial_ref``.
    """
    da = _squeeze_band(dem, "dem")
    if not _on_grid(da, grid):
        from odc.geo.xr import xr_reproject

        _source_crs(da, "dem")  # a clear error when the DEM has no CRS
        z = _elevation_float(da)
        z.attrs, z.encoding = {}, {}
        z = xr_reproject(z, grid.to_geobox(), resampling="bilinear", dst_nodata=np.nan)
        z = z.drop_vars([c for c in z.coords], errors="ignore")
        da = grid.attach(z.astype(np.float32))
    else:
        da = grid.attach(da.drop_vars([c for c in da.coords if c not in ("x", "y", "spatial_ref")]))
    topo = terrain(da)
    fractions = landcover_fractions(landcover, grid, classes, nodata=nodata)
    out = xr.merge([topo, fractions.drop_vars("spatial_ref")], compat="override", join="override")
    out = grid.attach(out)
    out.attrs = {"landcover_method": fractions.attrs["method"]}
    return out
