"""Tracing (the frontends): turn a model and example inputs into a shaped ``torch.fx`` graph."""

from otograph.tracing.frontend import DEFAULT_FRONTEND, FRONTENDS, Traced, record_shapes, trace
from otograph.tracing.values import META, TensorInfo, normalize_inputs

__all__ = ["Traced", "trace", "record_shapes", "normalize_inputs", "META", "TensorInfo", "FRONTENDS",
           "DEFAULT_FRONTEND"]
