"""Property test: random models from the fuzz vocabulary (every rule family of the built-in registry and
every pattern of issue 13) keep every promise: traced by both frontends, the analysis leaves them
untouched, traps stay unprunable, and with ≥ 30 % of every prunable group's units removed the compact
model is exact in float64 (outputs, buffers, input and parameter gradients) with the expected
parameter count. The same generator drives ``tools/fuzz.py`` at scale; a failure here shrinks (hypothesis)
to a small model whose source the assertion prints."""

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from otograph.testing.fuzz import PATTERNS, render
from otograph.testing.fuzz.runner import run_case
from otograph.testing.fuzz.strategies import cases

PROFILE = {"deadline": None, "derandomize": True, "database": None, "print_blob": False,
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]}


def keeps_every_promise(case) -> None:
    result = run_case(case)
    assert result.invalid is None, f"the generator made an invalid model ({result.invalid}):\n{result.program.source}"
    assert result.outcomes, "no frontend checked the model"
    assert not result.failures, "\n".join(map(str, result.failures)) + "\n\n" + result.program.source


@settings(max_examples=60, **PROFILE)
@given(case=cases(size=5, skip=PATTERNS))
def test_random_models_keep_every_promise(case):
    keeps_every_promise(case)


@pytest.mark.parametrize("pattern", PATTERNS)
@settings(max_examples=8, **PROFILE)
@given(data=st.data())
def test_random_models_with_a_pattern_keep_every_promise(pattern, data):
    case = data.draw(cases(size=3, focus=[pattern], skip=[p for p in PATTERNS if p != pattern]))
    assume(pattern in render(case).patterns)
    keeps_every_promise(case)
