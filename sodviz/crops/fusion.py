"""Fusing the original predictions with those of re-detected crops, size-aware."""

from __future__ import annotations

import numpy as np
import supervision as sv

from sodviz.boxes import box_size


def fuse_detections(
    original: sv.Detections,
    refined: sv.Detections,
    *,
    iou: float = 0.5,
    small_limit: float = 32.0,
    method: str = "nms",
) -> sv.Detections:
    """Original and refined detections as one set, in which refined boxes only add small objects.

    - Refined boxes of `small_limit` px or more (sqrt of area, original pixels) are dropped: a
      crop sees large objects cut or out of context, the full image sees them whole.
    - Original boxes of `small_limit` px or more are kept as they are, and refined boxes that
      overlap one of them by more than `iou` are dropped: fusion never loses a large detection.
    - Among the rest (small originals and small refined), per-class suppression at `iou` by
      supervision: "nms" keeps the most confident box, "nmm" merges overlapping boxes into it.

    Both inputs need `confidence` and `class_id`; `data` columns present in both are kept, with
    `data["refined"]` (bool) added.
    """
    if method not in ("nms", "nmm"):
        raise ValueError(f"method must be 'nms' or 'nmm', got {method!r}")
    original = _with_flag(original, False)
    refined = _with_flag(refined, True)
    refined = refined[box_size(refined.xyxy) < small_limit]
    large = box_size(original.xyxy) >= small_limit
    kept_large, small_original = original[large], original[~large]
    if len(kept_large) and len(refined):
        overlap = sv.box_iou_batch(refined.xyxy, kept_large.xyxy).max(axis=1)
        refined = refined[overlap <= iou]
    pool = _merge([small_original, refined])
    if len(pool):
        pool = pool.with_nms(threshold=iou) if method == "nms" else pool.with_nmm(threshold=iou)
    fused = _merge([kept_large, pool])
    order = np.argsort(-fused.confidence, kind="stable")
    return fused[order]


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
