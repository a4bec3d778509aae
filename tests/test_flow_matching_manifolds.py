"""Riemannian flow matching on every manifold of the core: base distributions, conditional
paths (including cut-locus pairs) and classifier-free guidance.

Oracles: ``torch.func.jvp`` of the geodesic path, ``torch.func.jacrev`` log-determinant of
``expm`` with the metric's Gram matrix (SPD volume change), importance sampling from a
Wishart proposal (scipy; normalisation of the SPD base density), sample moments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from manifolds import SE3, SO3, SPD, Hyperboloid, PoincareBall, Product, Sphere, Torus
from manifolds.flow_matching import ClassifierFreeGuidance, GeodesicProbPath, drop_condition
from manifolds.flow_matching.likelihood import gram_log_det

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------- SPD base
def _orthonormal_basis_I(n, alpha=1.0, beta=0.0):
    """Symmetric matrices orthonormal for ``g_I(u, v) = α tr(uv) + β tr u tr v``."""
    B = []
    for i in range(n):
        for j in range(i, n):
            E = torch.zeros(n, n, dtype=F64)
            if i == j:
                E[i, i] = 1.0
            else:
                E[i, j] = E[j, i] = 2 ** -0.5
            B.append(E)
    B = torch.stack(B)  # Frobenius-orthonormal
    G = alpha * torch.einsum("aij,bji->ab", B, B) + beta * torch.einsum("aii->a", B)[:, None] * torch.einsum("bii->b", B)[None]
    L = torch.linalg.cholesky(G)
    return torch.einsum("ab,bij->aij", torch.linalg.inv(L), B)  # rows orthonormal in g_I


@pytest.mark.parametrize(
    "metric",
    ["aim", "lem", "aim_theta", "aim_alpha_beta"],
)
def test_spd_base_log_prob_matches_jacrev_change_of_variables(metric):
    """``log p(expm u) = log N_σ(coords of u) − log J(u)`` with ``J`` from ``jacrev`` of ``expm`` in
    orthonormal coordinates and the Riemannian volume ``√det g_x`` (independent of Helgason's formula)."""
    from manifolds import AffineInvariantMetric

    if metric == "aim_theta":
        met = AffineInvariantMetric(theta=0.5)
    elif metric == "aim_alpha_beta":
        met = AffineInvariantMetric(alpha=2.0, beta=0.3)
    else:
        met = metric
    M = SPD(3, met)
    M.base_std = 0.7
    m = M.metric
    B = _orthonormal_basis_I(3, m.alpha, m.beta)
    for seed in range(2):
        c = torch.randn(6, dtype=F64, generator=_gen(seed))

        def f(c):
            return torch.linalg.matrix_exp(torch.einsum("a,aij->ij", c, B))

        x = f(c)
        J = torch.func.jacrev(f)(c).permute(2, 0, 1)  # (6, 3, 3)
        G = M.inner(x.expand(6, 6, 3, 3), J[:, None].expand(6, 6, 3, 3), J[None].expand(6, 6, 3, 3))
        log_vol = 0.5 * torch.logdet(G)
        s = M.base_std
        log_n = -3 * math.log(2 * math.pi * s * s) - (c * c).sum() / (2 * s * s)
        assert torch.allclose(M.base_log_prob(x), log_n - log_vol, atol=1e-9)
        if metric == "lem":
            assert abs(float(log_vol)) < 1e-9  # isometry onto the flat log-domain
        else:
            assert float(log_vol) > 1e-3  # the AIM volume change is not trivial


@pytest.mark.parametrize("metric", ["aim", "lem"])
def test_spd_base_density_integrates_to_one(metric):
    """∫ p dvol = E_q[p √det G / q] = 1 with a Wishart proposal ``q`` (scipy, Lebesgue density in the
    coordinates ``x_ij, i ≤ j``), within 4 Monte Carlo standard errors."""
    from scipy.stats import wishart

    M = SPD(2, metric)
    M.base_std = 0.5
    W = wishart(df=6, scale=np.eye(2) / 6)
    xs = W.rvs(size=10000, random_state=0)
    lq = torch.tensor(W.logpdf(xs.transpose(1, 2, 0)))
    x = torch.tensor(xs)
    w = torch.exp(M.base_log_prob(x) + 0.5 * gram_log_det(M, x) - lq)
    mean, se = float(w.mean()), float(w.std()) / math.sqrt(len(w))
    assert abs(mean - 1) < 4 * se + 1e-3, (mean, se)


@pytest.mark.parametrize("metric", ["aim", "lem"])
def test_spd_base_samples_moments(metric):
    """``u = logm x`` is centred with ``E g_I(u, u) = σ² d`` and ``E (tr u)² = σ² n / (α + nβ)``."""
    from manifolds import AffineInvariantMetric, LogEuclideanMetric

    cls = AffineInvariantMetric if metric == "aim" else LogEuclideanMetric
    M = SPD(3, cls(alpha=1.5, beta=0.2))
    M.base_std = 0.6
    x = M.random_base(20000, 3, 3, dtype=F64, generator=_gen(0))
    assert M.check_point(x)[0]
    u = _logm(x)
    s2 = 0.36
    assert u.mean(0).abs().max() < 0.02
    g = 1.5 * (u * u).sum((-2, -1)) + 0.2 * torch.einsum("bii->b", u) ** 2
    assert abs(float(g.mean()) / (s2 * 6) - 1) < 0.03
    tr2 = torch.einsum("bii->b", u) ** 2
    assert abs(float(tr2.mean()) / (s2 * 3 / (1.5 + 3 * 0.2)) - 1) < 0.05
    lp = M.base_log_prob(x)
    assert lp.shape == (20000,) and torch.isfinite(lp).all()


def _logm(x):
    lam, U = torch.linalg.eigh(x)
    return (U * torch.log(lam)[..., None, :]) @ U.mT


def test_spd_base_rejects_other_metrics():
    M = SPD(3, "lcm")
    with pytest.raises(NotImplementedError):
        M.random_base(2, 3, 3)
    with pytest.raises(NotImplementedError):
        M.base_log_prob(torch.eye(3))
    with pytest.raises(ValueError):
        SPD(3).random_base(2, 3, 4)


def test_hyperboloid_and_poincare_base_agree_through_isometry():
    H, P = Hyperboloid(3), PoincareBall(3)
    x = H.random_base(50, 4, dtype=F64, generator=_gen(1))
    assert torch.allclose(H.base_log_prob(x), P.base_log_prob(H.to_poincare(x)), atol=1e-10)


# ---------------------------------------------------------------------------- paths
CASES = {
    "sphere": lambda: Sphere(2),
    "torus": lambda: Torus(3),
    "so3": lambda: SO3(),
    "se3": lambda: SE3(),
    "hyperboloid": lambda: Hyperboloid(2),
    "poincare": lambda: PoincareBall(2),
    "spd_aim": lambda: SPD(3, "aim"),
    "spd_lem": lambda: SPD(3, "lem"),
    "product": lambda: Product(Sphere(2), SO3(), Torus(1), PoincareBall(2)),
}


def _pairs(M, n, seed):
    g = _gen(seed)
    if isinstance(M, SPD):
        return M.random_base(n, 3, 3, dtype=F64, generator=g), M.random(n, 3, 3, dtype=F64, generator=g)
    return M.random_base(n, *M.event_shape, dtype=F64, generator=g), M.random_base(n, *M.event_shape, dtype=F64, generator=g)


def _jvp_velocity(path, x0, x1, t):
    return torch.func.jvp(lambda s: path.sample(x0, x1, s).x_t, (t,), (torch.ones_like(t),))


@pytest.mark.parametrize("name", sorted(CASES))
def test_closed_form_velocity_matches_jvp_from_base(name):
    """Pairs (base sample, base / random sample), the flow-matching training distribution: the
    closed-form velocity equals ``jvp`` of the path, the path ends at ``x_0`` / ``x_1`` and moves
    at speed ``dist(x_0, x_1)``."""
    M = CASES[name]()
    path = GeodesicProbPath(M)
    x0, x1 = _pairs(M, 8, 0)
    t = torch.rand(8, dtype=F64, generator=_gen(1))
    s = path.sample(x0, x1, t)
    xt, dxt = _jvp_velocity(path, x0, x1, t)
    assert torch.allclose(s.x_t, xt, atol=1e-10)
    assert torch.allclose(s.dx_t, dxt, atol=1e-7)
    assert torch.allclose(M.norm(s.x_t, s.dx_t), M.dist(x0, x1), atol=1e-7)
    assert torch.allclose(M.dist(path.sample(x0, x1, torch.zeros(8, dtype=F64)).x_t, x0), torch.zeros(8, dtype=F64), atol=1e-6)
    assert torch.allclose(path.sample(x0, x1, torch.ones(8, dtype=F64)).x_t, x1, atol=1e-10)


def _rot_pi(axis):
    a = axis / axis.norm(dim=-1, keepdim=True)
    K = torch.zeros(a.shape[:-1] + (3, 3), dtype=F64)
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -a[..., 2], a[..., 1], -a[..., 0]
    K = K - K.mT
    return torch.linalg.matrix_exp(math.pi * K)


def _cut_pairs(name):
    g = _gen(3)
    if name == "sphere":
        x1 = Sphere(2).random(6, 3, dtype=F64, generator=g)
        return Sphere(2), -x1, x1, math.pi
    if name == "so3":
        x1 = SO3().random(6, 3, 3, dtype=F64, generator=g)
        return SO3(), x1 @ _rot_pi(torch.randn(6, 3, dtype=F64, generator=g)), x1, math.pi
    x1 = Torus(2).random(6, 2, dtype=F64, generator=g)
    return Torus(2), Torus(2).projx(x1 + math.pi), x1, math.pi * math.sqrt(2)


@pytest.mark.parametrize("name", ["sphere", "so3", "torus"])
def test_cut_locus_pairs(name):
    """x_0 in the cut locus of x_1 (antipodal points, rotations by π, torus angles at ±π): the path
    follows the minimising geodesic that ``logmap`` picks, reaches both ends, moves at full speed
    ``dist = π`` (π√2 on T²) and its velocity is still ``jvp`` of the path (not zero as in
    flow_matching's jvp-of-``geodesic`` with geoopt's ``logmap``)."""
    M, x0, x1, d = _cut_pairs(name)
    path = GeodesicProbPath(M)
    t = torch.tensor([0.0, 0.1, 0.4, 0.5, 0.9, 1.0], dtype=F64)
    s = path.sample(x0, x1, t)
    xt, dxt = _jvp_velocity(path, x0, x1, t)
    assert torch.allclose(s.dx_t, dxt, atol=1e-7)
    assert torch.allclose(M.norm(s.x_t, s.dx_t), torch.full((6,), d, dtype=F64), atol=1e-6)
    assert torch.allclose(M.dist(s.x_t[0], x0[0]), torch.zeros((), dtype=F64), atol=1e-6)
    assert torch.allclose(M.dist(s.x_t[-1], x1[-1]), torch.zeros((), dtype=F64), atol=1e-6)
    assert M.check_point(s.x_t, atol=1e-8)[0]


# ---------------------------------------------------------------------------- guidance
class _CondNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.lin = torch.nn.Linear(3 + 1 + 2, 3).to(F64)

    def forward(self, x, t, cond):
        return self.lin(torch.cat([x, t[:, None], cond], -1))


def test_classifier_free_guidance_interpolates_and_is_tangent():
    S = Sphere(2)
    net = _CondNet()
    x = S.random(10, 3, dtype=F64, generator=_gen(4))
    t = torch.rand(10, dtype=F64, generator=_gen(5))
    c = torch.randn(10, 2, dtype=F64, generator=_gen(6))
    null = torch.tensor([7.0, -7.0], dtype=F64)
    cfg = ClassifierFreeGuidance(net, S, scale=2.5, null=null)
    v_u = S.proju(x, net(x, t, cond=null.expand(10, 2)))
    v_c = S.proju(x, net(x, t, cond=c))
    assert torch.allclose(cfg(x, t, cond=c, guidance_scale=0.0), v_u, atol=1e-12)
    assert torch.allclose(cfg(x, t, cond=c, guidance_scale=1.0), v_c, atol=1e-12)
    v = cfg(x, t, cond=c)
    assert torch.allclose(v, v_u + 2.5 * (v_c - v_u), atol=1e-12)
    assert (v * x).sum(-1).abs().max() < 1e-12  # tangent
    assert (v - v_c).abs().max() > 1e-3
    with pytest.raises(ValueError):
        cfg(x, t)


def test_drop_condition():
    c = torch.randn(4000, 2, dtype=F64, generator=_gen(7))
    null = torch.tensor([5.0, 5.0], dtype=F64)
    d, keep = drop_condition(c, 0.3, null=null, generator=_gen(8))
    assert abs(float((~keep).double().mean()) - 0.3) < 0.03
    assert torch.equal(d[keep], c[keep]) and torch.equal(d[~keep], null.expand(int((~keep).sum()), 2))
    d0, keep0 = drop_condition(c, 0.0)
    assert keep0.all() and torch.equal(d0, c)
    assert (drop_condition(c, 1.0)[0] == 0).all()
    with pytest.raises(ValueError):
        drop_condition(c, 1.5)
