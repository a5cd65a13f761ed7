"""Let a subpackage be called like the function it is named after.

``unique_xr.search`` is both the subpackage (``unique_xr.search.collections``...) and the function
users call (``unique_xr.search("mcd43a4", ...)``); likewise ``unique_xr.load``. Python allows a
module's class to be swapped for a subclass of ModuleType, which is how the subpackage becomes
callable without shadowing games in ``unique_xr/__init__.py``.
"""

from __future__ import annotations

import importlib
import sys
import types


def make_callable(module_name: str, target: str) -> None:
    """Make module ``module_name`` callable; calls go to ``target`` (``"pkg.mod:function"``)."""
    mod_path, func_name = target.split(":")

    class _CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return getattr(importlib.import_module(mod_path), func_name)(*args, **kwargs)

        def __getattr__(self, name: str):
            # submodules on first use: `unique_xr.search.stac.signer_for` works in a fresh session
            if not name.startswith("_"):
                try:
                    return importlib.import_module(f"{self.__name__}.{name}")
                except ModuleNotFoundError as err:
                    if err.name != f"{self.__name__}.{name}":
                        raise
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    _CallableModule.__call__.__doc__ = f"Call :func:`{mod_path}.{func_name}`."
    sys.modules[module_name].__class__ = _CallableModule
