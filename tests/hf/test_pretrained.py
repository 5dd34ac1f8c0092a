"""Pruned causal LMs shrunk in place generate what the zeroed original generates, before and after a
Hugging Face save/load round trip: stock ``from_pretrained`` with uniform widths, ``otograph.hf`` with
per-layer widths (issue 11 items 1-3)."""

import copy
import functools
import re

import pytest
import torch

import otograph
import otograph.hf
from otograph.rewrite.inplace import norm_in

T = pytest.importorskip("transformers")

from otograph.testing.transformers import V, causal  # noqa: E402

LENGTHS = (3, 9)  # two prompt lengths
NEW = 32


@functools.cache
def _traced(name):
    """The float64 model and its search space (traced once per family; tests work on copies)."""
    model = causal(name).double().eval()
    x = {"input_ids": torch.randint(0, V, (2, 7), generator=torch.Generator().manual_seed(0)), "use_cache": False}
    return model, otograph.search_space(model, x, frontend="export")


def _layer(gid):
    return int(re.search(r"\.(\d+)\.", gid).group(1))


def _units(model, space, uniform):
    """Half of every group's units; with per-layer widths layer 1 loses a quarter (at least one) instead."""
    out = {}
    for g in space.prunable_groups:
        if norm_in(model, g) is not None:
            continue  # the hidden size (through every RMSNorm) shrinks only in a compact GraphModule
        k = g.num_units // 2 if uniform or _layer(g.id) == 0 else max(1, g.num_units // 4)
        out[g.id] = list(range(1, 1 + k))
    return out


def _pruned(name, uniform):
    model, space = _traced(name)
    model = copy.deepcopy(model)
    units = _units(model, space, uniform)
    ref = copy.deepcopy(model)
    space.zero_(ref, units)
    assert otograph.compress(model, space, units, inplace=True) is model  # checked at two shapes inside
    assert type(model) is type(ref)
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in ref.parameters())
    return ref, model


def _same_generation(ref, model):
    for n in LENGTHS:
        prompt = torch.randint(2, V, (1, n), generator=torch.Generator().manual_seed(n))
        kw = dict(max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, use_cache=True)
        want, got = ref.generate(prompt, **kw), model.generate(prompt, **kw)
        assert want.shape == (1, n + NEW) and torch.equal(want, got), (n, want, got)


@pytest.mark.parametrize("name", ["llama", "qwen2", "gpt2"])
def test_per_layer_widths_generate_the_same_tokens_in_place_and_after_a_round_trip(name, tmp_path):
    ref, model = _pruned(name, uniform=False)
    _same_generation(ref, model)
    info = otograph.hf.save_pretrained(model, tmp_path / "pruned")
    assert not info["standard"] and not otograph.hf.is_standard(tmp_path / "pruned")
    back = otograph.hf.from_pretrained(tmp_path / "pruned")
    assert type(back) is type(model) and next(back.parameters()).dtype == torch.float64
    assert {k: v.shape for k, v in back.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    _same_generation(ref, back)


@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_uniform_widths_load_with_stock_from_pretrained(name, tmp_path):
    ref, model = _pruned(name, uniform=True)
    info = otograph.hf.save_pretrained(model, tmp_path / "pruned")
    assert info == {"standard": True, "per_layer": {}}
    back = T.AutoModelForCausalLM.from_pretrained(tmp_path / "pruned")
    attn = model.model.layers[0].self_attn
    c = back.config
    assert (c.num_attention_heads, c.num_key_value_heads, c.head_dim) == (
        attn.q_proj.out_features // 8, attn.k_proj.out_features // 8, 8)
    assert c.intermediate_size == model.model.layers[0].mlp.up_proj.out_features
    _same_generation(ref, back)


def test_gpt2_without_its_attribute_rules_is_refused_and_left_untouched(monkeypatch):
    from otograph.rewrite.attributes import ATTRIBUTE_RULES

    monkeypatch.delitem(ATTRIBUTE_RULES.rules, "transformers.models.gpt2.modeling_gpt2.GPT2Attention")
    model, space = _traced("gpt2")
    model = copy.deepcopy(model)
    before = {k: (id(v), v.clone()) for k, v in model.state_dict(keep_vars=True).items()}
    attrs = [(m.split_size, m.num_heads, m.c_attn.nf) for m in (b.attn for b in model.transformer.h)]
    units = {g.id: [0] for g in space.prunable_groups if ".attn." in g.id}
    with pytest.raises(otograph.ShrinkError) as info:
        otograph.compress(model, space, units, inplace=True)
    e = info.value
    assert e.module == "transformer.h.0.attn" and e.attribute == "split_size", str(e)
    assert "register_resize(GPT2Attention" in e.hint
    after = model.state_dict(keep_vars=True)
    assert all(id(after[k]) == i and torch.equal(after[k], t) for k, (i, t) in before.items())
    assert attrs == [(m.split_size, m.num_heads, m.c_attn.nf) for m in (b.attn for b in model.transformer.h)]


def test_the_hidden_size_is_refused_in_place_and_the_model_left_untouched():
    model, space = _traced("llama")
    hidden = [g for g in space.prunable_groups if norm_in(model, g) is not None]
    assert hidden, "the causal LM's hidden size is a prunable group (its RMSNorms keep the original divisor)"
    model = copy.deepcopy(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(otograph.OtographError, match="RMSNorm") as e:
        otograph.compress(model, space, {hidden[0].id: [0]}, inplace=True)
    assert "otograph.compress(model, space, units)" in e.value.hint
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
