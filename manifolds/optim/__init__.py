"""Riemannian optimizers: :class:`RiemannianAdam` and :class:`RiemannianSGD`.

Both are ``torch.optim.Optimizer`` subclasses that take plain tensors (flat Euclidean
space, where they reduce to torch's Adam/AdamW/SGD) and ``geoopt.ManifoldParameter`` s on
any manifold of this library or of geoopt. Parameters that share a manifold are updated
together in one batched call. See Bécigneul & Ganea, "Riemannian Adaptive Optimization
Methods", ICLR 2019.
"""

from .radam import RiemannianAdam
from .rsgd import RiemannianSGD

__all__ = ["RiemannianAdam", "RiemannianSGD"]
