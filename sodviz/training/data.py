"""Training data: random zoomed, flipped and turned crops of a COCO dataset's scenes, in batches."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sodviz.evaluation.coco import load_coco


def class_names(coco: dict) -> list[str]:
    """The dataset's category names in label order (categories sorted by id)."""
    return [str(c.get("name", c["id"])) for c in sorted(coco["categories"], key=lambda c: c["id"])]


def class_labels(coco: dict) -> dict:
    """Category id -> the model's class label (0..C-1, categories sorted by id): COCO ids may
    start at 1 or have gaps; a model's labels may not."""
    return {c["id"]: label for label, c in enumerate(sorted(coco["categories"], key=lambda c: c["id"]))}


class CocoCrops:
    """Random zoomed crops of a COCO dataset's images with their boxes.

    Scenes are decoded on demand (about 20 ms for a 1.2k JPEG): memory stays bounded however many
    DataLoader workers run, and the decode is a few per cent of a CPU training step.
    """

    def __init__(
        self, folder: str | Path, *, input_size: int, zoom_range: tuple[float, float], seed: int | list[int]
    ) -> None:
        self.folder = Path(folder)
        self.coco = load_coco(self.folder / "annotations.json")
        label = class_labels(self.coco)
        self.boxes: dict[int, list] = {image["id"]: [] for image in self.coco["images"]}
        for annotation in self.coco["annotations"]:
            x, y, w, h = annotation["bbox"]
            self.boxes[annotation["image_id"]].append([x, y, x + w, y + h, label[annotation["category_id"]]])
        self.input_size = input_size
        self.zoom_range = zoom_range
        self.rng = np.random.default_rng(seed)

    def image(self, index: int) -> np.ndarray:
        with Image.open(self.folder / "images" / self.coco["images"][index]["file_name"]) as picture:
            return np.asarray(picture.convert("RGB"))

    def sample(self) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
        """One crop `(S, S, 3)` uint8 and its target (class_labels, normalised cxcywh boxes)."""
        index = int(self.rng.integers(len(self.coco["images"])))
        image = self.image(index)
        height, width = image.shape[:2]
        zoom = math.exp(self.rng.uniform(*np.log(self.zoom_range)))
        crop = min(round(self.input_size / zoom), height, width)
        x0, y0 = int(self.rng.integers(0, width - crop + 1)), int(self.rng.integers(0, height - crop + 1))
        picture = Image.fromarray(image[y0 : y0 + crop, x0 : x0 + crop]).resize(
            (self.input_size, self.input_size), Image.BILINEAR
        )
        pixels = np.asarray(picture)
        boxes = np.array(self.boxes[self.coco["images"][index]["id"]], np.float32).reshape(-1, 5)
        boxes = _crop_boxes(boxes, x0, y0, crop) * np.array([*[self.input_size / crop] * 4, 1], np.float32)
        pixels, boxes = _random_flip_rotate(pixels, boxes, self.rng)
        return pixels, _target(boxes, self.input_size)


def _crop_boxes(boxes: np.ndarray, x0: int, y0: int, crop: int, min_visible: float = 0.4) -> np.ndarray:
    """Boxes `(N, 5)` [x0, y0, x1, y1, label] moved into a crop, clipped; mostly hidden ones dropped."""
    moved = boxes.copy()
    moved[:, [0, 2]] -= x0
    moved[:, [1, 3]] -= y0
    clipped = moved.copy()
    clipped[:, :4] = np.clip(moved[:, :4], 0, crop)
    area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (
        (visible >= min_visible * np.maximum(area, 1e-6))
        & (clipped[:, 2] > clipped[:, 0])
        & (clipped[:, 3] > clipped[:, 1])
    )
    return clipped[keep]


def _random_flip_rotate(pixels: np.ndarray, boxes: np.ndarray, rng: np.random.Generator):
    """Aerial views have no up: random horizontal flip and 90-degree turns, boxes alike."""
    size = pixels.shape[0]
    if rng.random() < 0.5:
        pixels = pixels[:, ::-1]
        boxes = boxes.copy()
        boxes[:, [0, 2]] = size - boxes[:, [2, 0]]
    for _ in range(int(rng.integers(4))):  # rotate 90 degrees counter-clockwise
        pixels = np.rot90(pixels)
        boxes = np.stack(
            [boxes[:, 1], size - boxes[:, 2], boxes[:, 3], size - boxes[:, 0], boxes[:, 4]], axis=1
        )
    return np.ascontiguousarray(pixels), boxes


def _target(boxes: np.ndarray, size: int) -> dict[str, torch.Tensor]:
    xyxy = boxes[:, :4] / size
    cxcywh = np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    return {"class_labels": torch.as_tensor(boxes[:, 4], dtype=torch.int64), "boxes": torch.as_tensor(cxcywh)}


class CropBatches(torch.utils.data.IterableDataset):
    """An endless stream of crop batches; each DataLoader worker draws from its own seeded stream.

    The stream depends on (seed, first step, number of workers) only, so a run is repeatable on
    any device, and a resumed run draws fresh crops rather than replaying the ones already seen.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        batch_size: int,
        input_size: int,
        zoom_range: tuple[float, float],
        seed: int,
        start_step: int = 0,
    ) -> None:
        self.folder, self.batch_size, self.input_size = folder, batch_size, input_size
        self.zoom_range, self.seed, self.start_step = zoom_range, seed, start_step

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = 0 if info is None else info.id
        crops = CocoCrops(
            self.folder,
            input_size=self.input_size,
            zoom_range=self.zoom_range,
            seed=[self.seed, self.start_step, worker],
        )
        while True:
            samples = [crops.sample() for _ in range(self.batch_size)]
            yield np.stack([s[0] for s in samples]), [s[1] for s in samples]
