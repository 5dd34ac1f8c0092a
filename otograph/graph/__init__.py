"""The dependency graph (networkx) of a traced model."""

from otograph.graph.depgraph import to_networkx

__all__ = ["to_networkx"]
