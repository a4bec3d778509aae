"""Tests of manifolds.stats: frechet_mean and frechet_variance."""

import math

import pytest
import torch

from manifolds import (
    SE3,
    SO3,
    SPD,
    Euclidean,
    Hyperboloid,
    PoincareBall,
    Product,
    Sphere,
    frechet_mean,
    frechet_variance,
)
from manifolds.stats import FrechetMeanInfo, _grad

F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _cluster(M, *batch, n=6, seed=0, std=0.3, dtype=F64):
    """``(*batch, n, *E)`` samples wrapped-normal around a random centre (a concentrated cluster)."""
    g = _gen(seed)
    if isinstance(M, SPD):
        c = M.random(*batch, 1, M.n, M.n, dtype=dtype, generator=g)
    elif isinstance(M, (PoincareBall, Hyperboloid)):
        # near the origin: far out, ambient tangent noise (and the data spread) grows
        o = torch.zeros(tuple(batch) + (1,) + tuple(M.event_shape), dtype=dtype)
        if isinstance(M, Hyperboloid):
            o[..., 0] = 1.0
        c = M.wrapped_normal(o, 0.5, generator=g)
    else:
        c = M.random(*batch, 1, *M.event_shape, dtype=dtype, generator=g)
    c = c.expand(tuple(batch) + (n,) + tuple(M.event_shape))
    return M.wrapped_normal(c, std, generator=g)


KARCHER_MANIFOLDS = {
    "sphere": lambda: Sphere(2),
    "so3": lambda: SO3(),
    "se3": lambda: SE3(),
    "poincare": lambda: PoincareBall(2),
    "hyperboloid": lambda: Hyperboloid(2),
    "spd_aim": lambda: SPD(3, "aim"),
    "spd_bwm": lambda: SPD(3, "bwm"),
}


def _points(M, *batch, n=6, seed=0, std=0.3, dtype=F64):
    if isinstance(M, SPD):
        return M.random(*batch, n, M.n, M.n, dtype=dtype, generator=_gen(seed), std=std)
    return _cluster(M, *batch, n=n, seed=seed, std=std, dtype=dtype)


# ---------------------------------------------------------------------------- closed forms
def test_euclidean_equals_weighted_average():
    x = torch.randn(4, 7, 3, dtype=F64, generator=_gen(1))
    w = torch.rand(4, 7, dtype=F64, generator=_gen(2))
    m = frechet_mean(Euclidean(3), x, w)
    ref = (w[..., None] * x).sum(-2) / w.sum(-1, keepdim=True)
    torch.testing.assert_close(m, ref)
    torch.testing.assert_close(frechet_mean(Euclidean(3), x), x.mean(-2))
    # shape-agnostic Euclidean (event shape ())
    torch.testing.assert_close(frechet_mean(Euclidean(), x[..., 0]), x[..., 0].mean(-1))


@pytest.mark.parametrize(
    "make",
    [
        lambda: Euclidean(3),
        lambda: SPD(3, "lem"),
        lambda: SPD(3, "lcm"),
        lambda: SPD(3, "em"),
        lambda: Product(Euclidean(2), SPD(2, "lem")),
    ],
    ids=["euclidean", "lem", "lcm", "em", "product"],
)
def test_closed_form_agrees_with_karcher(make):
    M = make()
    if isinstance(M, SPD):
        x = M.random(2, 5, M.n, M.n, dtype=F64, generator=_gen(3), std=0.4)
    elif isinstance(M, Product):
        e = torch.randn(2, 5, 2, dtype=F64, generator=_gen(3))
        s = SPD(2).random(2, 5, 2, 2, dtype=F64, generator=_gen(4), std=0.4)
        x = M.join([e, s])
    else:
        x = torch.randn(2, 5, 3, dtype=F64, generator=_gen(3))
    w = torch.rand(2, 5, dtype=F64, generator=_gen(5)) + 0.1
    m, info = frechet_mean(M, x, w, return_info=True)
    assert info.method in ("closed_form", "product") and info.iterations == 0 and info.converged
    mk, infok = frechet_mean(M, x, w, method="karcher", max_iter=500, return_info=True)
    assert infok.method == "karcher" and infok.converged
    torch.testing.assert_close(m, mk, atol=1e-9, rtol=1e-9)
    assert float(info.grad_norm.max()) < 1e-10


def test_closed_form_method_raises_without_one():
    with pytest.raises(ValueError, match="closed-form"):
        frechet_mean(Sphere(2), Sphere(2).random(4, 3, dtype=F64), method="closed_form")
    with pytest.raises(ValueError, match="method"):
        frechet_mean(Sphere(2), Sphere(2).random(4, 3, dtype=F64), method="newton")


def test_product_mixed_factor_by_factor():
    M = Product(Sphere(2), Euclidean(2))
    s = _cluster(Sphere(2), n=5, seed=4)
    e = torch.randn(5, 2, dtype=F64, generator=_gen(4))
    m, info = frechet_mean(M, M.join([s, e]), return_info=True)
    ms, me = M.split(m)
    torch.testing.assert_close(me, e.mean(0))
    torch.testing.assert_close(ms, frechet_mean(Sphere(2), s))
    assert info.method == "product" and info.iterations > 0
    mk = frechet_mean(M, M.join([s, e]), method="karcher")
    torch.testing.assert_close(mk, m, atol=1e-10, rtol=0)


# ---------------------------------------------------------------------------- Karcher flow
def test_sphere_symmetric_about_pole():
    k = 6
    theta = 0.7
    phi = torch.arange(k, dtype=F64) * 2 * math.pi / k
    x = torch.stack([math.sin(theta) * torch.cos(phi), math.sin(theta) * torch.sin(phi), torch.full_like(phi, math.cos(theta))], -1)
    m = frechet_mean(Sphere(2), x)
    torch.testing.assert_close(m, torch.tensor([0.0, 0.0, 1.0], dtype=F64), atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", list(KARCHER_MANIFOLDS))
def test_gradient_vanishes_at_mean(name):
    M = KARCHER_MANIFOLDS[name]()
    x = _points(M, 3, n=6, seed=11)
    w = torch.rand(3, 6, dtype=F64, generator=_gen(12)) + 0.05
    m, info = frechet_mean(M, x, w, return_info=True)
    assert isinstance(info, FrechetMeanInfo)
    assert info.method == "karcher" and info.converged and info.iterations >= 1
    assert m.shape == (3,) + tuple(M.event_shape)
    ok, reason = M.check_point(m, atol=1e-8)
    assert ok, reason
    g = _grad(M, m, x, w / w.sum(-1, keepdim=True))
    assert float(M.norm(m, g).max()) < 1e-10
    assert float(info.grad_norm.max()) < 1e-10


def test_aim_two_points_is_geodesic_midpoint():
    M = SPD(3, "aim")
    a, b = M.random(2, 3, 3, dtype=F64, generator=_gen(21))
    m = frechet_mean(M, torch.stack([a, b]))
    torch.testing.assert_close(m, M.geodesic(a, b, 0.5), atol=1e-10, rtol=1e-10)
    # unequal weights: the point at t = w_b on the geodesic
    m = frechet_mean(M, torch.stack([a, b]), torch.tensor([3.0, 1.0], dtype=F64))
    torch.testing.assert_close(m, M.geodesic(a, b, 0.25), atol=1e-10, rtol=1e-10)


def test_max_iter_and_init():
    S = Sphere(2)
    x = _cluster(S, n=5, seed=2)
    m0, info = frechet_mean(S, x, max_iter=0, return_info=True)
    torch.testing.assert_close(m0, x[0])
    assert info.iterations == 0 and not info.converged
    m1 = frechet_mean(S, x, init=x[3])
    torch.testing.assert_close(m1, frechet_mean(S, x), atol=1e-10, rtol=0)
    with pytest.raises(ValueError):
        frechet_mean(S, x, init=torch.zeros(4, dtype=F64))


def test_float32_close_to_float64():
    S = Sphere(2)
    x = _cluster(S, 2, n=8, seed=5)
    m64 = frechet_mean(S, x)
    m32, info = frechet_mean(S, x.float(), return_info=True)
    assert m32.dtype == torch.float32 and info.converged
    torch.testing.assert_close(m32.double(), m64, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------- weights and batching
@pytest.mark.parametrize("name", ["sphere", "spd_aim", "lcm"])
def test_zero_weight_ignores_sample(name):
    M = SPD(3, "lcm") if name == "lcm" else KARCHER_MANIFOLDS[name]()
    x = _points(M, n=5, seed=7)
    w = torch.tensor([1.0, 2.0, 0.0, 1.0, 0.5], dtype=F64)
    keep = torch.tensor([0, 1, 3, 4])
    torch.testing.assert_close(frechet_mean(M, x, w), frechet_mean(M, x[keep], w[keep]), atol=1e-10, rtol=0)


def test_zero_weight_antipodal_sample_is_ignored():
    S = Sphere(2)
    x = _cluster(S, n=4, seed=8)
    x = torch.cat([x, -x[:1]])  # antipodal to the first sample: logmap undefined there
    w = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0], dtype=F64)
    m = frechet_mean(S, x, w)
    assert torch.isfinite(m).all()
    torch.testing.assert_close(m, frechet_mean(S, x[:4]), atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", ["sphere", "so3", "spd_aim", "lem"])
def test_batched_equals_loop(name):
    M = SPD(3, "lem") if name == "lem" else KARCHER_MANIFOLDS[name]()
    x = _points(M, 2, 3, n=5, seed=9)
    w = torch.rand(2, 3, 5, dtype=F64, generator=_gen(10)) + 0.1
    m = frechet_mean(M, x, w)
    assert m.shape == (2, 3) + tuple(M.event_shape)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(m[i, j], frechet_mean(M, x[i, j], w[i, j]), atol=1e-10, rtol=0)


def test_weights_broadcast_over_batch():
    S = Sphere(2)
    x = _cluster(S, 3, n=4, seed=13)
    w = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64)
    torch.testing.assert_close(frechet_mean(S, x, w), frechet_mean(S, x, w.expand(3, 4)))


@pytest.mark.parametrize(
    "weights, match",
    [
        (torch.tensor([1.0, -1.0, 1.0, 1.0]), "non-negative"),
        (torch.zeros(4), "all zero"),
        (torch.tensor([1.0, float("nan"), 1.0, 1.0]), "NaN"),
        (torch.ones(3), "shape"),
        (torch.ones(5, 4), "broadcast"),
    ],
)
def test_bad_weights_raise(weights, match):
    S = Sphere(2)
    x = _cluster(S, 2, n=4, seed=0)
    with pytest.raises(ValueError, match=match):
        frechet_mean(S, x, weights.to(F64))
    with pytest.raises(ValueError, match=match):
        frechet_variance(S, x, weights=weights.to(F64))


def test_bad_shapes_raise():
    S = Sphere(2)
    with pytest.raises(ValueError, match="shape"):
        frechet_mean(S, torch.randn(4, 2, dtype=F64))
    with pytest.raises(ValueError, match="shape"):
        frechet_mean(S, torch.randn(3, dtype=F64))  # no sample axis
    with pytest.raises(ValueError, match="no samples"):
        frechet_mean(S, torch.randn(0, 3, dtype=F64))
    with pytest.raises(ValueError, match="step"):
        frechet_mean(S, S.random(4, 3, dtype=F64), step=0.0)


# ---------------------------------------------------------------------------- gradients
def test_gradcheck_sphere():
    S = Sphere(2)
    x = _cluster(S, n=4, seed=14, std=0.3).detach().requires_grad_(True)
    w = torch.tensor([1.0, 2.0, 1.5, 0.5], dtype=F64)
    assert torch.autograd.gradcheck(lambda x: frechet_mean(S, x, w), (x,), atol=1e-6, rtol=1e-5)


def test_gradcheck_closed_form_lem():
    M = SPD(2, "lem")
    x = M.random(3, 2, 2, dtype=F64, generator=_gen(15), std=0.4).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: frechet_mean(M, x), (x,), atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------------------- variance
@pytest.mark.parametrize("name", ["sphere", "spd_aim", "lem", "poincare"])
def test_variance_is_weighted_mean_squared_distance(name):
    M = SPD(3, "lem") if name == "lem" else KARCHER_MANIFOLDS[name]()
    x = _points(M, 2, n=5, seed=16)
    w = torch.rand(2, 5, dtype=F64, generator=_gen(17)) + 0.1
    m = frechet_mean(M, x, w)
    v = frechet_variance(M, x, weights=w)
    assert v.shape == (2,)
    wn = w / w.sum(-1, keepdim=True)
    ref = (wn * M.dist(m.unsqueeze(1), x) ** 2).sum(-1)
    torch.testing.assert_close(v, ref, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(frechet_variance(M, x, m, w), ref, atol=1e-10, rtol=1e-10)
    # uniform weights
    mu = frechet_mean(M, x)
    torch.testing.assert_close(frechet_variance(M, x), (M.dist(mu.unsqueeze(1), x) ** 2).mean(-1), atol=1e-10, rtol=1e-10)
    # the mean minimises the variance: any other point gives more
    other = x[:, 0]
    assert bool((frechet_variance(M, x, other, w) >= v - 1e-12).all())


def test_variance_zero_for_identical_points():
    S = Sphere(2)
    p = S.random(3, dtype=F64, generator=_gen(18))
    x = p.expand(4, 3)
    assert float(frechet_variance(S, x).abs().max()) < 1e-20
    torch.testing.assert_close(frechet_mean(S, x), p)
    M = SPD(2, "aim")
    q = M.random(2, 2, dtype=F64, generator=_gen(19))
    assert float(frechet_variance(M, q.expand(3, 2, 2)).abs().max()) < 1e-16


def test_variance_bad_mean_shape():
    S = Sphere(2)
    with pytest.raises(ValueError):
        frechet_variance(S, S.random(4, 3, dtype=F64), mean=torch.zeros(4, dtype=F64))


# ---------------------------------------------------------------------------- geomstats oracle
def _geomstats_space(name):
    """geomstats (numpy backend) space matching one of ours."""
    if name == "sphere":
        from geomstats.geometry.hypersphere import Hypersphere

        return Hypersphere(2)
    if name in ("spd_aim", "spd_lem"):
        from geomstats.geometry.spd_matrices import SPDLogEuclideanMetric, SPDMatrices

        space = SPDMatrices(3)
        if name == "spd_lem":
            space.equip_with_metric(SPDLogEuclideanMetric)
        return space
    if name == "so3":
        from geomstats.geometry.special_orthogonal import SpecialOrthogonal

        return SpecialOrthogonal(3)
    if name == "poincare":
        from geomstats.geometry.poincare_ball import PoincareBall as GsPoincareBall

        return GsPoincareBall(2)
    raise KeyError(name)


GEOMSTATS_CASES = {
    "sphere": lambda: Sphere(2),
    "spd_aim": lambda: SPD(3, "aim"),
    "spd_lem": lambda: SPD(3, "lem"),
    "so3": lambda: SO3(),
    "poincare": lambda: PoincareBall(2),
}


@pytest.mark.parametrize("name", sorted(GEOMSTATS_CASES))
def test_weighted_mean_matches_geomstats(name):
    """Weighted means agree with geomstats' FrechetMean (numpy backend).

    geomstats' gradient descent stops when the squared norm of its update is below
    ``epsilon · dim`` (``learning/frechet_mean.py``, GradientDescent), so with epsilon = 1e-14 its
    estimate is accurate to ~1e-7; ours converges to a gradient norm of 1e-12. We compare to 1e-6
    and check that ours is the better stationary point.
    """
    pytest.importorskip("geomstats")
    from geomstats.learning.frechet_mean import FrechetMean

    M = GEOMSTATS_CASES[name]()
    x = _points(M, n=7, seed=40, std=0.4)
    w = torch.rand(7, dtype=F64, generator=_gen(41)) + 0.1
    fm = FrechetMean(_geomstats_space(name))
    fm.set(max_iter=1000, epsilon=1e-14)
    fm.fit(x.numpy(), weights=w.numpy())
    ref = torch.from_numpy(fm.estimate_)
    m = frechet_mean(M, x, w)
    torch.testing.assert_close(m, ref, atol=1e-6, rtol=0)
    wn = w / w.sum()
    ours = M.norm(m, _grad(M, m, x, wn))
    theirs = M.norm(ref, _grad(M, ref, x, wn))
    assert float(ours) <= max(float(theirs), 1e-10)


# ---------------------------------------------------------------------------- deformed SPD metrics
def _deformed_metrics():
    from manifolds import AffineInvariantMetric as AIM
    from manifolds import EuclideanMetric as EM
    from manifolds import LogCholeskyMetric as LCM
    from manifolds import LogEuclideanMetric as LEM

    return {
        "power_euclidean": EM(theta=0.5),
        "em_alpha_beta": EM(alpha=2.0, beta=0.3),
        "theta_lcm": LCM(theta=0.5),
        "theta_lcm_neg": LCM(theta=-1.5),
        "lem_alpha_beta": LEM(theta=0.7, alpha=0.5, beta=-0.1),
        "power_affine": AIM(theta=0.5, alpha=1.0, beta=0.2),
    }


@pytest.mark.parametrize("name", sorted(_deformed_metrics()))
def test_deformed_spd_means_are_stationary(name):
    """The closed form (or Karcher flow) of each deformed metric is a stationary point of its own
    Fréchet function, and the closed form agrees with the Karcher flow."""
    metric = _deformed_metrics()[name]
    M = SPD(3, metric)
    x = M.random(7, 3, 3, dtype=F64, generator=_gen(50), std=0.4)
    w = torch.rand(7, dtype=F64, generator=_gen(51)) + 0.1
    m, info = frechet_mean(M, x, w, return_info=True)
    assert info.method == ("karcher" if name == "power_affine" else "closed_form")
    assert float(info.grad_norm) < 1e-9, (name, info)
    mk = frechet_mean(M, x, w, method="karcher", max_iter=200)
    torch.testing.assert_close(m, mk, atol=1e-8, rtol=1e-8)


def test_power_euclidean_mean_formula():
    from manifolds import EuclideanMetric

    M = SPD(3, EuclideanMetric(theta=0.5))
    x = M.random(5, 3, 3, dtype=F64, generator=_gen(52))
    w = torch.full((5,), 0.2, dtype=F64)
    r = sum(_sqrtm(xi) for xi in x) / 5
    ref = r @ r  # (Σ w_i x_i^½)²
    torch.testing.assert_close(frechet_mean(M, x, w), ref, atol=1e-10, rtol=1e-10)


def _sqrtm(a):
    lam, u = torch.linalg.eigh(a)
    return (u * lam.sqrt()) @ u.mT
