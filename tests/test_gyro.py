"""Gyrogroup axioms for every gyro-structure of the library: SPD (AIM, LEM, LCM), Grassmann, Poincaré ball."""

import math

import pytest
import torch

from manifolds import SPD, AffineInvariantMetric, LogCholeskyMetric, PoincareBall
from manifolds.grassmann import Grassmann
from manifolds.gyro import AIMGyro, GyroGroup, LCMGyro, LEMGyro

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


class _Case:
    """Adapter: the ops of one gyro-structure, its distance, a sampler and an equality measure."""

    def __init__(self, name):
        self.name = name
        if name in ("aim", "lem", "lcm"):
            self.G = {"aim": AIMGyro, "lem": LEMGyro, "lcm": LCMGyro}[name]
            self.M = SPD(3, name)
            self.shape = (3, 3)
        elif name in SPD_MANIFOLD_CASES:
            # through the SPD manifold's methods: θ-deformed structures are pulled back by x ↦ x^θ
            self.G = self.M = SPD(3, SPD_MANIFOLD_CASES[name]())
            self.shape = (3, 3)
        elif name == "grassmann":
            self.G = self.M = Grassmann(5, 2)
            self.shape = (5, 2)
        else:
            self.G = self.M = PoincareBall(3, c=1.0)
            self.shape = (3,)

    # ops, with a getattr fallback to the Möbius names for the Poincaré ball
    def add(self, a, b):
        f = getattr(self.G, "gyro_add", None) or self.G.mobius_add
        return f(a, b)

    def inv(self, a):
        return self.G.gyro_inv(a)

    def gyr(self, a, b, c):
        return self.G.gyration(a, b, c)

    def mul(self, t, a):
        f = getattr(self.G, "gyro_scalar_mul", None) or self.G.mobius_scalar_mul
        if self.name == "poincare" and isinstance(t, torch.Tensor):
            t = t.unsqueeze(-1)  # the ball takes r broadcastable to (*batch, 1)
        return f(t, a)

    def e(self, like):
        f = getattr(self.G, "gyro_identity", None)
        return f(like) if f is not None else torch.zeros_like(like)

    def dist(self, x, y):
        return self.M.dist(x, y)

    def sample(self, *batch, seed=0, dtype=F64, scale=0.5):
        g = _gen(seed)
        if self.name in ("aim", "lem", "lcm") or self.name in SPD_MANIFOLD_CASES:
            a = torch.randn(*batch, *self.shape, dtype=dtype, generator=g)
            return torch.linalg.matrix_exp(scale * (a + a.mT) / 2)
        if self.name == "grassmann":
            e = self.e(torch.zeros(*batch, *self.shape, dtype=dtype))
            # within the injectivity radius of I_{n,p} (principal angles < π/2)
            return self.M.expmap(e, scale * self.M.proju(e, torch.randn(*batch, *self.shape, dtype=dtype, generator=g)))
        return 0.3 * torch.randn(*batch, *self.shape, dtype=dtype, generator=g)

    def err(self, x, y):
        """Max discrepancy; Grassmann points compare as subspaces (projectors)."""
        if self.name == "grassmann":
            x, y = Grassmann.to_projector(x), Grassmann.to_projector(y)
        return float((x - y).abs().max())


SPD_MANIFOLD_CASES = {
    "spd_aim_theta": lambda: AffineInvariantMetric(theta=0.5, alpha=1.0, beta=0.2),
    "spd_lcm_theta": lambda: LogCholeskyMetric(theta=-1.5),
}
ALL = ["aim", "lem", "lcm", "grassmann", "poincare"] + sorted(SPD_MANIFOLD_CASES)


@pytest.fixture(params=ALL)
def case(request):
    return _Case(request.param)


def test_protocol():
    for G in (AIMGyro, LEMGyro, LCMGyro, Grassmann(4, 2)):
        assert isinstance(G, GyroGroup)
    assert isinstance(SPD(3), GyroGroup) and isinstance(PoincareBall(2), GyroGroup)


@pytest.mark.parametrize("metric", ["aim", "lem", "lcm"])
def test_spd_manifold_delegates_to_structure(metric):
    M = SPD(3, metric)
    G = {"aim": AIMGyro, "lem": LEMGyro, "lcm": LCMGyro}[metric]
    c = _Case(metric)
    a, b, x = c.sample(2, seed=60), c.sample(2, seed=61), c.sample(2, seed=62)
    torch.testing.assert_close(M.gyro_add(a, b), G.gyro_add(a, b))
    torch.testing.assert_close(M.gyration(a, b, x), G.gyration(a, b, x))
    torch.testing.assert_close(M.gyro_scalar_mul(0.3, a), G.gyro_scalar_mul(0.3, a))
    torch.testing.assert_close(M.gyro_inv(a), G.gyro_inv(a))


def test_spd_metrics_without_gyro_structure_raise():
    x = torch.eye(3, dtype=F64)
    for metric in ("em", "bwm"):
        with pytest.raises(NotImplementedError, match="gyro-structure"):
            SPD(3, metric).gyro_add(x, x)


def test_left_identity_and_inverse(case):
    a = case.sample(4, seed=1)
    e = case.e(a)
    assert case.err(case.add(e, a), a) < 1e-12
    assert case.err(case.add(case.inv(a), a), e) < 1e-12
    # centring a mean: ⊖m ⊕ m = e, and left cancellation m ⊕ (⊖m ⊕ x) = x
    x = case.sample(4, seed=2)
    assert case.err(case.add(a, case.add(case.inv(a), x)), x) < 1e-12


def test_gyroassociativity(case):
    a, b, c = (case.sample(4, seed=s) for s in (1, 2, 3))
    lhs = case.add(a, case.add(b, c))
    rhs = case.add(case.add(a, b), case.gyr(a, b, c))
    assert case.err(lhs, rhs) < 1e-11


def test_left_reduction(case):
    a, b, c = (case.sample(4, seed=s) for s in (1, 2, 3))
    e = case.err(case.gyr(a, b, c), case.gyr(case.add(a, b), b, c))
    if case.name == "grassmann":
        # The ONB Grassmann structure is *not* left-reductive (Chen et al. 2025 call it
        # non-reductive); it is pseudo-reductive: gyr[a, ⊖a] = gyr[⊖a, a] = id.
        assert e > 1e-2
        assert case.err(case.gyr(a, case.inv(a), c), c) < 1e-12
        assert case.err(case.gyr(case.inv(a), a, c), c) < 1e-12
    else:
        assert e < 1e-11


def test_gyrations_are_isometries(case):
    a, b, c, d = (case.sample(4, seed=s) for s in (1, 2, 3, 4))
    lhs = case.dist(case.gyr(a, b, c), case.gyr(a, b, d))
    torch.testing.assert_close(lhs, case.dist(c, d), atol=1e-11, rtol=0)
    if case.name in ("lem", "lcm"):
        assert case.err(case.gyr(a, b, c), c) < 1e-14  # abelian


def test_scalar_multiplication(case):
    a = case.sample(4, seed=5)
    assert case.err(case.mul(1.0, a), a) < 1e-12
    assert case.err(case.mul(0.0, a), case.e(a)) < 1e-12
    s, t = 0.3, -0.8
    assert case.err(case.mul(s + t, a), case.add(case.mul(s, a), case.mul(t, a))) < 1e-11
    # (s t) ⊗ a = s ⊗ (t ⊗ a)
    assert case.err(case.mul(s * t, a), case.mul(s, case.mul(t, a))) < 1e-11
    # batched t
    tb = torch.tensor([0.5, 1.5, -1.0, 2.0], dtype=F64)
    ref = torch.stack([case.mul(float(tb[i]), a[i]) for i in range(4)])
    assert case.err(case.mul(tb, a), ref) < 1e-12


def test_gyrodistance_is_riemannian(case):
    """d(a, b) = d(e, ⊖a ⊕ b) (GyroBN's gyrodistance equals the geodesic distance)."""
    a, b = case.sample(4, seed=6), case.sample(4, seed=7)
    lhs = case.dist(a, b)
    rhs = case.dist(case.e(a), case.add(case.inv(a), b))
    torch.testing.assert_close(lhs, rhs, atol=1e-11, rtol=0)


def test_gyro_add_gradcheck_at_identity(case):
    b = case.sample(seed=8)
    e = case.e(b).requires_grad_()
    bb = b.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: case.add(x, y), (e, bb), atol=1e-7, rtol=1e-6)
    a = case.sample(seed=9).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: case.add(x, y), (a, bb), atol=1e-7, rtol=1e-6)


def test_float32_matches_float64(case):
    a, b, c = (case.sample(3, seed=s) for s in (10, 11, 12))
    r64 = case.add(a, case.gyr(a, b, c))
    r32 = case.add(a.float(), case.gyr(a.float(), b.float(), c.float()))
    assert r32.dtype == torch.float32
    assert case.err(r32.double(), r64) < 5e-5
    assert case.err(case.mul(0.7, a.float()).double(), case.mul(0.7, a)) < 5e-5


# ---------------------------------------------------------------------------- structure specific
def test_aim_gyration_is_orthogonal_congruence():
    M = SPD(4, "aim")
    a, b, c = M.random(3, 2, 4, 4, dtype=F64, generator=_gen(0))
    o = AIMGyro.gyration_matrix(a, b)
    torch.testing.assert_close(o @ o.mT, torch.eye(4, dtype=F64).expand_as(o), atol=1e-12, rtol=0)
    torch.testing.assert_close(AIMGyro.gyration(a, b, c), o @ c @ o.mT, atol=1e-12, rtol=0)
    # the spelled-out formula (Nguyen 2022)
    from manifolds._linalg import sym_invsqrtm, sym_sqrtm

    ha, hb = sym_sqrtm(a), sym_sqrtm(b)
    w = sym_invsqrtm(ha @ b @ ha)
    torch.testing.assert_close(AIMGyro.gyration(a, b, c), w @ ha @ hb @ c @ hb @ ha @ w, atol=1e-11, rtol=0)
    # AIM is not a group: gyr is not the identity
    assert float((AIMGyro.gyration(a, b, c) - c).abs().max()) > 1e-3


def test_spd_closed_forms():
    """⊕ / ⊖ / ⊗ against scipy / torch closed forms."""
    import scipy.linalg as sl

    M = SPD(3)
    a, b = M.random(2, 3, 3, dtype=F64, generator=_gen(3))
    an, bn = a.numpy(), b.numpy()
    ha = sl.sqrtm(an).real
    torch.testing.assert_close(AIMGyro.gyro_add(a, b), torch.from_numpy(ha @ bn @ ha), atol=1e-12, rtol=0)
    torch.testing.assert_close(AIMGyro.gyro_inv(a), torch.linalg.inv(a), atol=1e-12, rtol=0)
    torch.testing.assert_close(AIMGyro.gyro_scalar_mul(0.3, a), torch.from_numpy(sl.fractional_matrix_power(an, 0.3).real))
    lem = sl.expm(sl.logm(an).real + sl.logm(bn).real)
    torch.testing.assert_close(LEMGyro.gyro_add(a, b), torch.from_numpy(lem), atol=1e-12, rtol=0)
    torch.testing.assert_close(LEMGyro.gyro_inv(a), torch.linalg.inv(a), atol=1e-12, rtol=0)
    # LCM on factors
    L, K = torch.linalg.cholesky(a), torch.linalg.cholesky(b)
    S = torch.tril(L, -1) + torch.tril(K, -1) + torch.diag(L.diagonal() * K.diagonal())
    torch.testing.assert_close(LCMGyro.gyro_add(a, b), S @ S.mT, atol=1e-12, rtol=0)
    Li = -torch.tril(L, -1) + torch.diag(1 / L.diagonal())
    torch.testing.assert_close(LCMGyro.gyro_inv(a), Li @ Li.mT, atol=1e-12, rtol=0)
    Lt = 2.5 * torch.tril(L, -1) + torch.diag(L.diagonal() ** 2.5)
    torch.testing.assert_close(LCMGyro.gyro_scalar_mul(2.5, a), Lt @ Lt.mT, atol=1e-11, rtol=0)


def test_spd_gradients_finite_at_repeated_eigenvalues():
    e = torch.eye(3, dtype=F64)
    for G in (AIMGyro, LEMGyro, LCMGyro):
        a = (2 * e).requires_grad_()
        b = e.clone().requires_grad_()
        c = torch.diag(torch.tensor([1.0, 1.0, 3.0], dtype=F64)).requires_grad_()
        out = G.gyration(a, b, c) + G.gyro_scalar_mul(0.5, G.gyro_add(a, b))
        out.square().sum().backward()
        for t in (a, b, c):
            assert torch.isfinite(t.grad).all()


def test_grassmann_exact_matches_dense_matrix_exp():
    case = _Case("grassmann")
    Gr = case.M
    a, b = case.sample(3, seed=1, scale=0.8), case.sample(3, seed=2, scale=0.8)
    e = Gr.gyro_identity(a)
    h = Gr.logmap(e, a)
    omega = h @ e.mT - e @ h.mT
    ref = torch.linalg.matrix_exp(omega) @ b
    torch.testing.assert_close(Gr.gyro_add(a, b), ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(Gr.gyro_inv(a), torch.linalg.matrix_exp(-omega) @ e, atol=1e-12, rtol=0)
    torch.testing.assert_close(Gr.gyro_scalar_mul(0.4, a), torch.linalg.matrix_exp(0.4 * omega) @ e, atol=1e-12, rtol=0)
    # ⊕ depends only on the subspaces: a Q, b R
    q = torch.linalg.qr(torch.randn(2, 2, dtype=F64, generator=_gen(5)))[0]
    assert case.err(Gr.gyro_add(a @ q, b @ q), Gr.gyro_add(a, b)) < 1e-12


def test_grassmann_cayley_is_an_explicit_approximation():
    case = _Case("grassmann")
    Gr = case.M
    errs = []
    for scale in (0.2, 0.1, 0.05):
        a, b = case.sample(seed=3, scale=scale), case.sample(seed=4)
        errs.append(case.err(Gr.gyro_add(a, b, exp_mode="cayley"), Gr.gyro_add(a, b)))
    assert errs[0] > 1e-6  # not exact
    assert errs[1] < errs[0] / 5 and errs[2] < errs[1] / 5  # O(‖Ω‖³)
    y = Gr.gyro_add(a, b, exp_mode="cayley")
    torch.testing.assert_close(y.mT @ y, torch.eye(2, dtype=F64), atol=1e-12, rtol=0)  # orthogonal
    with pytest.raises(ValueError, match="exp_mode"):
        Gr.gyro_add(a, b, exp_mode="expm")
    with pytest.raises(ValueError, match="exp_mode"):
        Gr.gyro_inv(a, exp_mode="pade")


def test_poincare_gyration_matches_definition():
    B = PoincareBall(3)
    case = _Case("poincare")
    a, b, c = (case.sample(4, seed=s) for s in (1, 2, 3))
    ref = B.mobius_add(-B.mobius_add(a, b), B.mobius_add(a, B.mobius_add(b, c)))
    torch.testing.assert_close(B.gyration(a, b, c), ref, atol=1e-12, rtol=0)
    assert math.isfinite(float(B.dist(a, b).sum()))
