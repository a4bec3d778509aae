"""manifolds — the Riemannian core of manifold-rl.

Manifolds (all subclasses of :class:`geoopt.Manifold`): Euclidean, Sphere, Torus, Product,
SO3 / SE3, SPD with its metric families, the κ-stereographic model (PoincareBall,
SphereProjection), Hyperboloid, Stiefel, Grassmann; the gyrogroup interface; Fréchet
statistics; Riemannian optimizers and Riemannian flow matching. See DESIGN.md for the
conventions: batch dimensions first, the manifold's own dimensions last, ambient tangent
vectors, no global state changes.
"""

from .base import Manifold
from .euclidean import Euclidean
from .product import Product
from .sphere import Sphere
from .torus import Torus
from .hyperbolic import Hyperboloid, PoincareBall, SphereProjection, Stereographic
from .stiefel import Stiefel
from .grassmann import Grassmann
from .gyro import AIMGyro, GyroGroup, LCMGyro, LEMGyro
from .lie import SE3, SO3
from .spd import (
    SPD,
    AffineInvariantMetric,
    BuresWassersteinMetric,
    EuclideanMetric,
    GeneralizedBuresWassersteinMetric,
    LogCholeskyMetric,
    LogEuclideanMetric,
    SPDMetric,
)
from .optim import RiemannianAdam, RiemannianSGD
from .stats import frechet_mean, frechet_variance
from .diffusion import BrownianSDE, dsm_loss, heat_kernel_log_prob, heat_kernel_score, sample_heat_kernel

__all__ = [
    "Manifold",
    "Euclidean",
    "Sphere",
    "Torus",
    "PoincareBall",
    "Stereographic",
    "SphereProjection",
    "Stiefel",
    "Grassmann",
    "GyroGroup",
    "AIMGyro",
    "LEMGyro",
    "LCMGyro",
    "Hyperboloid",
    "Product",
    "SO3",
    "SE3",
    "SPD",
    "SPDMetric",
    "AffineInvariantMetric",
    "LogEuclideanMetric",
    "LogCholeskyMetric",
    "EuclideanMetric",
    "BuresWassersteinMetric",
    "GeneralizedBuresWassersteinMetric",
    "RiemannianAdam",
    "RiemannianSGD",
    "frechet_mean",
    "frechet_variance",
    "BrownianSDE",
    "dsm_loss",
    "heat_kernel_log_prob",
    "heat_kernel_score",
    "sample_heat_kernel",
]
