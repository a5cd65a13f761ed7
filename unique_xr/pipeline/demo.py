"""Jobs: specs in, Zarr out.

:func:`run_data_layer` is the first stage of the national-cube job (issue 2): search -> load ->
mask -> indices / static layers / drivers -> Zarr, plus a PNG quicklook. :func:`run_gpp` is the
second (issue 4): the data layer's cubes and the tower-trained models -> daily GPP at 30 m
(GPP_L, Landsat days) and 500 m (GPP_M, every day) -> Zarr, plus a PNG map. Everything up to a
Zarr write is lazy; the writes are the only compute. :func:`run_downscale_gpp` is the third (issue 5):
daily GPP_M downscaled to 30 m by a diffusion model, tile by tile -> Zarr, plus a PNG map.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from unique_xr.downscale.daily import build_downscaled_gpp
from unique_xr.models.gpp_stage import GPP_STAGES, build_gpp
from unique_xr.errors import SpecError
from unique_xr.features.combine import latest_valid, with_drivers
from unique_xr.grid import GridSpec
from unique_xr.search.collections import INDICES, LANDSAT_ASSETS, MODIS_ASSETS

__all__ = [
    "GPP_STAGES",
    "DataLayerResult",
    "DataLayerSpec",
    "DemoResult",
    "DownscaleResult",
    "GppResult",
    "build_data_layer",
    "build_downscaled_gpp",
    "build_gpp",
    "latest_valid",
    "run_data_layer",
    "run_demo",
    "run_downscale_gpp",
    "run_gpp",
    "with_drivers",
]



@dataclass(frozen=True, kw_only=True)
class DataLayerSpec:
    """What the data-layer job builds.

    Parameters
    ----------
    grid
        The 30 m target grid. MODIS goes on a 500 m grid over the same area in the same CRS.
    datetime
        ``"YYYY-MM-DD/YYYY-MM-DD"``.
    provider
        ``"planetary-computer"``, ``"earth-search"``, a STAC API URL or a local catalog path.
    met_path
        Reanalysis NetCDF/Zarr for daily drivers (None: no drivers).
    """

    grid: GridSpec
    datetime: str
    provider: str = "planetary-computer"
    landsat: bool = True
    modis: bool = True
    dem_collection: str | None = "cop-dem-glo-30"
    landcover_collection: str | None = "esa-worldcover"
    met_path: str | None = None
    engine: Literal["stackstac", "odc"] = "stackstac"
    chunksize: int = 512
    sign: Callable[[str], str] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.grid, GridSpec):
            raise SpecError(f"grid must be a unique_xr.GridSpec, got {type(self.grid).__name__}")
        if "/" not in self.datetime:
            raise SpecError(f"datetime must be a range 'start/end', got {self.datetime!r}")
        if self.engine not in ("stackstac", "odc"):
            raise SpecError(f"engine must be 'stackstac' or 'odc', got {self.engine!r}")
        if not (self.landsat or self.modis):
            raise SpecError("Nothing to build: set landsat=True and/or modis=True")

    def __dask_tokenize__(self):
        return ("unique_xr.DataLayerSpec", self.grid, self.datetime, self.provider, self.landsat, self.modis,
                self.dem_collection, self.landcover_collection, self.met_path, self.engine, self.chunksize)


@dataclass(frozen=True)
class DataLayerResult:
    stores: dict[str, Path]
    quicklook: Path | None
    summary: dict[str, Any]


def _chunks(spec: DataLayerSpec) -> dict[str, int]:
    return {"time": 1, "y": spec.chunksize, "x": spec.chunksize}


def _signer(spec: DataLayerSpec):
    """The spec's signing hook, else the provider's own (Planetary Computer needs one), else None."""
    if spec.sign is not None:
        return spec.sign
    from unique_xr.search.stac import signer_for

    return signer_for(spec.provider)


def build_data_layer(spec: DataLayerSpec) -> dict[str, Any]:
    """Build the lazy cubes of the data layer (nothing is computed). Returns ``{name: Dataset}``."""
    import xarray as xr

    from unique_xr.features.meteo import daily_drivers, open_reanalysis
    from unique_xr.features.static import landcover_fractions, terrain
    from unique_xr.load.stack import load
    from unique_xr.search.collections import ESA_WORLDCOVER_CLASSES, IO_LULC_CLASSES
    from unique_xr.search.stac import search

    grid, bbox = spec.grid, spec.grid.bounds_latlon
    common = dict(engine=spec.engine, chunks=_chunks(spec), sign=_signer(spec))

    def _search(collection: str, *, static: bool = False):
        # static layers (DEM, yearly land cover) are searched at any date: their nominal date is not the period's
        return search(collection, bbox=bbox, datetime=None if static else spec.datetime, provider=spec.provider)

    modis_grid = GridSpec.from_bounds(grid.bounds, crs=grid.crs, resolution=500.0)
    cubes: dict[str, Any] = {}
    if spec.landsat:
        # scale + QA mask + indices in one compiled pass per chunk (the fused path of load)
        cubes["landsat_30m"] = load(_search("landsat-c2-l2"), grid=grid, collection="landsat-c2-l2",
                                    assets=LANDSAT_ASSETS, mask=True, indices=INDICES, **common)
    if spec.modis:
        cubes["modis_500m"] = load(_search("mcd43a4"), grid=modis_grid, collection="mcd43a4", assets=MODIS_ASSETS,
                                   mask=True, indices=("ndvi", "evi", "evi2", "nirv", "kndvi"), **common)
    static = []
    if spec.dem_collection:
        dem = load(_search(spec.dem_collection, static=True), grid=grid, collection=spec.dem_collection,
                   resampling="bilinear", **common)
        static.append(terrain(latest_valid(dem["elevation"])))
    if spec.landcover_collection:
        classes = ESA_WORLDCOVER_CLASSES if spec.landcover_collection == "esa-worldcover" else IO_LULC_CLASSES
        fine = grid.refine(3)  # 10 m cells nested in the 30 m grid: fractions are exact counts
        lc = load(_search(spec.landcover_collection, static=True), grid=fine, collection=spec.landcover_collection,
                  resampling="nearest", **{**common, "chunks": {"time": 1, "y": 3 * spec.chunksize,
                                                                "x": 3 * spec.chunksize}})
        static.append(landcover_fractions(latest_valid(lc["landcover"]), grid, classes))
    if static:
        cubes["static_30m"] = xr.merge(static, compat="no_conflicts", join="exact", combine_attrs="drop_conflicts")
    if spec.met_path:
        start, end = spec.datetime.split("/")
        met = open_reanalysis(spec.met_path)
        cubes["meteo_30m"] = daily_drivers(met, grid, time=slice(start, end))
        if spec.modis:  # the drivers of GPP_M, on the MODIS grid
            cubes["meteo_500m"] = daily_drivers(met, modis_grid, time=slice(start, end))
    return cubes


def run_data_layer(spec: DataLayerSpec, out_dir: str | Path, *, overwrite: bool = False,
                   progress: bool = True, quicklook: bool = True, run: str | None = None) -> DataLayerResult:
    """Build the data layer lazily, write each cube to ``out_dir/<name>.zarr`` and a quicklook PNG.

    ``run``: the token of the job run, recorded in every store and checked when they are read back
    (see :func:`unique_xr.load.cache.open_zarr`), so stores of different runs are never mixed.
    """
    from unique_xr.load.cache import open_zarr, to_zarr

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cubes = build_data_layer(spec)
    t_graph = time.perf_counter() - t0
    stores: dict[str, Path] = {}
    for name, ds in cubes.items():
        with _progress(progress, f"writing {name}"):
            stores[name] = to_zarr(ds, out / f"{name}.zarr", mode="w" if overwrite else "w-", overwrite=overwrite,
                                   run=run)
    png = None
    if quicklook:
        from unique_xr.write.quicklook import quicklook as make_quicklook

        png = make_quicklook({name: open_zarr(path, run=run) for name, path in stores.items()},
                             out / "quicklook.png")
    summary = {"graph_seconds": round(t_graph, 3), "total_seconds": round(time.perf_counter() - t0, 3),
               "cubes": {name: {k: int(v) for k, v in ds.sizes.items()} for name, ds in cubes.items()}}
    return DataLayerResult(stores=stores, quicklook=png, summary=summary)


def _progress(enabled: bool, label: str):
    """A Dask progress bar (on the local schedulers) when ``enabled``, else a no-op context."""
    if not enabled:
        return contextlib.nullcontext()
    from dask.diagnostics import ProgressBar

    print(label)
    return ProgressBar(minimum=0.5)


# --------------------------------------------------------------------------------------------
# GPP: the data layer's cubes -> tower-trained models -> daily GPP


@dataclass(frozen=True)
class GppResult:
    """What :func:`run_gpp` wrote: ``{name: store}``, the PNG map, and per-store GPP figures."""

    stores: dict[str, Path]
    gpp_map: Path | None
    summary: dict[str, Any]


def _gpp_summary(ds) -> dict[str, Any]:
    """Range, mean and valid share of ``gpp`` in one pass over a (written) GPP cube."""
    import dask

    gpp = ds["gpp"]
    lo, hi, mean, valid = dask.compute(gpp.min(), gpp.max(), gpp.mean(), gpp.notnull().mean())
    return {"min": round(float(lo), 3), "max": round(float(hi), 3), "mean": round(float(mean), 3),
            "valid_fraction": round(float(valid), 4), "inputs_absent": ds.attrs.get("inputs_absent", "none"),
            "sizes": {k: int(v) for k, v in ds.sizes.items()}}


def run_gpp(cubes: dict[str, Any], models: dict[str, Any], out_dir: str | Path, *,
            allow_missing: dict[str, Any] | None = None, engine: str = "lightgbm",
            attrs: dict[str, Any] | None = None, overwrite: bool = False, progress: bool = True,
            gpp_map: bool = True, map_title: str | None = None, run: str | None = None) -> GppResult:
    """Estimate GPP from the data layer's cubes, write ``out_dir/gpp_<res>.zarr`` and ``gpp_map.png``.

    Parameters are those of :func:`build_gpp`, plus the output folder, whether to replace existing
    stores, progress bars, the PNG map and its title (see :func:`unique_xr.write.quicklook.gpp_map`) and
    the run token recorded in the stores (see :func:`run_data_layer`).
    ``summary`` holds the seconds taken and, per store, the range, mean and share of valid values of
    ``gpp`` and the inputs that were absent.
    """
    from unique_xr.load.cache import open_zarr, to_zarr

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    lazy = build_gpp(cubes, models, allow_missing=allow_missing, engine=engine, attrs=attrs)
    stores: dict[str, Path] = {}
    for name, ds in lazy.items():
        with _progress(progress, f"writing {name}"):
            stores[name] = to_zarr(ds, out / f"{name}.zarr", mode="w" if overwrite else "w-", overwrite=overwrite,
                                   run=run)
    written = {name: open_zarr(path, run=run) for name, path in stores.items()}
    png = None
    if gpp_map and written:
        from unique_xr.write.quicklook import gpp_map as draw_gpp_map

        png = draw_gpp_map(written, out / "gpp_map.png", title=map_title)
    summary = {name: _gpp_summary(ds) for name, ds in written.items()}
    summary["total_seconds"] = round(time.perf_counter() - t0, 3)
    return GppResult(stores=stores, gpp_map=png, summary=summary)


# --------------------------------------------------------------------------------------------
# the demo

#: the ``comment`` attribute of the demo's GPP stores
DEMO_COMMENT = (
    "unique-xr demo on the embedded sample region: the Landsat reflectance is real (USGS), the MODIS NBAR and "
    "the meteorology are synthetic, and the models are small demo models (unique_xr/data/models). The GPP shows "
    "the machinery at work; it is not a validated product."
)

DEMO_MAP_TITLE = ("unique-xr demo, sample region (Brumadinho, Brazil): real Landsat 8, synthetic MODIS and "
                  "meteorology - the machinery, not a validated product")
DEMO_DOWNSCALE_TITLE = ("unique-xr demo: daily GPP_M downscaled 500 m -> 30 m by the shipped demonstration diffusion "
                        "model (synthetic MODIS and meteorology - the machinery, not a validated product)")


@dataclass(frozen=True)
class DownscaleResult:
    """What :func:`run_downscale_gpp` wrote: the store and its figures (None in :class:`DemoResult` when skipped)."""

    store: Path
    figure: Path | None
    summary: dict[str, Any]


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` made: the data layer, the GPP stage, the downscaled GPP and the staged sample."""

    data_layer: DataLayerResult
    gpp: GppResult
    staged: Any  # unique_xr.sample.StagedSample
    downscaled: DownscaleResult | None = None


def run_downscale_gpp(cube_dir: str | Path, model, *, members: int = 4, steps: int | None = None, seed: int = 0,
                      attrs: dict[str, Any] | None = None, overwrite: bool = False, progress: bool = True,
                      figure: bool = True, title: str | None = None, run: str | None = None) -> DownscaleResult:
    """Downscale ``cube_dir/gpp_500m.zarr`` to 30 m, write ``gpp_30m_daily.zarr`` and ``gpp_downscaled.png``.

    ``cube_dir`` holds the data layer's ``static_30m.zarr`` and the GPP stage's stores (see
    :func:`run_gpp`), all of run ``run`` when it is given (see :func:`run_data_layer`); the other
    parameters are those of :func:`build_downscaled_gpp`. ``summary``
    holds the seconds taken, the model token and the range, mean, valid share and mean spread.
    """
    import warnings

    import dask

    from unique_xr.load.cache import open_zarr, to_zarr

    cube = Path(cube_dir)
    t0 = time.perf_counter()
    static = open_zarr(cube / "static_30m.zarr", run=run)
    lazy = build_downscaled_gpp(open_zarr(cube / "gpp_500m.zarr", run=run), static, GridSpec.from_xarray(static), model,
                                members=members, steps=steps, seed=seed, attrs=attrs)
    with _progress(progress, "writing gpp_30m_daily"), warnings.catch_warnings():
        # rasterio warns that its in-memory warp datasets have no geotransform before odc-geo sets one
        warnings.filterwarnings("ignore", message="Dataset has no geotransform")
        store = to_zarr(lazy.chunk({"time": 1}), cube / "gpp_30m_daily.zarr", mode="w" if overwrite else "w-",
                        overwrite=overwrite, run=run)
    written = open_zarr(store, run=run)
    summary = _gpp_summary(written)
    if "gpp_spread" in written:
        summary["spread_mean"] = round(float(dask.compute(written["gpp_spread"].mean())[0]), 3)
    summary.update({"model_token": written.attrs["model_token"], "members": members,
                    "steps": written.attrs["downscaling_steps"]})
    png = None
    if figure:
        from unique_xr.write.quicklook import gpp_downscaled_map

        cubes = {name: open_zarr(cube / f"{name}.zarr", run=run) for name in ("gpp_500m", "gpp_30m")
                 if (cube / f"{name}.zarr").exists()}
        png = gpp_downscaled_map({**cubes, "gpp_30m_daily": written}, cube / "gpp_downscaled.png", title=title)
    summary["total_seconds"] = round(time.perf_counter() - t0, 3)
    return DownscaleResult(store=store, figure=png, summary=summary)


def run_demo(out_dir: str | Path = "demo_output", *, seed: int = 0, engine: str = "stackstac",
             overwrite: bool = True, progress: bool = True, downscale: bool | None = None) -> DemoResult:
    """The data layer, the GPP stage and the downscaling on the embedded sample region.

    Writes ``out_dir/cube/``: the data-layer cubes and ``quicklook.png``, then ``gpp_30m.zarr``
    (GPP_L on the Landsat days), ``gpp_500m.zarr`` (GPP_M, daily) and ``gpp_map.png``, with the
    shipped sample models (:func:`unique_xr.sample.sample_model`), then ``gpp_30m_daily.zarr``
    (GPP_M of every day downscaled to 30 m by the shipped diffusion model,
    :func:`unique_xr.sample.sample_downscaler`; ensemble mean and spread) and ``gpp_downscaled.png``.
    The inputs the sample lacks (:data:`unique_xr.sample.SAMPLE_MISSING_INPUTS`) are passed as
    ``allow_missing`` and recorded in the stores' ``inputs_absent`` attribute. ``engine`` is the
    loader engine of the data layer. ``downscale``: True, False, or None (default) for "when torch
    is installed" (extra ``torch``). Every store records the run's token (of the data-layer spec, the
    seed and the models), and every stage reads back only stores of its own run: a run killed midway
    and rerun with other settings cannot mix its stores with the earlier ones.
    """
    from dask.base import tokenize

    from unique_xr._files import ensure_folder
    from unique_xr.load.cache import open_zarr
    from unique_xr.models.card import ModelCard
    from unique_xr.sample import (
        SAMPLE_MISSING_INPUTS,
        sample_downscaler,
        sample_model,
        stage_sample,
    )

    if downscale is None:
        import importlib.util

        downscale = importlib.util.find_spec("torch") is not None
    out = ensure_folder(out_dir, what="The demo's output folder")
    staged = stage_sample(out / "inputs", seed=seed)
    spec = DataLayerSpec(grid=staged.grid, datetime=f"{staged.dates[0]}/{staged.dates[1]}",
                         provider=str(staged.catalog), met_path=str(staged.met_path), engine=engine)
    models = {kind: sample_model(kind) for kind in GPP_STAGES}
    downscaler = None
    if downscale:
        from unique_xr.downscale import load_downscaler

        downscaler = load_downscaler(sample_downscaler())
    run = tokenize("unique_xr.run_demo", spec, seed, *(ModelCard.load(m).model_sha256 for m in models.values()),
                   downscaler.token if downscaler is not None else None)
    layer = run_data_layer(spec, out / "cube", overwrite=overwrite, progress=progress, run=run)
    cubes = {name: open_zarr(path, run=run) for name, path in layer.stores.items()}
    gpp = run_gpp(cubes, models, out / "cube", allow_missing=SAMPLE_MISSING_INPUTS, attrs={"comment": DEMO_COMMENT},
                  overwrite=overwrite, progress=progress, map_title=DEMO_MAP_TITLE, run=run)
    downscaled = None
    if downscaler is not None:
        downscaled = run_downscale_gpp(out / "cube", downscaler, seed=seed, attrs={"comment": DEMO_COMMENT},
                                       overwrite=overwrite, progress=progress, title=DEMO_DOWNSCALE_TITLE, run=run)
    return DemoResult(data_layer=layer, gpp=gpp, staged=staged, downscaled=downscaled)
