r"""Heat kernels, their scores, and exact / approximate samplers of Brownian motion.

**Time convention (used by the whole subpackage).** Brownian motion on a Riemannian
manifold is the diffusion with generator ``½ Δ`` (Δ the Laplace–Beltrami operator), so
its transition density is the heat kernel

.. math:: p_t(x \mid x_0) = \big(e^{t \Delta / 2}\big)(x, x_0), \qquad \sigma^2 = t,

and in ℝⁿ it is the Gaussian ``N(x₀, t I)``. De Bortoli et al. ("Riemannian Score-Based
Generative Modelling", NeurIPS 2022, RSGM) write the series with ``e^{-λ_k t}`` (generator
Δ): their ``t`` is our ``t / 2``. Lou et al. ("Scaling Riemannian Diffusion Models",
NeurIPS 2023) parameterise by ``σ`` with ``σ² = t`` (our convention).

**Radial heat kernels** (every kernel below depends on ``θ = d(x, x₀)`` only; the score is
``∇_x log p_t = ∂_θ log p_t · ∇_x θ = -∂_θ log p_t · log_x(x₀) / θ``):

* Sⁿ (radius 1, λ = (n-1)/2, eigenvalues of -Δ: ``k(k+n-1)``), eigenfunction series
  (addition theorem for spherical harmonics; RSGM §4, Lou et al. §3.2):
  ``p_t(θ) = |Sⁿ|⁻¹ Σ_k e^{-k(k+n-1)t/2} (k+λ)/λ · C_k^λ(cos θ)`` with Gegenbauer ``C_k^λ``.
  Small-time (Varadhan / WKB, leading term of the Minakshisundaram–Pleijel parametrix with
  the Van Vleck–Morette correction ``(θ / sin θ)^{(n-1)/2}``, and the ground-state shift
  ``e^{(n-1)² t / 8}`` that makes it exact on S³ up to the images):
  ``p_t(θ) ≈ (2πt)^{-n/2} (θ/sin θ)^{(n-1)/2} e^{-θ²/2t + (n-1)² t/8}``; its score is
  ``[(n-1)/2 (1/θ - cot θ) - θ/t] · (-log_x x₀)/θ`` (Lou et al., Eq. for the S² ansatz).
* SO(3) with ``<u, v> = ½ tr(uᵀv)`` (so ``dist`` = rotation angle θ): SO(3) is S³ of
  radius 2 modulo ±1, the eigenvalues of -Δ are ``l(l+1)`` with multiplicity ``(2l+1)²``
  and characters ``χ_l(θ) = sin((2l+1)θ/2)/sin(θ/2) = 1 + 2 Σ_{m=1}^{l} cos(mθ)``:
  ``p_t(θ) = (8π²)⁻¹ Σ_l (2l+1) e^{-l(l+1)t/2} χ_l(θ)``  (character series, Lou et al. §3.2).
  The wrapped form (exact; it is the S³ closed form ``(4πs)^{-3/2} e^{s} Σ (r+2πn)/sin r ·
  e^{-(r+2πn)²/4s}`` rescaled to radius 2 and summed over ±q):
  ``p_t(θ) = (2πt)^{-3/2} e^{t/8} Σ_{k∈ℤ} φ_k / (2 sin(φ_k/2)) · e^{-φ_k²/2t}``, ``φ_k = θ + 2πk``.
* Torus Tᵈ (flat, per angle δ = x - x₀ wrapped to [-π, π)): Fourier series
  ``p_t(δ) = (2π)⁻¹ (1 + 2 Σ_k e^{-k² t/2} cos kδ)`` or the wrapped Gaussian
  ``(2πt)^{-1/2} Σ_m e^{-(δ + 2πm)²/2t}`` (both exact; Lou et al. use the first for large
  and the second for small σ).

The ``"auto"`` method switches regime at a time threshold (``t_switch``) exactly like Lou et
al.; the series is truncated so that the first dropped term is below the dtype's epsilon at
the threshold. On Sⁿ (n ≠ 1, 3) the small-time form is asymptotic (relative error O(t));
see ``tests/test_heat_kernel.py`` for the measured agreement.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from ..base import Manifold
from ..euclidean import Euclidean
from ..lie import SO3, _hat3, quaternion_to_matrix
from ..sphere import Sphere
from ..torus import Torus

__all__ = [
    "sphere_radial_log_heat_kernel",
    "so3_radial_log_heat_kernel",
    "circle_log_heat_kernel",
    "heat_kernel_log_prob",
    "heat_kernel_score",
    "varadhan_score",
    "has_heat_kernel",
    "tangent_normal",
    "geodesic_random_walk",
    "sample_heat_kernel",
]

_TWO_PI = 2.0 * math.pi

#: default regime thresholds in t = σ² (series at and above, small-time form below)
SPHERE_T_SWITCH = 0.1
SO3_T_SWITCH = 2.0
TORUS_T_SWITCH = 1.0


def _eps(dtype) -> float:
    return torch.finfo(dtype).eps


def _n_terms_for(t_switch: float, shift: float, dtype) -> int:
    """Smallest K with ``exp(-K(K + shift) t_switch / 2) < eps`` (truncation below rounding)."""
    target = 2.0 * -math.log(_eps(dtype)) / t_switch
    k = 0.5 * (-shift + math.sqrt(shift * shift + 4 * target))
    return int(math.ceil(k)) + 2


def _as_t(t, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(t, dtype=like.dtype, device=like.device)


# ---------------------------------------------------------------------- elementary helpers
def _log_x_over_sin(x: torch.Tensor) -> torch.Tensor:
    """``log(x / sin x)`` for ``x in [0, π)``; Taylor series below 0.1 (no 0/0)."""
    small = x < 0.1
    xs = torch.where(small, torch.full_like(x, 0.5), x)
    x2 = x * x
    taylor = x2 * (1 / 6 + x2 * (1 / 180 + x2 * (1 / 2835 + x2 / 37800)))
    sin = torch.sin(xs).clamp_min(torch.finfo(x.dtype).tiny)
    return torch.where(small, taylor, torch.log(xs / sin))


def _h(x: torch.Tensor) -> torch.Tensor:
    """``(1/x - cot x) / x = (sin x - x cos x) / (x² sin x)`` (1/3 at 0); Taylor below 0.1."""
    small = x < 0.1
    xs = torch.where(small, torch.full_like(x, 0.5), x)
    x2 = x * x
    taylor = 1 / 3 + x2 * (1 / 45 + x2 * (2 / 945 + x2 * (1 / 4725 + x2 * 2 / 93555)))
    sin = torch.sin(xs)
    sin = torch.where(sin.abs() < torch.finfo(x.dtype).tiny, torch.full_like(sin, torch.finfo(x.dtype).tiny), sin)
    return torch.where(small, taylor, (sin - xs * torch.cos(xs)) / (xs * xs * sin))


def _exp_neg(e: torch.Tensor) -> torch.Tensor:
    """``exp(e)`` flushed to 0 below the smallest normal number (CPU subnormals are ~100x slower)."""
    lo = math.log(torch.finfo(e.dtype).tiny)
    return torch.exp(e.clamp_min(lo)) * (e > lo)


def _gegenbauer_sum(z: torch.Tensor, coef: torch.Tensor, lam: float) -> torch.Tensor:
    """``Σ_k coef[..., k] C_k^λ(z)`` by the three-term recurrence (Abramowitz & Stegun 22.7.3)."""
    K = coef.shape[-1]
    c_prev = torch.ones_like(z)
    out = coef[..., 0] * c_prev
    if K == 1:
        return out
    c = 2 * lam * z
    out = out + coef[..., 1] * c
    for k in range(2, K):
        c_prev, c = c, (2 * z * (k + lam - 1) * c - (k + 2 * lam - 2) * c_prev) / k
        out = out + coef[..., k] * c
    return out


def _sphere_log_volume(n: int) -> float:
    m = n + 1
    return math.log(2.0) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)


# ---------------------------------------------------------------------- radial kernels
def _sphere_series(theta, t, n, n_terms, need_grad=True):
    lam = 0.5 * (n - 1)
    k = torch.arange(n_terms + 1, dtype=theta.dtype, device=theta.device)
    w = _exp_neg(-0.5 * k * (k + n - 1) * t[..., None])
    c = w * (k + lam) / lam
    z = torch.cos(theta).clamp(-1.0, 1.0)
    # one recurrence for z and |z| (C_k^λ(|z|) >= |C_k^λ(z)|: the rounding-error scale)
    s, s_abs = _gegenbauer_sum(torch.stack([z, z.abs()]), c, lam).unbind(0)
    tiny = torch.finfo(theta.dtype).tiny
    logp = torch.log(s.clamp_min(tiny)) - _sphere_log_volume(n)
    dlogp = None
    if need_grad:
        ds = _gegenbauer_sum(z, (2 * lam) * c[..., 1:], lam + 1)  # d/dz C_k^λ = 2λ C_{k-1}^{λ+1}
        dlogp = -torch.sin(theta) * ds / s.clamp_min(tiny)
    reliable = s > 1e3 * _eps(theta.dtype) * s_abs
    return logp, dlogp, reliable


def _sphere_wkb(theta, t, n):
    tiny = torch.finfo(theta.dtype).tiny
    th = theta.clamp(0.0, math.pi * (1 - 1e-7))
    logp = (
        -0.5 * n * torch.log(_TWO_PI * t)
        + 0.5 * (n - 1) * _log_x_over_sin(th)
        - th * th / (2 * t).clamp_min(tiny)
        + (n - 1) ** 2 * t / 8
    )
    dlogp = -th / t + 0.5 * (n - 1) * th * _h(th)
    return logp, dlogp


def _sphere_log_p(theta, t, n, t_switch=SPHERE_T_SWITCH):
    """``log p_t(θ)`` of the ``"auto"`` regime without the derivative (used by the sampler).

    Evaluates the series only where ``t >= t_switch`` (one host synchronisation)."""
    out, _ = _sphere_wkb(theta, t, n)
    big = (t >= t_switch).nonzero().squeeze(-1)
    if big.numel():
        n_terms = _n_terms_for(t_switch, n - 1, theta.dtype)
        lp_s, _, ok = _sphere_series(theta[big], t[big], n, n_terms, need_grad=False)
        out = out.clone()
        out[big] = torch.where(ok, lp_s, out[big])
    return out


def sphere_radial_log_heat_kernel(
    theta: torch.Tensor,
    t,
    n: int = 2,
    *,
    method: str = "auto",
    n_terms: Optional[int] = None,
    t_switch: float = SPHERE_T_SWITCH,
) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Heat kernel of ``½Δ`` on the unit sphere Sⁿ as a function of the angle, and its θ-derivative.

    Args:
        theta: ``(*batch,)`` angles ``d(x, x₀)`` in rad, in ``[0, π]``.
        t: scalar or ``(*batch,)`` diffusion time (``σ² = t``), ``t > 0``.
        n: intrinsic dimension (``2`` for S²), ``n >= 2``.
        method: ``"series"`` (Gegenbauer eigen-expansion, exact as ``n_terms → ∞``),
            ``"varadhan"`` (small-time WKB form, see the module doc) or ``"auto"``
            (series for ``t >= t_switch`` where the summed series is above its rounding
            error, WKB elsewhere; Lou et al. 2023 regime switch).
        n_terms: highest degree K of the series (default: enough for ``t_switch`` in the dtype).
        t_switch: regime threshold of ``"auto"``.

    Returns:
        ``(log p_t(θ), ∂_θ log p_t(θ))``, each ``(*batch,)``. ``p_t`` is a density w.r.t. the
        Riemannian volume of Sⁿ (``∫ p_t dvol = 1``).

    Raises:
        ValueError: ``n < 2`` (use :class:`~manifolds.Torus` for the circle) or unknown ``method``.
    """
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"sphere heat kernel needs intrinsic dimension n >= 2 (use Torus for n=1), got {n!r}")
    t = _as_t(t, theta)
    theta, t = torch.broadcast_tensors(theta, t)
    if method == "varadhan":
        return _sphere_wkb(theta, t, n)
    if n_terms is None:
        n_terms = _n_terms_for(t_switch if method == "auto" else t_switch, n - 1, theta.dtype)
    if method == "series":
        lp, dlp, _ = _sphere_series(theta, t, n, n_terms)
        return lp, dlp
    if method != "auto":
        raise ValueError(f"method must be 'auto', 'series' or 'varadhan', got {method!r}")
    lp_s, dlp_s, ok = _sphere_series(theta, t.clamp_min(t_switch), n, n_terms)
    lp_w, dlp_w = _sphere_wkb(theta, t, n)
    use = ok & (t >= t_switch)
    return torch.where(use, lp_s, lp_w), torch.where(use, dlp_s, dlp_w)


def _so3_series(theta, t, n_terms):
    l = torch.arange(n_terms + 1, dtype=theta.dtype, device=theta.device)
    w = (2 * l + 1) * _exp_neg(-0.5 * l * (l + 1) * t[..., None])
    B = torch.flip(torch.cumsum(torch.flip(w, [-1]), -1), [-1])  # B_m = Σ_{l >= m} w_l
    m = l
    cos = torch.cos(m * theta[..., None])
    mult = torch.where(m == 0, torch.ones_like(m), 2 * torch.ones_like(m))
    s = (mult * B * cos).sum(-1)
    ds = -(2 * m * B * torch.sin(m * theta[..., None])).sum(-1)
    tiny = torch.finfo(theta.dtype).tiny
    logp = torch.log(s.clamp_min(tiny)) - math.log(8 * math.pi**2)
    return logp, ds / s.clamp_min(tiny)


def _so3_wrapped(theta, t, n_images):
    dtype = theta.dtype
    th_min = 1e-4 if dtype == torch.float64 else 1e-2
    th_c = theta.clamp_min(th_min)
    x = 0.5 * theta
    a0 = torch.exp(_log_x_over_sin(x))
    q0 = 0.5 * x * _h(x)  # 1/θ - ½ cot(θ/2)
    num = a0
    dnum = a0 * q0
    dimg = torch.zeros_like(a0)
    half_sin = torch.sin(0.5 * th_c)
    cot = torch.cos(0.5 * th_c) / half_sin
    for k in range(-n_images, n_images + 1):
        if k == 0:
            continue
        phi = th_c + _TWO_PI * k
        sgn = -1.0 if k % 2 else 1.0
        a = phi / (2 * sgn * half_sin) * _exp_neg(-(phi * phi - th_c * th_c) / (2 * t))
        q = 1 / phi - 0.5 * cot - _TWO_PI * k / t
        num = num + a
        dimg = dimg + a * q
    tiny = torch.finfo(dtype).tiny
    # the image pairs (k, -k) are even in θ: below th_min their derivative is continued linearly
    dnum = dnum + dimg * (theta / th_c)
    logp = -1.5 * torch.log(_TWO_PI * t) + t / 8 - theta * theta / (2 * t) + torch.log(num.clamp_min(tiny))
    dlogp = -theta / t + dnum / num.clamp_min(tiny)
    return logp, dlogp


def so3_radial_log_heat_kernel(
    theta: torch.Tensor,
    t,
    *,
    method: str = "auto",
    n_terms: Optional[int] = None,
    n_images: int = 3,
    t_switch: float = SO3_T_SWITCH,
) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Heat kernel of ``½Δ`` on SO(3) (metric ``½ tr(uᵀv)``) in the rotation angle θ, and its θ-derivative.

    Args:
        theta: ``(*batch,)`` rotation angles ``SO3.dist(x, x₀)`` in ``[0, π]``.
        t: scalar or ``(*batch,)`` time ``t = σ² > 0``.
        method: ``"series"`` (character series, degree ``n_terms``), ``"wrapped"`` (sum over
            ``|k| <= n_images`` images ``θ + 2πk``; exact as ``n_images → ∞``),
            ``"varadhan"`` (``(2πt)^{-3/2} e^{-θ²/2t}``, score ``log_x x₀ / t``) or ``"auto"``
            (wrapped below ``t_switch``, series above).
        n_terms: highest degree L of the series (default: enough for ``t_switch``).

    Returns:
        ``(log p_t(θ), ∂_θ log p_t(θ))``, each ``(*batch,)``, density w.r.t. the volume
        ``16π sin²(θ/2) dθ dΩ/(4π)`` (total volume 8π²).

    Raises:
        ValueError: unknown ``method``.
    """
    t = _as_t(t, theta)
    theta, t = torch.broadcast_tensors(theta, t)
    if n_terms is None:
        n_terms = _n_terms_for(t_switch, 1, theta.dtype)
    if method == "series":
        return _so3_series(theta, t, n_terms)
    if method == "wrapped":
        return _so3_wrapped(theta, t, n_images)
    if method == "varadhan":
        return -1.5 * torch.log(_TWO_PI * t) - theta * theta / (2 * t), -theta / t
    if method != "auto":
        raise ValueError(f"method must be 'auto', 'series', 'wrapped' or 'varadhan', got {method!r}")
    big = t >= t_switch
    lp_s, dlp_s = _so3_series(theta, t.clamp_min(t_switch), n_terms)
    lp_w, dlp_w = _so3_wrapped(theta, t.clamp_max(t_switch), n_images)
    return torch.where(big, lp_s, lp_w), torch.where(big, dlp_s, dlp_w)


def circle_log_heat_kernel(
    delta: torch.Tensor,
    t,
    *,
    method: str = "auto",
    n_terms: Optional[int] = None,
    n_images: int = 4,
    t_switch: float = TORUS_T_SWITCH,
) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Heat kernel of ``½ d²/dδ²`` on the circle ℝ/2πℤ, and its δ-derivative.

    Args:
        delta: ``(*batch,)`` angle differences ``x - x₀`` (any real value; periodic).
        t: scalar or broadcastable time ``t = σ² > 0``.
        method: ``"fourier"`` (``n_terms`` cosines), ``"wrapped"`` (images ``|m| <= n_images``),
            or ``"auto"`` (wrapped below ``t_switch``, Fourier above).

    Returns:
        ``(log p_t(δ), ∂_δ log p_t(δ))`` (density w.r.t. dδ on [0, 2π)).

    Raises:
        ValueError: unknown ``method``.
    """
    t = _as_t(t, delta)
    delta, t = torch.broadcast_tensors(delta, t)
    d = torch.atan2(torch.sin(delta), torch.cos(delta))
    if n_terms is None:
        n_terms = _n_terms_for(t_switch, 0, delta.dtype)

    def fourier(tt):
        k = torch.arange(1, n_terms + 1, dtype=d.dtype, device=d.device)
        w = _exp_neg(-0.5 * k * k * tt[..., None])
        s = 1 + 2 * (w * torch.cos(k * d[..., None])).sum(-1)
        ds = -2 * (k * w * torch.sin(k * d[..., None])).sum(-1)
        tiny = torch.finfo(d.dtype).tiny
        return torch.log(s.clamp_min(tiny)) - math.log(_TWO_PI), ds / s.clamp_min(tiny)

    def wrapped(tt):
        m = torch.arange(-n_images, n_images + 1, dtype=d.dtype, device=d.device)
        y = d[..., None] + _TWO_PI * m
        e = -y * y / (2 * tt[..., None])
        lp = torch.logsumexp(e, -1) - 0.5 * torch.log(_TWO_PI * tt)
        dlp = (torch.softmax(e, -1) * (-y / tt[..., None])).sum(-1)
        return lp, dlp

    if method == "fourier":
        return fourier(t)
    if method == "wrapped":
        return wrapped(t)
    if method != "auto":
        raise ValueError(f"method must be 'auto', 'fourier' or 'wrapped', got {method!r}")
    big = t >= t_switch
    lf, dlf = fourier(t.clamp_min(t_switch))
    lw, dlw = wrapped(t.clamp_max(t_switch))
    return torch.where(big, lf, lw), torch.where(big, dlf, dlw)


# ---------------------------------------------------------------------- manifold-level API
def has_heat_kernel(manifold: Manifold) -> bool:
    """Whether :func:`heat_kernel_log_prob` has a closed form for ``manifold``.

    True for :class:`~manifolds.Sphere` (n >= 2), :class:`~manifolds.SO3`,
    :class:`~manifolds.Torus` and :class:`~manifolds.Euclidean`.
    """
    if isinstance(manifold, Sphere):
        return manifold.dim >= 2
    return isinstance(manifold, (SO3, Torus, Euclidean))


def _check_t(t, x, batch_ndim):
    t = _as_t(t, x)
    if t.dim() > batch_ndim:
        raise ValueError(f"t must be a scalar or have the batch shape of the points, got shape {tuple(t.shape)}")
    return t


def _radial(manifold, x, x0, t, method, **kw):
    theta = manifold.dist(x, x0)
    if isinstance(manifold, Sphere):
        return theta, sphere_radial_log_heat_kernel(theta, t, manifold.dim, method=method, **kw)
    return theta, so3_radial_log_heat_kernel(theta, t, method=method, **kw)


def heat_kernel_log_prob(manifold: Manifold, x: torch.Tensor, x0: torch.Tensor, t, *, method: str = "auto", **kw):
    r"""``log p_t(x | x₀)`` of Brownian motion (generator ½Δ) w.r.t. the Riemannian volume.

    Args:
        manifold: :class:`~manifolds.Sphere` (n >= 2), :class:`~manifolds.SO3`,
            :class:`~manifolds.Torus` or :class:`~manifolds.Euclidean`.
        x, x0: ``(*batch, *event_shape)`` points (broadcasting).
        t: scalar or ``(*batch,)`` times ``t = σ² > 0``.
        method: regime (see :func:`sphere_radial_log_heat_kernel`,
            :func:`so3_radial_log_heat_kernel`, :func:`circle_log_heat_kernel`).
        **kw: passed to the radial function (``n_terms``, ``t_switch``, ...).

    Returns:
        ``(*batch,)`` log-densities.

    Raises:
        ValueError: no closed-form heat kernel for ``manifold``, or ``t`` of a wrong shape.
    """
    if not has_heat_kernel(manifold):
        raise ValueError(f"no closed-form heat kernel for {manifold!r}; expected Sphere (n>=2), SO3, Torus or Euclidean")
    nb = x.dim() - len(manifold.event_shape)
    t = _check_t(t, x, nb)
    if isinstance(manifold, Euclidean):
        d2 = ((x - x0) ** 2).reshape(x.shape[:nb] + (-1,)).sum(-1)
        n = manifold.numel
        return -0.5 * n * torch.log(_TWO_PI * t) - d2 / (2 * t)
    if isinstance(manifold, Torus):
        lp, _ = circle_log_heat_kernel(x - x0, t[..., None], method=method, **kw)
        return lp.sum(-1)
    _, (lp, _) = _radial(manifold, x, x0, t, method, **kw)
    return lp


def heat_kernel_score(manifold: Manifold, x: torch.Tensor, x0: torch.Tensor, t, *, method: str = "auto", **kw):
    r"""Score ``∇_x log p_t(x | x₀)`` (Riemannian gradient, tangent at ``x``).

    For radial kernels ``∇_x log p_t = -∂_θ log p_t(θ) · log_x(x₀)/θ`` (``∇_x θ = -log_x(x₀)/θ``);
    at ``θ → 0`` it tends to ``log_x(x₀)/t`` (Varadhan, RSGM Eq. (9)). Arguments and errors
    as :func:`heat_kernel_log_prob`.

    Returns:
        ``(*batch, *event_shape)`` tangent vectors at ``x``.
    """
    if not has_heat_kernel(manifold):
        raise ValueError(f"no closed-form heat kernel for {manifold!r}; expected Sphere (n>=2), SO3, Torus or Euclidean")
    nb = x.dim() - len(manifold.event_shape)
    t = _check_t(t, x, nb)
    if isinstance(manifold, Euclidean):
        return (x0 - x) / manifold._expand_batch(t, x)
    if isinstance(manifold, Torus):
        _, dlp = circle_log_heat_kernel(x - x0, t[..., None], method=method, **kw)
        return dlp
    theta, (_, dlp) = _radial(manifold, x, x0, t, method, **kw)
    coef = -dlp / theta.clamp_min(torch.finfo(theta.dtype).tiny)
    return manifold._expand_batch(coef, x) * manifold.logmap(x, x0)


def varadhan_score(manifold: Manifold, x: torch.Tensor, x0: torch.Tensor, t) -> torch.Tensor:
    r"""Varadhan's small-time score ``log_x(x₀) / t`` (RSGM Eq. (9), ``dsmv``), any manifold.

    Args:
        x, x0: ``(*batch, *event_shape)`` points; t: scalar or ``(*batch,)``, ``t > 0``.

    Returns:
        ``(*batch, *event_shape)`` tangent vectors at ``x``.
    """
    nb = x.dim() - len(manifold.event_shape)
    t = _check_t(t, x, nb)
    return manifold.logmap(x, x0) / manifold._expand_batch(t, x)


# ---------------------------------------------------------------------- sampling
def tangent_normal(manifold: Manifold, x: torch.Tensor, generator=None) -> torch.Tensor:
    r"""Standard Gaussian tangent vector at ``x`` in the *metric*: ``v = Σ_i ξ_i e_i``, ``(e_i)``
    orthonormal in ``<·,·>_x``, ``ξ ~ N(0, I_dim)``, so ``E[<v, w>_x²] = <w, w>_x``.

    Closed forms for Euclidean, Sphere, Torus (orthogonal ``proju`` of an ambient normal) and
    SO(3) (``x hat(ω)``, ``ω ~ N(0, I₃)``; note the base class's ``random_normal_tangent`` gives
    ``ω ~ N(0, I/2)`` there). Every other manifold (SPD under any metric, Hyperboloid, Poincaré,
    Stiefel, Product, ...) uses the generic construction: the Gram matrix ``G_ij = <b_i, b_j>_x``
    of the projected ambient basis ``b_i = proju(x, e_i)``, its top-``dim`` eigenpairs
    ``(λ_j, u_j)`` and the orthonormal frame ``f_j = Σ_i u_ij b_i / √λ_j``
    (``O(numel³)`` per point; requires ``proju`` to be a projection onto ``T_x M``).

    Args:
        x: ``(*batch, *event_shape)`` points.

    Returns:
        ``(*batch, *event_shape)`` tangent vectors.
    """
    if isinstance(manifold, (Euclidean, Sphere, Torus)):
        noise = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
        return manifold.proju(x, noise)
    if isinstance(manifold, SO3):
        w = torch.randn(x.shape[:-2] + (3,), dtype=x.dtype, device=x.device, generator=generator)
        return x @ _hat3(w)
    ev = tuple(manifold.event_shape)
    nb = x.dim() - len(ev)
    batch = x.shape[:nb]
    N = manifold.numel
    eye = torch.eye(N, dtype=x.dtype, device=x.device).reshape((N,) + ev)
    xe = x.unsqueeze(nb)  # (*batch, 1, *ev)
    b = manifold.proju(xe, eye.expand(batch + (N,) + ev))  # (*batch, N, *ev)
    G = manifold.inner(xe.unsqueeze(nb), b.unsqueeze(nb + 1), b.unsqueeze(nb))  # (*batch, N, N)
    G = 0.5 * (G + G.transpose(-1, -2))
    lam, U = torch.linalg.eigh(G)
    d = manifold.dim
    lam, U = lam[..., N - d :], U[..., :, N - d :]  # (*batch, d), (*batch, N, d)
    xi = torch.randn(batch + (d,), dtype=x.dtype, device=x.device, generator=generator)
    coef = U @ (xi / lam.clamp_min(torch.finfo(x.dtype).tiny).sqrt())[..., None]  # (*batch, N, 1)
    return (coef.reshape(batch + (N,) + (1,) * len(ev)) * b).sum(nb)


def geodesic_random_walk(
    manifold: Manifold, x0: torch.Tensor, t, n_steps: int = 100, generator=None
) -> torch.Tensor:
    r"""Brownian motion (generator ½Δ) by the geodesic random walk of RSGM (Algorithm 1):
    ``x ← exp_x(√(t/N) ξ)``, ``ξ`` a standard tangent normal (:func:`tangent_normal`), N steps.

    Converges weakly to ``p_t(· | x₀)`` as ``N → ∞`` (Jørgensen 1975); works on every manifold
    with ``expmap`` and a tangent Gaussian.

    Args:
        x0: ``(*batch, *event_shape)`` starting points.
        t: scalar or ``(*batch,)`` times ``t >= 0``.
        n_steps: number of steps N >= 1.

    Returns:
        ``(*batch, *event_shape)`` samples.

    Raises:
        ValueError: ``n_steps < 1`` or ``t`` of a wrong shape.
    """
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
    nb = x0.dim() - len(manifold.event_shape)
    t = _check_t(t, x0, nb)
    sd = manifold._expand_batch(torch.sqrt(t.clamp_min(0) / n_steps), x0)
    x = x0
    for _ in range(n_steps):
        x = manifold.expmap(x, sd * tangent_normal(manifold, x, generator))
    return x


def _uniform_unit_tangent(manifold: Sphere, x, generator):
    g = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
    u = manifold.proju(x, g)
    return u / torch.linalg.vector_norm(u, dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


def _sphere_exact(sphere: Sphere, x0, t, generator, t_uniform, max_iter, n_proposals=4):
    r"""Rejection sampler of the Sⁿ heat kernel (see :func:`sample_heat_kernel`).

    Each round draws ``n_proposals`` i.i.d. proposals for every still-pending point and keeps
    the first accepted one (a few host synchronisations per round).
    """
    n = sphere.dim
    batch = x0.shape[:-1]
    t = torch.broadcast_to(t, batch).reshape(-1)
    x0f = x0.reshape(-1, x0.shape[-1])
    lp0 = _sphere_log_p(torch.zeros_like(t), t, n)
    out = x0f.clone()
    idx = torch.arange(x0f.shape[0], device=x0.device)
    K = n_proposals
    for _ in range(max_iter):
        if idx.numel() == 0:
            return out.reshape(x0.shape)
        P = idx.numel()
        # K proposals per pending point, flattened to (P*K, ...)
        xp, tp, l0 = x0f[idx].repeat_interleave(K, 0), t[idx].repeat_interleave(K), lp0[idx].repeat_interleave(K)
        unif = tp >= t_uniform
        y = torch.empty_like(xp)
        log_acc = torch.empty_like(tp)
        iu, iw = unif.nonzero().squeeze(-1), (~unif).nonzero().squeeze(-1)
        if iu.numel():
            # proposal A: uniform on Sⁿ, log-acceptance log p_t(θ) - log p_t(0)
            xa, ta = xp[iu], tp[iu]
            ya = sphere.random(xa.shape, dtype=xa.dtype, device=xa.device, generator=generator)
            lpa = _sphere_log_p(sphere.dist(xa, ya), ta, n)
            y[iu], log_acc[iu] = ya, lpa - l0[iu]
        if iw.numel():
            # proposal B: exp_{x0}(v), v ~ N(0, t I_n); log-acceptance log r(θ) - log r(0)
            xb, tb = xp[iw], tp[iw]
            g = torch.randn(xb.shape, dtype=xb.dtype, device=xb.device, generator=generator)
            v = tb.sqrt()[:, None] * sphere.proju(xb, g)
            r = torch.linalg.vector_norm(v, dim=-1)
            rc = r.clamp(max=math.pi)
            lpb = _sphere_log_p(rc, tb, n)
            la = lpb - l0[iw] + rc * rc / (2 * tb) - (n - 1) * _log_x_over_sin(rc)
            y[iw], log_acc[iw] = sphere.expmap(xb, v), torch.where(r > math.pi, torch.full_like(r, -math.inf), la)
        u = torch.rand(tp.shape, dtype=xp.dtype, device=xp.device, generator=generator)
        acc = (torch.log(u) < log_acc.clamp(max=0.0)).reshape(P, K)
        # the first accepted of the K i.i.d. proposals is a sample of the target
        first = torch.argmax(acc.to(torch.int8), dim=1)
        done = acc.any(1)
        chosen = y.reshape(P, K, -1)[torch.arange(P, device=y.device), first]
        out[idx[done]] = chosen[done]
        idx = idx[~done]
    raise RuntimeError(f"heat-kernel rejection sampler did not finish in {max_iter} rounds")


def sample_heat_kernel(
    manifold: Manifold,
    x0: torch.Tensor,
    t,
    *,
    method: str = "auto",
    n_steps: int = 100,
    generator=None,
    t_uniform: float = 0.5,
    max_iter: int = 1000,
) -> torch.Tensor:
    r"""Sample Brownian motion (generator ½Δ) at time ``t`` started at ``x₀``.

    * Torus / Euclidean: exact, ``x = wrap(x₀ + √t ξ)``.
    * Sⁿ (n >= 2): rejection sampling of ``p_t`` (log-density from
      :func:`sphere_radial_log_heat_kernel` ``"auto"``; Lou et al. 2023 §3.3). For
      ``t >= t_uniform`` the proposal is uniform on Sⁿ and a point at angle θ is accepted
      with probability ``p_t(θ)/p_t(0)`` — valid because the sphere's heat kernel is a
      decreasing function of θ. For smaller ``t`` the proposal is the wrapped normal
      ``exp_{x₀}(v)``, ``v ~ N(0, t I_n)`` (rejected when ``|v| > π``), whose angle has
      density ``∝ θ^{n-1} e^{-θ²/2t}``; the target angle has density ``∝ p_t(θ) sin^{n-1}θ``
      and the ratio ``r(θ) = p_t(θ) e^{θ²/2t} (sin θ/θ)^{n-1}`` is bounded by ``M = r(0)``:
      in the WKB regime ``r(θ)/r(0) = (sin θ/θ)^{(n-1)/2} <= 1`` exactly, and for the series
      regime ``t in [t_switch, t_uniform)`` the bound is checked on a grid in
      ``tests/test_heat_kernel.py``. Acceptance ``r(θ)/r(0)``. The samples are exact up to the
      accuracy of ``log p_t`` (the WKB form below ``t_switch``: relative error O(t)).
    * SO(3): the S³ sampler at time ``t/4`` (SO(3) with this metric is S³ of radius 2 modulo
      ±1, and Brownian motion projects to Brownian motion), mapped to rotations
      ``x₀ R(q)``.
    * Any other manifold, or ``method="grw"``: :func:`geodesic_random_walk` with ``n_steps``.

    The rejection loop synchronises with the host once per round (at most ``max_iter``).

    Args:
        x0: ``(*batch, *event_shape)`` starting points.
        t: scalar or ``(*batch,)`` times, ``t > 0``.
        method: ``"auto"`` (exact where available, GRW elsewhere), ``"exact"`` (raise if none)
            or ``"grw"``.

    Returns:
        ``(*batch, *event_shape)`` samples.

    Raises:
        ValueError: unknown method, ``"exact"`` without an exact sampler, bad ``t`` shape.
        RuntimeError: the rejection sampler needed more than ``max_iter`` rounds.
    """
    if method not in ("auto", "exact", "grw"):
        raise ValueError(f"method must be 'auto', 'exact' or 'grw', got {method!r}")
    nb = x0.dim() - len(manifold.event_shape)
    t = _check_t(t, x0, nb)
    exact = has_heat_kernel(manifold)
    if method == "exact" and not exact:
        raise ValueError(f"no exact heat-kernel sampler for {manifold!r}")
    if method == "grw" or not exact:
        return geodesic_random_walk(manifold, x0, t, n_steps, generator)
    if isinstance(manifold, (Torus, Euclidean)):
        xi = torch.randn(x0.shape, dtype=x0.dtype, device=x0.device, generator=generator)
        return manifold.expmap(x0, manifold._expand_batch(torch.sqrt(t), x0) * xi)
    if isinstance(manifold, Sphere):
        return _sphere_exact(manifold, x0, t, generator, t_uniform, max_iter)
    # SO(3) through the double cover S³
    s3 = Sphere(3)
    batch = x0.shape[:-2]
    q0 = torch.zeros(batch + (4,), dtype=x0.dtype, device=x0.device)
    q0[..., 0] = 1
    q = _sphere_exact(s3, q0, t / 4, generator, t_uniform, max_iter)
    return x0 @ quaternion_to_matrix(q)
