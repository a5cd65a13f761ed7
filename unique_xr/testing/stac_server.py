"""A real STAC API on loopback for tests: ``rustac serve`` with the items you give it.

:func:`serve_stac` starts the ``rustac`` command-line server (from the ``rustac`` PyPI package) on a
free 127.0.0.1 port with an in-memory backend, waits until it answers, yields its base URL, and
stops it on exit. pystac-client, :func:`unique_xr.search` and plain HTTP then talk to it exactly as
they would to Planetary Computer, with no network.

Examples
--------
>>> import tempfile
>>> from pystac_client import Client
>>> from unique_xr.testing.recorded import recorded_items, write_item_collection
>>> from unique_xr.testing.stac_server import serve_stac
>>> catalog = write_item_collection(recorded_items("landsat-c2-l2"), tempfile.mkdtemp() + "/items.json")
>>> with serve_stac([catalog]) as url:
...     ids = sorted(i.id for i in Client.open(url).search(collections=["landsat-c2-l2"]).items())
>>> len(ids)
5
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

from unique_xr.errors import MissingDependencyError

__all__ = ["serve_stac", "rustac_command", "free_port"]


def rustac_command() -> list[str]:
    """The command that runs the rustac CLI: the venv's ``rustac`` script, else PATH, else ``python -c``."""
    bindir = Path(sys.executable).parent
    for name in ("rustac", "rustac.exe"):
        candidate = bindir / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    found = shutil.which("rustac")
    if found:
        return [found]
    try:
        import rustac  # noqa: F401
    except ImportError as err:
        raise MissingDependencyError(
            f"The loopback STAC server needs the 'rustac' package ({err}). "
            "Install it with: pip install 'unique_xr[stac]'"
        ) from err
    return [sys.executable, "-c", "import sys, rustac; sys.argv[0] = 'rustac'; sys.exit(rustac.main())"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _check_loopback(host: str) -> None:
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"serve_stac only binds a loopback address such as '127.0.0.1', got host={host!r}")


def _servable(hrefs: Iterable[str | os.PathLike], workdir: Path) -> list[str]:
    """Paths rustac can load. A JSON *list* of items (which rustac rejects) becomes a FeatureCollection."""
    out = []
    for i, href in enumerate(hrefs):
        path = Path(href)
        if not path.exists():
            raise FileNotFoundError(f"serve_stac: {path} does not exist")
        if path.suffix.lower() == ".json":
            with path.open() as f:
                first = f.read(64).lstrip()[:1]
            if first == "[":
                fc = {"type": "FeatureCollection", "features": json.loads(path.read_text())}
                path = workdir / f"{i}-{path.stem}.json"
                path.write_text(json.dumps(fc))
        out.append(str(path.resolve()))
    if not out:
        raise ValueError("serve_stac needs at least one item, item collection or geoparquet file")
    return out


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/", timeout=1) as resp:
            return resp.status == 200 and json.loads(resp.read()).get("type") == "Catalog"
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextlib.contextmanager
def serve_stac(
    hrefs: Iterable[str | os.PathLike],
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    timeout: float = 30,
) -> Iterator[str]:
    """Serve ``hrefs`` (item / ItemCollection JSON, ndjson, stac-geoparquet) as a STAC API on loopback.

    Parameters
    ----------
    hrefs
        Files to load. Collections are created for items that name one that is not loaded.
    host
        A loopback address (anything else is refused).
    port
        Port to listen on; default a free one.
    timeout
        Seconds to wait for the API to answer before giving up.

    Yields
    ------
    str
        The API's base URL, e.g. ``"http://127.0.0.1:40123"``.
    """
    _check_loopback(host)
    with tempfile.TemporaryDirectory(prefix="unique_xr_stac_") as tmp:
        workdir = Path(tmp)
        files = _servable(hrefs, workdir)
        parquet = any(f.lower().endswith((".parquet", ".geoparquet")) for f in files)
        # the DuckDB backend would download its spatial extension: keep everything in memory, offline
        options = ["--use-duckdb", "false"] if parquet else []
        attempts = 1 if port is not None else 3  # a free port can be taken between probe and bind
        last_error = ""
        for _ in range(attempts):
            chosen = port if port is not None else free_port(host)
            url = f"http://{host}:{chosen}"
            log = (workdir / "rustac.log").open("w+")
            cmd = [*rustac_command(), "serve", "--create-collections", *options, "--addr", f"{host}:{chosen}", *files]
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    if proc.poll() is not None or _answers(url):
                        break
                    time.sleep(0.05)
                if proc.poll() is None and _answers(url):
                    yield url
                    return
                log.seek(0)
                last_error = log.read()[-2000:]
                if proc.poll() is None:
                    raise TimeoutError(
                        f"rustac serve did not answer at {url} within {timeout} s. Its log:\n{last_error}"
                    )
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                log.close()
        raise RuntimeError(f"rustac serve exited before answering ({' '.join(cmd)}). Its log:\n{last_error}")
