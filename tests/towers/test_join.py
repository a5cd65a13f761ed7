"""Joining tower GPP with features: site-day tables (real) and sampling of cubes (synthetic region, hand-built)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pyproj import Transformer

from unique_xr.errors import GridError, MissingVariableError, SpecError
from unique_xr.grid import GridSpec
from unique_xr.load.masks import apply_qa_mask, landsat_clear
from unique_xr.testing import raise_if_dask_computes
from unique_xr.towers import (
    TowerDataError,
    daily_gpp,
    join_features,
    read_fluxnet,
    read_site_metadata,
    read_tower_table,
    sample_cube,
)


# --------------------------------------------------------------------------- join_features
@pytest.fixture(scope="module")
def pue_gpp(fdk_dd) -> pd.DataFrame:
    return daily_gpp(read_fluxnet(fdk_dd["FR-Pue"]))


@pytest.fixture(scope="module")
def meteo(towers) -> pd.DataFrame:
    return read_tower_table(towers / "fluxdatakit_daily_meteorology_100sites" / "daily_meteo.parquet")


def test_join_tower_gpp_with_meteorology_and_site_metadata(pue_gpp, meteo, agds):
    pue_met = meteo[meteo["site"] == "FR-Pue"]
    assert len(pue_met) > 0
    joined = join_features(pue_gpp, meteo)
    assert len(joined) == len(pue_gpp) and joined[["site", "date", "gpp"]].equals(pue_gpp[["site", "date", "gpp"]])
    row = joined[joined["temp"].notna()].iloc[0]
    source = pue_met[pue_met["date"] == row["date"]].iloc[0]
    assert row["temp"] == pytest.approx(source["temp"]) and row["vpd"] == pytest.approx(source["vpd"])
    assert joined.attrs["join"]["n_matched"] == int(joined["temp"].notna().sum()) > 1000
    assert joined.attrs["units"]["gpp"] == "g m-2 d-1" and joined.attrs["units"]["vpd"] == "Pa"
    inner = join_features(pue_gpp, meteo, how="inner")
    assert len(inner) == joined.attrs["join"]["n_matched"]
    sites = read_site_metadata(agds / "site_meta.csv")
    with_meta = join_features(joined, sites[["site", "lat", "lon", "igbp"]], on=("site",), validate="many_to_one")
    assert (with_meta["igbp"] == "EBF").all() and with_meta["lat"].iloc[0] == pytest.approx(43.7414)


def test_join_checks(pue_gpp, meteo):
    doubled = pd.concat([meteo.head(3), meteo.head(1)])
    with pytest.raises(TowerDataError, match="repeated keys"):
        join_features(pue_gpp, doubled)
    with pytest.raises(TowerDataError, match="repeated keys"):
        join_features(pd.concat([pue_gpp, pue_gpp.head(1)]), meteo)
    with pytest.raises(TowerDataError, match=r"\['gpp'\]"):
        join_features(pue_gpp, pue_gpp[["site", "date", "gpp"]])
    both = join_features(pue_gpp, pue_gpp[["site", "date", "gpp"]], suffixes=("", "_copy"))
    assert (both["gpp"] == both["gpp_copy"]).all()
    underscored = meteo.assign(site=meteo["site"].str.replace("-", "_"))
    with pytest.raises(TowerDataError, match="AT-Neu vs AT_Neu"):
        join_features(pue_gpp, underscored)
    with pytest.raises(MissingVariableError, match="date"):
        join_features(pue_gpp, meteo.drop(columns="date"))
    timed = meteo.assign(date=meteo["date"] + pd.Timedelta("10h"))
    with pytest.raises(TowerDataError, match="times of day"):
        join_features(pue_gpp, timed)
    as_text = meteo.assign(date=meteo["date"].dt.strftime("%Y-%m-%d"))
    assert join_features(pue_gpp, as_text)["temp"].equals(join_features(pue_gpp, meteo)["temp"])
    with pytest.raises(SpecError):
        join_features(pue_gpp, meteo, how="outer")


# ----------------------------------------------------------------------------- sample_cube
@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """A small synthetic Landsat region (32 x 32 px at DE-Hai), loaded lazily in 16 x 16 chunks."""
    from unique_xr.load.stack import load
    from unique_xr.testing import SyntheticRegionSpec, make_region

    spec = SyntheticRegionSpec.square(size_px=32, seed=4, start="2023-06-01", end="2023-07-15", modis=False,
                                      dem=False, worldcover=False, met=False, cloud_fraction=0.25)
    made = make_region(tmp_path_factory.mktemp("towers_region"), spec)
    ds = load(made.items["landsat-c2-l2"], grid=made.grid, collection="landsat-c2-l2",
              assets=["red", "nir08", "qa_pixel"], chunks={"y": 16, "x": 16})
    return made.grid, ds


def _towers_at(grid: GridSpec, pixels: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """Tower lat/lon inside the given (row, col) pixels, off the pixel centre."""
    to_lonlat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    rows = []
    for site, (row, col) in pixels.items():
        lon, lat = to_lonlat.transform(grid.x[col] + 8.0, grid.y[row] - 11.0)
        rows.append({"site": site, "lat": lat, "lon": lon})
    return pd.DataFrame(rows)


def test_sample_cube_masks_and_picks_the_tower_pixel_in_one_compute(region):
    grid, ds = region
    pixels = {"T-One": (2, 3), "T-Two": (20, 29), "T-Thr": (16, 15)}
    sites = _towers_at(grid, pixels)
    with raise_if_dask_computes(max_computes=1):
        out = sample_cube(ds, sites, collection="landsat-c2-l2")
    assert list(out.columns) == ["site", "date", "time", "red", "nir", "clear"]
    assert len(out) == len(pixels) * ds.sizes["time"]
    truth = ds.compute()
    n_clear = n_masked = 0
    for site, (row, col) in pixels.items():
        got = out[out["site"] == site].sort_values("time")
        qa = truth["qa_pixel"].values[:, row, col]
        clear = landsat_clear(qa)
        expected = np.where(clear, truth["red"].values[:, row, col], np.nan)
        np.testing.assert_array_equal(got["red"].to_numpy(), expected)
        np.testing.assert_array_equal(got["clear"].to_numpy(), clear.astype("uint8"))
        n_clear, n_masked = n_clear + clear.sum(), n_masked + (~clear).sum()
    assert n_clear > 0 and n_masked > 0  # both cases are exercised
    # 10:30 local solar time in Germany: the local day is the UTC day
    assert (out["date"] == out["time"].dt.floor("D")).all()
    assert out.attrs["units"]["red"] == "1" and "apply_qa_mask" in out.attrs["qa"]


def test_sample_cube_on_an_already_masked_cube_and_unmasked_error(region):
    grid, ds = region
    sites = _towers_at(grid, {"T-One": (2, 3)})
    masked = apply_qa_mask(ds, "landsat-c2-l2", check_all_masked=False)
    a = sample_cube(masked, sites)
    b = sample_cube(ds, sites, collection="landsat-c2-l2")
    pd.testing.assert_frame_equal(a, b, check_like=True)
    assert "already masked" in a.attrs["qa"]
    with pytest.raises(SpecError, match="qa_pixel"):
        sample_cube(ds, sites)
    with pytest.raises(SpecError, match="already masked"):
        sample_cube(masked, sites, collection="landsat-c2-l2", snow=False)


def test_sample_cube_outside_the_grid(region):
    grid, ds = region
    sites = pd.concat([_towers_at(grid, {"T-In": (5, 5)}),
                       pd.DataFrame([{"site": "CH-Lae", "lat": 47.4781, "lon": 8.365}])], ignore_index=True)
    with pytest.raises(GridError, match="CH-Lae") as info:
        sample_cube(ds, sites, collection="landsat-c2-l2")
    assert "drop_outside=True" in str(info.value)
    out = sample_cube(ds, sites, collection="landsat-c2-l2", drop_outside=True)
    assert set(out["site"]) == {"T-In"} and out.attrs["dropped_sites"] == ["CH-Lae"]


def _hand_cube() -> tuple[GridSpec, xr.Dataset]:
    """A 4 x 5 UTM grid near FR-Pue with known values; x-gradient so interpolation is checkable."""
    grid = GridSpec(crs="EPSG:32631", resolution=100.0, bounds=(548000.0, 4842600.0, 548500.0, 4843000.0))
    ny, nx = grid.shape
    xx = np.broadcast_to(np.arange(nx, dtype="float32"), (ny, nx))
    values = np.stack([xx, xx + 10.0])  # two days
    times = np.array(["2012-05-01T00:00", "2012-05-02T00:00"], dtype="datetime64[ns]")
    ds = xr.Dataset(
        {"ndvi": (("time", "y", "x"), values), "elevation": (("y", "x"), np.full((ny, nx), 270.0, "float32")),
         "landcover": (("y", "x"), np.full((ny, nx), 10, "uint8"))},
        coords={"time": times},
    )
    ds["ndvi"].attrs["units"] = "1"
    return grid, grid.attach(ds)


def test_sample_cube_nearest_linear_and_static_layers(backend):
    grid, ds = _hand_cube()
    if backend == "dask":
        ds = ds.chunk({"time": 1, "y": 2, "x": 2})
    to_lonlat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(grid.x[2] + 30.0, grid.y[1])  # 30 % of the way from column 2 to 3
    with raise_if_dask_computes(max_computes=1 if backend == "dask" else 0):
        near = sample_cube(ds, {"FR-Pue": (lat, lon)})
    with raise_if_dask_computes(max_computes=1 if backend == "dask" else 0):
        lin = sample_cube(ds, {"FR-Pue": (lat, lon)}, method="linear")
    assert near["ndvi"].tolist() == [2.0, 12.0] and near["elevation"].tolist() == [270.0, 270.0]
    np.testing.assert_allclose(lin["ndvi"].to_numpy(), [2.3, 12.3], atol=1e-6)
    assert lin["landcover"].tolist() == [10, 10]  # classes are never interpolated
    # day-stamped (midnight) times are kept as dates, whatever the longitude
    assert near["date"].tolist() == [pd.Timestamp("2012-05-01"), pd.Timestamp("2012-05-02")]
    assert near.attrs["units"] == {"ndvi": "1"} and "no QA" in near.attrs["qa"]
    with pytest.raises(SpecError, match="method"):
        sample_cube(ds, {"FR-Pue": (lat, lon)}, method="cubic")
    with pytest.raises(MissingVariableError, match="lat"):
        sample_cube(ds, pd.DataFrame({"site": ["FR-Pue"], "latitude": [lat]}))


def test_sample_cube_uses_the_local_solar_day_for_acquisition_times():
    grid, ds = _hand_cube()
    # 23:50 UTC at 3.6 E is 00:04 local solar time of the next day
    ds = ds.assign_coords(time=np.array(["2012-05-01T23:50", "2012-05-02T10:00"], dtype="datetime64[ns]"))
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(grid.x[0], grid.y[0])
    out = sample_cube(ds, {"FR-Pue": (lat, lon)})
    assert out["date"].tolist() == [pd.Timestamp("2012-05-02"), pd.Timestamp("2012-05-02")]
    utc = sample_cube(ds, {"FR-Pue": (lat, lon)}, local_day=False)
    assert utc["date"].tolist() == [pd.Timestamp("2012-05-01"), pd.Timestamp("2012-05-02")]


class _RecordingArray:
    """A numpy array that records the index of every read (what Dask actually fetches)."""

    def __init__(self, values: np.ndarray) -> None:
        self.values, self.reads = values, []
        self.shape, self.dtype, self.ndim = values.shape, values.dtype, values.ndim

    def __getitem__(self, key):
        self.reads.append(key)
        return self.values[key]


def test_sample_cube_reads_only_the_chunks_holding_towers():
    grid, ds = _hand_cube()
    import dask.array as dsa

    recorder = _RecordingArray(ds["ndvi"].values)
    lazy = ds.assign(ndvi=(("time", "y", "x"), dsa.from_array(recorder, chunks=(1, 2, 2), meta=np.ndarray)))
    row, col = 1, 4  # chunk (0, 2) of the 2 x 3 chunks per date
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(grid.x[col], grid.y[row])
    with raise_if_dask_computes(max_computes=1):
        out = sample_cube(lazy, {"FR-Pue": (lat, lon)})
    assert out["ndvi"].tolist() == [4.0, 14.0]
    assert 0 < len(recorder.reads) <= ds.sizes["time"]  # one read per date, not one per chunk (2 x 6)
    for key in recorder.reads:
        ys, xs = key[1], key[2]
        assert ys.start >= 0 and ys.stop <= 2 and xs.start >= 4 and xs.stop <= 5
