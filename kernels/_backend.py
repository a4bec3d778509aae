"""Backends of the kernel layer: dense torch, chunked torch, KeOps; the automatic choice.

One engine, :func:`reduce_pairs`, evaluates ``reduction_j term(d(x_i, y_j))`` for a manifold's
kernel-ready distance (:meth:`manifolds.Manifold.kernel_dist`) on one of three backends:

* ``"dense"``: the ``N × M`` matrix as a torch tensor (fastest for small problems; memory
  ``O(N·M)`` in the forward and the backward).
* ``"chunked"``: rows of ``x`` in blocks sized by the memory budget, each block under
  :func:`torch.utils.checkpoint.checkpoint` (non-reentrant), so the backward recomputes one
  block at a time: memory ``O(block · M)``, exact, pure torch (needs no compiler).
* ``"keops"``: the same formula on KeOps ``LazyTensor``\\ s (Charlier et al., "Kernel Operations
  on the GPU, with Autodiff, without Memory Overflows", JMLR 22(74), 2021): ``O(N + M)``
  memory, CPU (needs a C++ compiler) and GPU.

``"auto"`` (the default, or the environment variable ``MANIFOLD_RL_KERNEL_BACKEND``) takes
dense when the estimated dense footprint fits the memory budget (argument, else
``MANIFOLD_RL_KERNEL_MEMORY_MB``, else 256 MB), else KeOps when the manifold has a KeOps
formula and KeOps works on this machine, else chunked.

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
from typing import Callable, Dict, Optional, Tuple

import torch
from torch.utils.checkpoint import checkpoint

from ._ops import TORCH, KeOpsOps

__all__ = [
    "BACKENDS",
    "reduce_pairs",
    "resolve_backend",
    "keops_available",
    "keops_build_folder",
]

BACKENDS = ("auto", "dense", "chunked", "keops")
ENV_BACKEND = "MANIFOLD_RL_KERNEL_BACKEND"
ENV_MEMORY = "MANIFOLD_RL_KERNEL_MEMORY_MB"
ENV_BUILD = "MANIFOLD_RL_KEOPS_BUILD_FOLDER"
DEFAULT_MEMORY_MB = 256.0
#: estimated number of live ``N × M`` temporaries of a dense forward + backward
_TEMPS = 8

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


def resolve_backend(backend: Optional[str], *, manifold, n_pairs: int, itemsize: int, device, memory_budget: Optional[float] = None) -> str:
    """The backend that :func:`reduce_pairs` will use (see the module docstring).

    Args:
        backend: ``"auto"``, ``"dense"``, ``"chunked"``, ``"keops"`` or None (environment
            variable ``MANIFOLD_RL_KERNEL_BACKEND``, else ``"auto"``).
        manifold: the manifold (its ``has_kernel_formula`` decides whether KeOps can run it).
        n_pairs: number of ``(i, j)`` pairs including batch dimensions.
        itemsize: bytes per scalar of the computation dtype.
        device: the device of the inputs.
        memory_budget: bytes allowed for the dense ``N × M`` temporaries.

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
        if n_pairs * itemsize * _TEMPS <= budget:
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


def _rows_per_block(batch: int, m: int, itemsize: int, budget: float) -> int:
    return max(1, int(budget // (batch * m * itemsize * _TEMPS)))


def _reduce_chunked(manifold, fx, fy, term, reduction, w, k, budget):
    n, m = fx.shape[-2], fy.shape[-2]
    batch = math.prod(fx.shape[:-2])
    rows = _rows_per_block(batch, m, fx.element_size(), budget)
    tensors = [t for t in (fx, fy, w) if t is not None]
    use_ckpt = reduction != "argkmin" and torch.is_grad_enabled() and any(t.requires_grad for t in tensors)

    def block(fxb, fy_, w_):
        return _reduce_torch(manifold, fxb, fy_, term, reduction, w_, k)

    outs = []
    for s in range(0, n, rows):
        fxb = fx[..., s : s + rows, :]
        if use_ckpt:
            outs.append(checkpoint(block, fxb, fy, w, use_reentrant=False))
        else:
            outs.append(block(fxb, fy, w))
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
    chosen = resolve_backend(
        backend, manifold=manifold, n_pairs=math.prod(batch) * n * m, itemsize=fx.element_size(), device=fx.device, memory_budget=memory_budget
    )
    if chosen == "dense":
        out = _reduce_torch(manifold, fx, fy, term, reduction, w, k)
    elif chosen == "chunked":
        out = _reduce_chunked(manifold, fx, fy, term, reduction, w, k, _memory_budget(memory_budget))
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
