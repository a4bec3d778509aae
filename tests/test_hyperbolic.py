"""Tests for ``PoincareBall`` and ``Hyperboloid``: agreement with geoopt (float64),
Riemannian identities, gyrogroup laws, gradients at special points, float32 accuracy
of the chord-form distances, the base density, and optimizer steps.
"""

from __future__ import annotations

import math

import geoopt
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from manifolds import Hyperboloid, PoincareBall, RiemannianAdam

F32, F64 = torch.float32, torch.float64
CS = [1.0, 0.5, 2.0]  # exactly representable, so geoopt's float32 curvature equals ours


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def ball_points(B, n, seed=0, dtype=F64, std=1.0):
    return B.random(n, B.dim, dtype=dtype, generator=_gen(seed), std=std)


def hyp_points(H, n, seed=0, dtype=F64, std=1.0):
    return H.random(n, H.dim + 1, dtype=dtype, generator=_gen(seed), std=std)


def ball_tangent(B, n, seed=0, dtype=F64):
    return 0.5 * torch.randn(n, B.dim, dtype=dtype, generator=_gen(seed))


def hyp_tangent(H, x, seed=0):
    return H.proju(x, torch.randn(x.shape, dtype=x.dtype, generator=_gen(seed)))


# ---------------------------------------------------------------- construction
def test_constructor_errors():
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError):
            PoincareBall(bad)
        with pytest.raises(ValueError):
            Hyperboloid(bad)
    for bad in (0.0, -1.0, float("nan"), float("inf"), "x"):
        with pytest.raises(ValueError):
            PoincareBall(2, c=bad)
        with pytest.raises(ValueError):
            Hyperboloid(2, c=bad)


def test_exports_and_shapes():
    import manifolds

    assert "PoincareBall" in manifolds.__all__ and "Hyperboloid" in manifolds.__all__
    B, H = PoincareBall(3), Hyperboloid(3)
    assert B.event_shape == (3,) and B.dim == 3
    assert H.event_shape == (4,) and H.dim == 3
    x = ball_points(B, 5)
    assert B.dist(x, x).shape == (5,) and B.dist(x, x, keepdim=True).shape == (5, 1)
    assert B.inner(x, x).shape == (5,)
    # broadcasting of batch dimensions
    assert B.dist(x[:, None], x[None]).shape == (5, 5)
    y = hyp_points(H, 5)
    assert H.dist(y[:, None], y[None]).shape == (5, 5)


def test_checks():
    B, H = PoincareBall(2, c=2.0), Hyperboloid(2, c=2.0)
    assert B.check_point(ball_points(B, 4)) == (True, None)
    ok, reason = B.check_point(torch.tensor([[0.8, 0.0]]))  # sqrt(2)*0.8 > 1
    assert not ok and "ball" in reason
    with pytest.raises(ValueError):
        B.assert_check_point_on_manifold(torch.tensor([[0.8, 0.0]]))
    assert not B.check_point(torch.tensor([[float("nan"), 0.0]]))[0]
    x = hyp_points(H, 4)
    assert H.check_point(x) == (True, None)
    assert not H.check_point(-x)[0]
    assert not H.check_point(x * 1.1)[0]
    assert H.check_vector(x, hyp_tangent(H, x)) == (True, None)
    assert not H.check_vector(x, x)[0]


# ---------------------------------------------------------------- agreement with geoopt
@pytest.mark.parametrize("c", CS)
def test_poincare_vs_geoopt(c):
    B, G = PoincareBall(4, c=c), geoopt.PoincareBall(c=torch.tensor(c, dtype=F64))
    # points with √c|x| < ~0.95: further out geoopt's own rounding (artanh of a number near 1)
    # exceeds the tolerance; our chord forms are checked there against mpmath below
    x, y = ball_points(B, 50, 1, std=0.6), ball_points(B, 50, 2, std=0.6)
    u, v = ball_tangent(B, 50, 3), ball_tangent(B, 50, 4)
    kw = dict(rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(B.dist(x, y), G.dist(x, y), **kw)
    torch.testing.assert_close(B.expmap(x, u), G.expmap(x, u, project=False), **kw)  # geoopt clips at 1 - 1e-5
    torch.testing.assert_close(B.logmap(x, y), G.logmap(x, y), **kw)
    torch.testing.assert_close(B.transp(x, y, v), G.transp(x, y, v), **kw)
    torch.testing.assert_close(B.mobius_add(x, y), G.mobius_add(x, y), **kw)
    for r in (-2.0, 0.3, 1.7):
        torch.testing.assert_close(B.mobius_scalar_mul(r, x), G.mobius_scalar_mul(torch.tensor(r, dtype=F64), x), **kw)
    torch.testing.assert_close(B.gyration(x, y, v), G.gyration(x, y, v), **kw)
    torch.testing.assert_close(B.egrad2rgrad(x, u), G.egrad2rgrad(x, u), **kw)
    torch.testing.assert_close(B.inner(x, u, v), G.inner(x, u, v, keepdim=True).squeeze(-1), **kw)
    torch.testing.assert_close(B.expmap0(u), G.expmap0(u, project=False), **kw)
    torch.testing.assert_close(B.logmap0(x), G.logmap0(x), **kw)
    M = torch.randn(3, 4, dtype=F64, generator=_gen(5))
    torch.testing.assert_close(B.mobius_matvec(M, x), G.mobius_matvec(M, x), **kw)


@pytest.mark.parametrize("c", CS)
def test_hyperboloid_vs_geoopt(c):
    # geoopt.Lorentz(k): <x, x>_L = -k, dist = sqrt(k) arcosh(-<x, y>_L / k)  ->  k = 1/c
    H, L = Hyperboloid(3, c=c), geoopt.Lorentz(k=torch.tensor(1.0 / c, dtype=F64))
    x, y = hyp_points(H, 50, 1), hyp_points(H, 50, 2)
    u = tangent(H, x, 3)
    kw = dict(rtol=1e-7, atol=1e-8)  # geoopt's arcosh clamps at 1e-15 under the sqrt
    torch.testing.assert_close(H.dist(x, y), L.dist(x, y), **kw)
    torch.testing.assert_close(H.expmap(x, u), L.expmap(x, u), **kw)
    torch.testing.assert_close(H.logmap(x, y), L.logmap(x, y), **kw)
    torch.testing.assert_close(H.transp(x, y, u), L.transp(x, y, u), **kw)
    torch.testing.assert_close(H.inner(x, u, u), L.inner(x, u, u), **kw)
    torch.testing.assert_close(H.proju(x, u + x), L.proju(x, u + x), **kw)
    g = torch.randn(x.shape, dtype=F64, generator=_gen(7))
    torch.testing.assert_close(H.egrad2rgrad(x, g), L.egrad2rgrad(x, g.clone()), **kw)
    assert L.check_point_on_manifold(x)


@pytest.mark.parametrize("c", CS)
def test_isometry_between_models(c):
    B, H = PoincareBall(3, c=c), Hyperboloid(3, c=c)
    x, y = hyp_points(H, 40, 1, std=2.0), hyp_points(H, 40, 2, std=2.0)
    px, py = H.to_poincare(x), H.to_poincare(y)
    assert B.check_point(px)[0]
    torch.testing.assert_close(B.dist(px, py), H.dist(x, y), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(H.from_poincare(px), x, rtol=1e-10, atol=1e-12)
    p = ball_points(B, 40, 3)
    q = H.from_poincare(p)
    assert H.check_point(q)[0]
    torch.testing.assert_close(H.to_poincare(q), p)
    torch.testing.assert_close(H.base_log_prob(q), B.base_log_prob(p))


# ---------------------------------------------------------------- Riemannian identities
MANIFOLDS = [PoincareBall(3), PoincareBall(2, c=0.5), Hyperboloid(3), Hyperboloid(2, c=2.0)]
IDS = ["B3", "B2c.5", "H3", "H2c2"]


def points(M, n, seed=0, dtype=F64, std=1.0):
    if isinstance(M, PoincareBall):
        return ball_points(M, n, seed, dtype, std)
    return hyp_points(M, n, seed, dtype, std)


def tangent(M, x, seed=0):
    """Tangent vectors at x of Riemannian length uniform in [0, 2]."""
    u = M.proju(x, torch.randn(x.shape, dtype=x.dtype, generator=_gen(seed)))
    r = 2 * torch.rand(x.shape[:-1] + (1,), dtype=x.dtype, generator=_gen(seed + 1000))
    return r * u / M.norm(x, u, keepdim=True)


@pytest.mark.parametrize("M", MANIFOLDS, ids=IDS)
def test_exp_log_dist_identities(M):
    x, y, z = points(M, 64, 1, std=1.5), points(M, 64, 2, std=1.5), points(M, 64, 3, std=1.5)
    torch.testing.assert_close(M.expmap(x, M.logmap(x, y)), y, rtol=1e-9, atol=1e-10)
    u = tangent(M, x, 4)
    torch.testing.assert_close(M.logmap(x, M.expmap(x, u)), u, rtol=1e-9, atol=1e-10)
    d = M.dist(x, y)
    torch.testing.assert_close(d, M.dist(y, x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(d, M.norm(x, M.logmap(x, y)), rtol=1e-10, atol=1e-12)
    assert bool((M.dist(x, z) <= d + M.dist(y, z) + 1e-10).all())
    assert bool((M.dist(x, x) == 0).all())
    torch.testing.assert_close(M.dist0(x), M.dist(M.origin_point(x), x))
    o = M.origin_point(x)
    torch.testing.assert_close(M.expmap0(M.logmap0(x)), x)
    torch.testing.assert_close(M.logmap0(x), M.logmap(o, x))
    w = tangent(M, o, 5)
    torch.testing.assert_close(M.expmap0(w), M.expmap(o, w))


@pytest.mark.parametrize("M", MANIFOLDS, ids=IDS)
def test_transport_preserves_inner(M):
    x, y = points(M, 64, 1, std=1.5), points(M, 64, 2, std=1.5)
    u, v = tangent(M, x, 3), tangent(M, x, 4)
    tu, tv = M.transp(x, y, u), M.transp(x, y, v)
    torch.testing.assert_close(M.inner(y, tu, tv), M.inner(x, u, v), rtol=1e-9, atol=1e-10)
    # the transported vectors are tangent at y, the velocity of the geodesic is transported
    assert M.check_vector(y, tu)[0]
    w = M.logmap(x, y)
    torch.testing.assert_close(M.transp(x, y, w), -M.logmap(y, x), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(M.transp(x, x, u), u)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-3, 3), min_size=6, max_size=6),
    st.sampled_from([0.5, 1.0, 3.0]),
)
def test_hypothesis_exp_log(coords, c):
    B, H = PoincareBall(2, c=c), Hyperboloid(2, c=c)
    t = torch.tensor(coords, dtype=F64).reshape(3, 2)
    x, y = B.expmap0(t[0]), B.expmap0(t[1])
    torch.testing.assert_close(B.expmap(x, B.logmap(x, y)), y, rtol=1e-7, atol=1e-9)
    hx, hy = H.from_poincare(x), H.from_poincare(y)
    torch.testing.assert_close(H.dist(hx, hy), B.dist(x, y), rtol=1e-8, atol=1e-9)
    # cosh(√c d) x + ... cancels terms of size x₀(hx)·x₀(hy)·... ≈ x₀²: the absolute error
    # of the extrinsic formula scales with it
    scale = float(hx.abs().max()) * float(hy.abs().max()) + 1
    torch.testing.assert_close(H.expmap(hx, H.logmap(hx, hy)), hy, rtol=1e-7, atol=1e-14 * scale * scale)


# ---------------------------------------------------------------- gyrogroup laws
@pytest.mark.parametrize("c", CS)
def test_gyrogroup_laws(c):
    B = PoincareBall(3, c=c)
    a, b, x = ball_points(B, 64, 1), ball_points(B, 64, 2), ball_points(B, 64, 3)
    zero = torch.zeros_like(x)
    kw = dict(rtol=1e-10, atol=1e-11)
    torch.testing.assert_close(B.mobius_add(zero, x), x, **kw)  # left identity
    torch.testing.assert_close(B.mobius_add(B.gyro_inv(x), x), zero, **kw)  # left inverse
    # gyroassociativity a ⊕ (b ⊕ x) = (a ⊕ b) ⊕ gyr[a, b] x
    lhs = B.mobius_add(a, B.mobius_add(b, x))
    rhs = B.mobius_add(B.mobius_add(a, b), B.gyration(a, b, x))
    torch.testing.assert_close(lhs, rhs, **kw)
    # gyrocommutativity a ⊕ b = gyr[a, b](b ⊕ a)
    torch.testing.assert_close(B.mobius_add(a, b), B.gyration(a, b, B.mobius_add(b, a)), **kw)
    # gyrations are isometries; gyr[a, 0] = I
    torch.testing.assert_close(B.gyration(a, b, x).norm(dim=-1), x.norm(dim=-1), **kw)
    torch.testing.assert_close(B.gyration(a, zero, x), x, **kw)
    # scalar multiplication: 2 ⊗ x = x ⊕ x, (r s) ⊗ x = r ⊗ (s ⊗ x), 1 ⊗ x = x
    torch.testing.assert_close(B.gyro_scalar_mul(2.0, x), B.gyro_add(x, x), **kw)
    torch.testing.assert_close(B.mobius_scalar_mul(0.3 * 1.7, x), B.mobius_scalar_mul(0.3, B.mobius_scalar_mul(1.7, x)), **kw)
    torch.testing.assert_close(B.mobius_scalar_mul(1.0, x), x, **kw)
    # distance is gyro-translation invariant: d(a ⊕ x, a ⊕ y) = d(x, y)
    torch.testing.assert_close(B.dist(B.mobius_add(a, x), B.mobius_add(a, b)), B.dist(x, b), rtol=1e-8, atol=1e-10)
    # mobius_matvec with the identity is the identity, and dist(0, ·) = 2/√c artanh(√c|·|)
    torch.testing.assert_close(B.mobius_matvec(torch.eye(3, dtype=F64), x), x, **kw)
    torch.testing.assert_close(B.mobius_matvec(torch.zeros(2, 3, dtype=F64), x), torch.zeros(64, 2, dtype=F64))
    torch.testing.assert_close(B.dist0(x), 2 / math.sqrt(c) * torch.atanh(math.sqrt(c) * x.norm(dim=-1)), **kw)


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("M", MANIFOLDS, ids=IDS)
def test_gradcheck(M):
    x, y = points(M, 3, 1), points(M, 3, 2)
    u = tangent(M, x, 3)
    x.requires_grad_(True)
    y.requires_grad_(True)
    u.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: M.dist(a, b), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: M.logmap(a, b), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: M.expmap(a, b), (x, u))
    assert torch.autograd.gradcheck(lambda a: M.base_log_prob(a), (x,))


def test_gradcheck_gyro():
    B = PoincareBall(3, c=0.5)
    a, b, x = (ball_points(B, 3, s).requires_grad_(True) for s in (1, 2, 3))
    assert torch.autograd.gradcheck(B.mobius_add, (a, b))
    assert torch.autograd.gradcheck(B.gyration, (a, b, x))
    assert torch.autograd.gradcheck(lambda p: B.mobius_scalar_mul(0.7, p), (x,))
    assert torch.autograd.gradcheck(B.transp, (a, b, x))


@pytest.mark.parametrize("M", MANIFOLDS, ids=IDS)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_finite_gradients_at_special_points(M, dtype):
    x = points(M, 4, 1, dtype)
    o = M.origin_point(x)
    for a, b in ((x, x), (o, o), (o, x), (x, o)):
        a = a.clone().requires_grad_(True)
        b = b.clone().requires_grad_(True)
        out = M.dist(a, b).sum() + M.logmap(a, b).sum() + M.expmap(a, M.proju(a, torch.zeros_like(a))).sum()
        out = out + M.base_log_prob(b).sum() + M.logmap0(b).sum()
        ga, gb = torch.autograd.grad(out, (a, b))
        assert bool(torch.isfinite(ga).all()) and bool(torch.isfinite(gb).all())
    torch.testing.assert_close(M.dist(x, x), torch.zeros(4, dtype=dtype))
    torch.testing.assert_close(M.logmap(x, x), torch.zeros_like(x))
    torch.testing.assert_close(M.expmap(x, torch.zeros_like(x)), x)
    if isinstance(M, PoincareBall):
        z = torch.zeros(4, M.dim, dtype=dtype, requires_grad=True)
        out = (M.mobius_scalar_mul(1.5, z).sum() + M.mobius_matvec(torch.eye(M.dim, dtype=dtype), z).sum()
               + M.expmap0(z).sum() + M.logmap0(z).sum())
        (g,) = torch.autograd.grad(out, z)
        assert bool(torch.isfinite(g).all())


# ---------------------------------------------------------------- float32 accuracy
@pytest.mark.parametrize("M", MANIFOLDS, ids=IDS)
def test_float32_close_points(M):
    # moderate radii: far from the origin float32 *inputs* of the hyperboloid are
    # ill-conditioned (rounding of x₀ ~ eps·x₀ against a 1e-4 displacement)
    x = points(M, 200, 1, std=0.5)
    u = tangent(M, x, 2)
    u = 1e-4 * u / M.norm(x, u, keepdim=True)
    y = M.expmap(x, u)
    x32, y32 = x.float(), y.float()
    if isinstance(M, Hyperboloid):
        x32, y32 = M.projx(x32), M.projx(y32)
    ref = M.dist(x32.double(), y32.double())
    got = M.dist(x32, y32)
    assert bool(((got.double() - ref).abs() <= 1e-3 * ref).all()), float(((got.double() - ref).abs() / ref).max())
    torch.testing.assert_close(ref, torch.full_like(ref, 1e-4), rtol=2e-2, atol=0)
    # logmap has the right length in float32 as well
    # (on the hyperboloid float32 inputs are off the surface by ~eps·x₀², which moves the
    # length of the tangent vector by ~1e-3 relative at this distance)
    ln = M.norm(x32, M.logmap(x32, y32)).double()
    tol = 2e-3 if isinstance(M, PoincareBall) else 3e-2
    assert bool(((ln - ref).abs() <= tol * ref).all()), float(((ln - ref).abs() / ref).max())


def test_geoopt_float32_floor_is_avoided():
    # geoopt's Lorentz.dist takes arcosh of a float32 inner product close to 1
    H = Hyperboloid(2)
    x = H.origin_point(torch.zeros(1, 3))
    y = H.expmap0(torch.tensor([[0.0, 1e-4, 0.0]]))
    assert abs(float(H.dist(x, y)) - 1e-4) < 1e-7


def test_near_boundary_float64():
    B = PoincareBall(3)
    d = torch.randn(16, 3, dtype=F64, generator=_gen(0))
    d = d / d.norm(dim=-1, keepdim=True)
    x = (1 - 1e-6) * d
    y = (1 - 1e-6) * d.roll(1, 0)
    assert B.check_point(x)[0]
    torch.testing.assert_close(B.projx(x), x, rtol=0, atol=0)
    u = torch.randn(16, 3, dtype=F64, generator=_gen(1)) * 1e-7
    for out in (B.dist(x, y), B.logmap(x, y), B.expmap(x, u), B.transp(x, y, u), B.base_log_prob(x),
                B.logmap0(x), B.dist0(x), B.mobius_add(x, y), B.mobius_scalar_mul(0.5, x)):
        assert bool(torch.isfinite(out).all())
    # dist(0, x) = 2 artanh(1 - 1e-6) = log((2 - 1e-6)/1e-6)
    torch.testing.assert_close(B.dist0(x), torch.full((16,), math.log((2 - 1e-6) / 1e-6), dtype=F64), rtol=1e-9, atol=0)
    torch.testing.assert_close(B.expmap(x, B.logmap(x, y)), y, rtol=1e-6, atol=1e-8)
    # projx pulls points outside (and on) the boundary strictly inside, in both dtypes
    for dt in (F32, F64):
        p = B.projx(torch.tensor([[1.0, 0.0, 0.0], [3.0, 4.0, 0.0]], dtype=dt))
        assert bool((p.norm(dim=-1) < 1).all()) and bool(torch.isfinite(B.dist0(p)).all())
    ok, _ = B.check_point(B.expmap(x, 1e3 * d))
    assert ok


# ---------------------------------------------------------------- base distribution
@pytest.mark.parametrize("c", [1.0, 0.5])
def test_base_log_prob_integrates_to_one(c):
    # importance sampling with the uniform distribution on the Euclidean disc of radius R:
    # ∫ p dV = ∫ p(x) λ_x² dx ≈ π R² · mean(p λ²)
    B = PoincareBall(2, c=c)
    g = _gen(0)
    n = 200_000
    R = (1 - 1e-4) / math.sqrt(c)  # mass beyond R (r > 2/√c·artanh(1 − 1e-4) ≈ 9.9/√c) is negligible
    rad = R * torch.rand(n, dtype=F64, generator=g).sqrt()
    ang = 2 * math.pi * torch.rand(n, dtype=F64, generator=g)
    x = torch.stack((rad * ang.cos(), rad * ang.sin()), -1)
    w = B.base_log_prob(x).exp() * B.lambda_x(x) ** 2
    total = math.pi * R * R * float(w.mean())
    assert abs(total - 1) < 0.05, total


@pytest.mark.parametrize("M", [PoincareBall(3, c=0.5), Hyperboloid(3, c=2.0), Hyperboloid(2)], ids=["B3", "H3", "H2"])
def test_base_radius_density(M):
    # r = dist(o, x) of a base sample is chi-distributed (σ = 1) with d degrees of freedom; the
    # density of r implied by base_log_prob is p(x(r)) · area(S^{d-1}) · (sinh(√c r)/√c)^{d-1}
    x = M.random_base(100_000, M.event_shape[0], dtype=F64, generator=_gen(3))
    assert M.check_point(x)[0]
    r = M.dist0(x)
    d = M.dim
    torch.testing.assert_close(r.pow(2).mean(), torch.tensor(float(d), dtype=F64), rtol=3e-2, atol=0)
    # pick points at given radii and compare densities
    rs = torch.tensor([0.3, 1.0, 2.0], dtype=F64)
    sc = math.sqrt(M.c)
    if isinstance(M, PoincareBall):
        pts = torch.zeros(3, d, dtype=F64)
        pts[:, 0] = torch.tanh(sc * rs / 2) / sc
    else:
        pts = M.expmap0(torch.cat((torch.zeros(3, 1, dtype=F64), rs[:, None], torch.zeros(3, d - 1, dtype=F64)), -1))
    torch.testing.assert_close(M.dist0(pts), rs)
    area = 2 * math.pi ** (d / 2) / math.gamma(d / 2)
    dens = M.base_log_prob(pts).exp() * area * (torch.sinh(sc * rs) / sc) ** (d - 1)
    chi = rs ** (d - 1) * torch.exp(-rs ** 2 / 2) / (2 ** (d / 2 - 1) * math.gamma(d / 2))
    torch.testing.assert_close(dens, chi, rtol=1e-10, atol=0)


def test_random_in_float32():
    for M in (PoincareBall(2), Hyperboloid(2)):
        x = M.random(1000, M.event_shape[0], generator=_gen(0), std=3.0)
        assert x.dtype == F32 and M.check_point(x)[0], M.check_point(x)
        assert bool(torch.isfinite(M.base_log_prob(x)).all())


# ---------------------------------------------------------------- learnable curvature
def test_learnable_curvature():
    B = PoincareBall(2, c=0.7, learnable=True)
    assert isinstance(B.raw_c, torch.nn.Parameter)
    torch.testing.assert_close(B.c, torch.tensor(0.7))
    x, y = ball_points(PoincareBall(2, c=0.7), 8, 1), ball_points(PoincareBall(2, c=0.7), 8, 2)
    torch.testing.assert_close(B.dist(x, y), PoincareBall(2, c=0.7).dist(x, y), rtol=1e-6, atol=1e-7)
    B.dist(x, y).sum().backward()
    assert B.raw_c.grad is not None and bool(torch.isfinite(B.raw_c.grad))
    assert B._key() != PoincareBall(2, c=0.7, learnable=True)._key()
    assert PoincareBall(2, c=0.7)._key() == PoincareBall(2, c=0.7)._key()
    assert PoincareBall(2, c=0.7)._key() != PoincareBall(2, c=0.5)._key()


# ---------------------------------------------------------------- optimization
@pytest.mark.parametrize("M", [PoincareBall(3), PoincareBall(2, c=2.0), Hyperboloid(3)], ids=["B3", "B2c2", "H3"])
def test_riemannian_adam_keeps_points_on_manifold(M):
    target = points(M, 16, 1, F64, std=2.0)
    p = geoopt.ManifoldParameter(points(M, 16, 2, F64, std=0.5), manifold=M)
    opt = RiemannianAdam([p], lr=0.1, weight_decay=1e-3)
    d0 = float(M.dist(p.detach(), target).mean())
    for _ in range(200):
        opt.zero_grad()
        M.dist(p, target).pow(2).sum().backward()
        opt.step()
        assert M.check_point(p.detach())[0], M.check_point(p.detach())
    assert float(M.dist(p.detach(), target).mean()) < 0.2 * d0


def test_riemannian_adam_large_steps_stay_in_ball():
    B = PoincareBall(2)
    p = geoopt.ManifoldParameter(torch.full((4, 2), 0.5, dtype=F32), manifold=B)
    opt = RiemannianAdam([p], lr=5.0)
    for _ in range(30):
        opt.zero_grad()
        (-B.dist0(p)).sum().backward()  # push outwards as far as possible
        opt.step()
        assert bool((p.detach().norm(dim=-1) < 1).all()) and bool(torch.isfinite(p).all())


# ---------------------------------------------------------------- high-precision reference
def _mp_ball_dist(x, y, c):
    import mpmath

    mpmath.mp.dps = 50
    X = [mpmath.mpf(float(t)) for t in x]
    Y = [mpmath.mpf(float(t)) for t in y]
    n2 = lambda a: sum(t * t for t in a)  # noqa: E731
    dd = n2([a - b for a, b in zip(X, Y)])
    c = mpmath.mpf(c)
    return float(mpmath.acosh(1 + 2 * c * dd / ((1 - c * n2(X)) * (1 - c * n2(Y)))) / mpmath.sqrt(c))


@pytest.mark.parametrize("dtype", [F32, F64])
def test_ball_dist_vs_mpmath(dtype):
    # far from the origin (geoopt loses ~1e-5 relative there in float64) and at 1e-4 apart
    pytest.importorskip("mpmath")
    B = PoincareBall(3, c=2.0)
    x = ball_points(B, 20, 1, dtype, std=2.0)
    y = ball_points(B, 20, 2, dtype, std=2.0)
    u = tangent(B, x, 3)
    z = B.expmap(x, 1e-4 * u / B.norm(x, u, keepdim=True))
    # the problem's own condition number is ~eps / (1 − c|x|²) (up to 1e5 here)
    tol = 1e-10 if dtype == F64 else 3e-5
    for a, b in ((x, y), (x, z)):
        got = B.dist(a, b)
        ref = torch.tensor([_mp_ball_dist(p, q, 2.0) for p, q in zip(a, b)], dtype=F64)
        rel = ((got.double() - ref).abs() / ref).max()
        # float32: a few ulps of the inputs' 1 − c|x|² (points up to 1 − 1e-4 from the boundary)
        assert float(rel) < (tol if b is y or dtype == F64 else 1e-3), float(rel)


def test_docstring_examples():
    import doctest

    import manifolds.hyperbolic as mod

    res = doctest.testmod(mod, extraglobs={"torch": torch}, verbose=False)
    assert res.failed == 0 and res.attempted >= 2
