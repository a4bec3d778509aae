"""SO(3) / SE(3) ``exp`` and ``log``: ours vs geomstats — speed at batch 1e5, accuracy near the angles 0 and π.

**Speed.** Batch ``--batch`` (default 100 000), float64 and float32, forward and forward +
backward (``out.sum().backward()``), medians of ``--repeats`` round-robin runs
(``benchmarks/_timing.py``), ratios other / ours:

* ours: ``manifolds.lie.so3_exp`` (rotation vector -> matrix), ``so3_log`` (matrix -> rotation
  vector), ``se3_exp`` (twist ``[ρ, ω]`` -> 4×4), ``se3_log`` (4×4 -> twist);
* geomstats 2.8.0, **pytorch backend, in a worker process** (importing that backend sets torch's
  default dtype to float64, refs/core.md §2.1, so it never shares a process with our code):
  ``SpecialOrthogonal(3, point_type="vector")``: ``matrix_from_rotation_vector`` /
  ``rotation_vector_from_matrix``; ``SpecialEuclidean(3, point_type="vector")``:
  ``matrix_from_vector(exp_from_identity([ω, ρ]))`` and ``log_from_identity([log R, t])``
  (geomstats orders SE(3) vectors rotation first; the reorder is outside the timed call but
  the matrix <-> vector conversions are inside). The worker times each call itself on the same
  clock (``--clock cpu``, process time, by default; ``wall`` otherwise), round-robin with ours.

Rotation angles of the speed inputs are uniform in ``[0, π)``, axes uniform, ``ρ`` Gaussian.

**Accuracy.** Angles ``θ = 10^-8 … 10^-3`` ("near 0") and ``π − 10^-8 … π − 10^-3`` ("near π"),
``--axes`` random axes each, in float32 and float64, against a **50-digit mpmath** reference
(Rodrigues and the SE(3) ``V`` matrix evaluated in mpmath from the exact float64 inputs). For
``log`` the input is the reference matrix rounded to the dtype, and the error is measured
against the generating vector ``ω``, up to the equivalent representation
``ω − 2π ω/θ`` (same rotation; relevant where rounding hides the sign of the axis at π):
relative ``‖ω̂ − ω‖/θ`` near 0, absolute ``‖ω̂ − ω‖`` near π; for ``se3_log`` also the
translation the estimated twist reproduces, ``‖V(ω̂) ρ̂ − t‖`` (mpmath). ``exp``: max absolute
entry error. geomstats gets float32 inputs with torch's default dtype set to float32 in its
worker for the call (its constants follow the default dtype; with its own float64 default a
float32 input raises "Float did not match Double").
Also compared: a pytorch3d-style ``exp`` (``θ² ≥ 1e-4`` clamp inside the Rodrigues
coefficients) and an e3nn-style ``log`` (``θ = acos(clamp((tr R − 1)/2))``, axis from
``R − Rᵀ``), both written here in a few lines. "NaN grad" columns: NaN/inf in the gradient at
exactly ``θ = 0`` and ``θ = π`` (float64 and float32 alike).

Usage::

    python benchmarks/bench_lie.py --batch 100000 --repeats 7 --threads 1
    python benchmarks/bench_lie.py --quick
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

OPS = ("so3_exp", "so3_log", "se3_exp", "se3_log")
EXPS = [10.0**-k for k in range(8, 2, -1)]  # 1e-8 ... 1e-3

DTYPES = {"float64": torch.float64, "float32": torch.float32}


# ---------------------------------------------------------------------------- geomstats (worker side)
def _gs_ops():
    from geomstats.geometry.special_euclidean import SpecialEuclidean
    from geomstats.geometry.special_orthogonal import SpecialOrthogonal

    so3 = SpecialOrthogonal(3, point_type="vector", equip=False)
    se3 = SpecialEuclidean(3, point_type="vector", equip=False)

    def se3_exp(xi):  # ours: [ρ, ω]; geomstats: [ω, ρ]
        return se3.matrix_from_vector(se3.exp_from_identity(torch.cat([xi[..., 3:], xi[..., :3]], -1)))

    def se3_log(T):
        v = torch.cat([so3.rotation_vector_from_matrix(T[..., :3, :3]), T[..., :3, 3]], -1)
        lg = se3.log_from_identity(v)
        return torch.cat([lg[..., 3:], lg[..., :3]], -1)

    return {
        "so3_exp": so3.matrix_from_rotation_vector,
        "so3_log": so3.rotation_vector_from_matrix,
        "se3_exp": se3_exp,
        "se3_log": se3_log,
    }


def _nan_grad(fn, x):
    try:
        x = x.clone().requires_grad_(True)
        fn(x).sum().backward()
        return "ok" if bool(torch.isfinite(x.grad).all()) else "NaN"
    except Exception:
        return "err"


def _worker_main(threads: int) -> None:
    out = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout = sys.stderr
    import logging

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    torch.set_num_threads(threads)
    import geomstats

    ops, data, closures = _gs_ops(), None, {}
    out.write(json.dumps({"ready": True, "version": geomstats.__version__}) + "\n")
    for line in sys.stdin:
        req = json.loads(line)
        reply = {"ok": True}
        try:
            cmd = req["cmd"]
            if cmd == "quit":
                break
            if "dtype" in req:
                # geomstats builds its constants in torch's default dtype, which its pytorch backend
                # sets to float64: a float32 input then raises "Float did not match Double". In this
                # isolated process, make the default the input's dtype for the call.
                torch.set_default_dtype(DTYPES[req["dtype"]])
            if cmd == "load":
                data, closures = torch.load(req["path"]), {}
            elif cmd == "prep":
                fn, x = ops[req["op"]], data[req["input"]].to(DTYPES[req["dtype"]])
                dt = DTYPES[req["dtype"]]
                if req["mode"] == "fwd":

                    def run(fn=fn, x=x, dt=dt):
                        torch.set_default_dtype(dt)
                        with torch.no_grad():
                            fn(x)

                else:
                    leaf = x.clone().requires_grad_(True)

                    def run(fn=fn, leaf=leaf, dt=dt):
                        torch.set_default_dtype(dt)
                        leaf.grad = None
                        fn(leaf).sum().backward()

                run()
                closures[req["key"]] = run
            elif cmd == "run":
                tick = CLOCKS[req.get("clock", "cpu")]
                t0 = tick()
                closures[req["key"]]()
                reply["t"] = tick() - t0
            elif cmd == "values":
                with torch.no_grad():
                    v = ops[req["op"]](data[req["input"]].to(DTYPES[req["dtype"]]))
                torch.save(v.double(), req["path"])
            elif cmd == "nan":
                x = data[req["input"]].to(DTYPES[req["dtype"]])
                reply["nan"] = _nan_grad(ops[req["op"]], x)
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        out.write(json.dumps(reply) + "\n")


# ---------------------------------------------------------------------------- other formulas (main side)
def _hat(w):
    x, y, z = w.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([torch.stack([o, -z, y], -1), torch.stack([z, o, -x], -1), torch.stack([-y, x, o], -1)], -2)


def pytorch3d_style_so3_exp(w, eps=1e-4):
    """``so3_exp_map`` of pytorch3d: the Rodrigues coefficients with ``θ² clamped at eps``."""
    theta = torch.sqrt(torch.clamp((w * w).sum(-1), min=eps))[..., None, None]
    W = _hat(w)
    eye = torch.eye(3, dtype=w.dtype)
    return eye + torch.sin(theta) / theta * W + (1 - torch.cos(theta)) / theta**2 * (W @ W)


def e3nn_style_so3_log(R):
    """``θ = acos(clamp((tr R − 1)/2, −1, 1))``, axis ``vee(R − Rᵀ)/(2 sin θ)`` (e3nn ``matrix_to_axis_angle``)."""
    tr = R.diagonal(dim1=-2, dim2=-1).sum(-1)
    theta = torch.acos(torch.clamp((tr - 1) / 2, -1, 1))
    v = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    return v / (2 * torch.sin(theta))[..., None] * theta[..., None]


# ---------------------------------------------------------------------------- mpmath reference
def _mp_refs(w, rho, digits=50):
    """50-digit Rodrigues R, SE(3) translation V ρ, for float64 inputs ``w, rho: (m, 3)``."""
    import mpmath as mp

    mp.mp.dps = digits
    Rs, ts = [], []
    for wi, ri in zip(w.tolist(), rho.tolist()):
        wv = [mp.mpf(c) for c in wi]
        th = mp.sqrt(sum(c * c for c in wv))
        W = mp.matrix([[0, -wv[2], wv[1]], [wv[2], 0, -wv[0]], [-wv[1], wv[0], 0]])
        W2 = W * W
        a, b, c = mp.sin(th) / th, (1 - mp.cos(th)) / th**2, (th - mp.sin(th)) / th**3
        R = mp.eye(3) + a * W + b * W2
        V = mp.eye(3) + b * W + c * W2
        t = V * mp.matrix([mp.mpf(c) for c in ri])
        Rs.append([[float(R[i, j]) for j in range(3)] for i in range(3)])
        ts.append([float(t[i]) for i in range(3)])
    return torch.tensor(Rs, dtype=torch.float64), torch.tensor(ts, dtype=torch.float64)


def accuracy_inputs(axes: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(axes, 3, dtype=torch.float64, generator=g)
    k = k / k.norm(dim=-1, keepdim=True)
    rho = torch.randn(axes, 3, dtype=torch.float64, generator=g)
    sets = {}
    for regime, angles in (("near 0", EXPS), ("near π", [np.pi - e for e in EXPS])):
        th = torch.tensor(angles, dtype=torch.float64).repeat_interleave(axes)
        w = k.repeat(len(angles), 1) * th[:, None]
        r = rho.repeat(len(angles), 1)
        R, t = _mp_refs(w, r)
        T = torch.zeros(len(th), 4, 4, dtype=torch.float64)
        T[:, :3, :3], T[:, :3, 3], T[:, 3, 3] = R, t, 1
        sets[regime] = {"w": w, "xi": torch.cat([r, w], -1), "R": R, "T": T}
    return sets


def _log_err(est, w, regime):
    """Error of a rotation vector, up to the equivalent ``ω − 2π ω/θ``; relative near 0."""
    th = w.norm(dim=-1, keepdim=True)
    alt = w - 2 * np.pi * w / th
    e = torch.minimum((est - w).norm(dim=-1), (est - alt).norm(dim=-1))
    return float((e / th[:, 0]).max()) if regime == "near 0" else float(e.max())


# ---------------------------------------------------------------------------- main
def run(args):
    from manifolds.lie import se3_exp, se3_log, so3_exp, so3_log

    ours = {"so3_exp": so3_exp, "so3_log": so3_log, "se3_exp": se3_exp, "se3_log": se3_log}
    g = torch.Generator().manual_seed(0)
    k = torch.randn(args.batch, 3, dtype=torch.float64, generator=g)
    w = k / k.norm(dim=-1, keepdim=True) * torch.rand(args.batch, 1, dtype=torch.float64, generator=g) * np.pi
    xi = torch.cat([torch.randn(args.batch, 3, dtype=torch.float64, generator=g), w], -1)
    speed = {"w": w, "xi": xi, "R": so3_exp(w), "T": se3_exp(xi)}
    in_key = {"so3_exp": "w", "so3_log": "R", "se3_exp": "xi", "se3_log": "T"}

    acc = accuracy_inputs(args.axes)
    special = {}  # exactly θ = 0 and θ = π, for the NaN-gradient columns
    e = torch.tensor([[0.0, 0.0, 0.0], [np.pi, 0.0, 0.0], [0.0, np.pi / np.sqrt(2), np.pi / np.sqrt(2)]])
    e = e.double()
    for name, ww in (("0", e[:1]), ("π", e[1:])):
        xx = torch.cat([torch.ones_like(ww), ww], -1)
        special[name] = {"w": ww, "xi": xx, "R": so3_exp(ww), "T": se3_exp(xx)}

    tmp = tempfile.mkdtemp(prefix="bench_lie_")
    worker = None if args.no_geomstats else GeomstatsWorker(__file__, args.threads)
    notes, speed_rows, acc_rows = [], [], []
    try:
        if worker is not None:
            ipc = median_ms([lambda: worker(cmd="noop")], 100)[0]
            notes.append(f"geomstats {worker.version} (pytorch backend, worker process timing its own calls; pipe round trip {ipc:.3f} ms, not counted)")
            payload = dict(speed)
            for regime, d in acc.items():
                payload.update({f"{regime}/{kk}": v for kk, v in d.items()})
            for s, d in special.items():
                payload.update({f"special {s}/{kk}": v for kk, v in d.items()})
            path = os.path.join(tmp, "data.pt")
            torch.save(payload, path)
            assert worker(cmd="load", path=path)["ok"]
        t0 = time.time()
        # ---- speed
        for op in OPS:
            for dname, dtype in DTYPES.items():
                x = speed[in_key[op]].to(dtype)
                fns = [torch.no_grad()(lambda op=op, x=x: ours[op](x)), fwd_bwd(ours[op], x)]
                gs_ok = [False, False]
                if worker is not None:
                    for i, mode in enumerate(("fwd", "bwd")):
                        key = f"{op}-{dname}-{mode}"
                        r = worker(cmd="prep", key=key, op=op, input=in_key[op], dtype=dname, mode=mode)
                        if r["ok"]:
                            gs_ok[i] = True
                            fns.append(lambda key=key: worker(cmd="run", key=key, clock=args.clock)["t"])
                        else:
                            notes.append(f"geomstats {op} {dname} {mode}: {r['error']}")
                times = iter(median_times(fns, args.repeats, args.clock))
                of, ob = next(times), next(times)
                gf = next(times) if gs_ok[0] else None
                gb = next(times) if gs_ok[1] else None
                speed_rows.append((op, dname, of, ob, gf, gb))
                print(f"  speed {op} {dname} ({time.time() - t0:.0f} s)", file=sys.stderr)
        # ---- accuracy and NaN gradients
        others = {"so3_exp": ("pytorch3d-style", pytorch3d_style_so3_exp), "so3_log": ("e3nn-style acos", e3nn_style_so3_log)}
        for op in OPS:
            inp = in_key[op]
            for dname, dtype in DTYPES.items():
                libs = {"ours": ours[op]}
                if op in others:
                    libs[others[op][0]] = others[op][1]
                res = {}
                for lib, fn in libs.items():
                    errs = {}
                    for regime, d in acc.items():
                        with torch.no_grad():
                            est = fn(d[inp].to(dtype)).double()
                        errs[regime] = _err(op, est, d, regime)
                    nans = {s: _nan_grad(fn, special[s][inp].to(dtype)) for s in special}
                    res[lib] = (errs, nans)
                if worker is not None:
                    errs, nans = {}, {}
                    for regime, d in acc.items():
                        vpath = os.path.join(tmp, "v.pt")
                        r = worker(cmd="values", op=op, input=f"{regime}/{inp}", dtype=dname, path=vpath)
                        errs[regime] = _err(op, torch.load(vpath), d, regime) if r["ok"] else None
                    for s in special:
                        r = worker(cmd="nan", op=op, input=f"special {s}/{inp}", dtype=dname)
                        nans[s] = r.get("nan", "err")
                    res["geomstats"] = (errs, nans)
                for lib, (errs, nans) in res.items():
                    acc_rows.append((op, dname, lib, errs, nans))
    finally:
        if worker is not None:
            worker.close()
    return speed_rows, acc_rows, notes


def _err(op, est, d, regime):
    if op == "so3_exp":
        return float((est - d["R"]).abs().max())
    if op == "se3_exp":
        return float((est[..., :3, :] - d["T"][..., :3, :]).abs().max())
    if op == "so3_log":
        return _log_err(est, d["w"], regime)
    # se3_log: rotation part as so3_log; translation: ‖V(ω̂) ρ̂ − t‖ in mpmath, i.e. the error of the
    # motion the estimated twist reproduces (near π, ω̂ may be the other, equally valid branch, and
    # then ρ̂ differs from the generating ρ while V(ω̂) ρ̂ still equals t).
    if not bool(torch.isfinite(est).all()):
        return float("nan")
    _, t_hat = _mp_refs(est[..., 3:], est[..., :3])
    return max(_log_err(est[..., 3:], d["w"], regime), float((t_hat - d["T"][..., :3, 3]).abs().max()))


def _f(t, digits=2):
    return "n/a" if t is None else f"{t:.{digits}f}"


def print_tables(speed_rows, acc_rows, notes, args):
    print(
        f"SO(3) / SE(3) exp and log, batch {args.batch}, median of {args.repeats} round-robin runs "
        f"({args.clock} time); "
        f"torch {torch.__version__} ({torch.get_num_threads()} thread(s), CPU)"
    )
    for note in notes:
        print(f"; {note}")
    print()
    print("| op | dtype | ours fwd ms | ours fwd+bwd ms | geomstats fwd ms | geomstats fwd+bwd ms | fwd ratio | fwd+bwd ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for op, dname, of, ob, gf, gb in speed_rows:
        rf = "n/a" if gf is None else f"{gf / of:.2f}"
        rb = "n/a" if gb is None else f"{gb / ob:.2f}"
        print(f"| {op} | {dname} | {_f(of)} | {_f(ob)} | {_f(gf)} | {_f(gb)} | {rf} | {rb} |")
    print()
    print("Ratios: geomstats / ours (> 1: ours faster).")
    print()
    print(
        f"Accuracy against 50-digit mpmath, θ = 1e-8 … 1e-3 and π − 1e-8 … π − 1e-3 ({args.axes} axes each). "
        "exp: max abs entry error; log: max ‖ω̂ − ω‖/θ near 0, max ‖ω̂ − ω‖ near π (se3_log: also max ‖V(ω̂) ρ̂ − t‖, in mpmath)."
    )
    print()
    print("| op | dtype | library | max err near 0 | max err near π | NaN grad at θ = 0 | NaN grad at θ = π |")
    print("|---|---|---|---:|---:|:-:|:-:|")
    def e(v):  # None: the library raised; nan: it returned NaN/inf somewhere
        return "err" if v is None else ("NaN" if v != v else f"{v:.1e}")

    for op, dname, lib, errs, nans in acc_rows:
        print(f"| {op} | {dname} | {lib} | {e(errs['near 0'])} | {e(errs['near π'])} | {nans['0']} | {nans['π']} |")
    print()
    print("err: the call raised; NaN: the result (or gradient) has NaN/inf entries.")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=100_000, help="batch size of the speed runs (default 100000)")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (default 7)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="cpu (process time, default) or wall")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads, also in the worker (default 1)")
    p.add_argument("--axes", type=int, default=64, help="random axes per test angle (default 64)")
    p.add_argument("--quick", action="store_true", help="batch 10000, 3 repeats, 16 axes")
    p.add_argument("--no-geomstats", action="store_true", help="skip the geomstats worker")
    p.add_argument("--_geomstats-worker", dest="worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        _worker_main(a.threads)
        return
    if a.quick:
        a.batch, a.repeats, a.axes = 10_000, 3, 16
    if a.batch < 1 or a.repeats < 1 or a.threads < 1 or a.axes < 1:
        p.error("need --batch, --repeats, --threads, --axes >= 1")
    torch.set_num_threads(a.threads)
    speed_rows, acc_rows, notes = run(a)
    print_tables(speed_rows, acc_rows, notes, a)


if __name__ == "__main__":
    main()
