"""The usual training-loop features with HESSO: autocast, GradScaler, accumulation, clipping, set_to_none, schedulers.

(Frozen parameters, ``requires_grad=False``, are covered by ``test_excluded.py``.)
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import otograph
from hesso import HESSO
from otograph.testing.spaces import CNN, MLP, mlp_space

PRUNE = dict(target_group_sparsity=0.5, start_pruning_step=3, pruning_steps=8, pruning_periods=2)


def image_batch(k: int, n: int = 8, dtype=torch.float32):
    g = torch.Generator().manual_seed(500 + k)
    return torch.randn(n, 1, 8, 8, generator=g, dtype=dtype), torch.randint(0, 4, (n,), generator=g)


def mlp_batch(k: int, n: int = 12, dtype=torch.float64):
    g = torch.Generator().manual_seed(700 + k)
    return torch.randn(n, 6, generator=g, dtype=dtype), torch.randint(0, 3, (n,), generator=g)


def assert_compresses_exactly(model: nn.Module, opt: HESSO, example: torch.Tensor) -> None:
    """Pruned units are exactly zero, and the float64 copy compresses exactly."""
    big = copy.deepcopy(model).double()
    space = otograph.search_space(big, example.double())
    assert space.zero_units(big) == opt.pruned_units and opt.metrics()["units_pruned"] > 0
    v = otograph.verify(big, otograph.compress(big, space), example.double())
    assert v.exact and v.params_after < v.params_before, v


@pytest.mark.parametrize("params_dtype", [torch.float32, torch.bfloat16])
def test_autocast_bfloat16(params_dtype):
    """bf16 autocast over float32 parameters, and bf16 parameters themselves: units still reach exactly zero."""
    torch.manual_seed(0)
    model = CNN().to(params_dtype)
    opt = HESSO(model, otograph.search_space(model, torch.zeros(2, 1, 8, 8, dtype=params_dtype)), variant="adamw",
                lr=1e-2, weight_decay=0.01, **PRUNE)
    for k in range(14):
        x, y = image_batch(k, dtype=params_dtype)
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
            assert out.dtype == torch.bfloat16
            loss = nn.functional.cross_entropy(out.float(), y)
        loss.backward()
        assert model.conv1.weight.grad.dtype == params_dtype
        opt.step()
    for p in opt.pruned_units:  # the optimizer state of pruned units is zero too
        st = opt.state[dict(model.named_parameters())[f"{p}.weight"]]
        rows = torch.tensor(opt.pruned_units[p])
        assert st["exp_avg"][rows].eq(0).all() and st["exp_avg_sq"][rows].eq(0).all()
    assert_compresses_exactly(model.float(), opt, torch.zeros(2, 1, 8, 8))


def test_grad_scaler_float16_skipped_steps_do_not_advance_the_schedule():
    """``scaler.step(opt)`` skips steps with inf gradients: HESSO's schedule counts only the steps taken."""
    def run(bad: set[int]):
        torch.manual_seed(1)
        model = CNN()
        opt = HESSO(model, otograph.search_space(model, torch.zeros(2, 1, 8, 8)), variant="sgd", lr=0.05,
                    momentum=0.9, **PRUNE)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
        for k in range(14 + len(bad)):
            x, y = image_batch(k - sum(b < k for b in bad) if k not in bad else 99)
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.float16):
                loss = nn.functional.cross_entropy(model(x).float(), y)
            scaler.scale(loss).backward()
            if k in bad:
                model.conv2.weight.grad[0, 0, 0, 0] = float("inf")
            scaler.unscale_(opt)
            opt.mask_pruned_grads()
            scaler.step(opt)
            scaler.update(2.0 ** 10)  # keep one scale, so both runs see the same arithmetic
        return model, opt

    clean_model, clean = run(set())
    model, opt = run({4, 5, 9})  # skipped inside the first period and at a period's first step
    assert opt.metrics()["step"] == clean.metrics()["step"] == 14
    assert opt.pruned_units == clean.pruned_units
    for (n, a), b in zip(clean_model.named_parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b), n  # (BatchNorm's running statistics did see the skipped batches)
    assert_compresses_exactly(model, opt, torch.zeros(2, 1, 8, 8))


def test_gradient_accumulation_counts_optimizer_steps():
    """Three micro-batches per step equal one step on the whole batch; the schedule counts steps."""
    def run(micro: int):
        torch.manual_seed(2)
        model = MLP().double()
        opt = HESSO(model, mlp_space(model), variant="adamw", lr=1e-2, weight_decay=0.01, **PRUNE)
        for k in range(14):
            x, y = mlp_batch(k)
            opt.zero_grad()
            for xs, ys in zip(x.chunk(micro), y.chunk(micro), strict=True):
                (nn.functional.cross_entropy(model(xs), ys) / micro).backward()
            opt.step()
            if k == PRUNE["start_pruning_step"] + 2:  # inside the first period: decaying, nothing committed
                assert opt.metrics()["units_redundant"] == 4 and opt.metrics()["units_pruned"] == 0
        return model, opt

    whole, ref = run(1)
    model, opt = run(3)
    assert opt.metrics()["step"] == 14 and opt.metrics()["units_pruned"] == 8
    assert opt.pruned_units == ref.pruned_units
    for (n, a), b in zip(whole.named_parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12, msg=n)


class TanhMLP(MLP):
    """tanh'(0) = 1: a pruned unit's rows keep a nonzero gradient (through ReLU they would not)."""

    def forward(self, x):
        return self.fc3(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))


def test_clip_grad_norm_before_step():
    """Clipping works before ``step``; after ``mask_pruned_grads()`` its norm leaves pruned units out."""
    torch.manual_seed(3)
    model = TanhMLP().double()
    twin = copy.deepcopy(model)
    opt = HESSO(model, otograph.search_space(model, torch.zeros(2, 6, dtype=torch.float64)), variant="adamw",
                lr=1e-2, **PRUNE)
    ref = torch.optim.AdamW(twin.parameters(), lr=1e-2, weight_decay=0.0)
    masked_norms = []
    for k in range(14):
        x, y = mlp_batch(k)
        for m, o in ((model, opt), (twin, ref)):
            o.zero_grad()
            (10 * nn.functional.cross_entropy(m(x), y)).backward()
        if k < PRUNE["start_pruning_step"]:  # before pruning: clipping makes HESSO exactly torch's AdamW
            for m, o in ((model, opt), (twin, ref)):
                nn.utils.clip_grad_norm_(m.parameters(), 0.5)
                o.step()
            for a, b in zip(model.parameters(), twin.parameters(), strict=True):
                assert torch.equal(a, b)
            continue
        full = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
        opt.mask_pruned_grads()
        norm = nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        if opt.metrics()["units_pruned"]:
            rows = {f"{g}.weight": torch.tensor(u) for g, u in opt.pruned_units.items()}
            for name, r in rows.items():  # the norm was taken over masked gradients
                assert dict(model.named_parameters())[name].grad[r].eq(0).all()
            masked_norms.append((float(norm), float(full)))
        opt.step()
    assert masked_norms and all(n < f for n, f in masked_norms)
    assert_compresses_exactly(model, opt, torch.zeros(2, 6))


class Branchy(nn.Module):
    """An MLP whose middle layer is used on even steps only (no gradient on odd ones)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 3)
        self.use_middle = True

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        if self.use_middle:
            h = torch.relu(self.fc2(h))
        return self.fc3(h)


def test_zero_grad_set_to_none_with_unused_parameters():
    """Parameters without a gradient at a step (None after set_to_none) are measured as d = 0 and held."""
    torch.manual_seed(4)
    model = Branchy().double()
    space = otograph.search_space(model, torch.zeros(2, 6, dtype=torch.float64))
    opt = HESSO(model, space, variant="adam", lr=1e-2, **PRUNE)
    for k in range(14):
        model.use_middle = k % 2 == 0
        x, y = mlp_batch(k)
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        assert (model.fc2.weight.grad is None) == (k % 2 == 1)
        opt.step()  # both periods start at odd steps (3 and 7), where fc2 has no gradient
    assert opt.metrics()["units_pruned"] == 8
    assert space.zero_units(model) == opt.pruned_units
    model.use_middle = True
    assert_compresses_exactly(model, opt, torch.zeros(2, 6))


def test_lr_schedulers():
    """OneCycleLR (which also cycles Adam's beta1) matches torch bit for bit; with lr = 0 only HESSO's decay moves."""
    torch.manual_seed(5)
    a = MLP()
    b = copy.deepcopy(a)
    ref = torch.optim.AdamW(a.parameters(), lr=1e-2, weight_decay=0.01)
    opt = HESSO(b, mlp_space(b), variant="adamw", lr=1e-2, weight_decay=0.01)
    sa = torch.optim.lr_scheduler.OneCycleLR(ref, max_lr=0.05, total_steps=12)
    sb = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=12)
    for k in range(12):
        x, y = mlp_batch(k, dtype=torch.float32)
        for m, o, s in ((a, ref, sa), (b, opt, sb)):
            o.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            o.step()
            s.step()
        assert opt.param_groups[0]["betas"] == ref.param_groups[0]["betas"]
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)

    # a schedule that stops learning during pruning: HESSO's decay alone changes the parameters
    torch.manual_seed(6)
    model = MLP().double()
    opt = HESSO(model, mlp_space(model), variant="sgd", lr=0.1, momentum=0.9, **PRUNE)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 if k < PRUNE["start_pruning_step"] else 0.0)
    for k in range(14):
        x, y = mlp_batch(k)
        if k == PRUNE["start_pruning_step"]:
            frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        sched.step()
    pruned = opt.pruned_units
    assert sum(map(len, pruned.values())) == 8
    for n, p in model.named_parameters():
        gid = n.split(".")[0]
        gone = torch.zeros(p.shape[0], dtype=torch.bool)
        if gid in pruned and n.startswith(gid):
            gone[pruned[gid]] = True
        assert p[gone].eq(0).all() and torch.equal(p[~gone], frozen[n][~gone]), n
