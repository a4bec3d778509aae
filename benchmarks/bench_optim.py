"""Time one ``step()`` of manifolds.RiemannianAdam against geoopt.optim.RiemannianAdam on spheres.

Two cases, both on S^{d-1} ⊂ ℝ^d:

(a) ``n`` separate parameters of shape ``(d,)`` (e.g. one embedding per module);
(b) one parameter of shape ``(n, d)``.

Ours: ``geoopt.ManifoldParameter`` on ``manifolds.Sphere(d - 1)`` (exact exponential map and
parallel transport). geoopt: ``geoopt.ManifoldParameter`` on ``geoopt.SphereExact()``
(exponential map, transport by projection). Before every step the same fixed gradients are
assigned to ``p.grad`` (not timed); only ``optimizer.step()`` is timed with
``time.perf_counter`` after a warm-up, ours and geoopt alternately, and the median is
reported.

Usage::

    python benchmarks/bench_optim.py --repeats 50 --d 3 --n 1000
"""

from __future__ import annotations

import argparse
import statistics
import time

import geoopt
import torch

import manifolds


def _params(x0: torch.Tensor, manifold, separate: bool):
    if separate:
        return [geoopt.ManifoldParameter(r.clone(), manifold=manifold) for r in x0]
    return [geoopt.ManifoldParameter(x0.clone(), manifold=manifold)]


def _timed_step(opt: torch.optim.Optimizer, params, grads) -> float:
    for p, g in zip(params, grads):
        p.grad = g.clone()
    t0 = time.perf_counter()
    opt.step()
    return time.perf_counter() - t0


def bench_case(separate: bool, n: int, d: int, repeats: int, warmup: int, dtype, lr: float = 1e-3):
    """Median ms per ``step()`` of (ours, geoopt). The two optimizers step alternately, so a
    change of machine load during the run affects both alike."""
    gen = torch.Generator().manual_seed(0)
    x0 = torch.nn.functional.normalize(torch.randn(n, d, generator=gen, dtype=dtype), dim=-1)
    g0 = torch.randn(n, d, generator=gen, dtype=dtype)
    grads = list(g0) if separate else [g0]

    ours_params = _params(x0, manifolds.Sphere(d - 1), separate)
    ours = manifolds.RiemannianAdam(ours_params, lr=lr)
    theirs_params = _params(x0, geoopt.SphereExact(), separate)
    theirs = geoopt.optim.RiemannianAdam(theirs_params, lr=lr)

    t_ours, t_theirs = [], []
    for i in range(warmup + repeats):
        a = _timed_step(ours, ours_params, grads)
        b = _timed_step(theirs, theirs_params, grads)
        if i >= warmup:
            t_ours.append(a)
            t_theirs.append(b)
    return 1e3 * statistics.median(t_ours), 1e3 * statistics.median(t_theirs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=50, help="timed steps per case (median reported)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before timing")
    parser.add_argument("--d", type=int, default=3, help="ambient dimension of the sphere S^{d-1}")
    parser.add_argument("--n", type=int, default=1000, help="number of points / separate parameters")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.d < 2 or args.n < 1 or args.repeats < 1:
        parser.error("need --d >= 2, --n >= 1, --repeats >= 1")
    dtype = getattr(torch, args.dtype)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(
        f"torch {torch.__version__}, geoopt {geoopt.__version__}, {torch.get_num_threads()} threads, "
        f"{args.dtype}, median of {args.repeats} steps after {args.warmup} warm-up\n"
    )
    print("| case | ours (ms/step) | geoopt (ms/step) | geoopt / ours |")
    print("|---|---:|---:|---:|")
    cases = [
        (f"{args.n} separate ({args.d},) sphere params", True),
        (f"one ({args.n}, {args.d}) sphere param", False),
    ]
    for label, separate in cases:
        t_ours, t_theirs = bench_case(separate, args.n, args.d, args.repeats, args.warmup, dtype)
        print(f"| {label} | {t_ours:.3f} | {t_theirs:.3f} | {t_theirs / t_ours:.2f}× |")


if __name__ == "__main__":
    main()
