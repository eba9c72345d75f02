"""Packed crops: tiles on one canvas, boxes mapped back exactly, tile edges cut like crop edges."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import supervision as sv

from sodviz.crops import packing as packing_module
from sodviz.crops.packing import detect_packed, pack_crops, packed_canvas

CROPS = np.array([[0, 0, 300, 200], [250, 100, 550, 400], [500, 300, 800, 600], [100, 350, 260, 600]])


def test_tiles_fit_the_canvas_apart_and_keep_each_crops_aspect():
    packing = pack_crops(CROPS, 512, gap=8)
    tiles = packing.tiles_xyxy
    assert (tiles[:, :2] >= 0).all() and (tiles[:, 2:] <= 512).all()
    for i in range(len(tiles)):
        for j in range(i + 1, len(tiles)):
            apart_x = tiles[i, 2] + 8 <= tiles[j, 0] or tiles[j, 2] + 8 <= tiles[i, 0]
            apart_y = tiles[i, 3] + 8 <= tiles[j, 1] or tiles[j, 3] + 8 <= tiles[i, 1]
            assert apart_x or apart_y, (tiles[i], tiles[j])
    scale = packing.scale
    crop_wh = CROPS[:, 2:] - CROPS[:, :2]
    assert np.all(np.abs(scale[:, 0] - scale[:, 1]) * crop_wh.max(1) <= 1.0)  # one pixel of rounding
    assert scale.min() > 0.6  # four ~300 px crops on 512 px: a 2 x 2 layout, not a row
    with pytest.raises(ValueError, match="positive width"):
        pack_crops(np.array([[10, 10, 10, 50]]), 512)


def test_boxes_go_to_the_canvas_and_back_exactly():
    packing = pack_crops(CROPS, 512)
    rng = np.random.default_rng(0)
    tile = np.repeat(np.arange(len(CROPS)), 25)
    crop = CROPS[tile].astype(np.float64)
    corner = crop[:, :2] + rng.uniform(0, 0.8, (len(tile), 2)) * (crop[:, 2:] - crop[:, :2])
    size = rng.uniform(0.2, 1, (len(tile), 2)) * (crop[:, 2:] - corner)
    boxes = np.concatenate([corner, corner + size], 1)
    on_canvas = packing.image_to_canvas(boxes, tile)
    np.testing.assert_array_equal(packing.tile_of(on_canvas), tile)
    np.testing.assert_allclose(packing.canvas_to_image(on_canvas, tile), boxes, atol=1e-9)
    gap_x, middle_y = packing.tiles_xyxy[0, 2] + 4.0, packing.tiles_xyxy[0, [1, 3]].mean()
    assert packing.tile_of(np.array([[gap_x - 1, middle_y - 1, gap_x + 1, middle_y + 1]]))[0] == -1


def test_the_canvas_holds_each_crop_resized_into_its_tile(image):
    big = cv2.resize(image, (800, 600))
    packing = pack_crops(CROPS, 512)
    canvas = packed_canvas(big, packing)
    for (x0, y0, x1, y1), (u0, v0, u1, v1) in zip(CROPS, packing.tiles_xyxy, strict=True):
        expected = cv2.resize(big[y0:y1, x0:x1], (int(u1 - u0), int(v1 - v0)), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(canvas[v0:v1, u0:u1], expected)
    covered = np.zeros(canvas.shape[:2], bool)
    for u0, v0, u1, v1 in packing.tiles_xyxy:
        covered[v0:v1, u0:u1] = True
    assert not canvas[~covered].any()


def test_a_box_cut_by_a_tile_edge_inside_the_image_is_a_cut_box(tiny_detectors, monkeypatch):
    """Canvas detections written by hand: one well inside tile 1, one against tile 1's left edge
    (crop 1 starts at x = 250, inside the image: cut), one against tile 0's top edge (the image's
    own top: not cut), one in a gap (dropped)."""
    image = np.zeros((600, 800, 3), np.uint8)
    packing = pack_crops(CROPS, 512)
    inside = packing.image_to_canvas(np.array([[350, 200, 380, 230]]), np.array([1]))[0]
    left = packing.image_to_canvas(np.array([[250, 200, 280, 230]]), np.array([1]))[0]
    top = packing.image_to_canvas(np.array([[100, 0, 130, 30]]), np.array([0]))[0]
    gap_x, middle_y = packing.tiles_xyxy[0, 2] + 4.0, packing.tiles_xyxy[0, [1, 3]].mean()
    canvas_boxes = np.array([inside, left, top, [gap_x - 1, middle_y - 1, gap_x + 1, middle_y + 1]])
    fake = sv.Detections(
        xyxy=canvas_boxes,
        confidence=np.full(4, 0.8, np.float32),
        class_id=np.zeros(4, np.int64),
        data={"query_index": np.arange(4), "class_name": np.array(["car"] * 4)},
    )
    monkeypatch.setattr(packing_module, "run_inference", lambda *args, **kwargs: None)
    monkeypatch.setattr(packing_module, "to_detections", lambda result, score_threshold: fake)
    found = detect_packed(tiny_detectors["rt_detr"], image, CROPS, canvas_side=512, border_factor=0.5)
    assert found.model_calls == 1 and found.detections.data["query_index"].tolist() == [0, 1, 2]
    np.testing.assert_allclose(found.detections.xyxy, [[350, 200, 380, 230], [250, 200, 280, 230],
                                                       [100, 0, 130, 30]], atol=1e-6)  # fmt: skip
    assert found.detections.data["at_border"].tolist() == [False, True, False]
    np.testing.assert_allclose(found.detections.confidence, [0.8, 0.4, 0.8])
    assert found.detections.data["crop_index"].tolist() == [1, 1, 0]


def test_packed_crops_run_in_one_pass_with_the_real_model(tiny_detectors, image):
    detector = tiny_detectors["rt_detr"]
    big = cv2.resize(image, (800, 600))
    found = detect_packed(detector, big, CROPS, canvas_side=256, score_threshold=0.0, cache=None)
    assert len(found.results) == 1 and found.results[0].transform.input_hw == (256, 256)
    boxes = found.detections.xyxy
    for index, (x0, y0, x1, y1) in enumerate(CROPS):
        mine = boxes[found.detections.data["crop_index"] == index]
        assert (mine[:, [0, 2]] >= x0 - 1e-6).all() and (mine[:, [0, 2]] <= x1 + 1e-6).all()
        assert (mine[:, [1, 3]] >= y0 - 1e-6).all() and (mine[:, [1, 3]] <= y1 + 1e-6).all()
    assert len(boxes) > 0
