"""The pairwise-ops layer: one vocabulary that the distance formulas are written against.

Every manifold writes its kernel-ready distance once (:meth:`manifolds.Manifold.kernel_dist`)
with the primitives below. :data:`TORCH` evaluates them on broadcast torch tensors
(``(..., N, 1, F)`` against ``(..., 1, M, F)``, the dense and chunked backends);
:class:`KeOpsOps` on KeOps ``LazyTensor``\\ s (symbolic ``N × M`` matrices, O(N + M) memory).
Every primitive keeps a trailing dimension (torch ``(..., 1)``, KeOps dimension 1), like KeOps.

Gradient conventions are shared: ``sqrt`` has a zero derivative at 0 on both (KeOps defines
``Rsqrt(0) = 0``; torch uses :func:`manifolds._numerics.safe_sqrt`), so coincident points give
zero, not NaN, gradients on every backend (refs/kernels.md §1.1).

Design after refs/kernels.md §6.1 (Feydy et al., "Fast geometric learning with symbolic
matrices", NeurIPS 2020, for the LazyTensor model).
"""

from __future__ import annotations

import math

import torch

from manifolds._numerics import safe_sqrt

__all__ = ["TorchOps", "KeOpsOps", "TORCH"]

# asinh(u) = u − u³/6 + 3u⁵/40 − 5u⁷/112 + 35u⁹/1152 − …: below this switch the series
# (relative truncation error < 3e-15), above it log(u + √(u² + 1)) (relative error ≲ 20 ulp).
_ASINH_SERIES = 0.05


def _asinh_series(u, u2):
    return u * (1 + u2 * (-1 / 6 + u2 * (3 / 40 + u2 * (-5 / 112 + u2 * (35 / 1152)))))


class TorchOps:
    """Primitives on broadcast torch tensors (dense and chunked backends)."""

    lazy = False

    @staticmethod
    def sqdist(a, b):
        d = a - b
        return (d * d).sum(-1, keepdim=True)

    @staticmethod
    def sqnorm(a):
        return (a * a).sum(-1, keepdim=True)

    @staticmethod
    def inner(a, b):
        return (a * b).sum(-1, keepdim=True)

    @staticmethod
    def slice(a, start, stop):
        return a[..., start:stop]

    sqrt = staticmethod(safe_sqrt)
    asin = staticmethod(torch.asin)
    asinh = staticmethod(torch.asinh)
    atan2 = staticmethod(torch.atan2)
    sin = staticmethod(torch.sin)
    exp = staticmethod(torch.exp)
    log = staticmethod(torch.log)
    relu = staticmethod(torch.relu)
    minimum = staticmethod(torch.minimum)

    @staticmethod
    def clamp(x, lo, hi):
        return torch.clamp(x, lo, hi)

    @staticmethod
    def wrap_angle(x):
        """``x`` wrapped to ``[−π, π)``."""
        return torch.remainder(x + math.pi, 2 * math.pi) - math.pi

    @staticmethod
    def scalar(t):
        """A Python number or 0-dim tensor as a factor of a formula (a 0-dim tensor does not
        change the dtype of the tensors it multiplies)."""
        return t


TORCH = TorchOps()


class KeOpsOps:
    """Primitives on KeOps ``LazyTensor``\\ s with ``nbatch`` leading batch dimensions."""

    lazy = True

    def __init__(self, nbatch: int = 0, dtype: torch.dtype = torch.float32):
        self.nbatch = nbatch
        self.dtype = dtype

    @staticmethod
    def sqdist(a, b):
        return a.sqdist(b)

    @staticmethod
    def sqnorm(a):
        return a.sqnorm2()

    @staticmethod
    def inner(a, b):
        return a | b

    @staticmethod
    def slice(a, start, stop):
        return a[start:stop]

    @staticmethod
    def sqrt(x):
        return x.sqrt()

    @staticmethod
    def asin(x):
        return x.asin()

    @staticmethod
    def asinh(u):
        """``asinh`` (KeOps has none): series below 0.05, ``log(u + √(u² + 1))`` above; ``u ≥ 0``."""
        u2 = u * u
        return (u - _ASINH_SERIES).ifelse((u + (u2 + 1).sqrt()).log(), _asinh_series(u, u2))

    @staticmethod
    def atan2(y, x):
        return y.atan2(x)

    @staticmethod
    def sin(x):
        return x.sin()

    @staticmethod
    def exp(x):
        return x.exp()

    @staticmethod
    def log(x):
        return x.log()

    @staticmethod
    def relu(x):
        return x.relu()

    @staticmethod
    def minimum(a, b):
        return (a - b).ifelse(b, a)

    @staticmethod
    def clamp(x, lo, hi):
        return x.clamp(lo, hi)

    @staticmethod
    def wrap_angle(x):
        return x.mod(2 * math.pi, -math.pi)

    def scalar(self, t):
        if not torch.is_tensor(t):
            return t
        from pykeops.torch import LazyTensor

        return LazyTensor(t.to(self.dtype).reshape((1,) * (self.nbatch + 3)))
