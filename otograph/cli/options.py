"""The options of one ``otograph prune`` run (its flags), with the built-in run's recipe as defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hesso import Target
from otograph.errors import OtographError

__all__ = ["PruneOptions", "OptionError", "DEFAULT_TARGET", "DEFAULT_TEMPERATURE", "at_least"]


class OptionError(OtographError):
    """A command-line flag has a value that cannot be used."""


def at_least(flag: str, value: float | None, low: float, *, above: bool = False) -> None:
    """Refuse ``flag``'s ``value`` below ``low`` (or not above it); None (not given) passes.

    >>> at_least("--epochs", 0, 1)
    Traceback (most recent call last):
    otograph.cli.options.OptionError: --epochs must be ≥ 1, got 0
    """
    if value is None:
        return
    ok = value > low if above else value >= low
    if not ok or value != value:  # NaN
        raise OptionError(f"{flag} must be {'>' if above else '≥'} {low:g}, got {value:g}")

#: The budget when none is given: remove half of the FLOPs.
DEFAULT_TARGET = Target("flops", 0.5)

#: The distillation temperature of ``--distill`` given without a value.
DEFAULT_TEMPERATURE = 2.0

_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}
_WD = {"sgd": 5e-4, "adam": 0.0, "adamw": 1e-2}


@dataclass
class PruneOptions:
    """Options of one prune run. ``target`` is handed to HESSO as it is."""

    model: str = "default"
    data: str = "digits"
    out: str = "runs/default"
    force: bool = False
    input_shape: tuple[int, ...] | None = None
    target: Target = DEFAULT_TARGET
    epochs: int = 10
    finetune_epochs: int = 0     # more epochs after the last pruning period (the periods fit into ``epochs``)
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    pruning_start: float = 0.1   # fraction of all steps before the first period
    pruning_span: float = 0.4    # fraction of all steps the periods cover
    periods: int = 4
    cric: bool = False
    round_to: int = 1            # keep a multiple of this many units in every group (HESSO's group_divisible)
    weights: str | None = None   # a state_dict file to start from; "before" is then its accuracy
    distill: float | None = None  # distillation temperature (a frozen copy of the starting model teaches); None: off
    baseline: bool = True        # also train the dense model with the same recipe, for "before"
    seed: int = 0
    leaf_modules: tuple[str, ...] = ()  # as given: submodule paths or class names
    frontend: str | None = None  # None: see otograph.cli.specs.frontend_for
    threads: int | None = None   # torch threads; None: 1 for the built-in model, else torch's default
    progress: bool = True
    save_reference: bool = True

    def hyper(self) -> dict[str, Any]:
        """The base optimizer's keyword arguments: lr, weight decay (and momentum for SGD)."""
        lr = self.lr if self.lr is not None else _LR[self.optimizer]
        wd = self.weight_decay if self.weight_decay is not None else _WD[self.optimizer]
        return {"lr": lr, "weight_decay": wd, **({"momentum": self.momentum} if self.optimizer == "sgd" else {})}
