"""What a merge of crops or slices leaves behind, counted against the ground truth: duplicates on
one object (boxes a merge should have removed) and objects split by a seam (parts of one object
found in two crops and never merged into one box)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sodviz.boxes import intersection_area, overlap_matrix

DIAGNOSTIC_SCORE = 0.3  # the boxes a user would see: the app's default score threshold
MATCH_IOU = 0.5
INSIDE = 0.5  # a part of an object: at least this share of the box lies inside the object


@dataclass(frozen=True, slots=True)
class MergeDiagnostics:
    """Counts over one or more images, at score >= `DIAGNOSTIC_SCORE`.

    Attributes:
        objects: ground-truth objects (crowd regions left out).
        duplicates: boxes beyond the first on one object: each box of the object's class is given
            to the object it overlaps most (IoU >= 0.5), and every object's boxes after one count.
        splits: objects no box matches (IoU >= 0.5) although two or more boxes of its class lie
            mostly inside it and their union would: the object cut by a crop or slice edge and
            found in parts.
    """

    objects: int = 0
    duplicates: int = 0
    splits: int = 0

    def __add__(self, other: MergeDiagnostics) -> MergeDiagnostics:
        return MergeDiagnostics(
            self.objects + other.objects, self.duplicates + other.duplicates, self.splits + other.splits
        )

    def per_100_objects(self) -> dict[str, float]:
        count = max(self.objects, 1)
        return {"duplicates": 100 * self.duplicates / count, "splits": 100 * self.splits / count}


def merge_diagnostics(
    xyxy: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    truth_xyxy: np.ndarray,
    truth_class_ids: np.ndarray,
    *,
    score_threshold: float = DIAGNOSTIC_SCORE,
) -> MergeDiagnostics:
    """`MergeDiagnostics` of one image's detections against its objects (same pixel frame)."""
    keep = np.asarray(scores) >= score_threshold
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)[keep]
    classes = np.asarray(class_ids)[keep]
    truth = np.asarray(truth_xyxy, np.float64).reshape(-1, 4)
    truth_classes = np.asarray(truth_class_ids)
    if not len(truth):
        return MergeDiagnostics()
    same = classes[:, None] == truth_classes[None, :]
    iou = np.where(same, overlap_matrix(boxes, truth), 0.0)  # (boxes, objects)
    best = iou.argmax(axis=1) if len(boxes) else np.zeros(0, np.int64)
    matched = iou.max(axis=1, initial=0.0) >= MATCH_IOU
    per_object = np.bincount(best[matched], minlength=len(truth))
    duplicates = int(np.clip(per_object - 1, 0, None).sum())
    splits = 0
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    for index in np.flatnonzero(per_object == 0):
        inside = intersection_area(truth[index], boxes) >= INSIDE * np.maximum(areas, 1e-12)
        parts = boxes[inside & same[:, index]]
        if len(parts) < 2:
            continue
        union = np.concatenate([parts[:, :2].min(0), parts[:, 2:].max(0)])
        splits += int(overlap_matrix(union, truth[index])[0, 0] >= MATCH_IOU)
    return MergeDiagnostics(len(truth), duplicates, splits)
