"""The Dataset page under AppTest: a job started from the page, the run's tables and gallery,
opening an object on Attention, filters, bad paths, and two sessions while a job writes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pages import _analysis as analysis_glue
from pages import _keys as keys
from pages import _loaders as loaders
from sodviz.analysis.job import BackgroundJob, plan_job
from sodviz.analysis.queries import Analysis
from sodviz.analysis.settings import AnalysisSettings
from sodviz.analysis.store import list_runs
from sodviz.samples import SAMPLES_DIR
from sodviz.synth.datasets import write_dataset
from sodviz.synth.scenes import SceneConfig

ROOT = Path(__file__).resolve().parent.parent


def _errors(at: AppTest) -> list:
    return [e.value for e in at.exception] + [e.value for e in at.error]


@pytest.fixture
def page(tiny_detectors, monkeypatch, tmp_path):
    detector = tiny_detectors["rt_detr"]
    monkeypatch.setattr(loaders, "load_detector", lambda source: detector)
    loaders.cached_detector.clear()
    analysis_glue.reader.clear()

    def open_page(store=tmp_path / "store", **state) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.session_state[keys.DATASET_STORE] = str(store)
        at.session_state[keys.DATASET_METHODS] = ["vicrop"]
        at.session_state[keys.DATASET_THRESHOLD] = 0.05
        at.session_state[keys.TOP_N] = 20  # the tiny model has 20 queries
        for key, value in state.items():
            at.session_state[key] = value
        at.run()
        return at.switch_page("pages/dataset.py").run()

    open_page.detector = detector
    return open_page


def _analyse(at: AppTest) -> AppTest:
    at.button[[b.label for b in at.button].index("Analyse the dataset")].click().run()
    for _, job in list(analysis_glue.jobs().values()):
        job.wait(120)
    return at.run().run()


def test_the_page_starts_a_job_and_shows_the_run(page, tmp_path):
    at = page()
    assert not _errors(at) and "Nothing stored for Sample scenes" in at.info[0].value
    at = _analyse(at)
    assert not _errors(at)
    headers = [s.value for s in at.subheader]
    for header in ("By size", "Images", "Missed objects", "Attention entropy", "Compare two runs"):
        assert any(h.startswith(header) for h in headers), header
    (run,) = list_runs(tmp_path / "store")
    assert run["annotations"] == str((SAMPLES_DIR / "annotations.json").resolve())
    summary = at.dataframe[0].value.set_index("bucket")
    truth = json.loads((SAMPLES_DIR / "annotations.json").read_text())
    assert summary.loc["all", "objects"] == len(truth["annotations"])
    images = at.dataframe[1].value
    assert sorted(images["file_name"]) == sorted(i["file_name"] for i in truth["images"])
    assert "recovered vicrop@3" in images.columns


def test_an_objects_patch_opens_it_on_attention_with_its_query(page, tmp_path):
    at = _analyse(page())
    first = Analysis(tmp_path / "store", [list_runs(tmp_path / "store")[0]["run"]])
    missed = first.missed_objects(first.runs[0], limit=1).iloc[0]
    at.button[[b.label for b in at.button].index("Open on Attention")].click().run()
    assert not _errors(at)
    assert at.title[0].value == "Attention"
    assert at.session_state[keys.IMAGE_UPLOAD][0] == missed["file_name"]
    assert at.session_state[keys.QUERY] == missed["nearest_query"]
    one = json.loads(at.session_state[keys.ANNOTATIONS_UPLOAD])
    assert [i["file_name"] for i in one["images"]] == [missed["file_name"]]
    at.switch_page("pages/detections.py").run()
    assert not _errors(at)
    sizes = at.dataframe[0].value  # the by-size table appears only with ground truth
    assert sizes["size"].tolist() == ["tiny", "small", "medium", "large"]


def test_the_filters_narrow_the_image_table(page, tmp_path):
    at = _analyse(page())
    run = list_runs(tmp_path / "store")[0]["run"]
    objects = Analysis(tmp_path / "store", [run]).frame("SELECT * FROM objects")
    at.selectbox(key=keys.DATASET_BUCKET).set_value("vt").run()
    at.selectbox(key=keys.DATASET_ERROR).set_value("localisation").run()
    assert not _errors(at)
    shown = at.dataframe[1].value
    wanted = objects[~objects["matched"]]
    with_vt = set(wanted.loc[wanted["bucket"] == "vt", "file_name"])
    with_loc = set(wanted.loc[wanted["error"] == "localisation", "file_name"])
    assert set(shown["file_name"]) == with_vt & with_loc
    at.selectbox(key=keys.DATASET_SORT).set_value("file_name").run()
    at.toggle(key="dataset_descending").set_value(False).run()
    names = at.dataframe[1].value["file_name"].tolist()
    assert names == sorted(names)


def test_a_dataset_typed_on_home_is_offered_and_a_missing_one_is_a_sentence(page, tmp_path):
    at = page()
    at.switch_page("pages/home.py").run()
    at.text_input(key=keys.DATASET_ANNOTATIONS).input(str(tmp_path / "nowhere.json")).run()
    at.text_input(key=keys.DATASET_IMAGES).input(str(tmp_path)).run()
    at.switch_page("pages/dataset.py").run()
    choice = next(o for o in at.selectbox(key=keys.DATASET_SOURCE).options if o.startswith("Typed"))
    at.selectbox(key=keys.DATASET_SOURCE).set_value(choice).run()
    at.button[[b.label for b in at.button].index("Analyse the dataset")].click().run()
    for _, job in list(analysis_glue.jobs().values()):
        job.wait(120)  # the plan (reading the file) runs in the job's thread; its sentence follows
    said = [e.value for e in at.error]  # already there when the job ended within the click's run
    for _ in range(2):
        at.run()
        assert not at.exception
        said += [e.value for e in at.error]
    assert any("Could not analyse" in e and "no COCO annotations" in e for e in said), said


def test_two_sessions_read_the_store_while_a_job_writes(page, tmp_path):
    data = write_dataset(tmp_path / "synth", "test", 6, config=SceneConfig(min_side=256, max_side=320))
    settings = AnalysisSettings(score_threshold=0.05, methods=("vicrop",), budgets=(3,))
    plan = plan_job(page.detector, data / "annotations.json", data / "images", settings,
                    store=tmp_path / "store", model_source="demo")  # fmt: skip
    typed = {
        keys.DATASET_ANNOTATIONS: str(data / "annotations.json"),
        keys.DATASET_IMAGES: str(data / "images"),
    }
    sessions = [page(**typed), page(**typed)]
    for at in sessions:
        choice = next(o for o in at.selectbox(key=keys.DATASET_SOURCE).options if o.startswith("Typed"))
        at.selectbox(key=keys.DATASET_SOURCE).set_value(choice).run()
    job = BackgroundJob(lambda: plan, page.detector, batch_images=1)
    seen = set()
    while job.running:
        for at in sessions:
            at.run()
            assert not at.exception, [e.value for e in at.exception]
            if len(at.dataframe) > 1:
                seen.add(len(at.dataframe[1].value))
        time.sleep(0.1)
    assert job.summary is not None and job.summary.analysed == 6
    for at in sessions:
        at.run()
        assert not _errors(at) and len(at.dataframe[1].value) == 6
    assert any(0 < n < 6 for n in seen), seen  # the sessions read the store while the job was still writing


def test_ap_of_a_large_store_waits_for_the_button(page, monkeypatch):
    monkeypatch.setattr(analysis_glue, "AP_AT_ONCE", 0)  # every store counts as large
    analysis_glue._scores().clear()
    at = _analyse(page())
    assert not _errors(at)
    summary = at.dataframe[0].value.set_index("bucket")
    assert summary["AP"].isna().all() and summary.loc["all", "objects"] > 0
    assert any("AP is left out for now" in c.value for c in at.caption)
    at.button[[b.label for b in at.button].index("Compute AP (pycocotools)")].click().run()
    assert not _errors(at)
    assert not at.dataframe[0].value.set_index("bucket")["AP"].isna().all()
