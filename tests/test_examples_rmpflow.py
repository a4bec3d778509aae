"""examples/rmpflow_franka.py end to end, and a tiny configuration of benchmarks/bench_rmpflow.py (by import)."""

import importlib.util
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _load(rel, name):
    spec = importlib.util.spec_from_file_location(name, ROOT / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_franka_example_reaches_without_collision(tmp_path, capsys):
    ex = _load("examples/rmpflow_franka.py", "rmpflow_franka_example")
    png = tmp_path / "sub" / "franka.png"
    out = ex.main(["--out", str(png)])
    text = capsys.readouterr().out
    assert bool(out.reached[0]) and not bool(out.collided[0])
    assert float(out.goal_distance[0]) <= 0.01
    assert 0.02 < float(out.min_clearance[0]) < 0.1  # the path passes close to the first ball, never into it
    assert 1.0 < float(out.time_to_goal[0]) < 7.5
    assert "time to goal" in text and "min clearance" in text
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 20_000


def test_bench_scene_generators_are_valid_and_seeded():
    bm = _load("benchmarks/bench_rmpflow.py", "bench_rmpflow")
    q0, goal, C, R = bm.planar_scenes(5, seed=3)
    again = bm.planar_scenes(5, seed=3)
    assert all(torch.equal(a, b) for a, b in zip((q0, goal, C, R), again))
    assert ((goal.unsqueeze(1) - C).norm(dim=-1) - R >= 0.1).all() and (goal.norm(dim=-1) <= 0.75).all()
    assert ((R >= 0.05) & (R <= 0.10)).all()
    robot = bm.FrankaPanda()
    q0, qd0, goal, C, R = bm.franka_scenes(4, seed=1, robot=robot)
    assert ((q0 - robot.default_q).abs() <= 0.1).all() and (qd0.abs() <= 0.005).all()
    tcp = bm.franka_points(robot).psi(q0)[:, -3:]
    assert ((tcp - goal).norm(dim=-1) >= 0.5).all()
    assert ((goal.unsqueeze(1) - C).norm(dim=-1) - R >= 0.1).all()
    # sphere clearance of the start configuration to each ball ≥ the 0.1 m validity buffer
    for i in range(3):
        d = bm.Sphere(C[:, i], R[:, i]).distances(robot.sphere_centers(q0), robot.sphere_radii)
        assert (d >= 0.1).all()
    q0, goal, C, H, layout = bm.clutter_scenes(2, 3, seed=0, robot=robot)
    assert q0.shape == (6, 7) and layout.tolist() == [0, 0, 0, 1, 1, 1]
    assert (goal[:, 0] >= 0.6).all() and (C[..., 0] <= 0.52).all()  # targets behind the clutter


def test_bench_smoke(tmp_path, capsys):
    bm = _load("benchmarks/bench_rmpflow.py", "bench_rmpflow")
    jl = tmp_path / "r.jsonl"
    threads = torch.get_num_threads()
    try:
        res = bm.main(["--parts", "b,c,d,e", "--n-planar", "3", "--n-franka", "2", "--horizon-steps", "30",
                       "--n-targets", "1", "--clutter-timeout", "0.1", "--batches", "1,3", "--repeats", "3",
                       "--jsonl", str(jl)])
    finally:
        torch.set_num_threads(threads)  # main() pins one thread
    rows = [json.loads(line) for line in jl.read_text().splitlines()]
    assert [r["part"] for r in rows] == ["b", "c"] + ["d"] * 4 + ["e"] * 4
    for r in res["b"] + res["c"]:
        assert 0 <= r["success"] <= 1 and r["collisions"] == 0.0  # 30 steps from valid starts: no contact yet
    d = res["d"]
    assert [r["method"] for r in d][0].startswith("RMPflow") and all(r["trials"] == 6 for r in d)
    assert all(r["path_length_rad"] > 0 for r in d)  # every method moves the arm
    assert all(r["ms_per_step"] > 0 and r["robot_steps_per_s"] > 0 for r in res["e"])
    assert "| method |" in capsys.readouterr().out
