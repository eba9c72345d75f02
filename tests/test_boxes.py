"""Box geometry: conversions round-trip, sizes, crop <-> image offsets, windows, intersections."""

from __future__ import annotations

import numpy as np
import pytest

from sodviz.boxes import (
    bbox_size,
    box_size,
    crop_to_image,
    crop_window,
    cxcywh_to_xyxy,
    image_to_crop,
    intersection_area,
    xywh_to_xyxy,
    xyxy_to_xywh,
)

BOXES = np.array([[10, 20, 40, 30], [0, 0, 5, 12]], np.float64)  # no box square, x0 != y0


def test_conversions_round_trip():
    np.testing.assert_allclose(xywh_to_xyxy(xyxy_to_xywh(BOXES)), BOXES)
    np.testing.assert_allclose(xyxy_to_xywh(BOXES), [[10, 20, 30, 10], [0, 0, 5, 12]])
    np.testing.assert_allclose(cxcywh_to_xyxy(np.array([[25.0, 25.0, 30.0, 10.0]])), [[10, 20, 40, 30]])
    assert xywh_to_xyxy(np.zeros((0, 4))).shape == (0, 4)  # the empty case


def test_sizes():
    np.testing.assert_allclose(box_size(BOXES), [np.sqrt(300), np.sqrt(60)])
    assert box_size(np.array([[5, 5, 1, 9]])).tolist() == [0.0]  # an inverted box has no area
    assert bbox_size([3, 4, 30, 10]) == pytest.approx(np.sqrt(300))
    assert box_size(np.zeros((0, 4))).shape == (0,)


def test_crop_offsets_move_x_by_x0_and_y_by_y0():
    crop = (50, 40, 150, 100)
    moved = crop_to_image(BOXES, crop)
    np.testing.assert_allclose(moved, [[60, 60, 90, 70], [50, 40, 55, 52]])
    np.testing.assert_allclose(image_to_crop(moved, crop), BOXES)


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ([0, 0, 4, 4], (0, 0, 96, 96)),  # min side, pushed inside at the top-left corner
        ([190, 110, 199, 119], (104, 24, 200, 120)),  # at the bottom-right corner
        ([50, 40, 70, 50], (0, 0, 120, 120)),  # 6 x 20 = 120 px: the image's height caps it
    ],
)
def test_crop_window(box, expected):
    assert crop_window(np.array(box), (120, 200), factor=6, min_side=96) == expected


def test_intersection_area():
    np.testing.assert_allclose(intersection_area([0, 0, 10, 10], [[5, 5, 20, 20], [10, 0, 20, 10]]), [25, 0])
    assert intersection_area([0, 0, 1, 1], np.zeros((0, 4))).shape == (0,)
