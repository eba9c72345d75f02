"""Class score against object size."""

from __future__ import annotations

import numpy as np
import supervision as sv

from sodviz.evaluation.ground_truth import GroundTruth
from sodviz.evaluation.score_by_size import score_by_size


def test_score_by_size_by_hand():
    truth = GroundTruth(
        boxes_xyxy=np.array([[0, 0, 5, 5], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32),
        class_names=np.array(["vehicle", "vehicle", "person"]),
    )
    found = sv.Detections(
        xyxy=np.array([[0, 0, 5, 5], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32),
        confidence=np.array([0.8, 0.6, 0.9], np.float32),
        class_id=np.array([0, 0, 0]),  # the third is the wrong class: that object scores 0
    )
    curve = score_by_size([found, sv.Detections.empty()], [truth, truth], [1.0, 1.0], ("vehicle", "person"),
                          edges=(0, 8, 16, 1e9))  # fmt: skip
    np.testing.assert_array_equal(curve["count"], [2, 4, 0])  # two images, sizes 5, 10, 10
    np.testing.assert_allclose(curve["mean_score"][:2], [0.8 / 2, 0.6 / 4])
    assert np.isnan(curve["mean_score"][2])
    empty = score_by_size([], [], [], ("vehicle",))
    assert empty["count"].sum() == 0
