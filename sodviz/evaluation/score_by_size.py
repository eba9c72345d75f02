"""Average class score of objects against their size (Cross-DINO Fig. 3), over labelled scenes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import supervision as sv

from sodviz.boxes import box_size
from sodviz.detector.inference import run_inference, to_detections
from sodviz.detector.loading import Detector
from sodviz.evaluation.buckets import SCORE_SIZE_EDGES
from sodviz.evaluation.ground_truth import GroundTruth


def score_by_size(
    detections: Sequence[sv.Detections], truths: Sequence[GroundTruth], scales: Sequence[float],
    class_names: tuple[str, ...], *, iou: float = 0.5, edges: Sequence[float] = SCORE_SIZE_EDGES,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Average class score of objects by size (Cross-DINO Fig. 3). Each object's score is the
    highest confidence of a same-class detection overlapping it at `iou` (0 when none does);
    sizes are sqrt(area) times `scales` (model-input pixels per image pixel).

    Returns:
        {"low", "high": bin edges `(B,)`, "mean_score": float64 `(B,)` (NaN for an empty bin),
        "count": int64 `(B,)`}.
    """
    sizes, scores = [], []
    for found, truth, scale in zip(detections, truths, scales, strict=True):
        if len(truth) == 0:
            continue
        best = np.zeros(len(truth))
        if len(found):
            overlap = sv.box_iou_batch(truth.boxes_xyxy, found.xyxy)  # [N, D]
            names = np.array(class_names)[found.class_id]
            same = truth.class_names[:, None] == names[None, :]
            best = np.where((overlap >= iou) & same, found.confidence[None, :], 0).max(axis=1)
        sizes.append(box_size(truth.boxes_xyxy) * scale)
        scores.append(best)
    sizes = np.concatenate(sizes) if sizes else np.zeros(0)
    scores = np.concatenate(scores) if scores else np.zeros(0)
    edges = np.asarray(edges, np.float64)
    index = np.digitize(sizes, edges[1:-1])
    count = np.bincount(index, minlength=len(edges) - 1)
    total = np.bincount(index, weights=scores, minlength=len(edges) - 1)
    mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return {"low": edges[:-1], "high": edges[1:], "mean_score": mean, "count": count}


def score_curve(
    detector: Detector, scenes: Sequence[tuple[np.ndarray, GroundTruth]], *, input_size: int | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """`score_by_size` of one detector over labelled scenes (each forward pass cached)."""
    found, truths, scales = [], [], []
    for done, (image, truth) in enumerate(scenes, start=1):
        result = run_inference(detector, image, input_size=input_size)
        found.append(to_detections(result))
        truths.append(truth)
        scales.append(result.transform.length_scale)
        if on_progress is not None:
            on_progress(done / len(scenes))
    return score_by_size(found, truths, scales, detector.class_names)
