r"""The forward noising process: Brownian motion on a manifold (RSGM §3, Lou et al. §3).

``dX_t = dB_t^M`` on ``[0, T]`` (drift ``f = 0``, diffusion ``g = 1``; generator ``½Δ``), so the
transition density is the heat kernel ``p_t(x | x₀) = e^{tΔ/2}(x, x₀)`` and ``σ² = t``
(see :mod:`manifolds.diffusion.heat_kernel`). On a compact manifold ``p_T`` tends to the
uniform distribution exponentially fast (rate ``λ₁/2``: ``e^{-T}`` on S², ``e^{-T}`` on SO(3),
``e^{-T/2}`` on the torus), which is the prior of the reverse process.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..base import Manifold
from ..lie import SO3
from ..sphere import Sphere
from ..torus import Torus
from .heat_kernel import has_heat_kernel, heat_kernel_score, sample_heat_kernel, varadhan_score

__all__ = ["BrownianSDE"]


class BrownianSDE:
    r"""Brownian motion on ``manifold`` with the ½Δ generator, on ``[t_min, T]``.

    Args:
        manifold: any manifold of the library with ``expmap`` (and ``logmap`` for the
            Varadhan target).
        T: final time (``T = 5`` on S² leaves ``|p_T - 1/4π| / (1/4π) <= 3e^{-5} ≈ 2 %``).
        t_min: smallest training / sampling time (``> 0``; the score blows up as ``1/t``).
        sampler: how :meth:`marginal_sample` draws ``x_t | x₀``: ``"auto"`` (exact heat-kernel
            sampling on Sⁿ, SO(3), Tᵈ, ℝⁿ; geodesic random walk elsewhere), ``"exact"`` or ``"grw"``.
        n_grw_steps: steps of the geodesic random walk.
        time_sampling: ``"uniform"`` on ``[t_min, T]`` or ``"log_uniform"`` (density ``∝ 1/t``:
            more weight at small t). With the ``σ² = t`` weighted loss of
            :func:`~manifolds.diffusion.dsm_loss`, log-uniform times make the expected loss
            ``∫ E|s_θ − ∇ log p_t|² dt / log(T/t_min)`` (+ a constant): the likelihood
            weighting ``g(t)² = 1`` of the diffusion's ELBO, estimated with importance sampling
            ``∝ 1/t`` (Song, Durkan, Murray & Ermon, "Maximum Likelihood Training of
            Score-Based Diffusion Models", NeurIPS 2021, Thm 1 and §4; on manifolds Huang et
            al., "Riemannian Diffusion Models", NeurIPS 2022). Uniform times weight the error
            by ``t`` instead (RSGM's ``λ(t) = σ²`` choice).

    Raises:
        ValueError: ``0 < t_min < T`` violated, unknown options.
    """

    def __init__(
        self,
        manifold: Manifold,
        T: float = 5.0,
        t_min: float = 1e-3,
        *,
        sampler: str = "auto",
        n_grw_steps: int = 100,
        time_sampling: str = "uniform",
    ):
        if not (0 < float(t_min) < float(T)):
            raise ValueError(f"need 0 < t_min < T, got t_min={t_min!r}, T={T!r}")
        if sampler not in ("auto", "exact", "grw"):
            raise ValueError(f"sampler must be 'auto', 'exact' or 'grw', got {sampler!r}")
        if time_sampling not in ("uniform", "log_uniform"):
            raise ValueError(f"time_sampling must be 'uniform' or 'log_uniform', got {time_sampling!r}")
        self.manifold = manifold
        self.T = float(T)
        self.t_min = float(t_min)
        self.sampler = sampler
        self.n_grw_steps = int(n_grw_steps)
        self.time_sampling = time_sampling

    # ------------------------------------------------------------------ coefficients
    def drift(self, x: torch.Tensor, t) -> torch.Tensor:
        """Forward drift ``f(x, t) = 0``."""
        return torch.zeros_like(x)

    def diffusion(self, t) -> float:
        """Forward diffusion coefficient ``g(t) = 1``."""
        return 1.0

    @property
    def is_compact(self) -> bool:
        """Whether the uniform distribution is the limit (Sphere, SO3, Torus)."""
        return isinstance(self.manifold, (Sphere, SO3, Torus))

    # ------------------------------------------------------------------ sampling
    def sample_times(self, n: int, *, dtype=None, device=None, generator=None) -> torch.Tensor:
        """``(n,)`` training times in ``[t_min, T]`` (uniform or log-uniform)."""
        u = torch.rand(n, dtype=dtype, device=device, generator=generator)
        if self.time_sampling == "uniform":
            return self.t_min + (self.T - self.t_min) * u
        lo, hi = torch.log(torch.tensor(self.t_min, dtype=u.dtype)), torch.log(torch.tensor(self.T, dtype=u.dtype))
        return torch.exp(lo + (hi - lo) * u)

    def marginal_sample(self, x0: torch.Tensor, t, generator=None) -> torch.Tensor:
        """``x_t ~ p_t(· | x₀)``; ``x0: (*batch, *event_shape)``, ``t`` scalar or ``(*batch,)``."""
        return sample_heat_kernel(
            self.manifold, x0, t, method=self.sampler, n_steps=self.n_grw_steps, generator=generator
        )

    def marginal_score(self, x_t: torch.Tensor, x0: torch.Tensor, t, *, target: str = "auto") -> torch.Tensor:
        """DSM target ``∇ log p_t(x_t | x₀)``: the heat-kernel score (``target="auto"`` on Sⁿ,
        SO(3), Tᵈ, ℝⁿ) or Varadhan's ``log_{x_t}(x₀)/t`` (``"varadhan"``, and the fallback)."""
        if target not in ("auto", "varadhan"):
            raise ValueError(f"target must be 'auto' or 'varadhan', got {target!r}")
        if target == "auto" and has_heat_kernel(self.manifold):
            return heat_kernel_score(self.manifold, x_t, x0, t)
        return varadhan_score(self.manifold, x_t, x0, t)

    def prior_sample(self, *size, dtype=None, device=None, generator=None) -> torch.Tensor:
        """Samples of the reverse-process prior (uniform on compact manifolds).

        Raises:
            ValueError: non-compact manifold (Brownian motion has no limit there; pass your own
                ``x_T``, e.g. :meth:`marginal_sample` of a reference point at time ``T``).
        """
        if not self.is_compact:
            raise ValueError(
                f"Brownian motion on {self.manifold!r} has no stationary distribution; "
                "pass x_T to the sampler yourself (e.g. marginal_sample(reference_point, T))"
            )
        return self.manifold.random_base(*size, dtype=dtype, device=device, generator=generator)

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Uniform log-density of the prior (compact manifolds)."""
        if not self.is_compact:
            raise ValueError(f"no prior density for {self.manifold!r} (non-compact)")
        return self.manifold.base_log_prob(x)

    def extra_repr(self) -> Optional[str]:
        return f"manifold={self.manifold!r}, T={self.T}, t_min={self.t_min}, sampler={self.sampler!r}"

    def __repr__(self):
        return f"BrownianSDE({self.extra_repr()})"
