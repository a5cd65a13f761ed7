"""Every command on a broken input ends in one ``error:`` line and exit code 1, never a traceback.

The rule lives in one place, ``unique_xr.cli._ErrorBoundary``; :func:`test_every_command_has_a_case`
makes sure a new command gets a case here.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from unique_xr.cli import app

from .conftest import TOWERS

runner = CliRunner()


def _truncated_geotiff(folder: Path) -> Path:
    import rasterio
    from rasterio.transform import from_origin

    path = folder / "coarse.tif"
    profile = dict(driver="GTiff", width=64, height=64, count=1, dtype="float32", crs="EPSG:32650",
                   transform=from_origin(0, 640, 10, 10))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.random.default_rng(0).random((1, 64, 64), dtype="float32"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def _empty(folder: Path, name: str = "empty.csv") -> Path:
    path = folder / name
    path.write_bytes(b"")
    return path


def _truncated_model(folder: Path, model_dir: Path) -> Path:
    text = (model_dir / "model.txt").read_bytes()
    (model_dir / "model.txt").write_bytes(text[: len(text) // 2])
    return model_dir


def _header_only(folder: Path, table: pd.DataFrame) -> Path:
    path = folder / "header.csv"
    table.iloc[:0].to_csv(path, index=False)
    return path


#: command path -> (arguments for a broken input, words the error line must contain)
CASES: dict[str, Callable[..., tuple[list[str], tuple[str, ...]]]] = {
    "demo (out is a file)": lambda f, **_: (["demo", "--out", str(_empty(f, "taken"))], ("is a file",)),
    "demo (out cannot be created)": lambda f, **_: (["demo", "--out", "/proc/1/unique_xr_demo"],
                                                    ("cannot be created",)),
    "search": lambda f, **_: (["search", "mcd43a4", "--bbox", "177,-18.5", "--datetime", "2025-03-01/2025-03-31",
                               "--provider", str(_empty(f, "catalog.json"))], ("bbox",)),
    "train": lambda f, **_: (["train", "--table", str(_empty(f)), "--target", "gpp_obs", "--out", str(f / "m")],
                             ("empty.csv is empty",)),
    "predict (truncated model)": lambda f, model_dir, table_csv, **_: (
        ["predict", "--model", str(_truncated_model(f, model_dir)), "--table", str(table_csv), "--out",
         str(f / "p.csv")], ("model.txt", "checksum")),
    "predict (header-only table)": lambda f, model_dir, tower_table, **_: (
        ["predict", "--model", str(model_dir), "--table", str(_header_only(f, tower_table)), "--out",
         str(f / "p.csv")], ("header.csv has a header but no rows",)),
    "join-landsat": lambda f, table_csv, **_: (
        ["join-landsat", "--landsat", str(_empty(f)), "--daily", str(table_csv), "--out", str(f / "j.csv")],
        ("empty.csv is empty",)),
    "downscale fit": lambda f, **_: (
        ["downscale", "fit", "--coarse", str(_truncated_geotiff(f)), "--fine", str(_truncated_geotiff(f)),
         "--scheme", "s1", "--out", str(f / "d")], ("coarse.tif", "damaged")),
    "downscale predict": lambda f, downscaler_dir, **_: (
        ["downscale", "predict", "--model", str(downscaler_dir), "--coarse", str(_truncated_geotiff(f)), "--out",
         str(f / "o.tif")], ("coarse.tif", "damaged")),
    "downscale calibrate": lambda f, downscaler_dir, **_: (
        ["downscale", "calibrate", "--model", str(downscaler_dir), "--coarse", str(_truncated_geotiff(f)), "--fine",
         str(_truncated_geotiff(f))], ("coarse.tif", "damaged")),
    "downscale distill": lambda f, downscaler_dir, **_: (
        ["downscale", "distill", "--model", str(downscaler_dir), "--coarse", str(_truncated_geotiff(f)), "--fine",
         str(_truncated_geotiff(f)), "--no-progress"], ("coarse.tif", "damaged")),
    "cnn train": lambda f, **_: (["cnn", "train", "--table", str(_empty(f)), "--out", str(f / "c")],
                                 ("empty.csv",)),
    "cnn predict": lambda f, **_: (["cnn", "predict", "--model", str(f / "none"), "--table", str(_empty(f)),
                                    "--out", str(f / "p.csv")], ("none",)),
    "cnn evaluate": lambda f, **_: (["cnn", "evaluate", "--table", str(_empty(f)), "--out", str(f / "e"),
                                     "--folds", "2", "--models", "rf"], ("empty.csv",)),
    "cube run (unknown key)": lambda f, **_: (["cube", "run", str(_toml(f, "[region]\nbboxx = [1, 2, 3, 4]\n"))],
                                              ("unknown key [region] bboxx",)),
    "cube run (bad value)": lambda f, **_: (
        ["cube", "run", str(_toml(f, '[region]\nbbox = [127.0, 36.0, 127.1, 36.1]\n[period]\nstart = "2023-02-30"'
                                     '\nend = "2023-03-01"\n[meteo]\npath = "m.nc"\n[models]\ngpp_m = "m"\n'
                                     'downscaler = "d"\n'))], ("[period] start = '2023-02-30'",)),
    "cube status": lambda f, **_: (["cube", "status", str(f)], ("No cube in",)),
    "cube export": lambda f, **_: (["cube", "export", str(f), "--format", "netcdf", "--out", str(f / "c.nc")],
                                   ("No cube in",)),
    "cube plot": lambda f, **_: (["cube", "plot", str(f), "--out", str(f / "c.png")], ("No cube in",)),
}


def _toml(folder: Path, text: str) -> Path:
    path = folder / "job.toml"
    path.write_text(text)
    return path


@pytest.fixture
def downscaler_dir(tmp_path: Path) -> Path:
    """A copy of the shipped demonstration downscaler's folder."""
    from unique_xr.sample import sample_downscaler

    return Path(shutil.copytree(sample_downscaler(), tmp_path / "downscale_s2"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_broken_input_ends_in_one_error_line(case, tmp_path, model_dir, table_csv, tower_table, downscaler_dir):
    folder = tmp_path / "work"
    folder.mkdir()
    args, words = CASES[case](folder, model_dir=model_dir, table_csv=table_csv, tower_table=tower_table,
                              downscaler_dir=downscaler_dir)
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), f"a traceback: {result.exception!r}\n{result.output}"
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert all(word in result.output for word in words), result.output


def _command_paths(group, prefix=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a command group
            yield from _command_paths(command, (*prefix, name))
        else:
            yield " ".join((*prefix, name))


def test_every_command_has_a_case():
    """A new command must join the catalogue (``collections`` takes no input)."""
    covered = {case.split(" (")[0] for case in CASES} | {"collections"}
    commands = set(_command_paths(typer.main.get_command(app)))
    assert commands <= covered, f"commands without a broken-input case: {sorted(commands - covered)}"


def test_predict_writes_into_a_new_folder_atomically(model_dir, table_csv, tmp_path):
    out = tmp_path / "new" / "deeper" / "gpp.csv"
    result = runner.invoke(app, ["predict", "--model", str(model_dir), "--table", str(table_csv), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(out).columns) == ["site", "date", "gpp"]
    assert [p.name for p in out.parent.iterdir()] == ["gpp.csv"]  # no temporary file left behind


def test_join_landsat_creates_the_output_folder(shared_data, tmp_path):
    """The tester's case: --out into a folder that does not exist (other commands create it)."""
    landsat = pd.read_csv(shared_data / TOWERS / "landsat7_c2l2_at_towers.csv.gz")
    small = tmp_path / "landsat.csv"
    landsat[landsat["sitename"].isin(["BE-Bra", "DE-Gri"])].to_csv(small, index=False)
    out = tmp_path / "not" / "yet" / "joined.csv.gz"
    result = runner.invoke(app, ["join-landsat", "--landsat", str(small), "--daily",
                                 str(shared_data / TOWERS / "daily_gpp_x_modis_x_met.csv.gz"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with gzip.open(out, "rt") as fh:
        joined = pd.read_csv(fh)
    assert set(joined["site"]) == {"BE-Bra", "DE-Gri"} and "gpp_obs" in joined.columns
    assert [p.name for p in out.parent.iterdir()] == ["joined.csv.gz"]


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    """Only errors about the input become `error:` lines; a programming error still shows where it is."""
    import unique_xr.pipeline.demo as pipeline

    def broken(*args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(pipeline, "run_demo", broken)
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "d")])
    assert isinstance(result.exception, TypeError)
    shutil.rmtree(tmp_path / "d", ignore_errors=True)
