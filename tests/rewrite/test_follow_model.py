"""compress uses the model passed in: unwrapped, its current tensors, dtype and device."""

import copy

import pytest
import torch
import torch.nn as nn

import otograph


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3)).eval()


@pytest.fixture(scope="module")
def setup():
    model, x = net(), torch.randn(2, 3, 8, 8)
    return model, x, otograph.search_space(model, x)


@pytest.mark.parametrize("wrap", [nn.DataParallel, torch.compile])
def test_wrapped_models_are_unwrapped(setup, wrap):
    model, x, space = setup
    m = copy.deepcopy(model)
    m[0].weight.data.mul_(3.0)  # trained after tracing: the compact model must take these weights
    wrapped = wrap(m)
    space.zero_(wrapped, {"0": [1, 5]})
    assert space.zero_units(wrapped) == {"0": [1, 5]}
    compact = otograph.compress(wrapped, space)
    assert compact.get_submodule("0").out_channels == 6 and type(compact).__name__ == "SequentialCompact"
    torch.testing.assert_close(compact(x), m(x), rtol=0, atol=1e-5)


def test_dtype_changed_after_tracing_is_followed(setup):
    model, x, space = setup
    m = copy.deepcopy(model).double()
    space.zero_(m, {"0": [0, 2, 7]})
    compact = otograph.compress(m, space)
    assert all(p.dtype == torch.float64 for p in compact.parameters())
    v = otograph.verify(m, compact, x.double())
    assert v.exact, v


def test_a_replaced_layer_is_an_error_naming_the_tensor(setup):
    model, _, space = setup
    m = copy.deepcopy(model)
    m[3] = nn.Conv2d(8, 5, 3)
    with pytest.raises(otograph.RewriteError, match=r"'3\.weight' has shape \(5, 8, 3, 3\)"):
        otograph.compress(m, space, {})
    del m[3]
    with pytest.raises(otograph.RewriteError, match="no tensor '3.weight'"):
        otograph.compress(m, space, {})
