"""Work units: the output grid cut into chunk-aligned tiles (x blocks of days).

A unit is what the job computes, writes and commits in one go. Its graph depends on its own size
only, so a nation is many small graphs submitted in waves, never one big graph.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WorkUnit", "plan_units"]


@dataclass(frozen=True)
class WorkUnit:
    """Rows ``rows[0]:rows[1]``, columns ``cols[0]:cols[1]`` of the output grid and days ``days[0]:days[1]``."""

    rows: tuple[int, int]
    cols: tuple[int, int]
    days: tuple[int, int]

    @property
    def id(self) -> str:
        return f"y{self.rows[0]}-x{self.cols[0]}-d{self.days[0]}"

    @property
    def pixels(self) -> int:
        return (self.rows[1] - self.rows[0]) * (self.cols[1] - self.cols[0])

    @property
    def pixel_days(self) -> int:
        return self.pixels * (self.days[1] - self.days[0])

    def window(self, halo: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)``: the unit grown by ``halo`` pixels on every side, clipped to a grid of ``shape``."""
        return (max(self.rows[0] - halo, 0), min(self.rows[1] + halo, shape[0]),
                max(self.cols[0] - halo, 0), min(self.cols[1] + halo, shape[1]))


def plan_units(shape: tuple[int, int], *, size: int, n_days: int, unit_days: int | None = None) -> list[WorkUnit]:
    """Every unit of a grid of ``shape`` pixels over ``n_days`` days, row-major, then by day block.

    >>> [u.id for u in plan_units((300, 200), size=128, n_days=10, unit_days=6)][:3]
    ['y0-x0-d0', 'y0-x0-d6', 'y0-x128-d0']
    >>> len(plan_units((300, 200), size=128, n_days=10))
    6
    """
    step = unit_days or n_days
    return [WorkUnit((r, min(r + size, shape[0])), (c, min(c + size, shape[1])), (d, min(d + step, n_days)))
            for r in range(0, shape[0], size) for c in range(0, shape[1], size) for d in range(0, n_days, step)]
