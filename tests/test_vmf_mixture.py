"""von Mises–Fisher mixture baseline (manifold_rl.baselines): normaliser, EM recovery, sampling."""

import math

import numpy as np
import pytest
import torch
from scipy.special import ive
from scipy.stats import vonmises_fisher

from manifold_rl.baselines import VonMisesFisherMixture, vmf_log_normalizer


def _set(model, weights, means, kappas):
    model.weights_ = torch.tensor(weights, dtype=torch.float64)
    m = torch.as_tensor(np.asarray(means, dtype=np.float64))
    model.means_ = m / m.norm(dim=-1, keepdim=True)
    model.kappas_ = torch.tensor(kappas, dtype=torch.float64)
    return model


def test_log_normalizer_closed_form_s2_and_limits():
    k = np.array([1e-3, 0.5, 1.0, 10.0, 300.0, 1e4])
    # on S²: C_3(κ) = κ / (4π sinh κ)  ->  log κ − log 2π − κ − log(1 − e^{−2κ})
    ref = np.log(k) - math.log(2 * math.pi) - k - np.log1p(-np.exp(-2 * k))
    np.testing.assert_allclose(vmf_log_normalizer(k, 3), ref, rtol=1e-12, atol=1e-12)
    # κ -> 0: uniform density 1/|S^{p-1}|
    for p in (2, 3, 5):
        lim = math.lgamma(p / 2) - math.log(2) - p / 2 * math.log(math.pi)
        np.testing.assert_allclose(vmf_log_normalizer(np.array([0.0, 1e-9]), p), [lim, lim], atol=1e-8)
        np.testing.assert_allclose(vmf_log_normalizer(np.array([1e-7]), p), lim, atol=1e-6)


@pytest.mark.parametrize("p", [3, 4])
def test_single_component_matches_scipy(p):
    rng = np.random.default_rng(0)
    mu = rng.normal(size=p)
    mu /= np.linalg.norm(mu)
    for kappa in (0.3, 7.0, 250.0):
        model = _set(VonMisesFisherMixture(1), [1.0], [mu], [kappa])
        x = vonmises_fisher(mu, kappa).rvs(50, random_state=rng)
        x = np.concatenate([x, rng.normal(size=(10, p))])
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        ours = model.log_prob(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(ours, vonmises_fisher(mu, kappa).logpdf(x), rtol=1e-10, atol=1e-10)


def test_mixture_integrates_to_one_on_s2():
    # Monte Carlo with uniform samples: ∫ p dS = 4π E_unif[p]; tolerance 5 standard errors
    model = _set(VonMisesFisherMixture(3), [0.5, 0.3, 0.2], [[1, 0, 0], [0, 1, 1], [-1, -1, -3]], [3.0, 10.0, 25.0])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400_000, 3, dtype=torch.float64, generator=g)
    x = x / x.norm(dim=-1, keepdim=True)
    vals = 4 * math.pi * model.log_prob(x).exp()
    mean, se = float(vals.mean()), float(vals.std() / math.sqrt(vals.numel()))
    assert abs(mean - 1) < 5 * se, (mean, se)
    assert se < 0.01


def _match(true_means, means):
    cos = true_means @ means.T
    return cos.argmax(1)


@pytest.mark.parametrize("newton_steps", [0, 2])
def test_em_recovers_three_components(newton_steps):
    true = _set(VonMisesFisherMixture(3, seed=5), [0.5, 0.3, 0.2], [[1, 0, 0], [0, 1, 0.2], [-0.5, -0.5, -1]], [40.0, 15.0, 80.0])
    x = true.sample(20_000, generator=torch.Generator().manual_seed(1))
    fit = VonMisesFisherMixture(3, seed=0, newton_steps=newton_steps).fit(x)
    assert fit.converged_
    j = _match(true.means_, fit.means_)
    assert sorted(j.tolist()) == [0, 1, 2]
    angle = torch.arccos((true.means_ * fit.means_[j]).sum(-1).clamp(-1, 1))
    assert float(angle.max()) < 0.02
    torch.testing.assert_close(fit.weights_[j], true.weights_, atol=0.02, rtol=0)
    torch.testing.assert_close(fit.kappas_[j], true.kappas_, rtol=0.08, atol=0)
    # the fitted model is at least as likely as the truth on its training data (EM maximises it)
    assert float(fit.log_prob(x).mean()) >= float(true.log_prob(x).mean()) - 1e-3


def test_sample_moments_match_vmf():
    # E[μᵀx] = A_p(κ) = I_{p/2}(κ) / I_{p/2−1}(κ) (Mardia & Jupp eq. 9.3.6); coth κ − 1/κ on S²
    for p, kappa in ((3, 4.0), (5, 12.0), (3, 2000.0)):
        mu = torch.zeros(p, dtype=torch.float64)
        mu[0] = 1
        model = _set(VonMisesFisherMixture(1, seed=3), [1.0], [mu.tolist()], [kappa])
        x = model.sample(100_000)
        w = x[:, 0]
        expect = 1 / math.tanh(kappa) - 1 / kappa if p == 3 else float(ive(p / 2, kappa) / ive(p / 2 - 1, kappa))
        se = float(w.std()) / math.sqrt(w.numel())
        assert abs(float(w.mean()) - expect) < 5 * se, (p, float(w.mean()), expect)
        torch.testing.assert_close(x.norm(dim=-1), torch.ones(x.shape[0], dtype=torch.float64))


def test_duplicates_do_not_blow_up():
    # many copies of a few points: κ is capped, log-likelihood finite
    g = torch.Generator().manual_seed(0)
    base = torch.randn(5, 3, dtype=torch.float64, generator=g)
    base = base / base.norm(dim=-1, keepdim=True)
    x = base.repeat(40, 1)
    fit = VonMisesFisherMixture(8, seed=0, kappa_max=500.0).fit(x)
    assert torch.isfinite(fit.log_prob(x)).all()
    assert float(fit.kappas_.max()) <= 500.0
    assert math.isfinite(fit.log_likelihood_)


def test_bad_input():
    with pytest.raises(ValueError, match="n_components"):
        VonMisesFisherMixture(0)
    with pytest.raises(ValueError, match="kappa_max"):
        VonMisesFisherMixture(2, kappa_max=float("inf"))
    m = VonMisesFisherMixture(2)
    with pytest.raises(ValueError, match="not fitted"):
        m.log_prob(torch.tensor([[1.0, 0, 0]]))
    with pytest.raises(ValueError, match="unit vectors"):
        m.fit(torch.ones(10, 3))
    with pytest.raises(ValueError, match="at least n_components"):
        m.fit(torch.tensor([[1.0, 0, 0]]))
    x = torch.nn.functional.normalize(torch.randn(20, 3, dtype=torch.float64), dim=-1)
    m.fit(x)
    with pytest.raises(ValueError, match="3 coordinates"):
        m.log_prob(torch.tensor([[1.0, 0.0]]))


def test_responsibilities_are_bayes_posterior():
    model = _set(VonMisesFisherMixture(3, seed=2), [0.5, 0.3, 0.2], [[1, 0, 0], [0, 1, 0.2], [-0.5, -0.5, -1]], [40.0, 15.0, 80.0])
    x = model.sample(50, generator=torch.Generator().manual_seed(4))
    r = model.responsibilities(x)
    assert r.shape == (50, 3) and r.dtype == torch.float64
    torch.testing.assert_close(r.sum(1), torch.ones(50, dtype=torch.float64))
    # r_k = α_k vMF_k(x) / p(x), each term evaluated through a one-component model
    for k in range(3):
        one = _set(VonMisesFisherMixture(1), [1.0], [model.means_[k].tolist()], [float(model.kappas_[k])])
        expect = torch.exp(torch.log(model.weights_[k]) + one.log_prob(x) - model.log_prob(x))
        torch.testing.assert_close(r[:, k], expect)


def test_sample_given_components_and_the_responsibility_coupling():
    model = _set(VonMisesFisherMixture(2, seed=0), [0.7, 0.3], [[0, 0, 1], [0, 0, -1]], [60.0, 60.0])
    comp = torch.tensor([0] * 500 + [1] * 300)
    x = model.sample(800, generator=torch.Generator().manual_seed(1), components=comp)
    assert bool((x[:500, 2] > 0.5).all()) and bool((x[500:, 2] < -0.5).all())
    # coupling x1 ~ data, k ~ r(x1), x0 ~ vMF_k: at an EM fixed point (α_k = mean_i r_ik) the
    # x0-marginal is the fitted mixture itself — the base a data-dependent flow starts from
    true = _set(VonMisesFisherMixture(3), [0.5, 0.3, 0.2], [[1, 0, 0], [0, 1, 0.2], [-0.5, -0.5, -1]], [40.0, 15.0, 8.0])
    data = true.sample(4000, generator=torch.Generator().manual_seed(2))
    fit = VonMisesFisherMixture(3, seed=0, tol=1e-13, max_iter=5000).fit(data)
    r = fit.responsibilities(data)
    torch.testing.assert_close(r.mean(0), fit.weights_, atol=1e-6, rtol=0)
    g = torch.Generator().manual_seed(3)
    k = torch.multinomial(r, 1, generator=g).squeeze(1)
    x0 = fit.sample(data.shape[0], generator=g, components=k)
    # compare the x0-sample with a plain mixture sample through the means of x, y and z²
    ref = fit.sample(200_000, generator=torch.Generator().manual_seed(5))
    for f in (lambda z: z[:, 0], lambda z: z[:, 1], lambda z: z[:, 2] ** 2):
        se = float(f(ref).std()) / math.sqrt(x0.shape[0])
        assert abs(float(f(x0).mean()) - float(f(ref).mean())) < 5 * se
    with pytest.raises(ValueError, match="components"):
        fit.sample(3, components=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="components"):
        fit.sample(2, components=torch.tensor([0, 4]))
