"""End-to-end checks that every manifold of the core works with the rest of the library.

The issue's contract (issue 3): each manifold works with ``geoopt.ManifoldParameter``, our
``RiemannianAdam`` and the flow-matching code. For every manifold in ``CASES``:

* the geodesic conditional path of Riemannian flow matching has the velocity
  ``torch.func.jvp`` gives, stays on the manifold and moves at speed ``dist(x0, x1)``;
* the geodesic ODE sampler (RK4 with the manifold's exp and transport) integrates a constant
  transported field to the geodesic end point;
* a ``geoopt.ManifoldParameter`` trained with ``RiemannianAdam`` on ``dist²`` to a target reaches
  the target and stays on the manifold;
* ``geodesic(x, y, t)`` interpolates distances linearly.
"""

from __future__ import annotations

import geoopt
import pytest
import torch

from manifolds import (
    SE3,
    SO3,
    SPD,
    AffineInvariantMetric,
    GeneralizedBuresWassersteinMetric,
    Grassmann,
    Hyperboloid,
    LogCholeskyMetric,
    PoincareBall,
    Product,
    RiemannianAdam,
    SphereProjection,
    Sphere,
    Stereographic,
    Stiefel,
    Torus,
)
from manifolds.flow_matching import GeodesicProbPath, RiemannianODESolver

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _near(M, n, seed, std=0.5):
    """``n`` pairs of points within a moderate distance (inside injectivity radii)."""
    g = _gen(seed)
    if isinstance(M, (Stereographic, Hyperboloid)):
        o = M.origin_point(torch.zeros((n,) + tuple(M.event_shape), dtype=F64))
        x = M.wrapped_normal(o, 0.5, generator=g)
    else:
        x = M.random(n, *M.event_shape, dtype=F64, generator=g)
    y = M.wrapped_normal(x, std, generator=g)
    return x, y


CASES = {
    "sphere": lambda: Sphere(2),
    "torus": lambda: Torus(2),
    "so3": lambda: SO3(),
    "se3": lambda: SE3(),
    "poincare": lambda: PoincareBall(2),
    "hyperboloid": lambda: Hyperboloid(2),
    "spd_aim": lambda: SPD(3, "aim"),
    "spd_lem": lambda: SPD(3, "lem"),
    "spd_lcm": lambda: SPD(3, "lcm"),
    "spd_em": lambda: SPD(3, "em"),
    "spd_power_affine": lambda: SPD(3, AffineInvariantMetric(theta=0.5, alpha=1.0, beta=0.1)),
    "spd_theta_lcm": lambda: SPD(3, LogCholeskyMetric(theta=-1.0)),
    "sphere_projection": lambda: SphereProjection(2, c=1.0),
    "grassmann": lambda: Grassmann(4, 2),
    "product": lambda: Product(Sphere(2), SO3(), Torus(1)),
}
# transport by ODE: too slow for the RK4 sampler's many transports; path and optimizer only
ODE_CASES = {
    "spd_bwm": lambda: SPD(3, "bwm"),
    "spd_gbwm": lambda: SPD(3, GeneralizedBuresWassersteinMetric(torch.diag(torch.tensor([1.0, 2.0, 0.5], dtype=F64)))),
}


@pytest.mark.parametrize("name", sorted(CASES) + sorted(ODE_CASES))
def test_flow_matching_path(name):
    M = {**CASES, **ODE_CASES}[name]()
    x0, x1 = _near(M, 8, seed=1)
    t = torch.rand(8, dtype=F64, generator=_gen(2))
    path = GeodesicProbPath(M)
    s = path.sample(x0, x1, t)
    if name in ODE_CASES:
        # torchdiffeq's adaptive step control is not torch.func-transformable: central
        # differences instead (the ODE transport is accurate to ~1e-10)
        h = 1e-5
        deriv = (path.sample(x0, x1, t + h).x_t - path.sample(x0, x1, t - h).x_t) / (2 * h)
        torch.testing.assert_close(s.dx_t, deriv, atol=1e-7, rtol=1e-7)
    else:
        _, jvp = torch.func.jvp(lambda tt: path.sample(x0, x1, tt).x_t, (t,), (torch.ones_like(t),))
        torch.testing.assert_close(s.dx_t, jvp, atol=1e-8, rtol=1e-8)
    ok, reason = M.check_point(s.x_t)
    assert ok, reason
    torch.testing.assert_close(M.norm(s.x_t, s.dx_t), M.dist(x0, x1), atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("name", sorted(CASES))
def test_geodesic_ode_sampler_follows_geodesic(name):
    """d/dt x = Γ_{x0→x}(log_{x0} x1) integrated by geodesic RK4 ends at x1."""
    M = CASES[name]()
    x0, x1 = _near(M, 4, seed=3)
    u = M.logmap(x0, x1)

    def field(x, t):
        # the transported initial velocity along the geodesic: the geodesic's own velocity
        return M.transp(x0, x, u)

    out = RiemannianODESolver(M, field).sample(x0, method="rk4", n_steps=8)
    torch.testing.assert_close(M.dist(out, x1), torch.zeros(4, dtype=F64), atol=1e-6, rtol=0)


# The Euclidean metric on SPD is incomplete: its exponential x + u leaves the cone for large
# steps, so an optimizer needs SPD.projx there (documented in EuclideanMetric).
COMPLETE = sorted(set(CASES) - {"spd_em"}) + sorted(ODE_CASES)


@pytest.mark.parametrize("name", COMPLETE)
def test_manifold_parameter_with_riemannian_adam(name):
    M = {**CASES, **ODE_CASES}[name]()
    x0, target = _near(M, 3, seed=4, std=0.6)
    p = geoopt.ManifoldParameter(x0.clone(), manifold=M)
    opt = RiemannianAdam([p], lr=0.1)
    start = M.dist(p, target).detach()
    for _ in range(80):
        opt.zero_grad()
        M.dist2(p, target).sum().backward()
        opt.step()
    ok, reason = M.check_point(p.detach())
    assert ok, reason
    end = M.dist(p.detach(), target)
    assert torch.all(end < 0.1 * start), (start, end)


@pytest.mark.parametrize("name", sorted(CASES))
def test_geodesic_interpolates_distance(name):
    M = CASES[name]()
    x, y = _near(M, 5, seed=5)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=F64)
    for ti in t:
        z = M.geodesic(x, y, ti)
        torch.testing.assert_close(M.dist(x, z), ti * M.dist(x, y), atol=1e-8, rtol=1e-8)


def test_stiefel_parameter_with_riemannian_adam():
    """Stiefel has no logmap / dist (no closed form): optimise a Procrustes loss instead."""
    M = Stiefel(5, 2)
    g = _gen(6)
    target = M.random(5, 2, dtype=F64, generator=g)
    p = geoopt.ManifoldParameter(M.random(5, 2, dtype=F64, generator=g), manifold=M)
    opt = RiemannianAdam([p], lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        ((p - target) ** 2).sum().backward()
        opt.step()
    ok, reason = M.check_point(p.detach())
    assert ok, reason
    assert float(((p.detach() - target) ** 2).sum()) < 1e-3
