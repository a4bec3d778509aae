"""Riemannian SGD with transported (Nesterov) momentum and geometric decoupled weight decay."""

from __future__ import annotations

from typing import Callable, Optional

import torch

from . import _common as C

__all__ = ["RiemannianSGD"]


class RiemannianSGD(torch.optim.Optimizer):
    r"""Riemannian stochastic gradient descent with momentum transported along the step.

    Bonnabel, "Stochastic gradient descent on Riemannian manifolds", IEEE TAC 2013, with
    the heavy-ball / Nesterov momentum of :class:`torch.optim.SGD` moved by parallel
    transport as in Bécigneul & Ganea, "Riemannian Adaptive Optimization Methods",
    ICLR 2019 (§3, the transported momentum of Alg. 1). For a parameter ``x`` with
    Euclidean gradient ``∇f(x)``:

    .. code-block:: text

        g  = egrad2rgrad(x, ∇f(x))             (∇f negated first when maximize)
        g += -λ logmap(x, o)                   (only if decoupled_weight_decay=False)
        b  = g                                 (first step with momentum)
        b  = μ b + (1 - dampening) g           (later steps)
        d  = g + μ b if nesterov else b        (d = g without momentum)
        u  = -lr d + lr λ logmap(x, o)         (decay term: decoupled, the default)
        x, b = expmap_transp(x, u, b)          (b parallel-transported to the new x)

    On flat ``Euclidean`` space (plain tensors) this is exactly :class:`torch.optim.SGD`
    when ``weight_decay == 0`` or ``decoupled_weight_decay=False`` (torch's SGD decay is
    the coupled L2 one); the default decoupled decay is ``x <- (1 - lr λ) x - lr d``
    (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019).

    Weight decay steps along the geodesic towards the manifold's origin
    (``manifold.origin_point(x)``); a manifold without a canonical origin (a sphere, a
    product containing one) raises at the first step with ``weight_decay > 0``: put its
    parameters in a param group with ``weight_decay=0``.

    **Differences from** ``geoopt.optim.RiemannianSGD``: ``maximize`` is honoured,
    geometric instead of ambient-L2 decay, exact exponential map and parallel transport
    (geoopt: ``retr_transp``), parameters sharing a manifold updated in one batched call.

    Args:
        params: iterable of parameters or param-group dicts; a ``geoopt.ManifoldParameter``
            / ``ManifoldTensor`` ``(*batch, *event_shape)`` is optimised on ``p.manifold``,
            a plain tensor on flat ``Euclidean`` space.
        lr: learning rate, ``>= 0``.
        momentum: ``μ >= 0``.
        dampening: dampening of the momentum.
        weight_decay: ``λ >= 0``.
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        maximize: maximise the objective instead of minimising it.
        decoupled_weight_decay: geodesic decay of the point (default) or, if False,
            ``-λ logmap(x, o)`` added to the Riemannian gradient (torch's L2 decay).

    State per parameter (only with ``momentum != 0``): ``momentum_buffer``, shape of ``p``.

    Raises:
        ValueError: at construction, an invalid ``lr``, ``momentum``, ``weight_decay``,
            or ``nesterov`` without momentum / with dampening; in :meth:`step`,
            ``weight_decay > 0`` for a parameter whose manifold has no origin.
        RuntimeError: in :meth:`step`, a sparse gradient.
    """

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = True,
    ):
        if lr is None or not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr} (expected lr >= 0)")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum} (expected momentum >= 0)")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay} (expected weight_decay >= 0)")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=bool(nesterov),
            maximize=bool(maximize),
            decoupled_weight_decay=bool(decoupled_weight_decay),
        )
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)
            group.setdefault("decoupled_weight_decay", True)

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], torch.Tensor]] = None):
        """Perform one optimisation step.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss.

        Returns:
            The closure's loss, or ``None``.

        Raises:
            ValueError: ``weight_decay > 0`` in a group holding a parameter whose manifold
                has no origin (checked for all groups before anything is updated).
            RuntimeError: a sparse gradient.
        """
        # Parameters with and without a momentum buffer yet go to separate buckets.
        return C.run_step(self, closure, "RiemannianSGD", self._update_bucket, tag=_has_buffer)

    def _update_bucket(self, group: dict, b: C.Bucket) -> None:
        lr = group["lr"]
        mu = group["momentum"]
        dampening = group["dampening"]
        wd = group["weight_decay"]
        decoupled = group["decoupled_weight_decay"]
        m, ev, rows = b.manifold, b.event_shape, b.rows

        X, x_alias = C.gather(b.data, ev, b.uniform)
        G, _ = C.gather(b.grads, ev, b.uniform)
        if group["maximize"]:
            G = -G
        if b.flat:
            R = G if wd == 0 or decoupled else G.add(X, alpha=wd)
        else:
            R = m.egrad2rgrad(X, G)
            if wd != 0 and not decoupled:
                R = R.add(m.logmap(X, b.origin(X)), alpha=-wd)

        B = None
        if mu != 0:
            if "momentum_buffer" in b.states[0]:  # the whole bucket has buffers (see tag)
                bufs = [s["momentum_buffer"] for s in b.states]
                B, b_alias = C.gather(bufs, ev, b.uniform)
                B.mul_(mu).add_(R, alpha=1 - dampening)
            else:
                B, b_alias = R.clone(), False
                bufs = []
                for p, s in zip(b.data, b.states):
                    s["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                    bufs.append(s["momentum_buffer"])
            D = R.add(B, alpha=mu) if group["nesterov"] else B
        else:
            D = R

        if b.flat:
            # torch.optim.SGD: x <- x - lr d (decoupled decay first: x <- (1 - lr wd) x)
            if wd != 0 and decoupled:
                X.mul_(1 - lr * wd)
            X.add_(D, alpha=-lr)
            C.scatter(b.data, X, rows, x_alias, uniform=b.uniform)
            if B is not None:
                C.scatter(bufs, B, rows, b_alias, uniform=b.uniform)
            return
        U = D * (-lr)
        if wd != 0 and decoupled:
            U.add_(m.logmap(X, b.origin(X)), alpha=lr * wd)
        if B is None:
            C.scatter(b.data, C.expmap(m, X, U), rows, uniform=b.uniform)
        else:
            Xn, Bn = C.expmap_transp(m, X, U, B)
            C.scatter(b.data, Xn, rows, uniform=b.uniform)
            if len(bufs) == 1 and Bn.is_contiguous():
                # one parameter: keep the transported buffer itself as the new state (no copy)
                shape = bufs[0].shape
                b.states[0]["momentum_buffer"] = Bn if Bn.shape == shape else Bn.reshape(shape)
            else:
                C.scatter(bufs, Bn, rows, uniform=b.uniform)


def _has_buffer(state: dict) -> bool:
    return "momentum_buffer" in state
