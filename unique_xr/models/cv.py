"""Site-grouped cross-validation folds (scores of the out-of-fold predictions: :mod:`.scores`).

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

Everything here is numpy and pandas; nothing needs LightGBM or scikit-learn.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from unique_xr.errors import FoldLeakageError, SpecError

__all__ = ["Folds", "check_no_leakage", "inner_split", "site_folds", "spatial_block_folds"]


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
