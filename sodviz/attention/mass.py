"""How much of a query's attention falls inside a box: exact for sampling points and for grid cells."""

from __future__ import annotations

import numpy as np

from sodviz.attention.maps import checked_queries, query_attention_map, select_indices
from sodviz.boxes import cell_coverage
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
    attention = result.attention
    if isinstance(attention, DeformableAttention):
        box_input = _input_box(result, box, enlarge)
        input_h, input_w = result.transform.input_hw
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
    return map_mass_in_box(result, heat, box, enlarge=enlarge)


def map_mass_in_box(
    result: InferenceResult, heat: np.ndarray, box_xyxy: np.ndarray, *, enlarge: float = 1.0
) -> float:
    """Share of a map on the input grid `(h, w)` (a query's, or the image-level attention) inside
    a box (original pixels), enlarged about its centre: cells count by the fraction of their area
    inside the box, exact for the piecewise-constant map."""
    total = float(heat.sum())
    if total <= 0:
        return 0.0
    box_input = _input_box(result, box_xyxy, enlarge)
    input_h, input_w = result.transform.input_hw
    grid_h, grid_w = heat.shape
    cols = cell_coverage(box_input[0] * grid_w / input_w, box_input[2] * grid_w / input_w, grid_w)
    rows = cell_coverage(box_input[1] * grid_h / input_h, box_input[3] * grid_h / input_h, grid_h)
    return float(rows @ heat @ cols) / total


def points_in_box(
    result: InferenceResult, box_xyxy: np.ndarray, *, enlarge: float = 1.0, layer: int | None = -1
) -> float:
    """Share of all queries' deformable sampling points (by count, zero-weight padding left out)
    inside a box (original pixels), enlarged about its centre; NaN for dense attention."""
    attention = result.attention
    if not isinstance(attention, DeformableAttention):
        return float("nan")
    box_input = _input_box(result, box_xyxy, enlarge)
    input_h, input_w = result.transform.input_hw
    layers = select_indices(attention.num_layers, layer, "layer")
    real = attention.weights[layers] > 0
    x, y = np.moveaxis(attention.locations[layers][real], -1, 0)
    if not x.size:
        return 0.0
    inside = (x * input_w >= box_input[0]) & (x * input_w <= box_input[2])
    inside &= (y * input_h >= box_input[1]) & (y * input_h <= box_input[3])
    return float(inside.mean())


def _input_box(result: InferenceResult, box_xyxy: np.ndarray, enlarge: float) -> np.ndarray:
    """A box (original pixels) enlarged about its centre, in model-input pixels."""
    box = np.asarray(box_xyxy, np.float64)
    center, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) * enlarge / 2
    return result.transform.image_to_input(np.concatenate([center - half, center + half]))
