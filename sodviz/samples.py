"""The sample scenes shipped in `assets/samples` (generated test scenes with their ground truth)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from sodviz.evaluation.ground_truth import GroundTruth, ground_truth_from_coco
from sodviz.imageio import DecodedImage, read_image

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "samples"


@lru_cache(maxsize=4)
def _annotations(folder: Path) -> dict:
    return json.loads((folder / "annotations.json").read_text())


def sample_names(folder: Path = SAMPLES_DIR) -> list[str]:
    """File names of the sample scenes, in order."""
    return [image["file_name"] for image in _annotations(folder)["images"]]


def load_sample(name: str, folder: Path = SAMPLES_DIR) -> tuple[DecodedImage, GroundTruth]:
    """One sample scene and its ground truth.

    Raises:
        ValueError: no sample of that name.
    """
    coco = _annotations(folder)
    records = [image for image in coco["images"] if image["file_name"] == name]
    if not records:
        raise ValueError(f"no sample scene named {name!r}; there are {sample_names(folder)}")
    decoded = read_image(folder / "images" / name)
    return decoded, ground_truth_from_coco(coco, image_id=records[0]["id"], scale=decoded.scale)
