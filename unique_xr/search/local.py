"""Local catalogs: read item JSON, ItemCollections, ndjson, stac-geoparquet or folders of them,
and filter them by collection, bbox, datetime and ``query`` with STAC API semantics."""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from unique_xr._optional import import_optional
from unique_xr.errors import SpecError
from unique_xr.search.spec import SearchSpec, _format_instant, _parse_instant, bbox_2d

__all__ = ["read_local_items", "search_local"]

_LOCAL_SUFFIXES = (".json", ".geojson", ".ndjson", ".jsonl", ".parquet", ".geoparquet")


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


def _nominal_day_in_range(props: Mapping[str, Any], spec: SearchSpec) -> bool:
    """For daily products, whether the item's nominal day (``start_datetime``, else ``datetime``) is in range.

    A STAC API returns every item whose [start, end] interval *overlaps* the query. For daily
    products that is too much: Planetary Computer's MCD43A4 items span the 8 days after their
    nominal date (A2025061 -> 2025-03-02 to 03-09), so a search for 1-3 June would also bring the
    daily maps of 25-31 May. Composites (8-day, 16-day, yearly) keep the overlap rule.
    """
    if spec.datetime is None or spec.collection_spec.cadence != "daily":
        return True
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
    if not _nominal_day_in_range(item.get("properties", {}), spec):
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
    return bool(box(*bbox_2d(ib)).intersects(query))


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


def matches(item: Mapping[str, Any], spec: SearchSpec) -> bool:
    """Whether an item (as a dict) answers ``spec``: its collection, dates, area and ``query``.

    The rule a local catalog is filtered by, and the check cached API results must pass again.
    """
    return (item.get("collection") == spec.collection_id and _matches_time(item, spec)
            and _matches_bbox(item, spec) and _matches_query(item, spec.query))


def search_local(spec: SearchSpec) -> list[dict[str, Any]]:
    if spec.filter is not None:
        raise SpecError(
            "A CQL2 filter= is only supported against a STAC API; for a local catalog use query= "
            "(e.g. {'eo:cloud_cover': {'lt': 20}})."
        )
    found = [item for item in read_local_items(spec.provider) if matches(item, spec)]
    found = _sorted({item["id"]: item for item in found}.values())  # a folder may hold an item twice
    return found[: spec.max_items] if spec.max_items else found


def _sort_key(item: Any) -> tuple[str, str]:
    props = item["properties"] if isinstance(item, dict) else item.properties
    ident = item["id"] if isinstance(item, dict) else item.id
    when = props.get("datetime") or props.get("start_datetime") or ""
    start = _parse_instant(when, end=False) if when else None
    return (_format_instant(start) if start else "", ident)


def _sorted(items: Iterable[Any]) -> list[Any]:
    return sorted(items, key=_sort_key)
