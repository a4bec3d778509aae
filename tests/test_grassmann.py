"""Tests of manifolds.grassmann.Grassmann (orthonormal-basis view)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from manifolds.grassmann import Grassmann

F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _rot(p, seed, dtype=F64):
    return torch.linalg.qr(torch.randn(p, p, dtype=dtype, generator=_gen(seed)))[0]


def _tangent(Gr, y, seed=0, scale=1.0):
    return scale * Gr.proju(y, torch.randn(y.shape, dtype=y.dtype, generator=_gen(seed)))


def _subspace_err(x, y):
    return float((Grassmann.to_projector(x) - Grassmann.to_projector(y)).abs().max())


def _with_angles(n, p, angles, seed=0, dtype=F64):
    """(y, z) whose principal angles are ``angles`` (ascending)."""
    q = torch.linalg.qr(torch.randn(n, n, dtype=dtype, generator=_gen(seed)))[0]
    th = torch.tensor(angles, dtype=dtype)
    y = q[:, :p]
    z = y * torch.cos(th) + q[:, p : 2 * p] * torch.sin(th)
    return y, z @ _rot(p, seed + 1, dtype)


# ---------------------------------------------------------------------------- construction, checks
def test_construction_and_checks():
    Gr = Grassmann(5, 2)
    assert Gr.event_shape == (5, 2) and Gr.dim == 6 and Gr.ndim == 2
    for bad in ((0, 1), (3, 4), (3.0, 1), (3, True)):
        with pytest.raises(ValueError):
            Grassmann(*bad)
    y = Gr.random(3, 5, 2, dtype=F64, generator=_gen())
    assert Gr.check_point(y) == (True, None)
    ok, reason = Gr.check_point(2 * y)
    assert not ok and "orthonormal" in reason
    u = _tangent(Gr, y)
    assert Gr.check_vector(y, u)[0]
    ok, reason = Gr.check_vector(y, u + y)
    assert not ok and "horizontal" in reason
    with pytest.raises(ValueError):
        Gr.random(3, 4, 2)


def test_random_is_uniform():
    """E[P] = (p/n) I for the projector of a uniform subspace."""
    Gr = Grassmann(4, 2)
    y = Gr.random(4000, 4, 2, dtype=F64, generator=_gen(1))
    torch.testing.assert_close(Gr.to_projector(y).mean(0), 0.5 * torch.eye(4, dtype=F64), atol=0.03, rtol=0)
    assert Gr.check_point(y)[0]


def test_log_volume_closed_forms():
    assert math.isclose(Grassmann(2, 1).log_volume(), math.log(math.pi))
    assert math.isclose(Grassmann(3, 1).log_volume(), math.log(2 * math.pi))
    assert math.isclose(Grassmann(5, 2).log_volume(), Grassmann(5, 3).log_volume())  # Gr(n,p) ≅ Gr(n,n−p)


# ---------------------------------------------------------------------------- oracle: geomstats
def test_against_geomstats():
    from geomstats.geometry.grassmannian import Grassmannian

    n, p = 6, 3
    Gr = Grassmann(n, p)
    G = Grassmannian(n, p)
    y, z = Gr.random(2, 5, n, p, dtype=F64, generator=_gen(2))
    P, Q = Gr.to_projector(y).numpy(), Gr.to_projector(z).numpy()
    # geomstats uses the Frobenius metric on projectors, tr(Δ Δ) = 2 tr(uᵀu): dist scales by √2
    np.testing.assert_allclose(G.metric.dist(P, Q), math.sqrt(2) * Gr.dist(y, z).numpy(), atol=1e-10, rtol=0)
    u = Gr.logmap(y, z)
    delta = (u @ y.mT + y @ u.mT).numpy()  # projector tangent vector of the horizontal lift
    np.testing.assert_allclose(G.metric.log(Q, P), delta, atol=1e-10, rtol=0)
    v = _tangent(Gr, y, seed=3, scale=0.7)
    dv = (v @ y.mT + y @ v.mT).numpy()
    np.testing.assert_allclose(G.metric.exp(dv, P), Gr.to_projector(Gr.expmap(y, v)).numpy(), atol=1e-10, rtol=0)


def test_expmap_matches_svd_formula():
    """Edelman et al. 1998 Thm 2.3: y V cos Σ Vᵀ + Q sin Σ Vᵀ (the returned representative)."""
    Gr = Grassmann(7, 3)
    y = Gr.random(4, 7, 3, dtype=F64, generator=_gen(4))
    u = _tangent(Gr, y, seed=5, scale=1.3)
    q, s, vh = torch.linalg.svd(u, full_matrices=False)
    ref = (y @ vh.mT * torch.cos(s).unsqueeze(-2) + q * torch.sin(s).unsqueeze(-2)) @ vh
    torch.testing.assert_close(Gr.expmap(y, u), ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(Gr.expmap(y, torch.zeros_like(u)), y, atol=1e-15, rtol=0)


def _log_two_svd(y, z):
    """Handbook Alg. 5.3 with two SVDs (numpy), the reference for logmap."""
    y, z = y.numpy(), z.numpy()
    q1, _, r1h = np.linalg.svd(z.T @ y)
    zs = z @ (q1 @ r1h)
    h = zs - y @ (y.T @ zs)
    q2, s2, r2h = np.linalg.svd(h, full_matrices=False)
    return torch.from_numpy(q2 @ np.diag(np.arcsin(np.clip(s2, 0, 1))) @ r2h)


@pytest.mark.parametrize("angles", [[0.1, 0.4, 0.9], [0.3, 0.7, 1.3], [0.01, 1.0, 1.05], [1.0, 1.1, 1.5]])
def test_logmap_against_two_svd_algorithm(angles):
    """Both evaluation paths (SVD-free below 60°, single SVD above) agree with the reference."""
    Gr = Grassmann(8, 3)
    y, z = _with_angles(8, 3, angles, seed=6)
    u = Gr.logmap(y, z)
    torch.testing.assert_close(u, _log_two_svd(y, z), atol=1e-11, rtol=0)
    torch.testing.assert_close(torch.linalg.vector_norm(u, dim=(-2, -1)), torch.linalg.vector_norm(torch.tensor(angles, dtype=F64)))
    assert float((y.mT @ u).abs().max()) < 1e-14


def test_exp_log_roundtrip_and_norms():
    Gr = Grassmann(6, 3)
    y, z = Gr.random(2, 8, 6, 3, dtype=F64, generator=_gen(7))
    u = Gr.logmap(y, z)
    assert _subspace_err(Gr.expmap(y, u), z) < 1e-12
    torch.testing.assert_close(Gr.norm(y, u), Gr.dist(y, z), atol=1e-12, rtol=0)
    torch.testing.assert_close(Gr.dist(y, z), Gr.dist(z, y), atol=1e-12, rtol=0)
    # log of exp within the injectivity radius (|u|_2 < π/2)
    v = _tangent(Gr, y, seed=8)
    v = v * (1.2 / torch.linalg.matrix_norm(v, ord=2))[..., None, None]
    torch.testing.assert_close(Gr.logmap(y, Gr.expmap(y, v)), v, atol=1e-12, rtol=0)
    # geodesic midpoint
    m = Gr.geodesic(y, z, 0.5)
    torch.testing.assert_close(Gr.dist(y, m), 0.5 * Gr.dist(y, z), atol=1e-12, rtol=0)


def test_invariance_under_change_of_basis():
    Gr = Grassmann(6, 3)
    y, z = Gr.random(2, 6, 3, dtype=F64, generator=_gen(9))
    q, r = _rot(3, 10), _rot(3, 11)
    torch.testing.assert_close(Gr.dist(y @ q, z @ r), Gr.dist(y, z), atol=1e-13, rtol=0)
    torch.testing.assert_close(Gr.logmap(y, z @ r), Gr.logmap(y, z), atol=1e-12, rtol=0)
    torch.testing.assert_close(Gr.logmap(y @ q, z), Gr.logmap(y, z) @ q, atol=1e-12, rtol=0)
    v = _tangent(Gr, y, seed=12)
    torch.testing.assert_close(Gr.transp(y, z @ r, v), Gr.transp(y, z, v) @ r, atol=1e-12, rtol=0)
    assert _subspace_err(Gr.expmap(y @ q, v @ q), Gr.expmap(y, v)) < 1e-13


def test_dist_accuracy_small_and_right_angles():
    Gr = Grassmann(5, 2)
    for dtype, eps, rtol in ((F64, 1e-9, 1e-6), (torch.float32, 1e-4, 1e-2)):
        y, z = _with_angles(5, 2, [eps, 2 * eps], seed=13, dtype=dtype)
        assert math.isclose(float(Gr.dist(y, z)), math.sqrt(5) * eps, rel_tol=rtol)
        assert math.isclose(float(Gr.norm(y, Gr.logmap(y, z))), math.sqrt(5) * eps, rel_tol=rtol)
        y, z = _with_angles(5, 2, [math.pi / 2 - 2 * eps, math.pi / 2 - eps], seed=14, dtype=dtype)
        ref = math.hypot(math.pi / 2 - 2 * eps, math.pi / 2 - eps)
        assert math.isclose(float(Gr.dist(y, z)), ref, rel_tol=1e-6 if dtype == F64 else 1e-5)
    y = Gr.random(5, 2, dtype=F64, generator=_gen(15))
    assert float(Gr.dist(y, y)) < 1e-7 and float(Gr.dist(y, y @ _rot(2, 16))) < 1e-7


def test_cut_locus():
    """A principal angle of π/2: the log is one of the minimising geodesics (documented choice)."""
    Gr = Grassmann(5, 2)
    y, z = _with_angles(5, 2, [0.4, math.pi / 2], seed=17)
    u = Gr.logmap(y, z)
    assert torch.isfinite(u).all()
    assert math.isclose(float(Gr.norm(y, u)), math.hypot(0.4, math.pi / 2), rel_tol=1e-12)
    assert _subspace_err(Gr.expmap(y, u), z) < 1e-12
    y, z = _with_angles(5, 2, [math.pi / 2, math.pi / 2], seed=18)
    u = Gr.logmap(y, z)
    assert _subspace_err(Gr.expmap(y, u), z) < 1e-12
    assert math.isclose(float(Gr.dist(y, z)), math.pi / math.sqrt(2), rel_tol=1e-14)


# ---------------------------------------------------------------------------- transport
def test_parallel_transport():
    Gr = Grassmann(6, 2)
    y, z = Gr.random(2, 4, 6, 2, dtype=F64, generator=_gen(19))
    v, w = _tangent(Gr, y, seed=20), _tangent(Gr, y, seed=21)
    tv, tw = Gr.transp(y, z, v), Gr.transp(y, z, w)
    assert float((z.mT @ tv).abs().max()) < 1e-13
    torch.testing.assert_close(Gr.inner(z, tv, tw), Gr.inner(y, v, w), atol=1e-12, rtol=0)  # isometry
    # Edelman et al. 1998, Thm 2.4 (SVD form), at the representative expmap(y, u)
    u = Gr.logmap(y, z)
    q, s, vh = torch.linalg.svd(u, full_matrices=False)
    ref = (-y @ vh.mT * torch.sin(s).unsqueeze(-2) + q * torch.cos(s).unsqueeze(-2)) @ (q.mT @ v) + v - q @ (q.mT @ v)
    torch.testing.assert_close(Gr.transp_follow_expmap(y, u, v), ref, atol=1e-12, rtol=0)
    # the geodesic velocity is transported to the velocity (finite differences)
    h = 1e-5
    vel = (Gr.expmap(y, (1 + h) * u) - Gr.expmap(y, (1 - h) * u)) / (2 * h)
    torch.testing.assert_close(Gr.transp_follow_expmap(y, u, u), vel, atol=1e-8, rtol=0)
    yy, tv2 = Gr.expmap_transp(y, u, v)
    torch.testing.assert_close(yy, Gr.expmap(y, u), atol=1e-13, rtol=0)
    torch.testing.assert_close(tv2, ref, atol=1e-12, rtol=0)


# ---------------------------------------------------------------------------- projectors
def test_projector_roundtrip():
    Gr = Grassmann(5, 2)
    y = Gr.random(3, 5, 2, dtype=F64, generator=_gen(22))
    P = Gr.to_projector(y)
    torch.testing.assert_close(P @ P, P, atol=1e-13, rtol=0)
    y2 = Gr.from_projector(P)
    assert Gr.check_point(y2)[0] and _subspace_err(y2, y) < 1e-13
    with pytest.raises(ValueError, match="projectors"):
        Gr.from_projector(torch.eye(4, dtype=F64))
    torch.testing.assert_close(Gr.projx(2 * y @ _rot(2, 23) + 0.0), Gr.projx(2 * y @ _rot(2, 23)))
    assert _subspace_err(Gr.projx(y @ torch.tensor([[2.0, 1.0], [0.0, 3.0]], dtype=F64)), y) < 1e-13


# ---------------------------------------------------------------------------- gradients, dtypes
def test_gradcheck():
    Gr = Grassmann(4, 2)
    y, z = Gr.random(2, 4, 2, dtype=F64, generator=_gen(24))
    y.requires_grad_(), z.requires_grad_()
    assert torch.autograd.gradcheck(Gr.dist, (y, z))
    assert torch.autograd.gradcheck(Gr.logmap, (y, z))  # large angles: SVD path
    y2, z2 = _with_angles(4, 2, [0.2, 0.6], seed=25)
    assert torch.autograd.gradcheck(Gr.logmap, (y2.requires_grad_(), z2.requires_grad_()))  # SVD-free path
    u = _tangent(Gr, y.detach(), seed=26).requires_grad_()
    v = _tangent(Gr, y.detach(), seed=27).requires_grad_()
    assert torch.autograd.gradcheck(Gr.expmap, (y, u))
    assert torch.autograd.gradcheck(Gr.transp_follow_expmap, (y, u, v))
    assert torch.autograd.gradcheck(Gr.expmap, (y, torch.zeros_like(u).requires_grad_()))


def test_gradients_finite_at_coincident_points():
    Gr = Grassmann(5, 2)
    y = Gr.random(5, 2, dtype=F64, generator=_gen(28))
    for f in (lambda a, b: Gr.dist(a, b), lambda a, b: Gr.dist2(a, b), lambda a, b: Gr.logmap(a, b).square().sum()):
        a, b = y.clone().requires_grad_(), (y @ _rot(2, 29)).requires_grad_()
        f(a, b).backward()
        assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    # log at equal principal angles (repeated singular values) is differentiable below 60°
    a, b = _with_angles(5, 2, [0.5, 0.5], seed=30)
    assert torch.autograd.gradcheck(Gr.logmap, (a.requires_grad_(), b.requires_grad_()))


def test_float32_matches_float64():
    Gr = Grassmann(6, 3)
    y, z = Gr.random(2, 4, 6, 3, dtype=F64, generator=_gen(31))
    u = _tangent(Gr, y, seed=32)
    for f, args in ((Gr.dist, (y, z)), (Gr.logmap, (y, z)), (Gr.expmap, (y, u)), (Gr.transp, (y, z, u))):
        r64 = f(*args)
        r32 = f(*(a.float() for a in args))
        assert r32.dtype == torch.float32
        torch.testing.assert_close(r32.double(), r64, atol=2e-5, rtol=0)


# ---------------------------------------------------------------------------- optimisation
def test_riemannian_adam_dominant_subspace():
    """min −tr(YᵀAY) over Gr(8, 3): the span of the top-3 eigenvectors (torch.linalg.eigh)."""
    import geoopt

    from manifolds import RiemannianAdam

    n, p = 8, 3
    Gr = Grassmann(n, p)
    q = torch.linalg.qr(torch.randn(n, n, dtype=F64, generator=_gen(33)))[0]
    a = (q * torch.linspace(1.0, 3.0, n, dtype=F64)) @ q.mT
    y = geoopt.ManifoldParameter(Gr.random(n, p, dtype=F64, generator=_gen(34)), manifold=Gr)
    opt = RiemannianAdam([y], lr=0.08)
    for _ in range(250):
        opt.zero_grad()
        loss = -torch.trace(y.mT @ a @ y)
        loss.backward()
        opt.step()
    vec = torch.linalg.eigh(a)[1][:, -p:]
    assert Gr.check_point(y.detach())[0]
    assert float(Gr.dist(y.detach(), vec)) < 1e-4


# ---------------------------------------------------------------------------- property-based
@settings(max_examples=40, deadline=None)
@given(
    angles=st.lists(st.floats(0.0, 1.55), min_size=2, max_size=2).map(sorted),
    seed=st.integers(0, 2**16),
)
def test_log_exp_dist_property(angles, seed):
    """Across both log paths (the 60° switch), equal and zero angles: log = reference, exp∘log = id."""
    Gr = Grassmann(5, 2)
    y, z = _with_angles(5, 2, angles, seed=seed)
    u = Gr.logmap(y, z)
    torch.testing.assert_close(u, _log_two_svd(y, z), atol=1e-10, rtol=0)
    assert _subspace_err(Gr.expmap(y, u), z) < 1e-12
    assert math.isclose(float(Gr.dist(y, z)), math.hypot(*angles), rel_tol=1e-12, abs_tol=1e-14)
