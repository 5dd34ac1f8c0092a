"""Step kinds of the rule families producer, passthrough and elementwise (joins with broadcasting)."""

from __future__ import annotations

import math

from otograph.testing.fuzz.program import CF, CHANNELS, Emitter, Params, State, path, step

__all__ = ["fan", "new_channels", "ones"]


def fan(n: int) -> float:
    return round(1.0 / math.sqrt(max(1, n)), 4)


def ones(s: State) -> str:
    """``, 1, 1`` for the spatial axes of ``s`` (a per-channel parameter that broadcasts)."""
    return ", 1" * s.nd


def new_channels(em: Emitter, s: State, w: int, src: str = "x", k: int = 1, prefix: str = "") -> tuple[str, tuple]:
    """An expression making ``w`` new channels from ``src`` (a ``k``-wide conv or a Linear) and its producer."""
    if s.mode in CF:
        ref = em.mod(prefix or "conv", f"nn.Conv{s.nd}d({s.C}, {w}, {k}, padding={k // 2})")
    else:
        ref = em.mod(prefix or "lin", f"nn.Linear({s.C}, {w})")
    return f"{ref}({src})", ((f"{path(ref)}.weight", 0, 0),)


# ---- activations first: the simplest step, where hypothesis shrinks to ------------------------------
ACT_MODULES = ["nn.ReLU()", "nn.ReLU6()", "nn.LeakyReLU(0.1)", "nn.ELU()", "nn.CELU()", "nn.SELU()", "nn.GELU()",
               "nn.GELU('tanh')", "nn.SiLU()", "nn.Hardswish()", "nn.Mish()", "nn.Tanh()", "nn.Hardtanh()",
               "nn.Softsign()", "nn.Tanhshrink()", "nn.Hardshrink(0.1)", "nn.Softshrink(0.1)", "nn.Dropout(0.2)",
               "nn.Identity()"]
ACT_CALLS = ["F.relu({x})", "F.relu6({x})", "F.leaky_relu({x}, 0.2)", "F.elu({x})", "F.celu({x})", "F.selu({x})",
             "F.gelu({x})", "F.gelu({x}, approximate='tanh')", "F.silu({x})", "F.hardswish({x})", "F.mish({x})",
             "F.hardtanh({x})", "F.softsign({x})", "torch.tanh({x})", "torch.relu({x})", "{x}.relu()", "{x}.tanh()",
             "{x}.abs()", "torch.abs({x})", "{x}.neg()", "-{x}", "torch.neg({x})", "{x}.square()", "torch.sin({x})",
             "torch.sign({x}) * {x}", "F.dropout({x}, 0.1, self.training)", "{x}.clone()", "{x}.contiguous()",
             "{x}.to({x}.dtype)", "{x}.type_as({x})"]


@step("act", CHANNELS, weight=4)
def act(em: Emitter, s: State, p: Params) -> State:
    if p.chance("module", 0.4):
        em.line(f"x = {em.mod('act', p.pick('cls', ACT_MODULES))}(x)")
    else:
        em.line("x = " + p.pick("call", ACT_CALLS).format(x="x"))
    return s.to()


# ---- producers ------------------------------------------------------------------------------------
def conv_out(n: int, k: int, stride: int, pad: int) -> int:
    return (n + 2 * pad - k) // stride + 1


@step("conv", CF, weight=4)
def conv(em: Emitter, s: State, p: Params) -> State:
    C, nd = s.C, s.nd
    w = p.int("w", 2, 12)
    k = p.pick("k", [1, 3] if min(s.spatial) >= 3 else [1])
    stride = p.pick("stride", [1, 1, 2]) if min(s.spatial) >= 4 else 1
    pad = k // 2 if p.chance("same", 0.8) else 0
    out = [conv_out(n, k, stride, pad) for n in s.spatial]
    groups, kind = 1, p.pick("groups", ["1", "1", "dw", "g2", "g3"])
    if kind == "dw":
        groups, w = C, C * p.int("mult", 1, 2)
    elif kind in ("g2", "g3") and C % int(kind[1]) == 0:
        groups = int(kind[1])
        w = groups * max(1, w // groups)
    bias = p.chance("bias", 0.7)
    if p.chance("functional", 0.25):
        wref = em.param("w", (w, C // groups, *[k] * nd), fan(C // groups * k ** nd))
        bref = em.param("b", (w,), 0.1) if bias else "None"
        em.line(f"x = F.conv{nd}d(x, {wref}, {bref}, stride={stride}, padding={pad}, groups={groups})")
        prods = ((path(wref), 0, 0),)
    else:
        ref = em.mod("conv", f"nn.Conv{nd}d({C}, {w}, {k}, stride={stride}, padding={pad}, groups={groups}, "
                             f"bias={bias})")
        em.line(f"x = {ref}(x)")
        prods = ((f"{path(ref)}.weight", 0, 0),)
    return s.to(shape=(s.shape[0], w, *out), prods=prods, inplace_ok=True)


@step("conv_transpose", CF, weight=1.5)
def conv_transpose(em: Emitter, s: State, p: Params) -> State:
    C, nd = s.C, s.nd
    w = p.int("w", 2, 10)
    up = p.chance("up", 0.5) and max(s.spatial) <= 6
    k, stride, pad = (2, 2, 0) if up else (3, 1, 1)
    groups = 2 if p.chance("grouped", 0.3) and C % 2 == 0 and w % 2 == 0 else 1
    out = [(n - 1) * stride - 2 * pad + k for n in s.spatial]
    if p.chance("functional", 0.25):
        wref = em.param("w", (C, w // groups, *[k] * nd), fan(C * k ** nd))
        bref = em.param("b", (w,), 0.1)
        em.line(f"x = F.conv_transpose{nd}d(x, {wref}, {bref}, stride={stride}, padding={pad}, groups={groups})")
        name = path(wref)
    else:
        ref = em.mod("convt", f"nn.ConvTranspose{nd}d({C}, {w}, {k}, stride={stride}, padding={pad}, "
                              f"groups={groups})")
        em.line(f"x = {ref}(x)")
        name = f"{path(ref)}.weight"
    prods = ((name, 1, 0),) if groups == 1 else ()
    return s.to(shape=(s.shape[0], w, *out), prods=prods, inplace_ok=True)


@step("linear", ("seq", "vec"), weight=4)
def linear(em: Emitter, s: State, p: Params) -> State:
    w, bias = p.int("w", 2, 16), p.chance("bias", 0.8)
    if p.chance("functional", 0.25):
        wref = em.param("w", (w, s.C), fan(s.C))
        bref = em.param("b", (w,), 0.1) if bias else "None"
        em.line(f"x = F.linear(x, {wref}, {bref})")
        prods = ((path(wref), 0, 0),)
    else:
        ref = em.mod("lin", f"nn.Linear({s.C}, {w}, bias={bias})")
        em.line(f"x = {ref}(x)")
        prods = ((f"{path(ref)}.weight", 0, 0),)
    return s.with_channels(w, prods, inplace_ok=True, contig=True)


@step("addmm", ("seq", "vec"), weight=1)
def addmm(em: Emitter, s: State, p: Params) -> State:
    """Hugging Face GPT-2's ``Conv1D``: ``addmm(bias, x.view(-1, nx), W)`` with ``W`` stored (in, out)."""
    w = p.int("w", 2, 12)
    wref, bref = em.param("w", (s.C, w), fan(s.C)), em.param("b", (w,), 0.1)
    if s.mode == "vec":
        em.line(f"x = torch.addmm({bref}, x, {wref})")
    else:
        em.line(f"x = torch.addmm({bref}, x.reshape(-1, {s.C}), {wref}).view(x.shape[0], x.shape[1], {w})")
    return s.with_channels(w, ((path(wref), 1, 0),), inplace_ok=True, contig=True)


@step("channels_last_linear", CF, weight=1)
def channels_last_linear(em: Emitter, s: State, p: Params) -> State:
    w = p.int("w", 2, 12)
    ref = em.mod("lin", f"nn.Linear({s.C}, {w})")
    last = tuple(range(2, 2 + s.nd))
    to_last = ", ".join(map(str, (0, *last, 1)))
    back = ", ".join(map(str, (0, s.nd + 1, *range(1, s.nd + 1))))
    em.line(f"x = {ref}(x.permute({to_last})).permute({back})")
    return s.with_channels(w, ((f"{path(ref)}.weight", 0, 0),), contig=False)


@step("embedding", ("tok",), weight=1)
def embedding(em: Emitter, s: State, p: Params) -> State:
    d, n = p.int("d", 4, 16), s.shape[1]
    if p.chance("functional", 0.25):
        ref = em.param("emb", (s.vocab, d), 1.0)
        em.line(f"x = F.embedding(x, {ref})")
        prods = [(path(ref), 1, 0)]
    else:
        ref = em.mod("emb", f"nn.Embedding({s.vocab}, {d})")
        em.embedding = (ref, d)
        em.line(f"x = {ref}(x)")
        prods = [(f"{path(ref)}.weight", 1, 0)]
    pos = p.pick("pos", ["none", "arange", "param"])
    if pos == "arange":
        pref = em.mod("pos", f"nn.Embedding({n}, {d})")
        em.line(f"x = x + {pref}(torch.arange(x.shape[1], device=x.device))")
        prods.append((f"{path(pref)}.weight", 1, 0))
    elif pos == "param":
        pref = em.param("pos", (1, n, d), 0.5)
        em.line(f"x = x + {pref}[:, : x.shape[1]]")
    return s.to(mode="seq", shape=(s.shape[0], n, d), prods=tuple(prods), contig=True)


# ---- passthrough ----------------------------------------------------------------------------------
@step("norm", CHANNELS, weight=2.5)
def norm(em: Emitter, s: State, p: Params) -> State:
    C = s.C
    if s.mode in CF:
        if p.chance("functional", 0.3):
            rm, rv = em.buffer("mean", f"torch.randn({C}) * 0.1"), em.buffer("var", f"torch.rand({C}) + 0.5")
            w, b = em.param("gamma", (C,), 0.1, 1.0), em.param("beta", (C,), 0.1)
            em.line(f"x = F.batch_norm(x, {rm}, {rv}, {w}, {b}, False)")
        else:
            em.line(f"x = {em.mod('bn', f'nn.BatchNorm{s.nd}d({C})')}(x)")
    elif s.mode == "seq":
        em.line(f"x = {em.mod('bn', f'nn.BatchNorm1d({C})')}(x.transpose(1, 2)).transpose(1, 2)")
        return s.to(prods=s.prods, contig=False)
    else:
        em.line(f"x = {em.mod('bn', f'nn.BatchNorm1d({C})')}(x)")
    return s.to(prods=s.prods, inplace_ok=True)


@step("instance_norm", CF, weight=1)
def instance_norm(em: Emitter, s: State, p: Params) -> State | None:
    if math.prod(s.spatial) < 2:
        return None
    track = p.chance("track", 0.3)
    affine = p.chance("affine", 0.8) or track
    if p.chance("functional", 0.3):
        w, b = em.param("gamma", (s.C,), 0.1, 1.0), em.param("beta", (s.C,), 0.1)
        em.line(f"x = F.instance_norm(x, weight={w}, bias={b})")
    else:
        ref = em.mod("inorm", f"nn.InstanceNorm{s.nd}d({s.C}, affine={affine}, track_running_stats={track})")
        em.line(f"x = {ref}(x)")
    return s.to(prods=s.prods, inplace_ok=True)


@step("pool", CF, weight=2)
def pool(em: Emitter, s: State, p: Params) -> State | None:
    nd, sp = s.nd, s.spatial
    options = ["avg3", "adapt1"] if min(sp) >= 3 else ["adapt1"]
    if min(sp) >= 2:
        options += ["max2", "avg2", "fmax2", "adaptmax2", "fadapt2"]
    if max(sp) <= 5:
        options += ["up", "upsample"]
    if nd == 2:
        options += ["zeropad", "constpad0"]
    kind = p.pick("kind", options)
    if kind == "avg3":
        em.line(f"x = F.avg_pool{nd}d(x, 3, stride=1, padding=1)")
        out = sp
    elif kind == "adapt1":
        em.line(f"x = {em.mod('pool', f'nn.AdaptiveAvgPool{nd}d(1)')}(x)")
        out = (1,) * nd
    elif kind in ("max2", "avg2"):
        cls = "MaxPool" if kind == "max2" else "AvgPool"
        em.line(f"x = {em.mod('pool', f'nn.{cls}{nd}d(2)')}(x)")
        out = tuple(n // 2 for n in sp)
    elif kind == "fmax2":
        em.line(f"x = F.max_pool{nd}d(x, 2, ceil_mode=True)")
        out = tuple(-(-n // 2) for n in sp)
    elif kind == "adaptmax2":
        em.line(f"x = {em.mod('pool', f'nn.AdaptiveMaxPool{nd}d(2)')}(x)")
        out = (2,) * nd
    elif kind == "fadapt2":
        em.line(f"x = F.adaptive_avg_pool{nd}d(x, 2)")
        out = (2,) * nd
    elif kind == "up":
        mode = p.pick("mode", ["nearest", "linear"])
        interp = {1: "linear", 2: "bilinear", 3: "trilinear"}[nd] if mode == "linear" else "nearest"
        corners = ", align_corners=False" if mode == "linear" else ""
        em.line(f"x = F.interpolate(x, scale_factor=2, mode={interp!r}{corners})")
        out = tuple(2 * n for n in sp)
    elif kind == "upsample":
        em.line(f"x = {em.mod('up', 'nn.Upsample(scale_factor=2)')}(x)")
        out = tuple(2 * n for n in sp)
    elif kind == "zeropad":
        em.line(f"x = {em.mod('pad', 'nn.ZeroPad2d(1)')}(x)")
        out = tuple(n + 2 for n in sp)
    else:
        em.line(f"x = {em.mod('pad', 'nn.ConstantPad2d(1, 0.0)')}(x)")
        out = tuple(n + 2 for n in sp)
    return s.to(shape=(*s.shape[:2], *out), prods=s.prods)


@step("pad", (*CF, "seq", "vec"), weight=1)
def pad(em: Emitter, s: State, p: Params) -> State:
    """Zero padding along space or tokens, or along the channel axis (new channels that are always zero)."""
    if s.mode in CF and not p.chance("channels", 0.3):
        mode = p.pick("mode", ["constant", "reflect", "replicate"]) if min(s.spatial) >= 2 else "constant"
        extra = "" if mode == "constant" else f", mode={mode!r}"
        em.line(f"x = F.pad(x, {(1, 1) * s.nd}{extra})")
        return s.to(shape=(*s.shape[:2], *(n + 2 for n in s.spatial)), prods=s.prods)
    if s.mode == "seq" and p.chance("tokens", 0.5):
        em.line("x = F.pad(x, (0, 0, 1, 0))")
        return s.to(shape=(s.shape[0], s.shape[1] + 1, s.C), prods=s.prods)
    before, after = p.int("before", 0, 2), p.int("after", 1, 2)
    spec = (before, after) if s.ch == len(s.shape) - 1 else (0, 0) * s.nd + (before, after)
    em.line(f"x = F.pad(x, {spec})")
    return s.with_channels(s.C + before + after, tuple((n, a, o + before) for n, a, o in s.prods))


@step("clamp", CHANNELS, weight=1)
def clamp(em: Emitter, s: State, p: Params) -> State:
    lo, hi = p.pick("lo", [0.5, 1.0, 2.0]), p.pick("hi", [1.0, 2.0, 3.0])
    em.line("x = " + p.pick("call", ["x.clamp(-{lo}, {hi})", "torch.clamp(x, min=-{lo}, max={hi})",
                                      "x.clamp_max({hi})", "x.clamp_min(-{lo})", "torch.clip(x, -{lo}, {hi})",
                                      "x.clamp(min=0.0)", "torch.clamp_min(x, -{lo})"]).format(lo=lo, hi=hi))
    return s.to(prods=s.prods)


@step("pow", CHANNELS, weight=0.7)
def pow_(em: Emitter, s: State, p: Params) -> State:
    em.line("x = " + p.pick("call", ["x ** 2", "x.pow(2)", "torch.pow(x, 3)", "x * x", "torch.square(x)",
                                      "x.abs() ** 1.5"]))
    return s.to(prods=s.prods)


@step("prelu", (*CF, "vec"), weight=1)
def prelu(em: Emitter, s: State, p: Params) -> State:
    kind = p.pick("kind", ["per_channel", "single", "functional"])
    if kind == "per_channel":
        em.line(f"x = {em.mod('prelu', f'nn.PReLU({s.C})')}(x)")
    elif kind == "single":
        em.line(f"x = {em.mod('prelu', 'nn.PReLU()')}(x)")
    else:
        em.line(f"x = F.prelu(x, {em.param('slope', (s.C,), 0.1, 0.25)})")
    return s.to(prods=s.prods)


@step("like", CHANNELS, weight=0.7)
def like(em: Emitter, s: State, p: Params) -> State:
    em.line("x = " + p.pick("call", ["x + torch.zeros_like(x)", "x * torch.ones_like(x)",
                                      "x * torch.full_like(x, 0.5)", "x + x.new_zeros(x.shape)",
                                      "x * x.new_ones(x.shape)", "x + torch.zeros(x.shape, dtype=x.dtype)",
                                      "x + x.clone().zero_()"]))
    return s.to(prods=s.prods)


# ---- elementwise joins ----------------------------------------------------------------------------
JOINS = ["x = x + {y}", "x = torch.add(x, {y})", "x = x.add({y})", "x = {y} + x", "x = x - {y}",
         "x = torch.sub(x, {y})", "x = torch.add(x, {y}, alpha=0.5)", "x = x * {y}", "x = torch.mul(x, {y})"]


@step("residual", CHANNELS, weight=3)
def residual(em: Emitter, s: State, p: Params) -> State:
    """``x ⊕ f(x)`` with ``f`` a producer keeping the width, optionally followed by a norm or an activation."""
    k = 3 if s.mode in CF and min(s.spatial) >= 3 and p.chance("k3", 0.5) else 1
    y, prods = new_channels(em, s, s.C, k=k)
    t = em.tmp()
    em.line(f"{t} = {y}")
    after = p.pick("after", ["none", "act", "norm"])
    if after == "act":
        em.line(f"{t} = " + p.pick("act", ACT_CALLS[:14]).format(x=t))
    elif after == "norm" and s.mode != "seq":
        em.line(f"{t} = {em.mod('bn', f'nn.BatchNorm{max(1, s.nd)}d({s.C})')}({t})")
    if after != "act" and p.chance("iadd", 0.3):  # in place into the fresh branch, whose value autograd did not save
        em.line(f"{t} += x", f"x = {t}")
        em.patterns.add("inplace")
    else:
        em.line(p.pick("join", JOINS).format(y=t))
    return s.to(prods=s.prods + prods)


@step("gate", CHANNELS, weight=2)
def gate(em: Emitter, s: State, p: Params) -> State:
    """Squeeze-excite (channels-first), a sigmoid gate, or a gated linear unit (SwiGLU)."""
    C = s.C
    fn = p.pick("fn", ["torch.sigmoid({x})", "F.hardsigmoid({x})", "{x}.sigmoid()", "(1 + torch.tanh({x})) / 2"])
    if s.mode in CF:
        r = max(1, C // 2)
        pooled = p.pick("pool", ["x.mean({d}, keepdim=True)", "x.amax({d}, keepdim=True)", "pool"])
        if pooled == "pool":
            pooled = f"F.adaptive_avg_pool{s.nd}d(x, 1)"
        if p.chance("linear", 0.4):  # squeeze to a vector, excite with Linear, broadcast back with view
            a, b = em.mod("fc", f"nn.Linear({C}, {r})"), em.mod("fc", f"nn.Linear({r}, {C})")
            g = fn.format(x=f"{b}(F.relu({a}(x.mean({s.sp_dims}))))")
            back = p.pick("back", [f".view(x.shape[0], {C}{ones(s)})", "[:, :" + ", None" * s.nd + "]",
                                   ".reshape(x.shape[0], -1" + ones(s) + ")"])
            em.line(f"x = x * ({g}){back}")
        else:
            a = em.mod("se", f"nn.Conv{s.nd}d({C}, {r}, 1)")
            b = em.mod("se", f"nn.Conv{s.nd}d({r}, {C}, 1)")
            em.line(f"x = x * {fn.format(x=f'{b}(F.relu({a}({pooled.format(d=s.sp_dims)})))')}")
        return s.to(prods=s.prods + ((f"{path(b)}.weight", 0, 0),))
    if p.chance("glu", 0.5):
        w = p.int("w", 2, 12)
        a, b = em.mod("up", f"nn.Linear({C}, {w})"), em.mod("gate", f"nn.Linear({C}, {w})")
        em.line(f"x = {a}(x) * " + p.pick("act", ["F.silu({x})", "F.gelu({x})", "torch.sigmoid({x})"])
                .format(x=f"{b}(x)"))
        return s.with_channels(w, ((f"{path(a)}.weight", 0, 0), (f"{path(b)}.weight", 0, 0)))
    g = em.mod("gate", f"nn.Linear({C}, {C})")
    em.line(f"x = x * {fn.format(x=f'{g}(x)')}")
    return s.to(prods=s.prods + ((f"{path(g)}.weight", 0, 0),))


@step("scale", CHANNELS, weight=2)
def scale(em: Emitter, s: State, p: Params) -> State:
    """Layer scale and bias parameters (broadcast per channel), and scalars."""
    kind = p.pick("kind", ["gamma", "beta", "scalar", "div_param"])
    shape = (s.C, *[1] * s.nd) if s.mode in CF else (s.C,)
    if kind == "gamma":
        em.line(p.pick("call", ["x = x * {g}", "x = {g} * x", "x = torch.mul(x, {g})", "x = x.mul({g})",
                                 "x = torch.addcmul(x, x, {g}, value=0.5)"])
                .format(g=em.param("gamma", shape, 0.3, 1.0)))
    elif kind == "beta":
        em.line(p.pick("call", ["x = x + {b}", "x = x - {b}", "x = {b} + x"]).format(b=em.param("beta", shape, 0.3)))
    elif kind == "div_param":
        em.line(f"x = x / (1.0 + {em.param('temp', shape, 0.3)}.abs())")
    else:
        em.line("x = " + p.pick("call", ["x * 2.0", "x / 4.0", "0.5 * x", "x.mul(3.0)", "torch.mul(x, 0.5)",
                                          "x.div(2.0)", "x / math.sqrt(2.0)", "torch.div(x, 3)"]))
    return s.to(prods=s.prods)


@step("where", CHANNELS, weight=1)
def where(em: Emitter, s: State, p: Params) -> State:
    em.line("x = " + p.pick("call", ["torch.where(x > 0, x, 0.1 * x)", "torch.where(x > 0, x, torch.zeros_like(x))",
                                      "x.masked_fill(x < -1.0, 0.0)", "torch.where(x.abs() > 0.5, x, 0.0)",
                                      "x.where(x > 0, x * 0.5)", "torch.masked_fill(x, x > 2.0, 0.0)"]))
    return s.to(prods=s.prods)


@step("side_input", CHANNELS, weight=2)
def side_input(em: Emitter, s: State, p: Params) -> State | None:
    """A second input ``v`` (batch, side), projected to the channels and broadcast over the other axes."""
    if not em.side:
        return None
    ref = em.mod("side", f"nn.Linear({em.side}, {s.C})")
    if s.mode in CF:
        y = f"{ref}(v)" + p.pick("bc", ["[:, :" + ", None" * s.nd + "]", f".view(v.shape[0], {s.C}{ones(s)})"])
    elif s.mode == "seq":
        y = f"{ref}(v)" + p.pick("bc", [".unsqueeze(1)", "[:, None, :]"])
    else:
        y = f"{ref}(v)"
    em.line(p.pick("join", ["x = x + {y}", "x = x * torch.sigmoid({y})", "x = x * (1 + {y})"]).format(y=y))
    return s.to(prods=s.prods + ((f"{path(ref)}.weight", 0, 0),))


@step("broadcast", CHANNELS, weight=1)
def broadcast(em: Emitter, s: State, p: Params) -> State | None:
    """Joins with a reduction over a non-channel axis, broadcast back."""
    if s.mode == "vec":
        return None
    d = s.sp_dims if s.mode in CF else "1"
    em.line("x = " + p.pick("call", ["x * x.mean({d}, keepdim=True)", "x + x.mean({d}, keepdim=True)",
                                      "x - x.amax({d}, keepdim=True)", "x * x.softmax(dim={d1})",
                                      "x * torch.sigmoid(x.sum({d}, keepdim=True))"]).format(d=d, d1=d.strip("(,)")
                                                                                         .split(",")[0]))
    return s.to(prods=s.prods)
