"""Product knowledge lives once: band <-> role tables and asset lists in the collection registry,
valid ranges and units in :mod:`unique_xr.schema`; the tower tables, the data layer and the model
inputs read them, so they agree by construction."""

from __future__ import annotations

import pandas as pd
import pytest

from unique_xr import schema
from unique_xr.errors import UnknownAssetError
from unique_xr.models import features
from unique_xr.search.collections import (
    LANDSAT_ASSETS,
    LANDSAT_FILE_BANDS,
    LANDSAT_TABLE_COLUMNS,
    MCD43A4_TABLE_COLUMNS,
    MODIS_ASSETS,
    MODIS_BAND_ROLES,
    MODIS_LST_TABLE_COLUMNS,
    get_collection,
)
from unique_xr.towers import tables
from unique_xr.towers.tables import clear_tower_table

NBAR = get_collection("mcd43a4")
LANDSAT = get_collection("landsat-c2-l2")


def test_the_band_tables_state_the_user_guides():
    # MCD43 C6.1 user guide: NBAR bands 1-7 are 620-670, 841-876, 459-479, 545-565, 1230-1250,
    # 1628-1652 and 2105-2155 nm
    assert {NBAR.asset(f"Nadir_Reflectance_Band{b}").role for b in range(1, 8)} == set(MODIS_BAND_ROLES.values())
    assert [NBAR.asset(f"Nadir_Reflectance_Band{b}").role for b in range(1, 8)] == [
        "red", "nir", "blue", "green", "nir2", "swir1", "swir2"]
    # Landsat C2 L2 science product guides: TM/ETM+ red SR_B3, nir SR_B4; OLI red SR_B4, nir SR_B5
    for platform in ("landsat-4", "landsat-5", "landsat-7"):
        assert LANDSAT_FILE_BANDS[platform] == {"blue": "SR_B1", "green": "SR_B2", "red": "SR_B3", "nir": "SR_B4",
                                                "swir1": "SR_B5", "swir2": "SR_B7", "lst_day": "ST_B6"}
    for platform in ("landsat-8", "landsat-9"):
        assert LANDSAT_FILE_BANDS[platform]["red"] == "SR_B4" and LANDSAT_FILE_BANDS[platform]["nir"] == "SR_B5"
        assert LANDSAT_FILE_BANDS[platform]["lst_day"] == "ST_B10"


def test_each_mcd43a4_band_has_its_own_qa_and_the_data_layer_loads_it():
    for band, role in MODIS_BAND_ROLES.items():
        qa = NBAR.qa_of(role)
        assert qa.key == f"BRDF_Albedo_Band_Mandatory_Quality_Band{band}" and qa.role == f"qa_{role}"
    assert LANDSAT.qa_of("red") is None  # qa_pixel covers every band at once
    loaded = [NBAR.asset(k) for k in MODIS_ASSETS]
    bands = [a for a in loaded if not a.is_qa]
    assert [a.role for a in bands] == ["red", "nir", "blue", "swir1"]
    assert [a for a in loaded if a.is_qa] == [NBAR.qa_of(a.role) for a in bands]
    # the defaults differ on purpose, and only by the QA of blue and swir1
    assert set(MODIS_ASSETS) - set(NBAR.default_assets) == {NBAR.qa_of("blue").key, NBAR.qa_of("swir1").key}
    assert NBAR.asset_set("default") == NBAR.default_assets and LANDSAT_ASSETS == LANDSAT.default_assets
    with pytest.raises(UnknownAssetError, match="bands_with_qa"):
        NBAR.asset_set("everything")


def test_tower_table_columns_come_from_the_registry():
    for role, (value, qa) in MCD43A4_TABLE_COLUMNS.items():
        assert NBAR.asset(value).role == role
        assert qa == "QA_" + value.removeprefix("Nadir_Reflectance_")
    assert list(MCD43A4_TABLE_COLUMNS) == list(MODIS_BAND_ROLES.values())
    assert tables._LANDSAT_457 == {b: r for r, b in LANDSAT_FILE_BANDS["landsat-7"].items()}
    assert tables._LANDSAT_89 == {b: r for r, b in LANDSAT_FILE_BANDS["landsat-8"].items()}
    every_file_band = {b for bands in LANDSAT_FILE_BANDS.values() for b in bands.values()}
    assert set(LANDSAT_TABLE_COLUMNS) == every_file_band | {"QA_PIXEL"}
    # clear_tower_table names its outputs by the registry's roles
    row = {value: [0.25] for value, _ in MCD43A4_TABLE_COLUMNS.values()}
    row |= {qa: ["full_inversion"] for _, qa in MCD43A4_TABLE_COLUMNS.values()}
    row |= {column: [290.0] for column, _ in MODIS_LST_TABLE_COLUMNS.values()}
    row |= {qa: ["good"] for _, qa in MODIS_LST_TABLE_COLUMNS.values()}
    out = clear_tower_table(pd.DataFrame(row))
    assert set(MCD43A4_TABLE_COLUMNS) | set(MODIS_LST_TABLE_COLUMNS) <= set(out.columns)


def test_model_inputs_read_the_registry_and_the_schema():
    assert features._MODIS_ROLES == tuple(MODIS_BAND_ROLES.values())
    assert features._LANDSAT_ROLES == ("blue", "green", "red", "nir", "swir1", "swir2")
    assert features.LANDSAT_RAW_COLUMNS == LANDSAT_TABLE_COLUMNS
    for role, (value, qa) in MCD43A4_TABLE_COLUMNS.items():
        assert [a.name for a in features.INPUTS[f"nbar_{role}"].aliases] == [value, role]
        assert [a.name for a in features.INPUTS[f"nbar_qa_{role}"].aliases] == [qa, NBAR.qa_of(role).role]
    for role, (column, _) in MODIS_LST_TABLE_COLUMNS.items():
        assert features.INPUTS[role].aliases[0].name == column
    thermal = [a.role for a in LANDSAT.assets if a.kind == "temperature"]
    assert [a.name for a in features.INPUTS["landsat_st"].aliases] == thermal
    variable = {
        **{f"nbar_{r}": r for r in MODIS_BAND_ROLES.values()}, **{f"sr_{r}": r for r in features._LANDSAT_ROLES},
        "lst_day_terra": "lst_day", "lst_day_aqua": "lst_day", "landsat_st": "lst_day",
        "air_temperature": "air_temperature", "shortwave_radiation": "shortwave_radiation", "vpd": "vpd",
        "lat": "latitude",
    }
    for name, spec in features.INPUTS.items():
        if spec.valid_range is None:
            continue
        assert spec.valid_range == schema.VARIABLES[variable[name]]["valid_range"], name
        assert spec.units == schema.VARIABLES[variable[name]]["units"], name
    # one air-temperature range: the records (-89.2, +56.7 degC) lie inside it
    assert features.INPUTS["air_temperature"].valid_range == (-90.0, 60.0)
