"""The one explicit target grid every cube in unique_xr is put on.

A :class:`GridSpec` is a projected CRS, a square pixel size and bounds that hold a whole number
of pixels. Coordinates are pixel *centres*: ``x[i] = left + (i + 0.5) * resolution`` and
``y[j] = top - (j + 0.5) * resolution`` (north-up). Loaders (stackstac, odc-stac), static layers,
meteorology and the synthetic generator all take the same spec, so their outputs line up to the
pixel without any later resampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np

from unique_xr.errors import CRSError, GridError

__all__ = ["GridSpec", "pixel_lonlat"]

_TOL = 1e-6  # fraction of a pixel within which bounds count as whole pixels


def _canonical_crs(crs: Any) -> str:
    """Return a CRS as ``"EPSG:n"`` when it has an EPSG code, otherwise as WKT2."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError as PyprojCRSError

    try:
        parsed = CRS.from_user_input(crs)
    except PyprojCRSError as err:
        raise CRSError(
            f"Could not understand the CRS {crs!r}: {err}. "
            "Pass an EPSG code such as 'EPSG:32633' (UTM 33N) or a WKT/PROJ string."
        ) from err
    epsg = parsed.to_epsg(min_confidence=70)
    return f"EPSG:{epsg}" if epsg is not None else parsed.to_wkt()


#: The finest pixel a grid in metres may have; anything finer is taken for a size in degrees.
_MIN_METRES = 0.1


@dataclass(frozen=True, kw_only=True)
class GridSpec:
    """A north-up target grid: CRS, square resolution, and bounds in that CRS.

    Parameters
    ----------
    crs
        A projected CRS: ``"EPSG:32633"``, an int EPSG code, WKT or a PROJ string.
    resolution
        Pixel size in CRS units (metres for UTM), e.g. ``30.0`` or ``500.0``.
    bounds
        ``(left, bottom, right, top)`` in CRS units. Width and height must be whole multiples of
        ``resolution``; use :meth:`from_bbox` to snap arbitrary bounds outward.

    Examples
    --------
    >>> from unique_xr.grid import GridSpec
    >>> grid = GridSpec(crs="EPSG:32633", resolution=30.0, bounds=(500000, 4000000, 503000, 4001500))
    >>> grid.shape
    (50, 100)
    >>> float(grid.x[0]), float(grid.y[0])
    (500015.0, 4001485.0)
    """

    crs: str
    resolution: float
    bounds: tuple[float, float, float, float]
    _shape: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "crs", _canonical_crs(self.crs))
        from pyproj import CRS

        crs = CRS.from_user_input(self.crs)
        if crs.is_geographic:
            raise CRSError(
                f"The target grid needs a projected CRS (units of metres), got geographic {self.crs!r}. "
                "Use the UTM zone of your area, e.g. GridSpec.from_bbox(bbox, crs='utm', resolution=30)."
            )
        try:
            res = float(self.resolution)
        except (TypeError, ValueError) as err:
            raise GridError(f"resolution must be a number, got {self.resolution!r}") from err
        if not math.isfinite(res) or res <= 0:
            raise GridError(f"resolution must be a positive finite number of CRS units, got {self.resolution!r}")
        units = {axis.unit_name for axis in crs.axis_info}
        if res < _MIN_METRES and units <= {"metre", "meter"}:
            raise GridError(
                f"resolution {res} is in the units of {self.crs!r}, metres: a pixel of {res * 100:.3g} cm. That "
                f"looks like a pixel size in degrees ({res} degrees is about {res * 111_320:.0f} m). Give the "
                "resolution in metres, e.g. resolution=30 for Landsat or 500 for MODIS."
            )
        # canonical floats (nm for the pixel size, um for bounds) so that grids recovered from
        # coordinates compare equal and tokenize identically to the grid they came from
        res = round(res, 9)
        object.__setattr__(self, "resolution", res)
        if len(self.bounds) != 4:
            raise GridError(f"bounds must be (left, bottom, right, top), got {self.bounds!r}")
        left, bottom, right, top = (round(float(b), 6) for b in self.bounds)
        if not all(math.isfinite(b) for b in (left, bottom, right, top)):
            raise GridError(f"bounds must be finite, got {self.bounds!r}")
        if right <= left or top <= bottom:
            raise GridError(
                f"bounds must satisfy left < right and bottom < top, got {self.bounds!r} "
                "(order is left, bottom, right, top)"
            )
        width, height = (right - left) / res, (top - bottom) / res
        for name, n in (("width", width), ("height", height)):
            if abs(n - round(n)) > _TOL:
                raise GridError(
                    f"The grid {name} is {n:.6f} pixels of {res} — not a whole number. "
                    f"Snap the bounds to the resolution, e.g. GridSpec.from_bounds({self.bounds!r}, "
                    f"crs={self.crs!r}, resolution={res}) snaps outward."
                )
        ny, nx = int(round(height)), int(round(width))
        # right/bottom follow from left/top and the pixel count, so any grid rebuilt from its pixel
        # centres (GridSpec.from_xarray) has exactly the same bounds
        right, bottom = round(left + nx * res, 6), round(top - ny * res, 6)
        object.__setattr__(self, "bounds", (left, bottom, right, top))
        object.__setattr__(self, "_shape", (ny, nx))

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_bounds(
        cls,
        bounds: tuple[float, float, float, float],
        *,
        crs: Any,
        resolution: float,
        anchor: Literal["edge", "center"] = "edge",
    ) -> GridSpec:
        """Snap ``bounds`` outward to the resolution and build a grid.

        ``anchor="edge"`` puts pixel *edges* on multiples of ``resolution`` (odc-geo's default);
        ``anchor="center"`` puts pixel *centres* there, as the Landsat Collection 2 grids do
        (edges at 15 m offsets for 30 m pixels), so a Landsat scene loads without resampling.
        """
        if anchor not in ("edge", "center"):
            raise GridError(f"anchor must be 'edge' or 'center', got {anchor!r}")
        res = float(resolution)
        shift = res / 2 if anchor == "center" else 0.0
        left, bottom, right, top = (b + shift for b in bounds)
        snapped = (
            math.floor(left / res + _TOL) * res - shift,
            math.floor(bottom / res + _TOL) * res - shift,
            math.ceil(right / res - _TOL) * res - shift,
            math.ceil(top / res - _TOL) * res - shift,
        )
        return cls(crs=crs, resolution=res, bounds=snapped)

    @classmethod
    def from_bbox(
        cls,
        bbox: tuple[float, float, float, float],
        *,
        crs: Any = "utm",
        resolution: float,
        anchor: Literal["edge", "center"] = "edge",
    ) -> GridSpec:
        """Build a grid covering a longitude/latitude ``bbox`` (west, south, east, north).

        ``crs="utm"`` picks the WGS84 UTM zone of the bbox centre.
        """
        from pyproj import CRS, Transformer

        west, south, east, north = bbox
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            raise CRSError(
                f"bbox must be (west, south, east, north) in degrees with west < east and south < north, got {bbox!r}"
            )
        if isinstance(crs, str) and crs.lower() == "utm":
            lon, lat = (west + east) / 2, (south + north) / 2
            zone = int((lon + 180) // 6) + 1
            crs = f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"
        target = CRS.from_user_input(crs)
        tr = Transformer.from_crs("EPSG:4326", target, always_xy=True)
        xs, ys = tr.transform(
            np.array([west, east, east, west, (west + east) / 2, (west + east) / 2]),
            np.array([south, south, north, north, south, north]),
        )
        return cls.from_bounds((xs.min(), ys.min(), xs.max(), ys.max()), crs=crs, resolution=resolution, anchor=anchor)

    # ----------------------------------------------------------------- derived
    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)``."""
        return self._shape

    @property
    def epsg(self) -> int | None:
        """The EPSG code, or None for a CRS without one (stackstac needs one)."""
        return int(self.crs.split(":")[1]) if self.crs.startswith("EPSG:") else None

    @property
    def transform(self):
        """The affine transform of the top-left pixel corner (``affine.Affine``)."""
        from affine import Affine

        left, _, _, top = self.bounds
        return Affine(self.resolution, 0.0, left, 0.0, -self.resolution, top)

    @cached_property
    def x(self) -> np.ndarray:
        """Pixel-centre x coordinates, increasing."""
        left = self.bounds[0]
        return left + (np.arange(self.shape[1]) + 0.5) * self.resolution

    @cached_property
    def y(self) -> np.ndarray:
        """Pixel-centre y coordinates, decreasing (north-up)."""
        top = self.bounds[3]
        return top - (np.arange(self.shape[0]) + 0.5) * self.resolution

    @property
    def bounds_latlon(self) -> tuple[float, float, float, float]:
        """``(west, south, east, north)`` in degrees, densified so the box covers the grid."""
        from pyproj import Transformer

        left, bottom, right, top = self.bounds
        n = 21
        xs = np.concatenate([np.linspace(left, right, n), np.full(n, right), np.linspace(right, left, n), np.full(n, left)])
        ys = np.concatenate([np.full(n, bottom), np.linspace(bottom, top, n), np.full(n, top), np.linspace(top, bottom, n)])
        lon, lat = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True).transform(xs, ys)
        return (float(np.min(lon)), float(np.min(lat)), float(np.max(lon)), float(np.max(lat)))

    def to_geobox(self):
        """The same grid as an ``odc.geo.geobox.GeoBox`` (for odc-stac and odc-geo)."""
        from odc.geo.geobox import GeoBox

        return GeoBox(self.shape, self.transform, self.crs)

    def coords(self) -> dict[str, Any]:
        """``{"y": ..., "x": ...}`` as xarray coordinate variables with CF attributes."""
        import xarray as xr

        units = "m"
        return {
            "y": xr.Variable("y", self.y, {"standard_name": "projection_y_coordinate", "units": units, "axis": "Y"}),
            "x": xr.Variable("x", self.x, {"standard_name": "projection_x_coordinate", "units": units, "axis": "X"}),
        }

    def spatial_ref(self):
        """The CF grid-mapping variable (``spatial_ref``, as rioxarray names it) for this CRS."""
        import xarray as xr
        from pyproj import CRS

        attrs = CRS.from_user_input(self.crs).to_cf()
        attrs["spatial_ref"] = attrs.get("crs_wkt", "")
        attrs["GeoTransform"] = " ".join(str(v) for v in self.transform.to_gdal())
        return xr.Variable((), np.int32(0), attrs)

    def attach(self, obj):
        """Give an xarray object with ``(..., y, x)`` dims this grid's coordinates and CF grid mapping.

        Sets ``x``/``y`` (pixel centres), a scalar ``spatial_ref`` coordinate, and
        ``grid_mapping="spatial_ref"`` on every variable with ``y`` and ``x`` dims.
        """
        import xarray as xr

        ny, nx = self.shape
        if obj.sizes.get("y") != ny or obj.sizes.get("x") != nx:
            raise GridError(
                f"Cannot attach a {ny}x{nx} grid to an object of sizes {dict(obj.sizes)}; "
                "its y/x sizes must equal the grid shape."
            )
        out = obj.assign_coords(**self.coords(), spatial_ref=self.spatial_ref())
        if isinstance(out, xr.Dataset):
            for name in out.data_vars:
                if {"y", "x"} <= set(out[name].dims):
                    out[name].attrs["grid_mapping"] = "spatial_ref"
        elif {"y", "x"} <= set(out.dims):
            out.attrs["grid_mapping"] = "spatial_ref"
        return out

    @classmethod
    def from_xarray(cls, obj) -> GridSpec:
        """Recover the grid of an object made by :meth:`attach` (pixel-centre ``x``/``y`` + ``spatial_ref``)."""
        if "spatial_ref" not in obj.coords or "x" not in obj.coords or "y" not in obj.coords:
            raise GridError("Object has no x/y/spatial_ref coordinates; was it made by unique_xr?")
        attrs = obj.coords["spatial_ref"].attrs
        crs = attrs.get("crs_wkt") or attrs.get("spatial_ref")
        x, y = np.asarray(obj.x), np.asarray(obj.y)
        if x.size < 2 or y.size < 2:
            raise GridError("Need at least 2 pixels along x and y to recover a grid.")
        res = float(x[-1] - x[0]) / (x.size - 1)
        dy = float(y[0] - y[-1]) / (y.size - 1)
        if not np.isclose(dy, res):
            raise GridError(f"Pixels are not square or y is not decreasing: dx={res}, dy={dy}")
        bounds = (x[0] - res / 2, y[-1] - res / 2, x[-1] + res / 2, y[0] + res / 2)
        return cls(crs=crs, resolution=res, bounds=tuple(float(b) for b in bounds))

    def coarsen_factor(self, other: GridSpec) -> int:
        """Integer factor by which ``other`` is coarser than this grid, checking they nest exactly.

        Nesting means: same CRS, ``other.resolution`` a whole multiple of this one, and every coarse
        pixel edge on a fine pixel edge (so each coarse cell is exactly ``k x k`` fine cells).
        """
        ratio = other.resolution / self.resolution
        if other.crs != self.crs or ratio < 1 or abs(ratio - round(ratio)) > _TOL:
            raise GridError(
                f"Grid of {other.resolution} {other.crs} does not nest in {self.resolution} {self.crs}: "
                "the coarse resolution must be a whole multiple of the fine one, in the same CRS."
            )
        for mine, theirs in zip(self.bounds, other.bounds):
            offset = (theirs - mine) / self.resolution
            if abs(offset - round(offset)) > _TOL:
                raise GridError(
                    f"Grid bounds {other.bounds} are not on pixel edges of {self.bounds} at {self.resolution}: "
                    "the coarse cells would straddle fine pixels. Snap the coarse bounds to the fine grid."
                )
        return int(round(ratio))

    def nested(self, factor: int, *, anchor: float = 0.0) -> tuple[GridSpec, GridSpec]:
        """``(fine, coarse)``: this grid's area snapped outward onto a lattice of ``factor x factor`` cells.

        See :meth:`nested_from_bounds`.

        >>> fine, coarse = GridSpec(crs="EPSG:32633", resolution=30.0, bounds=(15, 15, 1005, 495)).nested(16, anchor=15)
        >>> fine.shape, coarse.shape, coarse.resolution, fine.coarsen_factor(coarse)
        ((16, 48), (1, 3), 480.0, 16)
        """
        return GridSpec.nested_from_bounds(self.bounds, crs=self.crs, resolution=self.resolution, factor=factor,
                                           anchor=anchor)

    @classmethod
    def nested_from_bounds(cls, bounds: tuple[float, float, float, float], *, crs: Any, resolution: float,
                           factor: int, anchor: float = 0.0) -> tuple[GridSpec, GridSpec]:
        """``(fine, coarse)`` grids covering ``bounds``, snapped outward onto a lattice of ``factor x factor`` cells.

        The coarse grid has pixels ``factor`` times larger with edges at ``anchor + k * factor *
        resolution``; the fine grid has ``resolution`` and the coarse grid's bounds, so every coarse
        cell is exactly ``factor x factor`` fine pixels (:meth:`coarsen_factor` holds). ``anchor=15``
        with 30 m pixels keeps the Landsat Collection 2 pixel edges.

        >>> fine, coarse = GridSpec.nested_from_bounds((500, 500, 1400, 900), crs="EPSG:32633", resolution=30.0,
        ...                                            factor=16, anchor=15)
        >>> fine.bounds, coarse.shape
        ((495.0, 495.0, 1455.0, 975.0), (1, 2))
        """
        if int(factor) != factor or factor < 1:
            raise GridError(f"nesting factor must be a positive integer, got {factor!r}")
        size = float(resolution) * int(factor)
        left, bottom, right, top = (float(b) - anchor for b in bounds)
        snapped = (math.floor(left / size + _TOL) * size + anchor, math.floor(bottom / size + _TOL) * size + anchor,
                   math.ceil(right / size - _TOL) * size + anchor, math.ceil(top / size - _TOL) * size + anchor)
        coarse = cls(crs=crs, resolution=size, bounds=snapped)
        return cls(crs=coarse.crs, resolution=float(resolution), bounds=coarse.bounds), coarse

    def window(self, rows: tuple[int, int], cols: tuple[int, int]) -> GridSpec:
        """The sub-grid of pixel rows ``rows[0]:rows[1]`` and columns ``cols[0]:cols[1]`` (same lattice).

        >>> GridSpec(crs="EPSG:32633", resolution=30.0, bounds=(0, 0, 300, 300)).window((2, 4), (0, 5)).bounds
        (0.0, 180.0, 150.0, 240.0)
        """
        ny, nx = self.shape
        if not (0 <= rows[0] < rows[1] <= ny and 0 <= cols[0] < cols[1] <= nx):
            raise GridError(f"window rows {rows} / cols {cols} are not inside the grid of {ny} x {nx} pixels")
        left, _, _, top = self.bounds
        r = self.resolution
        return GridSpec(crs=self.crs, resolution=r,
                        bounds=(left + cols[0] * r, top - rows[1] * r, left + cols[1] * r, top - rows[0] * r))

    def refine(self, factor: int) -> GridSpec:
        """The same bounds with pixels ``factor`` times smaller; nests exactly in this grid."""
        if int(factor) != factor or factor < 1:
            raise GridError(f"refine factor must be a positive integer, got {factor!r}")
        return GridSpec(crs=self.crs, resolution=self.resolution / int(factor), bounds=self.bounds)

    def with_resolution(self, resolution: float) -> GridSpec:
        """The same area at another resolution, bounds snapped outward."""
        return GridSpec.from_bounds(self.bounds, crs=self.crs, resolution=resolution)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (goes into provenance attributes)."""
        return {"crs": self.crs, "resolution": self.resolution, "bounds": list(self.bounds)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GridSpec:
        return cls(crs=d["crs"], resolution=d["resolution"], bounds=tuple(d["bounds"]))

    def __dask_tokenize__(self):
        return ("unique_xr.GridSpec", self.crs, self.resolution, self.bounds)


def pixel_lonlat(y: np.ndarray, x: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (degrees) of the pixel centres ``(y, x)`` of a grid in ``crs``, each ``(y, x)``.

    A new pyproj Transformer per call: transformers are not shared across threads, and Dask block
    kernels call this from several at once.
    """
    from pyproj import Transformer

    xx, yy = np.meshgrid(x, y)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xx, yy)
    return np.asarray(lon, dtype="float64"), np.asarray(lat, dtype="float64")
