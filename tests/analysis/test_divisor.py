"""The hidden size through LayerNorm and RMSNorm: one prunable group, exact with the original divisor.

torchvision ViT and ConvNeXt (small configs of the real classes), Hugging Face LLaMA, Qwen2 and BERT
with their task heads (the bare models return the hidden states, which must stay whole).
"""


import pytest
import torch

import otograph
from otograph.testing import check_exact
from otograph.testing.transformers import ids, norms_in_model_dtype, small

tv = pytest.importorskip("torchvision")


def _hidden(space, width: int, member: str):
    """The group of ``width`` units that holds ``member`` (a tensor name)."""
    found = [g for g in space.groups if g.num_units == width and any(m.param == member for m in g.members)]
    assert len(found) == 1, [(g.id, g.num_units) for g in space.groups]
    return found[0]


def _exact_with_hidden_removed(model, a, b, gid, **kw):
    res = check_exact(model, a, b, fraction=0.3, **kw)
    v = res.verification
    assert res.units.get(gid), f"no unit of {gid} was removed: {res.units}"
    assert v.max_ref > 1e-3 and v.exact, v
    assert v.params_after == res.expected_params < v.params_before
    return res


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_vit_hidden_size_is_one_exact_group(frontend):
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=48).eval()
    x = torch.randn(1, 3, 32, 32)
    space = otograph.search_space(vit, x, frontend=frontend)
    g = _hidden(space, 32, "encoder.ln.weight")
    assert g.prunable, g.reason
    names = {(m.param, m.axis) for m in g.members}
    assert {("conv_proj.weight", 0), ("class_token", 2), ("encoder.pos_embedding", 2),
            ("encoder.layers.encoder_layer_0.ln_1.weight", 0), ("encoder.layers.encoder_layer_1.ln_2.bias", 0),
            ("encoder.layers.encoder_layer_1.mlp.3.weight", 0), ("heads.head.weight", 1)} <= names
    _exact_with_hidden_removed(vit, x, torch.randn(1, 3, 32, 32), g.id, frontend=frontend)


def test_convnext_stage_widths_are_exact_groups():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    torch.manual_seed(0)
    net = ConvNeXt([CNBlockConfig(16, 32, 2), CNBlockConfig(32, None, 1)], stochastic_depth_prob=0.0).eval()
    x = torch.randn(2, 3, 32, 32)
    space = otograph.search_space(net, x)
    stem = _hidden(space, 16, "features.0.1.weight")  # LayerNorm2d: permute + F.layer_norm
    last = _hidden(space, 32, "classifier.0.weight")  # the LayerNorm2d before the head
    assert stem.prunable and last.prunable, (stem.reason, last.reason)
    assert {"features.1.0.block.2.weight", "features.1.1.layer_scale", "features.2.1.weight"} <= \
        {m.param for m in stem.members}
    res = check_exact(net, x, torch.randn(2, 3, 32, 32), fraction=0.3)
    assert res.units.get(stem.id) and res.units.get(last.id)
    assert res.ok and res.verification.max_ref > 1e-3, res.verification


def _removed_at_half(name: str, **kw) -> float:
    from otograph.testing.zoo import removed_share

    torch.manual_seed(0)
    model = tv.models.get_model(name, weights=None, **kw).eval()
    return removed_share(model, otograph.search_space(model, torch.randn(1, 3, 32, 32)))


@pytest.mark.parametrize("name,kw", [("vit_b_16", {"image_size": 32}), ("convnext_tiny", {})])
def test_half_of_every_group_removes_most_of_vit_and_convnext(name, kw):
    assert _removed_at_half(name, **kw) >= 0.70  # 49 % and 45 % while the hidden size stayed whole


@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_decoder_hidden_size_is_prunable_and_exact(name):
    pytest.importorskip("transformers")
    model = small(name, head=True).eval()
    space = otograph.search_space(model, ids(name, 0), frontend="export")
    g = _hidden(space, 32, "model.norm.weight")
    assert g.prunable, g.reason
    names = {(m.param, m.axis) for m in g.members}
    assert {("model.embed_tokens.weight", 1), ("model.layers.0.input_layernorm.weight", 0),
            ("model.layers.1.mlp.down_proj.weight", 0), ("model.layers.0.self_attn.q_proj.weight", 1),
            ("lm_head.weight", 1)} <= names
    _exact_with_hidden_removed(norms_in_model_dtype(model), ids(name, 0), ids(name, 1), g.id, frontend="export")


def test_nn_rmsnorm_in_a_decoder_is_exact():
    """The same decoder with ``nn.RMSNorm`` (one ``rms_norm`` op, rebuilt as ``rms_norm(d′, eps·d/d′)``)."""
    pytest.importorskip("transformers")
    model = small("llama", head=True).eval()
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if type(child).__name__ == "LlamaRMSNorm":
                norm = torch.nn.RMSNorm(child.weight.shape[0], eps=child.variance_epsilon)
                setattr(parent, child_name, norm)
    space = otograph.search_space(model, ids("llama", 0), frontend="export")
    g = _hidden(space, 32, "model.norm.weight")
    assert g.prunable, g.reason
    _exact_with_hidden_removed(model, ids("llama", 0), ids("llama", 1), g.id, frontend="export")


def test_bert_classifier_hidden_size_is_prunable_and_exact():
    pytest.importorskip("transformers")
    model = small("bert", head=True).eval()
    space = otograph.search_space(model, ids("bert", 0), frontend="export")
    g = _hidden(space, 32, "bert.embeddings.LayerNorm.weight")
    assert g.prunable, g.reason
    assert {"bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
            "bert.encoder.layer.1.output.LayerNorm.bias", "bert.pooler.dense.weight"} <= {m.param for m in g.members}
    _exact_with_hidden_removed(model, ids("bert", 0), ids("bert", 1), g.id, frontend="export")


def test_bare_models_keep_the_hidden_size_they_return():
    pytest.importorskip("transformers")
    space = otograph.search_space(small("llama").eval(), ids("llama", 0), frontend="export")
    g = _hidden(space, 32, "norm.weight")
    assert not g.prunable and "output" in g.reason


def test_rewritten_norms_save_and_reload(tmp_path):
    """The plain-op LayerNorm and the rescaled RMSNorm survive ``model.pt2`` and ``model.py``
    (float32: ``model.py`` rebuilds modules in the default dtype)."""
    import importlib.util

    from otograph.rewrite.save import load_exported, save_compact
    from otograph.testing.topologies import NormsOverUnits

    torch.manual_seed(0)
    model = NormsOverUnits().eval()
    x = torch.randn(2, 4, 5)
    space = otograph.search_space(model, x)
    units = {"embed": [0, 3, 5], "up": [1, 2]}
    space.zero_(model, units)
    compact = otograph.compress(model, space, units)
    assert compact.get_submodule("ln").weight.shape == (9,)
    info = save_compact(compact, x, tmp_path)
    assert info["pt2"] and info["standalone_py"], info  # model.py is written only if it reproduces
    spec = importlib.util.spec_from_file_location("compact_norms", tmp_path / "model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    want = compact(x)
    for net in (load_exported(tmp_path / "model.pt2"), mod.load(str(tmp_path / "state_dict.pt"))):
        assert torch.equal(net(x), want)
