r"""SPDNet layers: ``BiMap``, ``ReEig``, ``LogEig``, ``ExpEig`` and a small ``SPDNet`` builder.

After Huang & Van Gool, "A Riemannian network for SPD matrix learning", AAAI 2017
(arXiv:1608.04233; "SPDNet"), with the multi-channel and architecture conventions of Brooks,
Schwander, Barbaresco, Schneider & Cord, "Riemannian batch normalization for SPD neural
networks", NeurIPS 2019 (code ``torchspdnet``; ``LieBN_SPDNet/Network/SPDNetRBN.py`` of Chen et
al., ICLR 2024, builds its networks the same way).

* ``BiMap``: ``X ↦ Wᵀ X W`` with ``W ∈ St(n_in, n_out)`` semi-orthogonal (SPDNet Eq. (1), written
  there as ``W_k X_{k−1} W_kᵀ`` with a row-orthonormal ``W_k``; we store the transpose, as
  ``torchspdnet`` does). ``W`` is a :class:`geoopt.ManifoldParameter` on
  :class:`manifolds.Stiefel`, so :class:`manifolds.RiemannianAdam` (or ``RiemannianSGD``)
  keeps it exactly on the manifold; this replaces SPDNet's Stiefel SGD with a QR retraction
  (its §"Training", tangent projection of the Euclidean gradient followed by a retraction).
* ``ReEig``: ``U max(εI, Σ) Uᵀ`` (SPDNet Eq. (2)).
* ``LogEig``: ``U log(Σ) Uᵀ`` (SPDNet Eq. (3)); optionally vectorised (upper triangle, √2 on
  the off-diagonal) so that the Euclidean norm of the vector is the Frobenius norm of the matrix.
* ``ExpEig``: ``U exp(Σ) Uᵀ``, the inverse of ``LogEig`` (used by Brooks et al. 2019 in the
  Riemannian exponential map).

All eigenvalue layers go through :func:`manifolds._linalg.sym_funcm` and its relatives, whose
backward is the Daleckii–Krein formula ``U (L ∘ Uᵀ sym(Ḡ) U) Uᵀ`` with the Loewner matrix ``L`` of
first divided differences (SPDNet §"Backpropagation", after Ionescu et al., ICCV 2015). It is
finite at repeated eigenvalues, in particular at the identity, where autograd through
``torch.linalg.eigh`` returns NaN, and where ``torchspdnet`` zeroes the off-diagonal Loewner
entries of tied eigenvalues instead of using ``f′``.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import geoopt
import torch
from torch import nn

from .._linalg import sym, sym_expm, sym_funcm, sym_logm
from ..stiefel import Stiefel

__all__ = ["BiMap", "ReEig", "LogEig", "ExpEig", "SPDNet", "sym_vec", "sym_unvec"]

_FLOATS = (torch.float32, torch.float64)


# ---------------------------------------------------------------------------- validation helpers
def _check_pos_int(cls: str, name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{cls}: {name} must be a positive int, got {v!r}")
    return v


def _check_matrices(cls: str, x, n: Optional[int] = None) -> None:
    """Shape / dtype checks only (no access to values, hence no device sync)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{cls}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{cls}: expected a batch of square matrices (..., n, n), got shape {tuple(x.shape)}")
    if n is not None and x.shape[-1] != n:
        raise ValueError(f"{cls}: expected matrices of size {n}×{n}, got shape {tuple(x.shape)}")
    if x.dtype not in _FLOATS:
        raise ValueError(f"{cls}: expected dtype float32 or float64, got {x.dtype}")


# ---------------------------------------------------------------------------- vectorisation
def _triu(n: int, device) -> tuple:
    return tuple(torch.triu_indices(n, n, device=device))


def _vec_weights(r, c, off: float, like: torch.Tensor) -> torch.Tensor:
    # built directly in like's dtype (a float32 √2 cast to float64 would cost 1e-8 relative)
    one = torch.ones(r.shape, dtype=like.dtype, device=like.device)
    return torch.where(r == c, one, one * off)


def sym_vec(x: torch.Tensor) -> torch.Tensor:
    """Isometric vectorisation of symmetric matrices: upper triangle, off-diagonal × √2.

    ``‖sym_vec(x)‖₂ = ‖x‖_F`` for symmetric ``x`` (the standard orthonormal basis of Sym(n);
    e.g. Pennec, Fillard & Ayache, IJCV 66 (2006), §3.4; Tuzel et al., TPAMI 30 (2008)).
    Entries are ordered row by row (``torch.triu_indices``).

    Args:
        x: ``(..., n, n)`` symmetric, float32 or float64 (only the upper triangle is read).

    Returns:
        ``(..., n(n+1)/2)``.

    Raises:
        ValueError: ``x`` is not a batch of square float matrices.
    """
    _check_matrices("sym_vec", x)
    n = x.shape[-1]
    r, c = _triu(n, x.device)
    w = _vec_weights(r, c, math.sqrt(2.0), x)
    return x[..., r, c] * w


def sym_unvec(v: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of :func:`sym_vec`: ``(..., n(n+1)/2) -> (..., n, n)`` symmetric.

    Raises:
        ValueError: ``n`` not a positive int, or the last dimension of ``v`` is not ``n(n+1)/2``.
    """
    _check_pos_int("sym_unvec", "n", n)
    if not isinstance(v, torch.Tensor) or v.dim() < 1 or v.shape[-1] != n * (n + 1) // 2:
        shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(f"sym_unvec: expected (..., {n * (n + 1) // 2}) for n={n}, got {shape}")
    r, c = _triu(n, v.device)
    w = _vec_weights(r, c, math.sqrt(0.5), v)
    vals = v * w
    out = v.new_zeros(*v.shape[:-1], n, n)
    out[..., r, c] = vals
    out[..., c, r] = vals
    return out


# ---------------------------------------------------------------------------- BiMap
class BiMap(nn.Module):
    r"""Bilinear map ``X ↦ Wᵀ X W`` of SPD matrices with a semi-orthogonal weight (SPDNet Eq. (1)).

    With channels (``torchspdnet.functional.bimap_channels``, Brooks et al. 2019):

    .. code-block:: text

        Y[b, o] = sym( Σ_i  W[o, i]ᵀ X[b, i] W[o, i] ),   W[o, i] ∈ St(in_n, out_n)

    a sum of congruences, so ``Y`` is SPD whenever every ``X[b, i]`` is (``W`` has full column
    rank). The output is symmetrised to remove rounding asymmetry.

    The weight ``W: (out_channels, in_channels, in_n, out_n)`` is a
    :class:`geoopt.ManifoldParameter` on :class:`manifolds.Stiefel` ``(in_n, out_n)``
    (``WᵀW = I``), initialised Haar-uniformly from torch's global generator (seed it with
    ``torch.manual_seed`` for reproducibility). Train it with :class:`manifolds.RiemannianAdam`
    / ``RiemannianSGD``; a Euclidean optimizer would leave the manifold.

    Args:
        in_n: input matrix size ``n``.
        out_n: output matrix size ``m <= n`` (a dimension reduction, as in SPDNet).
        in_channels: number of input channels ``C_in`` (default 1).
        out_channels: number of output channels ``C_out`` (default 1).
        dtype, device: of the weight (default: torch's default dtype, CPU).

    Shapes:
        * input ``(B, C_in, n, n)`` → output ``(B, C_out, m, m)``;
        * input ``(B, n, n)`` (only when ``in_channels == 1``) → output ``(B, m, m)`` if
          ``out_channels == 1``, else ``(B, C_out, m, m)``.

    Raises:
        ValueError: in the constructor, a size or channel count that is not a positive int,
            ``out_n > in_n``, or a dtype other than float32/float64; in ``forward``, an input
            that is not 3-D/4-D, has the wrong matrix size or channel count, or a dtype
            different from the weight's.

    Example:
        >>> layer = BiMap(10, 4, dtype=torch.float64)
        >>> x = torch.eye(10, dtype=torch.float64).expand(3, 10, 10)
        >>> layer(x).shape
        torch.Size([3, 4, 4])
    """

    def __init__(self, in_n: int, out_n: int, in_channels: int = 1, out_channels: int = 1, *, dtype=None, device=None):
        super().__init__()
        _check_pos_int("BiMap", "in_n", in_n)
        _check_pos_int("BiMap", "out_n", out_n)
        _check_pos_int("BiMap", "in_channels", in_channels)
        _check_pos_int("BiMap", "out_channels", out_channels)
        if out_n > in_n:
            raise ValueError(
                f"BiMap: out_n must be <= in_n (W ∈ St(in_n, out_n) has orthonormal columns), got in_n={in_n}, out_n={out_n}"
            )
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if dtype not in _FLOATS:
            raise ValueError(f"BiMap: dtype must be float32 or float64, got {dtype}")
        self.in_n, self.out_n = in_n, out_n
        self.in_channels, self.out_channels = in_channels, out_channels
        self.manifold = Stiefel(in_n, out_n)
        w = torch.empty(out_channels, in_channels, in_n, out_n, dtype=dtype, device=device)
        self.weight = geoopt.ManifoldParameter(w, manifold=self.manifold)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-draw ``W`` Haar-uniformly on ``St(in_n, out_n)`` (torch's global generator)."""
        w = self.weight
        self.weight.copy_(self.manifold.random(*w.shape, dtype=w.dtype, device=w.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_matrices("BiMap", x, self.in_n)
        squeeze = False
        if x.dim() == 3:
            if self.in_channels != 1:
                raise ValueError(
                    f"BiMap: a 3-D input (B, n, n) needs in_channels == 1, got in_channels={self.in_channels}; "
                    "pass (B, C_in, n, n)"
                )
            x = x.unsqueeze(1)
            squeeze = self.out_channels == 1
        elif x.dim() == 4:
            if x.shape[1] != self.in_channels:
                raise ValueError(
                    f"BiMap: expected {self.in_channels} input channels (B, C_in, n, n), got shape {tuple(x.shape)}"
                )
        else:
            raise ValueError(f"BiMap: expected input (B, n, n) or (B, C_in, n, n), got shape {tuple(x.shape)}")
        if x.dtype != self.weight.dtype:
            raise ValueError(f"BiMap: input dtype {x.dtype} differs from the weight dtype {self.weight.dtype}")
        w = self.weight  # (O, I, n, m)
        # (B, 1, I, n, n) and (O, I, n, m) -> (B, O, I, m, m), then the sum over input channels.
        y = (w.mT @ x.unsqueeze(1) @ w).sum(2)
        y = sym(y)
        return y.squeeze(1) if squeeze else y

    def extra_repr(self) -> str:
        return f"in_n={self.in_n}, out_n={self.out_n}, in_channels={self.in_channels}, out_channels={self.out_channels}"


# ---------------------------------------------------------------------------- eigenvalue layers
def _reeig(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``U max(λ, ε) Uᵀ`` with the exact Daleckii–Krein backward (see :class:`ReEig`)."""

    def f(lam):
        return torch.clamp(lam, min=eps)

    def f_prime(lam):
        # used only on ties (and on the diagonal): the derivative of max(λ, ε), 1[λ > ε]
        return (lam > eps).to(lam.dtype)

    def divided_difference(hi, lo):
        # exact for the piecewise-linear f, any gap: 1 if both > ε, 0 if both ≤ ε, and
        # (hi − ε)/(hi − lo) ∈ (0, 1) when the pair straddles ε. Both above: numerator and
        # denominator are the same rounded difference, so the quotient is exactly 1.
        return (torch.clamp(hi, min=eps) - torch.clamp(lo, min=eps)) / (hi - lo)

    return sym_funcm(x, f, f_prime, divided_difference)


class ReEig(nn.Module):
    r"""Eigenvalue rectification ``X = U Σ Uᵀ ↦ U max(εI, Σ) Uᵀ`` (SPDNet Eq. (2)).

    The SPD analogue of a ReLU: eigenvalues below ``ε`` are raised to ``ε``, so the output is
    SPD (eigenvalues ``>= ε``) for any symmetric input.

    Backward: Daleckii–Krein with the Loewner matrix of ``f(λ) = max(λ, ε)``,

    .. code-block:: text

        L_ij = (max(λ_i, ε) − max(λ_j, ε)) / (λ_i − λ_j)     λ_i ≠ λ_j   (exact, in [0, 1])
        L_ij = 1[λ_i > ε]                                     λ_i = λ_j   (ties, diagonal)

    This is the exact derivative wherever it exists (no eigenvalue equal to ``ε``): a spectral
    function depends on ``f`` only through its values near the spectrum (Bhatia, *Matrix
    Analysis*, Thm V.3.3). At repeated eigenvalues, e.g. the identity, it stays finite and
    equals ``f′`` (torchspdnet's ``Re_op`` sets the tied off-diagonal entries to 0 instead, which
    is wrong: at ``λ_i = λ_j > ε`` the map is locally the identity and ``L_ij`` must be 1).
    At an eigenvalue exactly equal to ``ε`` the map is not differentiable; the one-sided value
    ``1[λ > ε] = 0`` is returned (as in torchspdnet). Pairs straddling ``ε`` use the exact
    quotient, not ``f′`` at their midpoint.

    Args:
        eps: the threshold ``ε > 0`` (default ``1e-4``, SPDNet / torchspdnet).

    Shapes: ``(..., n, n)`` symmetric → ``(..., n, n)`` SPD, float32 or float64.

    Raises:
        ValueError: ``eps`` not a positive finite number; input not ``(..., n, n)`` float32/64.
    """

    def __init__(self, eps: float = 1e-4):
        super().__init__()
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (0.0 < float(eps) < math.inf):
            raise ValueError(f"ReEig: eps must be a positive finite number, got {eps!r}")
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_matrices("ReEig", x)
        return _reeig(x, self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps:g}"


class LogEig(nn.Module):
    r"""Matrix logarithm ``X = U Σ Uᵀ ↦ U log(Σ) Uᵀ`` (SPDNet Eq. (3)), optionally vectorised.

    Maps SPD matrices to the tangent space at the identity (the log-Euclidean chart, Arsigny
    et al., SIAM J. Matrix Anal. Appl. 29 (2007)), where a Euclidean classifier applies.
    Computed by :func:`manifolds._linalg.sym_logm`: eigenvalues are clamped at
    ``max(eps_dtype·λ_max, tiny)`` so a singular input gives a finite result; backward
    Daleckii–Krein with cancellation-free divided differences, finite at repeated eigenvalues.

    Args:
        vectorize: if True, return :func:`sym_vec` of the logarithm (upper triangle with
            off-diagonal entries × √2, an isometry of Sym(n) with the Frobenius norm onto
            ``ℝ^{n(n+1)/2}``).

    Shapes: ``(..., n, n)`` SPD → ``(..., n, n)`` symmetric, or ``(..., n(n+1)/2)`` if
    ``vectorize``.

    Raises:
        ValueError: input not ``(..., n, n)`` float32/float64.
    """

    def __init__(self, vectorize: bool = False):
        super().__init__()
        if not isinstance(vectorize, bool):
            raise ValueError(f"LogEig: vectorize must be a bool, got {vectorize!r}")
        self.vectorize = vectorize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_matrices("LogEig", x)
        y = sym_logm(x)
        return sym_vec(y) if self.vectorize else y

    def extra_repr(self) -> str:
        return f"vectorize={self.vectorize}"


class ExpEig(nn.Module):
    r"""Matrix exponential ``X = U Σ Uᵀ ↦ U exp(Σ) Uᵀ`` of symmetric matrices; inverse of :class:`LogEig`.

    Computed by :func:`manifolds._linalg.sym_expm` (Daleckii–Krein backward, finite at
    repeated eigenvalues). Used as the Riemannian exponential at the identity in SPD batch
    normalization (Brooks et al., NeurIPS 2019, ``ExpEig`` in torchspdnet).

    Shapes: ``(..., n, n)`` symmetric → ``(..., n, n)`` SPD (overflows to inf where
    ``exp(λ_max)`` does).

    Raises:
        ValueError: input not ``(..., n, n)`` float32/float64.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_matrices("ExpEig", x)
        return sym_expm(x)


# ---------------------------------------------------------------------------- builder
class SPDNet(nn.Module):
    r"""A small SPDNet: ``[BiMap → (BN) → ReEig] × (k−1) → BiMap → (BN) → LogEig → Linear``.

    The architecture of the SPDNet baselines of Brooks et al. (NeurIPS 2019, ``torchspdnet``
    examples) and Chen et al. (LieBN, ICLR 2024, ``LieBN_SPDNet/Network/SPDNetRBN.py``): no ReEig
    after the last BiMap (set ``final_reeig=True`` for the original SPDNet-kBiRe blocks of Huang &
    Van Gool 2017, §"Experiments"). An optional batch-normalization module follows every BiMap.

    Args:
        n_in: input matrix size.
        dims: output sizes of the successive BiMap layers, non-increasing, each ``<= n_in``
            (e.g. ``[20, 16]``: ``n_in → 20 → 16``); at least one.
        n_classes: number of classes (output logits).
        bn: ``None`` or a callable ``bn(n) -> nn.Module`` building a batch-norm layer that takes
            and returns SPD batches ``(B, n, n)``; called once per BiMap with its output size.
        eps: ReEig threshold (default ``1e-4``).
        vectorize: ``"triu"`` (default): the classifier reads :func:`sym_vec` of the logarithm
            (``n(n+1)/2`` features); ``"full"``: the flattened ``n × n`` matrix (``n²`` features,
            as in torchspdnet / LieBN's ``LogEigMLR``).
        final_reeig: put a ReEig after the last BiMap (and its BN) too.
        dtype, device: of the BiMap weights and the classifier (default: torch's default dtype).
            The ``bn`` modules are built by the callable and must match.

    Shapes: input ``(B, n_in, n_in)`` SPD → logits ``(B, n_classes)``. :meth:`features` returns
    the SPD matrices ``(B, dims[-1], dims[-1])`` before LogEig.

    Training: all parameters with :class:`manifolds.RiemannianAdam`; the BiMap weights are
    Stiefel ``ManifoldParameter``s, the classifier is Euclidean (there the optimizer is AdamW).
    The Stiefel manifold has no canonical origin, so geometric weight decay is undefined on the
    BiMap weights (the optimizer raises at its first step): use :meth:`param_groups`, which puts
    them in a group with ``weight_decay=0``.

    Raises:
        ValueError: a size that is not a positive int, ``dims`` empty or increasing beyond the
            previous size, ``bn`` not callable or not returning an ``nn.Module``, unknown
            ``vectorize``.

    Example:
        >>> net = SPDNet(28, [20, 16], 2, dtype=torch.float64)
        >>> net(torch.eye(28, dtype=torch.float64).expand(5, 28, 28)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        n_in: int,
        dims: Sequence[int],
        n_classes: int,
        *,
        bn: Optional[Callable[[int], nn.Module]] = None,
        eps: float = 1e-4,
        vectorize: str = "triu",
        final_reeig: bool = False,
        dtype=None,
        device=None,
    ):
        super().__init__()
        _check_pos_int("SPDNet", "n_in", n_in)
        _check_pos_int("SPDNet", "n_classes", n_classes)
        dims = list(dims) if isinstance(dims, (list, tuple)) else dims
        if not isinstance(dims, list) or len(dims) == 0:
            raise ValueError(f"SPDNet: dims must be a non-empty list or tuple of ints, got {dims!r}")
        prev = n_in
        for d in dims:
            _check_pos_int("SPDNet", "dims entries", d)
            if d > prev:
                raise ValueError(f"SPDNet: each BiMap must not enlarge the matrices, got {prev} -> {d} in dims={dims}")
            prev = d
        if bn is not None and not callable(bn):
            raise ValueError(f"SPDNet: bn must be None or a callable n -> nn.Module, got {type(bn).__name__}")
        if vectorize not in ("triu", "full"):
            raise ValueError(f"SPDNet: vectorize must be 'triu' or 'full', got {vectorize!r}")
        self.n_in, self.dims, self.n_classes = n_in, tuple(dims), n_classes
        self.vectorize = vectorize
        layers = []
        prev = n_in
        for k, d in enumerate(dims):
            layers.append(BiMap(prev, d, dtype=dtype, device=device))
            if bn is not None:
                m = bn(d)
                if not isinstance(m, nn.Module):
                    raise ValueError(f"SPDNet: bn({d}) must return an nn.Module, got {type(m).__name__}")
                layers.append(m)
            if k < len(dims) - 1 or final_reeig:
                layers.append(ReEig(eps))
            prev = d
        self.feature = nn.Sequential(*layers)
        self.logeig = LogEig(vectorize=vectorize == "triu")
        n_feat = prev * (prev + 1) // 2 if vectorize == "triu" else prev * prev
        self.classifier = nn.Linear(n_feat, n_classes, dtype=dtype, device=device)

    def param_groups(self, weight_decay: float = 0.0) -> list:
        """Optimizer param groups: the BiMap (Stiefel) weights with ``weight_decay=0``, the rest with ``weight_decay``.

        Example: ``RiemannianAdam(net.param_groups(1e-4), lr=5e-3)``.

        Raises:
            ValueError: ``weight_decay`` negative or not a number.
        """
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
            raise ValueError(f"SPDNet.param_groups: weight_decay must be a number >= 0, got {weight_decay!r}")
        stiefel = [m.weight for m in self.modules() if isinstance(m, BiMap)]
        ids = {id(p) for p in stiefel}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": stiefel, "weight_decay": 0.0}, {"params": rest, "weight_decay": float(weight_decay)}]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """SPD features ``(B, dims[-1], dims[-1])`` before LogEig."""
        _check_matrices("SPDNet", x, self.n_in)
        if x.dim() != 3:
            raise ValueError(f"SPDNet: expected input (B, n, n), got shape {tuple(x.shape)}")
        return self.feature(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.logeig(self.features(x))
        return self.classifier(z.flatten(1))
