"""What the Fusion maps page draws: module feature maps as images, base vs module detections,
class score against size, and the CS soft-label curve."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import plotly.graph_objects as go
import supervision as sv

from sodviz.detector.module_maps import CCTM_MAPS, FINE_MAPS
from sodviz.evaluation.ground_truth import GroundTruth, GroundTruthMatch, match_ground_truth
from sodviz.views.palette import colorize
from sodviz.views.render import to_unit
from sodviz.views.vicrop import above, draw_with_truth

CS_SIZES_PX = np.geomspace(2, 512, 60)  # object sides of the CS / Boost-weight curve
CS_IMAGE_SIDE = 1024  # in an image this wide (Cross-DINO's example)
CHANNEL_MODES = {"mean": "mean", "channel": "one channel", "pca": "PCA to RGB"}
MAP_TITLES = {
    "B": "B (backbone, projected)",
    "E": "E (encoder)",
    "gate": "gating map B'E'",
    "E_cf": "E_cf (fused)",
    "F_high": "F_high",
    "F_low": "F_low",
    "M": "modulation map M",
    "aligned": "aligned F_low",
}


@dataclass(frozen=True)
class Section:
    """One block of maps on the page: a field of `FusionMaps`, its maps, and its entries' names."""

    title: str
    group: str
    maps: tuple[str, ...]
    labels: tuple[str, ...]


SECTIONS = (
    Section("CCTM per level (Cross-DINO Fig. 6)", "cctm", CCTM_MAPS, ("stride 8", "stride 16", "stride 32")),
    Section(
        "FINE per fusion stage (FINE Fig. 8)", "fine", FINE_MAPS, ("stride-16 fusion", "stride-8 fusion")
    ),
)


def feature_panel(
    feature: np.ndarray,
    *,
    mode: str = "mean",
    channel: int = 0,
    side: int = 256,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """uint8 RGB `(side, side * w / h, 3)` image of a `(C, h, w)` map: one channel or the channel
    mean through the viridis colour map (over `value_range`, see `feature_range`, else the map's
    own 1st-99th percentiles), or PCA to RGB; enlarged with nearest pixels so the cells stay visible."""
    if mode != "pca" and value_range is not None:
        rgb = colorize(to_unit(_channel_values(feature, mode, channel), value_range), "viridis")
    else:
        reduced = reduce_channels(feature, mode=mode, channel=channel)
        rgb = colorize(reduced, "viridis") if reduced.ndim == 2 else (reduced * 255).astype(np.uint8)
    height, width = rgb.shape[:2]
    return cv2.resize(rgb, (max(1, round(side * width / height)), side), interpolation=cv2.INTER_NEAREST)


def feature_range(features: list[np.ndarray], *, mode: str = "mean", channel: int = 0) -> tuple[float, float]:
    """One colour scale for maps shown side by side: the 1st and 99th percentiles of all their
    values (channel mean, or one channel)."""
    values = np.concatenate([_channel_values(f, mode, channel).ravel() for f in features])
    low, high = np.percentile(values, [1, 99])
    return float(low), float(high)


def _channel_values(feature: np.ndarray, mode: str, channel: int) -> np.ndarray:
    if mode == "mean":
        return feature.mean(axis=0)
    if mode == "channel":
        return feature[channel]
    raise ValueError(f"a value scale needs mode 'mean' or 'channel', got {mode!r}")


@dataclass(frozen=True)
class Comparison:
    """Detections of several detectors on one image, drawn, with their ground-truth matches."""

    images: dict[str, np.ndarray]  # name -> uint8 RGB
    matches: dict[str, GroundTruthMatch] | None
    counts: dict[str, int]  # name -> detections above the threshold


def compare_detections(
    image: np.ndarray, detections: dict[str, sv.Detections], *, threshold: float,
    class_names: tuple[str, ...], truth: GroundTruth | None,
) -> Comparison:  # fmt: skip
    """Side by side: each detector's detections above `threshold`, TP / FP / FN when `truth` is given."""
    kept = {name: above(found, threshold) for name, found in detections.items()}
    matches = None
    if truth is not None:
        matches = {n: match_ground_truth(d, truth, class_names=class_names) for n, d in kept.items()}
    images = {n: draw_with_truth(image, d, matches[n] if matches else None, truth) for n, d in kept.items()}
    return Comparison(images=images, matches=matches, counts={n: len(d) for n, d in kept.items()})


def score_size_figure(curves: dict[str, dict[str, np.ndarray]]) -> go.Figure:
    """Average class score per object-size bin, one line per detector (see `score_by_size`)."""
    traces = []
    for name, curve in curves.items():
        labels = [
            f"{lo:g}-{hi:g}" if hi < 1e8 else f">{lo:g}"
            for lo, hi in zip(curve["low"], curve["high"], strict=True)
        ]
        traces.append(go.Scatter(
            x=labels, y=curve["mean_score"], mode="lines+markers", name=name,
            customdata=curve["count"], hovertemplate="%{x} px: %{y:.3f} (%{customdata} objects)",
        ))  # fmt: skip
    layout = dict(
        xaxis=dict(title="object size, model-input pixels (sqrt of area)"),
        yaxis=dict(title="average class score", range=[0, 1]),
        height=340, template="plotly_white", margin=dict(t=30),
    )  # fmt: skip
    return go.Figure(data=traces, layout=layout)


def cs_figure(curve: dict[str, np.ndarray], *, beta: float, image_side: float) -> go.Figure:
    """The CS soft label and the Boost weight on a positive against object size."""
    figure = go.Figure(layout=dict(height=320, template="plotly_white", margin=dict(t=30),
                                   xaxis=dict(title=f"object side, pixels of a {image_side:g} px image",
                                              type="log"),
                                   yaxis=dict(title="value")))  # fmt: skip
    figure.add_scatter(x=curve["size"], y=curve["cs"], name="CS soft label sqrt(hw/HW)")
    figure.add_scatter(x=curve["size"], y=curve["weight"], name=f"positive weight 1 + (1 - cs^{beta:g})")
    return figure


def reduce_channels(feature: np.ndarray, mode: str = "mean", channel: int = 0) -> np.ndarray:
    """A `(C, h, w)` map for display: "mean" or "channel" -> float32 `(h, w)` in [0, 1];
    "pca" -> float32 `(h, w, 3)`, the first three principal components as RGB, each in [0, 1]."""
    if feature.ndim != 3:
        raise ValueError(f"expected a (C, h, w) map, got shape {feature.shape}")
    if mode == "mean":
        return _unit(feature.mean(axis=0))
    if mode == "channel":
        if not 0 <= channel < feature.shape[0]:
            raise ValueError(f"channel {channel} outside 0..{feature.shape[0] - 1}")
        return _unit(feature[channel])
    if mode != "pca":
        raise ValueError(f"mode must be 'mean', 'channel' or 'pca', got {mode!r}")
    channels, height, width = feature.shape
    pixels = feature.reshape(channels, -1).T.astype(np.float64)  # [h*w, C]
    pixels -= pixels.mean(axis=0)
    _, _, components = np.linalg.svd(pixels, full_matrices=False)
    projected = pixels @ components[:3].T  # [h*w, <=3]
    rgb = np.zeros((height * width, 3))
    rgb[:, : projected.shape[1]] = projected
    return (
        np.stack([_unit(rgb[:, i]) for i in range(3)], axis=-1).reshape(height, width, 3).astype(np.float32)
    )


def _unit(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] between the 1st and 99th percentiles (a flat map gives zeros)."""
    low, high = np.percentile(values, [1, 99])
    if high <= low:
        return np.zeros(values.shape, np.float32)
    return np.clip((values - low) / (high - low), 0, 1).astype(np.float32)
