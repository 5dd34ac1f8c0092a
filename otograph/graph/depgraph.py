"""fx graph → ``networkx.DiGraph``: one node per fx node with its op, shape and parameters."""

from __future__ import annotations

import networkx as nx

from otograph.tracing import META, TensorInfo, Traced

__all__ = ["to_networkx"]


def to_networkx(traced: Traced) -> nx.DiGraph:
    """Dependency graph of a :class:`~otograph.tracing.Traced`; edges follow data flow.

    Example:
        >>> import torch, otograph
        >>> t = otograph.trace(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU()), torch.randn(1, 2))
        >>> g = to_networkx(t)
        >>> list(g.edges)
        [('input_1', '_0'), ('_0', '_1'), ('_1', 'output')]
    """
    gm = traced.gm
    modules = dict(gm.named_modules())
    g = nx.DiGraph()
    for node in gm.graph.nodes:
        info = node.meta.get(META)
        params = []
        if node.op == "call_module":
            params = [f"{node.target}.{n}" for n, _ in modules[node.target].named_parameters()]
        elif node.op == "get_attr":
            params = [node.target]
        g.add_node(node.name, op=node.op, target=str(node.target), fx=node,
                   shape=info.shape if isinstance(info, TensorInfo) else None, params=params,
                   module=node.meta.get("nn_module_stack") and list(node.meta["nn_module_stack"])[-1])
        for inp in node.all_input_nodes:
            g.add_edge(inp.name, node.name)
    return g
