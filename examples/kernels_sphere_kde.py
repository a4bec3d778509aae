"""A kernel density estimate of a point set on the sphere S², with the bandwidth chosen by
held-out log-likelihood, drawn on a Mollweide map.

The density is the normalised von Mises–Fisher KDE of :func:`kernels.kde`
(``p̂(x) = 1/n Σ_j C_3(κ) exp(κ(⟨x, s_j⟩ − 1))``, ``κ = 1/h²``, a probability density w.r.t.
the surface measure of the unit sphere: the uniform density is ``1/(4π)``, log ``−2.531``).

Data (``--data``):

* ``auto`` (default): the NOAA significant-earthquake locations
  ``../shared/data/earth/quakes_all.csv`` (6 120 events, see that folder's README; read in place,
  never copied into the repository) when that file exists, else ``synthetic``;
* a path to a CSV of latitude / longitude in degrees (``#`` comment lines and a header row are
  skipped; the columns named like ``lat`` / ``lon`` or ``long`` are used, else the first two);
* ``synthetic``: ``--n`` points (default 100 000) from a mixture of five von Mises–Fisher
  distributions (exact sampler on S², Wood 1994).

At most ``--n`` points are used (a random subset when the file has more). They are split
90 % / 10 % at random (``--seed``); for every bandwidth in ``--bandwidths`` (rad) the mean
log-density of the held-out points under the KDE of the training points is printed; the best
bandwidth is then used with all the points to evaluate the log-density on a ``--grid`` lon × lat
grid of cell centres (default 360 × 180, i.e. 64 800 query points). Every evaluation goes
through the automatic backend (dense torch while ``N × M`` fits the 256 MB budget, else KeOps,
else chunked torch). The printed integral ``Σ p̂ · cell area`` over the grid checks the
normalisation (≈ 1 when the grid resolves the bandwidth).

Usage::

    python examples/kernels_sphere_kde.py                                # earthquakes (or synthetic)
    python examples/kernels_sphere_kde.py --data synthetic --n 100000    # 10⁵ points
    python examples/kernels_sphere_kde.py --data ../shared/data/earth/fire.csv --out runs/fire.png
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import kernels  # noqa: E402
from manifolds import Sphere  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "earth" / "quakes_all.csv"


# ---------------------------------------------------------------------------- data
def latlon_to_xyz(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """``(n,)`` latitudes / longitudes in degrees -> ``(n, 3)`` unit vectors (z = north pole)."""
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def load_latlon_csv(path) -> np.ndarray:
    """Read a CSV of latitude / longitude (degrees) into ``(n, 3)`` unit vectors.

    Lines starting with ``#`` are skipped, as is a first non-numeric line (the header); the
    header's columns containing ``lat`` and ``lon`` (case-insensitive) are used, else the first
    two columns are (latitude, longitude).

    Raises:
        ValueError: no numeric rows, or latitudes outside [−90, 90].
    """
    rows, header = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = [p.strip() for p in line.split(",")]
            try:
                rows.append([float(p) for p in parts])
            except ValueError:
                if header is None and not rows:
                    header = [p.lower() for p in parts]
                    continue
                raise ValueError(f"{path}: non-numeric row {line!r}") from None
    if not rows:
        raise ValueError(f"{path}: no numeric rows")
    ilat, ilon = 0, 1
    if header is not None:
        lat = [i for i, h in enumerate(header) if "lat" in h]
        lon = [i for i, h in enumerate(header) if "lon" in h]
        if lat and lon:
            ilat, ilon = lat[0], lon[0]
    a = np.asarray(rows, dtype=np.float64)
    if np.abs(a[:, ilat]).max() > 90:
        raise ValueError(f"{path}: latitudes outside [-90, 90] (column {ilat})")
    return latlon_to_xyz(a[:, ilat], a[:, ilon])


def sample_vmf_s2(mu: np.ndarray, kappa: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` exact samples of the von Mises–Fisher distribution on S² (Wood 1994: on S² the
    cosine to the mean is ``w = 1 + log(u + (1 − u) e^{−2κ}) / κ``)."""
    u = rng.random(n)
    w = 1.0 + np.log(u + (1.0 - u) * np.exp(-2.0 * kappa)) / kappa
    phi = rng.uniform(0, 2 * np.pi, n)
    # orthonormal basis (e1, e2) of the tangent plane at mu
    a = np.array([1.0, 0.0, 0.0]) if abs(mu[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = a - mu * (a @ mu)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(mu, e1)
    r = np.sqrt(np.clip(1.0 - w * w, 0.0, None))
    return w[:, None] * mu + r[:, None] * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2)


def synthetic(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 3)`` points from a 5-component vMF mixture (weights, means, κ ∈ [10, 300] drawn from ``rng``)."""
    k = 5
    mus = rng.normal(size=(k, 3))
    mus /= np.linalg.norm(mus, axis=1, keepdims=True)
    kappas = np.exp(rng.uniform(np.log(10), np.log(300), k))
    counts = rng.multinomial(n, rng.dirichlet(np.full(k, 2.0)))
    x = np.concatenate([sample_vmf_s2(m, kp, c, rng) for m, kp, c in zip(mus, kappas, counts)])
    return x[rng.permutation(n)]


# ---------------------------------------------------------------------------- the example
def grid_points(nlon: int, nlat: int):
    """Cell-centre lon / lat (degrees) of an equiangular grid, the ``(nlat·nlon, 3)`` points and cell areas (sr)."""
    lon = -180 + (np.arange(nlon) + 0.5) * 360 / nlon
    lat = -90 + (np.arange(nlat) + 0.5) * 180 / nlat
    LON, LAT = np.meshgrid(lon, lat)
    dlon, dlat = np.radians(360 / nlon), np.radians(180 / nlat)
    area = dlon * (np.sin(np.radians(LAT) + dlat / 2) - np.sin(np.radians(LAT) - dlat / 2))
    return lon, lat, latlon_to_xyz(LAT.ravel(), LON.ravel()), area


def run(args) -> dict:
    """Run the example; returns the numbers it prints (used by tests/test_examples_kernels.py)."""
    rng = np.random.default_rng(args.seed)
    data = args.data
    if data == "auto":
        data = str(DEFAULT_DATA) if DEFAULT_DATA.exists() else "synthetic"
    if data == "synthetic":
        x = synthetic(args.n, rng)
        source = f"synthetic 5-component vMF mixture, {args.n} points"
    else:
        x = load_latlon_csv(data)
        source = f"{data} ({len(x)} points)"
        if len(x) > args.n:
            x = x[rng.choice(len(x), args.n, replace=False)]
    n = len(x)
    print(f"data: {source}; using {n}")
    S = Sphere(2)
    pts = torch.from_numpy(x).to(torch.float32)
    perm = torch.from_numpy(rng.permutation(n))
    n_hold = max(1, n // 10)
    held, train = pts[perm[:n_hold]], pts[perm[n_hold:]]
    backend = kernels.resolve_backend(None, manifold=S, n_pairs=len(held) * len(train), itemsize=4, device="cpu")
    print(f"held-out split: {len(train)} train / {len(held)} held-out points; backend for the selection: {backend}")
    print(f"uniform density: mean log-likelihood {-math.log(4 * math.pi):.3f}")
    scores = {}
    for h in args.bandwidths:
        t0 = time.perf_counter()
        with torch.no_grad():
            ll = float(kernels.kde(S, held, train, h).double().mean())
        scores[h] = ll
        print(f"  bandwidth {h:.4g} rad ({math.degrees(h):.2f}°): held-out mean log-likelihood {ll:.4f} nats ({time.perf_counter() - t0:.2f} s)")
    best = max(scores, key=scores.get)
    print(f"chosen bandwidth: {best:.4g} rad ({math.degrees(best):.2f}°)")

    lon, lat, q, area = grid_points(*args.grid)
    qt = torch.from_numpy(q).to(torch.float32)
    backend = kernels.resolve_backend(None, manifold=S, n_pairs=len(qt) * n, itemsize=4, device="cpu")
    t0 = time.perf_counter()
    with torch.no_grad():
        logp = kernels.kde(S, qt, pts, best).double().numpy().reshape(len(lat), len(lon))
    t_grid = time.perf_counter() - t0
    integral = float((np.exp(logp) * area).sum())
    print(f"grid {len(lon)} x {len(lat)} = {len(qt)} query points against {n} samples: {t_grid:.2f} s ({backend} backend)")
    print(f"integral of the density over the grid: {integral:.4f} (1 for a normalised density)")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(10, 5.6))
    ax = fig.add_subplot(111, projection="mollweide")
    edges_lon = np.radians(np.linspace(-180, 180, len(lon) + 1))
    edges_lat = np.radians(np.linspace(-90, 90, len(lat) + 1))
    mesh = ax.pcolormesh(edges_lon, edges_lat, logp, cmap="viridis", shading="flat", vmin=max(logp.min(), logp.max() - 12))
    ax.grid(True, alpha=0.3)
    ax.set_xticklabels([])
    fig.colorbar(mesh, ax=ax, orientation="horizontal", fraction=0.05, pad=0.05, label="log density (nats, w.r.t. area on the unit sphere)")
    ax.set_title(f"vMF KDE, {n} points, h = {best:.3g} rad ({math.degrees(best):.1f}°)")
    fig.savefig(out, dpi=args.dpi, bbox_inches="tight")
    plt.close(fig)
    print(f"saved {out}")
    return {"n": n, "scores": scores, "chosen": best, "integral": integral, "grid_s": t_grid, "out": str(out), "source": source}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="auto", help="auto (earthquakes if present, else synthetic), synthetic, or a lat/lon CSV path")
    p.add_argument("--n", type=int, default=100_000, help="number of points (synthetic) / at most this many (file); default 100000")
    p.add_argument("--bandwidths", type=lambda s: [float(v) for v in s.split(",")], default=[0.02, 0.04, 0.08, 0.16], help="candidate bandwidths in rad")
    p.add_argument("--grid", type=lambda s: tuple(int(v) for v in s.lower().split("x")), default=(360, 180), help="lon x lat cells, e.g. 360x180")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dpi", type=int, default=120)
    p.add_argument("--out", default=os.path.join("runs", "kernels_sphere_kde.png"), help="output image (default runs/kernels_sphere_kde.png)")
    a = p.parse_args(argv)
    if a.n < 10 or len(a.grid) != 2 or min(a.grid) < 2 or not a.bandwidths or min(a.bandwidths) <= 0:
        p.error("need --n >= 10, --grid AxB with A, B >= 2, positive bandwidths")
    return run(a)


if __name__ == "__main__":
    main()
