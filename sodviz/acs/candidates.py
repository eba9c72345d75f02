"""Candidate boxes per object for ACS: every decoder query (of the full image and, optionally, of
ViCrop-Det's re-detected crops) whose box overlaps the object, with attention features per
(layer, head)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import supervision as sv

from sodviz.attention.entropy import distribution_entropy
from sodviz.boxes import box_size, crop_to_image
from sodviz.crops.redetect import CropDetections
from sodviz.types import DeformableAttention, InferenceResult

FEATURES = ("entropy", "mass", "spread")  # per (layer, head); see `query_features`
FULL_IMAGE = -1  # `Candidates.crop_index` of a query of the full-image pass


@dataclass(frozen=True, slots=True)
class Candidates:
    """Candidate boxes grouped by object, over one or more images.

    Attributes:
        object_index: int64 `(N,)`, the object each candidate proposes a box for: the index of its
            ground-truth box, or of its cluster (objects with no candidate do not appear).
        image_index: int64 `(N,)`, the image it comes from.
        crop_index: int64 `(N,)`, `FULL_IMAGE` (-1) for a query of the full-image pass, else the
            index of the ViCrop-Det crop whose re-detection proposed it.
        query_index: int64 `(N,)`, its decoder query in that pass's result (the image's or the crop's).
        boxes_xyxy: float32 `(N, 4)`, original-image pixels.
        confidence: float32 `(N,)`, the query's best class score.
        iou: float32 `(N,)`, IoU with the object's ground-truth box (NaN without ground truth).
        object_size: float32 `(N,)`, sqrt area of the object's box in the full image's model-input
            pixels (the same for a crop's candidates).
        features: float32 `(N, layers, heads, 3)`, `FEATURES` per (layer, head), measured in the
            frame of the pass that proposed the box.
    """

    object_index: np.ndarray
    image_index: np.ndarray
    crop_index: np.ndarray
    query_index: np.ndarray
    boxes_xyxy: np.ndarray
    confidence: np.ndarray
    iou: np.ndarray
    object_size: np.ndarray
    features: np.ndarray

    def __post_init__(self) -> None:
        count = len(self.object_index)
        for name in ("image_index", "crop_index", "query_index", "confidence", "iou", "object_size"):
            if getattr(self, name).shape != (count,):
                raise ValueError(f"{name} must be ({count},), got {getattr(self, name).shape}")
        if self.boxes_xyxy.shape != (count, 4) or self.features.shape[0] != count or self.features.ndim != 4:
            raise ValueError(f"boxes (N, 4) and features (N, layers, heads, 3) for N = {count}")

    def __len__(self) -> int:
        return len(self.object_index)

    def objects_by_size(self) -> list[int]:
        """The objects that have candidates, smallest first (ties by index)."""
        objects, first = np.unique(self.object_index, return_index=True)
        order = np.lexsort((objects, self.object_size[first]))
        return [int(o) for o in objects[order]]

    def size_of(self, object_index: int) -> float:
        """sqrt area of one object's box in the full image's model-input pixels."""
        return float(self.object_size[self.object_index == object_index][0])

    @property
    def num_objects(self) -> int:
        return int(self.object_index.max()) + 1 if len(self) else 0

    def subset(self, mask: np.ndarray) -> Candidates:
        """The candidates where `mask` (bool `(N,)` or indices) selects, indices unchanged."""
        return Candidates(**{name: getattr(self, name)[mask] for name in Candidates.__slots__})

    @staticmethod
    def concatenate(parts: list[Candidates], *, renumber: bool = True) -> Candidates:
        """One set from several; with `renumber`, object and image indices are offset to stay
        distinct (without, they are kept as they are)."""
        if not any(len(p) for p in parts):
            return parts[0] if parts else empty_candidates(layers=0, heads=0)
        parts = [p for p in parts if len(p)]
        objects = np.cumsum([0] + [p.num_objects for p in parts[:-1]]) * renumber
        images = np.cumsum([0] + [int(p.image_index.max()) + 1 for p in parts[:-1]]) * renumber
        kept = ("crop_index", "query_index", "boxes_xyxy", "confidence", "iou", "object_size", "features")
        return Candidates(
            object_index=np.concatenate([p.object_index + o for p, o in zip(parts, objects, strict=True)]),
            image_index=np.concatenate([p.image_index + i for p, i in zip(parts, images, strict=True)]),
            **{name: np.concatenate([getattr(p, name) for p in parts]) for name in kept},
        )


def empty_candidates(*, layers: int, heads: int) -> Candidates:
    index, value = np.zeros(0, np.int64), np.zeros(0, np.float32)
    return Candidates(
        object_index=index,
        image_index=index,
        crop_index=index,
        query_index=index,
        boxes_xyxy=np.zeros((0, 4), np.float32),
        confidence=value,
        iou=value,
        object_size=value,
        features=np.zeros((0, layers, heads, len(FEATURES)), np.float32),
    )


def query_features(result: InferenceResult, queries: np.ndarray) -> np.ndarray:
    """float32 `(N, layers, heads, 3)` for each query, per (layer, head), relative to its own box:

    - entropy: of the attention distribution (deformable: over its levels x points; dense: over
      the grid cells), divided by the log of their count, so 0 = one point, 1 = uniform;
    - mass: the share of the weight inside the query's box;
    - spread: the weighted standard deviation of the attended positions (sqrt of the summed x and
      y variances) divided by the box's sqrt area, both in model-input pixels.
    """
    queries = np.asarray(queries, np.int64)
    attention = result.attention
    if not len(queries):
        return np.zeros((0, attention.num_layers, attention.num_heads, len(FEATURES)), np.float32)
    input_h, input_w = result.transform.input_hw
    boxes = result.transform.image_to_input(result.boxes_xyxy[queries].astype(np.float64))  # [N, 4]
    if isinstance(attention, DeformableAttention):
        weights = attention.weights[:, queries].astype(np.float64)  # [L, N, H, levels, points]
        weights = weights.reshape(*weights.shape[:3], -1).transpose(1, 0, 2, 3)  # [N, L, H, S]
        xy = attention.locations[:, queries].astype(np.float64)
        xy = xy.reshape(*xy.shape[:3], -1, 2).transpose(1, 0, 2, 3, 4) * (input_w, input_h)  # [N, L, H, S, 2]
    else:
        layers, heads, _, grid_h, grid_w = attention.weights.shape
        weights = attention.weights[:, :, queries].astype(np.float64).reshape(layers, heads, len(queries), -1)
        weights = weights.transpose(2, 0, 1, 3)  # [N, L, H, S]
        rows = (np.arange(grid_h) + 0.5) * input_h / grid_h
        cols = (np.arange(grid_w) + 0.5) * input_w / grid_w
        ys, xs = np.meshgrid(rows, cols, indexing="ij")
        xy = np.broadcast_to(np.stack([xs.ravel(), ys.ravel()], -1), (*weights.shape, 2))
    total = np.maximum(weights.sum(-1, keepdims=True), 1e-12)
    p = weights / total
    entropy = distribution_entropy(p, normalize=True)
    b = boxes[:, None, None, None, :]
    inside = (
        (xy[..., 0] >= b[..., 0])
        & (xy[..., 0] <= b[..., 2])
        & (xy[..., 1] >= b[..., 1])
        & (xy[..., 1] <= b[..., 3])
    )
    mass = (p * inside).sum(-1)
    mean = (p[..., None] * xy).sum(-2, keepdims=True)
    spread = np.sqrt((p * ((xy - mean) ** 2).sum(-1)).sum(-1))
    size = np.sqrt(np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6))
    spread = spread / size[:, None, None]
    return np.stack([entropy, mass, spread], axis=-1).astype(np.float32)


def candidates_for_objects(
    result: InferenceResult, objects_xyxy: np.ndarray | None = None, *, crops: CropDetections | None = None,
    min_iou: float = 0.1, score_threshold: float = 0.3, image_index: int = 0,
) -> Candidates:  # fmt: skip
    """Every query whose box overlaps an object at `min_iou` or more, grouped by object.

    With `objects_xyxy` (ground truth, original pixels) each candidate carries its IoU to its
    object; a query overlapping several objects proposes for the one it overlaps most. Without,
    objects are clusters of the full-image pass: its detections above `score_threshold`, greedily
    by score, each taking the overlapping queries not yet taken (IoU is then NaN).

    With `crops` (ViCrop-Det's re-detections, e.g. `run_vicrop(...).refined`), every query of every
    crop whose box, mapped to the image, overlaps an object proposes for the one it overlaps most.
    """
    boxes = result.boxes_xyxy.astype(np.float32)
    truth = objects_xyxy is not None
    if truth:
        objects = np.asarray(objects_xyxy, np.float32).reshape(-1, 4)
    else:
        kept = np.flatnonzero(result.scores >= score_threshold)
        objects = boxes[kept[np.argsort(-result.scores[kept], kind="stable")]]
    if not len(objects):
        return empty_candidates(layers=result.attention.num_layers, heads=result.attention.num_heads)
    sizes = box_size(objects) * result.transform.length_scale  # in the full image's model-input pixels
    overlap = sv.box_iou_batch(objects, boxes)  # [objects, Q]
    if truth:
        owner = _most_overlapped(overlap, min_iou)
    else:
        owner = np.full(len(boxes), -1)
        for index in range(len(objects)):
            owner[(owner < 0) & (overlap[index] >= min_iou)] = index
    parts = [
        _proposals(result, boxes, overlap, owner, sizes, truth=truth, crop=FULL_IMAGE, image=image_index)
    ]
    crop_passes = [] if crops is None else zip(crops.results, crops.crops_xyxy, strict=True)
    for crop, (crop_result, crop_xyxy) in enumerate(crop_passes):
        mapped = crop_to_image(crop_result.boxes_xyxy, crop_xyxy)
        overlap = sv.box_iou_batch(objects, mapped)
        owner = _most_overlapped(overlap, min_iou)
        parts.append(
            _proposals(crop_result, mapped, overlap, owner, sizes, truth=truth, crop=crop, image=image_index)
        )
    merged = Candidates.concatenate(parts, renumber=False)
    return merged.subset(np.lexsort((merged.query_index, merged.crop_index, merged.object_index)))


def _most_overlapped(overlap: np.ndarray, min_iou: float) -> np.ndarray:
    """int `(Q,)`: the object each box overlaps most at `min_iou` or more, else -1."""
    best = overlap.argmax(axis=0)
    return np.where(overlap[best, np.arange(overlap.shape[1])] >= min_iou, best, -1)


def _proposals(
    result: InferenceResult, boxes: np.ndarray, overlap: np.ndarray, owner: np.ndarray, sizes: np.ndarray,
    *, truth: bool, crop: int, image: int,
) -> Candidates:  # fmt: skip
    """The candidates of one pass: its queries with an owner, `boxes` already in image pixels."""
    queries = np.flatnonzero(owner >= 0)
    objects = owner[queries]
    return Candidates(
        object_index=objects.astype(np.int64),
        image_index=np.full(len(queries), image, np.int64),
        crop_index=np.full(len(queries), crop, np.int64),
        query_index=queries.astype(np.int64),
        boxes_xyxy=boxes[queries],
        confidence=result.scores[queries].astype(np.float32),
        iou=(overlap[objects, queries] if truth else np.full(len(queries), np.nan)).astype(np.float32),
        object_size=sizes[objects].astype(np.float32),
        features=query_features(result, queries),
    )
