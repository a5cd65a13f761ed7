r"""Forest site tables for the annual GPP/NEE CNN: the paper's inputs and the annual flux sums.

The gap-tolerant CNN (Wu, EGU2020-2135) reads seven inputs per forest location: NDVI, EVI,
evapotranspiration (ET), daytime and night-time land-surface temperature (LSTD, LSTN),
precipitation and the forest type. The FLUXNET2015 tables in ``shared/data/towers`` carry a
subset, so :func:`forest_table` maps what they have onto named inputs and says which column
stands in for which input (:data:`SOURCE_COLUMNS`; the inputs, their units and the forest types are the
CNN's schema, :mod:`unique_xr.models.cnn.schema`, which the model card repeats):

=============  ==================================================================  ==========
input          taken from (first column present)                                   paper input
=============  ==================================================================  ==========
``lai``        ``LAI`` (remote-sensing LAI of the MetaFlux table)                  NDVI
``evi``        ``EVI``                                                             EVI
``et``         ``LE_CORR`` / ``LE_F_MDS`` / ``LE`` (tower latent heat) -> mm d-1   ET
``t_day``      ``TA_ERA_DAY`` / ``TA_F_DAY`` (daytime air temperature)             LSTD
``t_night``    ``TA_ERA_NIGHT`` / ``TA_F_NIGHT``, else derived (below)             LSTN
``precip``     ``P_ERA`` / ``P_F``                                                 precipitation
=============  ==================================================================  ==========

Where the table has no night-time mean (the MetaFlux table has none), it follows from the
24-hour mean :math:`\bar T`, the daytime mean :math:`T_d` and the astronomical day length
:math:`N` (hours) at the site's latitude:

.. math::

    T_n = \frac{24\,\bar T - N\,T_d}{24 - N},

left missing where the night is shorter than :data:`MIN_NIGHT_HOURS` (polar summer), where the
difference would amplify rounding noise. ET is latent heat over the latent heat of vaporisation,
:math:`ET = LE \cdot 86400 / 2.45\times10^6` mm d-1.

Forests are the IGBP forest classes :data:`FOREST_TYPES`. Annual sums (:func:`annual_fluxes`)
are in g C m-2 yr-1 with NEE < 0 meaning uptake by the ecosystem (the FLUXNET convention).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from unique_xr.models.cnn.schema import ANNUAL_UNITS, FOREST_TYPES, INPUTS
from unique_xr.towers._common import TowerDataError
from unique_xr.towers.sites import igbp_code

__all__ = [
    "ANNUAL_UNITS",
    "FOREST_TYPES",
    "INPUTS",
    "SOURCE_COLUMNS",
    "annual_fluxes",
    "day_length_hours",
    "forest_table",
    "read_forest_table",
]

#: Nights shorter than this (hours) leave ``t_night`` missing.
MIN_NIGHT_HOURS = 3.0
#: Latent heat of vaporisation (J kg-1) used to turn latent heat into ET.
LATENT_HEAT = 2.45e6

#: The tower columns that stand in for each input of the CNN's schema (:data:`INPUTS`), in order of preference.
SOURCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "lai": ("LAI",),
    "evi": ("EVI",),
    "et": ("LE_CORR", "LE_F_MDS", "LE"),
    "t_day": ("TA_ERA_DAY", "TA_F_DAY"),
    "t_night": ("TA_ERA", "TA_F"),
    "precip": ("P_ERA", "P_F"),
}
#: Night-time means given by the official FLUXNET2015 MM/DD files; used as they are when present.
NIGHT_COLUMNS: tuple[str, ...] = ("TA_ERA_NIGHT", "TA_F_NIGHT")
#: Targets: name -> source columns (g C m-2 d-1, daily means).
TARGETS: dict[str, tuple[str, ...]] = {"gpp": ("GPP_NT_VUT_REF", "GPP_NT_VUT_MEAN", "GPP"),
                                       "nee": ("NEE_VUT_REF", "NEE_VUT_MEAN", "NEE")}
_IGBP_COLUMNS = ("igbp", "PFT", "IGBP")
_LAT_COLUMNS = ("lat", "Lat", "LAT", "latitude")


def day_length_hours(lat: np.ndarray, day_of_year: np.ndarray) -> np.ndarray:
    """Astronomical day length (hours) at latitude ``lat`` (degrees) on ``day_of_year`` (1-366).

    Solar declination from Cooper's formula; 0 in polar night and 24 in polar day.

    Examples
    --------
    >>> from unique_xr.towers.forest import day_length_hours
    >>> [round(float(h), 1) for h in day_length_hours([0.0, 60.0, 60.0], [80, 172, 355])]
    [12.0, 18.5, 5.5]
    """
    lat = np.radians(np.asarray(lat, dtype=float))
    doy = np.asarray(day_of_year, dtype=float)
    decl = np.radians(23.44) * np.sin(2 * np.pi * (284 + doy) / 365)
    cos_h = np.clip(-np.tan(lat) * np.tan(decl), -1.0, 1.0)
    return 24.0 * np.arccos(cos_h) / np.pi


def _first(columns: Sequence[str], candidates: Sequence[str]) -> str | None:
    return next((c for c in candidates if c in columns), None)


def forest_table(df: pd.DataFrame, *, forests_only: bool = True) -> pd.DataFrame:
    """A FLUXNET-named multi-site table (monthly or daily) as the CNN's named inputs and targets.

    Parameters
    ----------
    df
        As returned by :func:`~unique_xr.towers.read_fluxnet_table`: ``site``, ``time`` and FLUXNET
        columns, plus the site's IGBP class (``PFT``/``IGBP``/``igbp``) and latitude
        (``Lat``/``lat``). ``df.attrs["resolution"]`` (``"MM"`` or ``"DD"``) is checked when present.
    forests_only
        Keep only rows of the IGBP forest classes :data:`FOREST_TYPES` (the default).

    Returns
    -------
    pandas.DataFrame
        ``site, time, igbp, lat`` and the inputs of :data:`INPUTS` (NaN where the table has a gap),
        then ``gpp`` and ``nee`` in g C m-2 d-1 where the table has them. ``attrs["inputs"]`` records
        the column each input came from (``None`` when the table has none: the input is all
        missing, and a :class:`UserWarning` says so); ``attrs["units"]`` the units.

    Raises
    ------
    TowerDataError
        No site/time/IGBP column, or a resolution other than monthly or daily.
    """
    cols = list(df.columns)
    missing = [c for c in ("site", "time") if c not in cols]
    igbp_col, lat_col = _first(cols, _IGBP_COLUMNS), _first(cols, _LAT_COLUMNS)
    if missing or igbp_col is None:
        raise TowerDataError(
            f"A forest table needs 'site', 'time' and an IGBP class column ({'/'.join(_IGBP_COLUMNS)}); "
            f"the table has {cols[:25]}{' ...' if len(cols) > 25 else ''}. Read it with "
            "unique_xr.towers.read_fluxnet_table, or lay it out like the MetaFlux monthly table "
            "(TIMESTAMP, Site, Lat, Lon, PFT, ...)."
        )
    resolution = df.attrs.get("resolution")
    if resolution not in (None, "MM", "DD"):
        raise TowerDataError(
            f"The table's time step is {resolution!r}; forest tables are monthly ('MM') or daily ('DD'). "
            "Aggregate half-hourly or hourly records to days first (unique_xr.towers.daily_gpp)."
        )
    out = pd.DataFrame({"site": df["site"].astype(str).to_numpy(), "time": pd.to_datetime(df["time"]).to_numpy()})
    out["igbp"] = igbp_code(df[igbp_col].astype("string")).to_numpy()
    out["lat"] = df[lat_col].to_numpy(dtype=float) if lat_col else np.nan
    used: dict[str, str | None] = {}
    absent = []
    for name in INPUTS:
        col = _first(cols, SOURCE_COLUMNS[name])
        used[name] = col
        if col is None:
            out[name] = np.nan
            absent.append(name)
            continue
        values = df[col].to_numpy(dtype=float)
        if name == "et":
            values = values * 86400.0 / LATENT_HEAT
        elif name == "t_night" and _first(cols, NIGHT_COLUMNS):
            used[name] = _first(cols, NIGHT_COLUMNS)
            out[name] = df[used[name]].to_numpy(dtype=float)
            continue
        elif name == "t_night":
            values = _night_temperature(values, out, df, cols)
            if values is None:
                out[name] = np.nan
                used[name] = None
                absent.append(name)
                continue
            used[name] = f"{col} & {_first(cols, SOURCE_COLUMNS['t_day'])} & day length"
        out[name] = values
    for name, candidates in TARGETS.items():
        col = _first(cols, candidates)
        if col is not None:
            out[name] = df[col].to_numpy(dtype=float)
            used[name] = col
    if "nee" in out and f"{used['nee']}_QC" in cols:
        out["nee_qc"] = df[f"{used['nee']}_QC"].to_numpy(dtype=float)
    if absent:
        warnings.warn(
            f"The table has no column for input(s) {absent} (looked for "
            + "; ".join(f"{n}: {'/'.join(SOURCE_COLUMNS[n])}" for n in absent)
            + "); they are treated as missing everywhere.",
            UserWarning,
            stacklevel=2,
        )
    if forests_only:
        out = out[out["igbp"].isin(FOREST_TYPES)].reset_index(drop=True)
    out.attrs = {"inputs": used, "resolution": resolution,
                 "units": {**{n: i["units"] for n, i in INPUTS.items()}, "gpp": "g m-2 d-1", "nee": "g m-2 d-1"}}
    return out


def _night_temperature(mean: np.ndarray, out: pd.DataFrame, df: pd.DataFrame, cols: list[str]) -> np.ndarray | None:
    day_col = _first(cols, SOURCE_COLUMNS["t_day"])
    if day_col is None or out["lat"].isna().all():
        return None
    t_day = df[day_col].to_numpy(dtype=float)
    times = pd.DatetimeIndex(out["time"])
    resolution = df.attrs.get("resolution")
    if resolution is None:  # attrs lost (merge, concat): monthly records are a month apart
        frame = pd.DataFrame({"site": out["site"], "time": times}).drop_duplicates().sort_values(["site", "time"])
        step = frame.groupby("site")["time"].diff().median()
        resolution = "MM" if pd.notna(step) and step >= pd.Timedelta(days=28) else "DD"
    if resolution == "MM":  # the middle of the month stands for the month
        doy = (times + pd.to_timedelta(times.days_in_month / 2, unit="D")).dayofyear.to_numpy()
    else:
        doy = times.dayofyear.to_numpy()
    hours = day_length_hours(out["lat"].to_numpy(), doy)
    night = 24.0 - hours
    with np.errstate(invalid="ignore", divide="ignore"):
        t_night = (24.0 * mean - hours * t_day) / night
    t_night = np.where(hours == 0.0, mean, t_night)  # polar night: the whole day is night
    return np.where(night >= MIN_NIGHT_HOURS, t_night, np.nan)


def read_forest_table(path: str | os.PathLike, *, forests_only: bool = True) -> pd.DataFrame:
    """Read a FLUXNET-named multi-site table (the MetaFlux monthly layout) as :func:`forest_table`.

    Examples
    --------
    >>> from unique_xr.towers.forest import read_forest_table
    >>> t = read_forest_table("../shared/data/towers/fluxnet2015_monthly_metaflux_206sites/"
    ...                       "metaflux_fluxnet2015_monthly.csv.gz")  # doctest: +SKIP
    """
    from unique_xr.towers.fluxnet import read_fluxnet_table

    df = read_fluxnet_table(path)
    out = forest_table(df, forests_only=forests_only)
    out.attrs["source"] = os.fspath(path)
    return out


def annual_fluxes(table: pd.DataFrame, *, min_months: int = 12, min_quality: float = 0.5) -> pd.DataFrame:
    """Annual GPP and NEE sums per site-year from a monthly or daily :func:`forest_table`.

    Each month's mean daily flux is multiplied by the month's length (a daily table is first
    averaged per month). A site-year gets a sum only when ``min_months`` months have a value
    (all 12 by default), since a sum over a partial year is not an annual flux.

    A sum is *usable* as a training or evaluation target when both fluxes have their months, the
    year's mean NEE quality flag (``NEE_VUT_REF_QC``: the share of measured or good-quality
    gap-filled records) is at least ``min_quality``, and annual GPP is positive. The shared
    MetaFlux table has years that fail this: ``CA-Man`` 2005 holds one constant GPP of
    -1.6 g C m-2 d-1 all year with a quality of 0.02, ``IT-Ren`` 2000, 2001 and 2004 a near-zero constant.

    Returns
    -------
    pandas.DataFrame
        ``site, year, igbp, gpp, nee`` (g C m-2 yr-1, NEE < 0 is uptake; NaN where months are
        missing), ``gpp_months``, ``nee_months`` (months with a value), ``quality`` (mean NEE
        quality flag, NaN when the table has none) and ``usable``.
    """
    if not 1 <= min_months <= 12:
        raise TowerDataError(f"min_months must be within 1..12; got {min_months}.")
    if not 0.0 <= min_quality <= 1.0:
        raise TowerDataError(f"min_quality is a share of good records within 0..1; got {min_quality}.")
    targets = [t for t in TARGETS if t in table.columns]
    if not targets:
        raise TowerDataError(
            f"The table has no flux targets (gpp / nee from {TARGETS['gpp'][0]} / {TARGETS['nee'][0]}); "
            "annual sums need them."
        )
    t = pd.DatetimeIndex(table["time"])
    frame = table[["site", "igbp", *targets]].assign(year=t.year, month=t.month, days=t.days_in_month)
    monthly = frame.groupby(["site", "year", "month"], sort=True).agg(
        igbp=("igbp", "first"), days=("days", "first"), **{name: (name, "mean") for name in targets})
    rows = monthly.reset_index()
    out = rows.groupby(["site", "year"], sort=True).agg(igbp=("igbp", "first")).reset_index()
    for name in targets:
        flux = (rows[name] * rows["days"]).groupby([rows["site"], rows["year"]]).sum(min_count=1)
        months = rows[name].notna().groupby([rows["site"], rows["year"]]).sum()
        # a leap year's or a partial year's sum scales by the days actually covered when min_months < 12
        covered = rows["days"].where(rows[name].notna()).groupby([rows["site"], rows["year"]]).sum()
        year_days = np.where(pd.to_datetime(out["year"].astype(str)).dt.is_leap_year, 366, 365)
        total = flux.to_numpy() * year_days / covered.to_numpy()
        out[name] = np.where(months.to_numpy() >= min_months, total, np.nan)
        out[f"{name}_months"] = months.to_numpy().astype(int)
    if "nee_qc" in table.columns:
        quality = table["nee_qc"].groupby([t.year.rename("year"), table["site"]]).mean()
        out["quality"] = quality.reorder_levels(["site", "year"]).reindex(
            pd.MultiIndex.from_frame(out[["site", "year"]])).to_numpy()
    else:
        out["quality"] = np.nan
    usable = np.ones(len(out), dtype=bool)
    for name in ("gpp", "nee"):
        usable &= out[name].notna().to_numpy() if name in out else False
    usable &= ~(out["quality"] < min_quality).to_numpy()
    if "gpp" in out:
        usable &= (out["gpp"] > 0).to_numpy()
    out["usable"] = usable
    return out
