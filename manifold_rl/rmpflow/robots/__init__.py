"""Robots for RMPflow: task maps from joint space to control points, end-effector positions and orientations.

* :mod:`.franka` — built-in Franka Emika Panda (modified-DH kinematics, collision spheres).
* :mod:`.planar` — planar n-link arm.
* :mod:`.point` — 2-D point robot.
* :mod:`.urdf` — any URDF through ``pytorch_kinematics`` (imported lazily).
"""

from .franka import (
    FRANKA_COLLISION_SPHERES,
    FrankaPanda,
    LinkOrientationMap,
    LinkPointMap,
    franka_fk,
    franka_urdf,
    point_kinematics,
)
from .planar import PlanarArm, PlanarPointMap
from .point import PointRobot


def __getattr__(name):
    # pytorch_kinematics is imported only when the URDF robot is used
    if name in ("URDFRobot",):
        from . import urdf

        return getattr(urdf, name)
    raise AttributeError(name)


__all__ = [
    "FRANKA_COLLISION_SPHERES",
    "FrankaPanda",
    "LinkOrientationMap",
    "LinkPointMap",
    "PlanarArm",
    "PlanarPointMap",
    "PointRobot",
    "URDFRobot",
    "franka_fk",
    "franka_urdf",
    "point_kinematics",
]
