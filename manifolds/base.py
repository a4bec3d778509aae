"""The base class every manifold of the library derives from.

:class:`Manifold` subclasses :class:`geoopt.Manifold`, so ``geoopt.ManifoldParameter``,
geoopt's optimizers and ours work on every manifold of the library. The verb set is
geoopt's (``expmap``, ``logmap``, ``dist``, ``inner``, ``proju``, ``projx``,
``egrad2rgrad``, ``transp``, ``retr``, ``random``) plus what generative models and
policies need: ``random_base`` / ``base_log_prob`` (a reference density),
``geodesic(x, y, t)``, and membership checks that return ``(ok, reason)``.

Conventions (DESIGN.md):

* A point has shape ``(*batch, *event_shape)``; batch dimensions broadcast.
* Tangent vectors are ambient: same shape as the point they are attached to.
* Checks are explicit and separate from the math: ``expmap`` and friends never
  synchronise with the host or branch on tensor values; ``check_point`` /
  ``check_vector`` do, and return ``(ok, reason)``; ``assert_check_point_on_manifold``
  / ``assert_check_vector_on_tangent`` raise :class:`ValueError` with the reason.
"""

from __future__ import annotations

import abc
from typing import Hashable, Optional, Tuple

import geoopt
import torch

from ._numerics import check_tol, safe_sqrt

__all__ = ["Manifold"]

CheckResult = Tuple[bool, Optional[str]]


class Manifold(geoopt.Manifold, metaclass=abc.ABCMeta):
    """Riemannian manifold with a fixed event shape.

    Subclasses set :attr:`event_shape` (the trailing shape of one point) and
    :attr:`dim` (the intrinsic dimension) and implement the geometric verbs.

    Attributes:
        event_shape: trailing shape of one point, e.g. ``(3,)`` for S².
        dim: intrinsic dimension of the manifold, e.g. ``2`` for S².
        ndim: number of event dimensions (geoopt's attribute), ``len(event_shape)``.
    """

    event_shape: Tuple[int, ...] = ()
    dim: int = 0

    # ------------------------------------------------------------------ identity
    def _key(self) -> Hashable:
        """Hashable description of the geometry; equal keys mean the same manifold.

        Used by :class:`manifolds.Product` to batch equal factors and by the
        optimizers to update parameters of the same geometry together.
        """
        return (type(self).__name__, self.event_shape)

    @property
    def numel(self) -> int:
        """Number of scalars in one point (``prod(event_shape)``)."""
        n = 1
        for s in self.event_shape:
            n *= s
        return n

    # ------------------------------------------------------------------ checks
    def _check_shape(self, shape, name):  # geoopt hook, used by ManifoldParameter
        k = len(self.event_shape)
        if len(shape) < k or tuple(shape[len(shape) - k :]) != tuple(self.event_shape):
            return False, (
                f"'{name}' on {self.name} must have trailing shape {tuple(self.event_shape)}, "
                f"got shape {tuple(shape)}"
            )
        return True, None

    def check_point(self, x: torch.Tensor, *, atol: Optional[float] = None, rtol: float = 0.0) -> CheckResult:
        """Check that ``x`` is a finite point of the manifold.

        Args:
            x: ``(*batch, *event_shape)`` candidate point.
            atol: absolute tolerance; default depends on the dtype (1e-5 in float32,
                1e-10 in float64).
            rtol: relative tolerance.

        Returns:
            ``(ok, reason)``: ``reason`` is ``None`` when ``ok`` and otherwise says
            what was wrong and what was expected.
        """
        ok, reason = self._check_shape(x.shape, "x")
        if not ok:
            return ok, reason
        if not bool(torch.isfinite(x).all()):
            return False, f"'x' on {self.name} contains NaN or inf values"
        atol = check_tol(x.dtype) if atol is None else atol
        return self._check_point_on_manifold(x, atol=atol, rtol=rtol)

    def check_vector(
        self, x: torch.Tensor, u: torch.Tensor, *, atol: Optional[float] = None, rtol: float = 0.0
    ) -> CheckResult:
        """Check that ``u`` is a finite tangent vector at the point ``x``.

        Args:
            x: ``(*batch, *event_shape)`` point (assumed valid).
            u: ``(*batch, *event_shape)`` candidate tangent vector.
            atol, rtol: tolerances as in :meth:`check_point`.

        Returns:
            ``(ok, reason)`` as in :meth:`check_point`.
        """
        ok, reason = self._check_shape(u.shape, "u")
        if not ok:
            return ok, reason
        if not bool(torch.isfinite(u).all()):
            return False, f"'u' on {self.name} contains NaN or inf values"
        atol = check_tol(u.dtype) if atol is None else atol
        return self._check_vector_on_tangent(x, u, atol=atol, rtol=rtol)

    def assert_check_point_on_manifold(self, x: torch.Tensor, *, atol: Optional[float] = None, rtol: float = 0.0):
        """Raise :class:`ValueError` with the reason when :meth:`check_point` fails."""
        ok, reason = self.check_point(x, atol=atol, rtol=rtol)
        if not ok:
            raise ValueError(f"invalid point for {self!r}: {reason}")

    def assert_check_vector_on_tangent(
        self, x: torch.Tensor, u: torch.Tensor, *, ok_point: bool = False, atol: Optional[float] = None, rtol: float = 0.0
    ):
        """Raise :class:`ValueError` when ``x`` is not a point or ``u`` not tangent at ``x``."""
        if not ok_point:
            self.assert_check_point_on_manifold(x, atol=atol, rtol=rtol)
        ok, reason = self.check_vector(x, u, atol=atol, rtol=rtol)
        if not ok:
            raise ValueError(f"invalid tangent vector for {self!r}: {reason}")

    # ------------------------------------------------------------------ defaults
    def retr(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Retraction; every manifold of the library uses its exact exponential map."""
        return self.expmap(x, u)

    def norm(self, x: torch.Tensor, u: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """Riemannian norm ``sqrt(<u, u>_x)``, with a zero (not NaN) gradient at ``u = 0``."""
        sq = self.inner(x, u, keepdim=keepdim)
        return safe_sqrt(sq)

    def dist2(self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """Squared geodesic distance."""
        return self.dist(x, y, keepdim=keepdim) ** 2

    def expmap_transp(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        """``(expmap(x, u), parallel transport of v along t -> expmap(x, t u))``."""
        return self.expmap(x, u), self.transp_follow_expmap(x, u, v)

    def retr_transp(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        """Same as :meth:`expmap_transp` (the retraction is the exponential map)."""
        return self.expmap_transp(x, u, v)

    def transp_follow_retr(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.transp_follow_expmap(x, u, v)

    def transp_follow_expmap(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Parallel transport of ``v`` along the geodesic ``t -> expmap(x, t u)``, ``t in [0, 1]``.

        Unlike :meth:`transp` this follows ``u`` even past the cut locus (``|u| > pi``
        on the sphere). Subclasses override it with a closed form.
        """
        return self.transp(x, self.expmap(x, u), v)

    def geodesic(self, x: torch.Tensor, y: torch.Tensor, t) -> torch.Tensor:
        """Point at time ``t`` on the minimising geodesic from ``x`` (t = 0) to ``y`` (t = 1).

        Args:
            x, y: ``(*batch, *event_shape)`` points.
            t: scalar or ``(*batch,)`` tensor of times (any real value: ``t > 1``
                extrapolates along the same geodesic).

        Returns:
            ``(*batch, *event_shape)`` point ``expmap(x, t * logmap(x, y))``.
        """
        return self.expmap(x, self._expand_batch(t, x) * self.logmap(x, y))

    def geodesic_velocity(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Velocity ``d/ds expmap(x, s u)`` at ``s = 1``: ``u`` parallel-transported to ``expmap(x, u)``."""
        return self.transp_follow_expmap(x, u, u)

    def component_inner(self, x: torch.Tensor, u: torch.Tensor, v: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Squared norm (or inner product) per *factor* of the manifold, used by adaptive optimizers.

        For a manifold without product structure this is one scalar per point,
        shape ``(*batch, 1, ..., 1)`` (broadcastable to a tangent vector); a product
        returns one scalar per factor (see :meth:`expand_component`).
        """
        return self.inner(x, u, v, keepdim=True)

    def expand_component(self, s: torch.Tensor) -> torch.Tensor:
        """Make the output of :meth:`component_inner` broadcastable against a tangent vector."""
        return s

    def random_base(self, *size, dtype=None, device=None, generator=None) -> torch.Tensor:
        """Sample the reference (base) distribution; full output shape ``size`` as in geoopt."""
        raise NotImplementedError(f"{type(self).__name__} has no base distribution")

    def base_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density of :meth:`random_base` w.r.t. the Riemannian volume, shape ``(*batch,)``."""
        raise NotImplementedError(f"{type(self).__name__} has no base distribution")

    def random_normal_tangent(self, x: torch.Tensor, std=1.0, generator=None) -> torch.Tensor:
        """Isotropic Gaussian tangent vector at ``x`` (ambient normal, projected with ``proju``).

        Args:
            x: ``(*batch, *event_shape)`` base points.
            std: scalar or ``(*batch,)`` standard deviation per tangent direction.

        Returns:
            ``(*batch, *event_shape)`` tangent vectors at ``x``. The projection of an
            isotropic ambient Gaussian is isotropic in the tangent space when ``proju`` is
            an orthogonal projection (Euclidean, Sphere and their products).
        """
        noise = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
        return self.proju(x, self._expand_batch(std, x) * noise)

    def wrapped_normal(self, mean: torch.Tensor, std=1.0, generator=None) -> torch.Tensor:
        """Sample ``expmap(mean, v)``, ``v`` an isotropic tangent Gaussian of scale ``std``.

        Args:
            mean: ``(*batch, *event_shape)`` centre points.
            std: scalar or ``(*batch,)``, in the manifold's distance units (rad on the sphere).

        Returns:
            ``(*batch, *event_shape)`` samples on the manifold.
        """
        return self.expmap(mean, self.random_normal_tangent(mean, std, generator))

    # ------------------------------------------------------------------ helpers
    def _check_size(self, size) -> Tuple[int, ...]:
        size = tuple(int(s) for s in (size[0] if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size))
        ok, reason = self._check_shape(size, "size")
        if not ok:
            raise ValueError(reason)
        return size

    def _expand_batch(self, t, x: torch.Tensor) -> torch.Tensor:
        """Reshape a scalar or ``(*batch,)`` tensor so it broadcasts against ``(*batch, *event_shape)``."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        return t.reshape(t.shape + (1,) * len(self.event_shape))

    # ------------------------------------------------------------------ kernel-ready distance
    #: whether :meth:`kernel_dist` is written with the ``ops`` primitives only (so it also runs
    #: on KeOps ``LazyTensor`` objects); the default below falls back to :meth:`dist` (torch only).
    has_kernel_formula: bool = False

    @property
    def kernel_feature_dim(self) -> int:
        """Length ``F`` of the per-point feature vector of :meth:`kernel_features`."""
        return self.numel

    def kernel_features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-point features on which :meth:`kernel_dist` is evaluated (the :mod:`kernels` layer).

        A per-point map computed once in O(N) (e.g. a quaternion for SO(3), a matrix
        logarithm for log-Euclidean SPD) so that the pairwise formula needs only elementary
        operations. The default is the flattened point.

        Args:
            x: ``(*batch, *event_shape)`` points.

        Returns:
            ``(*batch, F)`` with ``F = kernel_feature_dim``.
        """
        return x.reshape(x.shape[: x.dim() - len(self.event_shape)] + (-1,))

    def kernel_dist(self, a, b, ops):
        """Geodesic distance between feature vectors, written against a pairwise-ops object.

        ``ops`` is one of the :mod:`kernels` ops layers (broadcast torch tensors or KeOps
        ``LazyTensor`` objects); a subclass that writes its distance with ``ops`` primitives only
        sets :attr:`has_kernel_formula` so the formula also runs through KeOps. This default
        unflattens the features and calls :meth:`dist` (torch backends only).

        Args:
            a, b: ``(..., F)`` features from :meth:`kernel_features` (broadcasting, e.g.
                ``(N, 1, F)`` against ``(1, M, F)``), or ``LazyTensor`` objects of dimension ``F``.
            ops: the ops layer (``ops.lazy`` is True for KeOps).

        Returns:
            ``(..., 1)`` distances (a ``LazyTensor`` of dimension 1 for KeOps).

        Raises:
            NotImplementedError: ``ops`` is the KeOps layer and the manifold has no formula.
        """
        if ops.lazy:
            raise NotImplementedError(f"{self.name} has no kernel distance formula for KeOps (has_kernel_formula=False)")
        ev = tuple(self.event_shape)
        xa = a.reshape(a.shape[:-1] + ev)
        xb = b.reshape(b.shape[:-1] + ev)
        return self.dist(xa, xb)[..., None]

    def extra_repr(self) -> str:
        return f"event_shape={tuple(self.event_shape)}"
