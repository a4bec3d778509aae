"""Riemannian Adam / AMSGrad (Bécigneul & Ganea, ICLR 2019) with geometric decoupled weight decay."""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch

from . import _common as C

__all__ = ["RiemannianAdam"]


class RiemannianAdam(torch.optim.Optimizer):
    r"""Riemannian Adam / AMSGrad: Adam with one adaptive scalar per manifold factor.

    Bécigneul & Ganea, "Riemannian Adaptive Optimization Methods", ICLR 2019, Alg. 1
    (RAMSGRAD; RADAM without the max), plus Adam's bias correction. For a parameter
    ``x`` on a manifold ``M`` with Euclidean gradient ``∇f(x)``, step ``t``:

    .. code-block:: text

        g   = egrad2rgrad(x, ∇f(x))                  (∇f negated first when maximize)
        g  += -λ logmap(x, o)                        (only if decoupled_weight_decay=False)
        m   = β1 m + (1 - β1) g                      (m: tangent at x, same shape as x)
        v   = β2 v + (1 - β2) component_inner(x, g)  (one scalar per factor)
        v̂   = max(v̂, v)                              (amsgrad only; v̂ replaces v below)
        u   = -lr / (1 - β1^t) · m / (sqrt(v) / sqrt(1 - β2^t) + eps)
        u  += lr λ logmap(x, o)                      (decoupled decay, the default)
        x, m = expmap_transp(x, u, m)                (new point, m parallel-transported)

    The second moment is a squared norm, a scalar, and is not transported. On flat
    ``Euclidean`` space (plain tensors) every coordinate is a factor and the update is
    exactly :class:`torch.optim.Adam` (``decoupled_weight_decay=False``) or
    :class:`torch.optim.AdamW` (the default, with ``o = 0``: ``x <- (1 - lr λ) x + u``;
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019), with
    torch's arithmetic order.

    **Weight decay** is geometric: a geodesic step of relative length ``lr·λ`` from ``x``
    towards the manifold's origin ``o`` (``manifold.origin_point(x)``: ``0`` on
    ``Euclidean``, a product of such spaces, the centre of geoopt's Poincaré ball).
    Manifolds without a canonical origin (a sphere, a product containing one) raise at
    the first step with ``weight_decay > 0``; put their parameters in a param group with
    ``weight_decay=0``.

    **Differences from** ``geoopt.optim.RiemannianAdam``: ``maximize`` is honoured (geoopt
    accepts and ignores it); weight decay is the geodesic decay above (geoopt adds
    ``λ x`` to the ambient gradient, which the sphere's projection removes entirely);
    ``exp_avg_sq`` stores one value per factor (shape ``(*batch, 1)`` for a
    ``(*batch, n+1)`` sphere parameter, not the full parameter shape); parameters that
    share a manifold, event shape, dtype and device are concatenated and updated in one
    batched call; the momentum moves with ``expmap_transp`` (exact exponential map and
    parallel transport on :class:`manifolds.Sphere`; geoopt uses ``retr_transp``, a
    projection on its spheres); ``state_dict()`` round-trips (tensor ``step``).

    **Implementation.** :meth:`step` never reads a tensor on the host (no ``.item()``).
    The optimizer mirrors the step counts it writes on the host; while a bucket's counts
    are known and equal, the bias corrections are Python floats exactly as in torch,
    otherwise (different counts, or ``step`` edited from outside) per-row factors are
    computed on the device from the ``step`` tensors. Off flat space the update is
    evaluated as ``(-lr sqrt(1-β2^t)/(1-β1^t)) m / (sqrt(v) + eps sqrt(1-β2^t))``, the
    same value with one batched operation fewer.

    Args:
        params: iterable of parameters or param-group dicts. A
            ``geoopt.ManifoldParameter`` / ``ManifoldTensor`` of shape
            ``(*batch, *event_shape)`` is optimised on ``p.manifold`` (a
            :class:`manifolds.Manifold` or any geoopt manifold); a plain tensor /
            ``nn.Parameter`` on flat ``Euclidean`` space, coordinate by coordinate.
        lr: learning rate, ``>= 0``.
        betas: ``(β1, β2)``, each in ``[0, 1)``.
        eps: added to the denominator, ``>= 0``.
        weight_decay: ``λ >= 0``.
        amsgrad: use the running maximum of the second moment (RAMSGRAD).
        maximize: maximise the objective instead of minimising it.
        decoupled_weight_decay: geodesic decay of the point (AdamW style, default) or,
            if False, ``-λ logmap(x, o)`` added to the Riemannian gradient (L2 style).

    State per parameter ``p`` of shape ``(*batch, *event_shape)``: ``step`` (0-dim
    tensor on ``p``'s device), ``exp_avg`` (shape of ``p``), ``exp_avg_sq`` and, with
    ``amsgrad``, ``max_exp_avg_sq`` of shape ``(*batch, *component_shape)`` —
    ``(*batch, 1)`` on a sphere, ``(*batch, k)`` on a ``k``-factor
    :class:`manifolds.Product`, the shape of ``p`` on flat space.

    Raises:
        ValueError: at construction, an invalid ``lr``, ``eps``, ``betas`` or
            ``weight_decay``; in :meth:`step`, ``weight_decay > 0`` for a parameter whose
            manifold has no origin.
        RuntimeError: in :meth:`step`, a sparse gradient.

    Example:
        >>> import geoopt, manifolds
        >>> S2 = manifolds.Sphere(2)
        >>> x = geoopt.ManifoldParameter(S2.random(100, 3), manifold=S2)
        >>> w = torch.nn.Parameter(torch.randn(4))
        >>> opt = manifolds.RiemannianAdam([{"params": [x]}, {"params": [w], "weight_decay": 1e-2}], lr=1e-2)
        >>> ((x * torch.tensor([0.0, 0.0, 1.0])).sum() + (w ** 2).sum()).backward()
        >>> opt.step()
        >>> opt.state[x]["exp_avg_sq"].shape
        torch.Size([100, 1])
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = True,
    ):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr} (expected lr >= 0)")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps} (expected eps >= 0)")
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
        if not 0.0 <= beta1 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {beta1} (expected 0 <= beta1 < 1)")
        if not 0.0 <= beta2 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {beta2} (expected 0 <= beta2 < 1)")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay} (expected weight_decay >= 0)")
        defaults = dict(
            lr=lr,
            betas=(beta1, beta2),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=bool(amsgrad),
            maximize=bool(maximize),
            decoupled_weight_decay=bool(decoupled_weight_decay),
        )
        super().__init__(params, defaults)
        self._host_steps = C.HostSteps()

    def __setstate__(self, state):
        # Called by ``load_state_dict`` and when unpickling: each ``step`` gets its own
        # tensor on its parameter's device and the host-side step counts are re-read.
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("decoupled_weight_decay", True)
        C.fix_step_devices(self)
        self._host_steps = C.HostSteps()
        self._host_steps.sync(self)

    # ------------------------------------------------------------------ step
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
        return C.run_step(self, closure, "RiemannianAdam", self._update_bucket)

    def _init_states(self, group: dict, b: C.Bucket) -> None:
        red = None
        for p, st in zip(b.params, b.states):
            if "step" not in st:
                if red is None:
                    red = C.reduced_event_shape(b, p.data)
                st["step"] = torch.zeros((), dtype=C.scalar_dtype(), device=p.device)
                self._host_steps.register(st["step"], 0.0)
                st["exp_avg"] = torch.zeros_like(p.data, memory_format=torch.preserve_format)
                st["exp_avg_sq"] = p.data.new_zeros(C.batch_shape(p, b.event_shape) + red)
            if group["amsgrad"] and "max_exp_avg_sq" not in st:
                st["max_exp_avg_sq"] = torch.zeros_like(st["exp_avg_sq"])

    def _update_bucket(self, group: dict, b: C.Bucket) -> None:
        """Gather the bucket into ``(rows, *event_shape)`` batches, update, write back."""
        self._init_states(group, b)
        beta1, beta2 = group["betas"]
        amsgrad = group["amsgrad"]
        ev, rows, states = b.event_shape, b.rows, b.states

        X, x_alias = C.gather(b.data, ev, b.uniform)
        G, _ = C.gather(b.grads, ev, b.uniform)
        M, m_alias = C.gather([s["exp_avg"] for s in states], ev, b.uniform)
        vs = [s["exp_avg_sq"] for s in states]
        red = tuple(vs[0].shape[b.data[0].dim() - len(ev) :])  # per-point trailing shape of v
        V, v_alias = C.gather(vs, red, b.uniform)
        Vmax = None
        if amsgrad:
            vmaxs = [s["max_exp_avg_sq"] for s in states]
            Vmax, vmax_alias = C.gather(vmaxs, red, b.uniform)

        steps = [s["step"] for s in states]
        step = self._host_steps.increment(steps)
        if step is not None:
            # Common step count known on the host: torch.optim.Adam's scalar arithmetic.
            bc1 = 1 - beta1**step
            bc2_sqrt = (1 - beta2**step) ** 0.5
        else:
            # Counts differ (or were changed from outside): per-row factors on the device.
            st = C.per_row_steps(steps, rows, X.shape[0])
            bc1 = 1 - beta1**st
            bc2_sqrt = (1 - beta2**st).sqrt()

        if group["maximize"]:
            G = -G
        if b.flat:
            self._flat_update(group, b, X, x_alias, G, M, m_alias, V, Vmax, bc1, bc2_sqrt)
        else:
            self._riemannian_update(group, b, X, G, M, V, Vmax, bc1, bc2_sqrt, red)
        C.scatter(vs, V, rows, v_alias, uniform=b.uniform)
        if amsgrad:
            C.scatter(vmaxs, Vmax, rows, vmax_alias, uniform=b.uniform)

    @staticmethod
    def _flat_update(group, b, X, x_alias, G, M, m_alias, V, Vmax, bc1, bc2_sqrt) -> None:
        """Euclidean parameters: torch.optim.Adam(W)'s single-tensor arithmetic, op for op."""
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        decoupled = group["decoupled_weight_decay"]
        if isinstance(bc1, torch.Tensor):
            neg_step = C.row_factor(-(lr / bc1), len(b.event_shape), X.dtype)
            bc2_sqrt = C.row_factor(bc2_sqrt, len(b.event_shape), X.dtype)
        else:
            neg_step = -(lr / bc1)
        R = G if wd == 0 or decoupled else G.add(X, alpha=wd)
        M.lerp_(R, 1 - beta1)
        V.mul_(beta2).addcmul_(R, R, value=1 - beta2)
        if Vmax is not None:
            torch.maximum(Vmax, V, out=Vmax)
            V = Vmax
        denom = (V.sqrt() / bc2_sqrt).add_(eps)
        # x <- (1 - lr wd) x ; x <- x + (-step_size * m) / denom   (= torch's addcdiv_)
        U = (M * neg_step) / denom
        if wd != 0 and decoupled:
            X.mul_(1 - lr * wd)
        X.add_(U)
        C.scatter(b.data, X, b.rows, x_alias, uniform=b.uniform)
        C.scatter([s["exp_avg"] for s in b.states], M, b.rows, m_alias, uniform=b.uniform)

    @staticmethod
    def _riemannian_update(group, b, X, G, M, V, Vmax, bc1, bc2_sqrt, red) -> None:
        """Bécigneul & Ganea Alg. 1 on ``b.manifold`` (one second-moment scalar per factor)."""
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        m, ev = b.manifold, b.event_shape
        # -lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps) == (-lr sqrt(bc2)/bc1) * m / (sqrt(v) + eps sqrt(bc2)):
        # one operation fewer on the batch, same value up to rounding.
        scale = -(lr / bc1) * bc2_sqrt
        eps_c = eps * bc2_sqrt
        if isinstance(scale, torch.Tensor):
            scale = C.row_factor(scale, len(ev), X.dtype)
            eps_c = C.row_factor(eps_c, len(red), X.dtype)
        R = m.egrad2rgrad(X, G)
        if wd != 0 and not group["decoupled_weight_decay"]:
            R = R.add(m.logmap(X, b.origin(X)), alpha=-wd)
        M.lerp_(R, 1 - beta1)
        V.lerp_(m.component_inner(X, R), 1 - beta2)
        if Vmax is not None:
            torch.maximum(Vmax, V, out=Vmax)
            V = Vmax
        denom = V.sqrt().add_(eps_c)
        U = (M / C.expand_component(m, denom)).mul_(scale)
        if wd != 0 and group["decoupled_weight_decay"]:
            U.add_(m.logmap(X, b.origin(X)), alpha=lr * wd)
        Xn, Mn = C.expmap_transp(m, X, U, M)
        C.scatter(b.data, Xn, b.rows, uniform=b.uniform)
        if len(b.states) == 1 and Mn.is_contiguous():
            # one parameter: keep the transported momentum itself as the new state (no copy)
            st = b.states[0]
            shape = st["exp_avg"].shape
            st["exp_avg"] = Mn if Mn.shape == shape else Mn.reshape(shape)
        else:
            C.scatter([s["exp_avg"] for s in b.states], Mn, b.rows, uniform=b.uniform)
