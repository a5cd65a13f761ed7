"""Tree engines and the handle that carries a trained model to Dask workers.

A :class:`ModelHandle` holds the model as LightGBM text plus its hash; it is the LightGBM kind of
:class:`~unique_xr.models.handle.WorkerHandle`, the one way models reach Dask workers: one graph key
that every block depends on, so a distributed worker receives it once, and a predictor (a LightGBM
booster, or a compiled lleaves model) built once per process and engine (:func:`handle_loads` counts).

Engines
    ``"lightgbm"``
        ``Booster.predict``: the reference.
    ``"lleaves"``
        The trees compiled to machine code with LLVM (``pip install "unique_xr[fast]"``); the same
        predictions within 1e-10 relative (6.9e-11 measured on a 500-tree model), several times
        faster. Compiling took 1.3 s for 56 trees and 74-88 s for 500 trees of 63 leaves here, so
        the object file is cached on disk under the model hash, the lleaves and llvmlite versions
        and the host CPU (see :func:`cache_dir`), checked against its recorded SHA-256 when loaded,
        and rebuilt when missing or damaged.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from unique_xr._files import write_atomic
from unique_xr._optional import import_optional
from unique_xr.errors import SpecError
from unique_xr.models.handle import WorkerHandle, clear_handle_cache, handle_loads

__all__ = ["ENGINES", "ModelHandle", "cache_dir", "handle_loads"]

ENGINES = ("lightgbm", "lleaves")

Predictor = Callable[[np.ndarray, int], np.ndarray]


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Where compiled models are cached: ``path``, else ``$UNIQUE_XR_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/unique_xr`` (``~/.cache/unique_xr``)."""
    if path is not None:
        return Path(path)
    if os.environ.get("UNIQUE_XR_CACHE_DIR"):
        return Path(os.environ["UNIQUE_XR_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "unique_xr"


class ModelHandle(WorkerHandle):
    """A tree model as LightGBM text, its hash and the engine to run it with (a :class:`WorkerHandle`).

    The predictor built from it is cached per process by hash, engine and cache folder.

    Parameters
    ----------
    text
        The LightGBM model (``Booster.model_to_string()``).
    engine
        One of :data:`ENGINES`.
    cache
        Folder for compiled artefacts (``None``: :func:`cache_dir`).
    """

    kind = "lightgbm"
    options = ("engine", "cache")

    def __init__(self, text: str, *, engine: str = "lightgbm", cache: str | os.PathLike | None = None) -> None:
        if engine not in ENGINES:
            raise SpecError(f"engine must be one of {ENGINES}, got {engine!r}.")
        self.data = text.encode()
        self.engine = engine
        self.cache = str(cache_dir(cache))
        self.token = hashlib.sha256(self.data).hexdigest()[:24]

    @classmethod
    def from_booster(cls, booster: Any, **kwargs: Any) -> ModelHandle:
        return cls(booster.model_to_string(), **kwargs)

    @property
    def text(self) -> str:
        """The LightGBM model text."""
        return self.data.decode()

    def build(self) -> Predictor:
        return _BUILDERS[self.engine](self)

    def predict(self, X: np.ndarray, *, threads: int = 1) -> np.ndarray:
        """Raw tree output for a float64 ``(rows, features)`` matrix (NaN = missing)."""
        return self.get()(np.ascontiguousarray(X, dtype="float64"), threads)


def clear_predictors() -> None:
    """Forget the predictors built in this process (the on-disk cache stays)."""
    clear_handle_cache(ModelHandle.kind)


# --------------------------------------------------------------------------------------------
# builders


def _lightgbm(handle: ModelHandle) -> Predictor:
    lgb = import_optional("lightgbm", purpose="predicting GPP with the lightgbm engine")
    booster = lgb.Booster(model_str=handle.text)

    def predict(X: np.ndarray, threads: int) -> np.ndarray:
        return booster.predict(X, num_threads=threads)

    return predict


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compiled_path(handle: ModelHandle) -> Path:
    """The object file the lleaves engine caches for ``handle`` on this host."""
    from importlib.metadata import version

    import llvmlite.binding as llvm

    tag = f"lleaves{version('lleaves')}-llvmlite{version('llvmlite')}-{llvm.get_host_cpu_name()}"
    return Path(handle.cache) / "compiled" / f"{handle.token}-{tag}.o"


def _lleaves(handle: ModelHandle) -> Predictor:
    lleaves = import_optional("lleaves", purpose="the compiled engine (pip install 'unique_xr[fast]')")
    obj = compiled_path(handle)
    obj.parent.mkdir(parents=True, exist_ok=True)
    model_file = obj.parent / f"{handle.token}.txt"
    if not model_file.is_file() or _sha256(model_file)[:24] != handle.token:
        write_atomic(model_file, handle.text.encode())
    digest = obj.with_name(obj.name + ".sha256")
    model = lleaves.Model(model_file=str(model_file))
    if obj.is_file() and digest.is_file() and digest.read_text().strip() == _sha256(obj):
        model.compile(cache=str(obj))
    else:  # missing or damaged: compile to a private file, then move it into place
        obj.unlink(missing_ok=True)
        tmp = obj.with_name(f".{obj.stem}.{os.getpid()}.{threading.get_ident()}.o")
        model.compile(cache=str(tmp))
        write_atomic(digest, _sha256(tmp).encode())
        os.replace(tmp, obj)

    def predict(X: np.ndarray, threads: int) -> np.ndarray:
        return model.predict(X, n_jobs=threads)

    return predict


_BUILDERS: dict[str, Callable[[ModelHandle], Predictor]] = {"lightgbm": _lightgbm, "lleaves": _lleaves}
