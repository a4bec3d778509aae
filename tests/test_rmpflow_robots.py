"""Robots and obstacles of manifold_rl.rmpflow: FK vs pytorch_kinematics, Jacobians and J̇q̇ vs finite
differences, batch = per-environment, box SDF vs a sampling oracle, point clouds via kernels vs dense."""

import math

import pytest
import torch

from manifold_rl.rmpflow.obstacles import Box, ObstacleDistanceMap, PointCloud, Sphere, sphere_distances
from manifold_rl.rmpflow.robots import FrankaPanda, PlanarArm, PointRobot, franka_fk, franka_urdf

D64 = torch.float64


def _fd_jacobian(psi, q, h=1e-6):
    cols = [(psi(q + h * e) - psi(q - h * e)) / (2 * h) for e in torch.eye(q.shape[1], dtype=q.dtype)]
    return torch.stack(cols, -1)


def _fd_jdot(psi, q, qd, h=1e-4):
    return (psi(q + h * qd) - 2 * psi(q) + psi(q - h * qd)) / h**2


def _franka_maps():
    r = FrankaPanda()
    return [r.control_point_map(), r.end_effector_map(), r.end_effector_map("flange"), r.orientation_map(),
            r.orientation_map(axis=2), r.control_point_map(links=[7, 8])]


def _rand_q(B, gen):
    r = FrankaPanda()
    u = torch.rand(B, 7, dtype=D64, generator=gen)
    return r.q_min + u * (r.q_max - r.q_min)


@pytest.mark.parametrize("k", range(6))
def test_franka_jacobian_and_jdot_vs_fd(k):
    gen = torch.Generator().manual_seed(k)
    m = _franka_maps()[k]
    q, qd = _rand_q(5, gen), torch.randn(5, 7, dtype=D64, generator=gen)
    out = m(q, qd)
    assert out.x.shape == (5, m.out_dim) and out.J.shape == (5, m.out_dim, 7)
    torch.testing.assert_close(out.x, m.psi(q), rtol=0, atol=1e-14)
    torch.testing.assert_close(out.J, _fd_jacobian(m.psi, q), rtol=0, atol=1e-8)
    torch.testing.assert_close(out.Jdot_qd, _fd_jdot(m.psi, q, qd), rtol=0, atol=1e-5)
    torch.testing.assert_close(out.xd, torch.einsum("bmn,bn->bm", out.J, qd))
    # forward-mode Jacobian of the core agrees with the analytic one
    torch.testing.assert_close(m.evaluate(q, qd, "forward").J, out.J, rtol=0, atol=1e-12)


def test_franka_batch_equals_per_env_and_float32():
    gen = torch.Generator().manual_seed(1)
    m = FrankaPanda().control_point_map()
    q, qd = _rand_q(4, gen), torch.randn(4, 7, dtype=D64, generator=gen)
    out = m(q, qd)
    for b in range(4):
        o = m(q[b:b + 1], qd[b:b + 1])
        for f in ("x", "J", "Jdot_qd"):
            torch.testing.assert_close(getattr(o, f), getattr(out, f)[b:b + 1], rtol=0, atol=1e-13)
    o32 = m(q.float(), qd.float())
    assert o32.x.dtype == torch.float32
    torch.testing.assert_close(o32.Jdot_qd.double(), out.Jdot_qd, rtol=0, atol=1e-4)


def test_franka_fk_vs_pytorch_kinematics_dh_urdf():
    pk = pytest.importorskip("pytorch_kinematics")
    chain = pk.build_serial_chain_from_urdf(franka_urdf().encode(), "panda_link8").to(dtype=D64)
    gen = torch.Generator().manual_seed(2)
    q = _rand_q(16, gen)
    fk = chain.forward_kinematics(q, end_only=False)
    Tpk = torch.stack([fk[f"panda_link{i}"].get_matrix() for i in range(1, 9)], 1)
    # pytorch_kinematics parses the URDF constants in float32 first: agreement to ~1e-7
    torch.testing.assert_close(franka_fk(q), Tpk, rtol=0, atol=1e-6)
    # geometric Jacobian of the flange origin vs pk
    J = chain.jacobian(q)[:, :3]
    Jm = FrankaPanda().end_effector_map("flange")(q, torch.zeros_like(q)).J
    torch.testing.assert_close(Jm, J, rtol=0, atol=1e-6)
    # known configuration: q = 0 puts the flange at (0.088, 0, 0.926)
    T0 = franka_fk(torch.zeros(1, 7, dtype=D64))
    torch.testing.assert_close(T0[0, 7, :3, 3], torch.tensor([0.088, 0.0, 0.926], dtype=D64))


def test_franka_pybullet_urdf_if_available():
    pybullet_data = pytest.importorskip("pybullet_data")
    pk = pytest.importorskip("pytorch_kinematics")
    import os
    path = os.path.join(pybullet_data.getDataPath(), "franka_panda/panda.urdf")
    chain = pk.build_serial_chain_from_urdf(open(path, "rb").read(), "panda_link8").to(dtype=D64)
    q = _rand_q(8, torch.Generator().manual_seed(3))
    T = chain.forward_kinematics(q).get_matrix()
    torch.testing.assert_close(franka_fk(q)[:, 7], T, rtol=0, atol=1e-6)


def test_franka_spheres_and_limits():
    r = FrankaPanda()
    assert r.sphere_radii.shape == r.sphere_links.shape and bool((r.sphere_radii > 0).all())
    c = r.sphere_centers(r.default_q.unsqueeze(0))
    assert c.shape == (1, r.sphere_radii.numel(), 3)
    assert bool((c[..., 2] > -0.05).all())  # default posture stays above the table
    torch.testing.assert_close(r.control_point_map().psi(r.default_q.unsqueeze(0)).reshape(1, -1, 3), c)
    assert FrankaPanda(include_base=True).sphere_radii.numel() == r.sphere_radii.numel() + 2
    assert r.qd_max.tolist() == [2.175] * 4 + [2.61] * 3
    assert bool((r.q_min < r.q_max).all())


def test_urdf_robot_matches_builtin_and_errors():
    pytest.importorskip("pytorch_kinematics")
    from manifold_rl.rmpflow.robots.urdf import URDFRobot

    u = URDFRobot(franka_urdf(), "panda_link8")
    r = FrankaPanda()
    torch.testing.assert_close(u.q_min, r.q_min)
    torch.testing.assert_close(u.qd_max, r.qd_max)
    gen = torch.Generator().manual_seed(4)
    q, qd = _rand_q(3, gen), torch.randn(3, 7, dtype=D64, generator=gen)
    pts = [(f"panda_link{int(k)}", o.tolist()) for k, o in zip(r.sphere_links, r.sphere_offsets)]
    a, b = u.point_map(pts)(q, qd), r.control_point_map()(q, qd)
    for f in ("x", "J"):
        torch.testing.assert_close(getattr(a, f), getattr(b, f), rtol=0, atol=1e-6)
    torch.testing.assert_close(a.Jdot_qd, b.Jdot_qd, rtol=0, atol=1e-5)
    om = u.orientation_map(axis=1)
    o = om(q, qd)
    torch.testing.assert_close(o.J, _fd_jacobian(om.psi, q), rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="available links"):
        u.point_map([("panda_hand_typo", (0, 0, 0))])
    with pytest.raises(ValueError, match="available links"):
        URDFRobot(franka_urdf(), "nope")
    with pytest.raises(ValueError):
        u.point_map([("panda_link1", (0, 0, 0))], radii=[-0.1])


def test_planar_arm_kinematics():
    arm = PlanarArm((0.3, 0.2, 0.25))
    gen = torch.Generator().manual_seed(5)
    q, qd = torch.randn(6, 3, dtype=D64, generator=gen), torch.randn(6, 3, dtype=D64, generator=gen)
    for m in (arm.control_point_map(), arm.end_effector_map(), arm.joint_points_map()):
        out = m(q, qd)
        torch.testing.assert_close(out.J, _fd_jacobian(m.psi, q), rtol=0, atol=1e-8)
        torch.testing.assert_close(out.Jdot_qd, _fd_jdot(m.psi, q, qd), rtol=0, atol=1e-5)
    ee = arm.end_effector_map().psi(torch.tensor([[math.pi / 2, -math.pi / 2, 0.0]], dtype=D64))
    torch.testing.assert_close(ee, torch.tensor([[0.45, 0.3]], dtype=D64))
    assert arm.sphere_centers(q).shape == (6, 15, 2)
    with pytest.raises(ValueError):
        PlanarArm((0.3, -0.1))
    with pytest.raises(ValueError):
        PlanarArm(radius=-0.1)
    pr = PointRobot()
    o = pr.control_point_map()(q[:, :2], qd[:, :2])
    torch.testing.assert_close(o.x, q[:, :2])
    with pytest.raises(ValueError):
        PointRobot(radius=-1.0)


# ------------------------------------------------------------------------------------------ obstacles
def _rotation(gen):
    Q, R = torch.linalg.qr(torch.randn(3, 3, dtype=D64, generator=gen))
    Q = Q * torch.sign(torch.diagonal(R))
    return Q if torch.det(Q) > 0 else -Q


def _box_oracle(c, h, R, x, n=60):
    """Brute force: distance to a dense sample of the box surface, sign from an inside test."""
    g = torch.linspace(-1, 1, n, dtype=D64)
    a, b = torch.meshgrid(g, g, indexing="ij")
    faces = []
    for i in range(3):
        j, k = [t for t in range(3) if t != i]
        for s in (-1.0, 1.0):
            p = torch.zeros(n * n, 3, dtype=D64)
            p[:, i], p[:, j], p[:, k] = s, a.reshape(-1), b.reshape(-1)
            faces.append(p)
    surf = torch.cat(faces) * h @ R.T + c
    d = torch.cdist(x, surf).min(-1).values
    inside = (((x - c) @ R).abs() <= h).all(-1)
    return torch.where(inside, -d, d)


def test_box_sdf_vs_sampling_oracle_and_gradient():
    gen = torch.Generator().manual_seed(6)
    c, h, R = torch.tensor([0.1, -0.2, 0.3], dtype=D64), torch.tensor([0.3, 0.2, 0.4], dtype=D64), _rotation(gen)
    box = Box(c, h, R)
    x = c + 0.8 * torch.randn(1, 400, 3, dtype=D64, generator=gen)
    phi = box.sdf(x)[0]
    spacing = 2 * 0.4 / 59  # oracle resolution: error ≤ half the grid diagonal
    assert float((phi - _box_oracle(c, h, R, x[0])).abs().max()) < spacing
    # face, edge and corner regions plus inside: gradient and curvature vs finite differences
    loc = torch.tensor([[0.5, 0.0, 0.0], [0.5, 0.35, 0.0], [0.5, 0.35, 0.6], [0.1, 0.05, 0.1], [0.0, 0.0, -0.3]], dtype=D64)
    x = (loc @ R.T + c).unsqueeze(0)
    v = torch.randn(1, 5, 3, dtype=D64, generator=gen)
    phi, g, hv = box.sdf_derivatives(x, v)
    gfd = torch.stack([(box.sdf(x + 1e-6 * e) - box.sdf(x - 1e-6 * e)) / 2e-6 for e in torch.eye(3, dtype=D64)], -1)
    torch.testing.assert_close(g, gfd, rtol=0, atol=1e-8)
    torch.testing.assert_close(hv, _fd_jdot(box.sdf, x, v, h=1e-4), rtol=0, atol=1e-5)
    torch.testing.assert_close(phi[0, :3], torch.tensor([0.2, math.hypot(0.2, 0.15), math.sqrt(0.2**2 + 0.15**2 + 0.2**2)], dtype=D64))
    assert float(phi[0, 3]) == pytest.approx(-0.15) and float(phi[0, 4]) == pytest.approx(-0.1)


@pytest.mark.parametrize("kind", ["sphere", "box", "nearest", "softmin"])
def test_obstacle_distance_map_vs_fd(kind):
    gen = torch.Generator().manual_seed(7)
    cloud = torch.randn(100, 3, dtype=D64, generator=gen)
    ob = {"sphere": Sphere([0.2, 0.1, 0.0], 0.3), "box": Box([0.0, 0.1, 0.2], [0.2, 0.3, 0.1], _rotation(gen)),
          "nearest": PointCloud(cloud, backend="dense"),
          "softmin": PointCloud(cloud, mode="softmin", temperature=0.05, k=100, backend="dense")}[kind]
    K = 4
    radii = torch.full((K,), 0.05, dtype=D64)
    m = ObstacleDistanceMap(ob, radii)
    x, xd = torch.randn(4, 3 * K, dtype=D64, generator=gen), torch.randn(4, 3 * K, dtype=D64, generator=gen)
    out = m(x, xd)
    assert out.x.shape == (4, K) and out.J.shape == (4, K, 3 * K)
    torch.testing.assert_close(out.J, _fd_jacobian(m.psi, x), rtol=0, atol=1e-7)
    torch.testing.assert_close(out.Jdot_qd, _fd_jdot(m.psi, x, xd), rtol=0, atol=2e-4)
    # composed with the Franka control points: the chain rule of the tree
    torch.testing.assert_close(out.x, ob.distances(x.reshape(4, K, 3), radii))


def test_point_cloud_via_kernels_vs_dense():
    gen = torch.Generator().manual_seed(8)
    P = torch.randn(2000, 3, dtype=D64, generator=gen)
    c = torch.randn(2, 10, 3, dtype=D64, generator=gen)
    r = torch.full((10,), 0.02, dtype=D64)
    dense = torch.cdist(c, P.unsqueeze(0).expand(2, -1, -1)).min(-1).values - r
    torch.testing.assert_close(PointCloud(P).distances(c, r), dense, rtol=0, atol=1e-10)
    torch.testing.assert_close(PointCloud(P, backend="chunked").distances(c, r), dense, rtol=0, atol=1e-10)
    tau = 0.05
    soft = -tau * torch.logsumexp(-torch.cdist(c, P.unsqueeze(0).expand(2, -1, -1)) / tau, -1) - r
    torch.testing.assert_close(PointCloud(P, mode="softmin", temperature=tau, k=2000).distances(c, r), soft, rtol=0, atol=1e-10)
    # per-environment clouds
    Pb = torch.stack([P, P + 1.0])
    d = PointCloud(Pb).distances(c, r)
    torch.testing.assert_close(d[1], torch.cdist(c[1], P + 1.0).min(-1).values - r, rtol=0, atol=1e-10)


def test_obstacles_batch_per_env_and_bad_input():
    gen = torch.Generator().manual_seed(9)
    cen = torch.randn(3, 3, dtype=D64, generator=gen)
    rad = torch.tensor([0.1, 0.2, 0.3], dtype=D64)
    x = torch.randn(3, 5, 3, dtype=D64, generator=gen)
    r = torch.full((5,), 0.01, dtype=D64)
    batched = Sphere(cen, rad).distances(x, r)
    for b in range(3):
        torch.testing.assert_close(batched[b:b + 1], Sphere(cen[b], rad[b]).distances(x[b:b + 1], r))
    d = sphere_distances([Sphere(cen[0], 0.1), Box(cen[1], [0.1, 0.1, 0.1])], x, r)
    assert d.shape == (3, 5, 2)
    with pytest.raises(ValueError):
        Sphere([0.0, 0.0, 0.0], -0.1)
    with pytest.raises(ValueError):
        Box([0.0, 0.0, 0.0], [0.1, -0.1, 0.1])
    with pytest.raises(ValueError):
        Box([0.0, 0.0, 0.0], [0.1, 0.1, 0.1], torch.ones(3, 3))
    with pytest.raises(ValueError):
        Sphere([0.0, 0.0, 0.0], 0.1).distances(x, -r)
    with pytest.raises(ValueError):
        Sphere([0.0, 0.0, 0.0], 0.1).distances(x[..., :2], r)
    with pytest.raises(ValueError):
        ObstacleDistanceMap(Sphere([0.0, 0.0, 0.0], 0.1), [-0.1, 0.1])
    with pytest.raises(ValueError):
        PointCloud(torch.zeros(0, 3))
    with pytest.raises(ValueError):
        FrankaPanda().control_point_map(links=[9])
    with pytest.raises(ValueError):
        franka_fk(torch.zeros(2, 6, dtype=D64))
