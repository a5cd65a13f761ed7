"""Import heavy optional dependencies only where they are used.

``import unique_xr`` stays fast and works with the core install; a function that needs, say,
stackstac calls :func:`import_optional` and the user gets an ImportError that names the extra
(``pip install 'unique_xr[stac]'``) instead of a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from unique_xr.errors import MissingDependencyError

#: module (top-level import name) -> the extra of unique_xr that installs it
EXTRAS: dict[str, str] = {
    "pystac": "stac",
    "pystac_client": "stac",
    "stackstac": "stac",
    "odc.stac": "stac",
    "rustac": "stac",
    "pyarrow": "stac",
    "netCDF4": "met",
    "h5netcdf": "met",
    "scipy": "met",
    "distributed": "distributed",
    "lightgbm": "ml",
    "sklearn": "ml",
    "torch": "torch",
    "xbatcher": "torch",
    "matplotlib": "viz",
    "icechunk": "cube",
    "flox": "cube",
}


def import_optional(name: str, *, purpose: str | None = None) -> ModuleType:
    """Import module ``name`` or raise :class:`MissingDependencyError` naming the extra.

    Parameters
    ----------
    name
        Importable module name, e.g. ``"stackstac"`` or ``"odc.stac"``.
    purpose
        Short text for the message, e.g. ``"loading STAC items"``.
    """
    try:
        return importlib.import_module(name)
    except ImportError as err:
        extra = EXTRAS.get(name, EXTRAS.get(name.split(".")[0], "all"))
        why = f" for {purpose}" if purpose else ""
        hint = (
            "pip install torch==2.13.0 first (the CPU wheel), then pip install 'unique_xr[torch]'"
            if extra == "torch"
            else f"pip install 'unique_xr[{extra}]'"
        )
        raise MissingDependencyError(
            f"{name!r} is needed{why} but could not be imported ({err}). Install it with: {hint}"
        ) from err
