"""Drawing: detections and heatmaps on RGB images (BGR only inside, for OpenCV-based annotators)."""

from __future__ import annotations

import cv2
import numpy as np
import supervision as sv


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
    colored = cv2.cvtColor(
        cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB
    )
    return cv2.addWeighted(image, 1.0 - opacity, colored, opacity, 0.0)
