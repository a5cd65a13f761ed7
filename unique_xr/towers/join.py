"""Join tower GPP with features: from tables keyed by site and date, or sampled from a cube.

* :func:`join_features` merges two site-day tables with the checks a training table needs
  (key types, duplicate keys, overlapping columns, keys that never match);
* :func:`sample_cube` reads a data-layer cube (``time, y, x`` on a :class:`~unique_xr.grid.GridSpec`)
  at tower coordinates and returns the same tidy ``site, date, <variables>`` table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from unique_xr._optional import import_optional
from unique_xr.errors import GridError, MissingVariableError, SpecError
from unique_xr.grid import GridSpec
from unique_xr.towers._common import TowerDataError, local_solar_day

__all__ = ["join_features", "landsat_training_table", "sample_cube"]


# ------------------------------------------------------------------------------------ join
def _key_frame(df: pd.DataFrame, on: tuple[str, ...], name: str) -> pd.DataFrame:
    missing = [k for k in on if k not in df.columns]
    if missing:
        raise MissingVariableError(
            f"The {name} table has no key column(s) {missing}; it has {list(df.columns)[:15]}. Read tower tables "
            "with unique_xr.towers.read_towers, which names the keys 'site' and 'date'."
        )
    out = df
    if "date" in on:
        date = df["date"]
        if not pd.api.types.is_datetime64_any_dtype(date):
            parsed = pd.to_datetime(date, errors="coerce", format="ISO8601")
            if parsed.isna().sum() > date.isna().sum():
                bad = date[parsed.isna() & date.notna()].astype(str).head(3).tolist()
                raise TowerDataError(f"The {name} table's 'date' column has values that are not dates: {bad}.")
            date = parsed
        date = date.astype("datetime64[ns]")
        with_time = date.notna() & (date != date.dt.floor("D"))
        if with_time.any():
            example = date[with_time].iloc[0]
            raise TowerDataError(
                f"The {name} table's 'date' has times of day (e.g. {example}); a site-day join needs days. "
                "read_tower_table keeps the time in 'acquisition_time' and the day in 'date'; or floor them yourself."
            )
        out = df.assign(date=date)
    if "site" in on:
        out = out.assign(site=out["site"].astype("string").str.strip().astype(object))
    return out


def _check_unique(df: pd.DataFrame, on: tuple[str, ...], name: str) -> None:
    dup = df.duplicated(list(on), keep=False)
    if dup.any():
        examples = df.loc[dup, list(on)].drop_duplicates().head(3).to_dict("records")
        raise TowerDataError(
            f"The {name} table has {int(dup.sum())} rows with repeated keys {list(on)}, e.g. {examples}. A join "
            "would multiply rows. Drop or aggregate the duplicates first (e.g. df.drop_duplicates(...) or "
            "df.groupby(list(on)).mean())."
        )


def join_features(
    gpp: pd.DataFrame,
    features: pd.DataFrame,
    *,
    on: Sequence[str] = ("site", "date"),
    how: Literal["left", "inner"] = "left",
    validate: Literal["one_to_one", "many_to_one"] = "one_to_one",
    suffixes: tuple[str, str] | None = None,
) -> pd.DataFrame:
    """Join a tower GPP table with a feature table on site and date (or on site alone).

    Parameters
    ----------
    gpp
        The target table, e.g. from :func:`~unique_xr.towers.daily_gpp` (``site, date, gpp, ...``).
    features
        Satellite or meteorological values keyed the same way (a tower-pixel table from
        :func:`~unique_xr.towers.read_tower_table`, :func:`sample_cube` output, tower or reanalysis
        meteorology), or site metadata with ``on=("site",)`` and ``validate="many_to_one"``.
    on
        Key columns. ``date`` columns are compared as days (datetime64); ISO strings are parsed.
    how
        ``"left"`` keeps every GPP row (NaN features where none match); ``"inner"`` only matches.
    validate
        ``"one_to_one"``: keys must be unique in both tables; ``"many_to_one"``: in ``features`` only.
    suffixes
        Suffixes for non-key columns present in both tables; by default such columns are an error,
        since a silent ``_x``/``_y`` pair is rarely what a training table wants.

    Returns
    -------
    pandas.DataFrame
        ``gpp``'s rows (in order) with the feature columns appended. ``attrs``: the union of both
        tables' ``units``, and ``join`` = ``{"on", "how", "n_rows", "n_matched"}``.

    Raises
    ------
    MissingVariableError
        A key column is missing.
    TowerDataError
        Repeated keys, dates with times of day, overlapping columns without ``suffixes``, or no row
        matching at all (the message shows keys from both sides, the usual cause being site ids
        spelt differently or dates shifted).

    Examples
    --------
    >>> import pandas as pd
    >>> from unique_xr.towers import join_features
    >>> gpp = pd.DataFrame({"site": ["CH-Lae"] * 2, "date": pd.to_datetime(["2010-06-01", "2010-06-02"]),
    ...                     "gpp": [9.1, 10.4]})
    >>> modis = pd.DataFrame({"site": ["CH-Lae"], "date": ["2010-06-02"], "ndvi": [0.81]})
    >>> join_features(gpp, modis)["ndvi"].tolist()
    [nan, 0.81]
    """
    on = tuple(on)
    if how not in ("left", "inner"):
        raise SpecError(f"how must be 'left' or 'inner', got {how!r}.")
    if validate not in ("one_to_one", "many_to_one"):
        raise SpecError(f"validate must be 'one_to_one' or 'many_to_one', got {validate!r}.")
    left = _key_frame(gpp, on, "GPP")
    right = _key_frame(features, on, "feature")
    if validate == "one_to_one":
        _check_unique(left, on, "GPP")
    _check_unique(right, on, "feature")
    overlap = sorted((set(left.columns) & set(right.columns)) - set(on))
    if overlap and suffixes is None:
        raise TowerDataError(
            f"Both tables have column(s) {overlap} besides the keys {list(on)}. Drop or rename them in one table, "
            "or pass suffixes=('', '_features') to keep both."
        )
    merged = left.merge(right, on=list(on), how=how, suffixes=suffixes or ("_x", "_y"), indicator=True,
                        validate=validate)
    matched = int((merged["_merge"] == "both").sum())
    if matched == 0 and len(left) and len(right):
        lk = left[list(on)].drop_duplicates().head(3).to_dict("records")
        rk = right[list(on)].drop_duplicates().head(3).to_dict("records")
        raise TowerDataError(
            f"No row of the GPP table ({len(left)} rows) matches the feature table ({len(right)} rows) on {list(on)}. "
            f"GPP keys look like {lk}; feature keys like {rk}. Check site spelling (AT-Neu vs AT_Neu) and the "
            "date range of both tables."
        )
    merged = merged.drop(columns="_merge")
    merged.attrs = {
        **{k: v for k, v in gpp.attrs.items() if k != "units"},
        "units": {**features.attrs.get("units", {}), **gpp.attrs.get("units", {})},
        "join": {"on": list(on), "how": how, "n_rows": len(merged), "n_matched": matched},
    }
    return merged


# -------------------------------------------------------------------------------- sampling
def _sites_frame(sites: Any) -> pd.DataFrame:
    if isinstance(sites, Mapping):
        rows = [{"site": k, "lat": v[0], "lon": v[1]} for k, v in sites.items()]
        return pd.DataFrame(rows)
    if isinstance(sites, pd.DataFrame):
        missing = [c for c in ("site", "lat", "lon") if c not in sites.columns]
        if missing:
            raise MissingVariableError(
                f"sites needs columns site, lat, lon (as from read_site_metadata); missing {missing}, "
                f"has {list(sites.columns)[:10]}."
            )
        out = sites[["site", "lat", "lon"]].copy()
        if out["site"].duplicated().any():
            raise TowerDataError(f"sites lists {sorted(out.loc[out['site'].duplicated(), 'site'])[:5]} more than once.")
        return out.reset_index(drop=True)
    raise SpecError(
        f"sites must be a DataFrame with site, lat, lon or a mapping {{site: (lat, lon)}}, got {type(sites).__name__}."
    )


def _qa_roles() -> set[str]:
    from unique_xr.search.collections import get_collection, list_collections

    return {a.role for name in list_collections() for a in get_collection(name).assets if a.is_qa}


def _masked(ds: xr.Dataset, collection: str | None, qa_options: dict[str, Any]) -> tuple[xr.Dataset, str]:
    """The cube with QA applied when asked and not yet done; and a sentence saying which."""
    qa_vars = sorted(str(v) for v in ds.data_vars if v in _qa_roles())
    if "clear" in ds.data_vars:
        if qa_options:
            raise SpecError(f"The cube is already masked (it has 'clear'); QA options {sorted(qa_options)} "
                            "cannot be applied again. Mask the raw cube instead.")
        return ds, "already masked (the cube has a 'clear' variable)"
    if collection is None:
        if qa_vars:
            raise SpecError(
                f"The cube has QA variable(s) {qa_vars} but no 'clear' variable: it has not been masked. Pass "
                "collection='landsat-c2-l2' (or the cube's collection) to mask it while sampling, or mask it "
                "with unique_xr.load.masks.apply_qa_mask first."
            )
        return ds, "no QA variables; sampled as is"
    from unique_xr.load.masks import apply_qa_mask

    # no global all-masked check: it would read the QA of the whole cube to sample a few pixels
    masked = apply_qa_mask(ds, collection, check_all_masked=False, **qa_options)
    return masked, f"masked here with apply_qa_mask(collection={collection!r})"


def sample_cube(
    ds: xr.Dataset,
    sites: pd.DataFrame | Mapping[str, tuple[float, float]],
    *,
    method: Literal["nearest", "linear"] = "nearest",
    collection: str | None = None,
    drop_outside: bool = False,
    local_day: bool = True,
    **qa_options: Any,
) -> pd.DataFrame:
    """Sample a data-layer cube at tower locations into a tidy ``site, date, <variables>`` table.

    Tower latitude/longitude are transformed into the cube's CRS (pyproj, from the cube's
    ``spatial_ref`` via :meth:`GridSpec.from_xarray <unique_xr.grid.GridSpec.from_xarray>`), the
    pixels are picked with one vectorised indexing per variable, and everything is computed in a
    single Dask computation that reads only the chunks holding those pixels.

    Parameters
    ----------
    ds
        A cube with dims ``(time, y, x)`` (static ``(y, x)`` variables are repeated on every date)
        and the grid coordinates written by :meth:`GridSpec.attach <unique_xr.grid.GridSpec.attach>`.
    sites
        ``site, lat, lon`` (e.g. :func:`~unique_xr.towers.read_site_metadata`), or ``{site: (lat, lon)}``.
    method
        ``"nearest"``: the pixel containing the tower. ``"linear"``: bilinear between the four
        surrounding pixel centres for float variables (NaN if any is NaN; towers within half a
        pixel of the edge use the edge pixels); integer variables (QA, classes) stay nearest.
    collection
        QA masks. The cube is taken as masked when it has a ``clear`` variable (the output of
        :func:`unique_xr.load.masks.apply_qa_mask`). Otherwise, with ``collection`` (e.g.
        ``"landsat-c2-l2"``, ``"mcd43a4"``) it is masked here, lazily, without the whole-cube
        all-masked check; without it a cube that still holds QA variables is an error, so raw
        cloudy pixels never reach a training table unnoticed.
    drop_outside
        Drop towers outside the grid instead of raising.
    local_day
        ``date`` is the local solar day at each tower, ``floor(time + lon / 15 h)``, for instantaneous
        acquisition times (Landsat, in UTC); times at exactly midnight are taken as day stamps
        (daily composites) and kept. ``False``: the UTC day.
    **qa_options
        Passed to :func:`~unique_xr.load.masks.apply_qa_mask` (``snow=False``...).

    Returns
    -------
    pandas.DataFrame
        One row per site and time step: ``site``, ``date`` (datetime64 day), ``time`` (the cube's
        time) and one float column per variable with ``y, x`` dims (QA variables and ``clear``
        included as they are). ``attrs``: ``units`` from the variables' ``units`` attributes,
        ``qa`` (how masking was handled), ``method``, ``dropped_sites``.

    Raises
    ------
    GridError
        The cube has no grid coordinates, or towers lie outside the grid (named, with the grid's
        lon/lat bounds), unless ``drop_outside``.
    SpecError
        A cube with QA variables but no ``clear`` and no ``collection``; bad ``method``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from unique_xr.grid import GridSpec
    >>> from unique_xr.towers import sample_cube
    >>> grid = GridSpec.from_bbox((8.35, 47.47, 8.38, 47.49), resolution=30.0)
    >>> ny, nx = grid.shape
    >>> ds = grid.attach(xr.Dataset({"ndvi": (("time", "y", "x"), np.full((2, ny, nx), 0.7, "float32"))},
    ...                             coords={"time": np.array(["2010-06-01", "2010-06-17"], "datetime64[ns]")}))
    >>> sample_cube(ds, {"CH-Lae": (47.4781, 8.365)})[["site", "date", "ndvi"]].shape
    (2, 3)
    """
    if method not in ("nearest", "linear"):
        raise SpecError(f"method must be 'nearest' or 'linear', got {method!r}.")
    if "time" not in ds.dims:
        raise GridError(f"sample_cube needs a cube with a 'time' dimension; dims are {dict(ds.sizes)}.")
    grid = GridSpec.from_xarray(ds)
    table = _sites_frame(sites)
    ds, qa_note = _masked(ds, collection, qa_options)
    from pyproj import Transformer

    xs, ys = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True).transform(
        table["lon"].to_numpy(dtype="float64"), table["lat"].to_numpy(dtype="float64"))
    left, bottom, right, top = grid.bounds
    inside = np.isfinite(xs) & np.isfinite(ys) & (xs >= left) & (xs < right) & (ys > bottom) & (ys <= top)
    dropped = table.loc[~inside, "site"].tolist()
    if dropped and not drop_outside:
        w, s, e, n = grid.bounds_latlon
        shown = table.loc[~inside].head(10).to_dict("records")
        raise GridError(
            f"{len(dropped)} tower(s) lie outside the cube's grid (or have no coordinates): {shown}. The grid "
            f"covers lon {w:.4f}..{e:.4f}, "
            f"lat {s:.4f}..{n:.4f} ({grid.crs}). Pass drop_outside=True to skip them, or load a larger area."
        )
    table, xs, ys = table.loc[inside].reset_index(drop=True), xs[inside], ys[inside]
    variables = [str(v) for v in ds.data_vars if {"y", "x"} <= set(ds[v].dims)]
    if table.empty or not variables:
        out = pd.DataFrame(columns=["site", "date", "time", *variables])
        out.attrs.update({"qa": qa_note, "method": method, "dropped_sites": dropped, "units": {}})
        return out
    cube = ds[variables]
    col = np.floor((xs - left) / grid.resolution).astype(int)
    row = np.floor((top - ys) / grid.resolution).astype(int)
    linear = [v for v in variables if method == "linear" and cube[v].dtype.kind == "f"]
    nearest = [v for v in variables if v not in linear]  # QA flags and classes are never interpolated
    parts = []
    if nearest:
        parts.append(cube[nearest].isel(x=xr.DataArray(col, dims="site"), y=xr.DataArray(row, dims="site")))
    if linear:
        import_optional("scipy", purpose="sample_cube(method='linear')")
        xi = xr.DataArray(np.clip(xs, grid.x[0], grid.x[-1]), dims="site")
        yi = xr.DataArray(np.clip(ys, grid.y[-1], grid.y[0]), dims="site")
        parts.append(cube[linear].interp(x=xi, y=yi, method="linear"))
    parts = [p.drop_vars([c for c in ("x", "y", "spatial_ref") if c in p.coords]) for p in parts]
    points = xr.merge(parts, compat="override", join="exact") if len(parts) > 1 else parts[0]
    points = points.compute()  # one computation for every variable and tower
    frame = points.transpose("site", "time", ...).to_dataframe()
    frame = frame.reset_index()
    frame["site"] = table["site"].to_numpy()[frame["site"].to_numpy()]
    times = pd.Series(pd.to_datetime(frame["time"]).astype("datetime64[ns]"))
    if local_day:
        lon_by_site = dict(zip(table["site"], table["lon"]))
        lon = frame["site"].map(lon_by_site).to_numpy(dtype="float64")
        day_stamp = times == times.dt.floor("D")
        date = local_solar_day(times, lon).where(~day_stamp, times)
    else:
        date = times.dt.floor("D")
    head = pd.DataFrame({"site": frame["site"].to_numpy(), "date": date.to_numpy(), "time": times.to_numpy()})
    out = pd.concat([head, frame[variables].reset_index(drop=True)], axis=1)
    out.attrs.update({
        "units": {v: ds[v].attrs["units"] for v in variables if "units" in ds[v].attrs},
        "qa": qa_note,
        "method": method,
        "dropped_sites": dropped,
        "grid": grid.to_dict(),
    })
    return out


# ------------------------------------------------------------------------- training tables
#: columns of a daily tower table carried onto each Landsat row (target, baseline, met, site data)
_DAILY_CARRIED = ("gpp_obs", "gpp_pmodel", "gpp_qc", "lat", "lon", "elv", "igbp_land_use", "igbp",
                  "t2m_era5", "ssrd_era5", "pcwd_era5", "tower_temp", "tower_vpd", "tower_ppfd", "tower_prec")


def landsat_training_table(landsat: Any, daily: Any) -> pd.DataFrame:
    """The GPP_L training table: Landsat observations at towers joined with the towers' daily GPP.

    Each Landsat row (raw C2 L2 DN and ``QA_PIXEL``, as in ``landsat7_c2l2_at_towers.csv.gz``)
    gets the same site-day's observed GPP, P-model GPP, meteorology and site data from a daily
    tower table (as ``daily_gpp_x_modis_x_met.csv.gz``). Rows without a matching day are dropped;
    two Landsat rows on one site-day (overlapping paths) both stay.

    Parameters
    ----------
    landsat, daily
        Paths or DataFrames from :func:`~unique_xr.towers.read_tower_table`.
    """
    from unique_xr.towers.tables import check_landsat_dn, read_tower_table

    left = landsat if isinstance(landsat, pd.DataFrame) else read_tower_table(landsat)
    right = daily if isinstance(daily, pd.DataFrame) else read_tower_table(daily)
    if left.empty:
        raise TowerDataError("The Landsat table has no rows: there is nothing to join.")
    check_landsat_dn(left)
    keep = ["site", "date", *[c for c in _DAILY_CARRIED if c in right.columns and c not in left.columns]]
    return join_features(left, right[keep], how="inner", validate="many_to_one")
