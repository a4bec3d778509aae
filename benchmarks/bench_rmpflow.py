"""RMPflow benchmarks (issue 7 §6): the paper's 2-D example, planar and Franka reaching, the
reaching-through-clutter protocol against an OSC potential-field baseline, and control-step timing.

    python benchmarks/bench_rmpflow.py --parts a,b,c,d,e            # everything, full N
    python benchmarks/bench_rmpflow.py --parts b,c --n-planar 20 --n-franka 10 --quick   # smoke

Every part appends one JSON line per result row to ``--jsonl`` (default ``benchmarks/rmpflow.jsonl``)
as soon as it finishes and prints a markdown table. Seeds are fixed (``--seed``, default 0); the scene
generators are the functions ``planar_scenes``, ``franka_scenes`` and ``clutter_scenes`` below.

Parts
-----
(a) The RMPflow paper's 2-D point robot (Cheng et al. 2018, Fig. 3; gtrll ``rmp_example.py``): goal
    (−3, 3), unit disc at the origin, goal attractor (w_u 10, w_l 1, σ 1, α 1, η 2, tol 0.005), barrier
    (ε 0.2, α 1e-5, η 0), integrated with scipy RK45 (default tolerances, t ∈ [0, 40]) exactly as the
    authors' code; reference anchors 2.76e-3 / 1.2450 (ref sheet §4.2 B1). Ablation: no curvature terms
    (ξ = Ξ = 0), RK45 with max_step 0.05, min clearance and "osc" = sign changes of the radial velocity
    while within 0.5 of the surface. Symmetric start (3, −3) heading at the centre: a saddle (stalls).
(b) Planar 3-link arm (links 0.25 m, 5 collision points per link of radius 0.025 m) among 3 discs —
    RMP2 ``ThreeLinkEnv`` replica, see :func:`planar_scenes`; RMP2 leaves (target, collision, velocity
    cap 1 rad/s, damping) with RMP2 ``franka_config.yaml`` parameters; 240 Hz Euler, policy at 80 Hz
    (action repeat 3), 7.5 s horizon.
(c) Franka among 3 random balls — RMP2 ``FrankaEnv`` replica (:func:`franka_scenes`), RMP2 leaves incl.
    joint limits / velocity cap / c-space target, same integration; anchor 95 % / 0 % / 2.9 s.
(d) Reaching through clutter (RMPflow App. E protocol, Franka instead of YuMi; :func:`clutter_scenes`):
    6 layouts × 20 targets behind the obstacles, 5 s timeout; RMPflow (RMP2 leaves) vs an operational-
    space potential-field baseline "PF-basic" at the paper's (obstacle, c-space) weights (3, 10),
    (5, 50), (10, 100): the same tree with every metric replaced by a constant isotropic one
    (RMPflow with constant task metrics = OSC), see :func:`pf_flow`.
(e) Control-step time (one ``flow(q, q̇)`` call = pushforward + leaves + pullback + resolve) on one CPU
    thread, Franka with 3 ball obstacles, batch 1 / 100 / 1000, float32 / float64: median wall time
    (``time.perf_counter``) and median CPU time of the calling thread (``time.thread_time``; less
    sensitive to other jobs on the machine, though not immune: shared cores and caches still slow it),
    with a reference op (a 128 × 128 float64 matmul) timed in the same run and the 1-min load average.

Success in (b), (c): final end-effector distance ≤ 1 cm and never in collision; time to goal: first
time within 5 cm (as the ref-sheet anchors B3/B4). In (d): time to 1 cm (the run stops there).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from manifold_rl.rmpflow import (  # noqa: E402
    AffineMap,
    Box,
    CollisionAvoidance,
    CollisionParams,
    CollisionRMP,
    CSpaceTargetParams,
    CSpaceTargetRMP,
    DampingParams,
    DampingRMP,
    FrankaPanda,
    GoalAttractor,
    JointLimitParams,
    JointLimitRMP,
    JointVelocityCapParams,
    JointVelocityCapRMP,
    KinematicSim,
    Leaf,
    LinkPointMap,
    ObstacleDistanceMap,
    PlanarArm,
    RMPFlow,
    RMPRoot,
    SliceMap,
    Sphere,
    SphereDistanceMap,
    TargetParams,
    TargetRMP,
    franka_fk,
    joint_limit_map,
)
from manifold_rl.rmpflow.robots.franka import FRANKA_FLANGE_TO_TCP  # noqa: E402
from manifold_rl.rmpflow.robots.planar import PlanarPointMap  # noqa: E402

D64 = torch.float64
RMP2_JOINT_LIMIT_BUFFERS = (0.01, 0.03, 0.01, 0.01, 0.01, 0.01, 0.01)  # RMP2 franka_config.yaml


def emit(path, row):
    row = dict(row)
    row["date"] = datetime.date.today().isoformat()
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")


def table(rows, cols):
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        out = []
        for c in cols:
            v = r.get(c, "")
            out.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        print("| " + " | ".join(out) + " |")
    print()


# ==============================================================================================
# (a) the paper's 2-D point robot
# ==============================================================================================
GOAL2 = (-3.0, 3.0)


def point_flow(curvature: str = "paper") -> RMPFlow:
    """Goal attractor at (−3, 3) + barrier around the unit disc (as tests/test_rmpflow_leaves.py)."""
    root = RMPRoot(2)
    root.add_child(AffineMap(torch.eye(2, dtype=D64), -torch.tensor(GOAL2, dtype=D64)), name="goal").add_leaf(
        GoalAttractor(2, curvature=curvature))
    root.add_child(SphereDistanceMap([0.0, 0.0], 1.0), name="obstacle").add_leaf(
        CollisionAvoidance(1, curvature=curvature))
    return RMPFlow(root, method="pinv")


def point_run(flow, x0, v0, max_step=None):
    from scipy.integrate import solve_ivp

    def rhs(t, s):
        q, qd = torch.tensor(s[None, :2]), torch.tensor(s[None, 2:])
        with torch.no_grad():
            return np.concatenate([s[2:], flow(q, qd)[0].numpy()])

    kw = {} if max_step is None else {"max_step": max_step}
    sol = solve_ivp(rhs, [0.0, 40.0], np.array([*x0, *v0], dtype=float), **kw)
    x, v = sol.y[:2], sol.y[2:]
    r = np.linalg.norm(x, axis=0)
    rdot = (x * v).sum(0) / r
    near = r - 1 < 0.5
    s = np.sign(rdot[near])
    osc = int((s[1:] * s[:-1] < 0).sum()) if s.size > 1 else 0
    return dict(final_goal_dist=float(np.linalg.norm(x[:, -1] - np.array(GOAL2))), min_center_dist=float(r.min()),
                min_clearance=float(r.min() - 1), path_length=float(np.linalg.norm(np.diff(x, axis=1), axis=0).sum()),
                osc=osc, nfev=int(sol.nfev))


def part_a(args):
    rows = []
    full, none = point_flow("paper"), point_flow("none")
    r = point_run(full, (2.5, -3.2), (-1.0, 1.0))
    rows.append(dict(part="a", case="paper start, RK45 default tol", variant="full RMPflow", **r,
                     anchor="final 2.76e-3, min centre 1.2450, nfev 356 (gtrll)"))
    for x0 in [(2.5, -3.2), (3.0, -3.0)]:
        for name, fl in (("full RMPflow", full), ("no curvature (ξ=Ξ=0)", none)):
            r = point_run(fl, x0, (-1.0, 1.0), max_step=0.05)
            anchor = {((2.5, -3.2), "full RMPflow"): "clear .245, len 9.15, osc 3",
                      ((2.5, -3.2), "no curvature (ξ=Ξ=0)"): "clear .126, len 10.23, osc 5",
                      ((3.0, -3.0), "full RMPflow"): "clear .243, osc 13, final err 5.6 (stall)",
                      ((3.0, -3.0), "no curvature (ξ=Ξ=0)"): "clear .127, osc 15"}[(x0, name)]
            rows.append(dict(part="a", case=f"start {x0}, v0 (-1, 1), max_step 0.05", variant=name, **r, anchor=anchor))
    for row in rows:
        emit(args.jsonl, row)
    table(rows, ["case", "variant", "final_goal_dist", "min_center_dist", "min_clearance", "path_length", "osc", "nfev", "anchor"])
    return rows


# ==============================================================================================
# leaves used by the baselines
# ==============================================================================================
class ConstantMetric(Leaf):
    """Wrap a canonical-form leaf: keep its acceleration ``a``, replace its metric by ``w I``.

    With every leaf constant-metric, the RMPflow resolve ``q̈ = (Σ w_i J_iᵀJ_i)⁻¹ Σ w_i J_iᵀ(a_i − J̇_i q̇)``
    is operational-space control with fixed task weights (the potential-field baselines of RMPflow App. E).
    """

    def __init__(self, leaf: Leaf, weight: float):
        super().__init__()
        self.inner, self.weight = leaf, float(weight)

    def natural(self, x, xd):
        a, _ = self.inner.canonical(x, xd)
        f = self.weight * a
        M = self.weight * torch.eye(x.shape[1], dtype=x.dtype, device=x.device).expand(x.shape[0], -1, -1)
        return f, M


class IsotropicRepulsion(Leaf):
    """PF-basic obstacle term on the stacked body control points ``(B, 3K)``: isotropic metric ``w I_3`` of
    constant weight on every control point inside the influence distance ρ of some obstacle (Khatib's
    potential-field ρ₀; 0 outside — a constant metric on all 23 body points would demand zero body
    acceleration far from obstacles and freeze the arm), and acceleration
    ``a_k = Σ_o [k_rep e^{−d_ko/σ_rep} + k_d max(−ḋ_ko, 0) e^{−d_ko/σ_d}] ∇φ_o(x_k)``
    (RMP2's ``collision_rmp`` gains and length scales; damping only while approaching)."""

    def __init__(self, obstacles, radii, weight: float, params: CollisionParams = CollisionParams(),
                 influence: float = 0.1):
        super().__init__()
        self.obstacles, self.weight, self.p, self.rho = list(obstacles), float(weight), params, float(influence)
        self.radii = torch.as_tensor(radii, dtype=D64)

    def natural(self, x, xd):
        B = x.shape[0]
        K = self.radii.numel()
        X, V = x.reshape(B, K, 3), xd.reshape(B, K, 3)
        p = self.p
        a = torch.zeros_like(X)
        dmin = torch.full_like(X[..., 0], float("inf"))
        for ob in self.obstacles:
            phi, g, _ = ob.sdf_derivatives(X, None)
            d = (phi - self.radii.to(x)).clamp_min(0)
            dmin = torch.minimum(dmin, d)
            dd = (g * V).sum(-1)
            mag = p.repulsion_gain * torch.exp(-d / p.repulsion_std_dev) \
                + p.damping_gain * (-dd).clamp_min(0) * torch.exp(-d / p.damping_std_dev)
            a = a + mag.unsqueeze(-1) * g
        w = self.weight * (dmin < self.rho).to(x.dtype)  # (B, K)
        M = torch.diag_embed(w.repeat_interleave(3, dim=1))
        return (w.unsqueeze(-1) * a).reshape(B, 3 * K), M


# ==============================================================================================
# Franka tree (RMP2 franka_config.yaml leaves)
# ==============================================================================================
def franka_points(robot: FrankaPanda) -> LinkPointMap:
    """One forward-kinematics node: the K collision-sphere centres then the TCP (``(B, 3K + 3)``)."""
    links = torch.cat([robot.sphere_links, torch.tensor([8])])
    offs = torch.cat([robot.sphere_offsets, torch.tensor([FRANKA_FLANGE_TO_TCP], dtype=D64)])
    return LinkPointMap(franka_fk, 7, links, offs)


def franka_flow(robot: FrankaPanda, obstacles, goal, q_default, jvc: JointVelocityCapParams | None = None,
                params: str = "rmp2") -> RMPFlow:
    """RMPflow with the Franka leaves: target (TCP), collision (every sphere × obstacle), joint limits
    (with RMP2's buffers = Lula's), joint velocity cap, c-space target, damping. ``goal: (B, 3)``.
    ``params="rmp2"``: RMP2 ``franka_config.yaml`` values (default); ``"lula"``: the Isaac Sim Lula
    ``franka_rmpflow_common.yaml`` values of the same six leaves (ref sheet §2.3; the c-space target stays
    ``q_default``)."""
    if params not in ("rmp2", "lula"):
        raise ValueError(f"franka_flow: params must be 'rmp2' or 'lula', got {params!r}")
    lula = params == "lula"
    K = robot.sphere_radii.numel()
    root = RMPRoot(7)
    pts = root.add_child(franka_points(robot), name="fk")  # FK computed once, shared (DAG)
    cp = pts.add_child(SliceMap(3 * K + 3, list(range(3 * K))), name="spheres")
    for i, ob in enumerate(obstacles):
        cp.add_child(ObstacleDistanceMap(ob, robot.sphere_radii), name=f"obstacle{i}").add_leaf(
            CollisionRMP(K, CollisionParams.lula() if lula else None))
    pts.add_child(SliceMap(3 * K + 3, list(range(3 * K, 3 * K + 3))), name="tcp").add_leaf(
        TargetRMP(3, goal, TargetParams.lula() if lula else None))
    root.add_child(joint_limit_map(robot.q_min, robot.q_max, RMP2_JOINT_LIMIT_BUFFERS), name="limits").add_leaf(
        JointLimitRMP(14, JointLimitParams.lula() if lula else None))
    root.add_leaf(JointVelocityCapRMP(7, jvc if jvc is not None or not lula else JointVelocityCapParams.lula()))
    root.add_leaf(CSpaceTargetRMP(7, q_default, CSpaceTargetParams.lula() if lula else None))
    root.add_leaf(DampingRMP(7, DampingParams.lula() if lula else None))
    return RMPFlow(root)


def pf_flow(robot: FrankaPanda, obstacles, goal, q_default, w_obs: float, w_c: float, w_target: float = 100.0) -> RMPFlow:
    """PF-basic (RMPflow App. E baseline) as an RMP tree with constant metrics: TCP attractor (RMP2
    ``target_rmp`` acceleration, constant weight ``w_target`` = 100 — the paper does not state the
    attractor weight; with weight 1 the c-space weights 10–100 dominate and no setting reached any target
    in a 12-trial pilot, with 10 the low setting reached 4/12), isotropic repulsion on body control points (weight
    ``w_obs``), c-space damping + weak posture term (:class:`_CSpace`, weight ``w_c``)."""
    K = robot.sphere_radii.numel()
    root = RMPRoot(7)
    pts = root.add_child(franka_points(robot), name="fk")
    pts.add_child(SliceMap(3 * K + 3, list(range(3 * K))), name="spheres").add_leaf(
        IsotropicRepulsion(obstacles, robot.sphere_radii, w_obs))
    pts.add_child(SliceMap(3 * K + 3, list(range(3 * K, 3 * K + 3))), name="tcp").add_leaf(
        ConstantMetric(TargetRMP(3, goal), w_target))
    root.add_leaf(ConstantMetric(_CSpace(q_default), w_c))
    return RMPFlow(root, method="solve", reg=0.0)


class _CSpace(Leaf):
    """c-space term of PF: RMP2 ``damping_rmp`` acceleration ``−k_d ‖q̇‖ q̇`` (k_d = 30) plus a weak
    posture pull ``−k_p (q − q_default)`` (k_p = 1, i.e. RMP2's c-space target gain / 100; with RMP2's
    k_p = 100 at weight ≥ 10 the posture term pins the arm at its start and no baseline moves)."""

    def __init__(self, q_default, posture_gain: float = 1.0):
        super().__init__()
        self.d = DampingRMP(7)
        self.register_buffer("q_default", torch.as_tensor(q_default, dtype=D64))
        self.kp = float(posture_gain)

    def canonical(self, x, xd):
        return self.d.canonical(x, xd)[0] - self.kp * (x - self.q_default.to(x)), None


# ==============================================================================================
# scene generators
# ==============================================================================================
def _torus(gen, n, major, minor, angle_range=math.pi, height=None):
    """RMP2-style samples from a torus/annulus: angle θ ~ U(−range/2, range/2) about +x, a point uniform in
    the minor disc (radius ``minor``) of the (radial, z) plane around radius ``major`` (3-D, at ``height``),
    or uniform radius in [major − minor, major + minor] (2-D, ``height=None``)."""
    th = (torch.rand(n, generator=gen, dtype=D64) - 0.5) * angle_range
    if height is None:
        rad = major + (2 * torch.rand(n, generator=gen, dtype=D64) - 1) * minor
        return torch.stack([rad * th.cos(), rad * th.sin()], -1)
    rho = minor * torch.rand(n, generator=gen, dtype=D64).sqrt()
    ph = 2 * math.pi * torch.rand(n, generator=gen, dtype=D64)
    rad = major + rho * ph.cos()
    return torch.stack([rad * th.cos(), rad * th.sin(), height + rho * ph.sin()], -1)


def planar_scenes(n: int, seed: int = 0):
    """RMP2 ``ThreeLinkEnv``-like scenes for the planar 3-link arm (links 0.25 m, base at the origin).

    Per scene (``torch.Generator`` seeded with ``seed`` for the whole set, rejection sampling in order):
    start ``q0 = U(±0.1)³`` (arm stretched along +x), ``q̇0 = 0``; target uniform in angle over
    (−π, π] and radius U(0.15, 0.75) (inside the reach 0.75, ref sheet §4.1: goal annulus (0.375, 0.375));
    3 discs with radii U(0.05, 0.10), centres at angle U(−π, π], radius U(0.4, 0.9) (annulus (0.65, 0.25)).
    Valid when every disc keeps ≥ 0.1 m (the RMP2 validity buffer) from the target and from the start arm's
    collision points (beyond their radius), and the start end effector is ≥ 0.2 m from the target.
    Returns ``q0 (n, 3)``, ``goal (n, 2)``, ``centres (n, 3, 2)``, ``radii (n, 3)``.
    """
    gen = torch.Generator().manual_seed(seed)
    arm = PlanarArm((0.25, 0.25, 0.25))
    ee = arm.end_effector_map()
    out = []
    while len(out) < n:
        q0 = (2 * torch.rand(1, 3, generator=gen, dtype=D64) - 1) * 0.1
        g = _torus(gen, 1, 0.45, 0.30, 2 * math.pi)[0]
        c = _torus(gen, 3, 0.65, 0.25, 2 * math.pi)
        r = 0.05 + 0.05 * torch.rand(3, generator=gen, dtype=D64)
        pts = arm.sphere_centers(q0)[0]
        if ((g - c).norm(dim=-1) - r < 0.1).any():
            continue
        if ((pts.unsqueeze(1) - c).norm(dim=-1) - r - 0.025 < 0.1).any():
            continue
        if (ee.psi(q0)[0] - g).norm() < 0.2:
            continue
        out.append((q0[0], g, c, r))
    return tuple(torch.stack(z) for z in zip(*out))


def franka_scenes(n: int, seed: int = 0, robot: FrankaPanda | None = None):
    """RMP2 ``FrankaEnv``-like scenes (ref sheet §4.1).

    Target and 3 balls (radii U(0.05, 0.10)) sampled from a 3-D torus: angle U(−π/2, π/2) about +x, major
    radius 0.5, minor radius 0.3, height 0.5 (:func:`_torus`); start ``default_q + U(±0.1)``,
    ``q̇0 = U(±0.005)``. Valid when every ball keeps ≥ 0.1 m from the target and from the start arm's
    collision spheres (beyond their radii) and the start TCP is ≥ 0.5 m from the target.
    Returns ``q0 (n, 7)``, ``qd0 (n, 7)``, ``goal (n, 3)``, ``centres (n, 3, 3)``, ``radii (n, 3)``.
    """
    robot = robot or FrankaPanda()
    gen = torch.Generator().manual_seed(seed)
    tcp = franka_points(robot)
    out = []
    while len(out) < n:
        q0 = robot.default_q + (2 * torch.rand(7, generator=gen, dtype=D64) - 1) * 0.1
        qd0 = (2 * torch.rand(7, generator=gen, dtype=D64) - 1) * 0.005
        g = _torus(gen, 1, 0.5, 0.3, math.pi, 0.5)[0]
        c = _torus(gen, 3, 0.5, 0.3, math.pi, 0.5)
        r = 0.05 + 0.05 * torch.rand(3, generator=gen, dtype=D64)
        if ((g - c).norm(dim=-1) - r < 0.1).any():
            continue
        sph = robot.sphere_centers(q0[None])[0]
        if ((sph.unsqueeze(1) - c).norm(dim=-1) - r - robot.sphere_radii.unsqueeze(1) < 0.1).any():
            continue
        if (tcp.psi(q0[None])[0, -3:] - g).norm() < 0.5:
            continue
        out.append((q0, qd0, g, c, r))
    return tuple(torch.stack(z) for z in zip(*out))


def clutter_scenes(n_layouts: int = 6, n_targets: int = 20, seed: int = 0, robot: FrankaPanda | None = None,
                   n_columns: int = 3, r_range=(0.02, 0.05)):
    """Reaching-through-clutter scenes (RMPflow App. E protocol transferred to the Franka).

    Layout ``k`` (generator seeded ``seed``): ``n_columns`` = 3 vertical square columns (``Box``, half
    extents ``(r, r, h)``, r ~ U(0.02, 0.05) m "of varying size" standing in for the paper's cylinders,
    h ~ U(0.08, 0.2) m) centred at x ~ U(0.40, 0.52), y ~ U(−0.3, 0.3), z ~ U(0.25, 0.6), i.e. a wall of
    clutter between the start TCP (x ≈ 0.31, default configuration) and the targets; a column is
    rejected when the start arm's spheres come closer than 0.05 m. Targets: x ~ U(0.6, 0.72), y ~ U(−0.3,
    0.3), z ~ U(0.2, 0.6) (the far side), rejected within 0.08 m of a column or farther than 0.8 m from
    the shoulder (0, 0, 0.333). Start: ``default_q``, at rest.
    Returns ``q0 (N, 7)``, ``goal (N, 3)``, ``centres (N, 3, 3)``, ``half_extents (N, 3, 3)``,
    ``layout (N,)`` with ``N = n_layouts · n_targets``.
    """
    robot = robot or FrankaPanda()
    gen = torch.Generator().manual_seed(seed)
    q0 = robot.default_q
    sph = robot.sphere_centers(q0[None])
    shoulder = torch.tensor([0.0, 0.0, 0.333], dtype=D64)
    rows = []
    for k in range(n_layouts):
        cols = []
        while len(cols) < n_columns:
            r = r_range[0] + (r_range[1] - r_range[0]) * torch.rand(1, generator=gen, dtype=D64)
            h = 0.08 + 0.12 * torch.rand(1, generator=gen, dtype=D64)
            c = torch.stack([0.40 + 0.12 * torch.rand((), generator=gen, dtype=D64),
                             -0.3 + 0.6 * torch.rand((), generator=gen, dtype=D64),
                             0.25 + 0.35 * torch.rand((), generator=gen, dtype=D64)])
            he = torch.cat([r, r, h])
            if float(Box(c, he).distances(sph, robot.sphere_radii).min()) < 0.05:
                continue
            cols.append((c, he))
        C = torch.stack([c for c, _ in cols])
        H = torch.stack([h for _, h in cols])
        nt = 0
        while nt < n_targets:
            g = torch.stack([0.60 + 0.12 * torch.rand((), generator=gen, dtype=D64),
                             -0.3 + 0.6 * torch.rand((), generator=gen, dtype=D64),
                             0.2 + 0.4 * torch.rand((), generator=gen, dtype=D64)])
            if (g - shoulder).norm() > 0.8:
                continue
            if min(float(Box(C[i], H[i]).sdf(g.view(1, 1, 3))) for i in range(n_columns)) < 0.08:
                continue
            rows.append((q0, g, C, H, torch.tensor(k)))
            nt += 1
    return tuple(torch.stack(z) for z in zip(*rows))


# ==============================================================================================
# (b) planar arm
# ==============================================================================================
def planar_flow(arm: PlanarArm, obstacles, goal) -> RMPFlow:
    """RMP2 3-link leaves: target (EE), collision (15 points × 3 discs), velocity cap 1 rad/s, damping."""
    root = RMPRoot(3)
    cp_map = arm.control_point_map()
    cp = root.add_child(cp_map, name="points")
    for i, ob in enumerate(obstacles):
        cp.add_child(ObstacleDistanceMap(ob, cp_map.radii), name=f"obstacle{i}").add_leaf(CollisionRMP(cp_map.num_points))
    root.add_child(arm.end_effector_map(), name="ee").add_leaf(TargetRMP(2, goal))
    root.add_leaf(JointVelocityCapRMP(3, JointVelocityCapParams(max_velocity=1.0)))
    root.add_leaf(DampingRMP(3))
    return RMPFlow(root)


def _reach_stats(out, t_first, tol_success=0.01):
    success = (out.goal_distance <= tol_success) & ~out.collided
    tt = t_first[~torch.isnan(t_first)]
    return dict(success=float(success.double().mean()), collisions=float(out.collided.double().mean()),
                within_5cm=float((~torch.isnan(t_first)).double().mean()),
                mean_time_to_5cm_s=float(tt.mean()) if tt.numel() else float("nan"),
                median_final_err_m=float(out.goal_distance.median()),
                p10_min_clearance_m=float(out.min_clearance.quantile(0.1)))


def _rollout_with_first_hit(sim, flow, q0, qd0, steps, goal_fn):
    """Run without stopping; record the first time the goal distance is ≤ 5 cm via a policy wrapper."""
    B = q0.shape[0]
    t_first = torch.full((B,), float("nan"), dtype=q0.dtype)
    step = [0]

    def policy(q, qd):
        with torch.no_grad():
            d = goal_fn(q)
            hit = (d <= 0.05) & torch.isnan(t_first)
            t_first[hit] = step[0] * sim.dt
            step[0] += sim.policy_every
            return flow(q, qd)

    out = sim.rollout(policy, q0, qd0, steps=steps, record=False)
    return out, t_first


def part_b(args):
    n = args.n_planar
    q0, goal, C, R = planar_scenes(n, args.seed)
    arm = PlanarArm((0.25, 0.25, 0.25))
    obst = [Sphere(C[:, i], R[:, i]) for i in range(3)]
    flow = planar_flow(arm, obst, goal)
    ee = PlanarPointMap(arm.lengths, [2], arm.lengths[-1:])

    def goal_fn(q):
        return (ee.psi(q) - goal).norm(dim=-1)

    sim = KinematicSim.for_robot(arm, obstacles=obst, dt=1 / 240, policy_every=3, goal_fn=goal_fn,
                                 goal_tolerance=0.01, stop_at_goal=False)
    t0 = time.perf_counter()
    out, t_first = _rollout_with_first_hit(sim, flow, q0, None, args.horizon_steps, goal_fn)
    wall = time.perf_counter() - t0
    row = dict(part="b", scenes=n, seed=args.seed, **_reach_stats(out, t_first), wall_s=wall,
               anchor="RMP2 kinematic replica: 73.5 % success, 0 % coll., 154/200 within 5 cm, 3.48 s")
    emit(args.jsonl, row)
    table([row], ["scenes", "success", "collisions", "within_5cm", "mean_time_to_5cm_s", "median_final_err_m",
                  "p10_min_clearance_m", "wall_s", "anchor"])
    return [row]


def part_c(args):
    robot = FrankaPanda()
    n = args.n_franka
    q0, qd0, goal, C, R = franka_scenes(n, args.seed, robot)
    obst = [Sphere(C[:, i], R[:, i]) for i in range(3)]
    flow = franka_flow(robot, obst, goal, robot.default_q)
    tcp = franka_points(robot)

    def goal_fn(q):
        return (tcp.psi(q)[:, -3:] - goal).norm(dim=-1)

    sim = KinematicSim.for_robot(robot, obstacles=obst, dt=1 / 240, policy_every=3, goal_fn=goal_fn,
                                 goal_tolerance=0.01, stop_at_goal=False)
    t0 = time.perf_counter()
    out, t_first = _rollout_with_first_hit(sim, flow, q0, qd0, args.horizon_steps, goal_fn)
    wall = time.perf_counter() - t0
    row = dict(part="c", scenes=n, seed=args.seed, **_reach_stats(out, t_first), wall_s=wall,
               anchor="RMP2 kinematic replica: 95 % success, 0 % coll., 2.89 s")
    emit(args.jsonl, row)
    table([row], ["scenes", "success", "collisions", "within_5cm", "mean_time_to_5cm_s", "median_final_err_m",
                  "p10_min_clearance_m", "wall_s", "anchor"])
    return [row]


# ==============================================================================================
# (d) reaching through clutter
# ==============================================================================================
def part_d(args):
    robot = FrankaPanda()
    q0, goal, C, H, layout = clutter_scenes(6, args.n_targets, args.seed, robot)
    obst = [Box(C[:, i], H[:, i]) for i in range(C.shape[1])]
    tcp = franka_points(robot)

    def goal_fn(q):
        return (tcp.psi(q)[:, -3:] - goal).norm(dim=-1)

    methods = [("RMPflow (RMP2 leaves)", franka_flow(robot, obst, goal, robot.default_q))]
    if args.clutter_lula:  # check: the same six leaves with Isaac Sim Lula's published parameters
        methods.append(("RMPflow (Lula leaf parameters)", franka_flow(robot, obst, goal, robot.default_q, params="lula")))
    for w_obs, w_c in ((3.0, 10.0), (5.0, 50.0), (10.0, 100.0)):
        methods.append((f"PF-basic ({w_obs:g}, {w_c:g})", pf_flow(robot, obst, goal, robot.default_q, w_obs, w_c)))
    rows = []
    for name, flow in methods:
        sim = KinematicSim.for_robot(robot, obstacles=obst, dt=1 / 240, policy_every=3, goal_fn=goal_fn,
                                     goal_tolerance=0.01, stop_at_goal=True)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = sim.rollout(flow, q0.clone(), None, steps=int(round(args.clutter_timeout * 240)), record=False)
        wall = time.perf_counter() - t0
        tt = out.time_to_goal[out.reached]
        row = dict(part="d", method=name, trials=int(q0.shape[0]), reached=float(out.reached.double().mean()),
                   time_to_goal_s=float(tt.mean()) if tt.numel() else float("nan"),
                   path_length_rad=float(out.path_length.mean()), goal_distance_m=float(out.goal_distance.mean()),
                   collision_intensity=float(out.collision_intensity.mean()),
                   collision_failure=float(out.collided.double().mean()), wall_s=wall)
        emit(args.jsonl, row)
        rows.append(row)
        print(f"  {name}: done in {wall:.1f} s", flush=True)
    table(rows, ["method", "trials", "reached", "time_to_goal_s", "path_length_rad", "goal_distance_m",
                 "collision_intensity", "collision_failure", "wall_s"])
    return rows


# ==============================================================================================
# (e) control-step timing
# ==============================================================================================
def part_e(args):
    torch.set_num_threads(1)
    robot = FrankaPanda()
    rows = []
    A = torch.randn(128, 128, dtype=D64)
    for dtype in (torch.float32, torch.float64):
        for B in args.batches:
            q0, qd0, goal, C, R = franka_scenes(1, args.seed, robot)
            obst = [Sphere(C[0, i].to(dtype), R[0, i].to(dtype)) for i in range(3)]
            dev = torch.device(args.device)
            flow = franka_flow(robot, obst, goal[0].to(dtype), robot.default_q.to(dtype)).to(dev)
            gen = torch.Generator().manual_seed(1)
            q = (q0 + 0.05 * torch.randn(B, 7, generator=gen, dtype=D64)).to(dev, dtype)
            qd = (0.1 * torch.randn(B, 7, generator=gen, dtype=D64)).to(dev, dtype)
            sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
            reps = max(3, min(args.repeats, int(args.repeats * 20 / B) + 3))
            ts, tc, tr = [], [], []
            load0 = os.getloadavg()[0]
            with torch.inference_mode():
                for _ in range(10 if B <= 100 else 2):  # warm-up: caches, allocator, memoised constants
                    flow(q, qd)
                for _ in range(reps):
                    sync()
                    t0, c0 = time.perf_counter(), time.thread_time()
                    flow(q, qd)
                    sync()
                    ts.append(time.perf_counter() - t0)
                    tc.append(time.thread_time() - c0)
                    t0 = time.perf_counter()
                    A @ A
                    tr.append(time.perf_counter() - t0)
            ms = 1e3 * statistics.median(ts)
            cpu_ms = 1e3 * statistics.median(tc)
            ref = 1e3 * statistics.median(tr)
            row = dict(part="e", device=args.device, dtype=str(dtype).replace("torch.", ""), batch=B, ms_per_step=ms,
                       cpu_ms_per_step=cpu_ms, robot_steps_per_s=B / (ms / 1e3), ref_matmul128_ms=ref,
                       step_over_ref=ms / ref, repeats=reps, threads=torch.get_num_threads(),
                       loadavg_1min=0.5 * (load0 + os.getloadavg()[0]))
            emit(args.jsonl, row)
            rows.append(row)
            print(f"  {row['dtype']} B={B}: {ms:.2f} ms wall, {cpu_ms:.2f} ms thread CPU", flush=True)
    table(rows, ["dtype", "batch", "ms_per_step", "cpu_ms_per_step", "robot_steps_per_s", "ref_matmul128_ms",
                 "step_over_ref", "repeats", "loadavg_1min"])
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="a,b,c,d,e", help="comma-separated subset of a,b,c,d,e")
    ap.add_argument("--n-planar", type=int, default=200)
    ap.add_argument("--n-franka", type=int, default=100)
    ap.add_argument("--n-targets", type=int, default=20, help="targets per clutter layout (6 layouts)")
    ap.add_argument("--clutter-timeout", type=float, default=5.0, help="(d) timeout [s] (paper: 5)")
    ap.add_argument("--clutter-lula", action="store_true", help="(d) also RMPflow with Lula's leaf parameters")
    ap.add_argument("--horizon-steps", type=int, default=1800, help="240 Hz steps for (b), (c) (RMP2: 1800 = 7.5 s)")
    ap.add_argument("--batches", type=lambda s: [int(v) for v in s.split(",")], default=[1, 100, 1000])
    ap.add_argument("--repeats", type=int, default=200, help="(e) timed steps at batch 1 (fewer at larger batches)")
    ap.add_argument("--device", default="cpu", help="(e) device, e.g. cuda (GPU row: --batches 10000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for (a)-(d); (e) always uses 1")
    ap.add_argument("--jsonl", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "rmpflow.jsonl"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    bad = [p for p in parts if p not in "abcde" or len(p) != 1]
    if bad:
        ap.error(f"unknown parts {bad}")
    fns = dict(a=part_a, b=part_b, c=part_c, d=part_d, e=part_e)
    res = {}
    for p in parts:
        print(f"## part ({p})", flush=True)
        t0 = time.perf_counter()
        res[p] = fns[p](args)
        print(f"(part {p}: {time.perf_counter() - t0:.1f} s)\n", flush=True)
    return res


if __name__ == "__main__":
    main()
