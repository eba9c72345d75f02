"""ViCrop: attention-guided crops re-detected at native resolution, fused, and compared with slicing."""

from __future__ import annotations

import streamlit as st

from pages import _shared as shared
from pages import _widgets as widgets
from sodviz.crops.fusion import MERGES, METRICS
from sodviz.crops.slicing import run_slicing
from sodviz.crops.vicrop import ViCropConfig, run_vicrop
from sodviz.views.report import settings_of, vicrop_section
from sodviz.views.vicrop import counts_table, slicing_comparison, vicrop_view, windows_figure

shared.init_state()
shared.sidebar()
inputs = shared.current_inputs()
st.title("ViCrop-Det")
st.caption(
    "Windows scored by ambiguity (Spatial Attention Entropy) x saliency (attention intensity); the "
    "top-K are cut from the native-resolution image, re-detected in one batch and fused."
)
SCALES = sorted({0.125, 0.25, 0.375, 0.5, 0.6, *ViCropConfig().scales})
with widgets.controls():
    columns = st.columns(4)
    columns[0].slider("K crops", 0, 8, key=shared.VICROP_K)
    scales = columns[1].multiselect("Window scales", SCALES, key=shared.VICROP_SCALES)
    columns[2].slider("Window overlap", 0.0, 0.75, step=0.05, key=shared.VICROP_OVERLAP)
    threshold = columns[3].slider("Score threshold", 0.05, 0.95, step=0.05, key=shared.VICROP_THRESHOLD)
    columns[0].slider("Ambiguity exponent", 0.0, 3.0, step=0.25, key=shared.VICROP_ALPHA)
    columns[1].slider("Saliency exponent", 0.0, 3.0, step=0.25, key=shared.VICROP_BETA)
    columns[2].slider(
        "Gate: min uncertain queries", 0, inputs.result.num_queries, key=shared.VICROP_GATE,
        help=f"Refine only when at least this many queries score in {ViCropConfig().score_band} (0: always).",
    )  # fmt: skip
    columns[3].slider(
        "Fusion match threshold", 0.1, 0.9, step=0.05, key=shared.VICROP_IOU,
        help="Boxes of one class match when their IoU (or IoS) is at least this.",
    )  # fmt: skip
    columns[0].slider(
        "Crop overlap allowed", 0.0, 0.75, step=0.05, key=shared.VICROP_MAX_OVERLAP,
        help="Chosen crops may share this fraction of the smaller crop's area.",
    )  # fmt: skip
    columns[1].radio(
        "Selection", ["marginal", "fixed"], key=shared.VICROP_SELECTION, horizontal=True,
        help="marginal: after each crop, rescore windows by the attention not yet covered.",
    )  # fmt: skip
    columns[1].toggle(
        "Fill the budget", key=shared.VICROP_FILL,
        help="marginal: once the crops cover all the attention, pick the rest by the windows' own scores.",
    )  # fmt: skip
    columns[2].radio(
        "Fusion merge", list(MERGES), key=shared.VICROP_MERGE, horizontal=True,
        help="SAHI's merges: NMS keeps the most confident box; greedy NMM and NMM merge matches into it. "
        "WBF (weighted box fusion): each cluster's box is the score-weighted mean of its boxes.",
    )  # fmt: skip
    columns[3].radio(
        "Match metric", list(METRICS), key=shared.VICROP_METRIC, horizontal=True,
        disabled=st.session_state[shared.VICROP_MERGE] == "wbf",
        help="IoU, or IoS: intersection over the smaller box (weighted box fusion: IoU only).",
    )  # fmt: skip
    columns[0].toggle(
        "SAHI's low-score switch", key=shared.VICROP_SWITCH,
        help="Fusion keeps detections from score 0.01; below 0.1 SAHI runs its merges as NMS / IoU.",
    )  # fmt: skip
if not scales:
    st.warning("Pick at least one window scale.")
    st.stop()
config = shared.vicrop_config()
with st.spinner("Re-detecting the crops ..."):
    outcome = run_vicrop(inputs.detector, inputs.image, config=config)
plan = outcome.plan
(st.success if plan.refine else st.info)(f"Gate: {plan.reason}.")
applied = config.fusion.at_score_threshold(config.score_threshold)
if applied != config.fusion:
    st.caption(
        f"Fusion runs as {applied.merge.upper()} / {applied.metric.upper()}: detections are kept from score "
        f"{config.score_threshold}, under SAHI's 0.1, where merged boxes swallow low-score junk."
    )
shown_scale = st.radio(
    "Heat maps of the windows at scale", sorted(scales), horizontal=True, key="vicrop_shown"
)
view = vicrop_view(
    outcome, inputs.image, scale=shown_scale, score_threshold=threshold,
    class_names=inputs.result.class_names, truth=inputs.truth,
)  # fmt: skip
for column, (name, title) in zip(
    st.columns(3),
    (("intensity", "Intensity (saliency)"), ("entropy", "SAE (ambiguity)"), ("score", "Joint score")),
    strict=True,
):
    column.markdown(f"**{title}**")
    column.image(view.heatmaps[name], width="stretch")
    with column:
        widgets.download_png(
            "Download PNG", view.heatmaps[name], f"{inputs.image_name}.{name}.png", f"dl_{name}"
        )

chosen = f"{len(plan.chosen)} chosen crops" + (
    f" (not {config.k}: {plan.shortfall})" if plan.shortfall else ""
)
st.subheader(f"Candidate windows and the {chosen}")
st.plotly_chart(windows_figure(plan, inputs.image, height=widgets.figure_height(inputs.image)))
if view.crops is not None:
    st.markdown("**Each crop, aspect kept, with its own detections (crop i has one colour everywhere)**")
    st.image(view.crops)
    widgets.download_png("Download PNG", view.crops, f"{inputs.image_name}.crops.png", "dl_crops")
    st.dataframe(
        widgets.coloured_rows(view.crop_rows), hide_index=True,
        column_config={"colour": None, "scale": st.column_config.NumberColumn(format="%.2f")},
    )  # fmt: skip

st.subheader(
    f"Before / after: {view.added} added from the crops, {view.replaced} replaced by a crop's box, "
    f"{view.removed} removed"
)
left, right = st.columns(2)
left.image(view.before, caption="original, 1 forward pass", width="stretch")
right.image(view.after, caption=f"ViCrop-Det, {outcome.forward_passes} forward passes", width="stretch")
with left:
    widgets.download_png("Download PNG", view.before, f"{inputs.image_name}.before.png", "dl_before")
with right:
    widgets.download_png("Download PNG", view.after, f"{inputs.image_name}.after.png", "dl_after")
if view.before_match is not None:
    st.dataframe(counts_table({"original": view.before_match, "ViCrop": view.after_match}), hide_index=True)

shared.record(
    vicrop_section(
        view,
        plan,
        passes=outcome.forward_passes,
        settings={"score threshold": threshold} | settings_of(config),
    )
)

st.subheader(f"Compare: uniform slicing at the same {outcome.forward_passes} forward passes")
if st.toggle("Run uniform slicing", key=shared.VICROP_COMPARE):
    sliced = run_slicing(
        inputs.detector, inputs.image, forward_passes=outcome.forward_passes,
        score_threshold=config.score_threshold, fusion=config.fusion, border_factor=config.border_factor,
    )  # fmt: skip
    st.caption(
        f"{len(sliced.crops_xyxy)} near-square slices + the full image: {sliced.forward_passes} passes"
    )
    comparison = slicing_comparison(
        view, sliced, threshold, class_names=inputs.result.class_names, truth=inputs.truth
    )
    st.markdown(f"slicing: {comparison.sliced} detections · ViCrop-Det: {comparison.vicrop}")
    if comparison.counts is not None:
        st.dataframe(comparison.counts, hide_index=True)
