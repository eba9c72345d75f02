"""ViCrop: attention-guided crops re-detected at native resolution, fused, and compared with slicing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from pages import _keys as keys
from pages import _loaders as loaders
from pages import _shared as shared
from pages import _widgets as widgets
from sodviz.crops.budget_report import compute_figure, read_table
from sodviz.crops.budget_study import benchmark_image
from sodviz.crops.fusion import MERGES, METRICS
from sodviz.crops.slicing import run_slicing
from sodviz.crops.vicrop import ViCropConfig, run_vicrop
from sodviz.detector.inference import run_inference
from sodviz.evaluation.ground_truth import GroundTruth
from sodviz.views.merges import merge_rows
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
    columns[0].slider("K crops", 0, 8, key=keys.VICROP_K)
    scales = columns[1].multiselect("Window scales", SCALES, key=keys.VICROP_SCALES)
    columns[2].slider("Window overlap", 0.0, 0.75, step=0.05, key=keys.VICROP_OVERLAP)
    threshold = columns[3].slider("Score threshold", 0.05, 0.95, step=0.05, key=keys.VICROP_THRESHOLD)
    columns[0].slider("Ambiguity exponent", 0.0, 3.0, step=0.25, key=keys.VICROP_ALPHA)
    columns[1].slider("Saliency exponent", 0.0, 3.0, step=0.25, key=keys.VICROP_BETA)
    columns[2].slider(
        "Gate: min uncertain queries", 0, inputs.result.num_queries, key=keys.VICROP_GATE,
        help=f"Refine only when at least this many queries score in {ViCropConfig().score_band} (0: always).",
    )  # fmt: skip
    columns[3].slider(
        "Fusion match threshold", 0.1, 0.9, step=0.05, key=keys.VICROP_IOU,
        help="Boxes of one class match when their IoU (or IoS) is at least this.",
    )  # fmt: skip
    columns[0].slider(
        "Crop overlap allowed", 0.0, 0.75, step=0.05, key=keys.VICROP_MAX_OVERLAP,
        help="Chosen crops may share this fraction of the smaller crop's area.",
    )  # fmt: skip
    columns[1].radio(
        "Selection", ["marginal", "fixed"], key=keys.VICROP_SELECTION, horizontal=True,
        help="marginal: after each crop, rescore windows by the attention not yet covered.",
    )  # fmt: skip
    columns[1].toggle(
        "Fill the budget", key=keys.VICROP_FILL,
        help="marginal: once the crops cover all the attention, pick the rest by the windows' own scores.",
    )  # fmt: skip
    columns[2].radio(
        "Fusion merge", list(MERGES), key=keys.VICROP_MERGE, horizontal=True,
        help="SAHI's merges: NMS keeps the most confident box; greedy NMM and NMM merge matches into it. "
        "WBF (weighted box fusion): each cluster's box is the score-weighted mean of its boxes.",
    )  # fmt: skip
    columns[3].radio(
        "Match metric", list(METRICS), key=keys.VICROP_METRIC, horizontal=True,
        disabled=st.session_state[keys.VICROP_MERGE] == "wbf",
        help="IoU, or IoS: intersection over the smaller box (weighted box fusion: IoU only).",
    )  # fmt: skip
    columns[0].toggle(
        "SAHI's low-score switch", key=keys.VICROP_SWITCH,
        help="Fusion keeps detections from score 0.01; below 0.1 SAHI runs its merges as NMS / IoU.",
    )  # fmt: skip
    columns[1].selectbox(
        "Crop input size", [None, 64, 128, 192, 256, 320, 384, 448, 512, 640], key=keys.VICROP_CROP_SIZE,
        format_func=lambda side: "the full image's" if side is None else f"{side} px",
        help="The model input side each crop is re-detected at: smaller crops cost fewer GFLOPs.",
    )  # fmt: skip
    columns[2].slider(
        "Pack crops per canvas", 0, 8, key=keys.VICROP_PACK,
        help="0: each crop is its own input. n: up to n crops share one canvas at the full image's "
        "input size, one forward pass per canvas.",
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
    class_names=inputs.result.class_names, truth=inputs.truth, cache=loaders.VIEW_CACHE,
)  # fmt: skip
for column, (name, title) in zip(
    st.columns(3),
    (("intensity", "Intensity (saliency)"), ("entropy", "SAE (ambiguity)"), ("score", "Joint score")),
    strict=True,
):
    column.markdown(f"**{title}**")
    widgets.image(column, view.heatmaps[name], width="stretch")
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
    widgets.image(st, view.crops)
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
widgets.image(left, view.before, caption="original, 1 forward pass", width="stretch")
widgets.image(
    right, view.after, caption=f"ViCrop-Det, {outcome.forward_passes} forward passes", width="stretch"
)
with left:
    widgets.download_png("Download PNG", view.before, f"{inputs.image_name}.before.png", "dl_before")
with right:
    widgets.download_png("Download PNG", view.after, f"{inputs.image_name}.after.png", "dl_after")
if view.before_match is not None:
    st.dataframe(counts_table({"original": view.before_match, "ViCrop": view.after_match}), hide_index=True)
st.markdown(
    "**The same crops fused by each merge** (above the score threshold"
    + ("; duplicates: boxes beyond the first on one object; split objects: found only in parts"
       " that together would match)" if inputs.truth is not None else ")")
)  # fmt: skip
full_image = run_inference(inputs.detector, inputs.image)  # the pass ViCrop-Det fused with (cached)
rows = merge_rows(
    full_image, outcome.refined, config, threshold, class_names=inputs.result.class_names, truth=inputs.truth,
    cache=loaders.VIEW_CACHE,
)  # fmt: skip
st.dataframe(rows, hide_index=True)

shared.record(
    vicrop_section(
        view,
        plan,
        passes=outcome.forward_passes,
        settings={"score threshold": threshold} | settings_of(config),
    )
)

st.subheader(f"Compare: uniform slicing at the same {outcome.forward_passes} forward passes")
if st.toggle("Run uniform slicing", key=keys.VICROP_COMPARE):
    sliced = run_slicing(
        inputs.detector, inputs.image, forward_passes=outcome.forward_passes,
        score_threshold=config.score_threshold, fusion=config.fusion, border_factor=config.border_factor,
        slice_size=config.crop_size,
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


COMPUTE_METHODS = (
    "vicrop",
    "vicrop_gated",
    "slicing",
    "slicing_only",
    "asahi",
    "random",
    "density",
    "oracle",
)


@st.cache_data(show_spinner=False, max_entries=4)
def compute_rows(
    model: str, image, boxes, names: tuple[str, ...], config: ViCropConfig, top: int, _detector
) -> list[dict]:
    """Every method on this image at 1..top x its full pass's GFLOPs (cached per image and settings)."""
    truth = GroundTruth(boxes_xyxy=boxes, class_names=np.array(names))
    return benchmark_image(
        _detector, image, truth, methods=COMPUTE_METHODS, budgets=tuple(range(1, top + 1)), unit="gflops",
        vicrop=config,
    )  # fmt: skip


st.subheader("At equal compute: every method on this image, budgets in GFLOPs")
if inputs.truth is None:
    st.info("AP needs the image's ground truth: pick a sample scene, or upload the image with its COCO file.")
else:
    top = st.slider("Largest budget (x the full image's GFLOPs)", 2, 8, key=keys.VICROP_COMPUTE_BUDGET)
    if st.toggle(f"Run {len(COMPUTE_METHODS)} methods at 1-{top}x", key=keys.VICROP_COMPUTE):
        with st.spinner("Running every method at every budget ..."):
            rows = compute_rows(
                inputs.detector.content_hash, inputs.image, inputs.truth.boxes_xyxy,
                tuple(inputs.truth.class_names.tolist()), config, top, inputs.detector,
            )  # fmt: skip
        st.caption(
            "The crop settings above (crop input size, packing, fusion) serve every method; "
            "AP on one image is noisy: `python -m sodviz benchmark --budget-unit gflops` runs a dataset."
        )
        st.plotly_chart(compute_figure(rows))
        columns = ["method", "budget", "AP50", "AP_vt", "AP_t", "duplicates", "splits", "forward_passes",
                   "gflops_ratio", "latency_ratio", "unspent"]  # fmt: skip
        st.dataframe([{c: row[c] for c in columns} for row in rows], hide_index=True)


@st.cache_data(show_spinner=False, max_entries=4)
def table_figure(path: str, modified: float):
    """A benchmark table's figure, read again only when the file changes."""
    return compute_figure(read_table(path))


st.subheader("At equal compute on a dataset: a benchmark run")
tables = sorted(Path("runs").glob("**/benchmark.csv"))
if not tables:
    st.info(
        "No benchmark run under runs/ yet: `python -m sodviz benchmark --data A.json --images DIR "
        "--budget-unit gflops --methods base,vicrop,slicing,asahi,density` writes "
        "runs/benchmark/benchmark.csv."
    )
else:
    table = st.selectbox("Benchmark table", tables, format_func=str, key=keys.VICROP_TABLE)
    try:
        st.plotly_chart(table_figure(str(table), Path(table).stat().st_mtime))
    except (OSError, ValueError) as error:
        st.error(f"Could not read {table}: {error}")
