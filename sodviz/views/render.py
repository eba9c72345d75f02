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


def overlay_heatmap(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    opacity: float = 0.5,
    value_range: tuple[float, float] | None = None,
    colormap: str = "jet",
) -> np.ndarray:
    """uint8 RGB: `heatmap (h, w)` (resized to the image) blended over `image`, its values mapped
    to colours over `value_range` (default: the map's own min and max; see `heat_range`)."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must lie in [0, 1], got {opacity}")
    height, width = image.shape[:2]
    heat = cv2.resize(np.asarray(heatmap, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    colored = colorize(to_unit(heat, value_range or heat_range(heatmap)), colormap)
    return cv2.addWeighted(image, 1.0 - opacity, colored, opacity, 0.0)


def heat_with_colorbar(
    image: np.ndarray, heatmap: np.ndarray, label: str, *, opacity: float = 0.5, colormap: str = "jet"
) -> np.ndarray:
    """`overlay_heatmap` of a map already at the image's size, with the colour bar of exactly the
    range it was drawn with."""
    value_range = heat_range(heatmap)
    overlay = overlay_heatmap(image, heatmap, opacity=opacity, value_range=value_range, colormap=colormap)
    return with_colorbar(overlay, value_range, label, colormap=colormap)


def heat_range(*heatmaps: np.ndarray) -> tuple[float, float]:
    """(low, high) over all `heatmaps`: one scale for maps meant to be compared."""
    values = [np.asarray(h, np.float64) for h in heatmaps if np.size(h)]
    if not values:
        return 0.0, 1.0
    return float(min(v.min() for v in values)), float(max(v.max() for v in values))


def to_unit(values: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """`values` mapped linearly onto [0, 1] over `value_range` (clipped; zeros when it is empty)."""
    low, high = value_range
    if not high > low:
        return np.zeros(np.shape(values), np.float32)
    return np.clip((np.asarray(values, np.float32) - low) / (high - low), 0.0, 1.0)


def with_colorbar(
    image: np.ndarray, value_range: tuple[float, float], label: str, *, colormap: str = "jet"
) -> np.ndarray:
    """uint8 RGB: `image` with a colour bar on its right: the colour map from `value_range[0]`
    (bottom) to `value_range[1]` (top), three ticks in the map's units, and `label` along it.
    Its size follows the image's height, so it stays readable however the image is shown; an
    image under 16 px tall is returned as it is."""
    height = image.shape[0]
    if height < 16:  # too short to carry a readable bar (images under 8 px are refused on reading)
        return image
    scale = max(0.35, min(height, 1.5 * image.shape[1]) / 1000)  # text ~2 % of the height (narrow: less)
    thick = max(1, round(scale))
    unit = max(1, round(scale / 0.45))  # pixels of panel per pixel at the smallest size
    margin, ramp_w = 8 * unit, 14 * unit
    bar_h = max(8, height - 2 * min(16 * unit, height // 4))
    top = (height - bar_h) // 2
    ramp = colorize(np.linspace(1.0, 0.0, bar_h, dtype=np.float32)[:, None].repeat(ramp_w, axis=1), colormap)
    ticks = [value_range[1], (value_range[0] + value_range[1]) / 2, value_range[0]]
    texts = [_tick(v, value_range) for v in ticks]
    text_w = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0] for t in texts)
    label_h = 24 * unit
    panel = np.full((height, margin + ramp_w + 5 * unit + text_w + 6 * unit + label_h, 3), 255, np.uint8)
    right = margin + ramp_w
    panel[top : top + bar_h, margin:right] = ramp
    cv2.rectangle(panel, (margin, top), (right - 1, top + bar_h - 1), (0, 0, 0), thick)
    for text, y in zip(texts, (top, top + bar_h // 2, top + bar_h - 1), strict=True):
        cv2.line(panel, (right, y), (right + 4 * unit, y), (0, 0, 0), thick)
        size = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0]
        origin = (right + 6 * unit, min(height - 2, max(size[1] + 2, y + size[1] // 2)))
        cv2.putText(panel, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    along = _vertical_text(label, height=bar_h, thickness=label_h, scale=scale, weight=thick)
    panel[top : top + bar_h, -label_h:] = along
    return np.concatenate([image, panel], axis=1)


def _tick(value: float, value_range: tuple[float, float]) -> str:
    """A tick label: 3 significant digits; 0 for values within 1e-4 of the range's span of zero."""
    if abs(value) <= 1e-4 * max(abs(value_range[0]), abs(value_range[1])):
        return "0"
    return f"{value:.3g}" if abs(value) >= 1e-3 else f"{value:.1e}"


def _vertical_text(text: str, *, height: int, thickness: int, scale: float, weight: int = 1) -> np.ndarray:
    """uint8 RGB `(height, thickness, 3)`: `text` written bottom to top, centred, shrunk to fit."""
    size = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, weight)[0]
    if size[0] > height:
        scale *= height / size[0]
        size = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, weight)[0]
    strip = np.full((thickness, height, 3), 255, np.uint8)
    origin = ((height - size[0]) // 2, (thickness + size[1]) // 2)
    cv2.putText(strip, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), weight, cv2.LINE_AA)
    return np.ascontiguousarray(np.rot90(strip))


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


def shrink(image: np.ndarray, *, max_side: int | None = None, max_width: int | None = None) -> np.ndarray:
    """`image` downscaled (area-averaged, aspect kept) so its longer side is at most `max_side`
    and its width at most `max_width`; the same array when it already fits."""
    height, width = image.shape[:2]
    limits = [max_side / max(height, width)] if max_side else []
    limits += [max_width / width] if max_width else []
    factor = min(limits, default=1.0)
    if factor >= 1:
        return image
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def fit_tile(picture: np.ndarray, tile: int) -> tuple[np.ndarray, float]:
    """`picture` resized to fit a `tile` x `tile` box, its aspect kept (area-averaged when shrunk,
    nearest pixels when enlarged, so feature cells stay visible); and the factor applied."""
    height, width = picture.shape[:2]
    factor = tile / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_NEAREST
    return cv2.resize(picture, size, interpolation=interpolation), factor


def tile_images(
    images: list[np.ndarray],
    *,
    columns: int,
    tile: int,
    titles: list[str] | None = None,
    borders: list[tuple[int, int, int] | None] | None = None,
) -> np.ndarray:
    """uint8 RGB mosaic of images fitted into `tile` x `tile` cells (aspect kept, see `fit_tile`),
    `columns` per row; each title on a dark band above its cell, each border in its colour."""
    band = 18 if titles else 0
    pad = 3
    rows = -(-len(images) // columns)
    cell_h, cell_w = tile + band + 2 * pad, tile + 2 * pad
    mosaic = np.full((rows * cell_h, columns * cell_w, 3), 255, np.uint8)
    for index, picture in enumerate(images):
        row, column = divmod(index, columns)
        fitted, _ = fit_tile(picture, tile)
        top, left = row * cell_h + pad, column * cell_w + pad
        if titles:
            mosaic[top : top + band, left : left + fitted.shape[1]] = (40, 40, 40)
            cv2.putText(
                mosaic, titles[index][: max(4, fitted.shape[1] // 7)], (left + 3, top + 13),
                cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA,
            )  # fmt: skip
        y = top + band
        mosaic[y : y + fitted.shape[0], left : left + fitted.shape[1]] = fitted
        color = None if borders is None else borders[index]
        if color is not None:
            cv2.rectangle(
                mosaic, (left - 2, top - 2), (left + fitted.shape[1] + 1, y + fitted.shape[0] + 1), color, 2
            )
    return mosaic
