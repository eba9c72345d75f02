"""The analysis job end to end: rows against the reference scorers, reruns, added images,
cancel, bad files and annotations, and readers while a job writes."""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pandas as pd
import pytest

from sodviz.analysis.job import plan_job, run_job
from sodviz.analysis.queries import Analysis
from sodviz.analysis.settings import AnalysisSettings
from sodviz.analysis.store import TABLES, connect
from sodviz.cli import main
from sodviz.crops.budget_study import run_benchmark
from sodviz.crops.vicrop import ViCropConfig
from sodviz.evaluation.dataset import evaluate_detector
from sodviz.synth.datasets import write_dataset
from sodviz.synth.scenes import SceneConfig

SETTINGS = AnalysisSettings(score_threshold=0.3, methods=("vicrop", "slicing"), budgets=(3,))
VOLATILE = ("seconds", "batch")  # wall time, and the batch folder a row was written in


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(
        tmp_path_factory.mktemp("synth"), "test", 5, config=SceneConfig(min_side=256, max_side=320)
    )


def _copy(dataset, tmp_path):
    shutil.copytree(dataset, tmp_path / "data")
    return tmp_path / "data"


def _job(detector, data, store, settings=SETTINGS, **run):
    plan = plan_job(
        detector, data / "annotations.json", data / "images", settings, store=store, model_source="demo"
    )
    return plan, run_job(plan, detector, **run)


def tables(store, run) -> dict[str, pd.DataFrame]:
    """Every table of a run, volatile columns dropped, rows in a fixed order."""
    con = connect(store, [run])
    out = {}
    for table in TABLES:
        frame = con.execute(f'SELECT * FROM "{table}"').df().drop(columns=["run", *VOLATILE], errors="ignore")
        keys = frame.apply(lambda c: c.round(3) if c.dtype.kind == "f" else c.astype(str))
        out[table] = frame.loc[keys.sort_values(list(keys.columns)).index].reset_index(drop=True)
    return out


def assert_same_rows(a: dict, b: dict) -> None:
    for table in TABLES:
        left, right = a[table], b[table]
        assert list(left.columns) == list(right.columns) and len(left) == len(right), table
        for column in left.columns:
            if left[column].dtype.kind == "f":
                np.testing.assert_allclose(left[column], right[column], rtol=1e-4, atol=1e-5, err_msg=column)
            else:
                assert left[column].astype(str).tolist() == right[column].astype(str).tolist(), (
                    table,
                    column,
                )


def test_stored_rows_score_as_evaluate_and_benchmark(demo_detector, dataset, tmp_path):
    """AP and recall from the store equal `evaluate`'s and `benchmark`'s on the same images
    (pycocotools both ways), for the full image and for each refinement."""
    plan, summary = _job(demo_detector, dataset, tmp_path / "store")
    assert summary.analysed == 5 and not summary.skipped
    analysis = Analysis(tmp_path / "store", [plan.run.run])
    report = evaluate_detector(
        demo_detector, dataset / "annotations.json", dataset / "images", score_threshold=0.3
    )
    stored = analysis.ap(plan.run.run)
    for metric in ("AP", "AP50", "AP_vt", "AP50_vt", "AP_t"):
        assert stored[metric] == pytest.approx(report.metrics[metric], abs=1e-9, nan_ok=True), metric
    summary_table = analysis.bucket_summary(plan.run.run).set_index("bucket")
    for bucket, counts in report.counts.items():
        assert summary_table.loc[bucket, "found"] == counts["tp"]
        assert summary_table.loc[bucket, "objects"] == counts["tp"] + counts["fn"]
    rows = run_benchmark(
        demo_detector, dataset / "annotations.json", dataset / "images", methods=("vicrop", "slicing"),
        budgets=(3,), vicrop=ViCropConfig(),
    )  # fmt: skip
    for row in rows:
        method = "base" if row["method"] == "base" else f"{row['method']}@{row['budget']}"
        assert analysis.ap(plan.run.run, method)["AP50"] == pytest.approx(row["AP50"], abs=1e-9), method
        passes = analysis.frame("SELECT avg(passes) FROM methods WHERE method = ?", [method]).iloc[0, 0]
        assert passes == pytest.approx(row["forward_passes"]), method


def test_every_object_and_miss_is_described(demo_detector, dataset, tmp_path):
    plan, _ = _job(demo_detector, dataset, tmp_path / "store")
    rows = tables(tmp_path / "store", plan.run.run)
    objects = rows["objects"]
    truth = json.loads((dataset / "annotations.json").read_text())
    assert len(objects) == len(truth["annotations"])
    assert set(objects.loc[objects["matched"], "error"]) == {""}
    assert set(objects.loc[~objects["matched"], "error"]) <= {
        "classification",
        "score",
        "localisation",
        "never attended",
    }
    assert not (objects.loc[~objects["matched"], "error"] == "").any()
    shares = objects[["attention_share", "points_share", "nearest_attention_share"]]
    assert ((shares >= 0) & (shares <= 1 + 1e-6)).all().all()  # the demo is deformable: no NaN
    recovered = objects[objects["found_after"].map(lambda m: "vicrop@3" in m) & ~objects["matched"]]
    assert len(recovered) > 0  # ViCrop-Det recovers some misses of the demo on these scenes
    detections = rows["detections"]
    kept = detections[detections["score"] >= 0.3]
    assert set(kept["status"]) <= {"TP", "FP"} and set(
        detections.loc[detections["score"] < 0.3, "status"]
    ) == {"below"}
    assert set(kept.loc[kept["status"] == "FP", "fp_type"]) <= {
        "duplicate",
        "classification",
        "localisation",
        "background",
    }
    base = detections[detections["method"] == "base"]
    assert (base["query"] >= 0).all() and base["entropy"].between(0, 1).all()


def test_rerun_is_free_and_added_images_are_the_only_work(demo_detector, dataset, tmp_path):
    data = _copy(dataset, tmp_path)
    full = json.loads((data / "annotations.json").read_text())
    first = full | {"images": full["images"][:3]}
    first["annotations"] = [
        a for a in full["annotations"] if a["image_id"] in {i["id"] for i in first["images"]}
    ]
    (data / "annotations.json").write_text(json.dumps(first))
    plan, summary = _job(demo_detector, data, tmp_path / "store")
    assert (summary.analysed, summary.reused) == (3, 0)
    plan, summary = _job(demo_detector, data, tmp_path / "store")
    assert (summary.analysed, summary.reused) == (0, 3) and not plan.todo
    (data / "annotations.json").write_text(json.dumps(full))
    plan, summary = _job(demo_detector, data, tmp_path / "store")
    assert (summary.analysed, summary.reused) == (2, 3)
    assert Analysis(tmp_path / "store", [plan.run.run]).progress(plan.run.run) == (5, 5)
    other = AnalysisSettings(score_threshold=0.5)
    plan_other, summary = _job(demo_detector, data, tmp_path / "store", settings=other)
    assert plan_other.run.run != plan.run.run and summary.analysed == 5  # new settings, new run


def test_changed_annotations_recompute_that_image_only(demo_detector, dataset, tmp_path):
    data = _copy(dataset, tmp_path)
    _job(demo_detector, data, tmp_path / "store")
    coco = json.loads((data / "annotations.json").read_text())
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != coco["images"][0]["id"]]
    (data / "annotations.json").write_text(json.dumps(coco))
    plan, summary = _job(demo_detector, data, tmp_path / "store")
    assert summary.analysed == 1
    objects = tables(tmp_path / "store", plan.run.run)["objects"]
    assert coco["images"][0]["file_name"] not in set(objects["file_name"])  # the old rows are superseded
    assert len(objects) == len(coco["annotations"])


def test_cancel_keeps_finished_batches_and_the_rerun_completes_them(demo_detector, dataset, tmp_path):
    cancel = threading.Event()
    plan, summary = _job(
        demo_detector, dataset, tmp_path / "store", batch_images=2, cancel=cancel,
        on_progress=lambda done, total: cancel.set(),
    )  # fmt: skip
    assert summary.cancelled and summary.analysed == 2 and len(plan.run.batches()) == 1
    plan, summary = _job(demo_detector, dataset, tmp_path / "store", batch_images=2)
    assert (summary.analysed, summary.reused) == (3, 2)
    _, _ = _job(demo_detector, dataset, tmp_path / "whole")
    assert_same_rows(tables(tmp_path / "store", plan.run.run), tables(tmp_path / "whole", plan.run.run))


def test_missing_and_unreadable_images_are_listed_and_skipped(demo_detector, dataset, tmp_path, capsys):
    data = _copy(dataset, tmp_path)
    names = [i["file_name"] for i in json.loads((data / "annotations.json").read_text())["images"]]
    (data / "images" / names[0]).unlink()
    (data / "images" / names[1]).write_bytes(b"not an image")
    code = main(["analyze", "--data", str(data / "annotations.json"), "--images", str(data / "images"),
                 "--store", str(tmp_path / "store")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "3 images analysed" in out and "2 skipped" in out
    assert f"skipped {names[0]}: missing" in out and f"skipped {names[1]}: unreadable" in out
    plan, _ = _job(demo_detector, data, tmp_path / "store")
    analysis = Analysis(tmp_path / "store", [plan.run.run])
    assert sorted(analysis.frame("SELECT file_name FROM skipped")["file_name"]) == sorted(names[:2])
    assert analysis.progress(plan.run.run) == (3, 5)


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "is not valid JSON"), (json.dumps({"images": []}), "annotations")],
)
def test_invalid_annotations_get_the_validators_sentence(tmp_path, dataset, content, message, capsys):
    (tmp_path / "bad.json").write_text(content)
    code = main(["analyze", "--data", str(tmp_path / "bad.json"), "--images", str(dataset / "images"),
                 "--store", str(tmp_path / "store")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "store").exists()


def test_two_readers_while_a_job_writes(demo_detector, dataset, tmp_path):
    store = tmp_path / "store"
    plan = plan_job(demo_detector, dataset / "annotations.json", dataset / "images", SETTINGS, store=store,
                    model_source="demo")  # fmt: skip
    writer = threading.Thread(target=run_job, args=(plan, demo_detector), kwargs={"batch_images": 1})
    readers = [Analysis(store, [plan.run.run]) for _ in range(2)]
    seen = [[], []]
    writer.start()
    while writer.is_alive():
        for reader, counts in zip(readers, seen, strict=True):
            reader.refresh()
            done, _ = reader.progress(plan.run.run)
            objects = reader.frame("SELECT count(*) AS n FROM objects")["n"][0]
            images = reader.frame("SELECT coalesce(sum(objects), 0) AS n FROM images")["n"][0]
            assert objects == images  # whole batches only: every image with all its objects
            counts.append(done)
    writer.join()
    for reader, counts in zip(readers, seen, strict=True):
        reader.refresh()
        counts.append(reader.progress(plan.run.run)[0])
        assert counts == sorted(counts) and counts[-1] == 5
        assert any(0 < n < 5 for n in counts), counts  # it read while the job was half way


def test_attention_shares_are_taken_inside_twice_the_box(demo_detector, dataset, tmp_path):
    """The stored image-level share against a brute-force sum of the attention grid, each cell
    cut into parts of half an input pixel, over a box twice the object's size."""
    from sodviz.attention.maps import image_attention
    from sodviz.detector.inference import run_inference
    from sodviz.imageio import load_image

    plan, _ = _job(demo_detector, dataset, tmp_path / "store", settings=AnalysisSettings())
    objects = tables(tmp_path / "store", plan.run.run)["objects"]
    first = objects[objects["file_name"] == objects["file_name"].iloc[0]].head(20)
    result = run_inference(
        demo_detector, load_image(dataset / "images" / first["file_name"].iloc[0]), cache=None
    )
    heat = image_attention(result, mode="all").astype(np.float64)
    input_h, input_w = result.transform.input_hw
    parts = int(np.ceil(2 * input_w / heat.shape[1]))
    fine = np.kron(heat, np.ones((parts, parts)))
    ys = (np.arange(fine.shape[0]) + 0.5) * input_h / fine.shape[0]
    xs = (np.arange(fine.shape[1]) + 0.5) * input_w / fine.shape[1]
    for row in first.itertuples():
        cx, cy, w, h = (row.x0 + row.x1) / 2, (row.y0 + row.y1) / 2, row.x1 - row.x0, row.y1 - row.y0
        box = result.transform.image_to_input(np.array([cx - w, cy - h, cx + w, cy + h]))
        inside = ((ys >= box[1]) & (ys <= box[3]))[:, None] & ((xs >= box[0]) & (xs <= box[2]))[None, :]
        assert row.attention_share == pytest.approx(fine[inside].sum() / fine.sum(), rel=0.15, abs=1e-6)
