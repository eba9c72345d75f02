"""What an ERF can be measured on, per family, and the feature maps of those stages.

CNN backbones (ResNet, HGNetV2, Swin): `stage1`..`stage4` (strides 4 to 32), then the encoder's
outputs `encoderN`. Plain-ViT backbones without CNN stages (LW-DETR's ViT, RF-DETR's DINOv2):
`blockN`, the patch grid after transformer block N (one stride, the patch size), then `levelN`,
each feature level the projector makes from the blocks, which is what the decoder samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sodviz.detector.loading import Detector

BACKBONE_STAGES = ("stage1", "stage2", "stage3", "stage4")


def is_vit(detector: Detector) -> bool:
    """A plain-ViT backbone (blocks on one patch grid) rather than CNN stages."""
    return detector.family.backbone == "vit"


def encoder_levels(detector: Detector) -> int:
    """How many feature maps the encoder returns: the hybrid encoder's (RT-DETR, D-FINE, DEIMv2),
    the deformable encoder's levels (Deformable DETR, Grounding DINO), else one token grid."""
    config = detector.model.config
    if getattr(config, "encoder_in_channels", None):
        return len(config.encoder_in_channels)
    if detector.family.deformable:
        return int(getattr(config, "num_feature_levels", 1))
    return 1


def available_stages(detector: Detector) -> tuple[str, ...]:
    """Every stage of this detector, shallow to deep."""
    if is_vit(detector):
        config = detector.model.config
        blocks = int(config.backbone_config.num_hidden_layers)
        levels = int(config.num_feature_levels)
        return tuple(f"block{i}" for i in range(1, blocks + 1)) + tuple(f"level{i}" for i in range(levels))
    if detector.family.model_type == "deimv2" and _deimv2_vit(detector):
        raise ValueError("ERF is not measured on DEIMv2's DINOv3 backbone yet (its HGNetV2 backbones work)")
    return BACKBONE_STAGES + tuple(f"encoder{i}" for i in range(encoder_levels(detector)))


def default_stages(detector: Detector) -> tuple[str, ...]:
    """What the ERF page and `erf` show first: the four CNN stages, or the ViT blocks the
    projector reads (the backbone's `out_indices`) and every projected level."""
    if not is_vit(detector):
        return BACKBONE_STAGES
    backbone = _vit_backbone(detector)
    blocks = tuple(f"block{name.removeprefix('stage')}" for name in backbone.out_features)
    return blocks + tuple(s for s in available_stages(detector) if s.startswith("level"))


def stage_description(detector: Detector, stage: str) -> str:
    """What one stage is, for the ERF page and the `erf` command."""
    if stage.startswith("block"):
        patch = _vit_backbone(detector).config.patch_size
        return f"ViT block {stage[5:]}: the {patch}-pixel patch grid after that transformer block"
    if stage.startswith("level"):
        return f"projected level {stage[5:]}: a feature map the decoder samples, made from the ViT blocks"
    if stage.startswith("encoder"):
        return f"encoder output {stage[7:]}: what the decoder attends to"
    return f"backbone {stage}: CNN stage {stage[5:]}"


def vit_stage_features(detector: Detector, pixels: torch.Tensor, stages: Sequence[str]) -> dict:
    """`[1, C, h, w]` maps of ViT stages, on a graph back to `pixels`: blocks from the backbone's
    own un-windowed feature maps (its `out_features` set to them for the call), levels from the
    projector."""
    features: dict[str, torch.Tensor] = {}
    blocks = [s for s in stages if s.startswith("block")]
    backbone = _vit_backbone(detector)
    if blocks:
        kept = list(backbone.out_features)
        backbone.out_features = [f"stage{s[5:]}" for s in blocks]
        try:
            maps = backbone(pixels).feature_maps
        finally:
            backbone.out_features = kept
        features.update(zip(blocks, maps, strict=True))
    if any(s.startswith("level") for s in stages):
        mask = torch.ones(pixels.shape[0], *pixels.shape[-2:], dtype=torch.long, device=pixels.device)
        projected = detector.model.model.backbone(pixels, mask)
        if isinstance(projected[0], torch.Tensor):  # RF-DETR: one (map, mask)
            projected = [projected]
        for index, (level, _) in enumerate(projected):
            features[f"level{index}"] = level
    return features


def _vit_backbone(detector: Detector) -> torch.nn.Module:
    return detector.model.model.backbone.backbone


def _deimv2_vit(detector: Detector) -> bool:
    return getattr(detector.model.config.backbone_config, "model_type", None) == "dinov3_vit"
