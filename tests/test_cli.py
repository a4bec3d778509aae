"""The ``manifold-rl`` command line, end to end on a tiny budget."""

import json
import subprocess
import sys

import pytest
import torch

from manifold_rl.cli import main
from manifold_rl.lasa_job import LasaJobConfig, load_checkpoint, run_lasa
from manifold_rl.policies import FlowMatchingPolicyConfig

TINY = ["--steps", "15", "--batch-size", "32", "--n-points", "40", "--hidden", "16", "--depth", "1", "--nfe-steps", "2", "--quiet"]


@pytest.mark.slow
def test_lasa_sphere_end_to_end(tmp_path):
    out = tmp_path / "run"
    assert main(["lasa", "--manifold", "sphere", "--shape", "Angle", "--out", str(out), *TINY]) == 0
    for name in ("metrics.json", "metrics.md", "plot.png", "checkpoint.pt"):
        assert (out / name).is_file(), name
    data = json.loads((out / "metrics.json").read_text())
    results = data["results"]
    assert set(results) >= {"RFM on S²", "Euclidean FM in R³ + normalise", "closest training demo (reference)"}
    rfm = results["RFM on S²"]
    for key in ("dtw", "dtw_mean", "state_mmd2", "jerkiness", "final_goal_distance", "max_drift", "latency_ms_median", "train_time_s"):
        assert key in rfm and rfm[key] == rfm[key], key  # present and not NaN
    # the Riemannian policy stays on the sphere; the ambient baseline does not (before normalising)
    assert rfm["max_drift"] < 1e-5
    assert results["Euclidean FM in R³ + normalise"]["max_drift"] > rfm["max_drift"]
    assert data["meta"]["shape"] == "Angle"
    # the checkpoint rebuilds both policies, which predict chunks on their manifolds
    policies = load_checkpoint(out / "checkpoint.pt")
    assert set(policies) == {"RFM on S²", "Euclidean FM in R³ + normalise"}
    obs = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])
    assert policies["RFM on S²"].predict(obs).shape == (1, 8, 3)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.slow
def test_lasa_euclidean_and_resume(tmp_path):
    cfg = LasaJobConfig(manifold="euclidean", n_points=30, steps=5, batch_size=16,
                        policy=FlowMatchingPolicyConfig(hidden=8, depth=1, n_steps=1))
    summary = run_lasa(["Angle", "Line"], tmp_path, cfg, progress=False)
    assert set(summary) == {"Angle", "Line"}
    assert json.loads((tmp_path / "summary.json").read_text()).keys() == {"Angle", "Line"}
    stamp = (tmp_path / "Angle" / "metrics.json").stat().st_mtime_ns
    run_lasa(["Angle", "Line"], tmp_path, cfg, progress=False)  # finished shapes are not recomputed
    assert (tmp_path / "Angle" / "metrics.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    "argv",
    [
        ["lasa", "--shape", "NotAShape"],
        ["lasa", "--shape", "Angle", "--steps", "-3"],
        ["lasa", "--shape", "Angle", "--manifold", "torus"],
        ["lasa", "--shape", "Angle", "--holdout", "7"],
        ["lasa", "--shape", "Angle", "--temperature", "2"],
        ["lasa", "--shape", "Angle", "--action-horizon", "1"],
        ["lasa"],
        [],
    ],
)
def test_invalid_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_console_script_help():
    r = subprocess.run([sys.executable, "-m", "manifold_rl.cli", "lasa", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--shape" in r.stdout
