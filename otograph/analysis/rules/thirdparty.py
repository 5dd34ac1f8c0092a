"""Rules for wrapped functions of well-known libraries, registered only when they are installed."""

from __future__ import annotations

from otograph.analysis.rules.registry import default_registry


def _register() -> None:
    reg = default_registry()
    try:  # torchvision's stochastic depth: x * bernoulli mask / (1 - p): zeros stay zeros
        from torchvision.ops import stochastic_depth

        reg.add_targets("unary_zero", [stochastic_depth])
    except ImportError:
        pass


_register()
