"""The demo job end to end on the embedded sample data, through the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr

import unique_xr
from unique_xr.errors import MissingVariableError, SpecError
from unique_xr.pipeline import (
    GPP_STAGES,
    DataLayerSpec,
    build_data_layer,
    build_downscaled_gpp,
    build_gpp,
    with_drivers,
)
from unique_xr.sample import (
    SAMPLE_GRID,
    SAMPLE_MISSING_INPUTS,
    sample_downscaler,
    sample_model,
    stage_sample,
)
from unique_xr.schema import GPP_STANDARD_NAME
from unique_xr.testing import raise_if_dask_computes

SAMPLE = Path(__file__).resolve().parents[1] / "unique_xr" / "data" / "sample" / "landsat"


def test_demo_reports_real_and_synthetic(demo_run):
    _, output = demo_run
    assert "real" in output and "synthetic" in output
    assert "Landsat 8 C2 L2 surface" in output and "MODIS MCD43A4" in output
    assert "quicklook" in output


def _open(out: Path, name: str) -> xr.Dataset:
    return xr.open_zarr(out / "cube" / f"{name}.zarr", zarr_format=3, consolidated=False)


def test_demo_writes_every_cube(demo_run):
    out, _ = demo_run
    for name in ("landsat_30m", "modis_500m", "static_30m", "meteo_30m", "meteo_500m", "gpp_30m", "gpp_500m"):
        ds = xr.open_zarr(out / "cube" / f"{name}.zarr", zarr_format=3, consolidated=False)
        assert ds.sizes["y"] > 0 and ds.sizes["x"] > 0
    png = out / "cube" / "quicklook.png"
    assert png.stat().st_size > 20_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_says_where_the_gpp_map_is_and_what_was_absent(demo_run):
    out, output = demo_run
    flat = " ".join(output.split())  # rich wraps long lines
    png = out / "cube" / "gpp_map.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert f"GPP map: {png}" in flat
    assert "g C m-2 d-1" in flat and "synthetic" in flat
    for kind, absent in SAMPLE_MISSING_INPUTS.items():
        assert f"{GPP_STAGES[kind][2]}:" in flat and ", ".join(absent) in flat


@pytest.mark.parametrize("kind", sorted(GPP_STAGES))
def test_demo_gpp_stores_are_cf_float32_with_what_was_absent(demo_run, kind):
    out, _ = demo_run
    reflectance, _, name = GPP_STAGES[kind]
    gpp, src = _open(out, name), _open(out, reflectance)
    assert gpp["gpp"].dtype == np.float32 and gpp["n_valid_features"].dtype == np.uint8
    assert gpp.sizes == src.sizes
    np.testing.assert_array_equal(gpp["time"].values, src["time"].values)
    np.testing.assert_array_equal(gpp["x"].values, src["x"].values)
    attrs = gpp["gpp"].attrs
    assert attrs["units"] == "g m-2 d-1" and attrs["standard_name"] == GPP_STANDARD_NAME
    assert attrs["model_kind"] == kind and attrs["grid_mapping"] == "spatial_ref"
    assert attrs["inputs_absent"] == gpp.attrs["inputs_absent"] == ", ".join(SAMPLE_MISSING_INPUTS[kind])
    assert "synthetic" in gpp.attrs["comment"] and "not a validated product" in gpp.attrs["comment"]
    values = gpp["gpp"].values
    finite = values[np.isfinite(values)]
    assert finite.size > 0 and 0.0 <= finite.min() and finite.max() < 30.0  # daily GPP, g C m-2 d-1


def test_demo_gpp_30m_follows_the_landsat_mask(demo_run):
    """GPP_L has a value on (nearly) every clear vegetated pixel and none on a masked one."""
    out, _ = demo_run
    ls, gpp = _open(out, "landsat_30m"), _open(out, "gpp_30m")["gpp"].values
    clear = ls["clear"].values.astype(bool)
    land = clear & (ls["ndvi"].values > 0.2)
    assert land.mean() > 0.2
    assert np.isfinite(gpp[land]).mean() > 0.97
    assert np.isnan(gpp[~clear]).all()
    assert np.isnan(gpp[np.isnan(ls["red"].values)]).all()


def test_demo_gpp_30m_uses_the_same_days_drivers(demo_run):
    """A few pixels of the 30 m GPP equal the model's prediction on the same values as a table,
    with the drivers of the Landsat scene's calendar day (the scene has a time of day, the drivers not)."""
    from pyproj import Transformer

    out, _ = demo_run
    ls, met, gpp = _open(out, "landsat_30m"), _open(out, "meteo_30m"), _open(out, "gpp_30m")["gpp"]
    t = 1
    day = ls["time"].values[t].astype("datetime64[D]")
    assert ls["time"].values[t] != day.astype(ls["time"].dtype)  # a time of day, not midnight
    iy, ix = np.nonzero(np.isfinite(gpp.isel(time=t).values))
    pick = np.random.default_rng(0).choice(iy.size, 40, replace=False)
    iy, ix = iy[pick], ix[pick]
    _, lat = Transformer.from_crs(SAMPLE_GRID.crs, "EPSG:4326", always_xy=True).transform(
        ls["x"].values[ix], ls["y"].values[iy])
    table = pd.DataFrame({"site": [f"p{i}" for i in range(iy.size)], "date": str(day), "lat": lat})
    for role in ("blue", "green", "red", "nir", "swir1", "swir2"):
        table[role] = ls[role].isel(time=t).values[iy, ix]
    for name in ("air_temperature", "shortwave_radiation", "vpd"):
        table[name] = met[name].sel(time=day).values[iy, ix]
    model = unique_xr.load_model(sample_model("gpp_l"))
    expected = model.predict(table, allow_missing=SAMPLE_MISSING_INPUTS["gpp_l"])["gpp"].to_numpy()
    np.testing.assert_allclose(gpp.isel(time=t).values[iy, ix], expected, rtol=1e-5)
    # and not with the neighbouring day's drivers
    table["shortwave_radiation"] = met["shortwave_radiation"].sel(time=day - 1).values[iy, ix]
    other = model.predict(table, allow_missing=SAMPLE_MISSING_INPUTS["gpp_l"])["gpp"].to_numpy()
    assert not np.allclose(other, expected, rtol=1e-3)


def test_demo_gpp_500m_covers_every_modis_day(demo_run):
    out, _ = demo_run
    md, gpp = _open(out, "modis_500m"), _open(out, "gpp_500m")["gpp"].values
    assert gpp.shape[0] == 17
    has_nir = np.isfinite(md["nir"].values)
    assert np.isfinite(gpp[has_nir]).mean() > 0.97
    assert np.isfinite(gpp).any(axis=(1, 2)).all()


@pytest.mark.parametrize("kind", sorted(GPP_STAGES))
def test_shipped_models_load_and_say_what_they_were_trained_on(kind):
    path = sample_model(kind)
    model = unique_xr.load_model(path)
    card = model.card
    assert card.kind == kind and card.best_iteration >= 10
    training = card.training
    assert "fluxnet2015_daily_gpp_x_modis_nbar_lst" in training["table"]
    assert "/work" not in training["table"] and not training["table"].startswith("/")
    assert training["n_sites"] >= 10 and len(training["sites"]) == training["n_sites"]
    assert training["qc"]["used"] >= 500
    assert not {"FI-Hyy", "FR-Pue"} & {s["site"] for s in training["sites"]}  # CC BY-NC source left out
    assert training["inputs_withheld"] == list(SAMPLE_MISSING_INPUTS[kind])
    assert training["features_unused"] and all(card.feature_importance[f] == 0 for f in training["features_unused"])
    assert all(card.feature_importance[f] > 0 for f in ("ndvi", "shortwave_radiation"))
    source = (path / "SOURCE.md").read_text()
    for needed in ("CC-BY-4.0", "FLUXNET2015", "Pastorello", "Copernicus", "public domain"):
        assert needed in source
    assert sum(f.stat().st_size for f in path.iterdir()) < 600_000


def test_sample_model_names_the_kinds_it_ships():
    with pytest.raises(SpecError, match="gpp_l"):
        sample_model("gpp_x")


def _cube(values, times, **coords) -> xr.Dataset:
    data = np.asarray(values, dtype="float32")
    return xr.Dataset({"v": (("time", "y", "x"), data)},
                      coords={"time": np.array(times, dtype="datetime64[ns]"), "y": [1.0, 0.0], "x": [0.0, 1.0],
                              **coords})


def test_with_drivers_matches_by_calendar_day_and_keeps_the_scene_time():
    scenes = _cube(np.zeros((2, 2, 2)), ["2019-01-14T12:57", "2019-01-16T12:57"])
    met = _cube(np.arange(3)[:, None, None] * np.ones((3, 2, 2)), ["2019-01-14", "2019-01-15", "2019-01-16"])
    met = met.rename(v="air_temperature")
    out = with_drivers(scenes, met)
    np.testing.assert_array_equal(out["time"].values, scenes["time"].values)
    np.testing.assert_array_equal(out["air_temperature"].values[:, 0, 0], [0.0, 2.0])
    with pytest.raises(MissingVariableError, match="2019-01-17"):
        with_drivers(_cube(np.zeros((1, 2, 2)), ["2019-01-17T10:00"]), met)
    hourly = _cube(np.zeros((2, 2, 2)), ["2019-01-14T00:00", "2019-01-14T01:00"]).rename(v="air_temperature")
    with pytest.raises(SpecError, match="daily drivers"):
        with_drivers(scenes, hourly)
    shifted = met.assign_coords(x=[0.5, 1.5])
    with pytest.raises(SpecError, match="same grid"):
        with_drivers(scenes, shifted)


def test_building_gpp_computes_nothing(demo_run):
    out, _ = demo_run
    cubes = {name: _open(out, name) for name in ("landsat_30m", "meteo_30m", "modis_500m", "meteo_500m")}
    models = {kind: sample_model(kind) for kind in GPP_STAGES}
    with raise_if_dask_computes():
        lazy = build_gpp(cubes, models, allow_missing=SAMPLE_MISSING_INPUTS)
    assert set(lazy) == {"gpp_30m", "gpp_500m"}
    assert all(ds["gpp"].chunks is not None for ds in lazy.values())
    with pytest.raises(MissingVariableError, match="allow_missing"):
        build_gpp(cubes, {"gpp_l": models["gpp_l"]})  # the sample has no thermal band: say so explicitly
    with pytest.raises(MissingVariableError, match="meteo_500m"):
        build_gpp({k: v for k, v in cubes.items() if k != "meteo_500m"}, {"gpp_m": models["gpp_m"]})
    with pytest.raises(SpecError, match="gpp_l"):
        build_gpp(cubes, {"gpp_m": models["gpp_l"]})


def test_demo_landsat_values_are_the_real_pixels(demo_run):
    """Clear pixels of the cube are the shipped DN scaled by the registry; masked ones are NaN."""
    out, _ = demo_run
    ds = xr.open_zarr(out / "cube" / "landsat_30m.zarr", zarr_format=3, consolidated=False)
    assert ds.sizes == {"time": 2, "y": 300, "x": 400}
    np.testing.assert_array_equal(ds.x.values, SAMPLE_GRID.x)
    with rasterio.open(SAMPLE / "LC08_L2SP_218074_20190114_20200829_02_T1_SR_B4.tif") as src:
        dn = src.read(1)
    red = ds["red"].isel(time=0).values
    clear = ds["clear"].isel(time=0).values.astype(bool)
    assert 0.5 < clear.mean() < 0.99  # synthetic clouds (~10 %, as the MTL's cloud cover) removed some, not all
    expected = (dn.astype(np.float64) * 2.75e-5 - 0.2).astype(np.float32)
    # USGS C2 L2 valid SR range is DN 7273..43636 (reflectance 0..1); the registry masks the rest
    expected[(dn < 7273) | (dn > 43636)] = np.nan
    assert np.isnan(expected).mean() < 0.05
    np.testing.assert_allclose(red[clear], expected[clear], rtol=0, atol=1e-6)
    assert np.isnan(red[~clear]).all()
    nir = ds["nir"].isel(time=0).values
    with rasterio.open(SAMPLE / "LC08_L2SP_218074_20190114_20200829_02_T1_SR_B5.tif") as src:
        dn5 = src.read(1).astype(np.float64)
    ok = clear & (dn5 >= 7273) & (dn5 <= 43636)
    np.testing.assert_allclose(nir[ok], (dn5 * 2.75e-5 - 0.2).astype(np.float32)[ok], rtol=0, atol=1e-6)
    ndvi = ds["ndvi"].isel(time=0).values
    np.testing.assert_allclose(ndvi[clear], ((nir - red) / (nir + red))[clear], rtol=1e-5)


def test_demo_static_and_meteo_are_sane(demo_run):
    out, _ = demo_run
    st = xr.open_zarr(out / "cube" / "static_30m.zarr", zarr_format=3, consolidated=False)
    fracs = [v for v in st.data_vars if v.startswith("frac_")]
    total = sum(st[v] for v in fracs).values
    np.testing.assert_allclose(total[np.isfinite(total)], 1.0, atol=1e-5)
    assert np.isfinite(st["slope"].values).mean() > 0.95
    mt = xr.open_zarr(out / "cube" / "meteo_30m.zarr", zarr_format=3, consolidated=False)
    assert mt.sizes["time"] == 17  # 2019-01-14 .. 2019-01-30, daily
    assert -10 < float(mt["air_temperature"].mean()) < 45
    assert mt["air_temperature"].attrs["units"] == "degC"


def test_building_the_data_layer_computes_nothing(tmp_path):
    staged = stage_sample(tmp_path, seed=3)
    spec = DataLayerSpec(grid=staged.grid, datetime="2019-01-14/2019-01-30", provider=str(staged.catalog),
                         met_path=str(staged.met_path))
    with raise_if_dask_computes():
        cubes = build_data_layer(spec)
    assert set(cubes) == {"landsat_30m", "modis_500m", "static_30m", "meteo_30m", "meteo_500m"}
    assert all(v.chunks is not None for ds in cubes.values() for v in ds.data_vars.values())


def test_sample_items_are_the_shipped_real_metadata():
    items = json.loads((SAMPLE / "items.json").read_text())["features"]
    assert [it["properties"]["datetime"][:10] for it in items] == ["2019-01-14", "2019-01-30"]
    assert all(it["properties"]["proj:epsg"] == 32623 for it in items)


def test_latest_valid_keeps_the_newest_map_and_fills_its_gaps(backend):
    """Two years of land cover: 2021 wins where it has data, 2020 fills its gaps; codes never mix."""
    from unique_xr.pipeline import latest_valid

    y2020 = np.array([[40.0, 40.0], [30.0, np.nan]], "f4")
    y2021 = np.array([[10.0, np.nan], [np.nan, np.nan]], "f4")
    da = xr.DataArray(np.stack([y2020, y2021]), dims=("time", "y", "x"),
                      coords={"time": np.array(["2020-01-01", "2021-01-01"], "datetime64[ns]")})
    if backend == "dask":
        da = da.chunk({"time": 1})
    with raise_if_dask_computes():
        out = latest_valid(da)
    np.testing.assert_array_equal(out.values, [[10.0, 40.0], [30.0, np.nan]])
    assert out.dims == ("y", "x") and "time" not in out.coords


def test_planetary_computer_jobs_sign_their_reads(monkeypatch):
    import unique_xr.search.stac as stac
    from unique_xr.pipeline.demo import _signer

    def signer(href):
        return href + "?signed"

    monkeypatch.setattr(stac, "signer_for", lambda provider: signer if provider == "planetary-computer" else None)
    pc = DataLayerSpec(grid=SAMPLE_GRID, datetime="2019-01-14/2019-01-30")
    assert pc.provider == "planetary-computer" and _signer(pc) is signer
    own = DataLayerSpec(grid=SAMPLE_GRID, datetime="2019-01-14/2019-01-30", sign=str.upper)
    assert _signer(own) is str.upper
    local = DataLayerSpec(grid=SAMPLE_GRID, datetime="2019-01-14/2019-01-30", provider=str(SAMPLE / "items.json"))
    assert _signer(local) is None


# --- the downscaled GPP (issue 5) ---------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # rasterio, under Dask threads
def test_demo_downscales_every_gpp_m_day_to_the_30m_grid(demo_run):
    pytest.importorskip("torch")
    from unique_xr.downscale.regrid import coarse_onto_grid

    out, _ = demo_run
    ds, gpp_m = _open(out, "gpp_30m_daily"), _open(out, "gpp_500m")
    assert dict(ds.sizes) == {"time": 17, "y": 300, "x": 400}
    assert set(ds.data_vars) == {"gpp", "gpp_spread"}
    np.testing.assert_array_equal(ds["time"].values, gpp_m["time"].values)
    np.testing.assert_array_equal(ds["x"].values, SAMPLE_GRID.x)
    np.testing.assert_array_equal(ds["y"].values, SAMPLE_GRID.y)
    assert "spatial_ref" in ds.coords
    mean, spread = ds["gpp"].values, ds["gpp_spread"].values
    assert mean.dtype == spread.dtype == np.float32
    coarse = coarse_onto_grid(gpp_m["gpp"], SAMPLE_GRID).values
    has_coarse = np.isfinite(coarse)
    assert has_coarse.mean() > 0.95
    assert np.isfinite(mean[has_coarse]).all() and np.isnan(mean[~has_coarse]).all()
    assert np.isfinite(spread[has_coarse]).all() and (spread[has_coarse] >= 0).all()
    assert 0.05 < float(np.nanmean(spread)) < 3.0  # four members that differ, not noise
    # a downscaling, not a new field: each day keeps GPP_M's level and stays a plausible daily GPP
    day_mean, coarse_mean = np.nanmean(mean, axis=(1, 2)), np.nanmean(coarse, axis=(1, 2))
    np.testing.assert_allclose(day_mean, coarse_mean, atol=1.5)
    assert np.nanmin(mean) > -2.0 and np.nanmax(mean) < 30.0
    # and it adds 30 m detail the bilinear field has not
    assert np.nanstd(mean - coarse) > 0.1


def test_demo_downscaled_store_has_cf_attrs_and_provenance(demo_run):
    pytest.importorskip("torch")
    from unique_xr.downscale import load_downscaler

    out, output = demo_run
    ds = _open(out, "gpp_30m_daily")
    attrs = ds["gpp"].attrs
    assert attrs["units"] == "g m-2 d-1" and attrs["standard_name"] == GPP_STANDARD_NAME
    assert "downscaled" in attrs["long_name"] and "GPP_M" in attrs["long_name"]
    assert attrs["grid_mapping"] == "spatial_ref" and ds["gpp_spread"].attrs["units"] == "g m-2 d-1"
    model = load_downscaler(sample_downscaler())
    assert ds.attrs["model_token"] == model.token
    assert ds.attrs["downscaling_scheme"] == "s2" and ds.attrs["downscaling_members"] == 4
    assert ds.attrs["downscaling_steps"] == model.config.sample_steps
    assert "synthetic" in ds.attrs["comment"] and "not a validated product" in ds.attrs["comment"]
    flat = " ".join(output.split())
    assert f"gpp_30m_daily: {out / 'cube' / 'gpp_30m_daily.zarr'}" in flat and model.token in flat
    png = out / "cube" / "gpp_downscaled.png"
    assert f"downscaled GPP map: {png}" in flat
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_shipped_downscaler_is_a_small_s2_demo_model():
    pytest.importorskip("torch")
    from unique_xr.downscale import load_downscaler

    path = sample_downscaler()
    model = load_downscaler(path)
    assert model.scheme == "s2" and model.card["scheme"] == "s2"
    assert model.norm.aux[0].name == "elevation"
    assert all(a.kind == "continuous" for a in model.norm.aux)
    assert all(a.name.startswith("frac_") for a in model.norm.aux[1:])
    assert model.card["units"] == "g m-2 d-1" and model.card["pairs"] == 2
    assert model.card["made_by"] == "examples/train_sample_downscaler.py"
    assert sum(f.stat().st_size for f in path.iterdir()) < 1_000_000
    source = (path / "SOURCE.md").read_text()
    for needed in ("demonstration", "synthetic", "CC-BY-4.0", "public domain", "coarse_onto_grid"):
        assert needed in source


def test_building_the_downscaled_gpp_computes_nothing(demo_run):
    pytest.importorskip("torch")
    out, _ = demo_run
    gpp_m, static = _open(out, "gpp_500m"), _open(out, "static_30m")
    with raise_if_dask_computes():
        lazy = build_downscaled_gpp(gpp_m, static, SAMPLE_GRID, sample_downscaler(), members=2, steps=1)
    assert lazy["gpp"].chunks is not None and lazy.sizes["time"] == gpp_m.sizes["time"]
    with pytest.raises(MissingVariableError, match="elevation"):
        build_downscaled_gpp(gpp_m, static.drop_vars("elevation"), SAMPLE_GRID, sample_downscaler())


_STAGE_WITHOUT_TESTING = """
import json, os, sys
from unique_xr.sample import stage_sample
staged = stage_sample(sys.argv[1])
hrefs = [a["href"] for it in json.loads(staged.catalog.read_text())["features"] for a in it["assets"].values()]
assert hrefs and all(os.path.isabs(h) and os.path.isfile(h) for h in hrefs), hrefs
assert staged.met_path.is_file()
print(sorted(m for m in sys.modules if m == "unique_xr.testing" or m.startswith("unique_xr.testing.")))
"""


def test_staging_the_sample_imports_no_testing_code(tmp_path):
    """The synthetic layers ship with the package: staging copies them, it does not run the generator."""
    run = subprocess.run([sys.executable, "-c", _STAGE_WITHOUT_TESTING, str(tmp_path)], capture_output=True,
                         text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    assert run.stdout.strip() == "[]", f"stage_sample imported {run.stdout.strip()}"
