"""MujocoSim (optional MuJoCo path): generated Franka MJCF = DH kinematics, inverse-dynamics stepping
= KinematicSim without contacts, RMPflow reaching in both, contact reporting, user MJCF, bad input."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from manifold_rl.rmpflow import Box, FrankaPanda, KinematicSim, Sphere, min_clearance

ROOT = Path(__file__).resolve().parent.parent
D64 = torch.float64
HAVE_MUJOCO = importlib.util.find_spec("mujoco") is not None
needs_mujoco = pytest.mark.skipif(
    not HAVE_MUJOCO, reason="mujoco is not installed (optional extra: pip install 'manifold-rl[mujoco]')")


def _random_q(robot, B, seed):
    g = torch.Generator().manual_seed(seed)
    return robot.q_min + (robot.q_max - robot.q_min) * torch.rand(B, 7, dtype=D64, generator=g)


def test_import_does_not_load_mujoco():
    """No module of the packages imports mujoco at module level, and the package __init__ does not import
    .mujoco_sim (it is reached through the lazy ``__getattr__``): importing manifold_rl.rmpflow never
    loads mujoco. (Static check: a clean-process import would cost a torch start-up; test_docs covers
    the clean import of manifold_rl.rmpflow.)"""
    import ast

    def top_level_imports(path):
        names = []
        for node in ast.parse(path.read_text()).body:  # module level only (functions are lazy)
            if isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names.append("." * node.level + (node.module or ""))
                names += ["." * node.level + (node.module + "." if node.module else "") + a.name for a in node.names]
        return names

    files = [f for pkg in ("manifolds", "kernels", "manifold_rl") for f in (ROOT / pkg).rglob("*.py")]
    assert len(files) > 20
    for f in files:
        assert not any(n == "mujoco" or n.startswith("mujoco.") for n in top_level_imports(f)), f
    init = top_level_imports(ROOT / "manifold_rl/rmpflow/__init__.py")
    assert init and not any("mujoco_sim" in n for n in init)
    import manifold_rl.rmpflow as rmp

    assert "MujocoSim" in rmp.__all__ and "franka_mjcf" in rmp.__all__
    assert "panda_joint7" in rmp.franka_mjcf()  # the MJCF text needs no mujoco


@needs_mujoco
def test_generated_franka_fk_matches_dh():
    import mujoco

    from manifold_rl.rmpflow import MujocoSim

    robot = FrankaPanda(include_base=True)  # link-0 spheres become static worldbody geoms
    sim = MujocoSim.for_robot(robot)
    m = sim.model
    d = mujoco.MjData(m)
    q = _random_q(robot, 12, seed=1)
    centres = robot.sphere_centers(q).numpy()
    tcp = robot.end_effector_map().psi(q).numpy()
    frames = robot.fk(q).numpy()
    K = robot.sphere_radii.numel()
    sphere_sites = [m.site(f"panda_sphere{k}").id for k in range(K)]
    sphere_geoms = [m.geom(f"panda_sphere{k}").id for k in range(K)]
    np.testing.assert_allclose(m.geom_size[sphere_geoms, 0], robot.sphere_radii.numpy(), atol=0)
    for b in range(q.shape[0]):
        d.qpos[sim.qpos_adr] = q[b].numpy()
        mujoco.mj_kinematics(m, d)
        np.testing.assert_allclose(d.site_xpos[sphere_sites], centres[b], atol=1e-6, rtol=0)
        np.testing.assert_allclose(d.geom_xpos[sphere_geoms], centres[b], atol=1e-6, rtol=0)
        np.testing.assert_allclose(d.site("panda_tcp").xpos, tcp[b], atol=1e-6, rtol=0)
        for i in range(8):  # every link frame, position and orientation
            body = d.body(f"panda_link{i + 1}")
            np.testing.assert_allclose(body.xpos, frames[b, i, :3, 3], atol=1e-6, rtol=0)
            np.testing.assert_allclose(body.xmat.reshape(3, 3), frames[b, i, :3, :3], atol=1e-6, rtol=0)
    # joint ranges are the FCI limits; total mass = 7 links + hand
    np.testing.assert_allclose(m.jnt_range[sim.joint_ids], torch.stack([robot.q_min, robot.q_max], 1).numpy())
    assert m.body_subtreemass[m.body("panda_link1").id] == pytest.approx(16.7921, abs=1e-4)


@needs_mujoco
def test_zero_acceleration_holds_the_arm_under_gravity():
    import mujoco

    from manifold_rl.rmpflow import MujocoSim

    robot = FrankaPanda()
    sim = MujocoSim.for_robot(robot, dt=0.01)
    q0 = torch.stack([robot.default_q, _random_q(robot, 1, seed=3)[0].clamp(-1.5, 1.5).clamp(robot.q_min + 0.1, robot.q_max - 0.1)])
    out = sim.rollout(lambda q, qd: torch.zeros_like(q), q0, steps=200)
    assert float((out.q - q0).abs().max()) < 1e-9 and float(out.qd.abs().max()) < 1e-9
    assert float(out.tau.abs().max()) > 1.0  # gravity torques were needed to hold it
    # the same model without the compensating torque falls under gravity
    d = mujoco.MjData(sim.model)
    d.qpos[sim.qpos_adr] = robot.default_q.numpy()
    mujoco.mj_step(sim.model, d, nstep=50)
    assert float(np.abs(d.qpos[sim.qpos_adr] - robot.default_q.numpy()).max()) > 1e-2
    # gravity=False: zero torque is enough
    out0 = MujocoSim.for_robot(robot, dt=0.01, gravity=False).rollout(lambda q, qd: torch.zeros_like(q), q0, steps=20)
    assert float(out0.tau.abs().max()) < 1e-12 and float((out0.q - q0).abs().max()) < 1e-12


@needs_mujoco
def test_joint_ranges_stop_the_arm():
    from manifold_rl.rmpflow import MujocoSim

    robot = FrankaPanda()
    push = torch.zeros(1, 7, dtype=D64)
    push[0, 3], push[0, 0] = 5.0, -5.0  # joint 4 into its upper limit −0.0698, joint 1 into −2.8973
    q0 = robot.default_q.unsqueeze(0)
    out = MujocoSim.for_robot(robot, dt=0.02).rollout(lambda q, qd: push, q0, steps=100)
    ks = KinematicSim.for_robot(robot, dt=0.02).rollout(lambda q, qd: push, q0, steps=100)
    # the command is clipped at the range (KinematicSim's clamp): the joints stop at their limits and
    # the others, commanded to rest, stay put
    assert float(out.q[:, 0, 3].max()) <= float(robot.q_max[3])
    assert float(out.q[:, 0, 0].min()) >= float(robot.q_min[0])
    torch.testing.assert_close(out.q[-1], ks.q[-1], atol=2e-6, rtol=0)  # ε = 1e-6 rad inside the range
    assert float(out.qd[-1].abs().max()) < 1e-9
    # without the clip MuJoCo's limit constraint stops the joint; its reaction on the torque-driven arm
    # (through M⁻¹) also moves the joints commanded to rest
    free = MujocoSim.for_robot(robot, dt=0.02, respect_limits=False).rollout(lambda q, qd: push, q0, steps=100)
    over = float(free.q[:, 0, 3].max() - robot.q_max[3])
    assert 0 < over < 0.05
    assert float((free.q[-1, 0, [1, 2, 4, 5, 6]] - q0[0, [1, 2, 4, 5, 6]]).abs().max()) > 1e-2


@needs_mujoco
def test_commanded_acceleration_reproduces_kinematic_sim():
    from manifold_rl.rmpflow import MujocoSim

    robot = FrankaPanda()
    q0 = robot.default_q.expand(3, 7).clone()
    q0[1] += 0.2
    qd0 = torch.zeros(3, 7, dtype=D64)
    qd0[2] = 0.3
    # env 2 accelerates hard enough for the speed limit to become active (the velocity clip)
    acc = torch.tensor([[0.5, -0.4, 0.3, 0.2, -0.6, 0.4, 0.8],
                        [-0.3, 0.2, -0.5, 0.4, 0.3, -0.2, -0.7],
                        [20.0, 0.0, -20.0, 0.0, 30.0, 0.0, -30.0]], dtype=D64)
    kw = dict(dt=1 / 240)
    mj = MujocoSim.for_robot(robot, **kw).rollout(lambda q, qd: acc, q0, qd0, steps=60)
    ks = KinematicSim.for_robot(robot, **kw).rollout(lambda q, qd: acc, q0, qd0, steps=60)
    assert bool((ks.qd[-1, 2].abs() == robot.qd_max).any())  # the clip was exercised
    # tolerance: round-off of the M q̈ + c → M⁻¹(τ − c) round trip, accumulated over 60 steps
    torch.testing.assert_close(mj.q, ks.q, atol=1e-9, rtol=0)
    torch.testing.assert_close(mj.qd, ks.qd, atol=1e-9, rtol=0)
    torch.testing.assert_close(mj.path_length, ks.path_length, atol=1e-9, rtol=0)
    # float32 inputs give float32 outputs; batch = per-environment
    sim = MujocoSim.for_robot(robot, **kw)
    one = sim.rollout(lambda q, qd: acc[1:2].float(), q0[1:2].float(), steps=10)
    assert one.q.dtype == torch.float32
    both = sim.rollout(lambda q, qd: acc[:2].float(), q0[:2].float(), steps=10)
    torch.testing.assert_close(both.q[:, 1:2], one.q, atol=0, rtol=0)
    # step() is the same map as one rollout step
    qn, qdn = sim.step(q0, qd0, acc)
    torch.testing.assert_close(qn, ks.q[1], atol=1e-12, rtol=0)
    torch.testing.assert_close(qdn, ks.qd[1], atol=1e-12, rtol=0)


@needs_mujoco
def test_rmpflow_reaching_in_mujoco_and_kinematic_sim():
    from manifold_rl.rmpflow import MujocoSim

    spec = importlib.util.spec_from_file_location("rmpflow_franka_example_mj", ROOT / "examples/rmpflow_franka.py")
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    robot = FrankaPanda()
    # the example's tree; a nearer target than the example's (reached in ≈ 1.3 s) past a ball 4 cm away
    goal = torch.tensor([0.45, 0.1, 0.35], dtype=D64)
    obstacles = [Sphere([0.55, 0.0, 0.5], 0.06)]
    flow = ex.build_flow(robot, obstacles, goal)
    tcp = robot.end_effector_map()

    def goal_distance(q):
        return (tcp.psi(q) - goal).norm(dim=-1)

    kw = dict(obstacles=obstacles, dt=1 / 240, policy_every=3, goal_fn=goal_distance, goal_tolerance=0.02)
    q0 = robot.default_q.unsqueeze(0)
    with torch.no_grad():
        mj = MujocoSim.for_robot(robot, **kw).rollout(flow, q0, steps=450)
        ks = KinematicSim.for_robot(robot, **kw).rollout(flow, q0, steps=450)
    for out in (mj, ks):
        assert bool(out.success[0]) and float(out.goal_distance[0]) <= 0.02
        assert 0.02 < float(out.min_clearance[0]) < 0.1 and not bool(out.collided[0])
    assert int(mj.contacts[0]) == 0 and float(mj.max_penetration[0]) == 0.0
    # no contact, no active limit: the dynamics follow the policy's accelerations, so the paths coincide
    assert mj.steps == ks.steps
    assert float((mj.q - ks.q).abs().max()) < 1e-6
    assert float(mj.min_clearance[0]) == pytest.approx(float(ks.min_clearance[0]), abs=1e-6)
    # the torques stay within the Panda's limits (87 N m joints 1–4, 12 N m joints 5–7)
    tau_max = mj.tau.abs().amax((0, 1))
    assert bool((tau_max[:4] < 87).all()) and bool((tau_max[4:] < 12).all())


@needs_mujoco
def test_collision_with_obstacle_on_the_arm_is_detected():
    from manifold_rl.rmpflow import MujocoSim

    robot = FrankaPanda()
    q0 = robot.default_q.unsqueeze(0)
    c = robot.sphere_centers(q0)[0]
    rot = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=D64)
    rot = torch.linalg.matrix_exp(torch.tensor([[0.0, -0.3, 0.2], [0.3, 0.0, -0.5], [-0.2, 0.5, 0.0]], dtype=D64)) @ rot
    cases = {
        "sphere on link 4": [Sphere(c[8] + torch.tensor([0.0, 0.0, 0.1], dtype=D64), 0.05)],
        "rotated box at the hand": [Box(c[-3] + torch.tensor([0.05, 0.0, 0.0], dtype=D64), [0.04, 0.06, 0.02], rot)],
        "far away": [Sphere([1.5, 1.5, 1.5], 0.1), Box([-1.0, 0.0, 0.5], [0.1, 0.1, 0.1], rot)],
    }
    for name, obst in cases.items():
        sim = MujocoSim.for_robot(robot, obstacles=obst, dt=0.01)
        ref = float(min_clearance(obst, robot.sphere_centers(q0), robot.sphere_radii))
        assert float(sim.clearance(q0)[0]) == pytest.approx(ref, abs=1e-6), name
        n_con, pen = sim.contacts(q0)
        out = sim.rollout(lambda q, qd: torch.zeros_like(q), q0, steps=5)
        if name == "far away":
            assert ref > 0.5 and int(n_con[0]) == 0 and not bool(out.collided[0]) and int(out.contacts[0]) == 0
            assert float(out.min_clearance[0]) == pytest.approx(ref, abs=1e-6)
            continue
        assert ref < -0.01, name  # the obstacle really overlaps the arm
        assert int(n_con[0]) > 0 and float(pen[0]) == pytest.approx(-ref, abs=1e-6), name
        assert bool(out.collided[0]) and not bool(out.success[0]) and int(out.contacts[0]) > 0, name
        assert float(out.max_penetration[0]) >= -ref - 1e-6 and float(out.min_clearance[0]) <= ref + 1e-6, name
        assert float(out.collision_intensity[0]) > 0
    # stop_on_collision freezes the environment at once
    sim = MujocoSim.for_robot(robot, obstacles=cases["sphere on link 4"], dt=0.01, stop_on_collision=True)
    out = sim.rollout(lambda q, qd: torch.ones_like(q), torch.cat([q0, q0]), steps=5)
    assert out.steps == 1 and bool((out.q[-1] == q0).all()) and bool((out.qd[-1] == 0).all())


@needs_mujoco
def test_user_mjcf_path_with_added_obstacles_and_damping(tmp_path):
    from manifold_rl.rmpflow import MujocoSim, franka_mjcf

    robot = FrankaPanda()
    # a "user" model: the generated Franka with joint damping and a position actuator on joint 1
    xml = franka_mjcf(robot).replace('type="hinge"', 'type="hinge" damping="2.0"').replace(
        "</worldbody>", '</worldbody>\n  <actuator><position joint="panda_joint1" kp="500"/></actuator>')
    path = tmp_path / "panda_user.xml"
    path.write_text(xml)
    yaw = torch.tensor([[0.8, -0.6, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]], dtype=D64)  # rotated box
    obst = [Sphere([0.45, 0.15, 0.4], 0.07), Box([0.6, -0.2, 0.2], [0.05, 0.08, 0.1], yaw)]
    joints = [f"panda_joint{i}" for i in range(1, 8)]
    q0 = robot.default_q.unsqueeze(0)
    acc = torch.full((1, 7), 0.3, dtype=D64)
    ref = KinematicSim.for_robot(robot, dt=0.01).rollout(lambda q, qd: acc, q0, steps=30)
    for model in (str(path), xml):
        sim = MujocoSim(model, joints, dt=0.01, integrator="Euler", qd_max=robot.qd_max, obstacles=obst)
        assert sim.model.ngeom == robot.sphere_radii.numel() + 2 and len(sim.obstacle_geoms) == 2
        out = sim.rollout(lambda q, qd: acc, q0, steps=30)
        # damping and the switched-off actuator are compensated: still the commanded motion
        torch.testing.assert_close(out.q, ref.q, atol=1e-9, rtol=0)
        ref_clear = float(min_clearance(obst, robot.sphere_centers(q0), robot.sphere_radii))
        assert float(sim.clearance(q0)[0]) == pytest.approx(ref_clear, abs=1e-6)
    # joints mapped in another order: q follows the given order
    perm = [6, 0, 1, 2, 3, 4, 5]
    sim = MujocoSim(xml, [joints[i] for i in perm], dt=0.01)
    qn, _ = sim.step(q0[:, perm], torch.zeros(1, 7, dtype=D64), torch.zeros(1, 7, dtype=D64))
    torch.testing.assert_close(qn, q0[:, perm], atol=1e-9, rtol=0)
    # a compiled MjModel is accepted too
    sim2 = MujocoSim(sim.model, joints, dt=0.01)
    assert sim2.dof == 7 and sim2.model is not sim.model


@needs_mujoco
def test_bad_input_raises():
    from manifold_rl.rmpflow import MujocoSim, PointCloud, PlanarArm, franka_mjcf

    robot = FrankaPanda()
    xml = franka_mjcf(robot)
    joints = [f"panda_joint{i}" for i in range(1, 8)]
    with pytest.raises(ValueError, match="unknown joint"):
        MujocoSim(xml, joints[:6] + ["elbow"])
    with pytest.raises(ValueError, match="duplicate"):
        MujocoSim(xml, joints[:6] + [joints[0]])
    with pytest.raises(ValueError, match="dt must be positive"):
        MujocoSim(xml, joints, dt=0.0)
    with pytest.raises(ValueError, match="qd_max"):
        MujocoSim(xml, joints, qd_max=[1.0, 2.0])
    with pytest.raises(ValueError, match="neither an MJCF string nor an existing file"):
        MujocoSim("/no/such/panda.xml", joints)
    with pytest.raises(ValueError, match="integrator"):
        MujocoSim(xml, joints, integrator="leapfrog")
    with pytest.raises(ValueError, match="only Sphere and Box"):
        MujocoSim.for_robot(robot, obstacles=[PointCloud(torch.rand(10, 3, dtype=D64))])
    with pytest.raises(ValueError, match="per-environment"):
        MujocoSim.for_robot(robot, obstacles=[Sphere(torch.zeros(2, 3, dtype=D64), 0.1)])
    with pytest.raises(ValueError, match="3-D"):
        MujocoSim.for_robot(robot, obstacles=[Sphere([0.0, 0.0], 0.1)])
    with pytest.raises(ValueError, match="FrankaPanda"):
        MujocoSim.for_robot(PlanarArm((0.3, 0.3)))
    sim = MujocoSim(xml, joints, qd_max=robot.qd_max)
    q = robot.default_q.unsqueeze(0)
    for bad in (robot.default_q, torch.zeros(1, 6, dtype=D64), torch.zeros(1, 7, dtype=torch.long)):
        with pytest.raises(ValueError, match=r"\(B, 7\)"):
            sim.step(bad, torch.zeros_like(q), torch.zeros_like(q))
        with pytest.raises(ValueError, match=r"\(B, 7\)"):
            sim.rollout(lambda q, qd: torch.zeros_like(q), bad, steps=1)
    with pytest.raises(ValueError, match="policy must return"):
        sim.rollout(lambda q, qd: torch.zeros(1, 6, dtype=D64), q, steps=1)
    with pytest.raises(ValueError, match="not differentiable"):
        sim.rollout(lambda q, qd: torch.zeros_like(q), q, steps=1, differentiable=True)
    with pytest.raises(ValueError, match="steps"):
        sim.rollout(lambda q, qd: torch.zeros_like(q), q, steps=0)
    with pytest.raises(ValueError, match="compiled MjModel"):
        MujocoSim(sim.model, joints, obstacles=[Sphere([1.0, 1.0, 1.0], 0.1)])


@needs_mujoco
def test_readme_mujoco_example_runs(capsys):
    import re

    blocks = [b for b in re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
              if "MujocoSim" in b]
    assert blocks, "README has no MujocoSim example"
    exec(compile(blocks[0], "README-mujoco", "exec"), {"__name__": "readme_mujoco"})
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("KinematicSim True") and lines[1].startswith("MujocoSim True")
    assert lines[0].split()[2:] == lines[1].split()[2:]  # same time to goal and clearance
    assert lines[2].startswith("0 0.0 ")  # no contact, no penetration
