#!/usr/bin/env bash
# The main job on real data: a Riemannian flow-matching policy on LASA demonstrations mapped onto S²,
# with the ambient-R³ baseline, written to runs/lasa-sphere-<shape>/. Extra arguments go to the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
shape=${SHAPE:-Sshape}
exec .venv/bin/manifold-rl lasa --manifold sphere --shape "$shape" --out "runs/lasa-sphere-$shape" "$@"
