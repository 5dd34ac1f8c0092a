#!/usr/bin/env bash
# Set up everything on a fresh machine, then run the test suite. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
.venv/bin/ruff check otograph hesso tests tools benchmarks
.venv/bin/python -m pytest --doctest-modules otograph hesso tests "$@"
