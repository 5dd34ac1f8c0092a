"""``otograph trace``: the groups table, JSON, and the tracing and op errors."""

from __future__ import annotations

import json


def test_trace_default_table(cli):
    code, out, _ = cli("trace")
    assert code == 0
    assert "SmallResNet" in out and "(2, 1, 8, 8)" in out
    header = out.splitlines()[1]
    for col in ("group", "units", "prunable / reason", "params/unit", "FLOPs/unit"):
        assert col in header
    assert "layer2.conv1  32     yes" in out
    assert "fc            10     no: reaches the model output" in out
    assert "6 groups, 5 prunable; 100.0% of 38,266 parameters" in out


def test_trace_json_is_complete(cli):
    code, out, _ = cli("trace", "torchvision:resnet18", "--input-shape", "1,3,32,32", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["class"] == "ResNet" and d["input_shape"] == [1, 3, 32, 32]
    ids = {g["id"]: g for g in d["groups"]}
    assert ids["layer1.0.conv1"]["prunable"] and ids["layer1.0.conv1"]["units"] == 64
    assert not ids["fc"]["prunable"] and ids["fc"]["reason"] == "reaches the model output"
    assert d["totals"]["params"] == 11_689_512 and d["totals"]["flops"] > 0
    conv1 = ids["layer1.0.conv1"]
    assert conv1["params_per_unit"] > 0 and conv1["flops_per_unit"] > 0
    assert {"param": "layer1.0.conv1.weight", "axis": 0, "role": "producer", "positions": 64, "size": 64} \
        in conv1["members"]


def test_unsupported_op_is_named_and_its_groups_unprunable(cli):
    code, out, _ = cli("trace", "otograph.testing.factories:with_cumsum")
    assert code == 0
    assert "opaque ops: torch.cumsum (cumsum)" in out
    row = next(line for line in out.splitlines() if line.startswith("a "))
    assert "no: touches the unsupported op torch.cumsum" in row
    assert next(line for line in out.splitlines() if line.startswith("b ")).split()[2] == "yes"
    d = json.loads(cli("trace", "otograph.testing.factories:with_cumsum", "--json")[1])
    assert d["opaque"] == ["torch.cumsum (cumsum)"]


def test_untraceable_model_names_the_module_and_suggests_a_leaf(cli):
    code, _, err = cli("trace", "otograph.testing.factories:untraceable")
    assert code == 2
    assert "inside module 'block'" in err and "control flow" in err
    assert "--leaf block" in err
    code, out, _ = cli("trace", "otograph.testing.factories:untraceable", "--leaf", "block")
    assert code == 0 and "head" in out
    code, out, _ = cli("trace", "otograph.testing.factories:untraceable", "--leaf", "_Branchy")  # a class name works too
    assert code == 0
    code, _, err = cli("trace", "otograph.testing.factories:untraceable", "--leaf", "nothing")
    assert code == 2 and "--leaf 'nothing' is neither" in err


def test_unknown_model_spec_is_an_error_not_a_traceback(cli):
    code, out, err = cli("trace", "torchvision:not_a_model")
    assert code == 2 and out == ""
    assert err.startswith("otograph: error: unknown torchvision model 'not_a_model'")


def test_trace_a_saved_pt2_uses_the_export_frontend(cli, pruned_run):
    code, out, _ = cli("trace", pruned_run / "model.pt2")
    assert code == 0
    assert "6 groups, 5 prunable" in out
    code, _, err = cli("trace", pruned_run / "model.pt2", "--frontend", "fx")
    assert code == 2 and "could not trace" in err and "--frontend export" in err


def test_the_leaf_hint_names_the_nested_module_that_failed(cli):
    code, _, err = cli("trace", "otograph.testing.factories:nested_untraceable")
    assert code == 2
    assert "On the command line: add --leaf body.1 (or its class name)" in err and "--frontend export" in err
    code, out, _ = cli("trace", "otograph.testing.factories:nested_untraceable", "--leaf", "body.1")
    assert code == 0 and "head" in out


def test_the_hint_comes_from_the_error_fields_not_its_text(cli, monkeypatch):
    import otograph
    from otograph.cli.main import trace_hint
    from otograph.errors import TraceError

    def fail(*args, **kwargs):
        raise TraceError("tracing failed", module="encoder.blocks.2")

    monkeypatch.setattr(otograph, "search_space", fail)
    code, _, err = cli("trace")
    assert code == 2 and "--leaf encoder.blocks.2" in err and "--frontend export" in err
    assert trace_hint(TraceError("fx failed", module="<root>")) == "\nOn the command line: try --frontend export."
    assert trace_hint(TraceError("torch.export could not export Net")) == ""  # export names no module
