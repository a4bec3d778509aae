"""RMP algebra, task maps and the RMP tree / DAG (RMPflow).

A Riemannian Motion Policy (RMP) on a task space with coordinates ``x ∈ ℝᵐ`` is a pair

* canonical form ``(a, M)``: desired acceleration ``a(x, ẋ)`` and PSD inertia ``M(x, ẋ)``;
* natural form ``[f, M]`` with the "force" ``f = M a``.

RMPflow (Cheng et al., "RMPflow: A Computational Graph for Automatic Motion Policy Generation",
WAFR 2018, arXiv:1811.07049, Sec. III / Eq. (4)–(6)) organises RMPs in a tree whose edges are smooth
task maps ``ψ``:

* **pushforward** (root → leaves): ``x_i = ψ_i(q)``, ``ẋ_i = J_i q̇``;
* **pullback** (leaves → root): ``f = Σ_i J_iᵀ (f_i − M_i J̇_i q̇)``, ``M = Σ_i J_iᵀ M_i J_i``;
* **resolve** (root): ``q̈ = M⁺ f``.

Everything here is batched over a leading dimension ``B`` (``q: (B, n)``), differentiable end to end,
works in float32 and float64 and follows the device of its inputs.

A node may be shared by many children: a wide node holding the forward kinematics of all control
points (``(B, 3K)``) is evaluated once and each child reads its part through a :class:`SliceMap`
(the DAG of RMP2, Li et al. 2021, realised as a tree over a shared node).

Example::

    root = RMPRoot(2)
    goal = root.add_child(AffineMap(torch.eye(2), -g), name="goal")
    goal.add_leaf(my_leaf)               # my_leaf(x, xd) -> (f, M)
    flow = RMPFlow(root)
    qdd = flow(q, qd)                    # (B, 2)
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor, nn

__all__ = [
    "TaskMapOutput",
    "JointTaskMap",
    "TaskMap",
    "IdentityMap",
    "SliceMap",
    "AffineMap",
    "FunctionMap",
    "ComposedMap",
    "Leaf",
    "RMPNode",
    "RMPRoot",
    "RMPFlow",
    "FlowState",
    "natural_to_canonical",
    "canonical_to_natural",
    "check_state",
    "evaluation_cache",
    "scope_cache",
    "constant_eye",
    "constant_scalar",
    "tensor_version",
]

JACOBIAN_MODES = ("analytic", "forward", "fd")

# Per-evaluation cache (one dict per :class:`evaluation_cache` scope; ``None`` outside any scope).
_EVAL_SCOPE: "contextvars.ContextVar[Optional[Dict]]" = contextvars.ContextVar("rmpflow_evaluation_cache", default=None)


class evaluation_cache:
    """Context manager opening a per-evaluation cache (used by :meth:`RMPFlow.pushforward`).

    Inside the scope, task maps may share intermediate results (e.g. the Franka maps share one
    forward-kinematics pass for the same ``q`` tensor) through :func:`scope_cache`. Entries are keyed
    on tensor identity and version counter (an in-place change of the input invalidates them), and
    are dropped when the outermost scope exits, so no autograd graph is reused across evaluations.
    Nested scopes share the outer cache.
    """

    def __enter__(self):
        cur = _EVAL_SCOPE.get()
        self._token = _EVAL_SCOPE.set({}) if cur is None else None
        return _EVAL_SCOPE.get()

    def __exit__(self, *exc):
        if self._token is not None:
            _EVAL_SCOPE.reset(self._token)
        return False


def scope_cache() -> Optional[Dict]:
    """The current :class:`evaluation_cache` dict, or ``None`` outside any scope."""
    return _EVAL_SCOPE.get()


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def check_state(x: Tensor, xd: Tensor, dim: Optional[int], what: str = "state") -> None:
    """Raise ``ValueError`` unless ``x, xd`` are floating tensors of equal shape ``(B, dim)``."""
    if not isinstance(x, Tensor) or not isinstance(xd, Tensor):
        raise ValueError(f"{what}: expected tensors, got {type(x).__name__} and {type(xd).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{what}: expected a position of shape (B, {dim if dim else 'm'}), got {tuple(x.shape)}")
    if x.shape != xd.shape:
        raise ValueError(f"{what}: position {tuple(x.shape)} and velocity {tuple(xd.shape)} shapes differ")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{what}: expected last dimension {dim}, got {x.shape[1]}")
    if not x.is_floating_point() or not xd.is_floating_point():
        raise ValueError(f"{what}: expected floating-point tensors, got {x.dtype} and {xd.dtype}")


def canonical_to_natural(a: Tensor, M: Tensor) -> Tuple[Tensor, Tensor]:
    """``(a, M) → [f, M]`` with ``f = M a``. ``a: (B, m)``, ``M: (B, m, m)``."""
    return _mv(M, a), M


def natural_to_canonical(f: Tensor, M: Tensor, reg: float = 0.0, rcond: Optional[float] = None) -> Tuple[Tensor, Tensor]:
    """``[f, M] → (a, M)`` with ``a = M⁺ f``.

    ``reg > 0``: ``a = (M + reg·I)⁻¹ f`` (Tikhonov); otherwise the Moore–Penrose pseudo-inverse
    ``torch.linalg.pinv(M, rtol=rcond)`` (default ``rtol`` = ``m · eps(dtype)``).
    """
    if reg > 0:
        eye = torch.eye(M.shape[-1], dtype=M.dtype, device=M.device)
        a = torch.linalg.solve(M + reg * eye, f.unsqueeze(-1)).squeeze(-1)
    else:
        a = _mv(torch.linalg.pinv(M, rtol=rcond), f)
    return a, M


def _bmm(A: Tensor, Bm: Tensor) -> Tensor:
    """``A @ B``; ``torch.bmm`` (about half the dispatch cost of ``matmul``) when both are ``(B, ·, ·)``."""
    if A.dim() == 3 and Bm.dim() == 3 and A.shape[0] == Bm.shape[0]:
        return torch.bmm(A, Bm)
    return A @ Bm


def _mv(A: Tensor, v: Tensor) -> Tensor:
    """Batched matrix-vector product ``(B, m, n) @ (B, n) → (B, m)`` (bmm: less overhead than einsum / matmul)."""
    return _bmm(A, v.unsqueeze(-1)).squeeze(-1)


def _mtv(A: Tensor, v: Tensor) -> Tensor:
    """Batched ``Aᵀ v``: ``(B, m, n), (B, m) → (B, n)``."""
    return _bmm(v.unsqueeze(-2), A).squeeze(-2)


@lru_cache(maxsize=64)
def constant_eye(m: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The ``(m, m)`` identity, memoised per size / dtype / device (do not modify it in place).

    Built outside inference mode so that it may enter autograd-recorded computations even when the
    first call happened under ``torch.inference_mode`` (an inference tensor there would raise).
    """
    with torch.inference_mode(False):
        return torch.eye(m, dtype=dtype, device=device)


@lru_cache(maxsize=64)
def constant_scalar(value: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A 0-dim constant tensor (memoised; built outside inference mode), e.g. for ``torch.addcdiv``."""
    with torch.inference_mode(False):
        return torch.tensor(value, dtype=dtype, device=device)


def tensor_version(t: Tensor) -> int:
    """``t._version`` (bumped by in-place changes), or ``-1`` for an inference tensor, which has no
    version counter (memo keys then rely on the tensor's identity alone)."""
    return -1 if t.is_inference() else t._version


def _fd_steps(dtype: torch.dtype) -> Tuple[float, float]:
    """Central-difference steps: ``eps^(1/3)`` for first and ``eps^(1/4)`` for second derivatives."""
    eps = torch.finfo(dtype).eps
    return eps ** (1.0 / 3.0), eps ** (1.0 / 4.0)


# ----------------------------------------------------------------------------------------------
# task maps
# ----------------------------------------------------------------------------------------------
@dataclass
class TaskMapOutput:
    """Result of a task map at ``(q, q̇)``.

    Attributes:
        x: ``(B, m)`` ψ(q).
        xd: ``(B, m)`` J q̇.
        J: ``(B, m, n)`` ∂ψ/∂q.
        Jdot_qd: ``(B, m)`` J̇ q̇ = d²/dt² ψ(q + t q̇)|₀ (the curvature of the map along q̇).
    """

    x: Tensor
    xd: Tensor
    J: Tensor
    Jdot_qd: Tensor


class _LazyOutput(TaskMapOutput):
    """:class:`TaskMapOutput` whose ``J`` and ``J̇q̇`` are built by the given callables only when read
    (the compose pullback of a child of a non-root node uses the parent's total Jacobian instead)."""

    def __init__(self, x: Tensor, xd: Tensor, J_fn: Callable[[], Tensor], jd_fn: Callable[[], Tensor],
                 jdot_zero: bool = False):
        self.x, self.xd = x, xd
        self.jdot_zero = jdot_zero  # J̇q̇ ≡ 0 (affine map): the pullback may skip the M J̇q̇ term
        self._J_fn, self._jd_fn = J_fn, jd_fn
        self._J: Optional[Tensor] = None
        self._jd: Optional[Tensor] = None

    @property
    def J(self) -> Tensor:
        if self._J is None:
            self._J = self._J_fn()
        return self._J

    @J.setter
    def J(self, value: Tensor) -> None:
        self._J = value

    @property
    def Jdot_qd(self) -> Tensor:
        if self._jd is None:
            self._jd = self._jd_fn()
        return self._jd

    @Jdot_qd.setter
    def Jdot_qd(self, value: Tensor) -> None:
        self._jd = value


class TaskMap(nn.Module):
    """A smooth map ``ψ: ℝⁿ → ℝᵐ`` with its Jacobian ``J`` and curvature term ``J̇ q̇``.

    Subclasses implement :meth:`psi` and optionally :meth:`jacobian` / :meth:`jdot_qd`.
    ``jacobian_mode`` selects how ``J`` is obtained when :meth:`forward` runs:

    * ``"analytic"``: the subclass's :meth:`jacobian` (default when the subclass overrides it);
    * ``"forward"``: forward-mode autodiff (``torch.func.jvp`` with ``n`` stacked basis tangents,
      one call of ``ψ`` on a ``(n·B, n)`` batch), exact;
    * ``"fd"``: central finite differences with step ``h = eps^(1/3)`` (float64 ≈ 6e-6, float32 ≈
      4.9e-3; error O(h²)), all ``2n`` shifted points evaluated in one call of ``ψ``.

    ``J̇ q̇`` (unless :meth:`jdot_qd` is overridden, in which case that is used in every mode):

    * ``"forward"``: central difference (step ``eps^(1/3)``) of the exact forward-mode directional
      derivative ``J(q ± h u) q̇`` (same forward pass as ``J``; error ≈ 1e-10 relative in float64), or,
      with ``exact_jdot = True``, nested ``torch.func.jvp`` (exact but ~10× slower on CPU);
    * ``"fd"``: second central difference of ``ψ`` along ``u = q̇/‖q̇‖`` with step ``eps^(1/4)``
      (float64 ≈ 1.2e-4), scaled by ``‖q̇‖²`` (2 extra rows in the same ``ψ`` call);
    * ``"analytic"`` without an analytic ``jdot_qd``: central difference of the analytic ``J`` along
      ``u`` with step ``eps^(1/3)``: ``(J(q+hu) − J(q−hu)) q̇ ‖q̇‖ / 2h``.

    Reverse-mode Jacobians are never used (slow for many output rows, ref sheet §3.7).

    Args:
        in_dim: n. out_dim: m. jacobian_mode: see above (``None`` → ``"analytic"`` if the subclass
        overrides :meth:`jacobian`, else ``"forward"``).

    Raises:
        ValueError: unknown mode, non-positive dimensions, ``"analytic"`` without a :meth:`jacobian`.
    """

    exact_jdot: bool = False

    def __init__(self, in_dim: int, out_dim: int, jacobian_mode: Optional[str] = None):
        super().__init__()
        if int(in_dim) <= 0 or int(out_dim) <= 0:
            raise ValueError(f"TaskMap dimensions must be positive, got in_dim={in_dim}, out_dim={out_dim}")
        self.in_dim = int(in_dim)
        self.out_dim = int(out_dim)
        has_analytic = type(self).jacobian is not TaskMap.jacobian
        if jacobian_mode is None:
            jacobian_mode = "analytic" if has_analytic else "forward"
        if jacobian_mode not in JACOBIAN_MODES:
            raise ValueError(f"jacobian_mode must be one of {JACOBIAN_MODES}, got {jacobian_mode!r}")
        if jacobian_mode == "analytic" and not has_analytic:
            raise ValueError(f"{type(self).__name__} has no analytic jacobian; use jacobian_mode 'forward' or 'fd'")
        self.jacobian_mode = jacobian_mode
        self._has_analytic_jdot = type(self).jdot_qd is not TaskMap.jdot_qd

    # -- to implement ---------------------------------------------------------------------------
    def psi(self, q: Tensor) -> Tensor:  # pragma: no cover - abstract
        """``(B, n) → (B, m)``."""
        raise NotImplementedError

    def jacobian(self, q: Tensor) -> Tensor:  # pragma: no cover - optional
        """Analytic Jacobian ``(B, m, n)``."""
        raise NotImplementedError

    def jdot_qd(self, q: Tensor, qd: Tensor) -> Tensor:  # pragma: no cover - optional
        """Analytic ``J̇ q̇`` ``(B, m)``."""
        raise NotImplementedError

    # -- generic machinery ----------------------------------------------------------------------
    def _check(self, q: Tensor, qd: Tensor) -> None:
        check_state(q, qd, self.in_dim, what=type(self).__name__)

    def forward(self, q: Tensor, qd: Tensor) -> TaskMapOutput:
        """Evaluate ``ψ, J q̇, J, J̇ q̇`` at ``q, qd: (B, n)``. Raises ``ValueError`` on bad shapes."""
        self._check(q, qd)
        return self._evaluate(q, qd, self.jacobian_mode)

    def evaluate(self, q: Tensor, qd: Tensor, mode: str) -> TaskMapOutput:
        """Like :meth:`forward` with an explicit Jacobian mode (used to cross-check modes)."""
        if mode not in JACOBIAN_MODES:
            raise ValueError(f"mode must be one of {JACOBIAN_MODES}, got {mode!r}")
        self._check(q, qd)
        return self._evaluate(q, qd, mode)

    def _evaluate(self, q: Tensor, qd: Tensor, mode: str) -> TaskMapOutput:
        if mode == "analytic":
            x = self.psi(q)
            J = self.jacobian(q)
            jd = self.jdot_qd(q, qd) if self._has_analytic_jdot else self._jdot_fd_from_jacobian(q, qd)
        elif mode == "forward":
            x, J, jd = self._forward_all(q, qd, need_jdot=not self._has_analytic_jdot)
            if self._has_analytic_jdot:
                jd = self.jdot_qd(q, qd)
        else:
            x, J, jd = self._fd_all(q, qd, need_jdot=not self._has_analytic_jdot)
            if self._has_analytic_jdot:
                jd = self.jdot_qd(q, qd)
        xd = _mv(J, qd)
        return TaskMapOutput(x, xd, J, jd)

    def _forward_all(self, q: Tensor, qd: Tensor, need_jdot: bool = True):
        """One forward-mode pass (``torch.autograd.forward_ad``) on stacked rows: ``n`` basis tangents
        at ``q`` give ``J``; tangent ``q̇`` at ``q ± h u`` gives ``J̇q̇`` by a central difference of the
        exact directional derivative (``h = eps^(1/3)``), or nested ``torch.func.jvp`` when
        ``self.exact_jdot``."""
        B, n = q.shape
        eye = torch.eye(n, dtype=q.dtype, device=q.device)
        rows = [q.repeat(n, 1)]
        tangs = [eye.repeat_interleave(B, dim=0)]
        hybrid = need_jdot and not self.exact_jdot
        if hybrid:
            h1, _ = _fd_steps(q.dtype)
            s = qd.norm(dim=-1, keepdim=True)
            u = qd / s.clamp_min(torch.finfo(q.dtype).tiny)
            rows += [q + h1 * u, q - h1 * u]
            tangs += [qd, qd]
        with fwAD.dual_level():
            dual = fwAD.make_dual(torch.cat(rows, 0), torch.cat(tangs, 0))
            y, dy = fwAD.unpack_dual(self.psi(dual))
        if dy is None:  # psi does not depend on q
            dy = torch.zeros_like(y)
        x = y[:B]
        J = dy[: n * B].reshape(n, B, -1).permute(1, 2, 0)
        jd = None
        if hybrid:
            jd = (dy[n * B : (n + 1) * B] - dy[(n + 1) * B :]) / (2 * h1) * s
        elif need_jdot:
            jd = self._jdot_forward(q, qd)
        return x, J, jd

    def _jdot_forward(self, q: Tensor, qd: Tensor) -> Tensor:
        def vel(qq):
            return torch.func.jvp(self.psi, (qq,), (qd,))[1]

        return torch.func.jvp(vel, (q,), (qd,))[1]

    def _fd_all(self, q: Tensor, qd: Tensor, need_jdot: bool = True):
        B, n = q.shape
        h1, h2 = _fd_steps(q.dtype)
        eye = torch.eye(n, dtype=q.dtype, device=q.device) * h1
        rows = [q.unsqueeze(0), (q.unsqueeze(0) + eye.unsqueeze(1)), (q.unsqueeze(0) - eye.unsqueeze(1))]
        if need_jdot:
            s = qd.norm(dim=-1, keepdim=True)
            u = qd / s.clamp_min(torch.finfo(q.dtype).tiny)
            rows += [(q + h2 * u).unsqueeze(0), (q - h2 * u).unsqueeze(0)]
        Q = torch.cat(rows, 0)  # (k, B, n)
        Y = self.psi(Q.reshape(-1, n)).reshape(Q.shape[0], B, -1)
        x = Y[0]
        J = ((Y[1 : n + 1] - Y[n + 1 : 2 * n + 1]) / (2 * h1)).permute(1, 2, 0)
        jd = None
        if need_jdot:
            jd = (Y[2 * n + 1] - 2 * x + Y[2 * n + 2]) / (h2 * h2) * (s * s)
        return x, J, jd

    def _jdot_fd_from_jacobian(self, q: Tensor, qd: Tensor) -> Tensor:
        B = q.shape[0]
        h1, _ = _fd_steps(q.dtype)
        s = qd.norm(dim=-1, keepdim=True)
        u = qd / s.clamp_min(torch.finfo(q.dtype).tiny)
        Jpm = self.jacobian(torch.cat([q + h1 * u, q - h1 * u], 0))
        dJ = (Jpm[:B] - Jpm[B:]) / (2 * h1)
        return _mv(dJ, qd) * s

    # -- composition with the parent's total Jacobian ----------------------------------------------
    def compose_total(self, out: TaskMapOutput, J_parent: Optional[Tensor], jd_parent: Optional[Tensor]):
        """Total Jacobian to the root and total curvature: ``J J_p``, ``J (J̇_p q̇) + J̇ ẋ_p``.

        ``J_parent = None`` means the parent is the root (identity).
        """
        if J_parent is None:
            return out.J, out.Jdot_qd
        return _bmm(out.J, J_parent), _mv(out.J, jd_parent) + out.Jdot_qd

    # -- evaluation of sibling maps as one group (optional) ----------------------------------------
    def group_key(self):
        """Hashable key under which sibling maps (same parent) may be evaluated together by
        :meth:`evaluate_group` (``None``, the default: never)."""
        return None

    @classmethod
    def evaluate_group(cls, maps, x: Tensor, xd: Tensor):
        """Evaluate maps with equal :meth:`group_key` at the parent state ``x, xd``.

        Returns ``(stacked, outputs)``: one :class:`TaskMapOutput` holding the rows of all maps in
        order (its ``J`` may be lazy) and the per-map outputs (equal to each map's own evaluation).
        """
        raise NotImplementedError

    def compose_group_total(self, stacked: TaskMapOutput, J_parent: Optional[Tensor], jd_parent: Optional[Tensor]):
        """:meth:`compose_total` of a :meth:`evaluate_group` result (default: :meth:`compose_total`)."""
        return self.compose_total(stacked, J_parent, jd_parent)

    # -- pullback of an RMP through this map ----------------------------------------------------
    def pullback_rmp(self, out: TaskMapOutput, f: Tensor, M: Tensor) -> Tuple[Tensor, Tensor]:
        """Pull ``[f, M]`` (``(B, m)``, ``(B, m, m)``) back: ``Jᵀ(f − M J̇q̇)``, ``Jᵀ M J``."""
        J = out.J
        fc = f - _mv(M, out.Jdot_qd)
        fp = _mtv(J, fc)
        Mp = _bmm(_bmm(J.transpose(1, 2), M), J)
        return fp, Mp


class JointTaskMap(TaskMap):
    """A :class:`TaskMap` whose analytic ``ψ``, ``J`` and ``J̇ q̇`` come from one kinematics pass.

    Robot maps (forward kinematics of points or frames) compute the three together; a subclass
    implements ``_all(q, qd) -> (x (B, m), J (B, m, n), J̇q̇ (B, m) or None when qd is None)`` and
    gets :meth:`jacobian`, :meth:`jdot_qd` and the analytic-mode evaluation from it (one pass per
    evaluation). :meth:`psi` defaults to the same pass; override it when ``ψ`` alone is cheaper.
    """

    def _all(self, q: Tensor, qd: Optional[Tensor]):  # pragma: no cover - abstract
        raise NotImplementedError

    def psi(self, q):
        return self._all(q, None)[0]

    def jacobian(self, q):
        return self._all(q, None)[1]

    def jdot_qd(self, q, qd):
        return self._all(q, qd)[2]

    def _evaluate(self, q, qd, mode):
        if mode != "analytic":
            return super()._evaluate(q, qd, mode)
        x, J, jd = self._all(q, qd)
        return TaskMapOutput(x, torch.einsum("bmn,bn->bm", J, qd), J, jd)


class IdentityMap(TaskMap):
    """``ψ(q) = q`` (``J = I``, ``J̇q̇ = 0``)."""

    def __init__(self, dim: int):
        super().__init__(dim, dim)

    def psi(self, q):
        return q

    def jacobian(self, q):
        B, n = q.shape
        return torch.eye(n, dtype=q.dtype, device=q.device).expand(B, n, n)

    def jdot_qd(self, q, qd):
        return torch.zeros_like(q)

    def pullback_rmp(self, out, f, M):
        return f, M

    def compose_total(self, out, J_parent, jd_parent):
        if J_parent is None:
            return out.J, out.Jdot_qd
        return J_parent, jd_parent


class SliceMap(TaskMap):
    """``ψ(q) = q[:, indices]``: a child reading part of a (wide) parent node.

    Args:
        in_dim: parent dimension n. indices: sequence of distinct ints in ``[0, n)`` (or a slice).
    Raises:
        ValueError: empty, repeated or out-of-range indices.
    """

    def __init__(self, in_dim: int, indices):
        if isinstance(indices, slice):
            indices = list(range(in_dim))[indices]
        idx = [int(i) for i in indices]
        if len(idx) == 0:
            raise ValueError("SliceMap: indices must not be empty")
        if len(set(idx)) != len(idx):
            raise ValueError(f"SliceMap: indices must be distinct, got {idx}")
        if min(idx) < 0 or max(idx) >= in_dim:
            raise ValueError(f"SliceMap: indices must lie in [0, {in_dim}), got {idx}")
        super().__init__(in_dim, len(idx))
        self.register_buffer("index", torch.tensor(idx, dtype=torch.long), persistent=False)
        contiguous = idx == list(range(idx[0], idx[0] + len(idx)))
        self._slice = slice(idx[0], idx[0] + len(idx)) if contiguous else None
        t = type(self)
        self._plain = all(getattr(t, nm) is getattr(SliceMap, nm) for nm in ("psi", "jacobian", "jdot_qd"))

    def _evaluate(self, q, qd, mode):
        """Analytic mode: ``x = q[:, idx]``, ``ẋ = q̇[:, idx]``; the selection matrix ``J`` and the zero
        ``J̇q̇`` are formed only if read (:class:`_LazyOutput`)."""
        if mode != "analytic" or not self._plain:
            return super()._evaluate(q, qd, mode)
        return _LazyOutput(self.psi(q), self.psi(qd), lambda: self.jacobian(q), lambda: self.jdot_qd(q, qd), True)

    def psi(self, q):
        return q[:, self._slice] if self._slice is not None else q.index_select(1, self.index.to(q.device))

    def jacobian(self, q):
        B, n = q.shape
        E = constant_eye(n, q.dtype, q.device)[self.index.to(q.device)]
        return E.expand(B, self.out_dim, n)

    def jdot_qd(self, q, qd):
        return q.new_zeros(q.shape[0], self.out_dim)

    def compose_total(self, out, J_parent, jd_parent):
        if J_parent is None:
            return out.J, out.Jdot_qd
        if self._slice is not None:
            return J_parent[:, self._slice], jd_parent[:, self._slice]
        idx = self.index.to(J_parent.device)
        return J_parent.index_select(1, idx), jd_parent.index_select(1, idx)

    def pullback_rmp(self, out, f, M):
        B = f.shape[0]
        n = self.in_dim
        fp = f.new_zeros(B, n)
        Mp = M.new_zeros(B, n, n)
        if self._slice is not None:
            s = self._slice
            fp[:, s] = f
            Mp[:, s, s] = M
        else:
            idx = self.index.to(f.device)
            fp = fp.index_copy(1, idx, f)
            Mp[:, idx.unsqueeze(1), idx.unsqueeze(0)] = M
        return fp, Mp


class AffineMap(TaskMap):
    """``ψ(q) = A q + b`` with ``A: (m, n)``, ``b: (m,)`` (buffers; ``J = A``, ``J̇q̇ = 0``).

    Raises:
        ValueError: ``A`` not 2-D or ``b`` of the wrong length.
    """

    def __init__(self, A: Tensor, b: Optional[Tensor] = None):
        A = torch.as_tensor(A)
        if A.dim() != 2:
            raise ValueError(f"AffineMap: A must be (m, n), got shape {tuple(A.shape)}")
        m, n = A.shape
        if b is None:
            b = torch.zeros(m, dtype=A.dtype)
        b = torch.as_tensor(b, dtype=A.dtype)
        if b.shape != (m,):
            raise ValueError(f"AffineMap: b must have shape ({m},), got {tuple(b.shape)}")
        super().__init__(n, m)
        self.register_buffer("A", A)
        self.register_buffer("b", b)
        t = type(self)
        self._plain = all(getattr(t, nm) is getattr(AffineMap, nm) for nm in ("psi", "jacobian", "jdot_qd"))

    def _evaluate(self, q, qd, mode):
        """Analytic mode: ``x = q Aᵀ + b``, ``ẋ = q̇ Aᵀ``, ``J = A`` (expanded view); the zero ``J̇q̇`` is
        formed only if read."""
        if mode != "analytic" or not self._plain:
            return super()._evaluate(q, qd, mode)
        A = self._buffers["A"]
        b = self._buffers["b"]
        if A.dtype != q.dtype or A.device != q.device:
            key = (q.dtype, q.device, torch.is_inference_mode_enabled(), tensor_version(A), tensor_version(b))
            c = self.__dict__.get("_cast_cache")
            if c is not None and c[0] == key and c[1] is A and c[2] is b:
                A, b = c[3], c[4]
            else:
                A0, b0 = A, b
                A, b = A.to(q), b.to(q)
                # never reuse an autograd graph; inference tensors have no version counter: not memoised
                if not (A0.requires_grad or b0.requires_grad or A0.is_inference() or b0.is_inference()):
                    self.__dict__["_cast_cache"] = (key, A0, b0, A, b)
        At = A.T
        return _LazyOutput(torch.addmm(b, q, At), qd @ At, lambda: A.expand(q.shape[0], self.out_dim, self.in_dim),
                           lambda: q.new_zeros(q.shape[0], self.out_dim), True)

    def psi(self, q):
        return q @ self.A.to(q).T + self.b.to(q)

    def jacobian(self, q):
        return self.A.to(q).expand(q.shape[0], self.out_dim, self.in_dim)

    def jdot_qd(self, q, qd):
        return q.new_zeros(q.shape[0], self.out_dim)


class FunctionMap(TaskMap):
    """A task map from a batched callable ``fn: (B, n) → (B, m)``.

    Args:
        fn: the map ψ (must be built from torch ops for ``"forward"`` mode).
        in_dim, out_dim: n, m.
        jacobian_mode: ``"forward"`` (default), ``"fd"``, or ``"analytic"`` (needs ``jacobian_fn``).
        jacobian_fn: optional ``(B, n) → (B, m, n)``. jdot_fn: optional ``(q, qd) → (B, m)``.
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], in_dim: int, out_dim: int,
                 jacobian_mode: Optional[str] = None,
                 jacobian_fn: Optional[Callable[[Tensor], Tensor]] = None,
                 jdot_fn: Optional[Callable[[Tensor, Tensor], Tensor]] = None):
        if jacobian_mode is None:
            jacobian_mode = "analytic" if jacobian_fn is not None else "forward"
        if jacobian_mode == "analytic" and jacobian_fn is None:
            raise ValueError("FunctionMap: jacobian_mode='analytic' needs jacobian_fn")
        super().__init__(in_dim, out_dim, jacobian_mode=jacobian_mode)
        self._fn, self._jfn, self._jdfn = fn, jacobian_fn, jdot_fn
        self._has_analytic_jdot = jdot_fn is not None

    def psi(self, q):
        return self._fn(q)

    def jacobian(self, q):
        if self._jfn is None:
            raise NotImplementedError
        return self._jfn(q)

    def jdot_qd(self, q, qd):
        return self._jdfn(q, qd)


class ComposedMap(TaskMap):
    """``ψ = ψ₂ ∘ ψ₁``: ``J = J₂ J₁``, ``J̇q̇ = J₂ (J̇₁ q̇) + J̇₂ ẏ`` with ``ẏ = J₁ q̇``.

    Raises:
        ValueError: ``first.out_dim != second.in_dim``.
    """

    def __init__(self, first: TaskMap, second: TaskMap):
        if first.out_dim != second.in_dim:
            raise ValueError(f"ComposedMap: first.out_dim={first.out_dim} != second.in_dim={second.in_dim}")
        super().__init__(first.in_dim, second.out_dim, jacobian_mode="forward")
        self.first, self.second = first, second
        self.jacobian_mode = "analytic"

    def psi(self, q):
        return self.second.psi(self.first.psi(q))

    def _evaluate(self, q, qd, mode):
        if mode == "analytic":
            o1 = self.first._evaluate(q, qd, self.first.jacobian_mode)
            o2 = self.second._evaluate(o1.x, o1.xd, self.second.jacobian_mode)
            J = o2.J @ o1.J
            jd = _mv(o2.J, o1.Jdot_qd) + o2.Jdot_qd
            return TaskMapOutput(o2.x, o2.xd, J, jd)
        return super()._evaluate(q, qd, mode)


# ----------------------------------------------------------------------------------------------
# leaves and nodes
# ----------------------------------------------------------------------------------------------
class Leaf(nn.Module):
    """Base class of leaf RMPs: ``forward(x, xd) → (f, M)`` in natural form.

    Subclasses override exactly one of :meth:`natural` (``[f, M]``) or :meth:`canonical`
    (``(a, M)``); the other is derived (``f = M a``; ``a = M⁺ f``).

    Attributes:
        dim: task-space dimension m this leaf expects (``None``: any).
    """

    dim: Optional[int] = None

    def natural(self, x: Tensor, xd: Tensor) -> Tuple[Tensor, Tensor]:
        """``[f, M]``: ``f: (B, m)``, ``M: (B, m, m)``."""
        if type(self).canonical is Leaf.canonical:
            raise NotImplementedError(f"{type(self).__name__} implements neither natural nor canonical")
        a, M = self.canonical(x, xd)
        return canonical_to_natural(a, M)

    def canonical(self, x: Tensor, xd: Tensor) -> Tuple[Tensor, Tensor]:
        """``(a, M)``: ``a: (B, m)``, ``M: (B, m, m)``."""
        if type(self).natural is Leaf.natural:
            raise NotImplementedError(f"{type(self).__name__} implements neither natural nor canonical")
        f, M = self.natural(x, xd)
        return natural_to_canonical(f, M)

    def forward(self, x: Tensor, xd: Tensor) -> Tuple[Tensor, Tensor]:
        return self.natural(x, xd)

    def natural_diag(self, x: Tensor, xd: Tensor) -> Optional[Tuple[Tensor, Tensor]]:
        """Optional fast path for leaves whose metric is diagonal: ``(f (B, m), diag M (B, m))``.

        Returns ``None`` (the default) when not supported; :meth:`RMPFlow.pullback` then uses
        :meth:`forward`. Implementations must equal ``forward`` (``M = diag_embed(m)``) and return
        ``None`` when a subclass overrides ``forward`` / ``natural`` / ``canonical`` (see
        :func:`_diag_fast_path_ok`).
        """
        return None

    def fusion_key(self):
        """Hashable key of an element-wise diagonal leaf (``None``, the default: not fusable).

        Sibling leaf nodes of :class:`RMPFlow` whose task maps share a :meth:`TaskMap.group_key` and
        whose single leaves share a fusion key are evaluated as one: their coordinates are
        concatenated and passed once to :meth:`natural_diag_stacked`. A leaf may return a key only if
        its RMP acts on each coordinate independently with the same parameters (so evaluating the
        concatenation equals evaluating the parts); the key must change with its parameters.
        """
        return None

    def natural_diag_stacked(self, x: Tensor, xd: Tensor) -> Tuple[Tensor, Tensor]:
        """:meth:`natural_diag` on concatenated coordinates of any width ``(B, m')`` (fusable leaves only)."""
        raise NotImplementedError(f"{type(self).__name__} is not fusable")


def _diag_fast_path_ok(leaf: nn.Module, cls: type) -> bool:
    """True when ``leaf``'s ``forward``/``natural``/``canonical`` are those of ``cls`` (no subclass override)."""
    t = type(leaf)
    return t is cls or all(getattr(t, nm) is getattr(cls, nm) for nm in ("forward", "natural", "canonical"))


class RMPNode(nn.Module):
    """A node of the RMP tree: a task space reached from its parent by ``task_map``.

    Children (``add_child``) and leaves (``add_leaf``) attached here read this node's state.
    """

    def __init__(self, dim: int, task_map: Optional[TaskMap] = None, name: str = "node",
                 parent: Optional["RMPNode"] = None):
        super().__init__()
        self.dim = int(dim)
        self.task_map = task_map
        self.name = name
        self.children_nodes = nn.ModuleList()
        self.leaves = nn.ModuleList()
        # plain attribute (not a submodule) to avoid cycles in the module graph
        object.__setattr__(self, "_parent", parent)

    @property
    def parent(self) -> Optional["RMPNode"]:
        return self._parent

    def add_child(self, task_map: TaskMap, name: Optional[str] = None) -> "RMPNode":
        """Attach a child node reached through ``task_map`` (``task_map.in_dim`` must equal ``self.dim``)."""
        if not isinstance(task_map, TaskMap):
            raise ValueError(f"add_child: expected a TaskMap, got {type(task_map).__name__}")
        if task_map.in_dim != self.dim:
            raise ValueError(f"add_child: task map input dimension {task_map.in_dim} != node dimension {self.dim} ({self.name})")
        child = RMPNode(task_map.out_dim, task_map, name or f"{self.name}/{len(self.children_nodes)}", parent=self)
        self.children_nodes.append(child)
        return child

    def add_leaf(self, leaf: nn.Module) -> nn.Module:
        """Attach a leaf RMP (``leaf(x, xd) → (f, M)``); its ``dim`` (if set) must equal this node's."""
        d = getattr(leaf, "dim", None)
        if d is not None and int(d) != self.dim:
            raise ValueError(f"add_leaf: leaf {type(leaf).__name__} has dim {d}, node {self.name} has dim {self.dim}")
        self.leaves.append(leaf)
        return leaf

    def nodes(self) -> List["RMPNode"]:
        """This node and all descendants, parents before children (pre-order)."""
        out = [self]
        for c in self.children_nodes:
            out.extend(c.nodes())
        return out


class RMPRoot(RMPNode):
    """The configuration-space root of an RMP tree (``q ∈ ℝⁿ``)."""

    def __init__(self, dim: int, name: str = "root"):
        if int(dim) <= 0:
            raise ValueError(f"RMPRoot: dimension must be positive, got {dim}")
        super().__init__(dim, None, name, None)


@dataclass
class FlowState:
    """Pushforward result: ``nodes`` in pre-order and their ``outputs`` (``None`` for the root, whose
    state is ``(q, qd)``); ``states[i] = (x_i, ẋ_i)`` for every node. ``groups`` (internal): sibling
    nodes evaluated as one group, ``{first index: (member indices, stacked output, key)}``."""

    nodes: List[RMPNode]
    outputs: List[Optional[TaskMapOutput]]
    states: List[Tuple[Tensor, Tensor]]
    parent_index: List[int]
    groups: Optional[Dict[int, Tuple[List[int], TaskMapOutput, object]]] = None


RESOLVE_METHODS = ("damped", "pinv", "solve")


class RMPFlow(nn.Module):
    """Pushforward, pullback and resolve over an RMP tree (Cheng et al. 2018, Sec. III).

    Resolve (``q̈ = M⁺ f``, ``M`` PSD and in general non-symmetric once curvature terms ``Ξ_G`` enter):

    * ``"damped"`` (default; RMP2's numerics, ``rmp2/rmpgraph/rmpgraph.py``): with
      ``s = max(scale_frac · max|M|, 1)``, ``q̈ = (M/s + reg·I)⁻¹ (f/s) = (M + s·reg·I)⁻¹ f``
      (``reg = 1e-3``, ``scale_frac = 0.01`` as in RMP2). Biased by at most ``s·reg`` relative to the
      exact solve, always finite, differentiable.
    * ``"solve"``: ``q̈ = (M + reg·I)⁻¹ f`` with absolute ``reg`` (``reg = 0`` gives the exact inverse
      for non-singular ``M``).
    * ``"pinv"``: ``q̈ = pinv(M, rtol=rcond) f`` (Moore–Penrose; ``rcond=None`` → ``n·eps``).

    Sibling fusion (``fuse_siblings=True``, default; ``pullback_mode="compose"``): childless sibling nodes
    whose task maps share a :meth:`TaskMap.group_key` and whose single leaves share a
    :meth:`Leaf.fusion_key` — e.g. the distance maps of several obstacles from one control-point node,
    each with a ``CollisionRMP`` of equal parameters — are evaluated as one map and one leaf on the
    concatenated coordinates (fewer, larger tensor operations; equal up to rounding, tested). Keys are
    re-checked at every call, so changing a leaf's parameters splits the group.

    Args:
        root: the :class:`RMPRoot`. method, reg, scale_frac, rcond: see above.
        pullback_mode: ``"compose"`` (default) or ``"recursive"``, see :meth:`pullback`.
        fuse_siblings: see above.
    """

    def __init__(self, root: RMPRoot, method: str = "damped", reg: float = 1e-3, scale_frac: float = 0.01,
                 rcond: Optional[float] = None, pullback_mode: str = "compose", fuse_siblings: bool = True):
        super().__init__()
        self.fuse_siblings = bool(fuse_siblings)
        if pullback_mode not in ("compose", "recursive"):
            raise ValueError(f"RMPFlow: pullback_mode must be 'compose' or 'recursive', got {pullback_mode!r}")
        self.pullback_mode = pullback_mode
        if not isinstance(root, RMPNode) or root.task_map is not None:
            raise ValueError("RMPFlow: expected an RMPRoot")
        if method not in RESOLVE_METHODS:
            raise ValueError(f"RMPFlow: method must be one of {RESOLVE_METHODS}, got {method!r}")
        if reg < 0 or scale_frac < 0:
            raise ValueError(f"RMPFlow: reg and scale_frac must be >= 0, got {reg}, {scale_frac}")
        self.root = root
        self.method, self.reg, self.scale_frac, self.rcond = method, float(reg), float(scale_frac), rcond
        self._order: Optional[tuple] = None  # (nodes, parents, plan, signature, needed, groups, fuse flag, has children), see _topology

    def _topology(self):
        """``(nodes, parents, plan)`` in pre-order, rebuilt only when the tree changed.

        The cached plan holds each node's task map and leaves as plain lists (no ``nn.Module``
        attribute lookups per call); a change is detected from the identities of every node's
        ``task_map``, children and leaves (appending, removing or replacing one rebuilds the plan).
        """
        o = self._order
        if o is not None and o[6] == self.fuse_siblings:
            for mods, ch, chv, lv, lvv, tm in o[3]:
                if (mods.get("task_map") is not tm or len(ch) != len(chv) or len(lv) != len(lvv)
                        or any(a is not b for a, b in zip(ch.values(), chv))
                        or any(a is not b for a, b in zip(lv.values(), lvv))):
                    break
            else:
                return o
        nodes = self.root.nodes()
        pos = {id(nd): i for i, nd in enumerate(nodes)}
        parents = [-1] + [pos[id(nd.parent)] for nd in nodes[1:]]
        sig = []
        plan = []
        for nd in nodes:
            ch, lv = nd._modules["children_nodes"], nd._modules["leaves"]
            tm = nd._modules.get("task_map")
            sig.append((nd._modules, ch._modules, tuple(ch), lv._modules, tuple(lv), tm))
            plan.append((tm, list(lv)))
        groups = self._find_groups(nodes, parents, plan) if self.fuse_siblings else {}
        self._order = (nodes, parents, plan, sig, self._needed(nodes, parents), groups, self.fuse_siblings,
                       [len(nd.children_nodes) > 0 for nd in nodes])
        return self._order

    @staticmethod
    def _group_key(tm, leaves):
        """Fusion key of a childless node with one fusable leaf under a groupable map, else ``None``."""
        if len(leaves) != 1 or not isinstance(leaves[0], Leaf):
            return None
        gk = tm.group_key()
        if gk is None:
            return None
        lk = leaves[0].fusion_key()
        return None if lk is None else (gk, lk)

    def _find_groups(self, nodes, parents, plan) -> Dict[int, List[int]]:
        """Sibling leaf nodes with equal :meth:`_group_key` (≥ 2 of them): ``{first index: members}``."""
        buckets: Dict[Tuple[int, object], List[int]] = {}
        for i in range(1, len(nodes)):
            if len(nodes[i].children_nodes) > 0:
                continue
            k = self._group_key(*plan[i])
            if k is not None:
                buckets.setdefault((parents[i], k), []).append(i)
        return {m[0]: m for m in buckets.values() if len(m) > 1}

    def pushforward(self, q: Tensor, qd: Tensor) -> FlowState:
        """States of all nodes: ``x = ψ(x_parent)``, ``ẋ = J ẋ_parent``. ``q, qd: (B, n)``."""
        check_state(q, qd, self.root.dim, what="RMPFlow input (q, qd)")
        o = self._topology()
        nodes, parents, plan = o[0], o[1], o[2]
        outs: List[Optional[TaskMapOutput]] = [None]
        states = [(q, qd)]
        groups = o[5] if self.pullback_mode == "compose" else {}
        N = len(nodes)
        if not groups:
            with evaluation_cache():
                for i in range(1, N):
                    xp, xdp = states[parents[i]]
                    tm = plan[i][0]
                    out = tm._evaluate(xp, xdp, tm.jacobian_mode)
                    outs.append(out)
                    states.append((out.x, out.xd))
            return FlowState(nodes, outs, states, parents)
        outs = outs + [None] * (N - 1)
        states = states + [None] * (N - 1)
        done: Dict[int, Tuple[List[int], TaskMapOutput, object]] = {}
        with evaluation_cache():
            for i in range(1, N):
                if outs[i] is not None:
                    continue
                xp, xdp = states[parents[i]]
                members = groups.get(i)
                if members is not None:
                    # the maps' keys are re-checked here, the leaves' keys in the pullback
                    keys = [plan[j][0].group_key() for j in members]
                    if keys[0] is not None and all(k == keys[0] for k in keys):
                        maps = [plan[j][0] for j in members]
                        stacked, mouts = type(maps[0]).evaluate_group(maps, xp, xdp)
                        for j, mo in zip(members, mouts):
                            outs[j] = mo
                            states[j] = (mo.x, mo.xd)
                        done[i] = (members, stacked, keys[0])
                        continue
                tm = plan[i][0]
                out = tm._evaluate(xp, xdp, tm.jacobian_mode)
                outs[i] = out
                states[i] = (out.x, out.xd)
        return FlowState(nodes, outs, states, parents, done)

    def pullback(self, state: FlowState) -> Tuple[Tensor, Tensor]:
        """Root RMP ``[f, M]`` (``(B, n)``, ``(B, n, n)``) from all leaves.

        ``pullback_mode="compose"`` (default): every node's total Jacobian to the root
        ``J_tot = J_i J_tot,parent`` and curvature ``J̇_tot q̇ = J_i (J̇_tot,parent q̇) + J̇_i ẋ_parent`` are
        formed once (slices of a shared node are just row selections), and each node's summed leaf RMP
        is pulled straight to the root: ``f += J_totᵀ(f_i − M_i J̇_tot q̇)``, ``M += J_totᵀ M_i J_tot``.
        This never forms ``m × m`` metrics at wide intermediate nodes (e.g. 3K control points).
        Nodes whose leaves all provide :meth:`Leaf.natural_diag` (diagonal metrics ``m``) are stacked and
        pulled back in one product: ``f += J_sᵀ(f_s − m_s ⊙ J̇_s q̇)``, ``M += J_sᵀ diag(m_s) J_s`` with
        ``J_s`` all their total-Jacobian rows ``(B, Σm, n)`` (equal up to rounding; tested).
        ``"recursive"``: the textbook edge-by-edge pullback (children before parents). Both are equal
        up to rounding (tested).
        """
        if self.pullback_mode == "compose":
            return self._pullback_compose(state)
        nodes, outs, states, parents = state.nodes, state.outputs, state.states, state.parent_index
        acc: List[Optional[Tuple[Tensor, Tensor]]] = [None] * len(nodes)
        for i in range(len(nodes) - 1, -1, -1):
            nd = nodes[i]
            x, xd = states[i]
            cur = acc[i]
            for leaf in nd.leaves:
                f, M = leaf(x, xd)
                cur = (f, M) if cur is None else (cur[0] + f, cur[1] + M)
            if i == 0:
                acc[0] = cur
                break
            if cur is None:
                continue
            fp, Mp = nd.task_map.pullback_rmp(outs[i], cur[0], cur[1])
            p = parents[i]
            acc[p] = (fp, Mp) if acc[p] is None else (acc[p][0] + fp, acc[p][1] + Mp)
        if acc[0] is None:
            q = states[0][0]
            n = q.shape[1]
            return q.new_zeros(q.shape), q.new_zeros(q.shape[0], n, n)
        return acc[0]

    def _pullback_compose(self, state: FlowState) -> Tuple[Tensor, Tensor]:
        nodes, outs, states, parents = state.nodes, state.outputs, state.states, state.parent_index
        q = states[0][0]
        o = self._topology()
        if o[0] is nodes or (len(o[0]) == len(nodes) and all(a is b for a, b in zip(o[0], nodes))):
            plan, need, chd = o[2], o[4], o[7]
        else:  # a state from another tree
            plan = [(nd.task_map, list(nd.leaves)) for nd in nodes]
            need = self._needed(nodes, parents)
            chd = [len(nd.children_nodes) > 0 for nd in nodes]
        groups = state.groups or {}
        skip = set()
        tot: List[Optional[Tuple[Tensor, Tensor]]] = [None] * len(nodes)
        f_root: Optional[Tensor] = None
        M_root: Optional[Tensor] = None
        # nodes whose leaves all have diagonal metrics: rows stacked and pulled back in one product
        diag_J: List[Tensor] = []
        diag_m: List[Tensor] = []
        diag_f: List[Tensor] = []
        for i in range(len(nodes)):
            if not need[i] or i in skip:
                continue
            tm, leaves = plan[i]
            grp = groups.get(i)
            if grp is not None:
                members, stacked, _ = grp
                lk = leaves[0].fusion_key()
                if lk is not None and all(plan[j][1][0].fusion_key() == lk for j in members[1:]):
                    # fused siblings: one total Jacobian, one leaf evaluation on the stacked rows
                    p = parents[i]
                    Jp, jdp = (None, None) if p == 0 else tot[p]
                    J, jd = tm.compose_group_total(stacked, Jp, jdp)
                    fl, ml = leaves[0].natural_diag_stacked(stacked.x, stacked.xd)
                    diag_J.append(J)
                    diag_m.append(ml)
                    diag_f.append(fl - ml * jd)
                    skip.update(members)
                    continue
            if i > 0:
                p = parents[i]
                if p == 0 and getattr(outs[i], "jdot_zero", False) and not chd[i]:
                    tot[i] = (outs[i].J, None)  # J̇q̇ ≡ 0 and no child reads it: not materialised
                else:
                    Jp, jdp = (None, None) if p == 0 else tot[p]
                    tot[i] = tm.compose_total(outs[i], Jp, jdp)
            if not leaves:
                continue
            x, xd = states[i]
            f = M = m = None
            for leaf in leaves:
                r = leaf.natural_diag(x, xd) if isinstance(leaf, Leaf) else None
                if r is not None:
                    fl, ml = r
                    m = ml if m is None else m + ml
                else:
                    fl, Ml = leaf(x, xd)
                    M = Ml if M is None else M + Ml
                f = fl if f is None else f + fl
            if i > 0:
                J, jd = tot[i]
                if M is None:
                    diag_J.append(J)
                    diag_m.append(m)
                    diag_f.append(f if jd is None else f - m * jd)  # jd None: J̇q̇ ≡ 0
                    continue
                if m is not None:
                    M = M + torch.diag_embed(m)
                f = _mtv(J, f if jd is None else f - _mv(M, jd))
                M = _bmm(_bmm(J.transpose(1, 2), M), J)
            elif m is not None:
                M = torch.diag_embed(m) if M is None else M + torch.diag_embed(m)
            f_root = f if f_root is None else f_root + f
            M_root = M if M_root is None else M_root + M
        if diag_J:
            J = diag_J[0] if len(diag_J) == 1 else torch.cat(diag_J, 1)  # (B, Σm, n)
            m = diag_m[0] if len(diag_m) == 1 else torch.cat(diag_m, 1)
            fc = diag_f[0] if len(diag_f) == 1 else torch.cat(diag_f, 1)
            f = _mtv(J, fc)
            M = _bmm((J * m.unsqueeze(-1)).transpose(1, 2), J)
            f_root = f if f_root is None else f_root + f
            M_root = M if M_root is None else M_root + M
        if f_root is None:
            n = q.shape[1]
            return q.new_zeros(q.shape), q.new_zeros(q.shape[0], n, n)
        return f_root, M_root

    @staticmethod
    def _needed(nodes, parents) -> List[bool]:
        """Nodes with a leaf in their subtree."""
        need = [len(nd.leaves) > 0 for nd in nodes]
        for i in range(len(nodes) - 1, 0, -1):
            if need[i]:
                need[parents[i]] = True
        return need

    def resolve(self, f: Tensor, M: Tensor) -> Tensor:
        """``q̈ = M⁺ f`` with the configured regularisation. ``f: (B, n)``, ``M: (B, n, n)`` → ``(B, n)``."""
        n = M.shape[-1]
        if self.method == "pinv":
            return _mv(torch.linalg.pinv(M, rtol=self.rcond), f)
        eye = constant_eye(n, M.dtype, M.device)
        if self.method == "damped":
            # s·reg = max(scale_frac·max|M|, 1)·reg = max(scale_frac·reg·max|M|, reg)
            lam = (M.detach().abs().amax(dim=(-2, -1)) * (self.scale_frac * self.reg)).clamp_min(self.reg).reshape(-1, 1, 1)
            A = torch.addcmul(M, lam, eye)
        else:
            A = M + self.reg * eye
        if A.shape[:-1] == f.shape:  # batched vector right-hand side (no unsqueeze / squeeze)
            return torch.linalg.solve(A, f)
        return torch.linalg.solve(A, f.unsqueeze(-1)).squeeze(-1)  # broadcasting batch shapes

    def forward(self, q: Tensor, qd: Tensor) -> Tensor:
        """``q̈ = resolve(pullback(pushforward(q, qd)))`` for ``q, qd: (B, n)``."""
        f, M = self.pullback(self.pushforward(q, qd))
        return self.resolve(f, M)

    def leaf_states(self, state: FlowState):
        """Iterate ``(leaf, node_index, x, ẋ)`` over all leaves of a pushforward state."""
        for i, nd in enumerate(state.nodes):
            x, xd = state.states[i]
            for leaf in nd.leaves:
                yield leaf, i, x, xd
