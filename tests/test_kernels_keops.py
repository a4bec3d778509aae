"""KeOps agreement tests of the kernel layer: the KeOps backend against the dense torch backend.

Skipped as a whole, with the probe's reason, when KeOps cannot run on this machine (no C++
compiler, broken install). Every test runs in one xdist worker (``xdist_group("keops")``
with ``--dist loadgroup``) so that no two processes compile into one build folder at once.

Compile budget: each (formula, dtype, reduction, differentiated variable) is one KeOps
compile of 5–20 s on 2 cores, cached in :func:`kernels.keops_build_folder` afterwards. The
bandwidths are module constants because they are baked into the formula strings (another
value is another compile); gradients are taken w.r.t. as few inputs as each check needs.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import kernels
from kernels import _backend, kernel_logsumexp, kernel_sum, knn
from manifolds import SO3, Euclidean, Hyperboloid, PoincareBall, Product, Sphere

pytestmark = [pytest.mark.keops, pytest.mark.xdist_group("keops")]

with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    _OK = kernels.keops_available("cpu")
if not _OK:
    pytest.skip(f"KeOps cannot run here: {_backend._KEOPS_STATE['cpu'][1]}", allow_module_level=True)

F64 = torch.float64
H = 0.7  # the one bandwidth of the float64 formulas
H32 = 0.01  # the float32 near-coincidence check (only those pairs contribute)
RTOL, ATOL = 1e-10, 1e-12


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _rand(M, n, seed):
    return M.random(n, *M.event_shape, dtype=F64, generator=_gen(seed))


def _close(a, b, rtol=RTOL, atol=ATOL):
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


def _sum_and_grads(M, x, y, b, backend, wrt, fn=kernel_sum, **kw):
    """Value and gradients of ``Σ v ⊙ fn(...)`` w.r.t. the inputs named in ``wrt``."""
    ins = {"x": x, "y": y, "b": b}
    leaves = {k: (t.detach().clone().requires_grad_(k in wrt) if t is not None else None) for k, t in ins.items()}
    out = fn(M, leaves["x"], leaves["y"], leaves["b"], bandwidth=H, backend=backend, **kw)
    v = torch.randn(out.shape, dtype=out.dtype, generator=_gen(1))
    grads = torch.autograd.grad((out * v).sum(), [leaves[k] for k in wrt]) if wrt else ()
    return (out.detach(),) + tuple(grads)


def test_sphere_vector_weights_value_grads_and_hvp():
    S = Sphere(2)
    x = _rand(S, 40, 0)
    y = torch.cat([x[:3], -x[3:5], _rand(S, 45, 1)])  # coincident and antipodal pairs
    b = torch.randn(50, 3, dtype=F64, generator=_gen(2))
    for a, c in zip(_sum_and_grads(S, x, y, b, "keops", "xyb"), _sum_and_grads(S, x, y, b, "dense", "xyb")):
        _close(a, c)

    def hvp(backend):
        xs = x.clone().requires_grad_(True)
        out = kernel_sum(S, xs, y, b, bandwidth=H, backend=backend)
        (g,) = torch.autograd.grad((out * b[:40]).sum(), xs, create_graph=True)
        u = torch.randn(xs.shape, dtype=F64, generator=_gen(3))
        return torch.autograd.grad((g * u).sum(), xs)[0]

    _close(hvp("keops"), hvp("dense"))


@pytest.mark.parametrize("name", ["hyperboloid", "so3"])
def test_gaussian_sum_value_and_grad(name):
    M = Hyperboloid(2, c=0.5) if name == "hyperboloid" else SO3()
    x = _rand(M, 30, 10)
    y = torch.cat([x[:2], _rand(M, 33, 11)])
    for a, c in zip(_sum_and_grads(M, x, y, None, "keops", "x"), _sum_and_grads(M, x, y, None, "dense", "x")):
        _close(a, c)


def test_poincare_learnable_curvature_gradient():
    P = PoincareBall(2, c=0.8, learnable=True)
    x, y = _rand(P, 20, 20).detach(), _rand(P, 25, 21).detach()  # samples depend on κ: cut that path
    (raw,) = list(P.parameters())  # the curvature parameter (c = softplus(raw), κ = −c)
    out = {}
    for be in ("keops", "dense"):
        val = kernel_sum(P, x, y, bandwidth=H, backend=be)
        (gk,) = torch.autograd.grad(val.sum(), raw)
        out[be] = (val.detach(), gk)
    for a, c in zip(out["keops"], out["dense"]):
        _close(a, c)
    assert float(out["dense"][1].abs()) > 0


def test_product_sphere_euclidean():
    M = Product(Sphere(2), Euclidean(2))
    x, y = _rand(M, 30, 30), _rand(M, 35, 31)
    _close(kernel_sum(M, x, y, bandwidth=H, backend="keops"), kernel_sum(M, x, y, bandwidth=H, backend="dense"))


def test_sphere_logsumexp():
    S = Sphere(2)
    x, y = _rand(S, 30, 40), _rand(S, 35, 41)
    w = torch.randn(35, dtype=F64, generator=_gen(42))
    _close(kernel_logsumexp(S, x, y, w, bandwidth=H, backend="keops"), kernel_logsumexp(S, x, y, w, bandwidth=H, backend="dense"))


def test_sphere_knn():
    S = Sphere(2)
    x = _rand(S, 30, 50)
    y = torch.cat([x[:4], _rand(S, 60, 51)])
    d_k, i_k = knn(S, x, y, 5, backend="keops")
    d_d, i_d = knn(S, x, y, 5, backend="dense")
    _close(d_k, d_d)
    # indices equal up to ties: the distances they point at agree
    D = kernels.pairwise_distances(S, x, y)
    _close(D.gather(1, i_k), D.gather(1, i_d))
    assert (i_k[:4, 0] == torch.arange(4)).all()


def test_sphere_float32_near_coincident_gradient():
    S = Sphere(2)
    x = _rand(S, 20, 60)
    u = S.proju(x, torch.randn(x.shape, dtype=F64, generator=_gen(61)))
    y = S.expmap(x, 1e-3 * u / u.norm(dim=-1, keepdim=True))
    y[0] = x[0]
    x32, y32 = x.float(), y.float()

    def grad(xx, yy, backend):
        xx = xx.clone().requires_grad_(True)
        out = kernel_sum(S, xx, yy, bandwidth=H32, backend=backend)
        return torch.autograd.grad(out.sum(), xx)[0]

    g32 = grad(x32, y32, "keops")
    g64 = grad(x32.double(), y32.double(), "dense")  # the same rounded points in float64
    assert g32.dtype == torch.float32 and torch.isfinite(g32).all()
    err = (g32.double() - g64).norm(dim=1)
    scale = g64.norm(dim=1)
    assert (err[1:] / scale[1:]).max() < 1e-5
    assert err[0] < 1e-5 * scale[1:].min()
