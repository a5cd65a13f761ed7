"""Signing hooks: the search never signs; the loader gets a signer for Planetary Computer only."""

from __future__ import annotations

import pickle
import sys
import types

import pytest
from dask.base import tokenize

from unique_xr.errors import MissingDependencyError
from unique_xr.search.stac import SearchSpec, planetary_computer_signer, search, signer_for

from .conftest import FIJI

BLOB = "https://modiseuwest.blob.core.windows.net/modis-061-cogs/MCD43A4/35/10/2025061/x_Nadir_Reflectance_Band1.tif"


@pytest.fixture
def fake_planetary_computer(monkeypatch):
    """A stand-in for the optional planetary-computer package that records what it signs."""
    signed: list[str] = []
    module = types.ModuleType("planetary_computer")

    def sign_url(href: str) -> str:
        signed.append(href)
        return href + "?sig=TOKEN"

    module.sign_url = sign_url
    monkeypatch.setitem(sys.modules, "planetary_computer", module)
    return signed


def test_missing_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "planetary_computer", None)  # import fails
    with pytest.raises(MissingDependencyError, match="pip install planetary-computer") as info:
        planetary_computer_signer()
    assert isinstance(info.value, ImportError)


def test_signer_signs_azure_blob_hrefs_only(fake_planetary_computer):
    sign = planetary_computer_signer()
    assert sign(BLOB) == BLOB + "?sig=TOKEN"
    assert sign("/tmp/local/red.tif") == "/tmp/local/red.tif"
    assert sign("https://example.org/red.tif") == "https://example.org/red.tif"
    assert fake_planetary_computer == [BLOB]


def test_signer_pickles_and_tokenizes(fake_planetary_computer):
    sign = planetary_computer_signer()
    again = pickle.loads(pickle.dumps(sign))
    assert again(BLOB) == BLOB + "?sig=TOKEN"
    assert tokenize(sign) == tokenize(planetary_computer_signer())


def test_signer_for_each_provider(fake_planetary_computer):
    assert signer_for("planetary-computer") is not None
    assert signer_for("https://planetarycomputer.microsoft.com/api/stac/v1/") is not None
    assert signer_for("earth-search") is None
    assert signer_for("http://127.0.0.1:8080") is None
    assert signer_for("/data/catalog.json") is None
    assert signer_for(None) is None
    spec = SearchSpec(collection="mcd43a4", bbox=FIJI, datetime="2025-03")
    assert signer_for(spec) == planetary_computer_signer()


def test_search_results_are_not_signed(stac_api, fake_planetary_computer):
    items = search("mcd43a4", bbox=FIJI, datetime="2025-03", provider=stac_api, cache=False)
    hrefs = [asset.href for asset in items[0].assets.values()]
    assert not any("sig=" in h for h in hrefs)
    assert any(h.startswith("https://modiseuwest.blob.core.windows.net/") for h in hrefs)  # the remote hdf stays raw
    assert fake_planetary_computer == []
