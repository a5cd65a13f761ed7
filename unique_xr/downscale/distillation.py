r"""Few-step samplers for a trained downscaler by progressive distillation (Salimans & Ho 2022).

A trained model samples with deterministic DDIM in tens of network evaluations per member. Progressive
distillation trains a *student* network to make in one DDIM step what its teacher makes in two, then
makes that student the teacher of the next round: 16 -> 8 -> 4 -> 2 -> 1 evaluations. Each round is a
short regression on the model's own training patches, with no new data and no adversarial loss.

Why this and not consistency distillation: the model already predicts :math:`v` on a cosine schedule,
which is the parameterisation progressive distillation was designed for (the student's target is
exact given the teacher's two steps: no ODE solver or distance metric to choose), each round is
checked on its own (the student of ``n`` steps against the teacher of ``2n``), and every intermediate
student is kept, so ``steps=8, 4, 2, 1`` can all be chosen and compared.

The student of ``n`` steps runs on the nested grid :func:`~unique_xr.downscale.diffusion.nested_steps`
(``u = i / n`` of the process). For a teacher step pair :math:`t \to t' \to t''` from :math:`x_t`,
the student's target :math:`\tilde x_0` is the clean field from which one DDIM step
:math:`t \to t''` lands on the teacher's :math:`x_{t''}`:

.. math::

    \tilde x_0 = \frac{x_{t''} - (\sigma_{t''}/\sigma_t)\,x_t}{\alpha_{t''} - (\sigma_{t''}/\sigma_t)\,\alpha_t},

and the student is trained on the matching :math:`v` target (MSE in :math:`v` = SNR + 1 weighting of the
:math:`x_0` error), over the pixels where the training target is valid.

The students are stored in the model folder's ``weights.pt`` (prefixed ``student<n>.``) and listed in
the card's ``distilled`` entry; they change the model's token. :func:`unique_xr.downscale.downscale` with
``steps=n`` uses the student of ``n`` steps when there is one.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unique_xr._optional import import_optional
from unique_xr.downscale.conditioning import DownscaleInputError

torch = import_optional("torch", purpose="distilling the diffusion sampler")

from unique_xr.downscale.diffusion import nested_steps  # noqa: E402
from unique_xr.downscale.model import _augment, autocast, load_downscaler, resolve_device  # noqa: E402

__all__ = ["distill", "distill_patches"]


def distill(model, coarse, fine, *, aux=None, dates: Sequence[Any] | None = None, factor: int | None = None,
            steps: int = 4, start: int = 16, round_steps: int | None = None, device: str = "cpu",
            precision: str = "auto", out: str | Path | None = None, seed: int | None = None,
            progress: bool = False):
    """Distil ``model`` into samplers of ``start / 2, ..., steps`` network evaluations, on its training pairs.

    Parameters
    ----------
    model
        A fitted :class:`~unique_xr.downscale.model.Downscaler` or its folder.
    coarse, fine, aux, dates, factor
        Training pairs as for :func:`unique_xr.downscale.fit` (the ones the model was fitted on,
        or others of the same kind); the model's normalisation is kept.
    steps
        The fewest evaluations wanted: a power of two that divides ``start`` (1, 2, 4, ...).
    start
        Evaluations of the first teacher (the model itself, DDIM on the nested grid); every round halves it.
    round_steps
        Optimiser steps per round (default: a quarter of the model's ``train_steps``, at least 50).
    out
        Model folder to write (default: the folder ``model`` was read from, when it was given as one).

    Returns
    -------
    Downscaler
        The model with its students (:attr:`~unique_xr.downscale.model.Downscaler.students`).
    """
    from unique_xr.downscale.api import training_set

    folder = None
    if not hasattr(model, "net"):
        folder = Path(model)
        model = load_downscaler(folder)
    if steps < 1 or start % steps or (start // steps) & (start // steps - 1) or start <= steps:
        raise DownscaleInputError(f"Distillation halves the evaluations each round: start ({start}) must be "
                                  f"steps ({steps}) times a power of two >= 2, e.g. --steps 4 from 16.")
    _, patches, _ = training_set(coarse, fine, aux=aux, scheme=model.scheme, factor=factor, config=model.config,
                                 dates=dates, prior_dropout=float(model.card.get("prior_dropout", 0.2)),
                                 norm=model.norm)
    distill_patches(model, patches, steps=steps, start=start, round_steps=round_steps, device=device,
                    precision=precision, seed=seed, progress=progress)
    target = out if out is not None else folder
    if target is not None:
        model.save(target)
    return model


def distill_patches(model, patches: np.ndarray, *, steps: int = 4, start: int = 16, round_steps: int | None = None,
                    device: str = "cpu", precision: str = "auto", seed: int | None = None,
                    progress: bool = False):
    """The rounds of :func:`distill` on training patches ``(N, 1 + C, P, P)``; adds the students to ``model``."""
    cfg = model.config
    device = resolve_device(device)
    model.to(device)
    round_steps = round_steps or max(50, cfg.train_steps // 4)
    seed = cfg.seed if seed is None else seed
    gen = torch.Generator().manual_seed(seed + 1)
    data = torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32))
    if data.shape[0] == 0:
        raise DownscaleInputError("No training patch to distil on; check the pairs.")
    teacher, n, rounds, started = model.net.eval(), start, [], time.perf_counter()
    while n > steps:
        student = _round(model, teacher, data, n, round_steps, gen, device, precision, cfg, progress)
        rounds.append({"teacher_steps": n, "student_steps": n // 2, "final_loss": student.final_loss})
        model.students[n // 2] = student.net
        teacher, n = student.net, n // 2
    # what the students are (part of the model's token) ...
    model.distilled = {"steps": sorted(model.students), "from_steps": start, "round_steps": round_steps,
                       "seed": seed, "rounds": rounds}
    # ... and how this run went (card only)
    model.card["distillation_run"] = {"device": device, "seconds": round(time.perf_counter() - started, 1)}
    return model


class _Student:
    def __init__(self, net, final_loss):
        self.net, self.final_loss = net, final_loss


def _round(model, teacher, data, n, round_steps, gen, device, precision, cfg, progress) -> _Student:
    """One round: a student of ``n // 2`` steps copies ``teacher`` of ``n`` steps."""
    diffusion = model.diffusion
    grid = nested_steps(cfg.timesteps, n) + [-1]
    table = np.append(diffusion.alphas_cumprod, 1.0)  # index -1: the clean field
    student = copy.deepcopy(teacher).train()
    for p in student.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.learning_rate * 0.5, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / round_steps)))
    losses = []
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        task = bar.add_task(f"distil {n} -> {n // 2}", total=round_steps)
        bar.start()
    for _ in range(round_steps):
        idx = torch.randint(0, data.shape[0], (cfg.batch_size,), generator=gen)
        k = int(torch.randint(0, 8, (1,), generator=gen))
        batch = _augment(data[idx], k).to(device)
        target, cond = batch[:, :1], batch[:, 1:]
        valid = torch.isfinite(target)
        x0 = torch.where(valid, target, torch.zeros_like(target))
        i = torch.randint(0, n // 2, (cfg.batch_size,), generator=gen)
        t, t_mid, t_next = (torch.as_tensor([grid[2 * int(j) + o] for j in i], device=device) for o in (0, 1, 2))
        eps = torch.randn(x0.shape, generator=gen).to(device)
        a_t, a_n = (torch.as_tensor(table[s.cpu().numpy()], dtype=torch.float32, device=device)[:, None, None, None]
                    for s in (t, t_next))
        x_t = a_t.sqrt() * x0 + (1 - a_t).sqrt() * eps
        with torch.no_grad(), autocast(device, precision):
            x_mid = diffusion.step(teacher, x_t, cond, t, t_mid, clip=8.0)
            x_nx = diffusion.step(teacher, x_mid, cond, t_mid, t_next, clip=8.0)
        ratio = (1 - a_n).sqrt() / (1 - a_t).sqrt()
        x0_target = (x_nx.float() - ratio * x_t) / (a_n.sqrt() - ratio * a_t.sqrt())
        v_target = (a_t.sqrt() * x_t - x0_target) / (1 - a_t).sqrt()
        with autocast(device, precision):
            pred = student(x_t, cond, t).float()
        w = valid.float()
        loss = ((pred - v_target) ** 2 * w).sum() / w.sum().clamp_min(1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if bar is not None:
            bar.advance(task, 1)
    if bar is not None:
        bar.stop()
    student.eval()
    for p in student.parameters():
        p.requires_grad_(False)
    window = losses[-max(1, len(losses) // 10):]
    return _Student(student, round(float(np.mean(window)), 5))
