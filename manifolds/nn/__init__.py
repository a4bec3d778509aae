"""manifolds.nn — neural-network layers on manifolds.

Riemannian batch normalization (:mod:`manifolds.nn.batchnorm`): the generic
:class:`RiemannianBatchNorm` over a pluggable :class:`BNGeometry`, and the algorithms built on it.
Submodules written by other parts of the library (SPDNet layers, GyroBN, GBWBN) are exported here
when present.
"""

from .batchnorm import (
    BNGeometry,
    EuclideanGeometry,
    LieBN,
    RiemannianBatchNorm,
    SO3Geometry,
    SPDAIMGeometry,
    SPDLCMGeometry,
    SPDLEMGeometry,
    SPDNetBN,
)
from .spdnet import BiMap, ExpEig, LogEig, ReEig, SPDNet, sym_unvec, sym_vec
from .gyrobn import GyroBN, GyroGeometry
from .gbwbn import GBWBN, GBWGeometry, bw_isometric_transport

__all__ = [
    "BiMap",
    "ReEig",
    "LogEig",
    "ExpEig",
    "SPDNet",
    "sym_vec",
    "sym_unvec",
    "BNGeometry",
    "EuclideanGeometry",
    "SPDAIMGeometry",
    "SPDLEMGeometry",
    "SPDLCMGeometry",
    "SO3Geometry",
    "RiemannianBatchNorm",
    "LieBN",
    "SPDNetBN",
    "GyroGeometry",
    "GyroBN",
    "GBWGeometry",
    "GBWBN",
    "bw_isometric_transport",
]
