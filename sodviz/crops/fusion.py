"""Fusing the full-image detections with those of re-detected crops: one rule for ViCrop-Det,
uniform slicing and the app, with SAHI's merges (NMS, NMM, greedy NMM; IoU or IoS) and weighted
box fusion (ensemble-boxes) selectable."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import supervision as sv

from sodviz.boxes import box_size, overlap_matrix

MERGES = ("nms", "nmm", "greedynmm", "wbf")
METRICS = ("iou", "ios")  # `overlap_matrix`'s metrics
SAHI_LOW_SCORE = 0.1  # SAHI's LOW_MODEL_CONFIDENCE: below it, its merges fall back to NMS / IoU


@dataclass(frozen=True)
class Fusion:
    """How the full-image pass and the crops' detections become one set.

    Sizes are sqrt(area) in pixels of the model input of the full-image pass (the frame where
    the size buckets are measured and where the full pass is weak on small objects).

    Attributes:
        merge: "nms" keeps the most confident of matching boxes; "greedynmm" merges every box
            matching the most confident one into it (union box, its score); "nmm" merges
            transitively (SAHI's three, with its semantics: matches are checked again against
            the growing merged box). "wbf": weighted box fusion (ensemble-boxes' clusters, each
            box the score-weighted mean of its cluster, scored by its best member; IoU only).
        metric: "iou" or "ios" (intersection over the smaller box), as in SAHI.
        threshold: boxes match when the metric is at least this.
        max_refined_size: crop boxes of this size or more are dropped (None: no size rule).
        keep_large: full-image boxes of this size or more are kept as they are, and crop boxes
            matching one are dropped (None: every box goes through the merge).
        low_score_nms: SAHI's switch: with a score threshold under 0.1, merges become NMS / IoU
            (union boxes of many low-score boxes swallow junk).
    """

    merge: str = "nms"
    metric: str = "iou"
    threshold: float = 0.5
    max_refined_size: float | None = None
    keep_large: float | None = None
    low_score_nms: bool = True

    def __post_init__(self) -> None:
        if self.merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES}, got {self.merge!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.merge == "wbf" and self.metric != "iou":
            raise ValueError("weighted box fusion matches boxes by IoU only (ensemble-boxes has no IoS)")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must lie in (0, 1], got {self.threshold}")

    def at_score_threshold(self, score_threshold: float | None) -> Fusion:
        """The rule actually applied when detections were kept from `score_threshold` up."""
        low = score_threshold is not None and score_threshold < SAHI_LOW_SCORE
        if self.low_score_nms and low and self.merge != "nms":
            return replace(self, merge="nms", metric="iou")
        return self


SAHI_FUSION = Fusion(merge="greedynmm", metric="ios")  # get_sliced_prediction's defaults


def merge_label(fusion: Fusion, score_threshold: float) -> str:
    """The merge a fusion applies at a score threshold, as the table's `merge` column says it:
    "greedynmm/ios", or "greedynmm as nms/iou" where SAHI's low-score switch turned it to NMS."""
    applied = fusion.at_score_threshold(score_threshold)
    name = f"{applied.merge}/{applied.metric}"
    return name if applied == fusion else f"{fusion.merge} as {name}"


def with_merge(fusion: Fusion, merge: str) -> Fusion:
    """`fusion` with another merge (weighted box fusion matches by IoU)."""
    return replace(fusion, merge=merge, metric="iou" if merge == "wbf" else fusion.metric)


def fuse_detections(
    original: sv.Detections,
    refined: sv.Detections,
    fusion: Fusion = Fusion(),
    *,
    scale: float = 1.0,
    score_threshold: float | None = None,
) -> sv.Detections:
    """Original and refined detections as one set (see `Fusion`), most confident first.

    `scale` is model-input pixels per original pixel of the full-image pass (sizes in `fusion`
    are in that frame); `score_threshold` is the one the detections were kept with (SAHI's
    switch to NMS below 0.1). Both inputs need `confidence` and `class_id`; `data` columns
    present in both are kept, with `data["refined"]` (bool) added.
    """
    fusion = fusion.at_score_threshold(score_threshold)
    original = _with_flag(original, False)
    refined = _with_flag(refined, True)
    if fusion.max_refined_size is not None:
        refined = refined[box_size(refined.xyxy) * scale < fusion.max_refined_size]
    large = np.zeros(len(original), bool)
    if fusion.keep_large is not None:
        large = box_size(original.xyxy) * scale >= fusion.keep_large
    protected, rest = original[large], original[~large]
    if len(protected) and len(refined):
        matrix = overlap_matrix(refined.xyxy, protected.xyxy, fusion.metric)
        same = refined.class_id[:, None] == protected.class_id[None, :]
        refined = refined[~((matrix >= fusion.threshold) & same).any(axis=1)]
    pool = _merge([rest, refined])
    if len(pool):
        keep, boxes = merge_boxes(
            pool.xyxy, pool.confidence, pool.class_id, merge=fusion.merge, metric=fusion.metric,
            threshold=fusion.threshold,
        )  # fmt: skip
        pool = pool[keep]
        pool.xyxy = boxes.astype(np.float32)
    fused = _merge([protected, pool])
    return fused[np.argsort(-fused.confidence, kind="stable")]


def merge_boxes(
    xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, *, merge: str = "nms",
    metric: str = "iou", threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per-class NMS / greedy NMM / NMM with SAHI's semantics.

    Boxes are visited by score (ties by x0, y0, x1, y1); a box matches another when `metric` is
    at least `threshold`. NMS drops the matches of each kept box. Greedy NMM lets each kept box
    claim its unclaimed matches; NMM lets every box, kept or claimed, claim its unclaimed
    matches for its keeper (transitive). A keeper then absorbs its claims in order, each only if
    it still matches the merged box (else it is dropped): the union box, the keeper's score.
    One difference: with tied scores, NMM here lets the earlier box in visiting order claim the
    later one; SAHI's dominance rule can leave both (tested with distinct scores only).
    "wbf" is ensemble-boxes' `weighted_boxes_fusion` (see `_weighted_box_fusion`).

    Returns:
        int64 indices of the kept boxes, most confident first, and float64 `(n, 4)` their
        (merged) boxes.
    """
    if merge not in MERGES:
        raise ValueError(f"merge must be one of {MERGES}, got {merge!r}")
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64)
    class_ids = np.asarray(class_ids)
    if merge == "wbf":
        return _weighted_box_fusion(xyxy, scores, class_ids, threshold)
    kept, boxes = [], []
    for class_id in np.unique(class_ids):
        members = np.flatnonzero(class_ids == class_id)
        claims = _claims(xyxy[members], scores[members], merge, metric, threshold)
        for keeper, claimed in claims.items():
            box = xyxy[members[keeper]].copy()
            for other in claimed:
                candidate = xyxy[members[other]]
                if overlap_matrix(box, candidate, metric)[0, 0] >= threshold:
                    box = np.concatenate(
                        [np.minimum(box[:2], candidate[:2]), np.maximum(box[2:], candidate[2:])]
                    )
            kept.append(members[keeper])
            boxes.append(box)
    kept = np.array(kept, np.int64)
    boxes = np.array(boxes, np.float64).reshape(-1, 4)
    order = _visit_order(xyxy[kept], scores[kept])
    return kept[order], boxes[order]


def _weighted_box_fusion(
    xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """ensemble-boxes' weighted box fusion of one set of boxes (one "model"), per class: boxes by
    score join the cluster whose fused box they overlap most, when that IoU is above `threshold`
    (strictly, as the library); a cluster's box is the score-weighted mean of its members and its
    score their best (`conf_type="max"`: the library's default, the mean, would let a cluster's
    low-score duplicates pull a true object down). Each fused box keeps the index of its best
    member (the data columns follow it): the member of its class with its score that overlaps it
    most. Boxes are moved into [0, 1] for the library and back."""
    from ensemble_boxes import weighted_boxes_fusion

    if not len(xyxy):
        return np.zeros(0, np.int64), np.zeros((0, 4), np.float64)
    low, extent = min(0.0, xyxy.min()), max(xyxy.max() - min(0.0, xyxy.min()), 1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "zero area box skipped": such boxes are kept below
        fused, fused_scores, labels = weighted_boxes_fusion(
            [((xyxy - low) / extent).tolist()], [scores.tolist()], [class_ids.tolist()],
            iou_thr=threshold, skip_box_thr=0.0, conf_type="max",
        )  # fmt: skip
    boxes = np.asarray(fused, np.float64).reshape(-1, 4) * extent + low
    kept = []
    for box, score, label in zip(boxes, fused_scores, labels, strict=True):
        members = np.flatnonzero((class_ids == label) & np.isclose(scores, score, rtol=1e-6, atol=1e-7))
        kept.append(members[np.argmax(overlap_matrix(box, xyxy[members])[0])])
    flat = np.flatnonzero((xyxy[:, 2] <= xyxy[:, 0]) | (xyxy[:, 3] <= xyxy[:, 1]))  # the library drops them
    kept = np.array([*kept, *flat], np.int64)
    boxes = np.concatenate([boxes, xyxy[flat]])
    order = _visit_order(boxes, scores[kept])
    return kept[order], boxes[order]


def _visit_order(xyxy: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return np.lexsort((xyxy[:, 3], xyxy[:, 2], xyxy[:, 1], xyxy[:, 0], -scores))


def _claims(xyxy, scores, merge: str, metric: str, threshold: float) -> dict[int, list[int]]:
    """keeper -> the boxes it claims, in SAHI's order, for one class."""
    order = _visit_order(xyxy, scores)
    matches = overlap_matrix(xyxy, xyxy, metric) >= threshold
    claims: dict[int, list[int]] = {}
    if merge in ("nms", "greedynmm"):
        taken = np.zeros(len(xyxy), bool)
        for position, index in enumerate(order):
            if taken[index]:
                continue
            later = order[position + 1 :]
            claimed = later[~taken[later] & matches[index, later]]
            taken[claimed] = True
            taken[index] = True
            claims[int(index)] = [] if merge == "nms" else claimed.tolist()
        return claims
    rank = np.empty(len(xyxy), np.int64)
    rank[order] = np.arange(len(xyxy))
    keeper_of = np.full(len(xyxy), -1, np.int64)
    for index in order:
        if keeper_of[index] < 0:
            keeper_of[index] = index
            claims[int(index)] = []
        keeper = int(keeper_of[index])
        for other in np.flatnonzero(matches[index] & (rank > rank[index])):
            if keeper_of[other] < 0:
                keeper_of[other] = keeper
                claims[keeper].append(int(other))
    return claims


def _with_flag(detections: sv.Detections, refined: bool) -> sv.Detections:
    flagged = sv.Detections(
        xyxy=detections.xyxy.astype(np.float32).reshape(-1, 4),
        confidence=np.asarray(detections.confidence, np.float32),
        class_id=np.asarray(detections.class_id, np.int64),
        data=dict(detections.data),
    )
    flagged.data["refined"] = np.full(len(detections), refined)
    return flagged


def _merge(parts: list[sv.Detections]) -> sv.Detections:
    """`sv.Detections.merge` keeping only the data columns every part has."""
    common = set.intersection(*(set(part.data) for part in parts))
    if not any(len(part) for part in parts):
        return sv.Detections(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int64),
            data={key: np.asarray(parts[0].data[key])[:0] for key in common},
        )
    trimmed = [
        sv.Detections(
            xyxy=part.xyxy,
            confidence=part.confidence,
            class_id=part.class_id,
            data={key: np.asarray(part.data[key]) for key in common},
        )
        for part in parts
    ]
    return sv.Detections.merge(trimmed)
