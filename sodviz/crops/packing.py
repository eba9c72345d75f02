"""Packed crops: several crops resized onto one square canvas and re-detected in one forward pass
(the mosaic of UFPMP-Det), each box mapped back to the image through the tile it lies in."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import supervision as sv

from sodviz.cache import DEFAULT_CACHE, InferenceCache
from sodviz.crops.redetect import (
    CropDetections,
    checked_crops,
    cut_by_crop_edge,
    detections_in_crop,
    merged_crop_detections,
)
from sodviz.detector.inference import run_inference, to_detections
from sodviz.detector.loading import Detector


@dataclass(frozen=True, slots=True)
class Packing:
    """Where each crop lies on the canvas.

    Attributes:
        crops_xyxy: int64 `(n, 4)`, the crops in image pixels.
        tiles_xyxy: int64 `(n, 4)`, their tiles on the canvas (a tile is its crop resized).
        canvas_side: the square canvas's side, pixels.
    """

    crops_xyxy: np.ndarray
    tiles_xyxy: np.ndarray
    canvas_side: int

    @property
    def scale(self) -> np.ndarray:
        """float64 `(n, 2)`: canvas pixels per image pixel of each tile, (x, y)."""
        crop_wh = (self.crops_xyxy[:, 2:] - self.crops_xyxy[:, :2]).astype(np.float64)
        return (self.tiles_xyxy[:, 2:] - self.tiles_xyxy[:, :2]) / crop_wh

    def canvas_to_image(self, boxes_xyxy: np.ndarray, tile: np.ndarray) -> np.ndarray:
        """Boxes on the canvas, each inside its tile (index per box) -> image pixels."""
        boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
        scale = np.tile(self.scale[tile], 2)
        return (boxes - np.tile(self.tiles_xyxy[tile, :2], 2)) / scale + np.tile(self.crops_xyxy[tile, :2], 2)

    def image_to_canvas(self, boxes_xyxy: np.ndarray, tile: np.ndarray) -> np.ndarray:
        """Boxes in image pixels, each inside its tile's crop -> canvas pixels."""
        boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
        scale = np.tile(self.scale[tile], 2)
        return (boxes - np.tile(self.crops_xyxy[tile, :2], 2)) * scale + np.tile(self.tiles_xyxy[tile, :2], 2)

    def tile_of(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """int64 `(N,)`: the tile holding each canvas box's centre, -1 for none (a gap)."""
        boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        tiles = self.tiles_xyxy
        inside = (
            (cx[:, None] >= tiles[None, :, 0])
            & (cx[:, None] < tiles[None, :, 2])
            & (cy[:, None] >= tiles[None, :, 1])
            & (cy[:, None] < tiles[None, :, 3])
        )
        return np.where(inside.any(1), inside.argmax(1), -1).astype(np.int64)


def pack_crops(crops_xyxy: np.ndarray, canvas_side: int, *, gap: int = 8) -> Packing:
    """Shelf packing at one common scale, the largest that fits: crops sorted by height go left to
    right in rows, `gap` black pixels between tiles (so no object spans two tiles). The scale is
    found by bisection; it enlarges crops that are small next to the canvas and shrinks large
    ones, at most to the canvas's side for the largest crop."""
    crops = np.asarray(crops_xyxy, np.int64).reshape(-1, 4)
    if not len(crops):
        return Packing(crops, np.zeros((0, 4), np.int64), int(canvas_side))
    sizes = (crops[:, 2:] - crops[:, :2]).astype(np.float64)
    if (sizes <= 0).any():
        raise ValueError(f"crops must have positive width and height, got {crops.tolist()}")
    low, high = 0.0, canvas_side / sizes.max()
    for _ in range(40):
        middle = (low + high) / 2
        if _shelves(sizes, middle, canvas_side, gap) is None:
            high = middle
        else:
            low = middle
    tiles = _shelves(sizes, low, canvas_side, gap)
    if tiles is None or (tiles[:, 2:] - tiles[:, :2] < 1).any():
        raise ValueError(f"{len(crops)} crops do not fit on a {canvas_side} px canvas")
    return Packing(crops, tiles, int(canvas_side))


def _shelves(sizes: np.ndarray, scale: float, side: int, gap: int) -> np.ndarray | None:
    """Tiles `(n, 4)` of the crops at `scale` on shelves, or None when they do not fit."""
    wh = np.maximum(1, np.floor(sizes * scale)).astype(np.int64)
    tiles = np.zeros((len(sizes), 4), np.int64)
    x = y = shelf_h = 0
    for index in np.argsort(-wh[:, 1], kind="stable"):
        w, h = wh[index]
        if x and x + w > side:
            x, y, shelf_h = 0, y + shelf_h + gap, 0
        if x + w > side or y + h > side:
            return None
        tiles[index] = (x, y, x + w, y + h)
        x += w + gap
        shelf_h = max(shelf_h, h)
    return tiles


def packed_canvas(image: np.ndarray, packing: Packing) -> np.ndarray:
    """The canvas: each crop of `image` resized (bilinear) into its tile, black elsewhere."""
    canvas = np.zeros((packing.canvas_side, packing.canvas_side, 3), np.uint8)
    for (x0, y0, x1, y1), (u0, v0, u1, v1) in zip(packing.crops_xyxy, packing.tiles_xyxy, strict=True):
        canvas[v0:v1, u0:u1] = cv2.resize(
            image[y0:y1, x0:x1], (int(u1 - u0), int(v1 - v0)), interpolation=cv2.INTER_LINEAR
        )
    return canvas


def detect_packed(
    detector: Detector,
    image: np.ndarray,
    crops_xyxy: np.ndarray,
    *,
    per_canvas: int = 4,
    canvas_side: int | None = None,
    score_threshold: float = 0.05,
    border_margin: float = 2.0,
    border_factor: float = 0.5,
    cache: InferenceCache | None = DEFAULT_CACHE,
) -> CropDetections:
    """Detect in every crop with one forward pass per canvas of up to `per_canvas` crops (in
    order), each canvas `canvas_side` square (default the detector's input size) and fed at that
    size. A box goes to the tile holding its centre (none for a box in a gap), is clamped to the
    tile and mapped to the image; a box cut by a tile edge that is not the image's edge gets
    `border_factor`, as a cut crop box does. `results` holds one result per canvas."""
    crops = checked_crops(crops_xyxy, image.shape[:2])
    if per_canvas < 1:
        raise ValueError(f"per_canvas must be at least 1, got {per_canvas}")
    side = int(canvas_side or detector.input_size)
    parts, results = [], []
    for first in range(0, len(crops), per_canvas):
        packing = pack_crops(crops[first : first + per_canvas], side)
        result = run_inference(detector, packed_canvas(image, packing), input_size=side, cache=cache)
        parts.append(
            _unpacked(result, packing, first, image.shape[:2], score_threshold, border_margin, border_factor)
        )
        results.append(result)
    return CropDetections(merged_crop_detections(parts), crops, tuple(results), len(results))


def _unpacked(result, packing: Packing, first: int, image_hw, threshold, margin, factor) -> sv.Detections:
    """One canvas's detections in image pixels, `crop_index` counted from `first`."""
    found = to_detections(result, score_threshold=threshold)
    tile = packing.tile_of(found.xyxy)
    found, tile = found[tile >= 0], tile[tile >= 0]
    tiles = packing.tiles_xyxy[tile]
    on_canvas = np.clip(found.xyxy.astype(np.float64), np.tile(tiles[:, :2], 2), np.tile(tiles[:, 2:], 2))
    boxes = packing.canvas_to_image(on_canvas, tile)
    crops = packing.crops_xyxy
    in_crop = boxes - np.tile(crops[tile, :2], 2)
    cut = np.zeros(len(boxes), bool)
    for index in np.unique(tile):
        mine = tile == index
        cut[mine] = cut_by_crop_edge(in_crop[mine], crops[index], image_hw, margin=margin)
    return detections_in_crop(found, boxes, tile + first, cut, factor)
