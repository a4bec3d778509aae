"""Sphere ``dist`` / ``expmap`` / ``logmap``: ours vs geoopt vs geomstats, speed and accuracy.

For each op and dtype (float32, float64) the script times, on a batch of ``--n`` points of
S^{d-1} ⊂ ℝ^d:

* ``manifolds.Sphere(d - 1)`` (ours) and ``geoopt.Sphere()`` (geoopt's ``expmap`` is the
  exact exponential map; its ``retr`` is the projection): forward, and forward + backward
  (``out.sum().backward()`` w.r.t. both inputs);
* geomstats' ``Hypersphere(dim=d - 1).metric`` with its default numpy backend: forward
  only (no autograd: backward "n/a").

Times are medians over ``--repeats`` runs after warm-up, in milliseconds; "ratio" is
the library's time divided by ours (> 1: slower than ours).

Accuracy: the maximum absolute error against a float64 reference computed with ours in
float64. Inputs are drawn in float64 and rounded to float32; the float64 inputs are
those float32 values cast back to float64 and re-projected onto the sphere (points) /
tangent space (vectors) in float64, so every library sees the same points in both
dtypes. The pairs of ``dist`` / ``logmap`` have distances spread log-uniformly over
[1e-4, π - 1e-3] rad, a quarter of them exactly 1e-4 rad apart: there geoopt's
``acos`` of the clamped inner product floors at 0.0141 rad in float32 (4.5e-4 rad in
float64), which shows in its ``dist`` and ``logmap`` errors.

Usage::

    python benchmarks/bench_sphere.py --n 100000 --d 3 --repeats 10
"""

from __future__ import annotations

import argparse
import logging
import math
import warnings

import geoopt
import numpy as np
import torch

from manifolds import Sphere

from _timing import fwd_bwd, median_ms  # benchmarks/_timing.py (scripts run from this folder)


def make_inputs(n: int, d: int, seed: int = 0):
    """``(x, y, u)`` in float64 and their float32 roundings; see the module docstring."""
    S = Sphere(d - 1)
    g = torch.Generator().manual_seed(seed)
    x = S.random(n, d, dtype=torch.float64, generator=g)
    # y at a spread of distances from x, a quarter of them exactly 1e-4 rad
    theta = 10 ** torch.empty(n, 1, dtype=torch.float64).uniform_(-4, math.log10(math.pi - 1e-3), generator=g)
    theta[: n // 4] = 1e-4
    w = S.proju(x, torch.randn(n, d, dtype=torch.float64, generator=g))
    w = w / w.norm(dim=-1, keepdim=True)
    y = torch.cos(theta) * x + torch.sin(theta) * w
    # tangent vectors for expmap with norms spread over [1e-4, 3]
    r = 10 ** torch.empty(n, 1, dtype=torch.float64).uniform_(-4, math.log10(3.0), generator=g)
    v = S.proju(x, torch.randn(n, d, dtype=torch.float64, generator=g))
    u = r * v / v.norm(dim=-1, keepdim=True)

    x32, y32, u32 = x.float(), y.float(), u.float()
    x64, y64 = S.projx(x32.double()), S.projx(y32.double())
    u64 = S.proju(x64, u32.double())
    return {torch.float32: (x32, y32, u32), torch.float64: (x64, y64, u64)}


def _geomstats_metric(dim: int):
    # geomstats logs its backend choice and warns on import; keep the table clean.
    logging.disable(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from geomstats.geometry.hypersphere import Hypersphere

        metric = Hypersphere(dim=dim).metric
    logging.disable(logging.NOTSET)
    return metric


def run(n: int, d: int, repeats: int):
    ours = Sphere(d - 1)
    go = geoopt.Sphere()
    gs = _geomstats_metric(d - 1)
    inputs = make_inputs(n, d)

    torch_ops = {
        "dist": (lambda M, x, y, u: (M.dist, (x, y))),
        "expmap": (lambda M, x, y, u: (M.expmap, (x, u))),
        "logmap": (lambda M, x, y, u: (M.logmap, (x, y))),
    }
    gs_ops = {
        "dist": lambda x, y, u: gs.dist(x, y),
        "expmap": lambda x, y, u: gs.exp(u, x),
        "logmap": lambda x, y, u: gs.log(y, x),  # log(point, base_point)
    }

    # float64 reference with ours, on the float64 inputs (the float32 ones, cast and re-projected)
    x64, y64, u64 = inputs[torch.float64]
    ref = {}
    with torch.no_grad():
        for op, f in torch_ops.items():
            fn, args = f(ours, x64, y64, u64)
            ref[op] = fn(*args)

    rows = []
    for op in torch_ops:
        for dtype in (torch.float32, torch.float64):
            x, y, u = inputs[dtype]
            fwd, bwd, errs = [], [], {}
            for lib, M in (("ours", ours), ("geoopt", go)):
                fn, args = torch_ops[op](M, x, y, u)
                with torch.no_grad():
                    errs[lib] = float((fn(*args).double() - ref[op]).abs().max())
                fwd.append(torch.no_grad()(lambda fn=fn, args=args: fn(*args)))
                bwd.append(fwd_bwd(fn, *args))
            xn, yn, un = (t.numpy() for t in (x, y, u))
            out = np.asarray(gs_ops[op](xn, yn, un))
            gs_name = "geomstats" if out.dtype == xn.dtype else f"geomstats (out {out.dtype})"
            errs[gs_name] = float(np.abs(out.astype(np.float64) - ref[op].numpy()).max())
            fwd.append(lambda op=op, xn=xn, yn=yn, un=un: gs_ops[op](xn, yn, un))
            t_fwd = median_ms(fwd, repeats)
            t_bwd = median_ms(bwd, repeats) + [None]
            res = {lib: (tf, tb, errs[lib]) for lib, tf, tb in zip(errs, t_fwd, t_bwd)}
            for lib, (t_fwd, t_bwd, err) in res.items():
                rows.append((op, dtype, lib, t_fwd, t_bwd, err, res["ours"]))

    print(
        f"Sphere S^{d - 1} in R^{d}, batch n = {n}, median of {repeats} runs; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads, CPU), geoopt {geoopt.__version__}, numpy {np.__version__}"
    )
    print()
    print("| op | dtype | library | fwd ms | fwd+bwd ms | fwd ratio to ours | fwd+bwd ratio to ours | max abs error |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for op, dtype, lib, t_fwd, t_bwd, err, (o_fwd, o_bwd, _) in rows:
        dt = str(dtype).replace("torch.", "")
        bwd = "n/a" if t_bwd is None else f"{t_bwd:.2f}"
        rbwd = "n/a" if t_bwd is None else f"{t_bwd / o_bwd:.2f}"
        print(f"| {op} | {dt} | {lib} | {t_fwd:.2f} | {bwd} | {t_fwd / o_fwd:.2f} | {rbwd} | {err:.2e} |")
    print()
    print(
        "Error: max |result - ours(float64)| over the batch (dist in rad; expmap / logmap per coordinate). "
        "geomstats uses its numpy backend; '(out float64)' marks float32 inputs it computed in float64. "
        "float32 logmap is ill-conditioned next to the antipode (pairs up to π - 1e-3 here): rounding the "
        "inputs to float32 alone moves its direction by ~eps/sin(1e-3) ≈ 1e-4."
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000, help="batch size (default 100000)")
    p.add_argument("--d", type=int, default=3, help="ambient dimension: the sphere is S^{d-1} (default 3)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per measurement (default 10)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    a = p.parse_args(argv)
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    if a.d < 2 or a.n < 4 or a.repeats < 1:
        p.error("need --d >= 2, --n >= 4, --repeats >= 1")
    run(a.n, a.d, a.repeats)


if __name__ == "__main__":
    main()
