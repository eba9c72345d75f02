"""CCTM and FINE inserted into RT-DETR-family detectors: shapes, identity at start, AATS token
counts, gradients, and the save / load round trip through `load_detector`."""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import build_tiny_model
from sodviz.detector.loading import load_detector
from sodviz.modules import (
    CCTM,
    FineAttention,
    FineConfig,
    ModulesConfig,
    attach_modules,
    modules_of,
    record_maps,
    sample_tokens,
)
from sodviz.training.loop import export
from sodviz.training.recipe import TrainConfig

HYBRID = ["rt_detr", "rt_detr_v2", "d_fine"]  # families with a hybrid encoder (top-down fusions)
ALL = ModulesConfig(cctm=True, fine=FineConfig())


def _pixels(size: int = 128, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("model_type", HYBRID)
def test_maps_have_the_shape_of_every_level(model_type):
    model = attach_modules(build_tiny_model(model_type).eval(), ALL)
    with torch.no_grad(), record_maps(model) as maps:
        model(pixel_values=_pixels(128))
    channels = model.config.encoder_hidden_dim
    assert [maps[f"cctm{i}"]["gate"].shape[-1] for i in range(3)] == [16, 8, 4]  # strides 8, 16, 32
    for level in range(3):
        cctm = maps[f"cctm{level}"]
        assert {k: v.shape for k, v in cctm.items()} == {k: cctm["E"].shape for k in cctm}
        assert cctm["E"].shape[1] == channels
        assert float(cctm["gate"].min()) >= 0 and float(cctm["gate"].max()) <= 1
    for fusion, (low, high) in enumerate([(8, 4), (16, 8)]):  # stride-16 fusion, then stride-8
        fine = maps[f"fine{fusion}"]
        assert fine["F_low"].shape[-2:] == (low, low) and fine["F_high"].shape[-2:] == (high, high)
        assert fine["M"].shape == fine["F_low"].shape == fine["aligned"].shape
    assert modules_of(model).cctm.recording is None  # released after the block


@pytest.mark.parametrize(
    "config",
    [
        ALL,
        ModulesConfig(cctm=True),
        ModulesConfig(fine=FineConfig()),
        ModulesConfig(fine=FineConfig(modulation="direct")),
        ModulesConfig(fine=FineConfig(modulation="none")),
        ModulesConfig(fine=FineConfig(sampling="dense")),
        ModulesConfig(fine=FineConfig(ratio=4)),
    ],
    ids=["all", "cctm", "fine", "direct", "none", "dense", "r4"],
)
@pytest.mark.parametrize("model_type", HYBRID)
def test_inserted_modules_start_as_an_identity(model_type, config):
    model = build_tiny_model(model_type).eval()
    with torch.no_grad():
        before = model(pixel_values=_pixels(160))
        attach_modules(model, config)
        after = model(pixel_values=_pixels(160))
    torch.testing.assert_close(after.logits, before.logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(after.pred_boxes, before.pred_boxes, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "ratio, kernel, side",
    [
        (2, 1, 32),  # the paper's stride-16 fusion: F_low 32 x 32, F_high 16 x 16
        (2, 2, 64),  # the paper's stride-8 fusion
        (1, 1, 32),  # r = 1: F_low keeps every pixel as a query
        (1, 2, 64),
        (4, 1, 32),
        (4, 2, 64),
    ],
)
def test_aats_token_counts_are_hw_over_r2k2(ratio, kernel, side):
    fusion = FineAttention(channels=8, kernel=kernel, config=FineConfig(ratio=ratio))
    low, high = torch.rand(2, 8, side, side), torch.rand(2, 8, side // 2, side // 2)
    maps = fusion.maps(high, low)
    assert maps["query_tokens"].shape == (2, side * side // (ratio**2 * kernel**2), 8)
    assert maps["key_tokens"].shape == (2, (side // 2) ** 2 // kernel**2, 8)
    assert maps["M"].shape == low.shape


def test_dense_attention_uses_every_pixel():
    fusion = FineAttention(channels=8, kernel=2, config=FineConfig(sampling="dense"))
    maps = fusion.maps(torch.rand(1, 8, 8, 8), torch.rand(1, 8, 16, 16))
    assert maps["query_tokens"].shape[1] == 256 and maps["key_tokens"].shape[1] == 64


def test_token_sampling_averages_blocks_and_keeps_a_ragged_border():
    feature = torch.arange(36, dtype=torch.float32).view(1, 1, 6, 6)
    tokens = sample_tokens(feature, 4)  # ceil mode: a 2 x 2 grid, the border blocks are partial
    assert tokens.shape == (1, 4, 1)
    assert float(tokens[0, 0, 0]) == pytest.approx(float(feature[0, 0, :4, :4].mean()))
    assert float(tokens[0, 3, 0]) == pytest.approx(float(feature[0, 0, 4:, 4:].mean()))


@pytest.mark.parametrize(
    "bad", [dict(ratio=3), dict(sampling="sparse"), dict(modulation="scale"), dict(kernels=(0, 1))]
)
def test_fine_config_refuses_unknown_options(bad):
    with pytest.raises(ValueError, match="FINE"):
        FineConfig(**bad)


def test_cctm_follows_its_equations_once_scaled_in():
    cctm = CCTM(channels=4)
    with torch.no_grad():
        cctm.layer_scale.fill_(1.0)
    backbone, encoder = torch.rand(1, 4, 3, 3), torch.rand(1, 4, 3, 3)
    maps = cctm.maps(backbone, encoder)
    torch.testing.assert_close(maps["E1"], encoder + backbone * (1 - maps["E_prime"]))
    torch.testing.assert_close(maps["output"], 2 * encoder * maps["gate"] + backbone * (1 - maps["gate"]))
    with pytest.raises(ValueError, match="one shape"):
        cctm(backbone, encoder[..., :2])


def test_modules_refuse_models_without_a_hybrid_encoder_and_a_second_insertion():
    with pytest.raises(ValueError, match="hybrid encoder"):
        attach_modules(build_tiny_model("detr"), ALL)
    model = attach_modules(build_tiny_model("rt_detr"), ALL)
    with pytest.raises(ValueError, match="already"):
        attach_modules(model, ALL)


def _labels():
    boxes = torch.tensor([[0.3, 0.3, 0.05, 0.05], [0.7, 0.6, 0.2, 0.1]])
    return [{"class_labels": torch.tensor([0, 2]), "boxes": boxes}]


def test_gradients_reach_every_module_parameter():
    torch.manual_seed(0)
    model = attach_modules(build_tiny_model("rt_detr").train(), ALL)
    parameters = dict(modules_of(model).named_parameters())
    optimizer = torch.optim.SGD(parameters.values(), lr=0.1)
    for _ in range(2):  # zero-initialised scales open on the first step; then every path carries gradient
        optimizer.zero_grad()
        model(pixel_values=_pixels(128), labels=_labels()).loss.backward()
        optimizer.step()
    silent = [name for name, p in parameters.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == []


@pytest.mark.parametrize("dtype", [None, torch.float16])
def test_save_and_load_reattach_the_modules(tmp_path, dtype):
    torch.manual_seed(0)
    model = attach_modules(build_tiny_model("rt_detr").eval(), ALL)
    with torch.no_grad():
        for parameter in modules_of(model).parameters():  # trained-looking, not the identity start
            parameter.add_(torch.randn_like(parameter) * 0.1)
        rounded = copy.deepcopy(model).to(dtype).float() if dtype else model  # what the file can hold
        expected = rounded(pixel_values=_pixels(128)).logits
    folder = export(model, tmp_path / "model", config=TrainConfig(input_size=128), log=[], dtype=dtype)
    assert (folder / "sodviz_modules.json").is_file() and (folder / "sodviz_modules.safetensors").is_file()
    detector = load_detector(folder)
    loaded = modules_of(detector.model)
    assert loaded is not None and loaded.config.names == ("fine", "cctm")
    assert next(detector.model.parameters()).dtype == torch.float32
    with torch.no_grad():
        logits = detector.model(pixel_values=_pixels(128)).logits
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5)


def test_modules_config_round_trips_and_refuses_unknown_fields():
    config = ModulesConfig(cctm=True, fine=FineConfig(ratio=4, kernels=(2, 2)), boost={"beta": 0.5})
    assert ModulesConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="unknown fields"):
        ModulesConfig.from_json('{"cctm": true, "gates": 3}')
