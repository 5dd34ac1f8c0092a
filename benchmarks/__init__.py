"""Benchmarks on real data: otograph + HESSO against Torch-Pruning, one script per task.

Each script runs as ``python benchmarks/NAME.py [--quick]`` from the repository root with
``PYTHONPATH=$PWD``; a full run writes ``benchmarks/results/NAME.json`` and regenerates
``docs/benchmarks.md`` (:mod:`benchmarks.report`), a quick run (CI) writes both into ``--out``.
"""
