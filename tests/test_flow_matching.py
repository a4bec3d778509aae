"""Riemannian flow matching: conditional path, velocity, solver, and learning a known density."""

import math

import pytest
import torch

from kernels import mmd2
from manifolds import Euclidean, Product, Sphere
from manifolds.flow_matching import GeodesicProbPath, ProjectToTangent, RiemannianODESolver, riemannian_fm_loss

MANIFOLDS = {
    "euclidean3": (Euclidean(3), (3,)),
    "sphere2": (Sphere(2), (3,)),
    "sphere4": (Sphere(4), (5,)),
    "product": (Product(Sphere(2), Euclidean(2), Sphere(2)), (8,)),
    "power": (Product.power(Sphere(2), 4), (12,)),
}


@pytest.mark.parametrize("name", list(MANIFOLDS))
def test_velocity_matches_jvp(name):
    m, shape = MANIFOLDS[name]
    g = torch.Generator().manual_seed(0)
    x0 = m.random_base(64, *shape, dtype=torch.float64, generator=g)
    x1 = m.random(64, *shape, dtype=torch.float64, generator=g)
    t = torch.rand(64, dtype=torch.float64, generator=g)
    path = GeodesicProbPath(m)
    s = path.sample(x0, x1, t)
    _, jvp = torch.func.jvp(lambda tt: path.sample(x0, x1, tt).x_t, (t,), (torch.ones_like(t),))
    torch.testing.assert_close(s.dx_t, jvp, atol=1e-9, rtol=1e-9)
    # endpoints, on-manifold, tangency, constant speed dist(x0, x1)
    torch.testing.assert_close(path.sample(x0, x1, torch.zeros_like(t)).x_t, x0, atol=1e-10, rtol=0)
    torch.testing.assert_close(path.sample(x0, x1, torch.ones_like(t)).x_t, x1, atol=1e-12, rtol=0)
    assert m.check_point(s.x_t)[0]
    assert m.check_vector(s.x_t, s.dx_t, atol=1e-9)[0]
    torch.testing.assert_close(m.norm(s.x_t, s.dx_t), m.dist(x0, x1), atol=1e-9, rtol=1e-9)


def test_antipodal_pair_has_full_speed():
    """x0 = -x1 on S²: the path still reaches x1 with speed π (flow_matching returns 0 there)."""
    S = Sphere(2)
    x1 = S.random(10, 3, dtype=torch.float64)
    path = GeodesicProbPath(S)
    t = torch.full((10,), 0.3, dtype=torch.float64)
    s = path.sample(-x1, x1, t)
    assert torch.isfinite(s.dx_t).all()
    torch.testing.assert_close(S.norm(s.x_t, s.dx_t), torch.full((10,), math.pi, dtype=torch.float64))
    torch.testing.assert_close(S.dist(s.x_t, x1), torch.full((10,), 0.7 * math.pi, dtype=torch.float64))


def test_path_rejects_bad_t():
    S = Sphere(2)
    with pytest.raises(ValueError, match="batch shape"):
        GeodesicProbPath(S).sample(S.random(4, 3), S.random(4, 3), torch.rand(5))


def test_loss_is_riemannian_norm():
    S = Sphere(2)
    x = S.random(8, 3, dtype=torch.float64)
    v = S.proju(x, torch.randn(8, 3, dtype=torch.float64))
    assert float(riemannian_fm_loss(S, x, v, v)) == 0.0
    torch.testing.assert_close(riemannian_fm_loss(S, x, v, torch.zeros_like(v)), (v * v).sum(-1).mean())


def _rotation_field(omega):
    return lambda x, t: torch.cross(omega.expand_as(x), x, dim=-1)


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("rk4", 2)])
def test_solver_convergence_order_on_rotation(method, order):
    """dx/dt = ω × x is a rotation: exact solution known. Error must fall at least like h^order."""
    S = Sphere(2)
    omega = torch.tensor([0.3, -1.1, 0.7], dtype=torch.float64)
    x0 = S.random(16, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    w = omega.norm()
    k = omega / w
    K = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=torch.float64)
    R = torch.linalg.matrix_exp(K * w)
    exact = x0 @ R.T
    solver = RiemannianODESolver(S, _rotation_field(omega))
    errs = [S.dist(solver.sample(x0, method=method, n_steps=n), exact).max() for n in (8, 16)]
    assert errs[1] < errs[0] / (2**order) * 1.3
    out = solver.sample(x0, method=method, n_steps=16)
    assert S.check_point(out, atol=1e-12)[0]


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
def test_geodesic_field_is_integrated_exactly(method):
    """The velocity field of a geodesic is integrated exactly by geodesic steps, for any step count."""
    S = Sphere(2)
    x0 = S.random(5, 3, dtype=torch.float64)
    u = 2.5 * S.proju(x0, torch.randn(5, 3, dtype=torch.float64))
    solver = RiemannianODESolver(S, lambda x, t: S.transp_follow_expmap(x0, t[:, None] * u, u))
    torch.testing.assert_close(solver.sample(x0, method=method, n_steps=5), S.expmap(x0, u), atol=1e-12, rtol=0)


def test_dopri5_with_projection():
    S = Sphere(2)
    omega = torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)
    x0 = S.random(4, 3, dtype=torch.float64)
    out = RiemannianODESolver(S, _rotation_field(omega)).sample(x0, method="dopri5", atol=1e-10, rtol=1e-10)
    c, s = math.cos(2.0), math.sin(2.0)
    R = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(out, x0 @ R.T, atol=1e-8, rtol=0)
    inter = RiemannianODESolver(S, _rotation_field(omega)).sample(x0, method="dopri5", n_steps=4, return_intermediates=True)
    assert inter.shape == (5, 4, 3)


def test_solver_rejects_zero_steps():
    S = Sphere(2)
    with pytest.raises(ValueError):
        RiemannianODESolver(S, _rotation_field(torch.ones(3))).sample(S.random(2, 3), n_steps=0)


# ----------------------------------------------------------------------------- learning
def sample_vmf_s2(mu: torch.Tensor, kappa: float, n: int, g: torch.Generator) -> torch.Tensor:
    """Exact von Mises–Fisher sampling on S² (Wood 1994; closed-form inverse CDF of w = <x, mu>)."""
    u = torch.rand(n, dtype=torch.float64, generator=g)
    w = 1 + torch.log(u + (1 - u) * math.exp(-2 * kappa)) / kappa
    phi = 2 * math.pi * torch.rand(n, dtype=torch.float64, generator=g)
    r = (1 - w * w).clamp_min(0).sqrt()
    x = torch.stack([r * torch.cos(phi), r * torch.sin(phi), w], -1)
    # rotate e_z to mu (Householder reflection mapping e_z -> mu)
    ez = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    v = ez - mu
    if v.norm() < 1e-12:
        return x
    v = v / v.norm()
    return x - 2 * (x @ v)[:, None] * v


def sample_mixture(n, g):
    mus = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, 0.3], [-0.5, 0.8, -0.2], [0.0, -0.6, -0.9]], dtype=torch.float64), dim=-1)
    comp = torch.randint(3, (n,), generator=g)
    xs = torch.cat([sample_vmf_s2(mus[k], 30.0, n, g)[None] for k in range(3)])
    return xs[comp, torch.arange(n)]


class _MLP(torch.nn.Module):
    def __init__(self, d=3, h=128):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(d + 1, h), torch.nn.SiLU(), torch.nn.Linear(h, h), torch.nn.SiLU(), torch.nn.Linear(h, d))

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None]], -1))


@pytest.mark.slow
def test_flow_matching_learns_vmf_mixture():
    """RFM from the uniform base learns a 3-component vMF mixture: MMD far below the uniform baseline."""
    S = Sphere(2)
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        field = ProjectToTangent(_MLP(), S)
    opt = torch.optim.Adam(field.parameters(), lr=2e-3)
    path = GeodesicProbPath(S)
    for _ in range(1500):
        x1 = sample_mixture(256, g).float()
        x0 = S.random_base(256, 3, generator=g)
        t = torch.rand(256, generator=g)
        s = path.sample(x0, x1, t)
        loss = riemannian_fm_loss(S, s.x_t, field(s.x_t, t), s.dx_t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        gen = RiemannianODESolver(S, field).sample(S.random_base(800, 3, generator=g), method="midpoint", n_steps=25)
    test = sample_mixture(800, g).float()
    uniform = S.random(800, 3, generator=g)
    bw = 0.3
    m_model = float(mmd2(S, gen, test, bw))
    m_uniform = float(mmd2(S, uniform, test, bw))
    m_data = float(mmd2(S, sample_mixture(800, g).float(), test, bw))
    assert S.check_point(gen, atol=1e-5)[0]
    assert m_model < 0.1 * m_uniform, (m_model, m_uniform, m_data)
