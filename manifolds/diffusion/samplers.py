r"""Sampling and likelihood for Riemannian score-based models with a Brownian forward process.

**Reverse SDE** (RSGM §3.2, Eq. (5); Anderson 1982 on manifolds). For the forward
``dX = f dt + g dB^M`` the time reversal ``Y_s = X_{T−s}`` solves
``dY = (−f + g² ∇ log p_{T−s}(Y)) ds + g dB^M``. With Brownian forward noising (``f = 0``,
``g = 1``) the geodesic Euler–Maruyama step (RSGM Algorithm 2) is

.. math:: y ← \exp_y\big(h\, s_θ(y, t) + \sqrt{h}\, ξ\big), \qquad t ← t − h,

``ξ`` a standard tangent normal in the metric (:func:`~manifolds.diffusion.tangent_normal`).

**Probability-flow ODE** (Song et al., ICLR 2021, Eq. (13), on manifolds RSGM §3.4). The
Fokker–Planck equation of ``dX = dB^M`` is ``∂_t p = ½ Δ p = −div(p · (−½ ∇ log p))``, so
the deterministic flow ``dx/dt = −½ ∇ log p_t(x)`` has the same marginals. Its likelihood
follows from the change of variables ``d/dt log p_t(x_t) = −div_g v`` (reused from
:func:`manifolds.flow_matching.likelihood.log_likelihood`).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from ..base import Manifold
from ..flow_matching.likelihood import log_likelihood
from ..flow_matching.solver import RiemannianODESolver
from .heat_kernel import tangent_normal

__all__ = ["reverse_sde_sample", "probability_flow_sample", "probability_flow_log_likelihood"]


def _check_times(T, t_min, n_steps):
    if not (0 <= float(t_min) < float(T)):
        raise ValueError(f"need 0 <= t_min < T, got t_min={t_min!r}, T={T!r}")
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")


def reverse_sde_sample(
    manifold: Manifold,
    score_fn: Callable[..., torch.Tensor],
    x_T: torch.Tensor,
    *,
    T: float,
    t_min: float = 1e-3,
    n_steps: int = 100,
    generator: Optional[torch.Generator] = None,
    denoise_last: bool = True,
    return_intermediates: bool = False,
) -> torch.Tensor:
    r"""Sample by the geodesic Euler–Maruyama discretisation of the reverse SDE (module doc).

    Args:
        manifold: the manifold.
        score_fn: ``(x, t) -> s`` tangent at ``x``, ``t: (*batch,)`` (diffusion time).
        x_T: ``(*batch, *event_shape)`` prior samples at time ``T`` (e.g.
            ``BrownianSDE.prior_sample``).
        T, t_min: the reverse process runs from ``T`` down to ``t_min`` in ``n_steps`` equal steps.
        denoise_last: omit the noise in the last step (the usual "denoising" step).
        return_intermediates: return all ``n_steps + 1`` states stacked on dim 0.

    Returns:
        ``(*batch, *event_shape)`` samples at ``t_min`` (or the stacked trajectory).

    Raises:
        ValueError: ``t_min >= T`` or ``n_steps < 1``.
    """
    _check_times(T, t_min, n_steps)
    batch = x_T.shape[: x_T.dim() - len(manifold.event_shape)]
    h = (float(T) - float(t_min)) / n_steps
    x = x_T
    states = [x]
    for i in range(n_steps):
        t = torch.full(batch, float(T) - i * h, dtype=x.dtype, device=x.device)
        step = h * manifold.proju(x, score_fn(x, t))
        if not (denoise_last and i == n_steps - 1):
            step = step + h**0.5 * tangent_normal(manifold, x, generator)
        x = manifold.expmap(x, step)
        if return_intermediates:
            states.append(x)
    return torch.stack(states) if return_intermediates else x


def probability_flow_sample(
    manifold: Manifold,
    score_fn: Callable[..., torch.Tensor],
    x_T: torch.Tensor,
    *,
    T: float,
    t_min: float = 1e-3,
    method: str = "rk4",
    n_steps: int = 100,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> torch.Tensor:
    r"""Integrate the probability-flow ODE ``dx/dt = −½ s_θ(x, t)`` from ``T`` down to ``t_min``.

    Uses :class:`manifolds.flow_matching.RiemannianODESolver` (geodesic ``"euler"``,
    ``"midpoint"``, ``"rk4"`` or a torchdiffeq method with projection).

    Args:
        x_T: ``(*batch, *event_shape)`` prior samples; other arguments as :func:`reverse_sde_sample`
            and :meth:`RiemannianODESolver.sample`.

    Returns:
        ``(*batch, *event_shape)`` samples at ``t_min``.
    """
    _check_times(T, t_min, n_steps)

    def velocity(x, t):
        return -0.5 * manifold.proju(x, score_fn(x, t))

    return RiemannianODESolver(manifold, velocity).sample(
        x_T, method=method, n_steps=n_steps, t0=float(T), t1=float(t_min), atol=atol, rtol=rtol
    )


def probability_flow_log_likelihood(
    manifold: Manifold,
    score_fn: Callable[..., torch.Tensor],
    x: torch.Tensor,
    *,
    T: float,
    t_min: float = 1e-3,
    prior_log_prob: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    method: str = "dopri5",
    atol: float = 1e-5,
    rtol: float = 1e-5,
    n_steps: int = 1000,
    divergence: str = "exact",
    n_hutchinson: int = 1,
    generator: Optional[torch.Generator] = None,
    enable_grad: bool = False,
    options: Optional[dict] = None,
):
    r"""``log p_{t_min}(x)`` of the probability-flow ODE of a score model (RSGM §3.4).

    With flow time ``u ∈ [0, 1]`` and diffusion time ``τ(u) = T − u (T − t_min)`` the ODE
    ``dx/dτ = −½ s_θ(x, τ)`` becomes ``dx/du = ½ (T − t_min) s_θ(x, τ(u))``, carrying the prior
    at ``u = 0`` to the model at ``u = 1``; :func:`manifolds.flow_matching.likelihood.log_likelihood`
    integrates it back with the divergence, and the prior term is replaced by
    ``prior_log_prob`` (default: ``manifold.base_log_prob``, the uniform density on compact
    manifolds).

    Args:
        x: ``(*batch, *event_shape)`` data points.
        prior_log_prob: ``x_T -> log p_T(x_T)`` ``(*batch,)``.
        method, atol, rtol, n_steps, divergence, n_hutchinson, generator, enable_grad, options:
            passed to ``log_likelihood`` (e.g. ``method="rk4", options={"step_size": 0.05}``).

    Returns:
        ``(log_p, x_T)``: ``(*batch,)`` log-densities and the prior points.

    Raises:
        ValueError: ``t_min >= T`` and the errors of ``log_likelihood``.
    """
    _check_times(T, t_min, 1)
    T, t_min = float(T), float(t_min)
    scale = 0.5 * (T - t_min)

    def velocity(y, u):
        return scale * manifold.proju(y, score_fn(y, T - u * (T - t_min)))

    lp, x_T = log_likelihood(
        manifold,
        velocity,
        x,
        method=method,
        atol=atol,
        rtol=rtol,
        n_steps=n_steps,
        divergence=divergence,
        n_hutchinson=n_hutchinson,
        generator=generator,
        enable_grad=enable_grad,
        options=options,
    )
    if prior_log_prob is not None:
        lp = lp - manifold.base_log_prob(x_T) + prior_log_prob(x_T)
    return lp, x_T
