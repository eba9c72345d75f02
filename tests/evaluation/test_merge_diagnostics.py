"""Merge diagnostics: duplicates on one object and objects split by a seam, by hand."""

from __future__ import annotations

import numpy as np

from sodviz.evaluation.merge_diagnostics import MergeDiagnostics, merge_diagnostics

OBJECT = np.array([[0, 0, 30, 10]], np.float64)


def _count(boxes, scores, classes=None, truth=OBJECT, truth_classes=(0,)):
    boxes = np.array(boxes, np.float64).reshape(-1, 4)
    classes = np.zeros(len(boxes), np.int64) if classes is None else np.array(classes)
    return merge_diagnostics(boxes, np.array(scores, np.float64), classes, truth, np.array(truth_classes))


def test_duplicates_count_every_box_after_the_first_on_an_object():
    assert _count([[0, 0, 30, 10], [1, 0, 30, 10], [0, 0, 29, 10]], [0.9, 0.8, 0.7]).duplicates == 2
    assert _count([[0, 0, 30, 10], [1, 0, 30, 10]], [0.9, 0.2]).duplicates == 0  # under the score shown
    assert _count([[0, 0, 30, 10], [1, 0, 30, 10]], [0.9, 0.8], classes=[0, 1]).duplicates == 0
    two = np.array([[0, 0, 30, 10], [40, 0, 70, 10]], np.float64)
    near = _count(
        [[0, 0, 30, 10], [40, 0, 70, 10], [38, 0, 70, 10]], [0.9, 0.8, 0.7], truth=two, truth_classes=(0, 0)
    )
    assert near == MergeDiagnostics(objects=2, duplicates=1, splits=0)  # each box goes to the object it fits


def test_an_object_found_in_two_parts_is_split():
    halves = [[0, 0, 14, 10], [14, 0, 28, 10]]  # IoU 0.47 each; their union 0.93
    assert _count(halves, [0.9, 0.8]) == MergeDiagnostics(objects=1, duplicates=0, splits=1)
    assert _count(halves, [0.9, 0.8], classes=[0, 1]).splits == 0  # parts of two classes
    assert _count(halves[:1], [0.9]).splits == 0  # one part is a miss, not a split
    assert _count([*halves, [0, 0, 30, 10]], [0.9, 0.8, 0.7]).splits == 0  # found whole as well
    assert _count([[-20, 0, 14, 10], [14, 0, 28, 10]], [0.9, 0.8]).splits == 0  # mostly outside: not a part


def test_no_objects_and_sums():
    assert _count([[0, 0, 30, 10]], [0.9], truth=np.zeros((0, 4)), truth_classes=()) == MergeDiagnostics()
    total = MergeDiagnostics(10, 2, 1) + MergeDiagnostics(30, 0, 3)
    assert total == MergeDiagnostics(40, 2, 4)
    assert total.per_100_objects() == {"duplicates": 5.0, "splits": 10.0}
