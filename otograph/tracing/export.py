"""The export frontend: ``torch.export`` (non-strict) for models symbolic tracing cannot follow.

The exported program is unlifted back into a ``GraphModule`` whose parameters are ``get_attr``
nodes under their original names and whose calls are ATen ops; the op registry maps those ops to
the same canonical kinds as the fx frontend (``aten.linear`` → ``linear``), so one rule serves both.
"""

from __future__ import annotations

import torch
import torch.fx as fx

from otograph.errors import TraceError

__all__ = ["export_graph"]


def export_graph(model: torch.nn.Module, args: tuple, kwargs: dict) -> fx.GraphModule:
    """``torch.export.export(strict=False)`` unlifted to a ``GraphModule`` without input guards."""
    try:
        ep = torch.export.export(model, args, kwargs, strict=False)
    except Exception as e:  # noqa: BLE001 - re-raised with the fix
        first = str(e).splitlines()[0] if str(e) else ""
        raise TraceError(f"torch.export could not export {type(model).__name__}: {type(e).__name__}: {first}",
                         op=type(model).__name__,
                         hint="check the example inputs match forward(); for Hugging Face models pass "
                              "use_cache=False") from e
    gm = ep.module()
    for node in list(gm.graph.nodes):  # input guards of the unlifted module: not part of the model
        if node.op == "call_module" and node.target == "_guards_fn" and not node.users:
            gm.graph.erase_node(node)
    if hasattr(gm, "_guards_fn"):
        delattr(gm, "_guards_fn")
    gm.graph.lint()
    gm.recompile()
    return gm
