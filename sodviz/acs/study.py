"""The ACS experiment on labelled splits: candidates per ground-truth object (decoder queries, and
optionally the queries of ViCrop-Det's crops), head analysis and regressor fitted on one split,
selection and rescoring scored on another."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sodviz.acs.candidates import FULL_IMAGE, Candidates, query_features
from sodviz.acs.labelling import label_scenes
from sodviz.acs.selectors import (
    REGRESSORS,
    IouRegressor,
    feature_correlations,
    fit_selectors,
    free_scores,
    pearson_or_nan,
    pick,
    selection_rows,
    within_object_pearson,
)
from sodviz.crops.vicrop import ViCropConfig
from sodviz.detector.loading import Detector
from sodviz.evaluation.buckets import AITOD_BUCKETS, bucket_masks
from sodviz.evaluation.coco import coco_metrics, coco_results, first_images, load_coco, model_categories
from sodviz.evaluation.ground_truth import ground_truth_from_coco
from sodviz.imageio import load_image
from sodviz.types import InferenceResult


@dataclass(frozen=True)
class LabelledSplit:
    """A detector's results on a COCO split and the candidates of its ground-truth objects."""

    coco: dict
    results: list[InferenceResult]
    candidates: Candidates
    objects: int  # ground-truth objects in the split (with or without a candidate)
    category_of: np.ndarray  # int64 (C,): the category id each class label carries (`model_categories`)


def label_split(
    detector: Detector, annotations: str | Path, images: str | Path, *, max_images: int | None = None,
    min_iou: float = 0.1, crops: ViCropConfig | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> LabelledSplit:  # fmt: skip
    """`label_scenes` over every image of a COCO split (not cached), images read one at a time."""
    coco, category_of = model_categories(
        first_images(load_coco(annotations), max_images), detector.class_names
    )
    scenes = (
        (load_image(Path(images) / record["file_name"]), ground_truth_from_coco(coco, image_id=record["id"]))
        for record in coco["images"]
    )
    labelled = label_scenes(
        detector, scenes, count=len(coco["images"]), min_iou=min_iou, crops=crops, cache=None,
        on_progress=on_progress,
    )  # fmt: skip
    return LabelledSplit(coco, labelled.results, labelled.candidates, labelled.objects, category_of)


@dataclass(frozen=True)
class AcsStudy:
    """Everything the `acs` command reports."""

    correlations: dict[str, np.ndarray]  # on the fit split, see `feature_correlations`
    bucket_correlations: dict[str, dict[str, np.ndarray]]  # the same per AI-TOD size bucket
    heads: tuple[tuple[int, int], ...]  # ACS-Free's heads, chosen on the fit split
    pearson: dict[str, dict[str, float]]  # per pool on the test split: {*REGRESSORS, "confidence"} vs IoU
    within_pearson: dict[str, dict[str, float]]  # the same within objects, see `within_object_pearson`
    selection: list[dict]  # `selection_rows` per pool and method on the test split
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
    regressors = {
        kind: fitted.regressor if kind == fitted.regressor.kind else IouRegressor(kind).fit(fit.candidates)
        for kind in REGRESSORS
    }
    pearson, within, selection = {}, {}, []
    for pool, candidates in candidate_pools(test.candidates).items():
        predicted = {kind: regressor.predict(candidates) for kind, regressor in regressors.items()}
        scores = predicted | {"confidence": candidates.confidence}
        pearson[pool] = {kind: pearson_or_nan(values, candidates.iou) for kind, values in scores.items()}
        within[pool] = {kind: within_object_pearson(candidates, values) for kind, values in scores.items()}
        choices = {
            "confidence": pick(candidates, candidates.confidence),
            "ACS-Free": pick(candidates, free_scores(candidates, fitted.heads)),
            **{f"ACS-Learned ({kind})": pick(candidates, p) for kind, p in predicted.items()},
            f"confidence x boosting (blend {blend:g})": pick(
                candidates, blended(candidates.confidence, predicted["boosting"], blend=blend)
            ),
            "oracle": pick(candidates, candidates.iou),
        }
        selection += [{"pool": pool} | row for row in selection_rows(candidates, choices, AITOD_BUCKETS)]
    by_bucket = {
        bucket: feature_correlations(fit.candidates, mask=mask)
        for bucket, mask in bucket_masks(fit.candidates.object_size, AITOD_BUCKETS).items()
    }
    return AcsStudy(
        correlations=fitted.correlations,
        bucket_correlations=by_bucket,
        heads=fitted.heads,
        pearson=pearson,
        within_pearson=within,
        selection=selection,
        rescoring=rescoring_rows(test, regressors, blend=blend),
        objects=test.objects,
        with_candidates=len(np.unique(test.candidates.object_index)),
    )


def candidate_pools(candidates: Candidates) -> dict[str, Candidates]:
    """The candidate sets selection is scored on: "queries" (the full-image pass); with crop
    candidates also "queries + crops" (every object with any candidate) and "queries + crops, same
    objects" (only the objects "queries" covers, so the two pools compare on the same objects)."""
    queries = candidates.subset(candidates.crop_index == FULL_IMAGE)
    if len(queries) == len(candidates):
        return {"queries": candidates}
    same = np.isin(candidates.object_index, queries.object_index)
    return {
        "queries": queries,
        "queries + crops": candidates,
        "queries + crops, same objects": candidates.subset(same),
    }


def blended(confidence: np.ndarray, iou: np.ndarray, *, blend: float) -> np.ndarray:
    """float32: confidence^(1 - blend) * predicted IoU^blend (IoU clipped to [1e-6, 1])."""
    if not 0 <= blend <= 1:
        raise ValueError(f"blend must lie in [0, 1], got {blend}")
    iou = np.clip(np.asarray(iou, np.float64), 1e-6, 1)
    return (np.asarray(confidence, np.float64) ** (1 - blend) * iou**blend).astype(np.float32)


def rescored(result: InferenceResult, regressor: IouRegressor, *, blend: float) -> np.ndarray:
    """float32 `(queries,)`: every query's confidence blended with its predicted IoU (`blended`)."""
    iou = regressor.predict_features(query_features(result, np.arange(result.num_queries)))
    return blended(result.scores, iou, blend=blend)


def rescoring_rows(split: LabelledSplit, regressors: dict[str, IouRegressor], *, blend: float) -> list[dict]:
    """COCO / AI-TOD AP of the split's detections with their own scores, and rescored with each
    regressor's predicted IoU."""
    rows = []
    for name, regressor in {"confidence": None, **regressors}.items():
        detections, scale = [], {}
        for record, result in zip(split.coco["images"], split.results, strict=True):
            scores = result.scores if regressor is None else rescored(result, regressor, blend=blend)
            labels = split.category_of[result.labels]
            detections += coco_results(result.boxes_xyxy, scores, labels, image_id=record["id"])
            scale[record["id"]] = result.transform.length_scale
        metrics = coco_metrics(split.coco, detections, area_scale=scale)
        name = name if regressor is None else f"rescored, {name} (blend {blend:g})"
        rows.append(
            {"scores": name} | {k: metrics[k] for k in ("AP", "AP50", "AP_S", "AP_vt", "AP_t", "AP_s")}
        )
    return rows
