"""Procedural top-down terrain for generated scenes: fields, water, roads, buildings, trees, distractors."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class Canvas:
    """A scene being drawn, with what object placement needs to know."""

    image: np.ndarray  # [H, W, 3] uint8 RGB
    water: np.ndarray  # [H, W] bool
    roads: list[np.ndarray]  # polylines (N, 2) float
    rng: np.random.Generator
    boxes: list[list[float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)


def _smooth_noise(side: int, rng: np.random.Generator, cells: int) -> np.ndarray:
    grid = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(grid, (side, side), interpolation=cv2.INTER_CUBIC)


def draw_terrain(side: int, rng: np.random.Generator) -> Canvas:
    mix = 0.6 * _smooth_noise(side, rng, 6) + 0.4 * _smooth_noise(side, rng, 24)
    grass, soil = np.array([72, 104, 52], np.float32), np.array([128, 112, 82], np.float32)
    image = grass + (soil - grass) * np.clip(mix, 0, 1)[..., None]
    image += (_smooth_noise(side, rng, 96)[..., None] - 0.5) * 18
    image = np.clip(image, 0, 255).astype(np.uint8)
    canvas = Canvas(image=image, water=np.zeros((side, side), bool), roads=[], rng=rng)
    for _ in range(rng.integers(2, 7)):
        _field(canvas)
    if rng.random() < 0.75:
        wet = _smooth_noise(side, rng, 5) > rng.uniform(0.62, 0.72)
        canvas.water = wet
        canvas.image[wet] = (np.array([38, 68, 104]) + rng.normal(0, 4, (wet.sum(), 3))).clip(0, 255)
    for _ in range(rng.integers(1, 4)):
        _road(canvas)
    for _ in range(rng.integers(4, 16)):
        _building(canvas)
    for _ in range(rng.integers(3, 10)):
        _trees(canvas)
    return canvas


def rotated_rect(center, length: float, width: float, angle: float) -> np.ndarray:
    (cx, cy), c, s = center, np.cos(angle), np.sin(angle)
    corners = np.array([[-length, -width], [length, -width], [length, width], [-length, width]]) / 2
    return corners @ np.array([[c, s], [-s, c]]) + np.array([cx, cy])


def fill_polygon(image: np.ndarray, polygon: np.ndarray, color) -> None:
    cv2.fillPoly(
        image, [np.round(polygon).astype(np.int32)], tuple(int(v) for v in color), lineType=cv2.LINE_8
    )


def _field(canvas: Canvas) -> None:
    rng, side = canvas.rng, canvas.image.shape[0]
    center = rng.uniform(0, side, 2)
    length, width = rng.uniform(120, 420, 2)
    angle = rng.uniform(0, np.pi)
    base = rng.choice([[96, 120, 56], [150, 136, 84], [110, 140, 70], [170, 150, 90]]) + rng.normal(0, 8, 3)
    fill_polygon(canvas.image, rotated_rect(center, length, width, angle), base.clip(0, 255))
    spacing = rng.uniform(6, 11)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    for offset in np.arange(-width / 2, width / 2, spacing):
        start = center + normal * offset - direction * length / 2
        end = center + normal * offset + direction * length / 2
        cv2.line(
            canvas.image,
            tuple(np.round(start).astype(int)),
            tuple(np.round(end).astype(int)),
            tuple(int(v) for v in (base * 0.88).clip(0, 255)),
            2,
        )


def _road(canvas: Canvas) -> None:
    rng, side = canvas.rng, canvas.image.shape[0]
    points = [
        rng.uniform(0, side, 2) * np.array([1, 0])
        if rng.random() < 0.5
        else np.array([0, rng.uniform(0, side)])
    ]
    heading = rng.uniform(0.2, 1.3)
    for _ in range(6):
        heading += rng.normal(0, 0.25)
        points.append(points[-1] + side / 4 * np.array([np.cos(heading), np.sin(heading)]))
    line = np.array(points)
    width = int(rng.integers(14, 26))
    cv2.polylines(canvas.image, [np.round(line).astype(np.int32)], False, (92, 92, 96), width)
    for a, b in itertools.pairwise(line):  # dashed centre marks: road-mark distractors
        for t in np.arange(0, 1, 0.04):
            p, q = a + (b - a) * t, a + (b - a) * (t + 0.015)
            cv2.line(
                canvas.image,
                tuple(np.round(p).astype(int)),
                tuple(np.round(q).astype(int)),
                (210, 210, 200),
                1,
            )
    canvas.roads.append(line)


def _building(canvas: Canvas) -> None:
    rng, side = canvas.rng, canvas.image.shape[0]
    center = rng.uniform(0, side, 2)
    length, width = rng.uniform(24, 110), rng.uniform(20, 80)
    angle = rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.15)
    roof = rng.choice([[150, 150, 150], [160, 80, 64], [120, 100, 90], [200, 196, 190]]) + rng.normal(0, 6, 3)
    fill_polygon(canvas.image, rotated_rect(center + 5, length, width, angle), (40, 44, 40))
    fill_polygon(canvas.image, rotated_rect(center, length, width, angle), roof.clip(0, 255))


def _trees(canvas: Canvas) -> None:
    rng, side = canvas.rng, canvas.image.shape[0]
    center = rng.uniform(0, side, 2)
    for _ in range(rng.integers(5, 40)):
        p = center + rng.normal(0, 40, 2)
        radius = int(rng.integers(4, 13))
        cv2.circle(canvas.image, tuple(np.round(p + 3).astype(int)), radius, (30, 44, 28), -1)
        cv2.circle(
            canvas.image, tuple(np.round(p).astype(int)), radius, (40 + int(rng.integers(0, 25)), 84, 36), -1
        )


def draw_distractors(canvas: Canvas) -> None:
    """Rocks and bushes about the size of small objects: attention must tell them apart."""
    rng, side = canvas.rng, canvas.image.shape[0]
    for _ in range(int(rng.integers(40, 160))):
        p = tuple(np.round(rng.uniform(0, side, 2)).astype(int))
        axes = (int(rng.integers(2, 7)), int(rng.integers(2, 6)))
        if rng.random() < 0.5:
            gray = int(rng.integers(100, 170))
            cv2.ellipse(canvas.image, p, axes, float(rng.uniform(0, 180)), 0, 360, (gray, gray, gray - 8), -1)
        else:
            cv2.ellipse(canvas.image, p, axes, 0, 0, 360, (46, int(rng.integers(70, 100)), 40), -1)
