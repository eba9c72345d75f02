"""What a forward pass costs: its GFLOPs, counted by torch's `FlopCounterMode` on the model itself.

The counter adds up the matrix products and convolutions (`mm`, `addmm`, `bmm`, `baddbmm`,
`convolution`, scaled-dot-product attention) at 2 FLOPs per multiply-add. It does not count
element-wise work, normalisation, softmax, interpolation or `grid_sample`, so a deformable
model's sampling of its value maps (bilinear interpolation at every sampling point) is missing;
its value, offset and weight projections, which are linear layers, are counted. The count
depends only on the model and the input shape, so it is made once per (weights, input shape) and
kept.
"""

from __future__ import annotations

import inspect
import threading

import torch
from torch.utils.flop_counter import FlopCounterMode

from sodviz.detector.loading import Detector
from sodviz.detector.threads import run_model_work

NOT_COUNTED = (
    "element-wise work, normalisation, softmax, interpolation and grid_sample (a deformable "
    "model's bilinear sampling of its value maps)"
)
_COUNTS: dict[tuple[str, tuple[int, int]], float] = {}
_LOCK = threading.Lock()


def forward_gflops(detector: Detector, input_hw: tuple[int, int]) -> float:
    """GFLOPs of one image through the model at a model input of `input_hw` (pixels, after the
    processor's resize and padding). A batch of N inputs of that shape costs N times this."""
    key = (detector.content_hash, (int(input_hw[0]), int(input_hw[1])))
    with _LOCK:
        if key in _COUNTS:
            return _COUNTS[key]
    flops = _count(detector, key[1])
    with _LOCK:
        _COUNTS[key] = flops / 1e9
        return _COUNTS[key]


def results_gflops(detector: Detector, results) -> float:
    """GFLOPs of the passes that gave these `InferenceResult`s (each at its own model input)."""
    return sum(forward_gflops(detector, result.transform.input_hw) for result in results)


def _count(detector: Detector, input_hw: tuple[int, int]) -> int:
    parameter = next(detector.model.parameters())
    inputs = {"pixel_values": torch.zeros((1, 3, *input_hw), dtype=parameter.dtype, device=parameter.device)}
    if "pixel_mask" in inspect.signature(detector.model.forward).parameters:
        inputs["pixel_mask"] = torch.ones((1, *input_hw), dtype=torch.long, device=parameter.device)
    if detector.prompt is not None:
        text = detector.prompt.model_inputs(1)
        inputs.update({name: value.to(parameter.device) for name, value in text.items()})
    counter = FlopCounterMode(display=False)

    def forward() -> None:
        with torch.inference_mode(), counter:
            detector.model(**inputs)

    run_model_work(detector.lock, forward)
    return counter.get_total_flops()
