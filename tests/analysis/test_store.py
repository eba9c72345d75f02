"""The store on its own: a batch appears whole or not at all, reruns see what is done."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sodviz.analysis import store as store_module
from sodviz.analysis.store import RunStore, connect, image_key

IMAGE = {"image_key": "k1", "image_id": "1", "file_name": "a.jpg", "width": 10, "height": 10,
         "length_scale": 1.0, "objects": 1, "gate_refine": True, "uncertain_queries": 0,
         "seconds": 0.1}  # fmt: skip
OBJECT = {"image_key": "k1", "image_id": "1", "file_name": "a.jpg", "annotation_id": 7, "category": "car",
          "x0": 0.0, "y0": 0.0, "x1": 2.0, "y1": 2.0, "size_image": 2.0, "size_input": 2.0, "bucket": "vt",
          "matched": False, "error": "score", "nearest_query": 3, "nearest_iou": 0.6, "nearest_score": 0.1,
          "nearest_class": "car", "nearest_entropy": 0.5, "attention_share": 0.1, "points_share": 0.2,
          "nearest_attention_share": 0.3, "found_after": ["vicrop@3"]}  # fmt: skip


def _run(tmp_path) -> RunStore:
    run = RunStore(tmp_path, "r1")
    run.create({"model": "m"}, [("k1", "a.jpg")])
    return run


def test_a_batch_that_fails_half_way_leaves_nothing_behind(tmp_path, monkeypatch):
    run = _run(tmp_path)
    real = pq.write_table
    written = []

    def fail_on_the_third(table, path, *args, **kwargs):
        written.append(path)
        if len(written) == 3:
            raise OSError("disk full")
        return real(table, path, *args, **kwargs)

    monkeypatch.setattr(store_module.pq, "write_table", fail_on_the_third)
    with pytest.raises(OSError, match="disk full"):
        run.write_batch({"images": [IMAGE], "objects": [OBJECT]})
    assert run.batches() == [] and run.done_keys() == set()
    assert sorted(p.name for p in run.root.iterdir()) == ["manifest.parquet", "run.json"]
    assert connect(tmp_path, ["r1"]).execute("SELECT count(*) FROM objects").fetchone()[0] == 0


def test_a_process_killed_while_writing_a_batch_leaves_no_batch(tmp_path):
    """The process dies (no cleanup can run) after writing two of a batch's files."""
    _run(tmp_path)
    script = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from sodviz.analysis import store
real, written = pq.write_table, []
def dying(table, path, *args, **kwargs):
    written.append(path)
    if len(written) == 3:
        os._exit(9)
    real(table, path, *args, **kwargs)
store.pq.write_table = dying
store.RunStore({str(tmp_path)!r}, "r1").write_batch({{"images": [{IMAGE!r}], "objects": [{OBJECT!r}]}})
"""
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    run = RunStore(tmp_path, "r1")
    assert run.batches() == [] and run.done_keys() == set()  # the half-written folder is hidden
    assert connect(tmp_path, ["r1"]).execute("SELECT count(*) FROM images").fetchone()[0] == 0
    run.write_batch({"images": [IMAGE], "objects": [OBJECT]})  # the rerun writes it whole
    assert run.done_keys() == {"k1"}


def test_a_finished_batch_is_read_back_whole(tmp_path):
    run = _run(tmp_path)
    run.write_batch({"images": [IMAGE], "objects": [OBJECT]})
    assert run.done_keys() == {"k1"}
    con = connect(tmp_path, ["r1"])
    row = con.execute("SELECT annotation_id, error, found_after, batch FROM objects").fetchone()
    assert row[:3] == (7, "score", ["vicrop@3"]) and row[3] == run.batches()[0].name


def test_rows_of_images_no_longer_listed_are_not_read(tmp_path):
    run = _run(tmp_path)
    run.write_batch({"images": [IMAGE], "objects": [OBJECT]})
    run.create({"model": "m"}, [("k2", "b.jpg")])  # the dataset changed: a.jpg is gone
    assert connect(tmp_path, ["r1"]).execute("SELECT count(*) FROM images").fetchone()[0] == 0


def test_image_keys_change_with_the_bytes_or_the_annotations():
    assert image_key(b"x", [1]) == image_key(b"x", [1])
    assert len({image_key(b"x", [1]), image_key(b"y", [1]), image_key(b"x", [2])}) == 3


def test_a_store_under_a_batch_named_folder_reads_each_rows_own_batch(tmp_path):
    root = tmp_path / "batch-2024" / "store"
    run = RunStore(root, "r1")
    run.create({"model": "m"}, [("k1", "a.jpg")])
    run.write_batch({"images": [IMAGE], "objects": [OBJECT]})
    run.write_batch({"images": [IMAGE], "objects": [OBJECT]})  # the same image again: the newest wins
    con = connect(root, ["r1"])
    assert con.execute("SELECT count(*) FROM objects").fetchone()[0] == 1
    assert con.execute("SELECT batch FROM images").fetchone()[0] == run.batches()[-1].name
