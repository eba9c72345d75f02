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
from sodviz.detector.preprocess import is_fixed_size, prepare_inputs, resolve_input_size
from sodviz.detector.threads import run_model_work
from sodviz.types import DeformableAttention, DenseAttention, InferenceResult, InputTransform, TextAttention


def run_inference(
    detector: Detector,
    image: np.ndarray,
    *,
    input_size: int | None = None,
    letterbox: bool = False,
    cache: InferenceCache | None = DEFAULT_CACHE,
) -> InferenceResult:
    """Run the detector once on an image and keep all queries (no threshold).

    Args:
        detector: from `load_detector`.
        image: uint8 `(H, W, 3)` RGB, any size and aspect ratio.
        input_size: model input size in pixels (square side, or shortest edge for aspect-keeping
            families); None for the detector's default.
        letterbox: for fixed-size families, keep the image's aspect: resize it to fit the input
            and pad the rest (black, bottom and right) instead of squashing it (see
            `prepare_inputs`). Aspect-keeping families keep their aspect anyway.
        cache: where results are kept, keyed by (detector hash, image hash, input size); None to
            always run the model.
    """
    size = resolve_input_size(detector, input_size)
    letterbox = letterbox and is_fixed_size(detector.processor)
    return cached(
        cache,
        lambda: inference_key(detector, image, size, letterbox=letterbox),
        lambda: run_inference_batch(detector, [image], input_size=size, letterbox=letterbox)[0],
    )


def inference_key(
    detector: Detector, image: np.ndarray, input_size: int, *, letterbox: bool = False
) -> tuple:
    """The cache key of one threshold-free forward pass: (detector hash, image hash, input size).
    Crops re-detected in a batch use it too, so every pass of the same pixels is one entry."""
    key = (detector.content_hash, image_hash(image), input_size)
    return (*key, "letterbox") if letterbox else key


def run_inference_batch(
    detector: Detector,
    images: Sequence[np.ndarray],
    *,
    input_size: int | None = None,
    letterbox: bool = False,
) -> list[InferenceResult]:
    """Run several images in one batched forward pass (no cache); one result per image."""
    if not images:
        return []
    inputs, transforms = prepare_inputs(detector, images, input_size=input_size, letterbox=letterbox)
    outputs, capture = forward_with_capture(detector, inputs)
    attentions = _split_attention(detector, outputs, capture, len(images))
    sigmoid = uses_sigmoid(detector.model.config, default=detector.family.sigmoid_scores)
    logits, text = outputs.logits, [None] * len(images)
    if detector.prompt is not None:
        logits = detector.prompt.phrase_logits(logits)
        text = _text_attention(detector, capture, len(images))
    predictions = decode_predictions(logits, outputs.pred_boxes, transforms, sigmoid=sigmoid)
    return [
        InferenceResult(
            boxes_xyxy=predictions[i][0],
            class_scores=predictions[i][1],
            attention=attentions[i],
            transform=transform,
            class_names=detector.class_names,
            family=detector.family.model_type,
            text_attention=text[i],
        )
        for i, transform in enumerate(transforms)
    ]


def _text_attention(detector: Detector, capture: AttentionCapture, batch_size: int) -> list[TextAttention]:
    prompt = detector.prompt
    weights = capture.text()[..., : len(prompt.tokens)].float().cpu().numpy()
    return [
        TextAttention(weights=weights[i], tokens=prompt.tokens, token_phrase=prompt.token_phrase)
        for i in range(batch_size)
    ]


def forward_with_capture(detector: Detector, inputs: dict[str, torch.Tensor]):
    """The model's forward pass with cross-attention capture; returns (outputs, capture)."""
    dense = not detector.family.deformable

    def forward():
        with torch.inference_mode(), AttentionCapture(detector.model, detector.family) as capture:
            outputs = detector.model(**inputs, output_attentions=dense)
        return outputs, capture

    return run_model_work(detector.lock, forward)


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
        transforms: one per image (letterboxed: boxes centred in the padding score 0, all clipped).
        sigmoid: sigmoid scores; else softmax without the no-object class.

    Returns:
        per image: float32 `(Q, 4)` boxes xyxy in original pixels, float32 `(Q, classes)` probabilities.
    """
    probabilities = logits.sigmoid() if sigmoid else logits.softmax(dim=-1)[..., :-1]
    probabilities = probabilities.float().cpu().numpy()
    boxes = pred_boxes.float().cpu().numpy()
    return [_in_image(boxes_to_image(boxes[i], t), probabilities[i], t) for i, t in enumerate(transforms)]


def _in_image(
    boxes_xyxy: np.ndarray, probabilities: np.ndarray, transform: InputTransform
) -> tuple[np.ndarray, np.ndarray]:
    """A letterboxed input has black padding the model may "detect" in: queries whose box centre
    lies in the padding score 0, and every box is clipped to the image. Other inputs unchanged."""
    if not transform.letterboxed:
        return boxes_xyxy, probabilities
    height, width = transform.image_hw
    cx, cy = (boxes_xyxy[:, 0] + boxes_xyxy[:, 2]) / 2, (boxes_xyxy[:, 1] + boxes_xyxy[:, 3]) / 2
    padding = (cx < 0) | (cx > width) | (cy < 0) | (cy > height)
    probabilities = np.where(padding[:, None], 0.0, probabilities).astype(np.float32)
    clipped = np.clip(boxes_xyxy, 0, [width, height, width, height]).astype(np.float32)
    return clipped, probabilities


def boxes_to_image(boxes_cxcywh: np.ndarray, transform: InputTransform) -> np.ndarray:
    """Normalised `(N, 4)` cxcywh (relative to the resized image; to the whole input when
    letterboxed) -> float32 xyxy original pixels."""
    boxes = cxcywh_to_xyxy(boxes_cxcywh)
    if transform.letterboxed:
        input_h, input_w = transform.input_hw
        return transform.input_to_image(boxes * np.array([input_w, input_h, input_w, input_h], np.float64))
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
