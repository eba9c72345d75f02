"""Image-level attention and its per-window saliency (intensity) and ambiguity (Spatial Attention Entropy)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sodviz.attention.maps import aggregate_attention_map, attention_grid_hw
from sodviz.types import InferenceResult


def image_attention(
    result: InferenceResult,
    *,
    mode: str = "all",
    score_band: tuple[float, float] = (0.1, 0.5),
    queries: np.ndarray | None = None,
    layer: int | None = -1,
) -> np.ndarray:
    """float32 `(h, w)` image-level attention on the model-input grid, summing to 1 (or all 0).

    Args:
        mode: "all" weights every query by its score; "uncertain" only queries whose score lies
            in `score_band` (the ones a refinement could flip); "queries" the given `queries`,
            weighted by score.
    """
    if mode == "all":
        chosen = np.arange(result.num_queries)
    elif mode == "uncertain":
        low, high = score_band
        chosen = np.flatnonzero((result.scores >= low) & (result.scores < high))
    elif mode == "queries":
        if queries is None:
            raise ValueError("mode='queries' needs `queries`")
        chosen = np.asarray(queries, dtype=np.int64)
    else:
        raise ValueError(f"mode must be 'all', 'uncertain' or 'queries', got {mode!r}")
    if not chosen.size:
        return np.zeros(attention_grid_hw(result.attention), np.float32)
    return aggregate_attention_map(result, chosen, layer=layer)


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
    p = np.asarray(attention_map, np.float64)
    total = p.sum()
    p = p / total if total > 0 else np.zeros_like(p)
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    mass = _box_sums(_summed_area(p), cells)
    mass_plogp = _box_sums(_summed_area(plogp), cells)
    count = (cells[:, 2] - cells[:, 0]) * (cells[:, 3] - cells[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        # entropy of q = p / m over the window: -(1/m) sum p log p + log m
        entropy = np.where(mass > 0, -mass_plogp / mass + np.log(np.where(mass > 0, mass, 1.0)), 0.0)
        normalised = np.where(count > 1, entropy / np.log(np.maximum(count, 2)), 0.0)
    normalised = np.clip(normalised, 0.0, 1.0)
    intensity = np.clip(mass, 0.0, 1.0)
    return WindowScores(
        cells=cells,
        scale=scale.astype(np.float32),
        intensity=intensity.astype(np.float32),
        entropy=normalised.astype(np.float32),
        score=(normalised**alpha * intensity**beta).astype(np.float32),
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
    return np.clip(_box_sums(_summed_area(remaining), cells) / total, 0.0, 1.0)


def _summed_area(values: np.ndarray) -> np.ndarray:
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    table[1:, 1:] = values.cumsum(axis=0).cumsum(axis=1)
    return table


def _box_sums(table: np.ndarray, cells: np.ndarray) -> np.ndarray:
    r0, c0, r1, c1 = cells.T
    return table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]


def map_entropy(attention_map: np.ndarray) -> float:
    """Normalised entropy in [0, 1] of a whole map (the gate's image-level uncertainty)."""
    p = np.asarray(attention_map, np.float64).ravel()
    total = p.sum()
    if total <= 0 or p.size < 2:
        return 0.0
    p = p[p > 0] / total
    return float(-(p * np.log(p)).sum() / math.log(attention_map.size))
