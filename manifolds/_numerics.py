"""Private numerical helpers shared by the manifolds: dtype-aware tolerances and
functions whose value *and* gradient stay finite at the special points (zero
vectors, coincident points). No function here branches in Python on tensor values.
"""

from __future__ import annotations

import math

import torch

__all__ = ["check_tol", "dot", "safe_norm", "safe_sqrt", "sinc", "sinc_half_sq"]

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


# Above this many elements ``einsum`` beats ``(u * v).sum(-1)`` on CPU for a short last
# dimension (4x at 3e5 float64 elements); below it, its fixed overhead loses (32 vs 18 µs
# at 3e3). The choice depends on shapes only, never on values.
_EINSUM_MIN_NUMEL = 16384


def dot(u: torch.Tensor, v: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """Inner product over the last dimension, broadcasting the leading ones."""
    if u.numel() >= _EINSUM_MIN_NUMEL or v.numel() >= _EINSUM_MIN_NUMEL:
        r = torch.einsum("...i,...i->...", u, v)
        return r.unsqueeze(-1) if keepdim else r
    return (u * v).sum(-1, keepdim=keepdim)


def safe_norm(u: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """Euclidean norm along ``dim`` whose gradient at ``u == 0`` is 0, not NaN.

    ``torch.linalg.vector_norm`` (one fused kernel, and its backward masks ``u = 0``);
    a hand-written ``sqrt((u*u).sum())`` would give a NaN gradient there.
    """
    # torch's vector_norm backward already returns the zero subgradient at u = 0.
    return torch.linalg.vector_norm(u, dim=dim, keepdim=keepdim)


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
