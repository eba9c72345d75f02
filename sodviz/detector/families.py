"""The DETR-family detectors sodviz supports, and what differs between them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Family:
    """How one transformers model type is run, post-processed and captured.

    Attributes:
        model_type: `config.model_type` in transformers.
        name: the name shown to users.
        deformable: True when decoder cross-attention is multi-scale deformable attention
            (sampling points and weights); False for dense attention over one feature map.
        sigmoid_scores: True for sigmoid (focal-loss) class scores, False for a softmax with a
            trailing no-object class. A config's `use_focal_loss`, where present, overrides it.
        processor_class: the PIL-backend image processor built when a checkpoint has none.
        points_from_offsets: deformable only. True when the module computes its sampling locations
            inline (RT-DETRv2, D-FINE, DEIMv2), so sodviz rebuilds them from the captured offsets;
            False when a `MultiScaleDeformableAttention` submodule receives them (RT-DETR,
            Deformable DETR, LW-DETR, RF-DETR, Grounding DINO).
        open_vocabulary: the classes are phrases of a text prompt (Grounding DINO): the model
            scores each query against the prompt's tokens, and a decoder layer also attends to them.
        backbone: "cnn" (stages of strides 4 to 32) or "vit" (a plain transformer: one patch grid,
            several blocks), which decides what an effective receptive field is measured on.
        hybrid_encoder: the model has RT-DETR's hybrid encoder, which CCTM and FINE extend.
    """

    model_type: str
    name: str
    deformable: bool
    sigmoid_scores: bool
    processor_class: str
    points_from_offsets: bool = False
    open_vocabulary: bool = False
    backbone: str = "cnn"
    hybrid_encoder: bool = False

    @property
    def capture(self) -> str:
        """How sodviz captures this family's decoder cross-attention, in a few words."""
        if not self.deformable:
            text = "dense maps from output_attentions"
        elif self.points_from_offsets:
            text = "sampling offsets and weights hooked; locations rebuilt by the module's formula"
        else:
            text = "sampling locations and weights hooked at MultiScaleDeformableAttention"
        return text + ("; attention over the prompt's tokens hooked" if self.open_vocabulary else "")


FAMILIES: dict[str, Family] = {
    family.model_type: family
    for family in (
        Family("rt_detr", "RT-DETR", True, True, "RTDetrImageProcessorPil", hybrid_encoder=True),
        Family(
            "rt_detr_v2", "RT-DETRv2", True, True, "RTDetrImageProcessorPil",
            points_from_offsets=True, hybrid_encoder=True,
        ),
        Family(
            "d_fine", "D-FINE", True, True, "RTDetrImageProcessorPil",
            points_from_offsets=True, hybrid_encoder=True,
        ),
        Family("deformable_detr", "Deformable DETR", True, True, "DeformableDetrImageProcessorPil"),
        Family("detr", "DETR", False, False, "DetrImageProcessorPil"),
        Family("conditional_detr", "Conditional DETR", False, True, "ConditionalDetrImageProcessorPil"),
        Family("dab-detr", "DAB-DETR", False, True, "ConditionalDetrImageProcessorPil"),
        Family("deimv2", "DEIMv2", True, True, "RTDetrImageProcessorPil", points_from_offsets=True),
        Family("lw_detr", "LW-DETR", True, True, "DeformableDetrImageProcessorPil", backbone="vit"),
        # RF-DETR's own processor needs torchvision; its DETR-style resize is DeformableDetr's.
        Family("rf_detr", "RF-DETR", True, True, "DeformableDetrImageProcessorPil", backbone="vit"),
        Family(
            "grounding-dino", "Grounding DINO", True, True, "GroundingDinoImageProcessorPil",
            open_vocabulary=True,
        ),
        Family(
            "mm-grounding-dino", "MM Grounding DINO", True, True, "GroundingDinoImageProcessorPil",
            open_vocabulary=True,
        ),
    )
}  # fmt: skip

# Checkpoints users commonly load; `python -m sodviz models` lists them.
HUB_PRESETS: tuple[tuple[str, str], ...] = (
    ("PekingU/rtdetr_r18vd", "rt_detr"),
    ("PekingU/rtdetr_r50vd", "rt_detr"),
    ("PekingU/rtdetr_r101vd", "rt_detr"),
    ("PekingU/rtdetr_v2_r18vd", "rt_detr_v2"),
    ("PekingU/rtdetr_v2_r50vd", "rt_detr_v2"),
    ("ustc-community/dfine-small-coco", "d_fine"),
    ("ustc-community/dfine-medium-coco", "d_fine"),
    ("ustc-community/dfine-large-coco", "d_fine"),
    ("SenseTime/deformable-detr", "deformable_detr"),
    ("facebook/detr-resnet-50", "detr"),
    ("microsoft/conditional-detr-resnet-50", "conditional_detr"),
    ("IDEA-Research/dab-detr-resnet-50", "dab-detr"),
    ("harshaljanjani/DEIMv2_HGNetv2_N_COCO_Transformers", "deimv2"),
    ("AnnaZhang/lwdetr_small_60e_coco", "lw_detr"),
    ("Roboflow/rf-detr-medium", "rf_detr"),
    ("Roboflow/rf-detr-base", "rf_detr"),
    ("IDEA-Research/grounding-dino-tiny", "grounding-dino"),
    ("openmmlab-community/mm_grounding_dino_tiny_o365v1_goldg_v3det", "mm-grounding-dino"),
    ("openmmlab-community/mm_grounding_dino_base_o365v1_goldg_v3det", "mm-grounding-dino"),
)


def supported_families_text() -> str:
    """One line naming the supported families and their model types, for error messages."""
    return ", ".join(f"{family.name} ({family.model_type})" for family in FAMILIES.values())


def family_for(model_type: str) -> Family:
    """The family of a config's `model_type`.

    Raises:
        ValueError: the model type has no decoder cross-attention sodviz can capture.
    """
    family = FAMILIES.get(model_type)
    if family is None:
        raise ValueError(
            f"model type {model_type!r} is not a supported DETR-family detector with decoder "
            f"cross-attention. Supported families: {supported_families_text()}."
        )
    return family


def input_multiple(config) -> int:
    """What the input's sides must be multiples of: a windowed ViT backbone cuts the patch grid
    into windows (RF-DETR: `num_windows` a side; LW-DETR: `num_windows` in all, a square)."""
    backbone = getattr(config, "backbone_config", None)
    windows = int(getattr(backbone, "num_windows", 0) or 0)
    patch = getattr(backbone, "patch_size", None)
    if not windows or patch is None:
        return 1
    patch = int(patch if isinstance(patch, int) else patch[0])
    side = getattr(backbone, "num_windows_side", None)  # LW-DETR: windows in all, a square of them
    return patch * int(side if side else windows)
