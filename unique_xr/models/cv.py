"""Site-grouped cross-validation and the scores of out-of-fold GPP predictions.

A model trained on eddy-covariance towers is used on land it has never seen, so it is judged on
towers it has never seen: every split here keeps all rows of a site on one side.

Folds
    :func:`site_folds` (site-grouped K-fold, 20 folds by default as in the seed paper),
    :func:`spatial_block_folds` (sites binned into latitude/longitude blocks, whole blocks held out,
    so neighbouring towers do not inform each other) and :func:`inner_split` (a site-grouped
    train/validation split inside a training fold, for early stopping). Folds are returned as a
    :class:`Folds` list of ``(train_idx, test_idx)`` positional index arrays - the form
    scikit-learn's ``cv=`` arguments take - that also records which sites each fold tests.
    :func:`check_no_leakage` proves a set of folds is site-disjoint.

Scores
    :func:`metrics` (n, r, RMSE, bias, R², MAE on finite pairs), :func:`aggregate` (per-site means
    over 8-day, monthly and annual windows, over the same days for the observation and every
    model) and :func:`score_table` (a tidy table: one row per model, time scale and group).

Everything here is numpy and pandas; nothing needs LightGBM or scikit-learn.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from unique_xr.errors import FoldLeakageError, MissingVariableError, SpecError

__all__ = [
    "METRICS",
    "SCALES",
    "Folds",
    "aggregate",
    "check_no_leakage",
    "inner_split",
    "metrics",
    "score_table",
    "site_folds",
    "spatial_block_folds",
]

#: The keys of :func:`metrics`, in the order :func:`score_table` writes them.
METRICS = ("n", "r", "rmse", "bias", "r2", "mae")

#: Time scales understood by :func:`aggregate`: daily, 8-day (MODIS composite windows), month, year.
SCALES = ("D", "8D", "MS", "YS")

#: Fewer finite pairs than this and :func:`metrics` returns NaN scores.
MIN_PAIRS = 3


# --------------------------------------------------------------------------------------------
# folds
# --------------------------------------------------------------------------------------------


class Folds(list):
    """A list of ``(train_idx, test_idx)`` pairs that remembers how it was made.

    It is a plain :class:`list` (so it can be passed wherever scikit-learn takes ``cv=``), with
    attributes describing the split for a model card.

    Attributes
    ----------
    scheme : str
        ``"site-kfold"``, ``"leave-one-site-out"``, ``"spatial-block"`` or ``"leave-one-block-out"``.
    requested : int
        The number of folds asked for; ``len(folds)`` is the number made (fewer when there were
        fewer sites or blocks than folds, see :func:`site_folds`).
    test_sites : list of list of str
        The sites each fold tests, sorted.
    params : dict
        The other arguments of the split (seed, block size...), JSON-able.
    """

    def __init__(
        self,
        pairs: Iterable[tuple[np.ndarray, np.ndarray]],
        *,
        scheme: str,
        requested: int,
        test_sites: Sequence[Sequence[Any]],
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(pairs)
        self.scheme = scheme
        self.requested = int(requested)
        self.test_sites = [sorted(str(s) for s in group) for group in test_sites]
        self.params = dict(params or {})

    def to_dict(self) -> dict[str, Any]:
        """The split as JSON-able data (no row indices): scheme, fold count, sites per fold."""
        return {
            "scheme": self.scheme,
            "n_folds": len(self),
            "requested": self.requested,
            "test_sites": [list(group) for group in self.test_sites],
            **self.params,
        }

    def __repr__(self) -> str:
        sizes = [len(group) for group in self.test_sites]
        return f"Folds(scheme={self.scheme!r}, n_folds={len(self)}, sites_per_fold={sizes})"


def _site_codes(sites: Any, what: str = "sites") -> tuple[np.ndarray, np.ndarray]:
    """Integer code per row and the sorted unique labels; refuses missing labels and 2-D input."""
    if np.ndim(sites) != 1:
        raise SpecError(f"{what} must be one label per row (1-D); got an array of shape {np.shape(sites)}.")
    labels = pd.Series(np.asarray(sites, dtype=object))
    missing = labels.isna().to_numpy()
    if missing.any():
        raise SpecError(
            f"{what} has {int(missing.sum())} missing label(s) (first at row {int(np.flatnonzero(missing)[0])}); "
            "every row must name its site. Drop those rows first."
        )
    codes, uniques = pd.factorize(labels, sort=True)
    return codes.astype(np.intp), np.asarray(uniques, dtype=object)


def _pairs_from_assignment(fold_of_row: np.ndarray, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rows = np.arange(fold_of_row.size, dtype=np.intp)
    return [(rows[fold_of_row != k], rows[fold_of_row == k]) for k in range(n_folds)]


def _check_n_folds(n_folds: int) -> int:
    if isinstance(n_folds, bool) or not isinstance(n_folds, int | np.integer) or n_folds < 2:
        raise SpecError(
            f"n_folds must be an integer >= 2 (one fold to test on, at least one to train on); got {n_folds!r}."
        )
    return int(n_folds)


def site_folds(sites: Any, n_folds: int = 20, *, seed: int = 0) -> Folds:
    """Site-grouped K-fold split: every site is tested exactly once, never in its own training set.

    Sites are shuffled with ``seed`` and dealt round robin into the folds, so fold sizes counted in
    *sites* differ by at most one (rows per fold follow the sites' record lengths).

    Parameters
    ----------
    sites : array-like of str, shape (n_rows,)
        The site of each row (e.g. ``frame["site"]``). Missing labels are refused.
    n_folds : int, default 20
        Number of folds, the seed paper's 20-fold cross-validation by default. When it exceeds the
        number of sites, each site becomes its own fold (leave-one-site-out): a :class:`UserWarning`
        says so and the returned ``Folds.scheme`` is ``"leave-one-site-out"``.
    seed : int, default 0
        Seed of the site shuffle; the same seed and sites give the same folds.

    Returns
    -------
    Folds
        ``min(n_folds, n_sites)`` pairs ``(train_idx, test_idx)`` of sorted row positions.

    Raises
    ------
    SpecError
        ``n_folds < 2``, fewer than two sites, or a missing site label.

    Examples
    --------
    >>> from unique_xr.models.cv import site_folds
    >>> folds = site_folds(["A", "A", "B", "C", "C", "D"], n_folds=2, seed=0)
    >>> len(folds), folds.test_sites
    (2, [['B', 'C'], ['A', 'D']])
    >>> [test.tolist() for _, test in folds]
    [[2, 3, 4], [0, 1, 5]]
    """
    n_folds = _check_n_folds(n_folds)
    codes, uniques = _site_codes(sites)
    n_sites = uniques.size
    if n_sites < 2:
        raise SpecError(f"site-grouped cross-validation needs at least 2 sites; got {n_sites} ({list(uniques)}).")
    k = n_folds
    scheme = "site-kfold"
    if n_folds >= n_sites:
        k, scheme = n_sites, "leave-one-site-out"
        if n_folds > n_sites:
            warnings.warn(
                f"n_folds={n_folds} exceeds the number of sites ({n_sites}); using leave-one-site-out "
                f"({n_sites} folds of one site each).",
                UserWarning,
                stacklevel=2,
            )
    order = np.random.default_rng(seed).permutation(n_sites)
    fold_of_site = np.empty(n_sites, dtype=np.intp)
    fold_of_site[order] = np.arange(n_sites) % k
    pairs = _pairs_from_assignment(fold_of_site[codes], k)
    test_sites = [uniques[fold_of_site == f] for f in range(k)]
    return Folds(pairs, scheme=scheme, requested=n_folds, test_sites=test_sites, params={"seed": int(seed)})


def _site_coordinates(codes: np.ndarray, uniques: np.ndarray, lat: Any, lon: Any) -> tuple[np.ndarray, np.ndarray]:
    """One (lat, lon) per site; refuses NaN, out-of-range or per-site-varying coordinates."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    if lat.shape != codes.shape or lon.shape != codes.shape:
        raise SpecError(
            f"lat and lon must have one value per row like sites ({codes.size}); got {lat.shape} and {lon.shape}."
        )
    bad = ~np.isfinite(lat) | ~np.isfinite(lon) | (np.abs(lat) > 90) | (np.abs(lon) > 360)
    if bad.any():
        site = uniques[codes[np.flatnonzero(bad)[0]]]
        raise SpecError(
            f"{int(bad.sum())} row(s) have missing or out-of-range coordinates (first: site {site!r}); "
            "spatial blocks need a latitude in [-90, 90] and a longitude in degrees for every row."
        )
    frame = pd.DataFrame({"code": codes, "lat": lat, "lon": lon}).groupby("code")
    spread = (frame.max() - frame.min()).max(axis=1).to_numpy()
    if (spread > 1e-6).any():
        site = uniques[int(np.flatnonzero(spread > 1e-6)[0])]
        raise SpecError(
            f"site {site!r} has more than one coordinate (spread {spread.max():.6g} deg); a site must sit at one "
            "latitude/longitude for spatial blocks. Fix the site metadata or give each location its own site label."
        )
    first = frame.first()
    return first["lat"].to_numpy(), first["lon"].to_numpy()


def spatial_block_folds(
    sites: Any,
    lat: Any,
    lon: Any,
    n_folds: int = 10,
    *,
    block_deg: float = 5.0,
    seed: int = 0,
) -> Folds:
    """Spatial-block K-fold split: whole latitude/longitude blocks of sites are held out together.

    Each site falls in the block ``(floor((lat + 90) / block_deg), floor((lon + 180) / block_deg))``.
    Blocks are shuffled with ``seed``, ordered by number of sites (largest first, shuffle order
    breaking ties) and each is given to the fold that has fewest sites so far, so no block is ever
    split across folds and fold sizes in sites stay as even as the blocks allow.

    Parameters
    ----------
    sites : array-like of str, shape (n_rows,)
        The site of each row.
    lat, lon : array-like of float, shape (n_rows,)
        Tower coordinates in degrees, constant within a site.
    n_folds : int, default 10
        Number of folds. When it exceeds the number of occupied blocks each block becomes its own
        fold (leave-one-block-out), with a :class:`UserWarning`.
    block_deg : float, default 5.0
        Block edge in degrees (both latitude and longitude).
    seed : int, default 0
        Seed of the block shuffle.

    Returns
    -------
    Folds
        Pairs ``(train_idx, test_idx)``; ``Folds.params["blocks"]`` maps each site to its block.

    Raises
    ------
    SpecError
        ``n_folds < 2``, ``block_deg <= 0``, fewer than two blocks, missing coordinates or a site
        with several coordinates.

    Examples
    --------
    >>> from unique_xr.models.cv import spatial_block_folds
    >>> folds = spatial_block_folds(["A", "B", "C"], [50.1, 50.2, -20.0], [8.0, 8.3, 130.0], n_folds=2)
    >>> sorted(folds.test_sites)
    [['A', 'B'], ['C']]
    """
    n_folds = _check_n_folds(n_folds)
    if not np.isfinite(block_deg) or block_deg <= 0:
        raise SpecError(f"block_deg must be a positive number of degrees; got {block_deg!r}.")
    codes, uniques = _site_codes(sites)
    site_lat, site_lon = _site_coordinates(codes, uniques, lat, lon)
    lon180 = (site_lon + 180.0) % 360.0 - 180.0
    iy = np.floor((site_lat + 90.0) / block_deg).astype(np.int64)
    ix = np.floor((lon180 + 180.0) / block_deg).astype(np.int64)
    block_of_site, block_keys = pd.factorize(pd.Series(list(zip(iy.tolist(), ix.tolist(), strict=True))), sort=True)
    n_blocks = len(block_keys)
    if n_blocks < 2:
        raise SpecError(
            f"all {uniques.size} sites fall in one {block_deg} deg block; spatial-block cross-validation needs at "
            "least 2 blocks. Use a smaller block_deg or site_folds()."
        )
    k, scheme = n_folds, "spatial-block"
    if n_folds >= n_blocks:
        k, scheme = n_blocks, "leave-one-block-out"
        if n_folds > n_blocks:
            warnings.warn(
                f"n_folds={n_folds} exceeds the number of occupied {block_deg} deg blocks ({n_blocks}); using "
                f"leave-one-block-out ({n_blocks} folds).",
                UserWarning,
                stacklevel=2,
            )
    sites_per_block = np.bincount(block_of_site, minlength=n_blocks)
    shuffled = np.random.default_rng(seed).permutation(n_blocks)
    order = shuffled[np.argsort(-sites_per_block[shuffled], kind="stable")]
    fold_of_block = np.empty(n_blocks, dtype=np.intp)
    load = np.zeros(k, dtype=np.int64)
    for block in order:
        fold = int(np.argmin(load))  # the first emptiest fold: every fold gets a block before any gets two
        fold_of_block[block] = fold
        load[fold] += sites_per_block[block]
    fold_of_site = fold_of_block[block_of_site]
    pairs = _pairs_from_assignment(fold_of_site[codes], k)
    test_sites = [uniques[fold_of_site == f] for f in range(k)]

    def label(key: tuple[int, int]) -> str:
        south, west = key[0] * block_deg - 90.0, key[1] * block_deg - 180.0
        return f"lat[{south:g},{south + block_deg:g}) lon[{west:g},{west + block_deg:g})"

    blocks = {str(uniques[i]): label(block_keys[block_of_site[i]]) for i in range(uniques.size)}
    params = {"seed": int(seed), "block_deg": float(block_deg), "blocks": blocks}
    return Folds(pairs, scheme=scheme, requested=n_folds, test_sites=test_sites, params=params)


def inner_split(sites: Any, *, fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Site-grouped train/validation split of one training fold, for early stopping.

    ``round(fraction * n_sites)`` sites (at least one, and at least one left to train on) are drawn
    with ``seed`` for validation; all their rows go to validation.

    Parameters
    ----------
    sites : array-like of str, shape (n_rows,)
        The site of each row *of the training fold* (e.g. ``frame["site"].to_numpy()[train_idx]``).
    fraction : float, default 0.2
        Share of the sites held out, in (0, 1).
    seed : int, default 0
        Seed of the draw.

    Returns
    -------
    train_idx, val_idx : numpy.ndarray
        Sorted positions into ``sites`` (not into the full table: map them back with
        ``train_idx_outer[train_idx]``).

    Raises
    ------
    SpecError
        ``fraction`` outside (0, 1), fewer than two sites, or a missing site label.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.models.cv import inner_split
    >>> sites = np.array(["A", "A", "B", "C", "D", "E"])
    >>> train, val = inner_split(sites, fraction=0.2, seed=1)
    >>> sites[val].tolist(), sites[train].tolist()
    (['C'], ['A', 'A', 'B', 'D', 'E'])
    """
    if not 0.0 < float(fraction) < 1.0:
        raise SpecError(f"fraction must be strictly between 0 and 1 (share of sites held out); got {fraction!r}.")
    codes, uniques = _site_codes(sites)
    n_sites = uniques.size
    if n_sites < 2:
        raise SpecError(
            f"an inner site-grouped split needs at least 2 sites in the training fold; got {n_sites} "
            f"({list(uniques)}). Use fewer outer folds or no early stopping."
        )
    n_val = int(min(max(round(fraction * n_sites), 1), n_sites - 1))
    held_out = np.zeros(n_sites, dtype=bool)
    held_out[np.random.default_rng(seed).choice(n_sites, size=n_val, replace=False)] = True
    rows = np.arange(codes.size, dtype=np.intp)
    return rows[~held_out[codes]], rows[held_out[codes]]


def check_no_leakage(
    folds: Iterable[tuple[Any, Any]],
    sites: Any,
    *,
    require_cover: bool = False,
) -> None:
    """Raise unless every fold keeps each site on one side only.

    Parameters
    ----------
    folds : iterable of (train_idx, test_idx)
        Positional row indices, as returned by :func:`site_folds`.
    sites : array-like, shape (n_rows,)
        The site of each row.
    require_cover : bool, default False
        Also require that the test sets partition the rows: every row tested exactly once (what
        out-of-fold predictions need).

    Raises
    ------
    FoldLeakageError
        A site on both sides of a fold (the message names the fold and the sites), a row on both
        sides, an index out of range or, with ``require_cover``, a row tested never or twice.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.models.cv import check_no_leakage
    >>> check_no_leakage([(np.array([0, 1]), np.array([2]))], ["A", "A", "B"])
    >>> check_no_leakage([(np.array([0]), np.array([1, 2]))], ["A", "A", "B"])
    Traceback (most recent call last):
    ...
    unique_xr.errors.FoldLeakageError: fold 0 leaks: site(s) ['A'] are in both its training and its test rows. ...
    """
    codes, uniques = _site_codes(sites)
    n = codes.size
    times_tested = np.zeros(n, dtype=np.int64)
    for k, (train, test) in enumerate(folds):
        train = np.asarray(train, dtype=np.intp).ravel()
        test = np.asarray(test, dtype=np.intp).ravel()
        for side, idx in (("training", train), ("test", test)):
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise FoldLeakageError(
                    f"fold {k}: {side} indices out of range for {n} rows (min {idx.min()}, max {idx.max()}); "
                    "folds must hold positions into the same table as sites."
                )
        both = np.intersect1d(codes[train], codes[test])
        if both.size:
            shown = [str(s) for s in uniques[both[:10]]]
            raise FoldLeakageError(
                f"fold {k} leaks: site(s) {shown}{' ...' if both.size > 10 else ''} are in both its training and its "
                "test rows. Build folds with site_folds() or spatial_block_folds(), which group rows by site."
            )
        if np.intersect1d(train, test).size:
            raise FoldLeakageError(f"fold {k}: some rows are in both its training and its test indices.")
        np.add.at(times_tested, test, 1)
    if require_cover and (times_tested != 1).any():
        never, twice = int((times_tested == 0).sum()), int((times_tested > 1).sum())
        raise FoldLeakageError(
            f"the test sets do not partition the rows: {never} row(s) are never tested and {twice} tested more "
            "than once. Out-of-fold predictions need every row in exactly one test set."
        )


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
    >>> from unique_xr.models.cv import metrics
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
    >>> from unique_xr.models.cv import aggregate
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
    >>> from unique_xr.models.cv import score_table
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
