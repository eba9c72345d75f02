"""Drawing: detections and heatmaps on RGB images (BGR only inside, for OpenCV-based annotators)."""

from __future__ import annotations

import cv2
import numpy as np
import supervision as sv

from sodviz.views.palette import STATUS_RGB, colorize, level_rgb


def detection_labels(detections: sv.Detections) -> list[str]:
    """`"class 0.87 q12"` for each detection: class name, confidence, query index."""
    names = detections.data.get("class_name", [str(c) for c in detections.class_id])
    queries = detections.data.get("query_index", [None] * len(detections))
    return [
        f"{name} {confidence:.2f}" + ("" if query is None else f" q{int(query)}")
        for name, confidence, query in zip(names, detections.confidence, queries, strict=True)
    ]


def draw_detections(image: np.ndarray, detections: sv.Detections, *, labels: bool = True) -> np.ndarray:
    """uint8 `(H, W, 3)` RGB copy of `image` with boxes (and labels) drawn by supervision."""
    scene = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    thickness = max(1, round(min(image.shape[:2]) / 500))
    scene = sv.BoxAnnotator(thickness=thickness).annotate(scene, detections)
    if labels and len(detections):
        annotator = sv.LabelAnnotator(text_scale=0.4, text_padding=3, smart_position=True)
        scene = annotator.annotate(scene, detections, labels=detection_labels(detections))
    return cv2.cvtColor(scene, cv2.COLOR_BGR2RGB)


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, *, opacity: float = 0.5) -> np.ndarray:
    """uint8 RGB: `heatmap (h, w)` (any scale, resized to the image) blended over `image`."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must lie in [0, 1], got {opacity}")
    height, width = image.shape[:2]
    heat = cv2.resize(np.asarray(heatmap, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    span = float(heat.max() - heat.min())
    heat = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
    colored = colorize(heat, "jet")
    return cv2.addWeighted(image, 1.0 - opacity, colored, opacity, 0.0)


def draw_match(
    image: np.ndarray,
    detections: sv.Detections,
    *,
    status: np.ndarray | None = None,
    missed_xyxy: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 RGB copy of `image` with detections coloured by TP / FP (`status`), missed objects in orange."""
    names = list(STATUS_RGB)
    palette = sv.ColorPalette([sv.Color(*STATUS_RGB[name]) for name in names])  # RGB; drawn as BGR
    thickness = max(1, round(min(image.shape[:2]) / 500))
    scene = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    labels = np.full(len(detections), "", dtype="<U2") if status is None else np.asarray(status)
    lookup = np.array([names.index(label) for label in labels], dtype=int)
    scene = sv.BoxAnnotator(color=palette, thickness=thickness).annotate(
        scene, detections, custom_color_lookup=lookup
    )
    if missed_xyxy is not None and len(missed_xyxy):
        missed = sv.Detections(xyxy=np.asarray(missed_xyxy, np.float32).reshape(-1, 4))
        scene = sv.BoxAnnotator(color=palette, thickness=thickness).annotate(
            scene, missed, custom_color_lookup=np.full(len(missed), names.index("FN"))
        )
    return cv2.cvtColor(scene, cv2.COLOR_BGR2RGB)


def draw_sampling_points(
    image: np.ndarray, points_xy: np.ndarray, weights: np.ndarray, levels: np.ndarray
) -> np.ndarray:
    """uint8 RGB copy of `image` with sampling points: radius grows with sqrt(weight), colour by level."""
    canvas = image.copy()
    top = float(weights.max()) if len(weights) else 1.0
    scale = max(1.0, min(image.shape[:2]) / 500)
    for (x, y), weight, level in sorted(zip(points_xy, weights, levels, strict=True), key=lambda p: p[1]):
        radius = max(1, round(scale * (1 + 7 * np.sqrt(weight / top))))
        color = level_rgb(level)
        cv2.circle(canvas, (round(float(x)), round(float(y))), radius, color, -1, cv2.LINE_AA)
        cv2.circle(canvas, (round(float(x)), round(float(y))), radius, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def tile_images(
    images: list[np.ndarray], *, columns: int, tile: int, titles: list[str] | None = None
) -> np.ndarray:
    """uint8 RGB mosaic of images resized to `tile` x `tile`, `columns` per row, optional titles."""
    rows = -(-len(images) // columns)
    mosaic = np.full((rows * (tile + 2), columns * (tile + 2), 3), 255, np.uint8)
    for index, picture in enumerate(images):
        row, column = divmod(index, columns)
        cell = cv2.resize(picture, (tile, tile), interpolation=cv2.INTER_NEAREST)
        if titles:
            cv2.putText(
                cell, titles[index], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA
            )
        top, left = row * (tile + 2) + 1, column * (tile + 2) + 1
        mosaic[top : top + tile, left : left + tile] = cell
    return mosaic
