"""A detector scored on a COCO dataset end to end (tiny model, a tiny generated dataset)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sodviz.cli import main
from sodviz.evaluation.dataset import DatasetEvaluation, attention_summary, evaluate_detector
from sodviz.synth.datasets import write_dataset
from sodviz.synth.scenes import SceneConfig


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    return write_dataset(
        tmp_path_factory.mktemp("synth"), "test", 2, config=SceneConfig(min_side=256, max_side=256)
    )


@pytest.mark.parametrize("frame", ["input", "image"])
def test_evaluate_detector_counts_every_ground_truth(tiny_detectors, tiny_dataset, frame):
    report = evaluate_detector(
        tiny_detectors["rt_detr"],
        tiny_dataset / "annotations.json",
        tiny_dataset / "images",
        score_threshold=0.0,
        frame=frame,
    )
    truth = json.loads((tiny_dataset / "annotations.json").read_text())
    assert sum(c["tp"] + c["fn"] for c in report.counts.values()) == len(truth["annotations"])
    assert set(report.metrics) >= {"AP", "AP50", "AP_S", "AP_vt", "AP50_t"}
    assert ((report.attention_in_box >= 0) & (report.attention_in_box <= 1 + 1e-6)).all()
    assert report.attention_in_box.size == sum(c["tp"] for c in report.counts.values())


def test_evaluate_cli_writes_json(tiny_model_dirs, tiny_dataset, tmp_path):
    out = tmp_path / "metrics.json"
    argv = [
        "evaluate",
        "--data",
        str(tiny_dataset / "annotations.json"),
        "--images",
        str(tiny_dataset / "images"),
        "--model",
        str(tiny_model_dirs["detr"]),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    figures = json.loads(out.read_text())
    assert figures["frame"] == "input" and np.isfinite(figures["metrics"]["AP"])
    assert set(figures["attention_in_box_2x"]) <= {"all", "vt", "t", "s", "m"}


def test_attention_shares_carry_their_size_bucket(tiny_detectors, tiny_dataset):
    report = evaluate_detector(
        tiny_detectors["d_fine"],
        tiny_dataset / "annotations.json",
        tiny_dataset / "images",
        score_threshold=0.0,
    )
    assert report.attention_bucket.shape == report.attention_in_box.shape
    counts = {bucket: c["tp"] for bucket, c in report.counts.items()}
    for bucket, matched in counts.items():
        assert int((report.attention_bucket == bucket).sum()) == matched


def test_attention_summary_by_bucket():
    report = DatasetEvaluation(
        metrics={},
        counts={},
        attention_in_box=np.array([0.0, 0.5, 1.0, 0.2, 0.4], np.float32),
        attention_bucket=np.array(["vt", "vt", "vt", "m", "m"]),
        score_threshold=0.3,
        frame="input",
    )
    summary = attention_summary(report)
    assert set(summary) == {"all", "vt", "m"}
    assert summary["vt"]["median"] == pytest.approx(0.5) and summary["vt"]["matched"] == 3
    assert summary["vt"]["p10"] == pytest.approx(0.1)  # linear between 0.0 and 0.5
    assert summary["m"]["median"] == pytest.approx(0.3) and summary["all"]["matched"] == 5


def _samples(tmp_path, *, shift: int = 0, names: dict | None = None, count: int = 2):
    """The first sample scenes as a COCO split, category ids shifted by `shift`, names renamed."""
    from sodviz.samples import SAMPLES_DIR

    coco = json.loads((SAMPLES_DIR / "annotations.json").read_text())
    coco["images"] = coco["images"][:count]
    ids = {image["id"] for image in coco["images"]}
    coco["annotations"] = [
        a | {"category_id": a["category_id"] + shift} for a in coco["annotations"] if a["image_id"] in ids
    ]
    coco["categories"] = [
        c | {"id": c["id"] + shift, "name": (names or {}).get(c["name"], c["name"])}
        for c in coco["categories"]
    ]
    path = tmp_path / f"coco_{shift}.json"
    path.write_text(json.dumps(coco))
    return path, SAMPLES_DIR / "images"


def test_categories_are_matched_to_the_model_by_name_not_by_id(demo_detector, tmp_path):
    """Category ids starting at 1 (or in another order) score as the same data with ids 0..3:
    a detection's class reaches the category of the same name."""
    from sodviz.notices import DataNotice

    same = [evaluate_detector(demo_detector, *_samples(tmp_path, shift=s)).metrics for s in (0, 1, 7)]
    assert same[0]["AP50"] > 0.5
    assert same[1] == pytest.approx(same[0], nan_ok=True) and same[2] == pytest.approx(same[0], nan_ok=True)
    with pytest.warns(DataNotice, match="class-agnostically"):
        renamed = evaluate_detector(demo_detector, *_samples(tmp_path, names={"vehicle": "car"})).metrics
    assert renamed["AP50"] > 0.5  # class-agnostic: still scored, not zero
