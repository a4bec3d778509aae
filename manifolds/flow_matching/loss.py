"""The Riemannian flow-matching loss."""

from __future__ import annotations

import torch

from ..base import Manifold

__all__ = ["riemannian_fm_loss"]


def riemannian_fm_loss(manifold: Manifold, x_t: torch.Tensor, v_t: torch.Tensor, dx_t: torch.Tensor) -> torch.Tensor:
    r"""Conditional flow-matching loss in the Riemannian norm.

    ``E ‖v_θ(t, x_t) - u_t(x_t | x_1)‖²_{g(x_t)}`` (Chen & Lipman, ICLR 2024, Eq. 10),
    averaged over the batch. On the sphere and Euclidean space the metric is the ambient
    dot product; on other manifolds (SPD, hyperbolic) it is not, which is why the loss
    takes the manifold rather than being a plain MSE.

    Args:
        manifold: the manifold of ``x_t``.
        x_t: ``(*batch, *event_shape)`` points on the path.
        v_t: ``(*batch, *event_shape)`` predicted velocities (tangent at ``x_t``).
        dx_t: ``(*batch, *event_shape)`` target conditional velocities.

    Returns:
        scalar tensor.
    """
    diff = v_t - dx_t
    return manifold.inner(x_t, diff, diff).mean()
