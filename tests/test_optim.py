"""Tests of manifolds.RiemannianAdam and manifolds.RiemannianSGD."""

from __future__ import annotations

import copy
import io

import geoopt
import pytest
import torch

import manifolds
from manifolds import Euclidean, Product, RiemannianAdam, RiemannianSGD, Sphere

F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _assert_same(a, b, dtype):
    """Bitwise equal, or within 1e-7 relative (float32) / 1e-14 (float64)."""
    if torch.equal(a, b):
        return
    rtol = 1e-7 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * 1e-3)


# ---------------------------------------------------------------------------------------------
# Plain tensors: exactly torch.optim
# ---------------------------------------------------------------------------------------------
SHAPES = [(4, 3), (4, 3), (5,), (), (2, 1, 3)]


def _compare_with_torch(ours_cls, ours_kw, ref_cls, ref_kw, dtype, steps=8, none_grad_at=None):
    g = _gen(1)
    init = [torch.randn(s, generator=g, dtype=dtype) for s in SHAPES]
    a = [torch.nn.Parameter(t.clone()) for t in init]
    b = [torch.nn.Parameter(t.clone()) for t in init]
    opt_a, opt_b = ours_cls(a, **ours_kw), ref_cls(b, **ref_kw)
    for t in range(steps):
        for i, (pa, pb) in enumerate(zip(a, b)):
            if none_grad_at is not None and (t, i) in none_grad_at:
                pa.grad = pb.grad = None
                continue
            gr = torch.randn(pa.shape, generator=g, dtype=dtype)
            pa.grad, pb.grad = gr.clone(), gr.clone()
        opt_a.step()
        opt_b.step()
        for pa, pb in zip(a, b):
            _assert_same(pa.detach(), pb.detach(), dtype)
    return opt_a, opt_b, a, b


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("maximize", [False, True])
def test_adam_equals_torch_adam(dtype, amsgrad, maximize):
    kw = dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, amsgrad=amsgrad, maximize=maximize)
    opt_a, opt_b, a, b = _compare_with_torch(
        RiemannianAdam, kw, torch.optim.Adam, kw, dtype, none_grad_at={(0, 1), (3, 4)}
    )
    for pa, pb in zip(a, b):
        for k in ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ()):
            _assert_same(opt_a.state[pa][k], opt_b.state[pb][k], dtype)
        assert float(opt_a.state[pa]["step"]) == float(opt_b.state[pb]["step"])


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_decoupled_decay_equals_adamw(dtype, amsgrad):
    kw = dict(lr=1e-2, weight_decay=0.1, amsgrad=amsgrad)
    _compare_with_torch(RiemannianAdam, kw, torch.optim.AdamW, kw, dtype)


@pytest.mark.parametrize("maximize", [False, True])
def test_adam_coupled_decay_equals_adam_l2(maximize):
    kw = dict(lr=1e-2, weight_decay=0.1, maximize=maximize)
    _compare_with_torch(RiemannianAdam, dict(kw, decoupled_weight_decay=False), torch.optim.Adam, kw, torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(momentum=0.9),
        dict(momentum=0.9, dampening=0.3),
        dict(momentum=0.9, nesterov=True),
        dict(momentum=0.9, maximize=True),
    ],
)
def test_sgd_equals_torch_sgd(dtype, kw):
    kw = dict(lr=1e-2, **kw)
    _compare_with_torch(RiemannianSGD, kw, torch.optim.SGD, kw, dtype, none_grad_at={(0, 1), (3, 4)})


def test_sgd_coupled_decay_equals_torch_sgd():
    kw = dict(lr=1e-2, momentum=0.9, weight_decay=0.1)
    _compare_with_torch(RiemannianSGD, dict(kw, decoupled_weight_decay=False), torch.optim.SGD, kw, torch.float32)


def test_sgd_decoupled_decay_is_geodesic_step_to_origin():
    x0 = torch.randn(5, generator=_gen(), dtype=F64)
    g = torch.randn(5, generator=_gen(1), dtype=F64)
    p = torch.nn.Parameter(x0.clone())
    p.grad = g.clone()
    RiemannianSGD([p], lr=0.1, weight_decay=0.5).step()
    torch.testing.assert_close(p.detach(), x0 * (1 - 0.1 * 0.5) - 0.1 * g, rtol=1e-15, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# Agreement with geoopt on our Sphere
# ---------------------------------------------------------------------------------------------
def _quadratic(p, A):
    return ((p @ A) * p).sum()


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("betas,steps", [((0.0, 0.999), 20), ((0.9, 0.999), 1)])
def test_adam_matches_geoopt_on_sphere(betas, steps, amsgrad):
    S = Sphere(2)
    x0 = S.random(6, 3, generator=_gen(), dtype=F64)
    A = torch.randn(3, 3, generator=_gen(1), dtype=F64)
    a = geoopt.ManifoldParameter(x0.clone(), manifold=S)
    b = geoopt.ManifoldParameter(x0.clone(), manifold=S)
    opt_a = RiemannianAdam([a], lr=0.05, betas=betas, amsgrad=amsgrad)
    opt_b = geoopt.optim.RiemannianAdam([b], lr=0.05, betas=betas, amsgrad=amsgrad)
    for _ in range(steps):
        for p, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            _quadratic(p, A).backward()
            opt.step()
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=1e-6)
    # geoopt stores the second moment at full shape; ours is one scalar per point
    assert opt_a.state[a]["exp_avg_sq"].shape == (6, 1)
    v_ours, v_geoopt = opt_a.state[a]["exp_avg_sq"], opt_b.state[b]["exp_avg_sq"]
    torch.testing.assert_close(v_ours.expand(6, 3), v_geoopt, atol=1e-12, rtol=0)


# ---------------------------------------------------------------------------------------------
# Convergence: Rayleigh quotient on S^{n-1}
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: RiemannianAdam(ps, lr=0.05),
        lambda ps: RiemannianAdam(ps, lr=0.05, amsgrad=True),
        lambda ps: RiemannianSGD(ps, lr=0.05, momentum=0.9),
        lambda ps: RiemannianSGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    ],
    ids=["adam", "amsgrad", "sgd-momentum", "sgd-nesterov"],
)
def test_rayleigh_quotient_converges_to_top_eigenvector(make_opt):
    n = 10
    g = _gen(3)
    B = torch.randn(n, n, generator=g, dtype=F64)
    A = 0.5 * (B + B.T)
    v_top = torch.linalg.eigh(A).eigenvectors[:, -1]
    S = Sphere(n - 1)
    x = geoopt.ManifoldParameter(S.random(n, generator=g, dtype=F64), manifold=S)
    opt = make_opt([x])
    for _ in range(400):
        opt.zero_grad()
        (-(x @ A @ x)).backward()
        opt.step()
        # points stay on the manifold at every step
        assert abs(float(x.detach().norm()) - 1) < 1e-12
    assert float((x.detach() @ v_top).abs()) > 1 - 1e-6


def test_maximize_on_sphere_equals_minimizing_negative():
    S = Sphere(2)
    x0 = S.random(5, 3, generator=_gen(), dtype=F64)
    A = torch.randn(3, 3, generator=_gen(1), dtype=F64)
    a = geoopt.ManifoldParameter(x0.clone(), manifold=S)
    b = geoopt.ManifoldParameter(x0.clone(), manifold=S)
    opt_a = RiemannianAdam([a], lr=0.05, maximize=True)
    opt_b = RiemannianAdam([b], lr=0.05)
    for _ in range(5):
        opt_a.zero_grad(), opt_b.zero_grad()
        _quadratic(a, A).backward()
        (-_quadratic(b, A)).backward()
        opt_a.step(), opt_b.step()
    assert torch.equal(a.detach(), b.detach())


def test_points_stay_on_sphere_float32():
    S = Sphere(2)
    x = geoopt.ManifoldParameter(S.random(50, 3, generator=_gen()), manifold=S)
    opt = RiemannianAdam([x], lr=0.3)
    for _ in range(100):
        x.grad = torch.randn(50, 3, generator=_gen(7))
        opt.step()
    S.assert_check_point_on_manifold(x.detach())
    S.assert_check_vector_on_tangent(x.detach(), opt.state[x]["exp_avg"], atol=1e-5)


# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------
def _model(seed=0):
    S = Sphere(2)
    g = _gen(seed)
    sph = geoopt.ManifoldParameter(S.random(4, 3, generator=g, dtype=F64), manifold=S)
    sph2 = geoopt.ManifoldParameter(S.random(3, generator=g, dtype=F64), manifold=S)
    w = torch.nn.Parameter(torch.randn(5, generator=g, dtype=F64))
    return [sph, sph2, w]


def _loss(params, t):
    g = _gen(100 + t)
    return sum((p * torch.randn(p.shape, generator=g, dtype=F64)).sum() ** 2 for p in params)


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: RiemannianAdam([{"params": ps[:2]}, {"params": ps[2:], "weight_decay": 0.1}], lr=0.05, amsgrad=True),
        lambda ps: RiemannianSGD([{"params": ps[:2]}, {"params": ps[2:], "weight_decay": 0.1}], lr=0.05, momentum=0.9),
    ],
    ids=["adam", "sgd"],
)
def test_state_dict_round_trip_continues_same_trajectory(make_opt):
    def train(params, opt, t0, t1):
        for t in range(t0, t1):
            opt.zero_grad()
            _loss(params, t).backward()
            opt.step()

    ref = _model()
    opt = make_opt(ref)
    train(ref, opt, 0, 10)

    params = _model()
    opt1 = make_opt(params)
    train(params, opt1, 0, 5)
    buf = io.BytesIO()
    torch.save({"model": [p.detach().clone() for p in params], "opt": opt1.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=False)

    fresh = _model(seed=123)  # different init: everything must come from the checkpoint
    with torch.no_grad():
        for p, s in zip(fresh, saved["model"]):
            p.copy_(s)
    opt2 = make_opt(fresh)
    opt2.load_state_dict(saved["opt"])
    train(fresh, opt2, 5, 10)
    for a, b in zip(ref, fresh):
        assert torch.equal(a.detach(), b.detach())
    if isinstance(opt2, RiemannianAdam):
        st = opt2.state[fresh[0]]
        assert isinstance(st["step"], torch.Tensor) and float(st["step"]) == 10
        assert st["exp_avg_sq"].shape == (4, 1) and st["max_exp_avg_sq"].shape == (4, 1)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_step_changed_from_outside_is_honoured(dtype):
    """The bias corrections follow ``state['step']`` even when it is edited in place
    (the host-side step mirror is then invalid and the device path is used)."""
    x0 = torch.randn(4, 3, generator=_gen(), dtype=dtype)
    a, b = torch.nn.Parameter(x0.clone()), torch.nn.Parameter(x0.clone())
    c = torch.nn.Parameter(x0.clone())  # a second parameter with a different step count
    opt_a = RiemannianAdam([a, c], lr=0.1)
    opt_b = torch.optim.Adam([b], lr=0.1)
    for t in range(6):
        gr = torch.randn(4, 3, generator=_gen(t + 1), dtype=dtype)
        a.grad, b.grad, c.grad = gr.clone(), gr.clone(), gr.clone()
        if t == 3:
            opt_a.state[a]["step"].fill_(40.0)
            opt_b.state[b]["step"].fill_(40.0)
        opt_a.step()
        opt_b.step()
        _assert_same(a.detach(), b.detach(), dtype)
    assert float(opt_a.state[a]["step"]) == 43 and float(opt_a.state[c]["step"]) == 6


def test_second_moment_has_one_scalar_per_factor():
    S = Sphere(2)
    x = geoopt.ManifoldParameter(S.random(7, 3, generator=_gen()), manifold=S)
    y = geoopt.ManifoldParameter(S.random(3, generator=_gen(1)), manifold=S)
    P = Product(Sphere(2), Euclidean(2), Sphere(2))
    z0 = P.random(4, 8, generator=_gen(2))
    z = geoopt.ManifoldParameter(z0.clone(), manifold=P)
    w = torch.nn.Parameter(torch.randn(2, 5))
    opt = RiemannianAdam([x, y, z, w], lr=0.1, amsgrad=True)
    for p in (x, y, z, w):
        p.grad = torch.randn(p.shape, generator=_gen(3))
    opt.step()
    assert opt.state[x]["exp_avg_sq"].shape == (7, 1)
    assert opt.state[x]["max_exp_avg_sq"].shape == (7, 1)
    assert opt.state[y]["exp_avg_sq"].shape == (1,)
    assert opt.state[z]["exp_avg_sq"].shape == (4, 3)  # one per factor
    assert opt.state[w]["exp_avg_sq"].shape == (2, 5)  # Euclidean: coordinate-wise
    assert opt.state[x]["exp_avg"].shape == (7, 3)
    P.assert_check_point_on_manifold(z.detach())
    # second moment of the product = (1 - beta2) * per-factor squared norms of the rgrad
    rg = P.egrad2rgrad(z0, z.grad)
    torch.testing.assert_close(opt.state[z]["exp_avg_sq"], 0.001 * P.component_inner(z0, rg))


# ---------------------------------------------------------------------------------------------
# Weight decay on manifolds
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opt_cls", [RiemannianAdam, lambda ps, **kw: RiemannianSGD(ps, lr=0.1, **kw)])
@pytest.mark.parametrize("manifold", [Sphere(2), Product(Euclidean(1), Sphere(2))], ids=["sphere", "product"])
def test_weight_decay_without_origin_raises(opt_cls, manifold):
    x = geoopt.ManifoldParameter(manifold.random(3, 4 if isinstance(manifold, Product) else 3), manifold=manifold)
    w = torch.nn.Parameter(torch.randn(3))
    x0, w0 = x.detach().clone(), w.detach().clone()
    opt = opt_cls([w, x], weight_decay=0.1)
    x.grad, w.grad = torch.randn_like(x), torch.randn_like(w)
    with pytest.raises(ValueError, match="no canonical origin.*weight_decay=0"):
        opt.step()
    # nothing was updated before the error
    assert torch.equal(x.detach(), x0) and torch.equal(w.detach(), w0)
    # separate groups work
    opt = opt_cls([{"params": [w]}, {"params": [x], "weight_decay": 0.0}], weight_decay=0.1)
    opt.step()
    assert not torch.equal(w.detach(), w0)


def test_weight_decay_on_product_of_euclideans_and_poincare_ball():
    P = Product(Euclidean(2), Euclidean(3))
    x0 = torch.randn(4, 5, generator=_gen(), dtype=F64)
    x = geoopt.ManifoldParameter(x0.clone(), manifold=P)
    x.grad = torch.zeros_like(x)
    RiemannianSGD([x], lr=0.1, weight_decay=0.5).step()
    torch.testing.assert_close(x.detach(), 0.95 * x0, rtol=1e-14, atol=1e-14)

    ball = geoopt.PoincareBall()
    y0 = ball.projx(0.3 * torch.randn(4, 2, generator=_gen(1), dtype=F64))
    y = geoopt.ManifoldParameter(y0.clone(), manifold=ball)
    y.grad = torch.zeros_like(y)
    RiemannianSGD([y], lr=0.1, weight_decay=0.5).step()
    # geodesic decay toward 0: the distance to the origin shrinks by the factor 1 - lr * wd
    torch.testing.assert_close(ball.dist0(y.detach()), 0.95 * ball.dist0(y0), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Argument validation, None / sparse grads
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(lr=-1.0), "learning rate"),
        (dict(betas=(1.0, 0.999)), "beta parameter at index 0"),
        (dict(betas=(0.9, -0.1)), "beta parameter at index 1"),
        (dict(betas=(0.9,)), "pair"),
        (dict(eps=-1e-8), "epsilon"),
        (dict(weight_decay=-0.1), "weight_decay"),
    ],
)
def test_adam_rejects_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        RiemannianAdam([torch.nn.Parameter(torch.zeros(2))], **kw)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(lr=-1.0), "learning rate"),
        (dict(lr=0.1, momentum=-0.5), "momentum"),
        (dict(lr=0.1, weight_decay=-1.0), "weight_decay"),
        (dict(lr=0.1, nesterov=True), "Nesterov"),
        (dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
    ],
)
def test_sgd_rejects_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        RiemannianSGD([torch.nn.Parameter(torch.zeros(2))], **kw)


@pytest.mark.parametrize("opt_cls", [RiemannianAdam, lambda ps: RiemannianSGD(ps, lr=0.1, momentum=0.9)])
def test_params_without_grad_are_skipped(opt_cls):
    S = Sphere(2)
    x = geoopt.ManifoldParameter(S.random(4, 3, generator=_gen()), manifold=S)
    y = geoopt.ManifoldParameter(S.random(4, 3, generator=_gen(1)), manifold=S)
    w = torch.nn.Parameter(torch.randn(3))
    y0, w0 = y.detach().clone(), w.detach().clone()
    opt = opt_cls([x, y, w])
    x.grad = torch.randn(4, 3)
    opt.step()
    assert torch.equal(y.detach(), y0) and torch.equal(w.detach(), w0)
    assert len(opt.state[y]) == 0 and len(opt.state[w]) == 0
    assert len(opt.state[x]) > 0


def test_sparse_grad_raises():
    w = torch.nn.Parameter(torch.randn(3, 2))
    w.grad = torch.randn(3, 2).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        RiemannianAdam([w]).step()


# ---------------------------------------------------------------------------------------------
# Grouped updates
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: RiemannianAdam(ps, lr=0.1, amsgrad=True),
        lambda ps: RiemannianSGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    ],
    ids=["adam", "sgd"],
)
def test_grouped_update_equals_separate_updates(make_opt):
    """Parameters sharing a manifold are batched; each must move as if optimised alone,
    including parameters of different batch shapes and different step counts."""
    shapes = [(4, 3), (3,), (2, 2, 3), (3,)]
    init = [Sphere(2).random(*s, generator=_gen(i), dtype=F64) for i, s in enumerate(shapes)]
    # separate Sphere(2) instances: equal geometry, so they share a bucket
    together = [geoopt.ManifoldParameter(x.clone(), manifold=Sphere(2)) for x in init]
    alone = [geoopt.ManifoldParameter(x.clone(), manifold=Sphere(2)) for x in init]
    opt = make_opt(together)
    opts = [make_opt([p]) for p in alone]
    for t in range(6):
        for i, (a, b) in enumerate(zip(together, alone)):
            if (t + i) % 3 == 0:  # different parameters skip different steps
                a.grad = b.grad = None
                continue
            gr = torch.randn(a.shape, generator=_gen(10 * t + i), dtype=F64)
            a.grad, b.grad = gr.clone(), gr.clone()
        opt.step()
        for o in opts:
            o.step()
        for a, b in zip(together, alone):
            torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=1e-14)


def test_geoopt_manifolds_are_supported():
    # geoopt's own sphere (exp map + projection transport) and Euclidean
    sph = geoopt.SphereExact()
    x = geoopt.ManifoldParameter(sph.random(5, 3, dtype=F64), manifold=sph)
    eu = geoopt.Euclidean(ndim=1)
    init = torch.randn(4, 2, generator=_gen(), dtype=F64)
    e = geoopt.ManifoldParameter(init.clone(), manifold=eu)
    ref = torch.nn.Parameter(init.clone())
    opt = RiemannianAdam([x, e], lr=0.1)
    ref_opt = torch.optim.Adam([ref], lr=0.1)
    for t in range(5):
        x.grad = torch.randn(5, 3, generator=_gen(t), dtype=F64)
        e.grad = torch.randn(4, 2, generator=_gen(50 + t), dtype=F64)
        ref.grad = e.grad.clone()
        opt.step()
        ref_opt.step()
    assert torch.equal(e.detach(), ref.detach())
    torch.testing.assert_close(x.detach().norm(dim=-1), torch.ones(5, dtype=F64))
    assert opt.state[x]["exp_avg_sq"].shape == (5, 1)


def test_step_does_not_sync_with_host(monkeypatch):
    """No .item() / bool() / float() on tensors inside step() (DESIGN.md: no host syncs)."""
    S = Sphere(2)
    params = [geoopt.ManifoldParameter(S.random(4, 3), manifold=S), geoopt.ManifoldParameter(S.random(3), manifold=S)]
    params.append(torch.nn.Parameter(torch.randn(3)))
    opts = [
        RiemannianAdam([{"params": params[:2]}, {"params": params[2:], "weight_decay": 0.1}], amsgrad=True),
        RiemannianSGD([{"params": params[:2]}, {"params": params[2:], "weight_decay": 0.1}], lr=0.1, momentum=0.9),
    ]

    def boom(*args, **kwargs):
        raise AssertionError("host sync in step()")

    for opt in opts:
        for _ in range(2):
            for p in params:
                p.grad = torch.randn(p.shape)
            with monkeypatch.context() as mp:
                for name in ("item", "__bool__", "__float__", "__int__", "tolist"):
                    mp.setattr(torch.Tensor, name, boom)
                opt.step()


def test_exported_from_package():
    assert "RiemannianAdam" in manifolds.__all__ and "RiemannianSGD" in manifolds.__all__
    assert issubclass(RiemannianAdam, torch.optim.Optimizer) and issubclass(RiemannianSGD, torch.optim.Optimizer)
    assert copy.deepcopy(RiemannianAdam([torch.nn.Parameter(torch.zeros(1))]).state_dict())["param_groups"][0][
        "decoupled_weight_decay"
    ]


@pytest.mark.parametrize("opt_cls", [RiemannianAdam, lambda ps: RiemannianSGD(ps, lr=0.01, momentum=0.9)])
@pytest.mark.parametrize(
    "manifold,make_point",
    [
        (geoopt.Stiefel(), lambda m: m.random(3, 5, 2, dtype=F64)),
        (geoopt.PoincareBall(), lambda m: m.projx(0.3 * torch.randn(4, 2, generator=_gen(), dtype=F64))),
        (geoopt.SymmetricPositiveDefinite(), lambda m: m.random(2, 3, 3, dtype=F64)),
        (geoopt.ProductManifold((geoopt.Sphere(), 3), (geoopt.Euclidean(1), 2)), lambda m: m.random(4, 5, dtype=F64)),
    ],
    ids=["stiefel", "poincare", "spd", "geoopt-product"],
)
def test_geoopt_manifolds_smoke(opt_cls, manifold, make_point):
    x = geoopt.ManifoldParameter(make_point(manifold), manifold=manifold)
    opt = opt_cls([x])
    for _ in range(3):
        opt.zero_grad()
        (x**2).sum().backward()
        opt.step()
    manifold.assert_check_point_on_manifold(x.detach(), atol=1e-6)
