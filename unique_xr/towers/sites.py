"""Tower site metadata: coordinates, elevation and IGBP land-cover class.

The site lists in ``towers/`` name the same things differently (``sitename``/``siteid``/``Site ID``,
``lon``/``Long``, ``elv``/``elev_m``/``Elev``, IGBP as ``ENF`` or ``"Evergreen Needleleaf Forest"``).
:func:`read_site_metadata` reads them all into one layout; :func:`igbp_code` normalises IGBP names.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from typing import Any, overload

import numpy as np
import pandas as pd

from unique_xr.towers._common import (
    TowerDataError,
    TowerFileWarning,
    as_path,
    find_column,
    normalise_sites,
    read_table,
    site_column,
)

__all__ = ["IGBP_CLASSES", "igbp_code", "read_site_metadata"]

#: The 17 IGBP land-cover classes (MODIS MCD12Q1 ``LC_Type1`` numbers 1-17, in that order).
IGBP_CLASSES: dict[str, str] = {
    "ENF": "Evergreen Needleleaf Forests",
    "EBF": "Evergreen Broadleaf Forests",
    "DNF": "Deciduous Needleleaf Forests",
    "DBF": "Deciduous Broadleaf Forests",
    "MF": "Mixed Forests",
    "CSH": "Closed Shrublands",
    "OSH": "Open Shrublands",
    "WSA": "Woody Savannas",
    "SAV": "Savannas",
    "GRA": "Grasslands",
    "WET": "Permanent Wetlands",
    "CRO": "Croplands",
    "URB": "Urban and Built-up Lands",
    "CVM": "Cropland/Natural Vegetation Mosaics",
    "SNO": "Permanent Snow and Ice",
    "BSV": "Barren",
    "WAT": "Water Bodies",
}
_NUMBERS = {i + 1: code for i, code in enumerate(IGBP_CLASSES)}
#: Other spellings met in site lists (FLUXNET, AmeriFlux BADM, MODIS docs), compared as normalised keys.
_ALIASES: dict[str, str] = {
    "urban and built up": "URB", "urban": "URB",
    "cropland natural vegetation mosaic": "CVM",
    "snow and ice": "SNO", "snow ice": "SNO",
    "barren or sparsely vegetated": "BSV", "barren sparse vegetation": "BSV", "sparsely vegetated": "BSV",
    "water": "WAT", "wetland": "WET", "savanna": "SAV", "woody savanna": "WSA", "grassland": "GRA",
    "cropland": "CRO", "mixed forest": "MF",
}
#: Values that mean "no class" in the site lists.
_MISSING = {"", "na", "nan", "none", "null", "unclassified", "unknown", "-", "-9999"}

_SITE_LAT = ("lat", "latitude", "Lat", "LAT", "LOCATION_LAT")
_SITE_LON = ("lon", "longitude", "Long", "Lon", "LON", "LOCATION_LONG")
_SITE_ELV = ("elv", "elev", "elev_m", "Elev", "elevation", "LOCATION_ELEV")
#: IGBP columns in order of preference: code columns before long-name columns.
_SITE_IGBP = ("igbp", "IGBP", "classid", "Veg", "LC", "IGBP_class", "IGBPname", "igbp_land_use")


def _key(name: str) -> str:
    """Lower-case words, plural ``s`` dropped: ``"Evergreen Needleleaf Forests"`` -> ``"evergreen needleleaf forest"``."""
    words = re.findall(r"[a-z]+", name.lower())
    return " ".join(w[:-1] if len(w) > 4 and w.endswith("s") else w for w in words)


_LOOKUP: dict[str, str] = {
    **{_key(code): code for code in IGBP_CLASSES},
    **{_key(name): code for code, name in IGBP_CLASSES.items()},
    **{_key(alias): code for alias, code in _ALIASES.items()},
}


def _one(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)  # class numbers read from a CSV column with gaps
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if int(value) in _NUMBERS:
            return _NUMBERS[int(value)]
        raise TowerDataError(_unknown_message([value]))
    text = str(value).strip()
    if text.lower() in _MISSING or text.lower() == "(null)":
        return None
    code = _LOOKUP.get(_key(text))
    if code is None:
        raise TowerDataError(_unknown_message([value]))
    return code


def _unknown_message(values: Iterable[Any]) -> str:
    listed = ", ".join(f"{c} ({n})" for c, n in IGBP_CLASSES.items())
    return (
        f"Unknown IGBP class(es) {sorted(map(str, values))}. Known classes: {listed}; the long names "
        "may be singular or plural, any case; MODIS LC_Type1 numbers 1-17 also work; 'Unclassified', "
        "NA and empty mean missing."
    )


@overload
def igbp_code(name: str | int | None) -> str | None: ...
@overload
def igbp_code(name: pd.Series) -> pd.Series: ...


def igbp_code(name):
    """Normalise an IGBP class name to its 2-3 letter code (``ENF``, ``EBF``, ... ``CVM``).

    Parameters
    ----------
    name : str, int, None or pandas.Series
        A code (``"enf"``, ``" DBF "``), a long name, singular or plural, any case
        (``"Evergreen Needleleaf Forest"``, ``"Woody Savannas"``, ``"Cropland/Natural Vegetation
        Mosaic"``), or a MODIS ``LC_Type1`` number 1-17. ``None``, NaN, ``""``, ``"NA"`` and
        ``"Unclassified"`` mean missing.

    Returns
    -------
    str or None, or pandas.Series
        The code; ``None`` for missing values. A Series maps element-wise (missing stays missing).

    Raises
    ------
    TowerDataError
        A name that is not an IGBP class; the message lists the classes (all unknown values of a
        Series at once).

    Examples
    --------
    >>> from unique_xr.towers import igbp_code
    >>> igbp_code("Evergreen Needleleaf Forest"), igbp_code("woody savannas"), igbp_code(" CRO")
    ('ENF', 'WSA', 'CRO')
    >>> igbp_code("Cropland/Natural Vegetation Mosaic"), igbp_code(14), igbp_code("Unclassified")
    ('CVM', 'CVM', None)
    """
    if isinstance(name, pd.Series):
        uniques = pd.unique(name.dropna())
        mapping, unknown = {}, []
        for value in uniques:
            try:
                mapping[value] = _one(value)
            except TowerDataError:
                unknown.append(value)
        if unknown:
            raise TowerDataError(_unknown_message(unknown))
        return name.map(lambda v: None if pd.isna(v) else mapping[v]).astype(object)
    return _one(name)


def read_site_metadata(path: str | os.PathLike) -> pd.DataFrame:
    """Read a tower site list into ``site, lat, lon, elv, igbp`` (+ its other columns).

    Works on the site lists in ``towers/``: FluxDataKit ``fdk_site_info.csv`` and
    ``siteinfo_100sites.csv``, ingestr/agds ``siteinfo_fluxnet2015.csv`` / ``site_meta.csv``,
    mlflx ``fluxnet2015_sites_metainfo.csv``, the drought-monitoring ``site_info.csv`` (long IGBP
    names), the FLUXNET2015 list of flux_modis_paper (Latin-1, one row per data tier), the
    ECOSTRESS cal/val AmeriFlux list (``Site ID, Lat, Long, Elev, Veg``) and CARDAMOM's
    ``location_fluxnet.csv``.

    * the site, latitude, longitude and elevation columns are renamed to ``site, lat, lon, elv``
      (``elv`` is NaN where the list has none);
    * ``igbp`` holds IGBP codes (:func:`igbp_code`), taken from the first class column found
      (``IGBP``, ``classid``, ``Veg``, ``LC``, ..., ``igbp_land_use``), gaps filled from a
      long-name column when there is one (kept unchanged); NaN where the list has no class;
    * rows repeated per site (data tiers) are collapsed to the first, with a
      :class:`~unique_xr.towers.TowerFileWarning` when the repeats disagree on lat/lon/igbp.

    Returns
    -------
    pandas.DataFrame
        One row per site, sorted as in the file. ``attrs["source"]`` is the file name.

    Raises
    ------
    TowerDataError
        No site, latitude or longitude column (the message lists the columns seen).

    Examples
    --------
    >>> from unique_xr.towers import read_site_metadata
    >>> import pandas as pd, io, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "sites.csv"
    >>> _ = path.write_text("siteid,lon,lat,elv,igbp_land_use\\nCH-Dav,9.8559,46.8153,1639,Evergreen Needleleaf Forest\\n")
    >>> read_site_metadata(path)[["site", "lat", "lon", "elv", "igbp"]].to_dict("records")
    [{'site': 'CH-Dav', 'lat': 46.8153, 'lon': 9.8559, 'elv': 1639.0, 'igbp': 'ENF'}]
    """
    p = as_path(path)
    df = read_table(p)
    df = df.drop(columns=[c for c in df.columns if str(c).startswith("Unnamed: ")])
    cols = list(df.columns)
    site_col = site_column(cols)
    lat_col, lon_col = find_column(cols, _SITE_LAT), find_column(cols, _SITE_LON)
    if site_col is None or lat_col is None or lon_col is None:
        raise TowerDataError(
            f"{p.name} is not a site list unique_xr knows: it needs a site column (sitename, siteid, Site ID, "
            f"...), a latitude (lat, Lat, latitude) and a longitude (lon, Long, longitude); columns: {cols[:15]}."
        )
    elv_col = find_column(cols, _SITE_ELV)
    igbp_cols = [c for c in _SITE_IGBP if c in cols]
    igbp = pd.Series([None] * len(df), index=df.index, dtype=object)
    for col in igbp_cols:  # first column wins; later ones only fill its gaps
        codes = igbp_code(df[col].astype(object).where(df[col].notna(), None))
        igbp = igbp.where(igbp.notna(), codes)
    out = pd.DataFrame({
        "site": normalise_sites(df[site_col]),
        "lat": pd.to_numeric(df[lat_col], errors="coerce").astype("float64"),
        "lon": pd.to_numeric(df[lon_col], errors="coerce").astype("float64"),
        "elv": pd.to_numeric(df[elv_col], errors="coerce").astype("float64") if elv_col else np.nan,
        "igbp": igbp,
    }, index=df.index)
    renamed = {site_col, lat_col, lon_col, *([elv_col] if elv_col else []), *igbp_cols[:1]}
    if "igbp" in cols:
        renamed.add("igbp")
    rest = df.drop(columns=[c for c in cols if c in renamed or c in out.columns])
    out = pd.concat([out, rest], axis=1)
    out = out[out["site"].notna()]
    dup = out["site"].duplicated(keep=False)
    if dup.any():
        disagree = out[dup].groupby("site")[["lat", "lon", "igbp"]].nunique(dropna=False).gt(1).any(axis=1)
        if disagree.any():
            warnings.warn(
                f"{p.name}: sites listed more than once with different lat/lon/igbp: "
                f"{sorted(disagree[disagree].index)[:10]}; the first row of each is kept.",
                TowerFileWarning, stacklevel=2,
            )
        out = out.drop_duplicates("site", keep="first")
    bad = out[(out["lat"].abs() > 90) | (out["lon"].abs() > 180)]
    if len(bad):
        raise TowerDataError(
            f"{p.name}: latitude/longitude out of range for {bad['site'].tolist()[:10]} "
            f"(e.g. lat={bad['lat'].iloc[0]}, lon={bad['lon'].iloc[0]}); are the columns swapped or projected?"
        )
    out = out.reset_index(drop=True)
    out.attrs.update({"source": p.name, "units": {"lat": "degrees_north", "lon": "degrees_east", "elv": "m"}})
    return out
