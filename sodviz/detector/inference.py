"""One threshold-free forward pass -> `InferenceResult` with every query and its cross-attention."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import supervision as sv
import torch

from sodviz.boxes import cxcywh_to_xyxy
from sodviz.cache import DEFAULT_CACHE, InferenceCache, cached, image_hash
from sodviz.detector.capture import AttentionCapture
from sodviz.detector.loading import Detector
from sodviz.types import DeformableAttention, DenseAttention, InferenceResult, InputTransform


def run_inference(
    detector: Detector,
    image: np.ndarray,
    *,
    input_size: int | None = None,
    cache: InferenceCache | None = DEFAULT_CACHE,
) -> InferenceResult:
    """Run the detector once on an image and keep all queries (no threshold).

    Args:
        detector: from `load_detector`.
        image: uint8 `(H, W, 3)` RGB, any size and aspect ratio.
        input_size: model input size in pixels (square side, or shortest edge for aspect-keeping
            families); None for the detector's default.
        cache: where results are kept, keyed by (detector hash, image hash, input size); None to
            always run the model.
    """
    size = resolve_input_size(detector, input_size)
    return cached(
        cache,
        lambda: inference_key(detector, image, size),
        lambda: run_inference_batch(detector, [image], input_size=size)[0],
    )


def inference_key(detector: Detector, image: np.ndarray, input_size: int) -> tuple:
    """The cache key of one threshold-free forward pass: (detector hash, image hash, input size).
    Crops re-detected in a batch use it too, so every pass of the same pixels is one entry."""
    return (detector.content_hash, image_hash(image), input_size)


def run_inference_batch(
    detector: Detector, images: Sequence[np.ndarray], *, input_size: int | None = None
) -> list[InferenceResult]:
    """Run several images in one batched forward pass (no cache); one result per image."""
    if not images:
        return []
    inputs, transforms = prepare_inputs(detector, images, input_size=input_size)
    outputs, capture = forward_with_capture(detector, inputs)
    attentions = _split_attention(detector, outputs, capture, len(images))
    sigmoid = uses_sigmoid(detector.model.config, default=detector.family.sigmoid_scores)
    predictions = decode_predictions(outputs.logits, outputs.pred_boxes, transforms, sigmoid=sigmoid)
    return [
        InferenceResult(
            boxes_xyxy=predictions[i][0],
            class_scores=predictions[i][1],
            attention=attentions[i],
            transform=transform,
            class_names=detector.class_names,
            family=detector.family.model_type,
        )
        for i, transform in enumerate(transforms)
    ]


def resolve_input_size(detector: Detector, input_size: int | None) -> int:
    """The input size to use: the detector's default when None."""
    if input_size is None:
        return detector.input_size
    if int(input_size) < 32:
        raise ValueError(f"input_size must be at least 32 pixels, got {input_size}")
    return int(input_size)


def prepare_inputs(
    detector: Detector, images: Sequence[np.ndarray], *, input_size: int | None = None
) -> tuple[dict[str, torch.Tensor], list[InputTransform]]:
    """Preprocess with the detector's own image processor; record each image's exact transform."""
    for image in images:
        _check_image(image)
    size = resolve_input_size(detector, input_size)
    inputs = detector.processor(
        images=list(images),
        size=processor_size(detector.processor, size),
        return_tensors="pt",
        input_data_format="channels_last",
    )
    input_hw = tuple(int(v) for v in inputs["pixel_values"].shape[-2:])
    transforms = []
    for i, image in enumerate(images):
        if "pixel_mask" in inputs:
            mask = inputs["pixel_mask"][i].bool()
            resized_hw = (int(mask.any(dim=1).sum()), int(mask.any(dim=0).sum()))
        else:
            resized_hw = input_hw
        transforms.append(InputTransform(image_hw=image.shape[:2], resized_hw=resized_hw, input_hw=input_hw))
    device = next(detector.model.parameters()).device
    return {name: value.to(device) for name, value in inputs.items()}, transforms


def processor_size(processor: object, input_size: int) -> dict[str, int]:
    """The processor's `size` argument for an input size, in the processor's own style.

    Fixed-size processors (RT-DETR family) get `input_size` as height, width scaled alike;
    aspect-keeping ones (DETR family) get it as the shortest edge, the longest edge scaled alike.
    """
    size = processor.size
    if getattr(size, "height", None) and getattr(size, "width", None):
        return {"height": input_size, "width": round(input_size * size.width / size.height)}
    if getattr(size, "shortest_edge", None):
        longest = size.longest_edge or round(size.shortest_edge * 1333 / 800)
        return {"shortest_edge": input_size, "longest_edge": round(input_size * longest / size.shortest_edge)}
    raise ValueError(f"cannot set an input size on processor size {size}")


def forward_with_capture(detector: Detector, inputs: dict[str, torch.Tensor]):
    """The model's forward pass with cross-attention capture; returns (outputs, capture)."""
    dense = not detector.family.deformable
    with detector.lock, torch.inference_mode(), AttentionCapture(detector.model, detector.family) as capture:
        outputs = detector.model(**inputs, output_attentions=dense)
    return outputs, capture


def uses_sigmoid(model_config: object, *, default: bool) -> bool:
    """Whether a model's class scores are sigmoids (focal-loss heads) rather than a softmax."""
    return bool(getattr(model_config, "use_focal_loss", default))


def decode_predictions(
    logits: torch.Tensor, pred_boxes: torch.Tensor, transforms: Sequence[InputTransform], *, sigmoid: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The post-processing of every forward pass, inference and training evaluation alike.

    Args:
        logits: `[B, Q, classes (+1 no-object for softmax heads)]`.
        pred_boxes: `[B, Q, 4]` normalised cxcywh, relative to the resized image.
        transforms: one per image.
        sigmoid: sigmoid scores; else softmax without the no-object class.

    Returns:
        per image: float32 `(Q, 4)` boxes xyxy in original pixels, float32 `(Q, classes)` probabilities.
    """
    probabilities = logits.sigmoid() if sigmoid else logits.softmax(dim=-1)[..., :-1]
    probabilities = probabilities.float().cpu().numpy()
    boxes = pred_boxes.float().cpu().numpy()
    return [(boxes_to_image(boxes[i], t), probabilities[i]) for i, t in enumerate(transforms)]


def boxes_to_image(boxes_cxcywh: np.ndarray, transform: InputTransform) -> np.ndarray:
    """Normalised `(N, 4)` cxcywh (relative to the resized image) -> float32 xyxy original pixels."""
    boxes = cxcywh_to_xyxy(boxes_cxcywh)
    image_h, image_w = transform.image_hw
    return (boxes * np.array([image_w, image_h, image_w, image_h], dtype=np.float64)).astype(np.float32)


def _split_attention(detector: Detector, outputs, capture: AttentionCapture, batch_size: int) -> list:
    if detector.family.deformable:
        locations, weights, level_shapes = capture.deformable()
        locations = locations.float().cpu().numpy()
        weights = weights.float().cpu().numpy()
        shapes = np.array(level_shapes, dtype=np.int64)
        return [
            DeformableAttention(locations=locations[i], weights=weights[i], level_shapes=shapes)
            for i in range(batch_size)
        ]
    grid_h, grid_w = capture.grid_hw
    stacked = torch.stack(list(outputs.cross_attentions), dim=1)  # [B, layers, heads, Q, h*w]
    if stacked.shape[-1] != grid_h * grid_w:
        raise RuntimeError(f"cross-attention has {stacked.shape[-1]} keys, feature grid is {grid_h}x{grid_w}")
    weights = stacked.reshape(*stacked.shape[:-1], grid_h, grid_w).float().cpu().numpy()
    return [DenseAttention(weights=weights[i]) for i in range(batch_size)]


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(
            f"expected an RGB uint8 image of shape (H, W, 3), got shape {shape} and dtype {dtype}"
        )
    if min(image.shape[:2]) < 1:
        raise ValueError(f"image is empty: shape {image.shape}")


def to_detections(
    result: InferenceResult,
    *,
    score_threshold: float = 0.0,
    classes: Iterable[int] | None = None,
    nms: float | None = None,
) -> sv.Detections:
    """Thresholded detections (one per query, its best class), linked to their queries.

    Args:
        result: from `run_inference`.
        score_threshold: keep queries whose best class score is at least this.
        classes: keep only these class ids; None keeps all.
        nms: IoU threshold for per-class non-max suppression; None for none (DETRs rarely need it).

    Returns:
        `sv.Detections` sorted by confidence, with `data["query_index"]` (int64) and
        `data["class_name"]`.
    """
    scores, labels = result.scores, result.labels
    keep = scores >= score_threshold
    if classes is not None:
        keep &= np.isin(labels, np.fromiter(classes, dtype=np.int64))
    query_index = np.flatnonzero(keep)
    query_index = query_index[np.argsort(-scores[query_index], kind="stable")]
    names = np.array(result.class_names, dtype=object)
    detections = sv.Detections(
        xyxy=result.boxes_xyxy[query_index].reshape(-1, 4),
        confidence=scores[query_index].astype(np.float32),
        class_id=labels[query_index].astype(np.int64),
        data={
            "query_index": query_index.astype(np.int64),
            "class_name": names[labels[query_index]].astype(str),
        },
    )
    if nms is not None and len(detections):
        detections = detections.with_nms(threshold=nms, class_agnostic=False)
    return detections
