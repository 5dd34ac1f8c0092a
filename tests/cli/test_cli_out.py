"""``prune --out``/``--force``: no file of the user's is ever lost (issue 13 item 8)."""

from __future__ import annotations

import json

import pytest

TINY = ("otograph.testing.factories:tiny_cnn", "--data", "otograph.testing.factories:random_data",
        "--epochs", "1", "--batch-size", "16", "--no-baseline", "-q")


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the prune job gets as far as loading the model."""
    from otograph.cli import job

    def load(*args, **kwargs):
        raise AssertionError("the run started although --out had to be refused")

    monkeypatch.setattr(job, "load", load)


def one_error(code: int, err: str) -> str:
    """The error message of a refused command: exit 2, `otograph: error: …`, no traceback."""
    assert code == 2, err
    assert err.startswith("otograph: error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2  # the message and its Fix line
    return err


def _earlier_run(folder, *extra):
    folder.mkdir()
    (folder / "run.json").write_text("{}")
    (folder / "model.pt2").write_bytes(b"old model")
    for name in extra:
        (folder / name).write_text("mine")


def test_force_refuses_a_folder_of_the_users_files(cli, tmp_path, no_work):
    out = tmp_path / "paper"
    (out / "src").mkdir(parents=True)
    (out / "main.tex").write_text("\\documentclass{article}")
    (out / "src" / "a.py").write_text("x = 1")
    err = one_error(*cli("prune", "--out", out, "--force", "-q")[::2])
    assert "not a folder written by an earlier run" in err and "no run.json" in err
    assert (out / "main.tex").read_text() == "\\documentclass{article}" and (out / "src" / "a.py").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paper"]


def test_force_refuses_a_file(cli, tmp_path, no_work):
    out = tmp_path / "results"
    out.write_text("mine")
    err = one_error(*cli("prune", "--out", out, "--force", "-q")[::2])
    assert "is a file, not a folder" in err
    assert out.read_text() == "mine" and [p.name for p in tmp_path.iterdir()] == ["results"]  # no .results.old-*


def test_force_refuses_a_run_folder_holding_other_files(cli, tmp_path, no_work):
    out = tmp_path / "run"
    _earlier_run(out, "notes.md")
    err = one_error(*cli("prune", "--out", out, "--force", "-q")[::2])
    assert "files an earlier run did not write (notes.md)" in err
    assert (out / "notes.md").read_text() == "mine"


def test_without_force_only_a_run_folder_suggests_force(cli, tmp_path, no_work):
    run, mine = tmp_path / "run", tmp_path / "mine"
    _earlier_run(run)
    mine.mkdir()
    (mine / "a.txt").write_text("mine")
    err = one_error(*cli("prune", "--out", run, "-q")[::2])
    assert "already exists" in err and "--force" in err
    err = one_error(*cli("prune", "--out", mine, "-q")[::2])
    assert "already exists" in err and "--force" not in err
    assert (mine / "a.txt").read_text() == "mine"


def test_out_dot_and_out_under_a_file_are_refused(cli, tmp_path, monkeypatch, no_work):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("mine")
    for out in (".", "..", str(tmp_path)):
        err = one_error(*cli("prune", "--out", out, "--force", "-q")[::2])
        assert "is the current folder or contains it" in err
    err = one_error(*cli("prune", "--out", "a_file/sub", "-q")[::2])
    assert "'a_file' is a file, not a folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_force_replaces_an_earlier_run(cli, tmp_path):
    out = tmp_path / "run"
    _earlier_run(out)
    (out / "__pycache__").mkdir()  # left by `from model import load`
    code, _, err = cli("prune", *TINY, "--out", out, "--force")
    assert code == 0, err
    assert (out / "model.pt2").read_bytes() != b"old model" and not (out / "__pycache__").exists()
    assert json.loads((out / "run.json").read_text())["model"]["class"] == "TinyCNN"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging or old folder left
    code, _, err = cli("prune", *TINY, "--out", out, "--force")  # a run written by prune is replaceable
    assert code == 0, err
