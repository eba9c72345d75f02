"""Run a detector over a COCO-format dataset and score it: AP, TP/FP/FN and attention on objects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sodviz.attention.mass import attention_mass_in_box
from sodviz.boxes import xywh_to_xyxy
from sodviz.detector.inference import run_inference
from sodviz.detector.loading import Detector
from sodviz.evaluation.buckets import AITOD_BUCKETS
from sodviz.evaluation.coco import (
    aitod_bucket,
    coco_metrics,
    coco_results,
    first_images,
    load_coco,
    match_detections,
    model_categories,
)
from sodviz.imageio import load_image


@dataclass(frozen=True, slots=True)
class DatasetEvaluation:
    """Scores of one detector on one dataset.

    Attributes:
        metrics: COCO / AI-TOD AP values (see `coco_metrics`).
        counts: TP / FP / FN per AI-TOD bucket at IoU 0.5 and `score_threshold`.
        attention_in_box: float `(M,)`, for each detection matched to a ground truth, the share
            of its query's last-layer attention inside a box twice its object's size (see
            `attention_mass_in_box`: sampling points for deformable models, grid cells for dense).
        attention_bucket: str `(M,)`, the AI-TOD size bucket of each matched object (same frame).
        score_threshold: the threshold used for counts and matches.
        frame: "input" (size buckets in model-input pixels) or "image" (original pixels).
    """

    metrics: dict[str, float]
    counts: dict[str, dict[str, int]]
    attention_in_box: np.ndarray
    attention_bucket: np.ndarray
    score_threshold: float
    frame: str


def evaluate_detector(
    detector: Detector,
    annotations: str | Path,
    images: str | Path,
    *,
    input_size: int | None = None,
    score_threshold: float = 0.3,
    frame: str = "input",
    max_images: int | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> DatasetEvaluation:
    """Detect on every image of a COCO dataset (whole image at the model's input size) and score it."""
    if frame not in ("input", "image"):
        raise ValueError(f"frame must be 'input' or 'image', got {frame!r}")
    truth, category_of = model_categories(
        first_images(load_coco(annotations), max_images), detector.class_names
    )
    records = truth["images"]
    detections, results, scale = [], {}, {}
    for done, record in enumerate(records, start=1):
        result = run_inference(
            detector, load_image(Path(images) / record["file_name"]), input_size=input_size, cache=None
        )
        results[record["id"]] = result
        scale[record["id"]] = result.transform.length_scale if frame == "input" else 1.0
        detections += coco_results(
            result.boxes_xyxy,
            result.scores,
            category_of[result.labels],
            image_id=record["id"],
            query_index=np.arange(result.num_queries),
        )
        if on_progress is not None:
            on_progress(done / len(records))
    metrics = coco_metrics(truth, detections, area_scale=scale)
    counts, pairs = match_detections(truth, detections, score_threshold=score_threshold, area_scale=scale)
    shares = [
        attention_mass_in_box(
            results[det["image_id"]], det["query_index"], xywh_to_xyxy(gt["bbox"])[0], enlarge=2.0
        )
        for det, gt in pairs
    ]
    buckets = [aitod_bucket(gt["bbox"], scale[gt["image_id"]]) for _, gt in pairs]
    return DatasetEvaluation(
        metrics=metrics,
        counts=counts,
        attention_in_box=np.array(shares, np.float32),
        attention_bucket=np.array(buckets, dtype=str),
        score_threshold=score_threshold,
        frame=frame,
    )


def attention_summary(report: DatasetEvaluation) -> dict[str, dict[str, float]]:
    """Median and 10th percentile of the attention-in-box share, and the number of matched
    detections, overall ("all") and per size bucket."""
    shares, buckets = report.attention_in_box, report.attention_bucket
    groups = [("all", np.ones(shares.size, bool))] + [(b, buckets == b) for b in AITOD_BUCKETS]
    return {
        name: {
            "median": float(np.median(shares[mask])),
            "p10": float(np.percentile(shares[mask], 10)),
            "matched": int(mask.sum()),
        }
        for name, mask in groups
        if mask.any()
    }
