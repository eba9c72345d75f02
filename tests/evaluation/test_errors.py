"""TP / FP / FN, precision, recall and F1 tables of a base vs a module detector (FINE Table 5)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from conftest import build_tiny_model
from sodviz.cli import main
from sodviz.evaluation.dataset import DatasetEvaluation
from sodviz.evaluation.error_table import compare_errors, error_rows
from sodviz.modules import FineConfig, ModulesConfig, attach_modules
from sodviz.synth.datasets import write_dataset
from sodviz.synth.scenes import SceneConfig
from sodviz.training.loop import export
from sodviz.training.recipe import TrainConfig

COUNTS = {
    "vt": {"tp": 6, "fp": 2, "fn": 4},  # precision 0.75, recall 0.6, F1 12/(12+6) = 2/3
    "t": {"tp": 0, "fp": 0, "fn": 3},  # nothing detected: precision undefined, recall 0
    "s": {"tp": 0, "fp": 0, "fn": 0},  # the empty bucket: all undefined
    "m": {"tp": 1, "fp": 1, "fn": 0},
}


def test_error_rows_by_hand():
    rows = {r["bucket"]: r for r in error_rows("base", COUNTS)}
    assert rows["vt"]["precision"] == pytest.approx(0.75) and rows["vt"]["recall"] == pytest.approx(0.6)
    assert rows["vt"]["f1"] == pytest.approx(2 / 3)
    assert math.isnan(rows["t"]["precision"]) and rows["t"]["recall"] == 0 and rows["t"]["f1"] == 0
    assert all(math.isnan(rows["s"][k]) for k in ("precision", "recall", "f1"))
    assert (rows["all"]["tp"], rows["all"]["fp"], rows["all"]["fn"]) == (7, 3, 7)


def _report(counts, threshold=0.3):
    empty = np.zeros(0, np.float32)
    return DatasetEvaluation(
        metrics={},
        counts=counts,
        attention_in_box=empty,
        attention_bucket=empty.astype(str),
        score_threshold=threshold,
        frame="input",
    )


def test_compare_errors_adds_the_change_from_base():
    better = {k: dict(v) for k, v in COUNTS.items()} | {"t": {"tp": 2, "fp": 1, "fn": 1}}
    rows = compare_errors({"base": _report(COUNTS), "+all": _report(better)})
    change = {r["bucket"]: r for r in rows if r["model"] == "+all - base"}
    assert (change["t"]["tp"], change["t"]["fp"], change["t"]["fn"]) == (2, 1, -2)
    assert change["all"]["recall"] == pytest.approx(9 / 14 - 7 / 14)  # objects are the same: 14
    assert len(rows) == 3 * 5  # base, +all and the change, 4 buckets + all each


def test_compare_errors_refuses_mixed_thresholds_and_nothing():
    with pytest.raises(ValueError, match="thresholds"):
        compare_errors({"a": _report(COUNTS, 0.3), "b": _report(COUNTS, 0.5)})
    with pytest.raises(ValueError, match="at least one"):
        compare_errors({})


def test_errors_cli_compares_base_and_module_models(tmp_path, tiny_model_dirs):
    data = write_dataset(tmp_path / "synth", "test", 2, config=SceneConfig(min_side=256, max_side=256))
    torch.manual_seed(0)
    model = attach_modules(build_tiny_model("rt_detr").eval(), ModulesConfig(cctm=True, fine=FineConfig()))
    folder = export(model, tmp_path / "fused", config=TrainConfig(input_size=128), log=[])
    out = tmp_path / "errors"
    code = main(["errors", "--data", str(data / "annotations.json"), "--images", str(data / "images"),
                 "--model", str(folder), "--base", str(tiny_model_dirs["rt_detr"]), "--threshold", "0",
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    with open(out / "errors.csv") as file:
        rows = list(csv.DictReader(file))
    assert {r["model"] for r in rows} == {"base", "modules", "modules - base"}
    objects = len(json.loads((data / "annotations.json").read_text())["annotations"])
    for name in ("base", "modules"):
        total = next(r for r in rows if r["model"] == name and r["bucket"] == "all")
        assert int(total["tp"]) + int(total["fn"]) == objects
    assert (out / "errors.md").read_text().startswith("| model | bucket |")
