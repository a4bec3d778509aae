"""Trajectory metrics (manifold_rl.metrics): DTW, jerkiness, off-manifold drift, goal distance."""

from __future__ import annotations

import functools
import math
import time

import numpy as np
import pytest
import torch

from manifold_rl.metrics import dtw, dtw_path, euclidean_dist, final_goal_distance, jerkiness, off_manifold_drift
from manifolds import Sphere

S2 = Sphere(2)


def brute_dtw(a, b, d):
    """Textbook memoised DTW recursion; also returns all optimal path lengths' minimum cost."""
    a, b = np.asarray(a, float), np.asarray(b, float)

    @functools.lru_cache(maxsize=None)
    def D(i, j):
        c = d(a[i], b[j])
        if i == 0 and j == 0:
            return c
        prev = []
        if i > 0:
            prev.append(D(i - 1, j))
        if j > 0:
            prev.append(D(i, j - 1))
        if i > 0 and j > 0:
            prev.append(D(i - 1, j - 1))
        return c + min(prev)

    return D(len(a) - 1, len(b) - 1)


def np_euclid(x, y):
    return float(np.linalg.norm(x - y))


def np_geodesic(x, y):
    return float(2 * math.atan2(np.linalg.norm(x - y), np.linalg.norm(x + y)))


def test_dtw_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    for T1, T2, D in [(1, 1, 2), (1, 5, 2), (6, 1, 3), (7, 9, 2), (10, 4, 3), (12, 12, 1)]:
        a = torch.randn(T1, D, generator=g, dtype=torch.float64)
        b = torch.randn(T2, D, generator=g, dtype=torch.float64)
        assert dtw(a, b) == pytest.approx(brute_dtw(a, b, np_euclid), rel=1e-12, abs=1e-12)
        assert dtw(a.numpy(), b.numpy()) == pytest.approx(brute_dtw(a, b, np_euclid), rel=1e-12, abs=1e-12)
        # symmetric
        assert dtw(a, b) == pytest.approx(dtw(b, a), rel=1e-12)
        if D == 3:
            x, y = S2.projx(a), S2.projx(b)
            assert dtw(x, y, S2.dist) == pytest.approx(brute_dtw(x, y, np_geodesic), rel=1e-12, abs=1e-12)


def test_dtw_path_is_valid_and_sums_to_distance():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(15, 2, generator=g, dtype=torch.float64)
    b = torch.randn(11, 2, generator=g, dtype=torch.float64)
    d, path = dtw_path(a, b)
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (14, 10)
    steps = np.diff(path, axis=0)
    assert {tuple(s) for s in steps} <= {(1, 0), (0, 1), (1, 1)}
    assert 15 <= len(path) <= 15 + 11 - 1
    cost = euclidean_dist(a[path[:, 0]], b[path[:, 1]]).sum()
    assert float(cost) == pytest.approx(d, rel=1e-12)
    assert dtw(a, b, normalize=True) == pytest.approx(d / len(path), rel=1e-12)


def test_dtw_known_cases():
    t = torch.linspace(0, 1, 100, dtype=torch.float64)
    curve = torch.stack([torch.cos(3 * t), torch.sin(2 * t)], -1)
    assert dtw(curve, curve) == 0.0
    # a copy that lingers at some samples (repeated points) is a pure time warp: distance 0
    idx = torch.sort(torch.cat([torch.arange(100), torch.arange(0, 100, 3)])).values
    assert dtw(curve, curve[idx]) == 0.0
    # time-shifted / resampled copy of a smooth curve: near 0 relative to its length
    f = lambda s: torch.stack([torch.cos(3 * s), torch.sin(2 * s)], -1)  # noqa: E731
    dense = f(torch.linspace(0, 1, 400, dtype=torch.float64))
    resampled = f(torch.linspace(0, 1, 130, dtype=torch.float64) ** 1.3)  # non-uniform timing
    assert dtw(dense, resampled, normalize=True) < 5e-3
    # a straight line against a parallel copy at distance 0.5: any warp other than the diagonal
    # matches points farther apart, so the cost is exactly 0.5 per matched pair
    line = torch.stack([t, torch.zeros_like(t)], -1)
    offset = line + torch.tensor([0.0, 0.5], dtype=torch.float64)
    d, path = dtw_path(line, offset)
    assert len(path) == 100 and d == pytest.approx(50.0, rel=1e-12)
    assert dtw(line, offset, normalize=True) == pytest.approx(0.5, rel=1e-12)
    # one point against many: the sum of all distances
    b = torch.randn(7, 2, dtype=torch.float64)
    assert dtw(b[:1], b) == pytest.approx(float((b - b[0]).norm(dim=-1).sum()))


def test_dtw_geodesic_vs_euclidean_on_small_and_large_curves():
    north = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)

    def arc(theta_max, phase, n):
        th = torch.linspace(0, theta_max, n, dtype=torch.float64)
        u = torch.stack([th * math.cos(phase), th * math.sin(phase), torch.zeros_like(th)], -1)
        return S2.expmap(north.expand(n, 3), u)

    # small curves: chord ~ geodesic (relative difference ~ θ²/24)
    a, b = arc(0.01, 0.0, 50), arc(0.01, 0.3, 60)
    dg, de = dtw(a, b, S2.dist), dtw(a, b)
    assert de <= dg and dg == pytest.approx(de, rel=1e-5)
    # large curves: geodesic strictly longer than the chord
    a, b = arc(2.0, 0.0, 50), arc(2.0, 2.0, 60)
    dg, de = dtw(a, b, S2.dist), dtw(a, b)
    assert dg > 1.05 * de


def test_dtw_is_fast_for_1000_points():
    g = torch.Generator().manual_seed(0)
    a = S2.random(1000, 3, generator=g, dtype=torch.float64)
    b = S2.random(1000, 3, generator=g, dtype=torch.float64)
    dtw(a[:10], b[:10], S2.dist)
    t0 = time.perf_counter()
    dtw(a, b, S2.dist)
    assert time.perf_counter() - t0 < 1.0  # ~0.12 s on a loaded 2-core CPU; generous bound for CI


def test_dtw_errors():
    a = torch.zeros(5, 2)
    with pytest.raises(ValueError, match="same point dimension"):
        dtw(a, torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"\(T, D\)"):
        dtw(torch.zeros(5), a)
    with pytest.raises(ValueError, match=r"\(T, D\)"):
        dtw(torch.zeros(0, 2), a)
    with pytest.raises(ValueError, match="non-finite"):
        dtw(torch.full((5, 2), float("nan")), a)
    with pytest.raises(ValueError, match="dist_fn"):
        dtw(a, a, lambda x, y: (x - y).sum())


def test_jerkiness_cubic_and_line():
    dt = 0.01
    T = 101
    t = torch.arange(T, dtype=torch.float64) * dt
    # x(t) = (2 t³, -t³ + t): jerk (12, -6), ‖·‖² = 180, constant
    cubic = torch.stack([2 * t**3, -(t**3) + t], -1)
    expected = 180.0 * (T - 3) * dt
    assert jerkiness(cubic, dt) == pytest.approx(expected, rel=1e-8)
    assert jerkiness(cubic.numpy(), dt) == pytest.approx(expected, rel=1e-8)
    # converges to ∫_0^1 180 dt = 180 as the sampling gets finer
    tf = torch.linspace(0, 1, 2001, dtype=torch.float64)
    assert jerkiness(torch.stack([2 * tf**3, -(tf**3) + tf], -1), 1 / 2000) == pytest.approx(180.0, rel=2e-3)
    # straight line at constant speed, and a parabola (constant acceleration): no jerk
    line = torch.stack([3 * t - 1, 0.5 * t], -1)
    assert jerkiness(line, dt) == pytest.approx(0.0, abs=1e-12)
    assert jerkiness(torch.stack([t**2, t], -1), dt) == pytest.approx(0.0, abs=1e-9)


def test_jerkiness_errors():
    with pytest.raises(ValueError, match="T >= 4"):
        jerkiness(torch.zeros(3, 2), 0.1)
    with pytest.raises(ValueError, match="dt"):
        jerkiness(torch.zeros(5, 2), 0.0)


def test_off_manifold_drift():
    x = S2.random(20, 3, dtype=torch.float64)
    assert off_manifold_drift(x) < 1e-15
    y = x.clone()
    y[3] *= 1.01
    y[7] *= 0.98
    assert off_manifold_drift(y) == pytest.approx(0.02, rel=1e-9)
    assert off_manifold_drift(y.reshape(4, 5, 3).numpy()) == pytest.approx(0.02, rel=1e-9)
    with pytest.raises(ValueError):
        off_manifold_drift(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="non-finite"):
        off_manifold_drift(torch.full((2, 3), float("inf")))


def test_final_goal_distance():
    north = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    traj = torch.tensor([[1.0, 0.0, 0.0], [math.sin(0.2), 0.0, math.cos(0.2)]], dtype=torch.float64)
    assert final_goal_distance(traj, north, S2.dist) == pytest.approx(0.2, rel=1e-12)
    assert final_goal_distance(traj, north) == pytest.approx(2 * math.sin(0.1), rel=1e-12)
    assert final_goal_distance(np.array([[3.0, 4.0], [0.3, 0.4]]), np.zeros(2)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="goal"):
        final_goal_distance(traj, torch.zeros(2))


def test_metrics_on_lasa_sphere():
    """End to end: demos of one LASA shape on S² are close to each other and end at the goal."""
    from manifold_rl.data import lasa_on_sphere

    traj, emb = lasa_on_sphere("Sshape", n_points=200)
    assert off_manifold_drift(traj) < 1e-12
    assert final_goal_distance(traj[0], emb.goal, S2.dist) < 1e-12
    d_same = dtw(traj[0], traj[0], S2.dist)
    d_other = dtw(traj[0], traj[1], S2.dist, normalize=True)
    assert d_same == 0.0 and 0 < d_other < 0.2


# ---------------------------------------------------------------------------- state_mmd2
def test_state_mmd2_separates_distributions_and_matches_kernels():
    import kernels
    from manifolds import Sphere
    from manifold_rl.metrics import state_mmd2

    S = Sphere(2)
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    m = mu.expand(400, 3)

    def wrapped_normal():  # exp at mu of a tangent Gaussian
        return S.expmap(m, S.proju(m, 0.3 * torch.randn(400, 3, dtype=torch.float64, generator=g)))

    a, b = wrapped_normal(), wrapped_normal()
    far = -b
    same, diff = state_mmd2(S, a, b), state_mmd2(S, far, b)
    assert abs(same) < 0.01 < diff
    # the value is kernels.mmd2 with the median-heuristic bandwidth
    d = kernels.pairwise_distances(S, b)
    iu = torch.triu_indices(400, 400, 1)
    h = float(d[iu[0], iu[1]].median())
    assert state_mmd2(S, far, b) == pytest.approx(float(kernels.mmd2(S, far, b, h)), rel=1e-12)
    assert state_mmd2(S, far, b, bandwidth=0.5) == pytest.approx(float(kernels.mmd2(S, far, b, 0.5)), rel=1e-12)


def test_state_mmd2_errors():
    from manifolds import Euclidean
    from manifold_rl.metrics import state_mmd2

    E = Euclidean(2)
    with pytest.raises(ValueError, match="median heuristic"):
        state_mmd2(E, torch.randn(5, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="at least 2"):
        state_mmd2(E, torch.randn(1, 2), torch.randn(5, 2))
    with pytest.raises(ValueError, match="non-finite"):
        state_mmd2(E, torch.full((3, 2), float("nan")), torch.randn(5, 2))
