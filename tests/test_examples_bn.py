"""The batch-norm example (examples/spdnet_connectomes.py) runs end to end and writes its plot."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_spdnet_connectomes_example_runs(tmp_path):
    out = tmp_path / "curve.png"
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "spdnet_connectomes.py"), "--epochs", "2", "--seed", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert sum(1 for ln in lines if ln.startswith("epoch ")) == 2
    final = re.search(r"final: train acc ([0-9.]+)%, test acc ([0-9.]+)%", r.stdout)
    assert final, r.stdout[-2000:]
    assert all(0.0 <= float(a) <= 100.0 for a in final.groups())
    assert "nan" not in r.stdout.lower()
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
