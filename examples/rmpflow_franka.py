"""RMPflow on the built-in Franka Panda: reach a target past two balls, then plot the path and clearances.

    python examples/rmpflow_franka.py                       # saves runs/rmpflow_franka.png
    python examples/rmpflow_franka.py --out /tmp/f.png --steps 600

The tree (Cheng et al., RMPflow, WAFR 2018; leaves and parameters of RMP2's ``franka_config.yaml``):

    root (q ∈ ℝ⁷)
    ├── collision-sphere centres (23 × 3)  ── one distance node per obstacle ── CollisionRMP
    ├── end-effector (TCP) position (3)    ── TargetRMP
    ├── distances to the joint limits (14) ── JointLimitRMP
    └── JointVelocityCapRMP, CSpaceTargetRMP, DampingRMP on q itself

and ``KinematicSim`` integrates ``q̈ = flow(q, q̇)`` at 240 Hz with the joint limits and collision checks.
"""

import argparse
import os

import torch

from manifold_rl.rmpflow import (
    CollisionRMP,
    CSpaceTargetRMP,
    DampingRMP,
    FrankaPanda,
    JointLimitRMP,
    JointVelocityCapRMP,
    KinematicSim,
    ObstacleDistanceMap,
    RMPFlow,
    RMPRoot,
    Sphere,
    TargetRMP,
    joint_limit_map,
)


def build_flow(robot, obstacles, goal):
    root = RMPRoot(7)
    spheres = root.add_child(robot.control_point_map(), name="spheres")
    for i, ob in enumerate(obstacles):
        spheres.add_child(ObstacleDistanceMap(ob, robot.sphere_radii), name=f"obstacle{i}").add_leaf(
            CollisionRMP(robot.sphere_radii.numel()))
    root.add_child(robot.end_effector_map(), name="tcp").add_leaf(TargetRMP(3, goal))
    root.add_child(joint_limit_map(robot.q_min, robot.q_max, [0.01, 0.03, 0.01, 0.01, 0.01, 0.01, 0.01]),
                   name="joint_limits").add_leaf(JointLimitRMP(14))
    root.add_leaf(JointVelocityCapRMP(7))
    root.add_leaf(CSpaceTargetRMP(7, robot.default_q))
    root.add_leaf(DampingRMP(7))
    return RMPFlow(root)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/rmpflow_franka.png")
    ap.add_argument("--steps", type=int, default=1800, help="240 Hz steps (1800 = 7.5 s)")
    args = ap.parse_args(argv)

    robot = FrankaPanda()
    goal = torch.tensor([0.5, 0.3, 0.3], dtype=torch.float64)  # m, behind and below two balls
    obstacles = [Sphere([0.45, 0.15, 0.4], 0.07), Sphere([0.6, 0.1, 0.2], 0.05)]
    flow = build_flow(robot, obstacles, goal)
    tcp = robot.end_effector_map()

    def goal_distance(q):
        return (tcp.psi(q) - goal).norm(dim=-1)

    sim = KinematicSim.for_robot(robot, obstacles=obstacles, dt=1 / 240, policy_every=3,
                                 goal_fn=goal_distance, goal_tolerance=0.01)
    q0 = robot.default_q.unsqueeze(0)
    with torch.no_grad():
        out = sim.rollout(flow, q0, steps=args.steps)
    t = torch.arange(out.q.shape[0], dtype=torch.float64) * sim.dt
    qs = out.q[:, 0]
    path = tcp.psi(qs)  # (T, 3)
    clear = torch.stack([ob.distances(robot.sphere_centers(qs), robot.sphere_radii).min(dim=1).values
                         for ob in obstacles], -1)  # (T, n_obstacles)
    ttg = float(out.time_to_goal[0])
    print(f"reached: {bool(out.reached[0])}  time to goal: {ttg:.2f} s  final distance: "
          f"{float(out.goal_distance[0]) * 100:.2f} cm  min clearance: {float(out.min_clearance[0]) * 100:.2f} cm  "
          f"collided: {bool(out.collided[0])}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11, 4.5))
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    for k in range(0, qs.shape[0], max(1, qs.shape[0] // 6)):  # a few arm poses along the way
        c = robot.sphere_centers(qs[k:k + 1])[0]
        ax.plot(*c.T.numpy(), ".", color="0.6", ms=3)
    ax.plot(*path.T.numpy(), "b-", lw=2, label="TCP path")
    ax.scatter(*goal.numpy(), color="g", s=60, label="target")
    u, v = torch.meshgrid(torch.linspace(0, 2 * torch.pi, 20), torch.linspace(0, torch.pi, 10), indexing="ij")
    for ob in obstacles:
        c, r = ob.center.numpy(), float(ob.radius)
        ax.plot_surface(c[0] + r * (u.cos() * v.sin()).numpy(), c[1] + r * (u.sin() * v.sin()).numpy(),
                        c[2] + r * v.cos().numpy(), color="r", alpha=0.4)
    ax.set_box_aspect((1, 1, 1))
    ax.set_xlim(0.0, 0.7)
    ax.set_ylim(-0.3, 0.4)
    ax.set_zlim(0.05, 0.75)
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_zlabel("z [m]")
    ax.legend(loc="upper left")
    ax.set_title("Franka reaching with RMPflow")
    ax2 = fig.add_subplot(1, 2, 2)
    for i in range(clear.shape[1]):
        ax2.plot(t.numpy(), clear[:, i].numpy() * 100, label=f"obstacle {i}")
    ax2.plot(t.numpy(), goal_distance(qs).numpy() * 100, "k--", label="goal distance")
    ax2.axhline(0, color="r", lw=0.8)
    ax2.set_xlabel("t [s]")
    ax2.set_ylabel("cm")
    ax2.set_title("min clearance of the robot spheres")
    ax2.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"saved {args.out}")
    return out


if __name__ == "__main__":
    main()
