"""Tests of manifolds.SPD and its metrics (AIM, LEM, LCM, EM, BWM)."""

import geoopt
import numpy as np
import pytest
import torch

import manifolds
from manifolds import SPD
from manifolds.spd import (
    AffineInvariantMetric,
    BuresWassersteinMetric,
    EuclideanMetric,
    LogCholeskyMetric,
    LogEuclideanMetric,
)

METRICS = ["aim", "lem", "lcm", "em", "bwm"]
TRANSPORT = ["aim", "lem", "lcm", "em"]  # closed-form transport
F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _points(M, *batch, seed=0, dtype=F64, std=0.5):
    return M.random(*batch, M.n, M.n, dtype=dtype, generator=_gen(seed), std=std)


def _sym(n, *batch, seed=0, dtype=F64, scale=0.5):
    a = torch.randn(*batch, n, n, dtype=dtype, generator=_gen(seed))
    return scale * (a + a.mT) / 2


def _repeated(n=3, dtype=F64):
    """SPD matrix with a repeated eigenvalue (2, 2, 5) in a random basis."""
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=dtype, generator=_gen(7)))
    lam = torch.tensor([2.0] * (n - 1) + [5.0], dtype=dtype)
    return (q * lam) @ q.mT


# ---------------------------------------------------------------------------- construction
def test_construction_and_keys():
    M = SPD(3)
    assert isinstance(M, manifolds.Manifold) and isinstance(M, geoopt.Manifold)
    assert M.event_shape == (3, 3) and M.dim == 6 and M.ndim == 2
    assert isinstance(M.metric, AffineInvariantMetric)
    assert isinstance(SPD(2, "lem").metric, LogEuclideanMetric)
    assert isinstance(SPD(2, "lcm").metric, LogCholeskyMetric)
    assert isinstance(SPD(2, "em").metric, EuclideanMetric)
    assert isinstance(SPD(2, BuresWassersteinMetric()).metric, BuresWassersteinMetric)
    assert SPD(3, "aim")._key() == SPD(3, "affine")._key()
    assert SPD(3, "aim")._key() != SPD(3, "lem")._key()
    assert SPD(3)._key() != SPD(4)._key()
    with pytest.raises(ValueError, match="unknown SPD metric"):
        SPD(3, "nope")
    with pytest.raises(ValueError, match="positive int"):
        SPD(0)
    with pytest.raises(ValueError):
        SPD(3, metric=3.0)
    with pytest.raises(NotImplementedError):  # base distribution: AIM / LEM families only
        SPD(3, "lcm").random_base(2, 3, 3)
    with pytest.raises(NotImplementedError):
        SPD(3, "lcm").base_log_prob(torch.eye(3))


# ---------------------------------------------------------------------------- identities
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("n", [2, 4])
def test_exp_log_dist(metric, n):
    M = SPD(n, metric)
    x = _points(M, 3, seed=1)
    y = _points(M, 3, seed=2)
    u = M.logmap(x, y)
    assert torch.allclose(u, u.mT)
    torch.testing.assert_close(M.expmap(x, u), y, atol=1e-10, rtol=1e-10)
    d = M.dist(x, y)
    assert d.shape == (3,)
    torch.testing.assert_close(d, M.dist(y, x), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(M.norm(x, u), d, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(M.dist(x, x), torch.zeros(3, dtype=F64), atol=1e-7, rtol=0)
    assert M.dist(x, y, keepdim=True).shape == (3, 1, 1)
    assert M.inner(x, u, keepdim=True).shape == (3, 1, 1)
    # geodesic midpoint is equidistant
    mid = M.geodesic(x, y, 0.5)
    torch.testing.assert_close(M.dist(x, mid), 0.5 * d, atol=1e-9, rtol=1e-9)
    # broadcasting: one base point against a batch
    torch.testing.assert_close(M.dist(x[:1], y), M.dist(x[:1].expand(3, n, n), y))


@pytest.mark.parametrize("metric", METRICS)
def test_egrad2rgrad(metric):
    M = SPD(3, metric)
    x = _points(M, 2, seed=3)
    g = torch.randn(2, 3, 3, dtype=F64, generator=_gen(4))  # not symmetric on purpose
    v = _sym(3, 2, seed=5)
    r = M.egrad2rgrad(x, g)
    assert torch.allclose(r, r.mT)
    torch.testing.assert_close(M.inner(x, r, v), (g * v).sum((-2, -1)), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("metric", TRANSPORT)
def test_transport_isometry(metric):
    M = SPD(3, metric)
    x, y = _points(M, 2, seed=6), _points(M, 2, seed=7)
    v, w = _sym(3, 2, seed=8), _sym(3, 2, seed=9)
    tv, tw = M.transp(x, y, v), M.transp(x, y, w)
    torch.testing.assert_close(M.inner(y, tv, tw), M.inner(x, v, w), atol=1e-10, rtol=1e-10)
    # transport of the velocity is the (negated) reverse log
    torch.testing.assert_close(M.transp(x, y, M.logmap(x, y)), -M.logmap(y, x), atol=1e-9, rtol=1e-9)
    u = M.logmap(x, y)
    y2, tv2 = M.expmap_transp(x, u, v)
    torch.testing.assert_close(y2, y, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(tv2, tv, atol=1e-10, rtol=1e-10)


def test_bwm_transport_by_ode_matches_geomstats():
    """BWM transport (ODE, manifolds._bures) against geomstats' RK4 with 200 steps (its error
    there is ~1e-11, tests/test_bures.py); isometric; logmap(x, y) ↦ −logmap(y, x)."""
    pytest.importorskip("geomstats")
    space = _gs_space("bwm")
    M = SPD(3, "bwm")
    x, y, v = _points(M, seed=1), _points(M, seed=2), _sym(3, seed=3)
    tv = M.transp(x, y, v)
    ref = space.metric.parallel_transport(v.numpy(), x.numpy(), end_point=y.numpy(), n_steps=200)
    np.testing.assert_allclose(tv.numpy(), ref, atol=1e-9, rtol=0)
    torch.testing.assert_close(M.norm(y, tv), M.norm(x, v), atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(M.transp(x, y, M.logmap(x, y)), -M.logmap(y, x), atol=1e-8, rtol=1e-8)


def test_em_expmap_may_leave_cone():
    M = SPD(2, "em")
    y = M.expmap(torch.eye(2, dtype=F64), -2 * torch.eye(2, dtype=F64))
    assert not M.check_point(y)[0]


# ---------------------------------------------------------------------------- gradients
def _gradcheck(fn, *args):
    args = [a.detach().clone().requires_grad_(True) for a in args]
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-5, rtol=1e-4)


def _sp(t):  # symmetric parametrisation for gradcheck (perturbations stay symmetric)
    return (t + t.mT) / 2


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("where", ["random", "identity", "repeated"])
def test_gradcheck_dist_logmap(metric, where):
    M = SPD(3, metric)
    y = _points(M, seed=11)
    if where == "random":
        x = _points(M, seed=10)
    elif where == "identity":
        x = torch.eye(3, dtype=F64)
    else:
        x = _repeated()
    _gradcheck(lambda a, b: M.dist(_sp(a), _sp(b)), x, y)
    _gradcheck(lambda a, b: M.logmap(_sp(a), _sp(b)), x, y)
    # y at the special point too (the other argument)
    _gradcheck(lambda a, b: M.dist(_sp(a), _sp(b)), y, x)
    _gradcheck(lambda a, b: M.logmap(_sp(a), _sp(b)), y, x)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("where", ["random", "identity", "repeated"])
def test_gradcheck_expmap(metric, where):
    M = SPD(3, metric)
    u = _sym(3, seed=12, scale=0.3)
    if where == "random":
        x = _points(M, seed=10)
    elif where == "identity":
        x = torch.eye(3, dtype=F64)
    else:
        x = _repeated()
    _gradcheck(lambda a, b: M.expmap(_sp(a), _sp(b)), x, u)
    # zero tangent vector
    _gradcheck(lambda a, b: M.expmap(_sp(a), _sp(b)), x, torch.zeros(3, 3, dtype=F64))


@pytest.mark.parametrize("metric", TRANSPORT)
def test_gradcheck_transport_special_points(metric):
    M = SPD(3, metric)
    v = _sym(3, seed=13)
    y = _points(M, seed=14)
    for x in (torch.eye(3, dtype=F64), _repeated()):
        _gradcheck(lambda a, b, c: M.transp(_sp(a), _sp(b), _sp(c)), x, y, v)


def test_gradients_finite_where_geoopt_is_nan():
    M = SPD(3)
    x = torch.eye(3, dtype=F64, requires_grad=True)
    y = (2 * torch.eye(3, dtype=F64)).requires_grad_(True)
    (M.dist(x, y) + M.logmap(x, y).sum() + M.expmap(x, torch.zeros_like(x)).sum()).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()


# ---------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("metric", METRICS)
def test_float32_matches_float64(metric):
    M = SPD(3, metric)
    x, y = _points(M, 4, seed=15), _points(M, 4, seed=16)
    x32, y32 = x.float(), y.float()
    torch.testing.assert_close(M.dist(x32, y32).double(), M.dist(x, y), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(M.logmap(x32, y32).double(), M.logmap(x, y), atol=1e-4, rtol=1e-4)
    u = M.logmap(x, y)
    torch.testing.assert_close(M.expmap(x32, u.float()).double(), M.expmap(x, u), atol=1e-4, rtol=1e-4)
    assert M.dist(x32, y32).dtype == torch.float32


# ---------------------------------------------------------------------------- checks
def test_check_point_and_vector():
    M = SPD(3)
    x = _points(M, 2, seed=17)
    assert M.check_point(x) == (True, None)
    assert M.check_point(x.float())[0]
    bad = x.clone()
    bad[0, 0, 1] += 0.1
    ok, reason = M.check_point(bad)
    assert not ok and "symmetric" in reason
    ok, reason = M.check_point(torch.diag(torch.tensor([1.0, -1.0, 2.0], dtype=F64)))
    assert not ok and "positive definite" in reason
    ok, reason = M.check_point(torch.diag(torch.tensor([1.0, 0.0, 2.0], dtype=F64)))
    assert not ok and "positive definite" in reason
    nan = x.clone()
    nan[1, 1, 1] = float("nan")
    ok, reason = M.check_point(nan)
    assert not ok and "NaN" in reason
    ok, reason = M.check_point(torch.eye(4, dtype=F64))
    assert not ok and "shape" in reason
    with pytest.raises(ValueError):
        M.assert_check_point_on_manifold(bad)
    assert M.check_vector(x, _sym(3, 2, seed=1))[0]
    ok, reason = M.check_vector(x, torch.randn(2, 3, 3, dtype=F64, generator=_gen(1)))
    assert not ok and "symmetric" in reason


def test_projx_proju_random():
    M = SPD(3)
    a = torch.randn(5, 3, 3, dtype=F64, generator=_gen(18))
    p = M.projx(a)
    assert M.check_point(p)[0]
    for dt in (torch.float32, F64):
        z = M.projx(torch.zeros(3, 3, dtype=dt))
        assert torch.linalg.cholesky_ex(z)[1] == 0
    x = _points(M, 2, seed=19)
    torch.testing.assert_close(M.projx(x), x, atol=1e-12, rtol=1e-12)
    u = torch.randn(2, 3, 3, dtype=F64)
    torch.testing.assert_close(M.proju(x, u), (u + u.mT) / 2)
    r = M.random(4, 2, 3, 3)
    assert r.shape == (4, 2, 3, 3) and r.dtype == torch.float32 and M.check_point(r)[0]
    torch.testing.assert_close(M.origin_point(x), torch.eye(3, dtype=F64).expand(2, 3, 3))
    with pytest.raises(ValueError):
        M.random(2, 3, 4)


# ---------------------------------------------------------------------------- optimizer
@pytest.mark.parametrize("metric", ["aim", "lem", "lcm"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_riemannian_adam_keeps_spd(metric, weight_decay):
    M = SPD(3, metric)
    torch.manual_seed(0)
    target = M.random(4, 3, 3, dtype=F64)
    p = geoopt.ManifoldParameter(M.random(4, 3, 3, dtype=F64), manifold=M)
    opt = manifolds.RiemannianAdam([p], lr=0.1, weight_decay=weight_decay)
    d0 = M.dist(p.detach(), target).sum()
    for _ in range(10):
        opt.zero_grad()
        loss = M.dist(p, target).pow(2).sum()
        loss.backward()
        opt.step()
        assert M.check_point(p.detach())[0]
    if weight_decay == 0:
        assert M.dist(p.detach(), target).sum() < d0


def test_component_inner_shape():
    M = SPD(3)
    x = _points(M, 4, seed=20)
    assert M.component_inner(x, _sym(3, 4)).shape == (4, 1, 1)


# ---------------------------------------------------------------------------- geomstats oracle
def _gs_space(metric_name):
    from geomstats.geometry import spd_matrices as gsm

    space = gsm.SPDMatrices(3, equip=False)
    cls = {
        "aim": gsm.SPDAffineMetric,
        "lem": gsm.SPDLogEuclideanMetric,
        "em": gsm.SPDEuclideanMetric,
        "bwm": gsm.SPDBuresWassersteinMetric,
    }[metric_name]
    space.equip_with_metric(cls)
    return space


@pytest.mark.parametrize("metric", ["aim", "lem", "em", "bwm"])
def test_against_geomstats(metric):
    pytest.importorskip("geomstats")
    space = _gs_space(metric)
    M = SPD(3, metric)
    x, y = _points(M, 3, seed=21), _points(M, 3, seed=22)
    v = _sym(3, 3, seed=23)
    xn, yn, vn = x.numpy(), y.numpy(), v.numpy()
    np.testing.assert_allclose(M.dist(x, y).numpy(), space.metric.dist(xn, yn), atol=1e-10, rtol=1e-10)
    np.testing.assert_allclose(M.logmap(x, y).numpy(), space.metric.log(yn, xn), atol=1e-10, rtol=1e-10)
    np.testing.assert_allclose(M.expmap(x, v).numpy(), space.metric.exp(vn, xn), atol=1e-10, rtol=1e-10)
    np.testing.assert_allclose(M.inner(x, v, M.logmap(x, y)).numpy(),
                               space.metric.inner_product(vn, space.metric.log(yn, xn), xn), atol=1e-10, rtol=1e-10)
    if metric != "bwm":
        np.testing.assert_allclose(
            M.transp(x, y, v).numpy(), space.metric.parallel_transp(vn, xn, end_point=yn), atol=1e-10, rtol=1e-10
        ) if hasattr(space.metric, "parallel_transp") else np.testing.assert_allclose(
            M.transp(x, y, v).numpy(), space.metric.parallel_transport(vn, xn, end_point=yn), atol=1e-10, rtol=1e-10
        )


def test_lcm_against_geomstats_cholesky_metric():
    pytest.importorskip("geomstats")
    from geomstats.geometry.positive_lower_triangular_matrices import PositiveLowerTriangularMatrices

    plt = PositiveLowerTriangularMatrices(3)  # default metric: Lin 2019 CholeskyMetric
    M = SPD(3, "lcm")
    x, y = _points(M, 3, seed=24), _points(M, 3, seed=25)
    c, k = torch.linalg.cholesky(x), torch.linalg.cholesky(y)
    cn, kn = c.numpy(), k.numpy()
    np.testing.assert_allclose(M.dist(x, y).numpy(), plt.metric.dist(cn, kn), atol=1e-10, rtol=1e-10)
    # log / exp on factors, mapped through the differential of L -> L Lᵀ
    xf = plt.metric.log(kn, cn)
    u = c @ torch.from_numpy(xf).mT + torch.from_numpy(xf) @ c.mT
    np.testing.assert_allclose(M.logmap(x, y).numpy(), u.numpy(), atol=1e-10, rtol=1e-10)
    kk = torch.from_numpy(plt.metric.exp(xf, cn))
    np.testing.assert_allclose(M.expmap(x, u).numpy(), (kk @ kk.mT).numpy(), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("metric", METRICS)
def test_gradcheck_inner_egrad2rgrad_special_points(metric):
    M = SPD(3, metric)
    u, v = _sym(3, seed=30), _sym(3, seed=31)
    g = torch.randn(3, 3, dtype=F64, generator=_gen(32))
    for x in (_points(M, seed=33), torch.eye(3, dtype=F64), _repeated()):
        _gradcheck(lambda a, b, c: M.inner(_sp(a), _sp(b), _sp(c)), x, u, v)
        _gradcheck(lambda a, b: M.egrad2rgrad(_sp(a), b), x, g)


@pytest.mark.parametrize("metric", ["lem", "bwm"])
def test_large_n_eigenbasis_path(metric):
    M = SPD(10, metric)
    x, y = _points(M, 2, seed=34), _points(M, 2, seed=35)
    u = M.logmap(x, y)
    torch.testing.assert_close(M.expmap(x, u), y, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(M.norm(x, u), M.dist(x, y), atol=1e-9, rtol=1e-9)
    g = torch.randn(2, 10, 10, dtype=F64, generator=_gen(36))
    v = _sym(10, 2, seed=37)
    torch.testing.assert_close(M.inner(x, M.egrad2rgrad(x, g), v), (g * v).sum((-2, -1)), atol=1e-9, rtol=1e-9)
