"""COCO evaluation through pycocotools: hand-made cases with known AP, and real ground truth."""

from __future__ import annotations

import math

import pytest

from conftest import SHARED_DATA, requires_shared_data
from sodviz.evaluation.coco import coco_metrics, load_coco, match_counts


def _dataset(boxes):
    """One 200x200 image, class 0, the given xywh boxes."""
    annotations = [
        {
            "id": i + 1,
            "image_id": 0,
            "category_id": 0,
            "bbox": list(box),
            "area": box[2] * box[3],
            "iscrowd": 0,
        }
        for i, box in enumerate(boxes)
    ]
    return {
        "images": [{"id": 0, "width": 200, "height": 200}],
        "annotations": annotations,
        "categories": [{"id": 0, "name": "thing"}],
    }


def _detection(box, score):
    return {"image_id": 0, "category_id": 0, "bbox": list(box), "score": score}


TINY, SMALL, LARGE = (10, 10, 6, 6), (50, 50, 20, 20), (100, 100, 50, 50)


@pytest.mark.parametrize(
    ("detections", "expected"),
    [
        # perfect detections: AP 1 everywhere there is ground truth
        (
            [(TINY, 0.9), (SMALL, 0.8), (LARGE, 0.7)],
            {"AP": 1.0, "AP50": 1.0, "AP_vt": 1.0, "AP_s": 1.0, "AP_m": 1.0},
        ),
        # the tiny object missed: its bucket is 0, the others stay 1
        ([(SMALL, 0.8), (LARGE, 0.7)], {"AP50_vt": 0.0, "AP50_s": 1.0, "AP50_m": 1.0}),
        # a confident 20 px false positive ranked first: precision 1/2, 2/3, 3/4 at recall 1/3, 2/3, 1,
        # so the interpolated AP50 is 0.75; it falls in the 16-32 px bucket only (AP_s 1/2)
        (
            [((150, 10, 20, 20), 0.99), (TINY, 0.9), (SMALL, 0.8), (LARGE, 0.7)],
            {"AP50": 0.75, "AP": 0.75, "AP_s": 0.5, "AP_vt": 1.0, "AP_m": 1.0},
        ),
        # nothing detected
        ([], {"AP": 0.0, "AP50_vt": 0.0, "AP_L": math.nan}),
    ],
)
def test_known_cases(detections, expected):
    metrics = coco_metrics(_dataset([TINY, SMALL, LARGE]), [_detection(b, s) for b, s in detections])
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(metrics[key])
        else:
            assert metrics[key] == pytest.approx(value, abs=1e-6), key


def test_false_positive_lowers_ap50():
    truth = _dataset([SMALL])
    clean = coco_metrics(truth, [_detection(SMALL, 0.5)])["AP50"]
    noisy = coco_metrics(truth, [_detection((150, 150, 20, 20), 0.9), _detection(SMALL, 0.5)])["AP50"]
    assert clean == pytest.approx(1.0) and noisy == pytest.approx(0.5, abs=0.01)


def test_area_scale_moves_objects_between_buckets():
    truth = _dataset([SMALL])  # 20 px; at scale 0.25 it is 5 px: very tiny
    metrics = coco_metrics(truth, [_detection(SMALL, 0.9)], area_scale={0: 0.25})
    assert metrics["AP_vt"] == pytest.approx(1.0) and math.isnan(metrics["AP_s"])


def test_match_counts_per_bucket():
    truth = _dataset([TINY, SMALL, LARGE])
    detections = [_detection(SMALL, 0.9), _detection((150, 150, 20, 20), 0.8), _detection(LARGE, 0.2)]
    counts = match_counts(truth, detections, score_threshold=0.5)
    assert counts["vt"] == {"tp": 0, "fp": 0, "fn": 1}
    assert counts["s"] == {"tp": 1, "fp": 1, "fn": 0}
    assert counts["m"] == {"tp": 0, "fp": 0, "fn": 1}  # below the threshold: missed
    assert match_counts(truth, [], score_threshold=0.5)["m"] == {"tp": 0, "fp": 0, "fn": 1}


@requires_shared_data
@pytest.mark.parametrize("folder", ["visdrone_val_2img", "dota_devkit_examples", "sahi_terrain"])
def test_real_ground_truth_against_itself_scores_one(folder):
    truth = load_coco(SHARED_DATA / folder / "annotations_coco.json")
    detections = [
        _detection(a["bbox"], 1.0) | {"image_id": a["image_id"], "category_id": a["category_id"]}
        for a in truth["annotations"]
    ]
    metrics = coco_metrics(truth, detections)
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP50"] == pytest.approx(1.0)


def test_missing_or_broken_annotations(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_coco(tmp_path / "none.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_coco(broken)


# Square objects just below and above each AI-TOD bound (8, 16, 32 px), and the bucket they are in.
BOUNDS = [(7.9, "vt"), (8.1, "t"), (15.9, "t"), (16.1, "s"), (31.9, "s"), (32.1, "m")]


@pytest.mark.parametrize("frame_scale", [1.0, 0.5])  # original pixels; model input at half the size
@pytest.mark.parametrize(("side", "bucket"), BOUNDS)
def test_aitod_bucket_bounds_in_both_frames(side, bucket, frame_scale):
    """An object of `side` px in the evaluation frame, boxes drawn at `side / frame_scale` image px."""
    length = side / frame_scale
    box = (40, 60, length, length)  # x0 != y0
    truth = _dataset([box])
    area_scale = None if frame_scale == 1.0 else {0: frame_scale}
    metrics = coco_metrics(truth, [_detection(box, 0.9)], area_scale=area_scale)
    for name in ("vt", "t", "s", "m"):
        if name == bucket:
            assert metrics[f"AP_{name}"] == pytest.approx(1.0), name
        else:
            assert math.isnan(metrics[f"AP_{name}"]), name
    counts = match_counts(truth, [], score_threshold=0.5, area_scale=area_scale)
    assert {name: c["fn"] for name, c in counts.items()} == {
        n: int(n == bucket) for n in ("vt", "t", "s", "m")
    }
