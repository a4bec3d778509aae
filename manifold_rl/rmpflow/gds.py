"""Geometric dynamical systems (GDS) as leaf RMPs, their curvature terms, and a Lyapunov monitor.

A GDS ``(G, B, Φ)`` on a task space ``x ∈ ℝᵐ`` (Cheng et al., RMPflow, arXiv:1811.07049, Sec. IV,
Eq. (9)–(10); ref sheet §1.3) follows

    (G(x, ẋ) + Ξ_G(x, ẋ)) ẍ + ξ_G(x, ẋ) = −∇Φ(x) − B(x, ẋ) ẋ

with the curvature terms (g_i = i-th column of G)

    Ξ_G = ½ Σ_i ẋ_i ∂_ẋ g_i,           (Ξ_G)_{jl} = ½ Σ_i ẋ_i ∂G_{ji}/∂ẋ_l,
    ξ_G = Gˣ ẋ − ½ ∇_x(ẋᵀ G ẋ),        Gˣ ẋ = Σ_k ẋ_k (∂_k G) ẋ,

so that its leaf RMP in natural form is ``[f, M] = [−∇Φ − Bẋ − ξ_G, G + Ξ_G]``.

The ½ in ``Ξ_G`` follows the paper and the authors' code (gtrll/multi-robot-rmpflow ``rmp_leaf.py``:
barrier ``M = g + 0.5·ẋ·w·∂u``). The PyTorch port hgrmpflow / STEAL (``find_curvature_terms``) omits
it; ``curvature="hgrmpflow"`` reproduces that variant for comparison, ``curvature="none"`` drops both
terms (as the paper's hardware runs and Lula do).

Curvature terms are computed with one forward-mode pass (``torch.autograd.forward_ad``) over ``2m``
stacked tangents: ``(e_k, 0)`` gives ``(∂_k G) ẋ`` (and ``∂_k Φ``), ``(0, e_l)`` gives
``∂_{ẋ_l}(G ẋ)``, both with the ``ẋ`` that multiplies ``G`` held fixed. No reverse mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor

from .core import Leaf, RMPFlow, check_state

__all__ = ["GDSLeaf", "curvature_terms", "LyapunovOutput", "lyapunov", "pullback_metrics", "CURVATURE_CONVENTIONS"]

CURVATURE_CONVENTIONS = ("paper", "hgrmpflow", "none")


def _bmv(A: Tensor, v: Tensor) -> Tensor:
    return (A @ v.unsqueeze(-1)).squeeze(-1)


def curvature_terms(metric: Callable[[Tensor, Tensor], Tensor], x: Tensor, xd: Tensor,
                    potential: Optional[Callable[[Tensor], Tensor]] = None,
                    xi_factor: float = 0.5) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Curvature terms ``Ξ_G`` and ``ξ_G`` of a metric ``G(x, ẋ)`` by forward-mode autodiff.

    Args:
        metric: batched ``(x, ẋ) ↦ G``, ``(B, m), (B, m) → (B, m, m)``.
        x, xd: ``(B, m)``.
        potential: optional ``x ↦ Φ(x)`` ``(B,)``; its gradient is returned from the same pass.
        xi_factor: factor in front of ``Σ_i ẋ_i ∂_ẋ g_i`` (½ = paper; 1 = hgrmpflow).

    Returns:
        ``Xi (B, m, m)``, ``xi (B, m)``, ``grad_phi (B, m)`` or ``None``.
    """
    B, m = x.shape
    eye = torch.eye(m, dtype=x.dtype, device=x.device)
    zeros = torch.zeros(m * B, m, dtype=x.dtype, device=x.device)
    basis = eye.repeat_interleave(B, dim=0)  # row k*B + b = e_k
    xr = x.repeat(2 * m, 1)
    vr = xd.repeat(2 * m, 1)
    tx = torch.cat([basis, zeros], 0)
    tv = torch.cat([zeros, basis], 0)
    xd_const = xd.repeat(2 * m, 1)
    with fwAD.dual_level():
        xdual = fwAD.make_dual(xr, tx)
        vdual = fwAD.make_dual(vr, tv)
        Gv = _bmv(metric(xdual, vdual), xd_const)
        _, dGv = fwAD.unpack_dual(Gv)
        dphi = None
        if potential is not None:
            _, dphi = fwAD.unpack_dual(potential(xdual))
    if dGv is None:
        dGv = torch.zeros(2 * m * B, m, dtype=x.dtype, device=x.device)
    D = dGv[: m * B].reshape(m, B, m)  # D[k] = (∂_k G) ẋ
    E = dGv[m * B:].reshape(m, B, m)  # E[l] = ∂_{ẋ_l} (G ẋ)
    Gx_xd = torch.einsum("bk,kbi->bi", xd, D)
    grad_energy = torch.einsum("kbi,bi->bk", D, xd)  # ∇_x (ẋᵀ G ẋ) with ẋ fixed
    xi = Gx_xd - 0.5 * grad_energy
    Xi = xi_factor * E.permute(1, 2, 0)
    grad_phi = None
    if potential is not None:
        grad_phi = x.new_zeros(B, m) if dphi is None else dphi[: m * B].reshape(m, B).T
    return Xi, xi, grad_phi


class GDSLeaf(Leaf):
    """Leaf RMP of a geometric dynamical system ``(G, B, Φ)`` (RMPflow Sec. IV; ref sheet §1.3).

    Define the GDS either by subclassing (override :meth:`metric`, :meth:`damping`,
    :meth:`potential` and optionally :meth:`potential_grad` / :meth:`curvature`) or by passing
    callables. Natural form ``[−∇Φ − Bẋ − ξ_G, G + Ξ_G]``.

    Args:
        dim: task-space dimension m.
        metric: ``(x, ẋ) ↦ G (B, m, m)`` (default identity).
        damping: ``(x, ẋ) ↦ B (B, m, m)`` (default zero).
        potential: ``x ↦ Φ (B,)`` (default zero).
        potential_grad: optional analytic ``x ↦ ∇Φ (B, m)``.
        curvature: ``"paper"`` (½ Ξ_G, default), ``"hgrmpflow"`` (Ξ_G without ½), ``"none"``.

    Raises:
        ValueError: unknown curvature convention, non-positive dim, or bad input shapes.
    """

    def __init__(self, dim: int, metric=None, damping=None, potential=None, potential_grad=None,
                 curvature: str = "paper"):
        super().__init__()
        if int(dim) <= 0:
            raise ValueError(f"GDSLeaf: dim must be positive, got {dim}")
        if curvature not in CURVATURE_CONVENTIONS:
            raise ValueError(f"GDSLeaf: curvature must be one of {CURVATURE_CONVENTIONS}, got {curvature!r}")
        self.dim = int(dim)
        self.curvature_convention = curvature
        self._metric_fn, self._damping_fn = metric, damping
        self._potential_fn, self._potential_grad_fn = potential, potential_grad

    # -- hooks ----------------------------------------------------------------------------------
    def metric(self, x: Tensor, xd: Tensor) -> Tensor:
        """``G(x, ẋ)``: ``(B, m, m)``."""
        if self._metric_fn is not None:
            return self._metric_fn(x, xd)
        return torch.eye(self.dim, dtype=x.dtype, device=x.device).expand(x.shape[0], self.dim, self.dim) + 0 * x.unsqueeze(-1)

    def damping(self, x: Tensor, xd: Tensor) -> Tensor:
        """``B(x, ẋ)``: ``(B, m, m)``."""
        if self._damping_fn is not None:
            return self._damping_fn(x, xd)
        return x.new_zeros(x.shape[0], self.dim, self.dim)

    def potential(self, x: Tensor) -> Tensor:
        """``Φ(x)``: ``(B,)``."""
        if self._potential_fn is not None:
            return self._potential_fn(x)
        return (0 * x).sum(-1)

    def has_potential_grad(self) -> bool:
        return self._potential_grad_fn is not None or type(self).potential_grad is not GDSLeaf.potential_grad

    def potential_grad(self, x: Tensor) -> Tensor:
        """``∇Φ(x)``: ``(B, m)`` (default: forward mode through :meth:`potential`)."""
        if self._potential_grad_fn is not None:
            return self._potential_grad_fn(x)
        B, m = x.shape
        with fwAD.dual_level():
            d = fwAD.make_dual(x.repeat(m, 1), torch.eye(m, dtype=x.dtype, device=x.device).repeat_interleave(B, 0))
            _, t = fwAD.unpack_dual(self.potential(d))
        return x.new_zeros(B, m) if t is None else t.reshape(m, B).T

    def curvature(self, x: Tensor, xd: Tensor) -> Tuple[Tensor, Tensor]:
        """``(Ξ_G (B, m, m), ξ_G (B, m))`` in the configured convention (autodiff by default)."""
        if self.curvature_convention == "none":
            B, m = x.shape
            return x.new_zeros(B, m, m), x.new_zeros(B, m)
        factor = 0.5 if self.curvature_convention == "paper" else 1.0
        Xi, xi, _ = curvature_terms(self.metric, x, xd, None, factor)
        return Xi, xi

    # -- RMP ------------------------------------------------------------------------------------
    def natural(self, x: Tensor, xd: Tensor) -> Tuple[Tensor, Tensor]:
        """``[f, M] = [−∇Φ − Bẋ − ξ_G, G + Ξ_G]``; ``x, xd: (B, m)``."""
        check_state(x, xd, self.dim, what=type(self).__name__)
        G = self.metric(x, xd)
        Bm = self.damping(x, xd)
        Xi, xi = self.curvature(x, xd)
        gphi = self.potential_grad(x)
        f = -gphi - _bmv(Bm, xd) - xi
        return f, G + Xi

    def energy(self, x: Tensor, xd: Tensor) -> Tensor:
        """``½ ẋᵀ G(x, ẋ) ẋ + Φ(x)``: ``(B,)``."""
        G = self.metric(x, xd)
        return 0.5 * torch.einsum("bi,bij,bj->b", xd, G, xd) + self.potential(x)

    def dissipation(self, x: Tensor, xd: Tensor) -> Tensor:
        """``ẋᵀ B ẋ``: ``(B,)``."""
        return torch.einsum("bi,bij,bj->b", xd, self.damping(x, xd), xd)


@dataclass
class LyapunovOutput:
    """``V = ½ q̇ᵀ G q̇ + Φ`` at the root and ``dissipation = q̇ᵀ B q̇`` (so ``dV/dt = −dissipation``
    along the resolved dynamics of a GDS-only tree). Both ``(B,)``."""

    V: Tensor
    dissipation: Tensor


def lyapunov(flow: RMPFlow, q: Tensor, qd: Tensor, strict: bool = True) -> LyapunovOutput:
    """Lyapunov function of a GDS-only RMP tree at ``(q, q̇)`` (RMPflow Thm. 2; ref sheet §1.4).

    With the pulled-back ``G = Σ J_iᵀ G_i J_i``, ``B = Σ J_iᵀ B_i J_i`` and ``Φ = Σ Φ_i ∘ ψ_i``,
    ``½ q̇ᵀ G q̇ = Σ ½ ẋ_iᵀ G_i ẋ_i`` and ``q̇ᵀ B q̇ = Σ ẋ_iᵀ B_i ẋ_i`` because ``ẋ_i = J_i q̇``, so the
    monitor is evaluated leaf by leaf without forming Jacobians.

    Raises:
        ValueError: ``strict`` and a leaf is not a :class:`GDSLeaf`.
    """
    state = flow.pushforward(q, qd)
    V = q.new_zeros(q.shape[0])
    D = q.new_zeros(q.shape[0])
    for leaf, _, x, xd in flow.leaf_states(state):
        if not isinstance(leaf, GDSLeaf):
            if strict:
                raise ValueError(f"lyapunov: leaf {type(leaf).__name__} is not a GDSLeaf")
            continue
        V = V + leaf.energy(x, xd)
        D = D + leaf.dissipation(x, xd)
    return LyapunovOutput(V, D)


def pullback_metrics(flow: RMPFlow, q: Tensor, qd: Tensor) -> Tuple[Tensor, Tensor]:
    """Root metric ``G = Σ J_iᵀ G_i J_i`` and damping ``B = Σ J_iᵀ B_i J_i`` of the GDS leaves, ``(B, n, n)``."""
    state = flow.pushforward(q, qd)
    Jtot = [None] * len(state.nodes)
    n = q.shape[1]
    G = q.new_zeros(q.shape[0], n, n)
    Bm = q.new_zeros(q.shape[0], n, n)
    for i, nd in enumerate(state.nodes):
        if i == 0:
            Jtot[0] = torch.eye(n, dtype=q.dtype, device=q.device).expand(q.shape[0], n, n)
        else:
            Jtot[i] = state.outputs[i].J @ Jtot[state.parent_index[i]]
        x, xd = state.states[i]
        for leaf in nd.leaves:
            if isinstance(leaf, GDSLeaf):
                J = Jtot[i]
                G = G + J.transpose(1, 2) @ leaf.metric(x, xd) @ J
                Bm = Bm + J.transpose(1, 2) @ leaf.damping(x, xd) @ J
    return G, Bm
