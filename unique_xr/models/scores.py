"""Scores of out-of-fold GPP predictions: metrics, temporal aggregation and the score table.

:func:`metrics` (n, r, RMSE, bias, R², MAE on finite pairs), :func:`aggregate` (per-site means over
8-day, monthly and annual windows, over the same days for the observation and every model) and
:func:`score_table` (a tidy table: one row per model, time scale and group). Folds are in
:mod:`unique_xr.models.cv`. Everything here is numpy and pandas.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from unique_xr.errors import MissingVariableError, SpecError

__all__ = ["METRICS", "MIN_PAIRS", "SCALES", "aggregate", "metrics", "score_table"]

#: The keys of :func:`metrics`, in the order :func:`score_table` writes them.
METRICS = ("n", "r", "rmse", "bias", "r2", "mae")

#: Time scales understood by :func:`aggregate`: daily, 8-day (MODIS composite windows), month, year.
SCALES = ("D", "8D", "MS", "YS")

#: Fewer finite pairs than this and :func:`metrics` returns NaN scores.
MIN_PAIRS = 3


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------


def metrics(obs: Any, pred: Any) -> dict[str, float]:
    r"""Agreement of predictions with observations, on the pairs where both are finite.

    .. math::

        \mathrm{bias} = \overline{p - o}, \qquad
        \mathrm{RMSE} = \sqrt{\overline{(p - o)^2}}, \qquad
        \mathrm{MAE} = \overline{|p - o|}, \qquad
        R^2 = 1 - \frac{\sum (p - o)^2}{\sum (o - \bar o)^2}

    and ``r`` is Pearson's correlation. ``R^2`` is the coefficient of determination of the
    predictions themselves (Nash-Sutcliffe efficiency), not ``r**2``: it is negative when the
    predictions are worse than the observed mean. A positive bias means over-prediction.

    Parameters
    ----------
    obs, pred : array-like, same shape
        Observations and predictions (GPP in g C m-2 d-1, say). NaN/inf pairs are dropped.

    Returns
    -------
    dict
        ``n`` (int, pairs used) and float ``r``, ``rmse``, ``bias``, ``r2``, ``mae``. With fewer
        than 3 pairs every score is NaN; ``r`` and ``r2`` are NaN when the observations (or, for
        ``r``, the predictions) are constant.

    Raises
    ------
    SpecError
        ``obs`` and ``pred`` differ in shape.

    Examples
    --------
    >>> from unique_xr.models.scores import metrics
    >>> m = metrics([1.0, 2.0, 3.0, float("nan")], [2.0, 3.0, 4.0, 1.0])
    >>> m["n"], m["bias"], m["rmse"], m["r"], m["r2"]
    (3, 1.0, 1.0, 1.0, -0.5)
    """
    obs = np.asarray(obs, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if obs.shape != pred.shape:
        raise SpecError(f"obs and pred must have the same shape; got {obs.shape} and {pred.shape}.")
    ok = np.isfinite(obs) & np.isfinite(pred)
    n = int(ok.sum())
    out = {"n": n, "r": np.nan, "rmse": np.nan, "bias": np.nan, "r2": np.nan, "mae": np.nan}
    if n < MIN_PAIRS:
        return out
    o, p = obs[ok], pred[ok]
    err = p - o
    sse = float(np.sum(err * err))
    o_anom, p_anom = o - o.mean(), p - p.mean()
    sst, spp = float(np.sum(o_anom * o_anom)), float(np.sum(p_anom * p_anom))
    out["rmse"] = float(np.sqrt(sse / n))
    out["bias"] = float(err.mean())
    out["mae"] = float(np.abs(err).mean())
    if sst > 0:
        out["r2"] = 1.0 - sse / sst
        if spp > 0:
            out["r"] = float(np.clip(np.sum(o_anom * p_anom) / np.sqrt(sst * spp), -1.0, 1.0))
    return out


# --------------------------------------------------------------------------------------------
# temporal aggregation
# --------------------------------------------------------------------------------------------


def _windows(dates: pd.Series, freq: str) -> tuple[pd.Series, np.ndarray]:
    """Start date of each row's window and the window's length in calendar days."""
    year_start = dates.dt.to_period("Y").dt.to_timestamp()
    if freq == "D":
        return dates, np.ones(len(dates), dtype=np.int64)
    if freq == "8D":
        doy0 = (dates - year_start).dt.days.to_numpy()  # 0-based day of year
        start0 = (doy0 // 8) * 8
        year_len = np.where(dates.dt.is_leap_year.to_numpy(), 366, 365)
        starts = year_start + pd.to_timedelta(start0, unit="D")
        return starts, np.minimum(8, year_len - start0)
    if freq == "MS":
        return dates.dt.to_period("M").dt.to_timestamp(), dates.dt.days_in_month.to_numpy().astype(np.int64)
    if freq == "YS":
        return year_start, np.where(dates.dt.is_leap_year.to_numpy(), 366, 365)
    raise SpecError(f"unknown time scale {freq!r}; use one of {SCALES} (day, 8-day, month start, year start).")


def _require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MissingVariableError(
            f"{what}: column(s) {missing} not in the table; it has {list(frame.columns)[:30]}"
            f"{' ...' if frame.shape[1] > 30 else ''}."
        )


def aggregate(
    frame: pd.DataFrame,
    freq: str,
    *,
    cols: Sequence[str],
    min_fraction: float = 0.5,
    site: str = "site",
    time: str = "date",
    carry: Sequence[str] = (),
) -> pd.DataFrame:
    """Per-site means of ``cols`` over daily, 8-day, monthly or annual windows, on common days.

    Only days on which *every* column of ``cols`` is finite count (so the observation and all
    models are averaged over the same days), and a window is kept only when those days cover at
    least ``min_fraction`` of its calendar days. Means of daily GPP in g C m-2 d-1 stay in
    g C m-2 d-1.

    Windows: ``"D"`` one day (the common rows, values unchanged); ``"8D"`` the 46 MODIS composite
    windows of each year, starting on 1 January (days 1-8, 9-16, ..., 361-365/366: the last
    window of a year is 5 or 6 days and the next starts again on 1 January); ``"MS"`` calendar
    months; ``"YS"`` calendar years.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per site-day, with columns ``site``, ``time`` and ``cols``; (site, day) unique.
    freq : {"D", "8D", "MS", "YS"}
        Time scale.
    cols : sequence of str
        Columns averaged together (the observation and the prediction columns).
    min_fraction : float, default 0.5
        Least share of a window's calendar days that must have every column finite, in (0, 1].
    site, time : str
        Names of the site and date columns.
    carry : sequence of str
        Columns constant within a site (IGBP class, say) carried into the result.

    Returns
    -------
    pandas.DataFrame
        Columns ``site``, ``time`` (window start), ``carry``, ``cols``, ``n_days`` (common days
        used) and ``window_days`` (calendar days of the window), sorted by site and time.

    Raises
    ------
    MissingVariableError
        A named column is absent.
    SpecError
        Unknown ``freq``, ``min_fraction`` outside (0, 1], duplicate (site, day) rows, or a
        ``carry`` column that changes within a window.

    Examples
    --------
    >>> import pandas as pd
    >>> from unique_xr.models.scores import aggregate
    >>> days = pd.date_range("2003-12-29", "2004-01-02")
    >>> frame = pd.DataFrame({"site": "A", "date": days, "obs": [1.0, 2.0, 3.0, 4.0, 5.0], "pred": 1.0})
    >>> aggregate(frame, "8D", cols=["obs", "pred"])[["date", "obs", "n_days", "window_days"]]
            date  obs  n_days  window_days
    0 2003-12-27  2.0       3            5
    """
    if freq not in SCALES:
        raise SpecError(f"unknown time scale {freq!r}; use one of {SCALES} (day, 8-day, month start, year start).")
    if not 0.0 < float(min_fraction) <= 1.0:
        raise SpecError(f"min_fraction must be in (0, 1] (share of a window's days); got {min_fraction!r}.")
    cols, carry = list(cols), [c for c in carry if c not in (site, time)]
    if not cols:
        raise SpecError("aggregate needs at least one column in cols.")
    _require_columns(frame, [site, time, *cols, *carry], "aggregate")
    dates = pd.to_datetime(frame[time]).dt.normalize()
    duplicated = pd.DataFrame({"s": frame[site].to_numpy(), "d": dates.to_numpy()}).duplicated()
    if duplicated.any():
        first = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise SpecError(
            f"{int(duplicated.sum())} duplicate (site, day) row(s), e.g. {frame[site].iloc[first]!r} on "
            f"{dates.iloc[first].date()}; aggregate needs one row per site-day."
        )
    values = frame[cols].to_numpy(dtype=np.float64)
    common = np.isfinite(values).all(axis=1)
    starts, window_days = _windows(dates, freq)
    work = pd.DataFrame(values[common], columns=cols)
    work.insert(0, "__start", starts.to_numpy()[common])
    work.insert(0, "__site", frame[site].to_numpy()[common])
    work["__window_days"] = window_days[common]
    for c in carry:
        work[c] = frame[c].to_numpy()[common]
    grouped = work.groupby(["__site", "__start"], sort=True, dropna=False)
    out = grouped[cols].mean()
    out["n_days"] = grouped.size()
    out["window_days"] = grouped["__window_days"].first()
    if carry:
        changing = grouped[carry].nunique(dropna=False).gt(1).any()
        if changing.any():
            raise SpecError(
                f"column(s) {list(changing.index[changing])} change within a {freq} window of a site; carry only "
                "columns that are constant per site (IGBP class, climate zone...)."
            )
        out[carry] = grouped[carry].first()
    out = out[out["n_days"] >= min_fraction * out["window_days"]].reset_index()
    out = out.rename(columns={"__site": site, "__start": time})
    return out[[site, time, *carry, *cols, "n_days", "window_days"]].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# the score table
# --------------------------------------------------------------------------------------------


def _scores_by_group(
    table: pd.DataFrame, obs: str, model: str, by: Sequence[str], site: str
) -> list[dict[str, Any]]:
    rows = []
    for key in by:
        if key == "overall":
            groups: Iterable[tuple[Any, pd.DataFrame]] = [("all", table)]
        else:
            groups = table.groupby(key, sort=True)
        for value, part in groups:
            score = metrics(part[obs].to_numpy(), part[model].to_numpy())
            label = value[0] if isinstance(value, tuple) else value
            rows.append({"group_by": key, "group": str(label), "n_sites": int(part[site].nunique()), **score})
    return rows


def score_table(
    oof: pd.DataFrame,
    *,
    obs: str = "gpp_obs",
    models: Sequence[str] = ("lightgbm",),
    by: Sequence[str] = ("overall", "igbp"),
    scales: Sequence[str] = SCALES,
    common: bool = True,
    min_fraction: float = 0.5,
    site: str = "site",
    time: str = "date",
) -> pd.DataFrame:
    """Score out-of-fold predictions of several models, overall and per group, at several time scales.

    With ``common=True`` (the default) every model is scored on the same rows: the site-days where
    the observation and *every* model column are finite, aggregated with :func:`aggregate` over
    those days only - so differences between models are differences of skill, not of sample.
    With ``common=False`` each model is scored on its own finite rows (larger ``n`` for models that
    predict more often; the numbers are then not comparable across models).

    Parameters
    ----------
    oof : pandas.DataFrame
        One row per site-day: ``site``, ``time``, the observation, one column of out-of-fold
        predictions per model, and the grouping columns.
    obs : str, default "gpp_obs"
        The observation column.
    models : sequence of str
        Prediction columns, e.g. ``("lightgbm", "linear_vi", "lue_mod17", "pmodel")``.
    by : sequence of str, default ("overall", "igbp")
        ``"overall"`` (one group, ``"all"``) and/or names of columns constant within a site
        (``"igbp"``, ``"site"``...), each giving one row per value.
    scales : sequence of {"D", "8D", "MS", "YS"}
        Time scales, see :func:`aggregate`.
    common : bool, default True
        Score all models on identical rows.
    min_fraction : float, default 0.5
        Passed to :func:`aggregate`.
    site, time : str
        Names of the site and date columns.

    Returns
    -------
    pandas.DataFrame
        Columns ``model, scale, group_by, group, n_sites`` and the :data:`METRICS`; one row per
        (model, scale, group).

    Raises
    ------
    MissingVariableError
        A named column is absent.
    SpecError
        No models, an unknown scale, or a grouping column that changes within a site's window.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from unique_xr.models.scores import score_table
    >>> days = pd.date_range("2010-01-01", periods=6)
    >>> oof = pd.DataFrame({"site": "A", "date": days, "igbp": "GRA", "gpp_obs": [1.0, 2, 3, 4, 5, 6],
    ...                     "good": [1.1, 2, 3, 4, 5, 6], "poor": [3.0, 3, 3, 3, 3, np.nan]})
    >>> table = score_table(oof, models=["good", "poor"], by=["overall"], scales=["D"])
    >>> table[["model", "n", "rmse"]].round(3)
      model  n   rmse
    0  good  5  0.045
    1  poor  5  1.414
    """
    models = list(models)
    if not models:
        raise SpecError("score_table needs at least one model column.")
    for scale in scales:
        if scale not in SCALES:
            raise SpecError(f"unknown time scale {scale!r}; use one of {SCALES}.")
    groups = [key for key in by if key != "overall"]
    _require_columns(oof, [site, time, obs, *models, *groups], "score_table")
    carry = [key for key in groups if key != site]
    column_sets = [[obs, *models]] if common else [[obs, model] for model in models]
    rows: list[dict[str, Any]] = []
    for scale in scales:
        for cols in column_sets:
            table = aggregate(oof, scale, cols=cols, min_fraction=min_fraction, site=site, time=time, carry=carry)
            for model in cols[1:]:
                for row in _scores_by_group(table, obs, model, by, site):
                    rows.append({"model": model, "scale": scale, **row})
    columns = ["model", "scale", "group_by", "group", "n_sites", *METRICS]
    result = pd.DataFrame(rows, columns=columns)
    order = {m: i for i, m in enumerate(models)}
    scale_order = {s: i for i, s in enumerate(scales)}
    result = result.sort_values(
        ["model", "scale"], key=lambda s: s.map(order if s.name == "model" else scale_order), kind="stable"
    )
    return result.reset_index(drop=True)
