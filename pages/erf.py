"""ERF: effective receptive field per stage at a clicked point, its Gaussian sigma, trained vs random."""

from __future__ import annotations

import streamlit as st

from pages import _keys as keys
from pages import _loaders as loaders
from pages import _shared as shared
from pages import _widgets as widgets
from sodviz.cache import DEFAULT_CACHE
from sodviz.erf.fields import available_stages, compute_erf, random_twin
from sodviz.erf.stages import default_stages, stage_description
from sodviz.samples import load_sample, sample_names
from sodviz.views.erf import (
    erf_colorbar,
    erf_panel,
    erf_point,
    point_picker_figure,
    ratio_figure,
    zoom_window,
)
from sodviz.views.report import ReportSection

shared.init_state()
shared.sidebar()
inputs = shared.current_inputs()
st.title("Effective receptive fields")
st.caption(
    "|d feature / d input pixel|, channel-summed at one point of each stage, summed over colour "
    "channels, with a 2-D Gaussian fitted (ellipses at 1 and 2 sigma). Sigma is in model-input pixels."
)


@st.cache_resource(show_spinner="Building the random-weight twin ...", max_entries=2)
def cached_twin(source: str, _detector):
    return loaders.app_model(random_twin(_detector))


detector = inputs.detector
input_h, input_w = inputs.result.transform.input_hw
try:
    stages_all = available_stages(detector)
except ValueError as error:  # a backbone ERF does not cover yet
    st.info(str(error))
    st.stop()
if not set(st.session_state.get(keys.ERF_STAGES, ())) <= set(stages_all):  # another family's stages
    st.session_state[keys.ERF_STAGES] = list(default_stages(detector))
with widgets.controls():
    left, middle, right = st.columns(3)
    stages = left.multiselect("Stages", stages_all, key=keys.ERF_STAGES)
    scale = middle.radio("Scale", ["linear", "log"], key=keys.ERF_SCALE, horizontal=True)
    compare = right.toggle("Random weights beside", key=keys.ERF_RANDOM)
    dataset = right.toggle(f"Average over the {len(sample_names())} sample scenes", key=keys.ERF_DATASET)
    zoom = middle.toggle("Zoom on the point (3 sigma of the widest stage)", key=keys.ERF_ZOOM)
    left.toggle("Over the input image", key=keys.ERF_OVER_IMAGE, help="The image as the model sees it.")
if not stages:
    st.warning("Pick at least one stage.")
    st.stop()
stages = [s for s in stages_all if s in stages]  # shallow to deep
st.caption("; ".join(stage_description(detector, s) for s in stages) + ".")

point = erf_point(st.session_state.get(keys.ERF_POINT), (input_h, input_w))
st.markdown(f"**Point** ({point[0]:.0f}, {point[1]:.0f}) of the {input_w}x{input_h} input: click to move it")
event = st.plotly_chart(
    point_picker_figure(inputs.image, (input_h, input_w), point, height=360),
    key="erf_pick",
    on_select="rerun",
    selection_mode="points",
)
picked = widgets.picked(event, "erf_pick")
if picked is not None and picked != point:
    st.session_state[keys.ERF_POINT] = picked
    st.rerun()

images = [inputs.image]
if dataset:
    images = [load_sample(name)[0].image for name in sample_names()]
models = {"trained": detector}
if compare:
    models["random"] = cached_twin(detector.content_hash, detector)
results = {}
for name, model in models.items():
    progress = st.progress(0.0, text=f"ERF of the {name} weights ...")
    try:
        results[name] = compute_erf(
            model, images, stages=stages, point_xy=tuple(point),
            input_size=st.session_state[keys.INPUT_SIZE] or None,
            on_progress=lambda f, bar=progress: bar.progress(f), cache=DEFAULT_CACHE,
        )  # fmt: skip
    except ValueError as error:  # e.g. scenes of different shapes for an aspect-keeping model
        st.error(str(error))
        st.stop()
    progress.empty()

shown = []  # (caption, panel) for the report
for name, result in results.items():
    st.subheader(
        f"{name.capitalize()} weights" + (f", mean of {result.images} images" if result.images > 1 else "")
    )
    x0, y0, x1, y1 = zoom_window(result) if zoom else (0, 0, input_w, input_h)
    for column, stage, erf_map, fit in zip(
        st.columns(len(stages)), result.stages, result.maps, result.fits, strict=True
    ):
        under = inputs.image if st.session_state[keys.ERF_OVER_IMAGE] else None
        panel = erf_panel(erf_map, fit, scale=scale, point_xy=result.point_xy, background=under)
        panel = erf_colorbar(panel[y0:y1, x0:x1], erf_map, scale)
        caption = f"{stage}: sigma {fit.sigma:.1f} px, R² {fit.r2:.2f}"
        widgets.image(column, panel, caption=caption, width="stretch")
        shown.append((f"{name} weights, {caption}", panel))
        with column:
            widgets.download_png(
                "PNG", panel, f"{inputs.image_name}.erf.{name}.{stage}.png", f"dl_erf_{name}_{stage}"
            )

st.subheader("Sigma per stage")
rows = [{"weights": name} | row for name, result in results.items() for row in result.table()]
st.dataframe(rows, hide_index=True)
figures = ()
if len(stages) > 1:
    figures = (("sigma ratios between stages", ratio_figure(results)),)
    st.plotly_chart(figures[0][1], key="erf_ratios")
shared.record(
    ReportSection(
        "ERF", figures=figures, images=tuple(shown), tables=(("sigma per stage", rows),),
        settings={"point (input px)": [round(v) for v in point], "stages": stages, "scale": scale,
                  "over the input image": st.session_state[keys.ERF_OVER_IMAGE]},
    )
)  # fmt: skip
