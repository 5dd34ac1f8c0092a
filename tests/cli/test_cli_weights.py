"""``--weights FILE``: a state dict read with weights_only=True, refused in one line when it does not fit."""

from __future__ import annotations

import pytest
import torch

from otograph.cli.specs import SpecError
from otograph.cli.weights import load_weights
from otograph.testing.factories import TinyCNN

MODEL = "otograph.testing.factories:tiny_cnn"


def _error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert lines[0].startswith("otograph: error: ") and all(line.startswith("Fix: ") for line in lines[1:]), err
    return lines[0]


def test_a_state_dict_that_does_not_fit_names_every_problem(cli, tmp_path):
    state = TinyCNN(10).state_dict()
    del state["conv1.bias"]
    state["head.weight"] = torch.zeros(3)
    state["fc.weight"] = torch.zeros(5, 12)  # another class count
    torch.save(state, tmp_path / "w.pt")
    code, out, err = cli("prune", MODEL, "--weights", tmp_path / "w.pt", "--out", tmp_path / "run", "-q")
    line = _error_line(err)
    assert code == 2 and out == "" and "Traceback" not in err
    assert f"--weights {tmp_path / 'w.pt'}: does not fit the model (TinyCNN)" in line
    assert "missing keys: conv1.bias" in line and "unexpected keys: head.weight" in line
    assert "shapes differ: fc.weight (file (5, 12), model (10, 12))" in line
    assert "num_classes" in err  # the fix names the usual cause
    assert not (tmp_path / "run").exists()


def test_many_missing_keys_are_counted(tmp_path):
    torch.save({"other": torch.zeros(1)}, tmp_path / "w.pt")
    with pytest.raises(SpecError, match=r"(?m)missing keys: conv1\.weight, conv1\.bias, bn1\.weight, bn1\.bias and 7 more; "
                                        r"unexpected keys: other$") as e:
        load_weights(TinyCNN(10), tmp_path / "w.pt")
    assert len(str(e.value).splitlines()) == 2  # the message and its fix


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"not a torch file", "not a state dict torch.load can read with weights_only=True"),
    ("whole model", "not a state dict torch.load can read with weights_only=True"),
    ([torch.zeros(2)], "holds list, not a state dict"),
    ({}, "holds dict, not a state dict"),
])
def test_files_that_are_not_state_dicts(cli, tmp_path, content, message):
    path = tmp_path / "w.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "whole model":  # a pickled module needs code to load: weights_only refuses it
        torch.save(TinyCNN(10), path)
    elif content is not None:
        torch.save(content, path)
    code, _, err = cli("prune", MODEL, "--weights", path, "--out", tmp_path / "run", "-q")
    assert code == 2 and message in _error_line(err) and "Traceback" not in err
    assert "torch.save(model.state_dict(), FILE)" in err
    assert not (tmp_path / "run").exists()


def test_wrapped_checkpoints_and_ddp_prefixes_load(tmp_path):
    source = TinyCNN(10)
    for i, saved in enumerate([{"state_dict": source.state_dict(), "epoch": 3},
                               {f"module.{k}": v for k, v in source.state_dict().items()}]):
        torch.save(saved, tmp_path / f"w{i}.pt")
        target = TinyCNN(10)
        load_weights(target, tmp_path / f"w{i}.pt")
        assert all(torch.equal(v, source.state_dict()[k]) for k, v in target.state_dict().items())
