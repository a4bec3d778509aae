"""Earth-science density estimation on S² (and the SO(3) mixture benchmark): test NLL beside the papers.

Protocol (Mathieu & Nickel 2020; De Bortoli et al. 2022 "RSGM"; Chen & Lipman 2024 "RFM"): for
each dataset (volcano, earthquake, flood, fire; :func:`manifold_rl.data.load_earth`) and seed, a
random 80/10/10 split (:func:`manifold_rl.data.earth_split`), a model fitted on the training set,
the checkpoint chosen on the validation NLL, and the **test NLL in nats** w.r.t. the area measure
of the unit sphere (uniform = log 4π ≈ 2.531). Published numbers: mean ± std over 5 seeds.

Methods:

* ``vmf`` — :class:`manifold_rl.baselines.VonMisesFisherMixture` by EM, the number of
  components chosen on the validation NLL among ``--vmf-components`` (default 10 … 640, doubling;
  160 was the best of 10 … 160 on earthquake, flood and fire at seed 0).
* ``rfm`` — Riemannian flow matching (:mod:`manifolds.flow_matching`): geodesic conditional path
  from the uniform base, an MLP ``[x, t] -> R³`` (SiLU) wrapped in ``ProjectToTangent``, AdamW,
  EMA 0.999 (with RFM's warm-up ``min(0.999, (1+n)/(10+n))``); NLL by
  :func:`manifolds.flow_matching.likelihood.log_likelihood` with the exact divergence, both
  **dopri5** (atol = rtol = 1e-5) and **1000 projected-Euler steps** (``projx_euler``, the setting
  of RFM's published numbers).
* ``rfm_vmf`` — the same flow from a **vMF-mixture base** (``vmf``'s model, K chosen on the
  validation NLL) with a data-dependent coupling ``x0 | x1 ~ vMF_k``, ``k ~ p(k | x1)``
  (:class:`VMFCoupling`); the EM fit is paid from the same quick budget. Not a published method:
  a variant that shows what a fitted base buys at a small budget.
* ``rsgm`` — Riemannian score-based diffusion (:mod:`manifolds.diffusion`): Brownian motion
  (``BrownianSDE``, T = 5, t_min = 1e-3), denoising score matching with heat-kernel targets
  (``dsm_loss``), score net ``proju(x, MLP(x, t)) / √t``; NLL by the probability-flow ODE
  (``probability_flow_log_likelihood``, dopri5 and 1000 projected-Euler steps).

Budgets:

* ``--budget quick`` (default): each (dataset, seed, method) trains for at most
  ``--budget-seconds`` (default 300) seconds of training — process CPU time on a CPU (so other jobs
  sharing the machine do not shrink the budget; with ``--threads 1`` this is single-core time),
  wall clock on a GPU — with a 256×4 MLP, batch 512; validation NLL (dopri5, on at most
  ``--val-max`` = 256 random validation points) about every 10 % of the budget.
* ``--budget paper``: a 512×5 MLP, batch 512, up to ``--paper-iters`` (600k) iterations,
  validation every 5000 iterations (RSGM's / Lou et al.'s earth settings). On a machine without a
  GPU it prints the projected training time from the measured step time before starting.
* ``--width``, ``--depth``, ``--batch``, ``--lr``, ``--fourier`` (random Fourier features of ``x``
  in the MLP input), ``--fourier-scale``, ``--schedule cosine`` (learning rate decayed to 0 over
  the budget: CPU time for the quick one, iterations for the paper one), ``--time-sampling
  log_uniform`` (RSGM's training times; the likelihood weighting) override the chosen
  budget's settings; the results are stored and tabled under the label ``<budget>[k=v,...]``
  (e.g. ``quick[lr=0.002]``), so variants compared on the validation NLL never mix.

Results are appended to ``--out`` (JSON lines, one per finished (dataset, seed, method)); a rerun
skips the finished ones (resume). A table of mean ± std beside the published rows (data README)
is printed at the end (``--table-only`` prints it from the file without training).

``--so3``: the SO(3) benchmark of RSGM — mixtures of K = 16, 32, 64 wrapped normals
(:class:`manifold_rl.data.synthetic.SO3WrappedNormalMixture`, means Haar, precisions
Gamma(100)); training samples drawn on the fly, test log-likelihood (higher is better, w.r.t. the
volume 8π² of :class:`manifolds.SO3`) on ``--so3-test`` fresh samples, beside the oracle
log-likelihood of the true mixture and RSGM's published values. Models: ``rfm`` / ``rsgm`` on
SO(3) with the same modules (9-D ambient MLP).

Usage::

    python benchmarks/bench_earth.py --datasets volcano --seeds 0 --budget-seconds 60   # smoke
    python benchmarks/bench_earth.py --methods vmf                                      # the EM baseline, all datasets, 5 seeds
    python benchmarks/bench_earth.py --budget paper --device cuda                       # the full run
    python benchmarks/bench_earth.py --so3 --methods oracle rfm --budget-seconds 120
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manifolds import SO3, Sphere  # noqa: E402
from manifolds.flow_matching import GeodesicProbPath, ProjectToTangent, riemannian_fm_loss  # noqa: E402
from manifold_rl.baselines import VonMisesFisherMixture  # noqa: E402
from manifold_rl.data.earth import EARTH_DATASETS, earth_split, load_earth  # noqa: E402
from manifold_rl.data.synthetic import SO3WrappedNormalMixture  # noqa: E402

DATASETS = ("volcano", "earthquake", "flood", "fire")

#: Published test NLL (mean, std), from ../shared/data/earth/README.md.
PUBLISHED = {
    "Mixture of Kent": {"volcano": (-0.80, 0.47), "earthquake": (0.33, 0.05), "flood": (0.73, 0.07), "fire": (-1.18, 0.06)},
    "RCNF (Mathieu & Nickel 2020)": {"volcano": (-6.05, 0.61), "earthquake": (0.14, 0.23), "flood": (1.11, 0.19), "fire": (-0.80, 0.54)},
    "Moser Flow (Rozen et al. 2021)": {"volcano": (-4.21, 0.17), "earthquake": (-0.16, 0.06), "flood": (0.57, 0.10), "fire": (-1.28, 0.05)},
    "RSGM (De Bortoli et al. 2022)": {"volcano": (-4.92, 0.25), "earthquake": (-0.19, 0.07), "flood": (0.45, 0.17), "fire": (-1.33, 0.06)},
    "RFM (Chen & Lipman 2024)": {"volcano": (-7.93, 1.67), "earthquake": (-0.28, 0.08), "flood": (0.42, 0.05), "fire": (-1.86, 0.11)},
}
#: RSGM's SO(3) mixture log-likelihoods (higher is better), README of oxcsml/riemannian-score-sde.
PUBLISHED_SO3 = {16: (0.89, 0.03), 32: (0.20, 0.03), 64: (-0.49, 0.02)}

BUDGETS = {
    "quick": dict(width=256, depth=4, batch=512, lr=5e-4, max_iters=10**9, val_every=None, fourier=0, fourier_scale=1.0, schedule="constant", time_sampling="uniform"),
    "paper": dict(width=512, depth=5, batch=512, lr=2e-4, max_iters=600_000, val_every=5000, fourier=0, fourier_scale=1.0, schedule="constant", time_sampling="uniform"),
}


# ---------------------------------------------------------------------------- models
class TimeMLP(torch.nn.Module):
    """``(x, t) -> R^{event}``: an MLP on ``[flatten(x), t]`` with SiLU activations.

    ``fourier = m > 0`` adds random Fourier features ``sin(x B), cos(x B)`` of the ambient
    coordinates to the input, ``B`` a fixed ``(d, m)`` Gaussian matrix with standard deviation
    ``fourier_scale`` (Tancik et al., "Fourier Features Let Networks Learn High Frequency
    Functions in Low Dimensional Domains", NeurIPS 2020): against the spectral bias of plain MLPs
    on sharp densities."""

    def __init__(self, event_shape, width: int, depth: int, fourier: int = 0, fourier_scale: float = 1.0, seed: int = 0):
        super().__init__()
        self.event_shape = tuple(event_shape)
        d = math.prod(self.event_shape)
        B = torch.randn(d, int(fourier), generator=torch.Generator().manual_seed(10_007 + seed)) * fourier_scale
        self.register_buffer("fourier_B", B)
        layers, i = [], d + 1 + 2 * int(fourier)
        for _ in range(depth):
            layers += [torch.nn.Linear(i, width), torch.nn.SiLU()]
            i = width
        layers.append(torch.nn.Linear(i, d))
        self.net = torch.nn.Sequential(*layers)

    def forward(self, x, t, **extras):
        b = x.shape[: x.dim() - len(self.event_shape)]
        xf = x.reshape(*b, -1)
        parts = [xf, t.reshape(*b, 1).to(x.dtype)]
        if self.fourier_B.shape[1]:
            z = xf @ self.fourier_B.to(x.dtype)
            parts += [torch.sin(z), torch.cos(z)]
        return self.net(torch.cat(parts, dim=-1)).reshape(x.shape)


class ScoreNet(torch.nn.Module):
    """Score model ``proju(x, MLP(x, t)) / √t`` (output scaled by 1/σ, as Lou et al. 2023)."""

    def __init__(self, manifold, event_shape, width, depth, **mlp):
        super().__init__()
        self.field = ProjectToTangent(TimeMLP(event_shape, width, depth, **mlp), manifold)
        self.manifold = manifold

    def forward(self, x, t, **extras):
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[: x.dim() - len(self.manifold.event_shape)])
        s = t.sqrt().reshape(t.shape + (1,) * len(self.manifold.event_shape))
        return self.field(x, t) / s


class EMA:
    """Exponential moving average of parameters, decay ``min(decay, (1+n)/(10+n))`` (riemannian-fm)."""

    def __init__(self, model, decay=0.999):
        self.decay, self.n = decay, 0
        self.shadow = copy.deepcopy(model).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        d = min(self.decay, (1 + self.n) / (10 + self.n))
        self.n += 1
        for s, p in zip(self.shadow.parameters(), model.parameters()):
            s.mul_(d).add_(p.detach(), alpha=1 - d)


# ---------------------------------------------------------------------------- likelihoods
def _modules():
    try:
        from manifolds.flow_matching.likelihood import log_likelihood
    except ImportError as e:  # pragma: no cover - depends on the state of the repository
        raise SystemExit(f"manifolds.flow_matching.likelihood is missing ({e}); the rfm column needs it") from e
    return log_likelihood


def _diffusion():
    try:
        from manifolds.diffusion import BrownianSDE, dsm_loss, probability_flow_log_likelihood
    except ImportError as e:  # pragma: no cover
        raise SystemExit(f"manifolds.diffusion is missing ({e}); the rsgm column needs it") from e
    return BrownianSDE, dsm_loss, probability_flow_log_likelihood


def batched(fn, x, chunk):
    return torch.cat([fn(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)])


EULER_STEPS = 1000  # set by --euler-steps; the records name the column euler<steps>
NLL_METHODS = ("dopri5", "euler")  # set by --nll
VAL_MAX = 256  # validation points used for checkpoint selection during training (set by --val-max)


def nll_fns(method, manifold, model, sde=None, coupling=None):
    """``{"dopri5": x -> log p, "euler<N>": x -> log p}`` for a trained model (N = ``EULER_STEPS``);
    ``coupling``: an RFM base other than the uniform one (``coupling.log_prob``)."""
    if method == "rfm":
        log_likelihood = _modules()
        base = None if coupling is None else coupling.log_prob

        def dopri(x):
            return log_likelihood(manifold, model, x, method="dopri5", atol=1e-5, rtol=1e-5, base_log_prob=base)[0]

        def euler(x):
            return log_likelihood(manifold, model, x, method="projx_euler", n_steps=EULER_STEPS, base_log_prob=base)[0]

    else:
        _, _, pf_ll = _diffusion()

        def dopri(x):
            return pf_ll(manifold, model, x, T=sde.T, t_min=sde.t_min, method="dopri5", atol=1e-5, rtol=1e-5)[0]

        def euler(x):
            return pf_ll(manifold, model, x, T=sde.T, t_min=sde.t_min, method="projx_euler", n_steps=EULER_STEPS)[0]

    fns = {"dopri5": ("dopri5", dopri), "euler": (f"euler{EULER_STEPS}", euler)}
    return dict(fns[m] for m in NLL_METHODS)


# ---------------------------------------------------------------------------- training
def train_generative(method, manifold, sample_train, val_x, cfg, budget_seconds, device, seed, log, coupling=None):
    """Train RFM or RSGM; returns (best EMA model, info dict). ``sample_train(n, g)`` draws a batch;
    ``coupling`` (RFM only, e.g. :class:`VMFCoupling`): ``x0`` from ``coupling.sample_x0(x1, g)``
    and the base density ``coupling.log_prob`` instead of the manifold's uniform base."""
    torch.manual_seed(seed)
    g = torch.Generator(device="cpu").manual_seed(seed)
    ev = manifold.event_shape
    mlp = dict(fourier=cfg["fourier"], fourier_scale=cfg["fourier_scale"], seed=seed)
    if method == "rfm":
        model = ProjectToTangent(TimeMLP(ev, cfg["width"], cfg["depth"], **mlp), manifold).to(device)
        path = GeodesicProbPath(manifold)
        sde = None
    else:
        BrownianSDE, dsm_loss, _ = _diffusion()
        model = ScoreNet(manifold, ev, cfg["width"], cfg["depth"], **mlp).to(device)
        sde = BrownianSDE(manifold, T=5.0, t_min=1e-3, time_sampling=cfg["time_sampling"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=0.0)
    if cfg["schedule"] not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {cfg['schedule']!r}")
    ema = EMA(model)
    n_params = sum(p.numel() for p in model.parameters())
    B = cfg["batch"]
    val_every = cfg["val_every"]
    val_fn = nll_fns(method, manifold, ema.shadow, sde, coupling)["dopri5"]
    if val_x.shape[0] > VAL_MAX:  # checkpoint selection on a fixed random subset (evaluation cost)
        val_x = val_x[torch.randperm(val_x.shape[0], generator=torch.Generator().manual_seed(seed))[:VAL_MAX]]
    best = (math.inf, None, 0)
    # The quick budget is in CPU seconds of this process on a CPU (robust to other jobs sharing the
    # machine; with --threads 1 it equals the single-core time), wall-clock seconds on a GPU.
    clock = time.process_time if device == "cpu" else time.perf_counter
    t_start = clock()
    step, val_time, next_val_t = 0, 0.0, 0.1 * budget_seconds
    history = []
    projected_printed = False
    while step < cfg["max_iters"]:
        x1 = sample_train(B, g).to(device)
        if method == "rfm":
            if coupling is None:
                x0 = manifold.random_base(*x1.shape, dtype=x1.dtype, generator=g).to(device)
            else:
                x0 = coupling.sample_x0(x1, g)
            t = torch.rand(B, dtype=x1.dtype, generator=g).to(device)
            s = path.sample(x0, x1, t)
            loss = riemannian_fm_loss(manifold, s.x_t, model(s.x_t, s.t), s.dx_t)
        else:
            loss = dsm_loss(manifold, model, x1, sde, generator=g if device == "cpu" else None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg["schedule"] == "cosine":  # cosine decay to 0 over the budget (Loshchilov & Hutter 2017, no restarts)
            done = step / cfg["max_iters"] if math.isinf(budget_seconds) else (clock() - t_start - val_time) / budget_seconds
            for group in opt.param_groups:
                group["lr"] = cfg["lr"] * 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))
        opt.step()
        ema.update(model)
        step += 1
        elapsed = clock() - t_start
        if step == 50 and not projected_printed and val_every is not None:
            per = (elapsed - val_time) / 50
            unit = "CPU" if clock is time.process_time else "wall"
            log(f"  measured {per * 1e3:.1f} ms/step ({unit} time) on {device}: {cfg['max_iters']} steps -> projected {per * cfg['max_iters'] / 3600:.1f} h"
                f" of training ({per * 600_000 / 3600:.1f} h for the papers' 600k)")
            projected_printed = True
        train_elapsed = elapsed - val_time
        do_val = (val_every is not None and step % val_every == 0) or (val_every is None and train_elapsed >= next_val_t)
        out_of_time = train_elapsed >= budget_seconds
        if do_val or out_of_time or step >= cfg["max_iters"]:
            tv = clock()
            with torch.no_grad():
                v = float(-val_fn(val_x.to(device)).mean())
            val_time += clock() - tv
            next_val_t += 0.1 * budget_seconds
            history.append((step, round(train_elapsed, 1), float(loss.detach()), v))
            log(f"  step {step:7d}  train {train_elapsed:7.1f}s  loss {float(loss.detach()):.4f}  val NLL {v:.4f}")
            if v < best[0]:
                best = (v, copy.deepcopy(ema.shadow.state_dict()), step)
        if out_of_time:
            break
    ema.shadow.load_state_dict(best[1])
    info = dict(steps=step, best_step=best[2], val_nll=best[0], n_params=n_params, train_seconds=round(clock() - t_start - val_time, 1),
                clock="process CPU time" if clock is time.process_time else "wall clock",
                val_seconds=round(val_time, 1), history=history)
    return ema.shadow, sde, info


# ---------------------------------------------------------------------------- runs
def fit_vmf(train, val, components, seed):
    """vMF mixtures by EM for each K in ``components``; returns (best model by validation NLL, its K, val NLL, scores)."""
    best = None
    scores = {}
    for K in components:
        if K > train.shape[0]:
            continue
        m = VonMisesFisherMixture(K, seed=seed).fit(train)
        v = float(-m.log_prob(val).mean())
        scores[K] = round(v, 4)
        if best is None or v < best[0]:
            best = (v, K, m)
    v, K, m = best
    return m, K, v, scores


def run_vmf(train, val, test, components, seed):
    m, K, v, scores = fit_vmf(train, val, components, seed)
    return dict(test_nll=float(-m.log_prob(test).mean()), val_nll=v, n_components=K, val_by_components=scores)


class VMFCoupling:
    """Base and coupling of ``rfm_vmf``: a fitted vMF mixture as the base density, and
    ``x0 | x1 ~ vMF_k`` with ``k ~ p(k | x1)`` (the mixture's responsibilities).

    At an EM fixed point (``α_k = mean_i r_ik`` over the training data) the ``x0``-marginal of this
    coupling is the mixture itself, so conditional flow matching on it learns a flow from the
    mixture to the data (any coupling with the right marginals gives a valid marginal path:
    Tong et al., TMLR 2024, §3; Albergo et al., "Stochastic interpolants with data-dependent
    couplings", ICML 2024); its paths stay mostly within a component, short and rarely crossing.
    The likelihood integrates the learned ODE back to ``x0`` and adds the mixture's log-density."""

    def __init__(self, vmf):
        self.vmf = vmf

    def sample_x0(self, x1, g):
        r = self.vmf.responsibilities(x1.detach().cpu().double())
        k = torch.multinomial(r, 1, generator=g).squeeze(1)
        return self.vmf.sample(x1.shape[0], generator=g, components=k).to(x1.dtype).to(x1.device)

    def log_prob(self, x0):
        x = torch.nn.functional.normalize(x0.detach().double(), dim=-1)  # the ODE end point, re-normalised
        return self.vmf.log_prob(x).to(x0.dtype)


def run_earth(args, done, out, log):
    S2 = Sphere(2)
    cfg = dict(BUDGETS[args.budget])
    data = {ds: load_earth(ds, root=args.data) for ds in args.datasets}
    for seed in args.seeds:  # seed-major: an interrupted run leaves whole seeds over all datasets
        for ds in args.datasets:
            train, val, test = earth_split(data[ds], seed)
            for method in args.methods:
                key = (ds, seed, method, args.budget_label)
                if key in done:
                    log(f"skip {key} (in {out})")
                    continue
                log(f"== {ds} seed {seed} {method} ({args.budget_label}) ==")
                t0 = time.perf_counter()
                rec = dict(dataset=ds, seed=seed, method=method, budget=args.budget_label, n_train=train.shape[0], n_val=val.shape[0], n_test=test.shape[0])
                if method == "vmf":
                    rec.update(run_vmf(train, val, test, args.vmf_components, seed))
                else:
                    dt = torch.float32
                    tr = train.to(dt)

                    def sample_train(n, g, tr=tr):
                        return tr[torch.randint(tr.shape[0], (n,), generator=g)]

                    coupling, budget = None, args.budget_seconds
                    if method == "rfm_vmf":  # the EM fit (K chosen on validation) is paid from the same budget
                        c0 = time.process_time()
                        vm, K, _, _ = fit_vmf(train, val, args.vmf_components, seed)
                        fit_cpu = time.process_time() - c0
                        coupling, budget = VMFCoupling(vm), budget - fit_cpu
                        rec.update(base_components=K, base_fit_seconds=round(fit_cpu, 1))
                        log(f"  vMF base: K = {K}, fitted in {fit_cpu:.1f} CPU-s")
                    kind = "rfm" if method == "rfm_vmf" else method
                    model, sde, info = train_generative(kind, S2, sample_train, val.to(dt), cfg, budget, args.device, seed, log, coupling)
                    rec.update(info)
                    for name, fn in nll_fns(kind, S2, model, sde, coupling).items():
                        log(f"  test NLL by {name} on {test.shape[0]} points ...")
                        tt = time.perf_counter()
                        with torch.no_grad():
                            lp = batched(fn, test.to(dt).to(args.device), 2048)
                        rec[f"test_nll_{name}"] = float(-lp.mean())
                        rec[f"eval_seconds_{name}"] = round(time.perf_counter() - tt, 1)
                    rec["test_nll"] = rec.get(f"test_nll_euler{EULER_STEPS}", rec["test_nll_dopri5"])
                rec["seconds"] = round(time.perf_counter() - t0, 1)
                rec["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
                with open(out, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                log(f"   -> test NLL {rec['test_nll']:.4f}" + (f" (dopri5 {rec['test_nll_dopri5']:.4f})" if "test_nll_dopri5" in rec else ""))


def run_so3(args, done, out, log):
    M = SO3()
    cfg = dict(BUDGETS[args.budget])
    for K in args.so3_components:
        for seed in args.seeds:
            mix = SO3WrappedNormalMixture(K, seed=seed)
            test = mix.sample(args.so3_test, generator=torch.Generator().manual_seed(10_000 + seed))
            val = mix.sample(min(1000, args.so3_test), generator=torch.Generator().manual_seed(20_000 + seed))
            for method in args.methods:
                key = (f"so3_K{K}", seed, method, args.budget_label)
                if key in done:
                    log(f"skip {key}")
                    continue
                log(f"== SO(3) K={K} seed {seed} {method} ==")
                t0 = time.perf_counter()
                rec = dict(dataset=f"so3_K{K}", seed=seed, method=method, budget=args.budget_label, n_test=args.so3_test)
                if method == "oracle":
                    rec["test_ll"] = float(mix.log_prob(test).mean())
                elif method in ("rfm", "rsgm"):
                    dt = torch.float32

                    def sample_train(n, g):
                        return mix.sample(n, generator=g).to(dt)

                    model, sde, info = train_generative(method, M, sample_train, val.to(dt), cfg, args.budget_seconds, args.device, seed, log)
                    rec.update(info)
                    for name, fn in nll_fns(method, M, model, sde).items():
                        with torch.no_grad():
                            rec[f"test_ll_{name}"] = float(batched(fn, test.to(dt).to(args.device), 2048).mean())
                    rec["test_ll"] = rec["test_ll_dopri5"]
                else:
                    log(f"  method {method} not available in --so3 mode (oracle, rfm, rsgm)")
                    continue
                rec["seconds"] = round(time.perf_counter() - t0, 1)
                with open(out, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                log(f"   -> test log-likelihood {rec['test_ll']:.4f}")


# ---------------------------------------------------------------------------- table
def _fmt(vals):
    if not vals:
        return "—"
    m = statistics.fmean(vals)
    s = statistics.stdev(vals) if len(vals) > 1 else float("nan")
    return f"{m:+.2f}±{s:.2f} (n={len(vals)})" if len(vals) > 1 else f"{m:+.2f} (n=1)"


def print_table(records, budget, so3=False):
    if so3:
        print("\nSO(3) mixture: test log-likelihood (higher is better), w.r.t. the volume 8π²")
        rows = {}
        for r in records:
            if r["dataset"].startswith("so3_") and r["budget"] == budget:
                rows.setdefault(r["method"], {}).setdefault(r["dataset"], []).append(r["test_ll"])
        cols = [f"so3_K{k}" for k in (16, 32, 64)]
        print(f"{'method':34s}" + "".join(f"{c:>22s}" for c in cols))
        for meth, d in rows.items():
            print(f"{'ours: ' + meth:34s}" + "".join(f"{_fmt(d.get(c, [])):>22s}" for c in cols))
        print(f"{'RSGM (published)':34s}" + "".join(f"{PUBLISHED_SO3[k][0]:+.2f}±{PUBLISHED_SO3[k][1]:.2f}".rjust(22) for k in (16, 32, 64)))
        return
    print(f"\nEarth test NLL in nats (lower is better), budget {budget!r}; ours: mean±std over seeds")
    print(f"{'method':34s}" + "".join(f"{d:>22s}" for d in DATASETS))
    cols = {}
    vmf_seen = set()  # the vMF baseline does not depend on the budget: shown once per (dataset, seed)
    for r in records:
        if r["dataset"] not in DATASETS or (r.get("budget") != budget and r["method"] != "vmf"):
            continue
        if r["method"] == "vmf":
            if (r["dataset"], r["seed"]) not in vmf_seen:
                vmf_seen.add((r["dataset"], r["seed"]))
                cols.setdefault("ours: vMF mixture (EM)", {}).setdefault(r["dataset"], []).append(r["test_nll"])
        else:
            for name in sorted(k[len("test_nll_"):] for k in r if k.startswith("test_nll_")):
                cols.setdefault(f"ours: {r['method']} [{name}]", {}).setdefault(r["dataset"], []).append(r[f"test_nll_{name}"])
    for meth, d in cols.items():
        print(f"{meth:34s}" + "".join(f"{_fmt(d.get(ds, [])):>22s}" for ds in DATASETS))
    for meth, d in PUBLISHED.items():
        print(f"{meth:34s}" + "".join(f"{d[ds][0]:+.2f}±{d[ds][1]:.2f}".rjust(22) for ds in DATASETS))
    print("(published: ../shared/data/earth/README.md; RFM's come from 1000 projected Euler steps; Flood RFM not re-checked)")


# ---------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=sorted(EARTH_DATASETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--methods", nargs="+", default=None,
                   help="earth: vmf rfm rsgm (default all) and rfm_vmf (RFM from the vMF-mixture base, responsibility coupling); --so3: oracle rfm rsgm")
    p.add_argument("--budget", choices=sorted(BUDGETS), default="quick")
    p.add_argument("--budget-seconds", type=float, default=300.0, help="quick budget: training seconds per (dataset, seed, method): process CPU time on a CPU, wall clock on a GPU")
    p.add_argument("--paper-iters", type=int, default=600_000)
    p.add_argument("--width", type=int, default=None, help="override the budget's MLP width")
    p.add_argument("--depth", type=int, default=None, help="override the budget's number of hidden layers")
    p.add_argument("--batch", type=int, default=None, help="override the budget's batch size")
    p.add_argument("--lr", type=float, default=None, help="override the budget's AdamW learning rate")
    p.add_argument("--fourier", type=int, default=None, help="random Fourier features of x in the MLP input (count; default 0)")
    p.add_argument("--fourier-scale", type=float, default=None, help="standard deviation of the Fourier frequencies (default 1)")
    p.add_argument("--schedule", choices=["constant", "cosine"], default=None,
                   help="learning rate: constant (default) or cosine decay to 0 over the budget (CPU time of the quick budget, iterations of the paper one)")
    p.add_argument("--time-sampling", choices=["uniform", "log_uniform"], default=None,
                   help="rsgm: training times uniform on [t_min, T] (default) or log-uniform (with the σ²-weighted DSM loss: the likelihood weighting, see BrownianSDE)")
    p.add_argument("--vmf-components", nargs="+", type=int, default=[10, 20, 40, 80, 160, 320, 640])
    p.add_argument("--data", default=None, help="folder of the earth CSVs (default: see manifold_rl.data.earth)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--out", default=None, help="results file (JSON lines); default benchmarks/results_earth.jsonl (or _so3)")
    p.add_argument("--so3", action="store_true", help="the SO(3) wrapped-normal mixture benchmark instead of the earth data")
    p.add_argument("--so3-components", nargs="+", type=int, default=[16, 32, 64])
    p.add_argument("--so3-test", type=int, default=10_000)
    p.add_argument("--nll", nargs="+", choices=["dopri5", "euler"], default=["dopri5", "euler"],
                   help="test-NLL integrators: dopri5 (atol = rtol = 1e-5) and/or projected Euler (--euler-steps); validation always uses dopri5")
    p.add_argument("--val-max", type=int, default=256, help="validation points (random subset) for checkpoint selection during training")
    p.add_argument("--euler-steps", type=int, default=1000, help="projected-Euler steps of the second NLL (RFM's: 1000)")
    p.add_argument("--table-only", action="store_true")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.methods is None:
        args.methods = ["oracle", "rfm", "rsgm"] if args.so3 else ["vmf", "rfm", "rsgm"]
    allowed = ("oracle", "rfm", "rsgm") if args.so3 else ("vmf", "rfm", "rsgm", "rfm_vmf")
    if set(args.methods) - set(allowed):
        p.error(f"--methods must be among {allowed}{' with --so3' if args.so3 else ''}, got {args.methods}")
    if args.budget_seconds <= 0:
        p.error("--budget-seconds must be positive")
    if args.budget == "paper":
        BUDGETS["paper"]["max_iters"] = args.paper_iters
        args.budget_seconds = math.inf
    if args.threads:
        torch.set_num_threads(args.threads)
    # overrides of the budget's model / optimiser: results are stored under "<budget>[k=v,...]"
    over = {k: getattr(args, k) for k in ("width", "depth", "batch", "lr", "fourier", "fourier_scale") if getattr(args, k) is not None}
    if any(v <= 0 for v in over.values()):
        p.error(f"--width/--depth/--batch/--lr/--fourier/--fourier-scale must be positive, got {over}")
    for k in ("schedule", "time_sampling"):
        if getattr(args, k) is not None:
            over[k] = getattr(args, k)
    BUDGETS[args.budget].update(over)
    args.budget_label = args.budget + ("[" + ",".join(f"{k}={v:g}" if not isinstance(v, str) else f"{k}={v}" for k, v in over.items()) + "]" if over else "")
    if args.euler_steps < 1:
        p.error("--euler-steps must be >= 1")
    global EULER_STEPS
    EULER_STEPS = args.euler_steps
    global VAL_MAX, NLL_METHODS
    VAL_MAX = args.val_max
    NLL_METHODS = tuple(dict.fromkeys(["dopri5", *args.nll]))  # dopri5 always: validation uses it
    here = Path(__file__).resolve().parent
    out = Path(args.out) if args.out else here / ("results_so3.jsonl" if args.so3 else "results_earth.jsonl")

    def log(msg):
        if not args.quiet:
            print(msg, flush=True)

    records = []
    if out.exists():
        with open(out) as fh:
            records = [json.loads(line) for line in fh if line.strip()]
    if not args.table_only:
        done = {(r["dataset"], r["seed"], r["method"], r["budget"]) for r in records}
        if args.device == "cpu" and args.budget == "paper":
            log("note: --budget paper on a CPU; the projected training time is printed after 50 steps")
        (run_so3 if args.so3 else run_earth)(args, done, out, log)
        with open(out) as fh:
            records = [json.loads(line) for line in fh if line.strip()]
    print_table(records, args.budget_label, so3=args.so3)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
