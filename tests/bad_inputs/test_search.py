"""The STAC search cache: an entry edited on disk is never returned as a search result.

The recorded Planetary Computer MCD43A4 item is served by a real local STAC API (``rustac
serve``); a first search fills the cache, the entry is then edited the way a tester did (hrefs,
bboxes, dates, collection), and the same search must notice, warn and ask the API again.
"""

from __future__ import annotations

import json

import pytest

from unique_xr.search.stac import _CACHE_SHA256, _features_sha256, search
from unique_xr.search.spec import SearchSpec
from unique_xr.testing.recorded import recorded_items, write_item_collection
from unique_xr.testing.stac_server import serve_stac

FIJI = (177.0, -18.5, 179.0, -17.0)  # inside MODIS tile h35v10, the recorded item's tile
MONTH = "2025-03-01/2025-03-31"


@pytest.fixture(scope="module")
def stac_api(tmp_path_factory):
    catalog = write_item_collection(recorded_items("mcd43a4"), tmp_path_factory.mktemp("catalog") / "modis.json")
    with serve_stac([catalog]) as url:
        yield url


def _edit_href(item):
    item["assets"] = {k: {**a, "href": "https://attacker.example/evil.tif"} for k, a in item["assets"].items()}


def _move_far_away(item):
    item["geometry"] = {"type": "Polygon", "coordinates": [[[10, 50], [11, 50], [11, 51], [10, 51], [10, 50]]]}
    item["bbox"] = [10, 50, 11, 51]


def _other_dates(item):
    for key in ("datetime", "start_datetime", "end_datetime"):
        if item["properties"].get(key):
            item["properties"][key] = "2011-07-01T00:00:00Z"


def _other_collection(item):
    item["collection"] = "landsat-c2-l2"


@pytest.mark.parametrize(("edit", "reseal"), [
    (_edit_href, False),  # an edited href: the stored checksum no longer matches
    (_move_far_away, True),  # items of another area, checksum recomputed: they do not answer the query
    (_other_dates, True),
    (_other_collection, True),
], ids=["href", "bbox", "dates", "collection"])
def test_an_edited_cache_entry_is_not_returned(stac_api, tmp_path, edit, reseal):
    cache = tmp_path / "cache"
    first = search("mcd43a4", bbox=FIJI, datetime=MONTH, provider=stac_api, cache_dir=cache)
    entry = cache / f"{SearchSpec(collection='mcd43a4', bbox=FIJI, datetime=MONTH, provider=stac_api).token}.json"
    data = json.loads(entry.read_text())
    for item in data["features"]:
        edit(item)
    if reseal:
        data[_CACHE_SHA256] = _features_sha256(data["features"])
    entry.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match=r"Ignoring the corrupt search cache file .*(checksum|do not answer)"):
        again = search("mcd43a4", bbox=FIJI, datetime=MONTH, provider=stac_api, cache_dir=cache)
    assert [i.to_dict(transform_hrefs=False) for i in again] == [i.to_dict(transform_hrefs=False) for i in first]
    assert "attacker" not in entry.read_text()  # and the entry was rewritten from the API's answer


def test_an_untouched_cache_entry_answers_without_the_api(stac_api, tmp_path, recwarn, monkeypatch):
    import unique_xr.search.stac as stac

    cache = tmp_path / "cache"
    first = search("mcd43a4", bbox=FIJI, datetime=MONTH, provider=stac_api, cache_dir=cache)

    def no_api(*args, **kwargs):
        raise AssertionError("the API was asked although the cache holds the answer")

    monkeypatch.setattr(stac, "_search_api", no_api)
    again = search("mcd43a4", bbox=FIJI, datetime=MONTH, provider=stac_api, cache_dir=cache)
    assert [i.to_dict(transform_hrefs=False) for i in again] == [i.to_dict(transform_hrefs=False) for i in first]
    assert not [w for w in recwarn if "search cache" in str(w.message)]


def test_a_cache_entry_of_an_older_version_is_searched_again_quietly(stac_api, tmp_path, recwarn):
    cache = tmp_path / "cache"
    search("mcd43a4", bbox=FIJI, datetime=MONTH, provider=stac_api, cache_dir=cache)
    (entry,) = cache.glob("*.json")
    data = json.loads(entry.read_text())
    del data[_CACHE_SHA256]  # as written before checksums were stored
    entry.write_text(json.dumps(data))
    search("mcd43a4", bbox=FIJI, datetime=MONTH, provider=stac_api, cache_dir=cache)
    assert not [w for w in recwarn if "search cache" in str(w.message)]
    assert _CACHE_SHA256 in json.loads(entry.read_text())  # rewritten with its checksum
