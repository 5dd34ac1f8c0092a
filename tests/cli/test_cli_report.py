"""report.md does not mislead: only files that work, the batch sizes model.pt2 takes, latency with its
spread and "slower" when slower (issue 13 item 13)."""

from __future__ import annotations

from otograph.cli.record import RunRecord
from otograph.cli.report_md import render_report


def test_the_default_report_lists_working_files(pruned_run):
    report = (pruned_run / "report.md").read_text()
    run = RunRecord.load(pruned_run)
    assert run.files.standalone_py and run.files.dynamic_batch and run.space.frontend == "fx"
    assert "from model import load; net = load()" in report and "it takes any batch size" in report
    assert "Traced by torch.fx." in report
    b, a = run.before, run.after
    for bs in ("1", "32"):  # median and spread, recorded and shown
        for m in (b, a):
            low, high = m.latency_spread_ms[bs]
            assert low <= m.latency_ms[bs] <= high
            assert f"{m.latency_ms[bs]:.2f} ms [{low:.2f}–{high:.2f}]" in report
    assert "25th–75th percentile" in report


def test_a_report_names_only_what_works(pruned_run):
    run = RunRecord.load(pruned_run)
    run.files.standalone_py = False
    run.files.dynamic_batch = False
    report = render_report(run)
    assert "from model import load" not in report and "needs the original model's module classes" in report
    assert "it takes only batches of 2 (the example's batch size" in report
    run.files.pt2, run.files.pt2_error = False, "Unsupported: data-dependent op"
    run.files.search_space = "search_space.dot"
    report = render_report(run)
    assert "torch.export.load" not in report and "no `model.pt2`: torch.export failed (Unsupported" in report
    assert "![search space]" not in report and "`dot -Tsvg search_space.dot -o search_space.svg`" in report


def test_a_slower_compact_model_is_called_slower(pruned_run):
    run = RunRecord.load(pruned_run)
    run.before.latency_ms["1"], run.before.latency_spread_ms["1"] = 1.0, [0.95, 1.05]
    run.after.latency_ms["1"], run.after.latency_spread_ms["1"] = 1.5, [1.4, 1.6]
    report = render_report(run)
    assert "| CPU latency, batch 1 | 1.00 ms [0.95–1.05] | 1.50 ms [1.40–1.60] | 1.50× slower |" in report
    run.after.latency_spread_ms["1"] = [1.0, 2.0]
    assert "1.50× slower, within the spread |" in render_report(run)
