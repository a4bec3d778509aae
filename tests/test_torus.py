"""Tests of the flat torus (S¹)ᵈ in angle coordinates."""

import math

import geoopt
import pytest
import torch

import manifolds
from manifolds import RiemannianAdam, Torus
from manifolds.flow_matching import GeodesicProbPath

F64 = torch.float64
TWO_PI = 2 * math.pi


def angdiff(a, b):
    """Signed smallest difference a - b mod 2π (reference, float64)."""
    d = (a - b).double()
    return torch.remainder(d + math.pi, TWO_PI) - math.pi


def assert_same_angles(a, b, atol):
    assert angdiff(a, b).abs().max() <= atol


def in_interval(x):
    return bool(((x >= 0) & (x < TWO_PI)).all())


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def test_exported_and_shapes():
    assert "Torus" in manifolds.__all__
    T = Torus(3)
    assert T.event_shape == (3,) and T.dim == 3 and T.ndim == 1
    assert T._key() == Torus(3)._key() != Torus(2)._key()
    x = T.random(4, 5, 3)
    assert x.shape == (4, 5, 3) and in_interval(x)
    assert T.dist(x, x).shape == (4, 5)
    assert T.inner(x, x, keepdim=True).shape == (4, 5, 1)
    assert T.component_inner(x, x).shape == (4, 5, 1)
    assert torch.equal(T.origin_point(x), torch.zeros_like(x))
    with pytest.raises(ValueError):
        T.random(4, 2)


@pytest.mark.parametrize("bad", [0, -1, 2.0, None, True])
def test_bad_dim(bad):
    with pytest.raises(ValueError):
        Torus(bad)


@pytest.mark.parametrize("d", [1, 2, 5])
def test_round_trip(d, gen):
    T = Torus(d)
    x, y = T.random(200, d, dtype=F64, generator=gen), T.random(200, d, dtype=F64, generator=gen)
    u = T.logmap(x, y)
    assert bool((u >= -math.pi).all() & (u < math.pi).all())
    z = T.expmap(x, u)
    assert in_interval(z)
    assert_same_angles(z, y, 1e-12)
    torch.testing.assert_close(T.norm(x, u), T.dist(x, y))
    # expmap of a short vector, then logmap, gives the vector back
    v = (torch.rand(200, d, dtype=F64, generator=gen) - 0.5) * 2 * 3.0
    torch.testing.assert_close(T.logmap(x, T.expmap(x, v)), v, atol=1e-12, rtol=0)
    # long vectors wind around
    assert_same_angles(T.expmap(x, v + TWO_PI * 3), x + v, 1e-12)


@pytest.mark.parametrize("d", [1, 3])
def test_metric_axioms(d, gen):
    T = Torus(d)
    x, y, z = (T.random(500, d, dtype=F64, generator=gen) for _ in range(3))
    dxy, dyx = T.dist(x, y), T.dist(y, x)
    torch.testing.assert_close(dxy, dyx, atol=1e-14, rtol=0)
    assert bool((T.dist(x, z) <= dxy + T.dist(y, z) + 1e-12).all())
    assert bool((dxy <= math.pi * math.sqrt(d) + 1e-12).all())
    assert bool((T.dist(x, x) == 0).all())
    torch.testing.assert_close(T.dist2(x, y), dxy**2)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_wrap_around(dtype):
    T = Torus(1)
    x = torch.tensor([0.1], dtype=dtype)
    y = torch.tensor([TWO_PI - 0.1], dtype=dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert abs(float(T.dist(x, y)) - 0.2) < tol
    assert abs(float(T.logmap(x, y)) + 0.2) < tol
    assert abs(float(T.logmap(y, x)) - 0.2) < tol
    assert abs(float(T.expmap(y, torch.tensor([0.2], dtype=dtype))) - 0.1) < tol
    T2 = Torus(2)
    assert abs(float(T2.dist(torch.tensor([0.1, 3.0]), torch.tensor([TWO_PI - 0.1, 3.0]))) - 0.2) < 1e-6


def test_antipode_choice():
    T = Torus(2)
    x = torch.tensor([[0.0, 1.0], [math.pi, 4.0]], dtype=F64)
    y = torch.remainder(x + math.pi, TWO_PI)
    u = T.logmap(x, y)
    assert bool((u < math.pi).all())
    torch.testing.assert_close(u.abs(), torch.full_like(u, math.pi), atol=1e-12, rtol=0)
    torch.testing.assert_close(T.dist(x, y), torch.full((2,), math.pi * math.sqrt(2), dtype=F64))
    assert_same_angles(T.expmap(x, u), y, 1e-12)


def test_projx_and_tiny_negative():
    T = Torus(2)
    x = torch.tensor([[-1e-10, TWO_PI], [7.0, -7.0]])
    p = T.projx(x)
    assert in_interval(p)
    assert T.check_point(p)[0]
    assert_same_angles(p, x, 1e-6)
    # expmap of a tiny step below 0 stays in [0, 2π) in float32
    z = T.expmap(torch.zeros(2), torch.full((2,), -1e-10))
    assert in_interval(z)


def test_gradcheck(gen):
    T = Torus(3)
    x = T.random(6, 3, dtype=F64, generator=gen).requires_grad_()
    # keep away from the cut locus, where logmap jumps
    y = (x.detach() + (torch.rand(6, 3, dtype=F64, generator=gen) - 0.5) * 5.0).requires_grad_()
    u = ((torch.rand(6, 3, dtype=F64, generator=gen) - 0.5) * 0.5).requires_grad_()
    xi = (torch.rand(6, 3, dtype=F64, generator=gen) * 5 + 0.5).requires_grad_()  # away from the wrap at 0
    assert torch.autograd.gradcheck(lambda a, b: T.dist(a, b), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: T.logmap(a, b), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: T.expmap(a, b), (xi, u))
    assert torch.autograd.gradgradcheck(lambda a, b: T.dist2(a, b), (x, y))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_finite_grad_at_special_points(dtype):
    T = Torus(2)
    x = torch.tensor([[0.3, 5.0], [0.0, 0.0]], dtype=dtype, requires_grad=True)
    # x == y: zero subgradient
    (g,) = torch.autograd.grad(T.dist(x, x.detach()).sum(), x)
    assert torch.isfinite(g).all() and bool((g == 0).all())
    # antipodal points
    y = torch.remainder(x.detach() + math.pi, TWO_PI)
    (g,) = torch.autograd.grad(T.dist(x, y).sum() + T.logmap(x, y).sum(), x)
    assert torch.isfinite(g).all()
    y = y.requires_grad_()
    (gx, gy) = torch.autograd.grad(T.dist2(x, y).sum(), (x, y))
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all()


def test_float32_matches_float64(gen):
    T = Torus(4)
    x, y = T.random(1000, 4, dtype=F64, generator=gen), T.random(1000, 4, dtype=F64, generator=gen)
    # include close pairs, where relative accuracy of small distances matters
    y[:100] = T.expmap(x[:100], 1e-4 * torch.randn(100, 4, dtype=F64, generator=gen))
    x32, y32 = x.float(), y.float()
    d64 = T.dist(x32.double(), y32.double())
    torch.testing.assert_close(T.dist(x32, y32).double(), d64, atol=2e-6, rtol=0)
    torch.testing.assert_close(T.logmap(x32, y32).double(), T.logmap(x32.double(), y32.double()), atol=2e-6, rtol=0)
    assert_same_angles(T.expmap(x32, T.logmap(x32, y32)), y32, 2e-6)
    assert T.dist(x32, y32).dtype == torch.float32


def test_base_distribution(gen):
    T = Torus(3)
    x = T.random_base(10000, 3, dtype=F64, generator=gen)
    assert in_interval(x)
    lp = T.base_log_prob(x)
    assert lp.shape == (10000,) and lp.dtype == F64
    torch.testing.assert_close(lp, torch.full_like(lp, -3 * math.log(TWO_PI)))
    assert abs(float(x.mean()) - math.pi) < 0.05
    # density integrates to 1: volume (2π)^d times exp(log p)
    assert abs(math.exp(T.log_volume() + float(lp[0])) - 1) < 1e-12
    assert in_interval(T.random(100000, 3, dtype=torch.float32, generator=gen))


def test_checks():
    T = Torus(2)
    ok, reason = T.check_point(torch.tensor([0.5, float("nan")]))
    assert not ok and "NaN" in reason
    assert T.check_point(torch.tensor([0.0, TWO_PI - 1e-3]))[0]
    ok, reason = T.check_point(torch.tensor([-0.5, 1.0]))
    assert not ok and "[0, 2π)" in reason
    assert not T.check_point(torch.tensor([7.0, 1.0]))[0]
    assert not T.check_point(torch.zeros(3))[0]  # wrong shape
    with pytest.raises(ValueError):
        T.assert_check_point_on_manifold(torch.tensor([0.5, float("inf")]))
    x = torch.tensor([0.5, 1.0])
    assert T.check_vector(x, torch.tensor([10.0, -20.0]))[0]
    assert not T.check_vector(x, torch.tensor([float("nan"), 0.0]))[0]


def test_transport_is_identity(gen):
    T = Torus(2)
    x = T.random(5, 2, dtype=F64, generator=gen)
    u, v = torch.randn(5, 2, dtype=F64, generator=gen), torch.randn(5, 2, dtype=F64, generator=gen)
    y = T.expmap(x, u)
    assert torch.equal(T.transp(x, y, v), v)
    assert torch.equal(T.transp_follow_expmap(x, u, v), v)
    assert torch.equal(T.geodesic_velocity(x, u), u)
    y2, v2 = T.expmap_transp(x, u, v)
    assert torch.equal(y2, y) and torch.equal(v2, v)
    assert torch.equal(T.proju(x, v), v) and torch.equal(T.egrad2rgrad(x, v), v)
    # geodesic endpoints
    z = T.random(5, 2, dtype=F64, generator=gen)
    assert_same_angles(T.geodesic(x, z, 0.0), x, 1e-12)
    assert_same_angles(T.geodesic(x, z, 1.0), z, 1e-12)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_riemannian_adam_keeps_points_on_torus(weight_decay, gen):
    T = Torus(2)
    target = T.random(64, 2, generator=gen)
    p = geoopt.ManifoldParameter(T.random(64, 2, generator=gen), manifold=T)
    opt = RiemannianAdam([p], lr=0.3, weight_decay=weight_decay)
    start = float(T.dist(p.detach(), target).mean())
    for _ in range(100):
        opt.zero_grad()
        T.dist2(p, target).sum().backward()
        opt.step()
        assert in_interval(p.detach()) and T.check_point(p.detach())[0]
    if weight_decay == 0:
        assert float(T.dist(p.detach(), target).mean()) < 0.1 * start


def test_flow_matching_velocity_matches_jvp(gen):
    T = Torus(2)
    n = 256
    x0 = T.random_base(n, 2, dtype=F64, generator=gen)
    x1 = T.random(n, 2, dtype=F64, generator=gen)
    # stay away from the cut locus, where the geodesic is not unique
    keep = (T.logmap(x1, x0).abs() < math.pi - 1e-3).all(-1)
    x0, x1 = x0[keep], x1[keep]
    t = torch.rand(x0.shape[0], dtype=F64, generator=gen)
    path = GeodesicProbPath(T)
    s = path.sample(x0, x1, t)
    _, jvp = torch.func.jvp(lambda tt: path.sample(x0, x1, tt).x_t, (t,), (torch.ones_like(t),))
    torch.testing.assert_close(s.dx_t, jvp, atol=1e-12, rtol=1e-12)
    assert T.check_point(s.x_t)[0] and in_interval(s.x_t)
    assert_same_angles(path.sample(x0, x1, torch.zeros_like(t)).x_t, x0, 1e-12)
    assert_same_angles(path.sample(x0, x1, torch.ones_like(t)).x_t, x1, 1e-12)
    torch.testing.assert_close(T.norm(s.x_t, s.dx_t), T.dist(x0, x1))
    # the path is the straight line x1 + (1 - t) logmap(x1, x0) wrapped
    assert_same_angles(s.x_t, x1 + (1 - t)[:, None] * T.logmap(x1, x0), 1e-12)
