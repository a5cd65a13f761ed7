"""The national-cube job's spec: one frozen, validated value, read from TOML; its token is the job token.

A spec file names a region, a period, where the data come from, the models, how to downscale and
how to cut the work; every key is optional but the region, the period, the meteorology and the
GPP_M model::

    [region]
    bbox = [127.0, 36.0, 127.3, 36.2]     # lon/lat; or bounds = [...] with crs, or geometry = "area.geojson"
    resolution = 30                       # metres; the 30 m grid is snapped to the coarse lattice
    coarse_factor = 16                    # MODIS side on 16 x 30 m = 480 m cells nested in the 30 m grid

    [period]
    start = "2023-01-01"
    end = "2023-12-31"

    [data]
    source = "planetary-computer"         # "earth-search", a STAC API URL, or a local catalog file

    [meteo]
    path = "era5land_2023.nc"

    [models]
    gpp_m = "models/gpp_m"                # folders written by `unique-xr train`
    gpp_l = "models/gpp_l"                # needed when the downscaler is fitted by the job
    downscaler = "fit"                    # or a folder written by `unique-xr downscale fit`

    [downscaling]
    members = 4

    [units]
    size = 2048                           # work-unit side in 30 m pixels (a multiple of [output] chunk)

    [output]
    path = "cube_2023"

Relative paths are relative to the spec file. Errors name the section, the key and the value seen.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from unique_xr.errors import SpecError

__all__ = ["CubeJobSpec", "read_spec", "sample_spec", "SECTIONS"]

#: TOML section -> {key: spec field}
SECTIONS: dict[str, dict[str, str]] = {
    "region": {"bbox": "bbox", "bounds": "bounds", "crs": "crs", "geometry": "geometry",
               "resolution": "resolution", "coarse_factor": "coarse_factor", "anchor": "anchor"},
    "period": {"start": "start", "end": "end"},
    "data": {"source": "source", "engine": "engine", "dem": "dem", "landcover": "landcover"},
    "meteo": {"path": "meteo"},
    "models": {"gpp_m": "gpp_m", "gpp_l": "gpp_l", "downscaler": "downscaler", "allow_missing": "allow_missing",
               "engine": "tree_engine"},
    "downscaling": {"scheme": "scheme", "members": "members", "steps": "steps", "seed": "seed", "device": "device",
                    "fit_preset": "fit_preset", "fit_steps": "fit_steps", "fit_units": "fit_units",
                    "fit_dates": "fit_dates", "prior_days": "prior_days"},
    "units": {"size": "unit_size", "days": "unit_days", "in_flight": "in_flight"},
    "output": {"path": "out", "chunk": "chunk", "time_chunk": "time_chunk", "title": "title",
               "institution": "institution", "references": "references", "comment": "comment"},
}
_WHERE = {f: f"[{section}] {key}" for section, keys in SECTIONS.items() for key, f in keys.items()}
#: fields that do not change a single value of the cube: left out of the job token
_NOT_IN_TOKEN = frozenset({"out", "in_flight", "title", "institution", "references", "comment", "base_dir"})
_PATH_FIELDS = ("geometry", "meteo", "gpp_m", "gpp_l", "downscaler", "out")


def _where(name: str) -> str:
    return _WHERE.get(name, name)


def _fail(name: str, value: Any, problem: str) -> SpecError:
    return SpecError(f"{_where(name)} = {value!r}: {problem}")


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _folder_identity(path: str | None) -> Any:
    """What identifies a model folder's values: the SHA-256 of its card (which records its weights' checksum)."""
    if path is None or path == "fit":
        return path
    for name in ("card.json", "model_card.json"):  # downscaler / LightGBM model folders
        card = Path(path) / name
        if card.is_file():
            return ("card-sha256", _file_digest(card))
    return ("missing", str(path))


@dataclass(frozen=True, kw_only=True)
class CubeJobSpec:
    """What the national-cube job builds (see the module docstring for the TOML layout).

    Parameters
    ----------
    bbox, bounds, crs, geometry
        The region: a lon/lat ``bbox`` (west, south, east, north), or ``bounds`` in ``crs``, or a
        GeoJSON polygon file in lon/lat (pixels outside it are NaN). ``crs`` defaults to the UTM zone
        of the region's centre.
    resolution, coarse_factor, anchor
        The output grid (metres), the nesting factor of the coarse (MODIS, GPP_M) grid, and the
        offset of the lattice edges (15 m keeps Landsat Collection 2 pixel edges at 30 m).
    start, end
        The period, inclusive days ``YYYY-MM-DD``.
    source, engine, dem, landcover
        Where the imagery comes from (``"planetary-computer"``, ``"earth-search"``, a STAC API URL or a
        local catalog), the loader, and the DEM and land-cover collections (the scheme-S2 auxiliaries).
    meteo
        Reanalysis NetCDF/Zarr with the daily drivers.
    gpp_m, gpp_l, downscaler, allow_missing, tree_engine
        Model folders; ``downscaler="fit"`` fits one on the region's own (GPP_M, GPP_L) pairs, which
        needs ``gpp_l``. ``allow_missing``: ``{"gpp_m": [...], "gpp_l": [...]}`` model inputs knowingly absent.
    scheme, members, steps, seed, device
        Downscaling by a downscaler the job fits: ``"s3"`` (fusion: the latest GPP_L before each day,
        its age and the day of year, plus the DEM and land-cover fractions when the data layer has
        them), ``"s2"`` (DEM + land-cover fractions) or ``"s1"``; ensemble size (the output is the
        members' mean), sampler steps (default: the model's; a distilled sampler of that many steps
        is used when the model has one), noise seed, ``"cpu"``/``"cuda"``/``"auto"``. A given
        downscaler folder brings its own scheme.
    prior_days
        Scheme S3: how many days before a work unit's first day its GPP_L history starts (the prior of
        its first days); GPP_L is computed on the Landsat dates from then to the unit's last day.
    fit_preset, fit_steps, fit_units, fit_dates
        A downscaler fitted by the job: :class:`~unique_xr.downscale.config.DownscaleConfig` preset and
        training steps, and how many work units and Landsat dates (spread over the seasons) make its pairs.
    unit_size, unit_days, in_flight
        Work units: square tiles of ``unit_size`` output pixels (a multiple of ``chunk``) x blocks of
        ``unit_days`` days (None: the whole period), and how many are computed at once.
    out, chunk, time_chunk, title, institution, references, comment
        The output folder, the store's chunk side (a multiple of ``coarse_factor``) and days per chunk,
        and global attributes.
    """

    bbox: tuple[float, float, float, float] | None = None
    bounds: tuple[float, float, float, float] | None = None
    crs: str | None = None
    geometry: str | None = None
    resolution: float = 30.0
    coarse_factor: int = 16
    anchor: float = 15.0
    start: str
    end: str
    source: str = "planetary-computer"
    engine: str = "stackstac"
    dem: str | None = "cop-dem-glo-30"
    landcover: str | None = "esa-worldcover"
    meteo: str
    gpp_m: str
    gpp_l: str | None = None
    downscaler: str = "fit"
    allow_missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tree_engine: str = "lightgbm"
    scheme: str = "s3"
    members: int = 4
    steps: int | None = None
    seed: int = 0
    device: str = "cpu"
    fit_preset: str = "cpu"
    fit_steps: int | None = None
    fit_units: int = 4
    fit_dates: int = 8
    prior_days: int = 48
    unit_size: int = 2048
    unit_days: int | None = None
    in_flight: int = 4
    chunk: int = 512
    time_chunk: int = 1
    out: str | None = None
    title: str | None = None
    institution: str = "unknown (set [output] institution)"
    references: str = "EGU26-4160 (UNIQUE); https://github.com/unique-xr/unique_xr"
    comment: str | None = None

    def __post_init__(self) -> None:  # noqa: C901 - one check per key, in key order
        regions = [n for n in ("bbox", "bounds", "geometry") if getattr(self, n) is not None]
        if len(regions) != 1:
            raise SpecError(f"[region] needs exactly one of bbox (lon/lat), bounds (with crs) or geometry (a GeoJSON "
                            f"file); got {regions or 'none'}.")
        for name in ("bbox", "bounds"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                value = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                raise _fail(name, value, "must be four numbers (west/left, south/bottom, east/right, north/top)") from None
            if len(value) != 4 or not all(map(math.isfinite, value)) or value[0] >= value[2] or value[1] >= value[3]:
                raise _fail(name, getattr(self, name), "must be four finite numbers with west < east and south < north")
            object.__setattr__(self, name, value)
        if self.bbox is not None and not (-180 <= self.bbox[0] and self.bbox[2] <= 180 and -90 <= self.bbox[1]
                                          and self.bbox[3] <= 90):
            raise _fail("bbox", list(self.bbox), "is not in degrees of longitude/latitude; for projected bounds use "
                        "bounds = [...] with crs = \"EPSG:...\"")
        if self.bounds is not None and self.crs is None:
            raise _fail("bounds", list(self.bounds), "needs crs (the CRS of the bounds), e.g. crs = \"EPSG:32652\"")
        if self.crs is not None:
            from pyproj import CRS
            from pyproj.exceptions import CRSError as ProjCRSError

            try:
                crs = CRS.from_user_input(self.crs)
            except ProjCRSError as err:
                raise _fail("crs", self.crs, f"is not a CRS pyproj knows ({err})") from None
            if crs.is_geographic:
                raise _fail("crs", self.crs, "is geographic (degrees); the output grid needs a projected CRS in "
                            "metres, e.g. the UTM zone of the region (leave crs out to get it)")
        for name in ("resolution", "anchor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise _fail(name, value, "must be a number of metres")
        object.__setattr__(self, "resolution", float(self.resolution))
        object.__setattr__(self, "anchor", float(self.anchor))
        if self.resolution <= 0:
            raise _fail("resolution", self.resolution, "must be a positive number of metres")
        for name, low in (("coarse_factor", 1), ("members", 1), ("fit_units", 1), ("fit_dates", 1), ("in_flight", 1),
                          ("prior_days", 1), ("chunk", 1), ("time_chunk", 1), ("unit_size", 1), ("seed", 0)):
            _whole(self, name, low)
        for name in ("steps", "fit_steps", "unit_days"):
            if getattr(self, name) is not None:
                _whole(self, name, 1)
        if self.chunk % self.coarse_factor:
            raise _fail("chunk", self.chunk, f"must be a multiple of [region] coarse_factor = {self.coarse_factor} so "
                        "each chunk holds whole coarse cells")
        if self.unit_size % self.chunk:
            raise _fail("unit_size", self.unit_size, f"must be a multiple of [output] chunk = {self.chunk} so units "
                        "write whole chunks")
        if self.unit_days is not None and self.unit_days % self.time_chunk:
            raise _fail("unit_days", self.unit_days, f"must be a multiple of [output] time_chunk = {self.time_chunk} so "
                        "no two units write the same chunk")
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, (dt.date, dt.datetime)):  # an unquoted TOML date
                object.__setattr__(self, name, value.isoformat()[:10])
            try:
                dt.date.fromisoformat(str(getattr(self, name)))
            except ValueError:
                raise _fail(name, getattr(self, name), "is not a day YYYY-MM-DD") from None
        if self.start > self.end:
            raise _fail("end", self.end, f"is before [period] start = {self.start!r}")
        choices = {"engine": ("stackstac", "odc"), "tree_engine": ("lightgbm", "lleaves"), "scheme": ("s1", "s2", "s3"),
                   "device": ("cpu", "cuda", "auto"), "fit_preset": ("quick", "cpu", "large")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise _fail(name, getattr(self, name), f"must be one of {list(allowed)}")
        for name in ("source", "meteo", "gpp_m", "downscaler"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise _fail(name, getattr(self, name), "must be a non-empty string")
        if self.downscaler == "fit" and self.gpp_l is None:
            raise _fail("gpp_l", None, "is needed when [models] downscaler = \"fit\": the job fits the downscaler on "
                        "(GPP_M, GPP_L) pairs; give a GPP_L model folder or a fitted downscaler folder")
        if self.scheme == "s2" and not (self.dem or self.landcover):
            raise _fail("scheme", self.scheme, "conditions on the DEM and land cover; set [data] dem and/or landcover, "
                        "or use scheme = \"s1\"")
        allow = dict(self.allow_missing or {})
        unknown = sorted(set(allow) - {"gpp_m", "gpp_l"})
        if unknown:
            raise _fail("allow_missing", allow, f"has unknown model kinds {unknown}; use gpp_m and gpp_l")
        object.__setattr__(self, "allow_missing",
                           {k: tuple(str(v) for v in allow[k]) for k in sorted(allow)})

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_toml(cls, path: str | os.PathLike, **overrides: Any) -> CubeJobSpec:
        """Read a spec file (see the module docstring); ``overrides`` (field names) win over the file."""
        return read_spec(path, **overrides)

    def replace(self, **changes: Any) -> CubeJobSpec:
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ identity
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (recorded in the store's provenance)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = {k: list(v) for k, v in value.items()}
            out[f.name] = value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def __dask_tokenize__(self):
        values = []
        for f in dataclasses.fields(self):
            if f.name in _NOT_IN_TOKEN:
                continue
            value = getattr(self, f.name)
            if f.name in ("gpp_m", "gpp_l", "downscaler"):
                value = _folder_identity(value)
            elif f.name == "geometry" and value is not None:
                value = ("sha256", _file_digest(Path(value))) if Path(value).is_file() else value
            elif isinstance(value, Mapping):
                value = sorted((k, tuple(v)) for k, v in value.items())
            values.append((f.name, value))
        return ("unique_xr.CubeJobSpec", tuple(values))

    @cached_property
    def token(self) -> str:
        """The job token: equal for specs that give the same cube, value for value."""
        from dask.base import tokenize

        return tokenize(self)

    def differences(self, other: Mapping[str, Any]) -> list[str]:
        """``"[section] key: here X, there Y"`` for every cube-changing field that differs from ``other`` (a to_dict)."""
        mine = self.to_dict()
        out = []
        for name in mine:
            if name in _NOT_IN_TOKEN:
                continue
            if mine[name] != other.get(name):
                out.append(f"{_where(name)}: this spec has {mine[name]!r}, the store's has {other.get(name)!r}")
        return out

    # ------------------------------------------------------------------ derived
    @cached_property
    def grids(self):
        """``(fine, coarse)`` :class:`~unique_xr.grid.GridSpec`: the output grid and the nested coarse one."""
        from unique_xr.grid import GridSpec

        if self.bounds is not None:
            return GridSpec.nested_from_bounds(self.bounds, crs=self.crs, resolution=self.resolution,
                                               factor=self.coarse_factor, anchor=self.anchor)
        bbox = self.bbox if self.bbox is not None else self.region_geometry.bounds
        base = GridSpec.from_bbox(bbox, crs=self.crs or "utm", resolution=self.resolution)
        return base.nested(self.coarse_factor, anchor=self.anchor)

    @cached_property
    def region_geometry(self):
        """The region polygon in lon/lat (shapely), or None for a bbox / bounds region."""
        if self.geometry is None:
            return None
        from unique_xr.load.region import read_polygon

        return read_polygon(self.geometry)

    @property
    def days(self):
        """Every day of the period (pandas DatetimeIndex)."""
        import pandas as pd

        return pd.date_range(self.start, self.end, freq="D")


def _whole(spec: CubeJobSpec, name: str, low: int) -> None:
    value = getattr(spec, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < low:
        raise _fail(name, value, f"must be a whole number >= {low}")
    object.__setattr__(spec, name, int(value))


def read_spec(path: str | os.PathLike, **overrides: Any) -> CubeJobSpec:
    """A :class:`CubeJobSpec` from a TOML file; unknown sections or keys are errors that name them."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"No spec file at {path}; write one (see `unique-xr cube run --help`) or use --sample.") from None
    except IsADirectoryError:
        raise SpecError(f"{path} is a folder; give the spec's TOML file.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path} is not valid TOML: {err}") from None
    values: dict[str, Any] = {}
    for section, table in data.items():
        if section not in SECTIONS:
            raise SpecError(f"{path}: unknown section [{section}]; the sections are {sorted(SECTIONS)}.")
        if not isinstance(table, dict):
            raise SpecError(f"{path}: {section} = {table!r} must be a [{section}] table.")
        for key, value in table.items():
            if key not in SECTIONS[section]:
                raise SpecError(f"{path}: unknown key [{section}] {key} = {value!r}; [{section}] takes "
                                f"{sorted(SECTIONS[section])}.")
            values[SECTIONS[section][key]] = value
    for name in _PATH_FIELDS:  # paths relative to the spec file; the special value "fit" stays
        value = values.get(name)
        if isinstance(value, str) and value != "fit" and not _is_url(value) and not Path(value).is_absolute():
            values[name] = str((path.parent / value).resolve())
    src = values.get("source")
    if isinstance(src, str) and (src.endswith(".json") or src.endswith(".parquet")) and not Path(src).is_absolute():
        values["source"] = str((path.parent / src).resolve())
    values.update({k: v for k, v in overrides.items() if v is not None})
    required = [f.name for f in dataclasses.fields(CubeJobSpec)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    lacking = [_where(n) for n in required if n not in values]
    if lacking:
        raise SpecError(f"{path}: missing {', '.join(lacking)}.")
    return CubeJobSpec(**values)


def _is_url(value: str) -> bool:
    return "://" in value


def sample_spec(out: str | os.PathLike, **overrides: Any) -> CubeJobSpec:
    """The embedded sample region as a job (offline): staged into ``out/inputs``, fitted S3 downscaler, 2 members.

    Twelve units of 128 x 128 px; the downscaler is fitted on three of them (both Landsat days), so
    :func:`unique_xr.pipeline.check.structure_check` has units it was not fitted on.

    The sample's Landsat reflectance is real; its MODIS, meteorology, DEM and land cover are
    synthetic (:func:`unique_xr.sample.stage_sample` says which is which), so the cube shows the
    machinery, not a GPP product.
    """
    from unique_xr.sample import SAMPLE_MISSING_INPUTS, sample_model, stage_sample

    out = Path(out)
    staged = stage_sample(out / "inputs")
    values: dict[str, Any] = dict(
        bounds=staged.grid.bounds, crs=staged.grid.crs, resolution=30.0, coarse_factor=16, anchor=15.0,
        start=staged.dates[0], end=staged.dates[1], source=str(staged.catalog), meteo=str(staged.met_path),
        gpp_m=str(sample_model("gpp_m")), gpp_l=str(sample_model("gpp_l")), downscaler="fit",
        allow_missing=SAMPLE_MISSING_INPUTS, members=2, steps=1, fit_preset="quick", fit_steps=600, fit_units=3,
        fit_dates=2,
        unit_size=128, chunk=128, in_flight=4, out=str(out),
        title="unique-xr sample cube: daily GPP at 30 m over the embedded sample region (the machinery, not a product)",
        comment="The sample region's Landsat reflectance is real (USGS); its MODIS NBAR, meteorology, DEM and land "
                "cover are synthetic (unique_xr.testing.synthetic), so this GPP is not a validated product.",
    )
    values.update(overrides)
    return CubeJobSpec(**values)
