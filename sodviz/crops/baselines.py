"""Training-free crop baselines, choosing among ViCrop-Det's own candidate windows under its
overlap rule, re-detected and fused exactly as ViCrop-Det's crops are; only the choice differs:

- `random`: windows in a random order (seeded by the image), a floor.
- `density`: the windows holding the most score of the first pass's detections above a low
  threshold, each detection counted once (greedy cover): ClusDet's and DMNet's idea of cropping
  where objects cluster, from the detector's own detections instead of a density network.
- `oracle`: the windows holding the most ground-truth objects not yet in a chosen window (greedy
  cover), a ceiling no method without the annotations can reach.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import supervision as sv

from sodviz.boxes import round_into_image
from sodviz.cache import DEFAULT_CACHE, InferenceCache
from sodviz.crops.redetect import CropDetections
from sodviz.crops.vicrop import (
    ViCropConfig,
    fuse_with_full_image,
    plan_crops,
    redetect_crops,
    select_windows,
)
from sodviz.detector.loading import Detector
from sodviz.types import InferenceResult

BASELINES = ("random", "density", "oracle")
DENSITY_SCORE = 0.05


def baseline_crops(
    kind: str,
    result: InferenceResult,
    config: ViCropConfig,
    *,
    truth_xyxy: np.ndarray | None = None,
    image_key: str = "",
) -> np.ndarray:
    """int64 `(<= config.k, 4)` crops chosen by a baseline among ViCrop-Det's windows."""
    if kind not in BASELINES:
        raise ValueError(f"unknown baseline {kind!r}; choose from {BASELINES}")
    windows = plan_crops(result, replace(config, k=0, gate_min_uncertain=0)).windows_xyxy
    if kind == "random":
        seed = int.from_bytes(hashlib.sha256(image_key.encode()).digest()[:8], "little")
        scores, rescore = np.random.default_rng(seed).random(len(windows)) + 1e-6, None
    else:
        if kind == "oracle":
            if truth_xyxy is None:
                raise ValueError("the oracle baseline needs the image's ground-truth boxes")
            points, weights = _centres(truth_xyxy), np.ones(len(truth_xyxy))
        else:
            scores_all = result.scores
            keep = scores_all >= DENSITY_SCORE
            points, weights = _centres(result.boxes_xyxy[keep]), scores_all[keep].astype(np.float64)
        inside = _inside(points, windows)  # (windows, points)

        def rescore(chosen: list[int]) -> np.ndarray:
            left = ~inside[chosen].any(0)
            return inside.astype(np.float64) @ (weights * left)

        scores = rescore([])
    chosen = select_windows(scores, windows, k=config.k, max_overlap=config.max_overlap, rescore=rescore)
    return round_into_image(windows[chosen], result.transform.image_hw)


def run_baseline(
    kind: str,
    detector: Detector,
    image: np.ndarray,
    result: InferenceResult,
    config: ViCropConfig,
    *,
    truth_xyxy: np.ndarray | None = None,
    image_key: str = "",
    input_size: int | None = None,
    cache: InferenceCache | None = DEFAULT_CACHE,
) -> tuple[sv.Detections, CropDetections]:
    """A baseline's crops re-detected and fused with the full image's detections (`result`), as
    `run_vicrop` does: (fused detections, the crops' detections)."""
    crops = baseline_crops(kind, result, config, truth_xyxy=truth_xyxy, image_key=image_key)
    refined = redetect_crops(detector, image, crops, config, input_size=input_size, cache=cache)
    return fuse_with_full_image(result, refined, config)[1], refined


def _centres(boxes_xyxy: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)


def _inside(points: np.ndarray, windows_xyxy: np.ndarray) -> np.ndarray:
    """bool `(windows, points)`: the point lies in the window."""
    w = np.asarray(windows_xyxy, np.float64).reshape(-1, 4)[:, None]
    x, y = points[None, :, 0], points[None, :, 1]
    return (x >= w[..., 0]) & (x < w[..., 2]) & (y >= w[..., 1]) & (y < w[..., 3])
