"""The app's display helpers: presentation mode, figure sizes, coloured tables, chart picks and
PNG downloads (Streamlit glue beside `pages/_shared.py`, which holds the state and the inputs)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from pages._keys import PRESENTATION
from sodviz.imageio import encode_jpeg, encode_png
from sodviz.views.figures import image_figure_height
from sodviz.views.render import shrink


def presenting() -> bool:
    return bool(st.session_state.get(PRESENTATION))


def figure_height(image: np.ndarray | None = None, *, columns: int = 1) -> int:
    """Pixels for an image figure (`image_figure_height`), capped at 620, or 900 presenting."""
    cap = 900 if presenting() else 620
    return cap if image is None else image_figure_height(image, cap=cap, columns=columns)


def coloured_rows(rows: list[dict], *, colour: str = "colour", column: str = "crop"):
    """A table whose `column` cell is filled with each row's `colour` (then hidden): the key
    between a table and the figures that draw each row in its colour."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    colours = frame[colour]
    return frame.style.apply(
        lambda cells: [f"background-color: {c}; color: white" for c in colours], subset=[column]
    )


def controls(label: str = "Controls"):
    """A container for a page's widgets: inline normally, folded away in presentation mode."""
    return st.expander(label, expanded=False) if presenting() else st.container()


def picked(event, key: str | None = None) -> object | None:
    """The `customdata` of the first point clicked on a plotly chart (`on_select="rerun"`), or None.

    With the chart's `key`, only a new click counts: a chart keeps its selection across reruns,
    so without this a stale selection would undo a pick made elsewhere (another chart, a
    selectbox, a table row) on every rerun."""
    points = event.selection.points if event else []
    values = [point.get("customdata") for point in points if "customdata" in point]
    value = values[0] if values else None
    if key is None:
        return value
    memory = f"_last_pick_{key}"
    if value == st.session_state.get(memory):
        return None
    st.session_state[memory] = value
    return value


STREAMLIT_MAX_WIDTH = 1460  # px: Streamlit shrinks a wider image itself, then encodes it again


def image(target, picture: np.ndarray, **kwargs) -> None:
    """`target.image(...)` (`st` or a column) of a uint8 RGB array, sent as JPEG at quality 90 like
    the figures' backgrounds, encoded once here. Given an array, Streamlit encodes it at quality
    100 on every rerun: about twice the bytes to encode, fetch and decode in the browser
    (`encode_jpeg`). Wider than `STREAMLIT_MAX_WIDTH`, it is shrunk here first (area-averaged),
    as Streamlit would shrink it anyway (bilinear) and encode it a second time."""
    shown = shrink(picture, max_width=STREAMLIT_MAX_WIDTH)
    target.image(encode_jpeg(shown), output_format="JPEG", **kwargs)


def download_png(label: str, image: np.ndarray, file_name: str, key: str) -> None:
    """A download button for a uint8 RGB image as PNG (encoded when clicked)."""
    st.download_button(label, data=lambda: encode_png(image), file_name=file_name, mime="image/png", key=key)
