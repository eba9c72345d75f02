"""The Dataset page's figures: misses by size and error type, entropy distributions, and zoomed
patches of single objects with the nearest query's attention."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from sodviz.analysis.errors import MISS_TYPES
from sodviz.analysis.queries import BUCKETS
from sodviz.attention.maps import query_attention_map, query_sampling_points
from sodviz.types import DeformableAttention, InferenceResult
from sodviz.views.palette import MISS_RGB, STATUS_RGB, hex_color
from sodviz.views.render import draw_sampling_points, overlay_heatmap

BUCKET_TITLES = {"vt": "very tiny < 8", "t": "tiny 8-16", "s": "small 16-32", "m": "medium >= 32"}
KIND_RGB = {"TP": STATUS_RGB["TP"], "FP": STATUS_RGB["FP"], "nearest to a miss": STATUS_RGB["FN"]}


def error_figure(summary: pd.DataFrame, *, height: int = 320) -> go.Figure:
    """Misses per size bucket, stacked by error type (`Analysis.bucket_summary` rows)."""
    rows = summary.set_index("bucket").reindex(list(BUCKETS))
    traces = [
        go.Bar(name=kind, x=[BUCKET_TITLES[b] for b in BUCKETS], y=rows[kind].fillna(0).tolist(),
               marker_color=hex_color(MISS_RGB[kind]))
        for kind in MISS_TYPES
    ]  # fmt: skip
    figure = go.Figure(traces)
    figure.update_layout(
        barmode="stack", height=height, margin=dict(l=10, r=10, t=30, b=10), template="plotly_white",
        xaxis_title="size in model-input pixels (AI-TOD buckets)", yaxis_title="missed objects",
        legend=dict(orientation="h", y=1.12, x=0), title=None,
    )  # fmt: skip
    return figure


def entropy_distributions(rows: pd.DataFrame, *, height: int = 320) -> go.Figure:
    """Normalised attention entropy of TP and FP detections and of the queries nearest to missed
    objects, one box per kind within each size bucket (`Analysis.entropy_rows`)."""
    figure = go.Figure()
    for kind, rgb in KIND_RGB.items():
        mine = rows[rows["kind"] == kind]
        figure.add_trace(
            go.Box(x=[BUCKET_TITLES.get(b, b) for b in mine["bucket"]], y=mine["entropy"], name=kind,
                   marker_color=hex_color(rgb), boxmean=True)
        )  # fmt: skip
    figure.update_layout(
        boxmode="group", height=height, margin=dict(l=10, r=10, t=30, b=10), template="plotly_white",
        yaxis_title="attention entropy (0 one cell, 1 uniform)", legend=dict(orientation="h", y=1.12, x=0),
        xaxis=dict(categoryorder="array", categoryarray=[BUCKET_TITLES[b] for b in BUCKETS]),
    )  # fmt: skip
    return figure


def patch_window(box_xyxy, image_hw: tuple[int, int], *, context: float = 4.0, least: int = 48) -> np.ndarray:
    """int64 `[x0, y0, x1, y1]`: a square about a box, `context` times its longer side (at least
    `least` pixels), shifted inside the image."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    height, width = image_hw
    side = int(min(max(context * max(x1 - x0, y1 - y0), least), width, height))
    left = int(np.clip(round((x0 + x1) / 2 - side / 2), 0, width - side))
    top = int(np.clip(round((y0 + y1) / 2 - side / 2), 0, height - side))
    return np.array([left, top, left + side, top + side], np.int64)


def object_patch(
    image: np.ndarray, box_xyxy, *, result: InferenceResult | None = None, query: int = -1,
    rgb=STATUS_RGB["FN"], size: int = 160,
) -> np.ndarray:  # fmt: skip
    """uint8 `(size, size, 3)`: the image about one object, zoomed, the object's box drawn; with a
    result and a query, that query's attention over it (sampling points for deformable models,
    its map for dense ones) and the query's own box (thin, cyan)."""
    window = patch_window(box_xyxy, image.shape[:2])
    x0, y0, x1, y1 = window
    picture = image
    if result is not None and query >= 0:
        if isinstance(result.attention, DeformableAttention):
            points, weights, levels, _ = query_sampling_points(result, query)
            inside = (points[:, 0] >= x0) & (points[:, 0] < x1) & (points[:, 1] >= y0) & (points[:, 1] < y1)
            crop = image[y0:y1, x0:x1]
            zoom = size / crop.shape[1]
            crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_NEAREST)
            canvas = draw_sampling_points(
                crop, (points[inside] - [x0, y0]) * zoom, weights[inside], levels[inside]
            )
            return _boxes(canvas, box_xyxy, result.boxes_xyxy[query], window, zoom, rgb)
        heat = result.transform.grid_to_image(query_attention_map(result, query))
        picture = overlay_heatmap(image, heat, opacity=0.45)
    crop = picture[y0:y1, x0:x1]
    zoom = size / crop.shape[1]
    canvas = cv2.resize(crop, (size, size), interpolation=cv2.INTER_NEAREST)
    nearest = result.boxes_xyxy[query] if result is not None and query >= 0 else None
    return _boxes(canvas, box_xyxy, nearest, window, zoom, rgb)


def _boxes(canvas: np.ndarray, box, nearest, window: np.ndarray, zoom: float, rgb) -> np.ndarray:
    """The object's box (thick, `rgb`) and the nearest query's (thin, cyan), in patch pixels."""
    canvas = np.ascontiguousarray(canvas)
    for xyxy, colour, width in ((nearest, STATUS_RGB[""], 1), (box, rgb, 2)):
        if xyxy is None:
            continue
        corners = (np.asarray(xyxy, np.float64) - np.tile(window[:2], 2)) * zoom
        a, b = tuple(round(v) for v in corners[:2].tolist()), tuple(round(v) for v in corners[2:].tolist())
        cv2.rectangle(canvas, a, b, colour, width, cv2.LINE_AA)
    return canvas
