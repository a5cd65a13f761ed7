"""The gap-tolerant annual GPP/NEE CNN: training with occlusion, prediction, model folder.

:class:`AnnualCNN` holds an ensemble of :class:`~unique_xr.models.cnn.net.AnnualNet` networks
trained from different seeds, the standardisation of inputs and targets, and a model card.
Targets are annual sums in g C m-2 yr-1; NEE < 0 is uptake by the ecosystem.

Inputs are standardised per variable with the mean and standard deviation of the observed
training cells, missing cells are set to 0, and the mask of observed cells is the second input
channel, so nothing is gap-filled. Each epoch every map is occluded afresh
(:func:`~unique_xr.models.cnn.occlusion.occlude`).

Examples
--------
Train a small ensemble on synthetic maps (real training: ``unique-xr cnn train``):

>>> import numpy as np
>>> from unique_xr.models.cnn import CnnConfig, MapSpec, FeatureMaps, fit_cnn
>>> rng = np.random.default_rng(0)
>>> values = rng.normal(size=(40, 12, 6)).astype("float32")
>>> maps = FeatureMaps(MapSpec(), values, np.eye(5, dtype="float32")[rng.integers(0, 5, 40)])
>>> targets = np.c_[1500 + 300 * values[:, 5:8, 1].mean(1), -300 + 100 * values[:, :, 3].mean(1)]
>>> model = fit_cnn(maps, targets, CnnConfig(epochs=2, members=1))
>>> values[0, :6] = np.nan  # half a year missing: still a finite estimate
>>> bool(np.isfinite(model.predict(maps.with_values(values))).all())
True
"""

from __future__ import annotations

import io
import json
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unique_xr._files import load_tensors, read_model_folder, write_model_folder
from unique_xr._optional import import_optional
from unique_xr._threads import torch_threads
from unique_xr.errors import CnnFolderError, NotFittedError, SpecError
from unique_xr.models.card import library_versions
from unique_xr.models.cnn.featuremap import FeatureMaps, MapSpec
from unique_xr.models.cnn.occlusion import Occlusion, occlude
from unique_xr.models.cnn.schema import ANNUAL_UNITS, INPUTS

__all__ = ["CARD", "WEIGHTS", "AnnualCNN", "CnnConfig", "CnnFolderError", "fit_cnn", "load_cnn"]

CARD = "card.json"
WEIGHTS = "weights.pt"
KIND = "annual_cnn"
#: Guards building the networks of a model shared by threads (one lock for the process: a lock does not pickle).
_BUILD_LOCK = threading.Lock()
TARGETS = ("gpp", "nee")


@dataclass(frozen=True, kw_only=True)
class CnnConfig:
    """Training configuration of :func:`fit_cnn` (the shipped defaults train in about a minute on 2 CPU cores).

    Parameters
    ----------
    epochs, batch_size, learning_rate, weight_decay
        AdamW with a cosine-decaying learning rate over ``epochs`` passes.
    channels, blocks, hidden, dropout
        Network size (:class:`~unique_xr.models.cnn.net.AnnualNet`).
    members
        Networks trained from different seeds; predictions are their mean.
    seed
        Seed of weights, shuffling and occlusions: the same seed gives the same model on one machine.
    occlusion
        What training hides (:class:`~unique_xr.models.cnn.occlusion.Occlusion`); ``None`` trains
        on the maps as they are (an ablation).
    threads
        torch CPU threads while training and predicting (None: torch's default).
    """

    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1.0
    channels: int = 8
    blocks: int = 2
    hidden: int = 16
    seasons: int = 4
    dropout: float = 0.5
    norm: str = "batch"
    loss: str = "huber"
    members: int = 4
    seed: int = 0
    occlusion: Occlusion | None = field(default_factory=Occlusion)
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "channels", "blocks", "hidden", "seasons", "members"):
            if int(getattr(self, name)) < 1:
                raise SpecError(f"CnnConfig.{name} must be at least 1; got {getattr(self, name)}.")
        if not 0.0 <= self.dropout < 1.0:
            raise SpecError(f"CnnConfig.dropout must be within [0, 1); got {self.dropout}.")
        if not self.learning_rate > 0:
            raise SpecError(f"CnnConfig.learning_rate must be positive; got {self.learning_rate}.")
        if not self.weight_decay >= 0:
            raise SpecError(f"CnnConfig.weight_decay must be 0 or more; got {self.weight_decay}.")
        if int(self.seed) < 0:
            raise SpecError(f"CnnConfig.seed must be 0 or more (numpy seeds are non-negative); got {self.seed}.")
        if self.loss not in ("huber", "mse"):
            raise SpecError(f"CnnConfig.loss must be 'huber' or 'mse'; got {self.loss!r}.")
        if self.norm not in ("batch", "group", "none"):
            raise SpecError(f"CnnConfig.norm must be 'batch', 'group' or 'none'; got {self.norm!r}.")
        if self.norm == "batch" and int(self.batch_size) < 2:
            raise SpecError("CnnConfig.batch_size must be at least 2 with norm='batch' (batch statistics need "
                            f"two maps); got {self.batch_size}. Use a larger batch or norm='group'.")
        if isinstance(self.occlusion, dict):
            object.__setattr__(self, "occlusion", Occlusion(**self.occlusion))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["occlusion"] = self.occlusion.to_dict() if self.occlusion else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CnnConfig:
        data = dict(data)
        occ = data.pop("occlusion", None)
        return cls(**data, occlusion=Occlusion(**occ) if occ else None)

    def net_kwargs(self) -> dict[str, Any]:
        return {"channels": self.channels, "blocks": self.blocks, "hidden": self.hidden, "seasons": self.seasons,
                "dropout": self.dropout, "norm": self.norm}


def _torch():
    return import_optional("torch", purpose="the annual GPP/NEE CNN")


@dataclass
class AnnualCNN:
    """A trained ensemble with its standardisation and card; see :func:`fit_cnn` and :func:`load_cnn`."""

    spec: MapSpec
    config: CnnConfig
    input_mean: np.ndarray
    input_std: np.ndarray
    target_mean: np.ndarray
    target_std: np.ndarray
    states: list[dict] = field(default_factory=list, repr=False)
    card: dict[str, Any] = field(default_factory=dict, repr=False)
    _nets: list = field(default_factory=list, repr=False)

    # --- encoding -----------------------------------------------------------------------------

    def encode(self, maps: FeatureMaps, observed: np.ndarray | None = None) -> np.ndarray:
        """Network input ``(n, 2, steps, columns)`` float32: standardised values (0 where missing) and mask.

        ``observed`` (default ``maps.observed``) may hide more cells than are missing.
        """
        _check_spec(maps.spec, self.spec)
        obs = maps.observed if observed is None else (np.asarray(observed, bool) & maps.observed)
        z = (maps.values - self.input_mean) / self.input_std
        z = np.where(obs, z, 0.0)
        known = maps.forest.sum(axis=1, keepdims=True) > 0
        forest_mask = np.broadcast_to(known, maps.forest.shape)
        vals = np.concatenate([z, np.broadcast_to(maps.forest[:, None, :], (len(maps), z.shape[1], maps.forest.shape[1]))], axis=2)
        mask = np.concatenate([obs, np.broadcast_to(forest_mask[:, None, :], vals.shape[:2] + (maps.forest.shape[1],))], axis=2)
        return np.stack([vals, mask], axis=1).astype(np.float32)

    # --- prediction ---------------------------------------------------------------------------

    def networks(self) -> list:
        """The ensemble's torch modules, built once from the stored weights (eval mode, CPU).

        Safe to call from several threads at once (Dask's threaded workers): one builds, the
        others wait and share the result.
        """
        with _BUILD_LOCK:
            if not self._nets:
                if not self.states:
                    raise NotFittedError(
                        "This AnnualCNN holds no weights; train it with fit_cnn or load it with load_cnn.")
                from unique_xr.models.cnn.net import AnnualNet

                nets = []
                for state in self.states:
                    net = AnnualNet(len(self.spec.columns), **self.config.net_kwargs())
                    net.load_state_dict(state)
                    nets.append(net.eval())
                self._nets.extend(nets)
        return self._nets

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the built networks: the weights travel once, a process rebuilds them."""
        return {**self.__dict__, "_nets": []}

    def predict_encoded(self, x: np.ndarray, *, batch_size: int = 4096, threads: int | None = None) -> np.ndarray:
        """Annual ``(gpp, nee)`` in g C m-2 yr-1 for encoded maps ``(n, 2, steps, columns)``: ``(n, 2)`` float64.

        ``threads``: torch CPU threads for this call (default ``config.threads``; None there too
        leaves torch's setting).
        """
        torch = _torch()
        nets = self.networks()
        out = np.zeros((x.shape[0], 2))
        with torch.no_grad(), torch_threads(threads or self.config.threads):
            for start in range(0, x.shape[0], batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size]))
                out[start:start + batch_size] = np.mean([net(xb).double().numpy() for net in nets], axis=0)
        return out * self.target_std + self.target_mean

    def predict(self, maps: FeatureMaps, observed: np.ndarray | None = None, *,
                threads: int | None = None) -> np.ndarray:
        """Annual ``(gpp, nee)`` in g C m-2 yr-1, shape ``(n, 2)``; finite for any pattern of missing cells."""
        return self.predict_encoded(self.encode(maps, observed), threads=threads)

    def predict_frame(self, maps: FeatureMaps) -> pd.DataFrame:
        """``site, year, gpp, nee`` (g C m-2 yr-1), one row per map, in the maps' order."""
        pred = self.predict(maps)
        return pd.DataFrame({"site": maps.keys["site"].to_numpy(), "year": maps.keys["year"].to_numpy(),
                             "gpp": pred[:, 0], "nee": pred[:, 1]})

    @property
    def token(self) -> str:
        """A short hash of the weights and settings, for task names and provenance."""
        import hashlib

        h = hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode())
        for state in self.states:
            for key in sorted(state):
                h.update(state[key].detach().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        return {"kind": KIND, "spec": self.spec.to_dict(), "config": self.config.to_dict(),
                "input_mean": self.input_mean.tolist(), "input_std": self.input_std.tolist(),
                "target_mean": self.target_mean.tolist(), "target_std": self.target_std.tolist()}

    # --- folder -------------------------------------------------------------------------------

    def weights_bytes(self) -> bytes:
        """The ensemble's weights as in ``weights.pt`` (``torch.save`` of the list of state dicts)."""
        buf = io.BytesIO()
        _torch().save(self.states, buf)
        return buf.getvalue()

    @classmethod
    def from_weights(cls, describe: dict[str, Any], weights: bytes, *, where: str | Path = WEIGHTS,
                     card: dict[str, Any] | None = None) -> AnnualCNN:
        """The model of :meth:`describe` (or a card) with the weights of :meth:`weights_bytes`."""
        states = load_tensors(weights, where, error=CnnFolderError)
        return cls(
            MapSpec.from_dict(describe["spec"]), CnnConfig.from_dict(describe["config"]),
            np.asarray(describe["input_mean"], np.float32), np.asarray(describe["input_std"], np.float32),
            np.asarray(describe["target_mean"]), np.asarray(describe["target_std"]), states=states,
            card=card if card is not None else {},
        )

    def save(self, out: str | Path) -> Path:
        """Write ``weights.pt`` and ``card.json`` into the folder ``out``."""
        torch = _torch()
        card = {**self.card, **self.describe(), "targets": {"gpp": f"annual GPP ({ANNUAL_UNITS})",
                                                            "nee": f"annual NEE ({ANNUAL_UNITS}), < 0 is uptake"},
                "units": ANNUAL_UNITS, "versions": {**library_versions(), "torch": torch.__version__}}
        folder, _ = write_model_folder(out, card=card, card_name=CARD, files={WEIGHTS: self.weights_bytes()})
        return folder


def _check_spec(got: MapSpec, want: MapSpec) -> None:
    if got != want:
        raise SpecError(
            f"The feature maps were built with {got.to_dict()}, the model needs {want.to_dict()}. "
            "Build them with the model's spec: feature_maps_from_table(table, model.spec)."
        )


def _standardisation(maps: FeatureMaps) -> tuple[np.ndarray, np.ndarray]:
    obs = maps.observed
    mean = np.zeros(len(maps.spec.variables))
    std = np.ones(len(maps.spec.variables))
    for j in range(len(mean)):
        v = maps.values[..., j][obs[..., j]]
        if v.size >= 2:
            mean[j], std[j] = float(v.mean()), float(v.std()) or 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def fit_cnn(maps: FeatureMaps, targets: np.ndarray, config: CnnConfig | None = None, *, progress: bool = False,
            card: dict[str, Any] | None = None) -> AnnualCNN:
    """Train the annual CNN on feature maps and their annual ``(gpp, nee)`` sums.

    Parameters
    ----------
    maps
        Training maps (missing cells NaN).
    targets
        ``(n, 2)`` annual GPP and NEE in g C m-2 yr-1 (NaN entries are left out of the loss).
    config
        :class:`CnnConfig` (defaults when None).
    progress
        Print one line per member with its final loss and time.
    card
        Extra entries for the model card (training sites, table, ...).

    Returns
    -------
    AnnualCNN
    """
    torch = _torch()
    from unique_xr.models.cnn.net import AnnualNet

    config = config or CnnConfig()
    targets = np.asarray(targets, dtype=np.float64)
    if targets.shape != (len(maps), 2):
        raise SpecError(f"targets must have shape ({len(maps)}, 2) (annual gpp, nee); got {targets.shape}.")
    usable = np.isfinite(targets).any(axis=1)
    if usable.sum() < 8:
        raise SpecError(f"Only {int(usable.sum())} maps have a finite target; the CNN needs at least 8 to train.")
    empty = [name for name, ok in zip(TARGETS, np.isfinite(targets).any(axis=0)) if not ok]
    if empty:
        raise SpecError(f"No map has a finite {' or '.join(empty)} target; the CNN predicts both annual gpp "
                        "and nee, so each needs values (the table may lack the column).")
    maps, targets = maps.subset(np.flatnonzero(usable)), targets[usable]
    input_mean, input_std = _standardisation(maps)
    target_mean = np.nanmean(targets, axis=0)
    target_std = np.nanstd(targets, axis=0)
    target_std[~(target_std > 0)] = 1.0
    model = AnnualCNN(maps.spec, config, input_mean, input_std, target_mean, target_std,
                      card={**(card or {}), "n_train": len(maps)})
    y = ((targets - target_mean) / target_std).astype(np.float32)
    y_ok = np.isfinite(y)
    y = np.where(y_ok, y, 0.0).astype(np.float32)
    width = len(maps.spec.columns)
    n = len(maps)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = config.epochs * steps_per_epoch
    with torch_threads(config.threads):
        for member in range(config.members):
            seed = config.seed * 1000 + member
            rng = np.random.default_rng(seed)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net = AnnualNet(width, **config.net_kwargs())
                opt = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
                sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
                t0 = time.perf_counter()
                net.train()
                for _ in range(config.epochs):
                    order = rng.permutation(n)
                    observed = maps.observed
                    if config.occlusion is not None:
                        observed = occlude(observed, config.occlusion, rng)
                    x_all = model.encode(maps, observed)
                    for start in range(0, n, config.batch_size):
                        idx = order[start:start + config.batch_size]
                        if idx.size < 2:  # batch normalisation needs two maps
                            continue
                        xb, yb, ok = (torch.from_numpy(a[idx]) for a in (x_all, y, y_ok))
                        err = _loss(net(xb) - yb, config.loss)
                        loss = (err * ok).sum() / ok.sum().clamp(min=1)
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                        sched.step()
                net.eval()
            model.states.append({k: v.detach().clone() for k, v in net.state_dict().items()})
            if progress:
                print(f"member {member + 1}/{config.members}: last batch loss {loss.item():.3f}, "
                      f"{time.perf_counter() - t0:.1f} s", flush=True)
    return model


def _loss(diff, kind: str):
    """Per-element loss of standardised errors: squared, or Huber (quadratic within one standard deviation)."""
    if kind == "mse":
        return diff**2
    a = diff.abs()
    return (a.clamp(max=1.0) ** 2) / 2 + (a - 1.0).clamp(min=0.0)


def load_cnn(path: str | Path) -> AnnualCNN:
    """Read a model folder written by :meth:`AnnualCNN.save` (or ``unique-xr cnn train``)."""
    _torch()  # a missing torch is an ImportError naming the extra
    card, blobs = read_model_folder(path, card_name=CARD, files=[WEIGHTS], error=CnnFolderError,
                                   what="an annual CNN model folder (written by `unique-xr cnn train`)")
    if card.get("kind") != KIND:
        raise CnnFolderError(f"{path} holds a {card.get('kind')!r} model, not an annual CNN ({KIND!r}).")
    return AnnualCNN.from_weights(card, blobs[WEIGHTS], where=Path(path) / WEIGHTS, card=card)


def describe_inputs(spec: MapSpec) -> list[dict[str, Any]]:
    """For the card: each variable with its units and the paper input it stands in for."""
    return [{"name": v, **{k: INPUTS[v][k] for k in ("units", "paper", "note")}} if v in INPUTS else {"name": v}
            for v in spec.variables]

