"""GFLOPs of a forward pass: torch's counter against a count by hand of the same pass."""

from __future__ import annotations

import pytest
import torch

from sodviz.detector.flops import forward_gflops, results_gflops
from sodviz.detector.inference import run_inference_batch


def _by_hand(detector, input_hw: tuple[int, int]) -> int:
    """2 FLOPs per multiply-add: every convolution and linear layer from its output's size and
    fan-in (hooks), plus the attention products the config implies: Q K^T and A V cost
    2 * 2 * L_q * L_k * d per layer (encoder over the stride-32 grid; decoder self-attention over
    the queries; DETR's dense cross-attention from the queries to that grid)."""
    model, config = detector.model, detector.model.config
    total = [0]

    def conv(module, args, output):
        kernel = module.kernel_size[0] * module.kernel_size[1]
        total[0] += 2 * output.numel() * module.in_channels // module.groups * kernel

    def linear(module, args, output):
        total[0] += 2 * output.numel() * module.in_features

    hooks = [
        module.register_forward_hook(conv if isinstance(module, torch.nn.Conv2d) else linear)
        for module in model.modules()
        if isinstance(module, torch.nn.Conv2d | torch.nn.Linear)
    ]
    with torch.inference_mode():
        model(pixel_values=torch.zeros((1, 3, *input_hw)))
    for hook in hooks:
        hook.remove()
    grid = (input_hw[0] // 32) * (input_hw[1] // 32)
    queries, width = config.num_queries, config.d_model
    encoder_width = getattr(config, "encoder_hidden_dim", width)
    products = config.encoder_layers * 4 * grid * grid * encoder_width
    products += config.decoder_layers * 4 * queries * queries * width
    if not detector.family.deformable:
        products += config.decoder_layers * 4 * queries * grid * width
    return total[0] + products


@pytest.mark.parametrize("model_type", ["rt_detr", "detr"])
def test_the_counter_agrees_with_a_count_by_hand(tiny_detectors, model_type):
    detector = tiny_detectors[model_type]
    assert forward_gflops(detector, (128, 192)) * 1e9 == pytest.approx(
        _by_hand(detector, (128, 192)), rel=1e-9
    )


def test_a_batch_costs_each_of_its_inputs_at_the_padded_shape(tiny_detectors, image):
    """DETR keeps each crop's aspect, so a batch of a wide and a tall crop is padded to the larger
    of each side: both inputs cost that padded shape, more than the two alone."""
    detector = tiny_detectors["detr"]
    crops = [image[:60, :120], image[:120, :50]]
    results = run_inference_batch(detector, crops, input_size=96)
    input_hw = results[0].transform.input_hw
    alone = [run_inference_batch(detector, [crop], input_size=96)[0].transform.input_hw for crop in crops]
    assert all(hw != input_hw for hw in alone)
    assert results_gflops(detector, results) == pytest.approx(2 * forward_gflops(detector, input_hw))
    assert results_gflops(detector, results) > sum(forward_gflops(detector, hw) for hw in alone)
    assert forward_gflops(detector, (256, 256)) > 3.5 * forward_gflops(detector, (128, 128))
