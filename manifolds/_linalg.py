"""Private symmetric-matrix calculus: spectral functions with a Daleckii–Krein backward,
and eigenvalue-only fast paths for distances.

A *spectral function* of a symmetric matrix ``X = U diag(λ) Uᵀ`` applies a scalar function
to the eigenvalues, ``f(X) = U diag(f(λ)) Uᵀ``. Its Fréchet derivative is the
Daleckii–Krein formula (Daleckii & Krein 1965; Bhatia, *Matrix Analysis*, Thm V.3.3)::

    Df(X)[E] = U (L ∘ (Uᵀ E U)) Uᵀ,
    L_ij = (f(λ_i) − f(λ_j)) / (λ_i − λ_j)   if λ_i ≠ λ_j,      L_ii = f′(λ_i),

where ``L`` is the Loewner matrix (first divided differences of ``f``) and ``∘`` the
entrywise product. ``Df(X)`` is self-adjoint for the Frobenius inner product, so the
vector–Jacobian product is the same formula applied to ``sym(Ḡ)`` (Ionescu et al.,
"Matrix backpropagation for deep networks with structured layers", ICCV 2015; used in
SPDNet's ``LogEig`` and in Brooks et al., "Riemannian batch normalization for SPD neural
networks", NeurIPS 2019). Unlike autograd through ``torch.linalg.eigh`` — whose backward
contains ``1/(λ_j − λ_i)`` and returns NaN/inf at repeated eigenvalues, e.g. at the
identity — this backward is finite there: ``L`` is a continuous function of ``λ``.

Numerics (refs/core.md §7):

* The tie ``λ_i ≈ λ_j`` is decided with a dtype-dependent relative threshold and handled
  with ``torch.where`` on sanitised inputs (no masked in-place writes, no inf/NaN in
  either branch).
* For the provided functions (log, exp, power, sqrt, inverse sqrt) the off-diagonal entries
  use closed forms of the divided difference that do not cancel when ``λ_i`` and ``λ_j``
  are close but unequal (``log1p`` / ``expm1`` forms); a generic ``f`` falls back to the
  plain difference quotient with a wider tie band.
* Inputs are symmetrised before ``eigh`` (which reads one triangle only) and incoming
  gradients are symmetrised before the formula.

Nothing here branches in Python on tensor values or synchronises with the device, except
the opt-in ``check_errors=True`` of :func:`spd_generalized_eigvalsh`.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Optional

import torch

__all__ = [
    "sym",
    "sym_funcm",
    "sym_logm",
    "sym_expm",
    "sym_sqrtm",
    "sym_invsqrtm",
    "sym_powm",
    "spd_generalized_eigvalsh",
    "aim_dist",
]

Scalar = Callable[[torch.Tensor], torch.Tensor]
DividedDifference = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_SUPPORTED = (torch.float32, torch.float64)


# ---------------------------------------------------------------------------- thresholds
def _tie_rtol(dtype: torch.dtype, closed_form: bool) -> float:
    """Relative gap below which two eigenvalues count as equal in the Loewner matrix.

    With a cancellation-free closed form the quotient is accurate down to a zero gap, so the
    tie branch only has to catch (near-)exact equality: ``4·eps``. The plain quotient
    ``(f(a) − f(b))/(a − b)`` has relative rounding error ``~eps/δ`` at relative gap ``δ``,
    while ``f′(midpoint)`` is off by ``~δ²/24``; the two balance at ``δ ≈ eps^{1/3}``
    (6e-6 in float64, 5e-3 in float32), which bounds both errors by ``~eps^{2/3}``.
    """
    eps = torch.finfo(dtype).eps
    return 4.0 * eps if closed_form else eps ** (1.0 / 3.0)


def _spd_floor(lam: torch.Tensor) -> torch.Tensor:
    """Eigenvalue floor ``max(eps·λ_max, tiny)`` for ascending eigenvalues ``lam: (..., n)``.

    Returns ``(..., 1)``. ``eigh`` resolves eigenvalues only to ``±eps·‖X‖``, so anything
    below ``eps·λ_max`` is numerically zero (or a rounding-negative value of a PSD matrix).
    """
    finfo = torch.finfo(lam.dtype)
    return torch.clamp(finfo.eps * lam[..., -1:], min=finfo.tiny)


def _check_square(name: str, x: torch.Tensor) -> None:
    # Shape / dtype checks only: no access to tensor values, hence no device sync.
    if x.dim() < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{name}: expected a batch of square matrices (..., n, n), got shape {tuple(x.shape)}")
    if x.dtype not in _SUPPORTED:
        raise ValueError(f"{name}: expected dtype float32 or float64, got {x.dtype}")


# ---------------------------------------------------------------------------- basics
def sym(x: torch.Tensor) -> torch.Tensor:
    """Symmetric part ``(x + xᵀ)/2`` of a batch of square matrices.

    Args:
        x: ``(..., n, n)``.

    Returns:
        ``(..., n, n)``, exactly symmetric.
    """
    return 0.5 * (x + x.mT)


# ---------------------------------------------------------------------------- divided differences
# Each takes ``hi > lo`` elementwise (the caller orders the pair and sanitises ties) and
# returns (f(hi) − f(lo)) / (hi − lo) without cancellation when hi ≈ lo.
def _dd_log(hi: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    # log(hi) − log(lo) = log1p(r), r = (hi − lo)/lo ≥ 0: r carries ≤ 2 eps relative error
    # (hi − lo is exact by Sterbenz when hi ≤ 2 lo), log1p is accurate for all r ≥ 0. The
    # ratio uses the smaller eigenvalue as denominator, so it stays accurate at any gap
    # (the atanh((a−b)/(a+b)) form loses ~eps·hi/lo in 1 − z when hi ≫ lo).
    d = hi - lo
    return torch.log1p(d / lo) / d


def _dd_exp(hi: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    # exp(lo)·expm1(d)/d written from the larger end, exp(hi)·(1 − e^{−d})/d: the factor
    # (1 − e^{−d})/d ∈ (0, 1] never overflows and exp(hi) = f(hi) overflows only with f itself.
    d = hi - lo
    return torch.exp(hi) * (-torch.expm1(-d) / d)


def _dd_pow(hi: torch.Tensor, lo: torch.Tensor, p: float) -> torch.Tensor:
    # hi^p − lo^p with lp = log(hi/lo) = log1p((hi − lo)/lo) computed without cancellation:
    #   p ≥ 0: hi^p·(1 − e^{−p·lp}) — the bracket is in [0, 1), no overflow;
    #   p < 0: lo^p·(e^{p·lp} − 1) — the bracket is in (−1, 0], no overflow.
    # (p is a Python number: the branch is on a constant, not on tensor values.)
    d = hi - lo
    lp = torch.log1p(d / lo)
    if p >= 0:
        return torch.pow(hi, p) * (-torch.expm1(-p * lp) / d)
    return torch.pow(lo, p) * (torch.expm1(p * lp) / d)


def _dd_sqrt(hi: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    # (√a − √b)/(a − b) = 1/(√a + √b): no difference at all.
    return torch.reciprocal(hi.sqrt() + lo.sqrt())


def _dd_invsqrt(hi: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    # (a^{-1/2} − b^{-1/2})/(a − b) = −1/(√a √b (√a + √b)).
    sa, sb = hi.sqrt(), lo.sqrt()
    return -torch.reciprocal(sa * sb * (sa + sb))


# ---------------------------------------------------------------------------- Loewner matrix
def _loewner(
    lam: torch.Tensor,
    flam: torch.Tensor,
    f_prime: Scalar,
    divided_difference: Optional[DividedDifference],
) -> torch.Tensor:
    """Loewner matrix ``L: (..., n, n)`` of ``f`` at eigenvalues ``lam: (..., n)``.

    ``flam = f(lam)``. Ties (relative gap below :func:`_tie_rtol`, measured against
    ``max(|λ_i|, |λ_j|, rtol·max_k |λ_k|)``) take ``f′`` at the midpoint, which is the
    divided difference to second order; the other entries take ``divided_difference`` if
    given, else the plain quotient. Both branches are evaluated on sanitised inputs.
    """
    li, lj = lam.unsqueeze(-1), lam.unsqueeze(-2)
    hi, lo = torch.maximum(li, lj), torch.minimum(li, lj)
    gap = hi - lo
    rtol = _tie_rtol(lam.dtype, divided_difference is not None)
    spectrum_scale = lam.abs().amax(-1, keepdim=True).unsqueeze(-1)  # (..., 1, 1)
    scale = torch.maximum(torch.maximum(hi.abs(), lo.abs()), rtol * spectrum_scale)
    tie = gap <= rtol * scale
    deriv = f_prime(lo + 0.5 * gap)
    if divided_difference is None:
        # Antisymmetric numerator and denominator: the quotient is exactly symmetric.
        denom = torch.where(tie, torch.ones_like(gap), li - lj)
        quotient = (flam.unsqueeze(-1) - flam.unsqueeze(-2)) / denom
    else:
        # Move tied pairs apart (hi > lo strictly) so the closed form never sees 0/0.
        hi_safe = torch.where(tie, lo + (1.0 + lo.abs()), hi)
        quotient = divided_difference(hi_safe, lo)
    return torch.where(tie, deriv, quotient)


def _clamp_ratio(lam: torch.Tensor, lam_c: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """Chain-rule factor of the clamp ``λ ↦ max(λ, floor)`` inside the Loewner matrix.

    For ``g = f ∘ clamp``: ``g[λ_i, λ_j] = f[c_i, c_j] · (c_i − c_j)/(λ_i − λ_j)`` with
    ``c = clamp(λ)``; the factor is in ``[0, 1]``, exactly 1 when neither eigenvalue is
    clamped, 0 when both are. At ``λ_i = λ_j`` it is the indicator ``λ_i ≥ floor``.
    """
    li, lj = lam.unsqueeze(-1), lam.unsqueeze(-2)
    dl = li - lj
    nz = dl != 0
    ratio = (lam_c.unsqueeze(-1) - lam_c.unsqueeze(-2)) / torch.where(nz, dl, torch.ones_like(dl))
    above = (li >= floor.unsqueeze(-1)).to(lam.dtype).expand_as(dl)
    return torch.where(nz, ratio, above)


class _SymFuncm(torch.autograd.Function):
    """``U diag(f(λ)) Uᵀ`` with the Daleckii–Krein backward. See :func:`sym_funcm`."""

    @staticmethod
    def forward(ctx, x, f, f_prime, divided_difference, clamp_spd):
        lam, u = torch.linalg.eigh(sym(x))
        if clamp_spd:
            floor = _spd_floor(lam)
            lam_c = torch.maximum(lam, floor)
        else:
            floor, lam_c = None, lam
        flam = f(lam_c)
        y = sym((u * flam.unsqueeze(-2)) @ u.mT)
        ctx.f_prime = f_prime
        ctx.divided_difference = divided_difference
        ctx.clamp_spd = clamp_spd
        if clamp_spd:
            ctx.save_for_backward(u, lam, lam_c, flam, floor)
        else:
            ctx.save_for_backward(u, lam, lam_c, flam)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        # The saved eigendecomposition is not connected to x's graph: a graph built here would
        # silently miss the second-order terms, so refuse instead (grad mode is on in a
        # backward pass only under create_graph=True).
        if torch.is_grad_enabled():
            raise RuntimeError(
                "sym_funcm and the sym_* matrix functions support first-order gradients only: "
                "double backward (create_graph=True) through them is not implemented"
            )
        if ctx.clamp_spd:
            u, lam, lam_c, flam, floor = ctx.saved_tensors
        else:
            u, lam, lam_c, flam = ctx.saved_tensors
        loewner = _loewner(lam_c, flam, ctx.f_prime, ctx.divided_difference)
        if ctx.clamp_spd:
            loewner = loewner * _clamp_ratio(lam, lam_c, floor)
        m = u.mT @ sym(grad_y) @ u
        grad_x = sym(u @ (loewner * m) @ u.mT)
        return grad_x, None, None, None, None


# ---------------------------------------------------------------------------- public spectral functions
def sym_funcm(
    x: torch.Tensor,
    f: Scalar,
    f_prime: Scalar,
    divided_difference: Optional[DividedDifference] = None,
    *,
    clamp_spd: bool = False,
) -> torch.Tensor:
    """Spectral function ``f(X) = U diag(f(λ)) Uᵀ`` of a symmetric matrix, Daleckii–Krein backward.

    Forward: ``λ, U = torch.linalg.eigh(sym(x))``, output symmetrised. Backward: the
    vector–Jacobian product ``U (L ∘ (Uᵀ sym(Ḡ) U)) Uᵀ`` with the Loewner matrix
    ``L_ij = (f(λ_i) − f(λ_j))/(λ_i − λ_j)`` (``f′`` on ties), finite at repeated
    eigenvalues, including the identity, where autograd through ``eigh`` gives NaN.

    Ties: eigenvalues whose gap is below ``rtol·max(|λ_i|, |λ_j|, rtol·max_k|λ_k|)`` use
    ``f′((λ_i + λ_j)/2)``; ``rtol = 4·eps`` when ``divided_difference`` is given, else
    ``eps^{1/3}`` (6e-6 in float64, 5e-3 in float32), the band where the plain quotient's
    rounding error ``eps/δ`` exceeds the midpoint-derivative error ``δ²/24``.

    Args:
        x: ``(..., n, n)`` symmetric (only ``sym(x)`` is read, so the gradient is
            symmetric), float32 or float64.
        f: elementwise scalar function, applied to eigenvalues ``(..., n)``.
        f_prime: its derivative, elementwise; evaluated on ``(..., n, n)`` midpoints.
        divided_difference: optional ``dd(hi, lo) -> (f(hi) − f(lo))/(hi − lo)``,
            elementwise on ``(..., n, n)`` tensors with ``hi > lo`` everywhere; it should be
            free of cancellation as ``hi → lo``. Without it the plain quotient is used.
        clamp_spd: treat ``x`` as SPD: eigenvalues are clamped at the floor
            ``max(eps·λ_max, tiny)`` before ``f`` (so ``f`` only sees positive numbers),
            and the backward is the exact derivative of ``f ∘ clamp`` with the floor held
            constant (zero along clamped eigen-directions).

    Returns:
        ``(..., n, n)`` symmetric, same dtype as ``x``.

    Raises:
        ValueError: ``x`` is not ``(..., n, n)``, or not float32/float64.

    Double backward is not supported: a backward pass with ``create_graph=True`` through
    this function raises ``RuntimeError`` (rather than silently dropping the second-order
    terms). First-order gradients pass ``torch.autograd.gradcheck``.

    Sources: Daleckii & Krein (1965), "Integration and differentiation of functions of
    Hermitian operators"; Bhatia, *Matrix Analysis* (1997), Thm V.3.3; Ionescu, Vantzos &
    Sminchisescu, "Matrix backpropagation for deep networks with structured layers",
    ICCV 2015; Brooks et al., "Riemannian batch normalization for SPD neural networks",
    NeurIPS 2019 (its use in SPDNet layers).

    Example::

        y = sym_funcm(x, torch.tanh, lambda l: 1 - torch.tanh(l) ** 2)
    """
    _check_square("sym_funcm", x)
    return _SymFuncm.apply(x, f, f_prime, divided_difference, clamp_spd)


def _rsqrt_prime(lam: torch.Tensor) -> torch.Tensor:
    return -0.5 * torch.rsqrt(lam) / lam


def sym_logm(x: torch.Tensor) -> torch.Tensor:
    """Principal matrix logarithm of an SPD matrix, ``U diag(log λ) Uᵀ``.

    Eigenvalues are clamped at ``max(eps·λ_max, tiny)`` (float64: ``2.2e-16·λ_max``,
    float32: ``1.2e-7·λ_max``), so a singular or slightly indefinite input returns a
    finite matrix, never NaN/−inf; the gradient along clamped eigen-directions is 0.
    Divided differences: ``log1p((a − b)/b)/(a − b)`` (``a > b``), no cancellation.

    Args:
        x: ``(..., n, n)`` SPD, float32 or float64.

    Returns:
        ``(..., n, n)`` symmetric.

    Raises:
        ValueError: bad shape or dtype (see :func:`sym_funcm`). Double backward unsupported.

    Sources: Daleckii & Krein 1965; Bhatia, *Matrix Analysis*, Thm V.3.3; Ionescu et al.,
    ICCV 2015 (``LogEig`` backward); Brooks et al., NeurIPS 2019.
    """
    _check_square("sym_logm", x)
    return _SymFuncm.apply(x, torch.log, torch.reciprocal, _dd_log, True)


def sym_expm(x: torch.Tensor) -> torch.Tensor:
    """Matrix exponential of a symmetric matrix, ``U diag(exp λ) Uᵀ`` (any sign of ``λ``).

    Divided differences: ``exp(a)·(1 − exp(−(a − b)))/(a − b)`` (``a > b``), i.e.
    ``exp(b)·expm1(a − b)/(a − b)`` written from the larger end so that no intermediate
    overflows before ``exp(a)`` itself does.

    Args:
        x: ``(..., n, n)`` symmetric, float32 or float64.

    Returns:
        ``(..., n, n)`` SPD (overflows to inf where ``exp(λ_max)`` does).

    Raises:
        ValueError: bad shape or dtype (see :func:`sym_funcm`). Double backward unsupported.

    Sources: Daleckii & Krein 1965; Bhatia, *Matrix Analysis*, Thm V.3.3; Ionescu et al.,
    ICCV 2015; Brooks et al., NeurIPS 2019.
    """
    _check_square("sym_expm", x)
    return _SymFuncm.apply(x, torch.exp, torch.exp, _dd_exp, False)


def sym_sqrtm(x: torch.Tensor) -> torch.Tensor:
    """Principal square root of an SPD matrix, ``U diag(√λ) Uᵀ``.

    Eigenvalues are clamped at ``max(eps·λ_max, tiny)`` as in :func:`sym_logm`.
    Divided differences: ``1/(√a + √b)``, exact at every gap.

    Args:
        x: ``(..., n, n)`` SPD, float32 or float64.

    Returns:
        ``(..., n, n)`` SPD.

    Raises:
        ValueError: bad shape or dtype (see :func:`sym_funcm`). Double backward unsupported.

    Sources: Daleckii & Krein 1965; Bhatia, *Matrix Analysis*, Thm V.3.3; Ionescu et al.,
    ICCV 2015; Brooks et al., NeurIPS 2019.
    """
    _check_square("sym_sqrtm", x)
    return _SymFuncm.apply(x, torch.sqrt, lambda lam: 0.5 * torch.rsqrt(lam), _dd_sqrt, True)


def sym_invsqrtm(x: torch.Tensor) -> torch.Tensor:
    """Inverse principal square root of an SPD matrix, ``U diag(λ^{-1/2}) Uᵀ``.

    Eigenvalues are clamped at ``max(eps·λ_max, tiny)`` as in :func:`sym_logm` (the result
    is then at most ``(eps·λ_max)^{-1/2}`` in norm, finite). Divided differences:
    ``−1/(√a √b (√a + √b))``, exact at every gap.

    Args:
        x: ``(..., n, n)`` SPD, float32 or float64.

    Returns:
        ``(..., n, n)`` SPD.

    Raises:
        ValueError: bad shape or dtype (see :func:`sym_funcm`). Double backward unsupported.

    Sources: Daleckii & Krein 1965; Bhatia, *Matrix Analysis*, Thm V.3.3; Ionescu et al.,
    ICCV 2015; Brooks et al., NeurIPS 2019.
    """
    _check_square("sym_invsqrtm", x)
    return _SymFuncm.apply(x, torch.rsqrt, _rsqrt_prime, _dd_invsqrt, True)


def sym_powm(x: torch.Tensor, p: float) -> torch.Tensor:
    """Real power ``X^p = U diag(λ^p) Uᵀ`` of an SPD matrix.

    Eigenvalues are clamped at ``max(eps·λ_max, tiny)`` as in :func:`sym_logm`; the
    result is finite for ``|p| ≤ 1`` whatever the input, and for any ``p`` when
    ``λ_max^p`` and ``(eps·λ_max)^p`` are representable. Divided differences, with
    ``ℓ = log1p((a − b)/b)`` (``a > b``): ``a^p·(−expm1(−pℓ))/(a − b)`` for ``p ≥ 0`` and
    ``b^p·expm1(pℓ)/(a − b)`` for ``p < 0`` — the ``b^{p−1}·expm1(p·log1p(r))/r`` form
    arranged so that the ``expm1`` factor stays in ``(−1, 1)``.

    Args:
        x: ``(..., n, n)`` SPD, float32 or float64.
        p: the exponent, a Python number (not a tensor).

    Returns:
        ``(..., n, n)`` SPD.

    Raises:
        ValueError: bad shape or dtype (see :func:`sym_funcm`).
        TypeError: ``p`` is a tensor. Double backward unsupported.

    Sources: Daleckii & Krein 1965; Bhatia, *Matrix Analysis*, Thm V.3.3; Ionescu et al.,
    ICCV 2015; Brooks et al., NeurIPS 2019.
    """
    _check_square("sym_powm", x)
    if isinstance(p, torch.Tensor):
        raise TypeError("sym_powm: p must be a Python number, not a tensor (a tensor exponent would need a host sync)")
    p = float(p)

    def f(lam):
        return torch.pow(lam, p)

    def f_prime(lam):
        return p * torch.pow(lam, p - 1.0)

    return _SymFuncm.apply(x, f, f_prime, partial(_dd_pow, p=p), True)


# ---------------------------------------------------------------------------- eigenvalue-only paths
def spd_generalized_eigvalsh(a: torch.Tensor, b: torch.Tensor, *, check_errors: bool = False) -> torch.Tensor:
    """Eigenvalues of the SPD pencil ``(b, a)``: ``eigvalsh(L⁻¹ b L⁻ᵀ)`` with ``a = L Lᵀ``.

    These are the eigenvalues of ``a⁻¹ b`` (equivalently of ``a^{-1/2} b a^{-1/2}``),
    computed by Cholesky whitening: one ``torch.linalg.cholesky_ex``, two
    ``torch.linalg.solve_triangular``, one ``torch.linalg.eigvalsh`` — no eigenvectors in
    the forward and no matrix square root. The gradient is finite at repeated eigenvalues
    (e.g. ``b = a``, ``b = 2a``): the backward of ``eigvalsh`` is ``U diag(λ̄) Uᵀ``, with no
    ``1/(λ_i − λ_j)`` eigen-gap term. ``a`` and ``b`` are symmetrised first.

    ``cholesky_ex`` is ``torch.linalg.cholesky`` without the error check (that check is a
    host–device synchronisation). Batch elements whose ``a`` is not numerically positive
    definite get NaN eigenvalues; pass ``check_errors=True`` to raise instead.

    Args:
        a: ``(..., n, n)`` SPD, float32 or float64.
        b: ``(..., n, n)`` symmetric (SPD for a distance), broadcastable with ``a``.
        check_errors: raise ``ValueError`` if the Cholesky factorisation of ``a`` fails
            (synchronises with the device).

    Returns:
        ``(..., n)`` eigenvalues in ascending order, broadcast batch shape.

    Raises:
        ValueError: bad shape / dtype, mismatched ``n``, or (with ``check_errors``) ``a`` not
            positive definite.

    Sources: Golub & Van Loan, *Matrix Computations*, 4th ed., §8.7.2 (the symmetric-definite
    generalized eigenproblem via Cholesky); refs/core.md §2.6, §7.2 and §7.10 (speed and
    finiteness measurements).
    """
    _check_square("spd_generalized_eigvalsh", a)
    _check_square("spd_generalized_eigvalsh", b)
    if a.shape[-1] != b.shape[-1] or a.dtype != b.dtype:
        raise ValueError(
            f"spd_generalized_eigvalsh: a {tuple(a.shape)} {a.dtype} and b {tuple(b.shape)} {b.dtype} "
            "must have the same matrix size and dtype"
        )
    chol, info = torch.linalg.cholesky_ex(sym(a))
    if check_errors and bool((info != 0).any()):
        raise ValueError("spd_generalized_eigvalsh: a is not positive definite (Cholesky factorisation failed)")
    x = torch.linalg.solve_triangular(chol, sym(b), upper=False)  # L⁻¹ b
    c = torch.linalg.solve_triangular(chol, x.mT, upper=False)  # L⁻¹ (L⁻¹ b)ᵀ = L⁻¹ b L⁻ᵀ
    lam = torch.linalg.eigvalsh(sym(c))
    failed = (info != 0).unsqueeze(-1)
    return torch.where(failed, torch.full_like(lam, float("nan")), lam)


def aim_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Affine-invariant (AIM) distance ``‖log(a^{-1/2} b a^{-1/2})‖_F = ‖log λ(a⁻¹ b)‖₂``.

    Uses :func:`spd_generalized_eigvalsh` (Cholesky whitening + ``eigvalsh``): for 16×16
    matrices on CPU 2.6–3.9× faster forward and 1.6–2.6× faster forward + backward than the
    ``eigh``-based ``logm(a^{-1/2} b a^{-1/2})`` (``benchmarks/bench_linalg.py``), with a
    finite gradient at repeated generalized eigenvalues, including ``a == b`` (distance 0
    up to rounding, unit- or zero-norm subgradient). The generalized eigenvalues are clamped at
    ``max(eps·λ_max, tiny)`` before the logarithm, so a singular ``b`` gives a large finite
    distance; an ``a`` that is not positive definite gives NaN (see
    :func:`spd_generalized_eigvalsh`). Symmetric in ``(a, b)`` up to rounding. Built from
    torch ops only, so it is twice differentiable away from ``a == b`` and repeated
    generalized eigenvalues (``gradgradcheck`` passes at generic points).

    Args:
        a: ``(..., n, n)`` SPD, float32 or float64.
        b: ``(..., n, n)`` SPD, broadcastable with ``a``.

    Returns:
        ``(...)`` distances, broadcast batch shape.

    Raises:
        ValueError: bad shape / dtype (see :func:`spd_generalized_eigvalsh`).

    Sources: Pennec, Fillard & Ayache, "A Riemannian framework for tensor computing",
    IJCV 2006 (the metric and its distance); Bhatia, *Positive Definite Matrices* (2007),
    §6.1; refs/core.md §2.6 (benchmark).
    """
    lam = spd_generalized_eigvalsh(a, b)
    log_lam = torch.log(torch.maximum(lam, _spd_floor(lam)))
    # vector_norm's backward returns the zero subgradient at log_lam == 0 (a == b exactly).
    return torch.linalg.vector_norm(log_lam, dim=-1)
