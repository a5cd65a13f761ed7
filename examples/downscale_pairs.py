"""Downscaling scored on real coarse/fine image pairs, leave one date out, against fusion and regression baselines.

This script makes the evaluation tables and maps of ``docs/downscale.md`` from one real run. For
each pair set in ``../shared/data/pairs`` with two or more fine dates, every fine date is held out
in turn (**leave one date out**): the regressions, the texture layer and the diffusion models are
fitted on all the *other* dates (the held-in dates, earlier and later ones), and the held-out date
is predicted from its own coarse image and, for the fusion methods, a prior. The **prior** of a
held-out date is, per pixel, the latest clear fine value among the held-in dates *earlier* than it
(:func:`unique_xr.downscale.prior.prior_fields`), with the observed coarse image of that date on the
fine grid. A date without an earlier held-in date has no prior: naive fusion and STARFM then equal
bicubic and S3 predicts without a prior (marked ``†`` in the tables).

Methods, all scored on the same pixels of a held-out date (clear truth, every method finite):

- ``bicubic``: the coarse field interpolated to the fine grid (for sets whose coarse image was
  already resampled onto the fine grid by its producers, that image itself);
- ``linear``: one regression ``fine ~ a + b * bicubic`` fitted across the held-in dates;
- ``per-class``: the same with one ``(a, b)`` per land-cover class (sets with a class map);
- ``bicubic + texture`` (sets with a nested coarse grid): bicubic plus the mean sub-coarse anomaly
  of the held-in fine images (:func:`unique_xr.downscale.texture.texture_prior`), nothing learned;
- ``naive fusion``: prior fine + (coarse today - coarse of the prior's day), both coarse fields
  bicubic on the fine grid (:func:`unique_xr.downscale.fusion.naive_fusion`);
- ``STARFM`` (Gao et al. 2006, :func:`unique_xr.downscale.fusion.starfm`): its default window of
  51 px, 4 classes, and the uncertainties of :attr:`PairSet.starfm_uncertainty` (0.005 for NDVI,
  the reference code's default for reflectance; 1 K for the Yanco LST, about the stated accuracy
  of Landsat and MOD11A1 LST);
- ``diffusion S1`` (coarse only), ``diffusion S2`` (and the set's land-cover map: ``ndvi``, ``lgc``),
  ``diffusion S2 + texture`` (``--schemes s2t``), ``diffusion S3`` (fusion: coarse, the set's
  land-cover map where it has one, the prior with its age and the coarse field of its day, and the
  day of year), each the mean of ``--members`` DDIM samples of ``--steps`` steps.

Scores (:mod:`unique_xr.downscale.metrics`): RMSE, bias, Pearson r, SSIM, the mean absolute error,
and for the ensembles the share of truth pixels inside the 90 % interval (no calibration step is
run: the interval is the model's Student-t rule) and the CRPS of the Gaussian with the ensemble's
mean and spread (:func:`~unique_xr.downscale.metrics.crps_gaussian`). Each held-out date has a
calendar date and a meteorological season named for its hemisphere (DJF is winter in the north,
summer in the south); the per-season table averages the change in RMSE against bicubic over the
held-out dates of each season. ``--distill-dates`` adds, for those folds of ``ndvi``, the S3 model
distilled to 1, 2 and 4 network evaluations (:func:`unique_xr.downscale.distill`) against 20-step
DDIM with the same members and seed.

The numbers go to ``benchmarks/results/downscale_pairs.json`` (keys ``sets``, ``table``,
``season_table``, ``distillation``, ``distillation_table``, ``goals``), rewritten after every
held-out date so that a stopped run leaves what it finished, and a markdown table on stdout;
one map per set (coarse, truth, bicubic, STARFM, S3, its error and spread) to
``docs/figures/downscale_<set>.png``. Fitted models are kept per (set, scheme, held-out date)
under ``--models``; ``--reuse-models`` loads them (and their saved predictions), so a killed run
continues where it stopped.

The pair sets (attributions in each folder's SOURCE.txt):

``ndvi``
    IFSDAF example data (Liu et al. 2019): Landsat-8 NDVI at 30 m (552 x 576 px, CFmask clear
    pixels only), MODIS 16-day NDVI at 240 m (exact 8 x 8 blocks of the Landsat grid) and a
    4-class land-cover map. DOY 104, 191, 200, 216, 239, 344, 360 of 2015; China, ~30 N.
``cia``
    Coleambally Irrigation Area (Emelyanova et al. 2013), Landsat-7 / MODIS NDVI at 50 m with
    MODIS already resampled onto the Landsat grid. DOY 281, 290, 306 of 2001; NSW, Australia.
``boreas``
    ESTARFM test data (Zhu et al. 2010), Landsat-7 / MODIS NDVI, 400 x 400 px, MODIS already
    resampled, no georeference. 2001-05-24, 07-11, 08-12; Saskatchewan, Canada.
``yanco``
    Landsat / MODIS land-surface temperature at Yanco (Yu et al. 2023), 0.001 degree grid; the
    MODIS pixels are exact 10 x 10 blocks. Fine dates 2016-02-05 and 2016-03-08; NSW, Australia.
``lgc``
    Lower Gwydir Catchment (FSDAF test data, Zhu et al. 2016; Emelyanova et al. 2013): real
    Landsat-5 TM NDVI at 30 m (480 x 480 px) before and after the December 2004 flood, 2004-11-26
    and 2004-12-28, and a 4-class map. The coarse images are **synthetic**: exact 16 x 16 block
    means of the Landsat reflectance (480 m), their NDVI computed from the block-mean red and NIR.

Run it from anywhere::

    python examples/downscale_pairs.py --sets ndvi cia boreas yanco lgc --schemes s3 s1 s2 \\
        --baseline-schemes-dates ndvi:239 ndvi:344 cia:306 lgc:20041228 --distill-dates 239 344
    python examples/downscale_pairs.py --sets ndvi --test 239 --no-diffusion   # baselines only
    python examples/downscale_pairs.py --quick                                  # a smoke run of seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from unique_xr.downscale.baselines import RegressionBaseline, bicubic, block_mean
from unique_xr.downscale.metrics import crps_gaussian, interval_coverage, score_table

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "pairs"

NDVI_DIR = "ifsdaf_landsat8_ndvi_modis_ndvi_landcover"
CIA_DIR = "cia_coleambally_landsat_modis"
BOREAS_DIR = "boreas_etm_modis"
YANCO_DIR = "yanco_landsat_modis_lst"
LGC_DIR = "lgc_gwydir_landsat_SYNTHETIC_COARSE"

#: Landsat-8 scenes of the NDVI set (DOY of 2015 -> scene id; two WRS-2 paths, 125 and 126).
NDVI_SCENES = {104: "LC81250382015104LGN00", 191: "LC81260382015191LGN00", 200: "LC81250382015200LGN00",
               216: "LC81250382015216LGN00", 239: "LC81260382015239LGN00", 344: "LC81250382015344LGN00",
               360: "LC81250382015360LGN00"}
NDVI_YEAR = 2015
NDVI_FACTOR = 8
NDVI_CLASSES = (1, 2, 3, 4)
#: CFmask codes: 0 clear, 1 water, 2 cloud shadow, 3 snow, 4 cloud, 255 fill.
CFMASK_CLEAR = 0
CIA_DOYS = {281: "2001-10-08", 290: "2001-10-17", 306: "2001-11-02"}
CIA_BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")
BOREAS_DATES = ("0524", "0711", "0812")
BOREAS_BANDS = ("green", "red", "nir")
YANCO_DATES = ("20160205", "20160308")  # the fine dates; 20160218 has a MODIS image only
YANCO_FACTOR = 10
LGC_DATES = ("20041126", "20041228")
#: Band order of the FSDAF test data (the readme and SOURCE.txt: band 3 ~ NIR). Checked on the files:
#: bands 1 and 2 correlate at 0.95 (two visible bands), band 3 is the brightest and nearly
#: uncorrelated with them (NIR), and band 1 < band 2 on the dry soils (green < red).
LGC_BANDS = ("green", "red", "nir")
LGC_FACTOR = 16

SETS = ("ndvi", "cia", "boreas", "yanco", "lgc")
DPI = 80

#: Meteorological seasons by month and their names in each hemisphere.
SEASON_MONTHS = {12: "DJF", 1: "DJF", 2: "DJF", 3: "MAM", 4: "MAM", 5: "MAM", 6: "JJA", 7: "JJA", 8: "JJA",
                 9: "SON", 10: "SON", 11: "SON"}
SEASON_NAMES = {"N": {"DJF": "winter", "MAM": "spring", "JJA": "summer", "SON": "autumn"},
                "S": {"DJF": "summer", "MAM": "autumn", "JJA": "winter", "SON": "spring"}}
SEASON_ORDER = ("winter", "spring", "summer", "autumn")
#: Marks a held-out date without an earlier held-in date (no prior) in the tables.
NO_PRIOR = "†"


def season_of(date: str, hemisphere: str) -> tuple[str, str]:
    """``(name, months)`` of the meteorological season of an ISO ``date`` in hemisphere ``"N"`` or ``"S"``.

    >>> season_of("2015-08-27", "N"), season_of("2015-12-10", "N"), season_of("2004-12-28", "S")
    (('summer', 'JJA'), ('winter', 'DJF'), ('summer', 'DJF'))
    """
    if hemisphere not in SEASON_NAMES:
        raise ValueError(f"hemisphere must be 'N' or 'S'; got {hemisphere!r}.")
    months = SEASON_MONTHS[int(str(np.datetime64(date, "D"))[5:7])]
    return SEASON_NAMES[hemisphere][months], months


def doy_date(year: int, doy: int) -> str:
    """ISO date of day-of-year ``doy`` of ``year``.

    >>> doy_date(2015, 239), doy_date(2001, 306)
    ('2015-08-27', '2001-11-02')
    """
    return str(np.datetime64(f"{year}-01-01") + np.timedelta64(doy - 1, "D"))


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


def read_lgc(date: str, sensor: str, variable: str = "ndvi", data: Path = DEFAULT_DATA) -> xr.DataArray:
    """One Lower Gwydir image (``sensor`` ``"landsat"`` or ``"modis"``) on a local 30 m grid.

    ``sensor="landsat"``: Landsat-5 TM, 480 x 480. ``sensor="modis"``: the **synthetic** coarse image
    of the FSDAF test data, the exact 16 x 16 block means of the Landsat reflectance (not MODIS),
    collapsed onto its own 30 x 30 grid of 480 m (checked to be constant over each block). NDVI
    comes from the red and NIR bands (:data:`LGC_BANDS`); ``variable`` may also name a band (0-1).
    The files carry no georeference: coordinates are metres from the top-left corner.
    """
    if date not in LGC_DATES or sensor not in ("landsat", "modis"):
        raise ValueError(f"LGC has dates {LGC_DATES} and sensors 'landsat', 'modis'; got {date!r}, {sensor!r}.")
    from affine import Affine

    values, _, _ = read_raster(Path(data) / LGC_DIR / f"{'Landsat' if sensor == 'landsat' else 'MODIS'}{date}")
    values = values * np.float32(1e-4)
    out = _ndvi_from_bands(values, LGC_BANDS) if variable == "ndvi" else values[LGC_BANDS.index(variable)]
    transform = Affine(30.0, 0, 0, 0, -30.0, 0)
    attrs = {"sensor": "Landsat-5 TM" if sensor == "landsat" else "synthetic: 16 x 16 block means of Landsat",
             "date": f"{date[:4]}-{date[4:6]}-{date[6:]}"}
    if sensor == "modis":
        ny, nx = out.shape
        blocks = out.reshape(ny // LGC_FACTOR, LGC_FACTOR, nx // LGC_FACTOR, LGC_FACTOR)
        spread = np.nanmax(blocks, axis=(1, 3)) - np.nanmin(blocks, axis=(1, 3))
        if np.nanmax(spread) > 1e-6:
            raise ValueError(f"{date}: the LGC coarse image is not constant over 16 x 16 blocks "
                             f"(max spread {np.nanmax(spread)}).")
        out = block_mean(out, LGC_FACTOR).astype(np.float32)
        transform = transform * transform.scale(LGC_FACTOR)
        attrs["factor"] = LGC_FACTOR
    return _dataarray(out, transform, name=variable, units="1", crs=None,
                      long_name=f"LGC {'Landsat' if sensor == 'landsat' else 'synthetic coarse'} {variable}", **attrs)


def read_lgc_classes(data: Path = DEFAULT_DATA) -> xr.DataArray:
    """The 4-class SVM map of the LGC set (uint8, classes 1-4, 30 m, from the 2004-11-26 Landsat image)."""
    from affine import Affine

    values, _, _ = read_raster(Path(data) / LGC_DIR / "Landsat20041126_SVM_classification")
    da = _dataarray(values[0].astype(np.uint8), Affine(30.0, 0, 0, 0, -30.0, 0), name="landcover", units="1",
                    long_name="land-cover class (SVM, FSDAF test data)", crs=None)
    da.attrs["flag_values"] = [1, 2, 3, 4]
    return da


@dataclass(frozen=True, kw_only=True)
class PairSet:
    """One area's dated coarse/fine pairs.

    ``dates`` are the keys of the fine dates in time order and ``calendar`` their ISO dates;
    ``test`` the dates held out in turn (:func:`load_pairs` sets all by default). ``factor`` is the number of fine pixels per
    coarse pixel side when the coarse images are on their own (nested) grid, None when they were
    already resampled onto the fine grid. ``classes`` is a fine-grid class map for the per-class
    regression; ``aux`` the fine-grid auxiliaries of schemes S2 and S3 (None: S1 and S3 without
    auxiliaries). ``starfm_uncertainty`` is STARFM's (fine, coarse) uncertainty in the variable's
    units. ``figure_date`` is the held-out date drawn in the map.
    """

    name: str
    variable: str
    units: str
    dates: tuple[str, ...]
    calendar: dict[str, str]
    hemisphere: str
    test: tuple[str, ...] = ()
    coarse: dict[str, xr.DataArray]
    fine: dict[str, xr.DataArray]
    factor: int | None = None
    classes: xr.DataArray | None = None
    aux: list[xr.DataArray] | None = None
    figure_date: str = ""
    starfm_uncertainty: tuple[float, float] = (0.005, 0.005)
    citation: str = ""
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        days = [self.day(d) for d in self.dates]
        if days != sorted(days) or len(set(days)) != len(days):
            raise ValueError(f"{self.name}: dates must be distinct and in time order; got {self.dates}.")
        if set(self.test) - set(self.dates):
            raise ValueError(f"{self.name}: held-out dates {sorted(set(self.test) - set(self.dates))} are not among "
                             f"its fine dates {self.dates}.")

    def day(self, date: str) -> float:
        """Days since 1970-01-01 of ``date`` (a key of :attr:`dates`)."""
        return float(np.datetime64(self.calendar[date], "D").astype(np.int64))

    def season(self, date: str) -> tuple[str, str]:
        """``(name, months)`` of the meteorological season of ``date`` in the set's hemisphere."""
        return season_of(self.calendar[date], self.hemisphere)

    def held_in(self, held_out: str) -> tuple[str, ...]:
        """Every date but ``held_out``: what a fold fits on."""
        return tuple(d for d in self.dates if d != held_out)

    def earlier(self, held_out: str) -> tuple[str, ...]:
        """The held-in dates before ``held_out``: where its prior comes from."""
        return tuple(d for d in self.held_in(held_out) if self.day(d) < self.day(held_out))

    def coarse_on_fine(self, date: str) -> np.ndarray:
        """The coarse image of ``date`` on the fine grid: bicubic when on its own grid, else as given."""
        coarse, fine = self.coarse[date], self.fine[date]
        if self.factor is None:
            return coarse.values.astype(np.float64)
        return bicubic(coarse.values, self.factor, shape=fine.shape)

    def coarse_for_model(self, date: str) -> np.ndarray:
        """The coarse image of ``date`` on the fine grid as the diffusion model upsamples it (bilinear)."""
        from unique_xr.downscale.api import coarse_on_fine

        return coarse_on_fine(self.coarse[date].values, self.factor or 1).astype(np.float64)

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
    """The pair set ``name`` (one of :data:`SETS`) read from ``data``; ``test``: held-out dates (default all)."""
    data = Path(data)
    if name == "ndvi":
        dates = tuple(str(d) for d in NDVI_SCENES)
        landcover = read_landcover(data)
        pairs = PairSet(
            name="ndvi", variable="NDVI", units="1", dates=dates, hemisphere="N",
            calendar={d: doy_date(NDVI_YEAR, int(d)) for d in dates},
            coarse={d: read_ndvi_modis(int(d), data) for d in dates},
            fine={d: read_ndvi_landsat(int(d), data) for d in dates},
            factor=NDVI_FACTOR, classes=landcover, aux=[landcover], figure_date="239",
            citation="Liu et al. 2019, RSE 227:74-89 (IFSDAF example data)",
            notes={"dates": "day of year 2015", "place": "China, ~30 N (WRS-2 p125/126 r038)",
                   "coarse": "MODIS 16-day NDVI, 240 m (8 x 8 Landsat pixels)",
                   "fine": "Landsat-8 NDVI, 30 m, CFmask clear only"})
    elif name == "cia":
        dates = tuple(str(d) for d in CIA_DOYS)
        pairs = PairSet(
            name="cia", variable="NDVI", units="1", dates=dates, hemisphere="S",
            calendar={str(d): iso for d, iso in CIA_DOYS.items()},
            coarse={str(d): read_cia(d, "modis", data=data) for d in CIA_DOYS},
            fine={str(d): read_cia(d, "landsat", data=data) for d in CIA_DOYS}, figure_date="306",
            citation="Emelyanova et al. 2013, RSE 133:193-209 (CIA)",
            notes={"dates": "day of year 2001", "place": "Coleambally, NSW, Australia, ~34.8 S",
                   "coarse": "MODIS MOD09GA resampled to the 50 m grid by the producers",
                   "fine": "Landsat-7 ETM+ at 50 m (ENVI pyramid level of the 25 m CIA images)"})
    elif name == "boreas":
        pairs = PairSet(
            name="boreas", variable="NDVI", units="1", dates=BOREAS_DATES, hemisphere="N",
            calendar={d: f"2001-{d[:2]}-{d[2:]}" for d in BOREAS_DATES},
            coarse={d: read_boreas(d, "modis", data=data) for d in BOREAS_DATES},
            fine={d: read_boreas(d, "tm", data=data) for d in BOREAS_DATES}, figure_date="0812",
            citation="Zhu et al. 2010, RSE 114:2610-2623 (ESTARFM test data)",
            notes={"dates": "MMDD of 2001", "place": "BOREAS southern study area, Saskatchewan, Canada (from the papers)",
                   "coarse": "MODIS resampled to the ~30 m grid by the producers",
                   "fine": "Landsat-7 ETM+, ~30 m, ungeoreferenced"})
    elif name == "yanco":
        pairs = PairSet(
            name="yanco", variable="LST", units="K", dates=YANCO_DATES, hemisphere="S",
            calendar={d: f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in YANCO_DATES},
            coarse={d: read_yanco(d, "modis", data) for d in YANCO_DATES},
            fine={d: read_yanco(d, "landsat", data) for d in YANCO_DATES},
            factor=YANCO_FACTOR, figure_date="20160308", starfm_uncertainty=(1.0, 1.0),
            citation="Yu et al. 2023, RSE, doi:10.1016/j.rse.2023.113784 (ubESTARFM test data)",
            notes={"dates": "YYYYMMDD", "place": "Yanco OzFlux site, NSW, Australia, ~34.9 S",
                   "coarse": "MODIS MOD11A1 LST, 0.01 degree (10 x 10 fine pixels)",
                   "fine": "Landsat LST, 0.001 degree",
                   "starfm": "uncertainties 1 K (fine and coarse), about the stated LST accuracy, "
                             "instead of the 0.005 reflectance default"})
    elif name == "lgc":
        classes = read_lgc_classes(data)
        pairs = PairSet(
            name="lgc", variable="NDVI", units="1", dates=LGC_DATES, hemisphere="S",
            calendar={d: f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in LGC_DATES},
            coarse={d: read_lgc(d, "modis", data=data) for d in LGC_DATES},
            fine={d: read_lgc(d, "landsat", data=data) for d in LGC_DATES},
            factor=LGC_FACTOR, classes=classes, aux=[classes], figure_date="20041228",
            citation="Zhu et al. 2016, RSE 172:165-177 (FSDAF test data); Emelyanova et al. 2013 (LGC)",
            notes={"dates": "YYYYMMDD", "place": "Lower Gwydir Catchment, NSW, Australia, ~29.5 S",
                   "coarse": "SYNTHETIC: exact 16 x 16 block means of the Landsat reflectance (480 m), NDVI from "
                             "the block-mean red and NIR",
                   "fine": "Landsat-5 TM NDVI, 30 m, before/after the December 2004 flood"})
    else:
        raise ValueError(f"Unknown pair set {name!r}; choose from {SETS}.")
    return dataclasses.replace(pairs, test=tuple(test) if test else pairs.dates)


# --------------------------------------------------------------------------------------------
# methods


@dataclass
class Prediction:
    """One method's fine-grid prediction of one held-out date (spread and interval for ensembles)."""

    mean: np.ndarray
    spread: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None


@dataclass(frozen=True)
class FoldPrior:
    """The prior of a held-out date: per pixel the latest clear fine value among the earlier held-in dates.

    ``coarse_model`` is the coarse image of each pixel's prior date upsampled as the diffusion model
    upsamples (S3's input); ``coarse_bicubic`` the same, bicubic (the fusion baselines' input).
    ``fine`` is NaN where no earlier held-in date was clear.
    """

    dates: tuple[str, ...]
    fine: np.ndarray
    age: np.ndarray
    coarse_model: np.ndarray
    coarse_bicubic: np.ndarray

    def dataset(self, like: xr.DataArray) -> xr.Dataset:
        """The prior as :func:`unique_xr.downscale.downscale` takes it, on the grid of ``like``."""
        dims = ("y", "x")
        return xr.Dataset({"fine": (dims, self.fine), "age": (dims, self.age), "coarse": (dims, self.coarse_model)},
                          coords={"y": like["y"], "x": like["x"]})


def fold_prior(pairs: PairSet, held_out: str) -> FoldPrior | None:
    """The prior of ``held_out`` from the held-in dates earlier than it (None when there is none)."""
    from unique_xr.downscale.api import day_numbers
    from unique_xr.downscale.prior import prior_fields

    earlier = pairs.earlier(held_out)
    if not earlier:
        return None
    fines = [pairs.fine[d].values.astype(np.float64) for d in earlier]
    days = [pairs.day(d) for d in earlier]
    target = pairs.day(held_out)
    doy = float(day_numbers([pairs.calendar[held_out]])[1][0])
    model = prior_fields(fines, days, target, doy=doy, coarse_up=[pairs.coarse_for_model(d) for d in earlier])
    cubic = prior_fields(fines, days, target, doy=doy, coarse_up=[pairs.coarse_on_fine(d) for d in earlier])
    return FoldPrior(dates=earlier, fine=np.asarray(model.fine), age=np.asarray(model.age),
                     coarse_model=np.asarray(model.coarse), coarse_bicubic=np.asarray(cubic.coarse))


def baseline_predictions(pairs: PairSet, held_out: str, prior: FoldPrior | None) -> dict[str, Prediction]:
    """``{method: Prediction}`` of the non-diffusion methods for ``held_out``, fitted on the other dates.

    Regressions and the texture layer use the held-in dates; naive fusion and STARFM the prior
    (without one, both are bicubic).
    """
    from unique_xr.downscale.fusion import naive_fusion, starfm

    held_in = pairs.held_in(held_out)
    train_up = [pairs.coarse_on_fine(d) for d in held_in]
    train_fine = [pairs.fine[d].values for d in held_in]
    classes = None if pairs.classes is None else pairs.classes.values
    up = pairs.coarse_on_fine(held_out)
    out = {"bicubic": Prediction(up), "linear": Prediction(RegressionBaseline().fit(train_up, train_fine).predict(up))}
    if classes is not None:
        per_class = RegressionBaseline().fit(train_up, train_fine, classes=classes)
        out["per-class"] = Prediction(per_class.predict(up, classes=classes))
    if pairs.factor:
        from unique_xr.downscale.texture import texture_prior

        texture = texture_prior([pairs.fine[d] for d in held_in], pairs.factor).values.astype(np.float64)
        out["bicubic + texture"] = Prediction(up + np.nan_to_num(texture))
    if prior is None:
        out["naive fusion"], out["STARFM"] = Prediction(up.copy()), Prediction(up.copy())
    else:
        sigma_fine, sigma_coarse = pairs.starfm_uncertainty
        out["naive fusion"] = Prediction(naive_fusion(up, prior.fine, prior.coarse_bicubic).astype(np.float64))
        out["STARFM"] = Prediction(starfm(up, prior.fine, prior.coarse_bicubic, fine_uncertainty=sigma_fine,
                                          coarse_uncertainty=sigma_coarse).astype(np.float64))
    return out


#: Diffusion variants: (scheme passed to fit, uses the set's auxiliaries, adds the texture layer).
VARIANTS = {"s1": ("s1", False, False), "s2": ("s2", True, False), "s2t": ("s2", True, True),
            "s3": ("s3", True, False)}
LABELS = {"s1": "diffusion S1", "s2": "diffusion S2", "s2t": "diffusion S2 + texture", "s3": "diffusion S3"}


def scheme_applies(pairs: PairSet, scheme: str) -> bool:
    """S2 needs auxiliaries, its texture variant a nested grid; S1 and S3 run on every set."""
    if scheme in ("s1", "s3"):
        return True
    return bool(pairs.aux) and (scheme != "s2t" or bool(pairs.factor))


def variant_aux(pairs: PairSet, variant: str, train: Sequence[str]) -> tuple[list | None, list | None]:
    """The auxiliaries to fit with and to predict with for ``variant``, from the dates ``train`` only.

    ``s2t`` adds :func:`~unique_xr.downscale.texture.texture_prior` of the training fine images:
    leave-one-out for fitting (each pair sees the other dates' texture), the plain mean for prediction.
    ``s3`` uses the set's auxiliaries where it has them.
    """
    from unique_xr.downscale.texture import texture_prior

    _, use_aux, use_texture = VARIANTS[variant]
    if not use_aux or not pairs.aux:
        return None, None
    fit_aux, predict_aux = list(pairs.aux), list(pairs.aux)
    if use_texture:
        fine = [pairs.fine[d] for d in train]
        fit_aux.append(texture_prior(fine, pairs.factor or 1, leave_one_out=True))
        predict_aux.append(texture_prior(fine, pairs.factor or 1))
    return fit_aux, predict_aux


@dataclass(frozen=True, kw_only=True)
class DiffusionRun:
    """How the diffusion rows are fitted and sampled (one for the whole run)."""

    config: object
    members: int
    steps: int
    seed: int
    device: str
    reuse: bool
    conserve: bool = False


def fit_fold(pairs: PairSet, scheme: str, held_out: str, run: DiffusionRun, model_dir: Path):
    """``(model, fit seconds, reused)`` of ``scheme`` fitted on the dates other than ``held_out``.

    With ``run.reuse`` a finished model of the same configuration in ``model_dir`` is loaded (its fit
    time is the one its card records; ``reused`` True) and an unfinished one resumed from its checkpoint.
    """
    from unique_xr.downscale import fit, load_downscaler

    held_in = pairs.held_in(held_out)
    if run.reuse and (model_dir / "weights.pt").exists():
        model = load_downscaler(model_dir)
        if model.config.to_dict() == run.config.to_dict() and model.scheme == VARIANTS[scheme][0]:
            return model, float(model.card["training"]["seconds_this_run"]), True
        print(f"    {model_dir} holds another configuration: fitting again", flush=True)
    fit_aux, _ = variant_aux(pairs, scheme, held_in)
    start = time.perf_counter()
    model = fit(coarse=[pairs.coarse[d] for d in held_in], fine=[pairs.fine[d] for d in held_in], aux=fit_aux,
                scheme=VARIANTS[scheme][0], dates=[pairs.calendar[d] for d in held_in] if scheme == "s3" else None,
                config=run.config, out=model_dir, device=run.device, factor=pairs.factor,
                resume=run.reuse and (model_dir / "checkpoint.pt").exists())
    return model, time.perf_counter() - start, False


def predict_fold(pairs: PairSet, model, scheme: str, held_out: str, prior: FoldPrior | None, run: DiffusionRun,
                 cache: Path, *, steps: int | None = None, sampler: str | None = None) -> tuple[Prediction, float, str]:
    """``(prediction, seconds, sampler used)`` of ``held_out``; saved next to the model, reloaded with ``run.reuse``."""
    from unique_xr.downscale import downscale

    steps = steps or run.steps
    _, aux = variant_aux(pairs, scheme, pairs.held_in(held_out))
    tag = f"{sampler or 'default'}{'_conserve' if run.conserve else ''}"
    cached = cache / f"prediction_{held_out}_m{run.members}_s{steps}_{tag}_seed{run.seed}_{model.token}.npz"
    names = ("downscaled", "downscaled_spread", "downscaled_lower", "downscaled_upper")
    if run.reuse and cached.exists():
        with np.load(cached) as z:
            return (Prediction(*[z[v].astype(np.float64) if v in z else None for v in names]),
                    float(z["seconds"]), str(z["sampler"]))
    s3 = scheme == "s3"
    start = time.perf_counter()
    ds = downscale(pairs.coarse[held_out], model, aux=aux, factor=pairs.factor, members=run.members, steps=steps,
                   sampler=sampler, seed=run.seed, device=run.device, name="downscaled", conserve=run.conserve,
                   prior=prior.dataset(pairs.fine[held_out]) if s3 and prior is not None else None,
                   date=pairs.calendar[held_out] if s3 else None)
    arrays = {v: ds[v].values for v in names if v in ds}
    seconds = time.perf_counter() - start
    used = str(ds.attrs.get("downscaling_sampler", sampler or ""))
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cached, **arrays, seconds=np.array(seconds), sampler=np.array(used))
    return Prediction(*[arrays[v].astype(np.float64) if v in arrays else None for v in names]), seconds, used


#: The distillation check: (label, network evaluations, sampler) of each row.
DISTILL_ROWS = (("distilled, 1 evaluation", 1, None), ("distilled, 2 evaluations", 2, None),
                ("distilled, 4 evaluations", 4, None), ("DDIM, 20 steps", 20, "ddim"))


def distillation_check(pairs: PairSet, held_out: str, prior: FoldPrior | None, run: DiffusionRun, *,
                       model_dir: Path, out: Path, round_steps: int, truth: np.ndarray) -> dict:
    """Distil the fold's S3 model (16 -> 8 -> 4 -> 2 -> 1 evaluations) and score its samplers on ``truth``.

    ``truth`` is NaN outside the pixels the fold's table scores. The distilled model is written to
    ``out`` (the fold's own model folder is left as it is); with ``run.reuse`` a finished one of the
    same round steps is loaded.
    """
    from unique_xr.downscale import distill, load_downscaler

    held_in = pairs.held_in(held_out)
    model = None
    if run.reuse and (out / "weights.pt").exists():
        model = load_downscaler(out)
        done = model.distilled or {}
        if done.get("round_steps") != round_steps or not {1, 2, 4} <= set(model.students):
            model = None
    if model is None:
        fit_aux, _ = variant_aux(pairs, "s3", held_in)
        start = time.perf_counter()
        model = distill(load_downscaler(model_dir), [pairs.coarse[d] for d in held_in],
                        [pairs.fine[d] for d in held_in], aux=fit_aux, dates=[pairs.calendar[d] for d in held_in],
                        factor=pairs.factor, steps=1, start=16, round_steps=round_steps, device=run.device, out=out)
        print(f"    distilled in {time.perf_counter() - start:.0f} s", flush=True)
    rows = {}
    for label, steps, sampler in DISTILL_ROWS:
        pred, seconds, used = predict_fold(pairs, model, "s3", held_out, prior, run, out, steps=steps, sampler=sampler)
        rows[label] = {"evaluations": steps, "sampler": used, "predict_s": seconds, **ensemble_scores(pred, truth)}
        print(f"    {label}: RMSE {rows[label]['rmse']:.4f}, CRPS {rows[label]['crps']:.4f}, "
              f"coverage {rows[label]['coverage90']:.1%}, {seconds:.0f} s", flush=True)
    return {"round_steps": round_steps, "start": 16, "distill_s": float((model.distilled or {}).get("seconds", 0.0)),
            "members": run.members, "seed": run.seed, "rounds": (model.distilled or {}).get("rounds"), "rows": rows}


# --------------------------------------------------------------------------------------------
# scores


def ensemble_scores(pred: Prediction, truth: np.ndarray) -> dict[str, float]:
    """RMSE, bias, MAE and, with a spread, the Gaussian CRPS, 90 % coverage and mean spread, on finite ``truth``."""
    from unique_xr.downscale.metrics import bias, rmse

    ok = np.isfinite(truth) & np.isfinite(pred.mean)
    out = {"n": int(ok.sum()), "rmse": rmse(pred.mean, truth), "bias": bias(pred.mean, truth),
           "mae": float(np.mean(np.abs(pred.mean[ok] - truth[ok]))) if ok.any() else float("nan")}
    if pred.spread is not None:
        out["crps"] = crps_gaussian(pred.mean, pred.spread, truth)
        out["mean_spread"] = float(np.mean(pred.spread[ok])) if ok.any() else float("nan")
    if pred.lower is not None and pred.upper is not None:
        out["coverage90"] = interval_coverage(pred.lower, pred.upper, truth)
    return out


def score_fold(truth: np.ndarray, predictions: dict[str, Prediction]) -> tuple[dict, np.ndarray]:
    """``({"n": pixels, "methods": {method: scores}}, scored truth)`` on the pixels every method covers."""
    truth = np.asarray(truth, dtype=np.float64)
    common = np.isfinite(truth)
    for p in predictions.values():
        common &= np.isfinite(p.mean)
    truth = np.where(common, truth, np.nan)
    methods = {}
    for method, p in predictions.items():
        scores = score_table(p.mean, truth)
        extra = ensemble_scores(p, truth)
        scores.update({k: v for k, v in extra.items() if k not in scores})
        methods[method] = scores
    ref = methods["bicubic"]["rmse"]
    for scores in methods.values():
        scores["rmse_vs_bicubic"] = scores["rmse"] / ref - 1.0
    return {"n": int(common.sum()), "methods": methods}, truth


def coarse_input_diagnostics(pairs: PairSet, held_out: str, *, sigmas: Sequence[float] = (0.5, 1.0, 2.0),
                             max_shift: int | None = None) -> dict | None:
    """How much of bicubic's error on the held-out date ``held_out`` is already in the coarse image.

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
      held-in dates explains (squared correlation, nothing fitted).

    Every change is relative to the bicubic RMSE on the same pixels. None for sets without a factor.
    """
    from scipy import ndimage

    from unique_xr.downscale.texture import texture_prior

    k = pairs.factor
    if not k:
        return None
    shift = max_shift if max_shift is not None else k
    d = held_out
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
    texture = texture_prior([pairs.fine[t] for t in pairs.held_in(d)], k).values[ok]
    known = np.isfinite(texture)
    explained["texture"] = float(np.corrcoef(texture[known], anomaly[known])[0, 1] ** 2)
    return {
        "n": int(ok.sum()), "bicubic_rmse": ref,
        "coarse_vs_block_mean": {"n_blocks": int(at_coarse.sum()), "rmse": float(np.sqrt(np.mean((c - m) ** 2))),
                                 "bias": float(np.mean(c - m)), "r": float(np.corrcoef(c, m)[0, 1])},
        "perfect_coarse": {"rmse": rmse(perfect), "vs_bicubic": rmse(perfect) / ref - 1.0},
        "smoothed": smoothed,
        "best_shift": {"dy": best[1], "dx": best[2], "vs_bicubic": best[0] / ref - 1.0},
        "own_bias_removed": {"bias": bias, "vs_bicubic": rmse(base - bias) / ref - 1.0},
        "sub_coarse_explained": explained,
    }


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


# --------------------------------------------------------------------------------------------
# tables


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return format(value, spec)


def _prior_cell(prior: dict | None) -> str:
    if not prior:
        return f"none {NO_PRIOR}"
    return f"{', '.join(prior['dates'])}: {prior['share']:.0%} px, {prior['mean_age_days']:.0f} d"


def markdown_table(record: dict) -> str:
    """One pipe table of every set, held-out date and method."""
    lines = [("| set | held-out date | season | prior (dates: pixels with one, mean age) | method | n | RMSE | bias | "
              "r | SSIM | RMSE vs bicubic | CRPS | 90 % coverage |"),
             "|:---|:---|:---|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, result in record["sets"].items():
        for d, fold in result["scores"].items():
            mark = "" if fold["prior"] else f" {NO_PRIOR}"
            for method, s in fold["methods"].items():
                lines.append(
                    f"| {name} | {d} ({fold['date']}){mark} | {fold['season']} ({fold['months']}) | "
                    f"{_prior_cell(fold['prior'])} | {method} | {s['n']} | {_fmt(s['rmse'], '.4f')} | "
                    f"{_fmt(s['bias'], '+.4f')} | {_fmt(s['r'], '.3f')} | {_fmt(s['ssim'], '.3f')} | "
                    f"{_fmt(s['rmse_vs_bicubic'], '+.1%')} | {_fmt(s.get('crps'), '.4f')} | "
                    f"{_fmt(s.get('coverage90'), '.1%')} |")
    return "\n".join(lines)


def season_summary(record: dict) -> dict[str, dict[str, dict]]:
    """``{season: {method: {"dates": [...], "mean_rmse_vs_bicubic", "min", "max"}}}`` over every set."""
    out: dict[str, dict[str, dict]] = {}
    for name, result in record["sets"].items():
        for d, fold in result["scores"].items():
            for method, s in fold["methods"].items():
                entry = out.setdefault(fold["season"], {}).setdefault(method, {"dates": [], "values": []})
                entry["dates"].append(f"{name} {d}{'' if fold['prior'] else ' ' + NO_PRIOR}")
                entry["values"].append(s["rmse_vs_bicubic"])
    summary = {}
    for season in sorted(out, key=SEASON_ORDER.index):
        summary[season] = {}
        for method, entry in out[season].items():
            values = np.array(entry["values"], dtype=np.float64)
            summary[season][method] = {"dates": entry["dates"], "mean_rmse_vs_bicubic": float(values.mean()),
                                       "min": float(values.min()), "max": float(values.max())}
    return summary


def season_table(summary: dict) -> str:
    """Markdown of :func:`season_summary`: the mean change in RMSE against bicubic per season and method."""
    lines = ["| season | method | held-out dates | mean RMSE vs bicubic | best / worst date |",
             "|:---|:---|:---|---:|---:|"]
    for season, methods in summary.items():
        for method, s in methods.items():
            lines.append(f"| {season} | {method} | {', '.join(s['dates'])} | {s['mean_rmse_vs_bicubic']:+.1%} | "
                         f"{s['min']:+.1%} / {s['max']:+.1%} |")
    return "\n".join(lines)


def distillation_table(record: dict) -> str:
    """Markdown of the distillation checks: each sampler's scores and time, and RMSE/CRPS against 20-step DDIM."""
    lines = [("| set | held-out date | sampler | network evaluations | RMSE | CRPS | 90 % coverage | predict s | "
              "RMSE vs DDIM 20 | CRPS vs DDIM 20 |"),
             "|:---|:---|:---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, by_date in record.get("distillation", {}).items():
        for d, check in by_date.items():
            ref = check["rows"].get("DDIM, 20 steps", {})
            for label, row in check["rows"].items():
                vs = [row[k] / ref[k] - 1.0 if ref.get(k) else None for k in ("rmse", "crps")]
                lines.append(f"| {name} | {d} | {label} | {row['evaluations']} | {_fmt(row['rmse'], '.4f')} | "
                             f"{_fmt(row.get('crps'), '.4f')} | {_fmt(row.get('coverage90'), '.1%')} | "
                             f"{row['predict_s']:.1f} | {_fmt(vs[0], '+.1%')} | {_fmt(vs[1], '+.1%')} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def goals(record: dict) -> dict:
    """The evaluation goals of issue 17, checked on the folds that ran (None where a method is missing)."""
    s3 = LABELS["s3"]
    out: dict = {"s3_30pct_below_bicubic_ndvi": {}, "s3_below_starfm_and_naive": {}, "coverage_85_95": {}}
    for name, result in record["sets"].items():
        for d, fold in result["scores"].items():
            m = fold["methods"]
            if s3 not in m:
                continue
            key = f"{name} {d}"
            if name == "ndvi":
                out["s3_30pct_below_bicubic_ndvi"][key] = {"rmse_vs_bicubic": m[s3]["rmse_vs_bicubic"],
                                                           "met": m[s3]["rmse_vs_bicubic"] <= -0.30}
            if name in ("ndvi", "cia"):
                out["s3_below_starfm_and_naive"][key] = {
                    "s3": m[s3]["rmse"], "starfm": m["STARFM"]["rmse"], "naive": m["naive fusion"]["rmse"],
                    "met": m[s3]["rmse"] < min(m["STARFM"]["rmse"], m["naive fusion"]["rmse"])}
            cov = m[s3].get("coverage90")
            out["coverage_85_95"][key] = {"coverage90": cov, "met": cov is not None and 0.85 <= cov <= 0.95}
    for goal in list(out):
        folds = out[goal]
        out[goal] = {"all_met": bool(folds) and all(f["met"] for f in folds.values()), "folds": folds}
    out["note"] = "coverage is the model's Student-t interval: no calibration step is run by this script"
    return out


# --------------------------------------------------------------------------------------------
# figures


def draw_maps(pairs: PairSet, predictions: dict[str, Prediction], date: str, path: Path) -> Path:
    """Coarse, truth, bicubic, STARFM, S3 (ensemble mean), S3 error and S3 spread for one held-out date."""
    from unique_xr._optional import import_optional

    import_optional("matplotlib", purpose="the downscaling maps")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = pairs.fine[date].values
    coarse = pairs.coarse[date]
    lo, hi = np.nanpercentile(truth, [2, 98])
    fine_extent = _extent(pairs.fine[date])
    s3 = predictions.get(LABELS["s3"])
    panels = [
        (coarse.values, _extent(coarse), f"coarse ({pairs.notes.get('coarse', '').split(',')[0]})", "viridis", lo, hi),
        (truth, fine_extent, "fine truth (NaN: cloud/fill)", "viridis", lo, hi),
        (predictions["bicubic"].mean, fine_extent, "bicubic", "viridis", lo, hi),
        (predictions["STARFM"].mean, fine_extent, "STARFM", "viridis", lo, hi),
    ]
    if s3 is not None:
        error = s3.mean - truth
        emax = float(np.nanpercentile(np.abs(error), 98)) or 1.0
        panels += [(s3.mean, fine_extent, "diffusion S3 (ensemble mean)", "viridis", lo, hi),
                   (error, fine_extent, "S3 - truth", "RdBu_r", -emax, emax)]
        if s3.spread is not None:
            panels.append((s3.spread, fine_extent, "S3 ensemble spread (std)", "magma", 0,
                           float(np.nanpercentile(s3.spread, 98)) or 1.0))
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.4), constrained_layout=True)
    axes = axes.ravel()
    for ax, (values, extent, title, cmap, vmin, vmax) in zip(axes, panels):
        im = ax.imshow(values, extent=extent, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    for i, ax in enumerate(axes[len(panels):]):
        if s3 is None and i == 0:
            ax.text(0.5, 0.5, "diffusion S3 not run", ha="center", va="center", transform=ax.transAxes)
        ax.axis("off")
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    season, months = pairs.season(date)
    prior = pairs.earlier(date)
    fig.suptitle(f"{pairs.name}: {pairs.variable} ({pairs.units}), held-out {pairs.calendar[date]} ({season}, "
                 f"{months}); prior from {', '.join(prior) if prior else 'none'}; fitted on the other dates",
                 fontsize=11)
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

    for d in pairs.dates:
        write(pairs.coarse[d], out / f"coarse_{d}.tif")
        write(pairs.fine[d], out / f"fine_{d}.tif")
    for i, a in enumerate(pairs.aux or []):
        write(a, out / f"aux{i}_{a.name}.tif")
    return written


def _names_fold(tokens: Sequence[str] | None, name: str, date: str, *, plain_set: str | None = None) -> bool:
    """Whether ``tokens`` (``SET:DATE`` or ``DATE``) name the fold ``name``/``date``.

    A plain ``DATE`` names that date of ``plain_set`` (None: of any set).

    >>> _names_fold(["ndvi:239", "306"], "cia", "306"), _names_fold(["239"], "cia", "239", plain_set="ndvi")
    (True, False)
    """
    for token in tokens or ():
        where, _, when = token.rpartition(":")
        if when == date and (where == name if where else plain_set in (None, name)):
            return True
    return False


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared 'pairs' folder")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS),
                        help="pair sets to run, in this order (default all)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: the 'quick' model preset on a 64 x 64 px corner (80 x 80 for Yanco), the "
                             "set's figure date only (unless --test), 4 members, 4 steps; writes "
                             "downscale_pairs_quick.json and keeps its models and maps under --models/quick")
    parser.add_argument("--preset", default=None, help="model preset (default 'cpu'; 'quick' with --quick)")
    parser.add_argument("--base-channels", type=int, default=None,
                        help="UNet width (default 16 with the 'cpu' preset, else the preset's)")
    parser.add_argument("--train-steps", type=int, default=None,
                        help="training steps per fit (default 500 with the 'cpu' preset, else the preset's)")
    parser.add_argument("--members", type=int, default=None, help="ensemble members (default 8; 4 with --quick)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default 10; 4 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--schemes", nargs="+", choices=tuple(VARIANTS), default=("s3", "s1", "s2"),
                        help="diffusion schemes, run in this order within a held-out date (s2 and s2t only where "
                             "the set has a land-cover map; s2t = s2 plus the texture of the held-in fine images)")
    parser.add_argument("--baseline-schemes-dates", nargs="+", default=None, metavar="SET:DATE",
                        help="fit the schemes other than s3 (s1, s2, s2t) only for these held-out dates, e.g. "
                             "ndvi:239 cia:306 (a plain DATE: that date of any set); default every date")
    parser.add_argument("--test", nargs="+", default=None, metavar="[SET:]DATE",
                        help="held-out dates to run (a plain DATE: that date of any set having it); default all")
    parser.add_argument("--distill-dates", nargs="+", default=(), metavar="[SET:]DATE",
                        help="held-out dates (plain: of ndvi) whose S3 model is distilled to 1, 2, 4 evaluations "
                             "and compared with 20-step DDIM")
    parser.add_argument("--distill-round-steps", type=int, default=150, help="optimiser steps per distillation round")
    parser.add_argument("--reuse-models", action="store_true",
                        help="load finished models (and their saved predictions) from --models instead of redoing "
                             "them, resume unfinished fits: a stopped run continues")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default torch's; 1 with --quick). On a CPU shared with other jobs, 1 is often several "
                             "times faster than 2: measured here under load, 1.8 against 10.6 s per training step")
    parser.add_argument("--no-diffusion", action="store_true", help="score the baselines only")
    parser.add_argument("--conserve", action="store_true",
                        help="mass-conserving diffusion predictions: every member's mean over each coarse cell equals "
                             "the coarse value (sets with a nested coarse grid; adds ', conserved' to the labels)")
    parser.add_argument("--out-json", type=Path, default=None,
                        help="default benchmarks/results/downscale_pairs.json (_quick.json with --quick)")
    parser.add_argument("--figures", type=Path, default=None,
                        help="folder of the downscale_<set>.png maps (default docs/figures; --models/quick/figures "
                             "with --quick)")
    parser.add_argument("--models", type=Path, default=REPO / "build" / "downscale_pairs",
                        help="folder the fitted models are saved under, one per (set, scheme, held-out date)")
    parser.add_argument("--export-geotiffs", type=Path, default=None, metavar="DIR",
                        help="only write each set's images as single-band GeoTIFFs under DIR/<set>/ and stop")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other sets already in --out-json (each set records its own configuration)")
    return parser.parse_args(argv)


def write_record(record: dict, path: Path) -> None:
    """Recompute the tables of ``record`` and write it to ``path`` (atomically: a stopped run leaves a whole file)."""
    record["table"] = markdown_table(record)
    record["season_summary"] = season_summary(record)
    record["season_table"] = season_table(record["season_summary"])
    record["distillation"] = {name: entry["distillation"] for name, entry in record["sets"].items()
                              if entry.get("distillation")}
    record["distillation_table"] = distillation_table(record)
    record["coarse_input_table"] = diagnostics_table(record)
    record["goals"] = goals(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(record, indent=1, default=_json_default) + "\n")
    os.replace(partial, path)


def run_set(name: str, args: argparse.Namespace, record: dict, run: DiffusionRun | None, *, models: Path,
            figures: Path, out_json: Path) -> None:
    """Every held-out date of one set: baselines, diffusion rows, scores, distillation, map; JSON after each date."""
    started = time.perf_counter()
    pairs = load_pairs(name, args.data)
    tests = [d for d in pairs.dates if args.test is None or _names_fold(args.test, name, d)]
    if args.quick and args.test is None:
        tests = [pairs.figure_date]
    if not tests:
        print(f"{name}: none of --test {args.test} is one of its dates {pairs.dates}; skipped", flush=True)
        return
    pairs = dataclasses.replace(pairs, test=tuple(tests))
    if args.quick:  # a 64 x 64 px corner (80 x 80 for a factor of 10)
        step = math.lcm(pairs.factor or 1, 16)
        pairs = pairs.crop(step * math.ceil(64 / step))
    figure_date = pairs.figure_date if pairs.figure_date in tests else tests[-1]
    entry = {
        "variable": pairs.variable, "units": pairs.units, "hemisphere": pairs.hemisphere,
        "dates": {d: pairs.calendar[d] for d in pairs.dates}, "test": tests, "factor": pairs.factor,
        "shape": list(pairs.fine[tests[0]].shape), "citation": pairs.citation, "notes": pairs.notes,
        "starfm_uncertainty": list(pairs.starfm_uncertainty), "scores": {}, "timings": {}, "coarse_input": {},
        "figure": None, "complete": False,
        "diffusion": None if run is None else record["diffusion"],
    }
    record["sets"][name] = entry
    for d in tests:
        fold_started = time.perf_counter()
        season, months = pairs.season(d)
        held_in = pairs.held_in(d)
        prior = fold_prior(pairs, d)
        print(f"{name} {d} ({pairs.calendar[d]}, {season}): fit on {', '.join(held_in)}; prior from "
              f"{', '.join(prior.dates) if prior else 'none ' + NO_PRIOR}", flush=True)
        predictions = baseline_predictions(pairs, d, prior)
        timings: dict[str, dict] = {"baselines_s": time.perf_counter() - fold_started}
        s3_dir = None
        for scheme in args.schemes if run is not None else ():
            if not scheme_applies(pairs, scheme) or (
                    scheme != "s3" and args.baseline_schemes_dates is not None
                    and not _names_fold(args.baseline_schemes_dates, name, d)):
                continue
            label = LABELS[scheme] + (", conserved" if run.conserve else "")
            model_dir = models / f"{name}_{scheme}_{d}"
            print(f"  {label}: fitting ...", flush=True)
            # with --reuse-models a finished model (and its saved prediction) may come from an earlier run
            model, fit_s, reused = fit_fold(pairs, scheme, d, run, model_dir)
            pred, predict_s, used = predict_fold(pairs, model, scheme, d, prior, run, model_dir)
            predictions[label] = pred
            timings[label] = {"fit_s": fit_s, "predict_s": predict_s, "sampler": used, "model_reused": reused,
                              "model_token": model.token}
            print(f"    fit {fit_s:.0f} s, predict {predict_s:.0f} s ({used})", flush=True)
            if scheme == "s3":
                s3_dir = model_dir
        scores, truth = score_fold(pairs.fine[d].values, predictions)
        prior_info = None
        if prior is not None:
            scored = np.isfinite(truth)
            has = scored & np.isfinite(prior.fine)
            prior_info = {"dates": list(prior.dates), "share": float(has.sum() / max(int(scored.sum()), 1)),
                          "mean_age_days": float(np.mean(prior.age[has])) if has.any() else float("nan")}
        entry["scores"][d] = {"date": pairs.calendar[d], "season": season, "months": months,
                              "held_in": list(held_in), "prior": prior_info, **scores}
        entry["timings"][d] = timings
        diagnostics = coarse_input_diagnostics(pairs, d)
        if diagnostics:
            entry["coarse_input"][d] = diagnostics
        for method, s in scores["methods"].items():
            print(f"    {method:<24} RMSE {s['rmse']:.4f} ({s['rmse_vs_bicubic']:+.1%})"
                  + (f", CRPS {s['crps']:.4f}, coverage {s['coverage90']:.1%}" if "crps" in s else ""), flush=True)
        if s3_dir is not None and _names_fold(args.distill_dates, name, d, plain_set="ndvi"):
            print(f"  distillation of the S3 model ({args.distill_round_steps} steps per round) ...", flush=True)
            entry.setdefault("distillation", {})[d] = distillation_check(
                pairs, d, prior, run, model_dir=s3_dir, round_steps=args.distill_round_steps, truth=truth,
                out=models / f"{name}_s3_{d}_distilled_r{args.distill_round_steps}")
        if d == figure_date:
            entry["figure"] = str(draw_maps(pairs, predictions, d, figures / f"downscale_{name}.png"))
        timings["fold_s"] = time.perf_counter() - fold_started
        entry["wall_s"] = time.perf_counter() - started
        print(f"  {name} {d} done in {timings['fold_s']:.0f} s", flush=True)
        write_record(record, out_json)
    entry["complete"] = True
    write_record(record, out_json)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    preset = args.preset or ("quick" if args.quick else "cpu")
    defaults = {"base_channels": 16, "train_steps": 500} if preset == "cpu" else {}
    overrides = {k: v for k, v in (("base_channels", args.base_channels), ("train_steps", args.train_steps))
                 if v is not None}
    overrides = {**defaults, **overrides}
    members = args.members or (4 if args.quick else 8)
    steps = args.steps or (4 if args.quick else 10)
    models = args.models / "quick" if args.quick else args.models
    out_json = args.out_json or REPO / "benchmarks" / "results" / (
        "downscale_pairs_quick.json" if args.quick else "downscale_pairs.json")
    figures = args.figures or (models / "figures" if args.quick else REPO / "docs" / "figures")
    if args.export_geotiffs:
        for name in args.sets:
            paths = export_geotiffs(load_pairs(name, args.data), args.export_geotiffs / name)
            print(f"{name}: {len(paths)} GeoTIFFs in {args.export_geotiffs / name}")
        return {}
    record: dict = {
        "script": "examples/downscale_pairs.py", "argv": list(argv) if argv is not None else sys.argv[1:],
        "protocol": "leave one date out: fit on every other date; prior = per pixel the latest clear fine value "
                    "among the held-in dates earlier than the held-out one",
        "machine": {"python": platform.python_version(), "processor": platform.machine(), "cpus": _cpus()},
        "diffusion": None if args.no_diffusion else {
            "preset": preset, "overrides": overrides, "members": members, "steps": steps, "sampler": "ddim",
            "seed": args.seed, "device": args.device, "conserve": args.conserve, "schemes": list(args.schemes),
            "baseline_schemes_dates": args.baseline_schemes_dates, "distill_dates": list(args.distill_dates),
            "distill_round_steps": args.distill_round_steps, "interval": "Student-t of the members, not calibrated",
            "reuse_models": args.reuse_models,
            "timings": "fit_s / predict_s are those of the run that made the model / prediction (its card, its "
                       "saved prediction) where model_reused"},
        "sets": {},
    }
    if args.merge and out_json.exists():
        old = json.loads(out_json.read_text())
        record["sets"] = {k: v for k, v in old["sets"].items() if k not in args.sets}
        record["merged_from"] = {k: old.get(k) for k in ("argv", "diffusion", "wall_s", "merged_from")}
    run = None
    if not args.no_diffusion:
        from unique_xr.downscale import DownscaleConfig

        threads = args.threads or (1 if args.quick else None)
        if threads:
            from unique_xr._optional import import_optional

            import_optional("torch", purpose="the diffusion rows").set_num_threads(threads)
            record["diffusion"]["threads"] = threads

        run = DiffusionRun(config=DownscaleConfig.preset(preset, **overrides), members=members, steps=steps,
                           seed=args.seed, device=args.device, reuse=args.reuse_models, conserve=args.conserve)
    started = time.perf_counter()
    for name in args.sets:
        run_set(name, args, record, run, models=models, figures=figures, out_json=out_json)
    record["wall_s"] = time.perf_counter() - started
    write_record(record, out_json)
    for key in ("table", "season_table", "distillation_table", "coarse_input_table"):
        if record[key]:
            print(f"\n{record[key]}")
    for goal, result in record["goals"].items():
        if isinstance(result, dict):
            print(f"goal {goal}: {'met' if result['all_met'] else 'NOT met'} on {len(result['folds'])} folds")
    print(f"wrote {out_json} ({record['wall_s']:.0f} s)", flush=True)
    return record


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value)} to JSON")


if __name__ == "__main__":
    main()
