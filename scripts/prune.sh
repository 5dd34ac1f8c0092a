#!/usr/bin/env bash
# Set up everything on a fresh machine (first run: creates .venv and installs torch from this
# machine's disk), then run `otograph prune` — with no arguments, the built-in default: a small
# ResNet-style CNN on scikit-learn's digits, written to runs/default (use --force to redo it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
args=("$@")
if [ ${#args[@]} -eq 0 ] && [ -e runs/default ]; then
  args=(--force)  # the default run may be repeated; an explicit --out is still protected
fi
exec .venv/bin/otograph prune "${args[@]}"
