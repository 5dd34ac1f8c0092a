"""The built-in rules, one file per family; importing this package fills ``registry.BUILTIN``."""

from otograph.analysis.rules import (  # noqa: F401  (registration side effects)
    attention,
    composition,
    contraction,
    coupling,
    elementwise,
    layout,
    meta,
    passthrough,
    producer,
)
