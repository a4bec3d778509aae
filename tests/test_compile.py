"""``torch.compile`` friendliness: the hot-path methods trace into one graph with no graph breaks.

A graph break is what a host sync (``.item()``, ``bool(tensor)``), a Python branch on a tensor
value, boolean-mask indexing or an untraceable call costs under ``torch.compile``; the design
rules (DESIGN.md, "No host syncs on hot paths") forbid all of them in ``dist`` / ``expmap`` /
``logmap``. ``torch._dynamo.explain(fn)(*args)`` traces ``fn`` without running a backend and
counts the breaks, so these tests are fast (well under a second per case after the first).

The SPD distances are checked with inputs that require grad too: then :func:`manifolds._linalg.
aim_dist` goes through its custom ``autograd.Function``, whose forward *and* backward dynamo
traces. One case also compiles ``aim_dist`` with the ``aot_eager`` backend (AOTAutograd traces
the backward) and compares its gradients with the eager ones.

Reference for the anchors' break counts: refs/core.md §1.5 (geoopt ``SPD.dist``: 3 breaks,
geomstats ``SPDAffineMetric.dist``: 8).
"""

from __future__ import annotations

import pytest
import torch

from manifolds import SPD, Sphere
from manifolds._linalg import aim_dist
from manifolds.lie import SO3, so3_log

try:  # torch.compile needs dynamo; it is missing on some platforms / Python versions
    import torch._dynamo as dynamo

    _DYNAMO_ERROR = None if torch._dynamo.is_dynamo_supported() else "torch._dynamo is not supported here"
except Exception as exc:  # pragma: no cover - platform dependent
    dynamo, _DYNAMO_ERROR = None, f"torch._dynamo unavailable: {exc!r}"

pytestmark = pytest.mark.skipif(_DYNAMO_ERROR is not None, reason=str(_DYNAMO_ERROR))

F64 = torch.float64


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    dynamo.reset()
    yield
    dynamo.reset()


def _explain(fn, *args):
    out = dynamo.explain(fn)(*args)
    reasons = [str(getattr(b, "reason", b))[:300] for b in out.break_reasons]
    return out.graph_count, out.graph_break_count, reasons


def _spd_pair(n=3, grad=False):
    g = torch.Generator().manual_seed(0)
    m = SPD(n)
    x = m.random(4, n, n, dtype=F64, generator=g)
    y = m.random(4, n, n, dtype=F64, generator=g)
    if grad:
        x.requires_grad_(True)
        y.requires_grad_(True)
    return x, y


# With inputs that require grad, the LEM distance goes through ``manifolds._linalg._SymFuncm``.
# Its forward-mode twin ``_SymFuncmFwd`` defines a custom ``jvp``, which dynamo (torch 2.13) does
# not trace; under torch.compile the plain class is used (``torch.compiler.is_compiling()``).
_CASES = [(m, g) for m in ("aim", "lem", "lcm", "bwm") for g in (False, True)]


@pytest.mark.parametrize("metric,grad", _CASES, ids=[f"{m}-{'grad' if g else 'no-grad'}" for m, g in _CASES])
def test_spd_dist_has_no_graph_break(metric, grad):
    x, y = _spd_pair(grad=grad)
    graphs, breaks, reasons = _explain(SPD(3, metric=metric).dist, x, y)
    assert breaks == 0, reasons
    assert graphs == 1


def test_sphere_dist_has_no_graph_break():
    s = Sphere(2)
    g = torch.Generator().manual_seed(1)
    x, y = s.random(5, 3, generator=g), s.random(5, 3, generator=g)
    graphs, breaks, reasons = _explain(s.dist, x, y)
    assert (graphs, breaks) == (1, 0), reasons


def _rotations():
    g = torch.Generator().manual_seed(2)
    r = SO3().random(6, 3, 3, dtype=F64, generator=g)
    # include the special angles 0 and π: the branch-free code must not depend on them
    r[0] = torch.eye(3, dtype=F64)
    r[1] = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=F64))
    return r


def test_so3_log_and_logmap_have_no_graph_break():
    r = _rotations()
    graphs, breaks, reasons = _explain(so3_log, r)
    assert (graphs, breaks) == (1, 0), reasons
    graphs, breaks, reasons = _explain(SO3().logmap, r, r.flip(0))
    assert (graphs, breaks) == (1, 0), reasons


def test_compiled_aim_dist_backward_matches_eager():
    x, y = _spd_pair(n=2, grad=True)
    compiled = torch.compile(aim_dist, backend="aot_eager", fullgraph=True)
    compiled(x, y).sum().backward()
    gx, gy = x.grad.clone(), y.grad.clone()
    x.grad = y.grad = None
    aim_dist(x, y).sum().backward()
    assert torch.allclose(gx, x.grad, rtol=1e-12, atol=1e-12)
    assert torch.allclose(gy, y.grad, rtol=1e-12, atol=1e-12)


_EXP_LOG_CASES = ["aim", "lem", "lcm", "power_affine"]


def _metric(name):
    from manifolds import AffineInvariantMetric

    return AffineInvariantMetric(theta=0.5, beta=0.1) if name == "power_affine" else name


@pytest.mark.parametrize("metric", _EXP_LOG_CASES)
def test_spd_expmap_logmap_with_grad_have_no_graph_break(metric):
    """expmap / logmap with inputs that require grad: the Daleckii–Krein autograd.Functions
    (sym_* and the Fréchet derivatives of LEM and the power deformation) trace in one graph."""
    M = SPD(3, metric=_metric(metric))
    x, y = _spd_pair(grad=True)
    for fn in (M.expmap, M.logmap):
        arg = 0.1 * (y - y.mT + y + y.mT) / 2 if fn is M.expmap else y
        graphs, breaks, reasons = _explain(fn, x, arg)
        assert breaks == 0, (fn, reasons)


def test_compiled_lem_expmap_backward_matches_eager():
    """AOTAutograd traces the second-order Daleckii–Krein backward (sorted-triple tables
    built inside the graph) and reproduces the eager gradients."""
    M = SPD(3, "lem")
    x, y = _spd_pair(n=3, grad=True)
    u = (0.1 * (y + y.mT)).detach().requires_grad_(True)
    compiled = torch.compile(M.expmap, backend="aot_eager", fullgraph=True)
    compiled(x, u).sum().backward()
    gx, gu = x.grad.clone(), u.grad.clone()
    x.grad = u.grad = None
    M.expmap(x, u).sum().backward()
    assert torch.allclose(gx, x.grad, rtol=1e-10, atol=1e-12)
    assert torch.allclose(gu, u.grad, rtol=1e-10, atol=1e-12)
