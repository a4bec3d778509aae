"""The Stiefel manifold St(n, p) of orthonormal p-frames in ℝⁿ, with the embedded (Euclidean) metric."""

from __future__ import annotations

import math
from typing import Hashable

import torch

from ._linalg import sym, sym_invsqrtm
from .base import Manifold

__all__ = ["Stiefel"]


# ---------------------------------------------------------------------------- shared helpers
def _check_np(n, p, cls: str):
    for name, v in (("n", n), ("p", p)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{cls} {name} must be a positive int, got {v!r}")
    if p > n:
        raise ValueError(f"{cls} needs p <= n (p orthonormal columns in R^n), got n={n}, p={p}")


def _eye(p: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(p, dtype=like.dtype, device=like.device)


def _frob(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Frobenius inner product over the last two dimensions, ``(...)``."""
    return (u * v).sum((-2, -1))


def polar(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal polar factor ``x (xᵀx)^{-1/2}`` of a full-rank ``(..., n, p)`` matrix.

    The closest matrix with orthonormal columns in the Frobenius norm (Higham, *Functions of
    Matrices*, 2008, Ch. 8, polar decomposition). The inverse square root goes through
    :func:`manifolds._linalg.sym_invsqrtm` (Daleckii–Krein backward), so the gradient is finite
    on the manifold itself, where all singular values are 1 (an SVD-based polar factor has a
    NaN gradient there). A rank-deficient ``x`` gives a finite but meaningless result (the
    eigenvalues of ``xᵀx`` are clamped at ``eps·λ_max``).
    """
    return x @ sym_invsqrtm(x.mT @ x)


def reorthonormalize(y: torch.Tensor) -> torch.Tensor:
    """One Newton–Schulz step ``y (3I − yᵀy)/2`` towards the polar factor of ``y``.

    For ``yᵀy = I + E`` the result has ``‖yᵀy − I‖ = O(‖E‖²)`` (Newton–Schulz iteration, Higham 2008, Ch. 8):
    it removes the rounding drift of ``expmap`` without an eigendecomposition.
    """
    p = y.shape[-1]
    return y @ (1.5 * _eye(p, y) - 0.5 * (y.mT @ y))


# ---------------------------------------------------------------------------- manifold
class Stiefel(Manifold):
    r"""Orthonormal frames ``St(n, p) = {X ∈ ℝⁿˣᵖ : XᵀX = I_p}`` with the embedded metric.

    Points ``x: (..., n, p)``; tangent vectors are ambient ``u: (..., n, p)`` with ``xᵀu``
    skew-symmetric. ``event_shape = (n, p)``, ``dim = np − p(p+1)/2``. Metric: the Euclidean
    (Frobenius) one of ℝⁿˣᵖ restricted to the tangent spaces, ``<u, v>_x = tr(uᵀv)``
    (Edelman, Arias & Smith, "The geometry of algorithms with orthogonality constraints",
    SIAM J. Matrix Anal. Appl. 20 (1998), §2.2, "Euclidean metric"; Absil, Mahony &
    Sepulchre 2008, §3.6.1).

    * ``proju(x, u) = u − x sym(xᵀu)`` (Absil et al. 2008, Eq. (3.35)); ``egrad2rgrad = proju``
      (the metric is the embedded one).
    * ``expmap`` is exact: Edelman et al. 1998, Eq. (2.45),
      ``Y(t) = [X, U] expm(t [[A, −S], [I, A]]) [I; 0] expm(−tA)``, ``A = XᵀU``, ``S = UᵀU``,
      with ``torch.linalg.matrix_exp`` of the ``2p × 2p`` block (differentiable everywhere,
      including ``u = 0``), followed by one Newton–Schulz re-orthonormalisation step.
    * ``retr`` is the **polar** retraction ``polar(x + u) = (x + u)(I + uᵀu)^{-1/2}``
      (Absil et al. 2008, Ex. 4.1.3); the optimizers use ``expmap`` (exact) via
      ``expmap_transp``; ``retr_transp`` pairs the polar retraction with the projection.
    * ``transp(x, y, v) = proju(y, v)``: a **vector transport** by projection (Absil et al.
      2008, §8.1.3), *not* parallel transport; it is not an isometry in general.
    * ``logmap`` and ``dist`` raise :class:`NotImplementedError`: the Stiefel logarithm has no
      closed form (for the embedded metric it needs an iterative shooting or matrix-algebraic
      solver, Zimmermann & Hüper, SIAM J. Matrix Anal. Appl. 43 (2022), with no global
      convergence guarantee), so :meth:`geodesic` between two points is unavailable too.
    * ``projx`` is the orthonormal polar factor ``x (xᵀx)^{-1/2}`` (closest point in the
      Frobenius norm); gradients finite on the manifold (Daleckii–Krein, see :func:`polar`).
    * ``random`` / ``random_base`` sample the Haar (uniform) distribution: QR of a Gaussian
      ``n × p`` matrix with the signs of ``diag(R)`` moved into ``Q`` (Mezzadri, "How to
      generate random matrices from the classical compact groups", Notices AMS 54 (2007));
      ``base_log_prob = −log Vol(St(n, p))`` for the embedded metric.

    Args:
        n: ambient dimension, a positive int.
        p: number of columns, ``1 <= p <= n``.

    Raises:
        ValueError: ``n`` or ``p`` not a positive int, or ``p > n``.

    Example:
        >>> St = Stiefel(5, 2)
        >>> x = St.random(3, 5, 2, dtype=torch.float64)
        >>> u = St.proju(x, torch.randn(3, 5, 2, dtype=torch.float64))
        >>> bool(St.check_point(St.expmap(x, u))[0])
        True
    """

    name = "Stiefel"
    reversible = False
    ndim = 2

    def __init__(self, n: int, p: int):
        super().__init__()
        _check_np(n, p, "Stiefel")
        self.n, self.p = n, p
        self.event_shape = (n, p)
        self.dim = n * p - p * (p + 1) // 2

    def _key(self) -> Hashable:
        return (type(self).__name__, self.event_shape)

    # ------------------------------------------------------------------ checks
    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=0.0):
        if x.numel() == 0:
            return True, None
        err = (x.mT @ x - _eye(self.p, x)).abs().amax()
        if err > atol + rtol:
            return False, f"points must have orthonormal columns: max |xᵀx − I| = {float(err):.3g} > {atol + rtol:.3g}"
        return True, None

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=0.0):
        if u.numel() == 0:
            return True, None
        a = x.mT @ u
        err = (a + a.mT).abs().amax()
        tol = atol + rtol * float(u.abs().amax())
        if err > tol:
            return False, f"tangent vectors must have xᵀu skew-symmetric: max |xᵀu + uᵀx| = {float(err):.3g} > {tol:.3g}"
        return True, None

    # ------------------------------------------------------------------ metric
    def inner(self, x, u, v=None, *, keepdim=False):
        """``tr(uᵀv)``; ``(...)``, or ``(..., 1, 1)`` with ``keepdim``."""
        r = _frob(u, u if v is None else v)
        return r[..., None, None] if keepdim else r

    def proju(self, x, u):
        """Orthogonal projection ``u − x sym(xᵀu)`` onto the tangent space at ``x`` (``(..., n, p)``)."""
        return u - x @ sym(x.mT @ u)

    def egrad2rgrad(self, x, u):
        """Riemannian gradient of the embedded metric: ``proju(x, u)``."""
        return self.proju(x, u)

    def projx(self, x):
        """Closest orthonormal frame ``x (xᵀx)^{-1/2}`` (polar factor); ``x`` must have full column rank."""
        return polar(x)

    def dist(self, x, y, *, keepdim=False):
        """Not available: the geodesic distance needs the Stiefel logarithm (no closed form).

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError(
            "Stiefel.dist: the embedded-metric geodesic distance needs the Stiefel logarithm, "
            "which has no closed form (iterative solvers only, Zimmermann & Hüper 2022); "
            "use a chordal distance ‖x − y‖_F or Grassmann.dist for subspaces"
        )

    # ------------------------------------------------------------------ exp / log / retraction
    def expmap(self, x, u):
        """Exact exponential map (Edelman, Arias & Smith 1998, Eq. (2.45)).

        Args:
            x: ``(..., n, p)`` point.
            u: ``(..., n, p)`` tangent vector at ``x``.

        Returns:
            ``(..., n, p)`` point ``[x, u] expm([[A, −S], [I, A]]) [I; 0] expm(−A)`` with
            ``A = xᵀu``, ``S = uᵀu``, re-orthonormalised by one Newton–Schulz step.
        """
        x, u = torch.broadcast_tensors(x, u)
        a = x.mT @ u
        s = u.mT @ u
        eye = _eye(self.p, x).expand_as(a)
        k = torch.cat((torch.cat((a, -s), -1), torch.cat((eye, a), -1)), -2)
        w = torch.linalg.matrix_exp(k)[..., : self.p]
        y = torch.cat((x, u), -1) @ w @ torch.linalg.matrix_exp(-a)
        return reorthonormalize(y)

    def logmap(self, x, y):
        """Not available: the Stiefel logarithm has no closed form.

        Raises:
            NotImplementedError: always (see the class docstring).
        """
        raise NotImplementedError(
            "Stiefel.logmap: the Stiefel logarithm has no closed form (embedded metric: iterative "
            "algorithms of Zimmermann & Hüper 2022 without a global convergence guarantee); not provided"
        )

    def retr(self, x, u):
        """Polar retraction ``polar(x + u)`` (Absil et al. 2008, Ex. 4.1.3); ``(..., n, p)``."""
        return polar(x + u)

    def transp(self, x, y, v):
        """Vector transport by projection, ``proju(y, v)`` (not parallel transport); ``(..., n, p)``."""
        return self.proju(y, v)

    def transp_follow_expmap(self, x, u, v):
        """``proju(expmap(x, u), v)`` (projection vector transport)."""
        return self.proju(self.expmap(x, u), v)

    def expmap_transp(self, x, u, v):
        """``(y, proju(y, v))`` with ``y = expmap(x, u)``."""
        y = self.expmap(x, u)
        return y, self.proju(y, v)

    def retr_transp(self, x, u, v):
        """``(y, proju(y, v))`` with ``y = retr(x, u)`` (polar)."""
        y = self.retr(x, u)
        return y, self.proju(y, v)

    def transp_follow_retr(self, x, u, v):
        return self.proju(self.retr(x, u), v)

    # ------------------------------------------------------------------ sampling
    def random(self, *size, dtype=None, device=None, generator=None):
        """Haar-distributed frames; ``size`` is the full shape ``(..., n, p)``.

        QR of a standard Gaussian matrix, columns of ``Q`` multiplied by ``sign(diag R)``
        (Mezzadri 2007), which makes the distribution exactly uniform.
        """
        size = self._check_size(size)
        g = torch.randn(size, dtype=dtype, device=device, generator=generator)
        q, r = torch.linalg.qr(g)
        d = torch.diagonal(r, dim1=-2, dim2=-1)
        sign = torch.where(d < 0, -torch.ones_like(d), torch.ones_like(d))
        return q * sign.unsqueeze(-2)

    random_uniform = random

    def random_base(self, *size, dtype=None, device=None, generator=None):
        """The base distribution: Haar (uniform w.r.t. the Riemannian volume)."""
        return self.random(*size, dtype=dtype, device=device, generator=generator)

    def log_volume(self) -> float:
        """``log Vol(St(n, p))`` for the embedded metric.

        ``Vol = 2^{p(p−1)/4} ∏_{k=n−p+1}^{n} |S^{k−1}|``, ``|S^{k−1}| = 2π^{k/2}/Γ(k/2)``: the
        product is the volume for the canonical metric (fibration ``St(n, p) → S^{n−1}``,
        Edelman et al. 1998 §2.3; James 1954), and the embedded metric stretches each of the
        ``p(p−1)/2`` skew directions ``xᵀu`` by ``√2``. ``St(n, 1)`` is the sphere ``S^{n−1}``;
        ``St(2, 2) = O(2)`` has volume ``4√2 π``.
        """
        lv = 0.25 * self.p * (self.p - 1) * math.log(2.0)
        for k in range(self.n - self.p + 1, self.n + 1):
            lv += math.log(2.0) + 0.5 * k * math.log(math.pi) - math.lgamma(0.5 * k)
        return lv

    def base_log_prob(self, x):
        """Uniform log-density ``−log Vol(St(n, p))``, shape ``(...)``."""
        return torch.full(x.shape[:-2], -self.log_volume(), dtype=x.dtype, device=x.device)

    def extra_repr(self):
        return f"n={self.n}, p={self.p}"
