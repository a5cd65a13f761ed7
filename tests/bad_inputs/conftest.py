"""The catalogue of bad inputs and faults: what a hostile or careless user, a damaged file or a killed
process does to unique_xr, and the clear error (never a crash, a traceback or a silently wrong
output) each must end in.

One module per area: ``test_stores.py`` (Zarr stores: damaged, racing, stale), ``test_models.py``
(model folders and training), ``test_tables.py`` (tower tables and grids), ``test_search.py`` (the
search cache), ``test_downscale.py`` (the downscaler), ``test_cli.py`` (every command on a broken
input ends in one ``error:`` line). Every input is built in the test or cut from ``../shared/data``;
nothing is downloaded. To add a case: put it in the module of its area, name the test after the
fault, and assert on the message a user would read (what was seen, how to fix it) as well as on
the exception type.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

TOWERS = "towers/fluxnet2015_daily_gpp_x_modis_nbar_lst"
#: four sites of three IGBP classes, one year: enough rows for a quick fit without cross-validation
SITES = ("BE-Bra", "CH-Lae", "DE-Gri", "FR-Pue")


@pytest.fixture(scope="session")
def tower_table(shared_data: Path) -> pd.DataFrame:
    """The real daily GPP_M table (all columns) cut to four sites in 2010."""
    from unique_xr.towers import read_tower_table

    df = read_tower_table(shared_data / TOWERS / "daily_gpp_x_modis_x_met.csv.gz")
    keep = df["site"].isin(SITES) & df["date"].between("2010-01-01", "2010-12-31")
    return df[keep].reset_index(drop=True)


@pytest.fixture
def table_csv(tower_table: pd.DataFrame, tmp_path: Path) -> Path:
    """``tower_table`` written as CSV."""
    path = tmp_path / "table.csv"
    tower_table.to_csv(path, index=False)
    return path


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A copy of the shipped GPP_M sample model folder, free to damage."""
    from unique_xr.sample import sample_model

    return Path(shutil.copytree(sample_model("gpp_m"), tmp_path / "gpp_m"))
