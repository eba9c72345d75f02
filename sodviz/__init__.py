"""sodviz: see what a DETR-family detector attends to, and why it misses tiny objects.

The public names below load on first use, so `python -m sodviz --help` and light commands do
not pay for torch and transformers.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "attention_entropy": "sodviz.attention.entropy",
    "aggregate_attention_map": "sodviz.attention.maps",
    "query_attention_entropy": "sodviz.attention.maps",
    "query_attention_map": "sodviz.attention.maps",
    "query_attention_maps": "sodviz.attention.maps",
    "DEFAULT_CACHE": "sodviz.cache",
    "InferenceCache": "sodviz.cache",
    "run_inference": "sodviz.detector.inference",
    "run_inference_batch": "sodviz.detector.inference",
    "to_detections": "sodviz.detector.inference",
    "Detector": "sodviz.detector.loading",
    "load_detector": "sodviz.detector.loading",
    "with_prompt": "sodviz.detector.prompt",
    "DeformableAttention": "sodviz.types",
    "DenseAttention": "sodviz.types",
    "InferenceResult": "sodviz.types",
    "InputTransform": "sodviz.types",
    "TextAttention": "sodviz.types",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:  # a submodule, e.g. `sodviz.cache` after a bare `import sodviz`
        try:
            return importlib.import_module(f"sodviz.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module 'sodviz' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
