"""Offline real-data loaders (manifold_rl.data.spd_datasets): connectomes, EMG, karate, UEA .ts."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from manifold_rl.data import (
    EMG_GESTURES,
    load_connectomes,
    load_emg_covariances,
    load_emg_subspaces,
    load_karate_graph,
    load_uea_covariances,
)
from manifold_rl.data import spd_datasets as sd


def _assert_cholesky_all(x: torch.Tensor) -> None:
    _, info = torch.linalg.cholesky_ex(x)
    assert (info == 0).all(), f"{int((info != 0).sum())} matrices fail Cholesky"


# ---------------------------------------------------------------- connectomes


def test_connectomes_shapes_labels_spd():
    d = load_connectomes()
    assert d.x.shape == (86, 28, 28) and d.x.dtype == torch.float64
    assert d.y.shape == (86,) and d.y.dtype == torch.int64
    assert d.class_counts().tolist() == [46, 40]  # Kaggle MLSP 2014 training set
    assert d.groups.dtype == torch.int64 and d.groups.unique().numel() == 86
    torch.testing.assert_close(d.x, d.x.mT, rtol=0, atol=0)
    torch.testing.assert_close(torch.diagonal(d.x, dim1=-2, dim2=-1), torch.ones(86, 28, dtype=torch.float64))
    assert d.x.abs().max() <= 1.0  # correlations
    _assert_cholesky_all(d.x)
    ev = torch.linalg.eigvalsh(d.x)[:, 0]
    assert 1e-3 < ev.min() < 1e-2  # raw correlation matrices: SPD but nearly singular (documented 2.27e-3)


def test_connectomes_match_geomstats_at_half_shrinkage():
    from geomstats.datasets.utils import load_connectomes as gs_load

    mat, pid, target = gs_load()
    d = load_connectomes(shrinkage=0.5)
    np.testing.assert_allclose(d.x.numpy(), mat, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(d.y.numpy(), target)
    np.testing.assert_array_equal(d.groups.numpy(), pid)


def test_connectomes_float32():
    d32 = load_connectomes(dtype=torch.float32)
    d64 = load_connectomes()
    assert d32.x.dtype == torch.float32
    torch.testing.assert_close(d32.x.double(), d64.x, rtol=0, atol=1e-7)
    _assert_cholesky_all(d32.x)


# ---------------------------------------------------------------- EMG


def test_emg_covariances_counts_and_spd():
    d = load_emg_covariances()
    assert d.x.shape == (3898, 8, 8) and d.x.dtype == torch.float64
    assert d.class_names == EMG_GESTURES == ("rock", "scissors", "paper", "ok")
    assert d.class_counts().tolist() == [975, 977, 975, 971]
    assert d.groups.unique().tolist() == list(range(24))  # 24 recordings
    torch.testing.assert_close(d.x, d.x.mT, rtol=0, atol=0)
    _assert_cholesky_all(d.x)
    _assert_cholesky_all(d.x.float())
    # each recording contributes windows of all 4 gestures
    for r in range(24):
        assert d.y[d.groups == r].unique().numel() == 4


def test_emg_window_covariance_is_np_cov_with_shrinkage():
    alpha = 0.1
    d0 = load_emg_covariances(shrinkage=0.0, window=50, margin=0)
    da = load_emg_covariances(shrinkage=alpha, window=50, margin=0)
    signal, label, exp, starts, ends, rec = sd._read_emg(str(sd.geomstats_data_dir() / "emg" / "emg.csv"))
    first = next(s for s in starts if label[s] == "rock")  # first rock run, first window
    ref = np.cov(signal[first : first + 50].T)
    i = int(torch.nonzero(d0.y == 0)[0])
    np.testing.assert_allclose(d0.x[i].numpy(), ref, rtol=1e-12, atol=1e-12)
    shrunk = (1 - alpha) * ref + alpha * np.trace(ref) / 8 * np.eye(8)
    np.testing.assert_allclose(da.x[i].numpy(), shrunk, rtol=1e-12, atol=1e-12)
    lam_min = torch.linalg.eigvalsh(da.x)[:, 0]
    tr = torch.diagonal(d0.x, dim1=-2, dim2=-1).sum(-1)
    assert (lam_min >= alpha * tr / 8 * (1 - 1e-9)).all()  # documented bound


def test_emg_gesture_selection_and_rest():
    d = load_emg_covariances(gestures=("rest", "ok"), margin=2000, window=200)
    assert d.class_names == ("rest", "ok")
    counts = d.class_counts()
    assert counts.shape == (2,) and (counts > 0).all()
    _assert_cholesky_all(d.x)


def test_emg_subspaces_orthonormal_top_eigvecs():
    cov = load_emg_covariances(shrinkage=0.0)
    g = load_emg_subspaces(3)
    assert g.x.shape == (3898, 8, 3) and g.x.dtype == torch.float64
    assert torch.equal(g.y, cov.y) and torch.equal(g.groups, cov.groups)
    eye = torch.eye(3, dtype=torch.float64).expand(3898, 3, 3)
    torch.testing.assert_close(g.x.mT @ g.x, eye, rtol=0, atol=1e-12)
    # the columns are eigenvectors for the 3 largest eigenvalues
    lam = torch.linalg.eigvalsh(cov.x).flip(-1)[:, :3]
    torch.testing.assert_close(cov.x @ g.x, g.x * lam[:, None, :], rtol=1e-9, atol=1e-9)
    assert g.info["min_rel_gap"] > 0
    g32 = load_emg_subspaces(2, dtype=torch.float32)
    assert g32.x.shape == (3898, 8, 2) and g32.x.dtype == torch.float32


# ---------------------------------------------------------------- karate


def test_karate_graph():
    k = load_karate_graph()
    assert k.adjacency.shape == (34, 34) and k.adjacency.dtype == torch.float64
    assert torch.equal(k.adjacency, k.adjacency.T) and k.adjacency.diagonal().abs().sum() == 0
    assert k.edges.shape == (78, 2) and k.edges.dtype == torch.int64  # Zachary (1977): 78 ties
    assert (k.edges[:, 0] < k.edges[:, 1]).all()
    assert k.adjacency[k.edges[:, 0], k.edges[:, 1]].eq(1).all()
    assert k.y.dtype == torch.int64 and k.y.bincount().tolist() == [17, 17]
    assert k.y[0] == 0 and k.y[33] == 1  # instructor vs administrator
    assert k.adjacency.sum(1)[[0, 33]].tolist() == [16, 17]  # degrees of the two leaders


# ---------------------------------------------------------------- errors


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "connectomes" / "train_FNC.csv")):
        load_connectomes(data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="emg.csv"):
        load_emg_covariances(data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="karate.txt"):
        load_karate_graph(data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="BasicMotions_TRAIN.ts"):
        load_uea_covariances("BasicMotions", data_dir=tmp_path)


def test_missing_package_is_file_not_found(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(sd.importlib.util, "find_spec", lambda name, *a: None if name == "geomstats" else real(name, *a))
    with pytest.raises(FileNotFoundError, match="geomstats"):
        load_connectomes()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: load_connectomes(shrinkage=1.5), "shrinkage"),
        (lambda: load_connectomes(shrinkage=True), "shrinkage"),
        (lambda: load_connectomes(dtype=torch.int64), "dtype"),
        (lambda: load_connectomes(dtype="float64"), "dtype"),
        (lambda: load_emg_covariances(window=1), "window"),
        (lambda: load_emg_covariances(margin=-1), "margin"),
        (lambda: load_emg_covariances(gestures=("rock",)), "gestures"),
        (lambda: load_emg_covariances(gestures=("rock", "fist")), "gestures"),
        (lambda: load_emg_covariances(gestures=("rock", "rock")), "gestures"),
        (lambda: load_emg_covariances(gestures="rock"), "gestures"),
        (lambda: load_emg_covariances(margin=4000), "no window"),
        (lambda: load_emg_subspaces(0), "p must"),
        (lambda: load_emg_subspaces(8), "p must"),
        (lambda: load_uea_covariances("BasicMotions", split="val", data_dir="."), "split"),
        (lambda: load_uea_covariances("../x", data_dir="."), "name"),
    ],
)
def test_bad_arguments_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_non_spd_is_reported():
    # 5-sample windows of 8 channels are rank ≤ 4: without shrinkage Cholesky must fail
    with pytest.raises(ValueError, match="not positive definite"):
        load_emg_covariances(window=5, margin=2900, shrinkage=0.0)
    d = load_emg_covariances(window=5, margin=2900, shrinkage=1e-2)
    _assert_cholesky_all(d.x)


# ---------------------------------------------------------------- UEA .ts


_TS = """# a comment
@problemName Toy
@timeStamps false
@univariate false
@dimensions 2
@equalLength false
@classLabel true a b
@data
1,2,3,4:0,1,0,2:a
0.5,1.5,0.25:3,1,2:b
2,1,0,1,2:1,1,0,0,1:b
"""


def _write_toy(root, train=_TS, test=_TS):
    (root / "Toy").mkdir()
    (root / "Toy" / "Toy_TRAIN.ts").write_text(train)
    (root / "Toy" / "Toy_TEST.ts").write_text(test)


def test_read_ts_and_uea_covariances(tmp_path):
    _write_toy(tmp_path)
    series, y, classes = sd.read_ts(tmp_path / "Toy" / "Toy_TRAIN.ts")
    assert classes == ("a", "b") and y.tolist() == [0, 1, 1]
    assert [s.shape for s in series] == [(2, 4), (2, 3), (2, 5)]
    np.testing.assert_array_equal(series[1], [[0.5, 1.5, 0.25], [3, 1, 2]])
    d = load_uea_covariances("Toy", data_dir=tmp_path, shrinkage=0.0)
    assert d.x.shape == (6, 2, 2) and d.groups.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(d.x[1].numpy(), np.cov(series[1]), rtol=1e-14)
    assert load_uea_covariances("Toy", split="test", data_dir=tmp_path).x.shape == (3, 2, 2)


@pytest.mark.parametrize(
    "body, match",
    [
        ("@classLabel true a b\n@data\n1,2:1,2,3:a\n", "different lengths"),
        ("@classLabel true a b\n@data\n1,2:1,?:a\n", "non-numeric|non-finite"),
        ("@classLabel true a b\n@data\n1,2:1,2:c\n", "not in the @classLabel"),
        ("@data\n1,2:1,2:a\n", "classLabel"),
        ("@classLabel true a\n@data\n", "no series"),
        ("@classLabel true a\n@data\n1,2:1,2:a\n1,2:a\n", "channels"),
    ],
)
def test_read_ts_malformed(tmp_path, body, match):
    p = tmp_path / "bad.ts"
    p.write_text(body)
    with pytest.raises(ValueError, match=match):
        sd.read_ts(p)


_HAS_AEON = importlib.util.find_spec("aeon") is not None


@pytest.mark.skipif(not _HAS_AEON, reason="aeon (optional extra 'bench') is not installed; its wheel ships the UEA .ts files")
@pytest.mark.parametrize("name, shape, counts", [("BasicMotions", (80, 6, 6), [20, 20, 20, 20]), ("JapaneseVowels", (640, 12, 12), None)])
def test_uea_from_aeon(name, shape, counts):
    d = load_uea_covariances(name)
    assert d.x.shape == shape and d.y.dtype == torch.int64
    if counts is not None:
        assert d.class_counts().tolist() == counts
    assert d.groups.bincount().tolist() == ([40, 40] if name == "BasicMotions" else [270, 370])
    _assert_cholesky_all(d.x)
