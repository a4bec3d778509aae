"""Riemannian flow matching on an earth-science dataset, with a density map of the sphere.

Trains a flow-matching model (Chen & Lipman, "Flow Matching on General Geometries", ICLR 2024)
on one of the earth datasets (volcano, earthquake, flood, fire; see
:mod:`manifold_rl.data.earth`): uniform base on S², geodesic conditional path, an MLP vector field
wrapped in ``ProjectToTangent``, AdamW and an EMA of the weights. It then prints the test NLL
(nats) and saves a map (equirectangular projection, longitude × latitude) of the model's
log-density on a lat/lon grid, computed with the flow's exact likelihood
(:func:`manifolds.flow_matching.likelihood.log_likelihood`); if that module is not available it
falls back to a von Mises–Fisher kernel density estimate of generated samples
(:func:`kernels.kde`) and says so in the title. The test points are drawn on top.

Usage::

    python examples/earth_flow_matching.py --dataset volcano --steps 5000
    python examples/earth_flow_matching.py --dataset fire --steps 20000 --out runs/fire.png

The data folder: ``--data``, else ``$MANIFOLD_RL_EARTH_DATA``, else ``../shared/data/earth``.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manifolds import Sphere  # noqa: E402
from manifolds.flow_matching import GeodesicProbPath, ProjectToTangent, RiemannianODESolver, riemannian_fm_loss  # noqa: E402
from manifold_rl.data.earth import EARTH_DATASETS, earth_split, latlon_to_xyz, load_earth, xyz_to_latlon  # noqa: E402


class VectorField(torch.nn.Module):
    """MLP ``[x, t] -> R³`` (SiLU)."""

    def __init__(self, width: int, depth: int):
        super().__init__()
        layers, i = [], 4
        for _ in range(depth):
            layers += [torch.nn.Linear(i, width), torch.nn.SiLU()]
            i = width
        layers.append(torch.nn.Linear(i, 3))
        self.net = torch.nn.Sequential(*layers)

    def forward(self, x, t, **extras):
        return self.net(torch.cat([x, t[..., None].to(x.dtype)], dim=-1))


def train(x_train, steps, width, depth, batch, lr, seed, log_every=500):
    S2 = Sphere(2)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = ProjectToTangent(VectorField(width, depth), S2)
    ema = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    path = GeodesicProbPath(S2)
    for step in range(1, steps + 1):
        x1 = x_train[torch.randint(x_train.shape[0], (batch,), generator=g)]
        x0 = S2.random_base(batch, 3, generator=g)
        s = path.sample(x0, x1, torch.rand(batch, generator=g))
        loss = riemannian_fm_loss(S2, s.x_t, model(s.x_t, s.t), s.dx_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        d = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(d).add_(pm, alpha=1 - d)
        if step % log_every == 0 or step == steps:
            print(f"step {step:6d}  loss {float(loss.detach()):.4f}", flush=True)
    return ema.eval()


def log_density_fn(model, n_samples, seed):
    """``(x -> log p(x), description)``: exact likelihood if available, else KDE of samples."""
    S2 = Sphere(2)
    try:
        from manifolds.flow_matching.likelihood import log_likelihood
    except ImportError:
        from kernels import kde

        x0 = S2.random_base(n_samples, 3, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            samples = RiemannianODESolver(S2, model).sample(x0, method="midpoint", n_steps=100)
        bw = 1.06 * n_samples ** (-1 / 6) * 0.5  # rad; a rule-of-thumb width

        def f(x):
            return kde(S2, x, samples, bw)

        return f, f"vMF KDE of {n_samples} flow samples (h = {bw:.3f} rad)"

    def f(x):
        with torch.no_grad():
            return log_likelihood(S2, model, x, method="dopri5", atol=1e-5, rtol=1e-5)[0]

    return f, "exact flow likelihood (dopri5)"


def plot(path, dataset, logp_fn, desc, test, grid, nll):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = torch.linspace(-90, 90, grid + 1, dtype=torch.float32)
    lon = torch.linspace(-180, 180, 2 * grid + 1, dtype=torch.float32)
    latc = 0.5 * (lat[1:] + lat[:-1])
    lonc = 0.5 * (lon[1:] + lon[:-1])
    LA, LO = torch.meshgrid(latc, lonc, indexing="ij")
    xyz = latlon_to_xyz(LA.reshape(-1), LO.reshape(-1))
    logp = torch.cat([logp_fn(xyz[i : i + 4096]) for i in range(0, xyz.shape[0], 4096)]).reshape(LA.shape)
    # the cell-area-weighted total mass is a check of the density (≈ 1)
    dlat, dlon = math.radians(180 / grid), math.radians(360 / (2 * grid))
    mass = float((logp.exp() * torch.cos(torch.deg2rad(LA))).sum() * dlat * dlon)
    fig, ax = plt.subplots(figsize=(10, 5.4))
    pc = ax.pcolormesh(lon.numpy(), lat.numpy(), logp.numpy(), cmap="viridis", shading="flat")
    tl, tn = xyz_to_latlon(test.double())
    ax.scatter(tn.numpy(), tl.numpy(), s=3, c="red", alpha=0.6, label="test points")
    fig.colorbar(pc, ax=ax, label="log-density (nats, w.r.t. area on the unit sphere)")
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("latitude (deg)")
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_title(f"RFM on {dataset}: log-density from {desc}\ntest NLL {nll:.3f} nats; grid mass {mass:.3f}")
    ax.legend(loc="lower left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return mass


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="volcano", choices=sorted(EARTH_DATASETS))
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--data", default=None, help="folder of the earth CSVs")
    p.add_argument("--out", default=None, help="PNG path (default runs/earth_<dataset>.png)")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--grid", type=int, default=90, help="latitude cells of the map (longitude: twice as many)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.steps < 1 or args.grid < 2:
        p.error("--steps must be >= 1 and --grid >= 2")
    out = Path(args.out) if args.out else Path("runs") / f"earth_{args.dataset}.png"

    x = load_earth(args.dataset, root=args.data).float()
    train_x, _, test_x = earth_split(x, args.seed)
    print(f"{args.dataset}: {x.shape[0]} points, train {train_x.shape[0]}, test {test_x.shape[0]}")
    t0 = time.perf_counter()
    model = train(train_x, args.steps, args.width, args.depth, args.batch, args.lr, args.seed, log_every=max(1, args.steps // 10))
    print(f"trained {args.steps} steps in {time.perf_counter() - t0:.1f} s")
    logp_fn, desc = log_density_fn(model, 20_000, args.seed)
    nll = float(-logp_fn(test_x).mean())
    print(f"test NLL ({desc}): {nll:.4f} nats (uniform: {math.log(4 * math.pi):.4f})")
    mass = plot(out, args.dataset, logp_fn, desc, test_x, args.grid, nll)
    print(f"saved {out} (grid mass {mass:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
