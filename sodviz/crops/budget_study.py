"""Base detection vs ViCrop-Det vs uniform slicing at matched forward-pass budgets, on a COCO dataset."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sodviz.boxes import xywh_to_xyxy
from sodviz.cache import InferenceCache
from sodviz.crops.budget import METHODS, detect_at_budget, pass_costs
from sodviz.crops.fusion import merge_label, with_merge
from sodviz.crops.vicrop import ViCropConfig
from sodviz.detector.flops import results_gflops
from sodviz.detector.inference import inference_key, run_inference
from sodviz.detector.loading import Detector
from sodviz.evaluation.coco import coco_metrics, coco_results, first_images, load_coco, model_categories
from sodviz.evaluation.ground_truth import GroundTruth, single_image_coco
from sodviz.evaluation.merge_diagnostics import MergeDiagnostics, merge_diagnostics
from sodviz.imageio import load_image

UNITS = ("passes", "gflops")
COLUMNS = ["method", "budget", "merge", "AP", "AP50", "AP_S", "AP_M", "AP_L", "AP_vt", "AP_t", "AP_s", "AP_m",
           "duplicates", "splits", "forward_passes", "gflops", "gflops_ratio", "latency_ratio",
           "unspent"]  # fmt: skip
_METRICS = COLUMNS[3:12]


@dataclass
class _Tally:
    """What one (method, budget, merge) summed over the images."""

    found: list = field(default_factory=list)
    seconds: float = 0.0
    passes: int = 0
    gflops: float = 0.0
    unspent: Counter = field(default_factory=Counter)
    diagnostics: MergeDiagnostics = field(default_factory=MergeDiagnostics)


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
    merges: tuple[str, ...] = (),
    on_progress: Callable[[float], None] | None = None,
) -> list[dict]:
    """One row per (method, budget, merge): COCO / AI-TOD AP (input-pixel buckets), the merge
    diagnostics (duplicates and seam splits per 100 objects, `merge_diagnostics`), mean forward
    passes, GFLOPs and latency relative to the base pass, all measured in this run.

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

    `merges` adds rows for other merges of `fusion.MERGES` (`vicrop.fusion`'s own is always
    run): each re-fuses the same passes (kept in the run's cache), so its passes and GFLOPs are
    the method's and its latency the method's plus its own re-merge (an upper bound: the cache
    look-ups and the first merge are counted too).
    """
    coco = first_images(load_coco(annotations), max_images)
    settings = dict(methods=methods, budgets=budgets, unit=unit, vicrop=vicrop, coco_backend=coco_backend)
    return benchmark_coco(
        detector, coco, lambda record: load_image(Path(images) / record["file_name"]), merges=merges,
        on_progress=on_progress, **settings,
    )  # fmt: skip


def benchmark_image(detector: Detector, image: np.ndarray, truth: GroundTruth, **settings) -> list[dict]:
    """`run_benchmark` on one image and its ground truth (the ViCrop page's figure): `settings`
    are `benchmark_coco`'s."""
    names = sorted(set(truth.class_names.tolist()))
    height, width = image.shape[:2]
    categories = [{"id": index + 1, "name": name} for index, name in enumerate(names)]
    record = {"id": 1, "file_name": "image", "height": height, "width": width}
    coco = single_image_coco(
        truth, [names.index(n) + 1 for n in truth.class_names.tolist()], categories, record
    )
    return benchmark_coco(detector, coco, lambda record: image, **settings)


def benchmark_coco(
    detector: Detector,
    coco: dict,
    load: Callable[[dict], np.ndarray],
    *,
    methods: tuple[str, ...] = ("base", "vicrop", "slicing"),
    budgets: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8),
    unit: str = "passes",
    vicrop: ViCropConfig | None = None,
    coco_backend: str = "faster",
    merges: tuple[str, ...] = (),
    on_progress: Callable[[float], None] | None = None,
) -> list[dict]:
    """`run_benchmark` on a loaded COCO dict, each image from `load(image record)`."""
    vicrop = vicrop or ViCropConfig()
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    truth, category_of = model_categories(coco, detector.class_names)
    runs = [("base", 1)] + [(m, b) for m in methods if m != "base" for b in budgets if b > 1]
    primary = vicrop.fusion.merge
    variants = [m for m in dict.fromkeys(merges) if m != primary]
    fusions = {m: with_merge(vicrop.fusion, m) for m in [primary, *variants]}
    labels = {m: merge_label(f, vicrop.score_threshold) for m, f in fusions.items()}
    truth_of: dict = {}
    for annotation in truth["annotations"]:
        if not annotation.get("iscrowd", 0):  # the oracle's targets and the diagnostics': what AP counts
            truth_of.setdefault(annotation["image_id"], []).append(
                (*annotation["bbox"], annotation["category_id"])
            )
    truth_of = {key: np.array(rows, np.float64) for key, rows in truth_of.items()}
    tallies: dict[tuple[str, int, str], _Tally] = {}
    scale = {}
    for done, record in enumerate(truth["images"], start=1):
        image = load(record)
        scale[record["id"]] = detector.input_size / max(image.shape[:2])
        objects = truth_of.get(record["id"], np.zeros((0, 5)))
        truth_xyxy = xywh_to_xyxy(objects[:, :4])
        started = time.perf_counter()
        result = run_inference(detector, image, cache=None)
        base_seconds = time.perf_counter() - started
        costs = pass_costs(detector, image, result, vicrop)  # counted outside the timings
        for method, budget in runs:
            cache = InferenceCache()  # the full-image pass, then this run's own passes for its re-merges
            cache.get_or_compute(inference_key(detector, image, detector.input_size), lambda r=result: r)
            own = 0.0
            for merge in [primary] + variants * (method != "base"):
                started = time.perf_counter()
                run = detect_at_budget(
                    detector, image, method, budget, replace(vicrop, fusion=fusions[merge]), unit=unit,
                    cache=cache, costs=costs, truth_xyxy=truth_xyxy, image_key=record["file_name"],
                )  # fmt: skip
                own += (time.perf_counter() - started) * (method != "base")
                tally = tallies.setdefault(
                    (method, budget, "" if method == "base" else labels[merge]), _Tally()
                )
                tally.seconds += base_seconds * run.full_image + own
                tally.passes += run.passes
                tally.gflops += results_gflops(detector, run.results)
                if run.shortfall:
                    tally.unspent[run.shortfall] += 1
                found = run.detections
                categories = category_of[found.class_id]
                tally.found += coco_results(found.xyxy, found.confidence, categories, image_id=record["id"])
                tally.diagnostics += merge_diagnostics(
                    found.xyxy, found.confidence, categories, truth_xyxy, objects[:, 4]
                )
        if on_progress is not None:
            on_progress(done / len(truth["images"]))
    return _rows(truth, tallies, scale, coco_backend)


def _rows(truth, tallies: dict, scale: dict, backend: str) -> list[dict]:
    """One table row per (method, budget, merge) from what was summed over the images."""
    count = max(1, len(truth["images"]))
    base = tallies[("base", 1, "")]
    rows = []
    for (method, budget, merge), tally in tallies.items():
        metrics = coco_metrics(truth, tally.found, area_scale=scale, backend=backend)
        rows.append(
            {"method": method, "budget": budget, "merge": merge}
            | {name: metrics[name] for name in _METRICS}
            | tally.diagnostics.per_100_objects()
            | {
                "forward_passes": tally.passes / count,
                "gflops": tally.gflops / count,
                "gflops_ratio": tally.gflops / max(base.gflops, 1e-9),
                "latency_ratio": tally.seconds / max(base.seconds, 1e-9),
                "unspent": "; ".join(f"{n}/{count}: {why}" for why, n in tally.unspent.most_common(2)),
            }
        )
    return rows
