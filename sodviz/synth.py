"""A generated small-object benchmark: top-down "aerial" scenes with exact boxes, as COCO datasets."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from sodviz.imageio import save_image

CLASSES: tuple[str, ...] = ("vehicle", "person", "boat", "truck")
# Disjoint seed ranges per split: a scene is fully determined by its seed.
SPLIT_SEEDS: dict[str, int] = {"train": 0, "val": 1_000_000, "test": 2_000_000}


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


@dataclass
class _Canvas:
    image: np.ndarray  # [H, W, 3] uint8 RGB
    water: np.ndarray  # [H, W] bool
    roads: list[np.ndarray]  # polylines (N, 2) float
    rng: np.random.Generator
    boxes: list[list[float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)


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
    canvas = _terrain(side, rng)
    _distractors(canvas)
    _place_objects(canvas, config)
    image = cv2.GaussianBlur(canvas.image, (3, 3), 0.6)
    noise = rng.normal(0, 3.0, image.shape)
    image = np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    boxes = np.array(canvas.boxes, np.float32).reshape(-1, 4)
    return image, boxes, np.array(canvas.labels, np.int64)


# terrain -------------------------------------------------------------------------------------
def _smooth_noise(side: int, rng: np.random.Generator, cells: int) -> np.ndarray:
    grid = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(grid, (side, side), interpolation=cv2.INTER_CUBIC)


def _terrain(side: int, rng: np.random.Generator) -> _Canvas:
    mix = 0.6 * _smooth_noise(side, rng, 6) + 0.4 * _smooth_noise(side, rng, 24)
    grass, soil = np.array([72, 104, 52], np.float32), np.array([128, 112, 82], np.float32)
    image = grass + (soil - grass) * np.clip(mix, 0, 1)[..., None]
    image += (_smooth_noise(side, rng, 96)[..., None] - 0.5) * 18
    image = np.clip(image, 0, 255).astype(np.uint8)
    canvas = _Canvas(image=image, water=np.zeros((side, side), bool), roads=[], rng=rng)
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


def _rotated_rect(center, length: float, width: float, angle: float) -> np.ndarray:
    (cx, cy), c, s = center, np.cos(angle), np.sin(angle)
    corners = np.array([[-length, -width], [length, -width], [length, width], [-length, width]]) / 2
    return corners @ np.array([[c, s], [-s, c]]) + np.array([cx, cy])


def _fill(image: np.ndarray, polygon: np.ndarray, color) -> None:
    cv2.fillPoly(
        image, [np.round(polygon).astype(np.int32)], tuple(int(v) for v in color), lineType=cv2.LINE_8
    )


def _field(canvas: _Canvas) -> None:
    rng, side = canvas.rng, canvas.image.shape[0]
    center = rng.uniform(0, side, 2)
    length, width = rng.uniform(120, 420, 2)
    angle = rng.uniform(0, np.pi)
    base = rng.choice([[96, 120, 56], [150, 136, 84], [110, 140, 70], [170, 150, 90]]) + rng.normal(0, 8, 3)
    _fill(canvas.image, _rotated_rect(center, length, width, angle), base.clip(0, 255))
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


def _road(canvas: _Canvas) -> None:
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


def _building(canvas: _Canvas) -> None:
    rng, side = canvas.rng, canvas.image.shape[0]
    center = rng.uniform(0, side, 2)
    length, width = rng.uniform(24, 110), rng.uniform(20, 80)
    angle = rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.15)
    roof = rng.choice([[150, 150, 150], [160, 80, 64], [120, 100, 90], [200, 196, 190]]) + rng.normal(0, 6, 3)
    _fill(canvas.image, _rotated_rect(center + 5, length, width, angle), (40, 44, 40))
    _fill(canvas.image, _rotated_rect(center, length, width, angle), roof.clip(0, 255))


def _trees(canvas: _Canvas) -> None:
    rng, side = canvas.rng, canvas.image.shape[0]
    center = rng.uniform(0, side, 2)
    for _ in range(rng.integers(5, 40)):
        p = center + rng.normal(0, 40, 2)
        radius = int(rng.integers(4, 13))
        cv2.circle(canvas.image, tuple(np.round(p + 3).astype(int)), radius, (30, 44, 28), -1)
        cv2.circle(
            canvas.image, tuple(np.round(p).astype(int)), radius, (40 + int(rng.integers(0, 25)), 84, 36), -1
        )


def _distractors(canvas: _Canvas) -> None:
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


# objects -------------------------------------------------------------------------------------
def _draw_object(canvas: _Canvas, label: int, center, length: float, angle: float) -> None:
    """Draw one object with a shadow; record the tight box of its drawn body."""
    rng, image = canvas.rng, canvas.image
    name = CLASSES[label]
    widths = {"vehicle": 0.48, "person": 0.9, "boat": 0.34, "truck": 0.36}
    width = max(2.0, length * widths[name])
    body = _rotated_rect(center, length, width, angle)
    if name == "boat":
        tip = np.asarray(center) + 0.65 * length * np.array([np.cos(angle), np.sin(angle)])
        body = np.vstack([body[:2], [tip], body[2:]])[[0, 1, 2, 3, 4]]
        body = np.array([body[0], body[1], tip, body[2], body[3]])
    shadow = body + np.array([0.25, 0.3]) * max(2.0, width * 0.5)
    _fill(
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
    _fill(image, body, color.clip(0, 255))
    if name in ("vehicle", "truck") and length >= 8:  # windscreen / cab: inner structure
        front = np.asarray(center) + (0.3 if name == "vehicle" else 0.38) * length * np.array(
            [np.cos(angle), np.sin(angle)]
        )
        _fill(image, _rotated_rect(front, length * 0.16, width * 0.8, angle), (color * 0.35).clip(0, 255))
    if name == "person":
        cv2.circle(image, tuple(np.round(center).astype(int)), max(1, int(width / 4)), (210, 170, 140), -1)
    _record_box(canvas, body, label)


def _record_box(canvas: _Canvas, polygon: np.ndarray, label: int) -> None:
    height, width = canvas.image.shape[:2]
    x0, y0 = np.floor(polygon.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(polygon.max(axis=0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    _fill(mask, polygon - np.array([x0, y0]), (1,))
    ys, xs = np.nonzero(mask)
    if len(xs) < 3:
        return
    canvas.boxes.append([x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1])
    canvas.labels.append(label)


def _size(canvas: _Canvas, config: SceneConfig, name: str) -> float:
    median, sigma, low, high = config.sizes[name]
    return float(np.clip(median * np.exp(canvas.rng.normal(0, sigma)), low, high))


def _free(canvas: _Canvas, center, radius: float) -> bool:
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


def _try_place(canvas: _Canvas, config: SceneConfig, name: str, center, angle: float) -> None:
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


def _place_objects(canvas: _Canvas, config: SceneConfig) -> None:
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


def _cluster(canvas: _Canvas, config: SceneConfig, name: str, count: int, spread: float, center=None) -> None:
    rng, side = canvas.rng, canvas.image.shape[0]
    center = rng.uniform(0, side, 2) if center is None else np.asarray(center, float)
    for _ in range(int(count)):
        _try_place(canvas, config, name, center + rng.normal(0, spread, 2), rng.uniform(0, 2 * np.pi))


def _parking_lot(canvas: _Canvas, config: SceneConfig) -> None:
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


def _traffic(canvas: _Canvas, config: SceneConfig, road: np.ndarray) -> None:
    rng = canvas.rng
    for a, b in itertools.pairwise(road):
        angle = float(np.arctan2(b[1] - a[1], b[0] - a[0]))
        for _ in range(int(rng.integers(0, 9))):
            _try_place(canvas, config, "vehicle", a + (b - a) * rng.random(), angle + rng.choice([0, np.pi]))


# datasets ------------------------------------------------------------------------------------
def write_dataset(
    out_dir: str | Path,
    split: str,
    num_images: int,
    *,
    config: SceneConfig = SceneConfig(),
    workers: int = 1,
    on_progress: Callable[[float], None] | None = None,
) -> Path:
    """Write scenes of a split as `out_dir/split/{images/*.jpg, annotations.json, stats.json}`.

    Scene `i` of a split has seed `SPLIT_SEEDS[split] + i`, so splits never share a scene.
    """
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split must be one of {list(SPLIT_SEEDS)}, got {split!r}")
    folder = Path(out_dir) / split
    (folder / "images").mkdir(parents=True, exist_ok=True)
    seeds = [SPLIT_SEEDS[split] + index for index in range(num_images)]
    jobs = [(seed, folder / "images" / f"{split}_{seed:07d}.jpg", config) for seed in seeds]
    images, annotations = [], []
    with ProcessPoolExecutor(max_workers=workers) if workers > 1 else nullcontext() as pool:
        results = pool.map(_write_scene, jobs) if pool is not None else map(_write_scene, jobs)
        for index, (seed, path, (height, width), boxes, labels) in enumerate(results):
            images.append(
                {"id": index, "file_name": path.name, "height": height, "width": width, "seed": seed}
            )
            for (x0, y0, x1, y1), label in zip(boxes, labels, strict=True):
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": index,
                        "category_id": label,
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "area": (x1 - x0) * (y1 - y0),
                        "iscrowd": 0,
                    }
                )
            if on_progress is not None:
                on_progress((index + 1) / num_images)
    categories = [{"id": i, "name": name} for i, name in enumerate(CLASSES)]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (folder / "annotations.json").write_text(json.dumps(coco))
    (folder / "stats.json").write_text(json.dumps(dataset_statistics(coco), indent=1))
    return folder


def _write_scene(job):
    seed, path, config = job
    image, boxes, labels = generate_scene(seed, config)
    save_image(path, image, quality=95)
    return seed, path, image.shape[:2], boxes.tolist(), labels.tolist()


SIZE_EDGES = (0, 8, 16, 32, 64, 128, 1e9)


def dataset_statistics(coco: dict) -> dict:
    """Objects per image and a size histogram (sqrt of box area, pixels) per class."""
    per_image = np.bincount([a["image_id"] for a in coco["annotations"]], minlength=len(coco["images"]))
    names = {c["id"]: c["name"] for c in coco["categories"]}
    sizes: dict[str, list[float]] = {name: [] for name in names.values()}
    for annotation in coco["annotations"]:
        sizes[names[annotation["category_id"]]].append(float(np.sqrt(annotation["area"])))
    labels = [f"{int(a)}-{int(b)}" if b < 1e9 else f">{int(a)}" for a, b in itertools.pairwise(SIZE_EDGES)]
    all_sizes = np.concatenate([np.array(v) for v in sizes.values()]) if coco["annotations"] else np.zeros(0)
    return {
        "images": len(coco["images"]),
        "objects": len(coco["annotations"]),
        "objects_per_image": {
            "mean": float(per_image.mean()) if len(per_image) else 0.0,
            "min": int(per_image.min()) if len(per_image) else 0,
            "max": int(per_image.max(initial=0)),
        },
        "median_size_px": float(np.median(all_sizes)) if all_sizes.size else 0.0,
        "share_under_16px": float((all_sizes < 16).mean()) if all_sizes.size else 0.0,
        "size_histogram_px": {
            name: dict(zip(labels, np.histogram(values, bins=SIZE_EDGES)[0].tolist(), strict=True))
            for name, values in sizes.items()
        },
    }
