"""Labelled candidates: a detector run on scenes with ground truth, each object's candidate boxes
gathered (optionally with the queries of ViCrop-Det's crops). One builder serves the `acs` study
(COCO splits) and the Candidates page (the sample scenes, fitted and cached)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from sodviz.acs.candidates import Candidates, candidates_for_objects
from sodviz.acs.selectors import FittedAcs, fit_selectors
from sodviz.cache import DEFAULT_CACHE, InferenceCache, cached, image_hash
from sodviz.crops.vicrop import ViCropConfig, redetect_planned
from sodviz.detector.inference import run_inference
from sodviz.detector.loading import Detector
from sodviz.evaluation.ground_truth import GroundTruth
from sodviz.types import InferenceResult


@dataclass(frozen=True)
class LabelledScenes:
    """A detector's results on labelled scenes and the candidates of their ground-truth objects.

    Attributes:
        results: one `InferenceResult` per scene.
        candidates: object indices count the scenes' ground-truth objects in order, so an object
            without candidates still takes its number.
        objects: ground-truth objects in all scenes (with or without a candidate).
    """

    results: list[InferenceResult]
    candidates: Candidates
    objects: int


def label_scenes(
    detector: Detector, scenes: Iterable[tuple[np.ndarray, GroundTruth]], *, count: int,
    min_iou: float = 0.1, crops: ViCropConfig | None = None, cache: InferenceCache | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> LabelledScenes:  # fmt: skip
    """Run the detector on each of `count` scenes (image, ground truth) and gather each object's
    candidates. With `crops`, ViCrop-Det plans crops on each image, re-detects them at native
    resolution and their queries join the candidates. Forward passes go through `cache`."""
    results, parts, objects = [], [], 0
    for index, (image, truth) in enumerate(scenes):
        result = run_inference(detector, image, cache=cache)
        results.append(result)
        refined = None
        if crops is not None:
            _, refined = redetect_planned(detector, image, result, crops, cache=cache)
        part = candidates_for_objects(
            result, truth.boxes_xyxy, crops=refined, min_iou=min_iou, image_index=index
        )
        parts.append(replace(part, object_index=part.object_index + objects))
        objects += len(truth)
        if on_progress is not None:
            on_progress((index + 1) / count)
    return LabelledScenes(results, Candidates.concatenate(parts, renumber=False), objects)


def fit_acs(
    detector: Detector, scenes: Sequence[tuple[np.ndarray, GroundTruth]], *, top_heads: int = 4,
    regressor: str = "ridge", crops: ViCropConfig | None = None,
    on_progress: Callable[[float], None] | None = None, cache: InferenceCache | None = DEFAULT_CACHE,
) -> FittedAcs:  # fmt: skip
    """ACS-Free's heads and ACS-Learned's `regressor` fitted on labelled `scenes` (`label_scenes`;
    forward passes cached), the fit itself kept in `cache` so page reruns refit nothing. Raises
    ValueError when fewer than three candidates overlap an object."""

    def key() -> tuple:
        images = tuple(image_hash(image) for image, _ in scenes)
        boxes = tuple(truth.boxes_xyxy.tobytes() for _, truth in scenes)
        planning = None if crops is None else crops.without_fusion()  # fusion plays no part here
        return ("fit_acs", detector.content_hash, images, top_heads, regressor, planning, boxes)

    def fit() -> FittedAcs:
        labelled = label_scenes(
            detector, scenes, count=len(scenes), crops=crops, cache=cache, on_progress=on_progress
        )
        return fit_selectors(labelled.candidates, top_heads=top_heads, regressor=regressor)

    return cached(cache, key, fit)
