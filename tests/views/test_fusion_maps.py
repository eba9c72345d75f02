"""What the Fusion maps page draws: channel reductions, panels, the base vs module comparison."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from sodviz.evaluation.ground_truth import GroundTruth
from sodviz.evaluation.score_by_size import score_by_size
from sodviz.views.fusion_maps import (
    compare_detections,
    feature_panel,
    reduce_channels,
    score_size_figure,
)


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


def test_maps_side_by_side_share_one_scale():
    from sodviz.views.fusion_maps import feature_panel, feature_range

    rng = np.random.default_rng(0)
    weak = rng.random((4, 8, 8)).astype(np.float32)
    strong = weak * 3
    alone = [feature_panel(f, mode="mean", side=16) for f in (weak, strong)]
    np.testing.assert_array_equal(alone[0], alone[1])  # each on its own scale: identical pictures
    shared = feature_range([weak, strong], mode="mean")
    both = [feature_panel(f, mode="mean", side=16, value_range=shared) for f in (weak, strong)]
    assert both[0].mean() != both[1].mean()
    assert shared[0] < weak.mean(axis=0).max() < shared[1]
