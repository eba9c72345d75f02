"""What the app's pages show, computed from one cached `InferenceResult` (cheap: slider-speed).

Each view is drawn again on every rerun of its page unless a `cache` is given: the app keeps them
in its view cache, keyed by everything they read (the result, the image, the settings), so a page
revisited, or rerun by another widget, sends what it drew last time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import supervision as sv

from sodviz.attention.entropy import attention_entropy
from sodviz.attention.maps import (
    aggregate_attention_map,
    query_attention_map,
    query_attention_maps,
    query_sampling_points,
)
from sodviz.boxes import box_size, crop_window
from sodviz.cache import InferenceCache, cached, content_key
from sodviz.detector.inference import to_detections
from sodviz.evaluation.ground_truth import (
    GroundTruth,
    GroundTruthMatch,
    app_bucket,
    match_ground_truth,
)
from sodviz.types import DeformableAttention, DenseAttention, InferenceResult
from sodviz.views.render import (
    draw_sampling_points,
    heat_range,
    heat_with_colorbar,
    overlay_heatmap,
    tile_images,
    with_colorbar,
)


@dataclass(frozen=True, slots=True)
class DetectionsView:
    """Detections above a threshold with their attention entropy and, with ground truth, matches.

    Attributes:
        detections: sorted by confidence, `data["query_index"]`, `data["class_name"]`.
        entropy: float32 `(D,)` nats, each detection's last-layer attention entropy.
        match: TP / FP / FN against ground truth, or None without it.
        table: one dict per detection for display (score, class, size, bucket, query, entropy).
    """

    detections: sv.Detections
    entropy: np.ndarray
    match: GroundTruthMatch | None
    table: list[dict]

    @property
    def nbytes(self) -> int:  # for `InferenceCache`: the arrays, and about 600 bytes a table row
        detections = self.detections
        arrays = [detections.xyxy, detections.confidence, detections.class_id, *detections.data.values()]
        return sum(int(np.asarray(a).nbytes) for a in arrays) + self.entropy.nbytes + 600 * len(self.table)


def _read_of(result: InferenceResult, queries) -> tuple:
    """What a view reads of `result`, for its cache key: the boxes, class scores and names, the
    transform and the family, and the attention of `queries` only (every layer and head). Hashing
    the whole result would read all of a dense model's attention, layers x heads x queries x h x w
    (about 36 MB for 300 queries on a 25 x 25 grid), for every view on every rerun."""
    index = np.asarray(queries, dtype=np.int64).reshape(-1)
    attention = result.attention
    if isinstance(attention, DenseAttention):
        part = (attention.weights[:, :, index],)
    else:
        part = (attention.locations[:, index], attention.weights[:, index], attention.level_shapes)
    kind = type(attention).__name__
    return (
        result.boxes_xyxy,
        result.class_scores,
        result.class_names,
        result.transform,
        result.family,
        kind,
        *part,
    )


def detections_view(
    result: InferenceResult,
    *,
    score_threshold: float,
    classes: list[int] | None = None,
    top_n: int | None = None,
    truth: GroundTruth | None = None,
    cache: InferenceCache | None = None,
) -> DetectionsView:
    """Detections for the Detections page (see `DetectionsView`); `top_n` keeps the most confident;
    kept in `cache` when given."""

    def key() -> tuple:
        queries = _kept(result, score_threshold, classes, top_n).data["query_index"]
        parts = (_read_of(result, queries), score_threshold, classes, top_n, truth)
        return ("detections_view", content_key(*parts))

    return cached(cache, key, lambda: _detections_view(result, score_threshold, classes, top_n, truth))


def _kept(result, score_threshold, classes, top_n) -> sv.Detections:
    detections = to_detections(result, score_threshold=score_threshold, classes=classes)
    return detections if top_n is None else detections[:top_n]


def _detections_view(result, score_threshold, classes, top_n, truth) -> DetectionsView:
    detections = _kept(result, score_threshold, classes, top_n)
    queries = detections.data["query_index"]
    entropy = attention_entropy(query_attention_maps(result, queries)) if len(queries) else np.zeros(0)
    match = None if truth is None else match_ground_truth(detections, truth, class_names=result.class_names)
    sizes = box_size(detections.xyxy)
    buckets = app_bucket(detections.xyxy)
    table = [
        {
            "query": int(queries[i]),
            "class": str(detections.data["class_name"][i]),
            "score": round(float(detections.confidence[i]), 3),
            "size_px": round(float(sizes[i]), 1),
            "bucket": str(buckets[i]),
            "entropy": round(float(entropy[i]), 3),
        }
        | ({} if match is None else {"match": str(match.status[i])})
        for i in range(len(detections))
    ]
    return DetectionsView(detections=detections, entropy=entropy.astype(np.float32), match=match, table=table)


HEADS_ZOOM = dict(factor=6.0, min_side=96)  # the heads grid: the detection and its surroundings
POINTS_ZOOM = dict(factor=12.0, min_side=192)  # sampling points reach further than the box


@dataclass(frozen=True, slots=True)
class QueryAttentionView:
    """One query's attention drawn on the image.

    Attributes:
        heat_overlay: uint8 RGB, the query's map (chosen layer / head, or their mean) over the image.
        points: (points_xy, weights, levels, heads) of a deformable query, else None.
        points_overlay: uint8 RGB, those points drawn on the image, else None.
        heads_grid: uint8 RGB mosaic of each head's map around the detection (window in `window`).
        window: `(x0, y0, x1, y1)` of the heads grid, original pixels (`HEADS_ZOOM`).
        points_window: `(x0, y0, x1, y1)` to zoom the sampling points to (`POINTS_ZOOM`).
        entropy: nats, entropy of the shown map.
    """

    heat_overlay: np.ndarray
    points: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None
    points_overlay: np.ndarray | None
    heads_grid: np.ndarray
    window: tuple[int, int, int, int]
    points_window: tuple[int, int, int, int]
    entropy: float

    @property
    def nbytes(self) -> int:  # for `InferenceCache`
        arrays = [self.heat_overlay, self.heads_grid, self.points_overlay, *(self.points or ())]
        return sum(int(a.nbytes) for a in arrays if a is not None)


ATTENTION_UNIT = "attention weight per feature cell"


def query_attention_view(
    result: InferenceResult,
    image: np.ndarray,
    *,
    query: int,
    layer: int | None,
    head: int | None,
    opacity: float,
    cache: InferenceCache | None = None,
) -> QueryAttentionView:
    """Everything the Attention page shows for one query (layer / head None: the mean); kept in
    `cache` when given."""
    return cached(
        cache,
        lambda: (
            "query_attention_view",
            content_key(_read_of(result, query), image, query, layer, head, opacity),
        ),
        lambda: _query_attention_view(result, image, query, layer, head, opacity),
    )


def _query_attention_view(result, image, query, layer, head, opacity) -> QueryAttentionView:
    heat = query_attention_map(result, query, layer=layer, head=head)
    overlay = heat_with_colorbar(image, result.transform.grid_to_image(heat), ATTENTION_UNIT, opacity=opacity)
    points = points_overlay = None
    if isinstance(result.attention, DeformableAttention):
        points = query_sampling_points(result, query, layer=layer, head=head)
        points_overlay = draw_sampling_points(image, *points[:3])
    window = crop_window(result.boxes_xyxy[query], image.shape[:2], **HEADS_ZOOM)
    x0, y0, x1, y1 = window
    heads = [
        result.transform.grid_to_image(query_attention_map(result, query, layer=layer, head=index))[
            y0:y1, x0:x1
        ]
        for index in range(result.attention.num_heads)
    ]
    shared = heat_range(*heads)  # one scale: heads are compared with each other
    tiles = [overlay_heatmap(image[y0:y1, x0:x1], m, opacity=opacity, value_range=shared) for m in heads]
    titles = [f"head {index}" for index in range(len(heads))]
    grid = with_colorbar(tile_images(tiles, columns=4, tile=160, titles=titles), shared, ATTENTION_UNIT)
    return QueryAttentionView(
        heat_overlay=overlay,
        points=points,
        points_overlay=points_overlay,
        heads_grid=grid,
        window=window,
        points_window=crop_window(result.boxes_xyxy[query], image.shape[:2], **POINTS_ZOOM),
        entropy=float(attention_entropy(heat[None])[0]),
    )


def aggregate_overlay(
    result: InferenceResult,
    image: np.ndarray,
    detections: sv.Detections,
    *,
    layer: int | None,
    opacity: float,
    cache: InferenceCache | None = None,
) -> np.ndarray:
    """uint8 RGB: the score-weighted mean attention of `detections` over the image; kept in
    `cache` when given."""
    queries, weights = detections.data["query_index"], detections.confidence

    def key() -> tuple:
        return (
            "aggregate_overlay",
            content_key(_read_of(result, queries), image, queries, weights, layer, opacity),
        )

    return cached(cache, key, lambda: _aggregate_overlay(result, image, queries, weights, layer, opacity))


def _aggregate_overlay(result, image, queries, weights, layer, opacity) -> np.ndarray:
    heat = aggregate_attention_map(result, queries, query_weights=weights, layer=layer)
    on_image = result.transform.grid_to_image(heat)
    return heat_with_colorbar(image, on_image, "score-weighted mean " + ATTENTION_UNIT, opacity=opacity)
