"""Tower-pixel tables: satellite values, meteorology and GPP already extracted at the towers.

* :func:`read_tower_table` reads the daily tables keyed by site and date (CSV, gzip CSV or
  Parquet): the GPP x MODIS NBAR/LST x meteorology training table, the Landsat 7 C2 L2 values at the
  towers, the ERA5 table, the FluxDataKit daily meteorology, and the mlflx ``pmodel_outputs.csv``;
* :func:`clear_tower_table` applies the products' QA to those tables, with the same bit tables and
  options as the cube masks in :mod:`unique_xr.load.masks`, and adds physical values named by role.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from unique_xr.schema import GPP_UNITS, VARIABLES, check_range
from unique_xr.search.collections import (
    LANDSAT_FILE_BANDS,
    LANDSAT_QA_FILE_BAND,
    MCD43A4_TABLE_COLUMNS,
    MODIS_LST_TABLE_COLUMNS,
    AssetSpec,
    get_collection,
)
from unique_xr.towers._common import (
    TowerDataError,
    as_path,
    drop_unparsed_rows,
    find_column,
    is_parquet,
    local_solar_day,
    normalise_sites,
    parse_days,
    read_csv,
    read_table,
    site_column,
)

__all__ = ["TABLE_UNITS", "clear_tower_table", "read_tower_table"]

#: Units of the columns of the tower-pixel tables in ``towers/`` (see each folder's SOURCE.txt).
TABLE_UNITS: dict[str, str] = {
    "gpp_obs": GPP_UNITS, "gpp_pmodel": GPP_UNITS, "gpp": GPP_UNITS, "gpp_unc": GPP_UNITS,
    **{value: "1" for value, _ in MCD43A4_TABLE_COLUMNS.values()},
    **{column: "K" for column, _ in MODIS_LST_TABLE_COLUMNS.values()}, "LST": "K",
    "NDVI_derived": "1", "EVI_derived": "1",
    "lat": "degrees_north", "lon": "degrees_east", "latitude": "degrees_north", "longitude": "degrees_east",
    "elv": "m",
    "t2m_era5": "K", "ssrd_era5": "J m-2 d-1", "pcwd_era5": "mm",
    "tower_temp": "degC", "tower_vpd": "Pa", "tower_ppfd": "mol m-2 s-1", "tower_prec": "kg m-2 s-1",
}
#: FluxDataKit daily meteorology (rsofun drivers): daily means; SOURCE.txt of fluxdatakit_daily_meteorology_100sites.
FLUXDATAKIT_METEO_UNITS: dict[str, str] = {
    "ppfd": "mol m-2 s-1", "rain": "kg m-2 s-1", "snow": "kg m-2 s-1", "prec": "kg m-2 s-1", "qair": "kg kg-1",
    "temp": "degC", "patm": "Pa", "vapr": "Pa", "vpd": "Pa", "ccov": "%", "co2": "umol mol-1",
}
_FDK_METEO_COLUMNS = frozenset({"ppfd", "prec", "temp", "vpd", "patm"})
_PMODEL_COLUMNS = ("sitename", "date", "gpp", "gpp_unc", "mod")

#: Landsat Collection 2 Level-2 file band -> role, by sensor family (TM/ETM+ vs OLI), from the registry.
_LANDSAT_457 = {band: role for role, band in LANDSAT_FILE_BANDS["landsat-7"].items()}
_LANDSAT_89 = {band: role for role, band in LANDSAT_FILE_BANDS["landsat-8"].items()}


def _layout(columns: list[str]) -> str:
    if tuple(columns) == _PMODEL_COLUMNS:
        return "mlflx_pmodel_outputs"
    if LANDSAT_QA_FILE_BAND in columns:
        return "landsat_at_towers"
    if _FDK_METEO_COLUMNS <= set(columns):
        return "fluxdatakit_daily_meteo"
    if any(value in columns for value, _ in MCD43A4_TABLE_COLUMNS.values()):
        return "modis_at_towers"
    return "tower_table"


def read_tower_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a tower-pixel table keyed by site and date (``.csv``, ``.csv.gz`` or ``.parquet``).

    * the site column (``site``, ``sitename``, ``siteid``...) becomes ``site``;
    * ``date`` becomes a day (datetime64 at midnight). Where the table has times of day (the
      Landsat table's UTC acquisition times) the instant is kept in ``acquisition_time`` and
      ``date`` is the local solar day at the tower, ``floor(time + lon / 15 h)`` using the table's
      ``longitude``/``lon`` column (the UTC day without one), so it lines up with the tower's
      local-time days; monthly tables with ``yyyymm`` get ``date`` = first day of the month;
    * mlflx ``pmodel_outputs.csv`` (``sitename, date, gpp, gpp_unc, mod``): ``gpp`` -> ``gpp_obs``,
      ``mod`` -> ``gpp_pmodel``. That file is truncated upstream (it ends with the fragment
      ``DK-Sor,1,,,``): rows whose date does not parse are dropped with a
      :class:`~unique_xr.towers.TowerFileWarning` that shows them;
    * every other column is kept unchanged (missing -> NaN).

    Parameters
    ----------
    path
        The table.

    Returns
    -------
    pandas.DataFrame
        ``site``, ``date`` (, ``acquisition_time``) first. ``df.attrs``: ``source``, ``layout``
        (``"mlflx_pmodel_outputs"``, ``"landsat_at_towers"``, ``"modis_at_towers"``,
        ``"fluxdatakit_daily_meteo"`` or ``"tower_table"``), ``resolution`` (``"DD"`` or ``"MM"``),
        ``units`` for the columns documented in the tables' SOURCE.txt.

    Raises
    ------
    TowerDataError
        No site column, no ``date``/``yyyymm`` column, or many dates that do not parse.
    """
    p = as_path(path)
    df = read_table(p) if is_parquet(p) else read_csv(p, dtype={"date": "string"})
    if df.empty:
        raise TowerDataError(f"{p} has a header but no rows (columns: {list(df.columns)[:12]}): there is nothing "
                             "to read. Check that the file was written completely.")
    layout = _layout(list(df.columns))
    if layout == "mlflx_pmodel_outputs":
        df = df.rename(columns={"gpp": "gpp_obs", "mod": "gpp_pmodel"})
    site_col = site_column(df.columns)
    if site_col is None:
        raise TowerDataError(
            f"{p.name} has no site column (looked for site, sitename, siteid, Site...); columns: "
            f"{list(df.columns)[:12]}. Tower tables are keyed by site and date."
        )
    resolution = "DD"
    if "date" in df.columns:
        stamps, bad = parse_days(df["date"])
        df = drop_unparsed_rows(df, bad, column="date", path=p)
        stamps = stamps[~bad]
    elif "yyyymm" in df.columns:
        stamps = pd.to_datetime(df["yyyymm"].astype("Int64").astype("string"), format="%Y%m").astype("datetime64[ns]")
        resolution = "MM"
    else:
        raise TowerDataError(
            f"{p.name} has no 'date' (or 'yyyymm') column; columns: {list(df.columns)[:12]}. "
            "For FLUXNET files with TIMESTAMP columns use read_fluxnet or read_fluxnet_table."
        )
    sites = normalise_sites(df[site_col])
    rest = df.drop(columns=[c for c in (site_col, "date") if c in df.columns])
    head = {"site": sites.to_numpy()}
    attrs: dict = {}
    times_of_day = stamps.notna() & (stamps != stamps.dt.floor("D"))
    if bool(times_of_day.any()):
        lon_col = find_column(df.columns, ("longitude", "lon"))
        lon = df[lon_col] if lon_col is not None else None
        head["date"] = local_solar_day(stamps, lon).to_numpy()
        head["acquisition_time"] = stamps.to_numpy()
        attrs["date_rule"] = (
            f"local solar day at the tower: floor(acquisition_time + {lon_col} / 15 h)"
            if lon_col else "UTC day of acquisition_time"
        )
    else:
        head["date"] = stamps.to_numpy()
    out = pd.concat([pd.DataFrame(head, index=rest.index), rest], axis=1).reset_index(drop=True)
    known = {**TABLE_UNITS, **(FLUXDATAKIT_METEO_UNITS if layout == "fluxdatakit_daily_meteo" else {})}
    out.attrs.update({
        "source": p.name,
        "layout": layout,
        "resolution": resolution,
        "units": {c: known[c] for c in out.columns if c in known},
        **attrs,
    })
    return out


# ------------------------------------------------------------------------------ QA masks
def _landsat_roles(columns) -> dict[str, str]:
    return _LANDSAT_89 if LANDSAT_FILE_BANDS["landsat-8"]["lst_day"] in columns else _LANDSAT_457


def _landsat_assets(columns) -> dict[str, tuple[str, AssetSpec]]:
    """``{band column: (role, registry asset)}`` for the Landsat C2 L2 columns of a table."""
    by_role = {a.role: a for a in get_collection("landsat-c2-l2").assets}
    return {band: (role, by_role[role]) for band, role in _landsat_roles(columns).items() if band in columns}


def check_landsat_dn(df: pd.DataFrame) -> None:
    """Refuse Landsat columns that are not Collection 2 Level-2 DN (e.g. reflectance already scaled).

    The DN range, scale and offset come from the collection registry (``landsat-c2-l2``); as with
    every unit check (:func:`unique_xr.schema.check_range`) only the median of each column is tested.
    """
    for band, (role, asset) in _landsat_assets(df.columns).items():
        raw = df[band].to_numpy(dtype="float64")
        raw = raw[np.isfinite(raw) & (raw != asset.nodata)]
        if asset.valid_range is None or raw.size == 0:
            continue
        lo, hi = asset.valid_range
        check_range(raw, role, asset.valid_range, message=(
            f"Landsat column {band} ({role}) has median {{median:.4g}} (values {raw.min():.4g} to {raw.max():.4g}), "
            f"outside the Collection 2 Level-2 DN range {lo:g}..{hi:g} (physical = DN x {asset.scale:g} "
            f"{asset.offset:+g}): the values look already scaled (reflectance 0..1, percent, or kelvin), not DN as "
            f"USGS distributes them. Give the DN, or convert back: DN = (value - ({asset.offset:g})) / {asset.scale:g}."
        ))


def _landsat_physical(df: pd.DataFrame, out: pd.DataFrame, clear: np.ndarray) -> None:
    check_landsat_dn(df)
    for band, (role, asset) in _landsat_assets(df.columns).items():
        raw = df[band].to_numpy(dtype="float64")
        ok = np.isfinite(raw) & (raw != asset.nodata) & clear
        if asset.valid_range is not None:
            ok &= (raw >= asset.valid_range[0]) & (raw <= asset.valid_range[1])
        out[role] = np.where(ok, raw * asset.scale + asset.offset, np.nan).astype("float32")


def _qa_prefix_ok(qa: pd.Series, allowed: tuple[str, ...]) -> np.ndarray:
    """MODIS QA strings of the tables -> usable; ``*_b5b6fill`` and missing QA are not."""
    text = qa.astype("string")
    fill = text.str.endswith("fill").fillna(True)
    base = text.str.replace(r"_b5b6fill$", "", regex=True)
    return (base.isin(allowed).fillna(False) & ~fill).to_numpy(dtype=bool)


def clear_tower_table(
    df: pd.DataFrame,
    *,
    snow: bool = True,
    dilated_cloud: bool = True,
    allow_magnitude: bool = True,
    allow_other_quality: bool = True,
) -> pd.DataFrame:
    """Apply the products' QA to a tower-pixel table and add physical values named by role.

    Raw columns stay as they are; new float32 columns are added, NaN where the QA says not usable:

    * Landsat C2 L2 (``QA_PIXEL`` present): ``blue, green, red, nir, swir1, swir2`` (and ``coastal``
      for Landsat 8-9) as surface reflectance, ``lst_day`` in K, from the raw DN with the registry's
      scale/offset (``SR = DN * 2.75e-5 - 0.2``, ``ST = DN * 0.00341802 + 149``), after
      :func:`unique_xr.load.masks.landsat_clear` (fill, cloud, dilated cloud, shadow, cirrus, snow;
      ``snow`` / ``dilated_cloud`` switch those off); DN of 0 or outside the valid range are NaN; a
      ``clear`` column (bool).
    * MCD43A4 NBAR (``Nadir_Reflectance_Band<n>`` with ``QA_Band<n>``): ``red, nir, blue, green,
      nir2, swir1, swir2``; ``full_inversion`` is kept, ``magnitude_inversion`` when
      ``allow_magnitude``, anything ending in ``fill`` never. In the shared table the bands 2, 4, 6
      hold the raw fill 32767 on ``*_b5b6fill`` days: those become NaN here.
    * MOD11A1/MYD11A1 LST (``LST_Day_1km_Terra``/``_Aqua`` with ``_QA``): ``lst_day_terra``,
      ``lst_day_aqua`` in K; ``good`` is kept, ``other_quality`` when ``allow_other_quality``,
      ``not_produced_cloud`` never.

    Parameters
    ----------
    df
        A table from :func:`read_tower_table`.
    snow, dilated_cloud
        Landsat: remove snow / dilated-cloud pixels.
    allow_magnitude
        MCD43A4: keep magnitude inversions.
    allow_other_quality
        MOD11A1: keep LST of "other quality".

    Returns
    -------
    pandas.DataFrame
        A copy of ``df`` with the added columns and their ``units`` in ``attrs``.

    Raises
    ------
    TowerDataError
        The table has none of these QA columns.
    """
    from unique_xr.load.masks import landsat_clear

    out = df.copy()
    out.attrs = {**df.attrs, "units": dict(df.attrs.get("units", {}))}
    units = out.attrs["units"]
    done = False
    if LANDSAT_QA_FILE_BAND in df.columns:
        qa = df[LANDSAT_QA_FILE_BAND]
        has_qa = qa.notna().to_numpy()
        qa_int = qa.fillna(1).to_numpy().astype("uint16")  # missing QA -> fill bit
        clear = landsat_clear(qa_int, snow=snow, dilated_cloud=dilated_cloud) & has_qa
        _landsat_physical(df, out, clear)
        out["clear"] = clear
        for role in _landsat_roles(df.columns).values():
            if role in out.columns:
                units[role] = "K" if role == "lst_day" else "1"
        done = True
    allowed = ("full_inversion", "magnitude_inversion") if allow_magnitude else ("full_inversion",)
    for role, (value, qa) in MCD43A4_TABLE_COLUMNS.items():
        if value in df.columns and qa in df.columns:
            raw = df[value].to_numpy(dtype="float64")
            ok = _qa_prefix_ok(df[qa], allowed) & np.isfinite(raw) & (raw >= -0.01) & (raw <= 1.6)
            out[role] = np.where(ok, raw, np.nan).astype("float32")
            units[role] = "1"
            done = True
    lst_allowed = ("good", "other_quality") if allow_other_quality else ("good",)
    lst_lo, lst_hi = VARIABLES["lst_day"]["valid_range"]
    for role, (column, qa) in MODIS_LST_TABLE_COLUMNS.items():
        if column in df.columns and qa in df.columns:
            raw = df[column].to_numpy(dtype="float64")
            ok = df[qa].astype("string").isin(lst_allowed).fillna(False).to_numpy(dtype=bool)
            ok &= np.isfinite(raw) & (raw > lst_lo) & (raw < lst_hi)
            out[role] = np.where(ok, raw, np.nan).astype("float32")
            units[role] = "K"
            done = True
    if not done:
        raise TowerDataError(
            "clear_tower_table found no QA columns it knows: QA_PIXEL (Landsat C2 L2), "
            "Nadir_Reflectance_Band<n> + QA_Band<n> (MCD43A4), LST_Day_1km_Terra/Aqua + _QA (MOD11A1/MYD11A1). "
            f"Columns: {list(df.columns)[:15]}..."
        )
    return out

