"""What prune trains, and when training goes wrong (issue 13 items 9 and 11)."""

from __future__ import annotations

import json
import shutil

TINY_DATA = ("--data", "otograph.testing.factories:random_data", "--batch-size", "16", "--no-baseline", "-q")


def test_prune_refuses_to_train_a_saved_program(cli, pruned_run, tmp_path):
    for spec in (pruned_run, pruned_run / "model.pt2"):
        code, out, err = cli("prune", spec, "--out", tmp_path / "again")
        assert code == 2 and "Traceback" not in err and out == ""
        assert "is a saved torch.export program: its graph is fixed in eval mode" in err
        assert f"cd {pruned_run} && otograph prune model:load --input-shape 2,1,8,8" in err
        assert "prune the original model ('default') again" in err
    assert list(tmp_path.iterdir()) == []


def test_the_suggested_model_py_prunes_again(cli, pruned_run, tmp_path, monkeypatch):
    folder = tmp_path / "first"
    shutil.copytree(pruned_run, folder)
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    code, _, err = cli("prune", "model:load", "--input-shape", "2,1,8,8", "--epochs", "1", "--no-baseline", "-q",
                       "--out", tmp_path / "again")
    assert code == 0, err
    run = json.loads((tmp_path / "again" / "run.json").read_text())
    first = json.loads((folder / "run.json").read_text())
    assert run["model"]["class"] == "CompactModel" and run["before"]["params"] == first["after"]["params"]
    assert run["exactness"]["max_abs_f64"] <= 1e-9 and run["after"]["params"] < run["before"]["params"]


def test_an_exported_module_from_a_factory_is_refused(cli, tmp_path):
    code, _, err = cli("prune", "tests.cli.bad_inputs:exported_cnn", *TINY_DATA, "--out", tmp_path / "run")
    assert code == 2 and "cannot be put in training mode" in err and "NotImplementedError" in err
    assert list(tmp_path.iterdir()) == []


def test_a_diverging_run_is_an_error(cli, tmp_path):
    code, out, err = cli("prune", "otograph.testing.factories:tiny_cnn", *TINY_DATA, "--lr", "1e30",
                         "--epochs", "2", "--out", tmp_path / "run")
    assert code == 2 and "training diverged: the loss is nan at step" in err and "smaller --lr" in err
    assert list(tmp_path.iterdir()) == [] and "wrote" not in out


def test_a_run_shorter_than_the_periods_is_refused_with_the_numbers(cli, tmp_path):
    code, _, err = cli("prune", "otograph.testing.factories:tiny_cnn", *TINY_DATA, "--epochs", "1",
                       "--batch-size", "64", "--out", tmp_path / "run")
    assert code == 2 and "1 epoch(s) of 1 batch(es) are 1 training step(s), fewer than the 4 pruning periods" in err
    assert "--periods 1" in err and list(tmp_path.iterdir()) == []


def test_the_schedule_fits_a_short_run(cli, tmp_path):
    # 3 epochs of 4 batches, 12 periods: the periods used to start at step 1 and end after the last step
    code, _, err = cli("prune", "otograph.testing.factories:tiny_cnn", *TINY_DATA, "--epochs", "3",
                       "--batch-size", "16", "--periods", "12", "--sparsity", "0.5", "--out", tmp_path / "run")
    assert code == 0, err
    t = json.loads((tmp_path / "run" / "run.json").read_text())["training"]
    assert t["steps"] == 12 and t["pruning"] == {"start_step": 0, "steps": 12, "periods": 12}
    assert t["hesso"]["stage"] == "done" and t["hesso"]["group_sparsity"] >= 0.45


def test_a_loader_shorter_than_its_len_is_an_error_not_a_missed_budget(cli, tmp_path):
    code, _, err = cli("prune", "otograph.testing.factories:tiny_cnn", "--data", "tests.cli.bad_inputs:overstated_data",
                       "--no-baseline", "-q", "--epochs", "2", "--out", tmp_path / "run")
    assert code == 2 and "before HESSO's pruning periods did" in err and "budget was not reached" in err
    assert list(tmp_path.iterdir()) == []
