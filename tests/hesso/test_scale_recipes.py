"""The recipes of docs/scale.md run as written: FSDP2 on two CPU ranks, the Hugging Face Trainer, Lightning.

The trainer recipes also resume from a checkpoint taken inside a pruning period and must end
bit-identical to the uninterrupted run (weights, HESSO's scores, pruned units, metrics).
"""

from __future__ import annotations

import ast
import copy
import re
import sys
import types
from pathlib import Path

import pytest
import torch

import otograph
from tests.hesso._dist import run_ranks

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "scale.md"


def recipe(name: str) -> str:
    """The python block that follows ``<!-- recipe: name -->`` in docs/scale.md."""
    m = re.search(rf"<!-- recipe: {re.escape(name)} -->\s*```python\n(.*?)```", DOC.read_text(), re.S)
    assert m, f"no recipe {name!r} in {DOC}"
    return m.group(1)


def load(name: str) -> types.ModuleType:
    """The recipe as a module (its ``if __name__ == "__main__"`` part does not run)."""
    mod = types.ModuleType(f"recipe_{name.replace('-', '_')}")
    sys.modules[mod.__name__] = mod  # dataclasses, pickling and Lightning look classes up by module
    exec(compile(recipe(name), f"{DOC}:{name}", "exec"), mod.__dict__)
    return mod


def assert_same_run(a: torch.nn.Module, b: torch.nn.Module, oa, ob) -> None:
    for (n, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q), n
    assert torch.equal(oa._scores, ob._scores) and torch.equal(oa._status, ob._status)
    assert oa.pruned_units == ob.pruned_units and oa.metrics() == ob.metrics()
    assert oa.metrics()["step"] == 40 and oa.metrics()["units_pruned"] > 0


def assert_exact_in_float64(model: torch.nn.Module, example, frontend: str = "fx") -> None:
    """A float64 copy of the trained model compresses exactly (the float32 run is checked by the recipe)."""
    big = copy.deepcopy(model).double()
    space = otograph.search_space(big, example, frontend=frontend)
    v = otograph.verify(big, otograph.compress(big, space), example)
    assert v.exact and v.params_after < v.params_before, v


def test_fsdp2_recipe_runs_on_two_cpu_ranks(tmp_path, monkeypatch, capfd):
    """The recipe's ``main`` on two spawned gloo ranks (killed past the deadline), as its ``__main__`` does."""
    (tmp_path / "fsdp_recipe.py").write_text(recipe("fsdp2"))
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned ranks import the recipe by name
    import fsdp_recipe

    run_ranks(fsdp_recipe.main, 2, (), timeout_s=180)
    out = capfd.readouterr().out
    # heads, MLP neurons and the hidden size (through the RMSNorms, which keep the original divisor)
    assert "units: 90/180 pruned (50.0%)" in out, out[-3000:]
    assert "2 all_reduce calls in 24 steps" in out, out[-3000:]


def test_hf_trainer_recipe_prunes_compresses_and_resumes_bit_exactly(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    hf = load("hf-trainer")
    model, space, opt, trainer = hf.main(str(tmp_path / "a"))
    logged = [e for e in trainer.state.log_history if "hesso/units_pruned" in e]
    assert logged and logged[-1]["hesso/units_pruned"] == 90 and logged[0]["hesso/units_pruned"] == 0
    assert_exact_in_float64(model, {"input_ids": torch.randint(0, 64, (1, hf.SEQ)), "use_cache": False}, "export")

    resumed, _, again, _ = hf.train(str(tmp_path / "b"), resume=str(tmp_path / "a" / "checkpoint-20"))
    assert_same_run(model, resumed, opt, again)


def test_lightning_recipe_prunes_compresses_and_resumes_bit_exactly(tmp_path):
    pytest.importorskip("lightning")
    pl = load("lightning")
    module, opt = pl.main(str(tmp_path / "a"))
    assert_exact_in_float64(module.net, torch.randn(2, 1, 8, 8, dtype=torch.float64))

    again_module, again = pl.train(str(tmp_path / "b"), ckpt_path=str(tmp_path / "a" / "step=20.ckpt"))
    assert_same_run(module.net, again_module.net, opt, again)


def test_integrations_are_imported_by_nothing_and_load_no_framework():
    """Nothing in otograph or hesso imports ``otograph.integrations``; its package imports no trainer."""
    def imports(path: Path) -> set[str]:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        return names

    library = [p for pkg in ("otograph", "hesso") for p in (ROOT / pkg).rglob("*.py")
               if "integrations" not in p.relative_to(ROOT).parts]
    assert len(library) > 20
    for path in library:
        assert not {m for m in imports(path) if m.startswith("otograph.integrations")}, path
    top = imports(ROOT / "otograph" / "integrations" / "__init__.py")
    assert not {m for m in top if m.split(".")[0] in ("transformers", "lightning", "pytorch_lightning")}, top
    assert "transformers" in imports(ROOT / "otograph" / "integrations" / "hf.py")
    assert "lightning.pytorch" in imports(ROOT / "otograph" / "integrations" / "lightning.py")
