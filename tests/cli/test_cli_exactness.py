"""The exactness check is a gate: a compact model beyond float rounding of the trained one, or NaN,
fails the run and keeps nothing (issue 13 item 7)."""

from __future__ import annotations

import torch

import otograph

TINY = ("otograph.testing.factories:tiny_cnn", "--data", "otograph.testing.factories:random_data",
        "--epochs", "1", "--batch-size", "16", "--no-baseline", "-q")


def _compress_then(monkeypatch, change):
    real = otograph.compress

    def compress(model, space, *args, **kwargs):
        compact = real(model, space, *args, **kwargs)
        with torch.no_grad():
            change(compact)
        return compact

    monkeypatch.setattr(otograph, "compress", compress)


def test_a_compact_model_that_differs_fails_the_run(cli, tmp_path, monkeypatch):
    _compress_then(monkeypatch, lambda m: m.fc.bias.add_(0.05))
    code, out, err = cli("prune", *TINY, "--out", tmp_path / "run")
    assert code == 2 and "Traceback" not in err
    assert "the compact model does not compute what the trained model computes" in err
    assert "bound 1e-9·max(1, max|y|)" in err and "the run was not saved" in err
    assert list(tmp_path.iterdir()) == [] and "wrote" not in out


def test_a_compact_model_with_nan_fails_the_run(cli, tmp_path, monkeypatch):
    _compress_then(monkeypatch, lambda m: m.fc.weight.fill_(float("nan")))
    code, _, err = cli("prune", *TINY, "--out", tmp_path / "run")
    assert code == 2 and "does not compute what the trained model computes: max |Δ| nan" in err
    assert list(tmp_path.iterdir()) == []


def test_a_trained_model_with_nan_outputs_fails_the_run(cli, tmp_path, monkeypatch):
    from otograph.cli import job

    real = job.train_hesso

    def train_hesso(o, model, *args):
        trained = real(o, model, *args)
        with torch.no_grad():
            model.fc.bias.fill_(float("inf"))
        return trained

    monkeypatch.setattr(job, "train_hesso", train_hesso)
    code, _, err = cli("prune", *TINY, "--out", tmp_path / "run")
    assert code == 2 and "the trained model outputs NaN or inf" in err and "--lr" in err
    assert list(tmp_path.iterdir()) == []


def test_verify_with_an_empty_batch_is_an_error(cli):
    code, out, err = cli("verify", "default", "default", "--batch", "0")
    assert code == 2 and out == "" and "--batch must be at least 1" in err


def test_verify_of_a_nan_model_is_different(cli):
    code, out, _ = cli("verify", "otograph.testing.factories:tiny_cnn", "tests.cli.bad_inputs:nan_cnn")
    assert code == 1 and "DIFFERENT: an output is NaN or inf" in out
    code, out, _ = cli("verify", "tests.cli.bad_inputs:nan_cnn", "tests.cli.bad_inputs:nan_cnn")
    assert code == 1 and "NaN" in out
