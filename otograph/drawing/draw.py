"""Draw a search space with graphviz: one colour per group, module clusters collapsed to a depth.

Each drawn node is an fx op, or a whole module collapsed into one box once it is deeper than
``depth``. An edge is a tensor: its colour is the group (channel space) the tensor carries, solid
for prunable groups and dashed for unprunable ones, its label the shape without the batch axis
(``64→37×56×56`` once units are removed). Groups that live entirely inside a collapsed box are
listed in it. A legend gives every group's colour, units (kept/total) and why it is unprunable.
Colours are spread over the groups of the picture so that they are clearly distinct (see
:func:`group_colors`); the same model's groups get the same colours in every picture.
"""

from __future__ import annotations

import colorsys
import html
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import graphviz
import torch.fx as fx

from otograph.drawing.mapping import module_path, node_groups, shapes_after
from otograph.tracing.values import META, TensorInfo

__all__ = ["draw", "group_colors", "auto_depth"]

_FONT = "Helvetica"
_GREY = "#9a9a9a"
_LEGEND = ('<font color="#555555">Groups: colour, id, units kept/total, state.<br align="left"/>'
           "Edges are tensors coloured by their group: solid prunable, dashed unprunable;<br align=\"left\"/>"
           'labelled with the shape without batch, C→C′ where units were removed.<br align="left"/></font>')


#: matplotlib's tab10 without its grey (grey edges are tensors of no group): distinct at a glance.
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")


def group_colors(ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``{group id: (colour, light fill)}`` for the groups of one picture, clearly distinct from each other.

    Up to nine groups take the colours of a qualitative palette (matplotlib's tab10, less its grey).
    More groups get hues spread evenly over the circle, dealt out with a stride near the golden
    section so that groups which follow each other in ``ids`` (neighbours in the graph) are far
    apart, hue neighbours alternating between a bright and a dark shade. The same groups in the same
    order (the same model) get the same colours in every picture.

    >>> c = group_colors(["a", "b", "c"])
    >>> [colour for colour, _ in c.values()], c == group_colors(["a", "b", "c"])
    (['#1f77b4', '#ff7f0e', '#2ca02c'], True)
    """
    n = len(ids)
    if n <= len(_PALETTE):
        return {gid: (c, _mix_white(c, 0.8)) for gid, c in zip(ids, _PALETTE, strict=False)}
    step = _stride(n)
    out = {}
    for k, gid in enumerate(ids):
        slot = (k * step) % n
        hue = (0.58 + slot / n) % 1.0
        sat, val = (0.90, 0.55) if slot % 2 else (0.72, 0.85)
        out[gid] = (_hex(hue, sat, val), _hex(hue, 0.18, 1.0))
    return out


def _mix_white(colour: str, share: float) -> str:
    """``colour`` with ``share`` of white mixed in (a light fill of the same hue)."""
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * share):02x}" for c in rgb)


def _stride(n: int) -> int:
    """The step through ``n`` hue slots: coprime with ``n`` (every slot is used once), near ``0.382 n``."""
    s = max(1, round(0.382 * n))
    while math.gcd(s, n) != 1:
        s += 1
    return s


def _hex(hue: float, sat: float, val: float) -> str:
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _drawn(gm: fx.GraphModule) -> list[fx.Node]:
    """Ops on tensors: parameters (get_attr) and size arithmetic (shape, asserts) are left out."""
    keep = []
    for n in gm.graph.nodes:
        if n.op in ("placeholder", "output"):
            keep.append(n)
        elif n.op != "get_attr" and _carries_tensor(n.meta.get(META)):
            keep.append(n)
    return keep


def _carries_tensor(v) -> bool:
    if isinstance(v, TensorInfo):
        return True
    if isinstance(v, (tuple, list)):
        return any(_carries_tensor(x) for x in v)
    if isinstance(v, dict):
        return any(_carries_tensor(x) for x in v.values())
    return False


def _groups_by_module(space) -> dict[str, list[str]]:
    """Module path → ids of the groups whose producer parameters live in it (in order of the space)."""
    out: dict[str, list[str]] = defaultdict(list)
    for g in space.groups:
        for m in g.producers:
            mod = m.param.rsplit(".", 1)[0] if "." in m.param else ""
            if g.id not in out[mod]:
                out[mod].append(g.id)
    return out


def _item(node: fx.Node, depth: int) -> tuple[str, bool]:
    """(item key, collapsed?) of a node at a depth."""
    if node.op in ("placeholder", "output"):
        return f"io:{node.name}", False
    p = module_path(node)
    if len(p) > depth:
        return "box:" + ".".join(p[:depth]), True
    return f"op:{node.name}", False


def auto_depth(gm: fx.GraphModule, max_items: int = 70) -> int:
    """The deepest module depth whose picture has at most ``max_items`` boxes (at least 1)."""
    nodes = _drawn(gm)
    deepest = max((len(module_path(n)) for n in nodes if n.op not in ("placeholder", "output")), default=1)
    for d in range(deepest, 0, -1):
        if len({_item(n, d)[0] for n in nodes}) <= max_items:
            return d
    return 1


def _shape_label(before: tuple, after: tuple) -> str:
    dims = [str(b) if b == a else f"{b}→{a}" for b, a in zip(before[1:], after[1:], strict=True)]
    return "×".join(dims) if dims else "scalar"


def _short(text: str, n: int = 70) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _module_type(root, path: str) -> str:
    try:
        return type(root.get_submodule(path)).__name__
    except AttributeError:
        return ""


def _op_label(gm: fx.GraphModule, node: fx.Node) -> str:
    if node.op == "call_module":
        m = gm.get_submodule(node.target)
        return f"{node.target}\n{type(m).__name__}"
    if node.op == "placeholder":
        return f"input {node.name}"
    if node.op == "output":
        return "output"
    target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    return str(target)


def draw(space, removed: Mapping[str, Iterable[int]] | None = None, depth: int | None = None,
         title: str | None = None, max_items: int = 70) -> graphviz.Digraph:
    """The search space as a ``graphviz.Digraph`` (``removed``: units taken out, ``{group: [unit]}``)."""
    scene = _Scene(space, {k: list(v) for k, v in (removed or {}).items()}, depth, max_items)
    g = scene.canvas(title)
    clusters = scene.nodes(g)
    for prefix in sorted(clusters, key=len, reverse=True):
        (clusters[prefix[:-1]] if len(prefix) > 1 else g).subgraph(clusters[prefix])
    scene.edges(g)
    g.subgraph(_legend(space, scene.kept_total, scene.colors))
    return g


class _Scene:
    """What one drawing needs to know: the drawn nodes, the box or op each belongs to, the groups."""

    def __init__(self, space, removed: dict[str, list[int]], depth: int | None, max_items: int):
        self.space, self.removed = space, removed
        self.gm = space.traced.gm
        self.root = space.traced.model if space.traced.model is not None else self.gm
        self.groups = {g.id: g for g in space.groups}
        self.ng = node_groups(space)
        self.shapes = shapes_after(space, removed)
        depth = depth or auto_depth(self.gm, max_items)
        self.drawn = _drawn(self.gm)
        self.item = {n: _item(n, depth) for n in self.drawn}
        self.by_module = _groups_by_module(space)
        self.colors = group_colors([grp.id for grp in space.groups])
        self.kept_total = {gid: (grp.num_units - len(removed.get(gid, ())), grp.num_units)
                           for gid, grp in self.groups.items()}

    def canvas(self, title: str | None) -> graphviz.Digraph:
        space = self.space
        g = graphviz.Digraph("search_space", graph_attr={
            "rankdir": "TB", "fontname": _FONT, "fontsize": "12", "ranksep": "0.28", "nodesep": "0.25",
            "newrank": "true", "labelloc": "t"},
            node_attr={"fontname": _FONT, "fontsize": "10", "shape": "box", "style": "rounded,filled",
                       "fillcolor": "white", "height": "0.3", "margin": "0.08,0.03"},
            edge_attr={"fontname": _FONT, "fontsize": "8", "arrowsize": "0.6", "color": _GREY,
                       "fontcolor": "#555555"})
        head = title or (type(space.traced.model).__name__ if space.traced.model is not None else "model")
        sub = (f"{len(space.groups)} groups, {len(space.prunable_groups)} prunable; "
               f"{space.prunable_params / max(1, space.total_params):.0%} of {space.total_params:,} params prunable")
        if self.removed:
            sub += f"; {sum(len(v) for v in self.removed.values())} units removed"
        g.attr(label=f"{head}\n{sub}")
        return g

    def nodes(self, g: graphviz.Digraph) -> dict[tuple[str, ...], graphviz.Digraph]:
        """Boxes and op nodes, inside nested module clusters (returned, to be nested by the caller)."""
        members: dict[str, list[fx.Node]] = defaultdict(list)
        for n in self.drawn:
            members[self.item[n][0]].append(n)
        entering: dict[str, set[str]] = defaultdict(set)
        for v in self.drawn:
            for u in v.all_input_nodes:
                if u in self.item and self.item[u][0] != self.item[v][0]:
                    entering[self.item[v][0]].update(self.ng.get(u, ()))
        clusters: dict[tuple[str, ...], graphviz.Digraph] = {}
        for key, ns in members.items():
            prefix, attrs = (self._box(key[4:], ns, entering[key]) if key.startswith("box:") else self._op(ns))
            for k in range(1, len(prefix) + 1):  # the cluster and every one around it
                if prefix[:k] not in clusters:
                    clusters[prefix[:k]] = self._cluster(".".join(prefix[:k]))
            (clusters[prefix] if prefix else g).node(key.replace(":", "_"), **attrs)
        return clusters

    def _cluster(self, path: str) -> graphviz.Digraph:
        return graphviz.Digraph(name=f"cluster_{path}", graph_attr={
            "label": f"{path} ({_module_type(self.root, path)})", "style": "rounded,dashed", "color": "#c8c8c8",
            "fontsize": "9", "fontcolor": "#777777", "labeljust": "l"})

    def _box(self, path: str, ns: list[fx.Node], entering: set[str]) -> tuple[tuple[str, ...], dict]:
        """A collapsed module: its name, type, op count, and the groups that live inside it."""
        out_groups = self.ng.get(ns[-1], ())
        owned = [gid for mod, gids in self.by_module.items() if mod == path or mod.startswith(path + ".")
                 for gid in gids]
        inner = [gid for gid in dict.fromkeys([*(x for n in ns for x in self.ng.get(n, ())), *owned])
                 if gid not in entering and gid not in out_groups]
        head = (f'<b>{html.escape(path)}</b> <font color="#666666">'
                f'{html.escape(_module_type(self.root, path))}, {len(ns)} ops</font>')
        rows = []
        for gid in inner[:6]:
            k, t = self.kept_total[gid]
            units = f"{k}/{t}" if k != t else f"{t}"
            mark = "" if self.groups[gid].prunable else " (fixed)"
            name = gid[len(path) + 1:] if gid.startswith(path + ".") else gid
            rows.append(f'<tr><td align="left"><font color="{self.colors[gid][0]}">■</font> '
                        f'{html.escape(name)}: {units}{mark}</td></tr>')
        if len(inner) > 6:
            rows.append(f'<tr><td align="left">+{len(inner) - 6} more groups</td></tr>')
        label = (f'<<table border="0" cellborder="0" cellspacing="0" cellpadding="1"><tr><td>{head}</td></tr>'
                 + "".join(rows) + "</table>>")
        return tuple(path.split("."))[:-1], {"label": label, "fillcolor": "#f4f4f4", "color": "#666666"}

    def _op(self, ns: list[fx.Node]) -> tuple[tuple[str, ...], dict]:
        """One op (or an input/output), coloured by the group of its output."""
        first, out_groups = ns[0], self.ng.get(ns[-1], ())
        io = first.op in ("placeholder", "output")
        attrs = {"label": _op_label(self.gm, first)}
        if io:
            attrs.update(shape="ellipse", style="filled", fillcolor="#eeeeee")
        elif out_groups:
            attrs["color"], attrs["fillcolor"] = self.colors[out_groups[0]]
            if not any(self.groups[x].prunable for x in out_groups):
                attrs["style"] = "rounded,filled,dashed"
        tip = self._tooltip(out_groups, ", ")
        if tip:
            attrs["tooltip"] = tip
        return (() if io else module_path(first)[:-1]), attrs

    def _tooltip(self, gids, sep: str) -> str:
        return sep.join(f"{x}{'' if self.groups[x].prunable else ' (unprunable: ' + self.groups[x].reason + ')'}"
                        for x in gids)

    def edges(self, g: graphviz.Digraph) -> None:
        """Tensors between drawn items, coloured by group and labelled with their (kept) shape."""
        seen: set[tuple] = set()
        for v in self.drawn:
            for u in v.all_input_nodes:
                if u not in self.item or self.item[u][0] == self.item[v][0]:
                    continue
                gids = self.ng.get(u, ())
                key = (self.item[u][0], self.item[v][0], gids)
                if key in seen:
                    continue
                seen.add(key)
                attrs = {}
                if u in self.shapes:
                    attrs["label"] = " " + _shape_label(*self.shapes[u])
                if gids:
                    attrs["color"] = ":".join(self.colors[x][0] for x in gids[:4])
                    attrs["penwidth"] = "1.8"
                    if not any(self.groups[x].prunable for x in gids):
                        attrs["style"] = "dashed"
                    attrs["tooltip"] = self._tooltip(gids, "; ")
                g.edge(self.item[u][0].replace(":", "_"), self.item[v][0].replace(":", "_"), **attrs)


def _legend(space, kept_total: dict[str, tuple[int, int]], colors: dict[str, tuple[str, str]]) -> graphviz.Digraph:
    rows_per_col = 24
    cells: list[str] = []
    for grp in space.groups:
        k, t = kept_total[grp.id]
        units = f"{k}/{t}" if k != t else f"{t}"
        state = "prunable" if grp.prunable else html.escape(_short(f"unprunable: {grp.reason}", 60))
        color = colors[grp.id][0]
        cells.append(f'<td align="left"><font color="{color}">■</font> {html.escape(grp.id)}</td>'
                     f'<td align="right">{units}</td><td align="left"><font color="{"#333333" if grp.prunable else "#aa3333"}">'
                     f"{state}</font></td>")
    ncols = max(1, -(-len(cells) // rows_per_col))
    nrows = -(-len(cells) // ncols) if cells else 0
    body = []
    for r in range(nrows):
        row = []
        for c in range(ncols):
            i = c * nrows + r
            row.append(cells[i] if i < len(cells) else '<td colspan="3"></td>')
        body.append("<tr>" + '<td width="12"></td>'.join(row) + "</tr>")
    head = f'<tr><td colspan="{4 * ncols - 1}" align="left">{_LEGEND}</td></tr>'
    label = ('<<table border="0" cellborder="0" cellspacing="2" cellpadding="1">' + head + "".join(body)
             + "</table>>")
    leg = graphviz.Digraph(name="cluster_legend", graph_attr={"label": "legend", "style": "rounded",
                                                                "color": "#bbbbbb", "fontsize": "10"})
    leg.node("legend", label=label, shape="plaintext", style="")
    if space.opaque:
        ops = html.escape(_short(", ".join(space.opaque), 200))
        leg.node("opaque", label=f"unsupported (opaque) ops: {ops}", shape="plaintext", style="",
                 fontcolor="#aa3333")
    return leg
