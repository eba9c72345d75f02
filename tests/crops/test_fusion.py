"""Fusion: its rules, SAHI's merges checked against SAHI's own code, and our slicing against SAHI's
`get_sliced_prediction` on the same crops (the reference for the slicing baseline)."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv
from hypothesis import given, settings
from hypothesis import strategies as st
from sahi.postprocess.combine import GreedyNMMPostprocess, NMMPostprocess, NMSPostprocess
from sahi.prediction import ObjectPrediction
from sahi.slicing import get_slice_bboxes

from sodviz.boxes import box_size
from sodviz.crops.fusion import Fusion, fuse_detections, merge_boxes, overlap_matrix
from sodviz.crops.sahi_reference import sahi_sliced
from sodviz.crops.slicing import run_slicing, slice_grid
from sodviz.detector.inference import run_inference, to_detections
from sodviz.evaluation.coco import coco_metrics, coco_results, load_coco
from sodviz.imageio import load_image

SAHI_MERGES = {"nms": NMSPostprocess, "greedynmm": GreedyNMMPostprocess, "nmm": NMMPostprocess}


def _detections(boxes, scores, classes=None) -> sv.Detections:
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    return sv.Detections(
        xyxy=boxes,
        confidence=np.array(scores, np.float32),
        class_id=np.zeros(len(boxes), np.int64) if classes is None else np.array(classes, np.int64),
    )


def _clustered_boxes(seed: int, n: int = 60):
    """Boxes around a few centres (so many overlap), distinct scores, three classes."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(20, 180, (6, 2))[rng.integers(0, 6, n)] + rng.normal(0, 6, (n, 2))
    sides = rng.uniform(4, 40, (n, 2))
    boxes = np.clip(np.round(np.concatenate([centres - sides / 2, centres + sides / 2], axis=1), 1), 0, 300)
    return boxes, rng.permutation(n).astype(np.float64) / n + 0.01, rng.integers(0, 3, n)


@pytest.mark.parametrize("merge", ["nms", "greedynmm", "nmm"])
@pytest.mark.parametrize("metric", ["iou", "ios"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merges_are_sahis(merge, metric, seed):
    boxes, scores, classes = _clustered_boxes(seed)
    keep, merged = merge_boxes(boxes, scores, classes, merge=merge, metric=metric, threshold=0.5)
    predictions = [
        ObjectPrediction(bbox=box.tolist(), category_id=int(label), score=float(score), full_shape=[300, 300])
        for box, score, label in zip(boxes, scores, classes, strict=True)
    ]
    theirs = SAHI_MERGES[merge](match_threshold=0.5, match_metric=metric.upper(), class_agnostic=False)(
        predictions
    )
    expected = sorted((p.score.value, p.category.id, *np.round(p.bbox.to_xyxy(), 3)) for p in theirs)
    mine = sorted((scores[i], classes[i], *np.round(box, 3)) for i, box in zip(keep, merged, strict=True))
    assert len(mine) < len(boxes)  # the boxes overlap enough for the merge to matter
    assert mine == expected


def test_merges_differ_where_they_should():
    boxes = np.array([[0, 0, 10, 10], [6, 0, 16, 10], [12, 0, 22, 10]], np.float64)  # a chain
    scores, classes = np.array([0.9, 0.8, 0.7]), np.zeros(3, np.int64)
    kept = {m: merge_boxes(boxes, scores, classes, merge=m, metric="ios", threshold=0.3) for m in SAHI_MERGES}
    assert kept["nms"][0].tolist() == [0, 2]  # the middle box is suppressed, the far one is not
    assert kept["greedynmm"][1].tolist() == [[0, 0, 16, 10], [12, 0, 22, 10]]
    assert kept["nmm"][1].tolist() == [[0, 0, 22, 10]]  # transitive: the chain becomes one box


def test_overlap_metrics():
    a, b = np.array([[0, 0, 10, 10]]), np.array([[0, 0, 5, 10], [20, 20, 20, 30]])
    np.testing.assert_allclose(overlap_matrix(a, b, "iou"), [[0.5, 0.0]])
    np.testing.assert_allclose(overlap_matrix(a, b, "ios"), [[1.0, 0.0]])  # zero area: 0, not NaN
    with pytest.raises(ValueError, match="metric"):
        overlap_matrix(a, b, "giou")


def test_a_mid_size_crop_box_survives_fusion():
    original = _detections([[0, 0, 100, 100], [200, 200, 240, 238]], [0.9, 0.3])  # a weak 40 px box
    refined = _detections([[201, 201, 241, 240], [400, 400, 450, 450]], [0.8, 0.7])  # better, and a new one
    fused = fuse_detections(original, refined)
    assert [201, 201, 241, 240] in fused.xyxy.tolist() and [400, 400, 450, 450] in fused.xyxy.tolist()
    assert [200, 200, 240, 238] not in fused.xyxy.tolist()  # the duplicate is suppressed
    assert fused.data["refined"].tolist() == [False, True, True]
    limited = fuse_detections(original, refined, Fusion(max_refined_size=32))  # the old size rule
    assert not limited.data["refined"].any()
    at_input = fuse_detections(original, refined, Fusion(max_refined_size=32), scale=0.5)  # 20-25 input px
    assert at_input.data["refined"].sum() == 2


_rows = st.lists(
    st.tuples(st.floats(0, 200), st.floats(0, 200), st.floats(1, 120), st.floats(1, 120), st.floats(0.01, 1)),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(_rows, _rows, st.sampled_from(["nms", "greedynmm", "nmm"]), st.sampled_from(["iou", "ios"]))
def test_a_large_full_image_detection_is_never_lost(original_rows, refined_rows, merge, metric):
    def build(rows):
        return _detections([[x, y, x + w, y + h] for x, y, w, h, _ in rows], [s for *_, s in rows])

    original, refined = build(original_rows), build(refined_rows)
    fusion = Fusion(merge=merge, metric=metric, keep_large=32, low_score_nms=False)
    fused = fuse_detections(original, refined, fusion)
    for box in original.xyxy[box_size(original.xyxy) >= 32]:
        assert (np.abs(fused.xyxy[~fused.data["refined"]] - box).max(axis=1) < 1e-4).any()
    # With NMS and no protection, a detection only goes for a more confident match of its class.
    plain = fuse_detections(original, refined, Fusion(metric=metric))
    for box, score in zip(original.xyxy, original.confidence, strict=True):
        overlap = overlap_matrix(box, plain.xyxy, metric)[0]
        assert ((overlap >= 0.5 - 1e-6) & (plain.confidence >= score - 1e-6)).any()


def test_sahis_switch_to_nms_at_low_score_thresholds():
    merge = Fusion(merge="greedynmm", metric="ios")
    assert merge.at_score_threshold(0.05) == Fusion(merge="nms", metric="iou")
    assert merge.at_score_threshold(0.1) == merge and merge.at_score_threshold(None) == merge
    kept = Fusion(merge="greedynmm", metric="ios", low_score_nms=False)
    assert kept.at_score_threshold(0.01) == kept
    original, refined = _detections([[0, 0, 10, 10]], [0.9]), _detections([[5, 0, 15, 10]], [0.5])
    assert len(fuse_detections(original, refined, merge, score_threshold=0.2)) == 1  # merged by IoS
    assert len(fuse_detections(original, refined, merge, score_threshold=0.05)) == 2  # NMS / IoU 0.33


def test_fusion_of_nothing_and_bad_settings():
    empty = _detections([], [])
    assert len(fuse_detections(empty, empty)) == 0
    for bad in ({"merge": "softnms"}, {"metric": "giou"}, {"threshold": 0.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Fusion(**bad)


@pytest.mark.parametrize("image_hw", [(1056, 1056), (300, 500), (120, 900), (777, 601)])
@pytest.mark.parametrize("max_slices", [4, 6, 9])
@pytest.mark.parametrize("overlap", [0.0, 0.2, 0.35])
def test_slices_are_sahis(image_hw, max_slices, overlap):
    crops = slice_grid(image_hw, max_slices, overlap=overlap)
    side_w, side_h = int(crops[0, 2] - crops[0, 0]), int(crops[0, 3] - crops[0, 1])
    assert crops.tolist() == get_slice_bboxes(
        *image_hw, slice_height=side_h, slice_width=side_w, overlap_height_ratio=overlap,
        overlap_width_ratio=overlap,
    )  # fmt: skip


@pytest.mark.parametrize(
    "image_hw, grid",
    [((1056, 1056), (2, 3)), ((1500, 2000), (2, 3)), ((2000, 1500), (3, 2)), ((3000, 4000), (3, 4)),
     ((4000, 3000), (4, 3))],
)  # fmt: skip
def test_asahis_grid_is_a_fixed_count_of_sahi_slices(image_hw, grid):
    from sodviz.crops.slicing import asahi_grid

    assert asahi_grid(image_hw) == grid  # 6 slices up to a 2000 px long side, 12 above
    crops = slice_grid(image_hw, 0, overlap=0.2, grid=grid)
    assert len(crops) == grid[0] * grid[1]
    side_w, side_h = int(crops[0, 2] - crops[0, 0]), int(crops[0, 3] - crops[0, 1])
    assert side_h == int(np.ceil(image_hw[0] / (grid[0] - (grid[0] - 1) * 0.2)))  # the size follows the image
    assert crops.tolist() == get_slice_bboxes(
        *image_hw, slice_height=side_h, slice_width=side_w, overlap_height_ratio=0.2, overlap_width_ratio=0.2
    )


@pytest.fixture(scope="module")
def scenes(demo_detector, tmp_path_factory):
    from sodviz.synth.datasets import write_dataset
    from sodviz.synth.scenes import SceneConfig

    folder = write_dataset(
        tmp_path_factory.mktemp("sahi"), "test", 3, config=SceneConfig(min_side=1024, max_side=1152)
    )
    return load_coco(folder / "annotations.json"), folder / "images"


@pytest.mark.parametrize("budget", [5, 10])
def test_our_slicing_gives_sahis_ap(demo_detector, scenes, budget):
    truth, images = scenes
    ours, reference, scale = [], [], {}
    for record in truth["images"]:
        image = load_image(images / record["file_name"])
        scale[record["id"]] = demo_detector.input_size / max(image.shape[:2])
        sliced = run_slicing(
            demo_detector, image, forward_passes=budget, score_threshold=0.01, border_factor=1.0, cache=None
        )
        theirs, passes = sahi_sliced(demo_detector, image, forward_passes=budget, score_threshold=0.01)
        assert sliced.forward_passes == passes == budget
        for found, rows in ((sliced.detections, ours), (theirs, reference)):
            rows += coco_results(found.xyxy, found.confidence, found.class_id, image_id=record["id"])
    mine, expected = (
        coco_metrics(truth, ours, area_scale=scale),
        coco_metrics(truth, reference, area_scale=scale),
    )
    base = []
    for record in truth["images"]:
        found = to_detections(
            run_inference(demo_detector, load_image(images / record["file_name"]), cache=None),
            score_threshold=0.01,
        )
        base += coco_results(found.xyxy, found.confidence, found.class_id, image_id=record["id"])
    assert expected["AP50"] > coco_metrics(truth, base, area_scale=scale)["AP50"] + 0.02  # slicing helps here
    assert abs(mine["AP"] - expected["AP"]) <= 0.005 and abs(mine["AP50"] - expected["AP50"]) <= 0.005


def test_the_command_line_offers_every_merge():
    from sodviz.cli.parser import MERGES_CHOICES, METRICS_CHOICES
    from sodviz.crops.fusion import MERGES, METRICS

    assert (MERGES_CHOICES, METRICS_CHOICES) == (MERGES, METRICS)


@pytest.mark.parametrize("merge", ["greedynmm", "nmm"])
def test_a_claim_that_no_longer_matches_the_grown_box_is_dropped(merge):
    boxes = np.array(
        [[4, 0, 14, 10], [8, 0, 18, 10], [0, 0, 10, 10]], np.float64
    )  # B, C both IoU 0.43 with A
    scores, classes = np.array([0.9, 0.8, 0.7]), np.zeros(3, np.int64)
    keep, merged = merge_boxes(boxes, scores, classes, merge=merge, metric="iou", threshold=0.4)
    predictions = [
        ObjectPrediction(bbox=box.tolist(), category_id=0, score=float(score), full_shape=[20, 20])
        for box, score in zip(boxes, scores, strict=True)
    ]
    theirs = SAHI_MERGES[merge](match_threshold=0.4, match_metric="IOU", class_agnostic=False)(predictions)
    assert [p.bbox.to_xyxy() for p in theirs] == [[4, 0, 18, 10]]  # A + B; C (IoU 0.33 with A + B) is gone
    assert keep.tolist() == [0] and merged.tolist() == [[4, 0, 18, 10]]


def test_weighted_box_fusion_by_hand():
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [50, 50, 60, 60], [0, 0, 10, 10]], np.float64)
    scores, classes = np.array([0.9, 0.3, 0.5, 0.4]), np.array([0, 0, 0, 1])
    keep, merged = merge_boxes(boxes, scores, classes, merge="wbf", threshold=0.55)
    assert keep.tolist() == [0, 2, 3]  # the best member of each cluster; classes are kept apart
    np.testing.assert_allclose(merged[0], [0.5, 0, 10.5, 10], atol=1e-4)  # (0.9 b0 + 0.3 b1) / 1.2
    np.testing.assert_allclose(merged[1:], boxes[[2, 3]], atol=1e-4)
    keep, _ = merge_boxes(boxes, scores, classes, merge="wbf", threshold=0.7)  # IoU 2/3: no longer one
    assert keep.tolist() == [0, 2, 3, 1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_box_fusion_is_the_librarys(seed):
    from ensemble_boxes import weighted_boxes_fusion

    boxes, scores, classes = _clustered_boxes(seed)
    keep, merged = merge_boxes(boxes + 40, scores, classes, merge="wbf", threshold=0.5)
    theirs, their_scores, labels = weighted_boxes_fusion(
        [(boxes / 300).tolist()], [scores.tolist()], [classes.tolist()], iou_thr=0.5, conf_type="max"
    )
    assert len(keep) < len(boxes)
    expected = sorted(
        (round(s, 5), int(c), *np.round(b * 300 + 40, 2))
        for b, s, c in zip(theirs, their_scores, labels, strict=True)
    )
    mine = sorted(
        (round(scores[i], 5), int(classes[i]), *np.round(b, 2)) for i, b in zip(keep, merged, strict=True)
    )
    assert mine == expected


def test_weighted_box_fusion_keeps_the_best_members_data():
    original = _detections([[0, 0, 10, 10]], [0.4])
    refined = _detections([[1, 0, 11, 10], [40, 40, 50, 50]], [0.8, 0.6])
    fused = fuse_detections(original, refined, Fusion(merge="wbf"), score_threshold=0.3)
    assert len(fused) == 2 and fused.data["refined"].tolist() == [True, True]
    np.testing.assert_allclose(fused.xyxy[0], [2 / 3, 0, 32 / 3, 10], atol=1e-4)
    with pytest.raises(ValueError, match="IoU only"):
        Fusion(merge="wbf", metric="ios")
