"""Small file helpers shared by the stages that write caches and model folders."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a private temporary file renamed into place.

    A reader never sees half a file, and concurrent writers (processes or threads) never share
    a temporary file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk or an interrupt leaves no temporary file behind
        raise


def write_csv(frame, path: str | os.PathLike, *, float_format: str | None = None) -> Path:
    """Write a DataFrame as CSV (no index) through :func:`write_atomic`, creating the folder.

    A name ending in ``.gz`` is gzip-compressed (with a fixed timestamp, so equal frames give
    equal files). Returns the path.
    """
    import gzip

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = frame.to_csv(index=False, float_format=float_format).encode()
    write_atomic(path, gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path


def ensure_folder(path: str | os.PathLike, *, what: str) -> Path:
    """Create the output folder ``path`` (and its parents), or say clearly why it cannot be one.

    Raises :class:`~unique_xr.errors.OutputPathError` when ``path`` is an existing file, lies below
    one, or cannot be created or written (permissions, a read-only file system).
    """
    from unique_xr.errors import OutputPathError

    path = Path(path)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputPathError(f"{what} {str(path)!r} cannot be a folder: {str(blocker)!r} is a file. "
                              "Choose another path, or move the file away.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".unique_xr-write-test.{os.getpid()}.{threading.get_ident()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OutputPathError(f"{what} {str(path)!r} cannot be created or written ({err.strerror or err}). "
                              "Choose a folder you can write to.") from err
    return path


def write_model_folder(out: str | os.PathLike, *, card: dict, card_name: str, weights: bytes,
                       weights_name: str) -> Path:
    """Write a model folder: the weights, then a JSON card that records their SHA-256.

    The card is written last, so a folder with a card always has the weights it describes.
    Returns the folder.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / weights_name, weights)
    card = {**card, "weights_sha256": hashlib.sha256(weights).hexdigest()}
    write_atomic(out / card_name, (json.dumps(card, indent=2, default=_jsonable) + "\n").encode())
    return out


def read_model_folder(path: str | os.PathLike, *, card_name: str, weights_name: str, error: type[Exception],
                      what: str, hint: str = "") -> tuple[dict, bytes]:
    """Read and check a folder written by :func:`write_model_folder`: ``(card, weights)``.

    Raises ``error`` naming the files found when the folder is incomplete, when the card records no
    checksum, and when the weights do not match it (a damaged or swapped file).
    """
    path = Path(path)
    if not (path / card_name).is_file() or not (path / weights_name).is_file():
        have = sorted(p.name for p in path.iterdir()) if path.is_dir() else "nothing (no such folder)"
        raise error(f"{path} is not {what}: it needs {card_name} and {weights_name}, found {have}.{hint}")
    try:
        card = json.loads((path / card_name).read_text())
    except json.JSONDecodeError as err:
        raise error(f"{path / card_name} is not valid JSON ({err}): the folder is damaged. Retrain or restore it.") from err
    if not isinstance(card, dict) or not card.get("weights_sha256"):
        raise error(f"{path / card_name} records no checksum of {weights_name} (weights_sha256), so the weights "
                    "cannot be checked and are not loaded: the card was edited or not written by unique_xr. Retrain "
                    "or restore the folder.")
    blob = (path / weights_name).read_bytes()
    if hashlib.sha256(blob).hexdigest() != card["weights_sha256"]:
        raise error(f"{path / weights_name} does not match the checksum in {card_name}: the file is damaged. "
                    "Retrain or restore it.")
    return card, blob


def load_tensors(blob: bytes, path: str | os.PathLike, *, error: type[Exception]):
    """``torch.load`` of checked weights, tensors only (``weights_only=True``: nothing is imported or run).

    Any failure (not a torch file, a pickle that asks for code) becomes ``error`` naming ``path``.
    """
    import io

    import torch

    try:
        return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - RuntimeError (not a torch zip), UnpicklingError (code), ...
        first = str(err).splitlines()[0] if str(err) else ""
        raise error(f"{path} cannot be read as tensors ({type(err).__name__}: {first}); it is not loaded. "
                    "Retrain or restore the folder.") from err


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
