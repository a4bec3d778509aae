r"""Score-matching losses for Riemannian diffusion (RSGM §3.3; Lou et al. 2023 §3).

All losses take a score model ``score_fn(x, t) -> s`` (tangent at ``x``; wrap an ambient
network with :class:`manifolds.flow_matching.ProjectToTangent`), clean data ``x0`` and a
:class:`~manifolds.diffusion.BrownianSDE`, and return a scalar (the batch mean).

* :func:`dsm_loss` — denoising score matching, RSGM Eq. (8) with weight ``λ(t) = σ² = t``:
  ``E_t E_{x_t|x₀} [ t |s_θ(x_t, t) − ∇ log p_t(x_t|x₀)|²_g ]``; the target is the heat-kernel
  score on Sⁿ, SO(3), Tᵈ, ℝⁿ (Lou et al.) and Varadhan's ``log_{x_t}(x₀)/t`` elsewhere
  (RSGM ``dsmv``; biased at large t).
* :func:`ism_loss` — implicit score matching, RSGM Eq. (7) (Hyvärinen 2005 on manifolds):
  ``E_t E_{x_t} [ t (½ |s_θ|²_g + div_g s_θ) ]``; no heat kernel needed, only the Riemannian
  divergence (:func:`manifolds.flow_matching.likelihood.riemannian_divergence`, exact or
  Hutchinson). This is RSGM's choice for hyperbolic space and the fallback for SPD.
* :func:`ssm_loss` — sliced score matching (Song et al., UAI 2019, SSM-VR): ISM with the
  divergence replaced by Hutchinson's ``εᵀ J ε`` with Gaussian or Rademacher probes.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from ..base import Manifold
from ..flow_matching.likelihood import _chart, riemannian_divergence
from .sde import BrownianSDE

__all__ = ["dsm_loss", "ism_loss", "ssm_loss"]


def _check(manifold: Manifold, x0: torch.Tensor, sde: BrownianSDE):
    ok, reason = manifold._check_shape(x0.shape, "x0")
    if not ok:
        raise ValueError(reason)
    if sde.manifold is not manifold and sde.manifold._key() != manifold._key():
        raise ValueError(f"sde is defined on {sde.manifold!r}, not on {manifold!r}")
    return x0.shape[: x0.dim() - len(manifold.event_shape)]


def _times(sde, batch, x0, t, generator):
    if t is None:
        n = 1
        for b in batch:
            n *= b
        return sde.sample_times(n, dtype=x0.dtype, device=x0.device, generator=generator).reshape(batch)
    return torch.as_tensor(t, dtype=x0.dtype, device=x0.device).expand(batch)


def dsm_loss(
    manifold: Manifold,
    score_fn: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    sde: BrownianSDE,
    *,
    t: Optional[torch.Tensor] = None,
    target: str = "auto",
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    r"""Denoising score matching with heat-kernel targets, weighted by ``σ² = t``.

    ``L = mean[ t |s_θ(x_t, t) − ∇_{x_t} log p_t(x_t | x₀)|²_{g(x_t)} ]`` with ``x_t`` drawn by
    ``sde.marginal_sample`` (exact heat kernel or geodesic random walk). RSGM Eq. (8)/(9)
    (``dsm0`` / ``dsmv``), Lou et al. 2023 Eq. (4) (``σ² ‖proju(s_θ) − ∇ log K_σ‖²``).

    Args:
        manifold: the data manifold.
        score_fn: ``(x, t) -> s`` with ``x: (*batch, *event_shape)``, ``t: (*batch,)``.
        x0: ``(*batch, *event_shape)`` data points.
        sde: the forward process.
        t: optional fixed times (scalar or ``(*batch,)``); default ``sde.sample_times``.
        target: ``"auto"`` (heat-kernel score where available) or ``"varadhan"``.

    Returns:
        Scalar loss.

    Raises:
        ValueError: ``x0`` of the wrong trailing shape, ``sde`` on another manifold.
    """
    batch = _check(manifold, x0, sde)
    t = _times(sde, batch, x0, t, generator)
    with torch.no_grad():
        x_t = sde.marginal_sample(x0, t, generator=generator)
        tgt = sde.marginal_score(x_t, x0, t, target=target)
    s = manifold.proju(x_t, score_fn(x_t, t))
    err = manifold.inner(x_t, s - tgt)
    return (t * err).mean()


def ism_loss(
    manifold: Manifold,
    score_fn: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    sde: BrownianSDE,
    *,
    t: Optional[torch.Tensor] = None,
    divergence: str = "exact",
    n_probes: int = 1,
    probe: str = "rademacher",
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    r"""Implicit score matching ``mean[ t (½|s_θ(x_t, t)|²_g + div_g s_θ(x_t, t)) ]`` (RSGM Eq. (7)).

    Minimising it over ``s_θ`` is equivalent to minimising ``E|s_θ − ∇ log p_t|²_g`` (integration
    by parts on the manifold; Hyvärinen 2005). The divergence is the Riemannian one of
    :func:`manifolds.flow_matching.likelihood.riemannian_divergence` (chart trace plus the
    ``½⟨∇ log det G, s⟩`` correction on SPD / Poincaré), exact (one jvp per chart coordinate)
    or Hutchinson with ``n_probes`` probe vectors.

    Args:
        manifold: Euclidean, Sphere, Torus, SO3, SE3, Stereographic, Hyperboloid, SPD or a Product.
        score_fn, x0, sde, t: as :func:`dsm_loss`.
        divergence: ``"exact"`` or ``"hutchinson"``.
        n_probes: number of Hutchinson probes.
        probe: ``"rademacher"`` or ``"gaussian"`` probe vectors.

    Returns:
        Scalar loss (can be negative).

    Raises:
        ValueError: bad shapes or options. NotImplementedError: unsupported manifold.
    """
    batch = _check(manifold, x0, sde)
    if divergence not in ("exact", "hutchinson"):
        raise ValueError(f"divergence must be 'exact' or 'hutchinson', got {divergence!r}")
    if probe not in ("rademacher", "gaussian"):
        raise ValueError(f"probe must be 'rademacher' or 'gaussian', got {probe!r}")
    if int(n_probes) < 1:
        raise ValueError(f"n_probes must be >= 1, got {n_probes!r}")
    t = _times(sde, batch, x0, t, generator)
    with torch.no_grad():
        x_t = sde.marginal_sample(x0, t, generator=generator)
    eps = None
    if divergence == "hutchinson":
        K = _chart(manifold).K
        shape = (int(n_probes),) + tuple(batch) + (K,)
        if probe == "gaussian":
            eps = torch.randn(shape, dtype=x0.dtype, device=x0.device, generator=generator)
        else:
            eps = torch.randint(0, 2, shape, device=x0.device, generator=generator).to(x0.dtype) * 2 - 1
    s, div = riemannian_divergence(manifold, score_fn, x_t, t, divergence=divergence, eps=eps)
    return (t * (0.5 * manifold.inner(x_t, s) + div)).mean()


def ssm_loss(
    manifold: Manifold,
    score_fn: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    sde: BrownianSDE,
    *,
    t: Optional[torch.Tensor] = None,
    n_probes: int = 1,
    probe: str = "gaussian",
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    r"""Sliced score matching (Song et al. 2019, SSM-VR form) on a manifold:
    ``mean[ t (½|s_θ|²_g + εᵀ J ε) ]`` — :func:`ism_loss` with a Hutchinson divergence
    (RSGM's ``ssm``). Arguments as :func:`ism_loss`."""
    return ism_loss(
        manifold, score_fn, x0, sde, t=t, divergence="hutchinson", n_probes=n_probes, probe=probe, generator=generator
    )
