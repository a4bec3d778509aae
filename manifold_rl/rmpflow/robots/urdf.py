"""Task maps from any URDF (serial chain) through ``pytorch_kinematics``.

* positions of points rigidly attached to links (frames by link name, offsets in the link frame):
  ``chain.forward_kinematics`` for ψ and ``SerialChain(…, link).jacobian(q, locations=…)`` (the geometric
  Jacobian at offset points) for ``J``;
* link orientations (rotation matrix, row-major ``(B, 9)``, or one axis) with ``J`` from the angular
  rows ``J_ω`` of the same Jacobian: ``∂r_c/∂q_j = J_ω[:, j] × r_c``;
* ``J̇q̇`` by central finite differences of the analytic ``J`` along ``q̇`` (the core's ``"analytic"`` mode
  without an analytic ``jdot_qd``: ``(J(q + h u) − J(q − h u)) q̇ ‖q̇‖ / 2h``, ``u = q̇/‖q̇‖``,
  ``h = eps^(1/3)``, error O(h²) ≈ 1e-10 relative in float64); ``jacobian_mode="forward"`` is also
  available (nested forward-mode through pytorch_kinematics; slow, ref sheet §3.7/§5.1);
* joint position and velocity limits parsed from the URDF.

Only serial chains (root → ``end_link``) are supported; joints are ordered as in
``chain.get_joint_parameter_names()``. ``pytorch_kinematics`` (MIT, UM-ARM-Lab) is imported when this
module is imported, not by ``manifold_rl.rmpflow``.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..core import TaskMap

__all__ = ["URDFRobot", "URDFPointMap", "URDFOrientationMap"]


def _load(urdf) -> bytes:
    if isinstance(urdf, bytes):
        return urdf
    if not isinstance(urdf, str):
        raise ValueError(f"URDFRobot: expected a URDF string, bytes or a file path, got {type(urdf).__name__}")
    if urdf.lstrip().startswith("<"):
        return urdf.encode()
    if not os.path.isfile(urdf):
        raise FileNotFoundError(f"URDFRobot: no URDF file at {urdf!r}")
    with open(urdf, "rb") as fh:
        return fh.read()


class URDFRobot:
    """A serial robot loaded from a URDF through ``pytorch_kinematics``.

    Args:
        urdf: URDF XML string, bytes, or a file path.
        end_link: last link of the serial chain (required).
        dtype, device: of the kinematic chain (``chain.to``); inputs are cast to them.

    Attributes:
        dof: number of actuated joints. joint_names, link_names: from the chain.
        q_min, q_max: ``(dof,)`` [rad]; qd_max: ``(dof,)`` [rad/s] (``inf`` when the URDF gives none).

    Raises:
        ValueError: unknown ``end_link`` / link names (the message lists the available ones).
        FileNotFoundError: a path that does not exist.
    """

    def __init__(self, urdf, end_link: str, dtype: torch.dtype = torch.float64, device=None):
        import pytorch_kinematics as pk

        data = _load(urdf)
        full = pk.build_chain_from_urdf(data)
        names = full.get_frame_names(exclude_fixed=False)
        if end_link not in names:
            raise ValueError(f"URDFRobot: unknown end_link {end_link!r}; available links: {names}")
        self._pk = pk
        self.dtype, self.device = dtype, device
        self.chain = pk.build_serial_chain_from_urdf(data, end_link).to(dtype=dtype, device=device)
        self.joint_names = self.chain.get_joint_parameter_names()
        self.dof = len(self.joint_names)
        self.end_link = end_link
        fk = self.chain.forward_kinematics(torch.zeros(1, self.dof, dtype=dtype, device=device), end_only=False)
        self.link_names = list(fk.keys())
        lo, hi = self.chain.get_joint_limits()
        self.q_min = torch.as_tensor(lo, dtype=torch.float64)
        self.q_max = torch.as_tensor(hi, dtype=torch.float64)
        try:
            vlo, vhi = self.chain.get_joint_velocity_limits()
            v = torch.minimum(torch.as_tensor(vhi, dtype=torch.float64).abs(), torch.as_tensor(vlo, dtype=torch.float64).abs())
            self.qd_max = torch.where(v > 0, v, torch.full_like(v, float("inf")))
        except Exception:  # pragma: no cover - URDF without velocity limits
            self.qd_max = torch.full((self.dof,), float("inf"), dtype=torch.float64)
        self._sub: Dict[str, object] = {}
        self.sphere_radii = None

    # -- kinematics -----------------------------------------------------------------------------
    def check_links(self, links: Sequence[str]) -> None:
        """Raise ValueError naming the unknown links and listing the available ones."""
        bad = [k for k in links if k not in self.link_names]
        if bad:
            raise ValueError(f"URDFRobot: unknown link name(s) {bad}; available links: {self.link_names}")

    def _cast(self, q: Tensor) -> Tensor:
        if not isinstance(q, Tensor) or q.dim() != 2 or q.shape[1] != self.dof or not q.is_floating_point():
            raise ValueError(f"URDFRobot: expected q of shape (B, {self.dof}), got "
                             f"{tuple(q.shape) if isinstance(q, Tensor) else type(q).__name__}")
        return q.to(dtype=self.dtype, device=self.device) if self.device is not None else q.to(self.dtype)

    def link_poses(self, q: Tensor, links: Sequence[str]) -> Tensor:
        """``(B, L, 4, 4)`` world poses of the named links. Raises ValueError for unknown names."""
        self.check_links(links)
        fk = self.chain.forward_kinematics(self._cast(q), end_only=False)
        return torch.stack([fk[k].get_matrix() for k in links], 1).to(q.dtype)

    def _subchain(self, link: str):
        if link not in self._sub:
            sub = self._pk.SerialChain(self.chain, link).to(dtype=self.dtype, device=self.device)
            self._sub[link] = (sub, len(sub.get_joint_parameter_names()))
        return self._sub[link]

    def link_jacobian(self, q: Tensor, link: str, offsets: Tensor) -> Tensor:
        """``(B, P, 6, dof)`` geometric Jacobians (linear rows first) at ``P`` offset points ``(P, 3)`` of ``link``."""
        self.check_links([link])
        qc = self._cast(q)
        B, P = qc.shape[0], offsets.shape[0]
        sub, m = self._subchain(link)
        if m == 0:
            return qc.new_zeros(B, P, 6, self.dof).to(q.dtype)
        qs = qc[:, :m].unsqueeze(1).expand(B, P, m).reshape(B * P, m)
        loc = offsets.to(qc).unsqueeze(0).expand(B, P, 3).reshape(B * P, 3)
        J = sub.jacobian(qs, locations=loc).reshape(B, P, 6, m)
        if m < self.dof:
            J = torch.cat([J, J.new_zeros(B, P, 6, self.dof - m)], -1)
        return J.to(q.dtype)

    def sphere_centers(self, q: Tensor) -> Tensor:
        """Centres of the spheres set by :meth:`set_collision_spheres` ``(B, K, 3)``."""
        if self.sphere_radii is None:
            raise ValueError("URDFRobot: call set_collision_spheres first")
        return self._sphere_map.psi(q).reshape(q.shape[0], -1, 3)

    # -- task maps ------------------------------------------------------------------------------
    def point_map(self, points: Sequence[Tuple[str, Sequence[float]]], radii=None,
                  jacobian_mode: Optional[str] = None) -> "URDFPointMap":
        """Task map ``q ↦`` stacked positions ``(B, 3K)`` of points ``[(link_name, (x, y, z)), …]`` (link frame, m)."""
        return URDFPointMap(self, points, radii=radii, jacobian_mode=jacobian_mode)

    def set_collision_spheres(self, spheres: Sequence[Tuple[str, Sequence[float], float]]) -> "URDFPointMap":
        """Set collision spheres ``[(link, centre, radius), …]``; returns their control-point map."""
        radii = [float(s[2]) for s in spheres]
        self._sphere_map = self.point_map([(s[0], s[1]) for s in spheres], radii=radii)
        self.sphere_radii = self._sphere_map.radii
        return self._sphere_map

    def end_effector_map(self, offset: Sequence[float] = (0.0, 0.0, 0.0), jacobian_mode: Optional[str] = None):
        """``q ↦`` position ``(B, 3)`` of ``offset`` in the ``end_link`` frame."""
        return self.point_map([(self.end_link, offset)], jacobian_mode=jacobian_mode)

    def orientation_map(self, link: Optional[str] = None, axis: Optional[int] = None,
                        jacobian_mode: Optional[str] = None) -> "URDFOrientationMap":
        """``q ↦`` rotation of ``link`` (default ``end_link``): ``(B, 9)`` row-major or axis ``(B, 3)``."""
        return URDFOrientationMap(self, link or self.end_link, axis=axis, jacobian_mode=jacobian_mode)

    def limits(self, like: Tensor):
        """``{"q_min", "q_max", "qd_max"}`` as ``(dof,)`` tensors with ``like``'s dtype and device."""
        return {k: getattr(self, k).to(like) for k in ("q_min", "q_max", "qd_max")}


class URDFPointMap(TaskMap):
    """Stacked positions ``(B, 3K)`` of points on named links of a :class:`URDFRobot` (see module docstring).

    Raises:
        ValueError: unknown link names (listing the available ones), malformed offsets, negative radii.
    """

    def __init__(self, robot: URDFRobot, points, radii=None, jacobian_mode: Optional[str] = None):
        points = list(points)
        if not points:
            raise ValueError("URDFPointMap: need at least one point")
        links = [p[0] for p in points]
        robot.check_links(links)
        offs = torch.as_tensor([list(p[1]) for p in points], dtype=torch.float64)
        if offs.dim() != 2 or offs.shape[1] != 3:
            raise ValueError(f"URDFPointMap: offsets must be 3-vectors, got shape {tuple(offs.shape)}")
        super().__init__(robot.dof, 3 * len(points), jacobian_mode=jacobian_mode)
        self.robot = robot
        self.link_list = links
        self.register_buffer("offsets", offs, persistent=False)
        self.groups = {}
        for i, k in enumerate(links):
            self.groups.setdefault(k, []).append(i)
        if radii is not None:
            radii = torch.as_tensor(radii, dtype=torch.float64).reshape(-1)
            if radii.numel() != len(points) or bool((radii < 0).any()):
                raise ValueError(f"URDFPointMap: radii must be ({len(points)},) and non-negative")
        self.radii = radii
        self.num_points = len(points)

    def psi(self, q):
        B = q.shape[0]
        uniq = list(self.groups)
        T = self.robot.link_poses(q, uniq)  # (B, U, 4, 4)
        idx = torch.tensor([uniq.index(k) for k in self.link_list], device=q.device)
        Tk = T[:, idx]
        p = (Tk[..., :3, :3] @ self.offsets.to(q).unsqueeze(-1)).squeeze(-1) + Tk[..., :3, 3]
        return p.reshape(B, -1)

    def jacobian(self, q):
        B = q.shape[0]
        J = q.new_zeros(B, self.num_points, 3, self.in_dim)
        for link, ids in self.groups.items():
            Jl = self.robot.link_jacobian(q, link, self.offsets[ids].to(q))  # (B, P, 6, n)
            J[:, ids] = Jl[:, :, :3]
        return J.reshape(B, -1, self.in_dim)


class URDFOrientationMap(TaskMap):
    """Rotation of a link, row-major ``(B, 9)`` or one axis ``(B, 3)``; ``∂r_c/∂q_j = J_ω[:, j] × r_c``."""

    def __init__(self, robot: URDFRobot, link: str, axis: Optional[int] = None, jacobian_mode: Optional[str] = None):
        robot.check_links([link])
        if axis not in (None, 0, 1, 2):
            raise ValueError(f"URDFOrientationMap: axis must be None, 0, 1 or 2, got {axis!r}")
        super().__init__(robot.dof, 9 if axis is None else 3, jacobian_mode=jacobian_mode)
        self.robot, self.link, self.axis = robot, link, axis

    def psi(self, q):
        R = self.robot.link_poses(q, [self.link])[:, 0, :3, :3]
        return R.reshape(q.shape[0], 9) if self.axis is None else R[:, :, self.axis]

    def jacobian(self, q):
        B, n = q.shape
        R = self.robot.link_poses(q, [self.link])[:, 0, :3, :3]
        Jw = self.robot.link_jacobian(q, self.link, q.new_zeros(1, 3))[:, 0, 3:]  # (B, 3, n)
        cols = R.transpose(1, 2)  # (B, c, a)
        dR = torch.linalg.cross(Jw.transpose(1, 2).unsqueeze(1).expand(B, 3, n, 3),
                                cols.unsqueeze(2).expand(B, 3, n, 3))  # (B, c, n, a)
        J = dR.permute(0, 3, 1, 2)  # (B, a, c, n)
        return J.reshape(B, 9, n) if self.axis is None else J[:, :, self.axis]
