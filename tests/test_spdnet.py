"""SPDNet layers (manifolds.nn.spdnet): shapes, SPD outputs, Stiefel weights under RiemannianAdam,
Daleckii–Krein gradients at the identity / repeated eigenvalues / the ReEig threshold, and an
end-to-end classification of two Wishart populations."""

import math

import geoopt
import pytest
import torch

from manifolds import RiemannianAdam, Stiefel
from manifolds.nn.spdnet import BiMap, ExpEig, LogEig, ReEig, SPDNet, sym_vec, sym_unvec

D = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Batches of ≤12×12 matrices: intra-op threading only adds synchronisation, which costs
    # 10-50× on a loaded CI machine. Restored after the module.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _rot(n, seed, dtype=D):
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=dtype))
    return q * torch.sign(torch.diagonal(r))


def _spd_with(eigs, seed=0, dtype=D):
    """U diag(eigs) Uᵀ with a random rotation U (exactly the given spectrum up to rounding)."""
    eigs = torch.as_tensor(eigs, dtype=dtype)
    u = _rot(eigs.shape[-1], seed, dtype)
    return (u * eigs) @ u.mT


def _random_spd(b, n, seed, dtype=D):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(b, n, n, generator=g, dtype=dtype)
    return a @ a.mT / n + 0.1 * torch.eye(n, dtype=dtype)


# ---------------------------------------------------------------------------- BiMap
def test_bimap_shapes_and_channels():
    x3 = _random_spd(5, 7, 0)
    assert BiMap(7, 4, dtype=D)(x3).shape == (5, 4, 4)
    assert BiMap(7, 4, 1, 3, dtype=D)(x3).shape == (5, 3, 4, 4)
    x4 = torch.stack([_random_spd(5, 7, 1), _random_spd(5, 7, 2)], 1)  # (5, 2, 7, 7)
    layer = BiMap(7, 4, 2, 3, dtype=D)
    assert layer.weight.shape == (3, 2, 7, 4)
    y = layer(x4)
    assert y.shape == (5, 3, 4, 4)
    # torchspdnet's bimap_channels: Y[:, o] = Σ_i W[o, i]ᵀ X[:, i] W[o, i]
    w = layer.weight.detach()
    ref = torch.stack([sum(w[o, i].T @ x4[:, i] @ w[o, i] for i in range(2)) for o in range(3)], 1)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)


def test_bimap_output_spd_and_weight_on_stiefel():
    layer = BiMap(10, 6, 2, 2, dtype=D)
    assert isinstance(layer.weight, geoopt.ManifoldParameter)
    assert isinstance(layer.weight.manifold, Stiefel)
    w = layer.weight.detach()
    torch.testing.assert_close(w.mT @ w, torch.eye(6, dtype=D).expand(2, 2, 6, 6), rtol=0, atol=1e-12)
    x = torch.stack([_random_spd(8, 10, 3), _random_spd(8, 10, 4)], 1)
    y = layer(x)
    assert torch.equal(y, y.mT)
    assert torch.linalg.eigvalsh(y).min() > 0
    # a congruence by an orthonormal frame: the identity goes to the identity (per input channel)
    eye = torch.eye(10, dtype=D).expand(3, 2, 10, 10)
    torch.testing.assert_close(layer(eye), 2 * torch.eye(6, dtype=D).expand(3, 2, 6, 6), rtol=0, atol=1e-12)


def test_bimap_validation():
    with pytest.raises(ValueError, match="out_n must be <= in_n"):
        BiMap(3, 4)
    with pytest.raises(ValueError, match="positive int"):
        BiMap(0, 0)
    with pytest.raises(ValueError, match="in_channels"):
        BiMap(4, 2, in_channels=1.5)
    with pytest.raises(ValueError, match="float32 or float64"):
        BiMap(4, 2, dtype=torch.float16)
    layer = BiMap(4, 2, 2, 1, dtype=D)
    with pytest.raises(ValueError, match="in_channels == 1"):
        layer(_random_spd(3, 4, 0))
    with pytest.raises(ValueError, match="2 input channels"):
        layer(_random_spd(3, 4, 0)[:, None])
    with pytest.raises(ValueError, match="size 4"):
        layer(torch.eye(5, dtype=D).expand(3, 2, 5, 5))
    with pytest.raises(ValueError, match=r"\(B, n, n\) or \(B, C_in, n, n\)"):
        layer(torch.eye(4, dtype=D).expand(1, 3, 2, 4, 4))
    with pytest.raises(ValueError, match="dtype"):
        layer(torch.eye(4).expand(3, 2, 4, 4))


def test_bimap_gradcheck():
    layer = BiMap(5, 3, 2, 2, dtype=D)
    x = torch.stack([_random_spd(2, 5, 5), _random_spd(2, 5, 6)], 1).requires_grad_()
    w = layer.weight.detach().clone().requires_grad_()

    def fn(x, w):
        return torch.func.functional_call(layer, {"weight": w}, (x,))

    assert torch.autograd.gradcheck(fn, (x, w))


def test_bimap_stays_on_stiefel_under_riemannian_adam():
    torch.manual_seed(0)
    layer = BiMap(8, 3, 1, 2, dtype=D)
    x = _random_spd(16, 8, 7)
    with torch.no_grad():
        target = BiMap(8, 3, 1, 2, dtype=D)(x)  # reachable: the images under another frame
    opt = RiemannianAdam(layer.parameters(), lr=0.1)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = ((layer(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    w = layer.weight.detach()
    assert isinstance(layer.weight, geoopt.ManifoldParameter)
    err = (w.mT @ w - torch.eye(3, dtype=D)).abs().max().item()
    assert err < 1e-12, err
    assert losses[-1] < 0.35 * losses[0], (losses[0], losses[-1])


# ---------------------------------------------------------------------------- ReEig
def test_reeig_forward_rectifies():
    eps = 0.1
    x = _spd_with([3.0, 1.0, 0.05, 1e-3, -0.5], seed=1)
    y = ReEig(eps)(x)
    lam = torch.linalg.eigvalsh(y)
    torch.testing.assert_close(lam, torch.tensor([eps, eps, eps, 1.0, 3.0], dtype=D), rtol=0, atol=1e-12)
    assert torch.equal(y, y.mT)
    # matches the eigendecomposition definition U max(εI, Σ) Uᵀ
    lam0, u = torch.linalg.eigh(x)
    torch.testing.assert_close(y, (u * lam0.clamp(min=eps)) @ u.mT, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "eigs",
    [
        [3.0, 1.5, 0.7, 0.02, 0.005],  # distinct, straddling ε = 0.1
        [1.0, 1.0, 1.0, 1.0],  # the identity
        [2.0, 2.0, 2.0, 0.01, 0.01],  # repeated above and below ε
        [0.5, 0.5, 0.03, 0.03, 0.03],
    ],
)
def test_reeig_gradcheck(eigs):
    x = _spd_with(eigs, seed=len(eigs)).requires_grad_()
    assert torch.autograd.gradcheck(ReEig(0.1), (x,))


def test_reeig_batched_channels_gradcheck():
    x = torch.stack(
        [
            torch.stack([_spd_with([2.0, 0.05, 0.05], seed=20), torch.eye(3, dtype=D)]),
            torch.stack([_spd_with([0.3, 0.3, 1.0], seed=21), _spd_with([4.0, 1.0, 0.2], seed=22)]),
        ]
    ).requires_grad_()  # (B=2, C=2, 3, 3)
    assert ReEig(0.1)(x).shape == (2, 2, 3, 3)
    assert torch.autograd.gradcheck(ReEig(0.1), (x,))


def test_reeig_gradient_at_identity_is_identity_map():
    # At X = I (ε < 1) ReEig is locally the identity map: d<G, ReEig(X)> = sym(G).
    # torchspdnet's Loewner matrix zeroes the tied off-diagonal entries and would give diag(G).
    x = torch.eye(4, dtype=D).requires_grad_()
    g = torch.randn(4, 4, dtype=D, generator=torch.Generator().manual_seed(0))
    (ReEig()(x) * g).sum().backward()
    torch.testing.assert_close(x.grad, 0.5 * (g + g.mT), rtol=0, atol=1e-14)


def test_reeig_straddling_pair_uses_exact_divided_difference():
    # Eigenvalues ε(1 ± δ) straddle ε: the Loewner entry is (ε(1+δ) − ε)/(2εδ) = 1/2 exactly,
    # not f′ at the midpoint (0 or 1). For diagonal X (U = I) the gradient of y_01 is L ∘ sym(E_01).
    eps, delta = 0.1, 1e-9
    for dtype, d in ((D, delta), (torch.float32, 1e-3)):
        x = torch.diag(torch.tensor([eps * (1 + d), eps * (1 - d), 1.0], dtype=dtype)).requires_grad_()
        ReEig(eps)(x)[0, 1].backward()
        expect = torch.zeros(3, 3, dtype=dtype)
        expect[0, 1] = expect[1, 0] = 0.25
        torch.testing.assert_close(x.grad, expect, rtol=1e-5, atol=1e-7)


def test_reeig_at_threshold_and_degenerate_inputs_is_finite():
    eps = 0.1
    for x in (
        eps * torch.eye(3, dtype=D),  # every eigenvalue exactly ε (not differentiable)
        torch.zeros(3, 3, dtype=D),  # all clamped
        _spd_with([eps, eps, 2.0], seed=3),
    ):
        x = x.clone().requires_grad_()
        y = ReEig(eps)(x)
        g = torch.autograd.grad((y * torch.arange(9.0, dtype=D).view(3, 3)).sum(), x)[0]
        assert torch.isfinite(y).all() and torch.isfinite(g).all()
        assert torch.linalg.eigvalsh(y).min() >= eps * (1 - 1e-12)


def test_reeig_matches_eigh_autograd_for_distinct_eigenvalues():
    eps = 0.1
    x = _spd_with([2.0, 0.9, 0.4, 0.05, 0.01], seed=4)
    g = torch.randn(5, 5, dtype=D, generator=torch.Generator().manual_seed(1))
    x1 = x.clone().requires_grad_()
    (ReEig(eps)(x1) * g).sum().backward()
    x2 = x.clone().requires_grad_()
    lam, u = torch.linalg.eigh(0.5 * (x2 + x2.mT))
    ((u * lam.clamp(min=eps)) @ u.mT * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-9, atol=1e-11)


def test_reeig_validation():
    for bad in (0, -1e-3, float("nan"), float("inf"), "1e-4", True):
        with pytest.raises(ValueError, match="eps"):
            ReEig(bad)
    with pytest.raises(ValueError, match="square"):
        ReEig()(torch.zeros(3, 4, dtype=D))
    with pytest.raises(ValueError, match="float32 or float64"):
        ReEig()(torch.zeros(3, 3, dtype=torch.int64))


# ---------------------------------------------------------------------------- LogEig / ExpEig
@pytest.mark.parametrize("eigs", [[3.0, 1.5, 0.7, 0.2], [1.0, 1.0, 1.0], [2.0, 2.0, 0.5, 0.5, 0.5]])
def test_logeig_expeig_gradcheck(eigs):
    x = _spd_with(eigs, seed=7).requires_grad_()
    assert torch.autograd.gradcheck(LogEig(), (x,))
    assert torch.autograd.gradcheck(LogEig(vectorize=True), (x,))
    s = _spd_with(torch.log(torch.tensor(eigs, dtype=D)), seed=8).requires_grad_()  # symmetric, same ties
    assert torch.autograd.gradcheck(ExpEig(), (s,))
    z = torch.zeros(len(eigs), len(eigs), dtype=D, requires_grad=True)  # log of the identity
    assert torch.autograd.gradcheck(ExpEig(), (z,))


def test_logeig_expeig_inverse_and_vectorisation():
    x = _random_spd(6, 5, 9)
    torch.testing.assert_close(ExpEig()(LogEig()(x)), x, rtol=1e-12, atol=1e-12)
    s = LogEig()(x)
    torch.testing.assert_close(LogEig()(ExpEig()(s)), s, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(LogEig()(torch.eye(5, dtype=D)), torch.zeros(5, 5, dtype=D), rtol=0, atol=0)
    v = LogEig(vectorize=True)(x)
    assert v.shape == (6, 15)
    torch.testing.assert_close(v.norm(dim=-1), s.norm(dim=(-2, -1)), rtol=1e-13, atol=0)  # isometry
    torch.testing.assert_close(sym_unvec(v, 5), s, rtol=0, atol=1e-14)
    torch.testing.assert_close(sym_vec(sym_unvec(v, 5)), v, rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="15"):
        sym_unvec(v[..., :14], 5)
    with pytest.raises(ValueError, match="vectorize"):
        LogEig(vectorize="yes")


def test_float32_matches_float64():
    torch.manual_seed(1)
    x64 = _random_spd(4, 9, 10)
    net = torch.nn.Sequential(BiMap(9, 5, dtype=D), ReEig(0.05), BiMap(5, 4, dtype=D), LogEig(vectorize=True))
    net32 = torch.nn.Sequential(BiMap(9, 5), ReEig(0.05), BiMap(5, 4), LogEig(vectorize=True))
    net32.load_state_dict({k: v.float() for k, v in net.state_dict().items()})
    outs, grads = [], []
    for model, x in ((net, x64), (net32, x64.float())):
        x = x.clone().requires_grad_()
        y = model(x)
        (y.square().sum()).backward()
        outs.append(y.double())
        grads.append(x.grad.double())
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------------------- SPDNet
def test_spdnet_structure_bn_slot_and_validation():
    calls = []

    class Tag(torch.nn.Module):
        def __init__(self, n):
            super().__init__()
            self.n = n
            calls.append(n)

        def forward(self, x):
            assert x.shape[-1] == self.n
            return x

    net = SPDNet(12, [8, 6, 4], 3, bn=Tag, dtype=D)
    kinds = [type(m).__name__ for m in net.feature]
    assert kinds == ["BiMap", "Tag", "ReEig", "BiMap", "Tag", "ReEig", "BiMap", "Tag"]
    assert calls == [8, 6, 4]
    assert net(_random_spd(5, 12, 11)).shape == (5, 3)
    assert net.classifier.in_features == 10
    assert SPDNet(12, [4], 3, vectorize="full", final_reeig=True, dtype=D).classifier.in_features == 16
    for kwargs, msg in (
        (dict(n_in=12, dims=[], n_classes=2), "non-empty"),
        (dict(n_in=12, dims=[8, 10], n_classes=2), "enlarge"),
        (dict(n_in=12, dims=[8], n_classes=0), "n_classes"),
        (dict(n_in=12, dims=[8], n_classes=2, vectorize="diag"), "vectorize"),
        (dict(n_in=12, dims=[8], n_classes=2, bn=3), "callable"),
        (dict(n_in=12, dims=[8], n_classes=2, bn=lambda n: None), "nn.Module"),
    ):
        with pytest.raises(ValueError, match=msg):
            SPDNet(**kwargs)
    with pytest.raises(ValueError, match=r"\(B, n, n\)"):
        net(_random_spd(5, 12, 11)[:, None])


def test_spdnet_param_groups_allow_weight_decay():
    net = SPDNet(8, [6, 4], 2, dtype=D)
    x = _random_spd(5, 8, 13)
    y = torch.tensor([0, 1, 0, 1, 1])
    opt = RiemannianAdam(net.parameters(), lr=0.01, weight_decay=1e-2)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    with pytest.raises(ValueError, match="no canonical origin"):
        opt.step()  # Stiefel weights cannot be decayed towards an origin
    groups = net.param_groups(1e-2)
    assert [len(g["params"]) for g in groups] == [2, 2] and groups[0]["weight_decay"] == 0.0
    opt = RiemannianAdam(groups, lr=0.01)
    net.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    w0 = net.classifier.weight.detach().clone()
    opt.step()
    assert not torch.equal(net.classifier.weight, w0)
    with pytest.raises(ValueError, match="weight_decay"):
        net.param_groups(-1.0)


def test_spdnet_state_dict_round_trip():
    torch.manual_seed(2)
    net = SPDNet(10, [6, 4], 2, dtype=D)
    torch.manual_seed(3)
    other = SPDNet(10, [6, 4], 2, dtype=D)
    x = _random_spd(7, 10, 12)
    assert not torch.allclose(net(x), other(x))
    other.load_state_dict(net.state_dict())
    torch.testing.assert_close(other(x), net(x), rtol=0, atol=0)
    assert isinstance(other.feature[0].weight, geoopt.ManifoldParameter)


def _wishart_classes(n_per_class, n, dof, seed, subspace_seed=100):
    """Sample covariances X = (1/dof) Σ_t z_t z_tᵀ, z ~ N(0, Σ_c) (Wishart(Σ_c/dof, dof)).

    Class 0: Σ_0 = I. Class 1: Σ_1 = V diag(2, 2, ½, ½, 1, …, 1) Vᵀ: same determinant, same
    expected trace up to 0.5, different scale along a random 4-dimensional subspace.
    """
    g = torch.Generator().manual_seed(seed)
    v = _rot(n, subspace_seed)  # the same population for every sample seed
    scales = torch.ones(n, dtype=D)
    scales[:4] = torch.tensor([2.0, 2.0, 0.5, 0.5], dtype=D)
    xs, ys = [], []
    for c, sig_half in enumerate((torch.eye(n, dtype=D), (v * scales.sqrt()) @ v.mT)):
        z = torch.randn(n_per_class, dof, n, generator=g, dtype=D) @ sig_half
        xs.append(z.mT @ z / dof)
        ys.append(torch.full((n_per_class,), c))
    return torch.cat(xs), torch.cat(ys)


def test_spdnet_learns_two_wishart_populations():
    x, y = _wishart_classes(64, 12, 30, seed=0)
    x_te, y_te = _wishart_classes(64, 12, 30, seed=1)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = SPDNet(12, [8, 6], 2, dtype=D)
    opt = RiemannianAdam(net.parameters(), lr=0.02)
    with torch.no_grad():
        acc0 = (net(x).argmax(-1) == y).double().mean().item()
    for _ in range(50):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (net(x).argmax(-1) == y).double().mean().item()
        acc_te = (net(x_te).argmax(-1) == y_te).double().mean().item()
    assert acc > 0.9, (acc0, acc, acc_te)
    assert acc0 < 0.75, acc0  # not solved at initialisation
    assert acc_te > 0.85, (acc0, acc, acc_te)
    for m in net.feature:
        if isinstance(m, BiMap):
            w = m.weight.detach()
            assert (w.mT @ w - torch.eye(w.shape[-1], dtype=D)).abs().max() < 1e-10
    assert math.isfinite(loss.item())
