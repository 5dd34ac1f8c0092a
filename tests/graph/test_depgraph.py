"""The networkx dependency graph: one node per fx node, shapes, parameters, kinds from the analysis."""



import torch
import torch.nn as nn

import otograph
from otograph.testing.topologies import cbr


def small():
    return nn.Sequential(cbr(3, 8), cbr(8, 6), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()


def test_trace_records_shapes_and_networkx():
    t = otograph.trace(small(), torch.randn(2, 3, 8, 8))
    from otograph.graph import to_networkx

    g = to_networkx(t)
    assert g.number_of_nodes() == len(t.gm.graph.nodes)
    conv = g.nodes["_0_0"]
    assert otograph.search_space(small(), torch.randn(2, 3, 8, 8)).graph.nodes["_0_0"]["kind"] == "conv"
    assert conv["shape"] == (2, 8, 8, 8) and conv["params"] == ["0.0.weight", "0.0.bias"]
    import networkx as nx

    assert nx.is_directed_acyclic_graph(g)
