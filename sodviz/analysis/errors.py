"""TIDE-style error types: why each missed object was missed, and what each false positive is.

Thresholds follow TIDE (Bolya et al., 2020): a box "overlaps" an object at IoU >= 0.1 (the
background threshold) and "matches" it at IoU >= 0.5 (the foreground threshold).
"""

from __future__ import annotations

import numpy as np

from sodviz.boxes import overlap_matrix

BACKGROUND_IOU = 0.1
MATCH_IOU = 0.5
# Why an object was missed, checked in this order (the first that holds is its type).
MISS_TYPES = ("classification", "score", "localisation", "never attended")
# What a false positive is, checked in this order.
FALSE_POSITIVE_TYPES = ("duplicate", "classification", "localisation", "background")


def miss_types(
    truth_xyxy: np.ndarray,
    truth_class: np.ndarray,
    missed: np.ndarray,
    query_xyxy: np.ndarray,
    class_scores: np.ndarray,
    *,
    score_threshold: float,
    class_aware: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nearest query of every object and, for each missed one, why it was missed.

    Args:
        truth_xyxy: float `(N, 4)` objects; truth_class: int `(N,)` their class ids in the model's
            classes (ignored when not `class_aware`); missed: bool `(N,)` at `score_threshold`.
        query_xyxy: float `(Q, 4)` every query's box; class_scores: float `(Q, classes)`.

    Returns:
        nearest int64 `(N,)` (the query whose box has the highest IoU, -1 without queries), its
        IoU float32 `(N,)`, and str `(N,)` types: "" for a found object, else the first of
        `MISS_TYPES` that holds:

        - "classification": a query matching the box (IoU >= 0.5) scores above the threshold
          for another class;
        - "score": a query matches the box but scores below the threshold for its class;
        - "localisation": the nearest box overlaps it (IoU >= 0.1) without matching it, or a box
          matches it that was matched to a neighbour instead;
        - "never attended": no query's box even overlaps it (IoU < 0.1).
    """
    count = len(truth_xyxy)
    types = np.full(count, "", dtype=object)
    if not len(query_xyxy):
        types[missed] = "never attended"
        return np.full(count, -1, np.int64), np.zeros(count, np.float32), types.astype(str)
    iou = overlap_matrix(np.asarray(truth_xyxy, np.float64), np.asarray(query_xyxy, np.float64))
    nearest = iou.argmax(axis=1) if iou.size else np.zeros(count, np.int64)
    best = iou.max(axis=1) if iou.size else np.zeros(count)
    scores = class_scores.max(axis=1) if class_scores.size else np.zeros(len(query_xyxy))
    labels = class_scores.argmax(axis=1) if class_scores.size else np.zeros(len(query_xyxy), np.int64)
    for i in np.flatnonzero(missed):
        fits = iou[i] >= MATCH_IOU
        own = class_scores[:, truth_class[i]] if class_aware else scores
        if class_aware and (fits & (scores >= score_threshold) & (labels != truth_class[i])).any():
            types[i] = "classification"
        elif (fits & (own < score_threshold)).any():
            types[i] = "score"
        elif best[i] >= BACKGROUND_IOU:
            types[i] = "localisation"
        else:
            types[i] = "never attended"
    return nearest.astype(np.int64), best.astype(np.float32), types.astype(str)


def false_positive_types(
    detection_xyxy: np.ndarray,
    detection_class: np.ndarray,
    is_false: np.ndarray,
    truth_xyxy: np.ndarray,
    truth_class: np.ndarray,
    *,
    class_aware: bool,
) -> np.ndarray:
    """str `(D,)`: "" for a true positive, else the first of `FALSE_POSITIVE_TYPES` that holds:

    - "duplicate": it matches an object of its class (IoU >= 0.5) that a higher-scoring
      detection already took;
    - "classification": it matches an object of another class;
    - "localisation": it overlaps an object (IoU >= 0.1) without matching one;
    - "background": it overlaps no object.
    """
    types = np.full(len(detection_xyxy), "", dtype=object)
    if not len(truth_xyxy):
        types[is_false] = "background"
        return types.astype(str)
    iou = overlap_matrix(np.asarray(detection_xyxy, np.float64), np.asarray(truth_xyxy, np.float64))
    for i in np.flatnonzero(is_false):
        same = (truth_class == detection_class[i]) if class_aware else np.ones(len(truth_xyxy), bool)
        if (iou[i][same] >= MATCH_IOU).any():
            types[i] = "duplicate"
        elif (iou[i] >= MATCH_IOU).any():
            types[i] = "classification"
        elif iou[i].max() >= BACKGROUND_IOU:
            types[i] = "localisation"
        else:
            types[i] = "background"
    return types.astype(str)
