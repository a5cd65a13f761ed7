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

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unique_xr._files import write_atomic
from unique_xr._optional import import_optional
from unique_xr.errors import EmptySearchError, SearchError, SpecError
from unique_xr.search.collections import CollectionSpec
from unique_xr.search.local import (
    _item_interval,
    _nominal_day_in_range,
    _sorted,
    matches,
    read_local_items,
    search_local,
)
from unique_xr.search.signing import planetary_computer_signer, signer_for
from unique_xr.search.spec import SearchSpec, _format_instant

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
        items = search_local(spec)
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
             if _nominal_day_in_range(it.properties, spec)]
    if not found:
        raise EmptySearchError(_empty_message(spec))
    result = pystac.ItemCollection(_sorted(found), extra_fields={"unique_xr:search": spec.to_dict()})
    if cache:
        _write_cache(path, result)
    return result


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
        features = data.get("features")
        if not features:
            raise ValueError("it holds no items")
        stored_sha = data.pop(_CACHE_SHA256, None)
        if stored_sha is None:
            return None  # an entry of an older unique_xr, without a checksum: a plain miss, searched again
        if stored_sha != _features_sha256(features):
            raise ValueError("its items do not match the checksum stored with them (edited or damaged)")
        # the checks the live search applies, again: a cache entry must answer the query it is filed under
        wrong = [d.get("id") for d in features if not matches(d, spec)]
        if wrong:
            raise ValueError(f"items {wrong[:3]} do not answer the query (collection, bbox, dates or query)")
        return pystac.ItemCollection.from_dict(data, preserve_dict=False)
    except Exception as err:  # any unreadable entry is a miss, never a failure
        warnings.warn(
            f"Ignoring the corrupt search cache file {path} ({type(err).__name__}: {err}); "
            "searching again and rewriting it.",
            UserWarning,
            stacklevel=3,
        )
        return None


#: Key of the cache file's checksum of its items, checked on every read.
_CACHE_SHA256 = "unique_xr:sha256"


def _features_sha256(features: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(features, sort_keys=True).encode()).hexdigest()


def _write_cache(path: Path, items: pystac.ItemCollection) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = items.to_dict(transform_hrefs=False)
    data[_CACHE_SHA256] = _features_sha256(data["features"])
    write_atomic(path, json.dumps(data).encode())  # a reader never sees half a file


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
