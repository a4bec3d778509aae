"""Conditioning and classifier-free guidance for Riemannian flow matching.

Classifier-free guidance (Ho & Salimans, "Classifier-Free Diffusion Guidance", NeurIPS 2021
workshop, arXiv 2207.12598, Eq. 6; for flow matching e.g. Zheng et al., "Guided Flows for
Generative Modeling and Decision Making", arXiv 2311.13443, Eq. 8) combines a conditional and an
unconditional prediction of the *same* network, trained with the condition randomly dropped:

.. math::
    v_w(x, t \\mid c) = \\mathrm{proj}_x\\big(v(x, t \\mid \\varnothing) + w\\,(v(x, t \\mid c) - v(x, t \\mid \\varnothing))\\big).

Both predictions live in the same tangent space ``T_x M`` (same base point), so the affine
combination is a tangent vector; the final ``proju`` only removes round-off (and makes the
output tangent when the wrapped field is not projected itself).

* :func:`drop_condition` — replace the condition by a null token with probability ``p`` (training).
* :class:`ClassifierFreeGuidance` — wrap a conditional field ``(x, t, cond=..., **extras)`` into
  the guided field ``(x, t, cond=..., **extras)`` usable by :class:`RiemannianODESolver` and
  :func:`manifolds.flow_matching.log_likelihood`.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from ..base import Manifold

__all__ = ["drop_condition", "ClassifierFreeGuidance"]


def drop_condition(
    cond: torch.Tensor,
    p: float,
    *,
    null: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
):
    """Condition dropout for classifier-free guidance training (Ho & Salimans 2022, Alg. 1).

    Each batch element's condition is replaced by the null condition with probability ``p``.

    Args:
        cond: ``(B, *cond_shape)`` conditions (floating point).
        p: dropout probability in ``[0, 1]``.
        null: ``cond_shape`` (or broadcastable) null token, e.g. a learned ``nn.Parameter``;
            default zeros.
        generator: optional random generator.

    Returns:
        ``(cond_dropped, keep)``: ``cond_dropped`` shaped like ``cond``, and the boolean mask
        ``keep: (B,)`` (``False`` where the null condition was used) so that a network can also
        take the mask as an input.

    Raises:
        ValueError: ``p`` outside ``[0, 1]`` or ``cond`` without a batch dimension.
    """
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"drop probability p must be in [0, 1], got {p!r}")
    if cond.dim() < 1:
        raise ValueError(f"cond must have a leading batch dimension, got shape {tuple(cond.shape)}")
    B = cond.shape[0]
    keep = torch.rand(B, device=cond.device, generator=generator) >= p
    if null is None:
        null = torch.zeros((), dtype=cond.dtype, device=cond.device)
    null = null.to(cond.dtype).expand_as(cond)
    mask = keep.reshape((B,) + (1,) * (cond.dim() - 1))
    return torch.where(mask, cond, null), keep


class ClassifierFreeGuidance(torch.nn.Module):
    r"""Classifier-free guided tangent field ``proju(x, v_∅ + w (v_c − v_∅))``.

    ``w = 0`` gives the unconditional field, ``w = 1`` the conditional one, ``w > 1``
    extrapolates (Ho & Salimans 2022, Eq. 6, written for the velocity instead of the noise).

    Args:
        velocity: conditional field ``(x, t, **{cond_key: c}, **extras) -> v`` with
            ``x: (*batch, *event_shape)``, ``t: (*batch,)``; called twice per evaluation
            (with the condition and with the null condition).
        manifold: the manifold of ``x``.
        scale: guidance weight ``w`` (float).
        null: the null condition (tensor broadcastable to the condition, e.g. the learned
            null token used in training); default zeros like the condition.
        cond_key: name of the conditioning keyword (default ``"cond"``).

    ``forward(x, t, **extras)`` takes the condition as ``extras[cond_key]`` (required) and may
    override the weight with ``guidance_scale=...``.
    """

    def __init__(
        self,
        velocity: Callable[..., torch.Tensor],
        manifold: Manifold,
        scale: float = 1.0,
        *,
        null: Optional[torch.Tensor] = None,
        cond_key: str = "cond",
    ):
        super().__init__()
        self.velocity = velocity
        self.manifold = manifold
        self.scale = float(scale)
        self.null = null
        self.cond_key = cond_key

    def forward(self, x: torch.Tensor, t: torch.Tensor, guidance_scale: Optional[float] = None, **extras) -> torch.Tensor:
        if self.cond_key not in extras:
            raise ValueError(f"ClassifierFreeGuidance needs the condition as keyword {self.cond_key!r}")
        w = self.scale if guidance_scale is None else float(guidance_scale)
        c = extras.pop(self.cond_key)
        null = torch.zeros_like(c) if self.null is None else self.null.to(c.dtype).expand_as(c)
        v_u = self.velocity(x, t, **{self.cond_key: null}, **extras)
        if w == 0.0:
            return self.manifold.proju(x, v_u)
        v_c = self.velocity(x, t, **{self.cond_key: c}, **extras)
        return self.manifold.proju(x, v_u + w * (v_c - v_u))
