"""Fixtures for the search tests: the real recorded Planetary Computer items, localized to small
COGs, served by a real STAC API (``rustac serve``) on a free loopback port."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

from unique_xr.testing.recorded import localize_items, recorded_items, write_item_collection
from unique_xr.testing.stac_server import serve_stac

#: Viti Levu, Fiji: inside MODIS tile h35v10, the tile of every recorded MODIS item.
FIJI = (177.0, -18.5, 179.0, -17.0)
#: North-east Tasmania: crossed by the recorded Landsat 9 scenes 089/089 and 089/090 of 2024-04-17.
TASMANIA = (147.5, -42.5, 148.5, -41.5)


#: Where the local COGs are centred (inside each item's footprint and native grid): MODIS tile
#: h35v10 only starts at 177.8 E at 17 S, so the Fiji window sits on its eastern part.
MODIS_CENTER = (178.8, -17.3)
LANDSAT_CENTER = (148.35, -42.35)  # inside scenes 089/089 and 089/090


@pytest.fixture(scope="session")
def localized_items(tmp_path_factory) -> list[dict]:
    """Every recorded item, with its registry assets rewritten to 32 x 32 local COGs."""
    folder = tmp_path_factory.mktemp("recorded_cogs")
    return localize_items(recorded_items(), folder, size=32, center=[MODIS_CENTER, LANDSAT_CENTER])


@pytest.fixture(scope="session")
def catalog_json(localized_items, tmp_path_factory) -> Path:
    """The localized items as one FeatureCollection JSON file."""
    return write_item_collection(localized_items, tmp_path_factory.mktemp("catalog") / "catalog.json")


@pytest.fixture(scope="session")
def stac_api(catalog_json) -> str:
    """Base URL of a loopback STAC API serving the localized recorded items."""
    with serve_stac([catalog_json]) as url:
        yield url


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    """A fresh search cache folder (never the user's ~/.cache)."""
    return tmp_path / "search-cache"


@pytest.fixture(autouse=True)
def _no_user_cache(tmp_path, monkeypatch):
    """Searches that use the default cache folder write under tmp_path, never in ~/.cache."""
    monkeypatch.setenv("UNIQUE_XR_CACHE_DIR", str(tmp_path / "default-cache"))


_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def _is_loopback(host) -> bool:
    try:
        return host in _LOOPBACK_NAMES or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """Fail loudly if a search test tries to reach anything but 127.0.0.1 (no network in tests)."""
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _is_loopback(host):
            raise socket.gaierror(f"tests must not use the network: lookup of {host!r} refused")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise OSError(f"tests must not use the network: connection to {address!r} refused")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
