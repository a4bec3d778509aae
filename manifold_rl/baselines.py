"""Classical density-estimation baselines on manifolds.

* :class:`VonMisesFisherMixture` — a mixture of von Mises–Fisher distributions on the sphere
  ``S^{p−1} ⊂ R^p`` fitted by expectation–maximisation (Banerjee, Dhillon, Ghosh & Sra,
  "Clustering on the unit hypersphere using von Mises–Fisher distributions", JMLR 6, 2005,
  §4 "soft-moVMF"). It is the classical baseline of the earth-science benchmark (the published
  "Mixture of Kent" row of RSGM's Table 4 is a close relative).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from scipy.special import ive

__all__ = ["vmf_log_normalizer", "VonMisesFisherMixture"]


def vmf_log_normalizer(kappa, p: int):
    r"""``log C_p(κ)`` of the von Mises–Fisher density ``C_p(κ) exp(κ μᵀx)`` on ``S^{p−1} ⊂ R^p``.

    .. math:: C_p(κ) = \frac{κ^{p/2-1}}{(2π)^{p/2} I_{p/2-1}(κ)}

    (Mardia & Jupp, "Directional Statistics", 2000, eq. (9.3.4)), w.r.t. the surface measure
    (``∫ C_p(κ) e^{κ μᵀx} dS(x) = 1``). ``log I_ν(κ) = log ive(ν, κ) + κ`` with
    :func:`scipy.special.ive` (exponentially scaled: no overflow for large κ). For
    ``κ → 0`` the limit ``−log |S^{p−1}| = lgamma(p/2) − log 2 − (p/2) log π`` is used below
    ``κ = 1e-8`` (relative error < 1e-8 there).

    Args:
        kappa: array-like or tensor of concentrations ``κ ≥ 0`` (any shape).
        p: ambient dimension (``p = 3`` on S²).

    Returns:
        float64 numpy array of the shape of ``kappa``.
    """
    k = np.asarray(kappa.detach().cpu().numpy() if torch.is_tensor(kappa) else kappa, dtype=np.float64)
    nu = 0.5 * p - 1.0
    small = k < 1e-8
    ks = np.where(small, 1.0, k)
    out = nu * np.log(ks) - 0.5 * p * math.log(2 * math.pi) - (np.log(ive(nu, ks)) + ks)
    lim = math.lgamma(0.5 * p) - math.log(2.0) - 0.5 * p * math.log(math.pi)
    return np.where(small, lim, out)


def _mean_resultant_ratio(kappa: np.ndarray, p: int) -> np.ndarray:
    """``A_p(κ) = I_{p/2}(κ) / I_{p/2−1}(κ)`` (ratio of exponentially scaled Bessel functions)."""
    nu = 0.5 * p - 1.0
    return ive(nu + 1.0, kappa) / ive(nu, kappa)


class VonMisesFisherMixture:
    r"""Mixture of von Mises–Fisher distributions on ``S^{p−1}``, fitted by EM.

    Density (w.r.t. the surface measure of the unit sphere)

    .. math:: p(x) = \sum_k α_k\, C_p(κ_k)\, \exp(κ_k μ_kᵀ x)

    with :func:`vmf_log_normalizer` for ``log C_p``. EM (Banerjee et al., JMLR 2005, §4):

    * E-step: ``r_ik ∝ α_k C_p(κ_k) exp(κ_k μ_kᵀ x_i)`` (normalised with logsumexp).
    * M-step: ``α_k = mean_i r_ik``, ``s_k = Σ_i r_ik x_i``, ``μ_k = s_k / |s_k|``,
      ``r̄_k = |s_k| / Σ_i r_ik`` and the approximation (their eq. (4.4))
      ``κ_k ≈ r̄(p − r̄²) / (1 − r̄²)``, optionally refined by ``newton_steps`` Newton steps on
      ``A_p(κ) = r̄`` (Sra, Comput. Stat. 27, 2012: ``κ ← κ − (A − r̄)/(1 − A² − (p−1)A/κ)``).
    * ``κ_k`` is capped at ``kappa_max``: a component sitting on duplicated points (the volcano
      file repeats eruptions of the same volcano) would otherwise have ``κ → ∞`` and an unbounded
      likelihood. Components whose weight falls below ``1e-10`` keep their previous mean and κ.

    Initialisation: spherical k-means++ (Arthur & Vassilvitskii 2007 with the dissimilarity
    ``1 − μᵀx``): the first centre is a uniformly drawn data point, each next one a data point
    drawn with probability ∝ ``min_k (1 − μ_kᵀx)``; then one M-step on the hard assignment to the
    nearest centre.

    Args:
        n_components: number of components ``K ≥ 1``.
        max_iter: maximum number of EM iterations.
        tol: stop when the mean log-likelihood improves by less than ``tol`` (nats).
        seed: seed of the initialisation and of :meth:`sample`.
        kappa_max: cap on the concentrations.
        newton_steps: Newton refinements of the κ approximation per M-step (0 = Banerjee's
            approximation only).

    Attributes (after :meth:`fit`): ``weights_`` ``(K,)``, ``means_`` ``(K, p)``, ``kappas_``
    ``(K,)`` float64 tensors; ``n_iter_``; ``converged_``; ``log_likelihood_`` (mean, nats).

    Raises:
        ValueError: bad constructor arguments; :meth:`fit` on data that are not unit vectors
            ``(N, p)`` with ``N ≥ K``; :meth:`log_prob` / :meth:`sample` before :meth:`fit`.

    Example:
        >>> x = load_earth("volcano")                              # doctest: +SKIP
        >>> vmf = VonMisesFisherMixture(40, seed=0).fit(x)         # doctest: +SKIP
        >>> vmf.log_prob(x).shape                                  # doctest: +SKIP
        torch.Size([827])
    """

    def __init__(
        self,
        n_components: int,
        max_iter: int = 500,
        tol: float = 1e-6,
        seed: int = 0,
        kappa_max: float = 1e4,
        newton_steps: int = 2,
    ):
        if not isinstance(n_components, int) or n_components < 1:
            raise ValueError(f"n_components must be a positive int, got {n_components!r}")
        if not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
        if not (tol >= 0):
            raise ValueError(f"tol must be >= 0, got {tol!r}")
        if not (kappa_max > 0 and math.isfinite(kappa_max)):
            raise ValueError(f"kappa_max must be a positive finite number, got {kappa_max!r}")
        if not isinstance(newton_steps, int) or newton_steps < 0:
            raise ValueError(f"newton_steps must be a non-negative int, got {newton_steps!r}")
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = float(tol)
        self.seed = int(seed)
        self.kappa_max = float(kappa_max)
        self.newton_steps = newton_steps
        self.weights_: Optional[torch.Tensor] = None
        self.means_: Optional[torch.Tensor] = None
        self.kappas_: Optional[torch.Tensor] = None

    # ------------------------------------------------------------------ helpers
    def _check_x(self, x: torch.Tensor, p: Optional[int] = None) -> torch.Tensor:
        if not torch.is_tensor(x) or x.dim() != 2 or x.shape[1] < 2:
            raise ValueError(f"x must be a (N, p) tensor of unit vectors with p >= 2, got {getattr(x, 'shape', type(x))}")
        if p is not None and x.shape[1] != p:
            raise ValueError(f"x must have {p} coordinates (the fitted sphere), got {x.shape[1]}")
        x = x.to(torch.float64)
        if not torch.isfinite(x).all():
            raise ValueError("x contains NaN or inf")
        err = (x.norm(dim=-1) - 1).abs().max()
        if err > 1e-6:
            raise ValueError(f"x must be unit vectors (max | |x| - 1 | = {float(err):.2e})")
        return x

    def _kappa_from_rbar(self, rbar: np.ndarray, p: int) -> np.ndarray:
        # cap r̄ so that the approximation stays finite; the κ cap is applied after Newton
        rbar = np.clip(rbar, 1e-12, 1 - 1e-15)
        kappa = rbar * (p - rbar**2) / (1 - rbar**2)
        kappa = np.minimum(kappa, self.kappa_max)
        for _ in range(self.newton_steps):
            a = _mean_resultant_ratio(kappa, p)
            den = 1 - a * a - (p - 1) / kappa * a
            step = np.where(np.abs(den) > 1e-300, (a - rbar) / np.where(den == 0, 1.0, den), 0.0)
            kappa = np.clip(kappa - step, 1e-8, self.kappa_max)
        return kappa

    def _m_step(self, x, resp, prev_means=None, prev_kappas=None):
        p = x.shape[1]
        nk = resp.sum(0)  # (K,)
        s = resp.T @ x  # (K, p)
        snorm = s.norm(dim=-1)
        alive = nk > 1e-10 * x.shape[0]
        means = s / snorm.clamp_min(1e-300)[:, None]
        rbar = (snorm / nk.clamp_min(1e-300)).numpy()
        kappas = torch.from_numpy(self._kappa_from_rbar(rbar, p))
        if prev_means is not None:
            means = torch.where(alive[:, None], means, prev_means)
            kappas = torch.where(alive, kappas, prev_kappas)
        weights = nk / nk.sum()
        return weights, means, kappas

    def _log_joint(self, x, weights, means, kappas):
        logc = torch.from_numpy(vmf_log_normalizer(kappas, x.shape[1]))
        return torch.log(weights.clamp_min(1e-300)) + logc + kappas * (x @ means.T)  # (N, K)

    def _init(self, x, g):
        n, K = x.shape[0], self.n_components
        idx = [int(torch.randint(n, (1,), generator=g))]
        dmin = 1 - x @ x[idx[0]]
        for _ in range(1, K):
            w = dmin.clamp_min(0)
            if float(w.sum()) <= 0:  # all remaining points duplicate a centre
                j = int(torch.randint(n, (1,), generator=g))
            else:
                j = int(torch.multinomial(w, 1, generator=g))
            idx.append(j)
            dmin = torch.minimum(dmin, 1 - x @ x[j])
        centres = x[idx]
        assign = (x @ centres.T).argmax(1)
        resp = torch.nn.functional.one_hot(assign, K).to(x.dtype)
        weights, means, kappas = self._m_step(x, resp)
        # empty clusters (duplicated centres): keep the centre, a broad κ and a small weight
        empty = resp.sum(0) == 0
        means = torch.where(empty[:, None], centres, means)
        kappas = torch.where(empty, torch.ones_like(kappas), kappas)
        weights = torch.where(empty, torch.full_like(weights, 1.0 / n), weights)
        return weights / weights.sum(), means, kappas

    # ------------------------------------------------------------------ API
    def fit(self, x: torch.Tensor) -> "VonMisesFisherMixture":
        """Fit by EM.

        Args:
            x: ``(N, p)`` unit vectors (any float dtype; computed in float64), ``N ≥ K``.

        Returns:
            ``self``.
        """
        x = self._check_x(x).cpu()
        if x.shape[0] < self.n_components:
            raise ValueError(f"need at least n_components={self.n_components} points, got {x.shape[0]}")
        g = torch.Generator().manual_seed(self.seed)
        weights, means, kappas = self._init(x, g)
        prev = -math.inf
        self.converged_ = False
        it = 0
        for it in range(1, self.max_iter + 1):
            lj = self._log_joint(x, weights, means, kappas)
            lse = torch.logsumexp(lj, dim=1)
            ll = float(lse.mean())
            resp = torch.exp(lj - lse[:, None])
            weights, means, kappas = self._m_step(x, resp, means, kappas)
            if abs(ll - prev) < self.tol:
                self.converged_ = True
                break
            prev = ll
        self.weights_, self.means_, self.kappas_ = weights, means, kappas
        self.n_iter_ = it
        self.log_likelihood_ = float(self.log_prob(x).mean())
        return self

    def _fitted(self):
        if self.means_ is None:
            raise ValueError("VonMisesFisherMixture is not fitted: call fit(x) first")

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density w.r.t. the surface measure of the unit sphere (nats).

        Args:
            x: ``(N, p)`` unit vectors.

        Returns:
            ``(N,)`` float64 log-densities (on the device of ``x``).
        """
        self._fitted()
        dev = x.device if torch.is_tensor(x) else None
        x = self._check_x(x, self.means_.shape[1]).cpu()
        return torch.logsumexp(self._log_joint(x, self.weights_, self.means_, self.kappas_), dim=1).to(dev)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior component probabilities ``r_ik = p(k | x_i)`` (the E-step of Banerjee et al.,
        JMLR 2005, §4: ``r_ik ∝ α_k C_p(κ_k) exp(κ_k μ_kᵀ x_i)``).

        Args:
            x: ``(N, p)`` unit vectors.

        Returns:
            ``(N, K)`` float64 rows summing to 1 (on the CPU).

        Raises:
            ValueError: before :meth:`fit`, or ``x`` not ``(N, p)`` finite unit vectors.
        """
        self._fitted()
        x = self._check_x(x, self.means_.shape[1]).cpu()
        return torch.softmax(self._log_joint(x, self.weights_, self.means_, self.kappas_), dim=1)

    def sample(self, n: int, generator: Optional[torch.Generator] = None, *, components: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Draw ``n`` points from the fitted mixture (or from given components).

        A component index from the weights, then a vMF sample by Wood's algorithm (Wood,
        "Simulation of the von Mises Fisher distribution", Commun. Stat. Simul. 23, 1994): the
        cosine ``w = μᵀx`` by rejection (closed form ``w = 1 + log(u + (1−u)e^{−2κ})/κ`` on S²),
        then a uniform direction orthogonal to μ.

        Args:
            n: number of samples.
            generator: torch generator (default: one seeded with ``seed + 1``).
            components: optional ``(n,)`` integer component indices in ``[0, K)``; sample ``i``
                is then drawn from component ``components[i]`` instead of a random one (e.g.
                indices drawn from :meth:`responsibilities`: a data-dependent coupling).

        Returns:
            ``(n, p)`` float64 unit vectors.

        Raises:
            ValueError: ``n`` negative, or ``components`` not ``n`` indices in range.
        """
        self._fitted()
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        g = generator if generator is not None else torch.Generator().manual_seed(self.seed + 1)
        if components is not None:
            comp = torch.as_tensor(components).cpu()
            K = self.means_.shape[0]
            if comp.shape != (n,) or comp.dtype not in (torch.int32, torch.int64) or (n and (int(comp.min()) < 0 or int(comp.max()) >= K)):
                raise ValueError(f"components must be ({n},) integer indices in [0, {K}), got shape {tuple(comp.shape)} dtype {comp.dtype}")
            comp = comp.long()
        else:
            comp = torch.multinomial(self.weights_, n, replacement=True, generator=g) if n > 0 else torch.zeros(0, dtype=torch.long)
        mu = self.means_[comp]
        kappa = self.kappas_[comp]
        p = mu.shape[1]
        w = _sample_vmf_cosine(kappa, p, g)
        z = torch.randn(n, p, dtype=torch.float64, generator=g)
        v = z - (z * mu).sum(-1, keepdim=True) * mu
        v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        x = w[:, None] * mu + torch.sqrt((1 - w * w).clamp_min(0))[:, None] * v
        return x / x.norm(dim=-1, keepdim=True)


def _sample_vmf_cosine(kappa: torch.Tensor, p: int, g: torch.Generator) -> torch.Tensor:
    """``w = μᵀx`` of vMF samples (Wood 1994); ``kappa: (n,)`` float64 → ``(n,)``."""
    n = kappa.shape[0]
    if p == 3:
        u = torch.rand(n, dtype=torch.float64, generator=g)
        k = kappa.clamp_min(1e-12)
        w = 1 + torch.log(u + (1 - u) * torch.exp(-2 * k)) / k
        return w.clamp(-1.0, 1.0)
    k = kappa
    b = (p - 1) / (2 * k + torch.sqrt(4 * k * k + (p - 1) ** 2))
    x0 = (1 - b) / (1 + b)
    c = k * x0 + (p - 1) * torch.log(1 - x0 * x0)
    w = torch.empty(n, dtype=torch.float64)
    todo = torch.arange(n)
    while todo.numel() > 0:  # rejection sampling (acceptance rate > 0.5 for all κ)
        m = todo.numel()
        # Beta draws through two Gamma draws with the generator (torch.distributions has no generator argument)
        ga = torch._standard_gamma(torch.full((m,), (p - 1) / 2.0, dtype=torch.float64), generator=g)
        gb = torch._standard_gamma(torch.full((m,), (p - 1) / 2.0, dtype=torch.float64), generator=g)
        zz = ga / (ga + gb)
        bb, kk, cc = b[todo], k[todo], c[todo]
        ww = (1 - (1 + bb) * zz) / (1 - (1 - bb) * zz)
        u = torch.rand(m, dtype=torch.float64, generator=g)
        ok = kk * ww + (p - 1) * torch.log(1 - x0[todo] * ww) - cc >= torch.log(u)
        w[todo[ok]] = ww[ok]
        todo = todo[~ok]
    return w
