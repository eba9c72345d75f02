"""What the ERF page and `sodviz erf` draw: heat maps with the fitted ellipse, and the sigma ratios."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import plotly.graph_objects as go

from sodviz.erf.fields import ErfResult
from sodviz.views.figures import image_figure
from sodviz.views.palette import POINT_RGB, colorize, hex_color
from sodviz.views.render import heat_range, to_unit, with_colorbar


def erf_panel(
    erf_map: np.ndarray,
    fit,
    *,
    scale: str = "linear",
    point_xy=None,
    background: np.ndarray | None = None,
    opacity: float = 0.75,
) -> np.ndarray:
    """uint8 RGB heat map of one ERF (`scale` "linear" or "log"), with the fitted 1-sigma and
    2-sigma ellipses (white) and the chosen point (a cross); over `background` (the model-input
    image, resized to the map) when given, each pixel as opaque as its value is high."""
    values = erf_values(erf_map, scale)
    unit = to_unit(values, heat_range(values))
    panel = colorize(unit, "inferno")
    if background is not None:
        under = cv2.resize(background, panel.shape[1::-1], interpolation=cv2.INTER_AREA)
        alpha = (opacity * np.sqrt(unit))[..., None]
        panel = (under * (1.0 - alpha) + panel * alpha).astype(np.uint8)
    if fit is not None and math.isfinite(fit.sigma):
        center = tuple(int(np.rint(v)) for v in fit.center_xy)
        for k in (1, 2):
            axes = tuple(max(1, int(np.rint(k * s))) for s in fit.sigma_xy)
            cv2.ellipse(panel, center, axes, 0, 0, 360, (255, 255, 255), 1, cv2.LINE_AA)
    if point_xy is not None:
        x, y = (int(np.rint(v)) for v in point_xy)
        cv2.drawMarker(panel, (x, y), POINT_RGB, cv2.MARKER_CROSS, 9, 1)
    return panel


def erf_values(erf_map: np.ndarray, scale: str = "linear") -> np.ndarray:
    """The ERF as drawn: gradient magnitudes, or their log10 (floored at 1e-4 of the peak)."""
    if scale not in ("linear", "log"):
        raise ValueError(f"scale must be 'linear' or 'log', got {scale!r}")
    values = np.asarray(erf_map, np.float64)
    if scale == "log":
        positive = values[values > 0]
        floor = positive.max() * 1e-4 if positive.size else 1.0
        values = np.log10(np.maximum(values, floor))
    return values


def erf_colorbar(panel: np.ndarray, erf_map: np.ndarray, scale: str = "linear") -> np.ndarray:
    """`panel` (or a zoom of it) with the colour bar of `erf_map` in its own units."""
    label = "ERF: |gradient| at the point" if scale == "linear" else "ERF: log10 |gradient| at the point"
    return with_colorbar(panel, heat_range(erf_values(erf_map, scale)), label, colormap="inferno")


def zoom_window(result: ErfResult, *, sigmas: float = 3.0, min_half: int = 24) -> tuple[int, int, int, int]:
    """xyxy input pixels of one square window around the point that holds `sigmas` of every
    stage's widest fitted sigma (clipped to the input), so all panels share one zoom."""
    height, width = result.maps.shape[1:]
    finite = [max(f.sigma_xy) for f in result.fits if np.isfinite(f.sigma_xy).all()]
    half = int(max(min_half, sigmas * max(finite, default=max(height, width))))
    x, y = (int(v) for v in result.point_xy)
    return max(0, x - half), max(0, y - half), min(width, x + half + 1), min(height, y + half + 1)


def ratio_figure(results: dict[str, ErfResult]) -> go.Figure:
    """Sigma ratio between adjacent stages per result (e.g. trained and random weights), with
    the stride ratio for reference."""
    traces = []
    for name, result in results.items():
        labels = [f"{a}→{b}" for a, b in itertools.pairwise(result.stages)]
        traces.append(
            dict(type="bar", name=f"sigma ratio, {name}", x=labels, y=result.sigma_ratios().tolist())
        )
    if results:
        first = next(iter(results.values()))
        labels = [f"{a}→{b}" for a, b in itertools.pairwise(first.stages)]
        traces.append(
            dict(
                type="scatter",
                mode="lines+markers",
                name="stride ratio",
                x=labels,
                y=first.stride_ratios().tolist(),
            )
        )
    layout = dict(yaxis=dict(title="ratio"), barmode="group", height=360, template="plotly_white")
    return go.Figure(data=traces, layout=layout)


def erf_point(point_xy, input_hw: tuple[int, int]) -> list[float]:
    """`[x, y]` in model-input pixels: the chosen point (default: the centre), kept inside the input."""
    input_h, input_w = input_hw
    x, y = point_xy or (input_w / 2, input_h / 2)
    return [min(x, input_w - 1), min(y, input_h - 1)]


def point_picker_figure(
    image: np.ndarray, input_hw: tuple[int, int], point_xy: list[float], *, height: int = 360
) -> go.Figure:
    """The image at the model-input size with an invisible grid of clickable points (each carrying
    its `[x, y]` in input pixels as customdata) and the chosen point as a cross."""
    input_h, input_w = input_hw
    shown = cv2.resize(image, (input_w, input_h), interpolation=cv2.INTER_AREA)
    step = max(8, min(input_h, input_w) // 32)
    ys, xs = np.mgrid[step // 2 : input_h : step, step // 2 : input_w : step]
    grid = dict(
        type="scatter", mode="markers", x=xs.ravel().tolist(), y=ys.ravel().tolist(), name="click a point",
        customdata=np.stack([xs.ravel(), ys.ravel()], axis=1).tolist(), hoverinfo="x+y",
        marker=dict(size=step, color="rgba(0,0,0,0)"),
    )  # fmt: skip
    marker = dict(type="scatter", mode="markers", x=[point_xy[0]], y=[point_xy[1]], name="point",
                  marker=dict(size=14, symbol="x", color=hex_color(POINT_RGB)))  # fmt: skip
    return image_figure(shown, traces=[grid, marker], height=height)
