"""The README's usage example runs as written; importing the packages changes no global state."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_readme_usage_example_runs():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    code = blocks[0]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    assert float(lines[1]) > 0.999  # the Rayleigh quotient converged to the top eigenvector
    assert "torch.Size([200, 3])" in lines[-1]


@pytest.mark.slow
def test_readme_core_example_runs():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2, "README has no core example"
    r = subprocess.run([sys.executable, "-c", blocks[1]], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "nan" not in out.lower()
    assert "-0.5774" in out  # d/dx dist(x, 2I) at x = I is -I/√3
    assert "GeneralizedBuresWassersteinMetric" in out


def test_import_changes_no_global_state():
    code = """
import os, torch
before = (torch.get_default_dtype(), torch.get_num_threads(), dict(os.environ), torch.random.get_rng_state().clone())
import manifolds, kernels, manifold_rl
import manifolds.flow_matching, manifolds.diffusion, manifolds.nn, manifold_rl.policies, manifold_rl.data
import manifold_rl.lasa_job, manifold_rl.cli, manifold_rl.rmpflow, manifold_rl.baselines
after = (torch.get_default_dtype(), torch.get_num_threads(), dict(os.environ), torch.random.get_rng_state())
assert before[0] == after[0] and before[1] == after[1], (before[:2], after[:2])
assert before[2] == after[2], set(before[2].items()) ^ set(after[2].items())
assert torch.equal(before[3], after[3])
print("ok")
"""
    # a clean environment: variables that torch sets lazily (e.g. TORCHINDUCTOR_CACHE_DIR when
    # dynamo is imported) may already be in this worker's environment from earlier tests
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHINDUCTOR")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_readme_kernels_example_runs():
    text = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "import kernels" in b]
    assert blocks, "README has no kernels example"
    env = {**__import__("os").environ, "MANIFOLD_RL_KERNEL_BACKEND": "auto"}
    r = subprocess.run([sys.executable, "-c", blocks[0]], capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "nan" not in out.lower()
    assert "torch.Size([2000]) torch.Size([10, 5]) torch.Size([1500])" in out
