"""Riemannian flow matching (Chen & Lipman, "Flow Matching on General Geometries", ICLR 2024).

* :class:`GeodesicProbPath` — the geodesic conditional path and its closed-form velocity.
* :func:`riemannian_fm_loss` — the loss in the Riemannian norm.
* :class:`ProjectToTangent` — wraps an ambient network into a tangent vector field.
* :class:`RiemannianODESolver` — samples by integrating the field on the manifold
  (geodesic Euler / midpoint / RK4, or torchdiffeq with projection).

Works for every manifold of :mod:`manifolds` and their products.
"""

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
]
