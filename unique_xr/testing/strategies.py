"""Hypothesis strategies for unique_xr objects (needs the ``hypothesis`` package, in the ``dev`` extra).

Examples
--------
>>> from hypothesis import given
>>> from unique_xr.testing.strategies import grids
>>> @given(grids())
... def test_whole_pixels(grid):
...     assert grid.shape[0] >= 1 and grid.shape[1] >= 1
>>> test_whole_pixels()
"""

from __future__ import annotations

from unique_xr._optional import import_optional
from unique_xr.grid import GridSpec

st = import_optional("hypothesis.strategies", purpose="property-based test strategies")

#: UTM zones north and south, plus one CRS without an EPSG code (MODIS sinusoidal sphere).
CRSES = ("EPSG:32633", "EPSG:32723", "EPSG:32652", "EPSG:3035",
         "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs")
RESOLUTIONS = (10.0, 30.0, 250.0, 463.3127165275, 500.0)


@st.composite
def grids(draw, *, crs=st.sampled_from(CRSES), resolution=st.sampled_from(RESOLUTIONS), max_pixels: int = 64):
    """A valid :class:`~unique_xr.grid.GridSpec`: some CRS, resolution, origin and 1..``max_pixels`` pixels a side."""
    res = draw(resolution)
    ny = draw(st.integers(1, max_pixels))
    nx = draw(st.integers(1, max_pixels))
    left = draw(st.integers(-2000, 2000)) * res
    bottom = draw(st.integers(-2000, 2000)) * res + draw(st.sampled_from((0.0, res / 2)))
    return GridSpec(crs=draw(crs), resolution=res, bounds=(left, bottom, left + nx * res, bottom + ny * res))


@st.composite
def bounds_within(draw, grid: GridSpec):
    """Arbitrary (unsnapped) ``(left, bottom, right, top)`` inside ``grid``'s bounds."""
    left, bottom, right, top = grid.bounds
    x0, x1 = sorted(draw(st.floats(left, right, allow_nan=False)) for _ in range(2))
    y0, y1 = sorted(draw(st.floats(bottom, top, allow_nan=False)) for _ in range(2))
    if x1 - x0 < 1e-3 or y1 - y0 < 1e-3:
        x1, y1 = x0 + 1.0, y0 + 1.0
    return (x0, y0, x1, y1)
