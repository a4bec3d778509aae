"""Private machinery shared by :class:`RiemannianAdam` and :class:`RiemannianSGD`.

* Which manifold a parameter lives on (``p.manifold`` or flat Euclidean space).
* Grouping of the parameters of one param group into *buckets* that share a manifold,
  an event shape, a dtype and a device, so that one batched call updates all of them.
* Gathering per-parameter tensors into one ``(rows, *event_shape)`` batch and writing the
  result back (``torch._foreach_copy_``).
* Per-row bias-correction factors computed from the per-parameter ``step`` tensors
  without a host synchronisation.
* The origin used by the geometric weight decay.

Nothing here calls ``.item()`` or branches on tensor values.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Hashable, List, Optional, Sequence, Tuple

import geoopt
import torch

from ..base import Manifold
from ..euclidean import Euclidean
from ..product import Product

__all__: List[str] = []

#: The manifold of plain tensors / ``nn.Parameter``: shape-agnostic ℝ, every scalar a factor.
DEFAULT_MANIFOLD = Euclidean()


def scalar_dtype() -> torch.dtype:
    """dtype of the ``step`` counters (as torch.optim: float64 only under a float64 default dtype)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def is_flat(m) -> bool:
    """True for the flat spaces whose optimizer update is torch's own, coordinate by coordinate."""
    t = type(m)
    return t is Euclidean or t is geoopt.Euclidean


def _manifold_info(m) -> Tuple[Hashable, Optional[Tuple[int, ...]], int]:
    """``(key, event_shape or None, geoopt ndim)``; equal keys mean interchangeable manifolds."""
    if isinstance(m, Manifold):
        ev = tuple(m.event_shape)
        return ("manifolds", m._key(), ev), ev, len(ev)
    nd = int(getattr(m, "ndim", 0) or 0)
    return ("geoopt", id(m), nd), None, nd


def expmap(m, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``m.expmap``; the retraction for a geoopt manifold without an exponential map."""
    try:
        return m.expmap(x, u)
    except NotImplementedError:
        return m.retr(x, u)


def expmap_transp(m, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
    """``m.expmap_transp``; ``retr_transp`` for a geoopt manifold without exact maps."""
    try:
        return m.expmap_transp(x, u, v)
    except NotImplementedError:
        return m.retr_transp(x, u, v)


def expand_component(m, s: torch.Tensor) -> torch.Tensor:
    """Broadcast per-factor scalars against a tangent vector (identity for non-products)."""
    fn = getattr(m, "expand_component", None)
    return s if fn is None else fn(s)


def origin_fn(m) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function ``x -> origin`` (same shape as ``x``) for the geometric weight decay.

    Looked up, in order: a method ``origin_point(x)`` on the manifold; a
    :class:`manifolds.Product` whose factors all have an origin; geoopt's flat
    ``Euclidean`` and the centre of its ``Stereographic`` models (Poincaré ball, ...).

    Raises:
        ValueError: the manifold (or one factor of a product) has no canonical origin,
            e.g. a sphere; the message says to use ``weight_decay=0`` for those parameters.
    """
    fn = getattr(m, "origin_point", None)
    if fn is not None:
        return fn
    if isinstance(m, Product):
        fns = [origin_fn(f) for f in m.factors]  # raises for a factor without origin
        return lambda x: m.join([f(xi) for f, xi in zip(fns, m.split(x))])
    if isinstance(m, (geoopt.Euclidean, geoopt.Stereographic)):
        return torch.zeros_like
    raise ValueError(
        f"weight_decay > 0 decays a parameter along the geodesic towards the manifold's origin, "
        f"but {m!r} has no canonical origin (no `origin_point` method). Put the parameters on this "
        f"manifold in a param group with weight_decay=0."
    )


class Bucket:
    """Parameters of one param group that share manifold, event shape, dtype and device."""

    __slots__ = (
        "manifold", "flat", "event_shape", "params", "data", "grads", "states", "rows", "uniform", "origin", "key"
    )

    def __init__(self, manifold, event_shape: Tuple[int, ...], key):
        self.manifold = manifold
        self.flat = is_flat(manifold)
        self.event_shape = event_shape
        self.key = key
        self.params: List[torch.Tensor] = []
        self.data: List[torch.Tensor] = []
        self.grads: List[torch.Tensor] = []
        self.states: List[dict] = []
        self.rows: List[int] = []
        self.uniform = True  # all parameters have the same shape (stack / unbind instead of cat / split)
        self.origin = None


def make_buckets(
    optimizer: torch.optim.Optimizer,
    group: dict,
    name: str,
    tag: Optional[Callable[[dict], Hashable]] = None,
) -> List[Bucket]:
    """Bucket the parameters of ``group`` that have a gradient (in parameter order).

    Args:
        optimizer: gives ``optimizer.state``.
        group: one param group.
        name: optimizer name for error messages.
        tag: optional ``state -> hashable`` that splits buckets further (e.g. SGD
            parameters with and without a momentum buffer yet).

    Raises:
        RuntimeError: a sparse gradient.
    """
    buckets: Dict[Hashable, Bucket] = {}
    info_cache: Dict[int, tuple] = {}
    state = optimizer.state
    for p in group["params"]:
        g = p.grad
        if g is None:
            continue
        if g.is_sparse:
            raise RuntimeError(f"{name} does not support sparse gradients")
        m = getattr(p, "manifold", None)
        if m is None:
            m = DEFAULT_MANIFOLD
        info = info_cache.get(id(m))
        if info is None:
            info = info_cache[id(m)] = _manifold_info(m)
        mkey, ev, nd = info
        d = p.data  # plain tensor: cheaper attribute access than on a geoopt subclass
        shape = d.shape
        if ev is None:
            ev = tuple(shape[len(shape) - nd :]) if nd else ()
        st = state[p]
        key = (mkey, ev, d.dtype, d.device) if tag is None else (mkey, ev, d.dtype, d.device, tag(st))
        b = buckets.get(key)
        if b is None:
            b = buckets[key] = Bucket(m, ev, key)
        b.params.append(p)
        b.data.append(d)
        b.grads.append(g)
        b.states.append(st)
        b.rows.append(shape)
    for b in buckets.values():
        # rows per parameter = numel / numel(event); the shapes were stored above
        shapes = b.rows
        s0 = shapes[0]
        b.uniform = all(s == s0 for s in shapes)
        n_ev = math.prod(b.event_shape)
        b.rows = [math.prod(s) // n_ev if n_ev else 0 for s in shapes]
    return list(buckets.values())


def reduced_event_shape(b: Bucket, p: torch.Tensor) -> Tuple[int, ...]:
    """Trailing shape of ``component_inner`` for one point: ``(1,)`` on a sphere, ``(k,)`` on a
    product of ``k`` factors, the event shape itself on flat spaces.

    Evaluated once per new parameter at the parameter's first point (some manifolds, e.g.
    SPD, need a valid point) with a zero tangent vector.
    """
    if b.flat:
        return b.event_shape
    x = p.reshape((-1,) + b.event_shape)[:1]
    if x.shape[0] == 0:
        x = torch.zeros((1,) + b.event_shape, dtype=p.dtype, device=p.device)
    return tuple(b.manifold.component_inner(x, torch.zeros_like(x)).shape[1:])


def batch_shape(t: torch.Tensor, event_shape: Tuple[int, ...]) -> Tuple[int, ...]:
    return tuple(t.shape[: t.dim() - len(event_shape)])


def gather(
    ts: Sequence[torch.Tensor], event_shape: Tuple[int, ...], uniform: Optional[bool] = None
) -> Tuple[torch.Tensor, bool]:
    """Concatenate tensors ``(*batch_i, *event_shape)`` into ``(rows, *event_shape)``.

    Returns ``(batch, alias)``; ``alias`` is True when ``batch`` is a view of the single
    input (in-place updates of ``batch`` then reach the input directly). ``uniform``:
    whether all inputs have the same shape (checked when ``None``).
    """
    shape = (-1,) + tuple(event_shape)
    if len(ts) == 1:
        t = ts[0]
        if t.dim() == len(event_shape) + 1:  # already (rows, *event_shape)
            return t, True
        return t.reshape(shape), t.is_contiguous()
    if uniform is None:
        s0 = ts[0].shape
        uniform = all(t.shape == s0 for t in ts)
    if uniform:  # one C call instead of a reshape per tensor
        return torch.stack(ts).reshape(shape), False
    return torch.cat([t.reshape(shape) for t in ts]), False


def scatter(
    dsts: Sequence[torch.Tensor],
    src: torch.Tensor,
    rows: Sequence[int],
    alias: bool = False,
    uniform: Optional[bool] = None,
) -> None:
    """Write the rows of ``src`` back into ``dsts`` (inverse of :func:`gather`); no-op for an alias."""
    if alias:
        return
    if len(dsts) == 1:
        d = dsts[0]
        d.copy_(src if src.shape == d.shape else src.reshape(d.shape))
        return
    s0 = dsts[0].shape
    if uniform is None:
        uniform = all(d.shape == s0 for d in dsts)
    if uniform:
        parts = src.reshape((len(dsts),) + tuple(s0)).unbind(0)
    else:
        parts = [s.reshape(d.shape) for s, d in zip(torch.split(src, list(rows)), dsts)]
    torch._foreach_copy_(list(dsts), list(parts))


def increment_steps(steps: List[torch.Tensor]) -> None:
    if len(steps) == 1:
        steps[0].add_(1)
    else:
        torch._foreach_add_(steps, 1)


def per_row_steps(steps: List[torch.Tensor], rows: Sequence[int], n_rows: int) -> torch.Tensor:
    """Step counts as a float64 tensor: 0-dim for one parameter, else ``(n_rows,)`` (one per row)."""
    wide = torch.float64 if steps[0].device.type != "mps" else torch.float32
    if len(steps) == 1:
        return steps[0].to(wide)
    st = torch.stack(steps).to(wide)
    r0 = rows[0]
    if all(r == r0 for r in rows):
        return st if r0 == 1 else st.repeat_interleave(r0)
    reps = torch.tensor(list(rows), device=st.device)
    return torch.repeat_interleave(st, reps, output_size=n_rows)


def row_factor(f: torch.Tensor, trailing: int, dtype: torch.dtype) -> torch.Tensor:
    """Cast a per-row factor to ``dtype`` and reshape it to broadcast over ``trailing`` event dims."""
    f = f.to(dtype)
    if f.dim() == 0:
        return f
    return f.reshape((-1,) + (1,) * trailing)


def fix_step_devices(optimizer: torch.optim.Optimizer) -> None:
    """Give every ``state['step']`` its own 0-dim tensor on its parameter's device.

    torch's loader leaves ``step`` as saved, on the saved device and shared with the
    source state dict (a shallow copy); ``step()`` increments it in place.
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            st = optimizer.state.get(p)
            if not st:
                continue
            s = st.get("step")
            if isinstance(s, torch.Tensor):
                st["step"] = s.detach().reshape(()).to(p.device, copy=True)
            elif s is not None:  # a plain number from an older/foreign state dict
                st["step"] = torch.tensor(float(s), dtype=scalar_dtype(), device=p.device)


class HostSteps:
    """Host-side mirror of the per-parameter ``step`` tensors.

    ``step()`` must not read tensors (no ``.item()``: a device sync on GPU), yet Adam's
    bias corrections depend on the step count. The optimizer knows the count it wrote
    itself: this records ``(tensor, tensor._version, count)`` whenever it creates or
    increments a ``step`` tensor. An entry is trusted only while the tensor is the same
    object with the same version counter, so any outside change (``load_state_dict``,
    ``step.fill_(...)``) invalidates it; the optimizer then computes the bias corrections
    on the device from the tensors instead. :meth:`sync` re-reads all counts (used when
    a state is loaded, outside ``step()``).
    """

    def __init__(self):
        self._d: Dict[int, tuple] = {}

    def register(self, t: torch.Tensor, count: float) -> None:
        self._d[id(t)] = (t, t._version, float(count))

    def sync(self, optimizer: torch.optim.Optimizer) -> None:
        self._d = {}
        for st in optimizer.state.values():
            t = st.get("step") if isinstance(st, dict) else None
            if isinstance(t, torch.Tensor) and t.numel() == 1:
                self.register(t, float(t))

    def increment(self, steps: List[torch.Tensor]) -> Optional[float]:
        """Add 1 to every step tensor; return the new common count when it is known on the
        host and equal for all of them, else ``None``."""
        d = self._d
        counts = []
        for t in steps:
            e = d.get(id(t))
            if e is None or e[0] is not t or e[1] != t._version:
                counts = None
                break
            counts.append(e[2])
        increment_steps(steps)
        if counts is None:
            return None
        for t, c in zip(steps, counts):
            d[id(t)] = (t, t._version, c + 1.0)
        c0 = counts[0]
        for c in counts:
            if c != c0:
                return None
        return c0 + 1.0


def run_step(
    optimizer: torch.optim.Optimizer,
    closure: Optional[Callable[[], torch.Tensor]],
    name: str,
    update_bucket: Callable[[dict, "Bucket"], None],
    tag: Optional[Callable[[dict], Hashable]] = None,
):
    """The common body of ``step()``: closure, bucketing, origin lookup, then the updates.

    Every group is bucketed (and every weight-decay origin looked up, which may raise)
    before any parameter is updated, so an error leaves the parameters untouched.
    """
    loss = None
    if closure is not None:
        with torch.enable_grad():
            loss = closure()
    plan = []
    for group in optimizer.param_groups:
        buckets = make_buckets(optimizer, group, name, tag=tag)
        if group["weight_decay"] != 0:
            for b in buckets:
                b.origin = origin_fn(b.manifold)
        plan.append((group, buckets))
    for group, buckets in plan:
        for b in buckets:
            update_bucket(group, b)
    return loss

