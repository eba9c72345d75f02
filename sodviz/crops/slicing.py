"""Uniform slicing (SAHI-style): a grid of overlapping crops with a counted number of forward passes."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import supervision as sv

from sodviz.cache import DEFAULT_CACHE, InferenceCache
from sodviz.crops.fusion import Fusion, fuse_detections
from sodviz.crops.redetect import detect_crops
from sodviz.detector.inference import run_inference, to_detections
from sodviz.detector.loading import Detector

ASAHI_LONG_SIDE = 2000


def asahi_grid(image_hw: tuple[int, int], *, long_side: int = ASAHI_LONG_SIDE) -> tuple[int, int]:
    """(rows, cols) of ASAHI's resolution-adaptive slicing: a fixed count of slices whose size
    follows the image, 6 (2 x 3) up to `long_side` pixels on the image's long side and 12 (3 x 4)
    above, the longer count along the longer side. ASAHI learns its threshold on its data; here
    it is a parameter (2000 px: 6 slices at VisDrone's sizes, 12 at xView's)."""
    height, width = image_hw
    short, long = (2, 3) if max(height, width) <= long_side else (3, 4)
    return (short, long) if width >= height else (long, short)


def slice_grid(
    image_hw: tuple[int, int], max_slices: int, *, overlap: float = 0.2, max_aspect: float = 1.5,
    grid: tuple[int, int] | None = None,
) -> np.ndarray:  # fmt: skip
    """int64 `(n, 4)` xyxy crops of a rows x cols grid covering the image, neighbours overlapping
    by `overlap` of a slice side, with n = rows x cols <= `max_slices`. The slices are SAHI's
    (`sahi.slicing.get_slice_bboxes`) for the slice side ceil(side / (n - (n - 1) * overlap)).

    The detector squashes every crop to its square input, so a grid is only used when its tiles
    are near-square (long side / short side <= `max_aspect`): the most slices among those, the
    squarest on ties (a square image: 1 -> 1x1, 2-3 -> 1x1, 4-5 -> 2x2, 6-8 -> 2x3, 9 -> 3x3).
    When no grid qualifies (a very long image), the squarest one within `max_slices`. `grid`
    (rows, cols) fixes the grid instead (`max_slices` unused), as ASAHI does.
    """
    if max_slices < 1 and grid is None:
        return np.zeros((0, 4), np.int64)
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must lie in [0, 1), got {overlap}")
    height, width = image_hw
    grids = [] if grid is None else [(True, 0, 0.0, *grid)]
    for rows in range(1, max_slices + 1 if grid is None else 1):
        for cols in range(1, max_slices // rows + 1):
            tile_h = height / (rows - (rows - 1) * overlap)
            tile_w = width / (cols - (cols - 1) * overlap)
            aspect = max(tile_w / tile_h, tile_h / tile_w)
            near_square = aspect <= max_aspect
            grids.append((near_square, rows * cols if near_square else 0, -aspect, rows, cols))
    _, _, _, rows, cols = max(grids)
    side_h = math.ceil(height / (rows - (rows - 1) * overlap))
    side_w = math.ceil(width / (cols - (cols - 1) * overlap))
    ys = _spans(height, side_h, int(overlap * side_h))
    xs = _spans(width, side_w, int(overlap * side_w))
    return np.array([[x0, y0, x1, y1] for y0, y1 in ys for x0, x1 in xs], np.int64).reshape(-1, 4)


def _spans(length: int, side: int, overlap_px: int) -> list[tuple[int, int]]:
    """SAHI's `get_slice_bboxes` on one axis: slices of `side` stepping by `side - overlap_px`,
    the last one moved back to end flush with the border."""
    spans, start = [], 0
    while True:
        end = start + side
        if end >= length:
            spans.append((max(0, length - side), length))
            return spans
        spans.append((start, end))
        start = end - overlap_px


def slices_for_budget(forward_passes: int, *, with_full_image: bool = True) -> int:
    """How many slices a budget of forward passes buys (the full-image pass counted when used)."""
    return max(0, forward_passes - int(with_full_image))


@dataclass(frozen=True, slots=True)
class SlicingResult:
    """Uniform slicing on one image.

    Attributes:
        crops_xyxy: int64 `(n, 4)`, the slices re-detected, in original pixels.
        detections: the fused detections (or the slices' own, without the full-image pass).
        results: the result of every pass (the full image first when used), for their cost.
    """

    crops_xyxy: np.ndarray
    detections: sv.Detections
    results: tuple = ()

    @property
    def forward_passes(self) -> int:
        """Passes actually used: the slices, plus 1 with the full image."""
        return len(self.results)


def run_slicing(
    detector: Detector,
    image: np.ndarray,
    *,
    forward_passes: int,
    overlap: float = 0.2,
    with_full_image: bool = True,
    score_threshold: float = 0.01,
    fusion: Fusion = Fusion(),
    border_factor: float = 0.5,
    input_size: int | None = None,
    slice_size: int | None = None,
    grid: tuple[int, int] | None = None,
    cache: InferenceCache | None = DEFAULT_CACHE,
) -> SlicingResult:
    """Uniform slicing within a budget of forward passes: the full-image pass (when used) plus the
    best near-square grid of at most `forward_passes - 1` slices (`slice_grid`), fused by the same
    `fuse_detections` as ViCrop-Det. A single slice covering the whole image would repeat the
    full-image pass, so it is not run: below a 2x2 grid, slicing on a square image is the base pass.
    Without the full image, the slices' detections are merged among themselves by `fusion`.
    SAHI's own settings: `fusion=Fusion()` (NMS / IoU 0.5, no size rule) and `border_factor=1.0`.
    `slice_size` is the model input side of the slices (None: `input_size`, the full image's);
    `grid` (rows, cols) fixes the grid (`slice_grid`).
    """
    height, width = image.shape[:2]
    budget = slices_for_budget(forward_passes, with_full_image=with_full_image)
    crops = slice_grid((height, width), budget, overlap=overlap, grid=grid)
    if with_full_image and len(crops) == 1 and crops[0].tolist() == [0, 0, width, height]:
        crops = crops[:0]
    slices = detect_crops(
        detector, image, crops, input_size=slice_size or input_size, score_threshold=score_threshold,
        border_factor=border_factor, cache=cache,
    )  # fmt: skip
    sliced = slices.detections
    result = run_inference(detector, image, input_size=input_size, cache=cache) if with_full_image else None
    base = sliced[:0] if result is None else to_detections(result, score_threshold=score_threshold)
    scale = 1.0 if result is None else min(result.transform.scale_xy)
    fused = fuse_detections(base, sliced, fusion, scale=scale, score_threshold=score_threshold)
    results = (*([result] if result is not None else []), *slices.results)
    return SlicingResult(crops, fused, results)
