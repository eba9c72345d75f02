"""Every instance map of one target by name, cached: the one entry the page and `explain` use."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from sodviz.attention.maps import query_attention_map
from sodviz.cache import DEFAULT_CACHE, InferenceCache, cached, image_hash
from sodviz.detector.loading import Detector
from sodviz.explain.drise import drise_map
from sodviz.explain.faithfulness import FaithfulnessCurves, faithfulness_curves, random_map
from sodviz.explain.odam import odam_maps
from sodviz.explain.perturb import ModelInput, model_input
from sodviz.explain.relevance import relevance_map
from sodviz.explain.targets import ExplainTarget, InstanceMaps
from sodviz.types import InferenceResult

EXPLAIN_METHODS = ("attention", "odam", "drise", "relevance", "random")
METHOD_NAMES = {
    "attention": "Cross-attention (last decoder layer; sampling points splatted for deformable models)",
    "odam": "ODAM (gradient x feature of the decoder's memory)",
    "drise": "D-RISE (random masks, black box)",
    "relevance": "Relevance propagation (Chefer et al.; dense attention only)",
    "random": "Random (the floor)",
}


def available_methods(detector: Detector) -> tuple[str, ...]:
    """The methods this detector can be explained by (relevance needs dense attention)."""
    return tuple(m for m in EXPLAIN_METHODS if m != "relevance" or not detector.family.deformable)


def explain(
    detector: Detector,
    image: np.ndarray,
    result: InferenceResult,
    target: ExplainTarget,
    method: str,
    *,
    input_size: int | None = None,
    masks: int = 1000,
    seed: int = 0,
    base: ModelInput | None = None,
    cache: InferenceCache | None = DEFAULT_CACHE,
    on_progress: Callable[[float], None] | None = None,
) -> InstanceMaps:
    """`method`'s maps of `target` on `image`, whose pass at `input_size` gave `result`
    ("drise": `masks` masks, `seed`; "random": `seed`)."""
    if method not in EXPLAIN_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {EXPLAIN_METHODS}")
    if method not in available_methods(detector):
        raise ValueError(f"{method} does not apply to {detector.family.name}: {METHOD_NAMES[method]}")
    settings = (input_size, masks, seed) if method == "drise" else (input_size, seed * (method == "random"))

    def key() -> tuple:
        box = tuple(np.round(target.box_xyxy, 3).tolist())
        return ("explain", method, detector.content_hash, image_hash(image), target.query_index,
                target.class_id, box, settings)  # fmt: skip

    def compute() -> InstanceMaps:
        if method == "odam":
            return odam_maps(detector, image, target, input_size=input_size)
        if method == "drise":
            return drise_map(
                detector, image, target, masks=masks, seed=seed, input_size=input_size, base=base,
                on_progress=on_progress,
            )  # fmt: skip
        if method == "relevance":
            return relevance_map(detector, image, target, input_size=input_size)
        if method == "random":
            return random_map(image.shape[:2], seed=seed)
        started = time.perf_counter()
        cells = query_attention_map(result, target.query_index, layer=-1)
        values = result.transform.grid_to_image(cells, conserve_mass=True)
        note = "the query's cross-attention in the last decoder layer, heads averaged"
        return InstanceMaps(
            "attention", ("score",), np.maximum(values, 0)[None], time.perf_counter() - started, note
        )

    return cached(cache, key, compute)


def faithfulness(
    detector: Detector,
    image: np.ndarray,
    maps: InstanceMaps,
    target: ExplainTarget,
    *,
    output: str = "score",
    input_size: int | None = None,
    seed: int = 0,
    base: ModelInput | None = None,
    cache: InferenceCache | None = DEFAULT_CACHE,
    on_progress: Callable[[float], None] | None = None,
) -> FaithfulnessCurves:
    """The deletion and insertion curves of `maps`' `output` map for `target`, cached by the
    map's own values."""
    values = maps.map(output)

    def key() -> tuple:
        box = tuple(np.round(target.box_xyxy, 3).tolist())
        return ("faithfulness", detector.content_hash, image_hash(image), image_hash(values),
                target.query_index, target.class_id, box, input_size, seed)  # fmt: skip

    def compute() -> FaithfulnessCurves:
        ready = base or model_input(detector, image, input_size=input_size)
        return faithfulness_curves(detector, ready, values, target, seed=seed, on_progress=on_progress)

    return cached(cache, key, compute)
