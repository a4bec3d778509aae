r"""The rotation group SO(3) and the rigid-motion group SE(3): Lie-group vocabulary and manifolds.

Two layers live in this module.

**Lie-group functions** (module level, all batched over leading dimensions):

* ``hat`` / ``vee``: ``(..., 3) <-> (..., 3, 3)`` skew matrices of so(3) and
  ``(..., 6) <-> (..., 4, 4)`` matrices of se(3).
* ``so3_exp`` / ``so3_log``: rotation vector ``ω (..., 3)`` <-> rotation matrix ``(..., 3, 3)``.
* ``se3_exp`` / ``se3_log``: twist ``ξ = [ρ, ω] (..., 6)`` <-> rigid motion ``(..., 4, 4)``.
* ``compose``, ``inverse``, ``adjoint``; ``so3_left_jacobian``, ``so3_right_jacobian`` and
  their inverses; quaternion and axis-angle conversions.

**Manifolds** :class:`SO3` and :class:`SE3` (subclasses of :class:`manifolds.Manifold`, hence of
``geoopt.Manifold``): points are matrices, tangent vectors are ambient matrices.

Conventions, written once:

* Rotation matrices act on column vectors, ``x' = R x``; ``R = so3_exp(ω)`` rotates by the
  angle ``|ω|`` (rad) about the axis ``ω / |ω|``, right-handed (same as scipy's
  ``Rotation.from_rotvec(ω).as_matrix()`` and e3nn's ``axis_angle_to_matrix``).
* **Quaternions are** ``[w, x, y, z]`` (scalar first, as e3nn, theseus, pytorch3d and
  geomstats; scipy and lietorch use ``[x, y, z, w]``). ``q`` and ``-q`` give the same
  rotation; :func:`matrix_to_quaternion` returns the one with ``w >= 0``.
* **SE(3) tangent vectors are** ``[translation, rotation] = [ρ, ω]`` (as lietorch, pypose and
  theseus); a rigid motion is ``[[R, t], [0, 0, 0, 1]]``.
* ``hat(ω) v = ω × v``. ``vee`` reads the skew-symmetric part, so ``vee(A) = vee(skew(A))``.

Numerics. Every coefficient that cancels near the angle 0 (``(θ - sin θ)/θ³`` and
``(1 - (θ/2) cot(θ/2))/θ²``) switches to its Taylor series below a dtype-dependent
angle (0.5 rad in float32, 0.1 rad in float64; the series are kept to the order that
makes the truncation error below the dtype's ulp there). ``(1 - cos θ)/θ²`` and
``sin θ/θ`` are evaluated through ``sinc`` without cancellation. Every ``torch.where``
gets sanitised inputs in the unselected branch ("double where"), so forward *and*
backward passes are finite at the identity and at the angle π, in float32 and float64.
The logarithm goes through the unit quaternion (Shepperd 1978 / Markley 2008 largest-pivot
extraction, branch-free) and ``θ = 2 atan2(|v|, w)``: accurate to a few ulps over
``[0, π]``, with no ``acos`` and no separate near-π branch. No function reads a tensor
value on the host.

Sources: J. Solà, J. Deray, D. Atchuthan, "A micro Lie theory for state estimation in
robotics", arXiv:1812.01537, 2018 (Exp/Log eqs. 138-145, Jacobians eqs. 143-146, SE(3)
eqs. 169-180); T. D. Barfoot, *State Estimation for Robotics*, 2017, §7.1 (SO(3), SE(3),
``V = J_l``, adjoints); S. W. Shepperd, "Quaternion from rotation matrix", J. Guidance
and Control 1(3), 1978, and F. L. Markley, "Unit quaternion from rotation matrix",
J. Guidance, Control, and Dynamics 31(2), 2008 (matrix -> quaternion).
"""

from __future__ import annotations

import math
from typing import Tuple

import torch

from ._numerics import safe_norm, safe_sqrt, sinc, sinc_half_sq
from .base import Manifold

__all__ = [
    "SO3",
    "SE3",
    "hat",
    "vee",
    "skew",
    "so3_exp",
    "so3_log",
    "se3_exp",
    "se3_log",
    "compose",
    "inverse",
    "adjoint",
    "so3_left_jacobian",
    "so3_right_jacobian",
    "so3_left_jacobian_inv",
    "so3_right_jacobian_inv",
    "quaternion_to_matrix",
    "quaternion_chord_angle",
    "matrix_to_quaternion",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "random_quaternion",
]

# Below these angles (rad) the cancelling coefficients use their Taylor series.
_TAYLOR_ANGLE = {
    torch.float16: 0.5,
    torch.bfloat16: 0.5,
    torch.float32: 0.5,
    torch.float64: 0.1,
}

LOG_VOLUME_SO3 = math.log(8 * math.pi**2)
"""``log vol(SO(3))`` for the metric ``½ tr(uᵀv)``: SO(3) is then S³ of radius 2 modulo ±1,
``vol = 2π² · 2³ / 2 = 8π²`` (equivalently ``∫_{|ω|<π} 2(1 - cos|ω|)/|ω|² dω``)."""


def _taylor_angle(dtype: torch.dtype) -> float:
    return _TAYLOR_ANGLE.get(dtype, 0.5)


# ---------------------------------------------------------------------- algebra
def skew(a: torch.Tensor) -> torch.Tensor:
    """Skew-symmetric part ``½ (A - Aᵀ)`` of ``A: (..., n, n)``."""
    return 0.5 * (a - a.transpose(-1, -2))


def _hat3(w: torch.Tensor) -> torch.Tensor:
    x, y, z = w.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack(
        [torch.stack([o, -z, y], -1), torch.stack([z, o, -x], -1), torch.stack([-y, x, o], -1)], -2
    )


def _vee3(m: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.stack(
        [m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1
    )


def hat(xi: torch.Tensor) -> torch.Tensor:
    """Lie-algebra matrix of a vector.

    Args:
        xi: ``(..., 3)`` rotation vector ``ω`` or ``(..., 6)`` twist ``[ρ, ω]``.

    Returns:
        ``(..., 3, 3)`` skew matrix with ``hat(ω) v = ω × v``, or ``(..., 4, 4)``
        ``[[hat(ω), ρ], [0, 0]]`` (Solà et al. 2018, eqs. 12 and 169).

    Raises:
        ValueError: the last dimension is neither 3 nor 6.
    """
    n = xi.shape[-1]
    if n == 3:
        return _hat3(xi)
    if n == 6:
        top = torch.cat([_hat3(xi[..., 3:]), xi[..., :3, None]], -1)
        return torch.cat([top, torch.zeros_like(top[..., :1, :])], -2)
    raise ValueError(f"hat expects a (..., 3) so(3) or (..., 6) se(3) vector, got shape {tuple(xi.shape)}")


def vee(m: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hat`: ``(..., 3, 3) -> (..., 3)`` or ``(..., 4, 4) -> (..., 6)`` ``[ρ, ω]``.

    The rotation part is read from the skew-symmetric part of the 3×3 block, so a matrix
    that is not exactly skew gives the vee of its projection onto the Lie algebra.

    Raises:
        ValueError: the matrix is not 3×3 or 4×4.
    """
    s = tuple(m.shape[-2:])
    if s == (3, 3):
        return _vee3(m)
    if s == (4, 4):
        return torch.cat([m[..., :3, 3], _vee3(m[..., :3, :3])], -1)
    raise ValueError(f"vee expects (..., 3, 3) or (..., 4, 4) matrices, got shape {tuple(m.shape)}")


# ---------------------------------------------------------------------- coefficients
def _angle(w: torch.Tensor) -> torch.Tensor:
    """``|ω|`` with a zero (not NaN) gradient at 0, shape ``(...,)``."""
    return safe_norm(w, dim=-1)


def _coef_c(theta: torch.Tensor) -> torch.Tensor:
    """``(θ - sin θ) / θ³`` (1/6 at 0), Taylor below the dtype's switch, double-where."""
    small = theta < _taylor_angle(theta.dtype)
    ts = torch.where(small, torch.ones_like(theta), theta)
    closed = (ts - torch.sin(ts)) / (ts * ts * ts)
    t2 = torch.where(small, theta, torch.zeros_like(theta)) ** 2
    taylor = 1 / 6 - t2 / 120 * (1 - t2 / 42 * (1 - t2 / 72 * (1 - t2 / 110)))
    return torch.where(small, taylor, closed)


def _coef_d(theta: torch.Tensor) -> torch.Tensor:
    """``(1 - (θ/2) cot(θ/2)) / θ²`` (1/12 at 0; = 1/θ² - (1 + cos θ)/(2 θ sin θ)), finite on [0, 2π)."""
    small = theta < _taylor_angle(theta.dtype)
    ts = torch.where(small, torch.ones_like(theta), theta)
    h = 0.5 * ts
    closed = (1 - h * torch.cos(h) / torch.sin(h)) / (ts * ts)
    t2 = torch.where(small, theta, torch.zeros_like(theta)) ** 2
    taylor = 1 / 12 + t2 * (1 / 720 + t2 * (1 / 30240 + t2 * (1 / 1209600 + t2 / 47900160)))
    return torch.where(small, taylor, closed)


def _eye(n, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(n, dtype=like.dtype, device=like.device)


# ---------------------------------------------------------------------- SO(3)
def so3_exp(w: torch.Tensor) -> torch.Tensor:
    """Rotation matrix of a rotation vector (Rodrigues).

    ``R = I + (sin θ/θ) W + ((1 - cos θ)/θ²) W²``, ``W = hat(ω)``, ``θ = |ω|`` (Solà et al.
    2018, eq. 132; Barfoot 2017, eq. 7.14). Both coefficients go through ``sinc``, so the
    value and gradient are exact at ``ω = 0`` (where ``dR = hat(dω)``).

    Args:
        w: ``(..., 3)`` rotation vector (rad); any length (``|ω| > π`` wraps around).

    Returns:
        ``(..., 3, 3)`` rotation matrix.
    """
    theta = _angle(w)[..., None, None]
    W = _hat3(w)
    return _eye(3, w) + sinc(theta) * W + sinc_half_sq(theta) * (W @ W)


# Below this |v| (sine of the half angle) the log uses the series of atan(r)/r, r = |v|/w:
# the closed form's gradient cancels like eps/|v|².
_ATAN_SWITCH = {torch.float64: (0.02, 5), torch.float32: (0.2, 7)}


def _quat_to_rotvec(q: torch.Tensor) -> torch.Tensor:
    """``2 atan2(|v|, w) v/|v|`` of a unit quaternion with ``w >= 0`` (series in ``|v|/w`` near 0)."""
    w, v = q[..., :1], q[..., 1:]
    n = safe_norm(v, keepdim=True)
    thr, terms = _ATAN_SWITCH.get(q.dtype, (0.2, 7))
    small = n < thr
    n_s = torch.where(small, torch.ones_like(n), n)
    w_s = torch.where(small, w, torch.ones_like(w))  # w > 0.97 there
    r2 = torch.where(small, n / w_s, torch.zeros_like(n)) ** 2
    # atan(r)/r = sum_k (-1)^k r^(2k) / (2k + 1)
    series = torch.full_like(r2, (-1) ** (terms - 1) / (2 * terms - 1))
    for k in range(terms - 2, -1, -1):
        series = (-1) ** k / (2 * k + 1) + r2 * series
    f = torch.where(small, (2 / w_s) * series, 2 * torch.atan2(n_s, w) / n_s)
    return f * v


def so3_log(R: torch.Tensor) -> torch.Tensor:
    """Rotation vector of a rotation matrix, the inverse of :func:`so3_exp` on ``|ω| <= π``.

    Computed as ``ω = 2 atan2(|v|, w) v / |v|`` from the unit quaternion ``[w, v]``,
    ``w >= 0``, of :func:`matrix_to_quaternion` (the atan-based log of Solà et al. 2018,
    eq. 141 / GTSAM, Sophus); accurate over the whole range ``θ ∈ [0, π]`` with finite
    gradients at 0 and π. At ``θ = π`` exactly, ``ω`` and ``-ω`` are both logarithms; the
    one returned has a positive component along the quaternion's largest pivot.

    Args:
        R: ``(..., 3, 3)`` rotation matrix (not checked; a matrix off SO(3) gives the log of
            the rotation of its normalised quaternion).

    Returns:
        ``(..., 3)`` rotation vector with ``|ω| <= π``.
    """
    return _quat_to_rotvec(matrix_to_quaternion(R))


def so3_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation angle ``|so3_log(R)|`` in ``[0, π]``, ``2 atan2(|v|, |w|)``, shape ``(...,)``."""
    q = matrix_to_quaternion(R)
    return 2 * torch.atan2(safe_norm(q[..., 1:], dim=-1), q[..., 0].abs())


def quaternion_chord_angle(qa, qb, ops):
    """Rotation angle between unit quaternions, ``4 asin(min(|qa − qb|, |qa + qb|) / 2)``.

    Sign-invariant (``q`` and ``−q`` are the same rotation) and float32-safe near the
    identity, unlike ``2 acos|⟨qa, qb⟩|`` (refs/kernels.md §2.3). Written against a
    :mod:`kernels` ops layer so it also runs on KeOps ``LazyTensor`` objects.

    Args:
        qa, qb: ``(..., 4)`` unit quaternions (broadcasting) or ``LazyTensor`` objects of dimension 4.
        ops: the ops layer.

    Returns:
        ``(..., 1)`` angle in ``[0, π]`` (rad).
    """
    m = ops.minimum(ops.sqdist(qa, qb), ops.sqnorm(qa + qb))
    return 4 * ops.asin(ops.clamp(0.5 * ops.sqrt(m), 0.0, 1.0))


def so3_left_jacobian(w: torch.Tensor) -> torch.Tensor:
    """Left Jacobian ``J_l(ω) = I + ((1 - cos θ)/θ²) W + ((θ - sin θ)/θ³) W²``, ``(..., 3) -> (..., 3, 3)``.

    Defined by ``Exp(ω + δ) ≈ Exp(J_l δ) Exp(ω)`` (Solà et al. 2018, eq. 145; Barfoot 2017,
    eq. 7.77). It is also the SE(3) ``V`` matrix.
    """
    theta = _angle(w)[..., None, None]
    W = _hat3(w)
    return _eye(3, w) + sinc_half_sq(theta) * W + _coef_c(theta) * (W @ W)


def so3_right_jacobian(w: torch.Tensor) -> torch.Tensor:
    """Right Jacobian ``J_r(ω) = J_l(-ω)``: ``Exp(ω + δ) ≈ Exp(ω) Exp(J_r δ)`` (Solà et al. 2018, eq. 143)."""
    return so3_left_jacobian(-w)


def so3_left_jacobian_inv(w: torch.Tensor) -> torch.Tensor:
    """``J_l(ω)⁻¹ = I - ½ W + (1/θ² - (1 + cos θ)/(2θ sin θ)) W²`` (Solà et al. 2018, eq. 146).

    Finite for ``|ω| < 2π`` (singular at 2π); Taylor coefficient near 0.
    """
    theta = _angle(w)[..., None, None]
    W = _hat3(w)
    return _eye(3, w) - 0.5 * W + _coef_d(theta) * (W @ W)


def so3_right_jacobian_inv(w: torch.Tensor) -> torch.Tensor:
    """``J_r(ω)⁻¹ = J_l(-ω)⁻¹ = I + ½ W + (...) W²`` (Solà et al. 2018, eq. 144)."""
    return so3_left_jacobian_inv(-w)


# ---------------------------------------------------------------------- SE(3)
def se3_exp(xi: torch.Tensor) -> torch.Tensor:
    """Rigid motion of a twist: ``[[Exp(ω), V ρ], [0, 1]]`` with ``V = J_l(ω)``.

    Solà et al. 2018, eqs. 172-174; Barfoot 2017, eq. 7.83.

    Args:
        xi: ``(..., 6)`` twist ``[ρ, ω]`` (translation part first).

    Returns:
        ``(..., 4, 4)`` homogeneous matrix.
    """
    rho, w = xi[..., :3], xi[..., 3:]
    R = so3_exp(w)
    t = (so3_left_jacobian(w) @ rho[..., None])
    return _assemble(R, t[..., 0])


def se3_log(T: torch.Tensor) -> torch.Tensor:
    """Twist ``[ρ, ω] = [J_l(ω)⁻¹ t, Log(R)]`` of a rigid motion ``(..., 4, 4) -> (..., 6)``.

    The inverse of :func:`se3_exp` for rotation angles in ``[0, π]`` (Solà et al. 2018,
    eq. 173; Barfoot 2017, eq. 7.84). The last row of ``T`` is not read.
    """
    w = so3_log(T[..., :3, :3])
    rho = (so3_left_jacobian_inv(w) @ T[..., :3, 3:])[..., 0]
    return torch.cat([rho, w], -1)


def _assemble(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``[[R, t], [0, 0, 0, 1]]`` from ``R: (..., 3, 3)``, ``t: (..., 3)`` (broadcast)."""
    shape = torch.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    R = R.expand(shape + (3, 3))
    t = t.expand(shape + (3,))
    top = torch.cat([R, t[..., None]], -1)
    bottom = torch.zeros(shape + (1, 4), dtype=R.dtype, device=R.device)
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], -2)


def compose(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Group product ``a b`` of rotations ``(..., 3, 3)`` or rigid motions ``(..., 4, 4)`` (broadcast)."""
    return a @ b


def inverse(x: torch.Tensor) -> torch.Tensor:
    """Group inverse: ``Rᵀ`` on SO(3), ``[[Rᵀ, -Rᵀ t], [0, 1]]`` on SE(3) (no matrix inversion).

    Raises:
        ValueError: ``x`` is not ``(..., 3, 3)`` or ``(..., 4, 4)``.
    """
    s = tuple(x.shape[-2:])
    if s == (3, 3):
        return x.transpose(-1, -2)
    if s == (4, 4):
        Rt = x[..., :3, :3].transpose(-1, -2)
        return _assemble(Rt, -(Rt @ x[..., :3, 3:])[..., 0])
    raise ValueError(f"inverse expects (..., 3, 3) or (..., 4, 4) matrices, got shape {tuple(x.shape)}")


def adjoint(x: torch.Tensor) -> torch.Tensor:
    """Adjoint matrix ``Ad_X`` with ``X hat(ξ) X⁻¹ = hat(Ad_X ξ)``.

    SO(3): ``Ad_R = R`` (3×3). SE(3), for twists ordered ``[ρ, ω]``:
    ``Ad_T = [[R, hat(t) R], [0, R]]`` (6×6; Solà et al. 2018, eq. 178; Barfoot 2017, eq. 7.46
    with the same ordering).

    Args:
        x: ``(..., 3, 3)`` rotation or ``(..., 4, 4)`` rigid motion.

    Returns:
        ``(..., 3, 3)`` or ``(..., 6, 6)``.

    Raises:
        ValueError: ``x`` is not 3×3 or 4×4.
    """
    s = tuple(x.shape[-2:])
    if s == (3, 3):
        return x
    if s == (4, 4):
        R, t = x[..., :3, :3], x[..., :3, 3]
        top = torch.cat([R, _hat3(t) @ R], -1)
        bottom = torch.cat([torch.zeros_like(R), R], -1)
        return torch.cat([top, bottom], -2)
    raise ValueError(f"adjoint expects (..., 3, 3) or (..., 4, 4) matrices, got shape {tuple(x.shape)}")


# ---------------------------------------------------------------------- quaternions
def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrix of a quaternion ``[w, x, y, z]`` ``(..., 4) -> (..., 3, 3)``.

    The quaternion is normalised first (a zero quaternion gives NaN). ``R = I + 2 w hat(v)
    + 2 hat(v)²`` for the unit ``q = [w, v]`` (Solà et al. 2018, eq. 115 rearranged); agrees
    with ``e3nn.o3.quaternion_to_matrix``.
    """
    q = q / safe_norm(q, keepdim=True)
    w, v = q[..., :1, None], q[..., 1:]
    V = _hat3(v)
    return _eye(3, q) + 2 * w * V + 2 * (V @ V)


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Unit quaternion ``[w, x, y, z]`` with ``w >= 0`` of a rotation matrix ``(..., 3, 3) -> (..., 4)``.

    Branch-free largest-pivot method (Shepperd 1978; Markley 2008): the four candidate
    vectors ``4 q_i q`` (``i = w, x, y, z``) are formed from sums and differences of entries
    of ``R``, the one of largest norm (``>= 2`` for a rotation, so no division by a small
    number) is normalised, and the sign is chosen so that ``w >= 0``. At ``w = 0`` (angle π)
    the sign makes the pivot component positive. A matrix off SO(3) gives the normalised
    candidate, i.e. a rotation near it.
    """
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    cand = torch.stack(
        [
            torch.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
            torch.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
            torch.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
        ],
        -2,
    )  # (..., 4 candidates, 4 components)
    diag = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    idx = diag.argmax(-1)
    c = torch.gather(cand, -2, idx[..., None, None].expand(idx.shape + (1, 4)))[..., 0, :]
    q = c / safe_norm(c, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def random_quaternion(*size, dtype=None, device=None, generator=None) -> torch.Tensor:
    """Uniform (Haar) unit quaternions ``(*size, 4)``, ``w >= 0``: normalised standard Gaussians."""
    q = torch.randn(tuple(size) + (4,), dtype=dtype, device=device, generator=generator)
    q = q / safe_norm(q, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def axis_angle_to_matrix(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotation by ``angle`` (rad) about ``axis``: ``(..., 3), (...) -> (..., 3, 3)``.

    The axis is normalised (a zero axis gives NaN). Same convention as
    ``e3nn.o3.axis_angle_to_matrix``.
    """
    axis = axis / safe_norm(axis, keepdim=True)
    return so3_exp(axis * angle[..., None])


def matrix_to_axis_angle(R: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(axis (..., 3), angle (...))`` with ``angle ∈ [0, π]`` and ``R = axis_angle_to_matrix(axis, angle)``.

    At the identity (angle 0) the axis is undefined; ``[0, 0, 1]`` is returned there.
    Unlike ``e3nn.o3.matrix_to_axis_angle`` (``acos`` of the trace, axis from the skew part)
    this is accurate near 0 and π, and never synchronises with the host.
    """
    q = matrix_to_quaternion(R)
    v = q[..., 1:]
    n = safe_norm(v, keepdim=True)
    angle = 2 * torch.atan2(n[..., 0], q[..., 0])
    zero = n == 0
    ez = torch.zeros_like(v)
    ez[..., 2] = 1
    axis = torch.where(zero, ez, v / torch.where(zero, torch.ones_like(n), n))
    return axis, angle


# ---------------------------------------------------------------------- manifolds
def _identity_like(x: torch.Tensor) -> torch.Tensor:
    return _eye(x.shape[-1], x).expand(x.shape)


class SO3(Manifold):
    r"""The rotation group SO(3) as a Riemannian manifold with its bi-invariant metric.

    Points are rotation matrices ``(*batch, 3, 3)``. Tangent vectors at ``x`` are ambient
    matrices ``u = x hat(ω)`` (left trivialisation; ``xᵀu`` is skew). The metric
    ``<u, v>_x = ½ tr(uᵀ v)`` makes ``|x hat(ω)| = |ω|``, so distances are rotation angles
    in rad. Formulas (Solà et al. 2018; Barfoot 2017, §7.1):

    * ``expmap(x, u) = x Exp(vee(xᵀu))``, ``logmap(x, y) = x hat(Log(xᵀ y))``; with a
      bi-invariant metric the Riemannian and group exponentials coincide.
    * ``dist(x, y) = |Log(xᵀ y)| = 2 atan2(|v|, |w|)`` of the quaternion of ``xᵀ y``,
      accurate near 0 in float32 and near π.
    * Parallel transport along ``t -> x Exp(t ξ)``: the Levi-Civita connection of a
      bi-invariant metric is ``∇_X Y = ½ [X, Y]`` on left-invariant fields, so the body
      coordinates solve ``η' = -½ ξ × η``, ``η(1) = Exp(-ξ/2) η(0)``; in ambient form
      ``transp(v) = x M (xᵀ v) M`` with ``M = Exp(ξ/2)``.
    * ``egrad2rgrad(x, g) = 2 x skew(xᵀ g)`` (the factor 2 undoes the ½ of the metric).
    * Volume ``8π²`` (SO(3) ≅ S³ of radius 2 modulo ±1); ``random_base`` is the Haar
      (uniform) measure with ``base_log_prob = -log 8π²``.

    **Special points.** Values and gradients are finite at ``x == y`` and at rotation
    angle π (the cut locus), where ``logmap`` returns one of the two minimising
    geodesics (see :func:`so3_log`).

    Example:
        >>> M = SO3()
        >>> x, y = M.random(2, 3, 3, dtype=torch.float64)
        >>> torch.allclose(M.expmap(x, M.logmap(x, y)), y)
        True
    """

    name = "SO3"
    reversible = False
    ndim = 2

    def __init__(self):
        super().__init__()
        self.event_shape = (3, 3)
        self.dim = 3

    # Lie-group vocabulary, for discoverability.
    exp = staticmethod(so3_exp)
    log = staticmethod(so3_log)
    hat = staticmethod(_hat3)
    vee = staticmethod(_vee3)
    left_jacobian = staticmethod(so3_left_jacobian)
    right_jacobian = staticmethod(so3_right_jacobian)
    left_jacobian_inv = staticmethod(so3_left_jacobian_inv)
    right_jacobian_inv = staticmethod(so3_right_jacobian_inv)

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _rotation_error(R: torch.Tensor):
        orth = (R.transpose(-1, -2) @ R - _eye(3, R)).abs().amax()
        det = torch.linalg.det(R)
        return orth, det

    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=0.0):
        if x.numel() == 0:
            return True, None
        orth, det = self._rotation_error(x)
        tol = atol + rtol
        if orth > tol:
            return False, f"rotation matrices must satisfy xᵀx = I: max |xᵀx - I| = {float(orth):.3g} > {tol:.3g}"
        if bool((det < 0).any()):
            return False, "rotation matrices must have det +1, got det -1 (a reflection)"
        return True, None

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=0.0):
        if u.numel() == 0:
            return True, None
        a = x.transpose(-1, -2) @ u
        err = (a + a.transpose(-1, -2)).abs().amax()
        tol = atol + rtol * float(u.abs().amax())
        if err > tol:
            return False, f"tangent vectors must satisfy xᵀu skew: max |xᵀu + uᵀx| = {float(err):.3g} > {tol:.3g}"
        return True, None

    # ------------------------------------------------------------------ metric
    def inner(self, x, u, v=None, *, keepdim=False):
        """``½ tr(uᵀ v)``, shape ``(*batch,)`` (``(*batch, 1, 1)`` with ``keepdim``)."""
        v = u if v is None else v
        return 0.5 * (u * v).sum((-1, -2), keepdim=keepdim)

    def norm(self, x, u, *, keepdim=False):
        """``|u|_x = |u|_F / √2`` with a zero gradient at ``u = 0``."""
        return torch.linalg.vector_norm(u, dim=(-2, -1), keepdim=keepdim) * (0.5**0.5)

    def proju(self, x, u):
        """Orthogonal projection ``x skew(xᵀ u)`` onto the tangent space at ``x``."""
        return x @ skew(x.transpose(-1, -2) @ u)

    def egrad2rgrad(self, x, u):
        """Riemannian gradient ``2 x skew(xᵀ g)`` of the Euclidean gradient ``g`` (metric ``½ tr``)."""
        return 2 * self.proju(x, u)

    def projx(self, x):
        """Nearest rotation in Frobenius norm: ``U diag(1, 1, det(U Vᵀ)) Vᵀ`` from the SVD ``x = U S Vᵀ``."""
        U, _, Vh = torch.linalg.svd(x)
        d = torch.linalg.det(U @ Vh)
        ones = torch.ones_like(d)
        D = torch.stack([ones, ones, d], -1)
        return (U * D[..., None, :]) @ Vh

    def dist(self, x, y, *, keepdim=False):
        """Rotation angle of ``xᵀ y`` in ``[0, π]`` (rad)."""
        d = so3_angle(x.transpose(-1, -2) @ y)
        return d[..., None, None] if keepdim else d

    has_kernel_formula = True
    kernel_feature_dim = 4

    def kernel_features(self, x):
        """Unit quaternion ``[w, x, y, z]`` of each rotation, ``(*batch, 4)`` (see :meth:`Manifold.kernel_features`)."""
        return matrix_to_quaternion(x)

    def kernel_dist(self, a, b, ops):
        """Rotation angle from quaternion features, :func:`quaternion_chord_angle`."""
        return quaternion_chord_angle(a, b, ops)

    # ------------------------------------------------------------------ exp / log
    def expmap(self, x, u):
        """``x Exp(vee(xᵀ u))`` (the skew part of ``xᵀu`` is used)."""
        return x @ so3_exp(_vee3(x.transpose(-1, -2) @ u))

    def logmap(self, x, y):
        """``x hat(Log(xᵀ y))``, of norm ``dist(x, y)``."""
        return x @ _hat3(so3_log(x.transpose(-1, -2) @ y))

    # ------------------------------------------------------------------ transport
    def _transp_body(self, x, xi, v):
        M = so3_exp(0.5 * xi)
        return x @ M @ (x.transpose(-1, -2) @ v) @ M

    def transp_follow_expmap(self, x, u, v):
        """Parallel transport of ``v`` along ``t -> expmap(x, t u)``: ``x M (xᵀ v) M``, ``M = Exp(ξ/2)``."""
        return self._transp_body(x, _vee3(x.transpose(-1, -2) @ u), v)

    def transp(self, x, y, v):
        """Parallel transport of ``v`` from ``x`` to ``y`` along the minimising geodesic."""
        return self._transp_body(x, so3_log(x.transpose(-1, -2) @ y), v)

    def expmap_transp(self, x, u, v):
        """``(expmap(x, u), transp_follow_expmap(x, u, v))`` sharing ``Exp(ξ/2)``."""
        M = so3_exp(0.5 * _vee3(x.transpose(-1, -2) @ u))
        xM = x @ M
        return xM @ M, xM @ (x.transpose(-1, -2) @ v) @ M

    # ------------------------------------------------------------------ sampling
    def random(self, *size, dtype=None, device=None, generator=None):
        """Haar-uniform rotations (from uniform unit quaternions); ``size`` is the full shape ``(..., 3, 3)``."""
        size = self._check_size(size)
        return quaternion_to_matrix(random_quaternion(*size[:-2], dtype=dtype, device=device, generator=generator))

    random_uniform = random

    def random_normal_tangent(self, x, std=1.0, generator=None):
        """Standard Gaussian of the metric at ``x``: ``x hat(ω)``, ``ω ~ N(0, std² I₃)``.

        Isotropic in ``½ tr(uᵀv)`` (each unit tangent direction has variance ``std²``), so
        :meth:`wrapped_normal`'s ``std`` is in rad of rotation angle. (The base class's
        projected ambient Gaussian would have variance ``std²/2`` per direction here.)
        """
        w = torch.randn(x.shape[:-2] + (3,), dtype=x.dtype, device=x.device, generator=generator)
        return x @ _hat3(self._expand_batch(std, x)[..., 0] * w)

    def random_base(self, *size, dtype=None, device=None, generator=None):
        """The base distribution: Haar (uniform w.r.t. the Riemannian volume)."""
        return self.random(*size, dtype=dtype, device=device, generator=generator)

    def log_volume(self) -> float:
        """``log 8π²``, the log-volume of SO(3) under ``½ tr(uᵀv)``."""
        return LOG_VOLUME_SO3

    def base_log_prob(self, x):
        """``-log 8π²``, shape ``(*batch,)``."""
        return torch.full(x.shape[:-2], -LOG_VOLUME_SO3, dtype=x.dtype, device=x.device)

    def origin_point(self, x):
        """The identity, broadcast to the shape of ``x``."""
        return _identity_like(x)

    def extra_repr(self):
        return ""


class SE3(Manifold):
    r"""Rigid motions SE(3) as a Riemannian manifold with the left-invariant metric of unit weights.

    Points are ``(*batch, 4, 4)`` matrices ``[[R, t], [0, 0, 0, 1]]``; tangent vectors are
    ambient ``(*batch, 4, 4)`` matrices ``u = [[R hat(ω), R ρ], [0, 0]]`` (last row zero),
    i.e. ``x⁻¹ u = hat([ρ, ω])``. The metric is ``<u, u>_x = |ρ|² + |ω|² =
    ½ tr(u_Rᵀ u_R) + |u_t|²``, left-invariant (not right-invariant).

    Because ``|ρ| = |R ρ|``, this metric is exactly the product metric of SO(3) (with
    ``½ tr``) and ℝ³ in the coordinates ``(R, t)``, so the **Riemannian** geodesics are
    ``(R Exp(s ω), t + s R ρ)``: rotation and translation move independently. These are
    **not** the one-parameter subgroups ``x se3_exp(s ξ)`` (screw motions) — the group
    exponential of a non-bi-invariant metric is not its Riemannian exponential. So here:

    * ``expmap(x, u) = [[R Exp(vee(Rᵀ u_R)), t + u_t], [0, 1]]``; ``logmap`` its inverse;
      ``dist = sqrt(θ² + |t_y - t_x|²)`` with ``θ`` the SO(3) angle of ``R_xᵀ R_y``.
    * ``transp`` is the exact Levi-Civita parallel transport: the SO(3) transport on the
      rotation block, the identity on the translation column. It preserves the metric.
    * :meth:`group_expmap` / :meth:`group_logmap` give the screw-motion maps
      ``x se3_exp(vee(x⁻¹ u))`` / ``x hat(se3_log(x⁻¹ y))`` for users who want the group
      structure (e.g. SE(3) interpolation along screws).
    * ``random_base``: Haar rotation × standard normal translation, with
      ``base_log_prob = -log 8π² - |t|²/2 - (3/2) log 2π`` w.r.t. the Riemannian volume
      (Haar on SO(3) × Lebesgue on ℝ³, the left Haar measure of SE(3)).

    This is the geometry used by SE(3) flow-matching and diffusion models that treat
    frames as SO(3) × ℝ³ (e.g. FrameDiff, FoldFlow).
    """

    name = "SE3"
    reversible = False
    ndim = 2

    def __init__(self):
        super().__init__()
        self.event_shape = (4, 4)
        self.dim = 6
        self._so3 = SO3()

    exp = staticmethod(se3_exp)
    log = staticmethod(se3_log)
    hat = staticmethod(hat)
    vee = staticmethod(vee)

    # ------------------------------------------------------------------ checks
    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=0.0):
        if x.numel() == 0:
            return True, None
        ok, reason = self._so3._check_point_on_manifold(x[..., :3, :3], atol=atol, rtol=rtol)
        if not ok:
            return False, "rotation block: " + reason
        last = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=x.dtype, device=x.device)
        err = (x[..., 3, :] - last).abs().amax()
        if err > atol + rtol:
            return False, f"the last row must be [0, 0, 0, 1]: max deviation {float(err):.3g} > {atol + rtol:.3g}"
        return True, None

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=0.0):
        if u.numel() == 0:
            return True, None
        ok, reason = self._so3._check_vector_on_tangent(x[..., :3, :3], u[..., :3, :3], atol=atol, rtol=rtol)
        if not ok:
            return False, "rotation block: " + reason
        err = u[..., 3, :].abs().amax()
        if err > atol:
            return False, f"the last row of a tangent vector must be 0: max |u[3, :]| = {float(err):.3g} > {atol:.3g}"
        return True, None

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _split(x):
        return x[..., :3, :3], x[..., :3, 3]

    # ------------------------------------------------------------------ metric
    def inner(self, x, u, v=None, *, keepdim=False):
        """``½ tr(u_Rᵀ v_R) + u_t · v_t`` (``= ρ_u·ρ_v + ω_u·ω_v``), shape ``(*batch,)``."""
        v = u if v is None else v
        r = 0.5 * (u[..., :3, :3] * v[..., :3, :3]).sum((-1, -2)) + (u[..., :3, 3] * v[..., :3, 3]).sum(-1)
        return r[..., None, None] if keepdim else r

    def norm(self, x, u, *, keepdim=False):
        return safe_sqrt(self.inner(x, u, keepdim=keepdim))

    def proju(self, x, u):
        """``[[R skew(Rᵀ u_R), u_t], [0, 0]]``: orthogonal projection onto the tangent space."""
        R = x[..., :3, :3]
        uR = R @ skew(R.transpose(-1, -2) @ u[..., :3, :3])
        top = torch.cat([uR, u[..., :3, 3:].expand(uR.shape[:-1] + (1,))], -1)
        return torch.cat([top, torch.zeros_like(top[..., :1, :])], -2)

    def egrad2rgrad(self, x, u):
        """``[[2 R skew(Rᵀ g_R), g_t], [0, 0]]`` (the rotation block carries the metric's ½)."""
        p = self.proju(x, u)
        w = torch.ones(4, 4, dtype=p.dtype, device=p.device)
        w[:3, :3] = 2
        return p * w

    def projx(self, x):
        """Project the rotation block onto SO(3) (SVD) and reset the last row to ``[0, 0, 0, 1]``."""
        return _assemble(self._so3.projx(x[..., :3, :3]), x[..., :3, 3])

    def dist(self, x, y, *, keepdim=False):
        """``sqrt(θ² + |t_y - t_x|²)``, ``θ`` the rotation angle of ``R_xᵀ R_y``."""
        theta = so3_angle(x[..., :3, :3].transpose(-1, -2) @ y[..., :3, :3])
        d = safe_norm(torch.cat([theta[..., None], y[..., :3, 3] - x[..., :3, 3]], -1), dim=-1)
        return d[..., None, None] if keepdim else d

    has_kernel_formula = True
    kernel_feature_dim = 7

    def kernel_features(self, x):
        """``[quaternion of R, t]``, ``(*batch, 7)`` (see :meth:`Manifold.kernel_features`)."""
        return torch.cat([matrix_to_quaternion(x[..., :3, :3]), x[..., :3, 3]], -1)

    def kernel_dist(self, a, b, ops):
        """``sqrt(θ² + |t_a − t_b|²)`` with ``θ`` from :func:`quaternion_chord_angle`."""
        theta = quaternion_chord_angle(ops.slice(a, 0, 4), ops.slice(b, 0, 4), ops)
        return ops.sqrt(theta * theta + ops.sqdist(ops.slice(a, 4, 7), ops.slice(b, 4, 7)))

    # ------------------------------------------------------------------ exp / log
    def expmap(self, x, u):
        """Riemannian exponential ``(R Exp(vee(Rᵀ u_R)), t + u_t)`` (see the class docstring)."""
        R, t = self._split(x)
        return _assemble(self._so3.expmap(R, u[..., :3, :3]), t + u[..., :3, 3])

    def logmap(self, x, y):
        """Riemannian logarithm ``[[R hat(Log(R_xᵀ R_y)), t_y - t_x], [0, 0]]``."""
        Rx, tx = self._split(x)
        Ry, ty = self._split(y)
        uR = self._so3.logmap(Rx, Ry)
        shape = torch.broadcast_shapes(uR.shape[:-1], (ty - tx).shape)
        top = torch.cat([uR.expand(shape[:-1] + (3, 3)), (ty - tx).expand(shape)[..., None]], -1)
        return torch.cat([top, torch.zeros_like(top[..., :1, :])], -2)

    def group_expmap(self, x, u):
        """Screw motion ``x se3_exp(vee(x⁻¹ u))`` (the group exponential, not a Riemannian geodesic)."""
        return x @ se3_exp(vee(inverse(x) @ u))

    def group_logmap(self, x, y):
        """``x hat(se3_log(x⁻¹ y))``, inverse of :meth:`group_expmap`."""
        return x @ hat(se3_log(inverse(x) @ y))

    # ------------------------------------------------------------------ transport
    def _with_rot(self, v, vR):
        top = torch.cat([vR, v[..., :3, 3:].expand(vR.shape[:-1] + (1,))], -1)
        return torch.cat([top, torch.zeros_like(top[..., :1, :])], -2)

    def transp_follow_expmap(self, x, u, v):
        """Levi-Civita transport along ``expmap(x, s u)``: SO(3) transport of ``v_R``, ``v_t`` unchanged."""
        return self._with_rot(v, self._so3.transp_follow_expmap(x[..., :3, :3], u[..., :3, :3], v[..., :3, :3]))

    def transp(self, x, y, v):
        """Levi-Civita transport from ``x`` to ``y`` along the minimising geodesic."""
        return self._with_rot(v, self._so3.transp(x[..., :3, :3], y[..., :3, :3], v[..., :3, :3]))

    def expmap_transp(self, x, u, v):
        R, t = self._split(x)
        Ry, vR = self._so3.expmap_transp(R, u[..., :3, :3], v[..., :3, :3])
        return _assemble(Ry, t + u[..., :3, 3]), self._with_rot(v, vR)

    # ------------------------------------------------------------------ sampling
    def random(self, *size, dtype=None, device=None, generator=None):
        """Haar rotation and standard normal translation; ``size`` is the full shape ``(..., 4, 4)``."""
        size = self._check_size(size)
        q = random_quaternion(*size[:-2], dtype=dtype, device=device, generator=generator)
        t = torch.randn(tuple(size[:-2]) + (3,), dtype=q.dtype, device=device, generator=generator)
        return _assemble(quaternion_to_matrix(q), t)

    random_uniform = random

    def random_normal_tangent(self, x, std=1.0, generator=None):
        """Standard Gaussian of the metric at ``x``: rotation part ``R hat(ω)``, translation ``ρ``,
        ``(ρ, ω) ~ N(0, std² I₆)`` (isotropic in ``½ tr(u_Rᵀ v_R) + u_t · v_t``)."""
        w = torch.randn(x.shape[:-2] + (6,), dtype=x.dtype, device=x.device, generator=generator)
        w = self._expand_batch(std, x)[..., 0] * w
        u = torch.zeros_like(x)
        u[..., :3, :3] = x[..., :3, :3] @ _hat3(w[..., 3:])
        u[..., :3, 3] = w[..., :3]
        return u

    def random_base(self, *size, dtype=None, device=None, generator=None):
        """The base distribution: Haar rotation × standard normal translation."""
        return self.random(*size, dtype=dtype, device=device, generator=generator)

    def base_log_prob(self, x):
        """``-log 8π² - |t|²/2 - (3/2) log 2π`` w.r.t. the Riemannian volume, shape ``(*batch,)``."""
        t = x[..., :3, 3]
        return -LOG_VOLUME_SO3 - 0.5 * (t * t).sum(-1) - 1.5 * math.log(2 * math.pi)

    def origin_point(self, x):
        """The identity, broadcast to the shape of ``x``."""
        return _identity_like(x)

    def extra_repr(self):
        return ""
