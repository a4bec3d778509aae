"""Real, offline datasets for SPD / Grassmann / hyperbolic networks (issue 4, "real data").

Nothing here downloads anything, and no data are copied into this repository: every loader reads
files that an installed package ships inside its wheel.

From the ``geomstats==2.8.0`` wheel (``geomstats/datasets/data/``, a hard dependency):

* :func:`load_connectomes` -- 86 subjects of the Kaggle "MLSP 2014 Schizophrenia Classification
  Challenge" (Silva et al., "The tenth annual MLSP competition: Schizophrenia classification
  challenge", IEEE MLSP 2014): 28×28 functional-network-connectivity (FNC) correlation matrices
  between ICA components of resting-state fMRI, 46 healthy controls (label 0) and 40 patients
  with schizophrenia (label 1). Used in the geomstats paper (Miolane et al., JMLR 21(223), 2020)
  and its tutorial "Classifying brain connectomes".
* :func:`load_emg_covariances` / :func:`load_emg_subspaces` -- 8-electrode surface-EMG recordings
  (Myo armband, ≈250 Hz, two subjects "mg"/"rr", two sessions each, 24 recordings of the gestures
  rest, rock, paper, scissors, ok), the data of geomstats' tutorial "Hand gesture classification
  with EMG data" (M. Guerard). Covariance matrices of signal windows as geomstats'
  ``prepare_emg_data.TimeSeriesCovariance`` builds them (window 100 samples, margin 1000), and
  their principal subspaces (points of the Grassmannian Gr(8, p)).
* :func:`load_karate_graph` -- Zachary's karate club (W. W. Zachary, "An information flow model
  for conflict and fission in small groups", J. Anthropol. Res. 33(4), 1977): 34 members,
  78 friendships, and the two factions after the split (for hyperbolic node classification).

Optional, from the ``aeon`` wheel (``aeon/datasets/data/``, extra ``bench``):

* :func:`load_uea_covariances` -- multivariate time-series classification sets of the UEA archive
  (Bagnall et al., "The UEA multivariate time series classification archive, 2018",
  arXiv 1811.00075) that aeon bundles: ``BasicMotions`` (4 classes, 6 channels, 80 series of
  length 100) and ``JapaneseVowels`` (9 speakers, 12 channels, 640 series of length 7–29). The
  ``.ts`` files are parsed here; ``aeon`` is located with :func:`importlib.util.find_spec` and
  never imported (importing it pulls numba). aeon 1.6.0 pins ``pandas<3.1``.

Shapes and dtypes: matrices come as ``(N, n, n)`` tensors (float64 by default, ``dtype=``
argument), labels as ``(N,)`` int64 in ``0..n_classes-1``, in the order of ``class_names``.

SPD-ness: every matrix returned is strictly positive definite; loaders verify it with a Cholesky
factorisation in float64 and raise :class:`ValueError` otherwise. Regularisation is the linear
shrinkage toward the trace-scaled identity (Ledoit & Wolf, J. Multivar. Anal. 88, 2004, with a
fixed intensity α instead of their estimated one)::

    C_α = (1 - α) C + α (tr C / n) I,        λ_min(C_α) ≥ α tr(C) / n.

Defaults: α = 0 for the connectomes (the raw correlation matrices are already SPD: smallest
eigenvalue 2.27e-3 over the 86 subjects), α = 1e-3 for the EMG and UEA covariances (the EMG window
covariances are SPD without it, smallest eigenvalue 0.29, but α > 0 makes SPD-ness a guarantee).

Errors: :class:`FileNotFoundError` names the path looked for when a package or one of its data
files is missing; :class:`ValueError` for bad arguments or malformed files.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = [
    "SPDDataset",
    "GraphDataset",
    "EMG_GESTURES",
    "UEA_DATASETS",
    "geomstats_data_dir",
    "aeon_data_dir",
    "shrink",
    "load_connectomes",
    "load_emg_covariances",
    "load_emg_subspaces",
    "load_karate_graph",
    "read_ts",
    "load_uea_covariances",
]

PathLike = Union[str, Path]

#: EMG gesture names; the default label of each is its position here (geomstats' LABEL_MAP).
EMG_GESTURES: Tuple[str, ...] = ("rock", "scissors", "paper", "ok")
_EMG_ALL_LABELS = ("rest",) + EMG_GESTURES
_EMG_CHANNELS = tuple(f"c{i}" for i in range(8))

#: UEA sets that the aeon 1.6.0 wheel ships as ``<name>/<name>_{TRAIN,TEST}.ts``.
UEA_DATASETS: Tuple[str, ...] = ("BasicMotions", "JapaneseVowels")


# ----------------------------------------------------------------------------------------------
# containers


@dataclass(frozen=True)
class SPDDataset:
    """A labelled set of matrices.

    Attributes:
        x: ``(N, n, n)`` SPD matrices, or ``(N, n, p)`` orthonormal bases for
            :func:`load_emg_subspaces`.
        y: ``(N,)`` int64 labels in ``0 .. len(class_names) - 1``.
        class_names: name of each label.
        groups: ``(N,)`` int64 group of each sample (subject id, recording index or UEA split;
            see each loader), for grouped splits.
        name: dataset name.
        info: free-form provenance (paths, preprocessing parameters).
    """

    x: torch.Tensor
    y: torch.Tensor
    class_names: Tuple[str, ...]
    groups: torch.Tensor
    name: str
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> torch.Tensor:
        """``(n_classes,)`` int64 number of samples per label."""
        return torch.bincount(self.y, minlength=self.n_classes)


@dataclass(frozen=True)
class GraphDataset:
    """An undirected graph with node labels.

    Attributes:
        adjacency: ``(V, V)`` symmetric 0/1 matrix, zero diagonal.
        edges: ``(E, 2)`` int64 node pairs ``(i, j)`` with ``i < j``, sorted.
        y: ``(V,)`` int64 node labels.
        class_names: name of each label.
        name: dataset name.
        info: provenance.
    """

    adjacency: torch.Tensor
    edges: torch.Tensor
    y: torch.Tensor
    class_names: Tuple[str, ...]
    name: str
    info: dict = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        return int(self.adjacency.shape[0])


# ----------------------------------------------------------------------------------------------
# locating package data


def _package_dir(package: str, hint: str) -> Path:
    spec = importlib.util.find_spec(package)  # does not execute the package
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package '{package}' is not installed, so its bundled data cannot be read; {hint}")
    return Path(list(spec.submodule_search_locations)[0])


def geomstats_data_dir() -> Path:
    """The folder ``geomstats/datasets/data`` of the installed geomstats wheel.

    Raises:
        FileNotFoundError: geomstats is not installed or its wheel has no data folder (the path
            looked for is in the message).
    """
    path = _package_dir("geomstats", "install geomstats==2.8.0") / "datasets" / "data"
    if not path.is_dir():
        raise FileNotFoundError(f"geomstats' dataset folder {path} does not exist (geomstats==2.8.0 ships it)")
    return path


def aeon_data_dir() -> Path:
    """The folder ``aeon/datasets/data`` of the installed aeon wheel (optional extra ``bench``).

    Raises:
        FileNotFoundError: aeon is not installed, or has no data folder (path in the message).
    """
    path = _package_dir("aeon", "install the optional extra: pip install 'manifold-rl[bench]' (aeon==1.6.0)")
    path = path / "datasets" / "data"
    if not path.is_dir():
        raise FileNotFoundError(f"aeon's dataset folder {path} does not exist")
    return path


def _data_file(data_dir: Optional[PathLike], *parts: str) -> Path:
    base = geomstats_data_dir() if data_dir is None else Path(data_dir)
    path = base.joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file {path} does not exist (geomstats==2.8.0 ships it under datasets/data/)")
    return path


# ----------------------------------------------------------------------------------------------
# helpers


def _check_dtype(dtype) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point or dtype.is_complex:
        raise ValueError(f"dtype must be a real floating torch.dtype (e.g. torch.float64), got {dtype!r}")
    return dtype


def _check_shrinkage(shrinkage) -> float:
    if isinstance(shrinkage, bool) or not isinstance(shrinkage, (int, float)) or not (0.0 <= shrinkage <= 1.0):
        raise ValueError(f"shrinkage must be a number in [0, 1], got {shrinkage!r}")
    return float(shrinkage)


def _check_int(value, name: str, low: int, high: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (high is not None and value > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an int {rng}, got {value!r}")
    return int(value)


def shrink(c: np.ndarray, shrinkage: float) -> np.ndarray:
    """Linear shrinkage ``(1 - α) C + α (tr C / n) I`` of a stack of symmetric matrices.

    Args:
        c: ``(..., n, n)`` symmetric matrices (numpy).
        shrinkage: α in [0, 1].

    Returns:
        ``(..., n, n)`` array; symmetrised exactly (``(A + Aᵀ) / 2``).

    Raises:
        ValueError: α outside [0, 1] or ``c`` not square.
    """
    a = _check_shrinkage(shrinkage)
    c = np.asarray(c, dtype=np.float64)
    if c.ndim < 2 or c.shape[-1] != c.shape[-2]:
        raise ValueError(f"expected (..., n, n) matrices, got shape {c.shape}")
    n = c.shape[-1]
    out = (1.0 - a) * c
    if a > 0:
        tr = np.trace(c, axis1=-2, axis2=-1)[..., None, None]
        out = out + a * (tr / n) * np.eye(n)
    return 0.5 * (out + np.swapaxes(out, -1, -2))


def _assert_spd(c: np.ndarray, what: str) -> None:
    try:
        np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        ev = np.linalg.eigvalsh(c)[..., 0]
        bad = np.flatnonzero(ev.reshape(-1) <= 0)
        raise ValueError(
            f"{what}: {bad.size} matrices are not positive definite (smallest eigenvalue {ev.min():.3g}); "
            "increase shrinkage"
        ) from None


def _to_tensor(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)).to(dtype)


# ----------------------------------------------------------------------------------------------
# connectomes


def load_connectomes(
    *, dtype: torch.dtype = torch.float64, shrinkage: float = 0.0, data_dir: Optional[PathLike] = None
) -> SPDDataset:
    """Functional connectivity matrices of 86 subjects, schizophrenia (1) vs control (0).

    Reads ``connectomes/train_FNC.csv`` (one row per subject: Kaggle ``Id`` and the 378 = 28·27/2
    correlations ``FNC1..FNC378``, the strict upper triangle in row-major order) and
    ``connectomes/train_labels.csv`` (``Id, Class``) of geomstats' data folder. The matrix of a
    subject is ``C = I + U + Uᵀ`` with ``U`` that upper triangle; ``shrinkage=α`` returns
    ``(1 - α) C + α I``.

    Note: ``geomstats.datasets.utils.load_connectomes`` symmetrises by averaging the triangular
    matrix with its transpose, which halves every off-diagonal entry: it returns ``(C + I) / 2``,
    i.e. ``shrinkage=0.5`` here. The default ``shrinkage=0`` returns the correlation matrices
    themselves (all SPD, smallest eigenvalue 2.27e-3, unit diagonal).

    Args:
        dtype: real floating dtype of ``x``.
        shrinkage: α in [0, 1].
        data_dir: geomstats' ``datasets/data`` folder or a copy of it (default: the installed one).

    Returns:
        :class:`SPDDataset` with ``x`` ``(86, 28, 28)``, ``y`` ``(86,)`` (46 zeros, 40 ones),
        ``class_names = ("control", "schizophrenia")``, ``groups`` = the Kaggle subject ids.

    Raises:
        FileNotFoundError: a data file is missing (path in the message).
        ValueError: bad ``dtype`` / ``shrinkage``; malformed files (ids of the two files differ,
            wrong column count, non-finite values).
    """
    dtype = _check_dtype(dtype)
    alpha = _check_shrinkage(shrinkage)
    fnc_path = _data_file(data_dir, "connectomes", "train_FNC.csv")
    lab_path = _data_file(data_dir, "connectomes", "train_labels.csv")
    fnc = np.loadtxt(fnc_path, delimiter=",", skiprows=1, ndmin=2)
    lab = np.loadtxt(lab_path, delimiter=",", skiprows=1, ndmin=2)
    n = 28
    k = n * (n - 1) // 2
    if fnc.shape[1] != k + 1 or lab.shape[1] != 2:
        raise ValueError(f"{fnc_path} must have 1 + {k} columns and {lab_path} 2, got {fnc.shape[1]} and {lab.shape[1]}")
    if fnc.shape[0] != lab.shape[0] or not np.array_equal(fnc[:, 0], lab[:, 0]):
        raise ValueError(f"the subject ids of {fnc_path} and {lab_path} do not match")
    if not np.isfinite(fnc).all() or not np.isin(lab[:, 1], (0, 1)).all():
        raise ValueError(f"{fnc_path} has non-finite values or {lab_path} labels outside {{0, 1}}")
    iu = np.triu_indices(n, 1)
    c = np.tile(np.eye(n), (fnc.shape[0], 1, 1))
    c[:, iu[0], iu[1]] = fnc[:, 1:]
    c[:, iu[1], iu[0]] = fnc[:, 1:]
    c = shrink(c, alpha)  # tr C / n = 1 for a correlation matrix
    _assert_spd(c, "connectomes")
    return SPDDataset(
        x=_to_tensor(c, dtype),
        y=torch.from_numpy(lab[:, 1].astype(np.int64)),
        class_names=("control", "schizophrenia"),
        groups=torch.from_numpy(fnc[:, 0].astype(np.int64)),
        name="connectomes",
        info={"source": str(fnc_path), "shrinkage": alpha},
    )


# ----------------------------------------------------------------------------------------------
# EMG


@functools.lru_cache(maxsize=2)
def _read_emg(path: str):
    import pandas as pd  # geomstats dependency; fast CSV reader

    try:
        df = pd.read_csv(path, dtype={c: np.float64 for c in _EMG_CHANNELS})
    except ValueError as e:
        raise ValueError(f"{path} is not the EMG table (time, c0..c7, label, exp): {e}") from e
    missing = {"time", "label", "exp", *_EMG_CHANNELS} - set(df.columns)
    if missing:
        raise ValueError(f"{path} lacks the columns {sorted(missing)}")
    signal = df[list(_EMG_CHANNELS)].to_numpy(np.float64)
    label = df["label"].to_numpy().astype(str)
    exp = df["exp"].to_numpy().astype(str)
    time = df["time"].to_numpy(np.int64)
    if not np.isfinite(signal).all():
        raise ValueError(f"{path} has non-finite signal values")
    unknown = set(np.unique(label)) - set(_EMG_ALL_LABELS)
    if unknown:
        raise ValueError(f"{path} has unknown labels {sorted(unknown)}")
    # runs: maximal blocks of constant (label, exp); a recording restarts its clock
    change = np.r_[True, (label[1:] != label[:-1]) | (exp[1:] != exp[:-1])]
    starts = np.flatnonzero(change)
    ends = np.r_[starts[1:], label.size]
    new_rec = np.r_[True, (exp[starts[1:]] != exp[starts[:-1]]) | (time[starts[1:]] < time[ends[:-1] - 1])]
    recording = np.cumsum(new_rec) - 1
    for a in (signal, label, exp, starts, ends, recording):
        a.setflags(write=False)
    return signal, label, exp, starts, ends, recording


def _emg_windows(window, margin, gestures, data_dir):
    window = _check_int(window, "window", 2)
    margin = _check_int(margin, "margin", 0)
    if isinstance(gestures, str) or not isinstance(gestures, Sequence) or len(gestures) < 2:
        raise ValueError(f"gestures must be a sequence of at least 2 names from {_EMG_ALL_LABELS}, got {gestures!r}")
    gestures = tuple(gestures)
    if len(set(gestures)) != len(gestures) or not set(gestures) <= set(_EMG_ALL_LABELS):
        raise ValueError(f"gestures must be distinct names from {_EMG_ALL_LABELS}, got {gestures!r}")
    path = _data_file(data_dir, "emg", "emg.csv")
    signal, label, exp, starts, ends, recording = _read_emg(str(path))
    index = {g: i for i, g in enumerate(gestures)}
    win_starts, ys, groups = [], [], []
    for s, e, rec in zip(starts, ends, recording):
        g = label[s]
        if g not in index:
            continue
        w = np.arange(s + margin, e - margin - window + 1, window)
        win_starts.append(w)
        ys.append(np.full(w.size, index[g], dtype=np.int64))
        groups.append(np.full(w.size, rec, dtype=np.int64))
    w = np.concatenate(win_starts)
    if w.size == 0:
        raise ValueError(f"no window of {window} samples fits in any gesture run after removing margin={margin} at each end")
    segs = signal[w[:, None] + np.arange(window)]  # (N, window, 8)
    segs = segs - segs.mean(axis=1, keepdims=True)
    cov = np.einsum("nti,ntj->nij", segs, segs) / (window - 1)  # = np.cov of each window
    info = {"source": str(path), "window": window, "margin": margin, "gestures": gestures}
    return cov, np.concatenate(ys), np.concatenate(groups), gestures, info


def load_emg_covariances(
    *,
    window: int = 100,
    margin: int = 1000,
    gestures: Sequence[str] = EMG_GESTURES,
    shrinkage: float = 1e-3,
    dtype: torch.dtype = torch.float64,
    data_dir: Optional[PathLike] = None,
) -> SPDDataset:
    """8×8 covariance matrices of non-overlapping EMG signal windows, one label per gesture.

    Reads ``emg/emg.csv`` of geomstats' data folder (731 682 samples: ``time`` in ms, electrodes
    ``c0..c7``, ``label`` in {rest, rock, paper, scissors, ok}, ``exp`` in {mg_s1, mg_s2, rr_s1,
    rr_s2}). The table splits into 120 runs of constant (label, exp), about 6 100 samples each,
    grouped into 24 recordings (each: rest, rock, paper, scissors, ok; the clock restarts).
    From each run of a selected gesture, ``margin`` samples are dropped at both ends (transients)
    and the rest is cut into consecutive windows of ``window`` samples; each window gives the
    unbiased sample covariance (``np.cov``) of its 8 channels, then the shrinkage of
    :func:`shrink`.

    With the defaults (geomstats' tutorial values ``N_STEPS=100``, ``MARGIN=1000``, rest
    excluded, labels rock 0, scissors 1, paper 2, ok 3) this gives 3 898 matrices: counts
    (975, 977, 975, 971). geomstats' ``TimeSeriesCovariance`` windows the concatenated table
    instead (it skips the first run and does not split at recording boundaries), so its count
    differs slightly; the per-window covariances are the same computation.

    Windows of one run are strongly correlated: a random split leaks; ``groups`` (recording
    index 0..23; recordings 0–5 are mg_s1, 6–11 mg_s2, 12–17 rr_s1, 18–23 rr_s2) allows a
    split by recording or subject.

    Args:
        window: samples per window (≥ 2; ≥ 9 for full-rank 8×8 covariances before shrinkage).
        margin: samples dropped at each end of every run (≥ 0).
        gestures: the classes, in label order; names from rest, rock, scissors, paper, ok.
        shrinkage: α in [0, 1] (default 1e-3: λ_min ≥ 1e-3 tr(C)/8).
        dtype: real floating dtype of ``x``.
        data_dir: geomstats' ``datasets/data`` folder or a copy (default: the installed one).

    Returns:
        :class:`SPDDataset`, ``x`` ``(N, 8, 8)``, ``y`` ``(N,)``, ``groups`` recording indices.

    Raises:
        FileNotFoundError: ``emg/emg.csv`` is missing (path in the message).
        ValueError: bad arguments, malformed table, no window fits, or a non-SPD result (only
            possible with ``shrinkage=0``).
    """
    dtype = _check_dtype(dtype)
    alpha = _check_shrinkage(shrinkage)
    cov, y, groups, gestures, info = _emg_windows(window, margin, gestures, data_dir)
    cov = shrink(cov, alpha)
    _assert_spd(cov, "EMG window covariances")
    info["shrinkage"] = alpha
    return SPDDataset(
        x=_to_tensor(cov, dtype),
        y=torch.from_numpy(y),
        class_names=gestures,
        groups=torch.from_numpy(groups),
        name="emg",
        info=info,
    )


def load_emg_subspaces(
    p: int = 3,
    *,
    window: int = 100,
    margin: int = 1000,
    gestures: Sequence[str] = EMG_GESTURES,
    dtype: torch.dtype = torch.float64,
    data_dir: Optional[PathLike] = None,
) -> SPDDataset:
    """Principal subspaces of the EMG window covariances: points of the Grassmannian Gr(8, p).

    Same windows, labels and groups as :func:`load_emg_covariances`; each window is represented
    by the span of the eigenvectors of its covariance for the ``p`` largest eigenvalues (the
    top-p PCA subspace of the window), returned as an ``(8, p)`` orthonormal basis with columns
    in decreasing eigenvalue order. The basis is defined up to a right ``O(p)`` factor (columns
    may flip sign); the subspace is well defined when λ_p > λ_{p+1} (the smallest relative gap
    is in ``info["min_rel_gap"]``). Shrinkage does not change eigenvectors, so there is none.

    Args:
        p: subspace dimension, 1 ≤ p ≤ 7.
        window, margin, gestures, data_dir: as in :func:`load_emg_covariances`.
        dtype: real floating dtype of ``x``.

    Returns:
        :class:`SPDDataset` whose ``x`` is ``(N, 8, p)`` with ``xᵀ x = I_p``.

    Raises:
        FileNotFoundError: ``emg/emg.csv`` is missing.
        ValueError: bad arguments (``p`` outside [1, 7], ...).
    """
    p = _check_int(p, "p", 1, len(_EMG_CHANNELS) - 1)
    dtype = _check_dtype(dtype)
    cov, y, groups, gestures, info = _emg_windows(window, margin, gestures, data_dir)
    evals, evecs = np.linalg.eigh(cov)  # ascending
    basis = evecs[..., ::-1][..., :p]
    lam = evals[..., ::-1]
    gap = (lam[:, p - 1] - lam[:, p]) / np.maximum(np.abs(lam[:, 0]), np.finfo(np.float64).tiny)
    info.update(p=p, min_rel_gap=float(gap.min()))
    return SPDDataset(
        x=_to_tensor(basis, dtype),
        y=torch.from_numpy(y),
        class_names=gestures,
        groups=torch.from_numpy(groups),
        name=f"emg_grassmann_p{p}",
        info=info,
    )


# ----------------------------------------------------------------------------------------------
# karate club


def load_karate_graph(*, dtype: torch.dtype = torch.float64, data_dir: Optional[PathLike] = None) -> GraphDataset:
    """Zachary's karate club graph with the two factions.

    Reads ``graph_karate/karate.txt`` (34×34 whitespace-separated adjacency matrix) and
    ``graph_karate/karate_labels.txt`` (one label 1 or 2 per node) of geomstats' data folder.
    Label 0 is the faction of node 0 (the instructor, "Mr. Hi"), label 1 that of node 33 (the
    administrator); 17 nodes each in geomstats' file.

    Args:
        dtype: real floating dtype of the adjacency matrix.
        data_dir: geomstats' ``datasets/data`` folder or a copy (default: the installed one).

    Returns:
        :class:`GraphDataset`: ``adjacency`` ``(34, 34)``, ``edges`` ``(78, 2)``, ``y`` ``(34,)``.

    Raises:
        FileNotFoundError: a data file is missing.
        ValueError: the matrix is not a symmetric 0/1 matrix with zero diagonal, or the labels
            do not match it.
    """
    dtype = _check_dtype(dtype)
    adj_path = _data_file(data_dir, "graph_karate", "karate.txt")
    lab_path = _data_file(data_dir, "graph_karate", "karate_labels.txt")
    a = np.loadtxt(adj_path, ndmin=2)
    lab = np.loadtxt(lab_path, ndmin=1).astype(np.int64)
    if (
        a.shape[0] != a.shape[1]
        or not np.isin(a, (0, 1)).all()
        or not np.array_equal(a, a.T)
        or np.diag(a).any()
    ):
        raise ValueError(f"{adj_path} must be a symmetric 0/1 adjacency matrix with zero diagonal")
    if lab.shape != (a.shape[0],) or not np.isin(lab, (1, 2)).all():
        raise ValueError(f"{lab_path} must hold one label in {{1, 2}} per node ({a.shape[0]} nodes)")
    y = (lab != lab[0]).astype(np.int64)  # 0 = faction of node 0
    iu = np.triu_indices(a.shape[0], 1)
    sel = a[iu] > 0
    edges = np.stack([iu[0][sel], iu[1][sel]], axis=1).astype(np.int64)
    return GraphDataset(
        adjacency=_to_tensor(a, dtype),
        edges=torch.from_numpy(edges),
        y=torch.from_numpy(y),
        class_names=("instructor", "administrator"),
        name="karate",
        info={"source": str(adj_path)},
    )


# ----------------------------------------------------------------------------------------------
# UEA multivariate time series (.ts files bundled by aeon)


def read_ts(path: PathLike) -> Tuple[list, np.ndarray, Tuple[str, ...]]:
    """Parse a multivariate ``.ts`` file of the UEA/UCR archive (sktime/aeon format).

    Supported: ``@univariate``/``@dimensions``, equal or unequal lengths, ``@classLabel true``
    with the class list, no timestamps, no missing values. Comment lines start with ``#``.

    Args:
        path: the file.

    Returns:
        ``(series, labels, class_names)``: a list of ``(channels, length_i)`` float64 arrays, the
        ``(N,)`` int64 labels (positions in ``class_names``) and the class names in the order of
        the ``@classLabel`` header.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unsupported or malformed content (message names the line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"time-series file {path} does not exist")
    classes: Optional[Tuple[str, ...]] = None
    series, labels = [], []
    in_data = False
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                low = line.lower()
                if low.startswith("@classlabel"):
                    toks = line.split()
                    if len(toks) < 3 or toks[1].lower() != "true":
                        raise ValueError(f"{path}:{lineno}: expected '@classLabel true <names>'")
                    classes = tuple(toks[2:])
                elif low.startswith("@timestamps") and line.split()[-1].lower() == "true":
                    raise ValueError(f"{path}:{lineno}: timestamped .ts files are not supported")
                elif low.startswith("@data"):
                    if classes is None:
                        raise ValueError(f"{path}: no '@classLabel true ...' header before @data")
                    in_data = True
                continue
            *dims, label = line.split(":")
            if not dims:
                raise ValueError(f"{path}:{lineno}: expected '<channel>:...:<channel>:<label>'")
            try:
                chans = [np.array(d.split(","), dtype=np.float64) for d in dims]
            except ValueError as e:
                raise ValueError(f"{path}:{lineno}: non-numeric value ({e})") from None
            if len({c.size for c in chans}) != 1:
                raise ValueError(f"{path}:{lineno}: channels of one series have different lengths")
            arr = np.stack(chans)
            if not np.isfinite(arr).all():
                raise ValueError(f"{path}:{lineno}: missing or non-finite values are not supported")
            if label.strip() not in classes:
                raise ValueError(f"{path}:{lineno}: label {label.strip()!r} not in the @classLabel list {classes}")
            if series and arr.shape[0] != series[0].shape[0]:
                raise ValueError(f"{path}:{lineno}: {arr.shape[0]} channels, previous series had {series[0].shape[0]}")
            series.append(arr)
            labels.append(classes.index(label.strip()))
    if not series:
        raise ValueError(f"{path}: no series after @data")
    return series, np.array(labels, dtype=np.int64), classes


def load_uea_covariances(
    name: str,
    *,
    split: str = "all",
    shrinkage: float = 1e-3,
    dtype: torch.dtype = torch.float64,
    data_dir: Optional[PathLike] = None,
) -> SPDDataset:
    """Channel covariance matrices of a UEA multivariate time-series classification set.

    Each series ``(channels, T_i)`` gives its unbiased sample covariance over time followed by
    :func:`shrink` (needed for JapaneseVowels: 12 channels but only 7–29 time steps, so many raw
    covariances are singular; α = 1e-3 gives condition numbers up to about 1e3·12). Reads
    ``<data_dir>/<name>/<name>_TRAIN.ts`` and ``_TEST.ts``, by default from the installed aeon
    wheel (:func:`aeon_data_dir`, optional extra ``bench``).

    Sizes (UEA archive): BasicMotions 40 train + 40 test, 4 classes × 20, 6×6 matrices;
    JapaneseVowels 270 train + 370 test, 9 classes, 12×12 matrices.

    Args:
        name: one of :data:`UEA_DATASETS` (another UEA name works with a ``data_dir`` holding it).
        split: ``"train"``, ``"test"`` or ``"all"`` (train then test).
        shrinkage: α in [0, 1].
        dtype: real floating dtype of ``x``.
        data_dir: folder holding ``<name>/`` (default: aeon's ``datasets/data``).

    Returns:
        :class:`SPDDataset`, ``x`` ``(N, C, C)``, ``groups`` 0 for train and 1 for test samples
        (the archive's official split).

    Raises:
        FileNotFoundError: aeon not installed (and no ``data_dir``), or a file is missing.
        ValueError: bad arguments; malformed files; train and test class lists differ.
    """
    if not isinstance(name, str) or not name or "/" in name or "\\" in name:
        raise ValueError(f"name must be a UEA dataset name such as {UEA_DATASETS}, got {name!r}")
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    alpha = _check_shrinkage(shrinkage)
    dtype = _check_dtype(dtype)
    base = aeon_data_dir() if data_dir is None else Path(data_dir)
    parts = ("TRAIN", "TEST") if split == "all" else (split.upper(),)
    covs, ys, groups, classes = [], [], [], None
    for part in parts:
        series, y, cls = read_ts(base / name / f"{name}_{part}.ts")
        if classes is not None and cls != classes:
            raise ValueError(f"{name}: train classes {classes} differ from test classes {cls}")
        classes = cls
        for s in series:
            if s.shape[1] < 2:
                raise ValueError(f"{name}_{part}: a series has fewer than 2 time steps")
            covs.append(np.cov(s))
        ys.append(y)
        groups.append(np.full(y.size, 0 if part == "TRAIN" else 1, dtype=np.int64))
    cov = np.stack(covs)
    if cov.ndim == 1:  # univariate: np.cov returns scalars
        raise ValueError(f"{name} is univariate; covariance matrices need several channels")
    cov = shrink(cov, alpha)
    _assert_spd(cov, f"{name} covariances")
    return SPDDataset(
        x=_to_tensor(cov, dtype),
        y=torch.from_numpy(np.concatenate(ys)),
        class_names=classes,
        groups=torch.from_numpy(np.concatenate(groups)),
        name=name,
        info={"source": str(base / name), "split": split, "shrinkage": alpha},
    )

