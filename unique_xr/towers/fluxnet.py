"""Readers for eddy-covariance files that use FLUXNET variable names.

* :func:`read_fluxnet`: one site's FLUXNET2015 / FluxDataKit / ONEFlux ``FULLSET``, ``SUBSET`` or
  ``ERAI`` CSV at any resolution (HH, HR, DD, WW, MM, YY);
* :func:`read_fluxnet_table`: multi-site tables with a site column and FLUXNET names (the agds daily
  subsets, ``siteid, TIMESTAMP, ...``; the MetaFlux monthly table, ``Site, TIMESTAMP, ...``);
* :func:`read_bigleaf_halfhourly`: the half-hourly FLUXNET2015 months shipped with the bigleaf R
  package, renamed to FLUXNET names and units so QC treats them like any HH file.

All return a :class:`pandas.DataFrame` with ``site`` and ``time`` (start of the period, local
standard time as in FLUXNET) first, the FLUXNET columns unchanged after them, NaN for missing
values (-9999, NA), and ``df.attrs`` with ``resolution``, ``site``, ``source`` and ``units``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from unique_xr.errors import MissingVariableError
from unique_xr.schema import GPP_UNITS
from unique_xr.towers._common import (
    TowerDataError,
    as_path,
    normalise_sites,
    read_csv,
    replace_fluxnet_missing,
    site_column,
)

__all__ = [
    "RESOLUTIONS",
    "FluxnetFileName",
    "fluxnet_units",
    "parse_fluxnet_filename",
    "read_bigleaf_halfhourly",
    "read_fluxnet",
    "read_fluxnet_table",
]

#: FLUXNET time resolutions: half-hourly, hourly, daily, weekly, monthly, yearly.
RESOLUTIONS: tuple[str, ...] = ("HH", "HR", "DD", "WW", "MM", "YY")

_FILENAME = re.compile(
    r"^(?P<prefix>[A-Z]+)_(?P<site>[A-Z]{2}-[A-Za-z0-9]{3})_(?P<product>[A-Z0-9]+)_"
    r"(?P<dataset>FULLSET|SUBSET|ERAI)_(?P<resolution>HH|HR|DD|WW|MM|YY)_"
    r"(?P<first>\d{4})[-_](?P<last>\d{4})_(?P<version>\d+-\d+)\.csv(?:\.gz)?$"
)

_TIME_FORMATS = {12: "%Y%m%d%H%M", 8: "%Y%m%d", 6: "%Y%m", 4: "%Y"}
_TIMESTAMP_COLUMNS = ("TIMESTAMP", "TIMESTAMP_START", "TIMESTAMP_END")

_W = "W m-2"
#: Units of FLUXNET variable base names that do not depend on the resolution (FLUXNET2015 FULLSET
#: product page, fluxnet.org/data/fluxnet2015-dataset/fullset-data-product/; means at every resolution).
_BASE_UNITS: dict[str, str] = {
    "TA": "degC", "TS": "degC", "TMIN": "degC", "TMAX": "degC", "T_SONIC": "degC",
    "SW_IN": _W, "SW_OUT": _W, "SW_DIF": _W, "LW_IN": _W, "LW_OUT": _W, "NETRAD": _W,
    "G": _W, "H": _W, "LE": _W,
    "PPFD_IN": "umol m-2 s-1", "PPFD_OUT": "umol m-2 s-1", "PPFD_DIF": "umol m-2 s-1",
    "VPD": "hPa", "PA": "kPa", "WS": "m s-1", "USTAR": "m s-1", "WD": "degree",
    "CO2": "umol mol-1", "SWC": "%", "RH": "%",
    "LAI": "m2 m-2", "FPAR": "1",  # FluxDataKit's MODIS-derived columns
}
#: Carbon fluxes: umol CO2 m-2 s-1 at HH/HR; g C m-2 d-1 (daily mean) at DD, WW, MM; g C m-2 yr-1 at YY.
_CARBON_UNITS = {"HH": "umol m-2 s-1", "HR": "umol m-2 s-1", "DD": GPP_UNITS, "WW": GPP_UNITS, "MM": GPP_UNITS,
                 "YY": "g m-2 yr-1"}
#: Precipitation: a sum per period at HH/HR, mm per day at DD, WW, MM (daily mean), mm per year at YY.
_PRECIP_UNITS = {"HH": "mm", "HR": "mm", "DD": "mm d-1", "WW": "mm d-1", "MM": "mm d-1", "YY": "mm yr-1"}

#: bigleaf column -> (FLUXNET name, factor to FLUXNET units). Source: bigleaf R/datasets_description.r.
_BIGLEAF_NAMES: dict[str, tuple[str, float]] = {
    "Tair": ("TA_F", 1.0), "Tair_qc": ("TA_F_QC", 1.0),
    "PPFD": ("PPFD_IN", 1.0), "PPFD_qc": ("PPFD_IN_QC", 1.0),
    "VPD": ("VPD_F", 10.0), "VPD_qc": ("VPD_F_QC", 1.0),  # kPa -> hPa
    "pressure": ("PA_F", 1.0),
    "precip": ("P_F", 1.0), "precip_qc": ("P_F_QC", 1.0),
    "ustar": ("USTAR", 1.0),
    "wind": ("WS_F", 1.0), "wind_qc": ("WS_F_QC", 1.0),
    "Ca": ("CO2_F_MDS", 1.0), "Ca_qc": ("CO2_F_MDS_QC", 1.0),
    "LW_up": ("LW_OUT", 1.0), "LW_down": ("LW_IN_F", 1.0),
    "Rn": ("NETRAD", 1.0),
    "LE": ("LE_F_MDS", 1.0), "LE_qc": ("LE_F_MDS_QC", 1.0),
    "H": ("H_F_MDS", 1.0), "H_qc": ("H_F_MDS_QC", 1.0),
    "G": ("G_F_MDS", 1.0), "G_qc": ("G_F_MDS_QC", 1.0),
    "NEE": ("NEE_VUT_USTAR50", 1.0), "NEE_qc": ("NEE_VUT_USTAR50_QC", 1.0),
    "GPP": ("GPP_NT_VUT_USTAR50", 1.0),
    "Reco": ("RECO_NT_VUT_USTAR50", 1.0),
}
_BIGLEAF_TIME = ("year", "month", "doy", "hour")
_BIGLEAF_FILENAME = re.compile(r"^(?P<cc>[A-Z]{2})_(?P<code>[A-Za-z0-9]{3})_[A-Za-z]{3}_\d{4}\.csv(?:\.gz)?$")


@dataclass(frozen=True, kw_only=True)
class FluxnetFileName:
    """The parts of a standard FLUXNET file name, ``FLX_<SITE>_<PRODUCT>_<DATASET>_<RES>_<Y1>-<Y2>_<VER>.csv``.

    FluxDataKit writes ``_<Y1>_<Y2>_`` (underscore between the years); both are accepted.
    """

    prefix: str
    site: str
    product: str
    dataset: str
    resolution: str
    first_year: int
    last_year: int
    version: str


def parse_fluxnet_filename(name: str | os.PathLike) -> FluxnetFileName | None:
    """Parse a standard FLUXNET file name; ``None`` when ``name`` does not follow the convention.

    Examples
    --------
    >>> from unique_xr.towers.fluxnet import parse_fluxnet_filename
    >>> parse_fluxnet_filename("FLX_FR-Pue_FLUXNET2015_FULLSET_MM_2007-2014_2-3.csv").resolution
    'MM'
    >>> parse_fluxnet_filename("FLX_CH-Lae_FLUXDATAKIT_FULLSET_DD_2004_2014_2-3.csv").site
    'CH-Lae'
    >>> parse_fluxnet_filename("towers.csv") is None
    True
    """
    m = _FILENAME.match(Path(name).name)
    if m is None:
        return None
    g = m.groupdict()
    return FluxnetFileName(prefix=g["prefix"], site=g["site"], product=g["product"], dataset=g["dataset"],
                           resolution=g["resolution"], first_year=int(g["first"]), last_year=int(g["last"]),
                           version=g["version"])


def _base_name(column: str) -> str | None:
    """The longest known variable base name that ``column`` starts with (``TA_F_MDS`` -> ``TA``)."""
    best = None
    for base in (*_BASE_UNITS, "NEE", "GPP", "RECO", "P"):
        if (column == base or column.startswith(base + "_")) and (best is None or len(base) > len(best)):
            best = base
    return best


def fluxnet_units(columns: Iterable[str], resolution: str) -> dict[str, str]:
    """Units of the FLUXNET columns in ``columns`` at ``resolution`` (columns not known are left out).

    ``*_QC`` columns are ``"1"``: flags 0-3 at HH/HR (0 measured, 1 good, 2 medium, 3 poor gap-fill),
    the fraction of measured or good-quality gap-filled records at DD to YY. Uncertainties, standard
    deviations and percentiles (``_RANDUNC``, ``_SE``, ``_SD``, ``_05``...) share their variable's units.

    Examples
    --------
    >>> from unique_xr.towers.fluxnet import fluxnet_units
    >>> u = fluxnet_units(["GPP_NT_VUT_REF", "NEE_VUT_REF_QC", "P_F", "VPD_F", "PPFD_IN"], "YY")
    >>> u["GPP_NT_VUT_REF"], u["NEE_VUT_REF_QC"], u["P_F"], u["VPD_F"], u["PPFD_IN"]
    ('g m-2 yr-1', '1', 'mm yr-1', 'hPa', 'umol m-2 s-1')
    """
    if resolution not in RESOLUTIONS:
        raise TowerDataError(f"Unknown FLUXNET resolution {resolution!r}; expected one of {RESOLUTIONS}.")
    units: dict[str, str] = {}
    for col in columns:
        if col in _TIMESTAMP_COLUMNS or col.endswith(("_N", "_METHOD")):
            continue
        base = _base_name(col)
        if base is None:
            continue
        if col.endswith("_QC"):
            units[col] = "1"
        elif base in ("NEE", "GPP", "RECO"):
            units[col] = _CARBON_UNITS[resolution]
        elif base == "P":
            units[col] = _PRECIP_UNITS[resolution]
        else:
            units[col] = _BASE_UNITS[base]
    return units


# ------------------------------------------------------------------------------ timestamps
def _parse_timestamps(values: pd.Series, *, source: str, column: str) -> tuple[pd.Series, int]:
    """FLUXNET timestamps (``YYYYMMDDHHMM``, ``YYYYMMDD``, ``YYYYMM``, ``YYYY`` or ISO dates) -> datetime64."""
    text = values.astype("string").str.strip()
    text = text.str.replace(r"\.0+$", "", regex=True)  # integers that went through a float column
    width_counts = text.str.len().value_counts()
    if text.isna().any() or len(width_counts) != 1:
        raise TowerDataError(
            f"{source}: column {column!r} must hold timestamps of one width (12, 8, 6 or 4 digits, or ISO "
            f"dates); saw widths {width_counts.to_dict()} and {int(text.isna().sum())} missing values."
        )
    width = int(width_counts.index[0])
    if width == 10 and text.str.match(r"^\d{4}-\d{2}-\d{2}$").all():
        return pd.to_datetime(text, format="%Y-%m-%d").astype("datetime64[ns]"), 8
    if width not in _TIME_FORMATS or not text.str.isdigit().all():
        raise TowerDataError(
            f"{source}: column {column!r} has values like {text.iloc[0]!r}, not FLUXNET timestamps "
            "(YYYYMMDDHHMM at HH/HR, YYYYMMDD at DD/WW, YYYYMM at MM, YYYY at YY)."
        )
    try:
        stamps = pd.to_datetime(text, format=_TIME_FORMATS[width])
    except ValueError as err:
        raise TowerDataError(f"{source}: column {column!r} has invalid {width}-digit timestamps: {err}") from err
    return stamps.astype("datetime64[ns]"), width


def _median_step(times: pd.Series, sites: pd.Series | None) -> pd.Timedelta | None:
    """The median time step within sites, or None with fewer than two distinct times."""
    frame = pd.DataFrame({"t": times.to_numpy(), "s": "" if sites is None else sites.to_numpy()})
    steps = frame.drop_duplicates().sort_values(["s", "t"]).groupby("s")["t"].diff().dropna()
    return None if steps.empty else steps.median()


def _resolution_from(width: int, step: pd.Timedelta | None, has_start: bool) -> str:
    if width == 12:
        return "HR" if step is not None and step >= pd.Timedelta(minutes=45) else "HH"
    if width == 8:
        weekly = has_start or (step is not None and step >= pd.Timedelta(days=5))
        return "WW" if weekly else "DD"
    return {6: "MM", 4: "YY"}[width]


def _time_column(columns: Sequence[str], source: str) -> str:
    for name in ("TIMESTAMP_START", "TIMESTAMP"):
        if name in columns:
            return name
    raise TowerDataError(
        f"{source} has no TIMESTAMP or TIMESTAMP_START column (columns: {list(columns)[:12]}...). "
        "FLUXNET files carry TIMESTAMP_START/TIMESTAMP_END at HH, HR and WW and TIMESTAMP at DD, MM and YY."
    )


def _finish(df: pd.DataFrame, *, site, times: pd.Series, resolution: str, source: str, **attrs) -> pd.DataFrame:
    data = df.drop(columns=[c for c in _TIMESTAMP_COLUMNS if c in df.columns])
    data = replace_fluxnet_missing(data)
    out = pd.concat([pd.DataFrame({"site": site, "time": times.to_numpy()}, index=data.index), data], axis=1)
    out = out.reset_index(drop=True)
    sites = pd.unique(out["site"].dropna())
    out.attrs.update({
        "resolution": resolution,
        "site": str(sites[0]) if len(sites) == 1 else [str(s) for s in sites],
        "source": source,
        "units": fluxnet_units(data.columns, resolution),
        **attrs,
    })
    return out


# ---------------------------------------------------------------------------------- readers
def read_fluxnet(
    path: str | os.PathLike,
    *,
    site: str | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read one site's FLUXNET2015 / FluxDataKit / ONEFlux CSV at HH, HR, DD, WW, MM or YY resolution.

    The resolution and site come from the standard file name
    ``FLX_<SITE>_<FLUXNET2015|FLUXDATAKIT>_<FULLSET|SUBSET>_<RES>_<Y1>-<Y2>_<VER>.csv``; for a
    renamed file the resolution falls back to the timestamp width (``TIMESTAMP_START`` of 12 digits:
    HH or HR by the time step; ``TIMESTAMP`` of 8 digits: DD, or WW with ``TIMESTAMP_START``; 6: MM;
    4: YY) and the site must be passed. Line endings ``\\n``, ``\\r\\n`` and bare ``\\r`` all work.

    Parameters
    ----------
    path
        The CSV file (may be gzip-compressed).
    site
        Site id (``"FR-Pue"``); required when the file name does not carry it, checked against it
        otherwise.
    columns
        Read only these FLUXNET columns (plus the timestamps), to save memory on large HH files.

    Returns
    -------
    pandas.DataFrame
        ``site``, ``time`` (start of each period, datetime64, local standard time), then the file's
        columns unchanged except the ``TIMESTAMP*`` ones (encoded in ``time``); -9999 and NA are NaN.
        ``df.attrs``: ``resolution``, ``site``, ``source`` (file name), ``units`` (column -> unit for
        the variables known to :func:`fluxnet_units`), ``product``, ``dataset``.

    Raises
    ------
    TowerDataError
        No usable timestamp column, timestamps of mixed widths, a resolution in the name that
        contradicts the timestamps, or no site.
    MissingVariableError
        A requested column is not in the file.

    Notes
    -----
    Units follow the FLUXNET2015 FULLSET documentation: GPP, NEE, RECO in umol CO2 m-2 s-1 at HH/HR,
    g C m-2 d-1 (the mean day) at DD, WW and MM, g C m-2 yr-1 at YY; TA degC; VPD hPa; PA kPa;
    SW/LW/NETRAD/LE/H/G W m-2; P mm per period at HH/HR, mm d-1 at DD-MM, mm yr-1 at YY.
    """
    p = as_path(path)
    parsed = parse_fluxnet_filename(p.name)
    if parsed is not None and site is not None and site != parsed.site:
        raise TowerDataError(f"site={site!r} contradicts the file name {p.name!r} (site {parsed.site!r}).")
    site = site if site is not None else (parsed.site if parsed is not None else None)
    if site is None:
        raise TowerDataError(
            f"Cannot tell the site of {p.name!r}: the name does not follow "
            "FLX_<SITE>_<PRODUCT>_<FULLSET|SUBSET>_<RES>_<Y1>-<Y2>_<VER>.csv. Pass site='XX-Yyy'."
        )
    usecols = None
    if columns is not None:
        header = list(read_csv(p, nrows=0).columns)
        missing = [c for c in columns if c not in header]
        if missing:
            raise MissingVariableError(
                f"{p.name} has no column(s) {missing}. Columns there include {header[:15]}... "
                f"({len(header)} in all)."
            )
        usecols = [c for c in header if c in _TIMESTAMP_COLUMNS or c in columns]
    df = read_csv(p, usecols=usecols, dtype={c: "string" for c in _TIMESTAMP_COLUMNS})
    time_col = _time_column(df.columns, p.name)
    times, width = _parse_timestamps(df[time_col], source=p.name, column=time_col)
    step = _median_step(times, None)
    from_stamps = _resolution_from(width, step, time_col == "TIMESTAMP_START")
    resolution = parsed.resolution if parsed is not None else from_stamps
    # HH and HR cannot be told apart in a file with a single record
    ambiguous = {resolution, from_stamps} <= {"HH", "HR"} and step is None
    if resolution != from_stamps and not ambiguous:
        raise TowerDataError(
            f"{p.name}: the name says resolution {resolution} but the {time_col} column "
            f"({width}-digit values, median step {step}) looks like {from_stamps}. The file may have "
            "been renamed; fix the name or the content."
        )
    extra = {} if parsed is None else {"product": parsed.product, "dataset": parsed.dataset}
    return _finish(df, site=site, times=times, resolution=resolution, source=p.name, **extra)


def read_fluxnet_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a multi-site table with a site column, a FLUXNET timestamp and FLUXNET variable names.

    Known layouts: the agds daily FLUXNET2015 subsets (``siteid, TIMESTAMP`` as ISO dates, then
    ``TA_F, SW_IN_F, VPD_F, ..., GPP_NT_VUT_REF, NEE_VUT_REF_QC``) and the MetaFlux monthly table
    (``split, TIMESTAMP`` as ``YYYYMM``, ``Site, Lat, Lon, PFT, ...``). The resolution comes from
    the timestamp width and step, as in :func:`read_fluxnet`.

    Returns
    -------
    pandas.DataFrame
        ``site``, ``time`` first (the site column renamed to ``site``), the other columns
        unchanged; ``df.attrs`` as in :func:`read_fluxnet` with ``site`` a list of the sites.
    """
    p = as_path(path)
    df = read_csv(p, dtype={c: "string" for c in _TIMESTAMP_COLUMNS})
    site_col = site_column(df.columns)
    if site_col is None:
        raise TowerDataError(
            f"{p.name} has FLUXNET timestamps but no site column (looked for siteid, sitename, Site, site). "
            "For a single-site FLUXNET file use read_fluxnet(path, site='XX-Yyy')."
        )
    time_col = _time_column(df.columns, p.name)
    times, width = _parse_timestamps(df[time_col], source=p.name, column=time_col)
    sites = normalise_sites(df[site_col])
    resolution = _resolution_from(width, _median_step(times, sites), time_col == "TIMESTAMP_START")
    return _finish(df.drop(columns=[site_col]), site=sites.to_numpy(), times=times, resolution=resolution,
                   source=p.name)


def read_bigleaf_halfhourly(path: str | os.PathLike, *, site: str | None = None) -> pd.DataFrame:
    """Read a bigleaf-package half-hourly month (``AT_Neu_Jul_2010.csv``) with FLUXNET names and units.

    The bigleaf R package ships FLUXNET2015 HH months with short names (``Tair``, ``VPD`` in kPa,
    ``NEE``, ``GPP``, ``*_qc``) and ``year, month, doy, hour`` (0-23.5, start of the half-hour) in
    place of timestamps. This reader renames them to the FLUXNET2015 names they came from (bigleaf
    ``R/datasets_description.r``): ``TA_F``, ``PPFD_IN``, ``VPD_F`` (converted back to hPa), ``PA_F``,
    ``P_F``, ``USTAR``, ``WS_F``, ``CO2_F_MDS``, ``LW_OUT``, ``LW_IN_F``, ``NETRAD``, ``LE_F_MDS``,
    ``H_F_MDS``, ``G_F_MDS`` (each with ``_QC``), and ``NEE_VUT_USTAR50`` (+ ``_QC``),
    ``GPP_NT_VUT_USTAR50``, ``RECO_NT_VUT_USTAR50``: bigleaf took the USTAR50 versions, not ``_REF``.
    bigleaf's ``GPP_qc`` is a copy of ``NEE_qc`` and is dropped when identical to it.

    Parameters
    ----------
    path
        The CSV file.
    site
        Site id; by default from the file name (``AT_Neu_Jul_2010.csv`` -> ``"AT-Neu"``).

    Returns
    -------
    pandas.DataFrame
        As :func:`read_fluxnet` at ``resolution="HH"``.
    """
    p = as_path(path)
    df = read_csv(p)
    missing = [c for c in _BIGLEAF_TIME if c not in df.columns]
    if missing:
        raise TowerDataError(f"{p.name} is not a bigleaf half-hourly table: no column(s) {missing}.")
    if site is None:
        m = _BIGLEAF_FILENAME.match(p.name)
        if m is None:
            raise TowerDataError(f"Cannot tell the site of {p.name!r} (expected a name like AT_Neu_Jul_2010.csv); "
                                 "pass site='AT-Neu'.")
        site = f"{m['cc']}-{m['code']}"
    year = df["year"].astype(int)
    doy = df["doy"].astype(int)
    times = pd.to_datetime(year * 1000 + doy, format="%Y%j") + pd.to_timedelta(df["hour"].astype(float), unit="h")
    if not (times.dt.month.to_numpy() == df["month"].astype(int).to_numpy()).all():
        raise TowerDataError(f"{p.name}: year/doy/hour disagree with the month column; the file is not bigleaf HH.")
    if "GPP_qc" in df.columns and "NEE_qc" in df.columns and df["GPP_qc"].equals(df["NEE_qc"]):
        df = df.drop(columns="GPP_qc")
    renamed = {}
    for col in df.columns:
        if col in _BIGLEAF_TIME:
            continue
        name, factor = _BIGLEAF_NAMES.get(col, (col, 1.0))
        if col == "GPP_qc":
            name = "GPP_NT_VUT_USTAR50_QC"
        renamed[name] = df[col] * factor if factor != 1.0 else df[col]
    out = pd.DataFrame(renamed, index=df.index)
    return _finish(out, site=site, times=times.astype("datetime64[ns]"), resolution="HH", source=p.name,
                   product="FLUXNET2015 via bigleaf")

