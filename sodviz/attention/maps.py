"""Cross-attention -> spatial maps on the model-input grid, per query and image-level."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sodviz.attention.entropy import attention_entropy
from sodviz.types import Attention, DeformableAttention, DenseAttention, InferenceResult


def attention_grid_hw(attention: Attention) -> tuple[int, int]:
    """(h, w) of the grid maps are drawn on: the feature map (dense) or the finest level (deformable)."""
    shapes = attention.level_shapes
    finest = int(np.argmax(shapes[:, 0] * shapes[:, 1]))
    return int(shapes[finest, 0]), int(shapes[finest, 1])


def query_attention_maps(
    result: InferenceResult,
    query_indices: Sequence[int] | np.ndarray | None = None,
    *,
    layer: int | None = -1,
    head: int | None = None,
    level: int | None = None,
) -> np.ndarray:
    """Spatial attention maps of several queries.

    Args:
        result: from `run_inference`.
        query_indices: which queries; None for all.
        layer: decoder layer (negative counts from the end); None for the mean over layers.
        head: attention head; None for the mean over heads.
        level: deformable feature level only; None sums all levels.

    Returns:
        float32 `(N, h, w)` on `attention_grid_hw(result.attention)`; each map sums to the
        query's total weight over the chosen layers/heads/levels (1 with `level=None`).
        Deformable weights are bilinearly splatted at their sampling points on their level's grid
        (points outside the grid are clamped to its border), then each level is resampled to the
        finest grid keeping its mass.
    """
    queries = checked_queries(result, query_indices)
    return _maps(result.attention, queries, None, layer=layer, head=head, level=level)


def query_attention_map(result: InferenceResult, query_index: int, **selection: int | None) -> np.ndarray:
    """float32 `(h, w)`: one query's map; `selection` as in `query_attention_maps`."""
    return query_attention_maps(result, [query_index], **selection)[0]


def aggregate_attention_map(
    result: InferenceResult,
    query_indices: Sequence[int] | np.ndarray | None = None,
    *,
    query_weights: np.ndarray | None = None,
    layer: int | None = -1,
    head: int | None = None,
    level: int | None = None,
) -> np.ndarray:
    """Image-level attention: the weighted mean of the chosen queries' maps.

    Args:
        query_indices: which queries; None for all.
        query_weights: float `(N,)` weight of each chosen query; None weights by each query's score.

    Returns:
        float32 `(h, w)` summing to 1 (with `level=None`), or all zeros when no query or no weight.
    """
    queries = checked_queries(result, query_indices)
    weights = result.scores[queries] if query_weights is None else np.asarray(query_weights, dtype=np.float64)
    if weights.shape != queries.shape:
        raise ValueError(f"query_weights must have shape {queries.shape}, got {weights.shape}")
    if np.any(weights < 0):
        raise ValueError("query_weights must be non-negative")
    total = float(weights.sum())
    if total <= 0:
        return np.zeros(attention_grid_hw(result.attention), np.float32)
    return _maps(result.attention, queries, weights / total, layer=layer, head=head, level=level)[0]


def query_attention_entropy(
    result: InferenceResult, *, layer: int | None = -1, head: int | None = None, normalize: bool = False
) -> np.ndarray:
    """float32 `(queries,)`: entropy of every query's attention map (see `attention_entropy`)."""
    return attention_entropy(query_attention_maps(result, layer=layer, head=head), normalize=normalize)


def checked_queries(result: InferenceResult, query_indices) -> np.ndarray:
    """int64 `(N,)` query indices, checked against the result (None: every query)."""
    if query_indices is None:
        return np.arange(result.num_queries)
    queries = np.asarray(query_indices, dtype=np.int64).reshape(-1)
    if queries.size and (queries.min() < 0 or queries.max() >= result.num_queries):
        raise ValueError(f"query indices must lie in [0, {result.num_queries}), got {queries.tolist()}")
    return queries


def select_indices(size: int, index: int | None, what: str) -> np.ndarray:
    """The chosen layer / head / level as an index array (None: all of them; negative from the end)."""
    if index is None:
        return np.arange(size)
    if not -size <= index < size:
        raise ValueError(f"{what} must lie in [{-size}, {size}) or be None, got {index}")
    return np.array([index % size])


def _maps(attention: Attention, queries: np.ndarray, query_weights, *, layer, head, level) -> np.ndarray:
    """`(N, h, w)` per-query maps, or `(1, h, w)` weighted sum when `query_weights` is given."""
    layers = select_indices(attention.num_layers, layer, "layer")
    heads = select_indices(attention.num_heads, head, "head")
    if isinstance(attention, DenseAttention):
        if level not in (None, 0):
            raise ValueError(f"dense attention has a single level; got level={level}")
        selected = attention.weights[np.ix_(layers, heads, queries)]  # [layers, heads, N, h, w]
        maps = selected.mean(axis=(0, 1), dtype=np.float64)
        if query_weights is not None:
            maps = np.tensordot(query_weights, maps, axes=1)[None]
        return maps.astype(np.float32)
    return _deformable_maps(attention, queries, query_weights, layers=layers, heads=heads, level=level)


def _deformable_maps(
    attention: DeformableAttention, queries: np.ndarray, query_weights, *, layers, heads, level
) -> np.ndarray:
    levels = select_indices(attention.level_shapes.shape[0], level, "level")
    locations = attention.locations[np.ix_(layers, queries, heads)]  # [layers, N, heads, levels, points, 2]
    weights = attention.weights[np.ix_(layers, queries, heads)] / (len(layers) * len(heads))
    num_out = len(queries) if query_weights is None else 1
    if query_weights is None:
        out_index = np.arange(len(queries))[None, :, None]  # [1, N, 1] -> one map per query
    else:
        weights = weights * query_weights[None, :, None, None, None]
        out_index = np.zeros((1, len(queries), 1), np.int64)  # everything into one map
    grid_h, grid_w = attention_grid_hw(attention)
    out = np.zeros((num_out, grid_h, grid_w), np.float64)
    for lv in levels:
        level_h, level_w = (int(v) for v in attention.level_shapes[lv])
        index = np.broadcast_to(out_index, weights.shape[:3])  # [layers, N, heads]
        level_map = _splat(
            locations[..., lv, :, :],
            weights[..., lv, :],
            out_index=index,
            num_out=num_out,
            height=level_h,
            width=level_w,
        )
        out += _resize_keep_mass(level_map, grid_h, grid_w)
    return out.astype(np.float32)


def _splat(locations, weights, *, out_index, num_out: int, height: int, width: int) -> np.ndarray:
    """Bilinear splat of `weights [..., P]` at `locations [..., P, 2]` -> `(num_out, height, width)`.

    Uses grid_sample's pixel convention (align_corners=False): x_pixel = x * width - 0.5.
    """
    x = np.clip(locations[..., 0] * width - 0.5, 0, width - 1).ravel()
    y = np.clip(locations[..., 1] * height - 0.5, 0, height - 1).ravel()
    w = weights.ravel().astype(np.float64)
    base = np.broadcast_to(out_index[..., None], weights.shape).ravel() * (height * width)
    x0 = np.minimum(np.floor(x), max(width - 2, 0)).astype(np.int64)
    y0 = np.minimum(np.floor(y), max(height - 2, 0)).astype(np.int64)
    fx, fy = x - x0, y - y0
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    index = np.concatenate(
        [base + y0 * width + x0, base + y0 * width + x1, base + y1 * width + x0, base + y1 * width + x1]
    )
    mass = np.concatenate([(1 - fy) * (1 - fx) * w, (1 - fy) * fx * w, fy * (1 - fx) * w, fy * fx * w])
    flat = np.bincount(index, weights=mass, minlength=num_out * height * width)
    return flat.reshape(num_out, height, width)


def _resize_keep_mass(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of `(N, h, w)` maps to `(N, height, width)` that keeps each cell's mass.

    Linear in the maps (each source cell's mass is spread over the target cells and sums to what it
    was), so the resized weighted sum of maps is the weighted sum of the resized maps: an aggregate
    map is exactly the weighted mean of its queries' maps, whatever the level ratios."""
    if maps.shape[1:] == (height, width):
        return maps
    rows = _mass_resize_matrix(maps.shape[1], height)  # [height, h]
    cols = _mass_resize_matrix(maps.shape[2], width)  # [width, w]
    return np.einsum("Hh,nhw,Ww->nHW", rows, maps, cols, optimize=True)


def _mass_resize_matrix(source: int, target: int) -> np.ndarray:
    """`(target, source)` 1-D linear interpolation (pixel centres, like align_corners=False) with
    each column scaled to sum to 1; a source cell no target samples goes to its nearest one."""
    position = np.clip((np.arange(target) + 0.5) * source / target - 0.5, 0, source - 1)
    low = np.minimum(np.floor(position).astype(np.int64), max(source - 2, 0))
    frac = position - low
    matrix = np.zeros((target, source))
    matrix[np.arange(target), low] += 1 - frac
    matrix[np.arange(target), np.minimum(low + 1, source - 1)] += frac
    for column in np.flatnonzero(matrix.sum(axis=0) <= 0):
        matrix[min(target - 1, int((column + 0.5) * target / source)), column] = 1.0
    return matrix / matrix.sum(axis=0, keepdims=True)


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


def query_sampling_points(
    result: InferenceResult, query_index: int, *, layer: int | None = -1, head: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A deformable query's sampling points in original-image pixels, for drawing.

    Args:
        layer / head: as in `query_attention_maps`; None takes every layer / head, and the
            weights are divided by their number, so the weights sum to 1 as for a map.

    Returns:
        points_xy float32 `(M, 2)`, weights float32 `(M,)`, level int64 `(M,)`, head int64 `(M,)`;
        zero-weight padding points are left out.

    Raises:
        ValueError: dense attention has no sampling points.
    """
    attention = result.attention
    if not isinstance(attention, DeformableAttention):
        raise ValueError("sampling points exist for deformable attention only; this model's is dense")
    checked_queries(result, [query_index])
    layers = select_indices(attention.num_layers, layer, "layer")
    heads = select_indices(attention.num_heads, head, "head")
    locations = attention.locations[np.ix_(layers, [query_index], heads)][:, 0]  # [L, K, levels, P, 2]
    weights = attention.weights[np.ix_(layers, [query_index], heads)][:, 0] / (len(layers) * len(heads))
    level = np.broadcast_to(np.arange(weights.shape[2])[None, None, :, None], weights.shape)
    head_index = np.broadcast_to(heads[None, :, None, None], weights.shape)
    keep = weights.ravel() > 0
    points = result.transform.normalized_to_image(locations.reshape(-1, 2)[keep])
    return (
        points.astype(np.float32),
        weights.ravel()[keep].astype(np.float32),
        level.ravel()[keep].astype(np.int64),
        head_index.ravel()[keep].astype(np.int64),
    )
