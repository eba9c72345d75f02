"""Explain: is attention the explanation? One detection's (or missed object's) instance maps side
by side (attention, ODAM, D-RISE, relevance, a random floor), their deletion and insertion curves,
and the faithfulness numbers per method."""

from __future__ import annotations

import streamlit as st

from pages import _keys as keys
from pages import _loaders as loaders
from pages import _shared as shared
from pages import _widgets as widgets
from sodviz.cache import DEFAULT_CACHE
from sodviz.evaluation.ground_truth import truth_class_ids
from sodviz.explain.methods import METHOD_NAMES, available_methods, explain, faithfulness
from sodviz.explain.odam import ODAM_OUTPUTS
from sodviz.explain.perturb import model_input
from sodviz.explain.targets import detection_target, missed_target
from sodviz.views.detections import detections_view
from sodviz.views.explain import SHARED_SCALE, curves_figure, map_panels, number_rows
from sodviz.views.report import ReportSection

shared.init_state()
shared.sidebar()
inputs = shared.current_inputs()
detector, result = inputs.detector, inputs.result
st.title("Explain")
st.caption(
    "Is attention the explanation? Each method's map of one detection (or of a missed object, through "
    "its nearest query), scored the standard ways: deletion and insertion curves (pixels removed or "
    "revealed in the map's order, the detector re-run, its matched IoU x class score followed), the "
    "pointing game and the share of the map inside the box. Random is the floor."
)

found = detections_view(
    result, score_threshold=st.session_state[keys.THRESHOLD], truth=inputs.truth, cache=loaders.VIEW_CACHE
)
detections, match = found.detections, found.match
queries = [int(q) for q in detections.data["query_index"]]
missed = [] if match is None else [int(i) for i in match.missed.nonzero()[0]]
methods_here = available_methods(detector)
if not set(st.session_state[keys.EXPLAIN_METHODS]) <= set(methods_here):  # relevance on a deformable model
    st.session_state[keys.EXPLAIN_METHODS] = [
        m for m in st.session_state[keys.EXPLAIN_METHODS] if m in methods_here
    ]

with widgets.controls():
    left, middle, right = st.columns(3)
    kind = left.radio(
        "Explain", ["detection", "missed"], key=keys.EXPLAIN_KIND, horizontal=True,
        format_func={"detection": "a detection", "missed": "a missed object"}.get,
    )  # fmt: skip
    if kind == "detection":
        if not queries:
            st.warning("No detection above the score threshold: lower it on the Detections page.")
            st.stop()
        if st.session_state.get(keys.QUERY) not in queries:
            st.session_state[keys.QUERY] = queries[0]
        named = zip(queries, detections.data["class_name"], detections.confidence, strict=True)
        labels = {q: f"q{q} · {n} · {s:.2f}" for q, n, s in named}
        left.selectbox("Detection", queries, key=keys.QUERY, format_func=labels.get)
        target = detection_target(result, st.session_state[keys.QUERY])
        title = labels[target.query_index]
    else:
        if not missed:
            st.info(
                "No missed object to explain: load an image with annotations (Home), or every object was "
                "found at this score threshold."
            )
            st.stop()
        if st.session_state.get(keys.EXPLAIN_OBJECT) not in missed:
            st.session_state[keys.EXPLAIN_OBJECT] = missed[0]
        boxes, names = inputs.truth.boxes_xyxy, inputs.truth.class_names

        def object_label(i: int) -> str:
            x0, y0, x1, y1 = boxes[i]
            return (
                f"object {i} · {names[i]} · {((x1 - x0) * (y1 - y0)) ** 0.5:.0f} px at ({x0:.0f}, {y0:.0f})"
            )

        left.selectbox("Missed object", missed, key=keys.EXPLAIN_OBJECT, format_func=object_label)
        index = st.session_state[keys.EXPLAIN_OBJECT]
        aware, class_ids = truth_class_ids(inputs.truth, detector.class_names)  # as the explain study
        target = missed_target(result, boxes[index], class_ids[index] if aware else None)
        title = f"{object_label(index)}, through query q{target.query_index}"
    methods = middle.multiselect(
        "Methods", methods_here, key=keys.EXPLAIN_METHODS, format_func=lambda m: m,
        help="; ".join(f"{m}: {METHOD_NAMES[m]}" for m in methods_here),
    )  # fmt: skip
    output = middle.selectbox(
        "ODAM explains", ODAM_OUTPUTS, key=keys.EXPLAIN_OUTPUT,
        help="The class score, or one box coordinate (other methods explain the score).",
    )  # fmt: skip
    masks = right.slider("D-RISE masks", 100, 2000, step=100, key=keys.EXPLAIN_MASKS,
                         help="About 60 ms a mask on a 2-core CPU; cached once computed.")  # fmt: skip
    zoom = right.toggle("Zoom on the target", key=keys.EXPLAIN_ZOOM)
    with_curves = right.toggle(
        "Deletion and insertion curves (34 passes per method)", key=keys.EXPLAIN_CURVES
    )
if not methods:
    st.warning("Pick at least one method.")
    st.stop()

size = st.session_state[keys.INPUT_SIZE] or None
base = model_input(detector, inputs.image, input_size=size, cache=DEFAULT_CACHE)  # once per image
maps, curves = {}, {}
for method in methods:
    bar = st.progress(0.0, text=f"{METHOD_NAMES[method]} ...")
    maps[method] = explain(
        detector, inputs.image, result, target, method, input_size=size, masks=masks, base=base,
        cache=DEFAULT_CACHE, on_progress=lambda f, bar=bar: bar.progress(f),
    )  # fmt: skip
    if with_curves:
        bar.progress(0.0, text=f"Deletion and insertion of {method} ...")
        curves[method] = faithfulness(
            detector, inputs.image, maps[method], target, input_size=size, base=base, cache=DEFAULT_CACHE,
            on_progress=lambda f, bar=bar: bar.progress(f),
        )  # fmt: skip
    bar.empty()

st.subheader(f"Maps of {title}")
st.caption(
    f"Each map divided by its own maximum (their units differ): one colour scale, {SHARED_SCALE}. "
    "The curves and numbers below use each method's class-score map (ODAM's too, whatever it shows)."
)
panels = map_panels(
    inputs.image, maps, target, output=output, zoom=zoom, opacity=st.session_state[keys.OPACITY]
)
shown = []
for column, (method, panel) in zip(st.columns(len(panels)), panels.items(), strict=True):
    caption = f"{method}: {maps[method].note}" if maps[method].note else method
    widgets.image(column, panel, caption=caption, width="stretch")
    shown.append((caption, panel))
    with column:
        widgets.download_png(
            "PNG", panel, f"{inputs.image_name}.explain.{method}.png", f"dl_explain_{method}"
        )

figures = ()
if curves:
    figures = (("deletion and insertion", curves_figure(curves)),)
    st.plotly_chart(figures[0][1], key="explain_curves_chart")
rows = number_rows(maps, curves, target)
st.subheader("Numbers per method")
st.dataframe(rows, hide_index=True)
shared.record(
    ReportSection(
        "Explain", figures=figures, images=tuple(shown), tables=(("faithfulness per method", rows),),
        settings={"target": title, "methods": methods, "ODAM output": output, "D-RISE masks": masks},
    )
)  # fmt: skip
