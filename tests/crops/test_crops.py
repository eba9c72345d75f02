"""Crops re-detected in one batch and mapped back; the uniform slicing grid."""

from __future__ import annotations

import numpy as np
import pytest

from sodviz.cache import InferenceCache
from sodviz.crops.redetect import detect_crops
from sodviz.crops.slicing import run_slicing, slice_grid, slices_for_budget
from sodviz.detector.inference import run_inference, to_detections


def test_crop_boxes_map_back_to_the_image(tiny_detectors, image):
    detector = tiny_detectors["rt_detr"]
    crop = np.array([[40, 20, 160, 110]])
    found = detect_crops(detector, image, crop, score_threshold=0.0, border_factor=1.0, cache=None)
    alone = to_detections(run_inference(detector, image[20:110, 40:160], cache=None), score_threshold=0.0)
    np.testing.assert_allclose(found.detections.xyxy, alone.xyxy + np.array([40, 20, 40, 20]), atol=1e-3)
    np.testing.assert_allclose(found.detections.confidence, alone.confidence, atol=1e-5)
    assert (found.detections.data["crop_index"] == 0).all()


def test_crops_run_in_one_batch_then_come_from_the_cache(tiny_detectors, image):
    detector, cache = tiny_detectors["d_fine"], InferenceCache()
    crops = np.array([[0, 0, 100, 60], [100, 60, 200, 120], [50, 30, 150, 90]])
    first = detect_crops(detector, image, crops, score_threshold=0.0, cache=cache)
    assert first.model_calls == 1 and len(first.results) == 3 and cache.misses == 3
    again = detect_crops(detector, image, crops[[2, 0]], score_threshold=0.0, cache=cache)
    assert again.model_calls == 0
    np.testing.assert_allclose(again.results[1].boxes_xyxy, first.results[0].boxes_xyxy)
    sequential = run_inference(detector, image[30:90, 50:150], cache=None)
    np.testing.assert_allclose(first.results[2].boxes_xyxy, sequential.boxes_xyxy, atol=1e-3)


def test_no_crops_is_no_model_call(tiny_detectors, image):
    found = detect_crops(tiny_detectors["detr"], image, np.zeros((0, 4)), cache=None)
    assert len(found.detections) == 0 and found.model_calls == 0 and found.results == ()


# boxes in crop pixels of a 100 x 60 crop: near the left, top, right, bottom edge, and inside
EDGE_BOXES = np.array(
    [[1, 20, 10, 30], [40, 1, 50, 10], [90, 20, 99, 30], [40, 50, 50, 59], [40, 20, 50, 30]]
)


@pytest.mark.parametrize(
    ("crop", "cut"),
    [
        ([50, 30, 150, 90], [True, True, True, True, False]),  # inner crop: every edge cuts
        ([0, 0, 100, 60], [False, False, True, True, False]),  # top-left corner: image edges do not
        ([100, 60, 200, 120], [True, True, False, False, False]),  # bottom-right corner
        ([0, 30, 100, 90], [False, True, True, True, False]),  # on the left border only (x0 != y0)
    ],
)
def test_only_crop_edges_inside_the_image_cut_boxes(crop, cut):
    from sodviz.crops.redetect import cut_by_crop_edge

    assert cut_by_crop_edge(EDGE_BOXES, crop, (120, 200), margin=2.0).tolist() == cut
    assert cut_by_crop_edge(np.zeros((0, 4)), crop, (120, 200), margin=2.0).tolist() == []  # empty


def test_cut_boxes_are_halved_by_default_and_dropped_at_factor_zero(tiny_detectors, image):
    detector, crop = tiny_detectors["rt_detr"], np.array([[50, 30, 150, 90]])
    alone = to_detections(run_inference(detector, image[30:90, 50:150], cache=None), score_threshold=0.0)
    halved = detect_crops(detector, image, crop, score_threshold=0.0, cache=None).detections
    cut = halved.data["at_border"]
    assert cut.any() and (~cut).any()  # the fixture has both kinds, so the factor is seen
    np.testing.assert_allclose(halved.confidence, alone.confidence * np.where(cut, 0.5, 1.0), rtol=1e-5)
    dropped = detect_crops(detector, image, crop, score_threshold=0.0, border_factor=0.0, cache=None)
    assert len(dropped.detections) == int((~cut).sum()) and not dropped.detections.data["at_border"].any()


@pytest.mark.parametrize("crop", [[-1, 0, 50, 50], [0, 0, 201, 50], [10, 10, 10, 40]])
def test_bad_crops_are_refused(tiny_detectors, image, crop):
    with pytest.raises(ValueError, match="crops must"):
        detect_crops(tiny_detectors["detr"], image, np.array([crop]), cache=None)


@pytest.mark.parametrize("max_slices", [1, 2, 3, 4, 6, 7, 8])
@pytest.mark.parametrize("overlap", [0.0, 0.2])
@pytest.mark.parametrize("image_hw", [(300, 500), (400, 400), (120, 900)])
def test_slice_grid_covers_the_image_within_the_budget(max_slices, overlap, image_hw):
    crops = slice_grid(image_hw, max_slices, overlap=overlap)
    assert 1 <= len(crops) <= max_slices
    height, width = image_hw
    covered = np.zeros(image_hw, bool)
    for x0, y0, x1, y1 in crops:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    assert slice_grid(image_hw, 0).shape == (0, 4)


@pytest.mark.parametrize(
    ("max_slices", "expected"), [(1, 1), (2, 1), (3, 1), (4, 4), (5, 4), (6, 6), (8, 6), (9, 9)]
)
def test_slice_grid_uses_only_near_square_tiles(max_slices, expected):
    crops = slice_grid((1000, 1000), max_slices, overlap=0.2)
    assert len(crops) == expected
    sides = np.stack([crops[:, 2] - crops[:, 0], crops[:, 3] - crops[:, 1]], axis=1)
    assert (sides.max(axis=1) / sides.min(axis=1) <= 1.5).all()


def test_slicing_reports_the_passes_it_used(tiny_detectors, image):
    detector = tiny_detectors["rt_detr"]
    square = np.ascontiguousarray(image[:, :120])
    below_a_grid = run_slicing(detector, square, forward_passes=3, cache=None)
    assert below_a_grid.forward_passes == 1 and len(below_a_grid.crops_xyxy) == 0
    grid = run_slicing(detector, square, forward_passes=5, cache=None)
    assert grid.forward_passes == 1 + len(grid.crops_xyxy) == 5
    halves = run_slicing(detector, image, forward_passes=3, cache=None)  # 120 x 200: two near-square halves
    assert halves.forward_passes == 3


def test_budgets_count_the_full_image_pass():
    assert slices_for_budget(1) == 0 and slices_for_budget(5) == 4
    assert slices_for_budget(5, with_full_image=False) == 5


def test_a_crop_evicted_after_the_cache_check_is_recomputed(tiny_detectors, image):
    class ForgetfulCache(InferenceCache):
        def __contains__(self, key) -> bool:  # claims to hold everything, then holds nothing
            return True

    crops = np.array([[0, 0, 100, 60], [100, 60, 200, 120]])
    found = detect_crops(tiny_detectors["rt_detr"], image, crops, cache=ForgetfulCache(max_bytes=0))
    direct = detect_crops(tiny_detectors["rt_detr"], image, crops, cache=None)
    assert found.model_calls == 2  # nothing looked missing, so no batch: one call per crop instead
    for mine, theirs in zip(found.results, direct.results, strict=True):
        np.testing.assert_allclose(mine.boxes_xyxy, theirs.boxes_xyxy, atol=1e-4)


def test_crop_boxes_are_clamped_to_their_crop(tiny_detectors, image):
    detector, crop = tiny_detectors["conditional_detr"], np.array([[40, 20, 160, 110]])
    raw = to_detections(run_inference(detector, image[20:110, 40:160], cache=None), score_threshold=0.0)
    assert ((raw.xyxy < 0) | (raw.xyxy > [120, 90, 120, 90])).any()  # random boxes spill out of the crop
    boxes = detect_crops(
        detector, image, crop, score_threshold=0.0, border_factor=1.0, cache=None
    ).detections.xyxy
    assert (boxes[:, :2] >= [40, 20]).all() and (boxes[:, 2:] <= [160, 110]).all()


def test_crops_without_detections_keep_their_columns(tiny_detectors, image):
    """Every crop empty (nothing above the threshold): the result still has a crop index per box."""
    from sodviz.crops.redetect import detect_crops

    found = detect_crops(
        tiny_detectors["rt_detr"], image, np.array([[0, 0, 64, 64], [64, 32, 160, 96]]), score_threshold=1.1
    )
    assert len(found.detections) == 0
    assert {"crop_index", "query_index", "at_border"} <= set(found.detections.data)
