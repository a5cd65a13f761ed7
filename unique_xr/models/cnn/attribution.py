r"""Which cells of the feature map the CNN's annual GPP and NEE depend on: occlusion sensitivity.

The model reads a mask of observed cells, so "hiding" a cell is exactly what happens when a
satellite input is missing - no baseline value has to be invented (as integrated gradients
would need). The sensitivity of prediction :math:`f` to cell :math:`(t, v)` of map :math:`i` is

.. math::

    S_{i,t,v} = f(x_i, m_i) - f(x_i, m_i \setminus \{(t, v)\}),

the prediction with the full map minus the prediction with that one cell hidden, in
g C m-2 yr-1: positive where the cell raised the estimate. Cells already missing get NaN.
:func:`variable_importance` and :func:`step_importance` hide a whole column (variable) or row
(time step) at once; :func:`by_forest_type` averages over the site-years of each forest type and
:func:`attribution_figure` draws the averages as heatmaps.

Any model with ``encode(maps, observed)`` and ``predict_encoded(x)`` works (an
:class:`~unique_xr.models.cnn.model.AnnualCNN`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from unique_xr._files import save_figure
from unique_xr._optional import import_optional
from unique_xr.errors import SpecError
from unique_xr.models.cnn.featuremap import FeatureMaps, MapSpec
from unique_xr.models.cnn.schema import INPUTS

__all__ = ["attribution_figure", "by_forest_type", "occlusion_sensitivity", "step_importance",
           "variable_importance"]

#: Units of every sensitivity here (annual sums).
UNITS = "g C m-2 yr-1"
TARGET_NAMES = ("gpp", "nee")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _hidden_predictions(model: Any, maps: FeatureMaps, index: np.ndarray, hide: np.ndarray,
                        batch_size: int) -> np.ndarray:
    """Predictions of map ``index[j]`` with cells ``hide[j]`` (a (steps, variables) mask) hidden, in batches."""
    out = np.empty((index.size, 2))
    observed = maps.observed
    for start in range(0, index.size, batch_size):
        i = index[start:start + batch_size]
        sub = FeatureMaps(maps.spec, maps.values[i], maps.forest[i])
        x = model.encode(sub, observed[i] & ~hide[start:start + batch_size])
        out[start:start + batch_size] = model.predict_encoded(x)
    return out


def _full(model: Any, maps: FeatureMaps, batch_size: int) -> np.ndarray:
    out = np.empty((len(maps), 2))
    for start in range(0, len(maps), batch_size):
        sub = FeatureMaps(maps.spec, maps.values[start:start + batch_size], maps.forest[start:start + batch_size])
        out[start:start + batch_size] = model.predict_encoded(model.encode(sub))
    return out


def occlusion_sensitivity(model: Any, maps: FeatureMaps, *, batch_size: int = 2048) -> np.ndarray:
    """Prediction with the full map minus prediction with one observed cell hidden, for every cell.

    Parameters
    ----------
    model
        A trained :class:`~unique_xr.models.cnn.model.AnnualCNN` (or anything with ``encode`` and
        ``predict_encoded``).
    maps
        Feature maps built with the model's spec.
    batch_size
        Variants encoded and predicted at once (memory: about ``batch_size * 2 * steps * columns``
        float32).

    Returns
    -------
    numpy.ndarray, float64, shape (n, steps, variables, 2)
        ``[..., 0]`` for annual GPP, ``[..., 1]`` for annual NEE, in g C m-2 yr-1; NaN where the
        cell was missing already.
    """
    _check_batch(batch_size)
    observed = maps.observed
    n, steps, n_vars = observed.shape
    out = np.full((n, steps, n_vars, 2), np.nan)
    i, t, v = np.nonzero(observed)
    if i.size == 0:
        return out
    full = _full(model, maps, batch_size)
    for start in range(0, i.size, batch_size):
        sl = slice(start, start + batch_size)
        hide = np.zeros((i[sl].size, steps, n_vars), dtype=bool)
        hide[np.arange(hide.shape[0]), t[sl], v[sl]] = True
        hidden = _hidden_predictions(model, maps, i[sl], hide, batch_size)
        out[i[sl], t[sl], v[sl]] = full[i[sl]] - hidden
    return out


def _group_importance(model: Any, maps: FeatureMaps, groups: np.ndarray, batch_size: int) -> np.ndarray:
    """Full minus hidden prediction for each group of cells ``groups[g]`` (steps, variables masks): (n, G, 2)."""
    observed = maps.observed
    n, n_groups = len(maps), groups.shape[0]
    out = np.full((n, n_groups, 2), np.nan)
    # a group counts for a map when at least one of its cells is observed there
    has = np.einsum("ntv,gtv->ng", observed.astype(np.int32), groups.astype(np.int32)) > 0
    i, g = np.nonzero(has)
    if i.size == 0:
        return out
    full = _full(model, maps, batch_size)
    for start in range(0, i.size, batch_size):
        sl = slice(start, start + batch_size)
        hidden = _hidden_predictions(model, maps, i[sl], groups[g[sl]], batch_size)
        out[i[sl], g[sl]] = full[i[sl]] - hidden
    return out


def variable_importance(model: Any, maps: FeatureMaps, *, batch_size: int = 2048) -> np.ndarray:
    """Full prediction minus prediction with one whole variable (column) hidden: ``(n, variables, 2)``.

    NaN where the map has no observed cell of that variable.
    """
    _check_batch(batch_size)
    steps, n_vars = maps.values.shape[1:]
    groups = np.zeros((n_vars, steps, n_vars), dtype=bool)
    groups[np.arange(n_vars), :, np.arange(n_vars)] = True
    return _group_importance(model, maps, groups, batch_size)


def step_importance(model: Any, maps: FeatureMaps, *, batch_size: int = 2048) -> np.ndarray:
    """Full prediction minus prediction with one whole time step (row, all variables) hidden: ``(n, steps, 2)``.

    NaN where the map has no observed cell in that row.
    """
    _check_batch(batch_size)
    steps, n_vars = maps.values.shape[1:]
    groups = np.zeros((steps, steps, n_vars), dtype=bool)
    groups[np.arange(steps), np.arange(steps), :] = True
    return _group_importance(model, maps, groups, batch_size)


def _check_batch(batch_size: int) -> None:
    if int(batch_size) < 1:
        raise SpecError(f"batch_size must be at least 1; got {batch_size}.")


def by_forest_type(sensitivity: np.ndarray, maps: FeatureMaps, *, signed: bool = False) -> dict[str, np.ndarray]:
    """Mean sensitivity over the site-years of each forest type.

    Parameters
    ----------
    sensitivity
        Any array whose first axis is the maps (:func:`occlusion_sensitivity`,
        :func:`variable_importance`, :func:`step_importance`).
    maps
        The maps it was computed on (their ``keys["igbp"]`` names the types).
    signed
        Mean of the signed values (the direction of the effect) instead of their absolute values
        (its size).

    Returns
    -------
    dict
        Forest type -> ``sensitivity.shape[1:]`` array (NaN where no site-year of the type had the
        cell observed), in the order of ``maps.spec.forest_types``, then any other class seen.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from unique_xr.models.cnn.featuremap import FeatureMaps, MapSpec
    >>> from unique_xr.models.cnn.attribution import by_forest_type
    >>> spec = MapSpec(variables=("evi",))
    >>> maps = FeatureMaps(spec, np.zeros((3, 12, 1), np.float32), np.zeros((3, 5), np.float32),
    ...                    pd.DataFrame({"igbp": ["DBF", "ENF", "DBF"]}))
    >>> s = np.array([1.0, 5.0, -3.0]).reshape(3, 1)
    >>> {k: v.tolist() for k, v in by_forest_type(s, maps).items()}
    {'ENF': [5.0], 'DBF': [2.0]}
    """
    sensitivity = np.asarray(sensitivity, dtype=np.float64)
    if sensitivity.shape[0] != len(maps):
        raise SpecError(f"sensitivity has {sensitivity.shape[0]} maps, the maps {len(maps)}; pass the maps it was "
                        "computed on.")
    if "igbp" not in maps.keys.columns:
        raise SpecError(f"maps.keys has no 'igbp' column (it has {list(maps.keys.columns)}).")
    igbp = maps.keys["igbp"].astype("string").fillna("unknown").to_numpy(dtype=object)
    seen = list(dict.fromkeys(igbp))
    order = [t for t in maps.spec.forest_types if t in seen] + [t for t in seen if t not in maps.spec.forest_types]
    values = sensitivity if signed else np.abs(sensitivity)
    out = {}
    for name in order:
        group = values[igbp == name]
        count = np.isfinite(group).sum(axis=0)
        total = np.nansum(group, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[str(name)] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out


def _row_labels(spec: MapSpec) -> list[str]:
    if spec.time_step == "monthly":
        return list(_MONTHS)
    days = 16 if spec.time_step == "16-day" else 8
    return [f"d{1 + days * k}" for k in range(spec.n_steps)]


def _column_label(name: str) -> str:
    units = INPUTS.get(name, {}).get("units")
    return f"{name}\n({units})" if units else name


def attribution_figure(by_type: Mapping[str, np.ndarray], spec: MapSpec, path: str | os.PathLike, *,
                       target: str = "gpp", counts: Mapping[str, int] | None = None, signed: bool | None = None,
                       dpi: int = 110) -> Path:
    """Heatmaps of mean occlusion sensitivity, one per forest type (rows time steps, columns variables).

    Parameters
    ----------
    by_type
        :func:`by_forest_type` of :func:`occlusion_sensitivity`: type -> ``(steps, variables, 2)``.
    spec
        The maps' spec (row and column labels).
    path
        PNG to write.
    target
        ``"gpp"`` or ``"nee"``.
    counts
        Site-years per type, shown in the panel titles.
    signed
        Draw on a diverging scale centred on 0 (default: when any value is negative).

    All panels share one colour scale, so forest types can be compared; the colourbar carries the
    units (g C m-2 yr-1 per hidden cell).
    """
    if target not in TARGET_NAMES:
        raise SpecError(f"target must be one of {TARGET_NAMES}; got {target!r}.")
    if not by_type:
        raise SpecError("Nothing to draw: by_type is empty.")
    j = TARGET_NAMES.index(target)
    panels = {}
    for name, arr in by_type.items():
        arr = np.asarray(arr, dtype=np.float64)
        if arr.shape != (spec.n_steps, len(spec.variables), 2):
            raise SpecError(f"by_type[{name!r}] has shape {arr.shape}; expected ({spec.n_steps}, "
                            f"{len(spec.variables)}, 2) (by_forest_type of occlusion_sensitivity).")
        panels[name] = arr[..., j]
    mpl = import_optional("matplotlib", purpose="drawing the attribution figure")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    stacked = np.stack(list(panels.values()))
    finite = stacked[np.isfinite(stacked)]
    if signed is None:
        signed = bool((finite < 0).any())
    if signed:
        vmax = float(np.abs(finite).max()) if finite.size else 1.0
        vmin, cmap = -vmax, "RdBu_r"
        label = f"mean effect of the cell on annual {target.upper()} ({UNITS})"
    else:
        vmin, vmax, cmap = 0.0, float(finite.max()) if finite.size else 1.0, "viridis"
        label = f"mean |effect| of the cell on annual {target.upper()} ({UNITS})"
    vmax = vmax or 1.0
    ncol = 2 if len(panels) == 4 else min(3, len(panels))
    nrow = int(np.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol + 0.9, 3.6 * nrow + 0.4), squeeze=False,
                             layout="constrained")
    rows, cols = _row_labels(spec), [_column_label(v) for v in spec.variables]
    image = None
    for ax, (name, arr) in zip(axes.flat, panels.items()):
        image = ax.imshow(np.ma.masked_invalid(arr), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        title = name if counts is None or name not in counts else f"{name} ({counts[name]} site-years)"
        ax.set_title(title)
        ax.set_xticks(range(len(cols)), cols, fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.colorbar(image, ax=axes, shrink=0.8, label=label)
    fig.suptitle(f"Occlusion sensitivity of annual {target.upper()} by forest type")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=dpi)
    plt.close(fig)
    return path
