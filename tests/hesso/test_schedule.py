import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hesso.schedule
from hesso.schedule import Schedule, decay_factor, quotas


def test_doctests():
    assert doctest.testmod(hesso.schedule).failed == 0


@given(st.integers(0, 50), st.integers(1, 200), st.integers(1, 10))
def test_phase_covers_each_period_once(start, steps, periods):
    if steps < periods:
        with pytest.raises(ValueError):
            Schedule(start, steps, periods)
        return
    s = Schedule(start, steps, periods)
    phases = [s.phase(k) for k in range(start + steps + 5)]
    inside = [p for p in phases if p is not None]
    assert inside == [(p, t) for p in range(periods) for t in range(s.duration)]
    assert phases[start] == (0, 0) and s.end - s.start <= steps


@given(st.integers(0, 1000), st.integers(1, 20))
def test_quotas_sum_and_last_takes_remainder(total, periods):
    q = quotas(total, periods)
    assert sum(q) == total and len(q) == periods
    assert all(x == total // periods for x in q[:-1]) and q[-1] >= q[0]


@given(st.integers(1, 300), st.floats(-1e3, 1e3, allow_nan=False))
def test_decay_reaches_exact_zero_and_stays_positive_before(length, x0):
    x = x0
    for t in range(length - 1):
        x *= decay_factor(t, length)
        assert abs(x) <= abs(x0)
    assert x * decay_factor(length - 1, length) == 0.0
    with pytest.raises(ValueError):
        decay_factor(length, length)
