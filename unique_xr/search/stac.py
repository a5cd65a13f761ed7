"""Search a STAC API or a local catalog for the items of one registry collection.

:class:`SearchSpec` is the query (collection, area, dates, provider) as a frozen, validated value
with a deterministic :attr:`~SearchSpec.token`; :func:`search` runs it and returns a
:class:`pystac.ItemCollection`, sorted by time then id.

* A STAC API (``"planetary-computer"``, ``"earth-search"`` or any URL) is searched with
  pystac-client through a ``requests`` session that retries 429/500/502/503/504 with exponential
  backoff. Results are cached on disk as ItemCollection JSON keyed by the spec token, so a second
  run of the same query needs no network.
* A local catalog (an item JSON, an ItemCollection / FeatureCollection JSON, a JSON list of items,
  newline-delimited JSON, stac-geoparquet, or a folder of these) is read with rustac (geoparquet)
  or the json module and filtered here by collection, bbox, datetime and ``query``. Local catalogs
  are not cached: reading them is as cheap as reading a cache, and they change under the user.

The search never signs hrefs. Signing (Planetary Computer's SAS tokens) is a read-time concern:
:func:`signer_for` gives the loader a ``Callable[[str], str]`` to apply to each href as it opens it,
so the Dask graph holds unsigned, token-free URLs that do not expire.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unique_xr._optional import import_optional
from unique_xr.errors import EmptySearchError, MissingDependencyError, SearchError, SpecError
from unique_xr.search.collections import PROVIDERS, CollectionSpec, get_collection

if TYPE_CHECKING:  # pragma: no cover
    import pystac

__all__ = [
    "SearchSpec",
    "search",
    "read_local_items",
    "default_cache_dir",
    "planetary_computer_signer",
    "signer_for",
    "RETRY_STATUS_CODES",
]

#: HTTP answers that are worth retrying (rate limit and transient server errors).
RETRY_STATUS_CODES: tuple[int, ...] = (429, 500, 502, 503, 504)
_LOCAL_SUFFIXES = (".json", ".geojson", ".ndjson", ".jsonl", ".parquet", ".geoparquet")
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


# --------------------------------------------------------------------------------- search
def default_cache_dir() -> Path:
    """``$UNIQUE_XR_CACHE_DIR/search`` if set, else ``~/.cache/unique_xr/search``."""
    root = os.environ.get("UNIQUE_XR_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "unique_xr"
    return base / "search"


def search(
    collection: str | CollectionSpec | SearchSpec,
    *,
    bbox: Any = None,
    datetime: Any = None,
    provider: str | os.PathLike = "planetary-computer",
    max_items: int | None = None,
    query: dict[str, Any] | None = None,
    filter: dict[str, Any] | str | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    retries: int = 5,
    backoff_factor: float = 0.5,
    timeout: float = 60.0,
) -> pystac.ItemCollection:
    """Search a STAC API or a local catalog; return the matching items, sorted by time then id.

    Parameters
    ----------
    collection
        A registry name / provider id / alias, or a ready :class:`SearchSpec` (then leave ``bbox``,
        ``datetime``, ``query`` and ``filter`` unset).
    bbox, datetime, provider, max_items, query, filter
        See :class:`SearchSpec`.
    cache
        Reuse and write the on-disk cache of API results (local catalogs are never cached).
    cache_dir
        Cache folder; default :func:`default_cache_dir`.
    retries, backoff_factor
        urllib3 retries on connection errors and on HTTP 429/500/502/503/504, waiting
        ``backoff_factor * 2**n`` seconds between tries.
    timeout
        Seconds to wait for each HTTP answer.

    Returns
    -------
    pystac.ItemCollection
        Item hrefs are as the provider gives them (unsigned); see :func:`signer_for`.

    Raises
    ------
    EmptySearchError
        Nothing matched; the message names collection, provider, area and dates.
    UnknownCollectionError
        The collection is not in the registry (or not on the named provider).
    SearchError
        The API could not be reached or kept failing after ``retries``.
    SpecError
        Bad bbox, datetime, provider or query.

    Examples
    --------
    >>> import tempfile
    >>> from unique_xr.testing.recorded import recorded_items, write_item_collection
    >>> catalog = write_item_collection(recorded_items("mcd43a4"), tempfile.mkdtemp() + "/catalog.json")
    >>> items = search("mcd43a4", bbox=(177.0, -18.5, 179.0, -17.0), datetime="2025-03-01/2025-03-31",
    ...                provider=catalog)
    >>> [item.id for item in items]
    ['MCD43A4.A2025061.h35v10.061.2025070035331']
    """
    if isinstance(collection, SearchSpec):
        given = {"bbox": bbox, "datetime": datetime, "max_items": max_items, "query": query, "filter": filter}
        clash = sorted(k for k, v in given.items() if v is not None)
        if clash:
            raise SpecError(f"search() got a SearchSpec and also {clash}; put those in the spec instead.")
        spec = collection
    else:
        if bbox is None:
            raise SpecError("search() needs bbox=(west, south, east, north) and datetime='start/end'.")
        name = collection.name if isinstance(collection, CollectionSpec) else collection
        spec = SearchSpec(collection=name, bbox=bbox, datetime=datetime, provider=provider,
                          max_items=max_items, query=query, filter=filter)

    pystac = import_optional("pystac", purpose="STAC search")
    if spec.is_local:
        items = _search_local(spec)
        if not items:
            raise EmptySearchError(_empty_message(spec, catalog=read_local_items(spec.provider)))
        # migrate=True: the same STAC version and extension versions as pystac-client gives from an API
        return pystac.ItemCollection([pystac.Item.from_dict(d, preserve_dict=False, migrate=True) for d in items],
                                     extra_fields={"unique_xr:search": spec.to_dict()})

    path = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = path / f"{spec.token}.json"
    if cache:
        cached = _read_cache(path, spec)
        if cached is not None:
            return cached
    found = [it for it in _search_api(spec, retries=retries, backoff_factor=backoff_factor, timeout=timeout)
             if _nominal_day_in_range(it.to_dict(include_self_link=False, transform_hrefs=False), spec)]
    if not found:
        raise EmptySearchError(_empty_message(spec))
    result = pystac.ItemCollection(_sorted(found), extra_fields={"unique_xr:search": spec.to_dict()})
    if cache:
        _write_cache(path, result)
    return result


def _sort_key(item: Any) -> tuple[str, str]:
    props = item["properties"] if isinstance(item, dict) else item.properties
    ident = item["id"] if isinstance(item, dict) else item.id
    when = props.get("datetime") or props.get("start_datetime") or ""
    start = _parse_instant(when, end=False) if when else None
    return (_format_instant(start) if start else "", ident)


def _sorted(items: Iterable[Any]) -> list[Any]:
    return sorted(items, key=_sort_key)


# ------------------------------------------------------------------------------- STAC API
def _api_io(*, retries: int, backoff_factor: float, timeout: float):
    from pystac_client.stac_api_io import StacApiIO
    from urllib3.util.retry import Retry

    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff_factor,
        status_forcelist=RETRY_STATUS_CODES,
        allowed_methods=None,  # a search POST is a read: retry it too
        respect_retry_after_header=True,
        raise_on_status=True,
    )
    return StacApiIO(max_retries=retry if retries > 0 else None, timeout=timeout)


def _search_api(spec: SearchSpec, *, retries: int, backoff_factor: float, timeout: float) -> list[Any]:
    pystac_client = import_optional("pystac_client", purpose="searching a STAC API")
    from pystac.errors import STACError
    from pystac_client.exceptions import APIError

    url = spec.url
    assert url is not None
    kwargs: dict[str, Any] = {
        "collections": [spec.collection_id],
        "bbox": list(spec.bbox),
        "datetime": spec.datetime,
        "max_items": spec.max_items,
    }
    if spec.query is not None:
        kwargs["query"] = spec.query
    if spec.filter is not None:
        kwargs["filter"] = spec.filter
    try:
        client = pystac_client.Client.open(
            url, stac_io=_api_io(retries=retries, backoff_factor=backoff_factor, timeout=timeout)
        )
        return list(client.search(**kwargs).items())
    except (APIError, OSError, STACError, ValueError) as err:  # ValueError: an answer that is not JSON
        raise SearchError(
            f"The STAC API at {url} could not answer the search for {spec.describe()} "
            f"(after up to {retries} retries): {err}. Check the URL and your connection, or retry later; "
            "results already found are cached, so a repeated call is cheap."
        ) from err
    except NotImplementedError as err:  # pystac-client: the API lacks a conformance class (query, filter...)
        raise SearchError(f"The STAC API at {url} cannot run this search: {err}") from err


# ---------------------------------------------------------------------------------- cache
def _read_cache(path: Path, spec: SearchSpec) -> pystac.ItemCollection | None:
    import pystac

    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        stored = data.get("unique_xr:search")
        if not isinstance(stored, dict) or SearchSpec.from_dict(stored).token != spec.token:
            raise ValueError("the stored search spec does not match this query")
        result = pystac.ItemCollection.from_dict(data, preserve_dict=False)
        if len(result) == 0:
            raise ValueError("it holds no items")
        return result
    except Exception as err:  # any unreadable entry is a miss, never a failure
        warnings.warn(
            f"Ignoring the corrupt search cache file {path} ({type(err).__name__}: {err}); "
            "searching again and rewriting it.",
            UserWarning,
            stacklevel=3,
        )
        return None


def _write_cache(path: Path, items: pystac.ItemCollection) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(items.to_dict(transform_hrefs=False)))
    os.replace(tmp, path)  # atomic: a reader never sees half a file


# ---------------------------------------------------------------------------- local catalog
def read_local_items(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every item in a local catalog, as dicts.

    ``path`` is an item JSON, an ItemCollection / FeatureCollection JSON, a JSON list of items,
    newline-delimited JSON (``.ndjson`` / ``.jsonl``), stac-geoparquet (``.parquet`` /
    ``.geoparquet``, read with rustac), a STAC Catalog / Collection JSON (its items, read with
    pystac), or a folder holding any of these (searched recursively).
    """
    path = Path(path)
    if path.is_dir():
        items: list[dict[str, Any]] = []
        for f in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _LOCAL_SUFFIXES):
            items.extend(read_local_items(f))
        return items
    return [_absolute_hrefs(item, path.parent) for item in _read_catalog_file(path)]


def _absolute_hrefs(item: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative asset hrefs (``"./B4.tif"``) resolved against the catalog file's folder."""
    for asset in (item.get("assets") or {}).values():
        href = asset.get("href")
        if isinstance(href, str) and href and "://" not in href and not Path(href).is_absolute():
            asset["href"] = str((base / href).resolve())
    return item


def _read_catalog_file(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".geoparquet"):
            rustac = import_optional("rustac", purpose="reading stac-geoparquet")
            return list(rustac.read_sync(str(path)).get("features", []))
        if suffix in (".ndjson", ".jsonl"):
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SpecError(f"Could not read the local STAC catalog {path}: {err}") from err
    except Exception as err:  # rustac raises its own error type for a bad parquet file
        raise SpecError(f"Could not read the local STAC catalog {path}: {type(err).__name__}: {err}") from err
    if isinstance(data, list):
        return [d for d in data if isinstance(d, dict) and d.get("type") == "Feature"]
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "Feature":
        return [data]
    if kind == "FeatureCollection":
        return list(data.get("features", []))
    if kind in ("Catalog", "Collection"):
        import pystac

        catalog = pystac.read_file(str(path))
        items = []
        for item in catalog.get_items(recursive=True):
            item.make_asset_hrefs_absolute()
            items.append(item.to_dict(transform_hrefs=False))
        return items
    return []  # some other JSON file in a folder: not STAC


def _item_interval(props: Mapping[str, Any]) -> tuple[_dt.datetime | None, _dt.datetime | None]:
    start = props.get("start_datetime") or props.get("datetime")
    end = props.get("end_datetime") or props.get("datetime")
    return (_parse_instant(start, end=False) if start else None, _parse_instant(end, end=False) if end else None)


def _nominal_day_in_range(item: Mapping[str, Any], spec: SearchSpec) -> bool:
    """For daily products, whether the item's nominal day (``start_datetime``, else ``datetime``) is in range.

    A STAC API returns every item whose [start, end] interval *overlaps* the query. For daily
    products that is too much: Planetary Computer's MCD43A4 items span the 8 days after their
    nominal date (A2025061 -> 2025-03-02 to 03-09), so a search for 1-3 June would also bring the
    daily maps of 25-31 May. Composites (8-day, 16-day, yearly) keep the overlap rule.
    """
    if spec.datetime is None or spec.collection_spec.cadence != "daily":
        return True
    props = item.get("properties", {})
    nominal = props.get("start_datetime") or props.get("datetime")
    if not nominal:
        return False
    when = _parse_instant(nominal, end=False)
    return (spec.start is None or when >= spec.start) and (spec.end is None or when <= spec.end)


def _matches_time(item: Mapping[str, Any], spec: SearchSpec) -> bool:
    """STAC API semantics: the item's instant, or its [start, end] interval, overlaps the query range
    (and, for daily products, the nominal day lies in the range: see :func:`_nominal_day_in_range`)."""
    if spec.datetime is None:
        return True
    if not _nominal_day_in_range(item, spec):
        return False
    item_start, item_end = _item_interval(item.get("properties", {}))
    if item_start is None or item_end is None:
        return False
    q_start, q_end = spec.start, spec.end
    return (q_end is None or item_start <= q_end) and (q_start is None or item_end >= q_start)


def _matches_bbox(item: Mapping[str, Any], spec: SearchSpec) -> bool:
    from shapely.geometry import box, shape

    query = box(*spec.bbox)
    geometry = item.get("geometry")
    if geometry:
        try:
            return bool(shape(geometry).intersects(query))
        except Exception:  # noqa: BLE001  a malformed geometry: fall back on the bbox
            pass
    ib = item.get("bbox")
    if not ib or len(ib) < 4:
        return False
    w, s, e, n = (ib[0], ib[1], ib[3], ib[4]) if len(ib) == 6 else tuple(ib[:4])
    return bool(box(w, s, e, n).intersects(query))


_QUERY_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "neq": lambda a, b: a != b,
    "lt": lambda a, b: a is not None and a < b,
    "lte": lambda a, b: a is not None and a <= b,
    "gt": lambda a, b: a is not None and a > b,
    "gte": lambda a, b: a is not None and a >= b,
    "in": lambda a, b: a in b,
    "startsWith": lambda a, b: isinstance(a, str) and a.startswith(b),
    "endsWith": lambda a, b: isinstance(a, str) and a.endswith(b),
    "contains": lambda a, b: isinstance(a, str) and b in a,
}


def _matches_query(item: Mapping[str, Any], query: Mapping[str, Any] | None) -> bool:
    if not query:
        return True
    props = item.get("properties", {})
    for name, ops in query.items():
        if not isinstance(ops, Mapping):
            ops = {"eq": ops}
        for op, value in ops.items():
            if op not in _QUERY_OPS:
                raise SpecError(f"query operator {op!r} on {name!r} is not supported; use one of {sorted(_QUERY_OPS)}.")
            try:
                if not _QUERY_OPS[op](props.get(name), value):
                    return False
            except TypeError:
                return False
    return True


def _search_local(spec: SearchSpec) -> list[dict[str, Any]]:
    if spec.filter is not None:
        raise SpecError(
            "A CQL2 filter= is only supported against a STAC API; for a local catalog use query= "
            "(e.g. {'eo:cloud_cover': {'lt': 20}})."
        )
    cid = spec.collection_id
    found = [
        item
        for item in read_local_items(spec.provider)
        if item.get("collection") == cid
        and _matches_time(item, spec)
        and _matches_bbox(item, spec)
        and _matches_query(item, spec.query)
    ]
    found = _sorted({item["id"]: item for item in found}.values())  # a folder may hold an item twice
    return found[: spec.max_items] if spec.max_items else found


# ------------------------------------------------------------------------------- messages
def _empty_message(spec: SearchSpec, catalog: list[dict[str, Any]] | None = None) -> str:
    cs = spec.collection_spec
    start, end = spec.datetime.split("/") if spec.datetime else ("..", "..")
    lines = [
        f"No {spec.collection_id!r} items (registry {cs.name!r}, {cs.title}) on {spec.provider!r} intersect "
        f"bbox {spec.bbox} (west, south, east, north) between {start} and {end}."
    ]
    hints = {
        "daily": "",
        "4-day": " (a 4-day product)",
        "8-day": " (an 8-day composite: use a window of at least 8 days)",
        "16-day": " (16-day repeat/composite: use a window of at least 16 days, more for cloud-free scenes)",
        "yearly": " (one item per year: include the whole product year)",
        "static": " (a static layer: any window that includes its nominal date, or a wide one such as "
        "'2000-01-01/2030-12-31')",
    }
    if spec.query or spec.filter:
        lines.append(f"The search also required query={spec.query} filter={spec.filter}: relax or drop it.")
    lines.append(
        f"Widen the dates{hints.get(cs.cadence, '')}, enlarge the bbox, or check that {spec.collection_id!r} "
        f"covers this area and period on {spec.provider!r}."
    )
    if catalog is not None:
        ids = sorted({str(d.get("collection")) for d in catalog})
        same = [d for d in catalog if d.get("collection") == spec.collection_id]
        lines.append(f"The local catalog holds {len(catalog)} items of collections {ids}.")
        if same:
            intervals = [_item_interval(d.get("properties", {})) for d in same]
            starts = [s for s, _ in intervals if s]
            ends = [e for _, e in intervals if e]
            boxes = [d.get("bbox") for d in same if d.get("bbox")]
            if starts and ends:
                lines.append(
                    f"Its {len(same)} {spec.collection_id!r} items span {_format_instant(min(starts))} to "
                    f"{_format_instant(max(ends))}"
                    + (f", within lon {min(b[0] for b in boxes):.4g}..{max(b[-2] for b in boxes):.4g}, lat "
                       f"{min(b[1] for b in boxes):.4g}..{max(b[-1] for b in boxes):.4g}." if boxes else ".")
                )
    return " ".join(lines)


# -------------------------------------------------------------------------------- signing
class _PlanetaryComputerSigner:
    """Sign Azure Blob hrefs with a Planetary Computer SAS token; leave anything else alone.

    A class rather than a closure so it pickles to Dask workers and tokenizes deterministically.
    """

    def __init__(self) -> None:
        self._module()  # fail now, with the install hint, rather than at the first read

    @staticmethod
    def _module():
        try:
            import planetary_computer
        except ImportError as err:
            raise MissingDependencyError(
                "Reading Planetary Computer assets needs their hrefs signed, which needs the optional package "
                f"'planetary-computer' ({err}). Install it with: pip install planetary-computer"
            ) from err
        return planetary_computer

    def __call__(self, href: str) -> str:
        if not href.startswith("https://") or ".blob.core.windows.net/" not in href:
            return href  # local files, other hosts: nothing to sign
        pc = self._module()
        sign_url = getattr(pc, "sign_url", None) or pc.sign
        return sign_url(href)

    def __repr__(self) -> str:
        return "planetary_computer_signer()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _PlanetaryComputerSigner)

    def __hash__(self) -> int:
        return hash(type(self).__name__)

    def __dask_tokenize__(self):
        return ("unique_xr.planetary_computer_signer",)


def planetary_computer_signer() -> Callable[[str], str]:
    """A ``href -> signed href`` function for Planetary Computer Azure Blob assets.

    Needs the optional ``planetary-computer`` package (imported now, so a missing one fails
    early with an install hint). Hrefs that are not Azure Blob URLs come back unchanged.
    """
    return _PlanetaryComputerSigner()


def signer_for(provider: str | SearchSpec | None) -> Callable[[str], str] | None:
    """The signing hook the loader should apply at read time for ``provider`` (None: no signing).

    Planetary Computer (by name or by its API URL) needs signed hrefs; Earth Search, other URLs
    and local catalogs do not.
    """
    if isinstance(provider, SearchSpec):
        provider = provider.provider
    if provider is None:
        return None
    provider = os.fspath(provider) if isinstance(provider, os.PathLike) else str(provider)
    pc_url = PROVIDERS["planetary-computer"]
    if provider == "planetary-computer" or provider.rstrip("/").startswith(pc_url):
        return planetary_computer_signer()
    return None
