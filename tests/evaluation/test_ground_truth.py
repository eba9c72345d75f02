"""Ground truth from uploaded COCO JSON, and TP / FP / FN of detections against it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import supervision as sv

from sodviz.evaluation.ground_truth import (
    GroundTruth,
    app_bucket,
    ground_truth_from_coco,
    match_ground_truth,
    parse_annotations,
)

COCO = {
    "images": [{"id": 7, "file_name": "dir/scene.jpg"}, {"id": 8, "file_name": "other.jpg"}],
    "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}],
    "annotations": [
        {"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 10, 20, 10]},
        {"id": 2, "image_id": 7, "category_id": 2, "bbox": [100, 50, 4, 8]},
        {"id": 3, "image_id": 8, "category_id": 1, "bbox": [0, 0, 5, 5]},
    ],
}


def _detections(boxes, classes, scores) -> sv.Detections:
    return sv.Detections(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4),
        class_id=np.array(classes, np.int64),
        confidence=np.array(scores, np.float32),
    )


def test_parse_picks_the_image_by_file_name_and_scales_boxes():
    truth = parse_annotations(json.dumps(COCO).encode(), file_name="scene.jpg", scale=0.5)
    np.testing.assert_allclose(truth.boxes_xyxy, [[5, 5, 15, 10], [50, 25, 52, 29]])
    assert truth.class_names.tolist() == ["car", "person"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),  # binary
        (b"[1, 2, 3]", "not COCO format"),
        (json.dumps({"images": []}).encode(), "not COCO format"),  # no annotations list
        (json.dumps(COCO).encode(), "none is named 'unknown.jpg'"),  # two images, neither this one
    ],
)
def test_malformed_annotations_raise_a_clear_value_error(data, message):
    with pytest.raises(ValueError, match=message):
        parse_annotations(data, file_name="unknown.jpg")


def test_a_malformed_annotation_is_left_out_and_said():
    data = COCO | {
        "images": [{"id": 7}],
        "annotations": [{"id": 3, "image_id": 7, "category_id": 1, "bbox": [1, 2]}],
    }
    truth = parse_annotations(json.dumps(data).encode())
    assert len(truth) == 0
    assert truth.notices == (
        "1 annotation left out (no bbox of four finite numbers [x, y, w, h]): annotation ids 3.",
    )


def test_size_buckets_edges():
    boxes = [[0, 0, 15.9, 15.9], [0, 0, 16, 16], [0, 0, 32, 32], [0, 0, 96, 96], [0, 0, 0, 0]]
    assert app_bucket(np.array(boxes)).tolist() == ["tiny", "small", "medium", "large", "tiny"]
    assert app_bucket(np.zeros((0, 4))).tolist() == []


def test_match_marks_tp_fp_and_missed_objects_by_class():
    truth = ground_truth_from_coco(COCO, image_id=7)
    detections = _detections(
        [[10, 10, 30, 20], [11, 10, 30, 20], [100, 50, 104, 58], [200, 200, 260, 260]],
        classes=[0, 0, 0, 1],  # the third has the wrong class for the person
        scores=[0.9, 0.8, 0.7, 0.6],
    )
    match = match_ground_truth(detections, truth, class_names=("car", "person"))
    assert match.class_aware
    assert match.status.tolist() == ["TP", "FP", "FP", "FP"]  # the duplicate is a false positive
    assert match.missed.tolist() == [False, True]
    assert match.detection.tolist() == [0, -1]  # the car by the first detection, the person by none
    # all but the 60 px detection are tiny (sqrt of area < 16): car, duplicate, person, wrong class
    assert match.counts["tiny"] == {"tp": 1, "fp": 2, "fn": 1}
    assert match.counts["medium"] == {"tp": 0, "fp": 1, "fn": 0}
    assert match.counts["small"] == match.counts["large"] == {"tp": 0, "fp": 0, "fn": 0}


def test_match_is_class_agnostic_when_names_differ():
    truth = GroundTruth(
        boxes_xyxy=np.array([[0, 0, 10, 10]], np.float32), class_names=np.array(["pedestrian"])
    )
    match = match_ground_truth(
        _detections([[0, 0, 10, 10]], [1], [0.5]), truth, class_names=("car", "person")
    )
    assert not match.class_aware and match.status.tolist() == ["TP"] and not match.missed.any()


def test_match_with_nothing_on_either_side():
    empty_truth = GroundTruth(boxes_xyxy=np.zeros((0, 4), np.float32), class_names=np.array([], dtype=str))
    match = match_ground_truth(_detections([[0, 0, 5, 5]], [0], [0.9]), empty_truth, class_names=("car",))
    assert match.status.tolist() == ["FP"] and match.missed.size == 0
    truth = ground_truth_from_coco(COCO, image_id=8)
    match = match_ground_truth(_detections([], [], []), truth, class_names=("car",))
    assert match.status.size == 0 and match.missed.tolist() == [True]
    assert match.counts["tiny"]["fn"] == 1
