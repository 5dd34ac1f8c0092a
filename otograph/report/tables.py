"""Plain-text tables of a search space."""

from __future__ import annotations

import torch

__all__ = ["space_table", "space_json", "shorten", "example_batch"]


#: The widest a cell of :func:`space_table` gets; longer text is cut at a word, with "…".
CELL = 60


def space_table(space, limit: int | None = None) -> str:
    """The groups as a plain-text table, then the totals; FLOPs are for the example input (its batch
    size is said). A reason longer than a cell is cut at a word (``--json`` has it in full).

    >>> shorten("touches the unsupported op torch.cumsum and three others", 30)
    'touches the unsupported op…'
    """
    rows = [("group", "units", "prunable / reason", "params/unit", "FLOPs/unit")]
    for g in space.groups[:limit]:
        per_p = g.params / max(1, g.num_units)
        per_f = float(g.unit_flops.sum()) / max(1, g.num_units)
        rows.append((g.id, str(g.num_units), "yes" if g.prunable else f"no: {g.reason}",
                     f"{per_p:,.0f}", f"{per_f:,.0f}"))
    cut = any(len(c) > CELL for r in rows for c in r)
    rows = [tuple(shorten(c, CELL) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    share = space.prunable_params / max(1, space.total_params)
    batch = example_batch(space)
    lines.append(f"{len(space.groups)} groups, {len(space.prunable_groups)} prunable; "
                 f"{share:.1%} of {space.total_params:,} parameters in prunable groups; "
                 f"{space.total_flops:,} FLOPs (and FLOPs/unit) for the example input" + (f", a batch of {batch}"
                                                                                    if batch is not None else ""))
    if space.opaque:
        lines.append("opaque ops: " + ", ".join(space.opaque))
    if cut:
        lines.append("(long cells are shortened at a word; --json has them in full)")
    return "\n".join(lines)


def shorten(text: str, n: int = CELL) -> str:
    """``text`` in at most ``n`` characters, cut at a word boundary with "…" when it is longer."""
    if len(text) <= n:
        return text
    head = text[: n - 1]
    if " " in head and not text[n - 1].isspace():
        head = head[: head.rindex(" ")]
    return head.rstrip(" ,;:") + "…"


def example_batch(space) -> int | None:
    """The batch size of the example input the space was traced with (its first tensor's first axis)."""
    traced = getattr(space, "traced", None)
    if traced is None:
        return None
    for x in (*traced.args, *traced.kwargs.values()):
        if isinstance(x, torch.Tensor) and x.ndim:
            return int(x.shape[0])
    return None


def space_json(space) -> dict:
    """The search space as plain data (what ``otograph trace --json`` prints).

    >>> import torch, otograph
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> d = space_json(otograph.search_space(net, torch.randn(1, 4)))
    >>> [(g["id"], g["units"], g["prunable"]) for g in d["groups"]], d["totals"]["params"]
    ([('0', 8, True), ('2', 2, False)], 58)
    """
    groups = []
    for g in space.groups:
        groups.append({
            "id": g.id, "units": g.num_units, "prunable": g.prunable, "reason": g.reason,
            "params_per_unit": g.params / max(1, g.num_units),
            "flops_per_unit": float(g.unit_flops.sum()) / max(1, g.num_units),
            "members": [{"param": m.param, "axis": m.axis, "role": m.role, "positions": m.positions.numel(),
                         "size": m.size} for m in g.members],
        })
    return {"groups": groups, "opaque": list(space.opaque),
            "totals": {"params": space.total_params, "flops": space.total_flops, "flops_batch": example_batch(space),
                       "prunable_params": space.prunable_params, "groups": len(space.groups),
                       "prunable_groups": len(space.prunable_groups)}}
