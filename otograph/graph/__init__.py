"""The dependency graph (networkx) of a traced model, argument binding by schema, and costs."""

from otograph.graph.depgraph import to_networkx
from otograph.graph.signature import Bound, bind

__all__ = ["to_networkx", "bind", "Bound"]
