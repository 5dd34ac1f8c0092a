"""``otograph prune``, ``verify`` and ``report``: the default run's promise, its files, and its errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

ARTEFACTS = ("model.pt2", "state_dict.pt", "model.py", "report.md", "search_space.svg", "training.png",
             "run.json", "removed_units.json", "reference.pt2")


def test_default_run_halves_flops_within_accuracy(pruned_run):
    run = json.loads((pruned_run / "run.json").read_text())
    b, a = run["before"], run["after"]
    assert run["model"]["class"] == "SmallResNet" and run["data"]["spec"] == "digits"
    assert 1 - a["flops"] / b["flops"] >= 0.5
    assert a["accuracy"] >= b["accuracy"] - 1.5  # b: the same CNN trained densely, same recipe
    assert a["accuracy"] == run["trained_accuracy"]  # the compact model is the trained model
    assert a["params"] < b["params"]
    assert set(a["latency_ms"]) == set(b["latency_ms"]) == {"1", "32"}
    assert all(v > 0 for v in [*a["latency_ms"].values(), *b["latency_ms"].values()])
    ex = run["exactness"]
    assert ex["max_abs_f64"] <= 1e-9 and ex["max_rel"] <= 1e-5 and ex["same_argmax"] == 1.0
    assert run["training"]["hesso"]["stage"] == "done"


def test_default_run_reports_asked_and_measured_flops(pruned_run):
    run = json.loads((pruned_run / "run.json").read_text())
    b, a, t = run["before"], run["after"], run["training"]
    measured = 1 - a["flops"] / b["flops"]
    assert t["target"] == {"kind": "flops", "fraction": 0.5} and 0.5 <= measured <= 0.51
    m, batch = t["hesso"], run["model"]["input_shape"][0]  # HESSO counts the example batch, measure one sample
    assert (m["target_kind"], m["target_asked"]) == ("flops", 0.5)
    assert m["flops_removed"] == batch * (b["flops"] - a["flops"]) and m["params_removed"] == b["params"] - a["params"]
    assert m["target_measured"] == m["flops_reduction"] == run["history"]["hesso"]["flops_reduction"][-1]
    report = (pruned_run / "report.md").read_text()
    assert f"| target | asked | measured |\n|---|---:|---:|\n| FLOPs reduction | 50.0% | {measured:.1%} |" in report


def test_default_run_writes_every_artefact(pruned_run):
    assert sorted(p.name for p in pruned_run.iterdir()) == sorted(ARTEFACTS)
    assert not [p for p in pruned_run.parent.iterdir() if p.name.startswith(".")]  # no staging left over
    assert (pruned_run / "training.png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in (pruned_run / "search_space.svg").read_text()
    report = (pruned_run / "report.md").read_text()
    for row in ("| parameters |", "| FLOPs per sample |", "| CPU latency, batch 1 |", "| CPU latency, batch 32 |",
                "| validation accuracy |", "max |Δ|", "![search space](search_space.svg)",
                "![training](training.png)"):
        assert row in report
    run = json.loads((pruned_run / "run.json").read_text())
    removed = json.loads((pruned_run / "removed_units.json").read_text())
    assert sum(len(v) for v in removed.values()) == run["space"]["units_removed"] > 0
    tensors = torch.load(pruned_run / "state_dict.pt", weights_only=True)
    assert sum(t.numel() for k, t in tensors.items() if "running" not in k and "num_batches" not in k) \
        == run["after"]["params"]


def test_report_command_reprints_the_report(cli, pruned_run):
    code, out, _ = cli("report", pruned_run)
    assert code == 0 and out.strip() == (pruned_run / "report.md").read_text().strip()
    code, out, _ = cli("report", pruned_run, "--json")
    assert json.loads(out)["after"]["params"] > 0
    code, _, err = cli("report", pruned_run.parent)
    assert code == 2 and "no run.json" in err


def test_verify_command(cli, pruned_run):
    code, out, _ = cli("verify", pruned_run / "reference.pt2", pruned_run / "model.pt2")
    assert code == 0 and "equal" in out
    params = json.loads((pruned_run / "run.json").read_text())["after"]["params"]
    assert f"{params:,} params" in out
    code, out, _ = cli("verify", "default", pruned_run)  # an untrained SmallResNet is another function
    assert code == 1 and "DIFFERENT" in out


def test_ctrl_c_during_training_leaves_nothing(cli, tmp_path):
    out = tmp_path / "run"
    code, _, err = cli("prune", "--data", "otograph.testing.factories:interrupting_data", "--out", out, "-q")
    assert code == 130 and "interrupted" in err
    assert list(tmp_path.iterdir()) == []
    out.mkdir()  # with --force an earlier run survives an interrupted run untouched
    (out / "run.json").write_text("{}")
    code, _, _ = cli("prune", "--data", "otograph.testing.factories:interrupting_data", "--out", out, "--force", "-q")
    assert code == 130 and [p.name for p in tmp_path.iterdir()] == ["run"]
    assert [p.name for p in out.iterdir()] == ["run.json"] and (out / "run.json").read_text() == "{}"


def test_ctrl_c_while_writing_files_leaves_nothing(cli, tmp_path, monkeypatch):
    def half_written(ep, f, *args, **kwargs):
        f.write(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.export, "save", half_written)
    code, _, _ = cli("prune", "otograph.testing.factories:tiny_cnn", "--data", "otograph.testing.factories:random_data", "--epochs", "1", "--batch-size", "16",
                     "--no-baseline", "--out", tmp_path / "run", "-q")
    assert code == 130 and list(tmp_path.iterdir()) == []


def test_sigint_to_a_running_prune_leaves_nothing(tmp_path, subprocess_env):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "otograph.cli", "prune", "--data", "otograph.testing.factories:slow_data",
                             "--out", str(out), "--epochs", "3", "-q"], env=subprocess_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a shell's background job ignores SIGINT and children inherit that
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".run.partial") for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert list(tmp_path.iterdir()) == []


def test_bad_data_path_fails_before_any_work(cli, tmp_path):
    code, _, err = cli("prune", "--data", f"imagefolder:{tmp_path / 'nope'}", "--out", tmp_path / "run", "-q")
    assert code == 2 and "is not a folder" in err
    assert list(tmp_path.iterdir()) == []


def test_budget_options(cli, tmp_path):
    with pytest.raises(SystemExit):
        cli("prune", "--target-flops", "0.5", "--sparsity", "0.3")
    code, _, err = cli("prune", "--target-flops", "1.5", "--out", tmp_path / "r")
    assert code == 2 and "--target-flops must be a fraction in (0, 1)" in err


def test_adam_cric_and_param_budget(cli, tmp_path):
    out = tmp_path / "run"
    code, out_text, _ = cli("prune", "otograph.testing.factories:tiny_cnn", "--data", "otograph.testing.factories:random_data", "--epochs", "5",
                            "--optimizer", "adam", "--cric", "--target-params", "0.3", "--periods", "2", "--batch-size", "8",
                            "--no-baseline", "--out", out, "-q")
    assert code == 0, out_text
    run = json.loads((out / "run.json").read_text())
    t = run["training"]
    assert t["optimizer"] == "adam" and t["cric"] and t["target"] == {"kind": "params", "fraction": 0.3}
    assert t["baseline"] == "trained" and run["before"]["accuracy"] == run["trained_accuracy"]
    assert run["after"]["params"] < run["before"]["params"]


def test_the_budget_reaches_hesso_as_the_one_target(cli, tmp_path, monkeypatch):
    from hesso import Target
    from otograph.cli import job

    seen = {}
    real_prune, real_hesso = job.prune, job.HESSO

    def spy_prune(o, **kwargs):
        seen["options"] = o.target
        return real_prune(o, **kwargs)

    def spy_hesso(*args, **kwargs):
        seen["hesso"] = kwargs["target"]
        return real_hesso(*args, **kwargs)

    monkeypatch.setattr(job, "prune", spy_prune)
    monkeypatch.setattr(job, "HESSO", spy_hesso)
    code, _, _ = cli("prune", "otograph.testing.factories:tiny_cnn", "--data", "otograph.testing.factories:random_data", "--epochs", "2", "--batch-size", "16",
                     "--sparsity", "0.3", "--no-baseline", "--out", tmp_path / "run", "-q")
    assert code == 0
    assert seen["hesso"] is seen["options"]
    assert seen["hesso"] == Target("units", 0.3)
    t = json.loads((tmp_path / "run" / "run.json").read_text())["training"]["target"]
    assert t == {"kind": "units", "fraction": 0.3}


def test_verify_takes_no_tracing_flags(cli, capsys):
    for flag in ("--leaf", "--frontend"):
        with pytest.raises(SystemExit) as e:
            cli("verify", "a.pt2", "b.pt2", flag, "fx")
        assert e.value.code == 2
        assert f"unrecognized arguments: {flag}" in capsys.readouterr().err


def test_digits_without_scikit_learn_says_what_to_install(monkeypatch):
    from otograph.cli.specs import DataError, load_data

    for name in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):  # as if it were not installed
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(DataError, match=r"scikit-learn(.|\n)*pip install 'otograph\[digits\]'"):
        load_data("digits")
