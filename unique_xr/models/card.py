"""Model cards: what a trained model needs, what it was trained on, and how well it did.

A card is saved as ``model_card.json`` beside the model. It names every feature with its units,
the raw inputs and the names each is accepted under, the target, the training sites, the
cross-validation scores and the library versions, so a model directory explains itself and
prediction can refuse inputs it was not trained for.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from unique_xr.errors import SpecError

__all__ = ["CARD_FILE", "MODEL_FILE", "ModelCard", "library_versions"]

CARD_FILE = "model_card.json"
#: The LightGBM model text beside the card.
MODEL_FILE = "model.txt"
CARD_VERSION = 1


def library_versions() -> dict[str, str]:
    """Versions of the libraries a model's numbers depend on."""
    out = {"python": platform.python_version()}
    for name in ("unique_xr", "lightgbm", "numpy", "pandas", "xarray", "scikit-learn"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass(kw_only=True)
class ModelCard:
    """Everything needed to use, audit and reproduce a trained GPP model.

    Parameters
    ----------
    kind
        ``"gpp_m"`` or ``"gpp_l"``.
    target, target_units, target_transform
        Training target column, its units and how the trees' output maps back to it.
    recipe
        :class:`~unique_xr.models.features.Recipe` as a dict.
    features
        ``[{"name", "units"}, ...]`` in the order the trees see them.
    inputs
        ``[{"name", "units", "accepted_as": [...]}, ...]``: the raw inputs and their aliases.
    training
        Sites (with IGBP class and rows), row counts, QC applied, table path.
    params, best_iteration
        LightGBM parameters and the number of trees kept.
    cv, baselines
        Cross-validation scheme and summary scores (LightGBM and every baseline, same rows).
    feature_importance
        Total gain per feature of the final model.
    sha256
        ``{"model.txt": SHA-256}``, checked before LightGBM parses the file (a damaged file can crash
        LightGBM's parser in native code); the model-folder format of every model kind
        (:func:`unique_xr._files.write_model_folder`). Set by :meth:`GppModel.save`; read from
        ``model_sha256`` in cards written before it, empty in cards older still.
    """

    kind: str
    target: str
    target_units: str = "g m-2 d-1"
    target_transform: str = "none"
    recipe: dict[str, Any]
    features: list[dict[str, str]]
    inputs: list[dict[str, Any]]
    training: dict[str, Any]
    params: dict[str, Any]
    best_iteration: int
    cv: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)
    feature_importance: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=library_versions)
    sha256: dict[str, str] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    card_version: int = CARD_VERSION

    @property
    def model_sha256(self) -> str | None:
        """The recorded SHA-256 of ``model.txt`` (None in folders written before checksums)."""
        return self.sha256.get(MODEL_FILE)

    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.features]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> ModelCard:
        path = Path(directory) / CARD_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"No {CARD_FILE} in {str(directory)!r}: this is not a model directory written by "
                "`unique-xr train` (or unique_xr.models.train). Point to the folder given as --out."
            )
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise SpecError(f"{path} is not valid JSON ({err}); the model directory is corrupt, retrain it.") from err
        if data.get("card_version") != CARD_VERSION:
            raise SpecError(
                f"{path} has card_version {data.get('card_version')!r}; this unique_xr reads version "
                f"{CARD_VERSION}. Retrain the model with this version."
            )
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """A card from its JSON (a card of the one-file checksum format gets ``sha256`` from ``model_sha256``)."""
        known = set(cls.__dataclass_fields__)
        card = cls(**{k: v for k, v in data.items() if k in known})
        if not card.sha256 and data.get("model_sha256"):
            card.sha256 = {MODEL_FILE: data["model_sha256"]}
        return card
