"""Rule families; importing this package fills the registry."""

from otograph.analysis.rules import (  # noqa: F401  (registration side effects)
    aten,
    attention,
    composition,
    contraction,
    coupling,
    elementwise,
    layout,
    passthrough,
    producers,
    thirdparty,
)
from otograph.analysis.rules.registry import RULES, Registry, Rule, register, register_op

__all__ = ["RULES", "Registry", "Rule", "register", "register_op"]
