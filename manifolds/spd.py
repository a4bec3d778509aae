"""The manifold of symmetric positive definite (SPD) matrices with a choice of Riemannian metric.

:class:`SPD` is the manifold ``Sym⁺(n) = {x ∈ ℝⁿˣⁿ : x = xᵀ, x ≻ 0}`` (points ``(..., n, n)``,
tangent vectors symmetric matrices ``(..., n, n)``, intrinsic dimension ``n(n+1)/2``). The
geometry is delegated to a *metric object*, one class per Riemannian metric:

======================================  =====  ==============================================
class                                   key    source
======================================  =====  ==============================================
:class:`AffineInvariantMetric`          aim    Pennec, Fillard & Ayache, IJCV 2006
:class:`LogEuclideanMetric`             lem    Arsigny, Fillard, Pennec & Ayache, SIMAX 2007
:class:`LogCholeskyMetric`              lcm    Lin, SIMAX 2019
:class:`EuclideanMetric`                em     flat, incomplete
:class:`BuresWassersteinMetric`         bwm    Bhatia, Jain & Lim 2019; Malagò et al. 2018
======================================  =====  ==============================================

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
from typing import Hashable, Union

import torch

from ._linalg import _dd_log, _loewner, aim_dist, sym, sym_expm, sym_logm, sym_sqrtm
from ._numerics import check_tol, safe_sqrt
from .base import Manifold

__all__ = [
    "SPD",
    "SPDMetric",
    "AffineInvariantMetric",
    "LogEuclideanMetric",
    "LogCholeskyMetric",
    "EuclideanMetric",
    "BuresWassersteinMetric",
]


# ---------------------------------------------------------------------------- helpers
# Up to this matrix size, linear operators (Lyapunov, D log) are solved as dense n² × n²
# systems (O(n⁶), gradients finite at repeated eigenvalues); above it, in the eigenbasis.
_KRON_MAX_N = 8


def _chol(x: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of ``sym(x)`` without the error check (no host sync).

    A batch element that is not positive definite gives a factor with NaNs (``cholesky_ex``
    semantics); use :meth:`SPD.check_point` to validate inputs.
    """
    return torch.linalg.cholesky_ex(sym(x))[0]


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


def _strict_lower(x: torch.Tensor) -> torch.Tensor:
    """Strictly lower triangular part ``⌊x⌋``."""
    return torch.tril(x, diagonal=-1)


def _eigh_floor(x: torch.Tensor):
    """``eigh(sym(x))`` with eigenvalues clamped at ``max(eps·λ_max, tiny)``."""
    lam, u = torch.linalg.eigh(sym(x))
    finfo = torch.finfo(lam.dtype)
    floor = torch.clamp(finfo.eps * lam[..., -1:], min=finfo.tiny)
    return torch.maximum(lam, floor), u


def _dexp_block(a: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """Fréchet derivative ``D exp_a(e)`` of the matrix exponential (Mathias's block formula).

    ``expm([[a, e], [0, a]]) = [[expm a, D exp_a(e)], [0, expm a]]`` (Higham, *Functions of
    Matrices*, 2008, Thm 3.6). ``torch.linalg.matrix_exp`` has a backward that is finite at
    repeated eigenvalues, so this derivative is differentiable everywhere. Shapes
    ``(..., n, n)``, result symmetrised (``a``, ``e`` symmetric).
    """
    return sym(_dexp_block_raw(a, e))


def _dexp_block_raw(a: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``D exp_a(e)`` for any square ``e`` (not symmetrised); see :func:`_dexp_block`."""
    a, e = torch.broadcast_tensors(a, e)
    n = a.shape[-1]
    z = torch.zeros_like(a)
    top = torch.cat([a, e], dim=-1)
    bottom = torch.cat([z, a], dim=-1)
    big = torch.linalg.matrix_exp(torch.cat([top, bottom], dim=-2))
    return big[..., :n, n:]


def _dexp_kron(a: torch.Tensor) -> torch.Tensor:
    """Matrix ``K: (..., n², n²)`` of ``D exp_a`` on row-major ``vec``: ``vec(D exp_a(e)) = K vec(e)``.

    Built column by column with the block formula on the ``n²`` unit matrices.
    """
    n = a.shape[-1]
    basis = torch.eye(n * n, dtype=a.dtype, device=a.device).reshape(n * n, n, n)
    cols = _dexp_block_raw(a.unsqueeze(-3), basis)  # (..., n², n, n): cols[k] = D exp_a(E_k)
    return cols.reshape(a.shape[:-2] + (n * n, n * n)).mT


def _lyapunov(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Solve the Lyapunov equation ``x L + L x = u`` for SPD ``x`` and symmetric ``u``.

    For ``n ≤ 8`` as the linear system ``(I ⊗ x + x ⊗ I) vec L = vec u`` (``torch.linalg.solve``
    on ``n² × n²`` matrices; its gradient is finite at repeated eigenvalues of ``x``); for
    larger ``n`` in the eigenbasis of ``x``: ``L = U (ũ_ij / (λ_i + λ_j)) Uᵀ`` (its gradient
    w.r.t. ``x`` goes through ``eigh`` and is NaN at exactly repeated eigenvalues).
    """
    x, u = torch.broadcast_tensors(x, u)
    n = x.shape[-1]
    if n <= _KRON_MAX_N:
        eye = torch.eye(n, dtype=x.dtype, device=x.device)
        # row-major vec: vec(x L) = (x ⊗ I) vec L, vec(L x) = (I ⊗ xᵀ) vec L
        a = _bkron(x, eye)
        b = _bkron_left(eye, x.mT)
        sol = torch.linalg.solve(a + b, u.reshape(u.shape[:-2] + (n * n,)))
        return sym(sol.reshape(u.shape))
    lam, vec = _eigh_floor(x)
    ut = vec.mT @ u @ vec
    return sym(vec @ (ut / (lam.unsqueeze(-1) + lam.unsqueeze(-2))) @ vec.mT)


def _bkron(a: torch.Tensor, eye: torch.Tensor) -> torch.Tensor:
    """Batched ``a ⊗ I``: ``(..., n, n) -> (..., n², n²)``."""
    n = a.shape[-1]
    out = a[..., :, None, :, None] * eye[:, None, :]  # (..., n, n, n, n) indexed [i, k, j, l]
    return out.reshape(a.shape[:-2] + (n * n, n * n))


def _bkron_left(eye: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Batched ``I ⊗ a``: ``(..., n, n) -> (..., n², n²)``."""
    n = a.shape[-1]
    out = eye[:, None, :, None] * a[..., None, :, None, :]  # [i, k, j, l] = I_ij a_kl
    return out.reshape(a.shape[:-2] + (n * n, n * n))


# ---------------------------------------------------------------------------- metric base
class SPDMetric(abc.ABC):
    """A Riemannian metric on SPD matrices: the verbs :class:`SPD` delegates to.

    Every method takes points ``x, y: (..., n, n)`` SPD and tangent vectors ``u, v, g:
    (..., n, n)`` symmetric (batch dimensions broadcast) and returns ``(...)`` scalars
    (:meth:`inner`, :meth:`dist`) or ``(..., n, n)`` matrices. Inputs are not validated
    (no host sync); invalid points give NaN, never an exception.
    """

    #: short name used by ``SPD(n, metric=...)``
    key: str = ""

    @abc.abstractmethod
    def inner(self, x, u, v):
        """``<u, v>_x``, shape ``(...)``."""

    @abc.abstractmethod
    def dist(self, x, y):
        """Geodesic distance, shape ``(...)``."""

    @abc.abstractmethod
    def expmap(self, x, u):
        """Riemannian exponential ``(..., n, n)``."""

    @abc.abstractmethod
    def logmap(self, x, y):
        """Riemannian logarithm ``(..., n, n)`` (symmetric)."""

    @abc.abstractmethod
    def transp(self, x, y, v):
        """Parallel transport of ``v`` from ``x`` to ``y`` along the geodesic."""

    @abc.abstractmethod
    def egrad2rgrad(self, x, g):
        """Riemannian gradient from the Euclidean gradient ``g`` (any square matrix)."""

    def transp_follow_expmap(self, x, u, v):
        """Parallel transport of ``v`` along ``t -> expmap(x, t u)``."""
        return self.transp(x, self.expmap(x, u), v)

    def expmap_transp(self, x, u, v):
        """``(expmap(x, u), transp_follow_expmap(x, u, v))``."""
        y = self.expmap(x, u)
        return y, self.transp(x, y, v)

    def _key(self) -> Hashable:
        """Hashable data identifying the metric (class name plus parameters)."""
        return (type(self).__name__,)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other) -> bool:
        return isinstance(other, SPDMetric) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


# ---------------------------------------------------------------------------- AIM
class AffineInvariantMetric(SPDMetric):
    r"""Affine-invariant metric (AIM), ``<u, v>_x = tr(x⁻¹ u x⁻¹ v)``.

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

    Every congruence by ``x^{±½}`` is computed with the Cholesky factor ``x = L Lᵀ``
    instead (the formulas are invariant under ``x^{½} -> L Q``, ``Q`` orthogonal; e.g.
    ``E = L (L⁻¹ y L⁻ᵀ)^{½} L⁻¹``), so only the inner ``expm`` / ``logm`` / ``sqrtm`` need an
    eigendecomposition, with a Daleckii–Krein backward: gradients are finite at ``x = I``
    and at repeated eigenvalues.
    """

    key = "aim"

    def inner(self, x, u, v):
        c = _chol(x)
        a = _whiten(c, u)
        b = a if v is None else _whiten(c, v)
        return _frob(a, b)

    def dist(self, x, y):
        return aim_dist(x, y)

    def expmap(self, x, u):
        c = _chol(x)
        return _color(c, sym_expm(_whiten(c, u)))

    def logmap(self, x, y):
        c = _chol(x)
        return _color(c, sym_logm(_whiten(c, y)))

    def transp(self, x, y, v):
        c = _chol(x)
        s = sym_sqrtm(_whiten(c, y))
        return _color(c, sym(s @ _whiten(c, v) @ s))

    def transp_follow_expmap(self, x, u, v):
        return self.expmap_transp(x, u, v)[1]

    def expmap_transp(self, x, u, v):
        c = _chol(x)
        e = sym_expm(0.5 * _whiten(c, u))  # (x^{-½}-whitened y)^{½}
        y = _color(c, sym(e @ e))
        return y, _color(c, sym(e @ _whiten(c, v) @ e))

    def egrad2rgrad(self, x, g):
        return sym(x @ sym(g) @ x)


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

    ``D exp_a(e)`` is computed with the block formula ``expm([[a, e], [0, a]])``
    (``torch.linalg.matrix_exp``, finite gradients everywhere), and for ``n ≤ 8`` ``D log_x``
    as its inverse (an ``n² × n²`` solve, see :meth:`dlog`), so all gradients are finite at
    repeated eigenvalues (e.g. ``x = I``). For ``n > 8`` ``D log_x`` uses ``eigh`` of ``x``
    with autograd, and the gradients of ``inner``, ``expmap`` and ``transp`` **with respect to
    x** are NaN when ``x`` has exactly repeated eigenvalues (a second-order Daleckii–Krein
    backward would remove this; not implemented yet).
    """

    key = "lem"

    @staticmethod
    def _eig_loewner(x):
        lam, vec = _eigh_floor(x)
        return vec, _loewner(lam, torch.log(lam), torch.reciprocal, _dd_log)

    @staticmethod
    def dlog(x, u):
        """``D log_x(u)``, shape ``(..., n, n)`` (``x`` SPD, ``u`` symmetric).

        For ``n ≤ 8``: ``(D exp_{log x})⁻¹(u)``, solving the ``n² × n²`` system whose matrix is
        built with the block formula (``torch.linalg.matrix_exp``): gradients finite everywhere,
        including repeated eigenvalues of ``x``. For ``n > 8``: Daleckii–Krein in the eigenbasis
        of ``x`` (``eigh`` autograd: gradient w.r.t. ``x`` NaN at exactly repeated eigenvalues).
        """
        n = x.shape[-1]
        if n <= _KRON_MAX_N:
            x, u = torch.broadcast_tensors(x, u)
            k = _dexp_kron(sym_logm(x))
            sol = torch.linalg.solve(k, u.reshape(u.shape[:-2] + (n * n,)))
            return sym(sol.reshape(u.shape))
        vec, lw = LogEuclideanMetric._eig_loewner(x)
        return sym(vec @ (lw * (vec.mT @ u @ vec)) @ vec.mT)

    def inner(self, x, u, v):
        a = self.dlog(x, u)
        b = a if v is None else self.dlog(x, v)
        return _frob(a, b)

    def dist(self, x, y):
        return torch.linalg.matrix_norm(sym_logm(x) - sym_logm(y))

    def expmap(self, x, u):
        return sym_expm(sym_logm(x) + self.dlog(x, u))

    def logmap(self, x, y):
        lx = sym_logm(x)
        return _dexp_block(lx, sym_logm(y) - lx)

    def transp(self, x, y, v):
        return _dexp_block(sym_logm(y), self.dlog(x, v))

    def expmap_transp(self, x, u, v):
        a = sym_logm(x) + self.dlog(x, u)
        return sym_expm(a), _dexp_block(a, self.dlog(x, v))

    def transp_follow_expmap(self, x, u, v):
        return self.expmap_transp(x, u, v)[1]

    def egrad2rgrad(self, x, g):
        lx = sym_logm(x)
        return _dexp_block(lx, _dexp_block(lx, sym(g)))


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

    Not O(n)-invariant; flat and complete. Everything is Cholesky + elementwise ops, so all
    gradients are finite at repeated eigenvalues.
    """

    key = "lcm"

    @staticmethod
    def _to_factor(c, u):
        m = _whiten(c, u)
        half = _strict_lower(m) + 0.5 * torch.diag_embed(_diag(m))
        return c @ half

    @staticmethod
    def _from_factor(c, xf):
        return sym(c @ xf.mT + xf @ c.mT)

    def inner(self, x, u, v):
        c = _chol(x)
        a = self._to_factor(c, u)
        b = a if v is None else self._to_factor(c, v)
        d = _diag(c)
        return _frob(_strict_lower(a), _strict_lower(b)) + ((_diag(a) / d) * (_diag(b) / d)).sum(-1)

    def dist(self, x, y):
        c, k = _chol(x), _chol(y)
        sl = _strict_lower(c) - _strict_lower(k)
        dl = torch.log(_diag(c)) - torch.log(_diag(k))
        sq = (sl * sl).sum((-2, -1)) + (dl * dl).sum(-1)
        return safe_sqrt(sq)

    def expmap(self, x, u):
        c = _chol(x)
        xf = self._to_factor(c, u)
        d = _diag(c)
        k = _strict_lower(c) + _strict_lower(xf) + torch.diag_embed(d * torch.exp(_diag(xf) / d))
        return sym(k @ k.mT)

    def logmap(self, x, y):
        c, k = _chol(x), _chol(y)
        d = _diag(c)
        xf = _strict_lower(k) - _strict_lower(c) + torch.diag_embed(d * (torch.log(_diag(k)) - torch.log(d)))
        return self._from_factor(c, xf)

    def transp(self, x, y, v):
        c, k = _chol(x), _chol(y)
        xf = self._to_factor(c, v)
        yf = _strict_lower(xf) + torch.diag_embed(_diag(k) / _diag(c) * _diag(xf))
        return self._from_factor(k, yf)

    def egrad2rgrad(self, x, g):
        c = _chol(x)
        w = torch.tril(2.0 * sym(g) @ c)
        d = _diag(c)
        z = _strict_lower(w) + torch.diag_embed(d * d * _diag(w))
        return self._from_factor(c, z)


# ---------------------------------------------------------------------------- EM
class EuclideanMetric(SPDMetric):
    r"""Euclidean (Frobenius) metric ``<u, v>_x = tr(u v)`` restricted to the SPD cone.

    Flat but **incomplete** (Thanwerdas & Pennec, LAA 2023; refs/core.md §4): ``expmap(x, u) =
    x + u`` leaves the cone when ``x + u`` is not positive definite (no error is raised; check
    with :meth:`SPD.check_point` or use :meth:`SPD.projx`). ``logmap(x, y) = y − x``,
    ``dist = ‖x − y‖_F``, transport is the identity, ``egrad2rgrad(x, g) = sym(g)``.
    """

    key = "em"

    def inner(self, x, u, v):
        return _frob(u, u if v is None else v)

    def dist(self, x, y):
        return torch.linalg.matrix_norm(x - y)

    def expmap(self, x, u):
        return x + u

    def logmap(self, x, y):
        return y - x

    def transp(self, x, y, v):
        return torch.broadcast_to(v, torch.broadcast_shapes(x.shape, y.shape, v.shape)).clone()

    def egrad2rgrad(self, x, g):
        return sym(g)


# ---------------------------------------------------------------------------- BWM
class BuresWassersteinMetric(SPDMetric):
    r"""Bures–Wasserstein metric (BWM), ``<u, v>_x = ½ tr(L_x(u) v)``.

    ``L_x(u)`` solves the Lyapunov equation ``x L + L x = u``. Bhatia, Jain & Lim, "On the
    Bures–Wasserstein distance between positive definite matrices", Expo. Math. 37 (2019),
    Eqs. (2), (25), Thm 6; Malagò, Montrucchio & Pistone, "Wasserstein Riemannian geometry of
    Gaussian densities", Inf. Geom. 2018, Prop. 9; Thanwerdas & Pennec, LAA 2023.
    Incomplete, curvature ≥ 0.

    * ``dist(x, y)² = tr x + tr y − 2 tr((x^{½} y x^{½})^{½}) = tr x + tr y − 2 Σ √λ_i(Lᵀ y L)``
      (``x = L Lᵀ``; eigenvalues only, clamped at 0)
    * ``logmap(x, y) = (x y)^{½} + (y x)^{½} − 2x``, ``(x y)^{½} = L (Lᵀ y L)^{½} L⁻¹``
    * ``expmap(x, u) = x + u + L_x(u) x L_x(u)``
    * ``egrad2rgrad(x, g) = 2 (x sym(g) + sym(g) x)`` (then ``L_x(G) = 2 sym(g)``)
    * ``transp``: raises :class:`NotImplementedError` — there is no closed form outside
      commuting matrices (an ODE transport, as geomstats' RK4, is planned).

    The Lyapunov solve is an ``n² × n²`` linear system for ``n ≤ 8`` (gradients finite at
    repeated eigenvalues) and an eigenbasis solve for larger ``n`` (gradients w.r.t. ``x`` of
    ``inner`` / ``expmap`` then NaN at exactly repeated eigenvalues).
    """

    key = "bwm"

    def inner(self, x, u, v):
        return 0.5 * _frob(_lyapunov(x, u), u if v is None else v)

    def dist(self, x, y):
        c = _chol(x)
        lam = torch.linalg.eigvalsh(sym(c.mT @ y @ c))
        tr = _diag(x).sum(-1) + _diag(y).sum(-1) - 2.0 * torch.sqrt(torch.clamp(lam, min=0.0)).sum(-1)
        return safe_sqrt(torch.clamp(tr, min=0.0))

    def expmap(self, x, u):
        lx = _lyapunov(x, u)
        return sym(x + u + lx @ x @ lx)

    def logmap(self, x, y):
        c = _chol(x)
        cm = c @ sym_sqrtm(sym(c.mT @ y @ c))
        # s = (L M) L⁻¹, i.e. Lᵀ sᵀ = (L M)ᵀ: one triangular solve
        s = torch.linalg.solve_triangular(c.mT, cm.mT, upper=True).mT
        return sym(s + s.mT) - 2.0 * x

    def transp(self, x, y, v):
        raise NotImplementedError(
            "BuresWassersteinMetric has no closed-form parallel transport (only between commuting "
            "matrices, Thanwerdas & Pennec 2023); an ODE transport is not implemented yet"
        )

    def egrad2rgrad(self, x, g):
        gs = sym(g)
        return 2.0 * sym(x @ gs + gs @ x)


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
    :class:`BuresWassersteinMetric`); ``inner`` / ``dist`` return ``(...)`` or, with
    ``keepdim=True``, ``(..., 1, 1)``.

    Args:
        n: matrix size, a positive int.
        metric: ``"aim"`` (default), ``"lem"``, ``"lcm"``, ``"em"``, ``"bwm"`` (long names
            ``"affine"``, ``"log_euclidean"``, ``"log_cholesky"``, ``"euclidean"``,
            ``"bures_wasserstein"`` too) or an :class:`SPDMetric` instance.

    Raises:
        ValueError: ``n`` not a positive int, or an unknown metric name.

    ``random_base`` / ``base_log_prob`` raise :class:`NotImplementedError` for now (no reference
    density on SPD yet, e.g. a Wishart or wrapped normal at ``I``).

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

    def random_base(self, *size, dtype=None, device=None, generator=None):
        """Not implemented yet: SPD has no reference density in this library so far."""
        raise NotImplementedError("SPD has no base distribution yet (random_base / base_log_prob)")

    def base_log_prob(self, x):
        """Not implemented yet (see :meth:`random_base`)."""
        raise NotImplementedError("SPD has no base distribution yet (random_base / base_log_prob)")

    def extra_repr(self):
        return f"n={self.n}, metric={self.metric!r}"
