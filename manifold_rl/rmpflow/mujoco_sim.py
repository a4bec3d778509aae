"""Optional MuJoCo stepping path for closed-loop RMPflow rollouts (issue 7, item 5).

:class:`MujocoSim` has the interface of :class:`~manifold_rl.rmpflow.sim.KinematicSim` (``step``,
``clearance``, ``rollout`` returning a :class:`~manifold_rl.rmpflow.sim.Rollout` with the same metrics,
``for_robot``), so a rollout can be validated through rigid-body dynamics with gravity, joint limits and
contacts by swapping one class for the other. ``mujoco`` is imported only when a simulator is built
(``pip install 'manifold-rl[mujoco]'``); :func:`franka_mjcf` writes MJCF text without it.

Models:

* the built-in Franka (:func:`franka_mjcf`): the modified-DH chain of
  :mod:`~manifold_rl.rmpflow.robots.franka` as MJCF bodies — body ``i`` at ``pos = (a_i, −sin α_i d_i,
  cos α_i d_i)``, ``quat = (cos α_i/2, sin α_i/2, 0, 0)`` in its parent with a hinge about its z-axis, since
  ``RotX(α) TransX(a) RotZ(θ) TransZ(d) = Trans(RotX(α)(a, 0, d)) · RotX(α) · RotZ(θ)`` (Craig 2005,
  Eq. 3.6) — with the FCI joint ranges, the collision spheres as sphere geoms on their links (sites of
  the same names mark the centres), a ``panda_tcp`` site 0.1034 m beyond the flange, and the link masses
  and inertias of the ``franka_description`` URDF (identified by Gaz et al., "Dynamic identification of
  the Franka Emika Panda robot with retrieval of feasible parameters using penalty-based optimization",
  IEEE RA-L 2019; the same numbers as the MuJoCo Menagerie ``panda.xml``), the Franka Hand as a 0.73 kg
  body on the flange. :class:`~manifold_rl.rmpflow.obstacles.Sphere` / ``Box`` obstacles become static
  geoms in the worldbody.
* any user MJCF (file path or XML string) with the names of the 1-DoF (hinge / slide) joints that map,
  in order, to ``q``; obstacles passed to the simulator are added to its worldbody (``mujoco.MjSpec``).

Stepping (the choice made here, computed-torque / inverse dynamics): the policy's joint acceleration
``q̈`` is turned into the joint torque

    ``τ = M(q) q̈ + c(q, q̇) − τ_passive(q, q̇)``   (``+ h D q̈`` with joint damping ``D`` under the Euler
    integrator, whose implicit damping solves ``(M + h D) q̈ = M q̈_explicit``)

(``mj_mulM`` with MuJoCo's joint-space inertia ``M`` — armature included —, ``c = qfrc_bias``: Coriolis,
centrifugal and gravity forces, ``τ_passive``: joint springs / dampers; Featherstone, "Rigid Body
Dynamics Algorithms", 2008, ch. 5), applied through ``qfrc_applied`` and integrated by ``mj_step``; it
is recomputed at every MuJoCo sub-step (``substeps``). Without contacts the simulated robot therefore
follows the commanded acceleration exactly, and with MuJoCo's semi-implicit ``Euler`` integrator (the
default for the built-in model) it reproduces :class:`KinematicSim`'s ``q̇ ← q̇ + q̈ dt, q ← q + q̇ dt``
to round-off (with joint damping under ``implicit`` / ``implicitfast`` / ``RK4``: up to ``O(h)``).
There is no feedback on a reference trajectory: the RMP policy is itself a feedback law, evaluated on
MuJoCo's state at every policy step. What differs from KinematicSim is physics: contact forces with the
obstacles push the arm, gravity is real (compensated by ``c``), and the joint ranges are also MuJoCo's
(soft) limit constraints.

Limits are enforced in the command, as KinematicSim does: ``qdd_max`` clips ``q̈``; ``qd_max`` clips it
so that ``|q̇ + q̈ h| ≤ q̇_max`` (KinematicSim's velocity clip); with ``respect_limits`` (default) it is
clipped so that the step ends inside the joint range, ``q + h(q̇ + q̈ h) ∈ [q_min + ε, q_max − ε]``
(``ε = 10⁻⁶``, so that MuJoCo's limit constraint is not switched on by round-off) — KinematicSim's clamp —
and MuJoCo's limit constraints are only a backstop (e.g. when contacts push a joint). MuJoCo actuators
that act on the mapped joints are switched off (zero gain and bias); other actuators (e.g. a gripper)
and unmapped degrees of freedom are left alone — with unmapped DoFs the inertial coupling makes the
tracking approximate.

Collisions: every step reports the contacts between robot geoms (geoms on bodies moved by the mapped
joints) and obstacle geoms from ``data.contact`` (count, penetration depth ``−dist``), and the minimum
signed distance over all such geom pairs from ``mj_geomDistance`` (exact for spheres and boxes,
capped at ``clearance_max``). ``collided`` / ``collision_intensity`` / ``min_clearance`` mean what they
mean for :class:`KinematicSim`; :class:`MujocoRollout` adds the contact count and the penetration depth.

Batch: MuJoCo simulates one environment per ``MjData``; a batch of ``B`` environments is ``B`` ``MjData``
on one ``MjModel`` stepped in a Python loop. This path is for validating policies (physics, contacts),
not for throughput — use :class:`KinematicSim` for large batches. Not differentiable.

Units: metres, radians, seconds, newton-metres.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from .obstacles import Box, Obstacle, Sphere
from .robots.franka import (
    FRANKA_DH_A,
    FRANKA_DH_ALPHA,
    FRANKA_DH_D,
    FRANKA_FLANGE_TO_TCP,
    FRANKA_HAND_YAW,
    FRANKA_Q_MAX,
    FRANKA_Q_MIN,
    FrankaPanda,
)
from .sim import Rollout, _vec

__all__ = ["MujocoSim", "MujocoRollout", "franka_mjcf", "FRANKA_JOINT_NAMES"]

FRANKA_JOINT_NAMES = tuple(f"panda_joint{i}" for i in range(1, 8))

# Link inertials of franka_description (Gaz et al., RA-L 2019), in the DH / URDF link frames:
# (mass [kg], centre of mass [m], full inertia (Ixx, Iyy, Izz, Ixy, Ixz, Iyz) [kg m²]).
_FRANKA_INERTIALS = (
    (4.970684, (0.003875, 0.002081, -0.04762), (0.70337, 0.70661, 0.0091170, -0.00013900, 0.0067720, 0.019169)),
    (0.646926, (-0.003141, -0.02872, 0.003495), (0.0079620, 2.8110e-2, 2.5995e-2, -3.925e-3, 1.0254e-2, 7.04e-4)),
    (3.228604, (2.7518e-2, 3.9252e-2, -6.6502e-2), (3.7242e-2, 3.6155e-2, 1.083e-2, -4.761e-3, -1.1396e-2, -1.2805e-2)),
    (3.587895, (-5.317e-2, 1.04419e-1, 2.7454e-2), (2.5853e-2, 1.9552e-2, 2.8323e-2, 7.796e-3, -1.332e-3, 8.641e-3)),
    (1.225946, (-1.1953e-2, 4.1065e-2, -3.8437e-2), (3.5549e-2, 2.9474e-2, 8.627e-3, -2.117e-3, -4.037e-3, 2.29e-4)),
    (1.666555, (6.0149e-2, -1.4117e-2, -1.0517e-2), (1.964e-3, 4.354e-3, 5.433e-3, 1.09e-4, -1.158e-3, 3.41e-4)),
    (7.35522e-01, (1.0517e-2, -4.252e-3, 6.1597e-2), (1.2516e-2, 1.0027e-2, 4.815e-3, -4.28e-4, -1.196e-3, -7.41e-4)),
)
# Franka Hand: 0.73 kg, centre of mass (−0.01, 0, 0.03) m and principal inertia (0.001, 0.0025, 0.0017) kg m²
# in the hand frame (the flange frame turned by −π/4 about z).
_HAND_MASS, _HAND_COM, _HAND_INERTIA = 0.73, (-0.01, 0.0, 0.03), (0.001, 0.0025, 0.0017)

# margin [rad or m] inside the joint range at which the command clip (respect_limits) stops a joint
_LIMIT_EPS = 1e-6

_INSTALL_HINT = "pip install 'manifold-rl[mujoco]' (or pip install 'mujoco>=3.3,<4')"


def _import_mujoco():
    try:
        import mujoco
    except ImportError as e:  # pragma: no cover - exercised only without the optional extra
        raise ImportError(f"MujocoSim needs the optional dependency mujoco: {_INSTALL_HINT}") from e
    return mujoco


def _f(x: float) -> str:
    return repr(float(x))


def _vec3(v) -> str:
    return " ".join(_f(x) for x in v)


def _obstacle_params(ob: Obstacle, i: int):
    """``(kind, size (3,), pos (3,), R (3, 3) or None)`` of a static 3-D Sphere / Box; ValueError otherwise."""
    if not isinstance(ob, (Sphere, Box)):
        raise ValueError(f"MuJoCo obstacles: obstacle {i} is a {type(ob).__name__}; only Sphere and Box become "
                         f"MuJoCo geoms (point clouds: add geoms to your MJCF)")
    if ob.dim != 3:
        raise ValueError(f"MuJoCo obstacles: obstacle {i} is {ob.dim}-D; MuJoCo needs 3-D obstacles")
    if ob.center.dim() != 1 or (isinstance(ob, Sphere) and ob.radius.dim() != 0) or (
            isinstance(ob, Box) and (ob.half_extents.dim() != 1 or (ob.rotation is not None and ob.rotation.dim() != 2))):
        raise ValueError(f"MuJoCo obstacles: obstacle {i} has per-environment parameters; one MuJoCo model "
                         f"holds one scene (build one simulator per scene)")
    pos = [float(x) for x in ob.center.tolist()]
    if isinstance(ob, Sphere):
        r = float(ob.radius)
        if not r > 0:
            raise ValueError(f"MuJoCo obstacles: sphere {i} needs a positive radius, got {r}")
        return "sphere", [r, 0.0, 0.0], pos, None
    R = None if ob.rotation is None else [[float(x) for x in row] for row in ob.rotation.tolist()]
    return "box", [float(x) for x in ob.half_extents.tolist()], pos, R


def _obstacle_geom_xml(obstacles: Sequence[Obstacle], contype: int, conaffinity: int) -> List[str]:
    out = []
    for i, ob in enumerate(obstacles):
        kind, size, pos, R = _obstacle_params(ob, i)
        sz = _f(size[0]) if kind == "sphere" else _vec3(size)
        rot = "" if R is None else f' xyaxes="{_vec3([R[0][0], R[1][0], R[2][0], R[0][1], R[1][1], R[2][1]])}"'
        out.append(f'    <geom name="obstacle{i}" type="{kind}" size="{sz}" pos="{_vec3(pos)}"{rot} '
                   f'contype="{contype}" conaffinity="{conaffinity}" rgba="0.8 0.2 0.2 0.5"/>')
    return out


def franka_mjcf(robot: Optional[FrankaPanda] = None, obstacles: Sequence[Obstacle] = (), hand: bool = True,
                armature: float = 0.1, timestep: float = 1 / 240, name: str = "panda_dh") -> str:
    """MJCF text of the built-in Franka Panda written from its modified-DH table (no meshes).

    Bodies ``panda_link0 … panda_link8`` (link 8 = flange, welded to link 7), hinge joints
    ``panda_joint1 … 7`` about each body's z-axis with the FCI ranges, link inertials of
    ``franka_description`` (Gaz et al. 2019), the hand (``hand=True``) as a 0.73 kg inertial on the flange;
    geoms / sites ``panda_sphere{k}`` for the robot's collision spheres (in the order of
    ``robot.sphere_radii``; link-0 spheres, if ``robot.include_base``, are static worldbody geoms), sites
    ``panda_flange`` and ``panda_tcp``; obstacles as static geoms ``obstacle{i}``. Robot geoms collide with
    obstacles only (``contype=2, conaffinity=1`` vs ``1, 2``: no self-collision between the overlapping
    spheres). Integrator ``Euler`` with ``timestep`` [s]; gravity ``−9.81`` m/s² along z.

    Args:
        robot: a :class:`FrankaPanda` (None: ``FrankaPanda()``). obstacles: 3-D unbatched Sphere / Box.
        hand: add the hand's mass. armature: rotor inertia added to every joint [kg m²] (0.1, MuJoCo
            Menagerie's Panda). timestep: [s] > 0. name: model name.

    Raises:
        ValueError: unsupported obstacles (point clouds, 2-D, per-environment), negative armature,
        non-positive timestep.
    """
    robot = FrankaPanda() if robot is None else robot
    if not isinstance(robot, FrankaPanda):
        raise ValueError(f"franka_mjcf: expected a FrankaPanda, got {type(robot).__name__}")
    if not armature >= 0:
        raise ValueError(f"franka_mjcf: armature must be ≥ 0, got {armature}")
    if not timestep > 0:
        raise ValueError(f"franka_mjcf: timestep must be positive, got {timestep}")
    links = robot.sphere_links.tolist()
    offs = robot.sphere_offsets.tolist()
    radii = robot.sphere_radii.tolist()
    per_link = {L: [] for L in range(9)}
    for k, (L, o, r) in enumerate(zip(links, offs, radii)):
        per_link[L].append((k, o, r))

    def spheres(L: int, ind: str) -> List[str]:
        lines = []
        for k, o, r in per_link[L]:
            lines.append(f'{ind}<geom name="panda_sphere{k}" type="sphere" size="{_f(r)}" pos="{_vec3(o)}" '
                         f'contype="2" conaffinity="1" rgba="0.9 0.9 0.9 0.4"/>')
            lines.append(f'{ind}<site name="panda_sphere{k}" pos="{_vec3(o)}" size="0.005" group="4"/>')
        return lines

    lines = [f'<mujoco model="{name}">',
             '  <compiler angle="radian" inertiafromgeom="false" autolimits="true"/>',
             f'  <option timestep="{_f(timestep)}" integrator="Euler" gravity="0 0 -9.81"/>',
             '  <worldbody>',
             '    <body name="panda_link0">']
    lines += spheres(0, "      ")
    ind = "      "
    for i in range(8):
        a, d, al = FRANKA_DH_A[i], FRANKA_DH_D[i], FRANKA_DH_ALPHA[i]
        pos = (a, -math.sin(al) * d, math.cos(al) * d)
        quat = (math.cos(al / 2), math.sin(al / 2), 0.0, 0.0)
        lines.append(f'{ind}<body name="panda_link{i + 1}" pos="{_vec3(pos)}" quat="{_vec3(quat)}">')
        ind += "  "
        if i < 7:
            m, com, I = _FRANKA_INERTIALS[i]
            lines.append(f'{ind}<inertial mass="{_f(m)}" pos="{_vec3(com)}" fullinertia="{_vec3(I)}"/>')
            lines.append(f'{ind}<joint name="{FRANKA_JOINT_NAMES[i]}" type="hinge" axis="0 0 1" '
                         f'range="{_f(FRANKA_Q_MIN[i])} {_f(FRANKA_Q_MAX[i])}" armature="{_f(armature)}"/>')
        else:
            if hand:  # hand inertial: its frame is the flange turned by FRANKA_HAND_YAW about z
                c, s = math.cos(FRANKA_HAND_YAW), math.sin(FRANKA_HAND_YAW)
                com = (c * _HAND_COM[0] - s * _HAND_COM[1], s * _HAND_COM[0] + c * _HAND_COM[1], _HAND_COM[2])
                q = (math.cos(FRANKA_HAND_YAW / 2), 0.0, 0.0, math.sin(FRANKA_HAND_YAW / 2))
                lines.append(f'{ind}<inertial mass="{_f(_HAND_MASS)}" pos="{_vec3(com)}" quat="{_vec3(q)}" '
                             f'diaginertia="{_vec3(_HAND_INERTIA)}"/>')
            lines.append(f'{ind}<site name="panda_flange" pos="0 0 0" size="0.005" group="4"/>')
            lines.append(f'{ind}<site name="panda_tcp" pos="{_vec3(FRANKA_FLANGE_TO_TCP)}" size="0.005" group="4"/>')
        lines += spheres(i + 1, ind)
    for _ in range(8):
        ind = ind[:-2]
        lines.append(f"{ind}</body>")
    lines.append('    </body>')
    lines += _obstacle_geom_xml(obstacles, contype=1, conaffinity=2)
    lines += ['  </worldbody>', '</mujoco>']
    return "\n".join(lines)


@dataclass
class MujocoRollout(Rollout):
    """:class:`~manifold_rl.rmpflow.sim.Rollout` plus MuJoCo's contact report.

    Attributes (besides those of ``Rollout``):
        contacts: ``(B,)`` robot–obstacle contacts summed over the executed steps (``data.contact``).
        max_penetration: ``(B,)`` deepest robot–obstacle penetration over the run [m] (0 without contact).
        tau: ``(T, B, n)`` applied joint torques [N m] (force [N] for slide joints), or None when ``record=False``.
    """

    contacts: Optional[Tensor] = None
    max_penetration: Optional[Tensor] = None
    tau: Optional[Tensor] = None


class MujocoSim:
    """MuJoCo stepping of joint-acceleration policies (inverse dynamics), batch = one ``MjData`` per environment.

    Args:
        model: MJCF file path, MJCF XML string, or a compiled ``mujoco.MjModel`` (copied; no extra obstacles then).
        joints: names of the ``n`` hinge / slide joints that map, in order, to ``q``.
        dt: control step [s] > 0 (the model's timestep is set to ``dt / substeps``).
        qd_max: ``(n,)`` speed limits [rad/s] enforced in the command, or None. qdd_max: ``(n,)`` acceleration clip.
        obstacles: Sphere / Box obstacles added to the worldbody as static geoms ``obstacle{i}``.
        obstacle_geoms: names of the geoms that count as obstacles (default: the added obstacles and every
            geom not on a robot body that can collide with a robot geom by ``contype`` / ``conaffinity``).
        goal_fn, goal_tolerance, stop_at_goal, stop_on_collision, policy_every: as :class:`KinematicSim`.
        gravity: keep the model's gravity (False sets it to zero). substeps: MuJoCo steps per control step.
        integrator: None (keep the model's) or a ``mujoco.mjtIntegrator`` name (``"Euler"``, ``"RK4"``,
            ``"implicit"``, ``"implicitfast"``). clearance_max: distances beyond this are reported as it [m].
        respect_limits: clip the command so that no step leaves the joint range (True, KinematicSim's
            semantics); False lets MuJoCo's limit constraint stop the joint — whose reaction, through
            ``M⁻¹``, then also accelerates the other joints of the torque-driven arm.

    Attributes:
        dof, dt, q_min, q_max (``(n,)`` from the joint ranges, ±inf where unlimited), qd_max, qdd_max,
        model (``MjModel``), datas (list of ``MjData``, one per environment, grown on demand),
        qpos_adr / dof_adr (``(n,)`` indices of the mapped joints), robot_geoms / obstacle_geoms (geom ids).

    Raises:
        ValueError: unknown or multi-DoF joint names, duplicate joints, non-positive dt or substeps,
        limits of the wrong shape, unsupported obstacles, obstacles together with a compiled ``MjModel``.
        ImportError: mujoco is not installed.
    """

    def __init__(self, model, joints: Sequence[str], dt: float = 0.01, qd_max=None, qdd_max=None,
                 obstacles: Sequence[Obstacle] = (), obstacle_geoms: Optional[Sequence[str]] = None,
                 goal_fn: Optional[Callable[[Tensor], Tensor]] = None, goal_tolerance: float = 0.01,
                 stop_at_goal: bool = True, stop_on_collision: bool = False, policy_every: int = 1,
                 gravity: bool = True, substeps: int = 1, integrator: Optional[str] = None,
                 clearance_max: float = 10.0, respect_limits: bool = True):
        mj = self._mj = _import_mujoco()
        if not dt > 0:
            raise ValueError(f"MujocoSim: dt must be positive, got {dt}")
        if int(substeps) < 1 or int(policy_every) < 1:
            raise ValueError(f"MujocoSim: substeps and policy_every must be ≥ 1, got {substeps}, {policy_every}")
        if not clearance_max > 0:
            raise ValueError(f"MujocoSim: clearance_max must be positive, got {clearance_max}")
        joints = [str(j) for j in joints]
        if not joints:
            raise ValueError("MujocoSim: joints must name at least one joint")
        if len(set(joints)) != len(joints):
            raise ValueError(f"MujocoSim: duplicate joint names in {joints}")
        obstacles = list(obstacles)
        self.model = self._compile(model, obstacles)
        m = self.model
        self.dof = n = len(joints)
        self.dt, self.substeps = float(dt), int(substeps)
        m.opt.timestep = self.dt / self.substeps
        if integrator is not None:
            try:
                m.opt.integrator = getattr(mj.mjtIntegrator, "mjINT_" + str(integrator).upper())
            except AttributeError:
                raise ValueError(f"MujocoSim: unknown integrator {integrator!r} (Euler, RK4, implicit, implicitfast)") from None
        if not gravity:
            m.opt.gravity[:] = 0.0
        jids = []
        for name in joints:
            jid = mj.mj_name2id(m, mj.mjtObj.mjOBJ_JOINT, name)
            if jid < 0:
                avail = [m.joint(j).name for j in range(m.njnt)]
                raise ValueError(f"MujocoSim: unknown joint {name!r}; the model has {avail}")
            if int(m.jnt_type[jid]) not in (int(mj.mjtJoint.mjJNT_HINGE), int(mj.mjtJoint.mjJNT_SLIDE)):
                raise ValueError(f"MujocoSim: joint {name!r} is not a hinge or slide joint (1 DoF)")
            jids.append(jid)
        self.joint_names = tuple(joints)
        self.joint_ids = np.asarray(jids, dtype=np.int64)
        self.qpos_adr = m.jnt_qposadr[self.joint_ids].astype(np.int64)
        self.dof_adr = m.jnt_dofadr[self.joint_ids].astype(np.int64)
        lim = m.jnt_limited[self.joint_ids].astype(bool)
        rng = m.jnt_range[self.joint_ids]
        self.q_min = torch.tensor(np.where(lim, rng[:, 0], -np.inf), dtype=torch.float64)
        self.q_max = torch.tensor(np.where(lim, rng[:, 1], np.inf), dtype=torch.float64)
        self.qd_max, self.qdd_max = _vec(qd_max, n, "qd_max"), _vec(qdd_max, n, "qdd_max")
        for nm in ("qd_max", "qdd_max"):
            t = getattr(self, nm)
            if t is not None and bool((t < 0).any()):
                raise ValueError(f"MujocoSim: {nm} must be non-negative")
        self._qd_max_np = None if self.qd_max is None else self.qd_max.numpy()
        self.respect_limits = bool(respect_limits)
        has_lim = bool(lim.any()) and self.respect_limits
        # the clip targets the range shrunk by _LIMIT_EPS, so that MuJoCo's own limit constraint (active
        # once the distance to the limit is ≤ 0) is not switched on by round-off at the limit
        self._lim_lo = self.q_min.numpy() + _LIMIT_EPS if has_lim else None
        self._lim_hi = self.q_max.numpy() - _LIMIT_EPS if has_lim else None
        self._qdd_max_np = None if self.qdd_max is None else self.qdd_max.numpy()
        # actuators on the mapped joints are switched off: the joints are torque-driven through qfrc_applied
        for a in range(m.nu):
            if int(m.actuator_trntype[a]) == int(mj.mjtTrn.mjTRN_JOINT) and int(m.actuator_trnid[a, 0]) in set(jids):
                m.actuator_gainprm[a, :] = 0.0
                m.actuator_biasprm[a, :] = 0.0
        self._find_geoms(obstacle_geoms, len(obstacles))
        self.goal_fn, self.goal_tolerance = goal_fn, float(goal_tolerance)
        self.stop_at_goal, self.stop_on_collision = bool(stop_at_goal), bool(stop_on_collision)
        self.policy_every = int(policy_every)
        self.clearance_max = float(clearance_max)
        self.datas: list = []
        self._Ma = np.zeros(m.nv)
        damp = m.dof_damping[self.dof_adr].copy()
        euler_damp = int(m.opt.integrator) == int(mj.mjtIntegrator.mjINT_EULER) and not (
            int(m.opt.disableflags) & int(mj.mjtDisableBit.mjDSBL_EULERDAMP))
        self._euler_damping = damp if euler_damp and bool((damp != 0).any()) else None
        self._acc = np.zeros(m.nv)

    # ------------------------------------------------------------------------------------------
    def _compile(self, model, obstacles):
        mj = self._mj
        if isinstance(model, mj.MjModel):
            if obstacles:
                raise ValueError("MujocoSim: obstacles cannot be added to a compiled MjModel; pass the MJCF instead")
            return copy.copy(model)
        if not isinstance(model, (str, os.PathLike)):
            raise ValueError(f"MujocoSim: model must be an MJCF path, an MJCF string or an MjModel, got {type(model).__name__}")
        text = str(model)
        is_xml = text.lstrip().startswith("<")
        if not is_xml and not os.path.isfile(text):
            raise ValueError(f"MujocoSim: {text!r} is neither an MJCF string nor an existing file")
        if not obstacles:
            return mj.MjModel.from_xml_string(text) if is_xml else mj.MjModel.from_xml_path(text)
        params = [_obstacle_params(ob, i) for i, ob in enumerate(obstacles)]
        spec = mj.MjSpec.from_string(text) if is_xml else mj.MjSpec.from_file(text)
        for i, (kind, size, pos, R) in enumerate(params):
            g = spec.worldbody.add_geom()
            g.name = f"obstacle{i}"
            g.type = mj.mjtGeom.mjGEOM_SPHERE if kind == "sphere" else mj.mjtGeom.mjGEOM_BOX
            g.size = size
            g.pos = pos
            if R is not None:
                quat = np.zeros(4)
                mj.mju_mat2Quat(quat, np.asarray(R, dtype=np.float64).reshape(9))
                g.quat = quat
            g.rgba = [0.8, 0.2, 0.2, 0.5]
        return spec.compile()

    def _find_geoms(self, obstacle_geoms, n_added: int) -> None:
        mj, m = self._mj, self.model
        jbodies = set(int(b) for b in m.jnt_bodyid[self.joint_ids])
        robot_body = np.zeros(m.nbody, dtype=bool)
        for b in range(1, m.nbody):
            p = b
            while p > 0:
                if p in jbodies:
                    robot_body[b] = True
                    break
                p = int(m.body_parentid[p])
        gb = m.geom_bodyid
        self.robot_geoms = np.nonzero(robot_body[gb])[0].astype(np.int64)
        if obstacle_geoms is not None:
            ids = []
            for name in obstacle_geoms:
                gid = mj.mj_name2id(m, mj.mjtObj.mjOBJ_GEOM, str(name))
                if gid < 0:
                    raise ValueError(f"MujocoSim: unknown obstacle geom {name!r}")
                if robot_body[gb[gid]]:
                    raise ValueError(f"MujocoSim: geom {name!r} moves with the robot; it cannot be an obstacle")
                ids.append(gid)
            ids += [mj.mj_name2id(m, mj.mjtObj.mjOBJ_GEOM, f"obstacle{i}") for i in range(n_added)
                    if f"obstacle{i}" not in obstacle_geoms]
            self.obstacle_geoms = np.asarray(sorted(set(ids)), dtype=np.int64)
        else:
            self.obstacle_geoms = np.nonzero(~robot_body[gb])[0].astype(np.int64)
        # pairs that MuJoCo may put in contact: contype / conaffinity compatible, not on the same or
        # parent-child weld bodies (MuJoCo's filterparent, which does not apply to the world body)
        ct, ca, weld, par = m.geom_contype, m.geom_conaffinity, m.body_weldid, m.body_parentid
        pairs = []
        for g1 in self.robot_geoms:
            for g2 in self.obstacle_geoms:
                if obstacle_geoms is None and not ((ct[g1] & ca[g2]) or (ct[g2] & ca[g1])):
                    continue
                w1, w2 = int(weld[gb[g1]]), int(weld[gb[g2]])
                if w1 == w2 or (w1 and w2 and (int(weld[par[w1]]) == w2 or int(weld[par[w2]]) == w1)):
                    continue
                pairs.append((int(g1), int(g2)))
        self._pairs = pairs
        self._is_robot = np.zeros(m.ngeom, dtype=bool)
        self._is_robot[self.robot_geoms] = True
        self._is_obst = np.zeros(m.ngeom, dtype=bool)
        self._is_obst[self.obstacle_geoms] = True

    @classmethod
    def for_robot(cls, robot, obstacles: Sequence[Obstacle] = (), armature: float = 0.1, hand: bool = True,
                  **kwargs) -> "MujocoSim":
        """Simulator of the built-in Franka (:func:`franka_mjcf`) with its speed limits; kwargs as the constructor.

        Raises:
            ValueError: ``robot`` is not a :class:`FrankaPanda` (for other robots pass an MJCF and joint names).
        """
        if not isinstance(robot, FrankaPanda):
            raise ValueError(f"MujocoSim.for_robot: only the built-in FrankaPanda has a generated MJCF, got "
                             f"{type(robot).__name__}; pass MujocoSim(mjcf, joints=[...]) for other robots")
        dt = kwargs.get("dt", 0.01)
        xml = franka_mjcf(robot, obstacles, hand=hand, armature=armature, timestep=dt)
        kwargs.setdefault("qd_max", robot.qd_max)
        names = [f"obstacle{i}" for i in range(len(obstacles))]
        return cls(xml, FRANKA_JOINT_NAMES, obstacle_geoms=names, **kwargs)

    # ------------------------------------------------------------------------------------------
    def _data(self, B: int) -> list:
        mj = self._mj
        while len(self.datas) < B:
            d = mj.MjData(self.model)
            mj.mj_forward(self.model, d)
            self.datas.append(d)
        return self.datas[:B]

    def _check(self, t, what: str) -> None:
        if not isinstance(t, Tensor) or t.dim() != 2 or t.shape[1] != self.dof or not t.is_floating_point():
            raise ValueError(f"MujocoSim: {what} must be a floating (B, {self.dof}) tensor, got "
                             f"{tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__}")

    def _set(self, d, q: np.ndarray, qd: np.ndarray) -> None:
        d.qpos[self.qpos_adr] = q
        d.qvel[self.dof_adr] = qd

    def _step_one(self, d, qdd: np.ndarray) -> np.ndarray:
        """Advance one environment by ``dt`` under the inverse-dynamics torque for ``qdd``; returns the mean torque."""
        mj, m = self._mj, self.model
        h = m.opt.timestep
        a0 = qdd if self._qdd_max_np is None else np.clip(qdd, -self._qdd_max_np, self._qdd_max_np)
        tau_sum = np.zeros(self.dof)
        for _ in range(self.substeps):
            mj.mj_fwdPosition(m, d)
            mj.mj_fwdVelocity(m, d)
            a = a0
            v = d.qvel[self.dof_adr]
            if self._qd_max_np is not None:  # never command a speed beyond qd_max (KinematicSim's velocity clip)
                a = np.clip(a, (-self._qd_max_np - v) / h, (self._qd_max_np - v) / h)
            if self._lim_lo is not None:  # nor a step beyond the joint range (KinematicSim's position limit)
                p = d.qpos[self.qpos_adr]
                a = np.minimum(np.maximum(a, ((self._lim_lo - p) / h - v) / h), ((self._lim_hi - p) / h - v) / h)
            self._acc[:] = 0.0
            self._acc[self.dof_adr] = a
            mj.mj_mulM(m, d, self._Ma, self._acc)
            tau = self._Ma[self.dof_adr] + d.qfrc_bias[self.dof_adr] - d.qfrc_passive[self.dof_adr]
            if self._euler_damping is not None:  # Euler's implicit damping solves (M + h D) q̈ = M q̈_explicit
                tau = tau + h * self._euler_damping * a
            d.qfrc_applied[:] = 0.0
            d.qfrc_applied[self.dof_adr] = tau
            mj.mj_step(m, d)
            tau_sum += tau
        mj.mj_fwdPosition(m, d)  # geom poses and contacts at the new state
        return tau_sum / self.substeps

    def _contact_report(self, d):
        """``(count, max penetration ≥ 0)`` of robot–obstacle contacts in ``d`` (after ``mj_fwdPosition``)."""
        nc = int(d.ncon)
        if nc == 0 or len(self._pairs) == 0:
            return 0, 0.0
        g = d.contact.geom[:nc]
        sel = (self._is_robot[g[:, 0]] & self._is_obst[g[:, 1]]) | (self._is_robot[g[:, 1]] & self._is_obst[g[:, 0]])
        if not sel.any():
            return 0, 0.0
        dist = d.contact.dist[:nc][sel]
        return int(sel.sum()), float(max(0.0, -dist.min()))

    def _clearance_one(self, d) -> float:
        if not self._pairs:
            return math.inf
        mj, m, cmax = self._mj, self.model, self.clearance_max
        return min(mj.mj_geomDistance(m, d, g1, g2, cmax, None) for g1, g2 in self._pairs)

    # ------------------------------------------------------------------------------------------
    def step(self, q: Tensor, qd: Tensor, qdd: Tensor):
        """One control step of ``dt`` for each environment: ``(B, n)`` ×3 → ``(q, qd)`` ``(B, n)`` (inputs' dtype / device).

        The mapped joints are set to ``(q, qd)`` (other DoFs keep their state in ``self.datas[b]``).
        Raises ValueError for shapes other than ``(B, n)``.
        """
        for t, w in ((q, "q"), (qd, "qd"), (qdd, "qdd")):
            self._check(t, w)
        if not (q.shape == qd.shape == qdd.shape):
            raise ValueError(f"MujocoSim.step: shapes differ: {tuple(q.shape)}, {tuple(qd.shape)}, {tuple(qdd.shape)}")
        qn, qdn, a = (t.detach().to("cpu", torch.float64).numpy() for t in (q, qd, qdd))
        outq, outqd = np.empty_like(qn), np.empty_like(qdn)
        for b, d in enumerate(self._data(q.shape[0])):
            self._set(d, qn[b], qdn[b])
            self._step_one(d, a[b])
            outq[b], outqd[b] = d.qpos[self.qpos_adr], d.qvel[self.dof_adr]
        return torch.as_tensor(outq).to(q), torch.as_tensor(outqd).to(q)

    def _kinematics(self, q: Tensor) -> list:
        self._check(q, "q")
        qn = q.detach().to("cpu", torch.float64).numpy()
        ds = self._data(q.shape[0])
        for b, d in enumerate(ds):
            d.qpos[self.qpos_adr] = qn[b]
            self._mj.mj_fwdPosition(self.model, d)
        return ds

    def clearance(self, q: Tensor) -> Tensor:
        """``(B,)`` minimum signed distance between robot and obstacle geoms at ``q`` [m] (``inf`` without obstacles)."""
        ds = self._kinematics(q)
        return torch.tensor([self._clearance_one(d) for d in ds], dtype=q.dtype, device=q.device)

    def contacts(self, q: Tensor):
        """Robot–obstacle contacts at ``q``: ``(count (B,) long, max penetration (B,) [m])``."""
        ds = self._kinematics(q)
        rep = [self._contact_report(d) for d in ds]
        return (torch.tensor([r[0] for r in rep], dtype=torch.long, device=q.device),
                torch.tensor([r[1] for r in rep], dtype=q.dtype, device=q.device))

    def rollout(self, policy: Callable[[Tensor, Tensor], Tensor], q0: Tensor, qd0: Optional[Tensor] = None,
                steps: int = 1000, record: bool = True, differentiable: bool = False,
                require_collision_free: bool = True) -> MujocoRollout:
        """Run ``policy(q, qd) → q̈ (B, n)`` from ``(q0, qd0)`` for ``steps`` control steps (as :meth:`KinematicSim.rollout`).

        Each environment's MuJoCo state is reset to ``qpos0`` with the mapped joints at ``(q0, qd0)``;
        finished environments (goal reached with ``stop_at_goal``, or collided with ``stop_on_collision``)
        are no longer stepped and report ``q̇ = 0``. Returns a :class:`MujocoRollout`.

        Raises:
            ValueError: bad shapes, a policy output of the wrong shape, steps < 1, ``differentiable=True``
            (MuJoCo stepping has no autograd graph).
        """
        if differentiable:
            raise ValueError("MujocoSim.rollout: MuJoCo stepping is not differentiable; use KinematicSim")
        self._check(q0, "q0")
        qd0 = torch.zeros_like(q0) if qd0 is None else qd0
        self._check(qd0, "qd0")
        if qd0.shape != q0.shape:
            raise ValueError(f"rollout: qd0 shape {tuple(qd0.shape)} differs from q0 {tuple(q0.shape)}")
        if int(steps) < 1:
            raise ValueError(f"rollout: steps must be ≥ 1, got {steps}")
        mj, m = self._mj, self.model
        B, n = q0.shape
        dev, dt_ = q0.device, q0.dtype
        ds = self._data(B)
        qn = q0.detach().to("cpu", torch.float64).numpy().copy()
        qdn = qd0.detach().to("cpu", torch.float64).numpy().copy()
        for b, d in enumerate(ds):
            mj.mj_resetData(m, d)
            self._set(d, qn[b], qdn[b])
            mj.mj_fwdPosition(m, d)

        def T(x):
            return torch.as_tensor(np.array(x)).to(device=dev, dtype=dt_)

        done = np.zeros(B, dtype=bool)
        reached = np.zeros(B, dtype=bool)
        t_goal = np.full(B, np.nan)
        clear = np.array([self._clearance_one(d) for d in ds])
        min_clear = clear.copy()
        rep = [self._contact_report(d) for d in ds]
        n_con = np.array([r[0] for r in rep], dtype=np.int64)
        max_pen = np.array([r[1] for r in rep])
        collided = (clear < 0) | (n_con > 0)
        n_coll = np.zeros(B)
        n_active = np.zeros(B)
        plen = np.zeros(B)
        if self.goal_fn is not None:
            with torch.no_grad():
                hit = (self.goal_fn(T(qn)) <= self.goal_tolerance).cpu().numpy()
            reached |= hit
            t_goal[hit] = 0.0
            if self.stop_at_goal:
                done |= hit
        if self.stop_on_collision:
            done |= collided
        traj_q, traj_qd, traj_tau = ([qn.copy()], [qdn.copy()], []) if record else (None, None, None)
        qdd = None
        k = 0
        for k in range(1, int(steps) + 1):
            if (k - 1) % self.policy_every == 0:
                qdd = policy(T(qn), T(qdn))
                if not isinstance(qdd, Tensor) or tuple(qdd.shape) != (B, n):
                    raise ValueError(f"rollout: policy must return a ({B}, {n}) tensor, got "
                                     f"{tuple(qdd.shape) if isinstance(qdd, Tensor) else type(qdd).__name__}")
                a = qdd.detach().to("cpu", torch.float64).numpy()
            active = ~done
            tau = np.zeros((B, n))
            for b in np.nonzero(active)[0]:
                d = ds[b]
                tau[b] = self._step_one(d, a[b])
                qnew, qdnew = d.qpos[self.qpos_adr].copy(), d.qvel[self.dof_adr].copy()
                plen[b] += float(np.linalg.norm(qnew - qn[b]))
                qn[b], qdn[b] = qnew, qdnew
                c = self._clearance_one(d)
                cnt, pen = self._contact_report(d)
                min_clear[b] = min(min_clear[b], c)
                n_con[b] += cnt
                max_pen[b] = max(max_pen[b], pen)
                hit_c = c < 0 or cnt > 0
                collided[b] |= hit_c
                n_coll[b] += float(hit_c)
                n_active[b] += 1.0
            qdn[done] = 0.0
            if self.goal_fn is not None:
                with torch.no_grad():
                    hit = (self.goal_fn(T(qn)) <= self.goal_tolerance).cpu().numpy() & ~reached & active
                reached |= hit
                t_goal[hit] = k * self.dt
                if self.stop_at_goal:
                    done |= hit
                    qdn[hit] = 0.0
            if self.stop_on_collision:
                newly = collided & ~done
                done |= collided
                qdn[newly] = 0.0
            if record:
                traj_q.append(qn.copy())
                traj_qd.append(qdn.copy())
                traj_tau.append(tau)
            if done.all():
                break
        with torch.no_grad():
            gdist = self.goal_fn(T(qn)) if self.goal_fn is not None else torch.full((B,), float("nan"), dtype=dt_, device=dev)
        reached_t = torch.as_tensor(reached, device=dev)
        collided_t = torch.as_tensor(collided, device=dev)
        return MujocoRollout(
            q=T(np.stack(traj_q)) if record else None,
            qd=T(np.stack(traj_qd)) if record else None,
            q_final=T(qn), qd_final=T(qdn),
            success=reached_t & ~collided_t if require_collision_free else reached_t.clone(),
            reached=reached_t, time_to_goal=T(t_goal), collided=collided_t,
            collision_intensity=T(n_coll / np.maximum(n_active, 1)), min_clearance=T(min_clear),
            path_length=T(plen), goal_distance=gdist, steps=k,
            contacts=torch.as_tensor(n_con, device=dev), max_penetration=T(max_pen),
            tau=T(np.stack(traj_tau)) if record else None,
        )
