"""Flat Euclidean space ℝⁿ."""

from __future__ import annotations

import math
from typing import Optional

import torch

from ._numerics import safe_norm
from .base import Manifold

__all__ = ["Euclidean"]


class Euclidean(Manifold):
    """Euclidean space ℝⁿ with the standard inner product.

    Points and tangent vectors are ``(*batch, n)`` tensors; ``expmap(x, u) = x + u``,
    ``logmap(x, y) = y - x``, parallel transport is the identity. Every coordinate is
    its own factor for adaptive optimizers, so :class:`manifolds.RiemannianAdam` on a
    Euclidean parameter is exactly ``torch.optim.Adam``.

    Args:
        dim: ``n``. ``None`` gives a shape-agnostic space (event shape ``()``: every
            scalar is a point of ℝ), which is what plain tensors are optimised on.
        base_scale: standard deviation σ of the base distribution ``N(0, σ² I)``.

    Raises:
        ValueError: ``dim`` not a positive integer or ``base_scale`` not positive.

    Example:
        >>> R2 = Euclidean(2)
        >>> x = R2.random_base(5, 2)
        >>> R2.base_log_prob(x).shape
        torch.Size([5])
    """

    name = "Euclidean"
    reversible = True

    def __init__(self, dim: Optional[int] = None, base_scale: float = 1.0):
        super().__init__()
        if dim is not None and (not isinstance(dim, int) or dim < 1):
            raise ValueError(f"Euclidean dim must be a positive int or None, got {dim!r}")
        if not base_scale > 0:
            raise ValueError(f"base_scale must be > 0, got {base_scale!r}")
        self.event_shape = () if dim is None else (dim,)
        self.ndim = len(self.event_shape)
        self.dim = 1 if dim is None else dim
        self.base_scale = float(base_scale)

    def _key(self):
        return (type(self).__name__, self.event_shape, self.base_scale)

    def _sum(self, t: torch.Tensor, keepdim: bool) -> torch.Tensor:
        return t.sum(dim=-1, keepdim=keepdim) if self.ndim else t

    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=1e-5):
        return True, None

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=1e-5):
        return True, None

    def inner(self, x, u, v=None, *, keepdim=False):
        """``<u, v>``; shape ``(*batch,)`` (``(*batch, 1)`` with ``keepdim``)."""
        return self._sum(u * (u if v is None else v), keepdim)

    def component_inner(self, x, u, v=None):
        """Per-coordinate products ``u * v``: every coordinate is a factor (plain Adam)."""
        return u * (u if v is None else v)

    def norm(self, x, u, *, keepdim=False):
        return safe_norm(u, keepdim=keepdim) if self.ndim else u.abs()

    def dist(self, x, y, *, keepdim=False):
        """``|x - y|``, with a zero gradient at ``x == y``."""
        return self.norm(x, y - x, keepdim=keepdim)

    def dist2(self, x, y, *, keepdim=False):
        return self._sum((y - x) ** 2, keepdim)

    has_kernel_formula = True

    def kernel_dist(self, a, b, ops):
        """``|a − b|`` on flattened points (see :meth:`Manifold.kernel_dist`); zero gradient at ``a == b``."""
        return ops.sqrt(ops.sqdist(a, b))

    def proju(self, x, u):
        return u

    def egrad2rgrad(self, x, u):
        return u

    def projx(self, x):
        return x

    def expmap(self, x, u):
        return x + u

    def logmap(self, x, y):
        return y - x

    def transp(self, x, y, v):
        return v

    def transp_follow_expmap(self, x, u, v):
        return v

    def geodesic(self, x, y, t):
        return x + self._expand_batch(t, x) * (y - x)

    def origin_point(self, x: torch.Tensor) -> torch.Tensor:
        """The canonical origin ``0``, shaped like ``x``.

        Used by the optimizers' decoupled weight decay, which steps along the geodesic
        from ``x`` towards the origin (for ℝⁿ: ``x <- (1 - lr·λ) x``, as in AdamW).
        """
        return torch.zeros_like(x)

    def random(self, *size, dtype=None, device=None, generator=None):
        """Standard normal points of shape ``size``."""
        size = self._check_size(size)
        return torch.randn(size, dtype=dtype, device=device, generator=generator)

    def random_base(self, *size, dtype=None, device=None, generator=None):
        """Samples of ``N(0, base_scale² I)``, shape ``size``."""
        return self.base_scale * self.random(*size, dtype=dtype, device=device, generator=generator)

    def base_log_prob(self, x):
        """Log-density of ``N(0, base_scale² I)``, shape ``(*batch,)``."""
        n = x.shape[-1] if self.ndim else 1
        s2 = self.base_scale**2
        return -0.5 * self._sum(x * x, False) / s2 - 0.5 * n * math.log(2 * math.pi * s2)

    def extra_repr(self):
        return f"dim={self.event_shape[0] if self.ndim else None}, base_scale={self.base_scale}"
