"""Hypothesis strategies over the fuzz generator: ``cases()`` draws a :class:`~.program.Case`.

The generator's decisions come from a ``random.Random`` that hypothesis controls
(``st.randoms(use_true_random=False)``): examples are as varied as the plain seeded generator's, and
a failing case shrinks the way hypothesis shrinks its draws, towards fewer steps, the first (simplest)
options and small sizes. Hypothesis is a test dependency (``pip install otograph[test]``); nothing
else imports this module.
"""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import strategies as st

from otograph.testing.fuzz.generator import generate
from otograph.testing.fuzz.program import Case, RandomChooser

__all__ = ["cases"]


@st.composite
def cases(draw, *, size: int = 4, skip: Iterable[str] = (), focus: Iterable[str] = ()) -> Case:
    """Random fuzz cases of at most ``size`` steps (see :func:`~.generator.generate`)."""
    seed = draw(st.integers(0, 2 ** 16))
    return generate(RandomChooser(draw(st.randoms(use_true_random=False))), seed, size=size, skip=skip, focus=focus)
