"""The ``manifold-rl`` command line.

``manifold-rl lasa --manifold sphere --shape Sshape [--out DIR] [--steps 5000] ...``
runs the LASA flow-matching policy job (:mod:`manifold_rl.lasa_job`). Invalid
arguments print argparse's message and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional

__all__ = ["main", "build_parser"]


def _number(cast, what: str, ok):
    """An argparse type: ``cast(s)`` that must satisfy ``ok``; otherwise argparse's error (exit 2)."""

    def parse(s: str):
        try:
            v = cast(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"expected {what}, got {v}")
        return v

    return parse


_positive_int = _number(int, "a positive integer", lambda v: v >= 1)
_positive_float = _number(float, "a positive number", lambda v: v > 0)
_nonneg_float = _number(float, "a number >= 0", lambda v: v >= 0)
_unit_interval = _number(float, "a number in [0, 1]", lambda v: 0.0 <= v <= 1.0)


def build_parser() -> argparse.ArgumentParser:
    from manifold_rl.data.lasa import LASA_SHAPES
    from manifold_rl.lasa_job import LasaJobConfig
    from manifolds.flow_matching import FIXED_STEP_METHODS

    parser = argparse.ArgumentParser(prog="manifold-rl", description="manifold-rl: Riemannian policies and generative models.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "lasa",
        help="train a flow-matching policy on LASA handwriting demonstrations (S² or R²) and evaluate it",
        description="Train on 6 of the 7 demonstrations of a LASA shape, roll out from the held-out one's start, "
        "write metrics.json, metrics.md, plot.png and checkpoint.pt into the run folder.",
    )
    p.add_argument("--manifold", choices=["sphere", "euclidean"], default="sphere", help="state manifold (default: sphere)")
    p.add_argument("--shape", required=True, choices=list(LASA_SHAPES) + ["all"], metavar="SHAPE",
                   help="LASA shape name, or 'all' for the 30 shapes. One of: " + ", ".join(LASA_SHAPES))
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/lasa-<manifold>-<shape>-<time>)")
    # Defaults come from LasaJobConfig (and its policy config): one source of truth.
    job = LasaJobConfig()
    pol = job.policy
    p.add_argument("--steps", type=_positive_int, default=job.steps, help=f"training steps per policy (default {job.steps})")
    p.add_argument("--batch-size", type=_positive_int, default=job.batch_size)
    p.add_argument("--lr", type=_positive_float, default=job.lr)
    p.add_argument("--seed", type=int, default=job.seed)
    p.add_argument("--n-points", type=_positive_int, default=job.n_points, help="samples per demonstration (RFMP: 200)")
    p.add_argument("--holdout", type=int, choices=range(7), default=job.holdout, metavar="{0..6}", help="held-out demonstration")
    p.add_argument("--action-horizon", type=_positive_int, default=pol.action_horizon, help="states per chunk (RFMP: 8)")
    p.add_argument("--obs-horizon", type=_positive_int, default=pol.obs_horizon)
    p.add_argument("--hidden", type=_positive_int, default=pol.hidden)
    p.add_argument("--depth", type=_positive_int, default=pol.depth)
    p.add_argument("--base-std", type=_positive_float, default=pol.base_std, help="wrapped-normal base scale (rad)")
    p.add_argument("--method", choices=list(FIXED_STEP_METHODS) + ["dopri5"], default=pol.method, help="sampler")
    p.add_argument("--nfe-steps", type=_positive_int, default=pol.n_steps, help="integration steps per chunk")
    p.add_argument("--obs-noise", type=_nonneg_float, default=pol.obs_noise,
                   help=f"training-time wrapped-normal noise on observed states (rad on S²; default {pol.obs_noise}, "
                   "about one demonstration step), 0 = off")
    p.add_argument("--temperature", type=_unit_interval, default=pol.temperature,
                   help="base-noise scale at inference in [0, 1]: 0 = deterministic flow from the base mean "
                   f"(default {pol.temperature}), 1 = exact samples of the learned flow")
    p.add_argument("--temporal-ensemble", type=_nonneg_float, default=job.temporal_ensemble, metavar="M",
                   help="execute the weighted mean of all chunk predictions for each step, weights exp(-M i), "
                   f"i = 0 the oldest (ACT's temporal ensembling; default M = {job.temporal_ensemble})")
    p.add_argument("--no-temporal-ensemble", action="store_true",
                   help="execute half of each predicted chunk, then re-plan (RFMP's receding horizon)")
    p.add_argument("--no-baseline", action="store_true", help="skip the ambient R³ baseline (sphere only)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "lasa":
        return _lasa(args)
    return 2  # pragma: no cover  (argparse enforces the subcommand)


def _lasa(args) -> int:
    from manifold_rl.data.lasa import LASA_SHAPES
    from manifold_rl.lasa_job import LasaJobConfig, metrics_table, run_lasa
    from manifold_rl.policies import FlowMatchingPolicyConfig

    if args.action_horizon < 2:
        build_parser().error("--action-horizon must be at least 2 (half of each chunk is executed)")
    policy = FlowMatchingPolicyConfig(
        obs_horizon=args.obs_horizon,
        action_horizon=args.action_horizon,
        hidden=args.hidden,
        depth=args.depth,
        base_std=args.base_std,
        method=args.method,
        n_steps=args.nfe_steps,
        obs_noise=args.obs_noise,
        temperature=args.temperature,
    )
    cfg = LasaJobConfig(
        manifold=args.manifold,
        n_points=args.n_points,
        holdout=args.holdout,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        baseline=not args.no_baseline,
        temporal_ensemble=None if args.no_temporal_ensemble else args.temporal_ensemble,
        policy=policy,
    )
    shapes = list(LASA_SHAPES) if args.shape == "all" else [args.shape]
    out = args.out or Path("runs") / f"lasa-{args.manifold}-{args.shape}-{time.strftime('%Y%m%d-%H%M%S')}"
    summary = run_lasa(shapes, out, cfg, progress=not args.quiet)
    print(metrics_table(summary))
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
