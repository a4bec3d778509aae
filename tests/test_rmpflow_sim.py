"""KinematicSim: limits, collision detection, goal stop, determinism, batch = per-environment, bad input."""

import pytest
import torch

from manifold_rl.rmpflow.obstacles import Sphere
from manifold_rl.rmpflow.robots import FrankaPanda, PlanarArm, PointRobot
from manifold_rl.rmpflow.sim import KinematicSim

D64 = torch.float64


def test_step_semi_implicit_euler_and_limits():
    sim = KinematicSim(2, dt=0.1, q_min=[-1.0, -1.0], q_max=[1.0, 1.0], qd_max=[0.5, 2.0])
    q = torch.tensor([[0.0, 0.95]], dtype=D64)
    qd = torch.tensor([[0.0, 1.0]], dtype=D64)
    qn, qdn = sim.step(q, qd, torch.tensor([[10.0, 1.0]], dtype=D64))
    # joint 0: velocity clipped to 0.5, then position 0.05; joint 1: q hits the limit → clamp, velocity zeroed
    torch.testing.assert_close(qdn, torch.tensor([[0.5, 0.0]], dtype=D64))
    torch.testing.assert_close(qn, torch.tensor([[0.05, 1.0]], dtype=D64))
    # moving away from the limit keeps the velocity
    qn, qdn = sim.step(qn, torch.tensor([[0.0, -1.0]], dtype=D64), torch.zeros(1, 2, dtype=D64))
    assert float(qdn[0, 1]) == -1.0 and float(qn[0, 1]) == pytest.approx(0.9)


def test_franka_rollout_respects_limits():
    r = FrankaPanda()
    sim = KinematicSim.for_robot(r, dt=0.01)
    gen = torch.Generator().manual_seed(0)
    q0 = r.default_q.expand(4, 7).clone()
    push = 50.0 * torch.randn(4, 7, dtype=D64, generator=gen)
    out = sim.rollout(lambda q, qd: push, q0, steps=150)
    assert out.q.shape == (151, 4, 7) and out.steps == 150
    assert bool((out.q >= r.q_min - 1e-12).all()) and bool((out.q <= r.q_max + 1e-12).all())
    assert bool((out.qd.abs() <= r.qd_max + 1e-12).all())
    assert bool((out.q == r.q_max).any() | (out.q == r.q_min).any())  # limits actually became active
    assert bool(torch.isnan(out.time_to_goal).all()) and not bool(out.collided.any())
    torch.testing.assert_close(out.path_length, (out.q[1:] - out.q[:-1]).norm(dim=-1).sum(0))


def test_planted_collision_detected_per_environment():
    arm = PlanarArm((0.25, 0.25, 0.25))
    # obstacle on the x axis at 0.6: env 0 swings its straight arm into it, env 1 swings away
    obst = [Sphere([0.6, 0.0], 0.05)]
    sim = KinematicSim.for_robot(arm, obstacles=obst, dt=0.01)
    q0 = torch.tensor([[0.5, 0.0, 0.0], [0.5, 0.0, 0.0]], dtype=D64)
    qd0 = torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=D64)
    out = sim.rollout(lambda q, qd: torch.zeros_like(q), q0, qd0, steps=100)
    assert out.collided.tolist() == [True, False]
    assert float(out.min_clearance[0]) < 0 < float(out.min_clearance[1])
    assert 0 < float(out.collision_intensity[0]) < 1 and float(out.collision_intensity[1]) == 0
    # clearance equals the brute-force one along the recorded path
    c = arm.sphere_centers(out.q[:, 1])
    brute = ((c - torch.tensor([0.6, 0.0], dtype=D64)).norm(dim=-1) - 0.05 - 0.025).min()
    assert float(out.min_clearance[1]) == pytest.approx(float(brute), abs=1e-12)
    stop = KinematicSim.for_robot(arm, obstacles=obst, dt=0.01, stop_on_collision=True)
    o2 = stop.rollout(lambda q, qd: torch.zeros_like(q), q0, qd0, steps=100)
    assert o2.collided.tolist() == [True, False] and bool((o2.q[-1, 0] == o2.q[-2, 0]).all())


def test_goal_stop_determinism_and_batch():
    pr = PointRobot()
    goal = torch.tensor([1.0, 2.0], dtype=D64)
    sim = KinematicSim(2, dt=0.02, goal_fn=lambda q: (q - goal).norm(dim=-1), goal_tolerance=0.01,
                       obstacles=[Sphere([0.5, 1.2], 0.1)], sphere_fn=pr.sphere_centers, radii=pr.sphere_radii)

    def policy(q, qd):  # critically damped attractor
        return 16.0 * (goal - q) - 8.0 * qd

    q0 = torch.tensor([[0.0, 0.0], [0.9, 2.0], [1.0, 2.0]], dtype=D64)
    out = sim.rollout(policy, q0, steps=1000)
    # the straight path of env 0 grazes the disc (line–centre distance 0.2/√5 < 0.1): reached, not a success
    assert out.reached.all() and out.collided.tolist() == [True, False, False]
    assert out.success.tolist() == [False, True, True]
    assert float(out.time_to_goal[2]) == 0.0 and float(out.time_to_goal[1]) < float(out.time_to_goal[0])
    assert out.steps < 1000  # stopped early once every environment was done
    assert bool((out.goal_distance <= 0.01).all())
    again = sim.rollout(policy, q0, steps=1000)
    assert torch.equal(again.q, out.q) and torch.equal(again.time_to_goal, out.time_to_goal)
    for b in range(3):
        one = sim.rollout(policy, q0[b:b + 1], steps=1000, record=False)
        torch.testing.assert_close(one.q_final, out.q_final[b:b + 1])
        torch.testing.assert_close(one.time_to_goal, out.time_to_goal[b:b + 1])


def test_differentiable_rollout():
    sim = KinematicSim(2, dt=0.05)
    gain = torch.tensor(3.0, dtype=D64, requires_grad=True)
    out = sim.rollout(lambda q, qd: -gain * q, torch.ones(1, 2, dtype=D64), steps=10, differentiable=True)
    out.q_final.sum().backward()
    assert gain.grad is not None and float(gain.grad) < 0


def test_sim_bad_input():
    with pytest.raises(ValueError):
        KinematicSim(2, dt=0.0)
    with pytest.raises(ValueError):
        KinematicSim(2, q_min=[1.0, 0.0], q_max=[0.0, 1.0])
    with pytest.raises(ValueError):
        KinematicSim(2, qd_max=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError):
        KinematicSim(2, obstacles=[Sphere([0.0, 0.0], 1.0)])
    with pytest.raises(ValueError):
        KinematicSim(2, radii=[-0.1], sphere_fn=lambda q: q.unsqueeze(1))
    sim = KinematicSim(2)
    with pytest.raises(ValueError):
        sim.rollout(lambda q, qd: q, torch.zeros(3, 3, dtype=D64))
    with pytest.raises(ValueError):
        sim.rollout(lambda q, qd: q[:, :1], torch.zeros(3, 2, dtype=D64))
