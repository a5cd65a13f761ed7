"""The compiled feature engine gives the features of a plain xarray implementation (within 1e-6).

``reference_features`` below is the feature derivation written with xarray's own operations
(``interpolate_na``, ``rolling(...).median()/.mean()``, array arithmetic) — independent of
:mod:`unique_xr.features.engine`. It is checked against the engine on real tower rows (GPP_M and
GPP_L tables: ``../shared/data/towers``, see SOURCE.txt there) and on seeded synthetic cubes, numpy
and Dask.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from unique_xr.features import engine
from unique_xr.models import features as mf
from unique_xr.models.features import RECIPES, derive_features, features_from_table
from unique_xr.testing import raise_if_dask_computes


def _nd(a, b):
    return (a - b) / (a + b)


def _fill_smooth(da, gap_days, window, stat):
    if gap_days > 0:
        da = da.interpolate_na("time", max_gap=pd.Timedelta(days=gap_days + 1), use_coordinate=True)
    roll = da.rolling(time=window, center=True, min_periods=1)
    return roll.median() if stat == "median" else roll.mean()


def reference_features(inputs: xr.Dataset, recipe) -> xr.Dataset:
    """The features of ``recipe`` with xarray operations only."""
    f = {}
    if recipe.kind == "gpp_m":
        bands = {}
        for role in mf._MODIS_ROLES:
            da = inputs[f"nbar_{role}"]
            if f"nbar_qa_{role}" in inputs:
                da = da.where(inputs[f"nbar_qa_{role}"])
            da = da.where((da > 0) & (da < 1))
            bands[role] = _fill_smooth(da, recipe.gap_days, recipe.smooth_days, "median")
        terra, aqua = inputs["lst_day_terra"], inputs["lst_day_aqua"]
        seen = terra.notnull().astype("float64") + aqua.notnull()
        lst = (terra.fillna(0.0) + aqua.fillna(0.0)) / seen.where(seen > 0)
        lst = _fill_smooth(lst, min(recipe.gap_days, 10), 7, "mean")
    else:
        bands = {r: inputs[f"sr_{r}"].where((inputs[f"sr_{r}"] > 0) & (inputs[f"sr_{r}"] < 1))
                 for r in mf._LANDSAT_ROLES}
        lst = inputs["landsat_st"]
    for role, da in bands.items():
        f[f"b_{role}"] = da
    red, nir, blue = bands["red"], bands["nir"], bands["blue"]
    f["ndvi"] = _nd(nir, red)
    f["evi"] = 2.5 * (nir - red) / (nir + 6 * red - 7.5 * blue + 1)
    f["nirv"] = f["ndvi"] * nir
    f["kndvi"] = np.tanh(f["ndvi"] ** 2)
    f["lswi"] = _nd(nir, bands["swir1"])
    f["nd_swir2"] = _nd(nir, bands["swir2"])
    f["lst"] = lst
    doy = inputs["time"].dt.dayofyear.astype("float64")
    f["doy"] = doy
    phi = np.deg2rad(inputs["lat"])
    dr = 1 + 0.033 * np.cos(2 * np.pi * doy / 365)
    dec = 0.409 * np.sin(2 * np.pi * doy / 365 - 1.39)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(dec), -1, 1))
    f["rad_toa"] = 1367.0 / np.pi * dr * (ws * np.sin(phi) * np.sin(dec) + np.cos(phi) * np.cos(dec) * np.sin(ws))
    f["nirv_x_rad_toa"] = f["nirv"] * f["rad_toa"]
    f["evi_x_rad_toa"] = f["evi"] * f["rad_toa"]
    for name in ("air_temperature", "shortwave_radiation", "vpd"):
        f[name] = inputs[name]
    f["nirv_x_shortwave"] = f["nirv"] * inputs["shortwave_radiation"]
    if recipe.kind == "gpp_m":
        for w in recipe.met_windows:
            for name in ("air_temperature", "shortwave_radiation", "vpd"):
                f[f"{name}_{w}d"] = inputs[name].rolling(time=w, min_periods=1).mean()
    like = inputs[recipe.inputs[0]]
    return xr.Dataset({k: f[k].broadcast_like(like) for k in recipe.features}).transpose(*like.dims)


def assert_same_features(got: xr.Dataset | pd.DataFrame, ref: xr.Dataset | pd.DataFrame, names) -> None:
    for name in names:
        a, b = np.asarray(got[name], dtype="float64"), np.asarray(ref[name], dtype="float64")
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"NaN pattern of {name}")
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True, err_msg=name)


def test_feature_names_are_the_recipes():
    for recipe in RECIPES.values():
        roles = mf.recipe_roles(recipe)
        windows = recipe.met_windows if recipe.kind == "gpp_m" else ()
        assert engine.feature_names(roles, windows) == recipe.features


@pytest.mark.parametrize("kind", ["gpp_m", "gpp_l"])
def test_real_tower_rows_give_the_reference_features(kind, daily_table, landsat_table, monkeypatch):
    table = daily_table if kind == "gpp_m" else landsat_table.iloc[:3000]
    recipe = RECIPES[kind]
    got = features_from_table(table, recipe)
    monkeypatch.setattr(mf, "derive_features", reference_features)
    ref = mf.features_from_table(table, recipe)
    assert len(got) == len(table) and np.isfinite(got["b_nir"]).mean() > 0.3
    assert_same_features(got, ref, recipe.features)


def _synthetic_inputs(kind: str, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    recipe = RECIPES[kind]
    time = pd.date_range("2021-01-01", periods=120 if kind == "gpp_m" else 9, freq="D" if kind == "gpp_m" else "16D")
    shape = (len(time), 3, 5)
    data = {}
    for name in recipe.inputs:
        if name == "lat":
            data[name] = (("y", "x"), np.linspace(-60, 70, 15).reshape(3, 5))
            continue
        lo, hi = {"air_temperature": (-10, 30), "shortwave_radiation": (0, 350), "vpd": (0, 30)}.get(
            name, (280, 320) if "lst" in name or name == "landsat_st" else (-0.05, 0.7))
        v = rng.uniform(lo, hi, shape)
        v[rng.random(shape) < 0.4] = np.nan
        data[name] = (("time", "y", "x"), v.astype("float32"))
    for name in recipe.optional_inputs:
        data[name] = (("time", "y", "x"), rng.random(shape) < 0.9)
    ds = xr.Dataset(data, coords={"time": time})
    ds["nbar_red" if kind == "gpp_m" else "sr_red"][:, 0, 0] = np.nan  # a pixel without red
    return ds


@pytest.mark.parametrize("kind", ["gpp_m", "gpp_l"])
@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_synthetic_cubes_give_the_reference_features(kind, backend):
    ds = _synthetic_inputs(kind)
    recipe = RECIPES[kind]
    ref = reference_features(ds.assign({n: ds[n].astype("float64") for n in ds.data_vars if ds[n].dtype == "float32"}),
                             recipe)
    if backend == "dask":
        ds = ds.chunk({"y": 1, "x": 3})
        with raise_if_dask_computes():
            lazy = derive_features(ds, recipe)
        assert all(lazy[f].chunks is not None for f in recipe.features)
        got = lazy.compute()
    else:
        got = derive_features(ds, recipe)
    assert dict(got.sizes) == dict(ref.sizes)
    assert_same_features(got, ref, recipe.features)


def test_matrix_rows_and_counts_in_either_layout():
    ds = _synthetic_inputs("gpp_m", seed=2)
    recipe = RECIPES["gpp_m"]
    arrays = {n: ds[n].values.reshape(ds.sizes["time"], -1) for n in ds.data_vars if n != "lat"}
    doy = ds["time"].dt.dayofyear.values.astype("float64")
    t = ds["time"].values.astype("int64").astype("float64")
    rad_table, rad_col = engine.radiation_lookup(ds["lat"].values.reshape(-1), doy)
    kw = dict(**mf.engine_inputs(arrays, recipe), rad_table=rad_table, rad_col=rad_col, doy=doy, t=t,
              **mf.engine_params(recipe))
    a, ca, kept = engine.feature_matrix(**kw, pixel_major=True, keep=("rad_toa", "kndvi", "vpd_30d"))
    b, cb, _ = engine.feature_matrix(**kw, pixel_major=False)
    nt, npix = len(doy), 15
    np.testing.assert_array_equal(a.reshape(npix, nt, -1).transpose(1, 0, 2), b.reshape(nt, npix, -1))
    np.testing.assert_array_equal(ca, np.isfinite(a).sum(axis=1))
    np.testing.assert_array_equal(cb, np.isfinite(b).sum(axis=1))
    for name, column in kept.items():  # kept columns are the matrix's own, contiguous
        assert column.flags.c_contiguous
        np.testing.assert_array_equal(column, a[:, recipe.features.index(name)])
