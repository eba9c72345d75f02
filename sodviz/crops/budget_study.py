"""Base detection vs ViCrop-Det vs uniform slicing at matched forward-pass budgets, on a COCO dataset."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import plotly.graph_objects as go
import supervision as sv

from sodviz.cache import InferenceCache
from sodviz.crops.slicing import run_slicing
from sodviz.crops.vicrop import ViCropConfig, run_vicrop
from sodviz.detector.inference import run_inference, to_detections
from sodviz.detector.loading import Detector
from sodviz.evaluation.coco import coco_metrics, coco_results, first_images, load_coco, model_categories
from sodviz.evaluation.tables import write_rows
from sodviz.imageio import load_image

METHODS = ("base", "vicrop", "vicrop_gated", "slicing")
COLUMNS = ["method", "budget", "AP", "AP50", "AP_S", "AP_M", "AP_L", "AP_vt", "AP_t", "AP_s", "AP_m",
           "forward_passes", "latency_ratio", "unspent"]  # fmt: skip


def run_benchmark(
    detector: Detector,
    annotations: str | Path,
    images: str | Path,
    *,
    methods: tuple[str, ...] = ("base", "vicrop", "slicing"),
    budgets: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8),
    vicrop: ViCropConfig | None = None,
    max_images: int | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> list[dict]:
    """One row per (method, budget): COCO / AI-TOD AP (input-pixel buckets), mean forward passes
    and latency relative to the base pass, all measured in this run with the cache off.

    A budget counts forward passes, the full-image pass included: ViCrop-Det gets `budget - 1`
    crops, slicing the best near-square grid of at most `budget - 1` slices (`slice_grid`); the
    table reports the passes each method actually used, and `unspent` says on how many images
    the budget was not spent, and why (the most frequent reasons). "vicrop" runs with the gate
    off, "vicrop_gated" with `vicrop`'s gate, so its mean passes fall below the budget on images the
    gate skips.
    `vicrop` holds the other knobs (default `ViCropConfig()`), its `score_threshold`, `border_factor`
    and `fusion` used by every method. "base" is budget 1 only.
    """
    vicrop = vicrop or ViCropConfig()
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    truth, category_of = model_categories(
        first_images(load_coco(annotations), max_images), detector.class_names
    )
    runs = [("base", 1)] + [(m, b) for m in methods if m != "base" for b in budgets if b > 1]
    found = {run: [] for run in runs}
    seconds = dict.fromkeys(runs, 0.0)
    passes = dict.fromkeys(runs, 0)
    unspent = {run: Counter() for run in runs}
    scale = {}
    for done, record in enumerate(truth["images"], start=1):
        image = load_image(Path(images) / record["file_name"])
        scale[record["id"]] = detector.input_size / max(image.shape[:2])
        for method, budget in runs:
            started = time.perf_counter()
            detections, used, shortfall = detect_at_budget(detector, image, method, budget, vicrop)
            seconds[(method, budget)] += time.perf_counter() - started
            passes[(method, budget)] += used
            if used < budget:
                unspent[(method, budget)][shortfall] += 1
            found[(method, budget)] += coco_results(
                detections.xyxy,
                detections.confidence,
                category_of[detections.class_id],
                image_id=record["id"],
            )
        if on_progress is not None:
            on_progress(done / len(truth["images"]))
    return _rows(truth, found, seconds, passes, scale, unspent)


def _rows(truth: dict, found: dict, seconds: dict, passes: dict, scale: dict, unspent: dict) -> list[dict]:
    """One table row per (method, budget) from the detections, seconds and passes summed over images."""
    count = max(1, len(truth["images"]))
    rows = []
    for method, budget in found:
        metrics = coco_metrics(truth, found[(method, budget)], area_scale=scale)
        rows.append(
            {"method": method, "budget": budget}
            | {name: metrics[name] for name in COLUMNS[2:11]}
            | {
                "forward_passes": passes[(method, budget)] / count,
                "latency_ratio": seconds[(method, budget)] / max(seconds[("base", 1)], 1e-9),
                "unspent": "; ".join(
                    f"{n}/{count}: {why}" for why, n in unspent[(method, budget)].most_common(2)
                ),
            }
        )
    return rows


def detect_at_budget(
    detector: Detector, image, method: str, budget: int, vicrop: ViCropConfig, *,
    input_size: int | None = None, cache: InferenceCache | None = None,
) -> tuple[sv.Detections, int, str]:  # fmt: skip
    """(detections, forward passes used, why fewer than the budget) of one method of `METHODS`
    at one budget (see `run_benchmark`); the cache off unless given (a cache holding the
    full-image pass lets a caller share it between methods)."""
    if method == "base":
        result = run_inference(detector, image, input_size=input_size, cache=cache)
        return to_detections(result, score_threshold=vicrop.score_threshold), 1, ""
    if method == "slicing":
        sliced = run_slicing(
            detector, image, forward_passes=budget, score_threshold=vicrop.score_threshold,
            fusion=vicrop.fusion, border_factor=vicrop.border_factor, input_size=input_size, cache=cache,
        )  # fmt: skip
        slices = len(sliced.crops_xyxy)
        why = f"the largest near-square grid within the budget has {slices or 1} slice{'s' * bool(slices)}"
        return sliced.detections, sliced.forward_passes, why
    gate = vicrop.gate_min_uncertain if method == "vicrop_gated" else 0
    config = replace(vicrop, k=budget - 1, gate_min_uncertain=gate)
    outcome = run_vicrop(detector, image, config=config, input_size=input_size, cache=cache)
    plan = outcome.plan
    why = plan.shortfall or f"gated: fewer than {config.gate_min_uncertain} uncertain queries"
    return outcome.fused, outcome.forward_passes, why


def write_tables(rows: list[dict], out: Path) -> tuple[Path, Path]:
    """`benchmark.csv` and `benchmark.md` in `out`."""
    return write_rows(rows, out, "benchmark", COLUMNS)


def budget_figure(rows: list[dict]) -> go.Figure:
    """AP50 against mean forward passes, one line per method."""
    traces = []
    for method in dict.fromkeys(row["method"] for row in rows):
        mine = sorted((r for r in rows if r["method"] in (method, "base")), key=lambda r: r["forward_passes"])
        traces.append(
            dict(
                type="scatter",
                mode="lines+markers",
                name=method,
                x=[r["forward_passes"] for r in mine],
                y=[r["AP50"] for r in mine],
            )
        )
    layout = dict(
        xaxis=dict(title="forward passes per image (full image included)"),
        yaxis=dict(title="AP50"),
        height=480,
        width=720,
        template="plotly_white",
    )
    return go.Figure(data=traces, layout=layout)


def write_figure(rows: list[dict], out: Path) -> list[Path]:
    """`benchmark.html` always; `benchmark.png` when kaleido finds a Chrome or Chromium."""
    figure = budget_figure(rows)
    written = [out / "benchmark.html"]
    figure.write_html(written[0], include_plotlyjs=True)
    try:
        figure.write_image(out / "benchmark.png")
        written.append(out / "benchmark.png")
    except Exception as error:  # kaleido raises several kinds when no browser is found
        print(f"benchmark.png not written ({type(error).__name__}: {error}); benchmark.html has the figure")
    return written
