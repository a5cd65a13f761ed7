"""The demo job end to end on the embedded sample data, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from typer.testing import CliRunner

from unique_xr.cli import app
from unique_xr.pipeline import DataLayerSpec, build_data_layer
from unique_xr.sample import SAMPLE_GRID, stage_sample
from unique_xr.testing import raise_if_dask_computes

SAMPLE = Path(__file__).resolve().parents[1] / "unique_xr" / "data" / "sample" / "landsat"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out, result.output


def test_demo_reports_real_and_synthetic(demo_run):
    _, output = demo_run
    assert "real" in output and "synthetic" in output
    assert "Landsat 8 C2 L2 surface" in output and "MODIS MCD43A4" in output
    assert "quicklook" in output


def test_demo_writes_every_cube(demo_run):
    out, _ = demo_run
    for name in ("landsat_30m", "modis_500m", "static_30m", "meteo_30m"):
        ds = xr.open_zarr(out / "cube" / f"{name}.zarr", zarr_format=3, consolidated=False)
        assert ds.sizes["y"] > 0 and ds.sizes["x"] > 0
    png = out / "cube" / "quicklook.png"
    assert png.stat().st_size > 20_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
    assert set(cubes) == {"landsat_30m", "modis_500m", "static_30m", "meteo_30m"}
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
    from unique_xr.pipeline import _signer

    def signer(href):
        return href + "?signed"

    monkeypatch.setattr(stac, "signer_for", lambda provider: signer if provider == "planetary-computer" else None)
    pc = DataLayerSpec(grid=SAMPLE_GRID, datetime="2019-01-14/2019-01-30")
    assert pc.provider == "planetary-computer" and _signer(pc) is signer
    own = DataLayerSpec(grid=SAMPLE_GRID, datetime="2019-01-14/2019-01-30", sign=str.upper)
    assert _signer(own) is str.upper
    local = DataLayerSpec(grid=SAMPLE_GRID, datetime="2019-01-14/2019-01-30", provider=str(SAMPLE / "items.json"))
    assert _signer(local) is None
