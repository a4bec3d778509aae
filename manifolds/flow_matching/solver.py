"""Integrating a learned vector field on a manifold."""

from __future__ import annotations

from typing import Callable

import torch

from ..base import Manifold

__all__ = ["RiemannianODESolver", "FIXED_STEP_METHODS"]

FIXED_STEP_METHODS = ("euler", "midpoint", "rk4")


class RiemannianODESolver:
    r"""Solve ``dx/dt = v(x, t)`` on a manifold, from ``t0`` to ``t1``.

    Fixed-step geometric integrators (every step ends on the manifold through ``expmap``):

    * ``"euler"``: ``x ← exp_x(h v(x, t))`` (geodesic Euler; RFMP's "Riemannian Euler").
    * ``"midpoint"``: ``k1 = v(x, t)``, ``x_m = exp_x(h/2 k1)``, ``x ← exp_x(h Γ_{x_m→x} v(x_m, t + h/2))``.
    * ``"rk4"``: the classical RK4 tableau with every stage evaluated at ``exp_x`` of the
      previous stage and parallel-transported back to ``T_x`` before the weighted sum
      (a Runge–Kutta–Munthe-Kaas-type scheme without the ``dexp⁻¹`` correction: 4th
      order in flat space, at least 2nd order on curved manifolds).

    Any other ``method`` is passed to :func:`torchdiffeq.odeint` (``"dopri5"``,
    ``"rk4"`` of torchdiffeq via ``"torchdiffeq:rk4"``, ...) on the ambient ODE with
    the field evaluated at ``projx(x)`` and projected with ``proju``; the result is
    mapped back with a final ``projx`` (Chen & Lipman, ICLR 2024, §3.4; riemannian-fm).

    Args:
        manifold: the manifold of the state.
        velocity: callable ``(x, t, **extras) -> v`` with ``x`` ``(*batch, *event_shape)``,
            ``t`` ``(*batch,)`` and ``v`` tangent at ``x`` (wrap an ambient network in
            :class:`manifolds.flow_matching.ProjectToTangent`).
    """

    def __init__(self, manifold: Manifold, velocity: Callable[..., torch.Tensor]):
        self.manifold = manifold
        self.velocity = velocity

    def _v(self, x, t, extras):
        batch = x.shape[: x.dim() - len(self.manifold.event_shape)]
        return self.velocity(x, t.expand(batch), **extras)

    def sample(
        self,
        x_init: torch.Tensor,
        *,
        method: str = "euler",
        n_steps: int = 10,
        t0: float = 0.0,
        t1: float = 1.0,
        atol: float = 1e-5,
        rtol: float = 1e-5,
        return_intermediates: bool = False,
        **extras,
    ) -> torch.Tensor:
        """Integrate from ``x_init`` at ``t0`` to ``t1``.

        Args:
            x_init: ``(*batch, *event_shape)`` initial points.
            method: ``"euler"``, ``"midpoint"``, ``"rk4"`` (geometric, fixed step) or a
                torchdiffeq method name (``"dopri5"``, ``"torchdiffeq:rk4"``, ...).
            n_steps: number of fixed steps (also the number of output times for
                torchdiffeq when ``return_intermediates``).
            t0, t1: integration interval.
            atol, rtol: tolerances of adaptive torchdiffeq solvers.
            return_intermediates: return all ``n_steps + 1`` states stacked on dim 0.
            **extras: passed to the velocity (e.g. the conditioning observation).

        Returns:
            ``(*batch, *event_shape)`` final points, or ``(n_steps + 1, *batch, *event_shape)``.

        Raises:
            ValueError: ``n_steps < 1``.
        """
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        m = self.manifold
        ts = torch.linspace(t0, t1, n_steps + 1, dtype=x_init.dtype, device=x_init.device)
        if method not in FIXED_STEP_METHODS:
            return self._torchdiffeq(x_init, ts, method, atol, rtol, return_intermediates, extras)
        x = x_init
        states = [x]
        for i in range(n_steps):
            t, h = ts[i], ts[i + 1] - ts[i]
            k1 = self._v(x, t, extras)
            if method == "euler":
                step = k1
            elif method == "midpoint":
                xm = m.expmap(x, 0.5 * h * k1)
                step = m.transp(xm, x, self._v(xm, t + 0.5 * h, extras))
            else:  # rk4
                x2 = m.expmap(x, 0.5 * h * k1)
                k2 = m.transp(x2, x, self._v(x2, t + 0.5 * h, extras))
                x3 = m.expmap(x, 0.5 * h * k2)
                k3 = m.transp(x3, x, self._v(x3, t + 0.5 * h, extras))
                x4 = m.expmap(x, h * k3)
                k4 = m.transp(x4, x, self._v(x4, t + h, extras))
                step = (k1 + 2 * k2 + 2 * k3 + k4) / 6
            x = m.expmap(x, h * step)
            if return_intermediates:
                states.append(x)
        return torch.stack(states) if return_intermediates else x

    def _torchdiffeq(self, x_init, ts, method, atol, rtol, return_intermediates, extras):
        from torchdiffeq import odeint

        m = self.manifold
        method = method.split(":", 1)[1] if method.startswith("torchdiffeq:") else method

        def f(t, x):
            y = m.projx(x)
            return m.proju(y, self._v(y, t, extras))

        times = ts if return_intermediates else ts[[0, -1]]
        out = odeint(f, x_init, times, method=method, atol=atol, rtol=rtol)
        out = m.projx(out)
        return out if return_intermediates else out[-1]
