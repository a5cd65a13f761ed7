"""Fixtures for the tower tests: paths of the real files in ``../shared/data/towers`` (see each folder's SOURCE.txt)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def towers(shared_data) -> Path:
    """``../shared/data/towers``."""
    return shared_data / "towers"


@pytest.fixture(scope="session")
def fr_pue_mm(towers) -> Path:
    return towers / "fluxnet2015_official_mm_yy_FR-Pue" / "FLX_FR-Pue_FLUXNET2015_FULLSET_MM_2007-2014_2-3.csv"


@pytest.fixture(scope="session")
def fr_pue_yy(towers) -> Path:
    return towers / "fluxnet2015_official_mm_yy_FR-Pue" / "FLX_FR-Pue_FLUXNET2015_FULLSET_YY_2007-2014_2-3.csv"


@pytest.fixture(scope="session")
def fdk_dd(towers) -> dict[str, Path]:
    folder = towers / "fluxdatakit_fullset_dd_2sites"
    return {
        "CH-Lae": folder / "FLX_CH-Lae_FLUXDATAKIT_FULLSET_DD_2004_2014_2-3.csv",
        "FR-Pue": folder / "FLX_FR-Pue_FLUXDATAKIT_FULLSET_DD_2000_2014_2-3.csv",
    }


@pytest.fixture(scope="session")
def halfhourly(towers) -> dict[str, Path]:
    folder = towers / "fluxnet2015_halfhourly_3sitemonths"
    return {"AT-Neu": folder / "AT_Neu_Jul_2010.csv", "DE-Tha": folder / "DE_Tha_Jun_2014.csv",
            "FR-Pue": folder / "FR_Pue_May_2012.csv"}


@pytest.fixture(scope="session")
def agds(towers) -> Path:
    return towers / "fluxnet2015_daily_4sites"


@pytest.fixture(scope="session")
def pixel_tables(towers) -> Path:
    return towers / "fluxnet2015_daily_gpp_x_modis_nbar_lst"
