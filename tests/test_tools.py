"""The measuring tools in tools/ run in CI in their quick forms, so none rots (their figures are
not asserted: timings belong in the tables they print, not in tests)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tool(name: str, *args: str, timeout: float = 600) -> str:
    p = subprocess.run([sys.executable, str(ROOT / "tools" / f"{name}.py"), *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout, check=False)
    assert p.returncode == 0, p.stderr[-4000:]
    return p.stdout


def rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| model")]


def test_search_space_phases():
    out = rows(tool("bench_search_space", "--quick", "--phases"))
    assert [r[0] for r in out] == ["resnet18", "mobilenet_v3_small", "efficientnet_b0"]
    for r in out:
        steps = [float(c) for c in r[1:6]]
        assert all(s >= 0 for s in steps) and float(r[6]) == pytest.approx(sum(steps), abs=0.003)


def test_search_space_against_the_peer():
    text = tool("bench_search_space", "--quick")
    assert [r[0] for r in rows(text)] == ["resnet18", "mobilenet_v3_small", "efficientnet_b0"]
    assert "models: 3; otograph over 1 s:" in text


def test_llama_8b_shaped_analysis_on_two_layers():
    text = tool("scale_llama", "--layers", "2")
    assert "parameters" in text and "0.96 B" in text  # embeddings + 2 layers of LLaMA-3-8B shapes
    assert re.search(r"groups / prunable\s+\d+ / \d+", text)
    assert "2 (8 KV heads)" in text and "2 (14336 neurons)" in text


def test_llama_static_export_finds_the_same_groups():
    def summary(text: str) -> list[str]:
        return [" ".join(line.split()) for line in text.splitlines() if "groups" in line or "params in prunable" in line]

    dynamic, static = tool("scale_llama", "--layers", "1"), tool("scale_llama", "--layers", "1", "--static")
    assert "dynamic shapes (s)" in dynamic and "static shapes (s)" in static
    assert summary(static) == summary(dynamic) and len(summary(static)) == 4


def test_round_to_latency_refuses_an_unknown_selection():
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "round_to_latency.py"), "--selection", "random"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 2 and "--selection" in p.stderr.strip().splitlines()[-1]
    assert p.stdout == ""


def test_round_to_latency_quick():
    out = rows(tool("round_to_latency", "--quick"))
    assert [(r[0], r[1]) for r in out] == [(m, w) for m in ("resnet50", "mobilenet_v3_large")
                                           for w in ("dense", "--round-to 1", "--round-to 8")]
    for r in out:  # uniform widths: at least the target, within the step that rounding to 8 units makes
        cut = float(r[3].rstrip("%"))
        assert cut == 0.0 if r[1] == "dense" else 50.0 <= cut <= 53.0
    out = rows(tool("round_to_latency", "--quick", "--selection", "hesso", "--models", "mobilenet_v3_large",
                    "--round-to", "8"))
    assert [r[1] for r in out] == ["dense", "--round-to 8"] and 50.0 <= float(out[1][3].rstrip("%")) <= 51.0


def test_zoo_rows_file_resumes_and_writes_the_doc(tmp_path):
    """Rows in the --rows file are reused, not run again, and make the doc; rows append and load back
    (the last line of a row wins); a broken line is named."""
    import dataclasses
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("zoo_tool", ROOT / "tools" / "zoo.py")
    zoo_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zoo_tool)
    rows_file, md = tmp_path / "rows.jsonl", tmp_path / "zoo.md"
    row = {"section": "torchvision", "name": "alexnet", "status": "exact", "reason": "from the file",
           "frontend": "fx", "groups": 3, "prunable": 2, "prunable_share": 0.5, "removed50": 0.25,
           "seconds": 1.0, "max_abs": 1.5e-17}
    rows_file.write_text(json.dumps({**row, "reason": "an older line"}) + "\n")
    zoo_tool._append(str(rows_file), zoo_tool.zoo.Row(**row))
    loaded = zoo_tool._load(str(rows_file))
    assert list(loaded) == [("torchvision", "alexnet")] and dataclasses.asdict(loaded["torchvision", "alexnet"]) == row
    assert zoo_tool.main(["alexnet", "--rows", str(rows_file), "--out", str(md)]) == 0  # alexnet is not run again
    table = {r[0]: r for r in rows(md.read_text())}
    assert table["alexnet"][-1] == "from the file" and table["alexnet"][3] == "3"
    assert len(rows_file.read_text().splitlines()) == 2
    rows_file.write_text(rows_file.read_text() + "not json\n")
    before = rows_file.read_text()
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "zoo.py"), "alexnet", "--rows", str(rows_file)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 2 and f"--rows: {rows_file}:3: not a zoo row" in p.stderr.splitlines()[-1]
    assert rows_file.read_text() == before and not p.stdout
