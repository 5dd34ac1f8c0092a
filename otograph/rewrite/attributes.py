"""Attribute rules: the size attributes that modules which are not ops carry, for in-place shrinking.

The op rules' ``resize`` covers the modules the analysis knows as ops (``nn.Linear.out_features``,
``nn.Conv2d.out_channels``, norms, embeddings). Other modules keep sizes that their own Python code
reads: Hugging Face's GPT-2 attention splits its fused projection by ``self.split_size``, its
``Conv1D`` shapes its output with ``self.nf``. An *attribute rule* sets such attributes from the
module's sliced tensors and already resized children (children are resized first). Rules are keyed
by the qualified class name, so no third-party package is imported to register one, and looked up
along the class's MRO. A rule raises :class:`CannotResize` for a module that cannot hold its new
sizes at all (``nn.MultiheadAttention`` with fewer heads than ``embed_dim`` implies).

Example:
    >>> import torch
    >>> class Heads(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.head_dim, self.num_heads, self.qkv = 4, 2, torch.nn.Linear(8, 24)
    >>> rules = AttributeRules()
    >>> rules.register(Heads, lambda m: setattr(m, "num_heads", m.qkv.out_features // (3 * m.head_dim)))
    >>> m = Heads()
    >>> m.qkv = torch.nn.Linear(8, 12)                  # one head's q, k and v rows removed
    >>> rules.rule_of(m)(m); m.num_heads
    1
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

__all__ = ["AttributeRules", "ATTRIBUTE_RULES", "CannotResize", "register_resize", "qualname"]

Resize = Callable[[nn.Module], None]


class CannotResize(Exception):
    """Raised by an attribute rule: this module cannot hold its new sizes (the message says why)."""


def qualname(cls: type) -> str:
    """``module.QualName`` of a class: the key of its attribute rule."""
    return f"{cls.__module__}.{cls.__qualname__}"


class AttributeRules:
    """``qualified class name → resize(module)``; looked up along the module's MRO."""

    def __init__(self, rules: dict[str, Resize] | None = None):
        self.rules: dict[str, Resize] = dict(rules or {})

    def register(self, cls: type | str, resize: Resize, *, replace: bool = False) -> None:
        """Set ``cls``'s size attributes with ``resize(module)`` after its tensors were sliced."""
        key = cls if isinstance(cls, str) else qualname(cls)
        if key in self.rules and not replace:
            raise KeyError(f"{key} already has an attribute rule; pass replace=True to replace it")
        self.rules[key] = resize

    def rule_of(self, module: nn.Module) -> Resize | None:
        for cls in type(module).__mro__:
            r = self.rules.get(qualname(cls))
            if r is not None:
                return r
        return None

    def copy(self) -> AttributeRules:
        return AttributeRules(self.rules)

    def __repr__(self) -> str:
        return f"AttributeRules({len(self.rules)} classes)"


# ----------------------------------------------------------------------------- built-in rules


def _conv1d(m: nn.Module) -> None:
    """Hugging Face ``Conv1D`` (GPT-2): weight is ``(nx, nf)``; ``forward`` shapes its output with ``nf``."""
    m.nx, m.nf = m.weight.shape


def _gpt2_attention(m: nn.Module) -> None:
    """GPT-2 splits ``c_attn``'s output into q, k, v (k, v for cross-attention) of ``split_size``."""
    parts = 2 if getattr(m, "is_cross_attention", False) else 3
    m.split_size = m.c_attn.nf // parts
    m.num_heads = m.split_size // m.head_dim


def _bert_self_attention(m: nn.Module) -> None:
    """BERT-style self-attention: ``all_head_size`` and ``num_attention_heads`` follow ``query``."""
    m.all_head_size = m.query.out_features
    m.num_attention_heads = m.all_head_size // m.attention_head_size


def _mha(m: nn.MultiheadAttention) -> None:
    e, rows = m.embed_dim, m.in_proj_weight.shape[0] if m.in_proj_weight is not None else None
    if rows is not None and rows != 3 * e or m.out_proj.in_features != e:
        raise CannotResize(
            f"nn.MultiheadAttention computes with num_heads·head_dim = embed_dim ({e}); with heads removed "
            f"its projections have {m.out_proj.in_features} features, which its forward cannot express")


#: The built-in attribute rules (Hugging Face classes by name, so ``transformers`` is not imported).
ATTRIBUTE_RULES = AttributeRules({
    "transformers.pytorch_utils.Conv1D": _conv1d,
    "transformers.modeling_utils.Conv1D": _conv1d,
    "transformers.models.gpt2.modeling_gpt2.GPT2Attention": _gpt2_attention,
    "transformers.models.bert.modeling_bert.BertSelfAttention": _bert_self_attention,
    "transformers.models.roberta.modeling_roberta.RobertaSelfAttention": _bert_self_attention,
    qualname(nn.MultiheadAttention): _mha,
})


def register_resize(cls: type | str, resize: Resize, *, rules: AttributeRules | None = None,
                    replace: bool = False) -> None:
    """Teach in-place shrinking the size attributes of ``cls`` (into ``rules``, default the built-in
    table): ``resize(module)`` runs after the module's tensors were sliced and its children resized.

    Example:
        >>> import torch
        >>> class Heads(torch.nn.Module):
        ...     pass
        >>> register_resize(Heads, lambda m: setattr(m, "heads", m.qkv.out_features // 24),
        ...                 rules=AttributeRules())
    """
    (ATTRIBUTE_RULES if rules is None else rules).register(cls, resize, replace=replace)
