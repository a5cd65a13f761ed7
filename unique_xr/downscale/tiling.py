r"""Overlapping tiles on one global lattice, blended back without seams (numpy only).

A field of ``H x W`` fine pixels is padded at its bottom and right edges (by reflection) to
sides that are multiples of the network's stride and at least one tile, and covered by square
tiles whose origins lie on a lattice of step ``tile - overlap`` plus one last tile flush with
the padded edge, so every pixel, edges included, is covered. Each tile's prediction is weighted
by a window that rises as :math:`\sin^2` over ``overlap`` pixels on the sides it shares with a
neighbour (flat on sides at the field's edge); where two tiles overlap by exactly ``overlap``
the two windows sum to one, and elsewhere the weighted sum is divided by the summed weights.

Because the lattice is global, the value at a pixel is the blend of the same tiles whichever
part of the field is being computed: a Dask chunk computes the tiles that touch it (reading the
inputs they need around it) and gets exactly the values an unchunked run gives. The diffusion
noise is a function of (seed, member, draw, global row, global column) too (:func:`position_noise`),
so overlapping tiles start from the same noise where they overlap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True, kw_only=True)
class TilePlan:
    """Tile layout of a ``shape`` field: padded shape and tile origins along y and x."""

    shape: tuple[int, int]
    padded: tuple[int, int]
    tile: int
    overlap: int
    starts_y: tuple[int, ...]
    starts_x: tuple[int, ...]

    @classmethod
    def make(cls, shape: tuple[int, int], *, tile: int, overlap: int, stride: int = 1) -> TilePlan:
        if tile % stride or overlap % stride:
            raise ValueError(f"tile ({tile}) and overlap ({overlap}) must be multiples of the network stride {stride}.")
        if not 0 <= overlap < tile:
            raise ValueError(f"overlap ({overlap}) must be >= 0 and smaller than tile ({tile}).")
        padded = tuple(max(tile, -(-n // stride) * stride) for n in shape)
        return cls(shape=tuple(shape), padded=padded, tile=tile, overlap=overlap,
                   starts_y=_starts(padded[0], tile, tile - overlap), starts_x=_starts(padded[1], tile, tile - overlap))

    @property
    def n_tiles(self) -> int:
        return len(self.starts_y) * len(self.starts_x)

    def touching(self, lo: int, hi: int, axis: int) -> list[int]:
        """Origins of the tiles along ``axis`` that overlap ``[lo, hi)``."""
        starts = self.starts_y if axis == 0 else self.starts_x
        return [s for s in starts if s < hi and s + self.tile > lo]

    def window(self, lo: int, hi: int, axis: int) -> tuple[int, int]:
        """Padded-grid range of input the tiles touching ``[lo, hi)`` need."""
        starts = self.touching(lo, hi, axis)
        return starts[0], starts[-1] + self.tile

    def weight(self, start: int, axis: int) -> np.ndarray:
        """1-D blending window of the tile at ``start`` along ``axis``."""
        n = self.padded[axis]
        w = np.ones(self.tile)
        if self.overlap:
            ramp = np.sin(0.5 * np.pi * (np.arange(self.overlap) + 0.5) / self.overlap) ** 2
            if start > 0:
                w[: self.overlap] = ramp
            if start + self.tile < n:
                w[-self.overlap:] = ramp[::-1]
        return w


def _starts(n: int, tile: int, step: int) -> tuple[int, ...]:
    starts = list(range(0, n - tile + 1, step))
    if starts[-1] != n - tile:
        starts.append(n - tile)
    return tuple(starts)


def reflect_index(index: np.ndarray, n: int) -> np.ndarray:
    """Map padded-grid indices ``>= n`` back into ``[0, n)`` by reflection about the last pixel.

    Examples
    --------
    >>> reflect_index(np.arange(6), 4)
    array([0, 1, 2, 3, 2, 1])
    """
    index = np.asarray(index)
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    i = np.mod(index, period)
    return np.where(i < n, i, period - i)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a well-mixed 64-bit hash of each element."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def position_noise(seed: int, member: int, draw: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Standard-normal noise that depends only on its arguments and each pixel's global position.

    Two calls that share pixels return the same values there, whatever the window.

    Examples
    --------
    >>> a = position_noise(0, 0, 0, np.arange(4), np.arange(4))
    >>> b = position_noise(0, 0, 0, np.arange(2, 6), np.arange(4))
    >>> bool(np.array_equal(a[2:], b[:2]))
    True
    """
    with np.errstate(over="ignore"):
        key = _mix(np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(member) * np.uint64(0xD1B54A32D192ED03)
                   + np.uint64(draw) * np.uint64(0x8CB92BA72F3D8DD7) + np.uint64(1))
        r = np.asarray(rows, dtype=np.uint64)[:, None]
        c = np.asarray(cols, dtype=np.uint64)[None, :]
        base = _mix(key ^ (r * np.uint64(0x100000001B3) + c * np.uint64(0xC2B2AE3D27D4EB4F)))
        h2 = _mix(base + np.uint64(0x9E3779B97F4A7C15))
    u1 = ((base >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    u2 = (h2 >> np.uint64(11)).astype(np.float64) / 2.0**53
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)


#: ``sample(cond, noise) -> residuals``: cond ``(B, C, T, T)``; ``noise(k)`` gives ``(B, 1, T, T)``.
SampleFn = Callable[[np.ndarray, Callable[[int], np.ndarray]], np.ndarray]


def predict_region(
    sample: SampleFn,
    cond: np.ndarray,
    origin: tuple[int, int],
    box: tuple[int, int, int, int],
    plan: TilePlan,
    *,
    members: int = 1,
    seed: int = 0,
    batch_size: int = 8,
) -> np.ndarray:
    """Blend the lattice tiles touching ``box`` into ``(members, y1 - y0, x1 - x0)``.

    Parameters
    ----------
    sample
        Draws residual samples for a batch of conditioning tiles (see :data:`SampleFn`).
    cond
        Conditioning ``(C, h, w)`` on the padded grid, covering at least the tiles' window;
        ``origin`` is its top-left corner in padded-grid pixels.
    box
        ``(y0, y1, x0, x1)`` of the output, in global pixels.
    """
    y0, y1, x0, x1 = box
    jobs = [(sy, sx, m) for sy in plan.touching(y0, y1, 0) for sx in plan.touching(x0, x1, 1) for m in range(members)]
    acc = np.zeros((members, y1 - y0, x1 - x0))
    wsum = np.zeros((y1 - y0, x1 - x0))
    t = plan.tile
    for i in range(0, len(jobs), batch_size):
        part = jobs[i: i + batch_size]
        batch = np.stack([cond[:, sy - origin[0]: sy - origin[0] + t, sx - origin[1]: sx - origin[1] + t]
                          for sy, sx, _ in part])

        def noise(k, part=part):
            return np.stack([position_noise(seed, m, k, np.arange(sy, sy + t), np.arange(sx, sx + t))[None]
                             for sy, sx, m in part])

        out = sample(batch, noise)
        for (sy, sx, m), tile_values in zip(part, out):
            ya, yb = max(sy, y0), min(sy + t, y1)
            xa, xb = max(sx, x0), min(sx + t, x1)
            w = np.outer(plan.weight(sy, 0)[ya - sy: yb - sy], plan.weight(sx, 1)[xa - sx: xb - sx])
            acc[m, ya - y0: yb - y0, xa - x0: xb - x0] += w * tile_values[ya - sy: yb - sy, xa - sx: xb - sx]
            if m == 0:
                wsum[ya - y0: yb - y0, xa - x0: xb - x0] += w
    return (acc / wsum).astype(np.float32)
