"""The ViCrop page's table of merges: the same crops fused with the full image by each merge."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sodviz.cache import InferenceCache, cached, content_key
from sodviz.crops.fusion import MERGES, merge_label, with_merge
from sodviz.crops.redetect import CropDetections
from sodviz.crops.vicrop import ViCropConfig, fuse_with_full_image
from sodviz.detector.inference import to_detections
from sodviz.evaluation.ground_truth import GroundTruth, match_ground_truth, truth_class_ids
from sodviz.evaluation.merge_diagnostics import merge_diagnostics
from sodviz.types import InferenceResult
from sodviz.views.vicrop import above


class _Rows(tuple):
    nbytes = property(lambda self: 1024 * len(self))  # for `InferenceCache`: a rough size


def merge_rows(
    result: InferenceResult, refined: CropDetections, config: ViCropConfig, threshold: float, *,
    class_names: tuple[str, ...], truth: GroundTruth | None = None, cache: InferenceCache | None = None,
) -> list[dict]:  # fmt: skip
    """One row per merge of `MERGES`: the same crops fused with the full image (`result`) by it,
    the detections above `threshold` it leaves, how many come from the crops, and with ground
    truth TP / FP / FN and the merge diagnostics (duplicates on one object, seam splits); kept in
    `cache` when given (the fusion reads `result` only through its detections and transform)."""

    def key() -> tuple:
        base = to_detections(result, score_threshold=config.score_threshold)
        return ("merge_rows", content_key(
            base, result.transform, refined.detections, config, threshold, class_names, truth
        ))  # fmt: skip

    def compute() -> _Rows:
        return _Rows(_merge_rows(result, refined, config, threshold, class_names, truth))

    return list(cached(cache, key, compute))


def _merge_rows(result, refined, config, threshold, class_names, truth) -> list[dict]:
    rows = []
    for merge in MERGES:
        fusion = with_merge(config.fusion, merge)
        fused = above(fuse_with_full_image(result, refined, replace(config, fusion=fusion))[1], threshold)
        row = {
            "merge": merge_label(fusion, config.score_threshold),
            "detections": len(fused),
            "from crops": int(fused.data["refined"].sum()),
        }
        if truth is not None:
            match = match_ground_truth(fused, truth, class_names=class_names)
            _, ids = truth_class_ids(truth, class_names)
            found = fused.class_id if match.class_aware else np.zeros(len(fused), np.int64)
            diagnostics = merge_diagnostics(
                fused.xyxy,
                fused.confidence,
                found,
                truth.boxes_xyxy,
                np.array(ids),
                score_threshold=threshold,
            )
            row |= {
                "TP": int((match.status == "TP").sum()),
                "FP": int((match.status == "FP").sum()),
                "FN": int(match.missed.sum()),
                "duplicates": diagnostics.duplicates,
                "split objects": diagnostics.splits,
            }
        rows.append(row)
    return rows
