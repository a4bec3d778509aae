"""Exact log-likelihood of flows on manifolds (manifolds.flow_matching.likelihood).

Oracles: closed-form flows on S² (a rotation: divergence 0; the gradient of the height:
divergence −2z and a closed-form flow), Monte Carlo normalisation of a random-network flow on
S² and SO(3) (tolerance from the MC standard error), the brute-force log-determinant of a short
RK4 flow map by ``torch.func.jacrev`` with the metric's Gram determinant (Poincaré ball, SPD
AIM / LEM / LCM), and the isometry hyperboloid ↔ Poincaré ball.
"""

from __future__ import annotations

import math

import pytest
import torch

from manifolds import SE3, SO3, SPD, Euclidean, Hyperboloid, PoincareBall, Product, Sphere, Stiefel, Torus
from manifolds.flow_matching import (
    ProjectToTangent,
    log_det_metric,
    log_likelihood,
    riemannian_divergence,
)
from manifolds.flow_matching.likelihood import _chart, gram_log_det

F64 = torch.float64
EZ = torch.tensor([0.0, 0.0, 1.0], dtype=F64)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


class _MLP(torch.nn.Module):
    """Small random-init time-dependent network ``(x, t) -> ambient vector`` (per sample)."""

    def __init__(self, d_in, d_out, h=32, seed=0, scale=1.0, ev_ndim=1):
        super().__init__()
        self.ev_ndim = ev_ndim
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = torch.nn.Sequential(
                torch.nn.Linear(d_in + 1, h), torch.nn.Tanh(), torch.nn.Linear(h, h), torch.nn.Tanh(), torch.nn.Linear(h, d_out)
            ).to(F64)
        self.scale = scale

    def forward(self, x, t):
        flat = x.flatten(x.dim() - self.ev_ndim)
        return self.scale * self.net(torch.cat([flat, t[..., None]], -1))


# ---------------------------------------------------------------------------- S² closed forms
def _rotation(x, t):
    return torch.linalg.cross(EZ.expand_as(x), x)


def _height_gradient(x, t):
    return Sphere(2).proju(x, EZ.expand_as(x))


def test_rotation_flow_on_sphere_is_volume_preserving():
    """v = e_z × x: divergence 0, log p_1(x) = −log 4π exactly, x_0 = x rotated back by 1 rad."""
    S = Sphere(2)
    x = S.random(16, 3, dtype=F64, generator=_gen(0))
    lp, x0 = log_likelihood(S, _rotation, x, atol=1e-9, rtol=1e-9)
    assert torch.allclose(lp, torch.full_like(lp, -math.log(4 * math.pi)), atol=1e-12)
    c, s = math.cos(-1.0), math.sin(-1.0)
    R = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=F64)
    assert torch.allclose(x0, x @ R.T, atol=1e-8)


def test_rotation_flow_from_a_vmf_mixture_base_is_the_rotated_mixture():
    """A non-uniform base (``base_log_prob``: a fitted vMF mixture, as ``bench_earth``'s
    ``rfm_vmf``): the divergence-free rotation gives log p_1(x) = log p_0(R⁻¹ x) exactly."""
    from manifold_rl.baselines import VonMisesFisherMixture

    S = Sphere(2)
    data = torch.nn.functional.normalize(torch.randn(400, 3, dtype=F64, generator=_gen(1)) + torch.tensor([0.0, 2.0, 0.5], dtype=F64), dim=-1)
    vmf = VonMisesFisherMixture(3, seed=0).fit(data)
    x = S.random(16, 3, dtype=F64, generator=_gen(2))
    lp, x0 = log_likelihood(S, _rotation, x, atol=1e-10, rtol=1e-10, base_log_prob=vmf.log_prob)
    c, s = math.cos(-1.0), math.sin(-1.0)
    R = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=F64)
    torch.testing.assert_close(lp, vmf.log_prob(x @ R.T), atol=1e-7, rtol=0)
    assert float((lp - vmf.log_prob(x)).abs().max()) > 0.1  # the base is not rotation invariant: the check has teeth


def test_height_gradient_divergence_and_likelihood_closed_form():
    """v = proju(x, e_z) = ∇z: div = Δz = −2z; z_t = tanh(t + atanh z_0), so
    log p_1(x) = −log 4π + 2 log(cosh a / cosh(a − 1)), a = atanh z_1."""
    S = Sphere(2)
    x = S.random(32, 3, dtype=F64, generator=_gen(1))
    x = x[x[:, 2].abs() < 0.95]
    _, d = riemannian_divergence(S, _height_gradient, x, 0.0)
    assert torch.allclose(d, -2 * x[:, 2], atol=1e-12)
    _, dh = riemannian_divergence(S, _height_gradient, x, 0.0, divergence="hutchinson", eps=torch.ones(1, x.shape[0], 3, dtype=F64))
    assert torch.isfinite(dh).all()
    a = torch.atanh(x[:, 2])
    expected = -math.log(4 * math.pi) + 2 * (torch.log(torch.cosh(a)) - torch.log(torch.cosh(a - 1)))
    lp, x0 = log_likelihood(S, _height_gradient, x, atol=1e-10, rtol=1e-10)
    assert torch.allclose(lp, expected, atol=1e-8)
    assert torch.allclose(x0[:, 2], torch.tanh(a - 1), atol=1e-8)
    # 1000 projected Euler steps (RFM's evaluation setting): first order, error ~1e-3
    lpe, _ = log_likelihood(S, _height_gradient, x, method="projx_euler", n_steps=100)
    err = (lpe - expected).abs().max()
    assert 1e-5 < err < 4e-2
    lpe2, _ = log_likelihood(S, _height_gradient, x, method="projx_euler", n_steps=200)
    assert (lpe2 - expected).abs().max() < 0.6 * err  # first-order convergence
    lpg, _ = log_likelihood(S, _height_gradient, x, method="euler", n_steps=100)
    assert (lpg - expected).abs().max() < 4e-2


def test_hutchinson_is_unbiased_on_sphere():
    """Averaged over many Rademacher probes the estimate approaches the exact divergence."""
    S = Sphere(2)
    field = ProjectToTangent(_MLP(3, 3, seed=3), S)
    x = S.random(4, 3, dtype=F64, generator=_gen(2))
    t = torch.full((4,), 0.3, dtype=F64)
    _, d = riemannian_divergence(S, field, x, t)
    eps = torch.randint(0, 2, (4000, 4, 3), generator=_gen(3)).to(F64) * 2 - 1
    _, dh = riemannian_divergence(S, field, x, t, divergence="hutchinson", eps=eps)
    d, dh = d.detach(), dh.detach()
    assert torch.allclose(dh, d, atol=0.1 * float(d.abs().max()) + 0.05)
    lp, _ = log_likelihood(S, field, x, divergence="hutchinson", n_hutchinson=2, generator=_gen(4))
    assert lp.shape == (4,) and torch.isfinite(lp).all()


# ---------------------------------------------------------------------------- Monte Carlo normalisation
@pytest.mark.parametrize("name", ["sphere", "so3"])
def test_random_flow_density_integrates_to_one(name):
    """∫ p_1 dvol = vol(M) · E_uniform[p_1] = 1 within 4 MC standard errors (and not trivially:
    the density varies)."""
    if name == "sphere":
        M, N = Sphere(2), 1000
        field = ProjectToTangent(_MLP(3, 3, seed=5, scale=1.5), M)
        x = M.random(N, 3, dtype=F64, generator=_gen(6))
    else:
        M, N = SO3(), 200
        field = ProjectToTangent(_MLP(9, 9, h=16, seed=7, scale=1.0, ev_ndim=2), _Reshape(M))
        x = M.random(N, 3, 3, dtype=F64, generator=_gen(8))
    lp, x0 = log_likelihood(M, field, x, atol=1e-5, rtol=1e-5)
    w = torch.exp(lp + M.log_volume())
    mean, se = float(w.mean()), float(w.std() / math.sqrt(N))
    assert float(w.std()) > 0.1  # a non-uniform density
    assert abs(mean - 1.0) < 4 * se + 1e-3, (mean, se)
    assert M.check_point(x0)[0]


class _Reshape(torch.nn.Module):
    """Manifold adapter so that :class:`ProjectToTangent` works with a flat-vector net on SO(3)."""

    def __init__(self, M):
        super().__init__()
        self.M = M

    def proju(self, x, u):
        return self.M.proju(x, u.reshape(x.shape))


def test_left_invariant_field_on_so3_has_zero_divergence():
    """v(x) = x hat(ω) is a Killing field of the bi-invariant metric: div 0, log p_1 = −log 8π²."""
    M = SO3()
    w = torch.tensor([[0.0, -0.3, 0.2], [0.3, 0.0, -0.5], [-0.2, 0.5, 0.0]], dtype=F64)
    x = M.random(8, 3, 3, dtype=F64, generator=_gen(9))
    _, d = riemannian_divergence(M, lambda y, t: y @ w, x, 0.0)
    assert d.abs().max() < 1e-12
    lp, x0 = log_likelihood(M, lambda y, t: y @ w, x, atol=1e-10, rtol=1e-10)
    assert torch.allclose(lp, torch.full_like(lp, -M.log_volume()), atol=1e-9)
    assert torch.allclose(x0, x @ torch.linalg.matrix_exp(-w), atol=1e-7)


# ---------------------------------------------------------------------------- coordinate charts: brute force
def _rk4_map(f, T, n):
    def phi(c):
        h = T / n
        for _ in range(n):
            k1 = f(c)
            k2 = f(c + 0.5 * h * k1)
            k3 = f(c + 0.5 * h * k2)
            k4 = f(c + h * k3)
            c = c + h * (k1 + 2 * k2 + 2 * k3 + k4) / 6
        return c

    return phi


def _brute_force_check(M, field, x, T=0.3):
    """``−∫ div_g`` from the ODE vs ``−log J_g`` of the flow map, ``J_g = |det DΦ| √(det G(Φx)/det G(x))``,
    with ``DΦ`` by ``jacrev`` of an RK4 flow in the chart coordinates and ``G`` the Gram matrix of
    ``manifold.inner`` (independent of the closed forms of :func:`log_det_metric`)."""
    ch = _chart(M)
    f = lambda c: ch.read(field(ch.lift(c), torch.zeros(c.shape[:-1], dtype=F64)))  # noqa: E731
    phi = _rk4_map(f, T, 100)
    for xi in x:
        c = ch.read(xi)
        J = torch.func.jacrev(phi)(c)
        y = ch.lift(phi(c))
        logJg = torch.linalg.slogdet(J)[1] + 0.5 * (gram_log_det(M, y) - gram_log_det(M, xi))
        zero = lambda z: torch.zeros(z.shape[:-len(ch.ev)], dtype=F64)  # noqa: E731
        delta, x0 = log_likelihood(M, field, y[None], t0=0.0, t1=T, atol=1e-8, rtol=1e-8, base_log_prob=zero)
        assert torch.allclose(x0[0], xi, atol=1e-6)
        assert abs(float(delta[0] + logJg)) < 1e-5, (float(delta[0]), float(-logJg))
        assert abs(float(logJg)) > 1e-2  # the check is not vacuous


def test_poincare_correction_matches_flow_map_log_det():
    M = PoincareBall(2)
    A = torch.tensor([[0.3, -1.0], [0.7, 0.2]], dtype=F64)

    def field(x, t):
        return x @ A.T + 0.4 * torch.tanh(x) + torch.tensor([0.2, -0.1], dtype=F64)

    x = 0.5 * M.random(2, 2, dtype=F64, generator=_gen(10))
    _brute_force_check(M, field, x)


@pytest.mark.parametrize("metric", ["aim", "lem", "lcm"])
def test_spd_correction_matches_flow_map_log_det(metric):
    M = SPD(3, metric)
    B = torch.tensor([[0.3, 0.1, 0.0], [0.1, -0.2, 0.2], [0.0, 0.2, 0.1]], dtype=F64)

    def field(x, t):
        return 0.3 * (x @ x) + B @ x + x @ B - 0.5 * torch.eye(3, dtype=F64)

    x = M.random(1, 3, 3, dtype=F64, generator=_gen(11))
    _brute_force_check(M, field, x)


@pytest.mark.parametrize("metric", ["aim", "lem"])
def test_spd_log_det_metric_closed_form_matches_gram(metric):
    """The closed forms differ from the Gram log-determinant by a constant, including near ties."""
    M = SPD(3, metric)
    x = M.random(6, 3, 3, dtype=F64, generator=_gen(12))
    x = torch.cat([x, torch.eye(3, dtype=F64)[None] * 1.5, torch.diag(torch.tensor([1.0, 1.0 + 1e-7, 2.0], dtype=F64))[None]])
    diff = log_det_metric(M, x) - gram_log_det(M, x)
    assert torch.allclose(diff, diff[0].expand_as(diff), atol=1e-8)


def test_poincare_log_det_metric_matches_gram():
    M = PoincareBall(3, c=0.7)
    x = 0.4 * M.random(5, 3, dtype=F64, generator=_gen(13))
    assert torch.allclose(log_det_metric(M, x), gram_log_det(M, x), atol=1e-10)


def test_hyperboloid_matches_poincare_through_the_isometry():
    """Densities w.r.t. the Riemannian volume are isometry invariant: the same flow on the
    hyperboloid (pushed through ``from_poincare``) and on the ball gives the same log-likelihood."""
    H, P = Hyperboloid(2), PoincareBall(2)
    A = torch.tensor([[0.2, -0.8], [0.5, -0.1]], dtype=F64)

    def vp(p, t):
        return p @ A.T + 0.3 * torch.sin(p) + 0.2

    def vh(h, t):
        p = H.to_poincare(h)
        return torch.func.jvp(H.from_poincare, (p,), (vp(p, t),))[1]

    p1 = 0.6 * P.random(3, 2, dtype=F64, generator=_gen(14)).tanh()
    lp_p, x0p = log_likelihood(P, vp, p1, atol=1e-8, rtol=1e-8)
    lp_h, x0h = log_likelihood(H, vh, H.from_poincare(p1), atol=1e-8, rtol=1e-8)
    assert torch.allclose(H.to_poincare(x0h), x0p, atol=1e-5)
    assert torch.allclose(lp_h, lp_p, atol=1e-5)
    assert (lp_p - P.base_log_prob(x0p)).abs().max() > 1e-2


def test_product_and_torus_and_se3():
    """Product = sum of factor log-likelihoods for a factorised field; torus in angles is flat
    (a constant field preserves the uniform density); SE(3) runs and its divergence matches SO(3)×R³."""
    S, T = Sphere(2), Torus(2)
    M = Product(S, T)
    x = M.random(5, 5, dtype=F64, generator=_gen(15))
    const = torch.tensor([0.3, -0.7], dtype=F64)

    def field(z, t):
        s, a = M.split(z)
        return M.join([_height_gradient(s, t), const.expand_as(a) + 0 * a])

    lp, x0 = log_likelihood(M, field, x, atol=1e-10, rtol=1e-10)
    s, a = M.split(x)
    lps, _ = log_likelihood(S, _height_gradient, s, atol=1e-10, rtol=1e-10)
    assert torch.allclose(lp, lps - T.log_volume(), atol=1e-8)
    assert torch.allclose(M.split(x0)[1], T.projx(a - const), atol=1e-8)

    G = SE3()
    g = G.random(4, 4, 4, dtype=F64, generator=_gen(16))
    w = torch.tensor([[0.0, -0.3, 0.2], [0.3, 0.0, -0.5], [-0.2, 0.5, 0.0]], dtype=F64)

    def fse3(y, t):
        R, p = y[..., :3, :3], y[..., :3, 3:]
        top = torch.cat([R @ w, -0.5 * p], -1)  # translation field −p/2: divergence −3/2
        return torch.cat([top, torch.zeros_like(top[..., :1, :])], -2)

    _, d = riemannian_divergence(G, fse3, g, 0.0)
    assert torch.allclose(d, torch.full_like(d, -1.5), atol=1e-12)


def _special_points(name, M):
    """Random points plus the special ones of each manifold (poles, the equator where the
    Householder sign flips, identity and angle-π rotations)."""
    if name.startswith("sphere"):
        x = M.random((6,) + M.event_shape, dtype=F64, generator=_gen(40))
        n1 = x.shape[-1]
        e0 = torch.zeros(n1, dtype=F64)
        e0[0] = 1.0
        eq = torch.zeros(n1, dtype=F64)
        eq[1] = 1.0
        return torch.cat([x, e0[None], -e0[None], eq[None]])
    if name == "so3":
        from manifolds.lie import so3_exp

        x = M.random((6,) + M.event_shape, dtype=F64, generator=_gen(41))
        w = torch.tensor([[0.0, 0.0, 0.0], [math.pi, 0.0, 0.0], [0.0, 0.0, -math.pi]], dtype=F64)
        return torch.cat([x, so3_exp(w)])
    return M.random((6,) + M.event_shape, dtype=F64, generator=_gen(42))


@pytest.mark.parametrize("name", ["sphere2", "sphere4", "so3", "se3"])
def test_tangent_frame_divergence_equals_ambient_coordinate_trace(name, monkeypatch):
    """The exact divergence over an orthonormal tangent frame (dim M jvps) equals the trace over all
    ambient coordinates (the chart's K jvps; frame switched off) for a random network field, to
    float64 rounding, including the special points; float32 agrees to float32 accuracy."""
    M = {"sphere2": Sphere(2), "sphere4": Sphere(4), "so3": SO3(), "se3": SE3()}[name]
    x = _special_points(name, M)
    K = M.numel
    net = _MLP(K, K, seed=43, ev_ndim=len(M.event_shape))

    def field(z, t):
        return M.proju(z, net(z, t).reshape(z.shape))

    t = torch.full(x.shape[:1], 0.3, dtype=F64)
    chart = _chart(M)
    F = chart.frame(chart.retract(x))
    assert F.shape[0] == M.dim
    # orthonormal in the manifold's metric and tangent
    G = M.inner(x.unsqueeze(0).unsqueeze(0), F.unsqueeze(1), F.unsqueeze(0))
    assert torch.allclose(G, torch.eye(M.dim, dtype=F64).reshape(M.dim, M.dim, 1).expand_as(G), atol=1e-12)
    assert torch.allclose(M.proju(x.expand_as(F), F), F, atol=1e-12)
    v, d = riemannian_divergence(M, field, x, t)
    monkeypatch.setattr(type(chart), "frame", lambda self, y: None)
    v_ref, d_ref = riemannian_divergence(M, field, x, t)
    assert torch.allclose(v, v_ref, atol=1e-14)
    assert torch.allclose(d, d_ref, atol=1e-10), (d - d_ref).abs().max()
    monkeypatch.undo()
    net32 = _MLP(K, K, seed=43, ev_ndim=len(M.event_shape)).float()
    x32 = x.float()

    def field32(z, t):
        return M.proju(z, net32(z, t).reshape(z.shape))

    _, d32 = riemannian_divergence(M, field32, x32, t.float())
    assert torch.allclose(d32.double(), d_ref, atol=2e-4 * (1 + float(d_ref.detach().abs().max())))


def test_conditional_likelihood_with_guidance_extras():
    """Per-sample conditions travel with the points (replicated for the divergence): the guided
    field at w = 1 gives the conditional field's likelihood, row by row."""
    from manifolds.flow_matching import ClassifierFreeGuidance

    S = Sphere(2)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = _MLP(5, 3, seed=21)

        def forward(self, x, t, cond):
            return self.m(torch.cat([x, cond], -1), t)

    net = Net()
    x = S.random(6, 3, dtype=F64, generator=_gen(22))
    c = torch.randn(6, 2, dtype=F64, generator=_gen(23))
    cfg = ClassifierFreeGuidance(net, S, scale=1.0)
    lp, _ = log_likelihood(S, cfg, x, cond=c, atol=1e-8, rtol=1e-8)
    for i in (0, 3):
        lpi, _ = log_likelihood(S, lambda y, t: S.proju(y, net(y, t, cond=c[i : i + 1].expand(y.shape[0], 2))), x[i : i + 1], atol=1e-8, rtol=1e-8)
        assert torch.allclose(lp[i], lpi[0], atol=1e-6)


def test_bad_inputs():
    S = Sphere(2)
    x = S.random(3, 3, dtype=F64)
    with pytest.raises(ValueError):
        log_likelihood(S, _rotation, x, divergence="nope")
    with pytest.raises(ValueError):
        log_likelihood(S, _rotation, x[:, :2])
    with pytest.raises(ValueError):
        log_likelihood(S, _rotation, x, n_steps=0, method="projx_euler")
    with pytest.raises(ValueError):
        riemannian_divergence(S, _rotation, x, 0.0, divergence="hutchinson")
    with pytest.raises(NotImplementedError):
        log_likelihood(Stiefel(3, 2), lambda y, t: y, torch.eye(3, 2, dtype=F64)[None])
    assert log_det_metric(Euclidean(2), torch.zeros(1, 2)) is None
