"""The fuzzer itself: valid models, every rule family and pattern generated, checks that see what they
must, shrinking, reproductions, and the tool's summary (tools/fuzz.py)."""

import copy
import dataclasses
import importlib.util
import re
from pathlib import Path

import pytest
import torch

import otograph
from otograph.analysis.registry import BUILTIN, FAMILIES
from otograph.testing import check_exact
from otograph.testing.fuzz import PATTERNS, VOCAB, Case, RandomChooser, Step, generate, load, render, validate
from otograph.testing.fuzz.checks import changes, check_model, snapshot
from otograph.testing.fuzz.runner import _ddmin, repro_source, run_case, shrink, write_repro

ROOT = Path(__file__).resolve().parents[2]


def test_generated_models_are_valid_and_replay_exactly():
    for seed in range(60):
        case = generate(RandomChooser(seed), seed, size=8)
        program = render(case)
        assert validate(program.source) is None, program.source
        assert list(program.kinds) == [s.kind for s in case.steps]  # every generated step fits on replay
        assert render(case).source == program.source


def test_a_padding_trap_grows_the_spatial_shape_the_generator_tracks():
    """Case 43000353 (5-D): ``F.pad(x, value=1.0)`` as a trap, then flatten → linear: the linear's
    width must count the padded positions, or the generated model does not run."""
    case = generate(RandomChooser(43000353), 43000353, size=8)
    program = render(case)
    assert "F.pad(x, (1, 1, 1, 1, 1, 1), value=1.0)" in program.source and "flatten" in program.kinds
    assert validate(program.source) is None


def test_every_rule_family_kind_and_pattern_is_generated():
    """Walk the registry: every built-in op kind shows up in the analysed graph of some generated model."""
    seen, patterns = set(), set()
    for i, kind in enumerate(sorted(VOCAB)):
        for seed in (i, 1000 + i, 2000 + i):
            case = generate(RandomChooser(seed), seed, size=3, focus=[kind])
            program = render(case)
            patterns |= program.patterns
            mod = load(program.source)
            for frontend in program.frontends:
                try:
                    space = otograph.search_space(mod.build().eval(), mod.inputs(0), frontend=frontend)
                except otograph.OtographError:
                    continue  # wrappers under fx: a failure the fuzzer reports, not coverage
                seen |= {k for _, k in space.graph.nodes(data="kind") if k}
    missing = set(BUILTIN.rules) - seen - {"identity"}
    assert not missing, f"op kinds no generated model uses: {sorted(missing)}"
    assert {BUILTIN.rules[k].family for k in seen if k in BUILTIN.rules} == set(FAMILIES)
    assert patterns == set(PATTERNS), set(PATTERNS) - patterns


def test_skip_leaves_patterns_out_and_focus_brings_them_in():
    for seed in range(40):
        assert not render(generate(RandomChooser(seed), seed, skip=PATTERNS)).patterns
    focused = [render(generate(RandomChooser(s), s, size=3, focus=["no_grad"])).patterns for s in range(20)]
    assert sum("no_grad" in p for p in focused) >= 10


def _case(*steps, mode="vec", dims=(6,), **options) -> Case:
    return Case(7, mode, dims, tuple(Step(k, tuple(sorted(p.items()))) for k, p in steps), **options)


PLAIN = _case(("linear", {"w": 8}), ("act", {}), ("residual", {}), ("head", {}))


def test_check_model_agrees_with_check_exact():
    for seed in range(6):
        case = generate(RandomChooser(seed), seed, size=5, skip=PATTERNS)
        program = render(case)
        mod = load(program.source)
        for frontend in program.frontends:
            out = check_model(mod.build, mod.inputs, frontend=frontend, seed=case.seed)
            checks = {f.check for f in out.failures}
            try:
                res = check_exact(mod.build(), mod.inputs(0), mod.inputs(1), seed=case.seed, frontend=frontend)
            except otograph.OtographError as e:  # a bug the fuzzer must report too
                assert checks & {"trace", "analysis", "compress"}, (e, out.failures)
                continue
            assert out.removed == sum(len(u) for u in res.units.values())
            assert res.ok == (not checks & {"exact", "params"}), (out.failures, res)


def test_snapshot_sees_every_change_an_analysis_could_make():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    mutations = {
        "changed its values": lambda m: m[1].running_mean.add_(1),
        "replaced by another tensor": lambda m: setattr(m[0], "weight", torch.nn.Parameter(m[0].weight.clone())),
        "requires_grad": lambda m: m[0].bias.requires_grad_(False),
        "training": lambda m: m[1].eval(),
        "attributes": lambda m: setattr(m[0], "otograph_seen", True),
        "forward hooks": lambda m: m[0].register_forward_hook(lambda *a: None),
        "grad_enabled": lambda m: torch.set_grad_enabled(False),
        "grad changed": lambda m: setattr(m[0].weight, "grad", torch.ones(4, 3)),
    }
    for words, mutate in mutations.items():
        m = copy.deepcopy(net).train()
        before = snapshot(m)
        try:
            assert changes(before, snapshot(m)) == []
            mutate(m)
            found = changes(before, snapshot(m))
        finally:
            torch.set_grad_enabled(True)
        assert any(words in c for c in found), (words, found)


def test_the_in_place_check_sees_a_wrong_shrink_and_a_refusal_that_changed_the_model(monkeypatch):
    from otograph.rewrite import ShrinkError
    from otograph.testing.fuzz import checks

    mod = load(render(PLAIN).source)
    assert check_model(mod.build, mod.inputs, seed=7).in_place == "shrunk"
    real = checks.compress

    def wrong(model, space, units, inplace=False):
        out = real(model, space, units, inplace=inplace)
        if inplace:
            with torch.no_grad():
                next(out.parameters()).add_(1.0)
        return out

    def dirty(model, space, units, inplace=False):
        if inplace:
            with torch.no_grad():
                next(model.parameters()).add_(1.0)
            raise ShrinkError("refused on purpose")
        return real(model, space, units, inplace=inplace)

    for fake, words in ((wrong, "computes something else"), (dirty, "refused (ShrinkError: refused on purpose")):
        monkeypatch.setattr(checks, "compress", fake)
        out = check_model(mod.build, mod.inputs, seed=7)
        assert out.removed > 0 and [f.check for f in out.failures] == ["inplace"], out.failures
        assert words in out.failures[0].message and (fake is wrong or "changed the model" in out.failures[0].message)


def test_ddmin_finds_a_one_minimal_sublist():
    calls = []

    def test(items):
        calls.append(items)
        return {3, 11} <= set(items)

    assert _ddmin(list(range(20)), test, deadline=float("inf")) == [3, 11]
    assert len(calls) < 60


@pytest.fixture
def sigmoid_claims_zero(monkeypatch):
    """A bug on purpose: the rule of sigmoid & co. says f(0) = 0."""
    wrong = dataclasses.replace(BUILTIN.rules["unary"], couple=BUILTIN.rules["unary_zero"].couple)
    monkeypatch.setitem(BUILTIN.rules, "unary", wrong)


TRAPPED = _case(("linear", {"w": 6}), ("norm", {}), ("act", {}),
                ("trap", {"kind": "unary", "call": "x = torch.sigmoid(x)", "consumer_w": 4}), ("act", {}), ("head", {}))


def test_a_wrong_rule_is_caught_shrunk_and_reproduced(sigmoid_claims_zero, tmp_path):
    result = run_case(TRAPPED, frontends=("fx",))
    checks = {f.check for f in result.failures}
    assert {"trap", "exact"} <= checks, result.failures
    small = shrink(TRAPPED, next(f for f in result.failures if f.check == "exact"), seconds=120)
    kinds = render(small).kinds
    assert "trap" in kinds and len(kinds) <= 3, kinds
    path = write_repro(tmp_path, "case_0_0", small, result.primary)
    repro = load(path.read_text())
    with pytest.raises(AssertionError, match="trap"):
        repro.main()


def test_a_repro_passes_once_the_bug_is_gone(capsys):
    result = run_case(TRAPPED, frontends=("fx",))
    assert not result.failures, result.failures  # the real sigmoid rule keeps the group unprunable
    failure = otograph.testing.fuzz.checks.Failure("trap", "fx", "was prunable")
    load(repro_source(TRAPPED, failure)).main()
    assert "passes: trap (fx)" in capsys.readouterr().out


def test_known_gap_patterns_are_reported_not_hidden():
    """A model whose forward updates a buffer: the fuzzer names what changed, whatever the verdict."""
    case = _case(("linear", {"w": 5}), ("buffer", {"kind": "counter", "call": "self.calls1.add_(1)"}), ("head", {}))
    program = render(case)
    assert "buffer" in program.patterns and "self.calls1.add_(1)" in program.source
    for failure in run_case(case).failures:
        assert failure.check in ("untouched", "buffers") and "calls1" in failure.message, failure


def test_the_tool_runs_cases_and_prints_the_summary(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("fuzz_tool", ROOT / "tools" / "fuzz.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    status = tool.main(["--cases", "3", "--size", "2", "--workers", "1", "--skip", ",".join(PATTERNS),
                        "--out", str(tmp_path / "failures")])
    text = capsys.readouterr().out
    assert "cases 3: 3 checked, 0 invalid" in text
    for word in ("check", "trace", "grad", "family", *FAMILIES, "pattern", *PATTERNS):
        assert word in text
    failing = int(text.split(" failing")[0].rsplit(" ", 1)[-1])
    assert status == (1 if failing else 0)
    assert (tmp_path / "failures").exists() == bool(failing)


def test_the_quick_campaign_is_clean(tmp_path, capsys):
    """CI's share of the fuzzing: ``tools/fuzz.py --quick`` (200 cases of at most 4 steps, every
    pattern, both frontends, a fixed seed) finds nothing."""
    spec = importlib.util.spec_from_file_location("fuzz_tool", ROOT / "tools" / "fuzz.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    status = tool.main(["--quick", "--out", str(tmp_path / "failures")])
    text = capsys.readouterr().out
    assert "cases 200: 200 checked, 0 invalid (generator), 0 failing" in text, text[-3000:]
    assert re.search(r"in place \(compress inplace=True\): [1-9][0-9]* runs shrunk", text), text[:600]
    assert status == 0


class _Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2), torch.nn.Linear(2, 3)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.head(torch.relu(self.a(x)) + torch.tanh(self.b(x)))


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_tied_weights_in_a_wrapper_are_checked_under_every_name(frontend):
    """The checks slice the model's gradients by the plan, which names tensors without the wrapper's
    ``module.`` prefix: a tied weight's second name must find its kept rows too."""
    def build():
        torch.manual_seed(0)
        return torch.nn.DataParallel(_Tied())

    def inputs(seed):
        return (torch.randn(2, 2, generator=torch.Generator().manual_seed(seed)),)

    outcome = check_model(build, inputs, frontend=frontend, seed=3, fraction=0.5)
    assert outcome.removed and not outcome.failures, outcome.failures


class _Centred(torch.nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv, self.reader = torch.nn.Conv2d(1, channels, 1), torch.nn.Conv2d(channels, 6, 1)

    def forward(self, x):
        x = self.conv(x)
        return self.reader(x - x.mean(1, keepdim=True))


@pytest.mark.parametrize("channels", [1, 3])
def test_a_trap_on_a_group_of_one_unit_is_kept(channels):
    """Centring over channels mixes them (a trap), except over one channel, where it is zero; a
    group of one unit is never removed anyway, so the trap check does not count it."""
    def build():
        torch.manual_seed(0)
        return _Centred(channels)

    def inputs(seed):
        return (torch.randn(2, 1, 2, 2, generator=torch.Generator().manual_seed(seed)),)

    traps = (("conv.weight", 0, None, "centre"),)
    for frontend in ("fx", "export"):
        outcome = check_model(build, inputs, frontend=frontend, seed=1, traps=traps)
        assert not outcome.failures, outcome.failures
