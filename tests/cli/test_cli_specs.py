"""Model and data specs: every form loads, and every bad one says what to do."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from otograph.cli.specs import (
    DataError,
    SpecError,
    frontend_for,
    load_data,
    load_model,
    parse_input_shape,
    parse_spec,
    peek_num_classes,
)


def test_parse_spec_forms():
    assert parse_spec("default") == ("default", "", {})
    assert parse_spec("torchvision:resnet18?num_classes=3&weights=None") == (
        "torchvision", "resnet18", {"num_classes": 3, "weights": None})
    assert parse_spec("timm:resnet18") == ("timm", "resnet18", {})
    assert parse_spec("my.pkg:make?width=4&name=abc") == ("factory", "my.pkg:make", {"width": 4, "name": "abc"})
    assert parse_spec("runs/x/model.pt2") == ("file", "runs/x/model.pt2", {})


def test_input_shape():
    assert parse_input_shape("1,3,32,32") == (1, 3, 32, 32)
    assert parse_input_shape("1x3x32x32") == (1, 3, 32, 32)
    with pytest.raises(SpecError, match="integers"):
        parse_input_shape("1,3,a")
    with pytest.raises(SpecError, match="positive"):
        parse_input_shape("0,3")


def test_default_model():
    m = load_model(None)
    assert type(m.model).__name__ == "SmallResNet" and m.input_shape == (2, 1, 8, 8)
    assert not m.model.training


def test_torchvision_spec_with_kwargs_and_input_shape():
    m = load_model("torchvision:resnet18?num_classes=3", (1, 3, 32, 32))
    assert m.model.fc.out_features == 3 and m.input_shape == (1, 3, 32, 32)
    assert m.model(m.example_inputs).shape == (1, 3)
    # the data set's class count is a default, the spec's kwargs win
    assert load_model("torchvision:resnet18", (1, 3, 32, 32), {"num_classes": 7}).model.fc.out_features == 7


def test_unknown_torchvision_name_suggests_close_names():
    with pytest.raises(SpecError, match="did you mean.*resnet50"):
        load_model("torchvision:resnet5O")


def test_unknown_spec_lists_the_forms():
    with pytest.raises(SpecError, match="no such file.*torchvision:NAME"):
        load_model("no_such_model")
    with pytest.raises(SpecError, match="cannot import 'no_such_module'"):
        load_model("no_such_module:factory")
    with pytest.raises(SpecError, match="has no attribute 'nope'"):
        load_model("otograph.testing.factories:nope")


def test_timm_without_timm_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # as if it were not installed
    with pytest.raises(SpecError, match="pip install timm"):
        load_model("timm:resnet18")


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")
def test_timm_spec():
    m = load_model("timm:resnet18?num_classes=5")
    assert m.kind == "timm" and m.input_shape == (1, 3, 224, 224)
    assert m.model(torch.randn(1, 3, 64, 64)).shape == (1, 5)


def test_factory_specs():
    m = load_model("otograph.testing.factories:tiny_cnn?num_classes=4")
    assert m.kind == "factory" and m.model(m.example_inputs).shape == (2, 4)
    with pytest.raises(SpecError, match="--input-shape"):
        load_model("otograph.testing.factories:tiny_cnn_module")
    m = load_model("otograph.testing.factories:tiny_cnn_module?width=5", (1, 3, 9, 9))
    assert m.model[0].out_channels == 5


def test_pt2_file_and_run_folder(tmp_path):
    from otograph.rewrite.save import save_compact

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    gm = torch.fx.symbolic_trace(net)
    save_compact(gm, torch.randn(2, 3, 8, 8), tmp_path)
    for spec in (tmp_path / "model.pt2", tmp_path):
        m = load_model(str(spec))
        assert m.kind == "pt2" and m.input_shape == (2, 3, 8, 8)
        x = torch.randn(5, 3, 8, 8)  # the batch axis was exported dynamic
        torch.testing.assert_close(m.model(x), net(x))
        assert frontend_for(m) == "export" and frontend_for(m, "auto") == "auto"
    assert frontend_for(load_model(None)) == "fx" and frontend_for(load_model(None), "export") == "export"
    with pytest.raises(SpecError, match="only torch.export .pt2"):
        (tmp_path / "w.pth").write_bytes(b"")
        load_model(str(tmp_path / "w.pth"))


def test_digits_and_factory_data():
    d = load_data("digits", batch_size=32)
    x, y = next(iter(d.train))
    assert x.shape == (32, 1, 8, 8) and d.num_classes == 10 and len(d.val.dataset) == 360
    d = load_data("otograph.testing.factories:random_data", batch_size=8)
    assert next(iter(d.train))[0].shape == (8, 1, 8, 8)


def _image_folder(root, classes=("cat", "dog"), n=5):
    from PIL import Image

    for i, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for k in range(n):
            Image.new("RGB", (12, 10), (40 * i + k, 100, 200)).save(root / c / f"{k}.png")


def test_imagefolder_data(tmp_path):
    pytest.importorskip("torchvision")
    _image_folder(tmp_path / "imgs")
    assert peek_num_classes(f"imagefolder:{tmp_path / 'imgs'}") == 2
    d = load_data(f"imagefolder:{tmp_path / 'imgs'}", batch_size=4, input_shape=(1, 3, 16, 16))
    x, y = next(iter(d.train))
    assert x.shape == (4, 3, 16, 16) and d.num_classes == 2
    assert len(d.train.dataset) + len(d.val.dataset) == 10


def test_bad_data_specs(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        load_data(f"imagefolder:{tmp_path / 'missing'}")
    with pytest.raises(DataError, match="unknown data spec"):
        load_data("mnist")
    with pytest.raises(DataError, match="cannot load data factory"):
        load_data("otograph.testing.factories:nothing_here")


def test_imagefolder_val_is_labelled_with_the_training_classes(tmp_path):
    pytest.importorskip("torchvision")
    _image_folder(tmp_path / "imgs" / "train", classes=("cat", "dog", "fox"), n=2)
    _image_folder(tmp_path / "imgs" / "val", classes=("cat", "fox"), n=2)  # no dog in val/
    d = load_data(f"imagefolder:{tmp_path / 'imgs'}", batch_size=4, input_shape=(1, 3, 8, 8))
    assert d.num_classes == 3 and d.val.dataset.class_to_idx == d.train.dataset.class_to_idx
    labels = sorted(int(y) for _, y in d.val.dataset)
    assert labels == [0, 0, 2, 2]  # fox is class 2 in both, not 1 in val


def test_imagefolder_val_class_unknown_to_train_is_refused(tmp_path):
    pytest.importorskip("torchvision")
    _image_folder(tmp_path / "imgs" / "train", classes=("cat", "dog"), n=1)
    _image_folder(tmp_path / "imgs" / "val", classes=("cat", "owl"), n=1)
    with pytest.raises(DataError, match="val/ has classes that train/ does not have: owl"):
        load_data(f"imagefolder:{tmp_path / 'imgs'}")
