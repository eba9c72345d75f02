"""ViCrop-Det, planning: where to look again. Window scores -> a gate -> top-K non-overlapping crops."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import supervision as sv

from sodviz.attention.maps import image_attention
from sodviz.boxes import intersection_area, round_into_image
from sodviz.cache import DEFAULT_CACHE, InferenceCache
from sodviz.crops.fusion import Fusion, fuse_detections
from sodviz.crops.packing import detect_packed
from sodviz.crops.redetect import CropDetections, detect_crops
from sodviz.crops.windows import (
    WindowScores,
    cells_to_image,
    joint_score,
    score_windows,
    sliding_windows,
    uncovered_intensity,
)
from sodviz.detector.inference import run_inference, to_detections
from sodviz.detector.loading import Detector
from sodviz.types import InferenceResult


@dataclass(frozen=True)
class ViCropConfig:
    """Every knob of ViCrop-Det: planning, re-detection and fusion (the ViCrop page's sliders).

    Attributes:
        k: at most this many crops.
        scales: window sides as fractions of the image's shorter side.
        overlap: overlap of neighbouring windows of one scale, in [0, 1).
        alpha, beta: exponents of ambiguity (SAE) and saliency (intensity) in the joint score.
        max_overlap: chosen crops may share at most this fraction of the smaller one's area.
        selection: "marginal" rescores after each pick with the attention mass not yet covered
            (`uncovered_intensity`), so later crops go where attention is left; "fixed" keeps
            every window's first score.
        fill: with "marginal", once the chosen crops cover all the attention, the other crops go by
            the windows' own scores (still within `max_overlap`) instead of leaving budget unspent.
        pixel_budget: optional cap on the chosen crops' total area, in multiples of the image area.
        attention: "all" or "uncertain" queries make the image-level attention (`image_attention`).
        score_band: the scores of "uncertain" queries, for the attention and for the gate.
        gate_min_uncertain: skip refinement when fewer queries than this are uncertain (0: never).
        layer: decoder layer of the attention (None: the mean).
        score_threshold: detections of the full image and of the crops kept for fusion.
        border_factor: confidence factor of crop boxes cut by a crop edge inside the image (1: none).
        fusion: how the full image's and the crops' detections become one set (`Fusion`).
        crop_size: the model input side each crop is re-detected at (None: the image's own input
            size); smaller crops of small objects need fewer pixels than the whole image.
        pack: 0 re-detects each crop as its own input (one batch); n >= 1 packs up to n crops
            onto each canvas of the image's input size and runs one pass per canvas
            (`crops.packing`), `crop_size` unused.
    """

    k: int = 4
    scales: tuple[float, ...] = (0.25, 0.5)
    overlap: float = 0.25
    alpha: float = 1.0
    beta: float = 1.0
    max_overlap: float = 0.5
    selection: str = "marginal"
    fill: bool = True
    pixel_budget: float | None = None
    attention: str = "all"
    score_band: tuple[float, float] = (0.1, 0.5)
    gate_min_uncertain: int = 0
    layer: int | None = -1
    score_threshold: float = 0.01
    border_factor: float = 0.5
    fusion: Fusion = Fusion()
    crop_size: int | None = None
    pack: int = 0

    def without_fusion(self) -> ViCropConfig:
        """The same planning and re-detection with the fusion at its default: the key of anything
        that uses the crops but not their fusion (ACS candidates)."""
        return replace(self, fusion=Fusion())

    def __post_init__(self) -> None:
        if self.selection not in ("marginal", "fixed"):
            raise ValueError(f"selection must be 'marginal' or 'fixed', got {self.selection!r}")
        if self.crop_size is not None and (self.crop_size < 32 or self.crop_size % 32):
            raise ValueError(
                f"crop_size must be a multiple of 32 pixels (the coarsest stride), not {self.crop_size}"
            )
        if self.pack < 0:
            raise ValueError(f"pack must be 0 (no packing) or crops per canvas, got {self.pack}")


@dataclass(frozen=True, slots=True)
class CropPlan:
    """Which crops to re-detect, and why.

    Attributes:
        windows: every candidate window's scores, on the attention grid.
        windows_xyxy: float32 `(W, 4)`, the candidates in original-image pixels.
        chosen: int64 `(K,)`, indices of the chosen windows, best first (empty when gated).
        crops_xyxy: int64 `(K, 4)`, the chosen crops in original pixels, inside the image.
        refine: the gate's decision; False means keep the original predictions.
        reason: one sentence saying why (and, when fewer than K crops were chosen, why no more).
        uncertain_queries: how many queries scored inside `score_band`.
        shortfall: why fewer than K crops were chosen ("" when K were, or when gated).
    """

    windows: WindowScores
    windows_xyxy: np.ndarray
    chosen: np.ndarray
    crops_xyxy: np.ndarray
    refine: bool
    reason: str
    uncertain_queries: int
    shortfall: str = ""


def gate(result: InferenceResult, config: ViCropConfig = ViCropConfig()) -> tuple[bool, int]:
    """The gate's decision (refine or not) and the number of queries scoring inside `score_band`."""
    low, high = config.score_band
    uncertain = int(((result.scores >= low) & (result.scores < high)).sum())
    return uncertain >= config.gate_min_uncertain, uncertain


def plan_crops(result: InferenceResult, config: ViCropConfig = ViCropConfig()) -> CropPlan:
    """Score windows of the image-level attention, apply the gate, pick the top-K crops."""
    refine, uncertain = gate(result, config)
    attention = image_attention(
        result, mode=config.attention, score_band=config.score_band, layer=config.layer
    )
    valid_h, valid_w = result.transform.valid_grid_hw(attention.shape)
    cells, scale = sliding_windows((valid_h, valid_w), scales=config.scales, overlap=config.overlap)
    windows = score_windows(attention[:valid_h, :valid_w], cells, scale, alpha=config.alpha, beta=config.beta)
    windows_xyxy = cells_to_image(result, cells, attention.shape)
    empty = np.zeros(0, np.int64)
    if not refine:
        reason = f"skipped: {uncertain} uncertain queries, fewer than {config.gate_min_uncertain}"
        return CropPlan(windows, windows_xyxy, empty, np.zeros((0, 4), np.int64), False, reason, uncertain)
    image_h, image_w = result.transform.image_hw

    def rescore(chosen: list[int]) -> np.ndarray:
        left = uncovered_intensity(attention[:valid_h, :valid_w], cells, cells[chosen])
        scores = joint_score(windows.entropy, left, alpha=config.alpha, beta=config.beta)
        if config.fill and not (np.delete(scores, chosen) > 0).any():
            return windows.score.astype(np.float64)  # all attention covered: the windows' own scores
        return scores

    chosen = select_windows(
        windows.score,
        windows_xyxy,
        k=config.k,
        max_overlap=config.max_overlap,
        max_area=None if config.pixel_budget is None else config.pixel_budget * image_h * image_w,
        rescore=rescore if config.selection == "marginal" else None,
    )
    crops = round_into_image(windows_xyxy[chosen], (image_h, image_w))
    reason = f"refined: {uncertain} uncertain queries; {len(chosen)} of {len(windows)} windows chosen"
    shortfall = ""
    if len(chosen) < config.k:
        left = rescore(chosen.tolist()) if config.selection == "marginal" else windows.score
        shortfall = _shortfall(left, windows_xyxy, chosen, config, image_h * image_w)
        reason += f", not {config.k}: {shortfall}"
    return CropPlan(windows, windows_xyxy, chosen, crops, True, reason, uncertain, shortfall)


def _shortfall(scores, windows_xyxy, chosen: np.ndarray, config: ViCropConfig, image_area: float) -> str:
    """Why `select_windows` stopped before K: no attention left, overlap, or the pixel budget."""
    rest = np.setdiff1d(np.flatnonzero(np.asarray(scores) > 0), chosen)
    if not len(rest) and config.selection == "marginal" and not config.fill:
        return "the chosen crops cover all the attention (fill would spend the rest by window score)"
    if not len(rest):
        return "no other window has any attention"
    boxes = np.asarray(windows_xyxy, np.float64)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    fits = [_fits(i, list(chosen), boxes, areas, config.max_overlap) for i in rest]
    if not any(fits):
        return (
            f"every other window with attention overlaps a chosen crop by more than {config.max_overlap:.0%}"
        )
    return f"the pixel budget ({config.pixel_budget} x the image area) is spent"


def select_windows(
    scores: np.ndarray,
    windows_xyxy: np.ndarray,
    *,
    k: int,
    max_overlap: float = 0.0,
    max_area: float | None = None,
    rescore: Callable[[list[int]], np.ndarray] | None = None,
) -> np.ndarray:
    """Greedy top-K by score: a window is skipped when it shares more than `max_overlap` of the
    smaller area with one already chosen, or would take the chosen area past `max_area`.
    With `rescore`, the scores are recomputed from the chosen indices after each pick.
    Windows with score 0 are never chosen. Returns int64 indices, best first."""
    chosen: list[int] = []
    area_used = 0.0
    boxes = np.asarray(windows_xyxy, np.float64).reshape(-1, 4)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    current = np.asarray(scores, np.float64)
    while len(chosen) < k:
        picked = None
        for index in np.argsort(-current, kind="stable"):
            if current[index] <= 0:
                break
            if index in chosen or (max_area is not None and area_used + areas[index] > max_area):
                continue
            if not _fits(index, chosen, boxes, areas, max_overlap):
                continue
            picked = int(index)
            break
        if picked is None:
            break
        chosen.append(picked)
        area_used += areas[picked]
        if rescore is not None:
            current = np.asarray(rescore(chosen), np.float64)
    return np.array(chosen, np.int64)


def _fits(index: int, chosen: list[int], boxes: np.ndarray, areas: np.ndarray, max_overlap: float) -> bool:
    """Window `index` shares at most `max_overlap` of the smaller area with every chosen window."""
    if not chosen:
        return True
    shared = intersection_area(boxes[index], boxes[chosen])
    return not (shared > max_overlap * np.minimum(areas[chosen], areas[index])).any()


@dataclass(frozen=True, slots=True)
class ViCropResult:
    """ViCrop-Det on one image: the plan, the original and refined detections, and their fusion.

    Attributes:
        plan: where it looked again and why (the gate's decision included).
        base: the original detections (score >= the threshold).
        refined: detections of the re-detected crops, in original pixels (empty when gated).
        fused: `fuse_detections(base, refined, config.fusion)`; `data["refined"]` marks the added ones.
        forward_passes: model inputs run: the full image, plus one per crop (or per canvas of
            packed crops).
    """

    plan: CropPlan
    base: sv.Detections
    refined: CropDetections
    fused: sv.Detections
    forward_passes: int


def run_vicrop(
    detector: Detector,
    image: np.ndarray,
    *,
    config: ViCropConfig = ViCropConfig(),
    input_size: int | None = None,
    cache: InferenceCache | None = DEFAULT_CACHE,
) -> ViCropResult:
    """Detect, plan crops from the attention, re-detect them in one batch, fuse (all cached)."""
    result = run_inference(detector, image, input_size=input_size, cache=cache)
    plan, refined = redetect_planned(detector, image, result, config, input_size=input_size, cache=cache)
    base, fused = fuse_with_full_image(result, refined, config)
    return ViCropResult(plan, base, refined, fused, forward_passes=1 + len(refined.results))


def fuse_with_full_image(result: InferenceResult, refined: CropDetections, config: ViCropConfig) -> tuple:
    """(the full image's detections, their fusion with the crops'), by `config`'s threshold and fusion."""
    base = to_detections(result, score_threshold=config.score_threshold)
    fused = fuse_detections(
        base, refined.detections, config.fusion, scale=min(result.transform.scale_xy),
        score_threshold=config.score_threshold,
    )  # fmt: skip
    return base, fused


def redetect_planned(
    detector: Detector, image: np.ndarray, result: InferenceResult, config: ViCropConfig, *,
    input_size: int | None = None, cache: InferenceCache | None = DEFAULT_CACHE,
) -> tuple[CropPlan, CropDetections]:  # fmt: skip
    """ViCrop-Det without the fusion: plan the crops on `result` (the image's pass) and re-detect them."""
    plan = plan_crops(result, config)
    return plan, redetect_crops(detector, image, plan.crops_xyxy, config, input_size=input_size, cache=cache)


def redetect_crops(
    detector: Detector, image: np.ndarray, crops_xyxy: np.ndarray, config: ViCropConfig, *,
    input_size: int | None = None, cache: InferenceCache | None = DEFAULT_CACHE,
) -> CropDetections:  # fmt: skip
    """Re-detect crops as ViCrop-Det does (each at `config.crop_size`, or packed `config.pack` per
    canvas), whoever chose them: ViCrop-Det's plan or a baseline's."""
    if config.pack:
        return detect_packed(
            detector, image, crops_xyxy, per_canvas=config.pack, canvas_side=input_size,
            score_threshold=config.score_threshold, border_factor=config.border_factor, cache=cache,
        )  # fmt: skip
    return detect_crops(
        detector, image, crops_xyxy, input_size=config.crop_size or input_size,
        score_threshold=config.score_threshold, border_factor=config.border_factor, cache=cache,
    )  # fmt: skip
