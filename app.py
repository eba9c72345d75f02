"""sodviz: see what a DETR-family detector attends to, and why it misses tiny objects."""

from __future__ import annotations

import streamlit as st

from pages._loaders import MEMORY_BUDGET
from pages._timing import script_run

st.set_page_config(page_title="sodviz", page_icon=":mag:", layout="wide")
page = st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/detections.py", title="Detections", icon=":material/select_all:"),
        st.Page("pages/dataset.py", title="Dataset", icon=":material/dataset:"),
        st.Page("pages/attention.py", title="Attention", icon=":material/visibility:"),
        st.Page("pages/vicrop.py", title="ViCrop", icon=":material/crop:"),
        st.Page("pages/erf.py", title="ERF", icon=":material/blur_on:"),
        st.Page("pages/fusion_maps.py", title="Fusion maps", icon=":material/layers:"),
        st.Page("pages/candidates.py", title="Candidates", icon=":material/rule:"),
        st.Page("pages/explain.py", title="Explain", icon=":material/psychology:"),
    ]
)
with script_run(page.title), MEMORY_BUDGET.after_run():  # timed with its trim and the memory budget's fit
    page.run()  # SODVIZ_TIMINGS=FILE: each run's server-side seconds, per session
