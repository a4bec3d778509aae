r"""The gyrogroup interface, and the gyro-structures of SPD matrices (AIM, LEM, LCM).

A **gyrogroup** ``(G, ⊕)`` (Ungar, *Analytic Hyperbolic Geometry and Albert Einstein's
Special Theory of Relativity*, World Scientific 2008, Def. 2.7) is a set with a binary
operation such that, for all ``a, b, c``:

* (G1) left identity: ``e ⊕ a = a``;
* (G2) left inverse: ``⊖a ⊕ a = e``;
* (G3) left gyroassociativity: ``a ⊕ (b ⊕ c) = (a ⊕ b) ⊕ gyr[a, b] c``, where the
  gyration ``gyr[a, b] c = ⊖(a ⊕ b) ⊕ (a ⊕ (b ⊕ c))`` is an automorphism of ``(G, ⊕)``;
* (G5) left loop / reduction property: ``gyr[a, b] = gyr[a ⊕ b, b]``.

Consequence used everywhere: left cancellation ``a ⊕ (⊖a ⊕ b) = b`` (Ungar 2008, Ch. 2). A
**gyrovector space** adds a scalar multiplication ``t ⊗ a`` with ``1 ⊗ a = a`` and
``(s + t) ⊗ a = s ⊗ a ⊕ t ⊗ a``. On the Riemannian manifolds here the gyrodistance
``d(a, b) = ‖⊖a ⊕ b‖ = d(e, ⊖a ⊕ b)`` equals the geodesic distance and gyrations are
isometries, which is what Riemannian batch normalization needs (Chen, Song, Wu & Sebe,
"Gyrogroup batch normalization", ICLR 2025, §3–4: "pseudo-reductive gyrogroups with
gyroisometric gyrations").

The interface, implemented by :class:`manifolds.PoincareBall` (Möbius operations; its
identity is ``0``), :class:`manifolds.grassmann.Grassmann` (which satisfies all of the
above except the left loop property (G5): see its docstring) and the SPD structures of this module
(:class:`AIMGyro`, :class:`LEMGyro`, :class:`LCMGyro`), is the :class:`GyroGroup` protocol:

=========================  ====================================================
``gyro_add(a, b)``         ``a ⊕ b``
``gyro_inv(a)``            ``⊖a``
``gyration(a, b, c)``      ``gyr[a, b] c``
``gyro_scalar_mul(t, a)``  ``t ⊗ a`` (``t`` a scalar or a batch tensor)
``gyro_identity(like)``    ``e``, broadcast to the shape / dtype / device of ``like``
=========================  ====================================================

SPD gyro-structures (Nguyen, "The gyro-structure of some matrix manifolds", NeurIPS 2022;
Nguyen & Yang, "Building neural networks on matrix manifolds: a gyrovector space
approach", ICML 2023; Chen et al. 2025, Tab. 1; refs/batchnorm.md §2.2). Points are SPD
``(..., n, n)``, ``e = I``:

* :class:`AIMGyro` (affine-invariant): ``a ⊕ b = a^{½} b a^{½}``, ``⊖a = a⁻¹``,
  ``t ⊗ a = a^t``, ``gyr[a, b] c = O c Oᵀ`` with the orthogonal
  ``O = (a^{½} b a^{½})^{-½} a^{½} b^{½}`` (Nguyen 2022, Eq. for ``gyr`` under AIM). A
  gyrogroup, not a group.
* :class:`LEMGyro` (log-Euclidean): ``a ⊕ b = expm(logm a + logm b)``, ``⊖a = a⁻¹``,
  ``t ⊗ a = a^t``, ``gyr = id`` (an abelian Lie group; Arsigny et al., SIMAX 2007).
* :class:`LCMGyro` (log-Cholesky): on lower Cholesky factors ``a = LLᵀ``, ``b = KKᵀ``:
  ``L ⊕ K = ⌊L⌋ + ⌊K⌋ + D(L) D(K)``, ``⊖L = −⌊L⌋ + D(L)⁻¹``, ``t ⊗ L = t⌊L⌋ + D(L)^t``,
  ``gyr = id`` (abelian Lie group; Lin, SIMAX 2019, §4), mapped back by ``LLᵀ``.

The distances that make gyrations isometries and ``d(a, b) = d(I, ⊖a ⊕ b)`` hold are those of
``manifolds.SPD(n, "aim" / "lem" / "lcm")``. Matrix functions go through
:mod:`manifolds._linalg` (Daleckii–Krein backward), so gradients are finite at the identity
and at repeated eigenvalues. Nothing here synchronises with the device or branches on
tensor values.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from ._linalg import sym, sym_expm, sym_invsqrtm, sym_logm, sym_powm, sym_sqrtm

__all__ = ["GyroGroup", "AIMGyro", "LEMGyro", "LCMGyro"]


@runtime_checkable
class GyroGroup(Protocol):
    """The gyrogroup / gyrovector-space interface (see the module docstring for the axioms)."""

    def gyro_add(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor: ...

    def gyro_inv(self, a: torch.Tensor) -> torch.Tensor: ...

    def gyration(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor: ...

    def gyro_scalar_mul(self, t, a: torch.Tensor) -> torch.Tensor: ...

    def gyro_identity(self, like: torch.Tensor) -> torch.Tensor: ...


def _scalar_or_batch(t, a: torch.Tensor) -> torch.Tensor:
    """``t`` (scalar or ``(...,)``) reshaped to broadcast against ``(..., n, n)``."""
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    return t.reshape(t.shape + (1, 1))


def _eye_like(a: torch.Tensor) -> torch.Tensor:
    n = a.shape[-1]
    return torch.eye(n, dtype=a.dtype, device=a.device).expand(a.shape).clone()


def _powm_batch(a: torch.Tensor, t) -> torch.Tensor:
    """``a^t`` for a Python number (``sym_powm``) or a tensor ``t`` (``expm(t logm a)``)."""
    if isinstance(t, torch.Tensor):
        return sym_expm(_scalar_or_batch(t, a) * sym_logm(a))
    return sym_powm(a, t)


# ---------------------------------------------------------------------------- AIM
class AIMGyro:
    """Gyro-structure of SPD matrices under the affine-invariant metric (Nguyen 2022, §SPD / AIM).

    All methods are static and act on SPD ``(..., n, n)`` tensors (batch dimensions broadcast);
    results are symmetrised. Isometries and distances: ``manifolds.SPD(n, "aim")``.
    """

    @staticmethod
    def gyro_identity(like: torch.Tensor) -> torch.Tensor:
        """``I`` shaped like ``like`` (``(..., n, n)``)."""
        return _eye_like(like)

    @staticmethod
    def gyro_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``a ⊕ b = a^{½} b a^{½}``; ``(..., n, n)``."""
        h = sym_sqrtm(a)
        return sym(h @ b @ h)

    @staticmethod
    def gyro_inv(a: torch.Tensor) -> torch.Tensor:
        """``⊖a = a⁻¹`` (via Cholesky); ``(..., n, n)``."""
        return sym(torch.cholesky_inverse(torch.linalg.cholesky_ex(sym(a))[0]))

    @staticmethod
    def gyro_scalar_mul(t, a: torch.Tensor) -> torch.Tensor:
        """``t ⊗ a = a^t``; ``t`` a Python number or a ``(...,)`` tensor."""
        return _powm_batch(a, t)

    @staticmethod
    def gyration_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The orthogonal ``O = (a^{½} b a^{½})^{-½} a^{½} b^{½}`` with ``gyr[a, b] c = O c Oᵀ``.

        ``OOᵀ = (a^{½}ba^{½})^{-½} a^{½} b a^{½} (a^{½}ba^{½})^{-½} = I``. ``(..., n, n)``.
        """
        ha = sym_sqrtm(a)
        ab = sym(ha @ b @ ha)
        return sym_invsqrtm(ab) @ ha @ sym_sqrtm(b)

    @staticmethod
    def gyration(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``gyr[a, b] c = (a^{½}ba^{½})^{-½} a^{½} b^{½} c b^{½} a^{½} (a^{½}ba^{½})^{-½}`` (Nguyen 2022)."""
        o = AIMGyro.gyration_matrix(a, b)
        return sym(o @ c @ o.mT)


# ---------------------------------------------------------------------------- LEM
class LEMGyro:
    """Gyro-structure (an abelian Lie group) of SPD matrices under the log-Euclidean metric.

    ``a ⊕ b = expm(logm a + logm b)`` (Arsigny, Fillard, Pennec & Ayache, SIMAX 29 (2007),
    Def. 3.1), ``⊖a = a⁻¹``, ``t ⊗ a = expm(t logm a) = a^t``, ``gyr = id``. Static methods on
    SPD ``(..., n, n)``. Isometries and distances: ``manifolds.SPD(n, "lem")``.
    """

    @staticmethod
    def gyro_identity(like: torch.Tensor) -> torch.Tensor:
        return _eye_like(like)

    @staticmethod
    def gyro_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``expm(logm a + logm b)``; ``(..., n, n)``."""
        return sym_expm(sym_logm(a) + sym_logm(b))

    @staticmethod
    def gyro_inv(a: torch.Tensor) -> torch.Tensor:
        """``⊖a = expm(−logm a) = a⁻¹``; ``(..., n, n)``."""
        return sym_expm(-sym_logm(a))

    @staticmethod
    def gyro_scalar_mul(t, a: torch.Tensor) -> torch.Tensor:
        """``t ⊗ a = expm(t logm a)``; ``t`` a number or a ``(...,)`` tensor."""
        return sym_expm(_scalar_or_batch(t, a) * sym_logm(a))

    @staticmethod
    def gyration(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``gyr[a, b] c = c`` (the group is abelian); broadcast to the common shape."""
        return torch.broadcast_tensors(a, b, c)[2].clone()


# ---------------------------------------------------------------------------- LCM
def _lcm_parts(a: torch.Tensor):
    """``(⌊L⌋, diag(L))`` of the lower Cholesky factor ``a = LLᵀ`` (no error check, no host sync)."""
    lo = torch.linalg.cholesky_ex(sym(a))[0]
    return torch.tril(lo, -1), torch.diagonal(lo, dim1=-2, dim2=-1)


def _lcm_build(strict: torch.Tensor, diag: torch.Tensor) -> torch.Tensor:
    lo = strict + torch.diag_embed(diag)
    return sym(lo @ lo.mT)


class LCMGyro:
    """Gyro-structure (an abelian Lie group) of SPD matrices under the log-Cholesky metric.

    Lin, "Riemannian geometry of symmetric positive definite matrices via Cholesky
    decomposition", SIMAX 40 (2019), §4 (the Lie group on Cholesky factors); Chen et al. 2025,
    Tab. 1 (``ψ_LC⁻¹(ψ_LC(P) + ψ_LC(Q))`` with ``ψ_LC(L) = ⌊L⌋ + log D(L)``). With lower
    Cholesky factors ``a = LLᵀ``, ``b = KKᵀ`` (``⌊·⌋`` strictly lower part, ``D`` diagonal):
    ``L ⊕ K = ⌊L⌋ + ⌊K⌋ + D(L) D(K)``, ``⊖L = −⌊L⌋ + D(L)⁻¹``, ``t ⊗ L = t⌊L⌋ + D(L)^t``,
    ``gyr = id``; the results are mapped back to SPD by ``LLᵀ``. Static methods on SPD
    ``(..., n, n)``. Isometries and distances: ``manifolds.SPD(n, "lcm")``. Cholesky and
    elementwise ops only: gradients finite at repeated eigenvalues.
    """

    @staticmethod
    def gyro_identity(like: torch.Tensor) -> torch.Tensor:
        return _eye_like(like)

    @staticmethod
    def gyro_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``(⌊L⌋ + ⌊K⌋ + D(L)D(K))(·)ᵀ``; ``(..., n, n)``."""
        sa, da = _lcm_parts(a)
        sb, db = _lcm_parts(b)
        return _lcm_build(sa + sb, da * db)

    @staticmethod
    def gyro_inv(a: torch.Tensor) -> torch.Tensor:
        """``(−⌊L⌋ + D(L)⁻¹)(·)ᵀ``; ``(..., n, n)``."""
        s, d = _lcm_parts(a)
        return _lcm_build(-s, 1.0 / d)

    @staticmethod
    def gyro_scalar_mul(t, a: torch.Tensor) -> torch.Tensor:
        """``(t⌊L⌋ + D(L)^t)(·)ᵀ``; ``t`` a number or a ``(...,)`` tensor."""
        s, d = _lcm_parts(a)
        tt = _scalar_or_batch(t, a)
        return _lcm_build(tt * s, torch.exp(tt[..., 0] * torch.log(d)))

    @staticmethod
    def gyration(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``gyr[a, b] c = c`` (the group is abelian); broadcast to the common shape."""
        return torch.broadcast_tensors(a, b, c)[2].clone()
