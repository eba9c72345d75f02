"""Box geometry, written once: format conversions, sizes, crop windows and crop <-> image offsets.

Boxes are float `(N, 4)` arrays; the format is in the name (`xyxy`, `xywh` as COCO's `bbox`,
`cxcywh` as DETR's normalised predictions).
"""

from __future__ import annotations

import math

import numpy as np


def xywh_to_xyxy(boxes_xywh: np.ndarray) -> np.ndarray:
    """float64 `(N, 4)` xyxy from COCO-style `(N, 4)` (or one `(4,)`) xywh boxes."""
    boxes = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def xyxy_to_xywh(boxes_xyxy: np.ndarray) -> np.ndarray:
    """float64 `(N, 4)` COCO-style xywh from `(N, 4)` xyxy boxes."""
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def cxcywh_to_xyxy(boxes_cxcywh: np.ndarray) -> np.ndarray:
    """`(N, 4)` xyxy from `(N, 4)` centre-size boxes, in the same units and dtype."""
    center, size = boxes_cxcywh[:, :2], boxes_cxcywh[:, 2:]
    return np.concatenate([center - size / 2, center + size / 2], axis=1)


def box_size(boxes_xyxy: np.ndarray) -> np.ndarray:
    """float64 `(N,)`: sqrt of each box's area (0 for empty boxes), the size every bucket uses."""
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    return np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))


def bbox_size(bbox_xywh) -> float:
    """sqrt(w * h) of one COCO `bbox` `[x, y, w, h]`."""
    return math.sqrt(bbox_xywh[2] * bbox_xywh[3])


def crop_to_image(boxes_xyxy: np.ndarray, crop_xyxy) -> np.ndarray:
    """float32 `(N, 4)`: boxes in a crop's pixels moved to the pixels of the image it was cut from."""
    x0, y0 = float(crop_xyxy[0]), float(crop_xyxy[1])
    return (np.asarray(boxes_xyxy, np.float64).reshape(-1, 4) + np.array([x0, y0, x0, y0])).astype(np.float32)


def image_to_crop(boxes_xyxy: np.ndarray, crop_xyxy) -> np.ndarray:
    """float32 `(N, 4)`: image-pixel boxes in the pixels of a crop (the inverse of `crop_to_image`)."""
    x0, y0 = float(crop_xyxy[0]), float(crop_xyxy[1])
    return (np.asarray(boxes_xyxy, np.float64).reshape(-1, 4) - np.array([x0, y0, x0, y0])).astype(np.float32)


def round_into_image(boxes_xyxy: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """int64 `(N, 4)`: boxes rounded to whole pixels and clipped to the image (windows as crops)."""
    boxes = np.round(np.asarray(boxes_xyxy, np.float64)).astype(np.int64).reshape(-1, 4)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, image_hw[1])
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, image_hw[0])
    return boxes


def crop_window(
    box_xyxy: np.ndarray, image_hw: tuple[int, int], *, factor: float, min_side: int
) -> tuple[int, int, int, int]:
    """`(x0, y0, x1, y1)` int square window around a box: `factor` times its longer side, at least
    `min_side`, moved inside the image (smaller only when the image is)."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    height, width = image_hw
    side = min(max(min_side, factor * max(x1 - x0, y1 - y0)), height, width)
    left = int(np.clip((x0 + x1) / 2 - side / 2, 0, width - side))
    top = int(np.clip((y0 + y1) / 2 - side / 2, 0, height - side))
    return left, top, left + int(side), top + int(side)


def cell_coverage(low: float, high: float, cells: int) -> np.ndarray:
    """float64 `(cells,)`: the fraction of each unit cell [i, i + 1) inside [low, high] (one axis
    of a box over a grid of pixels or feature cells)."""
    edges = np.arange(cells)
    return np.clip(np.minimum(edges + 1, high) - np.maximum(edges, low), 0, 1)


def intersection_area(box_xyxy: np.ndarray, others_xyxy: np.ndarray) -> np.ndarray:
    """float64 `(M,)`: the area one box shares with each of `others_xyxy` `(M, 4)`."""
    box = np.asarray(box_xyxy, np.float64)
    others = np.asarray(others_xyxy, np.float64).reshape(-1, 4)
    width = np.minimum(others[:, 2], box[2]) - np.maximum(others[:, 0], box[0])
    height = np.minimum(others[:, 3], box[3]) - np.maximum(others[:, 1], box[1])
    return np.clip(width, 0, None) * np.clip(height, 0, None)


def overlap_matrix(a: np.ndarray, b: np.ndarray, metric: str = "iou") -> np.ndarray:
    """float64 `(len(a), len(b))`: IoU, or intersection over the smaller area ("ios"), of xyxy
    boxes; 0 where the denominator is 0."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    if metric == "iou":
        denominator = area_a[:, None] + area_b[None, :] - inter
    elif metric == "ios":
        denominator = np.minimum(area_a[:, None], area_b[None, :])
    else:
        raise ValueError(f"metric must be 'iou' or 'ios', got {metric!r}")
    return np.divide(inter, denominator, out=np.zeros_like(inter), where=denominator > 0)
