"""Streamlit glue: session-state keys, cached loaders, the sidebar, the report and the current inputs."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas  # noqa: F401 (imported whole before any session runs: see below)
import streamlit as st

from sodviz.analysis.store import DEFAULT_STORE
from sodviz.crops.fusion import with_merge
from sodviz.crops.vicrop import ViCropConfig
from sodviz.detector.families import HUB_PRESETS
from sodviz.detector.inference import run_inference
from sodviz.detector.loading import EMBEDDED_MODELS, EMBEDDED_SCOPE, Detector, load_detector
from sodviz.detector.preprocess import input_transform
from sodviz.detector.prompt import prompt_for_data, with_prompt
from sodviz.detector.threads import set_torch_threads
from sodviz.erf.fields import BACKBONE_STAGES
from sodviz.evaluation.ground_truth import GroundTruth, parse_annotations
from sodviz.imageio import DecodedImage, decode_image
from sodviz.modules.losses import BoostConfig
from sodviz.notices import DataNotice
from sodviz.samples import load_sample, sample_names
from sodviz.serving import PathNotAllowed, access_from_env
from sodviz.types import InferenceResult, InputTransform
from sodviz.views.report import ReportSection, report_html, report_meta

# Session-state keys: every choice that persists across pages.
MODEL_KIND = "model_kind"  # "demo" | "preset" | "folder"
MODEL_PRESET = "model_preset"
MODEL_FOLDER = "model_folder"
PROMPT = "prompt"  # open-vocabulary models: the classes as text ("": the data's categories, or the model's)
IMAGE_KIND = "image_kind"  # "sample" | "upload"
SAMPLE_NAME = "sample_name"
IMAGE_UPLOAD = "image_upload"  # (file name, bytes), copied from the uploader: survives page switches
ANNOTATIONS_UPLOAD = "annotations_upload"  # bytes or None, likewise
IMAGE_UPLOADER = "_image_uploader"  # the widgets themselves (their values cannot be set): key prefixes,
ANNOTATIONS_UPLOADER = "_annotations_uploader"  # numbered by UPLOADS_TAKEN so a taken file is let go
UPLOADS_TAKEN = "_uploads_taken"
INPUT_SIZE = "input_size"  # 0: the model's default
LETTERBOX = "letterbox"  # fixed-size families: keep the aspect (pad) instead of squashing
THRESHOLD = "threshold"
CLASSES = "classes"
TOP_N = "top_n"
QUERY = "query"
LAYER = "layer"
HEAD = "head"
OPACITY = "opacity"
PRESENTATION = "presentation"
VICROP_K = "vicrop_k"
VICROP_SCALES = "vicrop_scales"
VICROP_OVERLAP = "vicrop_overlap"
VICROP_THRESHOLD = "vicrop_threshold"
VICROP_ALPHA = "vicrop_alpha"
VICROP_BETA = "vicrop_beta"
VICROP_GATE = "vicrop_gate"
VICROP_MAX_OVERLAP = "vicrop_max_overlap"
VICROP_SELECTION = "vicrop_selection"
ERF_STAGES = "erf_stages"
ERF_SCALE = "erf_scale"
ERF_RANDOM = "erf_random"
ERF_DATASET = "erf_dataset"
ERF_ZOOM = "erf_zoom"
ERF_OVER_IMAGE = "erf_over_image"
ERF_POINT = "erf_point"  # [x, y] in model-input pixels, or None: the centre
VICROP_IOU = "vicrop_iou"
VICROP_MERGE = "vicrop_merge"
VICROP_FILL = "vicrop_fill"
VICROP_SWITCH = "vicrop_switch"
VICROP_CROP_SIZE = "vicrop_crop_size"
VICROP_PACK = "vicrop_pack"
VICROP_METRIC = "vicrop_metric"
VICROP_COMPARE = "vicrop_compare"
VICROP_COMPUTE = "vicrop_compute"
VICROP_COMPUTE_BUDGET = "vicrop_compute_budget"
VICROP_TABLE = "vicrop_table"
FUSION_MODEL = "fusion_model"  # a name of EMBEDDED_MODELS, or a folder path
FUSION_MODE = "fusion_mode"  # "mean" | "channel" | "pca"
FUSION_CHANNEL = "fusion_channel"
FUSION_LEVEL = "fusion_level"
FUSION_STAGE = "fusion_stage"
FUSION_THRESHOLD = "fusion_threshold"
FUSION_BETA = "fusion_beta"
FUSION_SCORES = "fusion_scores"
FUSION_ERF = "fusion_erf"
ACS_OBJECT = "acs_object"  # index of the ground-truth object (or detection cluster) picked
ACS_HEADS = "acs_heads"
ACS_FEATURE = "acs_feature"
ACS_REGRESSOR = "acs_regressor"  # "ridge" | "boosting": ACS-Learned's regressor
ACS_CROPS = "acs_crops"  # add the queries of ViCrop-Det's crops (the ViCrop-Det page's settings)
DATASET_ANNOTATIONS = "dataset_annotations"  # typed on Home: a COCO file and its image folder
DATASET_IMAGES = "dataset_images"
DATASET_SOURCE = "dataset_source"  # the Dataset page's choice among `pages._dataset.sources()`
DATASET_STORE = "dataset_store"
DATASET_METHODS = "dataset_methods"
DATASET_BUDGETS = "dataset_budgets"
DATASET_THRESHOLD = "dataset_threshold"
DATASET_BUCKET = "dataset_bucket"
DATASET_ERROR = "dataset_error"
DATASET_SORT = "dataset_sort"
EXPLAIN_KIND = "explain_kind"  # "detection" (the picked query, QUERY) | "missed" (EXPLAIN_OBJECT)
EXPLAIN_OBJECT = "explain_object"  # index of the missed ground-truth object picked
EXPLAIN_METHODS = "explain_methods"
EXPLAIN_OUTPUT = "explain_output"  # ODAM's "score", "x0", "y0", "x1" or "y1"
EXPLAIN_MASKS = "explain_masks"
EXPLAIN_ZOOM = "explain_zoom"
EXPLAIN_CURVES = "explain_curves"

ACCESS = access_from_env()  # served (`python -m sodviz serve`): typed paths only under its roots
TORCH_THREADS = set_torch_threads()  # once per process: one shared detector on every core
# pandas above: Streamlit and plotly import it lazily, and plotly uses it when it is in
# sys.modules. Under several sessions one script thread met another's half-imported pandas
# ("partially initialized module 'pandas' has no attribute 'Series'", benchmarks/bench_load.py
# with 4 sessions); imported here, it is whole before the first page of any session draws.
_VICROP = ViCropConfig()
DEFAULTS = {
    MODEL_KIND: "demo",
    MODEL_FOLDER: "",
    PROMPT: "",
    IMAGE_KIND: "sample",
    INPUT_SIZE: 0,
    LETTERBOX: False,
    THRESHOLD: 0.3,
    TOP_N: 300,
    LAYER: "mean",
    HEAD: "mean",
    OPACITY: 0.5,
    PRESENTATION: False,
    VICROP_K: _VICROP.k,
    VICROP_SCALES: list(_VICROP.scales),
    VICROP_OVERLAP: _VICROP.overlap,
    VICROP_THRESHOLD: 0.3,
    VICROP_ALPHA: _VICROP.alpha,
    VICROP_BETA: _VICROP.beta,
    VICROP_GATE: _VICROP.gate_min_uncertain,
    VICROP_MAX_OVERLAP: _VICROP.max_overlap,
    VICROP_SELECTION: _VICROP.selection,
    ERF_STAGES: list(BACKBONE_STAGES),
    ERF_SCALE: "linear",
    ERF_RANDOM: False,
    ERF_DATASET: False,
    ERF_ZOOM: True,
    ERF_OVER_IMAGE: True,
    ERF_POINT: None,
    VICROP_IOU: _VICROP.fusion.threshold,
    VICROP_MERGE: _VICROP.fusion.merge,
    VICROP_FILL: _VICROP.fill,
    VICROP_SWITCH: _VICROP.fusion.low_score_nms,
    VICROP_CROP_SIZE: _VICROP.crop_size,
    VICROP_PACK: _VICROP.pack,
    VICROP_METRIC: _VICROP.fusion.metric,
    VICROP_COMPARE: False,
    VICROP_COMPUTE: False,
    VICROP_COMPUTE_BUDGET: 4,
    FUSION_MODEL: "demo-fusion",
    FUSION_MODE: "mean",
    FUSION_CHANNEL: 0,
    FUSION_LEVEL: 0,
    FUSION_STAGE: 1,
    FUSION_THRESHOLD: 0.3,
    FUSION_BETA: BoostConfig().beta,
    FUSION_SCORES: False,
    FUSION_ERF: False,
    ACS_HEADS: 4,
    ACS_FEATURE: "entropy",
    ACS_CROPS: False,
    ACS_REGRESSOR: "boosting",
    DATASET_ANNOTATIONS: "",
    DATASET_IMAGES: "",
    DATASET_STORE: str(ACCESS.data / "store") if ACCESS.served else DEFAULT_STORE,
    DATASET_METHODS: ["vicrop", "slicing"],
    DATASET_BUDGETS: [3],
    DATASET_THRESHOLD: 0.3,
    DATASET_BUCKET: "all",
    DATASET_ERROR: "all",
    DATASET_SORT: "missed",
    EXPLAIN_KIND: "detection",
    EXPLAIN_METHODS: ["attention", "odam", "random"],
    EXPLAIN_OUTPUT: "score",
    EXPLAIN_MASKS: 300,
    EXPLAIN_ZOOM: True,
    EXPLAIN_CURVES: True,
}


REPORT = "_report"  # page title -> ReportSection of the current model, image and input size
REPORT_META = "_report_meta"  # what the report records of the model, image and input
PICKS = (
    QUERY,
    ERF_POINT,
    ACS_OBJECT,
    EXPLAIN_OBJECT,
)  # what a click picks on one image, model and input size
PICK_CONTEXT = "_pick_context"

PERSISTENT = (
    *DEFAULTS,
    SAMPLE_NAME,
    MODEL_PRESET,
    CLASSES,
    QUERY,
    IMAGE_UPLOAD,
    ANNOTATIONS_UPLOAD,
    DATASET_SOURCE,
    EXPLAIN_OBJECT,
)


def init_state() -> None:
    """Fill in defaults once per session, and keep every choice when its widget is not on the page
    (Streamlit forgets the value of a widget that a run does not draw)."""
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)
    st.session_state.setdefault(SAMPLE_NAME, sample_names()[0])
    for key in PERSISTENT:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


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
            replace(_VICROP.fusion, metric=state[VICROP_METRIC], threshold=state[VICROP_IOU],
                    low_score_nms=state[VICROP_SWITCH]),
            state[VICROP_MERGE],
        ),
    )  # fmt: skip


@st.cache_resource(show_spinner="Loading the detector ...", max_entries=3)
def cached_detector(source: str) -> Detector:
    """One detector per source for the whole process."""
    return load_detector(source)


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


@dataclass(frozen=True)
class Inputs:
    """What every analysis page starts from."""

    detector: Detector
    image: np.ndarray
    truth: GroundTruth | None
    result: InferenceResult
    image_name: str


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
        image_name = (st.session_state.get(IMAGE_UPLOAD) or ("upload",))[0]
        if st.session_state.get(IMAGE_KIND) == "sample":
            image_name = st.session_state.get(SAMPLE_NAME, "sample")
        st.download_button(
            "Download report (HTML)", data=lambda: report_html(list(sections.values()), meta=dict(meta)),
            file_name=f"{image_name}.sodviz.html", mime="text/html", key="dl_report", on_click="ignore",
            help="The pages visited for this image, model and input size, as one file that opens offline.",
        )  # fmt: skip
        st.caption(f"Model: `{model_source() or '(none)'}`")
        if st.session_state.get(IMAGE_KIND) == "upload":
            upload = st.session_state.get(IMAGE_UPLOAD)
            st.caption(f"Image: `{upload[0] if upload else '(none yet)'}`")
        else:
            st.caption(f"Image: `{st.session_state.get(SAMPLE_NAME)}`")
