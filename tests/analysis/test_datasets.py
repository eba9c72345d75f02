"""Datasets as they come: text image ids, images in sub-folders, images without objects, crowd
regions, a dense-attention model; scored against `evaluate` (pycocotools) on the same files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from sodviz.analysis.job import plan_job, run_job
from sodviz.analysis.queries import Analysis
from sodviz.analysis.settings import AnalysisSettings
from sodviz.evaluation.dataset import evaluate_detector
from sodviz.synth.datasets import write_dataset
from sodviz.synth.scenes import SceneConfig


@pytest.fixture(scope="module")
def odd_dataset(tmp_path_factory):
    """4 scenes: text ids, files under sub/, the last image's objects removed, and a crowd
    region over the left half of the first image (its objects there removed too)."""
    root = tmp_path_factory.mktemp("odd")
    source = write_dataset(root / "synth", "test", 4, config=SceneConfig(min_side=256, max_side=320))
    coco = json.loads((source / "annotations.json").read_text())
    (root / "images" / "sub").mkdir(parents=True)
    ids = {}
    for n, image in enumerate(coco["images"]):
        shutil.copy(source / "images" / image["file_name"], root / "images" / "sub" / image["file_name"])
        ids[image["id"]] = f"scene-{n}"
        image["id"], image["file_name"] = ids[image["id"]], f"sub/{image['file_name']}"
    first, last = coco["images"][0], coco["images"][-1]
    half = first["width"] / 2
    annotations = []
    for a in coco["annotations"]:
        a["image_id"] = ids[a["image_id"]]
        if a["image_id"] == last["id"] or (a["image_id"] == first["id"] and a["bbox"][0] < half):
            continue
        annotations.append(a)
    crowd_id = max(a["id"] for a in annotations) + 1
    crowd = {"id": crowd_id, "image_id": first["id"], "category_id": annotations[0]["category_id"],
             "bbox": [0, 0, half, first["height"]], "iscrowd": 1, "area": half * first["height"]}  # fmt: skip
    annotations.append(crowd)
    coco["annotations"] = annotations
    (root / "annotations.json").write_text(json.dumps(coco))
    return root


def _analyse(detector, data, store, **settings):
    settings = AnalysisSettings(**settings)
    plan = plan_job(
        detector, data / "annotations.json", data / "images", settings, store=store, model_source="x"
    )
    summary = run_job(plan, detector)
    return plan, summary, Analysis(store, [plan.run.run])


def test_odd_datasets_score_as_evaluate(demo_detector, odd_dataset, tmp_path):
    plan, summary, analysis = _analyse(demo_detector, odd_dataset, tmp_path / "store", score_threshold=0.3)
    assert summary.analysed == 4 and not summary.skipped
    report = evaluate_detector(demo_detector, odd_dataset / "annotations.json", odd_dataset / "images")
    stored = analysis.ap(plan.run.run)
    for metric in ("AP", "AP50", "AP_vt", "AP50_t"):
        assert stored[metric] == pytest.approx(report.metrics[metric], abs=1e-9, nan_ok=True), metric
    coco = json.loads((odd_dataset / "annotations.json").read_text())
    first, last = coco["images"][0]["file_name"], coco["images"][-1]["file_name"]
    images = analysis.image_table(plan.run.run, sort="file_name", descending=False)
    assert sorted(images["file_name"]) == sorted(i["file_name"] for i in coco["images"])  # the empty one too
    assert images.set_index("file_name").loc[last, "objects"] == 0
    assert set(images["image_id"]) == {f"scene-{n}" for n in range(4)}
    detections = analysis.frame("SELECT * FROM detections WHERE method = 'base' AND file_name = ?", [first])
    on_crowd = detections[(detections["x0"] + detections["x1"]) / 2 < coco["images"][0]["width"] / 2 - 8]
    crowd = next(a for a in coco["annotations"] if a.get("iscrowd"))
    name = next(c["name"] for c in coco["categories"] if c["id"] == crowd["category_id"])
    kept = on_crowd[(on_crowd["score"] >= 0.3) & (on_crowd["class_name"] == name)]  # crowds are per class
    assert len(kept) and set(kept["status"]) <= {"TP", "ignored"} and "ignored" in set(kept["status"])
    objects = analysis.frame("SELECT * FROM objects")
    assert len(objects) == sum(1 for a in coco["annotations"] if not a.get("iscrowd"))


def test_a_dense_model_has_no_sampling_points(tiny_detectors, odd_dataset, tmp_path):
    _, summary, analysis = _analyse(
        tiny_detectors["detr"], odd_dataset, tmp_path / "store", score_threshold=0.05, methods=("vicrop",),
        budgets=(2,),
    )  # fmt: skip
    assert summary.analysed == 4
    objects = analysis.frame("SELECT * FROM objects")
    assert objects["points_share"].isna().all()
    assert (
        objects["attention_share"].between(0, 1).all()
        and objects["nearest_attention_share"].between(0, 1).all()
    )
    assert np.isfinite(objects["nearest_entropy"]).all()
