"""Plain-text tables of a search space."""

from __future__ import annotations

__all__ = ["space_table", "space_json"]


def space_table(space, limit: int | None = None) -> str:
    rows = [("group", "units", "prunable / reason", "params/unit", "FLOPs/unit")]
    for g in space.groups[:limit]:
        per_p = g.params / max(1, g.num_units)
        per_f = float(g.unit_flops.sum()) / max(1, g.num_units)
        rows.append((g.id, str(g.num_units), "yes" if g.prunable else f"no: {g.reason}",
                     f"{per_p:,.0f}", f"{per_f:,.0f}"))
    widths = [min(60, max(len(r[i]) for r in rows)) for i in range(5)]
    lines = ["  ".join(c[:60].ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    share = space.prunable_params / max(1, space.total_params)
    lines.append(f"{len(space.groups)} groups, {len(space.prunable_groups)} prunable; "
                 f"{share:.1%} of {space.total_params:,} parameters in prunable groups; "
                 f"{space.total_flops:,} FLOPs")
    if space.opaque:
        lines.append("opaque ops: " + ", ".join(space.opaque))
    return "\n".join(lines)


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
            "totals": {"params": space.total_params, "flops": space.total_flops,
                       "prunable_params": space.prunable_params, "groups": len(space.groups),
                       "prunable_groups": len(space.prunable_groups)}}
