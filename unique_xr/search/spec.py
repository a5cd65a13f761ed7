"""The search query: :class:`SearchSpec`, a frozen, validated value with a deterministic token.

Datetimes are normalised to RFC 3339 UTC ranges, bboxes checked, providers resolved (a known name,
a URL or an existing local path); the token keys the on-disk cache and goes into provenance.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from unique_xr.errors import SpecError
from unique_xr.search.collections import PROVIDERS, CollectionSpec, get_collection

__all__ = ["SearchSpec"]

_CACHE_VERSION = 1  # bump when the cache layout changes: old entries then miss instead of misleading


# ------------------------------------------------------------------------------ spec helpers
def _parse_instant(value: Any, *, end: bool) -> _dt.datetime | None:
    """One end of a datetime range as an aware UTC datetime; ``None`` for an open end (``".."``).

    A date without a time covers the whole day (or month / year for ``"2019-01"`` / ``"2019"``):
    as the end of a range it means the last microsecond of that day, month or year.
    """
    import pandas as pd

    if value is None or (isinstance(value, str) and value.strip() in ("", "..")):
        return None
    if isinstance(value, str):
        text = value.strip()
        for fmt, step in (("%Y", "year"), ("%Y-%m", "month"), ("%Y-%m-%d", "day")):
            try:
                start = _dt.datetime.strptime(text, fmt).replace(tzinfo=_dt.UTC)
            except ValueError:
                continue
            if not end:
                return start
            if step == "day":
                nxt = start + _dt.timedelta(days=1)
            elif step == "month":
                nxt = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
            else:
                nxt = start.replace(year=start.year + 1)
            return nxt - _dt.timedelta(microseconds=1)
    elif isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        day = _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.UTC)
        return day + _dt.timedelta(days=1, microseconds=-1) if end else day
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as err:
        raise SpecError(
            f"Could not read {value!r} as a date or time: {err}. Use ISO 8601, e.g. '2019-01-31' or "
            "'2019-01-31T12:00:00Z'."
        ) from err
    if ts is pd.NaT:
        raise SpecError(f"{value!r} is not a date (NaT); use ISO 8601 such as '2019-01-31'.")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def _format_instant(t: _dt.datetime | None) -> str:
    if t is None:
        return ".."
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if t.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def _normalise_datetime(value: Any) -> str | None:
    """``"start/end"`` in RFC 3339 UTC from a range string, a single date, or a ``(start, end)`` pair.

    ``None`` means "at any time" (static layers such as a DEM, whose nominal date says nothing).
    """
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.split("/")
        if len(parts) == 1:
            parts = [parts[0], parts[0]]  # a single date: that whole day (or month / year)
        if len(parts) != 2:
            raise SpecError(f"datetime {value!r} must be 'start/end' (one '/'), e.g. '2019-01-01/2019-01-31'.")
        start_raw, end_raw = parts
    elif isinstance(value, Sequence) and len(value) == 2:
        start_raw, end_raw = value
    else:
        raise SpecError(
            f"datetime must be a range string such as '2019-01-01/2019-01-31' or a (start, end) pair, got {value!r}."
        )
    start, end = _parse_instant(start_raw, end=False), _parse_instant(end_raw, end=True)
    if start is None and end is None:
        raise SpecError("datetime '../..' is open at both ends; give at least a start or an end date.")
    if start is not None and end is not None and start > end:
        raise SpecError(
            f"datetime range is reversed: start {_format_instant(start)} is after end {_format_instant(end)}. "
            "Swap the two dates."
        )
    return f"{_format_instant(start)}/{_format_instant(end)}"


def bbox_2d(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    """``(minx, miny, maxx, maxy)`` of a 2D or 3D (``[w, s, zmin, e, n, zmax]``) STAC bbox."""
    if len(bbox) == 6:
        return (bbox[0], bbox[1], bbox[3], bbox[4])
    return tuple(bbox[:4])


def _normalise_bbox(bbox: Any) -> tuple[float, float, float, float]:
    if hasattr(bbox, "bounds_latlon"):  # a GridSpec: the lon/lat box that covers it
        bbox = bbox.bounds_latlon
    try:
        values = tuple(float(v) for v in bbox)
    except (TypeError, ValueError) as err:
        raise SpecError(f"bbox must be four numbers (west, south, east, north) in degrees, got {bbox!r}.") from err
    if len(values) != 4:
        raise SpecError(
            f"bbox must be four numbers (west, south, east, north) in degrees, got {len(values)}: {bbox!r}."
        )
    west, south, east, north = values
    if not all(math.isfinite(v) for v in values):
        raise SpecError(f"bbox has a non-finite value: {values}.")
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90):
        raise SpecError(
            f"bbox {values} is outside the lon/lat range (-180..180, -90..90). It must be (west, south, east, "
            "north) in degrees (EPSG:4326); did you pass projected coordinates or swap lat and lon?"
        )
    if south > north:
        raise SpecError(f"bbox {values}: south {south} is north of north {north}. Order is (west, south, east, north).")
    if west > east:
        raise SpecError(
            f"bbox {values}: west {west} is east of east {east}. A box crossing the antimeridian is not supported; "
            "run two searches, one on each side of 180 degrees."
        )
    return values


def _canonical_json(value: Any, what: str) -> Any:
    """A JSON-safe deep copy (so the spec cannot change under its token), or a clear error."""
    if value is None:
        return None
    try:
        return json.loads(json.dumps(value, sort_keys=True))
    except (TypeError, ValueError) as err:
        raise SpecError(f"{what} must be JSON-serialisable (plain dicts, lists, numbers, strings): {err}") from err


def _is_url(provider: str) -> bool:
    return provider.startswith(("http://", "https://"))


# --------------------------------------------------------------------------------- the spec
@dataclass(frozen=True, kw_only=True)
class SearchSpec:
    """A STAC search: which collection, where, when, and from whom.

    Parameters
    ----------
    collection
        Registry name (``"mcd43a4"``), provider id (``"modis-43A4-061"``) or alias; stored as the
        registry name.
    bbox
        ``(west, south, east, north)`` in degrees, or a :class:`~unique_xr.grid.GridSpec` (its
        lon/lat cover is used).
    datetime
        ``"2019-01-01/2019-01-31"`` (date-only ends cover whole days; ``".."`` leaves an end open),
        a single date, or a ``(start, end)`` pair of strings / dates / datetimes. Stored as an
        RFC 3339 UTC range. ``None``: any time (for static layers: DEM, land cover).
    provider
        ``"planetary-computer"``, ``"earth-search"``, any STAC API URL, or a local catalog path.
    max_items
        Stop after this many items (None: all).
    query, filter
        Optional STAC ``query`` (``{"eo:cloud_cover": {"lt": 20}}``) and CQL2-JSON/text ``filter``;
        local catalogs support ``query`` only.

    Examples
    --------
    >>> from unique_xr.search.stac import SearchSpec
    >>> spec = SearchSpec(collection="modis-43A4-061", bbox=(177.0, -18.5, 179.0, -17.0),
    ...                   datetime="2025-03-01/2025-03-31")
    >>> spec.collection, spec.datetime
    ('mcd43a4', '2025-03-01T00:00:00Z/2025-03-31T23:59:59.999999Z')
    >>> spec.collection_id
    'modis-43A4-061'
    """

    collection: str
    bbox: tuple[float, float, float, float]
    datetime: str | None
    provider: str = "planetary-computer"
    max_items: int | None = None
    query: dict[str, Any] | None = field(default=None, hash=False)
    filter: dict[str, Any] | str | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        spec = get_collection(self.collection)  # UnknownCollectionError names the known ones
        object.__setattr__(self, "collection", spec.name)
        object.__setattr__(self, "bbox", _normalise_bbox(self.bbox))
        object.__setattr__(self, "datetime", _normalise_datetime(self.datetime))
        if self.datetime is None and spec.cadence not in ("static", "yearly"):
            raise SpecError(
                f"{spec.name!r} is a {spec.cadence} product: give datetime='start/end' "
                "(only static and yearly layers such as a DEM or land cover may be searched at any time)."
            )
        object.__setattr__(self, "provider", self._normalise_provider(self.provider))
        spec.collection_id(self.provider_kind)  # raises if the collection is not on a named provider
        if self.max_items is not None:
            if isinstance(self.max_items, bool) or not isinstance(self.max_items, int) or self.max_items < 1:
                raise SpecError(f"max_items must be a positive integer or None, got {self.max_items!r}.")
        object.__setattr__(self, "query", _canonical_json(self.query, "query"))
        if self.query is not None and not isinstance(self.query, dict):
            raise SpecError(f"query must be a dict such as {{'eo:cloud_cover': {{'lt': 20}}}}, got {self.query!r}.")
        object.__setattr__(self, "filter", _canonical_json(self.filter, "filter"))

    @staticmethod
    def _normalise_provider(provider: Any) -> str:
        if isinstance(provider, os.PathLike):
            provider = os.fspath(provider)
        if not isinstance(provider, str) or not provider.strip():
            raise SpecError(f"provider must be a name, a URL or a path, got {provider!r}.")
        provider = provider.strip()
        if provider in PROVIDERS:
            return provider
        if _is_url(provider):
            return provider.rstrip("/")
        path = Path(provider).expanduser()
        if not path.exists():
            raise SpecError(
                f"provider {provider!r} is not a known provider ({sorted(PROVIDERS)}), not an http(s) URL, and not "
                "an existing local catalog (item / ItemCollection JSON, ndjson, stac-geoparquet or a folder of them)."
            )
        return str(path.resolve())

    # ------------------------------------------------------------------ derived
    @property
    def collection_spec(self) -> CollectionSpec:
        return get_collection(self.collection)

    @property
    def provider_kind(self) -> str:
        """``"planetary-computer"``, ``"earth-search"``, ``"url"`` or ``"local"``."""
        if self.provider in PROVIDERS:
            return self.provider
        return "url" if _is_url(self.provider) else "local"

    @property
    def is_local(self) -> bool:
        return self.provider_kind == "local"

    @property
    def url(self) -> str | None:
        """The STAC API root URL (None for a local catalog)."""
        if self.provider in PROVIDERS:
            return PROVIDERS[self.provider]
        return self.provider if _is_url(self.provider) else None

    @property
    def collection_id(self) -> str:
        """The collection's STAC id on this provider."""
        return self.collection_spec.collection_id(self.provider_kind)

    @property
    def start(self) -> _dt.datetime | None:
        return None if self.datetime is None else _parse_instant(self.datetime.split("/")[0], end=False)

    @property
    def end(self) -> _dt.datetime | None:
        return None if self.datetime is None else _parse_instant(self.datetime.split("/")[1], end=True)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bbox"] = list(self.bbox)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchSpec:
        return cls(**d)

    @property
    def token(self) -> str:
        """A deterministic hash of the query: the cache key, and a provenance attribute for outputs."""
        payload = {
            "v": _CACHE_VERSION,
            "collection_id": self.collection_id,
            "endpoint": self.url or self.provider,
            "bbox": [round(v, 9) for v in self.bbox],
            "datetime": self.datetime,
            "max_items": self.max_items,
            "query": self.query,
            "filter": self.filter,
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def __dask_tokenize__(self):
        return ("unique_xr.SearchSpec", self.token)

    def describe(self) -> str:
        """One line for messages: collection id, provider, bbox and dates."""
        start, end = self.datetime.split("/") if self.datetime else ("..", "..")
        return (
            f"{self.collection_id!r} (registry {self.collection!r}) on {self.provider!r}, "
            f"bbox {self.bbox}, from {start} to {end}"
        )
