"""Streamlit glue that loads: the detector, the image and its annotations, each cached, and the
typed paths a served app may read."""

from __future__ import annotations

import gc
import threading
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas  # noqa: F401 (imported whole before any session runs: see below)
import plotly.graph_objects  # noqa: F401 (its objects frozen with the rest: see below)
import streamlit as st

from pages._keys import (
    ANNOTATIONS_UPLOAD,
    IMAGE_KIND,
    IMAGE_UPLOAD,
    MODEL_FOLDER,
    MODEL_KIND,
    MODEL_PRESET,
    PROMPT,
    SAMPLE_NAME,
)
from sodviz.cache import DEFAULT_CACHE, InferenceCache
from sodviz.detector.families import HUB_PRESETS
from sodviz.detector.loading import EMBEDDED_MODELS, EMBEDDED_SCOPE, Detector, load_detector
from sodviz.detector.preprocess import input_transform
from sodviz.detector.prompt import prompt_for_data, with_prompt
from sodviz.detector.threads import ModelLock, model_nice, set_torch_threads
from sodviz.evaluation.ground_truth import GroundTruth, parse_annotations
from sodviz.imageio import DecodedImage, decode_image
from sodviz.notices import DataNotice
from sodviz.samples import load_sample
from sodviz.serving.access import PathNotAllowed, access_from_env
from sodviz.serving.memory import MemoryBudget, return_freed_memory
from sodviz.serving.sessions import SessionReaper
from sodviz.types import InputTransform

ACCESS = access_from_env()  # served (`python -m sodviz serve`): typed paths only under its roots
VIEW_CACHE = InferenceCache(max_bytes=256 << 20)  # drawn views, on their own budget: never evicting a pass
TORCH_THREADS = set_torch_threads()  # once per process: one shared detector on every core
MODEL_NICE = model_nice()  # model work below the pages' drawing (SODVIZ_MODEL_NICE, sodviz.detector.threads)
MODEL_GATE = threading.RLock()  # one pass at a time, whatever the model: passes' memories never add up
MEMORY_BUDGET = MemoryBudget.from_env((VIEW_CACHE, DEFAULT_CACHE), gate=MODEL_GATE)  # the caches yield to it
# pandas above: Streamlit and plotly import it lazily, and plotly uses it when it is in
# sys.modules. Under several sessions one script thread met another's half-imported pandas
# ("partially initialized module 'pandas' has no attribute 'Series'", benchmarks/bench_load.py
# with 4 sessions); imported here, it is whole before the first page of any session draws.


def freeze_imported_objects() -> int:
    """Keep what the process has imported out of every later garbage collection; returns how many
    objects that is. Streamlit collects fully after every script run (`runner.postScriptGC`): with
    torch, transformers and plotly imported that walks about 490,000 objects, 234 ms holding the
    GIL (benchmarks/bench_gc.py), in each rerun of each session, while a warm Home runs for 20 ms;
    every other session's script and the server's event loop wait for it. Modules, classes and
    functions live as long as the process, so they are frozen once (`gc.freeze`), after a
    collection so that no garbage is frozen with them; a collection then walks only what the
    sessions made since (the detector, results, figures), and still frees it."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


FROZEN_OBJECTS = freeze_imported_objects()  # once per process, when the first page imports this module


def _connected(session_id: str) -> bool:
    """Streamlit can still run or resume this session: active, or kept for a reconnect (its
    session manager's store answers None once the session's `disconnectedSessionTTL` is over, and
    a reconnect after that starts a new session). Where that store cannot be asked (Streamlit's
    internals moved), every session counts as connected: kept, never released too early."""
    from streamlit.runtime import Runtime

    if not Runtime.exists():
        return True
    manager = getattr(Runtime.instance(), "_session_mgr", None)
    ask = getattr(manager, "get_session_info", None)
    return ask is None or ask(session_id) is not None


def _release(session_id: str, state) -> None:
    """A closed session that can no longer come back: its whole session state (decoded uploads,
    the report's images, picks), any upload file Streamlit still keeps and the images its last
    run drew, let go (session state and Streamlit's file managers take their own locks)."""
    from streamlit.runtime import Runtime

    try:
        with state._lock:  # the SafeSessionState's; its SessionState cleared whole
            state._state.clear()  # values, widget values and keys; reads nothing (no value decoded)
    finally:
        if Runtime.exists():
            Runtime.instance().uploaded_file_mgr.remove_session_files(session_id)
            media = Runtime.instance().media_file_mgr
            media.clear_session_refs(session_id)
            media.remove_orphaned_files()
        return_freed_memory()
        MEMORY_BUDGET.fit_idle()  # and whether the budget is still too small, for the next visitors


# Released 15 s (three sweeps) after Streamlit itself could no longer resume the session, so
# about `server.disconnectedSessionTTL` + 15 s after its browser closed.
REAPER = SessionReaper(_release, _connected, ttl=15)
REAPER.start()


def register_session() -> None:
    """Tell the reaper this run's session (every page does, through `init_state`)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    if context is not None:
        REAPER.seen(context.session_id, context.session_state)


@st.cache_resource(show_spinner="Loading the detector ...", max_entries=3)
def cached_detector(source: str) -> Detector:
    """One detector per source for the whole process, its passes on the app's lock (`app_model`)."""
    return app_model(load_detector(source))


def app_model(detector: Detector) -> Detector:
    """`detector` with the app's lock: its passes run at a lower CPU priority, so a page whose
    results are cached draws while another session's pass runs, one at a time with every other
    model's (`MODEL_GATE`), each after the memory budget made room for it. The lock excludes
    through the detector's own, so anything still holding that one shares the model safely."""
    lock = ModelLock(MODEL_NICE, lock=detector.lock, gate=MODEL_GATE, before=MEMORY_BUDGET.fit)
    return replace(detector, lock=lock)


@st.cache_data(show_spinner=False, max_entries=16)
def cached_input_transform(
    content_hash: str, image_hw: tuple[int, int], input_size: int | None, letterbox: bool, _detector: Detector
) -> InputTransform:
    """How an image of `image_hw` is fed to the detector (its processor runs once per shape and
    setting, not on every rerun of Home)."""
    return input_transform(
        _detector, np.zeros((*image_hw, 3), np.uint8), input_size=input_size, letterbox=letterbox
    )


@st.cache_data(show_spinner=False, max_entries=8)
def cached_annotations(data: bytes, file_name: str, scale: float) -> GroundTruth:
    return parse_annotations(data, file_name=file_name, scale=scale)


@st.cache_data(show_spinner=False, max_entries=8)
def cached_sample(name: str) -> tuple[DecodedImage, GroundTruth]:
    return load_sample(name)


def model_source() -> str:
    kind = st.session_state[MODEL_KIND]
    if kind == "preset":
        return st.session_state.get(MODEL_PRESET) or "demo"
    if kind == "folder":
        return st.session_state[MODEL_FOLDER].strip()
    return "demo"


def current_detector() -> Detector:
    """The chosen detector, or an error box and a stopped page."""
    source = model_source()
    if not source:
        st.warning("Type the path of a model folder on the Home page.")
        st.stop()
    return prompted(detector_or_stop(source))


def prompted(detector: Detector, category_names=None) -> Detector:
    """An open-vocabulary detector asking for the Home page's prompt; with the data's
    `category_names`, its phrases named as those categories (an empty prompt asks for the
    categories themselves). Other detectors as they are. A prompt it cannot use stops the page."""
    if not detector.family.open_vocabulary:
        return detector
    text = st.session_state.get(PROMPT, "").strip() or None
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always", DataNotice)
        try:
            if category_names:
                detector = prompt_for_data(detector, text, sorted({str(n) for n in category_names}))
            elif text is not None:
                detector = with_prompt(detector, text)
        except ValueError as error:
            st.error(f"The text prompt cannot be used: {error}")
            st.stop()
    for notice in said:
        st.caption(f"Prompt: {notice.message}.")
    return detector


def detector_or_stop(source: str) -> Detector:
    """The detector `source` names, or an error box and a stopped page."""
    detector = detector_or_error(source)
    if detector is None:
        st.stop()
    return detector


def detector_or_error(source: str) -> Detector | None:
    """The detector `source` names, or an error box and None (the page goes on: Home's image half)."""
    try:
        return cached_detector(model_path(source))
    except (FileNotFoundError, ValueError, ImportError, OSError) as error:  # PathNotAllowed too
        st.error(f"Could not load the model {source!r}: {error}")
        return None


def model_path(source: str) -> str:
    """`source` as the loader takes it: a known name or hub preset as it is; anything typed is a
    path, which a served app takes only under its roots (`PathNotAllowed` otherwise)."""
    if source in EMBEDDED_MODELS or source in dict(HUB_PRESETS) or not ACCESS.served:
        return source
    return str(ACCESS.readable(source))


def dataset_file(images, file_name: str):
    """`images / file_name`, which a served app reads only inside `images` (a COCO file's names
    could point anywhere: `../`, absolute paths); `PathNotAllowed` otherwise."""
    path = ACCESS.readable(Path(images) / file_name)
    if ACCESS.served and Path(images).resolve() not in path.parents:
        raise PathNotAllowed()
    return path


def allowed_or_stop(typed: str, *, write: bool = False, what: str = "The path") -> str:
    """A typed path the app may read (or, `write`, write under), or an error box and a stop."""
    try:
        return str(ACCESS.writable(typed) if write else ACCESS.readable(typed))
    except PathNotAllowed as error:
        st.error(f"{what} {typed!r}: {error}.")
        st.stop()


def chosen_image_name() -> str | None:
    """The name of the image chosen on Home (the upload's file name, or the sample scene's), or None."""
    if st.session_state.get(IMAGE_KIND) == "upload":
        return (st.session_state.get(IMAGE_UPLOAD) or (None,))[0]
    return st.session_state.get(SAMPLE_NAME)


def current_image() -> tuple[np.ndarray, GroundTruth | None, str]:
    """The chosen image (notices shown as warnings) and its ground truth, or an error and a stop."""
    if st.session_state[IMAGE_KIND] == "sample":
        decoded, truth = cached_sample(st.session_state[SAMPLE_NAME])
        return decoded.image, truth, st.session_state[SAMPLE_NAME]
    upload = st.session_state.get(IMAGE_UPLOAD)
    if upload is None:
        st.info("Upload an image on the Home page, or pick a sample scene.")
        st.stop()
    name, decoded = upload
    if isinstance(decoded, bytes):  # decoded once, the bytes let go: the session keeps the bounded image
        try:
            decoded = decode_image(decoded, name=name)
        except ValueError as error:
            decoded = str(error)
        st.session_state[IMAGE_UPLOAD] = (name, decoded)
    if isinstance(decoded, str):
        st.error(decoded)
        st.stop()
    for notice in decoded.notices:
        st.warning(notice)
    if model_source() in EMBEDDED_MODELS:
        st.warning(EMBEDDED_SCOPE, icon=":material/info:")
    truth = None
    annotations = st.session_state.get(ANNOTATIONS_UPLOAD)
    if annotations is not None:
        try:
            truth = cached_annotations(annotations, name, decoded.scale)
        except ValueError as error:
            st.warning(f"{error} Showing detections without ground truth.")
        else:
            for notice in truth.notices:
                st.warning(notice)
    return decoded.image, truth, name
