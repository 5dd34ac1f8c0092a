"""``hf:PATH`` (a local Hugging Face folder) for trace and prune; ``prune --onnx``; ``otograph export --onnx``
(issue 11 items 5 and 6)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

T = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    from otograph.testing.transformers import causal

    path = tmp_path_factory.mktemp("hf") / "llama"
    causal("llama").save_pretrained(path)
    return path


def test_trace_a_local_folder_with_token_inputs_of_the_asked_length(cli, llama_dir):
    code, out, _ = cli("trace", f"hf:{llama_dir}", "--seq-len", "9", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["class"] == "LlamaForCausalLM" and info["input_shape"] == [2, 9]
    prunable = {g["id"] for g in info["groups"] if g["prunable"]}
    assert "model.layers.0.self_attn.q_proj" in prunable and "model.layers.1.mlp.gate_proj" in prunable


def test_bad_hf_specs_are_one_line(cli, tmp_path, llama_dir):
    code, _, err = cli("trace", f"hf:{tmp_path}")
    assert code == 2 and "config.json" in err and "Traceback" not in err
    code, _, err = cli("trace", f"hf:{llama_dir}", "--input-shape", "2,3,4")
    assert code == 2 and "BATCH,SEQ" in err
    code, _, err = cli("trace", f"hf:{llama_dir}", "--seq-len", "65")
    assert code == 2 and "64 positions" in err


def test_prune_a_causal_lm_writes_a_hugging_face_folder_and_onnx(cli, llama_dir, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "run"
    code, stdout, err = cli("prune", f"hf:{llama_dir}", "--data", "otograph.testing.factories:token_data",
                            "--epochs", "1", "--periods", "1", "--target-params", "0.3", "--optimizer", "adamw",
                            "--seq-len", "8", "--no-baseline", "--onnx", "-q", "--out", out)
    assert code == 0, err
    assert "model.onnx" in stdout and "hf/" in stdout
    run = json.loads((out / "run.json").read_text())
    assert run["files"]["onnx"] is True and run["files"]["hf"] == "hf"
    assert run["exactness"]["max_rel_f64"] <= 1e-9 and run["exactness"]["same_argmax"] == 1.0
    assert 1 - run["after"]["params"] / run["before"]["params"] >= 0.3

    import otograph.hf

    lm = otograph.hf.from_pretrained(out / "hf")  # per-layer or standard widths alike
    assert type(lm).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in lm.parameters()) == run["after"]["params"]
    compact = torch.export.load(str(out / "model.pt2")).module()
    session = ort.InferenceSession(str(out / "model.onnx"))
    bound = 64 * torch.finfo(torch.float32).eps
    for shape in [(2, 8), (3, 11)]:  # another batch size and sequence length
        ids = torch.randint(0, 61, shape, generator=torch.Generator().manual_seed(shape[0]))
        with torch.no_grad():
            want = compact(ids)
            got = lm(input_ids=ids, use_cache=False).logits
        scale = max(1.0, float(want.abs().max()))
        assert float((got - want).abs().max()) <= bound * scale
        onnx_out = session.run(None, {session.get_inputs()[0].name: ids.numpy()})[0]
        assert float(np.abs(onnx_out - want.numpy()).max()) <= bound * scale

    code, _, err = cli("export", out, "--onnx", "-o", tmp_path / "again.onnx")
    assert code == 0 and (tmp_path / "again.onnx").stat().st_size > 0, err


def test_an_encoder_is_traced_with_automodel_and_refused_by_prune(cli, tmp_path):
    from otograph.testing.transformers import small

    small("bert").save_pretrained(tmp_path / "bert")
    code, out, _ = cli("trace", f"hf:{tmp_path / 'bert'}", "--input-shape", "3,5", "--json")
    assert code == 0 and json.loads(out)["class"] == "BertModel" and json.loads(out)["input_shape"] == [3, 5]
    code, _, err = cli("prune", f"hf:{tmp_path / 'bert'}", "--data", "otograph.testing.factories:token_data",
                       "--out", tmp_path / "run", "-q")
    assert code == 2 and "causal language models" in err
