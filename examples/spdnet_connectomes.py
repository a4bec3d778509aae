"""SPDNet with LieBN on brain connectomes (schizophrenia vs control), end to end, offline.

Data: :func:`manifold_rl.data.load_connectomes` -- 86 subjects' 28×28 functional-connectivity
correlation matrices (46 controls, 40 patients), read from the geomstats wheel (no download).

Model: :class:`manifolds.nn.SPDNet` ``28 → 20 → 16`` (BiMap → LieBN → ReEig → BiMap → LieBN →
LogEig → Linear) with :class:`manifolds.nn.LieBN` under the chosen metric (``--metric`` AIM /
LEM / LCM, ``--theta`` the power deformation for AIM and LCM), trained with
:class:`manifolds.RiemannianAdam` (the BiMap weights on the Stiefel manifold, the LieBN biases on
SPD) and cross-entropy on a stratified 75 / 25 split. Every epoch prints the training loss and the
train / test accuracy (eval mode: LieBN uses its running statistics); the training curve is saved
as a PNG (``--out``).

Usage::

    python examples/spdnet_connectomes.py                       # AIM, θ = 1, 30 epochs
    python examples/spdnet_connectomes.py --metric LCM --theta 0.5 --epochs 50 --out runs/lcm.png

With 86 subjects the test set has 22, so one subject is 4.5 points of accuracy: expect
seed-to-seed spread of ±10 points (see ``benchmarks/bench_batchnorm.py`` for means over seeds).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manifold_rl.data import load_connectomes  # noqa: E402
from manifolds import RiemannianAdam  # noqa: E402
from manifolds.nn import LieBN, SPDNet  # noqa: E402


def stratified_split(y: torch.Tensor, test_fraction: float, seed: int):
    """Indices ``(train, test)``: ``round(test_fraction · count)`` test samples of every class."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        k = max(1, round(test_fraction * idx.numel()))
        test.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train), torch.cat(test)


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(-1) == y).double().mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--metric", choices=("AIM", "LEM", "LCM"), default="AIM", type=str.upper)
    ap.add_argument("--theta", type=float, default=1.0, help="power deformation θ (AIM, LCM; must be 1 for LEM)")
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", default="runs/spdnet_connectomes.png", help="training-curve plot (PNG)")
    args = ap.parse_args(argv)
    if args.epochs < 1:
        ap.error("--epochs must be >= 1")
    if args.metric == "LEM" and args.theta != 1.0:
        ap.error("LEM has no power deformation: use --theta 1")

    dtype = torch.float64
    data = load_connectomes(dtype=dtype)
    x, y = data.x, data.y
    tr, te = stratified_split(y, 0.25, args.seed)
    torch.manual_seed(args.seed)
    model = SPDNet(
        28,
        [20, 16],
        data.n_classes,
        bn=lambda n: LieBN(n, metric=args.metric, theta=args.theta, dtype=dtype),
        dtype=dtype,
    )
    opt = RiemannianAdam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    print(
        f"connectomes: {len(tr)} train / {len(te)} test subjects, 28×28; SPDNet 28→20→16 + "
        f"LieBN({args.metric}, θ={args.theta}), RiemannianAdam lr {args.lr}, batch {args.batch_size}"
    )
    hist = {"loss": [], "train": [], "test": []}
    t_start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        perm = tr[torch.randperm(tr.numel(), generator=gen)]
        tot, nb = 0.0, 0
        for i in range(0, perm.numel(), args.batch_size):
            b = perm[i : i + args.batch_size]
            if b.numel() < 2:  # a batch of one has no dispersion to normalize
                continue
            opt.zero_grad()
            loss = F.cross_entropy(model(x[b]), y[b])
            loss.backward()
            opt.step()
            tot, nb = tot + loss.item(), nb + 1
        hist["loss"].append(tot / max(nb, 1))
        hist["train"].append(accuracy(model, x[tr], y[tr]))
        hist["test"].append(accuracy(model, x[te], y[te]))
        print(
            f"epoch {epoch:3d}  loss {hist['loss'][-1]:.4f}  train acc {100 * hist['train'][-1]:5.1f}%  "
            f"test acc {100 * hist['test'][-1]:5.1f}%",
            flush=True,
        )
    elapsed = time.perf_counter() - t_start
    print(f"final: train acc {100 * hist['train'][-1]:.1f}%, test acc {100 * hist['test'][-1]:.1f}% ({elapsed:.1f} s)")

    import matplotlib

    matplotlib.use("Agg")  # no display needed; set here, not at import, to leave global state alone
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    epochs = range(1, args.epochs + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, hist["loss"], marker=".")
    ax1.set(xlabel="epoch", ylabel="training loss (cross-entropy)", title="loss")
    ax2.plot(epochs, [100 * a for a in hist["train"]], marker=".", label="train")
    ax2.plot(epochs, [100 * a for a in hist["test"]], marker=".", label="test")
    ax2.set(xlabel="epoch", ylabel="accuracy (%)", ylim=(0, 100), title="accuracy (eval mode)")
    ax2.legend()
    fig.suptitle(f"SPDNet + LieBN({args.metric}, θ={args.theta}) on connectomes, seed {args.seed}")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"training curve -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
