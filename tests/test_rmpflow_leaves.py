"""Tests of manifold_rl.rmpflow.leaves: paper GDS leaves, Lula/RMP2 leaves, orientation, learned leaf,
and the RMPflow paper's 2-D point-robot example (gtrll/multi-robot-rmpflow ``rmp_example.py``)."""

import dataclasses

import numpy as np
import pytest
import torch

from manifold_rl.rmpflow import (
    AffineMap,
    AxisTargetParams,
    AxisTargetRMP,
    CollisionAvoidance,
    CollisionParams,
    CollisionRMP,
    CSpaceTargetParams,
    CSpaceTargetRMP,
    Damper,
    DampingParams,
    DampingRMP,
    FunctionMap,
    GDSLeaf,
    GoalAttractor,
    JointLimitBarrier,
    JointLimitParams,
    JointLimitRMP,
    JointVelocityCapParams,
    JointVelocityCapRMP,
    LearnedLeaf,
    OrientationTargetRMP,
    RMPFlow,
    RMPRoot,
    SphereDistanceMap,
    TargetParams,
    TargetRMP,
    joint_limit_map,
    lyapunov,
)
from manifolds.lie import so3_angle, so3_exp

D = torch.float64
GOAL = (-3.0, 3.0)


def point_flow(curvature="paper"):
    """The paper's 2-D example: goal attractor at (−3, 3) + barrier around the unit circle at 0."""
    root = RMPRoot(2)
    root.add_child(AffineMap(torch.eye(2, dtype=D), -torch.tensor(GOAL, dtype=D)), name="goal").add_leaf(
        GoalAttractor(2, curvature=curvature))
    root.add_child(SphereDistanceMap([0.0, 0.0], 1.0), name="obstacle").add_leaf(CollisionAvoidance(1, curvature=curvature))
    return RMPFlow(root, method="pinv")


def _solve_ivp(flow, x0, v0):
    from scipy.integrate import solve_ivp

    def rhs(t, s):
        q, qd = torch.tensor(s[None, :2]), torch.tensor(s[None, 2:])
        return np.concatenate([s[2:], flow(q, qd)[0].numpy()])

    sol = solve_ivp(rhs, [0.0, 40.0], np.array([*x0, *v0], dtype=float))  # RK45, default tolerances
    return sol


# ---------------------------------------------------------------------------------------------
# the paper's 2-D point robot (ref sheet §4.2 B1)
# ---------------------------------------------------------------------------------------------
def test_point_robot_paper_example_rk45_and_ablation():
    """Same integrator as the anchor (scipy RK45, default rtol 1e-3 / atol 1e-6, t ∈ [0, 40]): the
    original code ends 2.76e-3 from the goal with min centre distance 1.2450 after 356 RHS calls.
    Tolerance: 2 % on the final distance (set by the attractor's tol = 0.005), 1e-3 on the min distance."""
    sol = _solve_ivp(point_flow(), (2.5, -3.2), (-1.0, 1.0))
    xs = sol.y[:2]
    final = np.linalg.norm(xs[:, -1] - np.array(GOAL))
    dmin = np.linalg.norm(xs, axis=0).min()
    assert abs(final - 2.76e-3) < 0.06e-3, final
    assert abs(dmin - 1.2450) < 1e-3, dmin
    # ablation: without curvature terms the robot gets markedly closer to the obstacle (§4.2 B1)
    none = _solve_ivp(point_flow("none"), (2.5, -3.2), (-1.0, 1.0))
    c_none = np.linalg.norm(none.y[:2], axis=0).min() - 1
    assert c_none < 0.75 * (dmin - 1), (dmin - 1, c_none)


def test_point_robot_euler_anchor_and_batch():
    """Explicit Euler, dt = 0.01, 1999 steps from (2.5, −3.2), (−1, 1): the authors' code (float64)
    ends at (−2.689252, 2.254756). The other starts run in the same batch (batch = per-env checked)."""
    flow = point_flow()
    q = torch.tensor([[2.5, -3.2], [-2.0, -2.0], [2.0, -1.0]], dtype=D)
    qd = torch.tensor([[-1.0, 1.0], [2.3, 0.0], [1.0, 0.0]], dtype=D)
    a0 = flow(q, qd)
    per = torch.cat([flow(q[i:i + 1], qd[i:i + 1]) for i in range(3)])
    assert torch.allclose(a0, per, atol=1e-12)
    with torch.inference_mode():
        for _ in range(1999):
            a = flow(q, qd)
            q, qd = q + 0.01 * qd, qd + 0.01 * a
    assert torch.allclose(q[0], torch.tensor([-2.689252, 2.254756], dtype=D), atol=2e-6), q[0]
    assert (q.norm(dim=-1) > 1).all()


def test_point_robot_lyapunov_decreases():
    """The 2-D example is a GDS-only tree with η = 0 on the barrier: V is non-increasing (RK4 steps)."""
    flow = point_flow()
    q, qd = torch.tensor([[2.5, -3.2]], dtype=D), torch.tensor([[-1.0, 1.0]], dtype=D)
    V = [lyapunov(flow, q, qd).V.item()]
    h = 0.02
    for _ in range(50):
        k1q, k1v = qd, flow(q, qd)
        k2q, k2v = qd + h / 2 * k1v, flow(q + h / 2 * k1q, qd + h / 2 * k1v)
        k3q, k3v = qd + h / 2 * k2v, flow(q + h / 2 * k2q, qd + h / 2 * k2v)
        k4q, k4v = qd + h * k3v, flow(q + h * k3q, qd + h * k3v)
        q = q + h / 6 * (k1q + 2 * k2q + 2 * k3q + k4q)
        qd = qd + h / 6 * (k1v + 2 * k2v + 2 * k3v + k4v)
        V.append(lyapunov(flow, q, qd).V.item())
    dV = np.diff(V)
    assert (dV < 1e-8).all(), dV.max()
    assert V[-1] < 0.9 * V[0], (V[0], V[-1])


# ---------------------------------------------------------------------------------------------
# paper leaves: analytic vs autodiff / finite differences
# ---------------------------------------------------------------------------------------------
def test_barrier_analytic_curvature_matches_generic_autodiff():
    torch.manual_seed(0)
    leaf = CollisionAvoidance(3)
    x = 0.3 + torch.rand(5, 3, dtype=D)
    xd = torch.randn(5, 3, dtype=D)
    Xi, xi = leaf.curvature(x, xd)
    Xi_ad, xi_ad = GDSLeaf.curvature(leaf, x, xd)
    assert torch.allclose(Xi, Xi_ad, atol=1e-9) and torch.allclose(xi, xi_ad, atol=1e-9)
    # M = g + ½ ẋ w u' ≥ 0 (the paper's stability condition for the velocity-dependent metric)
    _, M = leaf(x, xd)
    assert (torch.diagonal(M, dim1=-2, dim2=-1) >= 0).all()
    assert torch.allclose(leaf.potential_grad(x), GDSLeaf.potential_grad(leaf, x), atol=1e-9)
    # the fused natural form equals the generic GDS assembly from the hooks (also without curvature)
    for conv in ("paper", "none"):
        lf = CollisionAvoidance(3, curvature=conv)
        f, M = lf(x, xd)
        f_g, M_g = GDSLeaf.natural(lf, x, xd)
        assert torch.allclose(f, f_g) and torch.allclose(M, M_g), conv


def test_goal_attractor_analytic_terms_match_autodiff():
    torch.manual_seed(1)
    leaf = GoalAttractor(2)
    x, xd = torch.randn(6, 2, dtype=D), torch.randn(6, 2, dtype=D)
    Xi, xi = leaf.curvature(x, xd)
    Xi_ad, xi_ad = GDSLeaf.curvature(leaf, x, xd)
    assert torch.allclose(xi, xi_ad, atol=1e-10) and torch.allclose(Xi, Xi_ad, atol=1e-12)
    # quadrature potential is consistent with the analytic gradient
    assert torch.allclose(GDSLeaf.potential_grad(leaf, x), leaf.potential_grad(x), atol=1e-9)
    for conv in ("paper", "none"):
        lf = GoalAttractor(2, curvature=conv)
        f, M = lf(x, xd)
        f_g, M_g = GDSLeaf.natural(lf, x, xd)
        assert torch.allclose(f, f_g) and torch.allclose(M, M_g), conv


def test_sphere_distance_map_modes():
    torch.manual_seed(2)
    m = SphereDistanceMap([[0.0, 0.0, 0.0], [1.0, -1.0, 0.5]], [0.5, 0.2])
    y, yd = torch.randn(4, 3, dtype=D) + 2, torch.randn(4, 3, dtype=D)
    a, f, fd = (m.evaluate(y, yd, mode) for mode in ("analytic", "forward", "fd"))
    assert torch.allclose(a.J, f.J, atol=1e-12) and torch.allclose(a.J, fd.J, atol=1e-8)
    m.exact_jdot = True
    ex = m.evaluate(y, yd, "forward")
    m_noan = SphereDistanceMap([[0.0, 0.0, 0.0], [1.0, -1.0, 0.5]], [0.5, 0.2])
    assert torch.allclose(a.Jdot_qd, m_noan._forward_all(y, yd)[2], atol=1e-7)
    assert torch.allclose(a.Jdot_qd, m_noan._fd_all(y, yd)[2], atol=1e-5)
    assert torch.allclose(ex.Jdot_qd, a.Jdot_qd)
    assert torch.allclose(SphereDistanceMap([0.0, 0.0], 1.0).psi(torch.tensor([[1.0, 1.0]], dtype=D)),
                          torch.tensor([[2 ** 0.5 - 1]], dtype=D))
    with pytest.raises(ValueError):
        SphereDistanceMap([0.0, 0.0], -1.0)
    with pytest.raises(ValueError):
        SphereDistanceMap([[0.0, 0.0]], [1.0, 2.0])


def test_damper_and_joint_limit_barrier_keep_joints_inside():
    lo, hi = torch.tensor([-1.0, -0.5], dtype=D), torch.tensor([1.0, 2.0], dtype=D)
    p = JointLimitBarrier(4).jl_params
    root = RMPRoot(2)
    root.add_child(joint_limit_map(lo, hi, scale=p.length_scale)).add_leaf(JointLimitBarrier(4))
    root.add_leaf(Damper(2))
    flow = RMPFlow(root)
    q, qd = torch.tensor([[0.5, 1.5]], dtype=D), torch.tensor([[3.0, 3.0]], dtype=D)
    qmax = q.clone()
    for _ in range(400):
        a = flow(q, qd)
        q, qd = q + 0.005 * qd, qd + 0.005 * a
        qmax = torch.maximum(qmax, q)
    assert (qmax < hi).all() and (q > lo).all(), qmax
    with pytest.raises(ValueError):
        joint_limit_map(hi, lo)
    with pytest.raises(ValueError):
        joint_limit_map(lo, hi, buffers=[-0.1, 0.0])


# ---------------------------------------------------------------------------------------------
# Lula / RMP2 leaves: formulas (ref sheet §2.2), hand-evaluated
# ---------------------------------------------------------------------------------------------
def _sig(z):
    return 1 / (1 + np.exp(-z))


def test_cspace_target_rmp_formula():
    p = CSpaceTargetParams()
    leaf = CSpaceTargetRMP(2, [0.1, -0.2], p)
    x = torch.tensor([[0.2, -0.1], [2.0, 1.0]], dtype=D)
    xd = torch.tensor([[0.5, 0.0], [0.0, -1.0]], dtype=D)
    a, M = leaf.canonical(x, xd)
    d0 = np.array([0.1, 0.1])
    assert np.allclose(a[0].numpy(), -100 * d0 - 50 * np.array([0.5, 0.0]))
    d1 = np.array([1.9, 1.2])
    assert np.allclose(a[1].numpy(), -100 * 0.5 * d1 / np.linalg.norm(d1) - 50 * np.array([0.0, -1.0]))
    assert torch.allclose(M, (0.005 + 1e-4) * torch.eye(2, dtype=D).expand(2, 2, 2))
    assert CSpaceTargetParams.lula().metric_scalar == 50.0


def test_joint_limit_rmp_formula():
    p = JointLimitParams()
    x = torch.tensor([[0.05, -0.01, 0.3]], dtype=D)
    xd = torch.tensor([[-0.2, 0.1, 0.02]], dtype=D)
    a, M = JointLimitRMP(3, p).canonical(x, xd)
    xc = np.maximum(x.numpy()[0], 0)
    v = xd.numpy()[0]
    m = (1 - _sig(v / 0.01)) * 0.1 / (xc / 0.01 + 0.001)
    acc = 1.0 / ((xc / 0.1) ** 2 + 0.01) - 200 * v
    assert np.allclose(torch.diagonal(M[0]).numpy(), m) and np.allclose(a[0].numpy(), acc)
    assert torch.count_nonzero(M[0] - torch.diag(torch.diagonal(M[0]))) == 0
    assert JointLimitParams.lula().metric_scalar == 1000.0


def test_joint_velocity_cap_rmp_formula():
    p = JointVelocityCapParams()
    xd = torch.tensor([[0.5, 1.6, -1.65, 3.0]], dtype=D)
    a, M = JointVelocityCapRMP(4, p).canonical(torch.zeros_like(xd), xd)
    c = 1.7 - 0.15
    for j, v in enumerate(xd[0].tolist()):
        delta = abs(v) - c
        if delta <= 0:
            assert a[0, j] == 0 and M[0, j, j] == 0
        else:
            assert np.isclose(a[0, j].item(), -abs(5 * delta) * np.sign(v))
            r = min(delta, 0.15 - 1e-6) / 0.15
            assert np.isclose(M[0, j, j].item(), 0.05 / (1 - r * r))
    with pytest.raises(ValueError):
        JointVelocityCapRMP(2, JointVelocityCapParams(max_velocity=0.1, velocity_damping_region=0.2))


def test_target_rmp_formula_and_metric_shape():
    p = TargetParams()
    g = torch.tensor([0.5, 0.0, 0.3], dtype=D)
    leaf = TargetRMP(3, g, p)
    x = torch.tensor([[0.0, 0.0, 0.3], [0.5, 0.001, 0.3]], dtype=D)
    xd = torch.tensor([[0.1, 0.2, 0.0], [0.0, 0.0, 0.0]], dtype=D)
    a, M = leaf.canonical(x, xd)
    delta = g.numpy() - x[0].numpy()
    d = np.linalg.norm(delta)
    assert np.allclose(a[0].numpy(), 50 * delta / (d + 0.075) - 70 * xd[0].numpy())
    n = delta / max(d, 0.0075)
    alpha = (1 - 0.03) * np.exp(-0.5 * (d / 0.05) ** 2) + 0.03
    Mref = alpha * 1.0 * np.eye(3) + (1 - alpha) * 0.5 * np.outer(n, n)
    beta = np.exp(-0.5 * (d / 0.02) ** 2)
    Mref = (beta * 3 + (1 - beta)) * Mref
    assert np.allclose(M[0].numpy(), Mref)
    ev_far = torch.linalg.eigvalsh(M[0])
    ev_near = torch.linalg.eigvalsh(M[1])
    assert ev_far[-1] / ev_far[0] > 10  # far: nearly rank-1 along the goal direction
    assert ev_near[-1] / ev_near[0] < 1.1  # near: isotropic
    assert TargetParams.lula().max_metric_scalar == 10000.0


def test_collision_rmp_formula():
    p = CollisionParams()
    x = torch.tensor([[0.02, 0.3, 0.7]], dtype=D)
    xd = torch.tensor([[-0.1, 0.05, -0.3]], dtype=D)
    a, M = CollisionRMP(3, p).canonical(x, xd)
    xv, v = x.numpy()[0], xd.numpy()[0]
    gate = np.where(xv <= 0.5, (1 - xv / 0.5) ** 2, 0.0)
    s = _sig(v / 0.01)
    m = (1 - s) * 1.0 / (xv / 0.02 + 0.001) * gate
    acc = 800 * np.exp(-xv / 0.01) - (1 - s) * 50 * v / (xv / 0.04 + 0.01)
    assert np.allclose(torch.diagonal(M[0]).numpy(), m) and np.allclose(a[0].numpy(), acc)
    assert M[0, 2, 2] == 0  # beyond the modulation radius
    assert CollisionParams.lula().metric_scalar == 10000.0


def test_damping_rmp_formula():
    xd = torch.tensor([[0.3, -0.4]], dtype=D)
    a, M = DampingRMP(2, DampingParams()).canonical(torch.zeros_like(xd), xd)
    assert torch.allclose(a, -30 * 0.5 * xd)
    assert torch.allclose(M, (0.005 * 0.5 + 0.3) * torch.eye(2, dtype=D).unsqueeze(0))


def test_parameter_dataclasses_documented_and_validated():
    for cls in (CSpaceTargetParams, JointLimitParams, JointVelocityCapParams, TargetParams, CollisionParams,
                DampingParams, AxisTargetParams):
        assert dataclasses.is_dataclass(cls) and cls.__doc__
    with pytest.raises(ValueError):
        CollisionRMP(1, CollisionParams(metric_modulation_radius=-0.1))
    with pytest.raises(ValueError):
        TargetRMP(3, torch.zeros(2))
    with pytest.raises(ValueError):
        CSpaceTargetRMP(2, torch.zeros(3))
    with pytest.raises(ValueError):
        TargetRMP(3, torch.zeros(3))(torch.zeros(1, 2, dtype=D), torch.zeros(1, 2, dtype=D))


def test_lula_leaves_on_a_flow_batch_and_float32():
    """A small c-space tree with all Lula leaves: batch = per-env, float32 ≈ float64, finite."""
    torch.manual_seed(3)
    n = 3
    lo, hi = -torch.ones(n, dtype=D), torch.ones(n, dtype=D)
    root = RMPRoot(n)
    root.add_leaf(CSpaceTargetRMP(n, torch.zeros(n)))
    root.add_leaf(DampingRMP(n))
    root.add_leaf(JointVelocityCapRMP(n))
    root.add_child(joint_limit_map(lo, hi, buffers=[0.01] * n)).add_leaf(JointLimitRMP(2 * n))
    ee = root.add_child(FunctionMap(lambda q: torch.stack([torch.cos(q[:, 0]) + torch.cos(q[:, 0] + q[:, 1]),
                                                           torch.sin(q[:, 0]) + torch.sin(q[:, 0] + q[:, 1]),
                                                           q[:, 2]], -1), n, 3))
    ee.add_leaf(TargetRMP(3, [1.0, 1.0, 0.0]))
    ee.add_child(SphereDistanceMap([[1.5, 0.0, 0.0], [0.0, 1.5, 0.0]], [0.2, 0.2])).add_leaf(CollisionRMP(2))
    flow = RMPFlow(root)
    q, qd = 0.5 * torch.randn(4, n, dtype=D), 2 * torch.randn(4, n, dtype=D)
    a = flow(q, qd)
    assert torch.isfinite(a).all()
    per = torch.cat([flow(q[i:i + 1], qd[i:i + 1]) for i in range(4)])
    assert torch.allclose(a, per, atol=1e-10)
    a32 = flow(q.float(), qd.float())
    assert a32.dtype == torch.float32 and torch.allclose(a32.double(), a, rtol=1e-3, atol=1e-3 * a.abs().max())


# ---------------------------------------------------------------------------------------------
# orientation
# ---------------------------------------------------------------------------------------------
def _rot_map():
    return FunctionMap(lambda w: so3_exp(w).reshape(w.shape[0], 9), 3, 9, jacobian_mode="fd")


def test_orientation_target_converges_on_so3():
    target = so3_exp(torch.tensor([0.4, -1.0, 0.7], dtype=D))
    root = RMPRoot(3)
    leaf = OrientationTargetRMP(target, AxisTargetParams(accel_p_gain=20.0, accel_d_gain=9.0))
    root.add_child(_rot_map()).add_leaf(leaf)
    root.add_leaf(DampingRMP(3, DampingParams(accel_d_gain=0.0, metric_scalar=0.0, inertia=1e-3)))
    flow = RMPFlow(root, method="solve", reg=1e-9)
    q = torch.tensor([[0.1, 0.2, -0.3], [2.0, 0.5, 0.1]], dtype=D)
    qd = torch.zeros_like(q)
    err0 = so3_angle(so3_exp(q).transpose(-1, -2) @ target)
    for _ in range(250):
        a = flow(q, qd)
        q, qd = q + 0.012 * qd, qd + 0.012 * a
    err = so3_angle(so3_exp(q).transpose(-1, -2) @ target)
    assert (err0 > 1.0).all() and (err < 1e-2).all(), err
    with pytest.raises(ValueError):
        OrientationTargetRMP(2 * torch.eye(3))


def test_orientation_acceleration_is_tangent():
    """R̈ from the leaf equals d²/dt² of R exp(t hat ω) + R hat(α): Rᵀ R̈ − (Rᵀ R̈)ᵀ-part check via
    the constraint d²/dt²(RᵀR) = 0 ⇒ RᵀR̈ + 2ṘᵀṘ + R̈ᵀR = 0."""
    torch.manual_seed(4)
    w = torch.randn(3, 3, dtype=D)
    rot = _rot_map()
    rot.jacobian_mode = "forward"
    out = rot(w, torch.randn(3, 3, dtype=D))
    leaf = OrientationTargetRMP(torch.eye(3, dtype=D))
    a, M = leaf.canonical(out.x, out.xd)
    R, Rd, Rdd = out.x.reshape(3, 3, 3), out.xd.reshape(3, 3, 3), a.reshape(3, 3, 3)
    cons = R.transpose(1, 2) @ Rdd + 2 * Rd.transpose(1, 2) @ Rd + Rdd.transpose(1, 2) @ R
    assert cons.abs().max() < 1e-10


def test_axis_target_aligns_axis():
    root = RMPRoot(3)
    zmap = FunctionMap(lambda w: so3_exp(w)[:, :, 2], 3, 3, jacobian_mode="fd")
    target = torch.tensor([1.0, 1.0, 0.0], dtype=D) / 2 ** 0.5
    root.add_child(zmap).add_leaf(AxisTargetRMP(target, AxisTargetParams(accel_p_gain=20.0, accel_d_gain=9.0)))
    root.add_leaf(DampingRMP(3, DampingParams(accel_d_gain=1.0, metric_scalar=0.0, inertia=1e-3)))
    flow = RMPFlow(root, method="solve", reg=1e-9)
    q, qd = torch.tensor([[0.2, -0.1, 0.3]], dtype=D), torch.zeros(1, 3, dtype=D)
    for _ in range(250):
        a = flow(q, qd)
        q, qd = q + 0.012 * qd, qd + 0.012 * a
    z = so3_exp(q)[0, :, 2]
    assert torch.dot(z, target) > 1 - 1e-4
    with pytest.raises(ValueError):
        AxisTargetRMP(torch.zeros(3))


# ---------------------------------------------------------------------------------------------
# learned leaf
# ---------------------------------------------------------------------------------------------
def test_learned_leaf_psd_and_imitation():
    torch.manual_seed(5)
    leaf = LearnedLeaf(2, hidden=(32,)).double()
    x, xd = torch.randn(128, 2, dtype=D), torch.randn(128, 2, dtype=D)
    _, M = leaf.canonical(x, xd)
    assert torch.allclose(M, M.transpose(1, 2))
    assert torch.linalg.eigvalsh(M).min() > 0
    teacher = GoalAttractor(2)
    a_t, _ = teacher.canonical(x, xd)
    opt = torch.optim.Adam(leaf.parameters(), lr=2e-2)

    def loss_fn():
        return (leaf.canonical(x, xd)[0] - a_t).square().mean()

    l0 = loss_fn().item()
    for _ in range(100):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert loss_fn().item() < 0.2 * l0
    # gradients reach the learned leaf through a whole flow
    root = RMPRoot(2)
    root.add_child(AffineMap(torch.eye(2, dtype=D))).add_leaf(leaf)
    leaf.zero_grad()
    RMPFlow(root)(x[:4], xd[:4]).sum().backward()
    assert all(p.grad is not None for p in leaf.parameters())
    with pytest.raises(ValueError):
        LearnedLeaf(0)
