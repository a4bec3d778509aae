#!/usr/bin/env bash
# The test suite: set up .venv (scripts/bootstrap.sh), then run pytest on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest -q -n 2 --dist loadgroup tests "$@"
