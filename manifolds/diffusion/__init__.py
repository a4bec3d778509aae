r"""Riemannian score-based diffusion (De Bortoli et al., "Riemannian Score-Based Generative
Modelling", NeurIPS 2022 — RSGM; Lou et al., "Scaling Riemannian Diffusion Models",
NeurIPS 2023).

Convention: the forward process is Brownian motion with generator ``½Δ``; its transition
density is the heat kernel ``p_t = e^{tΔ/2}`` and ``σ² = t``.

* :mod:`.heat_kernel` — heat kernels and scores on Sⁿ (Gegenbauer series / WKB), SO(3)
  (character series / exact wrapped sum), Tᵈ (Fourier / wrapped Gaussian) with Lou et al.'s
  regime switch; exact samplers (rejection on Sⁿ and SO(3) via S³, wrapped Gaussian on Tᵈ)
  and the geodesic random walk for every other manifold.
* :class:`BrownianSDE` — the forward process.
* :func:`dsm_loss`, :func:`ism_loss`, :func:`ssm_loss` — score-matching objectives.
* :func:`reverse_sde_sample`, :func:`probability_flow_sample`,
  :func:`probability_flow_log_likelihood` — samplers and the exact likelihood.
"""

from .heat_kernel import (
    circle_log_heat_kernel,
    geodesic_random_walk,
    has_heat_kernel,
    heat_kernel_log_prob,
    heat_kernel_score,
    sample_heat_kernel,
    so3_radial_log_heat_kernel,
    sphere_radial_log_heat_kernel,
    tangent_normal,
    varadhan_score,
)
from .losses import dsm_loss, ism_loss, ssm_loss
from .samplers import probability_flow_log_likelihood, probability_flow_sample, reverse_sde_sample
from .sde import BrownianSDE

__all__ = [
    "BrownianSDE",
    "circle_log_heat_kernel",
    "sphere_radial_log_heat_kernel",
    "so3_radial_log_heat_kernel",
    "heat_kernel_log_prob",
    "heat_kernel_score",
    "varadhan_score",
    "has_heat_kernel",
    "tangent_normal",
    "geodesic_random_walk",
    "sample_heat_kernel",
    "dsm_loss",
    "ism_loss",
    "ssm_loss",
    "reverse_sde_sample",
    "probability_flow_sample",
    "probability_flow_log_likelihood",
]
