"""otograph: automatic, exact structured pruning for any PyTorch model."""

from otograph.analysis import Group, Member, SearchSpace, search_space
from otograph.analysis.rules.registry import register_op
from otograph.errors import AnalysisError, OtographError, RewriteError, TraceError
from otograph.rewrite import compress, verify
from otograph.trace import Traced, trace
from otograph.viz import render as viz

__all__ = ["trace", "search_space", "compress", "verify", "viz", "register_op", "Traced", "SearchSpace", "Group",
           "Member", "OtographError", "TraceError", "AnalysisError", "RewriteError"]
__version__ = "0.1.0"
