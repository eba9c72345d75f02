"""Uniform slicing (SAHI-style): a grid of overlapping crops with a counted number of forward passes."""

from __future__ import annotations

import math

import numpy as np
import supervision as sv

from sodviz.cache import DEFAULT_CACHE, InferenceCache
from sodviz.crops import detect_crops
from sodviz.fusion import fuse_detections
from sodviz.inference import run_inference, to_detections
from sodviz.models import Detector


def slice_grid(image_hw: tuple[int, int], num_slices: int, *, overlap: float = 0.2) -> np.ndarray:
    """int64 `(num_slices, 4)` xyxy crops of a rows x cols grid covering the image, neighbours
    overlapping by `overlap` of a slice side; rows x cols = num_slices exactly, split to keep the
    slices as square as the image allows (1 -> the whole image, 2 -> halves, 4 -> 2x2, 6 -> 2x3).
    """
    if num_slices < 1:
        return np.zeros((0, 4), np.int64)
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must lie in [0, 1), got {overlap}")
    height, width = image_hw
    best = None
    for rows in range(1, num_slices + 1):
        if num_slices % rows:
            continue
        cols = num_slices // rows
        tile_h = height / (rows - (rows - 1) * overlap)
        tile_w = width / (cols - (cols - 1) * overlap)
        squareness = abs(math.log(tile_w / tile_h))
        if best is None or squareness < best[0]:
            best = (squareness, rows, cols, tile_h, tile_w)
    _, rows, cols, tile_h, tile_w = best
    crops = []
    for row in range(rows):
        for col in range(cols):
            top, left = row * tile_h * (1 - overlap), col * tile_w * (1 - overlap)
            y0, x0 = math.floor(top), math.floor(left)
            y1 = height if row == rows - 1 else min(height, math.ceil(top + tile_h))
            x1 = width if col == cols - 1 else min(width, math.ceil(left + tile_w))
            crops.append([x0, y0, x1, y1])
    return np.array(crops, np.int64)


def slices_for_budget(forward_passes: int, *, with_full_image: bool = True) -> int:
    """How many slices a budget of forward passes buys (the full-image pass counted when used)."""
    return max(0, forward_passes - int(with_full_image))


def run_slicing(
    detector: Detector,
    image: np.ndarray,
    *,
    forward_passes: int,
    overlap: float = 0.2,
    with_full_image: bool = True,
    score_threshold: float = 0.01,
    fusion_iou: float = 0.5,
    small_limit: float = 32.0,
    input_size: int | None = None,
    cache: InferenceCache | None = DEFAULT_CACHE,
) -> sv.Detections:
    """Uniform slicing at a budget of forward passes: the full-image pass (when used) plus a grid
    of `forward_passes - 1` slices, fused with the same size-aware fusion as ViCrop-Det."""
    crops = slice_grid(
        image.shape[:2], slices_for_budget(forward_passes, with_full_image=with_full_image), overlap=overlap
    )
    sliced = detect_crops(
        detector, image, crops, input_size=input_size, score_threshold=score_threshold, cache=cache
    ).detections
    if not with_full_image:
        return sliced.with_nms(threshold=fusion_iou) if len(sliced) else sliced
    result = run_inference(detector, image, input_size=input_size, cache=cache)
    base = to_detections(result, score_threshold=score_threshold)
    return fuse_detections(base, sliced, iou=fusion_iou, small_limit=small_limit)
