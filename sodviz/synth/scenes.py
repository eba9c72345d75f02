"""Generated small-object scenes: objects placed on procedural terrain, with exact boxes."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from sodviz.synth.terrain import Canvas, draw_distractors, draw_terrain, fill_polygon, rotated_rect

CLASSES: tuple[str, ...] = ("vehicle", "person", "boat", "truck")


@dataclass(frozen=True, slots=True)
class SceneConfig:
    """What a generated scene looks like (sizes in scene pixels)."""

    min_side: int = 1024  # square scenes, side drawn uniformly in [min_side, max_side], multiple of 32
    max_side: int = 1280
    # per class: (median size, log-normal sigma, min, max) of the object's length in pixels
    sizes: dict[str, tuple[float, float, float, float]] = field(
        default_factory=lambda: {
            "vehicle": (12.0, 0.45, 5.0, 50.0),
            "person": (6.0, 0.3, 3.0, 12.0),
            "boat": (22.0, 0.6, 10.0, 130.0),
            "truck": (90.0, 0.3, 45.0, 170.0),
        }
    )


def generate_scene(
    seed: int, config: SceneConfig = SceneConfig()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene from a seed.

    Returns:
        image uint8 `(S, S, 3)` RGB, boxes float32 `(N, 4)` xyxy in pixels (tight around each
        object's drawn body, shadows excluded), labels int64 `(N,)` indexing `CLASSES`.
    """
    rng = np.random.default_rng(seed)
    side = int(rng.integers(config.min_side // 32, config.max_side // 32 + 1)) * 32
    canvas = draw_terrain(side, rng)
    draw_distractors(canvas)
    _place_objects(canvas, config)
    image = cv2.GaussianBlur(canvas.image, (3, 3), 0.6)
    noise = rng.normal(0, 3.0, image.shape)
    image = np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    boxes = np.array(canvas.boxes, np.float32).reshape(-1, 4)
    return image, boxes, np.array(canvas.labels, np.int64)


# objects -------------------------------------------------------------------------------------
def _draw_object(canvas: Canvas, label: int, center, length: float, angle: float) -> None:
    """Draw one object with a shadow; record the tight box of its drawn body."""
    rng, image = canvas.rng, canvas.image
    name = CLASSES[label]
    widths = {"vehicle": 0.48, "person": 0.9, "boat": 0.34, "truck": 0.36}
    width = max(2.0, length * widths[name])
    body = rotated_rect(center, length, width, angle)
    if name == "boat":
        tip = np.asarray(center) + 0.65 * length * np.array([np.cos(angle), np.sin(angle)])
        body = np.vstack([body[:2], [tip], body[2:]])[[0, 1, 2, 3, 4]]
        body = np.array([body[0], body[1], tip, body[2], body[3]])
    shadow = body + np.array([0.25, 0.3]) * max(2.0, width * 0.5)
    fill_polygon(
        image,
        shadow,
        (
            image[
                int(np.clip(center[1], 0, image.shape[0] - 1)), int(np.clip(center[0], 0, image.shape[1] - 1))
            ]
            * 0.45
        ),
    )
    colors = {
        "vehicle": [
            [200, 30, 30],
            [230, 230, 230],
            [30, 30, 35],
            [40, 70, 170],
            [170, 170, 180],
            [220, 190, 40],
        ],
        "person": [[220, 60, 60], [240, 200, 60], [60, 90, 210], [235, 235, 235], [160, 60, 160]],
        "boat": [[245, 245, 245], [230, 120, 40], [200, 40, 40], [250, 230, 160]],
        "truck": [[240, 240, 240], [220, 120, 30], [60, 120, 60], [180, 30, 30]],
    }
    color = np.array(colors[name][int(rng.integers(len(colors[name])))]) + rng.normal(0, 10, 3)
    fill_polygon(image, body, color.clip(0, 255))
    if name in ("vehicle", "truck") and length >= 8:  # windscreen / cab: inner structure
        front = np.asarray(center) + (0.3 if name == "vehicle" else 0.38) * length * np.array(
            [np.cos(angle), np.sin(angle)]
        )
        fill_polygon(
            image, rotated_rect(front, length * 0.16, width * 0.8, angle), (color * 0.35).clip(0, 255)
        )
    if name == "person":
        cv2.circle(image, tuple(np.round(center).astype(int)), max(1, int(width / 4)), (210, 170, 140), -1)
    _record_box(canvas, body, label)


def _record_box(canvas: Canvas, polygon: np.ndarray, label: int) -> None:
    height, width = canvas.image.shape[:2]
    x0, y0 = np.floor(polygon.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(polygon.max(axis=0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    fill_polygon(mask, polygon - np.array([x0, y0]), (1,))
    ys, xs = np.nonzero(mask)
    if len(xs) < 3:
        return
    canvas.boxes.append([x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1])
    canvas.labels.append(label)


def _size(canvas: Canvas, config: SceneConfig, name: str) -> float:
    median, sigma, low, high = config.sizes[name]
    return float(np.clip(median * np.exp(canvas.rng.normal(0, sigma)), low, high))


def _free(canvas: Canvas, center, radius: float) -> bool:
    """No recorded box overlaps a square of `radius` around `center`, and it lies in the image."""
    side = canvas.image.shape[0]
    if not (radius <= center[0] < side - radius and radius <= center[1] < side - radius):
        return False
    if not canvas.boxes:
        return True
    boxes = np.asarray(canvas.boxes)
    x0, y0, x1, y1 = center[0] - radius, center[1] - radius, center[0] + radius, center[1] + radius
    overlap = (boxes[:, 0] < x1) & (boxes[:, 2] > x0) & (boxes[:, 1] < y1) & (boxes[:, 3] > y0)
    return not overlap.any()


def _try_place(canvas: Canvas, config: SceneConfig, name: str, center, angle: float) -> None:
    length = _size(canvas, config, name)
    if (
        name == "boat"
        and not canvas.water[
            int(np.clip(center[1], 0, canvas.water.shape[0] - 1)),
            int(np.clip(center[0], 0, canvas.water.shape[1] - 1)),
        ]
    ):
        return
    if _free(canvas, center, length * 0.6 + 1):
        _draw_object(canvas, CLASSES.index(name), center, length, angle)


def _place_objects(canvas: Canvas, config: SceneConfig) -> None:
    rng, side = canvas.rng, canvas.image.shape[0]
    placements: list[Callable[[], None]] = []
    for _ in range(rng.integers(1, 4)):  # parking lots: rows of vehicles
        placements.append(lambda: _parking_lot(canvas, config))
    for _ in range(rng.integers(1, 5)):  # crowds
        placements.append(lambda: _cluster(canvas, config, "person", rng.integers(5, 30), 25))
    if canvas.water.any():
        ys, xs = np.nonzero(canvas.water)
        for _ in range(rng.integers(1, 5)):  # marinas
            i = rng.integers(len(xs))
            placements.append(
                lambda x=xs[i], y=ys[i]: _cluster(canvas, config, "boat", rng.integers(4, 18), 50, (x, y))
            )
    for road in canvas.roads:  # traffic along roads
        placements.append(lambda road=road: _traffic(canvas, config, road))
    for _ in range(rng.integers(2, 9)):
        placements.append(
            lambda: _try_place(canvas, config, "truck", rng.uniform(0, side, 2), rng.uniform(0, np.pi))
        )
    for _ in range(rng.integers(10, 40)):  # scattered
        name = ("vehicle", "person")[int(rng.integers(2))]
        placements.append(
            lambda name=name: _try_place(canvas, config, name, rng.uniform(0, side, 2), rng.uniform(0, np.pi))
        )
    for place in placements:
        place()


def _cluster(canvas: Canvas, config: SceneConfig, name: str, count: int, spread: float, center=None) -> None:
    rng, side = canvas.rng, canvas.image.shape[0]
    center = rng.uniform(0, side, 2) if center is None else np.asarray(center, float)
    for _ in range(int(count)):
        _try_place(canvas, config, name, center + rng.normal(0, spread, 2), rng.uniform(0, 2 * np.pi))


def _parking_lot(canvas: Canvas, config: SceneConfig) -> None:
    rng, side = canvas.rng, canvas.image.shape[0]
    rows, cols = int(rng.integers(2, 6)), int(rng.integers(3, 10))
    pitch = float(rng.uniform(14, 24))
    origin = rng.uniform(0, max(side - pitch * max(rows, cols) * 1.6, 1.0), 2)
    lot = np.array([origin - 6, origin + np.array([cols * pitch + 6, rows * pitch * 1.6 + 6])])
    cv2.rectangle(canvas.image, tuple(lot[0].astype(int)), tuple(lot[1].astype(int)), (84, 84, 88), -1)
    for r in range(rows):
        for c in range(cols):
            if rng.random() < 0.75:
                center = origin + np.array([c * pitch + pitch / 2, r * pitch * 1.6 + pitch * 0.8])
                _try_place(canvas, config, "vehicle", center, np.pi / 2 + rng.normal(0, 0.05))


def _traffic(canvas: Canvas, config: SceneConfig, road: np.ndarray) -> None:
    rng = canvas.rng
    for a, b in itertools.pairwise(road):
        angle = float(np.arctan2(b[1] - a[1], b[0] - a[0]))
        for _ in range(int(rng.integers(0, 9))):
            _try_place(canvas, config, "vehicle", a + (b - a) * rng.random(), angle + rng.choice([0, np.pi]))
