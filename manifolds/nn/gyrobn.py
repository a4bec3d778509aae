r"""GyroBN: Riemannian batch normalization on gyrogroups (Chen, Song, Wu & Sebe, ICLR 2025).

Chen, Song, Wu & Sebe, "Gyrogroup batch normalization", ICLR 2025, Alg. 1 / Thm 4.1; extended as
"Riemannian batch normalization: a gyro approach", arXiv 2509.07115 (refs/batchnorm.md §2). For a
batch ``x_1, ..., x_N`` on a gyrogroup ``(G, ⊕)`` with identity ``e``:

.. math::
    y_i = B ⊕ \Big(\frac{s}{\sqrt{v + ε}} ⊗ (⊖M ⊕ x_i)\Big),
    \qquad M = \operatorname{FM}\{x_i\}, \quad v = \tfrac1N \sum_i d^2(⊖M ⊕ x_i, e),

with the bias ``B ∈ G`` (a :class:`geoopt.ManifoldParameter`) and a scalar scale ``s`` per
channel; the running statistics follow :class:`~manifolds.nn.batchnorm.RiemannianBatchNorm`
(geodesic running mean, EMA of the variance). **Guarantee** (Thm 4.1): on a *pseudo-reductive*
gyrogroup (``gyr[a, ⊖a] = id``) whose gyrations are isometries and whose gyrodistance
``d(a, b) = d(e, ⊖a ⊕ b)`` is the Riemannian distance, left gyrotranslations ``x ↦ B ⊕ x`` are
isometries and ``⊖M ⊕ M = e``, so with the exact Fréchet mean and ``ε = 0`` the output has
Fréchet mean ``B`` and Fréchet variance ``s²``. ``t ⊗ x = Exp_e(t Log_e x)``, so scaling keeps
``e`` a critical point of the Fréchet function (the mean, where it is unique: non-positive
curvature, or data in a small enough ball).

Instantiations (:class:`GyroGeometry`):

=================================  ==========================================================
manifold                           gyro-structure
=================================  ==========================================================
:class:`manifolds.Stereographic`   Möbius ``⊕``, ``⊖x = −x``, ``⊗``; any κ (:class:`PoincareBall`
(``PoincareBall``,                 κ < 0, :class:`SphereProjection` κ > 0, κ = 0 is ℝᵈ with the
``SphereProjection``)              metric ``4‖·‖²``; refs §2.2)
:class:`manifolds.Hyperboloid`     the Poincaré ball's, through the isometry
                                   ``to_poincare`` / ``from_poincare``: ``a ⊕ b =
                                   from_poincare(to_poincare(a) ⊕ to_poincare(b))`` etc. (GyroBN
                                   is invariant under isometries; the hyperboloid itself has no
                                   gyro operations in the library)
:class:`manifolds.Grassmann`       ``a ⊕ b = expm(Ω_a) b``, ``t ⊗ a = expm(tΩ_a) I_{n,p}``
                                   (exact matrix exponential by default; the Cayley transform
                                   of the reference code is an opt-in approximation, which
                                   breaks the guarantee, refs §2.3). The structure is not
                                   left-reductive (no left loop property) but it is
                                   *pseudo-reductive* and its gyrations are isometries, which
                                   is what Thm 4.1 needs (see ``manifolds/grassmann.py``)
``manifolds.SPD(n, metric)``       AIM ``a^{½} b a^{½}``, LEM ``expm(log a + log b)``, LCM (on
with AIM / LEM / LCM (and their     Cholesky factors); pulled back by the metric's power
θ-deformations)                    deformation (:mod:`manifolds.gyro`)
:class:`manifolds.Euclidean`       ``+``: :class:`GyroBN` uses
                                   :class:`~manifolds.nn.batchnorm.EuclideanGeometry`; equals
                                   :class:`torch.nn.BatchNorm1d` in training mode
=================================  ==========================================================

The Fréchet mean is :func:`manifolds.frechet_mean` (closed form for LEM / LCM, else the
Karcher flow with a tolerance; on the hyperboloid it is computed in the ball). ``d²(x, e)`` is
the manifold's squared distance (Stereographic: ``dist0²``). The running mean moves along the
manifold geodesic (= the gyro-barycenter ``Bar_γ`` of the paper).

**Caveat (positively curved manifolds: Grassmann, SphereProjection).** The guarantee needs a
unique batch mean. On Gr(n, p) that is guaranteed for data in a geodesic ball of radius
``< π/4`` (Afsari 2011: ``½ min(inj, π/√Δ)`` with injectivity radius π/2, curvature Δ ≤ 2);
for widely spread subspaces
(principal angles up to π/2) the Fréchet function of a batch has several local minima, and the
Karcher flow lands in a different one for each batch / starting point, so the centering becomes
a batch-dependent rotation. Measured on EMG principal subspaces, Gr(6, 3) after a random FrMap
(RMS distance 1.2–1.3 rad to the mean): 6–11 distinct Karcher limits from 12 starts per batch
of 32, up to 1.7 rad apart (GyroBN fell below no normalization there; with ``p = 1``, RMS
0.7–0.8 rad, the batch mean was unique but GyroBN still lost, so this is not the only cause:
``benchmarks/README.md``, issue 4). Check the spread of the data before relying on the layer.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from ..euclidean import Euclidean
from ..grassmann import Grassmann
from ..hyperbolic import Hyperboloid, PoincareBall, Stereographic
from ..spd import SPD
from ..stats import frechet_mean
from .batchnorm import BNGeometry, EuclideanGeometry, RiemannianBatchNorm, _expand_scalar

__all__ = ["GyroGeometry", "GyroBN"]


class GyroGeometry(BNGeometry):
    r"""The :class:`~manifolds.nn.batchnorm.BNGeometry` of a gyrogroup (GyroBN, Chen et al. ICLR 2025).

    ``translate(x, p) = p ⊕ x``, ``translate(x, p, inverse=True) = ⊖p ⊕ x``,
    ``scale(x, t) = t ⊗ x``, ``identity = e`` (``gyro_identity``), ``dist2_to_identity(x) =
    d(e, x)²``, ``frechet_mean`` = :func:`manifolds.frechet_mean` (Karcher flow with step
    ``mean_step`` unless a closed form exists), ``interpolate`` = the manifold geodesic. See
    the module docstring for the supported manifolds and their structures.

    Args:
        manifold: a :class:`manifolds.Stereographic` (incl. ``PoincareBall``,
            ``SphereProjection``), :class:`manifolds.Hyperboloid`, :class:`manifolds.Grassmann`
            or ``manifolds.SPD`` with a metric that has a gyro-structure (AIM, LEM, LCM and
            their θ-deformations).
        exp_mode: Grassmann only: ``"exact"`` (default) or ``"cayley"`` (approximation; the
            mean / variance guarantee then holds only approximately).
        mean_step: step size of the Karcher flow (``> 0``; 1 by default; use a smaller step
            for widely spread hyperbolic data, see :mod:`manifolds.stats`).

    Raises:
        ValueError: an unsupported manifold (e.g. SPD with the Bures–Wasserstein metric, or
            :class:`manifolds.Euclidean`: use :class:`~manifolds.nn.batchnorm.EuclideanGeometry`
            or :class:`GyroBN`), an unknown ``exp_mode``, ``mean_step ≤ 0``.
    """

    def __init__(self, manifold, *, exp_mode: str = "exact", mean_step: float = 1.0):
        if isinstance(manifold, Stereographic):
            kind = "stereographic"
        elif isinstance(manifold, Hyperboloid):
            kind = "hyperboloid"
        elif isinstance(manifold, Grassmann):
            kind = "grassmann"
        elif isinstance(manifold, SPD):
            try:  # public probe: the gyro operations raise NotImplementedError without a gyro-structure
                manifold.gyro_identity(torch.zeros(manifold.n, manifold.n, dtype=torch.float64))
            except NotImplementedError:
                raise ValueError(
                    f"GyroGeometry: {manifold.metric!r} has no gyro-structure; use the affine-invariant, "
                    "log-Euclidean or log-Cholesky metric (or their θ-deformations)"
                ) from None
            kind = "spd"
        elif isinstance(manifold, Euclidean):
            raise ValueError("GyroGeometry: for manifolds.Euclidean use EuclideanGeometry (or GyroBN, which does)")
        else:
            raise ValueError(
                "GyroGeometry supports Stereographic / PoincareBall / SphereProjection, Hyperboloid, Grassmann "
                f"and SPD (aim, lem, lcm), got {type(manifold).__name__}"
            )
        if exp_mode not in ("exact", "cayley"):
            raise ValueError(f"exp_mode must be 'exact' or 'cayley', got {exp_mode!r}")
        if not float(mean_step) > 0:
            raise ValueError(f"mean_step must be > 0, got {mean_step!r}")
        self.manifold = manifold
        self.kind = kind
        self.exp_mode = exp_mode
        self.mean_step = float(mean_step)
        # the Poincaré ball isometric to the hyperboloid (same curvature −c)
        self._ball = PoincareBall(manifold.dim, c=manifold.c) if kind == "hyperboloid" else None

    # -------------------------------------------------------------- gyro operations
    def _gkw(self) -> dict:
        return {"exp_mode": self.exp_mode} if self.kind == "grassmann" else {}

    def gyro_add(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``a ⊕ b`` (broadcasting); ``(..., *event)``."""
        if self.kind == "hyperboloid":
            h, ball = self.manifold, self._ball
            return h.from_poincare(ball.gyro_add(h.to_poincare(a), h.to_poincare(b)))
        return self.manifold.gyro_add(a, b, **self._gkw())

    def gyro_inv(self, a: torch.Tensor) -> torch.Tensor:
        """``⊖a``; ``(..., *event)``."""
        if self.kind == "hyperboloid":
            # ⊖ is −x in the ball, i.e. x_{1:} ↦ −x_{1:} on the hyperboloid
            return torch.cat((a[..., :1], -a[..., 1:]), dim=-1)
        return self.manifold.gyro_inv(a, **self._gkw())

    def gyro_scalar_mul(self, t: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """``t ⊗ a`` with ``t`` a scalar or a tensor broadcastable to the batch shape of ``a``."""
        if self.kind == "hyperboloid":
            h = self.manifold
            return h.from_poincare(self._ball.gyro_scalar_mul(_expand_scalar(t, 1), h.to_poincare(a)))
        if self.kind == "stereographic":
            return self.manifold.gyro_scalar_mul(_expand_scalar(t, 1), a)
        return self.manifold.gyro_scalar_mul(t, a, **self._gkw())

    # -------------------------------------------------------------- BNGeometry
    def identity(self, like: torch.Tensor) -> torch.Tensor:
        if self.kind == "hyperboloid":
            return self.manifold.origin_point(like)
        return self.manifold.gyro_identity(like)

    def frechet_mean(self, x, *, tol=None, max_iter=100):
        if self.kind == "hyperboloid":
            h = self.manifold
            m = frechet_mean(self._ball, h.to_poincare(x), tol=tol, max_iter=max_iter, step=self.mean_step)
            return h.from_poincare(m)
        return frechet_mean(self.manifold, x, tol=tol, max_iter=max_iter, step=self.mean_step)

    def dist2_to_identity(self, x):
        if self.kind in ("stereographic", "hyperboloid"):
            return self.manifold.dist0(x) ** 2
        return self.manifold.dist2(self.identity(x), x)

    def translate(self, x, p, *, inverse=False):
        return self.gyro_add(self.gyro_inv(p) if inverse else p, x)

    def scale(self, x, s):
        return self.gyro_scalar_mul(s, x)

    def interpolate(self, a, b, t):
        return self.manifold.geodesic(a, b, t)

    def extra_repr(self) -> str:
        extra = f", exp_mode={self.exp_mode!r}" if self.kind == "grassmann" else ""
        return f"manifold={self.manifold!r}{extra}, mean_step={self.mean_step}"


class GyroBN(RiemannianBatchNorm):
    r"""Gyrogroup batch normalization (GyroBN; Chen, Song, Wu & Sebe, ICLR 2025, Alg. 1).

    ``y_i = B ⊕ ((s/√(v + ε)) ⊗ (⊖M ⊕ x_i))`` over the gyro-structure of ``manifold`` (see the
    module docstring and :class:`GyroGeometry`); on :class:`manifolds.Euclidean` it is
    :class:`torch.nn.BatchNorm1d` (training mode; see
    :class:`~manifolds.nn.batchnorm.RiemannianBatchNorm` for the running variance).

    Args:
        manifold: the manifold of the inputs (see :class:`GyroGeometry`; also
            :class:`manifolds.Euclidean`). Registered as a submodule, so a learnable curvature
            is trained with the layer.
        channels, momentum, eps, mean_tol, mean_max_iter, detach_stats, dtype, device: see
            :class:`~manifolds.nn.batchnorm.RiemannianBatchNorm` (``mean_max_iter=1`` is the
            single Karcher step of the reference code).
        exp_mode, mean_step: see :class:`GyroGeometry`.

    Parameters / buffers: ``bias`` (``(*channels, *event)``, a
    :class:`geoopt.ManifoldParameter` on ``manifold``, initialised to ``e``), ``shift``
    (``(*channels,)``, 1), ``running_mean``, ``running_var``, ``num_batches_tracked``.

    Shapes:
        input and output ``(B, *channels, *manifold.event_shape)``.

    Raises:
        ValueError: unsupported manifold or invalid arguments (see :class:`GyroGeometry` and
            :class:`~manifolds.nn.batchnorm.RiemannianBatchNorm`).

    Example:
        >>> bn = GyroBN(PoincareBall(4), channels=3, dtype=torch.float64)
        >>> x = PoincareBall(4).random(16, 3, 4, dtype=torch.float64)
        >>> bn(x).shape
        torch.Size([16, 3, 4])
    """

    def __init__(
        self,
        manifold,
        *,
        channels: Union[int, Sequence[int]] = (),
        momentum: Optional[float] = 0.1,
        eps: float = 1e-5,
        mean_tol: Optional[float] = None,
        mean_max_iter: int = 100,
        detach_stats: bool = True,
        exp_mode: str = "exact",
        mean_step: float = 1.0,
        dtype: Optional[torch.dtype] = None,
        device=None,
    ):
        if type(manifold) is Euclidean:
            geometry = EuclideanGeometry(tuple(manifold.event_shape))
        else:
            geometry = GyroGeometry(manifold, exp_mode=exp_mode, mean_step=mean_step)
        super().__init__(
            geometry,
            tuple(manifold.event_shape),
            channels=channels,
            momentum=momentum,
            eps=eps,
            mean_tol=mean_tol,
            mean_max_iter=mean_max_iter,
            detach_stats=detach_stats,
            dtype=dtype,
            device=device,
        )
        self.manifold = manifold
