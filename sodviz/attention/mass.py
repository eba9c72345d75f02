"""How much of a query's attention falls inside a box: exact for sampling points and for grid cells."""

from __future__ import annotations

import numpy as np

from sodviz.attention.maps import checked_queries, query_attention_map, select_indices
from sodviz.types import DeformableAttention, InferenceResult


def attention_mass_in_box(
    result: InferenceResult,
    query_index: int,
    box_xyxy: np.ndarray,
    *,
    enlarge: float = 1.0,
    layer: int | None = -1,
) -> float:
    """Share of a query's attention mass inside a box (original pixels), optionally enlarged about its centre.

    Deformable attention: the weights of the sampling points that fall inside the box (exact,
    no grid; heads averaged). Dense attention: grid cells count by the fraction of their area
    inside the box, which is exact for the piecewise-constant map on the attention grid.
    """
    box = np.asarray(box_xyxy, np.float64)
    center, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) * enlarge / 2
    box_input = result.transform.image_to_input(np.concatenate([center - half, center + half]))
    input_h, input_w = result.transform.input_hw
    attention = result.attention
    if isinstance(attention, DeformableAttention):
        checked_queries(result, [query_index])
        layers = select_indices(attention.num_layers, layer, "layer")
        x, y = np.moveaxis(attention.locations[layers, query_index], -1, 0)
        weights = attention.weights[layers, query_index].astype(np.float64)
        inside = (
            (x * input_w >= box_input[0])
            & (x * input_w <= box_input[2])
            & (y * input_h >= box_input[1])
            & (y * input_h <= box_input[3])
        )
        total = float(weights.sum())
        return float(weights[inside].sum()) / total if total > 0 else 0.0
    heat = query_attention_map(result, query_index, layer=layer)
    total = float(heat.sum())
    if total <= 0:
        return 0.0
    grid_h, grid_w = heat.shape
    cols = _coverage(box_input[0] * grid_w / input_w, box_input[2] * grid_w / input_w, grid_w)
    rows = _coverage(box_input[1] * grid_h / input_h, box_input[3] * grid_h / input_h, grid_h)
    return float(rows @ heat @ cols) / total


def _coverage(low: float, high: float, cells: int) -> np.ndarray:
    """Fraction of each unit cell [i, i + 1) inside [low, high]."""
    edges = np.arange(cells)
    return np.clip(np.minimum(edges + 1, high) - np.maximum(edges, low), 0, 1)
