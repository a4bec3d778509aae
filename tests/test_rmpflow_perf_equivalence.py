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


# ----------------------------------------------------------------------------------------------
# hot-path rewrites (control-step target) against the textbook formulas they replaced
# ----------------------------------------------------------------------------------------------
def _ref_collision(p, x, xd):
    x = (x - p.margin).clamp_min(0.0)
    r = p.metric_modulation_radius
    gate = (1 - x / r).clamp_min(0.0) ** 2
    s1 = 1 - torch.sigmoid(xd / p.damping_velocity_gate_length_scale)
    m = s1 * p.metric_scalar / (x / p.metric_exploder_std_dev + p.metric_exploder_eps) * gate
    a = p.repulsion_gain * torch.exp(-x / p.repulsion_std_dev) - s1 * p.damping_gain * xd / (x / p.damping_std_dev + p.damping_robustness_eps)
    return a, m


def _ref_joint_limit(p, x, xd):
    x = x.clamp_min(0.0)
    m = (1 - torch.sigmoid(xd / p.metric_velocity_gate_length_scale)) * p.metric_scalar / (x / p.metric_length_scale + p.metric_exploder_eps)
    a = p.accel_potential_gain / ((x / p.accel_potential_exploder_length_scale) ** 2 + p.accel_potential_exploder_eps) - p.accel_damper_gain * xd
    return a, m


def _ref_velocity_cap(p, x, xd):
    vr = p.velocity_damping_region
    c = p.max_velocity - vr
    delta = xd.abs() - c
    active = delta > 0
    a = -(p.damping_gain * delta).abs() * torch.sign(xd)
    r = delta.clamp_max(vr - 1e-6) / vr
    m = p.metric_weight / (1 - r * r)
    zero = torch.zeros_like(xd)
    return torch.where(active, a, zero), torch.where(active, m, zero)


def _ref_cspace(p, target, x, xd):
    d = x - target
    nrm = d.norm(dim=-1, keepdim=True)
    far = -p.position_gain * p.robust_position_term_thresh * d / nrm.clamp_min(torch.finfo(x.dtype).tiny)
    a = torch.where(nrm < p.robust_position_term_thresh, -p.position_gain * d, far) - p.damping_gain * xd
    return a, (p.metric_scalar + p.inertia) * torch.eye(x.shape[1], dtype=x.dtype).expand(x.shape[0], -1, -1)


def _ref_damping(p, x, xd):
    v = xd.norm(dim=-1, keepdim=True)
    return -p.accel_d_gain * v * xd, (p.metric_scalar * v + p.inertia).unsqueeze(-1) * torch.eye(x.shape[1], dtype=x.dtype)


def _ref_target(p, goal, x, xd):
    delta = goal - x
    d = delta.norm(dim=-1, keepdim=True)
    a = p.accel_p_gain * delta / (d + p.accel_norm_eps) - p.accel_d_gain * xd
    nh = delta / d.clamp_min(p.accel_norm_eps / 10)
    S = nh.unsqueeze(-1) * nh.unsqueeze(-2)
    alpha = ((1 - p.min_metric_alpha) * torch.exp(-0.5 * (d / p.metric_alpha_length_scale) ** 2) + p.min_metric_alpha).unsqueeze(-1)
    M = alpha * p.max_metric_scalar * torch.eye(3, dtype=x.dtype) + (1 - alpha) * p.min_metric_scalar * S
    beta = torch.exp(-0.5 * (d / p.proximity_metric_boost_length_scale) ** 2).unsqueeze(-1)
    return a, (beta * p.proximity_metric_boost_scalar + (1 - beta)) * M


def _natural(a, M):
    return (M @ a.unsqueeze(-1)).squeeze(-1), M


@pytest.mark.parametrize("lula", [False, True])
def test_hot_path_leaves_equal_reference_formulas(lula):
    from manifold_rl.rmpflow import CSpaceTargetParams, DampingParams, JointLimitParams, TargetParams
    g = torch.Generator().manual_seed(3)
    B, m = 64, 14
    # distances spanning negative, inside the modulation radius and beyond; velocities of both signs incl. 0
    x = torch.rand(B, m, generator=g, dtype=D64) * 0.8 - 0.05
    xd = 2.5 * torch.randn(B, m, generator=g, dtype=D64)
    xd[0] = 0.0
    cp = CollisionParams.lula() if lula else CollisionParams(margin=0.01)
    leaf = CollisionRMP(m, cp)
    fa, ma = _ref_collision(cp, x, xd)
    f, M = leaf(x, xd)
    _close(f, ma * fa)
    _close(M, torch.diag_embed(ma))
    _close(leaf.natural_diag_stacked(x, xd)[0], ma * fa)
    jp = JointLimitParams.lula() if lula else JointLimitParams()
    fa, ma = _ref_joint_limit(jp, x, xd)
    f, M = JointLimitRMP(m, jp)(x, xd)
    _close(f, ma * fa)
    _close(M, torch.diag_embed(ma))
    vp = JointVelocityCapParams.lula() if lula else JointVelocityCapParams()
    xdv = 1.3 * vp.max_velocity * (2 * torch.rand(B, m, generator=g, dtype=D64) - 1)
    fa, ma = _ref_velocity_cap(vp, x, xdv)
    f, M = JointVelocityCapRMP(m, vp)(x, xdv)
    _close(f, ma * fa)
    _close(M, torch.diag_embed(ma))
    assert bool((ma > 0).any()) and bool((ma == 0).any())  # both branches exercised
    q, qd = _state(B=B)
    tq = FrankaPanda().default_q
    q[:3] = tq + 0.01  # ‖δ‖ < θ branch
    cs = CSpaceTargetParams.lula() if lula else CSpaceTargetParams()
    leaf = CSpaceTargetRMP(7, tq, cs).to(D64)
    fr, Mr = _natural(*_ref_cspace(cs, tq, q, qd))
    f, m_ = leaf.natural_diag(q, qd)
    _close(f, fr)
    _close(torch.diag_embed(m_), Mr)
    dp = DampingParams.lula() if lula else DampingParams()
    fr, Mr = _natural(*_ref_damping(dp, q, qd))
    f, m_ = DampingRMP(7, dp).natural_diag(q, qd)
    _close(f, fr)
    _close(torch.diag_embed(m_), Mr)
    tp = TargetParams.lula() if lula else TargetParams()
    goal = torch.tensor([0.5, 0.1, 0.4], dtype=D64)
    y = goal + torch.randn(B, 3, generator=g, dtype=D64) * torch.logspace(-4, 0, B, dtype=D64).unsqueeze(-1)
    y[0] = goal  # d = 0
    yd = torch.randn(B, 3, generator=g, dtype=D64)
    fr, Mr = _natural(*_ref_target(tp, goal, y, yd))
    f, M = TargetRMP(3, goal, tp).to(D64)(y, yd)
    _close(f, fr)
    _close(M, Mr)


def _sphere_flow(obstacles, fuse=True, params=None):
    robot = FrankaPanda()
    root = RMPRoot(7)
    cp = root.add_child(robot.control_point_map())
    K = cp.task_map.num_points
    leaves = []
    for i, ob in enumerate(obstacles):
        leaves.append(cp.add_child(ObstacleDistanceMap(ob, robot.sphere_radii)).add_leaf(
            CollisionRMP(K, (params or {}).get(i, CollisionParams(metric_scalar=3.0)))))
    root.add_child(robot.end_effector_map()).add_leaf(TargetRMP(3, torch.tensor([0.5, 0.2, 0.5], dtype=D64)))
    root.add_child(joint_limit_map(robot.q_min, robot.q_max)).add_leaf(JointLimitRMP(14))
    root.add_leaf(DampingRMP(7))
    return RMPFlow(root, fuse_siblings=fuse).to(D64), root, leaves


@pytest.mark.parametrize("kind", ["spheres", "per_env_spheres", "mixed"])
def test_sibling_fusion_equals_unfused(kind):
    B = 6
    q, qd = _state(B=B, seed=2)
    g = torch.Generator().manual_seed(5)
    if kind == "spheres":
        obs = [Sphere([0.5, 0.0, 0.4], 0.1), Sphere([0.3, 0.3, 0.6], 0.08), Sphere([0.4, -0.2, 0.2], 0.05)]
    elif kind == "per_env_spheres":
        obs = [Sphere(torch.tensor([0.5, 0.0, 0.4], dtype=D64) + 0.05 * torch.randn(B, 3, generator=g, dtype=D64),
                      0.05 + 0.05 * torch.rand(B, generator=g, dtype=D64)),
               Sphere([0.3, 0.3, 0.6], 0.08)]
    else:
        obs = [Sphere([0.5, 0.0, 0.4], 0.1), Box([0.4, -0.3, 0.3], [0.05, 0.1, 0.2]), Sphere([0.3, 0.3, 0.6], 0.08)]
    fused, root, _ = _sphere_flow(obs)
    assert len(fused._topology()[5]) == 1  # one group of len(obs) siblings
    plain = RMPFlow(root, fuse_siblings=False)
    rec = RMPFlow(root, pullback_mode="recursive")
    st = fused.pushforward(q, qd)
    st0 = plain.pushforward(q, qd)
    for o1, o0 in zip(st.outputs[1:], st0.outputs[1:]):
        _close(o1.x, o0.x)
        _close(o1.xd, o0.xd)
        _close(o1.J, o0.J)
        _close(o1.Jdot_qd, o0.Jdot_qd)
    f1, M1 = fused.pullback(st)
    f0, M0 = plain.pullback(st0)
    f2, M2 = rec.pullback(rec.pushforward(q, qd))
    for a in (f0, f2):
        _close(f1, a)
    for a in (M0, M2):
        _close(M1, a)
    _close(fused(q, qd), plain(q, qd))
    for b in range(B):  # batch equals per environment (per-environment obstacles sliced accordingly)
        if kind == "per_env_spheres":
            break
        _close(fused(q[b:b + 1], qd[b:b + 1]), fused(q, qd)[b:b + 1])


def test_sibling_fusion_follows_parameter_and_obstacle_changes():
    q, qd = _state(B=3, seed=4)
    obs = [Sphere([0.5, 0.0, 0.4], 0.1), Sphere([0.3, 0.3, 0.6], 0.08)]
    fused, root, leaves = _sphere_flow(obs)
    plain = RMPFlow(root, fuse_siblings=False)
    with torch.inference_mode():
        fused(q, qd)  # populate the memoised stacked obstacle constants
    obs[1].center.add_(0.05)  # moved in place
    _close(fused(q, qd), plain(q, qd))
    obs[0].center = torch.tensor([0.45, 0.05, 0.35], dtype=D64)  # replaced
    _close(fused(q, qd), plain(q, qd))
    assert fused.pushforward(q, qd).groups  # one group
    before = fused(q, qd)
    leaves[1].params.repulsion_gain = 50.0  # leaf keys now differ: the pullback evaluates them separately
    after = fused(q, qd)
    assert (after - before).abs().max() > 1e-6
    _close(after, plain(q, qd))


def test_inference_mode_first_then_autograd():
    """Memoised constants (FK table, identities, masks, stacked obstacles) must not be inference tensors."""
    from manifold_rl.rmpflow import core, leaves
    from manifold_rl.rmpflow.robots import franka
    for fn in (franka._fk_constants, franka._levi_civita, core.constant_eye, core.constant_scalar, leaves._skew_index):
        fn.cache_clear()  # as in a fresh process: the first call below builds them under inference mode
    flow, _, _ = _sphere_flow([Sphere([0.5, 0.0, 0.4], 0.1), Sphere([0.3, 0.3, 0.6], 0.08)])
    rot = flow.root.add_child(FrankaPanda().orientation_map())
    rot.add_leaf(OrientationTargetRMP(torch.eye(3, dtype=D64)))
    q, qd = _state(B=1)
    for dt in (D64, torch.float32):
        with torch.inference_mode():
            ref = flow(q.to(dt), qd.to(dt))
            qi, qdi = q.to(dt) + 0, qd.to(dt) + 0  # inference tensors (no version counter)
            assert qi.is_inference()
            _close(flow(qi, qdi).double(), ref.double())
        qq = q.detach().to(dt).clone().requires_grad_(True)
        flow(qq, qd.to(dt)).square().sum().backward()
        assert torch.isfinite(qq.grad).all()
    with torch.inference_mode():  # obstacles built in inference mode
        fl2, _, _ = _sphere_flow([Sphere(torch.tensor([0.5, 0.0, 0.4], dtype=D64) + 0, 0.1), Sphere([0.3, 0.3, 0.6], 0.08)])
        plain = RMPFlow(fl2.root, fuse_siblings=False)
        _close(fl2(q, qd), plain(q, qd))


def test_lazy_affine_and_slice_outputs_equal_generic_path():
    from manifold_rl.rmpflow import SliceMap
    from manifold_rl.rmpflow.core import TaskMap
    q, qd = _state(B=4)
    for m in (joint_limit_map(FrankaPanda().q_min, FrankaPanda().q_max, scale=0.1).to(D64), SliceMap(7, [1, 2, 3]),
              SliceMap(7, [5, 0, 3])):
        out = m(q, qd)
        ref = TaskMap._evaluate(m, q, qd, "analytic")  # psi, jacobian, jdot_qd, xd = J qd
        _close(out.x, ref.x)
        _close(out.xd, ref.xd)
        _close(out.J, ref.J)
        _close(out.Jdot_qd, ref.Jdot_qd)
    # float64 buffers used from float32 inputs: the memoised cast follows in-place changes of A
    m = joint_limit_map(FrankaPanda().q_min, FrankaPanda().q_max)
    qf, qdf = q.float(), qd.float()
    for _ in range(2):
        out = m(qf, qdf)
        assert out.x.dtype == torch.float32
        assert (out.x - (q @ m.A.T + m.b).float()).abs().max() < 1e-5
    m.A.mul_(2.0)
    assert (m(qf, qdf).xd - (qd @ m.A.T).float()).abs().max() < 1e-5


def test_damped_resolve_equals_reference_formula():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(5, 7, 7, generator=g, dtype=D64)
    M = A @ A.transpose(1, 2) * torch.logspace(-3, 4, 5, dtype=D64).reshape(-1, 1, 1)
    f = torch.randn(5, 7, generator=g, dtype=D64)
    flow = RMPFlow(RMPRoot(7))
    s = (0.01 * M.abs().amax(dim=(-2, -1))).clamp_min(1.0)
    ref = torch.linalg.solve(M + (s * 1e-3).reshape(-1, 1, 1) * torch.eye(7, dtype=D64), f.unsqueeze(-1)).squeeze(-1)
    _close(flow.resolve(f, M), ref)
    ref0 = torch.linalg.solve(M + 1e-3 * torch.eye(7, dtype=D64), f.unsqueeze(-1)).squeeze(-1)
    _close(RMPFlow(RMPRoot(7), method="solve").resolve(f, M), ref0)


def test_rotation_log_closed_form_equals_so3_log():
    from manifold_rl.rmpflow.leaves import _rotation_log
    from manifolds.lie import so3_exp, so3_log
    g = torch.Generator().manual_seed(0)
    w = torch.randn(600, 3, generator=g, dtype=D64)
    ang = torch.cat([torch.logspace(-12, 0.49, 200, dtype=D64), torch.linspace(0, math.pi - 1e-6, 200, dtype=D64),
                     math.pi - torch.logspace(-9, -1, 200, dtype=D64)])  # near 0, whole range, near π
    w = w / w.norm(dim=-1, keepdim=True) * ang[:, None]
    R = so3_exp(w)
    _close(_rotation_log(R), so3_log(R))
    _close(_rotation_log(R), w)
    assert _rotation_log(torch.eye(3, dtype=D64)[None]).abs().max() == 0
    q = torch.zeros(2, 3, dtype=D64, requires_grad=True)  # finite gradient at the identity
    _rotation_log(so3_exp(q)).sum().backward()
    _close(q.grad, torch.ones(2, 3, dtype=D64))


def test_orientation_leaf_equals_reference_formula():
    from manifolds.lie import hat, so3_exp, so3_log, vee
    g = torch.Generator().manual_seed(1)
    leaf = OrientationTargetRMP(so3_exp(torch.randn(3, generator=g, dtype=D64))).to(D64)
    B = 64
    x = so3_exp(torch.randn(B, 3, generator=g, dtype=D64) * 1.5).reshape(B, 9)  # errors up to and beyond 120°
    xd = torch.randn(B, 9, generator=g, dtype=D64)
    for prox in (None, 0.2 * torch.rand(B, generator=g, dtype=D64)):
        leaf.set_proximity(prox)
        p = leaf.params
        R = x.reshape(B, 3, 3)
        Rt = R.transpose(1, 2)
        W = Rt @ xd.reshape(B, 3, 3)
        om = vee(0.5 * (W - W.transpose(1, 2)))
        al = p.accel_p_gain * so3_log(Rt @ leaf.target) - p.accel_d_gain * om
        Rdd = (R @ (hat(al) + hat(om) @ hat(om))).reshape(B, 9)
        Mr = p.metric_scalar * leaf._boost(x) * torch.eye(9, dtype=D64)
        fr = (Mr @ Rdd.unsqueeze(-1)).squeeze(-1)
        f, M = leaf(x, xd)
        _close(f, fr)
        _close(M, Mr)
        fd, md = leaf.natural_diag(x, xd)
        _close(fd, fr)
        _close(torch.diag_embed(md), Mr)


def test_cached_plan_follows_tree_edits():
    q, qd = _state(B=2, seed=6)
    flow, root = _franka_flow()
    a = flow(q, qd)
    root.leaves[0] = DampingRMP(7)  # replace the c-space target leaf in place (same list length)
    b = flow(q, qd)
    _close(b, RMPFlow(root)(q, qd))
    assert (a - b).abs().max() > 1e-6
    root.add_leaf(DampingRMP(7))  # append
    _close(flow(q, qd), RMPFlow(root)(q, qd))
    root.children_nodes[-1].task_map = joint_limit_map(FrankaPanda().q_min, FrankaPanda().q_max, scale=0.5)
    _close(flow(q, qd), RMPFlow(root)(q, qd))
