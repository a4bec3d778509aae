r"""Bures–Wasserstein parallel transport on SPD matrices by ODE integration (private).

The Bures–Wasserstein metric (BWM) on ``Sym⁺(n)`` is ``g_x(u, v) = ½ tr(L_x(u) v)``, where
``L_x(u)`` solves the Lyapunov equation ``x L + L x = u`` (the convention of
:class:`manifolds.spd.BuresWassersteinMetric`; Bhatia, Jain & Lim, Expo. Math. 37 (2019);
Malagò, Montrucchio & Pistone, Inf. Geom. 1 (2018), arXiv 1801.09269). Its parallel transport
has no closed form outside commuting matrices (Thanwerdas & Pennec, "O(n)-invariant Riemannian
metrics on SPD matrices", LAA 2023, §BW), so it is obtained here by integrating the transport
ODE with :func:`torchdiffeq.odeint`.

**Geodesic.** With ``K = L_x(u)``, the geodesic from ``x`` with initial velocity ``u`` is
``γ(t) = (I + tK) x (I + tK) = x + t u + t² K x K`` (the Riemannian exponential of Malagò
et al. 2018; McCann's displacement interpolation between Gaussians, Bhatia et al. 2019, with
``T = I + K``). Between ``x`` and ``y``,
``I + K = T = x^{-½}(x^{½} y x^{½})^{½} x^{-½}`` is the optimal transport map (``T x T = y``),
so ``γ(t) = ((1−t) I + tT) x ((1−t) I + tT)``. Along it, in closed form::

    γ'(t) = K x A + A x K,     A = I + tK,
    L_{γ(t)}(γ'(t)) = K A⁻¹ = A⁻¹ K                       (check: γ A⁻¹K + A⁻¹K γ = γ')
    γ''(t) = 2 K x K = 2 L_γ(γ') γ L_γ(γ').

**Connection.** The Levi-Civita connection of the BWM is (Malagò et al. 2018, section on the
Levi-Civita covariant derivative, in the form ``D_X Y = dY[X] − {L_Σ(X) Σ L_Σ(Y)}`` with
``{A} = A + Aᵀ``; Takatsu, Osaka J. Math. 48 (2011) for the Riemannian structure)::

    ∇_X Y = dY[X] + Γ_x(X, Y),    Γ_x(u, w) = −(L_x(u) x L_x(w) + L_x(w) x L_x(u)).

It is read off the geodesic equation ``γ'' + Γ_γ(γ', γ') = 0`` above by polarisation (a
torsion-free connection is determined by its geodesics), and :mod:`tests.test_bures` checks
numerically that it is symmetric and metric-compatible (``d_x g(v, w)[u] = g(Γ(u, v), w) +
g(v, Γ(u, w))``), which characterises the Levi-Civita connection (Koszul).

**Transport ODE.** ``V'(t) = −Γ_{γ(t)}(γ'(t), V(t)) = M γ L_γ(V) + L_γ(V) γ M`` with
``M = L_γ(γ') = K (I + tK)⁻¹``: one Lyapunov solve per right-hand-side evaluation, no
host synchronisation inside it (the adaptive step control of torchdiffeq itself does
synchronise once per step).

Between commuting matrices ``x = U diag(a) Uᵀ``, ``y = U diag(b) Uᵀ`` the ODE decouples in the
common eigenbasis, ``(Uᵀ V U)_ij(1) = (Uᵀ v U)_ij · √((b_i + b_j)/(a_i + a_j))`` (the closed
form the tests compare against; cf. Thanwerdas & Pennec 2023, BW parallel transport between
commuting matrices).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from ._linalg import _chol, sym, sym_lyapunov, sym_sqrtm

__all__ = ["bw_parallel_transport", "bw_transp_follow_expmap"]

# torchdiffeq methods (torchdiffeq 0.2.x ``SOLVERS``, less the non-differentiable scipy wrapper).
_ADAPTIVE = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
_FIXED = ("rk4", "euler", "midpoint", "heun2", "heun3", "explicit_adams", "implicit_adams", "fixed_adams")
# Default step of the fixed-step methods (20 steps on t ∈ [0, 1]) when ``options`` gives none.
_FIXED_STEP = 0.05
# Default (rtol, atol) per dtype; ``atol`` is relative to ‖v‖_F (the state is normalised).
_TOL = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-6)}


# ---------------------------------------------------------------------------- helpers
def _christoffel(x: torch.Tensor, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Christoffel form ``Γ_x(u, w) = −(L_x(u) x L_x(w) + L_x(w) x L_x(u))`` of the BWM.

    Malagò, Montrucchio & Pistone 2018 (see the module docstring). Shapes
    ``(..., n, n)``, broadcast; result symmetric.
    """
    lu, lw = sym_lyapunov(x, u), sym_lyapunov(x, w)
    p = lu @ x @ lw
    return -(p + p.mT)


def _geodesic(x: torch.Tensor, k: torch.Tensor, t) -> torch.Tensor:
    """``γ(t) = (I + tK) x (I + tK)``."""
    a = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device) + t * k
    return sym(a @ x @ a)


def _transport_rhs(x: torch.Tensor, k: torch.Tensor, t, w: torch.Tensor) -> torch.Tensor:
    """``−Γ_{γ(t)}(γ'(t), w)`` along ``γ(t) = (I + tK) x (I + tK)``, using ``L_γ(γ') = (I + tK)⁻¹ K``."""
    a = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device) + t * k
    g = sym(a @ x @ a)
    m = sym(torch.linalg.solve(a, k))
    p = m @ g @ sym_lyapunov(g, w)
    return p + p.mT


def _bw_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Optimal transport map ``T = x^{-½}(x^{½} y x^{½})^{½} x^{-½} = C⁻ᵀ (Cᵀ y C)^{½} C⁻¹``, ``x = C Cᵀ``.

    The unique SPD solution of ``T x T = y`` (Bhatia, Jain & Lim 2019); any square root
    factor of ``x`` gives it, so a Cholesky factor is used (refs/core.md §7.10).
    """
    c = _chol(x)
    s = sym_sqrtm(sym(c.mT @ y @ c))
    z = torch.linalg.solve_triangular(c.mT, s, upper=True)  # C⁻ᵀ S
    return sym(torch.linalg.solve_triangular(c.mT, z.mT, upper=True))  # C⁻ᵀ S C⁻¹


def _check_args(method: str, rtol, atol, options, dtype: torch.dtype):
    if not isinstance(method, str) or method not in _ADAPTIVE + _FIXED:
        raise ValueError(
            f"method: unknown ODE method {method!r}; expected one of {', '.join(_ADAPTIVE + _FIXED)}"
        )
    d_rtol, d_atol = _TOL.get(dtype, _TOL[torch.float32])
    out = []
    for name, val, default in (("rtol", rtol, d_rtol), ("atol", atol, d_atol)):
        if val is None:
            val = default
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val) or val <= 0:
            raise ValueError(f"{name}: expected a finite positive float, got {val!r}")
        out.append(float(val))
    if options is not None and not isinstance(options, dict):
        raise ValueError(f"options: expected a dict of torchdiffeq solver options or None, got {type(options).__name__}")
    options = dict(options or {})
    if method in _FIXED and "step_size" not in options and "grid_constructor" not in options:
        options["step_size"] = _FIXED_STEP
    if method in _ADAPTIVE and "step_t" not in options and "jump_t" not in options:
        # Land a step exactly on t = 1: otherwise torchdiffeq steps past it and returns its dense
        # interpolant there, whose (lower-order) error dominates (1.5e-7 for dopri8 at rtol 1e-10).
        options["step_t"] = [1.0]
    return out[0], out[1], options


def _check_mats(**mats: torch.Tensor) -> None:
    n = None
    for name, m in mats.items():
        if not isinstance(m, torch.Tensor):
            raise ValueError(f"{name}: expected a torch.Tensor, got {type(m).__name__}")
        if m.dim() < 2 or m.shape[-1] != m.shape[-2]:
            raise ValueError(f"{name}: expected square matrices (..., n, n), got shape {tuple(m.shape)}")
        if m.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"{name}: expected dtype float32 or float64, got {m.dtype}")
        if n is not None and m.shape[-1] != n:
            raise ValueError(f"{name}: expected n = {n} like the other arguments, got shape {tuple(m.shape)}")
        n = m.shape[-1]
    dtypes = {m.dtype for m in mats.values()}
    if len(dtypes) > 1:
        raise ValueError(f"expected one dtype for {', '.join(mats)}, got {sorted(map(str, dtypes))}")


def _transport_along(x, k, v, method, rtol, atol, options) -> torch.Tensor:
    """Integrate ``V' = −Γ_γ(γ', V)`` on ``t ∈ [0, 1]`` along ``γ(t) = (I + tK) x (I + tK)``."""
    from torchdiffeq import odeint  # lazy: keeps ``import manifolds`` light

    x, k, v = torch.broadcast_tensors(x, k, v)
    v = sym(v)
    # The ODE is linear in V: integrate V/‖V‖_F so that rtol/atol act relative to each batch
    # element's own scale (torchdiffeq's step control is joint over the whole batched state).
    scale = torch.linalg.vector_norm(v, dim=(-2, -1), keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    ts = torch.tensor([0.0, 1.0], dtype=v.dtype, device=v.device)
    sol = odeint(
        lambda t, w: _transport_rhs(x, k, t, w),
        v / scale,
        ts,
        rtol=rtol,
        atol=atol,
        method=method,
        options=options,
    )
    return sym(sol[-1]) * scale


# ---------------------------------------------------------------------------- public
def bw_parallel_transport(
    x: torch.Tensor,
    y: torch.Tensor,
    v: torch.Tensor,
    *,
    method: str = "dopri5",
    rtol: Optional[float] = None,
    atol: Optional[float] = None,
    options: Optional[dict] = None,
) -> torch.Tensor:
    r"""Bures–Wasserstein parallel transport of ``v`` from ``x`` to ``y`` along their geodesic.

    Transports the tangent vector ``v`` at ``x`` along the BW geodesic
    ``γ(t) = ((1−t) I + tT) x ((1−t) I + tT)``, ``T = x^{-½}(x^{½} y x^{½})^{½} x^{-½}``
    (Bhatia, Jain & Lim, Expo. Math. 2019; Malagò, Montrucchio & Pistone, Inf. Geom. 2018) for
    the metric ``g_x(u, w) = ½ tr(L_x(u) w)``, ``x L + L x = u``, by solving
    the parallel-transport ODE

        ``V'(t) = −Γ_{γ(t)}(γ'(t), V(t))``,
        ``Γ_x(u, w) = −(L_x(u) x L_x(w) + L_x(w) x L_x(u))``

    (Levi-Civita connection of the BWM, Malagò et al. 2018; obtained here by polarising the
    geodesic equation, checked in the tests for symmetry and metric compatibility) with
    :func:`torchdiffeq.odeint` from ``t = 0`` to ``1``. ``L_γ(γ') = (I + tK)⁻¹ K`` with
    ``K = T − I`` is in closed form, so each right-hand side costs one Lyapunov solve. The
    transport is an isometry ``T_x Sym⁺ → T_y Sym⁺`` and maps ``logmap(x, y)`` to
    ``−logmap(y, x)``.

    Args:
        x: ``(..., n, n)`` SPD, start point.
        y: ``(..., n, n)`` SPD, end point.
        v: ``(..., n, n)`` symmetric, tangent vector at ``x`` (symmetrised).
            ``x``, ``y``, ``v`` broadcast; float32 or float64, one dtype.
        method: a torchdiffeq method: adaptive ``"dopri5"`` (default), ``"dopri8"``,
            ``"bosh3"``, ``"fehlberg2"``, ``"adaptive_heun"``; fixed-step ``"rk4"``,
            ``"euler"``, ``"midpoint"``, ``"heun2"``, ``"heun3"``, ``"explicit_adams"``,
            ``"implicit_adams"``, ``"fixed_adams"`` (step ``0.05`` unless ``options`` gives
            ``step_size`` or ``grid_constructor``). Adaptive methods get ``step_t=[1.0]`` unless
            ``options`` gives ``step_t`` or ``jump_t``, so the result is a solver step, not
            torchdiffeq's dense interpolant.
        rtol, atol: tolerances of the adaptive methods. Default ``(1e-10, 1e-10)`` in float64,
            ``(1e-5, 1e-6)`` in float32. Each batch element is integrated as ``v / ‖v‖_F`` (the
            ODE is linear), so ``atol`` is relative to ``‖v‖_F``; the step control is joint
            over the batch (torchdiffeq's RMS norm of the whole state).
        options: extra torchdiffeq solver options (e.g. ``{"step_size": 0.01}``,
            ``{"max_num_steps": 1000}``).

    Returns:
        ``(..., n, n)`` symmetric, the transported vector at ``y`` (broadcast batch shape).

    Raises:
        ValueError: unknown ``method``; ``rtol`` / ``atol`` not finite positive numbers;
            ``options`` not a dict; inputs not square ``(..., n, n)`` float32/float64 of one
            ``n`` and dtype. Values are not checked (no host sync): a non-SPD ``x`` gives NaN.

    Cost: per right-hand side, ``O(n³)`` (one eigenbasis Lyapunov solve,
    :func:`manifolds._linalg.sym_lyapunov`); ``dopri5`` uses 6 evaluations per step. Accuracy knobs:
    ``rtol`` / ``atol`` (adaptive), ``options["step_size"]`` (fixed-step). Differentiable
    w.r.t. ``x``, ``y`` and ``v`` by backpropagation through the solver steps (first order;
    ``sym_sqrtm`` has no double backward). Adaptive step control synchronises with the
    device once per step; the right-hand side does not.
    """
    _check_mats(x=x, y=y, v=v)
    rtol, atol, options = _check_args(method, rtol, atol, options, v.dtype)
    k = _bw_map(x, y) - torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    return _transport_along(x, k, v, method, rtol, atol, options)


def bw_transp_follow_expmap(
    x: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    *,
    method: str = "dopri5",
    rtol: Optional[float] = None,
    atol: Optional[float] = None,
    options: Optional[dict] = None,
) -> torch.Tensor:
    r"""Bures–Wasserstein parallel transport of ``v`` along ``t ↦ expmap(x, t u)``, ``t ∈ [0, 1]``.

    The geodesic is ``γ(t) = (I + tK) x (I + tK) = x + t u + t² K x K`` with ``K = L_x(u)``
    (Malagò, Montrucchio & Pistone 2018), ending at ``expmap(x, u)``; the transport
    ODE and its connection are those of :func:`bw_parallel_transport`. Unlike that function it
    needs no matrix square root, only one Lyapunov solve for ``K``. ``γ`` stays SPD while
    ``I + tK`` is invertible on ``[0, 1]`` (all eigenvalues of ``K`` above ``−1``, the domain of
    ``expmap`` where it is a geodesic); otherwise the result is inf/NaN.

    Args:
        x: ``(..., n, n)`` SPD.
        u: ``(..., n, n)`` symmetric, initial velocity of the geodesic.
        v: ``(..., n, n)`` symmetric, tangent vector at ``x`` to transport.
        method, rtol, atol, options: as in :func:`bw_parallel_transport`.

    Returns:
        ``(..., n, n)`` symmetric, the transported vector at ``expmap(x, u)``.

    Raises:
        ValueError: as :func:`bw_parallel_transport`.
    """
    _check_mats(x=x, u=u, v=v)
    rtol, atol, options = _check_args(method, rtol, atol, options, v.dtype)
    x, u = torch.broadcast_tensors(x, u)
    k = sym_lyapunov(x, sym(u))
    return _transport_along(x, k, v, method, rtol, atol, options)
