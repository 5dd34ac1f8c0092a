"""The models of the zoo (:mod:`otograph.testing.zoo`), small and random-init, one builder per row.

A section maker returns ``(name, build, check)`` triples; ``build()`` makes a :class:`Case` (model in
eval mode, an example input, a fresh input, the frontend). Every package is imported when a model
is built, so a section whose package is missing lists its rows and fails each with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Case", "torchvision_classification", "torchvision_segmentation", "torchvision_video",
           "torchvision_detection", "timm_families", "transformers_families", "yolo", "TIMM_FAMILIES", "HF_FAMILIES"]

Rows = list[tuple[str, Callable[[], "Case"], str]]


@dataclass
class Case:
    model: torch.nn.Module
    example: Any
    fresh: Any
    frontend: str = "fx"
    regions: tuple[str, ...] = field(default=())  # detection: the submodules pruned inside the model


def _images(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


# ---- torchvision ------------------------------------------------------------------------------------
#: input resolution per classification family (small where the model allows it)
TV_SIZES = {"inception_v3": 96, "googlenet": 64, "swin": 64, "maxvit": 224, "vit_h_14": 56}
#: the largest models run last (float64 copies of them take several GB)
TV_LAST = ["vit_l_16", "vit_l_32", "regnet_x_32gf", "regnet_y_32gf", "vit_h_14", "regnet_y_128gf"]


def _tv_size(name: str) -> int:
    return next((s for key, s in TV_SIZES.items() if name.startswith(key)), 64)


def _tv_classifier(name: str) -> Case:
    import torchvision

    s = _tv_size(name)
    kw: dict[str, Any] = {}
    if name.startswith("vit"):
        kw = {"image_size": s}
    elif name in ("inception_v3", "googlenet"):
        kw = {"aux_logits": False, "init_weights": False}
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, **kw).eval()
    return Case(model, *_images((1, 3, s, s)), frontend="auto")


def torchvision_classification() -> Rows:
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    names = [n for n in names if n not in TV_LAST] + [n for n in TV_LAST if n in names]
    return [(n, lambda n=n: _tv_classifier(n), "exact") for n in names]


def _tv_segmentation(name: str) -> Case:
    import torchvision

    torch.manual_seed(0)
    kw = {} if name.startswith("lraspp") else {"aux_loss": True}
    model = torchvision.models.get_model(name, weights=None, weights_backbone=None, **kw).eval()
    return Case(model, *_images((1, 3, 64, 64)), frontend="auto")


def torchvision_segmentation() -> Rows:
    import torchvision

    return [(n, lambda n=n: _tv_segmentation(n), "exact")
            for n in torchvision.models.list_models(module=torchvision.models.segmentation)]


def _tv_video(name: str) -> Case:
    import torchvision
    import torchvision.models.video.mvit as mvit

    orig = mvit._mvit

    def small_mvit(**kw):  # mvit_v1_b/v2_s fix 16×224×224 inputs: built for 8×64×64 instead
        return orig(**{**kw, "spatial_size": (64, 64), "temporal_size": 8})

    torch.manual_seed(0)
    mvit._mvit = small_mvit
    try:
        model = torchvision.models.get_model(name, weights=None).eval()
    finally:
        mvit._mvit = orig
    t, hw = (16, 224) if name == "s3d" else (8, 64)  # S3D ends in a fixed 2×7×7 average pool
    return Case(model, *_images((1, 3, t, hw, hw)), frontend="auto")


def torchvision_video() -> Rows:
    import torchvision

    return [(n, lambda n=n: _tv_video(n), "exact")
            for n in torchvision.models.list_models(module=torchvision.models.video)]


#: the traceable regions of each detector family (analysed, compressed and put back in place)
DETECTION_REGIONS = {
    "fasterrcnn": ("backbone", "rpn.head", "roi_heads.box_head"),
    "maskrcnn": ("backbone", "rpn.head", "roi_heads.box_head", "roi_heads.mask_head"),
    "keypointrcnn": ("backbone", "rpn.head", "roi_heads.box_head", "roi_heads.keypoint_head"),
    "retinanet": ("backbone", "head"),
    "fcos": ("backbone", "head"),
    "ssd": ("backbone", "head"),
}


def _tv_detector(name: str) -> Case:
    import torchvision

    s = 96
    kw: dict[str, Any] = {"min_size": s, "max_size": s}
    if name.startswith(("fasterrcnn", "maskrcnn", "keypointrcnn")):
        kw |= {"box_score_thresh": 0.0, "box_detections_per_img": 20, "rpn_pre_nms_top_n_test": 50,
               "rpn_post_nms_top_n_test": 20}
    elif name.startswith(("retinanet", "fcos")):
        kw |= {"score_thresh": 0.0, "detections_per_img": 20, "topk_candidates": 50}
    else:  # ssd: fixed input size
        kw = {"score_thresh": 0.0, "detections_per_img": 20, "topk_candidates": 50}
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, weights_backbone=None, **kw).eval()
    g = torch.Generator().manual_seed(0)
    example = [torch.rand(3, s, s, generator=g)]
    fresh = [[torch.rand(3, s, s, generator=g)], [torch.rand(3, s - 16, s, generator=g)]]  # batches
    regions = next(r for k, r in DETECTION_REGIONS.items() if name.startswith(k))
    return Case(model, example, fresh, frontend="auto", regions=regions)


def torchvision_detection() -> Rows:
    import torchvision

    return [(n, lambda n=n: _tv_detector(n), "detection")
            for n in torchvision.models.list_models(module=torchvision.models.detection)]


# ---- timm -----------------------------------------------------------------------------------------
#: one model per timm family (``timm.list_modules()``, timm 1.0.31): the one with the fewest parameters
#: (counted on the meta device); a family timm adds later runs its first model
TIMM_FAMILIES: dict[str, str] = {
    "beit": "beit_base_patch16_224", "byoanet": "halonet_h1", "byobnet": "test_byobnet",
    "cait": "cait_xxs24_224", "coat": "coat_tiny", "convit": "convit_tiny", "convmixer": "convmixer_768_32",
    "convnext": "test_convnext", "cpubone": "cpubone_nano", "crossvit": "crossvit_tiny_240",
    "csatv2": "csatv2", "cspnet": "cs3darknet_focus_s", "cspnext": "cspnext_tiny", "davit": "davit_tiny",
    "deepseek_vit": "deepseek_vit_412m", "deit": "deit_tiny_patch16_224", "densenet": "densenet121",
    "dla": "dla46x_c", "dpn": "dpn48b", "edgenext": "edgenext_xx_small",
    "efficientformer": "efficientformer_l1", "efficientformer_v2": "efficientformerv2_s0",
    "efficientnet": "test_efficientnet", "efficientvim": "efficientvim_m1",
    "efficientvit_mit": "efficientvit_b0", "efficientvit_msra": "efficientvit_m0",
    "eva": "vit_tiny_patch16_dinov3_qkvb", "fasternet": "fasternet_t0", "fastvit": "fastvit_t8",
    "focalnet": "focalnet_tiny_srf", "gcvit": "gcvit_xxtiny", "gemma4_vit": "gemma4_vit_167m",
    "ghostnet": "ghostnet_050", "hardcorenas": "hardcorenas_b", "hgnet": "hgnetv2_b0",
    "hiera": "hiera_tiny_224", "hieradet_sam2": "sam2_hiera_tiny", "hrnet": "hrnet_w18_small",
    "iformer": "iformer_t", "inception_next": "inception_next_atto",
    "inception_resnet_v2": "inception_resnet_v2", "inception_v3": "inception_v3",
    "inception_v4": "inception_v4", "lcnetv2": "lcnetv2_small", "levit": "levit_128s",
    "lowformer": "lowformer_b0", "mambaout": "test_mambaout", "maxxvit": "test_coatnet",
    "metaformer": "poolformerv2_s12", "mlp_mixer": "gmlp_ti16_224", "mobilenetv3": "mobilenetv3_small_050",
    "mobilenetv5": "mobilenetv5_base", "mobilevit": "mobilevit_xxs", "mvitv2": "mvitv2_tiny",
    "naflexvit": "naflexvit_base_patch16_parfac_gap", "nasnet": "nasnetalarge", "nest": "nest_tiny",
    "nextvit": "nextvit_small", "nfnet": "test_nfnet", "pit": "pit_ti_224", "pnasnet": "pnasnet5large",
    "pvt_v2": "pvt_v2_b0", "qwen3_vit": "qwen3_vit_88m", "rdnet": "rdnet_tiny", "regnet": "regnetx_002",
    "repghost": "repghostnet_050", "repvit": "repvit_m1", "res2net": "res2next50", "resnest": "resnest14d",
    "resnet": "test_resnet", "resnetv2": "resnetv2_18", "rexnet": "rexnet_100", "selecsls": "selecsls42",
    "senet": "legacy_seresnet18", "sequencer": "sequencer2d_s", "shvit": "shvit_s1", "sknet": "skresnet18",
    "starnet": "starnet_s050", "swiftformer": "swiftformer_xs",
    "swin_transformer": "swin_tiny_patch4_window7_224", "swin_transformer_v2": "swinv2_tiny_window8_256",
    "swin_transformer_v2_cr": "swinv2_cr_tiny_224", "tiny_vit": "tiny_vit_5m_224",
    "tnt": "tnt_s_legacy_patch16_224", "tresnet": "tresnet_m", "twins": "twins_svt_small", "vgg": "vgg11",
    "visformer": "visformer_tiny", "vision_transformer": "test_vit",
    "vision_transformer_hybrid": "vit_tiny_r_s16_p8_224", "vision_transformer_relpos": "test_vit_relpos",
    "vision_transformer_sam": "samvit_base_patch16_224", "vitamin": "vitamin_small_224",
    "volo": "volo_d1_224", "vovnet": "ese_vovnet19b_slim_dw", "xception": "legacy_xception",
    "xception_aligned": "xception41p", "xcit": "xcit_nano_12_p8_224",
}


def _timm(name: str) -> Case:
    import timm

    torch.manual_seed(0)
    for kw, s in (({"img_size": 64}, 64), ({}, 64), ({}, None)):
        try:
            model = timm.create_model(name, pretrained=False, **kw).eval()
            if s is None:
                s = model.pretrained_cfg.get("input_size", (3, 224, 224))[-1]
            x = _images((1, 3, s, s))
            with torch.no_grad():
                model(x[0])
            return Case(model, *x, frontend="auto")
        except Exception:  # noqa: BLE001, S112 - try the next size
            continue
    raise RuntimeError(f"{name} runs at no size tried (64 with img_size, 64, its default)")


def timm_families() -> Rows:
    import timm

    rows = []
    for module in sorted(timm.list_modules()):
        name = TIMM_FAMILIES.get(module)
        if name is None:
            names = timm.list_models(module=module)
            name = names[0] if names else None
        if name:
            rows.append((module, lambda n=name: _timm(n), "exact"))
    return rows


# ---- Hugging Face transformers -------------------------------------------------------------------
_SMALL = dict(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64, head_dim=8, d_model=32, d_ff=48, d_kv=8,
              num_layers=2, num_heads=4, image_size=32, patch_size=8, embed_dim=16, hidden_sizes=[8, 16],
              depths=[1, 1], pad_token_id=0, rotary_dim=4, encoder_layers=2, decoder_layers=2,
              encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=48,
              num_experts=4, num_local_experts=4, moe_intermediate_size=16, num_experts_per_tok=2,
              shared_expert_intermediate_size=16)
#: model type → overrides of the small config (text families take token ids, vision ones pixels)
HF_FAMILIES: dict[str, dict] = {
    "gpt2": {}, "llama": {}, "mistral": {}, "qwen2": {}, "qwen3": {}, "gemma": {}, "gemma2": {}, "gemma3_text": {},
    "phi": {}, "phi3": {}, "falcon": {}, "opt": {"word_embed_proj_dim": 32}, "gpt_neox": {}, "gptj": {},
    "codegen": {}, "bloom": {}, "olmo": {}, "olmo2": {}, "stablelm": {}, "starcoder2": {}, "granite": {},
    "cohere": {}, "helium": {}, "nemotron": {}, "persimmon": {}, "biogpt": {}, "gpt_bigcode": {},
    "bert": {}, "roberta": {}, "xlm-roberta": {}, "distilbert": {"dim": 32, "hidden_dim": 48, "n_layers": 2,
                                                                   "n_heads": 4},
    "albert": {"embedding_size": 16}, "electra": {"embedding_size": 16}, "deberta-v2": {}, "mpnet": {},
    "ernie": {}, "t5": {}, "bart": {}, "mixtral": {}, "qwen3_moe": {}, "qwen2_moe": {},
    "vit": {}, "deit": {}, "dinov2": {}, "beit": {}, "convnext": {}, "convnextv2": {}, "resnet": {},
    "regnet": {}, "segformer": {"num_encoder_blocks": 2, "num_attention_heads": [1, 2], "sr_ratios": [2, 1],
                                "patch_sizes": [7, 3], "strides": [4, 2], "mlp_ratios": [2, 2],
                                "decoder_hidden_size": 16}, "swin": {"depths": [1, 1], "num_heads": [2, 4], "window_size": 2},
}
HF_VISION = {"vit", "deit", "dinov2", "beit", "convnext", "convnextv2", "resnet", "regnet", "segformer", "swin"}


def _hf_config(model_type: str):
    import transformers as T

    cfg = T.AutoConfig.for_model(model_type)
    for k, v in {**_SMALL, **HF_FAMILIES[model_type]}.items():
        if hasattr(cfg, k):
            try:
                setattr(cfg, k, v)
            except (AttributeError, ValueError, TypeError):
                pass
    return cfg


#: rows of families with a task head (a bare model returns its hidden states, so their width stays):
#: row name → (model type, auto class)
HF_HEADS = {"bert-cls": ("bert", "AutoModelForSequenceClassification"), "llama-lm": ("llama", "AutoModelForCausalLM"),
            "qwen2-lm": ("qwen2", "AutoModelForCausalLM")}


def _hf(model_type: str, auto: str = "AutoModel") -> Case:
    import transformers as T

    from otograph.testing.transformers import norms_in_model_dtype

    cfg = _hf_config(model_type)
    if hasattr(cfg, "_experts_implementation"):  # MoE: the batched experts (no data-dependent loop, any dtype)
        cfg._experts_implementation = "batched_mm"
    torch.manual_seed(0)
    model = getattr(T, auto).from_config(cfg).eval()
    if auto != "AutoModel":  # the hidden size shrinks: HF's RMSNorm would add float32 rounding to a float64 check
        norms_in_model_dtype(model)
    g = torch.Generator().manual_seed(0)

    def batch():
        if model_type in HF_VISION:
            return {"pixel_values": torch.randn(2, 3, 32, 32, generator=g)}
        x = {"input_ids": torch.randint(1, 61, (2, 7), generator=g)}
        if getattr(cfg, "is_encoder_decoder", False):
            x["decoder_input_ids"] = torch.randint(1, 61, (2, 5), generator=g)
        if getattr(cfg, "use_cache", False):
            x["use_cache"] = False
        return x

    return Case(model, batch(), batch(), frontend="export")


def transformers_families() -> Rows:
    return ([(t, lambda t=t: _hf(t), "exact") for t in HF_FAMILIES]
            + [(name, lambda t=t, a=a: _hf(t, a), "exact") for name, (t, a) in HF_HEADS.items()])


# ---- Ultralytics YOLO -----------------------------------------------------------------------------
YOLO_CONFIGS = {"yolov8n": "yolov8n.yaml", "yolo11n": "yolo11n.yaml"}


def _yolo(name: str) -> Case:
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel(YOLO_CONFIGS[name], verbose=False).eval()
    g = torch.Generator().manual_seed(0)
    x, y = (torch.rand(1, 3, 64, 64, generator=g) for _ in range(2))
    return Case(model, x, y, frontend="export")  # the whole model, decoded boxes and class scores included


def yolo() -> Rows:
    return [(n, lambda n=n: _yolo(n), "exact") for n in YOLO_CONFIGS]
