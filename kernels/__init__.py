"""kernels — heavy geometry on manifolds: geodesic kernel sums, k-nearest neighbours, MMD,
energy distances, kernel density estimates, soft-min and barrier sums, at 10⁵ points and
beyond without ``N × M`` memory.

Each manifold of :mod:`manifolds` writes its distance once (:meth:`manifolds.Manifold.kernel_dist`,
float32-safe chord forms) against a small ops layer (:mod:`kernels._ops`) that runs on
broadcast torch tensors and on KeOps ``LazyTensor``\\ s; the backend (dense torch, chunked
torch, KeOps) is chosen by a memory budget or forced (:mod:`kernels._backend`).

Example:
    >>> import torch
    >>> from manifolds import Sphere
    >>> from kernels import kernel_sum
    >>> S = Sphere(2)
    >>> x = S.random(1000, dtype=torch.float64)
    >>> kernel_sum(S, x, x, bandwidth=0.2).shape
    torch.Size([1000])
"""

from ._backend import BACKENDS, keops_available, keops_build_folder, resolve_backend
from .reductions import (
    KERNELS,
    barrier_sum,
    energy_distance,
    kde,
    kernel_logsumexp,
    kernel_sum,
    knn,
    mmd2,
    pairwise_distances,
    softmin_distance,
)

__all__ = [
    "BACKENDS",
    "KERNELS",
    "barrier_sum",
    "energy_distance",
    "kde",
    "keops_available",
    "keops_build_folder",
    "kernel_logsumexp",
    "kernel_sum",
    "knn",
    "mmd2",
    "pairwise_distances",
    "resolve_backend",
    "softmin_distance",
]
