"""Windows over the attention grid, and their saliency (intensity), ambiguity (Spatial Attention
Entropy) and joint score."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sodviz.attention.entropy import window_entropy, window_sums
from sodviz.types import InferenceResult


@dataclass(frozen=True, slots=True)
class WindowScores:
    """Sliding windows over the attention grid and how much, and how diffusely, they are attended.

    Attributes:
        cells: int64 `(W, 4)` `[row0, col0, row1, col1)` of each window on the grid.
        scale: float32 `(W,)`, the window's side as a fraction of the grid's shorter side.
        intensity: float32 `(W,)`, attention mass inside the window over the total (saliency).
        entropy: float32 `(W,)`, Spatial Attention Entropy: entropy of the attention restricted
            to the window, divided by log(cells in it), in [0, 1] (ambiguity); 0 without mass.
        score: float32 `(W,)`, entropy ** alpha * intensity ** beta.
    """

    cells: np.ndarray
    scale: np.ndarray
    intensity: np.ndarray
    entropy: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.cells)


def sliding_windows(grid_hw: tuple[int, int], *, scales=(0.25, 0.5), overlap: float = 0.25) -> tuple:
    """Square windows on a grid at several scales, stepping by `side * (1 - overlap)`, the last
    window of each row and column flush with the border.

    Returns:
        cells int64 `(W, 4)` `[row0, col0, row1, col1)` and scale float32 `(W,)`.
    """
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must lie in [0, 1), got {overlap}")
    height, width = grid_hw
    cells, scale_of = [], []
    for scale in scales:
        side = max(1, min(round(scale * min(height, width)), height, width))
        step = max(1, round(side * (1 - overlap)))
        rows = _starts(height, side, step)
        cols = _starts(width, side, step)
        for row in rows:
            for col in cols:
                cells.append([row, col, row + side, col + side])
                scale_of.append(scale)
    return np.array(cells, np.int64).reshape(-1, 4), np.array(scale_of, np.float32)


def _starts(length: int, side: int, step: int) -> list[int]:
    starts = list(range(0, length - side + 1, step))
    if starts[-1] != length - side:
        starts.append(length - side)
    return starts


def score_windows(
    attention_map: np.ndarray, cells: np.ndarray, scale: np.ndarray, *, alpha: float = 1.0, beta: float = 1.0
) -> WindowScores:
    """Intensity, SAE and joint score of each window (see `WindowScores`) from summed-area tables."""
    mass, normalised = window_entropy(attention_map, cells)
    intensity = np.clip(mass, 0.0, 1.0)
    return WindowScores(
        cells=cells,
        scale=scale.astype(np.float32),
        intensity=intensity.astype(np.float32),
        entropy=normalised.astype(np.float32),
        score=joint_score(normalised, intensity, alpha=alpha, beta=beta).astype(np.float32),
    )


def uncovered_intensity(attention_map: np.ndarray, cells: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """float64 `(W,)`: each window's share of the attention mass not inside any `covered` window
    (`[row0, col0, row1, col1)` on the same grid): saliency left after those crops are taken."""
    p = np.asarray(attention_map, np.float64)
    total = p.sum()
    if total <= 0:
        return np.zeros(len(cells))
    remaining = p.copy()
    for row0, col0, row1, col1 in np.asarray(covered, np.int64).reshape(-1, 4):
        remaining[row0:row1, col0:col1] = 0.0
    return np.clip(window_sums(remaining, cells) / total, 0.0, 1.0)


def joint_score(entropy: np.ndarray, intensity: np.ndarray, *, alpha: float, beta: float) -> np.ndarray:
    """float64: ViCrop-Det's window score, ambiguity ** alpha * saliency ** beta."""
    return np.asarray(entropy, np.float64) ** alpha * np.asarray(intensity, np.float64) ** beta


def cells_to_image(result: InferenceResult, cells: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """float32 `(W, 4)` xyxy original pixels of grid windows `[row0, col0, row1, col1)`."""
    grid_h, grid_w = grid_hw
    input_h, input_w = result.transform.input_hw
    corners = np.stack(
        [
            cells[:, 1] * input_w / grid_w,
            cells[:, 0] * input_h / grid_h,
            cells[:, 3] * input_w / grid_w,
            cells[:, 2] * input_h / grid_h,
        ],
        axis=1,
    ).astype(np.float64)
    top_left = result.transform.input_to_image(corners[:, :2])
    bottom_right = result.transform.input_to_image(corners[:, 2:])
    return np.concatenate([top_left, bottom_right], axis=1).astype(np.float32)
