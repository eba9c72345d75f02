"""Category-Size soft labels and the Boost loss on hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers.loss.loss_rt_detr import RTDetrLoss

from conftest import build_tiny_model
from sodviz.modules.losses import (
    BoostConfig,
    BoostLoss,
    boost_loss_function,
    category_size,
    cs_curve,
    size_boost,
)
from sodviz.views.fusion_maps import cs_figure


def test_category_size_of_an_8px_object_in_a_1024px_image():
    boxes = torch.tensor([[0.5, 0.5, 8 / 1024, 8 / 1024]])
    cs = category_size(boxes, torch.tensor([2]), num_classes=4)
    assert cs.shape == (1, 4)
    assert float(cs[0, 2]) == pytest.approx(0.0078125)  # sqrt(8/1024 * 8/1024), the issue's check
    assert cs[0, [0, 1, 3]].abs().sum() == 0  # y is one-hot: other classes get 0


@pytest.mark.parametrize(
    "cs, beta, expected",
    [
        (0.0, 0.5, 1.0),  # no size: the full boost
        (1.0, 0.5, 0.0),  # the whole image: no boost
        (0.25, 0.5, 0.5),  # 1 - sqrt(0.25)
        (0.0078125, 1.0, 1 - 0.0078125),
    ],
)
def test_size_boost(cs, beta, expected):
    assert float(size_boost(torch.tensor(cs), beta)) == pytest.approx(expected)


def test_boost_config_refuses_a_non_positive_beta():
    with pytest.raises(ValueError, match="beta"):
        BoostConfig(beta=0)


def _criterion(cls, **kwargs):
    return cls(build_tiny_model("rt_detr").config, **kwargs)


def _case(size: float):
    """One image, two queries, three classes; query 0 predicts the target's box exactly (IoU 1)."""
    logits = torch.tensor([[[0.5, -1.0, 0.0], [2.0, -0.5, -2.0]]])
    boxes = torch.tensor([[[0.4, 0.4, size, size], [0.8, 0.8, 0.1, 0.1]]])
    targets = [{"class_labels": torch.tensor([1]), "boxes": torch.tensor([[0.4, 0.4, size, size]])}]
    indices = [(torch.tensor([0]), torch.tensor([0]))]
    return {"logits": logits, "pred_boxes": boxes}, targets, indices


def _bce(logit: float, target: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_boost_loss_matches_a_hand_computation():
    boost = BoostConfig(alpha=0.75, gamma=2.0, beta=0.5)
    outputs, targets, indices = _case(size=0.04)
    loss = _criterion(BoostLoss, boost=boost).loss_labels_vfl(outputs, targets, indices, num_boxes=1)[
        "loss_vfl"
    ]
    expected = 0.0
    for query, row in enumerate(outputs["logits"][0].tolist()):
        for label, logit in enumerate(row):
            if (query, label) == (0, 1):  # the positive: target IoU = 1, weight IoU * (1 + 1 - sqrt(0.04))
                expected += 1.0 * (2 - math.sqrt(0.04)) * _bce(logit, 1.0)
            else:  # negatives: alpha * p^gamma * BCE(p, 0)
                p = 1 / (1 + math.exp(-logit))
                expected += 0.75 * p**2 * _bce(logit, 0.0)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_boost_loss_equals_varifocal_for_an_object_filling_the_image():
    outputs, targets, indices = _case(size=1.0)  # cs = 1: boost 0, so the weights are VFL's
    boost = _criterion(BoostLoss, boost=BoostConfig()).loss_labels_vfl(outputs, targets, indices, 1)
    varifocal = _criterion(RTDetrLoss).loss_labels_vfl(outputs, targets, indices, 1)
    torch.testing.assert_close(boost["loss_vfl"], varifocal["loss_vfl"])
    small = _criterion(BoostLoss, boost=BoostConfig()).loss_labels_vfl(*_case(size=0.01), 1)
    assert float(small["loss_vfl"]) > float(varifocal["loss_vfl"])  # a small positive weighs more


def test_boost_loss_function_trains_a_detector():
    torch.manual_seed(0)
    model = build_tiny_model("rt_detr").train()
    labels = [
        {"class_labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.6, 0.6]])}
    ]  # overlaps queries
    pixels = torch.rand(1, 3, 96, 96)
    torch.manual_seed(1)
    default = model(pixel_values=pixels, labels=labels)
    model.loss_function = boost_loss_function(BoostConfig())
    torch.manual_seed(1)  # the same denoising groups
    boosted = model(pixel_values=pixels, labels=labels)
    assert set(boosted.loss_dict) == set(default.loss_dict)
    for key in default.loss_dict:  # box terms unchanged; classification terms weigh the positives more
        changed = boosted.loss_dict[key].item() - default.loss_dict[key].item()
        if "vfl" in key:
            assert changed >= 0
        else:
            assert changed == pytest.approx(0, abs=1e-6)
    assert boosted.loss.item() > default.loss.item()  # the denoising queries overlap the object
    boosted.loss.backward()
    assert all(p.grad is not None for p in model.model.decoder.class_embed.parameters())


def test_cs_curve_checks_the_issue_value():
    curve = cs_curve(np.array([8.0, 1024.0]), 1024, beta=0.5)
    np.testing.assert_allclose(curve["cs"], [0.0078125, 1.0])
    np.testing.assert_allclose(curve["weight"], [2 - np.sqrt(0.0078125), 1.0])
    assert len(cs_figure(curve, beta=0.5, image_side=1024).data) == 2
