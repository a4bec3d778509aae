"""Fast paths of the RMPflow control step equal the reference paths (float64, 1e-10).

Fast paths: shared chain kinematics + prefix-sum J / J̇q̇ of the Franka point and orientation maps,
constant-folded DH forward kinematics, the stacked diagonal-metric pullback (``Leaf.natural_diag``),
and ``ObstacleDistanceMap.compose_total`` without the block-diagonal Jacobian.
"""

import math

import pytest
import torch

from manifold_rl.rmpflow import (
    CollisionAvoidance, CollisionParams, CollisionRMP, CSpaceTargetRMP, DampingRMP, JointLimitBarrier,
    JointLimitRMP, JointVelocityCapParams, JointVelocityCapRMP, OrientationTargetRMP, RMPFlow, RMPRoot, TargetRMP,
    joint_limit_map,
)
from manifold_rl.rmpflow.core import evaluation_cache
from manifold_rl.rmpflow.obstacles import Box, ObstacleDistanceMap, Sphere
from manifold_rl.rmpflow.robots.franka import FRANKA_DH_A, FRANKA_DH_ALPHA, FRANKA_DH_D, FrankaPanda, franka_fk

TOL = 1e-10
D64 = torch.float64


def _state(B=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = FrankaPanda().default_q + 0.6 * torch.randn(B, 7, generator=g, dtype=D64)
    qd = torch.randn(B, 7, generator=g, dtype=D64)
    return q, qd


def _fk_reference(q):
    """The textbook per-row construction of Craig's T = RotX(α) TransX(a) RotZ(θ) TransZ(d)."""
    B = q.shape[0]
    out, T = [], torch.eye(4, dtype=q.dtype).expand(B, 4, 4)
    for i in range(8):
        th = q[:, i] if i < 7 else q.new_zeros(B)
        a, d, al = FRANKA_DH_A[i], FRANKA_DH_D[i], FRANKA_DH_ALPHA[i]
        ca, sa = math.cos(al), math.sin(al)
        c, s = torch.cos(th), torch.sin(th)
        z, o = torch.zeros_like(c), torch.ones_like(c)
        Ti = torch.stack([torch.stack([c, -s, z, a * o], -1), torch.stack([s * ca, c * ca, -sa * o, -sa * d * o], -1),
                          torch.stack([s * sa, c * sa, ca * o, ca * d * o], -1), torch.stack([z, z, z, o], -1)], -2)
        T = T @ Ti
        out.append(T)
    return torch.stack(out, 1)


def _close(a, b):
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= TOL * max(1.0, b.abs().max().item())


def test_fk_matches_reference():
    q, _ = _state()
    _close(franka_fk(q), _fk_reference(q))


@pytest.mark.parametrize("which", ["cp", "cp_base", "ee", "flange", "points"])
@pytest.mark.parametrize("scoped", [False, True])
def test_point_map_fast_equals_reference(which, scoped):
    robot = FrankaPanda(include_base=(which == "cp_base"))
    m = {"cp": robot.control_point_map, "cp_base": robot.control_point_map, "ee": robot.end_effector_map,
         "flange": lambda: robot.end_effector_map("flange"),
         "points": lambda: robot.point_map([(0, (0.1, 0.0, 0.0)), (3, (0.0, 0.1, 0.2)), (8, (0.0, 0.0, 0.1))])}[which]()
    q, qd = _state()
    x_ref, J_ref, jd_ref = m._all(q, qd)  # point_kinematics: the reference formulas
    if scoped:
        with evaluation_cache():
            out = m(q, qd)
            out2 = m(q, qd)  # cache hit
        _close(out2.J, out.J)
    else:
        out = m(q, qd)
    _close(out.x, x_ref)
    _close(out.J, J_ref)
    _close(out.xd, torch.einsum("bmn,bn->bm", J_ref, qd))
    _close(out.Jdot_qd, jd_ref)


@pytest.mark.parametrize("axis", [None, 0, 2])
def test_orientation_map_fast_equals_reference(axis):
    m = FrankaPanda().orientation_map(axis=axis)
    q, qd = _state()
    x_ref, J_ref, jd_ref = m._all(q, qd)
    with evaluation_cache():
        FrankaPanda().control_point_map()(q, qd)  # another map's cache entry in the same scope
        out = m(q, qd)
    _close(out.x, x_ref)
    _close(out.J, J_ref)
    _close(out.xd, torch.einsum("bmn,bn->bm", J_ref, qd))
    _close(out.Jdot_qd, jd_ref)


def test_cache_invalidated_by_inplace_change_and_scope_exit():
    m = FrankaPanda().end_effector_map()
    q, qd = _state()
    with evaluation_cache():
        a = m(q, qd).x.clone()
        q.add_(0.3)  # in-place: version counter changes
        b = m(q, qd).x
    _close(b, m._all(q, qd)[0])
    assert (a - b).abs().max() > 1e-3
    # autograd through two separate evaluations with the same q (no graph reuse across scopes)
    q = q.detach().requires_grad_(True)
    flow, _ = _franka_flow()
    for _ in range(2):
        flow(q, qd).square().sum().backward()
    assert torch.isfinite(q.grad).all()


def _franka_flow(obstacles=None, **kw):
    robot = FrankaPanda()
    root = RMPRoot(7)
    cp = root.add_child(robot.control_point_map())
    K = cp.task_map.num_points
    obstacles = obstacles or [Sphere([0.5, 0.0, 0.4], 0.1), Sphere([0.3, 0.3, 0.6], 0.08),
                              Box([0.4, -0.3, 0.3], [0.05, 0.1, 0.2])]
    for ob in obstacles:
        cp.add_child(ObstacleDistanceMap(ob, robot.sphere_radii)).add_leaf(CollisionRMP(K, CollisionParams(metric_scalar=3.0)))
    ee = root.add_child(robot.end_effector_map())
    ee.add_leaf(TargetRMP(3, torch.tensor([0.5, 0.2, 0.5], dtype=D64)))
    rot = root.add_child(robot.orientation_map())
    rot.add_leaf(OrientationTargetRMP(torch.eye(3, dtype=D64)))
    jl = root.add_child(joint_limit_map(robot.q_min, robot.q_max))
    jl.add_leaf(JointLimitRMP(14))
    jl.add_leaf(JointLimitBarrier(14))  # a second diagonal leaf on the same node
    root.add_leaf(CSpaceTargetRMP(7, robot.default_q))
    root.add_leaf(DampingRMP(7))
    root.add_leaf(JointVelocityCapRMP(7, JointVelocityCapParams(max_velocity=0.5)))
    return RMPFlow(root, **kw).to(D64), root


def test_flow_compose_fast_equals_recursive_reference():
    q, qd = _state(B=6)
    fast, root = _franka_flow()
    ref = RMPFlow(root, pullback_mode="recursive")  # dense leaves, explicit J at every edge
    st = fast.pushforward(q, qd)
    f1, M1 = fast.pullback(st)
    f2, M2 = ref.pullback(ref.pushforward(q, qd))
    _close(f1, f2)
    _close(M1, M2)
    _close(fast(q, qd), ref(q, qd))
    # the lazily built block-diagonal J of the distance maps equals its definition
    o = st.outputs[2]
    g = o.row_grad
    B, K, D = g.shape
    J = (torch.eye(K, dtype=D64).unsqueeze(0).unsqueeze(-1) * g.unsqueeze(2)).reshape(B, K, K * D)
    _close(o.J, J)


def test_batch_equals_per_environment():
    q, qd = _state(B=4)
    flow, _ = _franka_flow()
    full = flow(q, qd)
    for b in range(4):
        _close(flow(q[b:b + 1], qd[b:b + 1]), full[b:b + 1])


@pytest.mark.parametrize("make", [lambda: CollisionRMP(5), lambda: JointLimitRMP(5), lambda: JointVelocityCapRMP(5),
                                  lambda: CollisionAvoidance(5), lambda: JointLimitBarrier(5),
                                  lambda: CollisionAvoidance(5, curvature="none")])
def test_natural_diag_equals_forward(make):
    leaf = make().to(D64)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(7, 5, generator=g, dtype=D64) * 0.3 - 0.02
    xd = 3 * torch.randn(7, 5, generator=g, dtype=D64)
    f, M = leaf(x, xd)
    fd, m = leaf.natural_diag(x, xd)
    _close(fd, f)
    _close(torch.diag_embed(m), M)


def test_natural_diag_disabled_for_overrides():
    class MyCollision(CollisionRMP):
        def canonical(self, x, xd):
            a, M = super().canonical(x, xd)
            return 2 * a, M

    assert MyCollision(3).natural_diag(torch.ones(1, 3), torch.ones(1, 3)) is None
    assert CollisionAvoidance(3, curvature="hgrmpflow").natural_diag(torch.ones(1, 3), torch.ones(1, 3)) is None
    # and the flow then uses forward: compose equals recursive
    root = RMPRoot(3)
    root.add_child(joint_limit_map(-torch.ones(3), torch.ones(3))).add_leaf(MyCollision(6))
    q = torch.tensor([[0.2, -0.5, 0.9]], dtype=D64)
    qd = torch.tensor([[0.3, -1.0, 0.1]], dtype=D64)
    f1 = RMPFlow(root).to(D64).pullback(RMPFlow(root).pushforward(q, qd))[0]
    f2 = RMPFlow(root, pullback_mode="recursive").pullback(RMPFlow(root).pushforward(q, qd))[0]
    _close(f1, f2)
