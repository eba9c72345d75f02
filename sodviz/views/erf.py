"""What the ERF page and `sodviz erf` draw: heat maps with the fitted ellipse, and the sigma ratios."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import cv2
import numpy as np
import plotly.graph_objects as go

from sodviz.erf.fields import ErfResult
from sodviz.imageio import encode_png
from sodviz.views.palette import colorize


def erf_panel(erf_map: np.ndarray, fit, *, scale: str = "linear", point_xy=None) -> np.ndarray:
    """uint8 RGB heat map of one ERF (`scale` "linear" or "log"), with the fitted 1-sigma and
    2-sigma ellipses (white) and the chosen point (a cross)."""
    if scale not in ("linear", "log"):
        raise ValueError(f"scale must be 'linear' or 'log', got {scale!r}")
    values = np.asarray(erf_map, np.float64)
    if scale == "log":
        positive = values[values > 0]
        floor = positive.max() * 1e-4 if positive.size else 1.0
        values = np.log10(np.maximum(values, floor))
    span = values.max() - values.min()
    unit = (values - values.min()) / span if span > 0 else np.zeros_like(values)
    panel = colorize(unit, "inferno")
    if fit is not None and math.isfinite(fit.sigma):
        center = tuple(int(np.rint(v)) for v in fit.center_xy)
        for k in (1, 2):
            axes = tuple(max(1, int(np.rint(k * s))) for s in fit.sigma_xy)
            cv2.ellipse(panel, center, axes, 0, 0, 360, (255, 255, 255), 1, cv2.LINE_AA)
    if point_xy is not None:
        x, y = (int(np.rint(v)) for v in point_xy)
        cv2.drawMarker(panel, (x, y), (0, 255, 255), cv2.MARKER_CROSS, 9, 1)
    return panel


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


def write_erf(result: ErfResult, out: Path, *, name: str = "erf", scale: str = "linear") -> list[Path]:
    """`{name}.json` and `{name}.csv` (the sigma table) and one `{name}_{stage}.png` per stage."""
    out.mkdir(parents=True, exist_ok=True)
    rows = result.table()
    written = [out / f"{name}.json", out / f"{name}.csv"]
    payload = {"images": result.images, "point_xy": result.point_xy.tolist(), "stages": rows}
    written[0].write_text(json.dumps(payload, indent=2, allow_nan=True))
    with open(written[1], "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for stage, erf_map, fit in zip(result.stages, result.maps, result.fits, strict=True):
        path = out / f"{name}_{stage}.png"
        path.write_bytes(encode_png(erf_panel(erf_map, fit, scale=scale, point_xy=result.point_xy)))
        written.append(path)
    return written
