"""Tests of manifolds.nn.batchnorm: RiemannianBatchNorm, SPDNetBN and LieBN (issue 4, items 2-3).

The guarantees (LieBN Prop. 4.2; Brooks et al. 2019): with an exact batch mean and eps = 0, the
normalized batch has Fréchet mean = bias and Fréchet variance = shift² under the pulled-back
metric, measured independently with manifolds.frechet_mean / frechet_variance.
"""

import geoopt
import pytest
import torch

from manifolds import (
    SO3,
    SPD,
    AffineInvariantMetric,
    LogCholeskyMetric,
    LogEuclideanMetric,
    RiemannianAdam,
    frechet_mean,
    frechet_variance,
)
from manifolds.lie import so3_exp
from manifolds.nn import (
    EuclideanGeometry,
    LieBN,
    RiemannianBatchNorm,
    SO3Geometry,
    SPDAIMGeometry,
    SPDNetBN,
)

F64 = torch.float64
N_SPD = 3

# (id, constructor, independent manifold for the check, controls variance)
CASES = [
    ("spdnetbn", lambda **kw: SPDNetBN(N_SPD, **kw), SPD(N_SPD, AffineInvariantMetric()), False),
    ("aim-1", lambda **kw: LieBN(N_SPD, "AIM", theta=1.0, **kw), SPD(N_SPD, AffineInvariantMetric()), True),
    ("aim-0.5", lambda **kw: LieBN(N_SPD, "AIM", theta=0.5, **kw), SPD(N_SPD, AffineInvariantMetric(theta=0.5)), True),
    ("aim--0.5", lambda **kw: LieBN(N_SPD, "AIM", theta=-0.5, **kw), SPD(N_SPD, AffineInvariantMetric(theta=-0.5)), True),
    (
        "aim-0.5-ab",
        lambda **kw: LieBN(N_SPD, AffineInvariantMetric(theta=0.5, alpha=2.0, beta=0.3), **kw),
        SPD(N_SPD, AffineInvariantMetric(theta=0.5, alpha=2.0, beta=0.3)),
        True,
    ),
    (
        "lem-ab",
        lambda **kw: LieBN(N_SPD, "LEM", alpha=2.0, beta=0.3, **kw),
        SPD(N_SPD, LogEuclideanMetric(alpha=2.0, beta=0.3)),
        True,
    ),
    ("lcm-1", lambda **kw: LieBN(N_SPD, "LCM", theta=1.0, **kw), SPD(N_SPD, LogCholeskyMetric()), True),
    ("lcm-0.5", lambda **kw: LieBN(N_SPD, "LCM", theta=0.5, **kw), SPD(N_SPD, LogCholeskyMetric(theta=0.5)), True),
    ("so3", lambda **kw: LieBN(3, "SO3", **kw), SO3(), True),
]
IDS = [c[0] for c in CASES]


def _spd_batch(shape, n, gen, dtype=F64, spread=0.6):
    """SPD samples ``(*shape, n, n)`` around a common far-from-identity center (per trailing channel)."""
    a = torch.randn(n, n, generator=gen, dtype=dtype)
    center = a @ a.mT + 0.5 * n * torch.eye(n, dtype=dtype)
    s = torch.randn(*shape, n, n, generator=gen, dtype=dtype) * spread
    x = torch.linalg.matrix_exp(0.5 * (s + s.mT))
    L = torch.linalg.cholesky(center)
    return L @ x @ L.mT


def _so3_batch(shape, gen, dtype=F64, spread=0.4):
    c = so3_exp(torch.randn(3, generator=gen, dtype=dtype))
    return c @ so3_exp(spread * torch.randn(*shape, 3, generator=gen, dtype=dtype))


def _inputs(case_id, shape, gen, dtype=F64):
    if case_id == "so3":
        return _so3_batch(shape, gen, dtype)
    return _spd_batch(shape, N_SPD, gen, dtype)


def _random_bias(case_id, shape, gen, dtype=F64):
    if case_id == "so3":
        return so3_exp(torch.randn(*shape, 3, generator=gen, dtype=dtype))
    return _spd_batch(shape, N_SPD, gen, dtype, spread=0.8)


def _set_params(bn, bias, s=0.7):
    with torch.no_grad():
        bn.bias.copy_(bias)
        if bn.shift is not None:
            bn.shift.fill_(s)


# ---------------------------------------------------------------------------- guarantees
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_guarantee_mean_is_bias_variance_is_s2(case):
    cid, make, manifold, controls_var = case
    gen = torch.Generator().manual_seed(1)
    C, B = 2, 12
    bn = make(channels=(C,), eps=0.0, dtype=F64)
    x = _inputs(cid, (B, C), gen)
    bias = _random_bias(cid, (C,), gen)
    _set_params(bn, bias)
    y = bn(x).detach()
    ys = y.movedim(0, 1)  # (C, B, *event)
    # the input batch is far from the bias: the check can fail
    assert (x.mean(0) - bias).abs().max() > 0.1
    m = frechet_mean(manifold, ys, init=bias, max_iter=300)
    torch.testing.assert_close(m, bias, rtol=0, atol=1e-8)
    v = frechet_variance(manifold, ys, mean=bias)
    if controls_var:
        torch.testing.assert_close(v, torch.full((C,), 0.49, dtype=F64), rtol=0, atol=1e-8)
    else:
        # SPDNetBN keeps the dispersion of the input (the translations are isometries)
        v_in = frechet_variance(manifold, x.movedim(0, 1), max_iter=300)
        torch.testing.assert_close(v, v_in, rtol=1e-8, atol=1e-10)


def test_single_karcher_step_is_an_approximation():
    """mean_max_iter=1 (the reference code's default) gives a small but nonzero mean error."""
    gen = torch.Generator().manual_seed(2)
    x = _spd_batch((32,), N_SPD, gen, spread=0.8)
    bias = _spd_batch((), N_SPD, gen)
    errs = {}
    for k in (1, 100):
        bn = SPDNetBN(N_SPD, eps=0.0, mean_max_iter=k, dtype=F64)
        _set_params(bn, bias)
        m = frechet_mean(SPD(N_SPD), bn(x).detach(), max_iter=300)
        errs[k] = (m - bias).abs().max().item()
    assert errs[100] < 1e-10
    assert 1e-6 < errs[1] < 0.5


def test_liebn_aim_and_brooks_same_mean_different_outputs():
    gen = torch.Generator().manual_seed(3)
    x = _spd_batch((16,), N_SPD, gen)
    bias = _spd_batch((), N_SPD, gen)
    a = RiemannianBatchNorm(SPDAIMGeometry(N_SPD), (N_SPD, N_SPD), scale_variance=False, eps=0.0, dtype=F64)
    b = SPDNetBN(N_SPD, eps=0.0, dtype=F64)
    _set_params(a, bias), _set_params(b, bias)
    ya, yb = a(x).detach(), b(x).detach()
    assert (ya - yb).abs().max() > 1e-3
    torch.testing.assert_close(frechet_mean(SPD(N_SPD), ya), frechet_mean(SPD(N_SPD), yb), rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------- Euclidean = BatchNorm1d
def test_euclidean_matches_batchnorm1d():
    """Outputs and running_mean equal torch's; torch's running_var uses the unbiased batch variance."""
    gen = torch.Generator().manual_seed(0)
    B, C = 16, 5
    bn = LieBN((), "euclidean", channels=(C,), dtype=F64)
    ref = torch.nn.BatchNorm1d(C, dtype=F64)
    w = torch.rand(C, generator=gen, dtype=F64) + 0.5
    b = torch.randn(C, generator=gen, dtype=F64)
    with torch.no_grad():
        bn.shift.copy_(w), bn.bias.copy_(b), ref.weight.copy_(w), ref.bias.copy_(b)
    rv_biased = torch.ones(C, dtype=F64)
    for step in range(3):
        x = torch.randn(B, C, generator=gen, dtype=F64) * 3 + 2
        y, yr = bn(x), ref(x)
        torch.testing.assert_close(y, yr, rtol=0, atol=1e-13)
        torch.testing.assert_close(bn.running_mean, ref.running_mean, rtol=0, atol=1e-14)
        rv_biased = 0.9 * rv_biased + 0.1 * x.var(0, unbiased=False)
        torch.testing.assert_close(bn.running_var, rv_biased, rtol=0, atol=1e-14)
    # torch: 0.9^k + Σ 0.1·0.9^(k-1-j)·v_j·B/(B-1): different from ours
    assert (bn.running_var - ref.running_var).abs().min() > 1e-3
    # eval with torch's (unbiased) running variance gives torch's eval output
    with torch.no_grad():
        bn.running_var.copy_(ref.running_var)
    bn.eval(), ref.eval()
    x = torch.randn(B, C, generator=gen, dtype=F64)
    torch.testing.assert_close(bn(x), ref(x), rtol=0, atol=1e-13)


def test_euclidean_backward_matches_batchnorm1d():
    gen = torch.Generator().manual_seed(4)
    B, C = 8, 3
    x = torch.randn(B, C, generator=gen, dtype=F64)
    g = torch.randn(B, C, generator=gen, dtype=F64)
    bn = LieBN(C, "euclidean", channels=(), dtype=F64)  # one vector feature (C,): scalar variance
    assert bn.shift.shape == ()
    ours = LieBN((), "euclidean", channels=(C,), detach_stats=False, dtype=F64)
    ref = torch.nn.BatchNorm1d(C, dtype=F64)
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    (ours(x1) * g).sum().backward()
    (ref(x2) * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours.shift.grad, ref.weight.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------- running statistics
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_momentum_one_gives_batch_statistics(case):
    cid, make, manifold, controls_var = case
    gen = torch.Generator().manual_seed(5)
    bn = make(momentum=1.0, dtype=F64)
    x = _inputs(cid, (12,), gen)
    bn(x)
    m, v = bn.batch_statistics(bn.geometry.deform(x))
    torch.testing.assert_close(bn.running_mean, m, rtol=0, atol=1e-12)
    if controls_var:
        torch.testing.assert_close(bn.running_var, v, rtol=0, atol=1e-12)
        # v is the Fréchet variance (exact mean) under the pulled-back metric
        v_ref = frechet_variance(manifold, x, max_iter=300)
        torch.testing.assert_close(v, v_ref, rtol=1e-9, atol=1e-12)
    # the running mean (co-domain) is the deformed batch Fréchet mean
    m_in = frechet_mean(manifold, x, max_iter=300)
    torch.testing.assert_close(bn.geometry.inv_deform(bn.running_mean), m_in, rtol=0, atol=1e-9)
    assert int(bn.num_batches_tracked) == 1


def test_running_stats_momentum_and_cumulative():
    gen = torch.Generator().manual_seed(6)
    xs = [_spd_batch((10,), N_SPD, gen) for _ in range(3)]
    bn = LieBN(N_SPD, "LEM", momentum=None, dtype=F64)
    ref = LieBN(N_SPD, "LEM", momentum=0.3, dtype=F64)
    for x in xs:
        bn(x), ref(x)
    stats = [bn.batch_statistics(bn.geometry.deform(x)) for x in xs]
    torch.testing.assert_close(bn.running_mean, sum(s[0] for s in stats) / 3, rtol=0, atol=1e-13)
    torch.testing.assert_close(bn.running_var, sum(s[1] for s in stats) / 3, rtol=0, atol=1e-13)
    rm, rv = torch.zeros(N_SPD, N_SPD, dtype=F64), torch.tensor(1.0, dtype=F64)
    for m, v in stats:
        rm, rv = 0.7 * rm + 0.3 * m, 0.7 * rv + 0.3 * v
    torch.testing.assert_close(ref.running_mean, rm, rtol=0, atol=1e-13)
    torch.testing.assert_close(ref.running_var, rv, rtol=0, atol=1e-13)


def test_aim_running_mean_follows_geodesic():
    gen = torch.Generator().manual_seed(7)
    bn = LieBN(N_SPD, "AIM", theta=0.5, momentum=0.25, dtype=F64)
    x1, x2 = _spd_batch((8,), N_SPD, gen), _spd_batch((8,), N_SPD, gen)
    bn(x1)
    r1 = bn.running_mean.clone()
    m2, _ = bn.batch_statistics(bn.geometry.deform(x2))
    bn(x2)
    expected = SPD(N_SPD).geodesic(r1, m2, 0.25)
    torch.testing.assert_close(bn.running_mean, expected, rtol=0, atol=1e-12)
    # first step from the identity
    bn2 = LieBN(N_SPD, "AIM", theta=0.5, momentum=0.25, dtype=F64)
    bn2(x1)
    eye = torch.eye(N_SPD, dtype=F64)
    m1, _ = bn2.batch_statistics(bn2.geometry.deform(x1))
    torch.testing.assert_close(bn2.running_mean, SPD(N_SPD).geodesic(eye, m1, 0.25), rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_eval_uses_running_stats(case):
    cid, make, _, _ = case
    gen = torch.Generator().manual_seed(8)
    bn = make(dtype=F64)
    _set_params(bn, _random_bias(cid, (), gen), 0.9)
    for _ in range(2):
        bn(_inputs(cid, (10,), gen))
    buffers = {k: v.clone() for k, v in bn.named_buffers()}
    x = _inputs(cid, (6,), gen)
    bn.eval()
    y = bn(x)
    for k, v in bn.named_buffers():
        assert torch.equal(v, buffers[k]), k
    expected = bn.normalize(bn.geometry.deform(x), bn.running_mean, bn.running_var)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    bn.train()
    assert (bn(x) - y).abs().max() > 1e-6


def test_refit():
    gen = torch.Generator().manual_seed(9)
    C = 2
    bn = LieBN(N_SPD, "AIM", theta=0.5, channels=(C,), eps=0.0, dtype=F64)
    bias = _spd_batch((C,), N_SPD, gen)
    _set_params(bn, bias)
    for _ in range(3):
        bn(_spd_batch((8, C), N_SPD, gen))
    params = {k: v.detach().clone() for k, v in bn.named_parameters()}
    x_new = _spd_batch((20, C), N_SPD, gen)  # a new "domain"
    bn.eval()
    bn.refit(x_new)
    assert not bn.training
    for k, v in bn.named_parameters():
        assert torch.equal(v, params[k])
    m, v = bn.batch_statistics(bn.geometry.deform(x_new))
    torch.testing.assert_close(bn.running_mean, m, rtol=0, atol=1e-12)
    torch.testing.assert_close(bn.running_var, v, rtol=0, atol=1e-12)
    assert bn.momentum == 0.1
    # eval on the refitted domain now meets the guarantee
    man = SPD(N_SPD, AffineInvariantMetric(theta=0.5))
    ys = bn(x_new).detach().movedim(0, 1)
    torch.testing.assert_close(frechet_mean(man, ys, max_iter=300), bias, rtol=0, atol=1e-8)
    torch.testing.assert_close(frechet_variance(man, ys, mean=bias), torch.full((C,), 0.49, dtype=F64), rtol=0, atol=1e-8)
    # iterable of batches: cumulative average (exact for LEM with equal batch sizes)
    lem = LieBN(N_SPD, "LEM", dtype=F64)
    parts = [_spd_batch((6,), N_SPD, gen) for _ in range(3)]
    lem.refit(iter(parts))
    expected = torch.stack([lem.geometry.deform(p) for p in parts]).mean((0, 1))
    torch.testing.assert_close(lem.running_mean, expected, rtol=0, atol=1e-13)
    assert int(lem.num_batches_tracked) == 3
    with pytest.raises(ValueError, match="at least one batch"):
        lem.refit([])


# ---------------------------------------------------------------------------- gradients
def _sym_input(cid, x):
    """A parametrisation that keeps finite-difference perturbations on the manifold."""
    if cid == "so3":
        base = x.detach()
        return lambda w: base @ so3_exp(w), torch.zeros(x.shape[:-2] + (3,), dtype=F64)
    return lambda a: 0.5 * (a + a.mT), x.detach().clone()


# the detached (eval-mode) check of the (α, β) AIM case adds nothing to aim-0.5's: left out
_GRADCHECK = [(c, d) for c in CASES for d in (True, False) if not (c[0] == "aim-0.5-ab" and d)]


@pytest.mark.parametrize("case,detach", _GRADCHECK, ids=[f"{c[0]}-{'detached' if d else 'through-mean'}" for c, d in _GRADCHECK])
def test_gradcheck(case, detach):
    """detach_stats=False: train mode, gradients through the (fixed-step) Karcher flow;
    detach_stats=True: the statistics are constants, checked in eval mode after a training step."""
    cid, make, _, _ = case
    gen = torch.Generator().manual_seed(10)
    kw = dict(detach_stats=detach, dtype=F64)
    if not detach:
        kw.update(mean_tol=0.0, mean_max_iter=8)  # fixed iteration count: a smooth map
    bn = make(**kw)
    _set_params(bn, _random_bias(cid, (), gen), 0.8)
    if detach:
        bn.train(), bn(_inputs(cid, (5,), gen)), bn.eval()
    x = _so3_batch((4,), gen) if cid == "so3" else _spd_batch((4,), N_SPD, gen, spread=0.3)
    to_x, a0 = _sym_input(cid, x)
    a0 = a0.requires_grad_(True)
    bias0 = bn.bias.detach().clone()
    shift0 = None if bn.shift is None else bn.shift.detach().clone().requires_grad_(True)
    if cid == "so3":
        bias_map = lambda w: bias0 @ so3_exp(w)  # noqa: E731
        b0 = torch.zeros(3, dtype=F64, requires_grad=True)
    else:
        bias_map = lambda a: 0.5 * (a + a.mT)  # noqa: E731
        b0 = bias0.clone().requires_grad_(True)

    def f(a, b, *s):
        params = {"bias": bias_map(b)}
        if s:
            params["shift"] = s[0]
        return torch.func.functional_call(bn, params, (to_x(a),))

    inputs = (a0, b0) + (() if shift0 is None else (shift0,))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)


# ---------------------------------------------------------------------------- dtype, state, identity
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_matches_float64(case):
    cid, make, _, _ = case
    gen = torch.Generator().manual_seed(11)
    x = _inputs(cid, (16,), gen)
    bias = _random_bias(cid, (), gen)
    b64, b32 = make(dtype=F64), make(dtype=torch.float32)
    _set_params(b64, bias), _set_params(b32, bias.float())
    y64, y32 = b64(x), b32(x.float())
    assert y32.dtype == torch.float32
    err = ((y32.double() - y64).abs().max() / y64.abs().max()).item()
    assert err < 1e-4, err
    torch.testing.assert_close(b32.running_mean.double(), b64.running_mean, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(b32.running_var.double(), b64.running_var, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_state_dict_round_trip(case):
    cid, make, _, _ = case
    gen = torch.Generator().manual_seed(12)
    bn = make(channels=(2,), dtype=F64)
    _set_params(bn, _random_bias(cid, (2,), gen), 0.6)
    for _ in range(2):
        bn(_inputs(cid, (8, 2), gen))
    sd = bn.state_dict()
    assert {"bias", "running_mean", "running_var", "num_batches_tracked"} <= set(sd)
    assert ("shift" in sd) == (bn.shift is not None)
    fresh = make(channels=(2,), dtype=F64)
    fresh.load_state_dict(sd)
    assert isinstance(fresh.bias, geoopt.ManifoldParameter)
    torch.testing.assert_close(fresh.bias.detach(), bn.bias.detach(), rtol=0, atol=0)
    x = _inputs(cid, (5, 2), gen)
    bn.eval(), fresh.eval()
    torch.testing.assert_close(fresh(x), bn(x), rtol=0, atol=0)
    assert int(fresh.num_batches_tracked) == 2


@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_identity_inputs_no_nan(case, detach):
    """All inputs = I at identity initialisation: finite outputs and gradients (variance 0, eps > 0)."""
    cid, make, _, _ = case
    n = 3 if cid == "so3" else N_SPD
    bn = make(detach_stats=detach, channels=(2,), dtype=F64)
    x = torch.eye(n, dtype=F64).expand(6, 2, n, n).clone().requires_grad_(True)
    y = bn(x)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, x.detach(), rtol=0, atol=1e-12)
    (y * torch.randn(y.shape, dtype=F64, generator=torch.Generator().manual_seed(0))).sum().backward()
    grads = [x.grad, bn.bias.grad] + ([] if bn.shift is None else [bn.shift.grad])
    for g in grads:
        assert g is not None and torch.isfinite(g).all()
    assert torch.isfinite(bn.running_mean).all() and torch.isfinite(bn.running_var).all()
    bn.eval()
    assert torch.isfinite(bn(x.detach())).all()


# ---------------------------------------------------------------------------- training
def test_bias_trained_by_riemannian_adam():
    gen = torch.Generator().manual_seed(13)
    bn = LieBN(N_SPD, "LEM", dtype=F64)
    target = _spd_batch((), N_SPD, gen)
    x = _spd_batch((16,), N_SPD, gen)
    man = SPD(N_SPD)
    opt = RiemannianAdam(bn.parameters(), lr=0.1)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = man.dist2(bn(x), target).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert bn.bias.manifold is bn.geometry.manifold
    assert bn.bias.manifold.check_point(bn.bias.detach())
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])


# ---------------------------------------------------------------------------- validation
def test_errors():
    with pytest.raises(ValueError, match="metric"):
        LieBN(3, "BWM")
    with pytest.raises(ValueError, match="theta must be 1"):
        LieBN(3, "LEM", theta=0.5)
    with pytest.raises(ValueError, match="no \\(alpha, beta\\)"):
        LieBN(3, "LCM", alpha=2.0)
    with pytest.raises(ValueError, match="SO3"):
        LieBN(4, "SO3")
    with pytest.raises(ValueError, match="not both"):
        LieBN(3, AffineInvariantMetric(theta=0.5), theta=0.5)
    with pytest.raises(ValueError):
        LieBN(3, "AIM", theta=0.0)
    with pytest.raises(ValueError, match="scale_variance"):
        SPDNetBN(3, scale_variance=True)
    with pytest.raises(ValueError, match="momentum"):
        SPDNetBN(3, momentum=1.5)
    with pytest.raises(ValueError, match="mean_max_iter"):
        SPDNetBN(3, mean_max_iter=0)
    with pytest.raises(ValueError, match="event_shape"):
        RiemannianBatchNorm(SO3Geometry(), (4, 4))
    with pytest.raises(ValueError, match="BNGeometry"):
        RiemannianBatchNorm(SO3(), (3, 3))
    bn = LieBN(3, "AIM", channels=(2,))
    with pytest.raises(ValueError, match="shape"):
        bn(torch.eye(3).expand(4, 3, 3, 3))
    with pytest.raises(ValueError, match="event"):
        EuclideanGeometry((2, 3))
