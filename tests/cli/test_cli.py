"""`python -m sodviz`: predict writes COCO-style JSON and PNGs; models lists families."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sodviz.attention.maps import query_attention_entropy
from sodviz.cli import build_parser, main, train_config
from sodviz.detector.families import FAMILIES
from sodviz.detector.inference import run_inference, to_detections
from sodviz.detector.loading import load_detector
from sodviz.imageio import load_image, save_image


@pytest.mark.parametrize("model_type", ["rt_detr", "detr"])
def test_predict_writes_json_overlay_and_attention(tiny_model_dirs, image, tmp_path, model_type):
    image_path = tmp_path / "scene.png"
    save_image(image_path, image)
    out, overlay, attention = tmp_path / "result.json", tmp_path / "overlay.png", tmp_path / "attention.png"
    argv = ["predict", str(image_path), "--model", str(tiny_model_dirs[model_type]), "--threshold", "0.2"]
    argv += ["--out", str(out), "--overlay", str(overlay), "--attention", str(attention), "--image-id", "7"]
    assert main(argv) == 0

    records = json.loads(out.read_text())
    result = run_inference(load_detector(tiny_model_dirs[model_type]), image, cache=None)
    detections = to_detections(result, score_threshold=0.2)
    entropy = query_attention_entropy(result)
    assert len(records) == len(detections) > 0
    for record, box, query in zip(records, detections.xyxy, detections.data["query_index"], strict=True):
        assert record["image_id"] == 7 and record["query_index"] == query
        np.testing.assert_allclose(
            record["bbox"], [box[0], box[1], box[2] - box[0], box[3] - box[1]], atol=0.02
        )
        assert record["score"] >= 0.2
        assert record["attention_entropy"] == pytest.approx(float(entropy[query]), abs=1e-4)
        assert record["category_name"] == result.class_names[record["category_id"]]
    for png in (overlay, attention):
        drawn = load_image(png)
        assert drawn.shape == image.shape and not np.array_equal(drawn, image)


def test_predict_with_a_missing_model_fails_cleanly(image, tmp_path, capsys):
    image_path = tmp_path / "scene.png"
    save_image(image_path, image)
    assert main(["predict", str(image_path), "--model", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_predict_with_a_non_image_fails_cleanly(tiny_model_dirs, tmp_path, capsys):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    assert main(["predict", str(not_an_image), "--model", str(tiny_model_dirs["rt_detr"])]) == 2
    assert "not a readable image" in capsys.readouterr().err


def test_models_lists_families_and_presets():
    output = subprocess.run(
        [sys.executable, "-m", "sodviz", "models"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    for family in FAMILIES.values():
        assert family.name in output and family.model_type in output
    assert "PekingU/rtdetr_r18vd" in output and "demo" in output


def test_train_command_defaults_are_the_demo_recipe():
    from sodviz.training.recipe import TrainConfig

    assert train_config(build_parser().parse_args(["train"])) == TrainConfig()
    changed = train_config(build_parser().parse_args(["train", "--steps", "7", "--workers", "0"]))
    assert (changed.steps, changed.workers) == (7, 0)


def test_predict_says_what_the_input_does_and_can_letterbox(tiny_model_dirs, image, tmp_path, capsys):
    image_path = tmp_path / "wide.png"
    save_image(image_path, image)  # 200x120
    model = str(tiny_model_dirs["rt_detr"])
    assert main(["predict", str(image_path), "--model", model, "--out", str(tmp_path / "a.json")]) == 0
    assert "squashed, objects shrink" in capsys.readouterr().err
    argv = ["predict", str(image_path), "--model", model, "--letterbox", "--out", str(tmp_path / "b.json")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "aspect kept" in err and "squashed" not in err
