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
            inline (RT-DETRv2, D-FINE), so sodviz rebuilds them from the captured offsets; False
            when a `MultiScaleDeformableAttention` submodule receives them (RT-DETR, Deformable DETR).
    """

    model_type: str
    name: str
    deformable: bool
    sigmoid_scores: bool
    processor_class: str
    points_from_offsets: bool = False


FAMILIES: dict[str, Family] = {
    family.model_type: family
    for family in (
        Family("rt_detr", "RT-DETR", True, True, "RTDetrImageProcessorPil"),
        Family("rt_detr_v2", "RT-DETRv2", True, True, "RTDetrImageProcessorPil", points_from_offsets=True),
        Family("d_fine", "D-FINE", True, True, "RTDetrImageProcessorPil", points_from_offsets=True),
        Family("deformable_detr", "Deformable DETR", True, True, "DeformableDetrImageProcessorPil"),
        Family("detr", "DETR", False, False, "DetrImageProcessorPil"),
        Family("conditional_detr", "Conditional DETR", False, True, "ConditionalDetrImageProcessorPil"),
        Family("dab-detr", "DAB-DETR", False, True, "ConditionalDetrImageProcessorPil"),
    )
}

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
