"""HESSO's step time against the same ``torch.optim`` optimizer, in the same run.

    python tools/bench_optimizer.py                       # ResNet-50 (SGD) and GPT-2-small (AdamW)
    python tools/bench_optimizer.py --models resnet50 --steps 20 --threads 2
    python tools/bench_optimizer.py --device cuda

Both optimizers start from the same parameters (two copies of one model) and get the same
gradients each step (a forward/backward of HESSO's model, copied), and their ``step()`` calls
alternate, so machine noise hits both alike.
Only ``step()`` is timed (synchronised on CUDA). Phases: *before* (pruning not started), *inside*
(a pruning period: the decay runs every step; the period's first step also computes saliency and
is reported apart) and *after* (pruned units held at zero). Ratios are medians over steps.
Targets: ≤ 1.05× outside pruning periods, ≤ 1.15× inside.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

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
    """GPT-2-small shaped: 12 layers, 768 wide, 12 heads, 50,257 tokens, tied embeddings (124 M)."""

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


def mlp_space(model: GPT2):
    """Hand-built space of a GPT2: the 3,072 hidden units of every block's MLP."""
    from otograph.analysis.space import CONSUMER, PRODUCER, Group, Member, SearchSpace

    groups = []
    for i, blk in enumerate(model.h):
        n, d = blk.c_fc.out_features, blk.c_fc.in_features
        ar = torch.arange(n)
        members = (Member(f"h.{i}.c_fc.weight", 0, ar, ar, PRODUCER, n), Member(f"h.{i}.c_fc.bias", 0, ar, ar, PRODUCER, n),
                   Member(f"h.{i}.mlp_proj.weight", 1, ar, ar, CONSUMER, n))
        groups.append(Group(f"h.{i}.c_fc", n, members, True, None, torch.full((n,), 2.0 * d + 1),
                            torch.full((n,), 4.0 * d)))
    total = sum(p.numel() for p in model.parameters())
    return SearchSpace(groups, total, int(sum(g.unit_flops.sum() for g in groups) * 2))


def build(name: str, device: str):
    """``(model, space, inputs, loss_fn, variant, hyper-parameters, space source)``."""
    import otograph

    if name == "resnet50":
        import torchvision

        model = torchvision.models.resnet50().to(device)
        x = torch.randn(2, 3, 64, 64, device=device)
        space = otograph.search_space(model, x[:1])
        return model, space, x, lambda out: out.logsumexp(1).mean(), "sgd", dict(lr=0.1, momentum=0.9,
                                                                                  weight_decay=1e-4), "otograph"
    if name == "gpt2":
        model = GPT2().to(device)
        idx = torch.randint(0, 50257, (2, 32), device=device)
        try:
            space, source = otograph.search_space(model, idx[:, :8]), "otograph"
        except Exception as e:  # noqa: BLE001 - fall back to the hand-built MLP space
            print(f"  (otograph.search_space failed on gpt2: {type(e).__name__}: {str(e)[:100]}; "
                  "using the MLP-units space)", file=sys.stderr)
            space, source = mlp_space(model), "hand-built MLP units"
        return model, space, idx, lambda out: out.float().logsumexp(-1).mean(), "adamw", dict(
            lr=3e-4, weight_decay=0.1), source
    raise SystemExit(f"unknown model {name!r}")


def flag_conv_rows_grad_free(model: nn.Module, space) -> int:
    """What-if: mark conv weight rows of groups that also hold a BatchNorm's affine as ``grad_free``.

    Their gradient is exactly zero once gamma and beta of the channel are zero. The analysis, not
    this tool, should set the flag; here it shows what the hold costs with it. Returns the count.
    """
    n = 0
    for g in space.prunable_groups:
        has_bn = any(isinstance(_owner(model, m.param), nn.BatchNorm2d) and m.role == "producer" for m in g.members)
        for m in g.members:
            if has_bn and m.role == "producer" and m.axis == 0 and isinstance(_owner(model, m.param), nn.Conv2d):
                object.__setattr__(m, "grad_free", True)
                n += 1
    return n


def _owner(model: nn.Module, param: str) -> nn.Module:
    return model.get_submodule(param.rpartition(".")[0])


def bench(name: str, steps: int, device: str, grad_free: bool = False) -> list[tuple]:
    torch.manual_seed(0)
    model, space, x, loss_fn, variant, hp, source = build(name, device)
    if grad_free:
        source += f", {flag_conv_rows_grad_free(model, space)} conv members grad_free"
    twin = copy.deepcopy(model)
    base = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}[variant](twin.parameters(), **hp)
    opt = HESSO(model, space, variant=variant, **hp, target_group_sparsity=0.5, start_pruning_step=steps,
                pruning_steps=steps, pruning_periods=1)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    grads: list[torch.Tensor | None] = []

    def timed(o, params) -> float:
        for p, g in zip(params, grads, strict=True):
            p.grad = None if g is None else g.clone()
        sync()
        t0 = time.perf_counter()
        o.step()
        sync()
        return time.perf_counter() - t0

    times: dict[str, list[tuple[float, float]]] = {"before": [], "period start": [], "inside": [], "after": []}
    for k in range(3 * steps):
        opt.zero_grad()
        loss_fn(model(x)).backward()  # real gradients of the (pruned) model, given to both
        grads = [p.grad for p in model.parameters()]
        phase = "before" if k < steps else "after" if k >= 2 * steps else "inside"
        if k == steps:
            phase = "period start"
        if k % 2:  # alternate the order
            th = timed(opt, list(model.parameters()))
            tb = timed(base, list(twin.parameters()))
        else:
            tb = timed(base, list(twin.parameters()))
            th = timed(opt, list(model.parameters()))
        times[phase].append((tb, th))
    assert opt.metrics()["units_pruned"] > 0
    assert space.zero_units(model) == opt.pruned_units, "pruned units did not stay exactly zero"
    rows = []
    n_params = sum(p.numel() for p in model.parameters())
    for phase, ts in times.items():
        tb = statistics.median(t[0] for t in ts)
        th = statistics.median(t[1] for t in ts)
        ratio = statistics.median(t[1] / t[0] for t in ts)
        rows.append((name, f"{n_params / 1e6:.1f}M", opt.layout.num_units, source, variant, phase, len(ts),
                     tb * 1e3, th * 1e3, ratio))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["resnet50", "gpt2"])
    ap.add_argument("--steps", type=int, default=30, help="timed steps per phase")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--grad-free", action="store_true",
                    help="what-if: flag conv rows feeding a BatchNorm of the same unit as grad_free")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models:
        rows += bench(name, args.steps, args.device, args.grad_free)
    head = ("model", "params", "units", "space", "base", "phase", "steps", "torch ms", "HESSO ms", "ratio")
    print(f"device: {args.device}, threads: {args.threads}, torch {torch.__version__}")
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for r in rows:
        print(" | ".join([*map(str, r[:7]), f"{r[7]:.2f}", f"{r[8]:.2f}", f"{r[9]:.3f}"]))


if __name__ == "__main__":
    main()
