"""AIM distance on SPD matrices: ours (Cholesky + eigvalsh) vs geoopt vs geomstats, speed and accuracy.

For ``--pairs`` pairs of ``--n``×``--n`` SPD matrices (``A Aᵀ/n + 0.1 I``, ``A`` Gaussian, as in
refs/core.md §2.6) and each dtype (float64, float32) the script times the affine-invariant
distance ``‖log(a^{-1/2} b a^{-1/2})‖_F``:

* ``ours``: ``manifolds._linalg.aim_dist`` — Cholesky whitening ``L⁻¹ b L⁻ᵀ`` (two triangular
  solves) and ``eigvalsh``; backward through ``eigvalsh`` (no eigen-gap term);
* ``ours (invsqrtm + logm)``: the same distance through the eigh-based spectral functions
  ``sym_logm(sym_invsqrtm(a) b sym_invsqrtm(a))`` with their Daleckii–Krein backward — what a
  caller would write without the eigenvalue-only path;
* ``geoopt``: ``geoopt.SymmetricPositiveDefinite().dist`` (two ``eigh``, autograd through them);
* ``geomstats``: ``SPDMatrices(n).metric.dist`` with its default numpy backend, forward only.

Forward and forward + backward (``d.sum().backward()`` w.r.t. both inputs) times are medians
over ``--repeats`` round-robin runs after warm-up, in milliseconds for the whole batch; "ratio"
is the library's time divided by ours (> 1: slower than ours). Error: maximum absolute
difference from ours in float64 on the same (float32-rounded, cast back) inputs.

Usage::

    python benchmarks/bench_linalg.py --pairs 10000 --n 16 --repeats 7
"""

from __future__ import annotations

import argparse
import logging
import warnings

import geoopt
import numpy as np
import torch

from manifolds._linalg import aim_dist, sym, sym_invsqrtm, sym_logm

from _timing import fwd_bwd, median_ms  # benchmarks/_timing.py (scripts run from this folder)


def _eigh_path(a, b):
    s = sym_invsqrtm(a)
    return torch.linalg.matrix_norm(sym_logm(s @ b @ s))


def make_inputs(pairs: int, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    eye = torch.eye(n, dtype=torch.float64)

    def spd():
        m = torch.randn(pairs, n, n, dtype=torch.float64, generator=g)
        return sym(m @ m.mT / n + 0.1 * eye)

    a32, b32 = spd().float(), spd().float()
    return {torch.float32: (a32, b32), torch.float64: (a32.double(), b32.double())}


def _geomstats_metric(n: int):
    logging.disable(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from geomstats.geometry.spd_matrices import SPDMatrices

        metric = SPDMatrices(n).metric
    logging.disable(logging.NOTSET)
    return metric


def run(pairs: int, n: int, repeats: int):
    inputs = make_inputs(pairs, n)
    go = geoopt.SymmetricPositiveDefinite()
    gs = _geomstats_metric(n)
    libs = {"ours": aim_dist, "ours (invsqrtm + logm)": _eigh_path, "geoopt": go.dist}
    with torch.no_grad():
        ref = aim_dist(*inputs[torch.float64])

    rows = []
    for dtype in (torch.float64, torch.float32):
        a, b = inputs[dtype]
        fwd, bwd, errs = [], [], {}
        for name, op in libs.items():
            with torch.no_grad():
                errs[name] = float((op(a, b).double() - ref).abs().max())
            fwd.append(torch.no_grad()(lambda op=op: op(a, b)))
            bwd.append(fwd_bwd(op, a, b))
        an, bn = a.numpy(), b.numpy()
        out = np.asarray(gs.dist(an, bn))
        gs_name = "geomstats (numpy)" if out.dtype == an.dtype else f"geomstats (numpy, out {out.dtype})"
        errs[gs_name] = float(np.abs(out.astype(np.float64) - ref.numpy()).max())
        fwd.append(lambda: gs.dist(an, bn))
        t_fwd = median_ms(fwd, repeats)
        t_bwd = median_ms(bwd, repeats) + [None]
        res = {lib: (tf, tb, errs[lib]) for lib, tf, tb in zip(errs, t_fwd, t_bwd)}
        for lib, (tf, tb, err) in res.items():
            rows.append((dtype, lib, tf, tb, err, res["ours"]))

    print(
        f"AIM distance, {pairs} pairs of {n}x{n} SPD matrices, median of {repeats} runs; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads, CPU), geoopt {geoopt.__version__}, numpy {np.__version__}"
    )
    print()
    print("| dtype | library | fwd ms | fwd+bwd ms | fwd ratio to ours | fwd+bwd ratio to ours | max abs error |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for dtype, lib, tf, tb, err, (o_fwd, o_bwd, _) in rows:
        dt = str(dtype).replace("torch.", "")
        sb = "n/a" if tb is None else f"{tb:.1f}"
        rb = "n/a" if tb is None else f"{tb / o_bwd:.2f}"
        print(f"| {dt} | {lib} | {tf:.1f} | {sb} | {tf / o_fwd:.2f} | {rb} | {err:.2e} |")
    print()
    print(
        "Error: max |d - ours(float64)| over the batch, on the same inputs (float32 rounded, cast back). "
        "geomstats uses its numpy backend and has no backward here."
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=10_000, help="number of pairs (default 10000)")
    p.add_argument("--n", type=int, default=16, help="matrix size (default 16)")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (default 7)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    a = p.parse_args(argv)
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    if a.n < 1 or a.pairs < 1 or a.repeats < 1:
        p.error("need --n, --pairs, --repeats >= 1")
    run(a.pairs, a.n, a.repeats)


if __name__ == "__main__":
    main()
