"""Lazy attributes for package ``__init__`` modules: ``import unique_xr`` stays fast.

A package lists ``{public name: module}`` and gets a module ``__getattr__`` that imports the
module on first access (and caches the value in the package's namespace) plus a ``__dir__``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_attributes(package: str, mapping: Mapping[str, str], *, modules: frozenset[str] = frozenset(),
                    ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` exporting ``mapping``'s names.

    Names in ``modules`` resolve to the module itself rather than to an attribute of it.
    """

    def __getattr__(name: str) -> Any:
        if name in mapping:
            module = import_module(mapping[name])
            value = module if name in modules else getattr(module, name)
            vars(sys.modules[package])[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(mapping)

    return __getattr__, __dir__
