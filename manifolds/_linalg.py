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
def _chol(x: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of ``sym(x)`` without the error check (no host sync).

    A batch element that is not positive definite gives a factor with NaNs (``cholesky_ex``
    semantics); use :meth:`manifolds.SPD.check_point` to validate inputs.
    """
    return torch.linalg.cholesky_ex(sym(x))[0]


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
    """``U diag(f(λ)) Uᵀ`` with the Daleckii–Krein backward. See :func:`sym_funcm`.

    Written in the ``setup_context`` style so that ``torch.func`` transforms (``grad``, ``vmap``;
    ``jvp`` / ``jacfwd`` with :class:`_SymFuncmFwd`) work; the eigendecomposition is returned as
    extra, non-differentiable outputs (dropped by :func:`sym_funcm`). The Fréchet derivative
    ``D f_x[e] = U (F¹ ∘ Uᵀ e U) Uᵀ`` is Frobenius self-adjoint, so the forward-mode rule and
    ``backward`` apply the same Loewner matrix ``F¹``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, f, f_prime, divided_difference, clamp_spd):
        lam, u = torch.linalg.eigh(sym(x))
        if clamp_spd:
            floor = _spd_floor(lam)
            lam_c = torch.maximum(lam, floor)
        else:
            # a separate tensor: returning lam twice confuses dynamo's output handling
            floor, lam_c = torch.zeros_like(lam[..., :1]), lam.clone()
        flam = f(lam_c)
        y = sym((u * flam.unsqueeze(-2)) @ u.mT)
        return y, u, lam, lam_c, flam, floor

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, _, f_prime, divided_difference, clamp_spd = inputs
        _, u, lam, lam_c, flam, floor = output
        ctx.mark_non_differentiable(u, lam, lam_c, flam, floor)
        ctx.f_prime = f_prime
        ctx.divided_difference = divided_difference
        ctx.clamp_spd = clamp_spd
        ctx.save_for_backward(u, lam, lam_c, flam, floor)
        ctx.save_for_forward(u, lam, lam_c, flam, floor)

    @staticmethod
    def _frechet(ctx, e):
        """``U (F¹ ∘ Uᵀ sym(e) U) Uᵀ``: the derivative of ``f`` at ``x`` applied to ``e``."""
        u, lam, lam_c, flam, floor = ctx.saved_tensors
        loewner = _loewner(lam_c, flam, ctx.f_prime, ctx.divided_difference)
        if ctx.clamp_spd:
            loewner = loewner * _clamp_ratio(lam, lam_c, floor)
        m = u.mT @ sym(e) @ u
        return sym(u @ (loewner * m) @ u.mT)

    @staticmethod
    def backward(ctx, grad_y, *unused):
        # The saved eigendecomposition is not connected to x's graph: a graph built here would
        # silently miss the second-order terms, so refuse instead (grad mode is on in a
        # backward pass only under create_graph=True).
        if torch.is_grad_enabled():
            raise RuntimeError(
                "sym_funcm and the sym_* matrix functions support first-order gradients only: "
                "double backward (create_graph=True) through them is not implemented"
            )
        return _SymFuncm._frechet(ctx, grad_y), None, None, None, None



class _SymFuncmFwd(_SymFuncm):
    """:class:`_SymFuncm` plus its forward-mode rule (``torch.func.jvp``, ``jacfwd``).

    Kept apart because dynamo (torch 2.13) does not trace an ``autograd.Function`` that defines
    a custom ``jvp`` (graph break "Unsupported custom jvp"): :func:`_sym_funcm_apply` uses this
    class in eager mode and the plain one under ``torch.compile``.
    """

    @staticmethod
    def jvp(ctx, x_t, *unused):
        # the eigendecomposition outputs are non-differentiable: no tangent for them
        return _SymFuncm._frechet(ctx, x_t), None, None, None, None, None


def _sym_funcm_apply(*args):
    cls = _SymFuncm if torch.compiler.is_compiling() else _SymFuncmFwd
    return cls.apply(*args)[0]


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
    return _sym_funcm_apply(x, f, f_prime, divided_difference, clamp_spd)


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
    return _sym_funcm_apply(x, torch.log, torch.reciprocal, _dd_log, True)


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
    return _sym_funcm_apply(x, torch.exp, torch.exp, _dd_exp, False)


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
    return _sym_funcm_apply(x, torch.sqrt, lambda lam: 0.5 * torch.rsqrt(lam), _dd_sqrt, True)


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
    return _sym_funcm_apply(x, torch.rsqrt, _rsqrt_prime, _dd_invsqrt, True)


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

    return _sym_funcm_apply(x, f, f_prime, partial(_dd_pow, p=p), True)


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


def _check_pencil(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    # Shape / dtype checks of an SPD pencil (a, b); no access to tensor values.
    _check_square(name, a)
    _check_square(name, b)
    if a.shape[-1] != b.shape[-1] or a.dtype != b.dtype:
        raise ValueError(
            f"{name}: a {tuple(a.shape)} {a.dtype} and b {tuple(b.shape)} {b.dtype} "
            "must have the same matrix size and dtype"
        )


def _aim_dist_autograd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """AIM distance through :func:`spd_generalized_eigvalsh`, differentiated by autograd.

    The eigenvalue-only forward (no eigenvectors unless autograd needs them): used without
    gradients, and for double backward (``create_graph=True``) through :class:`_AIMDist`.
    """
    lam = spd_generalized_eigvalsh(a, b)
    log_lam = torch.log(torch.maximum(lam, _spd_floor(lam)))
    # vector_norm's backward returns the zero subgradient at log_lam == 0 (a == b exactly).
    return torch.linalg.vector_norm(log_lam, dim=-1)


class _AIMDist(torch.autograd.Function):
    r"""AIM distance ``d(a, b) = ‖log λ(a⁻¹ b)‖₂`` with a closed-form backward.

    Forward: ``a = L Lᵀ`` (``cholesky_ex``), ``C = L⁻¹ b L⁻ᵀ``, ``C = V Λ Vᵀ`` (``eigh``),
    ``d = √(Σ log² λ_i)``, and the generalized eigenvectors ``W = L⁻ᵀ V`` (one triangular
    solve), normalised so that ``Wᵀ a W = I`` and ``Wᵀ b W = Λ``.

    Backward. For a simple generalized eigenpair ``b w = λ a w``, ``wᵀ a w = 1``,
    differentiating gives ``db w + b dw = dλ a w + λ da w + λ a dw``; multiplying by ``wᵀ``
    and using ``wᵀ b = λ wᵀ a`` leaves ``dλ = wᵀ (db − λ da) w`` (Golub & Van Loan, *Matrix
    Computations*, 4th ed., §8.7, symmetric-definite problems; Magnus & Neudecker, *Matrix
    Differential Calculus*, the chapter on differentials of eigenvalues; verified here by
    ``gradcheck`` and against autograd through ``eigvalsh``). Hence for ``f = d² = Σ log² λ_i``::

        ∂f/∂b = W diag(2 log λ / λ) Wᵀ,        ∂f/∂a = −W diag(2 log λ) Wᵀ,

    and ``∂d = ∂f / (2d)``. ``f`` is a symmetric function of the eigenvalues, so its gradient
    is well defined at repeated eigenvalues too (any orthonormal basis of an eigenspace gives
    the same ``W diag(g) Wᵀ``): no ``1/(λ_i − λ_j)`` term, finite at ``a = b``, ``b = c·a``, the
    identity. At a computed ``d = 0`` (all ``log λ_i = 0``) the gradient is the zero subgradient;
    ``d`` is a cone at ``a = b``, so where rounding leaves ``d ~ eps·cond(a)`` the gradient is a
    unit-norm subgradient in a rounding-determined direction (as with autograd).
    Eigenvalues below the floor ``max(eps·λ_max, tiny)`` are clamped in the forward and get
    zero gradient (floor held constant). Gradients are symmetrised and summed over broadcast
    dimensions.

    Saved for backward: ``W (..., n, n)``, the two gradient weights ``(..., n)``, and the
    inputs (references, for the double-backward fallback). ``forward`` returns them as extra
    non-differentiable outputs (``setup_context`` style, for ``torch.func``).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(a, b):
        # Symmetrisations cost a full pass over (..., n, n) each (~10% of forward + backward at
        # n = 16 with four of them); the factors ½ of sym(c) and of the symmetrised gradients are
        # applied to (..., n) vectors instead (exact: powers of 2). sym(a) itself is kept exact,
        # so that a = b = I gives L = I, λ = 1 and d = 0 exactly.
        chol, info = torch.linalg.cholesky_ex(torch.add(a, a.mT).mul_(0.5))
        x = torch.linalg.solve_triangular(chol, b, upper=False)  # L⁻¹ b
        c = torch.linalg.solve_triangular(chol, x.mT, upper=False)  # L⁻¹ bᵀ L⁻ᵀ
        # c + cᵀ = 2 L⁻¹ sym(b) L⁻ᵀ = 2C: the sym(b) semantics with one add.
        lam2, v = torch.linalg.eigh(c + c.mT)
        lam = 0.5 * lam2
        floor = _spd_floor(lam)
        lam_c = torch.maximum(lam, floor)
        log_lam = torch.log(lam_c)
        d = torch.linalg.vector_norm(log_lam, dim=-1)
        d = torch.where(info != 0, torch.full_like(d, float("nan")), d)
        w = torch.linalg.solve_triangular(chol.mT, v, upper=True)  # L⁻ᵀ V
        # ∂d/∂a = −W diag(log λ / d) Wᵀ, ∂d/∂b = W diag(log λ / (λ d)) Wᵀ; the backward returns
        # G + Gᵀ with G = W diag(g/2) Wᵀ, i.e. the symmetrised gradient (signs folded into g).
        pos = d > 0
        inv_d = torch.where(pos, torch.reciprocal(torch.where(pos, d, torch.ones_like(d))), torch.zeros_like(d))
        g_b = torch.where(lam >= floor, log_lam, torch.zeros_like(log_lam)) * (0.5 * inv_d).unsqueeze(-1)
        g_a = -g_b
        g_b = g_b / lam_c
        return d, w, g_a, g_b

    @staticmethod
    def setup_context(ctx, inputs, output):
        # setup_context style (W and the weights as extra non-differentiable outputs) so that
        # torch.func.grad / vmap work, as for _SymFuncm. No custom jvp: dynamo does not trace
        # autograd.Functions that define one (forward-mode AD reaches aim_dist's plain path).
        a, b = inputs
        _, w, g_a, g_b = output
        ctx.mark_non_differentiable(w, g_a, g_b)
        ctx.save_for_backward(a, b, w, g_a, g_b)

    @staticmethod
    def backward(ctx, grad_d, *unused):
        a, b, w, g_a, g_b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        if torch.is_grad_enabled():
            # create_graph=True: the closed form above is not differentiable through the saved
            # W, so recompute with the autograd path, whose graph carries second derivatives
            # (finite away from a == b and repeated generalized eigenvalues).
            inputs = [t for t, need in ((a, need_a), (b, need_b)) if need]
            with torch.enable_grad():
                d = _aim_dist_autograd(a, b)
            grads = iter(torch.autograd.grad(d, inputs, grad_d, create_graph=True))
            return (next(grads) if need_a else None), (next(grads) if need_b else None)
        gd = grad_d.unsqueeze(-1)
        grad_a = grad_b = None
        if need_a:
            ga = (w * (g_a * gd).unsqueeze(-2)) @ w.mT
            grad_a = (ga + ga.mT).sum_to_size(a.shape)
        if need_b:
            gb = (w * (g_b * gd).unsqueeze(-2)) @ w.mT
            grad_b = (gb + gb.mT).sum_to_size(b.shape)
        return grad_a, grad_b


def aim_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Affine-invariant (AIM) distance ``‖log(a^{-1/2} b a^{-1/2})‖_F = ‖log λ(a⁻¹ b)‖₂``.

    Cholesky whitening ``L⁻¹ b L⁻ᵀ`` (``a = L Lᵀ``) and one symmetric eigensolver call; no
    matrix square root. Without gradients the forward is :func:`spd_generalized_eigvalsh`
    (eigenvalues only). With gradients it is a custom ``autograd.Function`` whose backward is
    closed form in the generalized eigenvectors ``W = L⁻ᵀ V`` (``Wᵀ a W = I``, ``Wᵀ b W = Λ``)::

        ∂d/∂b = W diag(log λ / (λ d)) Wᵀ,        ∂d/∂a = −W diag(log λ / d) Wᵀ

    (from ``dλ = wᵀ (db − λ da) w``; see :class:`_AIMDist`): two matrix products instead of
    autograd through ``eigvalsh``, two triangular solves and ``cholesky``. The gradient has no
    eigen-gap term, so it is finite at repeated generalized eigenvalues, including ``a == b``,
    ``b = c·a`` and the identity, where autograd through ``eigh`` (geoopt, geomstats) gives NaN.
    Gradients are symmetric. At ``a == b`` the distance is 0 up to rounding and not
    differentiable (a cone): the gradient is 0 where the computed distance is exactly 0 (e.g.
    ``a = b = I``), else a unit-norm subgradient set by rounding; use ``aim_dist(a, b) ** 2`` in a
    loss for a smooth, zero gradient there.

    The generalized eigenvalues are clamped at ``max(eps·λ_max, tiny)`` before the logarithm,
    so a singular ``b`` gives a large finite distance; an ``a`` that is not positive definite
    gives NaN (see :func:`spd_generalized_eigvalsh`). Symmetric in ``(a, b)`` up to rounding.
    Double backward (``create_graph=True``) falls back to autograd through
    :func:`spd_generalized_eigvalsh`: second derivatives are correct at generic points
    (``gradgradcheck`` passes) and, like any second derivative through an eigensolver, not
    finite at repeated generalized eigenvalues.

    Args:
        a: ``(..., n, n)`` SPD, float32 or float64.
        b: ``(..., n, n)`` SPD, broadcastable with ``a``.

    Returns:
        ``(...)`` distances, broadcast batch shape.

    Raises:
        ValueError: bad shape / dtype (see :func:`spd_generalized_eigvalsh`).

    Sources: Pennec, Fillard & Ayache, "A Riemannian framework for tensor computing",
    IJCV 2006 (the metric and its distance); Bhatia, *Positive Definite Matrices* (2007),
    §6.1; Golub & Van Loan, *Matrix Computations*, 4th ed., §8.7 (symmetric-definite
    generalized eigenproblem, eigenvalue perturbation); refs/core.md §2.6 (benchmark);
    ``benchmarks/bench_spd.py`` (speed against geoopt and geomstats).
    """
    _check_pencil("aim_dist", a, b)
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return _AIMDist.apply(a, b)[0]
    return _aim_dist_autograd(a, b)


# ---------------------------------------------------------------------------- Fréchet derivatives
# D f_x[e] of a spectral function, as a function of both x and e, with a backward through the
# second-order Daleckii–Krein formula (finite at repeated eigenvalues). Appended section.


def _tie_rtol2(dtype: torch.dtype, closed_form: bool) -> float:
    """Relative spread below which three eigenvalues count as tied in ``f[a, b, c]``.

    With ``a ≤ b ≤ c`` and spread ``h = c − a``, the quotient ``(f[b, c] − f[a, b])/h`` has
    relative rounding error ``~eps/h`` when the first differences are accurate to a few
    ``eps`` (cancellation-free closed forms): the numerator is ``~f″·h/2`` while each term
    is ``~f′``, so the subtraction loses ``log₂(1/h)`` bits. The tie value ``f″(m)/2`` at the
    *mean* ``m = (a + b + c)/3`` has error ``O(h²)`` (the first-order Taylor term of
    ``f[a, b, c]`` about ``m`` is ``f‴(m)·(a + b + c − 3m)/6 = 0``). The two balance at
    ``h ≈ eps^{1/3}`` (6e-6 float64, 5e-3 float32), bounding both by ``~eps^{2/3}`` (4e-11
    float64, 2e-5 float32). With plain-quotient first differences (error ``~eps/gap``) the
    second difference behaves like the three-point formula, error ``~eps/h²``, which
    balances ``h²`` at ``h ≈ eps^{1/4}`` (1.2e-4 float64, 2e-2 float32; error ``~eps^{1/2}``).
    """
    eps = torch.finfo(dtype).eps
    return eps ** (1.0 / 3.0) if closed_form else eps ** 0.25


_TRIPLES: dict = {}


def _sorted_triples(n: int, device: torch.device):
    """Index tensors for the sorted triples ``a ≤ b ≤ c`` of ``range(n)`` (cached per ``n, device``).

    Returns ``(a, b, c, full)``: ``a, b, c: (m,)`` with ``m = n(n+1)(n+2)/6``, listing the
    triples in lexicographic order, and ``full: (n, n, n)`` mapping every index triple
    ``(i, k, j)`` to the position of its sorted version, so that a symmetric 3-tensor is
    ``compact[..., full]``. Built with static-shape tensor ops only (closed-form ranks and a
    scatter, no masks), so ``torch.compile`` traces it without a graph break. The rank of
    ``lo ≤ mid ≤ hi`` is ``Σ_{x<lo} (n−x)(n−x+1)/2 + Σ_{lo≤y<mid} (n−y) + (hi − mid)``.
    """
    key = (n, device)
    if torch.compiler.is_compiling():
        # no cache mutation inside a traced graph (a side effect dynamo refuses in a backward)
        return _TRIPLES[key] if key in _TRIPLES else _build_sorted_triples(n, device)
    if key not in _TRIPLES:
        _TRIPLES[key] = _build_sorted_triples(n, device)
    return _TRIPLES[key]


def _build_sorted_triples(n: int, device: torch.device):
    """The tensors of :func:`_sorted_triples`, uncached."""
    idx = torch.arange(n, device=device)
    i, k, j = idx.view(n, 1, 1), idx.view(1, n, 1), idx.view(1, 1, n)
    lo = torch.minimum(torch.minimum(i, k), j)
    hi = torch.maximum(torch.maximum(i, k), j)
    mid = i + k + j - lo - hi
    pairs = (n - idx) * (n - idx + 1) // 2  # triples starting with x: pairs y ≤ z in [x, n)
    before = torch.cumsum(pairs, 0) - pairs  # Σ_{x < lo}
    # Σ_{lo ≤ y < mid} (n − y) = (mid − lo) n − (mid(mid−1) − lo(lo−1))/2
    second = (mid - lo) * n - (mid * (mid - 1) - lo * (lo - 1)) // 2
    full = before[lo] + second + (hi - mid)
    m = n * (n + 1) * (n + 2) // 6
    flat = full.flatten()
    a, b, c = (torch.zeros(m, dtype=torch.long, device=device).scatter(0, flat, t.expand(n, n, n).flatten()) for t in (lo, mid, hi))
    return a, b, c, full


def _second_divided_differences(
    lam: torch.Tensor,
    loewner: torch.Tensor,
    f_second: Scalar,
    closed_form: bool,
    tie_scale: Optional[float],
) -> torch.Tensor:
    """Second divided differences ``F²: (..., n, n, n)``, ``F²[i, k, j] = f[λ_i, λ_k, λ_j]``.

    ``lam: (..., n)`` are the eigenvalues in ascending order (as ``torch.linalg.eigh`` returns
    them; the ordering only affects accuracy, never correctness) and ``loewner: (..., n, n)``
    the first divided differences ``f[λ_i, λ_j]`` (:func:`_loewner`). ``F²`` is symmetric in
    its three indices, so it is computed on the sorted index triples ``lo ≤ mid ≤ hi`` only
    (``≈ n³/6`` entries) and expanded with one gather. With ``lo ≤ mid ≤ hi``,

        f[λ_lo, λ_mid, λ_hi] = (f[λ_mid, λ_hi] − f[λ_lo, λ_mid]) / (λ_hi − λ_lo),

    the first differences being read from ``loewner`` (so their own ties are already
    resolved), and the denominator the largest of the three possible. If the spread
    ``λ_hi − λ_lo`` is at most ``rtol·scale`` (:func:`_tie_rtol2`;
    ``scale = max(|λ_lo|, |λ_hi|, rtol·max_k|λ_k|)``, or the constant ``tie_scale`` when
    given) the value is ``f″(mean)/2``. Both branches are evaluated on sanitised inputs.
    Cost: ``O(n³)`` memory and flops per matrix.
    """
    n = lam.shape[-1]
    a, b, c, full = _sorted_triples(n, lam.device)
    lam_lo, lam_mid, lam_hi = (lam.index_select(-1, t) for t in (a, b, c))  # (..., m)
    flat = loewner.flatten(-2)
    numer = flat.index_select(-1, b * n + c) - flat.index_select(-1, a * n + b)
    spread = lam_hi - lam_lo
    rtol = _tie_rtol2(lam.dtype, closed_form)
    if tie_scale is None:
        spectrum_scale = lam.abs().amax(-1, keepdim=True)  # (..., 1)
        scale = torch.maximum(torch.maximum(lam_lo.abs(), lam_hi.abs()), rtol * spectrum_scale)
    else:
        scale = tie_scale
    tie = spread.abs() <= rtol * scale
    quotient = numer / torch.where(tie, torch.ones_like(spread), spread)
    mean = (lam_lo + lam_mid + lam_hi) / 3.0
    compact = torch.where(tie, 0.5 * f_second(mean), quotient)
    return compact.index_select(-1, full.flatten()).unflatten(-1, (n, n, n))


def _frechet_x_vjp_eigbasis(f2: torch.Tensor, w_t: torch.Tensor, g_t: torch.Tensor) -> torch.Tensor:
    """``A + Aᵀ``, ``A_kj = Σ_i F²[i,k,j] w̃_ik g̃_ij``: the VJP of ``x ↦ D f_x[w]``, eigenbasis.

    Shapes: ``f2 (..., n, n, n)``, ``w_t``, ``g_t`` ``(..., n, n)`` symmetric (broadcast).
    The VJP itself is ``x̄ = U (A + Aᵀ) Uᵀ``. Derivation (tildes: the eigenbasis ``U`` of
    ``x``): by the second-order Daleckii–Krein formula ``D²f_x[w, h] = U M Uᵀ`` with
    ``M_ij = Σ_k F²[i,k,j] (w̃_ik h̃_kj + h̃_ik w̃_kj)``, so for ``G̃ = Uᵀ sym(Ḡ) U``:
    ``⟨Ḡ, D²f_x[w, h]⟩ = ⟨G̃, M⟩ = Σ_kj A_kj h̃_kj + Σ_ik B_ik h̃_ik`` with
    ``A_kj = Σ_i F²[i,k,j] w̃_ik G̃_ij`` and ``B_ik = Σ_j F²[i,k,j] G̃_ij w̃_kj``. ``F²`` is
    fully symmetric and ``w̃``, ``G̃`` are symmetric, hence ``B = Aᵀ`` and
    ``⟨Ḡ, D²f_x[w, h]⟩ = ⟨A + Aᵀ, Uᵀ h U⟩ = ⟨U (A + Aᵀ) Uᵀ, h⟩``.
    """
    a = torch.einsum("...ikj,...ik,...ij->...kj", f2, w_t, g_t)
    return a + a.mT


class _SymFrechet(torch.autograd.Function):
    """``U (L ∘ Uᵀ sym(e) U) Uᵀ`` (or ``L`` replaced by ``1/L``). See :func:`sym_frechet`.

    ``setup_context`` style (``torch.func`` transforms work): the eigen-data are extra,
    non-differentiable outputs. The forward-mode rule (``jvp`` of :class:`_SymFrechetFwd`) is the second-order
    Daleckii–Krein formula: ``d(D f_x[e]) = D f_x[ė] + D²f_x[e, ẋ]``, and for the inverse
    ``y = K⁻¹e``: ``dy = K⁻¹(ė − D²f_x[y, ẋ])``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, e, f, f_prime, f_second, divided_difference, clamp_spd, inverse, tie_scale):
        lam, u = torch.linalg.eigh(sym(x))
        if clamp_spd:
            lam = torch.maximum(lam, _spd_floor(lam))
        loewner = _loewner(lam, f(lam), f_prime, divided_difference)
        weight = torch.reciprocal(loewner) if inverse else loewner
        e_t = u.mT @ sym(e) @ u
        y_t = weight * e_t
        y = sym(u @ y_t @ u.mT)
        # For the x-derivative the relevant direction is w = (D f_x)⁻¹ e = y in inverse mode.
        # (``weight`` is not returned: it may be ``loewner`` itself, and an output returned
        # twice breaks dynamo's tracing; it is recomputed from ``loewner`` where needed.)
        return y, u, lam, loewner, (y_t if inverse else e_t)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, e, _, _, f_second, divided_difference, _, inverse, tie_scale = inputs
        _, u, lam, loewner, w_t = output
        ctx.mark_non_differentiable(u, lam, loewner, w_t)
        ctx.f_second = f_second
        ctx.closed_form = divided_difference is not None
        ctx.inverse = inverse
        ctx.tie_scale = tie_scale
        ctx.shapes = (x.shape, e.shape)
        ctx.save_for_backward(u, lam, loewner, w_t)
        ctx.save_for_forward(u, lam, loewner, w_t)

    @staticmethod
    def backward(ctx, grad_y, *unused):
        # Same policy as sym_funcm: the saved eigendecomposition is detached from x, so a
        # graph built here would silently miss terms; refuse create_graph=True instead.
        if torch.is_grad_enabled():
            raise RuntimeError(
                "sym_frechet and the sym_*_frechet functions support first-order gradients only: "
                "double backward (create_graph=True) through them is not implemented"
            )
        u, lam, loewner, w_t = ctx.saved_tensors
        weight = torch.reciprocal(loewner) if ctx.inverse else loewner
        x_shape, e_shape = ctx.shapes
        g_t = u.mT @ sym(grad_y) @ u  # G̃
        g_w = weight * g_t  # Uᵀ (D f_x)^{±1}[sym Ḡ] U
        grad_x = grad_e = None
        if ctx.needs_input_grad[1]:
            grad_e = sym(u @ g_w @ u.mT).sum_to_size(e_shape)
        if ctx.needs_input_grad[0]:
            f2 = _second_divided_differences(lam, loewner, ctx.f_second, ctx.closed_form, ctx.tie_scale)
            a = _frechet_x_vjp_eigbasis(f2, w_t, g_w if ctx.inverse else g_t)
            # Sum over the batch dims that x was broadcast along before rotating back with U.
            a = a.sum_to_size(lam.shape[:-1] + a.shape[-2:])
            grad_x = sym(u @ a @ u.mT)
            if ctx.inverse:
                grad_x = -grad_x
            grad_x = grad_x.sum_to_size(x_shape)
        return grad_x, grad_e, None, None, None, None, None, None, None


class _SymFrechetFwd(_SymFrechet):
    """:class:`_SymFrechet` plus its forward-mode rule (see :class:`_SymFuncmFwd` for why apart)."""

    @staticmethod
    def jvp(ctx, x_t, e_t, *unused):
        u, lam, loewner, w_t = ctx.saved_tensors
        weight = torch.reciprocal(loewner) if ctx.inverse else loewner
        # eigenbasis tangent before the (inverse) weighting: ė̃, minus D²f_x[y, ẋ] for the inverse
        d = torch.zeros_like(w_t) if e_t is None else u.mT @ sym(e_t) @ u
        m = None
        if x_t is not None:
            xd = u.mT @ sym(x_t) @ u
            f2 = _second_divided_differences(lam, loewner, ctx.f_second, ctx.closed_form, ctx.tie_scale)
            # D²f_x[w, ẋ] in the eigenbasis: M_ij = Σ_k F²_ikj (w̃_ik ẋ̃_kj + ẋ̃_ik w̃_kj); the second
            # term is the transpose of the first (F² fully symmetric, w̃ and ẋ̃ symmetric)
            m = torch.einsum("...ikj,...ik,...kj->...ij", f2, w_t, xd)
            m = m + m.mT
        if ctx.inverse:
            dy_t = weight * (d if m is None else d - m)
        else:
            dy_t = weight * d if m is None else weight * d + m
        return sym(u @ dy_t @ u.mT), None, None, None, None


def _sym_frechet_apply(*args):
    cls = _SymFrechet if torch.compiler.is_compiling() else _SymFrechetFwd
    return cls.apply(*args)[0]


def sym_frechet(
    x: torch.Tensor,
    e: torch.Tensor,
    f: Scalar,
    f_prime: Scalar,
    f_second: Scalar,
    divided_difference: Optional[DividedDifference] = None,
    *,
    clamp_spd: bool = False,
    inverse: bool = False,
    tie_scale: Optional[float] = None,
) -> torch.Tensor:
    """Fréchet derivative ``D f_x[e]`` of a spectral function, differentiable in ``x`` and ``e``.

    For symmetric ``x = U diag(λ) Uᵀ`` and symmetric ``e`` (Daleckii–Krein; Bhatia, *Matrix
    Analysis*, 1997, Thm V.3.3)::

        D f_x[e] = U (F¹ ∘ (Uᵀ e U)) Uᵀ,   F¹_ij = f[λ_i, λ_j]   (f′(λ_i) on ties),

    with ``F¹`` the Loewner matrix of :func:`sym_funcm` (same tie rule, same
    cancellation-free ``divided_difference``). With ``inverse=True`` it returns
    ``(D f_x)⁻¹[e] = U ((Uᵀ e U) / F¹) Uᵀ``, which equals ``D(f⁻¹)_{f(x)}[e]`` (e.g.
    ``(D log_x)⁻¹ = D exp_{log x}``); this needs ``f`` strictly monotone on the spectrum
    (``F¹ ≠ 0``; a zero entry gives inf, it is not checked, to avoid a host sync).

    Backward (custom ``torch.autograd.Function``, one ``eigh`` in the forward, none in the
    backward, ``O(n³)`` per matrix):

    * w.r.t. ``e``: ``ē = U (F¹ ∘ (Uᵀ sym(Ḡ) U)) Uᵀ`` (``D f_x`` is Frobenius self-adjoint;
      ``1/F¹`` for ``inverse``);
    * w.r.t. ``x``: the second-order Daleckii–Krein formula (Bhatia, *Matrix Analysis*,
      §V.3, the ``D²f`` companion of Thm V.3.3; Higham, *Functions of Matrices*, 2008,
      §3.2; Mathias, "A chain rule for matrix functions and applications", SIMAX 17
      (1996))::

          D²f_x[e, h] = U [Σ_k F²_ikj (ẽ_ik h̃_kj + h̃_ik ẽ_kj)] Uᵀ,   F²_ikj = f[λ_i, λ_k, λ_j],

      whose vector–Jacobian product is ``x̄ = U (A + Aᵀ) Uᵀ``, ``A_kj = Σ_i F²_ikj ẽ_ik G̃_ij``,
      ``G̃ = Uᵀ sym(Ḡ) U``. For ``inverse`` (``y = K⁻¹e``, ``K = D f_x`` self-adjoint):
      ``dy = −K⁻¹ D²f_x[y, dx]``, so ``x̄`` is minus the same formula with ``ẽ → ỹ`` and
      ``G̃ → K⁻¹ G̃``. There is no ``1/(λ_i − λ_j)`` eigenvector term: the gradient is finite
      (and correct) at repeated eigenvalues, e.g. ``x = I``, where autograd through ``eigh``
      gives NaN.

    Second divided differences are computed as ``(f[b, c] − f[a, b])/(c − a)`` on the sorted
    triple from the (cancellation-free) first differences, and as ``f″(mean)/2`` when the
    relative spread is below ``eps^{1/3}`` (``eps^{1/4}`` without ``divided_difference``);
    see :func:`_tie_rtol2` for the error balance.

    Args:
        x: ``(..., n, n)`` symmetric (only ``sym(x)`` is read), float32 or float64.
        e: ``(..., n, n)`` symmetric (only ``sym(e)`` is read), same dtype and ``n``; the
            batch shapes of ``x`` and ``e`` broadcast (one ``eigh`` per ``x`` matrix).
        f, f_prime, f_second: the scalar function and its first two derivatives,
            elementwise (``f``, ``f_prime`` as in :func:`sym_funcm`; ``f_second`` is evaluated
            on ``(..., n, n, n)`` means of eigenvalue triples).
        divided_difference: optional cancellation-free ``dd(hi, lo)`` as in :func:`sym_funcm`.
        clamp_spd: clamp the eigenvalues at ``max(eps·λ_max, tiny)`` first, as
            :func:`sym_logm` does, so ``f`` and its derivatives only see positive numbers. The
            formulas are then evaluated at the clamped spectrum (the derivative of ``f`` there,
            not of ``f ∘ clamp``); inactive for numerically positive-definite ``x``.
        inverse: return ``(D f_x)⁻¹[e]`` instead.
        tie_scale: absolute length scale for the three-point tie test (``None``: relative to
            the eigenvalues). Use it for functions whose derivatives vary on a fixed scale
            rather than a relative one (``exp``: ``1.0``).

    Returns:
        ``(..., n, n)`` symmetric, the broadcast batch shape.

    Raises:
        ValueError: ``x`` or ``e`` not ``(..., n, n)`` float32/float64, or mismatched ``n``
            or dtype.
        RuntimeError: in backward with ``create_graph=True``: double backward is not
            implemented (consistent with :func:`sym_funcm`).

    Sources: Daleckii & Krein (1965); Bhatia, *Matrix Analysis* (1997), Thm V.3.3 (first and
    second derivatives of ``f(A)``); Higham, *Functions of Matrices* (2008), §3.2 and Thm 3.6;
    Mathias, SIMAX 17 (1996) 610–620.
    """
    _check_square("sym_frechet", x)
    _check_square("sym_frechet", e)
    if x.shape[-1] != e.shape[-1] or x.dtype != e.dtype:
        raise ValueError(
            f"sym_frechet: x {tuple(x.shape)} {x.dtype} and e {tuple(e.shape)} {e.dtype} "
            "must have the same matrix size and dtype"
        )
    return _sym_frechet_apply(x, e, f, f_prime, f_second, divided_difference, clamp_spd, inverse, tie_scale)


def _log_second(lam: torch.Tensor) -> torch.Tensor:
    return -torch.reciprocal(lam * lam)


def _check_p(name: str, p) -> float:
    if isinstance(p, torch.Tensor):
        raise TypeError(f"{name}: p must be a Python number, not a tensor (a tensor exponent would need a host sync)")
    return float(p)


def _pow_funcs(p: float):
    def f(lam):
        return torch.pow(lam, p)

    def f_prime(lam):
        return p * torch.pow(lam, p - 1.0)

    def f_second(lam):
        return (p * (p - 1.0)) * torch.pow(lam, p - 2.0)

    return f, f_prime, f_second, partial(_dd_pow, p=p)


def sym_logm_frechet(x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``D log_x[e] = U (F¹ ∘ Uᵀ e U) Uᵀ``, ``F¹_ij = log[λ_i, λ_j]``, for SPD ``x``.

    Differentiable in ``x`` (second divided differences of ``log``, ``f″ = −1/λ²``) and
    ``e``; finite at repeated eigenvalues. Eigenvalues clamped at ``max(eps·λ_max, tiny)``
    as in :func:`sym_logm`. Shapes, errors and sources: :func:`sym_frechet`.
    """
    return sym_frechet(x, e, torch.log, torch.reciprocal, _log_second, _dd_log, clamp_spd=True)


def sym_logm_frechet_inv(x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``(D log_x)⁻¹[e] = D exp_{log x}[e] = U ((Uᵀ e U) / F¹) Uᵀ`` for SPD ``x``.

    One ``eigh`` of ``x``, no matrix exponential or ``n² × n²`` solve. Shapes, errors,
    sources: :func:`sym_frechet` (``inverse=True``).
    """
    return sym_frechet(x, e, torch.log, torch.reciprocal, _log_second, _dd_log, clamp_spd=True, inverse=True)


def sym_expm_frechet(x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``D exp_x[e] = U (F¹ ∘ Uᵀ e U) Uᵀ``, ``F¹_ij = exp[λ_i, λ_j]``, for symmetric ``x``.

    Equals the top-right block of ``expm([[x, e], [0, x]])`` (Higham 2008, Thm 3.6) at
    ``O(n³)`` with one ``eigh``. Three-point ties use the absolute scale 1 (``exp`` varies
    on a fixed scale). Shapes, errors, sources: :func:`sym_frechet`.
    """
    return sym_frechet(x, e, torch.exp, torch.exp, torch.exp, _dd_exp, tie_scale=1.0)


def sym_expm_frechet_inv(x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``(D exp_x)⁻¹[e] = D log_{exp x}[e] = U ((Uᵀ e U) / F¹) Uᵀ`` for symmetric ``x``.

    Shapes, errors, sources: :func:`sym_frechet` (``inverse=True``).
    """
    return sym_frechet(x, e, torch.exp, torch.exp, torch.exp, _dd_exp, inverse=True, tie_scale=1.0)


def sym_powm_frechet(x: torch.Tensor, e: torch.Tensor, p: float) -> torch.Tensor:
    """``D (x^p)[e] = U (F¹ ∘ Uᵀ e U) Uᵀ``, ``F¹_ij = (λ_i^p − λ_j^p)/(λ_i − λ_j)``, SPD ``x``.

    ``f″ = p(p − 1) λ^{p−2}``; eigenvalues clamped as in :func:`sym_powm`.

    Raises:
        TypeError: ``p`` is a tensor. Otherwise as :func:`sym_frechet`.
    """
    p = _check_p("sym_powm_frechet", p)
    f, fp, f2, dd = _pow_funcs(p)
    return sym_frechet(x, e, f, fp, f2, dd, clamp_spd=True)


def sym_powm_frechet_inv(x: torch.Tensor, e: torch.Tensor, p: float) -> torch.Tensor:
    """``(D (x^p))⁻¹[e] = D (y^{1/p})_{y = x^p}[e]``, SPD ``x``, ``p ≠ 0`` (``p = 0`` gives inf).

    Raises:
        TypeError: ``p`` is a tensor. Otherwise as :func:`sym_frechet` (``inverse=True``).
    """
    p = _check_p("sym_powm_frechet_inv", p)
    f, fp, f2, dd = _pow_funcs(p)
    return sym_frechet(x, e, f, fp, f2, dd, clamp_spd=True, inverse=True)


def _dd_square(hi: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    """``(hi² − lo²)/(hi − lo) = hi + lo``, exact."""
    return hi + lo


def _square_prime(lam: torch.Tensor) -> torch.Tensor:
    return 2.0 * lam


def _square_second(lam: torch.Tensor) -> torch.Tensor:
    return torch.full_like(lam, 2.0)


def sym_lyapunov(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Solve the Lyapunov equation ``x L + L x = u`` for SPD ``x`` and symmetric ``u``.

    ``L = U (ũ_ij / (λ_i + λ_j)) Uᵀ`` (``x = U diag(λ) Uᵀ``, ``ũ = Uᵀ u U``; Bhatia, *Matrix
    Analysis*, 1997, §VII.2), i.e. the inverse Fréchet derivative of ``x ↦ x²``, whose
    Loewner matrix is ``λ_i + λ_j``: computed as :func:`sym_frechet` with ``inverse=True``, so
    the backward w.r.t. ``x`` (second divided differences of ``λ²``, identically 1) is finite at
    repeated eigenvalues, for every ``n``, at ``O(n³)``. Used by the Bures–Wasserstein metric.

    Args:
        x: ``(..., n, n)`` SPD (eigenvalues clamped at ``max(eps·λ_max, tiny)``).
        u: ``(..., n, n)`` symmetric; batch shapes broadcast with ``x``.

    Returns:
        ``(..., n, n)`` symmetric ``L``.

    Raises:
        ValueError: as :func:`sym_frechet`.
    """
    return sym_frechet(x, u, torch.square, _square_prime, _square_second, _dd_square, clamp_spd=True, inverse=True)


__all__ += [
    "sym_lyapunov",
    "sym_frechet",
    "sym_logm_frechet",
    "sym_logm_frechet_inv",
    "sym_expm_frechet",
    "sym_expm_frechet_inv",
    "sym_powm_frechet",
    "sym_powm_frechet_inv",
]
