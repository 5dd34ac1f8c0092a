"""otograph: automatic, exact structured pruning for any PyTorch model.

The verbs: :func:`trace`, :func:`search_space`, :func:`compress`, :func:`verify` and :func:`viz`
(loaded on first use, so ``import otograph`` does not load graphviz). Subpackages are nouns, one
per pipeline stage (``tracing``, ``graph``, ``analysis``, ``rewrite``, ``report``, ``drawing``,
``cli``), so no verb hides a subpackage.
"""

from otograph.analysis import Group, Member, Registry, SearchSpace, register_op, search_space
from otograph.errors import AnalysisError, OtographError, RewriteError, TraceError
from otograph.rewrite import ShrinkError, compress, register_resize, verify
from otograph.tracing import Traced, trace

__all__ = ["trace", "search_space", "compress", "verify", "viz", "register_op", "register_resize", "Registry", "Traced",
           "SearchSpace", "Group", "Member", "OtographError", "TraceError", "AnalysisError", "RewriteError", "ShrinkError"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "viz":  # graphviz is imported only when a picture is drawn
        from otograph.drawing import render

        return render
    raise AttributeError(f"module 'otograph' has no attribute {name!r}")
