"""HESSO: train and prune in one run, as a ``torch.optim.Optimizer``.

The base step (SGD, Adam or AdamW) is *the* ``torch.optim`` optimizer, held inside and sharing
``param_groups`` and ``state`` with this object, so with pruning off HESSO is bit-identical to
it and learning-rate schedulers, per-group weight decay and closures work unchanged. Around it:

* at the first step of each pruning period, the saliency of every prunable unit is measured from
  the base step just taken (:mod:`hesso.saliency`) and the lowest units up to the period's budget
  are marked redundant (:mod:`hesso.budget`), or, with ``cric=``, tested first (:mod:`hesso.cric`);
* after each base step of the period, every producer slice of a redundant unit is multiplied by
  ``(D-t-1)/(D-t)`` (one gather and one ``_foreach_mul_``), reaching exactly zero at ``t = D-1``;
* pruned units are held at exactly zero: their gradients are masked before the base step and
  their optimizer state was zeroed when they were committed, so every base variant leaves them
  at zero (this masks ``p.grad`` in place for those slices). Members the search space marks
  ``grad_free`` (their gradient is exactly zero once the whole unit is zero, as for conv rows
  feeding a zeroed norm) are not masked: that pass is the only per-step cost of holding.

Sharded parameters (FSDP2's ``DTensor``) are read and written through their local shards; the
per-unit sums of a step that measures saliency are added over the ranks with one ``all_reduce``
of a ``(3, U+1)`` float64 buffer (:mod:`hesso.distributed`), so every rank chooses the same units.
No other step communicates.

HESSO writes only the optimizer's own parameters (see :class:`HESSO`): a prunable group with a
producer it was not given (frozen, left out of ``params=``, or a buffer) is excluded from pruning,
reported by :meth:`HESSO.metrics` and :meth:`HESSO.summary`, and logged once at construction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from hesso import saliency
from hesso.budget import Budget, ExactReduction, ranked_chunks, select, select_exact
from hesso.cric import CRIC, CricRun, restore_snapshot, take_snapshot
from hesso.distributed import Reducer
from hesso.schedule import Schedule, decay_factor
from hesso.space import SpaceLike
from hesso.target import Target
from hesso.uniform import default_kind, equalize, kinds_of
from hesso.units import UnitLayout, UnitScaler

__all__ = ["HESSO", "ACTIVE", "REDUNDANT", "PRUNED"]

log = logging.getLogger(__name__)

ACTIVE, REDUNDANT, PRUNED = 0, 1, 2
_BASES = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def _grad(t: torch.Tensor) -> torch.Tensor | None:
    return t.grad


class HESSO(torch.optim.Optimizer):
    """Hybrid Efficient Structured Sparse Optimizer over an otograph search space.

    **What it touches.** Only the parameters in ``params`` (by default those of ``model`` with
    ``requires_grad=True``, listed once at construction): their values (base step; decay and hold
    of pruned units), their gradients (pruned units' slices zeroed in place before the base step)
    and their optimizer state (zeroed for pruned units; saved and restored by CRIC). It never writes
    buffers (running statistics included), consumer slices (a pruned unit's input channels in the
    next layer keep their values; ``otograph.compress`` removes them), or parameters outside
    ``params``. A parameter frozen at construction is never changed even if passed in ``params``:
    the base step skips it (no gradient), its groups are excluded, and CRIC only writes back its
    own saved value.

    **Excluded groups.** A prunable group is pruned only if HESSO may write all its producer
    tensors: each must be a parameter in ``params`` with ``requires_grad=True`` at construction.
    Any other group (a producer frozen, left out of ``params``, or a buffer) is excluded once, at
    construction; later ``requires_grad_`` or ``add_param_group`` calls do not change that. Its units
    are never scored, decayed, held or counted: ``units_total`` and a ``units`` budget count the
    included units only, while ``flops``/``params`` budgets stay fractions of the whole model, so
    excluded costs may make them unreachable (a warning says so). ``metrics()["excluded_groups"]``
    maps each excluded group to the reason; ``summary()`` lists them; one warning is logged.

    Args:
        model: the model the space was built for (a DDP wrapper is unwrapped; under FSDP2 the sharded
            model, whose parameters HESSO reads and writes through their local shards).
        space: a search space (:class:`~hesso.space.SpaceLike`, e.g. ``otograph.search_space(...)``);
            only its prunable groups are pruned.
        params: parameters or parameter-group dicts (default: the model's parameters that require grad).
        variant: base optimizer, ``"sgd"``, ``"adam"`` or ``"adamw"``.
        lr, momentum, betas, eps, weight_decay: the base optimizer's hyper-parameters.
        target: what to remove, a :class:`~hesso.target.Target` (none means no pruning).
        target_group_sparsity / target_flops_reduction / target_param_reduction: shorthands for
            ``Target("units" | "flops" | "params", fraction)``; at most one, and not with ``target``.
        start_pruning_step: the step (0-based) at which the first period begins.
        pruning_steps: steps over which the periods run (required with a budget).
        pruning_periods: number of periods.
        group_divisible: keep a multiple of this many units in every group.
        importance: weights of the saliency criteria (default 0.2 each), see :mod:`hesso.saliency`.
        cric: ``True`` or a :class:`~hesso.cric.CRIC` to test each period's choice first.
        uniform: ``True`` (or a function of a group giving its kind) to remove the same number of units
            from every group of a kind (:mod:`hesso.uniform`: every layer's attention, every layer's MLP),
            so the pruned model has one width per kind, as a standard Hugging Face config describes it.
        base_options: passed to the ``torch.optim`` class (``nesterov``, ``amsgrad``, ``foreach``…).

    Example:
        >>> import otograph
        >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
        >>> space = otograph.search_space(model, torch.randn(2, 8))
        >>> _ = model[0].requires_grad_(False)  # a frozen layer: its group is not pruned
        >>> opt = HESSO(model, space, variant="sgd", lr=0.1, momentum=0.9,
        ...             target_group_sparsity=0.5, pruning_steps=1000, pruning_periods=5)
        >>> opt.metrics()["excluded_groups"], opt.metrics()["units_total"]
        ({'0': 'producer 0.weight is frozen (requires_grad=False)'}, 16)
    """

    def __init__(self, model: nn.Module, space: SpaceLike, *, params: Iterable | None = None, variant: str = "sgd",
                 lr: float = 1e-3, momentum: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, target: Target | None = None,
                 target_group_sparsity: float | None = None, target_flops_reduction: float | None = None,
                 target_param_reduction: float | None = None, start_pruning_step: int = 0,
                 pruning_steps: int | None = None, pruning_periods: int = 1, group_divisible: int = 1,
                 importance: Mapping[str, float] | None = None, cric: bool | CRIC | None = None,
                 uniform: bool | Callable[[Any], Any] = False, **base_options: Any):
        if variant not in _BASES:
            raise ValueError(f"variant must be one of {sorted(_BASES)}, got {variant!r}")
        if params is None:
            params = [p for p in model.parameters() if p.requires_grad]
        hyper: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay, **base_options}
        if variant == "sgd":
            hyper["momentum"] = momentum
        else:
            hyper.update(betas=betas, eps=eps)
        self._base = _BASES[variant](params, **hyper)
        super().__init__(self._base.param_groups, self._base.defaults)
        self._link()
        self.variant = variant
        self.space = space
        self.weights = saliency.check_weights(importance)
        self.layout = UnitLayout(model, space, group_divisible, owned=self._params())
        U = self.layout.num_units
        self._kinds = (kinds_of(self.layout.groups, default_kind if uniform is True else uniform)
                       if uniform else None)
        if self.layout.excluded:
            ex = self.layout.excluded
            shown = "; ".join(f"{gid}: {why}" for gid, why in list(ex.items())[:5])
            log.warning("HESSO excludes %d prunable group(s) (%d units) whose producers it may not write, "
                        "they will not be pruned: %s%s", len(ex), self.layout.excluded_units, shown,
                        f"; … and {len(ex) - 5} more (see metrics()['excluded_groups'])" if len(ex) > 5 else "")

        short = Target.from_options(units=target_group_sparsity, flops=target_flops_reduction,
                                    params=target_param_reduction)
        if target is not None and short is not None:
            raise ValueError("give the pruning target once: target= or one target_* argument, not both")
        self.target: Target | None = target or short
        self.schedule: Schedule | None = None
        self.budget: Budget | None = None
        if self.target is not None:
            if pruning_steps is None:
                raise ValueError("pruning_steps is required when a pruning target is given")
            self.schedule = Schedule(start_pruning_step, pruning_steps, pruning_periods)
            kind = self.target.kind
            cost = {"units": torch.ones(U, dtype=torch.float64), "flops": self.layout.unit_flops,
                    "params": self.layout.unit_params}[kind]
            total = {"units": U, "flops": space.total_flops, "params": space.total_params}[kind]
            self.budget = Budget(kind, self.target.fraction, cost, total, pruning_periods)
            self._exact = None
            if kind != "units" and getattr(space, "costs", None) is not None:
                self._exact = ExactReduction(space.costs, kind, [g.id for g in self.layout.groups],
                                             self.layout.offsets)
                self._check_feasible(group_divisible)
            elif self.budget.target > float(cost.sum()):
                log.warning("the %s target %s exceeds what all included prunable units carry (%s); "
                            "HESSO will remove what it can", kind, f"{self.budget.target:,.0f}",
                            f"{float(cost.sum()):,.0f}")
        if cric is True:
            cric = CRIC()
        self.cric: CRIC | None = cric or None
        self._cric_steps = (self.cric.steps_per_cycle(self.schedule.duration)
                            if self.cric is not None and self.schedule is not None else 0)

        self._probe = saliency.Probe(self.layout.slots, U)
        self._reducer = Reducer.for_tensors(s.tensor for s in self.layout.slots)
        self._k = 0
        self._status = torch.zeros(U, dtype=torch.long)
        self._scores = torch.zeros(U, dtype=torch.float64)
        self._decay_from = 0
        self._run: CricRun | None = None
        self._rebuild()
        log.info("HESSO(%s): %s, %s, %s", variant, self.layout, self.schedule, self.budget)

    # ------------------------------------------------------------------ plumbing

    def _link(self) -> None:
        """Share ``param_groups``, ``state`` and ``defaults`` with the base optimizer."""
        self.param_groups = self._base.param_groups
        self.state = self._base.state
        self.defaults = self._base.defaults

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def _rebuild(self) -> None:
        """Scalers for the hold mask (pruned units) and the decay (redundant units) from ``_status``."""
        U = self.layout.num_units
        pruned = self._status == PRUNED
        self._hold = None
        if pruned.any():
            self._hold_factor = torch.ones(U + 1, dtype=torch.float64)
            self._hold_factor[:U][pruned] = 0
            held = self.layout.slots_touching(pruned, skip_grad_free=True)
            self._hold = UnitScaler(held).load(self._hold_factor) if held else None
        redundant = self._status == REDUNDANT
        self._decay = None
        if redundant.any():
            self._redundant = torch.cat([redundant, torch.zeros(1, dtype=torch.bool)]).double()
            self._decay = UnitScaler(self.layout.slots_touching(redundant))
        if self._run is not None:
            self._cric_mask = torch.cat([self._run.candidates, torch.zeros(1, dtype=torch.bool)]).double()
            self._cric_scaler = UnitScaler(self.layout.slots_touching(self._run.candidates))

    # ------------------------------------------------------------------ the step

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        """One base step plus the HESSO update; ``closure`` re-evaluates the loss as in torch."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        phase = self.schedule.phase(self._k) if self.schedule is not None else None
        self.mask_pruned_grads()
        measure = phase is not None and (phase[1] == 0 or self._run is not None)
        snapshot = take_snapshot(self._params(), self.state) if (
            phase is not None and phase[1] == 0 and self.cric is not None) else None
        self._base.step()
        if phase is not None:
            period, t = phase
            scores = self._measure_scores() if measure else None
            if t == 0:
                self._begin_period(period, scores, snapshot)
            elif self._run is not None:
                self._run.record(scores)
            self._after_base_step(period, t)
        self._k += 1
        return loss

    @torch.no_grad()
    def mask_pruned_grads(self) -> None:
        """Zero the gradients of pruned units now (``step`` does it anyway; idempotent).

        Call it before ``clip_grad_norm_`` to keep the pruned units' gradients, which the step
        discards, out of the clipping norm.
        """
        if self._hold is not None:
            self._hold.mul_(_grad)

    @property
    def collectives(self) -> int:
        """Collectives issued so far (one ``all_reduce`` per saliency step when parameters are sharded)."""
        return 0 if self._reducer is None else self._reducer.calls

    def _measure_scores(self) -> torch.Tensor:
        """Saliency of the step just taken, summed over the ranks, criteria combined (float64, ``U``)."""
        group_of = {id(p): g for g in self.param_groups for p in g["params"]}
        acc = self._probe.measure(self.variant, group_of, self.state)
        if self._reducer is not None:
            acc = self._reducer.all_reduce(acc)
        xx, dd, xd = acc.cpu()[:, :self.layout.num_units]
        return saliency.combine(saliency.criteria(xx, dd, xd, self.layout.unit_size), self.weights)

    def _begin_period(self, period: int, scores: torch.Tensor, snapshot: list[dict[str, Any]] | None) -> None:
        self._scores = scores
        chosen = self._choose(scores, period)
        self._decay_from = 0
        if self.cric is not None and chosen.numel():
            candidates = torch.zeros(self.layout.num_units, dtype=torch.bool)
            candidates[chosen] = True
            self._run = CricRun(candidates, snapshot)
            self._run.record(scores)
            log.debug("period %d: CRIC starts with %d candidates", period, chosen.numel())
        else:
            self._status[chosen] = REDUNDANT
            log.debug("period %d: %d units redundant", period, chosen.numel())
        self._rebuild()

    def _choose(self, scores: torch.Tensor, period: int) -> torch.Tensor:
        active = self._status == ACTIVE
        alive = active  # the units it may choose from: not those that save nothing toward the target
        if self.budget.kind != "units":  # (MoE experts save no FLOPs: every routed pick still runs)
            alive = active & (self.budget.unit_cost > 0).to(active.device)
        if self._exact is not None:  # the compact model's true cost, each weight counted once
            target = self.budget.period_target(period, 0.0)
            chosen = select_exact(scores, alive, self.layout.offsets, self.layout.divisors, ~active, self._exact,
                                  target, slack=0.005 * self._exact.total)

            def reached(mask: torch.Tensor) -> bool:
                return self._exact(mask) >= target
        else:
            removed = float(self.budget.unit_cost[self._status == PRUNED].sum())
            target = self.budget.period_target(period, removed)
            chosen = select(scores, alive, self.layout.offsets, self.layout.divisors, self.budget.unit_cost, target)
            cost = self.budget.unit_cost.cpu().double()

            def reached(mask: torch.Tensor) -> bool:
                return float(cost[mask & alive.cpu()].sum()) >= target
        if self._kinds is None:
            return chosen
        chosen = equalize(chosen, scores, alive, self.layout.offsets, self.layout.divisors, self._kinds,
                          reached=reached if target > 0 else None)
        mask = ~active.cpu()
        mask[chosen] = True
        if target > 0 and not reached(mask):
            log.warning("uniform widths: period %d removes every unit it evenly can and still misses its %s "
                        "target (%s); the metrics report the reduction reached", period, self.budget.kind,
                        f"{target:,.0f}")
        return chosen

    def _check_feasible(self, group_divisible: int) -> None:
        """A target no set of units reaches is refused now, with the most that can be removed."""
        U = self.layout.num_units
        ids, _ = ranked_chunks(torch.zeros(U), torch.ones(U, dtype=torch.bool), self.layout.offsets,
                               self.layout.divisors)
        mask = torch.zeros(U, dtype=torch.bool)
        mask[ids] = True
        most = self._exact(mask) / max(1.0, self._exact.total)
        if self.target.fraction > most:
            raise ValueError(
                f"a {self.target.fraction:.1%} {self.target.kind} reduction cannot be reached: removing every "
                f"unit HESSO may remove (keeping one{' chunk of ' + str(group_divisible) if group_divisible > 1 else ''} "
                f"per group) cuts {most:.1%}; ask for at most that")

    def _after_base_step(self, period: int, t: int) -> None:
        D = self.schedule.duration
        run = self._run
        if run is not None:
            f = decay_factor(run.step, self._cric_steps + 1)
            self._cric_scaler.load(1 - self._cric_mask * (1 - f)).mul_()
            run.step += 1
            run.steps_used += 1
            if run.step == self._cric_steps:
                bottom = self._choose(run.cycle_sum, period)
                done = run.end_cycle(bottom, self.cric.max_cycles)
                restore_snapshot(self._params(), self.state, run.snapshot)
                if done:
                    chosen = self._choose(run.total, period)
                    self._scores = run.total.clone()
                    self._status[chosen] = REDUNDANT
                    self._decay_from = t + 1
                    self._run = None
                    log.debug("period %d: CRIC done after %d cycles, %d units redundant",
                              period, run.cycle, chosen.numel())
                self._rebuild()
            return
        if self._decay is None:
            return
        f = decay_factor(t - self._decay_from, D - self._decay_from)
        self._decay.load(1 - self._redundant * (1 - f)).mul_()
        if t == D - 1:
            self._commit()

    def _commit(self) -> None:
        """Redundant units become pruned: zero their optimizer state, hold them from now on."""
        redundant = self._status == REDUNDANT
        zero = torch.ones(self.layout.num_units + 1, dtype=torch.float64)
        zero[:-1][redundant] = 0
        scaler = UnitScaler(self.layout.slots_touching(redundant)).load(zero)
        keys = {k for p in self._params() for k, v in self.state.get(p, {}).items()
                if torch.is_tensor(v) and v.shape == p.shape and v.dim() > 0}
        for key in sorted(keys):
            def of(p: torch.Tensor, key: str = key) -> torch.Tensor | None:
                v = self.state[p].get(key) if p in self.state else None
                return v if torch.is_tensor(v) and v.shape == p.shape else None
            scaler.mul_(of)
        self._status[redundant] = PRUNED
        self._rebuild()

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict plus a ``"hesso"`` entry with all of HESSO's state."""
        sd = self._base.state_dict()
        sd["hesso"] = self.pruning_state()
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        h = state_dict.pop("hesso", None)
        self._base.load_state_dict(state_dict)
        self._link()
        if h is None:
            log.warning("loading a state dict without HESSO state: the pruning schedule restarts unless "
                        "load_pruning_state() is called")
            return
        self.load_pruning_state(h)

    def pruning_state(self) -> dict[str, Any]:
        """HESSO's own state (step, unit status, scores, CRIC run): the ``"hesso"`` entry of :meth:`state_dict`.

        O(units) and the same on every rank, except a CRIC run's snapshot (the parameters and
        optimizer state of this rank). Save it next to a ``torch.distributed.checkpoint`` of the
        base state (``get_optimizer_state_dict`` keeps only ``state`` and ``param_groups``).
        """
        return {
            "step": self._k, "status": self._status.clone(), "scores": self._scores.clone(),
            "decay_from": self._decay_from, "num_units": self.layout.num_units,
            "excluded": sorted(self.layout.excluded),
            "cric": None if self._run is None else self._run.state(),
        }

    def load_pruning_state(self, h: dict[str, Any]) -> None:
        """Restore :meth:`pruning_state` (after the base state, as :meth:`load_state_dict` does)."""
        excluded = h.get("excluded")
        if excluded is not None and list(excluded) != sorted(self.layout.excluded):
            raise ValueError(f"state dict was saved with excluded groups {list(excluded)}, this optimizer "
                             f"excludes {sorted(self.layout.excluded)}: freeze and pass the same parameters")
        if int(h["num_units"]) != self.layout.num_units:
            raise ValueError(f"state dict is for {h['num_units']} units, this search space has "
                             f"{self.layout.num_units}")
        self._k = int(h["step"])
        self._status = h["status"].clone().long()
        self._scores = h["scores"].clone().double()
        self._decay_from = int(h["decay_from"])
        self._run = None if h["cric"] is None else CricRun.from_state(h["cric"])
        self._rebuild()

    # ------------------------------------------------------------------ reporting

    @property
    def pruned_units(self) -> dict[str, list[int]]:
        """``{group_id: [unit, …]}`` of the units committed to removal so far."""
        return self.layout.split((self._status == PRUNED).nonzero().flatten())

    def metrics(self) -> dict[str, Any]:
        """Progress: step, period, units and costs removed so far (committed units only).

        ``units_total`` counts the included units; ``excluded_groups`` maps each prunable group HESSO
        does not prune (it may not write one of its producers) to the reason, ``units_excluded``
        counts their units. ``target_kind`` and ``target_asked`` are the target as given,
        ``target_measured`` the reduction of that kind reached so far: ``flops_reduction`` or
        ``param_reduction``, the compact model's true saving when the space has a cost model (as
        ``otograph.search_space`` builds), or ``group_sparsity`` (all None without a target).
        """
        pruned = self._status == PRUNED
        U = max(1, self.layout.num_units)
        flops, params = self._removed_cost(pruned)
        phase = self.schedule.phase(self._k) if self.schedule is not None else None
        if self.schedule is None:
            stage = "off"
        elif phase is None:
            stage = "before" if self._k < self.schedule.start else "done"
        else:
            stage = "cric" if self._run is not None else "pruning"
        reduction = {"units": float(pruned.sum()) / U, "flops": flops / max(1, self.space.total_flops),
                     "params": params / max(1, self.space.total_params)}
        return {
            "step": self._k, "stage": stage, "period": None if phase is None else phase[0],
            "units_total": self.layout.num_units, "units_pruned": int(pruned.sum()),
            "units_redundant": int((self._status == REDUNDANT).sum()),
            "units_excluded": self.layout.excluded_units, "excluded_groups": dict(self.layout.excluded),
            "group_sparsity": reduction["units"],
            "flops_removed": flops, "flops_reduction": reduction["flops"],
            "params_removed": params, "param_reduction": reduction["params"],
            "target_kind": None if self.target is None else self.target.kind,
            "target_asked": None if self.target is None else self.target.fraction,
            "target_measured": None if self.target is None else reduction[self.target.kind],
        }

    def _removed_cost(self, pruned: torch.Tensor) -> tuple[float, float]:
        """FLOPs and parameters the pruned units take out of the compact model: exact when the
        search space has a cost model, else the sum of the units' own costs."""
        costs = getattr(self.space, "costs", None)
        if costs is None:
            return float(self.layout.unit_flops[pruned].sum()), float(self.layout.unit_params[pruned].sum())
        ids = [g.id for g in self.layout.groups]
        return tuple(ExactReduction(costs, k, ids, self.layout.offsets)(pruned) for k in ("flops", "params"))

    def summary(self) -> str:
        """A few readable lines on the schedule and what has been removed."""
        m = self.metrics()
        lines = [f"HESSO({self.variant}) step {m['step']}, stage {m['stage']}"
                 + (f", period {m['period'] + 1}/{self.schedule.periods}" if m["period"] is not None else "")]
        if self.budget is not None:
            lines.append(f"  budget: {self.budget}, schedule {self.schedule}")
            lines.append(f"  target: {m['target_asked']:.1%} {self.target.kind} reduction asked, "
                         f"{m['target_measured']:.1%} reached")
        if self.cric is not None:
            lines.append(f"  CRIC: up to {self.cric.max_cycles} cycles of {self._cric_steps} steps")
        lines.append(f"  units: {m['units_pruned']}/{m['units_total']} pruned ({m['group_sparsity']:.1%}), "
                     f"{m['units_redundant']} decaying")
        if m["excluded_groups"]:
            ex = list(m["excluded_groups"].items())
            lines.append(f"  excluded (not pruned, HESSO may not write them): {len(ex)} groups, "
                         f"{m['units_excluded']} units: "
                         + "; ".join(f"{gid} ({why})" for gid, why in ex[:5])
                         + (f"; … and {len(ex) - 5} more" if len(ex) > 5 else ""))
        lines.append(f"  FLOPs removed: {m['flops_removed']:,.0f} ({m['flops_reduction']:.1%}); "
                     f"params removed: {m['params_removed']:,.0f} ({m['param_reduction']:.1%})")
        per_group = self.pruned_units
        if per_group:
            worst = sorted(per_group.items(), key=lambda kv: -len(kv[1]))[:5]
            lines.append("  most pruned groups: " + ", ".join(
                f"{gid} {len(us)}/{self.layout.groups[[g.id for g in self.layout.groups].index(gid)].num_units}"
                for gid, us in worst))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"HESSO({self.variant}, {self.layout}, {self.budget})"
