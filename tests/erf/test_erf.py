"""Effective receptive fields: gradients over input pixels, the Gaussian fit, every family."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sodviz.erf.fields import (
    BACKBONE_STAGES,
    available_stages,
    compute_erf,
    erf_maps,
    gradient_maps,
)
from sodviz.erf.gaussian import fit_gaussian
from sodviz.erf.stages import default_stages, stage_description
from sodviz.views.erf import erf_panel, zoom_window


def _conv_stack(depths=(2, 4, 8), channels=4):
    """A stack of 3x3 convolutions (stride 1, padding 1) and the features after `depths` layers."""
    torch.manual_seed(0)
    layers = torch.nn.ModuleList(
        [torch.nn.Conv2d(1 if i == 0 else channels, channels, 3, padding=1) for i in range(max(depths))]
    )
    for layer in layers:  # positive weights: every path adds up, as in Luo et al.'s analysis
        torch.nn.init.uniform_(layer.weight, 0.0, 1.0)

    def forward(pixels):
        out, x = [], pixels
        for depth, layer in enumerate(layers, start=1):
            x = layer(x)
            if depth in depths:
                out.append(x)
        return out

    forward.layers = layers
    return forward, depths


def test_conv_stack_erf_lies_inside_the_theoretical_field_and_grows_with_depth():
    forward, depths = _conv_stack()
    pixels = torch.rand(1, 1, 48, 48)
    maps, strides, _ = gradient_maps(forward, pixels, (24.0, 24.0))
    assert maps.shape == (3, 48, 48) and (strides == 1).all()
    sigmas = []
    for erf, depth in zip(maps, depths, strict=True):
        rows, cols = np.nonzero(erf)
        assert np.abs(rows - 24).max() <= depth and np.abs(cols - 24).max() <= depth  # RF = 2*depth + 1
        assert erf[24, 24] > 0
        sigmas.append(fit_gaussian(erf).sigma)
    assert sigmas[0] < sigmas[1] < sigmas[2]
    assert all(p.requires_grad and p.grad is None for p in forward.layers.parameters())  # no .backward()


@pytest.mark.parametrize(("sigma_x", "sigma_y"), [(6.0, 6.0), (4.0, 9.0)])
def test_a_synthetic_gaussian_is_fitted_within_5_percent(sigma_x, sigma_y):
    ys, xs = np.mgrid[0:80, 0:100].astype(float)
    blob = np.exp(-((xs - 55.0) ** 2) / (2 * sigma_x**2) - ((ys - 30.0) ** 2) / (2 * sigma_y**2))
    fit = fit_gaussian(blob)
    assert fit.sigma_xy == pytest.approx([sigma_x, sigma_y], rel=0.05)
    assert fit.center_xy == pytest.approx([55.0, 30.0], abs=0.5)
    assert fit.sigma == pytest.approx(np.sqrt(sigma_x * sigma_y), rel=0.15) and fit.r2 > 0.99


def test_a_large_map_is_block_averaged_and_still_fitted_within_5_percent():
    ys, xs = np.mgrid[0:640, 0:640].astype(float)
    blob = np.exp(-((xs - 320.0) ** 2 + (ys - 300.0) ** 2) / (2 * 40.0**2))
    fit = fit_gaussian(blob)
    assert fit.sigma == pytest.approx(40.0, rel=0.05) and fit.center_xy == pytest.approx([320, 300], abs=2)


def test_an_empty_map_has_no_fit():
    assert np.isnan(fit_gaussian(np.zeros((10, 10))).sigma)


def test_every_family_backbone(detector, image):
    before = {name: p.detach().clone() for name, p in detector.model.named_parameters()}
    result = compute_erf(detector, [image])
    assert np.isfinite(result.maps).all() and np.allclose(result.maps.sum(axis=(1, 2)), 1, atol=1e-4)
    if detector.family.backbone == "vit":  # the blocks the projector reads, then its levels
        assert result.stages == default_stages(detector) and result.stages[0].startswith("block")
    else:
        assert result.stages == BACKBONE_STAGES and (np.diff(result.strides) > 0).all()
    assert len(result.table()) == len(result.stages)
    assert all(p.grad is None for p in detector.model.parameters())  # autograd.grad only: no .grad
    assert all(torch.equal(before[n], p) for n, p in detector.model.named_parameters())
    assert not detector.model.training


def test_hybrid_encoder_outputs(tiny_detectors, image):
    detector = tiny_detectors["rt_detr"]
    stages = available_stages(detector)
    assert stages[:4] == BACKBONE_STAGES and stages[4:] == ("encoder0", "encoder1", "encoder2")
    result = compute_erf(detector, [image], stages=("stage2", "encoder0"))
    assert result.strides[0] == result.strides[1]  # the encoder's first level is the stride-8 one


@pytest.mark.parametrize("model_type", ["detr", "deformable_detr", "conditional_detr", "dab-detr", "d_fine"])
def test_encoder_tokens_are_laid_on_their_grids(tiny_detectors, image, model_type):
    detector = tiny_detectors[model_type]
    encoders = [s for s in available_stages(detector) if s.startswith("encoder")]
    assert encoders and encoders[0] == "encoder0"
    result = compute_erf(detector, [image], stages=("stage4", *encoders))
    assert np.isfinite(result.maps).all() and (result.maps.sum(axis=(1, 2)) > 0).all()
    if model_type != "deformable_detr":  # the single (or finest fused) level: the stride of its stage
        assert result.strides[1] in (result.strides[0], result.strides[0] / 4)


def test_a_point_at_the_border_of_a_non_square_input(tiny_detectors, image):
    detector = tiny_detectors["rt_detr_v2"]
    maps, _, point = erf_maps(detector, image, stages=("stage1",), point_xy=(0.0, 0.0))
    assert point.tolist() == [0.0, 0.0]
    rows, cols = np.nonzero(maps[0] > 0.05 * maps[0].max())
    assert rows.mean() < maps.shape[1] / 4 and cols.mean() < maps.shape[2] / 4  # near the corner
    with pytest.raises(ValueError, match="outside"):
        erf_maps(detector, image, point_xy=(1e6, 0.0))
    with pytest.raises(ValueError, match="unknown stages"):
        erf_maps(detector, image, stages=("stage9",))


def test_dataset_mode_averages_and_reports_progress(tiny_detectors, image):
    seen = []
    images = [image, image[:, ::-1].copy(), 255 - image]
    result = compute_erf(tiny_detectors["d_fine"], images, stages=("stage3",), on_progress=seen.append)
    assert seen == pytest.approx([1 / 3, 2 / 3, 1.0]) and result.images == 3
    with pytest.raises(ValueError, match="at least one"):
        compute_erf(tiny_detectors["d_fine"], [])


def test_ratios_stay_within_a_group_of_stages(tiny_detectors, image):
    result = compute_erf(
        tiny_detectors["rt_detr"], [image], stages=("stage3", "stage4", "encoder0", "encoder1")
    )
    ratios = result.sigma_ratios()
    assert np.isfinite(ratios[0]) and np.isnan(ratios[1]) and np.isfinite(ratios[2])
    assert result.stride_ratios()[0] == pytest.approx(2.0) and np.isnan(result.stride_ratios()[1])


def test_the_cli_writes_the_sigma_table_and_figures(tiny_model_dirs, image, tmp_path):
    from sodviz.cli import main
    from sodviz.imageio import encode_png

    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(3):
        (folder / f"{index}.png").write_bytes(encode_png(np.roll(image, 7 * index, axis=1)))
    out = tmp_path / "out"
    argv = ["erf", "--model", str(tiny_model_dirs["rt_detr"]), "--images", str(folder), "--n", "2"]
    assert main([*argv, "--stages", "stage1,stage2", "--random-weights", "--out", str(out)]) == 0
    table = json.loads((out / "erf.json").read_text())
    assert table["images"] == 2 and [row["stage"] for row in table["stages"]] == ["stage1", "stage2"]
    assert (out / "erf_random.csv").is_file() and (out / "erf_random_stage2.png").stat().st_size > 100
    assert main(["erf", "--images", str(tmp_path / "nothing"), "--model", str(tiny_model_dirs["detr"])]) != 0


def test_panels_draw_the_fit_and_refuse_unknown_scales():
    ys, xs = np.mgrid[0:64, 0:64].astype(float)
    blob = np.exp(-((xs - 32) ** 2 + (ys - 32) ** 2) / (2 * 6.0**2))
    fit = fit_gaussian(blob)
    linear, log = erf_panel(blob, fit), erf_panel(blob, fit, scale="log", point_xy=(32, 32))
    assert linear.shape == (64, 64, 3) and linear.dtype == np.uint8 and not np.array_equal(linear, log)
    bare = erf_panel(blob, None)
    assert linear[32, 32 + 6].min() > 200 and bare[32, 32 + 6].min() < 200  # the 1-sigma ellipse, white
    with pytest.raises(ValueError, match="scale"):
        erf_panel(blob, fit, scale="sqrt")


def test_erf_over_the_input_image_with_its_colour_bar():
    from sodviz.views.erf import erf_colorbar

    ys, xs = np.mgrid[0:64, 0:64].astype(float)
    blob = np.exp(-((xs - 32) ** 2 + (ys - 32) ** 2) / (2 * 4.0**2))
    photo = np.zeros((128, 128, 3), np.uint8)
    photo[:, :64] = (0, 200, 0)  # the model-input image at twice the map's size: resized to it
    over = erf_panel(blob, None, background=photo)
    assert tuple(over[5, 5]) == (0, 200, 0) and tuple(over[5, 60]) == (0, 0, 0)  # image where the ERF is 0
    assert tuple(over[32, 32]) != (0, 200, 0) and over[32, 32].sum() > 100  # the peak drawn over it
    barred = erf_colorbar(over, blob)
    assert barred.shape[0] == 64 and barred.shape[1] > 64
    np.testing.assert_array_equal(barred[:, :64], over)


def test_the_zoom_window_holds_every_stage_and_stays_inside(tiny_detectors, image):
    result = compute_erf(tiny_detectors["rt_detr"], [image], point_xy=(2.0, 3.0))
    x0, y0, x1, y1 = zoom_window(result)
    height, width = result.maps.shape[1:]
    assert (x0, y0) == (0, 0) and 2 < x1 <= width and 3 < y1 <= height
    widest = max(max(f.sigma_xy) for f in result.fits)
    assert x1 - 2 >= min(width - 2, 3 * widest)


def test_a_cached_erf_is_computed_once_per_point(tiny_detectors, image):
    from sodviz.cache import InferenceCache

    cache, calls = InferenceCache(), []
    detector = tiny_detectors["rt_detr"]
    first = compute_erf(detector, [image], stages=("stage2",), cache=cache, on_progress=calls.append)
    again = compute_erf(detector, [image], stages=("stage2",), cache=cache, on_progress=calls.append)
    assert again is first and calls == [1.0]
    moved = compute_erf(detector, [image], stages=("stage2",), point_xy=(3.0, 4.0), cache=cache)
    assert moved is not first and moved.point_xy.tolist() == [3.0, 4.0]


@pytest.mark.parametrize("model_type", ["lw_detr", "rf_detr"])
def test_vit_blocks_and_projected_levels(tiny_detectors, image, model_type):
    """A ViT without CNN stages: every block sits on the patch grid (one stride, the patch size);
    its ERF is the gradient of the block's own output, so a later block sees at least as far; the
    projected levels have the projector's strides."""
    detector = tiny_detectors[model_type]
    config = detector.model.config
    patch = config.backbone_config.patch_size
    stages = available_stages(detector)
    factors = config.projector_scale_factors if model_type == "lw_detr" else [1.0]  # RF-DETR: one level
    assert stages == ("block1", "block2", *(f"level{i}" for i in range(len(factors))))
    result = compute_erf(detector, [image], stages=stages)
    blocks = [i for i, s in enumerate(result.stages) if s.startswith("block")]
    assert result.strides[blocks].tolist() == [patch] * len(blocks)
    levels = [i for i, s in enumerate(result.stages) if s.startswith("level")]
    expected = [patch / factor for factor in factors]
    np.testing.assert_allclose(result.strides[levels], expected, rtol=0.05)
    assert result.fits[1].sigma >= result.fits[0].sigma * 0.9
    assert "ViT block 1" in stage_description(detector, "block1")
    assert "decoder samples" in stage_description(detector, "level0")
    backbone = detector.model.model.backbone.backbone
    assert list(backbone.out_features) == list(config.backbone_config.out_features)  # restored


@pytest.mark.parametrize("model_type", ["lw_detr", "rf_detr"])
def test_vit_block_maps_are_the_backbones_own(tiny_detectors, image, model_type):
    """The maps an ERF of `blockN` differentiates are the backbone's own outputs for those blocks
    (those its projector reads), and the levels are the projector's."""
    from sodviz.detector.preprocess import prepare_inputs
    from sodviz.erf.stages import vit_stage_features

    detector = tiny_detectors[model_type]
    pixels = prepare_inputs(detector, [image])[0]["pixel_values"]
    backbone = detector.model.model.backbone.backbone
    blocks = [s for s in default_stages(detector) if s.startswith("block")]
    with torch.no_grad():
        ours = vit_stage_features(detector, pixels, [*blocks, "level0"])
        theirs = backbone(pixels).feature_maps
        mask = torch.ones(1, *pixels.shape[-2:], dtype=torch.long)
        projected = detector.model.model.backbone(pixels, mask)
    assert len(blocks) == len(theirs)
    for block, expected in zip(blocks, theirs, strict=True):
        torch.testing.assert_close(ours[block], expected)
    level0 = projected[0] if isinstance(projected[0], torch.Tensor) else projected[0][0]
    torch.testing.assert_close(ours["level0"], level0)
