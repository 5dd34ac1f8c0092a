"""Import layering: ``hesso`` stands alone; ``otograph`` loads neither the CLI nor graphviz."""

from __future__ import annotations

import ast
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


#: the layers of docs/architecture.md, lowest first; a module may import its own package and the layers below
LAYERS = [("errors",), ("fileio",), ("tracing",), ("graph",), ("analysis",), ("rewrite",), ("report", "drawing", "hf"),
          ("cli", "integrations"), ("testing",)]
LEVEL = {pkg: i for i, pkgs in enumerate(LAYERS) for pkg in pkgs}


def _imports(path: Path) -> set[str]:
    """Every ``otograph.X`` package a module imports, function-local imports included."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for n in names:
            parts = n.split(".")
            if parts[0] == "otograph":
                out.add(parts[1] if len(parts) > 1 else "otograph")
    return out


def _modules():
    for path in sorted((ROOT / "otograph").rglob("*.py")):
        rel = path.relative_to(ROOT / "otograph").parts
        if rel != ("__init__.py",):
            yield path, rel[0].removesuffix(".py")


def test_every_package_is_in_a_layer():
    assert {pkg for _, pkg in _modules()} <= set(LEVEL), "add the new package to LAYERS and docs/architecture.md"


def test_imports_only_run_down_the_layers():
    bad = []
    for path, pkg in _modules():
        for imported in _imports(path) - {pkg}:
            if imported == "otograph":  # the whole package: only the application layers may
                ok = LEVEL[pkg] >= LEVEL["cli"]
            else:
                ok = LEVEL[imported] < LEVEL[pkg]
            if not ok:
                bad.append(f"{path.relative_to(ROOT)} ({pkg}) imports otograph.{imported}")
    assert not bad, "\n".join(bad)


def test_no_import_cycle_between_modules():
    import networkx as nx

    g = nx.DiGraph()
    for path, _ in _modules():
        me = ".".join(("otograph", *path.relative_to(ROOT / "otograph").with_suffix("").parts)).removesuffix(".__init__")
        g.add_node(me)
        for node in ast.parse(path.read_text()).body:  # module-level imports: what runs on import
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("otograph.") \
                    and node.module != me:
                g.add_edge(me, node.module)
    assert g.number_of_nodes() > 40
    cycles = list(nx.simple_cycles(g))
    assert not cycles, cycles
