"""GeoTIFF input and output of ``unique-xr downscale``: single bands in, the fine grid out.

Each input is one band of a raster, read as float32 with NaN for the file's nodata value,
its mask and any non-finite value (scale and offset applied). Grids are odc-geo ``GeoBox``es
taken from the files; a coarse image is put in relation to the fine grid by
:func:`align_coarse`:

* on the same grid (same CRS, transform and shape) -> used as is (``factor`` 1);
* nested in it (same CRS, pixel size a whole multiple ``k`` of the fine one, the fine grid's
  corner on a coarse pixel corner, fine sides multiples of ``k``) -> the coarse window over the
  fine grid, padded with NaN where the coarse file stops (``factor`` ``k``: the model upsamples
  bilinearly between coarse centres);
* any other georeferenced grid -> reprojected onto the fine grid with bilinear resampling
  (odc-geo ``xr_reproject``, ``factor`` 1), NaN where the fine pixel's centre is in a missing
  coarse pixel;
* no georeferencing on one side -> related by shape alone (equal, or a whole ratio).

:func:`write_prediction` writes a model's output as a float32 GeoTIFF (nodata NaN) on the fine
grid, through a temporary file renamed into place, so a failed write never leaves a partial file.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from unique_xr._files import private_tmp
from unique_xr.downscale.conditioning import DownscaleInputError
from unique_xr.errors import AllFillError, AssetReadError, CRSError

__all__ = [
    "band_count",
    "read_single_band",
    "read_grid",
    "grid_of",
    "same_grid",
    "align_coarse",
    "prediction_grid",
    "grid_record",
    "grid_from_record",
    "write_prediction",
    "common_grid",
    "shares_grid",
    "describe_grid",
]

#: Tolerance, as a fraction of a fine pixel, within which two grids' corners and sizes agree.
_TOL = 1e-6


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
def _open(path: Path):
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    if not path.exists():
        raise AssetReadError(f"{path}: no such file. Check the path (relative paths start from {Path.cwd()}).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioIOError as err:
        raise AssetReadError(f"{path} could not be opened as a raster: {err}") from err


@contextmanager
def _reading(path: Path):
    """The open raster; any GDAL/rasterio error while it is read becomes an :class:`AssetReadError` naming it.

    The pixels must be read inside the ``with`` block (``src.read``), so that a file whose header
    opens but whose data is cut short (an interrupted download or copy) fails here, with its name,
    rather than later with a rasterio traceback.
    """
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    src = _open(path)
    try:
        with src:
            yield src
    except (RasterioError, CPLE_BaseError) as err:
        cause = err.__cause__ or err.__context__
        detail = f"{err}" if cause is None or str(cause) in str(err) else f"{err} {cause}"
        raise AssetReadError(
            f"{path} is damaged or not a readable GeoTIFF: its header opens but GDAL cannot read its pixels "
            f"({detail}). The file is probably truncated (an interrupted download or copy): download or export it "
            f"again (`gdalinfo -checksum {path}` shows whether it reads)."
        ) from err


def _geobox(src):
    """The file's grid; a CRS that is only local (ENVI 'Arbitrary', an engineering CRS) counts as none."""
    from odc.geo.geobox import GeoBox
    from pyproj import CRS

    crs = None
    if src.crs is not None:
        parsed = CRS.from_wkt(src.crs.to_wkt())
        if not parsed.is_engineering:
            epsg = parsed.to_epsg()
            crs = f"EPSG:{epsg}" if epsg else parsed.to_wkt()
    return GeoBox(src.shape, src.transform, crs)


def read_grid(path: str | Path):
    """The grid (``odc.geo.geobox.GeoBox``) of a raster file, without reading its pixels."""
    path = Path(path)
    with _reading(path) as src:
        return _geobox(src)


def band_count(path: str | Path) -> int:
    """How many bands a raster file has."""
    with _reading(Path(path)) as src:
        return src.count


def read_single_band(path: str | Path, *, band: int | None = None, name: str | None = None) -> xr.DataArray:
    """One band of a raster as a float32 ``(y, x)`` DataArray with NaN for missing pixels.

    Parameters
    ----------
    path
        A GeoTIFF (or anything GDAL reads).
    band
        1-based band to read. Needed when the file has more than one band; single-band files are
        read as they are.
    name
        Name of the DataArray (default: the band description, else the file name without suffix).

    Returns
    -------
    xarray.DataArray
        Pixel-centre ``y``/``x`` coordinates and a ``spatial_ref`` coordinate when the file has a
        CRS (so ``da.odc.geobox`` is its grid); attrs ``source``, ``band``, and ``units`` when set.
        Nodata (the file's nodata value or mask) and non-finite values are NaN; the band's scale
        and offset are applied.

    Raises
    ------
    AssetReadError
        The file is missing, not a raster, or damaged (e.g. truncated: its pixels cannot be read).
    DownscaleInputError
        The file has several bands and ``band`` is not given, or ``band`` is out of range.
    """
    from odc.geo.xr import xr_coords

    path = Path(path)
    with _reading(path) as src:  # the pixels are read (src.read) inside: a truncated file fails here
        if band is None:
            if src.count != 1:
                raise DownscaleInputError(
                    f"{path} has {src.count} bands; downscaling reads one band per file. Pick one with "
                    f"--band N (1 to {src.count}), or write that band to its own file (gdal_translate -b N)."
                )
            band = 1
        if not 1 <= band <= src.count:
            raise DownscaleInputError(f"Band {band} asked for, but {path} has {src.count} band(s) (1 to {src.count}).")
        data = src.read(band, masked=True)
        values = np.ma.filled(data.astype(np.float32), np.nan)
        scale, offset = src.scales[band - 1], src.offsets[band - 1]
        if scale not in (None, 1.0) or offset not in (None, 0.0):
            values = (values * np.float32(scale if scale is not None else 1.0)
                      + np.float32(offset or 0.0)).astype(np.float32)
        values[~np.isfinite(values)] = np.nan
        grid = _geobox(src)
        description = src.descriptions[band - 1]
        units = src.units[band - 1]
    attrs: dict[str, Any] = {"source": str(path), "band": band}
    if units:
        attrs["units"] = units
    coords = xr_coords(grid, dims=("y", "x")) if grid.crs is not None else _plain_coords(grid)
    return xr.DataArray(values, dims=("y", "x"), coords=coords, name=name or description or path.stem, attrs=attrs)


def _plain_coords(grid) -> dict[str, np.ndarray]:
    """Pixel-centre coordinates of a grid without a CRS (odc-geo needs one for its own)."""
    a = grid.affine
    ny, nx = grid.shape
    return {"y": a.f + (np.arange(ny) + 0.5) * a.e, "x": a.c + (np.arange(nx) + 0.5) * a.a}


def grid_of(obj):
    """The grid of a DataArray read by :func:`read_single_band` (or a GeoBox, returned as is)."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    if isinstance(obj, GeoBox):
        return obj
    if "spatial_ref" in obj.coords:
        return obj.odc.geobox
    if "x" not in obj.coords or "y" not in obj.coords or obj.sizes["x"] < 2 or obj.sizes["y"] < 2:
        return GeoBox((obj.sizes["y"], obj.sizes["x"]), Affine.identity(), None)

    x, y = obj["x"].values.astype(np.float64), obj["y"].values.astype(np.float64)
    dx, dy = (x[-1] - x[0]) / (x.size - 1), (y[-1] - y[0]) / (y.size - 1)
    return GeoBox((y.size, x.size), Affine(dx, 0.0, x[0] - dx / 2, 0.0, dy, y[0] - dy / 2), None)


def _label(obj) -> str:
    return str(obj.attrs.get("source", obj.name)) if isinstance(obj, xr.DataArray) else "the fine grid"


def describe_grid(grid) -> str:
    """A grid in words for error messages: size, pixel size, corner and CRS."""
    a = grid.affine
    if not _georeferenced(grid):
        return f"{grid.shape[0]} x {grid.shape[1]} px, no georeferencing"
    crs = "no CRS" if grid.crs is None else (f"EPSG:{grid.crs.epsg}" if grid.crs.epsg else "a custom CRS")
    return f"{grid.shape[0]} x {grid.shape[1]} px of {abs(a.a):g} x {abs(a.e):g}, corner ({a.c:g}, {a.f:g}), {crs}"


# ---------------------------------------------------------------------------------------------
# grid relations
# ---------------------------------------------------------------------------------------------
def _is_identity(affine) -> bool:
    return tuple(affine)[:6] == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _georeferenced(grid) -> bool:
    return grid.crs is not None or not _is_identity(grid.affine)


def _same_crs(a, b) -> bool:
    if a.crs is None or b.crs is None:
        return a.crs is None and b.crs is None
    return a.crs == b.crs


def same_grid(a, b) -> bool:
    """Same shape, CRS and transform (corners and pixel sizes within a millionth of a pixel)."""
    a, b = grid_of(a), grid_of(b)
    return tuple(a.shape) == tuple(b.shape) and _same_crs(a, b) and _same_transform(a, b)


def _same_transform(a, b) -> bool:
    """Corners and pixel sizes within a millionth of a pixel."""
    fa, fb = a.affine, b.affine
    pixel = max(abs(fb.a), abs(fb.e))
    return all(abs(u - v) <= _TOL * pixel for u, v in zip(tuple(fa)[:6], tuple(fb)[:6]))


def _nesting(coarse, fine) -> tuple[int, int, int] | None:
    """``(k, row0, col0)`` when the fine grid is ``k x k`` subdivisions of a window of the coarse grid.

    Same CRS, axis-aligned, the coarse pixel ``k`` (>= 2) fine pixels on both axes, the fine grid's
    corner on a coarse pixel corner (``row0``, ``col0``: that corner's coarse pixel) and fine
    sides multiples of ``k``.
    """
    ca, fa = coarse.affine, fine.affine
    if not _same_crs(coarse, fine) or ca.b or ca.d or fa.b or fa.d:
        return None
    kx, ky = ca.a / fa.a, ca.e / fa.e
    k = round(kx)
    if k < 2 or abs(kx - k) > _TOL or abs(ky - k) > _TOL:
        return None
    col0, row0 = (fa.c - ca.c) / ca.a, (fa.f - ca.f) / ca.e
    if abs(col0 - round(col0)) * k > _TOL or abs(row0 - round(row0)) * k > _TOL:
        return None
    ny, nx = fine.shape
    if ny % k or nx % k:
        return None
    return k, round(row0), round(col0)


def _window(values: np.ndarray, row0: int, col0: int, ny: int, nx: int) -> np.ndarray:
    """``values[row0:row0 + ny, col0:col0 + nx]``, NaN where the window leaves the array."""
    out = np.full((ny, nx), np.nan, dtype=np.float32)
    h, w = values.shape
    r0, r1, c0, c1 = max(row0, 0), min(row0 + ny, h), max(col0, 0), min(col0 + nx, w)
    if r1 > r0 and c1 > c0:
        out[r0 - row0: r1 - row0, c0 - col0: c1 - col0] = values[r0:r1, c0:c1]
    return out


def _refine(grid, k: int):
    """The grid with pixels ``k`` times smaller over the same area."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    if k == 1:
        return grid
    ny, nx = grid.shape
    return GeoBox((ny * k, nx * k), grid.affine @ Affine.scale(1 / k), grid.crs)


def _with_coords(values: np.ndarray, grid, coarse: xr.DataArray, alignment: str) -> xr.DataArray:
    from odc.geo.xr import xr_coords

    coords = xr_coords(grid, dims=("y", "x")) if grid.crs is not None else _plain_coords(grid)
    attrs = {**coarse.attrs, "alignment": alignment}
    return xr.DataArray(values.astype(np.float32), dims=("y", "x"), coords=coords, name=coarse.name, attrs=attrs)


def align_coarse(coarse: xr.DataArray, fine) -> tuple[xr.DataArray, int]:
    """Put a coarse image in relation to the fine grid: as is, as a nested window, or reprojected.

    Parameters
    ----------
    coarse
        From :func:`read_single_band`.
    fine
        The fine grid: a DataArray from :func:`read_single_band` or a ``GeoBox``.

    Returns
    -------
    (xarray.DataArray, int)
        The coarse values and the factor to give :func:`unique_xr.downscale.fit` /
        :func:`~unique_xr.downscale.downscale`: 1 when they are on the fine grid, ``k`` when they
        are the ``(ny / k, nx / k)`` coarse pixels over it. ``attrs["alignment"]`` says which
        path was taken.

    Raises
    ------
    DownscaleInputError
        A grid without georeferencing whose shape neither equals nor nests in the other's.
    CRSError
        Neither same nor nested, and a CRS is missing, so the coarse image cannot be reprojected.
    AllFillError
        No valid coarse pixel over the fine grid (no overlap, or all nodata).

    Examples
    --------
    >>> from affine import Affine
    >>> from odc.geo.geobox import GeoBox
    >>> from odc.geo.xr import xr_coords
    >>> fine = GeoBox((4, 6), Affine(30, 0, 0, 0, -30, 120), "EPSG:32633")
    >>> modis = GeoBox((2, 3), Affine(60, 0, 0, 0, -60, 120), "EPSG:32633")
    >>> coarse = xr.DataArray(np.arange(6.0).reshape(2, 3), dims=("y", "x"), coords=xr_coords(modis, dims=("y", "x")))
    >>> aligned, k = align_coarse(coarse, fine)
    >>> k, aligned.attrs["alignment"]
    (2, 'nested: each coarse pixel is 2 x 2 fine pixels')
    >>> shifted = coarse.assign_coords(x=coarse.x + 15)  # off the fine pixel edges: reprojected
    >>> align_coarse(shifted, fine)[0].shape
    (4, 6)
    """
    cgrid, fgrid = grid_of(coarse), grid_of(fine)
    values = np.asarray(coarse.transpose("y", "x").values, dtype=np.float32)
    fy, fx = fgrid.shape
    if same_grid(cgrid, fgrid):
        out, k = _with_coords(values, fgrid, coarse, "same grid"), 1
    elif not (_georeferenced(cgrid) and _georeferenced(fgrid)) or (cgrid.crs is None) != (fgrid.crs is None):
        out, k = _align_by_shape(values, cgrid, fgrid, coarse, fine)
    elif (nest := _nesting(cgrid, fgrid)) is not None:
        k, row0, col0 = nest
        window = _window(values, row0, col0, fy // k, fx // k)
        out = _with_coords(window, _coarse_window_grid(fgrid, k), coarse,
                           f"nested: each coarse pixel is {k} x {k} fine pixels")
    elif cgrid.crs is None:
        raise CRSError(
            f"{_label(coarse)} ({describe_grid(cgrid)}) is neither on nor nested in the grid of {_label(fine)} "
            f"({describe_grid(fgrid)}), and without a CRS it cannot be reprojected. Give both files a CRS "
            "(gdal_edit.py -a_srs EPSG:...) or resample the coarse image onto the fine grid first."
        )
    else:
        out, k = _with_coords(_reproject(values, cgrid, fgrid), fgrid, coarse, "reprojected (bilinear)"), 1
    if not np.isfinite(out.values).any():
        raise AllFillError(
            f"{_label(coarse)} has no valid pixel over the fine grid of {_label(fine)} ({out.attrs['alignment']}): "
            f"the coarse grid is {describe_grid(cgrid)}, the fine grid {describe_grid(fgrid)}. Check that they cover "
            "the same area and that the coarse file's nodata value is right."
        )
    return out, k


def _coarse_window_grid(fine, k: int):
    from affine import Affine
    from odc.geo.geobox import GeoBox

    fy, fx = fine.shape
    return GeoBox((fy // k, fx // k), fine.affine @ Affine.scale(k), fine.crs)


def _align_by_shape(values, cgrid, fgrid, coarse, fine) -> tuple[xr.DataArray, int]:
    (cy, cx), (fy, fx) = cgrid.shape, fgrid.shape
    which = _label(coarse) if not _georeferenced(cgrid) or cgrid.crs is None else _label(fine)
    if (cy, cx) == (fy, fx):
        return _with_coords(values, fgrid, coarse, "same shape (no common georeferencing)"), 1
    if fy % cy == 0 and fx % cx == 0 and fy // cy == fx // cx and fy // cy > 1:
        k = fy // cy
        how = f"nested by shape: each coarse pixel is {k} x {k} fine pixels (no common georeferencing)"
        return _with_coords(values, _coarse_window_grid(fgrid, k), coarse, how), k
    raise DownscaleInputError(
        f"{which} has no usable georeferencing (CRS), so {_label(coarse)} ({cy} x {cx} px) is related to the fine "
        f"grid ({fy} x {fx} px) by shape alone, and its shape neither equals it nor divides it by a whole factor. "
        "Give the files a CRS and transform, or resample the coarse image onto the fine grid first."
    )


def _reproject(values: np.ndarray, src, dst) -> np.ndarray:
    """Bilinear reprojection of ``values`` on grid ``src`` onto grid ``dst``, NaN outside and over gaps.

    The same resampling the demo uses (:func:`unique_xr.downscale.regrid.coarse_onto_grid`): a fine
    pixel whose centre falls in a missing coarse pixel stays NaN, as on the nested path.
    """
    from odc.geo.xr import xr_coords

    from unique_xr.downscale.regrid import coarse_onto_grid

    da = xr.DataArray(values, dims=("y", "x"), coords=xr_coords(src, dims=("y", "x")))
    return np.asarray(coarse_onto_grid(da, dst).values, dtype=np.float32).reshape(dst.shape)


# ---------------------------------------------------------------------------------------------
# the fine grid of a prediction
# ---------------------------------------------------------------------------------------------
def grid_record(grid) -> dict[str, Any]:
    """A JSON-ready description of a grid (model cards): CRS, transform, shape, pixel size."""
    a = grid.affine
    crs = None
    if grid.crs is not None:
        crs = f"EPSG:{grid.crs.epsg}" if grid.crs.epsg else grid.crs.to_wkt()
    return {"crs": crs, "transform": [float(v) for v in tuple(a)[:6]], "shape": [int(s) for s in grid.shape],
            "resolution": [abs(float(a.a)), abs(float(a.e))]}


def grid_from_record(record: Mapping[str, Any]):
    """The ``GeoBox`` of a :func:`grid_record`."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    return GeoBox(tuple(record["shape"]), Affine(*record["transform"]), record.get("crs"))


def prediction_grid(coarse: xr.DataArray, *, factor: int | None = None, trained_factor: int = 1,
                    trained_grid: Mapping[str, Any] | None = None):
    """The fine grid to predict on when no auxiliary layer fixes it (scheme S1).

    In order: ``factor`` given -> the coarse grid refined by it; else, when the training fine grid
    is known (``trained_grid``, a :func:`grid_record`) and in the coarse image's CRS -> the coarse
    area at the training pixel size (refined by a whole factor when the sizes allow, otherwise a
    new grid the coarse image is reprojected onto); else the coarse grid refined by the training
    factor (``trained_factor``; 1 keeps the coarse grid).
    """
    from affine import Affine
    from odc.geo.geobox import GeoBox

    cgrid = grid_of(coarse)
    if factor is not None:
        if int(factor) != factor or factor < 1:
            raise DownscaleInputError(f"--factor must be a whole number >= 1; got {factor}.")
        return _refine(cgrid, int(factor))
    if trained_grid is not None:
        fine = grid_from_record(trained_grid)
        if fine.crs is not None and _same_crs(cgrid, fine) and not (cgrid.affine.b or cgrid.affine.d):
            ca = cgrid.affine
            rx, ry = (float(r) for r in trained_grid["resolution"])
            kx, ky = abs(ca.a) / rx, abs(ca.e) / ry
            k = round(kx)
            if k >= 1 and abs(kx - k) < 1e-6 and abs(ky - k) < 1e-6:
                return _refine(cgrid, k)
            ny = math.ceil(cgrid.shape[0] * abs(ca.e) / ry - 1e-6)
            nx = math.ceil(cgrid.shape[1] * abs(ca.a) / rx - 1e-6)
            return GeoBox((ny, nx), Affine(math.copysign(rx, ca.a), 0.0, ca.c, 0.0, math.copysign(ry, ca.e), ca.f),
                          cgrid.crs)
    return _refine(cgrid, int(trained_factor or 1))


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
def write_prediction(ds: xr.Dataset, path: str | Path, grid, *, tags: Mapping[str, Any] | None = None) -> Path:
    """Write the output of :func:`~unique_xr.downscale.downscale` as a float32 GeoTIFF on ``grid``.

    Band 1 is the ensemble mean; with more than one member, bands 2-4 are the spread (member
    standard deviation) and the lower and upper bounds of the 90 % prediction interval. Band
    descriptions are ``mean``, ``spread``, ``lower``, ``upper``; nodata is NaN. The file is written
    under a temporary name in the same folder and renamed into place.

    Parameters
    ----------
    ds
        ``<name>`` and, optionally, ``<name>_spread``, ``<name>_lower``, ``<name>_upper``, each ``(y, x)``.
    path
        The GeoTIFF to write (replaced if it exists).
    grid
        Its grid (``GeoBox``): shape, transform and CRS of the output.
    tags
        Dataset-level metadata tags (model token, scheme, ...).
    """
    import rasterio
    from rasterio.crs import CRS as RioCRS

    names = list(ds.data_vars)
    if not names:
        raise DownscaleInputError("Nothing to write: the prediction has no variables.")
    base = names[0]
    arrays = []
    for n in names:
        da = ds[n]
        if tuple(da.dims) != ("y", "x") or tuple(da.shape) != tuple(grid.shape):
            raise DownscaleInputError(
                f"{n} has dims {da.dims} and shape {da.shape}; the output grid is {grid.shape} (y, x)."
            )
        arrays.append(np.asarray(da.values, dtype=np.float32))
    descriptions = ["mean"] + [n[len(base) + 1:] if n.startswith(base + "_") else n for n in names[1:]]
    ny, nx = grid.shape
    profile: dict[str, Any] = dict(driver="GTiff", height=ny, width=nx, count=len(arrays), dtype="float32",
                                   nodata=float("nan"), transform=grid.affine, compress="deflate", predictor=3,
                                   BIGTIFF="IF_SAFER")
    if grid.crs is not None:
        profile["crs"] = RioCRS.from_wkt(grid.crs.to_wkt())
    if ny >= 256 and nx >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = private_tmp(path)
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            for i, (n, arr, desc) in enumerate(zip(names, arrays, descriptions), start=1):
                dst.write(arr, i)
                dst.set_band_description(i, desc)
                attrs = ds[n].attrs
                if attrs.get("units"):
                    dst.set_band_unit(i, str(attrs["units"]))
                if attrs.get("long_name"):
                    dst.update_tags(i, long_name=str(attrs["long_name"]))
            dst.update_tags(**{k: str(v) for k, v in {**ds.attrs, **(tags or {})}.items()})
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def common_grid(arrays: Sequence[xr.DataArray], what: str):
    """The one grid of rasters that must share it, or an error naming the first that does not.

    Two rasters share a grid when :func:`shares_grid` says so: the same grid, or the same shape where
    one has no CRS and no transform or the other's transform. The grid returned is that of the first
    raster with a CRS (else the first raster's).
    """
    if not arrays:
        raise DownscaleInputError(f"No {what} file given.")
    grids = [grid_of(da) for da in arrays]
    ref = next((i for i, g in enumerate(grids) if g.crs is not None), 0)
    for da, grid in zip(arrays, grids):
        if not shares_grid(grids[ref], grid):
            raise DownscaleInputError(
                f"The {what} files must share one grid: {_label(arrays[ref])} is {describe_grid(grids[ref])}, "
                f"{_label(da)} is {describe_grid(grid)}. Resample them onto one grid first."
            )
    return grids[ref]


def shares_grid(a, b) -> bool:
    """Whether grids ``a`` and ``b`` are one: :func:`same_grid`, or the same shape where one has no CRS
    and either no transform either (it is taken to lie on the other's grid) or the other's transform."""
    if same_grid(a, b):
        return True
    if tuple(a.shape) != tuple(b.shape) or (a.crs is not None and b.crs is not None):
        return False
    return not _georeferenced(a) or not _georeferenced(b) or _same_transform(a, b)
