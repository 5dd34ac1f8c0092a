"""One pass records every node's shape and FLOPs: the same shapes as a real run, the same FLOPs as
torch.utils.flop_counter counts on the model (with the fused CPU attention kernel counted)."""

import pytest
import torch
import torch.fx as fx

import otograph
from otograph.graph.cost import count_flops
from otograph.tracing.values import FLOPS, META, info_of


class Real(fx.Interpreter):
    def run_node(self, n):
        out = super().run_node(n)
        n.meta["real"] = info_of(out)
        return out


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "convnext_tiny", "vit_b_32", "densenet121"])
@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_recorded_shapes_and_flops_match_a_real_run(name, frontend):
    tv = pytest.importorskip("torchvision")
    kw = {"image_size": 64} if name.startswith("vit") else {}
    model = tv.models.get_model(name, **kw).eval()
    x = torch.randn(2, 3, 64, 64)
    traced = otograph.trace(model, x, frontend=frontend)
    with torch.no_grad():
        Real(traced.gm).run(x)
    nodes = [n for n in traced.gm.graph.nodes if n.op != "output"]
    assert all(n.meta[META] == n.meta["real"] for n in nodes), [n.name for n in nodes if n.meta[META] != n.meta["real"]]
    assert sum(n.meta[FLOPS] for n in nodes) == count_flops(model, x) > 0
