"""Tests of manifolds.nn.gbwbn: GBWBN (Wang et al., CVPR 2025; issue 4, items 2-3)."""

import pytest
import torch
from torch.func import functional_call

from manifolds import SPD, GeneralizedBuresWassersteinMetric, frechet_mean, frechet_variance
from manifolds._linalg import sym, sym_lyapunov, sym_sqrtm
from manifolds.nn.gbwbn import GBWBN, bw_isometric_transport

DT = torch.float64
S = 0.7


def _spd(gen, *shape, std=0.4, dtype=DT):
    a = torch.randn(shape, dtype=dtype, generator=gen)
    return torch.linalg.matrix_exp(std * sym(a))


def _batch(gen, n_samples, channels, n, spread=0.3, dtype=DT):
    c = _spd(gen, *channels, n, n, dtype=dtype)
    v = spread * sym(torch.randn((n_samples,) + channels + (n, n), dtype=dtype, generator=gen))
    return SPD(n, "aim").expmap(c, v)


def _gbw(bn):
    return SPD(bn.M.shape[-1], GeneralizedBuresWassersteinMetric(bn.M.detach(), theta=bn.geometry.theta))


def _configured(gen, n, channels, theta, variance="frechet"):
    bn = GBWBN(n, theta=theta, channels=channels, eps=0.0, variance=variance, dtype=DT)
    with torch.no_grad():
        bn.M.copy_(_spd(gen, n, n))
        bn.bias.copy_(_spd(gen, *channels, n, n))
        bn.shift.fill_(S)
    return bn


# ---------------------------------------------------------------------------- isometric map
def test_isometric_transport_is_isometry_and_inverse():
    gen = torch.Generator().manual_seed(0)
    p = _spd(gen, 3, 4, 4, std=0.8)
    v = sym(torch.randn(3, 4, 4, dtype=DT, generator=gen))
    bw = SPD(4, "bwm")
    w = bw_isometric_transport(p, v, to_identity=True)
    torch.testing.assert_close(bw.inner(torch.eye(4, dtype=DT), w), bw.inner(p, v))
    torch.testing.assert_close(bw_isometric_transport(p, w, to_identity=False), v)
    # at P = I it is the identity map
    torch.testing.assert_close(bw_isometric_transport(torch.eye(4, dtype=DT), v, to_identity=False), v)


@pytest.mark.parametrize("to_identity", [True, False])
@pytest.mark.parametrize("at_identity", [False, True])
def test_isometric_transport_gradcheck(to_identity, at_identity):
    """Custom backward (exact kernel divided differences): correct, and finite at P = I (repeated eigenvalues)."""
    gen = torch.Generator().manual_seed(1)
    p = torch.eye(3, dtype=DT) if at_identity else _spd(gen, 2, 3, 3, std=0.8)
    p = p.clone().requires_grad_()
    v = sym(torch.randn(2, 3, 3, dtype=DT, generator=gen)).requires_grad_()
    assert torch.autograd.gradcheck(lambda p, v: bw_isometric_transport(sym(p), v, to_identity=to_identity), (p, v))


# ---------------------------------------------------------------------------- guarantees
@pytest.mark.parametrize("theta", [1.0, 0.5])
def test_output_mean_is_bias_and_variance_is_s2(theta):
    """Converged BW barycenter, eps = 0, non-identity M: GBW Fréchet mean = bias, Fréchet variance = s² (1e-8)."""
    gen = torch.Generator().manual_seed(2)
    n, ch = 4, (2,)
    bn = _configured(gen, n, ch, theta)
    x = _batch(gen, 16, ch, n)
    y = bn(x)
    G = _gbw(bn)
    ys = y.movedim(0, 1)
    b = bn.bias.detach()
    # independent: Karcher flow under the (θ, M)-GBW metric itself (not through the BW co-domain)
    m, info = frechet_mean(G, ys, tol=1e-14, max_iter=3000, return_info=True)
    assert info.converged
    # GBW distances of nearby points cancel (d² = tr + tr − 2 tr(...)): compare matrices and the
    # Fréchet gradient at the bias instead
    assert float((m - b).abs().max().detach()) < 1e-8
    grad_at_b = G.logmap(b.unsqueeze(1), ys).mean(1)
    assert float(G.norm(b, grad_at_b).detach().max()) < 1e-8
    var = frechet_variance(G, ys, mean=b)
    torch.testing.assert_close(var, torch.full_like(var, S * S), rtol=0, atol=1e-8)
    assert float((frechet_mean(G, x.movedim(0, 1)) - b).abs().max()) > 0.1  # input was not normalized


def _domain_margin(bn, x):
    """Smallest eigenvalue over the three Exp/Log domain conditions of the BW steps.

    Centering ``Log_I(Exp_I W) = W`` needs ``I + W/2 ≻ 0``; scaling needs ``(1 − t) I + t X̄^{½} ≻ 0``;
    biasing ``Log_B̃(Exp_B̃ V) = V`` needs ``I + L_B̃[V] ≻ 0``.
    """
    g = bn.geometry
    n = x.shape[-1]
    eye = torch.eye(n, dtype=x.dtype)
    z = g.deform(x)
    m = g.frechet_mean(z.movedim(0, 1))
    w = bw_isometric_transport(m, g.codomain.logmap(m, z), to_identity=True)
    c = g.translate(z, m, inverse=True)
    t = (S / torch.sqrt(g.dist2_to_identity(c).mean(0)))[..., None, None]
    sc = g.scale(c, t[..., 0, 0])
    bt = g.deform(bn.bias.detach())
    vb = bw_isometric_transport(bt, 2 * (sym_sqrtm(sc) - eye), to_identity=False)
    mats = (eye + 0.5 * w, (1 - t) * eye + t * sym_sqrtm(c), eye + sym_lyapunov(bt.expand_as(vb), vb))
    return min(float(torch.linalg.eigvalsh(a.detach()).amin()) for a in mats)


def test_guarantee_holds_inside_the_bw_domain():
    gen = torch.Generator().manual_seed(2)
    bn = _configured(gen, 4, (2,), 0.5)
    assert _domain_margin(bn, _batch(gen, 16, (2,), 4)) > 0


def test_guarantee_fails_outside_the_bw_injectivity_domain():
    """A property of the BW geometry, not a bug: for θ = 1.5 and this widely spread batch the
    centered points leave the domain where ``Log_I ∘ Exp_I = id`` (``I + W/2`` not positive
    definite; BW is incomplete), so the centered batch no longer has mean ``I`` and the output
    mean misses the bias."""
    gen = torch.Generator().manual_seed(11)
    n, ch, theta = 4, (2,), 1.5
    bn = _configured(gen, n, ch, theta)
    x = _batch(gen, 16, ch, n, spread=0.5)
    assert _domain_margin(bn, x) < 0
    with pytest.warns(RuntimeWarning, match="left the domain"):
        ys = bn(x).movedim(0, 1)
    mean_err = float((frechet_mean(_gbw(bn), ys, tol=1e-14, max_iter=3000) - bn.bias.detach()).abs().max().detach())
    assert mean_err > 1e-4


def test_variance_paper_mode():
    """variance='paper': v = mean d²_BW(φ(x_i), I)/θ² of the un-centered batch (GBWBN code's cal_var)."""
    gen = torch.Generator().manual_seed(3)
    n, ch, theta = 3, (2,), 0.5
    bn = _configured(gen, n, ch, theta, variance="paper")
    bn.momentum = 1.0
    x = _batch(gen, 10, ch, n)
    y = bn(x)
    G = _gbw(bn)
    phi_x = bn.geometry.deform(x)
    bw = SPD(n, "bwm")
    v_paper = (bw.dist2(torch.eye(n, dtype=DT), phi_x) / theta**2).mean(0)
    torch.testing.assert_close(bn.running_var, v_paper, rtol=1e-10, atol=1e-12)
    fv = frechet_variance(G, x.movedim(0, 1), tol=1e-14, max_iter=3000)
    ys = y.movedim(0, 1)
    out_var = frechet_variance(G, ys, mean=bn.bias.detach())
    torch.testing.assert_close(out_var, S * S * fv / v_paper, rtol=1e-8, atol=1e-10)
    assert float((out_var - S * S).abs().min().detach()) > 1e-3  # the quirk: not s²


def test_identity_metric_theta_one_is_bures_wasserstein():
    gen = torch.Generator().manual_seed(4)
    bn = GBWBN(3, eps=0.0, dtype=DT)
    with torch.no_grad():
        bn.bias.copy_(_spd(gen, 3, 3))
        bn.shift.fill_(S)
    x = _batch(gen, 10, (), 3)
    y = bn(x).detach()
    bw = SPD(3, "bwm")
    m = frechet_mean(bw, y, tol=1e-14, max_iter=3000)
    assert float((m - bn.bias.detach()).abs().max()) < 1e-8
    torch.testing.assert_close(frechet_variance(bw, y, mean=m), torch.tensor(S * S, dtype=DT), rtol=0, atol=1e-8)


# ---------------------------------------------------------------------------- running statistics
def test_momentum_one_gives_batch_statistics():
    gen = torch.Generator().manual_seed(5)
    n, ch, theta = 3, (2,), 0.5
    bn = _configured(gen, n, ch, theta)
    bn.momentum = 1.0
    x = _batch(gen, 10, ch, n)
    y_train = bn(x)
    G = _gbw(bn)
    xs = x.movedim(0, 1)
    m = frechet_mean(G, xs, tol=1e-14, max_iter=3000)
    # the running mean lives in the co-domain of the deformation
    torch.testing.assert_close(bn.geometry.inv_deform(bn.running_mean), m, rtol=0, atol=1e-9)
    torch.testing.assert_close(bn.running_var, frechet_variance(G, xs, mean=m), rtol=0, atol=1e-9)
    bn.eval()
    torch.testing.assert_close(bn(x), y_train, rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("theta", [1.0, 0.5])
def test_gradcheck_eval(theta):
    """Eval mode: gradcheck w.r.t. input, bias, M and scale."""
    gen = torch.Generator().manual_seed(6)
    n = 2
    bn = _configured(gen, n, (), theta)
    bn.momentum = 1.0
    x = _batch(gen, 3, (), n)
    bn(x)
    bn.eval()
    x = x.clone().requires_grad_()
    b = bn.bias.detach().clone().requires_grad_()
    mm = bn.M.detach().clone().requires_grad_()
    s = torch.tensor(S, dtype=DT, requires_grad=True)

    def f(x, b, mm, s):
        # M is read by reference: swap it in and out around the call
        return functional_call(bn, {"bias": sym(b), "M": sym(mm), "shift": s}, (sym(x),))

    assert torch.autograd.gradcheck(f, (x, b, mm, s))


def test_gradcheck_train_through_statistics():
    gen = torch.Generator().manual_seed(7)
    bn = GBWBN(2, theta=0.5, detach_stats=False, mean_tol=1e-14, mean_max_iter=500, dtype=DT)
    x = _batch(gen, 3, (), 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: bn(sym(x)), (x,), atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("theta", [1.0, 0.5])
def test_identity_inputs_no_nan(theta):
    """A batch of identities, bias = M = I, s = 1 (initialisation): finite output and gradients."""
    bn = GBWBN(3, theta=theta, channels=2, dtype=DT)
    x = torch.eye(3, dtype=DT).expand(4, 2, 3, 3).clone().requires_grad_()
    y = bn(x)
    (y * torch.randn_like(y)).sum().backward()
    assert torch.isfinite(y).all()
    for t in (x.grad, bn.bias.grad, bn.M.grad, bn.shift.grad):
        assert torch.isfinite(t).all()


def test_training_step_keeps_parameters_spd():
    from manifolds import RiemannianAdam

    gen = torch.Generator().manual_seed(8)
    bn = GBWBN(3, theta=0.5, dtype=DT)
    opt = RiemannianAdam(bn.parameters(), lr=1e-2)
    for _ in range(3):
        x = _batch(gen, 8, (), 3)
        loss = bn(x).diagonal(dim1=-2, dim2=-1).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in (bn.M, bn.bias):
        assert bool(torch.linalg.cholesky_ex(p.detach())[1] == 0)
    assert float((bn.M.detach() - torch.eye(3, dtype=DT)).abs().max()) > 0  # M is trained


# ---------------------------------------------------------------------------- dtype, state
def test_float32_matches_float64():
    gen = torch.Generator().manual_seed(9)
    n, ch = 3, (2,)
    bn64 = _configured(gen, n, ch, 0.5)
    x = _batch(gen, 8, ch, n)
    bn32 = GBWBN(n, theta=0.5, channels=ch, eps=0.0, dtype=torch.float32)
    bn32.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in bn64.state_dict().items()})
    y64, y32 = bn64(x), bn32(x.float())
    assert y32.dtype == torch.float32
    assert float(((y32.double() - y64).abs().max() / y64.abs().max()).detach()) < 1e-4


@pytest.mark.parametrize("learn_metric", [True, False])
def test_state_dict_round_trip_and_dtype_conversion(learn_metric):
    gen = torch.Generator().manual_seed(10)
    n = 3
    bn = GBWBN(n, theta=0.5, channels=2, learn_metric=learn_metric, dtype=DT)
    with torch.no_grad():
        bn.M.copy_(_spd(gen, n, n))
    for _ in range(3):
        bn(_batch(gen, 6, (2,), n))
    sd = bn.state_dict()
    assert {"bias", "shift", "M", "running_mean", "running_var", "num_batches_tracked"} <= set(sd)
    bn2 = GBWBN(n, theta=0.5, channels=2, learn_metric=learn_metric, dtype=DT)
    bn2.load_state_dict(sd)
    bn.eval(), bn2.eval()
    x = _batch(gen, 5, (2,), n)
    torch.testing.assert_close(bn2(x), bn(x), rtol=0, atol=0)
    # .float() replaces buffers: the geometry must follow the module's M
    bn2.float()
    assert bn2.geometry.m is bn2.M
    torch.testing.assert_close(bn2(x.float()).double(), bn(x), rtol=1e-4, atol=1e-4)


def test_errors():
    with pytest.raises(ValueError, match="variance"):
        GBWBN(3, variance="unbiased")
    with pytest.raises(ValueError, match="positive int"):
        GBWBN(0)
    with pytest.raises(ValueError, match="theta"):
        GBWBN(3, theta=0.0)
    with pytest.raises(ValueError):
        GBWBN(3)(torch.eye(4).expand(2, 4, 4))


# ---------------------------------------------------------------------------- domain of the centering
def _wide_batch(gen, n_samples, n):
    """SPD batch with eigenvalues spread over e^-1.5 .. e^3.5 (the EMG covariances span 0.3 .. 551)."""
    q = torch.linalg.qr(torch.randn(n_samples, n, n, dtype=DT, generator=gen))[0]
    lam = torch.exp(torch.empty(n_samples, n, dtype=DT).uniform_(-1.5, 3.5, generator=gen))
    return sym((q * lam.unsqueeze(-2)) @ q.mT)


def test_out_of_domain_centering_is_reported_and_warned():
    """θ = 1 on a widely spread batch: the centering leaves the BW domain; the layer says so (once) and the mean is off."""
    gen = torch.Generator().manual_seed(11)
    x = _wide_batch(gen, 32, 4)
    bn = GBWBN(4, eps=0.0, dtype=DT)
    assert bn.out_of_domain_fraction is None
    with pytest.warns(RuntimeWarning, match="left the domain"):
        y = bn(x).detach()
    assert bn.out_of_domain_fraction > 0
    m = frechet_mean(SPD(4, "bwm"), y, tol=1e-14, max_iter=3000)
    assert float((m - torch.eye(4, dtype=DT)).abs().max()) > 1e-3  # the guarantee fails there
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bn(x)  # warned once per module


def test_in_domain_centering_no_warning():
    """The same batch with θ = 0.5 stays in the domain (fraction 0, no warning) and the guarantee holds."""
    gen = torch.Generator().manual_seed(11)
    x = _wide_batch(gen, 32, 4)
    bn = GBWBN(4, theta=0.5, eps=0.0, dtype=DT)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = bn(x).detach()
    assert bn.out_of_domain_fraction == 0.0
    G = _gbw(bn)
    m = frechet_mean(G, y, tol=1e-14, max_iter=3000)
    assert float((m - torch.eye(4, dtype=DT)).abs().max()) < 1e-8
    torch.testing.assert_close(frechet_variance(G, y, mean=m), torch.tensor(1.0, dtype=DT), rtol=0, atol=1e-8)
