"""``ds.gpp.estimate``: tower models applied to cubes, blockwise, lazily, on real tower inputs.

Cubes here are made from the real tower tables (see ``conftest.py``): each site becomes one pixel
of a small grid and every table column a variable, exactly the layout the issue names ("one
variable per input column of the training table"). The reference predictions are the library's
table path (``GppModel.predict`` / ``unique-xr predict``) and a plain numpy prediction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import unique_xr  # noqa: F401  (registers ds.gpp)
from unique_xr.errors import MissingVariableError, SpecError, UnitsError
from unique_xr.grid import GridSpec
from unique_xr.models import engines
from unique_xr.models.features import derive_features, resolve_inputs
from unique_xr.testing import raise_if_dask_computes

GPP_M_COLUMNS = [
    *(f"Nadir_Reflectance_Band{i}" for i in range(1, 8)), *(f"QA_Band{i}" for i in range(1, 8)),
    "LST_Day_1km_Terra", "LST_Day_1km_Aqua", "t2m_era5", "ssrd_era5", "tower_temp", "tower_vpd", "tower_ppfd",
    "lat", "igbp_land_use",
]  # fmt: skip
SITES = ("AU-DaS", "BE-Bra", "CH-Lae", "DE-Gri", "FR-Pue", "CZ-wet")


def table_cube(table: pd.DataFrame, sites, columns, *, ny: int, nx: int, daily: bool = True) -> xr.Dataset:
    """One pixel per site (row-major), one variable per column, on the union of the sites' dates."""
    assert len(sites) == ny * nx
    dates = pd.DatetimeIndex(sorted(pd.to_datetime(table["date"]).unique()))
    if daily:
        dates = pd.date_range(dates.min(), dates.max(), freq="D")
    per_site = [table[table["site"] == s].set_index("date").reindex(dates) for s in sites]
    data = {}
    for col in columns:
        stack = np.stack([p[col].to_numpy() for p in per_site], axis=1).reshape(len(dates), ny, nx)
        data[col] = (("time", "y", "x"), stack)
    return xr.Dataset(data, coords={"time": dates, "y": np.arange(ny, 0, -1.0), "x": np.arange(nx, dtype=float)})


def cube_values_at_rows(out: xr.Dataset, table: pd.DataFrame, sites, nx: int) -> np.ndarray:
    """The cube's GPP at each table row (site -> pixel, date -> time)."""
    pos = {s: divmod(i, nx) for i, s in enumerate(sites)}
    ti = pd.DatetimeIndex(out["time"].values).get_indexer(pd.to_datetime(table["date"]))
    yi = np.array([pos[s][0] for s in table["site"]])
    xi = np.array([pos[s][1] for s in table["site"]])
    return out["gpp"].values[ti, yi, xi]


@pytest.fixture(scope="module")
def gpp_m_rows(daily_table):
    return daily_table[daily_table["site"].isin(SITES)].reset_index(drop=True)


@pytest.fixture(scope="module")
def gpp_m_cube(gpp_m_rows):
    return table_cube(gpp_m_rows, SITES, GPP_M_COLUMNS, ny=2, nx=3)


@pytest.fixture(scope="module")
def model(small_result):
    return small_result.model


def numpy_reference(ds: xr.Dataset, model) -> np.ndarray:
    """A plain numpy prediction of every pixel: features derived eagerly, one booster.predict call."""
    recipe = model.recipe
    feats = derive_features(resolve_inputs(ds, recipe), recipe).transpose("time", "y", "x")
    X = np.stack([feats[f].values.reshape(-1) for f in model.features], axis=1)
    raw = model.booster.predict(X)
    sw, toa = X[:, model.features.index("shortwave_radiation")], X[:, model.features.index("rad_toa")]
    gpp = raw * np.maximum(np.where(np.isfinite(sw), sw, 0.55 * toa), 25.0)
    gpp[np.isnan(X[:, model.features.index("b_nir")])] = np.nan
    return gpp.astype("float32").reshape(feats["b_nir"].shape)


# ------------------------------------------------------------------------------ equality


def test_table_layout_cube_equals_table_prediction(gpp_m_rows, gpp_m_cube, model, backend):
    ds = gpp_m_cube.chunk({"time": 200, "y": 1, "x": 2}) if backend == "dask" else gpp_m_cube
    out = ds.gpp.estimate(model).compute()
    expected = model.predict(gpp_m_rows)["gpp"].to_numpy()
    got = cube_values_at_rows(out, gpp_m_rows, SITES, nx=3)
    assert np.isfinite(expected).mean() > 0.9
    np.testing.assert_array_equal(got, expected)  # bit for bit, NaN in the same places


def test_cli_predict_equals_cube(gpp_m_rows, gpp_m_cube, model, tmp_path):
    from typer.testing import CliRunner

    from unique_xr.cli import app

    model.save(tmp_path / "m")
    gpp_m_rows.to_csv(tmp_path / "t.csv", index=False)
    res = CliRunner().invoke(app, ["predict", "--model", str(tmp_path / "m"), "--table", str(tmp_path / "t.csv"),
                                   "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output
    cli = pd.read_csv(tmp_path / "p.csv")
    out = gpp_m_cube.chunk({"y": 1}).gpp.estimate(unique_xr.load_model(tmp_path / "m")).compute()
    got = cube_values_at_rows(out, gpp_m_rows, SITES, nx=3)
    np.testing.assert_allclose(got, cli["gpp"].to_numpy(), atol=5e-5, rtol=0)  # the CSV has 4 decimals
    assert np.array_equal(np.isnan(got), cli["gpp"].isna().to_numpy())


@pytest.mark.parametrize("chunks", [{"time": -1, "y": 1, "x": 1}, {"time": 97, "y": 2, "x": 2}, {"time": 1000}])
def test_chunked_equals_numpy_reference_with_nan_inputs(gpp_m_cube, model, chunks, rng):
    ds = gpp_m_cube.copy()
    for name in ("Nadir_Reflectance_Band2", "Nadir_Reflectance_Band1", "tower_temp"):
        values = ds[name].values.copy()
        values[rng.random(values.shape) < 0.3] = np.nan  # 30% extra gaps (clouds, fill)
        ds[name] = (ds[name].dims, values)
    ref = numpy_reference(ds, model)
    eager = ds.gpp.estimate(model)
    lazy = ds.chunk(chunks).gpp.estimate(model)
    np.testing.assert_array_equal(eager["gpp"].values, ref)
    np.testing.assert_array_equal(lazy["gpp"].values, ref)
    assert np.isnan(ref).any() and np.isfinite(ref).any()


def test_gpp_l_table_layout_cube(landsat_table, gpp_l_model, backend):
    rows = landsat_table.drop_duplicates(["site", "date"])
    sites = rows["site"].value_counts().index[:4].tolist()
    rows = rows[rows["site"].isin(sites)].reset_index(drop=True)
    columns = [c for c in rows.columns if c.startswith(("SR_B", "ST_B", "QA_PIXEL"))]
    columns += ["tower_temp", "tower_vpd", "tower_ppfd", "ssrd_era5", "t2m_era5", "lat"]
    cube = table_cube(rows, sites, columns, ny=2, nx=2, daily=False)
    if backend == "dask":
        cube = cube.chunk({"time": 50, "y": 1})
    out = cube.gpp.estimate(gpp_l_model).compute()
    expected = gpp_l_model.predict(rows)["gpp"].to_numpy()
    got = cube_values_at_rows(out, rows, sites, nx=2)
    assert np.isfinite(expected).sum() > 50
    np.testing.assert_array_equal(got, expected)


def test_registry_named_cube_matches_table_names(gpp_m_cube, model):
    """A data-layer cube (registry roles, canonical met names and units, latitude from the grid)."""
    roles = ("red", "nir", "blue", "green", "nir2", "swir1", "swir2")
    grid = GridSpec(crs="EPSG:32632", resolution=500.0, bounds=(500000.0, 5000000.0, 501500.0, 5001000.0))
    reg = xr.Dataset(coords={"time": gpp_m_cube["time"]})
    for i, role in enumerate(roles, start=1):
        reg[role] = gpp_m_cube[f"Nadir_Reflectance_Band{i}"]
        qa = gpp_m_cube[f"QA_Band{i}"].astype(str)
        reg[f"qa_{role}"] = xr.where(qa == "full_inversion", 0, xr.where(qa == "magnitude_inversion", 1, 255))
    reg["lst_day"] = gpp_m_cube["LST_Day_1km_Terra"]
    reg["lst_day_aqua"] = gpp_m_cube["LST_Day_1km_Aqua"]
    reg["air_temperature"] = gpp_m_cube["tower_temp"].fillna(gpp_m_cube["t2m_era5"] - 273.15)
    reg["shortwave_radiation"] = (gpp_m_cube["tower_ppfd"] * 1e6 / 2.04).fillna(gpp_m_cube["ssrd_era5"] / 86400.0)
    reg["vpd"] = gpp_m_cube["tower_vpd"] / 100.0
    reg = grid.attach(reg.assign_coords(y=grid.y, x=grid.x))
    named = gpp_m_cube.assign_coords(y=grid.y, x=grid.x)
    from unique_xr.grid import pixel_lonlat

    lat = pixel_lonlat(grid.y, grid.x, grid.crs)[1]
    named["lat"] = (("y", "x"), lat)  # the same latitude the registry cube gets from its grid mapping
    a = reg.chunk({"y": 1}).gpp.estimate(model).compute()
    b = named.gpp.estimate(model)
    assert "lat" not in reg
    np.testing.assert_allclose(a["gpp"].values, b["gpp"].values, rtol=1e-5, atol=1e-5)
    assert np.array_equal(np.isnan(a["gpp"].values), np.isnan(b["gpp"].values))
    assert a["gpp"].attrs["grid_mapping"] == "spatial_ref" and "spatial_ref" in a.coords


# ------------------------------------------------------------------------------ laziness and output


def test_lazy_until_asked_and_cf_output(gpp_m_cube, model):
    ds = gpp_m_cube.chunk({"time": 365, "y": 1})
    with raise_if_dask_computes():
        out = ds.gpp.estimate(model)
    gpp, count = out["gpp"], out["n_valid_features"]
    assert gpp.chunks is not None and count.chunks is not None
    assert gpp.dtype == np.float32 and count.dtype == np.uint8
    assert gpp.attrs["units"] == "g m-2 d-1"
    assert gpp.attrs["standard_name"] == "gross_primary_productivity_of_biomass_expressed_as_carbon"
    assert gpp.dims == ("time", "y", "x") and gpp.shape == (ds.sizes["time"], 2, 3)
    values, counts = gpp.values, count.values
    assert counts.max() <= len(model.features)
    # a pixel-day without reflectance has NaN GPP; every pixel-day with GPP had the NIR band
    assert (counts[np.isnan(values)] < len(model.features)).all()
    assert np.isfinite(values[counts == len(model.features)]).all()


def test_irregular_time_axis_is_filled_daily_then_restored(gpp_m_cube, model):
    keep = np.r_[0:300, 320:700:3]  # a gap, then every third day
    full = gpp_m_cube.copy()
    for name in full.data_vars:
        values = full[name].values.copy()
        mask = np.ones(full.sizes["time"], bool)
        mask[keep] = False
        values[mask] = None if values.dtype == object else np.nan
        full[name] = (full[name].dims, values)
    sparse = gpp_m_cube.isel(time=keep)
    a = sparse.chunk({"time": 50}).gpp.estimate(model)
    b = full.isel(time=slice(0, 700)).gpp.estimate(model).isel(time=keep)
    assert np.array_equal(a["time"].values, sparse["time"].values)
    np.testing.assert_array_equal(a["gpp"].values, b["gpp"].values)


def test_gpp_m_rejects_two_steps_on_one_day(gpp_m_cube, model):
    ds = gpp_m_cube.isel(time=[0, 1, 2])
    ds = ds.assign_coords(time=[ds.time.values[0], ds.time.values[0] + np.timedelta64(3, "h"), ds.time.values[2]])
    with pytest.raises(SpecError, match="more than one time step"):
        ds.gpp.estimate(model)


# ------------------------------------------------------------------------------ errors


def test_missing_input_is_named_before_anything_runs(gpp_m_cube, model):
    ds = gpp_m_cube.drop_vars(["tower_vpd"]).chunk({"y": 1})
    with raise_if_dask_computes(), pytest.raises(MissingVariableError, match="tower_vpd"):
        ds.gpp.estimate(model)
    out = ds.gpp.estimate(model, allow_missing=("vpd",))
    assert np.isfinite(out["gpp"].values).any()


def test_latitude_needs_a_variable_or_a_grid_mapping(gpp_m_cube, model):
    with pytest.raises(MissingVariableError, match="latitude"):
        gpp_m_cube.drop_vars("lat").gpp.estimate(model)


def test_wrong_dims_and_unit_mistakes(gpp_m_cube, model):
    with pytest.raises(SpecError, match="dims"):
        gpp_m_cube.rename(x="lon").gpp.estimate(model)
    dn = gpp_m_cube.copy()
    dn["tower_vpd"] = dn["tower_vpd"] / 100.0 / 100.0  # hPa given where Pa is expected, twice over
    dn["Nadir_Reflectance_Band2"] = dn["Nadir_Reflectance_Band2"] * 10000  # DN, not reflectance
    with pytest.raises(UnitsError, match="Nadir_Reflectance_Band2"):
        dn.gpp.estimate(model)
    with pytest.raises(UnitsError, match="Nadir_Reflectance_Band2"):
        dn.chunk({"y": 1}).gpp.estimate(model).compute()  # lazy input: raised by the block, at compute


# ------------------------------------------------------------------------------ engines


def test_lleaves_engine_within_1e5_and_cached(gpp_m_cube, model, tmp_path, backend):
    pytest.importorskip("lleaves")
    ds = gpp_m_cube.chunk({"time": 500, "y": 1}) if backend == "dask" else gpp_m_cube
    ref = ds.gpp.estimate(model)["gpp"].values
    got = ds.gpp.estimate(model, engine="lleaves", cache=tmp_path)["gpp"].values
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    ok = np.isfinite(ref)
    np.testing.assert_allclose(got[ok], ref[ok], rtol=1e-5, atol=0)
    objects = list((tmp_path / "compiled").glob("*.o"))
    assert len(objects) == 1


def test_compiled_cache_is_reused_and_rebuilt(model, tmp_path):
    pytest.importorskip("lleaves")
    X = np.random.default_rng(1).uniform(0, 1, (500, len(model.features)))
    handle = engines.ModelHandle.from_booster(model.booster, engine="lleaves", cache=tmp_path)
    first = handle.predict(X)
    obj = engines.compiled_path(handle)
    stamp = obj.stat().st_mtime_ns
    engines.clear_predictors()
    np.testing.assert_array_equal(handle.predict(X), first)
    assert obj.stat().st_mtime_ns == stamp  # loaded from the cache, not recompiled
    for damage in ("delete", "corrupt"):
        engines.clear_predictors()
        if damage == "delete":
            obj.unlink()
        else:
            obj.write_bytes(b"not an object file")
        np.testing.assert_array_equal(handle.predict(X), first)
        assert obj.is_file() and obj.read_bytes()[:4] == b"\x7fELF"


def test_unknown_engine(gpp_m_cube, model):
    with pytest.raises(SpecError, match="engine"):
        gpp_m_cube.gpp.estimate(model, engine="xgboost")


def test_one_tree_thread_per_dask_block(gpp_m_cube, model, monkeypatch):
    seen = []
    original = engines.ModelHandle.predict

    def spy(self, X, *, threads=1):
        seen.append(threads)
        return original(self, X, threads=threads)

    monkeypatch.setattr(engines.ModelHandle, "predict", spy)
    gpp_m_cube.chunk({"y": 1}).gpp.estimate(model).compute(scheduler="threads", num_workers=2)
    assert seen and set(seen) == {1}
    seen.clear()
    gpp_m_cube.gpp.estimate(model, threads=2)
    assert set(seen) == {2}


# ------------------------------------------------------------------------------ distributed


def test_local_cluster_two_workers_model_shipped_once_per_worker(gpp_m_cube, model):
    distributed = pytest.importorskip("distributed")
    ds = gpp_m_cube.chunk({"time": 400, "y": 1, "x": 1})  # 6 spatial blocks
    expected = ds.gpp.estimate(model)["gpp"].values
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        with distributed.Client(cl) as client:
            out = ds.gpp.estimate(model)
            got = out["gpp"].values
            token = out.attrs["model_token"]
            loads = client.run(lambda: engines.handle_loads())
    np.testing.assert_array_equal(got, expected)
    counts = [per_worker.get(token, 0) for per_worker in loads.values()]
    assert len(counts) == 2 and sum(counts) >= 1
    assert max(counts) == 1  # six blocks, yet each worker unpickled the model at most once


def test_from_features_equals_raw_inputs(gpp_m_cube, model):
    feats = derive_features(resolve_inputs(gpp_m_cube, model.recipe), model.recipe)
    a = gpp_m_cube.gpp.estimate(model)
    b = feats.chunk({"time": 100, "y": 1}).gpp.estimate(model, from_features=True)
    np.testing.assert_array_equal(a["gpp"].values, b["gpp"].values)
    np.testing.assert_array_equal(a["n_valid_features"].values, b["n_valid_features"].values)
    with pytest.raises(MissingVariableError, match="b_nir"):
        feats.drop_vars("b_nir").gpp.estimate(model, from_features=True)


# ------------------------------------------------------------------------------ missing values the trees never saw


def test_features_never_missing_in_training_give_nan_not_zero(rng):
    """LightGBM reads NaN as 0 for a feature that was never missing in training: such rows get NaN."""
    from unique_xr.models.lgbm import TrainConfig, nan_unsafe_features, train

    n = 1500
    days = pd.date_range("2015-01-01", periods=n // 3)
    table = pd.DataFrame({
        "site": np.repeat(["A", "B", "C"], n // 3), "date": np.tile(days, 3),
        "red": rng.uniform(0.02, 0.1, n), "nir": rng.uniform(0.15, 0.45, n), "blue": rng.uniform(0.01, 0.05, n),
        "green": rng.uniform(0.03, 0.1, n), "swir1": rng.uniform(0.1, 0.3, n), "swir2": rng.uniform(0.05, 0.2, n),
        "lst_day": rng.uniform(270, 310, n), "air_temperature": rng.uniform(-5, 30, n),
        "shortwave_radiation": rng.uniform(50, 350, n), "vpd": rng.uniform(0, 30, n), "lat": 50.0,
    })
    table["vpd"] = table["vpd"].where(rng.random(n) > 0.2)  # vpd is sometimes missing, lst never
    table["gpp_obs"] = 20 * (table["nir"] - table["red"]) + 0.01 * (table["lst_day"] - 270) + rng.normal(0, 0.3, n)
    model = train(table, TrainConfig(kind="gpp_l", folds=0, num_boost_round=30, early_stopping_rounds=0,
                                     baselines=False, params={"min_data_in_leaf": 20})).model
    unsafe = nan_unsafe_features(model.booster)
    assert "lst" in unsafe and "vpd" not in unsafe and "lst" in model.required
    probe = table.iloc[:6].copy()
    probe.loc[probe.index[:3], "lst_day"] = np.nan
    probe.loc[probe.index[3:], "vpd"] = np.nan
    gpp = model.predict(probe)["gpp"].to_numpy()
    assert np.isnan(gpp[:3]).all() and np.isfinite(gpp[3:]).all()
    with pytest.raises(SpecError, match="never saw them missing"):
        model.predict(table.drop(columns="lst_day"), allow_missing=("landsat_st",))
    cube = xr.Dataset({c: (("time", "y", "x"), probe[c].to_numpy().reshape(6, 1, 1)) for c in probe.columns
                       if c not in ("site", "date")}, coords={"time": probe["date"].to_numpy(), "y": [0.0], "x": [0.0]})
    np.testing.assert_array_equal(cube.chunk({"time": 2}).gpp.estimate(model)["gpp"].values.ravel(), gpp)
    with pytest.raises(SpecError, match="never saw them missing"):
        cube.drop_vars("lst_day").gpp.estimate(model, allow_missing=("landsat_st",))
