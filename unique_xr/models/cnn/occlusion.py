"""Occlusions: hiding parts of feature maps, to train a gap-tolerant model and to test it.

Training (:func:`occlude`) hides, at random for each map, three kinds of gap that satellite
inputs have: scattered cells (clouds, bad retrievals), whole variables (a product not available
for a year or a region) and runs of consecutive time steps across all variables (snow, a sensor
outage, the polar night). The model sees the reduced mask, so it learns to read what is there
rather than to rely on one input.

Testing (:func:`hide_at_random`) removes a given share of the observed cells, uniformly at
random and seeded, so every model of a comparison is scored on the same gaps.

All functions take and return boolean masks of observed cells, shape ``(n, steps, variables)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from unique_xr.errors import SpecError

__all__ = ["Occlusion", "hide_at_random", "occlude"]


@dataclass(frozen=True, kw_only=True)
class Occlusion:
    """How much of each map training hides.

    Parameters
    ----------
    p_apply
        Probability that a map is occluded at all in a given epoch (the rest are shown as they are).
    max_cell_rate
        Scattered cells: each occluded map hides a share drawn uniformly from ``[0, max_cell_rate]``.
    p_variable
        Each variable of an occluded map is hidden entirely with this probability (at least one
        variable is always kept).
    p_run
        Probability of hiding one run of consecutive time steps across all variables, of a length
        drawn uniformly from 1 to ``max_run_fraction`` of the year.
    max_run_fraction
        Longest run as a share of the rows.
    """

    p_apply: float = 0.5
    max_cell_rate: float = 0.6
    p_variable: float = 0.15
    p_run: float = 0.3
    max_run_fraction: float = 0.34

    def __post_init__(self) -> None:
        for name in ("p_apply", "max_cell_rate", "p_variable", "p_run", "max_run_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SpecError(f"Occlusion.{name} is a probability or share within [0, 1]; got {value}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def occlude(observed: np.ndarray, spec: Occlusion, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``observed`` with random cells, variables and time runs hidden (training).

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.models.cnn.occlusion import Occlusion, occlude
    >>> mask = np.ones((200, 12, 6), bool)
    >>> out = occlude(mask, Occlusion(), np.random.default_rng(0))
    >>> bool((out <= mask).all()), bool(0.1 < 1 - out.mean() < 0.6)
    (True, True)
    """
    observed = np.asarray(observed, dtype=bool)
    n, steps, n_vars = observed.shape
    hide = np.zeros_like(observed)
    applied = rng.random(n) < spec.p_apply
    # scattered cells, at a per-map rate
    rate = rng.uniform(0.0, spec.max_cell_rate, size=n) * applied
    hide |= rng.random(observed.shape) < rate[:, None, None]
    # whole variables, keeping at least one
    drop_var = (rng.random((n, n_vars)) < spec.p_variable) & applied[:, None]
    keep_one = rng.integers(0, n_vars, size=n)
    drop_var[np.arange(n), keep_one] = False
    hide |= drop_var[:, None, :]
    # one run of time steps across all variables
    longest = max(1, int(round(spec.max_run_fraction * steps)))
    has_run = (rng.random(n) < spec.p_run) & applied
    length = rng.integers(1, longest + 1, size=n)
    start = rng.integers(0, steps, size=n)
    t = np.arange(steps)[None, :]
    in_run = ((t - start[:, None]) % steps) < length[:, None]  # runs may wrap over the year's end
    hide |= (in_run & has_run[:, None])[:, :, None]
    return observed & ~hide


def hide_at_random(observed: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``observed`` with ``fraction`` of its observed cells hidden, uniformly at random.

    Exactly ``round(fraction * observed.sum())`` cells are hidden, so scores at a given fraction
    compare like with like.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.models.cnn.occlusion import hide_at_random
    >>> out = hide_at_random(np.ones((10, 12, 6), bool), 0.3, np.random.default_rng(0))
    >>> int((~out).sum())
    216
    """
    if not 0.0 <= fraction < 1.0:
        raise SpecError(f"The share of cells to hide must be within [0, 1); got {fraction}.")
    observed = np.asarray(observed, dtype=bool)
    flat = np.flatnonzero(observed)
    k = int(round(fraction * flat.size))
    out = observed.copy()
    if k:
        out.reshape(-1)[rng.choice(flat, size=k, replace=False)] = False
    return out
