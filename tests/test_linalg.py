"""Tests for the private symmetric-matrix calculus ``manifolds._linalg``.

Forward values against scipy.linalg (float64, 1e-10), first-order gradients with
``torch.autograd.gradcheck`` at generic and special points (identity, repeated eigenvalue,
condition number 1e6), finiteness where autograd through ``torch.linalg.eigh`` is NaN,
divided differences against mpmath, float32 against float64, the AIM distance against
geomstats (numpy backend, imported lazily) and geoopt, algebraic identities, broadcasting.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.linalg as sla
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck

from manifolds import _linalg as la
from manifolds._linalg import (
    aim_dist,
    spd_generalized_eigvalsh,
    sym,
    sym_expm,
    sym_funcm,
    sym_invsqrtm,
    sym_logm,
    sym_powm,
    sym_sqrtm,
)

F32, F64 = torch.float32, torch.float64


# ---------------------------------------------------------------------- helpers
def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rotation(n: int, g: torch.Generator, batch=()) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(*batch, n, n, dtype=F64, generator=g))
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)


def with_spectrum(eigs, g: torch.Generator, batch=()) -> torch.Tensor:
    """``Q diag(eigs) Qᵀ`` with a random rotation ``Q``, exactly symmetric, float64."""
    eigs = torch.as_tensor(eigs, dtype=F64)
    q = rotation(eigs.shape[-1], g, batch)
    return sym((q * eigs.unsqueeze(-2)) @ q.mT)


def random_spd(n: int, g: torch.Generator, batch=(3,), lo=0.1, hi=10.0) -> torch.Tensor:
    """SPD with eigenvalues log-uniform in ``[lo, hi]``."""
    eigs = torch.exp(torch.empty(*batch, n, dtype=F64).uniform_(math.log(lo), math.log(hi), generator=g))
    return with_spectrum(eigs, g, batch)


def random_sym(n: int, g: torch.Generator, batch=(3,), scale=1.5) -> torch.Tensor:
    return sym(scale * torch.randn(*batch, n, n, dtype=F64, generator=g))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max over the batch of ‖a − b‖_F / max(‖b‖_F, 1)."""
    num = torch.linalg.matrix_norm(a - b)
    den = torch.linalg.matrix_norm(b).clamp(min=1.0)
    return float((num / den).max())


def _sym_log_generic(x):
    # log through the generic path (no closed-form divided difference, wider tie band)
    return sym_funcm(x, torch.log, torch.reciprocal, clamp_spd=True)


def _sym_tanh(x):
    return sym_funcm(x, torch.tanh, lambda t: 1.0 - torch.tanh(t) ** 2)


# (name, function, scipy reference or None, spd-only?)
FUNCS = [
    ("logm", sym_logm, sla.logm, True),
    ("expm", sym_expm, sla.expm, False),
    ("sqrtm", sym_sqrtm, sla.sqrtm, True),
    ("invsqrtm", sym_invsqrtm, lambda m: sla.fractional_matrix_power(m, -0.5), True),
    ("powm(0.3)", lambda x: sym_powm(x, 0.3), lambda m: sla.fractional_matrix_power(m, 0.3), True),
    ("powm(-1.5)", lambda x: sym_powm(x, -1.5), lambda m: sla.fractional_matrix_power(m, -1.5), True),
    ("powm(2)", lambda x: sym_powm(x, 2.0), lambda m: m @ m, True),
    ("funcm-log-generic", _sym_log_generic, sla.logm, True),
    ("funcm-tanh", _sym_tanh, sla.tanhm, False),
]
FUNC_IDS = [f[0] for f in FUNCS]
funcs = pytest.mark.parametrize("name,fn,ref,spd_only", FUNCS, ids=FUNC_IDS)


def scipy_apply(ref, x: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(-1, *x.shape[-2:]).numpy()
    out = np.stack([np.real(ref(m)) for m in flat])
    return torch.from_numpy(out).reshape(x.shape)


# ---------------------------------------------------------------------- basics
def test_sym_is_symmetric_part():
    x = torch.randn(2, 4, 4, dtype=F64, generator=gen(0))
    s = sym(x)
    assert torch.equal(s, s.mT)
    assert torch.allclose(sym(s), s)
    assert torch.allclose(s + 0.5 * (x - x.mT), x)


# ---------------------------------------------------------------------- forward vs scipy
@funcs
@pytest.mark.parametrize("n", [2, 3, 5])
def test_forward_matches_scipy(name, fn, ref, spd_only, n):
    g = gen(n)
    xs = [random_spd(n, g)]
    if not spd_only:
        xs.append(random_sym(n, g))
    for x in xs:
        y = fn(x)
        assert y.shape == x.shape and y.dtype == F64
        assert torch.equal(y, y.mT)
        assert rel_err(y, scipy_apply(ref, x)) < 1e-10, name


# ---------------------------------------------------------------------- gradcheck
def _points(spd_only: bool):
    g = gen(7)
    pts = {
        "random": (random_spd(3, g, batch=(2,)), 1e-6),
        "identity": (torch.eye(3, dtype=F64), 1e-6),
        "repeated": (with_spectrum([2.0, 2.0, 5.0], g), 1e-6),
        # Condition number 1e6. Largest eigenvalue 1 and gradcheck's step reduced to 1e-9:
        # its default step 1e-6 would move the smallest eigenvalue (1e-6) by 100%, and the
        # finite differences would measure the clamp / a different branch, not the derivative.
        "cond1e6": (with_spectrum([1e-6, 1e-3, 1.0], g), 1e-9),
        # The same condition number at unit smallest eigenvalue, default step.
        "cond1e6-scaled": (with_spectrum([1.0, 1e3, 1e6], g), 1e-6),
    }
    if not spd_only:
        pts["indefinite"] = (random_sym(4, g, batch=(2,)), 1e-6)
        pts["zero"] = (torch.zeros(3, 3, dtype=F64), 1e-6)
        pts["repeated-negative"] = (with_spectrum([-1.0, -1.0, 0.5, 0.5], g), 1e-6)
        pts.pop("cond1e6-scaled")  # exp(1e6) overflows: not a meaningful point for expm / tanh
    return pts


GRAD_CASES = [
    (name, fn, spd_only, point)
    for name, fn, _, spd_only in FUNCS
    for point in _points(spd_only)
    # X² at eigenvalues up to 1e6 has entries ~1e12: the finite differences' rounding noise
    # (~eps·1e12/1e-6 ≈ 200) exceeds gradcheck's atol on the Jacobian's zero entries.
    if not (name == "powm(2)" and point == "cond1e6-scaled")
]


@pytest.mark.parametrize("name,fn,spd_only,point", GRAD_CASES, ids=[f"{c[0]}-{c[3]}" for c in GRAD_CASES])
def test_gradcheck(name, fn, spd_only, point):
    x, step = _points(spd_only)[point]
    # gradcheck perturbs one entry x_ij at a time, i.e. asymmetrically. Every function here
    # reads its input only through sym(x), so f(x) == f(sym(x)) exactly and the perturbation
    # of x_ij is the symmetric perturbation (E_ij + E_ji)/2 of sym(x): the numerical Jacobian
    # is a genuine derivative of the matrix function and the analytical one must be its
    # symmetrised gradient. (Naive ``eigh`` code reads one triangle only and fails this
    # check unless wrapped as ``lambda a: f(sym(a))``; we also check that wrapped form.)
    x = x.clone().requires_grad_(True)
    assert gradcheck(fn, (x,), eps=step, atol=1e-5, rtol=1e-3)
    assert gradcheck(lambda a: fn(sym(a)), (x,), eps=step, atol=1e-5, rtol=1e-3)


def test_gradient_is_symmetric_and_double_backward_raises():
    x = random_spd(4, gen(1)).requires_grad_(True)
    w = torch.randn(4, 4, dtype=F64, generator=gen(2))  # asymmetric cotangent
    (gx,) = torch.autograd.grad((sym_logm(x) * w).sum(), x)
    assert torch.equal(gx, gx.mT)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad((sym_logm(x) * w).sum(), x, create_graph=True)


# ---------------------------------------------------------------------- degenerate spectra
def _naive_logm(x):
    lam, u = torch.linalg.eigh(x)
    return (u * torch.log(lam).unsqueeze(-2)) @ u.mT


@pytest.mark.parametrize("diag", [[1.0, 1.0, 1.0], [2.0, 2.0, 5.0]], ids=["identity", "repeated"])
def test_finite_where_torch_eigh_backward_is_not(diag):
    d = torch.tensor(diag, dtype=F64)
    x = torch.diag(d)  # exactly repeated eigenvalues
    w = sym(torch.randn(3, 3, dtype=F64, generator=gen(3)))

    xn = x.clone().requires_grad_(True)
    (_naive_logm(xn) * w).sum().backward()
    assert not torch.isfinite(xn.grad).all()  # torch's eigh backward: 1/(λ_j − λ_i) = inf

    xo = x.clone().requires_grad_(True)
    (sym_logm(xo) * w).sum().backward()
    assert torch.isfinite(xo.grad).all()
    # Exact value: U = I, so the gradient is the Loewner matrix of log times w.
    li, lj = d.unsqueeze(-1), d.unsqueeze(-2)
    loewner = torch.where(li == lj, 1.0 / li, (li.log() - lj.log()) / torch.where(li == lj, 1.0, li - lj))
    assert torch.allclose(xo.grad, loewner * w, rtol=1e-14, atol=0)
    # and a central finite difference along the same cotangent direction
    h = 1e-6
    fd = ((sym_logm(x + h * w) - sym_logm(x - h * w)) * w).sum() / (2 * h)
    assert abs(float(fd) - float((xo.grad * w).sum())) < 1e-8


SCALARS = {
    # name: (matrix function, scalar f for mpmath, f'(λ) as a Python function)
    "logm": (sym_logm, lambda mp, t: mp.log(t), lambda t: 1.0 / t),
    "expm": (sym_expm, lambda mp, t: mp.exp(t), math.exp),
    "sqrtm": (sym_sqrtm, lambda mp, t: mp.sqrt(t), lambda t: 0.5 / math.sqrt(t)),
    "invsqrtm": (sym_invsqrtm, lambda mp, t: 1 / mp.sqrt(t), lambda t: -0.5 * t**-1.5),
    "powm(0.3)": (lambda x: sym_powm(x, 0.3), lambda mp, t: t ** mp.mpf(0.3), lambda t: 0.3 * t**-0.7),
    "powm(-2.5)": (lambda x: sym_powm(x, -2.5), lambda mp, t: t ** mp.mpf(-2.5), lambda t: -2.5 * t**-3.5),
    "funcm-log-generic": (_sym_log_generic, lambda mp, t: mp.log(t), lambda t: 1.0 / t),
}


@pytest.mark.parametrize("name", list(SCALARS))
@pytest.mark.parametrize("rotated", [False, True], ids=["diagonal", "rotated"])
@pytest.mark.parametrize("a", [1.0, 1.5])
def test_close_eigenvalues_no_cancellation(name, rotated, a):
    """Eigenvalues a and a + 1e-9: the Loewner entry is the exact divided difference.

    The plain quotient (f(a) − f(b))/(a − b) loses ~eps·|f|/1e-9 ≈ 1e-7 relative here
    (except where f(a) happens to be exactly representable and 0, as log(1)).
    """
    mp = pytest.importorskip("mpmath")
    fn, f_mp, f_prime = SCALARS[name]
    b = a + 1e-9
    q = rotation(3, gen(4)) if rotated else torch.eye(3, dtype=F64)
    x = sym(q @ torch.diag(torch.tensor([a, b, 3.0], dtype=F64)) @ q.T).requires_grad_(True)
    e01 = torch.zeros(3, 3, dtype=F64)
    e01[0, 1] = e01[1, 0] = 1.0
    # cotangent q E q^T  ->  gradient q (L ∘ E) q^T, so L_01 = (q^T grad q)_01
    (fn(x) * (q @ e01 @ q.T)).sum().backward()
    entry = float((q.T @ x.grad @ q)[0, 1])
    with mp.workdps(50):
        exact = float((f_mp(mp, mp.mpf(b)) - f_mp(mp, mp.mpf(a))) / (mp.mpf(b) - mp.mpf(a)))
    assert abs(entry - exact) <= 1e-10 * abs(exact), (entry, exact)
    assert abs(entry - f_prime(a)) <= 1e-7 * abs(f_prime(a))
    if not rotated and a == 1.5:
        naive = (float(f_mp(mp, mp.mpf(b))) - float(f_mp(mp, mp.mpf(a)))) / (b - a)
        assert abs(naive - exact) > 1e3 * abs(entry - exact)  # what the closed form avoids


DD = {
    "log": (la._dd_log, lambda mp, t: mp.log(t)),
    "exp": (la._dd_exp, lambda mp, t: mp.exp(t)),
    "sqrt": (la._dd_sqrt, lambda mp, t: mp.sqrt(t)),
    "invsqrt": (la._dd_invsqrt, lambda mp, t: 1 / mp.sqrt(t)),
    "pow(0.3)": (lambda h, l: la._dd_pow(h, l, 0.3), lambda mp, t: t ** mp.mpf(0.3)),
    "pow(2.0)": (lambda h, l: la._dd_pow(h, l, 2.0), lambda mp, t: t**2),
    "pow(-1.7)": (lambda h, l: la._dd_pow(h, l, -1.7), lambda mp, t: t ** mp.mpf(-1.7)),
}


@pytest.mark.parametrize("name", list(DD))
def test_divided_differences_against_mpmath(name):
    """Closed-form divided differences over relative gaps 1e-15 … 1e12, against 50 digits."""
    mp = pytest.importorskip("mpmath")
    dd, f_mp = DD[name]
    lo = torch.tensor([1e-3, 0.7, 1.0, 3.0, 40.0], dtype=F64)
    rel = torch.tensor([1e-15, 1e-12, 1e-9, 1e-6, 1e-3, 0.5, 3.0, 1e3, 1e6, 1e12], dtype=F64)
    if name == "exp":  # any sign; gaps up to 1e3 · max(|lo|, 1), and exp(hi) representable
        lo = torch.tensor([-30.0, -1.0, 0.0, 1e-3, 2.0], dtype=F64)
    lo, rel = torch.meshgrid(lo, rel, indexing="ij")
    hi = lo + rel * torch.clamp(lo.abs(), min=1.0)
    keep = (hi > lo) & ((hi < 700.0) if name == "exp" else True)
    lo, hi = lo[keep], hi[keep]
    ours = dd(hi, lo)
    with mp.workdps(60):
        ref = [
            float((f_mp(mp, mp.mpf(float(h))) - f_mp(mp, mp.mpf(float(l)))) / (mp.mpf(float(h)) - mp.mpf(float(l))))
            for h, l in zip(hi, lo)
        ]
    ref = torch.tensor(ref, dtype=F64)
    err = ((ours - ref).abs() / ref.abs()).max()
    assert float(err) < 1e-13, (name, float(err))


@settings(deadline=None, max_examples=25)
@given(
    seed=st.integers(0, 2**31 - 1),
    gaps=st.lists(st.sampled_from([0.0, 1e-12, 1e-8, 1e-4, 0.3, 2.0]), min_size=3, max_size=3),
    which=st.sampled_from(["logm", "expm", "sqrtm", "invsqrtm", "powm(0.3)", "powm(-2.5)", "funcm-log-generic"]),
)
def test_directional_derivative_at_clustered_spectra(seed, gaps, which):
    """<grad, V> equals a central finite difference of f along V, for spectra with exact
    ties and gaps from 1e-12 to 2 (the tie band, the closed forms and the plain quotient)."""
    g = gen(seed)
    eigs = 0.5 + torch.cumsum(torch.tensor([0.0] + gaps, dtype=F64), 0)
    x = with_spectrum(eigs, g)
    v = random_sym(4, g, batch=())
    w = random_sym(4, g, batch=())
    fn = SCALARS[which][0]
    xg = x.clone().requires_grad_(True)
    (fn(xg) * w).sum().backward()
    h = 1e-5
    fd = float(((fn(x + h * v) - fn(x - h * v)) * w).sum()) / (2 * h)
    ad = float((xg.grad * v).sum())
    assert math.isfinite(ad)
    assert abs(ad - fd) <= 1e-6 * max(1.0, abs(fd)), (ad, fd)


def test_clamped_spectrum_is_finite():
    """Singular / slightly indefinite inputs: finite values and gradients, floor documented."""
    x = torch.diag(torch.tensor([0.0, -1e-18, 2.0], dtype=F64))
    floor = torch.finfo(F64).eps * 2.0
    for fn in (sym_logm, sym_sqrtm, sym_invsqrtm, lambda m: sym_powm(m, -1.0), lambda m: sym_powm(m, 0.5)):
        xg = x.clone().requires_grad_(True)
        y = fn(xg)
        assert torch.isfinite(y).all()
        y.sum().backward()
        assert torch.isfinite(xg.grad).all()
        # Clamped eigen-directions get no gradient; the unclamped one gets f'(2).
        assert float(xg.grad[0, 0]) == 0.0 and float(xg.grad[1, 1]) == 0.0
    assert torch.allclose(torch.diagonal(sym_logm(x)), torch.tensor([math.log(floor)] * 2 + [math.log(2.0)], dtype=F64))


# ---------------------------------------------------------------------- float32 vs float64
@funcs
def test_float32_matches_float64(name, fn, ref, spd_only):
    g = gen(11)
    x64 = random_spd(4, g, lo=0.5, hi=4.0) if spd_only else random_sym(4, g, scale=0.7)
    x32 = x64.float()
    w = torch.randn(x64.shape, dtype=F64, generator=g)
    outs = {}
    for x in (x32, x64.clone()):
        x = x.clone().requires_grad_(True)
        y = fn(x)
        (y * w.to(x.dtype)).sum().backward()
        assert y.dtype == x.dtype and x.grad.dtype == x.dtype
        outs[x.dtype] = (y.detach().double(), x.grad.double())
    assert rel_err(outs[F32][0], outs[F64][0]) < 2e-5, name
    assert rel_err(outs[F32][1], outs[F64][1]) < 2e-5, name


# ---------------------------------------------------------------------- identities
@pytest.mark.parametrize("n", [2, 3, 5])
def test_identities(n):
    g = gen(20 + n)
    x = random_spd(n, g)
    eye = torch.eye(n, dtype=F64)
    s = sym_sqrtm(x)
    tol = 1e-12
    assert rel_err(sym_expm(sym_logm(x)), x) < tol
    assert rel_err(s @ s, x) < tol
    assert rel_err(sym_invsqrtm(x) @ s, eye.expand_as(x)) < tol
    assert rel_err(sym_powm(x, 0.5), s) < tol
    assert rel_err(sym_powm(x, 1.0), x) < tol
    assert rel_err(sym_powm(x, -1.0), torch.linalg.inv(x)) < tol
    assert rel_err(sym_powm(x, 0.0), eye.expand_as(x)) < tol
    v = random_sym(n, g)
    assert rel_err(sym_logm(sym_expm(v)), v) < tol
    assert rel_err(sym_funcm(x, torch.log, torch.reciprocal), sym_logm(x)) < tol


# ---------------------------------------------------------------------- shapes and errors
def test_broadcast_shapes():
    g = gen(30)
    x = random_spd(3, g, batch=(2, 4))
    for fn in (sym_logm, sym_expm, sym_sqrtm, sym_invsqrtm, lambda m: sym_powm(m, 0.7)):
        assert fn(x).shape == (2, 4, 3, 3)
        assert fn(x[0, 0]).shape == (3, 3)
    a = random_spd(3, g, batch=(2, 1))
    b = random_spd(3, g, batch=(5,))
    assert spd_generalized_eigvalsh(a, b).shape == (2, 5, 3)
    d = aim_dist(a, b)
    assert d.shape == (2, 5)
    assert torch.allclose(d[1, 3], aim_dist(a[1, 0], b[3]), rtol=1e-14, atol=0)
    assert aim_dist(a[0, 0], b[0]).shape == ()


def test_input_errors():
    with pytest.raises(ValueError, match="square"):
        sym_logm(torch.ones(2, 3, dtype=F64))
    with pytest.raises(ValueError, match="square"):
        sym_expm(torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="dtype"):
        sym_sqrtm(torch.eye(2, dtype=torch.int64))
    with pytest.raises(TypeError, match="Python number"):
        sym_powm(torch.eye(2, dtype=F64), torch.tensor(0.5))
    with pytest.raises(ValueError, match="same matrix size"):
        aim_dist(torch.eye(2, dtype=F64), torch.eye(3, dtype=F64))


# ---------------------------------------------------------------------- generalized eigenvalues, AIM distance
def test_generalized_eigvalsh_matches_scipy_and_flags_non_pd():
    g = gen(40)
    a, b = random_spd(4, g), random_spd(4, g)
    ours = spd_generalized_eigvalsh(a, b)
    ref = torch.from_numpy(np.stack([sla.eigh(bi, ai, eigvals_only=True) for ai, bi in zip(a.numpy(), b.numpy())]))
    assert torch.allclose(ours, ref, rtol=1e-10, atol=0)
    bad = a.clone()
    bad[1] = -bad[1]  # negative definite
    lam = spd_generalized_eigvalsh(bad, b)
    assert torch.isnan(lam[1]).all() and torch.isfinite(lam[[0, 2]]).all()
    with pytest.raises(ValueError, match="not positive definite"):
        spd_generalized_eigvalsh(bad, b, check_errors=True)


def _geomstats_spd_metric(n: int):
    import os

    if os.environ.get("GEOMSTATS_BACKEND", "numpy") != "numpy":
        pytest.skip("geomstats oracle is used with its numpy backend")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spd = pytest.importorskip("geomstats.geometry.spd_matrices")
        return spd.SPDMatrices(n).metric


@pytest.mark.parametrize("n", [2, 3, 5])
def test_aim_dist_matches_geomstats(n):
    metric = _geomstats_spd_metric(n)
    assert type(metric).__name__ == "SPDAffineMetric"
    g = gen(50 + n)
    a, b = random_spd(n, g, batch=(4,)), random_spd(n, g, batch=(4,))
    b[0] = with_spectrum([1e-3] + [1e3] * (n - 1), g)  # condition number 1e6
    ref = torch.from_numpy(np.asarray(metric.dist(b.numpy(), a.numpy())))
    d = aim_dist(a, b)
    assert torch.allclose(d, ref, rtol=1e-10, atol=1e-12)
    assert torch.allclose(aim_dist(b, a), d, rtol=1e-10, atol=0)  # cond 1e6: ~1e-12 observed
    # closed form at scalar multiples: d(a, c·a) = sqrt(n)·|log c|
    assert torch.allclose(aim_dist(a, 3.0 * a), torch.full((4,), math.sqrt(n) * math.log(3.0), dtype=F64))


def test_aim_dist_zero_and_finite_gradients_at_degenerate_pairs():
    g = gen(60)
    a = random_spd(3, g, batch=(2,))
    r = with_spectrum([2.0, 2.0, 5.0], g)
    for x, y, zero in [(a, a.clone(), True), (a, 2.0 * a, False), (torch.eye(3, dtype=F64), r, False)]:
        x = x.clone().requires_grad_(True)
        y = y.clone().requires_grad_(True)
        d = aim_dist(x, y)
        if zero:
            assert float(d.detach().abs().max()) < 1e-14
        d.sum().backward()
        assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()
    # geoopt (eigh-based) is NaN at the same pair (I, R) — the case this module exists for.
    import geoopt

    x = torch.eye(3, dtype=F64, requires_grad=True)
    y = r.clone().requires_grad_(True)
    geoopt.SymmetricPositiveDefinite().dist(x, y).backward()
    assert not torch.isfinite(x.grad).all()


@pytest.mark.parametrize("point", ["random", "scaled", "repeated", "cond1e6"])
def test_aim_dist_gradcheck(point):
    g = gen(70)
    a = {
        "random": random_spd(3, g, batch=(2,)),
        "scaled": torch.eye(3, dtype=F64),
        "repeated": torch.eye(3, dtype=F64),
        "cond1e6": with_spectrum([1.0, 1e3, 1e6], g),
    }[point]
    b = {
        "random": random_spd(3, g, batch=(2,)),
        "scaled": 2.0 * torch.eye(3, dtype=F64),  # all generalized eigenvalues equal to 2
        "repeated": with_spectrum([2.0, 2.0, 5.0], g),
        "cond1e6": random_spd(3, g, batch=()),
    }[point]
    # aim_dist reads a and b through sym(); see test_gradcheck for why that makes the
    # asymmetric one-entry perturbations of gradcheck meaningful.
    assert gradcheck(aim_dist, (a.requires_grad_(True), b.requires_grad_(True)), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_aim_dist_float32():
    g = gen(80)
    a, b = random_spd(5, g, batch=(6,)), random_spd(5, g, batch=(6,))
    d64 = aim_dist(a, b)
    d32 = aim_dist(a.float(), b.float())
    assert d32.dtype == F32
    assert float((d32.double() - d64).abs().max()) < 1e-4


# ---------------------------------------------------------------------------- forward mode / torch.func
@pytest.mark.parametrize("fn", [la.sym_logm, la.sym_expm, la.sym_sqrtm, la.sym_invsqrtm, lambda a: la.sym_powm(a, 0.3)])
def test_forward_mode_jvp_and_vmap(fn):
    """torch.func.jvp gives the Daleckii–Krein Fréchet derivative (finite differences), also at
    the identity and at a repeated eigenvalue; gradcheck's forward-AD check; vmap works."""
    g = torch.Generator().manual_seed(7)
    a = torch.randn(3, 3, dtype=torch.float64, generator=g)
    x = a @ a.mT + 0.5 * torch.eye(3, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=g))
    rep = q @ torch.diag(torch.tensor([1.5, 1.5, 0.7], dtype=torch.float64)) @ q.mT
    e = torch.randn(3, 3, dtype=torch.float64, generator=g)
    e = e + e.mT
    for p in (x, torch.eye(3, dtype=torch.float64), rep):
        _, tangent = torch.func.jvp(fn, (p,), (e,))
        h = 1e-6
        fd = (fn(p + h * e) - fn(p - h * e)) / (2 * h)
        torch.testing.assert_close(tangent, fd, atol=1e-7, rtol=1e-7)
        assert gradcheck(fn, (p.clone().requires_grad_(),), check_forward_ad=True)
    batch = torch.stack([x, rep])
    torch.testing.assert_close(torch.func.vmap(fn)(batch), fn(batch))
