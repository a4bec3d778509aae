"""RMPflow: batched, differentiable Riemannian Motion Policies (Cheng et al., WAFR 2018 / T-ASE 2021).

Modules: :mod:`.core` (RMP algebra, task maps, tree, :class:`RMPFlow`), :mod:`.gds` (geometric dynamical
systems with curvature terms and a Lyapunov monitor), :mod:`.leaves` (paper and Lula/RMP2 leaf library).
:class:`MujocoSim` (:mod:`.mujoco_sim`, optional ``mujoco`` extra) is imported lazily on first access.
"""

from .core import (
    AffineMap,
    ComposedMap,
    FlowState,
    FunctionMap,
    IdentityMap,
    JointTaskMap,
    Leaf,
    RMPFlow,
    RMPNode,
    RMPRoot,
    SliceMap,
    TaskMap,
    TaskMapOutput,
    canonical_to_natural,
    check_state,
    natural_to_canonical,
)
from .gds import GDSLeaf, LyapunovOutput, curvature_terms, lyapunov, pullback_metrics
from .leaves import (
    AxisTargetParams,
    AxisTargetRMP,
    CollisionAvoidance,
    CollisionAvoidanceParams,
    CollisionParams,
    CollisionRMP,
    CSpaceTargetParams,
    CSpaceTargetRMP,
    Damper,
    DamperParams,
    DampingParams,
    DampingRMP,
    GoalAttractor,
    GoalAttractorParams,
    JointLimitBarrier,
    JointLimitBarrierParams,
    JointLimitParams,
    JointLimitRMP,
    JointVelocityCapParams,
    JointVelocityCapRMP,
    LearnedLeaf,
    OrientationTargetRMP,
    SphereDistanceMap,
    TargetParams,
    TargetRMP,
    joint_limit_map,
)
from .robots import FrankaPanda, PlanarArm, PointRobot, LinkPointMap, LinkOrientationMap, franka_fk, franka_urdf
from .obstacles import Sphere, Box, PointCloud, ObstacleDistanceMap, sphere_distances, min_clearance
from .sim import KinematicSim, Rollout

__all__ = [
    "AffineMap",
    "ComposedMap",
    "FlowState",
    "FunctionMap",
    "IdentityMap",
    "Leaf",
    "RMPFlow",
    "RMPNode",
    "RMPRoot",
    "SliceMap",
    "TaskMap",
    "TaskMapOutput",
    "JointTaskMap",
    "canonical_to_natural",
    "check_state",
    "natural_to_canonical",
    "GDSLeaf", "LyapunovOutput", "curvature_terms", "lyapunov", "pullback_metrics",
    "AxisTargetParams", "AxisTargetRMP", "CollisionAvoidance", "CollisionAvoidanceParams", "CollisionParams",
    "CollisionRMP", "CSpaceTargetParams", "CSpaceTargetRMP", "Damper", "DamperParams", "DampingParams",
    "DampingRMP", "GoalAttractor", "GoalAttractorParams", "JointLimitBarrier", "JointLimitBarrierParams",
    "JointLimitParams", "JointLimitRMP", "JointVelocityCapParams", "JointVelocityCapRMP", "LearnedLeaf",
    "OrientationTargetRMP", "SphereDistanceMap", "TargetParams", "TargetRMP", "joint_limit_map",
    "FrankaPanda", "PlanarArm", "PointRobot", "LinkPointMap", "LinkOrientationMap", "franka_fk", "franka_urdf",
    "Sphere", "Box", "PointCloud", "ObstacleDistanceMap", "sphere_distances", "min_clearance",
    "KinematicSim", "Rollout",
    "MujocoSim", "MujocoRollout", "franka_mjcf",
]

_MUJOCO_NAMES = ("MujocoSim", "MujocoRollout", "franka_mjcf", "FRANKA_JOINT_NAMES")


def __getattr__(name):
    # the optional MuJoCo path (.mujoco_sim) is imported on first use only
    if name in _MUJOCO_NAMES:
        from . import mujoco_sim

        return getattr(mujoco_sim, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
