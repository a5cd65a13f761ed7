"""The national-cube job's stages, each a lazy builder of one shape: ``(spec, unit, upstream) -> datasets``.

search (once per job) -> data layer (per unit: MODIS on the coarse grid, static layers on the 30 m
grid, drivers) -> GPP_M (daily, coarse) and GPP_L (Landsat dates, 30 m; only to fit the downscaler)
-> downscaled daily 30 m GPP -> the job writes it. Nothing here computes: every builder returns
Dask-backed objects whose size depends on the unit, not on the region.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from unique_xr.errors import EmptySearchError, MissingVariableError, SpecError
from unique_xr.pipeline.spec import CubeJobSpec
from unique_xr.pipeline.units import WorkUnit

__all__ = ["AUX_PREFIXES", "DownscalingPlan", "check_chunk", "data_layer", "downscaled", "dominant_class", "gpp_stage",
           "history_dates", "landsat_dates", "search_inputs", "unit_prior"]

MODIS = "mcd43a4"
LANDSAT = "landsat-c2-l2"
#: the scheme-S2 auxiliaries a job-fitted downscaler conditions on: elevation and every land-cover fraction
AUX_PREFIXES = ("elevation", "frac_")


# ----------------------------------------------------------------------------- search (once per job)
def search_inputs(spec: CubeJobSpec, *, landsat: bool, history: bool = False) -> dict[str, Any]:
    """The items of every collection the job reads, over the region and period (static layers at any date).

    ``history``: Landsat also from ``[downscaling] prior_days`` before the period (scheme S3's prior).
    """
    import datetime as dt

    from unique_xr.search.stac import search

    fine, _ = spec.grids
    bbox = fine.bounds_latlon
    period = f"{spec.start}/{spec.end}"
    wanted = {MODIS: period}
    if landsat or history:
        first = dt.date.fromisoformat(spec.start) - dt.timedelta(days=spec.prior_days if history else 0)
        wanted[LANDSAT] = f"{first.isoformat()}/{spec.end}"
    for static in (spec.dem, spec.landcover):
        if static:
            wanted[static] = None
    items = {}
    for collection, when in wanted.items():
        found = search(collection, bbox=bbox, datetime=when, provider=spec.source)
        if len(found) == 0:
            raise EmptySearchError(
                f"No {collection} items over the region {tuple(round(b, 4) for b in bbox)} "
                f"{'in ' + period if when else 'at any date'} from {spec.source}. Check [period] start/end and the "
                "region, or choose another [data] source.")
        items[collection] = found
    return items


def _over(items, grid) -> list[Any]:
    """The items whose bbox meets ``grid``'s lon/lat bounds."""
    w, s, e, n = grid.bounds_latlon
    out = []
    for item in items:
        bb = item.bbox if hasattr(item, "bbox") else item.get("bbox")
        if bb is None or (bb[0] <= e and bb[2] >= w and bb[1] <= n and bb[3] >= s):
            out.append(item)
    return out


def landsat_dates(items) -> list[str]:
    """The distinct days (``YYYY-MM-DD``) of Landsat items."""
    return sorted({_day(item) for item in items})


def _day(item) -> str:
    """The day an item lands on in a loaded cube (the loader's rule: ``start_datetime`` of a composite, else ``datetime``)."""
    from unique_xr.load.prepare import _item_time

    d = item.to_dict() if hasattr(item, "to_dict") else item
    return str(_item_time(d)[0])[:10]


# ----------------------------------------------------------------------------- data layer (per unit)
def unit_grids(spec: CubeJobSpec, window: tuple[int, int, int, int]):
    """``(fine, coarse)`` grids of a window ``(y0, y1, x0, x1)`` of the output grid (edges on the coarse lattice)."""
    fine, coarse = spec.grids
    k = spec.coarse_factor
    y0, y1, x0, x1 = window
    if any(v % k for v in (y0, x0)) or (y1 % k and y1 != fine.shape[0]) or (x1 % k and x1 != fine.shape[1]):
        raise SpecError(f"window {window} is not on the {k}-pixel coarse lattice")
    return fine.window((y0, y1), (x0, x1)), coarse.window((y0 // k, -(-y1 // k)), (x0 // k, -(-x1 // k)))


def data_layer(spec: CubeJobSpec, items: Mapping[str, Any], window: tuple[int, int, int, int], *,
               days: Sequence[Any], landsat_days: Sequence[str] = (), static: bool = True,
               landsat_may_be_cloudy: bool = False) -> dict[str, Any]:
    """Lazy cubes of one window of the region.

    ``modis`` (QA-masked NBAR + indices) on the coarse grid on ``days`` (a list of days) and
    ``meteo_coarse`` from the first to the last of them;
    ``static`` (elevation, slope, land-cover fractions) on the 30 m grid; with ``landsat_days``,
    ``landsat`` (masked reflectance + indices on those days) and ``meteo_fine``. Landsat with no
    clear pixel at all is an error when computed, unless ``landsat_may_be_cloudy`` (scheme S3's
    history: a cloudy window then simply gives no prior).
    """
    from unique_xr.features.meteo import daily_drivers, open_reanalysis
    from unique_xr.load.stack import load
    from unique_xr.search.collections import INDICES, LANDSAT_ASSETS, MODIS_ASSETS
    from unique_xr.search.stac import signer_for

    fine, coarse = unit_grids(spec, window)
    sign = signer_for(spec.source)
    chunk = {"time": 1, "y": spec.chunk, "x": spec.chunk}
    common = {"engine": spec.engine, "sign": sign}
    wanted = {str(d)[:10] for d in days}
    start, end = min(wanted), max(wanted)
    met = open_reanalysis(spec.meteo)
    cubes: dict[str, Any] = {}
    modis_items = [it for it in _over(items[MODIS], coarse) if _day(it) in wanted]
    if not modis_items:
        raise EmptySearchError(f"No {MODIS} items over the window {window} between {start} and {end}.")
    # scale + QA mask + indices in one compiled pass per chunk (the fused path of load)
    cubes["modis"] = load(modis_items, grid=coarse, collection=MODIS, assets=MODIS_ASSETS,
                          chunks={"time": 1, "y": -1, "x": -1}, on_all_fill="nan", mask=True,
                          indices=("ndvi", "evi", "evi2", "nirv", "kndvi"), **common)
    cubes["meteo_coarse"] = daily_drivers(met, coarse, time=slice(start, end))
    if landsat_days:
        chosen = [it for it in _over(items[LANDSAT], fine) if _day(it) in set(landsat_days)]
        if chosen:
            cubes["landsat"] = load(chosen, grid=fine, collection=LANDSAT, assets=LANDSAT_ASSETS, chunks=chunk,
                                    on_all_fill="nan", mask={"check_all_masked": not landsat_may_be_cloudy},
                                    indices=INDICES, **common)
            cubes["meteo_fine"] = daily_drivers(met, fine, time=slice(min(landsat_days), max(landsat_days)))
    if static:
        cubes["static"] = static_layers(spec, items, window)
    return cubes


def static_layers(spec: CubeJobSpec, items: Mapping[str, Any], window: tuple[int, int, int, int]):
    """Lazy static layers of a window on the 30 m grid: elevation and slope, land-cover fractions."""
    import xarray as xr

    from unique_xr.features.static import landcover_fractions, terrain
    from unique_xr.load.stack import load
    from unique_xr.features.combine import latest_valid
    from unique_xr.search.collections import ESA_WORLDCOVER_CLASSES, IO_LULC_CLASSES
    from unique_xr.search.stac import signer_for

    fine, _ = unit_grids(spec, window)
    common = {"engine": spec.engine, "sign": signer_for(spec.source)}
    layers = []
    if spec.dem:
        dem = load(_over(items[spec.dem], fine), grid=fine, collection=spec.dem, resampling="bilinear",
                   chunks={"time": 1, "y": spec.chunk, "x": spec.chunk}, **common)
        layers.append(terrain(latest_valid(dem["elevation"])))
    if spec.landcover:
        classes = ESA_WORLDCOVER_CLASSES if spec.landcover == "esa-worldcover" else IO_LULC_CLASSES
        lc = load(_over(items[spec.landcover], fine), grid=fine.refine(3), collection=spec.landcover,
                  resampling="nearest", chunks={"time": 1, "y": 3 * spec.chunk, "x": 3 * spec.chunk}, **common)
        layers.append(landcover_fractions(latest_valid(lc["landcover"]), fine, classes))
    if not layers:
        return xr.Dataset()
    return xr.merge(layers, compat="no_conflicts", join="exact", combine_attrs="drop_conflicts")


# ----------------------------------------------------------------------------- GPP (per unit)
def gpp_stage(spec: CubeJobSpec, cubes: Mapping[str, Any], models: Mapping[str, Any], *,
              days: Sequence[Any] | None = None) -> dict[str, Any]:
    """``{"gpp_m": DataArray (time, y, x) on the coarse grid, daily over ``days``; "gpp_l": on the Landsat days}``."""
    import pandas as pd

    from unique_xr.models.gpp_stage import build_gpp

    out = {}
    if "gpp_m" in models:
        ds = build_gpp({"modis_500m": cubes["modis"], "meteo_500m": cubes["meteo_coarse"]}, {"gpp_m": models["gpp_m"]},
                       allow_missing={"gpp_m": spec.allow_missing.get("gpp_m", ())}, engine=spec.tree_engine)["gpp_500m"]
        gpp = ds["gpp"]
        gpp = gpp.assign_coords(time=pd.DatetimeIndex(gpp["time"].values).normalize())
        if days is not None:
            gpp = gpp.reindex(time=pd.DatetimeIndex(days).normalize())
        out["gpp_m"] = gpp
    if "gpp_l" in models and "landsat" in cubes:
        ds = build_gpp({"landsat_30m": cubes["landsat"], "meteo_30m": cubes["meteo_fine"]}, {"gpp_l": models["gpp_l"]},
                       allow_missing={"gpp_l": spec.allow_missing.get("gpp_l", ())}, engine=spec.tree_engine)["gpp_30m"]
        gpp = ds["gpp"]
        out["gpp_l"] = gpp.assign_coords(time=pd.DatetimeIndex(gpp["time"].values).normalize())
    return out


# ----------------------------------------------------------------------------- downscaling (per unit)
def check_chunk(spec: CubeJobSpec, tile: int, *, hint: str = "") -> int:
    """The halo a downscaler of ``tile``-pixel tiles reads around a block; refused when wider than ``[output] chunk``."""
    from unique_xr.downscale.blockwise import halo

    reach = halo(tile, spec.coarse_factor)
    if spec.chunk < reach:
        raise SpecError(f"[output] chunk = {spec.chunk} is narrower than the {reach} pixels the downscaler's tiles "
                        f"(tile {tile}) read around a block; use chunk >= {reach} (a multiple of "
                        f"{spec.coarse_factor}){hint}.")
    return reach


class DownscalingPlan:
    """What every unit's downscaling shares: the model (as one graph key), its tile lattice and halo."""

    def __init__(self, spec: CubeJobSpec, model) -> None:
        from unique_xr.downscale.api import DownscalerHandle, sampling_steps
        from unique_xr.downscale.model import resolve_device
        from unique_xr.downscale.ranges import check_factor
        from unique_xr.downscale.tiling import TilePlan

        fine, coarse = spec.grids
        self.model = model
        self.aux = [a.name for a in model.norm.aux]
        check_factor(spec.coarse_factor, model.card)
        self.device = resolve_device(spec.device)
        self.steps = sampling_steps(spec.steps, model)
        self.plan = TilePlan.make(fine.shape, tile=model.config.tile, overlap=model.config.overlap,
                                  stride=model.stride)
        self.halo = check_chunk(spec, model.config.tile)
        self.handle = DownscalerHandle(model)
        self.coarse_shape = coarse.shape
        self.resources = {"GPU": 1} if self.device.startswith("cuda") else None

    def check_inputs(self, static) -> None:
        lacking = [n for n in self.aux if n not in static]
        if lacking:
            raise MissingVariableError(
                f"The downscaler was trained with the auxiliaries {self.aux}; the data layer cannot provide "
                f"{lacking} (it has {sorted(map(str, static.data_vars))}). Set [data] dem / landcover to the "
                "collections the model was fitted with, or fit a downscaler for this job ([models] downscaler = "
                "\"fit\").")


def history_dates(spec: CubeJobSpec, items: Mapping[str, Any], days: Sequence[Any]) -> list[str]:
    """Scheme S3: the Landsat days whose GPP_L can be the prior of ``days`` (``prior_days`` before the first, up to the last)."""
    import pandas as pd

    first = pd.Timestamp(days[0]) - pd.Timedelta(days=spec.prior_days)
    last = pd.Timestamp(days[-1])
    return [d for d in landsat_dates(items.get(LANDSAT, [])) if first <= pd.Timestamp(d) < last]


def unit_prior(spec: CubeJobSpec, gpp_l, days: Sequence[Any]):
    """Scheme S3: the lazy prior of each of ``days`` from the unit's GPP_L history (None: no history)."""
    from unique_xr.downscale.api import prior_from_history

    if gpp_l is None:
        return None
    return prior_from_history(gpp_l.transpose("time", "y", "x"), days, max_age=spec.prior_days)


def downscaled(spec: CubeJobSpec, unit: WorkUnit, gpp_m, static, plan: DownscalingPlan, *,
               window: tuple[int, int, int, int], mask=None, prior=None):
    """Lazy daily 30 m GPP of one unit: ``gpp`` (member mean) and ``gpp_spread`` ``(time, y, x)``, float32.

    ``gpp_m`` and ``static`` cover ``window`` (the unit plus the halo); the result covers the unit.
    ``mask`` (bool ``(y, x)`` over the unit) sets pixels outside the region polygon to NaN. ``prior``
    (scheme S3, :func:`unit_prior`) covers ``window`` too; None: no pixel has a prior.
    """
    import xarray as xr

    from unique_xr.downscale.prior import day_numbers
    from unique_xr.downscale.blockwise import downscale_window

    plan.check_inputs(static)
    members = spec.members
    coarse = gpp_m.transpose("time", "y", "x").data.astype(np.float32).rechunk({0: spec.time_chunk})
    aux = [static[n].transpose("y", "x").data for n in plan.aux]
    box = (unit.rows[0], unit.rows[1], unit.cols[0], unit.cols[1])
    s3 = {}
    if plan.model.norm.prior:
        s3["doys"] = [float(d) for d in day_numbers(gpp_m["time"].values)[1]]
        if prior is not None:
            s3["prior"] = [prior[v].transpose("time", "y", "x").data.astype(np.float32) for v in ("fine", "age")]
    data = downscale_window(
        coarse, aux, plan.handle, plan=plan.plan, factor=spec.coarse_factor, coarse_shape=plan.coarse_shape,
        window=window, box=box, chunk=(spec.chunk, spec.chunk), n_stats=1 if members == 1 else 4,
        resources=plan.resources, members=members, steps=plan.steps, sampler=None, seed=spec.seed, conserve=False,
        device=plan.device, precision="auto", batch_size=64 if plan.device.startswith("cuda") else 8, threads=1,
        ranges=plan.model.card.get("training_ranges"), allow_out_of_range=False, **s3)
    fine, _ = spec.grids
    grid = fine.window(unit.rows, unit.cols)
    dims = ("time", "y", "x")
    out = xr.Dataset({"gpp": (dims, data[0])}, coords={"time": gpp_m["time"].values})
    if members > 1:
        out["gpp_spread"] = (dims, data[1])
    if mask is not None:
        out = out.where(xr.DataArray(mask, dims=("y", "x")))
    return grid.attach(out)


def dominant_class(static, classes: Mapping[int, str]):
    """``(y, x)`` uint8: the land-cover class with the largest fraction (0 where no class is known)."""
    import xarray as xr

    codes = [c for c in sorted(classes) if f"frac_{classes[c]}" in static]
    if not codes:
        return None
    stack = xr.concat([static[f"frac_{classes[c]}"].fillna(-1) for c in codes], dim="cls")
    best = stack.argmax("cls")
    lut = np.array(codes, dtype=np.uint8)
    out = xr.apply_ufunc(lambda i, m: np.where(m > 0, lut[i], 0).astype(np.uint8), best, stack.max("cls"),
                         dask="parallelized", output_dtypes=[np.uint8])
    return out


def fit_units(units: Sequence[WorkUnit], n: int) -> list[WorkUnit]:
    """Up to ``n`` units of the largest size (fit needs pairs of one shape), spread evenly over the region."""
    first = [u for u in units if u.days[0] == 0]
    shapes: dict[tuple[int, int], list[WorkUnit]] = {}
    for u in first:
        shapes.setdefault((u.rows[1] - u.rows[0], u.cols[1] - u.cols[0]), []).append(u)
    pool = max(shapes.values(), key=lambda us: (us[0].pixels, len(us)))
    idx = np.unique(np.linspace(0, len(pool) - 1, min(n, len(pool))).round().astype(int))
    return [pool[i] for i in idx]


def spread_dates(dates: Sequence[str], n: int) -> list[str]:
    """Up to ``n`` of ``dates`` spread evenly over them (so over the seasons of a year's acquisitions).

    >>> spread_dates(["2023-01-05", "2023-04-01", "2023-07-01", "2023-10-01", "2023-12-20"], 3)
    ['2023-01-05', '2023-07-01', '2023-12-20']
    """
    if len(dates) <= n:
        return list(dates)
    idx = np.unique(np.linspace(0, len(dates) - 1, n).round().astype(int))
    return [dates[i] for i in idx]


def fit_pairs(spec: CubeJobSpec, items: Mapping[str, Any], units: Sequence[WorkUnit], dates: Sequence[str],
              models: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Lazy training pairs of the job's downscaler: per unit, GPP_M (coarse) and GPP_L (30 m) on ``dates`` + static."""
    out = []
    for unit in units:
        window = (unit.rows[0], unit.rows[1], unit.cols[0], unit.cols[1])
        cubes = data_layer(spec, items, window, days=dates, landsat_days=dates)
        if "landsat" not in cubes:
            continue
        gpp = gpp_stage(spec, cubes, models)
        static = cubes["static"]
        aux = [n for n in map(str, static.data_vars) if n.startswith(AUX_PREFIXES)] if spec.scheme != "s1" else []
        out.append({"unit": unit.id, "gpp_m": gpp["gpp_m"], "gpp_l": gpp["gpp_l"], "aux": static[aux]})
    return out


def pairs_for_training(computed: Sequence[Mapping[str, Any]], dates: Sequence[str], *, min_valid: float = 0.3):
    """``(coarse, fine, aux, used, history)`` for :func:`unique_xr.downscale.fit` from computed pairs.

    A (unit, date) pair is kept when GPP_L is valid on at least ``min_valid`` of its pixels and GPP_M
    somewhere; ``aux`` holds one ``(pair, y, x)`` layer per auxiliary (each pair's own unit).
    ``history`` holds the other (unit, date) GPP_L images with a clear pixel, as ``(date, unit, GPP_L)``:
    scheme S3 can use them as a pair's prior.
    """
    import pandas as pd
    import xarray as xr

    coarse, fine, aux, used, history = [], [], [], [], []
    for p in computed:
        gl, gm = p["gpp_l"], p["gpp_m"]
        for day in dates:
            when = pd.Timestamp(day)
            if when not in gl["time"].values:
                continue
            f = gl.sel(time=when, drop=True)
            c = gm.sel(time=when, drop=True) if when in gm["time"].values else None
            if c is None or float(np.isfinite(f.values).mean()) < min_valid or not np.isfinite(c.values).any():
                if np.isfinite(f.values).any():
                    history.append((day, p["unit"], f.drop_vars([v for v in f.coords if v not in ("y", "x")])))
                continue
            fine.append(f.drop_vars([v for v in f.coords if v not in ("y", "x")]).rename("gpp"))
            coarse.append(c.drop_vars([v for v in c.coords if v not in ("y", "x")]).rename("gpp"))
            aux.append(p["aux"])
            used.append(f"{p['unit']}@{day}")
    if not fine:
        raise EmptySearchError(
            f"No usable (GPP_M, GPP_L) pairs to fit the downscaler on {list(dates)}: every Landsat date was cloudy or "
            f"empty over the sampled units (a pair needs {min_valid:.0%} valid 30 m pixels). Widen the period, raise "
            "[downscaling] fit_units / fit_dates, or give a fitted downscaler ([models] downscaler).")
    names = list(map(str, aux[0].data_vars))
    stacked = [xr.DataArray(np.stack([a[n].values for a in aux]), dims=("pair", "y", "x"), name=n) for n in names]
    # a land-cover class absent from every pair carries nothing to learn from: it is left out of the model
    stacked = [a for a in stacked if not a.name.startswith("frac_") or float(np.nanmax(a.values, initial=0)) > 0]
    for f in fine:
        f.attrs["units"] = "g m-2 d-1"
    return coarse, fine, stacked, used, history
