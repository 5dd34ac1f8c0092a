"""Frontends: turn a model and example inputs into a shaped ``torch.fx`` graph."""

from otograph.trace.fx import Traced, normalize_inputs, trace

__all__ = ["Traced", "trace", "normalize_inputs"]
