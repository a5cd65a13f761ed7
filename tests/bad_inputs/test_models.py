"""Tower-model folders and training: damaged model files, stale cross-validation files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from unique_xr.errors import ModelFolderError
from unique_xr.models.lgbm import MODEL_FILE, TrainConfig, load_model, train

#: Where a truncated model.txt is cut: inside the header, the first tree, the middle, the feature
#: importances and the parameters block (the tester's five lengths crashed LightGBM four times).
CUTS = (0.02, 0.1, 0.5, 0.93, 0.99)

_LOAD = textwrap.dedent("""
    import sys
    from unique_xr.models.lgbm import load_model

    for folder in sys.argv[1:]:
        try:
            load_model(folder)
            print("LOADED", folder, flush=True)
        except Exception as err:
            print("REFUSED", folder, type(err).__name__, str(err).replace("\\n", " "), flush=True)
""")


def _load_in_a_child(folders: list[Path]) -> list[str]:
    """Load model folders in a child process: a crash in LightGBM's native parser (the failure this
    guards against) must fail the test, not take pytest down. One line per folder."""
    run = subprocess.run([sys.executable, "-c", _LOAD, *map(str, folders)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, f"the process died (rc {run.returncode}): {run.stdout}{run.stderr[-2000:]}"
    lines = run.stdout.splitlines()
    assert len(lines) == len(folders), run.stdout
    return lines


def _truncated_copies(model_dir: Path, tmp_path: Path) -> list[Path]:
    text = (model_dir / MODEL_FILE).read_bytes()
    copies = []
    for i, cut in enumerate(CUTS):
        folder = Path(shutil.copytree(model_dir, tmp_path / f"cut{i}"))
        (folder / MODEL_FILE).write_bytes(text[: int(len(text) * cut)])
        copies.append(folder)
    return copies


def test_truncated_model_file_is_refused_by_its_checksum(model_dir, tmp_path):
    lines = _load_in_a_child(_truncated_copies(model_dir, tmp_path))
    assert all(line.startswith("REFUSED") for line in lines), lines
    assert all("ModelFolderError" in line and "checksum" in line and "model.txt" in line for line in lines)


def test_truncated_model_file_without_a_recorded_checksum_is_refused_too(model_dir, tmp_path):
    """Folders written before checksums were recorded: a structural check stands in for it."""
    card = json.loads((model_dir / "model_card.json").read_text())
    card.pop("model_sha256")
    (model_dir / "model_card.json").write_text(json.dumps(card))
    lines = _load_in_a_child([model_dir, *_truncated_copies(model_dir, tmp_path)])
    assert lines[0].startswith("LOADED"), lines[0]  # the complete legacy folder still loads
    assert all(line.startswith("REFUSED") and "truncated or damaged" in line for line in lines[1:]), lines


def test_edited_model_file_is_refused(model_dir):
    text = (model_dir / MODEL_FILE).read_text()
    (model_dir / MODEL_FILE).write_text(text.replace("shrinkage=", "shrinkage=1", 1))
    (line,) = _load_in_a_child([model_dir])
    assert line.startswith("REFUSED") and "does not match the checksum" in line, line


def test_saved_model_records_its_checksum_and_loads(model_dir, tmp_path):
    model = load_model(model_dir)
    model.save(tmp_path / "again")
    card = json.loads((tmp_path / "again" / "model_card.json").read_text())
    assert card["sha256"] == {MODEL_FILE: card["sha256"][MODEL_FILE]} and len(card["sha256"][MODEL_FILE]) == 64
    assert "model_sha256" not in card  # the one-file key of the format before
    assert load_model(tmp_path / "again").features == model.features
    assert load_model(tmp_path / "again").card.model_sha256 == card["sha256"][MODEL_FILE]
    assert not list((tmp_path / "again").glob("*.tmp"))


def test_folders_of_the_formats_before_load_and_a_tampered_new_one_is_refused(model_dir, tmp_path):
    """LightGBM folders share the model-folder format of the CNN and the downscaler (card + files + the
    SHA-256 of each); folders written before it (``model_sha256``, or no checksum) keep loading."""
    card = json.loads((model_dir / "model_card.json").read_text())
    assert "model_sha256" in card and "sha256" not in card  # the shipped sample: the one-file format
    legacy = load_model(model_dir)
    assert legacy.card.model_sha256 == card["model_sha256"]
    oldest = Path(shutil.copytree(model_dir, tmp_path / "oldest"))
    (oldest / "model_card.json").write_text(json.dumps({k: v for k, v in card.items() if k != "model_sha256"}))
    assert load_model(oldest).card.model_sha256 is None
    new = legacy.save(tmp_path / "new")
    text = (new / MODEL_FILE).read_text()
    (new / MODEL_FILE).write_text(text.replace("shrinkage=", "shrinkage=1", 1))
    with pytest.raises(ModelFolderError, match=r"new/model\.txt does not match the checksum in its model_card\.json"):
        load_model(new)


def test_retraining_without_folds_removes_the_old_cross_validation_files(tower_table, tmp_path):
    out = tmp_path / "model"
    config = TrainConfig(folds=2, num_boost_round=10, early_stopping_rounds=0, baselines=False, n_jobs=1)
    train(tower_table, config).save(out)
    assert (out / "cv_scores.csv").is_file() and (out / "cv_predictions.csv.gz").is_file()
    assert pd.read_csv(out / "cv_predictions.csv.gz")["site"].nunique() == 4
    config = TrainConfig(folds=0, num_boost_round=10, early_stopping_rounds=0, baselines=False, n_jobs=1)
    train(tower_table, config).save(out)
    assert not (out / "cv_scores.csv").exists() and not (out / "cv_predictions.csv.gz").exists()
    assert load_model(out).card.cv == {}
