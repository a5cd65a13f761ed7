"""Fixtures shared by every test module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
#: The workplace's shared data folder sits beside the repository (also on CI).
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ``../shared/data``; fails (not skips) when missing, since real-data tests must run."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"Real test data expected at {SHARED_DATA} (the shared/ folder beside the repository).")
    return SHARED_DATA


@pytest.fixture(params=["numpy", "dask"])
def backend(request) -> str:
    """Run array tests on numpy-backed and dask-backed inputs."""
    return request.param


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20260508)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> tuple[Path, str]:
    """``(folder, printed output)`` of one ``unique-xr demo`` run on the embedded sample (read-only: copy to change)."""
    from typer.testing import CliRunner

    from unique_xr.cli import app

    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out, result.output
