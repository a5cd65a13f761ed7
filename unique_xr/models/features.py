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
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from unique_xr.errors import MissingVariableError, SpecError
from unique_xr.features import engine
from unique_xr.features.engine import feature_matrix, feature_names, radiation_lookup, toa_radiation
from unique_xr.schema import VARIABLES, check_range, sample_for_check
from unique_xr.search.collections import (
    LANDSAT_ASSETS,
    LANDSAT_QA_FILE_BAND,
    LANDSAT_TABLE_COLUMNS,
    MCD43A4_TABLE_COLUMNS,
    MODIS_BAND_ROLES,
    MODIS_LST_TABLE_COLUMNS,
    get_collection,
)

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


def _canonical(variable: str) -> dict[str, Any]:
    """Units and valid range of ``variable`` as :data:`unique_xr.schema.VARIABLES` states them."""
    return {"units": VARIABLES[variable]["units"], "valid_range": VARIABLES[variable]["valid_range"]}


# band numbers, roles and column names come from the collection registry
_NBAR = get_collection("mcd43a4")
_LANDSAT = get_collection("landsat-c2-l2")
#: MCD43A4 band roles in band order (1-7)
_MODIS_ROLES = tuple(MODIS_BAND_ROLES.values())
#: the Landsat reflective bands the data layer loads
_LANDSAT_ROLES = tuple(a.role for a in _LANDSAT.resolve_assets(LANDSAT_ASSETS) if a.kind == "reflectance")


def _band(role: str) -> tuple[Alias, ...]:
    """NBAR ``role`` as the tower tables' column (``Nadir_Reflectance_Band<n>``) or by role."""
    return (Alias(MCD43A4_TABLE_COLUMNS[role][0], "1"), Alias(role, "1"))


INPUTS: dict[str, Input] = {
    **{
        f"nbar_{role}": Input(f"nbar_{role}", description=f"MCD43A4 NBAR reflectance, {role} (band {i})",
                              aliases=_band(role), **_canonical(role))
        for i, role in MODIS_BAND_ROLES.items()
    },
    **{
        f"nbar_qa_{role}": Input(f"nbar_qa_{role}", "1", f"MCD43A4 mandatory QA, {role} (band {i})",
                                 (Alias(MCD43A4_TABLE_COLUMNS[role][1], "class"), Alias(_NBAR.qa_of(role).role, "1")))
        for i, role in MODIS_BAND_ROLES.items()
    },
    "lst_day_terra": Input("lst_day_terra", description="MOD11A1 day land-surface temperature (Terra)",
                           aliases=(Alias(MODIS_LST_TABLE_COLUMNS["lst_day_terra"][0], "K"), Alias("lst_day", "K")),
                           **_canonical("lst_day")),
    "lst_day_aqua": Input("lst_day_aqua", description="MYD11A1 day land-surface temperature (Aqua)",
                          aliases=(Alias(MODIS_LST_TABLE_COLUMNS["lst_day_aqua"][0], "K"), Alias("lst_day_aqua", "K")),
                          **_canonical("lst_day")),
    **{
        f"sr_{role}": Input(f"sr_{role}", description=f"Landsat C2 L2 surface reflectance, {role}",
                            aliases=(Alias(role, "1"),), **_canonical(role))
        for role in _LANDSAT_ROLES
    },
    "landsat_st": Input("landsat_st", description="Landsat C2 L2 surface temperature",
                        aliases=tuple(Alias(a.role, a.units) for a in _LANDSAT.assets if a.kind == "temperature"),
                        **_canonical("lst_day")),
    # schema's -90..60 degC: the records bound every daily mean, so no real site is refused (a
    # narrower -60..50 would refuse the Antarctic plateau), and a median in Kelvin (250-310) still fails
    "air_temperature": Input(
        "air_temperature", description="daily mean air temperature (tower, else reanalysis)",
        aliases=(Alias("tower_temp", "degC"), Alias("TA_F", "degC"), Alias("air_temperature", "degC"),
                 Alias("t2m_era5", "K", _k_to_c)),
        **_canonical("air_temperature"),
    ),
    "shortwave_radiation": Input(
        "shortwave_radiation", description="daily mean incoming shortwave radiation (tower, else reanalysis)",
        aliases=(Alias("tower_ppfd", "mol m-2 s-1", _ppfd_to_sw), Alias("SW_IN_F", "W m-2"),
                 Alias("shortwave_radiation", "W m-2"), Alias("ssrd_era5", "J m-2 d-1", _per_day_to_watts)),
        **_canonical("shortwave_radiation"),
    ),
    "vpd": Input(
        "vpd", description="daily mean vapour pressure deficit (tower)",
        aliases=(Alias("tower_vpd", "Pa", _pa_to_hpa), Alias("VPD_F", "hPa"), Alias("vpd", "hPa")),
        **_canonical("vpd"),
    ),
    "lat": Input("lat", description="latitude of the site or pixel",
                 aliases=(Alias("lat", "degrees_north"), Alias("latitude", "degrees_north")), **_canonical("latitude")),
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
        """Feature names, in the order the trees see them (the columns of the feature engine)."""
        return feature_names(recipe_roles(self), self.met_windows if self.kind == "gpp_m" else ())

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
    template = _template(ds)
    out = resolve_arrays({n: ds[n] for n in ds.variables}, recipe, allow_missing=allow_missing,
                         check_units=check_units, nan_like=lambda: xr.full_like(template, np.nan, dtype="float64"),
                         seen=list(ds.data_vars))
    return xr.Dataset({n: da.drop_attrs() if hasattr(da, "drop_attrs") else da for n, da in out.items()})


def resolve_arrays(columns: Mapping[str, Any], recipe: Recipe, *, allow_missing: tuple[str, ...] = (),
                   check_units: bool = True, nan_like: Callable[[], Any], seen: Sequence[Hashable] | None = None,
                   float64: bool = True) -> dict[str, Any]:
    """:func:`resolve_inputs` on a mapping of arrays (numpy, or DataArrays), without building a Dataset.

    ``nan_like()`` makes the all-NaN array of an input allowed to be missing. With ``float64=False``
    a float32 input that needs no unit conversion is passed as it is (the feature engine reads it
    as float64 without a copy).
    """
    out: dict[str, Any] = {}
    missing: list[str] = []
    for name in (*recipe.inputs, *recipe.optional_inputs):
        spec = INPUTS[name]
        found = [a for a in spec.aliases if a.name in columns]
        if not found:
            if name in recipe.inputs and name not in allow_missing:
                missing.append(name)
            elif name in recipe.inputs:
                out[name] = nan_like()
            continue
        combined = None
        for alias in found:
            da = columns[alias.name]
            if name.startswith("nbar_qa_"):
                da = _nbar_qa_ok(da)
            else:
                if float64 or alias.convert is not None or da.dtype not in (np.float32, np.float64):
                    da = da.astype("float64")
                if alias.convert is not None:
                    da = alias.convert(da)
                if check_units:
                    _check_units(da, spec, alias)
            if combined is None:
                combined = da
            elif isinstance(combined, xr.DataArray):
                combined = combined.fillna(da)
            else:
                combined = np.where(np.isnan(combined), da, combined)
        out[name] = combined
    if missing:
        lines = [f"  {m}: one of {', '.join(repr(a.name) for a in INPUTS[m].aliases)}" for m in missing]
        raise MissingVariableError(
            f"The {recipe.kind} model needs inputs that are not in the data ({len(missing)} missing):\n"
            + "\n".join(lines)
            + f"\nVariables seen: {sorted(map(str, columns if seen is None else seen))}.\n"
            "Add or rename the columns; to predict with an input knowingly absent, pass "
            f"allow_missing={tuple(missing)!r} (its values become NaN, which the trees treat as missing)."
        )
    return out


def _template(ds: xr.Dataset) -> xr.DataArray:
    for name in ds.data_vars:
        if set(ds[name].dims) == set(ds.dims):
            return ds[name]
    return next(iter(ds.data_vars.values()))


def _nbar_qa_ok(da: Any) -> Any:
    if da.dtype.kind in "OUS":
        names = list(_NBAR_QA_OK_NAMES)
        return da.isin(names) if isinstance(da, xr.DataArray) else np.isin(da, names)
    return (da == 0) | (da == 1)


#: raw fill values of the products (MODIS int16/uint16, FLUXNET) ignored by the unit check; the
#: valid-range masks in :func:`derive_features` remove them
_FILL_VALUES = (32767.0, -32768.0, 65535.0, -9999.0)


def _check_units(da: Any, spec: Input, alias: Alias) -> None:
    if spec.valid_range is None or getattr(da, "chunks", None) is not None:
        return  # cubes are range-checked by the data layer when loaded; never compute here
    values = sample_for_check(np.asarray(da, dtype="float64"))
    lo, hi = spec.valid_range
    check_range(
        values[~np.isin(values, _FILL_VALUES)], spec.name, spec.valid_range,
        message=(f"{alias.name!r} (read as {spec.name}, expected in {alias.units}) has median {{median:.4g}}, "
                 f"outside [{lo}, {hi}] {spec.units} after conversion. Check its units: integer DN not "
                 "scaled, Kelvin given as Celsius, or Pa given as hPa are the usual causes."),
    )


# --------------------------------------------------------------------------------------------
# features: the xarray edge of the feature engine (unique_xr.features.engine)


def engine_params(recipe: Recipe, t_unit_days: float = 86400e9) -> dict[str, Any]:
    """Keyword arguments of :func:`unique_xr.features.engine.feature_matrix` for ``recipe``, with
    time in units of ``t_unit_days`` per day (nanoseconds by default)."""
    if recipe.kind == "gpp_m":
        lst_gap = min(recipe.gap_days, 10)
        return {"gap": (recipe.gap_days + 1) * t_unit_days if recipe.gap_days > 0 else 0.0,
                "lst_gap": (lst_gap + 1) * t_unit_days if lst_gap > 0 else 0.0,
                "smooth": recipe.smooth_days, "lst_window": 7, "met_windows": recipe.met_windows}
    return {}


def recipe_roles(recipe: Recipe) -> tuple[str, ...]:
    """Band roles of ``recipe``, in the order of its ``b_*`` features."""
    return _MODIS_ROLES if recipe.kind == "gpp_m" else _LANDSAT_ROLES


def engine_inputs(arrays: Mapping[str, np.ndarray], recipe: Recipe) -> dict[str, Any]:
    """Group canonical inputs (numpy) as :func:`~unique_xr.features.engine.feature_matrix` takes them."""
    roles = recipe_roles(recipe)
    if recipe.kind == "gpp_m":
        bands = [arrays[f"nbar_{r}"] for r in roles]
        # a band without its QA layer passes (already masked)
        qa = ([arrays.get(f"nbar_qa_{r}", np.True_) for r in roles]
              if any(f"nbar_qa_{r}" in arrays for r in roles) else None)
        lst = [arrays["lst_day_terra"], arrays["lst_day_aqua"]]
    else:
        bands, qa, lst = [arrays[f"sr_{r}"] for r in roles], None, [arrays["landsat_st"]]
    return {"bands": bands, "roles": roles, "qa": qa, "lst": lst,
            "met": [arrays[m] for m in ("air_temperature", "shortwave_radiation", "vpd")]}


def _derive_block(*arrays: np.ndarray, names: tuple[str, ...], static: tuple[bool, ...], doy: np.ndarray,
                  t: np.ndarray, recipe: Recipe, along_time: bool) -> np.ndarray:
    """Features of one block: inputs ``(..., time)`` (``(...)`` where ``static``) -> ``(..., time, feature)``."""
    full = np.broadcast_shapes(*(a.shape + ((1,) if s and along_time else ()) for a, s in zip(arrays, static,
                                                                                                strict=True)))
    nt = full[-1] if along_time else int(np.prod(full))
    npix = int(np.prod(full[:-1])) if along_time else 1

    def as_tp(a: np.ndarray, s: bool) -> np.ndarray:  # -> (time, pixel)
        a = np.broadcast_to(a[..., None] if s and along_time else a, full)
        return a.reshape(npix, nt).T if along_time else a.reshape(nt, 1)

    series = {n: as_tp(a, s) for n, a, s in zip(names, arrays, static, strict=True)}
    if along_time and series["lat"].shape[0] and (series["lat"] == series["lat"][:1]).all():
        rad_table, rad_col = radiation_lookup(series["lat"][0], doy)
    else:
        rad_table, rad_col = radiation_lookup(series["lat"], doy)
    X = feature_matrix(**engine_inputs(series, recipe), rad_table=rad_table, rad_col=rad_col, doy=doy, t=t,
                       pixel_major=True, **engine_params(recipe)).X
    return X.reshape(*full, X.shape[-1]) if along_time else X.reshape(*full, 1, X.shape[-1])[..., 0, :]


def derive_features(inputs: xr.Dataset, recipe: Recipe) -> xr.Dataset:
    """Feature variables of ``recipe`` from canonical ``inputs`` (output of :func:`resolve_inputs`).

    ``gpp_m`` needs ``time`` as a regular daily dimension (gaps are filled and windows run along
    it); ``gpp_l`` is pointwise and only needs a ``time`` coordinate for the day of year. The work is
    :func:`unique_xr.features.engine.feature_matrix`; on Dask input, lazily, block by block (time
    in one chunk).
    """
    if "time" not in inputs.coords:
        raise MissingVariableError(f"derive_features needs a 'time' coordinate; got coords {list(inputs.coords)}.")
    along_time = "time" in inputs.dims
    if recipe.kind == "gpp_m" and not along_time:
        raise SpecError("The gpp_m recipe needs 'time' as a dimension (a daily axis).")
    names = tuple(n for n in recipe.inputs + recipe.optional_inputs if n in inputs.data_vars)
    like = inputs[recipe.inputs[0]]
    time = inputs["time"]
    doy = time.dt.dayofyear.values.astype("float64").reshape(-1)
    t = time.values.astype("datetime64[ns]").astype("int64").astype("float64").reshape(-1)
    static = tuple(along_time and "time" not in inputs[n].dims for n in names)
    core = [["time"] if along_time and not s else [] for s in static]
    data = [inputs[n] if along_time else inputs[n].broadcast_like(like) for n in names]
    out = xr.apply_ufunc(
        _derive_block, *data, input_core_dims=core,
        output_core_dims=[(["time"] if along_time else []) + ["feature"]],
        kwargs={"names": names, "static": static, "doy": doy, "t": t, "recipe": recipe, "along_time": along_time},
        dask="parallelized", output_dtypes=["float64"],
        dask_gufunc_kwargs={"output_sizes": {"feature": len(recipe.features)}},
    )
    columns = feature_names(recipe_roles(recipe), recipe.met_windows if recipe.kind == "gpp_m" else ())
    ds = xr.Dataset({f: out.isel(feature=columns.index(f)) for f in recipe.features})
    return ds.transpose(*like.dims).drop_vars("feature", errors="ignore")


def _along_time(func, da: xr.DataArray, **kwargs: Any) -> xr.DataArray:
    return xr.apply_ufunc(func, da.astype("float64"), kwargs=kwargs, input_core_dims=[["time"]],
                          output_core_dims=[["time"]], dask="parallelized",
                          output_dtypes=["float64"]).transpose(*da.dims)


def fill_gaps(da: xr.DataArray, max_gap_days: float) -> xr.DataArray:
    """Interpolate NaN gaps along ``time`` of at most ``max_gap_days`` between valid neighbours."""
    t = da["time"].values.astype("datetime64[ns]").astype("int64").astype("float64")
    return _along_time(engine.fill_gaps, da, t=t, max_gap=max_gap_days * 86400e9)


def centred_median(da: xr.DataArray, window: int) -> xr.DataArray:
    """``da.rolling(time=window, center=True, min_periods=1).median()``, compiled (on Dask input
    ``time`` must be a single chunk)."""
    return _along_time(engine.centred_median, da, window=window)


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
LANDSAT_RAW_COLUMNS = LANDSAT_TABLE_COLUMNS


def has_landsat_dn(columns) -> bool:
    """Whether ``columns`` hold the tower tables' raw Landsat layout (DN + QA band, no role names yet)."""
    return LANDSAT_QA_FILE_BAND in columns and "red" not in columns


def landsat_dn_to_roles(df: pd.DataFrame, recipe: Recipe) -> pd.DataFrame:
    """Landsat DN + ``QA_PIXEL`` columns -> cloud-masked reflectance and LST named by role.

    Applies :func:`unique_xr.towers.clear_tower_table` when a ``gpp_l`` input has the raw
    layout of the tower tables (and no role columns yet); anything else is returned as is.
    """
    if recipe.kind != "gpp_l" or not has_landsat_dn(df.columns):
        return df
    from unique_xr.towers import clear_tower_table

    return clear_tower_table(df)
