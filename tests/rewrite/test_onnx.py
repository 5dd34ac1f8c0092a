"""model.onnx (torch.onnx.export, dynamo=True) runs in ONNX Runtime at other batch sizes (and sequence
lengths) and agrees with the compact model within float32 rounding: a CNN and a small transformer."""

import numpy as np
import pytest
import torch

import otograph
from otograph.rewrite.onnx import F32_BOUND, OnnxError, save_onnx
from otograph.rewrite.save import save_compact
from otograph.testing.exact import random_units

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def _compact(model, x, frontend):
    space = otograph.search_space(model.eval(), x, frontend=frontend)
    units = random_units(space, 0.4, torch.Generator().manual_seed(0))
    space.zero_(model, units)
    return otograph.compress(model, space, units)


def _agree(path, compact, feeds, **constants):
    """ONNX Runtime on each feed against the compact model (which also takes ``constants``)."""
    session = ort.InferenceSession(str(path))
    assert sorted(i.name for i in session.get_inputs()) == sorted(feeds[0])
    for feed in feeds:
        with torch.no_grad():
            out = compact(**feed, **constants)
        want = (out if isinstance(out, torch.Tensor) else out[0]).numpy()
        got = session.run(None, {k: v.numpy() for k, v in feed.items()})[0]
        assert got.shape == want.shape
        assert float(np.abs(got - want).max()) <= F32_BOUND * max(1.0, float(np.abs(want).max()))


def test_cnn_onnx_runs_at_two_batch_sizes(tmp_path):
    from otograph.cli.models import SmallResNet

    torch.manual_seed(0)
    compact = _compact(SmallResNet(width=8), torch.randn(2, 1, 8, 8), "fx")
    info = save_compact(compact, torch.randn(2, 1, 8, 8), tmp_path, onnx=True)
    assert info["onnx"] and (tmp_path / "model.onnx").exists()
    _agree(tmp_path / "model.onnx", compact, [{"x": torch.randn(b, 1, 8, 8)} for b in (2, 5)])


def test_transformer_onnx_runs_at_two_batch_sizes_and_another_length(tmp_path):
    pytest.importorskip("transformers")
    from otograph.testing.transformers import V, ids, small

    compact = _compact(small("llama"), ids("llama", 0), "export")
    path = save_onnx(compact, ids("llama", 0), tmp_path / "model.onnx")
    g = torch.Generator().manual_seed(1)
    _agree(path, compact, [{"input_ids": torch.randint(0, V, shape, generator=g)} for shape in [(2, 7), (3, 7), (3, 11)]],
           use_cache=False)


def test_an_unexportable_model_is_an_onnx_error_and_no_file(tmp_path):
    class Opaque(torch.nn.Module):
        def forward(self, x):
            return torch.from_numpy(x.numpy() * 2)  # leaves torch: no graph to export

    with pytest.raises(OnnxError, match="could not export"):
        save_onnx(Opaque(), torch.randn(2, 3), tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []
