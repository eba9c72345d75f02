"""Forward hooks that capture decoder cross-attention; registered in one place, always removed."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch
from torch import nn

from sodviz.detector.families import Family
from sodviz.hooks import ForwardHooks


@dataclass
class _LayerRecord:
    locations: torch.Tensor | None = None  # [B, Q, heads, levels, points, 2]
    weights: torch.Tensor | None = None  # [B, Q, heads, levels, points]
    offsets: torch.Tensor | None = None  # [B, Q, heads * sum_points * 2] (offset families)
    reference_points: torch.Tensor | None = None  # [B, Q, 1, 4] (offset families)
    level_shapes: list[tuple[int, int]] = field(default_factory=list)
    encoder_hidden_states: torch.Tensor | None = None  # [B, S, d_model], keep_values only
    output: torch.Tensor | None = None  # [B, Q, d_model], keep_values only
    text_weights: torch.Tensor | None = None  # [B, heads, Q, tokens] (open-vocabulary families)


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of a transformers DETR-family detector."""
    return model.model.decoder.layers


def cross_attention_module(layer: nn.Module) -> nn.Module:
    """The cross-attention module of one decoder layer."""
    for name in ("encoder_attn", "cross_attn"):
        if hasattr(layer, name):
            return getattr(layer, name)
    raise ValueError(f"decoder layer {type(layer).__name__} has no cross-attention module")


class AttentionCapture:
    """Capture the decoder cross-attention of one forward pass.

    Deformable families: sampling locations and weights of every decoder layer, from forward
    hooks on each layer's `MultiScaleDeformableAttention` submodule (RT-DETR, Deformable DETR)
    or, for modules that compute locations inline (RT-DETRv2, D-FINE), rebuilt from the captured
    sampling offsets and reference points with the module's own formula. Dense families: the
    feature grid `(h, w)` (the weights come from `output_attentions=True`).

    Use as a context manager; hooks are removed on exit, also when the forward raises:

        with AttentionCapture(model, family) as capture:
            outputs = model(**inputs)
        locations, weights, level_shapes = capture.deformable()
    """

    def __init__(self, model: nn.Module, family: Family, *, keep_values: bool = False) -> None:
        self.model = model
        self.family = family
        self.keep_values = keep_values
        self.records: list[_LayerRecord] = []
        self.grid_hw: tuple[int, int] | None = None
        self._hooks = ForwardHooks()

    def __enter__(self) -> AttentionCapture:
        try:
            self._register()
        except Exception:
            self.release()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def release(self) -> None:
        """Remove every hook this capture registered."""
        self._hooks.release()

    def _register(self) -> None:
        if not self.family.deformable:
            self._hooks.add(self.model.model.input_projection, self._on_projection)
            return
        for layer in decoder_layers(self.model):
            record = _LayerRecord()
            self.records.append(record)
            module = cross_attention_module(layer)
            self._hooks.add_pre(module, _bind(self._on_cross_input, record), with_kwargs=True)
            self._hooks.add(module, _bind(self._on_cross_output, record))
            if self.family.points_from_offsets:
                self._hooks.add(module.sampling_offsets, _bind(self._on_offsets, record))
            else:
                self._hooks.add(module.attn, _bind(self._on_sampling, record), with_kwargs=True)
            if self.family.open_vocabulary:
                self._hooks.add(layer.encoder_attn_text, _bind(self._on_text, record))

    # hooks --------------------------------------------------------------------------------
    def _on_projection(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self.grid_hw = (int(output.shape[-2]), int(output.shape[-1]))

    def _on_cross_input(self, record: _LayerRecord, module: nn.Module, args: tuple, kwargs: dict) -> None:
        arguments = inspect.signature(module.forward).bind_partial(*args, **kwargs).arguments
        record.level_shapes = [(int(h), int(w)) for h, w in arguments["spatial_shapes_list"]]
        record.reference_points = arguments.get("reference_points")
        if self.keep_values:
            record.encoder_hidden_states = arguments["encoder_hidden_states"]

    def _on_cross_output(self, record: _LayerRecord, module: nn.Module, args: tuple, output: tuple) -> None:
        if self.family.points_from_offsets:
            record.weights = output[1]  # [B, Q, heads, sum_points]
        if self.keep_values:
            record.output = output[0]

    def _on_text(self, record: _LayerRecord, module: nn.Module, args: tuple, output: tuple) -> None:
        record.text_weights = output[1]  # the decoder always asks it for its weights

    def _on_offsets(self, record: _LayerRecord, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        record.offsets = output  # [B, Q, heads * sum_points * 2]

    def _on_sampling(
        self, record: _LayerRecord, module: nn.Module, args: tuple, kwargs: dict, output
    ) -> None:
        arguments = inspect.signature(module.forward).bind(*args, **kwargs).arguments
        record.locations = arguments["sampling_locations"]
        record.weights = arguments["attention_weights"]

    # results ------------------------------------------------------------------------------
    def deformable(self) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        """Stacked capture of every decoder layer that ran.

        Returns:
            locations `[B, layers, Q, heads, levels, points, 2]` (normalised x, y on the input
            grid), weights `[B, layers, Q, heads, levels, points]`, and the (h, w) of each level.
        """
        records = [record for record in self.records if record.weights is not None]
        if not records:
            raise RuntimeError(
                "no decoder cross-attention was captured: did the model run inside the capture?"
            )
        modules = [cross_attention_module(layer) for layer in decoder_layers(self.model)]
        pairs = [
            self._points_from_offsets(record, module)
            if self.family.points_from_offsets
            else (record.locations, record.weights)
            for record, module in zip(self.records, modules, strict=True)
            if record.weights is not None
        ]
        locations = torch.stack([pair[0] for pair in pairs], dim=1)
        weights = torch.stack([pair[1] for pair in pairs], dim=1)
        return locations, weights, records[0].level_shapes

    def text(self) -> torch.Tensor:
        """Open-vocabulary families: `[B, layers, heads, Q, tokens]`, each query's attention over
        the prompt's tokens in every decoder layer."""
        weights = [record.text_weights for record in self.records if record.text_weights is not None]
        if not weights:
            raise RuntimeError("no attention over the text was captured (not an open-vocabulary model?)")
        return torch.stack(weights, dim=1)

    def _points_from_offsets(
        self, record: _LayerRecord, module: nn.Module
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """RT-DETRv2 / D-FINE / DEIMv2: locations = ref_xy + offset * (1 / points) * ref_wh * offset_scale."""
        points_list = list(getattr(module, "n_points_list", None) or module.num_points_list)
        points_scale = getattr(module, "n_points_scale", None)
        if points_scale is None:
            points_scale = module.num_points_scale
        reference = record.reference_points  # [B, Q, 1, 4]
        if reference is None or reference.shape[-1] != 4:
            raise ValueError("sodviz captures RT-DETRv2/D-FINE only with box (4-coordinate) reference points")
        batch_size, num_queries = record.weights.shape[:2]
        offsets = record.offsets.reshape(batch_size, num_queries, module.n_heads, sum(points_list), 2)
        scale = points_scale.to(offsets.dtype)[:, None]  # [sum_points, 1]
        locations = (
            reference[:, :, None, :, :2]
            + offsets * scale * reference[:, :, None, :, 2:] * module.offset_scale
        )
        return _pad_levels(locations, points_list), _pad_levels(record.weights, points_list)


def _pad_levels(values: torch.Tensor, points_list: list[int]) -> torch.Tensor:
    """`[B, Q, heads, sum_points, ...]` -> `[B, Q, heads, levels, max_points, ...]`, zero-padded."""
    max_points = max(points_list)
    chunks = values.split(points_list, dim=3)
    padded = []
    for chunk in chunks:
        pad_shape = (*chunk.shape[:3], max_points - chunk.shape[3], *chunk.shape[4:])
        padded.append(torch.cat([chunk, chunk.new_zeros(pad_shape)], dim=3))
    return torch.stack(padded, dim=3)


def _bind(hook, record: _LayerRecord):
    def bound(*args, **kwargs):
        return hook(record, *args, **kwargs)

    return bound
