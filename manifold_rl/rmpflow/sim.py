"""Batched kinematic double-integrator simulator for closed-loop RMPflow rollouts.

RMP policies output joint accelerations for a feedback-linearised robot; Lula (Isaac Sim) and RMP2's
pybullet environments both integrate ``q̈`` kinematically and send the result as position / velocity
targets (ref sheet §6). This module does the same, batched over ``B`` environments in torch:

    ``q̇ ← clip(q̇ + q̈ dt, −q̇_max, q̇_max)``,   ``q ← q + q̇ dt``   (semi-implicit Euler)

then joint position limits: ``q ← clamp(q, q_min, q_max)`` and the velocity component pointing further
into an active limit is zeroed. After each step the robot's collision spheres are checked against the
obstacles (per-environment collision flag, minimum clearance, collision intensity = fraction of steps in
penetration as in RMPflow App. E), and environments whose goal distance falls below the tolerance stop
(their state is frozen, ``q̇ = 0``) and record their time to goal. Everything is deterministic.

The kinematic path is what the reference implementations evaluate. For validation through rigid-body
dynamics (gravity, contacts, MuJoCo joint limits) :class:`~manifold_rl.rmpflow.mujoco_sim.MujocoSim` has
the same interface (optional ``mujoco`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from .obstacles import Obstacle, min_clearance

__all__ = ["KinematicSim", "Rollout"]


@dataclass
class Rollout:
    """Result of :meth:`KinematicSim.rollout` (``B`` environments, ``T`` steps of ``dt`` seconds).

    Attributes:
        q, qd: ``(T + 1, B, n)`` trajectories, or None when ``record=False``.
        q_final, qd_final: ``(B, n)``.
        success: ``(B,)`` bool — reached the goal tolerance (and, if ``require_collision_free``, never collided).
        reached: ``(B,)`` bool — reached the goal tolerance.
        time_to_goal: ``(B,)`` seconds (``nan`` where not reached).
        collided: ``(B,)`` bool — some step had a negative clearance.
        collision_intensity: ``(B,)`` fraction of the executed steps in penetration.
        min_clearance: ``(B,)`` minimum clearance over the run [m] (``inf`` without obstacles).
        path_length: ``(B,)`` configuration-space path length ``Σ ‖Δq‖`` [rad].
        goal_distance: ``(B,)`` final goal distance (``nan`` without a goal function).
        steps: number of steps executed (≤ the requested number when every environment stopped early).
    """

    q: Optional[Tensor]
    qd: Optional[Tensor]
    q_final: Tensor
    qd_final: Tensor
    success: Tensor
    reached: Tensor
    time_to_goal: Tensor
    collided: Tensor
    collision_intensity: Tensor
    min_clearance: Tensor
    path_length: Tensor
    goal_distance: Tensor
    steps: int


def _vec(v, n: int, name: str) -> Optional[Tensor]:
    if v is None:
        return None
    t = torch.as_tensor(v, dtype=torch.float64)
    if t.dim() == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"KinematicSim: {name} must be a scalar or ({n},), got {tuple(t.shape)}")
    return t


class KinematicSim:
    """Batched double integrator with joint limits and sphere-based collision checking.

    Args:
        dof: n.
        dt: step [s] (RMP2: 1/240 s with the policy every 3 steps; Lula: ≤ 0.00334 s). Must be > 0.
        q_min, q_max: ``(n,)`` position limits [rad] or None. qd_max: ``(n,)`` speed limits [rad/s] or None.
        qdd_max: optional ``(n,)`` acceleration clip [rad/s²].
        obstacles: sequence of :class:`~manifold_rl.rmpflow.obstacles.Obstacle`.
        sphere_fn: ``q (B, n) → (B, K, D)`` robot collision-sphere centres (e.g. ``robot.sphere_centers``).
        radii: ``(K,)`` sphere radii ≥ 0 [m].
        goal_fn: optional ``q (B, n) → (B,)`` goal distance (e.g. end-effector to target) [m].
        goal_tolerance: stop an environment once ``goal_fn(q) ≤ tol`` (default 0.01 m).
        stop_at_goal: freeze environments at the goal. stop_on_collision: freeze environments on first
            collision (RMP2 terminates episodes on collision).
        policy_every: hold the policy's ``q̈`` for this many steps (RMP2: action repeat 3).

    Raises:
        ValueError: non-positive dt, limits of the wrong shape, ``q_min > q_max``, negative radii,
        obstacles without ``sphere_fn``.
    """

    def __init__(self, dof: int, dt: float = 0.01, q_min=None, q_max=None, qd_max=None, qdd_max=None,
                 obstacles: Sequence[Obstacle] = (), sphere_fn: Optional[Callable[[Tensor], Tensor]] = None,
                 radii=None, goal_fn: Optional[Callable[[Tensor], Tensor]] = None, goal_tolerance: float = 0.01,
                 stop_at_goal: bool = True, stop_on_collision: bool = False, policy_every: int = 1):
        if not dt > 0:
            raise ValueError(f"KinematicSim: dt must be positive, got {dt}")
        if int(dof) < 1:
            raise ValueError(f"KinematicSim: dof must be ≥ 1, got {dof}")
        if int(policy_every) < 1:
            raise ValueError(f"KinematicSim: policy_every must be ≥ 1, got {policy_every}")
        n = self.dof = int(dof)
        self.dt = float(dt)
        self.q_min, self.q_max = _vec(q_min, n, "q_min"), _vec(q_max, n, "q_max")
        self.qd_max, self.qdd_max = _vec(qd_max, n, "qd_max"), _vec(qdd_max, n, "qdd_max")
        if self.q_min is not None and self.q_max is not None and bool((self.q_min > self.q_max).any()):
            raise ValueError("KinematicSim: q_min must be ≤ q_max")
        for name in ("qd_max", "qdd_max"):
            t = getattr(self, name)
            if t is not None and bool((t < 0).any()):
                raise ValueError(f"KinematicSim: {name} must be non-negative")
        self.obstacles = list(obstacles)
        if self.obstacles and sphere_fn is None:
            raise ValueError("KinematicSim: obstacles need sphere_fn (robot collision-sphere centres)")
        self.sphere_fn = sphere_fn
        if radii is not None:
            radii = torch.as_tensor(radii, dtype=torch.float64).reshape(-1)
            if bool((radii < 0).any()):
                raise ValueError("KinematicSim: radii must be non-negative")
        self.radii = radii
        self.goal_fn, self.goal_tolerance = goal_fn, float(goal_tolerance)
        self.stop_at_goal, self.stop_on_collision = bool(stop_at_goal), bool(stop_on_collision)
        self.policy_every = int(policy_every)

    @classmethod
    def for_robot(cls, robot, obstacles: Sequence[Obstacle] = (), **kwargs) -> "KinematicSim":
        """Simulator with ``robot``'s limits, collision spheres (``robot.sphere_centers``, ``robot.sphere_radii``)."""
        return cls(robot.dof, q_min=robot.q_min, q_max=robot.q_max, qd_max=robot.qd_max, obstacles=obstacles,
                   sphere_fn=robot.sphere_centers, radii=robot.sphere_radii, **kwargs)

    # ------------------------------------------------------------------------------------------
    def step(self, q: Tensor, qd: Tensor, qdd: Tensor):
        """One semi-implicit Euler step with limits: ``(B, n)`` ×3 → ``(q, qd)`` ``(B, n)``."""
        dt = self.dt
        if self.qdd_max is not None:
            a = self.qdd_max.to(qdd)
            qdd = torch.maximum(torch.minimum(qdd, a), -a)
        qd = qd + dt * qdd
        if self.qd_max is not None:
            v = self.qd_max.to(qd)
            qd = torch.maximum(torch.minimum(qd, v), -v)
        q = q + dt * qd
        if self.q_max is not None:
            hi = self.q_max.to(q)
            over = q >= hi
            q = torch.minimum(q, hi)
            qd = torch.where(over & (qd > 0), torch.zeros_like(qd), qd)
        if self.q_min is not None:
            lo = self.q_min.to(q)
            under = q <= lo
            q = torch.maximum(q, lo)
            qd = torch.where(under & (qd < 0), torch.zeros_like(qd), qd)
        return q, qd

    def clearance(self, q: Tensor) -> Tensor:
        """``(B,)`` minimum clearance of the robot spheres to all obstacles [m] (``inf`` without obstacles)."""
        if not self.obstacles:
            return q.new_full((q.shape[0],), float("inf"))
        c = self.sphere_fn(q)
        r = self.radii if self.radii is not None else torch.zeros(c.shape[1], dtype=torch.float64)
        return min_clearance(self.obstacles, c, r.to(c))

    def rollout(self, policy: Callable[[Tensor, Tensor], Tensor], q0: Tensor, qd0: Optional[Tensor] = None,
                steps: int = 1000, record: bool = True, differentiable: bool = False,
                require_collision_free: bool = True) -> Rollout:
        """Run ``policy(q, qd) → q̈ (B, n)`` from ``(q0, qd0)`` for ``steps`` steps.

        Args:
            q0: ``(B, n)``. qd0: ``(B, n)`` or None (zeros). steps: ≥ 1.
            record: keep the ``(T + 1, B, n)`` trajectories. differentiable: keep the autograd graph
                through the rollout (otherwise the state is detached after every step; the policy may
                still use autograd internally).
            require_collision_free: ``success = reached & ~collided`` (else ``success = reached``).

        Raises:
            ValueError: bad shapes, a policy output of the wrong shape, steps < 1.
        """
        if not isinstance(q0, Tensor) or q0.dim() != 2 or q0.shape[1] != self.dof or not q0.is_floating_point():
            raise ValueError(f"rollout: q0 must be a floating (B, {self.dof}) tensor, got "
                             f"{tuple(q0.shape) if isinstance(q0, Tensor) else type(q0).__name__}")
        qd0 = torch.zeros_like(q0) if qd0 is None else qd0
        if qd0.shape != q0.shape:
            raise ValueError(f"rollout: qd0 shape {tuple(qd0.shape)} differs from q0 {tuple(q0.shape)}")
        if int(steps) < 1:
            raise ValueError(f"rollout: steps must be ≥ 1, got {steps}")
        B = q0.shape[0]
        q, qd = q0, qd0
        dev = q0.device
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        reached = torch.zeros(B, dtype=torch.bool, device=dev)
        collided = torch.zeros(B, dtype=torch.bool, device=dev)
        t_goal = torch.full((B,), float("nan"), dtype=q0.dtype, device=dev)
        n_coll = torch.zeros(B, dtype=q0.dtype, device=dev)
        n_active = torch.zeros(B, dtype=q0.dtype, device=dev)
        plen = torch.zeros(B, dtype=q0.dtype, device=dev)
        with torch.no_grad():
            clear = self.clearance(q0)
        min_clear = clear.clone()
        collided |= clear < 0
        if self.goal_fn is not None:
            with torch.no_grad():
                g0 = self.goal_fn(q0)
            hit = g0 <= self.goal_tolerance
            reached |= hit
            t_goal = torch.where(hit, torch.zeros_like(t_goal), t_goal)
            if self.stop_at_goal:
                done |= hit
        if self.stop_on_collision:
            done |= collided
        traj_q, traj_qd = ([q0.detach() if not differentiable else q0], [qd0.detach() if not differentiable else qd0]) \
            if record else (None, None)
        qdd = None
        k = 0
        for k in range(1, int(steps) + 1):
            if (k - 1) % self.policy_every == 0:
                qdd = policy(q, qd)
                if not isinstance(qdd, Tensor) or qdd.shape != q.shape:
                    raise ValueError(f"rollout: policy must return a ({B}, {self.dof}) tensor, got "
                                     f"{tuple(qdd.shape) if isinstance(qdd, Tensor) else type(qdd).__name__}")
            qn, qdn = self.step(q, qd, qdd)
            keep = done.unsqueeze(1)
            qn = torch.where(keep, q, qn)
            qdn = torch.where(keep, torch.zeros_like(qdn), qdn)
            if not differentiable:
                qn, qdn = qn.detach(), qdn.detach()
            active = ~done
            with torch.no_grad():
                plen += (qn - q).detach().norm(dim=1)
                clear = self.clearance(qn)
                min_clear = torch.where(active, torch.minimum(min_clear, clear), min_clear)
                pen = (clear < 0) & active
                collided |= pen
                n_coll += pen.to(n_coll.dtype)
                n_active += active.to(n_active.dtype)
                if self.goal_fn is not None:
                    hit = (self.goal_fn(qn) <= self.goal_tolerance) & ~reached
                    reached |= hit
                    t_goal = torch.where(hit, torch.full_like(t_goal, k * self.dt), t_goal)
                    if self.stop_at_goal:
                        done |= hit
                if self.stop_on_collision:
                    done |= collided
            q, qd = qn, qdn
            if record:
                traj_q.append(q)
                traj_qd.append(qd)
            if bool(done.all()):  # one host sync per step: lets all-finished batches stop early
                break
        with torch.no_grad():
            gdist = self.goal_fn(q) if self.goal_fn is not None else torch.full((B,), float("nan"), dtype=q.dtype, device=dev)
        success = reached & ~collided if require_collision_free else reached.clone()
        return Rollout(
            q=torch.stack(traj_q) if record else None,
            qd=torch.stack(traj_qd) if record else None,
            q_final=q, qd_final=qd, success=success, reached=reached, time_to_goal=t_goal, collided=collided,
            collision_intensity=n_coll / n_active.clamp_min(1), min_clearance=min_clear, path_length=plen,
            goal_distance=gdist, steps=k,
        )
