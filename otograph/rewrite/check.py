"""Self-check of a compact model: every value has the shape the plan promises."""

from __future__ import annotations

import torch
import torch.fx as fx

from otograph.errors import RewriteError
from otograph.rewrite.plan import Plan
from otograph.tracing import META, TensorInfo, Traced
from otograph.tracing.values import eval_mode, flat_inputs, run_fake

__all__ = ["check_shapes"]


class _ShapeCheck(fx.Interpreter):
    def __init__(self, gm, expected):
        super().__init__(gm)
        self.expected = expected

    def run_node(self, n):
        out = super().run_node(n)
        want = self.expected.get(n.name)
        if want is not None and isinstance(out, torch.Tensor) and tuple(out.shape) != want:
            raise RewriteError(f"compact model: {n.format_node()} has shape {tuple(out.shape)}, "
                               f"expected {want}. This is a bug in otograph; please report it.")
        return out


@torch.no_grad()
def check_shapes(compact: fx.GraphModule, traced: Traced, plan: Plan, names: dict[str, str]) -> None:
    expected = {}
    for node in traced.gm.graph.nodes:
        info = node.meta.get(META)
        if isinstance(info, TensorInfo) and node.name in names:
            expected[names[node.name]] = plan.new_shape(node, info.shape)
    args = [_like_model(a, compact) for a in flat_inputs(compact, traced.args, traced.kwargs)]
    with eval_mode(compact):
        run_fake(_ShapeCheck(compact, expected), args, strict=(RewriteError,))


def _like_model(x, model: torch.nn.Module):
    """An example input in the model's current floating dtype and device."""
    p = next(model.parameters(), None)
    if not isinstance(x, torch.Tensor) or p is None:
        return x
    return x.to(device=p.device, dtype=p.dtype if x.is_floating_point() and p.is_floating_point() else x.dtype)
