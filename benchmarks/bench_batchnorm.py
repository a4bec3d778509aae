"""Riemannian batch normalization on real, offline data: accuracy (mean ± std over seeds) and epoch time.

Datasets (all offline, :mod:`manifold_rl.data.spd_datasets`):

* ``connectomes``: 86 × (28×28) correlation matrices, 2 classes (geomstats wheel);
* ``emg``: 3 898 × (8×8) EMG window covariances, 4 gestures (geomstats wheel);
* ``basicmotions`` / ``japanesevowels``: UEA channel covariances (6×6 / 12×12) from the aeon wheel
  (optional extra ``bench``; skipped with a note when aeon is missing, or read from ``--uea-dir``);
* ``emg-grassmann``: the top-``--grassmann-p`` principal subspaces of the EMG windows, Gr(8, p);
* ``karate``: Zachary's karate club, node classification (2 factions) through the Poincaré ball.

Models:

* SPD sets: :class:`manifolds.nn.SPDNet` (``n → dims``, BiMap → [BN] → ReEig …, LogEig, Linear)
  with ``--methods`` among ``none``, ``spdnetbn``, ``liebn-aim``, ``liebn-lem``, ``liebn-lcm``
  (θ by a ``-t<θ>`` suffix, e.g. ``liebn-aim-t0.5``, ``liebn-lcm-t0.5``), ``gbwbn`` (``-t<θ>``),
  ``gyrobn-aim`` / ``gyrobn-lem`` / ``gyrobn-lcm`` (GyroBN over SPD(n) with that metric).
* ``emg-grassmann``: FrMap ``x ↦ orth(Wᵀx)`` (W on the Stiefel manifold St(8, m)) → [GyroBN on
  Gr(m, p)] → ``logmap(I_{m,p}, ·)`` → Linear; methods ``none`` / ``gyrobn``.
* ``karate``: features ``D^{-½}(A + I)D^{-½}`` → Linear(34, d) → ``expmap0`` onto PoincareBall(d)
  → [GyroBN] → ``logmap0`` → Linear(d, 2), full batch, loss on the training nodes; methods
  ``none`` / ``gyrobn``.

Protocol: for every seed, a stratified split (``--test-fraction`` of each class held out;
windows of one EMG recording are correlated, so a random split over windows is optimistic: use
``--split group`` to hold out whole recordings / subjects instead), all parameters trained with
:class:`manifolds.RiemannianAdam` (``--lr``), cross-entropy, ``--epochs`` epochs of minibatches
of ``--batch-size``; the reported accuracy is the test accuracy after the last epoch (eval mode,
running statistics), not the best epoch. Epoch time: mean wall time of a training epoch.

Results are appended to ``--out`` (JSON lines, one per (dataset, method, seed) cell, written as
each finishes); cells already present with the same configuration are skipped, so an
interrupted run resumes. The markdown table is printed at the end (and by ``--table-only``).

Usage::

    python benchmarks/bench_batchnorm.py --quick                      # smoke run: 1 seed, 2 epochs
    python benchmarks/bench_batchnorm.py --seeds 5 --epochs 30 --datasets connectomes emg \\
        --methods none spdnetbn liebn-aim liebn-aim-t0.5 liebn-lem liebn-lcm liebn-lcm-t0.5 gbwbn
    python benchmarks/bench_batchnorm.py --datasets emg-grassmann karate --methods none gyrobn
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import geoopt  # noqa: E402

from manifold_rl.data import (  # noqa: E402
    load_connectomes,
    load_emg_covariances,
    load_emg_subspaces,
    load_karate_graph,
    load_uea_covariances,
)
from manifolds import SPD, Grassmann, PoincareBall, RiemannianAdam, Stiefel  # noqa: E402
from manifolds.nn import SPDNet  # noqa: E402

SPD_DATASETS = ("connectomes", "emg", "basicmotions", "japanesevowels")
OTHER_DATASETS = ("emg-grassmann", "karate")
ALL_DATASETS = SPD_DATASETS + OTHER_DATASETS
SPD_METHODS = (
    "none",
    "spdnetbn",
    "liebn-aim",
    "liebn-aim-t0.5",
    "liebn-lem",
    "liebn-lcm",
    "liebn-lcm-t0.5",
    "gbwbn",
    "gyrobn-aim",
)
GYRO_METHODS = ("none", "gyrobn")
# BiMap sizes per SPD dataset (n_in → dims)
SPD_DIMS = {"connectomes": [20, 16], "emg": [8, 6], "basicmotions": [6, 4], "japanesevowels": [12, 8]}


# ------------------------------------------------------------------------------------ methods


def _optional(module: str, name: str):
    """``manifolds.nn.<module>.<name>`` or None when that module is not there yet."""
    try:
        mod = __import__(f"manifolds.nn.{module}", fromlist=[name])
    except ImportError:
        return None
    return getattr(mod, name, None)


def spd_bn_factory(method: str, dtype, bn_kwargs: dict):
    """``None`` (no BN) or a callable ``n -> nn.Module`` for SPDNet's ``bn`` argument.

    Raises:
        ValueError: unknown method name.
        RuntimeError: the module implementing it is not importable.
    """
    if method == "none":
        return None
    m = re.fullmatch(r"(spdnetbn|liebn-(aim|lem|lcm)|gbwbn|gyrobn-(aim|lem|lcm))(?:-t([0-9.eE+-]+))?", method)
    if m is None:
        raise ValueError(f"unknown SPD method {method!r}; e.g. {', '.join(SPD_METHODS)}")
    theta = float(m.group(4)) if m.group(4) else 1.0
    kw = dict(bn_kwargs, dtype=dtype)
    if method == "spdnetbn":
        cls = _optional("batchnorm", "SPDNetBN")
        if cls is None:
            raise RuntimeError("manifolds.nn.batchnorm.SPDNetBN is not available")
        return lambda n: cls(n, **kw)
    if m.group(2):
        cls = _optional("batchnorm", "LieBN")
        if cls is None:
            raise RuntimeError("manifolds.nn.batchnorm.LieBN is not available")
        metric = m.group(2).upper()
        return lambda n: cls(n, metric=metric, theta=theta, **kw)
    if method.startswith("gbwbn"):
        cls = _optional("gbwbn", "GBWBN")
        if cls is None:
            raise RuntimeError("manifolds.nn.gbwbn.GBWBN is not available")
        return lambda n: cls(n, theta=theta, **kw)
    cls = _optional("gyrobn", "GyroBN")
    if cls is None:
        raise RuntimeError("manifolds.nn.gyrobn.GyroBN is not available")
    metric = m.group(3)
    if theta != 1.0:
        raise ValueError("gyrobn-<metric> takes no θ suffix in this benchmark")
    return lambda n: cls(SPD(n, metric), **kw)


def gyro_bn(manifold, method: str, dtype, bn_kwargs: dict):
    if method == "none":
        return nn.Identity()
    if method != "gyrobn":
        raise ValueError(f"unknown method {method!r} for this dataset; use one of {GYRO_METHODS}")
    cls = _optional("gyrobn", "GyroBN")
    if cls is None:
        raise RuntimeError("manifolds.nn.gyrobn.GyroBN is not available")
    return cls(manifold, dtype=dtype, **bn_kwargs)


# ------------------------------------------------------------------------------------ models


class GrassmannNet(nn.Module):
    """FrMap ``x ↦ orth(Wᵀ x)`` (W ∈ St(n, m)) → BN on Gr(m, p) → log at ``I_{m,p}`` → Linear.

    Input ``(B, n, p)`` orthonormal bases → logits ``(B, n_classes)``.
    """

    def __init__(self, n: int, m: int, p: int, n_classes: int, bn: nn.Module, dtype):
        super().__init__()
        self.stiefel = Stiefel(n, m)
        w = torch.linalg.qr(torch.randn(n, m, dtype=dtype))[0]
        self.weight = geoopt.ManifoldParameter(w, manifold=self.stiefel)
        self.gr = Grassmann(m, p)
        self.bn = bn
        self.classifier = nn.Linear(m * p, n_classes, dtype=dtype)

    def forward(self, x):
        y = self.gr.projx(self.weight.mT @ x)
        y = self.bn(y)
        h = self.gr.logmap(self.gr.gyro_identity(y), y)
        return self.classifier(h.flatten(1))


class HyperbolicNodeNet(nn.Module):
    """Linear → expmap0 onto PoincareBall(d) → BN → logmap0 → Linear (node classification)."""

    def __init__(self, n_in: int, d: int, n_classes: int, bn: nn.Module, ball, dtype):
        super().__init__()
        self.ball = ball
        self.lin = nn.Linear(n_in, d, dtype=dtype)
        self.bn = bn
        self.classifier = nn.Linear(d, n_classes, dtype=dtype)

    def forward(self, x):
        h = self.ball.expmap0(self.lin(x))
        h = self.bn(h)
        return self.classifier(self.ball.logmap0(h))


# ------------------------------------------------------------------------------------ data


def load_dataset(name: str, args, dtype):
    """``(x, y, groups, n_classes)``; ``x`` is a tensor, or for ``karate`` the feature matrix."""
    if name == "connectomes":
        d = load_connectomes(dtype=dtype)
    elif name == "emg":
        d = load_emg_covariances(dtype=dtype)
    elif name in ("basicmotions", "japanesevowels"):
        uea = {"basicmotions": "BasicMotions", "japanesevowels": "JapaneseVowels"}[name]
        d = load_uea_covariances(uea, dtype=dtype, data_dir=args.uea_dir)
    elif name == "emg-grassmann":
        d = load_emg_subspaces(args.grassmann_p, dtype=dtype)
    elif name == "karate":
        g = load_karate_graph(dtype=dtype)
        a = g.adjacency + torch.eye(g.n_nodes, dtype=dtype)
        dinv = a.sum(1).rsqrt()
        x = dinv[:, None] * a * dinv[None, :]
        return x, g.y, torch.arange(g.n_nodes), 2
    else:
        raise ValueError(f"unknown dataset {name!r}; choose from {ALL_DATASETS}")
    x, y, groups = d.x, d.y, d.groups
    if args.limit and len(y) > args.limit:  # stratified subsample (fixed, seed 0)
        keep = _stratified_split(y, 1.0 - args.limit / len(y), seed=12345)[0]
        x, y, groups = x[keep], y[keep], groups[keep]
    return x, y, groups, d.n_classes


def _stratified_split(y: torch.Tensor, test_fraction: float, seed: int):
    """Indices ``(train, test)``: per class, ``round(test_fraction · count)`` (at least 1) test samples."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        k = min(max(1, round(test_fraction * idx.numel())), idx.numel() - 1)
        test.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def _group_split(groups: torch.Tensor, test_fraction: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    ug = torch.unique(groups)
    ug = ug[torch.randperm(ug.numel(), generator=g)]
    k = min(max(1, round(test_fraction * ug.numel())), ug.numel() - 1)
    test_mask = torch.isin(groups, ug[:k])
    return torch.nonzero(~test_mask).flatten(), torch.nonzero(test_mask).flatten()


# ------------------------------------------------------------------------------------ training


def build_model(dataset, method, n_classes, x, args, dtype):
    bn_kwargs = {"momentum": args.momentum}
    if args.mean_max_iter is not None:
        bn_kwargs["mean_max_iter"] = args.mean_max_iter
    if dataset in SPD_DATASETS:
        n = x.shape[-1]
        dims = [min(d, n) for d in SPD_DIMS.get(dataset, [n])]
        return SPDNet(n, dims, n_classes, bn=spd_bn_factory(method, dtype, bn_kwargs), dtype=dtype)
    if dataset == "emg-grassmann":
        n, p = x.shape[-2:]
        m = max(p + 1, n - 2)
        return GrassmannNet(n, m, p, n_classes, gyro_bn(Grassmann(m, p), method, dtype, bn_kwargs), dtype)
    if dataset == "karate":
        ball = PoincareBall(args.hyp_dim)
        return HyperbolicNodeNet(x.shape[-1], args.hyp_dim, n_classes, gyro_bn(ball, method, dtype, bn_kwargs), ball, dtype)
    raise ValueError(dataset)


def run_cell(dataset, method, seed, data, args, dtype):
    x, y, groups, n_classes = data
    split = _group_split if args.split == "group" and dataset != "karate" else _stratified_split
    tr, te = split(groups if split is _group_split else y, args.test_fraction, seed)
    torch.manual_seed(seed)
    model = build_model(dataset, method, n_classes, x, args, dtype)
    opt = RiemannianAdam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(seed)
    epoch_times, losses = [], []
    full_batch = dataset == "karate"
    for _ in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        if full_batch:
            opt.zero_grad()
            loss = F.cross_entropy(model(x)[tr], y[tr])
            loss.backward()
            opt.step()
            tot = loss.item()
        else:
            perm = tr[torch.randperm(tr.numel(), generator=gen)]
            tot, nb = 0.0, 0
            for i in range(0, perm.numel(), args.batch_size):
                b = perm[i : i + args.batch_size]
                if b.numel() < 2:  # a batch of one has no dispersion
                    continue
                opt.zero_grad()
                loss = F.cross_entropy(model(x[b]), y[b])
                loss.backward()
                opt.step()
                tot, nb = tot + loss.item(), nb + 1
            tot /= max(nb, 1)
        epoch_times.append(time.perf_counter() - t0)
        losses.append(tot)
        if not math.isfinite(tot):
            break
    model.eval()
    with torch.no_grad():
        if full_batch:
            pred = model(x).argmax(-1)
            acc_te = float((pred[te] == y[te]).double().mean())
            acc_tr = float((pred[tr] == y[tr]).double().mean())
        else:
            acc_te = _accuracy(model, x[te], y[te], args.batch_size * 8)
            acc_tr = _accuracy(model, x[tr], y[tr], args.batch_size * 8)
    return {
        "acc": acc_te,
        "train_acc": acc_tr,
        "epoch_s": statistics.mean(epoch_times) if epoch_times else float("nan"),
        "final_loss": losses[-1] if losses else float("nan"),
        "epochs_run": len(losses),
        "n_train": int(tr.numel()),
        "n_test": int(te.numel()),
        "status": "ok" if losses and math.isfinite(losses[-1]) else "nan",
    }


def _accuracy(model, x, y, bs):
    correct = 0
    for i in range(0, len(y), bs):
        correct += int((model(x[i : i + bs]).argmax(-1) == y[i : i + bs]).sum())
    return correct / max(len(y), 1)


# ------------------------------------------------------------------------------------ results


def config_key(args) -> dict:
    return {
        k: getattr(args, k)
        for k in ("epochs", "batch_size", "lr", "momentum", "test_fraction", "split", "dtype", "limit", "mean_max_iter", "grassmann_p", "hyp_dim")
    }


def read_results(path: Path):
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # a line cut by an interrupted write
    return rows


def print_table(rows, datasets, methods, cfg):
    rows = [r for r in rows if r.get("config") == cfg]
    print(f"\nconfig: {json.dumps(cfg)}\n")
    print("| method | " + " | ".join(datasets) + " |")
    print("|---|" + "---|" * len(datasets))
    for m in methods:
        cells = []
        for d in datasets:
            rs = [r for r in rows if r["dataset"] == d and r["method"] == m]
            ok = [r for r in rs if r.get("status") == "ok"]
            if not rs:
                cells.append("–")
                continue
            if not ok:
                cells.append(rs[-1].get("status", "err")[:40])
                continue
            accs = [100 * r["acc"] for r in ok]
            sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
            ep = statistics.mean(r["epoch_s"] for r in ok)
            bad = f", {len(rs) - len(ok)} failed" if len(rs) > len(ok) else ""
            cells.append(f"{statistics.mean(accs):.1f} ± {sd:.1f} (n={len(ok)}{bad}; {ep:.2f} s/ep)")
        print(f"| {m} | " + " | ".join(cells) + " |")


# ------------------------------------------------------------------------------------ layer timing

LAYER_ALGOS = (
    "spdnetbn",
    "liebn-aim",
    "liebn-aim-t0.5",
    "liebn-lem",
    "liebn-lcm",
    "liebn-lcm-t0.5",
    "gbwbn",
    "gyrobn-aim",
    "gyrobn-lem",
    "gyrobn-lcm",
)


def random_spd_batch(batch: int, n: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """``(batch, n, n)`` SPD matrices with a realistic spread (sample covariances around a common mean).

    ``X_i = B^{½} (W_i W_iᵀ / 2n) B^{½}`` with ``W_i`` an ``n × 2n`` Gaussian matrix (Wishart,
    condition number ≈ 34) and ``B = Q diag(e^{g}) Qᵀ``, ``g ~ N(0, 1)``, ``Q`` a random rotation:
    the batch is spread around a non-identity mean, as the features inside an SPDNet are.
    """
    gen = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))[0]
    b_half = q @ torch.diag(torch.exp(0.5 * torch.randn(n, generator=gen, dtype=torch.float64))) @ q.mT
    w = torch.randn(batch, n, 2 * n, generator=gen, dtype=torch.float64)
    x = b_half @ (w @ w.mT / (2 * n)) @ b_half
    return (0.5 * (x + x.mT)).to(dtype)


def _codomain_dist(geometry, a: torch.Tensor, b: torch.Tensor) -> float:
    """Distance of two co-domain points under the metric the layer's mean is computed in."""
    cod = getattr(geometry, "codomain", None)
    if cod is not None:  # AIM (θ-deformed: (α, β)-AIM), BW (GBWBN)
        return float(cod.dist(a, b))
    if type(geometry).__name__.startswith("SPDL"):  # LEM / LCM: flat co-domain with addition
        return float(torch.sqrt(geometry.dist2_to_identity(a - b)))
    return float(geometry.manifold.dist(a, b))  # GyroBN: the manifold's own metric


def _time_fwd_bwd(layer, x: torch.Tensor, repeats: int, warmup: int = 1) -> float:
    """Median wall time (s) of ``forward`` + ``backward`` of ``(y²).sum()`` in training mode."""
    times = []
    for k in range(warmup + repeats):
        xr = x.detach().clone().requires_grad_(True)
        layer.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        y = layer(xr)
        (y * y).sum().backward()
        dt = time.perf_counter() - t0
        if k >= warmup:
            times.append(dt)
    return statistics.median(times)


def layer_timing(args) -> int:
    """Forward+backward time of one BN layer and the error of its batch mean (``--layer-timing``).

    For every algorithm of ``LAYER_ALGOS``: a layer at its defaults and one with
    ``mean_max_iter=1`` (the single Karcher step of the reference code); on a batch of
    ``--layer-batch`` ``--layer-n`` × ``--layer-n`` SPD matrices (:func:`random_spd_batch`,
    float64), the median over ``--layer-repeats`` of the forward+backward wall time, and the
    distance (in the co-domain metric of the layer's mean) between the layer's batch mean and a
    fully converged Karcher mean (``tol=0``, 2000 iterations), beside the batch spread (RMS
    distance of the batch to that mean, the square root of its Fréchet variance: the scale the
    error compares to). Prints a markdown table.
    """
    dtype = torch.float64
    n, batch = args.layer_n, args.layer_batch
    x = random_spd_batch(batch, n, seed=0, dtype=dtype)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64; one BN layer, "
        f"batch {batch} of {n}×{n} SPD, forward+backward, median of {args.layer_repeats}"
    )
    rows = []
    for algo in LAYER_ALGOS:
        cells = {}
        for label, extra in (("default", {}), ("iter1", {"mean_max_iter": 1})):
            try:
                torch.manual_seed(0)
                layer = spd_bn_factory(algo, dtype, {"momentum": 0.1, **extra})(n)
                layer.train()
                g = layer.geometry
                t = _time_fwd_bwd(layer, x, args.layer_repeats)
                with torch.no_grad():
                    z = layer._to_samples_last(g.deform(x))
                    m = g.frechet_mean(z, tol=layer.mean_tol, max_iter=layer.mean_max_iter)
                    ref = g.frechet_mean(z, tol=0.0, max_iter=2000)
                    err = _codomain_dist(g, m, ref)
                    zr = g.deform(x)
                    spread = float(g.dist2_to_identity(g.translate(zr, ref, inverse=True)).mean().sqrt())
                cells[label] = (t, err)
                cells["spread"] = spread
            except Exception as e:  # a failing algorithm is a result
                cells[label] = f"{type(e).__name__}: {e}"[:60]
        rows.append((algo, cells))
        print(f"  {algo}: {cells}", flush=True)
    print("\n| algorithm | fwd+bwd (default) | mean error (default) | fwd+bwd (mean_max_iter=1) | mean error (mean_max_iter=1) | batch spread |")
    print("|---|---|---|---|---|---|")
    for algo, cells in rows:
        out = []
        for label in ("default", "iter1"):
            c = cells[label]
            out += [f"{1e3 * c[0]:.1f} ms", f"{c[1]:.1e}"] if isinstance(c, tuple) else [c, "–"]
        spread = cells.get("spread")
        out.append(f"{spread:.2f}" if spread is not None else "–")
        print(f"| {algo} | " + " | ".join(out) + " |")
    return 0


# ------------------------------------------------------------------------------------ main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[5], help="one int N: seeds 0..N-1; several: those seeds")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--datasets", nargs="+", default=["connectomes", "emg"], choices=ALL_DATASETS)
    ap.add_argument("--methods", nargs="+", default=list(SPD_METHODS))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--momentum", type=float, default=0.1, help="BN running-statistics momentum")
    ap.add_argument("--mean-max-iter", type=int, default=None, help="Karcher iterations per batch (module default if unset)")
    ap.add_argument("--test-fraction", type=float, default=0.25)
    ap.add_argument("--split", choices=("stratified", "group"), default="stratified")
    ap.add_argument("--limit", type=int, default=0, help="stratified subsample of at most this many samples (0: all)")
    ap.add_argument("--grassmann-p", type=int, default=3)
    ap.add_argument("--hyp-dim", type=int, default=4)
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave)")
    ap.add_argument("--uea-dir", default=None, help="folder with <Name>/<Name>_{TRAIN,TEST}.ts (default: aeon's wheel)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("bench_batchnorm_results.jsonl")))
    ap.add_argument("--quick", action="store_true", help="1 seed, 2 epochs, EMG limited to 400 samples")
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--layer-timing", action="store_true", help="time one BN layer per algorithm (fwd+bwd, mean error), print its table, exit")
    ap.add_argument("--layer-n", type=int, default=28, help="--layer-timing: matrix size")
    ap.add_argument("--layer-batch", type=int, default=32, help="--layer-timing: batch size")
    ap.add_argument("--layer-repeats", type=int, default=7, help="--layer-timing: timed repeats (median)")
    args = ap.parse_args(argv)
    if args.layer_timing:
        if args.threads:
            torch.set_num_threads(args.threads)
        return layer_timing(args)
    if args.quick:
        args.seeds, args.epochs, args.limit = [1], 2, args.limit or 400
    seeds = list(range(args.seeds[0])) if len(args.seeds) == 1 else args.seeds
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    cfg = config_key(args)
    out = Path(args.out)
    rows = read_results(out)
    if args.table_only:
        print_table(rows, args.datasets, args.methods, cfg)
        return 0
    done = {(r["dataset"], r["method"], r["seed"]) for r in rows if r.get("config") == cfg}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.dtype}; results -> {out}")
    for dataset in args.datasets:
        try:
            data = load_dataset(dataset, args, dtype)
        except FileNotFoundError as e:
            print(f"[skip] {dataset}: {e}")
            continue
        for method in args.methods:
            if dataset not in SPD_DATASETS and method not in GYRO_METHODS:
                continue  # SPD-only method on a Grassmann / hyperbolic task
            if dataset in SPD_DATASETS and method in GYRO_METHODS[1:]:
                continue
            for seed in seeds:
                if (dataset, method, seed) in done:
                    continue
                t0 = time.perf_counter()
                try:
                    res = run_cell(dataset, method, seed, data, args, dtype)
                except Exception as e:  # record and go on: a failing method is a result
                    res = {"status": f"error: {type(e).__name__}: {e}"[:300]}
                    if os.environ.get("BENCH_TRACEBACK"):
                        traceback.print_exc()
                res.update(dataset=dataset, method=method, seed=seed, config=cfg, wall_s=time.perf_counter() - t0)
                with open(out, "a") as fh:
                    fh.write(json.dumps(res) + "\n")
                rows.append(res)
                acc = f"acc {100 * res['acc']:.1f}%  {res['epoch_s']:.3f} s/epoch" if "acc" in res else res["status"]
                print(f"{dataset:>15} {method:>16} seed {seed}: {acc}", flush=True)
    print_table(rows, args.datasets, args.methods, cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
