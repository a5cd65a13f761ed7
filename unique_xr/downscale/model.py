"""The downscaling model: network + schedule + normalisation, its training loop, and its folder.

A model folder holds ``weights.pt`` (the EMA weights), ``card.json`` (configuration,
normalisation, scheme, training record) and, while training, ``checkpoint.pt`` (weights,
EMA, optimiser, step and random state: tensors and plain values only) with
``checkpoint.json`` (its SHA-256), from which :func:`train` resumes. Everything here works
on numpy arrays and torch tensors; the xarray side is :mod:`unique_xr.downscale.api`.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unique_xr._files import load_tensors, read_model_folder, write_atomic, write_model_folder
from unique_xr._optional import import_optional
from unique_xr.downscale.conditioning import DownscaleInputError, Normalisation
from unique_xr.downscale.config import SCHEMES, DownscaleConfig
from unique_xr.errors import ModelFolderError

torch = import_optional("torch", purpose="diffusion downscaling")

from unique_xr.downscale.diffusion import Diffusion, nested_steps  # noqa: E402
from unique_xr.downscale.net import ConditionalUNet, count_parameters  # noqa: E402

CARD = "card.json"
#: Prefix of a distilled student's tensors in ``weights.pt``.
_STUDENT = "student"
WEIGHTS = "weights.pt"
CHECKPOINT = "checkpoint.pt"
#: The SHA-256 of ``checkpoint.pt``, written after it; a checkpoint without a matching record is not loaded.
CHECKPOINT_RECORD = "checkpoint.json"
#: What a checkpoint holds (tensors, and dicts/lists of numbers and strings: loadable with ``weights_only=True``).
_CHECKPOINT_KEYS = ("net", "ema", "opt", "sched", "gen", "step", "losses", "describe")


def resolve_device(device: str | None) -> str:
    """``"auto"``/None -> ``"cuda"`` when available else ``"cpu"``; a CUDA request without CUDA is an error."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise DownscaleInputError(f"device={device!r} was asked for but torch sees no CUDA device; use device='cpu'.")
    return str(device)


def autocast(device: str, precision: str):
    """bf16 autocast on CUDA by default (``precision="auto"``), or wherever ``precision="bf16"``."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    use = precision == "bf16" or (precision == "auto" and kind == "cuda")
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32'; got {precision!r}.")
    return torch.autocast(device_type=kind, dtype=torch.bfloat16, enabled=use)


@dataclass
class Downscaler:
    """A trained (or initialised) conditional diffusion downscaler.

    Use :func:`unique_xr.downscale.fit` to train one and :func:`load_downscaler` to read one.
    """

    config: DownscaleConfig
    norm: Normalisation
    scheme: str
    net: Any
    card: dict[str, Any] = field(default_factory=dict)
    #: Calibration of the ensemble interval (:func:`unique_xr.downscale.calibration.calibrate`): ``scale``
    #: multiplies the spread to give the interval's half-width; None keeps the Student-t interval.
    interval: dict[str, Any] | None = None
    #: Distilled few-step samplers (:mod:`unique_xr.downscale.distillation`): network evaluations -> network.
    students: dict[int, Any] = field(default_factory=dict)
    #: How the students were made (card entry ``distilled``); None when there are none.
    distilled: dict[str, Any] | None = None

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}; got {self.scheme!r}.")
        self.diffusion = Diffusion(self.config.timesteps)
        self._device = "cpu"

    @classmethod
    def new(cls, config: DownscaleConfig, norm: Normalisation, scheme: str) -> Downscaler:
        """A network initialised from ``config.seed`` (torch's global random state is left as it was)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            net = ConditionalUNet(norm.cond_channels, base_channels=config.base_channels,
                                  channel_mults=config.channel_mults)
        return cls(config=config, norm=norm, scheme=scheme, net=net)

    @classmethod
    def from_weights(cls, describe: dict[str, Any], weights: bytes) -> Downscaler:
        """The model of :meth:`describe` with the weights of :meth:`weights_bytes`, on the CPU, in eval mode."""
        model = cls.new(DownscaleConfig.from_dict(describe["config"]), Normalisation.from_dict(describe["normalisation"]),
                        describe["scheme"])
        tensors = load_tensors(weights, WEIGHTS, error=ModelFolderError)
        own = {k: v for k, v in tensors.items() if not k.startswith(_STUDENT)}
        model.net.load_state_dict(own)
        model.net.eval()
        model.interval = describe.get("interval")
        model.distilled = describe.get("distilled")
        for n in (model.distilled or {}).get("steps", []):
            prefix = f"{_STUDENT}{int(n)}."
            student = copy.deepcopy(model.net)
            student.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
            model.students[int(n)] = student.eval()
        return model

    def weights_bytes(self) -> bytes:
        """The network's weights (and the distilled students', prefixed ``student<n>.``), as in ``weights.pt``."""
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        for n, student in sorted(self.students.items()):
            state.update({f"{_STUDENT}{n}.{k}": v.detach().cpu() for k, v in student.state_dict().items()})
        buf = io.BytesIO()
        torch.save(state, buf)
        return buf.getvalue()

    @property
    def stride(self) -> int:
        return self.net.stride

    def to(self, device: str) -> Downscaler:
        device = resolve_device(device)
        if device != self._device:
            self.net.to(device)
            for student in self.students.values():
                student.to(device)
            self._device = device
        return self

    @property
    def token(self) -> str:
        """Hash of weights and card: names the model in task keys and per-worker caches."""
        h = hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode())
        for net in (self.net, *(self.students[n] for n in sorted(self.students))):
            for v in net.state_dict().values():
                h.update(v.detach().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        out = {"scheme": self.scheme, "config": self.config.to_dict(), "normalisation": self.norm.to_dict()}
        if self.interval is not None:  # only then: an uncalibrated model keeps its token
            out["interval"] = dict(self.interval)
        if self.distilled is not None:
            out["distilled"] = dict(self.distilled)
        return out

    def sampler_for(self, steps: int | None, sampler: str | None) -> tuple[str, int]:
        """``(sampler, steps)`` after defaults: a distilled sampler of ``steps`` evaluations when there is one.

        ``sampler=None`` picks ``"distilled"`` when the model holds a student of ``steps`` (default:
        the model's ``sample_steps``), else the configuration's sampler; ``"distilled"`` asked for a
        step count without a student is an error naming the ones there are.
        """
        steps = self.config.sample_steps if steps is None else int(steps)
        if sampler is None:
            sampler = "distilled" if steps in self.students else self.config.sampler
        if sampler == "distilled" and steps not in self.students:
            have = sorted(self.students) or "none"
            raise DownscaleInputError(f"The model has no distilled sampler of {steps} evaluations (it has {have}); "
                                      "run unique-xr downscale distill --steps N, or use sampler='ddim'.")
        return sampler, steps

    def sampler_fn(self, *, steps: int | None = None, sampler: str | None = None, device: str = "cpu",
                   precision: str = "auto"):
        """A :data:`unique_xr.downscale.tiling.SampleFn` running this network on ``device``."""
        self.to(device)
        sampler, steps = self.sampler_for(steps, sampler)
        net, ts = self.net, None
        if sampler == "distilled":
            net, ts, sampler = self.students[steps], nested_steps(self.config.timesteps, steps), "ddim"
        net.eval()
        dev = self._device

        layout = torch.channels_last if dev.startswith("cuda") else torch.contiguous_format
        if dev.startswith("cuda"):
            net.to(memory_format=layout)

        def sample(cond: np.ndarray, noise):
            c = torch.from_numpy(np.ascontiguousarray(cond)).to(dev).contiguous(memory_format=layout)
            with autocast(dev, precision):
                x = self.diffusion.sample(net, c, noise=lambda k: torch.from_numpy(noise(k)).to(dev),
                                          sampler=sampler, steps=steps, clip=8.0, ts=ts)
            return x[:, 0].float().cpu().numpy()

        return sample

    # --- folder ---------------------------------------------------------------------------------

    def save(self, out: str | Path) -> Path:
        """Write ``weights.pt`` and ``card.json`` into ``out`` (atomically per file)."""
        card = {**self.card, **self.describe(), "parameters": count_parameters(self.net), "torch": torch.__version__}
        out, self.card = write_model_folder(out, card=card, card_name=CARD, files={WEIGHTS: self.weights_bytes()})
        return out


def load_downscaler(path: str | Path, *, device: str = "cpu") -> Downscaler:
    """Read a model folder written by :func:`unique_xr.downscale.fit` (or ``unique-xr downscale fit``)."""
    path = Path(path)
    hint = " Training did not finish; run fit again with resume to complete it." if (path / CHECKPOINT).exists() else ""
    card, blobs = read_model_folder(path, card_name=CARD, files=[WEIGHTS], error=ModelFolderError,
                                   what="a downscaling model folder", hint=hint)
    try:
        model = Downscaler.from_weights(card, blobs[WEIGHTS])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:  # a card whose configuration does not fit
        raise ModelFolderError(f"{path / CARD} and {path / WEIGHTS} do not fit together ({type(err).__name__}: "
                               f"{str(err).splitlines()[0] if str(err) else ''}): the card was edited or the files "
                               "come from different models. Retrain or restore the folder.") from err
    model.card = card
    return model.to(device)


# --- training ---------------------------------------------------------------------------------


def _augment(batch, k: int):
    """One of the 8 rotations/reflections of the square patches ``(B, C, P, P)``."""
    if k >= 4:
        batch = batch.flip(-1)
    return torch.rot90(batch, k % 4, dims=(-2, -1))


def train(model: Downscaler, patches: np.ndarray, *, out: str | Path | None = None, device: str = "cpu",
          precision: str = "auto", resume: bool = False, progress: bool = False,
          stop_after: int | None = None) -> Downscaler:
    """Train ``model`` on ``patches`` ``(N, 1 + C, P, P)`` (residual target first, NaN = ignore).

    With ``out``, a checkpoint is written every ``config.checkpoint_every`` steps and, at the end,
    the model folder; ``resume=True`` continues from ``out/checkpoint.pt`` (same patches and
    configuration), giving the same weights as an uninterrupted run on the same device.
    ``stop_after`` interrupts the run at that step, leaving only the checkpoint (for jobs with a
    time limit: resume later).
    """
    cfg = model.config
    device = resolve_device(device)
    model.to(device)
    net = model.net
    ema = copy.deepcopy(net).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=1e-4)
    warmup = max(1, min(100, cfg.train_steps // 10))

    def lr_at(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, cfg.train_steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    gen = torch.Generator().manual_seed(cfg.seed)
    data = torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32))
    if data.shape[0] == 0:
        raise DownscaleInputError("No training patch has enough valid pixels; lower min_valid or check the inputs.")
    step, losses, started = 0, [], time.perf_counter()
    ckpt = Path(out) / CHECKPOINT if out is not None else None
    if resume:
        if ckpt is None or not ckpt.is_file():
            raise ModelFolderError(f"resume=True but there is no checkpoint at {ckpt}; start without resume.")
        state = read_checkpoint(ckpt, device=device)
        if _resumable(state["describe"]) != _resumable(model.describe()):
            raise DownscaleInputError("The checkpoint was written for another configuration or other data; "
                                      "start without resume or use the same inputs and options.")
        net.load_state_dict(state["net"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        step, losses = state["step"], state["losses"]
    bar = _progress(progress, cfg.train_steps, step)
    end = cfg.train_steps if stop_after is None else min(cfg.train_steps, stop_after)
    while step < end:
        net.train()
        idx = torch.randint(0, data.shape[0], (cfg.batch_size,), generator=gen)
        k = int(torch.randint(0, 8, (1,), generator=gen))
        batch = _augment(data[idx], k).to(device)
        target, cond = batch[:, :1], batch[:, 1:]
        valid = torch.isfinite(target)
        noise_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        noise_gen = torch.Generator(device=device).manual_seed(noise_seed)
        with autocast(device, precision):
            loss = model.diffusion.loss(net, target, cond, valid, generator=noise_gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            for pe, pn in zip(ema.parameters(), net.parameters()):
                pe.lerp_(pn, 1 - cfg.ema_decay)
        losses.append(float(loss.detach()))
        step += 1
        if bar is not None:
            bar.update(1)
        if ckpt is not None and (step % cfg.checkpoint_every == 0 or step in (end, cfg.train_steps)):
            write_checkpoint(ckpt, {"net": net.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                                    "sched": sched.state_dict(), "gen": gen.get_state(), "step": step,
                                    "losses": losses, "describe": model.describe()})
    if bar is not None:
        bar.close()
    if step < cfg.train_steps:
        return model
    model.net = ema  # at least one step ran: DownscaleConfig refuses train_steps < 1
    model.net.eval()
    window = losses[-max(1, len(losses) // 10):]
    model.card.update({"training": {"steps": step, "patches": int(data.shape[0]), "patch": cfg.patch,
                                    "device": device, "seconds_this_run": round(time.perf_counter() - started, 1),
                                    "final_loss": float(np.mean(window)) if window else None,
                                    "loss_every_50": [round(float(np.mean(losses[i:i + 50])), 4)
                                                      for i in range(0, len(losses), 50)]}})
    if out is not None:
        model.save(out)
    return model


def write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` with its SHA-256 recorded in ``checkpoint.json`` beside it.

    The record is written first and keeps the checksum of the checkpoint it replaces
    (``previous_sha256``), then the checkpoint (both atomically): a run killed between the two
    still resumes, from the previous checkpoint.
    """
    buf = io.BytesIO()
    torch.save(state, buf)
    blob = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    record = {"file": path.name, "sha256": hashlib.sha256(blob).hexdigest(), "step": int(state["step"]),
              "previous_sha256": previous}
    write_atomic(path.with_name(CHECKPOINT_RECORD), (json.dumps(record, indent=2) + "\n").encode())
    write_atomic(path, blob)


def read_checkpoint(path: Path, *, device: str = "cpu") -> dict[str, Any]:
    """The state :func:`write_checkpoint` wrote, checked against its record and loaded as tensors only.

    A checkpoint is code-free data: it is loaded with ``torch.load(weights_only=True)``, which
    refuses a pickle that would import or call anything (a crafted file in a model folder
    someone was sent), and only after its bytes match the SHA-256 recorded beside it.

    Raises
    ------
    ModelFolderError
        The record is missing or unreadable, the checksum does not match, or the file holds
        anything but tensors and plain values.
    """
    record_path = path.with_name(CHECKPOINT_RECORD)
    fresh = "Delete it and fit again without resume (resume=False; CLI: drop --resume)."
    if not record_path.is_file():
        raise ModelFolderError(
            f"{path} has no checksum record {record_path.name} beside it, so it cannot be checked and is not "
            f"loaded (a checkpoint of an older unique_xr, or a file that was not written by fit). {fresh}")
    try:
        record = json.loads(record_path.read_text())
        expected = record["sha256"]
        accepted = {expected, record.get("previous_sha256")} - {None}  # killed between record and file: the last one
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ModelFolderError(f"{record_path} is not a checkpoint record ({type(err).__name__}: {err}); "
                               f"the checkpoint is not loaded. {fresh}") from err
    blob = path.read_bytes()
    seen = hashlib.sha256(blob).hexdigest()
    if seen not in accepted:
        raise ModelFolderError(
            f"{path} does not match the SHA-256 in {record_path.name} (file {seen[:12]}..., record "
            f"{str(expected)[:12]}...): it is damaged, was replaced, or the run was killed while writing it. "
            f"It is not loaded. {fresh}")
    try:
        state = torch.load(io.BytesIO(blob), map_location=device, weights_only=True)
    except Exception as err:  # UnpicklingError (code in the pickle), RuntimeError (not a torch zip), ...
        why = next((ln.strip().split(". Please")[0] for ln in str(err).splitlines() if "Unsupported" in ln),
                   f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        raise ModelFolderError(
            f"{path} is not a checkpoint of tensors and plain values, so it is not loaded: "
            f"torch.load with weights_only=True refused it ({why}). "
            "A file that asks to import or call code was not written by unique_xr: do not load it by other "
            f"means unless you trust its source. {fresh}") from err
    missing = [k for k in _CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing or not isinstance(state["step"], int) or not isinstance(state["describe"], dict) \
            or not isinstance(state["describe"].get("config"), dict):
        raise ModelFolderError(f"{path} lacks {missing or ['an integer step and a describe dict']} of a downscaling "
                               f"checkpoint; it is not loaded. {fresh}")
    return state


def _resumable(describe: dict[str, Any]) -> dict[str, Any]:
    """What must match for a resume: everything but the run length (which may be extended)."""
    config = {k: v for k, v in describe["config"].items() if k not in ("train_steps", "checkpoint_every")}
    return {**describe, "config": config}


def _progress(show: bool, total: int, done: int):
    """A rich progress bar with ``update(n)`` and ``close()``, or None."""
    if not show:
        return None
    from rich.progress import Progress

    bar = Progress(transient=False)
    task = bar.add_task("downscale fit", total=total, completed=done)
    bar.start()

    class _Bar:
        def update(self, n):
            bar.advance(task, n)

        def close(self):
            bar.stop()

    return _Bar()
