"""Synthetic mixtures of wrapped normals with exact log-densities, generated on the fly.

The synthetic benchmarks of De Bortoli et al., "Riemannian Score-Based Generative Modelling",
NeurIPS 2022 (RSGM, §6 and App. O): mixtures of wrapped normals on SO(3), on tori and on
hyperbolic space. Every class has ``sample(n, generator=None)`` and ``log_prob(x)`` (w.r.t. the
Riemannian volume of the library's manifold: ``8π²`` for :class:`manifolds.SO3`, ``(2π)^d`` for
:class:`manifolds.Torus`, the hyperbolic volume for :class:`manifolds.Hyperboloid` /
:class:`manifolds.PoincareBall`), so the log-likelihood of the true distribution (the "oracle")
is available next to a model's.

* :class:`SO3WrappedNormalMixture` — ``x = μ_k Exp(ω)``, ``ω ~ N(0, s_k² I₃)`` in body
  coordinates; density by the sum over the preimages of ``Exp`` with the volume change
  ``(φ / (2 sin(φ/2)))²`` (exact up to a stated truncation).
* :class:`TorusWrappedNormalMixture` — ``x = wrap(μ_k + ε)``, ``ε ~ N(0, diag σ_k²)``; density
  by the wrapped-Gaussian image sum (truncated with a stated bound).
* :class:`HyperbolicWrappedNormalMixture` — ``x = exp_{μ_k}(Γ_{o→μ_k}(0, σ_k n))`` on the
  hyperboloid (Nagano et al., ICML 2019), returned in the hyperboloid or Poincaré-ball model.

Mixture weights are uniform (as in RSGM) unless given.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from manifolds import Hyperboloid, PoincareBall, SO3, Torus
from manifolds.lie import so3_angle, so3_exp

__all__ = ["SO3WrappedNormalMixture", "TorusWrappedNormalMixture", "HyperbolicWrappedNormalMixture"]

_LOG_TWO_PI = math.log(2 * math.pi)


def _weights(weights: Optional[Sequence[float]], K: int) -> torch.Tensor:
    if weights is None:
        return torch.full((K,), 1.0 / K, dtype=torch.float64)
    w = torch.as_tensor(weights, dtype=torch.float64)
    if w.shape != (K,) or not torch.isfinite(w).all() or (w < 0).any() or float(w.sum()) <= 0:
        raise ValueError(f"weights must be {K} non-negative finite numbers with a positive sum, got {weights!r}")
    return w / w.sum()


def _check_k(n_components) -> int:
    if not isinstance(n_components, int) or n_components < 1:
        raise ValueError(f"n_components must be a positive int, got {n_components!r}")
    return n_components


def _check_n(n) -> int:
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    return n


def _gen(generator, seed):
    return generator if generator is not None else torch.Generator().manual_seed(seed)


class SO3WrappedNormalMixture:
    r"""Mixture of wrapped normals on SO(3), the RSGM synthetic benchmark.

    Component ``k``: ``x = μ_k Exp(ω)``, ``ω ~ N(0, s_k² I₃)`` (body coordinates, rad), so the
    rotation angle ``|ω|`` is the geodesic distance of :class:`manifolds.SO3`.

    RSGM's generator (``riemannian_score_sde/datasets/simple.py::Wrapped``, ``scale_type: random``,
    ``scale: 100``): means Haar-uniform, precisions ``τ_k ~ Gamma(shape=100, rate=1)``, scale
    ``1/√τ_k`` applied to geomstats' ``random_normal_tangent``, which projects an ambient standard
    normal 3×3 matrix onto the skew matrices — each rotation-vector component then has variance
    ½. Hence ``s_k = 1/√(2 τ_k)`` (≈ 0.071 rad). (With this convention the oracle log-likelihood
    is 0.90±0.04 / 0.24±0.03 / −0.46±0.01 for K = 16 / 32 / 64 over seeds 0–4 (10⁴ test samples
    each, w.r.t. the volume 8π²; ``benchmarks/bench_earth.py --so3 --methods oracle``), just above
    RSGM's published model values 0.89 / 0.20 / −0.49; the ½ is our reading of geomstats.)

    Density w.r.t. the Riemannian volume (total ``8π²``): the preimages of a rotation of angle
    ``θ ∈ [0, π]`` about axis ``n`` are ``ω = (θ + 2πj) n``, ``j ∈ Z``, and the volume change of
    ``Exp`` at ``|ω| = φ`` is ``det J_l(ω) = (2 sin(φ/2) / φ)²`` (Chirikjian, "Stochastic Models,
    Information Theory, and Lie Groups" Vol. 2, 2011, eq. (10.40); sin²(φ/2) = sin²(θ/2) for every
    preimage), so

    .. math::
        p_k(x) = (2π s²)^{-3/2} \sum_{j∈Z} \frac{(θ + 2πj)²}{4 \sin²(θ/2)} e^{-(θ+2πj)²/(2s²)},
        \qquad θ = \mathrm{dist}(μ_k, x).

    The sum keeps ``|j| ≤ J`` with ``J`` chosen so the omitted terms are below ``1e-16``
    relatively (``J = ⌈s_max·√80 / (2π)⌉ + 1``; omitted ``|θ + 2πj| ≥ 2πJ − π``). At ``θ = 0``
    the ``j ≠ 0`` terms are singular (the 2π-shell of the tangent Gaussian collapses onto the
    mean: the density is +∞ there, integrably); ``sin(θ/2)`` is floored at the dtype's eps, so
    the value returned is finite. The floor changes nothing for ``θ > 2 eps`` and, for
    ``s < 0.5``, nothing at all (the ``j = ±1`` terms stay below ``e^{−(2π)²/(2s²) + 72}``).

    Args:
        n_components: ``K``.
        scale: the Gamma shape of the precisions when ``scale_type="random"`` (RSGM: 100), or the
            fixed per-axis std ``s`` (rad) when ``scale_type="fixed"``.
        scale_type: ``"random"`` (RSGM) or ``"fixed"``.
        seed: seed of the means / precisions (and of :meth:`sample` when no generator is passed).
        weights: optional ``(K,)`` mixture weights (default uniform, as RSGM).

    Attributes: ``means`` ``(K, 3, 3)``, ``stds`` ``(K,)`` (rad), ``weights`` ``(K,)`` — float64.

    Raises:
        ValueError: bad ``n_components`` / ``scale`` / ``scale_type`` / ``weights``.
    """

    manifold = SO3()

    def __init__(self, n_components: int, scale: float = 100.0, scale_type: str = "random", seed: int = 0, weights=None):
        K = _check_k(n_components)
        if not (isinstance(scale, (int, float)) and scale > 0 and math.isfinite(scale)):
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        if scale_type not in ("random", "fixed"):
            raise ValueError(f"scale_type must be 'random' or 'fixed', got {scale_type!r}")
        g = torch.Generator().manual_seed(int(seed))
        self.seed = int(seed)
        self.means = self.manifold.random(K, 3, 3, dtype=torch.float64, generator=g)
        if scale_type == "random":
            prec = torch._standard_gamma(torch.full((K,), float(scale), dtype=torch.float64), generator=g)
            self.stds = 1.0 / torch.sqrt(2.0 * prec)
        else:
            self.stds = torch.full((K,), float(scale), dtype=torch.float64)
        self.weights = _weights(weights, K)
        s_max = float(self.stds.max())
        self.n_wraps = int(math.ceil(s_max * math.sqrt(80.0) / (2 * math.pi))) + 1

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``(n, 3, 3)`` float64 rotations."""
        n = _check_n(n)
        g = _gen(generator, self.seed + 1)
        k = torch.multinomial(self.weights, n, replacement=True, generator=g)
        w = torch.randn(n, 3, dtype=torch.float64, generator=g) * self.stds[k, None]
        return self.means[k] @ so3_exp(w)

    def component_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``(*batch, K)`` log-densities of each component at ``x: (*batch, 3, 3)``."""
        mu = self.means.to(x)
        theta = so3_angle(mu.transpose(-1, -2) @ x[..., None, :, :])  # (*batch, K)
        s = self.stds.to(x)
        js = torch.arange(-self.n_wraps, self.n_wraps + 1, dtype=x.dtype, device=x.device)
        eps = torch.finfo(x.dtype).eps
        half = 0.5 * theta
        sin_half = torch.sin(half).clamp_min(eps)
        # j = 0 term: −θ²/(2s²) + 2 log(θ / (2 sin(θ/2))), stable near θ = 0 (Taylor θ²/24 + θ⁴/2880 of the log)
        small = theta < 1e-3
        ratio_log = torch.where(
            small, 2 * (theta**2 / 24 + theta**4 / 2880), 2 * (torch.log(torch.where(small, torch.ones_like(theta), theta)) - torch.log(2 * sin_half))
        )
        t0 = -theta**2 / (2 * s**2) + ratio_log
        phi = theta[..., None] + 2 * math.pi * js[js != 0]
        tj = -phi**2 / (2 * s[:, None] ** 2) + 2 * torch.log(phi.abs()) - 2 * torch.log(2 * sin_half)[..., None]
        lse = torch.logsumexp(torch.cat([t0[..., None], tj], dim=-1), dim=-1)
        return -1.5 * (_LOG_TWO_PI + 2 * torch.log(s)) + lse

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Mixture log-density w.r.t. the Riemannian volume of :class:`manifolds.SO3`; ``(*batch, 3, 3)`` → ``(*batch,)``."""
        if x.shape[-2:] != (3, 3):
            raise ValueError(f"x must be rotation matrices (*batch, 3, 3), got {tuple(x.shape)}")
        return torch.logsumexp(self.component_log_prob(x) + torch.log(self.weights.to(x)), dim=-1)


class TorusWrappedNormalMixture:
    r"""Mixture of wrapped normals on the flat torus ``T^d = [0, 2π)^d`` (angles, rad).

    Component ``k``: ``x = wrap(μ_k + ε)``, ``ε ~ N(0, σ_k² I_d)``. Exact density (w.r.t. the
    Lebesgue measure on ``[0, 2π)^d``, total ``(2π)^d``) by the image sum

    .. math:: p_k(x) = \prod_{i=1}^d \sum_{j∈Z} N(δ_i + 2πj; 0, σ_k²), \qquad δ = \log_{μ_k} x ∈ [−π, π)^d,

    truncated to ``|j| ≤ J``. The omitted images have ``|δ_i + 2πj| ≥ π(2J + 1)``, so relative to
    the ``j = 0`` term (``≥ e^{−π²/(2σ²)}``) they are below ``4 exp(−2π² J(J+1)/σ²)``; ``J`` is the
    smallest integer making that bound < 1e-16 for the largest ``σ_k`` (J = 2 for σ ≤ 1).

    Means are uniform on the torus; ``σ_k`` = ``scale`` (fixed) or ``1/√τ_k`` with
    ``τ_k ~ Gamma(scale, 1)`` (RSGM's ``random`` scale type).

    Args:
        dim: ``d``. n_components: ``K``. scale, scale_type, seed, weights: as
        :class:`SO3WrappedNormalMixture`.

    Raises:
        ValueError: bad arguments.
    """

    def __init__(self, dim: int, n_components: int, scale: float = 0.3, scale_type: str = "fixed", seed: int = 0, weights=None):
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        K = _check_k(n_components)
        if not (isinstance(scale, (int, float)) and scale > 0 and math.isfinite(scale)):
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        if scale_type not in ("random", "fixed"):
            raise ValueError(f"scale_type must be 'random' or 'fixed', got {scale_type!r}")
        self.manifold = Torus(dim)
        self.seed = int(seed)
        g = torch.Generator().manual_seed(self.seed)
        self.means = self.manifold.random(K, dim, dtype=torch.float64, generator=g)
        if scale_type == "random":
            self.stds = 1.0 / torch.sqrt(torch._standard_gamma(torch.full((K,), float(scale), dtype=torch.float64), generator=g))
        else:
            self.stds = torch.full((K,), float(scale), dtype=torch.float64)
        self.weights = _weights(weights, K)
        smax = float(self.stds.max())
        J = 1
        while 4 * math.exp(-2 * math.pi**2 * J * (J + 1) / smax**2) >= 1e-16:
            J += 1
        self.n_images = J

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``(n, d)`` float64 angles in ``[0, 2π)``."""
        n = _check_n(n)
        g = _gen(generator, self.seed + 1)
        k = torch.multinomial(self.weights, n, replacement=True, generator=g)
        eps = torch.randn(n, self.manifold.dim, dtype=torch.float64, generator=g) * self.stds[k, None]
        return self.manifold.expmap(self.means[k], eps)

    def component_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``(*batch, K)`` component log-densities at ``x: (*batch, d)``."""
        delta = self.manifold.logmap(self.means.to(x), x[..., None, :])  # (*batch, K, d)
        js = torch.arange(-self.n_images, self.n_images + 1, dtype=x.dtype, device=x.device)
        s = self.stds.to(x)[:, None, None]
        z = delta[..., None] + 2 * math.pi * js  # (*batch, K, d, 2J+1)
        per = torch.logsumexp(-z**2 / (2 * s**2), dim=-1) - 0.5 * (_LOG_TWO_PI + 2 * torch.log(s[..., 0]))
        return per.sum(-1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Mixture log-density w.r.t. the volume of :class:`manifolds.Torus`; ``(*batch, d)`` → ``(*batch,)``."""
        if x.shape[-1] != self.manifold.dim:
            raise ValueError(f"x must be (*batch, {self.manifold.dim}) angles, got {tuple(x.shape)}")
        return torch.logsumexp(self.component_log_prob(x) + torch.log(self.weights.to(x)), dim=-1)


class HyperbolicWrappedNormalMixture:
    r"""Mixture of wrapped normals on hyperbolic space ``H^d`` of curvature ``−c``.

    Component ``k`` (Nagano et al., "A Wrapped Normal Distribution on Hyperbolic Space",
    ICML 2019, Alg. 1): ``v ~ N(0, σ_k² I_d)`` at the origin ``o``, transported to ``μ_k`` and
    mapped by ``exp_{μ_k}``. Its log-density w.r.t. the hyperbolic volume is that of
    :meth:`manifolds.Hyperboloid.base_log_prob` with ``r = dist(μ_k, x)`` (Nagano et al. eq. (7)):

    ``−d/2 log(2πσ²) − r²/(2σ²) − (d − 1) log(sinh(√c r)/(√c r))``

    (evaluated by calling ``Hyperboloid.base_log_prob`` on the point at distance ``r`` from the
    origin obtained by the isometry ``x ↦ exp_o(Γ_{μ→o} log_μ x)``, then changing σ).

    Means: the wrapped normal at the origin of std ``mean_std`` (RSGM's hyperbolic experiments use
    a few components spread around the origin). ``model="poincare"`` returns / accepts points of
    the Poincaré ball (the density is the same, the two models being isometric).

    Args:
        dim: ``d``. n_components: ``K``. std: ``σ`` of every component (or a ``(K,)`` sequence).
        mean_std: spread of the means. c: curvature magnitude. model: ``"hyperboloid"`` or
        ``"poincare"``. seed, weights: as :class:`SO3WrappedNormalMixture`.

    Raises:
        ValueError: bad arguments.
    """

    def __init__(self, dim: int = 2, n_components: int = 4, std=0.3, mean_std: float = 1.5, c: float = 1.0,
                 model: str = "hyperboloid", seed: int = 0, weights=None):
        K = _check_k(n_components)
        if model not in ("hyperboloid", "poincare"):
            raise ValueError(f"model must be 'hyperboloid' or 'poincare', got {model!r}")
        self.hyperboloid = Hyperboloid(dim, c=c, base_std=1.0)
        self.model = model
        self.manifold = self.hyperboloid if model == "hyperboloid" else PoincareBall(dim, c=c)
        self.seed = int(seed)
        std_t = torch.as_tensor(std, dtype=torch.float64).expand(K).clone()
        if not torch.isfinite(std_t).all() or (std_t <= 0).any():
            raise ValueError(f"std must be positive finite (a number or {K} numbers), got {std!r}")
        if not (mean_std >= 0 and math.isfinite(mean_std)):
            raise ValueError(f"mean_std must be a non-negative finite number, got {mean_std!r}")
        g = torch.Generator().manual_seed(self.seed)
        self.means = self.hyperboloid.random(K, dim + 1, dtype=torch.float64, generator=g, std=float(mean_std))
        self.stds = std_t
        self.weights = _weights(weights, K)

    def _origin(self, like):
        o = torch.zeros_like(like)
        o[..., 0] = 1.0 / math.sqrt(self.hyperboloid.c)
        return o

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``(n, d + 1)`` hyperboloid points, or ``(n, d)`` Poincaré-ball points."""
        n = _check_n(n)
        H = self.hyperboloid
        g = _gen(generator, self.seed + 1)
        k = torch.multinomial(self.weights, n, replacement=True, generator=g)
        mu = self.means[k]
        v = torch.randn(n, H.dim + 1, dtype=torch.float64, generator=g) * self.stds[k, None]
        v[:, 0] = 0
        x = H.expmap(mu, H.transp(self._origin(mu), mu, v))
        return x if self.model == "hyperboloid" else H.to_poincare(x)

    def component_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``(*batch, K)`` component log-densities at ``x`` (in the model of ``self.model``)."""
        H = self.hyperboloid
        if self.model == "poincare":
            x = H.from_poincare(x)
        mu = self.means.to(x)
        xb = x[..., None, :].expand(*x.shape[:-1], mu.shape[0], x.shape[-1])
        mub = mu.expand_as(xb)
        o = self._origin(xb)
        y = H.expmap0(H.transp(mub, o, H.logmap(mub, xb)))  # isometric image, dist(o, y) = dist(μ, x)
        lp1 = H.base_log_prob(y)  # the σ = 1 density at distance r, then change σ
        r2 = H.dist0(y) ** 2
        s = self.stds.to(x)
        return lp1 + 0.5 * r2 - r2 / (2 * s**2) - H.dim * torch.log(s)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Mixture log-density w.r.t. the hyperbolic volume; ``(*batch, d+1)`` (or ``(*batch, d)`` Poincaré) → ``(*batch,)``."""
        want = self.hyperboloid.dim + (1 if self.model == "hyperboloid" else 0)
        if x.shape[-1] != want:
            raise ValueError(f"x must be (*batch, {want}) points of the {self.model} model, got {tuple(x.shape)}")
        return torch.logsumexp(self.component_log_prob(x) + torch.log(self.weights.to(x)), dim=-1)
