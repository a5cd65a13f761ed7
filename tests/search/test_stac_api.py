"""search() through pystac-client against a real STAC API on loopback (rustac serve), no network."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.request
from pathlib import Path

import pystac
import pytest

from unique_xr.errors import EmptySearchError, SearchError, UnknownCollectionError
from unique_xr.search.stac import SearchSpec, search
from unique_xr.testing.recorded import recorded_items, write_item_collection
from unique_xr.testing.stac_server import free_port, serve_stac

from .conftest import FIJI, TASMANIA

MCD43A4_ID = "MCD43A4.A2025061.h35v10.061.2025070035331"
TASMANIA_APRIL_2024 = ["LC09_L2SP_089089_20240417_02_T1", "LC09_L2SP_089090_20240417_02_T1"]


def _ids(items) -> list[str]:
    return [item.id for item in items]


def test_modis_nbar_over_fiji(stac_api):
    items = search("mcd43a4", bbox=FIJI, datetime="2025-03-01/2025-03-31", provider=stac_api, cache=False)
    assert isinstance(items, pystac.ItemCollection)
    assert _ids(items) == [MCD43A4_ID]
    item = items[0]
    assert item.collection_id == "modis-43A4-061"
    assert item.properties["modis:tile-id"] == "51035010"  # h35v10: the real recorded metadata came through
    assert "proj:wkt2" in item.properties and item.properties.get("proj:epsg") is None  # sinusoidal: no EPSG
    assert Path(item.assets["Nadir_Reflectance_Band1"].href).is_file()  # localized, readable offline


@pytest.mark.parametrize("name", ["mod09a1", "mod13a1", "mod11a1", "mod15a2h", "mod17a2h"])
def test_every_modis_product_over_fiji(stac_api, name):
    (expected,) = recorded_items(name)
    start, end = expected["properties"]["start_datetime"][:10], expected["properties"]["end_datetime"][:10]
    items = search(name, bbox=FIJI, datetime=f"{start}/{end}", provider=stac_api, cache=False)
    assert _ids(items) == [expected["id"]]
    assert "h35v10" in items[0].id


def test_landsat_over_tasmania_selects_by_bbox_and_date(stac_api):
    april = search("landsat-c2-l2", bbox=TASMANIA, datetime="2024-04-01/2024-04-30", provider=stac_api, cache=False)
    assert _ids(april) == TASMANIA_APRIL_2024  # sorted by time: row 089 was acquired before row 090
    # pystac-client migrates items to STAC 1.1 (projection v2): proj:epsg 32655 is now proj:code
    assert all(item.properties["proj:code"] == "EPSG:32655" for item in april)
    # a box over Bass Strait finds the northern scenes only
    north = search("landsat", bbox=(149.0, -40.0, 149.5, -39.5), datetime="2024-04-17", provider=stac_api, cache=False)
    assert _ids(north) == ["LC09_L2SP_089087_20240417_02_T2", "LC09_L2SP_089088_20240417_02_T2"]
    # the 2025 scene of path 090 is found by its own date only
    later = search("landsat", bbox=(145.5, -44.5, 146.0, -44.0), datetime="2025-03-01/2025-03-31",
                   provider=stac_api, cache=False)
    assert _ids(later) == ["LC09_L2SP_090091_20250310_02_T1"]


def test_max_items(stac_api):
    items = search("landsat", bbox=(146.5, -43.5, 148.5, -40.0), datetime="2024-04-17", provider=stac_api,
                   max_items=1, cache=False)
    assert len(items) == 1


@pytest.mark.parametrize(
    ("bbox", "datetime"),
    [
        ((5.0, 45.0, 6.0, 46.0), "2025-03-01/2025-03-31"),  # right dates, wrong place (the Alps)
        (FIJI, "2024-01-01/2024-12-31"),  # right place, wrong year
        (FIJI, "2025-03-10/2025-03-20"),  # just after the composite window ends (2025-03-09)
    ],
)
def test_items_outside_bbox_or_dates_are_excluded(stac_api, bbox, datetime):
    with pytest.raises(EmptySearchError) as info:
        search("mcd43a4", bbox=bbox, datetime=datetime, provider=stac_api, cache=False)
    message = str(info.value)
    assert "'modis-43A4-061'" in message and stac_api in message
    assert str(bbox[0]) in message and datetime[:10] in message
    assert "Widen the dates" in message
    assert isinstance(info.value, LookupError)


def test_unknown_collection(stac_api):
    with pytest.raises(UnknownCollectionError, match="sentinel-2-l2a"):
        search("sentinel-2-l2a", bbox=FIJI, datetime="2025-03", provider=stac_api)


def test_a_spec_can_be_searched_but_not_mixed_with_arguments(stac_api):
    spec = SearchSpec(collection="mcd43a4", bbox=FIJI, datetime="2025-03", provider=stac_api)
    assert _ids(search(spec, cache=False)) == [MCD43A4_ID]
    with pytest.raises(ValueError, match="bbox"):
        search(spec, bbox=FIJI)


def test_cache_round_trip_survives_the_server_stopping(localized_items, tmp_path, cache_dir):
    modis = [it for it in localized_items if it["collection"] == "modis-43A4-061"]
    catalog = write_item_collection(modis, tmp_path / "modis.json")
    with serve_stac([catalog]) as url:
        first = search("mcd43a4", bbox=FIJI, datetime="2025-03", provider=url, cache_dir=cache_dir)
        spec = SearchSpec(collection="mcd43a4", bbox=FIJI, datetime="2025-03", provider=url)
    entry = cache_dir / f"{spec.token}.json"
    assert entry.is_file()
    assert json.loads(entry.read_text())["unique_xr:search"]["collection"] == "mcd43a4"
    # the server is gone: only the cache can answer
    again = search("mcd43a4", bbox=FIJI, datetime="2025-03", provider=url, cache_dir=cache_dir, retries=0)
    assert _ids(again) == _ids(first) == [MCD43A4_ID]
    assert again[0].to_dict(transform_hrefs=False)["assets"] == first[0].to_dict(transform_hrefs=False)["assets"]
    with pytest.raises(SearchError):  # and without the cache, the search really needs the server
        search("mcd43a4", bbox=FIJI, datetime="2025-03", provider=url, cache=False, retries=0)


def test_cache_false_writes_nothing(stac_api, cache_dir):
    search("mcd43a4", bbox=FIJI, datetime="2025-03", provider=stac_api, cache=False, cache_dir=cache_dir)
    assert not cache_dir.exists() or not any(cache_dir.iterdir())


def test_default_cache_dir_follows_the_environment(stac_api, tmp_path, monkeypatch):
    monkeypatch.setenv("UNIQUE_XR_CACHE_DIR", str(tmp_path / "env-cache"))
    search("mcd43a4", bbox=FIJI, datetime="2025-03", provider=stac_api)
    assert len(list((tmp_path / "env-cache" / "search").glob("*.json"))) == 1


def test_corrupt_cache_is_ignored_and_rewritten(stac_api, cache_dir):
    spec = SearchSpec(collection="mcd43a4", bbox=FIJI, datetime="2025-03", provider=stac_api)
    entry = cache_dir / f"{spec.token}.json"
    entry.parent.mkdir(parents=True)
    entry.write_text('{"type": "FeatureCollection", "features": [')  # truncated write
    with pytest.warns(UserWarning, match="corrupt search cache"):
        items = search(spec, cache_dir=cache_dir)
    assert _ids(items) == [MCD43A4_ID]
    assert [f["id"] for f in json.loads(entry.read_text())["features"]] == [MCD43A4_ID]


def test_unreachable_api_is_a_search_error_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(SearchError) as info:
        search("mcd43a4", bbox=FIJI, datetime="2025-03", provider=url, cache=False, retries=1, backoff_factor=0)
    assert url in str(info.value) and "modis-43A4-061" in str(info.value)
    assert "refused" in str(info.value).lower() or "connect" in str(info.value).lower()
    assert time.monotonic() - start < 10


class _FlakyProxy(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first ``failures`` requests, then forwards to the real API."""

    upstream = ""
    failures = 0
    seen: list[int] = []

    def _handle(self):
        type(self).seen.append(len(type(self).seen))
        if len(type(self).seen) <= type(self).failures:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        req = urllib.request.Request(self.upstream + self.path, data=body, method=self.command,
                                     headers={"Content-Type": self.headers.get("Content-Type", "application/json")})
        with urllib.request.urlopen(req, timeout=10) as resp:
            payload = resp.read()
            status = resp.status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _handle

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def flaky_api(stac_api):
    def start(failures: int) -> str:
        _FlakyProxy.upstream, _FlakyProxy.failures, _FlakyProxy.seen = stac_api, failures, []
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FlakyProxy)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    servers: list = []
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_503_answers_are_retried(flaky_api):
    url = flaky_api(failures=2)
    items = search("mcd43a4", bbox=FIJI, datetime="2025-03", provider=url, cache=False, retries=3, backoff_factor=0)
    assert _ids(items) == [MCD43A4_ID]
    assert len(_FlakyProxy.seen) >= 3  # two 503s, then the real answer


def test_503_past_the_retry_budget_is_a_search_error(flaky_api):
    url = flaky_api(failures=10)
    with pytest.raises(SearchError, match="503"):
        search("mcd43a4", bbox=FIJI, datetime="2025-03", provider=url, cache=False, retries=2, backoff_factor=0)
    assert len(_FlakyProxy.seen) == 3  # the first try and two retries


def test_named_provider_resolves_to_its_api_url():
    """'planetary-computer' is searched at its real URL (refused here: tests never touch the network)."""
    with pytest.raises(SearchError) as info:
        search("mcd43a4", bbox=FIJI, datetime="2025-03", provider="planetary-computer", cache=False, retries=0)
    assert "https://planetarycomputer.microsoft.com/api/stac/v1" in str(info.value)


def test_a_url_that_is_not_a_stac_api_is_a_search_error(tmp_path):
    (tmp_path / "index.html").write_text("<html>not a STAC API</html>")
    handler_cls = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a, **k: handler_cls(*a, directory=str(tmp_path), **k)
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(SearchError, match=url):
            search("mcd43a4", bbox=FIJI, datetime="2025-03", provider=url, cache=False, retries=0)
    finally:
        server.shutdown()
        server.server_close()
