"""The training-free baselines: what each chooses, and what each spends of a budget."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sodviz.crops.baselines import baseline_crops
from sodviz.crops.budget import detect_at_budget
from sodviz.crops.vicrop import ViCropConfig, plan_crops
from sodviz.detector.inference import run_inference
from sodviz.synth.scenes import SceneConfig, generate_scene

CONFIG = ViCropConfig(k=2, scales=(0.25,), max_overlap=0.0)


@pytest.fixture(scope="module")
def scene():
    image, boxes, _ = generate_scene(5, SceneConfig(min_side=384, max_side=384))
    return image, boxes


def _shared(a, b) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))


def _covered(crops: np.ndarray, boxes: np.ndarray) -> int:
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    inside = [(cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1) for x0, y0, x1, y1 in crops]
    return int(np.any(inside, axis=0).sum()) if inside else 0


def test_the_oracle_covers_the_most_objects_a_greedy_cover_can(tiny_detectors, scene):
    image, boxes = scene
    result = run_inference(tiny_detectors["rt_detr"], image, cache=None)
    windows = plan_crops(result, ViCropConfig(k=0, scales=(0.25,))).windows_xyxy
    oracle = baseline_crops("oracle", result, CONFIG, truth_xyxy=boxes)
    assert len(oracle) == 2
    best_single = max(_covered(np.round(w)[None], boxes) for w in windows)
    assert _covered(oracle[:1], boxes) == best_single  # its first pick is the best window
    # five objects where windows overlap, three far away: the second crop must go to the three,
    # though another window holding the five overlaps the first by no more than allowed
    overlapping = ViCropConfig(k=2, scales=(0.25,), overlap=0.5, max_overlap=0.5)
    windows = np.round(plan_crops(result, replace(overlapping, k=0)).windows_xyxy)
    a = windows[0]
    b = next(w for w in windows if 0 < _shared(a, w) <= 0.25)
    far = next(w for w in windows if _shared(a, w) == 0 and _shared(b, w) == 0)
    point = (max(a[0], b[0]) + min(a[2], b[2])) / 2, (max(a[1], b[1]) + min(a[3], b[3])) / 2
    centres = [point] * 5 + [((far[0] + far[2]) / 2, (far[1] + far[3]) / 2)] * 3
    truth = np.array([[x - 2, y - 2, x + 2, y + 2] for x, y in centres])
    assert _covered(baseline_crops("oracle", result, overlapping, truth_xyxy=truth), truth) == 8
    for kind in ("random", "density"):
        other = baseline_crops(kind, result, CONFIG, image_key="a.png")
        assert _covered(other, boxes) <= _covered(oracle, boxes)
    with pytest.raises(ValueError, match="ground-truth"):
        baseline_crops("oracle", result, CONFIG)


def test_density_goes_where_the_first_pass_found_things(tiny_detectors, scene):
    """A result whose confident boxes all lie in the bottom-right corner: density crops go there."""
    image, _ = scene
    result = run_inference(tiny_detectors["rt_detr"], image, cache=None)
    boxes = np.tile(np.array([[300, 300, 310, 310]], np.float32), (len(result.boxes_xyxy), 1))
    scores = np.zeros_like(result.class_scores)
    third = len(scores) // 3
    scores[:third, 0] = 0.5
    scores[third:, 0] = 0.01  # below the density threshold: not counted, however many
    boxes[third:] = [10, 10, 20, 20]
    cornered = replace(result, boxes_xyxy=boxes, class_scores=scores)
    (crop,) = baseline_crops("density", cornered, replace(CONFIG, k=1))
    assert crop[0] <= 305 < crop[2] and crop[1] <= 305 < crop[3]


def test_random_crops_are_seeded_by_the_image(tiny_detectors, scene):
    image, _ = scene
    result = run_inference(tiny_detectors["rt_detr"], image, cache=None)
    config = ViCropConfig(k=3, scales=(0.25,), max_overlap=0.5)
    first = baseline_crops("random", result, config, image_key="a.png")
    np.testing.assert_array_equal(first, baseline_crops("random", result, config, image_key="a.png"))
    others = [baseline_crops("random", result, config, image_key=f"{i}.png") for i in range(5)]
    assert any(not np.array_equal(first, other) for other in others)


@pytest.mark.parametrize("method", ["random", "density", "oracle", "slicing_only"])
@pytest.mark.parametrize("budget", [2, 4])
def test_each_baseline_spends_its_passes(tiny_detectors, scene, method, budget):
    image, boxes = scene
    detector = tiny_detectors["rt_detr"]
    run = detect_at_budget(
        detector, image, method, budget, ViCropConfig(scales=(0.25, 0.5)), truth_xyxy=boxes, image_key="s.png"
    )
    assert run.passes <= budget and (run.passes == budget or run.shortfall)
    if method == "slicing_only":
        if budget == 4:  # a 2 x 2 grid, none of it the full-image pass
            assert not run.full_image
            assert run.passes == 4 and all(r.transform.image_hw != image.shape[:2] for r in run.results)
        else:  # at 2 a square image's grid is the image itself: that slice is the full-image pass
            assert run.full_image and run.passes == 1 and "has 1 slice" in run.shortfall
    else:
        assert run.full_image and run.results[0].transform.image_hw == image.shape[:2]


def test_the_oracle_on_an_image_without_objects_chooses_nothing(tiny_detectors, scene):
    image, _ = scene
    run = detect_at_budget(tiny_detectors["rt_detr"], image, "oracle", 3, CONFIG, truth_xyxy=np.zeros((0, 4)))
    assert run.passes == 1 and run.shortfall
