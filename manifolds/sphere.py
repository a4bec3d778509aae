"""The unit sphere Sⁿ ⊂ ℝⁿ⁺¹ in extrinsic coordinates."""

from __future__ import annotations

import math

import torch

from ._numerics import dot, safe_norm, sinc, sinc_half_sq
from .base import Manifold

__all__ = ["Sphere"]


class Sphere(Manifold):
    r"""The unit sphere :math:`S^n = \{x \in \mathbb{R}^{n+1} : \|x\| = 1\}` with the round metric.

    Points are unit vectors ``(*batch, n + 1)``; tangent vectors at ``x`` are ambient
    vectors orthogonal to ``x``. Formulas (e.g. Absil, Mahony & Sepulchre, *Optimization
    Algorithms on Matrix Manifolds*, 2008, Ex. 5.4.1 and §8.1):

    * ``dist(x, y) = 2 atan2(|x - y|, |x + y|)``: the angle, accurate to a few ulps
      everywhere, including 1e-4 rad in float32 (an ``acos`` of the clamped inner
      product, as in geoopt, floors at 0.014 rad in float32).
    * ``expmap(x, u) = cos(|u|) x + sinc(|u|) u`` (renormalised to unit length).
    * ``logmap(x, y) = θ v / |v|`` with ``v = P_x(y - x)`` and ``θ = dist(x, y)``.
    * parallel transport along ``t -> expmap(x, t u)`` with ``θ = |u|``:
      ``v - <u, v> ((1 - cos θ)/θ² u + sinc(θ) x)``.

    **Special points.** All values and gradients are finite at ``x == y`` (there the
    gradient of ``dist`` is the zero subgradient) and at antipodal points. At an exact
    antipode ``y = -x`` the minimising geodesic is not unique: ``logmap`` returns the
    vector of length π towards the coordinate axis ``e_0`` if ``|x_0| <= |x_1|`` else ``e_1``
    (projected onto the tangent space); the same holds within rounding of the antipode
    (``|P_x(y)| < 8 eps`` of the dtype, where the direction of ``y`` is noise), so
    ``expmap(x, logmap(x, -x)) == -x`` and ``|logmap(x, y)| == dist(x, y)`` hold
    everywhere; ``transp`` follows that geodesic. (geoopt and flow_matching return a
    zero vector there.)

    Args:
        dim: intrinsic dimension ``n`` (``2`` for the ordinary sphere S² in ℝ³).

    Raises:
        ValueError: ``dim`` is not a positive integer.

    Example:
        >>> S2 = Sphere(2)
        >>> x, y = S2.random(2, 3)
        >>> torch.allclose(S2.expmap(x, S2.logmap(x, y)), y, atol=1e-5)
        True
    """

    name = "Sphere"
    reversible = False
    ndim = 1

    def __init__(self, dim: int = 2):
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"Sphere dim must be a positive int (n of S^n), got {dim!r}")
        self.dim = dim
        self.event_shape = (dim + 1,)

    # ------------------------------------------------------------------ checks
    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=0.0):
        err = (safe_norm(x) - 1).abs().max() if x.numel() else torch.zeros(())
        if err > atol + rtol:
            return False, f"points must have unit norm: max | |x| - 1 | = {float(err):.3g} > {atol + rtol:.3g}"
        return True, None

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=0.0):
        err = dot(x, u).abs()
        tol = atol + rtol * u.norm(dim=-1)
        if u.numel() and bool((err > tol).any()):
            return False, f"tangent vectors must be orthogonal to x: max |<x, u>| = {float(err.max()):.3g}"
        return True, None

    # ------------------------------------------------------------------ metric
    def inner(self, x, u, v=None, *, keepdim=False):
        """``<u, v>`` (ambient dot product); shape ``(*batch,)``."""
        return dot(u, u if v is None else v, keepdim)

    def norm(self, x, u, *, keepdim=False):
        return safe_norm(u, keepdim=keepdim)

    def proju(self, x, u):
        """Orthogonal projection ``u - <x, u> x`` onto the tangent space at ``x``."""
        return u - dot(x, u, True) * x

    egrad2rgrad = proju

    def projx(self, x):
        """Closest point ``x / |x|`` (a zero vector has no projection: NaN)."""
        return x / safe_norm(x, keepdim=True)

    def dist(self, x, y, *, keepdim=False):
        """Great-circle distance in rad, ``2 atan2(|x - y|, |x + y|)``, in ``[0, π]``."""
        return 2 * torch.atan2(safe_norm(x - y, keepdim=keepdim), safe_norm(x + y, keepdim=keepdim))

    has_kernel_formula = True

    def kernel_dist(self, a, b, ops):
        """Chord form ``2 atan2(|a − b|, |a + b|)`` of the great-circle distance (see :meth:`Manifold.kernel_dist`).

        Float32-safe near coincident points, unlike ``acos⟨a, b⟩`` whose gradient is 20×
        too large there in float32 (refs/kernels.md §2.3), and near antipodes, unlike
        ``2 asin(|a − b| / 2)`` (error ~√eps, infinite gradient at ``a == −b``); zero
        gradient at ``a == b`` and at ``a == −b``.
        """
        return 2 * ops.atan2(ops.sqrt(ops.sqdist(a, b)), ops.sqrt(ops.sqnorm(a + b)))

    # ------------------------------------------------------------------ exp / log
    def expmap(self, x, u):
        """``cos(|u|) x + sinc(|u|) u``; ``u`` may be longer than π (wraps around)."""
        n = safe_norm(u, keepdim=True)
        y = torch.cos(n) * x + sinc(n) * u
        return y / safe_norm(y, keepdim=True)

    def logmap(self, x, y):
        """Tangent vector at ``x`` of length ``dist(x, y)`` pointing to ``y`` (antipodes: see class doc)."""
        d = y - x
        nd = safe_norm(d, keepdim=True)
        theta = 2 * torch.atan2(nd, safe_norm(x + y, keepdim=True))
        # P_x(y - x) = d + |d|²/2 x for unit x, y; the projection removes the rounding.
        # It divides by |x|², so inputs a few ulps off the sphere (e.g. float32 data cast
        # to float64) leave no radial residue for θ / |v| to amplify near the antipode.
        xx = dot(x, x, True)
        a = d + (0.5 * nd * nd) * x
        v = a - (dot(x, a, True) / xx) * x
        nv = safe_norm(v, keepdim=True)
        dt = x.dtype
        small = theta < (1e-2 if dt in (torch.float32, torch.float16, torch.bfloat16) else 1e-4)
        # Within rounding of the antipode (|v| ~ eps) v is noise: its direction is arbitrary
        # and its rounding leaves the tangent space once scaled to length θ ≈ π.
        degenerate = (nv < 8 * torch.finfo(dt).eps) & (theta > 0.5 * math.pi)
        nv_safe = torch.where(small | degenerate, torch.ones_like(nv), nv)
        theta2 = theta * theta
        # θ / sin θ = 1 + θ²/6 + 7θ⁴/360 + ...; the θ⁴ term is below eps at these thresholds.
        scale = torch.where(small, 1 + theta2 / 6, theta / nv_safe)
        # Antipode: any unit tangent direction is a minimising one. Take the axis e_0 or
        # e_1, whichever is less aligned with x (then |P_x e| >= 1/sqrt(2)): deterministic,
        # well conditioned, and cheap (no argmin / scatter).
        first = x[..., :1].abs() <= x[..., 1:2].abs()
        eye = torch.eye(2, x.shape[-1], dtype=dt, device=x.device)
        e = torch.where(first, eye[0], eye[1])
        w = e - (torch.where(first, x[..., :1], x[..., 1:2]) / xx) * x
        w = w / safe_norm(w, keepdim=True)
        return torch.where(degenerate, theta * w, scale * v)

    # ------------------------------------------------------------------ transport
    def transp_follow_expmap(self, x, u, v):
        """Parallel transport of ``v`` (tangent at ``x``) along ``t -> expmap(x, t u)``, ``t ∈ [0, 1]``."""
        n = safe_norm(u, keepdim=True)
        return v - dot(u, v, True) * (sinc_half_sq(n) * u + sinc(n) * x)

    def transp(self, x, y, v):
        """Parallel transport of ``v`` from ``x`` to ``y`` along the minimising geodesic."""
        return self.transp_follow_expmap(x, self.logmap(x, y), v)

    def expmap_transp(self, x, u, v):
        """``(expmap(x, u), transp_follow_expmap(x, u, v))`` sharing ``|u|``, ``sin`` and ``cos``."""
        n = safe_norm(u, keepdim=True)
        sc = sinc(n)
        y = torch.cos(n) * x + sc * u
        y = y / safe_norm(y, keepdim=True)
        return y, v - dot(u, v, True) * (sinc_half_sq(n) * u + sc * x)

    def geodesic_velocity(self, x, u):
        """``d/ds expmap(x, s u)`` at ``s = 1``: ``cos(|u|) u - |u| sin(|u|) x``."""
        n = safe_norm(u, keepdim=True)
        return torch.cos(n) * u - (n * n * sinc(n)) * x

    # ------------------------------------------------------------------ sampling
    def random(self, *size, dtype=None, device=None, generator=None):
        """Uniform samples (normalised Gaussians); ``size`` is the full shape ``(..., n + 1)``."""
        size = self._check_size(size)
        x = torch.randn(size, dtype=dtype, device=device, generator=generator)
        return self.projx(x)

    random_uniform = random

    def random_base(self, *size, dtype=None, device=None, generator=None):
        """The base distribution: uniform w.r.t. the Riemannian volume."""
        return self.random(*size, dtype=dtype, device=device, generator=generator)

    def log_volume(self) -> float:
        """``log |S^n| = log 2 + (n+1)/2 log π - lgamma((n+1)/2)`` (4π for S²)."""
        m = self.dim + 1
        return math.log(2.0) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)

    def base_log_prob(self, x):
        """Uniform log-density ``-log |S^n|`` (``-log 4π`` on S²), shape ``(*batch,)``."""
        return torch.full(x.shape[:-1], -self.log_volume(), dtype=x.dtype, device=x.device)

    def extra_repr(self):
        return f"dim={self.dim}"
