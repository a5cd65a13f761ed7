"""Integrity of the Zarr cache: the completion mark, its check, and recovery of interrupted writes.

:func:`unique_xr.load.cache.to_zarr` sets, as the last write of a store, the root attribute
``unique_xr_complete`` (the *completion mark*)::

    {"format": 1,
     "run": "<run token>" or null,
     "arrays": {"<array>": {"chunks": <number of chunk files>, "bytes": <their total size>}, ...}}

``arrays`` lists what the finished store holds on disk: for every array folder (data variables and
coordinates alike), the files under it other than its ``zarr.json``, that is the chunks Zarr v3
keeps under ``<array>/c/...``. Zarr does not write chunks that hold only the fill value, so the
listing is taken from the disk after the write, not derived from the array shapes.
:func:`check_store` compares the disk with the mark by listing files (no chunk is read): a chunk
file deleted, truncated or added after the write is refused.

A writer's hidden sibling folders are named ``.<store>.<kind>-<token>-<pid>-<host>`` (the host's
name and, on Linux, its PID namespace, so containers sharing a host name are told apart), with kind
``partial`` (the store being written), ``old`` (the store being replaced) or ``trash`` (being
deleted), so that a later call can tell whether the process that made them still runs.
:func:`recover` finishes or undoes what a killed writer left behind, and :func:`install` renames a
finished store into place without ever replacing another writer's store by surprise.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any

from unique_xr.errors import CacheError

#: Root attribute set, last, on a store whose write finished (see the module docstring).
COMPLETE_ATTR = "unique_xr_complete"
#: Global attribute naming the run (the job's token) that wrote the store.
RUN_ATTR = "unique_xr_run"
#: Version of the layout of the completion mark.
MARK_FORMAT = 1

log = logging.getLogger("unique_xr.load.cache")



def _host_id() -> str:
    """This host's name and, on Linux, its PID namespace: two containers that share a host name but not
    a process table (so cannot see each other's processes) count as different hosts."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())[:64] or "unknown-host"
    try:
        return f"{name}.ns{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return name


_HOST = _host_id()
_KINDS = ("partial", "old", "trash")
_REWRITE = "Write it again with unique_xr.to_zarr(..., overwrite=True)."


def local_path(store: str | os.PathLike) -> Path:
    """The absolute local path of ``store``; URLs are refused (stores are renamed into place)."""
    text = os.fspath(store)
    if "://" in text:
        raise CacheError(
            f"unique_xr's Zarr cache needs a local path (it renames a finished store into place), got {text!r}. "
            "For object storage write with xarray's Dataset.to_zarr directly."
        )
    return Path(text).expanduser().absolute()


# --- writers' hidden folders -------------------------------------------------------------------


def writer_folder(target: Path, kind: str) -> Path:
    """A new hidden sibling of ``target`` owned by this process: ``.<name>.<kind>-<token>-<pid>-<host>``."""
    return target.with_name(f".{target.name}.{kind}-{uuid.uuid4().hex[:12]}-{os.getpid()}-{_HOST}")


def _parse_writer_folder(target_name: str, name: str) -> tuple[str, int, str] | None:
    """``(kind, pid, host)`` of a hidden folder made by a writer of ``target_name``, else None."""
    kinds = "|".join(_KINDS)
    found = re.fullmatch(rf"\.{re.escape(target_name)}\.({kinds})-[0-9a-f]{{12}}-(\d+)-(.+)", name)
    return None if found is None else (found[1], int(found[2]), found[3])


def _writer_alive(pid: int, host: str) -> bool:
    """Whether the writer may still run: True unless it is a process of this host that has ended."""
    if host != _HOST or os.name == "nt" or pid == os.getpid():
        return True  # another machine (or Windows, where os.kill ends processes): we cannot tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


# --- the completion mark -------------------------------------------------------------------------


def listing(path: Path) -> dict[str, dict[str, int]]:
    """``{array: {"chunks": n, "bytes": b}}``: the files under each array folder of the store at ``path``.

    Files and folders whose names start with a dot (``.DS_Store``...) are not counted.
    """
    arrays = {}
    with os.scandir(path) as entries:
        folders = [e for e in entries if e.is_dir() and not e.name.startswith(".")]
    for folder in folders:
        metadata = os.path.join(folder.path, "zarr.json")
        if not os.path.isfile(metadata):
            continue
        chunks = size = 0
        pending = [folder.path]
        while pending:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir():
                        pending.append(entry.path)
                    elif entry.path != metadata:
                        chunks += 1
                        size += entry.stat().st_size
        arrays[folder.name] = {"chunks": chunks, "bytes": size}
    return arrays


def make_mark(path: Path, *, run: str | None) -> dict[str, Any]:
    """The completion mark of the finished store at ``path`` (see the module docstring)."""
    return {"format": MARK_FORMAT, "run": run, "arrays": listing(path)}


def read_mark(path: Path) -> Any:
    """The completion mark in the root ``zarr.json`` of ``path``; None when the store has none."""
    try:
        metadata = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError) as err:
        raise CacheError(
            f"Could not read {str(path / 'zarr.json')!r} ({err}): the store is damaged. {_REWRITE}"
        ) from err
    attributes = metadata.get("attributes") if isinstance(metadata, dict) else None
    mark = attributes.get(COMPLETE_ATTR) if isinstance(attributes, dict) else None
    return mark or None


def check_store(path: Path, *, run: str | None = None) -> None:
    """Refuse, with a :class:`~unique_xr.errors.CacheError`, a store that is not as its writer left it.

    Checks, in order: the completion mark is there (the write finished), it has a layout this
    version knows, it names ``run`` (when given), and the files on disk match its listing.
    """
    mark = read_mark(path)
    where = repr(str(path))
    if mark is None:
        raise CacheError(
            f"The Zarr store at {where} is incomplete: it lacks the '{COMPLETE_ATTR}' mark that "
            "unique_xr.to_zarr sets after the last chunk is written (an interrupted write, or a store made by "
            "another tool). Delete it and write it again with unique_xr.to_zarr(..., overwrite=True)."
        )
    if not (isinstance(mark, dict) and isinstance(mark.get("format"), int) and isinstance(mark.get("arrays"), dict)
            and all(isinstance(v, dict) for v in mark["arrays"].values())):
        raise CacheError(
            f"The Zarr store at {where} carries an old or malformed completion mark ({COMPLETE_ATTR}={mark!r:.200}) "
            f"that does not record its chunk files, so it cannot be checked for deleted or truncated chunks. "
            f"{_REWRITE}"
        )
    if mark["format"] > MARK_FORMAT:
        raise CacheError(
            f"The Zarr store at {where} was written by a newer unique_xr (completion mark format {mark['format']}, "
            f"this version reads format {MARK_FORMAT}). Upgrade unique_xr, or rewrite the store with this version."
        )
    recorded = mark.get("run")
    if run is not None and recorded != run:
        written_by = "records no run" if recorded is None else f"was written by run {recorded!r}"
        raise CacheError(
            f"The Zarr store at {where} {written_by}, not by run {run!r}: the folder mixes outputs of different "
            "runs (e.g. a run killed midway and rerun with other settings or another seed). Rerun the job so that "
            "every store comes from one run, or open the store without run= to accept it as it is."
        )
    expected, found = mark["arrays"], listing(path)
    problems = []
    for name in sorted(set(expected) | set(found)):
        want, have = expected.get(name), found.get(name)
        if want is None:
            problems.append(f"array {name!r} at {str(path / name)!r} was added after the write")
        elif have is None:
            problems.append(f"array {name!r} is missing: no {str(path / name / 'zarr.json')!r}")
        elif (want.get("chunks"), want.get("bytes")) != (have["chunks"], have["bytes"]):
            problems.append(
                f"array {name!r} should have {want.get('chunks')} chunk files of {want.get('bytes')} bytes in all, "
                f"but {str(path / name)!r} holds {have['chunks']} of {have['bytes']} bytes"
            )
    if problems:
        raise CacheError(
            f"The Zarr store at {where} is damaged: " + "; ".join(problems) + ". A chunk file was deleted, "
            "truncated or added after unique_xr.to_zarr wrote it, and reading it would give wrong values "
            f"(missing chunks read as fill/NaN). {_REWRITE}"
        )


# --- renaming into place, recovery ---------------------------------------------------------------


def install(partial: Path, target: Path, *, replace: bool, replaced: int | None) -> None:
    """Rename the finished store ``partial`` to ``target``.

    Without ``replace`` the rename fails, with a :class:`~unique_xr.errors.CacheError`, if a store
    appeared at ``target`` since the write began (POSIX refuses to rename a folder onto a non-empty
    one). With ``replace`` the store in place is moved aside, then deleted once ``partial`` is in;
    a store that another writer put there meanwhile is replaced too (the last writer wins), with a
    logged warning. ``replaced`` is the inode of the store this write meant to replace, or None.
    """
    if not replace:
        try:
            os.rename(partial, target)
        except OSError as err:
            if not os.path.lexists(target):
                raise
            raise CacheError(
                f"Another writer created {str(target)!r} while this write ran, and mode='w-' never replaces an "
                "existing store: this write was discarded and the other writer's store kept. Open it with "
                "unique_xr.open_zarr, or write again with overwrite=True to replace it."
            ) from err
        return
    displaced: list[Path] = []
    try:
        for _attempt in range(10):
            if os.path.lexists(target):
                old = writer_folder(target, "old")
                try:
                    os.rename(target, old)
                    displaced.append(old)
                except FileNotFoundError:
                    pass  # another writer moved it first
            try:
                os.rename(partial, target)
                break
            except OSError as err:
                if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
        else:
            raise CacheError(
                f"Could not put the new store at {str(target)!r}: other writers kept replacing it. Write each "
                "store from one job at a time."
            )
    except BaseException:
        if displaced and not os.path.lexists(target):
            os.rename(displaced.pop(), target)  # put the store that was there back
        raise
    finally:
        for old in displaced:
            if _inode(old) != replaced:
                log.warning("Replaced the store that another writer put at %s while this write ran (overwrite: "
                            "the last writer wins).", target)
            shutil.rmtree(old, ignore_errors=True)


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _finished_mtime(folder: Path, kind: str) -> float | None:
    """Modification time of the mark of a store worth putting back at its path, else None."""
    try:
        if kind == "partial":
            check_store(folder)  # a finished write, verified
        elif read_mark(folder) is None:
            return None  # a store being replaced is put back as it was, damaged or of an old format
        return (folder / "zarr.json").stat().st_mtime
    except (CacheError, OSError):
        return None


def recover(store: str | os.PathLike) -> list[str]:
    """Finish or undo what writers of ``store`` left behind when they were killed.

    :func:`~unique_xr.load.cache.to_zarr` and :func:`~unique_xr.load.cache.open_zarr` call it first;
    call it yourself to clean a folder. Only the hidden folders of writers known to have ended are
    touched: those made by a process of this host that no longer runs. Folders of live writers,
    of writers on other hosts and of unique_xr versions that did not record their writer are left
    alone.

    1. If no store is at ``store``, the newest finished write of a dead writer (a
       ``.<name>.partial-*`` folder with a verified completion mark) is moved into place: it was
       killed between finishing and renaming. Failing that, the newest store a dead writer was
       replacing (``.<name>.old-*``) is put back.
    2. The other ``.partial-*``, ``.old-*`` and ``.trash-*`` folders of dead writers are deleted.

    Parameters
    ----------
    store
        Local path of a store written by :func:`~unique_xr.load.cache.to_zarr`.

    Returns
    -------
    list of str
        One sentence per action taken (also logged on the ``unique_xr.load.cache`` logger); empty
        when there was nothing to do.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from unique_xr.load.cache import recover
    >>> recover(pathlib.Path(tempfile.mkdtemp()) / "cube.zarr")
    []
    """
    target = local_path(store)
    try:
        with os.scandir(target.parent) as entries:
            names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []  # no parent folder: nothing was written there
    dead = []
    for name in names:
        parsed = _parse_writer_folder(target.name, name)
        if parsed is not None and not _writer_alive(parsed[1], parsed[2]):
            dead.append((parsed[0], target.parent / name, f"pid {parsed[1]} on {parsed[2]}"))
    done: list[str] = []
    if dead and not os.path.lexists(target):
        for kind, how in (("partial", "the finished write {} (its writer, {}, was killed before renaming it) "
                                      "into place at {}"),
                          ("old", "the previous store {} (its writer, {}, was killed while replacing it) back to {}")):
            candidates = [(m, entry) for entry in dead if entry[0] == kind
                          and (m := _finished_mtime(entry[1], kind)) is not None]
            for _, entry in sorted(candidates, key=lambda c: c[0], reverse=True):
                try:
                    os.rename(entry[1], target)
                except OSError:
                    continue  # someone else recovered it, or put a store in place, first
                done.append("moved " + how.format(entry[1].name, entry[2], target))
                log.warning("recover: %s", done[-1])
                dead.remove(entry)
                break
            if os.path.lexists(target):
                break
    for kind, folder, writer in dead:
        trash = folder if kind == "trash" else writer_folder(target, "trash")
        try:
            if trash != folder:
                os.rename(folder, trash)  # claim it first: a concurrent recovery may be restoring it
            shutil.rmtree(trash)
        except FileNotFoundError:
            continue  # another process removed or restored it
        except OSError as err:
            log.warning("Could not remove %s, left by %s: %s", folder, writer, err)
            continue
        done.append(f"removed {folder}, left by {writer} which no longer runs")
        log.info("recover: %s", done[-1])
    return done
