"""The Explain page's figures: instance maps side by side on one scale, the deletion and
insertion curves, the numbers per method, and the `explain` study's per-bucket figure."""

from __future__ import annotations

import cv2
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sodviz.evaluation.buckets import AITOD_BUCKETS
from sodviz.explain.faithfulness import CURVES, FaithfulnessCurves, energy_in_box, pointing_hit
from sodviz.explain.targets import ExplainTarget, InstanceMaps
from sodviz.views.dataset import BUCKET_TITLES, patch_window
from sodviz.views.palette import EXPLAIN_RGB, SELECTED_RGB, STATUS_RGB, hex_color
from sodviz.views.render import overlay_heatmap, with_colorbar

SHARED_SCALE = "share of the map's own maximum"


def map_panels(
    image: np.ndarray, maps: dict[str, InstanceMaps], target: ExplainTarget, *, output: str = "score",
    zoom: bool = False, opacity: float = 0.5, least: int = 320,
) -> dict[str, np.ndarray]:  # fmt: skip
    """{method: uint8 RGB panel}: each method's `output` map divided by its own maximum (their
    units differ), drawn over the image on one 0-1 colour scale with its colour bar, the
    target's box (orange for a missed object, magenta for a detection) and a cross at the
    map's maximum. `zoom`: the window about the box (8 times its side, at least 64 px) enlarged
    to `least` pixels; otherwise the whole image, enlarged to `least` when smaller."""
    window = patch_window(target.box_xyxy, image.shape[:2], context=8.0, least=64) if zoom else None
    panels = {}
    for method, found in maps.items():
        values = found.map(output) if output in found.names else found.map("score")
        peak = float(values.max())
        unit = values / peak if peak > 0 else np.zeros_like(values)
        picture = overlay_heatmap(image, unit, opacity=opacity, value_range=(0.0, 1.0))
        box = np.asarray(target.box_xyxy, np.float64)
        y, x = np.unravel_index(int(unit.argmax()), unit.shape)
        offset = np.zeros(2)
        if window is not None:
            x0, y0, x1, y1 = (int(v) for v in window)
            picture, offset = picture[y0:y1, x0:x1], np.array([x0, y0], np.float64)
        scale = max(1.0, least / max(picture.shape[:2]))
        if scale > 1:
            size = (round(picture.shape[1] * scale), round(picture.shape[0] * scale))
            picture = cv2.resize(picture, size, interpolation=cv2.INTER_NEAREST)
        picture = np.ascontiguousarray(picture)
        corners = (box - np.tile(offset, 2)) * scale
        colour = STATUS_RGB["FN"] if target.missed else SELECTED_RGB
        a, b = corners.round().astype(int).tolist()[:2], corners.round().astype(int).tolist()[2:]
        cv2.rectangle(picture, tuple(a), tuple(b), colour, 2, cv2.LINE_AA)
        peak_xy = ((np.array([x, y], np.float64) + 0.5 - offset) * scale).round().astype(int)
        cv2.drawMarker(picture, tuple(peak_xy.tolist()), (255, 255, 255), cv2.MARKER_CROSS, 14, 2)
        panels[method] = with_colorbar(picture, (0.0, 1.0), SHARED_SCALE)
    return panels


def curves_figure(curves: dict[str, FaithfulnessCurves], *, height: int = 340) -> go.Figure:
    """Deletion (left) and insertion (right): the target's matched response against the share
    of pixels changed (log axis: a small object changes within the first per mille), one line
    per method, its AUC in the legend."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Deletion (lower is more faithful)",
                                                         "Insertion (higher is more faithful)"))  # fmt: skip
    for method, curve in curves.items():
        colour = hex_color(EXPLAIN_RGB.get(method, (0, 0, 0)))
        for column, name in enumerate(CURVES, start=1):
            values = curve.response[CURVES.index(name)]
            figure.add_trace(
                go.Scatter(x=curve.fractions[1:], y=values[1:], mode="lines+markers", line=dict(color=colour),
                           name=f"{method}, {name} AUC {curve.auc(name):.3f}", legendgroup=method,
                           showlegend=True, hovertemplate="%{x:.2%} of pixels: %{y:.3f}<extra></extra>"),
                row=1, col=column,
            )  # fmt: skip
    figure.update_xaxes(type="log", title_text="share of pixels removed / revealed", tickformat=".1%")
    figure.update_yaxes(title_text="matched IoU x class score", range=[0, 1.02], row=1, col=1)
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), template="plotly_white",
                         legend=dict(orientation="h", y=-0.3))  # fmt: skip
    return figure


def number_rows(
    maps: dict[str, InstanceMaps], curves: dict[str, FaithfulnessCurves], target: ExplainTarget
) -> list[dict]:
    """One row per method: deletion and insertion AUC (when measured), pointing, energy in the
    box, and the seconds the map took."""
    rows = []
    for method, found in maps.items():
        values = found.map("score")
        row = {"method": method}
        if method in curves:
            curve = curves[method]
            row |= {"deletion AUC": curve.auc("deletion"), "insertion AUC": curve.auc("insertion")}
        row |= {"pointing": "hit" if pointing_hit(values, target.box_xyxy) else "miss",
                "energy in box": energy_in_box(values, target.box_xyxy),
                "seconds": found.seconds}  # fmt: skip
        rows.append(row)
    return rows


def study_figure(summary: list[dict], *, height: int = 380) -> go.Figure:
    """The `explain` study: per size bucket, each method's mean deletion and insertion AUC and
    pointing accuracy with their 95 % bootstrap intervals (`study.study_rows`)."""
    metrics = (("deletion_auc", "Deletion AUC (lower better)"),
               ("insertion_auc", "Insertion AUC (higher better)"),
               ("pointing", "Pointing accuracy"))  # fmt: skip
    figure = make_subplots(rows=1, cols=len(metrics), subplot_titles=[title for _, title in metrics])
    buckets = [b for b in AITOD_BUCKETS if any(row["bucket"] == b for row in summary)]
    for method in dict.fromkeys(row["method"] for row in summary):
        rows = {row["bucket"]: row for row in summary if row["method"] == method}
        for column, (metric, _) in enumerate(metrics, start=1):
            mean = np.array([rows[b][metric] if b in rows else np.nan for b in buckets])
            low = np.array([rows[b][f"{metric}_low"] if b in rows else np.nan for b in buckets])
            high = np.array([rows[b][f"{metric}_high"] if b in rows else np.nan for b in buckets])
            figure.add_trace(
                go.Bar(x=[BUCKET_TITLES[b] for b in buckets], y=mean, name=method, legendgroup=method,
                       showlegend=column == 1, marker_color=hex_color(EXPLAIN_RGB.get(method, (0, 0, 0))),
                       error_y=dict(type="data", symmetric=False, array=high - mean, arrayminus=mean - low)),
                row=1, col=column,
            )  # fmt: skip
    figure.update_layout(barmode="group", height=height, margin=dict(l=10, r=10, t=40, b=10),
                         template="plotly_white", legend=dict(orientation="h", y=-0.2))  # fmt: skip
    return figure
