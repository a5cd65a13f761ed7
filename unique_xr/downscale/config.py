"""Configuration of a downscaling model and its training run (no torch needed)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

SCHEMES = ("s1", "s2", "s3")
#: Ensemble members averaged into the default output (the best estimate) when ``members`` is not given.
DEFAULT_MEMBERS = 8


@dataclass(frozen=True, kw_only=True)
class DownscaleConfig:
    """Network size, training schedule and sampling defaults.

    The presets (:meth:`preset`) are ``"quick"`` (tests: seconds), ``"cpu"`` (the default
    of ``unique-xr downscale fit``: about 10 minutes on two CPU cores for 4 images of
    552 x 576 px) and ``"large"`` (150-pixel-class patches and a wider network, for a GPU).

    Parameters
    ----------
    base_channels, channel_mults
        UNet width and per-level multipliers; patch and tile sides must be multiples of
        ``2 ** (len(channel_mults) - 1)``.
    patch
        Side of the square training patches (pixels).
    batch_size, train_steps, learning_rate, ema_decay
        Optimisation: AdamW with linear warm-up and cosine decay, and an exponential moving
        average of the weights (the EMA weights are the ones saved).
    timesteps
        Length of the forward diffusion process.
    sample_steps, sampler
        Default number of network evaluations and sampler (``"ddim"`` or ``"ddpm"``) at inference.
    tile, overlap
        Default inference tile side and overlap (pixels).
    min_valid
        Training patches with a smaller share of valid target pixels are dropped.
    checkpoint_every
        Steps between checkpoints (resume continues from the last one).
    seed
        Seeds patch order, augmentation and the diffusion noise of training.
    """

    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    patch: int = 64
    batch_size: int = 8
    train_steps: int = 1200
    learning_rate: float = 1e-3
    ema_decay: float = 0.995
    timesteps: int = 1000
    sample_steps: int = 25
    sampler: str = "ddim"
    tile: int = 128
    overlap: int = 32
    min_valid: float = 0.5
    checkpoint_every: int = 200
    seed: int = 0

    def __post_init__(self):
        stride = 2 ** (len(self.channel_mults) - 1)
        for name in ("patch", "tile", "overlap"):
            value = getattr(self, name)
            if value % stride:
                raise ValueError(
                    f"{name}={value} must be a multiple of {stride} (2 ** (levels - 1) for channel_mults="
                    f"{self.channel_mults}); e.g. {name}={value + stride - value % stride}."
                )
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap={self.overlap} must be >= 0 and smaller than tile={self.tile}.")
        if self.sampler not in ("ddim", "ddpm"):
            raise ValueError(f"sampler must be 'ddim' or 'ddpm'; got {self.sampler!r}.")
        for name, what in (("train_steps", "training steps: a model that never trained would predict noise"),
                           ("sample_steps", "network evaluations per member at prediction"),
                           ("batch_size", "patches per training step")):
            value = getattr(self, name)
            if not (value >= 1 and int(value) == value):
                raise ValueError(f"{name} ({what}) must be a whole number >= 1; got {value!r}.")
        object.__setattr__(self, "channel_mults", tuple(int(m) for m in self.channel_mults))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> DownscaleConfig:
        """A named configuration, with ``overrides`` applied."""
        presets = {
            "quick": dict(base_channels=8, channel_mults=(1, 2), patch=32, batch_size=4, train_steps=30,
                          sample_steps=4, tile=32, overlap=8, checkpoint_every=10),
            "cpu": {},
            "large": dict(base_channels=64, channel_mults=(1, 2, 2, 4), patch=144, batch_size=16,
                          train_steps=20_000, learning_rate=2e-4, ema_decay=0.999, tile=160, overlap=32,
                          checkpoint_every=1000),
        }
        if name not in presets:
            raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(presets)}.")
        return cls(**{**presets[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channel_mults"] = list(self.channel_mults)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DownscaleConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if k == "channel_mults" else v) for k, v in d.items() if k in known})

    def __dask_tokenize__(self):
        return ("unique_xr.DownscaleConfig", tuple(sorted(self.to_dict().items(), key=lambda kv: kv[0])).__repr__())
