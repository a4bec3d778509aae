"""Behaviour-cloning training loop for the flow-matching policies."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import torch
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from manifolds import RiemannianAdam

__all__ = ["TrainResult", "train_policy"]


@dataclass
class TrainResult:
    """What :func:`train_policy` returns.

    Attributes:
        ema: the exponential moving average of the policy (the one to evaluate), a
            :class:`torch.optim.swa_utils.AveragedModel` whose ``.module`` is the policy.
        losses: loss of every step.
        wall_time_s: training wall time in seconds.
    """

    ema: AveragedModel
    losses: list
    wall_time_s: float


def _ema_with_warmup(decay: float):
    """EMA update with the warm-up ``min(decay, (1 + n) / (10 + n))`` (riemannian-fm's EMA).

    A fixed decay of 0.999 averages over ~1000 steps, so short runs would evaluate
    mostly the initial weights; the warm-up makes the average track early training.
    """

    @torch.no_grad()
    def update(ema_params, params, num_averaged):
        n = float(num_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        torch._foreach_lerp_(list(ema_params), list(params), 1.0 - d)

    return update


def train_policy(
    policy,
    obs: torch.Tensor,
    actions: torch.Tensor,
    *,
    steps: int = 3000,
    batch_size: int = 256,
    lr: float = 1e-3,
    ema_decay: float = 0.999,
    generator: Optional[torch.Generator] = None,
    progress: bool = True,
    desc: str = "train",
) -> TrainResult:
    """Train a policy with its flow-matching loss, :class:`manifolds.RiemannianAdam` and a cosine schedule.

    Mini-batches are drawn uniformly with replacement from ``(obs, actions)``; the
    evaluated weights are an EMA of the iterates (RFMP and riemannian-fm use EMA 0.999,
    with riemannian-fm's warm-up), kept by ``torch.optim.swa_utils.AveragedModel``.

    Args:
        policy: a module with ``loss(obs, actions, generator=...)``.
        obs: ``(N, obs_horizon, d)`` observations; actions: ``(N, H, d)`` chunks.
        steps: optimisation steps; batch_size: mini-batch size; lr: peak learning rate.
        ema_decay: EMA decay.
        generator: random generator for batches and flow noise (reproducibility
            without touching the global RNG).
        progress: show a tqdm progress bar.

    Returns:
        :class:`TrainResult`.

    Raises:
        ValueError: ``obs`` and ``actions`` differ in length, or bad ``steps`` / ``batch_size``.
    """
    if obs.shape[0] != actions.shape[0]:
        raise ValueError(f"obs and actions must have the same length, got {obs.shape[0]} and {actions.shape[0]}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    opt = RiemannianAdam(policy.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr * 0.01)
    ema = AveragedModel(policy, multi_avg_fn=_ema_with_warmup(ema_decay))
    n = obs.shape[0]
    losses = []
    t0 = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, disable=not progress, mininterval=0.5, leave=False)
    for _ in bar:
        idx = torch.randint(n, (batch_size,), generator=generator)
        loss = policy.loss(obs[idx], actions[idx], generator=generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema.update_parameters(policy)
        losses.append(loss.detach())  # kept on the device: no host sync per step
        if progress and len(losses) % 100 == 0:
            bar.set_postfix(loss=f"{float(torch.stack(losses[-100:]).mean()):.4f}")
    bar.close()
    losses = torch.stack(losses).tolist()
    return TrainResult(ema=ema, losses=losses, wall_time_s=time.perf_counter() - t0)
