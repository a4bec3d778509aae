"""FlowMatchingPolicy on R² and S²: shapes, errors, learning a simple demonstration set."""


import pytest
import torch

from manifolds import Euclidean, Sphere
from manifold_rl.policies import FlowMatchingPolicy, FlowMatchingPolicyConfig, make_chunk_dataset
from manifold_rl.metrics import dtw
from manifold_rl.training import train_policy


def test_make_chunk_dataset_windows():
    traj = torch.arange(2 * 5 * 1, dtype=torch.float64).reshape(2, 5, 1)
    obs, act = make_chunk_dataset(traj, obs_horizon=2, action_horizon=3)
    assert obs.shape == (10, 2, 1) and act.shape == (10, 3, 1)
    assert obs[0, :, 0].tolist() == [0, 0]  # padded with the first state
    assert act[0, :, 0].tolist() == [1, 2, 3]
    assert act[4, :, 0].tolist() == [4, 4, 4]  # padded with the goal
    assert obs[7, :, 0].tolist() == [6, 7]
    with pytest.raises(ValueError):
        make_chunk_dataset(traj[0], 2, 3)


@pytest.mark.parametrize("base", ["wrapped_normal", "uniform"])
@pytest.mark.parametrize("manifold", [Sphere(2), Euclidean(2), Sphere(3)])
def test_shapes_and_manifold(manifold, base):
    cfg = FlowMatchingPolicyConfig(action_horizon=4, hidden=32, depth=2, n_steps=3, base=base)
    policy = FlowMatchingPolicy(manifold, cfg)
    d = manifold.event_shape[0]
    obs = manifold.random(5, 2, d)
    chunk = policy.predict(obs)
    assert chunk.shape == (5, 4, d)
    assert manifold.check_point(chunk, atol=1e-5)[0]
    loss = policy.loss(obs, manifold.random(5, 4, d))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in policy.parameters())
    r = policy.rollout(obs[0, -1], 11, n_execute=2)
    assert r.states.shape == (11, d) and len(r.latencies_ms) == 5
    torch.testing.assert_close(r.states[0], obs[0, -1])


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="action_horizon"):
        FlowMatchingPolicyConfig(action_horizon=0)
    with pytest.raises(ValueError, match="base"):
        FlowMatchingPolicyConfig(base="gaussian")
    policy = FlowMatchingPolicy(Sphere(2), FlowMatchingPolicyConfig(hidden=8, depth=1))
    with pytest.raises(ValueError, match="obs must have shape"):
        policy.predict(torch.randn(3, 5, 3))
    with pytest.raises(ValueError, match="n_execute"):
        policy.rollout(Sphere(2).random(3), 10, n_execute=9)


def _arc_demos(manifold, n=4, T=40):
    """Demonstrations converging to a goal along arcs (on S²: near the north pole)."""
    s = torch.linspace(0, 1, T, dtype=torch.float64)
    demos = []
    for k in range(n):
        a = 0.4 + 0.1 * k
        p = torch.stack([a * (1 - s) * torch.cos(3 * s), a * (1 - s) * torch.sin(3 * s)], -1)
        if isinstance(manifold, Sphere):
            p = Sphere(2).expmap(torch.tensor([0.0, 0, 1], dtype=torch.float64), torch.cat([p, torch.zeros(T, 1, dtype=torch.float64)], -1))
        demos.append(p)
    return torch.stack(demos).float()


@pytest.mark.slow
@pytest.mark.parametrize("manifold", [Sphere(2), Euclidean(2)], ids=["S2", "R2"])
def test_policy_learns_to_follow_demonstrations(manifold):
    demos = _arc_demos(manifold)
    cfg = FlowMatchingPolicyConfig(action_horizon=4, hidden=128, depth=2, n_steps=5, base_std=0.05)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        policy = FlowMatchingPolicy(manifold, cfg)
    obs, act = make_chunk_dataset(demos[[0, 1, 3]], cfg.obs_horizon, cfg.action_horizon)
    g = torch.Generator().manual_seed(0)
    res = train_policy(policy, obs, act, steps=1000, batch_size=128, lr=2e-3, generator=g, progress=False)
    assert res.losses[-1] < res.losses[0]
    trained = res.ema.module.eval()
    target = demos[2]  # interpolation between training arcs
    r = trained.rollout(target[0], target.shape[0], generator=torch.Generator().manual_seed(1))
    # Follows the held-out arc (geodesic DTW per matched step) clearly better than the
    # closest training demonstration does, and ends at the goal.
    d = dtw(r.states.double(), target.double(), manifold.dist, normalize=True)
    nearest = min(dtw(demos[k].double(), target.double(), manifold.dist, normalize=True) for k in (1, 3))
    assert d < 0.6 * nearest, (d, nearest)
    assert float(manifold.dist(r.states[-1], target[-1])) < 0.05
    if isinstance(manifold, Sphere):
        assert float(((r.states.norm(dim=-1) - 1).abs()).max()) < 1e-5


def test_temporal_ensemble_executes_weighted_frechet_mean():
    """With temporal ensembling the executed state is the weighted mean of all predictions for that step."""
    S = Sphere(2)
    policy = FlowMatchingPolicy(S, FlowMatchingPolicyConfig(action_horizon=3, hidden=8, depth=1, n_steps=1, temperature=0.0))
    start = S.random(3, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    r = policy.rollout(start, 6, temporal_ensemble=0.5)
    assert r.states.shape == (6, 3) and len(r.latencies_ms) == 5
    assert S.check_point(r.states, atol=1e-5)[0]
    # the mean of identical points is that point; of two points, it lies on their geodesic
    p = S.random(2, 3, dtype=torch.float64)
    w = torch.tensor([0.25, 0.75], dtype=torch.float64)
    policy64 = policy.double()
    mean = policy64._weighted_mean(p, w)
    torch.testing.assert_close(mean, S.geodesic(p[0], p[1], torch.tensor(0.75, dtype=torch.float64)), atol=1e-6, rtol=0)
    torch.testing.assert_close(policy64._weighted_mean(p[:1].expand(3, 3), torch.ones(3, dtype=torch.float64) / 3), p[0])
    with pytest.raises(ValueError, match="temporal_ensemble"):
        policy.rollout(start, 4, temporal_ensemble=-1.0)
