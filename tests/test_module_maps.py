"""Module maps for display: recorded CCTM / FINE maps, channel reductions, AATS-token ERFs, class
score against object size and the CS curve, and what the page draws from them."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from sodviz.ground_truth import GroundTruth
from sodviz.module_maps import (
    CCTM_MAPS,
    FINE_MAPS,
    aats_erf,
    cs_curve,
    fusion_maps,
    reduce_channels,
    score_by_size,
)
from sodviz.module_view import compare_detections, cs_figure, feature_panel, score_size_figure


def test_fusion_maps_of_every_level_and_fusion(tiny_module_detector, image):
    maps = fusion_maps(tiny_module_detector, image, cache=None)
    assert len(maps.cctm) == 3 and len(maps.fine) == 2
    assert [m["gate"].shape[-1] for m in maps.cctm] == [12, 6, 3]  # 96 px input, strides 8 to 32
    assert all(set(m) == set(CCTM_MAPS) for m in maps.cctm) and all(
        set(m) == set(FINE_MAPS) for m in maps.fine
    )
    assert maps.fine[1]["M"].shape == maps.fine[1]["F_low"].shape == maps.cctm[0]["E"].shape
    assert maps.nbytes > 0 and maps.input_hw == (96, 96)


def test_fusion_maps_need_modules(tiny_detectors, image):
    with pytest.raises(ValueError, match="no CCTM / FINE"):
        fusion_maps(tiny_detectors["rt_detr"], image, cache=None)


def test_reduce_channels():
    rng = np.random.default_rng(0)
    pattern = np.outer(np.linspace(-1, 1, 8), np.ones(6))  # a vertical ramp
    feature = np.stack([pattern * w for w in rng.normal(size=16)]) + rng.normal(scale=1e-3, size=(16, 8, 6))
    mean, one = reduce_channels(feature, "mean"), reduce_channels(feature, "channel", channel=3)
    assert mean.shape == one.shape == (8, 6) and mean.min() >= 0 and one.max() <= 1
    pca = reduce_channels(feature, "pca")
    assert pca.shape == (8, 6, 3) and pca.min() >= 0 and pca.max() <= 1
    ramp = abs(np.corrcoef(pca[..., 0].ravel(), pattern.ravel())[0, 1])
    assert ramp > 0.99  # the first component is the ramp the channels share
    assert not reduce_channels(np.ones((4, 3, 3)), "mean").any()  # a flat map
    with pytest.raises(ValueError, match="channel 16"):
        reduce_channels(feature, "channel", channel=16)
    with pytest.raises(ValueError, match="mode"):
        reduce_channels(feature, "max")


def test_aats_tokens_see_wider_as_r_grows_and_ignore_the_modulation(tiny_module_detector, tiny_detectors):
    image = np.random.default_rng(1).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    erf = aats_erf(tiny_module_detector, image, input_size=128)
    assert erf.stages == ("aats_r1", "aats_r2", "aats_r4")
    assert list(erf.strides) == [16, 32, 64]  # the stride-8 fusion's F_low pooled by r * k, k = 2
    assert np.allclose(erf.maps.sum(axis=(1, 2)), 1)
    assert np.all(np.diff(erf.sigmas) > 0)
    # the same weights without modules: the same F_low
    plain = aats_erf(tiny_detectors["rt_detr"], image, input_size=128)
    np.testing.assert_allclose(plain.maps, erf.maps, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="fusion 2"):
        aats_erf(tiny_module_detector, image, fusion=2)


def test_score_by_size_by_hand():
    truth = GroundTruth(
        boxes_xyxy=np.array([[0, 0, 5, 5], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32),
        class_names=np.array(["vehicle", "vehicle", "person"]),
    )
    found = sv.Detections(
        xyxy=np.array([[0, 0, 5, 5], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32),
        confidence=np.array([0.8, 0.6, 0.9], np.float32),
        class_id=np.array([0, 0, 0]),  # the third is the wrong class: that object scores 0
    )
    curve = score_by_size([found, sv.Detections.empty()], [truth, truth], [1.0, 1.0], ("vehicle", "person"),
                          edges=(0, 8, 16, 1e9))  # fmt: skip
    np.testing.assert_array_equal(curve["count"], [2, 4, 0])  # two images, sizes 5, 10, 10
    np.testing.assert_allclose(curve["mean_score"][:2], [0.8 / 2, 0.6 / 4])
    assert np.isnan(curve["mean_score"][2])
    empty = score_by_size([], [], [], ("vehicle",))
    assert empty["count"].sum() == 0


def test_cs_curve_checks_the_issue_value():
    curve = cs_curve(np.array([8.0, 1024.0]), 1024, beta=0.5)
    np.testing.assert_allclose(curve["cs"], [0.0078125, 1.0])
    np.testing.assert_allclose(curve["weight"], [2 - np.sqrt(0.0078125), 1.0])
    assert len(cs_figure(curve, beta=0.5, image_side=1024).data) == 2


def test_panels_and_comparison(image):
    panel = feature_panel(np.random.default_rng(0).normal(size=(8, 6, 12)), mode="pca", side=60)
    assert panel.shape == (60, 120, 3) and panel.dtype == np.uint8
    box = np.array([[40, 30, 90, 60]], np.float32)
    found = sv.Detections(xyxy=box, confidence=np.array([0.9], np.float32), class_id=np.array([0]))
    truth = GroundTruth(
        np.array([[40, 30, 90, 60], [0, 0, 4, 4]], np.float32), np.array(["vehicle", "vehicle"])
    )
    comparison = compare_detections(image, {"base": sv.Detections.empty(), "modules": found}, threshold=0.5,
                                    class_names=("vehicle",), truth=truth)  # fmt: skip
    assert comparison.counts == {"base": 0, "modules": 1}
    assert comparison.matches["modules"].missed.tolist() == [False, True]
    assert comparison.images["base"].shape == image.shape
    plain = compare_detections(image, {"a": found}, threshold=0.5, class_names=("vehicle",), truth=None)
    assert plain.matches is None
    curve = score_by_size([found], [truth], [1.0], ("vehicle",))
    assert len(score_size_figure({"base": curve, "modules": curve}).data) == 2
