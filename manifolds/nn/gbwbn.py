r"""GBWBN: batch normalization under the generalized Bures–Wasserstein geometry (Wang et al., CVPR 2025).

Wang, Jin, Chen, Luo & Wu, "Towards a general batch normalization for SPD networks: the
generalized Bures–Wasserstein geometry", CVPR 2025 (arXiv 2504.00660; code ``jjscc/GBWBN``,
``spd/nn.py::BatchNormSPD``); refs/batchnorm.md §3. The (θ, M)-GBW metric on SPD matrices is the
pullback of the Bures–Wasserstein (BW) metric by the *deformation*

.. math::  φ(X) = M^{-½} X^θ M^{-½}, \qquad d_{θ,M}(X, Y) = d_{BW}(φX, φY)/|θ|

(Han et al., arXiv 2110.10464; :class:`manifolds.GeneralizedBuresWassersteinMetric`), with a
*learnable* SPD metric parameter ``M`` (initialised to ``I``). The layer works in the co-domain
of ``φ`` (BW geometry, identity ``I``), as the reference code (refs §3.2):

1. deform the batch and the bias: ``X_i ← φ(X_i)``, ``B̃ = φ(B)``;
2. batch mean ``G`` = the BW barycenter of the ``φ(X_i)`` by the Karcher flow of
   :func:`manifolds.frechet_mean` with a tolerance (the reference code: one fixed-point step);
3. **centering**: ``X̄_i = Exp_I(T_{G→I} Log_G X_i)``, where ``T_{G→I}`` is the isometric
   tangent map of the reference code: in the eigenbasis of ``G = U diag(g) Uᵀ`` the entries of
   ``Uᵀ V U`` are multiplied by ``√(2/(g_i + g_j))`` (an isometry ``T_G → T_I`` of the BW
   metric ``½ tr(L_G[V] V)``; *not* the Levi-Civita transport, which has no closed form,
   ``manifolds.SPD(n, "bwm").transp`` integrates an ODE: the isometric map is exact, cheap and
   is all that the guarantee below needs); ``Exp_I(W) = (I + W/2)²``, ``Log_I(X) = 2(X^{½} − I)``;
4. **scaling**: ``Exp_I(t Log_I X̄) = ((1 − t) I + t X̄^{½})²``, ``t = s/√(v + ε)``;
5. **biasing**: ``Exp_{B̃}(T_{I→B̃} Log_I X̂)`` (``T_{I→B̃}``: entries times ``√((b_i + b_j)/2)``);
6. map back: ``φ⁻¹(Y) = (M^{½} Y M^{½})^{1/θ}``.

**Guarantee** (tested): ``T`` is linear and isometric and ``Log ∘ Exp = id`` on the relevant
domain, so with the exact mean (``Σ_i Log_G X_i = 0``) and ``ε = 0`` the centered batch satisfies
``Σ_i Log_I X̄_i = 0`` (``I`` is its BW barycenter: the barycenter is the unique positive
definite fixed point, Álvarez-Esteban et al. 2016) with ``d(X̄_i, I) = d(X_i, G)``; scaling and
biasing keep this, so the output has (θ, M)-GBW Fréchet mean ``B`` and Fréchet variance ``s²``.
*Domain*: BW is incomplete, and ``Log_P(Exp_P V) = V`` needs ``I + L_P[V] ≻ 0`` (the BW
exponential leaves its injectivity domain otherwise); e.g. scaling by ``t > 1`` can push
``(1 − t) I + t X̄^{½}`` out of the positive cone for a widely spread batch. Inside the domain the
guarantee is exact; outside it is a property of the BW geometry, not of this code. The centering
itself leaves the domain when the batch is spread widely relative to the scale of its mean: in
the SPDNet benchmark on the geomstats EMG covariances (eigenvalues 0.3–551) with θ = 1, 28 of 32
points of a batch were folded at initialisation and the output mean missed ``B`` by 0.75
(Frobenius); with θ = 0.5 (BW on ``P^{½}``, the reference code's HDM05 setting) none were, and the
mean was exact to 1e-14 (benchmarks/README.md, batch normalization). The layer records the
folded share (:attr:`GBWBN.out_of_domain_fraction`) and warns once in training.

**Variance.** ``variance="frechet"`` (default, correct): ``v = mean_i d²(X̄_i, I)/θ²``, the
Fréchet variance of the batch around its mean. ``variance="paper"``: ``v = mean_i
d²_BW(φ(X_i), I)/θ²``, the squared distance of the *un-centered* batch to ``I`` (the reference
code's ``cal_var``; refs §3.2 step 3); then the output variance is ``s² · FV / v``, not ``s²``.

**Parameters and running statistics.** ``bias`` and ``M`` are
:class:`geoopt.ManifoldParameter` on ``manifolds.SPD(n, "aim")`` (the reference code's
``RiemannianAdam`` on geoopt's SPD, which is AIM; a complete metric, so optimizer steps stay
SPD). The running mean is stored in the co-domain of ``φ``, as in the reference code: when
``M`` changes during training the stored mean refers to the deformation of the step that
produced it (use :meth:`refit` after training to recompute the statistics with the final
``M``).
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence, Union

import geoopt
import torch

from .._linalg import sym, sym_invsqrtm, sym_powm, sym_sqrtm
from ..spd import SPD, GeneralizedBuresWassersteinMetric
from ..stats import frechet_mean
from .batchnorm import BNGeometry, RiemannianBatchNorm

__all__ = ["GBWGeometry", "GBWBN", "bw_isometric_transport"]

_VARIANCES = ("frechet", "paper")


# ---------------------------------------------------------------------------- isometric tangent map
def _kernels(lam: torch.Tensor, inverse: bool):
    """``K_ij = √((λ_i + λ_j)/2)`` (or its inverse) and ``T_ikj`` = its divided difference in the first index.

    ``T_ikj = (K(λ_i, λ_j) − K(λ_k, λ_j)) / (λ_i − λ_k) = 1 / (2 (K_ij + K_kj))`` for ``K`` (exact,
    no cancellation, finite at ties); for ``J = 1/K``: ``−J_ij J_kj / (2 (K_ij + K_kj))``.
    """
    k = torch.sqrt(0.5 * (lam.unsqueeze(-1) + lam.unsqueeze(-2)))  # (..., n, n), K[i, j]
    ki = k.unsqueeze(-2)  # (..., i, 1, j)
    kk = k.unsqueeze(-3)  # (..., 1, k, j)
    t = 0.5 / (ki + kk)  # (..., i, k, j)
    if inverse:
        j = 1.0 / k
        return j, -t * j.unsqueeze(-2) * j.unsqueeze(-3)
    return k, t


class _IsoTransport(torch.autograd.Function):
    """``U ((Uᵀ V U) ∘ K) Uᵀ`` with ``P = U diag(λ) Uᵀ`` and ``K`` from :func:`_kernels`; see :func:`bw_isometric_transport`."""

    @staticmethod
    def forward(ctx, p, v, inverse):
        lam, u = torch.linalg.eigh(sym(p))
        finfo = torch.finfo(lam.dtype)
        lam = torch.clamp(lam, min=torch.clamp(finfo.eps * lam[..., -1:], min=finfo.tiny))
        k, t = _kernels(lam, inverse)
        vt = u.mT @ sym(v) @ u
        ctx.save_for_backward(u, k, t, vt)
        ctx.p_shape, ctx.v_shape = p.shape, v.shape
        return u @ (vt * k) @ u.mT

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        u, k, t, vt = ctx.saved_tensors
        gt = u.mT @ sym(grad) @ u
        gv = gp = None
        if ctx.needs_input_grad[1]:
            gv = (u @ (gt * k) @ u.mT).sum_to_size(ctx.v_shape)
        if ctx.needs_input_grad[0]:
            # d ỹ_ij = Σ_k T_ikj d̃_ik ṽ_kj + Σ_k T_jki ṽ_ik d̃_kj  ⇒  p̄ = U (A + Aᵀ) Uᵀ,
            # A_ik = Σ_j T_ikj G̃_ij ṽ_kj (first-order Daleckii–Krein for a two-variable kernel)
            a = torch.einsum("...ikj,...ij,...kj->...ik", t, gt, vt)
            gp = (u @ (a + a.mT) @ u.mT).sum_to_size(ctx.p_shape)
            gp = sym(gp)
        return gp, gv, None


def bw_isometric_transport(p: torch.Tensor, v: torch.Tensor, *, to_identity: bool) -> torch.Tensor:
    r"""Isometric tangent map of the Bures–Wasserstein metric between ``T_P`` and ``T_I`` (GBWBN).

    With ``P = U diag(λ) Uᵀ`` and ``Ṽ = Uᵀ V U``: ``to_identity=True`` maps ``V ∈ T_P`` to
    ``U (Ṽ_ij √(2/(λ_i + λ_j))) Uᵀ ∈ T_I``; ``to_identity=False`` maps ``V ∈ T_I`` to
    ``U (Ṽ_ij √((λ_i + λ_j)/2)) Uᵀ ∈ T_P``. Both are isometries of the BW metric
    ``½ tr(L_P[V] V)`` (``L_P`` the Lyapunov solution ``P L + L P = V``, whose eigenbasis form
    is ``Ṽ_ij/(λ_i + λ_j)``) and inverse to each other (Wang et al., CVPR 2025, GBWBN code
    ``spd/functional.py``; refs/batchnorm.md §3.2). It is not the Levi-Civita parallel transport.

    The backward w.r.t. ``P`` (custom autograd function) uses the exact divided differences of
    the kernel, ``1/(2(K_ij + K_kj))``: no ``1/(λ_i − λ_j)`` term, so gradients are finite at
    repeated eigenvalues (e.g. ``P = I``, the bias at initialisation), where autograd through
    ``eigh`` gives NaN. Double backward is not supported.

    Args:
        p: ``(..., n, n)`` SPD (eigenvalues clamped at ``max(eps·λ_max, tiny)``).
        v: ``(..., n, n)`` symmetric (only ``sym(v)`` is read); batch shapes broadcast with ``p``.
        to_identity: direction of the map (see above).

    Returns:
        ``(..., n, n)`` symmetric, the broadcast batch shape.
    """
    return _IsoTransport.apply(p, v, bool(to_identity))


# ---------------------------------------------------------------------------- geometry
def _eye(like: torch.Tensor) -> torch.Tensor:
    n = like.shape[-1]
    return torch.eye(n, dtype=like.dtype, device=like.device)


class GBWGeometry(BNGeometry):
    r"""The :class:`~manifolds.nn.batchnorm.BNGeometry` of GBWBN (see the module docstring).

    ``deform(X) = M^{-½} X^θ M^{-½}``, ``inv_deform(Y) = (M^{½} Y M^{½})^{1/θ}``; in the co-domain
    (BW geometry, ``E = I``): ``translate`` = ``Exp ∘ T ∘ Log`` through ``I`` (centering /
    biasing), ``scale(X, t) = ((1 − t) I + t X^{½})²``, ``dist2_to_identity(X) = (tr X + n −
    2 tr X^{½})/θ²``, ``frechet_mean`` = the BW barycenter by :func:`manifolds.frechet_mean`
    (Karcher flow on ``SPD(n, "bwm")``), ``interpolate`` = the BW geodesic.

    Args:
        m: ``(n, n)`` SPD metric parameter (a tensor or parameter; read at every call, so it
            may be trained).
        theta: power deformation, a nonzero real (GBWBN's ``po``: 1 for SPDNet / MAMEM, 0.5
            for RResNet / HDM05).

    Attributes:
        manifold: ``SPD(n, GeneralizedBuresWassersteinMetric(m, theta=theta))`` (the metric of
            the guarantees).
        codomain: ``SPD(n, "bwm")``.
        bias_manifold: ``SPD(n, "aim")`` (see the module docstring).

    Raises:
        ValueError: ``m`` not an ``(n, n)`` SPD floating tensor; ``theta`` zero or not finite.
    """

    def __init__(self, m: torch.Tensor, *, theta: float = 1.0):
        metric = GeneralizedBuresWassersteinMetric(m, theta=theta)  # validates m and theta
        n = m.shape[-1]
        self.m = m
        self.theta = metric.theta
        self.manifold = SPD(n, metric)
        self.codomain = SPD(n, "bwm")
        self._bias_manifold = SPD(n, "aim")
        #: share of the points of the last centering (``translate(..., inverse=True)``) outside
        #: the domain ``I + W/2 ≻ 0`` of the BW exponential at ``I`` (a 0-dim tensor; None before)
        self.last_out_of_domain: Optional[torch.Tensor] = None

    @property
    def bias_manifold(self):
        return self._bias_manifold

    # -------------------------------------------------------------- deformation
    def _m(self, x: torch.Tensor) -> torch.Tensor:
        return self.m.to(dtype=x.dtype, device=x.device)

    def deform(self, x):
        y = x if self.theta == 1.0 else sym_powm(x, self.theta)
        r = sym_invsqrtm(self._m(x))
        return sym(r @ y @ r)

    def inv_deform(self, x):
        r = sym_sqrtm(self._m(x))
        y = sym(r @ x @ r)
        return y if self.theta == 1.0 else sym_powm(y, 1.0 / self.theta)

    # -------------------------------------------------------------- co-domain (BW)
    def identity(self, like):
        return _eye(like).expand(like.shape).clone()

    def frechet_mean(self, x, *, tol=None, max_iter=100):
        return frechet_mean(self.codomain, x, tol=tol, max_iter=max_iter)

    def dist2_to_identity(self, x):
        lam = torch.linalg.eigvalsh(sym(x))
        n = x.shape[-1]
        d2 = lam.sum(-1) + n - 2.0 * torch.sqrt(torch.clamp(lam, min=0.0)).sum(-1)
        return torch.clamp(d2, min=0.0) / (self.theta * self.theta)

    def translate(self, x, p, *, inverse=False):
        eye = _eye(x)
        if inverse:
            w = bw_isometric_transport(p, self.codomain.logmap(p, x), to_identity=True)
            h = sym(eye + 0.5 * w)
            # Log_I(Exp_I W) = W only while I + W/2 ≻ 0: record the share of the batch outside
            # (the centering then folds those points and the guarantee fails; module docstring)
            with torch.no_grad():
                self.last_out_of_domain = (torch.linalg.cholesky_ex(h.detach()).info > 0).to(x.dtype).mean()
            return sym(h @ h)  # Exp_I(W) = (I + W/2)²
        w = 2.0 * (sym_sqrtm(x) - eye)  # Log_I(X)
        return self.codomain.expmap(p, bw_isometric_transport(p, w, to_identity=False))

    def scale(self, x, s):
        t = torch.as_tensor(s, dtype=x.dtype, device=x.device)
        t = t.reshape(t.shape + (1, 1))
        h = (1 - t) * _eye(x) + t * sym_sqrtm(x)
        return sym(h @ h)

    def interpolate(self, a, b, t):
        return self.codomain.geodesic(a, b, t)

    def extra_repr(self) -> str:
        return f"n={self.manifold.n}, theta={self.theta}"


# ---------------------------------------------------------------------------- module
class GBWBN(RiemannianBatchNorm):
    r"""Batch normalization of SPD matrices under the (θ, M)-generalized Bures–Wasserstein metric.

    Wang, Jin, Chen, Luo & Wu, CVPR 2025 (see the module docstring for the algorithm, the
    guarantee, its domain and the two variance modes).

    Args:
        n: matrix size.
        theta: power deformation (nonzero real; default 1).
        channels, momentum, eps, mean_tol, mean_max_iter, detach_stats, dtype, device: see
            :class:`~manifolds.nn.batchnorm.RiemannianBatchNorm` (``mean_max_iter=1`` is the
            single barycenter step of the reference code, an approximate mean).
        variance: ``"frechet"`` (default) or ``"paper"`` (see the module docstring).
        learn_metric: make ``M`` a :class:`geoopt.ManifoldParameter` on ``SPD(n, "aim")``
            (default); ``False`` registers it as a buffer (fixed ``M``).

    Parameters / buffers: ``bias`` ``(*channels, n, n)`` (init ``I``), ``shift`` ``(*channels,)``
    (init 1), ``M`` ``(n, n)`` (init ``I``, shared by the channels), ``running_mean`` (co-domain),
    ``running_var``, ``num_batches_tracked``.

    Shapes:
        input and output ``(B, *channels, n, n)`` SPD.

    Raises:
        ValueError: ``n`` not a positive int, ``theta`` invalid, an unknown ``variance``, or
            the errors of :class:`~manifolds.nn.batchnorm.RiemannianBatchNorm`.

    Example:
        >>> bn = GBWBN(4, theta=0.5, dtype=torch.float64)
        >>> x = SPD(4).random(8, 4, 4, dtype=torch.float64)
        >>> bn(x).shape
        torch.Size([8, 4, 4])
    """

    def __init__(
        self,
        n: int,
        *,
        theta: float = 1.0,
        channels: Union[int, Sequence[int]] = (),
        momentum: Optional[float] = 0.1,
        eps: float = 1e-5,
        mean_tol: Optional[float] = None,
        mean_max_iter: int = 100,
        detach_stats: bool = True,
        variance: str = "frechet",
        learn_metric: bool = True,
        dtype: Optional[torch.dtype] = None,
        device=None,
    ):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"GBWBN: n must be a positive int (matrix size), got {n!r}")
        if variance not in _VARIANCES:
            raise ValueError(f"GBWBN: variance must be one of {_VARIANCES}, got {variance!r}")
        dtype = dtype if dtype is not None else torch.get_default_dtype()
        eye = torch.eye(n, dtype=dtype, device=device)
        m = geoopt.ManifoldParameter(eye, manifold=SPD(n, "aim")) if learn_metric else eye
        geometry = GBWGeometry(m, theta=theta)
        super().__init__(
            geometry,
            (n, n),
            channels=channels,
            momentum=momentum,
            eps=eps,
            mean_tol=mean_tol,
            mean_max_iter=mean_max_iter,
            detach_stats=detach_stats,
            dtype=dtype,
            device=device,
        )
        if learn_metric:
            self.M = m
        else:
            self.register_buffer("M", m)
        self.variance = variance
        self.learn_metric = bool(learn_metric)
        self._domain_warned = False

    def _apply(self, fn, *args, **kwargs):
        # keep the geometry's reference to M in sync if .to() / .cuda() / .double() replace it
        out = super()._apply(fn, *args, **kwargs)
        self.geometry.m = self.M
        self.geometry.manifold.metric.m = self.M
        for f in self.geometry.manifold.metric._maps:
            if hasattr(f, "m"):
                f.m = self.M
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """As :meth:`RiemannianBatchNorm.forward`; warns once per module when the centering leaves the BW domain.

        A centered point ``Exp_I(W)`` with ``I + W/2`` not positive definite is folded back
        into the cone: the output mean / variance guarantee then fails (module docstring,
        *Domain*). :attr:`out_of_domain_fraction` holds the share for the last batch.
        """
        y = super().forward(x)
        if self.training and not self._domain_warned:
            frac = self.geometry.last_out_of_domain
            if frac is not None and float(frac) > 0:
                self._domain_warned = True
                warnings.warn(
                    f"GBWBN: {100 * float(frac):.0f}% of the batch left the domain of the Bures–Wasserstein "
                    "exponential at I during centering (batch widely spread relative to its mean); the output "
                    "mean / variance guarantee does not hold for these points. A smaller power deformation "
                    "(theta=0.5) or rescaled inputs usually avoid it; see out_of_domain_fraction.",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return y

    @property
    def out_of_domain_fraction(self) -> Optional[float]:
        """Share of the last centered batch outside the BW domain ``I + W/2 ≻ 0`` (None before any forward)."""
        f = self.geometry.last_out_of_domain
        return None if f is None else float(f)

    def batch_statistics(self, x):
        """Batch mean and variance of co-domain points ``x (B, *channels, n, n)``.

        ``variance="frechet"``: as :meth:`RiemannianBatchNorm.batch_statistics` (the Fréchet
        variance around the mean); ``"paper"``: ``mean_i d²_BW(x_i, I)/θ²`` of the un-centered
        batch (GBWBN code's ``cal_var``).
        """
        if self.variance == "frechet":
            return super().batch_statistics(x)
        g = self.geometry
        m = g.frechet_mean(self._to_samples_last(x), tol=self.mean_tol, max_iter=self.mean_max_iter)
        return m, g.dist2_to_identity(x).mean(0)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", variance={self.variance!r}, learn_metric={self.learn_metric}"

