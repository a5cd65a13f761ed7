"""Small file helpers shared by the stages that write caches and model folders."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def private_tmp(path: str | os.PathLike) -> Path:
    """A temporary name beside ``path`` that no other process or thread uses (for writers that need a
    file name, such as rasterio; move it into place with ``os.replace``)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a private temporary file renamed into place.

    A reader never sees half a file, and concurrent writers (processes or threads) never share
    a temporary file.
    """
    tmp = private_tmp(path)
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


def save_figure(fig, path: str | os.PathLike, *, dpi: int | float | None = None) -> Path:
    """Save a matplotlib figure through :func:`write_atomic` (the format from the file's suffix, PNG without one)."""
    import io

    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".").lower() or "png", dpi=dpi)
    write_atomic(path, buf.getvalue())
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


#: The card key of a model folder that records the SHA-256 of each of its files, ``{file name: hex digest}``.
SHA256_KEY = "sha256"
#: Where cards written before :data:`SHA256_KEY` recorded the checksum of their one file (CNN and diffusion
#: folders: ``weights_sha256``; LightGBM folders: ``model_sha256``; older LightGBM folders: none).
LEGACY_SHA256_KEYS = ("weights_sha256", "model_sha256")


def write_model_folder(out: str | os.PathLike, *, card: Mapping[str, Any], card_name: str,
                       files: Mapping[str, bytes]) -> tuple[Path, dict]:
    """Write a model folder: each file, then a JSON card that records the SHA-256 of each.

    Every model kind (LightGBM, the annual CNN, the diffusion downscaler) writes its folder here, so
    they share one format: ``card_name`` + ``files`` + ``card[SHA256_KEY][name]`` for each file. The
    card is written last, so a folder with a card always has the files it describes. Returns the
    folder and the card as written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        write_atomic(out / name, data)
    card = {k: v for k, v in card.items() if k not in LEGACY_SHA256_KEYS}
    card[SHA256_KEY] = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    text = json.dumps(card, indent=2, default=_jsonable) + "\n"
    write_atomic(out / card_name, text.encode())
    return out, json.loads(text)


def recorded_sha256(card: Mapping[str, Any], name: str, *, files: Sequence[str]) -> str | None:
    """The SHA-256 a card records for the file ``name`` of a folder of ``files`` (None: none recorded)."""
    recorded = card.get(SHA256_KEY)
    if isinstance(recorded, Mapping):
        return recorded.get(name)
    if len(files) == 1:  # a card of the one-file format before SHA256_KEY
        return next((card[k] for k in LEGACY_SHA256_KEYS if card.get(k)), None)
    return None


def check_model_files(path: str | os.PathLike, card: Mapping[str, Any], files: Sequence[str], *, card_name: str,
                      error: type[Exception], required: bool = True) -> dict[str, bytes]:
    """The bytes of each of ``files`` in the folder ``path``, each checked against the SHA-256 in ``card``.

    Raises ``error`` naming the file when it is missing, or does not match its checksum (a damaged or
    swapped file). A card that records no checksum raises too, unless ``required`` is False (folders
    written before checksums existed; the caller then checks the contents another way).
    """
    path = Path(path)
    blobs = {}
    for name in files:
        file = path / name
        if not file.is_file():
            raise error(f"{file} is missing: the model folder is incomplete. Retrain or restore it.")
        blob = file.read_bytes()
        want = recorded_sha256(card, name, files=files)
        if want is None and required:
            raise error(f"{path / card_name} records no checksum of {name} ({SHA256_KEY}), so the file cannot be "
                        "checked and is not loaded: the card was edited or not written by unique_xr. Retrain or "
                        "restore the folder.")
        seen = hashlib.sha256(blob).hexdigest()
        if want is not None and seen != want:
            raise error(f"{file} does not match the checksum in its {card_name} (sha256 {seen[:12]}..., recorded "
                        f"{str(want)[:12]}...): the file is damaged or was replaced. Retrain or restore the folder; "
                        "unique_xr does not load an unchecked model file.")
        blobs[name] = blob
    return blobs


def read_model_folder(path: str | os.PathLike, *, card_name: str, files: Sequence[str], error: type[Exception],
                      what: str, hint: str = "") -> tuple[dict, dict[str, bytes]]:
    """Read and check a folder written by :func:`write_model_folder`: ``(card, {name: bytes})``.

    Raises ``error`` naming the files found when the folder is incomplete, when the card is not
    JSON or records no checksum, and when a file does not match it (a damaged or swapped file).
    """
    path = Path(path)
    if not all((path / name).is_file() for name in (card_name, *files)):
        have = sorted(p.name for p in path.iterdir()) if path.is_dir() else "nothing (no such folder)"
        raise error(f"{path} is not {what}: it needs {card_name} and {', '.join(files)}, found {have}.{hint}")
    try:
        card = json.loads((path / card_name).read_text())
    except json.JSONDecodeError as err:
        raise error(f"{path / card_name} is not valid JSON ({err}): the folder is damaged. Retrain or restore it.") from err
    if not isinstance(card, dict):
        raise error(f"{path / card_name} is not a model card (a JSON object): the folder is damaged. Retrain or "
                    "restore it.")
    return card, check_model_files(path, card, files, card_name=card_name, error=error)


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
