"""Test and benchmark helpers: a seeded synthetic region generator, a loopback STAC API, and
:func:`raise_if_dask_computes`, which fails whenever a supposedly lazy operation computes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["raise_if_dask_computes", "CountingScheduler"]


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
