"""Diffusion downscaling scored on real coarse/fine image pairs against bicubic and regression baselines.

This script makes the evaluation table and maps of ``docs/downscale.md`` from one real run. For
each pair set in ``../shared/data/pairs`` it fits on the earlier dates, predicts a later date
from its coarse image alone, and scores every method on the pixels where the fine truth is
clear (the same pixels for every method):

- ``bicubic``: the coarse field interpolated to the fine grid (for sets whose coarse image was
  already resampled onto the fine grid by its producers, that image itself);
- ``linear``: one regression ``fine ~ a + b * upsampled coarse`` fitted across the training dates;
- ``per-class``: the same with one ``(a, b)`` per land-cover class (sets with a class map);
- ``diffusion S1``: the diffusion model conditioned on the coarse field only;
- ``diffusion S2``: conditioned on the coarse field and the land-cover fractions (sets with one).
- ``bicubic + texture`` (sets with a nested coarse grid): bicubic plus the mean sub-coarse anomaly
  of the training fine images (:func:`unique_xr.downscale.texture.texture_prior`), nothing learned;
- with ``--schemes ... s2t``, ``diffusion S2 + texture``: S2 also conditioned on that texture layer
  (leave-one-out while fitting). The held-out dates' fine images never enter the layer.
- with ``--calibrate``, ``diffusion S1/S2, calibrated interval``: the same ensemble mean and spread
  with the 90 % interval calibrated on the last training date (:mod:`unique_xr.downscale.calibration`)
  by a second model fitted on the other training dates, so that date is held out for it.

Scores: RMSE, bias, Pearson r, SSIM (:mod:`unique_xr.downscale.metrics`) and, for the diffusion
ensembles, the share of truth pixels inside the 90 % member interval. For sets with a nested
coarse grid, :func:`coarse_input_diagnostics` also measures how much of the error is already in
the coarse image (a perfect coarse input, smoothing, misregistration, the date's own offset) and
how much of the sub-coarse detail the land cover and the texture explain. The numbers go to
``benchmarks/results/downscale_pairs.json`` and a markdown table on stdout; the maps (coarse,
truth, prediction, error, spread) to ``docs/figures/downscale_<set>.png``.

The pair sets (attributions in each folder's SOURCE.txt):

``ndvi``
    IFSDAF example data (Liu et al. 2019): Landsat-8 NDVI at 30 m (552 x 576 px, CFmask clear
    pixels only), MODIS 16-day NDVI at 240 m (exact 8 x 8 blocks of the Landsat grid) and a
    4-class land-cover map. Fit on DOY 104, 191, 200, 216; predict DOY 239 (and 344, 360).
``cia``
    Coleambally Irrigation Area (Emelyanova et al. 2013), Landsat-7 / MODIS NDVI at 50 m with
    MODIS already resampled onto the Landsat grid. Fit on DOY 281, 290; predict 306.
``boreas``
    ESTARFM test data (Zhu et al. 2010), Landsat-7 / MODIS NDVI, 400 x 400 px, MODIS already
    resampled, no georeference. Fit on 05-24, 07-11; predict 08-12.
``yanco``
    Landsat / MODIS land-surface temperature at Yanco (Yu et al. 2023), 0.001 degree grid; the
    MODIS pixels are exact 10 x 10 blocks. Fit on 2016-02-05; predict 2016-03-08.

Run it from anywhere::

    python examples/downscale_pairs.py                      # every set, default configuration
    python examples/downscale_pairs.py --sets ndvi --members 16 --steps 25
    python examples/downscale_pairs.py --quick --sets yanco  # a smoke run of a few seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from unique_xr.downscale.baselines import RegressionBaseline, bicubic, block_mean
from unique_xr.downscale.metrics import interval_coverage, score_table

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "pairs"

NDVI_DIR = "ifsdaf_landsat8_ndvi_modis_ndvi_landcover"
CIA_DIR = "cia_coleambally_landsat_modis"
BOREAS_DIR = "boreas_etm_modis"
YANCO_DIR = "yanco_landsat_modis_lst"

#: Landsat-8 scenes of the NDVI set (DOY of 2015 -> scene id; two WRS-2 paths, 125 and 126).
NDVI_SCENES = {104: "LC81250382015104LGN00", 191: "LC81260382015191LGN00", 200: "LC81250382015200LGN00",
               216: "LC81250382015216LGN00", 239: "LC81260382015239LGN00", 344: "LC81250382015344LGN00",
               360: "LC81250382015360LGN00"}
NDVI_FACTOR = 8
NDVI_CLASSES = (1, 2, 3, 4)
#: CFmask codes: 0 clear, 1 water, 2 cloud shadow, 3 snow, 4 cloud, 255 fill.
CFMASK_CLEAR = 0
CIA_DOYS = {281: "2001-10-08", 290: "2001-10-17", 306: "2001-11-02"}
CIA_BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")
BOREAS_DATES = ("0524", "0711", "0812")
BOREAS_BANDS = ("green", "red", "nir")
YANCO_FACTOR = 10

SETS = ("ndvi", "cia", "boreas", "yanco")
DPI = 80


# --------------------------------------------------------------------------------------------
# readers: each returns a (y, x) float32 DataArray with NaN for fill and cloud


def _rasterio():
    from unique_xr._optional import import_optional

    return import_optional("rasterio", purpose="reading the image pairs")


def read_raster(path: Path) -> tuple[np.ndarray, object, str | None]:
    """All bands of a raster (GeoTIFF, or ENVI through its ``.hdr``): (bands, y, x), affine, CRS or None."""
    rasterio = _rasterio()
    import warnings

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: is --data pointing at the shared 'pairs' folder?")
    with warnings.catch_warnings():  # the ungeoreferenced ENVI files raise NotGeoreferencedWarning
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            values = src.read()
            transform = src.transform
            crs = src.crs.to_string() if src.crs is not None and src.crs.is_epsg_code else None
            nodata = src.nodata
    values = values.astype(np.float32)
    if nodata is not None:
        values[values == np.float32(nodata)] = np.nan
    return values, transform, crs


def _dataarray(values: np.ndarray, transform, *, name: str, units: str, long_name: str, crs: str | None,
               **attrs) -> xr.DataArray:
    """A (y, x) DataArray with pixel-centre coordinates from ``transform`` (north-up grids only)."""
    ny, nx = values.shape
    x = transform.c + transform.a * (np.arange(nx) + 0.5)
    y = transform.f + transform.e * (np.arange(ny) + 0.5)
    return xr.DataArray(values, dims=("y", "x"), coords={"y": y, "x": x}, name=name,
                        attrs={"units": units, "long_name": long_name, "crs": crs or "none (local grid)",
                               "resolution": abs(float(transform.a)), **attrs})


def modis_band_for_doy(doy: int) -> int:
    """1-based band of the 23 MODIS 16-day composites of the year that covers day-of-year ``doy``.

    >>> modis_band_for_doy(239), modis_band_for_doy(1), modis_band_for_doy(16), modis_band_for_doy(17)
    (15, 1, 1, 2)
    """
    if not 1 <= doy <= 366:
        raise ValueError(f"doy must be 1..366; got {doy}.")
    return min((doy - 1) // 16 + 1, 23)


def read_ndvi_landsat(doy: int, data: Path = DEFAULT_DATA) -> xr.DataArray:
    """Landsat-8 NDVI of the NDVI set on DOY ``doy`` of 2015: 30 m, 552 x 576, NaN unless CFmask is clear."""
    if doy not in NDVI_SCENES:
        raise ValueError(f"No Landsat scene on DOY {doy}; the NDVI set has DOY {sorted(NDVI_SCENES)}.")
    folder = Path(data) / NDVI_DIR / "landsat8_ndvi_cfmask"
    values, transform, _ = read_raster(folder / f"{NDVI_SCENES[doy]}_ndvi")
    mask, _, _ = read_raster(folder / f"{NDVI_SCENES[doy]}_mask")
    ndvi = values[0] * np.float32(1e-4)
    ndvi[(mask[0] != CFMASK_CLEAR) | (values[0] <= -9999)] = np.nan
    return _dataarray(ndvi, transform, name="ndvi", units="1", long_name="Landsat-8 NDVI (CFmask clear)",
                      crs=None, sensor="Landsat-8 OLI", doy=doy, scene=NDVI_SCENES[doy])


def read_ndvi_modis(doy: int, data: Path = DEFAULT_DATA) -> xr.DataArray:
    """MODIS 16-day NDVI composite covering DOY ``doy`` of 2015, on its own 240 m grid (69 x 72)."""
    values, transform, _ = read_raster(Path(data) / NDVI_DIR / "MOD_16Day_ndvi")
    band = modis_band_for_doy(doy)
    ndvi = values[band - 1] * np.float32(1e-4)
    ndvi[values[band - 1] <= -3000] = np.nan  # MODIS VI fill is -3000; this composite has none
    first = 16 * (band - 1) + 1
    return _dataarray(ndvi, transform, name="ndvi", units="1", long_name="MODIS 16-day NDVI", crs=None,
                      sensor="MODIS", doy=doy, composite_doys=f"{first}-{first + 15}", factor=NDVI_FACTOR)


def read_landcover(data: Path = DEFAULT_DATA) -> xr.DataArray:
    """The 4-class land-cover map of the NDVI set (uint8, classes 1-4, 30 m, on the Landsat grid)."""
    values, transform, _ = read_raster(Path(data) / NDVI_DIR / "landcover")
    da = _dataarray(values[0].astype(np.uint8), transform, name="landcover", units="1",
                    long_name="land-cover class (Liu et al. 2019)", crs=None)
    da.attrs["flag_values"] = list(NDVI_CLASSES)
    return da


def _ndvi_from_bands(values: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    red, nir = values[bands.index("red")], values[bands.index("nir")]
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = (nir - red) / (nir + red)
    ndvi[~np.isfinite(ndvi) | (np.abs(ndvi) > 1)] = np.nan
    return ndvi.astype(np.float32)


def read_cia(doy: int, sensor: str, variable: str = "ndvi", data: Path = DEFAULT_DATA) -> xr.DataArray:
    """One CIA image (``sensor`` ``"landsat"`` or ``"modis"``) on the 50 m Landsat grid (250 x 250).

    ``variable`` is ``"ndvi"`` or a band name (:data:`CIA_BANDS`, reflectance 0-1).
    """
    if doy not in CIA_DOYS or sensor not in ("landsat", "modis"):
        raise ValueError(f"CIA has DOY {sorted(CIA_DOYS)} and sensors 'landsat', 'modis'; got {doy}, {sensor!r}.")
    values, transform, crs = read_raster(Path(data) / CIA_DIR / f"cia_{sensor}_{CIA_DOYS[doy]}_doy{doy}.tif")
    if variable == "ndvi":
        out, units = _ndvi_from_bands(values, CIA_BANDS), "1"
    else:
        out, units = values[CIA_BANDS.index(variable)], "1"
    return _dataarray(out, transform, name=variable, units=units, long_name=f"CIA {sensor} {variable}", crs=crs,
                      sensor=sensor, doy=doy)


def read_boreas(date: str, sensor: str, variable: str = "ndvi", data: Path = DEFAULT_DATA) -> xr.DataArray:
    """One BOREAS image (``sensor`` ``"tm"`` or ``"modis"``), 400 x 400, on a local 30 m grid.

    The files carry no georeference: coordinates are metres from the top-left corner (y down
    as negative northing). ``variable`` is ``"ndvi"`` or a band (:data:`BOREAS_BANDS`, 0-1).
    """
    if date not in BOREAS_DATES or sensor not in ("tm", "modis"):
        raise ValueError(f"BOREAS has dates {BOREAS_DATES} and sensors 'tm', 'modis'; got {date!r}, {sensor!r}.")
    from affine import Affine

    values, _, _ = read_raster(Path(data) / BOREAS_DIR / f"{sensor}{date}")
    values = values * np.float32(1e-4)
    out = _ndvi_from_bands(values, BOREAS_BANDS) if variable == "ndvi" else values[BOREAS_BANDS.index(variable)]
    return _dataarray(out, Affine(30.0, 0, 0, 0, -30.0, 0), name=variable, units="1",
                      long_name=f"BOREAS {sensor} {variable}", crs=None, sensor=sensor, date=f"2001-{date[:2]}-{date[2:]}")


def read_yanco(date: str, sensor: str, data: Path = DEFAULT_DATA) -> xr.DataArray:
    """Yanco land-surface temperature (K) on ``date`` (``"20160205"``, ...).

    ``sensor="landsat"``: the 400 x 400 grid of 0.001 degree. ``sensor="modis"``: the MODIS
    pixels on their own 40 x 40 grid of 0.01 degree (the file repeats each over an exact
    10 x 10 block of the Landsat grid; the blocks are collapsed here, and checked to be constant).
    """
    name = {"landsat": "Landsat_LST_cloudrm", "modis": "MOD11A1_LST_cloudrm"}.get(sensor)
    if name is None:
        raise ValueError(f"sensor must be 'landsat' or 'modis'; got {sensor!r}.")
    values, transform, crs = read_raster(Path(data) / YANCO_DIR / f"{name}_{date}.tif")
    lst = values[0]
    attrs = {"sensor": sensor, "date": f"{date[:4]}-{date[4:6]}-{date[6:]}"}
    if sensor == "modis":
        ny, nx = lst.shape
        blocks = lst.reshape(ny // YANCO_FACTOR, YANCO_FACTOR, nx // YANCO_FACTOR, YANCO_FACTOR)
        spread = np.nanmax(blocks, axis=(1, 3)) - np.nanmin(blocks, axis=(1, 3))
        if np.nanmax(spread) > 1e-3:
            raise ValueError(f"{date}: MODIS LST is not constant over 10 x 10 blocks (max spread {np.nanmax(spread)} K).")
        lst = block_mean(lst, YANCO_FACTOR).astype(np.float32)
        transform = transform * transform.scale(YANCO_FACTOR)
        attrs["factor"] = YANCO_FACTOR
    return _dataarray(lst, transform, name="lst", units="K", long_name=f"{sensor} land-surface temperature",
                      crs=crs, **attrs)


@dataclass(frozen=True, kw_only=True)
class PairSet:
    """One area's coarse/fine pairs, split into training and held-out dates.

    ``factor`` is the number of fine pixels per coarse pixel side when the coarse images are on
    their own (nested) grid, None when they were already resampled onto the fine grid.
    ``classes`` is a fine-grid class map for the per-class regression; ``aux`` the fine-grid
    auxiliaries of scheme S2 (None: the set has only S1). The land-cover map is passed to S2 as
    it is: the model turns a class map into one fraction channel per class.
    """

    name: str
    variable: str
    units: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    coarse: dict[str, xr.DataArray]
    fine: dict[str, xr.DataArray]
    factor: int | None = None
    classes: xr.DataArray | None = None
    aux: list[xr.DataArray] | None = None
    citation: str = ""
    notes: dict[str, str] = field(default_factory=dict)

    def coarse_on_fine(self, date: str) -> np.ndarray:
        """The coarse image of ``date`` on the fine grid: bicubic when on its own grid, else as given."""
        coarse, fine = self.coarse[date], self.fine[date]
        if self.factor is None:
            return coarse.values.astype(np.float64)
        return bicubic(coarse.values, self.factor, shape=fine.shape)

    def crop(self, size: int) -> PairSet:
        """The top-left ``size x size`` fine pixels (and the coarse pixels over them): for smoke runs."""
        k = self.factor or 1
        if size % k:
            raise ValueError(f"size must be a multiple of the factor {k}; got {size}.")
        fine = {d: a[:size, :size] for d, a in self.fine.items()}
        coarse = {d: a[: size // k, : size // k] for d, a in self.coarse.items()}
        classes = None if self.classes is None else self.classes[:size, :size]
        aux = None if self.aux is None else [a[:size, :size] for a in self.aux]
        return dataclasses.replace(self, fine=fine, coarse=coarse, classes=classes, aux=aux)


def load_pairs(name: str, data: Path = DEFAULT_DATA, *, test: Sequence[str] | None = None) -> PairSet:
    """The pair set ``name`` (one of :data:`SETS`) read from ``data``."""
    data = Path(data)
    if name == "ndvi":
        train, held = (104, 191, 200, 216), (239, 344, 360)
        dates = (*train, *held)
        landcover = read_landcover(data)
        return PairSet(
            name="ndvi", variable="NDVI", units="1", train=tuple(map(str, train)),
            test=tuple(test or map(str, held)),
            coarse={str(d): read_ndvi_modis(d, data) for d in dates},
            fine={str(d): read_ndvi_landsat(d, data) for d in dates},
            factor=NDVI_FACTOR, classes=landcover, aux=[landcover],
            citation="Liu et al. 2019, RSE 227:74-89 (IFSDAF example data)",
            notes={"dates": "day of year 2015", "coarse": "MODIS 16-day NDVI, 240 m (8 x 8 Landsat pixels)",
                   "fine": "Landsat-8 NDVI, 30 m, CFmask clear only"})
    if name == "cia":
        dates = tuple(CIA_DOYS)
        return PairSet(
            name="cia", variable="NDVI", units="1", train=("281", "290"), test=tuple(test or ("306",)),
            coarse={str(d): read_cia(d, "modis", data=data) for d in dates},
            fine={str(d): read_cia(d, "landsat", data=data) for d in dates},
            citation="Emelyanova et al. 2013, RSE 133:193-209 (CIA)",
            notes={"dates": "day of year 2001", "coarse": "MODIS MOD09GA resampled to the 50 m grid by the producers",
                   "fine": "Landsat-7 ETM+ at 50 m (ENVI pyramid level of the 25 m CIA images)"})
    if name == "boreas":
        return PairSet(
            name="boreas", variable="NDVI", units="1", train=("0524", "0711"), test=tuple(test or ("0812",)),
            coarse={d: read_boreas(d, "modis", data=data) for d in BOREAS_DATES},
            fine={d: read_boreas(d, "tm", data=data) for d in BOREAS_DATES},
            citation="Zhu et al. 2010, RSE 114:2610-2623 (ESTARFM test data)",
            notes={"dates": "MMDD of 2001", "coarse": "MODIS resampled to the ~30 m grid by the producers",
                   "fine": "Landsat-7 ETM+, ~30 m, ungeoreferenced"})
    if name == "yanco":
        dates = ("20160205", "20160308")
        return PairSet(
            name="yanco", variable="LST", units="K", train=("20160205",), test=tuple(test or ("20160308",)),
            coarse={d: read_yanco(d, "modis", data) for d in dates},
            fine={d: read_yanco(d, "landsat", data) for d in dates},
            factor=YANCO_FACTOR,
            citation="Yu et al. 2023, RSE, doi:10.1016/j.rse.2023.113784 (ubESTARFM test data)",
            notes={"dates": "YYYYMMDD", "coarse": "MODIS MOD11A1 LST, 0.01 degree (10 x 10 fine pixels)",
                   "fine": "Landsat LST, 0.001 degree"})
    raise ValueError(f"Unknown pair set {name!r}; choose from {SETS}.")


# --------------------------------------------------------------------------------------------
# methods


@dataclass
class Prediction:
    """One method's fine-grid prediction of one held-out date (spread and interval for ensembles)."""

    mean: np.ndarray
    spread: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None


def baseline_predictions(pairs: PairSet) -> dict[str, dict[str, Prediction]]:
    """``{method: {test date: Prediction}}`` of bicubic and the regressions fitted on the training dates.

    For sets with a nested coarse grid also ``bicubic + texture``: bicubic plus the mean sub-coarse
    anomaly of the training fine images (:func:`~unique_xr.downscale.texture.texture_prior`), the
    texture layer with weight one and nothing learned.
    """
    train_up = [pairs.coarse_on_fine(d) for d in pairs.train]
    train_fine = [pairs.fine[d].values for d in pairs.train]
    classes = None if pairs.classes is None else pairs.classes.values
    linear = RegressionBaseline().fit(train_up, train_fine)
    out: dict[str, dict[str, Prediction]] = {"bicubic": {}, "linear": {}}
    per_class = None
    if classes is not None:
        per_class = RegressionBaseline().fit(train_up, train_fine, classes=classes)
        out["per-class"] = {}
    texture = None
    if pairs.factor:
        from unique_xr.downscale.texture import texture_prior

        texture = texture_prior([pairs.fine[d] for d in pairs.train], pairs.factor).values.astype(np.float64)
        out["bicubic + texture"] = {}
    for d in pairs.test:
        up = pairs.coarse_on_fine(d)
        out["bicubic"][d] = Prediction(up)
        if texture is not None:
            out["bicubic + texture"][d] = Prediction(up + np.nan_to_num(texture))
        out["linear"][d] = Prediction(linear.predict(up))
        if per_class is not None:
            out["per-class"][d] = Prediction(per_class.predict(up, classes=classes))
    return out


#: Diffusion variants: (scheme passed to fit, uses the set's auxiliaries, adds the texture layer).
VARIANTS = {"s1": ("s1", False, False), "s2": ("s2", True, False), "s2t": ("s2", True, True)}
LABELS = {"s1": "diffusion S1", "s2": "diffusion S2", "s2t": "diffusion S2 + texture"}


def variant_aux(pairs: PairSet, variant: str, train: Sequence[str]) -> tuple[list | None, list | None]:
    """The auxiliaries to fit with and to predict with for ``variant``, from the dates ``train`` only.

    ``s2t`` adds :func:`~unique_xr.downscale.texture.texture_prior` of the training fine images:
    leave-one-out for fitting (each pair sees the other dates' texture), the plain mean for prediction.
    """
    from unique_xr.downscale.texture import texture_prior

    _, use_aux, use_texture = VARIANTS[variant]
    if not use_aux:
        return None, None
    fit_aux, predict_aux = list(pairs.aux or []), list(pairs.aux or [])
    if use_texture:
        fine = [pairs.fine[d] for d in train]
        fit_aux.append(texture_prior(fine, pairs.factor or 1, leave_one_out=True))
        predict_aux.append(texture_prior(fine, pairs.factor or 1))
    return fit_aux, predict_aux


def diffusion_predictions(pairs: PairSet, scheme: str, *, preset: str, members: int, steps: int, seed: int,
                          model_dir: Path, device: str, reuse: bool = False, conserve: bool = False
                          ) -> tuple[dict[str, Prediction], dict[str, float]]:
    """Fit the diffusion model (a :data:`VARIANTS` key) on the training dates and predict each test date.

    With ``reuse``, a finished model already in ``model_dir`` is loaded instead (its fit time is the
    one recorded in its card). ``conserve`` shifts each member so its mean over every coarse cell
    equals the coarse value (``downscale(..., conserve=True)``).
    """
    from unique_xr.downscale import DownscaleConfig, downscale, fit, load_downscaler

    fit_aux, aux = variant_aux(pairs, scheme, pairs.train)
    config = DownscaleConfig.preset(preset)
    start = time.perf_counter()
    if reuse and (model_dir / "weights.pt").exists():
        model = load_downscaler(model_dir)
        fit_s = float(model.card["training"]["seconds_this_run"])
    else:
        model = fit(coarse=[pairs.coarse[d] for d in pairs.train], fine=[pairs.fine[d] for d in pairs.train],
                    aux=fit_aux, scheme=VARIANTS[scheme][0], config=config, out=model_dir, device=device,
                    factor=pairs.factor, resume=(model_dir / "checkpoint.pt").exists())
        fit_s = time.perf_counter() - start
    out: dict[str, Prediction] = {}
    start = time.perf_counter()
    names = ("downscaled", "downscaled_spread", "downscaled_lower", "downscaled_upper")
    for d in pairs.test:
        tag = "_conserve" if conserve else ""
        cached = model_dir / f"prediction_{d}_m{members}_s{steps}_seed{seed}{tag}_{model.token}.npz"
        if reuse and cached.exists():
            with np.load(cached) as z:
                out[d] = Prediction(*[z[v].astype(np.float64) if v in z else None for v in names])
            continue
        ds = downscale(pairs.coarse[d], model, aux=aux, factor=pairs.factor, members=members, steps=steps, seed=seed,
                       device=device, name="downscaled", conserve=conserve)
        np.savez_compressed(cached, **{v: ds[v].values for v in names if v in ds})
        out[d] = Prediction(*[ds[v].values.astype(np.float64) if v in ds else None for v in names])
    return out, {"fit_s": fit_s, "predict_s": time.perf_counter() - start}


def interval_calibration(pairs: PairSet, scheme: str, *, preset: str, members: int, steps: int, seed: int,
                         model_dir: Path, device: str, reuse: bool = False) -> dict:
    """Calibrate the ensemble interval on the last training date, with a model fitted without it.

    The scale (``model.interval`` of :func:`unique_xr.downscale.calibration.calibrate`) is then used
    with the main model, fitted on every training date: the calibration date has to be one the
    calibrating model never saw, and the main model has seen them all.
    """
    from unique_xr.downscale import DownscaleConfig, fit, load_downscaler
    from unique_xr.downscale.calibration import calibrate

    *train, held = pairs.train
    fit_aux, aux = variant_aux(pairs, scheme, train)
    start = time.perf_counter()
    if reuse and (model_dir / "weights.pt").exists():
        model = load_downscaler(model_dir)
    else:
        model = fit(coarse=[pairs.coarse[d] for d in train], fine=[pairs.fine[d] for d in train], aux=fit_aux,
                    scheme=VARIANTS[scheme][0], config=DownscaleConfig.preset(preset), out=model_dir, device=device,
                    factor=pairs.factor, resume=(model_dir / "checkpoint.pt").exists())
    fitted = time.perf_counter()
    done = model.interval or {}
    if not (reuse and (done.get("members"), done.get("steps"), done.get("seed")) == (members, steps, seed)):
        calibrate(model, [pairs.coarse[held]], [pairs.fine[held]], aux=aux, factor=pairs.factor, members=members,
                  steps=steps, seed=seed, device=device, out=model_dir)
    return {**model.interval, "calibration_date": held, "fitted_on": train,
            "fit_s": float(model.card["training"]["seconds_this_run"]) if reuse else fitted - start,
            "calibrate_s": time.perf_counter() - fitted}


def with_interval_scale(predictions: dict[str, Prediction], scale: float) -> dict[str, Prediction]:
    """The same means and spreads with the interval ``mean +- scale * spread``."""
    return {d: Prediction(p.mean, p.spread, p.mean - scale * p.spread, p.mean + scale * p.spread)
            for d, p in predictions.items()}


# --------------------------------------------------------------------------------------------
# scores


def score_predictions(pairs: PairSet, predictions: dict[str, dict[str, Prediction]]) -> dict[str, dict]:
    """``{test date: {"n": pixels, "methods": {method: scores}}}`` on the pixels every method covers."""
    result: dict[str, dict] = {}
    for d in pairs.test:
        truth = pairs.fine[d].values.astype(np.float64)
        common = np.isfinite(truth)
        for by_date in predictions.values():
            common &= np.isfinite(by_date[d].mean)
        truth = np.where(common, truth, np.nan)
        methods = {}
        for method, by_date in predictions.items():
            p = by_date[d]
            scores = score_table(p.mean, truth)
            if p.lower is not None and p.upper is not None:
                scores["coverage90"] = interval_coverage(p.lower, p.upper, truth)
            if p.spread is not None:
                scores["mean_spread"] = float(np.nanmean(np.where(common, p.spread, np.nan)))
            methods[method] = scores
        ref = methods["bicubic"]["rmse"]
        for scores in methods.values():
            scores["rmse_vs_bicubic"] = scores["rmse"] / ref - 1.0
        result[d] = {"n": int(common.sum()), "methods": methods}
    return result


def coarse_input_diagnostics(pairs: PairSet, *, sigmas: Sequence[float] = (0.5, 1.0, 2.0),
                             max_shift: int | None = None) -> dict[str, dict]:
    """How much of bicubic's error on each held-out date is already in the coarse image.

    For sets whose coarse image is on its own nested grid, on the clear fine pixels of blocks that
    are at least half clear (away from the edges by ``max_shift``):

    - ``coarse_vs_block_mean``: RMSE, bias and r of the coarse image against the block means of
      the fine truth (blocks at least half clear): how well the coarse image knows the date at
      its own scale;
    - ``perfect_coarse``: RMSE of bicubic on those *true* block means, the error left if the
      coarse image were perfect and no sub-pixel detail were added, and its change against
      bicubic on the real coarse image (not a bound: a model that predicts sub-pixel detail can
      go below it);
    - ``smoothed``: bicubic on the coarse image smoothed by a Gaussian of ``sigma`` coarse pixels
      (noise in the coarse image that a filter could remove);
    - ``best_shift``: the whole-fine-pixel shift of the bicubic field (up to ``max_shift``, default
      the factor) with the lowest RMSE (a misregistration a model could learn);
    - ``own_bias_removed``: bicubic minus the date's own mean error (what a perfect offset would gain);
    - ``sub_coarse_explained``: the share of the variance of the date's sub-coarse anomaly (truth
      minus ``perfect_coarse``) that the land-cover classes explain, each class given its own mean
      anomaly fitted on this very date (an upper bound for a class map), and that the texture of the
      training dates explains (squared correlation, nothing fitted).

    Every change is relative to the bicubic RMSE on the same pixels. Empty for sets without a factor.
    """
    from scipy import ndimage

    from unique_xr.downscale.texture import texture_prior

    k = pairs.factor
    if not k:
        return {}
    out: dict[str, dict] = {}
    shift = max_shift if max_shift is not None else k
    for d in pairs.test:
        coarse = pairs.coarse[d].values.astype(np.float64)
        truth = pairs.fine[d].values.astype(np.float64)
        shape = truth.shape
        clear = np.isfinite(truth)
        share = block_mean(clear.astype(np.float64), k)
        means = np.where(share >= 0.5, block_mean(truth, k), np.nan)
        base = bicubic(coarse, k, shape=shape)
        perfect = bicubic(means, k, shape=shape)
        rows, cols = slice(shift, shape[0] - shift), slice(shift, shape[1] - shift)
        ok = clear & np.isfinite(base) & np.isfinite(perfect)
        ok[:shift], ok[shape[0] - shift:], ok[:, :shift], ok[:, shape[1] - shift:] = False, False, False, False

        def rmse(field: np.ndarray, ok=ok, truth=truth) -> float:
            return float(np.sqrt(np.mean((field[ok] - truth[ok]) ** 2)))

        ref = rmse(base)
        at_coarse = np.isfinite(means) & np.isfinite(coarse[: means.shape[0], : means.shape[1]])
        c, m = coarse[: means.shape[0], : means.shape[1]][at_coarse], means[at_coarse]
        smoothed = {str(s): rmse(bicubic(ndimage.gaussian_filter(np.where(np.isfinite(coarse), coarse,
                                                                          np.nanmean(coarse)), s, mode="nearest"),
                                         k, shape=shape)) / ref - 1.0 for s in sigmas}
        shifts = []
        for dy in range(-shift, shift + 1):
            for dx in range(-shift, shift + 1):
                moved = np.full(shape, np.nan)
                moved[rows, cols] = base[rows.start - dy: rows.stop - dy, cols.start - dx: cols.stop - dx]
                shifts.append((rmse(moved), dy, dx))
        best = min(shifts)
        bias = float(np.mean(base[ok] - truth[ok]))
        anomaly = (truth - perfect)[ok]
        explained = {}
        if pairs.classes is not None:
            classes = pairs.classes.values[ok]
            fitted = np.zeros_like(anomaly)
            for cls in np.unique(classes):
                fitted[classes == cls] = anomaly[classes == cls].mean()
            explained["classes"] = float(1.0 - np.var(anomaly - fitted) / np.var(anomaly))
        texture = texture_prior([pairs.fine[t] for t in pairs.train], k).values[ok]
        known = np.isfinite(texture)
        explained["texture"] = float(np.corrcoef(texture[known], anomaly[known])[0, 1] ** 2)
        out[d] = {
            "n": int(ok.sum()), "bicubic_rmse": ref,
            "coarse_vs_block_mean": {"n_blocks": int(at_coarse.sum()), "rmse": float(np.sqrt(np.mean((c - m) ** 2))),
                                     "bias": float(np.mean(c - m)), "r": float(np.corrcoef(c, m)[0, 1])},
            "perfect_coarse": {"rmse": rmse(perfect), "vs_bicubic": rmse(perfect) / ref - 1.0},
            "smoothed": smoothed,
            "best_shift": {"dy": best[1], "dx": best[2], "vs_bicubic": best[0] / ref - 1.0},
            "own_bias_removed": {"bias": bias, "vs_bicubic": rmse(base - bias) / ref - 1.0},
            "sub_coarse_explained": explained,
        }
    return out


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def diagnostics_table(record: dict) -> str:
    """Markdown rows of :func:`coarse_input_diagnostics` for every set that has them."""
    head = ("| set | held-out date | coarse vs true block means: RMSE / bias / r | bicubic RMSE | perfect coarse "
            "input | best Gaussian smoothing | best shift (px) | own bias removed | sub-coarse variance explained by "
            "classes / texture |\n"
            "|:---|:---|:---|---:|---:|---:|---:|---:|---:|")
    rows = []
    for name, entry in record["sets"].items():
        for d, g in (entry.get("coarse_input") or {}).items():
            cb, sm = g["coarse_vs_block_mean"], g["smoothed"]
            sigma = min(sm, key=sm.get)
            rows.append(
                f"| {name} | {d} | {cb['rmse']:.4f} / {cb['bias']:+.4f} / {cb['r']:.2f} | {g['bicubic_rmse']:.4f} | "
                f"{g['perfect_coarse']['rmse']:.4f} ({g['perfect_coarse']['vs_bicubic']:+.1%}) | "
                f"{sm[sigma]:+.1%} (sigma {sigma}) | {g['best_shift']['vs_bicubic']:+.1%} "
                f"({g['best_shift']['dy']}, {g['best_shift']['dx']}) | {g['own_bias_removed']['vs_bicubic']:+.1%} | "
                f"{_share(g['sub_coarse_explained'].get('classes'))} / {_share(g['sub_coarse_explained']['texture'])} |")
    return "\n".join([head, *rows]) if rows else ""


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return format(value, spec)


def markdown_table(record: dict) -> str:
    """One pipe table of every set, held-out date and method."""
    lines = ["| set | held-out date | method | n | RMSE | bias | r | SSIM | RMSE vs bicubic | 90 % coverage |",
             "|:---|:---|:---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, result in record["sets"].items():
        for d, by_date in result["scores"].items():
            for method, s in by_date["methods"].items():
                lines.append(
                    f"| {name} | {d} | {method} | {s['n']} | {_fmt(s['rmse'], '.4f')} | {_fmt(s['bias'], '+.4f')} | "
                    f"{_fmt(s['r'], '.3f')} | {_fmt(s['ssim'], '.3f')} | {_fmt(s['rmse_vs_bicubic'], '+.1%')} | "
                    f"{_fmt(s.get('coverage90'), '.1%')} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# figures


def draw_maps(pairs: PairSet, predictions: dict[str, dict[str, Prediction]], date: str, path: Path) -> Path:
    """Coarse, truth, best prediction, its error and its ensemble spread for one held-out date."""
    from unique_xr._optional import import_optional

    import_optional("matplotlib", purpose="the downscaling maps")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = ["diffusion S2 + texture", "diffusion S2", "diffusion S1", "per-class", "linear", "bicubic"]
    method = next(m for o in order for m in predictions if m == o or m.startswith(o + ", conserved"))
    pred = predictions[method][date]
    truth = pairs.fine[date].values
    coarse = pairs.coarse[date]
    lo, hi = np.nanpercentile(truth, [2, 98])
    error = pred.mean - truth
    emax = float(np.nanpercentile(np.abs(error), 98)) or 1.0
    fig, axes = plt.subplots(1, 5, figsize=(16, 3.6), constrained_layout=True)
    fine_extent = _extent(pairs.fine[date])
    panels = [
        (coarse.values, _extent(coarse), f"coarse ({pairs.notes.get('coarse', '').split(',')[0]})", "viridis", lo, hi),
        (truth, fine_extent, "fine truth (NaN: cloud/fill)", "viridis", lo, hi),
        (pred.mean, fine_extent, f"{method} (ensemble mean)" if pred.spread is not None else method, "viridis", lo, hi),
        (error, fine_extent, f"{method} - truth", "RdBu_r", -emax, emax),
    ]
    for ax, (values, extent, title, cmap, vmin, vmax) in zip(axes, panels):
        im = ax.imshow(values, extent=extent, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8)
    ax = axes[4]
    if pred.spread is not None:
        im = ax.imshow(pred.spread, extent=fine_extent, cmap="magma", interpolation="nearest",
                       vmin=0, vmax=float(np.nanpercentile(pred.spread, 98)) or 1.0)
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title("ensemble spread (std)", fontsize=9)
    else:
        ax.text(0.5, 0.5, "no ensemble", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"{pairs.name}: {pairs.variable} ({pairs.units}), held-out date {date}", fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _extent(da: xr.DataArray) -> tuple[float, float, float, float]:
    res = float(da.attrs.get("resolution", 1.0))
    x, y = da["x"].values, da["y"].values
    return (x[0] - res / 2, x[-1] + res / 2, y[-1] - res / 2, y[0] + res / 2)


# --------------------------------------------------------------------------------------------
# main


def export_geotiffs(pairs: PairSet, out: Path) -> list[Path]:
    """Write a set's images as single-band GeoTIFFs (for ``unique-xr downscale fit/predict``).

    ``coarse_<date>.tif`` on the coarse grid, ``fine_<date>.tif`` and ``aux<i>.tif`` on the fine grid,
    float32 with NaN for missing (the class map stays uint8); the local grids keep their transform.
    """
    import rasterio
    from affine import Affine

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def write(da: xr.DataArray, path: Path) -> None:
        res = float(da.attrs["resolution"])
        x0 = float(da["x"][0]) - res / 2
        y0 = float(da["y"][0]) + res / 2
        values = np.asarray(da.values)
        dtype = "uint8" if values.dtype == np.uint8 else "float32"
        profile = {"driver": "GTiff", "height": values.shape[0], "width": values.shape[1], "count": 1,
                   "dtype": dtype, "transform": Affine(res, 0, x0, 0, -res, y0), "compress": "deflate",
                   "nodata": None if dtype == "uint8" else float("nan")}
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(values.astype(dtype), 1)
        written.append(path)

    for d in (*pairs.train, *pairs.test):
        write(pairs.coarse[d], out / f"coarse_{d}.tif")
        write(pairs.fine[d], out / f"fine_{d}.tif")
    for i, a in enumerate(pairs.aux or []):
        write(a, out / f"aux{i}_{a.name}.tif")
    return written


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared 'pairs' folder")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS), help="pair sets to run (default all)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: the 'quick' model preset on a 64 x 64 px corner, first held-out date, 4 members, 4 steps")
    parser.add_argument("--preset", default=None, help="model preset (default 'cpu'; 'quick' with --quick)")
    parser.add_argument("--members", type=int, default=None, help="ensemble members (default 16; 4 with --quick)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default 25; 4 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--schemes", nargs="+", choices=tuple(VARIANTS), default=("s1", "s2"),
                        help="diffusion schemes to run (s2 only where the set has auxiliaries; s2t = s2 plus the "
                             "texture of the training fine images, sets with a nested coarse grid)")
    parser.add_argument("--test", nargs="+", default=None, help="held-out dates (default: the set's own list)")
    parser.add_argument("--reuse-models", action="store_true",
                        help="load a finished model (and its saved predictions) from --models instead of redoing them")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-diffusion", action="store_true", help="score the baselines only")
    parser.add_argument("--conserve", action="store_true",
                        help="mass-conserving diffusion predictions: every member's mean over each coarse cell equals "
                             "the coarse value (sets with a nested coarse grid; adds ', conserved' to the labels)")
    parser.add_argument("--calibrate", action="store_true",
                        help="also calibrate the ensemble interval on the last training date (a second fit per "
                             "scheme without that date); adds 'calibrated interval' rows")
    parser.add_argument("--out-json", type=Path, default=REPO / "benchmarks" / "results" / "downscale_pairs.json")
    parser.add_argument("--figures", type=Path, default=REPO / "docs" / "figures",
                        help="folder of the downscale_<set>.png maps")
    parser.add_argument("--models", type=Path, default=REPO / "build" / "downscale_pairs",
                        help="folder the fitted models are saved under")
    parser.add_argument("--export-geotiffs", type=Path, default=None, metavar="DIR",
                        help="only write each set's images as single-band GeoTIFFs under DIR/<set>/ and stop")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other sets already in --out-json (each set records its own configuration)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    preset = args.preset or ("quick" if args.quick else "cpu")
    members = args.members or (4 if args.quick else 16)
    steps = args.steps or (4 if args.quick else 25)
    record: dict = {
        "script": "examples/downscale_pairs.py",
        "machine": {"python": platform.python_version(), "processor": platform.machine(), "cpus": _cpus()},
        "sets": {},
    }
    if args.merge and args.out_json.exists():
        record["sets"] = {k: v for k, v in json.loads(args.out_json.read_text())["sets"].items() if k not in args.sets}
    if args.export_geotiffs:
        for name in args.sets:
            paths = export_geotiffs(load_pairs(name, args.data, test=args.test), args.export_geotiffs / name)
            print(f"{name}: {len(paths)} GeoTIFFs in {args.export_geotiffs / name}")
        return record
    for name in args.sets:
        started = time.perf_counter()
        pairs = load_pairs(name, args.data, test=args.test)
        if args.quick:  # a 64 x 64 px corner (80 x 80 for a factor of 10) and the first held-out date
            step = math.lcm(pairs.factor or 1, 16)
            pairs = dataclasses.replace(pairs.crop(step * math.ceil(64 / step)), test=pairs.test[:1])
        print(f"{name}: train {', '.join(pairs.train)} -> test {', '.join(pairs.test)}", flush=True)
        predictions = baseline_predictions(pairs)
        timings: dict[str, dict[str, float]] = {}
        calibrations: dict[str, dict] = {}
        if not args.no_diffusion:
            for scheme in [s for s in args.schemes if (pairs.aux or s == "s1") and (pairs.factor or s != "s2t")]:
                label = LABELS[scheme] + (", conserved" if args.conserve else "")
                print(f"  {label} ({preset}) ...", flush=True)
                predictions[label], timings[label] = diffusion_predictions(
                    pairs, scheme, preset=preset, members=members, steps=steps, seed=args.seed,
                    model_dir=args.models / f"{name}_{scheme}", device=args.device, reuse=args.reuse_models,
                    conserve=args.conserve)
                print(f"    fit {timings[label]['fit_s']:.0f} s, predict {timings[label]['predict_s']:.0f} s", flush=True)
                if args.calibrate and len(pairs.train) > 1:
                    info = interval_calibration(
                        pairs, scheme, preset=preset, members=members, steps=steps, seed=args.seed,
                        model_dir=args.models / f"{name}_{scheme}_calib", device=args.device, reuse=args.reuse_models)
                    calibrations[label] = info
                    predictions[f"{label}, calibrated interval"] = with_interval_scale(predictions[label], info["scale"])
                    print(f"    interval scale {info['scale']:.3f} from {info['calibration_date']} (uncalibrated "
                          f"coverage there {info['coverage_uncalibrated']:.1%})", flush=True)
        scores = score_predictions(pairs, predictions)
        diagnostics = coarse_input_diagnostics(pairs)
        figure = draw_maps(pairs, predictions, pairs.test[0], args.figures / f"downscale_{name}.png")
        record["sets"][name] = {
            "variable": pairs.variable, "units": pairs.units, "train": list(pairs.train), "test": list(pairs.test),
            "factor": pairs.factor, "shape": list(pairs.fine[pairs.test[0]].shape), "citation": pairs.citation,
            "notes": pairs.notes, "timings": timings, "figure": str(figure), "scores": scores,
            "diffusion": None if args.no_diffusion else {"preset": preset, "members": members, "steps": steps,
                                                          "seed": args.seed, "device": args.device,
                                                          "conserve": args.conserve},
            "calibrations": calibrations, "coarse_input": diagnostics,
            "wall_s": time.perf_counter() - started,
        }
        record["sets"] = dict(sorted(record["sets"].items(), key=lambda kv: SETS.index(kv[0])))
    table = markdown_table(record)
    print(table)
    record["table"] = table
    record["coarse_input_table"] = diagnostics_table(record)
    print(record["coarse_input_table"])
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps(record, indent=1, default=_json_default) + "\n")
    print(f"wrote {args.out_json}")
    return record


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value)} to JSON")


if __name__ == "__main__":
    main()
