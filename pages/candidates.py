"""Candidates: several decoder queries propose a box for one object; pick it by confidence, by the
attention entropy of discriminative heads (ACS-Free) or by a learned IoU regressor (ACS-Learned)."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from pages import _keys as keys
from pages import _loaders as loaders
from pages import _shared as shared
from pages import _widgets as widgets
from sodviz.acs.candidates import FEATURES, candidates_for_objects
from sodviz.acs.labelling import fit_acs
from sodviz.acs.selectors import REGRESSORS
from sodviz.crops.vicrop import run_vicrop
from sodviz.samples import sample_names
from sodviz.views.candidates import (
    candidates_picture,
    correlation_figure,
    entropy_scatter,
    object_table,
)
from sodviz.views.report import ReportSection

shared.init_state()
shared.sidebar()
inputs = shared.current_inputs()
st.title("Candidates")
st.caption(
    "ACS for detectors: a box's attention structure tells how well it fits its object. ACS-Free ranks "
    "candidates by the entropy of the heads whose entropy tracks IoU best; ACS-Learned by a regressor "
    "(ridge or boosted trees) on every head's entropy, in-box mass and spread. Both are fitted on the "
    "other sample scenes."
)
with widgets.controls():
    left, middle, right = st.columns(3)
    top = left.slider("ACS-Free heads", 1, 8, key=keys.ACS_HEADS)
    feature = middle.radio("Correlation map of", FEATURES, key=keys.ACS_FEATURE, horizontal=True)
    kind = middle.radio("ACS-Learned regressor", REGRESSORS, key=keys.ACS_REGRESSOR, horizontal=True)
    with_crops = right.toggle(
        "Add the boxes of ViCrop-Det's crops", key=keys.ACS_CROPS,
        help="The queries of the crops re-detected at native resolution (the ViCrop-Det page's settings).",
    )  # fmt: skip
crops_config = None
if with_crops and st.session_state[keys.VICROP_SCALES]:  # each crop's own pass: ACS reads its queries
    crops_config = replace(shared.vicrop_config(), pack=0)
current = (
    shared.st.session_state.get(keys.SAMPLE_NAME) if st.session_state[keys.IMAGE_KIND] == "sample" else None
)
names = [name for name in sample_names() if name != current]
scenes = [(decoded.image, truth) for decoded, truth in map(loaders.cached_sample, names)]
bar = st.progress(0.0, text=f"Fitting on {len(names)} labelled scenes ...")
try:
    fitted = fit_acs(
        inputs.detector, scenes, top_heads=top, regressor=kind, crops=crops_config, on_progress=bar.progress
    )
except ValueError as error:  # the detector's boxes miss the labelled objects: nothing to rank
    bar.empty()
    st.info(f"{error}. ACS needs a detector that finds some of the objects.")
    st.stop()
bar.empty()
truth = inputs.truth.boxes_xyxy if inputs.truth is not None else None
crops = (
    None if crops_config is None else run_vicrop(inputs.detector, inputs.image, config=crops_config).refined
)
candidates = candidates_for_objects(
    inputs.result, truth, crops=crops, score_threshold=st.session_state[keys.THRESHOLD]
)
objects = candidates.objects_by_size()
if not objects:
    st.info("No decoder box overlaps an object here. Lower the threshold, or pick another image.")
    st.stop()


def describe(index: int) -> str:  # fixed per object: the browser keeps a picked option's old label
    return f"{'object' if truth is not None else 'cluster'} {index}: {candidates.size_of(index):.1f} px"


picked = st.selectbox("Object (smallest first)", objects, format_func=describe, key=keys.ACS_OBJECT)
table = object_table(candidates, fitted, picked)
from_crops = sum(row["source"] != "image" for row in table)
st.caption(f"{len(table)} candidates: {len(table) - from_crops} from the image's decoder queries, "
           f"{from_crops} from ViCrop-Det's crops")  # fmt: skip
legend = "picks: confidence cyan, ACS-Free orange, ACS-Learned violet; then each candidate's attention"
picture = candidates_picture(inputs.image, inputs.result, candidates, picked, table, crops=crops)
widgets.image(st, picture, caption=legend)
st.dataframe(table, hide_index=True)
correlation, scatter = correlation_figure(fitted, feature), entropy_scatter(fitted)
left, right = st.columns(2)
with left:
    st.markdown(f"**Pearson r of {feature} with IoU, per decoder layer and head**")
    st.plotly_chart(correlation)
with right:
    st.markdown("**Entropy against IoU, by object size (fitted scenes)**")
    st.plotly_chart(scatter)
shared.record(
    ReportSection(
        "Candidates", images=((f"{describe(picked)}: {legend}", picture),), tables=(("candidates", table),),
        figures=((f"Pearson r of {feature} with IoU per layer and head", correlation),
                 ("entropy against IoU by object size", scatter)),
        settings={"ACS-Free heads": top, "regressor": kind, "with ViCrop-Det's crops": bool(with_crops)},
    )
)  # fmt: skip
