"""Raster readers for the lazy loader: sign at read time, retry, and fail loudly.

stackstac and odc-stac each let the caller swap the object that opens and reads one asset
(stackstac's ``reader=``, odc-stac's ``driver=``). unique_xr plugs in the two small readers below so
that both engines behave the same way:

* **Signing happens inside the task that opens the file.** ``sign(href)`` (for example
  ``planetary_computer.sign``) is called when a Dask task opens the asset, never while the graph is
  built, so short-lived tokens do not expire between building a graph and computing it.
* **GDAL retries HTTP errors** (:data:`GDAL_RETRY_OPTIONS`, applied through stackstac's
  ``gdal_env`` and odc-stac's captured rasterio environment).
* **Read errors are errors.** A corrupt, truncated or non-raster file raises
  :class:`~unique_xr.errors.AssetReadError` naming the href and asset; stackstac's
  ``errors_as_nodata`` is always empty, so nothing is silently turned into fill.
* **An asset that is entirely fill raises** :class:`~unique_xr.errors.AllFillError` (see
  :func:`asset_is_all_fill` for why the check is per asset and not per chunk).

Nothing here imports at ``import unique_xr`` time: :mod:`unique_xr.load.stack` imports this
module only when a load actually needs stackstac or odc-stac.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.vrt import WarpedVRT

from unique_xr._optional import import_optional
from unique_xr.errors import AllFillError, AssetReadError

import_optional("stackstac", purpose="loading STAC items lazily")
import_optional("odc.stac", purpose="loading STAC items with engine='odc'")

from odc.loader import RioDriver, RioReader  # noqa: E402  (after the checks above, for their message)
from stackstac.rio_env import LayeredEnv  # noqa: E402
from stackstac.rio_reader import (  # noqa: E402
    DEFAULT_GDAL_ENV,
    MULTITHREADED_DRIVER_ALLOWLIST,
    AutoParallelRioReader,
    SelfCleaningDatasetReader,
    SingleThreadedRioDataset,
    ThreadLocalRioDataset,
)

__all__ = [
    "GDAL_RETRY_OPTIONS",
    "AssetHref",
    "CheckedRioReader",
    "CheckedOdcDriver",
    "asset_is_all_fill",
    "gdal_env",
]

#: GDAL settings that make HTTP reads retry (429 and 5xx) with a growing delay, for both engines.
GDAL_RETRY_OPTIONS: dict[str, str] = {
    "GDAL_HTTP_MAX_RETRY": "5",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
}

_FIX_READ = (
    "The file is corrupt, truncated, not a raster, or could not be fetched. Check that the href opens "
    "with `rio info <href>` (sign it first if the provider needs it), re-download or re-run the search, "
    "or leave this item out of `items`."
)


class AssetHref(str):
    """An asset href that also remembers its item id and asset key (for error messages).

    It *is* the href string, so stackstac and GDAL treat it as one; the two extra attributes
    survive pickling to Dask workers.
    """

    item_id: str
    asset_key: str

    def __new__(cls, href: str, *, item_id: str, asset_key: str) -> AssetHref:
        obj = super().__new__(cls, href)
        obj.item_id = item_id
        obj.asset_key = asset_key
        return obj

    def __reduce__(self):
        return (_make_href, (str(self), self.item_id, self.asset_key))

    def describe(self) -> str:
        return f"asset {self.asset_key!r} of item {self.item_id!r} ({str(self)!r})"


def _make_href(href: str, item_id: str, asset_key: str) -> AssetHref:
    return AssetHref(href, item_id=item_id, asset_key=asset_key)


def _describe(href: str, asset_key: str) -> str:
    if isinstance(href, AssetHref):
        return href.describe()
    return f"asset {asset_key!r} ({str(href)!r})"


def gdal_env() -> LayeredEnv:
    """stackstac's default GDAL environment plus :data:`GDAL_RETRY_OPTIONS`."""
    return LayeredEnv(
        always={**DEFAULT_GDAL_ENV._always, **GDAL_RETRY_OPTIONS},
        open=DEFAULT_GDAL_ENV._open,
        open_vrt=DEFAULT_GDAL_ENV._open_vrt,
        read=DEFAULT_GDAL_ENV._read,
    )


# ------------------------------------------------------------------------------ all-fill check
def asset_is_all_fill(ds, nodata: float | None) -> bool:
    """Whether every pixel of band 1 of the open rasterio dataset ``ds`` is fill.

    A pixel is fill when the file masks it (its nodata value or internal mask) or when it equals
    ``nodata`` (the registry's raw fill value, which some files do not record).

    Why per asset and not per chunk: a chunk that reads as all fill is normal (the corner of a
    Landsat scene outside its valid footprint, a chunk of a MODIS tile over the sea), so a per-chunk
    test would raise on good data. An *asset* that is entirely fill is never useful and usually means
    a broken or empty granule, which would otherwise end up as a silent NaN slice. The check runs
    once per asset, when a Dask task first opens it (so it is lazy and costs nothing for assets that
    are never read), and it is cheap: it reads the coarsest overview first, and only when that is all
    fill does it scan the full-resolution blocks, stopping at the first valid pixel (a constant
    fill file compresses to almost nothing, so that scan is cheap too).
    """

    def has_valid(arr: np.ma.MaskedArray) -> bool:
        valid = ~np.ma.getmaskarray(arr)
        if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
            valid &= np.ma.getdata(arr) != nodata
        if np.issubdtype(arr.dtype, np.floating):
            valid &= ~np.isnan(np.ma.getdata(arr))
        return bool(valid.any())

    overviews = ds.overviews(1)
    if overviews:
        factor = overviews[-1]
        shape = (max(1, -(-ds.height // factor)), max(1, -(-ds.width // factor)))
        if has_valid(ds.read(1, out_shape=shape, masked=True)):
            return False
    for _, window in ds.block_windows(1):
        if has_valid(ds.read(1, window=window, masked=True)):
            return False
    return True


def _all_fill_error(href: str, asset_key: str, nodata: float | None) -> AllFillError:
    return AllFillError(
        f"Every pixel of {_describe(href, asset_key)} is fill (nodata={nodata!r} or masked by the file): "
        "the granule holds no data. Leave this item out of `items` (for example filter the search by "
        "cloud cover or date), or pass on_all_fill='nan' to load() to accept it as missing data."
    )


#: (href, asset key) of assets already found not to be all fill in this process (both engines open a
#: file once per chunk, so the check is remembered); bounded so a long-lived worker does not grow forever.
_checked_hrefs: dict[tuple[str, str], None] = {}
_checked_lock = threading.Lock()
_CHECKED_MAX = 65536


def _known_not_all_fill(key: tuple[str, str]) -> bool:
    with _checked_lock:
        return key in _checked_hrefs


def _remember_not_all_fill(key: tuple[str, str]) -> None:
    with _checked_lock:
        if len(_checked_hrefs) >= _CHECKED_MAX:
            _checked_hrefs.pop(next(iter(_checked_hrefs)))
        _checked_hrefs[key] = None


# ------------------------------------------------------------------------------------ stackstac
_MASKED = object()  # sentinel: read through GDAL's mask (warped, or an internal/alpha mask)

class CheckedRioReader(AutoParallelRioReader):
    """stackstac reader that signs at open time, raises typed errors and checks for all-fill assets.

    Built by stackstac (``reader=functools.partial(CheckedRioReader, asset_key=..., nodata=...,
    sign=..., check_all_fill=...)``) inside the Dask task that makes the reader table, and opened
    lazily on the first read of a window that overlaps the asset.
    """

    def __init__(
        self,
        *,
        asset_key: str,
        nodata: float | None,
        sign: Callable[[str], str] | None = None,
        check_all_fill: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs["errors_as_nodata"] = ()  # never turn a read error into fill
        super().__init__(**kwargs)
        self.asset_key = asset_key
        self.nodata = nodata
        self.sign = sign
        self.check_all_fill = check_all_fill

    def _open(self):
        with self.gdal_env.open:
            url = self.sign(str(self.url)) if self.sign is not None else str(self.url)
            try:
                ds = SelfCleaningDatasetReader(url, sharing=False)
            except Exception as err:
                raise AssetReadError(f"Could not open {_describe(self.url, self.asset_key)}: {err}. {_FIX_READ}") from err
            if ds.count != 1:
                count = ds.count
                ds.close()
                raise AssetReadError(
                    f"{_describe(self.url, self.asset_key)} has {count} bands; unique_xr loads single-band "
                    "assets (one STAC asset per band). Choose another asset key."
                )
            checked = (str(self.url), self.asset_key)  # stackstac opens a file once per chunk: check it once
            if self.check_all_fill and not _known_not_all_fill(checked):
                try:
                    empty = asset_is_all_fill(ds, self.nodata)
                except rasterio.errors.RasterioError as err:
                    ds.close()
                    raise AssetReadError(
                        f"Could not read {_describe(self.url, self.asset_key)}: {err}. {_FIX_READ}"
                    ) from err
                if empty:
                    ds.close()
                    raise _all_fill_error(self.url, self.asset_key, self.nodata)
                _remember_not_all_fill(checked)
            vrt = None
            if self.spec.vrt_params != {
                "crs": ds.crs.to_epsg() if ds.crs else None,
                "transform": ds.transform,
                "height": ds.height,
                "width": ds.width,
            }:
                with self.gdal_env.open_vrt:
                    vrt = WarpedVRT(
                        ds, sharing=False, resampling=self.resampling, add_alpha=ds.nodata is None,
                        **self.spec.vrt_params,
                    )
            # Fast path: the file is already on the output grid (no warping) and its only mask is its
            # nodata value (or none). A plain read then replacing nodata by the fill value gives the
            # same array as a masked read, without GDAL building a mask band (about half the cost).
            flags = ds.mask_flag_enums[0]
            self._direct_nodata = (
                ds.nodata if vrt is None and all(f in (MaskFlags.nodata, MaskFlags.all_valid) for f in flags)
                else _MASKED
            )
        if ds.driver in MULTITHREADED_DRIVER_ALLOWLIST:
            return ThreadLocalRioDataset(self.gdal_env, ds, vrt=vrt)
        return SingleThreadedRioDataset(self.gdal_env, ds, vrt=vrt)

    def read(self, window, **kwargs) -> np.ndarray:
        dataset = self.dataset  # opens (signs, checks) on first use; raises typed errors itself
        direct = getattr(self, "_direct_nodata", _MASKED)
        try:
            if direct is not _MASKED:
                result = dataset.read(window=window, out_dtype=self.dtype, masked=False, **kwargs)[0]
                if direct is not None and direct != self.fill_value:
                    result[result == direct] = self.fill_value
                return result
            result = dataset.read(window=window, out_dtype=self.dtype, masked=True, **kwargs)
        except Exception as err:
            raise AssetReadError(
                f"Could not read window {window} of {_describe(self.url, self.asset_key)}: {err}. {_FIX_READ}"
            ) from err
        if result.shape[0] == 2:  # data + alpha band (file without nodata, read through a VRT)
            result = np.ma.masked_array(result[0], mask=result[1] == 0)
        else:
            result = result[0]
        return np.ma.filled(result, fill_value=self.fill_value)

    def __getstate__(self):
        state = super().__getstate__()
        return {**state, "asset_key": self.asset_key, "nodata": self.nodata, "sign": self.sign,
                "check_all_fill": self.check_all_fill}

    def __setstate__(self, state):
        self.__init__(**state)


# -------------------------------------------------------------------------------------- odc-stac


class _CheckedOdcReader:
    """odc-loader reader for one source: sign, check all-fill once per process, read, wrap errors."""

    def __init__(self, src, ctx, driver: CheckedOdcDriver) -> None:
        self._src = src
        self._ctx = ctx
        self._driver = driver

    def read(self, cfg, dst_geobox, *, dst=None, selection=None):
        drv = self._driver
        href = self._src.uri
        src = self._src.patch(uri=drv.sign(href)) if drv.sign is not None else self._src
        if cfg.nearest:
            # odc-loader copies pixels without warping when, for nearest, the source grid is within
            # 0.9 px of the target; at an exact half-pixel offset (a 30 m grid anchored at 0 over
            # Landsat's 15 m-offset grid) that picks the other pixel of the tie than GDAL's warper,
            # which stackstac uses. "NEAREST" is the same GDAL resampling but skips that shortcut, so
            # both engines return the source pixel that contains each target pixel centre.
            cfg = dataclasses.replace(cfg, resampling="NEAREST")
        try:
            if drv.check_all_fill and not _known_not_all_fill((href, drv.asset_key)):
                with rasterio.open(src.uri, sharing=False) as ds:
                    empty = asset_is_all_fill(ds, drv.nodata)
                if empty:
                    raise _all_fill_error(href, drv.asset_key, drv.nodata)
                _remember_not_all_fill((href, drv.asset_key))
            return RioReader(src, self._ctx).read(cfg, dst_geobox, dst=dst, selection=selection)
        except rasterio.errors.RasterioError as err:
            raise AssetReadError(f"Could not read {_describe(href, drv.asset_key)}: {err}. {_FIX_READ}") from err


class CheckedOdcDriver(RioDriver):
    """odc-loader reader driver (``odc.stac.load(driver=...)``) with the same guarantees as
    :class:`CheckedRioReader`: signing at read time, GDAL retries, typed read errors, all-fill check.

    odc-stac's own ``patch_url`` signs while the graph is built; this driver signs in the read task.
    """

    def __init__(
        self,
        *,
        asset_key: str,
        nodata: float | None,
        sign: Callable[[str], str] | None = None,
        check_all_fill: bool = True,
    ) -> None:
        super().__init__()
        self.asset_key = asset_key
        self.nodata = nodata
        self.sign = sign
        self.check_all_fill = check_all_fill

    def capture_env(self) -> dict[str, Any]:
        return {**super().capture_env(), **GDAL_RETRY_OPTIONS}

    def open(self, src, ctx) -> _CheckedOdcReader:
        return _CheckedOdcReader(src, ctx, self)
