"""Detections: boxes over the image (TP / FP / FN with ground truth), counts by size, a table."""

from __future__ import annotations

import streamlit as st

from pages import _keys as keys
from pages import _loaders as loaders
from pages import _shared as shared
from pages import _widgets as widgets
from sodviz.views.detections import detections_view
from sodviz.views.render import draw_match
from sodviz.views.report import detections_section

shared.init_state()
shared.sidebar()
inputs = shared.current_inputs()
result = inputs.result
st.title("Detections")

with widgets.controls():
    left, middle, right = st.columns(3)
    left.slider("Score threshold", 0.0, 1.0, step=0.01, key=keys.THRESHOLD)
    classes = middle.multiselect(
        "Classes (none = all)",
        list(range(len(result.class_names))),
        key=keys.CLASSES,
        format_func=lambda c: result.class_names[c],
    )
    right.slider("Top N", 1, result.num_queries, key=keys.TOP_N)

view = detections_view(
    result,
    score_threshold=st.session_state[keys.THRESHOLD],
    classes=classes or None,
    top_n=st.session_state[keys.TOP_N],
    truth=inputs.truth,
    cache=loaders.VIEW_CACHE,
)
match = view.match
missed = None if match is None else inputs.truth.boxes_xyxy[match.missed]
section = detections_section(
    inputs.image, view, truth=inputs.truth, selected_query=st.session_state.get(keys.QUERY),
    height=widgets.figure_height(inputs.image),
    settings={"score threshold": st.session_state[keys.THRESHOLD], "top N": st.session_state[keys.TOP_N],
              "classes": [result.class_names[c] for c in classes] or "all"},
)  # fmt: skip
shared.record(section)
figure = section.figures[0][1]
event = st.plotly_chart(figure, key="detections_chart", on_select="rerun", selection_mode="points")
picked = widgets.picked(event, "detections_chart")
if picked is not None:
    st.session_state[keys.QUERY] = int(picked)
    st.caption(f"Query {picked} picked: open the Attention page to see where it looks.")
widgets.download_png(
    "Download PNG",
    draw_match(
        inputs.image, view.detections, status=None if match is None else match.status, missed_xyxy=missed
    ),
    file_name=f"{inputs.image_name}.detections.png",
    key="download_detections",
)

if match is not None:
    st.subheader("By size (tiny < 16 px, small < 32, medium < 96, large; IoU 0.5)")
    rows = [{"size": name} | counts for name, counts in match.counts.items()]
    st.dataframe(rows, hide_index=True)
    if not match.class_aware:
        st.caption("The ground-truth classes are not the model's: any class counts as a match.")

st.subheader(f"{len(view.detections)} detections")
if not view.table:
    st.info("No detection passes the filters: lower the score threshold or widen the classes.")
    st.stop()
table = st.dataframe(view.table, hide_index=True, on_select="rerun", selection_mode="single-row", key="table")
if table and table.selection.rows:
    st.session_state[keys.QUERY] = view.table[table.selection.rows[0]]["query"]
