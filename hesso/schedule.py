"""Period arithmetic of the HESSO schedule (pure, no tensors).

Steps are counted from 0: ``k`` is the number of optimizer steps already taken when step ``k``
runs. Pruning happens in ``periods`` periods of ``duration = steps // periods`` steps, the first
one starting at step ``start``. In period ``p``, at in-period step ``t`` (``0 … duration-1``), the
redundant units of that period are multiplied by :func:`decay_factor` after the base step, so
they reach exactly zero at the period's last step.

Examples
--------
>>> s = Schedule(start=10, steps=30, periods=3)
>>> s.duration, s.end
(10, 40)
>>> s.phase(9) is None, s.phase(10), s.phase(25), s.phase(40) is None
(True, (0, 0), (1, 5), True)
>>> quotas(10, 3)
[3, 3, 4]
>>> [decay_factor(t, 4) for t in range(4)]
[0.75, 0.6666666666666666, 0.5, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Schedule", "quotas", "decay_factor"]


@dataclass(frozen=True)
class Schedule:
    """When the pruning periods happen.

    ``start``: the step at which the first period begins; ``steps``: the pruning budget in steps
    (split evenly between the periods, a remainder ``steps % periods`` is left unused at the end);
    ``periods``: how many periods the units are removed over.
    """

    start: int
    steps: int
    periods: int = 1

    def __post_init__(self) -> None:
        if self.start < 0:
            raise ValueError(f"start_pruning_step must be >= 0, got {self.start}")
        if self.periods < 1:
            raise ValueError(f"pruning_periods must be >= 1, got {self.periods}")
        if self.steps < self.periods:
            raise ValueError(
                f"pruning_steps ({self.steps}) must be at least pruning_periods ({self.periods}): "
                "every period needs one step")

    @property
    def duration(self) -> int:
        """Steps per period, ``D = steps // periods``."""
        return self.steps // self.periods

    @property
    def end(self) -> int:
        """First step after the last period."""
        return self.start + self.periods * self.duration

    def phase(self, k: int) -> tuple[int, int] | None:
        """``(period, t)`` of step ``k``, or ``None`` outside the pruning periods."""
        if k < self.start or k >= self.end:
            return None
        return divmod(k - self.start, self.duration)


def quotas(total: int, periods: int) -> list[int]:
    """Units removed in each period: ``total // periods``, the last period takes the remainder."""
    if total < 0 or periods < 1:
        raise ValueError(f"bad quota request: total={total}, periods={periods}")
    each = total // periods
    return [each] * (periods - 1) + [total - each * (periods - 1)]


def decay_factor(t: int, length: int) -> float:
    """The factor ``(L-t-1)/(L-t)`` applied at step ``t`` of a decay of ``length`` steps.

    The product over ``t = 0 … L-1`` telescopes to exactly zero at the last step.
    """
    if not 0 <= t < length:
        raise ValueError(f"step {t} outside a decay of {length} steps")
    return (length - t - 1) / (length - t)
