"""QA masks: every documented bit, decoded from real QA values wherever real values exist.

Real data (tests/data/pixels/SOURCE.md):
- Landsat 7 C2 L2 QA_PIXEL: all 15 distinct values seen at 70 flux towers 1999-2022, with their SR DNs;
- the ``classification:bitfields`` of a real Planetary Computer ``landsat-c2-l2`` STAC item;
- MOD09GA ``state_1km`` (same layout as MOD09A1 ``sur_refl_state_500m``): all 15 distinct values of a real
  granule, and the ``QA index`` bit documentation written inside that granule;
- MCD43A4 mandatory QA and MOD11A1 QC as decoded strings at flux towers (AppEEARS), mapped back to their codes;
- MOD13A1 pixel reliability (Earth Engine's ``SummaryQA``) at flux towers.
Fields with no real value in the shared data are tested on HAND-CONSTRUCTED values, marked as such below:
Landsat fill (bit 0), cirrus (bit 2) and cirrus confidence (bits 14-15); MOD09 aerosol, fire, salt pan, internal
snow, cloud state 3 and land; MCD43A4 fill 255; MOD13A1 fill -1; MOD11A1 bits 2-7 and mandatory QA 3.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from unique_xr import schema
from unique_xr.errors import AllMaskedError, MissingVariableError, SpecError
from unique_xr.load.masks import (
    LANDSAT_QA_PIXEL_BITS,
    MOD09A1_STATE_BITS,
    apply_qa_mask,
    decode_mod09a1_state,
    decode_mod11a1_qc,
    decode_qa_pixel,
    landsat_clear,
    mcd43a4_good,
    mod09a1_clear,
    mod11a1_good,
    mod13a1_good,
    qa_mask,
)
from unique_xr.search.collections import LANDSAT_FILE_BANDS, AssetSpec, get_collection
from unique_xr.testing import raise_if_dask_computes

PIXELS = Path(__file__).resolve().parents[1] / "data" / "pixels"
DIMS = ("time", "y", "x")


def scale(dn, asset: AssetSpec) -> np.ndarray:
    """The registry contract: raw * scale + offset, NaN for nodata and raw values outside valid_range."""
    dn = np.asarray(dn, dtype="float64")
    valid = dn != asset.nodata
    if asset.valid_range is not None:
        valid &= (dn >= asset.valid_range[0]) & (dn <= asset.valid_range[1])
    return np.where(valid, dn * asset.scale + asset.offset, np.nan).astype("float32")


def cube(variables: dict[str, np.ndarray]) -> xr.Dataset:
    """Lay 1-D per-observation values out along x of a (time=1, y=1, x=n) cube."""
    return xr.Dataset({name: (DIMS, np.asarray(values).reshape(1, 1, -1)) for name, values in variables.items()})


@pytest.fixture(params=["numpy", "dask"])
def backend(request):
    if request.param == "numpy":
        return lambda ds: ds
    return lambda ds: ds.chunk({"time": 1, "x": 4})


# ============================================================================ Landsat QA_PIXEL
FIELDS = ("fill", "dilated_cloud", "cirrus", "cloud", "cloud_shadow", "snow", "clear", "water",
          "cloud_confidence", "cloud_shadow_confidence", "snow_confidence", "cirrus_confidence")
# Every distinct real Landsat 7 QA_PIXEL value at the towers, decoded by hand from its binary form.
# value: fill dil cirrus cloud shadow snow clear water | cloud_conf shadow_conf snow_conf cirrus_conf
REAL_L7_QA = {
    5440: (0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1, 0),   # 0b01_01_01_01_0100_0000 clear, lows set
    5442: (0, 1, 0, 0, 0, 0, 1, 0, 1, 1, 1, 0),   # + dilated cloud
    5504: (0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0),   # water (clear bit 0 over water on Landsat 4-7)
    5506: (0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0),   # water + dilated
    5696: (0, 0, 0, 0, 0, 0, 1, 0, 2, 1, 1, 0),   # clear, medium cloud confidence
    5698: (0, 1, 0, 0, 0, 0, 1, 0, 2, 1, 1, 0),
    5896: (0, 0, 0, 1, 0, 0, 0, 0, 3, 1, 1, 0),   # high-confidence cloud
    7440: (0, 0, 0, 0, 1, 0, 0, 0, 1, 3, 1, 0),   # cloud shadow
    7442: (0, 1, 0, 0, 1, 0, 0, 0, 1, 3, 1, 0),
    7696: (0, 0, 0, 0, 1, 0, 0, 0, 2, 3, 1, 0),
    7698: (0, 1, 0, 0, 1, 0, 0, 0, 2, 3, 1, 0),
    13600: (0, 0, 0, 0, 0, 1, 0, 0, 1, 1, 3, 0),  # snow
    13602: (0, 1, 0, 0, 0, 1, 0, 0, 1, 1, 3, 0),
    13856: (0, 0, 0, 0, 0, 1, 0, 0, 2, 1, 3, 0),
    13858: (0, 1, 0, 0, 0, 1, 0, 0, 2, 1, 3, 0),
}
# HAND-CONSTRUCTED: no fill or cirrus value exists in the shared data (Landsat 7 has no cirrus band and the
# Landsat 8 crops carry no QA_PIXEL).
CONSTRUCTED_QA = {
    1: (1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),      # fill
    21824: (0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1, 1),  # Landsat 8-9 style clear: low cirrus confidence (bits 14-15 = 01)
    54532: (0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 3),  # high-confidence cirrus: bit 2 and bits 14-15 = 11
}
# landsat_clear with default options, by hand: only 5440 (clear), 5504 (water) and 5696 (medium-conf clear) pass
DEFAULT_CLEAR = {5440, 5504, 5696, 21824}


@pytest.fixture(scope="module")
def l7() -> pd.DataFrame:
    return pd.read_csv(PIXELS / "landsat7_c2l2_qa_pixel_at_towers.csv")


def test_landsat_bit_table_matches_the_real_stac_bitfields():
    doc = json.loads((PIXELS / "landsat_c2_qa_pixel_bitfields.json").read_text())
    fields = {f["name"]: (f["offset"], f["length"]) for f in doc["classification:bitfields"]}
    ours = {name: (bf.offset, bf.length) for name, bf in LANDSAT_QA_PIXEL_BITS.items()}
    assert ours == fields
    assert tuple(ours) == FIELDS


def test_real_landsat7_values_cover_every_distinct_value(l7):
    assert set(l7["QA_PIXEL"]) == set(REAL_L7_QA)


@pytest.mark.parametrize("table", [REAL_L7_QA, CONSTRUCTED_QA], ids=["real", "constructed"])
def test_decode_qa_pixel_every_bit(table):
    values = np.array(list(table), dtype="uint16")
    decoded = decode_qa_pixel(values)
    assert list(decoded) == list(FIELDS)
    for i, name in enumerate(FIELDS):
        expected = np.array([row[i] for row in table.values()])
        np.testing.assert_array_equal(decoded[name], expected, err_msg=name)
        assert decoded[name].dtype == (np.bool_ if i < 8 else np.uint8)


def test_landsat_clear_defaults_and_each_option():
    table = {**REAL_L7_QA, **CONSTRUCTED_QA}
    values = np.array(list(table), dtype="uint16")

    def passing(**options):
        return {int(v) for v, ok in zip(values, landsat_clear(values, **options)) if ok}

    assert passing() == DEFAULT_CLEAR
    assert passing(dilated_cloud=False) == DEFAULT_CLEAR | {5442, 5506, 5698}
    assert passing(snow=False) == DEFAULT_CLEAR | {13600, 13856}
    assert passing(shadow=False) == DEFAULT_CLEAR | {7440, 7696}
    assert passing(cloud=False) == DEFAULT_CLEAR | {5896}
    assert passing(cirrus=False) == DEFAULT_CLEAR | {54532}
    assert passing(mask_fill=False) == DEFAULT_CLEAR | {1}


def test_apply_qa_mask_on_real_landsat7_observations(l7, backend):
    landsat = get_collection("landsat-c2-l2")
    bands = {role: scale(l7[band], landsat.asset(role)) for role, band in LANDSAT_FILE_BANDS["landsat-7"].items()
             if band.startswith("SR_")}
    ds = backend(cube({**bands, "qa_pixel": l7["QA_PIXEL"].to_numpy("uint16")}))
    with raise_if_dask_computes():
        out = apply_qa_mask(ds, "landsat-c2-l2")
    expected_clear = l7["QA_PIXEL"].isin(DEFAULT_CLEAR).to_numpy()
    assert expected_clear.sum() == 6  # 2 observations each of 5440, 5504 and 5696
    np.testing.assert_array_equal(out["clear"].values.ravel(), expected_clear.astype("uint8"))
    for role, values in bands.items():
        kept = np.where(expected_clear, values, np.nan)
        np.testing.assert_array_equal(out[role].values.ravel(), kept)
    assert "qa_pixel" not in out and out["clear"].dtype == np.uint8
    assert out["clear"].attrs["flag_meanings"] == schema.cf_attrs("clear")["flag_meanings"]


def test_qa_mask_options_reach_the_kernel(l7, backend):
    ds = backend(cube({"qa_pixel": l7["QA_PIXEL"].to_numpy("uint16")}))
    with raise_if_dask_computes():
        strict = qa_mask(ds, "landsat", dilated_cloud=True)
        relaxed = qa_mask(ds, "landsat", dilated_cloud=False, snow=False)
    assert strict.dtype == bool and strict.name == "clear"
    assert int(strict.sum()) == 6
    relaxed_values = DEFAULT_CLEAR | {5442, 5506, 5698, 13600, 13602, 13856, 13858}
    assert int(relaxed.sum()) == int(l7["QA_PIXEL"].isin(relaxed_values).sum())


# ====================================================================== MOD09A1 / MOD09GA state
def parse_qa_index(text: str) -> dict[str, tuple[int, int, dict[str, str]]]:
    """The real granule's own bit documentation -> {description: (offset, length, {code: meaning})}."""
    fields, current = {}, None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head = re.match(r"\s*(\d+)(?:-(\d+))?\s+(.+?);?\s*$", line)
        code = re.match(r"\s*([01]+) -- ([^,]+),", line)
        if code and current:
            fields[current][2][code.group(1)] = code.group(2).strip()
        elif head:
            lo, hi = int(head.group(1)), int(head.group(2) or head.group(1))
            current = head.group(3).rstrip(";").strip()
            fields[current] = (lo, hi - lo + 1, {})
    return fields


OURS_BY_DESCRIPTION = {
    "cloud state": "cloud_state", "cloud shadow": "cloud_shadow", "land/water flag": "land_water",
    "aerosol quantity": "aerosol_quantity", "cirrus detected": "cirrus",
    "internal cloud algorithm flag": "internal_cloud", "internal fire algorithm flag": "internal_fire",
    "MOD35 snow/ice flag": "mod35_snow_ice", "Pixel is adjacent to cloud": "adjacent_to_cloud",
    "Salt Pan": "salt_pan", "internal snow algorithm flag": "internal_snow",
}


def test_mod09_bit_table_matches_the_real_granules_own_documentation():
    doc = parse_qa_index((PIXELS / "mod09ga_state_1km_qa_index.txt").read_text())
    assert set(doc) == set(OURS_BY_DESCRIPTION)
    for description, (offset, length, _) in doc.items():
        assert MOD09A1_STATE_BITS[OURS_BY_DESCRIPTION[description]][:2] == (offset, length), description
    # the class codes mod09a1_clear relies on
    assert doc["cloud state"][2] == {"00": "clear", "01": "cloudy", "10": "mixed", "11": "not set"}
    assert doc["cirrus detected"][2]["10"] == "average" and doc["cirrus detected"][2]["11"] == "high"
    assert doc["aerosol quantity"][2]["11"] == "high"
    assert doc["land/water flag"][2]["001"] == "land"


STATE_FIELDS = tuple(MOD09A1_STATE_BITS)
# Every distinct value of the real MOD09GA state_1km layer (h14v17, 2008-10-22), decoded by hand.
# value: cloud_state shadow land_water aerosol cirrus int_cloud fire mod35_snow adjacent salt_pan int_snow
REAL_STATE = {
    5: (1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    1025: (1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0),
    1073: (1, 0, 6, 0, 0, 1, 0, 0, 0, 0, 0),
    4144: (0, 0, 6, 0, 0, 0, 0, 1, 0, 0, 0),
    5168: (0, 0, 6, 0, 0, 1, 0, 1, 0, 0, 0),
    5936: (0, 0, 6, 0, 3, 1, 0, 1, 0, 0, 0),
    5938: (2, 0, 6, 0, 3, 1, 0, 1, 0, 0, 0),
    8193: (1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0),
    8197: (1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0),
    8241: (1, 0, 6, 0, 0, 0, 0, 0, 1, 0, 0),
    8245: (1, 1, 6, 0, 0, 0, 0, 0, 1, 0, 0),
    9217: (1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0),
    9265: (1, 0, 6, 0, 0, 1, 0, 0, 1, 0, 0),
    13312: (0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0),
    65535: (3, 1, 7, 3, 3, 1, 1, 1, 1, 1, 1),  # _FillValue
}
# HAND-CONSTRUCTED for the fields no real value exercises: land (001) with one more field each.
CONSTRUCTED_STATE = {
    8: (0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0),        # clear land
    11: (3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0),       # cloud state "not set, assumed clear"
    200: (0, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0),      # high aerosol
    264: (0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0),      # small cirrus
    520: (0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0),      # average cirrus
    2056: (0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0),     # internal fire
    16392: (0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0),    # salt pan
    32776: (0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1),    # internal snow
}


def test_real_mod09_values_cover_every_distinct_value():
    real = pd.read_csv(PIXELS / "mod09ga_state_1km_values.csv")
    assert set(real["state_1km"]) == set(REAL_STATE)


@pytest.mark.parametrize("table", [REAL_STATE, CONSTRUCTED_STATE], ids=["real", "constructed"])
def test_decode_mod09a1_state_every_bit(table):
    decoded = decode_mod09a1_state(np.array(list(table), dtype="uint16"))
    assert tuple(decoded) == STATE_FIELDS
    for i, name in enumerate(STATE_FIELDS):
        np.testing.assert_array_equal(decoded[name], [row[i] for row in table.values()], err_msg=name)


def test_mod09a1_clear_defaults_and_each_option():
    values = np.array(list({**REAL_STATE, **CONSTRUCTED_STATE}), dtype="uint16")

    def passing(**options):
        return {int(v) for v, ok in zip(values, mod09a1_clear(values, **options)) if ok}

    base = {8, 11, 264, 2056, 16392}  # by hand: clear/assumed-clear land, small cirrus, fire, salt pan
    assert passing() == base  # every real value is cloudy, mixed, snowy or fill (Antarctic granule in October)
    assert passing(snow=False) == base | {4144, 5168, 13312, 32776}
    assert passing(snow=False, cirrus=False) == base | {4144, 5168, 5936, 13312, 32776, 520}
    assert passing(snow=False, adjacent_to_cloud=True) == base | {4144, 5168, 32776}
    assert passing(snow=False, internal_cloud=True) == base | {4144, 32776}
    assert passing(snow=False, water=True) == base | {32776}  # 4144/5168/13312 are ocean
    assert passing(high_aerosol=False) == base | {200}
    assert passing(cloud=False) == base | {1025, 1073, 8193, 8241, 9217, 9265}  # 5, 8197, 8245 have shadow
    assert passing(cloud=False, shadow=False) == base | {5, 1025, 1073, 8193, 8197, 8241, 8245, 9217, 9265}
    assert passing(mixed_cloud=False, snow=False, cirrus=False) == base | {4144, 5168, 5936, 5938, 13312, 32776, 520}
    assert 65535 not in passing(cloud=False, mixed_cloud=False, shadow=False, cirrus=False, snow=False,
                                high_aerosol=False)
    assert 65535 in passing(mask_fill=False, cloud=False, mixed_cloud=False, shadow=False, cirrus=False,
                            snow=False, high_aerosol=False)


def test_apply_qa_mask_mod09a1_counts_fill_separately(backend):
    real = pd.read_csv(PIXELS / "mod09ga_state_1km_values.csv")
    state = real["state_1km"].to_numpy("uint16")
    red = np.linspace(0.02, 0.3, state.size, dtype="float32")
    ds = backend(cube({"red": red, "qa_state": state}))
    out = apply_qa_mask(ds, "mod09a1", snow=False)
    expected = np.isin(state, [4144, 5168, 13312])
    np.testing.assert_array_equal(np.isfinite(out["red"].values.ravel()), expected)
    with pytest.raises(AllMaskedError, match=r"0 of 15 pixel observations.*1 \(6.7%\) are fill"):
        apply_qa_mask(ds, "mod09a1").compute()  # defaults: all 15 real values are masked


# ========================================================================= MCD43A4 / MOD11A1
MANDATORY = {"full_inversion": 0, "magnitude_inversion": 1}  # AppEEARS decoding of the mandatory QA codes
LST_QC = {"good": 0b00, "other_quality": 0b01, "not_produced_cloud": 0b10}


@pytest.fixture(scope="module")
def towers() -> pd.DataFrame:
    return pd.read_csv(PIXELS / "mcd43a4_mod11a1_at_towers.csv")


def mandatory_code(strings: pd.Series) -> np.ndarray:
    # upstream appends "_b5b6fill" to some days' strings; the code is the prefix
    return strings.str.replace("_b5b6fill", "", regex=False).map(MANDATORY).to_numpy("uint8")


def test_mcd43a4_good_on_real_codes(towers):
    codes = mandatory_code(towers["QA_Band1"])
    assert set(codes) == {0, 1}
    np.testing.assert_array_equal(mcd43a4_good(codes), np.ones(codes.size, bool))
    np.testing.assert_array_equal(mcd43a4_good(codes, allow_magnitude=False), codes == 0)
    # real property of the source: band 1 NBAR is missing exactly on its magnitude-inversion days
    np.testing.assert_array_equal(towers["Nadir_Reflectance_Band1"].isna().to_numpy(), codes == 1)
    # HAND-CONSTRUCTED: no fill (255) in the tower extraction
    assert not mcd43a4_good(np.array([255], "uint8")).any()


def test_apply_qa_mask_mcd43a4_each_band_qa_masks_its_band(towers, backend):
    nbar = get_collection("mcd43a4")
    variables, qa = {}, {}
    for role in ("red", "nir", "blue", "swir1"):
        asset = nbar.asset(role)
        band = asset.key.removeprefix("Nadir_Reflectance_Band")
        variables[role] = scale(np.rint(towers[f"Nadir_Reflectance_Band{band}"].to_numpy() * 1e4), asset)
        qa[role] = mandatory_code(towers[f"QA_Band{band}"])
        variables[f"qa_{role}"] = qa[role]
    ds = backend(cube(variables))
    with raise_if_dask_computes():
        out = apply_qa_mask(ds, "modis-43A4-061", allow_magnitude=False)
    for role in ("red", "nir", "blue", "swir1"):
        expected = np.where(qa[role] == 0, variables[role], np.nan)
        np.testing.assert_array_equal(out[role].values.ravel(), expected, err_msg=role)
    all_full = (qa["red"] == 0) & (qa["nir"] == 0) & (qa["blue"] == 0) & (qa["swir1"] == 0)
    np.testing.assert_array_equal(out["clear"].values.ravel(), all_full)
    # real fill: NBAR 32767 on the "_b5b6fill" days is NaN after scaling, QA notwithstanding
    assert np.isnan(variables["nir"][towers["QA_Band2"].str.endswith("b5b6fill").to_numpy()]).all()


def test_mod11a1_good_on_real_codes(towers):
    qc = towers["LST_Day_1km_Terra_QA"].map(LST_QC).to_numpy("uint8")
    assert set(qc) == {0, 1, 2}
    np.testing.assert_array_equal(mod11a1_good(qc), qc <= 1)
    np.testing.assert_array_equal(mod11a1_good(qc, allow_other_quality=False), qc == 0)
    # real property: LST is missing exactly where QC says "not produced due to cloud"
    np.testing.assert_array_equal(towers["LST_Day_1km_Terra"].isna().to_numpy(), qc == 2)


def test_decode_mod11a1_qc_constructed_bytes():
    # HAND-CONSTRUCTED: only the mandatory-QA meaning of bits 0-1 exists as real (decoded) data
    qc = np.array([0b00_00_00_00, 0b11_10_01_01, 0b01_11_10_11, 0b10_01_11_10], dtype="uint8")
    d = decode_mod11a1_qc(qc)
    assert d["mandatory_qa"].tolist() == [0, 1, 3, 2]
    assert d["data_quality"].tolist() == [0, 1, 2, 3]
    assert d["emissivity_error"].tolist() == [0, 2, 3, 1]
    assert d["lst_error"].tolist() == [0, 3, 1, 2]
    assert mod11a1_good(qc).tolist() == [True, True, False, False]  # bits 2-7 do not matter


def test_apply_qa_mask_mod11a1_day_qa_masks_day_lst(towers, backend):
    lst_asset = get_collection("mod11a1").asset("lst_day")
    lst = scale(np.rint(towers["LST_Day_1km_Terra"].fillna(0).to_numpy() / lst_asset.scale), lst_asset)
    qc = towers["LST_Day_1km_Terra_QA"].map(LST_QC).to_numpy("uint8")
    ds = backend(cube({"lst_day": lst, "qa_day": qc}))
    out = apply_qa_mask(ds, "mod11a1", allow_other_quality=False)
    np.testing.assert_allclose(out["lst_day"].values.ravel(), np.where(qc == 0, lst, np.nan), rtol=1e-7)
    assert np.nanmin(out["lst_day"].values) > 240  # Kelvin, scaled by the registry


# ==================================================================================== MOD13A1
def test_mod13a1_good_on_real_reliability_and_constructed_fill():
    rel = pd.read_csv(PIXELS / "mod13a1_at_towers.csv")["SummaryQA"].to_numpy("int8")
    assert set(rel) == {0, 1, 2, 3}
    np.testing.assert_array_equal(mod13a1_good(rel), rel <= 1)
    np.testing.assert_array_equal(mod13a1_good(rel, allow_marginal=False), rel == 0)
    np.testing.assert_array_equal(mod13a1_good(rel, allow_snow=True), rel <= 2)
    # HAND-CONSTRUCTED: no fill (-1) in the tower extraction
    assert not mod13a1_good(np.array([-1], "int8"), allow_marginal=True, allow_snow=True).any()


def test_apply_qa_mask_mod13a1_on_real_composites(backend):
    df = pd.read_csv(PIXELS / "mod13a1_at_towers.csv")
    mod13 = get_collection("mod13a1")
    ndvi = scale(df["NDVI"], mod13.asset("ndvi"))
    rel = df["SummaryQA"].to_numpy("int8")
    ds = backend(cube({"ndvi": ndvi, "qa_reliability": rel}))
    out = apply_qa_mask(ds, "mod13a1", allow_marginal=False)
    np.testing.assert_array_equal(out["ndvi"].values.ravel(), np.where(rel == 0, ndvi, np.nan))


# ================================================================ xarray layer: fill, errors, laziness
def landsat_cube(qa: np.ndarray, **extra) -> xr.Dataset:
    red = np.full(qa.shape, 0.05, dtype="float32")
    return xr.Dataset({"red": (DIMS, red), "qa_pixel": (DIMS, qa), **extra})


def test_nodata_attr_and_float_nan_qa_are_masked_as_fill():
    qa = np.full((1, 2, 2), 5440, dtype="uint16")
    qa[0, 0, 0] = 0  # not fill by the bit layout, but the variable's nodata says so
    ds = landsat_cube(qa)
    ds["qa_pixel"].attrs.update(nodata=0, grid_mapping="spatial_ref")
    out = apply_qa_mask(ds, "landsat")
    assert out["clear"].values.ravel().tolist() == [0, 1, 1, 1]
    assert out["clear"].attrs["grid_mapping"] == "spatial_ref"
    as_float = ds.assign(qa_pixel=ds["qa_pixel"].astype("float32").where(ds["qa_pixel"] != 0))
    del as_float["qa_pixel"].attrs["nodata"]
    assert apply_qa_mask(as_float, "landsat")["clear"].values.ravel().tolist() == [0, 1, 1, 1]


def test_static_and_integer_variables():
    qa = np.array([[[5440, 5896]]], dtype="uint16")
    ds = landsat_cube(qa, elevation=(("y", "x"), np.float32([[100.0, 200.0]])),
                      count=(DIMS, np.array([[[3, 4]]], dtype="int16")))
    out = apply_qa_mask(ds, "landsat", drop_qa=False)
    np.testing.assert_array_equal(out["elevation"], ds["elevation"])  # static layer untouched
    assert out["count"].dtype == np.float32 and np.isnan(out["count"].values[0, 0, 1])
    assert "qa_pixel" in out and out["qa_pixel"].dtype == np.uint16


def test_missing_qa_variable_names_what_exists():
    ds = xr.Dataset({"red": (DIMS, np.zeros((1, 1, 1), "float32"))})
    with pytest.raises(MissingVariableError, match=r"\['qa_pixel'\].*has \['red'\]"):
        apply_qa_mask(ds, "landsat-c2-l2")
    with pytest.raises(MissingVariableError, match="qa_red"):
        qa_mask(ds, "mcd43a4")


def test_unknown_option_and_collection_without_qa():
    ds = landsat_cube(np.array([[[5440]]], dtype="uint16"))
    with pytest.raises(TypeError, match=r"\['clouds'\].*dilated_cloud"):
        qa_mask(ds, "landsat", clouds=False)
    with pytest.raises(SpecError, match="no QA layout"):
        qa_mask(ds, "nasadem")


def test_all_masked_numpy_raises_at_once_with_what_was_seen():
    qa = np.full((2, 2, 2), 5896, dtype="uint16")  # real cloud value
    qa[0, 0, 0] = 1  # fill
    with pytest.raises(AllMaskedError) as err:
        apply_qa_mask(landsat_cube(qa), "landsat-c2-l2")
    message = str(err.value)
    assert "0 of 8 pixel observations" in message and "1 (12.5%) are fill" in message
    assert "7 (87.5%) are flagged" in message and "widen the dates" in message and "relax the options" in message


class RecordingTarget:
    """A ``dask.array.store`` target that records every chunk written."""

    def __init__(self, shape):
        self.shape, self.dtype, self.ndim = shape, np.float32, len(shape)
        self.writes = []

    def __setitem__(self, key, value):
        self.writes.append(key)


def test_all_masked_dask_stays_lazy_and_raises_before_any_chunk_is_written():
    import dask.array as dsa

    ds = landsat_cube(np.full((2, 4, 4), 5896, dtype="uint16")).chunk({"time": 1, "y": 2, "x": 2})
    with raise_if_dask_computes():
        out = apply_qa_mask(ds, "landsat-c2-l2")
    target = RecordingTarget(out["red"].shape)
    with pytest.raises(AllMaskedError, match="0 of 32 pixel observations"):
        dsa.store(out["red"].data, target, lock=False)
    assert target.writes == []
    with pytest.raises(AllMaskedError):
        out["clear"].compute()


def test_every_output_chunk_depends_on_the_global_check():
    ds = landsat_cube(np.full((2, 4, 4), 5440, dtype="uint16")).chunk({"time": 1, "y": 2, "x": 2})
    out = apply_qa_mask(ds, "landsat-c2-l2")
    for name in ("red", "clear"):
        graph = out[name].data.__dask_graph__()
        deps = graph.get_all_dependencies()
        check = [k for k in deps if isinstance(k, tuple) and str(k[0]).startswith("all-masked-check-")]
        assert len(check) == 1
        keys = list(_flat_keys(out[name].data.__dask_keys__()))
        assert len(keys) == 8
        for key in keys:
            assert check[0] in _ancestors(key, deps), key


def _flat_keys(keys):
    if isinstance(keys, list):
        for k in keys:
            yield from _flat_keys(k)
    else:
        yield keys


def _ancestors(key, deps):
    seen, stack = set(), [key]
    while stack:
        for dep in deps.get(stack.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


def test_check_all_masked_false_streams_without_the_check():
    ds = landsat_cube(np.full((1, 2, 2), 5896, dtype="uint16")).chunk({"y": 1})
    out = apply_qa_mask(ds, "landsat", check_all_masked=False).compute()
    assert out["clear"].values.sum() == 0 and np.isnan(out["red"].values).all()


def test_numpy_and_dask_give_identical_results(l7):
    landsat = get_collection("landsat-c2-l2")
    ds = cube({"nir": scale(l7["SR_B4"], landsat.asset("nir")), "qa_pixel": l7["QA_PIXEL"].to_numpy("uint16")})
    eager = apply_qa_mask(ds, "landsat", snow=False)
    with raise_if_dask_computes():
        lazy = apply_qa_mask(ds.chunk({"x": 5}), "landsat", snow=False)
    assert lazy["nir"].chunks is not None and lazy["clear"].chunks is not None
    xr.testing.assert_identical(eager, lazy.compute())
