"""Tangent vector fields from ambient networks."""

from __future__ import annotations

import torch

from ..base import Manifold

__all__ = ["ProjectToTangent"]


class ProjectToTangent(torch.nn.Module):
    """Turn an ambient network ``f(x, t, **extras)`` into a tangent field ``proju(x, f(x, t))``.

    The network sees ambient coordinates (``(*batch, *event_shape)``) and its output is
    projected onto ``T_x M``, as in riemannian-fm's ``ProjectToTangent`` (Chen & Lipman,
    ICLR 2024, §3.3). ``x`` is not re-projected: callers pass points on the manifold.

    Args:
        net: module ``(x, t, **extras) -> (*batch, *event_shape)``.
        manifold: the manifold of ``x``.
    """

    def __init__(self, net: torch.nn.Module, manifold: Manifold):
        super().__init__()
        self.net = net
        self.manifold = manifold

    def forward(self, x: torch.Tensor, t: torch.Tensor, **extras) -> torch.Tensor:
        return self.manifold.proju(x, self.net(x, t, **extras))
