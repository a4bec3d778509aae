"""Public operations of the kernel layer: kernel sums, logsumexp, k-NN, MMD, energy distance,
kernel density estimates, soft-min and barrier sums, on any manifold of :mod:`manifolds`.

Every operation takes points ``x: (*bx, N, *event_shape)`` and ``y: (*by, M, *event_shape)``
(leading batch dimensions broadcast), evaluates the manifold's kernel-ready geodesic distance
(:meth:`manifolds.Manifold.kernel_dist`: chord forms, float32-safe) and reduces over ``j``
without materialising the ``N × M`` matrix unless it is small (``backend`` and
``memory_budget``: see :mod:`kernels._backend`). Gradients flow to ``x``, ``y`` and the
weights on every backend (k-NN: through a gather, since KeOps min-reductions have none).
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from manifolds.euclidean import Euclidean
from manifolds.sphere import Sphere

from ._backend import reduce_pairs
from ._ops import TORCH

__all__ = [
    "KERNELS",
    "pairwise_distances",
    "kernel_sum",
    "kernel_logsumexp",
    "knn",
    "mmd2",
    "energy_distance",
    "kde",
    "softmin_distance",
    "barrier_sum",
]

#: radial kernels ``k(d)`` of the geodesic distance (``vmf``: spheres only)
KERNELS = ("gaussian", "laplacian", "imq", "vmf")


# ---------------------------------------------------------------------------- validation
def _check_points(manifold, x: torch.Tensor, name: str) -> int:
    ev = tuple(manifold.event_shape)
    if not torch.is_tensor(x):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < len(ev) + 1 or tuple(x.shape[x.dim() - len(ev) :]) != ev:
        raise ValueError(f"{name} must have shape (*batch, N, *{ev}) for {manifold.name}, got {tuple(x.shape)}")
    n = x.shape[x.dim() - len(ev) - 1]
    if n < 1:
        raise ValueError(f"{name} must hold at least one point, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {x.dtype}")
    return n


def _positive(v, name: str) -> float:
    if torch.is_tensor(v):
        if v.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got shape {tuple(v.shape)}")
        v = float(v)
    if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    return float(v)


def _kernel_term(manifold, kernel: str, bandwidth, log: bool):
    """``term(d, ops)``: ``k(d)`` or ``log k(d)`` of a radial kernel with bandwidth ``h``.

    gaussian ``exp(−d²/(2h²))``; laplacian ``exp(−d/h)``; imq (inverse multiquadric)
    ``(1 + d²/h²)^{−1/2}``; vmf (von Mises–Fisher, spheres) ``exp(κ(⟨x, y⟩ − 1)) =
    exp(−2κ sin²(d/2))`` with ``κ = 1/h²`` (Mardia & Jupp, Directional Statistics, §9.3.2).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if kernel == "vmf" and not isinstance(manifold, Sphere):
        raise ValueError(f"the 'vmf' kernel is defined on spheres only, got {manifold.name}")
    h = _positive(bandwidth, "bandwidth")
    if kernel == "gaussian":
        c = -0.5 / (h * h)

        def term(d, ops):
            q = c * (d * d)
            return q if log else ops.exp(q)

    elif kernel == "laplacian":
        c = -1.0 / h

        def term(d, ops):
            return c * d if log else ops.exp(c * d)

    elif kernel == "imq":
        c = 1.0 / (h * h)

        def term(d, ops):
            q = 1 + c * (d * d)
            return -0.5 * ops.log(q) if log else q ** -0.5

    else:
        kappa = 1.0 / (h * h)

        def term(d, ops):
            s = ops.sin(0.5 * d)
            q = (-2 * kappa) * (s * s)
            return q if log else ops.exp(q)

    return term


def _common(manifold, x, y):
    _check_points(manifold, x, "x")
    if y is None:
        return x
    _check_points(manifold, y, "y")
    return y


# ---------------------------------------------------------------------------- distances
def pairwise_distances(manifold, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Dense matrix of geodesic distances ``D_ij = d(x_i, y_j)`` (for small ``N · M``).

    Args:
        manifold: a :class:`manifolds.Manifold`.
        x: ``(*bx, N, *event_shape)``; y: ``(*by, M, *event_shape)`` (default ``x``).

    Returns:
        ``(*batch, N, M)`` distances (the manifold's units, e.g. rad), memory ``O(N·M)``.

    Raises:
        ValueError: malformed inputs.
    """
    y = _common(manifold, x, y)
    fx, fy = manifold.kernel_features(x), manifold.kernel_features(y)
    return manifold.kernel_dist(fx.unsqueeze(-2), fy.unsqueeze(-3), TORCH)[..., 0]


# ---------------------------------------------------------------------------- kernel sums
def kernel_sum(
    manifold,
    x: torch.Tensor,
    y: torch.Tensor,
    b: Optional[torch.Tensor] = None,
    *,
    kernel: str = "gaussian",
    bandwidth=1.0,
    backend: Optional[str] = None,
    memory_budget: Optional[float] = None,
) -> torch.Tensor:
    """Kernel sum ``out_i = Σ_j k(d(x_i, y_j)) b_j`` (the kernel matrix-vector product).

    Args:
        manifold: a :class:`manifolds.Manifold`.
        x: ``(*bx, N, *event_shape)``; y: ``(*by, M, *event_shape)``.
        b: ``(*batch, M)`` or ``(*batch, M, E)`` weights; None means ones.
        kernel: one of :data:`KERNELS`; bandwidth: ``h > 0`` in distance units.
        backend: ``"auto"`` / ``"dense"`` / ``"chunked"`` / ``"keops"`` (None: environment
            variable ``MANIFOLD_RL_KERNEL_BACKEND``, else auto); memory_budget: bytes.

    Returns:
        ``(*batch, N)``, or ``(*batch, N, E)`` for vector weights.

    Raises:
        ValueError: malformed points or weights, unknown kernel or backend, bad bandwidth.
    """
    y = _common(manifold, x, y)
    term = _kernel_term(manifold, kernel, bandwidth, log=False)
    return reduce_pairs(manifold, x, y, term, reduction="sum", weights=b, backend=backend, memory_budget=memory_budget)


def kernel_logsumexp(
    manifold,
    x: torch.Tensor,
    y: torch.Tensor,
    log_weights: Optional[torch.Tensor] = None,
    *,
    kernel: str = "gaussian",
    bandwidth=1.0,
    backend: Optional[str] = None,
    memory_budget: Optional[float] = None,
) -> torch.Tensor:
    """``out_i = log Σ_j exp(log k(d(x_i, y_j)) + w_j)``, stable for tiny kernel values.

    Args:
        log_weights: ``(*batch, M)`` log-weights ``w``; None means zeros.
        (others as :func:`kernel_sum`).

    Returns:
        ``(*batch, N)``.
    """
    y = _common(manifold, x, y)
    term = _kernel_term(manifold, kernel, bandwidth, log=True)
    return reduce_pairs(manifold, x, y, term, reduction="logsumexp", weights=log_weights, backend=backend, memory_budget=memory_budget)


# ---------------------------------------------------------------------------- k-NN
def knn(
    manifold,
    x: torch.Tensor,
    y: torch.Tensor,
    k: int,
    *,
    backend: Optional[str] = None,
    memory_budget: Optional[float] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest points of ``y`` to each point of ``x`` in geodesic distance.

    The indices come from an arg-k-min (no gradient on any backend; KeOps min-reductions
    have none, refs/kernels.md §1.4); the distances are then recomputed in torch from the
    gathered neighbours, so gradients flow to ``x`` and ``y``.

    Args:
        x: ``(*bx, N, *event_shape)`` queries; y: ``(*by, M, *event_shape)`` reference points.
        k: ``1 <= k <= M``.

    Returns:
        ``(distances, indices)``, both ``(*batch, N, k)``, ascending distances; ties in any order.

    Raises:
        ValueError: malformed inputs or ``k`` out of range.
    """
    y = _common(manifold, x, y)
    m = y.shape[y.dim() - len(manifold.event_shape) - 1]
    if not (isinstance(k, int) and 1 <= k <= m):
        raise ValueError(f"k must be an int in [1, M={m}], got {k!r}")
    dtype = x.dtype
    if dtype in (torch.float16, torch.bfloat16):
        x, y = x.float(), y.float()
    fx, fy = manifold.kernel_features(x), manifold.kernel_features(y.to(x.dtype))
    with torch.no_grad():
        idx = reduce_pairs(manifold, fx.detach(), fy.detach(), None, reduction="argkmin", k=k, backend=backend, memory_budget=memory_budget, features=True)
    batch = idx.shape[:-2]
    fy = fy.expand(batch + fy.shape[-2:])
    fx = fx.expand(batch + fx.shape[-2:])
    nbrs = torch.gather(fy.unsqueeze(-3).expand(batch + (idx.shape[-2],) + fy.shape[-2:]), -2, idx.unsqueeze(-1).expand(idx.shape + fy.shape[-1:]))
    dist = manifold.kernel_dist(fx.unsqueeze(-2), nbrs, TORCH)[..., 0]
    return dist.to(dtype), idx


# ---------------------------------------------------------------------------- two-sample statistics
def _mean_pairs(manifold, fx, fy, term, same: bool, backend, memory_budget) -> torch.Tensor:
    """Mean of ``term(d(x_i, y_j))`` over all pairs, or over ``i ≠ j`` when ``same`` (U-statistic)."""
    s = reduce_pairs(manifold, fx, fy, term, reduction="sum", backend=backend, memory_budget=memory_budget, features=True).sum(-1)
    n, m = fx.shape[-2], fy.shape[-2]
    if not same:
        return s / (n * m)
    diag = term(manifold.kernel_dist(fx, fx, TORCH), TORCH)[..., 0].sum(-1)
    return (s - diag.to(s.dtype)) / (n * (n - 1))


def _two_sample(manifold, x, y, name):
    _common(manifold, x, y)
    n = x.shape[x.dim() - len(manifold.event_shape) - 1]
    m = y.shape[y.dim() - len(manifold.event_shape) - 1]
    if n < 2 or m < 2:
        raise ValueError(f"{name} needs at least 2 samples on each side, got {n} and {m}")
    return manifold.kernel_features(x), manifold.kernel_features(y)


def mmd2(
    manifold,
    x: torch.Tensor,
    y: torch.Tensor,
    bandwidth=1.0,
    *,
    kernel: str = "gaussian",
    backend: Optional[str] = None,
    memory_budget: Optional[float] = None,
) -> torch.Tensor:
    """Unbiased squared maximum mean discrepancy (Gretton et al., JMLR 13, 2012, Lemma 6):

    ``MMD²_u = 1/(n(n−1)) Σ_{i≠i'} k(x_i, x_i') + 1/(m(m−1)) Σ_{j≠j'} k(y_j, y_j') − 2/(nm) Σ_{i,j} k(x_i, y_j)``

    with a radial kernel of the geodesic distance. A geodesic Gaussian kernel is not
    positive definite on every manifold for every bandwidth (Feragen et al., CVPR 2015),
    so the estimate can be slightly negative; it is still a consistent two-sample
    discrepancy for comparing models.

    Args:
        x: ``(*bx, N, *event_shape)``, ``N >= 2``; y: ``(*by, M, *event_shape)``, ``M >= 2``.
        bandwidth, kernel, backend, memory_budget: as :func:`kernel_sum`.

    Returns:
        ``(*batch,)`` (a scalar without batch dimensions).

    Raises:
        ValueError: fewer than two samples on a side, or as :func:`kernel_sum`.
    """
    fx, fy = _two_sample(manifold, x, y, "mmd2")
    term = _kernel_term(manifold, kernel, bandwidth, log=False)
    kxx = _mean_pairs(manifold, fx, fx, term, True, backend, memory_budget)
    kyy = _mean_pairs(manifold, fy, fy, term, True, backend, memory_budget)
    kxy = _mean_pairs(manifold, fx, fy, term, False, backend, memory_budget)
    return kxx + kyy - 2 * kxy


def energy_distance(
    manifold,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    backend: Optional[str] = None,
    memory_budget: Optional[float] = None,
) -> torch.Tensor:
    """Energy distance ``2 E d(X, Y) − E d(X, X') − E d(Y, Y')`` with the geodesic distance
    (Székely & Rizzo, J. Stat. Plan. Inference 143, 2013, eq. (2)); within-sample terms are
    U-statistics (``i ≠ i'``). Equals the MMD² of the distance-induced kernel (Sejdinovic et
    al., Ann. Statist. 41, 2013).

    Args:
        x: ``(*bx, N, *event_shape)``, ``N >= 2``; y: ``(*by, M, *event_shape)``, ``M >= 2``.

    Returns:
        ``(*batch,)`` in distance units.
    """
    fx, fy = _two_sample(manifold, x, y, "energy_distance")

    def term(d, ops):
        return d

    dxy = _mean_pairs(manifold, fx, fy, term, False, backend, memory_budget)
    dxx = _mean_pairs(manifold, fx, fx, term, True, backend, memory_budget)
    dyy = _mean_pairs(manifold, fy, fy, term, True, backend, memory_budget)
    return 2 * dxy - dxx - dyy


# ---------------------------------------------------------------------------- densities
def _log_normaliser(manifold, kernel: str, h: float) -> Optional[float]:
    """``log`` of the kernel's normalising constant where it has a closed form, else None."""
    if kernel == "gaussian" and isinstance(manifold, Euclidean):
        dim = max(manifold.numel, 1)
        return -0.5 * dim * math.log(2 * math.pi * h * h)
    if kernel == "vmf" and isinstance(manifold, Sphere):
        from scipy.special import ive

        p = manifold.dim + 1
        kappa = 1.0 / (h * h)
        nu = p / 2 - 1
        # log C_p(κ) + κ with I_ν(κ) = ive(ν, κ) e^κ (the kernel is exp(κ(⟨x, μ⟩ − 1)))
        return nu * math.log(kappa) - (p / 2) * math.log(2 * math.pi) - math.log(ive(nu, kappa))
    return None


def kde(
    manifold,
    x: torch.Tensor,
    samples: torch.Tensor,
    bandwidth,
    *,
    kernel: Optional[str] = None,
    weights: Optional[torch.Tensor] = None,
    normalized: bool = True,
    backend: Optional[str] = None,
    memory_budget: Optional[float] = None,
) -> torch.Tensor:
    """Log kernel density estimate ``log p̂(x_i) = log Σ_j w_j K_h(x_i, s_j)``.

    ``K_h`` is a probability density in ``x`` where its normalising constant has a closed
    form: the von Mises–Fisher kernel on ``Sⁿ`` (``C_p(κ) = κ^{p/2−1} / ((2π)^{p/2} I_{p/2−1}(κ))``,
    ``p = n + 1``, ``κ = 1/h²``; Mardia & Jupp 2000, eq. (9.3.4); Hall, Watson & Cabrera,
    Biometrika 74, 1987) and the Gaussian on Euclidean space; the density is then with
    respect to the Riemannian volume (surface measure on the sphere: it integrates to 1 over
    ``Sⁿ``). Elsewhere pass ``normalized=False`` for the unnormalised ``log Σ_j w_j k(d)``.

    Args:
        x: ``(*bx, N, *event_shape)`` evaluation points; samples: ``(*by, M, *event_shape)``.
        bandwidth: ``h > 0`` (rad on spheres).
        kernel: default ``"vmf"`` on spheres, ``"gaussian"`` elsewhere.
        weights: ``(*batch, M)`` non-negative sample weights (normalised to sum 1), or None (``1/M``).
        normalized: require a normalised kernel (raise ValueError when none is known).

    Returns:
        ``(*batch, N)`` log-densities (nats).

    Raises:
        ValueError: no closed-form normalisation for this manifold and kernel with
            ``normalized=True``; negative weights; or as :func:`kernel_sum`.
    """
    samples = _common(manifold, x, samples)
    if kernel is None:
        kernel = "vmf" if isinstance(manifold, Sphere) else "gaussian"
    term = _kernel_term(manifold, kernel, bandwidth, log=True)
    h = _positive(bandwidth, "bandwidth")
    logc = 0.0
    if normalized:
        logc = _log_normaliser(manifold, kernel, h)
        if logc is None:
            raise ValueError(
                f"no closed-form normalisation of the {kernel!r} kernel on {manifold.name} "
                "(known: 'vmf' on Sphere, 'gaussian' on Euclidean); pass normalized=False"
            )
    m = samples.shape[samples.dim() - len(manifold.event_shape) - 1]
    if weights is None:
        logw = None
        shift = -math.log(m)
    else:
        if (weights < 0).any():
            raise ValueError("weights must be non-negative")
        logw = torch.log(weights / weights.sum(-1, keepdim=True))
        shift = 0.0
    out = reduce_pairs(manifold, x, samples, term, reduction="logsumexp", weights=logw, backend=backend, memory_budget=memory_budget)
    return out + (shift + logc)


# ---------------------------------------------------------------------------- collision terms
def softmin_distance(
    manifold,
    x: torch.Tensor,
    y: torch.Tensor,
    temperature,
    *,
    backend: Optional[str] = None,
    memory_budget: Optional[float] = None,
) -> torch.Tensor:
    """Smooth minimum distance ``−τ log Σ_j exp(−d(x_i, y_j)/τ)`` (≤ ``min_j d``, within ``τ log M``).

    A differentiable surrogate of the distance to a point set (obstacle point clouds in
    RMPflow collision leaves); gradients are the softmax-weighted distance gradients.

    Args:
        x: ``(*bx, N, *event_shape)``; y: ``(*by, M, *event_shape)``; temperature: ``τ > 0``.

    Returns:
        ``(*batch, N)``.
    """
    y = _common(manifold, x, y)
    tau = _positive(temperature, "temperature")
    c = -1.0 / tau

    def term(d, ops):
        return c * d

    return -tau * reduce_pairs(manifold, x, y, term, reduction="logsumexp", backend=backend, memory_budget=memory_budget)


def barrier_sum(
    manifold,
    x: torch.Tensor,
    y: torch.Tensor,
    radius,
    *,
    power: int = 2,
    weights: Optional[torch.Tensor] = None,
    backend: Optional[str] = None,
    memory_budget: Optional[float] = None,
) -> torch.Tensor:
    """Compactly supported barrier ``Σ_j b_j max(r − d(x_i, y_j), 0)^p`` (zero beyond ``r``).

    The collision potential of point-cloud obstacles (refs/kernels.md §2.1, "RMP-style"):
    only points closer than ``radius`` contribute; ``p >= 2`` gives a C¹ potential.

    Args:
        x: ``(*bx, N, *event_shape)``; y: ``(*by, M, *event_shape)``.
        radius: ``r > 0``; power: int ``p >= 1``; weights: ``(*batch, M)`` or None (ones).

    Returns:
        ``(*batch, N)``.
    """
    y = _common(manifold, x, y)
    r = _positive(radius, "radius")
    if not (isinstance(power, int) and power >= 1):
        raise ValueError(f"power must be an int >= 1, got {power!r}")

    def term(d, ops):
        g = ops.relu(r - d)
        out = g
        for _ in range(power - 1):
            out = out * g
        return out

    return reduce_pairs(manifold, x, y, term, reduction="sum", weights=weights, backend=backend, memory_budget=memory_budget)
