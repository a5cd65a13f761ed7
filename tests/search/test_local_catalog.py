"""search() on local catalogs (JSON, ndjson, stac-geoparquet via rustac, folders) agrees with the STAC API."""

from __future__ import annotations

import json
from collections import defaultdict

import pystac
import pytest

from unique_xr.errors import EmptySearchError, SpecError
from unique_xr.search.stac import read_local_items, search
from unique_xr.testing.recorded import recorded_items, write_item_collection

from .conftest import FIJI, TASMANIA

#: (collection, bbox, datetime) queries with at least one real recorded item as answer
QUERIES = [
    ("mcd43a4", FIJI, "2025-03-01/2025-03-31"),
    ("mod13a1", FIJI, "2025-02-01/2025-02-28"),
    ("mod11a1", FIJI, "2025-03-09"),
    ("landsat-c2-l2", TASMANIA, "2024-04-01/2024-04-30"),
    ("landsat-c2-l2", (149.0, -40.0, 149.5, -39.5), "2024-04-17"),
    ("landsat-c2-l2", (146.5, -45.0, 148.5, -40.0), "2024-01-01/2025-12-31"),
    ("esa-worldcover", (-28.0, -59.0, -27.5, -58.0), "2021"),
    ("cop-dem-glo-30", (-179.9, -89.9, -179.1, -89.1), "2021-04-22"),
    ("nasadem", (-71.5, -55.5, -71.2, -55.2), "2000-02-20"),
    ("io-lulc", (175.0, 63.0, 176.0, 64.0), "2020"),
]


def _ids(items) -> list[str]:
    return [item.id for item in items]


@pytest.fixture(scope="module")
def parquet_dir(localized_items, tmp_path_factory):
    """One stac-geoparquet file per collection, written with rustac."""
    by_collection = defaultdict(list)
    for item in localized_items:
        by_collection[item["collection"]].append(item)
    folder = tmp_path_factory.mktemp("geoparquet")
    for cid, items in by_collection.items():
        write_item_collection(items, folder / f"{cid}.parquet")
    return folder


@pytest.mark.parametrize(
    ("collection", "bbox", "datetime"), QUERIES, ids=[f"{q[0]}-{i}" for i, q in enumerate(QUERIES)]
)
def test_json_and_geoparquet_catalogs_agree_with_the_api(
    stac_api, catalog_json, parquet_dir, collection, bbox, datetime
):
    api = _ids(search(collection, bbox=bbox, datetime=datetime, provider=stac_api, cache=False))
    as_json = _ids(search(collection, bbox=bbox, datetime=datetime, provider=catalog_json))
    as_parquet = _ids(search(collection, bbox=bbox, datetime=datetime, provider=parquet_dir))
    assert api and as_json == api and as_parquet == api


def test_landsat_date_and_bbox_filters_on_a_local_catalog(catalog_json):
    every = _ids(search("landsat", bbox=(146.5, -45.0, 148.5, -40.0), datetime="2024/2025", provider=catalog_json))
    assert every == ["LC09_L2SP_089088_20240417_02_T2", "LC09_L2SP_089089_20240417_02_T1",
                     "LC09_L2SP_089090_20240417_02_T1", "LC09_L2SP_090091_20250310_02_T1"]  # by acquisition time
    only_2025 = _ids(search("landsat", bbox=(146.5, -45.0, 148.5, -40.0), datetime="2025", provider=catalog_json))
    assert only_2025 == ["LC09_L2SP_090091_20250310_02_T1"]
    two = search("landsat", bbox=(146.5, -45.0, 148.5, -40.0), datetime="2024/2025", provider=catalog_json,
                 max_items=2)
    assert _ids(two) == every[:2]


def test_single_geoparquet_file(parquet_dir):
    items = search("landsat", bbox=TASMANIA, datetime="2024-04", provider=parquet_dir / "landsat-c2-l2.parquet")
    assert _ids(items) == ["LC09_L2SP_089089_20240417_02_T1", "LC09_L2SP_089090_20240417_02_T1"]
    assert items[0].properties["proj:code"] == "EPSG:32655"  # migrated like API results


def test_other_local_formats(localized_items, tmp_path):
    landsat = [it for it in localized_items if it["collection"] == "landsat-c2-l2"]
    (tmp_path / "list.json").write_text(json.dumps(landsat))
    write_item_collection(landsat, tmp_path / "items.ndjson")
    folder = tmp_path / "items"
    folder.mkdir()
    for it in landsat:
        (folder / f"{it['id']}.json").write_text(json.dumps(it))
    (folder / "notes.json").write_text('{"not": "stac"}')  # ignored
    expected = ["LC09_L2SP_089089_20240417_02_T1", "LC09_L2SP_089090_20240417_02_T1"]
    for provider in (tmp_path / "list.json", tmp_path / "items.ndjson", folder, folder / f"{expected[0]}.json"):
        got = _ids(search("landsat", bbox=TASMANIA, datetime="2024-04", provider=provider))
        assert got == (expected if provider != folder / f"{expected[0]}.json" else expected[:1]), provider


def test_pystac_catalog_with_relative_hrefs(localized_items, tmp_path):
    catalog = pystac.Catalog(id="local", description="localized recorded items")
    for it in localized_items:
        if it["collection"] == "modis-43A4-061":
            offline = {**it, "links": []}  # the recorded links point at planetarycomputer.microsoft.com
            catalog.add_item(pystac.Item.from_dict(offline))
    catalog.normalize_hrefs(str(tmp_path / "stac"))
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    items = search("mcd43a4", bbox=FIJI, datetime="2025-03", provider=tmp_path / "stac" / "catalog.json")
    assert _ids(items) == ["MCD43A4.A2025061.h35v10.061.2025070035331"]


def test_relative_asset_hrefs_resolve_against_the_catalog_file(tmp_path):
    (item,) = recorded_items("nasadem")
    item["assets"]["elevation"]["href"] = "./tiles/elevation.tif"
    catalog = write_item_collection([item], tmp_path / "cat" / "catalog.json")
    (found,) = read_local_items(catalog)
    assert found["assets"]["elevation"]["href"] == str(tmp_path / "cat" / "tiles" / "elevation.tif")
    assert found["assets"]["tilejson"]["href"].startswith("https://")  # URLs stay URLs


def test_query_on_a_local_catalog(catalog_json):
    kw = dict(bbox=(146.5, -45.0, 151.5, -37.0), datetime="2024/2025", provider=catalog_json)
    clear = search("landsat", query={"eo:cloud_cover": {"lt": 30}}, **kw)
    assert _ids(clear) == ["LC09_L2SP_089087_20240417_02_T2", "LC09_L2SP_089088_20240417_02_T2"]
    assert len(search("landsat", query={"platform": {"eq": "landsat-9"}}, **kw)) == 5
    with pytest.raises(EmptySearchError, match="relax or drop"):
        search("landsat", query={"platform": {"in": ["landsat-8"]}}, **kw)
    with pytest.raises(SpecError, match="not supported"):
        search("landsat", query={"eo:cloud_cover": {"near": 30}}, **kw)
    with pytest.raises(SpecError, match="query="):
        search("landsat", filter={"op": "<", "args": [{"property": "eo:cloud_cover"}, 30]}, **kw)


def test_empty_local_search_explains_what_the_catalog_holds(catalog_json):
    with pytest.raises(EmptySearchError) as info:
        search("mcd43a4", bbox=(5.0, 45.0, 6.0, 46.0), datetime="2025-03-01/2025-03-31", provider=catalog_json)
    message = str(info.value)
    assert "'modis-43A4-061'" in message and str(catalog_json) in message
    assert "(5.0, 45.0, 6.0, 46.0)" in message and "2025-03-01" in message and "2025-03-31" in message
    assert "2025-03-02" in message and "172.5" in message  # what the catalog does hold: dates and lon range


def test_unreadable_catalog_is_a_spec_error(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{ not json")
    with pytest.raises(SpecError, match="broken.json"):
        search("mcd43a4", bbox=FIJI, datetime="2025-03", provider=bad)
