"""Timing helpers shared by the benchmark scripts (run them as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import statistics
import time

__all__ = ["median_ms", "fwd_bwd"]


def median_ms(fns, repeats: int, warmup: int = 2):
    """Median wall time in ms of each closure in ``fns``.

    The closures are run round-robin (one run of each per repeat), so a burst of load
    from other processes hits every library alike and the ratios stay meaningful.
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [1e3 * statistics.median(ts) for ts in times]


def fwd_bwd(op, *inputs):
    """A closure running ``op(*inputs).sum().backward()`` on fresh leaf copies."""
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]

    def run():
        for t in leaves:
            t.grad = None
        op(*leaves).sum().backward()

    return run
