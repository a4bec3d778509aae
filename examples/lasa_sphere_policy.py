"""LASA on S² with a Riemannian flow-matching policy, written with library calls only.

Run:  python examples/lasa_sphere_policy.py [--shape Sshape] [--steps 2000]
"""

import argparse

import torch

from manifolds import Sphere
from manifold_rl.data.lasa import lasa_on_sphere, load_lasa
from manifold_rl.metrics import dtw, jerkiness
from manifold_rl.plotting import plot_lasa_rollouts
from manifold_rl.policies import FlowMatchingPolicy, FlowMatchingPolicyConfig, make_chunk_dataset
from manifold_rl.training import train_policy

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--shape", default="Sshape")
parser.add_argument("--steps", type=int, default=2000)
parser.add_argument("--out", default="lasa_sphere_policy.png")
args = parser.parse_args()

# 1. Data: 7 demonstrations mapped onto S² by the exponential map at the north pole (RFMP).
trajs, embedding = lasa_on_sphere(args.shape, n_points=200)  # (7, 200, 3)
train, heldout = trajs[:6].float(), trajs[6]

# 2. Policy: observation = 2 recent states, action = chunk of 8 future states on (S²)^8;
#    noisy observations in training, deterministic sampling at inference (as the CLI job).
S2 = Sphere(2)
policy = FlowMatchingPolicy(S2, FlowMatchingPolicyConfig(obs_horizon=2, action_horizon=8, obs_noise=0.02, temperature=0.0))
obs, actions = make_chunk_dataset(train, obs_horizon=2, action_horizon=8)

# 3. Train with Riemannian flow matching and RiemannianAdam (EMA weights are returned).
result = train_policy(policy, obs, actions, steps=args.steps, generator=torch.Generator().manual_seed(0))
policy = result.ema.module.eval()

# 4. Receding-horizon rollout from the held-out demonstration's start.
rollout = policy.rollout(heldout[0].float(), n_states=heldout.shape[0])
states = rollout.states.double()
print(f"geodesic DTW per step: {dtw(states, heldout, S2.dist, normalize=True):.4f} rad")
print(f"jerkiness: {jerkiness(states, load_lasa(args.shape, 200).dt):.3g} (demo: {jerkiness(heldout, load_lasa(args.shape, 200).dt):.3g})")
print(f"median latency per chunk: {sorted(rollout.latencies_ms)[len(rollout.latencies_ms) // 2]:.2f} ms")

# 5. Plot demonstrations and rollout on the sphere and back in the plane.
plot_lasa_rollouts(args.out, train, heldout, {"RFM policy": states}, embedding=embedding, title=f"LASA {args.shape} on S²")
print(f"plot written to {args.out}")
