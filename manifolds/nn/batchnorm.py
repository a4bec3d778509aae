r"""Riemannian batch normalization over a pluggable geometry.

One generic module, :class:`RiemannianBatchNorm`, runs the algorithm shared by the Riemannian
batch normalizations of Brooks et al. (SPDNetBN, NeurIPS 2019, Alg. 1), Chen et al. (LieBN,
ICLR 2024, Alg. 1) and Chen et al. (GyroBN, ICLR 2025): for a batch ``x_1, ..., x_N``

.. math::
    M &= \operatorname{FM}\{φ(x_i)\}, \qquad v = \tfrac1N \sum_i d^2(\bar x_i, E),\\
    \bar x_i &= L_{M^{-1}}\,φ(x_i) \quad\text{(centering)}, \qquad
    \hat x_i = \operatorname{Exp}_E\!\Big(\tfrac{s}{\sqrt{v + ε}} \operatorname{Log}_E \bar x_i\Big)
    \quad\text{(scaling)},\\
    y_i &= φ^{-1}\big(L_{φ(B)}\, \hat x_i\big) \quad\text{(biasing)},

where ``φ`` is an optional *deformation* (e.g. the matrix power of the θ-deformed SPD metrics,
or the matrix logarithm of LEM; LieBN §5), ``L_p`` a left translation (group or gyro
operation), ``E`` the identity, ``B`` the bias (a :class:`geoopt.ManifoldParameter`) and ``s``
a scalar scale ("shift" in LieBN) per channel. The *geometry* (:class:`BNGeometry`) supplies
``φ``, ``L``, ``Exp_E(t Log_E ·)``, ``d²(·, E)``, the Fréchet mean and the geodesic used by the
running mean; everything except the deformation and the bias works in the *co-domain* of ``φ``
(the running mean is stored there, LieBN §5 / refs §1.2).

Guarantees (LieBN Prop. 4.2; GyroBN Thm 4.1): when ``L`` is an isometry, ``FM`` is the exact
Fréchet mean and ``ε = 0``, the output has Fréchet mean ``B`` and Fréchet variance ``s²`` (with
respect to the pulled-back metric ``φ^*g``); without scaling (``scale_variance=False``,
SPDNetBN) only the mean is controlled. ``v`` is computed after centering as
``mean_i d²(x̄_i, E)``, which equals the Fréchet variance when ``M`` is exact; with a truncated
Karcher flow (``mean_max_iter=1`` as in the reference code) both are approximations.

Statistics (as PyTorch's ``BatchNorm``): in training the batch statistics normalize the batch
and update the running statistics ``running_mean ← geodesic(running_mean, M, momentum)``,
``running_var ← (1 − momentum) running_var + momentum v`` (``momentum=None``: cumulative
average, momentum ``1/k`` at the ``k``-th batch); in evaluation the running statistics are
used. **Difference from** :class:`torch.nn.BatchNorm1d`: ``running_var`` tracks the *biased*
batch variance ``v`` (the Fréchet variance, LieBN Alg. 1), whereas torch stores the unbiased
``v · N / (N − 1)``; the outputs in training mode and ``running_mean`` agree.
"""

from __future__ import annotations

import abc
from typing import Iterable, Optional, Sequence, Tuple, Union

import geoopt
import torch
from torch import nn

from .._linalg import sym, sym_expm, sym_invsqrtm, sym_logm, sym_powm, sym_sqrtm
from ..base import Manifold
from ..euclidean import Euclidean
from ..lie import SO3, so3_exp, so3_log
from ..spd import SPD, AffineInvariantMetric, LogCholeskyMetric, LogEuclideanMetric, SPDMetric
from ..stats import frechet_mean as _frechet_mean

__all__ = [
    "BNGeometry",
    "EuclideanGeometry",
    "SPDAIMGeometry",
    "SPDLEMGeometry",
    "SPDLCMGeometry",
    "SO3Geometry",
    "RiemannianBatchNorm",
    "LieBN",
    "SPDNetBN",
]


def _as_shape(value, name: str) -> Tuple[int, ...]:
    if isinstance(value, int):
        value = (value,)
    try:
        shape = tuple(int(v) for v in value)
    except TypeError:
        raise ValueError(f"{name} must be an int or a sequence of ints, got {value!r}") from None
    if any(v <= 0 for v in shape):
        raise ValueError(f"{name} must contain positive sizes, got {shape}")
    return shape


def _expand_scalar(t: torch.Tensor, k: int) -> torch.Tensor:
    """``(...,)`` -> ``(..., 1 × k)`` so that it broadcasts against points with ``k`` event dims."""
    t = torch.as_tensor(t)
    return t.reshape(t.shape + (1,) * k)


# ---------------------------------------------------------------------------- geometry
class BNGeometry(abc.ABC):
    r"""The operations a Riemannian batch normalization needs from a geometry.

    All operations except :meth:`deform` / :meth:`inv_deform` / :meth:`bias_point` act in the
    co-domain of the deformation ``φ`` (for geometries without a deformation, on
    :attr:`manifold` itself). Points have shape ``(..., *event)``; ``event`` is the event shape
    of the co-domain, which for every geometry in this library equals that of the inputs.

    Attributes:
        manifold: manifold of the inputs (points ``x`` given to the layer).
        bias_manifold: manifold of the bias :class:`geoopt.ManifoldParameter` (default
            :attr:`manifold`); the bias is a point of the *input* space, mapped to the
            co-domain by :meth:`bias_point` before the biasing translation.
    """

    manifold: Manifold

    @property
    def bias_manifold(self) -> Manifold:
        return self.manifold

    @property
    def event_ndim(self) -> int:
        return len(self.manifold.event_shape)

    # -------------------------------------------------------------- required
    @abc.abstractmethod
    def identity(self, like: torch.Tensor) -> torch.Tensor:
        """Identity ``E`` of the co-domain group, shaped and typed like ``like`` ``(..., *event)``."""

    @abc.abstractmethod
    def frechet_mean(self, x: torch.Tensor, *, tol: Optional[float], max_iter: int) -> torch.Tensor:
        """Fréchet mean in the co-domain: ``x (*channels, N, *event)`` -> ``(*channels, *event)``.

        Closed form, or the Karcher flow via :func:`manifolds.frechet_mean` with stopping
        tolerance ``tol`` (``None``: its dtype default) and at most ``max_iter`` iterations.
        """

    @abc.abstractmethod
    def dist2_to_identity(self, x: torch.Tensor) -> torch.Tensor:
        """Squared distance ``d²(x, E)`` in the co-domain metric: ``(..., *event)`` -> ``(...)``."""

    @abc.abstractmethod
    def translate(self, x: torch.Tensor, p: torch.Tensor, *, inverse: bool = False) -> torch.Tensor:
        """Left translation ``L_p(x)`` (biasing) or ``L_{p⁻¹}(x)`` with ``inverse=True`` (centering).

        ``x (..., *event)``, ``p (..., *event)`` broadcasting against ``x``.
        """

    @abc.abstractmethod
    def scale(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """``Exp_E(s Log_E x)``: ``x (..., *event)``, ``s`` a tensor broadcastable to ``(...)``."""

    @abc.abstractmethod
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, t) -> torch.Tensor:
        """Point at time ``t`` of the geodesic from ``a`` (t = 0) to ``b`` (t = 1) (running mean)."""

    # -------------------------------------------------------------- optional
    def deform(self, x: torch.Tensor) -> torch.Tensor:
        """Deformation ``φ`` from the input space to the co-domain (default: identity)."""
        return x

    def inv_deform(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse deformation ``φ⁻¹`` (default: identity)."""
        return x

    def bias_point(self, b: torch.Tensor) -> torch.Tensor:
        """Bias parameter (a point of :attr:`bias_manifold`) -> co-domain point used for biasing.

        Default ``φ(b)``, so that the output's Fréchet mean (for the pulled-back metric) is ``b``.
        """
        return self.deform(b)

    def bias_init(self, like: torch.Tensor) -> torch.Tensor:
        """Initial bias value (the identity of the input space): default ``φ⁻¹(E)``."""
        return self.inv_deform(self.identity(like))

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class EuclideanGeometry(BNGeometry):
    r"""Flat geometry ``(ℝ^event, +)``: LieBN on it is the standard batch normalization (LieBN Prop. D.1).

    ``L_p x = x + p``, ``E = 0``, ``Exp_E(s Log_E x) = s x``, ``d²(x, E) = ‖x‖²``, mean = arithmetic
    mean, geodesic = linear interpolation. With ``event_shape=()`` and ``channels=(C,)`` the
    :class:`RiemannianBatchNorm` over it equals ``torch.nn.BatchNorm1d(C)`` in training mode
    (see the module docstring for the running variance).

    Args:
        event_shape: shape of one point (``()`` for scalar features).
    """

    def __init__(self, event_shape: Union[int, Sequence[int]] = ()):
        shape = () if event_shape == () else _as_shape(event_shape, "event_shape")
        if len(shape) > 1:
            raise ValueError(f"EuclideanGeometry supports event shapes () or (d,), got {shape}")
        self.manifold = Euclidean(shape[0] if shape else None)

    def identity(self, like):
        return torch.zeros_like(like)

    def frechet_mean(self, x, *, tol=None, max_iter=100):
        return x.mean(dim=-(self.event_ndim + 1))

    def dist2_to_identity(self, x):
        return (x * x).sum(dim=tuple(range(-self.event_ndim, 0))) if self.event_ndim else x * x

    def translate(self, x, p, *, inverse=False):
        return x - p if inverse else x + p

    def scale(self, x, s):
        return _expand_scalar(s, self.event_ndim) * x

    def interpolate(self, a, b, t):
        return a + t * (b - a)

    def extra_repr(self):
        return f"event_shape={tuple(self.manifold.event_shape)}"


def _eye_like(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[-1]
    return torch.eye(n, dtype=x.dtype, device=x.device).expand(x.shape).clone()


def _check_n(n) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n (SPD matrix size) must be a positive int, got {n!r}")
    return n


class SPDAIMGeometry(BNGeometry):
    r"""SPD matrices under the (θ, α, β)-affine-invariant metric (LieBN §5.1, Table 1; refs §1.2).

    * Deformation ``φ(P) = P^θ`` (θ ≠ 0, may be negative); the co-domain is SPD with the
      (α, β)-AIM ``<V, W>_P = α tr(P⁻¹VP⁻¹W) + β tr(P⁻¹V) tr(P⁻¹W)``; the pulled-back metric
      is ``SPD(n, AffineInvariantMetric(theta, alpha, beta))`` (:attr:`manifold`).
    * Translation ``translation="cholesky"`` (LieBN): the Cholesky left translation
      ``P ⊙ Q = L Q Lᵀ``, ``L = chol(P)``; centering ``L_M⁻¹ X L_M⁻ᵀ``.
      ``translation="sqrt"`` (Brooks et al. 2019, SPDNetBN): parallel transport to/from the
      identity, ``M^{-½} X M^{-½}`` and ``G^{½} X G^{½}``. Both are AIM isometries, so both
      give the same output mean; the outputs differ by a rotation.
    * Scaling ``X ↦ X^t`` (matrix power; ``Exp_I(t Log_I X)``).
    * ``d²(X, I) = (1/θ²)(α ‖log X‖_F² + β (log det X)²)``.
    * Fréchet mean: the AIM Karcher flow (:func:`manifolds.frechet_mean`) started at the
      arithmetic mean (as the reference code), with a tolerance and ``max_iter``.
    * Running mean: AIM geodesic ``A^{½}(A^{-½} B A^{-½})^t A^{½}``.

    Args:
        n: matrix size. theta, alpha, beta: metric parameters (θ ≠ 0, α > 0, β > −α/n).
        translation: ``"cholesky"`` or ``"sqrt"``.

    Raises:
        ValueError: invalid ``n``, metric parameters or ``translation``.
    """

    def __init__(self, n: int, theta: float = 1.0, alpha: float = 1.0, beta: float = 0.0, *, translation: str = "cholesky"):
        n = _check_n(n)
        if translation not in ("cholesky", "sqrt"):
            raise ValueError(f"translation must be 'cholesky' or 'sqrt', got {translation!r}")
        metric = AffineInvariantMetric(theta=theta, alpha=alpha, beta=beta)
        self.manifold = SPD(n, metric)
        self.codomain = SPD(n, AffineInvariantMetric(alpha=metric.alpha, beta=metric.beta))
        self.n, self.theta, self.alpha, self.beta = n, metric.theta, metric.alpha, metric.beta
        self.translation = translation

    def identity(self, like):
        return _eye_like(like)

    def deform(self, x):
        return x if self.theta == 1.0 else sym_powm(x, self.theta)

    def inv_deform(self, x):
        return x if self.theta == 1.0 else sym_powm(x, 1.0 / self.theta)

    def frechet_mean(self, x, *, tol=None, max_iter=100):
        return _frechet_mean(self.codomain, x, init=x.mean(-3), tol=tol, max_iter=max_iter)

    def dist2_to_identity(self, x):
        lam = torch.log(torch.linalg.eigvalsh(x))
        d2 = self.alpha * (lam * lam).sum(-1) + self.beta * lam.sum(-1) ** 2
        return d2 / self.theta**2

    def translate(self, x, p, *, inverse=False):
        if self.translation == "cholesky":
            L = torch.linalg.cholesky(sym(p))
            L = L.expand(torch.broadcast_shapes(L.shape, x.shape))
            if inverse:
                a = torch.linalg.solve_triangular(L, x, upper=False)
                return sym(torch.linalg.solve_triangular(L, a.mT, upper=False))
            return sym(L @ x @ L.mT)
        r = sym_invsqrtm(p) if inverse else sym_sqrtm(p)
        return sym(r @ x @ r)

    def scale(self, x, s):
        return sym_expm(_expand_scalar(s, 2) * sym_logm(x))

    def interpolate(self, a, b, t):
        return self.codomain.geodesic(a, b, t)

    def extra_repr(self):
        return f"n={self.n}, theta={self.theta}, alpha={self.alpha}, beta={self.beta}, translation={self.translation!r}"


class _FlatSPDGeometry(BNGeometry):
    """Flat (Abelian) co-domain of matrices with addition: mean, translation, scaling, geodesic are linear."""

    def identity(self, like):
        return torch.zeros_like(like)

    def frechet_mean(self, x, *, tol=None, max_iter=100):
        return x.mean(-3)

    def translate(self, x, p, *, inverse=False):
        return x - p if inverse else x + p

    def scale(self, x, s):
        return _expand_scalar(s, 2) * x

    def interpolate(self, a, b, t):
        return a + t * (b - a)


class SPDLEMGeometry(_FlatSPDGeometry):
    r"""SPD matrices under the (α, β)-log-Euclidean metric (LieBN §5.1; Arsigny et al. 2007).

    Deformation ``φ = logm`` onto ``(Sym(n), +)``; ``d²(X, 0) = α ‖X‖_F² + β tr(X)²``; closed-form
    mean (arithmetic mean of the logarithms). The LEM family has no θ (a power deformation only
    rescales it). :attr:`manifold` is ``SPD(n, LogEuclideanMetric(alpha=alpha, beta=beta))``.

    Raises:
        ValueError: invalid ``n``, ``alpha`` or ``beta``.
    """

    def __init__(self, n: int, alpha: float = 1.0, beta: float = 0.0):
        n = _check_n(n)
        metric = LogEuclideanMetric(alpha=alpha, beta=beta)
        self.manifold = SPD(n, metric)
        self.n, self.alpha, self.beta = n, metric.alpha, metric.beta

    def deform(self, x):
        return sym_logm(x)

    def inv_deform(self, x):
        return sym_expm(x)

    def dist2_to_identity(self, x):
        tr = x.diagonal(dim1=-2, dim2=-1).sum(-1)
        return self.alpha * (x * x).sum((-2, -1)) + self.beta * tr * tr

    def extra_repr(self):
        return f"n={self.n}, alpha={self.alpha}, beta={self.beta}"


class SPDLCMGeometry(_FlatSPDGeometry):
    r"""SPD matrices under the θ-log-Cholesky metric (LieBN §5.1; Lin 2019).

    Deformation ``φ(P) = ψ_LC(chol(P^θ))`` (strictly lower part plus the logarithm of the
    diagonal) onto lower-triangular matrices with addition; ``d²(X, 0) = (1/θ²) ‖X‖_F²``;
    closed-form mean. :attr:`manifold` is ``SPD(n, LogCholeskyMetric(theta=theta))``.

    Raises:
        ValueError: invalid ``n`` or ``theta``.
    """

    def __init__(self, n: int, theta: float = 1.0):
        n = _check_n(n)
        metric = LogCholeskyMetric(theta=theta)
        self.manifold = SPD(n, metric)
        self.n, self.theta = n, metric.theta

    def deform(self, x):
        p = x if self.theta == 1.0 else sym_powm(x, self.theta)
        L = torch.linalg.cholesky(sym(p))
        return torch.tril(L, -1) + torch.diag_embed(torch.log(L.diagonal(dim1=-2, dim2=-1)))

    def inv_deform(self, x):
        L = torch.tril(x, -1) + torch.diag_embed(torch.exp(x.diagonal(dim1=-2, dim2=-1)))
        p = sym(L @ L.mT)
        return p if self.theta == 1.0 else sym_powm(p, 1.0 / self.theta)

    def dist2_to_identity(self, x):
        return (x * x).sum((-2, -1)) / self.theta**2

    def extra_repr(self):
        return f"n={self.n}, theta={self.theta}"


class SO3Geometry(BNGeometry):
    r"""SO(3) with its bi-invariant metric (LieBN §5.2; Manton 2004 for the Karcher mean).

    Left translation ``L_P R = P R`` (centering ``Mᵀ R``); scaling ``Exp(s Log R)``;
    ``d²(R, I) = |Log R|²`` (rotation angle squared, rad², as :class:`manifolds.SO3`); Karcher
    mean (:func:`manifolds.frechet_mean`, started at the first sample); running mean along the
    geodesic. The guarantees need the batch within the Karcher convergence ball (angles < π/2
    around the mean) and ``|s| · angle < π`` after scaling.
    """

    def __init__(self):
        self.manifold = SO3()

    def identity(self, like):
        return _eye_like(like)

    def frechet_mean(self, x, *, tol=None, max_iter=100):
        return _frechet_mean(self.manifold, x, tol=tol, max_iter=max_iter)

    def dist2_to_identity(self, x):
        w = so3_log(x)
        return (w * w).sum(-1)

    def translate(self, x, p, *, inverse=False):
        return (p.mT if inverse else p) @ x

    def scale(self, x, s):
        return so3_exp(_expand_scalar(s, 1) * so3_log(x))

    def interpolate(self, a, b, t):
        return self.manifold.geodesic(a, b, t)


# ---------------------------------------------------------------------------- module
class RiemannianBatchNorm(nn.Module):
    r"""Riemannian batch normalization over a :class:`BNGeometry` (see the module docstring).

    Args:
        geometry: the :class:`BNGeometry`.
        event_shape: shape of one input point, e.g. ``(n, n)`` for SPD, ``(3, 3)`` for SO(3),
            ``()`` for scalars; must equal ``geometry.manifold.event_shape``.
        channels: shape of the channel dimensions between the batch and the event
            dimensions; every channel has its own statistics, bias and scale.
        momentum: running-statistics momentum in ``[0, 1]``, or ``None`` for the cumulative
            average.
        eps: added to the variance (``≥ 0``).
        mean_tol: Karcher-flow tolerance (``None``: the dtype default of
            :func:`manifolds.frechet_mean`, 1e-12 in float64, 1e-5 in float32).
        mean_max_iter: Karcher-flow iterations at most (``≥ 1``; 1 reproduces the single step
            of the reference code, an approximate mean).
        detach_stats: compute the batch statistics on ``x.detach()`` (Brooks et al. 2019 and
            LieBN's default): no gradient flows through the mean and variance.
        scale_variance: ``False`` disables the scaling step and the scale parameter
            (SPDNetBN controls the mean only).
        dtype, device: of the parameters and buffers.

    Parameters / buffers:
        ``bias``: ``(*channels, *event)`` :class:`geoopt.ManifoldParameter` on
        ``geometry.bias_manifold``, initialised to the identity. ``shift``: ``(*channels,)``
        scale ``s`` initialised to 1 (absent with ``scale_variance=False``). Buffers
        ``running_mean (*channels, *event)`` (co-domain, initialised to ``E``),
        ``running_var (*channels,)`` (initialised to 1), ``num_batches_tracked`` (``()`` long).

    Shapes:
        input ``(B, *channels, *event)``, ``B ≥ 1`` (``B ≥ 2`` in training for a meaningful
        variance); output of the same shape.

    Raises:
        ValueError: invalid constructor arguments; an input of the wrong trailing shape.
    """

    def __init__(
        self,
        geometry: BNGeometry,
        event_shape: Union[int, Sequence[int]],
        *,
        channels: Union[int, Sequence[int]] = (),
        momentum: Optional[float] = 0.1,
        eps: float = 1e-5,
        mean_tol: Optional[float] = None,
        mean_max_iter: int = 100,
        detach_stats: bool = True,
        scale_variance: bool = True,
        dtype: Optional[torch.dtype] = None,
        device=None,
    ):
        super().__init__()
        if not isinstance(geometry, BNGeometry):
            raise ValueError(f"geometry must be a BNGeometry, got {type(geometry).__name__}")
        event_shape = () if event_shape == () else _as_shape(event_shape, "event_shape")
        if tuple(event_shape) != tuple(geometry.manifold.event_shape):
            raise ValueError(
                f"event_shape {tuple(event_shape)} does not match the geometry's event shape "
                f"{tuple(geometry.manifold.event_shape)}"
            )
        channels = () if channels == () else _as_shape(channels, "channels")
        if momentum is not None and not (0.0 <= float(momentum) <= 1.0):
            raise ValueError(f"momentum must be in [0, 1] or None, got {momentum!r}")
        if not (float(eps) >= 0.0):
            raise ValueError(f"eps must be >= 0, got {eps!r}")
        if mean_tol is not None and not float(mean_tol) >= 0.0:
            raise ValueError(f"mean_tol must be >= 0 or None, got {mean_tol!r}")
        if not (isinstance(mean_max_iter, int) and mean_max_iter >= 1):
            raise ValueError(f"mean_max_iter must be an int >= 1, got {mean_max_iter!r}")
        self.geometry = geometry
        self.event_shape = tuple(event_shape)
        self.channels = tuple(channels)
        self.momentum = None if momentum is None else float(momentum)
        self.eps = float(eps)
        self.mean_tol = None if mean_tol is None else float(mean_tol)
        self.mean_max_iter = int(mean_max_iter)
        self.detach_stats = bool(detach_stats)
        self.scale_variance = bool(scale_variance)

        factory = {"dtype": dtype if dtype is not None else torch.get_default_dtype(), "device": device}
        like = torch.zeros(self.channels + self.event_shape, **factory)
        e = geometry.identity(like)
        self.bias = geoopt.ManifoldParameter(geometry.bias_init(like).clone(), manifold=geometry.bias_manifold)
        if self.scale_variance:
            self.shift = nn.Parameter(torch.ones(self.channels, **factory))
        else:
            self.register_parameter("shift", None)
        self.register_buffer("running_mean", e.clone())
        self.register_buffer("running_var", torch.ones(self.channels, **factory))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))

    # -------------------------------------------------------------- helpers
    def reset_running_stats(self) -> None:
        """Running mean to ``E``, running variance to 1, batch counter to 0."""
        with torch.no_grad():
            self.running_mean.copy_(self.geometry.identity(self.running_mean))
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def _check_input(self, x: torch.Tensor) -> None:
        tail = self.channels + self.event_shape
        k = len(tail)
        if x.dim() != k + 1 or tuple(x.shape[1:]) != tail:
            raise ValueError(
                f"input must have shape (batch, *channels, *event) = (B, {', '.join(map(str, tail))}), "
                f"got {tuple(x.shape)}"
            )

    def _to_samples_last(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, *channels, *event)`` -> ``(*channels, B, *event)`` (sample axis before the event)."""
        return x.movedim(0, len(self.channels))

    def batch_statistics(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Batch Fréchet mean and variance of co-domain points.

        Args:
            x: ``(B, *channels, *event)`` points in the co-domain (already deformed).

        Returns:
            ``(mean (*channels, *event), var (*channels,))``; ``var`` is
            ``mean_i d²(L_{M⁻¹} x_i, E)`` (zeros when ``scale_variance`` is ``False``).
        """
        g = self.geometry
        m = g.frechet_mean(self._to_samples_last(x), tol=self.mean_tol, max_iter=self.mean_max_iter)
        if self.scale_variance:
            v = g.dist2_to_identity(g.translate(x, m, inverse=True)).mean(0)
        else:
            v = torch.zeros(self.channels, dtype=x.dtype, device=x.device)
        return m, v

    @torch.no_grad()
    def _update_running(self, m: torch.Tensor, v: torch.Tensor) -> None:
        self.num_batches_tracked.add_(1)
        if self.momentum is None:
            # cumulative average; the factor is a Python float only through a host read of the
            # counter, so keep it a tensor
            t = 1.0 / self.num_batches_tracked.to(m.dtype)
        else:
            t = self.momentum
        self.running_mean.copy_(self.geometry.interpolate(self.running_mean, m.to(self.running_mean.dtype), t))
        if self.scale_variance:
            self.running_var.mul_(1 - t).add_(t * v.to(self.running_var.dtype))

    def normalize(self, x: torch.Tensor, mean: torch.Tensor, var: Optional[torch.Tensor]) -> torch.Tensor:
        """Centering, scaling and biasing of co-domain points with given statistics; returns input-space points."""
        g = self.geometry
        y = g.translate(x, mean, inverse=True)
        if self.scale_variance:
            y = g.scale(y, self.shift / torch.sqrt(var + self.eps))
        y = g.translate(y, g.bias_point(self.bias))
        return g.inv_deform(y)

    # -------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize ``x (B, *channels, *event)``; returns the same shape (see the class docstring)."""
        self._check_input(x)
        g = self.geometry
        z = g.deform(x)
        if self.training:
            zs = z.detach() if self.detach_stats else z
            m, v = self.batch_statistics(zs)
            self._update_running(m.detach(), v.detach())
        else:
            m, v = self.running_mean, self.running_var
        return self.normalize(z, m, v)

    @torch.no_grad()
    def refit(self, batches: Union[torch.Tensor, Iterable[torch.Tensor]]) -> None:
        """Recompute the running statistics on new data (test-time adaptation), leaving parameters alone.

        Args:
            batches: one tensor ``(B, *channels, *event)``: the running statistics become its
                exact batch statistics; or an iterable of such tensors: the running
                statistics are reset and accumulated as cumulative averages over the batches
                (geodesic inductive mean of the batch means, average of the within-batch
                variances; exact in flat co-domains for batches of equal size).

        Raises:
            ValueError: an empty iterable or a batch of the wrong shape.
        """
        if isinstance(batches, torch.Tensor):
            batches = [batches]
        self.reset_running_stats()
        momentum, self.momentum = self.momentum, None
        try:
            seen = 0
            for xb in batches:
                self._check_input(xb)
                z = self.geometry.deform(xb.to(self.running_mean.dtype))
                m, v = self.batch_statistics(z)
                self._update_running(m, v)
                seen += 1
            if seen == 0:
                raise ValueError("refit needs at least one batch")
        finally:
            self.momentum = momentum

    def extra_repr(self) -> str:
        return (
            f"geometry={self.geometry!r}, event_shape={self.event_shape}, channels={self.channels}, "
            f"momentum={self.momentum}, eps={self.eps}, mean_max_iter={self.mean_max_iter}, "
            f"detach_stats={self.detach_stats}, scale_variance={self.scale_variance}"
        )


# ---------------------------------------------------------------------------- algorithms
_LIE_METRICS = ("aim", "lem", "lcm", "so3", "euclidean")


class LieBN(RiemannianBatchNorm):
    r"""LieBN: Lie-group batch normalization (Chen, Song, Liu & Sebe, ICLR 2024, Alg. 1).

    Centering by left translation with the inverse batch Fréchet mean, scaling of the
    dispersion by ``s / √(v + ε)`` and biasing by left translation with ``B``, in the co-domain
    of the metric's deformation (see :mod:`manifolds.nn.batchnorm`). Geometries:

    ==============  ===================================================  ======================
    ``metric``      geometry                                             input event shape
    ==============  ===================================================  ======================
    ``"AIM"``       (θ, α, β)-AIM, Cholesky translation                  ``(n, n)`` SPD
    ``"LEM"``       (α, β)-LEM (``theta`` must be 1)                     ``(n, n)`` SPD
    ``"LCM"``       θ-LCM (``alpha``/``beta`` must be 1/0)               ``(n, n)`` SPD
    ``"SO3"``       bi-invariant SO(3) (``n_or_event`` must be 3)        ``(3, 3)`` rotations
    ``"euclidean"`` ``(ℝ^d, +)``: standard batch normalization           ``()`` or ``(d,)``
    ==============  ===================================================  ======================

    ``metric`` may also be an :class:`manifolds.AffineInvariantMetric`,
    :class:`manifolds.LogEuclideanMetric` or :class:`manifolds.LogCholeskyMetric` instance,
    whose parameters are then used (``theta``, ``alpha``, ``beta`` must be left at their
    defaults). Guarantee (Prop. 4.2): with an exact mean and ``ε = 0`` the output has Fréchet
    mean ``bias`` and Fréchet variance ``shift²`` under ``self.geometry.manifold`` (e.g.
    ``SPD(n, AffineInvariantMetric(theta, alpha, beta))``). ``LieBN((), "euclidean",
    channels=(C,))`` equals ``torch.nn.BatchNorm1d(C)`` in training (outputs and
    ``running_mean``; ``running_var`` is biased here, unbiased in torch).

    Args:
        n_or_event: ``n`` for SPD (inputs ``(…, n, n)``), 3 for SO(3), the event shape
            (``()``, ``d`` or ``(d,)``) for ``"euclidean"``.
        metric, theta, alpha, beta: the geometry (above).
        **kwargs: :class:`RiemannianBatchNorm` options (``channels``, ``momentum``, ``eps``,
            ``mean_tol``, ``mean_max_iter``, ``detach_stats``, ``dtype``, ``device``).

    Raises:
        ValueError: unknown metric; parameters the metric does not have; invalid sizes.

    Example:
        >>> bn = LieBN(4, metric="AIM", theta=0.5, channels=(2,), dtype=torch.float64)
        >>> x = SPD(4).random(8, 2, 4, 4, dtype=torch.float64)
        >>> bn(x).shape
        torch.Size([8, 2, 4, 4])
    """

    def __init__(self, n_or_event, metric: Union[str, SPDMetric] = "AIM", theta: float = 1.0, alpha: float = 1.0, beta: float = 0.0, **kwargs):
        if "scale_variance" in kwargs:
            raise ValueError("LieBN always scales the variance; use SPDNetBN for the mean-only normalization")
        if isinstance(metric, SPDMetric):
            if (theta, alpha, beta) != (1.0, 1.0, 0.0):
                raise ValueError("pass theta/alpha/beta either in the metric object or as arguments, not both")
            kind = {AffineInvariantMetric: "aim", LogEuclideanMetric: "lem", LogCholeskyMetric: "lcm"}.get(type(metric))
            if kind is None:
                raise ValueError(f"LieBN supports AffineInvariantMetric, LogEuclideanMetric and LogCholeskyMetric, got {metric!r}")
            theta = metric.theta
            alpha, beta = getattr(metric, "alpha", 1.0), getattr(metric, "beta", 0.0)
        elif isinstance(metric, str) and metric.lower() in _LIE_METRICS:
            kind = metric.lower()
        else:
            raise ValueError(f"metric must be one of {_LIE_METRICS} (case-insensitive) or an SPD metric object, got {metric!r}")
        if kind in ("aim", "lem", "lcm"):
            n = _check_n(n_or_event)
            event = (n, n)
            if kind == "aim":
                geometry = SPDAIMGeometry(n, theta, alpha, beta)
            elif kind == "lem":
                if float(theta) != 1.0:
                    raise ValueError(f"the LEM family has no power deformation (it only rescales LEM): theta must be 1, got {theta!r}")
                geometry = SPDLEMGeometry(n, alpha, beta)
            else:
                if (float(alpha), float(beta)) != (1.0, 0.0):
                    raise ValueError(f"LCM has no (alpha, beta) family: alpha, beta must be 1, 0, got {alpha!r}, {beta!r}")
                geometry = SPDLCMGeometry(n, theta)
        else:
            if (float(theta), float(alpha), float(beta)) != (1.0, 1.0, 0.0):
                raise ValueError(f"metric {metric!r} takes no theta/alpha/beta")
            if kind == "so3":
                if n_or_event not in (3, (3, 3)):
                    raise ValueError(f"SO3 inputs are 3x3 rotations: n_or_event must be 3, got {n_or_event!r}")
                geometry, event = SO3Geometry(), (3, 3)
            else:
                geometry = EuclideanGeometry(n_or_event)
                event = tuple(geometry.manifold.event_shape)
        super().__init__(geometry, event, **kwargs)


class SPDNetBN(RiemannianBatchNorm):
    r"""Riemannian batch normalization for SPD matrices (Brooks, Schwander, Barbaresco, Schneider & Cord, NeurIPS 2019, Alg. 1).

    ``y_i = G^{½} (M^{-½} x_i M^{-½}) G^{½}``: the batch AIM Fréchet mean ``M`` (Karcher flow
    with tolerance ``mean_tol``, at most ``mean_max_iter`` steps; ``mean_max_iter=1`` gives
    the single step of the reference code) is parallel-transported to ``I`` and the result to
    the bias ``G`` (a :class:`geoopt.ManifoldParameter` on ``SPD(n)`` with AIM). No variance
    scaling: with an exact mean the output has AIM Fréchet mean ``G``. The running mean follows
    the AIM geodesic with ``momentum``; evaluation uses it.

    Args:
        n: matrix size; inputs ``(B, *channels, n, n)`` SPD.
        **kwargs: :class:`RiemannianBatchNorm` options except ``scale_variance``.

    Raises:
        ValueError: invalid ``n`` or options.
    """

    def __init__(self, n: int, **kwargs):
        if "scale_variance" in kwargs:
            raise ValueError("SPDNetBN has no variance scaling (scale_variance is fixed to False)")
        n = _check_n(n)
        super().__init__(SPDAIMGeometry(n, translation="sqrt"), (n, n), scale_variance=False, **kwargs)
