"""The ACS experiment on labelled splits: candidates per ground-truth object, head analysis and
regressor fitted on one split, selection and rescoring scored on another."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import stats

from sodviz.acs import (
    Candidates,
    IouRegressor,
    candidates_for_objects,
    feature_correlations,
    fit_selectors,
    free_scores,
    pick,
    query_features,
    selection_rows,
)
from sodviz.evaluation import AITOD_BUCKETS, coco_metrics, coco_results, first_images, load_coco
from sodviz.ground_truth import ground_truth_from_coco
from sodviz.imageio import load_image
from sodviz.inference import run_inference
from sodviz.models import Detector
from sodviz.types import InferenceResult


@dataclass(frozen=True)
class LabelledSplit:
    """A detector's results on a COCO split and the candidates of its ground-truth objects."""

    coco: dict
    results: list[InferenceResult]
    candidates: Candidates
    objects: int  # ground-truth objects in the split (with or without a candidate)


def label_split(
    detector: Detector, annotations: str | Path, images: str | Path, *, max_images: int | None = None,
    min_iou: float = 0.1, on_progress: Callable[[float], None] | None = None,
) -> LabelledSplit:  # fmt: skip
    """Run the detector on every image (not cached) and gather each object's candidates; object
    indices count the split's ground-truth objects in order."""
    coco = first_images(load_coco(annotations), max_images)
    results, parts, objects = [], [], 0
    for index, record in enumerate(coco["images"]):
        truth = ground_truth_from_coco(coco, image_id=record["id"])
        result = run_inference(detector, load_image(Path(images) / record["file_name"]), cache=None)
        results.append(result)
        part = candidates_for_objects(result, truth.boxes_xyxy, min_iou=min_iou, image_index=index)
        parts.append(_offset_objects(part, objects))
        objects += len(truth)
        if on_progress is not None:
            on_progress((index + 1) / len(coco["images"]))
    return LabelledSplit(coco, results, Candidates.concatenate(parts, renumber=False), objects)


def _offset_objects(candidates: Candidates, offset: int) -> Candidates:
    return replace(candidates, object_index=candidates.object_index + offset)


@dataclass(frozen=True)
class AcsStudy:
    """Everything the `acs` command reports."""

    correlations: dict[str, np.ndarray]  # on the fit split, see `feature_correlations`
    bucket_correlations: dict[str, dict[str, np.ndarray]]  # the same per AI-TOD size bucket
    heads: tuple[tuple[int, int], ...]  # ACS-Free's heads, chosen on the fit split
    pearson: dict[str, float]  # on the test split: predicted IoU (learned) and confidence vs IoU
    selection: list[dict]  # `selection_rows` per method on the test split
    rescoring: list[dict]  # AP / AP_S / AP_vt ... of the raw and rescored detections on the test split
    objects: int  # test objects
    with_candidates: int  # test objects with at least one candidate


def run_study(fit: LabelledSplit, test: LabelledSplit, *, top_heads: int = 4, blend: float = 0.5) -> AcsStudy:
    """Heads and regressor from `fit`, reported on `test` (see `AcsStudy`)."""
    for name, split in (("fit", fit), ("test", test)):
        if len(split.candidates) < 3:
            raise ValueError(
                f"the {name} split has {len(split.candidates)} candidate boxes: the detector's boxes "
                "overlap almost no ground-truth object (IoU >= 0.1), so there is nothing to rank"
            )
    fitted = fit_selectors(fit.candidates, top_heads=top_heads)
    heads, regressor = fitted.heads, fitted.regressor
    candidates = test.candidates
    predicted = regressor.predict(candidates)
    pearson = {
        "learned": float(stats.pearsonr(predicted, candidates.iou).statistic),
        "confidence": float(stats.pearsonr(candidates.confidence, candidates.iou).statistic),
    }
    choices = {
        "confidence": pick(candidates, candidates.confidence),
        "ACS-Free": pick(candidates, free_scores(candidates, heads)),
        "ACS-Learned": pick(candidates, predicted),
        "oracle": pick(candidates, candidates.iou),
    }
    size = fit.candidates.object_size
    by_bucket = {
        bucket: feature_correlations(fit.candidates, mask=(size >= low) & (size < high))
        for bucket, (low, high) in AITOD_BUCKETS.items()
    }
    return AcsStudy(
        correlations=fitted.correlations,
        bucket_correlations=by_bucket,
        heads=heads,
        pearson=pearson,
        selection=selection_rows(candidates, choices, AITOD_BUCKETS),
        rescoring=rescoring_rows(test, regressor, blend=blend),
        objects=test.objects,
        with_candidates=len(np.unique(candidates.object_index)),
    )


def rescored(result: InferenceResult, regressor: IouRegressor, *, blend: float) -> np.ndarray:
    """float32 `(queries,)`: confidence^(1 - blend) * predicted IoU^blend (IoU clipped to [0, 1])."""
    if not 0 <= blend <= 1:
        raise ValueError(f"blend must lie in [0, 1], got {blend}")
    iou = regressor.predict_features(query_features(result, np.arange(result.num_queries)))
    iou = np.clip(iou, 1e-6, 1)
    return (result.scores.astype(np.float64) ** (1 - blend) * iou**blend).astype(np.float32)


def rescoring_rows(split: LabelledSplit, regressor: IouRegressor, *, blend: float) -> list[dict]:
    """COCO / AI-TOD AP of the split's detections with their own scores and rescored."""
    rows = []
    for name, scorer in (("confidence", None), (f"rescored (blend {blend:g})", blend)):
        detections, scale = [], {}
        for record, result in zip(split.coco["images"], split.results, strict=True):
            scores = result.scores if scorer is None else rescored(result, regressor, blend=scorer)
            detections += coco_results(result.boxes_xyxy, scores, result.labels, image_id=record["id"])
            scale[record["id"]] = result.transform.length_scale
        metrics = coco_metrics(split.coco, detections, area_scale=scale)
        rows.append(
            {"scores": name} | {k: metrics[k] for k in ("AP", "AP50", "AP_S", "AP_vt", "AP_t", "AP_s")}
        )
    return rows
