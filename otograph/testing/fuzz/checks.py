"""The checks every fuzzed model must pass, in float64. A failure is a bug to report, never a tolerance
to widen.

``check_model(build, inputs, frontend=…)`` runs them all on the model ``build()`` returns, with
``inputs(0)`` as example inputs and ``inputs(1)`` as fresh ones:

``trace``      the frontend accepts the model (it is one the frontend should follow);
``analysis``   ``search_space`` does not crash, and no rule fails (a failing rule is logged and its op
               treated as opaque: safe, but a bug in the rule);
``untouched``  the analysis leaves the model as it was: every parameter and buffer bit-identical
               and the same object, the same ``requires_grad`` and gradients, the same ``training``
               flags, no new attributes or hooks, grad mode and default dtype restored, and
               ``copy.deepcopy`` still works;
``trap``       groups holding channels that a non-zero-invariant op reads stay unprunable;
``compress``   ``compress`` does not fail on a space the analysis accepted;
``exact``      ≥ 30 % random units of every prunable group zeroed: the compact model computes what
               the zeroed model computes, ``max|Δ| ≤ 1e-9·max(1, max|y|)`` (check_exact's bound);
``params``     the compact model has exactly the parameters left after removing the member slices;
``buffers``    after one call each, the compact model's buffers equal the zeroed model's (kept slices);
``grad``       in eval mode, the gradients of a random linear loss w.r.t. the inputs and the kept
               parameters are the zeroed model's, within the same bound per tensor, and the compact
               parameters require gradients exactly where the model's do.
``inplace``    ``compress(..., inplace=True)`` on a copy of the zeroed model either refuses
               (``ShrinkError``) and leaves that copy as it was, or makes it compute what the zeroed
               model computes, within the same bound, with the expected parameters.

These are check_exact's steps (``random_units``, ``zero_``, ``compress``, ``expected_params``, the
bound of ``Verification.exact``), kept open so the compact model can also be run for gradients and
buffers; ``tests/analysis/test_fuzz.py`` checks both agree.
"""

from __future__ import annotations

import copy
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._pytree import tree_flatten

from otograph.analysis import search_space
from otograph.errors import TraceError
from otograph.graph.cost import count_params
from otograph.rewrite import ShrinkError, compress, make_plan
from otograph.rewrite.verify import Verification
from otograph.testing.exact import _decorrelate, expected_params, random_units, to_double
from otograph.tracing.values import eval_mode, normalize_inputs

__all__ = ["CHECKS", "Failure", "Outcome", "check_model", "snapshot", "changes"]

CHECKS = ("trace", "analysis", "untouched", "trap", "compress", "exact", "params", "buffers", "grad", "inplace")


@dataclass(frozen=True)
class Failure:
    check: str
    frontend: str
    message: str

    def __str__(self) -> str:
        return f"{self.check} ({self.frontend}): {self.message}"


@dataclass
class Outcome:
    """What one frontend's run of the checks found, and what the analysis saw (for coverage)."""

    frontend: str
    failures: list[Failure] = field(default_factory=list)
    kinds: frozenset = frozenset()  # op kinds of the analysed graph
    opaque: tuple = ()
    groups: int = 0
    prunable: int = 0
    removed: int = 0  # units removed by the exactness check
    seconds: float = 0.0
    refused: str = ""  # a documented refusal (see REFUSALS): a clear error, not a failure
    in_place: str = ""  # "shrunk", or "refused: <the error's first line>" (compress(..., inplace=True))

    def fail(self, check: str, message: str) -> None:
        self.failures.append(Failure(check, self.frontend, message))


#: Errors the library raises on purpose for a model it cannot serve exactly (fragments of the message).
REFUSALS = ("inlines the forward of the custom autograd function",
            "fixed when the model was traced in",  # a cast the export graph baked in, then .double()
            "object does not support item assignment")  # torch.fx cannot trace x[idx] *= 2 (export can)


def _where(e: BaseException) -> str:
    """``Type: first line`` of an exception and the innermost frame of the library that raised it."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "/otograph/" in f.filename.replace("\\", "/")]
    at = f" [{frames[-1].filename.split('otograph/', 1)[-1]}:{frames[-1].lineno} {frames[-1].name}]" if frames else ""
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first[:300]}{at}"


# ---- the model untouched -----------------------------------------------------------------------------
def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().cpu().clone().reshape(-1).view(torch.uint8) if t.numel() else t.detach().cpu().clone()


def snapshot(model: torch.nn.Module) -> dict:
    """Everything about ``model`` that an analysis must leave as it was."""
    from torch.nn.modules import module as nn_module

    tensors = {}
    for kind, items in (("parameter", model.named_parameters(remove_duplicate=False)),
                        ("buffer", model.named_buffers(remove_duplicate=False))):
        for name, t in items:
            grad = None if t.grad is None else _bits(t.grad)
            tensors[f"{kind} {name}"] = (id(t), t.dtype, tuple(t.shape), t.requires_grad, _bits(t), grad)
    modules = {}
    for name, m in model.named_modules(remove_duplicate=False):
        modules[name or "<root>"] = (type(m).__name__, m.training, tuple(sorted(vars(m))), tuple(m._parameters),
                                     tuple(m._buffers), tuple(m._modules), len(m._forward_hooks),
                                     len(m._forward_pre_hooks), len(m._backward_hooks))
    hooks = (len(nn_module._global_forward_hooks), len(nn_module._global_forward_pre_hooks),
             len(nn_module._global_backward_hooks))
    return {"tensors": tensors, "modules": modules, "grad_enabled": torch.is_grad_enabled(),
            "default_dtype": torch.get_default_dtype(), "global_hooks": hooks}


def changes(before: dict, after: dict) -> list[str]:
    """What differs between two snapshots, in words."""
    out = []
    tb, ta = before["tensors"], after["tensors"]
    for name in tb.keys() - ta.keys():
        out.append(f"{name} disappeared")
    for name in ta.keys() - tb.keys():
        out.append(f"{name} appeared")
    for name in tb.keys() & ta.keys():
        (ib, db, sb, rb, vb, gb), (ia, da, sa, ra, va, ga) = tb[name], ta[name]
        if ib != ia:
            out.append(f"{name} was replaced by another tensor")
        if (db, sb) != (da, sa):
            out.append(f"{name} changed from {db} {list(sb)} to {da} {list(sa)}")
        elif not torch.equal(vb, va):
            out.append(f"{name} changed its values")
        if rb != ra:
            out.append(f"{name}.requires_grad changed from {rb} to {ra}")
        if (gb is None) != (ga is None) or (gb is not None and not torch.equal(gb, ga)):
            out.append(f"{name}.grad changed")
    mb, ma = before["modules"], after["modules"]
    for name in mb.keys() - ma.keys():
        out.append(f"module {name} disappeared")
    for name in ma.keys() - mb.keys():
        out.append(f"module {name} appeared")
    labels = ("type", "training", "attributes", "parameters", "buffers", "submodules", "forward hooks",
              "forward pre-hooks", "backward hooks")
    for name in mb.keys() & ma.keys():
        for label, b, a in zip(labels, mb[name], ma[name], strict=True):
            if b != a:
                extra = sorted(set(a) - set(b)) if isinstance(a, tuple) else a
                out.append(f"module {name}: {label} changed" + (f" (new: {extra})" if extra else f" ({b} → {a})"))
    for key in ("grad_enabled", "default_dtype", "global_hooks"):
        if before[key] != after[key]:
            out.append(f"{key} changed from {before[key]} to {after[key]}")
    return sorted(out)


# ---- running models ----------------------------------------------------------------------------------
def _float_outputs(out: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


def _run(model: torch.nn.Module, example: Any) -> list[torch.Tensor]:
    args, kwargs = normalize_inputs(example)
    with torch.no_grad(), eval_mode(model):
        return _float_outputs(model(*args, **kwargs))


def _grads(model: torch.nn.Module, example: Any, seed: int) -> tuple[list, dict, bool]:
    """Gradients of ``Σ w·y`` (fixed random ``w``) w.r.t. the floating inputs and the parameters that
    require them (by name; None for a parameter that does not)."""
    args, kwargs = normalize_inputs(example)
    args = [a.detach().clone().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
            for a in args]
    with torch.enable_grad(), eval_mode(model):
        outs = [o for o in _float_outputs(model(*args, **kwargs)) if o.is_floating_point()]
    g = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs)
    inputs = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    params = [(n, p) for n, p in model.named_parameters(remove_duplicate=False) if p.requires_grad]
    targets = inputs + [p for _, p in params]
    live = isinstance(loss, torch.Tensor) and loss.requires_grad
    grads = torch.autograd.grad(loss, targets, allow_unused=True) if live and targets else [None] * len(targets)
    grads = [torch.zeros_like(t) if gr is None else gr for t, gr in zip(targets, grads, strict=True)]
    by_name = {n: None for n, _ in model.named_parameters(remove_duplicate=False)}
    by_name.update({n: gr for (n, _), gr in zip(params, grads[len(inputs):], strict=True)})
    return grads[: len(inputs)], by_name, live


def _aliases(model: torch.nn.Module) -> dict[str, list[str]]:
    """Every name of each parameter and buffer → all names of the same tensor (tied weights)."""
    by_id: dict[int, list[str]] = {}
    for name, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        by_id.setdefault(id(t), []).append(name)
    return {n: names for names in by_id.values() for n in names}


def _counterpart(name: str, names: dict) -> str | None:
    """The model's name for the compact model's tensor ``name``: the same, or with the prefix of a
    wrapper the compact model was unwrapped from (``module.``, ``_orig_mod.``)."""
    if name in names:
        return name
    found = sorted((n for n in names if n.endswith("." + name)), key=len)
    return found[0] if found else None


def _names(mine: str, name: str, aliases: dict[str, list[str]]) -> list[str]:
    """Every name of the model's tensor ``mine`` (the compact model's ``name``), also without the
    prefix of a wrapper the compact model was unwrapped from: the plan knows the unwrapped names."""
    prefix = mine[:len(mine) - len(name)] if mine.endswith(name) else ""
    names = aliases.get(mine, [mine])
    return [*names, *(n[len(prefix):] for n in names if prefix and n.startswith(prefix)), name]


def _kept(t: torch.Tensor, names: Sequence[str], keep: dict) -> torch.Tensor:
    """The slices of the model's tensor (known by ``names``) that the compact model keeps."""
    for axis in range(t.ndim):
        idx = next((keep[(n, axis)] for n in names if (n, axis) in keep), None)
        if idx is not None:
            t = t.index_select(axis, torch.as_tensor(list(idx), dtype=torch.long, device=t.device))
    return t


def _close(ref: torch.Tensor, got: torch.Tensor) -> tuple[bool, float, float]:
    """``max|Δ| ≤ 1e-9·max(1, max|ref|)`` (the bound of ``Verification.exact``), with max|Δ| and max|ref|."""
    if ref.shape != got.shape:
        return False, float("inf"), 0.0
    if not ref.numel():
        return True, 0.0, 0.0
    if not ref.is_floating_point():
        return bool(torch.equal(ref, got)), float((ref != got).sum()), 0.0
    d = float((ref - got).abs().max())
    m = float(ref.abs().max())
    return Verification(d, 0.0, m, 0, 0, 0, 0).exact, d, m


class _RuleFailures(logging.Handler):
    """Collects the analysis' warnings that a rule failed (the op was then treated as opaque)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "failed" in text:
            self.messages.append(" ".join(text.split())[:400])

    def __enter__(self):
        self._logger = logging.getLogger("otograph.analysis")
        self._level = self._logger.level
        self._logger.addHandler(self)
        if self._logger.getEffectiveLevel() > logging.WARNING:
            self._logger.setLevel(logging.WARNING)
        return self

    def __exit__(self, *exc) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)


# ---- the checks -------------------------------------------------------------------------------------
def check_model(build: Callable[[], torch.nn.Module], inputs: Callable[[int], Any], *, frontend: str = "fx",
                seed: int = 0, fraction: float = 0.3, traps: Sequence[tuple] = (), dtype_after_trace: bool = False,
                train_mode: bool = False) -> Outcome:
    """Run every check on ``build()`` through ``frontend``; the outcome lists the failures.

    ``traps``: ``(param, axis, positions or None, why)``: every group with a member on that axis of
    that parameter (at those positions) must be unprunable. ``dtype_after_trace``: the space is traced
    on the float32 model and used on its float64 copy. ``train_mode``: the model is handed to the
    analysis in train mode (the checks run in eval mode).
    """
    t0 = time.perf_counter()
    res = Outcome(frontend)
    try:
        _check(res, build, inputs, frontend, seed, fraction, traps, dtype_after_trace, train_mode)
    finally:
        res.seconds = time.perf_counter() - t0
    return res


def _check(res: Outcome, build, inputs, frontend, seed, fraction, traps, dtype_after_trace, train_mode) -> None:
    model = build()
    model.train(train_mode)
    example, fresh = inputs(0), inputs(1)
    subject = model if dtype_after_trace else copy.deepcopy(model).double()
    sub_example = example if dtype_after_trace else to_double(example)
    before = snapshot(subject)
    space = None
    with _RuleFailures() as rule_failures:
        try:
            space = search_space(subject, sub_example, frontend=frontend)
        except TraceError as e:
            if any(r in str(e) for r in REFUSALS):
                res.refused = _where(e)
            else:
                res.fail("trace", _where(e))
        except Exception as e:  # noqa: BLE001 - any other error is an analysis crash
            res.fail("analysis", _where(e))
    for message in dict.fromkeys(rule_failures.messages):
        res.fail("analysis", message)
    found = changes(before, snapshot(subject))
    if found:
        res.fail("untouched", "; ".join(found[:6]) + (f"; … {len(found) - 6} more" if len(found) > 6 else ""))
    try:
        copy.deepcopy(subject)
    except Exception as e:  # noqa: BLE001
        res.fail("untouched", f"copy.deepcopy(model) fails after the analysis: {_where(e)}")
    if space is None:
        return
    res.kinds = frozenset(k for _, k in space.graph.nodes(data="kind") if k)
    res.opaque, res.groups, res.prunable = tuple(space.opaque), len(space.groups), len(space.prunable_groups)
    _check_traps(res, space, traps)

    ref = copy.deepcopy(model).double().eval()
    _decorrelate(ref, seed)
    units = random_units(space, fraction, torch.Generator().manual_seed(seed))
    res.removed = sum(len(u) for u in units.values())
    removed = ", ".join(f"{gid}: {len(u)}/{space.group(gid).num_units}" for gid, u in units.items())
    try:
        space.zero_(ref, units)
        compact = compress(ref, space, units)
    except Exception as e:  # noqa: BLE001 - a crash on an accepted model is a failure (RewriteError included)
        if any(r in str(e) for r in REFUSALS):
            res.refused = _where(e)
        else:
            res.fail("compress", f"{_where(e)} (removing {removed})")
        return
    keep = make_plan(space, units).params
    fresh = to_double(fresh)

    # shrunk in place later, so copied before any run: the buffers as compress saw them (removing
    # nothing in place is trivially exact: no copy then)
    shrunk = copy.deepcopy(ref) if res.removed else None
    ref_buffers = {n: b.detach().clone() for n, b in ref.named_buffers()}
    try:
        ys, zs = _run(ref, fresh), _run(compact, fresh)
    except Exception as e:  # noqa: BLE001
        res.fail("exact", f"running the models failed: {_where(e)} (removing {removed})")
        return
    if len(ys) != len(zs) or any(y.shape != z.shape for y, z in zip(ys, zs, strict=False)):
        res.fail("exact", f"outputs differ in structure: {[tuple(y.shape) for y in ys]} vs "
                          f"{[tuple(z.shape) for z in zs]} (removing {removed})")
    else:
        worst = max((_close(y, z) for y, z in zip(ys, zs, strict=True)), key=lambda r: r[1] - 1e-9 * max(1, r[2]),
                    default=(True, 0.0, 0.0))
        if not all(_close(y, z)[0] for y, z in zip(ys, zs, strict=True)):
            res.fail("exact", f"max|Δ| = {worst[1]:.3g} with max|y| = {worst[2]:.3g} (removing {removed})")
    after, expected = count_params(compact), expected_params(ref, space, units)
    if after != expected:
        res.fail("params", f"the compact model has {after:,} parameters, {expected:,} expected (removing {removed})")
    _check_buffers(res, ref, compact, ref_buffers, keep)
    _check_grads(res, ref, compact, fresh, keep, seed, removed)
    if shrunk is not None:
        _check_in_place(res, shrunk, space, units, fresh, ys, expected, removed)


def _check_in_place(res: Outcome, model, space, units, fresh, ys: list, expected: int, removed: str) -> None:
    before = snapshot(model)
    try:
        compress(model, space, units, inplace=True)
    except ShrinkError as e:  # a refusal, documented: fine if nothing changed
        res.in_place = "refused: " + str(e).strip().splitlines()[0][:90]
        found = changes(before, snapshot(model))
        if found:
            res.fail("inplace", f"refused ({_where(e)}) but changed the model: " + "; ".join(found[:4])
                     + f" (removing {removed})")
        return
    except Exception as e:  # noqa: BLE001 - anything but a refusal is a crash
        res.fail("inplace", f"{_where(e)} (removing {removed})")
        return
    res.in_place = "shrunk"
    try:
        zs = _run(model, fresh)
    except Exception as e:  # noqa: BLE001
        res.fail("inplace", f"the model shrunk in place fails on fresh inputs: {_where(e)} (removing {removed})")
        return
    if len(ys) != len(zs) or not all(y.shape == z.shape and _close(y, z)[0] for y, z in zip(ys, zs, strict=False)):
        res.fail("inplace", f"the model shrunk in place computes something else (removing {removed})")
    elif count_params(model) != expected:
        res.fail("inplace", f"the model shrunk in place has {count_params(model):,} parameters, {expected:,} "
                            f"expected (removing {removed})")


def _check_traps(res: Outcome, space, traps) -> None:
    """Trapped tensors must lie in unprunable groups. A group of one unit counts as unprunable: its
    unit is never removed (that would empty the tensor; ``check_units`` refuses it), and with one
    channel a channel-mixing op such as centring can be exact (``x - x.mean(1)`` is then zero)."""
    for param, axis, positions, why in traps:
        for g in space.groups:
            hit = [m for m in g.members if m.param == param and m.axis == axis]
            if positions is not None:
                hit = [m for m in hit if set(m.positions.tolist()) & set(positions)]
            if hit and g.prunable and g.num_units > 1:
                where = "" if positions is None else f" positions {list(positions)}"
                res.fail("trap", f"group {g.id!r} holds {param} axis {axis}{where}, read after the non-zero-invariant "
                                 f"op {why!r}, yet is prunable")


def _check_buffers(res: Outcome, ref, compact, ref_before: dict, keep: dict) -> None:
    ours, aliases = dict(ref.named_buffers()), _aliases(ref)
    matched = {}
    for name, b in compact.named_buffers():
        mine = _counterpart(name, ours)
        if mine is not None:
            matched[mine] = (name, b)
    for mine, b in ours.items():
        if mine not in matched:
            if not torch.equal(ref_before[mine], b):
                res.fail("buffers", f"{mine} is updated in forward by the model but missing from the compact model")
            continue
        name, theirs = matched[mine]
        ok, d, _ = _close(_kept(b.detach(), _names(mine, name, aliases), keep), theirs.detach())
        if not ok:
            res.fail("buffers", f"{mine} after one call: compact differs from the zeroed model's "
                                f"({'shape ' + str(tuple(theirs.shape)) if d == float('inf') else f'max|Δ| = {d:.3g}'})")


def _check_grads(res: Outcome, ref, compact, fresh, keep: dict, seed: int, removed: str) -> None:
    try:
        gi_ref, gp_ref, live_ref = _grads(ref, fresh, seed)
        gi, gp, live = _grads(compact, fresh, seed)
    except Exception as e:  # noqa: BLE001
        res.fail("grad", f"backward failed: {_where(e)}")
        return
    bad, aliases = [], _aliases(ref)
    if live_ref != live:
        bad.append(f"the loss {'has' if live_ref else 'has no'} gradient through the model but "
                   f"{'has' if live else 'has no'} gradient through the compact model")
    for i, (a, b) in enumerate(zip(gi_ref, gi, strict=False)):
        ok, d, m = _close(a, b)
        if not ok:
            bad.append(f"input {i}: max|Δ| = {d:.3g} (max|g| = {m:.3g})")
    for name, b in gp.items():
        mine = _counterpart(name, gp_ref)
        if mine is None:
            bad.append(f"compact parameter {name} is not a parameter of the model")
            continue
        if (gp_ref[mine] is None) != (b is None):
            bad.append(f"{name} requires_grad is {b is not None} in the compact model, {gp_ref[mine] is not None} "
                       f"in the model")
            continue
        if b is None:
            continue
        ok, d, m = _close(_kept(gp_ref[mine], _names(mine, name, aliases), keep), b)
        if not ok:
            bad.append(f"{name}: " + ("shape" if d == float("inf") else f"max|Δ| = {d:.3g} (max|g| = {m:.3g})"))
    if bad:
        res.fail("grad", "; ".join(bad[:4]) + (f"; … {len(bad) - 4} more" if len(bad) > 4 else "") +
                 f" (removing {removed or 'nothing'})")
