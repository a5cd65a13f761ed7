"""Tower tables and grids: empty, header-only, damaged and mis-scaled tables; units mistaken in a grid."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from unique_xr.errors import GridError, TowerDataError, UnitsError
from unique_xr.grid import GridSpec
from unique_xr.models.lgbm import TrainConfig, load_model, train
from unique_xr.towers import landsat_training_table, read_tower_table

from .conftest import TOWERS


@pytest.fixture(scope="module")
def landsat_rows(shared_data: Path, tower_table: pd.DataFrame) -> pd.DataFrame:
    """The real Landsat 7 C2 L2 rows at the sites and year of ``tower_table``, as distributed (DN)."""
    rows = read_tower_table(shared_data / TOWERS / "landsat7_c2l2_at_towers.csv.gz")
    keep = rows["site"].isin(tower_table["site"].unique()) & rows["date"].dt.year.eq(2010)
    assert keep.sum() > 20
    return rows[keep].reset_index(drop=True)


def test_zero_byte_table_names_the_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(TowerDataError, match=r"empty\.csv is empty \(0 bytes"):
        read_tower_table(empty)


def test_truncated_gzip_table_names_the_file(tower_table, tmp_path):
    path = tmp_path / "cut.csv.gz"
    data = gzip.compress(tower_table.to_csv(index=False).encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TowerDataError, match=r"cut\.csv\.gz cannot be parsed.*truncated"):
        read_tower_table(path)


def test_header_only_table_to_predict_says_there_are_no_rows(model_dir, tower_table, tmp_path):
    path = tmp_path / "header.csv"
    tower_table.iloc[:0].to_csv(path, index=False)
    with pytest.raises(TowerDataError, match=r"header\.csv has a header but no rows"):
        load_model(model_dir).predict(path)


def test_join_landsat_with_an_empty_landsat_table_is_refused(landsat_rows, tower_table, tmp_path):
    path = tmp_path / "landsat.csv"
    landsat_rows.iloc[:0].to_csv(path, index=False)
    with pytest.raises(TowerDataError, match=r"landsat\.csv has a header but no rows"):
        landsat_training_table(path, tower_table)
    with pytest.raises(TowerDataError, match="The Landsat table has no rows"):
        landsat_training_table(landsat_rows.iloc[:0], tower_table)


def test_scaled_landsat_reflectance_names_the_units_at_join_and_at_training(landsat_rows, tower_table):
    joined = landsat_training_table(landsat_rows, tower_table)  # DN as distributed: accepted
    assert len(joined) > 20
    bands = [c for c in landsat_rows.columns if c.startswith("SR_B")]
    scaled = landsat_rows.assign(**{b: landsat_rows[b] * 2.75e-5 - 0.2 for b in bands})  # DN already scaled
    with pytest.raises(UnitsError, match=r"SR_B1 .*already scaled.*DN = \(value - \(-0.2\)\) / 2.75e-05"):
        landsat_training_table(scaled, tower_table)
    # the tester's case: a GPP_L table with scaled reflectance trained to "0 usable rows" without a hint
    table = joined.assign(**{b: joined[b] * 2.75e-5 - 0.2 for b in bands})
    config = TrainConfig(kind="gpp_l", folds=0, num_boost_round=5, early_stopping_rounds=0, baselines=False)
    with pytest.raises(UnitsError, match=r"not DN as USGS distributes them"):
        train(table, config)


def test_resolution_in_degrees_for_a_metric_grid_says_degrees():
    with pytest.raises(GridError, match=r"looks like a pixel size in degrees.*about 30 m.*resolution=30"):
        GridSpec.from_bbox((127.0, 36.0, 127.2, 36.2), resolution=0.00027)
    with pytest.raises(GridError, match="degrees"):
        GridSpec(crs="EPSG:32652", resolution=0.00027, bounds=(0, 0, 0.0027, 0.0027))
    assert GridSpec.from_bbox((127.0, 36.0, 127.2, 36.2), resolution=30).resolution == 30.0

