"""Tiled prediction as one blockwise layer: ``(time, y, x)`` blocks, each with the halo its tiles read.

:func:`downscale_window` predicts a box of the fine grid from windows of the coarse field and the
auxiliaries that cover the box plus a halo. Tiles lie on one lattice over the whole region
(:class:`~unique_xr.downscale.tiling.TilePlan` of the region's shape), and each block's kernel
(:func:`~unique_xr.downscale.api.predict_block`) computes the tiles that touch it, so the values do
not depend on how the region is cut into boxes or blocks: a work unit of a national job and the
whole region give the same numbers. The graph is one ``overlap`` per input and one ``blockwise``
layer, whatever the number of days and blocks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from unique_xr.downscale.tiling import TilePlan

__all__ = ["block_edges", "downscale_window", "halo"]


def halo(tile: int, factor: int) -> int:
    """Fine pixels a block's kernel reads beyond its box on each side: tile reach plus a coarse cell, whole coarse cells.

    >>> halo(32, 16)
    64
    """
    reach = tile + 2 * max(factor, 1)
    return int(math.ceil(reach / max(factor, 1)) * max(factor, 1))


def block_edges(lo: int, hi: int, chunk: int, minimum: int) -> list[int]:
    """Edges of the blocks of ``[lo, hi)``: on multiples of ``chunk``, a last block under ``minimum`` merged.

    >>> block_edges(0, 300, 128, 64)
    [0, 128, 300]
    >>> block_edges(128, 512, 128, 64)
    [128, 256, 384, 512]
    """
    edges = [lo] + [e for e in range((lo // chunk + 1) * chunk, hi, chunk)] + [hi]
    while len(edges) > 2 and edges[-1] - edges[-2] < minimum:
        del edges[-2]
    while len(edges) > 2 and edges[1] - edges[0] < minimum:
        del edges[1]
    return edges


def _rechunk_axis(edges: Sequence[int], start: int, scale: int = 1) -> tuple[int, ...]:
    return tuple((b - a) // scale for a, b in zip([start, *edges[1:-1]], edges[1:]))


def downscale_window(
    coarse,
    aux: Sequence[Any],
    handle,
    *,
    plan: TilePlan,
    factor: int,
    coarse_shape: tuple[int, int],
    window: tuple[int, int, int, int],
    box: tuple[int, int, int, int],
    chunk: tuple[int, int],
    n_stats: int,
    resources: dict[str, Any] | None = None,
    doys: Sequence[float] | None = None,
    prior: Sequence[Any] | None = None,
    **kernel_kw: Any,
):
    """Lazy ``(S, time, y, x)`` statistics of the members over ``box`` (global fine pixel rows/cols).

    Parameters
    ----------
    coarse
        Dask array ``(time, cy, cx)``: the coarse field over ``window`` (coarse rows ``window[0] //
        factor`` ... on a nested grid; with ``factor == 1`` the same pixels as the fine window).
    aux
        Dask arrays ``(y, x)`` over ``window`` on the fine grid.
    handle
        A :class:`~unique_xr.downscale.api.DownscalerHandle`; it becomes one key of the graph.
    plan, factor, coarse_shape
        The tile lattice and coarse shape of the whole region, and the nesting factor.
    window, box
        ``(y0, y1, x0, x1)`` global fine pixels: what the inputs cover, and what to predict. The window
        must reach :func:`halo` pixels beyond the box wherever the region goes on.
    chunk
        Output block side ``(y, x)``; blocks lie on multiples of it (a last block narrower than the
        halo joins its neighbour).
    n_stats
        1 (mean) for one member, else 4 (mean, spread, lower, upper).
    resources
        Dask annotation of the prediction tasks, e.g. ``{"GPU": 1}``.
    doys, prior
        Scheme S3: the day of year of each time step, and Dask arrays ``(time, y, x)`` over
        ``window`` on the fine grid: the prior's ``[fine, age, coarse or None]`` (None: no prior).
    kernel_kw
        Passed to :func:`~unique_xr.downscale.api.predict_block` (members, steps, seed, ...).
    """
    import dask
    import dask.array as dsa
    from dask.array.overlap import overlap
    from dask.base import tokenize

    k = max(int(factor), 1)
    depth = halo(plan.tile, k)
    (wy0, wy1, wx0, wx1), (by0, by1, bx0, bx1) = window, box
    ey = block_edges(by0, by1, chunk[0], depth)
    ex = block_edges(bx0, bx1, chunk[1], depth)
    ny, nx = len(ey) - 1, len(ex) - 1
    # input blocks: the output blocks, the first and last widened to the window's ends
    cy, cx = _rechunk_axis(ey, wy0, k), _rechunk_axis(ex, wx0, k)
    fy, fx = _rechunk_axis(ey, wy0), _rechunk_axis(ex, wx0)
    cy = cy[:-1] + (coarse.shape[1] - sum(cy[:-1]),)
    cx = cx[:-1] + (coarse.shape[2] - sum(cx[:-1]),)
    fy = fy[:-1] + (wy1 - wy0 - sum(fy[:-1]),)
    fx = fx[:-1] + (wx1 - wx0 - sum(fx[:-1]),)
    coarse = coarse.rechunk((coarse.chunks[0], cy, cx))
    aux = [a.rechunk((fy, fx)) for a in aux]
    has_prior = prior is not None and prior[0] is not None
    timed = [p.rechunk((coarse.chunks[0], fy, fx)) for p in prior if p is not None] if has_prior else []
    dc, df = depth // k, depth
    if ny > 1 or nx > 1:
        coarse = overlap(coarse, depth={0: 0, 1: dc if ny > 1 else 0, 2: dc if nx > 1 else 0},
                         boundary="none", allow_rechunk=False)
        aux = [overlap(a, depth={0: df if ny > 1 else 0, 1: df if nx > 1 else 0}, boundary="none",
                       allow_rechunk=False) for a in aux]
        timed = [overlap(p, depth={0: 0, 1: df if ny > 1 else 0, 2: df if nx > 1 else 0}, boundary="none",
                         allow_rechunk=False) for p in timed]
    # per block: (global first fine row of its input window, output box) along each axis
    rows = [(wy0 if i == 0 else ey[i] - df, ey[i], ey[i + 1]) for i in range(ny)]
    cols = [(wx0 if j == 0 else ex[j] - df, ex[j], ex[j + 1]) for j in range(nx)]
    yi = dsa.from_array(np.arange(ny), chunks=1)
    xi = dsa.from_array(np.arange(nx), chunks=1)
    handle_d = dask.delayed(handle, name=f"downscaler-{handle.token}", pure=True)
    args: list[Any] = [coarse, "tyx", yi, "y", xi, "x"]
    for a in aux:
        args += [a, "yx"]
    for p in timed:
        args += [p, "tyx"]
    if doys is not None:
        args += [dsa.from_array(np.asarray(doys, dtype=np.float64), chunks=(coarse.chunks[0],)), "t"]
    name = "predict_block-" + tokenize(args, handle.token, rows, cols, plan, k, coarse_shape, kernel_kw)
    with dask.annotate(**({"resources": resources} if resources else {})):
        return dsa.blockwise(
            _kernel, "styx", *args, handle_d, None, name=name,
            new_axes={"s": n_stats}, adjust_chunks={"y": tuple(e[2] - e[1] for e in rows),
                                                    "x": tuple(e[2] - e[1] for e in cols)},
            align_arrays=False, concatenate=True, dtype=np.float32, meta=np.empty((0, 0, 0, 0), np.float32),
            rows=rows, cols=cols, plan=plan, factor=k, coarse_shape=coarse_shape, n_aux=len(aux),
            n_prior=len(timed), prior_coarse=has_prior and len(timed) == 3, with_doy=doys is not None,
            kernel_kw=kernel_kw,
        )


def _kernel(coarse, yi, xi, *rest, rows, cols, plan, factor, coarse_shape, n_aux, n_prior, prior_coarse, with_doy,
            kernel_kw):
    """One block: :func:`~unique_xr.downscale.api.predict_block` for each of its days -> ``(S, t, y, x)``."""
    from unique_xr.downscale.api import predict_block

    aux, rest = list(rest[:n_aux]), rest[n_aux:]
    prior, rest = list(rest[:n_prior]), rest[n_prior:]
    doys, rest = (rest[0], rest[1:]) if with_doy else (None, rest)
    handle = rest[0]
    (r0, y0, y1), (c0, x0, x1) = rows[int(yi[0])], cols[int(xi[0])]
    origin = (r0 // factor, c0 // factor) if factor > 1 else (r0, c0)
    days = []
    for t in range(coarse.shape[0]):
        day_prior = None
        if prior:
            day_prior = [prior[0][t], prior[1][t], prior[2][t] if prior_coarse else None]
        days.append(predict_block(handle, coarse[t], origin, coarse_shape, aux, (r0, c0), (y0, y1, x0, x1), plan,
                                  factor=factor, prior=day_prior, doy=None if doys is None else float(doys[t]),
                                  **kernel_kw))
    return np.stack(days, axis=1)
