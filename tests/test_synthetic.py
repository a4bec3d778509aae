"""Synthetic wrapped-normal mixtures (manifold_rl.data.synthetic): normalisation and sampling vs density."""

import math

import pytest
import torch
from scipy.integrate import quad

from manifolds import Hyperboloid, SO3
from manifolds.lie import so3_exp
from manifold_rl.data.synthetic import HyperbolicWrappedNormalMixture, SO3WrappedNormalMixture, TorusWrappedNormalMixture


def _rot_z(theta):
    return so3_exp(torch.tensor([0.0, 0.0, theta], dtype=torch.float64))


def _so3_single(s):
    m = SO3WrappedNormalMixture(1, scale=s, scale_type="fixed")
    m.means = torch.eye(3, dtype=torch.float64)[None]
    return m


# ---------------------------------------------------------------- SO(3)
@pytest.mark.parametrize("s", [0.07, 0.4, 1.0, 2.5])
def test_so3_component_integrates_to_one_by_quadrature(s):
    # Haar volume element in the rotation angle: dV = 8π (1 − cos θ) dθ (total 8π²)
    m = _so3_single(s)
    f = lambda th: math.exp(float(m.log_prob(_rot_z(th)))) * 8 * math.pi * (1 - math.cos(th))  # noqa: E731
    val = quad(f, 0, math.pi, limit=200, points=[min(0.5, 5 * s)])[0]
    assert abs(val - 1) < 1e-8


def test_so3_mixture_integrates_to_one_monte_carlo():
    # E_Haar[8π² p(x)] = 1; broad components so uniform samples see the density; 5 standard errors
    m = SO3WrappedNormalMixture(5, scale=0.6, scale_type="fixed", seed=3)
    x = SO3().random(80_000, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    v = 8 * math.pi**2 * m.log_prob(x).exp()
    se = float(v.std()) / math.sqrt(v.numel())
    assert abs(float(v.mean()) - 1) < 5 * se and se < 0.03


def test_so3_samples_follow_density():
    # the law of the angle θ of the samples: E[θ] and E[cos θ] against the quadrature of the density
    s = 0.8
    m = _so3_single(s)
    x = m.sample(40_000, generator=torch.Generator().manual_seed(1))
    th = SO3().dist(m.means[0], x)
    dens = lambda t: math.exp(float(m.log_prob(_rot_z(t)))) * 8 * math.pi * (1 - math.cos(t))  # noqa: E731
    for fn, vals in ((lambda t: t, th), (math.cos, torch.cos(th))):
        ref = quad(lambda t: fn(t) * dens(t), 0, math.pi, limit=200)[0]
        se = float(vals.std()) / math.sqrt(vals.numel())
        assert abs(float(vals.mean()) - ref) < 5 * se


def test_so3_special_points_and_rsgm_defaults():
    m = _so3_single(0.3)
    lp0 = m.log_prob(torch.eye(3, dtype=torch.float64))
    # at θ = 0 the density is the Gaussian peak (2πs²)^{-3/2} (the j ≠ 0 terms are e^{-(2π)²/(2s²)}-small)
    assert abs(float(lp0) + 1.5 * math.log(2 * math.pi * 0.09)) < 1e-10
    assert torch.isfinite(m.log_prob(_rot_z(math.pi))).all()
    # small θ: continuous across the Taylor switch
    a, b = m.log_prob(_rot_z(0.999e-3)), m.log_prob(_rot_z(1.001e-3))
    assert abs(float(a - b)) < 1e-7
    r = SO3WrappedNormalMixture(16, seed=0)  # RSGM: precisions ~ Gamma(100) -> s ≈ 1/√200
    assert 0.05 < float(r.stds.min()) and float(r.stds.max()) < 0.1
    torch.testing.assert_close(r.weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="scale_type"):
        SO3WrappedNormalMixture(2, scale_type="bad")
    with pytest.raises(ValueError, match="rotation matrices"):
        r.log_prob(torch.zeros(4, 3))


# ---------------------------------------------------------------- torus
def test_torus_grid_integral_and_image_sum():
    m = TorusWrappedNormalMixture(2, 3, scale=1.2, seed=2, weights=[0.2, 0.3, 0.5])
    n = 160
    g = (torch.arange(n, dtype=torch.float64) + 0.5) * (2 * math.pi / n)
    X = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    total = float(m.log_prob(X).exp().sum()) * (2 * math.pi / n) ** 2
    assert abs(total - 1) < 1e-10  # midpoint rule is spectrally accurate for smooth periodic functions
    # brute force with 30 images each way
    x = m.sample(50, generator=torch.Generator().manual_seed(0))
    d = m.manifold.logmap(m.means, x[:, None, :])  # (50, 3, 2)
    j = torch.arange(-30, 31, dtype=torch.float64)
    s = m.stds[:, None, None]
    dens = (torch.exp(-((d[..., None] + 2 * math.pi * j) ** 2) / (2 * s**2)).sum(-1) / torch.sqrt(2 * math.pi * s[..., 0] ** 2)).prod(-1)
    ref = torch.log((dens * m.weights).sum(-1))
    torch.testing.assert_close(m.log_prob(x), ref, rtol=1e-12, atol=1e-12)


def test_torus_samples_on_manifold_and_fixed_seed():
    m = TorusWrappedNormalMixture(3, 4, scale=50.0, scale_type="random", seed=0)
    x = m.sample(1000)
    assert x.shape == (1000, 3) and float(x.min()) >= 0 and float(x.max()) < 2 * math.pi
    assert torch.equal(x, m.sample(1000))
    # concentrated components: the mean log-likelihood of the samples is close to the Gaussian entropy
    ent = -0.5 * 3 * (1 + math.log(2 * math.pi)) - 3 * torch.log(m.stds)
    assert abs(float(m.log_prob(x).mean()) - float(ent.mean() - math.log(4))) < 0.3


# ---------------------------------------------------------------- hyperbolic
@pytest.mark.parametrize("c", [1.0, 2.0])
def test_hyperbolic_component_radial_integral(c):
    # one component at the origin: ∫ p(r) · 2π sinh(√c r)/√c dr = 1 in H²
    m = HyperbolicWrappedNormalMixture(2, 1, std=0.7, c=c)
    m.means = torch.tensor([[1 / math.sqrt(c), 0.0, 0.0]], dtype=torch.float64)

    def f(r):
        x = torch.tensor([math.cosh(math.sqrt(c) * r) / math.sqrt(c), math.sinh(math.sqrt(c) * r) / math.sqrt(c), 0.0], dtype=torch.float64)
        return math.exp(float(m.log_prob(x))) * 2 * math.pi * math.sinh(math.sqrt(c) * r) / math.sqrt(c)

    assert abs(quad(f, 0, 12, limit=200)[0] - 1) < 1e-8
    # and it equals Hyperboloid.base_log_prob with base_std = σ
    H = Hyperboloid(2, c=c, base_std=0.7)
    x = H.random_base(20, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(m.log_prob(x), H.base_log_prob(x))


def test_hyperbolic_mixture_importance_sampling_and_models():
    m = HyperbolicWrappedNormalMixture(2, 4, std=[0.3, 0.5, 0.4, 0.6], mean_std=0.8, seed=1)
    q = Hyperboloid(2, base_std=1.5)
    y = q.random_base(120_000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    w = (m.log_prob(y) - q.base_log_prob(y)).exp()
    se = float(w.std()) / math.sqrt(w.numel())
    assert abs(float(w.mean()) - 1) < 5 * se and se < 0.03
    xs = m.sample(200, generator=torch.Generator().manual_seed(3))
    ok, reason = Hyperboloid(2).check_point(xs)
    assert ok, reason
    p = HyperbolicWrappedNormalMixture(2, 4, std=[0.3, 0.5, 0.4, 0.6], mean_std=0.8, seed=1, model="poincare")
    xp = p.sample(200, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(xp, m.hyperboloid.to_poincare(xs))
    torch.testing.assert_close(p.log_prob(xp), m.log_prob(xs), rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="model"):
        HyperbolicWrappedNormalMixture(model="klein")
    with pytest.raises(ValueError, match="points of the poincare model"):
        p.log_prob(xs)
