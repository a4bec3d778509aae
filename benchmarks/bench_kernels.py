"""Kernels layer: geodesic kernel sums, kNN and MMD on dense / chunked / KeOps backends.

For ``N = M`` points in ``--sizes`` (default 10³, 10⁴; add 10⁵ with ``--sizes`` or ``--big``;
10⁶ only with ``--device cuda``) on

* ``sphere``: ``Sphere(2)`` (S² in R³, chord form ``2 asin(|a − b| / 2)``), bandwidth 0.2 rad;
* ``so3``: ``SO3()`` (quaternion features), bandwidth 0.5 rad;
* ``hyperbolic``: ``Hyperboloid(2)`` (Lorentz model of H², ``2 asinh(‖a − b‖_L / 2)``), points
  from a wrapped normal of scale 1, bandwidth 1;
* ``spd``: ``SPD(3, metric="lem")`` (log-Euclidean, 6 flat coordinates), bandwidth 0.5,

and the operations

* ``fwd``: Gaussian ``kernel_sum(M, x, y)`` (forward only, under ``torch.no_grad``);
* ``fwdbwd``: the same, ``.sum().backward()`` (gradient w.r.t. ``x``);
* ``knn``: ``knn(M, x, y, k=16)`` (forward: the arg-k-min plus the gathered distances);
* ``mmd``: unbiased Gaussian ``mmd2(M, x, y)`` (three ``N × N`` reductions),

each backend forced by the ``backend=`` argument (``dense``, ``chunked`` with the default
256 MB block budget, ``keops``), float32.

**Every point runs in a fresh Python process** (``python bench_kernels.py --_point ...``): it
builds the inputs, runs one warm-up call (at the full size for ``N ≤ 10⁴``, else at ``N = 10³``,
which loads the compiled KeOps formula), records the resident set size (``VmRSS``), resets the
peak (``/proc/self/clear_refs``; where that is refused the peak includes the warm-up, which is
the same operation), runs ``--reps`` timed calls (wall clock, median reported) and reports
``peak extra MB = VmHWM − VmRSS before the timed calls``. With glibc's default (dynamic) mmap
threshold, freed multi-MB blocks stay in the heap, so this RSS peak of the chunked backend
depends on the process's allocation history (0 to several × the live peak); run with
``MALLOC_MMAP_THRESHOLD_=65536`` in the environment (recorded in the results) to have freed
blocks returned, or pass ``--alloc-peak`` to also record torch's allocator peak (profiler memory
events, one extra untimed run; dense / chunked on CPU), the quantity the memory budget bounds. A point that exceeds ``--timeout``
seconds is killed and marked ``timeout``. Dense points whose estimated ``N × M`` temporaries
(``N·M·4 bytes × (F + 3)`` for a forward with ``F`` feature coordinates, twice that with the
backward) exceed 70 % of ``MemAvailable`` are not run and marked ``OOM (est. X GB)``.

**Float32 error** (after the timing, in the same process): on the first ``--err-rows`` rows of
``x`` (and, for MMD, the first ``--err-rows`` points of both clouds), the backend's float32
result against a float64 evaluation with the chunked backend: forward ``max|f32 − f64| /
max|f64|``, gradient the same on ``∂/∂x Σ_i out_i`` (row ``i`` of the gradient depends on row
``i`` only, so the subset gives exact rows of the full gradient); kNN: max distance error
(relative to the largest neighbour distance) and whether the index sets differ in a row.

**KeOps compile time** (``--cold``): in a fresh process with an empty build folder
(``MANIFOLD_RL_KEOPS_BUILD_FOLDER`` set to a new temporary directory), the first call of each
operation at ``N = 1000`` (cold: code generation + g++), the second call (warm, same process),
and the first call in a second fresh process on the now-filled folder (warm cache, new process).

**The issue's target** (``--only-target``): the sphere ``kernel_sum`` forward + backward at
``N = M = 10⁵`` with KeOps (and chunked with ``--target-backends keops,chunked``), one timed run,
under 200 MB extra memory on a 2-core CPU (the dense ``N × M`` float32 matrix alone is 40 GB).

Results are appended as JSON lines to ``--out`` (default ``benchmarks/bench_kernels.jsonl``,
git-ignored) as each point finishes, then printed as one Markdown table per manifold plus the
crossover sizes (smallest measured ``N`` at which a backend beats dense).

Usage::

    python benchmarks/bench_kernels.py                               # 10³, 10⁴, every manifold / op / backend
    python benchmarks/bench_kernels.py --sizes 1000 --reps 3 --manifolds sphere --ops fwd,fwdbwd
    python benchmarks/bench_kernels.py --big --backends keops,chunked --ops fwd --manifolds sphere
    python benchmarks/bench_kernels.py --cold --manifolds sphere     # KeOps cold compile vs warm
    python benchmarks/bench_kernels.py --only-target                 # 10⁵ sphere fwd+bwd, KeOps
    python benchmarks/bench_kernels.py --device cuda --sizes 1000,10000,100000,1000000   # GPU rows
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MANIFOLDS = ("sphere", "so3", "hyperbolic", "spd")
OPS = ("fwd", "fwdbwd", "knn", "mmd")
BACKENDS = ("dense", "chunked", "keops")
BANDWIDTH = {"sphere": 0.2, "so3": 0.5, "hyperbolic": 1.0, "spd": 0.5}
FEATURES = {"sphere": 3, "so3": 4, "hyperbolic": 3, "spd": 6}
K = 16


# ---------------------------------------------------------------------------- memory (Linux /proc)
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def mem_available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return 1024 * int(line.split()[1])
    except OSError:
        pass
    return 8 * 2**30


def dense_estimate_bytes(manifold: str, op: str, n: int, itemsize: int = 4) -> int:
    """Rough peak of the dense backend: ``(F + 3)`` live ``N × N`` buffers, doubled with the backward."""
    per = n * n * itemsize * (FEATURES[manifold] + 3)
    return 2 * per if op == "fwdbwd" else per


# ---------------------------------------------------------------------------- one point (child process)
def _make(name: str):
    from manifolds import SO3, SPD, Hyperboloid, Sphere

    return {"sphere": lambda: Sphere(2), "so3": lambda: SO3(), "hyperbolic": lambda: Hyperboloid(2), "spd": lambda: SPD(3, metric="lem")}[name]()


def _points(M, n, dtype, device, seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    return M.random(n, *M.event_shape, dtype=torch.float64, generator=g).to(device=device, dtype=dtype)


def _op_fn(op, M, h, backend):
    """``fn(x, y) -> tensor`` computing the operation (the backward is added by the caller)."""
    import kernels

    if op in ("fwd", "fwdbwd"):
        return lambda x, y: kernels.kernel_sum(M, x, y, bandwidth=h, backend=backend)
    if op == "knn":
        return lambda x, y: kernels.knn(M, x, y, K, backend=backend)
    return lambda x, y: kernels.mmd2(M, x, y, h, backend=backend)


def _runner(op, fn, x, y, sync):
    import torch

    if op == "fwdbwd":
        xl = x.detach().clone().requires_grad_(True)

        def run():
            xl.grad = None
            fn(xl, y).sum().backward()
            sync()

    else:

        def run():
            with torch.no_grad():
                fn(x, y)
            sync()

    return run


def _errors(op, M, h, backend, x, y, rows):
    """float32 errors of ``backend`` against a float64 chunked evaluation on a subset."""
    import torch

    xs, ys = x[:rows], (y[:rows] if op == "mmd" else y)
    fn32, fn64 = _op_fn(op, M, h, backend), _op_fn(op, M, h, "chunked")
    x64, y64 = xs.double(), ys.double()
    out = {}
    if op == "knn":
        with torch.no_grad():
            d32, i32 = fn32(xs, ys)
            d64, i64 = fn64(x64, y64)
        scale = float(d64.abs().max())
        out["err_fwd"] = float((d32.double() - d64).abs().max()) / scale
        same = (i32.sort(-1).values == i64.sort(-1).values).all(-1)
        out["knn_rows_differ"] = int((~same).sum())
        return out
    with torch.no_grad():
        v32, v64 = fn32(xs, ys).double(), fn64(x64, y64)
    out["err_fwd"] = float((v32 - v64).abs().max()) / max(float(v64.abs().max()), 1e-300)
    if op == "fwdbwd":
        a = xs.detach().clone().requires_grad_(True)
        fn32(a, ys).sum().backward()
        b = x64.detach().clone().requires_grad_(True)
        fn64(b, y64).sum().backward()
        out["err_grad"] = float((a.grad.double() - b.grad).abs().max()) / max(float(b.grad.abs().max()), 1e-300)
    return out


def _alloc_peak(run) -> int:
    """Peak live bytes of torch's CPU allocator during one extra ``run()`` (profiler memory events).

    Unlike ``VmHWM`` this does not see glibc's heap retention (with the dynamic mmap threshold,
    freed multi-MB chunks stay in the heap and the RSS peak depends on the history of the
    process); it is what the chunked backend's memory budget controls.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        run()
    events = sorted((e.start_ns(), e.nbytes()) for e in p.profiler.kineto_results.events() if e.name() == "[memory]")
    live = peak = 0
    for _, b in events:
        live += b
        peak = max(peak, live)
    return peak


def run_point(spec: dict) -> dict:
    """Measure one ``(manifold, op, backend, n)`` point in this (fresh) process."""
    import torch

    device = torch.device(spec["device"])
    if device.type == "cuda":
        sync = torch.cuda.synchronize
    else:

        def sync():
            pass

    M = _make(spec["manifold"])
    h = BANDWIDTH[spec["manifold"]]
    n, backend, op = spec["n"], spec["backend"], spec["op"]
    x = _points(M, n, torch.float32, device, 1)
    y = _points(M, n, torch.float32, device, 2)
    fn = _op_fn(op, M, h, backend)
    res = dict(spec)
    t0 = time.perf_counter()
    if n <= 10_000:
        _runner(op, fn, x, y, sync)()
    else:
        w = min(n, 1000)
        _runner(op, fn, x[:w], y[:w], sync)()
    res["warmup_s"] = time.perf_counter() - t0
    if backend == "keops":
        from kernels import _backend

        res["keops_ok"] = bool(_backend._KEOPS_STATE.get(device.type, (False,))[0])
    run = _runner(op, fn, x, y, sync)
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    rss0 = _status_kb("VmRSS")
    res["peak_reset"] = _reset_peak()
    times = []
    for _ in range(spec["reps"]):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    hwm = _status_kb("VmHWM")
    res.update(
        status="ok",
        ms=1e3 * statistics.median(times),
        times_s=times,
        rss_base_mb=rss0 / 1024,
        peak_extra_mb=(hwm - rss0) / 1024,
    )
    if device.type == "cuda":
        res["cuda_peak_extra_mb"] = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
    if spec.get("alloc_peak") and device.type == "cpu" and backend != "keops":
        res["alloc_peak_mb"] = _alloc_peak(run) / 2**20
    if spec.get("err_rows", 0) > 0:
        try:
            res.update(_errors(op, M, h, backend, x, y, min(spec["err_rows"], n)))
        except Exception as e:  # noqa: BLE001 - report, keep the timing
            res["err_error"] = f"{type(e).__name__}: {e}"[:200]
    res["torch_threads"] = torch.get_num_threads()
    return res


def run_cold(spec: dict) -> dict:
    """First (cold or warm-cache) and second call of each op at ``N = spec['n']`` in this process."""
    import torch

    M = _make(spec["manifold"])
    h = BANDWIDTH[spec["manifold"]]
    n = spec["n"]
    x, y = _points(M, n, torch.float32, "cpu", 1), _points(M, n, torch.float32, "cpu", 2)
    t0 = time.perf_counter()
    import kernels

    ok = kernels.keops_available("cpu")
    res = dict(spec, probe_s=time.perf_counter() - t0, keops_ok=ok, folder=kernels.keops_build_folder("cpu"))
    for op in spec["ops"]:
        run = _runner(op, _op_fn(op, M, h, "keops"), x, y, lambda: None)
        t0 = time.perf_counter()
        run()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        run()
        res[op] = {"first_s": first, "second_s": time.perf_counter() - t0}
    return res


# ---------------------------------------------------------------------------- parent: scheduling
def _child(args_json: str, flag: str, timeout: float, env=None):
    cmd = [sys.executable, str(Path(__file__).resolve()), flag, args_json]
    env = dict(os.environ if env is None else env, PYKEOPS_VERBOSE="0", PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(ROOT))
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "wall_s": time.perf_counter() - t0}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or [f"exit {p.returncode}"]
        status = "OOM (killed)" if p.returncode in (-9, 137) else "error"
        return {"status": status, "error": tail[0][:300], "wall_s": time.perf_counter() - t0}
    out = json.loads(lines[-1])
    out["wall_s"] = time.perf_counter() - t0
    return out


def _meta(args):
    import torch

    try:
        import pykeops

        kv = pykeops.__version__
    except Exception:  # noqa: BLE001
        kv = "n/a"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "pykeops": kv,
        "device": args.device,
        "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
        "load_avg": os.getloadavg(),
    }


def _append(path, rec):
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")


def grid(args):
    from tqdm import tqdm

    meta = _meta(args)
    avail = mem_available_bytes()
    points = [(m, op, n, b) for m in args.manifolds for n in args.sizes for op in args.ops for b in args.backends]
    rows = []
    for m, op, n, b in tqdm(points, desc="points", file=sys.stderr):
        spec = dict(manifold=m, op=op, n=n, backend=b, reps=args.reps, device=args.device, err_rows=args.err_rows, alloc_peak=args.alloc_peak)
        est = dense_estimate_bytes(m, op, n)
        if b == "dense" and args.device == "cpu" and est > 0.7 * avail:
            res = dict(spec, status=f"OOM (est. {est / 1e9:.0f} GB)")
        else:
            res = dict(spec, **_child(json.dumps(spec), "--_point", args.timeout))
        res["meta"] = meta
        _append(args.out, res)
        rows.append(res)
        tqdm.write(_oneline(res), file=sys.stderr)
    print_tables(rows, args)
    return rows


def _oneline(r):
    if r.get("status") != "ok":
        return f"{r['manifold']} {r['op']} N={r['n']} {r['backend']}: {r.get('status')} {r.get('error', '')}"
    return f"{r['manifold']} {r['op']} N={r['n']} {r['backend']}: {r['ms']:.1f} ms, +{r['peak_extra_mb']:.1f} MB"


def _cell(r):
    if r is None:
        return "—"
    if r.get("status") != "ok":
        return r["status"]
    t = r["ms"]
    ts = f"{t:.1f} ms" if t < 1e4 else f"{t / 1e3:.1f} s"
    cell = f"{ts}, +{r['peak_extra_mb']:.0f} MB" if r["peak_extra_mb"] >= 10 else f"{ts}, +{r['peak_extra_mb']:.1f} MB"
    if "alloc_peak_mb" in r:
        cell += f" (alloc {r['alloc_peak_mb']:.0f} MB)"
    return cell


def _errcell(r):
    if r is None or r.get("status") != "ok" or "err_fwd" not in r:
        return "—"
    s = f"{r['err_fwd']:.0e}"
    if "err_grad" in r:
        s += f" / {r['err_grad']:.0e}"
    if r.get("knn_rows_differ"):
        s += f" ({r['knn_rows_differ']} rows differ)"
    return s


def print_tables(rows, args):
    if not rows:
        return
    meta = rows[0].get("meta", {})
    print(
        f"Kernels layer, float32, N = M, median of {args.reps} timed run(s) (wall) after one warm-up, each point in a "
        f"fresh process; {meta.get('cpu')} ({meta.get('cores')} cores), torch {meta.get('torch')}, pykeops {meta.get('pykeops')}, "
        f"device {meta.get('device')}"
    )
    print()
    backends = [b for b in BACKENDS if any(r["backend"] == b for r in rows)]
    for m in MANIFOLDS:
        mr = [r for r in rows if r["manifold"] == m]
        if not mr:
            continue
        print(f"**{m}** (bandwidth {BANDWIDTH[m]})")
        print()
        print("| op | N | " + " | ".join(backends) + " | " + " | ".join(f"f32 err {b} (fwd / grad)" for b in backends) + " |")
        print("|---|---:|" + "---:|" * len(backends) + "---:|" * len(backends))
        for op in OPS:
            for n in sorted({r["n"] for r in mr}):
                cells = {r["backend"]: r for r in mr if r["op"] == op and r["n"] == n}
                if not cells:
                    continue
                print(f"| {op} | {n:,} | " + " | ".join(_cell(cells.get(b)) for b in backends) + " | " + " | ".join(_errcell(cells.get(b)) for b in backends) + " |")
        print()
    print("Crossover (smallest measured N at which the backend is faster than dense; dense OOM counts as slower):")
    print()
    for m in MANIFOLDS:
        for op in OPS:
            sel = [r for r in rows if r["manifold"] == m and r["op"] == op]
            if not sel:
                continue
            parts = []
            for b in ("keops", "chunked"):
                win = None
                for n in sorted({r["n"] for r in sel}):
                    d = next((r for r in sel if r["n"] == n and r["backend"] == "dense"), None)
                    o = next((r for r in sel if r["n"] == n and r["backend"] == b), None)
                    if o is None or o.get("status") != "ok" or d is None:
                        continue
                    if d.get("status") != "ok" or o["ms"] < d["ms"]:
                        win = n
                        break
                parts.append(f"{b}: " + (f"N ≥ {win:,}" if win else "never in the grid"))
            print(f"* {m} {op}: " + "; ".join(parts))


def cold(args):
    meta = _meta(args)
    folder = tempfile.mkdtemp(prefix="keops_cold_")
    env = dict(os.environ, MANIFOLD_RL_KEOPS_BUILD_FOLDER=folder)
    rows = []
    for m in args.manifolds:
        spec = dict(manifold=m, ops=args.ops, n=1000)
        first = _child(json.dumps(spec), "--_cold", args.timeout, env=env)
        second = _child(json.dumps(spec), "--_cold", args.timeout, env=env)
        rec = {"kind": "cold", "manifold": m, "cold": first, "warm_new_process": second, "meta": meta, "folder": folder}
        _append(args.out, rec)
        rows.append(rec)
    print(f"KeOps compile time, N = M = 1000, float32, fresh build folder {folder}; {meta['cpu']}, pykeops {meta['pykeops']}")
    print()
    print("| manifold | op | cold first call (compile) | second call, same process | first call, new process, warm cache |")
    print("|---|---|---:|---:|---:|")
    for rec in rows:
        for op in args.ops:
            c, w = rec["cold"].get(op), rec["warm_new_process"].get(op)
            if c is None or w is None:
                print(f"| {rec['manifold']} | {op} | {rec['cold'].get('status', 'error')} {rec['cold'].get('error', '')} | | |")
                continue
            print(f"| {rec['manifold']} | {op} | {c['first_s']:.1f} s | {1e3 * c['second_s']:.1f} ms | {1e3 * w['first_s']:.1f} ms |")
    print()
    print("Probe (import pykeops + tiny reduction) in the cold process: " + ", ".join(f"{r['manifold']} {r['cold'].get('probe_s', float('nan')):.1f} s" for r in rows))
    print("(fwdbwd compiles the forward and the gradient formulas; knn compiles the arg-k-min; mmd reuses the forward formula on features)")


def target(args):
    meta = _meta(args)
    print("Issue target: sphere S² Gaussian kernel_sum forward + backward (grad w.r.t. x), N = M = 100 000, float32, one timed run")
    print()
    print("| backend | time | peak extra memory | warm-up (N = 1000) |")
    print("|---|---:|---:|---:|")
    for b in args.target_backends:
        spec = dict(manifold="sphere", op="fwdbwd", n=100_000, backend=b, reps=1, device=args.device, err_rows=args.err_rows)
        res = dict(spec, **_child(json.dumps(spec), "--_point", args.timeout), meta=meta, kind="target")
        _append(args.out, res)
        if res.get("status") == "ok":
            flag = "under" if res["peak_extra_mb"] < 200 else "OVER"
            print(f"| {b} | {res['ms'] / 1e3:.1f} s | +{res['peak_extra_mb']:.1f} MB ({flag} 200 MB) | {res['warmup_s']:.1f} s |", flush=True)
        else:
            print(f"| {b} | {res.get('status')} after {res.get('wall_s', 0):.0f} s {res.get('error', '')} | | |", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ints = lambda s: [int(float(v)) for v in s.split(",")]  # noqa: E731 - accepts 1e5
    names = lambda s: s.split(",")  # noqa: E731
    p.add_argument("--sizes", type=ints, default=None, help="N = M values, e.g. 1000,10000,1e5 (default 1000,10000)")
    p.add_argument("--big", action="store_true", help="add N = 100000 to the sizes (slow: minutes per point on a CPU)")
    p.add_argument("--manifolds", type=names, default=list(MANIFOLDS), help=",".join(MANIFOLDS))
    p.add_argument("--ops", type=names, default=list(OPS), help=",".join(OPS))
    p.add_argument("--backends", type=names, default=list(BACKENDS), help=",".join(BACKENDS))
    p.add_argument("--reps", type=int, default=3, help="timed runs per point (default 3)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per point before it is killed (default 600)")
    p.add_argument("--err-rows", type=int, default=256, help="rows for the float32 error (0: skip; default 256)")
    p.add_argument("--alloc-peak", action="store_true", help="dense/chunked on CPU: also record torch's allocator peak in one extra (untimed) run")
    p.add_argument("--out", default=str(HERE / "bench_kernels.jsonl"), help="JSON-lines file the results are appended to")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--gpu", action="store_true", help="same as --device cuda")
    p.add_argument("--cold", action="store_true", help="KeOps cold compile vs warm calls (fresh build folder)")
    p.add_argument("--only-target", action="store_true", help="only the issue's 10⁵ sphere forward+backward point")
    p.add_argument("--target-backends", type=names, default=["keops"], help="backends for --only-target (default keops)")
    p.add_argument("--_point", dest="point", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_cold", dest="cold_point", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.point is not None or a.cold_point is not None:
        sys.path.insert(0, str(ROOT))
        res = run_point(json.loads(a.point)) if a.point is not None else run_cold(json.loads(a.cold_point))
        sys.stdout.write(json.dumps(res) + "\n")
        sys.stdout.flush()
        os._exit(0)  # skip KeOps' exit-time pickle writes (refs/kernels.md §5)
    if a.gpu:
        a.device = "cuda"
    if a.sizes is None:
        a.sizes = [1000, 10_000] + ([100_000] if a.big else []) + ([1_000_000] if a.device.startswith("cuda") and a.big else [])
    elif a.big and 100_000 not in a.sizes:
        a.sizes.append(100_000)
    bad = [m for m in a.manifolds if m not in MANIFOLDS] + [o for o in a.ops if o not in OPS]
    bad += [b for b in a.backends + a.target_backends if b not in BACKENDS]
    if bad or a.reps < 1 or any(n < 2 * K for n in a.sizes):
        p.error(f"bad arguments {bad or ''}: need reps >= 1 and sizes >= {2 * K}")
    if 1_000_000 in a.sizes and not a.device.startswith("cuda"):
        print("note: N = 10⁶ is meant for a GPU (--device cuda); on a CPU expect timeouts", file=sys.stderr)
    if a.only_target:
        target(a)
    elif a.cold:
        cold(a)
    else:
        grid(a)


if __name__ == "__main__":
    main()
