"""The recipes of docs/scale.md run as written: FSDP2 on two CPU ranks, the Hugging Face Trainer, Lightning.

The trainer recipes also resume from a checkpoint taken inside a pruning period and must end
bit-identical to the uninterrupted run (weights, HESSO's scores, pruned units, metrics).
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import otograph

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


def test_fsdp2_recipe_runs_on_two_cpu_ranks(tmp_path):
    script = tmp_path / "fsdp_recipe.py"
    script.write_text(recipe("fsdp2"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks: a hung rank cannot hang the suite
        out, _ = proc.communicate()
        pytest.fail(f"the FSDP2 recipe did not finish in 240 s:\n{out[-3000:]}")
    assert proc.returncode == 0, out[-3000:]
    assert "units: 66/132 pruned (50.0%)" in out, out[-3000:]
    assert "2 all_reduce calls in 24 steps" in out, out[-3000:]


def test_hf_trainer_recipe_prunes_compresses_and_resumes_bit_exactly(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    hf = load("hf-trainer")
    model, space, opt, trainer = hf.main(str(tmp_path / "a"))
    logged = [e for e in trainer.state.log_history if "hesso/units_pruned" in e]
    assert logged and logged[-1]["hesso/units_pruned"] == 66 and logged[0]["hesso/units_pruned"] == 0
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


def test_integrations_load_only_on_request():
    """``import otograph`` loads no trainer glue; ``otograph.integrations`` loads neither framework."""
    code = ("import json, sys, otograph, hesso; a = sorted(sys.modules); import otograph.integrations; "
            "print(json.dumps([a, sorted(sys.modules)]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert not [m for m in before if m.startswith("otograph.integrations")]
    assert "otograph.integrations" in after
    assert not [m for m in after if m.split(".")[0] in ("lightning", "pytorch_lightning", "accelerate")]
    assert "transformers.trainer" not in after
