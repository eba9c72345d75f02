"""COCO-format datasets of generated scenes, with their statistics."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from sodviz.imageio import save_image
from sodviz.synth.scenes import CLASSES, SceneConfig, generate_scene

# Disjoint seed ranges per split: a scene is fully determined by its seed.
SPLIT_SEEDS: dict[str, int] = {"train": 0, "val": 1_000_000, "test": 2_000_000, "fresh": 3_000_000}
# "fresh": scenes no tuning or test has seen, for reporting a result once more after the test split.


def write_dataset(
    out_dir: str | Path,
    split: str,
    num_images: int,
    *,
    config: SceneConfig | None = None,
    workers: int = 1,
    on_progress: Callable[[float], None] | None = None,
) -> Path:
    """Write scenes of a split as `out_dir/split/{images/*.jpg, annotations.json, stats.json}`.

    Scene `i` of a split has seed `SPLIT_SEEDS[split] + i`, so splits never share a scene.
    """
    config = config or SceneConfig()
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
