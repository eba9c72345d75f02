"""Every page under Streamlit's AppTest, with the detector patched to a tiny random one."""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from pages import _keys as keys
from pages import _loaders as loaders
from pages import _shared as shared
from pages import _widgets as widgets
from sodviz.cache import DEFAULT_CACHE
from sodviz.crops.vicrop import run_vicrop
from sodviz.detector import inference
from sodviz.detector.inference import run_inference
from sodviz.detector.loading import EMBEDDED_SCOPE
from sodviz.evaluation.ground_truth import GroundTruth

ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    "pages/home.py",
    "pages/detections.py",
    "pages/attention.py",
    "pages/vicrop.py",
    "pages/erf.py",
    "pages/candidates.py",  # before Fusion maps: with a tiny random detector it stops at a warning
    "pages/fusion_maps.py",
]


@pytest.fixture(params=["rt_detr", "detr"])
def app(request, tiny_detectors, monkeypatch) -> AppTest:
    """The app on a tiny detector of a deformable or a dense family, with a low threshold."""
    detector = tiny_detectors[request.param]
    monkeypatch.setattr(loaders, "load_detector", lambda source: detector)
    loaders.cached_detector.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state[keys.THRESHOLD] = 0.0
    at.session_state[keys.TOP_N] = 20
    return at.run()


def _no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_every_page_renders(app):
    _no_errors(app)
    assert app.title[0].value == "sodviz"
    for page in PAGES:
        app.switch_page(page).run()
        _no_errors(app)
    assert app.title[0].value == "Fusion maps"
    assert app.get("plotly_chart") and app.get("image")


def test_detections_page_controls(app):
    app.switch_page("pages/detections.py").run()
    _no_errors(app)
    counts = app.dataframe[0].value  # by size, against the sample's ground truth
    assert list(counts["size"]) == ["tiny", "small", "medium", "large"]
    table = app.dataframe[1].value
    assert len(table) == 20 and {"query", "score", "bucket", "entropy", "match"} <= set(table.columns)
    app.slider(key=keys.TOP_N).set_value(5).run()
    assert len(app.dataframe[1].value) == 5
    app.slider(key=keys.THRESHOLD).set_value(1.0).run()
    _no_errors(app)
    assert len(app.dataframe) == 1 and any("No detection" in i.value for i in app.info)
    app.slider(key=keys.THRESHOLD).set_value(0.0).run()
    found = set(app.dataframe[1].value["class"].astype(str))
    picker = app.multiselect(key=keys.CLASSES)
    names = [picker.format_func(c) for c in range(3)]  # the tiny detectors' three classes
    absent = [c for c, name in enumerate(names) if name not in found]
    assert absent, "the tiny detector finds every class: pick a fixture where the filter shows"
    picker.set_value([absent[0]]).run()  # a class it does not find: nothing is left
    _no_errors(app)
    assert len(app.dataframe) == 1 and any("No detection passes" in i.value for i in app.info)
    kept = next(c for c, name in enumerate(names) if name in found)
    app.multiselect(key=keys.CLASSES).set_value([kept]).run()
    _no_errors(app)
    assert set(app.dataframe[1].value["class"].astype(str)) == {names[kept]}


def test_attention_page_controls_and_picking(app):
    app.switch_page("pages/attention.py").run()
    _no_errors(app)
    queries = [int(label.split(" ")[0][1:]) for label in app.selectbox(key=keys.QUERY).options]
    app.selectbox(key=keys.QUERY).set_value(queries[1]).run()
    app.selectbox(key=keys.LAYER).select("0").run()
    app.selectbox(key=keys.HEAD).select("1").run()
    app.slider(key=keys.OPACITY).set_value(0.8).run()
    _no_errors(app)
    assert app.session_state[keys.QUERY] == queries[1]
    assert any("entropy" in m.value for m in app.markdown)


def test_input_size_reruns_the_detector_once_per_size(app, monkeypatch):
    """The full-image pass runs once per (model, image, input size); page switches reuse it."""
    sizes = []  # the input size of every full-image forward pass (crops go through another path)
    real = inference.run_inference_batch

    def counted(detector, images, *, input_size=None, **options):
        sizes.append(input_size)
        return real(detector, images, input_size=input_size, **options)

    monkeypatch.setattr(inference, "run_inference_batch", counted)
    DEFAULT_CACHE.clear()
    app.number_input(key=keys.INPUT_SIZE).set_value(96).run()
    for page in ("pages/detections.py", "pages/attention.py", "pages/detections.py"):
        app.switch_page(page).run()
        _no_errors(app)
    assert sizes.count(96) == 1
    app.switch_page("pages/home.py").run()
    app.number_input(key=keys.INPUT_SIZE).set_value(128).run()
    for page in ("pages/attention.py", "pages/detections.py"):
        app.switch_page(page).run()
        _no_errors(app)
    assert sizes.count(128) == 1 and sizes.count(96) == 1
    assert app.session_state[keys.INPUT_SIZE] == 128


def test_vicrop_page_controls_and_compare(app):
    app.switch_page("pages/vicrop.py").run()
    _no_errors(app)
    assert any(s.value.startswith("Gate: refined") for s in app.success)
    app.slider(key="vicrop_k").set_value(2).run()
    app.slider(key="vicrop_overlap").set_value(0.5).run()
    app.slider(key="vicrop_alpha").set_value(2.0).run()
    app.slider(key="vicrop_beta").set_value(0.5).run()
    app.slider(key="vicrop_iou").set_value(0.3).run()
    app.slider(key="vicrop_threshold").set_value(0.05).run()
    app.slider(key="vicrop_max_overlap").set_value(0.0).run()
    app.radio(key="vicrop_selection").set_value("fixed").run()
    app.multiselect(key="vicrop_scales").set_value([0.125, 0.5]).run()
    app.radio(key="vicrop_shown").set_value(0.125).run()
    _no_errors(app)
    frames = [frame.value for frame in app.dataframe]
    crops, sizes = frames[0], frames[1]  # one row per crop, in its colour; then TP / FP / FN by size
    assert list(crops["crop"]) == list(range(len(crops))) and len(crops) and "SAE" in crops.columns
    assert list(sizes["size"]) == ["tiny", "small", "medium", "large"] and "tp ViCrop" in sizes.columns
    assert any(h.value.startswith("Before / after: ") and "replaced" in h.value for h in app.subheader)
    app.toggle(key="vicrop_compare").set_value(True).run()
    _no_errors(app)
    assert "tp slicing" in app.dataframe[3].value.columns  # after the merges table
    gate = app.slider(key="vicrop_gate")
    gate.set_value(gate.max).run()  # every query: more than the tiny model's uncertain ones
    _no_errors(app)
    assert any(i.value.startswith("Gate: skipped") for i in app.info)
    app.multiselect(key="vicrop_scales").set_value([]).run()
    assert any("window scale" in w.value for w in app.warning)


def test_vicrop_page_merges_and_fill(app, monkeypatch):
    import sodviz.crops.vicrop as vicrop

    used, fuse = [], vicrop.fuse_detections

    def recording(*args, **kwargs):  # the page's fusion, as run_vicrop receives it (then the merge table's)
        used.append(args[2].at_score_threshold(kwargs["score_threshold"]))
        return fuse(*args, **kwargs)

    def run(widget):
        used.clear()
        widget.run()
        _no_errors(app)
        return used[0]

    monkeypatch.setattr(vicrop, "fuse_detections", recording)
    app.switch_page("pages/vicrop.py").run()
    assert not any("Fusion runs as" in c.value for c in app.caption)  # NMS: nothing switched
    app.radio(key=keys.VICROP_MERGE).set_value("greedynmm").run()
    applied = run(app.radio(key=keys.VICROP_METRIC).set_value("ios"))
    assert any("Fusion runs as NMS / IOU" in c.value for c in app.caption)  # SAHI's switch at 0.01
    assert (applied.merge, applied.metric) == ("nms", "iou")
    merges = next(d.value for d in app.dataframe if "merge" in d.value.columns)
    assert merges["merge"].tolist() == ["nms/ios", "nmm as nms/iou", "greedynmm as nms/iou", "wbf as nms/iou"]
    applied = run(app.toggle(key=keys.VICROP_SWITCH).set_value(False))
    assert not any("Fusion runs as" in c.value for c in app.caption)
    assert (applied.merge, applied.metric) == ("greedynmm", "ios")
    merges = next(d.value for d in app.dataframe if "merge" in d.value.columns)
    assert merges["merge"].tolist() == ["nms/ios", "nmm/ios", "greedynmm/ios", "wbf/iou"]
    assert {"TP", "FP", "FN", "duplicates", "split objects"} <= set(merges.columns)  # a sample scene has GT
    applied = run(app.radio(key=keys.VICROP_MERGE).set_value("wbf"))  # IoS chosen: WBF matches by IoU
    assert (applied.merge, applied.metric) == ("wbf", "iou") and app.radio(key=keys.VICROP_METRIC).disabled
    app.slider(key=keys.VICROP_K).set_value(8).run()
    app.toggle(key=keys.VICROP_FILL).set_value(False).run()
    _no_errors(app)


def test_picks_are_forgotten_when_the_image_model_or_input_size_changes(app, tiny_detectors, monkeypatch):
    """A query picked on one image is another object on the next: the pick resets."""
    other = tiny_detectors["deformable_detr"]
    loader = loaders.load_detector
    monkeypatch.setattr(
        loaders, "load_detector", lambda source: other if source == "runs/other" else loader(source)
    )
    loaders.cached_detector.clear()

    def other_model():
        app.session_state[keys.MODEL_KIND] = "folder"
        app.session_state[keys.MODEL_FOLDER] = "runs/other"

    app.switch_page("pages/attention.py").run()
    options = app.selectbox(key=keys.QUERY).options
    picked = int(options[-1].split(" ")[0][1:])  # "q12 · vehicle · 0.31" -> 12
    app.session_state[keys.QUERY] = picked
    app.session_state[keys.ERF_POINT] = [3.0, 4.0]
    app.run()
    assert app.session_state[keys.QUERY] == picked  # a rerun keeps it
    for change in (
        lambda: app.session_state.__setitem__(keys.SAMPLE_NAME, shared.sample_names()[1]),
        lambda: app.session_state.__setitem__(keys.INPUT_SIZE, 320),
        other_model,
    ):
        app.session_state[keys.QUERY] = picked
        app.session_state[keys.ERF_POINT] = [3.0, 4.0]
        change()
        app.run()
        _no_errors(app)
        first = int(app.selectbox(key=keys.QUERY).options[0].split(" ")[0][1:])
        assert app.session_state[keys.QUERY] == first
        assert app.session_state[keys.ERF_POINT] is None


def test_home_shows_the_model_input_and_offers_a_letterbox(app, request, monkeypatch):
    app.session_state[keys.IMAGE_KIND] = "upload"
    app.session_state[keys.IMAGE_UPLOAD] = ("wide.png", _png((192, 108)))  # 16:9
    app.run()
    _no_errors(app)
    summary = next(m.value for m in app.markdown if m.value.startswith("Model input"))
    letterbox = app.toggle(key=keys.LETTERBOX)
    if "detr" in request.node.name and "rt_detr" not in request.node.name:  # aspect-keeping family
        assert letterbox.disabled and "squashed" not in summary
        return
    assert "**squashed**" in summary and "shrink" in summary
    letterbox.set_value(True).run()
    _no_errors(app)
    summary = next(m.value for m in app.markdown if m.value.startswith("Model input"))
    assert "aspect kept" in summary and "squashed" not in summary
    passes = []  # the letterbox flag of every full-image forward pass
    real = inference.run_inference_batch
    monkeypatch.setattr(
        inference,
        "run_inference_batch",
        lambda *a, letterbox=False, **k: passes.append(letterbox) or real(*a, letterbox=letterbox, **k),
    )
    DEFAULT_CACHE.clear()
    for page in ("pages/detections.py", "pages/attention.py"):
        app.switch_page(page).run()
        _no_errors(app)
    assert passes[:1] == [True]  # the pass the pages share is letterboxed (then cached)


def test_the_report_holds_the_pages_visited_for_this_image_only(app):
    from sodviz.views.report import report_html

    for page in ("pages/detections.py", "pages/vicrop.py", "pages/erf.py"):
        app.switch_page(page).run()
        _no_errors(app)
    sections = app.session_state[keys.REPORT]
    assert list(sections) == ["Detections", "ViCrop-Det", "ERF"]
    meta = app.session_state[keys.REPORT_META]
    assert meta["image"] == app.session_state[keys.SAMPLE_NAME] and "Model input" in meta["input"]
    text = report_html(list(sections.values()), meta=meta)
    assert "<h2>ERF</h2>" in text and "score threshold" in text
    app.session_state[keys.SAMPLE_NAME] = shared.sample_names()[1]
    app.switch_page("pages/attention.py").run()
    assert list(app.session_state[keys.REPORT]) == ["Attention"]  # another image: a fresh report


def test_choices_persist_across_pages(app):
    app.switch_page("pages/detections.py").run()
    app.slider(key=keys.THRESHOLD).set_value(0.02).run()
    app.switch_page("pages/vicrop.py").run()
    app.slider(key=keys.VICROP_K).set_value(1).run()
    app.switch_page("pages/attention.py").run()
    app.switch_page("pages/detections.py").run()
    assert app.slider(key=keys.THRESHOLD).value == pytest.approx(0.02)
    app.switch_page("pages/vicrop.py").run()
    assert app.slider(key=keys.VICROP_K).value == 1


def test_presentation_mode_folds_the_controls(app):
    app.switch_page("pages/detections.py").run()
    assert not app.expander
    app.toggle(key=keys.PRESENTATION).set_value(True).run()
    _no_errors(app)
    assert app.expander and app.expander[0].label == "Controls"


def _png(size=(64, 48), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _coco(boxes: list, image_id: int = 1) -> dict:
    """One 64x48 image and its boxes (xywh), all of class 'vehicle'."""
    return {
        "images": [{"id": 1, "file_name": "upload.png", "width": 64, "height": 48}],
        "categories": [{"id": 0, "name": "vehicle"}],
        "annotations": [
            {"id": i + 1, "image_id": image_id, "category_id": 0, "bbox": box} for i, box in enumerate(boxes)
        ],
    }


@pytest.mark.parametrize(
    ("data", "annotations", "kind", "message"),
    [
        (b"not an image", None, "error", "not a readable image"),
        (_png((1, 1)), None, "error", "at least 8x8"),
        (_png(), b"{broken", "warning", "not valid JSON"),
        (_png(), json.dumps({"images": [{"id": 1}], "annotations": []}).encode(), "warning", "'categories'"),
        (_png(), json.dumps(_coco([])).encode(), "warning", "annotates no objects"),
        (_png(), json.dumps(_coco([[5, 5, 10, 10]], image_id=7)).encode(), "warning", "image ids 7"),
        (_png(), json.dumps(_coco([[60, 40, 10, 10]])).encode(), "warning", "1 box clipped"),
        (_png(), json.dumps(_coco([[5, 5, 10, 10]])).encode(), None, None),
        (_png(mode="L"), None, "warning", "grayscale"),
    ],
)
def test_uploads_are_checked_without_a_traceback(app, data, annotations, kind, message):
    app.session_state[keys.IMAGE_KIND] = "upload"
    app.session_state[keys.IMAGE_UPLOAD] = ("upload.png", data)
    app.session_state[keys.ANNOTATIONS_UPLOAD] = annotations
    for page in PAGES:
        app.switch_page(page).run()
        assert not app.exception, [e.value for e in app.exception]
        warnings = [w for w in app.warning if w.value != EMBEDDED_SCOPE]
        shown = {"error": app.error, "warning": warnings}
        if kind is None:
            assert not app.error and not warnings
        else:
            assert any(message in element.value for element in shown[kind])
        if not app.error:  # every upload with an embedded demo detector says what it knows
            assert EMBEDDED_SCOPE in [w.value for w in app.warning]


def test_the_demo_detectors_scope_is_said_where_it_is_chosen_and_on_uploads_only(app):
    assert EMBEDDED_SCOPE in [info.value for info in app.info]  # Home, demo chosen
    assert EMBEDDED_SCOPE not in [w.value for w in app.warning]  # a sample scene: what it knows
    app.session_state[keys.IMAGE_KIND] = "upload"
    app.session_state[keys.IMAGE_UPLOAD] = ("photo.png", _png())
    app.switch_page("pages/detections.py").run()
    assert EMBEDDED_SCOPE in [w.value for w in app.warning]
    app.session_state[keys.MODEL_KIND] = "folder"
    app.session_state[keys.MODEL_FOLDER] = "runs/mine/model"  # load_detector is patched
    app.run()
    assert not app.exception and EMBEDDED_SCOPE not in [w.value for w in app.warning]
    app.switch_page("pages/home.py").run()
    assert EMBEDDED_SCOPE not in [info.value for info in app.info]


def test_a_model_folder_that_fails_to_load_is_an_error(app, monkeypatch, tmp_path):
    monkeypatch.setattr(
        loaders, "load_detector", importlib.import_module("sodviz.detector.loading").load_detector
    )
    loaders.cached_detector.clear()
    app.session_state[keys.MODEL_KIND] = "folder"
    app.session_state[keys.MODEL_FOLDER] = str(tmp_path / "nothing here")
    for page in PAGES:
        app.switch_page(page).run()
        assert not app.exception
        assert any("Could not load the model" in e.value for e in app.error)
    app.switch_page("pages/home.py").run()  # Home's image half works whatever the model half says
    assert len(app.get("image")) == 1 and app.selectbox(key=keys.SAMPLE_NAME).options
    assert app.text_input(key=keys.DATASET_ANNOTATIONS) is not None  # and the dataset's fields
    app.radio(key=keys.IMAGE_KIND).set_value("upload").run()
    assert not app.exception and len(app.get("file_uploader")) == 2
    assert any("Could not load the model" in e.value for e in app.error)


def test_the_library_never_imports_streamlit():
    code = (
        "import sys, sodviz, sodviz.views.detections, sodviz.views.figures; print('streamlit' in sys.modules)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert output.stdout.strip() == "False"


def test_erf_page_controls(app):
    app.switch_page("pages/erf.py").run()
    _no_errors(app)
    assert len(app.dataframe[0].value) == 4  # one row per backbone stage
    assert any("sigma" in c.value for c in app.caption)
    app.radio(key=keys.ERF_SCALE).set_value("log").run()
    app.toggle(key=keys.ERF_ZOOM).set_value(False).run()
    app.multiselect(key=keys.ERF_STAGES).set_value(["stage2", "stage4"]).run()
    app.toggle(key=keys.ERF_RANDOM).set_value(True).run()
    _no_errors(app)
    table = app.dataframe[0].value
    assert list(table["weights"]) == ["trained", "trained", "random", "random"]
    assert list(table["stage"]) == ["stage2", "stage4"] * 2
    app.session_state[keys.ERF_POINT] = [1.0, 1.0]  # what a click on the image sets
    app.toggle(key=keys.ERF_DATASET).set_value(True).run()
    _no_errors(app)
    assert any("mean of" in s.value for s in app.subheader)
    app.multiselect(key=keys.ERF_STAGES).set_value([]).run()
    assert any("stage" in w.value for w in app.warning)


def test_fusion_maps_page_controls(app, tiny_module_detector, monkeypatch):
    base = loaders.load_detector("demo")
    monkeypatch.setattr(
        loaders, "load_detector", lambda source: tiny_module_detector if source == "demo-fusion" else base
    )
    loaders.cached_detector.clear()
    app.switch_page("pages/fusion_maps.py").run()
    _no_errors(app)
    assert any("fine, cctm, boost" in m.value for m in app.markdown)
    assert len(app.get("image")) >= 4 + 4 + 2  # CCTM, FINE, then base and modules side by side
    table = app.dataframe[0].value
    assert {"tp base", "tp demo-fusion"} <= set(table.columns)
    app.radio(key=keys.FUSION_MODE).set_value("pca").run()
    app.radio(key=keys.FUSION_LEVEL).set_value(2).run()
    app.radio(key=keys.FUSION_STAGE).set_value(0).run()
    app.radio(key=keys.FUSION_MODE).set_value("channel").run()
    app.slider(key=keys.FUSION_CHANNEL).set_value(5).run()
    app.slider(key=keys.FUSION_BETA).set_value(1.0).run()
    _no_errors(app)
    charts = len(app.get("plotly_chart"))
    app.toggle(key=keys.FUSION_SCORES).set_value(True).run()
    _no_errors(app)
    assert len(app.get("plotly_chart")) == charts + 1
    app.toggle(key=keys.FUSION_ERF).set_value(True).run()
    _no_errors(app)
    captions = [i.caption for image in app.get("image") for i in image.proto.imgs]
    assert {"aats_r1", "aats_r2", "aats_r4"} <= {c.split(":")[0] for c in captions}
    assert "gating map B'E'" in captions and "modulation map M" in captions


def test_fusion_maps_page_without_modules(app):
    app.switch_page("pages/fusion_maps.py").run()  # the fixture loads the plain tiny detector for any source
    _no_errors(app)
    assert any("no modules" in m.value for m in app.markdown)
    assert len(app.get("image")) == 2  # only base vs module detections


def _labelled_by(detector, monkeypatch, *, crops: bool = False):
    """Sample scenes whose ground truth is the detector's own 12 best boxes (with `crops`, plus the
    best box of each ViCrop-Det crop), nudged by a tenth of their width: a tiny random detector
    then has candidates for every object."""
    original = loaders.cached_sample

    def sample(name):
        decoded, _ = original(name)
        result = run_inference(detector, decoded.image)
        boxes = result.boxes_xyxy[np.argsort(-result.scores)[:12]].copy()
        if crops:
            refined = run_vicrop(detector, decoded.image).refined
            found = [r.boxes_xyxy[r.scores.argmax()] + np.tile(c[:2], 2) for r, c in
                     zip(refined.results, refined.crops_xyxy, strict=True)]  # fmt: skip
            boxes = np.concatenate([boxes, *[box[None] for box in found]])
        boxes[:, [0, 2]] += 0.1 * (boxes[:, 2:3] - boxes[:, 0:1])
        return decoded, GroundTruth(boxes_xyxy=boxes, class_names=np.array(["vehicle"] * len(boxes)))

    monkeypatch.setattr(loaders, "cached_sample", sample)


def test_candidates_page_controls(app, monkeypatch):
    detector = loaders.load_detector("demo")
    _labelled_by(detector, monkeypatch, crops=True)
    app.switch_page("pages/candidates.py").run()
    _no_errors(app)
    assert not app.warning and not app.info, [m.value for m in [*app.warning, *app.info]]
    table = app.dataframe[0].value
    assert {"query", "iou", "entropy", "predicted_iou", "rank ACS-Free", "rank ACS-Learned"} <= set(
        table.columns
    )
    assert sorted(table["rank confidence"]) == list(range(1, len(table) + 1))
    objects = app.selectbox(key=keys.ACS_OBJECT).options
    app.selectbox(key=keys.ACS_OBJECT).set_value(int(objects[-1].split(":")[0].split()[-1])).run()
    app.slider(key=keys.ACS_HEADS).set_value(2).run()
    app.radio(key=keys.ACS_FEATURE).set_value("spread").run()
    _no_errors(app)
    predicted = app.dataframe[0].value["predicted_iou"].tolist()
    app.radio(key=keys.ACS_REGRESSOR).set_value("ridge").run()  # the page default: boosting
    _no_errors(app)
    assert app.dataframe[0].value["predicted_iou"].tolist() != predicted
    assert len(app.get("plotly_chart")) == 2
    assert set(app.dataframe[0].value["source"]) == {"image"}
    app.toggle(key=keys.ACS_CROPS).set_value(True).run()  # the queries of ViCrop-Det's crops join
    _no_errors(app)
    found = False
    for option in app.selectbox(key=keys.ACS_OBJECT).options:
        app.selectbox(key=keys.ACS_OBJECT).set_value(int(option.split(":")[0].split()[-1])).run()
        _no_errors(app)
        sources = app.dataframe[0].value["source"].tolist()
        crops = sum(s.startswith("crop ") for s in sources)
        line = next(c.value for c in app.caption if " candidates: " in c.value)
        assert line.startswith(f"{len(sources)} candidates: {len(sources) - crops} from the image"), line
        if crops:
            found = True
            assert len(app.get("image")) == 1  # the mosaic, crop candidates' attention included
            break
    assert found, "no object has a candidate from ViCrop-Det's crops"


def test_candidates_page_without_candidates_says_so(app):
    app.switch_page("pages/candidates.py").run()  # tiny random boxes miss the generated objects
    _no_errors(app)
    assert any("nothing to fit" in i.value for i in app.info)


def test_picked_reads_the_first_clicked_point_that_carries_data():
    from types import SimpleNamespace

    event = SimpleNamespace(
        selection=SimpleNamespace(points=[{"x": 1}, {"customdata": 7}, {"customdata": 9}])
    )
    assert widgets.picked(event) == 7
    assert widgets.picked(SimpleNamespace(selection=SimpleNamespace(points=[]))) is None  # nothing clicked
    assert widgets.picked(None) is None


def test_a_charts_stale_selection_does_not_undo_a_pick_made_elsewhere(monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setattr(widgets.st, "session_state", {})
    clicked = SimpleNamespace(selection=SimpleNamespace(points=[{"customdata": 7}]))
    assert widgets.picked(clicked, "pick_chart") == 7  # a new click counts once
    assert widgets.picked(clicked, "pick_chart") is None  # the same selection on the next rerun
    assert widgets.picked(clicked, "entropy_chart") == 7  # each chart keeps its own memory
    cleared = SimpleNamespace(selection=SimpleNamespace(points=[]))
    assert widgets.picked(cleared, "pick_chart") is None
    assert widgets.picked(clicked, "pick_chart") == 7  # clicked again after clearing


def test_vicrop_page_at_equal_compute_on_the_image_and_on_a_benchmark_run(app, tmp_path, monkeypatch):
    from sodviz.crops.budget_report import write_tables

    monkeypatch.chdir(tmp_path)  # the page lists runs/**/benchmark.csv of the working folder
    app.switch_page("pages/vicrop.py").run()
    _no_errors(app)
    assert any("No benchmark run under runs/" in i.value for i in app.info)
    app.session_state[keys.VICROP_CROP_SIZE] = 64
    app.slider(key=keys.VICROP_COMPUTE_BUDGET).set_value(2).run()
    app.toggle(key=keys.VICROP_COMPUTE).set_value(True).run()
    _no_errors(app)
    rows = next(d.value for d in app.dataframe if "gflops_ratio" in d.value.columns)
    assert set(rows["method"]) == {"base", "vicrop", "vicrop_gated", "slicing", "slicing_only", "asahi",
                                   "random", "density", "oracle"}  # fmt: skip
    assert (rows["gflops_ratio"] <= rows["budget"] + 1e-9).all()
    assert (
        rows.loc[rows["method"] == "vicrop", "forward_passes"] > 2
    ).all()  # 64 px crops: cheaper than one pass
    from sodviz.crops.budget_study import COLUMNS

    good = [dict.fromkeys(COLUMNS, 0.5) | {"method": "base", "budget": 1, "merge": "", "unspent": ""}]
    write_tables(good, tmp_path / "runs" / "a")
    (tmp_path / "runs" / "b").mkdir()
    (tmp_path / "runs" / "b" / "benchmark.csv").write_text("x,y\n1,2\n")
    app.run()
    _no_errors(app)
    assert app.selectbox(key=keys.VICROP_TABLE).options == ["runs/a/benchmark.csv", "runs/b/benchmark.csv"]
    app.selectbox(key=keys.VICROP_TABLE).set_value(Path("runs/b/benchmark.csv")).run()
    assert any(
        "is not a benchmark table: it has no method, budget, AP50, gflops_ratio" in e.value for e in app.error
    )
    assert not app.exception


def test_a_served_app_reads_typed_paths_only_under_its_roots(app, monkeypatch, tmp_path):
    from sodviz.serving.access import NOT_ALLOWED, Access

    monkeypatch.setattr(
        loaders, "load_detector", importlib.import_module("sodviz.detector.loading").load_detector
    )
    loaders.cached_detector.clear()
    (tmp_path / "root" / "empty").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "config.json").write_text("{}")
    monkeypatch.setattr(loaders, "ACCESS", Access(roots=(tmp_path / "root",), data=tmp_path / "root"))
    app.session_state[keys.MODEL_KIND] = "folder"
    for typed in (str(tmp_path / "secret"), "~", "../secret"):
        app.session_state[keys.MODEL_FOLDER] = typed
        app.switch_page("pages/home.py").run()
        assert not app.exception
        (message,) = [e.value for e in app.error]
        assert NOT_ALLOWED in message and "config.json" not in message and "exist" not in message, message
        assert len(app.get("image")) == 1  # the image half stays
    app.session_state[keys.MODEL_FOLDER] = "empty"  # inside the root: the loader's own answer
    app.switch_page("pages/home.py").run()
    assert any("no config.json" in e.value for e in app.error)
    app.session_state[keys.MODEL_KIND] = "demo"
    app.session_state[keys.DATASET_ANNOTATIONS] = str(tmp_path / "secret" / "annotations.json")
    app.session_state[keys.DATASET_STORE] = str(tmp_path / "secret" / "store")
    app.switch_page("pages/dataset.py").run()
    assert not app.exception
    assert any("typed on Home" in w.value and NOT_ALLOWED in w.value for w in app.warning)
    assert any("store folder" in e.value and NOT_ALLOWED in e.value for e in app.error)
    assert not any("Analyse" in b.label for b in app.button), "the page stops before anything is written"


def test_a_served_app_reads_a_datasets_images_only_inside_its_folder(monkeypatch, tmp_path):
    from sodviz.serving.access import Access, PathNotAllowed

    (tmp_path / "root" / "set" / "images").mkdir(parents=True)
    monkeypatch.setattr(loaders, "ACCESS", Access(roots=(tmp_path / "root",), data=tmp_path / "root"))
    images = tmp_path / "root" / "set" / "images"
    assert loaders.dataset_file(images, "a.png") == (images / "a.png").resolve()
    assert loaders.dataset_file(images, "sub/a.png") == (images / "sub" / "a.png").resolve()
    for name in ("../annotations.json", "../../set/x.png", str(tmp_path / "elsewhere.png"), "/etc/passwd"):
        with pytest.raises(PathNotAllowed):
            loaders.dataset_file(images, name)


def test_a_new_image_takes_the_place_of_the_last_ones_annotations(monkeypatch):
    from types import SimpleNamespace

    class Upload:
        def __init__(self, name, data):
            self.name, self._data = name, data

        def getvalue(self):
            return self._data

    state = {keys.ANNOTATIONS_UPLOAD: b"{}", keys.UPLOADS_TAKEN: 3}
    state[f"{keys.IMAGE_UPLOADER}_3"] = Upload("new.png", b"png bytes")
    monkeypatch.setattr(shared, "st", SimpleNamespace(session_state=state))
    shared.store_uploads(keys.IMAGE_UPLOADER)
    assert state[keys.IMAGE_UPLOAD] == ("new.png", b"png bytes")
    assert state[keys.ANNOTATIONS_UPLOAD] is None, "the last image's annotations are not this one's"
    assert state[keys.UPLOADS_TAKEN] == 4, "the uploader is retired: Streamlit lets its file go"
    state[f"{keys.ANNOTATIONS_UPLOADER}_4"] = Upload("new.json", b'{"images": []}')
    shared.store_uploads(keys.ANNOTATIONS_UPLOADER)
    assert state[keys.ANNOTATIONS_UPLOAD] == b'{"images": []}' and state[keys.IMAGE_UPLOAD][0] == "new.png"


def test_an_upload_is_kept_as_its_decoded_image_only(app):
    from sodviz.imageio import DecodedImage

    app.session_state[keys.IMAGE_KIND] = "upload"
    app.session_state[keys.IMAGE_UPLOAD] = ("photo.png", _png((5000, 300)))  # over MAX_SIDE: shrunk
    app.switch_page("pages/detections.py").run()
    _no_errors(app)
    name, kept = app.session_state[keys.IMAGE_UPLOAD]
    assert name == "photo.png" and isinstance(kept, DecodedImage), type(kept)  # the bytes are let go
    assert max(kept.image.shape[:2]) == 4096 and any("detected at 4096x" in w.value for w in app.warning)
    app.session_state[keys.IMAGE_UPLOAD] = ("broken.png", b"not an image")
    app.run()
    assert not app.exception and app.error and app.session_state[keys.IMAGE_UPLOAD][1] == app.error[0].value


def test_home_says_when_the_memory_budget_leaves_no_room_for_cached_results(app, monkeypatch):
    from sodviz.cache import InferenceCache
    from sodviz.serving.memory import MemoryBudget

    budget = MemoryBudget(1024 << 20, (InferenceCache(),), resident=lambda: 4 << 30)  # models alone fill it
    monkeypatch.setattr(loaders, "MEMORY_BUDGET", budget)
    app.switch_page("pages/home.py").run()
    assert not [w for w in app.warning if "memory budget" in w.value]
    budget.fit()
    app.switch_page("pages/home.py").run()
    (said,) = [w.value for w in app.warning if "memory budget" in w.value]
    assert "(1024 MiB)" in said and "--memory-mb" in said
    assert len(app.get("image")) == 1 and not app.exception  # the page goes on


def test_page_images_travel_as_jpeg_encoded_once(image):
    """`widgets.image` hands Streamlit JPEG bytes (quality 90) of the array, not the array, which
    Streamlit would encode at quality 100 on every rerun, and no wider than Streamlit shows
    without encoding again; every page shows its images through it."""
    import re

    from sodviz.imageio import decode_image, encode_jpeg

    calls = []

    class Target:
        def image(self, data, **kwargs):
            calls.append((data, kwargs))

    widgets.image(Target(), image, caption="c", width="stretch")
    ((data, kwargs),) = calls
    assert isinstance(data, bytes) and data[:3] == b"\xff\xd8\xff"
    assert kwargs == {"output_format": "JPEG", "caption": "c", "width": "stretch"}
    assert data == encode_jpeg(image, quality=90) and decode_image(data).image.shape == image.shape
    wide = np.tile(image, (1, 10, 1))  # 2,000 px wide
    widgets.image(Target(), wide)
    shown = decode_image(calls[-1][0]).image
    assert shown.shape == (round(wide.shape[0] * widgets.STREAMLIT_MAX_WIDTH / wide.shape[1]), 1460, 3)
    direct = {
        path.name: re.findall(r"([\w\]\)\[.]*)\.image\(", path.read_text())
        for path in [ROOT / "app.py", *(ROOT / "pages").glob("*.py")]
        if path.name != "_widgets.py"
    }
    assert direct["vicrop.py"] and not {
        name: found for name, found in direct.items() if set(found) - {"widgets"}
    }
