"""What the ViCrop page shows: window-score heat maps, crops with their detections, before / after."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import supervision as sv

from sodviz.boxes import image_to_crop, overlap_matrix
from sodviz.cache import InferenceCache, cached, content_key
from sodviz.crops.slicing import SlicingResult
from sodviz.crops.vicrop import CropPlan, ViCropResult
from sodviz.evaluation.ground_truth import GroundTruth, GroundTruthMatch, match_ground_truth
from sodviz.views.figures import box_trace, image_figure
from sodviz.views.palette import crop_rgb, hex_color
from sodviz.views.render import (
    draw_detections,
    draw_match,
    fit_tile,
    heat_with_colorbar,
    tile_images,
)

CROP_TILE = 320  # pixels: the longer side of each crop in the mosaic
WINDOW_UNITS = {
    "intensity": "intensity: window's share of the attention",
    "entropy": "SAE: entropy in the window / its maximum",
    "score": "joint score: SAE^alpha x intensity^beta",
}


def window_heatmap(windows_xyxy: np.ndarray, values: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """float32 `(H, W)`: each pixel the mean value of the windows covering it (0 where none)."""
    height, width = image_hw
    total = np.zeros((height + 1, width + 1))
    count = np.zeros((height + 1, width + 1))
    for (x0, y0, x1, y1), value in zip(np.round(windows_xyxy).astype(int), values, strict=True):
        x0, x1 = np.clip([x0, x1], 0, width)
        y0, y1 = np.clip([y0, y1], 0, height)
        for grid, amount in ((total, value), (count, 1.0)):  # 2-D difference arrays
            grid[y0, x0] += amount
            grid[y0, x1] -= amount
            grid[y1, x0] -= amount
            grid[y1, x1] += amount
    total = total.cumsum(0).cumsum(1)[:height, :width]
    count = count.cumsum(0).cumsum(1)[:height, :width]
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0.5).astype(np.float32)


@dataclass(frozen=True, slots=True)
class ViCropView:
    """Images and counts for the ViCrop page.

    Attributes:
        heatmaps: {"intensity", "entropy", "score"} -> uint8 RGB overlays of the windows of `scale`.
        crops: uint8 RGB mosaic of the chosen crops with their own detections (None without crops).
        before / after: uint8 RGB, base and fused detections (TP / FP / missed with ground truth).
        crop_rows: one row per chosen crop (colour, window, scale, scores, detections), for a table.
        added: fused detections from the crops where the full image had none (new objects).
        replaced: full-image detections whose place a crop's detection took.
        removed: full-image detections the fusion dropped with no crop detection in their place.
        after_count: fused detections above the threshold.
        before_match / after_match: against ground truth, or None.
    """

    heatmaps: dict[str, np.ndarray]
    crops: np.ndarray | None
    crop_rows: list[dict]
    before: np.ndarray
    after: np.ndarray
    added: int
    replaced: int
    removed: int
    after_count: int
    before_match: GroundTruthMatch | None
    after_match: GroundTruthMatch | None

    @property
    def nbytes(self) -> int:  # for `InferenceCache`
        images = [*self.heatmaps.values(), self.before, self.after] + (
            [self.crops] if self.crops is not None else []
        )
        return sum(int(image.nbytes) for image in images)


def vicrop_view(
    outcome: ViCropResult,
    image: np.ndarray,
    *,
    scale: float,
    score_threshold: float,
    class_names: tuple[str, ...],
    truth: GroundTruth | None = None,
    cache: InferenceCache | None = None,
) -> ViCropView:
    """Everything the ViCrop page draws for one outcome, detections above `score_threshold`; kept
    in `cache` when given, keyed by all it reads (a page reruns on every widget)."""

    def key() -> tuple:
        parts = (outcome.plan, outcome.base, outcome.fused, outcome.refined.detections, image)
        return ("vicrop_view", content_key(*parts, scale, score_threshold, class_names, truth))

    return cached(
        cache, key, lambda: _draw_vicrop(outcome, image, scale, score_threshold, class_names, truth)
    )


def _draw_vicrop(outcome, image, scale, score_threshold, class_names, truth) -> ViCropView:
    plan = outcome.plan
    of_scale = np.isclose(plan.windows.scale, scale)
    boxes = plan.windows_xyxy[of_scale]
    heatmaps = {}
    windows = plan.windows
    for name, values in (
        ("intensity", windows.intensity),
        ("entropy", windows.entropy),
        ("score", windows.score),
    ):
        heat = window_heatmap(boxes, values[of_scale], image.shape[:2])
        heatmaps[name] = heat_with_colorbar(image, heat, WINDOW_UNITS[name], opacity=0.55)
    before = above(outcome.base, score_threshold)
    after = above(outcome.fused, score_threshold)
    refined = above(outcome.refined.detections, score_threshold)
    tiles, rows = [], []
    for index, (x0, y0, x1, y1) in enumerate(plan.crops_xyxy):
        mine = refined[refined.data["crop_index"] == index]
        fitted, factor = fit_tile(image[y0:y1, x0:x1], CROP_TILE)
        moved = sv.Detections(xyxy=image_to_crop(mine.xyxy, (x0, y0)) * factor, class_id=mine.class_id)
        tiles.append(draw_detections(fitted, moved, labels=False))  # boxes drawn at the shown size
        window = plan.chosen[index]
        rows.append({
            "crop": index, "colour": hex_color(crop_rgb(index)), "x0, y0, x1, y1": f"{x0}, {y0}, {x1}, {y1}",
            "scale": float(plan.windows.scale[window]), "intensity": float(plan.windows.intensity[window]),
            "SAE": float(plan.windows.entropy[window]), "score": float(plan.windows.score[window]),
            "detections": len(mine),
        })  # fmt: skip
    titles = [f"crop {i}: score {plan.windows.score[w]:.3f}" for i, w in enumerate(plan.chosen)]
    borders = [crop_rgb(i) for i in range(len(tiles))]
    crops = (
        tile_images(tiles, columns=min(4, len(tiles)), tile=CROP_TILE, titles=titles, borders=borders)
        if tiles
        else None
    )
    added, replaced, removed = fusion_changes(before, after)
    before_match = after_match = None
    if truth is not None:
        before_match = match_ground_truth(before, truth, class_names=class_names)
        after_match = match_ground_truth(after, truth, class_names=class_names)
    return ViCropView(
        heatmaps=heatmaps,
        crops=crops,
        crop_rows=rows,
        before=draw_with_truth(image, before, before_match, truth),
        after=draw_with_truth(image, after, after_match, truth),
        added=added,
        replaced=replaced,
        removed=removed,
        after_count=len(after),
        before_match=before_match,
        after_match=after_match,
    )


def fusion_changes(before: sv.Detections, after: sv.Detections, *, iou: float = 0.5) -> tuple[int, int, int]:
    """(added, replaced, removed) from the full-image detections `before` to the fused `after`.

    A fused detection from a crop is a replacement when it overlaps (IoU >= `iou`) a full-image
    detection that is no longer there, else it is added; a full-image detection that is gone with
    no crop detection over it was removed (merged into another, or suppressed)."""
    kept = set(after.data["query_index"][~after.data["refined"]].tolist())
    gone = before[~np.isin(before.data["query_index"], list(kept))]
    from_crops = after[after.data["refined"]]
    if not len(from_crops):
        return 0, 0, len(gone)
    overlap = overlap_matrix(from_crops.xyxy, gone.xyxy) >= iou
    replaced = int(overlap.any(axis=0).sum())
    added = int((~overlap.any(axis=1)).sum())
    return added, replaced, len(gone) - replaced


def draw_with_truth(
    image: np.ndarray, detections: sv.Detections, match: GroundTruthMatch | None, truth: GroundTruth | None
) -> np.ndarray:
    """Detections coloured TP / FP with missed objects, or plain boxes without ground truth."""
    if match is None:
        return draw_detections(image, detections, labels=False)
    return draw_match(image, detections, status=match.status, missed_xyxy=truth.boxes_xyxy[match.missed])


def counts_table(matches: dict[str, GroundTruthMatch]) -> list[dict]:
    """Rows per size bucket with TP / FP / FN of each labelled match side by side, for display."""
    buckets = next(iter(matches.values())).counts
    return [
        {"size": bucket}
        | {
            f"{key} {label}": match.counts[bucket][key]
            for label, match in matches.items()
            for key in ("tp", "fp", "fn")
        }
        for bucket in buckets
    ]


def above(detections: sv.Detections, threshold: float) -> sv.Detections:
    """The detections with confidence >= threshold."""
    return detections[detections.confidence >= threshold]


def windows_figure(plan: CropPlan, image: np.ndarray, *, height: int = 640) -> go.Figure:
    """The image with every candidate window (faint) and the chosen crops (in the picked colour)."""
    candidates = box_trace(plan.windows_xyxy, color="rgba(255,255,255,0.35)", name="candidates", width=1)
    chosen = []
    for i, window in enumerate(plan.chosen):
        name = f"crop {i} ({plan.windows.score[window]:.3f})"
        color = hex_color(crop_rgb(i))
        chosen.append(box_trace(plan.windows_xyxy[window : window + 1], color=color, name=name, width=3))
    return image_figure(image, traces=[candidates, *chosen], height=height)


@dataclass(frozen=True, slots=True)
class SlicingComparison:
    """ViCrop-Det against uniform slicing at one threshold: how many detections each keeps, and
    TP / FP / FN side by side by size (`counts_table` rows) with ground truth, else None."""

    vicrop: int
    sliced: int
    counts: list[dict] | None


def slicing_comparison(
    view: ViCropView, sliced: SlicingResult, threshold: float, *, class_names: tuple[str, ...],
    truth: GroundTruth | None = None,
) -> SlicingComparison:  # fmt: skip
    """Slicing's detections above `threshold` against the ViCrop page's (`view`, same threshold)."""
    kept = above(sliced.detections, threshold)
    counts = None
    if truth is not None:
        match = match_ground_truth(kept, truth, class_names=class_names)
        counts = counts_table({"ViCrop": view.after_match, "slicing": match})
    return SlicingComparison(vicrop=view.after_count, sliced=len(kept), counts=counts)
