"""2-D point robot (the RMPflow paper's example, Cheng et al. 2018 Fig. 3): configuration = position in the plane."""

from __future__ import annotations


import torch
from torch import Tensor

from ..core import IdentityMap

__all__ = ["PointRobot"]


class PointRobot:
    """A point robot in ``ℝ^dim`` (default the plane): ``q = x``, the task map to the plane is the identity.

    Args:
        dim: dimension (2). radius: collision radius [m] (0: a point). qd_max: optional speed limit per axis.

    Raises:
        ValueError: negative radius or dim < 1.
    """

    def __init__(self, dim: int = 2, radius: float = 0.0, q_min=None, q_max=None, qd_max=None):
        if int(dim) < 1:
            raise ValueError(f"PointRobot: dim must be ≥ 1, got {dim}")
        if radius < 0:
            raise ValueError(f"PointRobot: radius must be non-negative, got {radius}")
        self.dof = int(dim)
        inf = torch.full((self.dof,), float("inf"), dtype=torch.float64)
        self.q_min = -inf if q_min is None else torch.as_tensor(q_min, dtype=torch.float64)
        self.q_max = inf if q_max is None else torch.as_tensor(q_max, dtype=torch.float64)
        self.qd_max = inf if qd_max is None else torch.as_tensor(qd_max, dtype=torch.float64)
        self.sphere_radii = torch.tensor([float(radius)], dtype=torch.float64)

    def control_point_map(self) -> IdentityMap:
        """The identity map ``q ↦ q`` (``(B, dim)``)."""
        m = IdentityMap(self.dof)
        m.radii = self.sphere_radii
        return m

    end_effector_map = control_point_map

    def sphere_centers(self, q: Tensor) -> Tensor:
        """``(B, 1, dim)``: the robot's position."""
        return q.unsqueeze(1)

    def limits(self, like: Tensor):
        """``{"q_min", "q_max", "qd_max"}`` as ``(dim,)`` tensors with ``like``'s dtype and device."""
        return {k: getattr(self, k).to(like) for k in ("q_min", "q_max", "qd_max")}
