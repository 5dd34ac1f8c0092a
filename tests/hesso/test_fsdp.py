"""HESSO under FSDP2 (``fully_shard``) on two gloo CPU ranks equals one process, and compresses exactly.

Two models: a tiny LLaMA (GQA heads whose rows straddle the shard boundary, gated-MLP neurons) with
AdamW, and a small embedding + conv + BatchNorm net with SGD and CRIC, whose embedding channels are
units along axis 1, so every one of them is split across the two ranks. Each rank trains on its half
of the global batch; the single-process reference averages the losses of the two halves (BatchNorm
statistics are per half, as on the ranks). Checks: every rank selects the same units as the
reference; HESSO's only collectives are one ``all_reduce`` per saliency step; the full weights,
gathered with ``get_model_state_dict``, equal the reference within float32 rounding; the compact
model is exact (float64).
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
from torch import nn

import otograph
from hesso import CRIC, HESSO
from tests.hesso._dist import init, run_ranks, shutdown

T = pytest.importorskip("transformers")
fsdp = pytest.importorskip("torch.distributed.fsdp")
WORLD = 2


class EmbedCNN(nn.Module):
    """Token embedding → two conv-BN-ReLU → mean → linear; the embedding's channels are a group."""

    def __init__(self, vocab=16, e=6, c1=10, c2=7, classes=4):
        super().__init__()
        self.emb = nn.Embedding(vocab, e)
        self.conv1, self.bn1 = nn.Conv1d(e, c1, 3, padding=1), nn.BatchNorm1d(c1)
        self.conv2, self.bn2 = nn.Conv1d(c1, c2, 3, padding=1), nn.BatchNorm1d(c2)
        self.fc = nn.Linear(c2, classes)

    def forward(self, ids):
        x = self.emb(ids).transpose(1, 2)
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean(-1))


def build(kind: str, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(0)
    if kind == "llama":
        cfg = T.LlamaConfig(vocab_size=64, hidden_size=48, intermediate_size=40, num_hidden_layers=2,
                            num_attention_heads=6, num_key_value_heads=3)
        return T.LlamaForCausalLM(cfg).to(dtype)
    return EmbedCNN().to(dtype)


def example(kind: str):
    if kind == "llama":
        return {"input_ids": torch.zeros(2, 8, dtype=torch.long), "use_cache": False}
    return torch.zeros(2, 9, dtype=torch.long)


def space_of(model: nn.Module, kind: str):
    return otograph.search_space(model, example(kind), frontend="export" if kind == "llama" else "fx")


SETUP = {  # steps, HESSO options
    "llama": (12, dict(variant="adamw", lr=1e-2, weight_decay=0.01, target_group_sparsity=0.5,
                       start_pruning_step=2, pruning_steps=8, pruning_periods=2)),
    "cnn": (16, dict(variant="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3, target_group_sparsity=0.5,
                     start_pruning_step=2, pruning_steps=12, pruning_periods=2,
                     cric=CRIC(max_cycles=2, cycle_steps=2))),
}


def half_loss(model: nn.Module, kind: str, k: int, half: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 + k)
    if kind == "llama":
        ids = torch.randint(0, 64, (2 * WORLD, 8), generator=g)[2 * half:2 * half + 2]
        return model(input_ids=ids, labels=ids, use_cache=False).loss
    ids = torch.randint(0, 16, (4 * WORLD, 9), generator=g)[4 * half:4 * half + 4]
    y = torch.randint(0, 4, (4 * WORLD,), generator=g)[4 * half:4 * half + 4]
    return nn.functional.cross_entropy(model(ids), y)


def _worker(rank: int, world: int, port: int, spaces: dict, out: str) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import fully_shard

    torch.set_num_threads(1)
    init(rank, world, port)
    try:
        real_all_reduce = dist.all_reduce
        for kind, space in spaces.items():
            model = build(kind)
            blocks = model.model.layers if kind == "llama" else [model.conv1, model.conv2]
            for block in blocks:
                fully_shard(block)
            fully_shard(model)
            opt = HESSO(model, space, **SETUP[kind][1])
            calls = 0
            for k in range(SETUP[kind][0]):
                opt.zero_grad(set_to_none=True)
                half_loss(model, kind, k, rank).backward()

                def counting(*a, **kw):
                    nonlocal calls
                    calls += 1
                    return real_all_reduce(*a, **kw)
                dist.all_reduce = counting
                try:
                    opt.step()
                finally:
                    dist.all_reduce = real_all_reduce
            full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
            sharded = all(type(p).__name__ == "DTensor" for p in model.parameters())
            torch.save({"status": opt._status, "pruned": opt.pruned_units, "calls": calls,
                        "collectives": opt.collectives, "sharded": sharded, "steps": opt.metrics()["step"],
                        "full": {n: t for n, t in full.items() if rank == 0}},
                       os.path.join(out, f"{kind}-rank{rank}.pt"))
    finally:
        shutdown()


def reference(kind: str, space) -> tuple[nn.Module, HESSO, int]:
    """One process, the same global batches; returns the model, optimizer and saliency steps taken."""
    model = build(kind)
    opt = HESSO(model, space, **SETUP[kind][1])
    measured = 0
    measure = opt._probe.measure

    def counted(*a, **kw):
        nonlocal measured
        measured += 1
        return measure(*a, **kw)
    opt._probe.measure = counted
    for k in range(SETUP[kind][0]):
        opt.zero_grad(set_to_none=True)
        (sum(half_loss(model, kind, k, h) for h in range(WORLD)) / WORLD).backward()
        opt.step()
    return model, opt, measured


def test_fsdp2_two_ranks_equal_one_process_and_compress_exactly(tmp_path):
    spaces = {kind: space_of(build(kind), kind) for kind in SETUP}
    plain = {kind: otograph.SearchSpace(list(s.groups), s.total_params, s.total_flops) for kind, s in spaces.items()}
    run_ranks(_worker, WORLD, (plain, str(tmp_path)), timeout_s=180)

    for kind, space in spaces.items():
        ranks = [torch.load(tmp_path / f"{kind}-rank{r}.pt", weights_only=True) for r in range(WORLD)]
        model, opt, measured = reference(kind, space)
        assert all(r["sharded"] for r in ranks), "fully_shard did not turn the parameters into DTensors"
        # every rank chose exactly the reference's units
        assert opt.metrics()["units_pruned"] == opt.layout.num_units // 2
        for r in ranks:
            assert torch.equal(r["status"], ranks[0]["status"]) and r["pruned"] == opt.pruned_units, kind
            assert torch.equal(r["status"], opt._status), kind
            # one all_reduce per saliency step, nothing else, none outside the pruning periods
            assert r["calls"] == r["collectives"] == measured, (kind, r["calls"], measured)
        assert measured == 2 if kind == "llama" else measured > 2  # CRIC measures at every sampling step
        # the gathered full weights are the reference's within float32 rounding
        full = ranks[0]["full"]
        for n, p in model.named_parameters():
            torch.testing.assert_close(full[n], p.detach(), msg=lambda m, n=f"{kind} {n}": f"{n}: {m}")
        # and compress exactly (in float64, from the gathered weights)
        big = build(kind, torch.float64)
        big.load_state_dict({n: t.double() if t.is_floating_point() else t for n, t in full.items()})
        space64 = space_of(big, kind)
        assert space64.zero_units(big) == opt.pruned_units
        compact = otograph.compress(big, space64)
        x = example(kind)
        if kind == "llama":
            x = {**x, "input_ids": torch.randint(0, 64, (2, 8))}
        else:
            x = torch.randint(0, 16, (2, 9))
        v = otograph.verify(big, compact, x)
        assert v.exact and v.params_after < v.params_before, (kind, v)
