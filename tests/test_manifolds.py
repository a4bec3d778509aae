"""Property and oracle tests for ``Euclidean``, ``Sphere`` and ``Product``.

Every geometric property is checked on the same list of manifolds (``MANIFOLDS``);
the sphere is additionally checked at its special points (coincident, antipodal and
near-antipodal pairs), in float32 against float64, and against two independent
implementations: geomstats 2.8.0 (numpy backend, imported lazily) and geoopt.
"""

from __future__ import annotations

import math
import warnings

import geoopt
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from manifolds import Euclidean, Manifold, Product, Sphere

F32, F64 = torch.float32, torch.float64
PI = math.pi

MANIFOLDS = [
    Euclidean(3),
    Sphere(1),
    Sphere(2),
    Sphere(5),
    Product(Sphere(2), Euclidean(2)),
    Product.power(Sphere(2), 3),
]
IDS = ["R3", "S1", "S2", "S5", "S2xR2", "S2^3"]
SPHERES = [Sphere(1), Sphere(2), Sphere(5)]
SPHERE_IDS = ["S1", "S2", "S5"]
# Manifolds with at least one sphere factor: they have antipodal pairs.
CURVED = MANIFOLDS[1:]
CURVED_IDS = IDS[1:]

params = pytest.mark.parametrize("M", MANIFOLDS, ids=IDS)
sphere_params = pytest.mark.parametrize("S", SPHERES, ids=SPHERE_IDS)
dtypes = pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
hyp = settings(deadline=None, max_examples=20)
seeds = st.integers(min_value=0, max_value=2**31 - 1)


# ---------------------------------------------------------------------- helpers
def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def points(M: Manifold, n: int, g: torch.Generator, dtype=F64) -> torch.Tensor:
    return M.random(n, *M.event_shape, dtype=dtype, generator=g)


def tangent(M: Manifold, x: torch.Tensor, g: torch.Generator, scale=1.0) -> torch.Tensor:
    return M.proju(x, scale * torch.randn(x.shape, dtype=x.dtype, generator=g))


def at_angle(M: Manifold, x: torch.Tensor, theta, g: torch.Generator) -> torch.Tensor:
    """A point at distance ``theta`` from ``x`` in every factor (random direction).

    Sphere factor: ``cos θ x + sin θ w``; Euclidean factor: ``x + θ w``; ``w`` a unit
    tangent vector. ``theta`` is a float or a ``(batch, 1)`` tensor.
    """
    if isinstance(M, Product):
        return M.join([at_angle(m, p, theta, g) for m, p in zip(M.factors, M.split(x))])
    w = tangent(M, x, g)
    w = w / w.norm(dim=-1, keepdim=True)
    theta = torch.as_tensor(theta, dtype=x.dtype)
    if isinstance(M, Sphere):
        return M.projx(torch.cos(theta) * x + torch.sin(theta) * w)
    return x + theta * w


def antipode(M: Manifold, x: torch.Tensor) -> torch.Tensor:
    """Exact antipode ``-x`` in every sphere factor (Euclidean factors: ``x + 1``)."""
    if isinstance(M, Product):
        return M.join([antipode(m, p) for m, p in zip(M.factors, M.split(x))])
    return -x if isinstance(M, Sphere) else x + 1


def n_spheres(M: Manifold) -> int:
    if isinstance(M, Product):
        return sum(n_spheres(m) for m in M.factors)
    return int(isinstance(M, Sphere))


def close(a, b, atol, rtol=0.0):
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


def assert_finite(*ts):
    for t in ts:
        assert t is not None
        assert torch.isfinite(t).all(), t


def is_tangent(M, x, u, atol=1e-10):
    ok, reason = M.check_vector(x, u, atol=atol)
    assert ok, reason


def geomstats_sphere(dim):
    """geomstats' Hypersphere with its default numpy backend (import prints warnings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from geomstats.geometry.hypersphere import Hypersphere
    return Hypersphere(dim=dim)


# ---------------------------------------------------------------------- exp / log
@params
@hyp
@given(seed=seeds, theta=st.floats(min_value=0.0, max_value=PI - 1e-6))
def test_expmap_logmap_roundtrip(M, seed, theta):
    g = gen(seed)
    x = points(M, 8, g)
    for y in (points(M, 8, g), at_angle(M, x, theta, g)):
        u = M.logmap(x, y)
        is_tangent(M, x, u)
        close(M.expmap(x, u), y, atol=1e-10)


@params
@hyp
@given(seed=seeds)
def test_logmap_expmap_roundtrip(M, seed):
    """``logmap(x, expmap(x, u)) == u`` for ``|u| < π`` in every factor."""
    g = gen(seed)
    x = points(M, 8, g)
    u = tangent(M, x, g)
    if n_spheres(M):  # keep every sphere factor's |u| below π - 1e-3
        u = M.logmap(x, M.expmap(x, 0.999 * M.logmap(x, points(M, 8, g))))
    close(M.logmap(x, M.expmap(x, u)), u, atol=1e-9)


@pytest.mark.parametrize("M", CURVED, ids=CURVED_IDS)
@dtypes
def test_exact_antipode(M, dtype):
    """At ``y = -x``: ``|logmap| = π`` per sphere factor, ``expmap`` of it is ``-x``, all finite."""
    x = points(M, 16, gen(0), dtype)
    y = antipode(M, x)
    u = M.logmap(x, y)
    assert_finite(u)
    tol = 1e-5 if dtype == F32 else 1e-12
    is_tangent(M, x, u, atol=tol)
    # sphere factors contribute π² each, Euclidean factors |1|² per coordinate
    flat_sq = sum(m.numel for m in getattr(M, "factors", [M]) if isinstance(m, Euclidean))
    expected = torch.sqrt(torch.as_tensor(n_spheres(M) * PI**2 + flat_sq, dtype=dtype))
    close(M.norm(x, u), expected.expand(16), atol=10 * tol)
    close(M.dist(x, y), expected.expand(16), atol=10 * tol)
    close(M.expmap(x, u), y, atol=10 * tol)
    assert_finite(M.transp(x, y, tangent(M, x, gen(1))))


@sphere_params
def test_exact_antipode_sphere_direction(S):
    """The antipodal logmap is deterministic, of length exactly π, orthogonal to x."""
    x = torch.eye(S.dim + 1, dtype=F64)
    u = S.logmap(x, -x)
    close(u.norm(dim=-1), torch.full((S.dim + 1,), PI, dtype=F64), atol=1e-15)
    close((u * x).sum(-1), torch.zeros(S.dim + 1, dtype=F64), atol=0.0)
    close(S.expmap(x, u), -x, atol=1e-15)
    close(S.dist(x, -x), torch.full((S.dim + 1,), PI, dtype=F64), atol=0.0)


@sphere_params
@pytest.mark.parametrize("src,dtype", [(F32, F32), (F64, F64), (F32, F64)], ids=["f32", "f64", "f32->f64"])
def test_exact_antipode_direction_is_documented_axis(S, src, dtype):
    """Random x (also float32 data cast to float64, a few ulps off the sphere): the
    antipodal logmap is π times the unit projection of the axis e_0 (if |x_0| <= |x_1|)
    or e_1, not the direction of the rounding noise of y - x."""
    x = S.random(2000, S.dim + 1, dtype=src, generator=gen(S.dim)).to(dtype)
    u = S.logmap(x, -x)
    k = (x[:, 0].abs() > x[:, 1].abs()).long()
    e = torch.nn.functional.one_hot(k, S.dim + 1).to(x.dtype)
    w = e - ((e * x).sum(-1, keepdim=True) / (x * x).sum(-1, keepdim=True)) * x
    w = w / w.norm(dim=-1, keepdim=True)
    tol = 1e-6 if dtype == F32 else 1e-14
    close(u, PI * w, atol=tol)
    assert ((u * x).sum(-1).abs() < tol).all()
    close(S.expmap(x, u), S.projx(-x), atol=tol)
    # transport assumes unit x: inputs off the sphere by δ ~ 6e-8 give errors ~ δ
    ttol = 1e-5 if src == F32 else 10 * tol
    v = tangent(S, x, gen(0))
    pv = S.transp(x, -x, v)
    close((pv * x).sum(-1), torch.zeros(2000, dtype=dtype), atol=ttol)
    close(pv.norm(dim=-1), v.norm(dim=-1), atol=ttol)


# ---------------------------------------------------------------------- distance
@params
@hyp
@given(seed=seeds)
def test_dist_properties(M, seed):
    g = gen(seed)
    x, y, z = (points(M, 16, g) for _ in range(3))
    d = M.dist(x, y)
    assert d.shape == (16,)
    assert (d >= 0).all()
    close(d, M.dist(y, x), atol=1e-12)
    assert (M.dist(x, x) == 0).all()  # exactly zero, not a clamp floor
    close(d, M.norm(x, M.logmap(x, y)), atol=1e-10)
    close(M.dist(x, y, keepdim=True), d[..., None], atol=0.0)
    close(M.dist2(x, y), d**2, atol=1e-10)
    assert (M.dist(x, z) <= M.dist(x, y) + M.dist(y, z) + 1e-12).all()


@params
def test_dist_zero_at_same_point_all_dtypes(M):
    for dtype in (F32, F64):
        x = points(M, 32, gen(3), dtype)
        assert (M.dist(x, x) == 0).all()
        assert (M.logmap(x, x) == 0).all()
        close(M.expmap(x, torch.zeros_like(x)), x, atol=1e-6 if dtype == F32 else 1e-15)


# ---------------------------------------------------------------------- transport
@params
@hyp
@given(seed=seeds)
def test_transp_isometry_and_inverse(M, seed):
    g = gen(seed)
    x, y = points(M, 8, g), points(M, 8, g)
    v, w = tangent(M, x, g), tangent(M, x, g)
    pv, pw = M.transp(x, y, v), M.transp(x, y, w)
    is_tangent(M, y, pv, atol=1e-10)
    close(M.inner(y, pv, pw), M.inner(x, v, w), atol=1e-10)
    close(M.norm(y, pv), M.norm(x, v), atol=1e-10)
    close(M.transp(y, x, pv), v, atol=1e-9)
    # the velocity of the geodesic is transported to the velocity at its end
    u = M.logmap(x, y)
    close(M.transp(x, y, u), -M.logmap(y, x), atol=1e-9)


@params
@hyp
@given(seed=seeds, frac=st.floats(min_value=0.0, max_value=0.999))
def test_transp_follow_expmap_matches_transp(M, seed, frac):
    """Below the cut locus (``|u| < π`` per sphere factor) both transports agree."""
    g = gen(seed)
    x = points(M, 8, g)
    u = frac * M.logmap(x, points(M, 8, g))
    v = tangent(M, x, g)
    close(M.transp_follow_expmap(x, u, v), M.transp(x, M.expmap(x, u), v), atol=1e-9)
    y, pv = M.expmap_transp(x, u, v)
    close(y, M.expmap(x, u), atol=0.0)
    close(pv, M.transp_follow_expmap(x, u, v), atol=0.0)


@params
@hyp
@given(seed=seeds, scale=st.floats(min_value=0.0, max_value=10.0))
def test_transp_follow_expmap_past_cut_locus(M, seed, scale):
    """Long geodesics (``|u|`` up to ~10π): transport is still an isometry onto ``T_{exp(u)}``."""
    g = gen(seed)
    x = points(M, 8, g)
    u, v, w = tangent(M, x, g, scale), tangent(M, x, g), tangent(M, x, g)
    y = M.expmap(x, u)
    pv, pw = M.transp_follow_expmap(x, u, v), M.transp_follow_expmap(x, u, w)
    is_tangent(M, y, pv, atol=1e-9)
    close(M.inner(y, pv, pw), M.inner(x, v, w), atol=1e-9)


@params
@hyp
@given(seed=seeds, scale=st.floats(min_value=0.0, max_value=6.0))
def test_geodesic_velocity_is_jvp_of_expmap(M, seed, scale):
    g = gen(seed)
    x = points(M, 8, g)
    u = tangent(M, x, g, scale)
    s = torch.ones((), dtype=F64)
    _, vel = torch.func.jvp(lambda s_: M.expmap(x, s_ * u), (s,), (torch.ones_like(s),))
    close(M.geodesic_velocity(x, u), vel, atol=1e-9)
    close(M.geodesic_velocity(x, u), M.transp_follow_expmap(x, u, u), atol=1e-9)
    close(M.geodesic_velocity(x, torch.zeros_like(u)), torch.zeros_like(u), atol=0.0)


# ---------------------------------------------------------------------- geodesic
@params
@hyp
@given(seed=seeds)
def test_geodesic_endpoints_and_midpoint(M, seed):
    g = gen(seed)
    x, y = points(M, 8, g), points(M, 8, g)
    close(M.geodesic(x, y, 0.0), x, atol=1e-12)
    close(M.geodesic(x, y, 1.0), y, atol=1e-10)
    m = M.geodesic(x, y, 0.5)
    ok, reason = M.check_point(m)
    assert ok, reason
    d = M.dist(x, y)
    close(M.dist(x, m), d / 2, atol=1e-10)
    close(M.dist(m, y), d / 2, atol=1e-10)
    # per-sample times (batch,)
    t = torch.rand(8, dtype=F64, generator=g)
    gt = M.geodesic(x, y, t)
    assert gt.shape == x.shape
    close(M.dist(x, gt), t * d, atol=1e-10)


# ---------------------------------------------------------------------- projections
@params
@hyp
@given(seed=seeds)
def test_projections(M, seed):
    g = gen(seed)
    x = points(M, 8, g)
    a = torch.randn(x.shape, dtype=F64, generator=g)
    u = M.proju(x, a)
    is_tangent(M, x, u, atol=1e-12)
    close(M.proju(x, u), u, atol=1e-12)
    p = M.projx(3.0 * a)
    ok, reason = M.check_point(p)
    assert ok, reason
    close(M.projx(p), p, atol=1e-15)
    close(M.projx(x), x, atol=1e-15)
    # Riemannian gradient: tangent, and represents the differential <egrad, v> on T_x M
    r = M.egrad2rgrad(x, a)
    is_tangent(M, x, r, atol=1e-12)
    v = tangent(M, x, g)
    close(M.inner(x, r, v), (a * v).sum(-1), atol=1e-12)


@sphere_params
def test_sphere_egrad2rgrad_is_autograd_riemannian_gradient(S):
    """For f(x) = <a, x>, grad f = a - <a, x> x: egrad2rgrad of the autograd gradient."""
    g = gen(7)
    x = points(S, 5, g).requires_grad_(True)
    a = torch.randn(x.shape, dtype=F64, generator=g)
    (a * x).sum().backward()
    close(S.egrad2rgrad(x.detach(), x.grad), a - (a * x.detach()).sum(-1, keepdim=True) * x.detach(), atol=1e-14)


# ---------------------------------------------------------------------- gradcheck
def _gc(fn, *inputs):
    inputs = tuple(t.detach().clone().requires_grad_(True) for t in inputs)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@params
def test_gradcheck_raw(M):
    """gradcheck of the raw functions at points on the manifold (perturbations leave it)."""
    g = gen(11)
    x, y = points(M, 3, g), points(M, 3, g)
    u, v = tangent(M, x, g), tangent(M, x, g)
    _gc(M.dist, x, y)
    _gc(M.expmap, x, u)
    _gc(M.logmap, x, y)
    _gc(M.transp, x, y, v)
    _gc(M.inner, x, u, v)
    _gc(M.transp_follow_expmap, x, u, v)
    _gc(M.geodesic_velocity, x, u)


@params
def test_gradcheck_projected(M):
    """gradcheck of the functions composed with the projections (a smooth chart of M)."""
    g = gen(12)
    x, y = points(M, 3, g), points(M, 3, g)
    a, b = torch.randn(x.shape, dtype=F64, generator=g), torch.randn(x.shape, dtype=F64, generator=g)
    P, T = M.projx, M.proju
    _gc(lambda p, q: M.dist(P(p), P(q)), x, y)
    _gc(lambda p, w: M.expmap(P(p), T(P(p), w)), x, a)
    _gc(lambda p, q: M.logmap(P(p), P(q)), x, y)
    _gc(lambda p, q, w: M.transp(P(p), P(q), T(P(p), w)), x, y, a)
    _gc(lambda p, w, z: M.inner(P(p), T(P(p), w), T(P(p), z)), x, a, b)


# ---------------------------------------------------------------------- finite gradients
def _special_pairs(M, dtype):
    """(name, x, y) with y == x, y = exact antipode, y 1e-7 rad from the antipode."""
    g = gen(5)
    x64 = points(M, 8, g)
    pairs = [("same", x64, x64.clone())]
    if n_spheres(M):
        pairs.append(("antipodal", x64, antipode(M, x64)))
        pairs.append(("near_antipodal", x64, at_angle(M, x64, PI - 1e-7, g)))
        pairs.append(("near_same", x64, at_angle(M, x64, 1e-7, g)))
    return [(n, a.to(dtype), b.to(dtype)) for n, a, b in pairs]


@params
@dtypes
def test_finite_gradients_at_special_points(M, dtype):
    wg = gen(9)
    for name, x0, y0 in _special_pairs(M, dtype):
        w = torch.randn(x0.shape, dtype=dtype, generator=wg)
        for fn_name, fn in [
            ("dist", lambda x, y: M.dist(x, y).sum()),
            ("dist2", lambda x, y: M.dist2(x, y).sum()),
            ("logmap", lambda x, y: (w * M.logmap(x, y)).sum()),
            ("expmap(logmap)", lambda x, y: (w * M.expmap(x, M.logmap(x, y))).sum()),
            ("transp", lambda x, y: (w * M.transp(x, y, M.proju(x, w))).sum()),
            ("geodesic", lambda x, y: (w * M.geodesic(x, y, 0.3)).sum()),
        ]:
            x, y = x0.clone().requires_grad_(True), y0.clone().requires_grad_(True)
            out = fn(x, y)
            assert torch.isfinite(out), (name, fn_name)
            if out.requires_grad:  # (Euclidean transport is the identity: no graph)
                gx, gy = torch.autograd.grad(out, (x, y), allow_unused=True, materialize_grads=True)
                assert torch.isfinite(gx).all() and torch.isfinite(gy).all(), (name, fn_name, gx, gy)
        # zero tangent vector: expmap, norm, transport along it
        x = x0.clone().requires_grad_(True)
        u = torch.zeros_like(x0, requires_grad=True)
        out = (w * M.expmap(x, u)).sum() + M.norm(x, u).sum() + (w * M.transp_follow_expmap(x, u, w)).sum()
        out = out + (w * M.geodesic_velocity(x, u)).sum()
        out.backward()
        assert_finite(out, x.grad, u.grad)


@params
def test_dist_gradient_is_zero_subgradient_at_same_point(M):
    x = points(M, 4, gen(2)).requires_grad_(True)
    y = x.detach().clone().requires_grad_(True)
    M.dist(x, y).sum().backward()
    assert (x.grad == 0).all() and (y.grad == 0).all()


# ---------------------------------------------------------------------- float32 vs float64
@sphere_params
@pytest.mark.parametrize("theta", [1e-6, 1e-4, 1e-2, 1.0, PI - 1e-3])
def test_sphere_dist_float32_accuracy(S, theta):
    g = gen(4)
    x64 = points(S, 64, g)
    y64 = at_angle(S, x64, theta, g)
    x32, y32 = x64.float(), y64.float()
    ref = S.dist(x32.double(), y32.double())  # the exact distance between the float32 inputs
    close(S.dist(x32, y32).double(), ref, atol=0.0, rtol=1e-3)
    # axis-aligned pair whose float32 rounding does not move the angle
    e = torch.zeros(S.dim + 1, dtype=F64)
    e[0] = 1.0
    f = e.roll(1) * math.sin(theta) + e * math.cos(theta)
    d32 = S.dist(e.float(), f.float()).double()
    assert abs(d32 - theta) <= 1e-3 * theta


def test_sphere_dist_float32_beats_geoopt_floor():
    # geoopt computes acos(clamp(<x, y>, -1 + eps, 1 - eps)) with eps = 1e-4 in float32
    # (1e-7 in float64): its Sphere.dist floors at acos(1 - 1e-4) = 0.014143 rad in
    # float32 (4.47e-4 rad in float64), so for 1e-4 rad it returns ~0.0141 (141x too large).
    # Our 2 atan2(|x - y|, |x + y|) is accurate to a few ulps there.
    S = Sphere(2)
    theta = 1e-4
    x = torch.tensor([1.0, 0.0, 0.0])
    y = torch.tensor([math.cos(theta), math.sin(theta), 0.0])
    ours = float(S.dist(x, y))
    theirs = float(geoopt.Sphere().dist(x, y))
    assert abs(ours - theta) <= 1e-3 * theta
    assert abs(ours - theta) <= abs(theirs - theta)


@params
def test_float32_matches_float64(M):
    g = gen(21)
    x64, y64 = points(M, 256, g), points(M, 256, g)
    u64 = tangent(M, x64, g)
    x, y, u = x64.float(), y64.float(), u64.float()
    xd, yd, ud = x.double(), y.double(), u.double()
    close(M.expmap(x, u).double(), M.expmap(xd, ud), atol=1e-5)
    close(M.dist(x, y).double(), M.dist(xd, yd), atol=1e-5)
    # logmap is ill-conditioned next to the antipode (direction error ~ eps / sin(θ)):
    # compare pairs at least 0.05 rad away from it in every sphere factor.
    keep = torch.ones(256, dtype=torch.bool)
    parts = M.split(xd) if isinstance(M, Product) else [xd]
    others = M.split(yd) if isinstance(M, Product) else [yd]
    factors = list(M.factors) if isinstance(M, Product) else [M]
    for m, a, b in zip(factors, parts, others):
        if isinstance(m, Sphere):
            keep &= m.dist(a, b) < PI - 0.05
    assert keep.sum() > 200
    close(M.logmap(x, y).double()[keep], M.logmap(xd, yd)[keep], atol=1e-5, rtol=0.0)
    close(M.transp(x, y, u).double()[keep], M.transp(xd, yd, ud)[keep], atol=1e-5, rtol=0.0)


# ---------------------------------------------------------------------- oracles
@sphere_params
def test_geomstats_oracle(S):
    import numpy as np

    gs_sphere = geomstats_sphere(S.dim)
    metric = gs_sphere.metric
    g = gen(31)
    x, y = points(S, 64, g), points(S, 64, g)
    u = tangent(S, x, g, 1.5)
    v = tangent(S, x, g)
    xn, yn, un, vn = (t.numpy() for t in (x, y, u, v))
    np.testing.assert_allclose(S.dist(x, y).numpy(), metric.dist(xn, yn), atol=1e-10, rtol=0)
    np.testing.assert_allclose(S.expmap(x, u).numpy(), metric.exp(un, xn), atol=1e-10, rtol=0)
    np.testing.assert_allclose(S.logmap(x, y).numpy(), metric.log(yn, xn), atol=1e-10, rtol=0)
    np.testing.assert_allclose(
        S.transp(x, y, v).numpy(), metric.parallel_transport(vn, xn, end_point=yn), atol=1e-10, rtol=0
    )
    # transport along a direction, including past the cut locus (|u| up to ~6)
    u_long = tangent(S, x, g, 3.0)
    np.testing.assert_allclose(
        S.transp_follow_expmap(x, u_long, v).numpy(),
        metric.parallel_transport(vn, xn, direction=u_long.numpy()),
        atol=1e-10,
        rtol=0,
    )
    # our random points lie on geomstats' sphere
    assert gs_sphere.belongs(S.random(16, S.dim + 1, dtype=F64).numpy()).all()


@sphere_params
def test_geoopt_sphere_exact_oracle(S):
    ref = geoopt.SphereExact()
    g = gen(41)
    x, y = points(S, 64, g), points(S, 64, g)
    u = tangent(S, x, g, 1.5)
    close(S.expmap(x, u), ref.expmap(x, u), atol=1e-10)
    close(S.logmap(x, y), ref.logmap(x, y), atol=1e-9)
    close(S.dist(x, y), ref.dist(x, y), atol=1e-10)
    # (geoopt's Sphere.transp is the projection proju(y, v), not parallel transport.)


# ---------------------------------------------------------------------- sampling and densities
@sphere_params
def test_sphere_random_is_uniform(S):
    n = S.dim + 1
    N = 20000
    x = S.random(N, n, dtype=F64, generator=gen(0))
    assert x.shape == (N, n) and x.dtype == F64
    ok, reason = S.check_point(x)
    assert ok, reason
    assert x.mean(0).abs().max() < 4 / math.sqrt(N)
    second = x.T @ x / N
    close(second, torch.eye(n, dtype=F64) / n, atol=0.015)
    # reproducible with the same generator, float32 by default
    close(S.random(5, n, generator=gen(1)), S.random(5, n, generator=gen(1)), atol=0.0)
    assert S.random(5, n).dtype == torch.get_default_dtype()


def test_base_log_prob_values():
    x = torch.randn(7, 3, dtype=F64)
    close(Sphere(2).base_log_prob(Sphere(2).projx(x)), torch.full((7,), -math.log(4 * PI), dtype=F64), atol=1e-15)
    close(Sphere(1).base_log_prob(torch.randn(7, 2)), torch.full((7,), -math.log(2 * PI)), atol=1e-6)
    close(Sphere(5).base_log_prob(torch.randn(7, 6)), torch.full((7,), -3 * math.log(PI)), atol=1e-6)  # |S⁵| = π³
    for scale in (1.0, 2.5):
        E = Euclidean(3, base_scale=scale)
        ref = torch.distributions.Normal(torch.zeros((), dtype=F64), scale).log_prob(x).sum(-1)
        close(E.base_log_prob(x), ref, atol=1e-12)
    assert Sphere(2).base_log_prob(x.float()).dtype == F32


@params
def test_base_sampling_and_product_log_prob(M):
    x = M.random_base(4, 5, *M.event_shape, dtype=F64, generator=gen(0))
    assert x.shape == (4, 5) + tuple(M.event_shape)
    ok, reason = M.check_point(x)
    assert ok, reason
    lp = M.base_log_prob(x)
    assert lp.shape == (4, 5) and torch.isfinite(lp).all()
    if isinstance(M, Product):
        expected = sum(m.base_log_prob(p) for m, p in zip(M.factors, M.split(x)))
        close(lp, expected, atol=1e-12)


def test_product_base_log_prob_is_sum():
    M = Product(Sphere(2), Euclidean(2))
    x = M.random_base(6, 5, dtype=F64, generator=gen(2))
    s, e = M.split(x)
    ref = torch.distributions.Normal(torch.zeros((), dtype=F64), 1.0).log_prob(e).sum(-1) - math.log(4 * PI)
    close(M.base_log_prob(x), ref, atol=1e-12)


def test_random_rejects_wrong_size():
    with pytest.raises(ValueError):
        Sphere(2).random(4, 4)
    with pytest.raises(ValueError):
        Product(Sphere(2), Euclidean(2)).random(4, 4)


# ---------------------------------------------------------------------- checks and construction
@params
@dtypes
def test_check_point_and_vector(M, dtype):
    x = points(M, 4, gen(0), dtype)
    u = tangent(M, x, gen(1))
    assert M.check_point(x) == (True, None)
    assert M.check_vector(x, u) == (True, None)
    M.assert_check_point_on_manifold(x)
    M.assert_check_vector_on_tangent(x, u)
    # wrong trailing shape
    bad = torch.zeros(4, M.event_shape[0] + 1, dtype=dtype)
    ok, reason = M.check_point(bad)
    assert not ok and "trailing shape" in reason
    ok, reason = M.check_vector(x, bad)
    assert not ok and "trailing shape" in reason
    # NaN / inf
    xn = x.clone()
    xn[1, 0] = float("nan")
    ok, reason = M.check_point(xn)
    assert not ok and "NaN" in reason
    un = u.clone()
    un[0, -1] = float("inf")
    ok, reason = M.check_vector(x, un)
    assert not ok and "NaN" in reason
    with pytest.raises(ValueError, match="NaN"):
        M.assert_check_point_on_manifold(xn)
    with pytest.raises(ValueError):
        M.assert_check_vector_on_tangent(x, un)
    if n_spheres(M):
        ok, reason = M.check_point(1.1 * x)
        assert not ok and "unit norm" in reason
        with pytest.raises(ValueError, match="unit norm"):
            M.assert_check_point_on_manifold(1.1 * x)
        ok, reason = M.check_vector(x, u + x)
        assert not ok and "orthogonal" in reason
        with pytest.raises(ValueError):
            M.assert_check_vector_on_tangent(x, u + x)


def test_product_check_reason_names_block():
    M = Product(Euclidean(2), Sphere(2))
    x = M.random(3, 5, dtype=F64)
    x[..., 2:] *= 2
    ok, reason = M.check_point(x)
    assert not ok and "block 1" in reason and "Sphere" in reason


def test_invalid_constructors():
    for bad in (0, -1, 1.5, None):
        with pytest.raises(ValueError):
            Sphere(bad)
    for bad in (0, -2, 2.0):
        with pytest.raises(ValueError):
            Euclidean(bad)
    with pytest.raises(ValueError):
        Euclidean(2, base_scale=0.0)
    with pytest.raises(ValueError):
        Product()
    with pytest.raises(ValueError):
        Product(Sphere(2), "not a manifold")
    with pytest.raises(ValueError):
        Product.power(Sphere(2), 0)


def test_product_split_join_roundtrip_and_shapes():
    M = Product(Sphere(2), Euclidean(2), Sphere(1))
    assert M.event_shape == (7,) and M.dim == 5 and M.n_factors == 3
    x = M.random(4, 2, 7, dtype=F64, generator=gen(0))
    parts = M.split(x)
    assert [p.shape for p in parts] == [(4, 2, 3), (4, 2, 2), (4, 2, 2)]
    close(M.join(parts), x, atol=0.0)
    # join broadcasts batch dimensions
    j = M.join([parts[0], parts[1][:1], parts[2][:1, :1]])
    assert j.shape == (4, 2, 7)
    with pytest.raises(ValueError):
        M.join(parts[:2])


def test_product_merges_equal_factors():
    S2, R2 = Sphere(2), Euclidean(2)
    merged = Product(S2, S2, R2)  # blocks: S2^2, R2
    alternating = Product(S2, R2, S2)  # blocks: S2, R2, S2 (nothing to merge)
    assert len(merged._blocks) == 2 and merged._blocks[0][1] == 2
    assert len(alternating._blocks) == 3
    assert len(Product.power(S2, 16)._blocks) == 1

    def perm(t):  # merged layout -> alternating layout
        a, b, c = merged.split(t)
        return alternating.join([a, c, b])

    g = gen(8)
    x, y = points(merged, 6, g), points(merged, 6, g)
    u, v = tangent(merged, x, g), tangent(merged, x, g)
    X, Y, U, V = map(perm, (x, y, u, v))
    for a, b in [
        (merged.dist(x, y), alternating.dist(X, Y)),
        (merged.inner(x, u, v), alternating.inner(X, U, V)),
        (merged.base_log_prob(x), alternating.base_log_prob(X)),
        (perm(merged.expmap(x, u)), alternating.expmap(X, U)),
        (perm(merged.logmap(x, y)), alternating.logmap(X, Y)),
        (perm(merged.transp(x, y, v)), alternating.transp(X, Y, V)),
        (perm(merged.proju(x, 2 * u + x)), alternating.proju(X, 2 * U + X)),
        (perm(merged.projx(3 * x)), alternating.projx(3 * X)),
        (perm(merged.geodesic_velocity(x, u)), alternating.geodesic_velocity(X, U)),
    ]:
        close(a, b, atol=1e-14)
    ci, CI = merged.component_inner(x, u, v), alternating.component_inner(X, U, V)
    close(ci[..., [0, 2, 1]], CI, atol=1e-14)
    # a nested product is not merged but has the same flat layout
    nested = Product(Product(S2), S2, R2)
    assert len(nested._blocks) == 3
    close(nested.logmap(x, y), merged.logmap(x, y), atol=1e-14)


def test_component_inner_and_expand_component():
    M = Product(Sphere(2), Sphere(2), Euclidean(2))
    x = M.random(4, 8, dtype=F64, generator=gen(0))
    u = tangent(M, x, gen(1))
    ci = M.component_inner(x, u)
    assert ci.shape == (4, 3)
    parts, xs = M.split(u), M.split(x)
    expected = torch.stack([m.inner(a, b) for m, a, b in zip(M.factors, xs, parts)], -1)
    close(ci, expected, atol=1e-14)
    close(ci.sum(-1), M.inner(x, u), atol=1e-14)
    ex = M.expand_component(ci)
    assert ex.shape == (4, 8)
    close(ex[:, :3], ci[:, :1].expand(4, 3), atol=0.0)
    close(ex[:, 6:], ci[:, 2:].expand(4, 2), atol=0.0)
    # single manifolds: one scalar per point (Sphere), one per coordinate (Euclidean)
    S = Sphere(2)
    xs_, us_ = S.random(4, 3, dtype=F64), tangent(S, S.random(4, 3, dtype=F64), gen(2))
    assert S.component_inner(xs_, us_).shape == (4, 1)
    assert S.expand_component(S.component_inner(xs_, us_)).shape == (4, 1)
    assert Euclidean(3).component_inner(xs_, us_).shape == (4, 3)


# ---------------------------------------------------------------------- geoopt interop
@params
def test_geoopt_manifold_parameter(M):
    p = geoopt.ManifoldParameter(M.random(4, *M.event_shape), manifold=M)
    assert isinstance(p, geoopt.ManifoldParameter) and p.manifold is M and p.requires_grad
    opt = geoopt.optim.RiemannianSGD([p], lr=0.1)
    target = M.random(4, *M.event_shape, generator=gen(0))
    M.dist2(p, target).sum().backward()
    opt.step()
    ok, reason = M.check_point(p.detach())
    assert ok, reason
    with pytest.raises(ValueError):
        geoopt.ManifoldParameter(torch.randn(4, M.event_shape[0] + 1), manifold=M)
