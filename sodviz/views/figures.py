"""Plotly figures for the app: an image with boxes you can click, and sampling points on an image."""

from __future__ import annotations

import base64

import numpy as np
import plotly.graph_objects as go
import supervision as sv

from sodviz.boxes import box_size
from sodviz.imageio import encode_jpeg
from sodviz.views.palette import SELECTED_RGB, STATUS_RGB, hex_color, level_rgb

STATUS_COLORS = {name: hex_color(rgb) for name, rgb in STATUS_RGB.items()}
SELECTED_COLOR = hex_color(SELECTED_RGB)  # the picked query, on every figure
LEGEND_HEIGHT = 30  # pixels above an image figure for its one-row legend
CONTENT_WIDTH = 1150  # pixels: the app's main column in a 1500 px window (and a report's width)


def image_figure_height(image: np.ndarray, *, cap: int = 620, columns: int = 1) -> int:
    """Pixels for an image figure: the image's own aspect at the column's width (no empty bands
    beside or below a landscape photograph), at most `cap`, plus the legend above it."""
    height, width = image.shape[:2]
    return int(min(cap, max(240, CONTENT_WIDTH / columns * height / width))) + LEGEND_HEIGHT


def image_figure(
    image: np.ndarray, *, height: int = 640, traces: list[dict] = (), view_xyxy: tuple | None = None
) -> go.Figure:
    """A figure showing `image` (uint8 RGB) at its pixel coordinates, y downwards, no margins, with
    `traces` (plotly trace dicts in image pixels) over it, zoomed to `view_xyxy` if given (plotly's
    autoscale button shows the whole image). Built in one constructor call: plotly's update methods
    cost about 10 ms a figure, too much for a slider."""
    image_h, image_w = image.shape[:2]
    x0, y0, x1, y1 = (0, 0, image_w, image_h) if view_xyxy is None else view_xyxy
    layout = dict(
        height=height,
        margin=dict(l=0, r=0, t=LEGEND_HEIGHT, b=0),  # the legend sits above the image, never on it
        dragmode="pan",
        showlegend=True,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0.0, bgcolor="rgba(255,255,255,0)"),
        xaxis=dict(visible=False, range=[x0, x1]),
        yaxis=dict(visible=False, range=[y1, y0], scaleanchor="x"),
    )
    background = dict(type="image", source=image_data_uri(image), hoverinfo="skip")
    return go.Figure(data=[background, *traces], layout=layout)


def image_data_uri(image: np.ndarray, *, quality: int = 90) -> str:
    """A JPEG data URI of a uint8 RGB image (about 10x faster to encode than PNG; display only)."""
    return "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(image, quality=quality)).decode()


def box_trace(
    boxes_xyxy: np.ndarray, *, color: str, name: str, dash: str = "solid", width: float = 2
) -> dict:
    """One scatter trace (one legend entry) outlining boxes `(N, 4)` in image pixels."""
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    corners = boxes[:, [0, 2, 2, 0, 0, 1, 1, 3, 3, 1]]  # x0 x1 x1 x0 x0 | y0 y0 y1 y1 y0
    xs = np.concatenate([corners[:, :5], np.full((len(boxes), 1), np.nan)], axis=1).ravel()
    ys = np.concatenate([corners[:, 5:], np.full((len(boxes), 1), np.nan)], axis=1).ravel()
    line = dict(color=color, width=width, dash=dash)
    return dict(type="scatter", x=xs, y=ys, mode="lines", line=line, name=name, hoverinfo="skip")


def missed_traces(missed_xyxy: np.ndarray) -> list[dict]:
    """Missed objects (FN): a thick dashed outline and a ring at each centre, so objects of a few
    pixels stay visible on a whole photograph; one legend entry for both."""
    boxes = np.asarray(missed_xyxy, np.float64).reshape(-1, 4)
    color = STATUS_COLORS["FN"]
    outline = box_trace(boxes, color=color, name="FN (missed)", dash="dash", width=2.5)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    ring = dict(
        type="scatter", x=centres[:, 0], y=centres[:, 1], mode="markers", name="FN (missed)",
        marker=dict(symbol="circle-open", size=14, color=color, line=dict(width=2.5)),
        hoverinfo="skip", showlegend=False, legendgroup="FN",
    )  # fmt: skip
    return [outline | {"legendgroup": "FN"}, ring]


def detections_figure(
    image: np.ndarray,
    detections: sv.Detections,
    *,
    status: np.ndarray | None = None,
    missed_xyxy: np.ndarray | None = None,
    selected_query: int | None = None,
    height: int = 640,
) -> go.Figure:
    """The image with detection boxes (coloured by TP / FP when `status` is given), missed objects
    dashed, and a clickable marker at each detection's centre carrying its query index."""
    status = np.full(len(detections), "", dtype="<U2") if status is None else np.asarray(status)
    traces = [
        box_trace(detections.xyxy[status == label], color=STATUS_COLORS[label], name=label or "detection")
        for label in ("", "TP", "FP")
        if (status == label).any()
    ]
    if missed_xyxy is not None and len(missed_xyxy):
        traces += missed_traces(missed_xyxy)
    queries = np.asarray(detections.data.get("query_index", np.arange(len(detections))))
    names = detections.data.get("class_name", detections.class_id.astype(str))
    centers = detections.get_anchors_coordinates(sv.Position.CENTER) if len(detections) else np.zeros((0, 2))
    traces.append(
        dict(
            type="scatter",
            x=centers[:, 0],
            y=centers[:, 1],
            mode="markers",
            marker=dict(size=9, color="rgba(255,255,255,0.01)", line=dict(width=0)),
            customdata=queries,
            text=[f"q{q} {n} {c:.2f}" for q, n, c in zip(queries, names, detections.confidence, strict=True)],
            hovertemplate="%{text}<extra></extra>",
            name="pick a query",
            showlegend=False,
        )
    )
    if selected_query is not None and (queries == selected_query).any():
        box = detections.xyxy[queries == selected_query][:1]
        traces.append(box_trace(box, color=SELECTED_COLOR, name=f"query {selected_query}", width=4))
    return image_figure(image, height=height, traces=traces)


def sampling_points_figure(
    image: np.ndarray,
    points_xy: np.ndarray,
    weights: np.ndarray,
    levels: np.ndarray,
    *,
    box_xyxy: np.ndarray | None = None,
    view_xyxy: tuple | None = None,
    height: int = 640,
) -> go.Figure:
    """Sampling points on the image: marker area proportional to weight, colour by feature level;
    zoomed to `view_xyxy` when given (small objects' points are invisible on the whole image)."""
    traces = (
        [] if box_xyxy is None else [box_trace(box_xyxy, color=SELECTED_COLOR, name="detection", width=3)]
    )
    top = float(weights.max()) if len(weights) else 1.0
    for level in np.unique(levels):
        mask = levels == level
        marker = dict(
            size=3 + 12 * np.sqrt(weights[mask] / top),
            color=hex_color(level_rgb(level)),
            opacity=0.8,
            line=dict(width=0.5, color="black"),
        )
        traces.append(
            dict(
                type="scatter",
                x=points_xy[mask, 0],
                y=points_xy[mask, 1],
                mode="markers",
                marker=marker,
                text=[f"weight {w:.3f}" for w in weights[mask]],
                hovertemplate=f"level {int(level)}, %{{text}}<extra></extra>",
                name=f"level {int(level)}",
            )
        )
    if box_xyxy is not None:  # on top of the points, one legend entry for both outlines
        traces.append(
            box_trace(box_xyxy, color=SELECTED_COLOR, name="detection", width=2) | {"showlegend": False}
        )
    return image_figure(image, height=height, traces=traces, view_xyxy=view_xyxy)


def entropy_figure(
    detections: sv.Detections, entropy: np.ndarray, *, status: np.ndarray | None = None, height: int = 360
) -> go.Figure:
    """Each detection's attention entropy against its score, coloured TP / FP (with ground truth),
    marker area by box size: focused (low) or diffuse (high) attention, for confident and doubtful
    detections, small and large. Clicking a point carries its query index."""
    status = np.full(len(detections), "", dtype="<U2") if status is None else np.asarray(status)
    queries = np.asarray(detections.data.get("query_index", np.arange(len(detections))))
    names = np.asarray(detections.data.get("class_name", detections.class_id.astype(str)))
    sizes = box_size(detections.xyxy) if len(detections) else np.zeros(0)
    traces = []
    for label in ("", "TP", "FP"):
        mask = status == label
        if not mask.any():
            continue
        columns = (queries[mask], names[mask], sizes[mask])
        traces.append(
            dict(
                type="scatter", x=detections.confidence[mask], y=entropy[mask], mode="markers",
                name=label or "detection", customdata=queries[mask],
                marker=dict(
                    size=np.clip(4 + np.sqrt(sizes[mask]), 5, 26), color=STATUS_COLORS[label], opacity=0.75,
                    line=dict(width=0.5, color="black"),
                ),
                text=[f"q{q} {n} · {z:.0f} px" for q, n, z in zip(*columns, strict=True)],
                hovertemplate="%{text}<br>score %{x:.2f} · entropy %{y:.2f} nats<extra></extra>",
            )
        )  # fmt: skip
    layout = dict(
        height=height, margin=dict(l=50, r=10, t=30, b=40),
        xaxis=dict(title="score"), yaxis=dict(title="attention entropy, last layer (nats)"),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0.0),
    )  # fmt: skip
    return go.Figure(data=traces, layout=layout)
