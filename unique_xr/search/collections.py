"""A declarative registry of the collections unique_xr searches and loads.

Each :class:`CollectionSpec` says, once, what the rest of the library needs to know about a
product: its STAC collection id on each provider, and for each asset the role it plays (``red``,
``nir``, ``qa``...), the raw dtype, fill value, scale/offset and valid raw range, and which QA
bit layout decodes it. Loaders apply scale/offset *from here* (the recorded Planetary Computer
items lack ``nodata`` on MODIS assets, so the STAC metadata alone is not enough), masks look up
their layout here, and indices find bands by role, so MODIS and Landsat go through the same code.

Sources for fills, scales and ranges: the MODIS C6.1 user guides (MCD43, MOD09, MOD13, MOD11,
MOD15, MOD17) and the Landsat 8-9 / 4-7 Collection 2 Level-2 Science Product guides (USGS).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from unique_xr.errors import SpecError, UnknownAssetError, UnknownCollectionError

__all__ = [
    "AssetSpec",
    "CollectionSpec",
    "PROVIDERS",
    "COLLECTIONS",
    "LANDSAT_FILE_BANDS",
    "LANDSAT_QA_FILE_BAND",
    "LANDSAT_TABLE_COLUMNS",
    "LANDSAT_ASSETS",
    "MCD43A4_TABLE_COLUMNS",
    "MODIS_ASSETS",
    "MODIS_BAND_ROLES",
    "MODIS_LST_TABLE_COLUMNS",
    "INDICES",
    "get_collection",
    "list_collections",
]

#: STAC API roots of the providers unique_xr knows by name. ``search(..., provider=...)`` also
#: takes any other URL, or a local catalog path.
PROVIDERS: dict[str, str] = {
    "planetary-computer": "https://planetarycomputer.microsoft.com/api/stac/v1",
    "earth-search": "https://earth-search.aws.element84.com/v1",
}

QALayout = Literal[
    "landsat_qa_pixel",  # Landsat C2 QA_PIXEL bit flags
    "mcd43a4_mandatory",  # MCD43A4 BRDF_Albedo_Band_Mandatory_Quality (0 full, 1 magnitude, 255 fill)
    "mod09a1_state",  # MOD09A1 500 m state QA bit flags
    "mod13a1_reliability",  # MOD13A1 pixel reliability rank (-1 fill, 0 good, 1 marginal, 2 snow, 3 cloud)
    "mod11a1_qc",  # MOD11A1 QC_Day/QC_Night (bits 0-1 mandatory QA)
]

Kind = Literal["reflectance", "temperature", "index", "qa", "biophysical", "flux", "elevation", "landcover", "angle"]


@dataclass(frozen=True, kw_only=True)
class AssetSpec:
    """One asset (band) of a collection.

    Physical value = raw * ``scale`` + ``offset`` for raw values that are not ``nodata`` and lie
    inside ``valid_range`` (raw units); everything else becomes NaN.
    """

    key: str
    role: str
    kind: Kind
    dtype: str
    nodata: float | None = None
    scale: float = 1.0
    offset: float = 0.0
    valid_range: tuple[float, float] | None = None
    units: str = "1"
    qa_layout: QALayout | None = None
    resolution: float | None = None  # native metres, informational

    def __post_init__(self) -> None:
        if self.scale == 0:
            raise SpecError(f"asset {self.key!r}: scale must be non-zero")
        if self.valid_range is not None and self.valid_range[0] > self.valid_range[1]:
            raise SpecError(f"asset {self.key!r}: valid_range {self.valid_range} is reversed")
        if self.kind == "qa" and self.scale != 1.0:
            raise SpecError(f"asset {self.key!r}: QA assets are bit fields and take no scale")

    @property
    def is_qa(self) -> bool:
        return self.kind == "qa"


@dataclass(frozen=True, kw_only=True)
class CollectionSpec:
    """A product: its ids per provider, its assets, its grid and cadence."""

    name: str
    title: str
    ids: dict[str, str]
    assets: tuple[AssetSpec, ...]
    native_crs: str  # "sinusoidal", "utm", "EPSG:4326"
    resolution: float
    cadence: Literal["daily", "4-day", "8-day", "16-day", "yearly", "static"]
    qa_asset: str | None = None
    default_assets: tuple[str, ...] = ()
    #: further named lists of asset keys, for callers that load other than the defaults
    asset_sets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    _by_key: dict[str, AssetSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_key = {a.key: a for a in self.assets}
        if len(by_key) != len(self.assets):
            raise SpecError(f"collection {self.name!r} has duplicate asset keys")
        roles = [a.role for a in self.assets]
        dup = {r for r in roles if roles.count(r) > 1}
        if dup:
            raise SpecError(f"collection {self.name!r} maps several assets to role(s) {sorted(dup)}")
        named = (key for keys in self.asset_sets.values() for key in keys)
        for key in (*self.default_assets, *named, *((self.qa_asset,) if self.qa_asset else ())):
            if key not in by_key:
                raise SpecError(f"collection {self.name!r}: {key!r} is not one of its assets")
        object.__setattr__(self, "_by_key", by_key)

    def asset(self, key_or_role: str) -> AssetSpec:
        """Look an asset up by STAC key (``"nir08"``) or by role (``"nir"``)."""
        if key_or_role in self._by_key:
            return self._by_key[key_or_role]
        for a in self.assets:
            if a.role == key_or_role:
                return a
        raise UnknownAssetError(
            f"{self.name!r} has no asset or role {key_or_role!r}. "
            f"Asset keys: {sorted(self._by_key)}; roles: {sorted(a.role for a in self.assets)}."
        )

    def qa_of(self, key_or_role: str) -> AssetSpec | None:
        """The QA asset that qualifies this one band alone (role ``qa_<role>``, e.g. MCD43A4's mandatory
        QA per band), or None where the collection's QA covers every band at once (Landsat ``qa_pixel``)."""
        band = self.asset(key_or_role)
        return next((a for a in self.assets if a.is_qa and a.role == f"qa_{band.role}"), None)

    def asset_set(self, name: str) -> tuple[str, ...]:
        """The asset keys of a named set (``"default"``: :attr:`default_assets`)."""
        if name == "default":
            return self.default_assets
        if name not in self.asset_sets:
            raise UnknownAssetError(
                f"{self.name!r} has no asset set {name!r}; it has {['default', *sorted(self.asset_sets)]}."
            )
        return self.asset_sets[name]

    def resolve_assets(self, names: tuple[str, ...] | list[str] | None) -> tuple[AssetSpec, ...]:
        """Asset specs for ``names`` (keys or roles); the defaults when ``names`` is None."""
        keys = tuple(names) if names is not None else self.default_assets
        if not keys:
            raise UnknownAssetError(f"No assets requested for {self.name!r}; choose from {sorted(self._by_key)}.")
        return tuple(self.asset(k) for k in keys)

    def collection_id(self, provider: str) -> str:
        """The STAC collection id on ``provider`` (a name from :data:`PROVIDERS`, or ``"local"``)."""
        if provider in self.ids:
            return self.ids[provider]
        if provider not in PROVIDERS:  # a custom URL or local catalog: assume the Planetary Computer naming
            return self.ids.get("planetary-computer", next(iter(self.ids.values())))
        raise UnknownCollectionError(
            f"{self.name!r} is not available on {provider!r}; it is on {sorted(self.ids)}. "
            f"Use provider={next(iter(self.ids))!r}."
        )

    def __dask_tokenize__(self):
        return ("unique_xr.CollectionSpec", self.name)


def _keys(assets: Iterable[AssetSpec], roles: Iterable[str]) -> tuple[str, ...]:
    by_role = {a.role: a.key for a in assets}
    return tuple(by_role[r] for r in roles)


# ---------------------------------------------------------------------------------------- MODIS
#: MODIS land band number -> role. MCD43A4 NBAR (``Nadir_Reflectance_Band<n>``), its per-band
#: mandatory QA (``BRDF_Albedo_Band_Mandatory_Quality_Band<n>``, role ``qa_<role>``) and MOD09A1
#: (``sur_refl_b0<n>``) number their bands alike.
MODIS_BAND_ROLES: dict[int, str] = {1: "red", 2: "nir", 3: "blue", 4: "green", 5: "nir2", 6: "swir1", 7: "swir2"}
#: The MCD43A4 bands the indices need (NDVI, EVI, NIRv, kNDVI, LSWI): bands 1, 2, 3, 6.
_NBAR_INDEX_ROLES = ("red", "nir", "blue", "swir1")


def _mcd43a4() -> CollectionSpec:
    nbar = tuple(
        AssetSpec(
            key=f"Nadir_Reflectance_Band{b}", role=role, kind="reflectance", dtype="int16",
            nodata=32767, scale=1e-4, valid_range=(0, 32766), resolution=500.0,
        )
        for b, role in MODIS_BAND_ROLES.items()
    )
    qa = tuple(
        AssetSpec(
            key=f"BRDF_Albedo_Band_Mandatory_Quality_Band{b}", role=f"qa_{role}", kind="qa", dtype="uint8",
            nodata=255, valid_range=(0, 1), qa_layout="mcd43a4_mandatory", resolution=500.0,
        )
        for b, role in MODIS_BAND_ROLES.items()
    )
    return CollectionSpec(
        name="mcd43a4", title="MODIS MCD43A4 v6.1 daily 500 m nadir BRDF-adjusted reflectance (NBAR)",
        ids={"planetary-computer": "modis-43A4-061"}, assets=nbar + qa, native_crs="sinusoidal",
        resolution=500.0, cadence="daily",
        # the defaults read the QA of red and nir only (enough to mask NDVI, two reads fewer);
        # "bands_with_qa" reads each band's own QA, so apply_qa_mask masks every band by its QA
        default_assets=_keys(nbar + qa, (*_NBAR_INDEX_ROLES, "qa_red", "qa_nir")),
        asset_sets={"bands_with_qa": _keys(nbar + qa, (*_NBAR_INDEX_ROLES, *(f"qa_{r}" for r in _NBAR_INDEX_ROLES)))},
        qa_asset="BRDF_Albedo_Band_Mandatory_Quality_Band1",
    )


def _mod09a1() -> CollectionSpec:
    sr = tuple(
        AssetSpec(
            key=f"sur_refl_b0{b}", role=role, kind="reflectance", dtype="int16",
            nodata=-28672, scale=1e-4, valid_range=(-100, 16000), resolution=500.0,
        )
        for b, role in MODIS_BAND_ROLES.items()
    )
    extra = (
        AssetSpec(key="sur_refl_state_500m", role="qa_state", kind="qa", dtype="uint16",
                  qa_layout="mod09a1_state", resolution=500.0),
        AssetSpec(key="sur_refl_qc_500m", role="qa_qc", kind="qa", dtype="uint32", resolution=500.0),
        AssetSpec(key="sur_refl_day_of_year", role="day_of_year", kind="angle", dtype="uint16",
                  nodata=65535, valid_range=(1, 366), units="day", resolution=500.0),
    )
    return CollectionSpec(
        name="mod09a1", title="MODIS MOD09A1 v6.1 8-day 500 m surface reflectance",
        ids={"planetary-computer": "modis-09A1-061"}, assets=sr + extra, native_crs="sinusoidal",
        resolution=500.0, cadence="8-day",
        default_assets=("sur_refl_b01", "sur_refl_b02", "sur_refl_b03", "sur_refl_b06", "sur_refl_state_500m"),
        qa_asset="sur_refl_state_500m",
    )


def _mod13a1() -> CollectionSpec:
    p = "500m_16_days_"
    assets = (
        AssetSpec(key=p + "NDVI", role="ndvi", kind="index", dtype="int16", nodata=-3000, scale=1e-4,
                  valid_range=(-2000, 10000), resolution=500.0),
        AssetSpec(key=p + "EVI", role="evi", kind="index", dtype="int16", nodata=-3000, scale=1e-4,
                  valid_range=(-2000, 10000), resolution=500.0),
        AssetSpec(key=p + "red_reflectance", role="red", kind="reflectance", dtype="int16", nodata=-1000,
                  scale=1e-4, valid_range=(0, 10000), resolution=500.0),
        AssetSpec(key=p + "NIR_reflectance", role="nir", kind="reflectance", dtype="int16", nodata=-1000,
                  scale=1e-4, valid_range=(0, 10000), resolution=500.0),
        AssetSpec(key=p + "blue_reflectance", role="blue", kind="reflectance", dtype="int16", nodata=-1000,
                  scale=1e-4, valid_range=(0, 10000), resolution=500.0),
        AssetSpec(key=p + "MIR_reflectance", role="swir2", kind="reflectance", dtype="int16", nodata=-1000,
                  scale=1e-4, valid_range=(0, 10000), resolution=500.0),
        AssetSpec(key=p + "pixel_reliability", role="qa_reliability", kind="qa", dtype="int8", nodata=-1,
                  valid_range=(0, 3), qa_layout="mod13a1_reliability", resolution=500.0),
        AssetSpec(key=p + "VI_Quality", role="qa_vi", kind="qa", dtype="uint16", nodata=65535, resolution=500.0),
        AssetSpec(key=p + "composite_day_of_the_year", role="day_of_year", kind="angle", dtype="int16",
                  nodata=-1, valid_range=(1, 366), units="day", resolution=500.0),
    )
    return CollectionSpec(
        name="mod13a1", title="MODIS MOD13A1 v6.1 16-day 500 m vegetation indices",
        ids={"planetary-computer": "modis-13A1-061"}, assets=assets, native_crs="sinusoidal",
        resolution=500.0, cadence="16-day",
        default_assets=(p + "NDVI", p + "EVI", p + "pixel_reliability"), qa_asset=p + "pixel_reliability",
    )


def _mod11a1() -> CollectionSpec:
    assets = (
        AssetSpec(key="LST_Day_1km", role="lst_day", kind="temperature", dtype="uint16", nodata=0, scale=0.02,
                  valid_range=(7500, 65535), units="K", resolution=1000.0),
        AssetSpec(key="LST_Night_1km", role="lst_night", kind="temperature", dtype="uint16", nodata=0,
                  scale=0.02, valid_range=(7500, 65535), units="K", resolution=1000.0),
        AssetSpec(key="QC_Day", role="qa_day", kind="qa", dtype="uint8", qa_layout="mod11a1_qc", resolution=1000.0),
        AssetSpec(key="QC_Night", role="qa_night", kind="qa", dtype="uint8", qa_layout="mod11a1_qc",
                  resolution=1000.0),
    )
    return CollectionSpec(
        name="mod11a1", title="MODIS MOD11A1 v6.1 daily 1 km land surface temperature",
        ids={"planetary-computer": "modis-11A1-061"}, assets=assets, native_crs="sinusoidal",
        resolution=1000.0, cadence="daily", default_assets=("LST_Day_1km", "LST_Night_1km", "QC_Day"),
        qa_asset="QC_Day",
    )


def _mod15a2h() -> CollectionSpec:
    assets = (
        AssetSpec(key="Lai_500m", role="lai", kind="biophysical", dtype="uint8", nodata=255, scale=0.1,
                  valid_range=(0, 100), units="m2 m-2", resolution=500.0),
        AssetSpec(key="Fpar_500m", role="fpar", kind="biophysical", dtype="uint8", nodata=255, scale=0.01,
                  valid_range=(0, 100), units="1", resolution=500.0),
        AssetSpec(key="FparLai_QC", role="qa_fparlai", kind="qa", dtype="uint8", nodata=255, resolution=500.0),
    )
    return CollectionSpec(
        name="mod15a2h", title="MODIS MOD15A2H v6.1 8-day 500 m LAI/FPAR",
        ids={"planetary-computer": "modis-15A2H-061"}, assets=assets, native_crs="sinusoidal",
        resolution=500.0, cadence="8-day", default_assets=("Lai_500m", "Fpar_500m", "FparLai_QC"),
        qa_asset="FparLai_QC",
    )


def _mod17a2h() -> CollectionSpec:
    # Gpp_500m is kg C m-2 per 8-day composite; 1 kg C m-2 / 8 d = 125 g C m-2 d-1, so scale 1e-4 kg -> 0.0125 g/d.
    assets = (
        AssetSpec(key="Gpp_500m", role="gpp_mod17", kind="flux", dtype="int16", nodata=32767, scale=1e-4 * 1000 / 8,
                  valid_range=(0, 30000), units="g m-2 d-1", resolution=500.0),
        AssetSpec(key="PsnNet_500m", role="psnnet_mod17", kind="flux", dtype="int16", nodata=32767,
                  scale=1e-4 * 1000 / 8, valid_range=(-30000, 30000), units="g m-2 d-1", resolution=500.0),
        AssetSpec(key="Psn_QC_500m", role="qa_psn", kind="qa", dtype="uint8", nodata=255, resolution=500.0),
    )
    return CollectionSpec(
        name="mod17a2h", title="MODIS MOD17A2H v6.1 8-day 500 m GPP (converted to daily mean g C m-2 d-1)",
        ids={"planetary-computer": "modis-17A2H-061"}, assets=assets, native_crs="sinusoidal",
        resolution=500.0, cadence="8-day", default_assets=("Gpp_500m", "Psn_QC_500m"), qa_asset="Psn_QC_500m",
    )


# -------------------------------------------------------------------------------------- Landsat
#: Which file band (SR_Bn / ST_Bn) carries each role, per platform (Collection 2 Level-2). The STAC
#: asset keys are the same common names on every platform; tower tables and raw downloads use these.
#: The Landsat 8-9 numbering is the one with the thermal band ``ST_B10``.
LANDSAT_FILE_BANDS: dict[str, dict[str, str]] = {
    **{p: {"blue": "SR_B1", "green": "SR_B2", "red": "SR_B3", "nir": "SR_B4", "swir1": "SR_B5",
           "swir2": "SR_B7", "lst_day": "ST_B6"} for p in ("landsat-4", "landsat-5", "landsat-7")},
    **{p: {"coastal": "SR_B1", "blue": "SR_B2", "green": "SR_B3", "red": "SR_B4", "nir": "SR_B5",
           "swir1": "SR_B6", "swir2": "SR_B7", "lst_day": "ST_B10"} for p in ("landsat-8", "landsat-9")},
}
#: The file band of the ``qa_pixel`` asset on every platform.
LANDSAT_QA_FILE_BAND = "QA_PIXEL"


def _landsat_c2_l2() -> CollectionSpec:
    sr = dict(kind="reflectance", dtype="uint16", nodata=0, scale=2.75e-5, offset=-0.2,
              valid_range=(7273, 43636), resolution=30.0)
    assets = (
        AssetSpec(key="coastal", role="coastal", **sr),
        AssetSpec(key="blue", role="blue", **sr),
        AssetSpec(key="green", role="green", **sr),
        AssetSpec(key="red", role="red", **sr),
        AssetSpec(key="nir08", role="nir", **sr),
        AssetSpec(key="swir16", role="swir1", **sr),
        AssetSpec(key="swir22", role="swir2", **sr),
        # Landsat 8-9 name the thermal band lwir11, Landsat 4-7 lwir; both are ST in Kelvin
        AssetSpec(key="lwir11", role="lst_day", kind="temperature", dtype="uint16", nodata=0, scale=0.00341802,
                  offset=149.0, valid_range=(293, 61440), units="K", resolution=30.0),
        AssetSpec(key="lwir", role="lst_day_l457", kind="temperature", dtype="uint16", nodata=0,
                  scale=0.00341802, offset=149.0, valid_range=(293, 61440), units="K", resolution=30.0),
        AssetSpec(key="qa_pixel", role="qa_pixel", kind="qa", dtype="uint16", nodata=1,
                  qa_layout="landsat_qa_pixel", resolution=30.0),
        AssetSpec(key="qa_radsat", role="qa_radsat", kind="qa", dtype="uint16", resolution=30.0),
    )
    return CollectionSpec(
        name="landsat-c2-l2", title="Landsat 4-9 Collection 2 Level-2 surface reflectance and temperature (30 m)",
        ids={"planetary-computer": "landsat-c2-l2", "earth-search": "landsat-c2-l2"}, assets=assets,
        native_crs="utm", resolution=30.0, cadence="16-day",
        default_assets=("blue", "green", "red", "nir08", "swir16", "swir22", "qa_pixel"), qa_asset="qa_pixel",
    )


# ----------------------------------------------------------------------------- static layers
def _dem(name: str, title: str, ids: dict[str, str], key: str, dtype: str, nodata: float) -> CollectionSpec:
    return CollectionSpec(
        name=name, title=title, ids=ids,
        assets=(AssetSpec(key=key, role="elevation", kind="elevation", dtype=dtype, nodata=nodata,
                          valid_range=(-500, 9000), units="m", resolution=30.0),),
        native_crs="EPSG:4326", resolution=30.0, cadence="static", default_assets=(key,),
    )


#: ESA WorldCover v200 class codes -> names (the ``map`` asset).
ESA_WORLDCOVER_CLASSES: dict[int, str] = {
    10: "tree_cover", 20: "shrubland", 30: "grassland", 40: "cropland", 50: "built_up",
    60: "bare_sparse_vegetation", 70: "snow_and_ice", 80: "permanent_water", 90: "herbaceous_wetland",
    95: "mangroves", 100: "moss_and_lichen",
}
#: Impact Observatory / Esri 10 m land use land cover (io-lulc, 9-class v1) class codes -> names.
IO_LULC_CLASSES: dict[int, str] = {
    1: "water", 2: "trees", 3: "grass", 4: "flooded_vegetation", 5: "crops", 6: "scrub_shrub",
    7: "built_area", 8: "bare_ground", 9: "snow_ice", 10: "clouds",
}


def _landcover(name: str, title: str, ids: dict[str, str], key: str, nodata: int) -> CollectionSpec:
    return CollectionSpec(
        name=name, title=title, ids=ids,
        assets=(AssetSpec(key=key, role="landcover", kind="landcover", dtype="uint8", nodata=nodata,
                          units="1", resolution=10.0),),
        native_crs="EPSG:4326" if name == "esa-worldcover" else "utm", resolution=10.0, cadence="yearly",
        default_assets=(key,),
    )


def _build() -> dict[str, CollectionSpec]:
    specs = [
        _mcd43a4(), _mod09a1(), _mod13a1(), _mod11a1(), _mod15a2h(), _mod17a2h(), _landsat_c2_l2(),
        _dem("cop-dem-glo-30", "Copernicus GLO-30 DEM (30 m)",
             {"planetary-computer": "cop-dem-glo-30", "earth-search": "cop-dem-glo-30"}, "data", "float32", -32767.0),
        _dem("nasadem", "NASADEM elevation (1 arc-second)", {"planetary-computer": "nasadem"}, "elevation",
             "int16", -32768.0),
        _landcover("esa-worldcover", "ESA WorldCover 10 m land cover", {"planetary-computer": "esa-worldcover"},
                   "map", 0),
        _landcover("io-lulc", "Esri / Impact Observatory 10 m land use land cover", {"planetary-computer": "io-lulc"},
                   "data", 0),
    ]
    return {s.name: s for s in specs}


COLLECTIONS: dict[str, CollectionSpec] = _build()

#: Alternative spellings users type: the provider ids and the MODIS short names.
_ALIASES: dict[str, str] = {
    **{cid: spec.name for spec in COLLECTIONS.values() for cid in spec.ids.values()},
    "modis-nbar": "mcd43a4", "landsat": "landsat-c2-l2", "landsat-c2l2": "landsat-c2-l2",
}

#: The Landsat C2 L2 assets the data layer loads: the defaults, the six reflective bands and the pixel QA.
LANDSAT_ASSETS = COLLECTIONS["landsat-c2-l2"].default_assets
#: The MCD43A4 assets the data layer loads: NBAR of bands 1, 2, 3, 6, each with its own mandatory QA
#: (the ``bands_with_qa`` set; the defaults read the QA of bands 1 and 2 only).
MODIS_ASSETS = COLLECTIONS["mcd43a4"].asset_set("bands_with_qa")

# ------------------------------------------------------------------- tower-table column names
#: MCD43A4 role -> (NBAR column, mandatory-QA column) in the tower-pixel tables
#: (:mod:`unique_xr.towers.tables`, AppEEARS point samples), in band order: the NBAR column is
#: the asset key with values already scaled to reflectance; ``QA_Band<n>`` holds the QA class name
#: (``full_inversion``, ``magnitude_inversion``, ``*fill``).
MCD43A4_TABLE_COLUMNS: dict[str, tuple[str, str]] = {
    a.role: (a.key, "QA_" + a.key.removeprefix("Nadir_Reflectance_"))
    for a in COLLECTIONS["mcd43a4"].assets if a.kind == "reflectance"
}
#: MOD11A1 (Terra) / MYD11A1 (Aqua) day LST in the tower-pixel tables: role -> (LST column in K,
#: QA column holding ``good``, ``other_quality``, ``not_produced_cloud``).
_LST_KEY = COLLECTIONS["mod11a1"].asset("lst_day").key
MODIS_LST_TABLE_COLUMNS: dict[str, tuple[str, str]] = {
    f"lst_day_{platform.lower()}": (f"{_LST_KEY}_{platform}", f"{_LST_KEY}_{platform}_QA")
    for platform in ("Terra", "Aqua")
}


def _band_number(file_band: str) -> int:
    return int(file_band.rsplit("_B", 1)[1])


#: Every raw Landsat column of the tower-pixel tables: ``QA_PIXEL``, then the SR and ST file bands of
#: all platforms by band number (Landsat 4-7 and 8-9 numbering).
LANDSAT_TABLE_COLUMNS: tuple[str, ...] = (LANDSAT_QA_FILE_BAND, *(
    band for prefix in ("SR_B", "ST_B")
    for band in sorted({b for bands in LANDSAT_FILE_BANDS.values() for b in bands.values() if b.startswith(prefix)},
                       key=_band_number)
))
#: The vegetation indices the data layer adds to the Landsat cube (see unique_xr.features.indices).
INDICES = ("ndvi", "evi", "evi2", "nirv", "kndvi", "lswi")


def get_collection(name: str | CollectionSpec) -> CollectionSpec:
    """Look up a collection by registry name (``"mcd43a4"``), provider id (``"modis-43A4-061"``) or alias.

    Examples
    --------
    >>> from unique_xr.search.collections import get_collection
    >>> get_collection("modis-43A4-061").asset("nir").key
    'Nadir_Reflectance_Band2'
    """
    if isinstance(name, CollectionSpec):
        return name
    key = str(name).strip()
    spec = COLLECTIONS.get(key) or COLLECTIONS.get(key.lower()) or COLLECTIONS.get(_ALIASES.get(key, ""))
    if spec is None:
        raise UnknownCollectionError(
            f"Unknown collection {name!r}. Known: {sorted(COLLECTIONS)} "
            f"(provider ids such as {sorted(_ALIASES)[:4]}... work too)."
        )
    return spec


def list_collections() -> list[str]:
    """Registry names of every collection."""
    return sorted(COLLECTIONS)
