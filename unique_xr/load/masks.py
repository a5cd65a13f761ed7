"""QA masks from the documented bit layouts of each product.

Two layers, as everywhere in unique_xr:

1. numpy kernels that know nothing of xarray: ``decode_*`` split a QA integer into its named
   fields, and ``*_clear`` / ``*_good`` turn it into a boolean "usable" mask with options;
2. :func:`qa_mask` and :func:`apply_qa_mask`, which find the QA variables of a collection in a
   cube (named by their role in :mod:`unique_xr.search.collections`), run the kernels block by
   block with :func:`xarray.apply_ufunc` and stay lazy on Dask input.

``True`` always means *clear / usable*. Each bit table below is copied from the product's user
guide and cross-checked, in the tests, against real QA values (and, for Landsat, against the
``classification:bitfields`` of a real Planetary Computer STAC item; for MOD09, against the
``QA index`` attribute written inside a real MOD09GA granule).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from unique_xr import schema
from unique_xr.errors import AllMaskedError, MissingVariableError, SpecError
from unique_xr.search.collections import AssetSpec, CollectionSpec, get_collection

__all__ = [
    "LANDSAT_QA_PIXEL_BITS",
    "MCD43A4_FILL",
    "MCD43A4_FULL_INVERSION",
    "MCD43A4_MAGNITUDE_INVERSION",
    "MOD09A1_STATE_BITS",
    "MOD09A1_STATE_FILL",
    "MOD11A1_QC_BITS",
    "MOD13A1_RELIABILITY",
    "BitField",
    "apply_qa_mask",
    "decode_bits",
    "decode_mod09a1_state",
    "decode_mod11a1_qc",
    "decode_qa_pixel",
    "landsat_clear",
    "mcd43a4_good",
    "mod09a1_clear",
    "mod11a1_good",
    "mod13a1_good",
    "qa_mask",
    "status_table",
]


class BitField(NamedTuple):
    """One field of a QA bit layout: ``length`` bits starting at bit ``offset`` (0 = least significant)."""

    offset: int
    length: int
    meaning: str


def decode_bits(qa: np.ndarray, layout: Mapping[str, BitField]) -> dict[str, np.ndarray]:
    """Split integer QA values into the named fields of ``layout``.

    One-bit fields come back as ``bool`` arrays, wider fields as ``uint8`` class numbers.
    """
    qa = np.asarray(qa)
    if qa.dtype.kind not in "iu":
        raise TypeError(f"QA values must be integers, got dtype {qa.dtype}; cast fill/NaN away first.")
    wide = qa if qa.dtype.kind == "u" else qa.astype(np.int64)  # shifts on the native unsigned dtype
    out: dict[str, np.ndarray] = {}
    for name, field in layout.items():
        value = (wide >> wide.dtype.type(field.offset)) & wide.dtype.type((1 << field.length) - 1)
        out[name] = value.astype(bool) if field.length == 1 else value.astype(np.uint8)
    return out


# ------------------------------------------------------------------------------ Landsat C2
#: Landsat Collection 2 ``QA_PIXEL`` (uint16), identical for Landsat 4-5/7 and 8-9 Level-2.
#: Source: USGS Landsat 8-9 C2 Level-2 Science Product Guide (LSDS-1619) Table 6-3 and Landsat
#: 4-7 C2 L2 guide (LSDS-1618) Table 6-3; names as in the STAC ``classification:bitfields`` of the
#: ``qa_pixel`` asset. On Landsat 4-7 bit 2 (cirrus) and bits 14-15 are never set. The 1-bit
#: cloud/shadow/snow/cirrus flags mean *high confidence*; ``clear`` is 0 when cloud or dilated
#: cloud is set, and on Landsat 4-7 also over water (real value 5504 = water, not clear).
LANDSAT_QA_PIXEL_BITS: dict[str, BitField] = {
    "fill": BitField(0, 1, "1 = fill (no image data)"),
    "dilated_cloud": BitField(1, 1, "1 = cloud dilation"),
    "cirrus": BitField(2, 1, "1 = high-confidence cirrus (Landsat 8-9 only)"),
    "cloud": BitField(3, 1, "1 = high-confidence cloud"),
    "cloud_shadow": BitField(4, 1, "1 = high-confidence cloud shadow"),
    "snow": BitField(5, 1, "1 = high-confidence snow/ice"),
    "clear": BitField(6, 1, "1 = neither cloud nor dilated cloud"),
    "water": BitField(7, 1, "1 = water"),
    "cloud_confidence": BitField(8, 2, "0 none, 1 low, 2 medium, 3 high"),
    "cloud_shadow_confidence": BitField(10, 2, "0 none, 1 low, 2 reserved, 3 high"),
    "snow_confidence": BitField(12, 2, "0 none, 1 low, 2 reserved, 3 high"),
    "cirrus_confidence": BitField(14, 2, "0 none, 1 low, 2 reserved, 3 high"),
}


def decode_qa_pixel(qa: np.ndarray) -> dict[str, np.ndarray]:
    """Decode Landsat Collection 2 ``QA_PIXEL`` into its twelve named fields.

    ======  ========================  ===================================================
    bits    field                     values
    ======  ========================  ===================================================
    0       ``fill``                  1 = fill
    1       ``dilated_cloud``         1 = dilated cloud
    2       ``cirrus``                1 = high-confidence cirrus (Landsat 8-9)
    3       ``cloud``                 1 = high-confidence cloud
    4       ``cloud_shadow``          1 = high-confidence cloud shadow
    5       ``snow``                  1 = high-confidence snow/ice
    6       ``clear``                 1 = cloud and dilated-cloud bits both unset
    7       ``water``                 1 = water
    8-9     ``cloud_confidence``      0 none, 1 low, 2 medium, 3 high
    10-11   ``cloud_shadow_confidence``  0 none, 1 low, 3 high
    12-13   ``snow_confidence``       0 none, 1 low, 3 high
    14-15   ``cirrus_confidence``     0 none, 1 low, 3 high (Landsat 8-9)
    ======  ========================  ===================================================

    Source: USGS LSDS-1619 (Landsat 8-9) and LSDS-1618 (Landsat 4-7) Collection 2 Level-2
    Science Product Guides, table "Pixel Quality Assessment (QA_PIXEL) Bit Index".

    Parameters
    ----------
    qa : ndarray of integers
        Raw ``QA_PIXEL`` values.

    Returns
    -------
    dict of str to ndarray
        ``bool`` arrays for the 1-bit flags, ``uint8`` classes for the confidences.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.load.masks import decode_qa_pixel
    >>> fields = decode_qa_pixel(np.array([5440, 5896], dtype="uint16"))  # Landsat 7: clear, cloud
    >>> fields["clear"].tolist(), fields["cloud"].tolist(), fields["cloud_confidence"].tolist()
    ([True, False], [False, True], [1, 3])
    """
    return decode_bits(qa, LANDSAT_QA_PIXEL_BITS)


def landsat_clear(
    qa: np.ndarray,
    *,
    mask_fill: bool = True,
    dilated_cloud: bool = True,
    cirrus: bool = True,
    cloud: bool = True,
    shadow: bool = True,
    snow: bool = True,
) -> np.ndarray:
    """Landsat ``QA_PIXEL`` -> ``True`` where none of the selected flags is set.

    Each option, when ``True``, removes pixels with that flag (see :func:`decode_qa_pixel`):
    ``mask_fill`` bit 0, ``dilated_cloud`` bit 1, ``cirrus`` bit 2, ``cloud`` bit 3, ``shadow``
    bit 4, ``snow`` bit 5. Water (bit 7) is kept: it is an observation, not an obstruction, and
    on Landsat 4-7 the ``clear`` bit is 0 over water, which is why this test does not use it.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.load.masks import landsat_clear
    >>> qa = np.array([5440, 5504, 5896, 7440, 13600, 1], dtype="uint16")  # clear water cloud shadow snow fill
    >>> landsat_clear(qa).tolist()
    [True, True, False, False, False, False]
    >>> landsat_clear(qa, snow=False).tolist()
    [True, True, False, False, True, False]
    """
    flags = (
        (mask_fill, "fill"), (dilated_cloud, "dilated_cloud"), (cirrus, "cirrus"),
        (cloud, "cloud"), (shadow, "cloud_shadow"), (snow, "snow"),
    )
    bad = 0
    for wanted, name in flags:
        if wanted:
            bad |= 1 << LANDSAT_QA_PIXEL_BITS[name].offset
    qa = np.asarray(qa)
    if qa.dtype.kind not in "iu":
        raise TypeError(f"QA_PIXEL values must be integers, got dtype {qa.dtype}.")
    return (qa & qa.dtype.type(bad)) == 0


def _landsat_fill(qa: np.ndarray) -> np.ndarray:
    qa = np.asarray(qa)
    return (qa & qa.dtype.type(1)) == 1


# --------------------------------------------------------------------------------- MCD43A4
#: MCD43A4 ``BRDF_Albedo_Band_Mandatory_Quality_Band<n>`` (uint8), one per band. Source: MODIS
#: MCD43 C6.1 User Guide (Schaaf & Wang), MCD43A4 SDS table; also the ``classification:classes``
#: of Planetary Computer ``modis-43A4-061`` items.
MCD43A4_FULL_INVERSION = 0  # processed, good quality (full BRDF inversion)
MCD43A4_MAGNITUDE_INVERSION = 1  # processed, see other QA (magnitude inversion from an archetypal BRDF)
MCD43A4_FILL = 255


def mcd43a4_good(qa: np.ndarray, *, allow_magnitude: bool = True) -> np.ndarray:
    """MCD43A4 band mandatory QA -> ``True`` for a usable NBAR value.

    ====  ==========================================================
    0     processed, good quality: full BRDF inversion
    1     processed, see other QA: magnitude inversion (kept unless
          ``allow_magnitude=False``)
    255   fill (never usable)
    ====  ==========================================================

    Source: MCD43 C6.1 User Guide, "BRDF_Albedo_Band_Mandatory_Quality".

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.load.masks import mcd43a4_good
    >>> qa = np.array([0, 1, 255], dtype="uint8")
    >>> mcd43a4_good(qa).tolist(), mcd43a4_good(qa, allow_magnitude=False).tolist()
    ([True, True, False], [True, False, False])
    """
    qa = np.asarray(qa)
    good = qa == MCD43A4_FULL_INVERSION
    if allow_magnitude:
        good |= qa == MCD43A4_MAGNITUDE_INVERSION
    return good


def _mcd43a4_fill(qa: np.ndarray) -> np.ndarray:
    return np.asarray(qa) == MCD43A4_FILL


# --------------------------------------------------------------------------------- MOD09A1
#: MOD09A1 ``sur_refl_state_500m`` (uint16); the same layout as MOD09GA ``state_1km``. Source:
#: MODIS Surface Reflectance User's Guide C6.1 (Vermote et al.), table "500-meter State Flags".
MOD09A1_STATE_BITS: dict[str, BitField] = {
    "cloud_state": BitField(0, 2, "0 clear, 1 cloudy, 2 mixed, 3 not set (assumed clear)"),
    "cloud_shadow": BitField(2, 1, "1 = cloud shadow"),
    "land_water": BitField(3, 3, "0 shallow ocean, 1 land, 2 coast/lake shore, 3 shallow inland water, "
                                 "4 ephemeral water, 5 deep inland water, 6 moderate/continental ocean, 7 deep ocean"),
    "aerosol_quantity": BitField(6, 2, "0 climatology, 1 low, 2 average, 3 high"),
    "cirrus": BitField(8, 2, "0 none, 1 small, 2 average, 3 high"),
    "internal_cloud": BitField(10, 1, "1 = cloud (internal cloud algorithm)"),
    "internal_fire": BitField(11, 1, "1 = fire (internal fire algorithm)"),
    "mod35_snow_ice": BitField(12, 1, "1 = snow/ice (MOD35)"),
    "adjacent_to_cloud": BitField(13, 1, "1 = pixel adjacent to cloud"),
    "salt_pan": BitField(14, 1, "1 = salt pan"),
    "internal_snow": BitField(15, 1, "1 = snow (internal snow mask)"),
}
#: ``_FillValue`` of the MOD09 state layers (as written in the HDF granules).
MOD09A1_STATE_FILL = 65535
_MOD09_LAND = 1


def decode_mod09a1_state(state: np.ndarray) -> dict[str, np.ndarray]:
    """Decode MOD09A1 500 m state QA (``sur_refl_state_500m``) into its eleven fields.

    ======  =====================  =================================================
    bits    field                  values
    ======  =====================  =================================================
    0-1     ``cloud_state``        0 clear, 1 cloudy, 2 mixed, 3 not set (assumed clear)
    2       ``cloud_shadow``       1 = yes
    3-5     ``land_water``         0 shallow ocean, 1 land, 2 ocean coastline / lake
                                   shoreline, 3 shallow inland water, 4 ephemeral
                                   water, 5 deep inland water, 6 continental /
                                   moderate ocean, 7 deep ocean
    6-7     ``aerosol_quantity``   0 climatology, 1 low, 2 average, 3 high
    8-9     ``cirrus``             0 none, 1 small, 2 average, 3 high
    10      ``internal_cloud``     1 = cloud (internal cloud algorithm)
    11      ``internal_fire``      1 = fire
    12      ``mod35_snow_ice``     1 = snow/ice (MOD35 flag)
    13      ``adjacent_to_cloud``  1 = yes
    14      ``salt_pan``           1 = yes
    15      ``internal_snow``      1 = snow (internal snow mask)
    ======  =====================  =================================================

    Source: MODIS Surface Reflectance User's Guide, Collection 6.1, "500-meter State Flags"
    (identical to the MOD09GA ``state_1km`` table, which real granules also carry in their
    ``QA index`` attribute). The fill value is 65535.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.load.masks import decode_mod09a1_state
    >>> f = decode_mod09a1_state(np.array([8197], dtype="uint16"))  # a real MOD09GA value
    >>> f["cloud_state"].tolist(), f["cloud_shadow"].tolist(), f["adjacent_to_cloud"].tolist()
    ([1], [True], [True])
    """
    return decode_bits(state, MOD09A1_STATE_BITS)


def mod09a1_clear(
    state: np.ndarray,
    *,
    mask_fill: bool = True,
    cloud: bool = True,
    mixed_cloud: bool = True,
    shadow: bool = True,
    cirrus: bool = True,
    snow: bool = True,
    high_aerosol: bool = True,
    adjacent_to_cloud: bool = False,
    internal_cloud: bool = False,
    water: bool = False,
) -> np.ndarray:
    """MOD09A1 state QA -> ``True`` where the pixel is clear by the selected tests.

    Parameters
    ----------
    state : ndarray of integers
        Raw ``sur_refl_state_500m`` values (see :func:`decode_mod09a1_state`).
    mask_fill : bool
        Remove fill (65535).
    cloud, mixed_cloud : bool
        Remove cloud state 1 (cloudy) / 2 (mixed). State 3 ("not set, assumed clear") is kept.
    shadow : bool
        Remove cloud shadow (bit 2).
    cirrus : bool
        Remove average and high cirrus (bits 8-9 = 2 or 3); small cirrus is kept.
    snow : bool
        Remove snow/ice by either the MOD35 flag (bit 12) or the internal snow mask (bit 15).
    high_aerosol : bool
        Remove high aerosol quantity (bits 6-7 = 3).
    adjacent_to_cloud : bool
        Remove pixels adjacent to cloud (bit 13). Off by default: it removes many good pixels.
    internal_cloud : bool
        Also remove pixels the internal cloud algorithm (bit 10) calls cloud.
    water : bool
        Keep land (``land_water`` = 1) only.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.load.masks import mod09a1_clear
    >>> state = np.array([8, 9, 8200, 65535], dtype="uint16")  # land clear, cloudy, land+adjacent, fill
    >>> mod09a1_clear(state).tolist(), mod09a1_clear(state, adjacent_to_cloud=True).tolist()
    ([True, False, True, False], [True, False, False, False])
    """
    state = np.asarray(state)
    f = decode_mod09a1_state(state)
    ok = np.ones(state.shape, dtype=bool)
    if mask_fill:
        ok &= state != MOD09A1_STATE_FILL
    if cloud:
        ok &= f["cloud_state"] != 1
    if mixed_cloud:
        ok &= f["cloud_state"] != 2
    if shadow:
        ok &= ~f["cloud_shadow"]
    if cirrus:
        ok &= f["cirrus"] < 2
    if snow:
        ok &= ~(f["mod35_snow_ice"] | f["internal_snow"])
    if high_aerosol:
        ok &= f["aerosol_quantity"] != 3
    if adjacent_to_cloud:
        ok &= ~f["adjacent_to_cloud"]
    if internal_cloud:
        ok &= ~f["internal_cloud"]
    if water:
        ok &= f["land_water"] == _MOD09_LAND
    return ok


def _mod09a1_fill(state: np.ndarray) -> np.ndarray:
    return np.asarray(state) == MOD09A1_STATE_FILL


# --------------------------------------------------------------------------------- MOD13A1
#: MOD13A1 ``500m_16_days_pixel_reliability`` (int8) ranks. Source: MOD13 C6.1 User Guide
#: (Didan et al.), table "Pixel Reliability"; Earth Engine calls this layer ``SummaryQA``.
MOD13A1_RELIABILITY: dict[int, str] = {
    -1: "fill / no data",
    0: "good data, use with confidence",
    1: "marginal data, useful but look at other QA",
    2: "snow/ice: target covered with snow/ice",
    3: "cloudy: target not visible, covered with cloud",
}


def mod13a1_good(rel: np.ndarray, *, allow_marginal: bool = True, allow_snow: bool = False) -> np.ndarray:
    """MOD13A1 pixel reliability -> ``True`` for usable composites.

    ====  ================================  =======================
    rank  meaning                           usable
    ====  ================================  =======================
    -1    fill / no data                    never
    0     good                              always
    1     marginal                          if ``allow_marginal``
    2     snow / ice                        if ``allow_snow``
    3     cloudy                            never
    ====  ================================  =======================

    Source: MOD13 C6.1 User Guide, "Pixel Reliability" (``500m_16_days_pixel_reliability``).

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.load.masks import mod13a1_good
    >>> rel = np.array([-1, 0, 1, 2, 3], dtype="int8")
    >>> mod13a1_good(rel).tolist()
    [False, True, True, False, False]
    """
    rel = np.asarray(rel)
    good = rel == 0
    if allow_marginal:
        good |= rel == 1
    if allow_snow:
        good |= rel == 2
    return good


def _mod13a1_fill(rel: np.ndarray) -> np.ndarray:
    return np.asarray(rel) == -1


# --------------------------------------------------------------------------------- MOD11A1
#: MOD11A1 ``QC_Day`` / ``QC_Night`` (uint8). Source: MODIS LST Products User's Guide C6.1
#: (Wan), Table "Bit flags defined in the QC SDS" of MOD11A1.
MOD11A1_QC_BITS: dict[str, BitField] = {
    "mandatory_qa": BitField(0, 2, "0 LST produced, good; 1 produced, other quality; "
                                   "2 not produced due to cloud; 3 not produced, other reasons"),
    "data_quality": BitField(2, 2, "0 good, 1 other quality, 2-3 TBD"),
    "emissivity_error": BitField(4, 2, "0 <= 0.01, 1 <= 0.02, 2 <= 0.04, 3 > 0.04"),
    "lst_error": BitField(6, 2, "0 <= 1 K, 1 <= 2 K, 2 <= 3 K, 3 > 3 K"),
}


def decode_mod11a1_qc(qc: np.ndarray) -> dict[str, np.ndarray]:
    """Decode MOD11A1 ``QC_Day`` / ``QC_Night`` into its four 2-bit fields.

    ====  ====================  ===================================================
    bits  field                 values
    ====  ====================  ===================================================
    0-1   ``mandatory_qa``      0 good, 1 other quality, 2 not produced (cloud),
                                3 not produced (other)
    2-3   ``data_quality``      0 good, 1 other quality
    4-5   ``emissivity_error``  0 <= 0.01, 1 <= 0.02, 2 <= 0.04, 3 > 0.04
    6-7   ``lst_error``         0 <= 1 K, 1 <= 2 K, 2 <= 3 K, 3 > 3 K
    ====  ====================  ===================================================

    Source: MODIS Land Surface Temperature Products User's Guide, Collection 6.1.
    """
    return decode_bits(qc, MOD11A1_QC_BITS)


def mod11a1_good(qc: np.ndarray, *, allow_other_quality: bool = True) -> np.ndarray:
    """MOD11A1 QC -> ``True`` where LST was produced (mandatory QA 0, or 1 if allowed).

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.load.masks import mod11a1_good
    >>> qc = np.array([0b00, 0b01, 0b10, 0b11, 0b0100_0001], dtype="uint8")
    >>> mod11a1_good(qc).tolist(), mod11a1_good(qc, allow_other_quality=False).tolist()
    ([True, True, False, False, True], [True, False, False, False, False])
    """
    qc = np.asarray(qc)
    mandatory = qc & qc.dtype.type(0b11)
    good = mandatory == 0
    if allow_other_quality:
        good |= mandatory == 1
    return good


def _no_fill(qc: np.ndarray) -> np.ndarray:
    return np.zeros(np.shape(qc), dtype=bool)


# ---------------------------------------------------------------------------- layout table
@dataclass(frozen=True)
class _Layout:
    clear: Callable[..., np.ndarray]
    fill: Callable[[np.ndarray], np.ndarray]

    @property
    def options(self) -> tuple[str, ...]:
        params = inspect.signature(self.clear).parameters.values()
        return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


#: ``AssetSpec.qa_layout`` -> the kernels that read it.
_LAYOUTS: dict[str, _Layout] = {
    "landsat_qa_pixel": _Layout(landsat_clear, _landsat_fill),
    "mcd43a4_mandatory": _Layout(mcd43a4_good, _mcd43a4_fill),
    "mod09a1_state": _Layout(mod09a1_clear, _mod09a1_fill),
    "mod13a1_reliability": _Layout(mod13a1_good, _mod13a1_fill),
    "mod11a1_qc": _Layout(mod11a1_good, _no_fill),
}

# per-pixel status codes computed in one pass over each QA block
_MASKED, _CLEAR, _FILL = np.uint8(0), np.uint8(1), np.uint8(2)


def _status_block(qa: np.ndarray, *, layout: str, dtype: str, nodata: float | None, options: dict) -> np.ndarray:
    """QA block -> uint8 status (0 masked by a flag, 1 clear, 2 fill/nodata); NaN counts as fill."""
    qa = np.asarray(qa)
    kernels = _LAYOUTS[layout]
    if qa.dtype.kind == "f":
        missing = ~np.isfinite(qa)
        raw = np.where(missing, 0, qa).astype(dtype)
    else:
        missing = np.zeros(qa.shape, dtype=bool)
        raw = qa.astype(dtype, copy=False)
    if nodata is not None and np.isfinite(nodata):
        missing |= qa == nodata
    missing |= kernels.fill(raw)
    status = np.where(kernels.clear(raw, **options), _CLEAR, _MASKED)
    status[missing] = _FILL
    return status


def status_table(layout: str, dtype: str, *, nodata: float | None, options: Mapping[str, Any]) -> np.ndarray:
    """Status (0 masked, 1 clear, 2 fill) of every raw value of an 8/16-bit QA ``dtype``, from
    ``table[qa - iinfo(dtype).min]``: the layout's own kernels run once over every possible value, so a
    fused kernel reads a QA pixel with one gather and no second copy of the bit layout."""
    info = np.iinfo(np.dtype(dtype))
    every = np.arange(info.min, info.max + 1, dtype=np.dtype(dtype))
    return _status_block(every, layout=layout, dtype=dtype, nodata=nodata, options=dict(options))


# ---------------------------------------------------------------------------- xarray layer
@dataclass(frozen=True)
class _QALayer:
    var: str
    asset: AssetSpec
    targets: tuple[str, ...]  # data variables this QA masks on its own (MCD43A4 per band); () = all


def _qa_layers(ds: xr.Dataset, spec: CollectionSpec) -> list[_QALayer]:
    with_layout = [a for a in spec.assets if a.qa_layout is not None]
    if not with_layout:
        raise SpecError(
            f"Collection {spec.name!r} declares no QA layout, so there is nothing to mask it with. "
            "Mask a collection that has one (Landsat C2 L2, MCD43A4, MOD09A1, MOD13A1, MOD11A1)."
        )
    present = [a for a in with_layout if a.role in ds.data_vars]
    if not present:
        raise MissingVariableError(
            f"QA masking for {spec.name!r} needs one of the QA variables {[a.role for a in with_layout]} "
            f"(assets {[a.key for a in with_layout]}), but the dataset has {sorted(map(str, ds.data_vars))}. "
            f"Load the QA asset too (e.g. assets=[..., {with_layout[0].key!r}]) and keep its role name."
        )
    qa_roles = {a.role for a in spec.assets if a.is_qa}
    data_vars = [str(v) for v in ds.data_vars if v not in qa_roles]
    layers = []
    for asset in present:
        suffix = asset.role.removeprefix("qa_")
        targets = tuple(v for v in data_vars if v == suffix or v.endswith("_" + suffix))
        layers.append(_QALayer(var=asset.role, asset=asset, targets=targets))
    return layers


def _split_options(layers: list[_QALayer], options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    accepted = {layer.asset.qa_layout: _LAYOUTS[layer.asset.qa_layout].options for layer in layers}
    known = {name for names in accepted.values() for name in names}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(
            f"Unknown QA option(s) {unknown} for layout(s) {sorted(accepted)}; "
            f"the options are {sorted(known)}."
        )
    return {layout: {k: v for k, v in options.items() if k in names} for layout, names in accepted.items()}


def _nodata(da: xr.DataArray, asset: AssetSpec) -> float | None:
    for value in (da.attrs.get("nodata"), da.attrs.get("_FillValue"), da.encoding.get("_FillValue"), asset.nodata):
        if value is not None:
            return float(value)
    return None


def _layer_status(ds: xr.Dataset, layer: _QALayer, options: dict[str, Any]) -> xr.DataArray:
    qa = ds[layer.var]
    return xr.apply_ufunc(
        _status_block, qa,
        kwargs={"layout": layer.asset.qa_layout, "dtype": layer.asset.dtype, "nodata": _nodata(qa, layer.asset),
                    "options": options},
        dask="parallelized", output_dtypes=[np.uint8],
    )


def _masks(ds: xr.Dataset, collection, options: dict[str, Any]):
    """Per-layer clear masks, the all-layer clear mask, the any-layer fill mask, and the layers."""
    spec = get_collection(collection)
    layers = _qa_layers(ds, spec)
    per_layout = _split_options(layers, options)
    clear: dict[str, xr.DataArray] = {}
    combined = fill = None
    for layer in layers:
        status = _layer_status(ds, layer, per_layout[layer.asset.qa_layout])
        clear[layer.var] = status == _CLEAR
        combined = clear[layer.var] if combined is None else combined & clear[layer.var]
        is_fill = status == _FILL
        fill = is_fill if fill is None else fill | is_fill
    return spec, layers, clear, combined, fill


def _describe(spec: CollectionSpec, layers: list[_QALayer], options: dict[str, Any]) -> str:
    layouts = sorted({layer.asset.qa_layout for layer in layers})
    return f"{spec.name} QA {[layer.var for layer in layers]} (layout {', '.join(layouts)}; options {options or 'default'})"


def qa_mask(ds: xr.Dataset, collection: str | CollectionSpec, **options: Any) -> xr.DataArray:
    """Boolean clear mask (``True`` = usable) from the QA variables of ``collection`` in ``ds``.

    The collection registry says which variables are QA and how to read them (``qa_layout``);
    each one present in ``ds`` (named by role: ``qa_pixel`` for Landsat, ``qa_red``,
    ``qa_nir``... for MCD43A4, ``qa_state`` for MOD09A1, ``qa_reliability`` for MOD13A1,
    ``qa_day``/``qa_night`` for MOD11A1) is decoded, and a pixel is clear when every one of
    them says so. QA values equal to the variable's ``nodata`` attribute (else
    ``_FillValue``, else the registry's nodata), NaN, or the layout's own fill are masked.
    Lazy on Dask input.

    Parameters
    ----------
    ds : xarray.Dataset
        A cube with the collection's QA variable(s).
    collection : str or CollectionSpec
        Registry name, provider id or alias (``"landsat-c2-l2"``, ``"modis-43A4-061"``...).
    **options
        Passed to the layout's kernel: :func:`landsat_clear`, :func:`mcd43a4_good`,
        :func:`mod09a1_clear`, :func:`mod13a1_good` or :func:`mod11a1_good`.

    Raises
    ------
    MissingVariableError
        No QA variable of the collection is in ``ds``.
    TypeError
        An option no present layout knows.
    """
    spec, layers, _, combined, _ = _masks(ds, collection, options)
    return combined.rename("clear").assign_attrs(
        long_name="pixel passed the QA mask", comment=_describe(spec, layers, options)
    )


def _all_masked_message(n_total: int, n_fill: int, shape: Mapping[str, int], what: str) -> str:
    n_flagged = n_total - n_fill
    pct = (lambda n: 100.0 * n / n_total) if n_total else (lambda n: 0.0)
    return (
        f"No clear pixel left after QA masking with {what}: 0 of {n_total} pixel observations "
        f"(dims {dict(shape)}) are clear; {n_fill} ({pct(n_fill):.1f}%) are fill/nodata and {n_flagged} "
        f"({pct(n_flagged):.1f}%) are flagged (cloud, shadow, snow or poor retrieval). Fix: widen the dates "
        "(more acquisitions), relax the options (e.g. snow=False, dilated_cloud=False, allow_magnitude=True, "
        "allow_marginal=True), or check that the area lies inside the tiles when most pixels are fill."
    )


def _raise_if_none_clear(n_clear, n_fill, *, n_total: int, shape: dict, what: str) -> np.ndarray:
    if int(n_clear) == 0:
        raise AllMaskedError(_all_masked_message(n_total, int(n_fill), shape, what))
    return np.array(True)


def _pass_mask(mask: np.ndarray, ok: np.ndarray) -> np.ndarray:
    return mask


def _any_clear_gate(combined: xr.DataArray, fill: xr.DataArray, what: str):
    """Raise now (numpy) or return a 0-d Dask array that raises at compute time when nothing is clear."""
    shape = dict(combined.sizes)
    n_total = int(combined.size)
    if not schema.is_dask(combined):
        n_clear = int(np.count_nonzero(combined.values))
        _raise_if_none_clear(n_clear, int(np.count_nonzero(fill.values)), n_total=n_total, shape=shape, what=what)
        return None
    return _lazy_all_masked_check(combined.data.sum(), fill.data.sum(), n_total=n_total, shape=shape, what=what)


def _lazy_all_masked_check(n_clear, n_fill, *, n_total: int, shape: dict, what: str):
    """0-d Dask array that raises :class:`AllMaskedError` at compute time when the lazy ``n_clear`` is 0."""
    import dask.array as dsa

    return dsa.blockwise(
        _raise_if_none_clear, (), n_clear, (), n_fill, (),
        n_total=n_total, shape=shape, what=what, dtype=bool, meta=np.empty((), dtype=bool),
        token="all-masked-check",
    )


def _gated(mask: xr.DataArray, ok) -> xr.DataArray:
    """``mask`` whose every chunk depends on the global any-clear check ``ok``."""
    if ok is None:
        return mask
    import dask.array as dsa

    index = tuple(f"d{i}" for i in range(mask.ndim))
    data = mask.data if schema.is_dask(mask) else dsa.from_array(mask.values, chunks=-1)
    gated = dsa.blockwise(
        _pass_mask, index, data, index, ok, (), dtype=bool, meta=np.empty((0,) * mask.ndim, dtype=bool),
        token="after-all-masked-check",
    )
    return mask.copy(data=gated)



def apply_qa_mask(
    ds: xr.Dataset,
    collection: str | CollectionSpec,
    *,
    drop_qa: bool = True,
    check_all_masked: bool = True,
    **options: Any,
) -> xr.Dataset:
    """Set non-clear pixels to NaN and add a ``clear`` (uint8 0/1) variable.

    A QA variable paired with one band masks that band only (MCD43A4: ``qa_red`` masks
    ``red``; MOD11A1: ``qa_day`` masks ``lst_day``); every other variable that has the mask's
    dims is masked where *all* QA variables present say clear (the ``clear`` variable).
    Variables without those dims (static layers) pass unchanged; integer variables become
    float32 so they can hold NaN.

    Parameters
    ----------
    ds : xarray.Dataset
        A loaded cube, bands named by role.
    collection : str or CollectionSpec
        The collection the cube was loaded from.
    drop_qa : bool
        Drop the collection's QA variables (all of them, with or without a layout) afterwards.
    check_all_masked : bool
        Raise :class:`~unique_xr.errors.AllMaskedError` when no pixel of the whole input is
        clear. On numpy input this is checked at once. On Dask input it stays lazy: every output
        chunk depends on a tiny global reduction (number of clear pixels) in the same graph, so
        the error is raised at compute time before any output chunk exists (no half-written
        Zarr). The price: each chunk's boolean mask (1 byte per pixel) is kept until the whole
        reduction is done; set ``False`` to stream very large cubes without the check.
    **options
        Layout options, see :func:`qa_mask`.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    MissingVariableError
        No QA variable of the collection is in ``ds``.
    AllMaskedError
        Nothing is clear (at once on numpy input; at compute time on Dask input).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from unique_xr.load.masks import apply_qa_mask
    >>> ds = xr.Dataset({
    ...     "red": (("time", "y", "x"), np.full((1, 1, 3), 0.05, dtype="float32")),
    ...     "qa_pixel": (("time", "y", "x"), np.array([[[5440, 5896, 7440]]], dtype="uint16")),
    ... })
    >>> out = apply_qa_mask(ds, "landsat-c2-l2")
    >>> out["clear"].values.ravel().tolist(), np.isnan(out["red"].values).ravel().tolist()
    ([1, 0, 0], [False, True, True])
    """
    spec, layers, clear_by_qa, combined, fill = _masks(ds, collection, options)
    what = _describe(spec, layers, options)
    ok = _any_clear_gate(combined, fill, what) if check_all_masked else None
    combined = _gated(combined, ok)
    own_mask = {target: _gated(clear_by_qa[layer.var], ok) for layer in layers for target in layer.targets}

    qa_roles = {a.role for a in spec.assets if a.is_qa}
    out = ds.copy()
    for name, var in ds.data_vars.items():
        if name in qa_roles or not set(combined.dims) <= set(var.dims):
            continue
        if var.dtype.kind in "iub":
            var = var.astype(np.float32)
        elif var.dtype.kind != "f":
            continue
        out[name] = var.where(own_mask.get(str(name), combined)).assign_attrs(var.attrs)
    attrs = schema.cf_attrs("clear", comment=what)
    grid_mapping = ds[layers[0].var].attrs.get("grid_mapping")
    if grid_mapping is not None:
        attrs["grid_mapping"] = grid_mapping
    out["clear"] = combined.astype(np.uint8).assign_attrs(attrs)
    if drop_qa:
        out = out.drop_vars([v for v in out.data_vars if v in qa_roles])
    return out
