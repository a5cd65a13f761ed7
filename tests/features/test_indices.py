"""Vegetation indices and reflectance scaling, tested against real pixels.

Real data (see tests/data/pixels/SOURCE.md):
- Landsat 8 OLI Collection 2 Level-2 DNs of SR_B2..SR_B7 at fixed pixels of four USGS scenes, and the
  scale/offset their MTL files declare;
- MOD13A1 composites at flux towers, whose NDVI/EVI were computed by NASA from the same reflectances;
- MCD43A4 NBAR rows at flux towers, with NDVI/EVI computed independently by the data curator.

Expected values are written from the formulas by hand (plain Python floats), never by calling the kernels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from unique_xr import schema
from unique_xr.errors import MissingVariableError, SpecError, UnitsError
from unique_xr.features import indices
from unique_xr.features.indices import (
    INDICES,
    add_indices,
    compute_index,
    evi,
    evi2,
    kndvi,
    lswi,
    ndvi,
    nirv,
)
from unique_xr.search.collections import LANDSAT_FILE_BANDS, AssetSpec, get_collection
from unique_xr.testing import raise_if_dask_computes

PIXELS = Path(__file__).resolve().parents[1] / "data" / "pixels"
# the crops carry SR_B2..SR_B7: blue, green, red, nir, swir1, swir2
L8_ROLES = {role: band for role, band in LANDSAT_FILE_BANDS["landsat-8"].items() if band in {f"SR_B{i}" for i in range(2, 8)}}


def scale(dn: np.ndarray, asset: AssetSpec) -> np.ndarray:
    """The registry contract: raw * scale + offset, NaN for nodata and raw values outside valid_range."""
    dn = np.asarray(dn, dtype="float64")
    valid = dn != asset.nodata
    if asset.valid_range is not None:
        valid &= (dn >= asset.valid_range[0]) & (dn <= asset.valid_range[1])
    return np.where(valid, dn * asset.scale + asset.offset, np.nan)


@pytest.fixture(scope="module")
def l8_dn() -> pd.DataFrame:
    return pd.read_csv(PIXELS / "landsat8_c2l2_sr_dn.csv")


@pytest.fixture(scope="module")
def l8_reflectance(l8_dn) -> dict[str, np.ndarray]:
    landsat = get_collection("landsat-c2-l2")
    return {role: scale(l8_dn[band].to_numpy(), landsat.asset(role)) for role, band in L8_ROLES.items()}


@pytest.fixture(params=["numpy", "dask"])
def backend(request):
    """Turn a numpy-backed Dataset into the backend under test."""
    if request.param == "numpy":
        return lambda ds: ds
    return lambda ds: ds.chunk({"time": 1, "y": 1, "x": 8})


def cube(bands: dict[str, np.ndarray]) -> xr.Dataset:
    """A (time=1, y=2, x=n/2) cube of float32 bands with CF attrs and a grid_mapping attr."""
    n = len(next(iter(bands.values())))
    shape = (1, 2, n // 2)
    return xr.Dataset(
        {role: (("time", "y", "x"), np.asarray(v[: 2 * (n // 2)], "float32").reshape(shape),
                schema.cf_attrs(role, grid_mapping="spatial_ref")) for role, v in bands.items()},
        coords={"time": [np.datetime64("2019-01-14")], "y": [0.5, 1.5], "x": np.arange(shape[2]) + 0.5},
    )


# ------------------------------------------------------------------------------- scale/offset
def test_landsat_registry_scale_offset_match_the_real_mtl_files():
    mtl = pd.read_csv(PIXELS / "landsat8_c2l2_mtl_scaling.csv")
    landsat = get_collection("landsat-c2-l2")
    band_to_role = {band: role for role, band in L8_ROLES.items()}
    assert sorted(mtl["band"].unique()) == sorted(band_to_role)
    for row in mtl.itertuples():
        asset = landsat.asset(band_to_role[row.band])
        assert asset.scale == row.reflectance_mult
        assert asset.offset == row.reflectance_add
        # the MTL's reflectance extremes are its quantisation extremes through the same scale/offset
        assert row.quantize_cal_min * asset.scale + asset.offset == pytest.approx(row.reflectance_minimum, abs=1e-6)
        assert row.quantize_cal_max * asset.scale + asset.offset == pytest.approx(row.reflectance_maximum, abs=1e-6)


def test_landsat_real_dn_to_reflectance(l8_dn, l8_reflectance):
    for role, band in L8_ROLES.items():
        dn = l8_dn[band].to_numpy()
        hand = np.array([d * 2.75e-5 - 0.2 if 7273 <= d <= 43636 else math.nan for d in dn])
        np.testing.assert_allclose(l8_reflectance[role], hand, rtol=0, atol=1e-12, equal_nan=True)
    first = l8_dn.iloc[0]  # LC08 017051 2015-12-05, row 55 col 77: a vegetated pixel
    assert (first.SR_B4, first.SR_B5) == (8792, 21872)
    assert l8_reflectance["red"][0] == pytest.approx(0.04178, abs=1e-12)
    assert l8_reflectance["nir"][0] == pytest.approx(0.40148, abs=1e-12)


def test_loader_to_physical_on_real_landsat8_dn(l8_dn):
    """The loader's scale/offset step, fed the registry's AssetSpec, on the real DNs."""
    from unique_xr.load.stack import to_physical

    landsat = get_collection("landsat-c2-l2")
    for role, band in L8_ROLES.items():
        asset = landsat.asset(role)
        dn = l8_dn[band].to_numpy()
        got = to_physical(dn, nodata=asset.nodata, valid_range=asset.valid_range, scale=asset.scale,
                          offset=asset.offset)
        hand = [d * 2.75e-5 - 0.2 if d != 0 and 7273 <= d <= 43636 else math.nan for d in dn.tolist()]
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, hand, rtol=0, atol=5e-8, equal_nan=True, err_msg=role)


def test_landsat_real_fill_and_out_of_range_dn_become_nan(l8_dn, l8_reflectance):
    fill = l8_dn["SR_B2"].to_numpy() == 0  # real SR_B2 fill pixels in two scenes
    assert fill.sum() == 2
    assert np.isnan(l8_reflectance["blue"][fill]).all()
    low = l8_dn["SR_B3"].to_numpy() < 7273  # real negative reflectance (DN 2196, 5032)
    assert low.any() and np.isnan(l8_reflectance["green"][low]).all()


# ------------------------------------------------------------------------ kernels, real pixels
def hand_indices(b: float, r: float, n: float, s: float) -> dict[str, float]:
    """Each index written out from its published formula, in plain Python floats (NaN propagates)."""
    nd = (n - r) / (n + r)
    return {
        "ndvi": nd,
        "evi": 2.5 * (n - r) / (n + 6 * r - 7.5 * b + 1),
        "evi2": 2.5 * (n - r) / (n + 2.4 * r + 1),
        "nirv": nd * n,
        "kndvi": math.tanh(nd * nd),
        "lswi": (n - s) / (n + s),
    }


@pytest.fixture(scope="module")
def l8_expected(l8_reflectance) -> dict[str, np.ndarray]:
    rows = [hand_indices(*vals) for vals in zip(*(l8_reflectance[k].tolist() for k in ("blue", "red", "nir", "swir1")))]
    return {k: np.array([row[k] for row in rows]) for k in INDICES}


def call_kernel(name: str, bands: dict[str, np.ndarray]) -> np.ndarray:
    return INDICES[name].kernel(*(bands[b] for b in INDICES[name].bands))


@pytest.mark.parametrize("name", sorted(INDICES))
def test_kernel_matches_hand_formula_on_real_landsat8_pixels(name, l8_reflectance, l8_expected):
    got = call_kernel(name, l8_reflectance)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, l8_expected[name], rtol=1e-6, atol=1e-7, equal_nan=True)
    assert np.isfinite(got).sum() >= 30  # not vacuous: water pixels (NIR < 0) are NaN, most others valid


def test_kernels_on_one_real_pixel_against_numbers_worked_by_hand(l8_reflectance):
    one = {k: v[:1] for k, v in l8_reflectance.items()}  # blue .02638 red .04178 nir .40148 swir1 .1883
    assert ndvi(one["red"], one["nir"])[0] == pytest.approx(0.811488, abs=1e-6)
    assert evi(one["blue"], one["red"], one["nir"])[0] == pytest.approx(0.618334, abs=1e-6)
    assert evi2(one["red"], one["nir"])[0] == pytest.approx(0.598801, abs=1e-6)
    assert nirv(one["red"], one["nir"])[0] == pytest.approx(0.325796, abs=1e-6)
    assert kndvi(one["red"], one["nir"])[0] == pytest.approx(0.577372, abs=1e-6)
    assert lswi(one["nir"], one["swir1"])[0] == pytest.approx(0.361457, abs=1e-6)


def test_kndvi_equals_the_rbf_kernel_form_with_sigma_half_the_band_sum(l8_reflectance):
    r, n = l8_reflectance["red"], l8_reflectance["nir"]
    sigma = 0.5 * (n + r)
    k = np.exp(-((n - r) ** 2) / (2 * sigma**2))
    np.testing.assert_allclose(kndvi(r, n), (1 - k) / (1 + k), rtol=1e-6, atol=1e-7, equal_nan=True)


def test_ndvi_evi_match_nasa_mod13a1_values_for_good_composites():
    """MOD13A1 NDVI/EVI are NASA's own computation from the composite's reflectances (rounded to 1e-4)."""
    df = pd.read_csv(PIXELS / "mod13a1_at_towers.csv")
    good = df[df["SummaryQA"] == 0]
    assert len(good) == 8
    red, nir, blue = (good[c].to_numpy() * 1e-4 for c in ("sur_refl_b01", "sur_refl_b02", "sur_refl_b03"))
    np.testing.assert_allclose(ndvi(red, nir), good["NDVI"] * 1e-4, atol=1.5e-4)
    np.testing.assert_allclose(evi(blue, red, nir), good["EVI"] * 1e-4, atol=1.5e-4)


def test_compute_index_matches_curated_mcd43a4_ndvi_evi(backend):
    """The curator's NDVI_derived / EVI_derived, computed from the same NBAR rows with the published formulas."""
    df = pd.read_csv(PIXELS / "mcd43a4_mod11a1_at_towers.csv")
    df = df[df["QA_Band1"] == "full_inversion"].head(14)
    assert len(df) == 14
    nbar = get_collection("mcd43a4")
    bands = {}
    for role in ("red", "nir", "blue"):
        asset = nbar.asset(role)
        dn = np.rint(df[f"Nadir_Reflectance_Band{asset.key[-1]}"].to_numpy() * 1e4)
        bands[role] = scale(dn, asset)
    ds = backend(cube(bands))
    with raise_if_dask_computes():
        out = add_indices(ds, ["ndvi", "evi"])
    np.testing.assert_allclose(out["ndvi"].values.ravel(), df["NDVI_derived"], rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(out["evi"].values.ravel(), df["EVI_derived"], rtol=2e-6, atol=1e-6)


# ----------------------------------------------------------------------------- kernel edges
@pytest.mark.parametrize(
    ("name", "bands"),
    [
        ("ndvi", {"red": 0.0, "nir": 0.0}),
        ("evi", {"blue": 0.2, "red": 0.0, "nir": 0.5}),  # 0.5 + 0 - 1.5 + 1 = 0
        ("evi2", {"red": 0.0, "nir": -1.0}),
        ("nirv", {"red": 0.0, "nir": 0.0}),
        ("kndvi", {"red": 0.0, "nir": 0.0}),
        ("lswi", {"nir": 0.1, "swir1": -0.1}),
    ],
)
def test_zero_denominator_and_nan_give_nan(name, bands):
    zero = call_kernel(name, {k: np.array([v]) for k, v in bands.items()})
    assert zero.dtype == np.float32 and np.isnan(zero).all()
    for missing in bands:
        with_nan = {k: np.array([math.nan if k == missing else 0.3]) for k in bands}
        assert np.isnan(call_kernel(name, with_nan)).all()


def test_kernels_keep_float32_and_shape():
    r = np.full((2, 3, 4), 0.05, dtype="float32")
    n = np.full((2, 3, 4), 0.45, dtype="float32")
    for name in INDICES:
        got = call_kernel(name, {"blue": r * 0.5, "red": r, "nir": n, "swir1": r * 3})
        assert got.shape == (2, 3, 4) and got.dtype == np.float32 and np.isfinite(got).all()


# --------------------------------------------------------------------------------- xarray layer
def test_add_indices_same_on_numpy_and_dask_and_lazy(l8_reflectance, l8_expected, backend):
    ds = backend(cube(l8_reflectance))
    with raise_if_dask_computes():
        out = add_indices(ds, sorted(INDICES))
    for name in INDICES:
        var = out[name]
        assert var.dtype == np.float32 and var.dims == ("time", "y", "x")
        assert (var.chunks is not None) == (ds["red"].chunks is not None)
        assert var.attrs["units"] == "1" and var.attrs["long_name"] == schema.cf_attrs(name)["long_name"]
        assert var.attrs["grid_mapping"] == "spatial_ref" and var.attrs["formula"] == INDICES[name].formula
        np.testing.assert_allclose(var.values.ravel(), l8_expected[name][:46], rtol=1e-6, atol=1e-7, equal_nan=True)
    np.testing.assert_array_equal(out["red"].values, ds["red"].values)  # inputs untouched


def test_add_indices_defaults_and_single_name(l8_reflectance):
    ds = cube(l8_reflectance)
    assert set(add_indices(ds).data_vars) - set(ds.data_vars) == {"ndvi", "evi"}
    assert set(add_indices(ds, "lswi").data_vars) - set(ds.data_vars) == {"lswi"}
    assert compute_index(ds, "kndvi").name == "kndvi"


def test_missing_band_names_what_exists(l8_reflectance):
    ds = cube({k: l8_reflectance[k] for k in ("red", "nir")})
    with pytest.raises(MissingVariableError, match=r"\['blue'\].*\['nir', 'red'\]"):
        add_indices(ds, ["ndvi", "evi"])
    with pytest.raises(MissingVariableError, match="swir1"):
        compute_index(ds, "lswi")


def test_unknown_index_is_a_clear_error(l8_reflectance):
    with pytest.raises(SpecError, match="choose from.*kndvi"):
        add_indices(cube(l8_reflectance), ["ndwi"])


def test_integer_dn_is_refused_at_once_even_on_dask(l8_dn, backend):
    dn = {role: l8_dn[band].to_numpy() for role, band in L8_ROLES.items()}
    ds = backend(cube(dn).astype("uint16"))
    with raise_if_dask_computes(), pytest.raises(UnitsError, match="raw DN"):
        add_indices(ds, ["ndvi"])


def test_float_dn_raises_units_error_eager_on_numpy_and_at_compute_on_dask(l8_dn, backend):
    dn = cube({role: l8_dn[band].to_numpy() for role, band in L8_ROLES.items()})  # float32, not scaled
    ds = backend(dn)
    if ds["red"].chunks is None:
        with pytest.raises(UnitsError, match="median value"):
            add_indices(ds, ["ndvi"])
        return
    with raise_if_dask_computes():
        lazy = add_indices(ds, ["ndvi"])
    with pytest.raises(UnitsError, match="median value"):
        lazy["ndvi"].compute()


def test_check_units_false_lets_anything_through(l8_dn):
    ds = cube({role: l8_dn[band].to_numpy() for role, band in L8_ROLES.items()})
    out = add_indices(ds, ["ndvi"], check_units=False)
    assert np.isfinite(out["ndvi"].values).all()  # the ratio itself is scale-free in this case


def test_module_is_exported_lazily():
    import unique_xr

    assert unique_xr.indices is indices


@pytest.mark.parametrize("name", sorted(indices.INDICES))
def test_index_into_dispatch_equals_the_numpy_kernel(name, l8_reflectance):
    spec = indices.INDICES[name]
    bands = [np.asarray(l8_reflectance[b], np.float32) for b in spec.bands]
    out = np.empty(bands[0].size, np.float32)
    indices.index_into(indices.INDEX_CODES[name], *(bands + [bands[0]] * (3 - len(bands))), out)
    np.testing.assert_allclose(out, spec.kernel(*bands), rtol=1e-6, atol=1e-7)
    assert set(indices.INDEX_CODES) == set(indices.INDICES)
