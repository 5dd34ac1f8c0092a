"""timm models (ViT, DeiT, ConvNeXt, EfficientNet, ResNet, MobileNetV3) through both frontends."""

import pytest
import torch

from otograph.testing import check_exact

timm = pytest.importorskip("timm")

MODELS = [("vit_tiny_patch16_224", "fx"), ("deit_tiny_patch16_224", "export"), ("convnext_atto", "export"),
          ("efficientnet_b0", "fx"), ("resnet18", "export"), ("mobilenetv3_small_050", "fx")]


@pytest.mark.parametrize("name,frontend", MODELS)
def test_timm_exact(name, frontend):
    vit = name.startswith(("vit", "deit"))
    s = 32 if vit or name.startswith("convnext") else 16  # float64 depthwise convs are slow on CPU
    model = timm.create_model(name, pretrained=False, **({"img_size": s} if vit else {})).eval()
    res = check_exact(model, torch.randn(2, 3, s, s), torch.randn(2, 3, s, s), frontend=frontend)
    v = res.verification
    assert v.max_ref > 1e-3 and v.exact, v
    assert v.params_after == res.expected_params < v.params_before
    assert not res.space.opaque, res.space.opaque
    assert res.space.prunable_params / res.space.total_params > 0.5
