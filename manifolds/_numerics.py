"""Private numerical helpers shared by the manifolds: dtype-aware tolerances and
functions whose value *and* gradient stay finite at the special points (zero
vectors, coincident points). No function here branches in Python on tensor values.
"""

from __future__ import annotations

import math

import torch

__all__ = ["check_tol", "safe_norm", "safe_sqrt", "sinc", "sinc_half_sq"]

# Tolerances used by ``check_point`` / ``check_vector`` when the caller gives none.
_CHECK_ATOL = {
    torch.float16: 1e-2,
    torch.bfloat16: 3e-2,
    torch.float32: 1e-5,
    torch.float64: 1e-10,
}


def check_tol(dtype: torch.dtype) -> float:
    """Default absolute tolerance of the membership checks for ``dtype``."""
    return _CHECK_ATOL.get(dtype, 1e-5)


def safe_norm(u: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """Euclidean norm along ``dim`` whose gradient at ``u == 0`` is 0, not NaN.

    ``sqrt`` has an infinite derivative at 0. Below the smallest normal squared norm
    (``|u| < 1e-19`` in float32) the result is exactly 0 with the zero subgradient;
    the unselected branch is sanitised so ``torch.where`` does not leak a NaN.
    """
    return safe_sqrt((u * u).sum(dim=dim, keepdim=keepdim))


def safe_sqrt(sq: torch.Tensor) -> torch.Tensor:
    """``sqrt`` of a non-negative tensor, exactly 0 with a zero gradient below the smallest normal."""
    pos = sq > torch.finfo(sq.dtype).tiny
    return torch.where(pos, torch.where(pos, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


def sinc(x: torch.Tensor) -> torch.Tensor:
    """Unnormalised sinc ``sin(x) / x`` (1 at 0), smooth with finite gradient everywhere."""
    return torch.sinc(x / math.pi)


def sinc_half_sq(x: torch.Tensor) -> torch.Tensor:
    """``(1 - cos x) / x**2 = sinc(x/2)**2 / 2``, computed without cancellation near 0."""
    s = sinc(0.5 * x)
    return 0.5 * s * s
