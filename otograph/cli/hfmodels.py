"""``hf:PATH``: a Hugging Face model from a local folder (no hub access), with token example inputs.

The class is ``AutoModelForCausalLM`` when ``config.json`` names a causal LM (``…ForCausalLM``,
``…LMHeadModel``), else ``AutoModel``. Example inputs are token ids drawn from the vocabulary, of
``--input-shape BATCH,SEQ`` or ``--seq-len SEQ`` (default 2×16, within the model's positions), with
``use_cache=False`` for decoders; the export frontend traces it. ``prune`` trains a causal LM through
:class:`CausalLM`, which takes the token ids and returns the logits, on ``(ids, next ids)`` batches.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from otograph.errors import OtographError

__all__ = ["load_hf", "token_inputs", "CausalLM", "is_causal", "DEFAULT_SEQ"]

DEFAULT_SEQ = 16


def is_causal(config: Any) -> bool:
    """Does the config name a causal language model class?"""
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in getattr(config, "architectures", None) or ())


def _spec_error(msg: str, hint: str | None = None) -> OtographError:
    from otograph.cli.specs import SpecError

    return SpecError(msg, hint=hint)


def load_hf(path: str, kwargs: dict) -> tuple[nn.Module, Any]:
    """The model of the local folder ``path`` (``from_pretrained`` with ``kwargs``, local files only) and
    its config."""
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise _spec_error(f"hf:{path}: {folder} is not a folder with a config.json",
                          hint="name a local folder written by save_pretrained (the hub is not contacted)")
    try:
        import transformers as T
    except ImportError:
        raise _spec_error("hf:… models need transformers: pip install transformers") from None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    T.utils.logging.disable_progress_bar()  # one line per command, not transformers' loading bars
    try:
        config = T.AutoConfig.from_pretrained(folder, local_files_only=True)
        if json.loads((folder / "config.json").read_text()).get("otograph_pruned"):
            from otograph.hf import from_pretrained

            return from_pretrained(folder), config
        cls = T.AutoModelForCausalLM if is_causal(config) else T.AutoModel
        model = cls.from_pretrained(folder, local_files_only=True, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        raise _spec_error(f"hf:{path}: transformers could not load the folder: {type(e).__name__}: "
                          f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from e
    return model, config


def token_inputs(model: nn.Module, config: Any, shape: tuple[int, ...] | None, seq_len: int | None, *,
                 seed: int = 0) -> dict:
    """``{"input_ids": …}`` (and ``use_cache=False`` when ``model`` takes it: no cache object to export)
    of ``shape`` (batch, seq), or of ``2 × seq_len``, or the default, inside the vocabulary and the
    model's positions."""
    if shape is not None and len(shape) != 2:
        raise _spec_error(f"--input-shape {','.join(map(str, shape))}: a Hugging Face model takes token ids of "
                          f"shape BATCH,SEQ (e.g. --input-shape 2,16)")
    most = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    b, n = shape if shape is not None else (2, seq_len or min(DEFAULT_SEQ, most or DEFAULT_SEQ))
    if most is not None and n > most:
        raise _spec_error(f"a sequence of {n} tokens is longer than the model's {most} positions")
    vocab = int(config.vocab_size)
    g = torch.Generator().manual_seed(seed)
    x: dict[str, Any] = {"input_ids": torch.randint(0, vocab, (b, n), generator=g)}
    if "use_cache" in inspect.signature(model.forward).parameters:
        x["use_cache"] = False
    return x


class CausalLM(nn.Module):
    """A causal LM as ``prune`` trains it: token ids in, logits out (no cache). ``lm`` is the model."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=input_ids, use_cache=False).logits
