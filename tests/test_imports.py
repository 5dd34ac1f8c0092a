"""Import layering: ``hesso`` stands alone; ``otograph`` loads neither the CLI nor graphviz."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def loaded_after(module: str) -> list[str]:
    """Names in ``sys.modules`` after ``import module`` in a fresh interpreter run from the repository."""
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def top(name: str) -> str:
    return name.split(".")[0]


def test_hesso_imports_no_otograph():
    mods = loaded_after("hesso")
    assert "hesso.optimizer" in mods  # the check ran on the real package
    assert [m for m in mods if top(m) == "otograph"] == []


def test_otograph_loads_neither_cli_nor_graphviz():
    mods = loaded_after("otograph")
    assert "otograph.analysis.space" in mods
    assert [m for m in mods if m == "otograph.cli" or m.startswith("otograph.cli.")] == []
    assert [m for m in mods if top(m) == "graphviz"] == []
