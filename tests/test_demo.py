"""The embedded demo detector: loads offline with no extra step and finds objects on a sample scene."""

from __future__ import annotations

import json
from pathlib import Path

from sodviz.evaluation import match_counts
from sodviz.imageio import load_image
from sodviz.inference import run_inference, to_detections
from sodviz.models import DEMO_MODEL_DIR, load_detector

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"


def test_demo_detector_is_small_and_loads_offline():
    size_mb = sum(f.stat().st_size for f in DEMO_MODEL_DIR.iterdir()) / 2**20
    assert size_mb < 25
    detector = load_detector("demo")
    assert detector.family.model_type == "rt_detr"
    assert detector.class_names == ("vehicle", "person", "boat", "truck")


def test_demo_detector_finds_objects_on_a_sample_scene():
    detector = load_detector("demo")
    truth = json.loads((SAMPLES / "annotations.json").read_text())
    record = truth["images"][0]
    result = run_inference(detector, load_image(SAMPLES / "images" / record["file_name"]), cache=None)
    detections = to_detections(result, score_threshold=0.5)
    results = [
        {
            "image_id": record["id"],
            "category_id": int(c),
            "score": float(s),
            "bbox": [x0, y0, x1 - x0, y1 - y0],
        }
        for (x0, y0, x1, y1), c, s in zip(
            detections.xyxy.tolist(), detections.class_id, detections.confidence, strict=True
        )
    ]
    one_image = truth | {
        "images": [record],
        "annotations": [a for a in truth["annotations"] if a["image_id"] == record["id"]],
    }
    counts = match_counts(one_image, results, score_threshold=0.5)
    true_positives = sum(c["tp"] for c in counts.values())
    false_positives = sum(c["fp"] for c in counts.values())
    assert true_positives >= 10
    assert true_positives > false_positives
