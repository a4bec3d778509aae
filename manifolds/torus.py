"""The flat torus (S¹)ᵈ in angle coordinates."""

from __future__ import annotations

import math

import torch

from ._numerics import safe_norm
from .base import Manifold

__all__ = ["Torus"]

_TWO_PI = 2.0 * math.pi


def _wrap(x: torch.Tensor) -> torch.Tensor:
    """Angles reduced to ``[0, 2π)``, derivative 1 everywhere.

    ``torch.remainder`` can round a tiny negative angle up to exactly ``2π`` (e.g.
    ``-1e-10`` in float32); the ``where`` maps that value back to ``0`` so the result
    is always inside the half-open interval. No host synchronisation.
    """
    r = torch.remainder(x, _TWO_PI)
    return torch.where(r >= _TWO_PI, r - _TWO_PI, r)


def _wrap_pi(d: torch.Tensor) -> torch.Tensor:
    """Angle differences reduced to ``[-π, π)`` as ``atan2(sin d, cos d)``, derivative 1.

    ``atan2`` returns values in ``[-π, π]``; an exact ``+π`` (the antipode, within the
    rounding of ``sin d``) is mapped to ``-π`` so the result lies in ``[-π, π)``.
    """
    r = torch.atan2(torch.sin(d), torch.cos(d))
    return torch.where(r >= math.pi, r - _TWO_PI, r)


class Torus(Manifold):
    r"""The flat torus :math:`T^d = (S^1)^d` in angle coordinates, with the flat metric.

    Used for protein backbone / RNA torsion angles by Chen & Lipman, "Flow Matching on
    General Geometries", ICLR 2024 (§5, flat tori), and by De Bortoli et al., "Riemannian
    Score-Based Generative Modelling", NeurIPS 2022.

    **Coordinates.** A point is a ``(*batch, d)`` tensor of angles in **[0, 2π)** (rad);
    a tangent vector is any ``(*batch, d)`` tensor of ℝᵈ (rad). The metric is the
    Euclidean one of ℝᵈ pulled back through the covering map ℝᵈ → Tᵈ, so:

    * ``inner(x, u, v) = <u, v>``; ``proju`` and ``egrad2rgrad`` are the identity.
    * ``expmap(x, u) = wrap(x + u)`` with ``wrap`` the reduction to ``[0, 2π)``
      (``u`` may be longer than π: it winds around).
    * ``logmap(x, y) = atan2(sin(y - x), cos(y - x))``, coordinate by coordinate, in
      ``[-π, π)``: smooth with derivative 1 away from the cut locus.
    * ``dist(x, y) = |logmap(x, y)|`` ∈ ``[0, π√d]``.
    * parallel transport is the identity (the torus is flat);
      ``geodesic_velocity(x, u) = u``.
    * ``projx`` = ``wrap``: any real angles become a point.

    **Special points.** At ``x == y`` ``dist`` has the zero subgradient (``safe_norm``).
    At the cut locus (some coordinate with ``|y_i - x_i| = π`` mod 2π) both ``±π`` are
    minimising; ``logmap`` returns ``-π`` in that coordinate (within rounding of
    ``sin(y_i - x_i)``, which decides which side ``atan2`` lands on, and an exact ``+π`` is
    mapped to ``-π``). Values and gradients stay finite there; ``dist`` is continuous.

    **Optimizers.** :meth:`component_inner` is the base class's one scalar per point
    (the torus is not split into d circle factors), so :class:`manifolds.RiemannianAdam`
    keeps one second moment per point, like on a sphere. ``origin_point`` is ``0``, so
    decoupled weight decay pulls angles towards 0 along the shortest arc.

    Args:
        dim: number of angles ``d`` (``2`` for the ordinary torus S¹ × S¹).

    Raises:
        ValueError: ``dim`` is not a positive integer.

    Example:
        >>> T2 = Torus(2)
        >>> x = torch.tensor([0.1, 3.0]); y = torch.tensor([2 * math.pi - 0.1, 3.0])
        >>> T2.dist(x, y)
        tensor(0.2000)
    """

    name = "Torus"
    reversible = False
    ndim = 1

    def __init__(self, dim: int = 2):
        super().__init__()
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"Torus dim must be a positive int (number of angles), got {dim!r}")
        self.dim = dim
        self.event_shape = (dim,)

    # ------------------------------------------------------------------ checks
    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=0.0):
        tol = atol + rtol * _TWO_PI
        if x.numel() and bool(((x < -tol) | (x > _TWO_PI + tol)).any()):
            lo, hi = float(x.min()), float(x.max())
            return False, (
                f"angles must lie in [0, 2π) (up to {tol:.3g}); got values in [{lo:.6g}, {hi:.6g}] "
                f"(use projx to wrap them)"
            )
        return True, None

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=0.0):
        return True, None  # every finite vector of ℝᵈ is tangent (finiteness checked by the base)

    # ------------------------------------------------------------------ metric
    def inner(self, x, u, v=None, *, keepdim=False):
        """``<u, v>``: ``u, v: (*batch, d)`` → ``(*batch,)`` (``(*batch, 1)`` with ``keepdim``)."""
        return (u * (u if v is None else v)).sum(-1, keepdim=keepdim)

    def norm(self, x, u, *, keepdim=False):
        """``|u|`` with a zero gradient at ``u = 0``; shape ``(*batch,)``."""
        return safe_norm(u, keepdim=keepdim)

    def proju(self, x, u):
        """Identity: every vector of ℝᵈ is tangent."""
        return u

    def egrad2rgrad(self, x, u):
        """Identity: the metric is Euclidean in angle coordinates."""
        return u

    def projx(self, x):
        """Wrap angles to ``[0, 2π)``; ``x: (*batch, d)``."""
        return _wrap(x)

    def dist(self, x, y, *, keepdim=False):
        """Geodesic distance ``|logmap(x, y)|`` in rad, in ``[0, π√d]``; zero gradient at ``x == y``."""
        return safe_norm(self.logmap(x, y), keepdim=keepdim)

    def dist2(self, x, y, *, keepdim=False):
        """Squared geodesic distance (smooth at ``x == y``)."""
        w = self.logmap(x, y)
        return (w * w).sum(-1, keepdim=keepdim)

    has_kernel_formula = True

    def kernel_dist(self, a, b, ops):
        """``|wrap(a − b)|`` with the angle difference wrapped to ``[−π, π)`` (see :meth:`Manifold.kernel_dist`)."""
        return ops.sqrt(ops.sqnorm(ops.wrap_angle(a - b)))

    # ------------------------------------------------------------------ exp / log
    def expmap(self, x, u):
        """``wrap(x + u)`` in ``[0, 2π)``; ``x, u: (*batch, d)``."""
        return _wrap(x + u)

    def logmap(self, x, y):
        """Shortest angle difference ``atan2(sin(y - x), cos(y - x))`` in ``[-π, π)`` (see class doc)."""
        return _wrap_pi(y - x)

    def transp(self, x, y, v):
        """Identity (flat metric)."""
        return v

    def transp_follow_expmap(self, x, u, v):
        """Identity (flat metric)."""
        return v

    def expmap_transp(self, x, u, v):
        return self.expmap(x, u), v

    def geodesic_velocity(self, x, u):
        """``d/ds expmap(x, s u)`` at ``s = 1``: ``u``."""
        return u

    def origin_point(self, x: torch.Tensor) -> torch.Tensor:
        """The origin ``0`` (all angles zero), shaped like ``x``; used by geometric weight decay."""
        return torch.zeros_like(x)

    # ------------------------------------------------------------------ sampling
    def random(self, *size, dtype=None, device=None, generator=None):
        """Uniform samples on ``[0, 2π)^d``; ``size`` is the full shape ``(..., d)``."""
        size = self._check_size(size)
        u = torch.rand(size, dtype=dtype, device=device, generator=generator)
        return _wrap(_TWO_PI * u)  # the product can round up to 2π in float32

    random_uniform = random

    def random_base(self, *size, dtype=None, device=None, generator=None):
        """The base distribution: uniform w.r.t. the volume (Lebesgue measure on ``[0, 2π)^d``)."""
        return self.random(*size, dtype=dtype, device=device, generator=generator)

    def log_volume(self) -> float:
        """``log |T^d| = d log 2π``."""
        return self.dim * math.log(_TWO_PI)

    def base_log_prob(self, x):
        """Uniform log-density ``-d log 2π``, shape ``(*batch,)``."""
        return torch.full(x.shape[:-1], -self.log_volume(), dtype=x.dtype, device=x.device)

    def extra_repr(self):
        return f"dim={self.dim}"
