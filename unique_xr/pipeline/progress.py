"""Progress of a job: units done / total, pixel-days per second, ETA.

A live bar (rich) only when the stream is a terminal; otherwise one plain ``logging`` line per
finished unit, so log files get short lines rather than a redrawn bar.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

__all__ = ["JobProgress", "logger"]

logger = logging.getLogger("unique_xr.cube")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class JobProgress:
    """Counts finished units and pixel-days; ``live=None`` picks a bar on a terminal, log lines otherwise."""

    def __init__(self, total: int, done: int, *, live: bool | None = None, stream: Any = None) -> None:
        self.total, self.done, self.started_with = total, done, done
        self.pixel_days = 0
        self.t0 = time.perf_counter()
        stream = stream or sys.stderr
        self.live = stream.isatty() if live is None else live
        self._bar = None
        if self.live and total > done:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("units"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                                 TimeRemainingColumn(), console=Console(file=stream))
            self._task = self._bar.add_task("units", total=total, completed=done, rate="")
            self._bar.start()

    @property
    def rate(self) -> float:
        """Pixel-days per second since the start of this run."""
        elapsed = time.perf_counter() - self.t0
        return self.pixel_days / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float | None:
        ran = self.done - self.started_with
        if ran == 0:
            return None
        return (time.perf_counter() - self.t0) / ran * (self.total - self.done)

    def unit_done(self, unit_id: str, pixel_days: int, seconds: float) -> None:
        self.done += 1
        self.pixel_days += pixel_days
        eta = self.eta()
        line = (f"unit {unit_id} committed ({self.done}/{self.total} units, {self.rate:,.0f} pixel-days/s, "
                f"{seconds:.1f} s, ETA {_duration(eta) if eta is not None else '?'})")
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, rate=f"{self.rate:,.0f} px-days/s")
        logger.info(line)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
