"""One entry point for every tower file layout unique_xr reads: :func:`read_towers`.

It recognises a file by its name and header and hands it to the reader of that layout
(:mod:`unique_xr.towers.fluxnet` for FLUXNET-named data, :mod:`unique_xr.towers.tables` for
tower-pixel tables). The readers themselves are re-exported here.
"""

from __future__ import annotations

import os

import pandas as pd

from unique_xr.towers._common import (
    TowerDataError,
    as_path,
    find_column,
    read_header,
    site_column,
)
from unique_xr.towers.fluxnet import (
    _BIGLEAF_FILENAME,
    _BIGLEAF_TIME,
    parse_fluxnet_filename,
    read_bigleaf_halfhourly,
    read_fluxnet,
    read_fluxnet_table,
)
from unique_xr.towers.tables import read_tower_table

__all__ = [
    "KNOWN_LAYOUTS",
    "read_bigleaf_halfhourly",
    "read_fluxnet",
    "read_fluxnet_table",
    "read_tower_table",
    "read_towers",
]

#: The layouts :func:`read_towers` recognises, and how.
KNOWN_LAYOUTS: dict[str, str] = {
    "fluxnet": "FLUXNET2015 / FluxDataKit / ONEFlux single-site CSV named "
               "FLX_<SITE>_<PRODUCT>_<FULLSET|SUBSET|ERAI>_<HH|HR|DD|WW|MM|YY>_<Y1>-<Y2>_<VER>.csv -> read_fluxnet",
    "bigleaf_halfhourly": "bigleaf half-hourly month (year, month, doy, hour, Tair, VPD, NEE, GPP, *_qc), "
                          "e.g. AT_Neu_Jul_2010.csv -> read_bigleaf_halfhourly",
    "fluxnet_table": "multi-site table with a site column and TIMESTAMP / TIMESTAMP_START plus FLUXNET names "
                     "(agds siteid,TIMESTAMP,...; MetaFlux Site,TIMESTAMP,...) -> read_fluxnet_table",
    "tower_table": "tower-pixel table keyed by site/sitename/siteid and date (or yyyymm): GPP x MODIS x met, "
                   "Landsat at towers, ERA5 at towers, FluxDataKit daily meteorology, mlflx pmodel_outputs.csv "
                   "-> read_tower_table",
}


def _unknown(p, header: list[str], hint: str = "") -> TowerDataError:
    known = "\n".join(f"  - {name}: {text}" for name, text in KNOWN_LAYOUTS.items())
    return TowerDataError(
        f"{p.name} is not a tower file layout unique_xr knows{hint}. Its columns: {header[:12]}"
        f"{'...' if len(header) > 12 else ''}. Known layouts:\n{known}"
    )


def read_towers(path: str | os.PathLike, *, site: str | None = None) -> pd.DataFrame:
    """Read any tower file unique_xr knows, recognised by its name and header.

    * a standard FLUXNET file name ``FLX_<SITE>_<PRODUCT>_<SET>_<RES>_<Y1>-<Y2>_<VER>.csv`` (or
      ``TIMESTAMP*`` columns and ``site=``): :func:`~unique_xr.towers.read_fluxnet`;
    * ``year, month, doy, hour`` columns (bigleaf half-hourly months):
      :func:`~unique_xr.towers.read_bigleaf_halfhourly`;
    * a site column and ``TIMESTAMP`` / ``TIMESTAMP_START`` (agds, MetaFlux):
      :func:`~unique_xr.towers.read_fluxnet_table`;
    * a site column and ``date`` (or ``yyyymm``), CSV or Parquet (tower-pixel tables, tower
      meteorology, P-model outputs): :func:`~unique_xr.towers.read_tower_table`.

    Parameters
    ----------
    path
        A ``.csv``, ``.csv.gz`` or ``.parquet`` file.
    site
        For a single-site FLUXNET or bigleaf file whose name does not carry the site.

    Returns
    -------
    pandas.DataFrame
        What the layout's reader returns: ``site`` and ``time`` (FLUXNET layouts) or ``site`` and
        ``date`` (tower-pixel tables) first; ``attrs["layout"]`` names the layout.

    Raises
    ------
    TowerDataError
        An unknown layout; the message lists the known ones. Site lists (``site, lat, lon`` without
        dates) are pointed to :func:`~unique_xr.towers.read_site_metadata`.
    """
    p = as_path(path)
    if parse_fluxnet_filename(p.name) is not None:
        out, layout = read_fluxnet(p, site=site), "fluxnet"
    else:
        header = read_header(p)
        has_time = any(c in header for c in ("TIMESTAMP", "TIMESTAMP_START"))
        has_site = site_column(header) is not None
        if all(c in header for c in _BIGLEAF_TIME) or (_BIGLEAF_FILENAME.match(p.name) and "hour" in header):
            out, layout = read_bigleaf_halfhourly(p, site=site), "bigleaf_halfhourly"
        elif has_time and has_site:
            out, layout = read_fluxnet_table(p), "fluxnet_table"
        elif has_time and site is not None:
            out, layout = read_fluxnet(p, site=site), "fluxnet"
        elif has_time:
            raise TowerDataError(
                f"{p.name} has FLUXNET timestamps but neither a standard FLUXNET file name nor a site column, so "
                "its site is unknown. Pass read_towers(path, site='XX-Yyy')."
            )
        elif has_site and ("date" in header or "yyyymm" in header):
            return read_tower_table(p)
        elif has_site and find_column(header, ("lat", "latitude", "Lat")) is not None:
            raise _unknown(p, header, " as a data table: it looks like a site list (site, lat, lon without dates); "
                                      "read it with unique_xr.towers.read_site_metadata")
        else:
            raise _unknown(p, header)
    out.attrs["layout"] = layout
    return out
