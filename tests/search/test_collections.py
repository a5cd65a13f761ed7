"""The collection registry, and a cross-check of it against real recorded Planetary Computer metadata."""

from __future__ import annotations

import pytest

from unique_xr.errors import UnknownAssetError, UnknownCollectionError
from unique_xr.search.collections import COLLECTIONS, get_collection, list_collections
from unique_xr.testing.recorded import RECORDED_COLLECTIONS, recorded_items

#: Every product issue 2 names, as (registry name, Planetary Computer id).
ISSUE_PRODUCTS = [
    ("mcd43a4", "modis-43A4-061"),
    ("mod09a1", "modis-09A1-061"),
    ("mod13a1", "modis-13A1-061"),
    ("mod11a1", "modis-11A1-061"),
    ("mod15a2h", "modis-15A2H-061"),
    ("mod17a2h", "modis-17A2H-061"),
    ("landsat-c2-l2", "landsat-c2-l2"),
    ("cop-dem-glo-30", "cop-dem-glo-30"),
    ("nasadem", "nasadem"),
    ("esa-worldcover", "esa-worldcover"),
    ("io-lulc", "io-lulc"),
]

#: Where the registry deliberately differs from the STAC metadata. MOD17A2H GPP / PsnNet are
#: kg C m-2 per 8-day composite with scale 1e-4 on Planetary Computer; the registry converts them
#: to the daily mean in g C m-2 d-1, i.e. its scale is the STAC scale * 1000 / 8.
DELIBERATE_SCALE_FACTORS = {("mod17a2h", "Gpp_500m"): 1000 / 8, ("mod17a2h", "PsnNet_500m"): 1000 / 8}


@pytest.mark.parametrize(("name", "pc_id"), ISSUE_PRODUCTS)
def test_every_issue_product_is_registered_on_planetary_computer(name, pc_id):
    spec = get_collection(name)
    assert spec.name == name
    assert spec.collection_id("planetary-computer") == pc_id
    assert get_collection(pc_id) is spec  # the provider id finds the same spec
    assert spec.default_assets and all(spec.asset(k).key == k for k in spec.default_assets)


def test_lookup_by_alias_and_case():
    assert get_collection("landsat").name == "landsat-c2-l2"
    assert get_collection("modis-nbar").name == "mcd43a4"
    assert get_collection("MCD43A4").name == "mcd43a4"
    assert get_collection(get_collection("nasadem")).name == "nasadem"  # a spec passes through
    assert sorted(COLLECTIONS) == list_collections()


def test_unknown_collection_names_the_known_ones():
    with pytest.raises(UnknownCollectionError, match="mcd43a4") as info:
        get_collection("sentinel-2-l2a")
    assert isinstance(info.value, LookupError)


def test_collection_not_on_provider_says_where_it_is():
    with pytest.raises(UnknownCollectionError, match="planetary-computer"):
        get_collection("mcd43a4").collection_id("earth-search")
    assert get_collection("landsat-c2-l2").collection_id("earth-search") == "landsat-c2-l2"


def test_assets_by_role_and_unknown_asset():
    mcd = get_collection("mcd43a4")
    assert mcd.asset("nir").key == "Nadir_Reflectance_Band2"
    assert mcd.asset("red").key == "Nadir_Reflectance_Band1"
    assert get_collection("landsat-c2-l2").asset("nir").key == "nir08"
    with pytest.raises(UnknownAssetError, match="Nadir_Reflectance_Band1"):
        mcd.asset("thermal")


def test_recorded_items_cover_every_registered_collection():
    recorded = {it["collection"] for it in recorded_items()}
    assert recorded == set(RECORDED_COLLECTIONS)
    assert {get_collection(c).collection_id("planetary-computer") for c in list_collections()} <= recorded


def _comparisons():
    """(collection, asset key, field, registry value, recorded value) for every field the real item states."""
    rows = []
    for item in recorded_items():
        spec = get_collection(item["collection"])
        for a in spec.assets:
            asset = item["assets"].get(a.key)
            if asset is None:
                continue
            band = (asset.get("raster:bands") or [{}])[0]
            for fld, mine in (("data_type", a.dtype), ("scale", a.scale), ("offset", a.offset), ("nodata", a.nodata)):
                if fld in band:
                    rows.append((spec.name, a.key, item["id"], fld, mine, band[fld]))
    return rows


def test_registry_matches_real_recorded_metadata():
    rows = _comparisons()
    # the real items state dtype for every MODIS/Landsat asset, scales for all reflectances, Landsat offsets/nodata
    assert len(rows) > 200
    assert {r[0] for r in rows} >= {"mcd43a4", "mod09a1", "mod13a1", "mod11a1", "mod15a2h", "mod17a2h",
                                    "landsat-c2-l2", "esa-worldcover", "io-lulc"}
    mismatches = []
    for name, key, item_id, fld, mine, recorded in rows:
        if fld == "data_type":
            ok = mine == recorded
        else:
            expected = recorded * DELIBERATE_SCALE_FACTORS.get((name, key), 1.0) if fld == "scale" else recorded
            ok = mine == pytest.approx(expected, rel=1e-9, abs=0)
        if not ok:
            mismatches.append(f"{name}.{key} {fld}: registry {mine!r}, recorded {recorded!r} ({item_id})")
    assert not mismatches, "\n".join(mismatches)

