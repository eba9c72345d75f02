"""TIDE-style error types of misses and false positives, on boxes built for each case."""

from __future__ import annotations

import numpy as np

from sodviz.analysis.errors import false_positive_types, miss_types

TRUTH = np.array([[0, 0, 10, 10], [100, 100, 110, 110], [200, 200, 210, 210], [300, 300, 310, 310],
                  [400, 400, 410, 410]], np.float32)  # fmt: skip
LABELS = np.array([0, 0, 0, 0, 0])


def _scores(*rows):
    return np.array(rows, np.float32)


def test_each_miss_gets_its_type_and_found_objects_none():
    queries = np.array(
        [
            [0, 0, 10, 10],  # object 0: exact, right class, found
            [100, 100, 110, 110],  # object 1: exact box, another class scores high
            [200, 200, 210, 210],  # object 2: exact box, right class but a low score
            [300, 300, 306, 306],  # object 3: IoU 0.36, neither matches nor misses by far
            [900, 900, 910, 910],  # object 4: nothing near
        ],
        np.float32,
    )
    scores = _scores([0.9, 0.0], [0.1, 0.8], [0.2, 0.0], [0.9, 0.0], [0.9, 0.0])
    missed = np.array([False, True, True, True, True])
    nearest, iou, types = miss_types(
        TRUTH, LABELS, missed, queries, scores, score_threshold=0.3, class_aware=True
    )
    assert types.tolist() == ["", "classification", "score", "localisation", "never attended"]
    assert nearest[:4].tolist() == [0, 1, 2, 3]
    assert np.allclose(iou[:4], [1, 1, 1, 0.36])


def test_class_agnostic_has_no_classification_errors():
    queries = TRUTH[1:2]
    missed = np.array([False, True, False, False, False])
    _, _, types = miss_types(
        TRUTH, LABELS, missed, queries, _scores([0.1, 0.8]), score_threshold=0.3, class_aware=False
    )
    assert types[1] == "localisation"  # agnostic: a box that fits and scores 0.8 lost to a neighbour
    _, _, aware = miss_types(
        TRUTH, LABELS, missed, queries, _scores([0.1, 0.8]), score_threshold=0.3, class_aware=True
    )
    assert aware[1] == "classification"


def test_a_fitting_box_taken_by_a_neighbour_is_localisation():
    queries = TRUTH[:1]
    missed = np.array([True, False, False, False, False])
    _, _, types = miss_types(
        TRUTH, LABELS, missed, queries, _scores([0.9]), score_threshold=0.3, class_aware=True
    )
    assert types[0] == "localisation"


def test_no_queries_means_never_attended():
    missed = np.ones(5, bool)
    nearest, _, types = miss_types(
        TRUTH, LABELS, missed, np.zeros((0, 4)), np.zeros((0, 1)), score_threshold=0.3, class_aware=True
    )
    assert set(types) == {"never attended"} and set(nearest) == {-1}


def test_false_positive_types():
    detections = np.array(
        [[0, 0, 10, 10], [100, 100, 110, 110], [200, 200, 206, 206], [600, 600, 610, 610]], np.float32
    )
    classes = np.array([0, 1, 0, 0])
    labels = np.array([0, 0, 0, 0, 0])
    is_false = np.array([True, True, True, True])
    types = false_positive_types(detections, classes, is_false, TRUTH, labels, class_aware=True)
    assert types.tolist() == ["duplicate", "classification", "localisation", "background"]
    agnostic = false_positive_types(detections, classes, is_false, TRUTH, labels, class_aware=False)
    assert agnostic[1] == "duplicate"
    assert (
        false_positive_types(detections, classes, ~is_false, TRUTH, labels, class_aware=True).tolist()
        == [""] * 4
    )
