"""Several sessions on one detector: a result already cached never waits for another session's
forward pass (which holds the detector's lock for as long as it runs)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from sodviz.cache import InferenceCache
from sodviz.crops.vicrop import ViCropConfig, run_vicrop
from sodviz.detector.inference import run_inference
from sodviz.explain.methods import explain
from sodviz.explain.targets import detection_target


@pytest.mark.parametrize("model_type", ["rt_detr", "detr"])
def test_cached_results_are_served_while_another_session_holds_the_detector(
    tiny_detectors, image, model_type
):
    detector = tiny_detectors[model_type]
    cache = InferenceCache(max_bytes=1 << 28)
    result = run_inference(detector, image, cache=cache)
    config = ViCropConfig(k=2)
    crops = run_vicrop(detector, image, config=config, cache=cache)
    target = detection_target(result, 0)
    odam = explain(detector, image, result, target, "odam", cache=cache)
    busy, release = threading.Event(), threading.Event()

    def another_sessions_forward_pass() -> None:
        with detector.lock:
            busy.set()
            release.wait(30)

    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(another_sessions_forward_pass)
        assert busy.wait(10)
        try:
            served = pool.submit(
                lambda: (
                    run_inference(detector, image, cache=cache),
                    run_vicrop(detector, image, config=config, cache=cache),
                    explain(detector, image, result, target, "odam", cache=cache),
                )
            )
            again, crops_again, odam_again = served.result(timeout=10)  # would hang behind the lock
        finally:
            release.set()
        holder.result(timeout=10)
    assert again is result and odam_again is odam  # the cached objects themselves
    np.testing.assert_array_equal(crops_again.fused.xyxy, crops.fused.xyxy)  # re-fused from cached crops


def test_the_app_imports_pandas_whole_before_any_session_draws():
    """Sessions run in threads; plotly reads pandas from sys.modules when it is there, so a
    lazy import in one session showed another a half-imported module (seen with 4 sessions)."""
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, pages._loaders; print('pandas' in sys.modules)"
    root = Path(__file__).resolve().parent.parent
    found = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert found.stdout.strip().splitlines()[-1] == "True", found.stdout + found.stderr


def test_the_app_keeps_what_it_imported_out_of_streamlits_collection_after_each_run():
    """Streamlit collects fully after every script run; with torch, transformers and plotly
    imported that walked about 490,000 objects (220 ms, holding the GIL) in each session's every
    rerun. The app's first import freezes them: a collection walks only what was made since."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import gc, sys, pages._loaders as l; print(l.FROZEN_OBJECTS, gc.get_freeze_count(), "
        "len(gc.get_objects()), 'plotly.graph_objs' in sys.modules)"
    )
    root = Path(__file__).resolve().parent.parent
    found = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    frozen, freeze_count, walked, plotly = found.stdout.split()[-4:]
    assert plotly == "True"
    assert int(frozen) > 100_000 and int(freeze_count) > 100_000, found.stdout
    assert int(walked) < int(frozen) / 10  # what a collection still walks


def test_the_apps_runs_are_timed_server_side_when_asked(tiny_detectors, monkeypatch, tmp_path):
    """SODVIZ_TIMINGS: app.py writes one line per run with its page, image and seconds (the load
    script tells the server's time from the browsers' by these lines)."""
    import json
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from pages import _keys as keys
    from pages import _loaders as loaders

    monkeypatch.setattr(loaders, "load_detector", lambda source: tiny_detectors["detr"])
    loaders.cached_detector.clear()
    timings = tmp_path / "timings.jsonl"
    monkeypatch.setenv("SODVIZ_TIMINGS", str(timings))
    app = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60).run()
    # (AppTest runs app.py itself only on its first run: later runs take Streamlit's pages/ folder path)
    (line,) = [json.loads(line) for line in timings.read_text().splitlines()]
    assert line["page"] == "Home" and line["image"] is None  # a session's first run: nothing chosen yet
    assert app.session_state[keys.SAMPLE_NAME]
    assert line["session"] and line["wall"] > 0 and line["cpu"] >= 0 and line["cache_mib"] >= 0


def _timed_script():
    import streamlit as st

    from pages._timing import script_run

    with script_run(st.session_state.get("page", "Home")):
        st.session_state.setdefault("image_kind", "sample")
        st.session_state.setdefault("sample_name", "a scene")
        if st.session_state.get("stop"):
            st.stop()
        st.write("drawn")


def test_a_stopped_run_is_timed_too_and_nothing_is_measured_unset(monkeypatch, tmp_path):
    import json

    from streamlit.testing.v1 import AppTest

    timings = tmp_path / "timings.jsonl"
    monkeypatch.setenv("SODVIZ_TIMINGS", str(timings))
    app = AppTest.from_function(_timed_script).run()
    app.session_state["page"], app.session_state["stop"] = "Detections", True
    app.run()
    assert not app.markdown  # stopped before drawing
    app.session_state["image_kind"], app.session_state["image_upload"] = "upload", ("mine.png", b"")
    app.run()
    lines = [json.loads(line) for line in timings.read_text().splitlines()]
    assert [(line["page"], line["image"]) for line in lines] == [
        ("Home", None), ("Detections", "a scene"), ("Detections", "mine.png")
    ]  # fmt: skip
    assert lines[0]["start"] < lines[1]["start"] < lines[2]["start"]
    monkeypatch.delenv("SODVIZ_TIMINGS")
    app.run()
    assert len(timings.read_text().splitlines()) == 3


def test_the_apps_detector_runs_its_passes_below_the_pages(tiny_detectors, monkeypatch):
    from pages import _loaders as loaders
    from sodviz.detector.threads import ModelLock, model_nice

    monkeypatch.setattr(loaders, "load_detector", lambda source: tiny_detectors["detr"])
    loaders.cached_detector.clear()
    detector = loaders.cached_detector("demo")
    assert isinstance(detector.lock, ModelLock) and detector.lock.nice == loaders.MODEL_NICE == model_nice()
    assert detector.model is tiny_detectors["detr"].model
    assert loaders.cached_detector("demo") is detector  # one lock for every session
    try:
        with tiny_detectors["detr"].lock:  # a job on the loaded detector: the app's passes wait for it
            assert not detector.lock.acquire(blocking=False)
        with detector.lock:
            assert tiny_detectors["detr"].lock.locked()
    finally:
        loaders.cached_detector.clear()


def test_the_apps_models_take_turns_and_make_room_before_each_pass(tiny_detectors, image, monkeypatch):
    """Every model the app loads (a fusion detector beside Home's, ERF's random twin) runs its
    passes one at a time with the others', each after the memory budget's fit."""
    from pages import _loaders as loaders
    from sodviz.erf.fields import random_twin

    fits = []
    monkeypatch.setattr(loaders.MEMORY_BUDGET, "fit", lambda: fits.append(1) or 0)
    monkeypatch.setattr(loaders, "load_detector", lambda source: tiny_detectors[source])
    loaders.cached_detector.clear()
    try:
        home, fusion = loaders.cached_detector("detr"), loaders.cached_detector("rt_detr")
        twin = loaders.app_model(random_twin(home))
        busy, release = threading.Event(), threading.Event()

        def a_pass_on_home() -> None:
            with home.lock:
                busy.set()
                release.wait(30)

        thread = threading.Thread(target=a_pass_on_home)
        thread.start()
        assert busy.wait(10)
        try:
            waiting = [not fusion.lock.acquire(blocking=False), not twin.lock.acquire(blocking=False)]
        finally:
            release.set()
            thread.join()
        assert waiting == [True, True]
        assert fits == [1]
        run_inference(fusion, image, cache=None)
        assert fits == [1, 1]
    finally:
        loaders.cached_detector.clear()
