"""Every supported family end to end, as a user runs it: a tiny random model saved with
`save_pretrained` through `predict`, `evaluate` and every page of the app (AppTest)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from pages import _keys as keys
from pages import _loaders as loaders
from sodviz.cli import main
from sodviz.detector.families import FAMILIES
from sodviz.detector.prompt import class_key, map_phrases
from sodviz.imageio import save_image
from sodviz.synth.datasets import write_dataset
from sodviz.synth.scenes import SceneConfig

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["pages/detections.py", "pages/attention.py", "pages/vicrop.py", "pages/erf.py",
         "pages/candidates.py", "pages/fusion_maps.py"]  # fmt: skip
NEW_FAMILIES = ["deimv2", "lw_detr", "rf_detr", "grounding-dino", "mm-grounding-dino"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return write_dataset(
        tmp_path_factory.mktemp("synth"), "test", 2, config=SceneConfig(min_side=192, max_side=256)
    )


def _evaluate(model: Path, scenes: Path, out: Path, *extra: str) -> int:
    argv = ["evaluate", "--data", str(scenes / "annotations.json"), "--images", str(scenes / "images")]
    return main([*argv, "--model", str(model), "--out", str(out), "--threshold", "0.0", *extra])


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_predict_and_evaluate(tiny_model_dirs, scenes, image, tmp_path, model_type):
    image_path = tmp_path / "scene.png"
    save_image(image_path, image)
    out = tmp_path / "detections.json"
    assert main(["predict", str(image_path), "--model", str(tiny_model_dirs[model_type]), "--threshold", "0",
                 "--out", str(out)]) == 0  # fmt: skip
    records = json.loads(out.read_text())
    assert len(records) == 20 and {r["category_name"] for r in records} <= {"vehicle", "person", "boat"}
    metrics = tmp_path / "metrics.json"
    assert _evaluate(tiny_model_dirs[model_type], scenes, metrics) == 0
    assert np.isfinite(json.loads(metrics.read_text())["metrics"]["AP50"])


@pytest.mark.parametrize("model_type", ["grounding-dino", "mm-grounding-dino"])
def test_evaluate_maps_prompt_phrases_to_the_data_and_says_what_it_could_not(
    tiny_model_dirs, scenes, tmp_path, capsys, model_type
):
    metrics = tmp_path / "metrics.json"
    prompt = "vehicles. people. a boat. kites."
    assert _evaluate(tiny_model_dirs[model_type], scenes, metrics, "--prompt", prompt) == 0
    err = capsys.readouterr().err
    assert "'vehicles' -> 'vehicle'" in err and "'people' -> 'person'" in err and "'a boat' -> 'boat'" in err
    assert "kites name no category" in err and "names the categories truck" in err
    assert _evaluate(tiny_model_dirs[model_type], scenes, metrics) == 0  # no prompt: the data's categories
    err = capsys.readouterr().err
    assert all(f"'{name}'" in err for name in ("boat", "person", "truck", "vehicle")) and "->" not in err, err


def test_a_prompt_for_a_closed_set_model_is_a_sentence(tiny_model_dirs, image, tmp_path, capsys):
    image_path = tmp_path / "scene.png"
    save_image(image_path, image)
    assert (
        main(["predict", str(image_path), "--model", str(tiny_model_dirs["rt_detr"]), "--prompt", "car."])
        == 2
    )
    err = capsys.readouterr().err
    assert "fixed set of classes" in err and "Traceback" not in err


def test_phrases_and_categories_are_compared_as_singular_lower_case_names():
    assert [class_key(n) for n in ("Small_Cars", "the buses", "People", "glass", "bus")] == [
        "small car", "bus", "person", "glass", "bus"
    ]  # fmt: skip
    names, unmapped, uncovered = map_phrases(("cars", "trees", "a person"), ["car", "person", "van"])
    assert names == ("car", "trees", "person") and unmapped == ["trees"] and uncovered == ["van"]


@pytest.mark.parametrize("model_type", NEW_FAMILIES)
def test_every_page_renders(tiny_detectors, monkeypatch, model_type):
    """Each page on a tiny model of the family; Attention shows the text attention of an
    open-vocabulary model, and the Fusion maps page says CCTM / FINE do not apply to it."""
    detector = tiny_detectors[model_type]
    monkeypatch.setattr(loaders, "load_detector", lambda source: detector)
    loaders.cached_detector.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.session_state[keys.THRESHOLD] = 0.0
    at.session_state[keys.TOP_N] = 20
    at.run()
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])
        if page == "pages/attention.py":
            charts = [c.proto.id for c in at.get("plotly_chart")]
            assert any("text_attention" in c for c in charts) == FAMILIES[model_type].open_vocabulary
        if page == "pages/fusion_maps.py":
            assert any("cannot be attached" in i.value for i in at.info)


def test_the_home_prompt_sets_the_classes(tiny_detectors, monkeypatch):
    detector = tiny_detectors["grounding-dino"]
    monkeypatch.setattr(loaders, "load_detector", lambda source: detector)
    loaders.cached_detector.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    at.text_input(key=keys.PROMPT).input("small boats. red car.").run()
    assert not at.exception and not at.error
    at.session_state[keys.IMAGE_KIND] = "upload"  # no ground truth: the prompt's phrases as they are
    at.run()
    assert any("2 classes (small boats, red car)" in c.value for c in at.caption), [
        c.value for c in at.caption
    ]


@pytest.mark.parametrize("model_type", NEW_FAMILIES)
def test_benchmark_analyze_and_acs(tiny_model_dirs, tiny_detectors, scenes, tmp_path, model_type):
    """The dataset commands on each new family: ViCrop-Det and slicing at equal passes, the stored
    analysis, and ACS on splits labelled by the detector's own boxes (so candidates exist)."""
    from acs.test_acs import _labelled_by_the_detector

    model = str(tiny_model_dirs[model_type])
    annotations, images = str(scenes / "annotations.json"), str(scenes / "images")
    data = ["--data", annotations, "--images", images, "--model", model]
    assert main(["benchmark", *data, "--budgets", "1-2", "--out", str(tmp_path / "bench")]) == 0
    assert (tmp_path / "bench" / "benchmark.csv").is_file()
    store = str(tmp_path / "store")
    assert main(["analyze", *data, "--methods", "base,vicrop", "--budgets", "2", "--store", store]) == 0
    config = SceneConfig(min_side=192, max_side=192)
    detector = tiny_detectors[model_type]
    val, test = (
        _labelled_by_the_detector(detector, write_dataset(tmp_path / name, name, 2, config=config))
        for name in ("val", "test")
    )
    fit = ["--fit-data", str(val / "annotations.json"), "--fit-images", str(val / "images")]
    arguments = ["acs", "--data", str(test / "annotations.json"), "--images", str(test / "images"), *fit]
    assert main([*arguments, "--model", model, "--out", str(tmp_path / "acs")]) == 0
    assert json.loads((tmp_path / "acs" / "acs.json").read_text())["heads"]
