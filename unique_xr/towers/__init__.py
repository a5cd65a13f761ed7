"""Eddy-covariance towers: the training data of the GPP models.

The flow, in the order a training table is built::

    read_towers / read_fluxnet ... -> daily_gpp (QC, NT/DT, units) -> join_features / sample_cube
    read_site_metadata (lat, lon, IGBP) ------------------------------^

* readers (:mod:`~unique_xr.towers.readers`, :mod:`~unique_xr.towers.fluxnet`,
  :mod:`~unique_xr.towers.tables`): FLUXNET2015 / FluxDataKit files at HH to YY, the bigleaf
  half-hourly months, multi-site FLUXNET tables, tower-pixel tables (MODIS, Landsat, ERA5, P-model);
* :mod:`~unique_xr.towers.sites`: site lists -> ``site, lat, lon, elv, igbp``;
* :mod:`~unique_xr.towers.qc`: daily (monthly, annual) GPP in g C m-2 d-1 with quality filtering;
* :mod:`~unique_xr.towers.join`: site-day joins and sampling of data-layer cubes at towers.

Tower data are small tables, so everything here is pandas; only :func:`sample_cube` touches
(lazy) cubes, computing them once.
"""

from __future__ import annotations

from unique_xr.towers._common import TowerDataError, TowerFileWarning
from unique_xr.towers.fluxnet import (
    RESOLUTIONS,
    fluxnet_units,
    parse_fluxnet_filename,
    read_bigleaf_halfhourly,
    read_fluxnet,
    read_fluxnet_table,
)
from unique_xr.towers.join import join_features, landsat_training_table, sample_cube
from unique_xr.towers.qc import (
    annual_gpp,
    check_gpp_units,
    daily_gpp,
    monthly_gpp,
    umol_co2_to_gc_per_day,
)
from unique_xr.towers.readers import KNOWN_LAYOUTS, read_towers
from unique_xr.towers.sites import IGBP_CLASSES, igbp_code, read_site_metadata
from unique_xr.towers.tables import clear_tower_table, read_tower_table

__all__ = [
    "IGBP_CLASSES",
    "KNOWN_LAYOUTS",
    "RESOLUTIONS",
    "TowerDataError",
    "TowerFileWarning",
    "annual_gpp",
    "check_gpp_units",
    "clear_tower_table",
    "daily_gpp",
    "fluxnet_units",
    "igbp_code",
    "join_features",
    "landsat_training_table",
    "monthly_gpp",
    "parse_fluxnet_filename",
    "read_bigleaf_halfhourly",
    "read_fluxnet",
    "read_fluxnet_table",
    "read_site_metadata",
    "read_tower_table",
    "read_towers",
    "sample_cube",
    "umol_co2_to_gc_per_day",
]
