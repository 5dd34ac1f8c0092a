"""The run record: typed, written to ``run.json`` from the dataclass and read back into it."""

from __future__ import annotations

import json

import pytest

from hesso import Target
from otograph.cli.record import GroupOutcome, RunRecord, Schedule
from otograph.cli.specs import SpecError
from otograph.cli.training import History
from otograph.report.measure import Measurement


def test_run_json_round_trips(pruned_run):
    text = (pruned_run / "run.json").read_text()
    run = RunRecord.from_json(text)
    assert run.to_json() == text  # run.json was written from the record
    again = RunRecord.from_json(run.to_json())
    assert again == run
    assert isinstance(run.before, Measurement) and isinstance(run.history.hesso, History)
    assert isinstance(run.groups[0], GroupOutcome) and isinstance(run.training.pruning, Schedule)
    assert run.training.target == Target("flops", 0.5) == run.options.target
    assert run.options.input_shape is None and run.options.leaf_modules == ()
    assert run.model.class_name == "SmallResNet" and json.loads(text)["model"]["class"] == "SmallResNet"


def test_a_changed_record_is_not_equal(pruned_run):
    run = RunRecord.load(pruned_run)
    other = RunRecord.from_json(run.to_json())
    other.history.hesso.loss[-1] += 1.0
    assert other != run


def test_records_written_before_target_still_read(pruned_run):
    data = json.loads((pruned_run / "run.json").read_text())
    data["training"]["target"] = {"kind": "groups", "value": 0.3}  # the old spelling of --sparsity 0.3
    del data["options"]["target"]
    run = RunRecord.from_json(json.dumps(data))
    assert run.training.target == Target("units", 0.3) == run.options.target


def test_records_written_before_weights_and_distillation_still_read(pruned_run):
    from otograph.cli.report_md import render_report

    data = json.loads((pruned_run / "run.json").read_text())
    for key in ("finetune_epochs", "round_to", "distill", "weights"):
        del data["training"][key], data["options"][key]
    for key in ("distill", "param_reduction"):
        del data["history"]["hesso"][key]
    run = RunRecord.from_json(json.dumps(data))
    t = run.training
    assert (t.finetune_epochs, t.round_to, t.distill, t.weights) == (0, 1, None, None)
    assert run.history.hesso.distill == [] and run.history.hesso.param_reduction == []
    assert render_report(run) == render_report(RunRecord.load(pruned_run))


def test_load_refuses_a_folder_without_a_record(tmp_path):
    with pytest.raises(SpecError, match="no run.json"):
        RunRecord.load(tmp_path)


def test_schedule_ranges():
    assert Schedule(start_step=10, steps=9, periods=2).ranges() == [(10, 14), (14, 18)]
