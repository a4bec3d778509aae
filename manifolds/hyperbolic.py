r"""Spaces of constant curvature κ in the κ-stereographic model, and hyperbolic space in the hyperboloid model.

* :class:`Stereographic` — the κ-stereographic model of the space of constant sectional
  curvature κ (any sign) on ``𝔰ᵈ_κ = {x ∈ ℝᵈ : κ|x|² > −1}`` with the conformal metric
  ``g_x = λ_x² I``, ``λ_x = 2 / (1 + κ|x|²)``, and its gyrovector-space structure
  (Möbius addition, gyrations, Möbius scalar multiplication). κ < 0: the Poincaré ball of
  radius ``1/√−κ``; κ = 0: Euclidean space ℝᵈ (with the metric ``4 I``, so that distances
  are ``2|x − y|``); κ > 0: the stereographic projection of the sphere of radius ``1/√κ``
  (all of ℝᵈ; the projection pole, the antipode of the origin, is the point at infinity).
  Sources: G. Bachmann, G. Bécigneul & O.-E. Ganea, "Constant Curvature Graph Convolutional
  Networks", ICML 2020, §2 (eq. (3)–(8)) and App. A–B; O. Skopek, O.-E. Ganea & G. Bécigneul,
  "Mixed-curvature Variational Autoencoders", ICLR 2020, §2 and App. B; A. Ungar,
  *Analytic Hyperbolic Geometry and Albert Einstein's Special Theory of Relativity* (2008),
  ch. 3 and 6; O. Ganea, G. Bécigneul & T. Hofmann, "Hyperbolic Neural Networks",
  NeurIPS 2018, §2 (eq. (3)–(6), Lemma 2).
* :class:`PoincareBall` (``c = −κ > 0``) and :class:`SphereProjection` (``κ = c > 0``) are
  :class:`Stereographic` with a curvature of fixed sign (softplus-parametrised when learnable).
* :class:`Hyperboloid` — the Lorentz model ``{x ∈ ℝᵈ⁺¹ : ⟨x, x⟩_L = −1/c, x₀ > 0}``,
  ``⟨x, y⟩_L = −x₀y₀ + Σᵢ xᵢyᵢ``. Source: M. Nickel & D. Kiela, "Learning Continuous
  Hierarchies in the Lorentz Model of Hyperbolic Geometry", ICML 2018, §3.

Both carry the wrapped normal at the origin as base distribution (Y. Nagano, S. Yamaguchi,
Y. Fujita & M. Koyama, "A Wrapped Normal Distribution on Hyperbolic Space for
Gradient-Based Learning", ICML 2019, eq. (7); E. Mathieu et al., "Continuous Hierarchical
Representations with Poincaré Variational Auto-Encoders", NeurIPS 2019, App. B); for κ > 0
its radius is truncated at the cut locus (see :meth:`Stereographic.random`).

**Curvature-smooth special functions.** Every κ-dependent trigonometric function is written
as ``f_κ(t) = t · F(κ t²)`` with ``F`` analytic in ``s = κt²``:
``tan_κ(t)/t = tan(√s)/√s`` (s > 0), ``tanh(√−s)/√−s`` (s < 0), ``1 + s/3 + 2s²/15 + 17s³/315``
(|s| small); ``arsin_κ(y)/y = atan2(√s, √(1 − s))/√s``, ``asinh(√−s)/√−s``,
``1 + s/6 + 3s²/40 + 5s³/112``; ``artan_κ(y) = arsin_κ(y / √(1 + κy²))``. The three branches
are joined with the double-``where`` trick below a dtype-dependent threshold, so values and
gradients are finite and smooth through κ = 0 (also w.r.t. a learnable κ) and at the origin,
and no Python ``if`` ever looks at a tensor value (geoopt's ``tan_k`` does ``if torch.all(...)``).

**Numerics.** Distances use the chord form
``d(x, y) = 2 arsin_κ(|x − y| / √((1 + κ|x|²)(1 + κ|y|²)))`` — equal to geoopt's
``2 artan_κ(|(−x) ⊕ y|)`` (Bachmann et al. 2020, eq. (6)) — with the difference ``x − y``
computed directly: accurate for close points in float32 and near the ball's boundary. For
κ > 0 the denominator ``D = 1 + 2κ⟨x, y⟩ + κ²|x|²|y|²`` of Möbius addition, which vanishes at
the antipode, is evaluated as the sum of squares
``(κ|(1+κ|y|²)x + (1+κ|x|²)y|² + (1 − κ²|x|²|y|²)²) / ((1+κ|x|²)(1+κ|y|²))`` (the squared
chord of the antipodal points on the sphere), so ``d → π/√κ`` at the antipode with an
absolute error of a few ulps instead of √eps. Nothing in the geometric verbs synchronises
with the host.
"""

from __future__ import annotations

import math
from typing import Hashable, Union

import torch
import torch.nn.functional as F

from ._numerics import dot, safe_norm, safe_sqrt
from .base import Manifold

__all__ = ["Stereographic", "PoincareBall", "SphereProjection", "Hyperboloid"]

Scalar = Union[float, torch.Tensor]

# ------------------------------------------------------------------ private helpers
_LOW = (torch.float16, torch.bfloat16, torch.float32)


def _small_thr(dtype: torch.dtype) -> float:
    """Below this argument ``t`` the f(t)/t helpers use their Taylor series (error < eps)."""
    return 1e-2 if dtype in _LOW else 1e-3


def _small_s(dtype: torch.dtype) -> float:
    """Below ``|s|`` (s = κt²) the curvature-smooth helpers use 4 Taylor terms (error ≲ eps)."""
    return 1e-2 if dtype in _LOW else 1e-4


def _boundary_margin(dtype: torch.dtype) -> float:
    """Relative distance to the ball's boundary kept by ``projx`` (10 ulps of 1)."""
    return 10.0 * torch.finfo(dtype).eps


def _tiny(t: torch.Tensor) -> float:
    return torch.finfo(t.dtype).tiny


def _split_small(t: torch.Tensor):
    small = t.abs() < _small_thr(t.dtype)
    return small, torch.where(small, torch.ones_like(t), t)


def _sinhc(t: torch.Tensor) -> torch.Tensor:
    """``sinh(t) / t`` (1 at 0): Taylor ``1 + t²/6 + t⁴/120`` near 0."""
    small, ts = _split_small(t)
    t2 = t * t
    return torch.where(small, 1 + t2 / 6 + t2 * t2 / 120, torch.sinh(ts) / ts)


def _asinhc(t: torch.Tensor) -> torch.Tensor:
    """``asinh(t) / t`` (1 at 0): Taylor ``1 − t²/6 + 3t⁴/40`` near 0."""
    small, ts = _split_small(t)
    t2 = t * t
    return torch.where(small, 1 - t2 / 6 + 3 * t2 * t2 / 40, torch.asinh(ts) / ts)


def _log_sinhc(t: torch.Tensor) -> torch.Tensor:
    """``log(sinh(t) / t)`` for ``t ≥ 0`` without overflow: ``t + log(−expm1(−2t)) − log(2t)``."""
    small, ts = _split_small(t)
    t2 = t * t
    big = ts + torch.log(-torch.expm1(-2 * ts)) - torch.log(2 * ts)
    return torch.where(small, t2 / 6 - t2 * t2 / 180, big)


def _branches(s: torch.Tensor):
    """``(pos, neg, s_pos, s_neg)``: masks ``s > thr`` / ``s < −thr`` and sanitised ``√|s|`` for each."""
    thr = _small_s(s.dtype)
    pos, neg = s > thr, s < -thr
    one = torch.ones_like(s)
    return pos, neg, torch.where(pos, s, one).sqrt(), torch.where(neg, -s, one).sqrt()


def _tanc_k(s: torch.Tensor) -> torch.Tensor:
    """``tan_κ(t) / t`` as a function of ``s = κt²``: ``tan(√s)/√s``, ``tanh(√−s)/√−s``, 1 at 0.

    Bachmann et al. 2020, §2 (``tan_κ``); geoopt's ``tan_k_zero_taylor`` coefficients.
    """
    pos, neg, rp, rn = _branches(s)
    taylor = 1 + s * (1 / 3 + s * (2 / 15 + s * (17 / 315)))
    return torch.where(pos, torch.tan(rp) / rp, torch.where(neg, torch.tanh(rn) / rn, taylor))


def _arsinc_k(s: torch.Tensor, om: torch.Tensor) -> torch.Tensor:
    """``arsin_κ(y) / y`` as a function of ``s = κy²``, given ``om = 1 − s`` computed accurately.

    ``atan2(√s, √(1 − s))/√s`` (s > 0, exact up to ``s = 1``), ``asinh(√−s)/√−s`` (s < 0),
    Taylor ``1 + s/6 + 3s²/40 + 5s³/112`` near 0.
    """
    pos, neg, rp, rn = _branches(s)
    omp = safe_sqrt(torch.where(pos, om, torch.ones_like(om)).clamp_min(0))
    taylor = 1 + s * (1 / 6 + s * (3 / 40 + s * (5 / 112)))
    return torch.where(pos, torch.atan2(rp, omp) / rp, torch.where(neg, torch.asinh(rn) / rn, taylor))


def _artanc_k(s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``artan_κ(y) / y`` for ``s = κy²`` and ``b = 1 + κy²`` (> 0): ``arsinc_κ(s/b, 1/b) / √b``."""
    return _arsinc_k(s / b, 1 / b) / b.sqrt()


def _finite_float(value, what: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{what} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.detach().cpu().reshape(()).item()
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a finite number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return v


def _positive_float(value, what: str) -> float:
    try:
        v = _finite_float(value, what)
    except ValueError:
        raise ValueError(f"{what} must be a positive finite number, got {value!r}") from None
    if v <= 0:
        raise ValueError(f"{what} must be a positive finite number, got {value!r}")
    return v


def _param_dtype(value) -> torch.dtype:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.dtype
    return torch.get_default_dtype()


def _check_dim(dim, cls: str) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"{cls} dim must be a positive int, got {dim!r}")
    return dim


# ====================================================================== κ-stereographic model
class Stereographic(Manifold):
    r"""The κ-stereographic model of the ``d``-dimensional space of constant curvature κ (any sign).

    Points are ``(*batch, d)`` vectors with ``1 + κ|x|² > 0`` (inside the ball of radius
    ``1/√−κ`` for κ < 0, anywhere for κ ≥ 0); tangent vectors are any ``(*batch, d)`` vectors.
    Metric ``g_x = λ_x² I``, ``λ_x = 2 / (1 + κ|x|²)`` (Bachmann et al. 2020, §2).
    Below, ``tan_κ``, ``artan_κ``, ``arsin_κ`` are ``tan``/``artan``/``arsin`` of ``√κ t``
    divided by ``√κ`` for κ > 0, the hyperbolic versions with ``√−κ`` for κ < 0 and the
    identity for κ = 0 (smooth in κ; see the module docstring).

    Gyrovector operations (Bachmann et al. 2020, eq. (3)–(5); Ungar 2008, Def. 3.40,
    Thm 3.13; Ganea et al. 2018, eq. (3)–(5)):

    * ``gyro_add(x, y) = x ⊕ y = ((1 − 2κ⟨x,y⟩ − κ|y|²) x + (1 + κ|x|²) y) / (1 − 2κ⟨x,y⟩ + κ²|x|²|y|²)``
      (alias ``mobius_add``), ``gyro_inv(x) = ⊖x = −x``, ``gyro_identity`` = 0;
    * ``gyration(a, b, u) = gyr[a, b] u = ⊖(a ⊕ b) ⊕ (a ⊕ (b ⊕ u))`` in closed form;
    * ``gyro_scalar_mul(r, x) = r ⊗ x = tan_κ(r artan_κ(|x|)) x / |x|`` (alias ``mobius_scalar_mul``);
    * ``mobius_matvec(M, x) = tan_κ(|Mx|/|x| · artan_κ(|x|)) Mx / |Mx|``.

    For κ > 0, ``⊕`` is defined except where its denominator vanishes (``y`` the antipode of
    ``−x``, result at infinity; the denominator is clamped at the smallest normal number).

    Riemannian verbs:

    * ``dist(x, y) = 2 artan_κ(|(−x) ⊕ y|) = 2 arsin_κ(|x − y| / √((1 + κ|x|²)(1 + κ|y|²)))``
      (Bachmann et al. 2020, eq. (6)); at most ``π/√κ`` for κ > 0.
    * ``expmap(x, u) = x ⊕ tan_κ(λ_x|u|/2) u/|u|``;
      ``logmap(x, y) = 2/λ_x artan_κ(|w|) w/|w|``, ``w = (−x) ⊕ y`` (Bachmann et al. 2020,
      eq. (7)–(8)); for κ > 0 ``logmap`` and ``transp`` are undefined at the antipode of ``x``
      (the cut locus), where they return finite vectors without meaning (and gradients that
      may overflow); ``dist`` is ``π/√κ`` there with finite gradients.
    * ``transp(x, y, v) = gyr[y, −x] v · λ_x / λ_y`` (Ungar 2008, Thm 3.13 / Skopek et al.
      2020, App. B.3.5; Bachmann et al. 2020, App. B).
    * ``proju`` is the identity; ``egrad2rgrad(x, u) = u / λ_x²``; ``projx`` clips ``|x|`` to
      ``(1 − 10 eps)/√−κ`` for κ < 0 (eps of the dtype) and is the identity for κ ≥ 0.

    Base distribution: the wrapped normal at the origin, ``x = expmap0(v/2)`` with
    ``v ~ N(0, σ² I)`` (``v`` in the Riemannian norm at 0, where ``λ_0 = 2``). Its log-density
    w.r.t. the Riemannian volume, ``r = dist0(x)``, is
    ``−d/2 log(2πσ²) − r²/(2σ²) − (d − 1) log(sin_κ(r)/r)`` (Nagano et al. 2019, eq. (7);
    Skopek et al. 2020, App. B.5). For κ > 0 the radius ``|v|`` is truncated to the cut
    radius ``π/√κ`` (so that ``expmap0`` is a bijection and the density is exact), which adds
    ``−log P(χ_d σ ≤ π/√κ)`` to the log-density.

    Args:
        dim: dimension ``d``.
        k: sectional curvature κ (float or 0-dim tensor; any finite value). Default 0.
        learnable: make κ an ``nn.Parameter`` ``raw_k`` (of ``k``'s dtype when ``k`` is a
            floating tensor, else the default dtype); it may change sign during training.
        base_std: ``σ`` of the wrapped normal used by :meth:`random_base` / :meth:`base_log_prob`.

    Raises:
        ValueError: ``dim`` not a positive int, ``k`` not a finite number, ``base_std`` not a
            positive finite number.

    Example:
        >>> S = Stereographic(2, k=0.5)
        >>> x, y = S.random(2, 2, dtype=torch.float64)
        >>> torch.allclose(S.expmap(x, S.logmap(x, y)), y)
        True
    """

    name = "Stereographic"
    reversible = False
    ndim = 1

    def __init__(self, dim: int = 2, k: Scalar = 0.0, learnable: bool = False, base_std: float = 1.0):
        super().__init__()
        self.dim = _check_dim(dim, type(self).__name__)
        self.event_shape = (self.dim,)
        self.base_std = _positive_float(base_std, f"{type(self).__name__} base_std")
        self.learnable = bool(learnable)
        self._init_curvature(k)

    # ------------------------------------------------------------------ curvature
    def _init_curvature(self, k) -> None:
        kf = _finite_float(k, "Stereographic curvature k")
        if self.learnable:
            self.raw_k = torch.nn.Parameter(torch.tensor(kf, dtype=_param_dtype(k)))
        else:
            self._k = kf

    @property
    def k(self) -> Scalar:
        """Sectional curvature κ (a float, or a 0-dim tensor when learnable)."""
        return self.raw_k if self.learnable else self._k

    def _kappa(self, x: torch.Tensor) -> torch.Tensor:
        """κ as a 0-dim tensor of ``x``'s dtype and device (differentiable when learnable)."""
        if self.learnable:
            return self.k.to(dtype=x.dtype, device=x.device)
        return x.new_full((), self._k)

    def _key(self) -> Hashable:
        if self.learnable:
            return (type(self).__name__, self.event_shape, "learnable", id(self))
        return (type(self).__name__, self.event_shape, self._k)

    # ------------------------------------------------------------------ checks
    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=0.0):
        k = self._kappa(x).detach()
        b = 1 + k * dot(x, x)
        if x.numel() and bool((b <= 0).any()):
            return False, (
                f"points must lie inside the ball of radius 1/sqrt(-k) = {1 / math.sqrt(-float(k)):.6g}: "
                f"max sqrt(-k)|x| = {math.sqrt(float((-k * dot(x, x)).max())):.6g} >= 1"
            )
        return True, None

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=0.0):
        return True, None  # every vector of ℝᵈ is tangent

    # ------------------------------------------------------------------ metric
    def _conf(self, x: torch.Tensor, k: torch.Tensor, keepdim: bool = True) -> torch.Tensor:
        """``1 + κ|x|² = 2/λ_x``, clamped at the smallest normal number (> 0)."""
        return (1 + k * dot(x, x, keepdim)).clamp_min(_tiny(x))

    def _den(self, k, a, b, ba, bb, n2):
        """``D(a, b) = 1 + 2κ⟨a,b⟩ + κ²|a|²|b|²`` (≥ 0) given ``ba = 1+κ|a|²``, ``bb``, ``n2 = |a − b|²``.

        κ ≤ 0: ``ba·bb − κ n2`` (a sum of positive terms); κ > 0: the sum of squares
        ``(κ|bb·a + ba·b|² + (1 − κ²|a|²|b|²)²) / (ba·bb)``, accurate where ``D → 0``.
        """
        neg = ba * bb - k * n2
        kpos = k > 0
        kp = torch.where(kpos, k, torch.zeros_like(k))
        p = torch.where(kpos, ba * bb, torch.ones_like(ba))
        v = bb * a + ba * b
        ab = kp * safe_norm(a, keepdim=True) * safe_norm(b, keepdim=True)
        pos = (kp * dot(v, v, True) + ((1 - ab) * (1 + ab)) ** 2) / p
        return torch.where(kpos, pos, neg).clamp_min(0)

    def lambda_x(self, x: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """Conformal factor ``λ_x = 2 / (1 + κ|x|²)``; ``x: (*batch, d)`` → ``(*batch,)`` (or ``(*batch, 1)``)."""
        return 2 / self._conf(x, self._kappa(x), keepdim)

    def inner(self, x, u, v=None, *, keepdim=False):
        """``λ_x² ⟨u, v⟩``; ``x, u, v: (*batch, d)`` → ``(*batch,)``."""
        v = u if v is None else v
        lam = self.lambda_x(x, keepdim=keepdim)
        return lam * lam * dot(u, v, keepdim)

    def norm(self, x, u, *, keepdim=False):
        """``λ_x |u|`` (zero gradient at ``u = 0``)."""
        return self.lambda_x(x, keepdim=keepdim) * safe_norm(u, keepdim=keepdim)

    def proju(self, x, u):
        """Identity: the tangent space is ℝᵈ."""
        return u

    def egrad2rgrad(self, x, u):
        """Riemannian gradient ``u / λ_x² = u (1 + κ|x|²)² / 4``."""
        b = self._conf(x, self._kappa(x))
        return u * (0.25 * b * b)

    def projx(self, x):
        """κ < 0: clip ``|x|`` to ``(1 − 10 eps)/√−κ`` (eps of the dtype); κ ≥ 0: identity."""
        k = self._kappa(x)
        s = -k * dot(x, x, True)
        m = 1 - _boundary_margin(x.dtype)
        out = s > m * m
        ss = torch.where(out, s, torch.ones_like(s))
        return x * torch.where(out, m / ss.sqrt(), torch.ones_like(s))

    def origin_point(self, x: torch.Tensor) -> torch.Tensor:
        """The origin ``0`` (the gyrogroup identity), shaped like ``x``."""
        return torch.zeros_like(x)

    # ------------------------------------------------------------------ gyrovector space
    def gyro_identity(self, like: torch.Tensor) -> torch.Tensor:
        """Identity element of ``⊕``: the origin, shaped like ``like``."""
        return torch.zeros_like(like)

    def mobius_add(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Möbius addition ``x ⊕ y`` (Bachmann et al. 2020, eq. (3); Ungar 2008, eq. (3.178)).

        ``x, y: (*batch, d)`` → ``(*batch, d)``. Not commutative, not associative
        (gyrocommutative, gyroassociative).
        """
        k = self._kappa(x)
        # With s = x + y: 1 − 2κ⟨x,y⟩ − κ|y|² = (1 + κ|x|²) − κ|s|², and the denominator is
        # D(−x, y) with |(−x) − y|² = |s|²: no cancellation near the boundary or for y ≈ −x.
        s = x + y
        s2 = dot(s, s, True)
        bx, by = self._conf(x, k), self._conf(y, k)
        num = bx * s - (k * s2) * x
        return num / self._den(k, -x, y, bx, by, s2).clamp_min(_tiny(x))

    gyro_add = mobius_add

    def mobius_sub(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x ⊖ y = x ⊕ (−y)``; shapes as :meth:`mobius_add`."""
        return self.mobius_add(x, -y)

    def gyro_inv(self, x: torch.Tensor) -> torch.Tensor:
        """Gyrogroup inverse ``⊖x = −x``."""
        return -x

    def gyration(self, a: torch.Tensor, b: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Gyration ``gyr[a, b] u = ⊖(a ⊕ b) ⊕ (a ⊕ (b ⊕ u))`` (Ungar 2008, Thm 3.13), closed form.

        ``a, b, u: (*batch, d)`` → ``(*batch, d)``. A linear isometry in ``u`` (of the
        Euclidean norm); ``gyr[a, b] = I`` when ``a`` or ``b`` is 0 or κ = 0.
        """
        k = self._kappa(a)
        # geoopt's closed form (Skopek et al. 2020, App. B) rewritten with s = a + b so that it
        # stays accurate for b ≈ −a near the boundary (the case of ``transp``):
        # gyr[a, b] u = u + 2 (P a + Q s) / D with
        #   P = −κ (1 + κ|b|²) ⟨s,u⟩ + κ² ⟨b,u⟩ |s|²,  Q = κ ((1 + κ|a|²) ⟨a,u⟩ − κ |a|² ⟨s,u⟩),
        #   D = 1 − 2κ⟨a,b⟩ + κ²|a|²|b|².
        s = a + b
        s2 = dot(s, s, True)
        su = dot(s, u, True)
        au = dot(a, u, True)
        bu = dot(b, u, True)
        ba, bb = self._conf(a, k), self._conf(b, k)
        p = -k * bb * su + (k * k) * bu * s2
        q = k * (ba * au - k * dot(a, a, True) * su)
        d = self._den(k, -a, b, ba, bb, s2).clamp_min(_tiny(a))
        return u + 2 * (p * a + q * s) / d

    def _artanc(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``artan_κ(|x|) / |x|`` with a trailing singleton dimension (1 at 0)."""
        return _artanc_k(k * dot(x, x, True), self._conf(x, k))

    def mobius_scalar_mul(self, r: Scalar, x: torch.Tensor) -> torch.Tensor:
        """Möbius scalar multiplication ``r ⊗ x = tan_κ(r artan_κ(|x|)) x / |x|`` (Bachmann et al. 2020, eq. (4)).

        Args:
            r: scalar or tensor broadcastable to ``(*batch, 1)``.
            x: ``(*batch, d)`` points.

        Returns:
            ``(*batch, d)``, evaluated as ``r tanc_κ(r a) (a/|x|) x`` with ``a = artan_κ(|x|)``
            so that ``x = 0`` gives 0 with finite gradients.
        """
        k = self._kappa(x)
        ac = self._artanc(x, k)
        ra = r * ac
        return r * _tanc_k(k * ra * ra * dot(x, x, True)) * ac * x

    gyro_scalar_mul = mobius_scalar_mul

    def mobius_matvec(self, m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Möbius matrix-vector product ``M ⊗ x = tan_κ(|Mx|/|x| artan_κ(|x|)) Mx / |Mx|`` (Ganea et al. 2018, eq. (5)).

        Args:
            m: ``(*batch, n, d)`` matrix (``(n, d)`` broadcasts over the batch).
            x: ``(*batch, d)`` points.

        Returns:
            ``(*batch, n)`` points of the n-dimensional space of the same curvature; 0 when
            ``Mx = 0`` (finite gradients there).
        """
        k = self._kappa(x)
        mx = (m @ x.unsqueeze(-1)).squeeze(-1)
        ac = self._artanc(x, k)
        return _tanc_k(k * ac * ac * dot(mx, mx, True)) * ac * mx

    # ------------------------------------------------------------------ distance, exp, log
    def _chord(self, x, y):
        """``(h, |x−y|, x−y, Bx, By, D, κ)`` shared by :meth:`dist` and :meth:`logmap` (keepdim)."""
        k = self._kappa(x)
        diff = y - x
        n2 = dot(diff, diff, True)
        bx, by = self._conf(x, k), self._conf(y, k)
        p = bx * by
        d = self._den(k, x, y, bx, by, n2)
        h = _arsinc_k(k * n2 / p, d / p)  # arsin_κ(z)/z, z = |x − y|/√p
        return h, safe_norm(diff, keepdim=True), diff, bx, by, d, k

    def dist(self, x, y, *, keepdim=False):
        """Geodesic distance ``2 arsin_κ(|x − y| / √((1 + κ|x|²)(1 + κ|y|²)))``; ``(*batch,)``.

        Equal to ``2 artan_κ(|(−x) ⊕ y|)`` (Bachmann et al. 2020, eq. (6)); finite value and
        gradient at ``x == y`` (the zero subgradient); ``π/√κ`` at the antipode for κ > 0.
        """
        h, n, _, bx, by, _, _ = self._chord(x, y)
        out = 2 * n * h / (bx * by).sqrt()
        return out if keepdim else out.squeeze(-1)

    # ------------------------------------------------------------------ kernel-ready distance
    has_kernel_formula = True

    @property
    def kernel_feature_dim(self) -> int:
        return self.dim + 1

    def kernel_features(self, x):
        """Per-point features, ``(*batch, d + 1)`` (see :meth:`Manifold.kernel_features`).

        κ < 0: ``(√−κ x, (1 + κ|x|²)^{-1/2})``; κ = 0: ``(x, 1)``; κ > 0: the point of the unit
        sphere ``((1 − |u|²), 2u) / (1 + |u|²)``, ``u = √κ x`` (the inverse stereographic
        projection: the κ > 0 model is isometric to the sphere of radius ``1/√κ``).
        """
        k = self._kappa(x)
        sign = self._kernel_sign()
        if sign > 0:
            u = k.sqrt() * x
            n2 = dot(u, u, True)
            return torch.cat([1 - n2, 2 * u], -1) / (1 + n2)
        s = (-k).sqrt() if sign < 0 else 1.0
        return torch.cat([s * x, self._conf(x, k).rsqrt()], -1)

    def _kernel_sign(self) -> int:
        """Sign of κ (a host read for a learnable curvature)."""
        kf = float(self.k.detach()) if torch.is_tensor(self.k) else self._k
        return (kf > 0) - (kf < 0)

    def kernel_dist(self, a, b, ops):
        """Chord forms of the geodesic distance from :meth:`kernel_features` (same value as :meth:`dist`).

        κ < 0: ``(2/√−κ) asinh(z)``, ``z = √−κ |x − y| / √((1 + κ|x|²)(1 + κ|y|²))`` (Bachmann
        et al., ICML 2020, eq. (6), with ``arsin_κ``), float32-safe near coincident points (no
        ``acosh`` of a number near 1); κ = 0: ``2|x − y|``; κ > 0: ``(2/√κ) atan2(|p − q|, |p + q|)``
        on the unit-sphere features (finite gradients at coincident and antipodal points,
        like :meth:`Sphere.kernel_dist`). The branch is taken on the sign of κ (one host read
        for a learnable curvature).
        """
        d = self.dim
        sign = self._kernel_sign()
        if sign > 0:
            r = ops.atan2(ops.sqrt(ops.sqdist(a, b)), ops.sqrt(ops.sqnorm(a + b)))
        else:
            chord = ops.sqrt(ops.sqdist(ops.slice(a, 0, d), ops.slice(b, 0, d)))
            if sign == 0:
                return 2 * chord
            r = ops.asinh(chord * ops.slice(a, d, d + 1) * ops.slice(b, d, d + 1))
        k = self.k
        scale = 2 / k.to(torch.float64).abs().sqrt() if torch.is_tensor(k) else 2 / math.sqrt(abs(k))
        return ops.scalar(scale) * r

    def dist0(self, x, *, keepdim=False):
        """``dist(0, x) = 2 artan_κ(|x|)``; ``(*batch,)``."""
        k = self._kappa(x)
        out = 2 * safe_norm(x, keepdim=True) * self._artanc(x, k)
        return out if keepdim else out.squeeze(-1)

    def expmap(self, x, u):
        """``x ⊕ tan_κ(λ_x|u|/2) u/|u|`` (Bachmann et al. 2020, eq. (7)), then :meth:`projx`.

        ``x, u: (*batch, d)`` → ``(*batch, d)``; ``u = 0`` gives ``x``.
        """
        k = self._kappa(x)
        half = u / self._conf(x, k)  # λ_x u / 2
        return self.projx(self.mobius_add(x, _tanc_k(k * dot(half, half, True)) * half))

    def logmap(self, x, y):
        """Tangent vector at ``x`` of Riemannian length ``dist(x, y)`` pointing to ``y`` (Bachmann et al. 2020, eq. (8)).

        ``x, y: (*batch, d)`` → ``(*batch, d)``. Evaluated as
        ``arsinc_κ · √((1+κ|x|²)/(1+κ|y|²)) · num / √D`` with ``num = (1 + κ|x|²)(y − x) + κ|x−y|² x``
        (the numerator of ``(−x) ⊕ y``) and ``D = 1 + 2κ⟨x,y⟩ + κ²|x|²|y|²``: no cancellation
        for close points, 0 with finite gradients at ``x == y``.
        """
        h, n, diff, bx, by, d, k = self._chord(x, y)
        num = bx * diff + (k * n * n) * x
        return h * (bx / by).sqrt() * num / d.clamp_min(_tiny(x)).sqrt()

    def expmap0(self, u):
        """``expmap(0, u) = tan_κ(|u|) u / |u|``; ``(*batch, d)``."""
        k = self._kappa(u)
        return self.projx(_tanc_k(k * dot(u, u, True)) * u)

    def logmap0(self, y):
        """``logmap(0, y) = artan_κ(|y|) y / |y|``; ``(*batch, d)``."""
        return self._artanc(y, self._kappa(y)) * y

    # ------------------------------------------------------------------ transport
    def transp(self, x, y, v):
        """Parallel transport ``gyr[y, −x] v · λ_x / λ_y`` along the geodesic from ``x`` to ``y``.

        ``x, y, v: (*batch, d)`` → ``(*batch, d)`` (Skopek et al. 2020, App. B.3.5; Bachmann
        et al. 2020, App. B; geoopt's ``Stereographic.transp``). Preserves ``inner``.
        Undefined at the antipode (κ > 0).
        """
        k = self._kappa(x)
        return self.gyration(y, -x, v) * (self._conf(y, k) / self._conf(x, k))

    def transp0(self, y, v):
        """Transport from the origin: ``v · λ_0 / λ_y = v (1 + κ|y|²)``."""
        return v * self._conf(y, self._kappa(y))

    def transp_follow_expmap(self, x, u, v):
        return self.transp(x, self.expmap(x, u), v)

    # ------------------------------------------------------------------ sampling
    def random(self, *size, dtype=None, device=None, generator=None, std: float = 1.0):
        """Wrapped normal at the origin of Riemannian scale ``std``; ``size`` is the full shape ``(..., d)``.

        ``x = expmap0(v/2)``, ``v ~ N(0, std² I)``. For κ > 0 the radius ``|v|`` is drawn from the
        χ_d law truncated to ``[0, π/√κ]`` by inverse-CDF sampling (the untruncated radius's
        CDF value rescaled, inverted by 64 steps of bisection on the regularised incomplete
        gamma function, in float64; no host sync). For κ ≤ 0 ``v`` is the plain normal draw.
        Not differentiable w.r.t. κ.
        """
        size = self._check_size(size)
        n = torch.randn(size, dtype=dtype, device=device, generator=generator)
        v = std * n
        if self.learnable or self._k > 0:  # a static configuration, not a tensor value
            v = self._truncate_radius(v, float(std))
        return self.expmap0(0.5 * v)

    def _truncate_radius(self, v: torch.Tensor, std: float) -> torch.Tensor:
        k = self._kappa(v).detach().double()
        kpos = k > 0
        a = torch.full_like(k, 0.5 * self.dim)
        rmax = math.pi / torch.where(kpos, k, torch.ones_like(k)).sqrt()
        vd = v.double()
        rho0 = safe_norm(vd, keepdim=True)
        fmax = torch.special.gammainc(a, (rmax / std) ** 2 / 2)
        target = torch.special.gammainc(a, (rho0 / std) ** 2 / 2) * fmax
        lo, hi = torch.zeros_like(rho0), rmax.expand_as(rho0).clone()
        for _ in range(64):
            mid = 0.5 * (lo + hi)
            below = torch.special.gammainc(a, (mid / std) ** 2 / 2) < target
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        rho = 0.5 * (lo + hi)
        scale = torch.where(kpos & (rho0 > 0), rho / torch.where(rho0 > 0, rho0, torch.ones_like(rho0)), torch.ones_like(rho0))
        return (vd * scale).to(v.dtype)

    random_normal = random

    def random_base(self, *size, dtype=None, device=None, generator=None):
        """Sample the base distribution (wrapped normal at 0 with ``σ = base_std``)."""
        return self.random(*size, dtype=dtype, device=device, generator=generator, std=self.base_std)

    def base_log_prob(self, x):
        """Log-density of :meth:`random_base` w.r.t. the Riemannian volume; ``x: (*batch, d)`` → ``(*batch,)``.

        ``−d/2 log(2πσ²) − r²/(2σ²) − (d − 1) log(sin_κ(r)/r) − [κ > 0] log P(χ_d σ ≤ π/√κ)``,
        ``r = dist0(x)`` (Nagano et al. 2019, eq. (7); Skopek et al. 2020, App. B.5). Uses
        ``sin_κ(r) = 2|x| / (1 + κ|x|²)`` (exact on the model, no overflow), Taylor
        ``−s/6 − s²/180 − s³/2835`` in ``s = κr²`` near 0. Differentiable in ``x`` and κ.
        """
        k = self._kappa(x)
        b = self._conf(x, k, keepdim=False)
        nx = safe_norm(x)
        r = self.dist0(x)
        s = k * r * r
        small = s.abs() < _small_s(x.dtype)
        nxs = torch.where(small, torch.ones_like(nx), nx)
        rs = torch.where(small, torch.ones_like(r), r)
        log_sinc = torch.where(
            small, -s * (1 / 6 + s * (1 / 180 + s / 2835)), torch.log(2 * nxs) - torch.log(b) - torch.log(rs)
        )
        sd = self.base_std
        d = self.dim
        kpos = k > 0
        ks = torch.where(kpos, k, torch.ones_like(k))
        log_mass = torch.where(kpos, torch.special.gammainc(torch.full_like(ks, 0.5 * d), math.pi ** 2 / (2 * sd * sd * ks)).log(), torch.zeros_like(k))
        return -0.5 * d * math.log(2 * math.pi * sd * sd) - r * r / (2 * sd * sd) - (d - 1) * log_sinc - log_mass

    def extra_repr(self):
        k = "learnable" if self.learnable else f"k={self._k}"
        return f"dim={self.dim}, {k}"


class PoincareBall(Stereographic):
    r"""The Poincaré ball of curvature −c: :class:`Stereographic` with κ = −c < 0.

    Points are ``(*batch, d)`` vectors with ``c|x|² < 1``; metric ``λ_x² I``,
    ``λ_x = 2 / (1 − c|x|²)`` (Ganea et al. 2018, §2.1). All verbs, the gyrovector operations
    (``gyro_add`` / ``mobius_add``, ``gyro_inv``, ``gyration``, ``gyro_scalar_mul`` /
    ``mobius_scalar_mul``, ``mobius_matvec``) and the wrapped-normal base distribution are
    those of :class:`Stereographic` at κ = −c, e.g.
    ``dist(x, y) = 2/√c · asinh(√c|x − y| / √((1 − c|x|²)(1 − c|y|²)))``
    (= ``2/√c artanh(√c|(−x) ⊕ y|)``, Ganea et al. 2018, eq. (6)).

    Args:
        dim: dimension ``d`` of the ball.
        c: curvature magnitude ``c > 0`` (sectional curvature −c). Default 1.
        learnable: make ``c`` an ``nn.Parameter`` ``raw_c`` (softplus-parametrised, so it stays > 0).
        base_std: ``σ`` of the wrapped normal used by :meth:`random_base` / :meth:`base_log_prob`.

    Raises:
        ValueError: ``dim`` not a positive int, ``c`` or ``base_std`` not a positive finite number.

    Example:
        >>> B = PoincareBall(2, c=1.0)
        >>> x, y = B.random(2, 2, dtype=torch.float64)
        >>> torch.allclose(B.expmap(x, B.logmap(x, y)), y)
        True
    """

    name = "PoincareBall"

    def __init__(self, dim: int = 2, c: Scalar = 1.0, learnable: bool = False, base_std: float = 1.0):
        self._c0 = _positive_float(c, "PoincareBall curvature magnitude c")
        self._c_dtype = _param_dtype(c)
        super().__init__(dim, -self._c0, learnable, base_std)

    def _init_curvature(self, k) -> None:
        c = self._c0
        if self.learnable:
            # softplus⁻¹(c) = log(expm1(c))
            self.raw_c = torch.nn.Parameter(torch.tensor(math.log(math.expm1(c)), dtype=self._c_dtype))
        else:
            self._k = -c
            self._c = c

    @property
    def c(self) -> Scalar:
        """Curvature magnitude ``c`` (a float, or a 0-dim tensor when learnable)."""
        return F.softplus(self.raw_c) if self.learnable else self._c

    @property
    def k(self) -> Scalar:
        """Sectional curvature κ = −c (geoopt's name)."""
        return -self.c

    def extra_repr(self):
        c = "learnable" if self.learnable else f"c={self._c}"
        return f"dim={self.dim}, {c}"


class SphereProjection(Stereographic):
    r"""Stereographic projection of the sphere of curvature c: :class:`Stereographic` with κ = c > 0.

    Points are any ``(*batch, d)`` vectors (the image of the sphere of radius ``1/√c`` minus
    the projection pole, which is the antipode of the origin); geoopt's ``SphereProjection``.
    Distances are at most ``π/√c``. See :class:`Stereographic` for the formulas.

    Args:
        dim: dimension ``d``.
        c: curvature ``c > 0``. Default 1.
        learnable: make ``c`` an ``nn.Parameter`` ``raw_c`` (softplus-parametrised, so it stays > 0).
        base_std: ``σ`` of the (cut-radius-truncated) wrapped normal base distribution.

    Raises:
        ValueError: ``dim`` not a positive int, ``c`` or ``base_std`` not a positive finite number.
    """

    name = "SphereProjection"

    def __init__(self, dim: int = 2, c: Scalar = 1.0, learnable: bool = False, base_std: float = 1.0):
        self._c0 = _positive_float(c, "SphereProjection curvature c")
        self._c_dtype = _param_dtype(c)
        super().__init__(dim, self._c0, learnable, base_std)

    def _init_curvature(self, k) -> None:
        c = self._c0
        if self.learnable:
            self.raw_c = torch.nn.Parameter(torch.tensor(math.log(math.expm1(c)), dtype=self._c_dtype))
        else:
            self._k = c
            self._c = c

    @property
    def c(self) -> Scalar:
        """Curvature ``c = κ > 0`` (a float, or a 0-dim tensor when learnable)."""
        return F.softplus(self.raw_c) if self.learnable else self._c

    @property
    def k(self) -> Scalar:
        """Sectional curvature κ = c."""
        return self.c

    def extra_repr(self):
        c = "learnable" if self.learnable else f"c={self._c}"
        return f"dim={self.dim}, {c}"


# ====================================================================== hyperboloid
def _minkowski(u: torch.Tensor, v: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """``⟨u, v⟩_L = −u₀v₀ + Σᵢ uᵢvᵢ`` over the last dimension."""
    r = dot(u[..., 1:], v[..., 1:], keepdim) - (u[..., :1] * v[..., :1] if keepdim else u[..., 0] * v[..., 0])
    return r


class Hyperboloid(Manifold):
    r"""The hyperboloid (Lorentz) model of hyperbolic space of curvature −c.

    Points are ``(*batch, d + 1)`` vectors with ``⟨x, x⟩_L = −1/c`` and ``x₀ > 0``, where
    ``⟨x, y⟩_L = −x₀y₀ + Σᵢ xᵢyᵢ`` (Nickel & Kiela 2018, §3). Tangent vectors at ``x`` are
    ambient ``(*batch, d + 1)`` vectors with ``⟨x, u⟩_L = 0``; the metric is ``⟨u, v⟩_L``.
    geoopt's ``Lorentz(k)`` is the same space with ``k = 1/c``.

    * ``dist(x, y) = (1/√c) arcosh(−c⟨x, y⟩_L)``, evaluated as the chord form
      ``2/√c · asinh(√c ‖x − y‖_L / 2)`` with ``‖x − y‖_L² = ⟨x−y, x−y⟩_L ≥ 0``
      (accurate for close points in float32; for points far from the origin the
      Minkowski square of the difference loses about ``log10(x₀²)`` digits).
    * ``expmap(x, u) = cosh(√c‖u‖_L) x + sinh(√c‖u‖_L) u / (√c‖u‖_L)``, re-projected.
    * ``logmap(x, y) = asinhc(s) / √(1 + s²) · v`` with ``v = (y − x) − (c/2)‖y − x‖_L² x``
      (the projection of ``y − x`` onto ``T_x``) and ``s = √c ‖y − x‖_L / 2``; its norm is
      ``dist(x, y)``.
    * ``transp(x, y, v) = v + c⟨y, v⟩_L / (1 − c⟨x, y⟩_L) · (x + y)``.
    * ``proju(x, u) = u + c⟨x, u⟩_L x``; ``egrad2rgrad`` flips the sign of ``u₀`` (the
      inverse Minkowski metric) and projects; ``projx`` recomputes ``x₀ = √(1/c + |x_{1:}|²)``.
    * ``to_poincare(x) = x_{1:} / (1 + √c x₀)``; ``from_poincare(p) = ((1 + c|p|²)/√c, 2p) / (1 − c|p|²)``.
    * ``norm`` (used by ``expmap``) evaluates ``⟨u, u⟩_L`` for tangent ``u`` as a sum of
      non-negative terms (see :meth:`_tangent_sq`); ``inner`` is the plain Minkowski product
      (as geoopt), which cancels ``x₀²``-sized terms far from the origin.

    **Conditioning.** Coordinates grow like ``e^{√c r}``; the extrinsic formulas lose about
    ``log10(x₀²)`` digits far from the origin (use :class:`PoincareBall` there), and
    ``cosh`` overflows for ``√c‖u‖_L`` above ~710 (float64) / ~89 (float32). The curvature is
    fixed (no learnable ``c`` in this model).

    Base distribution: the wrapped normal at the origin ``o = (1/√c, 0, …, 0)`` (Nagano
    et al. 2019, eq. (7)): ``x = expmap(o, (0, σ n))``, log-density
    ``−d/2 log(2πσ²) − r²/(2σ²) − (d − 1) log(sinh(√c r)/(√c r))`` with
    ``r = dist(o, x) = asinh(√c|x_{1:}|)/√c``.

    Args:
        dim: intrinsic dimension ``d`` (points have ``d + 1`` coordinates).
        c: curvature magnitude ``c > 0``.
        base_std: ``σ`` of the base wrapped normal.

    Raises:
        ValueError: ``dim`` not a positive int, ``c`` or ``base_std`` not a positive finite number.

    Example:
        >>> H = Hyperboloid(2)
        >>> x, y = H.random(2, 3, dtype=torch.float64)
        >>> torch.allclose(H.expmap(x, H.logmap(x, y)), y)
        True
    """

    name = "Hyperboloid"
    reversible = False
    ndim = 1

    def __init__(self, dim: int = 2, c: float = 1.0, base_std: float = 1.0):
        super().__init__()
        self.dim = _check_dim(dim, "Hyperboloid")
        self.event_shape = (self.dim + 1,)
        self.c = _positive_float(c, "Hyperboloid curvature magnitude c")
        self.base_std = _positive_float(base_std, "Hyperboloid base_std")

    @property
    def k(self) -> float:
        """geoopt's ``Lorentz`` parameter ``k = 1/c`` (``⟨x, x⟩_L = −k``)."""
        return 1.0 / self.c

    def _key(self) -> Hashable:
        return (type(self).__name__, self.event_shape, self.c)

    # ------------------------------------------------------------------ checks
    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=0.0):
        if x.numel() == 0:
            return True, None
        if bool((x[..., 0] <= 0).any()):
            return False, "points must lie on the upper sheet: x_0 > 0"
        err = (_minkowski(x, x) + 1.0 / self.c).abs()
        # the constraint is a difference of squares of size x_0²: scale the tolerance with it
        tol = atol * (1 + self.c * x[..., 0] ** 2) + rtol
        if bool((err > tol).any()):
            return False, (
                f"points must satisfy <x, x>_L = -1/c = {-1.0 / self.c:.6g}: "
                f"max |<x, x>_L + 1/c| = {float(err.max()):.3g}"
            )
        return True, None

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=0.0):
        err = _minkowski(x, u).abs()
        tol = atol * (1 + x.norm(dim=-1) * u.norm(dim=-1)) + rtol * u.norm(dim=-1)
        if u.numel() and bool((err > tol).any()):
            return False, f"tangent vectors must satisfy <x, u>_L = 0: max |<x, u>_L| = {float(err.max()):.3g}"
        return True, None

    # ------------------------------------------------------------------ metric
    def inner(self, x, u, v=None, *, keepdim=False):
        """Minkowski inner product ``⟨u, v⟩_L``; ``(*batch, d + 1)`` → ``(*batch,)``."""
        return _minkowski(u, u if v is None else v, keepdim)

    def _tangent_sq(self, x, u, keepdim=False):
        """``⟨u, u⟩_L`` for ``u`` tangent at ``x``, without the cancellation of ``|u_{1:}|² − u₀²``.

        With ``e = x_{1:}/|x_{1:}|`` and ``p = ⟨e, u_{1:}⟩``, tangency (``x₀u₀ = ⟨x_{1:}, u_{1:}⟩``)
        and ``x₀² − |x_{1:}|² = 1/c`` give ``⟨u, u⟩_L = |u_{1:} − p e|² + p² / (c x₀²)``: a sum of
        non-negative terms, accurate far from the origin (where ``x₀ ≫ 1``).
        """
        xs, us = x[..., 1:], u[..., 1:]
        n = safe_norm(xs, keepdim=True)
        e = xs / torch.where(n > 0, n, torch.ones_like(n))
        p = dot(e, us, True)
        perp = us - p * e
        sq = dot(perp, perp, True) + p * p / (self.c * x[..., :1] * x[..., :1])
        return sq if keepdim else sq.squeeze(-1)

    def norm(self, x, u, *, keepdim=False):
        """Riemannian norm ``√⟨u, u⟩_L`` of ``u`` tangent at ``x`` (stable form, zero gradient at ``u = 0``)."""
        return safe_sqrt(self._tangent_sq(x, u, keepdim))

    def proju(self, x, u):
        """Projection onto ``T_x``: ``u + c⟨x, u⟩_L x``."""
        return u + self.c * _minkowski(x, u, True) * x

    def egrad2rgrad(self, x, u):
        """Riemannian gradient: ``proju(x, J u)``, ``J = diag(−1, 1, …, 1)`` (Nickel & Kiela 2018, eq. (5))."""
        u = torch.cat((-u[..., :1], u[..., 1:]), dim=-1)
        return self.proju(x, u)

    def projx(self, x):
        """Lift onto the hyperboloid: keep ``x_{1:}``, set ``x₀ = √(1/c + |x_{1:}|²)``."""
        xs = x[..., 1:]
        x0 = torch.sqrt(1.0 / self.c + dot(xs, xs, True))
        return torch.cat((x0, xs), dim=-1)

    def origin_point(self, x: torch.Tensor) -> torch.Tensor:
        """The origin ``(1/√c, 0, …, 0)``, shaped like ``x``."""
        o = torch.zeros_like(x)
        o[..., 0] = 1.0 / math.sqrt(self.c)
        return o

    # ------------------------------------------------------------------ distance, exp, log
    def _chord_sq(self, x, y, keepdim=True):
        d = y - x
        return d, _minkowski(d, d, keepdim).clamp_min(0)

    def dist(self, x, y, *, keepdim=False):
        """``2/√c · asinh(√c ‖x − y‖_L / 2)`` (= ``arcosh(−c⟨x, y⟩_L)/√c``); ``(*batch,)``."""
        sc = math.sqrt(self.c)
        _, q = self._chord_sq(x, y, keepdim)
        return 2 * torch.asinh(0.5 * sc * safe_sqrt(q)) / sc

    # ------------------------------------------------------------------ kernel-ready distance
    has_kernel_formula = True

    def kernel_dist(self, a, b, ops):
        """Chord form ``2/√c · asinh(√c ‖a − b‖_L / 2)``, ``‖v‖_L² = −v₀² + Σᵢ vᵢ²`` clamped at 0.

        Float32-safe near coincident points, unlike ``acosh(−c⟨a, b⟩_L)`` (refs/kernels.md
        §2.3); the same value as :meth:`dist`.
        """
        d = self.dim + 1
        q = ops.relu(ops.sqdist(ops.slice(a, 1, d), ops.slice(b, 1, d)) - ops.sqdist(ops.slice(a, 0, 1), ops.slice(b, 0, 1)))
        sc = math.sqrt(self.c)
        return (2 / sc) * ops.asinh((0.5 * sc) * ops.sqrt(q))

    def dist0(self, x, *, keepdim=False):
        """``dist(o, x) = asinh(√c |x_{1:}|) / √c``; ``(*batch,)``."""
        sc = math.sqrt(self.c)
        return torch.asinh(sc * safe_norm(x[..., 1:], keepdim=keepdim)) / sc

    def expmap(self, x, u):
        """``cosh(√c‖u‖_L) x + sinhc(√c‖u‖_L) u`` then :meth:`projx`; ``(*batch, d + 1)``."""
        t = math.sqrt(self.c) * self.norm(x, u, keepdim=True)
        return self.projx(torch.cosh(t) * x + _sinhc(t) * u)

    def logmap(self, x, y):
        """Tangent vector at ``x`` of norm ``dist(x, y)`` pointing to ``y`` (see class doc); ``(*batch, d + 1)``."""
        d, q = self._chord_sq(x, y, True)
        v = d - (0.5 * self.c * q) * x
        s = 0.5 * math.sqrt(self.c) * safe_sqrt(q)
        return (_asinhc(s) / torch.sqrt(1 + s * s)) * v

    def expmap0(self, u):
        """``expmap(o, u)`` for ``u`` tangent at the origin (``u₀`` is ignored)."""
        us = u[..., 1:]
        sc = math.sqrt(self.c)
        t = sc * safe_norm(us, keepdim=True)
        return self.projx(torch.cat((torch.cosh(t) / sc, _sinhc(t) * us), dim=-1))

    def logmap0(self, y):
        """``logmap(o, y) = (0, asinh(√c|y_{1:}|)/(√c|y_{1:}|) · y_{1:})``."""
        ys = y[..., 1:]
        t = math.sqrt(self.c) * safe_norm(ys, keepdim=True)
        return torch.cat((torch.zeros_like(y[..., :1]), _asinhc(t) * ys), dim=-1)

    # ------------------------------------------------------------------ transport
    def transp(self, x, y, v):
        """Parallel transport ``v + c⟨y, v⟩_L / (1 − c⟨x, y⟩_L) · (x + y)`` from ``x`` to ``y``; ``(*batch, d + 1)``."""
        coef = self.c * _minkowski(y, v, True) / (1 - self.c * _minkowski(x, y, True))
        return v + coef * (x + y)

    def transp_follow_expmap(self, x, u, v):
        return self.transp(x, self.expmap(x, u), v)

    # ------------------------------------------------------------------ model maps
    def to_poincare(self, x: torch.Tensor) -> torch.Tensor:
        """Isometry onto :class:`PoincareBall` ``(dim, c)``: ``x_{1:} / (1 + √c x₀)``; ``(*batch, d)``."""
        return x[..., 1:] / (1 + math.sqrt(self.c) * x[..., :1])

    def from_poincare(self, p: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_poincare`: ``((1 + c|p|²)/√c, 2p) / (1 − c|p|²)``; ``(*batch, d + 1)``."""
        sc = math.sqrt(self.c)
        r = sc * safe_norm(p, keepdim=True)
        b = ((1 - r) * (1 + r)).clamp_min(torch.finfo(p.dtype).tiny)
        return torch.cat(((1 + r * r) / (sc * b), 2 * p / b), dim=-1)

    # ------------------------------------------------------------------ sampling
    def random(self, *size, dtype=None, device=None, generator=None, std: float = 1.0):
        """Wrapped normal at the origin of scale ``std``; ``size`` is the full shape ``(..., d + 1)``."""
        size = self._check_size(size)
        n = torch.randn(size, dtype=dtype, device=device, generator=generator)
        return self.expmap0(std * n)

    random_normal = random

    def random_base(self, *size, dtype=None, device=None, generator=None):
        """Sample the base distribution (wrapped normal at the origin, ``σ = base_std``)."""
        return self.random(*size, dtype=dtype, device=device, generator=generator, std=self.base_std)

    def base_log_prob(self, x):
        """Log-density of :meth:`random_base` w.r.t. the Riemannian volume; ``(*batch, d + 1)`` → ``(*batch,)``."""
        sc = math.sqrt(self.c)
        r = self.dist0(x)
        s = self.base_std
        d = self.dim
        return -0.5 * d * math.log(2 * math.pi * s * s) - r * r / (2 * s * s) - (d - 1) * _log_sinhc(sc * r)

    def extra_repr(self):
        return f"dim={self.dim}, c={self.c}"
