"""kernels — heavy geometry on manifolds (pairwise geodesic kernels, MMD, k-NN).

This release ships the dense torch reference of the MMD used by the flow-matching
evaluation (:func:`kernels.mmd2`). The KeOps and chunked backends arrive with the
kernels issue; the API below stays.
"""

from .mmd import gaussian_kernel_matrix, mmd2

__all__ = ["gaussian_kernel_matrix", "mmd2"]
