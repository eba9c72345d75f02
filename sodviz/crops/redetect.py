"""Re-detection of crops cut from the native-resolution image: one batched pass, boxes mapped back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import supervision as sv

from sodviz.boxes import crop_to_image
from sodviz.cache import DEFAULT_CACHE, InferenceCache
from sodviz.detector.inference import inference_key, run_inference_batch, to_detections
from sodviz.detector.loading import Detector
from sodviz.detector.preprocess import resolve_input_size
from sodviz.types import InferenceResult


@dataclass(frozen=True, slots=True)
class CropDetections:
    """Detections found in crops, in original-image pixels.

    Attributes:
        detections: `sv.Detections` with `data["crop_index"]`, `data["query_index"]` (in its
            crop's result), `data["class_name"]` and `data["at_border"]` (cut by a crop edge
            inside the image; their confidence is multiplied by `border_factor`).
        crops_xyxy: int64 `(K, 4)`, the crops.
        results: one `InferenceResult` per crop, in the crop's own pixels.
        model_calls: model calls this call made: 0 when every crop came from the cache, else 1
            (one batch), plus one per crop evicted from the cache while this call ran.
    """

    detections: sv.Detections
    crops_xyxy: np.ndarray
    results: tuple[InferenceResult, ...]
    model_calls: int


def detect_crops(
    detector: Detector,
    image: np.ndarray,
    crops_xyxy: np.ndarray,
    *,
    input_size: int | None = None,
    score_threshold: float = 0.05,
    border_margin: float = 2.0,
    border_factor: float = 0.5,
    cache: InferenceCache | None = DEFAULT_CACHE,
) -> CropDetections:
    """Detect in each crop of `image` (uint8 RGB at native resolution) and map boxes back.

    All crops not in the cache go through the model in one batched forward pass, each resized
    to the model input. Boxes are clamped to their crop. A box within `border_margin` crop pixels
    of a crop edge that is not the image's edge is probably cut: its confidence is multiplied by
    `border_factor` (1 keeps it as it is, 0 drops it).
    """
    crops = checked_crops(crops_xyxy, image.shape[:2])
    height, width = image.shape[:2]
    size = resolve_input_size(detector, input_size)
    pixels = [image[y0:y1, x0:x1] for x0, y0, x1, y1 in crops]
    results, model_calls = _cached_batch(detector, pixels, size=size, cache=cache)
    parts = [
        _crop_detections(
            result,
            crop,
            index,
            image_hw=(height, width),
            threshold=score_threshold,
            margin=border_margin,
            factor=border_factor,
        )
        for index, (result, crop) in enumerate(zip(results, crops, strict=True))
    ]
    return CropDetections(
        detections=merged_crop_detections(parts), crops_xyxy=crops, results=tuple(results),
        model_calls=model_calls,
    )  # fmt: skip


def checked_crops(crops_xyxy, image_hw: tuple[int, int]) -> np.ndarray:
    """int64 `(K, 4)` crops, refused with a sentence unless each lies inside the image with a
    positive width and height."""
    crops = np.asarray(crops_xyxy, np.int64).reshape(-1, 4)
    height, width = image_hw
    if len(crops) and (
        (crops[:, :2] < 0).any() or (crops[:, 2] > width).any() or (crops[:, 3] > height).any()
    ):
        raise ValueError(f"crops must lie inside the {width}x{height} image, got {crops.tolist()}")
    if len(crops) and ((crops[:, 2] <= crops[:, 0]) | (crops[:, 3] <= crops[:, 1])).any():
        raise ValueError(f"crops must have positive width and height, got {crops.tolist()}")
    return crops


def merged_crop_detections(parts: list[sv.Detections]) -> sv.Detections:
    """The crops' (or canvases') detections as one set, with its data columns even when empty."""
    detections = sv.Detections.merge(parts) if parts else empty_crop_detections()
    if not len(detections):  # merging only empty parts drops their data columns
        detections = empty_crop_detections()
    return detections


def _cached_batch(detector, pixels, *, size: int, cache: InferenceCache | None) -> tuple[list, int]:
    """Results for every crop; the missing ones computed in one batch and then cached."""
    if cache is None:
        return (run_inference_batch(detector, pixels, input_size=size) if pixels else []), int(bool(pixels))
    keys = [inference_key(detector, crop, size) for crop in pixels]
    missing = [i for i, key in enumerate(keys) if key not in cache]
    batch = run_inference_batch(detector, [pixels[i] for i in missing], input_size=size)
    computed = dict(zip(missing, batch, strict=True))

    calls = [int(bool(missing))]

    def compute(i: int) -> InferenceResult:
        if i in computed:
            return computed[i]
        calls[0] += 1  # evicted since the check: recomputed alone
        return run_inference_batch(detector, [pixels[i]], input_size=size)[0]

    results = [cache.get_or_compute(key, lambda i=i: compute(i)) for i, key in enumerate(keys)]
    return results, calls[0]


def _crop_detections(result, crop, index: int, *, image_hw, threshold: float, margin: float, factor: float):
    detections = to_detections(result, score_threshold=threshold)
    crop_w, crop_h = int(crop[2] - crop[0]), int(crop[3] - crop[1])
    boxes = np.clip(detections.xyxy.astype(np.float64), 0, [crop_w, crop_h, crop_w, crop_h])
    cut = cut_by_crop_edge(boxes, crop, image_hw, margin=margin)
    crop_index = np.full(len(boxes), index, np.int64)
    return detections_in_crop(detections, crop_to_image(boxes, crop), crop_index, cut, factor)


def detections_in_crop(
    detections: sv.Detections, boxes_xyxy: np.ndarray, crop_index: np.ndarray, cut: np.ndarray, factor: float
) -> sv.Detections:
    """A crop pass's detections with their boxes mapped to the image (`boxes_xyxy`): the ones cut
    by a crop edge (`cut`) get their confidence times `factor`, and those left at 0 are dropped."""
    confidence = detections.confidence * np.where(cut, factor, 1.0).astype(np.float32)
    keep = confidence > 0
    return sv.Detections(
        xyxy=np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)[keep],
        confidence=confidence[keep],
        class_id=detections.class_id[keep],
        data={
            "query_index": detections.data["query_index"][keep],
            "class_name": detections.data["class_name"][keep],
            "crop_index": np.asarray(crop_index, np.int64)[keep],
            "at_border": np.asarray(cut, bool)[keep],
        },
    )


def cut_by_crop_edge(
    boxes_xyxy: np.ndarray, crop_xyxy, image_hw: tuple[int, int], *, margin: float
) -> np.ndarray:
    """bool `(N,)`: boxes (in the crop's pixels) within `margin` of an edge of the crop that lies
    inside the image, so probably cut by it. An edge on the image's border cuts nothing."""
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    x0, y0, x1, y1 = (int(v) for v in crop_xyxy)
    cut = np.zeros(len(boxes), bool)
    if x0 > 0:
        cut |= boxes[:, 0] <= margin
    if y0 > 0:
        cut |= boxes[:, 1] <= margin
    if x1 < image_hw[1]:
        cut |= boxes[:, 2] >= (x1 - x0) - margin
    if y1 < image_hw[0]:
        cut |= boxes[:, 3] >= (y1 - y0) - margin
    return cut


def empty_crop_detections() -> sv.Detections:
    return sv.Detections(
        xyxy=np.zeros((0, 4), np.float32),
        confidence=np.zeros(0, np.float32),
        class_id=np.zeros(0, np.int64),
        data={
            "query_index": np.zeros(0, np.int64),
            "class_name": np.zeros(0, str),
            "crop_index": np.zeros(0, np.int64),
            "at_border": np.zeros(0, bool),
        },
    )
