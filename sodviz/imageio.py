"""Read images from disk as uint8 RGB arrays, upright."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps


def load_image(path: str | os.PathLike) -> np.ndarray:
    """uint8 `(H, W, 3)` RGB of an image file, EXIF rotation applied.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable image.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such image file: {path}")
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, SyntaxError) as error:  # PIL raises these for unreadable or truncated files
        raise ValueError(f"{path} is not a readable image: {error}") from error


def save_image(path: str | os.PathLike, image: np.ndarray, *, quality: int = 95) -> None:
    """Write a uint8 RGB array (format by extension; `quality` for JPEG)."""
    Image.fromarray(image).save(path, quality=quality)
