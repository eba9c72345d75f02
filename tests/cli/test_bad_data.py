"""Bad input on the command line: a sentence and exit 2, never a traceback; nothing dropped in silence."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from PIL import Image

from sodviz.cli import main
from sodviz.imageio import save_image


@pytest.fixture
def dataset(tmp_path, image):
    """Two images and three objects, as COCO; returns (folder, coco dict)."""
    (tmp_path / "images").mkdir()
    for name in ("a.png", "b.png"):
        save_image(tmp_path / "images" / name, image)
    coco = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 200, "height": 120},
            {"id": 2, "file_name": "b.png", "width": 200, "height": 120},
        ],
        "categories": [{"id": 0, "name": "vehicle"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 0, "bbox": [40, 30, 50, 30]},
            {"id": 2, "image_id": 1, "category_id": 0, "bbox": [120, 70, 70, 40]},
            {"id": 3, "image_id": 2, "category_id": 0, "bbox": [40, 30, 50, 30]},
        ],
    }
    return tmp_path, coco


def _evaluate(folder, coco, model, capsys) -> tuple[int, str, str]:
    path = folder / "data.json"
    path.write_text(json.dumps(coco))
    code = main(["evaluate", "--model", str(model), "--data", str(path), "--images", str(folder / "images")])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("breaks", "message"),
    [
        (lambda c: c.pop("images"), "'images' is missing or not a list"),
        (lambda c: c.__setitem__("annotations", []), "annotates no objects"),
        (lambda c: [a.__setitem__("bbox", [0, 0, 0, 5]) for a in c["annotations"]], "no usable annotation"),
        (lambda c: c["images"][1].__setitem__("id", 1), "image ids 1 are used by more than one image"),
    ],
)
def test_evaluate_refuses_unusable_annotations_with_a_sentence(
    dataset, tiny_model_dirs, capsys, breaks, message
):
    folder, coco = dataset
    breaks(coco)
    code, out, err = _evaluate(folder, coco, tiny_model_dirs["rt_detr"], capsys)
    assert code == 2 and message in err and "Traceback" not in err and out == ""


@pytest.mark.parametrize(
    ("change", "notice"),
    [
        ({"image_id": 9}, "1 annotation left out (image_id not in 'images'): annotation ids 2; image ids 9."),
        (
            {"bbox": None},
            "1 annotation left out (no bbox of four finite numbers [x, y, w, h]): annotation ids 2.",
        ),
        (
            {"bbox": [120, 70, -70, 40]},
            "1 annotation left out (box width or height not positive): annotation ids 2.",
        ),
        (
            {"category_id": 5},
            "1 annotation left out (category_id not in 'categories'): annotation ids 2; category ids 5.",
        ),
        ({"bbox": [150, 100, 80, 40]}, "1 box clipped to the image (reaching outside it): annotation ids 2."),
    ],
)
def test_evaluate_says_what_it_left_out_or_clipped(dataset, tiny_model_dirs, capsys, change, notice):
    folder, coco = dataset
    coco = copy.deepcopy(coco)
    coco["annotations"][1] |= change
    if change.get("bbox", 0) is None:
        del coco["annotations"][1]["bbox"]
    code, out, err = _evaluate(folder, coco, tiny_model_dirs["rt_detr"], capsys)
    assert code == 0 and "AP metrics" in out
    assert [line for line in err.splitlines() if line.startswith("notice:")] == [f"notice: {notice}"]


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (b"", "empty (0 bytes)"),
        (b"name,score\n", "not a format PIL can open"),
    ],
)
def test_unreadable_images_name_the_file_not_a_buffer(tmp_path, tiny_model_dirs, capsys, contents, message):
    path = tmp_path / "upload.jpg"
    path.write_bytes(contents)
    assert main(["predict", str(path), "--model", str(tiny_model_dirs["rt_detr"])]) == 2
    err = capsys.readouterr().err
    assert message in err and "upload.jpg" in err and "BytesIO" not in err and "0x7f" not in err


def test_a_folder_given_as_the_image_is_called_a_folder(tmp_path, tiny_model_dirs, capsys):
    assert main(["predict", str(tmp_path), "--model", str(tiny_model_dirs["rt_detr"])]) == 2
    assert "is a folder; give an image file inside it" in capsys.readouterr().err


def test_a_missing_relative_model_folder_is_not_blamed_on_the_hub(tmp_path, image, monkeypatch, capsys):
    (tmp_path / "runs" / "other").mkdir(parents=True)
    (tmp_path / "runs" / "other" / "config.json").write_text("{}")
    save_image(tmp_path / "scene.png", image)
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "scene.png", "--model", "runs/demo"]) == 2
    err = capsys.readouterr().err
    assert "model folder 'runs/demo' does not exist" in err and "model folders there: other" in err
    assert "offline" not in err and "hub" not in err


def test_predict_decodes_as_the_app_does_bounded_with_notices_and_boxes_in_file_pixels(
    tmp_path, tiny_model_dirs, image, capsys
):
    """A 8192 px wide grayscale PNG: decoded at 4096 (halved), both notices on stderr, and the
    JSON boxes are the 4096 px detections doubled back into the file's pixels."""
    big = np.repeat(np.repeat(image[..., 0], 41, axis=0), 41, axis=1)[:, :8192]  # (4920, 8192) gray
    Image.fromarray(big).save(tmp_path / "big.png")
    small = tmp_path / "small.png"
    Image.fromarray(big).resize((4096, 2460), Image.LANCZOS).convert("RGB").save(small)
    model = str(tiny_model_dirs["rt_detr"])
    argv = ["--model", model, "--threshold", "0.0", "--out"]
    assert main(["predict", str(tmp_path / "big.png"), *argv, str(tmp_path / "big.json")]) == 0
    err = capsys.readouterr().err
    assert "notice: big.png is 8192x4920 pixels; shown and detected at 4096x2460." in err
    assert "notice: big.png is grayscale" in err
    assert main(["predict", str(small), *argv, str(tmp_path / "small.json")]) == 0
    large = np.array([r["bbox"] for r in json.loads((tmp_path / "big.json").read_text())])
    halved = np.array([r["bbox"] for r in json.loads((tmp_path / "small.json").read_text())])
    assert len(large) == len(halved) > 0
    np.testing.assert_allclose(large, halved * 2, atol=2.0)
