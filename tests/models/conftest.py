"""Fixtures for the model tests: a feature frame built with plain pandas from the real tower table.

Data: ``../shared/data/towers/fluxnet2015_daily_gpp_x_modis_nbar_lst/daily_gpp_x_modis_x_met.csv.gz``
(see its SOURCE.txt): daily FLUXNET2015 GPP (CC-BY-4.0, Pastorello et al. 2020) with the P-model
GPP, MODIS MCD43A4 NBAR (NASA, public domain), ERA5 (Copernicus) and FluxDataKit tower meteorology.
The frame is built here independently of the library's feature code, so the CV and baseline tests
do not depend on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

TABLE = "towers/fluxnet2015_daily_gpp_x_modis_nbar_lst/daily_gpp_x_modis_x_met.csv.gz"

IGBP_CODES = {
    "Evergreen Needleleaf Forest": "ENF",
    "Evergreen Broadleaf Forest": "EBF",
    "Deciduous Needleleaf Forest": "DNF",
    "Deciduous Broadleaf Forest": "DBF",
    "Mixed Forest": "MF",
    "Closed Shrublands": "CSH",
    "Open Shrublands": "OSH",
    "Woody Savannas": "WSA",
    "Savannas": "SAV",
    "Grasslands": "GRA",
    "Permanent Wetlands": "WET",
    "Croplands": "CRO",
}

COLUMNS = [
    "site", "date", "gpp_obs", "gpp_pmodel", "Nadir_Reflectance_Band2", "NDVI_derived", "EVI_derived",
    "lat", "lon", "igbp_land_use", "t2m_era5", "ssrd_era5", "tower_temp", "tower_vpd",
]  # fmt: skip


def _rad_toa(lat_deg: np.ndarray, day_of_year: np.ndarray) -> np.ndarray:
    """Daily-mean top-of-atmosphere shortwave in W m-2 (FAO-56, Allen et al. 1998, eqs. 21-25)."""
    phi = np.deg2rad(lat_deg)
    angle = 2 * np.pi * day_of_year / 365.0
    dr = 1 + 0.033 * np.cos(angle)
    decl = 0.409 * np.sin(angle - 1.39)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(decl), -1.0, 1.0))
    ra_mj = 24 * 60 / np.pi * 0.0820 * dr * (ws * np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.sin(ws))
    return ra_mj / 0.0864


@pytest.fixture(scope="session")
def feature_frame(shared_data: Path) -> pd.DataFrame:
    """All 54,408 site-days of the real table (19 sites) as a canonical feature frame."""
    raw = pd.read_csv(shared_data / TABLE, usecols=COLUMNS)
    date = pd.to_datetime(raw["date"])
    nir = raw["Nadir_Reflectance_Band2"].where(raw["Nadir_Reflectance_Band2"] <= 1.0)  # 32767 is fill
    frame = pd.DataFrame(
        {
            "site": raw["site"].astype(str),
            "date": date,
            "igbp": raw["igbp_land_use"].map(IGBP_CODES),
            "lat": raw["lat"],
            "lon": raw["lon"],
            "ndvi": raw["NDVI_derived"],
            "evi": raw["EVI_derived"],
            "nirv": raw["NDVI_derived"] * nir,
            "sw_in": raw["ssrd_era5"] / 86400.0,  # J m-2 d-1 -> W m-2 daily mean
            "rad_toa": _rad_toa(raw["lat"].to_numpy(), date.dt.dayofyear.to_numpy()),
            "ta": (raw["t2m_era5"] - 273.15).fillna(raw["tower_temp"]),
            "vpd": raw["tower_vpd"] / 100.0,  # Pa -> hPa
            "gpp_obs": raw["gpp_obs"],
            "gpp_pmodel": raw["gpp_pmodel"],
        }
    )
    assert frame["igbp"].notna().all(), "an IGBP long name is missing from IGBP_CODES"
    return frame


@pytest.fixture(scope="session")
def training_frame(feature_frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with observed GPP and NDVI, every 2nd kept (about 11,000 rows, all 19 sites): fast fits."""
    usable = feature_frame[feature_frame["gpp_obs"].notna() & feature_frame["ndvi"].notna()]
    return usable.iloc[::2].reset_index(drop=True)


# ---------------------------------------------------------------- the library's own training path
#: eight sites of five IGBP classes, two years each: enough for 4 site-grouped folds in seconds
SMALL_SITES = ("AU-DaS", "AU-Whr", "BE-Bra", "CH-Lae", "CH-Oe1", "CZ-wet", "DE-Gri", "FR-Pue")


@pytest.fixture(scope="session")
def daily_table(shared_data: Path) -> pd.DataFrame:
    """The real GPP_M training table (all columns) cut to eight sites, 2009-2010."""
    from unique_xr.towers import read_tower_table

    df = read_tower_table(shared_data / TABLE)
    keep = df["site"].isin(SMALL_SITES) & df["date"].between("2009-01-01", "2010-12-31")
    return df[keep].reset_index(drop=True)


@pytest.fixture(scope="session")
def small_result(daily_table: pd.DataFrame):
    """A GPP_M model trained by the library on ``daily_table`` with 4 site-grouped folds."""
    from unique_xr.models.lgbm import TrainConfig, train

    config = TrainConfig(folds=4, num_boost_round=80, early_stopping_rounds=10, n_jobs=1, seed=3)
    return train(daily_table, config)


@pytest.fixture(scope="session")
def landsat_table(shared_data: Path) -> pd.DataFrame:
    """The real GPP_L training table: Landsat 7 C2 L2 pixels at the towers joined with daily tower GPP."""
    from unique_xr.towers import landsat_training_table

    d = shared_data / "towers/fluxnet2015_daily_gpp_x_modis_nbar_lst"
    return landsat_training_table(d / "landsat7_c2l2_at_towers.csv.gz", d / "daily_gpp_x_modis_x_met.csv.gz")


@pytest.fixture(scope="session")
def gpp_l_model(landsat_table: pd.DataFrame):
    """A small GPP_L model (40 trees, no cross-validation) trained by the library."""
    from unique_xr.models.lgbm import TrainConfig, train

    config = TrainConfig(kind="gpp_l", folds=0, num_boost_round=40, early_stopping_rounds=0, baselines=False)
    return train(landsat_table, config).model
