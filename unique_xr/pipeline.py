"""Jobs: specs in, Zarr out.

:func:`run_data_layer` is the first stage of the national-cube job (issue 2): search -> load ->
mask -> indices / static layers / drivers -> Zarr, plus a PNG quicklook. Everything up to the
Zarr write is lazy; the write is the only compute. Later stages (GPP models, downscaling) extend
the same job.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from unique_xr.errors import SpecError
from unique_xr.grid import GridSpec

__all__ = ["DataLayerSpec", "DataLayerResult", "build_data_layer", "latest_valid", "run_data_layer", "run_demo"]

LANDSAT_ASSETS = ("blue", "green", "red", "nir08", "swir16", "swir22", "qa_pixel")
MODIS_ASSETS = tuple(f"Nadir_Reflectance_Band{b}" for b in (1, 2, 3, 6)) + tuple(
    f"BRDF_Albedo_Band_Mandatory_Quality_Band{b}" for b in (1, 2, 3, 6)
)
INDICES = ("ndvi", "evi", "evi2", "nirv", "kndvi", "lswi")


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


def latest_valid(da):
    """``(time, y, x)`` -> ``(y, x)``: per pixel, the most recent non-missing value (lazy).

    For static layers found at any date (a DEM, yearly land cover): the newest map wins and older
    ones only fill its gaps. Unlike a max over time, class codes of different years never mix.
    """
    out = da.isel(time=-1, drop=True)
    for i in range(da.sizes["time"] - 2, -1, -1):
        out = out.fillna(da.isel(time=i, drop=True))
    return out


def build_data_layer(spec: DataLayerSpec) -> dict[str, Any]:
    """Build the lazy cubes of the data layer (nothing is computed). Returns ``{name: Dataset}``."""
    import xarray as xr

    from unique_xr.features.indices import add_indices
    from unique_xr.features.meteo import daily_drivers, open_reanalysis
    from unique_xr.features.static import landcover_fractions, terrain
    from unique_xr.load.masks import apply_qa_mask
    from unique_xr.load.stack import load
    from unique_xr.search.collections import ESA_WORLDCOVER_CLASSES, IO_LULC_CLASSES
    from unique_xr.search.stac import search

    grid, bbox = spec.grid, spec.grid.bounds_latlon
    common = dict(engine=spec.engine, chunks=_chunks(spec), sign=_signer(spec))

    def _search(collection: str, *, static: bool = False):
        # static layers (DEM, yearly land cover) are searched at any date: their nominal date is not the period's
        return search(collection, bbox=bbox, datetime=None if static else spec.datetime, provider=spec.provider)

    cubes: dict[str, Any] = {}
    if spec.landsat:
        ds = load(_search("landsat-c2-l2"), grid=grid, collection="landsat-c2-l2", assets=LANDSAT_ASSETS, **common)
        ds = add_indices(apply_qa_mask(ds, "landsat-c2-l2"), INDICES)
        cubes["landsat_30m"] = ds
    if spec.modis:
        modis_grid = GridSpec.from_bounds(grid.bounds, crs=grid.crs, resolution=500.0)
        ds = load(_search("mcd43a4"), grid=modis_grid, collection="mcd43a4", assets=MODIS_ASSETS, **common)
        ds = add_indices(apply_qa_mask(ds, "mcd43a4"), ("ndvi", "evi", "evi2", "nirv", "kndvi"))
        cubes["modis_500m"] = ds
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
        cubes["meteo_30m"] = daily_drivers(open_reanalysis(spec.met_path), grid, time=slice(start, end))
    return cubes


def run_data_layer(spec: DataLayerSpec, out_dir: str | Path, *, overwrite: bool = False,
                   progress: bool = True, quicklook: bool = True) -> DataLayerResult:
    """Build the data layer lazily, write each cube to ``out_dir/<name>.zarr`` and a quicklook PNG."""
    from unique_xr.load.cache import open_zarr, to_zarr

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cubes = build_data_layer(spec)
    t_graph = time.perf_counter() - t0
    stores: dict[str, Path] = {}
    for name, ds in cubes.items():
        with _progress(progress, f"writing {name}"):
            stores[name] = to_zarr(ds, out / f"{name}.zarr", mode="w" if overwrite else "w-", overwrite=overwrite)
    png = None
    if quicklook:
        from unique_xr.write.quicklook import quicklook as make_quicklook

        png = make_quicklook({name: open_zarr(path) for name, path in stores.items()}, out / "quicklook.png")
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


def run_demo(out_dir: str | Path = "demo_output", *, seed: int = 0, engine: str = "stackstac",
             overwrite: bool = True, progress: bool = True) -> tuple[DataLayerResult, Any]:
    """Run the data layer on the embedded sample region (see ``unique_xr/data/sample/SOURCE.md``)."""
    from unique_xr.sample import stage_sample

    out = Path(out_dir)
    staged = stage_sample(out / "inputs", seed=seed)
    spec = DataLayerSpec(grid=staged.grid, datetime=f"{staged.dates[0]}/{staged.dates[1]}",
                         provider=str(staged.catalog), met_path=str(staged.met_path), engine=engine)
    return run_data_layer(spec, out / "cube", overwrite=overwrite, progress=progress), staged
