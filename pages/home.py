"""Home: what sodviz shows; pick the model, the image (with optional ground truth) and the input size."""

from __future__ import annotations

import streamlit as st

from pages import _keys as keys
from pages import _loaders as loaders
from pages import _shared as shared
from pages import _widgets as widgets
from sodviz.detector.families import HUB_PRESETS
from sodviz.detector.loading import EMBEDDED_SCOPE
from sodviz.detector.preprocess import input_summary, is_fixed_size
from sodviz.samples import sample_names


def describe_model(detector) -> None:
    """The open-vocabulary prompt and one line on the loaded detector."""
    if detector.family.open_vocabulary:
        st.text_input(
            "Classes, as a text prompt", key=keys.PROMPT, placeholder="car. person. boat.",
            help=f"{detector.family.name} finds what a prompt names: phrases ended by dots. Empty: the "
            "ground truth's categories when the image has some, else the checkpoint's own classes.",
        )  # fmt: skip
    st.caption(
        f"{detector.family.name} · {len(detector.class_names)} classes "
        f"({', '.join(detector.class_names[:8])}{' ...' if len(detector.class_names) > 8 else ''}) · "
        f"input {detector.input_size} px"
    )


shared.init_state()
shared.sidebar()
st.title("sodviz")
st.markdown(
    "See what a DETR-family detector attends to, and why it misses tiny objects. "
    "**Detections** shows the boxes (TP / FP / FN against ground truth, by size); "
    "**Attention** shows each detection's decoder cross-attention: dense maps for DETR-style "
    "models, sampling points and their weights for deformable ones (RT-DETR, D-FINE, Deformable DETR)."
)

left, right = st.columns(2)
with left:
    st.subheader("Model")
    kind = st.radio(
        "Detector",
        ["demo", "preset", "folder"],
        key=keys.MODEL_KIND,
        format_func={"demo": "Embedded demo detector", "preset": "Hub preset", "folder": "Local folder"}.get,
        horizontal=True,
    )
    if kind == "demo":
        st.info(EMBEDDED_SCOPE, icon=":material/info:")
    if kind == "preset":
        st.selectbox(
            "Hub id (needs the network or a local cache)",
            [p for p, _ in HUB_PRESETS],
            key=keys.MODEL_PRESET,
        )
    elif kind == "folder":
        st.text_input(
            "Folder in save_pretrained layout", key=keys.MODEL_FOLDER, placeholder="runs/demo/model"
        )
    st.number_input(
        "Input size (pixels; 0 = the model's own)",
        min_value=0,
        max_value=2048,
        step=32,
        key=keys.INPUT_SIZE,
    )
    model = loaders.model_source()
    detector = loaders.detector_or_error(model) if model else None
    if not model:
        st.warning("Type the path of a model folder.")
    if detector is not None:
        detector = loaders.prompted(detector)
        describe_model(detector)
    if loaders.MEMORY_BUDGET.starved:
        st.warning(loaders.MEMORY_BUDGET.starved_sentence(), icon=":material/memory:")

with right:
    st.subheader("Image")
    source = st.radio(
        "Image",
        ["sample", "upload"],
        key=keys.IMAGE_KIND,
        format_func={"sample": "Sample scene (with ground truth)", "upload": "Upload"}.get,
        horizontal=True,
    )
    if source == "sample":
        st.selectbox("Sample scene", sample_names(), key=keys.SAMPLE_NAME)
    else:
        st.file_uploader(
            f"Image (JPEG, PNG, TIFF, WebP, BMP ...; up to {loaders.ACCESS.max_upload_mb} MB)",
            key=shared.uploader_key(keys.IMAGE_UPLOADER),
            on_change=shared.store_uploads, args=(keys.IMAGE_UPLOADER,),
        )  # fmt: skip
        st.file_uploader(
            "COCO annotations for it (optional)", type=["json"],
            key=shared.uploader_key(keys.ANNOTATIONS_UPLOADER),
            on_change=shared.store_uploads, args=(keys.ANNOTATIONS_UPLOADER,),
        )  # fmt: skip
        if st.session_state.get(keys.ANNOTATIONS_UPLOAD) is not None:
            forget = {keys.ANNOTATIONS_UPLOAD: None}
            st.button("Remove the annotations", key="remove_annotations",
                      on_click=lambda: st.session_state.update(forget))  # fmt: skip
    image, truth, name = loaders.current_image()
    objects = "no ground truth" if truth is None else f"{len(truth)} annotated objects"
    widgets.image(
        st, image, caption=f"{name} · {image.shape[1]}x{image.shape[0]} px · {objects}", width="stretch"
    )

with left:
    if detector is not None:  # else the model half said why; the image half stays usable
        fixed = is_fixed_size(detector.processor)
        st.toggle(
            "Keep the image's aspect (letterbox)", key=keys.LETTERBOX, disabled=not fixed,
            help="Fixed-size families squash every image to a square input (RT-DETR's own convention). "
            "Letterbox resizes it to fit and pads the rest. Used by the full-image pass every page "
            "starts from (Detections, Attention, the Fusion maps comparison, the Candidates of the "
            "image); ViCrop-Det's passes, ERF and the ACS fit keep the family's own resize."
            if fixed else f"{detector.family.name} keeps the image's aspect already.",
        )  # fmt: skip
        transform = loaders.cached_input_transform(
            detector.content_hash, image.shape[:2], st.session_state[keys.INPUT_SIZE] or None,
            bool(fixed and st.session_state[keys.LETTERBOX]), detector,
        )  # fmt: skip
        st.markdown(input_summary(transform))

with st.expander("A whole dataset (the Dataset page)"):
    st.text_input(
        "COCO annotations file", key=keys.DATASET_ANNOTATIONS, placeholder="data/mine/annotations.json"
    )
    st.text_input(
        "Its image folder (default: images/ beside the file)", key=keys.DATASET_IMAGES,
        placeholder="data/mine/images",
    )  # fmt: skip
    st.caption(
        "The Dataset page analyses every image once with the model above and keeps the results, "
        "or opens what `python -m sodviz analyze` stored. The sample scenes and the generated "
        "splits under data/ are listed there already."
    )
