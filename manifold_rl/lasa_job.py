"""The main job: a flow-matching policy trained on LASA demonstrations on S² (or R²).

``manifold-rl lasa --manifold sphere --shape Sshape`` trains on 6 of the 7
demonstrations, rolls out from the held-out demonstration's start with receding-horizon
execution, and writes ``metrics.json``, ``metrics.md``, ``plot.png`` and
``checkpoint.pt`` into the run folder. On the sphere the same policy trained in the
ambient R³ (Euclidean flow matching, outputs normalised onto S² before execution) runs
as a baseline in the same job. Metrics follow RFMP (Braun et al., IROS 2024): geodesic
DTW to the held-out demonstration, jerkiness, final distance to the goal, off-manifold
drift, inference latency per chunk, training wall time.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from manifolds import Euclidean, Sphere
from manifold_rl.data.lasa import lasa_in_plane, lasa_on_sphere, load_lasa
from manifold_rl.metrics import dtw_path, final_goal_distance, jerkiness, off_manifold_drift, state_mmd2
from manifold_rl.plotting import plot_lasa_rollouts
from manifold_rl.policies import FlowMatchingPolicy, FlowMatchingPolicyConfig, make_chunk_dataset
from manifold_rl.training import train_policy

__all__ = ["LasaJobConfig", "run_lasa_shape", "run_lasa", "load_checkpoint", "METRIC_COLUMNS"]


@dataclass
class LasaJobConfig:
    """Settings of the LASA job (CLI flags of ``manifold-rl lasa``)."""

    manifold: str = "sphere"
    n_points: int = 200
    radius: float = math.pi / 3
    holdout: int = 6
    steps: int = 5000
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0
    baseline: bool = True
    temporal_ensemble: Optional[float] = 0.01
    latency_threads: int = 1
    # The job's policy defaults (also the CLI's): observation noise of about one
    # demonstration step (0.02 rad) against compounding errors, deterministic sampling.
    policy: FlowMatchingPolicyConfig = field(default_factory=lambda: FlowMatchingPolicyConfig(obs_noise=0.02, temperature=0.0))

    def __post_init__(self):
        if self.manifold not in ("sphere", "euclidean"):
            raise ValueError(f"manifold must be 'sphere' or 'euclidean', got {self.manifold!r}")
        if not 0 <= self.holdout < 7:
            raise ValueError(f"holdout must index one of the 7 LASA demonstrations (0..6), got {self.holdout}")


METRIC_COLUMNS = [
    ("dtw", "DTW (rad·steps)"),
    ("dtw_mean", "DTW / step (rad)"),
    ("final_goal_distance", "final dist. to goal (rad)"),
    ("state_mmd2", "MMD² states vs demo"),
    ("jerkiness", "jerkiness"),
    ("max_drift", "max ||x||-1|"),
    ("latency_ms_median", "latency/chunk (ms)"),
    ("train_time_s", "train time (s)"),
]


def _evaluate(policy, manifold, demo, dt, cfg: LasaJobConfig, project_to=None) -> Tuple[dict, torch.Tensor]:
    """Roll out from the demo's start and compute the metrics (distances on ``manifold``)."""
    policy.eval()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.latency_threads)  # latency "per chunk on one CPU core"
    try:
        g = torch.Generator().manual_seed(cfg.seed)
        start = demo[0].to(next(policy.parameters()).dtype)
        res = policy.rollout(start, demo.shape[0], temporal_ensemble=cfg.temporal_ensemble, project_to=project_to, generator=g)
    finally:
        torch.set_num_threads(old_threads)
    states = res.states.double()
    dist = manifold.dist
    d, path = dtw_path(states, demo, dist)
    lat = res.latencies_ms[1:] or res.latencies_ms  # the first call includes lazy initialisation
    metrics = {
        "dtw": d,
        "dtw_mean": d / len(path),
        "final_goal_distance": final_goal_distance(states, demo[-1], dist),
        "state_mmd2": state_mmd2(manifold, states, demo),
        "jerkiness": jerkiness(states, dt),
        "max_drift": off_manifold_drift(res.raw_states.double()) if demo.shape[-1] == 3 else 0.0,
        "latency_ms_median": statistics.median(lat),
        "latency_ms_p90": sorted(lat)[int(0.9 * (len(lat) - 1))],
        "n_chunks": len(res.latencies_ms),
    }
    return metrics, states


def _train(name, manifold, cfg: LasaJobConfig, obs, act, progress) -> Tuple[FlowMatchingPolicy, dict]:
    with torch.random.fork_rng():  # reproducible init without changing the caller's RNG
        torch.manual_seed(cfg.seed)
        policy = FlowMatchingPolicy(manifold, cfg.policy)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    res = train_policy(policy, obs, act, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, generator=g, progress=progress, desc=name)
    final = res.ema.module
    info = {
        "train_time_s": res.wall_time_s,
        "final_loss": statistics.fmean(res.losses[-100:]),
        "n_params": sum(p.numel() for p in final.parameters()),
    }
    return final, info


def run_lasa_shape(shape: str, out_dir, cfg: LasaJobConfig, progress: bool = True) -> Dict[str, dict]:
    """Train, roll out and evaluate on one LASA shape; write the run folder.

    Args:
        shape: a name of :data:`manifold_rl.data.lasa.LASA_SHAPES`.
        out_dir: run folder (created).
        cfg: :class:`LasaJobConfig`.
        progress: tqdm progress bars.

    Returns:
        ``{method name: metrics}`` as written to ``metrics.json``.

    Raises:
        ValueError: unknown shape or invalid configuration.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dt = load_lasa(shape, cfg.n_points).dt  # mean time step of the subsampled demonstrations (s)
    if cfg.manifold == "sphere":
        trajs, emb = lasa_on_sphere(shape, cfg.n_points, cfg.radius)
        manifold = Sphere(2)
    else:
        trajs, emb = lasa_in_plane(shape, cfg.n_points, cfg.radius)
        manifold = Euclidean(2)
    train_idx = [i for i in range(trajs.shape[0]) if i != cfg.holdout]
    train = trajs[train_idx].float()
    heldout = trajs[cfg.holdout]
    obs, act = make_chunk_dataset(train, cfg.policy.obs_horizon, cfg.policy.action_horizon)

    methods = [("RFM on S²" if cfg.manifold == "sphere" else "FM in R²", manifold, None)]
    if cfg.manifold == "sphere" and cfg.baseline:
        methods.append(("Euclidean FM in R³ + normalise", Euclidean(3), manifold))
    results, rollouts = {}, {}
    checkpoint = {"config": asdict(cfg), "shape": shape, "embedding_scale": emb.scale, "policies": {}}
    for name, m, project_to in methods:
        policy, info = _train(name, m, cfg, obs, act, progress)
        metrics, states = _evaluate(policy, manifold, heldout, dt, cfg, project_to)
        metrics.update(info)
        results[name] = metrics
        rollouts[name] = states
        checkpoint["policies"][name] = {"manifold": "sphere" if isinstance(m, Sphere) else f"euclidean{m.event_shape[0]}", "state_dict": policy.state_dict()}
    # References: the demonstrations themselves. A policy cannot be expected to match the
    # held-out demonstration better than the closest training demonstration does.
    dist = manifold.dist
    ref = [dtw_path(trajs[i], heldout, dist) for i in train_idx]
    k = min(range(len(ref)), key=lambda i: ref[i][0])
    results["closest training demo (reference)"] = {
        "dtw": ref[k][0],
        "dtw_mean": ref[k][0] / len(ref[k][1]),
        "final_goal_distance": final_goal_distance(trajs[train_idx[k]], heldout[-1], dist),
        "state_mmd2": state_mmd2(manifold, trajs[train_idx[k]], heldout),
        "jerkiness": jerkiness(trajs[train_idx[k]], dt),
    }
    results["held-out demo (reference)"] = {"jerkiness": jerkiness(heldout, dt)}
    meta = {"shape": shape, "manifold": cfg.manifold, "dt_s": dt, "n_train_pairs": int(obs.shape[0]), "torch": torch.__version__}
    (out / "metrics.json").write_text(json.dumps({"meta": meta, "config": asdict(cfg), "results": results}, indent=2))
    (out / "metrics.md").write_text(metrics_table({shape: results}))
    torch.save(checkpoint, out / "checkpoint.pt")
    plot_lasa_rollouts(out / "plot.png", trajs[train_idx], heldout, rollouts, embedding=emb, title=f"LASA {shape}: held-out demo {cfg.holdout}")
    return results


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


def metrics_table(per_shape: Dict[str, Dict[str, dict]]) -> str:
    """Markdown table: one row per (shape, method)."""
    head = "| shape | method | " + " | ".join(c[1] for c in METRIC_COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(METRIC_COLUMNS) + 2)]
    for shape, results in per_shape.items():
        for name, m in results.items():
            lines.append(f"| {shape} | {name} | " + " | ".join(_fmt(m.get(k)) for k, _ in METRIC_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def run_lasa(shapes: List[str], out_dir, cfg: LasaJobConfig, progress: bool = True) -> Dict[str, Dict[str, dict]]:
    """Run :func:`run_lasa_shape` for several shapes, writing ``summary.json`` / ``summary.md`` as they finish.

    A shape whose folder already holds ``metrics.json`` is not recomputed (resume after
    an interruption); finished shapes are never lost.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for shape in shapes:
        sub = out / shape if len(shapes) > 1 else out
        done = sub / "metrics.json"
        if len(shapes) > 1 and done.exists():
            summary[shape] = json.loads(done.read_text())["results"]
        else:
            summary[shape] = run_lasa_shape(shape, sub, cfg, progress)
        if len(shapes) > 1:
            (out / "summary.json").write_text(json.dumps(summary, indent=2))
            (out / "summary.md").write_text(metrics_table(summary))
    return summary


def load_checkpoint(path) -> Dict[str, FlowMatchingPolicy]:
    """Rebuild the trained policies of a run folder's ``checkpoint.pt``.

    Args:
        path: the ``checkpoint.pt`` file written by :func:`run_lasa_shape`.

    Returns:
        ``{method name: FlowMatchingPolicy}`` in eval mode (e.g. ``"RFM on S²"``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a checkpoint of this job.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ck, dict) or "policies" not in ck or "config" not in ck:
        raise ValueError(f"{path} is not a manifold-rl LASA checkpoint (expected keys 'config' and 'policies')")
    pcfg = FlowMatchingPolicyConfig(**ck["config"]["policy"])
    out = {}
    for name, entry in ck["policies"].items():
        kind = entry["manifold"]
        manifold = Sphere(2) if kind == "sphere" else Euclidean(int(kind[len("euclidean"):]))
        policy = FlowMatchingPolicy(manifold, pcfg)
        policy.load_state_dict(entry["state_dict"])
        out[name] = policy.eval()
    return out

