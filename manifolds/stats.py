r"""Riemannian statistics: the weighted Fréchet (Karcher) mean and the Fréchet variance.

For samples ``x_1, ..., x_N`` on a Riemannian manifold ``M`` with non-negative weights
``w_i`` (normalised so that ``Σ w_i = 1``), the *Fréchet function* is

.. math::  F(m) = \tfrac12 \sum_i w_i \, d(m, x_i)^2,
           \qquad \operatorname{grad} F(m) = -\sum_i w_i \log_m(x_i),

and a *Fréchet mean* is a (local) minimiser of ``F`` (Karcher, "Riemannian center of mass and
mollifier smoothing", Comm. Pure Appl. Math. 30 (1977); Pennec, "Intrinsic statistics on
Riemannian manifolds: basic tools for geometric measurements", J. Math. Imaging Vis. 25 (2006),
§4). The *Fréchet variance* is ``σ² = Σ_i w_i d(m, x_i)²`` at the mean (Pennec 2006, Def. 5).

Closed forms (``method="auto"`` or ``"closed_form"``):

=====================================  ===========================================================
manifold                               mean
=====================================  ===========================================================
:class:`Euclidean`                     ``Σ w_i x_i``
``SPD`` + :class:`EuclideanMetric`     ``Σ w_i x_i`` (convex combination: SPD again)
``SPD`` + :class:`LogEuclideanMetric`  ``expm(Σ w_i logm(x_i))`` (Arsigny, Fillard, Pennec &
                                       Ayache, SIAM J. Matrix Anal. Appl. 29 (2007), Thm 3.13)
``SPD`` + :class:`LogCholeskyMetric`   ``K Kᵀ``, ``⌊K⌋ = Σ w_i ⌊L_i⌋``, ``D(K) = Π D(L_i)^{w_i}``,
                                       ``x_i = L_i L_iᵀ`` (Lin, SIAM J. Matrix Anal. Appl. 40
                                       (2019), Prop. 9)
θ- and (α, β)-deformations of those    ``φ⁻¹(mean(φ(x_i)))`` with ``φ(x) = x^θ``, e.g. power-Euclidean
                                       ``(Σ w_i x_i^θ)^{1/θ}``; ``(α, β)`` does not move the mean
                                       (:meth:`manifolds.spd.SPDMetric.frechet_mean_closed_form`)
:class:`Product`                       factor by factor (the product metric's Fréchet function is
                                       the sum of the factors'; each factor closed form or flow)
=====================================  ===========================================================

Every other manifold (``Sphere``, ``SO3``, ``SE3``, ``PoincareBall``, ``Hyperboloid``, ``SPD``
with the affine-invariant or Bures–Wasserstein metric, ...) uses the **Karcher flow**
(Riemannian gradient descent on ``F``; Pennec 2006, §4.3)::

    m ← expmap(m, step · Σ_i w_i logmap(m, x_i))

Convergence (Afsari, "Riemannian Lᵖ center of mass: existence, uniqueness, and convexity",
Proc. AMS 139 (2011), Thm 2.1; Afsari, Tron & Vidal, SIAM J. Control Optim. 51 (2013)): the mean
is unique and the flow with ``step = 1`` converges when the data lie in an open geodesic ball of
radius ``r < ½ min(inj(M), π / (2 √Δ))``, ``Δ`` an upper bound of the sectional curvature. On
the unit sphere (``Δ = 1``) this is a ball of radius ``π/4`` (for uniqueness alone, an open
hemisphere, radius ``π/2``, suffices); on SO(3) with this library's metric (``Δ = ¼``) a ball of
radius ``π/2`` in rotation angle. On manifolds of non-positive curvature (hyperbolic spaces, SPD
with the affine-invariant metric) the mean is unique for any data and the flow converges.
For the Bures–Wasserstein metric the flow with ``step = 1`` is the fixed-point iteration of
Álvarez-Esteban et al. (2016) / gradient descent of Chewi et al. (COLT 2020), which converges.

In negative curvature the Hessian of ``F`` exceeds the identity (up to ``r coth r`` at distance
``r`` on curvature −1), so with ``step = 1`` the flow converges slowly, or oscillates, for data
spread over distances ``≳ 2``; use a smaller ``step`` and a larger ``max_iter`` there (check
``info.converged``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from .base import Manifold
from .euclidean import Euclidean
from .product import Product
from .spd import SPD

__all__ = ["FrechetMeanInfo", "frechet_mean", "frechet_variance"]

# Default stopping tolerance of the Karcher flow, on the Riemannian norm of the update.
_DEFAULT_TOL = {
    torch.float16: 1e-2,
    torch.bfloat16: 3e-2,
    torch.float32: 1e-5,
    torch.float64: 1e-12,
}

_METHODS = ("auto", "closed_form", "karcher")


@dataclass
class FrechetMeanInfo:
    """Diagnostics of :func:`frechet_mean` (returned with ``return_info=True``).

    Attributes:
        method: ``"closed_form"``, ``"karcher"`` or, for a product solved factor by factor,
            ``"product"``.
        iterations: Karcher iterations run (0 for a closed form; the largest over the
            factors of a product).
        converged: ``True`` when every batch element met the tolerance (always ``True`` for a
            closed form).
        grad_norm: ``(*batch,)`` Riemannian norm of ``Σ_i w_i logmap(mean, x_i)`` (the
            negative gradient of the Fréchet function) at the returned mean, detached.
    """

    method: str
    iterations: int
    converged: bool
    grad_norm: torch.Tensor


# ---------------------------------------------------------------------------- helpers
def _event_ndim(manifold: Manifold) -> int:
    return len(manifold.event_shape)


def _wsum(w: torch.Tensor, v: torch.Tensor, k: int) -> torch.Tensor:
    """``Σ_i w_i v_i``: ``w (*batch, N)``, ``v (*batch, N, *event)`` -> ``(*batch, *event)``."""
    return (w.reshape(w.shape + (1,) * k) * v).sum(dim=-(k + 1))


def _prepare(manifold: Manifold, x: torch.Tensor, weights) -> Tuple[torch.Tensor, torch.Tensor]:
    """Validate shapes and weights; return ``x`` and normalised ``w`` expanded to a common batch."""
    if not isinstance(manifold, Manifold):
        raise ValueError(f"manifold must be a manifolds.Manifold, got {type(manifold).__name__}")
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    event = tuple(manifold.event_shape)
    k = len(event)
    if x.dim() < k + 1 or tuple(x.shape[x.dim() - k :]) != event:
        raise ValueError(
            f"x must have shape (*batch, N, *event_shape) with event_shape {event} for {manifold.name}, "
            f"got {tuple(x.shape)}"
        )
    n = x.shape[x.dim() - k - 1]
    if n < 1:
        raise ValueError("x holds no samples (N = 0); the Fréchet mean needs at least one")
    xbatch = tuple(x.shape[: x.dim() - k - 1])
    if weights is None:
        w = torch.full(xbatch + (n,), 1.0 / n, dtype=x.dtype, device=x.device)
        return x, w
    w = torch.as_tensor(weights, dtype=x.dtype, device=x.device)
    if w.dim() < 1 or w.shape[-1] != n:
        raise ValueError(f"weights must have shape (*batch, N) with N = {n} samples, got {tuple(w.shape)}")
    try:
        batch = torch.broadcast_shapes(xbatch, tuple(w.shape[:-1]))
    except RuntimeError:
        raise ValueError(
            f"weights batch shape {tuple(w.shape[:-1])} does not broadcast with the batch shape {xbatch} of x"
        ) from None
    # Validation at the public boundary: one host synchronisation.
    if not bool(torch.isfinite(w).all()):
        raise ValueError("weights contain NaN or inf values")
    if bool((w < 0).any()):
        raise ValueError(f"weights must be non-negative, got a minimum of {float(w.min()):.3g}")
    total = w.sum(-1, keepdim=True)
    if bool((total <= 0).any()):
        raise ValueError("weights must not be all zero for any batch element (they are normalised to sum to 1)")
    w = w / total
    x = x.expand(batch + tuple(x.shape[x.dim() - k - 1 :]))
    w = w.expand(batch + (n,))
    return x, w


def _closed_form(manifold: Manifold, x: torch.Tensor, w: torch.Tensor) -> Optional[torch.Tensor]:
    """Closed-form weighted Fréchet mean, or ``None`` when the manifold has none.

    Exact manifold types are matched (a subclass may change the metric, so it gets the Karcher
    flow); SPD asks its metric (:meth:`manifolds.spd.SPDMetric.frechet_mean_closed_form`:
    log-Euclidean, log-Cholesky, Euclidean and their θ / (α, β) deformations). Products are
    handled by the caller, factor by factor.
    """
    k = _event_ndim(manifold)
    if type(manifold) is Euclidean:
        return _wsum(w, x, k)
    if type(manifold) is SPD:
        return manifold.metric.frechet_mean_closed_form(x, w)
    return None


def _grad(manifold: Manifold, m: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``Σ_i w_i logmap(m, x_i)``; samples of zero weight contribute exactly 0 (even if NaN)."""
    k = _event_ndim(manifold)
    logs = manifold.logmap(m.unsqueeze(-(k + 1)), x)
    wk = w.reshape(w.shape + (1,) * k)
    logs = torch.where(wk > 0, logs, torch.zeros_like(logs))
    return (wk * logs).sum(dim=-(k + 1))


def _grad_norm(manifold: Manifold, m: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return manifold.norm(m, _grad(manifold, m, x, w))


def _karcher(manifold, x, w, init, tol, max_iter, step):
    k = _event_ndim(manifold)
    if init is None:
        # the sample of largest weight (first one on ties), gathered without a host sync
        idx = w.argmax(-1)
        idx = idx.reshape(idx.shape + (1,) * (k + 1)).expand(idx.shape + (1,) + tuple(manifold.event_shape))
        m = torch.gather(x, x.dim() - k - 1, idx).squeeze(-(k + 1))
    else:
        m = torch.as_tensor(init, dtype=x.dtype, device=x.device)
        ok, reason = manifold._check_shape(m.shape, "init")
        if not ok:
            raise ValueError(reason)
        batch = tuple(x.shape[: x.dim() - k - 1])
        try:
            m = m.expand(batch + tuple(manifold.event_shape))
        except RuntimeError:
            raise ValueError(
                f"init of shape {tuple(m.shape)} does not broadcast to the mean's shape "
                f"{batch + tuple(manifold.event_shape)}"
            ) from None
    iterations, converged = 0, False
    for _ in range(max_iter):
        g = _grad(manifold, m, x, w)
        upd = step * g
        unorm = manifold.norm(m, upd)
        m = manifold.expmap(m, upd)
        iterations += 1
        # one host check per iteration: the stopping test of this iterative routine
        if bool((unorm.detach() <= tol).all()):
            converged = True
            break
    return m, iterations, converged


def _mean(manifold, x, w, method, init, tol, max_iter, step, want_info):
    """Mean of validated, normalised inputs; returns ``(mean, info or None)``."""
    if method != "karcher" and type(manifold) is Product:
        parts = manifold.split(x)  # (*batch, N, D) -> list of (*batch, N, *event_i)
        inits = [None] * manifold.n_factors if init is None else manifold.split(torch.as_tensor(init, dtype=x.dtype, device=x.device))
        outs, iters, conv = [], 0, True
        for f, xf, initf in zip(manifold.factors, parts, inits):
            mf, inf = _mean(f, xf, w, method, initf, tol, max_iter, step, False)
            outs.append(mf)
            if inf is not None:
                iters, conv = max(iters, inf[0]), conv and inf[1]
        m = manifold.join(outs)
        info = None
        if want_info:
            info = FrechetMeanInfo("product", iters, conv, _grad_norm(manifold, m, x, w))
        return m, (info if want_info else (iters, conv))
    if method != "karcher":
        m = _closed_form(manifold, x, w)
        if m is not None:
            if want_info:
                return m, FrechetMeanInfo("closed_form", 0, True, _grad_norm(manifold, m, x, w))
            return m, None
        if method == "closed_form":
            raise ValueError(
                f"no closed-form Fréchet mean for {manifold!r}; use method='auto' or 'karcher'"
            )
    m, iters, conv = _karcher(manifold, x, w, init, tol, max_iter, step)
    if want_info:
        return m, FrechetMeanInfo("karcher", iters, conv, _grad_norm(manifold, m, x, w))
    return m, (iters, conv)


# ---------------------------------------------------------------------------- public API
def frechet_mean(
    manifold: Manifold,
    x: torch.Tensor,
    weights: Optional[torch.Tensor] = None,
    *,
    method: str = "auto",
    init: Optional[torch.Tensor] = None,
    tol: Optional[float] = None,
    max_iter: int = 100,
    step: float = 1.0,
    return_info: bool = False,
):
    r"""Weighted Fréchet (Karcher) mean of samples on a manifold, batched and differentiable.

    Minimises ``F(m) = ½ Σ_i w_i d(m, x_i)²`` (Karcher 1977; Pennec 2006, §4): in closed form
    where one exists (Euclidean; SPD with the log-Euclidean, log-Cholesky or Euclidean metric;
    products of those, factor by factor), otherwise by the Karcher flow
    ``m ← expmap(m, step · Σ_i w_i logmap(m, x_i))`` (see the module docstring for the
    formulas, sources and the convergence conditions of Afsari 2011: on the unit sphere, data in
    a geodesic ball of radius ``< π/4``; the mean is unique for data in an open hemisphere).

    Gradients flow through the closed forms and through the unrolled Karcher iterations (and
    the initial point), so ``frechet_mean`` can be used inside a loss or a layer.

    Args:
        manifold: any :class:`manifolds.Manifold` with ``event_shape`` ``E``.
        x: ``(*batch, N, *E)`` samples: the ``N`` samples lie along the axis just before the
            event dimensions.
        weights: ``(*batch, N)`` non-negative weights (their batch shape broadcasts with that
            of ``x``), normalised to sum to 1 per batch element; ``None`` (default) gives
            uniform weights. A sample of weight 0 is ignored.
        method: ``"auto"`` (closed form when one exists, else the Karcher flow),
            ``"closed_form"`` (raise if there is none) or ``"karcher"`` (always the flow, on
            the whole manifold, products included).
        init: ``(*batch, *E)`` (broadcastable) starting point of the flow; default: the sample
            of largest weight (the first one on ties).
        tol: stop when the Riemannian norm of the update ``step · Σ w_i logmap(m, x_i)`` is
            ``≤ tol`` for **every** batch element. Checking this needs one host
            synchronisation per iteration (accepted for this iterative routine; use a fixed
            ``max_iter`` with ``tol=0`` to avoid early exit). Default: 1e-12 (float64),
            1e-5 (float32).
        max_iter: maximum number of Karcher iterations (``≥ 0``; 0 returns the initial point).
        step: step size of the flow (``> 0``); 1 is Newton-like on flat spaces.
        return_info: also return a :class:`FrechetMeanInfo`.

    Returns:
        ``(*batch, *E)`` mean, or ``(mean, info)`` with ``return_info=True``. When the flow
        does not meet ``tol`` within ``max_iter`` iterations the last iterate is returned
        (``info.converged`` is ``False``); no warning is issued.

    Raises:
        ValueError: ``x`` does not end in ``(N, *E)``; ``weights`` not of shape ``(*batch, N)``
            or not broadcastable; negative, non-finite or all-zero weights; an unknown
            ``method``; ``method="closed_form"`` on a manifold without one; ``init`` of the
            wrong shape; ``tol < 0``, ``max_iter < 0`` or ``step ≤ 0``.

    Weights are validated with a host synchronisation; the closed forms themselves never
    synchronise. Zero-weight samples whose ``logmap`` is NaN (e.g. antipodal on the sphere)
    do not affect the forward value.

    Example:
        >>> S2 = Sphere(2)
        >>> x = S2.random(5, 3, dtype=torch.float64)
        >>> m = frechet_mean(S2, x)            # (3,)
        >>> m, info = frechet_mean(S2, x, return_info=True)
        >>> info.method
        'karcher'
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if not (isinstance(max_iter, int) and max_iter >= 0):
        raise ValueError(f"max_iter must be a non-negative int, got {max_iter!r}")
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step!r}")
    x, w = _prepare(manifold, x, weights)
    if tol is None:
        tol = _DEFAULT_TOL.get(x.dtype, 1e-5)
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    m, info = _mean(manifold, x, w, method, init, tol, max_iter, step, return_info)
    return (m, info) if return_info else m


def frechet_variance(
    manifold: Manifold,
    x: torch.Tensor,
    mean: Optional[torch.Tensor] = None,
    weights: Optional[torch.Tensor] = None,
    **mean_kwargs,
) -> torch.Tensor:
    r"""Weighted Fréchet variance ``σ² = Σ_i w_i d(mean, x_i)²`` (Pennec 2006, Def. 5).

    Args:
        manifold: any :class:`manifolds.Manifold` with ``event_shape`` ``E``.
        x: ``(*batch, N, *E)`` samples.
        mean: ``(*batch, *E)`` (broadcastable) point; default: :func:`frechet_mean` of ``x``
            with the same weights (``mean_kwargs`` are passed on to it).
        weights: ``(*batch, N)`` non-negative weights, normalised inside; default uniform.

    Returns:
        ``(*batch,)`` variance in squared distance units (e.g. rad² on the sphere); 0 when all
        samples coincide with ``mean``. Differentiable with respect to ``x`` and ``mean``.

    Raises:
        ValueError: as :func:`frechet_mean` for ``x`` and ``weights``; ``mean`` of the wrong
            trailing shape.
    """
    x, w = _prepare(manifold, x, weights)
    k = _event_ndim(manifold)
    if mean is None:
        mean = frechet_mean(manifold, x, w, **mean_kwargs)
    else:
        ok, reason = manifold._check_shape(tuple(mean.shape), "mean")
        if not ok:
            raise ValueError(reason)
    d2 = manifold.dist2(mean.unsqueeze(-(k + 1)), x)
    return (w * d2).sum(-1)
