"""Tests for ``PoincareBall`` and ``Hyperboloid``: agreement with geoopt (float64),
Riemannian identities, gyrogroup laws, gradients at special points, float32 accuracy
of the chord-form distances, the base density, and optimizer steps.
"""

from __future__ import annotations

import math

import geoopt
import pytest
import torch
from hypothesis import example, given, settings
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
@example(coords=[2.0, 2.0, 3.0, 3.0, 0.0, 0.0], c=3.0)  # near the boundary: chord error 1.4e-6
def test_hypothesis_exp_log(coords, c):
    B, H = PoincareBall(2, c=c), Hyperboloid(2, c=c)
    t = torch.tensor(coords, dtype=F64).reshape(3, 2)
    x, y = B.expmap0(t[0]), B.expmap0(t[1])
    torch.testing.assert_close(B.expmap(x, B.logmap(x, y)), y, rtol=1e-7, atol=1e-9)
    hx, hy = H.from_poincare(x), H.from_poincare(y)
    # the chord ‖hy − hx‖²_L = −Δ₀² + |Δ|² cancels terms of size ‖Δ‖²_E (points near the ball's
    # boundary: hyperboloid coordinates ~1e6 at c = 3, |t| = 4): absolute error ≈ ε‖Δ‖²_E, i.e.
    # ε‖Δ‖²_E / (dq/dd) in d, with q = 4 sinh²(√c d / 2) / c, dq/dd = 2 sinh(√c d) / √c
    d, sc = B.dist(x, y), c**0.5
    cond = float((hy - hx).pow(2).sum()) * sc / (2 * float(torch.sinh(sc * d)) + 1e-300)
    torch.testing.assert_close(H.dist(hx, hy), d, rtol=1e-8, atol=1e-9 + 8 * torch.finfo(F64).eps * cond)
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


# ================================================================ κ-stereographic model
from manifolds.hyperbolic import SphereProjection, Stereographic  # noqa: E402

KS = [-1.0, -0.3, 0.0, 0.3, 1.0]


def st_points(S, n, seed=0, dtype=F64, std=0.6):
    return S.random(n, S.dim, dtype=dtype, generator=_gen(seed), std=std)


def test_stereographic_constructor_and_checks():
    for bad in (float("nan"), float("inf"), "x", torch.ones(2)):
        with pytest.raises(ValueError):
            Stereographic(2, k=bad)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError):
            SphereProjection(2, c=bad)
    with pytest.raises(ValueError):
        Stereographic(0)
    assert isinstance(PoincareBall(2), Stereographic) and PoincareBall(2, c=0.5).k == -0.5
    assert SphereProjection(2, c=0.5).k == 0.5 and Stereographic(3, k=-2.0).k == -2.0
    S = Stereographic(2, k=-4.0)  # radius 1/2
    assert S.check_point(torch.tensor([[0.49, 0.0]]))[0]
    ok, reason = S.check_point(torch.tensor([[0.5, 0.0]]))
    assert not ok and "ball" in reason
    for k in (0.0, 1.0):
        assert Stereographic(2, k=k).check_point(torch.tensor([[1e3, -2e3]]))[0]
    # projx clips only for κ < 0
    far = torch.tensor([[3.0, 4.0]], dtype=F64)
    torch.testing.assert_close(Stereographic(2, k=1.0).projx(far), far, rtol=0, atol=0)
    assert float(S.projx(far).norm()) < 0.5
    L = Stereographic(2, k=torch.tensor(0.3, dtype=F64), learnable=True)
    assert isinstance(L.raw_k, torch.nn.Parameter) and L.raw_k.dtype == F64
    assert L._key() != Stereographic(2, k=0.3, learnable=True)._key()
    assert Stereographic(2, 0.3)._key() == Stereographic(2, 0.3)._key() != Stereographic(2, -0.3)._key()


@pytest.mark.parametrize("k", KS)
def test_stereographic_vs_geoopt(k):
    S, G = Stereographic(4, k=k), geoopt.Stereographic(k=torch.tensor(k, dtype=F64))
    x, y = st_points(S, 40, 1), st_points(S, 40, 2)
    u, v = ball_tangent(S, 40, 3), ball_tangent(S, 40, 4)
    # κ > 0: tan_κ is large near its pole, where geoopt and we round differently (relative)
    kw = dict(rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(S.mobius_add(x, y), G.mobius_add(x, y), **kw)
    torch.testing.assert_close(S.gyro_add(x, y), G.mobius_add(x, y), **kw)
    torch.testing.assert_close(S.gyration(x, y, v), G.gyration(x, y, v), **kw)
    for r in (-2.0, 0.3, 1.7):
        torch.testing.assert_close(S.gyro_scalar_mul(r, x), G.mobius_scalar_mul(torch.tensor(r, dtype=F64), x), **kw)
    torch.testing.assert_close(S.expmap(x, u), G.expmap(x, u, project=False), **kw)
    torch.testing.assert_close(S.logmap(x, y), G.logmap(x, y), **kw)
    torch.testing.assert_close(S.dist(x, y), G.dist(x, y), **kw)
    torch.testing.assert_close(S.dist0(x), G.dist0(x), **kw)
    torch.testing.assert_close(S.transp(x, y, v), G.transp(x, y, v), **kw)
    torch.testing.assert_close(S.transp0(y, v), G.transp0(y, v), **kw)
    torch.testing.assert_close(S.expmap0(u), G.expmap0(u, project=False), **kw)
    torch.testing.assert_close(S.logmap0(x), G.logmap0(x), **kw)
    torch.testing.assert_close(S.egrad2rgrad(x, u), G.egrad2rgrad(x, u), **kw)
    torch.testing.assert_close(S.inner(x, u, v), G.inner(x, u, v, keepdim=True).squeeze(-1), **kw)
    torch.testing.assert_close(S.lambda_x(x), G.lambda_x(x), **kw)
    M = torch.randn(3, 4, dtype=F64, generator=_gen(5))
    torch.testing.assert_close(S.mobius_matvec(M, x), G.mobius_matvec(M, x), **kw)
    if k == 0:  # Euclidean space with the metric 4 I
        torch.testing.assert_close(S.mobius_add(x, y), x + y, rtol=0, atol=0)
        torch.testing.assert_close(S.dist(x, y), 2 * (x - y).norm(dim=-1), rtol=1e-14, atol=0)
        torch.testing.assert_close(S.expmap(x, u), x + u, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("k", [-1.0, 0.0, 1.0])
def test_stereographic_gyrogroup_axioms(k):
    S = Stereographic(3, k=k)
    a, b, x = st_points(S, 64, 1), st_points(S, 64, 2), st_points(S, 64, 3)
    zero = S.gyro_identity(x)
    kw = dict(rtol=1e-10, atol=1e-11)
    add, gyr = S.gyro_add, S.gyration
    torch.testing.assert_close(add(zero, x), x, **kw)  # left identity
    torch.testing.assert_close(add(S.gyro_inv(x), x), zero, **kw)  # left inverse (centring)
    torch.testing.assert_close(add(a, add(b, x)), add(add(a, b), gyr(a, b, x)), **kw)  # gyroassociativity
    torch.testing.assert_close(gyr(a, b, x), gyr(add(a, b), b, x), **kw)  # left reduction
    torch.testing.assert_close(add(a, b), gyr(a, b, add(b, a)), **kw)  # gyrocommutativity
    torch.testing.assert_close(gyr(a, b, x).norm(dim=-1), x.norm(dim=-1), **kw)  # isometry
    torch.testing.assert_close(dot_(gyr(a, b, x), gyr(a, b, b)), dot_(x, b), **kw)
    torch.testing.assert_close(gyr(a, zero, x), x, **kw)
    torch.testing.assert_close(S.gyro_scalar_mul(2.0, x), add(x, x), **kw)
    torch.testing.assert_close(S.gyro_scalar_mul(-1.0, x), S.gyro_inv(x), **kw)
    # (r s) ⊗ x = r ⊗ (s ⊗ x); for κ > 0 only while s·artan_κ(|x|) stays below the pole of tan_κ (|s| ≤ 1 here)
    torch.testing.assert_close(S.gyro_scalar_mul(1.02, x), S.gyro_scalar_mul(1.7, S.gyro_scalar_mul(0.6, x)), **kw)
    # left gyrotranslation is an isometry of the metric
    torch.testing.assert_close(S.dist(add(a, x), add(a, b)), S.dist(x, b), rtol=1e-9, atol=1e-11)
    if k == 0:
        torch.testing.assert_close(gyr(a, b, x), x, rtol=0, atol=0)
    else:  # the gyration is not trivial
        assert float((gyr(a, b, x) - x).abs().max()) > 1e-3


def dot_(u, v):
    return (u * v).sum(-1)


@pytest.mark.parametrize("k", [-1.0, 0.0, 1.0])
def test_stereographic_riemannian_identities(k):
    S = Stereographic(3, k=k)
    x, y, z = st_points(S, 64, 1, std=1.2), st_points(S, 64, 2, std=1.2), st_points(S, 64, 3, std=1.2)
    torch.testing.assert_close(S.expmap(x, S.logmap(x, y)), y, rtol=1e-9, atol=1e-10)
    d = S.dist(x, y)
    torch.testing.assert_close(d, S.dist(y, x), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(d, S.norm(x, S.logmap(x, y)), rtol=1e-10, atol=1e-12)
    assert bool((S.dist(x, z) <= d + S.dist(y, z) + 1e-10).all())
    u, v = S.logmap(x, z), ball_tangent(S, 64, 4)
    torch.testing.assert_close(S.inner(y, S.transp(x, y, u), S.transp(x, y, v)), S.inner(x, u, v), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(S.transp(x, y, S.logmap(x, y)), -S.logmap(y, x), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(S.expmap0(S.logmap0(x)), x, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(S.logmap0(x), S.logmap(torch.zeros_like(x), x), rtol=1e-10, atol=1e-12)
    if k > 0:
        assert bool((d <= math.pi / math.sqrt(k) + 1e-12).all())


def test_sphere_projection_antipode():
    # κ > 0: the antipode of x is −x / (κ|x|²); the distance there is π/√κ exactly
    for k in (1.0, 0.3):
        S = SphereProjection(3, c=k)
        x = st_points(S, 32, 1, std=1.0)
        anti = -x / (k * (x * x).sum(-1, keepdim=True))
        torch.testing.assert_close(S.dist(x, anti), torch.full((32,), math.pi / math.sqrt(k), dtype=F64), rtol=1e-14, atol=0)
        # near the antipode the chord form keeps full relative accuracy of π/√κ − d
        u = ball_tangent(S, 32, 2)
        u = 1e-6 * u / S.norm(anti, u, keepdim=True)
        near = S.expmap(anti, u)
        torch.testing.assert_close(math.pi / math.sqrt(k) - S.dist(x, near), torch.full((32,), 1e-6, dtype=F64),
                                   rtol=1e-6, atol=0)
        for dt in (F32, F64):
            # the cut locus: dist has finite gradients, logmap / transp finite values (docstrings)
            xd, ad = x.to(dt).requires_grad_(True), anti.to(dt)
            (g,) = torch.autograd.grad(S.dist(xd, ad).sum(), xd)
            assert bool(torch.isfinite(g).all())
            assert bool(torch.isfinite(S.logmap(xd, ad)).all()) and bool(torch.isfinite(S.transp(xd, ad, u.to(dt))).all())
        # far out in ℝᵈ is close to the pole: dist0 → π/√κ
        big = torch.tensor([[1e8, 0.0, 0.0]], dtype=F64)
        torch.testing.assert_close(S.dist0(big), torch.tensor([math.pi / math.sqrt(k)], dtype=F64), rtol=1e-7, atol=0)
        # the geodesic through the pole: exp wraps past it (tan_κ beyond its pole)
        o = torch.zeros(1, 3, dtype=F64)
        w = torch.tensor([[0.75 * math.pi / math.sqrt(k), 0.0, 0.0]], dtype=F64)  # Riemannian length 1.5 π/√κ
        p = S.expmap(o, w)
        assert float(p[0, 0]) < 0
        torch.testing.assert_close(S.dist0(p), torch.tensor([0.5 * math.pi / math.sqrt(k)], dtype=F64))


@pytest.mark.parametrize("k", [-1.0, 0.0, 1.0])
def test_stereographic_float32_vs_float64(k):
    S = Stereographic(3, k=k)
    # moderate radii: near the ball's boundary (κ < 0) or the pole (κ > 0) float32 coordinates
    # themselves are ill-conditioned
    x, y = st_points(S, 200, 1, std=0.6), st_points(S, 200, 2, std=0.6)
    u = 0.3 * ball_tangent(S, 200, 3)
    close = S.expmap(x, 1e-3 * u / S.norm(x, u, keepdim=True))
    x32, y32, u32, c32 = x.float(), y.float(), u.float(), close.float()
    values = [
        lambda a, b, w: S.dist(a, b),
        lambda a, b, w: S.logmap(a, b),
        lambda a, b, w: S.gyration(a, b, w),
        lambda a, b, w: S.transp(a, b, w),
        lambda a, b, w: S.logmap0(a),
        lambda a, b, w: S.base_log_prob(a),
    ]
    points = [  # compared by their distance: coordinates near the pole (κ > 0) are ill-conditioned
        lambda a, b, w: S.expmap(a, w),
        lambda a, b, w: S.mobius_add(a, b),
        lambda a, b, w: S.mobius_scalar_mul(0.7, a),
    ]
    for b32 in (y32, c32):
        args64 = (x32.double(), b32.double(), u32.double())
        for i, op in enumerate(values):
            got = op(x32, b32, u32)
            assert got.dtype == F32
            # gyr[a, b] for b ≈ a is the identity plus O(1) terms that cancel: absolute error
            # ~1e3 eps |u| in float32 (a known limit of the closed form)
            atol = 1e-3 if i == 2 else 2e-5
            torch.testing.assert_close(got.double(), op(*args64), rtol=2e-4, atol=atol)
        for op in points:
            got = op(x32, b32, u32)
            assert got.dtype == F32
            assert float(S.dist(got.double(), op(*args64)).max()) < 1e-4
    # close points: relative accuracy of the distance in float32
    ref = S.dist(x32.double(), c32.double())
    assert float(((S.dist(x32, c32).double() - ref).abs() / ref).max()) < 1e-3


def _learnable(k, dim=3):
    return Stereographic(dim, k=torch.tensor(k, dtype=F64), learnable=True)


@pytest.mark.parametrize("k", [-0.7, 0.0, 0.4])
def test_stereographic_gradcheck_with_curvature(k):
    S = _learnable(k)
    kk = S.raw_k
    x, y, w = (st_points(Stereographic(3, k), 3, s).requires_grad_(True) for s in (1, 2, 3))
    u = ball_tangent(S, 3, 4).requires_grad_(True)
    gc = torch.autograd.gradcheck
    assert gc(lambda k_, a, b: S.dist(a, b), (kk, x, y))
    assert gc(lambda k_, a, b: S.logmap(a, b), (kk, x, y))
    assert gc(lambda k_, a, b: S.expmap(a, b), (kk, x, u))
    assert gc(lambda k_, a, b: S.gyro_add(a, b), (kk, x, y))
    assert gc(lambda k_, a, b, c: S.gyration(a, b, c), (kk, x, y, w))
    assert gc(lambda k_, a, b, c: S.transp(a, b, c), (kk, x, y, w))
    assert gc(lambda k_, a: S.gyro_scalar_mul(0.7, a), (kk, x))
    assert gc(lambda k_, a: S.logmap0(a) + S.expmap0(a), (kk, x))
    assert gc(lambda k_, a: S.base_log_prob(a), (kk, x))
    assert gc(lambda k_, a, c: S.inner(a, c, c) + S.dist0(a), (kk, x, u))


def test_curvature_smooth_through_zero():
    # values and κ-derivatives are continuous across κ = 0 and across the Taylor thresholds
    x = st_points(Stereographic(3, 0.0), 8, 1)
    y = st_points(Stereographic(3, 0.0), 8, 2)
    u = ball_tangent(Stereographic(3, 0.0), 8, 3)

    def vals(k):
        S = _learnable(k)
        out = torch.cat([S.dist(x, y), S.logmap(x, y).flatten(), S.expmap(x, u).flatten(),
                         S.gyro_scalar_mul(1.3, x).flatten(), S.base_log_prob(x), S.gyration(x, y, u).flatten()])
        # κ-derivatives of a few random projections of all outputs (one backward each)
        w = torch.randn(4, out.numel(), dtype=F64, generator=_gen(9))
        g = torch.stack([torch.autograd.grad(out @ wi, S.raw_k, retain_graph=True)[0] for wi in w])
        return out.detach(), g, w

    v0, g0, w = vals(0.0)
    for k in (1e-9, -1e-9, 3e-3, -3e-3):  # the second pair straddles the float64 thresholds
        v, g, _ = vals(k)
        scale = abs(k) if abs(k) > 1e-6 else 1e-6
        torch.testing.assert_close(v, v0, rtol=0, atol=5 * scale)
        torch.testing.assert_close(g, g0, rtol=0, atol=10 * scale)
    # derivative w.r.t. κ at 0 vs a central difference of the values
    h = 1e-5
    vp, _, _ = vals(h)
    vm, _, _ = vals(-h)
    torch.testing.assert_close(g0, w @ (vp - vm) / (2 * h), rtol=1e-6, atol=1e-7)


def test_poincare_learnable_c_gradcheck():
    B = PoincareBall(3, c=torch.tensor(0.8, dtype=F64), learnable=True)
    assert B.raw_c.dtype == F64
    x, y = (ball_points(PoincareBall(3, 0.8), 3, s).requires_grad_(True) for s in (1, 2))
    assert torch.autograd.gradcheck(lambda c_, a, b: B.dist(a, b) + B.logmap(a, b).sum(-1), (B.raw_c, x, y))


@pytest.mark.parametrize("k", [-1.0, 0.0, 1.0])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_stereographic_finite_gradients_at_origin(k, dtype):
    S = Stereographic(3, k=torch.tensor(k, dtype=dtype), learnable=True)
    z = torch.zeros(4, 3, dtype=dtype, requires_grad=True)
    x = st_points(Stereographic(3, k), 4, 1, dtype)
    out = (S.dist(z, z).sum() + S.dist(x, x).sum() + S.dist(z, x).sum() + S.logmap(z, z).sum() + S.logmap(x, x).sum()
           + S.expmap0(z).sum() + S.logmap0(z).sum() + S.gyro_scalar_mul(1.5, z).sum() + S.base_log_prob(z).sum()
           + S.mobius_matvec(torch.eye(3, dtype=dtype), z).sum() + S.dist0(z).sum() + S.gyration(z, z, x).sum())
    gz, gk = torch.autograd.grad(out, (z, S.raw_k))
    assert bool(torch.isfinite(gz).all()) and bool(torch.isfinite(gk))
    torch.testing.assert_close(S.dist(x, x), torch.zeros(4, dtype=dtype))
    torch.testing.assert_close(S.logmap(x, x), torch.zeros_like(x))


def test_stereographic_near_boundary():
    S = Stereographic(3, k=-0.3)
    d = torch.randn(16, 3, dtype=F64, generator=_gen(0))
    x = (1 - 1e-6) / math.sqrt(0.3) * d / d.norm(dim=-1, keepdim=True)
    y = x.roll(1, 0)
    assert S.check_point(x)[0]
    for out in (S.dist(x, y), S.logmap(x, y), S.transp(x, y, d), S.base_log_prob(x), S.logmap0(x), S.mobius_add(x, y)):
        assert bool(torch.isfinite(out).all())
    torch.testing.assert_close(S.dist0(x), torch.full((16,), math.log((2 - 1e-6) / 1e-6) / math.sqrt(0.3), dtype=F64),
                               rtol=1e-9, atol=0)
    torch.testing.assert_close(S.expmap(x, S.logmap(x, y)), y, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("k", [1.0, 0.25])
def test_sphere_base_density(k):
    # κ > 0: the radius of a base sample is χ_d truncated at π/√κ; base_log_prob integrates to 1
    import scipy.integrate
    import scipy.stats

    d, sig = 3, 1.0
    S = Stereographic(d, k=k)
    rmax = math.pi / math.sqrt(k)
    x = S.random_base(20_000, d, dtype=F64, generator=_gen(4))
    r = S.dist0(x)
    assert bool((r < rmax).all())
    mass = scipy.stats.chi.cdf(rmax / sig, d)
    mean_ref = scipy.integrate.quad(lambda t: t * scipy.stats.chi.pdf(t, d), 0, rmax)[0] / mass
    assert abs(float(r.mean()) - mean_ref) < 0.02, (float(r.mean()), mean_ref)
    # radial density implied by base_log_prob: p(x(r)) · area(S^{d-1}) · (sin(√κ r)/√κ)^{d-1}
    rs = torch.linspace(1e-3, rmax - 1e-3, 2001, dtype=F64)
    pts = torch.zeros(len(rs), d, dtype=F64)
    pts[:, 0] = torch.tan(math.sqrt(k) * rs / 2) / math.sqrt(k)
    torch.testing.assert_close(S.dist0(pts), rs)
    area = 2 * math.pi ** (d / 2) / math.gamma(d / 2)
    dens = S.base_log_prob(pts).exp() * area * (torch.sin(math.sqrt(k) * rs) / math.sqrt(k)) ** (d - 1)
    ref = torch.tensor(scipy.stats.chi.pdf(rs.numpy(), d) / mass, dtype=F64)
    torch.testing.assert_close(dens, ref, rtol=1e-9, atol=0)
    assert abs(float(torch.trapezoid(dens, rs)) - 1) < 1e-4


def test_euclidean_base_density_is_gaussian():
    S = Stereographic(2, k=0.0)  # metric 4 I: r = 2|x|, volume 4 dx
    x = st_points(S, 10, 1)
    ref = -math.log(2 * math.pi) - (2 * x.norm(dim=-1)) ** 2 / 2
    torch.testing.assert_close(S.base_log_prob(x), ref)
