"""Riemannian score-based diffusion: losses, samplers, likelihood, end-to-end (manifolds.diffusion)."""

import math

import pytest
import torch

from manifolds import SO3, SPD, Hyperboloid, PoincareBall, Sphere, Torus
from manifolds.diffusion import (
    BrownianSDE,
    dsm_loss,
    heat_kernel_log_prob,
    heat_kernel_score,
    ism_loss,
    probability_flow_log_likelihood,
    probability_flow_sample,
    reverse_sde_sample,
    sample_heat_kernel,
    ssm_loss,
    varadhan_score,
)
from manifolds.flow_matching import ProjectToTangent, RiemannianODESolver

D = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")
S0, T_END, T_MIN = 0.2, 2.0, 0.01  # data = heat kernel at time S0: p_t = heat kernel at S0 + t (exact score known)

CASES = {
    "sphere": (Sphere(2), torch.tensor([0.0, 0.0, 1.0], dtype=D)),
    "torus": (Torus(2), torch.tensor([1.0, 2.0], dtype=D)),
    "so3": (SO3(), torch.eye(3, dtype=D)),
}


def _exact_score(M, ref):
    def score(x, t):
        return heat_kernel_score(M, x, ref.expand_as(x), S0 + t)

    return score


def _moment(M, ref, x):
    """A statistic with a closed-form mean under the heat kernel at time s: returns (stat, mean(s))."""
    if isinstance(M, Sphere):
        return float(x[..., 2].mean()), lambda s: math.exp(-s)  # cos θ: eigenvalue 2 of -Δ
    if isinstance(M, Torus):
        return float(torch.cos(x - ref).mean()), lambda s: math.exp(-s / 2)
    ang = M.dist(ref.expand_as(x), x)
    return float(torch.cos(ang).mean()), lambda s: (3 * math.exp(-s) - 1) / 2  # χ_1 = 1 + 2 cos θ


def _batch(M, ref, n):
    return ref.expand((n,) + tuple(M.event_shape))


# ---------------------------------------------------------------------- samplers with the exact score
@pytest.mark.parametrize("name", list(CASES))
def test_reverse_sde_with_exact_score_recovers_data_moment(name):
    M, ref = CASES[name]
    g = torch.Generator().manual_seed(0)
    N = 1000
    x_T = sample_heat_kernel(M, _batch(M, ref, N), S0 + T_END, generator=g)
    x = reverse_sde_sample(M, _exact_score(M, ref), x_T, T=T_END, t_min=T_MIN, n_steps=30, generator=g)
    assert M.check_point(x)[0]
    stat, mean = _moment(M, ref, x)
    start, _ = _moment(M, ref, x_T)
    # MC std <= 0.018 (N = 1000); geodesic Euler–Maruyama bias O(h) (measured ~0.01 at 100 steps on SO(3))
    assert abs(stat - mean(S0 + T_MIN)) < 0.06
    assert abs(start - mean(S0 + T_MIN)) > 0.2  # the sampler had work to do


@pytest.mark.parametrize("name", list(CASES))
def test_probability_flow_with_exact_score_recovers_data_moment(name):
    M, ref = CASES[name]
    g = torch.Generator().manual_seed(1)
    N = 1000
    x_T = sample_heat_kernel(M, _batch(M, ref, N), S0 + T_END, generator=g)
    x = probability_flow_sample(M, _exact_score(M, ref), x_T, T=T_END, t_min=T_MIN, n_steps=10)
    stat, mean = _moment(M, ref, x)
    assert abs(stat - mean(S0 + T_MIN)) < 0.05  # MC std <= 0.018


LL_CASES = {
    # on S³ the WKB score (method="varadhan") is the exact heat-kernel score up to images of
    # relative weight < e^-13 here (tests/test_heat_kernel.py::test_s3_series_equals_closed_form);
    # it keeps the K = 4 forward-mode jvps of the divergence out of the Gegenbauer recurrence
    "sphere3": (Sphere(3), torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=D), {"method": "varadhan"}),
    "torus": (CASES["torus"][0], CASES["torus"][1], {}),
    "so3": (CASES["so3"][0], CASES["so3"][1], {}),
}


@pytest.mark.parametrize("name", list(LL_CASES))
def test_probability_flow_log_likelihood_equals_heat_kernel(name):
    """PF-ODE change of variables with the exact score and the exact prior reproduces log p_{t_min}."""
    M, ref, kw = LL_CASES[name]
    g = torch.Generator().manual_seed(2)
    x = sample_heat_kernel(M, _batch(M, ref, 4), S0 + T_MIN, generator=g)
    T = 0.5  # short horizon: every step costs K jvps through the heat-kernel score

    def score(y, t):
        return heat_kernel_score(M, y, ref.expand_as(y), S0 + t, **kw)

    def prior(y):
        return heat_kernel_log_prob(M, y, ref.expand_as(y), S0 + T)

    lp, x_T = probability_flow_log_likelihood(
        M, score, x, T=T, t_min=T_MIN, prior_log_prob=prior, method="midpoint", options={"step_size": 0.07}
    )
    true = heat_kernel_log_prob(M, x, ref.expand_as(x), S0 + T_MIN)
    assert (lp - true).abs().max() < 5e-3
    # without the divergence term the answer would be off by far more than the tolerance
    assert (prior(x_T) - true).abs().max() > 0.05
    assert M.check_point(x_T)[0]


def test_probability_flow_velocity_sign():
    """dx/dt = −½ ∇log p_t: forward in t the flow spreads the heat kernel (moment decays as e^{-t})."""
    M, ref = CASES["sphere"]
    g = torch.Generator().manual_seed(3)
    x0 = sample_heat_kernel(M, _batch(M, ref, 1000), S0, generator=g)
    score = _exact_score(M, ref)
    x1 = RiemannianODESolver(M, lambda x, t: -0.5 * score(x, t)).sample(x0, method="rk4", n_steps=5, t0=0.0, t1=1.0)
    # E cos θ goes from e^{-0.2} = 0.82 to e^{-1.2} = 0.30 (MC std 0.017); the wrong sign would contract
    assert abs(float(x1[:, 2].mean()) - math.exp(-(S0 + 1.0))) < 0.07


def test_sampler_errors():
    M, ref = CASES["sphere"]
    x = _batch(M, ref, 2)
    with pytest.raises(ValueError, match="t_min"):
        reverse_sde_sample(M, _exact_score(M, ref), x, T=0.1, t_min=0.2)
    with pytest.raises(ValueError, match="n_steps"):
        reverse_sde_sample(M, _exact_score(M, ref), x, T=1.0, n_steps=0)
    with pytest.raises(ValueError, match="t_min"):
        BrownianSDE(M, T=1.0, t_min=2.0)
    with pytest.raises(ValueError, match="stationary"):
        BrownianSDE(SPD(2)).prior_sample(3, 2, 2)


@pytest.mark.parametrize("scheme", ["uniform", "log_uniform"])
def test_sample_times_distribution_and_likelihood_weighting(scheme):
    from scipy import stats

    T, t_min = 5.0, 1e-3
    sde = BrownianSDE(Sphere(2), T=T, t_min=t_min, time_sampling=scheme)
    t = sde.sample_times(20_000, dtype=D, generator=torch.Generator().manual_seed(0))
    assert t.dtype == D and float(t.min()) >= t_min and float(t.max()) <= T
    ref = stats.uniform(t_min, T - t_min) if scheme == "uniform" else stats.loguniform(t_min, T)
    assert stats.kstest(t.numpy(), ref.cdf).pvalue > 1e-3
    # E[t · f(t)] for the σ²-weighted DSM loss: log-uniform times give ∫ f dt / log(T / t_min)
    # (the likelihood weighting, Song et al. 2021), uniform ones ∫ t f dt / (T − t_min)
    f = lambda s: torch.exp(-s)  # noqa: E731
    est = float((t * f(t)).mean())
    if scheme == "log_uniform":
        exact = (math.exp(-t_min) - math.exp(-T)) / math.log(T / t_min)
    else:
        exact = ((1 + t_min) * math.exp(-t_min) - (1 + T) * math.exp(-T)) / (T - t_min)
    assert abs(est - exact) < 0.03 * exact
    with pytest.raises(ValueError, match="time_sampling"):
        BrownianSDE(Sphere(2), time_sampling="beta")


# ---------------------------------------------------------------------- losses
def test_dsm_loss_is_zero_at_the_conditional_score_and_positive_elsewhere():
    for name, (M, ref) in CASES.items():
        sde = BrownianSDE(M, T=2.0, t_min=0.01)
        x0 = _batch(M, ref, 64)
        g = torch.Generator().manual_seed(4)
        # one data point: the conditional score is the marginal score
        exact = lambda x, t: heat_kernel_score(M, x, ref.expand_as(x), t)  # noqa: E731
        assert float(dsm_loss(M, exact, x0, sde, generator=g)) < 1e-18
        half = lambda x, t: 0.5 * heat_kernel_score(M, x, ref.expand_as(x), t)  # noqa: E731
        assert float(dsm_loss(M, half, x0, sde, generator=g)) > 0.1


def test_dsm_loss_varadhan_fallback_on_spd_and_hyperbolic_trains():
    torch.manual_seed(5)
    for M, x0 in [
        (SPD(2), torch.eye(2, dtype=D).expand(16, 2, 2)),
        (Hyperboloid(2), Hyperboloid(2).random(16, 3, dtype=D)),
    ]:
        sde = BrownianSDE(M, T=1.0, t_min=0.01, n_grw_steps=5)
        net = torch.nn.Linear(M.numel + 1, M.numel).double()

        def score(x, t):
            h = torch.cat([x.reshape(x.shape[0], -1), t[:, None]], -1)
            return M.proju(x, net(h).reshape(x.shape))

        loss = dsm_loss(M, score, x0, sde)
        loss.backward()
        assert torch.isfinite(loss) and net.weight.grad is not None and net.weight.grad.abs().sum() > 0
    # the fallback target is Varadhan's log_x(x0)/t
    sde = BrownianSDE(SPD(2))
    x = torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=D).expand(3, 2, 2)
    e = torch.eye(2, dtype=D).expand(3, 2, 2)
    assert torch.allclose(sde.marginal_score(x, e, 0.5), varadhan_score(SPD(2), x, e, 0.5))


@pytest.mark.parametrize("name", ["sphere", "so3"])
def test_ism_is_minimised_by_the_true_score(name):
    """ISM(c s*) = E[t |s*|²] (c²/2 − c) for data = δ_ref: minimal at c = 1, value −½ E[t |s*|²]."""
    M, ref = CASES[name]
    sde = BrownianSDE(M, T=1.0, t_min=0.05)
    x0 = _batch(M, ref, 512)
    t = torch.full((512,), 0.3, dtype=D)
    vals = {}
    for c in (0.5, 1.0, 1.5):
        g = torch.Generator().manual_seed(6)

        def score(x, tt, c=c):
            return c * heat_kernel_score(M, x, ref.expand_as(x), tt)

        vals[c] = float(ism_loss(M, score, x0, sde, t=t, generator=g))
    g = torch.Generator().manual_seed(6)
    x_t = sde.marginal_sample(x0, t, generator=g)
    e = float((0.3 * M.inner(x_t, heat_kernel_score(M, x_t, ref.expand_as(x_t), t))).mean())
    assert vals[1.0] < vals[0.5] and vals[1.0] < vals[1.5]
    # same samples: the identity holds up to the Monte Carlo error of ∫ div s p = -∫ <s, ∇log p> p
    assert abs(vals[1.0] - (-0.5 * e)) < 0.15 * e


@pytest.mark.parametrize(
    "M, x0",
    [
        (SPD(2), torch.eye(2, dtype=D)),
        (PoincareBall(2), torch.tensor([0.1, -0.2], dtype=D)),
        (Hyperboloid(2), torch.tensor([1.0, 0.0, 0.0], dtype=D)),
    ],
    ids=["spd", "poincare", "hyperboloid"],
)
def test_ssm_is_an_unbiased_estimate_of_ism(M, x0):
    torch.manual_seed(7)
    net = torch.nn.Sequential(torch.nn.Linear(M.numel + 1, 16), torch.nn.Tanh(), torch.nn.Linear(16, M.numel)).double()

    def score(x, t):
        h = torch.cat([x.reshape(x.shape[:-len(M.event_shape)] + (-1,)), t[..., None]], -1)
        return net(h).reshape(x.shape)

    sde = BrownianSDE(M, T=1.0, t_min=0.01, n_grw_steps=5)
    xb = x0.expand((8,) + tuple(M.event_shape))
    t = torch.full((8,), 0.2, dtype=D)
    exact = ism_loss(M, score, xb, sde, t=t, generator=torch.Generator().manual_seed(8))
    sliced = ssm_loss(M, score, xb, sde, t=t, n_probes=4000, generator=torch.Generator().manual_seed(8))
    e = float(exact.detach())
    assert abs(e - float(sliced.detach())) < 0.05 * (1 + abs(e))
    rad = ism_loss(M, score, xb, sde, t=t, divergence="hutchinson", n_probes=4000, generator=torch.Generator().manual_seed(8))
    assert abs(e - float(rad.detach())) < 0.05 * (1 + abs(e))
    exact.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_loss_errors():
    M, ref = CASES["sphere"]
    sde = BrownianSDE(M)
    f = _exact_score(M, ref)
    with pytest.raises(ValueError, match="trailing shape"):
        dsm_loss(M, f, torch.zeros(4, 2, dtype=D), sde)
    with pytest.raises(ValueError, match="sde is defined"):
        dsm_loss(M, f, _batch(M, ref, 2), BrownianSDE(Torus(3)))
    with pytest.raises(ValueError, match="divergence"):
        ism_loss(M, f, _batch(M, ref, 2), sde, divergence="nope")
    with pytest.raises(ValueError, match="target"):
        sde.marginal_score(_batch(M, ref, 2), _batch(M, ref, 2), 0.1, target="nope")


# ---------------------------------------------------------------------- end to end
class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.f = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.SiLU(), torch.nn.Linear(64, 64), torch.nn.SiLU(), torch.nn.Linear(64, 3))

    def forward(self, x, t):
        # output scaled by 1/√t: the score grows like log_x(x0)/t at small t
        return self.f(torch.cat([x, t[:, None].log()], -1)) / t[:, None].sqrt()


def test_end_to_end_dsm_training_on_s2_concentrates_samples():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    M = Sphere(2)
    pole = torch.tensor([0.0, 0.0, 1.0])
    sde = BrownianSDE(M, T=3.0, t_min=1e-2, time_sampling="log_uniform")
    score = ProjectToTangent(_Net(), M)
    opt = torch.optim.Adam(score.parameters(), lr=3e-3)
    for _ in range(200):
        data = M.wrapped_normal(pole.expand(128, 3), 0.2, generator=g)  # concentrated at the north pole
        loss = dsm_loss(M, score, data, sde, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x_T = sde.prior_sample(500, 3, generator=g)
        x = reverse_sde_sample(M, score, x_T, T=sde.T, t_min=sde.t_min, n_steps=50, generator=g)
    assert M.check_point(x)[0]
    mean_cos = float(x[:, 2].mean())  # uniform: 0; data: E cos ≈ 1 − 0.2² ≈ 0.96
    assert mean_cos > 0.7, mean_cos  # measured 0.963
