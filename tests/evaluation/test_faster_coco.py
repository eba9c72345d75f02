"""faster-coco-eval against pycocotools on the same inputs: every metric, AI-TOD buckets included."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sodviz.evaluation.coco import _evaluator, coco_metrics
from sodviz.synth.datasets import write_dataset
from sodviz.synth.scenes import SceneConfig


@pytest.fixture(scope="module")
def truth_and_detections(tmp_path_factory):
    """Generated scenes; detections = jittered ground truth (some dropped, some relabelled) plus
    low-scoring clutter, a crowd region in one image, boxes bucketed in 512 px model input."""
    root = write_dataset(
        tmp_path_factory.mktemp("fce"), "test", 6, config=SceneConfig(min_side=512, max_side=768)
    )
    truth = json.loads((root / "annotations.json").read_text())
    rng = np.random.default_rng(0)
    first_class = truth["categories"][0]["id"]
    detections = []
    for annotation in truth["annotations"]:
        if rng.random() < 0.2:
            continue
        x, y, w, h = annotation["bbox"]
        jitter = rng.normal(0, 0.15 * max(w, h), 4)
        category = annotation["category_id"] if rng.random() > 0.1 else first_class
        box = [x + jitter[0], y + jitter[1], max(1.0, w + jitter[2]), max(1.0, h + jitter[3])]
        detections.append({"image_id": annotation["image_id"], "category_id": category, "bbox": box,
                           "score": float(rng.random())})  # fmt: skip
    for image in truth["images"]:
        for _ in range(30):
            box = [float(v) for v in (*rng.uniform(0, 400, 2), *rng.uniform(2, 30, 2))]
            detections.append({"image_id": image["id"], "category_id": first_class, "bbox": box,
                               "score": float(rng.random() * 0.5)})  # fmt: skip
    crowd = dict(truth["annotations"][0], id=10**6, bbox=[0, 0, 120, 120], iscrowd=1, area=14400)
    truth["annotations"].append(crowd)
    scale = {image["id"]: 512 / max(image["width"], image["height"]) for image in truth["images"]}
    return truth, detections, scale


def test_faster_coco_eval_gives_pycocotools_numbers(truth_and_detections):
    truth, detections, scale = truth_and_detections
    reference = coco_metrics(truth, detections, area_scale=scale)
    faster = coco_metrics(truth, detections, area_scale=scale, backend="faster")
    assert reference.keys() == faster.keys() and {"AP_vt", "AP50_vt", "AP_t", "AP_s", "AP_m"} <= set(faster)
    for name, value in reference.items():
        assert faster[name] == pytest.approx(value, abs=1e-4, nan_ok=True), name
    assert np.isfinite(reference["AP_vt"]) and reference["AP"] > 0
    buckets = {"all": (0, float("inf"))}
    evaluator = _evaluator(truth, detections, area_scale=scale, buckets=buckets, backend="faster")
    assert type(evaluator).__module__.startswith("faster_coco_eval")  # really the other library
    with pytest.raises(ValueError, match="backend must be one of"):
        coco_metrics(truth, detections, backend="detectron")


def test_the_same_numbers_on_the_demo_detectors_test_split_scenes(demo_detector, tmp_path):
    """The first 30 scenes of the generated test split, every query of the demo detector kept (as
    `evaluate` does): each metric by faster-coco-eval within 1e-4 of pycocotools'. The whole
    split: benchmarks/bench_coco.py."""
    from sodviz.detector.inference import run_inference
    from sodviz.evaluation.coco import coco_results, load_coco, model_categories
    from sodviz.imageio import load_image

    root = write_dataset(tmp_path, "test", 30)
    truth, category_of = model_categories(load_coco(root / "annotations.json"), demo_detector.class_names)
    detections, scale = [], {}
    for record in truth["images"]:
        result = run_inference(demo_detector, load_image(root / "images" / record["file_name"]), cache=None)
        scale[record["id"]] = result.transform.length_scale
        detections += coco_results(result.boxes_xyxy, result.scores, category_of[result.labels],
                                   image_id=record["id"])  # fmt: skip
    reference = coco_metrics(truth, detections, area_scale=scale)
    faster = coco_metrics(truth, detections, area_scale=scale, backend="faster")
    assert reference["AP50"] > 0.5  # a real detector's numbers, not an empty comparison
    for name, value in reference.items():
        assert faster[name] == pytest.approx(value, abs=1e-4, nan_ok=True), name
