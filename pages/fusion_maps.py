"""Fusion maps: what CCTM, FINE and the Boost loss change inside the demo detector fine-tuned with them."""

from __future__ import annotations

import streamlit as st

from pages import _keys as keys
from pages import _loaders as loaders
from pages import _shared as shared
from pages import _widgets as widgets
from sodviz.detector.inference import run_inference, to_detections
from sodviz.detector.loading import EMBEDDED_MODELS
from sodviz.detector.module_maps import fusion_maps
from sodviz.erf.aats import aats_erf
from sodviz.evaluation.score_by_size import score_curve
from sodviz.modules import modules_of
from sodviz.modules.losses import cs_curve
from sodviz.samples import sample_names
from sodviz.views.erf import erf_colorbar, erf_panel
from sodviz.views.fusion_maps import (
    CHANNEL_MODES,
    CS_IMAGE_SIDE,
    CS_SIZES_PX,
    MAP_TITLES,
    SECTIONS,
    compare_detections,
    cs_figure,
    feature_panel,
    feature_range,
    score_size_figure,
)
from sodviz.views.render import with_colorbar
from sodviz.views.report import ReportSection
from sodviz.views.vicrop import counts_table

MODULE_MODELS = [name for name in EMBEDDED_MODELS if name != "demo"]

shared.init_state()
shared.sidebar()
inputs = shared.current_inputs()
st.title("Fusion maps")
st.caption(
    "CCTM (Cross-DINO), FINE's cross-level modulation with AATS, and the Boost loss, inside the demo "
    "detector fine-tuned with them; the base is the detector chosen on the Home page."
)
if not inputs.detector.family.hybrid_encoder:
    st.info(
        f"CCTM and FINE go into RT-DETR's hybrid encoder, and {inputs.detector.family.name} has none: they "
        "cannot be attached to it. The maps below are the module detector's own; only the comparison of "
        f"detections involves {inputs.detector.family.name}."
    )
with widgets.controls():
    columns = st.columns(4)
    source = columns[0].selectbox(
        "Module detector", MODULE_MODELS, key=keys.FUSION_MODEL, accept_new_options=True,
        help="An embedded fine-tuned detector, or type a model folder with sodviz modules.",
    )  # fmt: skip
    mode = columns[1].radio(
        "Channels",
        list(CHANNEL_MODES),
        format_func=CHANNEL_MODES.get,
        key=keys.FUSION_MODE,
        horizontal=True,
    )
    threshold = columns[2].slider("Score threshold", 0.05, 0.95, step=0.05, key=keys.FUSION_THRESHOLD)
    beta = columns[3].slider("Boost beta", 0.1, 2.0, step=0.1, key=keys.FUSION_BETA)
module = loaders.detector_or_stop(source)
carried = modules_of(module.model)
st.markdown(f"**{source}** carries: {', '.join(carried.config.names) if carried else 'no modules'}.")
size = st.session_state[keys.INPUT_SIZE] or None
panels = []  # (caption, image) for the report
if carried is not None and carried.config.names != ("boost",):
    maps = fusion_maps(module, inputs.image, input_size=size)
    channel = st.slider(
        "Channel", 0, maps.num_channels - 1, key=keys.FUSION_CHANNEL, disabled=mode != "channel"
    )
    for section, key in zip(SECTIONS, (keys.FUSION_LEVEL, keys.FUSION_STAGE), strict=True):
        group = getattr(maps, section.group)
        if not group:
            continue
        st.subheader(section.title)
        index = st.radio(section.title, range(len(group)), format_func=section.labels.__getitem__, key=key,
                         horizontal=True, label_visibility="collapsed")  # fmt: skip
        features = [group[index][name] for name in section.maps]
        shown = None if mode == "pca" else feature_range(features, mode=mode, channel=channel)  # one scale
        for column, name, feature in zip(st.columns(len(section.maps)), section.maps, features, strict=True):
            panel = feature_panel(feature, mode=mode, channel=channel, value_range=shown)
            if shown is not None:
                unit = "mean activation" if mode == "mean" else f"channel {channel} activation"
                panel = with_colorbar(panel, shown, unit, colormap="viridis")
            widgets.image(column, panel, caption=MAP_TITLES[name], width="stretch")
            panels.append((f"{section.title}, {section.labels[index]}: {MAP_TITLES[name]}", panel))

st.subheader("Base vs module detections")
letterbox = inputs.result.transform.letterboxed  # the module's pass as the base's, for a fair comparison
found = {
    "base": inputs.result,
    source: run_inference(module, inputs.image, input_size=size, letterbox=letterbox),
}
comparison = compare_detections(
    inputs.image, {name: to_detections(result) for name, result in found.items()}, threshold=threshold,
    class_names=inputs.result.class_names, truth=inputs.truth,
)  # fmt: skip
for column, (name, picture) in zip(st.columns(2), comparison.images.items(), strict=True):
    widgets.image(column, picture, caption=f"{name}: {comparison.counts[name]} detections", width="stretch")
    panels.append((f"{name}: {comparison.counts[name]} detections", picture))
tables = ()
if comparison.matches is not None:
    tables = (("TP / FP / FN by size", counts_table(comparison.matches)),)
    st.dataframe(tables[0][1], hide_index=True)

st.subheader("Boost: class score against object size (Cross-DINO Fig. 3)")
curve = cs_curve(CS_SIZES_PX, CS_IMAGE_SIDE, beta)
boost = cs_figure(curve, beta=beta, image_side=CS_IMAGE_SIDE)
st.plotly_chart(boost)
shared.record(
    ReportSection(
        "Fusion maps", images=tuple(panels), tables=tables, figures=(("Boost: score against size", boost),),
        settings={"module model": source, "map": mode, "score threshold": threshold, "Boost beta": beta},
    )
)  # fmt: skip
if st.toggle("Average over the sample scenes", key=keys.FUSION_SCORES):
    scenes = [loaders.cached_sample(name) for name in sample_names()]
    scenes = [(decoded.image, truth) for decoded, truth in scenes]
    bar = st.progress(0.0, text="Detecting on the sample scenes ...")
    curves = {name: score_curve(detector, scenes, input_size=size, on_progress=bar.progress)
              for name, detector in (("base", inputs.detector), (source, module))}  # fmt: skip
    bar.empty()
    st.plotly_chart(score_size_figure(curves))

st.subheader("ERF of AATS tokens, r = 1, 2, 4 (FINE Fig. 6)")
if st.toggle("Compute (one backward pass per r)", key=keys.FUSION_ERF):
    with st.spinner("Gradients of the tokens ..."):
        erf = aats_erf(module, inputs.image, input_size=size)
    for column, stage, erf_map, fit in zip(st.columns(3), erf.stages, erf.maps, erf.fits, strict=True):
        panel = erf_colorbar(erf_panel(erf_map, fit, point_xy=erf.point_xy, background=inputs.image), erf_map)
        widgets.image(column, panel, caption=f"{stage}: sigma {fit.sigma:.1f} px", width="stretch")
