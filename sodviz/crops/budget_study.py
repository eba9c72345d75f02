"""Base detection vs ViCrop-Det vs uniform slicing at matched forward-pass budgets, on a COCO dataset."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import supervision as sv

from sodviz.boxes import xywh_to_xyxy
from sodviz.cache import InferenceCache
from sodviz.crops.baselines import BASELINES, run_baseline
from sodviz.crops.slicing import run_slicing
from sodviz.crops.vicrop import ViCropConfig, run_vicrop
from sodviz.detector.flops import forward_gflops, results_gflops
from sodviz.detector.inference import inference_key, run_inference, to_detections
from sodviz.detector.loading import Detector
from sodviz.detector.preprocess import input_transform
from sodviz.evaluation.coco import coco_metrics, coco_results, first_images, load_coco, model_categories
from sodviz.imageio import load_image
from sodviz.types import InferenceResult

METHODS = ("base", "vicrop", "vicrop_gated", "slicing", "slicing_only", *BASELINES)
UNITS = ("passes", "gflops")
COLUMNS = ["method", "budget", "AP", "AP50", "AP_S", "AP_M", "AP_L", "AP_vt", "AP_t", "AP_s", "AP_m",
           "forward_passes", "gflops", "gflops_ratio", "latency_ratio", "unspent"]  # fmt: skip


@dataclass(frozen=True, slots=True)
class BudgetRun:
    """One method at one budget on one image.

    Attributes:
        detections: its detections (fused with the full image's where it uses the full image).
        results: every pass it ran, the full image's first (none for "slicing_only"):
            `len(results)` passes, and `detector.flops.results_gflops` of them its GFLOPs.
        shortfall: why it used less than its budget ("" when it did not).
        full_image: whether it used the full-image pass (all but "slicing_only").
    """

    detections: sv.Detections
    results: tuple[InferenceResult, ...]
    shortfall: str = ""
    full_image: bool = True

    @property
    def passes(self) -> int:
        return len(self.results)


def run_benchmark(
    detector: Detector,
    annotations: str | Path,
    images: str | Path,
    *,
    methods: tuple[str, ...] = ("base", "vicrop", "slicing"),
    budgets: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8),
    unit: str = "passes",
    vicrop: ViCropConfig | None = None,
    max_images: int | None = None,
    coco_backend: str = "faster",
    on_progress: Callable[[float], None] | None = None,
) -> list[dict]:
    """One row per (method, budget): COCO / AI-TOD AP (input-pixel buckets), mean forward passes,
    GFLOPs and latency relative to the base pass, all measured in this run.

    A budget is `budget` times the full-image pass, in forward passes or in GFLOPs (`unit`), the
    full-image pass included; `crops_within_budget` says what each method buys with the rest.
    The table reports what each method actually used, and `unspent` says on how many images the
    budget was not spent, and why (the most frequent reasons). "vicrop" runs with the gate off,
    "vicrop_gated" with `vicrop`'s gate, so its mean cost falls below the budget on images the
    gate skips. `vicrop` holds the other knobs (default `ViCropConfig()`), its `score_threshold`,
    `border_factor`, `fusion` and `crop_size` used by every method. "base" is budget 1 only.

    The full-image pass runs once per image and is shared by every method and budget; each
    method's latency is that pass plus its own work, with nothing else cached (so a budget never
    reuses the crops of a smaller one). AP by faster-coco-eval (`coco_backend`; its numbers are
    pycocotools', tested), or by "pycocotools".
    """
    vicrop = vicrop or ViCropConfig()
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    truth, category_of = model_categories(
        first_images(load_coco(annotations), max_images), detector.class_names
    )
    runs = [("base", 1)] + [(m, b) for m in methods if m != "base" for b in budgets if b > 1]
    boxes_of: dict = {}
    for annotation in truth["annotations"]:
        if not annotation.get("iscrowd", 0):  # the oracle's targets: the objects AP counts
            boxes_of.setdefault(annotation["image_id"], []).append(annotation["bbox"])
    boxes_of = {key: xywh_to_xyxy(np.array(boxes, np.float64)) for key, boxes in boxes_of.items()}
    found = {run: [] for run in runs}
    seconds = dict.fromkeys(runs, 0.0)
    passes = dict.fromkeys(runs, 0)
    gflops = dict.fromkeys(runs, 0.0)
    unspent = {run: Counter() for run in runs}
    scale = {}
    for done, record in enumerate(truth["images"], start=1):
        image = load_image(Path(images) / record["file_name"])
        scale[record["id"]] = detector.input_size / max(image.shape[:2])
        started = time.perf_counter()
        result = run_inference(detector, image, cache=None)
        base_seconds = time.perf_counter() - started
        costs = pass_costs(detector, image, result, vicrop)  # counted outside the timings
        for method, budget in runs:
            cache = InferenceCache()  # the full-image pass only
            cache.get_or_compute(inference_key(detector, image, detector.input_size), lambda r=result: r)
            started = time.perf_counter()
            run = detect_at_budget(
                detector, image, method, budget, vicrop, unit=unit, cache=cache, costs=costs,
                truth_xyxy=boxes_of.get(record["id"], np.zeros((0, 4))), image_key=record["file_name"],
            )  # fmt: skip
            own = (time.perf_counter() - started) * (method != "base")
            seconds[(method, budget)] += base_seconds * run.full_image + own
            passes[(method, budget)] += run.passes
            gflops[(method, budget)] += results_gflops(detector, run.results)
            if run.shortfall:
                unspent[(method, budget)][run.shortfall] += 1
            found[(method, budget)] += coco_results(
                run.detections.xyxy,
                run.detections.confidence,
                category_of[run.detections.class_id],
                image_id=record["id"],
            )
        if on_progress is not None:
            on_progress(done / len(truth["images"]))
    return _rows(truth, found, seconds, passes, gflops, scale, unspent, coco_backend)


def _rows(
    truth, found: dict, seconds: dict, passes: dict, gflops: dict, scale: dict, unspent: dict, backend: str
) -> list[dict]:
    """One table row per (method, budget) from what was summed over the images."""
    count = max(1, len(truth["images"]))
    rows = []
    for method, budget in found:
        metrics = coco_metrics(truth, found[(method, budget)], area_scale=scale, backend=backend)
        rows.append(
            {"method": method, "budget": budget}
            | {name: metrics[name] for name in COLUMNS[2:11]}
            | {
                "forward_passes": passes[(method, budget)] / count,
                "gflops": gflops[(method, budget)] / count,
                "gflops_ratio": gflops[(method, budget)] / max(gflops[("base", 1)], 1e-9),
                "latency_ratio": seconds[(method, budget)] / max(seconds[("base", 1)], 1e-9),
                "unspent": "; ".join(
                    f"{n}/{count}: {why}" for why, n in unspent[(method, budget)].most_common(2)
                ),
            }
        )
    return rows


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
    on slices (SAHI without its full-image pass); "oracle" needs `truth_xyxy`; "random" is seeded
    by `image_key`."""
    result = run_inference(detector, image, input_size=input_size, cache=cache)
    if method == "base":
        return BudgetRun(to_detections(result, score_threshold=vicrop.score_threshold), (result,))
    pack = vicrop.pack if not method.startswith("slicing") else 0
    crops = crops_within_budget(budget, unit, costs, pack=pack)
    if method.startswith("slicing"):
        full = method == "slicing"
        crops = crops if full else crops_within_budget(budget + 1, unit, costs)  # the full pass's share too
        sliced = run_slicing(
            detector, image, forward_passes=crops + full, score_threshold=vicrop.score_threshold,
            fusion=vicrop.fusion, border_factor=vicrop.border_factor, input_size=input_size,
            slice_size=vicrop.crop_size, with_full_image=full, cache=cache,
        )  # fmt: skip
        slices = len(sliced.crops_xyxy)
        why = "" if slices == crops else (
            f"the largest near-square grid within the budget has {slices or 1} slice{'s' * bool(slices)}"
        )  # fmt: skip
        return BudgetRun(sliced.detections, sliced.results, why, full_image=full)
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
