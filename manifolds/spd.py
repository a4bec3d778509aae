"""The manifold of symmetric positive definite (SPD) matrices with a choice of Riemannian metric.

:class:`SPD` is the manifold ``Sym⁺(n) = {x ∈ ℝⁿˣⁿ : x = xᵀ, x ≻ 0}`` (points ``(..., n, n)``,
tangent vectors symmetric matrices ``(..., n, n)``, intrinsic dimension ``n(n+1)/2``). The
geometry is delegated to a *metric object*, one class per Riemannian metric:

==========================================  =====  ==============================================
class                                       key    source
==========================================  =====  ==============================================
:class:`AffineInvariantMetric`              aim    Pennec, Fillard & Ayache, IJCV 2006
:class:`LogEuclideanMetric`                 lem    Arsigny, Fillard, Pennec & Ayache, SIMAX 2007
:class:`LogCholeskyMetric`                  lcm    Lin, SIMAX 2019
:class:`EuclideanMetric`                    em     flat, incomplete
:class:`BuresWassersteinMetric`             bwm    Bhatia, Jain & Lim 2019; Malagò et al. 2018
:class:`GeneralizedBuresWassersteinMetric`  —      Han, Mishra, Jawanpuria & Gao, arXiv 2110.10464
==========================================  =====  ==============================================

Families (one mechanism, :class:`SPDMetric`): every metric takes a power deformation ``theta``
(the pullback by ``x ↦ x^θ`` scaled by ``1/θ²``: power-affine, power-Euclidean, θ-LCM, θ-BWM,
θ-GBWM; Thanwerdas & Pennec, GSI 2019; Chen et al., ICLR 2024, Table 1), and AIM, LEM and EM
take the O(n)-invariant inner product ``α tr(AB) + β tr A tr B`` of their flat / whitened
coordinates (``alpha``, ``beta``), e.g. ``SPD(3, AffineInvariantMetric(theta=0.5, alpha=1,
beta=0.1))`` for (θ, α, β)-AIM as in LieBN.

Overview of the closed forms: Thanwerdas & Pennec, "O(n)-invariant Riemannian metrics on
SPD matrices", Linear Algebra Appl. 2023 (arXiv 2109.05768), and refs/core.md §4.

Numerics (refs/core.md §7): matrix functions go through :mod:`manifolds._linalg` (Daleckii–Krein
backward, finite at repeated eigenvalues, including the identity); congruences by ``x^{±½}`` are
replaced by Cholesky whitening ``L⁻¹ · L⁻ᵀ`` wherever the formula is invariant under the choice
of square root factor (AIM, BWM). Nothing in the metric methods branches in Python on tensor
values or synchronises with the device; the checks (``check_point``, ``check_vector``) do.
"""

from __future__ import annotations

import abc
import math
from typing import Hashable, Optional, Union

import torch

from ._linalg import (
    _chol,
    _spd_floor,
    aim_dist,
    spd_generalized_eigvalsh,
    sym,
    sym_expm,
    sym_logm,
    sym_powm,
    sym_expm_frechet,
    sym_logm_frechet,
    sym_logm_frechet_inv,
    sym_lyapunov,
    sym_powm_frechet,
    sym_powm_frechet_inv,
    sym_sqrtm,
)
from ._bures import bw_parallel_transport, bw_transp_follow_expmap
from ._numerics import check_tol, safe_sqrt
from .base import Manifold
from .gyro import AIMGyro, LCMGyro, LEMGyro

__all__ = [
    "SPD",
    "SPDMetric",
    "AffineInvariantMetric",
    "LogEuclideanMetric",
    "LogCholeskyMetric",
    "EuclideanMetric",
    "BuresWassersteinMetric",
    "GeneralizedBuresWassersteinMetric",
]


# ---------------------------------------------------------------------------- helpers
def _whiten(chol: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``L⁻¹ u L⁻ᵀ`` (symmetrised) for a lower-triangular ``L``: two triangular solves."""
    a = torch.linalg.solve_triangular(chol, u, upper=False)
    return sym(torch.linalg.solve_triangular(chol, a.mT, upper=False))


def _color(chol: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``L m Lᵀ`` (symmetrised)."""
    return sym(chol @ m @ chol.mT)


def _frob(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Frobenius inner product ``tr(uᵀ v)`` over the last two dims, shape ``(...)``."""
    return (u * v).sum((-2, -1))


def _eye_like(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[-1]
    return torch.eye(n, dtype=x.dtype, device=x.device).expand(x.shape)


def _diag(x: torch.Tensor) -> torch.Tensor:
    """Diagonal vector ``(..., n)`` of ``(..., n, n)``."""
    return torch.diagonal(x, dim1=-2, dim2=-1)


def _sym_vec(a: torch.Tensor) -> torch.Tensor:
    """Upper triangle of symmetric ``(..., n, n)`` with off-diagonal entries times √2, ``(..., n(n+1)/2)``:
    ``|_sym_vec(a)| = |a|_F``."""
    n = a.shape[-1]
    i, j = torch.triu_indices(n, n, device=a.device)
    w = torch.where(i == j, torch.ones((), dtype=a.dtype), torch.full((), math.sqrt(2.0), dtype=a.dtype)).to(a.device)
    return a[..., i, j] * w


def _strict_lower(x: torch.Tensor) -> torch.Tensor:
    """Strictly lower triangular part ``⌊x⌋``."""
    return torch.tril(x, diagonal=-1)


# ---------------------------------------------------------------------------- power map
def _dpow(x: torch.Tensor, e: torch.Tensor, theta: float) -> torch.Tensor:
    """Fréchet derivative ``D pow_θ(x)[e] = D(x^θ)[e]`` of the matrix power, shape of ``e``.

    ``x: (..., n, n)`` SPD, ``e`` symmetric, broadcastable with ``x`` (it may have extra leading
    dimensions: one ``eigh`` per ``x`` matrix). Daleckii–Krein ``U (P ∘ Uᵀ e U) Uᵀ``,
    ``P_ij = (λ_i^θ − λ_j^θ)/(λ_i − λ_j)`` (``θ λ_i^{θ−1}`` on ties) through
    :func:`manifolds._linalg.sym_powm_frechet`, whose backward (second divided differences)
    is finite at repeated eigenvalues, e.g. ``x = I``, for every ``n``. ``D pow_θ(x)`` is
    self-adjoint for the Frobenius inner product.

    This function and :func:`_dpow_inv` are the only places that differentiate the power map.
    """
    return sym_powm_frechet(x, e, theta)


def _dpow_inv(x: torch.Tensor, f: torch.Tensor, theta: float) -> torch.Tensor:
    """Inverse ``(D pow_θ(x))⁻¹(f) = U ((Uᵀ f U) / P) Uᵀ`` of :func:`_dpow` (same shapes and
    numerics; ``P_ij ≠ 0`` since ``λ ↦ λ^θ`` is strictly monotone for ``θ ≠ 0``), through
    :func:`manifolds._linalg.sym_powm_frechet_inv`.
    """
    return sym_powm_frechet_inv(x, f, theta)


class _PowerMap:
    """The deformation ``φ_θ(x) = x^θ`` with its differential; pullback scale ``1/θ²``."""

    def __init__(self, theta: float):
        self.theta = theta
        self.scale = 1.0 / (theta * theta)
        self.dist_scale = 1.0 / abs(theta)

    def fwd(self, x):
        return sym_powm(x, self.theta)

    def inv(self, y):
        return sym_powm(y, 1.0 / self.theta)

    def d(self, x, e):
        return _dpow(x, e, self.theta)

    def d_inv(self, x, f):
        return _dpow_inv(x, f, self.theta)

    def d_adj_inv(self, x, g):
        return _dpow_inv(x, g, self.theta)  # D pow_θ(x) is Frobenius self-adjoint


class _CongruenceMap:
    """The linear map ``x ↦ K⁻¹ x K⁻ᵀ`` with ``m = K Kᵀ`` (Cholesky); pullback scale 1.

    For an O(n)-invariant base metric this is the same pullback as ``x ↦ m^{-½} x m^{-½}``
    (``K⁻¹ = Q m^{-½}`` with ``Q`` orthogonal). ``m`` is read at every call (it may be a
    trained parameter) and cast to the dtype and device of the points.
    """

    scale = 1.0
    dist_scale = 1.0

    def __init__(self, m: torch.Tensor):
        self.m = m

    def _k(self, x):
        return _chol(self.m.to(dtype=x.dtype, device=x.device))

    def fwd(self, x):
        return _whiten(self._k(x), x)

    def inv(self, y):
        return _color(self._k(y), y)

    def d(self, x, e):
        return _whiten(self._k(x), e)

    def d_inv(self, x, f):
        return _color(self._k(x), f)

    def d_adj_inv(self, x, g):
        k = self._k(x)
        return sym(k.mT @ g @ k)  # (C*)⁻¹ with C(u) = K⁻¹ u K⁻ᵀ, C*(v) = K⁻ᵀ v K⁻¹


# ---------------------------------------------------------------------------- parameter checks
def _real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a real Python number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _check_theta(theta) -> float:
    theta = _real("theta (power deformation)", theta)
    if theta == 0.0:
        raise ValueError("theta (power deformation) must be nonzero (theta -> 0 is the log-Euclidean limit), got 0")
    return theta


def _check_alpha_beta(alpha, beta):
    alpha = _real("alpha", alpha)
    beta = _real("beta", beta)
    if alpha <= 0.0:
        raise ValueError(f"alpha must be > 0 for the (alpha, beta) inner product to be positive definite, got {alpha!r}")
    # β > −α/n for the given n is checked by SPD(n, metric); β > −α is necessary for every n ≥ 1.
    if beta <= -alpha:
        raise ValueError(f"beta must be > -alpha/n (here -alpha = {-alpha!r} already violated), got beta = {beta!r}")
    return alpha, beta


# ---------------------------------------------------------------------------- metric base
class SPDMetric(abc.ABC):
    r"""A Riemannian metric on SPD matrices: the verbs :class:`SPD` delegates to.

    Every method takes points ``x, y: (..., n, n)`` SPD and tangent vectors ``u, v, g:
    (..., n, n)`` symmetric (batch dimensions broadcast) and returns ``(...)`` scalars
    (:meth:`inner`, :meth:`dist`) or ``(..., n, n)`` matrices. Inputs are not validated
    (no host sync); invalid points give NaN, never an exception.

    **Deformations (one mechanism for every metric).** A subclass writes the formulas of its
    base metric ``g`` (private ``_inner``, ``_dist``, ``_expmap``, ``_logmap``, ``_transp``,
    ``_egrad2rgrad``); the public verbs wrap them in

    1. the O(n)-invariant ``(α, β)`` inner product, for metrics that have flat / whitened
       coordinates ``C_x`` (AIM, LEM, EM): ``g^{α,β}_x(u, v) = α <C_x u, C_x v>_F + β tr(C_x u)
       tr(C_x v)`` (Thanwerdas & Pennec, LAA 2023, §3–4; Chen et al., ICLR 2024, Table 1;
       refs/batchnorm.md §1.2). Exp, log and parallel transport are those of ``g`` (the
       Levi-Civita connection does not depend on ``(α, β)``); with ``ψ`` the potential of the
       trace form (``log det`` for AIM/LEM, ``tr`` for EM) and ``Δ`` the flat difference,
       ``dist² = α ‖Δ‖² + β (tr Δ)²``; ``egrad2rgrad`` inverts the operator by
       Sherman–Morrison: ``G' = (G − β/(α + nβ) · tr(C_x G) · r_x)/α`` with ``G`` the
       gradient of ``g`` and ``r_x = C_x⁻¹(I)`` (``x`` for AIM/LEM, ``I`` for EM).
       ``α > 0`` and ``β > −α/n`` (positive definiteness).
    2. pullbacks by diffeomorphisms ``φ`` with a scale ``s`` (the metric ``s φ*g``): the power
       deformation ``φ_θ(x) = x^θ``, ``s = 1/θ²`` (Thanwerdas & Pennec, "Is affine-invariance
       well defined on SPD matrices? A principled continuum of metrics", GSI 2019; LAA 2023;
       Chen et al., "A Lie group approach to Riemannian batch normalization", ICLR 2024,
       Table 1), and for :class:`GeneralizedBuresWassersteinMetric` the congruence by
       ``m^{-½}`` (``s = 1``). For each map::

           inner(x, u, v)    = s · g_{φx}(Dφ_x u, Dφ_x v)
           dist(x, y)        = √s · d(φx, φy)
           expmap(x, u)      = φ⁻¹(exp_{φx}(Dφ_x u))
           logmap(x, y)      = (Dφ_x)⁻¹ log_{φx}(φy)
           transp(x, y, v)   = (Dφ_y)⁻¹ transp_{φx→φy}(Dφ_x v)
           egrad2rgrad(x, g) = (1/s) (Dφ_x)⁻¹ rgrad_{φx}((Dφ_x)^{-*} g)

       (the last from ``inner(x, G, v) = <g, v>_F`` for all ``v``; ``D pow_θ(x)`` is Frobenius
       self-adjoint, so ``(Dφ)^{-*} = (Dφ)⁻¹`` there). ``θ = 1`` adds no map and no work.

    ``D(x^θ)`` is computed by :func:`_dpow` / :func:`_dpow_inv` (Daleckii–Krein in the
    eigenbasis with a second-order Daleckii–Krein backward: gradients finite at repeated
    eigenvalues, including the identity, for every ``n``).

    Attributes:
        theta: the power deformation (1: none).
        alpha, beta: the ``(α, β)`` inner product (1, 0: the plain metric).
    """

    #: short name used by ``SPD(n, metric=...)``
    key: str = ""
    #: whether the class has flat / whitened coordinates, hence an (α, β) family
    _has_alpha_beta: bool = False
    #: the gyro-structure of the base metric (a class of :mod:`manifolds.gyro`), or None
    _gyro = None

    def __init__(self, *, theta: float = 1.0, alpha: float = 1.0, beta: float = 0.0):
        self.theta = _check_theta(theta)
        if (alpha, beta) != (1.0, 0.0) and not self._has_alpha_beta:
            raise ValueError(f"{type(self).__name__} has no (alpha, beta) family")
        self.alpha, self.beta = _check_alpha_beta(alpha, beta)
        maps = [] if self.theta == 1.0 else [_PowerMap(self.theta)]
        self._maps = tuple(maps) + self._base_maps()

    def _base_maps(self) -> tuple:
        """Pullback maps that are part of the base metric itself (inner-most last)."""
        return ()

    @property
    def _plain_ab(self) -> bool:
        return self.alpha == 1.0 and self.beta == 0.0

    def _check_n(self, n: int) -> None:
        """Validate the parameters against the matrix size (called by :class:`SPD`)."""
        if not self.beta > -self.alpha / n:
            raise ValueError(
                f"{self!r}: beta must be > -alpha/n = {-self.alpha / n!r} for n = {n} "
                f"(positive definiteness of alpha tr(AB) + beta tr(A) tr(B)), got beta = {self.beta!r}"
            )

    # ------------------------------------------------------------------ base formulas (subclasses)
    @abc.abstractmethod
    def _inner(self, x, u, v):
        """Base metric ``g_x(u, v)`` (``v=None``: ``g_x(u, u)``)."""

    @abc.abstractmethod
    def _dist(self, x, y):
        """Base geodesic distance."""

    @abc.abstractmethod
    def _expmap(self, x, u):
        """Base Riemannian exponential."""

    @abc.abstractmethod
    def _logmap(self, x, y):
        """Base Riemannian logarithm."""

    @abc.abstractmethod
    def _transp(self, x, y, v):
        """Base parallel transport from ``x`` to ``y``."""

    @abc.abstractmethod
    def _egrad2rgrad(self, x, g):
        """Base Riemannian gradient of the Euclidean gradient ``g``."""

    def _expmap_transp(self, x, u, v):
        y = self._expmap(x, u)
        return y, self._transp(x, y, v)

    # (α, β) hooks: flat / whitened coordinates C_x
    def _trace_form(self, x, u):
        """``tr(C_x u)``, shape ``(...)``."""
        raise NotImplementedError

    def _trace_dual(self, x):
        """``r_x = C_x⁻¹(I)``, the ``g``-gradient of the trace form, ``(..., n, n)``."""
        raise NotImplementedError

    def _dist_terms(self, x, y):
        """``(‖Δ‖², tr Δ)`` of the flat difference ``Δ`` between ``x`` and ``y``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ (α, β) layer
    def _ab_inner(self, x, u, v):
        r = self._inner(x, u, v)
        if self._plain_ab:
            return r
        tu = self._trace_form(x, u)
        tv = tu if v is None else self._trace_form(x, v)
        return self.alpha * r + self.beta * tu * tv

    def _ab_dist(self, x, y):
        if self._plain_ab:
            return self._dist(x, y)
        sq, tr = self._dist_terms(x, y)
        return safe_sqrt(torch.clamp(self.alpha * sq + self.beta * tr * tr, min=0.0))

    def _ab_egrad2rgrad(self, x, g):
        r = self._egrad2rgrad(x, g)
        if self._plain_ab:
            return r
        n = x.shape[-1]
        c = (self.beta / (self.alpha + n * self.beta)) * self._trace_form(x, r)
        return (r - c[..., None, None] * self._trace_dual(x)) / self.alpha

    # ------------------------------------------------------------------ pullback layers
    def _inner_at(self, k, x, u, v):
        if k == len(self._maps):
            return self._ab_inner(x, u, v)
        f = self._maps[k]
        if v is None:
            a, b = f.d(x, u), None
        else:
            a, b = f.d(x, torch.stack(torch.broadcast_tensors(u, v))).unbind(0)
        return f.scale * self._inner_at(k + 1, f.fwd(x), a, b)

    def _dist_at(self, k, x, y):
        if k == len(self._maps):
            return self._ab_dist(x, y)
        f = self._maps[k]
        return f.dist_scale * self._dist_at(k + 1, f.fwd(x), f.fwd(y))

    def _expmap_at(self, k, x, u):
        if k == len(self._maps):
            return self._expmap(x, u)
        f = self._maps[k]
        return f.inv(self._expmap_at(k + 1, f.fwd(x), f.d(x, u)))

    def _logmap_at(self, k, x, y):
        if k == len(self._maps):
            return self._logmap(x, y)
        f = self._maps[k]
        return f.d_inv(x, self._logmap_at(k + 1, f.fwd(x), f.fwd(y)))

    def _transp_at(self, k, x, y, v):
        if k == len(self._maps):
            return self._transp(x, y, v)
        f = self._maps[k]
        return f.d_inv(y, self._transp_at(k + 1, f.fwd(x), f.fwd(y), f.d(x, v)))

    def _expmap_transp_at(self, k, x, u, v):
        if k == len(self._maps):
            return self._expmap_transp(x, u, v)
        f = self._maps[k]
        a, b = f.d(x, torch.stack(torch.broadcast_tensors(u, v))).unbind(0)
        fy, tb = self._expmap_transp_at(k + 1, f.fwd(x), a, b)
        y = f.inv(fy)
        return y, f.d_inv(y, tb)

    def _egrad2rgrad_at(self, k, x, g):
        if k == len(self._maps):
            return self._ab_egrad2rgrad(x, g)
        f = self._maps[k]
        r = self._egrad2rgrad_at(k + 1, f.fwd(x), f.d_adj_inv(x, g))
        return f.d_inv(x, r) / f.scale

    # ------------------------------------------------------------------ public verbs
    def inner(self, x, u, v=None):
        """``<u, v>_x`` (``v=None``: ``<u, u>_x``), shape ``(...)``."""
        return self._inner_at(0, x, u, v)

    def dist(self, x, y):
        """Geodesic distance, shape ``(...)``."""
        return self._dist_at(0, x, y)

    def expmap(self, x, u):
        """Riemannian exponential ``(..., n, n)``."""
        return self._expmap_at(0, x, u)

    def logmap(self, x, y):
        """Riemannian logarithm ``(..., n, n)`` (symmetric)."""
        return self._logmap_at(0, x, y)

    def transp(self, x, y, v):
        """Parallel transport of ``v`` from ``x`` to ``y`` along the geodesic, ``(..., n, n)``."""
        return self._transp_at(0, x, y, v)

    def egrad2rgrad(self, x, g):
        """Riemannian gradient from the Euclidean gradient ``g`` (any square matrix), ``(..., n, n)``."""
        return self._egrad2rgrad_at(0, x, sym(g))

    def transp_follow_expmap(self, x, u, v):
        """Parallel transport of ``v`` along ``t -> expmap(x, t u)``."""
        return self.expmap_transp(x, u, v)[1]

    def expmap_transp(self, x, u, v):
        """``(expmap(x, u), transp_follow_expmap(x, u, v))``."""
        return self._expmap_transp_at(0, x, u, v)

    # ------------------------------------------------------------------ pulled-back point maps
    def _pull(self, fn, *points):
        """``φ⁻¹(fn(φ(p_1), ..., φ(p_k)))`` through every pullback map ``φ`` of the metric."""
        for f in self._maps:
            points = tuple(f.fwd(p) for p in points)
        r = fn(*points)
        for f in reversed(self._maps):
            r = f.inv(r)
        return r

    # ------------------------------------------------------------------ Fréchet mean
    def _closed_form_mean(self, x, w):
        """Base metric's closed-form weighted mean of ``x: (..., N, n, n)`` with weights
        ``w: (..., N)`` (normalised), or ``None`` when there is none (the default)."""
        return None

    def frechet_mean_closed_form(self, x, w):
        """Closed-form weighted Fréchet mean, or ``None`` when the metric has none.

        The base metric's closed form (log-Euclidean, log-Cholesky, Euclidean) pulled back
        through the deformation maps: a pullback ``s φ*g`` makes ``φ`` an isometry up to the
        constant ``s``, so the Fréchet function's minimiser is ``φ⁻¹(mean_g(φ(x_i)))`` (e.g.
        power-Euclidean: ``(Σ w_i x_i^θ)^{1/θ}``). The ``(α, β)`` inner products do not move the
        mean (the Fréchet function of a flat metric is a positive definite quadratic form of
        the flat coordinates, minimised by their weighted average).

        Args:
            x: ``(..., N, n, n)`` SPD samples.
            w: ``(..., N)`` non-negative weights summing to 1.

        Returns:
            ``(..., n, n)`` mean, or ``None``.
        """
        if type(self)._closed_form_mean is SPDMetric._closed_form_mean:
            return None
        return self._pull(lambda y: self._closed_form_mean(y, w), x)

    # ------------------------------------------------------------------ flat coordinates
    #: whether the base metric is flat with explicit coordinates (LEM, EM, LCM and their deformations)
    is_flat: bool = False

    def _flat_point(self, x):
        """Symmetric matrix ``L_x`` with ``dist² = α‖L_y − L_x‖² + β tr(L_y − L_x)²`` (LEM: ``log x``, EM: ``x``)."""
        raise NotImplementedError(f"{type(self).__name__} is not flat")

    def _flat_vector(self, x):
        """Base-metric coordinates ``(..., F)`` in which the distance is Euclidean.

        ``α‖Δ‖² + β(tr Δ)² = α‖Δ₀‖² + (α/n + β)(tr Δ)²`` with ``Δ₀`` the trace-free part, so
        the coordinates are ``(√α vec(L₀), √(α/n + β) tr L)`` (``vec`` with √2 off-diagonals).
        """
        lx = self._flat_point(x)
        if self._plain_ab:
            return _sym_vec(lx)
        n = lx.shape[-1]
        tr = _diag(lx).sum(-1)
        l0 = lx - (tr / n)[..., None, None] * _eye_like(lx)
        return torch.cat([math.sqrt(self.alpha) * _sym_vec(l0), math.sqrt(self.alpha / n + self.beta) * tr[..., None]], -1)

    def flat_dim(self, n: int) -> int:
        """Length of :meth:`flat_coordinates` for ``n × n`` matrices."""
        return n * (n + 1) // 2 + (0 if self._plain_ab else 1)

    def flat_coordinates(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinates ``f(x)`` with ``dist(x, y) = |f(x) − f(y)|`` (flat metrics only).

        The base metric's flat coordinates (log-Euclidean: ``vec(log x)``; Euclidean: ``vec(x)``;
        log-Cholesky: strict lower part and log-diagonal of the Cholesky factor, Lin, SIAM
        J. Matrix Anal. Appl. 2019, eq. (4)) taken after every pullback map and scaled by
        its ``√s``; with the ``(α, β)`` inner product folded in (:meth:`_flat_vector`). Used
        by :mod:`kernels` (a per-point map, then Euclidean pairwise formulas).

        Args:
            x: ``(..., n, n)`` SPD.

        Returns:
            ``(..., F)`` with ``F = flat_dim(n)``.

        Raises:
            NotImplementedError: the metric is not flat (AIM, BWM, GBWM).
        """
        if not self.is_flat:
            raise NotImplementedError(f"{self!r} is not flat: no flat coordinates")
        s = 1.0
        for f in self._maps:
            x, s = f.fwd(x), s * f.dist_scale
        return s * self._flat_vector(x)

    # ------------------------------------------------------------------ gyro-structure
    def _require_gyro(self):
        if self._gyro is None:
            raise NotImplementedError(
                f"{self!r} has no gyro-structure in this library (available: the affine-invariant, "
                "log-Euclidean and log-Cholesky metrics and their θ-deformations; see manifolds.gyro)"
            )
        return self._gyro

    def gyro_add(self, a, b):
        """``a ⊕ b`` of the metric's gyro-structure (pulled back by the θ deformation)."""
        g = self._require_gyro()
        return self._pull(g.gyro_add, a, b)

    def gyro_inv(self, a):
        """``⊖a``."""
        g = self._require_gyro()
        return self._pull(g.gyro_inv, a)

    def gyration(self, a, b, c):
        """``gyr[a, b] c``."""
        g = self._require_gyro()
        return self._pull(g.gyration, a, b, c)

    def gyro_scalar_mul(self, t, a):
        """``t ⊗ a`` (``t`` a scalar or a ``(...)`` batch tensor)."""
        g = self._require_gyro()
        return self._pull(lambda p: g.gyro_scalar_mul(t, p), a)

    def gyro_identity(self, like):
        """The identity element ``e`` (``I``), broadcast to the shape of ``like``."""
        g = self._require_gyro()
        r = g.gyro_identity(like)
        for f in reversed(self._maps):
            r = f.inv(r)
        return r

    # ------------------------------------------------------------------ identity
    def _params(self) -> dict:
        """The parameters, in ``__repr__`` order (hashable values)."""
        p = {"theta": self.theta}
        if self._has_alpha_beta:
            p.update(alpha=self.alpha, beta=self.beta)
        return p

    def _key(self) -> Hashable:
        """Hashable data identifying the metric (class name plus parameters)."""
        return (type(self).__name__,) + tuple(self._params().items())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return isinstance(other, SPDMetric) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _wmean(w, a):
    """``Σ_i w_i a_i`` of ``a: (..., N, n, n)`` with ``w: (..., N)``, shape ``(..., n, n)``."""
    return (w[..., None, None] * a).sum(-3)


def _tr_xinv(x, u):
    """``tr(x⁻¹ u) = tr(L⁻¹ u L⁻ᵀ)``, shape ``(...)``."""
    return _diag(_whiten(_chol(x), u)).sum(-1)


# ---------------------------------------------------------------------------- AIM
class AffineInvariantMetric(SPDMetric):
    r"""Affine-invariant metric (AIM), ``<u, v>_x = tr(x⁻¹ u x⁻¹ v)``, and its (θ, α, β) family.

    Pennec, Fillard & Ayache, "A Riemannian framework for tensor computing", IJCV 66 (2006),
    Eqs. 3.2 (metric), 3.4 (exp), 3.5 (log), 3.6 (distance); parallel transport: Sra &
    Hosseini, "Conic geometric optimization on the manifold of positive definite matrices",
    SIAM J. Optim. 2015, Eq. 3.4 (``Γ(v) = E v Eᵀ``, ``E = (y x⁻¹)^{½}``); Thanwerdas &
    Pennec, LAA 2023, Table (refs/core.md §4). Complete, Hadamard (curvature ≤ 0).

    * ``expmap(x, u) = x^{½} expm(x^{-½} u x^{-½}) x^{½}``
    * ``logmap(x, y) = x^{½} logm(x^{-½} y x^{-½}) x^{½}``
    * ``dist(x, y) = ‖log λ(x⁻¹ y)‖₂`` (:func:`manifolds._linalg.aim_dist`, Cholesky + ``eigvalsh``)
    * ``transp(x, y, v) = E v Eᵀ``, ``E = (y x⁻¹)^{½} = x^{½}(x^{-½} y x^{-½})^{½} x^{-½}``
    * ``egrad2rgrad(x, g) = x sym(g) x``

    **(α, β)-AIM** (Thanwerdas & Pennec, LAA 2023, §4; Chen et al., ICLR 2024, Table 1):
    ``g_x(u, v) = α tr(x⁻¹u x⁻¹v) + β tr(x⁻¹u) tr(x⁻¹v)``; same exp / log / transport,
    ``dist² = α ‖log λ‖² + β (Σ log λ)²`` (``λ`` the eigenvalues of ``x⁻¹ y``),
    ``egrad2rgrad(x, g) = (x g x − β/(α + nβ) tr(x g) x)/α``.
    **Power-affine / (θ, α, β)-AIM**: the pullback by ``x ↦ x^θ`` scaled by ``1/θ²``
    (Thanwerdas & Pennec, GSI 2019; see :class:`SPDMetric`); ``dist = d^{α,β}(x^θ, y^θ)/|θ|``,
    ``θ = 1`` is AIM and ``θ → 0`` tends to the (α, β)-log-Euclidean metric.

    Every congruence by ``x^{±½}`` is computed with the Cholesky factor ``x = L Lᵀ``
    instead (the formulas are invariant under ``x^{½} -> L Q``, ``Q`` orthogonal; e.g.
    ``E = L (L⁻¹ y L⁻ᵀ)^{½} L⁻¹``), so only the inner ``expm`` / ``logm`` / ``sqrtm`` need an
    eigendecomposition, with a Daleckii–Krein backward: gradients are finite at ``x = I``
    and at repeated eigenvalues.

    Args:
        theta: power deformation, a nonzero real (default 1: none).
        alpha: ``α > 0`` (default 1).
        beta: ``β > −α/n`` (default 0; checked against ``n`` by :class:`SPD`).

    Raises:
        ValueError: ``theta = 0``, ``alpha ≤ 0``, ``beta ≤ −alpha``, or a non-finite / non-real
            parameter.
    """

    key = "aim"
    _has_alpha_beta = True
    _gyro = AIMGyro

    def __init__(self, *, theta: float = 1.0, alpha: float = 1.0, beta: float = 0.0):
        super().__init__(theta=theta, alpha=alpha, beta=beta)

    def _inner(self, x, u, v):
        c = _chol(x)
        a = _whiten(c, u)
        b = a if v is None else _whiten(c, v)
        return _frob(a, b)

    def _dist(self, x, y):
        return aim_dist(x, y)

    def _expmap(self, x, u):
        c = _chol(x)
        return _color(c, sym_expm(_whiten(c, u)))

    def _logmap(self, x, y):
        c = _chol(x)
        return _color(c, sym_logm(_whiten(c, y)))

    def _transp(self, x, y, v):
        c = _chol(x)
        s = sym_sqrtm(_whiten(c, y))
        return _color(c, sym(s @ _whiten(c, v) @ s))

    def _expmap_transp(self, x, u, v):
        c = _chol(x)
        e = sym_expm(0.5 * _whiten(c, u))  # (x^{-½}-whitened y)^{½}
        y = _color(c, sym(e @ e))
        return y, _color(c, sym(e @ _whiten(c, v) @ e))

    def _egrad2rgrad(self, x, g):
        return sym(x @ sym(g) @ x)

    def _trace_form(self, x, u):
        return _tr_xinv(x, u)

    def _trace_dual(self, x):
        return x

    def _dist_terms(self, x, y):
        lam = spd_generalized_eigvalsh(x, y)
        log_lam = torch.log(torch.maximum(lam, _spd_floor(lam)))
        return (log_lam * log_lam).sum(-1), log_lam.sum(-1)


# ---------------------------------------------------------------------------- LEM
class LogEuclideanMetric(SPDMetric):
    r"""Log-Euclidean metric (LEM): the pullback of the Frobenius metric by ``logm``.

    Arsigny, Fillard, Pennec & Ayache, "Geometric means in a novel vector space structure on
    symmetric positive-definite matrices", SIAM J. Matrix Anal. Appl. 29 (2007), §3; Thanwerdas
    & Pennec, LAA 2023 (refs/core.md §4). Flat and complete.

    With ``D log_x(u) = U (L ∘ Uᵀ u U) Uᵀ`` (Daleckii–Krein; ``x = U diag(λ) Uᵀ``,
    ``L_ij = (log λ_i − log λ_j)/(λ_i − λ_j)``, ``1/λ_i`` on ties):

    * ``<u, v>_x = <D log_x(u), D log_x(v)>_F``
    * ``expmap(x, u) = expm(logm x + D log_x(u))``
    * ``logmap(x, y) = D exp_{log x}(log y − log x)``
    * ``dist(x, y) = ‖log x − log y‖_F``
    * ``transp(x, y, v) = D exp_{log y}(D log_x(v))`` (transport in the flat log-domain)
    * ``egrad2rgrad(x, g) = (D log_x)⁻² sym(g) = D exp_{log x}(D exp_{log x}(sym g))``: the
      metric operator is ``D log_x* D log_x = (D log_x)²`` (``D log_x`` is Frobenius
      self-adjoint), ``<G, v>_x = <g, v>_F`` for all ``v`` gives ``G = (D log_x)⁻² sym(g)``, and
      ``(D log_x)⁻¹ = D exp_{log x}``. In the eigenbasis: ``U ((Uᵀ sym(g) U) / L²) Uᵀ``.

    **(α, β)-LEM** (Chen et al., ICLR 2024, Table 1): ``<A, B>^{α,β} = α tr(AB) + β tr A tr B``
    on ``A = D log_x(u)``; same exp / log / transport, ``dist² = α ‖log x − log y‖_F² +
    β (log det x − log det y)²`` (``tr D log_x(u) = tr(x⁻¹ u)``). A power deformation ``θ``
    leaves LEM unchanged (``log x^θ = θ log x``, and the ``1/θ²`` scale cancels it); it is
    accepted for uniformity and computed through the pullback (so it costs extra work).

    ``D log_x``, ``(D log_x)⁻¹ = D exp_{log x}`` and ``D exp_a`` are Daleckii–Krein products
    in one eigenbasis (:func:`manifolds._linalg.sym_logm_frechet`, ``sym_logm_frechet_inv``,
    ``sym_expm_frechet``: ``O(n³)``), whose backward uses second divided differences: all
    gradients are finite at repeated eigenvalues (e.g. ``x = I``) for every ``n``.

    Args / Raises: as :class:`AffineInvariantMetric`.
    """

    key = "lem"
    _has_alpha_beta = True
    _gyro = LEMGyro

    def _closed_form_mean(self, x, w):
        # Arsigny, Fillard, Pennec & Ayache, SIMAX 29 (2007), Thm 3.13
        return sym_expm(_wmean(w, sym_logm(x)))

    def __init__(self, *, theta: float = 1.0, alpha: float = 1.0, beta: float = 0.0):
        super().__init__(theta=theta, alpha=alpha, beta=beta)

    @staticmethod
    def dlog(x, u):
        """``D log_x(u)``, shape ``(..., n, n)`` (``x`` SPD, ``u`` symmetric; Daleckii–Krein,
        :func:`manifolds._linalg.sym_logm_frechet`, gradients finite at repeated eigenvalues)."""
        return sym_logm_frechet(x, u)

    def _inner(self, x, u, v):
        if v is None:
            a = self.dlog(x, u)
            return _frob(a, a)
        a, b = self.dlog(x, torch.stack(torch.broadcast_tensors(u, v))).unbind(0)
        return _frob(a, b)

    def _dist(self, x, y):
        return torch.linalg.matrix_norm(sym_logm(x) - sym_logm(y))

    def _expmap(self, x, u):
        return sym_expm(sym_logm(x) + self.dlog(x, u))

    def _logmap(self, x, y):
        # D exp_{log x} = (D log_x)⁻¹
        return sym_logm_frechet_inv(x, sym_logm(y) - sym_logm(x))

    def _transp(self, x, y, v):
        return sym_logm_frechet_inv(y, self.dlog(x, v))

    def _expmap_transp(self, x, u, v):
        a = sym_logm(x) + self.dlog(x, u)
        return sym_expm(a), sym_expm_frechet(a, self.dlog(x, v))

    def _egrad2rgrad(self, x, g):
        return sym_logm_frechet_inv(x, sym_logm_frechet_inv(x, sym(g)))

    def _trace_form(self, x, u):
        return _tr_xinv(x, u)

    def _trace_dual(self, x):
        return x  # D exp_{log x}(I) = x

    def _dist_terms(self, x, y):
        d = sym_logm(y) - sym_logm(x)
        return _frob(d, d), _diag(d).sum(-1)

    is_flat = True

    def _flat_point(self, x):
        return sym_logm(x)


# ---------------------------------------------------------------------------- LCM
class LogCholeskyMetric(SPDMetric):
    r"""Log-Cholesky metric (LCM), the pullback of a flat metric through the Cholesky factor.

    Lin, "Riemannian geometry of symmetric positive definite matrices via Cholesky
    decomposition", SIAM J. Matrix Anal. Appl. 40 (2019). With ``x = L Lᵀ``, ``y = K Kᵀ``
    (lower Cholesky factors), ``⌊·⌋`` the strictly lower part and ``D(·)`` the diagonal:

    * tangent map (Lin Prop. 4): ``u ↦ X = L (L⁻¹ u L⁻ᵀ)_½``, ``(m)_½ = ⌊m⌋ + ½ D(m)``;
      inverse ``X ↦ u = L Xᵀ + X Lᵀ``.
    * metric on factors (Lin Eq. 4): ``g_L(X, Y) = <⌊X⌋, ⌊Y⌋>_F + <D(L)⁻¹ D(X), D(L)⁻¹ D(Y)>_F``.
    * ``dist(x, y)² = ‖⌊L⌋ − ⌊K⌋‖_F² + ‖log D(L) − log D(K)‖_F²`` (Lin Prop. 5 / Thm. 6).
    * ``exp`` on factors (Prop. 3): ``K = ⌊L⌋ + ⌊X⌋ + D(L) exp(D(X) D(L)⁻¹)``, ``y = K Kᵀ``.
    * ``log`` on factors: ``X = ⌊K⌋ − ⌊L⌋ + D(L) log(D(L)⁻¹ D(K))``, ``u = L Xᵀ + X Lᵀ``.
    * transport on factors (Prop. 3): ``X ↦ ⌊X⌋ + D(K) D(L)⁻¹ D(X)``.
    * ``egrad2rgrad(x, g) = L Zᵀ + Z Lᵀ``, ``Z = ⌊W⌋ + D(L)² D(W)``, ``W = tril(2 sym(g) L)``
      (``tril(2 S L)`` is the adjoint of ``X ↦ L Xᵀ + X Lᵀ``; ``D(L)²`` inverts the factor metric).

    **θ-LCM** (Chen et al., ICLR 2024, Table 1): the pullback by ``x ↦ x^θ`` scaled by
    ``1/θ²`` (see :class:`SPDMetric`), ``dist = d_LCM(x^θ, y^θ)/|θ|``; still flat and complete.

    Not O(n)-invariant, so no (α, β) family; flat and complete. Everything is Cholesky +
    elementwise ops, so all gradients are finite at repeated eigenvalues (the θ-deformation
    adds the matrix power, see :class:`SPDMetric`).

    Args:
        theta: power deformation, a nonzero real (default 1: none).

    Raises:
        ValueError: ``theta = 0`` or not a finite real number.
    """

    key = "lcm"
    _gyro = LCMGyro

    def _closed_form_mean(self, x, w):
        # Lin, SIMAX 40 (2019), Prop. 9: ⌊K⌋ = Σ w_i ⌊L_i⌋, D(K) = Π D(L_i)^{w_i}
        c = _chol(x)
        logd = (w.unsqueeze(-1) * torch.log(_diag(c))).sum(-2)
        k = _wmean(w, _strict_lower(c)) + torch.diag_embed(torch.exp(logd))
        return sym(k @ k.mT)

    def __init__(self, *, theta: float = 1.0):
        super().__init__(theta=theta)

    is_flat = True

    def _flat_vector(self, x):
        c = _chol(x)
        n = c.shape[-1]
        i, j = torch.tril_indices(n, n, -1, device=c.device)
        return torch.cat([c[..., i, j], torch.log(_diag(c))], -1)

    @staticmethod
    def _to_factor(c, u):
        m = _whiten(c, u)
        half = _strict_lower(m) + 0.5 * torch.diag_embed(_diag(m))
        return c @ half

    @staticmethod
    def _from_factor(c, xf):
        return sym(c @ xf.mT + xf @ c.mT)

    def _inner(self, x, u, v):
        c = _chol(x)
        a = self._to_factor(c, u)
        b = a if v is None else self._to_factor(c, v)
        d = _diag(c)
        return _frob(_strict_lower(a), _strict_lower(b)) + ((_diag(a) / d) * (_diag(b) / d)).sum(-1)

    def _dist(self, x, y):
        c, k = _chol(x), _chol(y)
        sl = _strict_lower(c) - _strict_lower(k)
        dl = torch.log(_diag(c)) - torch.log(_diag(k))
        sq = (sl * sl).sum((-2, -1)) + (dl * dl).sum(-1)
        return safe_sqrt(sq)

    def _expmap(self, x, u):
        c = _chol(x)
        xf = self._to_factor(c, u)
        d = _diag(c)
        k = _strict_lower(c) + _strict_lower(xf) + torch.diag_embed(d * torch.exp(_diag(xf) / d))
        return sym(k @ k.mT)

    def _logmap(self, x, y):
        c, k = _chol(x), _chol(y)
        d = _diag(c)
        xf = _strict_lower(k) - _strict_lower(c) + torch.diag_embed(d * (torch.log(_diag(k)) - torch.log(d)))
        return self._from_factor(c, xf)

    def _transp(self, x, y, v):
        c, k = _chol(x), _chol(y)
        xf = self._to_factor(c, v)
        yf = _strict_lower(xf) + torch.diag_embed(_diag(k) / _diag(c) * _diag(xf))
        return self._from_factor(k, yf)

    def _egrad2rgrad(self, x, g):
        c = _chol(x)
        w = torch.tril(2.0 * sym(g) @ c)
        d = _diag(c)
        z = _strict_lower(w) + torch.diag_embed(d * d * _diag(w))
        return self._from_factor(c, z)


# ---------------------------------------------------------------------------- EM
class EuclideanMetric(SPDMetric):
    r"""Euclidean (Frobenius) metric ``<u, v>_x = tr(u v)`` restricted to the SPD cone, and its
    power-Euclidean / (θ, α, β) family.

    Flat but **incomplete** (Thanwerdas & Pennec, LAA 2023; refs/core.md §4): ``expmap(x, u) =
    x + u`` leaves the cone when ``x + u`` is not positive definite (no error is raised; check
    with :meth:`SPD.check_point` or use :meth:`SPD.projx`). ``logmap(x, y) = y − x``,
    ``dist = ‖x − y‖_F``, transport is the identity, ``egrad2rgrad(x, g) = sym(g)``.

    **(α, β)-EM**: ``α tr(uv) + β tr u tr v``; ``dist² = α ‖x − y‖_F² + β tr(x − y)²``,
    ``egrad2rgrad(x, g) = (sym g − β/(α + nβ) tr(g) I)/α``. **Power-Euclidean** (Dryden, Koloydenko
    & Zhou, "Non-Euclidean statistics for covariance matrices", Ann. Appl. Stat. 2009;
    Thanwerdas & Pennec, LAA 2023, refs/core.md §4): the pullback by ``x ↦ x^θ`` scaled by
    ``1/θ²``, ``dist = ‖x^θ − y^θ‖_F/|θ|``, ``expmap(x, u) = (x^θ + D pow_θ(x)[u])^{1/θ}``
    (incomplete: NaN-free but meaningless when ``x^θ + D pow_θ(x)[u]`` is not SPD, the
    power floors the eigenvalues), ``θ → 0`` tends to LEM.

    Args / Raises: as :class:`AffineInvariantMetric`.
    """

    key = "em"
    _has_alpha_beta = True

    def _closed_form_mean(self, x, w):
        return sym(_wmean(w, x))  # a convex combination of SPD matrices is SPD

    def __init__(self, *, theta: float = 1.0, alpha: float = 1.0, beta: float = 0.0):
        super().__init__(theta=theta, alpha=alpha, beta=beta)

    def _inner(self, x, u, v):
        return _frob(u, u if v is None else v)

    def _dist(self, x, y):
        return torch.linalg.matrix_norm(x - y)

    def _expmap(self, x, u):
        return x + u

    def _logmap(self, x, y):
        return y - x

    def _transp(self, x, y, v):
        return torch.broadcast_to(v, torch.broadcast_shapes(x.shape, y.shape, v.shape)).clone()

    def _egrad2rgrad(self, x, g):
        return sym(g)

    def _trace_form(self, x, u):
        return _diag(u).sum(-1)

    def _trace_dual(self, x):
        return _eye_like(x)

    def _dist_terms(self, x, y):
        d = y - x
        return _frob(d, d), _diag(d).sum(-1)

    is_flat = True

    def _flat_point(self, x):
        return x


# ---------------------------------------------------------------------------- BWM
class BuresWassersteinMetric(SPDMetric):
    r"""Bures–Wasserstein metric (BWM), ``<u, v>_x = ½ tr(L_x(u) v)``, and θ-BWM.

    ``L_x(u)`` solves the Lyapunov equation ``x L + L x = u``. Bhatia, Jain & Lim, "On the
    Bures–Wasserstein distance between positive definite matrices", Expo. Math. 37 (2019),
    Eqs. (2), (25), Thm 6; Malagò, Montrucchio & Pistone, "Wasserstein Riemannian geometry of
    Gaussian densities", Inf. Geom. 2018, Prop. 9; Thanwerdas & Pennec, LAA 2023.
    Incomplete, curvature ≥ 0.

    * ``dist(x, y)² = tr x + tr y − 2 tr((x^{½} y x^{½})^{½}) = tr x + tr y − 2 Σ √λ_i(Lᵀ y L)``
      (``x = L Lᵀ``; eigenvalues only, clamped at 0). The trace terms cancel at ``y ≈ x``:
      ``dist(x, x)`` is ``√(ε · tr x · κ(x))`` (≈ 1e-7 in float64, host-dependent), not 0.
    * ``logmap(x, y) = (x y)^{½} + (y x)^{½} − 2x``, ``(x y)^{½} = L (Lᵀ y L)^{½} L⁻¹``
    * ``expmap(x, u) = x + u + L_x(u) x L_x(u)``
    * ``egrad2rgrad(x, g) = 2 (x sym(g) + sym(g) x)`` (then ``L_x(G) = 2 sym(g)``)
    * ``transp``: no closed form outside commuting matrices (Thanwerdas & Pennec, LAA 2023):
      the parallel-transport ODE ``v' = −Γ_γ(γ', v)`` along the explicit geodesic, with the
      Levi-Civita connection ``Γ_x(u, w) = −(L_x(u) x L_x(w) + L_x(w) x L_x(u))``, integrated
      by torchdiffeq (:func:`manifolds._bures.bw_parallel_transport`; default dopri5 with
      rtol = atol = 1e-10 in float64, 1e-5 / 1e-6 in float32; differentiable; one host sync
      per adaptive step, torchdiffeq's step control). ``transp_follow_expmap`` integrates along
      ``t ↦ expmap(x, t u)`` directly.

    **θ-BWM**: the pullback by ``x ↦ x^θ`` scaled by ``1/θ²`` (see :class:`SPDMetric`),
    ``dist = d_BW(x^θ, y^θ)/|θ|``. Conventions differ between papers (refs/batchnorm.md §3.1):
    GBWBN's ``po`` applies BW to ``P^{po}`` (``po`` is this ``theta``), while Chen et al.'s
    "2θ-BWM" (RMLR, LieBN code) deforms by ``P^{2θ}``, i.e. ``theta = 2θ_Chen`` here; compare
    the power and the scale factor, not the names.

    The Lyapunov solve is :func:`manifolds._linalg.sym_lyapunov` (eigenbasis, ``O(n³)``, a
    backward finite at repeated eigenvalues for every ``n``).

    Args:
        theta: power deformation, a nonzero real (default 1: none).
        ode_options: keyword arguments of the transport ODE solver (``method``, ``rtol``,
            ``atol``, ``options``; see :func:`manifolds._bures.bw_parallel_transport`).

    Raises:
        ValueError: ``theta = 0`` or not a finite real number; ``ode_options`` not a dict with
            those keys.
    """

    key = "bwm"
    _ODE_KEYS = ("method", "rtol", "atol", "options")

    def __init__(self, *, theta: float = 1.0, ode_options: Optional[dict] = None):
        super().__init__(theta=theta)
        ode_options = {} if ode_options is None else ode_options
        if not isinstance(ode_options, dict) or not set(ode_options) <= set(self._ODE_KEYS):
            raise ValueError(f"ode_options must be a dict with keys among {self._ODE_KEYS}, got {ode_options!r}")
        self.ode_options = dict(ode_options)

    def _inner(self, x, u, v):
        return 0.5 * _frob(sym_lyapunov(x, u), u if v is None else v)

    def _dist(self, x, y):
        # accuracy at y ≈ x: see the class docstring (trace cancellation)
        c = _chol(x)
        lam = torch.linalg.eigvalsh(sym(c.mT @ y @ c))
        tr = _diag(x).sum(-1) + _diag(y).sum(-1) - 2.0 * torch.sqrt(torch.clamp(lam, min=0.0)).sum(-1)
        return safe_sqrt(torch.clamp(tr, min=0.0))

    def _expmap(self, x, u):
        lx = sym_lyapunov(x, u)
        return sym(x + u + lx @ x @ lx)

    def _logmap(self, x, y):
        c = _chol(x)
        cm = c @ sym_sqrtm(sym(c.mT @ y @ c))
        # s = (L M) L⁻¹, i.e. Lᵀ sᵀ = (L M)ᵀ: one triangular solve
        s = torch.linalg.solve_triangular(c.mT, cm.mT, upper=True).mT
        return sym(s + s.mT) - 2.0 * x

    def _transp(self, x, y, v):
        return bw_parallel_transport(x, y, v, **self.ode_options)

    def _expmap_transp(self, x, u, v):
        return self._expmap(x, u), bw_transp_follow_expmap(x, u, v, **self.ode_options)

    def _egrad2rgrad(self, x, g):
        gs = sym(g)
        return 2.0 * sym(x @ gs + gs @ x)


# ---------------------------------------------------------------------------- GBWM
class GeneralizedBuresWassersteinMetric(BuresWassersteinMetric):
    r"""Generalized Bures–Wasserstein metric (GBWM) with SPD parameter ``m``, and θ-GBWM.

    Han, Mishra, Jawanpuria & Gao, "Generalized Bures–Wasserstein geometry for positive definite
    matrices", arXiv 2110.10464 (2021): ``g^m_x(u, v) = ½ tr(L_{x,m}(u) v)``, ``x L m + m L x =
    u`` (generalized Lyapunov equation). It is the pullback of :class:`BuresWassersteinMetric`
    by the congruence ``x ↦ m^{-½} x m^{-½}`` (refs/batchnorm.md §3.1), which is how it is
    computed (with ``m = K Kᵀ``, ``x ↦ K⁻¹ x K⁻ᵀ``: the same pullback, BW being
    O(n)-invariant). Closed forms (Han et al., §3; refs/batchnorm.md §3.1):

    * ``dist² = tr(m⁻¹x) + tr(m⁻¹y) − 2 tr((x^{½} m⁻¹ y m⁻¹ x^{½})^{½})``
    * ``logmap(x, y) = m (m⁻¹ x m⁻¹ y)^{½} + (y m⁻¹ x m⁻¹)^{½} m − 2x``
    * ``expmap(x, u) = x + u + m L_{x,m}(u) x L_{x,m}(u) m``
    * ``egrad2rgrad(x, g) = 2 (x sym(g) m + m sym(g) x)``
    * ``transp``: no closed form; the BWM transport ODE pulled back by the congruence (see
      :class:`BuresWassersteinMetric`).

    ``m = I`` is BWM. With ``theta``: the pullback by ``x ↦ x^θ`` scaled by ``1/θ²``, i.e.
    ``dist = d_GBW(x^θ, y^θ)/|θ|`` (GBWBN, refs/batchnorm.md §3.1).

    Args:
        m: ``(n, n)`` SPD tensor (float32 or float64; it may require grad, e.g. a trained
            parameter: it is read at every call and cast to the points' dtype and device; the
            metric keeps a reference, so in-place updates of ``m`` change the metric).
        theta: power deformation, a nonzero real (default 1: none).
        ode_options: keyword arguments of the transport ODE solver (see
            :class:`BuresWassersteinMetric`).

    Raises:
        ValueError: ``m`` not a floating-point ``(n, n)`` tensor, not symmetric, not positive
            definite or not finite; ``theta`` or ``ode_options`` invalid. ``SPD(n, metric)`` also checks that ``m``
            is ``n × n``.

    Two metrics are equal (:meth:`_key`) when they hold the *same* tensor object ``m`` and the
    same ``theta`` (values are not compared: that would synchronise with the device).
    """

    key = "gbwm"

    def __init__(self, m: torch.Tensor, *, theta: float = 1.0, ode_options: Optional[dict] = None):
        if not isinstance(m, torch.Tensor) or not m.is_floating_point():
            raise ValueError(f"GeneralizedBuresWassersteinMetric: m must be a floating-point tensor, got {type(m).__name__}")
        if m.dim() != 2 or m.shape[0] != m.shape[1]:
            raise ValueError(f"GeneralizedBuresWassersteinMetric: m must be an (n, n) SPD matrix, got shape {tuple(m.shape)}")
        md = m.detach()
        if not bool(torch.isfinite(md).all()):
            raise ValueError("GeneralizedBuresWassersteinMetric: m contains NaN or inf")
        tol = check_tol(md.dtype) * max(1.0, float(md.abs().amax()))
        if float((md - md.mT).abs().amax()) > tol:
            raise ValueError("GeneralizedBuresWassersteinMetric: m must be symmetric")
        if int(torch.linalg.cholesky_ex(sym(md))[1]) != 0:
            raise ValueError("GeneralizedBuresWassersteinMetric: m must be positive definite (Cholesky failed)")
        self.m = m
        super().__init__(theta=theta, ode_options=ode_options)

    def _base_maps(self) -> tuple:
        return (_CongruenceMap(self.m),)

    def _check_n(self, n: int) -> None:
        super()._check_n(n)
        if tuple(self.m.shape) != (n, n):
            raise ValueError(f"GeneralizedBuresWassersteinMetric: m has shape {tuple(self.m.shape)}, expected ({n}, {n})")

    def _params(self) -> dict:
        return {"m": _TensorRef(self.m), "theta": self.theta}


class _TensorRef:
    """Hashable identity reference to a tensor (for metric keys), shown as its shape and dtype."""

    __slots__ = ("t",)

    def __init__(self, t: torch.Tensor):
        self.t = t

    def __eq__(self, other):
        return isinstance(other, _TensorRef) and other.t is self.t

    def __hash__(self):
        return id(self.t)

    def __repr__(self):
        return f"<tensor {tuple(self.t.shape)} {str(self.t.dtype).replace('torch.', '')}>"


_METRICS = {
    "aim": AffineInvariantMetric,
    "affine": AffineInvariantMetric,
    "lem": LogEuclideanMetric,
    "log_euclidean": LogEuclideanMetric,
    "lcm": LogCholeskyMetric,
    "log_cholesky": LogCholeskyMetric,
    "em": EuclideanMetric,
    "euclidean": EuclideanMetric,
    "bwm": BuresWassersteinMetric,
    "bures_wasserstein": BuresWassersteinMetric,
}


# ---------------------------------------------------------------------------- manifold
class SPD(Manifold):
    r"""Symmetric positive definite ``n × n`` matrices with a pluggable Riemannian metric.

    Points ``x: (..., n, n)`` SPD; tangent vectors ``u: (..., n, n)`` symmetric. ``event_shape =
    (n, n)``, ``dim = n(n+1)/2``. ``inner``, ``dist``, ``expmap``, ``logmap``, ``transp``,
    ``egrad2rgrad`` are the metric's (see :class:`AffineInvariantMetric`,
    :class:`LogEuclideanMetric`, :class:`LogCholeskyMetric`, :class:`EuclideanMetric`,
    :class:`BuresWassersteinMetric`, :class:`GeneralizedBuresWassersteinMetric`); ``inner`` / ``dist`` return ``(...)`` or, with
    ``keepdim=True``, ``(..., 1, 1)``.

    Args:
        n: matrix size, a positive int.
        metric: ``"aim"`` (default), ``"lem"``, ``"lcm"``, ``"em"``, ``"bwm"`` (long names
            ``"affine"``, ``"log_euclidean"``, ``"log_cholesky"``, ``"euclidean"``,
            ``"bures_wasserstein"`` too; the plain metrics) or an :class:`SPDMetric` instance,
            e.g. ``AffineInvariantMetric(theta=0.5, alpha=1.0, beta=0.1)`` or
            ``GeneralizedBuresWassersteinMetric(m)``.

    Raises:
        ValueError: ``n`` not a positive int, an unknown metric name, ``beta ≤ −alpha/n`` for
            an (α, β) metric, or a GBWM parameter ``m`` that is not ``n × n``.

    Gyro-structure (Nguyen 2022; Chen et al., ICLR 2025; :mod:`manifolds.gyro`): ``gyro_add``,
    ``gyro_inv``, ``gyration``, ``gyro_scalar_mul``, ``gyro_identity`` delegate to the metric
    (affine-invariant, log-Euclidean, log-Cholesky and their θ-deformations, pulled back by
    ``x ↦ x^θ``; :class:`NotImplementedError` for the others).

    ``random_base`` / ``base_log_prob``: a wrapped normal at ``I`` of scale ``base_std`` (AIM and
    LEM families; :class:`NotImplementedError` for the other metrics).

    Example:
        >>> M = SPD(3, metric="aim")
        >>> x, y = M.random(2, 3, 3, dtype=torch.float64)
        >>> torch.allclose(M.expmap(x, M.logmap(x, y)), y)
        True
    """

    name = "SPD"
    reversible = False
    ndim = 2

    def __init__(self, n: int = 3, metric: Union[str, SPDMetric] = "aim"):
        super().__init__()
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"SPD n must be a positive int (matrix size), got {n!r}")
        if isinstance(metric, str):
            cls = _METRICS.get(metric.lower())
            if cls is None:
                raise ValueError(f"unknown SPD metric {metric!r}; expected one of {sorted(_METRICS)} or an SPDMetric")
            metric = cls()
        elif not isinstance(metric, SPDMetric):
            raise ValueError(f"SPD metric must be a name or an SPDMetric instance, got {type(metric).__name__}")
        metric._check_n(n)
        self.n = n
        self.metric = metric
        self.event_shape = (n, n)
        self.dim = n * (n + 1) // 2

    def _key(self) -> Hashable:
        return (type(self).__name__, self.event_shape, self.metric._key())

    # ------------------------------------------------------------------ checks
    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=0.0):
        if x.numel() == 0:
            return True, None
        asym = (x - x.mT).abs().amax()
        scale = x.abs().amax()
        if asym > atol + rtol * scale:
            return False, f"points must be symmetric: max |x - xᵀ| = {float(asym):.3g} > {atol + rtol * float(scale):.3g}"
        _, info = torch.linalg.cholesky_ex(sym(x))
        lam_min = torch.linalg.eigvalsh(sym(x))[..., 0].amin()
        if bool((info != 0).any()) or not bool(lam_min > 0):
            return False, (
                f"points must be positive definite: Cholesky failed or min eigenvalue = {float(lam_min):.3g} <= 0"
            )
        return True, None

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=0.0):
        if u.numel() == 0:
            return True, None
        asym = (u - u.mT).abs().amax()
        scale = u.abs().amax()
        if asym > atol + rtol * scale:
            return False, f"tangent vectors must be symmetric: max |u - uᵀ| = {float(asym):.3g}"
        return True, None

    # ------------------------------------------------------------------ metric
    def inner(self, x, u, v=None, *, keepdim=False):
        """``<u, v>_x`` under the metric; ``(...)``, or ``(..., 1, 1)`` with ``keepdim``."""
        r = self.metric.inner(x, u, v)
        return r[..., None, None] if keepdim else r

    def dist(self, x, y, *, keepdim=False):
        """Geodesic distance; ``(...)``, or ``(..., 1, 1)`` with ``keepdim``."""
        r = self.metric.dist(x, y)
        return r[..., None, None] if keepdim else r


    # ------------------------------------------------------------------ kernel-ready distance
    @property
    def has_kernel_formula(self) -> bool:
        return self.metric.is_flat

    @property
    def kernel_feature_dim(self) -> int:
        return self.metric.flat_dim(self.n) if self.metric.is_flat else self.numel

    def kernel_features(self, x):
        """Flat coordinates of the metric (:meth:`SPDMetric.flat_coordinates`) for flat metrics
        (LEM, EM, LCM and their deformations), else the flattened matrix (see
        :meth:`Manifold.kernel_features`); ``(*batch, F)``."""
        return self.metric.flat_coordinates(x) if self.metric.is_flat else super().kernel_features(x)

    def kernel_dist(self, a, b, ops):
        """Euclidean distance of the flat coordinates; non-flat metrics (AIM, BWM, GBWM) use
        :meth:`dist` on the torch backends (no KeOps formula: it needs an eigendecomposition)."""
        if self.metric.is_flat:
            return ops.sqrt(ops.sqdist(a, b))
        return super().kernel_dist(a, b, ops)
    def expmap(self, x, u):
        return self.metric.expmap(x, u)

    def logmap(self, x, y):
        return self.metric.logmap(x, y)

    def transp(self, x, y, v):
        return self.metric.transp(x, y, v)

    def transp_follow_expmap(self, x, u, v):
        return self.metric.transp_follow_expmap(x, u, v)

    def expmap_transp(self, x, u, v):
        return self.metric.expmap_transp(x, u, v)

    def egrad2rgrad(self, x, u):
        return self.metric.egrad2rgrad(x, u)

    def proju(self, x, u):
        """Projection onto the tangent space (symmetric matrices): ``sym(u)``."""
        return sym(u)

    def projx(self, x):
        """Nearest SPD matrix (Frobenius): ``sym(x)`` with eigenvalues clamped at a floor.

        The floor is ``max(tol·λ_max, tiny)`` with ``tol`` = 1e-5 (float32) / 1e-10 (float64)
        (:func:`manifolds._numerics.check_tol`), so the result is positive definite with a
        condition number at most ``1/tol``. Gradients go through ``eigh`` (NaN at exactly
        repeated eigenvalues).
        """
        lam, vec = torch.linalg.eigh(sym(x))
        floor = torch.clamp(check_tol(x.dtype) * lam[..., -1:], min=torch.finfo(x.dtype).tiny)
        lam = torch.maximum(lam, floor)
        return sym((vec * lam.unsqueeze(-2)) @ vec.mT)

    # ------------------------------------------------------------------ gyro-structure
    def gyro_add(self, a, b):
        """``a ⊕ b``, ``(..., n, n)`` (see :meth:`SPDMetric.gyro_add`)."""
        return self.metric.gyro_add(a, b)

    def gyro_inv(self, a):
        """``⊖a``, ``(..., n, n)``."""
        return self.metric.gyro_inv(a)

    def gyration(self, a, b, c):
        """``gyr[a, b] c``, ``(..., n, n)``."""
        return self.metric.gyration(a, b, c)

    def gyro_scalar_mul(self, t, a):
        """``t ⊗ a``, ``(..., n, n)``; ``t`` a scalar or a ``(...)`` tensor."""
        return self.metric.gyro_scalar_mul(t, a)

    def gyro_identity(self, like):
        """The gyro identity ``I`` shaped like ``like``."""
        return self.metric.gyro_identity(like)

    def origin_point(self, x):
        """The identity matrix, broadcast to the shape of ``x`` (origin of the weight decay)."""
        return _eye_like(x).clone()

    # ------------------------------------------------------------------ sampling
    def random(self, *size, dtype=None, device=None, generator=None, std: float = 0.5):
        """``expm(sym(std · N(0, 1)))``; ``size`` is the full shape ``(..., n, n)``."""
        size = self._check_size(size)
        a = torch.randn(size, dtype=dtype, device=device, generator=generator)
        return sym_expm(sym(std * a))

    random_normal = random

    #: ``σ`` of the wrapped normal base distribution (:meth:`random_base`, :meth:`base_log_prob`).
    base_std: float = 1.0

    def _base_metric(self):
        m = self.metric
        if type(m) not in (AffineInvariantMetric, LogEuclideanMetric):
            raise NotImplementedError(
                f"SPD base distribution is defined for the affine-invariant and log-Euclidean metrics "
                f"(and their theta, alpha, beta families), got {m!r}"
            )
        return m

    def random_base(self, *size, dtype=None, device=None, generator=None):
        r"""Sample the base distribution: a wrapped normal at the identity, ``x = expm(u)``.

        ``u`` is an isotropic Gaussian of scale ``σ = base_std`` (default 1; set the attribute
        to change it) in an orthonormal basis of ``(T_I, g_I)``, ``g_I(u, v) = α tr(uv) + β tr u tr v``:
        the traceless part of a Frobenius-standard symmetric Gaussian scaled by ``σ/√α``, its
        trace part by ``σ/√(α + nβ)``. ``exp_I = expm`` for AIM, LEM and their θ-deformations.

        Args:
            *size: full output shape ``(..., n, n)``.

        Returns:
            ``(..., n, n)`` SPD samples.

        Raises:
            NotImplementedError: a metric other than AIM / LEM (and their families).
            ValueError: ``size`` does not end with ``(n, n)``.
        """
        m = self._base_metric()
        size = self._check_size(size)
        z = torch.randn(size, dtype=dtype, device=device, generator=generator)
        z = (z + z.mT) / 2.0  # Frobenius-standard on Sym: diagonal N(0, 1), off-diagonal N(0, 1/2)
        n = self.n
        tr = _diag(z).sum(-1)[..., None, None] / n * _eye_like(z)
        sd = self.base_std
        u = (z - tr) * (sd / math.sqrt(m.alpha)) + tr * (sd / math.sqrt(m.alpha + n * m.beta))
        return sym_expm(u)

    def base_log_prob(self, x):
        r"""Log-density of :meth:`random_base` w.r.t. the Riemannian volume; ``(..., n, n)`` → ``(...)``.

        With ``u = logm(x)`` (``= log_I x``) and ``λ`` its eigenvalues:

        ``log p(x) = −(d/2) log(2πσ²) − g_I(u, u)/(2σ²) − log J(u)``, ``d = n(n+1)/2``.

        * LEM: ``exp_I`` is an isometry onto the flat log-domain, ``J = 1``.
        * AIM: the volume change of ``exp_I`` on the symmetric space ``GL(n)/O(n)``
          (Helgason, *Groups and geometric analysis*, Ch. I Thm 4.1 / Ch. IV; the root
          system ``λ_i − λ_j``):
          ``J(u) = ∏_{i<j} sinh(θ(λ_i − λ_j)/2) / (θ(λ_i − λ_j)/2)`` (θ the power deformation;
          ``α``, ``β`` rescale both volumes and cancel).

        Checked against a ``torch.func.jacrev`` log-determinant of ``expm`` in orthonormal
        coordinates and by Monte Carlo in ``tests/test_flow_matching_manifolds.py``.
        """
        m = self._base_metric()
        u = sym_logm(x)
        sd = self.base_std
        d = self.dim
        gu = self._base_inner_I(m, u)
        out = -0.5 * d * math.log(2 * math.pi * sd * sd) - gu / (2 * sd * sd)
        if isinstance(m, AffineInvariantMetric):
            lam = torch.linalg.eigvalsh(u)
            i, j = torch.triu_indices(self.n, self.n, 1, device=u.device)
            a = 0.5 * m.theta * (lam[..., i] - lam[..., j]).abs()
            small = a < 1e-3
            a_s = torch.where(small, torch.ones_like(a), a)
            # log(sinh a / a) = a + log1p(−e^{−2a}) − log(2a); Taylor a²/6 − a⁴/180 near 0
            big = a_s + torch.log1p(-torch.exp(-2 * a_s)) - torch.log(2 * a_s)
            out = out - torch.where(small, a * a / 6 - a ** 4 / 180, big).sum(-1)
        return out

    @staticmethod
    def _base_inner_I(m, u):
        """``g_I(u, u) = α tr(u²) + β (tr u)²`` (the metric at the identity for every θ)."""
        tr = _diag(u).sum(-1)
        return m.alpha * (u * u).sum((-2, -1)) + m.beta * tr * tr

    def extra_repr(self):
        return f"n={self.n}, metric={self.metric!r}"
