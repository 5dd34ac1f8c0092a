"""Trace and analyse a LLaMA-3-8B-shaped model on the meta device: time and peak memory.

    python tools/scale_llama.py            # 32 layers, hidden 4096, 32 heads, 8 KV heads, MLP 14336
    python tools/scale_llama.py --layers 4 # a quicker look
    python tools/scale_llama.py --static   # torch.export for the example's shapes only

No weights are allocated (meta device); shapes and FLOPs come from fake tensors. By default the
export keeps the sequence length symbolic (``dynamic_shapes="auto"``), so the compact model runs at
any length; ``--static`` fixes it (``dynamic_shapes=None``): torch.export then does no symbolic
shape arithmetic and takes about half the time, for a graph specialised to the example's length.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--seq", type=int, default=8)
    ap.add_argument("--static", action="store_true", help="export for the example's shapes (dynamic_shapes=None)")
    a = ap.parse_args(argv)
    import transformers as T

    import otograph

    cfg = T.LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=a.layers,
                        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192)
    t0 = time.perf_counter()
    with torch.device("meta"):
        model = T.LlamaModel(cfg).eval()
    ids = torch.zeros(1, a.seq, dtype=torch.long, device="meta")
    t1 = time.perf_counter()
    traced = otograph.trace(model, {"input_ids": ids, "use_cache": False}, frontend="export",
                            dynamic_shapes=None if a.static else "auto")
    t2 = time.perf_counter()
    from otograph.analysis import analyse

    space = analyse(traced)
    t3 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB → GiB
    heads = [g for g in space.prunable_groups if "self_attn" in g.id]
    mlps = [g for g in space.prunable_groups if "mlp" in g.id]
    rows = [("parameters", f"{space.total_params / 1e9:.2f} B"),
            ("groups / prunable", f"{len(space.groups)} / {len(space.prunable_groups)}"),
            ("attention groups (units each)", f"{len(heads)} ({heads[0].num_units if heads else 0} KV heads)"),
            ("MLP groups (units each)", f"{len(mlps)} ({mlps[0].num_units if mlps else 0} neurons)"),
            ("params in prunable groups", f"{space.prunable_params / space.total_params:.1%}"),
            ("build on meta (s)", f"{t1 - t0:.1f}"), (f"trace, export frontend, {'static' if a.static else 'dynamic'} shapes (s)", f"{t2 - t1:.1f}"),
            ("analysis (s)", f"{t3 - t2:.1f}"), ("trace + analysis (s)", f"{t3 - t1:.1f}"),
            ("peak RSS of the process (GiB)", f"{peak:.2f}")]
    w = max(len(k) for k, _ in rows)
    print(f"LLaMA-3-8B-shaped, {a.layers} layers, seq {a.seq}, torch {torch.__version__}")
    for k, v in rows:
        print(f"  {k.ljust(w)}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
