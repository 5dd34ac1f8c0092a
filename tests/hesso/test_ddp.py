"""Two gloo processes under DDP prune identically, and like one process on the global batch."""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

import otograph
from hesso import HESSO
from otograph.testing.spaces import MLP
from tests.hesso._dist import init, run_ranks, shutdown

STEPS, GLOBAL_BATCH = 16, 16


def make():
    torch.manual_seed(0)
    model = MLP(h1=8, h2=8).double()
    return model, otograph.search_space(model, torch.zeros(2, 6, dtype=torch.float64))


def optimizer(model, space):
    return HESSO(model, space, variant="adam", lr=1e-2, target_group_sparsity=0.5, start_pruning_step=2,
                 pruning_steps=8, pruning_periods=2)


def batch(k):
    g = torch.Generator().manual_seed(k)
    return torch.randn(GLOBAL_BATCH, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (GLOBAL_BATCH,), generator=g)


def _worker(rank: int, world: int, port: int, path: str) -> None:
    torch.set_num_threads(1)
    init(rank, world, port)
    try:
        model, space = make()
        ddp = DDP(model)
        opt = optimizer(ddp, space)
        half = GLOBAL_BATCH // world
        for k in range(STEPS):
            x, y = batch(k)
            x, y = x[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half]
            opt.zero_grad()
            nn.functional.cross_entropy(ddp(x), y).backward()
            opt.step()
        out = {"params": {n: p.detach() for n, p in model.named_parameters()},
               "status": opt._status, "pruned": opt.pruned_units}
        if rank == 0:  # the compact model, built on rank 0 only
            compact = otograph.compress(model, space)
            v = otograph.verify(model, compact, batch(999)[0])
            out.update(exact=v.exact, params_after=v.params_after, params_before=v.params_before)
        torch.save(out, os.path.join(path, f"rank{rank}.pt"))
    finally:
        shutdown()


def test_ddp_two_ranks_match_each_other_and_single_process(tmp_path):
    run_ranks(_worker, 2, (str(tmp_path),), timeout_s=120)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert torch.equal(r0["status"], r1["status"]) and r0["pruned"] == r1["pruned"]
    assert sum(map(len, r0["pruned"].values())) == 8
    for n in r0["params"]:
        assert torch.equal(r0["params"][n], r1["params"][n]), n

    assert r0["exact"] and r0["params_after"] < r0["params_before"]

    model, space = make()
    opt = optimizer(model, space)
    for k in range(STEPS):
        x, y = batch(k)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert opt.pruned_units == r0["pruned"]
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), r0["params"][n], atol=1e-12, rtol=1e-10)
    assert space.zero_units(model) == r0["pruned"]
