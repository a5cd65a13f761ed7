"""Test and benchmark helpers.

- :func:`raise_if_dask_computes`: fail whenever a supposedly lazy operation computes.
- :mod:`unique_xr.testing.synthetic`: the seeded synthetic region generator
  (:class:`SyntheticRegionSpec`, :func:`make_region`) — COGs and STAC items shaped like the real ones.
- :mod:`unique_xr.testing.recorded`: real recorded Planetary Computer items, localized to small COGs.
- :mod:`unique_xr.testing.stac_server`: a real STAC API (``rustac serve``) on loopback.

The generator and the server are imported on first use, so ``import unique_xr.testing`` is cheap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from unique_xr._lazy import lazy_attributes

__all__ = [
    "synthetic_forest_cube",
    "raise_if_dask_computes",
    "CountingScheduler",
    "SyntheticRegionSpec",
    "SyntheticRegion",
    "make_region",
    "synthetic_inputs",
    "serve_stac",
    "recorded_items",
    "localize_items",
]

_LAZY = {
    "SyntheticRegionSpec": "unique_xr.testing.synthetic",
    "SyntheticRegion": "unique_xr.testing.synthetic",
    "make_region": "unique_xr.testing.synthetic",
    "synthetic_inputs": "unique_xr.testing.cube",
    "synthetic_forest_cube": "unique_xr.testing.forest",
    "serve_stac": "unique_xr.testing.stac_server",
    "recorded_items": "unique_xr.testing.recorded",
    "localize_items": "unique_xr.testing.recorded",
}


__getattr__ = lazy_attributes(__name__, _LAZY)[0]


class CountingScheduler:
    """A Dask scheduler that counts ``compute`` calls and raises past ``max_computes``."""

    def __init__(self, max_computes: int = 0) -> None:
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        import dask

        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(
                f"Too many dask computations were scheduled: {self.total_computes} > {self.max_computes}. "
                "Something that should stay lazy computed."
            )
        return dask.get(dsk, keys, **kwargs)


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0) -> Iterator[CountingScheduler]:
    """Context manager: raise RuntimeError if Dask computes more than ``max_computes`` times inside it.

    Examples
    --------
    >>> import dask.array as da
    >>> from unique_xr.testing import raise_if_dask_computes
    >>> with raise_if_dask_computes():
    ...     y = da.ones(4, chunks=2) + 1   # building a graph computes nothing
    """
    import dask

    scheduler = CountingScheduler(max_computes)
    with dask.config.set(scheduler=scheduler):
        yield scheduler
