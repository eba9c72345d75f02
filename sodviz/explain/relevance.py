"""Relevance propagation for dense-attention DETRs (Chefer, Gur and Wolf, ICCV 2021).

Every attention map of the model (encoder self-attention, decoder self- and cross-attention)
is weighted by its gradient from the explained score, `A_bar = mean over heads of
relu(grad * A)`, and relevance is propagated layer by layer from the identity: the encoder's
image-to-image `R_ii += A_bar R_ii`, the decoder's query-to-query `R_qq += A_bar R_qq` and
`R_qi += A_bar R_qi` through self-attention, and `R_qi += norm(R_qq)^T A_bar norm(R_ii)`
through cross-attention, where `norm(R) = (R - I) / its row sums + I`. The explained query's
row of `R_qi` is its map over the feature grid. Deformable families have no dense attention to
propagate through and are refused with a sentence.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import torch

from sodviz.detector.loading import Detector
from sodviz.detector.preprocess import prepare_inputs
from sodviz.detector.threads import run_model_work
from sodviz.explain.targets import ExplainTarget, InstanceMaps
from sodviz.hooks import ForwardHooks


def relevance_map(
    detector: Detector, image: np.ndarray, target: ExplainTarget, *, input_size: int | None = None
) -> InstanceMaps:
    """Chefer relevance of `target`'s class score over the image (dense families only)."""
    if detector.family.deformable:
        raise ValueError(
            f"relevance propagation needs dense attention; {detector.family.name} samples deformable "
            "points (use ODAM or D-RISE for it)"
        )
    started = time.perf_counter()
    inputs, (transform,) = prepare_inputs(detector, [image], input_size=input_size)
    grid: dict = {}

    def on_projection(module, args, output) -> None:
        grid.setdefault("hw", (int(output.shape[-2]), int(output.shape[-1])))

    def backward() -> tuple[list, list, list, tuple]:
        with torch.enable_grad(), _graph_through(detector.model), ForwardHooks() as hooks:
            hooks.add(detector.model.model.input_projection, on_projection)
            outputs = detector.model(**inputs, output_attentions=True)
            encoder = list(outputs.encoder_attentions or ())
            decoder = list(outputs.decoder_attentions or ())
            cross = list(outputs.cross_attentions)
            if not cross or len(decoder) != len(cross):
                raise RuntimeError("the model did not return its decoder's self- and cross-attention")
            score = outputs.logits[0, target.query_index, target.class_id]
            gradients = torch.autograd.grad(score, encoder + decoder + cross, allow_unused=True)
            return encoder, decoder, cross, gradients

    encoder, decoder, cross, gradients = run_model_work(detector.lock, backward)
    weighted = [_weighted(a, g) for a, g in zip(encoder + decoder + cross, gradients, strict=True)]
    enc, dec, crs = (
        weighted[: len(encoder)],
        weighted[len(encoder) : len(encoder) + len(decoder)],
        weighted[-len(cross) :],
    )
    r_qi = propagate(enc, dec, crs)
    tokens = r_qi.shape[1]
    height, width = grid["hw"]
    if height * width != tokens:
        raise RuntimeError(f"{tokens} image tokens do not lie on the {height}x{width} feature grid")
    cells = r_qi[target.query_index].reshape(height, width).astype(np.float32)
    on_image = np.maximum(transform.grid_to_image(cells), 0)
    note = f"{len(enc)} encoder and {len(dec)} decoder layers on the {height}x{width} grid"
    return InstanceMaps("relevance", ("score",), on_image[None], time.perf_counter() - started, note)


def propagate(encoder: list[np.ndarray], decoder: list[np.ndarray], cross: list[np.ndarray]) -> np.ndarray:
    """Chefer's rules over gradient-weighted maps (encoder `(T, T)`, decoder self `(Q, Q)`,
    cross `(Q, T)` per layer) -> the query-to-image relevance `R_qi`, `(Q, T)`."""
    tokens = cross[0].shape[-1]
    r_ii = np.eye(tokens)
    for a in encoder:
        r_ii = r_ii + a @ r_ii
    queries = cross[0].shape[0]
    r_qq, r_qi = np.eye(queries), np.zeros((queries, tokens))
    for self_attention, cross_attention in zip(decoder, cross, strict=True):
        r_qq = r_qq + self_attention @ r_qq
        r_qi = r_qi + self_attention @ r_qi
        r_qi = r_qi + _normalized(r_qq).T @ cross_attention @ _normalized(r_ii)
    return r_qi


@contextmanager
def _graph_through(model: torch.nn.Module):
    """The frozen weights marked as needing a gradient for one forward, so every attention map
    (also one made from weights alone, as the first decoder layer's) lies on the graph;
    `torch.autograd.grad` to the maps leaves every `.grad` empty. Restored on exit."""
    frozen = [p for p in model.parameters() if not p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(True)
    try:
        yield
    finally:
        for parameter in frozen:
            parameter.requires_grad_(False)


def _weighted(attention: torch.Tensor, gradient: torch.Tensor | None) -> np.ndarray:
    """`[1, heads, rows, cols]` -> float64 `(rows, cols)`: mean over heads of relu(grad * A)."""
    if gradient is None:
        return np.zeros(attention.shape[-2:])
    return torch.relu(gradient * attention)[0].mean(0).detach().double().numpy()


def _normalized(relevance: np.ndarray) -> np.ndarray:
    """Chefer's normalisation: the part beyond the identity, each row scaled to sum 1."""
    beyond = relevance - np.eye(len(relevance))
    sums = beyond.sum(axis=1, keepdims=True)
    return np.divide(beyond, sums, out=np.zeros_like(beyond), where=sums > 0) + np.eye(len(relevance))
