"""Tests for the Lie groups SO(3) / SE(3): group functions, manifolds, special angles, oracles.

Oracles: scipy.spatial.transform.Rotation (rotation vectors, matrices, quaternions in
scipy's [x, y, z, w] order), e3nn.o3 (quaternion / axis-angle conventions, Wigner-D),
finite differences (Jacobians, parallel transport), geoopt (ManifoldParameter).
"""

from __future__ import annotations

import math

import geoopt
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import manifolds
from manifolds import SE3, SO3
from manifolds.lie import (
    adjoint,
    axis_angle_to_matrix,
    compose,
    hat,
    inverse,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_to_matrix,
    se3_exp,
    se3_log,
    so3_exp,
    so3_left_jacobian,
    so3_left_jacobian_inv,
    so3_log,
    so3_right_jacobian,
    so3_right_jacobian_inv,
    vee,
)

F32, F64 = torch.float32, torch.float64
PI = math.pi
SPECIAL = [0.0, 1e-8, 1e-4, 1e-2, 0.3, 1.0, 3.0, PI - 1e-6, PI]
dtypes = pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def unit(n, g, dtype=F64):
    a = torch.randn(n, 3, dtype=dtype, generator=g)
    return a / a.norm(dim=-1, keepdim=True)


def rotvec_at(theta, n=8, dtype=F64, seed=0):
    return unit(n, gen(seed), dtype) * theta


def same_rotvec(a, b, atol):
    """a == b up to the 2π / sign ambiguity at angle π."""
    ok = (a - b).abs().amax(-1) <= atol
    at_pi = (b.norm(dim=-1) - PI).abs() < 1e-5
    return bool((ok | (at_pi & ((a + b).abs().amax(-1) <= atol))).all())


# ---------------------------------------------------------------------- algebra
def test_hat_vee():
    g = gen()
    w = torch.randn(5, 3, dtype=F64, generator=g)
    v = torch.randn(5, 3, dtype=F64, generator=g)
    assert torch.allclose(hat(w) @ v[..., None], torch.cross(w, v, dim=-1)[..., None])
    assert torch.allclose(vee(hat(w)), w)
    xi = torch.randn(5, 6, dtype=F64, generator=g)
    X = hat(xi)
    assert X.shape == (5, 4, 4) and torch.all(X[:, 3] == 0)
    assert torch.allclose(vee(X), xi)
    with pytest.raises(ValueError):
        hat(torch.zeros(4))
    with pytest.raises(ValueError):
        vee(torch.zeros(2, 2))


# ---------------------------------------------------------------------- exp / log
@pytest.mark.parametrize("theta", SPECIAL)
@dtypes
def test_so3_exp_log_round_trip(theta, dtype):
    w = rotvec_at(theta, dtype=F64).to(dtype)
    R = so3_exp(w)
    ref = torch.tensor(Rotation.from_rotvec(w.double().numpy()).as_matrix())
    tol = 1e-6 if dtype == F32 else 1e-13
    assert (R.double() - ref).abs().max() < tol
    w2 = so3_log(R)
    assert torch.isfinite(w2).all()
    # float32 near π: the axis is determined only to ~sqrt(eps) by the matrix itself.
    tol_log = (1e-6 if dtype == F64 else 2e-3) if theta > 3 else (1e-12 if dtype == F64 else 1e-6)
    assert same_rotvec(w2.double(), w.double(), tol_log)


def test_so3_against_scipy():
    g = gen(1)
    w = torch.randn(64, 3, dtype=F64, generator=g) * 2
    rot = Rotation.from_rotvec(w.numpy())
    R = so3_exp(w)
    assert np.allclose(R.numpy(), rot.as_matrix(), atol=1e-13)
    # scipy quaternions are [x, y, z, w]
    q_scipy = rot.as_quat()
    q_scipy = q_scipy * np.sign(q_scipy[:, 3:])
    q = matrix_to_quaternion(R).numpy()
    assert np.allclose(q[:, [1, 2, 3, 0]], q_scipy, atol=1e-13)
    assert np.allclose(so3_log(R).numpy(), Rotation.from_matrix(R.numpy()).as_rotvec(), atol=1e-12)
    assert np.allclose(quaternion_to_matrix(torch.tensor(q)).numpy(), rot.as_matrix(), atol=1e-13)


@dtypes
def test_log_accuracy_float32_vs_float64(dtype):
    for theta in [1e-6, 1e-3, 0.5, 2.0, PI - 1e-3]:
        w = rotvec_at(theta, n=16)
        R = so3_exp(w)
        w32 = so3_log(R.to(dtype)).double()
        rel = ((w32 - w).norm(dim=-1) / w.norm(dim=-1)).max()
        assert rel < (1e-5 if dtype == F32 else 1e-12), (theta, rel)


def test_exp_wraps_past_pi():
    w = rotvec_at(PI + 0.5)
    w_back = so3_log(so3_exp(w))
    assert torch.allclose(w_back, -w / w.norm(dim=-1, keepdim=True) * (PI - 0.5), atol=1e-12)


@pytest.mark.parametrize("theta", SPECIAL)
def test_se3_exp_log_round_trip(theta):
    g = gen(2)
    rho = torch.randn(8, 3, dtype=F64, generator=g)
    xi = torch.cat([rho, rotvec_at(theta)], -1)
    T = se3_exp(xi)
    assert torch.allclose(T[:, 3], torch.tensor([0.0, 0, 0, 1], dtype=F64))
    xi2 = se3_log(T)
    if theta < 3:
        assert torch.allclose(xi2, xi, atol=1e-9)
    assert torch.allclose(se3_exp(xi2), T, atol=1e-9)
    # V = J_l, i.e. the translation is the integral of the screw motion
    assert torch.allclose(T[:, :3, 3:], so3_left_jacobian(xi[:, 3:]) @ rho[..., None])


def test_se3_exp_matches_matrix_exp():
    g = gen(3)
    xi = torch.randn(16, 6, dtype=F64, generator=g)
    assert torch.allclose(se3_exp(xi), torch.linalg.matrix_exp(hat(xi)), atol=1e-12)
    assert torch.allclose(so3_exp(xi[:, 3:]), torch.linalg.matrix_exp(hat(xi[:, 3:])), atol=1e-12)


# ---------------------------------------------------------------------- gradients
def test_gradcheck_generic():
    g = gen(4)
    w = (torch.randn(4, 3, dtype=F64, generator=g)).requires_grad_()
    assert torch.autograd.gradcheck(so3_exp, (w,))
    R = so3_exp(w.detach()).requires_grad_()
    assert torch.autograd.gradcheck(so3_log, (R,))
    xi = torch.randn(4, 6, dtype=F64, generator=g).requires_grad_()
    assert torch.autograd.gradcheck(se3_exp, (xi,))
    T = se3_exp(xi.detach()).requires_grad_()
    assert torch.autograd.gradcheck(se3_log, (T,))
    M = SO3()
    x, y = M.random(2, 4, 3, 3, dtype=F64, generator=g)
    assert torch.autograd.gradcheck(lambda a, b: M.dist(a, b), (x.requires_grad_(), y.requires_grad_()))
    N = SE3()
    x, y = N.random(2, 4, 4, 4, dtype=F64, generator=g)
    assert torch.autograd.gradcheck(lambda a, b: N.dist(a, b), (x.requires_grad_(), y.requires_grad_()))
    for fn in (so3_left_jacobian, so3_left_jacobian_inv):
        assert torch.autograd.gradcheck(fn, (w,))


@pytest.mark.parametrize("theta", [0.05, 0.2, 0.45, 0.55])
def test_gradcheck_near_taylor_switches(theta):
    w = rotvec_at(theta, n=3).requires_grad_()
    for fn in (so3_exp, so3_left_jacobian, so3_left_jacobian_inv, lambda v: so3_log(so3_exp(v))):
        assert torch.autograd.gradcheck(fn, (w,))


@pytest.mark.parametrize("theta", [0.0, 1e-8, 1e-4, PI - 1e-6, PI])
@dtypes
def test_finite_gradients_at_special_angles(theta, dtype):
    w = rotvec_at(theta, n=4, dtype=F64).to(dtype).requires_grad_()
    loss = (so3_log(so3_exp(w)) ** 2).sum() + so3_exp(w).sum() + so3_left_jacobian_inv(w).sum()
    loss = loss + so3_left_jacobian(w).sum() + se3_log(se3_exp(torch.cat([w, w], -1))).sum()
    (gw,) = torch.autograd.grad(loss, w)
    assert torch.isfinite(gw).all()
    M = SO3()
    x = M.random(4, 3, 3, dtype=dtype, generator=gen(5))
    y = (x @ so3_exp(w.detach())).requires_grad_()
    xx = x.clone().requires_grad_()
    d = M.dist(xx, y).sum() + M.logmap(xx, y).sum() + M.transp(xx, y, M.proju(xx, torch.ones_like(x))).sum()
    gx, gy = torch.autograd.grad(d, (xx, y))
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all()


def test_log_gradient_at_identity_is_vee():
    # d Log(I + hat(δ)) = δ: the gradient of <c, Log(R)> at R = I is hat(c)/2-ish (skew part).
    R = torch.eye(3, dtype=F64).requires_grad_()
    c = torch.tensor([0.3, -1.0, 2.0], dtype=F64)
    (g,) = torch.autograd.grad((so3_log(R) * c).sum(), R)
    d = torch.randn(3, dtype=F64, generator=gen(6))
    assert torch.allclose((g * hat(d)).sum(), (c * d).sum())


@dtypes
def test_dist_accuracy_small_angles(dtype):
    M = SO3()
    x = M.random(16, 3, 3, dtype=F64, generator=gen(7))
    for theta in [1e-4, 1e-3, 1e-2]:
        y = x @ so3_exp(rotvec_at(theta, n=16))
        d = M.dist(x.to(dtype), y.to(dtype)).double()
        # float32 inputs carry ~6e-8 rounding per entry: absolute error a few 1e-7
        assert (d - theta).abs().max() < (3e-6 if dtype == F32 else 1e-12), theta


# ---------------------------------------------------------------------- Jacobians
def test_jacobian_identities():
    g = gen(8)
    w = torch.randn(6, 3, dtype=F64, generator=g)
    w = torch.cat([w, rotvec_at(1e-3, n=2), rotvec_at(3.0, n=2)])
    eye = torch.eye(3, dtype=F64)
    assert torch.allclose(so3_left_jacobian(w), so3_right_jacobian(-w))
    assert torch.allclose(so3_left_jacobian(w), so3_right_jacobian(w).transpose(-1, -2))
    assert torch.allclose(so3_left_jacobian_inv(w) @ so3_left_jacobian(w), eye.expand(10, 3, 3), atol=1e-12)
    assert torch.allclose(so3_right_jacobian_inv(w) @ so3_right_jacobian(w), eye.expand(10, 3, 3), atol=1e-12)
    # J_l = R J_r
    assert torch.allclose(so3_left_jacobian(w), so3_exp(w) @ so3_right_jacobian(w), atol=1e-12)
    # defining relations: Exp(ω + δ) ≈ Exp(ω) Exp(J_r δ) ≈ Exp(J_l δ) Exp(ω), by central differences
    h = 1e-6
    R = so3_exp(w)
    for i in range(3):
        e = torch.zeros(3, dtype=F64)
        e[i] = h
        dr = (so3_log(R.transpose(-1, -2) @ so3_exp(w + e)) - so3_log(R.transpose(-1, -2) @ so3_exp(w - e))) / (2 * h)
        dl = (so3_log(so3_exp(w + e) @ R.transpose(-1, -2)) - so3_log(so3_exp(w - e) @ R.transpose(-1, -2))) / (2 * h)
        assert torch.allclose(dr, so3_right_jacobian(w)[..., i], atol=1e-7)
        assert torch.allclose(dl, so3_left_jacobian(w)[..., i], atol=1e-7)


@dtypes
def test_jacobian_float32_small_angles(dtype):
    for theta in [1e-5, 1e-3, 1e-2, 0.3, 0.49, 0.51, 1.0]:
        w = rotvec_at(theta, n=4)
        for fn in (so3_left_jacobian, so3_left_jacobian_inv):
            ref = fn(w)
            got = fn(w.to(dtype)).double()
            assert (got - ref).abs().max() < (3e-7 if dtype == F32 else 1e-14), (fn.__name__, theta)


# ---------------------------------------------------------------------- group operations
def test_adjoint_identity():
    g = gen(9)
    R = SO3().random(5, 3, 3, dtype=F64, generator=g)
    w = torch.randn(5, 3, dtype=F64, generator=g)
    assert torch.allclose(R @ hat(w) @ inverse(R), hat((adjoint(R) @ w[..., None])[..., 0]))
    T = SE3().random(5, 4, 4, dtype=F64, generator=g)
    xi = torch.randn(5, 6, dtype=F64, generator=g)
    lhs = T @ hat(xi) @ inverse(T)
    assert torch.allclose(lhs, hat((adjoint(T) @ xi[..., None])[..., 0]), atol=1e-12)
    # and through exp: X Exp(ξ) X⁻¹ = Exp(Ad_X ξ)
    assert torch.allclose(compose(compose(T, se3_exp(xi)), inverse(T)), se3_exp((adjoint(T) @ xi[..., None])[..., 0]), atol=1e-10)
    assert torch.allclose(inverse(T), torch.linalg.inv(T), atol=1e-12)
    with pytest.raises(ValueError):
        adjoint(torch.zeros(2, 2))
    with pytest.raises(ValueError):
        inverse(torch.zeros(5, 5))


# ---------------------------------------------------------------------- quaternions / axis-angle
def test_quaternion_round_trip_and_sign():
    g = gen(10)
    R = SO3().random(100, 3, 3, dtype=F64, generator=g)
    q = matrix_to_quaternion(R)
    assert (q[:, 0] >= 0).all()
    assert torch.allclose(q.norm(dim=-1), torch.ones(100, dtype=F64))
    assert torch.allclose(quaternion_to_matrix(q), R, atol=1e-13)
    # rotations by π about each axis (w = 0, each pivot)
    for i in range(3):
        e = torch.zeros(3, dtype=F64)
        e[i] = PI
        Rp = so3_exp(e)
        assert torch.allclose(quaternion_to_matrix(matrix_to_quaternion(Rp)), Rp, atol=1e-14)
    assert torch.allclose(matrix_to_quaternion(torch.eye(3, dtype=F64)), torch.tensor([1.0, 0, 0, 0], dtype=F64))


def test_axis_angle():
    g = gen(11)
    w = torch.randn(20, 3, dtype=F64, generator=g)
    R = so3_exp(w)
    axis, angle = matrix_to_axis_angle(R)
    assert torch.allclose(axis_angle_to_matrix(axis, angle), R, atol=1e-12)
    assert torch.allclose(axis * angle[..., None], so3_log(R), atol=1e-12)
    axis0, angle0 = matrix_to_axis_angle(torch.eye(3, dtype=F64))
    assert angle0 == 0 and torch.allclose(axis0, torch.tensor([0.0, 0, 1], dtype=F64))


def test_e3nn_interop():
    o3 = pytest.importorskip("e3nn.o3")
    R = SO3().random(6, 3, 3, dtype=F64, generator=gen(12))
    q = matrix_to_quaternion(R)
    assert torch.allclose(o3.quaternion_to_matrix(q), R, atol=1e-12)
    axis, angle = matrix_to_axis_angle(R)
    assert torch.allclose(o3.axis_angle_to_matrix(axis, angle), R, atol=1e-12)
    irreps = o3.Irreps("1o+2e")
    D = irreps.D_from_matrix(R)
    assert torch.allclose(irreps.D_from_quaternion(q), D, atol=1e-10)
    assert torch.allclose(irreps.D_from_axis_angle(axis, angle), D, atol=1e-10)
    assert torch.allclose(irreps.D_from_angles(*o3.matrix_to_angles(R)), D, atol=1e-10)


# ---------------------------------------------------------------------- manifolds
MANIFOLDS = [SO3(), SE3()]
mparams = pytest.mark.parametrize("M", MANIFOLDS, ids=["SO3", "SE3"])


def tangent(M, x, g, scale=1.0):
    return M.proju(x, scale * torch.randn(x.shape, dtype=x.dtype, generator=g))


@mparams
def test_manifold_basics(M):
    g = gen(13)
    x, y = M.random(2, 5, *M.event_shape, dtype=F64, generator=g)
    assert M.check_point(x) == (True, None)
    u = M.logmap(x, y)
    assert M.check_vector(x, u) == (True, None)
    assert torch.allclose(M.expmap(x, u), y, atol=1e-12)
    assert torch.allclose(M.norm(x, u), M.dist(x, y))
    assert torch.allclose(M.dist(x, y), M.dist(y, x))
    assert torch.allclose(M.dist(x, x), torch.zeros(5, dtype=F64), atol=1e-7)
    assert torch.allclose(M.logmap(x, x), torch.zeros_like(x), atol=1e-7)
    assert M.dist(x, y, keepdim=True).shape == (5, 1, 1)
    # projections
    v = tangent(M, x, g)
    assert torch.allclose(M.proju(x, v), v)
    assert M.check_vector(x, v)[0]
    noisy = x + 1e-3 * torch.randn(x.shape, dtype=F64, generator=g)
    assert M.check_point(M.projx(noisy))[0]
    assert torch.allclose(M.projx(x), x, atol=1e-12)
    # geodesic midpoint
    mid = M.geodesic(x, y, 0.5)
    assert torch.allclose(M.dist(x, mid), 0.5 * M.dist(x, y))
    # egrad2rgrad: <rgrad, v>_x equals the Euclidean directional derivative <egrad, v>_F
    G = torch.randn(x.shape, dtype=F64, generator=g)
    assert torch.allclose(M.inner(x, M.egrad2rgrad(x, G), v), (G * v).sum((-1, -2)))


@mparams
def test_transp_preserves_inner_and_matches_projection_ode(M):
    g = gen(14)
    x, y = M.random(2, 4, *M.event_shape, dtype=F64, generator=g)
    v, w = tangent(M, x, g), tangent(M, x, g)
    tv, tw = M.transp(x, y, v), M.transp(x, y, w)
    assert M.check_vector(y, tv)[0]
    assert torch.allclose(M.inner(y, tv, tw), M.inner(x, v, w))
    # Levi-Civita transport of an embedded submanifold (metric ∝ Frobenius per block):
    # the limit of projecting onto successive tangent spaces along the geodesic.
    u = M.logmap(x, y)
    n = 2000
    z = v
    for k in range(1, n + 1):
        z = M.proju(M.expmap(x, (k / n) * u), z)
    z = z * (M.norm(x, v) / M.norm(y, z))[..., None, None]
    assert (z - tv).abs().max() < 5e-3
    # velocity of the geodesic is transported to itself
    assert torch.allclose(M.transp(x, y, u), M.geodesic_velocity(x, u), atol=1e-12)
    yy, tv2 = M.expmap_transp(x, u, v)
    assert torch.allclose(yy, y, atol=1e-12) and torch.allclose(tv2, tv, atol=1e-12)


def test_so3_transp_body_ode():
    # body coordinates solve η' = -½ ξ × η (∇_X Y = ½[X, Y]); integrate with RK4
    g = gen(15)
    xi = torch.randn(3, dtype=F64, generator=g)
    eta0 = torch.randn(3, dtype=F64, generator=g)
    f = lambda e: -0.5 * torch.cross(xi, e, dim=-1)  # noqa: E731
    e, h = eta0.clone(), 1e-2
    for _ in range(100):
        k1 = f(e)
        k2 = f(e + h / 2 * k1)
        k3 = f(e + h / 2 * k2)
        k4 = f(e + h * k3)
        e = e + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    M = SO3()
    x = M.random(3, 3, dtype=F64, generator=g)
    vt = M.transp_follow_expmap(x, x @ hat(xi), x @ hat(eta0))
    y = M.expmap(x, x @ hat(xi))
    assert torch.allclose(vee(y.T @ vt), e, atol=1e-10)


def test_check_point_rejects():
    M = SO3()
    R = M.random(3, 3, dtype=F64, generator=gen(16))
    ok, reason = M.check_point(R * 1.01)
    assert not ok and "xᵀx" in reason
    ok, reason = M.check_point(-R)
    assert not ok and "det" in reason
    ok, reason = M.check_point(R.new_full((3, 3), float("nan")))
    assert not ok
    ok, _ = M.check_point(torch.eye(4, dtype=F64))
    assert not ok
    ok, reason = M.check_vector(R, R.clone())
    assert not ok
    with pytest.raises(ValueError):
        M.assert_check_point_on_manifold(-R)
    N = SE3()
    T = N.random(4, 4, dtype=F64, generator=gen(16))
    bad = T.clone()
    bad[3, 0] = 0.5
    ok, reason = N.check_point(bad)
    assert not ok and "last row" in reason
    bad = T.clone()
    bad[:3, :3] = -bad[:3, :3]
    assert not N.check_point(bad)[0]
    u = N.proju(T, torch.randn(4, 4, dtype=F64))
    u[3, 3] = 1
    assert not N.check_vector(T, u)[0]


def test_projx_det_fix():
    M = SO3()
    R = M.random(4, 3, 3, dtype=F64, generator=gen(17))
    P = M.projx(-R)  # det -1 input: nearest rotation, not the reflection
    assert M.check_point(P)[0]


@dtypes
def test_float32_manifold_ops(dtype):
    for M in MANIFOLDS:
        x, y = M.random(2, 8, *M.event_shape, dtype=F64, generator=gen(18))
        d64 = M.dist(x, y)
        d = M.dist(x.to(dtype), y.to(dtype)).double()
        assert (d - d64).abs().max() < (1e-5 if dtype == F32 else 1e-12)
        y2 = M.expmap(x.to(dtype), M.logmap(x.to(dtype), y.to(dtype)))
        assert y2.dtype == dtype
        assert (y2.double() - y).abs().max() < (1e-5 if dtype == F32 else 1e-12)


# ---------------------------------------------------------------------- sampling
def test_haar_statistics():
    R = SO3().random(200000, 3, 3, dtype=F64, generator=gen(19))
    tr = R.diagonal(dim1=-2, dim2=-1).sum(-1)
    # Haar on SO(3): E[tr R] = 0, E[tr² R] = 1 (characters of irreps), E[R] = 0
    assert abs(float(tr.mean())) < 0.01
    assert abs(float((tr**2).mean()) - 1) < 0.02
    assert R.mean(0).abs().max() < 0.01
    # angle density (1 - cos θ)/π on [0, π]: E[θ] = π/2 + 2/π
    theta = so3_log(R).norm(dim=-1)
    assert abs(float(theta.mean()) - (PI / 2 + 2 / PI)) < 0.01


def test_so3_volume():
    # vol = ∫_{|ω|<π} det J_r(ω) dω = 4π ∫_0^π θ² · 2(1 - cos θ)/θ² dθ = 8π²
    theta = torch.linspace(0, PI, 20001, dtype=F64)[1:]
    w = theta[:, None] * torch.tensor([0.0, 0.0, 1.0], dtype=F64)
    dens = torch.linalg.det(so3_right_jacobian(w)) * 4 * PI * theta**2
    vol = torch.trapezoid(dens, theta)
    assert abs(float(vol) - 8 * PI**2) < 1e-5
    M = SO3()
    R = M.random(3, 3, 3, dtype=F64)
    assert torch.allclose(M.base_log_prob(R), torch.full((3,), -math.log(8 * PI**2), dtype=F64))


def test_se3_base_log_prob():
    N = SE3()
    T = N.random_base(10, 4, 4, dtype=F64, generator=gen(20))
    assert N.check_point(T)[0]
    t = T[:, :3, 3]
    ref = -math.log(8 * PI**2) + torch.distributions.Normal(0.0, 1.0).log_prob(t.float()).double().sum(-1)
    assert torch.allclose(N.base_log_prob(T), ref, atol=1e-6)


def test_random_shapes_and_errors():
    assert SO3().random(2, 5, 3, 3).shape == (2, 5, 3, 3)
    assert SE3().random(7, 4, 4).shape == (7, 4, 4)
    with pytest.raises(ValueError):
        SO3().random(5, 4, 4)


# ---------------------------------------------------------------------- geoopt / optimizers
def test_geoopt_parameter_and_radam_step():
    M = SO3()
    X = geoopt.ManifoldParameter(M.random(4, 3, 3), manifold=M)
    A = torch.randn(4, 3, 3, generator=gen(21))
    opt = manifolds.RiemannianAdam([X], lr=0.1)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = -(A * X).sum()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        assert M.check_point(X.detach(), atol=1e-4)[0]
    assert losses[-1] < losses[0]


def test_se3_radam_step():
    N = SE3()
    X = geoopt.ManifoldParameter(N.random(3, 4, 4, dtype=F64), manifold=N)
    target = N.random(3, 4, 4, dtype=F64, generator=gen(22))
    opt = manifolds.RiemannianAdam([X], lr=0.05)
    d0 = float(N.dist(X.detach(), target).sum())
    for _ in range(100):
        opt.zero_grad()
        loss = ((X - target) ** 2).sum()
        loss.backward()
        opt.step()
    assert N.check_point(X.detach())[0]
    assert float(N.dist(X.detach(), target).sum()) < d0


def test_group_expmap_se3():
    N = SE3()
    x, y = N.random(2, 5, 4, 4, dtype=F64, generator=gen(23))
    u = N.group_logmap(x, y)
    assert torch.allclose(N.group_expmap(x, u), y, atol=1e-10)
    assert torch.allclose(u, x @ hat(se3_log(inverse(x) @ y)))
