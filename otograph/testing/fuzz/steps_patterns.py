"""Step kinds for the patterns of issue 13: in-place ops (assigned and not), buffers updated in forward,
``no_grad`` regions, custom autograd functions, shared and tied weights, traps that must stay
unprunable, unregistered (opaque) ops, and Python control flow only ``torch.export`` follows.
Wrappers, dtype changes after tracing and train mode are options of the whole case (generator.py)."""

from __future__ import annotations

from otograph.testing.fuzz.program import CF, CHANNELS, Emitter, Params, State, path, step
from otograph.testing.fuzz.steps_core import fan, new_channels

__all__ = ["AUTOGRAD_FUNCTIONS"]


@step("inplace", CHANNELS, weight=2, pattern="inplace")
def inplace(em: Emitter, s: State, p: Params) -> State | None:
    if not s.inplace_ok:
        return None
    lead = "..., " if s.mode == "seq" else ":, "
    kind = p.pick("kind", ["act", "scale", "view_scale", "view_zero"] if s.C >= 2 else ["act", "scale"])
    if kind == "act":
        call = p.pick("call", ["x.relu_()", "x = x.relu_()", "torch.relu_(x)", "F.relu(x, inplace=True)",
                               "x = F.relu(x, inplace=True)", "MOD(x)", "x = MOD(x)", "F.leaky_relu(x, 0.1, inplace=True)",
                               "F.hardtanh(x, inplace=True)", "x = F.silu(x, inplace=True)", "F.elu(x, inplace=True)"])
        if "MOD" in call:
            call = call.replace("MOD", em.mod("act", p.pick("cls", [
                "nn.ReLU(inplace=True)", "nn.ReLU6(inplace=True)", "nn.LeakyReLU(0.1, inplace=True)",
                "nn.Hardswish(inplace=True)", "nn.SiLU(inplace=True)"])))
        em.line(call)
    elif kind == "scale":
        em.line(p.pick("call", ["x.mul_(2.0)", "x *= 0.5", "x = x.mul_(3.0)", "x.div_(2.0)", "x /= 2.0",
                                "x.clamp_(-2.0, 2.0)", "x = x.sub_(0.0)"]))
    else:
        k = p.int("k", 1, s.C - 1)
        em.line(p.pick("call", [f"x[{lead}:{k}].mul_(2.0)", f"x[{lead}:{k}] *= 2.0", f"x.narrow({s.ch}, 0, {k}).mul_(0.5)"])
                if kind == "view_scale" else
                p.pick("call", [f"x[{lead}{k}:].zero_()", f"x.narrow({s.ch}, {k}, {s.C - k}).zero_()"]))
    em.patterns.add("inplace")
    return s.to(prods=s.prods)


@step("zero_channels", CHANNELS, weight=0.7, pattern="inplace")
def zero_channels(em: Emitter, s: State, p: Params) -> State | None:
    """Channels of a copy zeroed in place through a view (they stay zero; the others are untouched)."""
    if s.C < 2:
        return None
    k, lead = p.int("k", 1, s.C - 1), "..., " if s.mode == "seq" else ":, "
    em.line("x = x.clone()", p.pick("call", [f"x[{lead}{k}:].zero_()", f"x.narrow({s.ch}, {k}, {s.C - k}).zero_()"]))
    em.patterns.add("inplace")
    return s.to(prods=s.prods)


@step("buffer", CHANNELS, weight=1, pattern="buffer")
def buffer(em: Emitter, s: State, p: Params) -> State:
    """Buffers written in forward: a call counter, a running statistic, one the output depends on."""
    kind = p.pick("kind", ["counter", "ema", "ema_out", "channel_stat", "train_only"])
    if kind == "counter":
        buf = em.buffer("calls", "torch.zeros((), dtype=torch.long)")
        em.line(p.pick("call", [f"{buf}.add_(1)", f"{buf}.copy_({buf} + 1)"]))
    elif kind in ("ema", "ema_out"):
        buf = em.buffer("ema", "torch.zeros(())")
        em.line(f"{buf}.mul_(0.9).add_(0.1 * x.detach().abs().mean())")
        if kind == "ema_out":
            em.line(f"x = x / (1.0 + {buf})")
    elif kind == "channel_stat":
        buf = em.buffer("stat", f"torch.zeros({s.C})")
        dims = tuple(i for i in range(len(s.shape)) if i != s.ch)
        em.line(f"{buf}.mul_(0.9).add_(0.1 * x.detach().mean({dims if len(dims) > 1 else dims[0]}))")
    else:
        buf = em.buffer("steps", "torch.zeros((), dtype=torch.long)")
        em.line("if self.training:", f"    {buf}.add_(1)")
    em.patterns.add("buffer")
    return s.to(prods=s.prods)


def _gate(em: Emitter, s: State) -> tuple[str, tuple]:
    """A sigmoid gate over the stream's channels, broadcast to the stream."""
    src = f"x.mean({s.sp_dims}, keepdim=True)" if s.mode in CF else "x"
    y, prods = new_channels(em, s.to(shape=(*s.shape[:2], *[1] * s.nd)) if s.mode in CF else s, s.C, src=src,
                            prefix="gate")
    return f"torch.sigmoid({y})", prods


@step("no_grad", CHANNELS, weight=1, pattern="no_grad")
def no_grad(em: Emitter, s: State, p: Params) -> State:
    kind = p.pick("kind", ["gate", "detach", "set_grad", "whole", "enable_grad"])
    g = em.tmp("g")
    if kind in ("gate", "set_grad"):
        gate, prods = _gate(em, s)
        em.line("with torch.no_grad():" if kind == "gate" else "with torch.set_grad_enabled(False):",
                f"    {g} = {gate}", f"x = x * {g}")
        out = s.to(prods=s.prods + prods)
    elif kind == "detach":
        gate, prods = _gate(em, s)
        em.line(f"x = x * {gate}.detach()")
        out = s.to(prods=s.prods + prods)
    else:
        w = p.int("w", 2, 8)
        y, prods = new_channels(em, s, w)
        em.line("with torch.no_grad():" if kind == "whole" else "with torch.enable_grad():", f"    x = {y}")
        out = s.with_channels(w, prods)
    em.patterns.add("no_grad")
    return out


AUTOGRAD_FUNCTIONS = {
    "StraightThrough": '''class StraightThrough(torch.autograd.Function):
    """Clamp forward; the backward passes the gradient through unchanged."""

    @staticmethod
    def forward(ctx, x):
        return x.clamp(-1.0, 1.0)

    @staticmethod
    def backward(ctx, grad):
        return grad''',
    "GradScale": '''class GradScale(torch.autograd.Function):
    """Identity forward; the backward halves the gradient."""

    @staticmethod
    def forward(ctx, x):
        return x * 1.0

    @staticmethod
    def backward(ctx, grad):
        return grad * 0.5''',
    "ReLUFn": '''class ReLUFn(torch.autograd.Function):
    """ReLU with its own (correct) backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x > 0).to(grad.dtype)''',
    "LinearFn": '''class LinearFn(torch.autograd.Function):
    """``x @ w.T`` with its own (correct) backward."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x @ w.t()

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        return grad @ w, grad.reshape(-1, grad.shape[-1]).t() @ x.reshape(-1, x.shape[-1])''',
}


@step("autograd_fn", CHANNELS, weight=1, pattern="autograd_fn")
def autograd_fn(em: Emitter, s: State, p: Params) -> State:
    name = p.pick("fn", list(AUTOGRAD_FUNCTIONS) if s.mode in ("seq", "vec") else list(AUTOGRAD_FUNCTIONS)[:3])
    em.helper(name, AUTOGRAD_FUNCTIONS[name])
    em.patterns.add("autograd_fn")
    if name == "LinearFn":
        w = p.int("w", 2, 8)
        ref = em.param("w", (w, s.C), fan(s.C))
        em.line(f"x = LinearFn.apply(x, {ref})")
        return s.with_channels(w, ((path(ref), 0, 0),))
    em.line(f"x = {name}.apply(x)")
    return s.to(prods=s.prods)


@step("tied", CHANNELS, weight=1, pattern="tied")
def tied(em: Emitter, s: State, p: Params) -> State:
    """One module applied twice, two modules sharing a weight, a weight used transposed, a free weight used twice."""
    C = s.C
    kinds = ["shared_twice", "tied_pair"] + (["tied_transpose", "param_twice"] if s.mode in ("seq", "vec") else [])
    kind = p.pick("kind", kinds)
    em.patterns.add("tied")
    if kind == "shared_twice":
        k = 3 if s.mode in CF and min(s.spatial) >= 3 else 1
        y, prods = new_channels(em, s, C, k=k, prefix="shared")
        ref = y.split("(")[0]
        em.line(f"x = {ref}(F.relu({ref}(x)))")
        return s.to(prods=prods)
    if kind == "tied_pair":
        w = p.int("w", 2, 8)
        a, prods = new_channels(em, s, w, prefix="a")
        b, _ = new_channels(em, s, w, prefix="b")
        ra, rb = a.split("(")[0], b.split("(")[0]
        em.init.append(f"{rb}.weight = {ra}.weight")
        em.line(f"x = F.relu({a}) + torch.tanh({b})")
        return s.with_channels(w, prods)
    if kind == "tied_transpose":
        w = p.int("w", 2, 8)
        enc = em.mod("enc", f"nn.Linear({C}, {w})")
        h = em.tmp("h")
        em.line(f"{h} = F.relu({enc}(x))", f"x = x + F.linear({h}, {enc}.weight.t())")
        return s.to(prods=s.prods)
    ref = em.param("w", (C, C), fan(C))
    em.line(f"x = F.linear(F.relu(F.linear(x, {ref})), {ref})")
    return s.to(prods=((path(ref), 0, 0),))


def _consumer(em: Emitter, s: State, p: Params) -> State:
    """The op right after a trap: it reads every channel, so a removed channel that is not zero shows."""
    w = p.int("consumer_w", 2, 8)
    y, prods = new_channels(em, s, w, prefix="reader")
    em.line(f"x = {y}")
    return s.with_channels(w, prods, inplace_ok=True)


@step("trap", CHANNELS, weight=1.5, pattern="trap")
def trap(em: Emitter, s: State, p: Params) -> State | None:
    """Ops that turn a removed (zero) channel into something non-zero, then a consumer of every channel.

    The groups of the producers of those channels must stay unprunable (checked by name); were one
    prunable, the exactness check fails too.
    """
    ch, C = s.ch, s.C
    kinds = ["add_const", "clamp_min", "fill", "unary", "softmax_channels", "center", "sum_channels", "like",
             "cumsum_channels"]
    if s.inplace_ok:
        kinds += ["add_", "view_add_"] if C >= 2 else ["add_"]
    if s.mode in CF:
        kinds += ["pad_value", "logsumexp"]
    if s.mode in ("seq", "vec"):
        kinds.append("layernorm_no_affine")
    if s.mode == "img":
        kinds.append("layernorm_space")
    kind = p.pick("kind", kinds)
    channels = None
    calls = {
        "add_const": ["x = x + 1.0", "x = 1.0 + x", "x = torch.add(x, 0.5)", "x = x - 0.5", "x = x.add(1.0)",
                      "x = torch.sub(x, 1.0)", "x = 1.0 - x"],
        "clamp_min": ["x = x.clamp(min=0.1)", "x = torch.clamp(x, 0.2, 3.0)", "x = x.clamp_min(0.5)"],
        "fill": ["x = x.masked_fill(x <= 0, 1.0)", "x = torch.where(x > 0, x, 1.0)",
                 "x = torch.where(x > 0, x, torch.ones_like(x))"],
        "unary": ["x = torch.sigmoid(x)", "x = x.exp()", "x = torch.cos(x)", "x = F.softplus(x)",
                  "x = F.hardsigmoid(x)", "x = F.logsigmoid(x)", "x = x.sigmoid()", "x = MOD(x)"],
        "softmax_channels": [f"x = torch.softmax(x, dim={ch})", f"x = x.log_softmax({ch})", f"x = F.softmax(x, {ch})"],
        "center": [f"x = x - x.mean({ch}, keepdim=True)", f"x = x - x.mean(dim={ch}, keepdim=True)"],
        "sum_channels": [f"x = x + x.sum({ch}, keepdim=True)"],
        "like": ["x = x + torch.ones_like(x)", "x = x + torch.full_like(x, 0.5)"],
        "cumsum_channels": [f"x = torch.cumsum(x, dim={ch})", f"x = x.cumsum({ch})"],
        "add_": ["x.add_(1.0)", "x += 1.0", "x.sub_(0.5)", "x = x.add_(1.0)"],
        "pad_value": [f"x = F.pad(x, {(1, 1) * s.nd}, value=1.0)"],
        "logsumexp": ["x = x.logsumexp(-1)", "x = torch.logsumexp(x, dim=-1)"],
        "layernorm_no_affine": [f"x = F.layer_norm(x, ({C},))", "x = MOD(x)"],
        "layernorm_space": ["x = MOD(x)"],
    }
    if kind == "view_add_":
        k = p.int("k", 1, C - 1)
        lead = "..., " if s.mode == "seq" else ":, "
        call, channels = f"x[{lead}:{k}].add_(1.0)", tuple(range(k))
    else:
        call = p.pick("call", calls[kind])
    if "MOD" in call:
        ctor = {"unary": p.pick("cls", ["nn.Sigmoid()", "nn.Softplus()", "nn.LogSigmoid()", "nn.Hardsigmoid()"]),
                "layernorm_no_affine": f"nn.LayerNorm({C}, elementwise_affine=False)",
                "layernorm_space": f"nn.LayerNorm([{s.shape[2]}, {s.shape[3]}])" if s.mode == "img" else ""}[kind]
        call = call.replace("MOD", em.mod("trap", ctor))
    em.line(call)
    if kind in ("add_", "view_add_"):
        em.patterns.add("inplace")
    em.trap(s, kind, channels)
    if kind == "logsumexp":
        s = s.to(mode={1: "vec", 2: "sig", 3: "img"}[s.nd], shape=s.shape[:-1], prods=s.prods)
    elif kind == "pad_value":  # one more position on each side of every spatial axis
        s = s.to(shape=(*s.shape[:2], *(n + 2 for n in s.shape[2:])), prods=s.prods)
    return _consumer(em, s, p)


@step("opaque", CHANNELS, weight=0.5)
def opaque(em: Emitter, s: State, p: Params) -> State:
    """Ops without a rule (zero-preserving, so only the conservative default is exercised)."""
    em.line("x = " + p.pick("call", ["torch.erf(x)", "torch.atan(x)", f"x.flip({s.ch})", "torch.asinh(x)",
                                      "torch.special.expm1(x)"]))
    return s.to(prods=s.prods)


@step("python_control", CHANNELS, weight=0.6, pattern="python_control")
def python_control(em: Emitter, s: State, p: Params) -> State:
    """A branch on a size: ``torch.export`` specialises it, symbolic tracing cannot (export only)."""
    em.line(f"if x.shape[{s.ch}] > {s.C + 1000}:", "    x = x * 0.0")
    em.frontends.discard("fx")
    em.patterns.add("python_control")
    return s.to(prods=s.prods)
