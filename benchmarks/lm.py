"""A language model: a small LLaMA-style causal LM (``transformers``, random init, byte-level) trained on
the standard library's source code, cut by half of the parameters in prunable groups: HESSO (train and
prune in one run) against Torch-Pruning (train, prune, fine-tune) and the same architecture shrunk
uniformly and trained from scratch, all at equal total tokens.

    python benchmarks/lm.py              # full: writes benchmarks/results/lm.json, docs/benchmarks.md
    python benchmarks/lm.py --quick      # a tiny model, a few steps (CI)
    python benchmarks/lm.py --device cuda  # train on a GPU; tokens/s is still measured on the CPU

Data (:mod:`benchmarks.stdlib_text`): the standard library's ``.py`` files, split by module, as bytes
(vocabulary 256, no tokenizer to fit). Training batches are random windows of the training bytes (a
seeded generator: every method sees the same windows); perplexity is per byte, on fixed windows spread
evenly over the held-out bytes.

* **HESSO**: ``HESSO(variant="adamw")`` for all the steps, parameter target = half of the parameters in
  prunable groups (heads, MLP neurons and the RMSNorm-coupled hidden size, all exact), then
  ``otograph.compress``; the compact model is evaluated.
* **TP magnitude / TP Taylor**: half the steps dense, then Torch-Pruning's LLM recipe
  (``examples/LLMs/prune_llm.py``: ``BasePruner``, ``GroupMagnitudeImportance(p=2, group_reduction="mean")``
  or ``GroupTaylorImportance()``, per-layer ratio for the hidden size, heads and MLP,
  ``prune_num_heads=True``, ``prune_head_dims=False``, ``round_to=4``, ``lm_head`` ignored) with the
  ratio found by bisection so that at least the same parameters go, then the other half fine-tuning.
* **uniform from scratch**: hidden size, MLP width and head size shrunk by one factor (the smallest
  model with at least as many parameters as the pruned ones), trained all the steps.
"""

from __future__ import annotations

import copy
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

if __package__ in (None, ""):  # run as `python benchmarks/NAME.py`: the repository root holds the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    Store,
    count_params,
    environment,
    finish,
    line_plot,
    log,
    options,
    table,
    time_limit,
    torch_pruning,
    where,
)

TITLE = "A language model: a small LLaMA on the standard library's source code"
METHODS = ("HESSO", "TP magnitude", "TP Taylor", "uniform from scratch")


@dataclass(frozen=True)
class Recipe:
    hidden: int = 320
    intermediate: int = 864
    layers: int = 9
    heads: int = 8
    seq: int = 256
    batch_size: int = 8
    steps: int = 600
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    warmup: int = 30
    cut: float = 0.5  # share of the parameters in prunable groups removed
    # HESSO: periods from `start` of the steps over `span` of them
    start: float = 0.15
    span: float = 0.35
    periods: int = 5
    tp_lr: str = "restart"  # fine-tuning: a fresh warm-up and cosine ("continue": one schedule over all steps)
    taylor_batches: int = 10
    tp_graph_limit: float = 120.0  # seconds for Torch-Pruning to build its graph once, else the row is a failure
    eval_windows: int = 256
    seed: int = 0

    @property
    def tokens(self) -> int:
        return self.steps * self.batch_size * self.seq


def config(r: Recipe, hidden: int | None = None, intermediate: int | None = None):
    import transformers as T

    h = hidden or r.hidden
    return T.LlamaConfig(vocab_size=256, hidden_size=h, intermediate_size=intermediate or r.intermediate,
                         num_hidden_layers=r.layers, num_attention_heads=r.heads, num_key_value_heads=r.heads,
                         head_dim=h // r.heads, max_position_embeddings=r.seq, tie_word_embeddings=False)


def build(r: Recipe, hidden: int | None = None, intermediate: int | None = None, device: str = "cpu"):
    import transformers as T

    torch.manual_seed(r.seed)  # initialised on the CPU: the same weights on every device
    return T.LlamaForCausalLM(config(r, hidden, intermediate)).to(device)


# ---------------------------------------------------------------------------------------------- data


@dataclass
class Corpus:
    train: torch.Tensor  # uint8
    held: torch.Tensor
    windows: torch.Tensor  # (n, seq) held-out evaluation windows, long, on ``device``
    device: str = "cpu"  # where the models train and the batches go

    def batch(self, r: Recipe, g: torch.Generator) -> torch.Tensor:
        start = torch.randint(0, len(self.train) - r.seq, (r.batch_size,), generator=g)
        return torch.stack([self.train[s:s + r.seq] for s in start.tolist()]).long().to(self.device)


def corpus(r: Recipe, limit: int | None = None, device: str = "cpu") -> Corpus:
    from benchmarks.stdlib_text import sources

    src = sources(limit)
    train = torch.frombuffer(bytearray(src["train"]), dtype=torch.uint8)
    held = torch.frombuffer(bytearray(src["held-out"]), dtype=torch.uint8)
    n = r.eval_windows
    starts = torch.linspace(0, len(held) - r.seq - 1, n).long()
    return Corpus(train, held, torch.stack([held[s:s + r.seq] for s in starts.tolist()]).long().to(device), device)


# ---------------------------------------------------------------------------------------------- training


def schedule(opt, r: Recipe, total: int, done: int = 0, warmup: int | None = None):
    """Linear warm-up, then cosine to 0 at step ``total``; ``done`` steps already taken."""
    w = r.warmup if warmup is None else warmup

    def f(k: int) -> float:
        k += done
        if k < w:
            return (k + 1) / w
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (k - w) / max(1, total - w))))
    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def train(model, opt, sched, r: Recipe, c: Corpus, g: torch.Generator, steps: int, what: str) -> list[float]:
    model.train()
    losses = []
    t0 = time.perf_counter()
    for k in range(steps):
        x = c.batch(r, g)
        loss = model(input_ids=x, labels=x, use_cache=False).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss))
        if (k + 1) % 25 == 0 or k == 0:
            tps = (k + 1) * r.batch_size * r.seq / (time.perf_counter() - t0)
            log(f"{what}: step {k + 1}/{steps}, loss {statistics.fmean(losses[-25:]):.4f}, {tps:.0f} tokens/s")
    return losses


@torch.no_grad()
def perplexity(model, r: Recipe, c: Corpus) -> float:
    """Per-byte perplexity on the held-out windows (batches of ``batch_size`` x ``seq``, the last padded)."""
    model.eval()
    total, n = 0.0, 0
    w = c.windows
    for a in range(0, len(w), r.batch_size):
        x = w[a:a + r.batch_size]
        real = len(x)
        if real < r.batch_size:
            x = torch.cat([x, x[-1:].expand(r.batch_size - real, -1)])
        out = model(input_ids=x, use_cache=False)
        logits = (out.logits if hasattr(out, "logits") else out[0])[:real, :-1]
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:real, 1:].reshape(-1),
                                       reduction="sum"))
        n += logits.shape[0] * logits.shape[1]
    return math.exp(total / n)


@torch.no_grad()
def tokens_per_s(models: dict[str, Any], r: Recipe, c: Corpus, repeats: int) -> dict[str, float]:
    """Forward throughput (batch ``batch_size`` x ``seq``) of each model as a ``torch.export`` graph, the
    median of ``repeats`` timed passes, the models interleaved (the machine's load hits all alike)."""
    x = c.windows[:r.batch_size].cpu()
    runs = {}
    for name, m in models.items():
        m.eval()
        if not isinstance(m, torch.fx.GraphModule):
            m = torch.export.export(m, (), {"input_ids": x, "use_cache": False}, strict=False).module()
        runs[name] = m
        for _ in range(2):
            m(input_ids=x, use_cache=False)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for name, m in runs.items():
            t0 = time.perf_counter()
            m(input_ids=x, use_cache=False)
            times[name].append(time.perf_counter() - t0)
    return {k: x.numel() / statistics.median(v) for k, v in times.items()}


class Models:
    """The trained models, in memory and on disk (``torch.save`` of the module), so that a resumed run
    can still time all of them; HESSO's entry is the trained full model, compressed again on load."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.mem: dict[str, Any] = {}

    def put(self, name: str, model) -> None:
        self.mem[name] = model
        self.folder.mkdir(parents=True, exist_ok=True)
        torch.save(model, self.folder / f"{name.replace(' ', '_')}.pt")

    def get(self, name: str, cpu: bool = False):
        """The model ``name``; ``cpu``: a copy on the CPU, read from disk (HESSO's: the full trained model)."""
        f = self.folder / f"{name.replace(' ', '_')}.pt"
        if cpu:
            return self._load(f, name, "cpu") if f.exists() else None
        if name not in self.mem:
            if not f.exists():
                return None
            self.mem[name] = self._load(f, name, None)
        return self.mem[name]

    @staticmethod
    def _load(f: Path, name: str, map_location: str | None):
        # whole modules (this run's own files, pruned shapes included): pickles of transformers'
        # classes, which another transformers version may not have
        try:
            return torch.load(f, weights_only=False, map_location=map_location)
        except (AttributeError, ModuleNotFoundError, ImportError) as e:
            raise SystemExit(f"{f}: the stored {name!r} model was saved by another version of its libraries "
                             f"({type(e).__name__}: {e}); run it again with --redo {name.split()[0]!r}, or "
                             f"use a new --out folder") from None


def adamw(r: Recipe, params) -> torch.optim.AdamW:
    return torch.optim.AdamW(params, lr=r.lr, betas=r.betas, weight_decay=r.weight_decay)


# ---------------------------------------------------------------------------------------------- methods


def example(r: Recipe, c: Corpus) -> dict[str, Any]:
    return {"input_ids": c.windows[:r.batch_size], "use_cache": False}


def compact_of(r: Recipe, c: Corpus, model):
    """The compact model of a trained HESSO model (its exact zeros), exported at the evaluation shape."""
    import otograph

    space = otograph.search_space(model, example(r, c), frontend="export")
    return otograph.compress(model, space)


def run_hesso(r: Recipe, c: Corpus, base_params: int, keep: Models) -> dict[str, Any]:
    import otograph
    from hesso import HESSO, Target

    model = build(r, device=c.device)
    space = otograph.search_space(model, example(r, c), frontend="export")
    fraction = r.cut * space.prunable_params / space.total_params
    steps = max(r.periods, round(r.span * r.steps))
    opt = HESSO(model, space, variant="adamw", lr=r.lr, betas=r.betas, weight_decay=r.weight_decay,
                target=Target("params", fraction), start_pruning_step=min(round(r.start * r.steps), r.steps - steps),
                pruning_steps=steps, pruning_periods=r.periods)
    losses = train(model, opt, schedule(opt, r, r.steps), r, c, torch.Generator().manual_seed(r.seed), r.steps,
                   "HESSO")
    assert opt.metrics()["stage"] == "done", opt.metrics()
    compact = otograph.compress(model, space)
    check = otograph.verify(model.eval(), compact, example(r, c))
    keep.put("HESSO", model)
    keep.mem["HESSO"] = compact
    return {"ppl": perplexity(compact, r, c), "params": count_params(compact),
            "params_cut": 1 - count_params(compact) / base_params, "target_params_cut": fraction,
            "prunable_share": space.prunable_params / space.total_params, "max_abs_diff": check.max_abs,
            "final_loss": statistics.fmean(losses[-25:]), "shape": shape(compact)}


def shape(model) -> dict[str, Any]:
    """Hidden size, heads and MLP width per layer, read from the weights."""
    hidden = heads = None
    per = []
    sd = {k: v for k, v in model.state_dict().items() if torch.is_tensor(v)}
    for k, v in sd.items():
        if k.endswith("embed_tokens.weight"):
            hidden = v.shape[1]
    i = 0
    while any(k.endswith(f"layers.{i}.mlp.gate_proj.weight") for k in sd):
        q = next(v for k, v in sd.items() if k.endswith(f"layers.{i}.self_attn.q_proj.weight"))
        mlp = next(v for k, v in sd.items() if k.endswith(f"layers.{i}.mlp.gate_proj.weight"))
        per.append((q.shape[0], mlp.shape[0]))
        i += 1
    heads = [a for a, _ in per]
    return {"hidden": hidden, "attention_width": heads, "mlp": [b for _, b in per]}


def tp_model(tp, r: Recipe, model, c: Corpus, method: str, ratio: float, g: torch.Generator | None):
    """Torch-Pruning's LLM recipe at ``ratio`` (``examples/LLMs/prune_llm.py``), in place."""
    num_heads = {}
    for name, m in model.named_modules():
        if name.endswith("self_attn"):
            num_heads[m.q_proj] = model.config.num_attention_heads
            num_heads[m.k_proj] = model.config.num_key_value_heads
            num_heads[m.v_proj] = model.config.num_key_value_heads
    imp = (tp.importance.GroupMagnitudeImportance(p=2, group_reduction="mean") if method == "TP magnitude"
           else tp.importance.GroupTaylorImportance())
    model.eval()
    pruner = tp.pruner.BasePruner(model, example_inputs=c.windows[:1, :16], importance=imp, global_pruning=False,
                                  output_transform=lambda x: x.logits, pruning_ratio=ratio,
                                  ignored_layers=[model.lm_head], num_heads=num_heads, prune_num_heads=True,
                                  prune_head_dims=False, head_pruning_ratio=ratio, round_to=4)
    if method == "TP Taylor":
        model.zero_grad(set_to_none=True)
        for _ in range(r.taylor_batches):
            x = c.batch(r, g)
            model(input_ids=x, labels=x, use_cache=False).loss.backward()
    for group in pruner.step(interactive=True):
        group.prune()
    model.config.hidden_size = model.lm_head.in_features
    for name, m in model.named_modules():  # as the example does
        if name.endswith("self_attn"):
            m.num_heads = m.q_proj.out_features // m.head_dim
            m.num_key_value_heads = m.num_heads
            m.num_key_value_groups = 1
            model.config.num_attention_heads = model.config.num_key_value_heads = m.num_heads
        elif name.endswith("mlp"):
            model.config.intermediate_size = m.gate_proj.out_features
    model.zero_grad(set_to_none=True)
    return model


def tp_ratio(tp, r: Recipe, model, c: Corpus, method: str, target_params: int) -> float:
    """The smallest Torch-Pruning ratio leaving at most ``target_params`` parameters (bisection, magnitude
    importance on copies: the sizes do not depend on which units go)."""
    lo, hi = 0.0, 0.95
    for _ in range(10):
        mid = (lo + hi) / 2
        n = count_params(tp_model(tp, r, copy.deepcopy(model), c, "TP magnitude", mid, None))
        lo, hi = (lo, mid) if n <= target_params else (mid, hi)
    return hi


def run_tp(r: Recipe, c: Corpus, base_params: int, target_params: int, method: str, keep: Models) -> dict[str, Any]:
    tp = torch_pruning()
    model = build(r, device=c.device)
    try:  # Torch-Pruning's graph of the untrained model first: no training spent when it cannot prune it
        t0 = time.perf_counter()
        with time_limit(r.tp_graph_limit, "Torch-Pruning's dependency graph of the LLaMA model"):
            tp_model(tp, r, copy.deepcopy(model), c, "TP magnitude", 0.1, None)
        log(f"{method}: Torch-Pruning builds its graph in {time.perf_counter() - t0:.1f} s")
    except TimeoutError as e:
        log(f"{method}: FAILED, {e}")
        from importlib.metadata import version

        return {"error": f"{e} (transformers {version('transformers')}, torch-pruning {version('torch-pruning')}; "
                         "a 2-layer, hidden-32 copy still had no graph after 300 s); no model"}
    g = torch.Generator().manual_seed(r.seed)
    first = r.steps // 2
    opt = adamw(r, model.parameters())
    sched = schedule(opt, r, first if r.tp_lr == "restart" else r.steps)
    losses = train(model, opt, sched, r, c, g, first, f"{method} (dense half)")
    dense_ppl = perplexity(model, r, c)
    ratio = tp_ratio(tp, r, model, c, method, target_params)
    tp_model(tp, r, model, c, method, ratio, torch.Generator().manual_seed(r.seed + 1))
    pruned_ppl = perplexity(model, r, c)
    opt = adamw(r, model.parameters())
    second = r.steps - first
    sched = schedule(opt, r, second) if r.tp_lr == "restart" else schedule(opt, r, r.steps, done=first)
    losses += train(model, opt, sched, r, c, g, second, f"{method} (fine-tuning)")
    keep.put(method, model)
    return {"ppl": perplexity(model, r, c), "params": count_params(model),
            "params_cut": 1 - count_params(model) / base_params, "ratio": ratio, "ppl_dense_half": dense_ppl,
            "ppl_right_after_pruning": pruned_ppl, "final_loss": statistics.fmean(losses[-25:]),
            "shape": shape(model)}


def slim_size(r: Recipe, target_params: int) -> tuple[int, int]:
    """The smallest (hidden, MLP width), shrunk by one factor (multiples of twice the head count and of 8),
    with at least ``target_params`` parameters."""
    best = (r.hidden, r.intermediate)
    for s in [x / 200 for x in range(40, 201)]:
        h = max(2 * r.heads, round(r.hidden * s / (2 * r.heads)) * 2 * r.heads)  # RoPE: an even head size
        i = max(8, round(r.intermediate * s / 8) * 8)
        n = count_params_config(r, h, i)
        if n >= target_params:
            best = (h, i)
            break
    return best


def count_params_config(r: Recipe, h: int, i: int) -> int:
    per_layer = 4 * h * h + 3 * h * i + 2 * h
    return r.layers * per_layer + 2 * 256 * h + h


def run_slim(r: Recipe, c: Corpus, base_params: int, target_params: int, keep: Models) -> dict[str, Any]:
    h, i = slim_size(r, target_params)
    model = build(r, h, i, c.device)
    opt = adamw(r, model.parameters())
    losses = train(model, opt, schedule(opt, r, r.steps), r, c, torch.Generator().manual_seed(r.seed), r.steps,
                   "uniform from scratch")
    keep.put("uniform from scratch", model)
    return {"ppl": perplexity(model, r, c), "params": count_params(model),
            "params_cut": 1 - count_params(model) / base_params, "hidden": h, "intermediate": i,
            "final_loss": statistics.fmean(losses[-25:]), "shape": shape(model)}


def run_dense(r: Recipe, c: Corpus, keep: Models) -> dict[str, Any]:
    model = build(r, device=c.device)
    opt = adamw(r, model.parameters())
    losses = train(model, opt, schedule(opt, r, r.steps), r, c, torch.Generator().manual_seed(r.seed), r.steps,
                   "dense")
    keep.put("dense", model)
    return {"ppl": perplexity(model, r, c), "params": count_params(model), "params_cut": 0.0,
            "final_loss": statistics.fmean(losses[-25:])}


# ---------------------------------------------------------------------------------------------- the page


def section(data: dict[str, Any], images: Path, rel: str) -> str:
    meta, runs = data["meta"], data["runs"]
    r, env = meta["recipe"], meta["env"]
    tps = runs.get("tokens_per_s", {})
    tokens = r["steps"] * r["batch_size"] * r["seq"]
    lines = [f"## {TITLE}", "",
             f"`transformers.LlamaForCausalLM`, random init (seed {r['seed']}): {r['layers']} layers, hidden "
             f"{r['hidden']}, {r['heads']} heads (no grouped-query attention), MLP {r['intermediate']}, byte-level "
             f"(vocabulary 256), context {r['seq']}, {meta['dense_params']:,} parameters, "
             f"{meta['prunable_share']:.1%} of them in prunable groups. Data: the standard library of Python "
             f"{env['python']} as bytes, split by module ({meta['train_bytes'] / 1e6:.1f} MB train, "
             f"{meta['held_bytes'] / 1e6:.1f} MB held-out); perplexity per byte on {r['eval_windows']} windows of "
             f"{r['seq']} bytes spread evenly over the held-out bytes. Every method: {r['steps']} steps of "
             f"{r['batch_size']} × {r['seq']} bytes = **{tokens / 1e6:.2f} M tokens**, AdamW lr {r['lr']:g}, betas "
             f"{tuple(r['betas'])}, weight decay {r['weight_decay']}, {r['warmup']} warm-up steps then cosine to 0. "
             f"Target: {r['cut']:.0%} of the parameters in prunable groups removed. HESSO: {r['periods']} periods "
             f"from {r['start']:.0%} of the steps over {r['span']:.0%} of them, default saliency. Torch-Pruning "
             f"{env.get('torch_pruning')}: pruned after {r['steps'] // 2} steps, fine-tuned {r['steps'] - r['steps'] // 2} "
             f"({'a fresh warm-up and cosine' if r['tp_lr'] == 'restart' else 'the same cosine continued'}); Taylor "
             f"gradients from {r['taylor_batches']} batches. Trained on {meta.get('trained_on', 'cpu')}. "
             f"Machine: {env['cpu']}, {env['threads']} threads, torch "
             f"{env['torch']}, transformers {env.get('transformers')}, commit {env.get('commit')}, {env.get('date')}. "
             f"One seed. Tokens/s: forward passes of {r['batch_size']} × {r['seq']} bytes, every model as a "
             f"`torch.export` graph (the compact model is one), median of {meta.get('repeats', '?')} interleaved "
             f"passes, {env['threads']} threads.", ""]
    rows = []
    failed = {m: x["error"] for m, x in runs.items() if isinstance(x, dict) and "error" in x}
    runs = {m: x for m, x in runs.items() if m not in failed}
    for m in ("dense",) + METHODS:
        x = runs.get(m)
        if not x:
            continue
        s = x.get("shape") or {}
        arch = (f"hidden {s['hidden']}, attention {min(s['attention_width'])}–{max(s['attention_width'])}, "
                f"MLP {min(s['mlp'])}–{max(s['mlp'])}") if s.get("mlp") else ""
        rows.append([m, f"{x['params']:,}", f"{100 * x['params_cut']:.1f} %", f"**{x['ppl']:.3f}**",
                     f"{math.log2(x['ppl']):.3f}", f"{tps[m]:,.0f}" if m in tps else "–", arch])
    lines += [table(["model", "parameters", "params cut", "held-out perplexity", "bits per byte", "tokens/s",
                     "shape (widths per layer)"], rows, "lrrrrrl"), ""]
    extra = [f"{m}: perplexity {x['ppl_dense_half']:.3f} after the dense half, {x['ppl_right_after_pruning']:.3f} "
             f"right after pruning (ratio {x['ratio']:.3f})" for m, x in runs.items() if "ppl_dense_half" in x]
    if extra:
        lines += ["Torch-Pruning, before fine-tuning: " + "; ".join(extra) + ".", ""]
    if failed:
        lines += ["**Could not run**: " + "; ".join(f"{m}: {e}" for m, e in failed.items()) + ".", ""]
    series = {m: [(runs[m]["params_cut"], runs[m]["ppl"], 0.0)] for m in METHODS if m in runs}
    if series:
        p = line_plot(images / "lm.png", series, xlabel="parameter cut (%)", ylabel="held-out perplexity per byte",
                      title=f"LLaMA {meta['dense_params'] / 1e6:.1f} M on stdlib source, {tokens / 1e6:.2f} M tokens each",
                      hlines={"dense": runs["dense"]["ppl"]} if "dense" in runs else None)
        lines += [f"![perplexity against parameter cut]({rel}/{p.name})", ""]
    h = runs.get("HESSO")
    others = {m: runs[m] for m in METHODS[1:] if m in runs}
    if h and others:
        ok = all(h["ppl"] <= x["ppl"] for x in others.values())
        lines += [f"**Goal** (HESSO's perplexity ≤ Torch-Pruning's and ≤ the small model from scratch): "
                  f"**{'met' if ok else 'not met'}** (" + ", ".join(f"{m} {x['ppl']:.3f}" for m, x in others.items())
                  + f"; HESSO {h['ppl']:.3f}).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = options(__doc__)
    ap.add_argument("--steps", type=int, default=None, help="training steps per method (default 600)")
    ap.add_argument("--seed", type=int, default=None, help="initialisation and batch order (default 0)")
    ap.add_argument("--device", default="cpu", help="where the models train, e.g. cuda (default cpu); tokens/s is "
                                                    "always timed on the CPU, --threads threads")
    a = ap.parse_args(argv)
    try:  # before any work: a device torch does not know, or one this machine lacks
        torch.empty(0, device=a.device)
    except (RuntimeError, AssertionError) as e:
        ap.error(f"--device {a.device}: {str(e).splitlines()[0]}")
    torch.set_num_threads(a.threads)
    r, limit, repeats = Recipe(), None, 7
    if a.quick:
        r = replace(r, hidden=32, intermediate=64, layers=2, heads=4, seq=32, batch_size=4, steps=6, warmup=2,
                    periods=2, taylor_batches=1, eval_windows=8, tp_graph_limit=10.0)
        limit, repeats = 6, 2
    if a.steps:
        r = replace(r, steps=a.steps)
    if a.seed is not None:
        r = replace(r, seed=a.seed)
    out_json, md, images = where(a, "lm")
    c = corpus(r, limit, a.device)
    base = build(r, device=a.device)
    import otograph

    space = otograph.search_space(base, example(r, c), frontend="export")
    base_params = count_params(base)
    target_params = base_params - math.ceil(r.cut * space.prunable_params)
    meta = {"recipe": asdict(r), "env": environment(a.threads), "dense_params": base_params,
            "prunable_share": space.prunable_params / space.total_params, "target_params": target_params,
            "train_bytes": len(c.train), "held_bytes": len(c.held), "repeats": repeats,
            "trained_on": torch.cuda.get_device_name(a.device) if a.device.startswith("cuda") else a.device}
    del base, space
    store = Store(out_json, meta, a.redo)
    keep = Models(out_json.parent / "lm_models" if a.quick or a.out else Path.home() / ".cache" / "otograph-bench" / "lm")
    store.run("dense", lambda: run_dense(r, c, keep))
    store.run("HESSO", lambda: run_hesso(r, c, base_params, keep))
    if torch_pruning() is None:
        log("WARNING: torch_pruning is not installed (pip install 'otograph[bench]'): the Torch-Pruning "
            "methods are SKIPPED, their rows stay empty")
    else:
        for m in ("TP magnitude", "TP Taylor"):
            store.run(m, lambda m=m: run_tp(r, c, base_params, target_params, m, keep))
    store.run("uniform from scratch", lambda: run_slim(r, c, base_params, target_params, keep))
    names = [m for m in ("dense",) + METHODS if m in store.runs and "error" not in store.runs[m]]
    models = {m: keep.get(m, cpu=c.device != "cpu") for m in names}
    cpu = replace(c, windows=c.windows.cpu(), device="cpu")
    if "HESSO" in models and models["HESSO"] is not None and not isinstance(models["HESSO"], torch.fx.GraphModule):
        models["HESSO"] = compact_of(r, cpu, models["HESSO"])
    if all(v is not None for v in models.values()) and (a.redo or "tokens_per_s" not in store.runs
                                                         or set(store.runs["tokens_per_s"]) != set(names)):
        log("timing the models …")
        store.runs["tokens_per_s"] = tokens_per_s(models, r, c, repeats)
    store.save()
    finish(a, md, images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
