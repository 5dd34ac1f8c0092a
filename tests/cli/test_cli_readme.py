"""The README's code runs as written, and its commands and files exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_library_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has a Python example"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})  # noqa: S102
    out = capsys.readouterr().out
    assert "touches the unsupported op" in out and "soft_threshold" in out
    assert "SearchSpace(3 groups, 2 prunable" in out
    assert (tmp_path / "net.svg").exists() or (tmp_path / "net.dot").exists()


def test_readme_names_real_commands_and_files():
    text = README.read_text()
    root = README.parent
    for path in ("scripts/prune.sh", "scripts/test.sh", "docs/cli.md", "docs/images/default_search_space.svg",
                 "docs/images/resnet50.svg"):
        assert path in text and (root / path).exists(), path
    assert "docs/zoo.md" in text


@pytest.mark.parametrize("command", ["trace", "viz", "prune", "verify", "report", "export"])
def test_every_subcommand_is_documented(command):
    assert f"otograph {command}" in README.read_text()
    assert f"otograph {command}" in (README.parent / "docs" / "cli.md").read_text()
