"""HESSO's step time and memory against the same ``torch.optim`` optimizer, in the same run.

    python tools/bench_optimizer.py --quick                  # ResNet-18 and a small GPT-2, well under a minute
    python tools/bench_optimizer.py                          # ResNet-50 (SGD) and GPT-2-small (AdamW)
    python tools/bench_optimizer.py --fsdp 2 --quick         # the same, each model sharded by FSDP2 over 2 gloo ranks
    python tools/bench_optimizer.py --memory                 # peak and persistent memory, GPT-2-small and LLaMA-1B
    python tools/bench_optimizer.py --models resnet50 --steps 20 --threads 2 --device cuda

**Time.** Both optimizers start from the same parameters (two copies of one model) and get the
same gradients each step (a forward/backward of HESSO's model, copied); their ``step()`` calls
alternate which goes first, so machine noise hits both alike. Only ``step()`` is timed
(synchronised on CUDA; after a barrier under FSDP). Phases: *before* (pruning not started),
*period start* (the first step of each pruning period: saliency, selection, and under FSDP the one
``all_reduce``), *inside* (the decay runs every step) and *after* (pruned units held at zero).
``ratio`` is the median over steps of HESSO's time over torch's; ``own`` is the median share of
HESSO's step spent outside its base step (its own work, measured inside the same call, so less
exposed to noise from other processes). Targets: ≤ 1.02× after pruning, ≤ 2× at a period start.

**Memory.** Peak bytes allocated during one ``step()`` above what was allocated before it (from the
profiler's allocation events, CPU), per phase, and the persistent state: the base optimizer's
(moments, buffers) and HESSO's own tensors beyond it (unit index maps, masks, scores). The
LLaMA-1B-shaped model is built on the meta device: its persistent state is counted, not run.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hesso import HESSO


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class GPT2(nn.Module):
    """GPT-2-small shaped by default: 12 layers, 768 wide, 12 heads, 50,257 tokens, tied embeddings (124 M)."""

    def __init__(self, vocab: int = 50257, ctx: int = 1024, d: int = 768, layers: int = 12, heads: int = 12):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.h = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


@dataclass
class Built:
    model: nn.Module
    space: object
    inputs: torch.Tensor
    loss: Callable[[torch.Tensor], torch.Tensor]
    variant: str
    hp: dict
    blocks: list[nn.Module]  # what FSDP2 shards one by one (then the root)


def build(name: str, device: str) -> Built:
    import otograph

    torch.manual_seed(0)
    if name in ("resnet50", "resnet18"):
        import torchvision

        model = getattr(torchvision.models, name)().to(device)
        x = torch.randn(2, 3, 64 if name == "resnet50" else 32, 64 if name == "resnet50" else 32, device=device)
        space = otograph.search_space(model, x[:1])
        return Built(model, space, x, lambda out: out.logsumexp(1).mean(), "sgd",
                     dict(lr=0.1, momentum=0.9, weight_decay=1e-4),
                     [model.layer1, model.layer2, model.layer3, model.layer4])
    if name in ("gpt2", "gpt2-mini"):
        model = (GPT2() if name == "gpt2" else GPT2(vocab=8192, ctx=64, d=256, layers=4, heads=4)).to(device)
        vocab = model.wte.num_embeddings
        idx = torch.randint(0, vocab, (2, 32), device=device)
        space = otograph.search_space(model, idx[:, :8])
        return Built(model, space, idx, lambda out: out.float().logsumexp(-1).mean(), "adamw",
                     dict(lr=3e-4, weight_decay=0.1), list(model.h))
    raise SystemExit(f"unknown model {name!r}")


# ---------------------------------------------------------------------------------------------- time

PHASES = ("before", "period start", "inside", "after")


def phase_of(k: int, steps: int, periods: int, duration: int) -> str:
    if k < steps:
        return "before"
    if k >= steps + periods * duration:
        return "after"
    return "period start" if (k - steps) % duration == 0 else "inside"


def run_timed(b: Built, twin: nn.Module, opt: HESSO, base: torch.optim.Optimizer, steps: int, periods: int,
              duration: int, sync: Callable[[], None],
              device_sync: Callable[[], None]) -> dict[str, list[tuple[float, float, float, int]]]:
    """Per phase, ``(torch s, HESSO s, HESSO's base step s, HESSO's collectives)`` of every step.

    ``sync`` runs before each timed step (a barrier under FSDP: the ranks start together),
    ``device_sync`` at the ends of each timed interval (CUDA only), so a rank's time is its own.
    """
    inner: list[float] = []
    real_base_step = opt._base.step

    def timed_base_step(*a, **kw):
        device_sync()
        t0 = time.perf_counter()
        out = real_base_step(*a, **kw)
        device_sync()
        inner.append(time.perf_counter() - t0)
        return out
    opt._base.step = timed_base_step

    def timed(o, params, grads) -> float:
        for p, g in zip(params, grads, strict=True):
            p.grad = None if g is None else g.clone()
        sync()
        device_sync()
        t0 = time.perf_counter()
        o.step()
        device_sync()
        return time.perf_counter() - t0

    mine, theirs = list(b.model.parameters()), list(twin.parameters())
    times: dict[str, list[tuple[float, float, float, int]]] = {p: [] for p in PHASES}
    for k in range(2 * steps + periods * duration):
        opt.zero_grad()
        b.loss(b.model(b.inputs)).backward()  # real gradients of the (pruned) model, given to both
        grads = [p.grad for p in mine]
        calls = getattr(opt, "collectives", 0)  # (HESSO before FSDP support had none)
        if k % 2:
            th = timed(opt, mine, grads)
            tb = timed(base, theirs, grads)
        else:
            tb = timed(base, theirs, grads)
            th = timed(opt, mine, grads)
        times[phase_of(k, steps, periods, duration)].append((tb, th, inner[-1], getattr(opt, "collectives", 0) - calls))
    opt._base.step = real_base_step
    return times


def rows_of(name: str, b: Built, opt: HESSO, times: dict, note: str = "") -> list[tuple]:
    n_params = sum(p.numel() for p in b.model.parameters())
    rows = []
    for phase, ts in times.items():
        if not ts:
            continue
        tb = statistics.median(t[0] for t in ts)
        th = statistics.median(t[1] for t in ts)
        ratio = statistics.median(t[1] / t[0] for t in ts)
        own = statistics.median((t[1] - t[2]) / t[1] for t in ts)
        rows.append((name + note, f"{n_params / 1e6:.1f}M", opt.layout.num_units, b.variant, phase, len(ts),
                     tb * 1e3, th * 1e3, ratio, own, max(t[3] for t in ts)))
    return rows


def bench(name: str, steps: int, periods: int, device: str) -> list[tuple]:
    b = build(name, device)
    twin = copy.deepcopy(b.model)
    base = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}[b.variant](twin.parameters(), **b.hp)
    duration = max(2, steps // periods)
    opt = HESSO(b.model, b.space, variant=b.variant, **b.hp, target_group_sparsity=0.5, start_pruning_step=steps,
                pruning_steps=periods * duration, pruning_periods=periods)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = run_timed(b, twin, opt, base, steps, periods, duration, sync, sync)
    assert opt.metrics()["units_pruned"] > 0
    assert b.space.zero_units(b.model) == opt.pruned_units, "pruned units did not stay exactly zero"
    return rows_of(name, b, opt, times)


def _fsdp_rank(rank: int, world: int, port: int, names: list[str], steps: int, periods: int, threads: int,
               out: str) -> None:
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    torch.set_num_threads(threads)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        rows = []
        for name in names:
            b = build(name, "cpu")
            twin = copy.deepcopy(b.model)
            twin_blocks = [twin.get_submodule(_path(b.model, x)) for x in b.blocks]
            for m, blocks in ((b.model, b.blocks), (twin, twin_blocks)):
                for blk in blocks:
                    fully_shard(blk)
                fully_shard(m)
            base = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}[b.variant](twin.parameters(), **b.hp)
            duration = max(2, steps // periods)
            opt = HESSO(b.model, b.space, variant=b.variant, **b.hp, target_group_sparsity=0.5,
                        start_pruning_step=steps, pruning_steps=periods * duration, pruning_periods=periods)
            times = run_timed(b, twin, opt, base, steps, periods, duration, dist.barrier, lambda: None)
            assert opt.metrics()["units_pruned"] > 0
            rows += rows_of(name, b, opt, times, f" FSDP2×{world}")
        if rank == 0:
            torch.save(rows, out)
    finally:
        dist.destroy_process_group()


def _path(root: nn.Module, module: nn.Module) -> str:
    return next(n for n, m in root.named_modules() if m is module)


def bench_fsdp(names: list[str], steps: int, periods: int, world: int, threads: int) -> list[tuple]:
    import socket
    import tempfile

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rows.pt")
        mp.spawn(_fsdp_rank, args=(world, port, names, steps, periods, threads, out), nprocs=world, join=True)
        return torch.load(out, weights_only=False)


# -------------------------------------------------------------------------------------------- memory

def step_peak(opt: torch.optim.Optimizer) -> int:
    """Peak bytes allocated during ``opt.step()`` above the bytes allocated when it started (CPU)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        opt.step()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    now = peak = 0
    for _, n in events:
        now += n
        peak = max(peak, now)
    return peak


def tensor_bytes(root: object, skip: set[int]) -> int:
    """Bytes of the tensors reachable from ``root`` (attributes, containers), each storage once, views not
    counted apart from their base, tensors whose ``id`` is in ``skip`` left out."""
    seen: set[int] = set()
    total = 0
    stack = [root]
    while stack:
        o = stack.pop()
        if id(o) in seen or id(o) in skip:
            continue
        seen.add(id(o))
        if isinstance(o, torch.Tensor):
            if o._base is None:
                total += o.numel() * o.element_size()
            elif id(o._base) not in skip:
                stack.append(o._base)
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set)):
            stack.extend(o)
        elif hasattr(o, "__dict__") and not isinstance(o, (nn.Module, type)):
            stack.extend(vars(o).values())
        elif hasattr(o, "__slots__"):
            stack.extend(getattr(o, s) for s in o.__slots__ if hasattr(o, s))
    return total


def hesso_own_bytes(opt: HESSO) -> int:
    """HESSO's tensors beyond the base optimizer's state and the search space: index maps, masks, scores."""
    skip = {id(p) for g in opt.param_groups for p in g["params"]}
    skip |= {id(v) for st in opt.state.values() for v in st.values() if torch.is_tensor(v)}
    skip |= {id(m.positions) for g in opt.space.groups for m in g.members}
    skip |= {id(m.units) for g in opt.space.groups for m in g.members}
    skip |= {id(t) for g in opt.space.groups for t in (g.unit_params, g.unit_flops)}
    own = {k: v for k, v in vars(opt).items() if k not in ("param_groups", "state", "_base", "space", "defaults")}
    return tensor_bytes(own, skip)


def base_state_bytes(opt: torch.optim.Optimizer) -> int:
    return sum(v.numel() * v.element_size() for st in opt.state.values() for v in st.values() if torch.is_tensor(v))


def memory_gpt2() -> list[tuple]:
    b = build("gpt2", "cpu")
    params = sum(p.numel() * p.element_size() for p in b.model.parameters())
    twin = copy.deepcopy(b.model)
    base = torch.optim.AdamW(twin.parameters(), **b.hp)
    opt = HESSO(b.model, b.space, variant="adamw", **b.hp, target_group_sparsity=0.5, start_pruning_step=2,
                pruning_steps=4, pruning_periods=2)
    rows = []
    for k in range(7):  # 2 before, periods at 2 and 4 (2 steps each), 1 after
        opt.zero_grad()
        b.loss(b.model(b.inputs)).backward()
        for p, q in zip(b.model.parameters(), twin.parameters(), strict=True):
            q.grad = p.grad.clone()
        phase = phase_of(k, 2, 2, 2)
        pb, ph = step_peak(base), step_peak(opt)
        if k:  # the first step allocates the moments
            rows.append(("GPT-2-small", phase, pb, ph))
    return [("GPT-2-small (124 M, fp32, AdamW)", params, base_state_bytes(base), base_state_bytes(opt),
             hesso_own_bytes(opt), opt.layout.num_units, rows)]


def memory_llama_meta() -> list[tuple]:
    import transformers as T

    import otograph
    from hesso.optimizer import PRUNED, REDUNDANT

    cfg = T.LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                        num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=True)
    with torch.device("meta"):
        model = T.LlamaForCausalLM(cfg)
    ids = torch.zeros(1, 8, dtype=torch.long, device="meta")
    space = otograph.search_space(model, {"input_ids": ids, "use_cache": False}, frontend="export")
    opt = HESSO(model, space, variant="adamw", lr=1e-4, target_group_sparsity=0.5, pruning_steps=10)
    U = opt.layout.num_units
    opt._status[: U // 2] = PRUNED  # the largest HESSO gets: a hold mask and a decay at once
    opt._status[U // 2: 3 * U // 4] = REDUNDANT
    opt._rebuild()
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    adam = 2 * params  # exp_avg and exp_avg_sq, as AdamW allocates at its first step
    return [("LLaMA-1B-shaped (1.24 B, fp32, AdamW, meta)", params, adam, adam, hesso_own_bytes(opt), U, [])]


def gib(n: float) -> str:
    return f"{n / 2 ** 30:.2f} GiB" if n >= 2 ** 30 else f"{n / 2 ** 20:.1f} MiB"


def print_memory(results: list[tuple]) -> None:
    print("model | parameters | units | base optimizer state | HESSO base state | HESSO's own state | own / params")
    print("--- | ---: | ---: | ---: | ---: | ---: | ---:")
    for name, params, base, hb, own, units, _ in results:
        print(f"{name} | {gib(params)} | {units:,} | {gib(base)} | {gib(hb)} | {gib(own)} | {own / params:.2%}")
    print()
    print("model | phase | torch step peak | HESSO step peak | HESSO − torch")
    print("--- | --- | ---: | ---: | ---:")
    for name, *_, rows in results:
        agg: dict[str, list[tuple[int, int]]] = {}
        for _, phase, pb, ph in rows:
            agg.setdefault(phase, []).append((pb, ph))
        for phase, v in agg.items():
            pb, ph = max(x[0] for x in v), max(x[1] for x in v)
            print(f"{name} | {phase} | {gib(pb)} | {gib(ph)} | {(ph - pb) / 2 ** 20:+.1f} MiB")


# ---------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=None, help="default: resnet50 gpt2 (resnet18 gpt2-mini with --quick)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps before and after pruning (30; 6 with --quick)")
    ap.add_argument("--periods", type=int, default=None, help="pruning periods, each timed at its start (5; 3 quick)")
    ap.add_argument("--quick", action="store_true", help="small models, few steps: under a minute")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fsdp", type=int, default=0, metavar="N", help="shard with FSDP2 over N gloo ranks (CPU)")
    ap.add_argument("--memory", action="store_true", help="peak and persistent memory instead of time")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory:
        print(f"memory, CPU, torch {torch.__version__}")
        print_memory(memory_gpt2() + memory_llama_meta())
        return
    models = args.models or (["resnet18", "gpt2-mini"] if args.quick else ["resnet50", "gpt2"])
    steps = args.steps or (6 if args.quick else 30)
    periods = args.periods or (3 if args.quick else 5)
    t0 = time.perf_counter()
    if args.fsdp:
        rows = bench_fsdp(models, steps, periods, args.fsdp, args.threads)
    else:
        rows = [r for name in models for r in bench(name, steps, periods, args.device)]
    head = ["model", "params", "units", "base", "phase", "steps", "torch ms", "HESSO ms", "ratio", "own"]
    if args.fsdp:
        head.append("collectives / step")
    print(f"device: {args.device}, threads: {args.threads}, torch {torch.__version__}, "
          f"{time.perf_counter() - t0:.0f} s")
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for r in rows:
        cells = [*map(str, r[:6]), f"{r[6]:.2f}", f"{r[7]:.2f}", f"{r[8]:.3f}", f"{r[9]:.1%}"]
        if args.fsdp:
            cells.append(str(r[10]))
        print(" | ".join(cells))


if __name__ == "__main__":
    sys.exit(main())
