"""Backends of the kernel layer: dense torch, chunked torch, KeOps; the automatic choice.

One engine, :func:`reduce_pairs`, evaluates ``reduction_j term(d(x_i, y_j))`` for a manifold's
kernel-ready distance (:meth:`manifolds.Manifold.kernel_dist`) on one of three backends:

* ``"dense"``: the ``N × M`` matrix as a torch tensor (fastest for small problems; memory
  ``O(N·M)`` in the forward and the backward).
* ``"chunked"``: rows of ``x`` in blocks sized by the memory budget: memory ``O(block · M)``,
  exact, pure torch (needs no compiler). The forward evaluates the blocks without autograd
  into one preallocated output; with gradients a custom :class:`torch.autograd.Function`
  saves only the inputs and its backward recomputes one block at a time on detached copies,
  writing the block's gradient of ``x``'s features into one preallocated buffer and adding
  those of ``y``'s features and the weights in place (no per-block autograd objects survive
  a block). A ``create_graph=True`` backward recomputes the blocks differentiably instead
  (``O(N · M)`` memory for the double backward, as dense). A formula that reaches other
  tensors requiring grad (a ``term`` closing over a learnable bandwidth, a learnable
  curvature read by ``kernel_dist``; found by searching the autograd graph of a 1 × 2 probe
  block) uses per-block non-reentrant :func:`torch.utils.checkpoint.checkpoint` instead,
  which keeps every gradient path. Inside a ``torch.func`` transform the checkpoint path is
  taken too, and torch rejects it ("don't yet support saved tensor hooks", as before this
  Function existed): use the dense or KeOps backend there.
* ``"keops"``: the same formula on KeOps ``LazyTensor``\\ s (Charlier et al., "Kernel Operations
  on the GPU, with Autodiff, without Memory Overflows", JMLR 22(74), 2021): ``O(N + M)``
  memory, CPU (needs a C++ compiler) and GPU.

``"auto"`` (the default, or the environment variable ``MANIFOLD_RL_KERNEL_BACKEND``) takes
dense when the estimated dense footprint fits the memory budget (argument, else
``MANIFOLD_RL_KERNEL_MEMORY_MB``, else 256 MB), else KeOps when the manifold has a KeOps
formula and KeOps works on this machine, else chunked.

**Memory estimate.** Both the dense-vs-chunked decision and the chunk size use the bytes per
``(i, j)`` pair of the actual formula, measured by :func:`estimate_pair_bytes`: the torch
formula runs on tiny probe blocks (``a × b`` pairs, ``a ∈ {2, 4}``, ``b ∈ {b₀, 2b₀}``,
``b₀ = max(4, k)``) under a :class:`~torch.utils._python_dispatch.TorchDispatchMode` that sums
the bytes of every new storage an aten op returns (views and in-place results excluded); with
gradients enabled the probe also runs the backward (``torch.autograd.grad``), which is what one
block costs in the chunked backward pass (recompute of the forward + gradient buffers),
so no extra factor is applied. The mixed difference ``T(2a,2b) − T(2a,b) − T(a,2b) + T(a,b)``
over ``a·b`` keeps only the part proportional to ``rows × M`` (per-row outputs, per-column
features and gradients cancel). The sum of all allocations bounds the peak of live ones from
above (measured 1.4–4.6× the profiler's peak for the built-in formulas); memory that scales
with ``N`` or ``M`` alone (inputs, outputs, gradients of ``x`` and ``y``) and allocator slack
are not in the budget. The estimate is cached per (manifold instance, formula code and its
non-float closure values, reduction, weight layout, ``k``, dtype, device type, feature
dimension, gradient flags), so it costs a few milliseconds once per formula. The budget bounds
torch's live allocations; the process RSS also depends on the C allocator: glibc's dynamic
mmap threshold serves blocks below 32 MiB from the heap, which small long-lived allocations
between blocks fragment, so the chunked forward and backward write into preallocated buffers
(sphere and hyperboloid Gaussian sums, N = M = 10⁴, float32, fwd+bwd, glibc defaults: +137–162
MB peak RSS, against +1.8–2.6 GB with the earlier per-block checkpoints). The checkpoint fallback for foreign grad
leaves keeps per-block autograd nodes: there set ``MALLOC_MMAP_THRESHOLD_=65536`` or use
jemalloc / tcmalloc to bound the RSS (benchmarks/README.md, "Chunked backend memory").

KeOps is probed once per process and device type by compiling and running a tiny reduction
(``import pykeops`` alone succeeds without a compiler and fails at the first call,
refs/kernels.md §1.5); a failure gives one :class:`RuntimeWarning` and the chunked fallback.
Its build folder is set to ``<cache>/manifold_rl/keops-<pykeops version>-py<X.Y>-<machine>-<cpu|cudaV>``
(keyed by versions, not by the host name as KeOps' default), or to
``MANIFOLD_RL_KEOPS_BUILD_FOLDER``. KeOps calls run under :func:`torch.compiler.disable`
(LazyTensor code does not trace, refs/kernels.md §1.4). float16 / bfloat16 inputs are
computed in float32 (KeOps has no half precision on CPU) and the result is cast back.
A forward KeOps call that fails (a formula that does not compile, or a truncated ``.so`` left
by an interrupted compile) gives one warning, disables KeOps for the process and falls back
to chunked; a failure while compiling a gradient formula in the backward pass still raises
(delete the build folder to recover from a corrupted cache).
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import sys
import warnings
import weakref
from typing import Callable, Dict, Optional, Tuple, Union

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.checkpoint import checkpoint

from ._ops import TORCH, KeOpsOps

__all__ = [
    "BACKENDS",
    "reduce_pairs",
    "resolve_backend",
    "keops_available",
    "keops_build_folder",
    "estimate_pair_bytes",
]

BACKENDS = ("auto", "dense", "chunked", "keops")
ENV_BACKEND = "MANIFOLD_RL_KERNEL_BACKEND"
ENV_MEMORY = "MANIFOLD_RL_KERNEL_MEMORY_MB"
ENV_BUILD = "MANIFOLD_RL_KEOPS_BUILD_FOLDER"
DEFAULT_MEMORY_MB = 256.0
#: ``N × M`` temporaries assumed by :func:`resolve_backend` when it is called without a
#: measured ``pair_bytes`` (direct calls); :func:`reduce_pairs` always passes the measurement
_FALLBACK_TEMPS = 8

_KEOPS_STATE: Dict[str, Tuple[bool, str]] = {}


# ---------------------------------------------------------------------------- KeOps set-up
def keops_build_folder(device_type: str = "cpu") -> str:
    """The KeOps build folder used by this library (see the module docstring)."""
    env = os.environ.get(ENV_BUILD)
    if env:
        return env
    import pykeops

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    dev = "cpu" if device_type == "cpu" else f"cuda{torch.version.cuda}"
    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return os.path.join(base, "manifold_rl", f"keops-{pykeops.__version__}-py{py}-{platform.machine()}-{dev}")


def _probe(device: torch.device) -> Tuple[bool, str]:
    """Import pykeops, set the build folder, and run one tiny reduction on ``device``."""
    try:
        import pykeops
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        return False, f"pykeops cannot be imported ({type(e).__name__}: {e})"
    if device.type == "cpu":
        cxx = os.environ.get("CXX", "g++")
        if shutil.which(cxx) is None:
            return False, f"no C++ compiler '{cxx}' on PATH (KeOps compiles its formulas on the fly)"
    try:
        pykeops.set_verbose(False)
        folder = keops_build_folder(device.type)
        os.makedirs(folder, exist_ok=True)
        pykeops.set_build_folder(folder)
        from pykeops.torch import LazyTensor

        a = torch.arange(3.0, device=device).reshape(3, 1, 1)
        b = torch.arange(2.0, device=device).reshape(1, 2, 1)
        got = ((LazyTensor(a) - LazyTensor(b)) ** 2).sum(dim=1, backend=_keops_device(device)[0])
        want = ((a - b) ** 2).sum(1)
        if not torch.allclose(got, want):
            return False, "the probe reduction returned a wrong value"
    except Exception as e:  # noqa: BLE001 - compiler errors surface as many exception types
        return False, f"the probe reduction failed ({type(e).__name__}: {e})"
    return True, "ok"


def keops_available(device="cpu", *, refresh: bool = False) -> bool:
    """Whether KeOps runs on ``device``'s type in this process (probed once, then cached).

    Args:
        device: a ``torch.device`` or string.
        refresh: probe again.

    Returns:
        True when a tiny KeOps reduction compiled and gave the right value. On False one
        :class:`RuntimeWarning` per device type says why.
    """
    dev = torch.device(device)
    key = dev.type
    if refresh or key not in _KEOPS_STATE:
        ok, reason = _probe(dev)
        _KEOPS_STATE[key] = (ok, reason)
        if not ok:
            warnings.warn(f"KeOps is unavailable on {key}: {reason}; using the chunked torch backend", RuntimeWarning, stacklevel=2)
    return _KEOPS_STATE[key][0]


def _keops_device(device: torch.device):
    if device.type == "cpu":
        return "CPU", -1
    return "GPU", (device.index if device.index is not None else torch.cuda.current_device())


# ---------------------------------------------------------------------------- backend choice
def _memory_budget(memory_budget: Optional[float]) -> float:
    if memory_budget is None:
        mb = os.environ.get(ENV_MEMORY)
        if mb is None:
            return DEFAULT_MEMORY_MB * 2**20
        try:
            memory_budget = float(mb) * 2**20
        except ValueError:
            raise ValueError(f"{ENV_MEMORY} must be a number of megabytes, got {mb!r}") from None
    if not (isinstance(memory_budget, (int, float)) and memory_budget > 0 and math.isfinite(memory_budget)):
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    return float(memory_budget)


def resolve_backend(
    backend: Optional[str],
    *,
    manifold,
    n_pairs: int,
    itemsize: int,
    device,
    memory_budget: Optional[float] = None,
    pair_bytes: Union[None, float, Callable[[], float]] = None,
) -> str:
    """The backend that :func:`reduce_pairs` will use (see the module docstring).

    Args:
        backend: ``"auto"``, ``"dense"``, ``"chunked"``, ``"keops"`` or None (environment
            variable ``MANIFOLD_RL_KERNEL_BACKEND``, else ``"auto"``).
        manifold: the manifold (its ``has_kernel_formula`` decides whether KeOps can run it).
        n_pairs: number of ``(i, j)`` pairs including batch dimensions.
        itemsize: bytes per scalar of the computation dtype.
        device: the device of the inputs.
        memory_budget: bytes allowed for the dense ``N × M`` temporaries.
        pair_bytes: bytes of temporaries per pair (:func:`estimate_pair_bytes`), or a
            zero-argument callable returning it (evaluated only for ``"auto"``); None:
            ``itemsize × 8`` (a rough default for direct calls).

    Returns:
        ``"dense"``, ``"chunked"`` or ``"keops"``.

    Raises:
        ValueError: unknown backend name; ``"keops"`` requested by argument for a manifold
            without a KeOps formula.
    """
    from_env = backend is None
    name = os.environ.get(ENV_BACKEND, "auto") if from_env else backend
    if name not in BACKENDS:
        src = f"environment variable {ENV_BACKEND}" if from_env else "backend"
        raise ValueError(f"{src} must be one of {BACKENDS}, got {name!r}")
    budget = _memory_budget(memory_budget)
    if name == "keops":
        if not manifold.has_kernel_formula:
            if not from_env:
                raise ValueError(
                    f"{manifold.name} has no KeOps formula (has_kernel_formula=False); use backend='dense' or 'chunked'"
                )
            return "chunked"
        return "keops" if keops_available(device) else "chunked"
    if name == "auto":
        pb = pair_bytes() if callable(pair_bytes) else pair_bytes
        if pb is None:
            pb = itemsize * _FALLBACK_TEMPS
        if n_pairs * pb <= budget:
            return "dense"
        if manifold.has_kernel_formula and keops_available(device):
            return "keops"
        return "chunked"
    return name


# ---------------------------------------------------------------------------- engines
def _reduce_torch(manifold, fx, fy, term, reduction, w, k):
    """Dense reduction of a block of rows: returns ``(*batch, n, E)`` (indices for argkmin)."""
    d = manifold.kernel_dist(fx.unsqueeze(-2), fy.unsqueeze(-3), TORCH)
    if reduction == "argkmin":
        return d[..., 0].topk(k, dim=-1, largest=False).indices
    t = term(d, TORCH)[..., 0]
    if reduction == "sum":
        if w is None:
            return t.sum(-1, keepdim=True)
        if w.dim() == fy.dim() - 1:
            return (t * w.unsqueeze(-2)).sum(-1, keepdim=True)
        return t @ w
    # logsumexp
    if w is not None:
        t = t + w.unsqueeze(-2)
    return torch.logsumexp(t, dim=-1, keepdim=True)


class _AllocCounter(TorchDispatchMode):
    """Sums the bytes of every new storage returned by an aten op (views / in-place excluded).

    Every returned tensor is kept alive until the mode exits, so a freed storage's address
    cannot be reused and miscounted as a view.
    """

    def __init__(self, known):
        super().__init__()
        self.seen = set(known)
        self.keep = []
        self.nbytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                ptr = st.data_ptr()
                if ptr not in self.seen:
                    self.seen.add(ptr)
                    self.nbytes += st.nbytes()
                    self.keep.append(t)
        return out


def _take_rows(t, idx, axis):
    """``t`` with every batch dimension cut to its first entry and ``idx`` taken along ``axis``."""
    nb = t.dim() + axis  # dimensions before the points axis
    t = t[(slice(0, 1),) * nb]
    return t.index_select(axis, idx.to(t.device)).detach()


def _probe_total(manifold, fx, fy, term, reduction, w, k, w_axis, grad, a, b) -> int:
    """Bytes allocated by the torch formula (and its backward when ``grad``) on ``a × b`` pairs."""
    ia = torch.arange(a) % fx.shape[-2]
    ib = torch.arange(b) % fy.shape[-2]
    px = _take_rows(fx, ia, -2).requires_grad_(grad and fx.requires_grad)
    py = _take_rows(fy, ib, -2).requires_grad_(grad and fy.requires_grad)
    pw = None if w is None else _take_rows(w, ib, w_axis).requires_grad_(grad and w.requires_grad)
    params = [p for p in manifold.parameters() if p.requires_grad] if grad and hasattr(manifold, "parameters") else []
    wrt = [t for t in (px, py, pw) if t is not None and t.requires_grad] + params
    known = [t.untyped_storage().data_ptr() for t in (px, py, pw) if t is not None]
    with torch.set_grad_enabled(grad), _AllocCounter(known) as counter:
        out = _reduce_torch(manifold, px, py, term, reduction, pw, k)
        if grad and wrt and out.requires_grad:
            torch.autograd.grad(out, wrt, torch.ones_like(out), allow_unused=True)
    return counter.nbytes


def _closure_key(fn, depth=0):
    """Identity of a formula callable: its code and the values of its non-float closure cells."""
    if fn is None:
        return None
    code = getattr(fn, "__code__", None)
    if code is None or depth > 3:
        return type(fn)
    cells = []
    for c in getattr(fn, "__closure__", None) or ():
        try:
            v = c.cell_contents
        except ValueError:  # empty cell
            v = None
        if v is None or isinstance(v, (bool, int, str)):
            cells.append(v)
        elif isinstance(v, torch.Tensor):
            cells.append(("tensor", v.dtype, tuple(v.shape), v.requires_grad))
        elif callable(v):
            cells.append(_closure_key(v, depth + 1))
        else:
            cells.append(type(v))
    return (code, tuple(cells))


_PAIR_BYTES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def estimate_pair_bytes(manifold, fx, fy, term, reduction: str = "sum", weights=None, k: Optional[int] = None, *, grad: Optional[bool] = None) -> float:
    """Bytes of ``N × M`` temporaries per ``(i, j)`` pair of the torch formula (module docstring).

    Args:
        manifold: the manifold whose :meth:`~manifolds.Manifold.kernel_dist` is evaluated.
        fx, fy: ``(*batch, n, F)`` and ``(*batch, m, F)`` kernel features (any ``n, m ≥ 1``;
            only a few rows are used, repeated when fewer).
        term, reduction, weights, k: as in :func:`reduce_pairs` (weights already in the
            ``(*batch, M)`` / ``(*batch, M, E)`` layout).
        grad: include the backward (default: gradients enabled and an input requires grad).

    Returns:
        Bytes per pair per batch element (float, ≥ the dtype's item size), an upper bound
        on the live ``N × M`` temporaries of one forward (+ backward) of the formula.
        Cached (see the module docstring); on a probe failure (e.g. inside a functorch
        transform) returns ``8 × itemsize`` uncached.
    """
    if grad is None:
        grad = reduction != "argkmin" and torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (fx, fy, weights))
    w_axis = -1
    if weights is not None and reduction == "sum" and weights.dim() == fy.dim():
        w_axis = -2  # vector weights (*batch, M, E)
    key = (
        _closure_key(term),
        reduction,
        None if weights is None else (weights.dim() - fy.dim(), weights.shape[-1] if w_axis == -2 else None, weights.requires_grad),
        k,
        fx.dtype,
        fx.device.type,
        fx.shape[-1],
        bool(grad),
        bool(grad and fx.requires_grad),
        bool(grad and fy.requires_grad),
    )
    try:
        per_manifold = _PAIR_BYTES.setdefault(manifold, {})
    except TypeError:  # not weak-referenceable / hashable: measure every time
        per_manifold = {}
    if key in per_manifold:
        return per_manifold[key]
    a, b = 2, max(4, k or 0)
    try:
        t = {(i, j): _probe_total(manifold, fx, fy, term, reduction, weights, k, w_axis, bool(grad), i * a, j * b) for i in (1, 2) for j in (1, 2)}
    except Exception:  # noqa: BLE001 - an exotic context (functorch, fake tensors): rough default
        return float(fx.element_size() * _FALLBACK_TEMPS)
    pb = max(float(fx.element_size()), (t[2, 2] - t[2, 1] - t[1, 2] + t[1, 1]) / (a * b))
    per_manifold[key] = pb
    return pb


def _rows_per_block(batch: int, m: int, pair_bytes: float, budget: float) -> int:
    """Rows of ``x`` per chunk: ``⌊budget / (batch · M · pair_bytes)⌋``, at least 1."""
    return max(1, int(budget // (batch * m * pair_bytes)))


def _chunked_forward(manifold, fx, fy, term, reduction, w, k, rows):
    """All row blocks without autograd into one preallocated ``(*batch, N, E)`` output.

    A list of small per-block results kept alive between the multi-MB temporaries fragments
    glibc's heap (with its dynamic mmap threshold the RSS then grew by about one temporary per
    block: 20 GB at N = M = 10⁵), hence the single output.
    """
    n = fx.shape[-2]
    out = None
    with torch.no_grad():
        for s in range(0, n, rows):
            r = _reduce_torch(manifold, fx[..., s : s + rows, :], fy, term, reduction, w, k)
            if out is None:
                out = r.new_empty(r.shape[:-2] + (n,) + r.shape[-1:])
            out[..., s : s + r.shape[-2], :] = r
            del r
    return out


def _foreign_grad_leaves(manifold, fx, fy, term, reduction, w, k) -> bool:
    """Whether the formula reaches a tensor requiring grad other than ``fx, fy, w``.

    A closure of ``term`` (e.g. a learnable bandwidth) or a manifold parameter read by
    :meth:`~manifolds.Manifold.kernel_dist` (a learnable curvature): :class:`_ChunkedReduce`
    would drop its gradient. The formula runs on a 1 × 2 probe block of detached leaves and
    the autograd graph of the result is searched for ``AccumulateGrad`` nodes of other
    tensors. Any failure of the probe (e.g. an exotic tensor subclass) answers True, i.e. the
    checkpointed path, which is exact in every case.
    """
    try:
        w_axis = -2 if (w is not None and reduction == "sum" and w.dim() == fy.dim()) else -1
        ia, ib = torch.arange(1), torch.arange(2) % fy.shape[-2]
        px = _take_rows(fx, ia, -2).requires_grad_(True)
        py = _take_rows(fy, ib, -2).requires_grad_(True)
        pw = None if w is None else _take_rows(w, ib, w_axis).requires_grad_(True)
        own = {id(t) for t in (px, py, pw) if t is not None}
        with torch.enable_grad():
            out = _reduce_torch(manifold, px, py, term, reduction, pw, k)
        stack, seen = [out.grad_fn], set()
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            var = getattr(node, "variable", None)
            if var is not None and id(var) not in own:
                return True
            stack.extend(nxt for nxt, _ in node.next_functions)
        return False
    except Exception:  # noqa: BLE001 - unknown context: take the path that is always exact
        return True


class _ChunkedReduce(torch.autograd.Function):
    """Chunked reduction with a block-wise recomputing backward (see the module docstring).

    ``forward`` evaluates the row blocks under no-grad into one output and saves only the
    inputs; ``backward`` recomputes one block at a time with gradients on detached copies,
    writes the block's gradient of ``fx`` into its slice of one preallocated buffer and
    accumulates the gradients of ``fy`` and ``w`` in place. When the backward itself is
    differentiable (``create_graph=True``), the blocks are recomputed on the saved
    (differentiable) inputs instead and the gradient graph is kept: ``O(N · M)`` memory for
    the double backward, like the dense backend.
    """

    @staticmethod
    def forward(ctx, spec, fx, fy, w):
        manifold, term, reduction, k, rows = spec
        ctx.spec = spec
        ctx.save_for_backward(fx, fy, w)
        return _chunked_forward(manifold, fx, fy, term, reduction, w, k, rows)

    @staticmethod
    def backward(ctx, grad_out):
        manifold, term, reduction, k, rows = ctx.spec
        fx, fy, w = ctx.saved_tensors
        need = ctx.needs_input_grad[1:4]
        n = fx.shape[-2]
        if torch.is_grad_enabled():  # create_graph=True: a differentiable recomputation
            gx_parts, gy, gw = [], None, None
            for s in range(0, n, rows):
                fxb = fx[..., s : s + rows, :]
                out = _reduce_torch(manifold, fxb, fy, term, reduction, w, k)
                wrt = [t for t, nd in zip((fxb, fy, w), need) if nd]
                got = list(torch.autograd.grad(out, wrt, grad_out[..., s : s + rows, :], create_graph=True, allow_unused=True))
                gb = [got.pop(0) if nd else None for nd in need]
                if need[0]:
                    gx_parts.append(torch.zeros_like(fxb) if gb[0] is None else gb[0])
                if need[1] and gb[1] is not None:
                    gy = gb[1] if gy is None else gy + gb[1]
                if need[2] and gb[2] is not None:
                    gw = gb[2] if gw is None else gw + gb[2]
            gx = torch.cat(gx_parts, dim=-2) if need[0] else None
            return None, gx, gy, gw
        grad_out = grad_out.detach()
        fy_d = fy.detach().requires_grad_(need[1])
        w_d = None if w is None else w.detach().requires_grad_(need[2])
        gx = fx.new_empty(fx.shape) if need[0] else None
        gy = fy.new_zeros(fy.shape) if need[1] else None
        gw = w.new_zeros(w.shape) if need[2] else None
        for s in range(0, n, rows):
            fxb = fx[..., s : s + rows, :].detach().requires_grad_(need[0])
            with torch.enable_grad():
                out = _reduce_torch(manifold, fxb, fy_d, term, reduction, w_d, k)
            wrt = [t for t, nd in zip((fxb, fy_d, w_d), need) if nd]
            got = list(torch.autograd.grad(out, wrt, grad_out[..., s : s + rows, :], allow_unused=True))
            del out
            if need[0]:
                g = got.pop(0)
                if g is None:
                    gx[..., s : s + rows, :] = 0
                else:
                    gx[..., s : s + rows, :] = g
            for buf, nd in ((gy, need[1]), (gw, need[2])):
                if nd:
                    g = got.pop(0)
                    if g is not None:
                        buf.add_(g)
            del got
        return None, gx, gy, gw


def _reduce_chunked(manifold, fx, fy, term, reduction, w, k, budget, pair_bytes=None):
    n, m = fx.shape[-2], fy.shape[-2]
    batch = math.prod(fx.shape[:-2])
    tensors = [t for t in (fx, fy, w) if t is not None]
    grad = reduction != "argkmin" and torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    if pair_bytes is None:
        pair_bytes = estimate_pair_bytes(manifold, fx, fy, term, reduction, w, k, grad=grad)
    rows = _rows_per_block(batch, m, pair_bytes, budget)
    if not grad:
        return _chunked_forward(manifold, fx, fy, term, reduction, w, k, rows)
    if not (getattr(torch._C, "_are_functorch_transforms_active", lambda: False)() or _foreign_grad_leaves(manifold, fx, fy, term, reduction, w, k)):
        return _ChunkedReduce.apply((manifold, term, reduction, k, rows), fx, fy, w)

    # the formula closes over other tensors requiring grad (or runs inside a torch.func
    # transform): per-block checkpoints, whose recomputation keeps every gradient path
    def block(fxb, fy_, w_):
        return _reduce_torch(manifold, fxb, fy_, term, reduction, w_, k)

    outs = []
    for s in range(0, n, rows):
        outs.append(checkpoint(block, fx[..., s : s + rows, :], fy, w, use_reentrant=False))
    return torch.cat(outs, dim=-2)


_KEOPS_DISABLED_FN = None


def _reduce_keops(manifold, fx, fy, term, reduction, w, k):
    """The KeOps reduction, kept out of ``torch.compile`` graphs by :func:`torch.compiler.disable`.

    The decoration happens at the first call, not at import: it imports torch's dynamo, which
    sets ``TORCHINDUCTOR_CACHE_DIR`` in the environment (no global state changes on import).
    """
    global _KEOPS_DISABLED_FN
    if _KEOPS_DISABLED_FN is None:
        _KEOPS_DISABLED_FN = torch.compiler.disable(_reduce_keops_impl)
    return _KEOPS_DISABLED_FN(manifold, fx, fy, term, reduction, w, k)


def _reduce_keops_impl(manifold, fx, fy, term, reduction, w, k):
    from pykeops.torch import LazyTensor

    nb = fx.dim() - 2
    ops = KeOpsOps(nb, fx.dtype)
    kb, dev_id = _keops_device(fx.device)
    kw = dict(dim=nb + 1, backend=kb)
    if dev_id >= 0:
        kw["device_id"] = dev_id
    xi = LazyTensor(fx.unsqueeze(-2).contiguous())
    yj = LazyTensor(fy.unsqueeze(-3).contiguous())
    d = manifold.kernel_dist(xi, yj, ops)
    if reduction == "argkmin":
        return d.argKmin(k, **kw)
    t = term(d, ops)
    if w is not None:
        wj = w.unsqueeze(-1) if w.dim() == fy.dim() - 1 else w
        wj = LazyTensor(wj.unsqueeze(-3).contiguous())
    if reduction == "sum":
        return (t if w is None else t * wj).sum(**kw)
    return (t if w is None else t + wj).logsumexp(**kw)


def reduce_pairs(
    manifold,
    x: torch.Tensor,
    y: torch.Tensor,
    term: Optional[Callable],
    *,
    reduction: str = "sum",
    weights: Optional[torch.Tensor] = None,
    k: Optional[int] = None,
    backend: Optional[str] = None,
    memory_budget: Optional[float] = None,
    features: bool = False,
):
    """``out_i = reduction_j term(d(x_i, y_j))`` on the chosen backend.

    Args:
        manifold: a :class:`manifolds.Manifold`.
        x: ``(*bx, N, *event_shape)`` points (or ``(*bx, N, F)`` features with ``features=True``).
        y: ``(*by, M, *event_shape)`` points (or features); batch shapes broadcast.
        term: ``term(d, ops) -> (..., 1)``, the per-pair quantity as a function of the
            distance written with ``ops`` primitives (unused for ``"argkmin"``).
        reduction: ``"sum"`` (``Σ_j term_ij b_j``), ``"logsumexp"`` (``log Σ_j exp(term_ij + w_j)``)
            or ``"argkmin"`` (indices of the ``k`` smallest distances, ascending).
        weights: sum: ``(*batch, M)`` scalar or ``(*batch, M, E)`` vector weights ``b``;
            logsumexp: ``(*batch, M)`` log-weights ``w``; None: ones / zeros.
        k: number of neighbours for ``"argkmin"``.
        backend, memory_budget: see :func:`resolve_backend`.
        features: ``x`` and ``y`` are already :meth:`~manifolds.Manifold.kernel_features`.

    Returns:
        sum: ``(*batch, N)`` or ``(*batch, N, E)``; logsumexp: ``(*batch, N)``; argkmin:
        ``(*batch, N, k)`` int64 indices into ``y``. Floating results have ``x``'s dtype.
    """
    dtype = x.dtype
    if dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    y = y.to(x.dtype)
    fx = x if features else manifold.kernel_features(x)
    fy = y if features else manifold.kernel_features(y)
    batch = torch.broadcast_shapes(fx.shape[:-2], fy.shape[:-2])
    fx = fx.expand(batch + fx.shape[-2:])
    fy = fy.expand(batch + fy.shape[-2:])
    n, m = fx.shape[-2], fy.shape[-2]
    w = None
    if weights is not None:
        w = weights.to(fx.dtype)
        vec = reduction == "sum" and w.dim() == len(batch) + 2
        tail = w.shape[-2:] if vec else w.shape[-1:]
        if tail[0] != m:
            raise ValueError(f"weights must have {m} entries along the points of y, got shape {tuple(weights.shape)}")
        w = w.expand(batch + tuple(tail))
    measured = []

    def pair_bytes():
        if not measured:
            measured.append(estimate_pair_bytes(manifold, fx, fy, term, reduction, w, k))
        return measured[0]

    chosen = resolve_backend(
        backend,
        manifold=manifold,
        n_pairs=math.prod(batch) * n * m,
        itemsize=fx.element_size(),
        device=fx.device,
        memory_budget=memory_budget,
        pair_bytes=pair_bytes,
    )
    if chosen == "dense":
        out = _reduce_torch(manifold, fx, fy, term, reduction, w, k)
    elif chosen == "chunked":
        out = _reduce_chunked(manifold, fx, fy, term, reduction, w, k, _memory_budget(memory_budget), pair_bytes())
    else:
        try:
            out = _reduce_keops(manifold, fx, fy, term, reduction, w, k)
        except (ImportError, OSError, RuntimeError) as e:
            # a formula that fails to compile or load (e.g. a truncated .so left by an
            # interrupted compile) disables KeOps for the process: one warning, then chunked
            _KEOPS_STATE[fx.device.type] = (False, f"a KeOps reduction failed ({type(e).__name__}: {e})")
            warnings.warn(f"KeOps reduction failed ({type(e).__name__}: {e}); using the chunked torch backend from now on", RuntimeWarning, stacklevel=2)
            out = _reduce_chunked(manifold, fx, fy, term, reduction, w, k, _memory_budget(memory_budget))
    if reduction == "argkmin":
        return out.long()
    if not (reduction == "sum" and w is not None and w.dim() == len(batch) + 2):
        out = out[..., 0]
    return out.to(dtype)
