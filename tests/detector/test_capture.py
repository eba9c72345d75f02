"""Hooks on decoder cross-attention: what they capture is what the model computed, and they go away."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sodviz.detector.capture import AttentionCapture, cross_attention_module, decoder_layers
from sodviz.detector.preprocess import prepare_inputs


def _hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _inputs_and_settled_hook_count(detector, image) -> tuple[dict, int]:
    """Model inputs, and the hook count after one forward: transformers adds its own recorders then."""
    inputs, _ = prepare_inputs(detector, [image])
    with torch.no_grad():
        detector.model(**inputs, output_attentions=True)
    return inputs, _hook_count(detector.model)


def _cross_attentions(outputs) -> tuple:
    """The image cross-attention weights a model returns: Grounding DINO's decoder returns
    (self, text, image) attentions."""
    if getattr(outputs, "cross_attentions", None) is not None:
        return outputs.cross_attentions
    return outputs.decoder_attentions[2]


def _points_per_level(module: torch.nn.Module, num_levels: int, num_points: int) -> list[int]:
    points = getattr(module, "n_points_list", None) or getattr(module, "num_points_list", None)
    return list(points) if points is not None else [num_points] * num_levels


def _reference_deformable_attention(value, level_shapes, locations, weights):
    """Multi-scale deformable attention written from its definition with grid_sample.

    value [B, S, heads, dh]; locations [B, Q, heads, levels, points, 2] in [0, 1];
    weights [B, Q, heads, levels, points] -> [B, Q, heads * dh].
    """
    batch_size, _, num_heads, head_dim = value.shape
    num_queries = locations.shape[1]
    output = value.new_zeros(batch_size, num_heads, head_dim, num_queries)
    start = 0
    for level, (height, width) in enumerate(level_shapes):
        level_value = value[:, start : start + height * width]  # [B, h*w, heads, dh]
        start += height * width
        level_value = level_value.permute(0, 2, 3, 1).reshape(batch_size * num_heads, head_dim, height, width)
        grid = 2 * locations[:, :, :, level] - 1  # [B, Q, heads, points, 2]
        grid = grid.permute(0, 2, 1, 3, 4).reshape(batch_size * num_heads, num_queries, -1, 2)
        sampled = F.grid_sample(level_value, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        level_weights = (
            weights[:, :, :, level].permute(0, 2, 1, 3).reshape(batch_size * num_heads, 1, num_queries, -1)
        )
        output += (sampled * level_weights).sum(-1).reshape(batch_size, num_heads, head_dim, num_queries)
    return output.reshape(batch_size, num_heads * head_dim, num_queries).transpose(1, 2)


def test_hooked_weights_equal_output_cross_attentions(deformable_detector, image):
    model = deformable_detector.model
    inputs, _ = prepare_inputs(deformable_detector, [image, image[::-1].copy()])
    with torch.no_grad(), AttentionCapture(model, deformable_detector.family) as capture:
        outputs = model(**inputs, output_attentions=True)
    locations, weights, _ = capture.deformable()
    num_layers = len(decoder_layers(model))
    assert weights.shape[:3] == (2, num_layers, model.config.num_queries)
    assert locations.shape == (*weights.shape, 2)
    module = cross_attention_module(decoder_layers(model)[0])
    points = _points_per_level(module, weights.shape[4], weights.shape[5])
    for layer, expected in enumerate(_cross_attentions(outputs)):
        unpadded = torch.cat([weights[:, layer, :, :, lv, :n] for lv, n in enumerate(points)], dim=-1)
        torch.testing.assert_close(unpadded, expected.reshape(unpadded.shape))
    # padded points (D-FINE lists) carry no weight, so every head still sums to one
    torch.testing.assert_close(weights.sum(dim=(-1, -2)), torch.ones(weights.shape[:4]))


def _level_strides(detector, num_levels: int) -> list[int]:
    """CNN backbones: 8 * 2**i. A ViT's projector rescales its one patch grid per level."""
    config = detector.model.config
    if detector.family.backbone == "vit":
        return [round(config.backbone_config.patch_size / f) for f in config.projector_scale_factors]
    return [8 * 2**i for i in range(num_levels)]


def test_level_shapes_are_the_feature_grids_of_a_non_square_input(deformable_detector):
    """A non-square input (h != w, so a swap shows): each level is its grid at the level's stride."""
    height, width = (56, 112) if deformable_detector.family.model_type == "rf_detr" else (64, 128)
    pixel_values = torch.rand(1, 3, height, width)
    inputs = {"pixel_values": pixel_values}
    if deformable_detector.prompt is not None:
        inputs.update(deformable_detector.prompt.model_inputs(1))
    with torch.no_grad(), AttentionCapture(deformable_detector.model, deformable_detector.family) as capture:
        deformable_detector.model(**inputs)
    _, weights, level_shapes = capture.deformable()
    strides = _level_strides(deformable_detector, weights.shape[4])
    expected = [(height // stride, width // stride) for stride in strides]
    assert [tuple(int(v) for v in shape) for shape in level_shapes] == expected


def test_captured_points_reproduce_module_output(deformable_detector, image):
    """Captured locations and weights, fed to a reference implementation, give the module's output."""
    model = deformable_detector.model
    inputs, _ = prepare_inputs(deformable_detector, [image])
    with torch.no_grad(), AttentionCapture(model, deformable_detector.family, keep_values=True) as capture:
        model(**inputs)
        locations, weights, level_shapes = capture.deformable()
        for layer, (record, decoder_layer) in enumerate(
            zip(capture.records, decoder_layers(model), strict=True)
        ):
            module = cross_attention_module(decoder_layer)
            hidden = record.encoder_hidden_states
            value = module.value_proj(hidden) if hasattr(module, "value_proj") else hidden
            value = value.reshape(*value.shape[:2], module.n_heads, -1)
            reference = _reference_deformable_attention(
                value, level_shapes, locations[:, layer], weights[:, layer]
            )
            if hasattr(module, "output_proj"):
                reference = module.output_proj(reference)
            torch.testing.assert_close(reference, record.output, rtol=1e-4, atol=1e-5)


def test_points_change_with_the_image(deformable_detector, image):
    """The capture follows the input (not a constant pattern from initialisation)."""
    model = deformable_detector.model
    inputs, _ = prepare_inputs(deformable_detector, [image, np.zeros_like(image)])
    with torch.no_grad(), AttentionCapture(model, deformable_detector.family) as capture:
        model(**inputs)
    locations, _, _ = capture.deformable()
    assert not torch.allclose(locations[0], locations[1])


def test_hooks_removed_after_forward(detector, image):
    model = detector.model
    inputs, before = _inputs_and_settled_hook_count(detector, image)
    with torch.no_grad(), AttentionCapture(model, detector.family) as capture:
        assert _hook_count(model) > before
        model(**inputs, output_attentions=not detector.family.deformable)
    assert _hook_count(model) == before
    if detector.family.deformable:  # records exist from registration on; weights only from a forward
        assert capture.records and all(record.weights is not None for record in capture.records)
    else:
        assert capture.grid_hw is not None


def test_hooks_removed_when_forward_raises(detector, image):
    model = detector.model
    inputs, before = _inputs_and_settled_hook_count(detector, image)

    def explode(module, args):
        raise RuntimeError("boom in the last decoder layer")

    bomb = decoder_layers(model)[-1].register_forward_pre_hook(explode)
    try:
        with (
            pytest.raises(RuntimeError, match="boom"),
            torch.no_grad(),
            AttentionCapture(model, detector.family),
        ):
            model(**inputs, output_attentions=not detector.family.deformable)
    finally:
        bomb.remove()
    assert _hook_count(model) == before


def test_capture_without_forward_raises(deformable_detector):
    with AttentionCapture(deformable_detector.model, deformable_detector.family) as capture:
        pass
    with pytest.raises(RuntimeError, match="no decoder cross-attention"):
        capture.deformable()


@pytest.mark.parametrize("model_type", ["grounding-dino", "mm-grounding-dino"])
def test_text_attention_is_what_the_decoder_returned(tiny_detectors, model_type, image):
    """Open-vocabulary models: the hooked attention over the prompt's tokens is the decoder's own."""
    detector = tiny_detectors[model_type]
    inputs, _ = prepare_inputs(detector, [image, image[::-1].copy()])
    with torch.no_grad(), AttentionCapture(detector.model, detector.family) as capture:
        outputs = detector.model(**inputs, output_attentions=True)
    text = capture.text()
    expected = torch.stack(outputs.decoder_attentions[1], dim=1)  # [B, layers, heads, Q, tokens]
    torch.testing.assert_close(text, expected)
    real = len(detector.prompt.tokens)
    torch.testing.assert_close(text[..., :real].sum(-1), torch.ones(text.shape[:-1]))
