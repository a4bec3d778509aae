"""Leaf library: the RMPflow paper set (GDS leaves), the Lula / RMP2 set, an SO(3) orientation leaf and a
learned leaf. Parameters are dataclasses whose defaults and sources are documented per field.

Paper / GDS family (Cheng et al., RMPflow, arXiv:1811.07049, App. D; formulas of the authors' code
``gtrll/multi-robot-rmpflow@rmp_leaf.py``; ref sheet §2.1):
:class:`GoalAttractor`, :class:`CollisionAvoidance` (velocity-dependent barrier), :class:`Damper`,
:class:`JointLimitBarrier` (joint limits through the same barrier; see its docstring).

Lula / RMP2 family (canonical form, ``UWRobotLearning/rmp2@rmp2/rmpgraph/rmps/rmps.py``; ref sheet
§2.2; parameter names as in Isaac Sim Lula YAML): :class:`TargetRMP`, :class:`CollisionRMP`,
:class:`JointLimitRMP`, :class:`JointVelocityCapRMP`, :class:`CSpaceTargetRMP`, :class:`DampingRMP`.
Scalar leaves act element-wise on a node of any dimension (one independent 1-D RMP per coordinate,
diagonal metric), so e.g. all sphere–obstacle distances of a robot form one node and one leaf.

Orientation: :class:`OrientationTargetRMP` (on a flattened rotation ``(B, 9)``, error ``so3_log``) and
:class:`AxisTargetRMP` (on a unit axis ``(B, 3)``); their formulas are our design (RMP2 does not give
Lula's ``axis_target_rmp`` formula), documented in the class docstrings.

Learned: :class:`LearnedLeaf` (MLP on ``(x, ẋ)`` → ``(a, M = L Lᵀ + εI)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn


from .core import AffineMap, Leaf, TaskMap, _diag_fast_path_ok, check_state, constant_eye, constant_scalar
from .gds import GDSLeaf

__all__ = [
    "GoalAttractorParams", "CollisionAvoidanceParams", "DamperParams", "JointLimitBarrierParams",
    "GoalAttractor", "CollisionAvoidance", "Damper", "JointLimitBarrier", "SphereDistanceMap",
    "CSpaceTargetParams", "JointLimitParams", "JointVelocityCapParams", "TargetParams", "CollisionParams",
    "DampingParams", "AxisTargetParams",
    "CSpaceTargetRMP", "JointLimitRMP", "JointVelocityCapRMP", "TargetRMP", "CollisionRMP", "DampingRMP",
    "OrientationTargetRMP", "AxisTargetRMP", "LearnedLeaf", "joint_limit_map",
]


def _diag(v: Tensor) -> Tensor:
    return torch.diag_embed(v)


def _eye(B: int, m: int, like: Tensor) -> Tensor:
    return constant_eye(m, like.dtype, like.device).expand(B, m, m)


def _check_positive(name: str, **vals):
    for k, v in vals.items():
        if not (v > 0):
            raise ValueError(f"{name}: {k} must be > 0, got {v}")


def _check_nonneg(name: str, **vals):
    for k, v in vals.items():
        if not (v >= 0):
            raise ValueError(f"{name}: {k} must be >= 0, got {v}")


# ==============================================================================================
# Paper / GDS family
# ==============================================================================================
@dataclass
class GoalAttractorParams:
    """Goal attractor with metric blending (gtrll ``GoalAttractorUni``; RMPflow App. D; ref sheet §2.1).

    Defaults = the authors' class defaults and the paper's 2-D example.

    Attributes:
        w_u: metric weight at the goal (10). w_l: metric weight far away (1).
        sigma: length scale of the blend ``β = exp(−‖x‖²/2σ²)`` in task units (1).
        alpha: slope of the soft-normalisation ``s(z) = tanh(αz)`` (1).
        eta: damping gain, ``B = η w I`` (2). gain: potential gain (1).
        tol: radius below which the potential force is zero (0.005; causes the ≈2.5e-3 residual).
    """

    w_u: float = 10.0
    w_l: float = 1.0
    sigma: float = 1.0
    alpha: float = 1.0
    eta: float = 2.0
    gain: float = 1.0
    tol: float = 0.005


_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(32)


class GoalAttractor(GDSLeaf):
    """Goal attractor GDS on ``x = y − y_g`` (the node's coordinates; attach under an :class:`AffineMap`).

    ``G = w(x) I``, ``w = (w_u − w_l) β + w_l``, ``β = exp(−‖x‖²/2σ²)``;
    ``∇Φ = gain · w · tanh(α‖x‖) x/‖x‖`` (zero for ``‖x‖ ≤ tol``); ``B = η w I``;
    ``ξ_G = ẋẋᵀ∇w − ½‖ẋ‖²∇w`` with ``∇w = −β (w_u − w_l) x/σ²``; ``M = G`` (gtrll ``GoalAttractorUni``).
    ``Φ(r) = gain ∫_tol^r w(t) tanh(αt) dt`` (radial, evaluated by 32-point Gauss–Legendre quadrature,
    used only by the Lyapunov monitor).

    Args:
        dim: m. params: :class:`GoalAttractorParams`. curvature: ``"paper"`` (analytic ξ) or ``"none"``.
    """

    def __init__(self, dim: int, params: Optional[GoalAttractorParams] = None, curvature: str = "paper"):
        super().__init__(dim, curvature=curvature)
        p = params or GoalAttractorParams()
        _check_positive("GoalAttractor", sigma=p.sigma, w_l=p.w_l)
        _check_nonneg("GoalAttractor", eta=p.eta, tol=p.tol, alpha=p.alpha)
        self.params = p

    def _w(self, x):
        p = self.params
        beta = torch.exp(-(x * x).sum(-1) / (2 * p.sigma ** 2))
        return (p.w_u - p.w_l) * beta + p.w_l, beta

    def metric(self, x, xd):
        w, _ = self._w(x)
        return w[:, None, None] * _eye(x.shape[0], x.shape[1], x)

    def damping(self, x, xd):
        return self.params.eta * self.metric(x, xd)

    def potential_grad(self, x):
        p = self.params
        w, _ = self._w(x)
        r = x.norm(dim=-1)
        rs = r.clamp_min(torch.finfo(x.dtype).tiny)
        s = torch.tanh(p.alpha * r)
        g = (p.gain * w * s / rs)[:, None] * x
        return torch.where((r > p.tol)[:, None], g, torch.zeros_like(g))

    def potential(self, x):
        p = self.params
        r = x.norm(dim=-1)
        lo = torch.full_like(r, p.tol)
        hi = torch.maximum(r, lo)
        nodes = torch.as_tensor(_GL_NODES, dtype=x.dtype, device=x.device)
        wts = torch.as_tensor(_GL_WEIGHTS, dtype=x.dtype, device=x.device)
        t = 0.5 * (hi - lo)[:, None] * nodes + 0.5 * (hi + lo)[:, None]
        w = (p.w_u - p.w_l) * torch.exp(-t * t / (2 * p.sigma ** 2)) + p.w_l
        integrand = p.gain * w * torch.tanh(p.alpha * t)
        return 0.5 * (hi - lo) * (integrand * wts).sum(-1)

    def natural(self, x, xd):
        """Fused ``[f, M]`` (one evaluation of ``w``; same formulas as the hooks)."""
        if self.curvature_convention == "hgrmpflow":
            return super().natural(x, xd)
        check_state(x, xd, self.dim, what="GoalAttractor")
        p = self.params
        w, beta = self._w(x)
        r = x.norm(dim=-1, keepdim=True)
        g = p.gain * w.unsqueeze(-1) * torch.tanh(p.alpha * r) / r.clamp_min(torch.finfo(x.dtype).tiny) * x
        grad_phi = torch.where(r > p.tol, g, torch.zeros_like(g))
        f = -grad_phi - p.eta * w.unsqueeze(-1) * xd
        if self.curvature_convention == "paper":
            grad_w = (-beta * (p.w_u - p.w_l) / p.sigma ** 2).unsqueeze(-1) * x
            f = f - ((xd * grad_w).sum(-1, keepdim=True) * xd - 0.5 * (xd * xd).sum(-1, keepdim=True) * grad_w)
        return f, w[:, None, None] * _eye(x.shape[0], x.shape[1], x)

    def curvature(self, x, xd):
        if self.curvature_convention != "paper":
            return super().curvature(x, xd)
        p = self.params
        _, beta = self._w(x)
        grad_w = (-beta * (p.w_u - p.w_l) / p.sigma ** 2)[:, None] * x
        xi = (xd * grad_w).sum(-1, keepdim=True) * xd - 0.5 * (xd * xd).sum(-1, keepdim=True) * grad_w
        B, m = x.shape
        return x.new_zeros(B, m, m), xi


@dataclass
class CollisionAvoidanceParams:
    """Velocity-dependent barrier (gtrll ``CollisionAvoidance``; RMPflow App. D; ref sheet §2.1).

    Attributes:
        epsilon: metric floor ``u = ε + min(0, ẋ) ẋ`` (0.2: class default and 2-D example; the
            multi-robot examples use 1e-8).
        alpha: potential gain, ``Φ = ½ α w²`` (1e-5). eta: damping gain, ``B = η g`` (0).
        metric_clip: ``|M| ≤ 1e5``; force_clip: ``|f| ≤ 1e10`` (gtrll clipping).
    """

    epsilon: float = 0.2
    alpha: float = 1e-5
    eta: float = 0.0
    metric_clip: float = 1e5
    force_clip: float = 1e10


class CollisionAvoidance(GDSLeaf):
    """Barrier GDS, element-wise on a node of 1-D distances ``x`` (e.g. ``‖y − c‖/R − 1`` from
    :class:`SphereDistanceMap`); diagonal metric.

    Per coordinate: ``w = 1/x⁴`` (``1e10`` if ``x < 0``), ``u = ε + min(0, ẋ) ẋ``, ``g = w u``,
    ``Φ = ½ α w²`` (``∇Φ = α w w'``), ``B = η g``; curvature (paper, ½ convention):
    ``ξ = ½ ẋ² u w'``, ``M = g + ½ ẋ w u'``; ``M`` clipped to ``±metric_clip``, ``f`` to ``±force_clip``
    (gtrll ``rmp_leaf.py``). ``curvature="none"`` gives ``[−∇Φ − Bẋ, g]``; ``"hgrmpflow"`` uses
    ``M = g + ẋ w u'``. The generic autodiff curvature of :class:`GDSLeaf` on :meth:`metric` agrees
    (tested).
    """

    def __init__(self, dim: int = 1, params: Optional[CollisionAvoidanceParams] = None, curvature: str = "paper"):
        super().__init__(dim, curvature=curvature)
        p = params or CollisionAvoidanceParams()
        _check_nonneg("CollisionAvoidance", epsilon=p.epsilon, alpha=p.alpha, eta=p.eta)
        self.params = p

    def _w(self, x):
        xs = x.clamp_min(torch.finfo(x.dtype).tiny ** 0.1)
        pos = x >= 0
        w = torch.where(pos, xs ** -4, torch.full_like(x, 1e10))
        dw = torch.where(pos, -4.0 * xs ** -5, torch.zeros_like(x))
        return w, dw

    def _u(self, xd):
        neg = torch.clamp(xd, max=0.0)
        return self.params.epsilon + neg * xd, 2 * neg

    def metric(self, x, xd):
        w, _ = self._w(x)
        u, _ = self._u(xd)
        return _diag(w * u)

    def damping(self, x, xd):
        return self.params.eta * self.metric(x, xd)

    def potential(self, x):
        w, _ = self._w(x)
        return (0.5 * self.params.alpha * w * w).sum(-1)

    def potential_grad(self, x):
        w, dw = self._w(x)
        return self.params.alpha * w * dw

    def curvature(self, x, xd):
        conv = self.curvature_convention
        if conv == "none":
            return super().curvature(x, xd)
        w, dw = self._w(x)
        u, du = self._u(xd)
        k = 0.5 if conv == "paper" else 1.0
        return _diag(k * xd * w * du), 0.5 * xd * xd * u * dw

    def _fused(self, x, xd):
        check_state(x, xd, self.dim, what=type(self).__name__)
        p = self.params
        w, dw = self._w(x)
        u, du = self._u(xd)
        g = w * u
        f = -p.alpha * w * dw - p.eta * g * xd
        m = g
        if self.curvature_convention == "paper":
            f = f - 0.5 * xd * xd * u * dw
            m = g + 0.5 * xd * w * du
        return f.clamp(-p.force_clip, p.force_clip), m.clamp(-p.metric_clip, p.metric_clip)

    def natural(self, x, xd):
        """Fused element-wise ``[f, M]`` (gtrll formulas), clipped."""
        if self.curvature_convention == "hgrmpflow":
            f, M = super().natural(x, xd)
            p = self.params
            return f.clamp(-p.force_clip, p.force_clip), M.clamp(-p.metric_clip, p.metric_clip)
        f, m = self._fused(x, xd)
        return f, _diag(m)

    def natural_diag(self, x, xd):
        """``(f, diag M)`` (B, m) each; the same values as :meth:`natural` (``None`` for ``"hgrmpflow"``)."""
        if self.curvature_convention == "hgrmpflow" or not _diag_fast_path_ok(self, CollisionAvoidance):
            return None
        return self._fused(x, xd)


@dataclass
class DamperParams:
    """Damper (gtrll ``Damper``; ref sheet §2.1): ``G = w I``, ``f = −η w ẋ``. Defaults ``w = 1, η = 1``."""

    w: float = 1.0
    eta: float = 1.0


class Damper(GDSLeaf):
    """Damper GDS: ``G = w I``, ``B = η w I``, ``Φ = 0`` (gtrll ``Damper``)."""

    def __init__(self, dim: int, params: Optional[DamperParams] = None):
        super().__init__(dim, curvature="none")
        p = params or DamperParams()
        _check_nonneg("Damper", w=p.w, eta=p.eta)
        self.params = p

    def metric(self, x, xd):
        return self.params.w * _eye(x.shape[0], x.shape[1], x)

    def damping(self, x, xd):
        return self.params.eta * self.metric(x, xd)

    def potential_grad(self, x):
        return torch.zeros_like(x)


@dataclass
class JointLimitBarrierParams:
    """GDS joint-limit barrier: the :class:`CollisionAvoidance` barrier applied to the normalised
    distances to the limits. Attributes: ``length_scale`` (rad) dividing the distance (0.1, our choice),
    and the barrier's ``epsilon, alpha, eta`` (0.2, 1e-5, 0: the paper example's barrier values)."""

    length_scale: float = 0.1
    epsilon: float = 0.2
    alpha: float = 1e-5
    eta: float = 0.0


class JointLimitBarrier(CollisionAvoidance):
    """Joint-limit avoidance as a GDS (paper family).

    Design note: the paper's App. D velocity-dependent joint-limit metric could not be verified offline
    (ref sheet §2.1 marks its recalled form [unverified]), so this leaf applies the paper's verified
    velocity-dependent barrier (``g = u(ẋ)/x⁴``, which satisfies the stability condition
    ``g + ½ ẋ ∂_ẋ g ≥ 0``) to ``x = d/ℓ`` with ``d`` the distance to each limit. Attach it to the node of
    :func:`joint_limit_map` (``x = [q − l, u − q] / ℓ``, ``2n`` coordinates).
    """

    def __init__(self, dim: int, params: Optional[JointLimitBarrierParams] = None, curvature: str = "paper"):
        p = params or JointLimitBarrierParams()
        super().__init__(dim, CollisionAvoidanceParams(p.epsilon, p.alpha, p.eta), curvature)
        self.jl_params = p


def joint_limit_map(q_min, q_max, buffers=None, scale: float = 1.0) -> AffineMap:
    """Affine map ``q ↦ [q − (l + b), (u − b) − q] / scale`` (``2n``): distances to joint limits.

    Args:
        q_min, q_max: ``(n,)`` limits (rad). buffers: ``(n,)`` ≥ 0 (Lula ``joint_limit_buffers``), default 0.
        scale: divides the distances (e.g. :class:`JointLimitBarrierParams.length_scale`).
    Raises:
        ValueError: shape mismatch, ``q_min ≥ q_max - 2 buffers``, negative buffers or scale.
    """
    lo = torch.as_tensor(q_min, dtype=torch.float64)
    hi = torch.as_tensor(q_max, dtype=torch.float64)
    if lo.dim() != 1 or lo.shape != hi.shape:
        raise ValueError(f"joint_limit_map: q_min and q_max must be (n,) of equal shape, got {tuple(lo.shape)}, {tuple(hi.shape)}")
    b = torch.zeros_like(lo) if buffers is None else torch.as_tensor(buffers, dtype=torch.float64)
    if b.shape != lo.shape or (b < 0).any():
        raise ValueError(f"joint_limit_map: buffers must be (n,) and >= 0, got {b.tolist()}")
    if not scale > 0:
        raise ValueError(f"joint_limit_map: scale must be > 0, got {scale}")
    if not (lo + b < hi - b).all():
        raise ValueError("joint_limit_map: need q_min + buffer < q_max - buffer for every joint")
    n = lo.shape[0]
    eye = torch.eye(n, dtype=torch.float64)
    A = torch.cat([eye, -eye], 0) / scale
    c = torch.cat([-(lo + b), hi - b], 0) / scale
    return AffineMap(A, c)


class SphereDistanceMap(TaskMap):
    """``x = ‖y − c‖/R − 1`` (1-D per centre) for ``K`` circles/spheres: ``(B, d) → (B, K)``.

    ``J = (y − c)ᵀ/(R d)``, ``J̇ẏ = (‖ẏ‖²/d − ((y − c)·ẏ)²/d³)/R`` with ``d = ‖y − c‖``
    (gtrll ``CollisionAvoidance``).

    Args:
        centers: ``(K, d)`` or ``(d,)``. radii: ``(K,)`` or scalar, > 0.
    Raises:
        ValueError: non-positive radii or shape mismatch.
    """

    def __init__(self, centers, radii):
        c = torch.as_tensor(centers, dtype=torch.float64)
        if c.dim() == 1:
            c = c.unsqueeze(0)
        r = torch.as_tensor(radii, dtype=torch.float64).reshape(-1)
        if r.numel() == 1:
            r = r.expand(c.shape[0]).clone()
        if c.dim() != 2 or r.shape[0] != c.shape[0]:
            raise ValueError(f"SphereDistanceMap: centers (K, d) and radii (K,) expected, got {tuple(c.shape)}, {tuple(r.shape)}")
        if (r <= 0).any():
            raise ValueError(f"SphereDistanceMap: radii must be > 0, got {r.tolist()}")
        super().__init__(c.shape[1], c.shape[0])
        self.register_buffer("centers", c)
        self.register_buffer("radii", r)

    def _diff(self, y):
        d = y.unsqueeze(1) - self.centers.to(y)  # (B, K, dim)
        return d, d.norm(dim=-1).clamp_min(torch.finfo(y.dtype).tiny)

    def psi(self, y):
        _, n = self._diff(y)
        return n / self.radii.to(y) - 1

    def jacobian(self, y):
        d, n = self._diff(y)
        return d / (n * self.radii.to(y)).unsqueeze(-1)

    def jdot_qd(self, y, yd):
        d, n = self._diff(y)
        dy = torch.einsum("bkd,bd->bk", d, yd)
        return ((yd * yd).sum(-1, keepdim=True) / n - dy * dy / n ** 3) / self.radii.to(y)


# ==============================================================================================
# Lula / RMP2 family (canonical form)
# ==============================================================================================
_RMP2 = "RMP2 franka_config.yaml (UWRobotLearning/rmp2)"


@dataclass
class CSpaceTargetParams:
    """``cspace_target_rmp`` parameters. Defaults: RMP2 ``franka_config.yaml``; :meth:`lula` gives
    Isaac Sim 6.0.1 ``franka_rmpflow_common.yaml`` (ref sheet §2.3)."""

    metric_scalar: float = 0.005
    position_gain: float = 100.0
    damping_gain: float = 50.0
    robust_position_term_thresh: float = 0.5
    inertia: float = 1e-4

    @classmethod
    def lula(cls):
        return cls(50.0, 100.0, 50.0, 0.5, 1.0)


class CSpaceTargetRMP(Leaf):
    """``cspace_target_rmp`` on ``x = q`` with target ``q*`` (RMP2 ``rmps.py``; ref sheet §2.2).

    ``δ = x − q*``; ``a = −k_p δ`` if ``‖δ‖ < θ`` else ``−k_p θ δ/‖δ‖``; ``a −= k_d ẋ``;
    ``M = (μ + inertia) I``. Canonical form.

    Args:
        dim: n. target: ``(n,)`` or ``(B, n)`` (rad); change with :meth:`set_target`.
    """

    def __init__(self, dim: int, target, params: Optional[CSpaceTargetParams] = None):
        super().__init__()
        self.dim = int(dim)
        self.params = params or CSpaceTargetParams()
        _check_nonneg("CSpaceTargetRMP", metric_scalar=self.params.metric_scalar, inertia=self.params.inertia)
        _check_positive("CSpaceTargetRMP", robust_position_term_thresh=self.params.robust_position_term_thresh)
        self.register_buffer("target", torch.zeros(self.dim))
        self.set_target(target)

    def set_target(self, target):
        t = torch.as_tensor(target)
        if t.shape[-1] != self.dim or t.dim() > 2:
            raise ValueError(f"CSpaceTargetRMP: target must be ({self.dim},) or (B, {self.dim}), got {tuple(t.shape)}")
        self.target = t.to(self.target.device)

    def canonical(self, x, xd):
        check_state(x, xd, self.dim, "CSpaceTargetRMP")
        p = self.params
        d = x - self.target.to(x)
        nrm = d.norm(dim=-1, keepdim=True)
        far = -p.position_gain * p.robust_position_term_thresh * d / nrm.clamp_min(torch.finfo(x.dtype).tiny)
        a = torch.where(nrm < p.robust_position_term_thresh, -p.position_gain * d, far) - p.damping_gain * xd
        M = (p.metric_scalar + p.inertia) * _eye(x.shape[0], self.dim, x)
        return a, M

    def natural_diag(self, x, xd):
        """``(f = c a, m = c 1)`` with ``c = μ + inertia`` (the metric is ``c I``); equals :meth:`natural`."""
        if not _diag_fast_path_ok(self, CSpaceTargetRMP):
            return None
        check_state(x, xd, self.dim, "CSpaceTargetRMP")
        p = self.params
        target = self._buffers["target"]
        d = x - (target if target.dtype == x.dtype and target.device == x.device else target.to(x))
        nrm = torch.linalg.vector_norm(d, dim=-1, keepdim=True)
        # where(‖δ‖ < θ, −k_p δ, −k_p θ δ/‖δ‖) = −k_p δ · min(1, θ/‖δ‖)
        scale = torch.div(p.robust_position_term_thresh, nrm.clamp_min(torch.finfo(x.dtype).tiny)).clamp_max(1.0)
        a = torch.add(d * scale * (-p.position_gain), xd, alpha=-p.damping_gain)
        c = p.metric_scalar + p.inertia
        return c * a, torch.full_like(a, c)


@dataclass
class JointLimitParams:
    """``joint_limit_rmp`` parameters (RMP2 ``franka_config.yaml``; :meth:`lula`: Isaac Sim Lula, whose
    ``metric_scalar`` is 1000; ref sheet §2.3)."""

    metric_scalar: float = 0.1
    metric_length_scale: float = 0.01
    metric_exploder_eps: float = 0.001
    metric_velocity_gate_length_scale: float = 0.01
    accel_damper_gain: float = 200.0
    accel_potential_gain: float = 1.0
    accel_potential_exploder_length_scale: float = 0.1
    accel_potential_exploder_eps: float = 0.01

    @classmethod
    def lula(cls):
        return cls(1000.0, 0.01, 1e-3, 0.01, 200.0, 1.0, 0.1, 1e-2)


class JointLimitRMP(Leaf):
    """``joint_limit_rmp``, element-wise on distances to limits ``x`` (node of :func:`joint_limit_map`
    with buffers; RMP2 ``rmps.py``; ref sheet §2.2).

    ``x ← max(x, 0)``; ``M = (1 − σ(ẋ/ℓ_v)) μ/(x/ℓ_m + ε_m)``; ``a = k_pot/((x/ℓ_p)² + ε_p) − k_damp ẋ``.
    """

    def __init__(self, dim: int, params: Optional[JointLimitParams] = None):
        super().__init__()
        self.dim = int(dim)
        self.params = params or JointLimitParams()
        p = self.params
        _check_positive("JointLimitRMP", metric_length_scale=p.metric_length_scale, metric_exploder_eps=p.metric_exploder_eps,
                        metric_velocity_gate_length_scale=p.metric_velocity_gate_length_scale,
                        accel_potential_exploder_length_scale=p.accel_potential_exploder_length_scale,
                        accel_potential_exploder_eps=p.accel_potential_exploder_eps)

    def _am(self, x, xd):
        check_state(x, xd, self.dim, "JointLimitRMP")
        p = self.params
        x = x.clamp_min(0.0)
        # constants folded: 1 − σ(u) = σ(−u), x/ℓ = x·(1/ℓ), k − c·ẋ in one add (equal up to rounding; tested)
        s1 = torch.sigmoid(xd * (-1.0 / p.metric_velocity_gate_length_scale))
        lm, lp2 = p.metric_length_scale, p.accel_potential_exploder_length_scale ** 2
        # μ/(x/ℓ_m + ε_m) = μℓ_m/(x + ε_m ℓ_m);  k/((x/ℓ_p)² + ε_p) = kℓ_p²/(x² + ε_p ℓ_p²)
        m = torch.addcdiv(constant_scalar(0.0, x.dtype, x.device), s1, x + p.metric_exploder_eps * lm, value=p.metric_scalar * lm)
        a = torch.addcdiv(xd * (-p.accel_damper_gain), constant_scalar(1.0, x.dtype, x.device),
                          x * x + p.accel_potential_exploder_eps * lp2, value=p.accel_potential_gain * lp2)
        return a, m

    def canonical(self, x, xd):
        a, m = self._am(x, xd)
        return a, _diag(m)

    def natural_diag(self, x, xd):
        """``(f = m a, m)`` with the diagonal metric ``m`` (B, m); equals :meth:`natural`."""
        if not _diag_fast_path_ok(self, JointLimitRMP):
            return None
        a, m = self._am(x, xd)
        return m * a, m


@dataclass
class JointVelocityCapParams:
    """``joint_velocity_cap_rmp`` parameters (RMP2 ``franka_config.yaml``; :meth:`lula`: Isaac Sim Lula;
    ref sheet §2.3). ``max_velocity`` in rad/s."""

    max_velocity: float = 1.7
    velocity_damping_region: float = 0.15
    damping_gain: float = 5.0
    metric_weight: float = 0.05

    @classmethod
    def lula(cls):
        return cls(4.0, 1.5, 1000.0, 100.0)


class JointVelocityCapRMP(Leaf):
    """``joint_velocity_cap_rmp``, element-wise on ``x = q`` (RMP2 ``rmps.py``; ref sheet §2.2).

    ``c = v_max − v_r``, ``Δ = |ẋ| − c``; ``a = −|k_d Δ| sign(ẋ)``,
    ``M = μ / (1 − (min(Δ, v_r − 1e-6)/v_r)²)``; both zero where ``|ẋ| < c``.
    """

    def __init__(self, dim: int, params: Optional[JointVelocityCapParams] = None):
        super().__init__()
        self.dim = int(dim)
        self.params = params or JointVelocityCapParams()
        p = self.params
        _check_positive("JointVelocityCapRMP", velocity_damping_region=p.velocity_damping_region)
        if not p.max_velocity > p.velocity_damping_region:
            raise ValueError("JointVelocityCapRMP: need max_velocity > velocity_damping_region")

    def _am(self, x, xd):
        check_state(x, xd, self.dim, "JointVelocityCapRMP")
        p = self.params
        vr = p.velocity_damping_region
        delta = xd.abs() - (p.max_velocity - vr)
        active = delta > 0
        # on the active set Δ > 0 and ẋ ≠ 0: −|k_d Δ| sign(ẋ) = copysign(Δ, ẋ)·(−|k_d|);
        # μ/(1 − (u/v_r)²) = μ v_r²/(v_r² − u²) with u = min(Δ, v_r − 1e-6)
        a = torch.copysign(delta, xd) * (-abs(p.damping_gain))
        u = delta.clamp_max(vr - 1e-6)
        m = torch.div(p.metric_weight * vr * vr, torch.rsub(u * u, vr * vr))
        return torch.where(active, a, 0.0), torch.where(active, m, 0.0)

    def canonical(self, x, xd):
        a, m = self._am(x, xd)
        return a, _diag(m)

    def natural_diag(self, x, xd):
        """``(f = m a, m)`` with the diagonal metric ``m`` (B, m); equals :meth:`natural`."""
        if not _diag_fast_path_ok(self, JointVelocityCapRMP):
            return None
        a, m = self._am(x, xd)
        return m * a, m


@dataclass
class TargetParams:
    """``target_rmp`` parameters (RMP2 ``franka_config.yaml``; :meth:`lula`: Isaac Sim Lula; ref sheet
    §2.3). Lengths in m."""

    accel_p_gain: float = 50.0
    accel_d_gain: float = 70.0
    accel_norm_eps: float = 0.075
    metric_alpha_length_scale: float = 0.05
    min_metric_alpha: float = 0.03
    max_metric_scalar: float = 1.0
    min_metric_scalar: float = 0.5
    proximity_metric_boost_scalar: float = 3.0
    proximity_metric_boost_length_scale: float = 0.02

    @classmethod
    def lula(cls):
        return cls(30.0, 85.0, 0.075, 0.05, 0.01, 10000.0, 2500.0, 20.0, 0.02)


class TargetRMP(Leaf):
    """``target_rmp`` on a position ``x`` (e.g. end effector, m) with goal ``g`` (RMP2 ``rmps.py``; §2.2).

    ``δ = g − x``, ``d = ‖δ‖``, ``a = k_p δ/(d + ε) − k_d ẋ``; ``n̂ = δ/max(d, ε/10)``, ``S = n̂n̂ᵀ``;
    ``α = (1 − α_min) exp(−½(d/σ_a)²) + α_min``; ``M = α μ_near I + (1 − α) μ_far S``;
    ``β = exp(−½(d/σ_b)²)``, ``M ← (β b + (1 − β)) M`` (``μ_near`` = ``max_metric_scalar``,
    ``μ_far`` = ``min_metric_scalar``).

    Args:
        dim: m (3 for a position). goal: ``(m,)`` or ``(B, m)``; :meth:`set_goal`.
    """

    def __init__(self, dim: int, goal, params: Optional[TargetParams] = None):
        super().__init__()
        self.dim = int(dim)
        self.params = params or TargetParams()
        p = self.params
        _check_positive("TargetRMP", accel_norm_eps=p.accel_norm_eps, metric_alpha_length_scale=p.metric_alpha_length_scale,
                        proximity_metric_boost_length_scale=p.proximity_metric_boost_length_scale)
        self.register_buffer("goal", torch.zeros(self.dim))
        self.set_goal(goal)

    def set_goal(self, goal):
        g = torch.as_tensor(goal)
        if g.shape[-1] != self.dim or g.dim() > 2:
            raise ValueError(f"TargetRMP: goal must be ({self.dim},) or (B, {self.dim}), got {tuple(g.shape)}")
        self.goal = g.to(self.goal.device)

    def canonical(self, x, xd):
        check_state(x, xd, self.dim, "TargetRMP")
        p = self.params
        delta = self.goal.to(x) - x
        d = delta.norm(dim=-1, keepdim=True)
        a = p.accel_p_gain * delta / (d + p.accel_norm_eps) - p.accel_d_gain * xd
        nh = delta / d.clamp_min(p.accel_norm_eps / 10)
        S = nh.unsqueeze(-1) * nh.unsqueeze(-2)
        alpha = (1 - p.min_metric_alpha) * torch.exp(-0.5 * (d / p.metric_alpha_length_scale) ** 2) + p.min_metric_alpha
        alpha = alpha.unsqueeze(-1)
        M = alpha * p.max_metric_scalar * _eye(x.shape[0], self.dim, x) + (1 - alpha) * p.min_metric_scalar * S
        beta = torch.exp(-0.5 * (d / p.proximity_metric_boost_length_scale) ** 2).unsqueeze(-1)
        M = (beta * p.proximity_metric_boost_scalar + (1 - beta)) * M
        return a, M

    def natural(self, x, xd):
        """``[f, M] = [M a, M]`` with the same formulas, fused: ``M = c₁ I + c₂ n̂n̂ᵀ`` with
        ``c₁ = s α μ_near``, ``c₂ = s (1 − α) μ_far``, ``s = β b + 1 − β``, so ``f = c₁ a + c₂ n̂ (n̂·a)``
        (no matrix–vector product; equal to ``canonical_to_natural(*canonical(x, ẋ))`` up to rounding)."""
        if type(self).canonical is not TargetRMP.canonical:
            return super().natural(x, xd)
        check_state(x, xd, self.dim, "TargetRMP")
        p = self.params
        goal = self._buffers["goal"]
        delta = (goal if goal.dtype == x.dtype and goal.device == x.device else goal.to(x)) - x
        d = torch.linalg.vector_norm(delta, dim=-1, keepdim=True)
        a = torch.addcdiv(xd * (-p.accel_d_gain), delta, d + p.accel_norm_eps, value=p.accel_p_gain)
        nh = delta / d.clamp_min(p.accel_norm_eps / 10)
        d2 = d * d
        ea = torch.exp(d2 * (-0.5 / p.metric_alpha_length_scale ** 2))  # α = (1 − α_min) e_a + α_min
        s = torch.exp(d2 * (-0.5 / p.proximity_metric_boost_length_scale ** 2)) * (p.proximity_metric_boost_scalar - 1) + 1
        am, mn, mf = p.min_metric_alpha, p.max_metric_scalar, p.min_metric_scalar
        c1 = s * (ea * ((1 - am) * mn) + am * mn)  # s α μ_near, (B, 1)
        c2 = s * (ea * (-(1 - am) * mf) + (1 - am) * mf)  # s (1 − α) μ_far
        c2n = c2 * nh
        f = torch.addcmul(c1 * a, c2n, (nh * a).sum(-1, keepdim=True))
        M = torch.baddbmm(torch.diag_embed(c1.expand(-1, self.dim)), c2n.unsqueeze(-1), nh.unsqueeze(-2))
        return f, M


@dataclass
class CollisionParams:
    """``collision_rmp`` parameters (RMP2 ``franka_config.yaml``: ``metric_scalar = 1``; :meth:`lula`:
    Isaac Sim Lula, ``metric_scalar = 10000``; ref sheet §2.3). Lengths in m."""

    margin: float = 0.0
    damping_gain: float = 50.0
    damping_std_dev: float = 0.04
    damping_robustness_eps: float = 0.01
    damping_velocity_gate_length_scale: float = 0.01
    repulsion_gain: float = 800.0
    repulsion_std_dev: float = 0.01
    metric_modulation_radius: float = 0.5
    metric_scalar: float = 1.0
    metric_exploder_std_dev: float = 0.02
    metric_exploder_eps: float = 0.001

    @classmethod
    def lula(cls):
        return cls(0.0, 50.0, 0.04, 1e-2, 0.01, 800.0, 0.01, 0.5, 10000.0, 0.02, 0.001)


_FAST_OK: dict = {}  # leaf type → whether it keeps CollisionRMP's RMP (memo of _diag_fast_path_ok)


class CollisionRMP(Leaf):
    """``collision_rmp``, element-wise on sphere–obstacle distances ``x`` (m) (RMP2 ``rmps.py``; §2.2).

    ``x ← max(x − margin, 0)``; ``gate = (1 − x/r)²`` for ``x ≤ r`` else 0; ``s = σ(ẋ/ℓ_v)``;
    ``M = (1 − s) μ/(x/σ_e + ε_e) · gate``; ``a = k_rep exp(−x/σ_rep) − (1 − s) k_damp ẋ/(x/σ_d + ε_d)``.
    """

    def __init__(self, dim: int, params: Optional[CollisionParams] = None):
        super().__init__()
        self.dim = int(dim)
        self.params = params or CollisionParams()
        p = self.params
        _check_positive("CollisionRMP", damping_std_dev=p.damping_std_dev, damping_robustness_eps=p.damping_robustness_eps,
                        damping_velocity_gate_length_scale=p.damping_velocity_gate_length_scale,
                        repulsion_std_dev=p.repulsion_std_dev, metric_modulation_radius=p.metric_modulation_radius,
                        metric_exploder_std_dev=p.metric_exploder_std_dev, metric_exploder_eps=p.metric_exploder_eps)

    def _am(self, x, xd):
        check_state(x, xd, self.dim, "CollisionRMP")
        return self._am_raw(x, xd)

    def _am_raw(self, x, xd):
        """The element-wise formulas (any width), with scalar constants folded: ``1 − σ(u) = σ(−u)``,
        ``x/σ = x·(1/σ)`` (equal to the textbook form up to rounding; tested)."""
        p = self.params
        x = x.clamp_min(0.0) if p.margin == 0 else (x - p.margin).clamp_min(0.0)
        t = torch.rsub(x, 1.0, alpha=1.0 / p.metric_modulation_radius).clamp_min(0.0)  # gate = t² = (1 − x/r)² for x ≤ r, else 0
        s1 = torch.sigmoid(xd * (-1.0 / p.damping_velocity_gate_length_scale))
        # μ/(x/σ_e + ε_e) = μσ_e/(x + ε_e σ_e);  k_d ẋ/(x/σ_d + ε_d) = k_d σ_d ẋ/(x + ε_d σ_d)
        se, sd = p.metric_exploder_std_dev, p.damping_std_dev
        m = torch.addcdiv(constant_scalar(0.0, x.dtype, x.device), s1 * (t * t), x + p.metric_exploder_eps * se,
                          value=p.metric_scalar * se)
        a = torch.addcdiv(torch.exp(x * (-1.0 / p.repulsion_std_dev)) * p.repulsion_gain, s1 * xd,
                          x + p.damping_robustness_eps * sd, value=-p.damping_gain * sd)
        return a, m

    def fusion_key(self):
        """Element-wise leaf: key = its parameter values (``None`` when a subclass overrides the RMP)."""
        ok = _FAST_OK.get(type(self))
        if ok is None:
            ok = _FAST_OK[type(self)] = _diag_fast_path_ok(self, CollisionRMP)
        return (CollisionRMP, tuple(vars(self.params).values())) if ok else None

    def natural_diag_stacked(self, x, xd):
        a, m = self._am_raw(x, xd)
        return m * a, m

    def canonical(self, x, xd):
        a, m = self._am(x, xd)
        return a, _diag(m)

    def natural_diag(self, x, xd):
        """``(f = m a, m)`` with the diagonal metric ``m`` (B, m); equals :meth:`natural`."""
        if not _diag_fast_path_ok(self, CollisionRMP):
            return None
        a, m = self._am(x, xd)
        return m * a, m


@dataclass
class DampingParams:
    """``damping_rmp`` parameters (RMP2 ``franka_config.yaml``; :meth:`lula`: Isaac Sim Lula; §2.3)."""

    accel_d_gain: float = 30.0
    metric_scalar: float = 0.005
    inertia: float = 0.3

    @classmethod
    def lula(cls):
        return cls(30.0, 50.0, 100.0)


class DampingRMP(Leaf):
    """``damping_rmp`` on ``x = q`` (RMP2 ``rmps.py``; §2.2): ``a = −k_d ‖ẋ‖ ẋ``, ``M = (μ‖ẋ‖ + m) I``."""

    def __init__(self, dim: int, params: Optional[DampingParams] = None):
        super().__init__()
        self.dim = int(dim)
        self.params = params or DampingParams()

    def canonical(self, x, xd):
        check_state(x, xd, self.dim, "DampingRMP")
        p = self.params
        v = xd.norm(dim=-1, keepdim=True)
        a = -p.accel_d_gain * v * xd
        M = (p.metric_scalar * v + p.inertia).unsqueeze(-1) * _eye(x.shape[0], self.dim, x)
        return a, M

    def natural_diag(self, x, xd):
        """``(f = w a, m = w 1)`` with ``w = μ‖ẋ‖ + inertia`` (the metric is ``w I``); equals :meth:`natural`."""
        if not _diag_fast_path_ok(self, DampingRMP):
            return None
        check_state(x, xd, self.dim, "DampingRMP")
        p = self.params
        v = torch.linalg.vector_norm(xd, dim=-1, keepdim=True)
        w = v * p.metric_scalar + p.inertia
        return xd * (v * w * (-p.accel_d_gain)), w.expand_as(xd)


# ==============================================================================================
# Orientation
# ==============================================================================================
@dataclass
class AxisTargetParams:
    """Orientation-leaf parameters, named as Lula's ``axis_target_rmp`` (Isaac Sim Lula
    ``franka_rmpflow_common.yaml``: p 210, d 60, metric 10, boost 3000, boost length scale .08 m;
    ref sheet §2.3). The boost multiplies the metric by ``β b + (1 − β)``, ``β = exp(−½(d_pos/ℓ)²)``
    where ``d_pos`` is the position-target distance supplied by the user (:meth:`set_proximity`)."""

    accel_p_gain: float = 210.0
    accel_d_gain: float = 60.0
    metric_scalar: float = 10.0
    proximity_metric_boost_scalar: float = 3000.0
    proximity_metric_boost_length_scale: float = 0.08


class _BoostMixin:
    def set_proximity(self, distance: Optional[Tensor]):
        """Position-target distance ``(B,)`` (m) that gates the metric boost (``None``: no boost)."""
        self._proximity = distance

    def _boost(self, x: Tensor) -> Tensor:
        d = getattr(self, "_proximity", None)
        if d is None:
            return torch.ones(x.shape[0], 1, 1, dtype=x.dtype, device=x.device)
        p = self.params
        beta = torch.exp(-0.5 * (torch.as_tensor(d, dtype=x.dtype, device=x.device) / p.proximity_metric_boost_length_scale) ** 2)
        return (beta * p.proximity_metric_boost_scalar + (1 - beta)).reshape(-1, 1, 1)


_SKEW_P = (7, 2, 3)  # row-major indices of E[2,1], E[0,2], E[1,0]
_SKEW_M = (5, 6, 1)  # E[1,2], E[2,0], E[0,1]


@lru_cache(maxsize=16)
def _skew_index(device: torch.device) -> Tuple[Tensor, Tensor]:
    with torch.inference_mode(False):
        return torch.tensor(_SKEW_P, device=device), torch.tensor(_SKEW_M, device=device)


def _skew_vee2(W: Tensor) -> Tensor:
    """``vee(W − Wᵀ) = [W₂₁ − W₁₂, W₀₂ − W₂₀, W₁₀ − W₀₁]`` for ``W: (B, 3, 3)`` → ``(B, 3)``."""
    ip, im = _skew_index(W.device)
    w = W.reshape(W.shape[0], 9)
    return w.index_select(1, ip) - w.index_select(1, im)


def _rotation_log(E: Tensor, exact_below_cos: float = -0.5) -> Tensor:
    """``so3_log(E)`` for rotation matrices ``E: (B, 3, 3)`` by the closed form
    ``ω = θ/(2 sin θ) · vee(E − Eᵀ)``, ``θ = atan2(sin θ, cos θ)`` with ``sin θ = ‖vee(E − Eᵀ)‖/2``,
    ``cos θ = (tr E − 1)/2`` (Solà et al. 2018, Eq. 144; ``θ/sin θ ≈ 1 + θ²/6`` below ``sin θ = 1e-4``).

    The closed form is well conditioned for ``θ ≤ 120°`` (``sin θ ≥ 0.87`` or ``θ`` small); rows with
    ``cos θ < exact_below_cos`` (θ > 120°, where ``vee(E − Eᵀ) → 0`` as ``θ → π``) take the axis from the
    symmetric part ``(E + Eᵀ)/2 − cos θ I = (1 − cos θ) n nᵀ`` (evaluated only when such a row exists).
    About 15 ops instead of :func:`manifolds.lie.so3_log`'s quaternion route (≈ 10× slower at batch 1);
    equal to it to float64 rounding (tested); at ``θ = π`` exactly either of ``±πn`` is returned.
    """
    B = E.shape[0]
    a = _skew_vee2(E)  # 2 sin θ · axis
    s = 0.5 * torch.linalg.vector_norm(a, dim=-1, keepdim=True)
    c = 0.5 * (torch.diagonal(E, dim1=-2, dim2=-1).sum(-1, keepdim=True) - 1.0)
    small = s < 1e-4
    factor = torch.where(small, 1.0 + s * s / 6.0, torch.atan2(s, c) / torch.where(small, torch.ones_like(s), s))
    w = 0.5 * factor * a
    far = c < exact_below_cos
    if bool(far.any()):
        # θ > 120°: axis from the symmetric part, (E + Eᵀ)/2 − cos θ I = (1 − cos θ) n nᵀ (its largest
        # diagonal entry ≥ (1 − cos θ)/3 ≥ 1/2 here), sign from vee(E − Eᵀ) = 2 sin θ n
        Bs = 0.5 * (E + E.transpose(1, 2)) - c.unsqueeze(-1) * constant_eye(3, E.dtype, E.device)
        k = torch.diagonal(Bs, dim1=-2, dim2=-1).argmax(-1)  # (B,)
        col = torch.gather(Bs, 2, k.reshape(B, 1, 1).expand(B, 3, 1)).squeeze(-1)  # (B, 3) = (1 − c) n_k n
        n = col / torch.linalg.vector_norm(col, dim=-1, keepdim=True)
        n = torch.where((n * a).sum(-1, keepdim=True) < 0, -n, n)
        w = torch.where(far, torch.atan2(s, c) * n, w)
    return w


class OrientationTargetRMP(_BoostMixin, Leaf):
    """Orientation attractor on SO(3), on a node holding the flattened rotation ``x = vec(R)`` (row-major
    ``(B, 9)``), target ``R*``. Our design (Lula's ``axis_target_rmp`` formula is not public):

    * body angular velocity ``ω = vee(Rᵀ Ṙ)`` (``Ṙ`` = the node velocity reshaped);
    * rotation error ``e = log(Rᵀ R*)`` (rad, body frame; the closed form of :func:`_rotation_log` up to
      120°, the axis of the symmetric part beyond; equal to ``manifolds.lie.so3_log``);
    * desired angular acceleration ``α = k_p e − k_d ω`` (a PD / GDS-style attractor on the
      geodesic error, potential ``½ k_p ‖log(Rᵀ R*)‖²``, damping ``k_d``);
    * ambient acceleration ``R̈ = R (hat(α) + hat(ω)²)`` (second derivative of ``R exp(t hat ω)``);
    * metric ``M = μ · boost · I₉``; pulled back through ``vec(R(q))`` it is ``2 μ J_ωᵀ J_ω``,
      the isotropic metric on the body angular velocity.

    Canonical form. Parameters: :class:`AxisTargetParams` (Lula's gains).
    """

    def __init__(self, target, params: Optional[AxisTargetParams] = None):
        super().__init__()
        self.dim = 9
        self.params = params or AxisTargetParams()
        self.register_buffer("target", torch.eye(3))
        self.set_target(target)

    def set_target(self, R):
        R = torch.as_tensor(R)
        if R.shape[-2:] != (3, 3) or R.dim() > 3:
            raise ValueError(f"OrientationTargetRMP: target must be (3, 3) or (B, 3, 3), got {tuple(R.shape)}")
        eye = torch.eye(3, dtype=R.dtype)
        if not torch.allclose(R.transpose(-1, -2) @ R, eye.expand_as(R), atol=1e-4):
            raise ValueError("OrientationTargetRMP: target is not a rotation matrix (RᵀR ≠ I)")
        self.target = R.to(self.target.device)

    def _acc(self, x, xd):
        """``(R̈ (B, 9), metric scale (B, 1) or float)`` — the formulas above with
        ``ω = ½ vee(W − Wᵀ)``, ``R hat(α) = rows r_i × α``, ``R hat(ω)² = (Rω)ωᵀ − ‖ω‖² R``."""
        check_state(x, xd, 9, "OrientationTargetRMP")
        p = self.params
        B = x.shape[0]
        R = x.reshape(B, 3, 3)
        Rt = R.transpose(1, 2)
        target = self._buffers["target"]
        if target.dtype != x.dtype or target.device != x.device:
            target = target.to(x)
        E = torch.matmul(Rt, target) if target.dim() == 2 else torch.bmm(Rt, target.expand(B, 3, 3))
        omega = 0.5 * _skew_vee2(torch.bmm(Rt, xd.reshape(B, 3, 3)))
        e = _rotation_log(E)  # = so3_log(Rᵀ R*), closed form where well conditioned
        alpha = torch.add(p.accel_p_gain * e, omega, alpha=-p.accel_d_gain)
        Rw = torch.bmm(R, omega.unsqueeze(-1))  # (B, 3, 1)
        Rdd = torch.linalg.cross(R, alpha.unsqueeze(1).expand(B, 3, 3), dim=-1) + Rw * omega.unsqueeze(1) \
            - (omega * omega).sum(-1).reshape(B, 1, 1) * R
        d = getattr(self, "_proximity", None)
        scale = p.metric_scalar if d is None else p.metric_scalar * self._boost(x).reshape(-1, 1)
        return Rdd.reshape(B, 9), scale

    def canonical(self, x, xd):
        a, scale = self._acc(x, xd)
        B = x.shape[0]
        M = (scale.unsqueeze(-1) if isinstance(scale, Tensor) else scale) * _eye(B, 9, x)
        return a, M

    def natural_diag(self, x, xd):
        """``(f = μ b R̈, m = μ b 1)`` (the metric ``μ · boost · I₉`` is diagonal); equals :meth:`natural`."""
        if not _diag_fast_path_ok(self, OrientationTargetRMP):
            return None
        a, scale = self._acc(x, xd)
        if isinstance(scale, Tensor):
            return scale * a, scale.expand_as(a)
        return scale * a, torch.full_like(a, scale)


class AxisTargetRMP(_BoostMixin, Leaf):
    """Axis alignment: attract a unit axis ``z(q)`` (node ``(B, 3)``, e.g. a column of the end-effector
    rotation) to a target unit axis ``z*``. Our design (Lula's formula is not public), the
    "axes as points" attractor of NVIDIA FABRICS' ``pose`` task map (ref sheet §2.1) made rotation-aware:

    ``ω_⊥ = z × ż`` (angular velocity about axes ⟂ z), geodesic error on S²
    ``e = atan2(‖z × z*‖, z·z*) · (z × z*)/‖z × z*‖``;
    ``α = k_p e − k_d ω_⊥``; ``z̈ = α × z + ω_⊥ × (ω_⊥ × z)``; ``M = μ · boost · I₃``.
    Canonical form. Parameters: :class:`AxisTargetParams`.
    """

    def __init__(self, target_axis, params: Optional[AxisTargetParams] = None):
        super().__init__()
        self.dim = 3
        self.params = params or AxisTargetParams()
        self.register_buffer("target", torch.tensor([0.0, 0.0, 1.0]))
        self.set_target(target_axis)

    def set_target(self, axis):
        a = torch.as_tensor(axis)
        if a.shape[-1] != 3 or a.dim() > 2:
            raise ValueError(f"AxisTargetRMP: target axis must be (3,) or (B, 3), got {tuple(a.shape)}")
        n = a.norm(dim=-1)
        if (n <= 0).any():
            raise ValueError("AxisTargetRMP: target axis must be non-zero")
        self.target = (a / n.unsqueeze(-1)).to(self.target.device)

    def canonical(self, x, xd):
        check_state(x, xd, 3, "AxisTargetRMP")
        p = self.params
        z = x / x.norm(dim=-1, keepdim=True)
        zt = self.target.to(x).expand_as(z)
        c = torch.cross(z, zt, dim=-1)
        sn = c.norm(dim=-1, keepdim=True)
        ang = torch.atan2(sn, (z * zt).sum(-1, keepdim=True))
        e = ang * c / sn.clamp_min(torch.finfo(x.dtype).eps)
        w = torch.cross(z, xd, dim=-1)
        alpha = p.accel_p_gain * e - p.accel_d_gain * w
        a = torch.cross(alpha, z, dim=-1) + torch.cross(w, torch.cross(w, z, dim=-1), dim=-1)
        M = p.metric_scalar * self._boost(x) * _eye(x.shape[0], 3, x)
        return a, M


# ==============================================================================================
# Learned leaf
# ==============================================================================================
class LearnedLeaf(Leaf):
    """A learnable RMP: an MLP on ``(x, ẋ)`` gives ``a (B, m)`` and a lower-triangular ``L`` (positive
    diagonal through softplus); ``M = L Lᵀ + ε I`` is symmetric positive definite by construction
    (cf. RMP2's ``ExternalCanonicalRMP``, which outputs the metric square root).

    Args:
        dim: m. hidden: hidden widths (default (64, 64)). eps: ``ε`` ≥ 0 (1e-4).
    Raises:
        ValueError: non-positive dim, negative eps.
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (64, 64), eps: float = 1e-4, activation=nn.Tanh):
        super().__init__()
        if int(dim) <= 0:
            raise ValueError(f"LearnedLeaf: dim must be positive, got {dim}")
        if eps < 0:
            raise ValueError(f"LearnedLeaf: eps must be >= 0, got {eps}")
        self.dim = m = int(dim)
        self.eps = float(eps)
        layers = []
        w = 2 * m
        for h in hidden:
            layers += [nn.Linear(w, h), activation()]
            w = h
        self.n_tril = m * (m + 1) // 2
        layers.append(nn.Linear(w, m + self.n_tril))
        self.net = nn.Sequential(*layers)
        rows, cols = torch.tril_indices(m, m)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def canonical(self, x, xd) -> Tuple[Tensor, Tensor]:
        check_state(x, xd, self.dim, "LearnedLeaf")
        m = self.dim
        out = self.net(torch.cat([x, xd], -1).to(self.net[0].weight)).to(x)
        a, l = out[:, :m], out[:, m:]
        diag = self.rows == self.cols
        l = torch.where(diag, nn.functional.softplus(l) + 1e-3, l)
        L = x.new_zeros(x.shape[0], m, m)
        L = L.index_put((torch.arange(x.shape[0], device=x.device)[:, None], self.rows, self.cols), l)
        M = L @ L.transpose(1, 2) + self.eps * _eye(x.shape[0], m, x)
        return a, M

