"""What to remove: one value object for the pruning budget, from the command line to the optimizer.

Examples
--------
>>> Target("flops", 0.5)
Target(flops, 50%)
>>> Target.from_options(params=0.3)
Target(params, 30%)
>>> Target.from_options() is None
True
>>> Target("flops", 1.0)
Traceback (most recent call last):
...
ValueError: the flops reduction target must be a fraction in (0, 1), got 1.0
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Target", "KINDS"]

#: ``units``: a share of all prunable units (group sparsity); ``flops`` / ``params``: a share of the
#: model's FLOPs / parameters, counted from the units' costs.
KINDS = ("units", "flops", "params")


@dataclass(frozen=True)
class Target:
    """Remove ``fraction`` (in (0, 1)) of the model's ``kind``: ``"units"``, ``"flops"`` or ``"params"``."""

    kind: str
    fraction: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown target kind {self.kind!r}; one of {', '.join(KINDS)}")
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)) \
                or not 0.0 < float(self.fraction) < 1.0:
            raise ValueError(f"the {self.kind} reduction target must be a fraction in (0, 1), got {self.fraction!r}")
        object.__setattr__(self, "fraction", float(self.fraction))

    @classmethod
    def from_options(cls, *, units: float | None = None, flops: float | None = None,
                     params: float | None = None) -> Target | None:
        """The one target given, or None; two or more is an error."""
        given = [(k, v) for k, v in (("units", units), ("flops", flops), ("params", params)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one pruning target, got {', '.join(k for k, _ in given)}")
        return cls(*given[0]) if given else None

    def __repr__(self) -> str:
        return f"Target({self.kind}, {self.fraction:.0%})"
