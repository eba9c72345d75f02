"""Read images as uint8 RGB arrays, upright, from files or uploaded bytes, saying what was changed."""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sodviz.notices import notify

MIN_SIDE = 8  # pixels; smaller images carry nothing a detector can use
MAX_SIDE = 4096  # pixels; larger uploads are downscaled (with a notice) to keep the app responsive
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """An image ready for the detector, and what was done to get it there.

    Attributes:
        image: uint8 `(H, W, 3)` RGB, upright (EXIF orientation applied), at most `max_side`.
        notices: one sentence per change a user should know of (downscaled, first frame, ...).
        scale: factor applied to the decoded size (1.0 unless downscaled); multiply boxes given
            in the file's pixels by it.
    """

    image: np.ndarray
    notices: tuple[str, ...]
    scale: float


def decode_image(data: bytes, *, name: str = "the file", max_side: int | None = MAX_SIDE) -> DecodedImage:
    """Decode image bytes (any format PIL reads) into upright uint8 RGB.

    Handles EXIF rotation, 16-bit and float images (rescaled to 8 bits), CMYK, palette,
    grayscale, transparency (composited on white), animated images (first frame) and very
    large images (downscaled so the longer side is `max_side`; None keeps the size).

    Raises:
        ValueError: not an image, truncated or corrupt, or smaller than `MIN_SIDE` pixels.
    """
    notices = []
    if not data:
        raise ValueError(f"{name} is empty (0 bytes); it is not a readable image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(data))
            if getattr(picture, "n_frames", 1) > 1:
                notices.append(f"{name} has {picture.n_frames} frames; showing the first.")
                picture.seek(0)
            width, height = picture.size
            if max_side is not None and max(width, height) > max_side and picture.format == "JPEG":
                picture.draft("RGB", (max_side, max_side))  # decode at a reduced DCT scale: fast, small
            wide = _raw_mode(picture).endswith(("16", "16B", "16L", "16N")) and picture.mode == "RGB"
            picture.load()
            reduction = picture.size[0] / width  # < 1 when the JPEG draft decoded smaller
            orientation = picture.getexif().get(_EXIF_ORIENTATION, 1)
            picture = ImageOps.exif_transpose(picture)
            if orientation not in (None, 1):
                notices.append(f"{name} carries EXIF orientation {orientation}; shown upright (rotated).")
            if wide:
                notices.append(f"{name} has 16 bits per channel; shown at 8 bits per channel.")
            rgb = _to_rgb(picture, notices, name)
    except Image.DecompressionBombError as error:
        raise ValueError(f"{name} is too large to open safely ({error}).") from error
    except UnidentifiedImageError as error:  # PIL's message names an in-memory buffer: say it plainly
        raise ValueError(
            f"{name} is not a readable image (not a format PIL can open: JPEG, PNG, TIFF, WebP, BMP ...)."
        ) from error
    except (OSError, SyntaxError, ValueError) as error:  # what PIL raises for unreadable data
        raise ValueError(f"{name} is not a readable image ({error}).") from error
    full_h, full_w = (round(side / reduction) for side in rgb.shape[:2])  # upright, in the file's pixels
    if min(full_h, full_w) < MIN_SIDE:
        raise ValueError(f"{name} is {full_w}x{full_h} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed.")
    if max_side is not None and max(rgb.shape[:2]) > max_side:
        factor = max_side / max(rgb.shape[:2])
        size = (max(1, round(rgb.shape[1] * factor)), max(1, round(rgb.shape[0] * factor)))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.LANCZOS))
    scale = rgb.shape[0] / full_h
    if rgb.shape[:2] != (full_h, full_w):
        notices.append(
            f"{name} is {full_w}x{full_h} pixels; shown and detected at {rgb.shape[1]}x{rgb.shape[0]}."
        )
    return DecodedImage(image=np.ascontiguousarray(rgb, dtype=np.uint8), notices=tuple(notices), scale=scale)


def _raw_mode(picture: Image.Image) -> str:
    """The pixel layout in the file, before PIL converts it (e.g. 'RGB;16B' for a 48-bit PNG)."""
    if not picture.tile:
        return picture.mode
    args = picture.tile[0].args
    return str(args if isinstance(args, str) else (args[0] if args else picture.mode))


def _to_rgb(picture: Image.Image, notices: list[str], name: str) -> np.ndarray:
    """uint8 RGB of any PIL mode; high bit depths rescaled, transparency flattened on white."""
    if picture.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(picture, dtype=np.float64)
        top = 65535.0 if picture.mode.startswith("I;16") or values.max() > 255 else 255.0
        gray = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        notices.append(f"{name} has more than 8 bits per pixel; shown rescaled to 8 bits.")
        return np.repeat(gray[..., None], 3, axis=2)
    if picture.mode == "P" and "transparency" in picture.info:
        picture = picture.convert("RGBA")
    if picture.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        background = Image.new("RGBA", picture.size, (255, 255, 255, 255))
        picture = Image.alpha_composite(background, picture.convert("RGBA"))
        notices.append(f"{name} has transparency; shown on a white background.")
    elif picture.mode in ("L", "1") or _is_gray_palette(picture):
        notices.append(f"{name} is grayscale; its gray is copied to all three colour channels.")
    elif picture.mode == "CMYK":
        notices.append(f"{name} is CMYK; converted to RGB (colours may shift slightly).")
    elif picture.mode not in ("RGB", "P"):
        notices.append(f"{name} is in PIL mode {picture.mode}; converted to RGB.")
    return np.asarray(picture.convert("RGB"), dtype=np.uint8)


def _is_gray_palette(picture: Image.Image) -> bool:
    if picture.mode != "P":
        return False
    palette = np.asarray(picture.getpalette() or [0, 0, 0], np.int16).reshape(-1, 3)
    return bool((palette == palette[:, :1]).all())


def read_image(path: str | os.PathLike, *, max_side: int | None = None) -> DecodedImage:
    """`decode_image` of a file (full size unless `max_side`).

    Raises:
        FileNotFoundError: no such file (a folder is named as one).
        ValueError: the file is not a readable image.
    """
    if os.path.isdir(path):
        raise FileNotFoundError(f"{path} is a folder; give an image file inside it")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such image file: {path}")
    with open(path, "rb") as file:
        return decode_image(file.read(), name=os.path.basename(path), max_side=max_side)


def open_image(path: str | os.PathLike) -> DecodedImage:
    """An image file decoded as the app decodes an upload: bounded at `MAX_SIDE`, its notices
    warned as `DataNotice`s (the CLI's `predict` and `report`)."""
    decoded = read_image(path, max_side=MAX_SIDE)
    notify(decoded.notices)
    return decoded


def load_image(path: str | os.PathLike) -> np.ndarray:
    """uint8 `(H, W, 3)` RGB of an image file at full size, upright (see `decode_image`).

    Its notices (grayscale, EXIF-rotated, ...) are warned as `DataNotice`s."""
    decoded = read_image(path)
    notify(decoded.notices)
    return decoded.image


def save_image(path: str | os.PathLike, image: np.ndarray, *, quality: int = 95) -> None:
    """Write a uint8 RGB array (format by extension; `quality` for JPEG)."""
    Image.fromarray(image).save(path, quality=quality)


def encode_jpeg(image: np.ndarray, *, quality: int = 90) -> bytes:
    """JPEG bytes of a uint8 RGB (or gray) array, for display only: the app's images and figure
    backgrounds. Quality 90 is what Streamlit re-encodes at when it shrinks an image; downloads and
    reports of record stay PNG (`encode_png`)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)  # copies a strided view itself
    return buffer.getvalue()


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 RGB array (for downloads)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()
