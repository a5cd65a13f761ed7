"""Signing hrefs at read time (Planetary Computer's SAS tokens).

The search never signs: the loader applies the ``Callable[[str], str]`` from :func:`signer_for`
to each href inside the task that opens it, so Dask graphs hold token-free URLs that do not expire.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from unique_xr.errors import MissingDependencyError
from unique_xr.search.collections import PROVIDERS
from unique_xr.search.spec import SearchSpec

__all__ = ["planetary_computer_signer", "signer_for"]


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
