"""ODAM (Zhao et al., ICLR 2023): gradient instance maps of one detection, for every family.

One backward pass per explained output (the query's class score, or one of its box coordinates)
into the memory the decoder reads: the encoder's output tokens at every feature level (the
projected backbone levels for encoder-free families). The map is ODAM's element-wise product,
`relu(sum over channels of gradient * feature)` per token, each level resampled onto the image
and the levels summed. Deformable families are included: the gradient flows through the
sampling (`grid_sample`). The memory is detached where the decoder receives it, so what the
map shows is how the decoder's reading of each location moves that output; a two-stage
model's query selection is held as it was. Gradients come from `torch.autograd.grad` with the
memory as the only input: no parameter gets a `.grad`, the shared detector is not changed.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from sodviz.detector.loading import Detector
from sodviz.detector.preprocess import prepare_inputs
from sodviz.detector.threads import run_model_work
from sodviz.explain.targets import ExplainTarget, InstanceMaps
from sodviz.hooks import ForwardHooks
from sodviz.types import InputTransform

ODAM_OUTPUTS = ("score", "x0", "y0", "x1", "y1")
_MEMORY_KEYS = ("encoder_hidden_states", "vision_encoder_hidden_states")


def odam_maps(
    detector: Detector,
    image: np.ndarray,
    target: ExplainTarget,
    *,
    outputs: tuple[str, ...] = ODAM_OUTPUTS,
    input_size: int | None = None,
    letterbox: bool = False,
) -> InstanceMaps:
    """ODAM maps of `target` for each of `outputs` ("score": the class logit, before the
    sigmoid or softmax; "x0".."y1": the box's corners, normalised to the input)."""
    unknown = set(outputs) - set(ODAM_OUTPUTS)
    if unknown:
        raise ValueError(f"ODAM explains {ODAM_OUTPUTS}, not {sorted(unknown)}")
    started = time.perf_counter()
    inputs, (transform,) = prepare_inputs(detector, [image], input_size=input_size, letterbox=letterbox)

    def gradients() -> tuple[list[np.ndarray], list[tuple[int, int]]]:
        memory, shapes, logits, boxes = _forward_with_memory(detector, inputs)
        if detector.prompt is not None:
            logits = detector.prompt.phrase_logits(logits)
        scalars = _outputs(logits[0, target.query_index], boxes[0, target.query_index], target.class_id)
        heats = []
        for name in outputs:
            (gradient,) = torch.autograd.grad(scalars[name], memory, retain_graph=True)
            heats.append(torch.relu((gradient * memory).sum(-1))[0].detach().float().numpy())
        return heats, shapes

    heats, shapes = run_model_work(detector.lock, gradients)
    maps = np.stack([levels_to_image(heat, shapes, transform) for heat in heats])
    note = f"gradient x memory at {len(shapes)} level{'s' * (len(shapes) > 1)} " + ", ".join(
        f"{h}x{w}" for h, w in shapes
    )
    return InstanceMaps("odam", tuple(outputs), maps, time.perf_counter() - started, note)


def levels_to_image(
    tokens: np.ndarray, shapes: list[tuple[int, int]], transform: InputTransform
) -> np.ndarray:
    """Per-token values `(sum h * w,)` over feature levels -> one `(H, W)` map on the original
    image: each level resampled onto the image, the levels summed."""
    total, start = np.zeros(transform.image_hw, np.float32), 0
    for h, w in shapes:
        total += transform.grid_to_image(tokens[start : start + h * w].reshape(h, w))
        start += h * w
    if start != len(tokens):
        raise ValueError(f"{len(tokens)} memory tokens do not lie on the levels {shapes}")
    return np.maximum(total, 0)


def _forward_with_memory(detector: Detector, inputs: dict) -> tuple:
    """One forward pass with the decoder's memory made a leaf that needs a gradient: the
    backbone and encoder run without a graph, the decoder and heads with one."""
    captured: dict = {}

    def on_decoder(module, args, kwargs):
        key = next((k for k in _MEMORY_KEYS if kwargs.get(k) is not None), None)
        if key is None:
            raise RuntimeError(f"{type(module).__name__} was not given the encoder's memory by keyword")
        memory = kwargs[key].detach().requires_grad_(True)
        captured["memory"] = memory
        shapes = kwargs.get("spatial_shapes_list")
        if shapes is None and kwargs.get("spatial_shapes") is not None:
            shapes = kwargs["spatial_shapes"].tolist()
        captured["shapes"] = shapes
        torch.set_grad_enabled(True)  # from here on (the decoder and the heads) with a graph
        return args, {**kwargs, key: memory}

    def on_projection(module, args, output) -> None:  # dense families: the single grid
        captured.setdefault("grid", (int(output.shape[-2]), int(output.shape[-1])))

    with torch.no_grad(), ForwardHooks() as hooks:
        hooks.add_pre(detector.model.model.decoder, on_decoder, with_kwargs=True)
        if not detector.family.deformable:
            hooks.add(detector.model.model.input_projection, on_projection)
        outputs = detector.model(**inputs)
        logits, boxes = outputs.logits, outputs.pred_boxes
    shapes = captured["shapes"] or [captured["grid"]]
    return captured["memory"], [(int(h), int(w)) for h, w in shapes], logits, boxes


def _outputs(logits: torch.Tensor, box_cxcywh: torch.Tensor, class_id: int) -> dict[str, torch.Tensor]:
    cx, cy, w, h = box_cxcywh.unbind(-1)
    return {
        "score": logits[class_id],
        "x0": cx - w / 2,
        "y0": cy - h / 2,
        "x1": cx + w / 2,
        "y1": cy + h / 2,
    }
