"""The fuzzer's data: steps, cases, the shape-tracking state and the source emitter.

A :class:`Case` is a list of abstract :class:`Step`\\ s (a kind and its drawn parameters) plus
case-level options (inputs, wrapper, dtype change, train mode). :func:`~.generator.render` turns it
into the Python source of an ``nn.Module``; each step kind is one function
``emit(em, state, p) -> State | None`` registered with :func:`step`. The function draws its
parameters through ``p`` (a :class:`Params`): while generating, ``p`` asks a :class:`Chooser` and
records the answers; while rendering again (after shrinking removed steps), ``p`` replays them and
answers a deterministic default for a question that was not asked before. A step that does not
fit the state it meets returns ``None`` and is left out, so any sub-list of steps renders a valid
model.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

__all__ = ["Chooser", "RandomChooser", "Params", "Step", "Case", "State", "Emitter", "StepKind", "VOCAB", "step",
           "CF", "CHANNELS", "MODES"]

#: stream modes: channels-first images, signals and volumes; token sequences (channels last); vectors;
#: integer token ids (only an embedding applies)
CF = ("img", "sig", "vol")
CHANNELS = (*CF, "seq", "vec")
MODES = (*CHANNELS, "tok")


class Chooser(Protocol):
    """Where the random decisions come from (a seeded ``random.Random`` or hypothesis' ``draw``)."""

    def integer(self, lo: int, hi: int) -> int: ...

    def choice(self, options: Sequence) -> Any: ...

    def weighted(self, options: Sequence, weights: Sequence[float]) -> Any: ...

    def chance(self, p: float) -> bool: ...


class RandomChooser:
    """A :class:`Chooser` over ``random.Random(seed)`` (or over a given ``random.Random``)."""

    def __init__(self, seed: int | random.Random):
        self.rng = seed if isinstance(seed, random.Random) else random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, options: Sequence) -> Any:
        return options[self.rng.randrange(len(options))]

    def weighted(self, options: Sequence, weights: Sequence[float]) -> Any:
        return self.rng.choices(list(options), weights=list(weights))[0]

    def chance(self, p: float) -> bool:
        return self.rng.random() >= 1.0 - p  # a draw of 0 (where hypothesis shrinks to) says no


class Params:
    """A step's parameters: drawn from a chooser (and recorded), or replayed from a recording.

    Replaying answers a question that was not recorded with its default (``lo``, the first
    option, ``False``), so a step meeting a different state after shrinking stays deterministic.
    """

    def __init__(self, chooser: Chooser | None = None, recorded: dict | None = None):
        self.chooser, self.values = chooser, dict(recorded or {})

    def _get(self, key: str, draw: Callable[[], Any], default: Any, valid: Callable[[Any], bool]) -> Any:
        if key in self.values and valid(self.values[key]):
            return self.values[key]
        value = draw() if self.chooser is not None else default
        self.values[key] = value
        return value

    def int(self, key: str, lo: int, hi: int) -> int:
        hi = max(lo, hi)
        v = self._get(key, lambda: self.chooser.integer(lo, hi), lo, lambda v: True)
        return min(max(v, lo), hi)  # a replayed value is clamped into the range the state allows now

    def pick(self, key: str, options: Sequence) -> Any:
        options = list(options)
        return self._get(key, lambda: self.chooser.choice(options), options[0], lambda v: v in options)

    def chance(self, key: str, prob: float) -> bool:
        return self._get(key, lambda: self.chooser.chance(prob), False, lambda v: True)


@dataclass(frozen=True)
class Step:
    kind: str
    params: tuple = ()  # sorted (name, value) pairs

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.params)
        return f"Step({self.kind!r}{', ' + inner if inner else ''})"


@dataclass(frozen=True)
class Case:
    """One generated model: the input kind and sizes, the steps, and case-level patterns."""

    seed: int
    mode: str  # the input's mode (see MODES)
    dims: tuple[int, ...]  # the input's shape without the batch axis (tok: (tokens,), vocabulary in vocab)
    steps: tuple[Step, ...]
    side: int = 0  # width of a second input vector (0: none)
    vocab: int = 0
    wrapper: str | None = None  # "module", "sequential", "dataparallel", "compile"
    dtype_after_trace: bool = False  # the space is traced in float32, the check runs in float64
    train_mode: bool = False  # the model is handed to the analysis in train mode
    frozen: int = 0  # its first ``frozen`` parameters do not require gradients


@dataclass(frozen=True)
class State:
    """The stream ``x`` where a step meets it: mode, shape (batch first) and what made its channels.

    ``prods``: ``(param, axis, offset)`` of producers whose out-channel ``i`` is channel
    ``offset + i`` of the stream (used to name the groups a trap must keep unprunable).
    ``inplace_ok``: an in-place op on ``x`` is safe (``x`` was made in forward, and autograd saved
    neither it nor a view of it). ``vocab``: the number of token ids (mode ``tok``). ``contig``:
    ``x`` is contiguous, so ``view`` may merge its axes.
    """

    mode: str
    shape: tuple[int, ...]
    prods: tuple[tuple[str, int, int], ...] = ()
    inplace_ok: bool = False
    vocab: int = 0
    contig: bool = True  # ``x`` is known to be contiguous (``view`` may merge its axes)

    @property
    def ch(self) -> int:
        return 2 if self.mode == "seq" else 1

    @property
    def C(self) -> int:
        return self.shape[self.ch]

    @property
    def spatial(self) -> tuple[int, ...]:
        return self.shape[2:] if self.mode in CF else ()

    @property
    def nd(self) -> int:
        return len(self.spatial)

    @property
    def sp_dims(self) -> str:
        """The spatial axes as a tuple literal, e.g. ``(2, 3)``."""
        dims = tuple(range(2, 2 + self.nd))
        return f"({dims[0]},)" if len(dims) == 1 else str(dims)

    def to(self, **kw) -> State:
        kw.setdefault("inplace_ok", False)
        kw.setdefault("contig", self.contig)  # memory formats (channels last) survive most ops
        if "shape" in kw:
            kw["shape"] = tuple(kw["shape"])
        return replace(self, **kw)

    def with_channels(self, c: int, prods: tuple = (), **kw) -> State:
        shape = list(self.shape)
        shape[self.ch] = c
        return self.to(shape=shape, prods=prods, **kw)


@dataclass
class Emitter:
    """Collects the source of one model: ``__init__`` lines, ``forward`` lines, helpers."""

    side: int = 0
    init: list[str] = field(default_factory=list)
    fwd: list[str] = field(default_factory=list)
    helpers: dict[str, str] = field(default_factory=dict)
    traps: list[tuple[str, int, tuple[int, ...] | None, str]] = field(default_factory=list)
    patterns: set[str] = field(default_factory=set)
    frontends: set[str] = field(default_factory=lambda: {"fx", "export"})
    ret: str | None = None
    counter: int = 0
    embedding: tuple[str, int] | None = None  # the token embedding module and its width (a tied head)

    def checkpoint(self) -> tuple:
        return (len(self.init), len(self.fwd), dict(self.helpers), len(self.traps), set(self.patterns),
                set(self.frontends), self.ret, self.counter, self.embedding)

    def rollback(self, ck: tuple) -> None:
        ni, nf, helpers, nt, patterns, frontends, self.ret, self.counter, self.embedding = ck
        del self.init[ni:], self.fwd[nf:], self.traps[nt:]
        self.helpers, self.patterns, self.frontends = helpers, patterns, frontends

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter - 1}"

    def mod(self, prefix: str, ctor: str) -> str:
        """A submodule ``self.<prefix><n> = ctor``; returns ``self.<name>`` (use ``.name_of`` for the path)."""
        n = self.name(prefix)
        self.init.append(f"self.{n} = {ctor}")
        return f"self.{n}"

    def param(self, prefix: str, shape: Sequence[int], scale: float = 0.5, offset: float = 0.0) -> str:
        n = self.name(prefix)
        shape_src = ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "")
        off = f" + {offset}" if offset else ""
        self.init.append(f"self.{n} = nn.Parameter(torch.randn({shape_src}) * {scale}{off})")
        return f"self.{n}"

    def buffer(self, prefix: str, src: str) -> str:
        n = self.name(prefix)
        self.init.append(f'self.register_buffer("{n}", {src})')
        return f"self.{n}"

    def tmp(self, prefix: str = "t") -> str:
        return self.name(prefix)

    def line(self, *src: str) -> None:
        self.fwd.extend(src)

    def trap(self, s: State, why: str, channels: Sequence[int] | None = None) -> None:
        """The groups holding ``s``'s channel producers (those of ``channels`` only, if given) must
        stay unprunable; ``why`` names the trap."""
        self.patterns.add("trap")
        for param, axis, offset in s.prods:
            positions = None if channels is None else tuple(c - offset for c in channels if c >= offset)
            if positions != ():
                self.traps.append((param, axis, positions, why))

    def helper(self, name: str, src: str) -> None:
        self.helpers[name] = src


def path(ref: str) -> str:
    """``self.conv3`` → ``conv3``."""
    return ref.removeprefix("self.")


@dataclass(frozen=True)
class StepKind:
    name: str
    emit: Callable[[Emitter, State, Params], State | None]
    modes: tuple[str, ...]
    weight: float
    pattern: str | None  # the pattern this step stands for (``--skip`` names it), None for plain ops


#: every step kind by name (filled by the ``steps_*`` modules)
VOCAB: dict[str, StepKind] = {}


def step(name: str, modes: Sequence[str] = CHANNELS, *, weight: float = 1.0, pattern: str | None = None):
    """Register ``emit(em, state, p)`` as the step kind ``name`` (applicable in ``modes``)."""

    def deco(fn):
        if name in VOCAB:
            raise KeyError(f"step kind {name!r} registered twice")
        VOCAB[name] = StepKind(name, fn, tuple(modes), weight, pattern)
        return fn

    return deco
