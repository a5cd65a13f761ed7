r"""Denoising diffusion on a fine-grid residual: schedule, training loss and samplers (pure torch).

The model learns the residual :math:`x_0` between the fine field and the upsampled coarse field
(both normalised). The forward process is

.. math::

    x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\qquad
    \epsilon\sim\mathcal N(0, I),

with the cosine schedule of Nichol & Dhariwal (2021) over ``timesteps`` steps, and the network
predicts :math:`v = \sqrt{\bar\alpha_t}\,\epsilon - \sqrt{1-\bar\alpha_t}\,x_0` (Salimans & Ho
2022), from which :math:`\hat x_0 = \sqrt{\bar\alpha_t}\,x_t - \sqrt{1-\bar\alpha_t}\,\hat v` and
:math:`\hat\epsilon = \sqrt{1-\bar\alpha_t}\,x_t + \sqrt{\bar\alpha_t}\,\hat v`.

Sampling uses the generalised step of Song et al. (2021) from :math:`t` to an earlier :math:`s`:

.. math::

    x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1-\bar\alpha_s-\sigma^2}\,\hat\epsilon + \sigma z,\qquad
    \sigma = \eta\sqrt{\tfrac{1-\bar\alpha_s}{1-\bar\alpha_t}}\sqrt{1-\tfrac{\bar\alpha_t}{\bar\alpha_s}}.

``sampler="ddim"`` is :math:`\eta=0` (deterministic given the starting noise) on ``steps`` evenly
spaced steps; ``sampler="ddpm"`` is :math:`\eta=1`, which on all ``timesteps`` steps is exactly
ancestral DDPM sampling and on fewer steps its strided form.

Noise is drawn through a caller-supplied function, so the tiler can make it a function of
global pixel position (identical in the overlap of two tiles).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from unique_xr._optional import import_optional

torch = import_optional("torch", purpose="diffusion downscaling")

SAMPLERS = ("ddim", "ddpm")


def cosine_alphas_cumprod(timesteps: int, s: float = 0.008) -> np.ndarray:
    r""":math:`\bar\alpha_t` for :math:`t = 0 .. T-1` of the cosine schedule (float64)."""
    steps = np.arange(timesteps + 1, dtype=np.float64) / timesteps
    f = np.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alphas_cumprod = f / f[0]
    betas = np.clip(1 - alphas_cumprod[1:] / alphas_cumprod[:-1], 0, 0.999)
    return np.cumprod(1 - betas)


def sampling_steps(timesteps: int, steps: int) -> list[int]:
    """``steps`` diffusion steps from ``timesteps - 1`` down to 0, evenly spaced, descending."""
    if not 1 <= steps <= timesteps:
        raise ValueError(f"steps must be between 1 and {timesteps} (the model's timesteps); got {steps}.")
    return sorted({int(round(v)) for v in np.linspace(0, timesteps - 1, steps)}, reverse=True)


def nested_steps(timesteps: int, steps: int) -> list[int]:
    """``steps`` diffusion steps at ``u = i / steps`` of the process, descending: the grid of ``2 * steps`` holds it.

    Progressive distillation halves the number of steps: the student's step from ``u = i/n`` to
    ``(i-1)/n`` replaces two teacher steps through ``(2i-1)/2n``, so the grids must nest.

    >>> nested_steps(1000, 4)
    [999, 749, 499, 249]
    """
    if not 1 <= steps <= timesteps:
        raise ValueError(f"steps must be between 1 and {timesteps}; got {steps}.")
    return [int(round(i * timesteps / steps)) - 1 for i in range(steps, 0, -1)]


class Diffusion:
    """Schedule plus the loss and samplers for a v-predicting network.

    Parameters
    ----------
    timesteps
        Length of the forward process (1000 as in DDPM).
    """

    def __init__(self, timesteps: int = 1000):
        self.timesteps = int(timesteps)
        self.alphas_cumprod = cosine_alphas_cumprod(self.timesteps)

    def _ab(self, t, device):
        return torch.as_tensor(self.alphas_cumprod, dtype=torch.float32, device=device)[t][:, None, None, None]

    def loss(self, net, x0, cond, valid, *, generator=None):
        """Mean squared error of the v-prediction over ``valid`` pixels (``(B, 1, H, W)`` bool)."""
        b = x0.shape[0]
        t = torch.randint(0, self.timesteps, (b,), device=x0.device, generator=generator)
        eps = torch.randn(x0.shape, device=x0.device, generator=generator)
        ab = self._ab(t, x0.device)
        x0 = torch.where(valid, x0, torch.zeros_like(x0))
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        v = ab.sqrt() * eps - (1 - ab).sqrt() * x0
        pred = net(x_t, cond, t).float()
        w = valid.float()
        return ((pred - v) ** 2 * w).sum() / w.sum().clamp_min(1.0)

    @torch.no_grad()
    def sample(
        self,
        net,
        cond,
        *,
        noise: Callable[[int], object],
        sampler: str = "ddim",
        steps: int = 25,
        clip: float | None = None,
        ts: list[int] | None = None,
    ):
        """Draw residual samples for ``cond`` (``(B, C, H, W)``).

        Parameters
        ----------
        noise
            ``noise(k)`` returns a standard-normal tensor shaped ``(B, 1, H, W)`` on ``cond``'s
            device; ``k = 0`` is the starting noise and ``k = 1, 2, ...`` the per-step draws of
            the stochastic sampler.
        sampler
            ``"ddim"`` (deterministic) or ``"ddpm"`` (ancestral).
        steps
            Number of network evaluations.
        clip
            Clamp :math:`\\hat x_0` to ``[-clip, clip]`` at each step (normalised units).
        ts
            The diffusion steps to visit, descending (default: ``steps`` evenly spaced ones); a
            distilled sampler runs on :func:`nested_steps`.
        """
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}; got {sampler!r}.")
        eta = 0.0 if sampler == "ddim" else 1.0
        ts = sampling_steps(self.timesteps, steps) if ts is None else list(ts)
        x = noise(0)
        for k, t in enumerate(ts):
            t_next = ts[k + 1] if k + 1 < len(ts) else -1
            x = self.step(net, x, cond, t, t_next, eta=eta, clip=clip, noise=lambda k=k: noise(k + 1))
        return x

    def step(self, net, x, cond, t: int, t_next: int, *, eta: float = 0.0, clip: float | None = None, noise=None):
        r"""One generalised DDIM step of every sample from step ``t`` to ``t_next`` (-1: the clean field).

        ``t`` may be an int or a ``(B,)`` tensor of steps (then ``t_next`` too; distillation draws a
        step per sample); ``noise()`` gives the fresh noise when ``eta > 0``.
        """
        b = x.shape[0]
        t_b = torch.as_tensor(t, device=x.device, dtype=torch.long).expand(b)
        tn_b = torch.as_tensor(t_next, device=x.device, dtype=torch.long).expand(b)
        table = torch.as_tensor(np.append(self.alphas_cumprod, 1.0), dtype=torch.float32, device=x.device)
        ab, ab_next = table[t_b][:, None, None, None], table[tn_b][:, None, None, None]  # index -1 -> 1.0
        v = net(x, cond, t_b).float()
        x0 = ab.sqrt() * x - (1 - ab).sqrt() * v
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        sigma = eta * ((1 - ab_next) / (1 - ab)).sqrt() * (1 - ab / ab_next).clamp_min(0).sqrt()
        out = ab_next.sqrt() * x0 + (1 - ab_next - sigma**2).clamp_min(0).sqrt() * eps
        if eta > 0 and bool((tn_b >= 0).any()):
            out = out + sigma * noise()
        return out
