"""sodviz: see what a DETR-family detector attends to, and why it misses tiny objects."""

from sodviz.attention.entropy import attention_entropy
from sodviz.attention.maps import (
    aggregate_attention_map,
    query_attention_entropy,
    query_attention_map,
    query_attention_maps,
)
from sodviz.cache import DEFAULT_CACHE, InferenceCache
from sodviz.detector.inference import run_inference, run_inference_batch, to_detections
from sodviz.detector.loading import Detector, load_detector
from sodviz.types import DeformableAttention, DenseAttention, InferenceResult, InputTransform

__all__ = [
    "DEFAULT_CACHE",
    "DeformableAttention",
    "DenseAttention",
    "Detector",
    "InferenceCache",
    "InferenceResult",
    "InputTransform",
    "aggregate_attention_map",
    "attention_entropy",
    "load_detector",
    "query_attention_entropy",
    "query_attention_map",
    "query_attention_maps",
    "run_inference",
    "run_inference_batch",
    "to_detections",
]
