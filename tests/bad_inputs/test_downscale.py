"""Bad inputs and faults of ``unique-xr downscale`` (fit / predict / calibrate) and the API behind it.

* a crafted ``checkpoint.pt`` (code in its pickle, a checksum that does not match, no record) is refused
  before anything in it runs;
* a truncated GeoTIFF gives an ``error:`` line naming the file, not a rasterio traceback;
* ``--steps 0`` (training or sampling) is refused before anything is written;
* inputs unlike the training data (values 1000 x the trained range, another nesting factor) are refused,
  or predicted with a warning under ``allow_out_of_range`` / ``--allow-out-of-range``.

The data are small synthetic GeoTIFFs (64 x 64 fine pixels of 30 m, coarse pixels of 4 x 4 fine ones) and
the models are the ``quick`` preset trained for a few steps: the tests are about refusals, not accuracy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

torch = pytest.importorskip("torch")
pytest.importorskip("xbatcher")
rasterio = pytest.importorskip("rasterio")

from affine import Affine  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from unique_xr.cli import app  # noqa: E402
from unique_xr.downscale import DownscaleConfig, calibrate, downscale, fit, load_downscaler  # noqa: E402
from unique_xr.downscale.conditioning import DownscaleInputError  # noqa: E402
from unique_xr.downscale.io import read_single_band  # noqa: E402
from unique_xr.downscale.model import ModelFolderError  # noqa: E402
from unique_xr.errors import AssetReadError  # noqa: E402
from unique_xr.testing import raise_if_dask_computes  # noqa: E402

N, K = 64, 4  # fine side (px), coarse pixel in fine pixels
FINE_TRANSFORM = Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 4_000_000.0)
COARSE_TRANSFORM = Affine(30.0 * K, 0.0, 500_000.0, 0.0, -30.0 * K, 4_000_000.0)
QUICK = ["--preset", "quick", "--steps", "3", "--no-progress"]
CONFIG = DownscaleConfig.preset("quick", train_steps=4, checkpoint_every=2)


def _run(*args):
    return CliRunner().invoke(app, ["downscale", *[str(a) for a in args]])


def _ok(result):
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return result


def _refused(result, *needles: str) -> str:
    """Exit != 0 through ``_fail`` (SystemExit, no traceback), one ``error:`` line holding every needle."""
    assert result.exit_code not in (0, None), result.output
    assert isinstance(result.exception, SystemExit), f"{result.exception!r} escaped:\n{result.output}"
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors, result.output
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def _field(i: int, seed: int = 0) -> np.ndarray:
    """A fine image 0.2-0.8: a date-dependent level, a gradient and fine noise."""
    rng = np.random.default_rng(seed + i)
    y, x = np.mgrid[0:N, 0:N] / N
    return 0.3 + 0.05 * i + 0.3 * x * y + 0.05 * np.sin(6 * x) + 0.03 * rng.standard_normal((N, N))


def _coarse_of(fine: np.ndarray) -> np.ndarray:
    return fine.reshape(N // K, K, N // K, K).mean(axis=(1, 3))


def _write(path: Path, values: np.ndarray, transform) -> Path:
    values = np.asarray(values, dtype=np.float32)
    with rasterio.open(path, "w", driver="GTiff", height=values.shape[0], width=values.shape[1], count=1,
                       dtype="float32", transform=transform, crs="EPSG:32633", nodata=float("nan")) as dst:
        dst.write(values, 1)
    return path


def _truncated(src: Path, dst: Path) -> Path:
    """The file cut in half, as an interrupted download leaves it: the header opens, the pixels do not read."""
    blob = src.read_bytes()
    dst.write_bytes(blob[: len(blob) // 2])
    return dst


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("downscale_bad_inputs")
    paths = {}
    for i in range(3):  # pairs 0 and 1 train, pair 2 is a new date
        fine = _field(i)
        paths[f"fine{i}"] = _write(out / f"fine{i}.tif", fine, FINE_TRANSFORM)
        paths[f"coarse{i}"] = _write(out / f"coarse{i}.tif", _coarse_of(fine), COARSE_TRANSFORM)
    paths["coarse_x1000"] = _write(out / "coarse_x1000.tif", 1000 * _coarse_of(_field(2)), COARSE_TRANSFORM)
    paths["fine_truncated"] = _truncated(paths["fine0"], out / "fine0_truncated.tif")
    paths["coarse_truncated"] = _truncated(paths["coarse2"], out / "coarse2_truncated.tif")
    return paths


@pytest.fixture(scope="module")
def s1_model(files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "s1"
    _ok(_run("fit", "--coarse", files["coarse0"], files["coarse1"], "--fine", files["fine0"], files["fine1"],
             "--scheme", "s1", "--out", out, *QUICK))
    return out


def _pairs(n: int = 2, seed: int = 0):
    fine = [xr.DataArray(_field(i, seed), dims=("y", "x"), name="gpp") for i in range(n)]
    coarse = [xr.DataArray(_coarse_of(f.values), dims=("y", "x"), name="gpp") for f in fine]
    return coarse, fine


# ---------------------------------------------------------------------------------------------
# 1. checkpoints: tensors only, checked against their SHA-256 record before loading
# ---------------------------------------------------------------------------------------------
class _RunsCode:
    """Unpickling this runs ``exec(code)``: what a crafted checkpoint does with ``weights_only=False``."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        import builtins

        return builtins.exec, (self.code,)


def _interrupted_fit(tmp_path: Path) -> tuple[Path, tuple]:
    coarse, fine = _pairs()
    folder = tmp_path / "model"
    fit(coarse, fine, scheme="s1", config=CONFIG, out=folder, stop_after=2)
    return folder, (coarse, fine)


def _craft(folder: Path, marker: Path, *, record: bool) -> None:
    """Replace the checkpoint by one whose unpickling writes ``marker``; with ``record`` also forge its checksum."""
    evil = {"step": 2, "net": _RunsCode(f"open({str(marker)!r}, 'w').write('pwned')")}
    torch.save(evil, folder / "checkpoint.pt")
    if record:
        digest = hashlib.sha256((folder / "checkpoint.pt").read_bytes()).hexdigest()
        (folder / "checkpoint.json").write_text(json.dumps({"file": "checkpoint.pt", "sha256": digest, "step": 2}))


def test_checkpoint_is_recorded_and_resume_still_works(tmp_path):
    folder, (coarse, fine) = _interrupted_fit(tmp_path)
    record = json.loads((folder / "checkpoint.json").read_text())
    assert record["sha256"] == hashlib.sha256((folder / "checkpoint.pt").read_bytes()).hexdigest()
    assert record["step"] == 2 and not (folder / "weights.pt").exists()
    resumed = fit(coarse, fine, scheme="s1", config=CONFIG, out=folder, resume=True)
    assert resumed.card["training"]["steps"] == 4 and (folder / "weights.pt").exists()


def test_a_kill_between_the_record_and_the_checkpoint_still_resumes(tmp_path, monkeypatch):
    """The record is written first and keeps the checksum of the checkpoint it replaces."""
    import unique_xr.downscale.model as model_module

    folder, (coarse, fine) = _interrupted_fit(tmp_path)
    kept = (folder / "checkpoint.pt").read_bytes()
    real = model_module.write_atomic

    def killed_at_the_checkpoint(path, data):
        if Path(path).name == "checkpoint.pt":
            raise KeyboardInterrupt  # the process dies after the new record, before the new checkpoint
        real(path, data)

    monkeypatch.setattr(model_module, "write_atomic", killed_at_the_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        fit(coarse, fine, scheme="s1", config=CONFIG, out=folder, resume=True, stop_after=3)
    monkeypatch.undo()
    record = json.loads((folder / "checkpoint.json").read_text())
    assert record["step"] == 3 and record["previous_sha256"] == hashlib.sha256(kept).hexdigest()
    assert (folder / "checkpoint.pt").read_bytes() == kept
    resumed = fit(coarse, fine, scheme="s1", config=CONFIG, out=folder, resume=True)
    assert resumed.card["training"]["steps"] == 4


def test_resume_refuses_a_checkpoint_whose_pickle_runs_code(tmp_path):
    """The record matches (the attacker forged it too): weights_only refuses the pickle, nothing runs."""
    folder, (coarse, fine) = _interrupted_fit(tmp_path)
    marker = tmp_path / "marker.txt"
    _craft(folder, marker, record=True)
    with pytest.raises(Exception) as err:
        fit(coarse, fine, scheme="s1", config=CONFIG, out=folder, resume=True)
    assert not marker.exists(), "unpickling the checkpoint ran code"
    assert err.type is ModelFolderError, repr(err.value)
    assert "not a checkpoint of tensors and plain values" in str(err.value)
    assert str(folder / "checkpoint.pt") in str(err.value) and "without resume" in str(err.value)


def test_resume_refuses_a_checkpoint_that_does_not_match_its_record(tmp_path):
    folder, (coarse, fine) = _interrupted_fit(tmp_path)
    marker = tmp_path / "marker.txt"
    _craft(folder, marker, record=False)  # the record of the real checkpoint stays
    with pytest.raises(Exception) as err:
        fit(coarse, fine, scheme="s1", config=CONFIG, out=folder, resume=True)
    assert not marker.exists(), "unpickling the checkpoint ran code"
    assert err.type is ModelFolderError and "does not match the SHA-256 in checkpoint.json" in str(err.value)
    (folder / "checkpoint.json").unlink()
    with pytest.raises(ModelFolderError, match="no checksum record checkpoint.json"):
        fit(coarse, fine, scheme="s1", config=CONFIG, out=folder, resume=True)
    assert not marker.exists()


def test_cli_resume_of_a_crafted_checkpoint_is_an_error_line(files, tmp_path):
    folder, _ = _interrupted_fit(tmp_path)
    marker = tmp_path / "marker.txt"
    _craft(folder, marker, record=True)
    result = _run("fit", "--coarse", files["coarse0"], "--fine", files["fine0"], "--scheme", "s1", "--out", folder,
                  "--resume", *QUICK)
    assert not marker.exists(), "unpickling the checkpoint ran code"
    _refused(result, "checkpoint.pt", "not loaded")


# ---------------------------------------------------------------------------------------------
# 2. truncated GeoTIFFs
# ---------------------------------------------------------------------------------------------
def test_truncated_geotiff_is_an_asset_read_error(files):
    with pytest.raises(AssetReadError, match="damaged or not a readable GeoTIFF") as err:
        read_single_band(files["fine_truncated"])
    assert str(files["fine_truncated"]) in str(err.value)


def test_fit_with_a_truncated_geotiff_is_an_error_line(files, tmp_path):
    out = tmp_path / "model"
    result = _run("fit", "--coarse", files["coarse0"], "--fine", files["fine_truncated"], "--scheme", "s1",
                  "--out", out, *QUICK)
    _refused(result, str(files["fine_truncated"]), "damaged")
    assert not out.exists()


def test_predict_with_a_truncated_geotiff_is_an_error_line(s1_model, files, tmp_path):
    out = tmp_path / "pred.tif"
    result = _run("predict", "--model", s1_model, "--coarse", files["coarse_truncated"], "--out", out, "--steps", "1")
    _refused(result, str(files["coarse_truncated"]), "damaged")
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# 3. zero steps
# ---------------------------------------------------------------------------------------------
def test_zero_training_steps_are_refused_before_anything_is_written(files, tmp_path):
    with pytest.raises(ValueError, match="train_steps"):
        DownscaleConfig.preset("quick", train_steps=0)
    out = tmp_path / "model"
    result = _run("fit", "--coarse", files["coarse0"], "--fine", files["fine0"], "--scheme", "s1", "--out", out,
                  "--preset", "quick", "--steps", "0", "--no-progress")
    _refused(result, "--steps 0", "at least one step")
    assert not out.exists()


@pytest.mark.parametrize("steps", ["0", "-2"])
def test_zero_or_negative_sampling_steps_are_refused(s1_model, files, tmp_path, steps):
    out = tmp_path / "pred.tif"
    result = _run("predict", "--model", s1_model, "--coarse", files["coarse2"], "--out", out, "--steps", steps)
    _refused(result, "steps", ">= 1", f"got {steps}")
    assert not out.exists()
    model = tmp_path / "s1"
    shutil.copytree(s1_model, model)
    before = (model / "card.json").read_text()
    result = _run("calibrate", "--model", model, "--coarse", files["coarse2"], "--fine", files["fine2"],
                  "--members", "2", "--steps", steps)
    _refused(result, "steps", ">= 1")
    assert (model / "card.json").read_text() == before


# ---------------------------------------------------------------------------------------------
# 4. inputs unlike the training data
# ---------------------------------------------------------------------------------------------
def test_card_records_the_training_ranges(s1_model, files):
    card = json.loads((s1_model / "card.json").read_text())
    ranges = card["training_ranges"]
    coarse = [read_single_band(files[f"coarse{i}"]).values for i in (0, 1)]
    assert ranges["coarse"] == pytest.approx([min(np.nanmin(c) for c in coarse), max(np.nanmax(c) for c in coarse)])
    assert ranges["fine"][0] < ranges["coarse"][0] and ranges["aux"] == {} and card["factor"] == K


def test_cli_refuses_a_coarse_field_1000_times_the_training_range(s1_model, files, tmp_path):
    out = tmp_path / "pred.tif"
    result = _run("predict", "--model", s1_model, "--coarse", files["coarse_x1000"], "--out", out, "--steps", "1")
    _refused(result, "The coarse field", "trained on", "--allow-out-of-range")
    assert not out.exists()
    with pytest.warns(UserWarning, match="The coarse field has values from"):
        _ok(_run("predict", "--model", s1_model, "--coarse", files["coarse_x1000"], "--out", out, "--steps", "1",
                 "--allow-out-of-range"))
    assert out.exists()
    model = tmp_path / "s1"
    shutil.copytree(s1_model, model)
    result = _run("calibrate", "--model", model, "--coarse", files["coarse_x1000"], "--fine", files["fine2"],
                  "--members", "2", "--steps", "1")
    _refused(result, "The coarse field", "--allow-out-of-range")


def test_cli_accepts_a_new_date_in_range(s1_model, files, tmp_path):
    out = tmp_path / "pred.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _ok(_run("predict", "--model", s1_model, "--coarse", files["coarse2"], "--out", out, "--steps", "1"))


def test_api_refuses_out_of_range_eagerly_and_lazily(s1_model):
    model = load_downscaler(s1_model)
    (coarse,), _ = _pairs(1, seed=9)
    downscale(coarse, model, factor=K, steps=1)  # a new date: accepted
    with pytest.raises(DownscaleInputError, match=r"The coarse field has values from .* trained on"):
        downscale(coarse * 1000, model, factor=K, steps=1)
    with pytest.warns(UserWarning, match="allow_out_of_range"):
        downscale(coarse * 1000, model, factor=K, steps=1, allow_out_of_range=True)
    with raise_if_dask_computes():  # the graph stays lazy: each block checks what it reads when it runs
        lazy = downscale((coarse * 1000).chunk(8), model, factor=K, steps=1, chunks=32)
    with pytest.raises(DownscaleInputError, match="in the output block"):
        lazy.compute()
    with pytest.raises(DownscaleInputError, match="steps"):
        calibrate(model, [coarse], [coarse], factor=K, members=2, steps=0)


def test_api_refuses_a_factor_the_model_was_not_fitted_at(s1_model):
    model = load_downscaler(s1_model)
    (coarse,), _ = _pairs(1, seed=9)
    with pytest.raises(DownscaleInputError, match=f"factor of 2 .* fitted at factor {K}"):
        downscale(coarse, model, factor=2, steps=1)
    with pytest.warns(UserWarning, match="factor of 2"):
        downscale(coarse, model, factor=2, steps=1, allow_out_of_range=True)


def test_api_refuses_an_auxiliary_out_of_range():
    coarse, fine = _pairs()
    y, x = np.mgrid[0:N, 0:N]
    dem = xr.DataArray(200.0 + 3.0 * x + 2.0 * y + 0.5, dims=("y", "x"), name="dem")
    model = fit(coarse, fine, aux=[dem], scheme="s2", config=DownscaleConfig.preset("quick", train_steps=2))
    assert model.card["training_ranges"]["aux"]["dem"] == pytest.approx([200.5, 200.5 + 3 * 63 + 2 * 63])
    downscale(coarse[0], model, aux=[dem], steps=1)
    with pytest.raises(DownscaleInputError, match="Auxiliary 'dem' has values from"):
        downscale(coarse[0], model, aux=[dem * 1000], steps=1)


def test_old_card_without_ranges_skips_the_range_check_but_not_the_factor(s1_model, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(s1_model, old)
    card = json.loads((old / "card.json").read_text())
    del card["training_ranges"]
    (old / "card.json").write_text(json.dumps(card))
    model = load_downscaler(old)
    (coarse,), _ = _pairs(1, seed=9)
    out = downscale(coarse * 1000, model, factor=K, steps=1)
    assert np.isfinite(out["gpp"].values).all()
    with pytest.raises(DownscaleInputError, match="factor"):
        downscale(coarse, model, factor=2, steps=1)


# ---------------------------------------------------------------------------------------------
# model folders: weights are only read when the card's checksum vouches for them
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def sample_folder(tmp_path) -> Path:
    from unique_xr.sample import sample_downscaler

    return Path(shutil.copytree(sample_downscaler(), tmp_path / "downscale_s2"))


def test_weights_without_a_recorded_checksum_are_not_read(sample_folder, tmp_path):
    card = json.loads((sample_folder / "card.json").read_text())
    card.pop("weights_sha256")
    (sample_folder / "card.json").write_text(json.dumps(card))
    blob = (sample_folder / "weights.pt").read_bytes()
    (sample_folder / "weights.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelFolderError, match="records no checksum of weights.pt"):
        load_downscaler(sample_folder)
    coarse = _write(tmp_path / "c.tif", np.full((8, 8), 5.0), Affine(480.0, 0, 0, 0, -480.0, 0))
    _refused(_run("predict", "--model", sample_folder, "--coarse", coarse, "--out", tmp_path / "o.tif"),
             "records no checksum")


def test_a_card_that_does_not_fit_its_weights_is_a_folder_error(sample_folder):
    card = json.loads((sample_folder / "card.json").read_text())
    card["config"]["base_channels"] = 2 * card["config"]["base_channels"]  # an edited card
    card["weights_sha256"] = hashlib.sha256((sample_folder / "weights.pt").read_bytes()).hexdigest()
    (sample_folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelFolderError, match="do not fit together"):
        load_downscaler(sample_folder)
