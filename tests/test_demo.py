"""The embedded demo detector: loads offline with no extra step and finds objects on a sample scene."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sodviz.attention.mass import attention_mass_in_box
from sodviz.detector.inference import run_inference, to_detections
from sodviz.detector.loading import DEMO_MODEL_DIR, load_detector
from sodviz.evaluation.coco import coco_results, match_counts, match_detections
from sodviz.imageio import load_image

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"


def test_demo_detector_is_small_and_loads_offline():
    size_mb = sum(f.stat().st_size for f in DEMO_MODEL_DIR.iterdir()) / 2**20
    assert size_mb < 25
    detector = load_detector("demo")
    assert detector.family.model_type == "rt_detr"
    assert detector.class_names == ("vehicle", "person", "boat", "truck")


def test_demo_detector_finds_objects_and_misses_more_of_the_tiniest_on_the_sample_scenes():
    """Whole scenes at the model's 512 px input: most objects of 8 px and more (input pixels) are
    found with few false positives, and the under-8-px ones are found clearly less often."""
    detector = load_detector("demo")
    truth = json.loads((SAMPLES / "annotations.json").read_text())
    totals = {bucket: {"tp": 0, "fp": 0, "fn": 0} for bucket in ("vt", "t", "s", "m")}
    for record in truth["images"]:
        result = run_inference(detector, load_image(SAMPLES / "images" / record["file_name"]), cache=None)
        detections = to_detections(result, score_threshold=0.5)
        found = (detections.xyxy, detections.confidence, detections.class_id)
        results = coco_results(*found, image_id=record["id"])
        one_image = truth | {
            "images": [record],
            "annotations": [a for a in truth["annotations"] if a["image_id"] == record["id"]],
        }
        scale = {record["id"]: result.transform.input_hw[0] / max(record["height"], record["width"])}
        counts = match_counts(one_image, results, score_threshold=0.5, area_scale=scale)
        for bucket, count in counts.items():
            for key in ("tp", "fp", "fn"):
                totals[bucket][key] += count[key]

    def recall(buckets):
        tp = sum(totals[b]["tp"] for b in buckets)
        return tp / (tp + sum(totals[b]["fn"] for b in buckets))

    true_positives = sum(c["tp"] for c in totals.values())
    false_positives = sum(c["fp"] for c in totals.values())
    assert true_positives > 3 * false_positives
    assert recall(["t", "s", "m"]) >= 0.8
    assert recall(["vt"]) < recall(["t", "s", "m"]) - 0.1


def test_demo_detector_attends_to_the_objects_it_finds():
    """Matched detections keep their last-layer sampling weight on their object (2x box), and not
    on an equal box three object-widths aside: the measure can tell the difference."""
    detector = load_detector("demo")
    truth = json.loads((SAMPLES / "annotations.json").read_text())
    record = truth["images"][0]
    result = run_inference(detector, load_image(SAMPLES / "images" / record["file_name"]), cache=None)
    results = coco_results(
        result.boxes_xyxy,
        result.scores,
        result.labels,
        image_id=record["id"],
        query_index=np.arange(result.num_queries),
    )
    one_image = truth | {
        "images": [record],
        "annotations": [a for a in truth["annotations"] if a["image_id"] == record["id"]],
    }
    _, pairs = match_detections(one_image, results, score_threshold=0.5)
    assert len(pairs) >= 20
    on, aside = [], []
    for detection, object_ in pairs:
        x, y, w, h = object_["bbox"]
        on.append(attention_mass_in_box(result, detection["query_index"], [x, y, x + w, y + h], enlarge=2))
        moved = [x + 3 * w, y, x + 4 * w, y + h]
        aside.append(attention_mass_in_box(result, detection["query_index"], moved, enlarge=2))
    assert np.median(on) >= 0.5
    assert np.median(aside) < 0.1
