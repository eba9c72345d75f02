"""Attention: one detection's cross-attention (layer, head, or their mean) and the image-level map."""

from __future__ import annotations

import streamlit as st

from pages import _keys as keys
from pages import _loaders as loaders
from pages import _shared as shared
from pages import _widgets as widgets
from sodviz.views.detections import aggregate_overlay, detections_view, query_attention_view
from sodviz.views.figures import detections_figure, entropy_figure, sampling_points_figure
from sodviz.views.report import attention_section
from sodviz.views.text import text_attention_figure

shared.init_state()
shared.sidebar()
inputs = shared.current_inputs()
result, attention = inputs.result, inputs.result.attention
st.title("Attention")

found = detections_view(
    result, score_threshold=st.session_state[keys.THRESHOLD], truth=inputs.truth, cache=loaders.VIEW_CACHE
)
detections = found.detections
if not len(detections):
    st.warning("No detection above the score threshold: lower it on the Detections page.")
    st.stop()
queries = [int(q) for q in detections.data["query_index"]]
if st.session_state.get(keys.QUERY) not in queries:
    st.session_state[keys.QUERY] = queries[0]
labels = {
    int(q): f"q{q} · {name} · {score:.2f}"
    for q, name, score in zip(queries, detections.data["class_name"], detections.confidence, strict=True)
}
with widgets.controls():
    columns = st.columns(4)
    columns[0].selectbox("Detection", queries, key=keys.QUERY, format_func=labels.get)
    columns[1].selectbox("Layer", ["mean", *map(str, range(attention.num_layers))], key=keys.LAYER)
    columns[2].selectbox("Head", ["mean", *map(str, range(attention.num_heads))], key=keys.HEAD)
    columns[3].slider("Opacity", 0.0, 1.0, step=0.05, key=keys.OPACITY)
query = st.session_state[keys.QUERY]
layer = None if st.session_state[keys.LAYER] == "mean" else int(st.session_state[keys.LAYER])
head = None if st.session_state[keys.HEAD] == "mean" else int(st.session_state[keys.HEAD])
opacity = st.session_state[keys.OPACITY]
view = query_attention_view(
    result, inputs.image, query=query, layer=layer, head=head, opacity=opacity, cache=loaders.VIEW_CACHE
)
height = widgets.figure_height(inputs.image, columns=2)

left, right = st.columns(2)
with left:
    st.markdown(f"**Pick a detection** (click its centre) · {labels[query]}")
    figure = detections_figure(inputs.image, detections, selected_query=query, height=height)
    event = st.plotly_chart(figure, key="pick_chart", on_select="rerun", selection_mode="points")
    picked = widgets.picked(event, "pick_chart")
    if picked is not None and int(picked) != query:
        st.session_state[keys.QUERY] = int(picked)
        st.rerun()
with right:
    st.markdown(f"**Attention of {labels[query]}** · entropy {view.entropy:.2f} nats")
    widgets.image(st, view.heat_overlay, width="stretch")
    widgets.download_png("Download PNG", view.heat_overlay, f"{inputs.image_name}.q{query}.png", "dl_heat")

if view.points is not None:
    st.subheader("Sampling points (area ~ weight, colour = feature level), zoomed to the detection")
    points_xy, weights, levels, _ = view.points
    box = result.boxes_xyxy[query : query + 1]
    st.plotly_chart(
        sampling_points_figure(
            inputs.image,
            points_xy,
            weights,
            levels,
            box_xyxy=box,
            view_xyxy=view.points_window,
            height=height,
        )
    )
    widgets.download_png(
        "Download PNG", view.points_overlay, f"{inputs.image_name}.q{query}.points.png", "dl_pts"
    )
if result.text_attention is not None:
    st.subheader(f"Attention of {labels[query]} to the prompt's tokens (mean over heads)")
    st.plotly_chart(
        text_attention_figure(result.text_attention, query, result.class_names, layer=layer),
        key="text_attention",
    )
st.subheader("Each head, around the detection")
widgets.image(st, view.heads_grid)
widgets.download_png("Download PNG", view.heads_grid, f"{inputs.image_name}.q{query}.heads.png", "dl_heads")

st.subheader(f"Image-level attention of all {len(detections)} detections (score-weighted)")
overlay = aggregate_overlay(
    result, inputs.image, detections, layer=layer, opacity=opacity, cache=loaders.VIEW_CACHE
)
widgets.image(st, overlay, width="stretch")
widgets.download_png("Download PNG", overlay, f"{inputs.image_name}.aggregate.png", "dl_aggregate")

st.subheader("Attention entropy against score (marker area ~ box size; click a point to pick it)")
status = None if found.match is None else found.match.status
event = st.plotly_chart(
    entropy_figure(detections, found.entropy, status=status), key="entropy_chart", on_select="rerun",
    selection_mode="points",
)  # fmt: skip
picked = widgets.picked(event, "entropy_chart")
if picked is not None and int(picked) != query:
    st.session_state[keys.QUERY] = int(picked)
    st.rerun()

shared.record(
    attention_section(
        view, found, label=labels[query],
        settings={"query": labels[query], "layer": st.session_state[keys.LAYER],
                  "head": st.session_state[keys.HEAD], "opacity": opacity},
    )
)  # fmt: skip
