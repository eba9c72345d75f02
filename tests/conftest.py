"""Tiny random detectors of every supported family, saved and loaded through the real path."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network

import numpy as np
import pytest
import torch
import transformers
from transformers import (
    AutoModelForObjectDetection,
    AutoModelForZeroShotObjectDetection,
    BertConfig,
    BertTokenizer,
    ConditionalDetrConfig,
    DabDetrConfig,
    DeformableDetrConfig,
    Deimv2Config,
    DetrConfig,
    DFineConfig,
    GroundingDinoConfig,
    HGNetV2Config,
    LwDetrConfig,
    LwDetrViTConfig,
    MMGroundingDinoConfig,
    ResNetConfig,
    RfDetrConfig,
    RfDetrDinov2Config,
    RTDetrConfig,
    RTDetrResNetConfig,
    RTDetrV2Config,
    SwinConfig,
)

from sodviz.detector.families import FAMILIES
from sodviz.detector.loading import Detector, load_detector
from sodviz.modules import FineConfig, ModulesConfig, attach_modules, modules_of, save_modules

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLASS_NAMES = {0: "vehicle", 1: "person", 2: "boat"}
# Families saved without preprocessor_config.json: the loader must build the family default.
WITHOUT_PROCESSOR = {"dab-detr"}


def _resnet(out_features: list[str], config_class=ResNetConfig):
    return config_class(
        embedding_size=8,
        hidden_sizes=[8, 16, 24, 32],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_features=out_features,
    )


def _rt_detr_like(config_class):
    return config_class(
        backbone_config=_resnet(["stage2", "stage3", "stage4"], RTDetrResNetConfig),
        encoder_in_channels=[16, 24, 32],
        decoder_in_channels=[32, 32, 32],
        freeze_backbone_batch_norms=False,
        **_transformer_sizes(),
        decoder_n_points=2,
    )


def _transformer_sizes() -> dict:
    return dict(
        d_model=32,
        encoder_hidden_dim=32,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        decoder_layers=2,
        decoder_attention_heads=2,
        encoder_attention_heads=2,
        num_queries=20,
        num_labels=3,
        id2label=CLASS_NAMES,
    )


def _dense(config_class, **extra):
    sizes = _transformer_sizes()
    del sizes["encoder_hidden_dim"]
    if config_class is DabDetrConfig:
        sizes["hidden_size"] = sizes.pop("d_model")
    return config_class(
        backbone_config=_resnet(["stage4"]), use_timm_backbone=False, encoder_layers=1, **sizes, **extra
    )


def _hgnet():
    return HGNetV2Config(
        stem_channels=[3, 8, 8],
        embedding_size=8,
        hidden_sizes=[16, 24, 32, 48],
        stage_in_channels=[8, 16, 24, 32],
        stage_mid_channels=[8, 8, 16, 16],
        stage_out_channels=[16, 24, 32, 48],
        stage_num_blocks=[1, 1, 1, 1],
        stage_numb_of_layers=[1, 1, 1, 1],
        stage_downsample=[False, True, True, True],
        stage_light_block=[False, False, True, True],
        stage_kernel_size=[3, 3, 5, 5],
        out_features=["stage2", "stage3", "stage4"],
    )


def _vit_detr(config_class, backbone):
    """LW-DETR / RF-DETR: a 2-block windowed ViT, a projector to 2 levels (LW) or 1 (RF)."""
    sizes = {
        k: v for k, v in _transformer_sizes().items() if k in ("d_model", "decoder_ffn_dim", "decoder_layers")
    }
    sizes.update(num_queries=20, num_labels=3, id2label=CLASS_NAMES)
    scales = [0.5, 1.0] if config_class is LwDetrConfig else [1.0]
    return config_class(
        backbone_config=backbone,
        projector_scale_factors=scales,
        decoder_self_attention_heads=2,
        decoder_cross_attention_heads=2,
        decoder_n_points=2,
        group_detr=1,
        **sizes,
    )


# The tiny open-vocabulary models' text vocabulary; `[UNK]` stands for every other word.
TEXT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "a", "the"]
TEXT_VOCAB += ["vehicle", "person", "boat", "car", "truck", "bus", "bicycle", "red", "small", "##s"]


def tiny_tokenizer() -> BertTokenizer:
    return BertTokenizer(vocab={word: i for i, word in enumerate(TEXT_VOCAB)})


def _grounding(config_class):
    sizes = _transformer_sizes()
    del sizes["encoder_hidden_dim"]
    return config_class(
        backbone_config=SwinConfig(
            embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4, out_indices=[2, 3, 4]
        ),
        text_config=BertConfig(
            vocab_size=len(TEXT_VOCAB),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=64,
        ),
        use_timm_backbone=False,
        encoder_layers=1,
        num_feature_levels=4,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=32,
        **sizes,
    )


def tiny_config(model_type: str):
    """A tiny random config (d_model 32, 2 decoder layers, 20 queries, 3 classes) of a family."""
    if model_type == "rt_detr":
        return _rt_detr_like(RTDetrConfig)
    if model_type == "rt_detr_v2":
        return _rt_detr_like(RTDetrV2Config)
    if model_type in ("d_fine", "deimv2"):
        return (DFineConfig if model_type == "d_fine" else Deimv2Config)(
            backbone_config=_hgnet(),
            encoder_in_channels=[24, 32, 48],
            decoder_in_channels=[32, 32, 32],
            freeze_backbone_batch_norms=False,
            **_transformer_sizes(),
            decoder_n_points=[2, 3, 1],  # D-FINE allows a point count per level
        )
    if model_type == "deformable_detr":
        sizes = _transformer_sizes()
        del sizes["encoder_hidden_dim"]
        return DeformableDetrConfig(
            backbone_config=_resnet(["stage2", "stage3", "stage4"]),
            use_timm_backbone=False,
            encoder_layers=1,
            num_feature_levels=4,
            encoder_n_points=2,
            decoder_n_points=2,
            **sizes,
        )
    if model_type == "detr":
        return _dense(DetrConfig)
    if model_type == "conditional_detr":
        return _dense(ConditionalDetrConfig)
    if model_type == "dab-detr":
        return _dense(DabDetrConfig)
    if model_type == "lw_detr":
        backbone = LwDetrViTConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=64, pretrain_image_size=64,
            patch_size=16, num_windows=4, out_indices=[1, 2], window_block_indices=[0],
        )  # fmt: skip
        return _vit_detr(LwDetrConfig, backbone)
    if model_type == "rf_detr":
        backbone = RfDetrDinov2Config(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=56, patch_size=14,
            num_windows=2, out_indices=[1, 2], window_block_indices=[0],
        )  # fmt: skip
        return _vit_detr(RfDetrConfig, backbone)
    if model_type == "grounding-dino":
        return _grounding(GroundingDinoConfig)
    if model_type == "mm-grounding-dino":
        return _grounding(MMGroundingDinoConfig)
    raise ValueError(model_type)


def tiny_processor(model_type: str):
    processor = getattr(transformers, FAMILIES[model_type].processor_class)()
    if processor.size.height:  # fixed-size (RT-DETR family)
        return type(processor)(size={"height": 96, "width": 96})
    return type(processor)(size={"shortest_edge": 96, "longest_edge": 160})


def build_tiny_model(model_type: str, seed: int = 0) -> torch.nn.Module:
    """A tiny model whose every parameter is perturbed, so attention is not the init pattern."""
    torch.manual_seed(seed)
    auto_class = AutoModelForZeroShotObjectDetection if FAMILIES[model_type].open_vocabulary else None
    model = (auto_class or AutoModelForObjectDetection).from_config(tiny_config(model_type))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    return model.eval()


def save_tiny_model(model_type: str, folder: Path, *, seed: int = 0) -> Path:
    build_tiny_model(model_type, seed).save_pretrained(folder)
    if model_type not in WITHOUT_PROCESSOR:
        tiny_processor(model_type).save_pretrained(folder)
    if FAMILIES[model_type].open_vocabulary:
        tiny_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_models")
    return {model_type: save_tiny_model(model_type, root / model_type) for model_type in FAMILIES}


@pytest.fixture(scope="session")
def tiny_detectors(tiny_model_dirs) -> dict[str, Detector]:
    return {model_type: load_detector(folder) for model_type, folder in tiny_model_dirs.items()}


def save_tiny_module_model(folder: Path, config: ModulesConfig, *, seed: int = 0) -> Path:
    """A tiny RT-DETR with CCTM / FINE beside it, their weights perturbed away from the identity."""
    save_tiny_model("rt_detr", folder, seed=seed)
    model = attach_modules(build_tiny_model("rt_detr", seed), config)
    with torch.no_grad():
        for parameter in modules_of(model).parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    save_modules(model, folder)
    return folder


@pytest.fixture(scope="session")
def tiny_module_detector(tmp_path_factory) -> Detector:
    """A tiny RT-DETR carrying FINE and CCTM (trained with Boost, as the config records)."""
    config = ModulesConfig(cctm=True, fine=FineConfig(), boost={"alpha": 0.75, "gamma": 2.0, "beta": 0.5})
    return load_detector(save_tiny_module_model(tmp_path_factory.mktemp("tiny_fusion"), config))


@pytest.fixture(params=list(FAMILIES))
def detector(request, tiny_detectors) -> Detector:
    return tiny_detectors[request.param]


@pytest.fixture(params=[t for t, f in FAMILIES.items() if f.deformable])
def deformable_detector(request, tiny_detectors) -> Detector:
    return tiny_detectors[request.param]


@pytest.fixture
def image() -> np.ndarray:
    """A non-square RGB test image with some structure."""
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 60, size=(120, 200, 3), dtype=np.uint8)
    picture[30:60, 40:90] = (220, 40, 40)
    picture[70:110, 120:190] = (40, 200, 60)
    return picture


def shared_images() -> list[Path]:
    """Real aerial photographs from ../shared/data (never committed)."""
    return sorted(SHARED_DATA.glob("*/images/*"))


requires_shared_data = pytest.mark.skipif(
    not shared_images(), reason=f"real photographs not found in {SHARED_DATA} (only on the team's machines)"
)


@pytest.fixture(scope="session")
def demo_detector() -> Detector:
    """The embedded demo detector (assets/models/sodviz-demo): real weights, for checks that need
    a detector that actually finds the generated objects."""
    return load_detector("demo")
