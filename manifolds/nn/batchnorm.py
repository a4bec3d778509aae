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

from ..base import Manifold
from ..euclidean import Euclidean

__all__ = ["BNGeometry", "EuclideanGeometry", "RiemannianBatchNorm"]


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
