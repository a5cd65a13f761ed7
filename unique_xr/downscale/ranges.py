"""What a model was trained on, and the check that new inputs stay near it (numpy only).

At fit time :func:`training_ranges` records, in the model card (``card["training_ranges"]``),
the smallest and largest finite value of the coarse images, the fine images and each auxiliary
layer (the fine range is a record for the reader; only the inputs of a prediction, the coarse
field and the auxiliaries, are checked); the nesting factor is the card's ``factor``. At
prediction, :func:`check_trained_range` and :func:`check_factor` refuse inputs far outside them with a
:class:`~unique_xr.downscale.conditioning.DownscaleInputError` (or, with
``allow_out_of_range=True``, warn): a diffusion model extrapolates silently, so a field in the
wrong units or at a resolution it never saw would otherwise come back as a plausible-looking map.

The accepted interval is the trained one widened on either side by :data:`MARGIN` (half) of the
larger of its span and its magnitude: ``[lo - m, hi + m]`` with ``m = 0.5 max(hi - lo, |lo|, |hi|)``.
New dates legitimately leave the training range (another season, a drier year, a pixel brighter than
any trained one), and the model works on standardised values, so a moderate step outside is ordinary
use. The span alone is too narrow a yardstick where the training images are few or small: a 64 x 64
land-surface-temperature crop trained on 306.7-309.3 K sees 311-312 K on the next date (the Yanco
pair of the CLI tests), outside half its 2.6 K span but a normal day. The errors this check is for
change the magnitude itself: a scale factor not applied (x 10 000, x 1000), another unit (kelvin for
Celsius: 300 against 30), a fill value read as data (-9999, 32767); they fall far outside either
yardstick. Models whose card has no ranges (fitted before they were recorded, e.g. the shipped demo
model) skip the range check.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from unique_xr.downscale.conditioning import DownscaleInputError

__all__ = ["MARGIN", "PHYSICAL_RANGES", "accepted_range", "check_factor", "check_trained_range", "physical_range",
           "trained_factors", "training_ranges", "value_range"]

#: Share of the larger of the trained span and magnitude accepted beyond either end of the trained range.
MARGIN = 0.5

_HOW = ("or pass allow_out_of_range=True (CLI: --allow-out-of-range) to predict anyway, with a warning, "
        "knowing the model never saw such input.")


def value_range(arrays: Iterable[Any]) -> list[float] | None:
    """``[min, max]`` of the finite values of ``arrays`` (None when there is none).

    >>> value_range([np.array([1.0, np.nan]), np.array([[3.0, -np.inf]])])
    [1.0, 3.0]
    """
    lo, hi = np.inf, -np.inf
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        finite = a[np.isfinite(a)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    return [lo, hi] if lo <= hi else None


def training_ranges(coarse: Sequence[np.ndarray], fine: Sequence[np.ndarray],
                    aux: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The card's ``training_ranges``: ``{"coarse": [lo, hi], "fine": [lo, hi], "aux": {name: [lo, hi]}}``."""
    return {"coarse": value_range(coarse), "fine": value_range(fine),
            "aux": {name: value_range([a]) for name, a in aux.items()}}


def accepted_range(trained: Sequence[float]) -> tuple[float, float]:
    """The trained ``[lo, hi]`` widened by :data:`MARGIN` of ``max(hi - lo, |lo|, |hi|)`` (of 1 when all are 0).

    >>> accepted_range([0.2, 0.6])        # NDVI: the magnitude (0.6) is the yardstick
    (-0.1, 0.9)
    >>> accepted_range([306.7, 309.3])    # kelvin: Celsius (~30) and x1000 are refused, a warmer day is not
    (152.05, 463.95)
    >>> accepted_range([-20.0, 60.0])     # the span (80) is the yardstick
    (-60.0, 100.0)
    """
    lo, hi = float(trained[0]), float(trained[1])
    margin = MARGIN * (max(hi - lo, abs(lo), abs(hi)) or 1.0)
    return round(lo - margin, 12), round(hi + margin, 12)


#: Auxiliaries whose values have a fixed physical range, always accepted: land-cover fractions
#: (``frac_<class>``, :func:`unique_xr.features.static.landcover_fractions`) lie in [0, 1] whatever the
#: training area held (a class absent there is 0 in training and legitimately up to 1 elsewhere), and a
#: unit mistake cannot put them there.
PHYSICAL_RANGES: dict[str, tuple[float, float]] = {"frac_": (0.0, 1.0)}


def physical_range(name: str) -> tuple[float, float] | None:
    """The fixed range of an auxiliary named ``name`` (by prefix), or None.

    >>> physical_range("frac_tree_cover"), physical_range("elevation")
    ((0.0, 1.0), None)
    """
    return next((r for prefix, r in PHYSICAL_RANGES.items() if name.startswith(prefix)), None)


def check_trained_range(values: Any, trained: Sequence[float] | None, what: str, *, allow: bool = False,
                        where: str = "", physical: Sequence[float] | None = None) -> None:
    """Refuse (or, with ``allow``, warn about) finite ``values`` outside :func:`accepted_range` of ``trained``.

    ``what`` names the input (``"the coarse field"``, ``"auxiliary 'dem'"``); ``where`` says which
    part of it was looked at (a block of a lazy prediction). ``trained`` None skips the check.
    ``physical``: a range the quantity always lies in (:data:`PHYSICAL_RANGES`), accepted as well.
    """
    if trained is None:
        return
    seen = value_range([values])
    if seen is None:
        return
    lo, hi = accepted_range(trained)
    if physical is not None:
        lo, hi = min(lo, float(physical[0])), max(hi, float(physical[1]))
    if lo <= seen[0] and seen[1] <= hi:
        return
    message = (
        f"{what}{where} has values from {seen[0]:.6g} to {seen[1]:.6g}, but the model was trained on "
        f"{float(trained[0]):.6g} to {float(trained[1]):.6g} (accepted: {lo:.6g} to {hi:.6g}, half the larger of "
        "its span and magnitude beyond either end). Check its units and scale (a scale factor not applied, another "
        f"unit, a fill value read as data), {_HOW}"
    )
    if not allow:
        raise DownscaleInputError(message)
    warnings.warn(message, UserWarning, stacklevel=3)


def trained_factors(card: Mapping[str, Any]) -> set[int]:
    """The nesting factors a model was fitted at: the card's ``factor`` (and the CLI's per-pair ``inputs.factors``)."""
    factors = set(card.get("inputs", {}).get("factors") or [])
    if card.get("factor") is not None:
        factors.add(int(card["factor"]))
    return factors


def check_factor(factor: int, card: Mapping[str, Any], *, allow: bool = False) -> None:
    """Refuse (or, with ``allow``, warn about) a coarse/fine nesting factor the model was not fitted at.

    A model without a recorded factor (built in memory, not fitted) is not checked.
    """
    trained = trained_factors(card)
    if not trained or factor in trained:
        return
    message = (
        f"The coarse field nests in the output grid by a factor of {factor} ({_pixels(factor)}), but the model was "
        f"fitted at factor {' or '.join(map(str, sorted(trained)))} ({', '.join(map(_pixels, sorted(trained)))}): "
        "how much detail lies below a coarse pixel depends on that factor. Give the coarse field at the trained "
        "resolution and the auxiliaries on the trained fine grid (CLI without --aux: --factor "
        f"{min(trained)}, or leave --factor and --like out), fit a model at this factor, {_HOW}"
    )
    if not allow:
        raise DownscaleInputError(message)
    warnings.warn(message, UserWarning, stacklevel=3)


def _pixels(k: int) -> str:
    return "coarse already on the fine grid" if k == 1 else f"each coarse pixel {k} x {k} fine pixels"
