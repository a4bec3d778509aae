"""Tests of manifolds.nn.gyrobn: GyroGeometry and GyroBN (issue 4, items 2-3; Chen et al., ICLR 2025)."""

import pytest
import torch
from torch.func import functional_call

from manifolds import (
    SPD,
    AffineInvariantMetric,
    Euclidean,
    Grassmann,
    Hyperboloid,
    LogCholeskyMetric,
    PoincareBall,
    Stereographic,
    frechet_mean,
    frechet_variance,
)
from manifolds.nn.gyrobn import GyroBN, GyroGeometry

DT = torch.float64
S = 0.7


def _manifold(name, small=False):
    if small:  # small sizes for gradcheck
        return {
            "stereo-1": lambda: Stereographic(2, k=-1.0),
            "stereo-0.3": lambda: Stereographic(2, k=-0.3),
            "stereo+1": lambda: Stereographic(2, k=1.0),
            "hyperboloid": lambda: Hyperboloid(2),
            "grassmann": lambda: Grassmann(4, 2),
            "spd-aim": lambda: SPD(2, "aim"),
            "spd-lem": lambda: SPD(2, "lem"),
            "spd-lcm": lambda: SPD(2, "lcm"),
        }[name]()
    return {
        "stereo-1": lambda: Stereographic(3, k=-1.0),
        "stereo-0.3": lambda: Stereographic(3, k=-0.3),
        "stereo+1": lambda: Stereographic(3, k=1.0),
        "poincare": lambda: PoincareBall(2, c=0.5),
        "hyperboloid": lambda: Hyperboloid(3),
        "grassmann": lambda: Grassmann(5, 2),
        "spd-aim": lambda: SPD(3, "aim"),
        "spd-lem": lambda: SPD(3, "lem"),
        "spd-lcm": lambda: SPD(3, "lcm"),
        "spd-aim-0.5": lambda: SPD(3, AffineInvariantMetric(theta=0.5)),
        "spd-lcm-0.5": lambda: SPD(3, LogCholeskyMetric(theta=0.5)),
    }[name]()


ALL = ["stereo-1", "stereo-0.3", "stereo+1", "poincare", "hyperboloid", "grassmann", "spd-aim", "spd-lem", "spd-lcm",
       "spd-aim-0.5", "spd-lcm-0.5"]


def _batch(M, geometry, n_samples, channels, gen, spread=0.3, offset=0.5, dtype=DT):
    """A cloud of Riemannian radius ~spread around a point at distance ~offset from e, and a random bias."""
    like = torch.zeros(channels + tuple(M.event_shape), dtype=dtype)
    e = geometry.identity(like)

    def tangent(scale, shape):
        return scale * M.proju(e.expand(shape), torch.randn(shape, dtype=dtype, generator=gen))

    cloud = M.expmap(e, tangent(spread, (n_samples,) + like.shape))
    c = M.expmap(e, tangent(offset, like.shape))
    b = M.expmap(e, tangent(offset, like.shape))
    return geometry.translate(cloud, c), b


def _set(bn, bias=None, shift=None):
    with torch.no_grad():
        if bias is not None:
            bn.bias.copy_(bias)
        if shift is not None:
            bn.shift.fill_(shift)


# ---------------------------------------------------------------------------- guarantees
@pytest.mark.parametrize("name", ALL)
def test_output_mean_is_bias_and_variance_is_s2(name):
    """Thm 4.1: converged mean, eps = 0 -> FM(output) = B and mean d²(B, y_i) = s², to 1e-8 (float64)."""
    gen = torch.Generator().manual_seed(3)
    M = _manifold(name)
    ch = (2,)
    bn = GyroBN(M, channels=ch, eps=0.0, dtype=DT)
    x, b = _batch(M, bn.geometry, 12, ch, gen)
    _set(bn, b, S)
    y = bn(x)
    assert y.shape == x.shape
    ys = y.movedim(0, 1)
    # independent check: Fréchet mean of the output on the manifold itself (hyperboloid included)
    m, info = frechet_mean(M, ys, tol=1e-14, max_iter=2000, return_info=True)
    assert info.converged
    assert float(M.dist(m, b).detach().max()) < 1e-8
    var = frechet_variance(M, ys, mean=m)
    torch.testing.assert_close(var, torch.full_like(var, S * S), rtol=0, atol=1e-8)
    # the input batch was not already normalized
    assert float(M.dist(frechet_mean(M, x.movedim(0, 1)), b).min()) > 0.1


def test_grassmann_cayley_is_only_approximate():
    """The reference code's Cayley exponential breaks the mean guarantee (refs §2.3); exact expm keeps it."""
    M = Grassmann(5, 2)
    errs = {}
    for mode in ("exact", "cayley"):
        bn = GyroBN(M, eps=0.0, exp_mode=mode, dtype=DT)
        g = torch.Generator().manual_seed(4)
        x, b = _batch(M, bn.geometry, 16, (), g, offset=0.8)
        _set(bn, b, S)
        m = frechet_mean(M, bn(x), tol=1e-14, max_iter=2000)
        errs[mode] = float(M.dist(m, b).detach())
    assert errs["exact"] < 1e-8
    assert errs["cayley"] > 1e-4


def test_grassmann_centering_returns_identity_subspace():
    M = Grassmann(5, 2)
    geo = GyroGeometry(M)
    p = M.random(4, 5, 2, dtype=DT, generator=torch.Generator().manual_seed(0))
    e = geo.translate(p, p, inverse=True)
    assert float(M.dist(e, geo.identity(p)).max()) < 1e-10


def test_hyperboloid_matches_poincare_ball():
    """GyroBN on the hyperboloid = GyroBN on the ball through the isometry to_poincare."""
    gen = torch.Generator().manual_seed(5)
    H = Hyperboloid(3, c=0.7)
    B = PoincareBall(3, c=0.7)
    bnh = GyroBN(H, eps=0.0, dtype=DT)
    bnb = GyroBN(B, eps=0.0, dtype=DT)
    x, b = _batch(H, bnh.geometry, 12, (), gen)
    _set(bnh, b, S)
    _set(bnb, H.to_poincare(b), S)
    yh, yb = bnh(x), bnb(H.to_poincare(x))
    torch.testing.assert_close(H.to_poincare(yh), yb, rtol=0, atol=1e-10)
    torch.testing.assert_close(H.to_poincare(bnh.running_mean), bnb.running_mean, rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------- Euclidean
def test_euclidean_equals_batchnorm1d():
    gen = torch.Generator().manual_seed(0)
    n_samples, c = 16, 5
    x = torch.randn(n_samples, c, generator=gen, dtype=DT) * 3 + 2
    bn = GyroBN(Euclidean(), channels=c, dtype=DT)
    ref = torch.nn.BatchNorm1d(c, dtype=DT)
    w = torch.rand(c, generator=gen, dtype=DT) + 0.5
    b = torch.randn(c, generator=gen, dtype=DT)
    with torch.no_grad():
        bn.shift.copy_(w), bn.bias.copy_(b), ref.weight.copy_(w), ref.bias.copy_(b)
    torch.testing.assert_close(bn(x), ref(x), rtol=0, atol=1e-13)
    torch.testing.assert_close(bn.running_mean, ref.running_mean, rtol=0, atol=1e-15)
    # torch stores the unbiased variance: running_var = 0.9 + 0.1 v N/(N-1)
    torch.testing.assert_close(0.9 + (bn.running_var - 0.9) * n_samples / (n_samples - 1), ref.running_var)


# ---------------------------------------------------------------------------- running statistics
@pytest.mark.parametrize("name", ["stereo-1", "hyperboloid", "grassmann", "spd-aim"])
def test_momentum_one_gives_batch_statistics(name):
    gen = torch.Generator().manual_seed(6)
    M = _manifold(name)
    bn = GyroBN(M, channels=2, momentum=1.0, eps=0.0, dtype=DT)
    x, _ = _batch(M, bn.geometry, 10, (2,), gen)
    bn(x)
    xs = x.movedim(0, 1)
    m = frechet_mean(M, xs, tol=1e-14, max_iter=1000)
    assert float(M.dist(bn.running_mean, m).max()) < 1e-9
    torch.testing.assert_close(bn.running_var, frechet_variance(M, xs, mean=m), rtol=0, atol=1e-9)
    # eval mode with these statistics reproduces the training output
    y_train = GyroBN(M, channels=2, eps=0.0, dtype=DT)(x)
    bn.eval()
    torch.testing.assert_close(bn(x), y_train, rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", ["stereo-1", "stereo+1", "hyperboloid", "grassmann", "spd-aim", "spd-lem", "spd-lcm"])
def test_gradcheck_eval(name):
    """Eval mode (fixed running statistics): gradcheck w.r.t. input, bias and scale."""
    gen = torch.Generator().manual_seed(7)
    M = _manifold(name, small=True)
    bn = GyroBN(M, momentum=1.0, dtype=DT)
    x, b = _batch(M, bn.geometry, 3, (), gen)
    bn(x)  # running statistics = batch statistics
    bn.eval()
    s = torch.tensor(S, dtype=DT, requires_grad=True)
    x = x.clone().requires_grad_()
    b = b.clone().requires_grad_()

    def f(x, b, s):
        return functional_call(bn, {"bias": b, "shift": s}, (x,))

    assert torch.autograd.gradcheck(f, (x, b, s))


@pytest.mark.parametrize("name", ["stereo-0.3", "spd-aim", "spd-lcm"])
def test_gradcheck_train_through_statistics(name):
    """Training mode with detach_stats=False: gradients through the (converged) Karcher mean and variance."""
    gen = torch.Generator().manual_seed(8)
    M = _manifold(name, small=True)
    bn = GyroBN(M, detach_stats=False, mean_tol=1e-14, mean_max_iter=500, dtype=DT)
    x, _ = _batch(M, bn.geometry, 3, (), gen)
    x = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(bn, (x,), atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("name", ALL)
def test_identity_inputs_no_nan(name):
    """A batch equal to the identity, bias and scale at initialisation: finite output and gradients."""
    M = _manifold(name)
    bn = GyroBN(M, channels=2, dtype=DT)
    like = torch.zeros((4, 2) + tuple(M.event_shape), dtype=DT)
    x = bn.geometry.identity(like).requires_grad_()
    y = bn(x)
    (y * torch.randn_like(y)).sum().backward()
    assert torch.isfinite(y).all()
    for t in (x.grad, bn.bias.grad, bn.shift.grad):
        assert torch.isfinite(t).all()


# ---------------------------------------------------------------------------- dtype, state
@pytest.mark.parametrize("name", ["stereo-1", "hyperboloid", "grassmann", "spd-aim", "spd-lcm"])
def test_float32_matches_float64(name):
    gen = torch.Generator().manual_seed(9)
    M = _manifold(name)
    bn64 = GyroBN(M, channels=2, dtype=DT)
    x, b = _batch(M, bn64.geometry, 8, (2,), gen)
    _set(bn64, b, S)
    bn32 = GyroBN(M, channels=2, dtype=torch.float32)
    bn32.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in bn64.state_dict().items()})
    y64, y32 = bn64(x), bn32(x.float())
    assert y32.dtype == torch.float32
    assert float(M.dist(y32.double(), y64).max().detach()) < 1e-3


@pytest.mark.parametrize("name", ["poincare", "grassmann", "spd-lem"])
def test_state_dict_round_trip(name):
    gen = torch.Generator().manual_seed(10)
    M = _manifold(name)
    bn = GyroBN(M, channels=2, dtype=DT)
    for _ in range(3):
        x, b = _batch(M, bn.geometry, 6, (2,), gen)
        bn(x)
    _set(bn, b, S)
    sd = bn.state_dict()
    assert {"bias", "shift", "running_mean", "running_var", "num_batches_tracked"} <= set(sd)
    bn2 = GyroBN(M, channels=2, dtype=DT)
    bn2.load_state_dict(sd)
    bn.eval(), bn2.eval()
    torch.testing.assert_close(bn2(x), bn(x), rtol=0, atol=0)
    assert int(bn2.num_batches_tracked) == 3


def test_errors():
    with pytest.raises(ValueError, match="gyro-structure"):
        GyroBN(SPD(3, "bwm"))
    with pytest.raises(ValueError, match="exp_mode"):
        GyroBN(Grassmann(4, 2), exp_mode="pade")
    with pytest.raises(ValueError, match="supports"):
        GyroGeometry(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError):
        GyroBN(PoincareBall(3))(torch.zeros(4, 2))
