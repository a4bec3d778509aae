"""Timing helpers shared by the benchmark scripts (run them as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

__all__ = ["median_ms", "median_times", "fwd_bwd", "CLOCKS", "GeomstatsWorker"]


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


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def median_times(fns, repeats: int, clock: str, warmup: int = 2):
    """Median ms per closure, run round-robin like ``_timing.median_ms``, on the chosen clock.

    A closure may return its own elapsed seconds (the geomstats worker measures its calls on its
    own clock, since CPU time spent in another process is invisible here); otherwise it is timed
    here. ``cpu`` = ``time.process_time``: with one thread it counts only this process's CPU time,
    so it is robust to other jobs on a shared machine (refs/core.md §2.6, Table A); ``wall`` =
    ``time.perf_counter``, what ``_timing.median_ms`` uses.
    """
    tick = CLOCKS[clock]
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = tick()
            own = fn()
            ts.append(own if isinstance(own, float) else tick() - t0)
    return [1e3 * statistics.median(ts) for ts in times]


class GeomstatsWorker:
    """A geomstats (pytorch backend) process answering one call per request."""

    def __init__(self, script: str, threads: int):
        """Start ``python <script> --_geomstats-worker --threads <threads>`` (the calling benchmark
        script implements the worker loop) with geomstats' pytorch backend selected."""
        env = dict(os.environ, GEOMSTATS_BACKEND="pytorch", PYTHONWARNINGS="ignore")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(script), "--_geomstats-worker", "--threads", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env=env,
        )
        hello = self.proc.stdout.readline()
        if not hello:
            raise RuntimeError("the geomstats worker did not start (is geomstats 2.8 importable with numpy < 2.4?)")
        self.version = json.loads(hello)["version"]

    def __call__(self, **req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
