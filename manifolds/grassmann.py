"""The Grassmann manifold Gr(n, p) of p-dimensional subspaces of ℝⁿ (orthonormal-basis view),
with its gyrogroup structure."""

from __future__ import annotations

import math
from typing import Hashable

import torch

from ._linalg import sym, sym_funcm
from ._numerics import safe_sqrt
from .base import Manifold
from .stiefel import Stiefel, _check_np, _eye, _frob, polar, reorthonormalize

__all__ = ["Grassmann"]

_EXP_MODES = ("exact", "cayley")


# ---------------------------------------------------------------------------- helpers
def _small(dtype: torch.dtype) -> float:
    """Taylor switch for θ/sin θ and the log's spectral function (dtype-aware, refs/core.md §7.5)."""
    return 1e-2 if dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-3


def _block_exp_apply(y: torch.Tensor, h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``expm(Ω) [y, v]`` for the skew matrix ``Ω = h yᵀ − y hᵀ`` without forming ``n × n`` matrices.

    ``Ω`` maps the span of ``B = [y, h, v]`` into itself: ``Ω B = B K`` with
    ``K = [[−hᵀy, −hᵀh, −hᵀv], [yᵀy, yᵀh, yᵀv], [0, 0, 0]]`` (``(2p + q)`` square), hence
    ``expm(Ω) B = B expm(K)`` exactly, whether or not the columns of ``B`` are independent.
    For orthonormal ``y`` and horizontal ``h`` (``yᵀh = 0``) the first block is Edelman, Arias &
    Smith 1998, Thm 2.3 / Eq. (2.45) with ``A = 0``. ``torch.linalg.matrix_exp`` (Padé,
    scaling and squaring) has a finite backward everywhere, unlike the SVD of ``h``.

    Args:
        y: ``(..., n, p)``; h: ``(..., n, p)``; v: ``(..., n, q)``.

    Returns:
        ``(expm(Ω) y, expm(Ω) v)``: ``(..., n, p)`` and ``(..., n, q)``.
    """
    y, h = torch.broadcast_tensors(y, h)
    batch = torch.broadcast_shapes(y.shape[:-2], v.shape[:-2])
    y = y.expand(batch + y.shape[-2:])
    h = h.expand(batch + h.shape[-2:])
    v = v.expand(batch + v.shape[-2:])
    p, q = y.shape[-1], v.shape[-1]
    b = torch.cat((y, h, v), -1)
    top = -(h.mT @ b)
    mid = y.mT @ b
    bot = torch.zeros(batch + (q, 2 * p + q), dtype=y.dtype, device=y.device)
    k = torch.cat((top, mid, bot), -2)
    e = torch.linalg.matrix_exp(k)
    out = b @ torch.cat((e[..., :p], e[..., 2 * p :]), -1)
    return out[..., :p], out[..., p:]


def _phi(lam: torch.Tensor) -> torch.Tensor:
    """``φ(λ) = θ/(sin θ cos θ)`` with ``cos²θ = λ``: ``g(t)/√(1 − t)``, ``t = 1 − λ``, ``g(t) = asin(√t)/√t``."""
    thr = _small(lam.dtype)
    t = torch.clamp(1 - lam, min=0.0)
    small = t < thr
    ts = torch.where(small, torch.full_like(t, thr), t)
    rt = ts.sqrt()
    g = torch.where(small, 1 + t / 6 + 3 * t * t / 40 + 5 * t**3 / 112, torch.asin(torch.clamp(rt, max=1.0)) / rt)
    return g * torch.rsqrt(1 - t)


def _phi_prime(lam: torch.Tensor) -> torch.Tensor:
    """``dφ/dλ = −(g′(t)/√(1 − t) + g(t)/(2 (1 − t)^{3/2}))``, ``g′(t) = (1/√(1 − t) − g)/(2t)``."""
    thr = _small(lam.dtype)
    t = torch.clamp(1 - lam, min=0.0)
    small = t < thr
    ts = torch.where(small, torch.full_like(t, thr), t)
    rt = ts.sqrt()
    g_big = torch.asin(torch.clamp(rt, max=1.0)) / rt
    g = torch.where(small, 1 + t / 6 + 3 * t * t / 40 + 5 * t**3 / 112, g_big)
    gp = torch.where(small, 1.0 / 6 + 3 * t / 20 + 15 * t * t / 112, (torch.rsqrt(1 - ts) - g_big) / (2 * ts))
    r = torch.rsqrt(1 - t)
    return -(gp * r + 0.5 * g * r**3)


# ---------------------------------------------------------------------------- manifold
class Grassmann(Manifold):
    r"""Grassmann manifold ``Gr(n, p)``: p-dimensional subspaces of ℝⁿ, stored as orthonormal bases.

    A point is any ``y: (..., n, p)`` with ``yᵀy = I_p``; ``y`` and ``y Q`` (``Q ∈ O(p)``)
    represent the same subspace (the ONB / Stiefel-quotient view, ``Gr(n, p) = St(n, p)/O(p)``,
    used by GyroBN-Gr). Tangent vectors are *horizontal lifts* ``u: (..., n, p)`` with
    ``yᵀu = 0``; the lift at ``y Q`` of the same vector is ``u Q``. ``event_shape = (n, p)``,
    ``dim = p(n − p)``. Main reference: Bendokat, Zimmermann & Absil, "A Grassmann manifold
    handbook: basic geometry and computational aspects", Adv. Comput. Math. 50 (2024)
    (arXiv 2011.13699), "Handbook" below; and Edelman, Arias & Smith, SIAM J. Matrix Anal.
    Appl. 20 (1998), §2.5.

    * ``inner(y, u, v) = tr(uᵀv)`` (Handbook §3, the metric of the horizontal lifts; equal to
      ``½ tr(ΔᵤΔᵥ)`` on the projector tangent vectors ``Δ = u yᵀ + y uᵀ``).
    * ``proju(y, u) = u − y yᵀu`` (horizontal projection); ``egrad2rgrad = proju`` (the
      Riemannian gradient of a function of the subspace).
    * ``projx(y) = y (yᵀy)^{-1/2}`` (orthonormalise: polar factor, same subspace).
    * ``expmap(y, u) = y V cos(Σ) Vᵀ + Q sin(Σ) Vᵀ`` for the thin SVD ``u = Q Σ Vᵀ``
      (Edelman et al. 1998, Thm 2.3; Handbook §3), evaluated SVD-free as
      ``[y, u] expm([[0, −uᵀu], [I, 0]]) [I; 0] = expm(u yᵀ − y uᵀ) y`` (a ``2p × 2p``
      ``matrix_exp``; the SVD's backward is NaN at ``u = 0`` and at repeated singular values),
      then one Newton–Schulz re-orthonormalisation step. Returns that representative.
    * ``logmap(y, z)``: Handbook Alg. 5.3 in the single-SVD form of the remark in §5.2:
      ``zᵀy = Q̃ S̃ R̃ᵀ``, ``C = (z − y yᵀz) Q̃`` (columns ``c_i`` of norm ``sin θ_i``),
      ``θ_i = atan2(|c_i|, s̃_i)`` (accurate for small and large angles, no bare ``acos``),
      ``log = C diag(θ/sin θ) R̃ᵀ``. When all principal angles are ``<= 60°`` the same tangent
      vector is computed SVD-free as ``(z − y yᵀz)·M·φ(MᵀM)``, ``M = zᵀy``,
      ``φ(λ) = θ/(sin θ cos θ)`` at ``cos²θ = λ``, through :func:`manifolds._linalg.sym_funcm`
      (Daleckii–Krein backward): gradients are then finite also at ``z = y`` and at repeated
      principal angles. Beyond 60° the SVD path is used (its backward is NaN at repeated
      principal angles). Invariant under ``z → z Q``; equivariant ``log(yQ, z) = log(y, z) Q``.
      **Cut locus** (a principal angle ``θ_i = π/2``, i.e. ``z`` contains a direction
      orthogonal to span(y)): the minimising geodesic is not unique (``±`` for each such
      ``c_i``); the vector returned is the one fixed by the singular vectors LAPACK returns,
      and still satisfies ``expmap(y, logmap(y, z)) ≅ z`` and ``‖logmap‖ = dist``.
    * ``dist(y, z) = √(Σ θ_i²)`` with principal angles ``θ_i = atan2(sin θ_i, cos θ_i)``:
      cosines from ``svdvals(yᵀz)`` (descending), sines from ``svdvals(z − y yᵀz)``
      (descending, paired in reverse order) (Björck & Golub, Math. Comp. 27 (1973);
      Handbook §5). Accurate at every angle, finite
      gradient everywhere (singular-value gradients only), zero gradient at ``y ≅ z``.
    * ``transp(y, z, v)``: parallel transport along the minimising geodesic, in closed form
      ``expm(Ω) v`` with ``Ω = u yᵀ − y uᵀ``, ``u = logmap(y, z)`` (transvection; Edelman et
      al. 1998, Thm 2.4; Handbook §3), expressed at the given representative ``z``:
      ``(expm(Ω) v)(y*ᵀ z)`` where ``y* = expm(Ω) y``. An isometry.
    * ``to_projector(y) = y yᵀ``, ``from_projector(P)`` (top-p eigenvectors).
    * ``random`` / ``random_base``: uniform (Haar) subspaces.

    **Gyrogroup** (Nguyen, "The gyro-structure of some matrix manifolds", NeurIPS 2022;
    Nguyen & Yang, ICML 2023; Chen et al., "Gyrogroup batch normalization", ICLR 2025,
    Tab. 1): identity ``I_{n,p} = [I_p; 0]``, ``a ⊕ b = expm(Ω_a) b`` with
    ``Ω_a = H Iᵀ − I Hᵀ``, ``H = logmap(I_{n,p}, a)``; ``⊖a = expm(−Ω_a) I_{n,p}``;
    ``t ⊗ a = expm(t Ω_a) I_{n,p}``; ``gyr[a, b] c = ⊖(a ⊕ b) ⊕ (a ⊕ (b ⊕ c))``. See
    :meth:`gyro_add`. Results are subspaces (compare them through :meth:`to_projector` or
    :meth:`dist`). Well defined away from the cut locus of ``I_{n,p}`` (some principal angle
    between ``a`` and ``I_{n,p}`` equal to π/2). Which axioms hold (tested in
    ``tests/test_gyro.py``): left identity, left inverse, left cancellation
    ``a ⊕ (⊖a ⊕ b) = b`` (hence gyroassociativity with the ``gyr`` above), ``1 ⊗ a = a``,
    ``(s + t) ⊗ a = s ⊗ a ⊕ t ⊗ a``, ``dist(a, b) = dist(I_{n,p}, ⊖a ⊕ b)``, gyrations are
    isometries, and ``gyr[a, ⊖a] = gyr[⊖a, a] = id`` (pseudo-reduction). The left loop
    property ``gyr[a, b] = gyr[a ⊕ b, b]`` does **not** hold (Chen et al. 2025 call the
    structure non-reductive), so this is not a gyrogroup in Ungar's strict sense.

    ``origin_point`` (used by the optimizers' geometric weight decay) is ``I_{n,p}``.

    Args:
        n: ambient dimension, a positive int.
        p: subspace dimension, ``1 <= p <= n``.

    Raises:
        ValueError: ``n`` or ``p`` not a positive int, or ``p > n``.

    Example:
        >>> Gr = Grassmann(5, 2)
        >>> y, z = Gr.random(2, 5, 2, dtype=torch.float64)
        >>> float(Gr.dist(Gr.expmap(y, Gr.logmap(y, z)), z)) < 1e-10
        True
    """

    name = "Grassmann"
    reversible = False
    ndim = 2

    def __init__(self, n: int, p: int):
        super().__init__()
        _check_np(n, p, "Grassmann")
        self.n, self.p = n, p
        self.event_shape = (n, p)
        self.dim = p * (n - p)

    def _key(self) -> Hashable:
        return (type(self).__name__, self.event_shape)

    # ------------------------------------------------------------------ checks
    # a subspace is given by an orthonormal basis: the Stiefel point check
    _check_point_on_manifold = Stiefel._check_point_on_manifold

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=0.0):
        if u.numel() == 0:
            return True, None
        err = (x.mT @ u).abs().amax()
        tol = atol + rtol * float(u.abs().amax())
        if err > tol:
            return False, f"tangent vectors must be horizontal (yᵀu = 0): max |yᵀu| = {float(err):.3g} > {tol:.3g}"
        return True, None

    # ------------------------------------------------------------------ metric
    def inner(self, x, u, v=None, *, keepdim=False):
        """``tr(uᵀv)``; ``(...)``, or ``(..., 1, 1)`` with ``keepdim``."""
        r = _frob(u, u if v is None else v)
        return r[..., None, None] if keepdim else r

    def proju(self, x, u):
        """Horizontal projection ``u − y yᵀu``; ``(..., n, p)``."""
        return u - x @ (x.mT @ u)

    def egrad2rgrad(self, x, u):
        """Riemannian gradient ``u − y yᵀu`` (for a loss that depends on the subspace only)."""
        return self.proju(x, u)

    def projx(self, x):
        """Orthonormal basis ``x (xᵀx)^{-1/2}`` of the column span of a full-rank ``x``."""
        return polar(x)

    def principal_angles(self, x, y):
        """Principal angles ``θ_1 <= ... <= θ_p`` in ``[0, π/2]`` between span(x) and span(y).

        Args:
            x, y: ``(..., n, p)`` orthonormal bases.

        Returns:
            ``(..., p)`` ascending, ``atan2(sin, cos)`` of the singular values of ``y − x xᵀy``
            (ascending) and of ``xᵀy`` (descending) (Björck & Golub 1973). Finite gradients.
        """
        c = torch.linalg.svdvals(x.mT @ y)
        s = torch.linalg.svdvals(y - x @ (x.mT @ y)).flip(-1)
        return torch.atan2(s, c)

    def dist(self, x, y, *, keepdim=False):
        """Geodesic distance ``√(Σ θ_i²)`` over the principal angles; ``(...)`` or ``(..., 1, 1)``."""
        th = self.principal_angles(x, y)
        r = safe_sqrt((th * th).sum(-1))
        return r[..., None, None] if keepdim else r

    def dist2(self, x, y, *, keepdim=False):
        """Squared distance ``Σ θ_i²`` (smooth at ``x ≅ y``)."""
        th = self.principal_angles(x, y)
        r = (th * th).sum(-1)
        return r[..., None, None] if keepdim else r

    # ------------------------------------------------------------------ exp / log
    def expmap(self, x, u):
        """Riemannian exponential (Edelman et al. 1998, Thm 2.3), representative ``expm(u xᵀ − x uᵀ) x``.

        Args:
            x: ``(..., n, p)`` point; u: ``(..., n, p)`` horizontal tangent vector at ``x``.

        Returns:
            ``(..., n, p)`` orthonormal basis; always orthonormal (``expm`` of a skew matrix),
            even for a non-horizontal ``u`` (then it is not the geodesic).
        """
        x, u = torch.broadcast_tensors(x, u)
        p = self.p
        k = torch.cat((torch.cat((-(u.mT @ x), -(u.mT @ u)), -1), torch.cat((x.mT @ x, x.mT @ u), -1)), -2)
        w = torch.linalg.matrix_exp(k)[..., :p]
        return reorthonormalize(torch.cat((x, u), -1) @ w)

    def expmap_transp(self, x, u, v):
        """``(expmap(x, u), v parallel-transported along it)`` from one ``3p × 3p`` exponential."""
        y, w = _block_exp_apply(x, u, v)
        return reorthonormalize(y), w

    def transp_follow_expmap(self, x, u, v):
        """Parallel transport ``expm(u xᵀ − x uᵀ) v`` (Edelman et al. 1998, Thm 2.4), lift at ``expmap(x, u)``."""
        return _block_exp_apply(x, u, v)[1]

    def retr_transp(self, x, u, v):
        return self.expmap_transp(x, u, v)

    def logmap(self, x, y):
        """Riemannian logarithm: horizontal ``u`` at ``x`` with ``expmap(x, u) ≅ y``, ``‖u‖ = dist(x, y)``.

        Handbook Alg. 5.3, single-SVD form; SVD-free Daleckii–Krein path when all principal
        angles are ``<= 60°`` (see the class docstring, also for the cut-locus choice).

        Args:
            x, y: ``(..., n, p)`` orthonormal bases.

        Returns:
            ``(..., n, p)`` horizontal at ``x``.
        """
        x, y = torch.broadcast_tensors(x, y)
        p = self.p
        eye = _eye(p, x)
        m = y.mT @ x  # = Q̃ S̃ R̃ᵀ
        w = y - x @ (x.mT @ y)  # horizontal part of y
        mtm = sym(m.mT @ m)  # R̃ S̃² R̃ᵀ, eigenvalues cos²θ_i
        with torch.no_grad():
            lam_min = torch.linalg.eigvalsh(mtm)[..., :1]
        use_eig = (lam_min >= 0.25).unsqueeze(-1)  # all θ_i <= 60°; (..., 1, 1)
        # SVD-free branch (sanitised input where unused: the identity).
        g = torch.where(use_eig, mtm, eye)
        u_eig = w @ (m @ sym_funcm(g, _phi, _phi_prime))
        # SVD branch (sanitised input where unused: distinct singular values).
        m0 = torch.diag(torch.arange(1, p + 1, dtype=x.dtype, device=x.device) / p)
        q, s, rh = torch.linalg.svd(torch.where(use_eig, m0, m))
        c = w @ q
        sn = torch.linalg.vector_norm(c, dim=-2)  # sin θ_i
        theta = torch.atan2(sn, s)
        small = theta < _small(x.dtype)
        scale = torch.where(small, 1 + theta * theta / 6, theta / torch.where(small, torch.ones_like(sn), sn))
        u_svd = (c * scale.unsqueeze(-2)) @ rh
        return torch.where(use_eig, u_eig, u_svd)

    def transp(self, x, y, v):
        """Parallel transport of ``v`` from ``x`` to ``y`` along the minimising geodesic, lift at ``y``.

        Args:
            x, y: ``(..., n, p)`` points; v: ``(..., n, p)`` horizontal at ``x``.

        Returns:
            ``(..., n, p)`` horizontal at ``y`` (the given representative).
        """
        u = self.logmap(x, y)
        ys, vs = _block_exp_apply(x, u, v)
        return self.proju(y, vs @ (ys.mT @ y))

    # ------------------------------------------------------------------ projectors
    @staticmethod
    def to_projector(x: torch.Tensor) -> torch.Tensor:
        """Orthogonal projector ``P = y yᵀ`` onto span(y); ``(..., n, p) -> (..., n, n)``.

        The same for every representative ``y Q``; the representation used by geomstats'
        ``Grassmannian`` (Handbook §2).
        """
        return sym(x @ x.mT)

    def from_projector(self, proj: torch.Tensor) -> torch.Tensor:
        """Orthonormal basis of the range of a rank-p projector; ``(..., n, n) -> (..., n, p)``.

        The eigenvectors of the ``p`` largest eigenvalues of ``sym(P)`` (descending order).
        The basis is defined up to ``O(p)``; its gradient is not (the eigenvalue ``1`` is
        repeated), so do not differentiate through this function.

        Raises:
            ValueError: ``proj`` is not ``(..., n, n)``.
        """
        if proj.dim() < 2 or tuple(proj.shape[-2:]) != (self.n, self.n):
            raise ValueError(f"from_projector expects (..., {self.n}, {self.n}) projectors, got shape {tuple(proj.shape)}")
        _, vec = torch.linalg.eigh(sym(proj))
        return vec[..., -self.p :].flip(-1)

    # ------------------------------------------------------------------ sampling
    def random(self, *size, dtype=None, device=None, generator=None):
        """Uniform subspaces (Haar orthonormal bases, QR with sign fix); ``size`` = ``(..., n, p)``."""
        size = self._check_size(size)
        g = torch.randn(size, dtype=dtype, device=device, generator=generator)
        q, r = torch.linalg.qr(g)
        d = torch.diagonal(r, dim1=-2, dim2=-1)
        return q * torch.where(d < 0, -torch.ones_like(d), torch.ones_like(d)).unsqueeze(-2)

    random_uniform = random

    def random_base(self, *size, dtype=None, device=None, generator=None):
        """The base distribution: uniform w.r.t. the Riemannian volume."""
        return self.random(*size, dtype=dtype, device=device, generator=generator)

    def log_volume(self) -> float:
        """``log Vol(Gr(n, p)) = Σ_{k=n−p+1}^{n} log|S^{k−1}| − Σ_{k=1}^{p} log|S^{k−1}|``.

        Quotient of the canonical-metric volumes of ``St(n, p)`` and ``O(p)`` (Riemannian
        submersion, Edelman et al. 1998 §2.5); ``Gr(2, 1) = ℝP¹`` has length π, ``Gr(3, 1)``
        area 2π.
        """

        def ls(k):
            return math.log(2.0) + 0.5 * k * math.log(math.pi) - math.lgamma(0.5 * k)

        return sum(ls(k) for k in range(self.n - self.p + 1, self.n + 1)) - sum(ls(k) for k in range(1, self.p + 1))

    def base_log_prob(self, x):
        """Uniform log-density ``−log Vol(Gr(n, p))``, shape ``(...)``."""
        return torch.full(x.shape[:-2], -self.log_volume(), dtype=x.dtype, device=x.device)

    # ------------------------------------------------------------------ gyrogroup
    def gyro_identity(self, like: torch.Tensor) -> torch.Tensor:
        """The identity ``I_{n,p} = [I_p; 0]`` with the batch shape, dtype and device of ``like: (..., n, p)``."""
        e = torch.eye(self.n, self.p, dtype=like.dtype, device=like.device)
        return e.expand(like.shape[:-2] + e.shape).clone()

    origin_point = gyro_identity

    def gyro_log(self, a: torch.Tensor) -> torch.Tensor:
        """``H_a = logmap(I_{n,p}, a)``: the exponential coordinates of ``a``; ``(..., n, p)``, top p rows 0."""
        return self.logmap(self.gyro_identity(a), a)

    @staticmethod
    def _check_mode(exp_mode: str) -> None:
        if exp_mode not in _EXP_MODES:
            raise ValueError(f"exp_mode must be one of {_EXP_MODES}, got {exp_mode!r}")

    def _apply_exp(self, h: torch.Tensor, v: torch.Tensor, exp_mode: str) -> torch.Tensor:
        """``expm(Ω) v`` (or its Cayley approximation) for ``Ω = h Iᵀ − I hᵀ``."""
        self._check_mode(exp_mode)
        eye_np = self.gyro_identity(h)
        if exp_mode == "exact":
            return reorthonormalize(_block_exp_apply(eye_np, h, v)[1])
        omega = h @ eye_np.mT - eye_np @ h.mT
        eye = _eye(self.n, h)
        # Cayley transform (I − Ω/2)⁻¹(I + Ω/2) = expm(Ω) + O(‖Ω‖³): orthogonal, approximate.
        return torch.linalg.solve(eye - 0.5 * omega, v + 0.5 * (omega @ v))

    def gyro_add(self, a: torch.Tensor, b: torch.Tensor, *, exp_mode: str = "exact") -> torch.Tensor:
        """Gyroaddition ``a ⊕ b = expm(Ω_a) b`` (Nguyen 2022; Chen et al. 2025, Tab. 1).

        ``Ω_a = H Iᵀ − I Hᵀ ∈ so(n)`` with ``H = logmap(I_{n,p}, a)`` (GyroBN's
        ``Ω_P = [Log_Ĩ(P̃), Ĩ]``).

        Args:
            a, b: ``(..., n, p)`` orthonormal bases (broadcast).
            exp_mode: ``"exact"`` (default; ``expm`` evaluated exactly through a ``3p × 3p``
                ``matrix_exp``) or ``"cayley"`` (the Cayley transform
                ``(I − Ω/2)⁻¹(I + Ω/2)``, an ``O(‖Ω‖³)`` approximation; the gyrogroup laws then
                hold only approximately).

        Returns:
            ``(..., n, p)`` orthonormal basis of the subspace ``a ⊕ b``.

        Raises:
            ValueError: unknown ``exp_mode``.
        """
        self._check_mode(exp_mode)
        return self._apply_exp(self.gyro_log(a), b, exp_mode)

    def gyro_inv(self, a: torch.Tensor, *, exp_mode: str = "exact") -> torch.Tensor:
        """Gyroinverse ``⊖a = expm(−Ω_a) I_{n,p}`` (= ``expmap(I_{n,p}, −H_a)``); ``(..., n, p)``."""
        self._check_mode(exp_mode)
        return self._apply_exp(-self.gyro_log(a), self.gyro_identity(a), exp_mode)

    def gyro_scalar_mul(self, t, a: torch.Tensor, *, exp_mode: str = "exact") -> torch.Tensor:
        """Scalar gyromultiplication ``t ⊗ a = expm(t Ω_a) I_{n,p}`` (= ``expmap(I_{n,p}, t H_a)``).

        Args:
            t: scalar or ``(...,)`` tensor.
            a: ``(..., n, p)``.

        Returns:
            ``(..., n, p)``.
        """
        self._check_mode(exp_mode)
        h = self._expand_batch(t, a) * self.gyro_log(a)
        return self._apply_exp(h, self.gyro_identity(h), exp_mode)

    def gyration(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, *, exp_mode: str = "exact") -> torch.Tensor:
        """Gyration ``gyr[a, b] c = ⊖(a ⊕ b) ⊕ (a ⊕ (b ⊕ c))`` (the gyrator identity, Ungar 2008, Ch. 2).

        Acts on ``c`` by the orthogonal matrix ``expm(−Ω_{a⊕b}) expm(Ω_a) expm(Ω_b)``, hence an
        isometry of ``Gr(n, p)``. ``a, b, c: (..., n, p)`` → ``(..., n, p)``.
        """
        ab = self.gyro_add(a, b, exp_mode=exp_mode)
        rhs = self.gyro_add(a, self.gyro_add(b, c, exp_mode=exp_mode), exp_mode=exp_mode)
        return self.gyro_add(self.gyro_inv(ab, exp_mode=exp_mode), rhs, exp_mode=exp_mode)

    def extra_repr(self):
        return f"n={self.n}, p={self.p}"
