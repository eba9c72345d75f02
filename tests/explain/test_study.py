"""The `explain` study: objects drawn per size bucket, explained through the detection that
found them (or their nearest query), and the per-bucket means with intervals."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from sodviz.boxes import box_size, overlap_matrix
from sodviz.cli import main
from sodviz.detector.inference import run_inference
from sodviz.evaluation.buckets import AITOD_BUCKETS, size_bucket
from sodviz.evaluation.coco import load_coco
from sodviz.evaluation.ground_truth import ground_truth_from_coco
from sodviz.explain.study import most_faithful, sample_objects, score_objects, study_rows
from sodviz.imageio import load_image
from sodviz.synth.datasets import write_dataset
from sodviz.synth.scenes import SceneConfig


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(
        tmp_path_factory.mktemp("synth"), "test", 3, config=SceneConfig(min_side=256, max_side=320)
    )


def test_objects_are_drawn_per_bucket_and_explained_through_what_found_them(demo_detector, dataset):
    coco = load_coco(dataset / "annotations.json")
    objects = sample_objects(demo_detector, dataset / "annotations.json", dataset / "images", per_bucket=2)
    counts = {bucket: sum(o.bucket == bucket for o in objects) for bucket in AITOD_BUCKETS}
    assert all(count <= 2 for count in counts.values()) and sum(counts.values()) == len(objects) > 0
    again = sample_objects(demo_detector, dataset / "annotations.json", dataset / "images", per_bucket=2)
    assert [(o.file_name, o.object_index) for o in objects] == [(o.file_name, o.object_index) for o in again]
    by_name = {record["file_name"]: record for record in coco["images"]}
    kinds = set()
    for item in objects:
        record = by_name[item.file_name]
        image = load_image(dataset / "images" / item.file_name)
        box = ground_truth_from_coco(coco, image_id=record["id"]).boxes_xyxy[item.object_index].astype(float)
        result = run_inference(demo_detector, image, cache=None)
        size = box_size(box[None])[0] * result.transform.length_scale
        assert item.size == pytest.approx(size) and item.bucket == size_bucket(size, AITOD_BUCKETS)[0]
        if item.target.missed:  # followed at the object's own box, through its nearest query
            np.testing.assert_allclose(item.target.box_xyxy, box)
            iou = overlap_matrix(box[None], result.boxes_xyxy.astype(float))[0]
            assert item.target.query_index == int(iou.argmax())
        else:  # through the detection that matched it: its query, above the threshold, IoU >= 0.5
            query = item.target.query_index
            assert result.scores[query] >= 0.3
            assert overlap_matrix(box[None], result.boxes_xyxy[query][None].astype(float))[0, 0] >= 0.5
        kinds.add(item.target.missed)
    assert kinds == {True, False}, "the demo detector finds some of these objects and misses others"


def _rows(method, bucket, values, missed=False):
    return [
        {
            "file_name": bucket,
            "object": i,
            "method": method,
            "bucket": bucket,
            "missed": missed,
            "deletion_auc": v,
            "insertion_auc": 1 - v,
            "pointing": float(v < 0.5),
            "energy": v,
        }
        for i, v in enumerate(values)
    ]


def test_study_rows_give_means_with_intervals_and_an_honest_winner():
    rows = _rows("odam", "vt", [0.1, 0.2, 0.1, 0.2, 0.15, 0.15]) + _rows(
        "random", "vt", [0.8, 0.9, 0.7, 0.8, 0.8, 0.8]
    )
    spread = [0.1, 0.9, 0.5, 0.2, 0.8, 0.4]
    rows += _rows("odam", "t", spread, missed=True) + _rows("random", "t", [0.5] * 6)
    # paired: "near" is odam plus 0.01 on every object, a small but certain difference
    rows += _rows("near", "t", [v + 0.01 for v in spread])
    summary = study_rows(rows)
    first = next(r for r in summary if r["bucket"] == "vt" and r["method"] == "odam")
    assert first["objects"] == 6 and first["deletion_auc"] == pytest.approx(0.15)
    assert first["deletion_auc_low"] <= 0.15 <= first["deletion_auc_high"] < 0.2
    overall = next(r for r in summary if r["bucket"] == "all" and r["method"] == "odam")
    assert overall["objects"] == 12 and overall["missed"] == 6
    assert overall["deletion_auc"] == pytest.approx(np.mean([0.1, 0.2, 0.1, 0.2, 0.15, 0.15, *spread]))
    verdicts = {(v["bucket"], v["metric"]): v for v in most_faithful(rows)}
    assert (
        verdicts["vt", "deletion_auc"]["best"] == "odam"
        and verdicts["vt", "deletion_auc"]["interval"] == "clear"
    )
    assert verdicts["vt", "insertion_auc"]["best"] == "odam"
    t = verdicts[
        "t", "deletion_auc"
    ]  # odam beats near on every object, but random's 0.5 is no worse on average
    assert t["best"] == "odam" and t["interval"] == "overlaps"
    without_random = [r for r in rows if r["method"] != "random"]
    t = {(v["bucket"], v["metric"]): v for v in most_faithful(without_random)}["t", "deletion_auc"]
    assert t["best"] == "odam" and t["interval"] == "clear", "paired: a certain 0.01 is a clear win"
    assert all(v["interval"] == "too few" for v in most_faithful(rows[:2] + rows[6:8]))


def test_explain_command_writes_the_table_the_objects_and_the_figure(tiny_model_dirs, dataset, tmp_path):
    out = tmp_path / "study"
    code = main([
        "explain", "--data", str(dataset / "annotations.json"), "--images", str(dataset / "images"),
        "--model", str(tiny_model_dirs["rt_detr"]), "--methods", "attention,drise,random",
        "--per-bucket", "1", "--masks", "4", "--steps", "2", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    with open(out / "explain.csv") as summary_file, open(out / "objects.csv") as objects_file:
        summary, objects = list(csv.DictReader(summary_file)), list(csv.DictReader(objects_file))
    assert {r["method"] for r in summary} == {"attention", "drise", "random"}
    assert len(objects) == 3 * sum(r["method"] == "attention" and r["bucket"] != "all" for r in summary)
    assert "Most faithful per bucket" in (out / "explain.md").read_text()
    assert (out / "explain.html").stat().st_size > 0


def test_explain_command_refuses_a_method_the_family_lacks(tiny_model_dirs, dataset, tmp_path, capsys):
    code = main([
        "explain", "--data", str(dataset / "annotations.json"), "--images", str(dataset / "images"),
        "--model", str(tiny_model_dirs["rt_detr"]), "--methods", "relevance", "--per-bucket", "1",
        "--out", str(tmp_path),
    ])  # fmt: skip
    assert code == 2 and "relevance" in capsys.readouterr().err


def test_scored_objects_follow_the_methods_asked_for(tiny_detectors, dataset):
    detector = tiny_detectors["detr"]
    objects = sample_objects(detector, dataset / "annotations.json", dataset / "images", per_bucket=1)[:1]
    rows = score_objects(detector, objects, dataset / "images", methods=("relevance", "random"), steps=2)
    assert [r["method"] for r in rows] == ["relevance", "random"]
    assert all(0 <= r["energy"] <= 1 and r["pointing"] in (0.0, 1.0) for r in rows)
