"""Memory accounting of the chunked / automatic backends (:mod:`kernels._backend`).

The oracle for "real temporaries" is the c10 allocator as seen by the torch profiler
(``profile_memory=True``: one signed ``[memory]`` event per allocation / free, including the
work buffers that kernels allocate internally and that a dispatch mode cannot see); the
peak of the running sum of those events is the live memory peak of the measured call.
"""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from kernels import _backend, kernel_sum
from kernels._backend import estimate_pair_bytes, reduce_pairs, resolve_backend
from kernels.reductions import _kernel_term
from manifolds import SO3, SPD, Hyperboloid, Product, Sphere, Euclidean

F64, F32 = torch.float64, torch.float32


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _points(name, n, seed, dtype=F64):
    g = _gen(seed)
    if name == "sphere":
        return Sphere(2), torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=dtype), dim=-1)
    if name == "so3":
        M = SO3()
        q = torch.nn.functional.normalize(torch.randn(n, 4, generator=g, dtype=F64), dim=-1)
        w, v = q[:, :1], q[:, 1:]
        vx = torch.zeros(n, 3, 3, dtype=F64)
        vx[:, 0, 1], vx[:, 0, 2], vx[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
        vx = vx - vx.transpose(-1, -2)
        eye = torch.eye(3, dtype=F64)
        r = eye + 2 * w[..., None] * vx + 2 * vx @ vx  # unit quaternion -> rotation matrix
        return M, r.to(dtype)
    if name == "hyperboloid":
        M = Hyperboloid(2)
        u = torch.randn(n, 2, generator=g, dtype=F64)
        return M, torch.cat([torch.sqrt(1 + (u * u).sum(-1, keepdim=True)), u], -1).to(dtype)
    if name in ("spd_lem", "spd_aim"):
        M = SPD(3, name[4:])
        a = torch.randn(n, 3, 3, generator=g, dtype=F64)
        return M, (a @ a.transpose(-1, -2) + 0.5 * torch.eye(3, dtype=F64)).to(dtype)
    if name == "product":
        M = Product([Sphere(2), Euclidean(2)])
        s = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=F64), dim=-1)
        return M, torch.cat([s, torch.randn(n, 2, generator=g, dtype=F64)], -1).to(dtype)
    raise KeyError(name)


def _profiled_peak(fn):
    """Peak live bytes allocated by ``fn()`` above the level at its start (allocator events)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in p.profiler.kineto_results.events() if e.name() == "[memory]")
    live = peak = 0
    for _, b in events:
        live += b
        peak = max(peak, live)
    return peak


def _run(M, fx, fy, term, reduction, w, k, grad):
    px = fx.detach().requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        out = _backend._reduce_torch(M, px, fy, term, reduction, w, k)
        if grad:
            torch.autograd.grad(out, px, torch.ones_like(out))


CASES = [
    ("sphere", "sum", False),
    ("sphere", "sum", True),
    ("sphere", "logsumexp", True),
    ("sphere", "argkmin", False),
    ("so3", "sum", True),
    ("hyperboloid", "sum", True),
    ("hyperboloid", "logsumexp", False),
    ("spd_lem", "sum", False),
    ("spd_lem", "sum", True),
    ("spd_aim", "sum", True),
    ("product", "vector", True),
]


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name,mode,grad", CASES)
def test_estimate_bounds_measured_peak(name, mode, grad, dtype):
    n = m = 40 if name == "spd_aim" else 64
    M, x = _points(name, n + m, 0, dtype)
    fx, fy = M.kernel_features(x[:n]), M.kernel_features(x[n:])
    reduction = {"vector": "sum"}.get(mode, mode)
    k = 5 if reduction == "argkmin" else None
    term = None if k else _kernel_term(M, "gaussian", 0.7, log=reduction == "logsumexp")
    w = torch.randn(m, 3, generator=_gen(1), dtype=dtype) if mode == "vector" else None
    est = estimate_pair_bytes(M, fx.detach().requires_grad_(grad), fy, term, reduction, w, k, grad=grad)
    peak = _profiled_peak(lambda: _run(M, fx, fy, term, reduction, w, k, grad))
    # the whole peak (pair temporaries plus the O(n + m) outputs and gradients) is covered
    assert est * n * m >= peak, (est, peak / (n * m))
    # and the estimate is an upper bound, not a wild one
    assert est * n * m <= 8 * peak, (est, peak / (n * m))


def test_estimate_cached_per_formula(monkeypatch):
    M, x = _points("sphere", 20, 2)
    fx = M.kernel_features(x)
    probes = []
    orig = _backend._probe_total
    monkeypatch.setattr(_backend, "_probe_total", lambda *a: probes.append(1) or orig(*a))
    _backend._PAIR_BYTES.pop(M, None)
    e1 = estimate_pair_bytes(M, fx, fx, _kernel_term(M, "gaussian", 0.3, False), "sum")
    assert len(probes) == 4  # the four probe sizes of the mixed difference
    # another bandwidth (a float closure value) is the same formula: no new probe
    e2 = estimate_pair_bytes(M, fx, fx, _kernel_term(M, "gaussian", 2.0, False), "sum")
    assert e2 == e1 and len(probes) == 4
    # the log-kernel, another reduction, gradients, another dtype are other formulas
    estimate_pair_bytes(M, fx, fx, _kernel_term(M, "gaussian", 0.3, True), "sum")
    estimate_pair_bytes(M, fx, fx, _kernel_term(M, "gaussian", 0.3, False), "logsumexp")
    estimate_pair_bytes(M, fx.requires_grad_(True), fx, _kernel_term(M, "gaussian", 0.3, False), "sum")
    estimate_pair_bytes(M, fx.detach().float(), fx.float(), _kernel_term(M, "gaussian", 0.3, False), "sum")
    assert len(probes) == 20
    # reduce_pairs reuses the cache
    kernel_sum(M, x, x, bandwidth=0.5, backend="chunked")
    assert len(probes) == 20


def _short(d, ops):
    return ops.exp(-d)


def _long(d, ops):
    s = ops.sin(0.5 * d)
    c = ops.sin(0.5 * d + 1.5707963267948966)
    q = s * s * c + ops.exp(-d * d) * ops.log(1 + d * d) + ops.sqrt(1 + d) * ops.asinh(s)
    return ops.exp(-q * q) + q


def test_blocks_shrink_for_longer_formula(monkeypatch):
    M, x = _points("hyperboloid", 300, 3)
    fx = M.kernel_features(x).requires_grad_(True)
    rows = []
    orig = _backend._rows_per_block
    monkeypatch.setattr(_backend, "_rows_per_block", lambda *a: rows.append(orig(*a)) or rows[-1])
    budget = 2**20
    outs = []
    for term in (_short, _long):
        out = reduce_pairs(M, fx, fx, term, backend="chunked", memory_budget=budget, features=True)
        (g,) = torch.autograd.grad(out.sum(), fx)
        dense = reduce_pairs(M, fx, fx, term, backend="dense", features=True)
        (gd,) = torch.autograd.grad(dense.sum(), fx)
        torch.testing.assert_close(out, dense, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(g, gd, rtol=1e-12, atol=1e-12)
        outs.append(estimate_pair_bytes(M, fx, fx, term, "sum"))
    short, long = outs
    assert long > 1.5 * short
    assert rows == [int(budget // (300 * short)), int(budget // (300 * long))]
    assert 1 <= rows[1] < rows[0]


def test_chunked_peak_within_budget():
    """The whole chunked forward + backward stays near the budget (the old 8-temporaries rule
    allowed ≈ 3× the budget for this formula)."""
    M, x = _points("spd_lem", 1200, 4, F32)
    fx = M.kernel_features(x)
    fy = fx[600:].detach()
    fx = fx[:600].detach().requires_grad_(True)
    term = _kernel_term(M, "gaussian", 0.5, False)
    budget = 2**20

    def run():
        out = reduce_pairs(M, fx, fy, term, backend="chunked", memory_budget=budget, features=True)
        torch.autograd.grad(out.sum(), fx)

    estimate_pair_bytes(M, fx, fy, term, "sum")  # warm the cache (the probe is not the point here)
    peak = _profiled_peak(run)
    linear = 16 * 1200 * fx.shape[-1] * 4  # a few (n + m) × F buffers: outputs, gradients, copies
    assert peak <= budget + linear, peak / 2**20
    assert peak >= 0.2 * budget  # the budget is used, not wasted on one-row blocks


def test_chunk_at_least_one_row():
    M, x = _points("sphere", 9, 5)
    a = kernel_sum(M, x, x, bandwidth=0.4, backend="chunked", memory_budget=1)
    b = kernel_sum(M, x, x, bandwidth=0.4, backend="dense")
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_auto_uses_the_estimate(monkeypatch):
    M, x = _points("spd_aim", 30, 6)  # no KeOps formula: auto is dense or chunked
    fx = M.kernel_features(x)
    chosen = []
    orig = _backend._reduce_chunked
    monkeypatch.setattr(_backend, "_reduce_chunked", lambda *a, **kw: chosen.append("chunked") or orig(*a, **kw))
    short, long = (estimate_pair_bytes(M, fx, fx, t, "sum") for t in (_short, _long))
    budget = 30 * 30 * (short + long) / 2  # fits the short formula, not the long one
    reduce_pairs(M, x, x, _short, backend="auto", memory_budget=budget)
    assert chosen == []
    reduce_pairs(M, x, x, _long, backend="auto", memory_budget=budget)
    assert chosen == ["chunked"]
    # explicit backends never evaluate the estimate; the fallback is 8 temporaries
    boom = lambda: (_ for _ in ()).throw(AssertionError("evaluated"))  # noqa: E731
    assert resolve_backend("dense", manifold=M, n_pairs=10**12, itemsize=8, device="cpu", pair_bytes=boom) == "dense"
    assert resolve_backend("auto", manifold=M, n_pairs=100, itemsize=8, device="cpu", memory_budget=6400) == "dense"
    assert resolve_backend("auto", manifold=M, n_pairs=100, itemsize=8, device="cpu", memory_budget=6399) == "chunked"
    assert resolve_backend("auto", manifold=M, n_pairs=100, itemsize=8, device="cpu", memory_budget=6400, pair_bytes=65.0) == "chunked"


# ---------------------------------------------------------------------------- chunked backward
def _grad_fn_names(t):
    """Names of every node of ``t``'s autograd graph."""
    names, stack, seen = set(), [t.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(nxt for nxt, _ in node.next_functions)
    return names


def _one_row_budget(M, fx, fy, term, reduction, w):
    """A budget giving blocks of 1–2 rows with gradients (``batch = 1``; for batches, fewer)."""
    return 1.5 * fy.shape[-2] * estimate_pair_bytes(M, fx, fy, term, reduction, w, grad=True)


@pytest.mark.parametrize("mode", ["sum", "sum_w", "sum_vec", "lse", "lse_w"])
def test_chunked_function_gradcheck(mode):
    """float64 gradcheck / gradgradcheck of the block-wise backward, batch dims broadcast:
    x ``(2, 1, 3, F)`` against y ``(3, 4, F)`` and weights ``(4,)`` / ``(1, 3, 4, 2)``."""
    M, p = _points("sphere", 2 * 3 + 3 * 4, 7)
    fx = M.kernel_features(p[:6]).reshape(2, 1, 3, 3).requires_grad_(True)
    fy = M.kernel_features(p[6:]).reshape(3, 4, 3).requires_grad_(True)
    reduction = "logsumexp" if mode.startswith("lse") else "sum"
    term = _kernel_term(M, "gaussian", 0.7, log=reduction == "logsumexp")
    w = {"sum_w": torch.randn(4, generator=_gen(8), dtype=F64), "lse_w": torch.randn(4, generator=_gen(8), dtype=F64),
         "sum_vec": torch.randn(1, 3, 4, 2, generator=_gen(8), dtype=F64)}.get(mode)
    ins = (fx, fy) if w is None else (fx, fy, w.requires_grad_(True))
    budget = _one_row_budget(M, fx.expand(2, 3, 3, 3), fy.expand(2, 3, 4, 3), term, reduction,
                             None if w is None else w.expand((2, 3) + w.shape[(-2 if mode == "sum_vec" else -1):]))

    def f(*a):
        return reduce_pairs(M, a[0], a[1], term, reduction=reduction, weights=a[2] if len(a) > 2 else None,
                            backend="chunked", memory_budget=budget, features=True)

    out = f(*ins)
    assert "_ChunkedReduceBackward" in _grad_fn_names(out)
    assert "CheckpointFunctionBackward" not in _grad_fn_names(out)
    dense = reduce_pairs(M, fx, fy, term, reduction=reduction, weights=ins[2] if w is not None else None, backend="dense", features=True)
    v = torch.randn(out.shape, generator=_gen(9), dtype=F64)
    g_c = torch.autograd.grad((out * v).sum(), ins)
    g_d = torch.autograd.grad((dense * v).sum(), ins)
    for a, b in zip(g_c, g_d):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert torch.autograd.gradcheck(f, ins)
    if mode in ("sum_w", "lse"):  # the double backward (differentiable recomputation)
        assert torch.autograd.gradgradcheck(f, ins)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", ["sphere", "so3", "hyperboloid", "spd_lem"])
def test_chunked_function_matches_dense(name, dtype):
    """kernel_sum's value, gradients in x, y and the weights, and a Hessian-vector product:
    chunked (several blocks) = dense to rounding."""
    M, p = _points(name, 30, 10, dtype)
    b = torch.randn(12, generator=_gen(11), dtype=dtype)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == F32 else dict(rtol=1e-11, atol=1e-13)
    res = {}
    for be in ("dense", "chunked"):
        x, y, bb = (t.detach().clone().requires_grad_(True) for t in (p[:18], p[18:], b))
        out = kernel_sum(M, x, y, bb, bandwidth=0.9, backend=be, memory_budget=12 * 40 * 4 * 8)
        if be == "chunked":
            assert "_ChunkedReduceBackward" in _grad_fn_names(out)
        v = torch.randn(out.shape, generator=_gen(12), dtype=dtype)
        second = not name.startswith("spd")  # SPD matrix functions: first-order gradients only
        gx, gy, gb = torch.autograd.grad((out * v).sum(), (x, y, bb), create_graph=second)
        hvp = ()
        if second:
            u = torch.randn(x.shape, generator=_gen(13), dtype=dtype)
            hvp = torch.autograd.grad((gx * u).sum(), (x, y, bb))
        res[be] = (out, gx, gy, gb) + hvp
    for a, c in zip(res["dense"], res["chunked"]):
        torch.testing.assert_close(c.detach(), a.detach(), **tol)


def test_chunked_backward_recomputes_block_by_block(monkeypatch):
    """The forward runs each block once without autograd; the backward recomputes the same
    blocks one at a time (4 blocks of ≤ 2 rows for N = 7)."""
    M, p = _points("sphere", 12, 14)
    fx = M.kernel_features(p[:7]).requires_grad_(True)
    fy = M.kernel_features(p[7:])
    term = _kernel_term(M, "gaussian", 0.5, False)
    pb = estimate_pair_bytes(M, fx, fy, term, "sum", grad=True)
    calls = []
    orig = _backend._reduce_torch
    monkeypatch.setattr(_backend, "_reduce_torch", lambda M_, a, *r: calls.append((a.shape[-2], torch.is_grad_enabled())) or orig(M_, a, *r))
    out = reduce_pairs(M, fx, fy, term, backend="chunked", memory_budget=2.5 * 5 * pb, features=True)
    fwd = [c for c in calls if c[0] != 1 or not c[1]]  # drop the 1-row probe of _foreign_grad_leaves
    assert calls[0] == (1, True) and fwd == [(2, False), (2, False), (2, False), (1, False)]
    calls.clear()
    torch.autograd.grad(out.sum(), fx)
    assert calls == [(2, True), (2, True), (2, True), (1, True)]


def _learnable_term(log_h):
    def term(d, ops):
        c = -0.5 * torch.exp(-2 * log_h)  # 1/(2h²), a tensor requiring grad
        return ops.exp(c * (d * d))

    return term


def test_chunked_keeps_closure_and_manifold_gradients():
    """A term closing over a learnable bandwidth and a learnable curvature read by kernel_dist:
    both get the dense gradient (the chunked backend detects them and checkpoints)."""
    from manifolds import Stereographic

    log_h = torch.tensor(-0.2, dtype=F64, requires_grad=True)
    term = _learnable_term(log_h)
    M, p = _points("sphere", 20, 15)
    fx = M.kernel_features(p[:10])
    assert _backend._foreign_grad_leaves(M, fx, fx, term, "sum", None, None)
    assert not _backend._foreign_grad_leaves(M, fx, fx, _kernel_term(M, "gaussian", 0.5, False), "sum", None, None)
    S = Stereographic(2, k=torch.tensor(-0.5, dtype=F64), learnable=True)
    u = 0.3 * torch.randn(20, 2, generator=_gen(16), dtype=F64)
    for man, pts in ((M, p), (S, u)):
        grads = {}
        for be in ("dense", "chunked"):
            x = pts[:10].detach().clone().requires_grad_(True)
            out = reduce_pairs(man, x, pts[10:], term, backend=be, memory_budget=10 * 8 * 64 * 3)
            wrt = (x, log_h) + tuple(q for q in man.parameters() if q.requires_grad) if hasattr(man, "parameters") else (x, log_h)
            grads[be] = torch.autograd.grad(out.square().sum(), wrt)
            if be == "chunked":
                assert "_ChunkedReduceBackward" not in _grad_fn_names(out)  # the checkpointed path
        assert len(grads["dense"]) == (3 if man is S else 2)
        for a, c in zip(grads["dense"], grads["chunked"]):
            assert float(a.abs().max()) > 0
            torch.testing.assert_close(c, a, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", ["x", "xyw_sum", "xyw_lse"])
def test_chunked_function_peak_within_budget(case):
    """The block-wise backward (grads of fx, fy and the weights) stays near the budget; the
    forward + backward goes through :class:`_ChunkedReduce`."""
    M, x = _points("sphere", 1200, 17, F32)
    f = M.kernel_features(x)
    fx = f[:600].detach().requires_grad_(True)
    fy = f[600:].detach().requires_grad_(case != "x")
    w = None if case == "x" else torch.randn(600, generator=_gen(18)).requires_grad_(True)
    reduction = "logsumexp" if case == "xyw_lse" else "sum"
    term = _kernel_term(M, "gaussian", 0.5, reduction == "logsumexp")
    budget = 2**20
    wrt = [t for t in (fx, fy, w) if t is not None and t.requires_grad]
    names = []

    def run():
        out = reduce_pairs(M, fx, fy, term, reduction=reduction, weights=w, backend="chunked", memory_budget=budget, features=True)
        names.append(_grad_fn_names(out))
        torch.autograd.grad(out.sum(), wrt)

    estimate_pair_bytes(M, fx, fy, term, reduction, w)
    peak = _profiled_peak(run)
    assert "_ChunkedReduceBackward" in names[0]
    linear = 16 * 1200 * (fx.shape[-1] + 1) * 4
    assert peak <= budget + linear, peak / 2**20
    assert peak >= 0.2 * budget
