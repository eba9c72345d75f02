"""Streamlit glue: the session's defaults, uploads and picks, the current inputs, the report and
the sidebar (keys in `pages._keys`, loaders in `pages._loaders`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import streamlit as st

from pages._keys import (
    ANNOTATIONS_UPLOAD,
    DATASET_STORE,
    DEFAULTS,
    IMAGE_KIND,
    IMAGE_UPLOAD,
    IMAGE_UPLOADER,
    INPUT_SIZE,
    LETTERBOX,
    PERSISTENT,
    PICK_CONTEXT,
    PICKS,
    PRESENTATION,
    REPORT,
    REPORT_META,
    SAMPLE_NAME,
    UPLOADS_TAKEN,
    VICROP_ALPHA,
    VICROP_BETA,
    VICROP_CROP_SIZE,
    VICROP_DEFAULT,
    VICROP_FILL,
    VICROP_GATE,
    VICROP_IOU,
    VICROP_K,
    VICROP_MAX_OVERLAP,
    VICROP_MERGE,
    VICROP_METRIC,
    VICROP_OVERLAP,
    VICROP_PACK,
    VICROP_SCALES,
    VICROP_SELECTION,
    VICROP_SWITCH,
)
from pages._loaders import (
    ACCESS,
    chosen_image_name,
    current_detector,
    current_image,
    model_source,
    prompted,
    register_session,
)
from sodviz.analysis.store import DEFAULT_STORE
from sodviz.crops.fusion import with_merge
from sodviz.crops.vicrop import ViCropConfig
from sodviz.detector.inference import run_inference
from sodviz.detector.loading import Detector
from sodviz.evaluation.ground_truth import GroundTruth
from sodviz.samples import sample_names
from sodviz.types import InferenceResult
from sodviz.views.report import ReportSection, report_html, report_meta


def init_state() -> None:
    """Fill in defaults once per session, and keep every choice when its widget is not on the page
    (Streamlit forgets the value of a widget that a run does not draw)."""
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)
    st.session_state.setdefault(SAMPLE_NAME, sample_names()[0])
    st.session_state.setdefault(DATASET_STORE, str(ACCESS.data / "store") if ACCESS.served else DEFAULT_STORE)
    for key in PERSISTENT:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    register_session()  # a closed session's uploads are let go once it cannot come back


def uploader_key(prefix: str) -> str:
    """The key of an uploader now: a new one after each file taken, so Streamlit lets the last go."""
    return f"{prefix}_{st.session_state.get(UPLOADS_TAKEN, 0)}"


def store_uploads(prefix: str) -> None:
    """on_change of an uploader: take its file into session state (`current_image` decodes the
    image once and keeps only the decoded, bounded array) and retire the widget, so the upload's
    bytes are not held twice (Streamlit drops the files of uploaders no longer drawn)."""
    upload = st.session_state.get(uploader_key(prefix))
    if upload is None:
        return
    target = IMAGE_UPLOAD if prefix == IMAGE_UPLOADER else ANNOTATIONS_UPLOAD
    if target == IMAGE_UPLOAD:  # another image: the last one's annotations are not its own
        st.session_state[ANNOTATIONS_UPLOAD] = None
    st.session_state[target] = (
        (upload.name, upload.getvalue()) if target == IMAGE_UPLOAD else upload.getvalue()
    )
    st.session_state[UPLOADS_TAKEN] = st.session_state.get(UPLOADS_TAKEN, 0) + 1


def vicrop_config() -> ViCropConfig:
    """ViCrop-Det's settings as the ViCrop-Det page's controls left them (defaults otherwise)."""
    state = st.session_state
    return ViCropConfig(
        k=state[VICROP_K], scales=tuple(sorted(state[VICROP_SCALES])), overlap=state[VICROP_OVERLAP],
        alpha=state[VICROP_ALPHA], beta=state[VICROP_BETA], max_overlap=state[VICROP_MAX_OVERLAP],
        selection=state[VICROP_SELECTION], fill=state[VICROP_FILL], gate_min_uncertain=state[VICROP_GATE],
        crop_size=state[VICROP_CROP_SIZE], pack=state[VICROP_PACK],
        fusion=with_merge(
            replace(VICROP_DEFAULT.fusion, metric=state[VICROP_METRIC], threshold=state[VICROP_IOU],
                    low_score_nms=state[VICROP_SWITCH]),
            state[VICROP_MERGE],
        ),
    )  # fmt: skip


@dataclass(frozen=True)
class Inputs:
    """What every analysis page starts from."""

    detector: Detector
    image: np.ndarray
    truth: GroundTruth | None
    result: InferenceResult
    image_name: str


def current_inputs() -> Inputs:
    """Detector, image, ground truth and the cached forward pass (runs once per model, image, size)."""
    detector = current_detector()
    image, truth, name = current_image()
    if truth is not None and len(truth):  # open vocabulary: the phrases named as the truth's categories
        detector = prompted(detector, truth.class_names.tolist())
    size = st.session_state[INPUT_SIZE] or None
    letterbox = bool(st.session_state[LETTERBOX])
    forget_stale_picks(pick_context(detector, name, image, size, letterbox))
    with st.spinner("Running the detector ..."):
        result = run_inference(detector, image, input_size=size, letterbox=letterbox)
    st.session_state.setdefault(REPORT_META, {}).update(
        report_meta(detector, name, image, result, truth=truth, letterbox=letterbox)
    )
    return Inputs(detector=detector, image=image, truth=truth, result=result, image_name=name)


def forget_stale_picks(context: tuple) -> None:
    """Reset every pick (query, ERF point, ACS object) when the model, image or input size changes:
    a query index picked on one image is another object, or none, on the next."""
    if st.session_state.get(PICK_CONTEXT) == context:
        return
    st.session_state.setdefault(REPORT, {}).clear()  # in place: the sidebar's button holds this dict
    if PICK_CONTEXT in st.session_state:
        for key in PICKS:
            st.session_state.pop(key, None)
            if key in DEFAULTS:
                st.session_state[key] = DEFAULTS[key]
    st.session_state[PICK_CONTEXT] = context


def pick_context(
    detector: Detector, name: str, image: np.ndarray, size: int | None, letterbox: bool
) -> tuple:
    """What a pick belongs to: the model, the image (name, shape, pixels) and its input."""
    return (detector.content_hash, name, image.shape, _fingerprint(image), size, letterbox)


def _fingerprint(image: np.ndarray) -> bytes:
    """A cheap identity of an image's pixels (a sparse sample): two uploads under one name differ."""
    return np.ascontiguousarray(image[::31, ::31]).tobytes()


def record(section: ReportSection) -> None:
    """Keep what this page showed for the HTML report (the latest run of each page)."""
    st.session_state.setdefault(REPORT, {})[section.title] = section


def sidebar() -> None:
    with st.sidebar:
        st.toggle("Presentation mode", key=PRESENTATION, help="Hide the controls and enlarge the figures.")
        sections, meta = st.session_state.setdefault(REPORT, {}), st.session_state.setdefault(REPORT_META, {})
        name, sample = chosen_image_name(), st.session_state.get(IMAGE_KIND) == "sample"
        image_name = name or ("sample" if sample else "upload")
        st.download_button(
            "Download report (HTML)", data=lambda: report_html(list(sections.values()), meta=dict(meta)),
            file_name=f"{image_name}.sodviz.html", mime="text/html", key="dl_report", on_click="ignore",
            help="The pages visited for this image, model and input size, as one file that opens offline.",
        )  # fmt: skip
        st.caption(f"Model: `{model_source() or '(none)'}`")
        st.caption(f"Image: `{name if sample or name else '(none yet)'}`")
