"""``otograph viz``: dashed unprunable spaces, the .dot fallback without graphviz's ``dot``, a run's removed units."""

from __future__ import annotations

import pytest

from otograph.drawing import group_colors, has_dot

needs_dot = pytest.mark.skipif(not has_dot(), reason="graphviz's dot is not installed")


def test_unprunable_spaces_are_dashed_with_their_reason(cli, tmp_path):
    code, _, err = cli("viz", "otograph.testing.factories:with_cumsum", "-o", tmp_path / "c.dot")
    assert code == 0 and "wrote" in err
    src = (tmp_path / "c.dot").read_text()
    colour = {gid: c for gid, (c, _) in group_colors(["a", "b", "c"]).items()}  # the model's groups, in order
    edges = [line for line in src.splitlines() if "->" in line and colour["a"] in line]
    assert edges and all("dashed" in e for e in edges)
    assert "unprunable: touches the unsupported op torch.cumsum" in src
    assert "unsupported (opaque) ops: torch.cumsum (cumsum)" in src
    solid = [line for line in src.splitlines() if "->" in line and colour["b"] in line]
    assert solid and not any("dashed" in e for e in solid)


def test_without_dot_writes_the_source_and_says_how_to_render(cli, tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    code, _, err = cli("viz", "-o", tmp_path / "pic.svg")
    assert code == 0
    assert not (tmp_path / "pic.svg").exists() and (tmp_path / "pic.dot").exists()
    assert "dot -Tsvg" in err and "pic.dot" in err and "install graphviz" in err.lower()


def test_viz_of_a_prune_run_shows_its_removed_units(cli, pruned_run, tmp_path):
    code, _, _ = cli("viz", pruned_run, "-o", tmp_path / "run.dot")
    assert code == 0
    src = (tmp_path / "run.dot").read_text()
    assert "units removed" in src and "→" in src
