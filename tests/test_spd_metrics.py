"""Tests of the SPD metric families: power deformation θ, O(n)-invariant (α, β), generalized BW."""

import numpy as np
import pytest
import scipy.linalg as sla
import torch

from manifolds import SPD
from manifolds.spd import (
    AffineInvariantMetric as AIM,
    BuresWassersteinMetric as BWM,
    EuclideanMetric as EM,
    GeneralizedBuresWassersteinMetric as GBWM,
    LogCholeskyMetric as LCM,
    LogEuclideanMetric as LEM,
    _dpow,
    _dpow_inv,
)

F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _spd(n, *batch, seed=0, dtype=F64, std=0.5):
    return SPD(n).random(*batch, n, n, dtype=dtype, generator=_gen(seed), std=std)


def _sym(n, *batch, seed=0, dtype=F64, scale=0.5):
    a = torch.randn(*batch, n, n, dtype=dtype, generator=_gen(seed))
    return scale * (a + a.mT) / 2


def _repeated(n=3, dtype=F64):
    """SPD matrix with a repeated eigenvalue (2, 2, 5) in a random basis."""
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=dtype, generator=_gen(7)))
    lam = torch.tensor([2.0] * (n - 1) + [5.0], dtype=dtype)
    return (q * lam) @ q.mT


_M_GBW = _spd(3, seed=99, std=0.6)

FAMILIES = {
    "aim_t0.5": lambda: AIM(theta=0.5),
    "aim_t-0.7_ab": lambda: AIM(theta=-0.7, alpha=2.0, beta=-0.3),
    "aim_ab": lambda: AIM(alpha=0.5, beta=0.4),
    "lem_ab": lambda: LEM(alpha=1.5, beta=0.2),
    "lem_t0.5": lambda: LEM(theta=0.5),
    "em_t0.5": lambda: EM(theta=0.5),
    "em_t-0.5_ab": lambda: EM(theta=-0.5, alpha=2.0, beta=0.3),
    "lcm_t-0.5": lambda: LCM(theta=-0.5),
    "lcm_t1.5": lambda: LCM(theta=1.5),
    "bwm_t0.5": lambda: BWM(theta=0.5),
    "gbwm": lambda: GBWM(_M_GBW),
    "gbwm_t0.5": lambda: GBWM(_M_GBW, theta=0.5),
}
# transport by ODE (torchdiffeq, tolerance 1e-10): checked separately, with ODE tolerances
ODE_TRANSPORT = {"bwm_t0.5", "gbwm", "gbwm_t0.5"}
TRANSPORT = [k for k in FAMILIES if k not in ODE_TRANSPORT]


# ---------------------------------------------------------------------------- numpy oracles
def _np_eigfun(x, f):
    lam, u = np.linalg.eigh(x)
    return (u * f(lam)[..., None, :]) @ np.swapaxes(u, -1, -2)


def _np_pow(x, p):
    return _np_eigfun(x, lambda lam: lam**p)


def _np_logm(x):
    return _np_eigfun(x, np.log)


def _np_dpow(x, e, p):
    """Daleckii–Krein ``D(x^p)[e]`` in the eigenbasis (independent of the library's code)."""
    lam, u = np.linalg.eigh(x)
    li, lj = lam[..., :, None], lam[..., None, :]
    same = np.isclose(li, lj, rtol=1e-12, atol=0)
    lw = np.where(same, p * li ** (p - 1), (li**p - lj**p) / np.where(same, 1.0, li - lj))
    ut = np.swapaxes(u, -1, -2)
    return u @ (lw * (ut @ e @ u)) @ ut


def _np_dpow_inv(x, f, p):
    lam, u = np.linalg.eigh(x)
    li, lj = lam[..., :, None], lam[..., None, :]
    same = np.isclose(li, lj, rtol=1e-12, atol=0)
    lw = np.where(same, p * li ** (p - 1), (li**p - lj**p) / np.where(same, 1.0, li - lj))
    ut = np.swapaxes(u, -1, -2)
    return u @ ((ut @ f @ u) / lw) @ ut


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# ---------------------------------------------------------------------------- construction
def test_parameters_validated():
    for bad in (0, 0.0, float("nan"), float("inf"), True, "1", torch.tensor(0.5)):
        with pytest.raises(ValueError, match="theta"):
            AIM(theta=bad)
    with pytest.raises(ValueError, match="theta"):
        LCM(theta=0.0)
    with pytest.raises(ValueError, match="theta"):
        BWM(theta=0)
    for alpha in (0.0, -1.0):
        with pytest.raises(ValueError, match="alpha"):
            AIM(alpha=alpha)
        with pytest.raises(ValueError, match="alpha"):
            LEM(alpha=alpha)
    with pytest.raises(ValueError, match="beta"):
        EM(alpha=1.0, beta=-1.0)
    # β > −α/n depends on n: −0.4 is fine for n = 2 (−α/n = −0.5), not for n = 3 (−1/3)
    m = AIM(alpha=1.0, beta=-0.4)
    SPD(2, m)
    with pytest.raises(ValueError, match="beta"):
        SPD(3, m)
    with pytest.raises(ValueError, match="beta"):
        SPD(3, LEM(alpha=3.0, beta=-1.0))  # exactly −α/n: not positive definite


def test_gbwm_parameter_validated():
    good = _spd(3, seed=1)
    bad_eig = torch.diag(torch.tensor([1.0, -1.0, 2.0], dtype=F64))
    with pytest.raises(ValueError, match="positive definite"):
        GBWM(bad_eig)
    with pytest.raises(ValueError, match="positive definite"):
        GBWM(torch.diag(torch.tensor([1.0, 0.0, 2.0], dtype=F64)))
    asym = good.clone()
    asym[0, 1] += 0.5
    with pytest.raises(ValueError, match="symmetric"):
        GBWM(asym)
    nan = good.clone()
    nan[1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        GBWM(nan)
    with pytest.raises(ValueError, match="shape"):
        GBWM(torch.ones(3, 4, dtype=F64))
    with pytest.raises(ValueError, match="tensor"):
        GBWM(good.numpy())
    with pytest.raises(ValueError, match="theta"):
        GBWM(good, theta=0.0)
    with pytest.raises(ValueError, match=r"expected \(4, 4\)"):
        SPD(4, GBWM(good))


def test_keys_and_repr():
    assert SPD(3, AIM(theta=0.5))._key() != SPD(3, AIM())._key()
    assert SPD(3, AIM(theta=0.5)) != SPD(3, AIM())
    assert SPD(3, AIM())._key() == SPD(3, "aim")._key()
    assert SPD(3, AIM(alpha=2.0))._key() != SPD(3, AIM())._key()
    assert SPD(3, AIM(beta=0.1))._key() != SPD(3, AIM())._key()
    assert AIM(theta=0.5) == AIM(theta=0.5) and hash(AIM(theta=0.5)) == hash(AIM(theta=0.5))
    assert LEM(theta=0.5) != LEM() and LCM(theta=2) != LCM() and BWM(theta=2) != BWM()
    assert EM(theta=0.5) != AIM(theta=0.5)
    m1, m2 = _spd(3, seed=1), _spd(3, seed=1)
    assert GBWM(m1) == GBWM(m1) and hash(GBWM(m1)) == hash(GBWM(m1))
    assert GBWM(m1) != GBWM(m2)  # different tensor objects (values are not compared)
    assert GBWM(m1) != GBWM(m1, theta=0.5) and GBWM(m1) != BWM()
    assert repr(AIM(theta=0.5, alpha=2, beta=0.1)) == "AffineInvariantMetric(theta=0.5, alpha=2.0, beta=0.1)"
    assert repr(LCM(theta=-1)) == "LogCholeskyMetric(theta=-1.0)"
    assert repr(GBWM(m1, theta=0.5)) == "GeneralizedBuresWassersteinMetric(m=<tensor (3, 3) float64>, theta=0.5)"
    assert "theta=0.5" in repr(SPD(3, BWM(theta=0.5)))


def test_theta_one_adds_no_work():
    for met in (AIM(), LEM(), EM(), LCM(), BWM(), AIM(theta=1.0, alpha=2.0)):
        assert met._maps == ()
    assert len(AIM(theta=0.5)._maps) == 1 and len(GBWM(_M_GBW)._maps) == 1
    assert len(GBWM(_M_GBW, theta=2.0)._maps) == 2


# ---------------------------------------------------------------------------- identities
@pytest.mark.parametrize("name", list(FAMILIES))
def test_exp_log_dist_egrad(name):
    M = SPD(3, FAMILIES[name]())
    x, y = _spd(3, 2, seed=1), _spd(3, 2, seed=2)
    u = M.logmap(x, y)
    assert torch.allclose(u, u.mT)
    torch.testing.assert_close(M.expmap(x, u), y, atol=1e-10, rtol=1e-10)
    d = M.dist(x, y)
    torch.testing.assert_close(d, M.dist(y, x), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(M.norm(x, u), d, atol=1e-10, rtol=1e-10)
    # Bures–Wasserstein family: d² = tr x + tr y − 2 tr (x^½ y x^½)^½ cancels at y = x, so d(x, x)
    # is √(rounding of d²) ≈ √(ε · tr x · κ) — 1.03e-7 was measured for gbwm_t0.5 on an AMD EPYC
    # host (below 1e-7 on Intel): an accuracy limit of the trace formula, stated in its docstring
    tol = 1e-6 if name.startswith(("bwm", "gbwm")) else 1e-7
    torch.testing.assert_close(M.dist(x, x), torch.zeros(2, dtype=F64), atol=tol, rtol=0)
    mid = M.geodesic(x, y, 0.5)
    torch.testing.assert_close(M.dist(x, mid), 0.5 * d, atol=1e-9, rtol=1e-9)
    # inner(x, egrad2rgrad(x, g), v) == <g, v>_F for all symmetric v (g not symmetric)
    g = torch.randn(2, 3, 3, dtype=F64, generator=_gen(4))
    v = _sym(3, 2, seed=5)
    r = M.egrad2rgrad(x, g)
    assert torch.allclose(r, r.mT)
    torch.testing.assert_close(M.inner(x, r, v), (g * v).sum((-2, -1)), atol=1e-10, rtol=1e-10)
    # inner is symmetric and bilinear; v=None is <u, u>
    torch.testing.assert_close(M.inner(x, u, v), M.inner(x, v, u), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(M.inner(x, u), M.inner(x, u, u), atol=1e-12, rtol=1e-12)
    # broadcasting: one base point against a batch
    torch.testing.assert_close(M.dist(x[:1], y), M.dist(x[:1].expand(2, 3, 3), y))


@pytest.mark.parametrize("name", TRANSPORT)
def test_transport_isometry(name):
    M = SPD(3, FAMILIES[name]())
    x, y = _spd(3, 2, seed=6), _spd(3, 2, seed=7)
    v, w = _sym(3, 2, seed=8), _sym(3, 2, seed=9)
    tv, tw = M.transp(x, y, v), M.transp(x, y, w)
    torch.testing.assert_close(M.inner(y, tv, tw), M.inner(x, v, w), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(M.transp(x, y, M.logmap(x, y)), -M.logmap(y, x), atol=1e-9, rtol=1e-9)
    y2, tv2 = M.expmap_transp(x, M.logmap(x, y), v)
    torch.testing.assert_close(y2, y, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(tv2, tv, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(M.transp_follow_expmap(x, M.logmap(x, y), v), tv, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("name", sorted(ODE_TRANSPORT))
def test_bw_family_ode_transport(name):
    """θ-BWM and GBWM transport by the BW transport ODE (manifolds._bures) pulled back by the
    deformation maps: isometric, moves log_x y to −log_y x, agrees with the follow-expmap ODE,
    and at m = I GBWM's transport is BWM's."""
    M = SPD(3, FAMILIES[name]())
    x, y = _spd(3, 2, seed=6), _spd(3, 2, seed=7)
    v, w = _sym(3, 2, seed=8), _sym(3, 2, seed=9)
    tv, tw = M.transp(x, y, v), M.transp(x, y, w)
    torch.testing.assert_close(M.inner(y, tv, tw), M.inner(x, v, w), atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(M.transp(x, y, M.logmap(x, y)), -M.logmap(y, x), atol=1e-8, rtol=1e-8)
    y2, tv2 = M.expmap_transp(x, M.logmap(x, y), v)
    torch.testing.assert_close(y2, y, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(tv2, tv, atol=1e-8, rtol=1e-8)


def test_gbwm_identity_transport_is_bwm():
    x, y, v = _spd(3, seed=10), _spd(3, seed=11), _sym(3, seed=12)
    eye = torch.eye(3, dtype=F64)
    torch.testing.assert_close(
        SPD(3, GBWM(eye)).transp(x, y, v), SPD(3, "bwm").transp(x, y, v), atol=1e-12, rtol=1e-12
    )


# ---------------------------------------------------------------------------- the power map
@pytest.mark.parametrize("theta", [0.5, -1.3, 2.0])
@pytest.mark.parametrize("n", [3, 10])
def test_dpow_against_daleckii_krein_and_finite_differences(theta, n):
    x, e = _spd(n, 2, seed=3), _sym(n, 2, seed=4)
    ref = _np_dpow(x.numpy(), e.numpy(), theta)
    np.testing.assert_allclose(_dpow(x, e, theta).numpy(), ref, atol=1e-11, rtol=1e-11)
    np.testing.assert_allclose(_dpow_inv(x, _dpow(x, e, theta), theta).numpy(), e.numpy(), atol=1e-11, rtol=1e-11)
    h = 1e-6  # central difference of the power itself
    fd = (_np_pow(x.numpy() + h * e.numpy(), theta) - _np_pow(x.numpy() - h * e.numpy(), theta)) / (2 * h)
    np.testing.assert_allclose(ref, fd, atol=1e-7, rtol=1e-7)
    # Frobenius self-adjoint
    f = _sym(n, 2, seed=5)
    torch.testing.assert_close((_dpow(x, e, theta) * f).sum((-2, -1)), (e * _dpow(x, f, theta)).sum((-2, -1)))
    # extra leading dims of e: the operator is broadcast, not rebuilt
    stacked = _dpow(x, torch.stack([e, f]), theta)
    torch.testing.assert_close(stacked[1], _dpow(x, f, theta), atol=1e-12, rtol=1e-12)


def test_dpow_at_identity_and_repeated():
    for x in (torch.eye(3, dtype=F64), _repeated()):
        e = _sym(3, seed=6)
        np.testing.assert_allclose(_dpow(x, e, 0.5).numpy(), _np_dpow(x.numpy(), e.numpy(), 0.5), atol=1e-11)
    # at the identity D(x^θ)[e] = θ e
    e = _sym(3, seed=6)
    torch.testing.assert_close(_dpow(torch.eye(3, dtype=F64), e, -0.7), -0.7 * e, atol=1e-13, rtol=1e-13)


# ---------------------------------------------------------------------------- geomstats oracle
def _gs_power_space(base, p):
    from geomstats.geometry import spd_matrices as gsm
    from geomstats.geometry.scalar_product_metric import ScalarProductMetric

    image = gsm.SPDMatrices(3, equip=False)
    image.equip_with_metric({"aim": gsm.SPDAffineMetric, "em": gsm.SPDEuclideanMetric}[base])
    image.metric = ScalarProductMetric(image, 1.0 / p**2)
    space = gsm.SPDMatrices(3, equip=False)
    space.equip_with_metric(gsm.SPDPowerMetric, image_space=image)
    return space


@pytest.mark.parametrize("base", ["aim", "em"])
@pytest.mark.parametrize("theta", [0.5, 1.5])
def test_power_metrics_against_geomstats(base, theta):
    pytest.importorskip("geomstats")
    gm = _gs_power_space(base, theta).metric
    M = SPD(3, {"aim": AIM, "em": EM}[base](theta=theta))
    x, y = _spd(3, 3, seed=21), _spd(3, 3, seed=22)
    v = _sym(3, 3, seed=23, scale=0.2)
    xn, yn, vn = x.numpy(), y.numpy(), v.numpy()
    tol = dict(atol=1e-10, rtol=1e-10)
    np.testing.assert_allclose(M.dist(x, y).numpy(), gm.dist(xn, yn), **tol)
    np.testing.assert_allclose(M.logmap(x, y).numpy(), gm.log(yn, xn), **tol)
    np.testing.assert_allclose(M.expmap(x, v).numpy(), gm.exp(vn, xn), **tol)
    np.testing.assert_allclose(M.inner(x, v, M.logmap(x, y)).numpy(), gm.inner_product(vn, gm.log(yn, xn), xn), **tol)
    np.testing.assert_allclose(M.transp(x, y, v).numpy(), gm.parallel_transport(vn, xn, end_point=yn), **tol)


# ---------------------------------------------------------------------------- θ-LCM, θ-BWM: pullback definition
@pytest.mark.parametrize("base", ["lcm", "bwm"])
@pytest.mark.parametrize("theta", [0.5, -1.5])
def test_theta_metric_is_the_pullback(base, theta):
    cls = {"lcm": LCM, "bwm": BWM}[base]
    Mt, M1 = SPD(3, cls(theta=theta)), SPD(3, cls())
    x, y = _spd(3, 2, seed=31), _spd(3, 2, seed=32)
    v, w = _sym(3, 2, seed=33, scale=0.2), _sym(3, 2, seed=34)
    xn, yn, vn, wn = x.numpy(), y.numpy(), v.numpy(), w.numpy()
    px, py = _t(_np_pow(xn, theta)), _t(_np_pow(yn, theta))
    dv, dw = _t(_np_dpow(xn, vn, theta)), _t(_np_dpow(xn, wn, theta))
    tol = dict(atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(Mt.dist(x, y), M1.dist(px, py) / abs(theta), **tol)
    torch.testing.assert_close(Mt.inner(x, v, w), M1.inner(px, dv, dw) / theta**2, **tol)
    torch.testing.assert_close(Mt.logmap(x, y), _t(_np_dpow_inv(xn, M1.logmap(px, py).numpy(), theta)), **tol)
    torch.testing.assert_close(Mt.expmap(x, v), _t(_np_pow(M1.expmap(px, dv).numpy(), 1.0 / theta)), **tol)
    if base == "lcm":
        ref = _np_dpow_inv(yn, M1.transp(px, py, dv).numpy(), theta)
        torch.testing.assert_close(Mt.transp(x, y, v), _t(ref), **tol)


# ---------------------------------------------------------------------------- (α, β)
def _np_logdet(x):
    return np.linalg.slogdet(x)[1]


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.5), (2.0, -0.5), (0.3, 0.0)])
def test_alpha_beta_aim_direct(alpha, beta):
    M = SPD(3, AIM(alpha=alpha, beta=beta))
    x, y = _spd(3, 2, seed=41), _spd(3, 2, seed=42)
    u, v = _sym(3, 2, seed=43), _sym(3, 2, seed=44)
    xn, yn, un, vn = x.numpy(), y.numpy(), u.numpy(), v.numpy()
    xi = np.linalg.inv(xn)
    tr = lambda a: np.trace(a, axis1=-2, axis2=-1)  # noqa: E731
    ref = alpha * tr(xi @ un @ xi @ vn) + beta * tr(xi @ un) * tr(xi @ vn)
    np.testing.assert_allclose(M.inner(x, u, v).numpy(), ref, atol=1e-10, rtol=1e-10)
    loglam = np.log(np.stack([sla.eigh(yn[i], xn[i], eigvals_only=True) for i in range(2)]))
    d2 = alpha * (loglam**2).sum(-1) + beta * loglam.sum(-1) ** 2
    np.testing.assert_allclose(M.dist(x, y).numpy(), np.sqrt(d2), atol=1e-10, rtol=1e-10)
    # same geodesics as AIM
    torch.testing.assert_close(M.logmap(x, y), SPD(3).logmap(x, y), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(M.transp(x, y, u), SPD(3).transp(x, y, u), atol=1e-12, rtol=1e-12)
    # the Riemannian gradient: invert A ↦ αA + β tr(A) I in whitened coordinates
    g = torch.randn(2, 3, 3, dtype=F64, generator=_gen(45)).numpy()
    gs = (g + np.swapaxes(g, -1, -2)) / 2
    a = xn @ gs @ xn
    ref = (a - beta / (alpha + 3 * beta) * tr(xi @ a)[:, None, None] * xn) / alpha
    np.testing.assert_allclose(M.egrad2rgrad(x, _t(g)).numpy(), ref, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("cls", [LEM, EM])
def test_alpha_beta_flat_direct(cls):
    alpha, beta = 1.7, -0.4
    M, M1 = SPD(3, cls(alpha=alpha, beta=beta)), SPD(3, cls())
    x, y = _spd(3, 2, seed=51), _spd(3, 2, seed=52)
    u, v = _sym(3, 2, seed=53), _sym(3, 2, seed=54)
    xn, yn, un, vn = x.numpy(), y.numpy(), u.numpy(), v.numpy()
    tr = lambda a: np.trace(a, axis1=-2, axis2=-1)  # noqa: E731
    if cls is LEM:
        du, dv = LEM.dlog(x, u).numpy(), LEM.dlog(x, v).numpy()
        delta = _np_logm(yn) - _np_logm(xn)
        np.testing.assert_allclose(tr(du), tr(np.linalg.solve(xn, un)), atol=1e-12)  # tr D log_x(u) = tr(x⁻¹u)
    else:
        du, dv, delta = un, vn, yn - xn
    ref = alpha * (du * dv).sum((-2, -1)) + beta * tr(du) * tr(dv)
    np.testing.assert_allclose(M.inner(x, u, v).numpy(), ref, atol=1e-10, rtol=1e-10)
    d2 = alpha * (delta**2).sum((-2, -1)) + beta * tr(delta) ** 2
    np.testing.assert_allclose(M.dist(x, y).numpy(), np.sqrt(d2), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(M.logmap(x, y), M1.logmap(x, y), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(M.expmap(x, u), M1.expmap(x, u), atol=1e-12, rtol=1e-12)


def test_alpha_only_scales_the_metric():
    """(α, 0) is α times the metric: distances scale by √α (as geomstats' ScalarProductMetric)."""
    x, y = _spd(3, 2, seed=55), _spd(3, 2, seed=56)
    for cls in (AIM, LEM, EM):
        torch.testing.assert_close(SPD(3, cls(alpha=4.0)).dist(x, y), 2.0 * SPD(3, cls()).dist(x, y))


def test_theta_alpha_beta_aim_liebn_distance():
    """(θ,α,β)-AIM: d² = (α‖log λ(x^θ, y^θ)‖² + β θ²(log det y − log det x)²)/θ² (LieBN, Table 1)."""
    theta, alpha, beta = -0.6, 1.5, 0.25
    M = SPD(3, AIM(theta=theta, alpha=alpha, beta=beta))
    x, y = _spd(3, 2, seed=61), _spd(3, 2, seed=62)
    xn, yn = x.numpy(), y.numpy()
    px, py = _np_pow(xn, theta), _np_pow(yn, theta)
    loglam = np.log(np.stack([sla.eigh(py[i], px[i], eigvals_only=True) for i in range(2)]))
    ldet = theta * (_np_logdet(yn) - _np_logdet(xn))
    d2 = (alpha * (loglam**2).sum(-1) + beta * ldet**2) / theta**2
    np.testing.assert_allclose(M.dist(x, y).numpy(), np.sqrt(d2), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("theta", [0.5, -2.0])
def test_theta_lem_equals_lem(theta):
    for ab in ({}, {"alpha": 1.5, "beta": 0.3}):
        Mt, M1 = SPD(3, LEM(theta=theta, **ab)), SPD(3, LEM(**ab))
        x, y = _spd(3, 2, seed=71), _spd(3, 2, seed=72)
        u, v = _sym(3, 2, seed=73), _sym(3, 2, seed=74)
        g = torch.randn(2, 3, 3, dtype=F64, generator=_gen(75))
        tol = dict(atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(Mt.dist(x, y), M1.dist(x, y), **tol)
        torch.testing.assert_close(Mt.inner(x, u, v), M1.inner(x, u, v), **tol)
        torch.testing.assert_close(Mt.expmap(x, u), M1.expmap(x, u), **tol)
        torch.testing.assert_close(Mt.logmap(x, y), M1.logmap(x, y), **tol)
        torch.testing.assert_close(Mt.transp(x, y, v), M1.transp(x, y, v), **tol)
        torch.testing.assert_close(Mt.egrad2rgrad(x, g), M1.egrad2rgrad(x, g), **tol)


@pytest.mark.parametrize("cls", [AIM, EM])
def test_theta_to_zero_tends_to_lem(cls):
    M, L = SPD(3, cls(theta=1e-4)), SPD(3, LEM())
    x, y = _spd(3, 2, seed=81), _spd(3, 2, seed=82)
    u = _sym(3, 2, seed=83, scale=0.3)
    tol = dict(atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(M.dist(x, y), L.dist(x, y), **tol)
    torch.testing.assert_close(M.logmap(x, y), L.logmap(x, y), **tol)
    torch.testing.assert_close(M.expmap(x, u), L.expmap(x, u), **tol)
    torch.testing.assert_close(M.inner(x, u, u), L.inner(x, u, u), **tol)
    # and θ = 1 is far from it (the test can fail)
    assert (SPD(3, cls()).dist(x, y) - L.dist(x, y)).abs().max() > 1e-2


# ---------------------------------------------------------------------------- GBWM closed forms
def _np_gen_lyapunov(p, m, u):
    """Solve ``p L m + m L p = u`` (row-major vec: vec(A L B) = (A ⊗ Bᵀ) vec L)."""
    n = p.shape[-1]
    k = np.kron(p, m.T) + np.kron(m, p.T)
    return np.linalg.solve(k, u.reshape(n * n)).reshape(n, n)


def test_gbwm_against_closed_forms():
    m = _M_GBW
    M = SPD(3, GBWM(m))
    x, y = _spd(3, 2, seed=91), _spd(3, 2, seed=92)
    v = _sym(3, 2, seed=93, scale=0.2)
    g = torch.randn(2, 3, 3, dtype=F64, generator=_gen(94))
    mn = m.numpy()
    mi = np.linalg.inv(mn)
    for i in range(2):
        p, q, vv = x[i].numpy(), y[i].numpy(), v[i].numpy()
        sp = sla.sqrtm(p)
        d2 = np.trace(mi @ p) + np.trace(mi @ q) - 2 * np.trace(sla.sqrtm(sp @ mi @ q @ mi @ sp)).real
        np.testing.assert_allclose(M.dist(x[i], y[i]).numpy(), np.sqrt(d2), atol=1e-10, rtol=1e-10)
        log = mn @ sla.sqrtm(mi @ p @ mi @ q) + sla.sqrtm(q @ mi @ p @ mi) @ mn - 2 * p
        np.testing.assert_allclose(M.logmap(x[i], y[i]).numpy(), log.real, atol=1e-10, rtol=1e-10)
        lv = _np_gen_lyapunov(p, mn, vv)
        np.testing.assert_allclose(M.expmap(x[i], v[i]).numpy(), p + vv + mn @ lv @ p @ lv @ mn, atol=1e-10, rtol=1e-10)
        w = _sym(3, seed=95 + i).numpy()
        np.testing.assert_allclose(M.inner(x[i], v[i], _t(w)).numpy(), 0.5 * np.trace(lv @ w), atol=1e-10, rtol=1e-10)
        gs = (g[i].numpy() + g[i].numpy().T) / 2
        np.testing.assert_allclose(M.egrad2rgrad(x[i], g[i]).numpy(), 2 * (p @ gs @ mn + mn @ gs @ p), atol=1e-10, rtol=1e-10)
    # θ-GBWM: the power pullback of GBWM
    Mt = SPD(3, GBWM(m, theta=0.5))
    px, py = _t(_np_pow(x.numpy(), 0.5)), _t(_np_pow(y.numpy(), 0.5))
    torch.testing.assert_close(Mt.dist(x, y), M.dist(px, py) / 0.5, atol=1e-10, rtol=1e-10)
    # m = I is BWM
    eye = torch.eye(3, dtype=F64)
    torch.testing.assert_close(SPD(3, GBWM(eye)).logmap(x, y), SPD(3, "bwm").logmap(x, y), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(SPD(3, GBWM(eye, theta=0.5)).dist(x, y), SPD(3, BWM(theta=0.5)).dist(x, y))


def test_gbwm_parameter_gradient_and_dtype():
    m = _M_GBW.clone().requires_grad_(True)
    M = SPD(3, GBWM(m))
    x, y = _spd(3, 2, seed=96), _spd(3, 2, seed=97)
    M.dist(x, y).sum().backward()
    assert m.grad is not None and torch.isfinite(m.grad).all()
    # float64 m with float32 points: m is cast to the points' dtype
    d32 = SPD(3, GBWM(_M_GBW)).dist(x.float(), y.float())
    assert d32.dtype == torch.float32
    torch.testing.assert_close(d32.double(), SPD(3, GBWM(_M_GBW)).dist(x, y), atol=1e-4, rtol=1e-4)
    assert torch.autograd.gradcheck(
        lambda a: SPD(3, GBWM((a + a.mT) / 2)).dist(x, y), (_M_GBW.clone().requires_grad_(True),), eps=1e-6, atol=1e-5
    )


# ---------------------------------------------------------------------------- gradients
def _gradcheck(fn, *args):
    args = [a.detach().clone().requires_grad_(True) for a in args]
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def _sp(t):
    return (t + t.mT) / 2


GRAD_FAMILIES = ["aim_t-0.7_ab", "lem_ab", "em_t0.5", "lcm_t-0.5", "bwm_t0.5", "gbwm_t0.5"]


@pytest.mark.parametrize("name", GRAD_FAMILIES)
@pytest.mark.parametrize("where", ["random", "identity", "repeated"])
def test_gradcheck(name, where):
    M = SPD(3, FAMILIES[name]())
    x = {"random": _spd(3, seed=10), "identity": torch.eye(3, dtype=F64), "repeated": _repeated()}[where]
    y = _spd(3, seed=11)
    u, v = _sym(3, seed=12, scale=0.3), _sym(3, seed=13)
    _gradcheck(lambda a, b, c: M.inner(_sp(a), _sp(b), _sp(c)), x, u, v)
    _gradcheck(lambda a, b: M.dist(_sp(a), _sp(b)), x, y)
    _gradcheck(lambda a, b: M.dist(_sp(a), _sp(b)), y, x)
    _gradcheck(lambda a, b: M.logmap(_sp(a), _sp(b)), x, y)
    _gradcheck(lambda a, b: M.expmap(_sp(a), _sp(b)), x, u)
    _gradcheck(lambda a, b: M.egrad2rgrad(_sp(a), b), x, u + 0.1)
    if name not in ODE_TRANSPORT:
        _gradcheck(lambda a, b, c: M.transp(_sp(a), _sp(b), _sp(c)), x, y, v)


def test_gradients_finite_at_identity_full_jacobian():
    """Full (not fast-mode) gradcheck of the power-affine distance and logmap at x = I."""
    M = SPD(3, AIM(theta=0.5, alpha=1.0, beta=0.2))
    x, y = torch.eye(3, dtype=F64), _spd(3, seed=14)
    args = [t.clone().requires_grad_(True) for t in (x, y)]
    assert torch.autograd.gradcheck(lambda a, b: M.logmap(_sp(a), _sp(b)), args, eps=1e-6, atol=1e-5, rtol=1e-4)
    assert torch.autograd.gradcheck(lambda a, b: M.dist(_sp(a), _sp(b)), args, eps=1e-6, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------- dtypes, large n
@pytest.mark.parametrize("name", list(FAMILIES))
def test_float32_matches_float64(name):
    M = SPD(3, FAMILIES[name]())
    x, y = _spd(3, 4, seed=15), _spd(3, 4, seed=16)
    u = M.logmap(x, y)
    tol = dict(atol=2e-4, rtol=2e-4)
    d32 = M.dist(x.float(), y.float())
    assert d32.dtype == torch.float32
    torch.testing.assert_close(d32.double(), M.dist(x, y), **tol)
    torch.testing.assert_close(M.logmap(x.float(), y.float()).double(), u, **tol)
    torch.testing.assert_close(M.expmap(x.float(), u.float()).double(), y, **tol)
    v = _sym(3, 4, seed=17)
    torch.testing.assert_close(M.inner(x.float(), u.float(), v.float()).double(), M.inner(x, u, v), **tol)


@pytest.mark.parametrize("met", [lambda: AIM(theta=0.5, beta=0.05), lambda: EM(theta=-0.5)])
def test_large_n_eigenbasis_path(met):
    M = SPD(10, met())
    x, y = _spd(10, 2, seed=34), _spd(10, 2, seed=35)
    u = M.logmap(x, y)
    torch.testing.assert_close(M.expmap(x, u), y, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(M.norm(x, u), M.dist(x, y), atol=1e-9, rtol=1e-9)
    g = torch.randn(2, 10, 10, dtype=F64, generator=_gen(36))
    v = _sym(10, 2, seed=37)
    torch.testing.assert_close(M.inner(x, M.egrad2rgrad(x, g), v), (g * v).sum((-2, -1)), atol=1e-9, rtol=1e-9)
    # gradients stay finite at repeated eigenvalues for n > 8 too (second-order Daleckii–Krein)
    xr = _repeated(10).requires_grad_(True)
    (M.dist(xr, y[0]) + M.inner(xr, v[0], v[1]) + M.expmap(xr, 0.1 * v[0]).sum()).backward()
    assert torch.isfinite(xr.grad).all()
