"""manifolds.nn — neural-network layers on manifolds.

Riemannian batch normalization (:mod:`manifolds.nn.batchnorm`): the generic
:class:`RiemannianBatchNorm` over a pluggable :class:`BNGeometry`, and the algorithms built on it.
Submodules written by other parts of the library (SPDNet layers, GyroBN, GBWBN) are exported here
when present.
"""

from .batchnorm import BNGeometry, EuclideanGeometry, RiemannianBatchNorm

__all__ = ["BNGeometry", "EuclideanGeometry", "RiemannianBatchNorm"]
