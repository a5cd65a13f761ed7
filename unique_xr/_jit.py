"""Compiled kernels: one place for how numba is used.

Every compiled kernel of the package is made with :func:`jit` (scalar helpers and loops) or
:func:`ufunc` (element-wise numpy functions from a scalar formula). ``jit`` compiles on first use,
``ufunc`` when made (for float32 and float64); both cache
the machine code on disk (``__pycache__`` next to the module, else numba's user cache), and release
the GIL, so Dask's threads run them in parallel. Kernels take and return numpy arrays only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba

__all__ = ["jit", "ufunc"]


def jit(func: Callable[..., Any] | None = None, **options: Any):
    """``numba.njit`` with the package's options (cached, no GIL); usable bare or with options."""
    opts = {"cache": True, "nogil": True, **options}
    if func is None:
        return lambda f: numba.njit(**opts)(f)
    return numba.njit(**opts)(func)


def ufunc(func: Callable[..., Any], nargs: int):
    """An element-wise numpy ufunc compiled from the scalar ``func`` of ``nargs`` arguments, for float32
    and float64 (compiled, or loaded from the cache, when made: a ufunc compiled lazily on its first call
    warns when two Dask threads make that first call at once)."""
    return numba.vectorize([f"{t}({', '.join([t] * nargs)})" for t in ("float32", "float64")], cache=True)(func)
