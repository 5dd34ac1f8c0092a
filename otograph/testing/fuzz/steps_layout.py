"""Step kinds of the rule families layout (reshape, permute, slicing, roll, expand) and composition
(cat, stack, split, chunk, narrow, unbind), and the heads that end a model."""

from __future__ import annotations

import math

from otograph.testing.fuzz.program import CF, CHANNELS, Emitter, Params, State, step
from otograph.testing.fuzz.steps_core import ACT_CALLS, new_channels

__all__ = ["head"]


def _flat(s: State) -> int:
    return math.prod(s.shape[1:])


@step("flatten", (*CF, "seq"), weight=1.5)
def flatten(em: Emitter, s: State, p: Params) -> State:
    if s.mode in CF and _flat(s) > 192:
        size = 1 if _flat(s) // math.prod(s.spatial) * 2 ** s.nd > 192 else 2
        em.line(f"x = F.adaptive_avg_pool{s.nd}d(x, {size})")
        s = s.to(shape=(*s.shape[:2], *[size] * s.nd), prods=s.prods)
    n = _flat(s)
    em.line(p.pick("call", ["x = torch.flatten(x, 1)", "x = x.flatten(1)", "x = x.reshape(x.shape[0], -1)",
                            "x = FLAT(x)", f"x = x.reshape(-1, {n})"] +
                   (["x = x.view(x.size(0), -1)", f"x = x.view(x.shape[0], {n})"] if s.contig else [])))
    if "FLAT" in em.fwd[-1]:
        em.fwd[-1] = em.fwd[-1].replace("FLAT", em.mod("flat", "nn.Flatten()"))
    return s.to(mode="vec", shape=(s.shape[0], n))


@step("to_tokens", CF, weight=1.5)
def to_tokens(em: Emitter, s: State, p: Params) -> State:
    n = math.prod(s.spatial)
    if s.nd == 1:
        em.line("x = " + p.pick("call", ["x.transpose(1, 2)", "x.permute(0, 2, 1)", "x.mT", "x.swapaxes(1, 2)",
                                          "torch.transpose(x, 1, 2)"]))
    else:
        last = ", ".join(map(str, range(2, 2 + s.nd)))
        em.line("x = " + p.pick("call", ["x.flatten(2).transpose(1, 2)", "x.flatten(2).mT",
                                          f"x.permute(0, {last}, 1).reshape(x.shape[0], -1, {s.C})",
                                          f"x.permute(0, {last}, 1).flatten(1, {s.nd})"]))
    return s.to(mode="seq", shape=(s.shape[0], n, s.C), prods=s.prods, contig=False)


@step("to_channels_first", ("seq",), weight=1)
def to_channels_first(em: Emitter, s: State, p: Params) -> State:
    B, N, C = s.shape
    h = next((d for d in (2, 3) if N % d == 0 and N // d >= 2), 0)
    if h and p.chance("image", 0.6):
        em.line("x = " + p.pick("call", [f"x.transpose(1, 2).reshape(x.shape[0], {C}, {h}, {N // h})",
                                          f"x.transpose(1, 2).unflatten(2, ({h}, {N // h}))",
                                          f"x.permute(0, 2, 1).view(x.shape[0], -1, {h}, {N // h})"]))
        return s.to(mode="img", shape=(B, C, h, N // h), prods=s.prods, contig=False)
    em.line("x = " + p.pick("call", ["x.transpose(1, 2)", "x.transpose(1, 2).contiguous()", "x.permute(0, 2, 1)"]))
    return s.to(mode="sig", shape=(B, C, N), prods=s.prods, contig="contiguous" in em.fwd[-1])


@step("reduce", (*CF, "seq"), weight=1.5)
def reduce(em: Emitter, s: State, p: Params) -> State:
    """Reductions over non-channel axes: space or tokens to a vector, or one spatial axis."""
    if s.mode == "seq":
        call = p.pick("call", ["x.mean(1)", "x[:, 0]", "x.amax(dim=1)", "x.sum(1)", "x.select(1, 0)",
                               "x.unbind(1)[0]", "torch.mean(x, dim=1)", "x.norm(dim=1)", "x[:, -1, :]", "x.amin(1)",
                               "x.nansum(1)"] + ["x.var(1)"] * (s.shape[1] >= 2))
        em.line("x = " + call)
        return s.to(mode="vec", shape=(s.shape[0], s.C), prods=s.prods, contig="[" not in call and "(1, 0)" not in call)
    if s.nd > 1 and p.chance("one_axis", 0.3):
        call = p.pick("call", ["x.mean(-1)", "x.amax(-1)", "x.sum(dim=-1)", "x[..., 0]"])
        em.line("x = " + call)
        return s.to(mode="sig" if s.nd == 2 else "img", shape=s.shape[:-1], prods=s.prods, contig="[" not in call)
    d = s.sp_dims
    em.line("x = " + p.pick("call", [f"x.mean({d})", f"x.amax(dim={d})", f"x.sum({d})",
                                      f"torch.linalg.vector_norm(x, dim={d})", f"x.mean(dim={d}, keepdim=True)"
                                      f".flatten(1)", f"torch.amin(x, {d})", f"x.nanmean({d})"] +
                            [f"x.var(dim={d})"] * (math.prod(s.spatial) >= 2)))
    return s.to(mode="vec", shape=s.shape[:2], prods=s.prods)


@step("permute", CHANNELS, weight=1)
def permute(em: Emitter, s: State, p: Params) -> State:
    """Layout round trips and axis swaps that keep the channels where they are."""
    shape = s.shape
    if s.mode == "img":
        kind = p.pick("kind", ["nhwc", "swap_hw", "unsqueeze", "unflatten"])
        if kind == "nhwc":
            em.line("x = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)")
        elif kind == "swap_hw":
            em.line("x = " + p.pick("call", ["x.transpose(2, 3)", "x.transpose(-1, -2)", "x.swapaxes(2, 3)"]))
            shape = (*shape[:2], shape[3], shape[2])
            return s.to(shape=shape, prods=s.prods, contig=False)
        elif kind == "unsqueeze":
            em.line("x = x.unsqueeze(2).squeeze(2)")
        else:
            em.line(f"x = x.flatten(2).unflatten(2, ({shape[2]}, {shape[3]}))")
    elif s.mode in ("sig", "vol"):
        em.line("x = " + p.pick("call", ["x.unsqueeze(-1).squeeze(-1)", "x.contiguous()", "x.unsqueeze(0)[0]"]))
    elif s.mode == "seq":
        em.line("x = " + p.pick("call", ["x.transpose(0, 1).transpose(0, 1)", "x.unsqueeze(0).squeeze(0)",
                                          "x.contiguous()", "x.permute(1, 0, 2).permute(1, 0, 2)",
                                          f"x.view(x.shape[0], x.shape[1], {s.C})", "x.reshape(x.shape)"]))
    else:
        em.line("x = " + p.pick("call", ["x.unsqueeze(-1).squeeze(-1)", "x.t().t()", "x[:, None].flatten(1)",
                                          "x.unsqueeze(1).view_as(x)", "x.view(-1, x.shape[-1])"]))
    return s.to(shape=shape, prods=s.prods, contig=s.contig)


@step("shuffle", ("img",), weight=1)
def shuffle(em: Emitter, s: State, p: Params) -> State | None:
    B, C, H, W = s.shape
    g = next((g for g in (2, 3) if C % g == 0 and C > g), 0)
    if not g:
        return None
    em.line(p.pick("call", [f"x = x.view(x.shape[0], {g}, {C // g}, {H}, {W}).transpose(1, 2).contiguous()"
                            f".view(x.shape[0], {C}, {H}, {W})",
                            f"x = x.unflatten(1, ({g}, {C // g})).transpose(1, 2).flatten(1, 2)"]))
    return s.to()


@step("slice_space", (*CF, "seq"), weight=1.5)
def slice_space(em: Emitter, s: State, p: Params) -> State | None:
    """Slicing, narrowing, rolling, selecting and indexing along space or tokens."""
    if s.mode == "seq":
        N = s.shape[1]
        if N < 2:
            return None
        kind = p.pick("kind", ["tail", "head", "narrow"])
        em.line({"tail": "x = x[:, 1:]", "head": "x = x[:, :-1]", "narrow": f"x = x.narrow(1, 1, {N - 1})"}[kind])
        return s.to(shape=(s.shape[0], N - 1, s.C), prods=s.prods, contig=False)
    sp = s.spatial
    if sp[-1] < 2:
        return None
    kind = p.pick("kind", ["tail", "stride", "narrow", "select", "last"])
    if kind == "tail":
        em.line("x = x[..., 1:]")
        return s.to(shape=(*s.shape[:-1], sp[-1] - 1), prods=s.prods, contig=False)
    elif kind == "stride":
        em.line("x = x[..., ::2]")
        return s.to(shape=(*s.shape[:-1], -(-sp[-1] // 2)), prods=s.prods, contig=False)
    elif kind == "narrow":
        em.line(f"x = torch.narrow(x, -1, 0, {sp[-1] - 1})")
        return s.to(shape=(*s.shape[:-1], sp[-1] - 1), prods=s.prods, contig=False)
    em.line(p.pick("call", ["x = x.select(-1, 0)", "x = x[..., -1]"]) if kind == "select" else
            "x = x[:, :, " + ", ".join([":"] * (s.nd - 1) + ["0"]) + "]")
    mode = {1: "vec", 2: "sig", 3: "img"}[s.nd]
    return s.to(mode=mode, shape=s.shape[:-1], prods=s.prods, contig=False)


@step("roll", CHANNELS, weight=1)
def roll(em: Emitter, s: State, p: Params) -> State:
    """Rolls along space, tokens, or the channels."""
    if s.mode == "vec" or p.chance("channels", 0.3):
        em.line("x = " + p.pick("call", [f"torch.roll(x, 1, dims={s.ch})", f"x.roll(-1, {s.ch})"]))
        return s.to()
    if s.mode == "seq":
        em.line("x = " + p.pick("call", ["torch.roll(x, 1, 1)", "x.roll(-1, dims=1)"]))
    elif p.chance("all", 0.5) and s.nd > 1:
        em.line(f"x = x.roll(shifts={(1,) * s.nd}, dims={tuple(range(2, 2 + s.nd))})")
    else:
        em.line("x = " + p.pick("call", ["torch.roll(x, 1, dims=2)", "x.roll(1, -1)"]))
    return s.to(prods=s.prods)


@step("repeat_samples", CHANNELS, weight=0.5)
def repeat_samples(em: Emitter, s: State, p: Params) -> State:
    """Every sample repeated ``k`` times along the batch (MoE routing repeats each token once per
    chosen expert), then one copy of each taken back."""
    k = p.int("k", 2, 3)
    em.line(f"x = x.repeat_interleave({k}, dim=0)[::{k}]")
    return s.to(prods=s.prods)


@step("slice_channels", CHANNELS, weight=1.5)
def slice_channels(em: Emitter, s: State, p: Params) -> State | None:
    """Sub-ranges, strides, rolls and index tensors along the channel axis."""
    C = s.C
    if C < 3:
        return None
    lead = "..., " if s.mode == "seq" else ":, "
    k = p.int("k", 1, C - 1)
    start = p.int("start", 0, C - k)
    kind = p.pick("kind", ["head", "range", "narrow", "stride"])
    if kind == "head":
        em.line(f"x = x[{lead}:{k}]")
    elif kind == "range":
        em.line(f"x = x[{lead}{start}:{start + k}]")
    elif kind == "narrow":
        em.line(f"x = torch.narrow(x, {s.ch}, {start}, {k})")
    else:
        em.line(f"x = x[{lead}::2]")
        k = -(-C // 2)
    return s.with_channels(k, contig=False)


@step("index", (*CF, "seq", "vec"), weight=1)
def index(em: Emitter, s: State, p: Params) -> State | None:
    """Gathers with an index tensor (a buffer): along tokens or space, or along the channels."""
    if s.mode == "vec" or p.chance("channels", 0.4):
        C, lead = s.C, "..., " if s.mode == "seq" else ":, "
        rows = list(range(C))[::-1] if p.pick("rows", ["reversed", "even"]) == "reversed" else list(range(0, C, 2))
        idx = em.buffer("idx", f"torch.tensor({rows})")
        em.line(p.pick("call", [f"x = x[{lead}{idx}]", f"x = x.index_select({s.ch}, {idx})"]))
        return s.with_channels(len(rows), contig=True)
    n = s.shape[-1] if s.mode in CF else s.shape[1]
    idx = em.buffer("perm", f"torch.arange({n - 1}, -1, -1)")
    em.line(p.pick("call", [f"x = x[..., {idx}]", f"x = x.index_select(-1, {idx})"] if s.mode in CF else
                   [f"x = x[:, {idx}]", f"x = x.index_select(1, {idx})"]))
    return s.to(prods=s.prods, contig=True)


@step("expand", CHANNELS, weight=0.7)
def expand(em: Emitter, s: State, p: Params) -> State:
    if s.mode in CF:
        em.line(f"x = x.unsqueeze(2).expand(-1, -1, 2{', -1' * s.nd}).sum(2)")
    elif s.mode == "seq":
        em.line("x = " + p.pick("call", ["x + x[:, :1].expand(-1, x.shape[1], -1)",
                                          "x * x.mean(1, keepdim=True).expand_as(x)",
                                          "x * torch.broadcast_to(x.amax(1, keepdim=True), x.shape)"]))
    else:
        em.line("x = " + p.pick("call", ["x[:, :, None].expand(-1, -1, 3).mean(-1)",
                                          "x.unsqueeze(1).expand(x.shape[0], 2, x.shape[1]).sum(1)"]))
    return s.to(prods=s.prods)


@step("unflatten", ("seq", "vec"), weight=0.7)
def unflatten(em: Emitter, s: State, p: Params) -> State | None:
    """Split the channel axis in two and merge it back (a size constant the rewriter must resize)."""
    C = s.C
    g = next((g for g in (2, 3) if C % g == 0), 0)
    if not g:
        return None
    if s.mode == "vec":
        em.line("x = " + p.pick("call", [f"x.unflatten(-1, ({g}, {C // g})).flatten(1)",
                                          f"x.view(x.shape[0], {g}, -1).reshape(x.shape[0], -1)",
                                          f"x.view(-1, {g}, {C // g}).transpose(1, 2).reshape(x.shape[0], {C})"]))
    else:
        em.line("x = " + p.pick("call", [f"x.view(x.shape[0], x.shape[1], {g}, {C // g}).flatten(2)",
                                          f"x.unflatten(-1, ({g}, -1)).reshape(x.shape[0], x.shape[1], {C})"]))
    return s.to(prods=s.prods if "transpose" not in em.fwd[-1] else ())


# ---- composition ----------------------------------------------------------------------------------
CATS = ["torch.cat([{a}, {b}], {d})", "torch.cat(({a}, {b}), dim={d})", "torch.concat([{a}, {b}], dim={d})",
        "torch.concatenate([{a}, {b}], {d})"]


@step("cat", CHANNELS, weight=2.5)
def cat(em: Emitter, s: State, p: Params) -> State:
    C, d = s.C, p.pick("dim", [s.ch, -1 if s.ch == len(s.shape) - 1 else s.ch])
    kind = p.pick("kind", ["grow", "two", "tokens"] if s.mode == "seq" else ["grow", "two"])
    if kind == "tokens":
        cls = em.param("cls", (1, 1, C), 0.5)
        em.line(f"x = torch.cat([{cls}.expand(x.shape[0], -1, -1), x], dim=1)")
        return s.to(shape=(s.shape[0], s.shape[1] + 1, C), prods=s.prods)
    w = p.int("w", 2, 8)
    k = 3 if s.mode in CF and min(s.spatial) >= 3 and p.chance("k3", 0.3) else 1
    b, bp = new_channels(em, s, w, k=k)
    b = p.pick("act", ACT_CALLS[:8]).format(x=b)
    if kind == "grow":
        first = p.chance("first", 0.5)
        a, b = ("x", b) if first else (b, "x")
        prods = s.prods + tuple((n, ax, o + C) for n, ax, o in bp) if first else \
            bp + tuple((n, ax, o + w) for n, ax, o in s.prods)
        em.line("x = " + p.pick("call", CATS).format(a=a, b=b, d=d))
        return s.with_channels(C + w, prods)
    w2 = p.int("w2", 2, 8)
    a, ap = new_channels(em, s, w2)
    em.line("x = " + p.pick("call", CATS).format(a=a, b=b, d=d))
    return s.with_channels(w + w2, ap + tuple((n, ax, o + w2) for n, ax, o in bp))


@step("stack", CHANNELS, weight=1)
def stack(em: Emitter, s: State, p: Params) -> State:
    y, prods = new_channels(em, s, s.C)
    kind = p.pick("kind", ["sum0", "mean1", "interleave"])
    if kind == "sum0":
        em.line(f"x = torch.stack([x, {y}], dim=0).sum(0)")
        return s.to(prods=s.prods + prods)
    if kind == "mean1":
        em.line(f"x = torch.stack((x, {y}), 1).mean(1)")
        return s.to(prods=s.prods + prods)
    em.line(f"x = torch.stack([x, {y}], dim=-1).flatten(-2)")
    if s.ch == len(s.shape) - 1:
        return s.with_channels(2 * s.C)
    return s.to(shape=(*s.shape[:-1], 2 * s.shape[-1]), prods=s.prods + prods)


@step("split", CHANNELS, weight=2)
def split(em: Emitter, s: State, p: Params) -> State | None:
    C, d = s.C, s.ch
    a, b = em.tmp("a"), em.tmp("b")
    kind = p.pick("kind", ["halves", "glu", "swap", "unbind", "tokens"] if C % 2 == 0 else ["swap", "unbind", "tokens"])
    if kind in ("halves", "glu"):
        em.line(f"{a}, {b} = " + p.pick("call", [f"torch.split(x, {C // 2}, dim={d})", f"x.chunk(2, {d})",
                                                 f"x.tensor_split(2, dim={d})", f"torch.chunk(x, 2, dim={d})",
                                                 f"x.split([{C // 2}, {C // 2}], {d})"]))
        join = "{a} + {b}" if kind == "halves" else p.pick("glu", ["{a} * torch.sigmoid({b})", "F.silu({a}) * {b}"])
        em.line("x = " + join.format(a=a, b=b))
        return s.with_channels(C // 2)
    if kind == "swap" and C >= 2:
        k = p.int("k", 1, C - 1)
        em.line(f"{a}, {b} = torch.split(x, [{k}, {C - k}], dim={d})", f"x = torch.cat([{b}, {a}], {d})")
        return s.to()
    if kind == "unbind" and C <= 6:
        em.line(f"x = torch.stack(x.unbind({d}), {d})")
        return s.to(prods=s.prods)
    axis = 1 if s.mode in ("seq", "vec") else 2
    n = s.shape[axis]
    if s.mode == "vec" or n < 2:
        return None
    em.line(f"{a}, {b} = x.split([1, {n - 1}], dim={axis})", f"x = torch.cat([{b}, {a}], dim={axis})")
    return s.to(prods=s.prods)


# ---- heads: the last step of every generated model --------------------------------------------------
@step("head", (*CHANNELS, "tok"), weight=0)
def head(em: Emitter, s: State, p: Params) -> State | None:
    if s.mode == "tok":
        return None
    kind = p.pick("kind", ["linear", "linear", "tuple", "plain"] + (["conv"] if s.mode in CF else []) +
                  (["tied"] if em.embedding and em.embedding[1] == s.C and s.mode == "seq" else []))
    if kind == "plain":
        return s
    if kind == "conv":
        em.line(f"x = {em.mod('head', f'nn.Conv{s.nd}d({s.C}, 2, 1)')}(x)")
        return s.with_channels(2)
    if kind == "tied":  # logits over the vocabulary with the input embedding's matrix
        em.patterns.add("tied")
        em.line(f"x = F.linear(x, {em.embedding[0]}.weight)")
        return s.with_channels(s.vocab)
    pooled = {"seq": "x.mean(1)", "vec": "x"}.get(s.mode, f"x.mean({s.sp_dims})")
    if s.mode == "seq" and p.chance("per_token", 0.4):
        pooled = "x"
    ref = em.mod("head", f"nn.Linear({s.C}, 3)")
    if kind == "tuple":
        aux = em.mod("aux", f"nn.Linear({s.C}, 2)")
        em.line(f"z = {pooled}")
        em.ret = f"{ref}(z), {aux}(z)"
        if p.chance("mapping", 0.3):  # torchvision's detector backbones: keys need not be identifiers
            em.ret = f'collections.OrderedDict([("out", {ref}(z)), ("0", {aux}(z))])'
        return s
    em.line(f"x = {ref}({pooled})")
    return s.with_channels(3) if pooled == "x" else s.to(mode="vec", shape=(s.shape[0], 3))

