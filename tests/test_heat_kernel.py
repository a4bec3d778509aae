"""Heat kernels, scores and samplers of manifolds.diffusion (convention: generator ½Δ, σ² = t)."""

import math

import pytest
import torch

from manifolds import SO3, SPD, Euclidean, Hyperboloid, PoincareBall, Sphere, Torus
from manifolds.diffusion import (
    circle_log_heat_kernel,
    geodesic_random_walk,
    has_heat_kernel,
    heat_kernel_log_prob,
    heat_kernel_score,
    sample_heat_kernel,
    so3_radial_log_heat_kernel,
    sphere_radial_log_heat_kernel,
    tangent_normal,
    varadhan_score,
)
from manifolds.diffusion.heat_kernel import SPHERE_T_SWITCH, _log_x_over_sin

D = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")
PI = math.pi


def _grid(n=4001, lo=0.0, hi=PI):
    return torch.linspace(lo, hi, n, dtype=D)


def _sphere_area(n):
    return 2 * PI ** ((n + 1) / 2) / math.gamma((n + 1) / 2)


# ---------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("t", [0.01, 0.1, 0.5, 3.0])
def test_sphere_density_integrates_to_one(n, t):
    th = _grid()
    lp, _ = sphere_radial_log_heat_kernel(th, t, n)
    # volume element of Sⁿ in the angle: |S^{n-1}| sin^{n-1}θ dθ
    mass = torch.trapezoid(lp.exp() * _sphere_area(n - 1) * torch.sin(th) ** (n - 1), th)
    tol = 0.05 * n * (n - 1) * t if t < SPHERE_T_SWITCH and n != 3 else 1e-6  # the WKB form below t_switch is O(t)
    assert abs(float(mass) - 1) < tol


@pytest.mark.parametrize("t", [0.005, 0.1, 1.0, 2.0, 5.0])
def test_so3_density_integrates_to_one(t):
    th = _grid()
    lp, _ = so3_radial_log_heat_kernel(th, t)
    mass = torch.trapezoid(lp.exp() * 16 * PI * torch.sin(th / 2) ** 2, th)  # vol(SO3) = 8π²
    assert abs(float(mass) - 1) < 1e-6


@pytest.mark.parametrize("t", [0.01, 0.5, 1.0, 4.0])
def test_circle_density_integrates_to_one(t):
    d = _grid(lo=-PI)
    lp, _ = circle_log_heat_kernel(d, t)
    assert abs(float(torch.trapezoid(lp.exp(), d)) - 1) < 1e-6


# ---------------------------------------------------------------------- regime overlap
@pytest.mark.parametrize("t", [0.3, 1.0, 2.0, 3.0])
def test_so3_character_series_equals_wrapped_sum(t):
    th = _grid(801)
    a, da = so3_radial_log_heat_kernel(th, t, method="series", n_terms=200)
    b, db = so3_radial_log_heat_kernel(th, t, method="wrapped", n_images=6)
    keep = th * th / (2 * t) < 25  # outside, p < e^-25 p(0) and the series loses digits to cancellation
    assert (a - b)[keep].abs().max() < 1e-8
    assert ((da - db)[keep].abs() / (1 + db[keep].abs())).max() < 1e-8


@pytest.mark.parametrize("t", [0.3, 1.0, 3.0])
def test_circle_fourier_equals_wrapped(t):
    d = _grid(801, -PI, PI)
    a, da = circle_log_heat_kernel(d, t, method="fourier", n_terms=80)
    b, db = circle_log_heat_kernel(d, t, method="wrapped", n_images=8)
    assert (a - b).abs().max() < 1e-8 and (da - db).abs().max() < 1e-8


@pytest.mark.parametrize("t", [0.05, 0.1, 0.2])
def test_s3_series_equals_closed_form(t):
    # on S³ the WKB form with the e^{t/2} shift is the exact kernel up to images of weight e^{-(2π-θ)²/2t}
    # (< e^{-36} relative here; at t = 0.5 they reach 1e-6)
    th = _grid(801, 0.0, 2.0)
    a, da = sphere_radial_log_heat_kernel(th, t, 3, method="series", n_terms=300)
    b, db = sphere_radial_log_heat_kernel(th, t, 3, method="varadhan")
    keep = th * th / (2 * t) < 15
    assert (a - b)[keep].abs().max() < 1e-8
    assert ((da - db)[keep].abs() / (1 + db[keep].abs())).max() < 1e-8


def test_s2_series_approaches_varadhan_wkb_as_t_to_0():
    errs = []
    for t in [1e-3, 1e-2, 1e-1]:
        th = _grid(801, 0.0, 2.5)
        a, da = sphere_radial_log_heat_kernel(th, t, 2, method="series", n_terms=500)
        b, db = sphere_radial_log_heat_kernel(th, t, 2, method="varadhan")
        keep = th * th / (2 * t) < 25
        err = float((a - b)[keep].abs().max())
        errs.append(err)
        assert err < 0.1 * t  # WKB is O(t) (measured 0.04 t .. 0.08 t)
        assert ((da - db)[keep].abs() / (1 + db[keep].abs())).max() < 0.01 * t
    assert errs[0] < errs[1] < errs[2]


def test_auto_switches_continuously_at_threshold():
    th = _grid(101, 0.0, 1.5)
    lo, _ = sphere_radial_log_heat_kernel(th, SPHERE_T_SWITCH * (1 - 1e-9), 2)
    hi, _ = sphere_radial_log_heat_kernel(th, SPHERE_T_SWITCH, 2)
    assert (lo - hi).abs().max() < 0.01  # the WKB error at t_switch (documented O(t))
    a, _ = so3_radial_log_heat_kernel(th, 2.0 * (1 - 1e-12))
    b, _ = so3_radial_log_heat_kernel(th, 2.0)
    assert (a - b).abs().max() < 1e-9


def test_sphere_large_t_is_uniform():
    th = _grid(101)
    lp, _ = sphere_radial_log_heat_kernel(th, 20.0, 2)
    assert (lp.exp() * 4 * PI - 1).abs().max() < 1e-7  # 3 e^{-20} = 6e-9
    lp, _ = so3_radial_log_heat_kernel(th, 25.0)
    assert (lp.exp() * 8 * PI**2 - 1).abs().max() < 1e-7


# ---------------------------------------------------------------------- manifold-level scores
def _pairs(M, g, n=16, spread=None):
    x0 = M.random(n, *M.event_shape, dtype=D, generator=g)
    if spread is None:
        x = M.random(n, *M.event_shape, dtype=D, generator=g)
    else:
        x = M.expmap(x0, spread * tangent_normal(M, x0, g))
    return x, x0


@pytest.mark.parametrize("M", [Sphere(2), Sphere(3), SO3(), Torus(3), Euclidean(2)], ids=str)
@pytest.mark.parametrize("t", [0.005, 0.05, 0.3, 2.5])
def test_score_is_riemannian_gradient_of_log_density(M, t):
    g = torch.Generator().manual_seed(0)
    x, x0 = _pairs(M, g, spread=2.0 * math.sqrt(t))
    x = x.clone().requires_grad_(True)
    lp = heat_kernel_log_prob(M, x, x0, t)
    (eg,) = torch.autograd.grad(lp.sum(), x)
    rg = M.egrad2rgrad(x.detach(), eg)
    s = heat_kernel_score(M, x.detach(), x0, t)
    scale = 1 + M.norm(x.detach(), rg)
    assert (M.norm(x.detach(), s - rg) / scale).max() < 1e-7


@pytest.mark.parametrize("M", [Sphere(2), SO3(), Torus(2)], ids=str)
def test_score_tends_to_varadhan(M):
    g = torch.Generator().manual_seed(1)
    x, x0 = _pairs(M, g, spread=0.5)
    for t, tol in [(1e-3, 2e-3), (1e-5, 2e-5)]:
        s = heat_kernel_score(M, x, x0, t)
        v = varadhan_score(M, x, x0, t)
        rel = M.norm(x, s - v) / M.norm(x, v)
        assert rel.max() < tol


def test_score_at_x0_is_zero_and_finite():
    for M in [Sphere(2), SO3(), Torus(2)]:
        x0 = M.random(4, *M.event_shape, dtype=D)
        for t in [1e-3, 0.5, 5.0]:
            s = heat_kernel_score(M, x0, x0, t)
            assert torch.isfinite(s).all() and s.abs().max() < 1e-9
            assert torch.isfinite(heat_kernel_log_prob(M, x0, x0, t)).all()


def test_log_prob_in_float32_is_finite_and_close():
    M = Sphere(2)
    g = torch.Generator().manual_seed(2)
    x, x0 = _pairs(M, g, spread=0.3)
    for t in [1e-3, 0.05, 0.5, 3.0]:
        a = heat_kernel_log_prob(M, x, x0, t)
        b = heat_kernel_log_prob(M, x.float(), x0.float(), t)
        assert torch.isfinite(b).all() and (a - b.double()).abs().max() < 1e-3
        s = heat_kernel_score(M, x.float(), x0.float(), t)
        assert torch.isfinite(s).all()


def test_errors():
    with pytest.raises(ValueError, match="n >= 2"):
        sphere_radial_log_heat_kernel(torch.zeros(2, dtype=D), 0.1, 1)
    with pytest.raises(ValueError, match="method"):
        sphere_radial_log_heat_kernel(torch.zeros(2, dtype=D), 0.1, 2, method="nope")
    with pytest.raises(ValueError, match="method"):
        so3_radial_log_heat_kernel(torch.zeros(2, dtype=D), 0.1, method="nope")
    with pytest.raises(ValueError, match="no closed-form"):
        heat_kernel_log_prob(SPD(2), torch.eye(2, dtype=D), torch.eye(2, dtype=D), 0.1)
    with pytest.raises(ValueError, match="exact"):
        sample_heat_kernel(SPD(2), torch.eye(2, dtype=D), 0.1, method="exact")
    with pytest.raises(ValueError, match="n_steps"):
        geodesic_random_walk(Sphere(2), torch.tensor([0.0, 0, 1]), 0.1, n_steps=0)
    with pytest.raises(ValueError, match="shape"):
        heat_kernel_score(Sphere(2), torch.tensor([[0.0, 0, 1]]), torch.tensor([[0.0, 0, 1]]), torch.ones(1, 2))
    assert has_heat_kernel(Sphere(2)) and has_heat_kernel(SO3()) and not has_heat_kernel(Sphere(1))


# ---------------------------------------------------------------------- samplers
@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("t", [0.1, 0.2, 0.3, 0.4, 0.49])
def test_rejection_bound_holds_in_series_regime(n, t):
    """r(θ) = p_t(θ) e^{θ²/2t} (sin θ/θ)^{n-1} <= r(0): the wrapped-normal proposal's bound."""
    th = _grid(4001, 0.0, PI * (1 - 1e-6))
    lp, _ = sphere_radial_log_heat_kernel(th, t, n)
    lr = lp + th * th / (2 * t) - (n - 1) * _log_x_over_sin(th)
    assert (lr - lr[0]).max() <= 1e-12


def _ks(samples, grid, density):
    cdf = torch.cumulative_trapezoid(density, grid)
    cdf = torch.cat([cdf.new_zeros(1), cdf]) / cdf[-1]
    s, _ = torch.sort(samples)
    F = torch.from_numpy(__import__("numpy").interp(s.numpy(), grid.numpy(), cdf.numpy()))
    n = s.numel()
    emp = torch.arange(1, n + 1, dtype=D) / n
    return float(torch.maximum((emp - F).abs(), (emp - 1 / n - F).abs()).max())


@pytest.mark.parametrize("t", [0.02, 0.25, 1.0])  # WKB + wrapped proposal, series + wrapped, uniform proposal
def test_sphere_exact_sampler_matches_radial_density(t):
    M = Sphere(2)
    g = torch.Generator().manual_seed(3)
    N = 5000
    x0 = torch.tensor([0.0, 0.0, 1.0], dtype=D).expand(N, 3)
    x = sample_heat_kernel(M, x0, t, generator=g)
    assert M.check_point(x)[0]
    th = _grid()
    lp, _ = sphere_radial_log_heat_kernel(th, t, 2)
    ks = _ks(M.dist(x, x0), th, lp.exp() * torch.sin(th))
    assert ks < 1.63 / math.sqrt(N)  # Kolmogorov–Smirnov at the 1 % level
    # closed form: cos θ is a degree-1 eigenfunction, E[cos θ] = e^{-t} (eigenvalue 2, generator ½Δ)
    assert abs(float(x[:, 2].mean()) - math.exp(-t)) < 4 / math.sqrt(N)
    # the direction is uniform: mean of the tangential part vanishes
    assert x[:, :2].mean(0).abs().max() < 4 / math.sqrt(N)


@pytest.mark.parametrize("t", [0.01, 0.5, 1.6, 3.0])
def test_so3_exact_sampler_matches_angle_density(t):
    M = SO3()
    g = torch.Generator().manual_seed(4)
    N = 5000
    x0 = M.random(1, 3, 3, dtype=D, generator=g).expand(N, 3, 3)
    x = sample_heat_kernel(M, x0, t, generator=g)
    assert M.check_point(x)[0]
    th = _grid()
    lp, _ = so3_radial_log_heat_kernel(th, t)
    ang = M.dist(x0, x)
    assert _ks(ang, th, lp.exp() * torch.sin(th / 2) ** 2) < 1.63 / math.sqrt(N)
    # E[χ_1(θ)] = E[1 + 2 cos θ] = 3 e^{-t} (character orthogonality)
    assert abs(float((1 + 2 * torch.cos(ang)).mean()) - 3 * math.exp(-t)) < 8 / math.sqrt(N)


def test_torus_and_euclidean_exact_samplers():
    g = torch.Generator().manual_seed(5)
    N = 10000
    T = Torus(2)
    x0 = torch.tensor([0.3, 6.0], dtype=D).expand(N, 2)
    t = torch.full((N,), 0.7, dtype=D)
    x = sample_heat_kernel(T, x0, t, generator=g)
    assert T.check_point(x)[0]
    assert (torch.cos(x - x0).mean(0) - math.exp(-0.35)).abs().max() < 4 / math.sqrt(N)
    E = Euclidean(3)
    y = sample_heat_kernel(E, torch.zeros(N, 3, dtype=D), 0.5, generator=g)
    assert (y.var(0) - 0.5).abs().max() < 0.05


def test_geodesic_random_walk_on_sphere_matches_heat_kernel_moment():
    g = torch.Generator().manual_seed(6)
    N, t = 10000, 0.5
    x0 = torch.tensor([0.0, 0.0, 1.0], dtype=D).expand(N, 3)
    x = geodesic_random_walk(Sphere(2), x0, t, n_steps=20, generator=g)
    # GRW bias: relative t²/(6 n_steps) = 0.002 in E[cos θ]; MC std 0.007
    assert abs(float(x[:, 2].mean()) - math.exp(-t)) < 0.02
    x = sample_heat_kernel(Sphere(2), x0, t, method="grw", n_steps=20, generator=g)
    assert abs(float(x[:, 2].mean()) - math.exp(-t)) < 0.02


def _spd_point(n, g):
    a = torch.randn(n, n, dtype=D, generator=g)
    return a @ a.mT + n * torch.eye(n, dtype=D)


@pytest.mark.parametrize(
    "M",
    [SO3(), SPD(2), SPD(2, metric="lem"), Hyperboloid(2), PoincareBall(2), Sphere(2), Torus(2)],
    ids=lambda m: repr(m),
)
def test_tangent_normal_is_isotropic_in_the_metric(M):
    g = torch.Generator().manual_seed(7)
    if isinstance(M, SPD):
        x = _spd_point(M.n, g)
    elif isinstance(M, PoincareBall):
        x = torch.tensor([0.3, -0.4], dtype=D)
    else:
        x = M.random(*M.event_shape, dtype=D, generator=g)
    N = 6000
    xb = x.expand((N,) + tuple(M.event_shape))
    v = tangent_normal(M, xb, g)
    assert M.check_vector(xb[:1], v[:1])[0]
    sq = M.inner(xb, v)
    assert abs(float(sq.mean()) - M.dim) < 0.08 * M.dim  # E|v|² = dim
    w = M.proju(x, torch.randn(x.shape, dtype=D, generator=g))
    proj = M.inner(xb, v, w.expand_as(v))
    # E<v, w>² = |w|² (unit covariance in every direction)
    assert abs(float((proj**2).mean()) / float(M.inner(x, w)) - 1) < 0.1  # MC std 0.018


@pytest.mark.parametrize("M", [SPD(2), Hyperboloid(2)], ids=repr)
def test_geodesic_random_walk_small_time_spread(M):
    g = torch.Generator().manual_seed(8)
    N, t = 2000, 0.01
    x0 = (_spd_point(2, g) if isinstance(M, SPD) else M.random(*M.event_shape, dtype=D, generator=g)).expand(
        (N,) + tuple(M.event_shape)
    )
    x = geodesic_random_walk(M, x0, t, n_steps=10, generator=g)
    assert M.check_point(x)[0]
    # E d²(x0, x_t) = dim · t (1 + O(t)) (Brownian motion; curvature enters at O(t²))
    msd = float(M.dist(x0, x).pow(2).mean())
    assert abs(msd / (M.dim * t) - 1) < 0.08
