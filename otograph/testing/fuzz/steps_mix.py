"""Step kinds of the rule families contraction (matmul, bmm, einsum, SDPA, attention heads), coupling
(softmax, LayerNorm/RMSNorm, GroupNorm, reductions, normalize), attention (``nn.MultiheadAttention``)
and meta (sizes, shapes, ``new_zeros``, ``arange``)."""

from __future__ import annotations

from otograph.testing.fuzz.program import CF, CHANNELS, Emitter, Params, State, path, step
from otograph.testing.fuzz.steps_core import fan

__all__: list[str] = []


# ---- contraction ----------------------------------------------------------------------------------
@step("attention", ("seq",), weight=2)
def attention(em: Emitter, s: State, p: Params) -> State:
    """Hand-written multi-head attention: fused or separate q/k/v, matmul, einsum, bmm or SDPA."""
    C = s.C
    h, dh = p.int("heads", 1, 4), p.int("head_dim", 2, 4)
    inner = h * dh
    kind = p.pick("kind", ["fused_matmul", "fused_einsum", "sdpa", "bmm", "sdpa_causal"])
    scale = p.pick("scale", [f"/ math.sqrt({dh})", f"* {dh} ** -0.5", "* {q}.shape[-1] ** -0.5"])
    q, k, v, a, y = (em.tmp(n) for n in "qkvay")
    B, N = em.tmp("B"), em.tmp("N")
    em.line(p.pick("sizes", [f"{B}, {N} = x.shape[0], x.shape[1]", f"{B}, {N}, _ = x.shape",
                             f"{B}, {N} = x.size(0), x.size(1)"]))
    if kind.startswith("fused"):
        qkv = em.mod("qkv", f"nn.Linear({C}, {3 * inner})")
        t = em.tmp("qkv")
        em.line(f"{t} = {qkv}(x).reshape({B}, {N}, 3, {h}, {dh}).permute(2, 0, 3, 1, 4)",
                p.pick("unpack", [f"{q}, {k}, {v} = {t}[0], {t}[1], {t}[2]", f"{q}, {k}, {v} = {t}.unbind(0)"]))
        if kind == "fused_matmul":
            em.line(f"{a} = ({q} @ {k}.transpose(-2, -1)) {scale.format(q=q)}",
                    f"{y} = ({a}.softmax(dim=-1) @ {v}).transpose(1, 2).reshape({B}, {N}, {inner})")
        else:
            em.line(f'{a} = torch.einsum("bhid,bhjd->bhij", {q}, {k}) {scale.format(q=q)}',
                    f'{y} = torch.einsum("bhij,bhjd->bihd", {a}.softmax(-1), {v}).reshape({B}, {N}, {inner})')
        first = f"{path(qkv)}.weight"
    else:
        mods = [em.mod(n, f"nn.Linear({C}, {inner}, bias={p.chance('bias_' + n, 0.7)})") for n in "qkv"]
        for var, m in zip((q, k, v), mods, strict=True):
            em.line(f"{var} = {m}(x).view({B}, {N}, {h}, {dh}).transpose(1, 2)")
        if kind == "bmm":
            for var in (q, k, v):
                em.line(f"{var} = {var}.reshape({B} * {h}, {N}, {dh})")
            em.line(f"{a} = torch.bmm({q}, {k}.transpose(1, 2)) {scale.format(q=q)}",
                    f"{y} = torch.bmm({a}.softmax(-1), {v}).view({B}, {h}, {N}, {dh}).transpose(1, 2)"
                    f".reshape({B}, {N}, {inner})")
        else:
            causal = ", is_causal=True" if kind == "sdpa_causal" else ""
            em.line(f"{y} = F.scaled_dot_product_attention({q}, {k}, {v}{causal}).transpose(1, 2).contiguous()"
                    f".view({B}, {N}, {inner})")
        first = f"{path(mods[2])}.weight"  # v: its rows are the output channels in any unit layout
    if p.chance("residual", 0.7):
        proj = em.mod("proj", f"nn.Linear({inner}, {C})")
        em.line(f"x = x + {proj}({y})")
        return s.to(prods=s.prods + ((f"{path(proj)}.weight", 0, 0),))
    em.line(f"x = {y}")
    return s.with_channels(inner, ((first, 0, 0),) if kind.startswith("sdpa") or kind == "bmm" else (), contig=False)


@step("token_mix", ("seq",), weight=1.5)
def token_mix(em: Emitter, s: State, p: Params) -> State:
    """Contractions over tokens or channels with the stream itself or a parameter."""
    N = s.shape[1]
    kind = p.pick("kind", ["gram", "gram_matmul", "einsum_param", "matmul_param"])
    if kind == "gram":
        em.line("x = torch.bmm(torch.bmm(x, x.transpose(1, 2)).softmax(-1), x)")
    elif kind == "gram_matmul":
        em.line("x = torch.matmul(F.softmax(x @ x.mT, dim=-1), x)")
    elif kind == "einsum_param":
        em.line(f'x = torch.einsum("bnc,nm->bmc", x, {em.param("mix", (N, N), fan(N))})')
    else:
        em.line(f"x = {em.param('mix', (N, N), fan(N))} @ x")
    return s.to(prods=s.prods, contig=kind != "einsum_param")


@step("matmul_param", ("seq", "vec"), weight=1)
def matmul_param(em: Emitter, s: State, p: Params) -> State:
    """``x @ W`` with a free parameter ``W`` stored (in, out)."""
    w = p.int("w", 2, 10)
    ref = em.param("w", (s.C, w), fan(s.C))
    calls = ["x @ {w}", "torch.matmul(x, {w})", "x.matmul({w})", 'torch.einsum("...c,cd->...d", x, {w})']
    if s.mode == "vec":
        calls.append("torch.mm(x, {w})")
    em.line("x = " + p.pick("call", calls).format(w=ref))
    return s.with_channels(w, ((path(ref), 1, 0),), contig="einsum" not in em.fwd[-1])


# ---- coupling -------------------------------------------------------------------------------------
@step("layernorm", CHANNELS, weight=2)
def layernorm(em: Emitter, s: State, p: Params) -> State:
    C = s.C
    kind = p.pick("kind", ["ln", "rms", "functional_ln", "functional_rms", "ln_nobias"])
    if kind == "ln":
        ctor = f"nn.LayerNorm({C})"
    elif kind == "rms":
        ctor = f"nn.RMSNorm({C}, eps=1e-6)"
    elif kind == "ln_nobias":
        ctor = f"nn.LayerNorm({C}, bias=False)"
    else:
        ctor = None
    if ctor:
        ref = em.mod("ln", ctor)
        call = f"{ref}({{x}})"
    elif kind == "functional_ln":
        w, b = em.param("ln_w", (C,), 0.1, 1.0), em.param("ln_b", (C,), 0.1)
        call = f"F.layer_norm({{x}}, ({C},), {w}, {b})"
    else:
        call = f"F.rms_norm({{x}}, ({C},), {em.param('rms_w', (C,), 0.1, 1.0)})"
    if s.mode in CF:  # over the channels: move them last and back
        last = tuple(range(2, 2 + s.nd))
        to_last, back = (0, *last, 1), (0, s.nd + 1, *range(1, s.nd + 1))
        em.line("x = " + call.format(x=f"x.permute{to_last}") + f".permute{back}")
        return s.to(prods=s.prods, contig=False)
    else:
        em.line("x = " + call.format(x="x"))
    return s.to(prods=s.prods)


@step("groupnorm", CF, weight=1)
def groupnorm(em: Emitter, s: State, p: Params) -> State:
    C = s.C
    groups = [g for g in (1, 2, 3, C) if C % g == 0]
    g = p.pick("groups", groups)
    if p.chance("functional", 0.3):
        w, b = em.param("gn_w", (C,), 0.1, 1.0), em.param("gn_b", (C,), 0.1)
        em.line(f"x = F.group_norm(x, {g}, {w}, {b})")
    else:
        affine = p.pick("affine", [True, False])
        em.line(f"x = {em.mod('gn', f'nn.GroupNorm({g}, {C}, affine={affine})')}(x)")
    return s.to(prods=s.prods)


@step("softmax", (*CF, "seq"), weight=1)
def softmax(em: Emitter, s: State, p: Params) -> State:
    """Softmax over space or tokens, multiplied back into the stream (so removed channels stay zero)."""
    if s.mode == "seq":
        em.line("x = x * " + p.pick("call", ["torch.softmax(x, dim=1)", "x.softmax(1)", "F.log_softmax(x, dim=1)",
                                              "SOFTMAX(x)"]))
        if "SOFTMAX" in em.fwd[-1]:
            em.fwd[-1] = em.fwd[-1].replace("SOFTMAX", em.mod("softmax", "nn.Softmax(dim=1)"))
    else:
        em.line("x = x * x.flatten(2).softmax(-1).view_as(x)")
    return s.to(prods=s.prods)


@step("normalize", CHANNELS, weight=1)
def normalize(em: Emitter, s: State, p: Params) -> State:
    """L2 normalisation over the channels (a removed channel adds nothing to the norm) or over space."""
    d = s.ch
    calls = [f"F.normalize(x, dim={d})", f"x / x.norm(dim={d}, keepdim=True).clamp_min(1e-6)",
             f"x / torch.linalg.vector_norm(x, dim={d}, keepdim=True).clamp(min=1e-6)"]
    if s.mode != "vec":
        calls.append("F.normalize(x, dim=1)" if s.mode == "seq" else "F.normalize(x, dim=-1)")
    em.line("x = " + p.pick("call", calls))
    return s.to(prods=s.prods)


@step("reduce_channels", CHANNELS, weight=0.7)
def reduce_channels(em: Emitter, s: State, p: Params) -> State:
    """A reduction over the channels joined back into the stream (mean, max, RMS): coupled channels."""
    d = s.ch
    em.line("x = " + p.pick("call", [f"x * x.mean({d}, keepdim=True)", f"x * x.amax({d}, keepdim=True)",
                                      f"x * torch.rsqrt(x.pow(2).mean({d}, keepdim=True) + 1e-6)",
                                      f"x / (1.0 + x.abs().sum(dim={d}, keepdim=True))"] +
                            [f"x * x.var({d}, keepdim=True)"] * (s.C >= 2)))
    return s.to(prods=s.prods)


# ---- attention ------------------------------------------------------------------------------------
@step("mha", ("seq",), weight=2.5)
def mha(em: Emitter, s: State, p: Params) -> State:
    C = s.C
    h = p.pick("heads", [d for d in (1, 2, 3, 4) if C % d == 0])
    first = p.chance("batch_first", 0.7)
    ref = em.mod("mha", f"nn.MultiheadAttention({C}, {h}, batch_first={first}, bias={p.chance('bias', 0.8)})")
    if first:
        y = p.pick("call", ["{m}(x, x, x, need_weights=False)[0]", "{m}(x, x, x)[0]"]).format(m=ref)
    else:
        y = f"{ref}(x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1))[0].transpose(0, 1)"
        if not p.chance("residual", 0.7):
            em.line(f"x = {y}")
            return s.to(prods=((f"{path(ref)}.out_proj.weight", 0, 0),), contig=False)
    if p.chance("residual", 0.7):
        em.line(f"x = x + {y}")
        return s.to(prods=s.prods + ((f"{path(ref)}.out_proj.weight", 0, 0),))
    em.line(f"x = {y}")
    return s.to(prods=((f"{path(ref)}.out_proj.weight", 0, 0),))


# ---- meta -----------------------------------------------------------------------------------------
@step("meta", CHANNELS, weight=1)
def meta(em: Emitter, s: State, p: Params) -> State:
    """Sizes read in forward: scales from a width, views from sizes, zero tokens made with ``new_zeros``."""
    calls = ["x * (x.shape[-1] ** -0.5)", "x / x.dim()", "x.view(x.shape)", "x * len(x) / x.size(0)",
             "x * (1.0 / x.numel())", "x * x.shape[0] / x.size(0)"]
    if s.mode == "seq":
        calls += [f"torch.cat([x.new_zeros(x.shape[0], 1, {s.C}), x], 1)",
                  f"torch.cat([torch.zeros(x.shape[0], 1, {s.C}, dtype=x.dtype), x], dim=1)"]
    if s.mode in CF:
        calls += [f"x * torch.arange(1, x.shape[-1] + 1, dtype=x.dtype) / {s.shape[-1]}"]
    call = p.pick("call", calls)
    em.line("x = " + call)
    if "torch.zeros(x.shape" in call or "len(" in call:
        em.frontends.discard("fx")  # symbolic tracing calls neither torch.zeros with traced sizes nor len
    if "new_zeros" in call or "torch.zeros" in call:
        return s.to(shape=(s.shape[0], s.shape[1] + 1, s.C), prods=s.prods)
    return s.to(prods=s.prods)
