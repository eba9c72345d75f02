"""What a budget buys on one image: the passes' GFLOPs, the crops within a budget, and each
method of `METHODS` run at one budget (the benchmark's and the analysis's one spending rule)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import supervision as sv

from sodviz.cache import InferenceCache
from sodviz.crops.baselines import BASELINES, run_baseline
from sodviz.crops.slicing import asahi_grid, run_slicing
from sodviz.crops.vicrop import ViCropConfig, run_vicrop
from sodviz.detector.flops import forward_gflops
from sodviz.detector.inference import run_inference, to_detections
from sodviz.detector.loading import Detector
from sodviz.detector.preprocess import input_transform
from sodviz.types import InferenceResult

METHODS = ("base", "vicrop", "vicrop_gated", "slicing", "slicing_only", "asahi", *BASELINES)


@dataclass(frozen=True, slots=True)
class BudgetRun:
    """One method at one budget on one image.

    Attributes:
        detections: its detections (fused with the full image's where it uses the full image).
        results: every pass it ran, the full image's first ("slicing_only": only where its one slice
            is the whole image):
            `len(results)` passes, and `detector.flops.results_gflops` of them its GFLOPs.
        shortfall: why it used less than its budget ("" when it did not).
        full_image: whether it used the full-image pass (all but "slicing_only" with a grid of
            more than one slice; its one slice of a square image is that pass, timed as it).
    """

    detections: sv.Detections
    results: tuple[InferenceResult, ...]
    shortfall: str = ""
    full_image: bool = True

    @property
    def passes(self) -> int:
        return len(self.results)


@dataclass(frozen=True, slots=True)
class PassCosts:
    """GFLOPs of the passes a budget buys on one image: the full image, one crop at `crop_size`
    (a square crop: its model input; crops of other shapes cost what their own input costs), and
    one canvas of packed crops."""

    full: float
    crop: float
    canvas: float


def pass_costs(
    detector: Detector, image, result: InferenceResult, vicrop: ViCropConfig, *, input_size=None
) -> PassCosts:
    """The `PassCosts` of `image`, whose full-image pass gave `result`."""
    size = input_size or detector.input_size

    def square(side: int) -> float:
        return forward_gflops(
            detector, input_transform(detector, np.zeros((side, side, 3), np.uint8), input_size=side).input_hw
        )

    return PassCosts(
        full=forward_gflops(detector, result.transform.input_hw),
        crop=square(vicrop.crop_size or size),
        canvas=square(size),
    )


def crops_within_budget(budget: int, unit: str, costs: PassCosts | None, *, pack: int = 0) -> int:
    """Crops (or slices) a budget buys beyond the full-image pass: `budget - 1` passes' worth,
    each crop one pass (`pack` crops per packed canvas); in GFLOPs, `budget - 1` full-image
    passes' GFLOPs divided by what one crop (or one canvas) costs."""
    spare = max(0, budget - 1)
    if unit == "passes":
        return spare * max(pack, 1)
    if costs is None:
        raise ValueError("a budget in GFLOPs needs the image's pass costs")
    each = costs.canvas if pack else costs.crop
    return int(spare * costs.full / each + 1e-9) * max(pack, 1)


def detect_at_budget(
    detector: Detector, image, method: str, budget: int, vicrop: ViCropConfig, *,
    unit: str = "passes", input_size: int | None = None, cache: InferenceCache | None = None,
    costs: PassCosts | None = None, truth_xyxy: np.ndarray | None = None, image_key: str = "",
) -> BudgetRun:  # fmt: skip
    """One method of `METHODS` at one budget (see `run_benchmark`); the cache off unless given (a
    cache holding the full-image pass lets a caller share it between methods). With `unit`
    "gflops", `costs` (`pass_costs`) prices the passes. "slicing_only" spends the whole budget
    on slices (SAHI without its full-image pass); "asahi" runs ASAHI's fixed grid (`asahi_grid`)
    with the full image where the budget affords all of it, the full image alone otherwise;
    "oracle" needs `truth_xyxy`; "random" is seeded by `image_key`."""
    result = run_inference(detector, image, input_size=input_size, cache=cache)
    if method == "base":
        return BudgetRun(to_detections(result, score_threshold=vicrop.score_threshold), (result,))
    pack = vicrop.pack if method in ("vicrop", "vicrop_gated", *BASELINES) else 0
    crops = crops_within_budget(budget, unit, costs, pack=pack)
    if method == "asahi":
        rows, cols = asahi_grid(image.shape[:2])
        if crops < rows * cols:
            base = to_detections(result, score_threshold=vicrop.score_threshold)
            return BudgetRun(base, (result,), f"ASAHI's {rows * cols} slices cost more than the budget")
        sliced = run_slicing(
            detector, image, forward_passes=rows * cols + 1, score_threshold=vicrop.score_threshold,
            fusion=vicrop.fusion, border_factor=vicrop.border_factor, input_size=input_size,
            slice_size=vicrop.crop_size, grid=(rows, cols), cache=cache,
        )  # fmt: skip
        why = "" if rows * cols == crops else f"ASAHI runs {rows * cols} slices, whatever the budget"
        return BudgetRun(sliced.detections, sliced.results, why)
    if method.startswith("slicing"):
        full = method == "slicing"
        crops = crops if full else crops_within_budget(budget + 1, unit, costs)  # the full pass's share too
        sliced = run_slicing(
            detector, image, forward_passes=crops + full, score_threshold=vicrop.score_threshold,
            fusion=vicrop.fusion, border_factor=vicrop.border_factor, input_size=input_size,
            slice_size=vicrop.crop_size, with_full_image=full, cache=cache,
        )  # fmt: skip
        slices = max(len(sliced.crops_xyxy), 1)
        why = "" if slices == crops else (
            f"the largest near-square grid within the budget has {slices} slice{'s' * (slices > 1)}"
        )  # fmt: skip
        whole = slices == 1 and _covers(sliced.crops_xyxy, image.shape[:2])  # one slice: the full-image pass
        return BudgetRun(sliced.detections, sliced.results, why, full_image=full or whole)
    if method in BASELINES:
        config = replace(vicrop, k=crops)
        fused, refined = run_baseline(
            method, detector, image, result, config, truth_xyxy=truth_xyxy, image_key=image_key,
            input_size=input_size, cache=cache,
        )  # fmt: skip
        why = "" if len(refined.crops_xyxy) == crops else "fewer windows with a score than the budget's crops"
        return BudgetRun(fused, (result, *refined.results), why)
    gate = vicrop.gate_min_uncertain if method == "vicrop_gated" else 0
    config = replace(vicrop, k=crops, gate_min_uncertain=gate)
    outcome = run_vicrop(detector, image, config=config, input_size=input_size, cache=cache)
    plan = outcome.plan
    why = "" if len(plan.crops_xyxy) == crops else (
        plan.shortfall or f"gated: fewer than {config.gate_min_uncertain} uncertain queries"
    )  # fmt: skip
    return BudgetRun(outcome.fused, (result, *outcome.refined.results), why)


def _covers(crops_xyxy: np.ndarray, image_hw: tuple[int, int]) -> bool:
    """Whether the slices are the whole image (none, or one slice covering it)."""
    height, width = image_hw
    return len(crops_xyxy) == 0 or np.array_equal(np.asarray(crops_xyxy[0], float), [0, 0, width, height])
