"""The Dataset page's glue: where datasets come from, the running jobs, the cached store reader,
and making one of a dataset's images the current image of every other page."""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from pages import _keys as keys
from pages import _loaders as loaders
from pages import _shared as shared
from sodviz.analysis.job import BackgroundJob
from sodviz.analysis.queries import Analysis
from sodviz.analysis.store import RunStore
from sodviz.imageio import decode_image, read_image
from sodviz.samples import SAMPLES_DIR
from sodviz.serving.access import PathNotAllowed

SPLITS = Path("data")  # generated splits: data/<name>/<split>/annotations.json (`python -m sodviz synth`)


def sources() -> dict[str, tuple[Path, Path]]:
    """label -> (annotations file, image folder): the sample scenes, every generated split, and
    the dataset typed on Home."""
    found = {"Sample scenes": (SAMPLES_DIR / "annotations.json", SAMPLES_DIR / "images")}
    for coco in sorted(SPLITS.glob("*/*/annotations.json")):
        if (coco.parent / "images").is_dir():
            found[f"Generated: {coco.parent}"] = (coco, coco.parent / "images")
    typed = st.session_state.get(keys.DATASET_ANNOTATIONS, "").strip()
    if typed:
        folder = st.session_state.get(keys.DATASET_IMAGES, "").strip() or str(Path(typed).parent / "images")
        try:
            found[f"Typed on Home: {typed}"] = (
                loaders.ACCESS.readable(typed),
                loaders.ACCESS.readable(folder),
            )
        except PathNotAllowed as error:
            st.warning(f"The dataset typed on Home ({typed}): {error}.")
    return found


def store_path(store: str, run: str) -> str:
    return str(RunStore(store, run).root)


@st.cache_resource
def jobs() -> dict[str, BackgroundJob]:
    """Run id -> its job, for the whole server: a job outlives the page and the session that started it."""
    return {}


@st.cache_resource(max_entries=8)
def reader(store: str, runs: tuple[str, ...]) -> Analysis:
    """One store reader per set of runs, shared by sessions (its queries are serialised)."""
    return Analysis(store, list(runs))


AP_AT_ONCE = 30_000  # objects: up to here AP is computed when the page opens (pycocotools takes ~2 ms each)


@st.cache_resource
def _scores() -> dict:
    """(run, method, stored state) -> `bucket_summary` with AP, for the whole server."""
    return {}


@st.cache_data(max_entries=32, show_spinner=False)
def counts(_analysis: Analysis, run: str, method: str, version: tuple):
    """`bucket_summary` without AP (SQL only)."""
    return _analysis.bucket_summary(run, method, with_ap=False)


def summary(analysis: Analysis, run: str, method: str, *, objects: int, asked: bool):
    """`bucket_summary` with AP when it was computed for this stored state, or the store is small
    enough, or `asked`; else without AP (NaN), and False for "computed"."""
    key = (run, method, analysis.version(run))
    if key not in _scores() and (asked or objects <= AP_AT_ONCE):
        with st.spinner(f"Scoring {objects:,} objects with pycocotools ..."):
            _scores()[key] = analysis.bucket_summary(run, method)
    if key in _scores():
        return _scores()[key], True
    return counts(analysis, run, method, analysis.version(run)), False


@st.cache_data(max_entries=32, show_spinner=False)
def entropy_rows(_analysis: Analysis, run: str, version: tuple):
    """`entropy_rows`, once per run and stored state."""
    return _analysis.entropy_rows(run)


@st.cache_data(max_entries=32, show_spinner=False)
def compare(_analysis: Analysis, a: tuple[str, str], b: tuple[str, str], versions: tuple):
    """`compare`, once per pair and stored state of both runs."""
    return _analysis.compare(a, b)


@st.cache_data(max_entries=4)
def _coco(path: str, modified: int) -> dict:
    return json.loads(Path(path).read_bytes().decode("utf-8-sig"))


def open_image(
    annotations: Path, images: Path, file_name: str, *, input_size: int | None, query: int | None = None
):
    """Make a dataset image, with its ground truth, the current image of every page (as an
    upload with a one-image COCO file); with `query`, also the picked query (Attention)."""
    coco = _coco(str(annotations), annotations.stat().st_mtime_ns)
    record = next(i for i in coco["images"] if i["file_name"] == file_name)
    one = coco | {
        "images": [record],
        "annotations": [a for a in coco["annotations"] if a["image_id"] == record["id"]],
    }
    try:
        data = loaders.dataset_file(images, file_name).read_bytes()
        decoded = decode_image(data, name=Path(file_name).name)  # kept decoded, the bytes let go
    except (OSError, ValueError) as error:  # PathNotAllowed too
        st.error(f"Could not open {file_name}: {error}")
        return
    state = st.session_state
    state[keys.IMAGE_KIND] = "upload"
    state[keys.IMAGE_UPLOAD] = (Path(file_name).name, decoded)
    state[keys.ANNOTATIONS_UPLOAD] = json.dumps(one).encode()
    state[keys.INPUT_SIZE] = input_size or 0
    state[keys.LETTERBOX] = False
    if query is not None:
        detector = loaders.current_detector()
        image = decoded.image
        shared.forget_stale_picks(
            shared.pick_context(detector, Path(file_name).name, image, input_size, False)
        )
        state[keys.QUERY] = int(query)


@st.cache_data(max_entries=64, show_spinner=False)
def image_of(path: str):
    """A dataset image, decoded at full size (annotations are in its pixels)."""
    return read_image(path).image
