"""CPU latency of compact models with rounded widths (``--round-to N``, HESSO's ``group_divisible``).

    python tools/round_to_latency.py                                    # ResNet-50, MobileNetV3-Large, 224×224
    python tools/round_to_latency.py --quick                            # 64×64, batches 1 and 4: a smoke test
    python tools/round_to_latency.py --models resnet50 --round-to 1 8 16 --threads 4

Each model is pruned to ``--target-flops`` (default 0.5) once per rounding. ``--selection uniform``
(the default): every prunable group keeps the same share of its units, rounded to a multiple of N
(a group of fewer than N units stays whole), the share found by bisection so that the compact model
has at least the target cut (``hesso.uniform.uniform_units``, on the exact cost model). ``--selection hesso``: HESSO
takes one step on a random batch with one pruning period of one step and ``group_divisible=N``, so
the units it removes are those its saliency ranks lowest under the exact FLOPs budget; on random
weights that empties the late, wide stages (ResNet-50: 8 of 256 channels left in layer3) and keeps
the early ones whole, a shape no trained run gives, which is why it is not the default.
``otograph.compress`` builds the compact model. The dense model and every compact one are then
timed (``otograph.report.latency.time_forward``: median and 25th–75th percentile of forward passes,
eval mode, no autograd) at each batch size, one after the other in the same process. Widths, not accuracy, decide latency, so no training is needed.
Run it on a quiet machine: other jobs on the same cores make the spreads overlap.
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F

import otograph
from hesso import HESSO
from hesso.uniform import uniform_units
from otograph.graph.cost import count_flops, count_params
from otograph.report.latency import time_forward

MODELS = ("resnet50", "mobilenet_v3_large")


def prune_to(model: torch.nn.Module, x: torch.Tensor, target: float, round_to: int, seed: int) -> torch.nn.Module:
    """A compact copy of ``model`` with ``target`` of its FLOPs removed, every group a multiple of ``round_to``."""
    model = copy.deepcopy(model).train()
    space = otograph.search_space(model, x[:1])
    torch.manual_seed(seed)
    opt = HESSO(model, space, variant="sgd", lr=1e-3, target_flops_reduction=target, start_pruning_step=0,
                pruning_steps=1, pruning_periods=1, group_divisible=round_to)
    opt.zero_grad()
    F.cross_entropy(model(x), torch.randint(0, 10, (len(x),))).backward()
    opt.step()
    assert opt.metrics()["stage"] == "done", opt.metrics()
    return otograph.compress(model.eval(), space).eval()


def uniform_to(model: torch.nn.Module, x: torch.Tensor, target: float, round_to: int) -> torch.nn.Module:
    """A compact copy of ``model`` with at least ``target`` of its FLOPs removed, every group keeping
    the same share of its units, rounded to ``round_to`` (:func:`hesso.uniform.uniform_units`)."""
    model = copy.deepcopy(model).eval()
    space = otograph.search_space(model, x[:1])
    try:
        units = uniform_units(space, target, "flops", round_to)
    except ValueError as e:
        raise SystemExit(f"{type(model).__name__}: {e}") from None
    return otograph.compress(model, space, units).eval()


def _cell(model: torch.nn.Module, x: torch.Tensor, batch: int, budget: float) -> str:
    t = time_forward(model, x, batch, budget_s=budget)
    return "n/a" if t is None else f"{t.median:.2f} ms [{t.low:.2f}–{t.high:.2f}]"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), help="torchvision model names")
    ap.add_argument("--round-to", nargs="+", type=int, default=[1, 8], metavar="N")
    ap.add_argument("--target-flops", type=float, default=0.5)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 32])
    ap.add_argument("--budget", type=float, default=3.0, help="seconds of timed passes per cell")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--selection", choices=("uniform", "hesso"), default="uniform",
                    help="which units go: the same share of every group (default), or one HESSO step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="64×64 images, batches 1 and 4, 0.5 s per cell")
    args = ap.parse_args(argv)
    if args.quick:
        args.image_size, args.batch_sizes, args.budget = 64, [1, 4], 0.5
    if args.threads:
        torch.set_num_threads(args.threads)
    import torchvision

    print(f"CPU, {torch.get_num_threads()} thread(s), {args.image_size}×{args.image_size}, "
          f"{args.target_flops:.0%} FLOPs target, {args.selection} selection; "
          f"latency: median [25th–75th percentile]\n")
    head = ["model", "widths", "params", "FLOPs removed", *(f"batch {b}" for b in args.batch_sizes)]
    print("| " + " | ".join(head) + " |\n|" + "---|" * 2 + "---:|" * (len(head) - 2))
    for name in args.models:
        torch.manual_seed(args.seed)
        dense = torchvision.models.get_model(name, weights=None, num_classes=10).eval()
        x = torch.randn(2, 3, args.image_size, args.image_size)
        flops = count_flops(dense, x[:1])
        rows = [("dense", dense)] + [
            (f"--round-to {n}", uniform_to(dense, x, args.target_flops, n) if args.selection == "uniform"
             else prune_to(dense, x, args.target_flops, n, args.seed)) for n in args.round_to]
        for label, m in rows:
            cut = 1 - count_flops(m, x[:1]) / flops
            cells = [_cell(m, x[:1], b, args.budget) for b in args.batch_sizes]
            print(f"| {name} | {label} | {count_params(m):,} | {cut:.1%} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
