"""Hugging Face models shrunk in place: save and reload them with standard or per-layer widths.

Needs ``transformers`` (imported when a function runs, not on ``import otograph.hf``).

    space = otograph.search_space(model, inputs, frontend="export")
    otograph.compress(model, space, units, inplace=True)     # the same LlamaForCausalLM, smaller
    otograph.hf.save_pretrained(model, "pruned")
    model = otograph.hf.from_pretrained("pruned")              # or AutoModelForCausalLM.from_pretrained
                                                               # when every layer keeps the same widths
"""

from otograph.hf.config import layer_widths, pruned_config
from otograph.hf.pretrained import KEY, HFError, from_pretrained, is_standard, save_pretrained

__all__ = ["save_pretrained", "from_pretrained", "is_standard", "pruned_config", "layer_widths", "HFError", "KEY"]
