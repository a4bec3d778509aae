"""examples/earth_flow_matching.py end to end at a tiny size, on a small synthetic CSV (no real data needed)."""

import importlib.util
import math
from pathlib import Path

import torch

from manifold_rl.data.earth import EARTH_DATASETS

_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "earth_flow_matching.py"


def _load():
    spec = importlib.util.spec_from_file_location("earth_flow_matching_example", _EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_runs_and_writes_png(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    lat = 40 + 5 * torch.randn(60, generator=g)
    lon = -100 + 10 * torch.randn(60, generator=g)
    rows = "\n".join(f"{a:.4f},{b:.4f}" for a, b in zip(lat.tolist(), lon.tolist()))
    (tmp_path / EARTH_DATASETS["volcano"]).write_text("# synthetic\nLatitude,Longitude\n" + rows + "\n")
    out = tmp_path / "runs" / "map.png"
    mod = _load()
    rc = mod.main(["--dataset", "volcano", "--data", str(tmp_path), "--steps", "10", "--width", "32", "--depth", "2",
                   "--batch", "64", "--grid", "6", "--out", str(out)])
    assert rc == 0
    assert out.exists() and out.stat().st_size > 1000
    text = capsys.readouterr().out
    assert "test NLL" in text and "saved" in text
    # the printed grid mass of a density is close to 1 even for a barely trained flow (coarse grid)
    mass = float(text.rsplit("grid mass ", 1)[1].split(")")[0])
    assert abs(mass - 1) < 0.2
    nll = float(text.split("nats (uniform")[0].rsplit(":", 1)[1])
    assert math.isfinite(nll)


def test_kde_fallback_when_likelihood_module_is_missing(monkeypatch):
    import sys

    mod = _load()
    monkeypatch.setitem(sys.modules, "manifolds.flow_matching.likelihood", None)  # import raises ImportError
    model = mod.train(torch.nn.functional.normalize(torch.randn(50, 3), dim=-1), steps=2, width=16, depth=1, batch=16, lr=1e-3, seed=0)
    f, desc = mod.log_density_fn(model, 400, seed=0)
    assert desc.startswith("vMF KDE of 400 flow samples")
    x = torch.nn.functional.normalize(torch.randn(2000, 3, generator=torch.Generator().manual_seed(1)), dim=-1)
    # a density on S²: 4π E_unif[p] ≈ 1 (Monte Carlo, 2000 points; the KDE is broad here)
    v = 4 * math.pi * f(x).exp()
    assert abs(float(v.mean()) - 1) < 5 * float(v.std()) / math.sqrt(v.numel()) + 0.02
