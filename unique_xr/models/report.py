"""Printing a cross-validation report (rich tables) from a :class:`~unique_xr.models.lgbm.TrainResult`."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["print_report"]

_SCALE_NAMES = {"D": "daily", "8D": "8-day", "MS": "monthly", "YS": "annual"}


def _table(title: str, frame: pd.DataFrame, first: str):
    from rich.table import Table

    table = Table(title=title)
    for col in (first, "model", "n_sites", "n", "r", "rmse", "bias", "r2"):
        table.add_column(col, justify="left" if col in (first, "model") else "right")
    for _, row in frame.iterrows():
        table.add_row(
            str(row[first]), row["model"], str(int(row["n_sites"])), str(int(row["n"])),
            f"{row['r']:.3f}", f"{row['rmse']:.3f}", f"{row['bias']:+.3f}", f"{row['r2']:.3f}",
        )
    return table


def print_report(result: Any, *, console: Any = None) -> None:
    """Overall scores per time scale, daily scores per IGBP class, and the QC counts."""
    from rich.console import Console

    console = console or Console()
    card = result.model.card
    console.print(f"[bold]{card.kind}[/] on {card.training['n_sites']} sites, "
                  f"{card.training['qc']['used']} rows after QC {card.training['qc']}")
    if result.scores is None:
        console.print("no cross-validation (folds=0)")
        return
    s = result.scores
    console.print(f"cross-validation: {card.cv.get('scheme')} ({card.cv.get('n_folds', len(result.folds))} folds), "
                  "every model scored on the same rows; GPP in g C m-2 d-1")
    overall = s[s["group_by"] == "overall"].assign(scale=lambda d: d["scale"].map(_SCALE_NAMES))
    console.print(_table("Out-of-fold scores, all sites", overall, "scale"))
    daily = s[(s["group_by"] == "igbp") & (s["scale"] == "D")]
    console.print(_table("Daily out-of-fold scores per IGBP class", daily, "group"))
