"""ViCrop-Det planning: top-K selection under budgets, the gate, crops in original pixels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sodviz.crops.vicrop import ViCropConfig, plan_crops, select_windows
from sodviz.crops.windows import uncovered_intensity
from sodviz.detector.inference import run_inference

WINDOWS = np.array(
    [
        [0, 0, 10, 10],  # best
        [5, 5, 15, 15],  # overlaps the best
        [20, 0, 30, 10],
        [0, 20, 10, 30],
        [20, 20, 40, 40],  # large
    ],
    np.float32,
)
SCORES = np.array([0.9, 0.8, 0.5, 0.0, 0.3], np.float32)


@pytest.mark.parametrize(
    ("k", "max_overlap", "max_area", "expected"),
    [
        (0, 0.0, None, []),  # K = 0
        (1, 0.0, None, [0]),
        (10, 0.0, None, [0, 2, 4]),  # K above the number of windows; the zero-score one never
        (10, 0.25, None, [0, 1, 2, 4]),  # 25 of 100 px shared is allowed at 0.25
        (10, 0.0, 250.0, [0, 2]),  # the 400 px window breaks the pixel budget
    ],
)
def test_select_windows(k, max_overlap, max_area, expected):
    chosen = select_windows(SCORES, WINDOWS, k=k, max_overlap=max_overlap, max_area=max_area)
    assert chosen.tolist() == expected and chosen.dtype == np.int64


def test_select_windows_with_no_windows():
    assert select_windows(np.zeros(0), np.zeros((0, 4)), k=3).tolist() == []


@pytest.mark.parametrize("selection", ["fixed", "marginal"])
def test_plan_picks_non_overlapping_crops_inside_the_image(detector, image, selection):
    result = run_inference(detector, image, cache=None)
    plan = plan_crops(
        result, ViCropConfig(k=3, scales=(0.3, 0.6), overlap=0.5, max_overlap=0.0, selection=selection)
    )
    assert plan.refine and "refined" in plan.reason
    assert len(plan.windows) == len(plan.windows_xyxy) and 0 < len(plan.chosen) <= 3
    height, width = image.shape[:2]
    crops = plan.crops_xyxy
    assert (crops[:, 0] >= 0).all() and (crops[:, 2] <= width).all()
    assert (crops[:, 1] >= 0).all() and (crops[:, 3] <= height).all()
    assert (crops[:, 2] > crops[:, 0]).all() and (crops[:, 3] > crops[:, 1]).all()
    for i in range(len(crops)):
        for j in range(i + 1, len(crops)):
            overlap_w = min(crops[i, 2], crops[j, 2]) - max(crops[i, 0], crops[j, 0])
            overlap_h = min(crops[i, 3], crops[j, 3]) - max(crops[i, 1], crops[j, 1])
            assert overlap_w <= 1 or overlap_h <= 1  # rounding to pixels may touch by one
    if selection == "fixed":
        assert (np.diff(plan.windows.score[plan.chosen]) <= 1e-7).all()  # best first
    else:
        assert plan.chosen[0] == np.argmax(plan.windows.score)  # the first pick is the same


def test_an_unknown_selection_is_refused():
    with pytest.raises(ValueError, match="selection"):
        ViCropConfig(selection="random")


def test_select_windows_rescores_after_each_pick():
    seen = []

    def rescore(chosen):  # after a pick, only the large window keeps a score
        seen.append(list(chosen))
        return np.where(np.arange(len(SCORES)) == 4, 0.3, 0.0)

    chosen = select_windows(SCORES, WINDOWS, k=10, max_overlap=1.0, rescore=rescore)
    assert chosen.tolist() == [0, 4] and seen == [[0], [0, 4]]


def test_marginal_selection_moves_away_from_covered_attention():
    attention = np.zeros((8, 8))
    attention[:4, :4] = 1.0  # two blobs, the first twice as heavy
    attention[:4, :4] *= 2
    attention[5:, 5:] = 1.0
    cells = np.array([[0, 0, 4, 4], [0, 0, 3, 3], [4, 4, 8, 8]])
    left = uncovered_intensity(attention, cells, cells[:1])
    assert left.tolist() == [0.0, 0.0, 9 / 41]  # nested window: nothing left; the other blob kept
    assert uncovered_intensity(attention, cells, np.zeros((0, 4))).sum() == pytest.approx((32 + 18 + 9) / 41)


def test_windows_flush_with_the_border_reach_the_image_border(tiny_detectors, image):
    result = run_inference(tiny_detectors["rt_detr"], image, cache=None)
    plan = plan_crops(result, ViCropConfig(k=0, scales=(0.5,), overlap=0.0))
    height, width = image.shape[:2]
    assert plan.windows_xyxy[:, 0].min() == pytest.approx(0, abs=1e-3)
    assert plan.windows_xyxy[:, 2].max() == pytest.approx(width, abs=1e-3)
    assert plan.windows_xyxy[:, 3].max() == pytest.approx(height, abs=1e-3)
    assert len(plan.chosen) == 0 and plan.refine  # K = 0: nothing to re-detect, not a gate decision


def test_the_gate_skips_easy_images(tiny_detectors, image):
    result = run_inference(tiny_detectors["rt_detr"], image, cache=None)
    plan = plan_crops(result, ViCropConfig(gate_min_uncertain=result.num_queries + 1, score_band=(0.0, 1.01)))
    assert not plan.refine and plan.reason.startswith("skipped")
    assert plan.chosen.size == 0 and plan.crops_xyxy.shape == (0, 4)
    assert plan.uncertain_queries == result.num_queries


def test_run_vicrop_without_crops_keeps_the_base_detections(tiny_detectors, image):
    from sodviz.crops.vicrop import run_vicrop

    detector = tiny_detectors["rt_detr"]
    outcome = run_vicrop(detector, image, config=ViCropConfig(k=0, score_threshold=0.2), cache=None)
    assert outcome.forward_passes == 1 and len(outcome.refined.detections) == 0
    assert sorted(outcome.fused.xyxy.tolist()) == sorted(outcome.base.xyxy.tolist())
    gated = run_vicrop(detector, image, config=ViCropConfig(k=3, gate_min_uncertain=10**6), cache=None)
    assert gated.forward_passes == 1 and not gated.plan.refine


def test_run_vicrop_on_an_image_with_no_detections(tiny_detectors, image):
    from sodviz.crops.vicrop import run_vicrop

    outcome = run_vicrop(
        tiny_detectors["detr"], image, config=ViCropConfig(k=2, score_threshold=1.01), cache=None
    )
    assert len(outcome.base) == 0 and len(outcome.fused) == 0
    assert outcome.forward_passes == 1 + len(outcome.plan.crops_xyxy)


def test_window_heatmap_is_the_mean_over_covering_windows():
    from sodviz.views.vicrop import window_heatmap

    windows = np.array([[0, 0, 6, 4], [3, 2, 9, 8], [20, 20, 30, 30]], np.float32)  # the last is outside
    values = np.array([1.0, 3.0, 5.0])
    heat = window_heatmap(windows, values, (10, 12))
    expected = np.zeros((10, 12))
    count = np.zeros((10, 12))
    for (x0, y0, x1, y1), value in zip(windows.astype(int), values, strict=True):
        expected[y0:y1, x0:x1] += value
        count[y0:y1, x0:x1] += 1
    np.testing.assert_allclose(heat, np.divide(expected, count, out=np.zeros_like(expected), where=count > 0))


def test_vicrop_view_with_ground_truth(tiny_detectors, image):
    from sodviz.crops.vicrop import run_vicrop
    from sodviz.evaluation.ground_truth import GroundTruth
    from sodviz.views.vicrop import counts_table, vicrop_view

    detector = tiny_detectors["rt_detr"]
    outcome = run_vicrop(detector, image, config=ViCropConfig(k=2, scales=(0.5,)), cache=None)
    truth = GroundTruth(boxes_xyxy=np.array([[10, 10, 20, 20]], np.float32), class_names=np.array(["x"]))
    view = vicrop_view(outcome, image, scale=0.5, score_threshold=0.0, class_names=("a", "b"), truth=truth)
    assert set(view.heatmaps) == {"intensity", "entropy", "score"}
    assert all(
        h.shape[0] == image.shape[0] and h.shape[1] > image.shape[1] + 20 for h in view.heatmaps.values()
    )
    assert view.before.shape == view.after.shape == image.shape
    from sodviz.views.vicrop import above, fusion_changes

    assert view.crops is not None
    counts = fusion_changes(above(outcome.base, 0.0), above(outcome.fused, 0.0))
    assert (view.added, view.replaced, view.removed) == counts
    assert view.added + view.replaced <= int(outcome.fused.data["refined"].sum())
    assert [r["crop"] for r in view.crop_rows] == list(range(len(outcome.plan.crops_xyxy)))
    assert len({r["colour"] for r in view.crop_rows}) == len(view.crop_rows)
    rows = counts_table({"original": view.before_match, "ViCrop": view.after_match})
    assert [r["size"] for r in rows] == ["tiny", "small", "medium", "large"] and "fn ViCrop" in rows[0]
    empty = run_vicrop(detector, image, config=ViCropConfig(k=0), cache=None)
    assert vicrop_view(empty, image, scale=0.25, score_threshold=0.5, class_names=("a", "b")).crops is None


def test_fusion_changes_tell_added_from_replaced_and_removed():
    import supervision as sv

    from sodviz.views.vicrop import fusion_changes

    def detections(boxes, queries, refined):
        return sv.Detections(
            xyxy=np.array(boxes, np.float32).reshape(-1, 4),
            confidence=np.full(len(boxes), 0.9, np.float32),
            class_id=np.zeros(len(boxes), int),
            data={"query_index": np.array(queries), "refined": np.array(refined, bool)},
        )

    before = detections([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], [0, 1, 2], [False] * 3)
    after = detections(  # q0 kept; q1's place taken by a crop box; q2 gone; one new object from a crop
        [[0, 0, 10, 10], [21, 21, 30, 31], [80, 80, 84, 84]], [0, 7, 9], [False, True, True]
    )
    assert fusion_changes(before, after) == (1, 1, 1)
    assert fusion_changes(before, before) == (0, 0, 0)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            ViCropConfig(k=50, scales=(0.5,), overlap=0.5, max_overlap=0.0, selection="fixed"),
            "overlaps a chosen",
        ),
        (
            ViCropConfig(k=50, scales=(0.5,), overlap=0.0, max_overlap=1.0, fill=False),
            "cover all the attention",
        ),
        (ViCropConfig(k=50, scales=(1.0, 0.67), max_overlap=1.0, fill=True), "no other window"),
        (ViCropConfig(k=50, scales=(0.5,), overlap=0.5, max_overlap=1.0, pixel_budget=0.3), "pixel budget"),
    ],
)
def test_a_budget_not_spent_says_why(tiny_detectors, image, config, expected):
    result = run_inference(tiny_detectors["detr"], image, cache=None)
    plan = plan_crops(result, config)
    assert 0 < len(plan.chosen) < config.k
    assert expected in plan.shortfall and plan.shortfall in plan.reason
    assert plan_crops(result, ViCropConfig(k=1)).shortfall == ""


def test_fill_spends_the_budget_once_the_attention_is_covered(tiny_detectors, image):
    result = run_inference(tiny_detectors["detr"], image, cache=None)
    config = ViCropConfig(k=6, scales=(1.0, 0.67), max_overlap=1.0, fill=False)  # two large windows cover it
    plain, filled = plan_crops(result, config), plan_crops(result, replace(config, fill=True))
    assert len(plain.chosen) < 6 and "cover all the attention" in plain.shortfall
    assert len(filled.chosen) > len(plain.chosen)
    assert filled.chosen[: len(plain.chosen)].tolist() == plain.chosen.tolist()  # the same first crops


def test_the_vicrop_views_and_merge_rows_are_cached_by_what_they_read(tiny_detectors, image):
    """A rerun with the same outcome, threshold and truth gets the drawn view back from the cache;
    any change of what it reads draws it again (a stale view would show another setting's crops)."""
    from dataclasses import replace

    from sodviz.cache import InferenceCache
    from sodviz.crops.vicrop import run_vicrop
    from sodviz.detector.inference import run_inference
    from sodviz.evaluation.ground_truth import GroundTruth
    from sodviz.views.merges import merge_rows
    from sodviz.views.vicrop import vicrop_view

    detector, cache = tiny_detectors["rt_detr"], InferenceCache(max_bytes=1 << 28)
    config = ViCropConfig(k=2, scales=(0.5,))
    truth = GroundTruth(boxes_xyxy=np.array([[10, 10, 20, 20]], np.float32), class_names=np.array(["x"]))
    outcome = run_vicrop(detector, image, config=config, cache=None)
    again = run_vicrop(detector, image, config=config, cache=None)  # another object, the same content

    def view(outcome=outcome, image=image, threshold=0.0, truth=truth):
        return vicrop_view(outcome, image, scale=0.5, score_threshold=threshold, class_names=("a", "b"),
                           truth=truth, cache=cache)  # fmt: skip

    first = view()
    assert view(again) is first and cache.used_bytes >= first.nbytes > 0
    uncached = vicrop_view(
        outcome, image, scale=0.5, score_threshold=0.0, class_names=("a", "b"), truth=truth
    )
    np.testing.assert_array_equal(uncached.after, first.after)
    moved = GroundTruth(boxes_xyxy=truth.boxes_xyxy + 5, class_names=truth.class_names)
    other_fused = replace(outcome, fused=outcome.fused[: max(0, len(outcome.fused) - 1)])
    for changed in (view(threshold=0.5), view(truth=moved), view(truth=None), view(image=image[::-1].copy()),
                    view(other_fused)):  # fmt: skip
        assert changed is not first
    result = run_inference(detector, image, cache=None)
    rows = merge_rows(result, outcome.refined, config, 0.0, class_names=("a", "b"), truth=truth, cache=cache)
    assert (
        merge_rows(result, again.refined, config, 0.0, class_names=("a", "b"), truth=truth, cache=cache)
        == rows
    )
    assert len(cache) == 7
    merge_rows(result, outcome.refined, config, 0.1, class_names=("a", "b"), truth=truth, cache=cache)
    assert len(cache) == 8
