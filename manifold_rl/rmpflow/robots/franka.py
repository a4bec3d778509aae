"""Built-in Franka Emika Panda: modified-DH forward kinematics, analytic Jacobians, ``J̇q̇``, collision spheres.

Kinematics follow the published modified (Craig) Denavit–Hartenberg table of the Panda (Franka
Control Interface documentation, "Robot and interface specifications",
https://frankaemika.github.io/docs/control_parameters.html#denavithartenberg-parameters): frame ``i``
is reached from frame ``i − 1`` by

    ``T_{i−1,i} = RotX(α_i) · TransX(a_i) · RotZ(q_i) · TransZ(d_i)``   (Craig 2005, Eq. 3.6)

with the rows below (row 8 is the flange, ``q_8 = 0``). The DH frames coincide with the
``panda_link1 … panda_link8`` frames of the ``franka_description`` URDF, so collision spheres given in
URDF link frames can be used directly.

Jacobians at points ``p`` rigidly attached to link ``L`` are the geometric ones
``J_j = z_j × (p − o_j)`` for ``j ≤ L`` (``z_j``, ``o_j``: axis and origin of joint ``j``; Siciliano et
al., "Robotics", Eq. 3.30), and ``J̇q̇`` is its exact time derivative (see
:func:`point_kinematics`): ``J̇q̇ = Σ_j q̇_j [ż_j × (p − o_j) + z_j × (ṗ − ȯ_j)]`` with
``ż_j = ω_j × z_j``, ``ω_j = Σ_{i≤j} z_i q̇_i``, ``ȯ_j = Σ_{i<j} z_i × (o_j − o_i) q̇_i``.

Units: metres, radians, seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..core import JointTaskMap, TaskMapOutput, constant_eye, scope_cache, tensor_version
from ..obstacles import _sum_small

__all__ = [
    "FRANKA_DH_A",
    "FRANKA_DH_D",
    "FRANKA_DH_ALPHA",
    "FRANKA_Q_MIN",
    "FRANKA_Q_MAX",
    "FRANKA_QD_MAX",
    "FRANKA_FLANGE_TO_TCP",
    "FRANKA_COLLISION_SPHERES",
    "FRANKA_DEFAULT_Q",
    "franka_fk",
    "franka_urdf",
    "point_kinematics",
    "FrankaPanda",
    "LinkPointMap",
    "LinkOrientationMap",
]

# modified-DH table (Franka FCI docs); rows 1..7 joints, row 8 flange.
FRANKA_DH_A = (0.0, 0.0, 0.0, 0.0825, -0.0825, 0.0, 0.088, 0.0)
FRANKA_DH_D = (0.333, 0.0, 0.316, 0.0, 0.384, 0.0, 0.0, 0.107)
FRANKA_DH_ALPHA = (0.0, -math.pi / 2, math.pi / 2, math.pi / 2, -math.pi / 2, math.pi / 2, math.pi / 2, 0.0)
# joint position limits (rad), FCI docs "Limits for Panda".
FRANKA_Q_MIN = (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973)
FRANKA_Q_MAX = (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973)
# joint velocity limits (rad/s), FCI docs "Limits for Panda" (q̇_max = 2.1750 for joints 1–4, 2.6100 for 5–7).
FRANKA_QD_MAX = (2.1750, 2.1750, 2.1750, 2.1750, 2.6100, 2.6100, 2.6100)
# Franka Hand: TCP 0.1034 m along the flange z-axis, hand rotated by −π/4 about z (franka_description
# ``panda_hand`` joint rpy (0, 0, −π/4); FCI docs "Franka Hand": F_T_EE translation 0.1034 m).
FRANKA_FLANGE_TO_TCP = (0.0, 0.0, 0.1034)
FRANKA_HAND_YAW = -math.pi / 4
# RMP2 franka_config.yaml default_q (ref sheet §2.3).
FRANKA_DEFAULT_Q = (0.0, -0.7854, 0.0, -2.4435, 0.0, 1.6581, 0.75)

_S = math.sqrt(0.5)
# Collision spheres (link index, centre in that link's DH / URDF frame [m], radius [m]).
# Derived here (not copied from a published set): spheres strung along the kinematic skeleton between
# consecutive joint origins (origin of frame i+1 in frame i = (a, −sin α · d, cos α · d)), spaced at most
# about one radius apart so the union covers a capsule of ≈ 0.87 r around each segment, plus the joint
# housings, the base and the Franka Hand (width ±0.1 m along the hand y-axis = (√½, √½, 0) in the flange
# frame). Radii 0.06–0.09 m roughly envelop the Panda's link shells (outer diameter ≈ 0.12–0.14 m).
# Link 0 is the fixed base (Jacobian zero). 25 spheres.
FRANKA_COLLISION_SPHERES: Tuple[Tuple[int, Tuple[float, float, float], float], ...] = (
    (0, (0.0, 0.0, 0.05), 0.09),
    (0, (0.0, 0.0, 0.13), 0.08),
    (1, (0.0, 0.0, -0.17), 0.075),
    (1, (0.0, 0.0, -0.10), 0.075),
    (2, (0.0, 0.0, 0.0), 0.08),
    (2, (0.0, -0.08, 0.0), 0.07),
    (2, (0.0, -0.16, 0.0), 0.07),
    (2, (0.0, -0.24, 0.0), 0.07),
    (3, (0.0, 0.0, -0.07), 0.07),
    (3, (0.04, 0.0, 0.0), 0.07),
    (4, (0.0, 0.0, 0.0), 0.07),
    (4, (-0.04, 0.05, 0.0), 0.065),
    (4, (-0.0825, 0.11, 0.0), 0.065),
    (5, (0.0, 0.0, -0.20), 0.065),
    (5, (0.0, 0.0, -0.13), 0.06),
    (5, (0.0, 0.0, -0.06), 0.06),
    (6, (0.0, 0.0, 0.0), 0.065),
    (6, (0.05, 0.0, 0.0), 0.06),
    (7, (0.0, 0.0, 0.0), 0.06),
    (7, (0.0, 0.0, 0.07), 0.055),
    (8, (0.0, 0.0, 0.04), 0.05),
    (8, (0.06 * _S, 0.06 * _S, 0.04), 0.045),
    (8, (-0.06 * _S, -0.06 * _S, 0.04), 0.045),
    (8, (0.02 * _S, 0.02 * _S, 0.09), 0.025),
    (8, (-0.02 * _S, -0.02 * _S, 0.09), 0.025),
)


def _table(dtype, device) -> Tuple[Tensor, Tensor, Tensor]:
    a = torch.tensor(FRANKA_DH_A, dtype=dtype, device=device)
    d = torch.tensor(FRANKA_DH_D, dtype=dtype, device=device)
    al = torch.tensor(FRANKA_DH_ALPHA, dtype=dtype, device=device)
    return a, d, al


def _check_q(q: Tensor, n: int, what: str) -> None:
    if not isinstance(q, Tensor) or q.dim() != 2 or q.shape[1] != n or not q.is_floating_point():
        shape = tuple(q.shape) if isinstance(q, Tensor) else type(q).__name__
        raise ValueError(f"{what}: expected a floating tensor of shape (B, {n}), got {shape}")


@lru_cache(maxsize=16)
def _fk_constants(dtype: torch.dtype, device: torch.device) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Constant parts of ``T_i = RotX(α_i) TransX(a_i) · RotZ(θ_i) TransZ(d_i)`` (memoised per dtype/device).

    ``RotZ(θ) TransZ(d) = C + cos θ · E_c + sin θ · E_s`` (``C`` holds the ``z`` row and ``d``), so
    ``T_i = A_i C_i + cos θ_i · A_i E_c + sin θ_i · A_i E_s`` with ``A_i = RotX(α_i) TransX(a_i)``.
    Returns ``(AC (7, 4, 4), AEc (7, 4, 4), AEs (7, 4, 4), T_flange (4, 4))`` (rows 1…7; row 8 has θ = 0).
    Built outside inference mode (memoised tensors must be usable in autograd afterwards).
    """
    with torch.inference_mode(False):
        return _fk_constants_build(dtype, device)


def _fk_constants_build(dtype, device):
    a = torch.tensor(FRANKA_DH_A, dtype=torch.float64)
    d = torch.tensor(FRANKA_DH_D, dtype=torch.float64)
    al = torch.tensor(FRANKA_DH_ALPHA, dtype=torch.float64)
    ca, sa = torch.cos(al), torch.sin(al)
    A = torch.zeros(8, 4, 4, dtype=torch.float64)
    A[:, 0, 0] = 1.0
    A[:, 0, 3] = a
    A[:, 1, 1], A[:, 1, 2] = ca, -sa
    A[:, 2, 1], A[:, 2, 2] = sa, ca
    A[:, 3, 3] = 1.0
    C = torch.zeros(8, 4, 4, dtype=torch.float64)
    C[:, 2, 2] = 1.0
    C[:, 2, 3] = d
    C[:, 3, 3] = 1.0
    Ec = torch.zeros(4, 4, dtype=torch.float64)
    Ec[0, 0] = Ec[1, 1] = 1.0
    Es = torch.zeros(4, 4, dtype=torch.float64)
    Es[0, 1], Es[1, 0] = -1.0, 1.0
    AC, AEc, AEs = A @ C, A @ Ec, A @ Es
    flange = AC[7] + AEc[7]
    return tuple(t.to(dtype=dtype, device=device) for t in (AC[:7], AEc[:7], AEs[:7], flange))


def franka_fk(q: Tensor) -> Tensor:
    """World poses of the Panda link frames 1…8 (8 = flange) from the modified-DH table.

    Args:
        q: ``(B, 7)`` joint angles [rad].

    Returns:
        ``(B, 8, 4, 4)`` homogeneous transforms base → ``panda_link{i}``, i = 1…8 [m].

    Raises:
        ValueError: ``q`` is not a floating ``(B, 7)`` tensor.
    """
    _check_q(q, 7, "franka_fk")
    AC, AEc, AEs, flange = _fk_constants(q.dtype, q.device)
    # Craig's T = RotX(α) TransX(a) RotZ(θ) TransZ(d), as constant parts times cos θ / sin θ
    B = q.shape[0]
    Tl = torch.addcmul(torch.addcmul(AC, torch.cos(q).view(B, 7, 1, 1), AEc), torch.sin(q).view(B, 7, 1, 1), AEs)  # (B, 7, 4, 4)
    Ts = Tl.unbind(1)
    T = Ts[0]
    frames = [T]
    for i in range(1, 7):
        T = torch.bmm(T, Ts[i])
        frames.append(T)
    frames.append(T @ flange)
    return torch.stack(frames, 1)


def _chain(fk, q: Tensor, qd: Optional[Tensor], n: int) -> dict:
    """Joint-level kinematic quantities shared by all point / orientation maps of one chain.

    Cached per :func:`~manifold_rl.rmpflow.core.scope_cache` scope (one :meth:`RMPFlow.pushforward`)
    on the identity and version of ``q`` (and ``qd``), so the control-point, end-effector and
    orientation maps share one forward-kinematics pass. Keys: ``allf (B, F+1, 4, 4)`` (index L = link L,
    0 = base identity), ``z, o, zo = z × o`` ``(B, n, 3)``; with ``qd``: ``P (B, n+1, 5, 3)`` the prefix
    sums ``Σ_{j<L} q̇_j [ż_j, ż_j × o_j, z_j, z_j × ȯ_j, z_j × o_j]`` (row L; stored as ``Pinc`` without
    the zero row of link 0, see :func:`_padded_prefix`), see :func:`point_kinematics`.
    """
    cache = scope_cache()
    key = ("chain", id(fk), id(q), id(qd) if qd is not None else None)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None and hit[0] is q and hit[1] == tensor_version(q) and hit[2] is qd and (
                qd is None or hit[3] == tensor_version(qd)):
            return hit[4]
        if qd is not None:  # reuse the position part computed for the same q
            base = cache.get(("chain", id(fk), id(q), None))
            if base is not None and base[0] is q and base[1] == tensor_version(q):
                ch = dict(base[4])
                _chain_velocity(ch, qd, n)
                cache[key] = (q, tensor_version(q), qd, tensor_version(qd), ch)
                return ch
    frames = fk(q)
    B = q.shape[0]
    eye = constant_eye(4, frames.dtype, frames.device).expand(B, 1, 4, 4)
    allf = torch.cat([eye, frames], 1)
    zo_cols = frames[:, :n, :3, 2:4]
    z, o = zo_cols[..., 0], zo_cols[..., 1]
    hz = (z @ _levi_civita(z.dtype, z.device)).reshape(B, 3 * n, 3)  # rows (j, a): hat(z_j)
    ch = {"allf": allf, "z": z, "o": o, "zo": torch.linalg.cross(z, o), "hz": hz}
    if qd is not None:
        _chain_velocity(ch, qd, n)
    if cache is not None:
        cache[key] = (q, tensor_version(q), qd, None if qd is None else tensor_version(qd), ch)
    return ch


@lru_cache(maxsize=16)
def _levi_civita(dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(3, 9)`` with ``z @ E = vec(hat(z))`` (row-major), ``hat(z) p = z × p`` (built outside inference mode)."""
    with torch.inference_mode(False):
        E = torch.zeros(3, 3, 3, dtype=torch.float64)
        E[2, 1, 0], E[1, 2, 0] = 1.0, -1.0  # hat[1, 0] = z_2 ... (c, a, b) → hat_ab
        E[2, 0, 1], E[0, 2, 1] = -1.0, 1.0
        E[1, 0, 2], E[0, 1, 2] = 1.0, -1.0
        return E.reshape(3, 9).to(dtype=dtype, device=device)


def _chain_velocity(ch: dict, qd: Tensor, n: int) -> None:
    z, o, zo = ch["z"], ch["o"], ch["zo"]
    qdu = qd.unsqueeze(-1)
    zq = z * qdu  # (B, n, 3)
    w = torch.cumsum(zq, 1)  # ω_j = Σ_{i≤j} z_i q̇_i
    zdot = torch.linalg.cross(w, z)
    zoq = zo * qdu
    # ȯ_j = Σ_{i<j} q̇_i z_i × (o_j − o_i)
    odot = torch.linalg.cross(w - zq, o) - (torch.cumsum(zoq, 1) - zoq)
    zdq = zdot * qdu
    X = torch.stack([zdq, torch.linalg.cross(zdq, o), zq, torch.linalg.cross(zq, odot), zoq], 2)  # (B, n, 5, 3)
    ch["Pinc"] = torch.cumsum(X, 1)  # (B, n, 5, 3), row j = Σ_{i≤j}: the row of link L ≥ 1 is L − 1


def _padded_prefix(ch: dict) -> Tensor:
    """``(B, n+1, 5, 3)`` prefix sums with a zero row for link 0 (row L = Σ_{j<L}), built on demand."""
    P = ch.get("P")
    if P is None:
        Pinc = ch["Pinc"]
        P = ch["P"] = torch.cat([torch.zeros_like(Pinc[:, :1]), Pinc], 1)
    return P


def point_kinematics(frames: Tensor, links: Tensor, offsets: Tensor, n: int, qd: Optional[Tensor] = None,
                     need_jacobian: bool = True):
    """Positions, geometric Jacobians and ``J̇q̇`` of points attached to the links of a revolute serial chain.

    Joint ``j`` (0-based) rotates about the z-axis of ``frames[:, j]`` through its origin; a point on
    link ``L`` (``L = 0``: fixed base; ``L = j + 1``: moved by joints ``0…j``) is moved by joints ``j < L``.

    Args:
        frames: ``(B, F, 4, 4)`` world poses, ``F ≥ n``; ``frames[:, j]`` for ``j < n`` are the joint
            frames, the frame of link ``L ≥ 1`` is ``frames[:, L − 1]`` (``F > n``: fixed frames after the last joint).
        links: ``(K,)`` long, link index of each point in ``[0, F]``.
        offsets: ``(K, 3)`` point coordinates in its link frame [m] (for ``L = 0``: world coordinates).
        n: number of joints.
        qd: ``(B, n)`` joint velocities, or None (then ``J̇q̇`` is not computed).
        need_jacobian: compute ``J``.

    Returns:
        ``(p, J, jdot_qd)``: ``(B, K, 3)``, ``(B, K, 3, n)`` or None, ``(B, K, 3)`` or None.
        Formulas: ``J_j = z_j × (p − o_j)``; ``J̇q̇ = Σ_j q̇_j [(ω_j × z_j) × (p − o_j) + z_j × (ṗ − ȯ_j)]``
        (Siciliano et al., "Robotics", Eq. 3.30 and its time derivative).
    """
    B = frames.shape[0]
    # link frame for each point (base = identity)
    eye = torch.eye(4, dtype=frames.dtype, device=frames.device).expand(B, 1, 4, 4)
    allf = torch.cat([eye, frames], 1)  # (B, F+1, 4, 4); index L = link L
    Tk = allf[:, links]  # (B, K, 4, 4)
    p = (Tk[..., :3, :3] @ offsets.to(frames.dtype).unsqueeze(-1)).squeeze(-1) + Tk[..., :3, 3]
    if not need_jacobian and qd is None:
        return p, None, None
    z = frames[:, :n, :3, 2]  # (B, n, 3)
    o = frames[:, :n, :3, 3]
    mask = (torch.arange(n, device=frames.device).unsqueeze(0) < links.unsqueeze(1)).to(frames.dtype)  # (K, n)
    r = p.unsqueeze(2) - o.unsqueeze(1)  # (B, K, n, 3)
    zz = z.unsqueeze(1).expand_as(r)
    Jc = torch.linalg.cross(zz, r) * mask.unsqueeze(-1)  # (B, K, n, 3)
    J = Jc.transpose(-1, -2) if need_jacobian else None  # (B, K, 3, n)
    jd = None
    if qd is not None:
        zq = z * qd.unsqueeze(-1)  # (B, n, 3)
        w = torch.cumsum(zq, 1)  # ω_j = Σ_{i≤j} z_i q̇_i
        zdot = torch.linalg.cross(w, z)
        s = torch.cumsum(torch.linalg.cross(zq, o), 1)  # Σ_{i≤j} q̇_i z_i × o_i
        w_ex = w - zq  # Σ_{i<j}
        s_ex = s - torch.linalg.cross(zq, o)
        odot = torch.linalg.cross(w_ex, o) - s_ex  # (B, n, 3)
        pdot = (Jc * qd.unsqueeze(1).unsqueeze(-1)).sum(2)  # (B, K, 3)
        term = torch.linalg.cross(zdot.unsqueeze(1).expand_as(r), r) + torch.linalg.cross(
            zz, pdot.unsqueeze(2) - odot.unsqueeze(1))
        jd = (term * (mask.unsqueeze(-1) * qd.unsqueeze(1).unsqueeze(-1))).sum(2)
    return p, J, jd


def _rotation_kinematics(frames: Tensor, link: int, R_off: Tensor, qd: Optional[Tensor], n: int):
    """Rotation ``R = R_link R_off`` (B, 3, 3), its Jacobian (B, 9, n) (row-major flattening) and ``J̇q̇`` (B, 9).

    ``Ṙ = [ω]× R`` with ``ω = Σ_{j<L} z_j q̇_j``; ``R̈|_{q̈=0} = [α]× R + [ω]×² R``, ``α = Σ_j (ω_j × z_j) q̇_j``.
    """
    B = frames.shape[0]
    if link == 0:
        R = R_off.to(frames.dtype).expand(B, 3, 3)
        return R, frames.new_zeros(B, 9, n), (frames.new_zeros(B, 9) if qd is not None else None)
    R = frames[:, link - 1, :3, :3] @ R_off.to(frames.dtype)
    z = frames[:, :n, :3, 2]
    mask = (torch.arange(n, device=frames.device) < link).to(frames.dtype)  # (n,)
    zm = z * mask.unsqueeze(-1)  # (B, n, 3)
    # d(R[:, a, c])/dq_j = (z_j × r_c)_a,  r_c = R[:, :, c]
    cols = R.transpose(1, 2)  # (B, 3(c), 3(a))
    dR = torch.linalg.cross(zm.unsqueeze(1).expand(B, 3, n, 3), cols.unsqueeze(2).expand(B, 3, n, 3))  # (B, c, n, a)
    J = dR.permute(0, 3, 1, 2).reshape(B, 9, n)
    jd = None
    if qd is not None:
        zq = zm * qd.unsqueeze(-1)
        w = torch.cumsum(zq, 1)
        alpha = torch.linalg.cross(w, zm) * qd.unsqueeze(-1)
        alpha = alpha.sum(1)  # (B, 3)
        om = w[:, -1]  # (B, 3)
        ac = torch.linalg.cross(alpha.unsqueeze(1).expand(B, 3, 3), cols) + torch.linalg.cross(
            om.unsqueeze(1).expand(B, 3, 3), torch.linalg.cross(om.unsqueeze(1).expand(B, 3, 3), cols))  # (B, c, a)
        jd = ac.transpose(1, 2).reshape(B, 9)
    return R, J, jd


def _rot_z(yaw: float) -> Tensor:
    c, s = math.cos(yaw), math.sin(yaw)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


class LinkPointMap(JointTaskMap):
    """Stacked positions of points attached to the links of a serial chain: ``q (B, n) ↦ (B, 3K)``.

    ``x = [p_1, …, p_K]`` (each ``(3,)``, metres); analytic geometric Jacobian and exact ``J̇q̇``
    (:func:`point_kinematics`); ψ, J and J̇q̇ share one forward-kinematics call in analytic mode.

    Args:
        fk: callable ``q (B, n) → frames (B, F, 4, 4)`` (joint frames first, see :func:`point_kinematics`).
        n: number of joints. links: ``(K,)`` link indices. offsets: ``(K, 3)`` in link frames [m].
        radii: optional ``(K,)`` sphere radii [m] (stored as ``self.radii``; not used by the map).
        jacobian_mode: ``"analytic"`` (default), ``"forward"`` or ``"fd"`` (for cross-checks).
    """

    def __init__(self, fk, n: int, links, offsets, radii=None, jacobian_mode: Optional[str] = None):
        links = torch.as_tensor(links, dtype=torch.long).reshape(-1)
        offsets = torch.as_tensor(offsets, dtype=torch.float64)
        if offsets.dim() != 2 or offsets.shape[1] != 3 or offsets.shape[0] != links.shape[0] or links.numel() == 0:
            raise ValueError(f"LinkPointMap: offsets must be (K, 3) with K = len(links) ≥ 1, got {tuple(offsets.shape)} "
                             f"and {links.numel()} links")
        super().__init__(n, 3 * links.numel(), jacobian_mode=jacobian_mode)
        self.fk = fk
        self.register_buffer("links", links, persistent=False)
        self.register_buffer("offsets", offsets, persistent=False)
        if radii is not None:
            radii = torch.as_tensor(radii, dtype=torch.float64).reshape(-1)
            if radii.shape[0] != links.shape[0]:
                raise ValueError(f"LinkPointMap: radii must be ({links.numel()},), got {tuple(radii.shape)}")
            if bool((radii < 0).any()):
                raise ValueError("LinkPointMap: radii must be non-negative")
        self.radii = radii
        self.num_points = links.numel()

    def points(self, q: Tensor) -> Tensor:
        """``(B, K, 3)`` point positions [m]."""
        p, _, _ = point_kinematics(self.fk(q), self.links.to(q.device), self.offsets.to(q.device, q.dtype),
                                   self.in_dim, None, need_jacobian=False)
        return p

    def psi(self, q):
        return self.points(q).reshape(q.shape[0], -1)

    def _all(self, q, qd):
        B = q.shape[0]
        frames = self.fk(q)
        if qd is None:
            # jacobian only: pass zero velocity for the helper's shapes, drop J̇q̇
            p, J, _ = point_kinematics(frames, self.links.to(q.device), self.offsets.to(q.device, q.dtype),
                                       self.in_dim, None, need_jacobian=True)
            return p.reshape(B, -1), J.reshape(B, -1, self.in_dim), None
        p, J, jd = point_kinematics(frames, self.links.to(q.device), self.offsets.to(q.device, q.dtype),
                                    self.in_dim, qd)
        return p.reshape(B, -1), J.reshape(B, -1, self.in_dim), jd.reshape(B, -1)

    def _evaluate(self, q, qd, mode):
        if mode != "analytic":
            return super()._evaluate(q, qd, mode)
        return self._fast(q, qd)

    def _fast(self, q, qd):
        """Analytic ψ, J q̇, J, J̇ q̇ from the shared chain quantities (:func:`_chain`), using prefix sums:
        with ``A, B', C, D, E`` the sums ``Σ_{j<L} q̇_j [ż_j, ż_j × o_j, z_j, z_j × ȯ_j, z_j × o_j]``,
        ``ṗ = C × p − E`` and ``J̇q̇ = A × p − B' + C × ṗ − D`` (the formulas of :func:`point_kinematics`
        with the sums over joints factored out)."""
        B, n = q.shape
        ch = _chain(self.fk, q, qd, n)
        links = self.links
        if links.device != q.device:
            links = links.to(q.device)
        Tk = ch["allf"].index_select(1, links)  # (B, K, 4, 4)
        # p = R o + t = [R | t] (o, 1): one product with the memoised homogeneous offsets (K, 1, 4)
        p = _sum_small(Tk[..., :3, :] * self._homogeneous_offsets(q))  # (B, K, 3)
        K = p.shape[1]
        # J_j = z_j × p − z_j × o_j for j < L: one product hat(z) (B, 3n, 3) @ pᵀ (B, 3, K)
        Jc = torch.bmm(ch["hz"], p.transpose(1, 2)).reshape(B, n, 3, K) - ch["zo"].unsqueeze(-1)
        J = (Jc * self._mask(n, q)).permute(0, 3, 2, 1).reshape(B, 3 * K, n)
        idx, base = self._prefix_index(n, q.device)
        Pk = (_padded_prefix(ch) if base else ch["Pinc"]).index_select(1, idx)  # (B, K, 5, 3)
        A, Bp, C, D, E = Pk.unbind(2)
        pdot = torch.linalg.cross(C, p, dim=-1) - E
        jd = torch.linalg.cross(A, p, dim=-1) - Bp + torch.linalg.cross(C, pdot, dim=-1) - D
        return TaskMapOutput(p.reshape(B, -1), pdot.reshape(B, -1), J, jd.reshape(B, -1))

    def _homogeneous_offsets(self, like):
        off = self.offsets
        key = (like.dtype, like.device, id(off), tensor_version(off))
        c = self.__dict__.get("_hoff_cache")
        if c is None or c[0] != key or c[1] is not off:
            with torch.inference_mode(False):
                h = torch.cat([off, torch.ones_like(off[:, :1])], 1).to(like.device, like.dtype).unsqueeze(1)
            c = (key, off, h)
            if not (off.requires_grad or off.is_inference()):
                self.__dict__["_hoff_cache"] = c
        return c[2]

    def _mask(self, n, like):
        key = (n, like.dtype, like.device)
        c = self.__dict__.get("_mask_cache")
        if c is None or c[0] != key:
            with torch.inference_mode(False):  # memoised: must stay usable by autograd
                links = self.links.to(like.device)
                m = (torch.arange(n, device=like.device).unsqueeze(1) < links.unsqueeze(0)).to(like.dtype).unsqueeze(1)  # (n, 1, K)
            c = (key, m)
            self.__dict__["_mask_cache"] = c
        return c[1]

    def _prefix_index(self, n, device):
        c = self.__dict__.get("_pidx_cache")
        if c is None or c[0] != (n, device):
            with torch.inference_mode(False):
                links = self.links.to(device).clamp_max(n)
                base = bool((links == 0).any())  # a point on the fixed base: use the zero-padded rows
                c = ((n, device), (links if base else links - 1, base))
            self.__dict__["_pidx_cache"] = c
        return c[1]


class LinkOrientationMap(JointTaskMap):
    """Orientation of a link frame: the rotation matrix (row-major, ``(B, 9)``) or one of its axes (``(B, 3)``).

    ``R = R_link · R_off``; ``Ṙ = [ω]× R`` (angular velocity ``ω = Σ_{j<L} z_j q̇_j``), so the Jacobian of
    column ``c`` is ``z_j × r_c`` and ``J̇q̇ = α × r_c + ω × (ω × r_c)`` with ``α = Σ_j (ω_j × z_j) q̇_j``.
    The matrix form feeds an SO(3) leaf (reshape to ``(B, 3, 3)``); the axis form an axis-alignment leaf.

    Args:
        fk, n: as :class:`LinkPointMap`. link: link index (≥ 1). R_off: ``(3, 3)`` fixed rotation in the link frame.
        axis: None (full matrix) or 0/1/2 (the x/y/z axis of the rotated frame).
    """

    def __init__(self, fk, n: int, link: int, R_off: Optional[Tensor] = None, axis: Optional[int] = None,
                 jacobian_mode: Optional[str] = None):
        if axis not in (None, 0, 1, 2):
            raise ValueError(f"LinkOrientationMap: axis must be None, 0, 1 or 2, got {axis!r}")
        super().__init__(n, 9 if axis is None else 3, jacobian_mode=jacobian_mode)
        self.fk, self.link, self.axis = fk, int(link), axis
        R_off = torch.eye(3, dtype=torch.float64) if R_off is None else torch.as_tensor(R_off, dtype=torch.float64)
        if R_off.shape != (3, 3):
            raise ValueError(f"LinkOrientationMap: R_off must be (3, 3), got {tuple(R_off.shape)}")
        self.register_buffer("R_off", R_off, persistent=False)

    def _all(self, q, qd):
        B = q.shape[0]
        R, J, jd = _rotation_kinematics(self.fk(q), self.link, self.R_off.to(q.device), qd, self.in_dim)
        if self.axis is None:
            return R.reshape(B, 9), J, jd
        idx = torch.tensor([0, 3, 6], device=q.device) + self.axis
        return R[:, :, self.axis], J[:, idx], (jd[:, idx] if jd is not None else None)

    def _evaluate(self, q, qd, mode):
        if mode != "analytic" or self.link == 0:
            return super()._evaluate(q, qd, mode)
        return self._fast(q, qd)

    def _fast(self, q, qd):
        """Analytic evaluation from the shared chain quantities (:func:`_chain`): with
        ``ω = Σ_{j<L} z_j q̇_j`` and ``α = Σ_{j<L} q̇_j ż_j`` (prefix sums), column ``c`` of ``R`` has
        ``ṙ_c = ω × r_c`` and ``J̇q̇ = α × r_c + ω × (ω × r_c)``; ``J_j = z_j × r_c`` for ``j < L``."""
        B, n = q.shape
        ch = _chain(self.fk, q, qd, n)
        L = self.link
        R_off = self.R_off
        if R_off.dtype != q.dtype or R_off.device != q.device:
            R_off = R_off.to(q.device, q.dtype)
        R = ch["allf"][:, L, :3, :3] @ R_off  # (B, 3, 3)
        cols = R.transpose(1, 2)  # (B, c, a)
        if self.axis is not None:
            cols = cols[:, self.axis:self.axis + 1]
        nj = min(L, n)
        zL = ch["z"][:, :nj]
        dR = torch.linalg.cross(zL.unsqueeze(1), cols.unsqueeze(2), dim=-1)  # (B, c, j, a)
        if nj < n:
            dR = torch.cat([dR, dR.new_zeros(B, dR.shape[1], n - nj, 3)], 2)
        PL = ch["Pinc"][:, nj - 1]  # (B, 5, 3) = Σ_{j<nj} (nj ≥ 1 here)
        alpha, om = PL[:, 0].unsqueeze(1), PL[:, 2].unsqueeze(1)
        rdot = torch.linalg.cross(om.expand_as(cols), cols, dim=-1)
        ac = torch.linalg.cross(alpha.expand_as(cols), cols, dim=-1) + torch.linalg.cross(om.expand_as(cols), rdot, dim=-1)
        if self.axis is not None:
            return TaskMapOutput(cols[:, 0], rdot[:, 0], dR[:, 0].transpose(1, 2), ac[:, 0])
        J = dR.permute(0, 3, 1, 2).reshape(B, 9, n)
        return TaskMapOutput(R.reshape(B, 9), rdot.transpose(1, 2).reshape(B, 9), J, ac.transpose(1, 2).reshape(B, 9))


@dataclass
class FrankaPanda:
    """The 7-DoF Franka Emika Panda with the built-in DH kinematics and collision spheres.

    Attributes (tensors are float64 on CPU; use ``.to(x)`` on them):
        q_min, q_max: ``(7,)`` joint position limits [rad]; qd_max: ``(7,)`` velocity limits [rad/s]
        (FCI docs "Limits for Panda"). default_q: ``(7,)`` RMP2's default configuration.
        sphere_links, sphere_offsets, sphere_radii: the collision spheres (:data:`FRANKA_COLLISION_SPHERES`).

    Example::

        robot = FrankaPanda()
        cp = robot.control_point_map()          # q (B, 7) ↦ (B, 3K) sphere centres, radii robot.sphere_radii
        ee = robot.end_effector_map()           # q ↦ TCP position (B, 3)
        rot = robot.orientation_map()           # q ↦ TCP rotation matrix (B, 9)
    """

    include_base: bool = False

    dof = 7

    def __post_init__(self):
        sph = [s for s in FRANKA_COLLISION_SPHERES if self.include_base or s[0] > 0]
        self.sphere_links = torch.tensor([s[0] for s in sph], dtype=torch.long)
        self.sphere_offsets = torch.tensor([s[1] for s in sph], dtype=torch.float64)
        self.sphere_radii = torch.tensor([s[2] for s in sph], dtype=torch.float64)
        self.q_min = torch.tensor(FRANKA_Q_MIN, dtype=torch.float64)
        self.q_max = torch.tensor(FRANKA_Q_MAX, dtype=torch.float64)
        self.qd_max = torch.tensor(FRANKA_QD_MAX, dtype=torch.float64)
        self.default_q = torch.tensor(FRANKA_DEFAULT_Q, dtype=torch.float64)

    @staticmethod
    def fk(q: Tensor) -> Tensor:
        """``(B, 7) → (B, 8, 4, 4)`` link frames 1…8 (:func:`franka_fk`)."""
        return franka_fk(q)

    def sphere_centers(self, q: Tensor) -> Tensor:
        """``(B, K, 3)`` world centres of the collision spheres [m] (radii: ``self.sphere_radii``)."""
        _check_q(q, 7, "FrankaPanda.sphere_centers")
        p, _, _ = point_kinematics(franka_fk(q), self.sphere_links.to(q.device),
                                   self.sphere_offsets.to(q.device, q.dtype), 7, None, need_jacobian=False)
        return p

    def control_point_map(self, links: Optional[Sequence[int]] = None, jacobian_mode: Optional[str] = None) -> LinkPointMap:
        """Task map ``q ↦`` stacked collision-sphere centres ``(B, 3K)`` (spheres on ``links`` only if given).

        The returned map has ``.radii`` ``(K,)``. Raises ValueError for link indices outside 0…8 or an empty selection.
        """
        sel = torch.ones_like(self.sphere_links, dtype=torch.bool)
        if links is not None:
            links = list(links)
            bad = [k for k in links if not (0 <= int(k) <= 8)]
            if bad:
                raise ValueError(f"FrankaPanda.control_point_map: link indices must lie in 0…8, got {bad}")
            sel = torch.isin(self.sphere_links, torch.tensor(links, dtype=torch.long))
            if not bool(sel.any()):
                raise ValueError(f"FrankaPanda.control_point_map: no collision spheres on links {links}")
        return LinkPointMap(franka_fk, 7, self.sphere_links[sel], self.sphere_offsets[sel], self.sphere_radii[sel],
                            jacobian_mode=jacobian_mode)

    def point_map(self, points: Sequence[Tuple[int, Sequence[float]]], jacobian_mode: Optional[str] = None) -> LinkPointMap:
        """Task map to arbitrary points ``[(link, (x, y, z)), …]`` given in link frames [m]."""
        links = [int(p[0]) for p in points]
        if any(not (0 <= k <= 8) for k in links):
            raise ValueError(f"FrankaPanda.point_map: link indices must lie in 0…8, got {links}")
        return LinkPointMap(franka_fk, 7, links, [list(p[1]) for p in points], jacobian_mode=jacobian_mode)

    def end_effector_map(self, frame: str = "tcp", jacobian_mode: Optional[str] = None) -> LinkPointMap:
        """Task map ``q ↦`` end-effector position ``(B, 3)``: ``"tcp"`` (0.1034 m beyond the flange) or ``"flange"``."""
        if frame not in ("tcp", "flange"):
            raise ValueError(f"end_effector_map: frame must be 'tcp' or 'flange', got {frame!r}")
        off = FRANKA_FLANGE_TO_TCP if frame == "tcp" else (0.0, 0.0, 0.0)
        return LinkPointMap(franka_fk, 7, [8], [list(off)], jacobian_mode=jacobian_mode)

    def orientation_map(self, axis: Optional[int] = None, jacobian_mode: Optional[str] = None) -> LinkOrientationMap:
        """Task map ``q ↦`` hand orientation: rotation matrix ``(B, 9)`` (row-major) or one axis ``(B, 3)``.

        The hand frame is the flange rotated by −π/4 about z (franka_description ``panda_hand``).
        """
        return LinkOrientationMap(franka_fk, 7, 8, _rot_z(FRANKA_HAND_YAW), axis=axis, jacobian_mode=jacobian_mode)

    def limits(self, like: Tensor) -> Dict[str, Tensor]:
        """``{"q_min", "q_max", "qd_max"}`` as ``(7,)`` tensors with ``like``'s dtype and device."""
        return {k: getattr(self, k).to(like) for k in ("q_min", "q_max", "qd_max")}


def franka_urdf(name: str = "panda_dh") -> str:
    """A kinematic-only URDF string of the Panda written from the same modified-DH table.

    Joint ``i`` origin: ``xyz = (a_i, −sin α_i · d_i, cos α_i · d_i)``, ``rpy = (α_i, 0, 0)``, axis z —
    since ``RotX(α) TransX(a) RotZ(θ) TransZ(d) = Trans(RotX(α)(a, 0, d)) RotX(α) RotZ(θ)``. Links
    ``panda_link0 … panda_link8`` (joint 8 fixed), limits from :data:`FRANKA_Q_MIN` / ``_MAX`` / ``_QD_MAX``.
    """
    parts = [f'<?xml version="1.0"?>\n<robot name="{name}">', '  <link name="panda_link0"/>']
    for i in range(8):
        a, d, al = FRANKA_DH_A[i], FRANKA_DH_D[i], FRANKA_DH_ALPHA[i]
        xyz = (a, -math.sin(al) * d, math.cos(al) * d)
        parts.append(f'  <link name="panda_link{i + 1}"/>')
        jtype = "revolute" if i < 7 else "fixed"
        j = [f'  <joint name="panda_joint{i + 1}" type="{jtype}">',
             f'    <parent link="panda_link{i}"/>', f'    <child link="panda_link{i + 1}"/>',
             f'    <origin xyz="{xyz[0]!r} {xyz[1]!r} {xyz[2]!r}" rpy="{al!r} 0 0"/>']
        if i < 7:
            j.append('    <axis xyz="0 0 1"/>')
            j.append(f'    <limit lower="{FRANKA_Q_MIN[i]}" upper="{FRANKA_Q_MAX[i]}" effort="87" velocity="{FRANKA_QD_MAX[i]}"/>')
        j.append('  </joint>')
        parts += j
    parts.append('</robot>')
    return "\n".join(parts)
