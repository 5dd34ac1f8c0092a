"""The public API: a few verbs, readable types, no verb hiding a subpackage."""

import importlib

import torch
import torch.nn as nn

import otograph


def test_public_names_resolve_and_verbs_are_functions():
    for name in otograph.__all__:
        assert getattr(otograph, name) is not None, name
    for verb in ("trace", "search_space", "compress", "verify", "viz", "register_op"):
        assert callable(getattr(otograph, verb)) and not isinstance(getattr(otograph, verb), type(otograph))


def test_no_verb_hides_a_subpackage():
    for pkg in ("tracing", "graph", "analysis", "rewrite", "report", "drawing", "cli", "testing"):
        mod = importlib.import_module(f"otograph.{pkg}")
        assert mod.__name__ == f"otograph.{pkg}" and pkg not in otograph.__all__


def test_the_whole_pipeline_through_the_verbs(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3)).eval()
    x = torch.randn(1, 3, 8, 8)
    traced = otograph.trace(net, x)
    assert "Traced(Sequential" in repr(traced)
    space = otograph.search_space(net, x)
    compact = otograph.compress(net, space, {"0": [0, 1, 2]})
    v = otograph.verify(net, compact, x)
    assert v.params_after < v.params_before
    out = otograph.viz(space, tmp_path / "s.dot")
    assert out.path.exists() and "digraph" in out.path.read_text()
