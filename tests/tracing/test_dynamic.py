"""Any batch size and sequence length (issue 11 item 4): the export frontend traces with dynamic axes,
so the compact model and its model.pt2 run exactly at other shapes; fx-traced CNNs do at other batch
and image sizes; ``dynamic_shapes=None`` keeps the example's shapes."""

import copy

import pytest
import torch

import otograph
from otograph.rewrite.save import save_compact
from otograph.testing.exact import random_units


def _exact(want, got):
    return float((want - got).abs().max()) <= 1e-9 * max(1.0, float(want.abs().max()))


def _pruned(model, x, frontend, **kw):
    space = otograph.search_space(model, x, frontend=frontend, **kw)
    units = random_units(space, 0.4, torch.Generator().manual_seed(0))
    ref = copy.deepcopy(model)
    space.zero_(ref, units)
    return space, ref, otograph.compress(model, space, units)


def test_export_frontend_transformer_runs_exactly_at_other_batch_sizes_and_lengths(tmp_path):
    pytest.importorskip("transformers")
    from otograph.testing.transformers import V, small

    model = small("llama").double().eval()
    x = {"input_ids": torch.randint(0, V, (2, 7), generator=torch.Generator().manual_seed(0)), "use_cache": False}
    space, ref, compact = _pruned(model, x, "export")
    assert space.traced.dynamic[0] == (0, 1)  # input_ids: batch and sequence free
    info = save_compact(compact, x, tmp_path)
    assert info["pt2"] and info["dynamic_batch"]
    program = torch.export.load(str(tmp_path / "model.pt2")).module()
    for shape in [(1, 3), (3, 11), (5, 7)]:
        ids = torch.randint(0, V, shape, generator=torch.Generator().manual_seed(shape[1]))
        with torch.no_grad():
            want = ref(input_ids=ids, use_cache=False).last_hidden_state
            got = compact(input_ids=ids, use_cache=False).last_hidden_state
            saved = program(input_ids=ids, use_cache=False).last_hidden_state
        assert _exact(want, got) and _exact(want, saved), shape


def test_fx_cnn_compact_runs_exactly_at_other_batch_and_image_sizes(tmp_path):
    from otograph.testing.topologies import cbr

    model = torch.nn.Sequential(cbr(3, 8), cbr(8, 12), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(12, 4)).double().eval()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    _, ref, compact = _pruned(model, x, "fx")
    info = save_compact(compact, x, tmp_path)
    program = torch.export.load(str(tmp_path / "model.pt2")).module()
    for shape in [(5, 3, 16, 16), (3, 3, 23, 11)]:
        y = torch.randn(shape, dtype=torch.float64)
        with torch.no_grad():
            want = ref(y)
            assert _exact(want, compact(y)) and _exact(want, program(y)), shape
    assert info["dynamic_batch"]


def test_static_shapes_on_request():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    x = torch.randn(2, 3, 8, 8)
    assert otograph.trace(net, x, frontend="export").dynamic == ((0, 2, 3),)
    assert otograph.trace(net, x, frontend="export", dynamic_shapes=None).dynamic == ((),)
    batch = torch.export.Dim("batch")
    assert otograph.trace(net, x, frontend="export", dynamic_shapes={"input": {0: batch}}).dynamic == ((0,),)


def test_a_failed_dynamic_export_leaves_the_inputs_unmarked():
    """``torch.export`` cannot solve the shape constraints of a strided conv before a pool
    (sympy: NotImplementedError) and left dynamo's dynamic-dim marks on the example tensor, so the
    static fallback failed the same way (fuzz finding, seed 18): the static graph is used and the
    example tensor comes back as it was."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv1d(2, 12, 3, stride=2, padding=1), torch.nn.AvgPool1d(2),
                              torch.nn.Conv1d(12, 3, 1)).double()
    x = torch.randn(2, 2, 6, dtype=torch.float64)
    space = otograph.search_space(net, x, frontend="export")
    assert not [k for k in vars(x) if "dynamo" in k]
    torch.export.export(net, (x,), strict=False)  # the user's own export of the same tensor still works
    units = {g.id: [0] for g in space.prunable_groups}
    ref = copy.deepcopy(net)
    space.zero_(ref, units)
    assert units and _exact(ref(x), otograph.compress(ref, space, units)(x))
