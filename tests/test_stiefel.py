"""Tests of manifolds.stiefel.Stiefel (embedded metric)."""

import math

import geoopt
import pytest
import torch

from manifolds import Sphere
from manifolds.stiefel import Stiefel

F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _tangent(St, x, seed=0, scale=1.0):
    return scale * St.proju(x, torch.randn(x.shape, dtype=x.dtype, generator=_gen(seed)))


def test_construction_and_checks():
    St = Stiefel(5, 3)
    assert St.event_shape == (5, 3) and St.dim == 15 - 6 and St.ndim == 2
    assert Stiefel(4, 4).dim == 6  # O(4)
    for bad in ((0, 1), (2, 3), (3, 1.0), (True, 1)):
        with pytest.raises(ValueError):
            Stiefel(*bad)
    x = St.random(4, 5, 3, dtype=F64, generator=_gen())
    assert St.check_point(x) == (True, None)
    ok, reason = St.check_point(x + 1e-3)
    assert not ok and "orthonormal" in reason
    u = _tangent(St, x)
    assert St.check_vector(x, u)[0]
    ok, reason = St.check_vector(x, u + x)
    assert not ok and "skew" in reason
    with pytest.raises(ValueError):
        St.random(2, 5, 2)


def test_random_is_haar():
    """Sign-fixed QR: E[X] = 0, E[X Xᵀ] = (p/n) I, and the first column is uniform on S^{n−1}."""
    St = Stiefel(4, 2)
    x = St.random(4000, 4, 2, dtype=F64, generator=_gen(1))
    assert St.check_point(x)[0]
    torch.testing.assert_close(x.mean(0), torch.zeros(4, 2, dtype=F64), atol=0.04, rtol=0)
    torch.testing.assert_close((x @ x.mT).mean(0), 0.5 * torch.eye(4, dtype=F64), atol=0.03, rtol=0)
    # without the sign fix diag(R) > 0 would bias x[0, 0] to be positive
    assert abs(float((x[:, 0, 0] > 0).double().mean()) - 0.5) < 0.04


def test_log_volume():
    for n in (2, 3, 5):
        assert math.isclose(Stiefel(n, 1).log_volume(), Sphere(n - 1).log_volume())
    assert math.isclose(Stiefel(2, 2).log_volume(), math.log(4 * math.sqrt(2) * math.pi))  # O(2), embedded
    x = Stiefel(3, 2).random_base(7, 3, 2)
    assert Stiefel(3, 2).base_log_prob(x).shape == (7,)


def test_against_geoopt_exact():
    St = Stiefel(6, 3)
    g = geoopt.EuclideanStiefelExact()
    x = St.random(5, 6, 3, dtype=F64, generator=_gen(2))
    w = torch.randn(5, 6, 3, dtype=F64, generator=_gen(3))
    torch.testing.assert_close(St.proju(x, w), g.proju(x, w), atol=1e-14, rtol=0)
    torch.testing.assert_close(St.egrad2rgrad(x, w), g.egrad2rgrad(x, w), atol=1e-14, rtol=0)
    u = St.proju(x, w)
    for s in (0.1, 1.0, 3.0):
        torch.testing.assert_close(St.expmap(x, s * u), g.expmap(x, s * u), atol=1e-12, rtol=0)
    torch.testing.assert_close(St.inner(x, u, w), g.inner(x, u, w), atol=1e-13, rtol=0)


def test_expmap_is_a_geodesic():
    """Finite differences: y′(0) = u, acceleration normal to the tangent space, constant speed."""
    St = Stiefel(5, 2)
    x = St.random(3, 5, 2, dtype=F64, generator=_gen(4))
    u = _tangent(St, x, seed=5)
    torch.testing.assert_close(St.expmap(x, torch.zeros_like(u)), x, atol=1e-15, rtol=0)
    h = 1e-4
    vel0 = (St.expmap(x, h * u) - St.expmap(x, -h * u)) / (2 * h)
    torch.testing.assert_close(vel0, u, atol=1e-7, rtol=0)
    t = 0.8
    y0, y1, y2 = (St.expmap(x, s * u) for s in (t - h, t, t + h))
    acc = (y2 - 2 * y1 + y0) / h**2
    vel = (y2 - y0) / (2 * h)
    assert float(St.proju(y1, acc).abs().max()) < 1e-5
    torch.testing.assert_close(St.norm(y1, vel), St.norm(x, u), atol=1e-7, rtol=0)
    assert St.check_point(St.expmap(x, 5 * u))[0]


def test_retraction_and_transport():
    St = Stiefel(5, 3)
    x = St.random(2, 5, 3, dtype=F64, generator=_gen(6))
    u, v = _tangent(St, x, seed=7), _tangent(St, x, seed=8)
    y = St.retr(x, u)
    assert St.check_point(y)[0]
    # polar retraction: (x + u)(I + uᵀu)^{-1/2} for tangent u
    lam, q = torch.linalg.eigh(torch.eye(3, dtype=F64) + u.mT @ u)
    torch.testing.assert_close(y, (x + u) @ (q * lam.rsqrt().unsqueeze(-2)) @ q.mT, atol=1e-13, rtol=0)
    # second order: |retr − exp| = O(|u|³)
    e1 = float((St.retr(x, 1e-2 * u) - St.expmap(x, 1e-2 * u)).abs().max())
    e2 = float((St.retr(x, 5e-3 * u) - St.expmap(x, 5e-3 * u)).abs().max())
    assert 5 < e1 / e2 < 11
    # transport = projection onto the tangent space at the end point
    tv = St.transp(x, y, v)
    assert St.check_vector(y, tv)[0]
    torch.testing.assert_close(tv, St.proju(y, v))
    y2, tv2 = St.retr_transp(x, u, v)
    torch.testing.assert_close(y2, y)
    torch.testing.assert_close(tv2, tv)
    y3, tv3 = St.expmap_transp(x, u, v)
    torch.testing.assert_close(tv3, St.proju(St.expmap(x, u), v))


def test_unavailable_maps_raise():
    St = Stiefel(4, 2)
    x, y = St.random(2, 4, 2)
    with pytest.raises(NotImplementedError, match="closed form"):
        St.logmap(x, y)
    with pytest.raises(NotImplementedError, match="logarithm"):
        St.dist(x, y)


def test_projx_polar_factor():
    St = Stiefel(5, 2)
    a = torch.randn(3, 5, 2, dtype=F64, generator=_gen(9))
    x = St.projx(a)
    u, _, vh = torch.linalg.svd(a, full_matrices=False)
    torch.testing.assert_close(x, u @ vh, atol=1e-13, rtol=0)
    # gradient finite on the manifold (all singular values 1), where SVD-based polar gives NaN
    x0 = St.random(5, 2, dtype=F64, generator=_gen(10)).requires_grad_()
    assert torch.autograd.gradcheck(St.projx, (x0,))


def test_gradcheck_expmap():
    St = Stiefel(4, 2)
    x = St.random(4, 2, dtype=F64, generator=_gen(11)).requires_grad_()
    u = _tangent(St, x.detach(), seed=12).requires_grad_()
    assert torch.autograd.gradcheck(St.expmap, (x, u))
    assert torch.autograd.gradcheck(St.expmap, (x, torch.zeros_like(u).requires_grad_()))
    assert torch.autograd.gradcheck(St.retr, (x, u))


def test_float32_matches_float64():
    St = Stiefel(6, 3)
    x = St.random(4, 6, 3, dtype=F64, generator=_gen(13))
    u = _tangent(St, x, seed=14)
    for f in (St.expmap, St.retr, St.proju):
        r64, r32 = f(x, u), f(x.float(), u.float())
        assert r32.dtype == torch.float32
        torch.testing.assert_close(r32.double(), r64, atol=1e-5, rtol=0)
    assert St.check_point(St.expmap(x.float(), u.float()))[0]


def test_riemannian_adam_brockett():
    """min −tr(XᵀAXN), N = diag(3, 2, 1): the top-3 eigenvectors of A in order (up to sign)."""
    from manifolds import RiemannianAdam

    n, p = 7, 3
    St = Stiefel(n, p)
    q = torch.linalg.qr(torch.randn(n, n, dtype=F64, generator=_gen(15)))[0]
    a = (q * torch.linspace(1.0, 4.0, n, dtype=F64)) @ q.mT
    N = torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=F64))
    x = geoopt.ManifoldParameter(St.random(n, p, dtype=F64, generator=_gen(16)), manifold=St)
    opt = RiemannianAdam([x], lr=0.05)
    for _ in range(500):
        opt.zero_grad()
        loss = -torch.trace(x.mT @ a @ x @ N)
        loss.backward()
        opt.step()
    assert St.check_point(x.detach())[0]
    vec = torch.linalg.eigh(a)[1][:, -p:].flip(-1)  # descending eigenvalues
    torch.testing.assert_close((vec.mT @ x.detach()).abs(), torch.eye(p, dtype=F64), atol=1e-4, rtol=0)
