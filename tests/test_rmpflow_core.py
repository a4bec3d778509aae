"""Tests of manifold_rl.rmpflow.core and gds: RMP algebra, task-map Jacobians, curvature terms, Lyapunov."""

import pytest
import torch

from manifold_rl.rmpflow import (
    AffineMap,
    ComposedMap,
    FunctionMap,
    GDSLeaf,
    IdentityMap,
    Leaf,
    RMPFlow,
    RMPRoot,
    SliceMap,
    curvature_terms,
    lyapunov,
    pullback_metrics,
)

D = torch.float64


def _fn(q):
    return torch.stack([torch.sin(q[:, 0]) * q[:, 1], q[:, 0] ** 2 + torch.cos(q[:, 1] * q[:, 2]),
                        q[:, 2] ** 3 - q[:, 0], torch.exp(0.3 * q[:, 1])], -1)


def _fd_reference(fn, q, qd, h=1e-5):
    """Reference J and J̇q̇ by plain loops of central differences (float64)."""
    B, n = q.shape
    J = torch.zeros(B, fn(q).shape[1], n, dtype=D)
    for k in range(n):
        e = torch.zeros(n, dtype=D)
        e[k] = h
        J[:, :, k] = (fn(q + e) - fn(q - e)) / (2 * h)
    h2 = 1e-4
    jd = (fn(q + h2 * qd) - 2 * fn(q) + fn(q - h2 * qd)) / h2 ** 2
    return J, jd


class ConstLeaf(Leaf):
    """Canonical leaf with a fixed SPD metric and acceleration a = -K x - C xd."""

    def __init__(self, dim, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        A = torch.randn(dim, dim, generator=g, dtype=D)
        self.dim = dim
        self.register_buffer("Mc", A @ A.T + torch.eye(dim, dtype=D))
        self.k = torch.nn.Parameter(torch.tensor(1.5, dtype=D))

    def canonical(self, x, xd):
        M = self.Mc.to(x.dtype).expand(x.shape[0], self.dim, self.dim)
        return -self.k.to(x.dtype) * x - 0.7 * xd, M


# ---------------------------------------------------------------------------------------------
# task maps
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["forward", "fd"])
def test_function_map_modes_match_finite_differences(mode):
    torch.manual_seed(0)
    q, qd = torch.randn(5, 3, dtype=D), torch.randn(5, 3, dtype=D)
    m = FunctionMap(_fn, 3, 4, jacobian_mode=mode)
    out = m(q, qd)
    J, jd = _fd_reference(_fn, q, qd)
    assert torch.allclose(out.x, _fn(q))
    assert torch.allclose(out.J, J, atol=1e-8)
    assert torch.allclose(out.xd, torch.einsum("bmn,bn->bm", J, qd), atol=1e-8)
    assert torch.allclose(out.Jdot_qd, jd, atol=1e-5)


def test_function_map_three_modes_agree_and_exact_jdot():
    torch.manual_seed(1)
    q, qd = torch.randn(4, 3, dtype=D), torch.randn(4, 3, dtype=D)

    def jac(qq):  # analytic Jacobian of _fn
        z = torch.zeros_like(qq[:, 0])
        return torch.stack([
            torch.stack([torch.cos(qq[:, 0]) * qq[:, 1], torch.sin(qq[:, 0]), z], -1),
            torch.stack([2 * qq[:, 0], -torch.sin(qq[:, 1] * qq[:, 2]) * qq[:, 2], -torch.sin(qq[:, 1] * qq[:, 2]) * qq[:, 1]], -1),
            torch.stack([-torch.ones_like(z), z, 3 * qq[:, 2] ** 2], -1),
            torch.stack([z, 0.3 * torch.exp(0.3 * qq[:, 1]), z], -1)], -2)

    m = FunctionMap(_fn, 3, 4, jacobian_fn=jac)
    assert m.jacobian_mode == "analytic"
    outs = {mode: m.evaluate(q, qd, mode) for mode in ("analytic", "forward", "fd")}
    m.exact_jdot = True
    exact = m.evaluate(q, qd, "forward")
    for mode, o in outs.items():
        assert torch.allclose(o.J, outs["analytic"].J, atol=1e-8), mode
        assert torch.allclose(o.Jdot_qd, exact.Jdot_qd, atol=1e-5), mode
    assert torch.allclose(outs["forward"].J, outs["analytic"].J, atol=1e-12)
    assert torch.allclose(outs["forward"].Jdot_qd, exact.Jdot_qd, atol=1e-8)


def test_composed_map_chain_rule():
    torch.manual_seed(2)
    q, qd = torch.randn(3, 3, dtype=D), torch.randn(3, 3, dtype=D)
    f1 = FunctionMap(_fn, 3, 4)
    f2 = FunctionMap(lambda y: torch.stack([y[:, 0] * y[:, 1], torch.tanh(y[:, 2] + y[:, 3])], -1), 4, 2)
    comp = ComposedMap(f1, f2)
    whole = FunctionMap(lambda qq: f2.psi(f1.psi(qq)), 3, 2, jacobian_mode="fd")
    a, b = comp(q, qd), whole(q, qd)
    assert torch.allclose(a.x, b.x)
    assert torch.allclose(a.J, b.J, atol=1e-8)
    assert torch.allclose(a.Jdot_qd, b.Jdot_qd, atol=1e-5)
    with pytest.raises(ValueError):
        ComposedMap(f2, f1)


def test_slice_affine_identity_maps():
    q, qd = torch.randn(2, 5, dtype=D), torch.randn(2, 5, dtype=D)
    for idx in ([1, 2, 3], [4, 0]):
        o = SliceMap(5, idx)(q, qd)
        assert torch.equal(o.x, q[:, idx]) and torch.equal(o.xd, qd[:, idx])
        fd = SliceMap(5, idx).evaluate(q, qd, "fd")
        assert torch.allclose(fd.J, o.J, atol=1e-9)
    A, b = torch.randn(3, 5, dtype=D), torch.randn(3, dtype=D)
    o = AffineMap(A, b)(q, qd)
    assert torch.allclose(o.x, q @ A.T + b) and torch.allclose(o.xd, qd @ A.T)
    o = IdentityMap(5)(q, qd)
    assert torch.equal(o.x, q) and torch.count_nonzero(o.Jdot_qd) == 0


def test_bad_input_raises():
    m = FunctionMap(_fn, 3, 4)
    with pytest.raises(ValueError):
        m(torch.zeros(2, 2, dtype=D), torch.zeros(2, 2, dtype=D))
    with pytest.raises(ValueError):
        m(torch.zeros(2, 3, dtype=D), torch.zeros(2, 4, dtype=D))
    with pytest.raises(ValueError):
        m(torch.zeros(3, dtype=D), torch.zeros(3, dtype=D))
    with pytest.raises(ValueError):
        FunctionMap(_fn, 3, 4, jacobian_mode="reverse")
    with pytest.raises(ValueError):
        SliceMap(3, [0, 3])
    with pytest.raises(ValueError):
        SliceMap(3, [1, 1])
    with pytest.raises(ValueError):
        AffineMap(torch.zeros(2, 3), torch.zeros(3))
    root = RMPRoot(3)
    with pytest.raises(ValueError):
        root.add_child(IdentityMap(2))
    with pytest.raises(ValueError):
        root.add_leaf(ConstLeaf(2, 0))
    with pytest.raises(ValueError):
        RMPFlow(root, method="magic")
    flow = RMPFlow(root)
    with pytest.raises(ValueError):
        flow(torch.zeros(2, 4, dtype=D), torch.zeros(2, 4, dtype=D))
    with pytest.raises(ValueError):
        GDSLeaf(2, curvature="half")


# ---------------------------------------------------------------------------------------------
# algebra
# ---------------------------------------------------------------------------------------------
def test_pullback_through_identity_returns_leaf_rmp():
    torch.manual_seed(3)
    q, qd = torch.randn(4, 3, dtype=D), torch.randn(4, 3, dtype=D)
    leaf = ConstLeaf(3, 0)
    root = RMPRoot(3)
    root.add_child(IdentityMap(3)).add_leaf(leaf)
    flow = RMPFlow(root)
    f, M = flow.pullback(flow.pushforward(q, qd))
    f0, M0 = leaf(q, qd)
    assert torch.allclose(f, f0) and torch.allclose(M, M0)


def test_resolve_single_leaf_through_invertible_map():
    """x = ψ(q) invertible: q̈ = J⁻¹(a − J̇q̇), the leaf's acceleration mapped back."""
    torch.manual_seed(4)
    q, qd = 0.5 * torch.randn(6, 2, dtype=D), torch.randn(6, 2, dtype=D)
    psi = FunctionMap(lambda z: torch.stack([z[:, 0] + 0.3 * z[:, 1] ** 3, z[:, 1] + 0.2 * torch.sin(z[:, 0])], -1), 2, 2)
    leaf = ConstLeaf(2, 1)
    root = RMPRoot(2)
    root.add_child(psi).add_leaf(leaf)
    out = psi(q, qd)
    a, _ = leaf.canonical(out.x, out.xd)
    expected = torch.linalg.solve(out.J, (a - out.Jdot_qd).unsqueeze(-1)).squeeze(-1)
    for method, tol in (("solve", 1e-10), ("pinv", 1e-9), ("damped", 1e-2)):
        qdd = RMPFlow(root, method=method, reg=0.0 if method == "solve" else 1e-3)(q, qd)
        assert torch.allclose(qdd, expected, atol=tol, rtol=tol), method
    # with the acceleration pushed forward, the task-space acceleration equals the leaf's
    qdd = RMPFlow(root, method="solve", reg=0.0)(q, qd)
    assert torch.allclose(torch.einsum("bmn,bn->bm", out.J, qdd) + out.Jdot_qd, a, atol=1e-9)


def test_two_leaves_weighted_least_squares():
    """Pullback + resolve = argmin_a Σ ‖J_i a + J̇_i q̇ − a_i‖²_{M_i} (ref sheet §1.2)."""
    torch.manual_seed(5)
    q, qd = torch.randn(3, 3, dtype=D), torch.randn(3, 3, dtype=D)
    m1 = FunctionMap(_fn, 3, 4)
    m2 = AffineMap(torch.randn(2, 3, dtype=D), torch.randn(2, dtype=D))
    l1, l2 = ConstLeaf(4, 2), ConstLeaf(2, 3)
    root = RMPRoot(3)
    root.add_child(m1).add_leaf(l1)
    root.add_child(m2).add_leaf(l2)
    qdd = RMPFlow(root, method="solve", reg=0.0)(q, qd)
    # normal equations of the weighted least-squares problem
    H = torch.zeros(3, 3, 3, dtype=D)
    g = torch.zeros(3, 3, dtype=D)
    for m, leaf in ((m1, l1), (m2, l2)):
        o = m(q, qd)
        a, M = leaf.canonical(o.x, o.xd)
        H += o.J.transpose(1, 2) @ M @ o.J
        g += torch.einsum("bmn,bmk,bk->bn", o.J, M, a - o.Jdot_qd)
    ls = torch.linalg.solve(H, g.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(qdd, ls, atol=1e-9)


def test_shared_wide_node_equals_separate_maps():
    """DAG: one wide node + SliceMap children gives the same q̈ as separate maps per leaf."""
    torch.manual_seed(6)
    q, qd = torch.randn(4, 3, dtype=D), torch.randn(4, 3, dtype=D)
    leaves = [ConstLeaf(2, 10), ConstLeaf(2, 11)]
    r1 = RMPRoot(3)
    wide = r1.add_child(FunctionMap(_fn, 3, 4), name="fk")
    wide.add_child(SliceMap(4, [0, 1])).add_leaf(leaves[0])
    wide.add_child(SliceMap(4, [3, 2])).add_leaf(leaves[1])
    r2 = RMPRoot(3)
    r2.add_child(FunctionMap(lambda z: _fn(z)[:, [0, 1]], 3, 2)).add_leaf(leaves[0])
    r2.add_child(FunctionMap(lambda z: _fn(z)[:, [3, 2]], 3, 2)).add_leaf(leaves[1])
    a = RMPFlow(r1, method="solve", reg=0.0)(q, qd)
    b = RMPFlow(r2, method="solve", reg=0.0)(q, qd)
    assert torch.allclose(a, b, atol=1e-10)
    # compose-to-root pullback == textbook recursive pullback, on a 3-level tree with leaves everywhere
    deep = wide.add_child(FunctionMap(lambda y: torch.stack([y[:, 0] * y[:, 3], torch.sin(y[:, 1])], -1), 4, 2))
    deep.add_leaf(ConstLeaf(2, 12))
    deep.add_child(SliceMap(2, [1])).add_leaf(ConstLeaf(1, 13))
    wide.add_leaf(ConstLeaf(4, 14))
    r1.add_leaf(ConstLeaf(3, 15))
    st = RMPFlow(r1).pushforward(q, qd)
    fc, Mc = RMPFlow(r1, pullback_mode="compose").pullback(st)
    fr, Mr = RMPFlow(r1, pullback_mode="recursive").pullback(st)
    assert torch.allclose(fc, fr, atol=1e-10) and torch.allclose(Mc, Mr, atol=1e-10)
    with pytest.raises(ValueError):
        RMPFlow(r1, pullback_mode="sideways")


def test_batch_equals_per_environment_and_float32():
    torch.manual_seed(7)
    q, qd = torch.randn(5, 3, dtype=D), torch.randn(5, 3, dtype=D)
    root = RMPRoot(3)
    root.add_child(FunctionMap(_fn, 3, 4)).add_leaf(ConstLeaf(4, 4))
    root.add_leaf(ConstLeaf(3, 5))
    flow = RMPFlow(root)
    full = flow(q, qd)
    per = torch.cat([flow(q[i:i + 1], qd[i:i + 1]) for i in range(5)])
    assert torch.allclose(full, per, atol=1e-12)
    f32 = flow(q.float(), qd.float())
    assert f32.dtype == torch.float32
    assert torch.allclose(f32.double(), full, rtol=1e-3, atol=1e-3)
    root.children_nodes[0].task_map.jacobian_mode = "fd"
    f32fd = flow(q.float(), qd.float())
    assert torch.allclose(f32fd.double(), full, rtol=2e-2, atol=2e-2)


def test_gradient_flows_to_leaf_parameters_gradcheck():
    torch.manual_seed(8)
    q, qd = torch.randn(2, 3, dtype=D), torch.randn(2, 3, dtype=D)
    leaf = ConstLeaf(4, 6)
    root = RMPRoot(3)
    root.add_child(FunctionMap(_fn, 3, 4)).add_leaf(leaf)
    root.add_leaf(ConstLeaf(3, 7))
    flow = RMPFlow(root, method="damped")
    flow(q, qd).square().sum().backward()
    assert leaf.k.grad is not None and leaf.k.grad.abs() > 0

    def fn(k, qq, qqd):
        leaf.k.data = k.detach()  # keep module state consistent for the closure
        old = leaf.k
        try:
            del leaf.k
            leaf.k = k  # type: ignore[assignment]
            return flow(qq, qqd)
        finally:
            del leaf.k
            leaf.k = old

    k = torch.tensor(1.5, dtype=D, requires_grad=True)
    qq = q.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (k, qq, qd), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# GDS curvature and Lyapunov
# ---------------------------------------------------------------------------------------------
def _metric(x, v):
    s = torch.sigmoid(v[:, 0] - 2 * v[:, 1])
    z = torch.zeros_like(s)
    L = torch.stack([torch.stack([1 + x[:, 0] ** 2, z], -1),
                     torch.stack([torch.sin(x[:, 1]) * v[:, 0], 1 + s], -1)], -2)
    return L @ L.transpose(1, 2) + torch.eye(2, dtype=x.dtype)


def test_curvature_terms_vs_finite_differences_and_half():
    torch.manual_seed(9)
    x, v = torch.randn(4, 2, dtype=D), torch.randn(4, 2, dtype=D)
    Xi, xi, _ = curvature_terms(_metric, x, v)
    h = 1e-6
    Xfd = torch.zeros(4, 2, 2, dtype=D)
    xifd = torch.zeros(4, 2, dtype=D)
    for l in range(2):
        e = torch.zeros(2, dtype=D)
        e[l] = h
        Xfd[:, :, l] = 0.5 * ((_metric(x, v + e) - _metric(x, v - e)) @ v.unsqueeze(-1)).squeeze(-1) / (2 * h)
    for k in range(2):
        e = torch.zeros(2, dtype=D)
        e[k] = h
        dG = (_metric(x + e, v) - _metric(x - e, v)) / (2 * h)
        xifd += v[:, k:k + 1] * (dG @ v.unsqueeze(-1)).squeeze(-1)
        xifd[:, k] -= 0.5 * torch.einsum("bi,bij,bj->b", v, dG, v)
    assert torch.allclose(Xi, Xfd, atol=1e-8)
    assert torch.allclose(xi, xifd, atol=1e-8)
    # regression for the ½ (hgrmpflow omits it): the hgrmpflow variant is exactly twice ours
    Xi1, _, _ = curvature_terms(_metric, x, v, xi_factor=1.0)
    assert torch.allclose(Xi1, 2 * Xi)
    assert (Xi.abs().max() > 1e-3)
    leaf = GDSLeaf(2, metric=_metric)
    _, M = leaf(x, v)
    assert torch.allclose(M, _metric(x, v) + Xfd, atol=1e-8)
    _, M1 = GDSLeaf(2, metric=_metric, curvature="hgrmpflow")(x, v)
    assert not torch.allclose(M1, M, atol=1e-3)


class _TestGDS(GDSLeaf):
    """Velocity- and position-dependent metric, damping, quartic potential."""

    def __init__(self, convention="paper"):
        super().__init__(2, curvature=convention)

    def metric(self, x, xd):
        return _metric(x, xd)

    def damping(self, x, xd):
        return 0.3 * torch.eye(2, dtype=x.dtype).expand(x.shape[0], 2, 2) * (1 + x[:, :1, None] ** 2)

    def potential(self, x):
        return 0.5 * (x ** 2).sum(-1) + 0.1 * x[:, 0] ** 4


def _lyapunov_rate(convention):
    root = RMPRoot(2)
    psi = FunctionMap(lambda z: torch.stack([z[:, 0] + 0.3 * torch.sin(z[:, 1]), z[:, 1] + 0.2 * z[:, 0] ** 2, z[:, 0] * z[:, 1]], -1), 2, 3)
    node = root.add_child(psi)
    node.add_child(SliceMap(3, [0, 1])).add_leaf(_TestGDS(convention))
    root.add_leaf(_TestGDS(convention))
    flow = RMPFlow(root, method="solve", reg=0.0)
    q = torch.tensor([[0.4, -0.3], [1.0, 0.5]], dtype=D)
    qd = torch.tensor([[0.8, 1.1], [-0.6, 0.9]], dtype=D)
    dt = 1e-4
    # RK4 steps of q̈ = flow(q, q̇), derivative of V by central differences in time
    def step(q, qd, h):
        def f(s):
            return s[1], flow(s[0], s[1])
        k1 = f((q, qd))
        k2 = f((q + h / 2 * k1[0], qd + h / 2 * k1[1]))
        k3 = f((q + h / 2 * k2[0], qd + h / 2 * k2[1]))
        k4 = f((q + h * k3[0], qd + h * k3[1]))
        return (q + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0]), qd + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1]))
    qp, qdp = step(q, qd, dt)
    qm, qdm = step(q, qd, -dt)
    Vp, Vm = lyapunov(flow, qp, qdp).V, lyapunov(flow, qm, qdm).V
    dV = (Vp - Vm) / (2 * dt)
    out = lyapunov(flow, q, qd)
    return dV, out.dissipation, flow, q, qd


def test_lyapunov_identity_and_half_regression():
    dV, diss, flow, q, qd = _lyapunov_rate("paper")
    assert (diss > 0).all()
    assert torch.allclose(dV, -diss, rtol=1e-6, atol=1e-7)
    # pulled-back metrics reproduce the monitor's kinetic energy
    G, Bm = pullback_metrics(flow, q, qd)
    assert torch.allclose(torch.einsum("bi,bij,bj->b", qd, Bm, qd), diss)
    # without the ½ in Ξ_G (hgrmpflow) or without curvature terms the identity fails
    for conv in ("hgrmpflow", "none"):
        dV2, diss2, *_ = _lyapunov_rate(conv)
        assert (dV2 + diss2).abs().max() > 1e-3, conv


def test_lyapunov_rejects_non_gds_leaf():
    root = RMPRoot(2)
    root.add_leaf(ConstLeaf(2, 0))
    with pytest.raises(ValueError):
        lyapunov(RMPFlow(root), torch.zeros(1, 2, dtype=D), torch.zeros(1, 2, dtype=D))
