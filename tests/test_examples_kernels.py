"""The kernels example (examples/kernels_sphere_kde.py) at a tiny size, by import (dense backend, no KeOps compile)."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _example():
    spec = importlib.util.spec_from_file_location("kernels_sphere_kde", ROOT / "examples" / "kernels_sphere_kde.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sphere_kde_example_synthetic(tmp_path, capsys):
    ex = _example()
    out = tmp_path / "kde.png"
    res = ex.main(["--data", "synthetic", "--n", "1500", "--grid", "72x36", "--bandwidths", "0.03,0.1,0.4", "--out", str(out)])
    text = capsys.readouterr().out
    # every candidate is printed with its held-out score, and the chosen one is the best
    for h in (0.03, 0.1, 0.4):
        assert f"bandwidth {h:.4g} rad" in text
    assert res["chosen"] == max(res["scores"], key=res["scores"].get)
    assert f"chosen bandwidth: {res['chosen']:.4g}" in text
    # the mixture is far from uniform: the selected KDE beats the uniform density on held-out points
    assert res["scores"][res["chosen"]] > -math.log(4 * math.pi) + 0.5
    # the normalised vMF KDE integrates to 1 over the sphere (grid cells of 5°, bandwidth >= 0.1 rad ≈ 5.7°)
    assert abs(res["integral"] - 1.0) < 0.03
    assert out.exists() and out.stat().st_size > 10_000 and out.read_bytes()[:4] == b"\x89PNG"


def test_latlon_loader(tmp_path):
    ex = _example()
    p = tmp_path / "pts.csv"
    p.write_text("# a comment\nLONGITUDE,LATITUDE\n0,0\n90,0\n-45,90\n")
    x = ex.load_latlon_csv(p)
    want = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert np.allclose(x, want, atol=1e-12)
    p2 = tmp_path / "noheader.csv"
    p2.write_text("0,90\n45,0\n")  # first column latitude without a header
    x2 = ex.load_latlon_csv(p2)
    assert np.allclose(x2[0], [0.0, 1.0, 0.0], atol=1e-12)
    assert np.allclose(x2[1], [math.sqrt(0.5), 0.0, math.sqrt(0.5)], atol=1e-12)
    bad = tmp_path / "bad.csv"
    bad.write_text("100,0\n")
    with pytest.raises(ValueError, match="latitudes"):
        ex.load_latlon_csv(bad)


def test_vmf_sampler_mean_resultant():
    # E⟨x, μ⟩ = coth κ − 1/κ for the vMF on S² (Mardia & Jupp 2000, eq. 9.3.9 with p = 3)
    ex = _example()
    rng = np.random.default_rng(0)
    mu = np.array([0.0, 0.6, 0.8])
    for kappa in (2.0, 50.0):
        x = ex.sample_vmf_s2(mu, kappa, 40_000, rng)
        assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-12)
        want = 1 / math.tanh(kappa) - 1 / kappa
        assert abs((x @ mu).mean() - want) < 0.01
