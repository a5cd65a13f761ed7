"""SearchSpec: validation, normalisation and a deterministic token."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from dask.base import tokenize

from unique_xr.errors import SpecError, UnknownCollectionError
from unique_xr.grid import GridSpec
from unique_xr.search.stac import SearchSpec

from .conftest import FIJI


def _spec(**kw) -> SearchSpec:
    base = dict(collection="mcd43a4", bbox=FIJI, datetime="2025-03-01/2025-03-31")
    return SearchSpec(**{**base, **kw})


def test_collection_is_resolved_and_id_is_per_provider():
    spec = _spec(collection="modis-43A4-061")
    assert spec.collection == "mcd43a4"
    assert spec.collection_id == "modis-43A4-061"
    assert spec.url == "https://planetarycomputer.microsoft.com/api/stac/v1"
    assert _spec(collection="landsat", provider="earth-search").url == "https://earth-search.aws.element84.com/v1"


def test_unknown_collection_and_collection_missing_on_provider():
    with pytest.raises(UnknownCollectionError, match="Known"):
        _spec(collection="not-a-product")
    with pytest.raises(UnknownCollectionError, match="earth-search"):
        _spec(provider="earth-search")  # MCD43A4 is on Planetary Computer only


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2019-01-01/2019-01-31", "2019-01-01T00:00:00Z/2019-01-31T23:59:59.999999Z"),
        ("2019-01-15", "2019-01-15T00:00:00Z/2019-01-15T23:59:59.999999Z"),
        ("2019-02", "2019-02-01T00:00:00Z/2019-02-28T23:59:59.999999Z"),
        ("2019-12/2020", "2019-12-01T00:00:00Z/2020-12-31T23:59:59.999999Z"),
        ("2019-01-01T06:00:00+02:00/2019-01-02T00:00:00Z", "2019-01-01T04:00:00Z/2019-01-02T00:00:00Z"),
        ("2019-01-01/..", "2019-01-01T00:00:00Z/.."),
        ((dt.date(2019, 1, 1), dt.date(2019, 1, 31)), "2019-01-01T00:00:00Z/2019-01-31T23:59:59.999999Z"),
        (("2019-01-01", dt.datetime(2019, 1, 2, 12)), "2019-01-01T00:00:00Z/2019-01-02T12:00:00Z"),
    ],
)
def test_datetime_is_normalised_to_rfc3339_utc(given, expected):
    assert _spec(datetime=given).datetime == expected


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ("2019-02-01/2019-01-01", "reversed"),
        ("yesterday/today", "ISO 8601"),
        ("2019-01-01/2019-01-02/2019-01-03", "one '/'"),
        ("../..", "open at both ends"),
        (20190101, "range string"),
    ],
)
def test_bad_datetime_is_a_spec_error(given, match):
    with pytest.raises(SpecError, match=match):
        _spec(datetime=given)


@pytest.mark.parametrize(
    ("bbox", "match"),
    [
        ((177.0, -18.5, 179.0), "four numbers"),
        ((177.0, -18.5, 179.0, "north"), "four numbers"),
        ((500000.0, 4000000.0, 510000.0, 4010000.0), "projected coordinates"),
        ((177.0, -17.0, 179.0, -18.5), "south"),
        ((179.0, -18.5, -179.0, -17.0), "antimeridian"),
        ((177.0, float("nan"), 179.0, -17.0), "non-finite"),
    ],
)
def test_bad_bbox_is_a_spec_error(bbox, match):
    with pytest.raises(SpecError, match=match) as info:
        _spec(bbox=bbox)
    assert isinstance(info.value, ValueError)


def test_bbox_from_a_grid_covers_the_grid():
    grid = GridSpec.from_bbox((147.9, -41.6, 148.1, -41.4), crs="utm", resolution=30.0)
    spec = _spec(collection="landsat-c2-l2", bbox=grid)
    west, south, east, north = spec.bbox
    assert west <= 147.9 + 1e-3 and east >= 148.1 - 1e-3 and south <= -41.6 + 1e-3 and north >= -41.4 - 1e-3


def test_bad_provider_max_items_and_query():
    with pytest.raises(SpecError, match="not a known provider"):
        _spec(provider="/no/such/catalog.json")
    with pytest.raises(SpecError, match="max_items"):
        _spec(max_items=0)
    with pytest.raises(SpecError, match="JSON-serialisable"):
        _spec(query={"eo:cloud_cover": {"lt": object()}})


def test_url_provider_is_normalised():
    assert _spec(provider="http://127.0.0.1:9/").provider == "http://127.0.0.1:9"
    assert _spec(provider="http://127.0.0.1:9/").provider_kind == "url"


def test_spec_is_frozen_and_copies_its_query():
    query = {"platform": {"eq": "landsat-9"}}
    spec = _spec(collection="landsat", query=query)
    query["platform"]["eq"] = "landsat-8"  # the caller's dict changing does not change the spec
    assert spec.query == {"platform": {"eq": "landsat-9"}}
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.bbox = (0, 0, 1, 1)


def test_token_is_deterministic_and_sensitive():
    a = _spec()
    b = _spec(collection="modis-43A4-061", datetime=("2025-03-01", "2025-03-31"))  # same query, other spelling
    assert a == b and a.token == b.token and tokenize(a) == tokenize(b)
    assert len(a.token) == 32 and int(a.token, 16) >= 0
    others = [
        _spec(bbox=(177.0, -18.5, 179.0, -17.5)),
        _spec(datetime="2025-03-01/2025-03-30"),
        _spec(provider="http://127.0.0.1:9"),
        _spec(max_items=3),
        _spec(query={"platform": {"eq": "terra"}}),
    ]
    tokens = {a.token, *(o.token for o in others)}
    assert len(tokens) == 1 + len(others)
    assert tokenize(others[0]) != tokenize(a)


def test_to_dict_round_trip():
    spec = _spec(max_items=2, query={"platform": {"eq": "terra"}})
    again = SearchSpec.from_dict(spec.to_dict())
    assert again == spec and again.token == spec.token
    assert "modis-43A4-061" in spec.describe() and "2025-03-31" in spec.describe()
