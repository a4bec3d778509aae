"""Tests of manifolds._bures: Bures–Wasserstein parallel transport by ODE (torchdiffeq).

Oracles: the connection Γ checked against the explicit geodesic (geodesic equation) and
against metric compatibility + symmetry (which characterise the Levi-Civita connection);
the closed form between commuting matrices; geomstats 2.8.0 ``SPDBuresWassersteinMetric
.parallel_transport`` (RK4, numpy backend, imported lazily); isometry and velocity transport;
gradients against finite differences; float32 against float64.
"""

import os
import warnings

import numpy as np
import pytest
import torch

from manifolds._bures import (
    _christoffel,
    _transport_rhs,
    bw_parallel_transport,
    bw_transp_follow_expmap,
)
from manifolds._linalg import sym_lyapunov as _lyap
from manifolds.spd import BuresWassersteinMetric

F64 = torch.float64
BW = BuresWassersteinMetric()


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _spd(n, *batch, seed=0, dtype=F64):
    a = torch.randn(*batch, n, n, dtype=F64, generator=_gen(seed))
    return (a @ a.mT / n + 0.5 * torch.eye(n, dtype=F64)).to(dtype)


def _sym(n, *batch, seed=0, dtype=F64, scale=1.0):
    a = torch.randn(*batch, n, n, dtype=F64, generator=_gen(seed))
    return (scale * (a + a.mT) / 2).to(dtype)


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


# ---------------------------------------------------------------------------- the connection
def test_lyap_solves_lyapunov_both_paths():
    for n in (3, 9):  # dense n² × n² system, eigenbasis
        x, u = _spd(n, 2, seed=1), _sym(n, 2, seed=2)
        lx = _lyap(x, u)
        torch.testing.assert_close(x @ lx + lx @ x, u, atol=1e-12, rtol=0)
        torch.testing.assert_close(lx, lx.mT, atol=0, rtol=0)


def test_christoffel_geodesic_equation():
    """γ'' + Γ_γ(γ', γ') = 0 along γ(t) = x + t u + t² K x K (finite differences; γ is quadratic)."""
    x, u = _spd(3, 4, seed=3), _sym(3, 4, seed=4, scale=0.3)
    k = _lyap(x, u)

    def gamma(t):
        return x + t * u + t * t * (k @ x @ k)

    torch.testing.assert_close(gamma(1.0), BW.expmap(x, u), atol=1e-12, rtol=0)
    h = 1e-3
    for t in (0.0, 0.4, 0.9):
        d1 = (gamma(t + h) - gamma(t - h)) / (2 * h)
        d2 = (gamma(t + h) - 2 * gamma(t) + gamma(t - h)) / (h * h)
        acc = d2 + _christoffel(gamma(t), d1, d1)
        assert acc.abs().max() < 1e-6 * d2.abs().max()
        assert d2.abs().max() > 1e-2  # the test is not vacuous


def test_christoffel_is_levi_civita():
    """Symmetric and metric-compatible: d_x g(v, w)[u] = g(Γ(u, v), w) + g(v, Γ(u, w)).

    Together these two properties determine the Levi-Civita connection (Koszul formula).
    """
    x = _spd(4, 3, seed=5)
    u, v, w = _sym(4, 3, seed=6), _sym(4, 3, seed=7), _sym(4, 3, seed=8)
    torch.testing.assert_close(_christoffel(x, u, v), _christoffel(x, v, u), atol=1e-13, rtol=0)
    h = 1e-5
    fd = (BW.inner(x + h * u, v, w) - BW.inner(x - h * u, v, w)) / (2 * h)
    rhs = BW.inner(x, _christoffel(x, u, v), w) + BW.inner(x, v, _christoffel(x, u, w))
    torch.testing.assert_close(rhs, fd, atol=1e-8, rtol=1e-8)
    # the opposite sign (a wrong connection) fails the same check
    wrong = -BW.inner(x, _christoffel(x, u, v), w) - BW.inner(x, v, _christoffel(x, u, w))
    assert (wrong - fd).abs().max() > 1e-3


def test_rhs_is_minus_christoffel_along_geodesic():
    x, y, w = _spd(3, 2, seed=9), _spd(3, 2, seed=10), _sym(3, 2, seed=11)
    k = _lyap(x, BW.logmap(x, y))  # = T − I
    eye = torch.eye(3, dtype=F64)
    for t in (0.0, 0.3, 1.0):
        a = eye + t * k
        g = a @ x @ a
        dg = k @ x @ a + a @ x @ k
        expected = -_christoffel(g, dg, w)
        torch.testing.assert_close(_transport_rhs(x, k, torch.tensor(t, dtype=F64), w), expected, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close((eye + k) @ x @ (eye + k), y, atol=1e-12, rtol=0)  # γ(1) = y


# ---------------------------------------------------------------------------- transport
@pytest.mark.parametrize("n", [2, 3, 9])  # 9: eigenbasis Lyapunov path
def test_isometry_and_velocity(n):
    x, y = _spd(n, seed=12 + n), _spd(n, seed=13 + n)
    v, w = _sym(n, seed=14), _sym(n, seed=15)
    lg = BW.logmap(x, y)
    pv, pw, pl = bw_parallel_transport(x, y, torch.stack([v, w, lg])).unbind(0)  # one ODE solve
    torch.testing.assert_close(BW.inner(y, pv, pw), BW.inner(x, v, w), atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(BW.inner(y, pv, pv), BW.inner(x, v, v), atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(pv, pv.mT, atol=0, rtol=0)
    # γ'(0) = logmap(x, y) is transported to γ'(1) = −logmap(y, x)
    torch.testing.assert_close(pl, -BW.logmap(y, x), atol=1e-9, rtol=0)


def test_inner_product_constant_along_the_curve():
    """d/dt g(V(t), W(t)) = 0: transport to γ(t) is the transport along the sub-arc [0, t]."""
    x, y = _spd(3, seed=16), _spd(3, seed=17)
    v, w = _sym(3, seed=18), _sym(3, seed=19)
    k = _lyap(x, BW.logmap(x, y))
    eye = torch.eye(3, dtype=F64)
    a = eye + torch.linspace(0.0, 1.0, 6, dtype=F64)[:, None, None] * k
    g = a @ x @ a  # γ(t) at 6 times, (6, 3, 3)
    vt, wt = bw_parallel_transport(x, g, torch.stack([v, w])[:, None]).unbind(0)  # (6, 3, 3) each
    vals, norms = BW.inner(g, vt, wt), BW.inner(g, vt, vt)
    assert (vals - BW.inner(x, v, w)).abs().max() < 1e-8
    assert (norms - BW.inner(x, v, v)).abs().max() < 1e-8
    # and the field really moves (the check is not trivially satisfied by V(t) = v)
    assert (vt[-1] - v).abs().max() > 1e-2


def _commuting(n, a, b, seed):
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=F64, generator=_gen(seed)))
    a, b = torch.tensor(a, dtype=F64), torch.tensor(b, dtype=F64)
    return (q * a) @ q.mT, (q * b) @ q.mT, q, a, b


@pytest.mark.parametrize(
    "a, b",
    [([0.5, 1.0, 3.0], [2.0, 0.3, 1.5]), ([2.0, 2.0, 5.0], [1.0, 4.0, 0.2])],  # second: repeated eigenvalue of x
)
def test_commuting_closed_form(a, b):
    """Common eigenbasis: (Qᵀ V Q)_ij(1) = (Qᵀ v Q)_ij √((b_i + b_j)/(a_i + a_j))."""
    x, y, q, a, b = _commuting(3, a, b, seed=20)
    v = _sym(3, seed=21)
    vt = q.mT @ v @ q
    expected = q @ (vt * torch.sqrt((b[:, None] + b[None, :]) / (a[:, None] + a[None, :]))) @ q.mT
    torch.testing.assert_close(bw_parallel_transport(x, y, v), expected, atol=1e-9, rtol=1e-9)


def test_special_points():
    x, v = _spd(3, 2, seed=22), _sym(3, 2, seed=23)
    # x == y: the identity (K = 0, the right-hand side vanishes)
    torch.testing.assert_close(bw_parallel_transport(x, x, v), v, atol=1e-12, rtol=0)
    # v == 0
    y = _spd(3, 2, seed=24)
    out = bw_parallel_transport(x, y, torch.zeros_like(v))
    assert torch.equal(out, torch.zeros_like(v))
    # x = I, y = c I: scalar scaling √c (commuting closed form)
    eye = torch.eye(3, dtype=F64)
    torch.testing.assert_close(bw_parallel_transport(eye, 4.0 * eye, v), 2.0 * v, atol=1e-10, rtol=0)
    # gradients finite at x == y (sqrt of the repeated-eigenvalue matrix (Cᵀ x C))
    xg = x.clone().requires_grad_(True)
    bw_parallel_transport(xg, x, v).sum().backward()
    assert torch.isfinite(xg.grad).all()


def test_scale_and_linearity():
    x, y = _spd(3, seed=25), _spd(3, seed=26)
    v, w = _sym(3, seed=27), _sym(3, seed=28)
    p = bw_parallel_transport(x, y, v)
    torch.testing.assert_close(bw_parallel_transport(x, y, 1e-9 * v), 1e-9 * p, atol=0, rtol=1e-8)
    torch.testing.assert_close(
        bw_parallel_transport(x, y, 2 * v - 3 * w), 2 * p - 3 * bw_parallel_transport(x, y, w), atol=1e-8, rtol=0
    )


def test_broadcasting_matches_unbatched():
    x = _spd(3, 3, seed=29)
    y = _spd(3, seed=30)
    v = _sym(3, 2, 1, seed=31)
    out = bw_parallel_transport(x, y, v)
    assert out.shape == (2, 3, 3, 3)
    for i, j in ((0, 2), (1, 0)):
        torch.testing.assert_close(out[i, j], bw_parallel_transport(x[j], y, v[i, 0]), atol=1e-9, rtol=0)


def test_follow_expmap():
    x, y, v = _spd(3, 2, seed=32), _spd(3, 2, seed=33), _sym(3, 2, seed=34)
    torch.testing.assert_close(
        bw_transp_follow_expmap(x, BW.logmap(x, y), v), bw_parallel_transport(x, y, v), atol=1e-9, rtol=0
    )
    # arbitrary small initial velocity: isometry and velocity transport at expmap(x, u)
    u = _sym(3, 2, seed=35, scale=0.2)
    z = BW.expmap(x, u)
    pv = bw_transp_follow_expmap(x, u, v)
    torch.testing.assert_close(BW.inner(z, pv, pv), BW.inner(x, v, v), atol=1e-8, rtol=1e-8)
    lx = _lyap(x, u)
    eye = torch.eye(3, dtype=F64)
    vel1 = lx @ x @ (eye + lx) + (eye + lx) @ x @ lx  # γ'(1)
    torch.testing.assert_close(bw_transp_follow_expmap(x, u, u), vel1, atol=1e-9, rtol=0)


# ---------------------------------------------------------------------------- geomstats oracle
def _gs_bw(n):
    if os.environ.get("GEOMSTATS_BACKEND", "numpy") != "numpy":
        pytest.skip("geomstats oracle is used with its numpy backend")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gsm = pytest.importorskip("geomstats.geometry.spd_matrices")
        space = gsm.SPDMatrices(n, equip=False)
        space.equip_with_metric(gsm.SPDBuresWassersteinMetric)
    return space.metric


def test_against_geomstats():
    """geomstats integrates the horizontal lift with RK4 (fixed steps): global error O(h⁴).

    Measured on this case: 4.7e-7 at its default n_steps=10, 7.6e-10 at 50, 9e-12 at 200.
    """
    metric = _gs_bw(3)
    x, y, v = _spd(3, seed=36), _spd(3, seed=37), _sym(3, seed=38)
    ours = bw_parallel_transport(x, y, v, rtol=1e-12, atol=1e-12).numpy()
    xn, yn, vn = x.numpy(), y.numpy(), v.numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gs10 = metric.parallel_transport(vn, xn, end_point=yn, n_steps=10)
        gs50 = metric.parallel_transport(vn, xn, end_point=yn, n_steps=50)
        gs200 = metric.parallel_transport(vn, xn, end_point=yn, n_steps=200)
        gs_dir = metric.parallel_transport(vn, xn, direction=BW.logmap(x, y).numpy(), n_steps=200)
    e10, e50 = np.abs(gs10 - ours).max(), np.abs(gs50 - ours).max()
    assert e10 < 1e-5  # RK4, h = 0.1
    assert e50 < 1e-8  # h = 0.02
    assert e10 / e50 > 100  # fourth-order convergence towards our solution: (50/10)⁴ = 625
    np.testing.assert_allclose(gs200, ours, atol=1e-10, rtol=0)
    np.testing.assert_allclose(gs_dir, ours, atol=1e-9, rtol=0)


# ---------------------------------------------------------------------------- gradients
def test_gradcheck_fixed_step():
    """Fixed-step RK4 (a smooth map of the inputs): exact gradcheck in float64 on 2×2."""
    x, y = _spd(2, seed=39).requires_grad_(True), _spd(2, seed=40).requires_grad_(True)
    v = _sym(2, seed=41).requires_grad_(True)

    def f(x, y, v):
        return bw_parallel_transport(x, y, v, method="rk4", options={"step_size": 0.25})

    assert torch.autograd.gradcheck(f, (x, y, v), eps=1e-6, atol=1e-7, rtol=1e-6)

    def g(x, u, v):
        return bw_transp_follow_expmap(x, u, v, method="rk4", options={"step_size": 0.25})

    u = (0.3 * _sym(2, seed=42)).requires_grad_(True)
    assert torch.autograd.gradcheck(g, (x, u, v), eps=1e-6, atol=1e-7, rtol=1e-6)


def test_gradient_adaptive_matches_finite_differences():
    """dopri5 at tight tolerance: autograd directional derivative vs central differences."""
    x, y, v = _spd(3, seed=43), _spd(3, seed=44), _sym(3, seed=45)
    dx, dy = _sym(3, seed=46, scale=0.5), _sym(3, seed=47, scale=0.5)
    c = _sym(3, seed=48)
    kw = dict(rtol=1e-12, atol=1e-12)

    def loss(s):
        return (c * bw_parallel_transport(x + s * dx, y + s * dy, v, **kw)).sum()

    s = torch.zeros((), dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(s), s)
    h = 1e-4
    with torch.no_grad():
        fd = (loss(torch.tensor(h, dtype=F64)) - loss(torch.tensor(-h, dtype=F64))) / (2 * h)
    assert abs(grad.item() - fd.item()) < 1e-6 * max(1.0, abs(fd.item()))
    assert abs(fd.item()) > 1e-2


# ---------------------------------------------------------------------------- float32, methods, errors
def test_float32_agrees_with_float64():
    x, y, v = _spd(3, 3, seed=49), _spd(3, 3, seed=50), _sym(3, 3, seed=51)
    ref = bw_parallel_transport(x, y, v)
    out = bw_parallel_transport(x.float(), y.float(), v.float())
    assert out.dtype == torch.float32
    assert _rel(out.double(), ref) < 1e-5  # measured 9.6e-7 (2.2e-6 for n = 9)


def test_fixed_step_methods_converge():
    x, y, v = _spd(3, seed=52), _spd(3, seed=53), _sym(3, seed=54)
    ref = bw_parallel_transport(x, y, v, rtol=1e-12, atol=1e-12)
    e1 = (bw_parallel_transport(x, y, v, method="rk4", options={"step_size": 0.5}) - ref).abs().max()
    e2 = (bw_parallel_transport(x, y, v, method="rk4", options={"step_size": 0.25}) - ref).abs().max()
    assert e1 / e2 > 8  # fourth order: ratio ≈ 16
    default_rk4 = bw_parallel_transport(x, y, v, method="rk4")  # step 0.05
    assert (default_rk4 - ref).abs().max() < 1e-6
    torch.testing.assert_close(bw_parallel_transport(x, y, v, method="dopri8"), ref, atol=1e-9, rtol=0)


def test_validation_errors():
    x, y, v = _spd(2, seed=55), _spd(2, seed=56), _sym(2, seed=57)
    with pytest.raises(ValueError, match="method"):
        bw_parallel_transport(x, y, v, method="rk45")
    with pytest.raises(ValueError, match="method"):
        bw_parallel_transport(x, y, v, method="scipy_solver")
    for bad in (0.0, -1e-6, float("nan"), float("inf"), "1e-6", True):
        with pytest.raises(ValueError, match="rtol"):
            bw_parallel_transport(x, y, v, rtol=bad)
        with pytest.raises(ValueError, match="atol"):
            bw_transp_follow_expmap(x, v, v, atol=bad)
    with pytest.raises(ValueError, match="options"):
        bw_parallel_transport(x, y, v, options=[("step_size", 0.1)])
    with pytest.raises(ValueError, match="square"):
        bw_parallel_transport(x, y, v[0])
    with pytest.raises(ValueError, match="n = 2"):
        bw_parallel_transport(x, _spd(3, seed=58), v)
    with pytest.raises(ValueError, match="dtype"):
        bw_parallel_transport(x, y, v.to(torch.int64))
    with pytest.raises(ValueError, match="one dtype"):
        bw_parallel_transport(x, y.float(), v)
