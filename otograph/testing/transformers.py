"""Small random-init Hugging Face configs (needs ``transformers``) and token batches for them.

``small(name)`` builds ``gpt2``, ``llama``, ``qwen2`` (GQA), ``mistral`` (GQA) or ``bert`` with two
layers, hidden size 32 and 4 heads; ``causal(name)`` the same decoders with their language-model head
(``…ForCausalLM``, ``GPT2LMHeadModel``); ``ids(name, seed)`` is a keyword batch of 2×7 token ids.
"""

from __future__ import annotations

import torch

__all__ = ["small", "causal", "ids", "NAMES", "V"]

NAMES = ("gpt2", "llama", "qwen2", "mistral", "bert")
V = 61  # vocabulary of the small random configs


def small(name: str) -> torch.nn.Module:
    """A small random-init model of the family ``name`` (seeded)."""
    import transformers as T

    torch.manual_seed(0)
    common = dict(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4)
    if name == "gpt2":
        return T.GPT2Model(T.GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=16,
                                        bos_token_id=0, eos_token_id=0))
    if name == "llama":
        return T.LlamaModel(T.LlamaConfig(num_key_value_heads=4, **common))
    if name == "qwen2":
        return T.Qwen2Model(T.Qwen2Config(num_key_value_heads=2, **common))
    if name == "mistral":
        return T.MistralModel(T.MistralConfig(num_key_value_heads=2, **common))
    if name == "bert":
        return T.BertModel(T.BertConfig(**common))
    raise KeyError(name)


def causal(name: str) -> torch.nn.Module:
    """A small random-init causal language model of the family ``name`` (seeded), positions for 64 tokens."""
    import transformers as T

    torch.manual_seed(0)
    common = dict(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  max_position_embeddings=64, bos_token_id=0, eos_token_id=1, pad_token_id=0)
    if name == "gpt2":
        return T.GPT2LMHeadModel(T.GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                              bos_token_id=0, eos_token_id=1, pad_token_id=0))
    if name == "llama":
        return T.LlamaForCausalLM(T.LlamaConfig(num_key_value_heads=4, **common))
    if name == "qwen2":
        return T.Qwen2ForCausalLM(T.Qwen2Config(num_key_value_heads=2, **common))
    if name == "mistral":
        return T.MistralForCausalLM(T.MistralConfig(num_key_value_heads=2, **common))
    raise KeyError(name)


def ids(name: str, seed: int) -> dict:
    """Token ids (and ``use_cache=False`` for decoders) from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    x = {"input_ids": torch.randint(0, V, (2, 7), generator=g)}
    if name != "bert":
        x["use_cache"] = False
    return x
