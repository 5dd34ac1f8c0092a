"""Shrink the user's own module in place: slice its tensors, update its size attributes, check it.

:func:`shrink_in_place` (``otograph.compress(model, space, units, inplace=True)``) keeps the model's
object and class, so everything the class offers (``generate``, ``save_pretrained``, its own
``forward`` at any shape) still works. Three steps, all undone if any fails:

1. every member slice of the removed units is cut out of the model's parameters and buffers (tied
   tensors stay tied; parameters become new ``nn.Parameter`` objects: build optimizers afterwards);
2. module attributes that hold sizes are updated, children before parents: the op rules' ``resize``
   (``in_features``, ``out_channels``, ``normalized_shape`` …) and the attribute rules of
   :mod:`otograph.rewrite.attributes` (Hugging Face ``Conv1D.nf``, GPT-2's ``split_size``, head counts);
3. the check: a float64 copy of the shrunk model runs on the example inputs and on inputs of a second
   batch size and sequence length (image size), against a float64 copy of the zeroed original. A
   difference above ``1e-9·max(1, max|y|)`` or an error is a :class:`ShrinkError` naming the module,
   the attribute or code line that still holds an old size, and what to register; the model is
   restored as it was.

The model's own Python code is not rewritten (that is what ``compress`` without ``inplace`` does): a
forward that computes a size from an attribute no rule updates is caught by the check.
"""

from __future__ import annotations

import copy
import inspect
import linecache
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from otograph.analysis.registry import BUILTIN, Registry
from otograph.analysis.space import SearchSpace, named_tensors
from otograph.errors import RewriteError
from otograph.rewrite.attributes import ATTRIBUTE_RULES, AttributeRules, CannotResize
from otograph.rewrite.plan import Plan, make_plan, take
from otograph.tracing.values import eval_mode, flat_inputs, unwrap

__all__ = ["shrink_in_place", "ShrinkError", "check_inputs_for", "resize_modules", "norm_in"]

log = logging.getLogger(__name__)

Inputs = tuple[tuple, dict]


class ShrinkError(RewriteError):
    """In-place shrinking was refused or failed its check; the model was left as it was.

    Besides the common fields: ``attribute`` (the attribute that still holds an old size, if known)
    and ``line`` (``file:line`` of the code that failed or read it, if known).
    """

    def __init__(self, message: str, *, attribute: str | None = None, line: str | None = None, **fields: Any):
        super().__init__(message, **fields)
        self.attribute, self.line = attribute, line

    def __reduce__(self):
        return (_rebuild, (type(self), self.message, self.module, self.op, self.hint, self.detail,
                           self.attribute, self.line))


def _rebuild(cls, message, module, op, hint, detail, attribute, line):
    return cls(message, module=module, op=op, hint=hint, detail=detail, attribute=attribute, line=line)


# ----------------------------------------------------------------------------- undo journal


class _Journal:
    """What each touched module held before (tensor slots and public attributes), to put it back."""

    def __init__(self):
        self.saved: dict[int, tuple[nn.Module, dict, dict, dict]] = {}

    def save(self, mod: nn.Module) -> None:
        if id(mod) not in self.saved:
            attrs = {k: v for k, v in vars(mod).items() if not k.startswith("_")}
            self.saved[id(mod)] = (mod, dict(mod._parameters), dict(mod._buffers), attrs)

    def undo(self) -> None:
        for mod, params, buffers, attrs in self.saved.values():
            mod._parameters.clear()
            mod._parameters.update(params)
            mod._buffers.clear()
            mod._buffers.update(buffers)
            for k in [k for k in vars(mod) if not k.startswith("_") and k not in attrs]:
                delattr(mod, k)
            for k, v in attrs.items():
                object.__setattr__(mod, k, v)
        self.saved.clear()


# ----------------------------------------------------------------------------- steps


def _check_names(model: nn.Module, plan: Plan, traced_shapes: Mapping[str, tuple[int, ...]]) -> None:
    named = named_tensors(model)
    for name, _ in plan.params:
        t = named.get(name)
        if t is None:
            raise ShrinkError(f"tensor {name!r} must shrink, but the model has no tensor of that name (a constant "
                              f"its code creates?); in-place shrinking edits tensors and attributes, not code",
                              hint="use otograph.compress(model, space, units) for a compact GraphModule")
        want = traced_shapes.get(name)
        if want is not None and tuple(t.shape) != tuple(want):
            raise ShrinkError(f"the model's {name!r} has shape {tuple(t.shape)}, but {tuple(want)} was traced",
                              hint="build the search space again for the changed model")


def _slice(model: nn.Module, plan: Plan, journal: _Journal) -> dict[str, tuple[int, int, int]]:
    """Cut the plan's positions out of the model's tensors; returns ``{name: (axis, old, new)}``."""
    named = named_tensors(model)
    where: dict[int, list[tuple[nn.Module, str]]] = {}
    for mod in model.modules():
        for attr, t in list(mod._parameters.items()) + list(mod._buffers.items()):
            if t is not None:
                where.setdefault(id(t), []).append((mod, attr))
    cuts: dict[str, list[tuple[int, Any]]] = {}
    for (name, axis), keep in plan.params.items():
        cuts.setdefault(name, []).append((axis, keep))
    changed = {}
    done: set[int] = set()
    for name, axes in cuts.items():
        t = named[name]
        if id(t) in done:  # a tied tensor reached under another name
            continue
        done.add(id(t))
        for axis, keep in axes:
            changed[name] = (axis, t.shape[axis], len(keep))
        new = take(t, axes)
        repl = nn.Parameter(new, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else new
        for mod, attr in where[id(t)]:
            journal.save(mod)
            (mod._parameters if attr in mod._parameters else mod._buffers)[attr] = repl
    return changed


def resize_modules(model: nn.Module, names: Iterable[str], *, registry: Registry | None = None,
                   attributes: AttributeRules | None = None) -> None:
    """Update the size attributes of the modules holding the tensors ``names`` (whose shapes changed)
    and of their ancestors, children first: the op rules' ``resize``, then the attribute rules."""
    _resize(model, names, registry or BUILTIN, attributes or ATTRIBUTE_RULES, _Journal())


def _resize(model: nn.Module, changed: Iterable[str], registry: Registry, attributes: AttributeRules,
            journal: _Journal) -> None:
    """Op rules' ``resize`` and attribute rules, children before parents, on modules whose subtree
    holds a sliced tensor."""
    prefixes = set()
    for name in changed:
        parts = name.split(".")[:-1]
        prefixes.update(".".join(parts[:i]) for i in range(len(parts) + 1))
    for path, mod in reversed(list(model.named_modules())):
        if path not in prefixes:
            continue
        for fn in (registry.resizer(mod), attributes.rule_of(mod)):
            if fn is None:
                continue
            journal.save(mod)
            try:
                fn(mod)
            except CannotResize as e:
                raise ShrinkError(f"{path or 'the model'} ({type(mod).__name__}) cannot be shrunk in place: {e}",
                                  module=path, op=type(mod).__name__,
                                  hint="use otograph.compress(model, space, units) for a compact GraphModule, "
                                       "or keep this module's units") from None


# ----------------------------------------------------------------------------- check inputs


def _grow(x: torch.Tensor, axes: Iterable[int], size: Mapping[tuple[int, int], int]) -> torch.Tensor:
    for a in axes:
        n = size[(a, x.shape[a])]
        idx = torch.arange(n, device=x.device) % x.shape[a]
        x = x.index_select(a, idx)
    return x


def _new_size(axis: int, n: int) -> int:
    if axis == 0:
        return n + 1
    return n - 2 if n > 4 else n + 2


def _reshaped(args: tuple, kwargs: dict, axes_of: Mapping[int, tuple[int, ...]]) -> Inputs | None:
    """The inputs with each listed axis resized (the example's values repeated), or None if none is."""
    size = {}
    for x in tree_flatten((args, kwargs))[0]:
        for a in axes_of.get(id(x), ()):
            size.setdefault((a, x.shape[a]), _new_size(a, x.shape[a]))
    if not size:
        return None

    def one(x):
        return _grow(x, axes_of[id(x)], size) if isinstance(x, torch.Tensor) and id(x) in axes_of else x

    return tree_map(one, args), tree_map(one, kwargs)


def check_inputs_for(space: SearchSpace) -> list[Inputs]:
    """Inputs of other shapes to check an in-place shrink with, most telling first: batch size and
    the axes the export frontend left free (or, for other frontends, the sequence axis of token ids
    and the spatial axes of images), then the batch size alone."""
    traced = space.traced
    args, kwargs = traced.args, traced.kwargs
    leaves = flat_inputs(traced.gm, args, kwargs)
    tensors = [x for x in tree_flatten((args, kwargs))[0] if isinstance(x, torch.Tensor) and x.ndim]
    candidates = []
    if traced.dynamic is not None:
        axes = {id(x): a for x, a in zip(leaves, traced.dynamic, strict=False) if isinstance(x, torch.Tensor) and a}
        candidates.append(axes)
    else:
        def guess(x):
            if not x.is_floating_point() and x.ndim == 2:
                return (0, 1)  # token ids, masks: batch, sequence
            return (0, *range(2, x.ndim)) if x.ndim >= 3 else (0,)

        candidates.append({id(x): guess(x) for x in tensors})
    candidates.append({id(x): (0,) for x in tensors})
    out, seen = [], set()
    for axes in candidates:
        new = _reshaped(args, kwargs, axes)
        key = repr([tuple(t.shape) for t in tree_flatten(new)[0] if isinstance(t, torch.Tensor)]) if new else ""
        if new is not None and key not in seen:
            seen.add(key)
            out.append(new)
    return out


# ----------------------------------------------------------------------------- running in float64


def _float64(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).to(torch.float64)


def _as64(x: Any) -> Any:
    return tree_map(lambda t: t.double() if isinstance(t, torch.Tensor) and t.is_floating_point() else t, x)


@torch.no_grad()
def _run(model: nn.Module, inputs: Inputs) -> list[torch.Tensor]:
    args, kwargs = _as64(inputs)
    with eval_mode(model):
        out = model(*args, **kwargs)
    return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


def _compare(ref: list[torch.Tensor], got: list[torch.Tensor]) -> str | None:
    """None when ``got`` is ``ref`` within the exactness bound, else what differs."""
    if len(ref) != len(got):
        return f"{len(got)} output tensors instead of {len(ref)}"
    for i, (y, z) in enumerate(zip(ref, got, strict=True)):
        if y.shape != z.shape:
            return f"output {i} has shape {tuple(z.shape)} instead of {tuple(y.shape)}"
        if not y.numel():
            continue
        if not y.is_floating_point():
            if not torch.equal(y, z):
                return f"output {i} differs"
            continue
        d, m = float((y - z).abs().max()), float(y.abs().max())
        if not d <= 1e-9 * max(1.0, m):
            return f"output {i} differs by {d:.3g} (largest value {m:.3g})"
    return None


# ----------------------------------------------------------------------------- diagnosis


def _stale(module: nn.Module, path: str, changed: Mapping[str, tuple[int, int, int]],
           names: Iterable[str] | None, units: Mapping[tuple[str, int], int]) -> list[tuple[str, int, str]]:
    """Public int attributes of ``module`` (among ``names`` if given) that look like a size of its
    subtree before slicing: the old size ``n`` of a sliced axis (a width), or ``n / k`` where ``k`` is
    a multiple of the positions one unit holds on that axis and divides the new size (a count of
    heads). ``units``: positions per unit of each sliced ``(tensor, axis)``. Each with its story."""
    pre = f"{path}." if path else ""
    mine = [(name[len(pre):], cut) for name, cut in changed.items() if name.startswith(pre)]
    out = []
    for k, v in vars(module).items():
        if k.startswith("_") or type(v) is not int or v < 2 or (names is not None and k not in names):
            continue
        for name, (axis, old, new) in mine:
            per = old // v if old % v == 0 else 0  # positions per count of v
            if per and new % per == 0 and new != old and (per == 1 or per % units.get((pre + name, axis), 1) == 0):
                now = new // (old // v)
                how = f"{old}" if old == v else f"{old} / {old // v}"
                out.append((k, v, f"{name} axis {axis} went from {old} to {new}; as {how} it would now be {now}"))
                break
    return out


def _forward_reads(module: nn.Module) -> set[str] | None:
    try:
        src = inspect.getsource(type(module).forward)
    except (OSError, TypeError):
        return None
    return set(re.findall(r"\bself\.(\w+)", src))


def _hint(module: nn.Module, attrs: list[str]) -> str:
    cls = type(module).__name__
    what = ", ".join(attrs) if attrs else "the sizes its forward computes from attributes"
    return (f"register an attribute rule for {cls} that sets {what} from its sliced submodules, e.g. "
            f"otograph.register_resize({cls}, lambda m: ...), or use otograph.compress(model, space, units) "
            f"for a compact GraphModule")


def _failing_frames(err: BaseException, names: Mapping[int, str]) -> list[tuple[str, int, nn.Module]]:
    """``(file, line, module)`` of the frames outside torch whose locals hold one of the model's
    modules as ``self``/``module``, innermost first."""
    torch_dir = os.path.dirname(torch.__file__)
    tb, found = err.__traceback__, []
    while tb is not None:
        f = tb.tb_frame
        if not f.f_code.co_filename.startswith(torch_dir):
            mods = [v for k, v in f.f_locals.items() if k in ("self", "module") and id(v) in names]
            if mods:
                found.append((f.f_code.co_filename, tb.tb_lineno, mods[0]))
        tb = tb.tb_next
    return found[::-1]


def _diagnose_error(err: Exception, test: nn.Module, changed, units, shape_note: str,
                    has_rule: Callable[[nn.Module], bool] = lambda m: False) -> ShrinkError:
    """The failing code's module: the innermost one on the stack that has no resize rule and holds an
    old size (a module with a rule had its sizes set; it fails on what its caller gave it), else the
    innermost one."""
    names = {id(m): n for n, m in test.named_modules()}
    frames = _failing_frames(err, names)
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if not frames:
        return ShrinkError(f"the shrunk model fails {shape_note}: {type(err).__name__}: {first}",
                           hint="use otograph.compress(model, space, units) for a compact GraphModule")

    def stale_at(frame):
        file, lineno, mod = frame
        reads = set(re.findall(r"\b(?:self|module)\.(\w+)", linecache.getline(file, lineno)))
        path = names[id(mod)]
        return (_stale(mod, path, changed, reads, units) or _stale(mod, path, changed, _forward_reads(mod), units)
                or _stale(mod, path, changed, None, units))

    where, stale = frames[0], None
    for frame in frames:
        if not has_rule(frame[2]):
            stale = stale_at(frame)
            if stale:
                where = frame
                break
    if not stale:
        stale = stale_at(where)
    file, lineno, mod = where
    path = names[id(mod)]
    code = linecache.getline(file, lineno).strip()
    attrs = [k for k, _, _ in stale]
    held = "; ".join(f"{k} = {v} ({why})" for k, v, why in stale)
    msg = (f"{path or 'the model'} ({type(mod).__name__}) fails after shrinking in place, {shape_note}: "
           f"{type(err).__name__}: {first}\n  at {file}:{lineno}: {code}"
           + (f"\n  it may still hold old sizes: {held}" if held else ""))
    return ShrinkError(msg, module=path, op=type(mod).__name__, attribute=attrs[0] if attrs else None,
                       line=f"{file}:{lineno}", hint=_hint(mod, attrs))


class _Recorder:
    """Inputs and outputs of every module call, in completion order."""

    def __init__(self, model: nn.Module):
        self.calls: list[tuple[str, list[torch.Tensor], list[torch.Tensor]]] = []
        self.handles = [m.register_forward_hook(self._hook(n), with_kwargs=True) for n, m in model.named_modules()]

    def _hook(self, name: str):
        def hook(mod, args, kwargs, out):
            ins = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
            outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
            self.calls.append((name, ins, outs))
        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool | None:
    """True/False when comparable (same count and shapes), None otherwise."""
    if len(a) != len(b) or any(x.shape != y.shape or x.dtype != y.dtype for x, y in zip(a, b, strict=True)):
        return None
    return _compare(a, b) is None


def _diagnose_mismatch(ref: nn.Module, test: nn.Module, inputs: Inputs, changed, units, shape_note: str,
                       what: str) -> ShrinkError:
    """The first module (in completion order) whose inputs are as before but whose output is not."""
    recs = []
    for model in (ref, test):
        rec = _Recorder(model)
        try:
            _run(model, inputs)
        finally:
            rec.close()
        recs.append(rec.calls)
    ref_calls: dict[str, list] = {}
    for name, ins, outs in recs[0]:
        ref_calls.setdefault(name, []).append((ins, outs))
    mods = dict(test.named_modules())
    seen: dict[str, int] = {}
    for name, ins, outs in recs[1]:
        i = seen.get(name, 0)
        seen[name] = i + 1
        if i >= len(ref_calls.get(name, ())):
            continue
        rins, routs = ref_calls[name][i]
        if _same(rins, ins) and _same(routs, outs) is False:
            mod = mods[name]
            stale = (_stale(mod, name, changed, _forward_reads(mod), units)
                     or _stale(mod, name, changed, None, units))
            attrs = [k for k, _, _ in stale]
            held = "; ".join(f"{k} = {v} ({why})" for k, v, why in stale)
            msg = (f"{name or 'the model'} ({type(mod).__name__}) computes something else after shrinking in "
                   f"place, {shape_note} ({what}), though its inputs are unchanged"
                   + (f"\n  it may still hold old sizes: {held}" if held else
                      "\n  its forward computes a size from an attribute or the config that no rule updates"))
            return ShrinkError(msg, module=name, op=type(mod).__name__, attribute=attrs[0] if attrs else None,
                               hint=_hint(mod, attrs))
    return ShrinkError(f"the shrunk model computes something else {shape_note} ({what})",
                       hint="use otograph.compress(model, space, units) for a compact GraphModule")


# ----------------------------------------------------------------------------- the verb


def _shape_note(i: int, inputs: Inputs) -> str:
    shapes = [tuple(t.shape) for t in tree_flatten(inputs)[0] if isinstance(t, torch.Tensor)]
    return f"on the {'example inputs' if i == 0 else 'inputs of another shape'} {shapes[:3]}"


def norm_in(model: nn.Module, group) -> str | None:
    """The LayerNorm/RMSNorm (its module path) that ``group``'s units run through, if any: in place,
    such a group cannot shrink (the norm must keep dividing by the original width)."""
    for m in group.members:
        owner = m.param.rpartition(".")[0]
        mod = model.get_submodule(owner) if owner else model
        if isinstance(mod, (nn.LayerNorm, nn.RMSNorm)) or type(mod).__name__.endswith(("LayerNorm", "RMSNorm")):
            return owner
    return None


def _refuse_norm_divisors(model: nn.Module, space: SearchSpace, units: Mapping[str, Iterable[int]]) -> None:
    """Units through a norm's channels (see the divisor rules) shrink exactly in the compact GraphModule,
    which divides by the original width with plain ops; a module of the norm's own class cannot, so in
    place they are refused before anything changes."""
    for gid, removed in units.items():
        owner = norm_in(model, space.group(gid)) if list(removed) else None
        if owner is not None:
            kind = type(model.get_submodule(owner)).__name__
            raise ShrinkError(
                f"group {gid!r} runs through {kind} {owner!r}, which must keep dividing by the original width "
                f"once units are removed; a {kind} cannot, in place", module=owner, op=kind,
                hint=f"leave group {gid!r} whole (the hidden size; heads and MLP neurons shrink in place), or use "
                     f"otograph.compress(model, space, units) for a compact GraphModule that keeps it exact")


def _refuse_picked_stacks(space: SearchSpace, units: Mapping[str, Iterable[int]]) -> None:
    """Whole matrices picked from a stacked parameter by an index tensor (MoE experts) go exactly in the
    compact GraphModule, which maps the index onto the kept matrices; the model's own code would still
    index the full stack, so in place they are refused before anything changes."""
    res = space.analysis
    picks = getattr(getattr(res, "analysis", None), "picks", None)
    if not picks:
        return
    picked = set(res.labels[np.concatenate(list(picks.values()))].tolist())
    for gid, removed in units.items():
        if any(res.unit_comp.get((gid, u)) in picked for u in removed):
            owner = space.group(gid).members[0].param.rpartition(".")[0]
            raise ShrinkError(
                f"group {gid!r} removes whole matrices that the code of {owner or 'the model'!r} picks by index "
                f"(MoE experts); its code would still index the original stack", module=owner or None, op="index",
                hint=f"leave group {gid!r} whole (each expert's neurons shrink in place), or use "
                     f"otograph.compress(model, space, units) for a compact GraphModule that maps the index")


def shrink_in_place(model: nn.Module, space: SearchSpace, units: Mapping[str, Iterable[int]] | None = None, *,
                    registry: Registry | None = None, attributes: AttributeRules | None = None,
                    check: bool = True, check_inputs: Iterable[Any] | None = None) -> nn.Module:
    """Remove ``units`` (default: the exactly zero ones) from ``model`` itself and return it.

    ``check`` (see the module docstring) runs on the space's example inputs and, unless
    ``check_inputs`` (a list of example inputs) is given, on :func:`check_inputs_for` (the first one
    the zeroed original accepts). It holds two float64 copies of the model in turn.
    """
    target = model
    model = unwrap(model)
    registry = registry or space.analysis.analysis.registry or BUILTIN
    attributes = attributes or ATTRIBUTE_RULES
    units = space.zero_units(model) if units is None else space.check_units(units)
    plan = make_plan(space, units)
    if not plan.params:
        return target
    _check_names(model, plan, space.traced.tensor_shapes)
    _refuse_norm_divisors(model, space, units)
    _refuse_picked_stacks(space, units)
    inputs, ref_outs = [], []
    if check:
        inputs, ref_outs = _reference(model, space, units, check_inputs)
    journal = _Journal()
    try:
        changed = _slice(model, plan, journal)
        _resize(model, changed, registry, attributes, journal)
        failure = _check(model, inputs, ref_outs) if check else None
    except BaseException:
        journal.undo()
        raise
    if failure is not None:
        journal.undo()
        raise _explain(failure, model, space, units, changed,
                       lambda m: registry.resizer(m) is not None or attributes.rule_of(m) is not None)
    log.info("shrunk %s in place: %d tensors sliced, %d modules resized", type(model).__name__, len(changed),
             len(journal.saved))
    return target


def _reference(model: nn.Module, space: SearchSpace, units, check_inputs) -> tuple[list[Inputs], list]:
    """Inputs to check with and the zeroed original's float64 outputs on them."""
    example = (space.traced.args, space.traced.kwargs)
    if check_inputs is not None:
        from otograph.tracing.values import normalize_inputs

        extra, required = [normalize_inputs(x) for x in check_inputs], True
    else:
        extra, required = check_inputs_for(space), False
    ref = _float64(model)
    space.zero_(ref, units)
    inputs, outs = [example], [_run(ref, example)]
    for x in extra:
        try:
            outs.append(_run(ref, x))
        except Exception as e:  # noqa: BLE001 - the model does not take this shape: try the next one
            if required:
                raise
            log.info("the model does not run on inputs of shapes %s (%s); not checked there",
                     [tuple(t.shape) for t in tree_flatten(x)[0] if isinstance(t, torch.Tensor)], e)
            continue
        inputs.append(x)
        if not required:
            break
    if len(inputs) == 1:
        log.warning("in-place shrinking is checked on the example's shapes only: the model runs at no other")
    return inputs, outs


def _check(model: nn.Module, inputs: list[Inputs], ref_outs: list) -> tuple | None:
    """None, or ``(shrunk float64 copy, inputs, note, exception or what differs)`` for the first failure."""
    test = _float64(model)
    for i, (x, want) in enumerate(zip(inputs, ref_outs, strict=True)):
        try:
            got = _run(test, x)
        except Exception as e:  # noqa: BLE001 - explained by _explain
            return test, x, _shape_note(i, x), e
        what = _compare(want, got)
        if what is not None:
            return test, x, _shape_note(i, x), what
    return None


def _explain(failure: tuple, model: nn.Module, space: SearchSpace, units, changed,
             has_rule: Callable[[nn.Module], bool]) -> ShrinkError:
    """The error for a failed check; ``model`` is back as it was."""
    test, x, note, problem = failure
    per_unit = _positions_per_unit(space, units)
    if isinstance(problem, Exception):
        err = _diagnose_error(problem, test, changed, per_unit, note, has_rule)
        err.__cause__ = problem
        return err
    ref = _float64(model)
    space.zero_(ref, units)
    return _diagnose_mismatch(ref, test, x, changed, per_unit, note, problem)


def _positions_per_unit(space: SearchSpace, units) -> dict[tuple[str, int], int]:
    """Positions one unit holds on each sliced ``(tensor, axis)`` (the smallest, over its groups)."""
    out: dict[tuple[str, int], int] = {}
    for gid in units:
        g = space.group(gid)
        for m in g.members:
            n = m.positions.numel() // max(1, g.num_units)
            key = (m.param, m.axis)
            out[key] = min(out.get(key, n), n)
    return out
