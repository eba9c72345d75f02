"""Open-vocabulary models: how one query attends to the prompt's tokens."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from sodviz.types import TextAttention
from sodviz.views.palette import CROP_RGB, hex_color

OTHER_TOKEN_RGB = (150, 150, 150)  # [CLS], [SEP] and the dots between phrases


def token_weights(text: TextAttention, query: int, *, layer: int | None = -1) -> np.ndarray:
    """float32 `(tokens,)`: the query's attention over the tokens, averaged over heads (and over
    layers with `layer=None`); it sums to 1."""
    weights = text.weights[:, :, query]  # [layers, heads, tokens]
    weights = weights.mean(axis=(0, 1)) if layer is None else weights[layer].mean(axis=0)
    return weights.astype(np.float32)


def text_attention_figure(
    text: TextAttention, query: int, class_names, *, layer: int | None = -1, height: int = 300
) -> go.Figure:
    """One bar per prompt token, coloured by the phrase (class) it belongs to."""
    weights = token_weights(text, query, layer=layer)
    labels = [f"{i}: {token}" for i, token in enumerate(text.tokens)]
    phrase = text.token_phrase
    colours = [hex_color(CROP_RGB[p % len(CROP_RGB)] if p >= 0 else OTHER_TOKEN_RGB) for p in phrase]
    names = [str(class_names[p]) if p >= 0 else "(none)" for p in phrase]
    figure = go.Figure(
        go.Bar(
            x=labels, y=weights, marker_color=colours, customdata=names,
            hovertemplate="%{x}<br>class %{customdata}<br>weight %{y:.3f}<extra></extra>",
        )
    )  # fmt: skip
    figure.update_layout(
        height=height, margin=dict(l=40, r=10, t=10, b=80), yaxis_title="attention weight",
        xaxis_title="prompt token (colour = class)",
    )  # fmt: skip
    return figure
