"""Model inputs and features: from raw table columns or cube variables to what the trees see.

One code path serves tower tables and cubes. A table is pivoted to a Dataset with dims
``(site, time)``; a cube already has ``(time, y, x)``. :func:`resolve_inputs` maps whatever names
the input uses (the tower table's ``Nadir_Reflectance_Band2``, the registry role ``nir``, ERA5's
``t2m_era5`` in K, the tower's ``tower_vpd`` in Pa, ...) onto canonical inputs in canonical units;
:func:`derive_features` turns those into the feature variables of a :class:`Recipe`. The model
card stores the recipe, so prediction derives exactly the features training saw.

Two recipes ship:

``gpp_m``
    daily MCD43A4 NBAR (7 bands, QA), MODIS day LST, meteorology. NBAR gaps of up to
    ``gap_days`` are interpolated and each band is smoothed with a centred running median, because
    half of the daily NBAR retrievals of bands 1, 3, 5 and 7 are missing at the towers.
``gpp_l``
    Landsat Collection 2 Level-2 surface reflectance and surface temperature, cloud-masked with
    QA_PIXEL, plus same-day meteorology. Each scene stands alone (no temporal smoothing).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from unique_xr.errors import MissingVariableError, SpecError
from unique_xr.schema import check_range

__all__ = [
    "INPUTS",
    "RECIPES",
    "Recipe",
    "derive_features",
    "features_from_table",
    "input_columns",
    "resolve_inputs",
    "toa_radiation",
]

# --------------------------------------------------------------------------------------------
# canonical inputs


@dataclass(frozen=True)
class Alias:
    """One way an input may be spelled, and how to bring it to canonical units."""

    name: str
    units: str
    convert: Callable[[xr.DataArray], xr.DataArray] | None = None


@dataclass(frozen=True)
class Input:
    """A canonical model input: name, units, valid range and the aliases it is read from.

    Aliases are tried in order and combined row by row: the first alias with a value wins, so a
    table carrying tower meteorology and ERA5 uses the tower where it measured and ERA5 elsewhere.
    """

    name: str
    units: str
    description: str
    aliases: tuple[Alias, ...]
    valid_range: tuple[float, float] | None = None


def _k_to_c(da: xr.DataArray) -> xr.DataArray:
    return da - 273.15


def _ppfd_to_sw(da: xr.DataArray) -> xr.DataArray:
    # mol m-2 s-1 of PAR photons -> W m-2 shortwave, with 2.04 umol J-1 (the rsofun / FluxDataKit
    # conversion these towers' PPFD was made with)
    return da * 1e6 / 2.04


def _per_day_to_watts(da: xr.DataArray) -> xr.DataArray:
    return da / 86400.0


def _pa_to_hpa(da: xr.DataArray) -> xr.DataArray:
    return da / 100.0


def _band(i: int, role: str) -> tuple[Alias, ...]:
    return (Alias(f"Nadir_Reflectance_Band{i}", "1"), Alias(role, "1"))


_MODIS_ROLES = ("red", "nir", "blue", "green", "nir2", "swir1", "swir2")
_LANDSAT_ROLES = ("blue", "green", "red", "nir", "swir1", "swir2")

INPUTS: dict[str, Input] = {
    **{
        f"nbar_{role}": Input(f"nbar_{role}", "1", f"MCD43A4 NBAR reflectance, {role} (band {i})",
                              _band(i, role), (-0.2, 1.6))
        for i, role in enumerate(_MODIS_ROLES, start=1)
    },
    **{
        f"nbar_qa_{role}": Input(f"nbar_qa_{role}", "1", f"MCD43A4 mandatory QA, {role} (band {i})",
                                 (Alias(f"QA_Band{i}", "class"), Alias(f"qa_{role}", "1")))
        for i, role in enumerate(_MODIS_ROLES, start=1)
    },
    "lst_day_terra": Input("lst_day_terra", "K", "MOD11A1 day land-surface temperature (Terra)",
                           (Alias("LST_Day_1km_Terra", "K"), Alias("lst_day", "K")), (150.0, 360.0)),
    "lst_day_aqua": Input("lst_day_aqua", "K", "MYD11A1 day land-surface temperature (Aqua)",
                          (Alias("LST_Day_1km_Aqua", "K"), Alias("lst_day_aqua", "K")), (150.0, 360.0)),
    **{
        f"sr_{role}": Input(f"sr_{role}", "1", f"Landsat C2 L2 surface reflectance, {role}",
                            (Alias(role, "1"),), (-0.2, 1.6))
        for role in _LANDSAT_ROLES
    },
    "landsat_st": Input("landsat_st", "K", "Landsat C2 L2 surface temperature",
                        (Alias("lst_day", "K"), Alias("lst_day_l457", "K")), (150.0, 360.0)),
    "air_temperature": Input(
        "air_temperature", "degC", "daily mean air temperature (tower, else reanalysis)",
        (Alias("tower_temp", "degC"), Alias("TA_F", "degC"), Alias("air_temperature", "degC"),
         Alias("t2m_era5", "K", _k_to_c)),
        (-60.0, 50.0),
    ),
    "shortwave_radiation": Input(
        "shortwave_radiation", "W m-2", "daily mean incoming shortwave radiation (tower, else reanalysis)",
        (Alias("tower_ppfd", "mol m-2 s-1", _ppfd_to_sw), Alias("SW_IN_F", "W m-2"),
         Alias("shortwave_radiation", "W m-2"), Alias("ssrd_era5", "J m-2 d-1", _per_day_to_watts)),
        (0.0, 500.0),
    ),
    "vpd": Input(
        "vpd", "hPa", "daily mean vapour pressure deficit (tower)",
        (Alias("tower_vpd", "Pa", _pa_to_hpa), Alias("VPD_F", "hPa"), Alias("vpd", "hPa")),
        (0.0, 120.0),
    ),
    "lat": Input("lat", "degree_north", "latitude of the site or pixel",
                 (Alias("lat", "degree_north"), Alias("latitude", "degree_north")), (-90.0, 90.0)),
}

#: MCD43A4 mandatory QA values kept: 0 full inversion, 1 magnitude inversion (as ints in cubes,
#: as class names in the AppEEARS-derived tower tables)
_NBAR_QA_OK_NAMES = ("full_inversion", "magnitude_inversion")


# --------------------------------------------------------------------------------------------
# recipes


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """How features are derived for one model kind; stored in the model card.

    Parameters
    ----------
    kind
        ``"gpp_m"`` (daily MODIS NBAR) or ``"gpp_l"`` (Landsat C2 L2).
    gap_days
        NBAR and LST gaps up to this many days are interpolated (``gpp_m`` only).
    smooth_days
        Window of the centred running median applied to NBAR bands (``gpp_m`` only).
    met_windows
        Trailing windows (days) of mean air temperature, radiation and VPD (``gpp_m`` only).
    """

    kind: str
    gap_days: int = 30
    smooth_days: int = 15
    met_windows: tuple[int, ...] = (7, 30)

    def __post_init__(self) -> None:
        if self.kind not in ("gpp_m", "gpp_l"):
            raise SpecError(f"Recipe kind must be 'gpp_m' or 'gpp_l', got {self.kind!r}.")
        if self.gap_days < 0 or self.smooth_days < 1 or any(w < 1 for w in self.met_windows):
            raise SpecError(
                f"Recipe windows must be positive, got gap_days={self.gap_days}, "
                f"smooth_days={self.smooth_days}, met_windows={self.met_windows}."
            )

    @property
    def inputs(self) -> tuple[str, ...]:
        """Canonical inputs this recipe reads (every one must be present, values may be NaN)."""
        met = ("air_temperature", "shortwave_radiation", "vpd", "lat")
        if self.kind == "gpp_m":
            return (*(f"nbar_{r}" for r in _MODIS_ROLES), "lst_day_terra", "lst_day_aqua", *met)
        return (*(f"sr_{r}" for r in _LANDSAT_ROLES), "landsat_st", *met)

    @property
    def optional_inputs(self) -> tuple[str, ...]:
        """Inputs used when present (QA layers); absent means already masked."""
        return tuple(f"nbar_qa_{r}" for r in _MODIS_ROLES) if self.kind == "gpp_m" else ()

    @property
    def features(self) -> tuple[str, ...]:
        """Feature names, in the order the trees see them."""
        bands = [f"b_{r}" for r in (_MODIS_ROLES if self.kind == "gpp_m" else _LANDSAT_ROLES)]
        out = [*bands, "ndvi", "evi", "nirv", "kndvi", "lswi", "nd_swir2", "lst", "doy", "rad_toa",
               "nirv_x_rad_toa", "evi_x_rad_toa", "air_temperature", "shortwave_radiation", "vpd",
               "nirv_x_shortwave"]
        if self.kind == "gpp_m":
            for w in self.met_windows:
                out += [f"air_temperature_{w}d", f"shortwave_radiation_{w}d", f"vpd_{w}d"]
        return tuple(out)

    @property
    def required_features(self) -> tuple[str, ...]:
        """Features without which a row gets NaN GPP: the surface reflectance itself.

        MODIS NBAR bands 2, 4 and 6 are retrieved on days when bands 1, 3, 5 and 7 are not, so
        ``gpp_m`` needs only the NIR band (the trees treat the others as missing); a Landsat
        observation is masked as a whole, so ``gpp_l`` needs red and NIR.
        """
        return ("b_nir",) if self.kind == "gpp_m" else ("b_red", "b_nir")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met_windows": list(self.met_windows)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Recipe:
        return cls(**{**d, "met_windows": tuple(d.get("met_windows", (7, 30)))})

    def __dask_tokenize__(self):
        return ("unique_xr.models.Recipe", tuple(sorted(self.to_dict().items(), key=str)))


RECIPES: dict[str, Recipe] = {"gpp_m": Recipe(kind="gpp_m"), "gpp_l": Recipe(kind="gpp_l")}

FEATURE_UNITS: dict[str, str] = {
    **{f"b_{r}": "1" for r in _MODIS_ROLES},
    "ndvi": "1", "evi": "1", "nirv": "1", "kndvi": "1", "lswi": "1", "nd_swir2": "1",
    "lst": "K", "doy": "day", "rad_toa": "W m-2", "nirv_x_rad_toa": "W m-2", "evi_x_rad_toa": "W m-2",
    "air_temperature": "degC", "shortwave_radiation": "W m-2", "vpd": "hPa", "nirv_x_shortwave": "W m-2",
}


def feature_units(name: str) -> str:
    """Units of a feature name (trailing ``_<n>d`` windows keep the base units)."""
    return FEATURE_UNITS.get(re.sub(r"_\d+d$", "", name), "1")


# --------------------------------------------------------------------------------------------
# resolving inputs


def resolve_inputs(ds: xr.Dataset, recipe: Recipe, *, allow_missing: tuple[str, ...] = (),
                   check_units: bool = True) -> xr.Dataset:
    """Canonical inputs of ``recipe`` from whatever names ``ds`` uses, in canonical units.

    Parameters
    ----------
    ds
        Tower table pivoted to a Dataset, or a cube.
    recipe
        Which inputs to look for.
    allow_missing
        Canonical input names that may be absent; they become all-NaN (an explicit choice, never
        a silent default).
    check_units
        Test each numpy-backed input's median against its valid range (Dask-backed inputs are
        never computed here).

    Raises
    ------
    MissingVariableError
        An input is absent under every alias; the message lists the names accepted.
    UnitsError
        An input's median is outside its valid range (for example reflectance left as DN, or
        temperature in K given under a degC name).
    """
    out: dict[str, xr.DataArray] = {}
    missing: list[str] = []
    template = _template(ds)
    for name in (*recipe.inputs, *recipe.optional_inputs):
        spec = INPUTS[name]
        found = [a for a in spec.aliases if a.name in ds.variables]
        if not found:
            if name in recipe.inputs and name not in allow_missing:
                missing.append(name)
            elif name in recipe.inputs:
                out[name] = xr.full_like(template, np.nan, dtype="float64")
            continue
        combined: xr.DataArray | None = None
        for alias in found:
            da = ds[alias.name]
            if name.startswith("nbar_qa_"):
                da = _nbar_qa_ok(da)
            else:
                da = da.astype("float64")
                if alias.convert is not None:
                    da = alias.convert(da)
                if check_units:
                    _check_units(da, spec, alias)
            combined = da if combined is None else combined.fillna(da)
        out[name] = combined.drop_attrs() if hasattr(combined, "drop_attrs") else combined
    if missing:
        lines = [f"  {m}: one of {', '.join(repr(a.name) for a in INPUTS[m].aliases)}" for m in missing]
        raise MissingVariableError(
            f"The {recipe.kind} model needs inputs that are not in the data ({len(missing)} missing):\n"
            + "\n".join(lines)
            + f"\nVariables seen: {sorted(map(str, ds.data_vars))}.\n"
            "Add or rename the columns; to predict with an input knowingly absent, pass "
            f"allow_missing={tuple(missing)!r} (its values become NaN, which the trees treat as missing)."
        )
    return xr.Dataset(out)


def _template(ds: xr.Dataset) -> xr.DataArray:
    for name in ds.data_vars:
        if set(ds[name].dims) == set(ds.dims):
            return ds[name]
    return next(iter(ds.data_vars.values()))


def _nbar_qa_ok(da: xr.DataArray) -> xr.DataArray:
    if da.dtype.kind in "OUS":
        return da.isin(list(_NBAR_QA_OK_NAMES))
    return (da == 0) | (da == 1)


#: raw fill values of the products (MODIS int16/uint16, FLUXNET) ignored by the unit check; the
#: valid-range masks in :func:`derive_features` remove them
_FILL_VALUES = (32767.0, -32768.0, 65535.0, -9999.0)


def _check_units(da: xr.DataArray, spec: Input, alias: Alias) -> None:
    if spec.valid_range is None or da.chunks is not None:
        return  # cubes are range-checked by the data layer when loaded; never compute here
    values = np.asarray(da.values, dtype="float64")
    lo, hi = spec.valid_range
    check_range(
        values[~np.isin(values, _FILL_VALUES)], spec.name, spec.valid_range,
        message=(f"{alias.name!r} (read as {spec.name}, expected in {alias.units}) has median {{median:.4g}}, "
                 f"outside [{lo}, {hi}] {spec.units} after conversion. Check its units: integer DN not "
                 "scaled, Kelvin given as Celsius, or Pa given as hPa are the usual causes."),
    )


# --------------------------------------------------------------------------------------------
# features


def toa_radiation(lat_deg: Any, doy: Any) -> Any:
    """Daily mean top-of-atmosphere shortwave radiation (W m-2), FAO-56 eq. 21-25.

    .. math::
        R_a = \\frac{S_0}{\\pi} d_r \\left[\\omega_s \\sin\\varphi \\sin\\delta
              + \\cos\\varphi \\cos\\delta \\sin\\omega_s\\right]

    Examples
    --------
    >>> round(float(toa_radiation(0.0, 80)), 0)  # equator, late March
    438.0
    >>> float(toa_radiation(-70.0, 172))  # polar night
    0.0
    """
    doy = np.asarray(doy, dtype="float64") if not isinstance(doy, xr.DataArray) else doy
    phi = np.deg2rad(lat_deg)
    dr = 1 + 0.033 * np.cos(2 * np.pi * doy / 365)
    dec = 0.409 * np.sin(2 * np.pi * doy / 365 - 1.39)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(dec), -1, 1))
    return 1367.0 / np.pi * dr * (ws * np.sin(phi) * np.sin(dec) + np.cos(phi) * np.cos(dec) * np.sin(ws))


def _nd(a: xr.DataArray, b: xr.DataArray) -> xr.DataArray:
    return (a - b) / (a + b)


def _interp_gaps(a: np.ndarray, t: np.ndarray, *, max_gap: float, axis: int = -1) -> np.ndarray:
    """Linear interpolation along ``axis`` across interior NaN runs whose neighbouring values are
    at most ``max_gap`` apart in ``t``; leading and trailing NaN stay.

    Whole-array operations over every series at once. It gives the values of
    ``DataArray.interpolate_na(use_coordinate=True, max_gap=...)`` (``np.interp``'s formula on
    the float nanosecond axis), which loops over the series in Python and was most of the feature
    time on cubes.
    """
    a = np.moveaxis(a, axis, 0)
    n = a.shape[0]
    valid = ~np.isnan(a)
    idx = np.arange(n).reshape((n,) + (1,) * (a.ndim - 1))
    prev = np.maximum.accumulate(np.where(valid, idx, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(valid, idx, n)[::-1], axis=0)[::-1]
    fill = ~valid & (prev >= 0) & (nxt < n)
    prev, nxt = np.clip(prev, 0, n - 1), np.clip(nxt, 0, n - 1)
    x0, x1 = t[prev], t[nxt]
    fill &= (x1 - x0) <= max_gap
    y0, y1 = np.take_along_axis(a, prev, axis=0), np.take_along_axis(a, nxt, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):  # x1 == x0 on valid points: not used
        value = (y1 - y0) / (x1 - x0) * (t.reshape(idx.shape) - x0) + y0
    return np.moveaxis(np.where(fill, value, a), 0, axis)


def fill_gaps(da: xr.DataArray, max_gap_days: float) -> xr.DataArray:
    """Interpolate NaN gaps along ``time`` of at most ``max_gap_days`` between valid neighbours."""
    t = da["time"].values.astype("datetime64[ns]").astype("int64").astype("float64")
    kwargs = {"t": t, "max_gap": max_gap_days * 86400e9}
    if da.chunks is None:  # in place along the time axis, no transposed copy
        return da.copy(data=_interp_gaps(da.values.astype("float64"), axis=da.get_axis_num("time"), **kwargs))
    return xr.apply_ufunc(_interp_gaps, da.astype("float64"), kwargs=kwargs, input_core_dims=[["time"]],
                          output_core_dims=[["time"]], dask="parallelized",
                          output_dtypes=["float64"]).transpose(*da.dims)


def _fill_smooth(da: xr.DataArray, *, gap_days: int, window: int, stat: str) -> xr.DataArray:
    if gap_days > 0:
        da = fill_gaps(da, gap_days + 1)
    if window > 1:
        if stat == "median":
            return centred_median(da, window)
        da = da.rolling(time=window, center=True, min_periods=1).mean()
    return da


def _move_median_centred(a: np.ndarray, window: int) -> np.ndarray:
    """Centred running median along the last axis, NaN ignored, at least one value per window."""
    import bottleneck as bn

    half = (window - 1) // 2  # the window of day i is [i - window + 1 + half, i + half], as in xarray
    n = a.shape[-1]
    # NaN on both sides, so even a series shorter than the window has whole windows
    padded = np.pad(a, [(0, 0)] * (a.ndim - 1) + [(window - 1 - half, half)], constant_values=np.nan)
    return bn.move_median(padded, window, min_count=1, axis=-1)[..., window - 1: window - 1 + n]


def centred_median(da: xr.DataArray, window: int) -> xr.DataArray:
    """``da.rolling(time=window, center=True, min_periods=1).median()``, with bottleneck.

    xarray computes a rolling median by building every window and calling ``nanmedian`` (about
    60x slower here and ``window`` times the memory); bottleneck's moving median gives the same
    values. On Dask input ``time`` must be a single chunk.
    """
    return xr.apply_ufunc(_move_median_centred, da.astype("float64"), kwargs={"window": window},
                          input_core_dims=[["time"]], output_core_dims=[["time"]], dask="parallelized",
                          output_dtypes=["float64"]).transpose(*da.dims)


def derive_features(inputs: xr.Dataset, recipe: Recipe) -> xr.Dataset:
    """Feature variables of ``recipe`` from canonical ``inputs`` (output of :func:`resolve_inputs`).

    ``gpp_m`` needs ``time`` as a regular daily dimension (gaps are filled and windows run along
    it); ``gpp_l`` is pointwise and only needs a ``time`` coordinate for the day of year.
    """
    if "time" not in inputs.coords:
        raise MissingVariableError(f"derive_features needs a 'time' coordinate; got coords {list(inputs.coords)}.")
    feats: dict[str, xr.DataArray] = {}
    if recipe.kind == "gpp_m":
        if "time" not in inputs.dims:
            raise SpecError("The gpp_m recipe needs 'time' as a dimension (a daily axis).")
        bands = {}
        for role in _MODIS_ROLES:
            da = inputs[f"nbar_{role}"]
            qa = inputs.get(f"nbar_qa_{role}")
            if qa is not None:
                da = da.where(qa)
            da = da.where((da > 0) & (da < 1))
            bands[role] = _fill_smooth(da, gap_days=recipe.gap_days, window=recipe.smooth_days, stat="median")
        terra, aqua = inputs["lst_day_terra"], inputs["lst_day_aqua"]
        seen = terra.notnull().astype("float64") + aqua.notnull()
        lst = (terra.fillna(0.0) + aqua.fillna(0.0)) / seen.where(seen > 0)  # the mean of those seen
        lst = _fill_smooth(lst, gap_days=min(recipe.gap_days, 10), window=7, stat="mean")
    else:
        bands = {role: inputs[f"sr_{role}"].where((inputs[f"sr_{role}"] > 0) & (inputs[f"sr_{role}"] < 1))
                 for role in _LANDSAT_ROLES}
        lst = inputs["landsat_st"]
    for role, da in bands.items():
        feats[f"b_{role}"] = da
    red, nir, blue, swir1, swir2 = (bands[r] for r in ("red", "nir", "blue", "swir1", "swir2"))
    ndvi = _nd(nir, red)
    feats["ndvi"] = ndvi
    feats["evi"] = 2.5 * (nir - red) / (nir + 6 * red - 7.5 * blue + 1)
    feats["nirv"] = ndvi * nir
    feats["kndvi"] = np.tanh(ndvi**2)
    feats["lswi"] = _nd(nir, swir1)
    feats["nd_swir2"] = _nd(nir, swir2)
    feats["lst"] = lst
    time = inputs["time"]
    doy = time.dt.dayofyear.astype("float64")
    feats["doy"] = doy
    rad = toa_radiation(inputs["lat"], doy)
    feats["rad_toa"] = rad
    feats["nirv_x_rad_toa"] = feats["nirv"] * rad
    feats["evi_x_rad_toa"] = feats["evi"] * rad
    for name in ("air_temperature", "shortwave_radiation", "vpd"):
        feats[name] = inputs[name]
    feats["nirv_x_shortwave"] = feats["nirv"] * inputs["shortwave_radiation"]
    if recipe.kind == "gpp_m":
        for w in recipe.met_windows:
            for name in ("air_temperature", "shortwave_radiation", "vpd"):
                feats[f"{name}_{w}d"] = inputs[name].rolling(time=w, min_periods=1).mean()
    like = inputs[recipe.inputs[0]]
    ds = xr.Dataset({k: feats[k].broadcast_like(like) for k in recipe.features})
    return ds.transpose(*like.dims)


# --------------------------------------------------------------------------------------------
# tables


def _row_time(df: pd.DataFrame) -> pd.Series:
    for col in ("date", "time", "TIMESTAMP"):
        if col in df.columns:
            return pd.to_datetime(df[col].astype(str) if col == "TIMESTAMP" else df[col]).dt.normalize()
    raise MissingVariableError(f"The table needs a 'date' column; columns seen: {list(df.columns)[:20]}.")


def features_from_table(df: pd.DataFrame, recipe: Recipe, *, allow_missing: tuple[str, ...] = ()) -> pd.DataFrame:
    """Features for every row of a tower table, in row order.

    ``gpp_m`` tables are pivoted to ``(site, time)`` on a regular daily axis per site, so gap
    filling and windows see neighbouring days; ``gpp_l`` tables are treated row by row.
    """
    if "site" not in df.columns:
        raise MissingVariableError(f"The table needs a 'site' column; columns seen: {list(df.columns)[:20]}.")
    time = _row_time(df)
    if time.isna().any():
        raise SpecError(f"{int(time.isna().sum())} rows have no valid date; fix or drop them.")
    if recipe.kind == "gpp_l":
        df = landsat_dn_to_roles(df, recipe)
        ds = xr.Dataset.from_dataframe(df.drop(columns=["date", "time"], errors="ignore").reset_index(drop=True))
        ds = ds.rename({"index": "row"}).assign_coords(time=("row", time.to_numpy()))
        feats = derive_features(resolve_inputs(ds, recipe, allow_missing=allow_missing), recipe)
        return feats.to_dataframe()[list(recipe.features)].reset_index(drop=True)
    key = pd.DataFrame({"site": df["site"].astype(str).to_numpy(), "time": time.to_numpy()})
    numeric = df.drop(columns=["site", "date", "time"], errors="ignore")
    accepted = input_columns(recipe)
    numeric = numeric.loc[:, [c for c in numeric.columns if c in accepted]]
    wide = pd.concat([key, numeric.reset_index(drop=True)], axis=1)
    wide = wide.drop_duplicates(["site", "time"]).set_index(["site", "time"])
    days = pd.date_range(wide.index.get_level_values("time").min(), wide.index.get_level_values("time").max(), freq="D")
    full = pd.MultiIndex.from_product([wide.index.get_level_values("site").unique(), days], names=["site", "time"])
    ds = xr.Dataset.from_dataframe(wide.reindex(full))
    feats = derive_features(resolve_inputs(ds, recipe, allow_missing=allow_missing), recipe)
    flat = feats.to_dataframe()[list(recipe.features)]
    return flat.reindex(pd.MultiIndex.from_frame(key)).reset_index(drop=True)


def input_columns(recipe: Recipe) -> set[str]:
    """Every column name an input of ``recipe`` is accepted under (for ``gpp_l`` also the raw
    Landsat DN and ``QA_PIXEL`` of the tower tables, see :func:`landsat_dn_to_roles`)."""
    names = {a.name for n in (*recipe.inputs, *recipe.optional_inputs) for a in INPUTS[n].aliases}
    return names | set(LANDSAT_RAW_COLUMNS) if recipe.kind == "gpp_l" else names


#: raw Landsat C2 L2 columns of the tower tables (Landsat 4-7 and 8-9 band numbering)
LANDSAT_RAW_COLUMNS = ("QA_PIXEL", *(f"SR_B{i}" for i in range(1, 8)), "ST_B6", "ST_B10")


def landsat_dn_to_roles(df: pd.DataFrame, recipe: Recipe) -> pd.DataFrame:
    """Landsat DN + ``QA_PIXEL`` columns -> cloud-masked reflectance and LST named by role.

    Applies :func:`unique_xr.towers.clear_tower_table` when a ``gpp_l`` input has the raw
    layout of the tower tables (and no role columns yet); anything else is returned as is.
    """
    if recipe.kind != "gpp_l" or "QA_PIXEL" not in df.columns or "red" in df.columns:
        return df
    from unique_xr.towers import clear_tower_table

    return clear_tower_table(df)
