"""Instance maps of every method on every family, and the faithfulness metrics on known cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sodviz.detector.inference import run_inference
from sodviz.explain.drise import random_masks
from sodviz.explain.faithfulness import (
    FaithfulnessCurves,
    energy_in_box,
    faithfulness_curves,
    pointing_hit,
    random_map,
    response_curves,
)
from sodviz.explain.methods import EXPLAIN_METHODS, available_methods, explain
from sodviz.explain.perturb import ModelInput, model_input
from sodviz.explain.targets import detection_target, missed_target
from sodviz.types import InputTransform


def _two_targets(result):
    """The two largest of the five best-scoring boxes (a random tiny model's tiny boxes move
    under any mask, and D-RISE would then see nothing of them)."""
    best = np.argsort(-result.scores)[:5]
    boxes = result.boxes_xyxy[best]
    order = best[np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]
    return detection_target(result, int(order[0])), detection_target(result, int(order[1]))


@pytest.mark.parametrize("method", ["attention", "odam", "relevance", "drise"])
def test_each_method_maps_the_image_and_follows_the_detection(detector, image, method):
    if method not in available_methods(detector):
        with pytest.raises(ValueError, match="does not apply"):
            explain(detector, image, run_inference(detector, image, cache=None), None, method, cache=None)
        return
    result = run_inference(detector, image, cache=None)
    first, second = _two_targets(result)
    if method == "drise":  # masks keeping most pixels: under half-masks a random tiny model loses everything
        from sodviz.explain.drise import drise_map

        a, b = (drise_map(detector, image, t, masks=24, keep=0.9) for t in (first, second))
    else:
        a, b = (explain(detector, image, result, t, method, cache=None) for t in (first, second))
    assert a.maps.shape[1:] == image.shape[:2] and np.isfinite(a.maps).all() and (a.maps >= 0).all()
    assert a.maps.max() > 0
    assert not np.allclose(a.maps, b.maps), "another detection must get another map"
    assert all(p.grad is None for p in detector.model.parameters())
    assert not any(p.requires_grad for p in detector.model.parameters()), "the detector stays frozen"


def test_odam_explains_the_score_and_each_box_corner(tiny_detectors, image):
    detector = tiny_detectors["rt_detr"]
    result = run_inference(detector, image, cache=None)
    maps = explain(detector, image, result, _two_targets(result)[0], "odam", cache=None)
    assert maps.names == ("score", "x0", "y0", "x1", "y1")
    assert not np.allclose(maps.map("score"), maps.map("x0"))


def test_odam_reads_the_memory_the_decoder_reads(tiny_detectors, image):
    """The gradient is taken at the memory the decoder really reads: the first-order change it
    predicts for a scaled memory is what a second forward pass with that memory gives."""
    from sodviz.detector.preprocess import prepare_inputs
    from sodviz.explain.odam import _forward_with_memory
    from sodviz.hooks import ForwardHooks

    detector, eps = tiny_detectors["detr"], 1e-2
    inputs, _ = prepare_inputs(detector, [image])
    memory, shapes, logits, _ = _forward_with_memory(detector, inputs)
    assert memory.shape[1] == sum(h * w for h, w in shapes)
    (gradient,) = torch.autograd.grad(logits[0, 0, 0], memory)
    predicted = eps * float((gradient * memory).sum())

    def scaled(module, args, kwargs):
        return args, {**kwargs, "encoder_hidden_states": kwargs["encoder_hidden_states"] * (1 + eps)}

    with torch.no_grad(), ForwardHooks() as hooks:
        hooks.add_pre(detector.model.model.decoder, scaled, with_kwargs=True)
        changed = detector.model(**inputs).logits[0, 0, 0]
    assert abs(predicted) > 1e-4
    assert float(changed - logits[0, 0, 0]) == pytest.approx(predicted, rel=0.1)


def _iou(a, b):
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    return inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)


def test_a_missed_object_is_explained_through_its_nearest_query(tiny_detectors, image):
    detector = tiny_detectors["rt_detr"]
    result = run_inference(detector, image, cache=None)
    areas = np.prod(result.boxes_xyxy[:, 2:] - result.boxes_xyxy[:, :2], axis=1)
    for query in np.argsort(-areas)[:2]:  # a random tiny model's boxes: take two that are not degenerate
        own = result.boxes_xyxy[query].astype(np.float64)
        box = np.r_[own[:2] - 0.1 * (own[2:] - own[:2]), own[2:] + 0.1 * (own[2:] - own[:2])]
        target = missed_target(result, box, class_id=1)
        assert target.missed and target.class_id == 1
        ious = np.array([_iou(b.astype(np.float64), box) for b in result.boxes_xyxy])
        assert ious[target.query_index] == pytest.approx(ious.max()) and ious.max() > 0.5
        np.testing.assert_allclose(target.box_xyxy, box)


def test_drise_is_seeded_and_batched_alike(tiny_detectors, image):
    detector = tiny_detectors["rt_detr"]
    result = run_inference(detector, image, cache=None)
    target = _two_targets(result)[0]
    from sodviz.explain.drise import drise_map

    one = drise_map(detector, image, target, masks=12, batch_size=4, seed=3)
    again = drise_map(detector, image, target, masks=12, batch_size=12, seed=3)
    other = drise_map(detector, image, target, masks=12, batch_size=4, seed=4)
    np.testing.assert_allclose(one.maps, again.maps, rtol=1e-4, atol=1e-6)
    assert not np.allclose(one.maps, other.maps)


def test_the_curves_do_not_depend_on_the_batch(tiny_detectors, image):
    detector = tiny_detectors["rt_detr"]
    target = _two_targets(run_inference(detector, image, cache=None))[0]
    base = model_input(detector, image)
    image_map = np.random.default_rng(0).random(image.shape[:2])
    one = faithfulness_curves(detector, base, image_map, target, batch_size=4)
    other = faithfulness_curves(detector, base, image_map, target, batch_size=16)
    np.testing.assert_allclose(one.response, other.response, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(one.score, other.score, rtol=1e-4, atol=1e-6)


def test_random_masks_are_soft_and_keep_about_p():
    masks = random_masks(200, (40, 60), cells=8, keep=0.5, seed=0)
    assert masks.shape == (200, 40, 60) and masks.min() >= 0 and masks.max() <= 1
    assert abs(masks.mean() - 0.5) < 0.05
    assert ((masks > 0.05) & (masks < 0.95)).mean() > 0.1  # bilinear edges, not hard cells


def _toy_input(height=64, width=64):
    """A 'model input' of ones, black and blurred copies of zeros: the response below is the
    share of the box's pixels still showing the image."""
    transform = InputTransform(image_hw=(height, width), resized_hw=(height, width), input_hw=(height, width))
    ones = torch.ones(1, 3, height, width)
    return ModelInput({"pixel_values": ones}, transform, torch.zeros_like(ones), torch.zeros_like(ones))


def _box_share(box):
    x0, y0, x1, y1 = box

    def respond(copies, count):
        pixels = copies(0, count)
        share = pixels[:, 0, y0:y1, x0:x1].mean(dim=(1, 2)).double().numpy()
        return share, share, np.ones(count)

    return respond


def test_deletion_and_insertion_have_the_known_areas():
    base, box = _toy_input(), (8, 16, 16, 24)  # 64 of 4,096 pixels
    inside = np.zeros((64, 64), np.float32)
    inside[16:24, 8:16] = 1
    fractions = np.linspace(0, 1, 65)  # one step = 64 pixels = the box
    best = response_curves(base, inside, _box_share(box), fractions=fractions)
    worst = response_curves(base, 1 - inside, _box_share(box), fractions=fractions)
    step = 1 / 64
    assert best.auc("deletion") == pytest.approx(step / 2)  # gone after the first step
    assert best.auc("insertion") == pytest.approx(1 - step / 2)  # all there after the first step
    assert worst.auc("deletion") == pytest.approx(1 - step / 2)  # the box goes last
    assert worst.auc("insertion") == pytest.approx(step / 2)
    floor = response_curves(base, random_map((64, 64), seed=1).map(), _box_share(box), fractions=fractions)
    assert best.auc("deletion") < floor.auc("deletion") < worst.auc("deletion")


def test_curves_area_is_the_trapezoid():
    curves = FaithfulnessCurves(
        np.array([0, 0.5, 1.0]), np.array([[1, 0.5, 0], [0, 1, 1]], float), np.zeros((2, 3)), np.zeros((2, 3))
    )
    assert curves.auc("deletion") == pytest.approx(0.5) and curves.auc("insertion") == pytest.approx(0.75)


def test_pointing_and_energy():
    values = np.zeros((20, 30), np.float32)
    values[5:10, 10:20] = 1
    values[0, 0] = 0.5
    assert pointing_hit(values, (10, 5, 20, 10))
    assert not pointing_hit(values, (0, 12, 5, 20))
    assert not pointing_hit(np.ones((5, 5)), (0, 0, 5, 5)), "a flat map points nowhere"
    assert energy_in_box(values, (10, 5, 20, 10)) == pytest.approx(50 / 50.5)
    assert energy_in_box(values, (10, 5, 15, 10)) == pytest.approx(25 / 50.5)
    assert energy_in_box(values, (10, 5, 12.5, 10)) == pytest.approx(12.5 / 50.5)  # half pixels count half


def test_model_input_copies_mix_image_and_fill(tiny_detectors, image):
    from sodviz.explain.perturb import mix

    base = model_input(tiny_detectors["rt_detr"], image)
    keep = torch.zeros(2, *base.valid_hw)
    keep[1] = 1
    copies = mix(base, keep, base.black)
    torch.testing.assert_close(copies[0], base.black[0])
    torch.testing.assert_close(copies[1], base.pixels[0])


def test_every_method_is_listed():
    assert set(EXPLAIN_METHODS) == {"attention", "odam", "drise", "relevance", "random"}


def test_relevance_rules_on_a_hand_made_case():
    """Two image tokens, one query. The encoder's map (rows summing to 1) gives R_ii = I + A_e,
    whose part beyond the identity is already row-normalised; with no decoder self-attention,
    R_qi = A_c (I + A_e) = [1, 0] [[1.5, 0.5], [1, 1]] = [1.5, 0.5]."""
    from sodviz.explain.relevance import propagate

    encoder = [np.array([[0.5, 0.5], [1.0, 0.0]])]
    r_qi = propagate(encoder, [np.zeros((1, 1))], [np.array([[1.0, 0.0]])])
    np.testing.assert_allclose(r_qi, [[1.5, 0.5]])
    # two queries, two layers, cross-attention I: layer 1 gives R_qi = I; layer 2's self-attention
    # S (query 0 reads query 1) gives R_qq = I + S, R_qi = I + S, then + (I + S)^T:
    # [[1, 1], [0, 1]] + [[1, 0], [1, 1]] = [[2, 1], [1, 2]]
    self_attention = np.array([[0.0, 1.0], [0.0, 0.0]])
    two_layers = propagate([], [np.zeros((2, 2)), self_attention], [np.eye(2), np.eye(2)])
    np.testing.assert_allclose(two_layers, [[2.0, 1.0], [1.0, 2.0]])


def test_relevance_maps_the_explained_querys_row(tiny_detectors, image, monkeypatch):
    """Each query's row of R_qi is one-hot at its own token: the map must peak where the
    explained query's token lies, whichever query is explained."""
    from sodviz.explain import relevance

    detector = tiny_detectors["detr"]
    result = run_inference(detector, image, cache=None)
    monkeypatch.setattr(relevance, "propagate", lambda enc, dec, crs: np.eye(*crs[0].shape))
    peaks = set()
    for query in (0, 3):
        heat = relevance.relevance_map(detector, image, detection_target(result, query)).map()
        peaks.add(np.unravel_index(heat.argmax(), heat.shape))
    assert len(peaks) == 2


def test_faithfulness_is_cached_by_the_maps_own_values(tiny_detectors, image, monkeypatch):
    from sodviz.cache import InferenceCache
    from sodviz.explain import methods

    detector = tiny_detectors["rt_detr"]
    result = run_inference(detector, image, cache=None)
    target = detection_target(result, 0)
    calls = []
    real = methods.faithfulness_curves
    monkeypatch.setattr(methods, "faithfulness_curves", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache = InferenceCache(max_bytes=1 << 26)
    noise, other = random_map(image.shape[:2], seed=0), random_map(image.shape[:2], seed=1)
    first = methods.faithfulness(detector, image, noise, target, cache=cache)
    assert methods.faithfulness(detector, image, noise, target, cache=cache) is first and len(calls) == 1
    methods.faithfulness(detector, image, other, target, cache=cache)
    assert len(calls) == 2, "another map is another curve"
