"""Plain-text tables of a search space."""

from __future__ import annotations

__all__ = ["space_table"]


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
