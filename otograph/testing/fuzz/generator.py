"""Generate random models from the step vocabulary, valid by construction, and render them as source.

``generate(chooser, seed)`` draws a :class:`~.program.Case` (the shapes are tracked step by step, so
every step fits the tensor it meets); ``render(case)`` replays its steps into the Python source of a
standalone module defining ``Net``, ``build()`` and ``inputs(seed)``; ``load(source)`` executes it.

Example:
    >>> from otograph.testing.fuzz import RandomChooser, generate, load, render
    >>> case = generate(RandomChooser(3), seed=3, size=4)
    >>> program = render(case)
    >>> mod = load(program.source)
    >>> out = mod.build().eval()(*mod.inputs(0))
    >>> render(case).source == program.source          # rendering is deterministic
    True
"""

from __future__ import annotations

import copy
import linecache
import types
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch.utils._pytree import tree_flatten

import otograph.testing.fuzz.steps_core  # noqa: F401 - the step modules fill VOCAB
import otograph.testing.fuzz.steps_layout  # noqa: F401
import otograph.testing.fuzz.steps_mix  # noqa: F401
import otograph.testing.fuzz.steps_patterns  # noqa: F401
from otograph.testing.exact import _decorrelate, to_double
from otograph.testing.fuzz.program import VOCAB, Case, Chooser, Emitter, Params, State, Step

__all__ = ["Program", "PATTERNS", "WRAPPERS", "generate", "render", "load", "validate", "initial_state"]

#: the patterns of issue 13 (``--skip`` takes these names, or step kinds)
PATTERNS = ("inplace", "buffer", "no_grad", "autograd_fn", "wrapper", "dtype", "tied", "trap", "train_mode",
            "python_control", "frozen")
WRAPPERS = ("module", "sequential", "dataparallel", "compile")
_PREFIX = {None: "", "module": "inner.", "sequential": "0.", "dataparallel": "module.", "compile": "_orig_mod."}
_WRAP = {None: "model", "module": "Wrapper(model)", "sequential": "nn.Sequential(model)",
         "dataparallel": "nn.DataParallel(model)", "compile": 'torch.compile(model, backend="eager")'}
_MODES = ("img", "seq", "vec", "sig", "tok", "vol")
_MODE_WEIGHTS = (4, 3, 1.5, 1.5, 1.5, 0.7)


@dataclass(frozen=True)
class Program:
    """A rendered case: the source, the traps (groups that must stay unprunable), the patterns it
    contains, the frontends that can trace it, and the step kinds actually emitted."""

    source: str
    traps: tuple
    patterns: frozenset
    frontends: tuple
    kinds: tuple


def initial_state(case: Case) -> State:
    return State(case.mode, (2, *case.dims), vocab=case.vocab)


def _dims(ch: Chooser, mode: str) -> tuple[int, ...]:
    if mode == "img":
        return ch.integer(1, 5), ch.integer(3, 8), ch.integer(3, 8)
    if mode == "sig":
        return ch.integer(1, 6), ch.integer(3, 12)
    if mode == "vol":
        return ch.integer(1, 3), ch.integer(2, 4), ch.integer(2, 4), ch.integer(2, 4)
    if mode == "seq":
        return ch.integer(2, 6), ch.integer(2, 12)
    if mode == "vec":
        return (ch.integer(2, 12),)
    return (ch.integer(2, 6),)


def _emit(em: Emitter, s: State, kind: str, params: Params, skip: Iterable[str] = ()) -> State | None:
    """Emit one step, or leave everything as it was if it does not fit (or brings a skipped pattern)."""
    ck = em.checkpoint()
    new = VOCAB[kind].emit(em, s, params) if s.mode in VOCAB[kind].modes else None
    if new is None or em.patterns & set(skip):
        em.rollback(ck)
        return None
    return new


def generate(ch: Chooser, seed: int, *, size: int = 8, skip: Iterable[str] = (), focus: Iterable[str] = ()) -> Case:
    """A random case of 1 … ``size`` steps (plus a head) without the patterns or step kinds in ``skip``;
    the patterns or step kinds in ``focus`` come first where they fit, then ten times as often as the
    others (case-level ones: mostly)."""
    skip, focus = frozenset(skip), frozenset(focus)

    def often(name: str, p: float) -> float:
        return 0.8 if name in focus else p

    modes = {m for k in focus if k in VOCAB for m in VOCAB[k].modes} or set(_MODES)
    if "embedding" in focus:
        modes = {"tok"}
    options = [(m, w) for m, w in zip(_MODES, _MODE_WEIGHTS, strict=True) if m in modes]
    mode = ch.weighted([m for m, _ in options], [w for _, w in options])
    dims = _dims(ch, mode)
    vocab = ch.integer(5, 20) if mode == "tok" else 0
    side = ch.integer(2, 6) if ch.chance(0.15) else 0
    wrapper = None
    if "wrapper" not in skip and ch.chance(often("wrapper", 0.06)):
        wrapper = ch.choice([w for w in WRAPPERS if not (side and w == "sequential")])
    dtype_after_trace = "dtype" not in skip and ch.chance(often("dtype", 0.06))
    train_mode = "train_mode" not in skip and ch.chance(often("train_mode", 0.15))
    case = Case(seed, mode, dims, (), side, vocab, wrapper, dtype_after_trace, train_mode)
    em, s, steps = Emitter(side=side), initial_state(case), []

    def add(kind: str) -> bool:
        nonlocal s
        params = Params(ch)
        new = _emit(em, s, kind, params, skip)
        if new is None:
            return False
        steps.append(Step(kind, tuple(sorted(params.values.items()))))
        s = new
        return True

    if mode == "tok":
        add("embedding")
    for _ in range(ch.integer(1, size)):
        kinds = [k for k in VOCAB.values() if s.mode in k.modes and k.weight > 0 and k.name not in skip
                 and k.pattern not in skip]
        if not kinds:
            break
        focused = [k for k in kinds if focus & {k.name, k.pattern}]
        if focused and not any(focus & {st.kind, VOCAB[st.kind].pattern} for st in steps):
            kinds = focused  # the first step that can be a focused one is
        for _attempt in range(6):
            weights = [k.weight * (10 if focus & {k.name, k.pattern} else 1) for k in kinds]
            if add(ch.weighted([k.name for k in kinds], weights)):
                break
    add("head")
    frozen = ch.integer(1, 3) if "frozen" not in skip and ch.chance(often("frozen", 0.08)) else 0
    return Case(seed, mode, dims, tuple(steps), side, vocab, wrapper, dtype_after_trace, train_mode, frozen)


def render(case: Case) -> Program:
    """Replay ``case``'s steps (leaving out those that no longer fit) into a standalone module's source."""
    em, s, kinds = Emitter(side=case.side), initial_state(case), []
    for st in case.steps:
        new = _emit(em, s, st.kind, Params(recorded=dict(st.params)))
        if new is not None:
            s = new
            kinds.append(st.kind)
    patterns = set(em.patterns)
    patterns |= {"wrapper"} if case.wrapper else set()
    patterns |= {"dtype"} if case.dtype_after_trace else set()
    patterns |= {"train_mode"} if case.train_mode else set()
    patterns |= {"frozen"} if case.frozen else set()
    prefix = _PREFIX[case.wrapper]
    traps = tuple((prefix + param, axis, pos, why) for param, axis, pos, why in em.traps)
    frontends = tuple(f for f in ("fx", "export") if f in em.frontends)
    return Program(_assemble(case, em, kinds), traps, frozenset(patterns), frontends, tuple(kinds))


def _assemble(case: Case, em: Emitter, kinds: list[str]) -> str:
    args = "x, v" if case.side else "x"
    options = [f"wrapper={case.wrapper}"] * bool(case.wrapper) + ["dtype after tracing"] * case.dtype_after_trace + \
        ["train mode"] * case.train_mode + [f"{case.frozen} frozen parameters"] * bool(case.frozen)
    doc = f"otograph fuzz case {case.seed}: {' → '.join(kinds) or 'identity'}" + \
        (f" ({', '.join(options)})" if options else "") + "."
    out = [f'"""{doc}"""', "", "import collections  # noqa: F401", "import math  # noqa: F401", "", "import torch", "import torch.nn as nn",
           "import torch.nn.functional as F", "", ""]
    for src in em.helpers.values():
        out += [src, "", ""]
    out += ["class Net(nn.Module):", "    def __init__(self):", "        super().__init__()"]
    out += ["        " + line for line in em.init]
    out += ["", f"    def forward(self, {args}):"] + ["        " + line for line in em.fwd]
    out += [f"        return {em.ret or 'x'}", "", ""]
    if case.wrapper == "module":
        out += ["class Wrapper(nn.Module):", "    def __init__(self, inner):", "        super().__init__()",
                "        self.inner = inner", "", f"    def forward(self, {args}):", f"        return self.inner({args})",
                "", ""]
    out += ["def build():", f"    torch.manual_seed({case.seed})", "    model = Net()"]
    if case.frozen:
        out += [f"    for p in list(model.parameters())[:{case.frozen}]:", "        p.requires_grad_(False)"]
    out += [f"    return {_WRAP[case.wrapper]}", "", ""]
    if case.mode == "tok":
        x = f"torch.randint(0, {case.vocab}, (2, {case.dims[0]}), generator=g)"
    else:
        x = f"torch.randn(2, {', '.join(map(str, case.dims))}, generator=g)"
    ins = f"({x}, torch.randn(2, {case.side}, generator=g))" if case.side else f"({x},)"
    out += ["def inputs(seed):", '    """Example inputs (seed 0), fresh inputs (seed 1): the same shapes."""',
            "    g = torch.Generator().manual_seed(seed)", f"    return {ins}", ""]
    return "\n".join(out)


_LOADED = 0


def load(source: str) -> types.ModuleType:
    """Execute a program's source as a fresh module (its lines are shown in tracebacks)."""
    global _LOADED
    _LOADED += 1
    name = f"otograph_fuzz_case_{_LOADED}"
    filename = f"<{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    mod = types.ModuleType(name)
    exec(compile(source, filename, "exec"), mod.__dict__)
    return mod


def validate(source: str, seed: int = 0) -> str | None:
    """Why a generated model is not a usable case (it fails to run, or gives non-finite values or
    gradients in float64), or None. A case that fails here is a generator bug, not an analysis bug."""
    try:
        mod = load(source)
        model = mod.build()
        with torch.no_grad():
            model.eval()(*mod.inputs(0))
        ref = copy.deepcopy(model).double().eval()
        _decorrelate(ref, seed)
        args = [a.requires_grad_() if a.is_floating_point() else a for a in to_double(mod.inputs(1))]
        outs = [o for o in tree_flatten(ref(*args))[0] if isinstance(o, torch.Tensor) and o.is_floating_point()]
        if not all(bool(o.isfinite().all()) for o in outs):
            return "non-finite output"
        loss = sum((o * (1 + torch.arange(o.numel(), dtype=o.dtype).view(o.shape) % 3)).sum() for o in outs)
        if isinstance(loss, torch.Tensor) and loss.requires_grad:
            targets = [a for a in args if a.requires_grad] + [p for p in ref.parameters() if p.requires_grad]
            grads = torch.autograd.grad(loss, targets, allow_unused=True) if targets else []
            if not all(bool(g.isfinite().all()) for g in grads if g is not None):
                return "non-finite gradient"
    except Exception as e:  # noqa: BLE001 - any failure makes the case unusable
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return None
