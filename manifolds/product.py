"""Cartesian products of manifolds, stored as flat concatenations."""

from __future__ import annotations

from typing import List, Sequence

import torch

from ._numerics import safe_sqrt
from .base import Manifold

__all__ = ["Product"]


class Product(Manifold):
    r"""Product manifold :math:`M_1 \times \dots \times M_k` with the product metric.

    A point is the flat concatenation of the factors' points, each flattened:
    shape ``(*batch, D)`` with ``D = Σ_i prod(event_shape_i)``. :meth:`split` and
    :meth:`join` convert between the flat form and the list of factor points.
    ``dist² = Σ_i dist_i²``, ``inner = Σ_i inner_i``, and every other verb acts factor
    by factor; the base density is the product of the factors' base densities.

    Consecutive equal factors (e.g. the ``H`` waypoints of an action chunk on S²,
    ``Product.power(Sphere(2), H)``) are stored as one block and computed in a single
    batched call, so a product of 16 spheres costs one sphere call, not 16.

    For adaptive optimizers each factor is one component (Bécigneul & Ganea, ICLR 2019,
    Alg. 1): :meth:`component_inner` returns ``(*batch, k)``.

    Args:
        *manifolds: the factors (any manifolds of the library, including products).

    Raises:
        ValueError: no factor given, or a factor that is not a :class:`manifolds.Manifold`.

    Example:
        >>> M = Product(Sphere(2), Euclidean(2))
        >>> x = M.random(4, 5)
        >>> s, e = M.split(x)
        >>> s.shape, e.shape
        (torch.Size([4, 3]), torch.Size([4, 2]))
    """

    name = "Product"
    ndim = 1

    def __init__(self, *manifolds: Manifold):
        super().__init__()
        if len(manifolds) == 1 and isinstance(manifolds[0], (list, tuple)):
            manifolds = tuple(manifolds[0])
        if not manifolds:
            raise ValueError("Product needs at least one factor manifold")
        for m in manifolds:
            if not isinstance(m, Manifold):
                raise ValueError(f"Product factors must be manifolds.Manifold instances, got {type(m).__name__}")
        self.factors = torch.nn.ModuleList(manifolds)
        # Blocks of consecutive equal factors: (manifold, count, start, stop) in the flat vector.
        blocks = []
        start = 0
        for m in manifolds:
            if blocks and blocks[-1][0]._key() == m._key():
                b = blocks[-1]
                blocks[-1] = (b[0], b[1] + 1, b[2], b[3] + m.numel)
            else:
                blocks.append((m, 1, start, start + m.numel))
            start += m.numel
        self._blocks = blocks
        self.event_shape = (start,)
        self.dim = sum(m.dim for m in manifolds)
        self._sizes = [m.numel for m in manifolds]

    @classmethod
    def power(cls, manifold: Manifold, n: int) -> "Product":
        """The power manifold ``M^n`` (``n`` copies of ``manifold``)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"power needs a positive int n, got {n!r}")
        return cls(*([manifold] * n))

    def _key(self):
        return (type(self).__name__, tuple(m._key() for m in self.factors))

    @property
    def n_factors(self) -> int:
        return len(self.factors)

    # ------------------------------------------------------------------ split / join
    def split(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Flat ``(*batch, D)`` -> list of factor tensors ``(*batch, *event_shape_i)``."""
        parts = torch.split(x, self._sizes, dim=-1)
        return [p.reshape(p.shape[:-1] + tuple(m.event_shape)) for p, m in zip(parts, self.factors)]

    def join(self, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        """Inverse of :meth:`split`: list of factor tensors -> flat ``(*batch, D)``."""
        if len(parts) != self.n_factors:
            raise ValueError(f"join expects {self.n_factors} factor tensors, got {len(parts)}")
        flat = [p.reshape(p.shape[: p.dim() - len(m.event_shape)] + (-1,)) for p, m in zip(parts, self.factors)]
        batch = torch.broadcast_shapes(*[f.shape[:-1] for f in flat])
        return torch.cat([f.expand(batch + f.shape[-1:]) for f in flat], dim=-1)

    def _block(self, x: torch.Tensor, b) -> torch.Tensor:
        m, count, start, stop = b
        return x[..., start:stop].reshape(x.shape[:-1] + (count,) + tuple(m.event_shape))

    def _unblock(self, y: torch.Tensor, b) -> torch.Tensor:
        """``(*batch, count, *event_shape)`` -> flat ``(*batch, count · numel)``."""
        return y.reshape(y.shape[: y.dim() - 1 - len(b[0].event_shape)] + (-1,))

    def _map(self, fn, *tensors) -> torch.Tensor:
        """Apply ``fn(manifold, *block_tensors)`` per block and concatenate the flat results."""
        outs = []
        for b in self._blocks:
            blk = [self._block(t, b) for t in tensors]
            outs.append(self._unblock(fn(b[0], *blk), b))
        if len(outs) == 1:
            return outs[0]
        batch = torch.broadcast_shapes(*[o.shape[:-1] for o in outs])
        return torch.cat([o.expand(batch + o.shape[-1:]) for o in outs], dim=-1)

    def _reduce(self, fn, *tensors, keepdim=False) -> torch.Tensor:
        """Sum over all factors of the per-factor scalar ``fn(manifold, *block_tensors)`` (shape ``(*batch, count)``)."""
        total = 0
        for b in self._blocks:
            total = total + fn(b[0], *[self._block(t, b) for t in tensors]).sum(-1)
        return total.unsqueeze(-1) if keepdim else total

    # ------------------------------------------------------------------ checks
    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=0.0):
        for i, b in enumerate(self._blocks):
            ok, reason = b[0]._check_point_on_manifold(self._block(x, b), atol=atol, rtol=rtol)
            if not ok:
                return False, f"factor block {i} ({b[0].name}): {reason}"
        return True, None

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=0.0):
        for i, b in enumerate(self._blocks):
            ok, reason = b[0]._check_vector_on_tangent(self._block(x, b), self._block(u, b), atol=atol, rtol=rtol)
            if not ok:
                return False, f"factor block {i} ({b[0].name}): {reason}"
        return True, None

    # ------------------------------------------------------------------ metric
    def inner(self, x, u, v=None, *, keepdim=False):
        v = u if v is None else v
        return self._reduce(lambda m, x_, u_, v_: m.inner(x_, u_, v_), x, u, v, keepdim=keepdim)

    def component_inner(self, x, u, v=None):
        """One inner product per factor, ``(*batch, k)``."""
        v = u if v is None else v
        outs = [b[0].inner(*[self._block(t, b) for t in (x, u, v)]) for b in self._blocks]
        batch = torch.broadcast_shapes(*[o.shape[:-1] for o in outs])
        return torch.cat([o.expand(batch + o.shape[-1:]) for o in outs], dim=-1)

    def expand_component(self, s):
        """Tile the per-factor scalars ``(*batch, k)`` to the flat coordinates ``(*batch, D)``."""
        outs, col = [], 0
        for m, count, _, _ in self._blocks:
            sb = s[..., col : col + count].unsqueeze(-1)
            outs.append(sb.expand(sb.shape[:-1] + (m.numel,)).reshape(sb.shape[:-2] + (-1,)))
            col += count
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)

    def dist2(self, x, y, *, keepdim=False):
        return self._reduce(lambda m, x_, y_: m.dist2(x_, y_), x, y, keepdim=keepdim)

    def dist(self, x, y, *, keepdim=False):
        """``sqrt(Σ_i dist_i(x_i, y_i)²)``, zero gradient (not NaN) at ``x == y``."""
        d2 = self.dist2(x, y, keepdim=keepdim)
        return safe_sqrt(d2)

    # ------------------------------------------------------------------ kernel-ready distance
    @property
    def has_kernel_formula(self) -> bool:
        return all(m.has_kernel_formula for m in self.factors)

    @property
    def kernel_feature_dim(self) -> int:
        return sum(m.kernel_feature_dim for m in self.factors)

    def kernel_features(self, x):
        """Factor features concatenated, ``(*batch, Σ F_i)`` (see :meth:`Manifold.kernel_features`)."""
        return torch.cat([m.kernel_features(p) for m, p in zip(self.factors, self.split(x))], -1)

    def kernel_dist(self, a, b, ops):
        """``sqrt(Σ_i d_i²)`` over the factor slices of the features (each factor's own formula)."""
        total, start = None, 0
        for m in self.factors:
            stop = start + m.kernel_feature_dim
            d = m.kernel_dist(ops.slice(a, start, stop), ops.slice(b, start, stop), ops)
            total = d * d if total is None else total + d * d
            start = stop
        return ops.sqrt(total)

    def proju(self, x, u):
        return self._map(lambda m, x_, u_: m.proju(x_, u_), x, u)

    def egrad2rgrad(self, x, u):
        return self._map(lambda m, x_, u_: m.egrad2rgrad(x_, u_), x, u)

    def projx(self, x):
        return self._map(lambda m, x_: m.projx(x_), x)

    def expmap(self, x, u):
        return self._map(lambda m, x_, u_: m.expmap(x_, u_), x, u)

    def logmap(self, x, y):
        return self._map(lambda m, x_, y_: m.logmap(x_, y_), x, y)

    def transp(self, x, y, v):
        return self._map(lambda m, x_, y_, v_: m.transp(x_, y_, v_), x, y, v)

    def transp_follow_expmap(self, x, u, v):
        return self._map(lambda m, x_, u_, v_: m.transp_follow_expmap(x_, u_, v_), x, u, v)

    def expmap_transp(self, x, u, v):
        return self.expmap(x, u), self.transp_follow_expmap(x, u, v)

    def geodesic_velocity(self, x, u):
        return self._map(lambda m, x_, u_: m.geodesic_velocity(x_, u_), x, u)

    # ------------------------------------------------------------------ sampling
    def _sample(self, method: str, size, dtype, device, generator):
        size = self._check_size(size)
        batch = size[:-1]
        outs = [
            getattr(b[0], method)(*batch, b[1], *b[0].event_shape, dtype=dtype, device=device, generator=generator)
            for b in self._blocks
        ]
        return torch.cat([o.reshape(batch + (-1,)) for o in outs], dim=-1)

    def random(self, *size, dtype=None, device=None, generator=None):
        """Independent samples of every factor's ``random``; full shape ``size = (*batch, D)``."""
        return self._sample("random", size, dtype, device, generator)

    def random_base(self, *size, dtype=None, device=None, generator=None):
        """Independent samples of every factor's base distribution."""
        return self._sample("random_base", size, dtype, device, generator)

    def base_log_prob(self, x):
        """Sum of the factors' base log-densities, shape ``(*batch,)``."""
        return self._reduce(lambda m, x_: m.base_log_prob(x_), x)

    def extra_repr(self):
        return " × ".join(f"{b[0]!r}^{b[1]}" if b[1] > 1 else repr(b[0]) for b in self._blocks)
