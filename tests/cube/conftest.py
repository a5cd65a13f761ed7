"""A small cube job on the embedded sample region: 256 x 256 px at 30 m, 2 days (with the Landsat date 2019-01-30), 4 units.

``fitted`` runs the job the UNIQUE way (the downscaler fitted on the region's own pairs); every
other run takes that downscaler as a given model folder, so the runs differ only in what a test
does to them (kills, reruns) and their cubes can be compared value for value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("icechunk")
distributed = pytest.importorskip("distributed")

# a 256 x 256-pixel corner of the sample region, on the 480 m lattice (edges at 15 m + k x 480 m)
BOUNDS = (585135.0, -2231025.0, 592815.0, -2223345.0)
SMALL = {"start": "2019-01-29", "end": "2019-01-30", "members": 2, "steps": 1, "unit_size": 128, "chunk": 128,
         "in_flight": 2, "fit_preset": "quick", "fit_steps": 20, "fit_units": 1, "fit_dates": 1}


@pytest.fixture(scope="session")
def staged(tmp_path_factory):
    from unique_xr.sample import stage_sample

    return stage_sample(tmp_path_factory.mktemp("sample") / "inputs")


def small_spec(staged, out: Path, **changes):
    """The small job's spec, writing to ``out``."""
    from unique_xr.pipeline.spec import CubeJobSpec
    from unique_xr.sample import SAMPLE_MISSING_INPUTS, sample_model

    values = {"bounds": BOUNDS, "crs": staged.grid.crs, "source": str(staged.catalog), "meteo": str(staged.met_path),
              "gpp_m": str(sample_model("gpp_m")), "gpp_l": str(sample_model("gpp_l")),
              "allow_missing": SAMPLE_MISSING_INPUTS, "out": str(out), **SMALL}
    values.update(changes)
    return CubeJobSpec(**values)


def write_toml(spec, path: Path) -> Path:
    """``spec`` as a TOML file (what a user writes), every key in its section."""
    from unique_xr.pipeline.spec import SECTIONS

    d = spec.to_dict()
    lines = []
    for section, keys in SECTIONS.items():
        lines.append(f"[{section}]")
        for key, field in keys.items():
            value = d.get(field)
            if value is None:
                continue
            lines.append(f"{key} = {json.dumps(value) if not isinstance(value, dict) else _inline(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _inline(d: dict) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in d.items()) + " }"


@pytest.fixture(scope="session")
def cluster():
    """Two worker processes, one thread each (the job's default kind of cluster); not the default scheduler of
    other tests."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c, \
            distributed.Client(c, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="session")
def fitted(staged, cluster, tmp_path_factory):
    """A job that fits its own downscaler; returns (result, spec)."""
    from unique_xr.pipeline.job import run_cube

    spec = small_spec(staged, tmp_path_factory.mktemp("fitted"), downscaler="fit")
    # one fit date: its pair has no earlier GPP_L, so the S3 fit says its prior channels stay untrained
    with pytest.warns(UserWarning, match="No training pair of this scheme-s3 fit has a prior"):
        result = run_cube(spec, client=cluster, progress=False)
    return result, spec


@pytest.fixture(scope="session")
def given_spec(staged, fitted):
    """Spec factory of runs that take the fitted downscaler as a model folder."""
    result, _ = fitted

    def make(out: Path, **changes):
        return small_spec(staged, out, **{"downscaler": str(result.out / "downscaler"), **changes})

    return make


@pytest.fixture(scope="session")
def clean(given_spec, cluster, tmp_path_factory):
    """An uninterrupted run with the given downscaler: the reference cube."""
    from unique_xr.pipeline.job import run_cube

    spec = given_spec(tmp_path_factory.mktemp("clean"))
    return run_cube(spec, client=cluster, progress=False), spec
