"""The one way a trained model reaches Dask workers: a handle of bytes and a token, built once per process.

Every model kind (LightGBM trees, the annual CNN, the diffusion downscaler) travels the same way:

- a :class:`WorkerHandle` holds the model as **bytes** (``data``), a short **token** naming those bytes,
  and a few plain options (an engine, a cache folder, a card). It is what goes into a Dask graph: one
  key that every block depends on, so a distributed worker receives (and unpickles) it once;
- :meth:`WorkerHandle.get` builds the in-memory model from the bytes (:meth:`WorkerHandle.build`, the
  one method a kind implements) the first time a process needs it, and keeps it in **one per-process
  cache** (least recently used first out), keyed by the handle's kind, token and options;
- **one load counter** (:func:`handle_loads`) counts those builds by token, so a test can check, with
  ``Client.run(handle_loads)``, that each worker built a model once however many blocks it ran.

Subclasses: :class:`unique_xr.models.engines.ModelHandle` (LightGBM),
:class:`unique_xr.models.cnn.cube.CnnHandle` and :class:`unique_xr.downscale.api.DownscalerHandle`.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from typing import Any, ClassVar

__all__ = ["WorkerHandle", "clear_handle_cache", "handle_loads"]

#: Built models kept per process (a few models at once is the realistic maximum).
MAX_CACHED = 8

_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_BUILDING: dict[tuple, threading.Lock] = {}
_LOCK = threading.Lock()
_LOADS: Counter[str] = Counter()


def handle_loads() -> dict[str, int]:
    """How many times a model was built from its handle in this process, by token.

    A library function, so ``Client.run(handle_loads)`` works on workers that do not import the tests.
    On a distributed worker it stays at one per model, however many blocks the worker runs.
    """
    with _LOCK:
        return dict(_LOADS)


def clear_handle_cache(kind: str | None = None) -> None:
    """Forget the models built in this process (all, or those of one ``kind``); the counter stays."""
    with _LOCK:
        for key in [k for k in _CACHE if kind is None or k[0] == kind]:
            del _CACHE[key]


class WorkerHandle:
    """A model as bytes and a token; pickled once into a graph, built once per process.

    Subclasses set :attr:`kind`, fill ``token`` and ``data`` in ``__init__`` and implement :meth:`build`.
    Options that change what :meth:`build` makes (an engine, a cache folder) are listed in
    :attr:`options`: they join the cache key and the Dask token. Attributes whose names start with
    ``_`` are not pickled.
    """

    #: Names the model kind in the cache key, the Dask token and the repr.
    kind: ClassVar[str] = "model"
    #: Attributes that change what :meth:`build` makes.
    options: ClassVar[tuple[str, ...]] = ()

    token: str
    data: bytes

    def to_bytes(self) -> bytes:
        """The model as the bytes this handle carries."""
        return self.data

    def build(self) -> Any:
        """The in-memory model (or predictor) made from :attr:`data`; called once per process."""
        raise NotImplementedError

    def cache_key(self) -> tuple:
        return (self.kind, self.token, *(getattr(self, name) for name in self.options))

    def get(self) -> Any:
        """The built model, from this process's cache or built now (and counted by :func:`handle_loads`).

        Safe from several threads at once: one builds, the others wait and share the result; two
        different models build in parallel.
        """
        key = self.cache_key()
        with _LOCK:
            if key in _CACHE:
                _CACHE.move_to_end(key)
                return _CACHE[key]
            building = _BUILDING.setdefault(key, threading.Lock())
        with building:
            with _LOCK:
                if key in _CACHE:
                    return _CACHE[key]
            built = self.build()
            with _LOCK:
                _CACHE[key] = built
                _LOADS[self.token] += 1
                _BUILDING.pop(key, None)
                while len(_CACHE) > MAX_CACHED:
                    _CACHE.popitem(last=False)
            return built

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __dask_tokenize__(self):
        return (f"unique_xr.{type(self).__name__}", *self.cache_key())

    def __repr__(self) -> str:
        extra = "".join(f", {name}={getattr(self, name)!r}" for name in self.options)
        return f"{type(self).__name__}(token={self.token!r}{extra})"
