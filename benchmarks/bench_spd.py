"""SPD metrics AIM / LEM / BWM: ``dist``, ``expmap``, ``logmap`` — ours vs geoopt vs geomstats.

For ``--pairs`` pairs of ``n``×``n`` SPD matrices (``A Aᵀ/n + 0.1 I``, ``A`` Gaussian, as in
refs/core.md §2.6), ``n`` in ``--sizes`` (default 3 and 16), float64 and float32, the script
times forward and forward + backward (``out.sum().backward()`` w.r.t. both inputs) of:

* ours: ``manifolds.SPD(n, metric)`` with ``metric`` = ``"aim"``, ``"lem"``, ``"bwm"``;
* geoopt 0.5.1: ``geoopt.SymmetricPositiveDefinite()`` (AIM: ``dist``, ``expmap``,
  ``logmap``) and ``SymmetricPositiveDefinite("LEM").dist`` (geoopt's LEM is dist-only: its
  ``expmap`` / ``logmap`` are AIM whatever the metric, refs/core.md §1.3);
* geomstats 2.8.0 with its **pytorch backend** (``SPDAffineMetric``, ``SPDLogEuclideanMetric``,
  ``SPDBuresWassersteinMetric``; ``dist``, ``exp(u, x)``, ``log(y, x)``, autograd for the
  backward), run in a **separate worker process** started with ``GEOMSTATS_BACKEND=pytorch``:
  importing that backend sets torch's default dtype to float64 (refs/core.md §2.1), which must
  not leak into our process. The worker is driven one call at a time, round-robin with ours
  and geoopt, so all three see the same machine load; it times each call itself, on the same
  clock, so the pipe round trip (printed in the header) is not counted.

Columns: median times (ms for the whole batch) over ``--repeats`` round-robin runs after
warm-up (``fwd_bwd`` of ``benchmarks/_timing.py``; :func:`median_times` is ``_timing.median_ms``
with a choice of clock, ``--clock cpu`` by default: CPU time of the process doing the work,
robust to other jobs on a shared machine with one thread; ``--clock wall`` for wall time);
ratios = other / ours (> 1: ours faster); **max err** =
maximum absolute entry error against an independent float64 reference in numpy (eigh-based
closed forms: ``x^{±½}`` congruences for AIM and BWM, Daleckii–Krein divided differences for
the LEM differentials, scipy-free) evaluated on the same float32-rounded inputs; **NaN grad**
columns: whether the gradient (w.r.t. both inputs, in the row's dtype) has a NaN/inf at

* ``x = I``: ``dist(I, y)``, ``logmap(I, y)``, ``expmap(I, u)`` with generic ``y``, ``u``;
* ``repeated``: ``x``, ``y``, ``u`` each with a repeated eigenvalue (``diag(2, 2, 5, …)`` in a random
  basis), plus ``y = 2x`` (all generalized eigenvalues equal);
* ``x = y`` (dist / logmap at coincident points) or ``u = 0`` (expmap).

"err" means the library raised. Tangents for ``expmap`` are ``½ logmap(x, y)`` of the same
metric (from the reference), so BWM's ``expmap`` stays inside its domain.

Usage::

    python benchmarks/bench_spd.py --pairs 10000 --repeats 7 --threads 1
    python benchmarks/bench_spd.py --quick                       # 1000 pairs, 3 repeats
    python benchmarks/bench_spd.py --metrics aim --ops dist --sizes 16   # the issue's target
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

from _timing import CLOCKS, GeomstatsWorker, fwd_bwd, median_ms, median_times  # benchmarks/_timing.py (run from this folder)

METRICS = ("aim", "lem", "bwm")
OPS = ("dist", "expmap", "logmap")
GS_CLASS = {"aim": "SPDAffineMetric", "lem": "SPDLogEuclideanMetric", "bwm": "SPDBuresWassersteinMetric"}
DTYPES = {"float64": torch.float64, "float32": torch.float32}


# ---------------------------------------------------------------------------- inputs
def _sym(x):
    return 0.5 * (x + x.mT)


def _rotation(n, g, batch=()):
    q, r = torch.linalg.qr(torch.randn(*batch, n, n, dtype=torch.float64, generator=g))
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)


def _with_spectrum(eigs, g):
    q = _rotation(len(eigs), g)
    return _sym((q * torch.tensor(eigs, dtype=torch.float64)) @ q.mT)


def make_case(pairs: int, n: int, seed: int = 0):
    """float64 inputs (already rounded through float32), tangents and the special points."""
    g = torch.Generator().manual_seed(seed + n)
    eye = torch.eye(n, dtype=torch.float64)

    def spd(k):
        m = torch.randn(k, n, n, dtype=torch.float64, generator=g)
        return _sym(m @ m.mT / n + 0.1 * eye)

    x, y = spd(pairs).float().double(), spd(pairs).float().double()
    case = {"n": n, "x": x, "y": y}
    for metric in METRICS:
        case[f"u_{metric}"] = torch.from_numpy(0.5 * REF[metric]["logmap"](x.numpy(), y.numpy())).float().double()
    rep = [2.0, 2.0] + [5.0 + k for k in range(n - 2)]
    x_rep, y_rep = _with_spectrum(rep, g), _with_spectrum([0.5 * e for e in rep], g)
    u_rep = _with_spectrum([0.3, 0.3] + [-0.2] * (n - 2), g)
    y1, u1 = spd(1)[0], 0.2 * _sym(torch.randn(n, n, dtype=torch.float64, generator=g))
    x1 = spd(1)[0]
    case["special"] = {
        # column -> list of (first, second) pairs; 'second' is y (dist/logmap) or u (expmap)
        "x = I": {"pt": [(eye, y1)], "tan": [(eye, u1)]},
        "repeated": {"pt": [(x_rep, y_rep), (x_rep, 2.0 * x_rep), (eye, y_rep)], "tan": [(x_rep, u_rep)]},
        "x = y / u = 0": {"pt": [(x1, x1.clone())], "tan": [(x1, torch.zeros_like(x1))]},
    }
    return case


# ---------------------------------------------------------------------------- float64 reference (numpy)
def _fun(x, f):
    lam, u = np.linalg.eigh(x)
    return (u * f(lam)[..., None, :]) @ np.swapaxes(u, -1, -2)


def _t(x):
    return np.swapaxes(x, -1, -2)


def _dd(lam, f, fp):
    """Loewner matrix of ``f`` (first divided differences), ``fp`` on near-ties."""
    li, lj = lam[..., :, None], lam[..., None, :]
    d = li - lj
    tie = np.abs(d) <= 1e-9 * np.maximum(np.abs(li), np.abs(lj))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (f(li) - f(lj)) / np.where(tie, 1.0, d)
    return np.where(tie, fp(0.5 * (li + lj)), q)


def _ref_aim_dist(x, y):
    si = _fun(x, lambda v: v**-0.5)
    lam = np.linalg.eigvalsh(si @ y @ si)
    return np.sqrt((np.log(lam) ** 2).sum(-1))


def _ref_aim_exp(x, u):
    s, si = _fun(x, np.sqrt), _fun(x, lambda v: v**-0.5)
    return s @ _fun(si @ u @ si, np.exp) @ s


def _ref_aim_log(x, y):
    s, si = _fun(x, np.sqrt), _fun(x, lambda v: v**-0.5)
    return s @ _fun(si @ y @ si, np.log) @ s


def _ref_lem_dist(x, y):
    return np.linalg.norm(_fun(x, np.log) - _fun(y, np.log), axis=(-2, -1))


def _ref_lem_exp(x, u):
    lam, q = np.linalg.eigh(x)
    dlog = q @ (_dd(lam, np.log, lambda v: 1 / v) * (_t(q) @ u @ q)) @ _t(q)
    return _fun(_fun(x, np.log) + dlog, np.exp)


def _ref_lem_log(x, y):
    lam, q = np.linalg.eigh(x)
    mu = np.log(lam)  # D exp at log x, in the same eigenbasis
    e = _fun(y, np.log) - (q * mu[..., None, :]) @ _t(q)
    return q @ (_dd(mu, np.exp, np.exp) * (_t(q) @ e @ q)) @ _t(q)


def _ref_bwm_dist(x, y):
    s = _fun(x, np.sqrt)
    lam = np.clip(np.linalg.eigvalsh(s @ y @ s), 0, None)
    tr = np.trace(x, axis1=-2, axis2=-1) + np.trace(y, axis1=-2, axis2=-1) - 2 * np.sqrt(lam).sum(-1)
    return np.sqrt(np.clip(tr, 0, None))


def _ref_bwm_exp(x, u):
    lam, q = np.linalg.eigh(x)
    lyap = q @ ((_t(q) @ u @ q) / (lam[..., :, None] + lam[..., None, :])) @ _t(q)
    return x + u + lyap @ x @ lyap


def _ref_bwm_log(x, y):
    s, si = _fun(x, np.sqrt), _fun(x, lambda v: v**-0.5)
    r = s @ _fun(s @ y @ s, np.sqrt) @ si  # (x y)^{1/2}
    return r + _t(r) - 2 * x


REF = {
    "aim": {"dist": _ref_aim_dist, "expmap": _ref_aim_exp, "logmap": _ref_aim_log},
    "lem": {"dist": _ref_lem_dist, "expmap": _ref_lem_exp, "logmap": _ref_lem_log},
    "bwm": {"dist": _ref_bwm_dist, "expmap": _ref_bwm_exp, "logmap": _ref_bwm_log},
}


def _second(case, metric, op):
    return case[f"u_{metric}"] if op == "expmap" else case["y"]


# ---------------------------------------------------------------------------- geomstats worker process
def _worker_main(threads: int) -> None:
    """Serve geomstats calls over stdin/stdout (JSON lines); run with GEOMSTATS_BACKEND=pytorch."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout = sys.stderr  # anything geomstats prints must not corrupt the protocol
    import logging

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    torch.set_num_threads(threads)
    import geomstats.geometry.spd_matrices as gsm

    import geomstats

    case, metrics, closures = None, {}, {}

    def metric(name):
        key = (name, case["n"])
        if key not in metrics:
            space = gsm.SPDMatrices(case["n"], equip=False)
            space.equip_with_metric(getattr(gsm, GS_CLASS[name]))
            metrics[key] = space.metric
        return metrics[key]

    def call(m, op, a, b):
        if op == "dist":
            return m.dist(a, b)
        if op == "expmap":
            return m.exp(b, a)
        return m.log(b, a)

    def nan_grad(m, op, pairs, dtype):
        try:
            bad = False
            for a, b in pairs:
                a = a.to(dtype).clone().requires_grad_(True)
                b = b.to(dtype).clone().requires_grad_(True)
                call(m, op, a, b).sum().backward()
                bad |= not bool(torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all())
            return "NaN" if bad else "ok"
        except Exception:
            return "err"

    out.write(json.dumps({"ready": True, "version": geomstats.__version__}) + "\n")
    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        reply = {"ok": True}
        try:
            if cmd == "quit":
                break
            if cmd == "noop":
                pass
            elif cmd == "load":
                case, closures = torch.load(req["path"]), {}
            elif cmd == "prep":
                m, dtype = metric(req["metric"]), DTYPES[req["dtype"]]
                a = case["x"].to(dtype)
                b = _second(case, req["metric"], req["op"]).to(dtype)
                op = req["op"]
                if req["mode"] == "fwd":

                    def run(m=m, op=op, a=a, b=b):
                        with torch.no_grad():
                            call(m, op, a, b)

                else:
                    la, lb = a.clone().requires_grad_(True), b.clone().requires_grad_(True)

                    def run(m=m, op=op, la=la, lb=lb):
                        la.grad = lb.grad = None
                        call(m, op, la, lb).sum().backward()

                closures[req["key"]] = run
                run()  # fail here, not inside the timing loop
            elif cmd == "run":
                tick = CLOCKS[req.get("clock", "cpu")]
                t0 = tick()
                closures[req["key"]]()
                reply["t"] = tick() - t0
            elif cmd == "values":
                m, dtype = metric(req["metric"]), DTYPES[req["dtype"]]
                with torch.no_grad():
                    v = call(m, req["op"], case["x"].to(dtype), _second(case, req["metric"], req["op"]).to(dtype))
                reply["out_dtype"] = str(v.dtype).replace("torch.", "")
                torch.save(v.double(), req["path"])
            elif cmd == "nan":
                m, dtype = metric(req["metric"]), DTYPES[req["dtype"]]
                kind = "tan" if req["op"] == "expmap" else "pt"
                reply["nan"] = {
                    col: nan_grad(m, req["op"], pts[kind], dtype) for col, pts in case["special"].items()
                }
        except Exception as exc:  # report, keep serving
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        out.write(json.dumps(reply) + "\n")


# ---------------------------------------------------------------------------- in-process libraries
def _ours(metric, op, n):
    from manifolds import SPD

    m = SPD(n, metric=metric)
    return getattr(m, op)


def _geoopt(metric, op):
    import geoopt

    if metric == "aim":
        return getattr(geoopt.SymmetricPositiveDefinite(), op)
    if metric == "lem" and op == "dist":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return geoopt.SymmetricPositiveDefinite("LEM").dist
    return None


def _nan_grad(fn, pairs, dtype):
    try:
        bad = False
        for a, b in pairs:
            a = a.to(dtype).clone().requires_grad_(True)
            b = b.to(dtype).clone().requires_grad_(True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn(a, b).sum().backward()
            bad |= not bool(torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all())
        return "NaN" if bad else "ok"
    except Exception:
        return "err"


def _err(value, ref):
    v = value.detach().double().numpy()
    return float(np.abs(v - ref).max())


def run(args):

    worker = None if args.no_geomstats else GeomstatsWorker(__file__, args.threads)
    tmp = tempfile.mkdtemp(prefix="bench_spd_")
    rows, notes = [], []
    if worker is not None:
        ipc = median_ms([lambda: worker(cmd="noop")], 200, warmup=20)[0]
        notes.append(f"geomstats {worker.version} (pytorch backend, worker process timing its own calls; pipe round trip {ipc:.3f} ms, not counted)")
    t_start = time.time()
    try:
        for n in args.sizes:
            case = make_case(args.pairs, n)
            path = os.path.join(tmp, f"case{n}.pt")
            torch.save(case, path)
            if worker is not None:
                assert worker(cmd="load", path=path)["ok"]
            for metric in args.metrics:
                for op in args.ops:
                    ref = REF[metric][op](case["x"].numpy(), _second(case, metric, op).numpy())
                    for dname in args.dtypes:
                        dtype = DTYPES[dname]
                        a, b = case["x"].to(dtype), _second(case, metric, op).to(dtype)
                        libs = {"ours": _ours(metric, op, n)}
                        g = _geoopt(metric, op)
                        if g is not None:
                            libs["geoopt"] = g
                        fwd, bwd, info = [], [], {}
                        for name, fn in libs.items():
                            with torch.no_grad(), warnings.catch_warnings():
                                warnings.simplefilter("ignore")
                                err = _err(fn(a, b), ref)
                            kind = "tan" if op == "expmap" else "pt"
                            nan = {col: _nan_grad(fn, pts[kind], dtype) for col, pts in case["special"].items()}
                            info[name] = (err, nan)
                            fwd.append(torch.no_grad()(lambda fn=fn: fn(a, b)))
                            bwd.append(fwd_bwd(fn, a, b))
                        if worker is not None:
                            key = f"{n}-{metric}-{op}-{dname}"
                            rf = worker(cmd="prep", key=key + "-f", metric=metric, op=op, dtype=dname, mode="fwd")
                            rb = worker(cmd="prep", key=key + "-b", metric=metric, op=op, dtype=dname, mode="bwd")
                            vpath = os.path.join(tmp, "v.pt")
                            rv = worker(cmd="values", metric=metric, op=op, dtype=dname, path=vpath)
                            rn = worker(cmd="nan", metric=metric, op=op, dtype=dname)
                            name = "geomstats" if rv.get("out_dtype", dname) == dname else f"geomstats (out {rv['out_dtype']})"
                            err = _err(torch.load(vpath), ref) if rv["ok"] else float("nan")
                            info[name] = (err, rn.get("nan", {}))
                            if rf["ok"]:
                                fwd.append(lambda key=key: worker(cmd="run", key=key + "-f", clock=args.clock)["t"])
                            else:
                                notes.append(f"geomstats {metric} {op} {dname} forward failed: {rf['error']}")
                                fwd.append(None)
                            if rb["ok"]:
                                bwd.append(lambda key=key: worker(cmd="run", key=key + "-b", clock=args.clock)["t"])
                            else:
                                notes.append(f"geomstats {metric} {op} {dname} backward failed: {rb['error']}")
                                bwd.append(None)
                        fns = [f for f in fwd + bwd if f is not None]
                        times = iter(median_times(fns, args.repeats, args.clock))
                        tf = [next(times) if f is not None else None for f in fwd]
                        tb = [next(times) if f is not None else None for f in bwd]
                        for i, (name, (err, nan)) in enumerate(info.items()):
                            rows.append((n, dname, metric, op, name, tf[i], tb[i], tf[0], tb[0], err, nan))
                        print(f"  done n={n} {metric} {op} {dname} ({time.time() - t_start:.0f} s)", file=sys.stderr)
    finally:
        if worker is not None:
            worker.close()
    return rows, notes


def _fmt(t, digits=1):
    return "n/a" if t is None else f"{t:.{digits}f}"


def _ratio(t, o):
    return "n/a" if t is None or o is None else f"{t / o:.2f}"


def print_tables(rows, notes, args):
    import geoopt

    print(
        f"SPD metrics, {args.pairs} pairs, median of {args.repeats} round-robin runs ({args.clock} time); "
        f"torch {torch.__version__} "
        f"({torch.get_num_threads()} thread(s), CPU), geoopt {geoopt.__version__}, numpy {np.__version__}"
    )
    for note in notes:
        print(f"; {note}")
    print()
    cols = ["x = I", "repeated", "x = y / u = 0"]
    for n in args.sizes:
        print(f"**n = {n}**")
        print()
        print(
            "| metric | op | dtype | library | fwd ms | fwd+bwd ms | fwd ratio | fwd+bwd ratio | max err | "
            "NaN grad: x = I | repeated eig. | x = y / u = 0 |"
        )
        print("|---|---|---|---|---:|---:|---:|---:|---:|:-:|:-:|:-:|")
        for r in rows:
            rn, dname, metric, op, lib, tf, tb, of, ob, err, nan = r
            if rn != n:
                continue
            flags = " | ".join(nan.get(c, "n/a") for c in cols)
            print(
                f"| {metric.upper()} | {op} | {dname} | {lib} | {_fmt(tf)} | {_fmt(tb)} | {_ratio(tf, of)} | "
                f"{_ratio(tb, ob)} | {err:.1e} | {flags} |"
            )
        print()
    print(
        "Ratios: other / ours (> 1: ours faster). max err: max |entry − reference| against an independent "
        "float64 numpy reference (eigh-based closed forms) on the same float32-rounded inputs. NaN grad: "
        "gradient w.r.t. both inputs at the special points, in the row's dtype (ok / NaN / err = raised)."
    )
    target = [r for r in rows if r[2] == "aim" and r[3] == "dist" and r[0] == 16 and r[4] != "ours"]
    if target:
        print()
        print("Issue target, AIM dist forward+backward at n = 16 (other / ours):")
        for r in target:
            print(f"* {r[1]} {r[4]}: {_ratio(r[6], r[8])}× (target: geoopt ≥ 2×, geomstats ≥ 4×)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=10_000, help="number of pairs (default 10000)")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (default 7)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="cpu (process time, default) or wall")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads, also in the worker (default 1)")
    p.add_argument("--quick", action="store_true", help="1000 pairs and 3 repeats (a smoke run)")
    p.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[3, 16], help="e.g. 3,16")
    p.add_argument("--metrics", type=lambda s: s.split(","), default=list(METRICS), help="aim,lem,bwm")
    p.add_argument("--ops", type=lambda s: s.split(","), default=list(OPS), help="dist,expmap,logmap")
    p.add_argument("--dtypes", type=lambda s: s.split(","), default=["float64", "float32"])
    p.add_argument("--no-geomstats", action="store_true", help="skip the geomstats worker")
    p.add_argument("--_geomstats-worker", dest="worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        _worker_main(a.threads)
        return
    if a.quick:
        a.pairs, a.repeats = 1000, 3
    bad = [m for m in a.metrics if m not in METRICS] + [o for o in a.ops if o not in OPS]
    bad += [d for d in a.dtypes if d not in DTYPES]
    if bad or a.pairs < 1 or a.repeats < 1 or a.threads < 1 or any(n < 2 for n in a.sizes):
        p.error(f"bad arguments {bad or ''}: need pairs, repeats, threads >= 1, sizes >= 2")
    torch.set_num_threads(a.threads)
    rows, notes = run(a)
    print_tables(rows, notes, a)


if __name__ == "__main__":
    main()
