"""Planar n-link revolute arm: forward kinematics of points along the links, analytic ``J`` and ``J̇q̇``.

With absolute link angles ``φ_i = Σ_{j≤i} q_j`` and ``u(φ) = (cos φ, sin φ)``, a point at distance ``s``
along link ``k`` (0-based) is

    ``x = Σ_{i<k} l_i u(φ_i) + s u(φ_k) = Σ_i c_i u(φ_i)``,  ``c_i = l_i (i < k), s (i = k), 0 (i > k)``;

``∂x/∂q_j = Σ_{i≥j} c_i u⊥(φ_i)`` with ``u⊥ = (−sin, cos)``, and ``J̇q̇ = −Σ_i c_i φ̇_i² u(φ_i)``
(``φ̇_i = Σ_{j≤i} q̇_j``). Units: metres, radians.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from ..core import JointTaskMap

__all__ = ["PlanarArm", "PlanarPointMap"]


class PlanarPointMap(JointTaskMap):
    """``q (B, n) ↦`` stacked planar positions ``(B, 2K)`` of points ``(link k, distance s)`` on a planar arm.

    Args:
        lengths: ``(n,)`` link lengths [m]. links: ``(K,)`` link index of each point in ``[0, n)``.
        distances: ``(K,)`` distance of each point from the link's proximal joint [m].
        base: ``(2,)`` base position [m]. radii: optional ``(K,)`` (stored, not used by the map).

    Raises:
        ValueError: link index out of range, mismatched lengths, negative radii.
    """

    def __init__(self, lengths, links, distances, base=(0.0, 0.0), radii=None, jacobian_mode: Optional[str] = None):
        lengths = torch.as_tensor(lengths, dtype=torch.float64).reshape(-1)
        links = torch.as_tensor(links, dtype=torch.long).reshape(-1)
        distances = torch.as_tensor(distances, dtype=torch.float64).reshape(-1)
        n, K = lengths.numel(), links.numel()
        if K == 0 or distances.numel() != K:
            raise ValueError(f"PlanarPointMap: need K ≥ 1 points with K link indices and K distances, got {K} and {distances.numel()}")
        if bool(((links < 0) | (links >= n)).any()):
            raise ValueError(f"PlanarPointMap: link indices must lie in [0, {n}), got {links.tolist()}")
        super().__init__(n, 2 * K, jacobian_mode=jacobian_mode)
        i = torch.arange(n).unsqueeze(0)
        C = torch.where(i < links.unsqueeze(1), lengths.unsqueeze(0), torch.zeros(()).double())
        C = torch.where(i == links.unsqueeze(1), distances.unsqueeze(1), C)
        self.register_buffer("C", C, persistent=False)  # (K, n)
        self.register_buffer("base", torch.as_tensor(base, dtype=torch.float64).reshape(2), persistent=False)
        if radii is not None:
            radii = torch.as_tensor(radii, dtype=torch.float64).reshape(-1)
            if radii.numel() != K or bool((radii < 0).any()):
                raise ValueError(f"PlanarPointMap: radii must be ({K},) and non-negative")
        self.radii = radii
        self.num_points = K

    def _all(self, q, qd):
        B = q.shape[0]
        C = self.C.to(q)
        phi = torch.cumsum(q, 1)
        c, s = torch.cos(phi), torch.sin(phi)
        x = torch.stack([c @ C.T, s @ C.T], -1) + self.base.to(q)  # (B, K, 2)
        # J[b, k, :, j] = Σ_{i≥j} C[k,i] u⊥(φ_i): reverse cumulative sums over i
        Cs = C.unsqueeze(0) * (-s).unsqueeze(1)  # (B, K, n)
        Cc = C.unsqueeze(0) * c.unsqueeze(1)
        Jx = torch.flip(torch.cumsum(torch.flip(Cs, [-1]), -1), [-1])
        Jy = torch.flip(torch.cumsum(torch.flip(Cc, [-1]), -1), [-1])
        J = torch.stack([Jx, Jy], 2).reshape(B, -1, self.in_dim)
        jd = None
        if qd is not None:
            w2 = torch.cumsum(qd, 1) ** 2
            jd = -torch.stack([(c * w2) @ C.T, (s * w2) @ C.T], -1).reshape(B, -1)
        return x.reshape(B, -1), J, jd

    def points(self, q: Tensor) -> Tensor:
        """``(B, K, 2)`` point positions [m]."""
        return self.psi(q).reshape(q.shape[0], -1, 2)

    def psi(self, q):
        B = q.shape[0]
        phi = torch.cumsum(q, 1)
        C = self.C.to(q)
        return (torch.stack([torch.cos(phi) @ C.T, torch.sin(phi) @ C.T], -1) + self.base.to(q)).reshape(B, -1)



class PlanarArm:
    """A planar n-link arm with revolute joints (RMP2's 3-link arm: lengths (0.25, 0.25, 0.25)).

    Args:
        lengths: ``(n,)`` positive link lengths [m]. base: ``(2,)`` base position [m].
        q_min, q_max: joint limits [rad] (default ±π). qd_max: velocity limits [rad/s] (default 1.0, RMP2 3-link cap).
        points_per_link: collision points per link (RMP2 3-link: 5), placed at ``(i + ½)/m`` of each link.
        radius: collision point radius [m] (RMP2: 0.025).

    Raises:
        ValueError: non-positive lengths, negative radius, points_per_link < 1.
    """

    def __init__(self, lengths: Sequence[float] = (0.25, 0.25, 0.25), base=(0.0, 0.0), q_min=None, q_max=None,
                 qd_max=None, points_per_link: int = 5, radius: float = 0.025):
        L = torch.as_tensor(lengths, dtype=torch.float64).reshape(-1)
        if L.numel() == 0 or bool((L <= 0).any()):
            raise ValueError(f"PlanarArm: link lengths must be positive, got {L.tolist()}")
        if radius < 0:
            raise ValueError(f"PlanarArm: radius must be non-negative, got {radius}")
        if int(points_per_link) < 1:
            raise ValueError(f"PlanarArm: points_per_link must be ≥ 1, got {points_per_link}")
        self.lengths, self.dof = L, L.numel()
        self.base = torch.as_tensor(base, dtype=torch.float64).reshape(2)
        n = self.dof
        self.q_min = torch.full((n,), -torch.pi, dtype=torch.float64) if q_min is None else torch.as_tensor(q_min, dtype=torch.float64)
        self.q_max = torch.full((n,), torch.pi, dtype=torch.float64) if q_max is None else torch.as_tensor(q_max, dtype=torch.float64)
        self.qd_max = torch.ones(n, dtype=torch.float64) if qd_max is None else torch.as_tensor(qd_max, dtype=torch.float64)
        for name in ("q_min", "q_max", "qd_max"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"PlanarArm: {name} must have shape ({n},)")
        m = int(points_per_link)
        self.sphere_links = torch.arange(n).repeat_interleave(m)
        frac = (torch.arange(m, dtype=torch.float64) + 0.5) / m
        self.sphere_distances = (L.unsqueeze(1) * frac.unsqueeze(0)).reshape(-1)
        self.sphere_radii = torch.full((n * m,), float(radius), dtype=torch.float64)

    def joint_points_map(self, jacobian_mode: Optional[str] = None) -> PlanarPointMap:
        """``q ↦`` positions of the joints 2…n and the end effector ``(B, 2n)``."""
        return PlanarPointMap(self.lengths, torch.arange(self.dof), self.lengths, self.base, jacobian_mode=jacobian_mode)

    def end_effector_map(self, jacobian_mode: Optional[str] = None) -> PlanarPointMap:
        """``q ↦`` end-effector position ``(B, 2)``."""
        return PlanarPointMap(self.lengths, [self.dof - 1], self.lengths[-1:], self.base, jacobian_mode=jacobian_mode)

    def control_point_map(self, jacobian_mode: Optional[str] = None) -> PlanarPointMap:
        """``q ↦`` stacked collision points ``(B, 2K)`` (``.radii`` ``(K,)``)."""
        return PlanarPointMap(self.lengths, self.sphere_links, self.sphere_distances, self.base,
                              radii=self.sphere_radii, jacobian_mode=jacobian_mode)

    def sphere_centers(self, q: Tensor) -> Tensor:
        """``(B, K, 2)`` collision-point positions [m]."""
        return self.control_point_map().points(q)

    def limits(self, like: Tensor):
        """``{"q_min", "q_max", "qd_max"}`` as ``(n,)`` tensors with ``like``'s dtype and device."""
        return {k: getattr(self, k).to(like) for k in ("q_min", "q_max", "qd_max")}
