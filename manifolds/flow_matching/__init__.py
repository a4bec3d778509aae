"""Riemannian flow matching (Chen & Lipman, "Flow Matching on General Geometries", ICLR 2024).

* :class:`GeodesicProbPath` — the geodesic conditional path and its closed-form velocity.
* :func:`riemannian_fm_loss` — the loss in the Riemannian norm.
* :class:`ProjectToTangent` — wraps an ambient network into a tangent vector field.
* :class:`RiemannianODESolver` — samples by integrating the field on the manifold
  (geodesic Euler / midpoint / RK4, or torchdiffeq with projection).

* :func:`log_likelihood` — exact log-likelihood of a trained flow (change of variables,
  exact or Hutchinson Riemannian divergence, dopri5 or 1000-step projected Euler);
  :func:`riemannian_divergence`, :func:`log_det_metric` (module :mod:`.likelihood`).
* :class:`ClassifierFreeGuidance`, :func:`drop_condition` — conditioning and classifier-free
  guidance in the tangent space (module :mod:`.guidance`).

Works for every manifold of :mod:`manifolds` and their products (the likelihood: see
:mod:`.likelihood` for the supported manifolds).
"""

from .guidance import ClassifierFreeGuidance, drop_condition
from .likelihood import LIKELIHOOD_METHODS_FIXED, log_det_metric, log_likelihood, riemannian_divergence
from .loss import riemannian_fm_loss
from .path import GeodesicProbPath, LinearScheduler, PathSample
from .solver import FIXED_STEP_METHODS, RiemannianODESolver
from .vector_field import ProjectToTangent

__all__ = [
    "GeodesicProbPath",
    "LinearScheduler",
    "PathSample",
    "riemannian_fm_loss",
    "ProjectToTangent",
    "RiemannianODESolver",
    "FIXED_STEP_METHODS",
    "log_likelihood",
    "riemannian_divergence",
    "log_det_metric",
    "LIKELIHOOD_METHODS_FIXED",
    "ClassifierFreeGuidance",
    "drop_condition",
]
