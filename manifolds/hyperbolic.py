r"""Hyperbolic space of curvature −c in two models: the Poincaré ball and the hyperboloid.

* :class:`PoincareBall` — the ball ``{x ∈ ℝᵈ : c|x|² < 1}`` with the conformal metric
  ``g_x = λ_x² I``, ``λ_x = 2 / (1 − c|x|²)``, and its gyrovector-space structure
  (Möbius addition, gyrations, Möbius scalar multiplication). Sources: A. Ungar,
  *Analytic Hyperbolic Geometry and Albert Einstein's Special Theory of Relativity*
  (2008), ch. 3 and 6; O. Ganea, G. Bécigneul & T. Hofmann, "Hyperbolic Neural Networks",
  NeurIPS 2018, §2 (eq. (3)–(6), Lemma 2, Thm 4); O. Skopek, O.-E. Ganea & G. Bécigneul,
  "Mixed-curvature Variational Autoencoders", ICLR 2020 (κ-stereographic model, κ = −c).
* :class:`Hyperboloid` — the Lorentz model ``{x ∈ ℝᵈ⁺¹ : ⟨x, x⟩_L = −1/c, x₀ > 0}``,
  ``⟨x, y⟩_L = −x₀y₀ + Σᵢ xᵢyᵢ``. Source: M. Nickel & D. Kiela, "Learning Continuous
  Hierarchies in the Lorentz Model of Hyperbolic Geometry", ICML 2018, §3.

Both carry the wrapped normal at the origin as base distribution (Y. Nagano, S. Yamaguchi,
Y. Fujita & M. Koyama, "A Wrapped Normal Distribution on Hyperbolic Space for
Gradient-Based Learning", ICML 2019, eq. (7); E. Mathieu et al., "Continuous Hierarchical
Representations with Poincaré Variational Auto-Encoders", NeurIPS 2019, App. B).

**Numerics.** Distances use chord forms that stay accurate for close points in float32:
``dist = 2/√c · asinh(√c ‖x − y‖ / …)`` with the difference ``x − y`` computed directly, never
an ``arcosh`` / ``artanh`` of a quantity close to 1 (geoopt's ``Lorentz.dist`` floors in
float32 because ``arcosh`` clamps its argument at ``1 + 1e-15`` in float64 only after a
float32 inner product). Every ``f(t)/t`` factor (``tanh``, ``sinh``, ``asinh``, ``artanh``)
is evaluated through a Taylor branch below a dtype-dependent threshold with the
double-``where`` trick, so values and gradients are finite at ``x == y``, at ``u = 0``
and at the origin. Nothing in the geometric verbs synchronises with the host.

Only negative curvature is supported (``c > 0``, i.e. κ = −c < 0): the positively curved
stereographic model (κ > 0, geoopt's ``SphereProjection``) is not implemented here; use
:class:`manifolds.Sphere`.
"""

from __future__ import annotations

import math
from typing import Hashable, Tuple, Union

import torch
import torch.nn.functional as F

from ._numerics import dot, safe_norm, safe_sqrt
from .base import Manifold

__all__ = ["PoincareBall", "Hyperboloid"]

Scalar = Union[float, torch.Tensor]

# ------------------------------------------------------------------ private helpers
_LOW = (torch.float16, torch.bfloat16, torch.float32)


def _small_thr(dtype: torch.dtype) -> float:
    """Below this argument the f(t)/t helpers use their Taylor series (error < eps)."""
    return 1e-2 if dtype in _LOW else 1e-3


def _boundary_margin(dtype: torch.dtype) -> float:
    """Relative distance to the ball's boundary kept by ``projx`` (10 ulps of 1)."""
    return 10.0 * torch.finfo(dtype).eps


def _split_small(t: torch.Tensor):
    small = t.abs() < _small_thr(t.dtype)
    return small, torch.where(small, torch.ones_like(t), t)


def _tanhc(t: torch.Tensor) -> torch.Tensor:
    """``tanh(t) / t`` (1 at 0): Taylor ``1 − t²/3 + 2t⁴/15`` near 0."""
    small, ts = _split_small(t)
    t2 = t * t
    return torch.where(small, 1 - t2 / 3 + 2 * t2 * t2 / 15, torch.tanh(ts) / ts)


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


def _artanh_clamp(t: torch.Tensor) -> torch.Tensor:
    """Clamp ``t`` into ``[0, 1 − margin]`` (margin = 10 ulps of 1 in the dtype)."""
    return t.clamp(0.0, 1.0 - _boundary_margin(t.dtype))


def _artanhc(t: torch.Tensor) -> torch.Tensor:
    """``artanh(t) / t`` for ``t ∈ [0, 1)`` (1 at 0; ``t`` clamped below 1 by a dtype margin)."""
    t = _artanh_clamp(t)
    small, ts = _split_small(t)
    t2 = t * t
    return torch.where(small, 1 + t2 / 3 + t2 * t2 / 5, torch.atanh(ts) / ts)


def _log_sinhc(t: torch.Tensor) -> torch.Tensor:
    """``log(sinh(t) / t)`` for ``t ≥ 0`` without overflow: ``t + log(−expm1(−2t)) − log(2t)``."""
    small, ts = _split_small(t)
    t2 = t * t
    big = ts + torch.log(-torch.expm1(-2 * ts)) - torch.log(2 * ts)
    return torch.where(small, t2 / 6 - t2 * t2 / 180, big)


def _positive_float(value, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a positive finite number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{what} must be a positive finite number, got {value!r}")
    return v


def _check_dim(dim, cls: str) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"{cls} dim must be a positive int, got {dim!r}")
    return dim


# ====================================================================== Poincaré ball
class PoincareBall(Manifold):
    r"""The Poincaré ball of curvature −c (κ-stereographic model with κ = −c < 0).

    Points are ``(*batch, d)`` vectors with ``c|x|² < 1``; tangent vectors are any
    ``(*batch, d)`` vectors. Metric ``g_x = λ_x² I`` with the conformal factor
    ``λ_x = 2 / (1 − c|x|²)`` (Ganea et al. 2018, §2.1).

    Gyrovector operations (Ungar 2008, Def. 3.40, eq. (3.178), Thm 3.13; Ganea et al.
    2018, eq. (3), (4), Lemma 2, eq. (5)):

    * ``mobius_add(x, y) = ((1 + 2c⟨x,y⟩ + c|y|²) x + (1 − c|x|²) y) / (1 + 2c⟨x,y⟩ + c²|x|²|y|²)``
      (alias ``gyro_add``), ``gyro_inv(x) = −x``;
    * ``gyration(a, b, u) = ⊖(a ⊕ b) ⊕ (a ⊕ (b ⊕ u))`` in closed form (geoopt's
      simplification, no nested Möbius additions);
    * ``mobius_scalar_mul(r, x) = tanh(r artanh(√c|x|)) x / (√c|x|)`` (alias ``gyro_scalar_mul``);
    * ``mobius_matvec(M, x) = tanh(|Mx|/|x| · artanh(√c|x|)) Mx / (√c|Mx|)``.

    Riemannian verbs:

    * ``dist(x, y) = 2/√c · artanh(√c |(−x) ⊕ y|)``, evaluated as the equal chord form
      ``2/√c · asinh(√c |x − y| / √((1 − c|x|²)(1 − c|y|²)))`` (from
      ``cosh(√c d) = 1 + 2c|x − y|² / ((1 − c|x|²)(1 − c|y|²))``): relative accuracy of a
      few ulps for close points and near the boundary, no ``artanh`` clamp needed.
    * ``expmap(x, u) = x ⊕ tanh(√c λ_x |u| / 2) u / (√c|u|)``;
      ``logmap(x, y) = 2/(√c λ_x) artanh(√c|w|) w/|w|``, ``w = (−x) ⊕ y`` (Ganea et al.
      2018, Lemma 2), the numerator of ``w`` written ``(1 − c|x|²)(y − x) − c|x − y|² x``
      (no cancellation) and ``artanh`` expressed through the chord form above.
    * ``transp(x, y, v) = gyr[y, −x] v · λ_x / λ_y`` (Skopek et al. 2020, App. B.3.5).
    * ``proju`` is the identity; ``egrad2rgrad(x, u) = u / λ_x²``;
      ``projx`` clips to the radius ``(1 − 10 eps) / √c`` (eps of the dtype).

    Base distribution: the wrapped normal at the origin, ``x = expmap0(v)`` with
    ``v ~ N(0, σ² I)`` in the Riemannian norm at 0 (Euclidean ``v = σ n / λ_0 = σ n / 2``).
    Its log-density w.r.t. the Riemannian volume, ``r = dist(0, x)``, is
    ``−d/2 log(2πσ²) − r²/(2σ²) − (d − 1) log(sinh(√c r) / (√c r))`` (Nagano et al.
    2019, eq. (7); Mathieu et al. 2019, App. B).

    Args:
        dim: dimension ``d`` of the ball.
        c: curvature magnitude ``c > 0`` (sectional curvature −c). Default 1.
        learnable: make ``c`` an ``nn.Parameter`` (softplus-parametrised, so it stays > 0).
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
    reversible = False
    ndim = 1

    def __init__(self, dim: int = 2, c: float = 1.0, learnable: bool = False, base_std: float = 1.0):
        super().__init__()
        self.dim = _check_dim(dim, "PoincareBall")
        self.event_shape = (self.dim,)
        c = _positive_float(c, "PoincareBall curvature magnitude c")
        self.base_std = _positive_float(base_std, "PoincareBall base_std")
        self.learnable = bool(learnable)
        if self.learnable:
            # softplus⁻¹(c) = log(expm1(c))
            self.raw_c = torch.nn.Parameter(torch.tensor(math.log(math.expm1(c)), dtype=torch.get_default_dtype()))
        else:
            self._c = c

    # ------------------------------------------------------------------ curvature
    @property
    def c(self) -> Scalar:
        """Curvature magnitude ``c`` (a float, or a 0-dim tensor when learnable)."""
        return F.softplus(self.raw_c) if self.learnable else self._c

    @property
    def k(self) -> Scalar:
        """Sectional curvature κ = −c (geoopt's name)."""
        return -self.c

    def _cs(self, x: torch.Tensor) -> Tuple[Scalar, Scalar]:
        """``(c, √c)`` as floats, or as tensors of ``x``'s dtype/device when learnable."""
        if self.learnable:
            c = F.softplus(self.raw_c).to(dtype=x.dtype, device=x.device)
            return c, c.sqrt()
        return self._c, math.sqrt(self._c)

    def _key(self) -> Hashable:
        if self.learnable:
            return (type(self).__name__, self.event_shape, "learnable", id(self))
        return (type(self).__name__, self.event_shape, self._c)

    # ------------------------------------------------------------------ checks
    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=0.0):
        _, sc = self._cs(x)
        r = sc * safe_norm(x)
        if x.numel() and bool((r >= 1).any()):
            return False, (
                f"points must lie inside the ball of radius 1/sqrt(c) = {1 / float(sc):.6g}: "
                f"max sqrt(c)|x| = {float(r.max()):.6g} >= 1"
            )
        return True, None

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=0.0):
        return True, None  # every vector of ℝᵈ is tangent

    # ------------------------------------------------------------------ metric
    def _one_minus_cx2(self, x: torch.Tensor, keepdim: bool = True) -> torch.Tensor:
        """``1 − c|x|² = (1 − √c|x|)(1 + √c|x|)``, accurate near the boundary, clamped > 0."""
        _, sc = self._cs(x)
        r = sc * safe_norm(x, keepdim=keepdim)
        return ((1 - r) * (1 + r)).clamp_min(torch.finfo(x.dtype).tiny)

    def lambda_x(self, x: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """Conformal factor ``λ_x = 2 / (1 − c|x|²)``; ``x: (*batch, d)`` → ``(*batch,)`` (or ``(*batch, 1)``)."""
        return 2 / self._one_minus_cx2(x, keepdim=keepdim)

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
        """Riemannian gradient ``u / λ_x² = u (1 − c|x|²)² / 4``."""
        b = self._one_minus_cx2(x)
        return u * (0.25 * b * b)

    def projx(self, x):
        """Clip ``|x|`` to ``(1 − 10 eps) / √c`` (eps of the dtype); points inside are unchanged."""
        _, sc = self._cs(x)
        n = safe_norm(x, keepdim=True)
        maxn = (1 - _boundary_margin(x.dtype)) / sc
        scale = torch.where(n > maxn, maxn / n.clamp_min(torch.finfo(x.dtype).tiny), torch.ones_like(n))
        return x * scale

    def origin_point(self, x: torch.Tensor) -> torch.Tensor:
        """The centre ``0`` of the ball, shaped like ``x`` (used by the optimizers' weight decay)."""
        return torch.zeros_like(x)

    # ------------------------------------------------------------------ gyrovector space
    def mobius_add(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Möbius addition ``x ⊕ y`` (Ungar 2008, eq. (3.178); Ganea et al. 2018, eq. (3)).

        ``x, y: (*batch, d)`` → ``(*batch, d)``. Not commutative, not associative
        (gyrocommutative, gyroassociative).
        """
        c, _ = self._cs(x)
        # With s = x + y: 1 + 2c⟨x,y⟩ + c|y|² = (1 − c|x|²) + c|s|² and
        # 1 + 2c⟨x,y⟩ + c²|x|²|y|² = (1 − c|x|²)(1 − c|y|²) + c|s|²: no cancellation
        # near the boundary or for y ≈ −x.
        s = x + y
        s2 = dot(s, s, True)
        bx = self._one_minus_cx2(x)
        num = bx * s + (c * s2) * x
        den = bx * self._one_minus_cx2(y) + c * s2
        return num / den

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
        Euclidean norm); ``gyr[a, b] = I`` when ``a`` or ``b`` is 0.
        """
        c, _ = self._cs(a)
        # geoopt's closed form (Skopek et al. 2020, App. B) rewritten with s = a + b so that it
        # stays accurate for b ≈ −a near the boundary (the case of ``transp``):
        # gyr[a, b] u = u + 2 (P a + Q s) / D with
        #   P = c (1 − c|b|²) ⟨s,u⟩ + c² ⟨b,u⟩ |s|²,  Q = −c ((1 − c|a|²) ⟨a,u⟩ + c |a|² ⟨s,u⟩),
        #   D = (1 − c|a|²)(1 − c|b|²) + c|s|²  (= 1 + 2c⟨a,b⟩ + c²|a|²|b|²).
        s = a + b
        s2 = dot(s, s, True)
        su = dot(s, u, True)
        au = dot(a, u, True)
        bu = dot(b, u, True)
        ba = self._one_minus_cx2(a)
        bb = self._one_minus_cx2(b)
        p = c * bb * su + (c * c) * bu * s2
        q = -c * (ba * au + c * dot(a, a, True) * su)
        d = ba * bb + c * s2
        return u + 2 * (p * a + q * s) / d

    def mobius_scalar_mul(self, r: Scalar, x: torch.Tensor) -> torch.Tensor:
        """Möbius scalar multiplication ``r ⊗ x = tanh(r artanh(√c|x|)) x / (√c|x|)`` (Ganea et al. 2018, eq. (4)).

        Args:
            r: scalar or tensor broadcastable to ``(*batch, 1)``.
            x: ``(*batch, d)`` points.

        Returns:
            ``(*batch, d)``, evaluated as ``r tanhc(r a) artanhc(√c|x|) x`` with
            ``a = artanh(√c|x|)`` so that ``x = 0`` gives 0 with finite gradients.
        """
        _, sc = self._cs(x)
        t = sc * safe_norm(x, keepdim=True)
        ac = _artanhc(t)
        return r * _tanhc(r * t * ac) * ac * x

    gyro_scalar_mul = mobius_scalar_mul

    def mobius_matvec(self, m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Möbius matrix-vector product ``M ⊗ x = tanh(|Mx|/|x| artanh(√c|x|)) Mx / (√c|Mx|)`` (Ganea et al. 2018, eq. (5)).

        Args:
            m: ``(*batch, n, d)`` matrix (``(n, d)`` broadcasts over the batch).
            x: ``(*batch, d)`` points.

        Returns:
            ``(*batch, n)`` points of the n-dimensional ball of the same curvature; 0 when
            ``Mx = 0`` (finite gradients there).
        """
        _, sc = self._cs(x)
        mx = (m @ x.unsqueeze(-1)).squeeze(-1)
        t = sc * safe_norm(x, keepdim=True)
        ac = _artanhc(t)
        return _tanhc(sc * safe_norm(mx, keepdim=True) * ac) * ac * mx

    # ------------------------------------------------------------------ distance, exp, log
    def _chord(self, x, y, keepdim=True):
        """``(z, |x−y|, num, den, Bx, By)`` shared by :meth:`dist` and :meth:`logmap`."""
        c, sc = self._cs(x)
        diff = y - x
        dn = safe_norm(diff, keepdim=keepdim)
        bx = self._one_minus_cx2(x, keepdim=keepdim)
        by = self._one_minus_cx2(y, keepdim=keepdim)
        z = sc * dn / (bx * by).sqrt()
        return z, dn, diff, bx, by

    def dist(self, x, y, *, keepdim=False):
        """Geodesic distance ``2/√c · asinh(√c|x − y| / √((1 − c|x|²)(1 − c|y|²)))``; ``(*batch,)``.

        Equal to ``2/√c artanh(√c|(−x) ⊕ y|)`` (Ganea et al. 2018, eq. (6)); finite value
        and gradient at ``x == y`` (the zero subgradient).
        """
        _, sc = self._cs(x)
        z = self._chord(x, y, keepdim)[0]
        return 2 * torch.asinh(z) / sc

    def dist0(self, x, *, keepdim=False):
        """``dist(0, x) = 2/√c · asinh(√c|x| / √(1 − c|x|²))``; ``(*batch,)``."""
        _, sc = self._cs(x)
        z = sc * safe_norm(x, keepdim=keepdim) / self._one_minus_cx2(x, keepdim=keepdim).sqrt()
        return 2 * torch.asinh(z) / sc

    def expmap(self, x, u):
        """``x ⊕ tanh(√c λ_x|u|/2) u/(√c|u|)`` (Ganea et al. 2018, Lemma 2), projected into the ball.

        ``x, u: (*batch, d)`` → ``(*batch, d)``; ``u = 0`` gives ``x``.
        """
        _, sc = self._cs(x)
        lam = self.lambda_x(x, keepdim=True)
        half = 0.5 * lam * u
        s = sc * safe_norm(half, keepdim=True)
        return self.projx(self.mobius_add(x, _tanhc(s) * half))

    def logmap(self, x, y):
        """Tangent vector at ``x`` of Riemannian length ``dist(x, y)`` pointing to ``y`` (Ganea et al. 2018, Lemma 2).

        ``x, y: (*batch, d)`` → ``(*batch, d)``. Evaluated as
        ``asinhc(z) √((1−c|x|²)/(1−c|y|²)) num / √den`` with ``num = (1 − c|x|²)(y − x) − c|x−y|² x``
        (the numerator of ``(−x) ⊕ y``) and ``den = (1−c|x|²)(1−c|y|²) + c|x−y|²``: no
        cancellation for close points, 0 with finite gradients at ``x == y``.
        """
        c, _ = self._cs(x)
        z, dn, diff, bx, by = self._chord(x, y, True)
        num = bx * diff - (c * dn * dn) * x
        den = bx * by + c * dn * dn
        return _asinhc(z) * (bx / by).sqrt() * num / den.sqrt()

    def expmap0(self, u):
        """``expmap(0, u) = tanh(√c|u|) u / (√c|u|)``; ``(*batch, d)``."""
        _, sc = self._cs(u)
        return self.projx(_tanhc(sc * safe_norm(u, keepdim=True)) * u)

    def logmap0(self, y):
        """``logmap(0, y) = artanh(√c|y|) y / (√c|y|)``; ``(*batch, d)``."""
        _, sc = self._cs(y)
        t = sc * safe_norm(y, keepdim=True)
        root = ((1 - t) * (1 + t)).clamp_min(torch.finfo(y.dtype).tiny).sqrt()
        # artanh(t)/t = asinh(z)/z · z/t with z = t/√(1−t²): accurate up to the boundary
        return _asinhc(t / root) * y / root

    # ------------------------------------------------------------------ transport
    def transp(self, x, y, v):
        """Parallel transport ``gyr[y, −x] v · λ_x / λ_y`` along the geodesic from ``x`` to ``y``.

        ``x, y, v: (*batch, d)`` → ``(*batch, d)`` (Skopek et al. 2020, App. B.3.5; geoopt's
        ``PoincareBall.transp``). Preserves ``inner``.
        """
        return self.gyration(y, -x, v) * (self._one_minus_cx2(y) / self._one_minus_cx2(x))

    def transp0(self, y, v):
        """Transport from the origin: ``v · λ_0 / λ_y = v (1 − c|y|²)``."""
        return v * self._one_minus_cx2(y)

    def transp_follow_expmap(self, x, u, v):
        return self.transp(x, self.expmap(x, u), v)

    # ------------------------------------------------------------------ sampling
    def random(self, *size, dtype=None, device=None, generator=None, std: float = 1.0):
        """Wrapped normal at the origin of Riemannian scale ``std``; ``size`` is the full shape ``(..., d)``."""
        size = self._check_size(size)
        n = torch.randn(size, dtype=dtype, device=device, generator=generator)
        return self.expmap0((0.5 * std) * n)

    random_normal = random

    def random_base(self, *size, dtype=None, device=None, generator=None):
        """Sample the base distribution (wrapped normal at 0 with ``σ = base_std``)."""
        return self.random(*size, dtype=dtype, device=device, generator=generator, std=self.base_std)

    def base_log_prob(self, x):
        """Log-density of :meth:`random_base` w.r.t. the Riemannian volume; ``x: (*batch, d)`` → ``(*batch,)``.

        ``−d/2 log(2πσ²) − r²/(2σ²) − (d − 1) log(sinh(√c r)/(√c r))``, ``r = dist(0, x)``
        (Nagano et al. 2019, eq. (7)).
        """
        _, sc = self._cs(x)
        r = self.dist0(x)
        s = self.base_std
        d = self.dim
        return -0.5 * d * math.log(2 * math.pi * s * s) - r * r / (2 * s * s) - (d - 1) * _log_sinhc(sc * r)

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
