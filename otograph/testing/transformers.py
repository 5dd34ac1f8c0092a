"""Small random-init Hugging Face configs (needs ``transformers``) and token batches for them.

``small(name)`` builds ``gpt2``, ``llama``, ``qwen2`` (GQA), ``mistral`` (GQA) or ``bert`` with two
layers, hidden size 32 and 4 heads; ``causal(name)`` the same decoders with their language-model head
(``…ForCausalLM``, ``GPT2LMHeadModel``); ``ids(name, seed)`` is a keyword batch of 2×7 token ids.
``small(name, head=True)`` adds the task head (a language-model head, or sequence classification for
``bert``): the hidden size then no longer reaches the output and can be pruned.
``norms_in_model_dtype(model)`` makes Hugging Face's RMSNorm compute in the model's dtype.
"""

from __future__ import annotations

import torch

__all__ = ["small", "causal", "ids", "norms_in_model_dtype", "NAMES", "V"]

NAMES = ("gpt2", "llama", "qwen2", "mistral", "bert")
V = 61  # vocabulary of the small random configs


def small(name: str, head: bool = False) -> torch.nn.Module:
    """A small random-init model of the family ``name`` (seeded); ``head``: with its task head."""
    import transformers as T

    torch.manual_seed(0)
    common = dict(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4)
    if name == "gpt2":
        cfg = T.GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=16, bos_token_id=0,
                           eos_token_id=0)
        return T.GPT2LMHeadModel(cfg) if head else T.GPT2Model(cfg)
    if name == "llama":
        cfg = T.LlamaConfig(num_key_value_heads=4, **common)
        return T.LlamaForCausalLM(cfg) if head else T.LlamaModel(cfg)
    if name == "qwen2":
        cfg = T.Qwen2Config(num_key_value_heads=2, **common)
        return T.Qwen2ForCausalLM(cfg) if head else T.Qwen2Model(cfg)
    if name == "mistral":
        cfg = T.MistralConfig(num_key_value_heads=2, **common)
        return T.MistralForCausalLM(cfg) if head else T.MistralModel(cfg)
    if name == "bert":
        cfg = T.BertConfig(**common)
        return T.BertForSequenceClassification(cfg) if head else T.BertModel(cfg)
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


def _rms_in_model_dtype(self, h: torch.Tensor) -> torch.Tensor:
    return self.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))


def norms_in_model_dtype(model: torch.nn.Module) -> torch.nn.Module:
    """Hugging Face's RMSNorm (LLaMA, Qwen2, Mistral …) computes in float32 whatever the model's
    dtype, so a float64 model whose hidden units are removed differs from the zeroed one by float32
    rounding of the sums (≈1e-8): no float64 check can see past it. This gives each such norm the
    same decomposed math (pow → mean → rsqrt → weight) without the cast, in place."""
    import types

    for m in model.modules():
        if type(m).__name__.endswith("RMSNorm") and hasattr(m, "variance_epsilon"):
            m.forward = types.MethodType(_rms_in_model_dtype, m)
    return model
