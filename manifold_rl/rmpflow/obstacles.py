"""Obstacles for RMPflow: spheres, boxes and point clouds, with signed distances of robot collision spheres.

Every obstacle gives, for points ``x: (B, K, D)``, the signed distance ``φ(x)`` to its surface
(negative inside), its gradient ``∇φ`` and the curvature term ``vᵀ ∇²φ v`` along a velocity ``v``;
:class:`ObstacleDistanceMap` turns these into the 1-D-per-sphere task map of the RMPflow collision leaf

    ``d_k(x) = φ(x_k) − r_k``,  ``J = ∂d/∂x`` (block rows ``∇φ(x_k)ᵀ``),  ``J̇ẋ = ẋ_kᵀ ∇²φ(x_k) ẋ_k``

(Cheng et al., RMPflow, WAFR 2018, App. E: one distance task space per control point and obstacle; RMP2's
``collision_rmp`` acts on exactly this distance, ref sheet §2.2). Obstacles are static; their parameters
are either shared by all environments (no batch dimension) or per environment (leading ``B``).

Point clouds of 10⁵ points go through :mod:`kernels` (``knn`` with an automatic dense / chunked / KeOps
backend), so memory stays ``O(B·K·k)`` rather than ``O(B·K·N)``.

Units: metres.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .core import TaskMap, TaskMapOutput, tensor_version

__all__ = [
    "Obstacle",
    "Sphere",
    "Box",
    "PointCloud",
    "ObstacleDistanceMap",
    "sphere_distances",
    "min_clearance",
]


def _as_param(v, name: str, event: int, like: Optional[Tensor] = None) -> Tensor:
    t = torch.as_tensor(v, dtype=torch.float64 if not isinstance(v, Tensor) else None)
    if not t.is_floating_point():
        t = t.double()
    if event == 0:
        if t.dim() > 1:
            raise ValueError(f"{name}: expected a scalar or (B,), got {tuple(t.shape)}")
    elif t.dim() not in (1, 2) or t.shape[-1] != event:
        raise ValueError(f"{name}: expected ({event},) or (B, {event}), got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: must be finite")
    return t


def _check_points(x: Tensor, dim: int, what: str) -> None:
    if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != dim or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{what}: expected points of shape (B, K, {dim}), got {shape}")


def _bcast(p: Tensor, x: Tensor, event_dims: int) -> Tensor:
    """Parameter ``(*event)`` or ``(B, *event)`` → broadcastable against ``x: (B, K, …)`` as ``(1|B, 1, *event)``."""
    p = p.to(device=x.device, dtype=x.dtype)
    if p.dim() == event_dims:
        return p.reshape((1, 1) + p.shape)
    if p.shape[0] != x.shape[0]:
        raise ValueError(f"per-environment obstacle parameter has batch {p.shape[0]}, points have batch {x.shape[0]}")
    return p.unsqueeze(1)


def _sum_small(t: Tensor, dim: int = -1) -> Tensor:
    """``t.sum(dim)`` for a short dimension (2 or 3 entries): large batches use explicit adds, which are
    much faster on CPU than PyTorch's reduction kernel over a tiny dimension; small ones one ``sum``."""
    n = t.shape[dim]
    if t.numel() < 8192 or n > 4:
        return t.sum(dim)
    parts = t.unbind(dim)
    out = parts[0] + parts[1]
    for p in parts[2:]:
        out = out + p
    return out


class Obstacle(torch.nn.Module):
    """Base class: ``sdf(x)`` and ``sdf_derivatives(x, v)`` for points ``x: (B, K, D)`` [m]."""

    dim: int = 3

    def sdf(self, x: Tensor) -> Tensor:
        """Signed distance ``(B, K)`` of points ``x: (B, K, D)`` to the surface (negative inside)."""
        return self.sdf_derivatives(x, None)[0]

    def sdf_derivatives(self, x: Tensor, v: Optional[Tensor]) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """``(φ (B, K), ∇φ (B, K, D), vᵀ∇²φ v (B, K) or None)``."""
        raise NotImplementedError

    def distances(self, centers: Tensor, radii) -> Tensor:
        """Clearance ``φ(c_k) − r_k`` ``(B, K)`` of robot spheres (``centers: (B, K, D)``, ``radii: (K,)`` ≥ 0) [m].

        Raises:
            ValueError: wrong shapes or negative radii.
        """
        _check_points(centers, self.dim, type(self).__name__ + ".distances")
        r = _check_radii(radii, centers.shape[1]).to(centers)
        return self.sdf(centers) - r


def _check_radii(radii, K: int) -> Tensor:
    r = torch.as_tensor(radii)
    if not r.is_floating_point():
        r = r.double()
    if r.dim() == 0:
        r = r.expand(K)
    if r.shape != (K,):
        raise ValueError(f"radii: expected shape ({K},), got {tuple(r.shape)}")
    if bool((r < 0).any()):
        raise ValueError(f"radii must be non-negative, got min {float(r.min())}")
    return r


class Sphere(Obstacle):
    """Ball ``‖x − o‖ ≤ R`` (a disc for ``dim = 2``).

    ``φ = ‖x − o‖ − R``, ``∇φ = n = (x − o)/‖x − o‖``, ``vᵀ∇²φ v = (‖v‖² − (n·v)²)/‖x − o‖``.

    Args:
        center: ``(D,)`` or per environment ``(B, D)`` [m]. radius: scalar or ``(B,)`` ≥ 0 [m].

    Raises:
        ValueError: negative radius, malformed shapes.
    """

    def __init__(self, center, radius):
        super().__init__()
        c = torch.as_tensor(center)
        if c.dim() not in (1, 2):
            raise ValueError(f"Sphere.center: expected (D,) or (B, D), got {tuple(c.shape)}")
        self.dim = int(c.shape[-1])
        self.center = _as_param(center, "Sphere.center", self.dim)
        self.radius = _as_param(radius, "Sphere.radius", 0)
        if bool((self.radius < 0).any()):
            raise ValueError(f"Sphere.radius must be non-negative, got {self.radius.tolist()}")

    def sdf_derivatives(self, x, v):
        _check_points(x, self.dim, "Sphere")
        o = _bcast(self.center, x, 1)
        R = self.radius.to(x)
        R = R.unsqueeze(-1) if R.dim() == 1 else R
        diff = x - o
        r = torch.linalg.vector_norm(diff, dim=-1).clamp_min(torch.finfo(x.dtype).tiny)
        n = diff / r.unsqueeze(-1)
        hv = None
        if v is not None:
            hv = (_sum_small(v * v) - _sum_small(n * v) ** 2) / r
        return r - R, n, hv


class Box(Obstacle):
    """Oriented box ``{c + R p : |p_i| ≤ h_i}`` with its exact signed distance.

    In box coordinates ``p = Rᵀ(x − c)``, ``q = |p| − h``: ``φ = ‖max(q, 0)‖ + min(max_i q_i, 0)``
    (Quilez, "distance functions"; exact Euclidean distance outside, minus the distance to the nearest
    face inside). Gradient: outside ``R (s ⊙ max(q,0))/‖max(q,0)‖`` (face, edge and corner regions alike,
    ``s = sign p`` with ``sign 0 = +1``); inside ``R s_i e_i`` for the face ``i = argmax q`` (ties: first).
    Curvature ``vᵀ∇²φ v``: outside ``(Σ_{q_i>0} w_i² − (m·w)²)/‖max(q,0)‖`` with ``w = s ⊙ Rᵀv``,
    ``m = max(q,0)/‖max(q,0)‖`` (zero in face regions, cylindrical at edges, spherical at corners); 0 inside.

    Args:
        center: ``(D,)`` or ``(B, D)`` [m]. half_extents: ``(D,)`` or ``(B, D)`` > 0 [m].
        rotation: optional ``(D, D)`` or ``(B, D, D)`` rotation matrix (box axes as columns).

    Raises:
        ValueError: non-positive half extents, non-orthonormal rotation, malformed shapes.
    """

    def __init__(self, center, half_extents, rotation=None):
        super().__init__()
        c = torch.as_tensor(center)
        if c.dim() not in (1, 2):
            raise ValueError(f"Box.center: expected (D,) or (B, D), got {tuple(c.shape)}")
        self.dim = int(c.shape[-1])
        self.center = _as_param(center, "Box.center", self.dim)
        self.half_extents = _as_param(half_extents, "Box.half_extents", self.dim)
        if bool((self.half_extents <= 0).any()):
            raise ValueError(f"Box.half_extents must be positive, got {self.half_extents.tolist()}")
        if rotation is None:
            self.rotation = None
        else:
            Rm = torch.as_tensor(rotation)
            Rm = Rm.double() if not Rm.is_floating_point() else Rm
            if Rm.dim() not in (2, 3) or Rm.shape[-2:] != (self.dim, self.dim):
                raise ValueError(f"Box.rotation: expected ({self.dim}, {self.dim}) or (B, {self.dim}, {self.dim}), got {tuple(Rm.shape)}")
            eye = torch.eye(self.dim, dtype=Rm.dtype)
            tol = 1e-5 if Rm.dtype == torch.float32 else 1e-9
            if not bool(((Rm.transpose(-1, -2) @ Rm - eye).abs() <= tol).all()):
                raise ValueError("Box.rotation must be orthonormal")
            self.rotation = Rm

    def sdf_derivatives(self, x, v):
        _check_points(x, self.dim, "Box")
        c = _bcast(self.center, x, 1)
        h = _bcast(self.half_extents, x, 1)
        d = x - c
        Rm = None if self.rotation is None else _bcast(self.rotation, x, 2)  # (1|B, 1, D, D)
        p = d if Rm is None else (d.unsqueeze(-2) @ Rm).squeeze(-2)  # Rᵀ d
        s = torch.where(p >= 0, torch.ones_like(p), -torch.ones_like(p))
        q = p.abs() - h
        qo = q.clamp_min(0)
        no = qo.norm(dim=-1)
        qmax, imax = q.max(dim=-1)
        phi = no + qmax.clamp_max(0)
        outside = no > 0
        safe = torch.where(outside, no, torch.ones_like(no))
        m = qo / safe.unsqueeze(-1)
        g_out = s * m
        g_in = s * torch.nn.functional.one_hot(imax, self.dim).to(x.dtype)
        g_loc = torch.where(outside.unsqueeze(-1), g_out, g_in)
        grad = g_loc if Rm is None else (Rm @ g_loc.unsqueeze(-1)).squeeze(-1)
        hv = None
        if v is not None:
            vl = v if Rm is None else (v.unsqueeze(-2) @ Rm).squeeze(-2)
            w = s * vl
            act = (q > 0).to(x.dtype)
            hv = torch.where(outside, ((act * w * w).sum(-1) - (m * w).sum(-1) ** 2) / safe, torch.zeros_like(no))
        return phi, grad, hv


class PointCloud(Obstacle):
    """A point set ``{y_j}`` (``N`` points, e.g. from a depth camera) as an obstacle.

    ``mode="nearest"`` (default): ``φ(x) = min_j ‖x − y_j‖`` via ``kernels.knn(k=1)``; within the Voronoi
    cell of ``y*`` it is the distance to one point, so ``∇φ = n``, ``vᵀ∇²φ v = (‖v‖² − (n·v)²)/φ``.

    ``mode="softmin"``: the smooth minimum ``φ = −τ log Σ_j exp(−d_j/τ)`` (``kernels.softmin_distance``)
    truncated to the ``k`` nearest points (``kernels.knn``; the dropped terms change φ by at most
    ``τ (N − k) exp(−(d_(k) − d_(1))/τ)``), with ``∇φ = Σ w_j n_j`` and
    ``vᵀ∇²φ v = Σ w_j vᵀH_j v − (Σ w_j (n_j·v)² − (∇φ·v)²)/τ`` (``w = softmax(−d/τ)``, ``H_j`` the
    point-distance Hessians). ``k ≥ N`` gives the exact soft-min.

    The point cloud is a surface sample, not a solid: φ ≥ 0 everywhere (no inside).

    Args:
        points: ``(N, D)`` or per environment ``(B, N, D)`` [m].
        mode: ``"nearest"`` or ``"softmin"``. temperature: τ > 0 [m] (softmin). k: neighbours (softmin, default 32).
        backend: ``kernels`` backend (None = automatic by memory budget; "dense", "chunked", "keops").

    Raises:
        ValueError: malformed points, unknown mode, non-positive temperature or k.
    """

    def __init__(self, points, mode: str = "nearest", temperature: float = 0.01, k: int = 32,
                 backend: Optional[str] = None):
        super().__init__()
        P = torch.as_tensor(points)
        P = P.double() if not P.is_floating_point() else P
        if P.dim() not in (2, 3) or P.shape[-2] < 1 or P.shape[-1] < 1:
            raise ValueError(f"PointCloud.points: expected (N, D) or (B, N, D) with N ≥ 1, got {tuple(P.shape)}")
        if not bool(torch.isfinite(P).all()):
            raise ValueError("PointCloud.points must be finite")
        if mode not in ("nearest", "softmin"):
            raise ValueError(f"PointCloud.mode must be 'nearest' or 'softmin', got {mode!r}")
        if not temperature > 0:
            raise ValueError(f"PointCloud.temperature must be positive, got {temperature}")
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"PointCloud.k must be an int ≥ 1, got {k!r}")
        self.points, self.mode, self.temperature, self.k, self.backend = P, mode, float(temperature), k, backend
        self.dim = int(P.shape[-1])

    def _neighbours(self, x: Tensor, k: int):
        import kernels
        from manifolds import Euclidean

        Y = self.points.to(device=x.device, dtype=x.dtype)
        if Y.dim() == 3 and Y.shape[0] != x.shape[0]:
            raise ValueError(f"PointCloud: per-environment points have batch {Y.shape[0]}, points have batch {x.shape[0]}")
        k = min(k, Y.shape[-2])
        _, idx = kernels.knn(Euclidean(self.dim), x.detach(), Y.detach(), k, backend=self.backend)  # (B, K, k)
        B, K = x.shape[:2]
        Yb = Y.expand(B, -1, -1) if Y.dim() == 3 else Y.unsqueeze(0).expand(B, -1, -1)
        nb = torch.gather(Yb.unsqueeze(1).expand(B, K, -1, -1), 2, idx.unsqueeze(-1).expand(B, K, k, self.dim))
        return nb  # (B, K, k, D), differentiable w.r.t. x via the recomputed distances below

    def sdf_derivatives(self, x, v):
        _check_points(x, self.dim, "PointCloud")
        k = 1 if self.mode == "nearest" else self.k
        nb = self._neighbours(x, k)
        diff = x.unsqueeze(2) - nb  # (B, K, k, D)
        r = diff.norm(dim=-1).clamp_min(torch.finfo(x.dtype).tiny)
        n = diff / r.unsqueeze(-1)
        if self.mode == "nearest":
            hv = None
            if v is not None:
                hv = ((v * v).sum(-1) - (n[:, :, 0] * v).sum(-1) ** 2) / r[:, :, 0]
            return r[:, :, 0], n[:, :, 0], hv
        tau = self.temperature
        phi = -tau * torch.logsumexp(-r / tau, dim=-1)
        w = torch.softmax(-r / tau, dim=-1)  # (B, K, k)
        g = (w.unsqueeze(-1) * n).sum(2)
        hv = None
        if v is not None:
            nv = (n * v.unsqueeze(2)).sum(-1)  # (B, K, k)
            hj = ((v * v).sum(-1, keepdim=True) - nv ** 2) / r
            hv = (w * hj).sum(-1) - ((w * nv ** 2).sum(-1) - (g * v).sum(-1) ** 2) / tau
        return phi, g, hv


def sphere_distances(obstacles: Sequence[Obstacle], centers: Tensor, radii) -> Tensor:
    """Clearances ``(B, K, O)`` of ``K`` robot spheres to each of ``O`` obstacles [m] (negative = penetration)."""
    if len(obstacles) == 0:
        raise ValueError("sphere_distances: need at least one obstacle")
    return torch.stack([ob.distances(centers, radii) for ob in obstacles], -1)


def min_clearance(obstacles: Sequence[Obstacle], centers: Tensor, radii) -> Tensor:
    """``(B,)`` minimum clearance over all robot spheres and obstacles [m] (``+inf`` without obstacles)."""
    if len(obstacles) == 0:
        return centers.new_full((centers.shape[0],), float("inf"))
    return sphere_distances(obstacles, centers, radii).flatten(1).min(dim=1).values


class _BlockRowOutput(TaskMapOutput):
    """:class:`TaskMapOutput` whose block-diagonal Jacobian ``J[b, k, k·D + i] = g[b, k, i]`` is formed
    only when ``.J`` is read (the flow's compose pullback uses ``row_grad = g`` directly)."""

    def __init__(self, x: Tensor, xd: Tensor, g: Tensor, Jdot_qd: Tensor):
        self.x, self.xd, self.Jdot_qd, self.row_grad = x, xd, Jdot_qd, g
        self._J: Optional[Tensor] = None

    @property
    def J(self) -> Tensor:
        if self._J is None:
            B, K, D = self.row_grad.shape
            self._J = torch.diag_embed(self.row_grad.transpose(1, 2)).permute(0, 2, 3, 1).reshape(B, K, K * D)
        return self._J

    @J.setter
    def J(self, value: Tensor) -> None:
        self._J = value


class ObstacleDistanceMap(TaskMap):
    """Task map from stacked control points ``(B, D·K)`` to their clearances ``(B, K)`` to one obstacle.

    ``d_k = φ(x_k) − r_k`` (RMPflow's 1-D distance task space per control point and obstacle); ``J`` is
    block-diagonal with rows ``∇φ(x_k)ᵀ`` (``(B, K, D·K)``) and ``J̇ẋ = ẋ_kᵀ ∇²φ(x_k) ẋ_k`` (analytic,
    see each obstacle). Attach it as a child of the robot's control-point node; the collision leaf then
    acts on each of the ``K`` distances.

    Args:
        obstacle: a :class:`Sphere`, :class:`Box` or :class:`PointCloud` (dimension D).
        radii: ``(K,)`` robot sphere radii ≥ 0 [m] (e.g. ``control_point_map.radii``).

    Raises:
        ValueError: negative radii; wrong input width.
    """

    def __init__(self, obstacle: Obstacle, radii):
        r = _check_radii(radii, torch.as_tensor(radii).reshape(-1).shape[0])
        if not isinstance(obstacle, Obstacle):
            raise ValueError(f"ObstacleDistanceMap: expected an Obstacle, got {type(obstacle).__name__}")
        K = r.shape[0]
        super().__init__(obstacle.dim * K, K, jacobian_mode="forward")
        self.jacobian_mode = "analytic"
        self.obstacle = obstacle
        self.register_buffer("radii", r.double(), persistent=False)
        self.num_points = K

    def psi(self, x):
        B = x.shape[0]
        return self.obstacle.sdf(x.reshape(B, self.num_points, -1)) - self.radii.to(x)

    def _evaluate(self, x, xd, mode):
        if mode != "analytic":
            return super()._evaluate(x, xd, mode)
        B, K, D = x.shape[0], self.num_points, self.obstacle.dim
        phi, g, hv = self.obstacle.sdf_derivatives(x.reshape(B, K, D), xd.reshape(B, K, D))
        d = phi - self.radii.to(x)
        return _BlockRowOutput(d, _sum_small(g * xd.reshape(B, K, D)), g, hv)

    def compose_total(self, out, J_parent, jd_parent):
        """Block-diagonal ``J`` times the parent's total Jacobian without forming the product:
        ``(J J_p)[k] = ∇φ(x_k)ᵀ J_p[k]`` (``(B, K, D) × (B, K, D, n)``), same for the curvature."""
        g = getattr(out, "row_grad", None)
        if J_parent is None or g is None:
            return super().compose_total(out, J_parent, jd_parent)
        B, K, D = g.shape
        Jt = _sum_small(g.unsqueeze(-1) * J_parent.reshape(B, K, D, -1), 2)  # (B, K, n)
        jd = _sum_small(g * jd_parent.reshape(B, K, D)) + out.Jdot_qd
        return Jt, jd

    # -- sibling groups (several obstacles seen from the same control points) ----------------------
    def group_key(self):
        """Plain analytic distance maps with the same point count and dimension form a group."""
        if type(self) is not ObstacleDistanceMap or self.jacobian_mode != "analytic":
            return None
        return ("ObstacleDistanceMap", self.num_points, self._modules["obstacle"].dim)

    @classmethod
    def evaluate_group(cls, maps, x, xd):
        """All maps at once: ``O`` obstacles × ``K`` points. Spheres are evaluated in one batched pass
        (the formulas of :meth:`Sphere.sdf_derivatives` on ``(B, O, K, D)``); other obstacles one by one
        and stacked. Returns the stacked output (rows obstacle-major, ``(B, O·K)``) and per-map
        :class:`_BlockRowOutput` views equal to each map's own evaluation."""
        m0 = maps[0]
        B, K, D = x.shape[0], m0.num_points, m0.obstacle.dim
        X, V = x.reshape(B, K, D), xd.reshape(B, K, D)
        obs = [m.obstacle for m in maps]
        consts = _group_constants(maps, X)
        if consts[0] is not None:
            C, R = consts[0]
            diff = X.unsqueeze(1) - C  # (B, O, K, D)
            r = torch.linalg.vector_norm(diff, dim=-1).clamp_min(torch.finfo(x.dtype).tiny)
            g = diff / r.unsqueeze(-1)
            Vb = V.unsqueeze(1)
            nv = _sum_small(g * Vb)
            hv = (_sum_small(V * V).unsqueeze(1) - nv * nv) / r
            phi = r - R
        else:
            parts = [ob.sdf_derivatives(X, V) for ob in obs]
            phi = torch.stack([p[0] for p in parts], 1)
            g = torch.stack([p[1] for p in parts], 1)
            hv = torch.stack([p[2] for p in parts], 1)
            nv = _sum_small(g * V.unsqueeze(1))
        d = phi - consts[1]  # (B, O, K)
        outs = [_BlockRowOutput(*t) for t in zip(d.unbind(1), nv.unbind(1), g.unbind(1), hv.unbind(1))]
        return _GroupOutput(d, nv, g, hv, outs), outs

    def compose_group_total(self, stacked, J_parent, jd_parent):
        """``(J J_p)[o, k] = ∇φ_o(x_k)ᵀ J_p[k]`` for all obstacles in one product; rows obstacle-major."""
        if J_parent is None or not isinstance(stacked, _GroupOutput):
            return super().compose_group_total(stacked, J_parent, jd_parent)
        g = stacked.g4  # (B, O, K, D)
        B, O, K, D = g.shape
        Jt = _sum_small(g.unsqueeze(-1) * J_parent.reshape(B, 1, K, D, -1), 3).reshape(B, O * K, -1)
        jd = (_sum_small(g * jd_parent.reshape(B, 1, K, D)) + stacked.hv4).reshape(B, O * K)
        return Jt, jd


class _GroupOutput(TaskMapOutput):
    """Stacked output of :meth:`ObstacleDistanceMap.evaluate_group`: ``x, ẋ, J̇ẋ`` ``(B, O·K)``; the
    block-diagonal ``J`` ``(B, O·K, K·D)`` is formed only if read."""

    def __init__(self, d: Tensor, nv: Tensor, g4: Tensor, hv4: Tensor, members):
        B, O, K = d.shape
        self.x, self.xd, self.g4, self.hv4 = d.reshape(B, O * K), nv.reshape(B, O * K), g4, hv4
        self.Jdot_qd = hv4.reshape(B, O * K)
        self._members = members
        self._J: Optional[Tensor] = None

    @property
    def J(self) -> Tensor:
        if self._J is None:
            self._J = torch.cat([m.J for m in self._members], 1)
        return self._J

    @J.setter
    def J(self, value: Tensor) -> None:
        self._J = value


def _group_constants(maps, X: Tensor):
    """``((C (1|B, O, 1, D), R (1|B, O, 1)) or None, radii (O, K))`` for :meth:`ObstacleDistanceMap.evaluate_group`;
    memoised on the first map per dtype / device / inference mode and the identity and version of every
    centre, radius and radii tensor (so moved obstacles are picked up; not memoised when one requires grad)."""
    obs = [m.obstacle for m in maps]
    spheres = all(type(ob) is Sphere for ob in obs)
    src = [m.radii for m in maps]
    if spheres:
        src += [ob.center for ob in obs] + [ob.radius for ob in obs]
    key = (X.dtype, X.device, torch.is_inference_mode_enabled(), X.shape[0], spheres, tuple(tensor_version(t) for t in src))
    cache = maps[0].__dict__.get("_group_cache")
    if (cache is not None and cache[0] == key and len(cache[1]) == len(src) and all(a is b for a, b in zip(cache[1], src))
            and len(cache[2]) == len(maps) and all(a is b for a, b in zip(cache[2], maps))):
        return cache[3]
    radii = torch.stack([m.radii.to(X) for m in maps])
    sph = None
    if spheres:
        B = X.shape[0]
        per_env = any(ob.center.dim() == 2 or ob.radius.dim() == 1 for ob in obs)
        if per_env:
            for ob in obs:
                if ob.center.dim() == 2 and ob.center.shape[0] != B or ob.radius.dim() == 1 and ob.radius.shape[0] != B:
                    raise ValueError(f"per-environment obstacle parameter has batch {ob.center.shape[0]}, points have batch {B}")
            C = torch.stack([ob.center.to(X).expand(B, -1) for ob in obs], 1).unsqueeze(2)  # (B, O, 1, D)
            R = torch.stack([ob.radius.to(X).expand(B) for ob in obs], 1).unsqueeze(2)  # (B, O, 1)
        else:
            C = torch.stack([ob.center.to(X) for ob in obs]).unsqueeze(1).unsqueeze(0)  # (1, O, 1, D)
            R = torch.stack([ob.radius.to(X) for ob in obs]).reshape(1, -1, 1)
        sph = (C, R)
    out = (sph, radii)
    # never reuse an autograd graph across calls; inference tensors (no version counter): not memoised
    if not any(t.requires_grad or t.is_inference() for t in src):
        maps[0].__dict__["_group_cache"] = (key, list(src), list(maps), out)
    return out
