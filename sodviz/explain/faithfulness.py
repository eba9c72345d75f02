"""How faithful a map is to the detection it explains, the standard ways.

- Deletion / insertion (RISE; ODAM and D-RISE for detectors): pixels are removed (set to black)
  or revealed (from a blurred copy) in the map's order, most important first, and the detector
  re-run at each step; the curve follows the target's matched response (IoU x class score of
  the best-matching query, `perturb.matched_response`), with its score and IoU. The area under
  it (x: the fraction of the image's pixels changed) is the AUC: low for deletion and high for
  insertion mean faithful. Steps are geometric (small objects change within the first per
  mille of pixels), the area is the trapezoid over the fraction itself.
- Pointing game: the map's maximum lies in the box (grown by `tolerance` pixels).
- Energy in the box: the share of the map's mass inside the box.
A random map (`random_map`, smooth noise at a feature-grid scale) is the floor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from sodviz.boxes import cell_coverage
from sodviz.detector.loading import Detector
from sodviz.explain.perturb import ModelInput, detect_copies, matched_response, mix
from sodviz.explain.targets import ExplainTarget, InstanceMaps

CURVES = ("deletion", "insertion")


def curve_fractions(steps: int = 16, first: float = 1 / 4096) -> np.ndarray:
    """float64 `(steps + 1,)`: 0, then `steps` fractions from `first` to 1, geometrically spaced."""
    return np.concatenate([[0.0], np.geomspace(first, 1.0, steps)])


@dataclass(frozen=True, slots=True)
class FaithfulnessCurves:
    """Deletion and insertion curves of one map.

    Attributes:
        fractions: float64 `(S,)` share of the image's pixels removed (deletion) or revealed.
        response: float64 `(2, S)` the target's matched response, deletion then insertion.
        score, iou: float64 `(2, S)` that match's class score and IoU.
    """

    fractions: np.ndarray
    response: np.ndarray
    score: np.ndarray
    iou: np.ndarray

    @property
    def nbytes(self) -> int:  # for `InferenceCache`
        return int(self.fractions.nbytes + self.response.nbytes + self.score.nbytes + self.iou.nbytes)

    def auc(self, curve: str) -> float:
        """Area under the response curve over the changed fraction (trapezoid)."""
        values = self.response[CURVES.index(curve)]
        return float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(self.fractions)))


def pixel_order(values: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Flat indices of `values`, largest first; ties (flat regions) in a seeded random order."""
    flat = np.asarray(values, np.float64).ravel()
    tie_break = np.random.default_rng(seed).random(flat.size)
    return np.lexsort((tie_break, -flat))


def faithfulness_curves(
    detector: Detector,
    base: ModelInput,
    image_map: np.ndarray,
    target: ExplainTarget,
    *,
    fractions: np.ndarray | None = None,
    batch_size: int = 4,
    seed: int = 0,
    on_progress: Callable[[float], None] | None = None,
) -> FaithfulnessCurves:
    """Deletion and insertion of `image_map` (`(H, W)` on the original image) for `target`: the
    detector re-run on each copy (`perturb.detect_copies`), followed by `matched_response`.

    Batches of 4, as D-RISE: a cold Explain page (demo model, 2-core CPU, one session) took 11-14 s
    and rose 280 MiB at its peak with them, 34 s and 800 MiB with batches of 16 (two runs each,
    2026-12-03)."""

    def respond(copies: Callable[[int, int], torch.Tensor], count: int):
        found = detect_copies(detector, base, copies, count, batch_size=batch_size, on_progress=on_progress)
        return matched_response(*found, target)

    return response_curves(base, image_map, respond, fractions=fractions, seed=seed)


def response_curves(
    base: ModelInput,
    image_map: np.ndarray,
    respond: Callable[[Callable[[int, int], torch.Tensor], int], tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    fractions: np.ndarray | None = None,
    seed: int = 0,
) -> FaithfulnessCurves:
    """The curves for any response: `respond(copies, count)` returns (response, score, IoU) for
    `count` copies that `copies(start, stop)` makes: deletion's steps, then insertion's."""
    fractions = curve_fractions() if fractions is None else np.asarray(fractions, np.float64)
    grid = base.to_input_grid(image_map)
    order = pixel_order(grid, seed=seed)
    changed = np.zeros((len(fractions), order.size), np.float32)
    for step, count in enumerate(np.round(fractions * order.size).astype(np.int64)):
        changed[step, order[:count]] = 1
    changed = torch.from_numpy(changed.reshape(len(fractions), *grid.shape))
    steps = len(fractions)

    def copies(start: int, stop: int) -> torch.Tensor:
        parts = []
        for index in range(start, stop):
            curve, step = divmod(index, steps)
            if curve == 0:  # deletion: the changed pixels black
                parts.append(mix(base, 1 - changed[step : step + 1], base.black))
            else:  # insertion: the changed pixels revealed on the blurred copy
                parts.append(mix(base, changed[step : step + 1], base.blurred))
        return torch.cat(parts)

    response, score, iou = respond(copies, 2 * steps)
    shape = (2, steps)
    return FaithfulnessCurves(fractions, response.reshape(shape), score.reshape(shape), iou.reshape(shape))


def pointing_hit(image_map: np.ndarray, box_xyxy, *, tolerance: float = 0.0) -> bool:
    """Whether the map's maximum lies inside the box grown by `tolerance` pixels (a flat map
    never hits)."""
    values = np.asarray(image_map, np.float64)
    if not np.isfinite(values).all() or values.max() <= values.min():
        return False
    y, x = np.unravel_index(int(values.argmax()), values.shape)
    x0, y0, x1, y1 = np.asarray(box_xyxy, np.float64)
    return bool(x0 - tolerance <= x + 0.5 <= x1 + tolerance and y0 - tolerance <= y + 0.5 <= y1 + tolerance)


def energy_in_box(image_map: np.ndarray, box_xyxy) -> float:
    """The share of the map's (non-negative) mass inside the box, pixels counted by their overlap."""
    values = np.maximum(np.asarray(image_map, np.float64), 0)
    total = values.sum()
    if total <= 0:
        return 0.0
    height, width = values.shape
    x0, y0, x1, y1 = np.asarray(box_xyxy, np.float64)
    cols, rows = cell_coverage(x0, x1, width), cell_coverage(y0, y1, height)
    return float(rows @ values @ cols / total)


def random_map(image_hw: tuple[int, int], *, cells: int = 32, seed: int = 0) -> InstanceMaps:
    """The floor: uniform noise on a `cells` x `cells` grid, resampled smoothly onto the image."""
    rng = np.random.default_rng(seed)
    height, width = image_hw
    noise = rng.random((cells, cells)).astype(np.float32)
    values = cv2.resize(noise, (width, height), interpolation=cv2.INTER_LINEAR)
    return InstanceMaps(
        "random", ("score",), values[None], 0.0, f"smooth noise on {cells}x{cells} cells, seed {seed}"
    )
