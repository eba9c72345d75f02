"""ACS: per-head attention features of candidate boxes, correlations, selection and the regressor."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import supervision as sv
from scipy import stats

from sodviz.acs.candidates import Candidates, candidates_for_objects, query_features
from sodviz.acs.selectors import (
    REGRESSORS,
    IouRegressor,
    discriminative_heads,
    feature_correlations,
    free_scores,
    pick,
    selection_rows,
    within_object_pearson,
)
from sodviz.acs.study import blended, rescored
from sodviz.cli import main
from sodviz.crops.redetect import CropDetections, detect_crops
from sodviz.crops.vicrop import plan_crops
from sodviz.detector.inference import run_inference
from sodviz.imageio import load_image
from sodviz.synth.datasets import write_dataset
from sodviz.synth.scenes import SceneConfig
from sodviz.types import DeformableAttention, DenseAttention, InferenceResult, InputTransform

SIDE = 100  # image = model input, 100 x 100 px


def _result(boxes, weights, locations, scores=None) -> InferenceResult:
    """A deformable result: one layer, `heads` from `weights (queries, heads, points)`, one level."""
    boxes = np.asarray(boxes, np.float32)
    weights = np.asarray(weights, np.float32)[None, :, :, None, :]  # [1, Q, H, 1, P]
    locations = np.asarray(locations, np.float32)[None, :, :, None]  # [1, Q, H, 1, P, 2]
    scores = np.linspace(0.9, 0.5, len(boxes)) if scores is None else np.asarray(scores)
    return InferenceResult(
        boxes_xyxy=boxes,
        class_scores=np.asarray(scores, np.float32)[:, None],
        attention=DeformableAttention(locations, weights, np.array([[10, 10]], np.int64)),
        transform=InputTransform(image_hw=(SIDE, SIDE), resized_hw=(SIDE, SIDE), input_hw=(SIDE, SIDE)),
        class_names=("thing",),
        family="rt_detr",
    )


def _points(*xy) -> np.ndarray:
    return np.array(xy, np.float32) / SIDE


def test_entropy_is_0_for_one_point_1_for_uniform_and_ignores_order():
    box = [[20, 20, 40, 40]]
    points = _points((30, 30), (35, 25), (60, 60), (90, 10))
    weights = [[[1, 0, 0, 0], [0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]]]
    locations = [[points, points, points, points[::-1]]]
    features = query_features(_result(box, weights, locations), np.array([0]))[0, 0]  # [heads, 3]
    entropy, mass, spread = features.T
    assert entropy[0] == pytest.approx(0, abs=1e-6) and entropy[1] == pytest.approx(1)
    assert entropy[2] == pytest.approx(entropy[3])  # the same weights on reversed points
    assert mass[0] == pytest.approx(1) and mass[1] == pytest.approx(0.5)  # two of four points inside
    assert spread[0] == pytest.approx(0, abs=1e-6) and spread[1] > 1  # spread in box sizes (20 px)


def test_spread_scales_with_the_box():
    points = _points((40, 50), (60, 50))  # 10 px either side of the centre: std 10 px
    result = _result([[40, 40, 60, 60], [30, 30, 70, 70]], [[[0.5, 0.5]], [[0.5, 0.5]]], [[points], [points]])
    spread = query_features(result, np.array([0, 1]))[:, 0, 0, 2]
    np.testing.assert_allclose(spread, [10 / 20, 10 / 40], rtol=1e-5)


def test_dense_attention_features():
    weights = np.zeros((1, 1, 1, 4, 4), np.float32)
    weights[..., 1, 1] = 1  # all on the cell centred at (37.5, 37.5) px of a 100 px input
    result = InferenceResult(
        boxes_xyxy=np.array([[25, 25, 50, 50]], np.float32), class_scores=np.ones((1, 1), np.float32),
        attention=DenseAttention(weights),
        transform=InputTransform(image_hw=(SIDE, SIDE), resized_hw=(SIDE, SIDE), input_hw=(SIDE, SIDE)),
        class_names=("thing",), family="detr",
    )  # fmt: skip
    entropy, mass, spread = query_features(result, np.array([0]))[0, 0, 0]
    assert (entropy, mass, spread) == pytest.approx((0, 1, 0), abs=1e-6)


def _scene():
    """Two objects; queries 0-2 overlap object 0, query 3 object 1, query 4 nothing."""
    boxes = [[10, 10, 30, 30], [12, 10, 32, 30], [15, 15, 35, 35], [60, 60, 80, 80], [90, 0, 99, 5]]
    points = _points((20, 20), (25, 25))
    weights = [
        [[0.5, 0.5], [1, 0]],
        [[1, 0], [1, 0]],
        [[0.5, 0.5], [0.5, 0.5]],
        [[1, 0], [0.5, 0.5]],
        [[1, 0], [1, 0]],
    ]
    return _result(boxes, weights, [[points, points]] * 5, scores=[0.6, 0.9, 0.5, 0.8, 0.4])


def test_candidates_group_queries_by_object_with_their_iou():
    truth = np.array([[10, 10, 30, 30], [60, 60, 80, 80], [0, 80, 10, 90]], np.float32)  # the last: no query
    candidates = candidates_for_objects(_scene(), truth)
    assert candidates.query_index.tolist() == [0, 1, 2, 3] and candidates.object_index.tolist() == [
        0,
        0,
        0,
        1,
    ]
    assert candidates.iou[0] == pytest.approx(1) and candidates.iou[1] == pytest.approx(360 / 440)
    assert candidates.features.shape == (4, 1, 2, 3) and candidates.object_size[3] == pytest.approx(20)
    clusters = candidates_for_objects(_scene(), None, score_threshold=0.7)  # clusters around queries 1 and 3
    assert clusters.object_index.tolist() == [0, 0, 0, 1] and np.isnan(clusters.iou).all()


def test_crop_queries_join_the_objects_they_overlap_in_image_pixels():
    points = _points((20, 20), (25, 25))
    crop_boxes = [
        [10, 10, 30, 30],
        [0, 0, 5, 5],
        [12, 10, 32, 30],
    ]  # crop pixels; the crop starts at x 50, y 40 (x0 != y0, so an x / y swap shows)
    crop_result = _result(crop_boxes, [[[1, 0], [1, 0]]] * 3, [[points, points]] * 3, scores=[0.95, 0.9, 0.3])
    crops = CropDetections(
        sv.Detections.empty(), np.array([[50, 40, 100, 100]]), (crop_result,), model_calls=1
    )
    truth = np.array([[10, 10, 30, 30], [60, 50, 80, 70]], np.float32)
    candidates = candidates_for_objects(_scene(), truth, crops=crops)
    assert candidates.object_index.tolist() == [0, 0, 0, 1, 1, 1]
    assert candidates.crop_index.tolist() == [-1, -1, -1, -1, 0, 0]
    assert candidates.query_index.tolist() == [0, 1, 2, 3, 0, 2]
    np.testing.assert_allclose(candidates.boxes_xyxy[4:], [[60, 50, 80, 70], [62, 50, 82, 70]])
    assert candidates.iou[4:].tolist() == pytest.approx([1, 360 / 440])
    assert candidates.object_size[4] == candidates.object_size[3] == pytest.approx(20)  # the image's frame
    assert candidates.crop_index[pick(candidates, candidates.confidence)].tolist() == [-1, 0]
    clusters = candidates_for_objects(_scene(), None, crops=crops, score_threshold=0.7)
    assert clusters.object_index.tolist() == [0, 0, 0, 1, 1, 1] and clusters.crop_index[-2:].tolist() == [
        0,
        0,
    ]
    assert len(candidates_for_objects(_scene(), truth[:0], crops=crops)) == 0


def test_no_candidates_and_an_object_with_one():
    scene = _scene()
    empty = candidates_for_objects(scene, np.zeros((0, 4), np.float32))
    assert len(empty) == 0 and empty.features.shape == (0, 1, 2, 3)
    assert len(pick(empty, np.zeros(0))) == 0
    single = candidates_for_objects(scene, np.array([[60, 60, 80, 80]], np.float32))
    assert pick(single, -single.confidence).tolist() == [0]  # the only candidate, whatever the values


def test_pick_takes_the_best_per_object_and_breaks_ties_by_confidence_then_query():
    candidates = candidates_for_objects(_scene(), np.array([[10, 10, 30, 30], [60, 60, 80, 80]], np.float32))
    assert pick(candidates, candidates.iou).tolist() == [0, 3]
    assert pick(candidates, np.zeros(4)).tolist() == [1, 3]  # a tie: query 1 has the best confidence
    with pytest.raises(ValueError, match="values"):
        pick(candidates, np.zeros(3))


def test_acs_free_prefers_focused_attention_on_the_chosen_heads():
    candidates = candidates_for_objects(_scene(), np.array([[10, 10, 30, 30]], np.float32))
    scores = free_scores(candidates, ((0, 0),))  # head 0: queries 1 (one point) beat 0 and 2 (two)
    assert candidates.query_index[pick(candidates, scores)].tolist() == [1]
    with pytest.raises(ValueError, match="at least one"):
        free_scores(candidates, ())


def _synthetic(count=200, seed=0) -> Candidates:
    """Features of 2 layers x 2 heads whose head (1, 0) entropy falls as IoU rises."""
    rng = np.random.default_rng(seed)
    iou = rng.uniform(0, 1, count).astype(np.float32)
    features = rng.normal(size=(count, 2, 2, 3)).astype(np.float32)
    features[:, 1, 0, 0] = 1 - iou + rng.normal(scale=0.05, size=count)
    return Candidates(
        object_index=np.arange(count) // 4,
        image_index=np.zeros(count, np.int64),
        crop_index=np.full(count, -1),
        query_index=np.arange(count),
        boxes_xyxy=np.zeros((count, 4), np.float32),
        confidence=rng.uniform(size=count).astype(np.float32),
        iou=iou,
        object_size=np.full(count, 10, np.float32),
        features=features,
    )


def test_correlations_match_scipy_and_find_the_discriminative_head():
    candidates = _synthetic()
    correlations = feature_correlations(candidates)
    column = candidates.features[:, 0, 1, 2]
    assert correlations["pearson"][0, 1, 2] == pytest.approx(
        np.corrcoef(column, candidates.iou)[0, 1], abs=1e-6
    )
    assert correlations["spearman"][0, 1, 2] == pytest.approx(
        stats.spearmanr(column, candidates.iou).statistic
    )
    assert correlations["pearson"][1, 0, 0] < -0.95
    assert discriminative_heads(correlations, top=1) == ((1, 0),)
    flat = Candidates(
        **{f: getattr(candidates, f) for f in Candidates.__slots__}
        | {"features": np.ones_like(candidates.features)}
    )
    assert np.isnan(feature_correlations(flat)["pearson"]).all()  # constant features: undefined
    few = feature_correlations(candidates, mask=np.arange(len(candidates)) < 2)
    assert np.isnan(few["spearman"]).all()
    none = feature_correlations(candidates, mask=np.zeros(len(candidates), bool))  # an empty size bucket
    assert none["pearson"].shape == (2, 2, 3) and np.isnan(none["pearson"]).all()


@pytest.mark.parametrize("kind", REGRESSORS)
def test_regressor_is_reproducible_and_learns_the_relation(kind):
    train, test = _synthetic(seed=0), _synthetic(seed=1)
    first = IouRegressor(kind).fit(train).predict(test)
    np.testing.assert_array_equal(first, IouRegressor(kind).fit(train).predict(test))
    assert stats.pearsonr(first, test.iou).statistic > 0.9
    with pytest.raises(ValueError, match="kind"):
        IouRegressor("forest")
    with pytest.raises(ValueError, match="ground-truth IoU"):
        IouRegressor().fit(candidates_for_objects(_scene(), None, score_threshold=0.7))


def test_selection_rows_compare_each_pick_with_the_reference_on_the_same_objects():
    candidates = _synthetic()
    choices = {
        "confidence": pick(candidates, candidates.confidence),
        "oracle": pick(candidates, candidates.iou),
    }
    rows = selection_rows(candidates, choices, {"small": (0, 16), "large": (16, np.inf)})
    assert [(r["method"], r["bucket"], r["objects"]) for r in rows] == [
        (m, b, n) for m in choices for b, n in (("all", 50), ("small", 50), ("large", 0))
    ]
    confidence, oracle = rows[0], rows[3]
    assert (confidence["vs_reference"], confidence["ci95_low"], confidence["ci95_high"]) == (0, 0, 0)
    gain = candidates.iou[choices["oracle"]] - candidates.iou[choices["confidence"]]
    assert oracle["vs_reference"] == pytest.approx(gain.mean())
    assert 0 < oracle["ci95_low"] < oracle["vs_reference"] < oracle["ci95_high"]
    assert oracle["mean_iou"] == pytest.approx(candidates.iou[choices["oracle"]].mean())
    assert np.isnan(rows[5]["mean_iou"]) and np.isnan(rows[5]["ci95_low"])  # no large objects
    assert selection_rows(candidates, choices, {}, seed=0) == selection_rows(candidates, choices, {}, seed=0)


def test_within_object_pearson_ignores_differences_between_objects():
    candidates = _synthetic()  # 50 objects of 4 candidates
    offset = np.repeat(np.random.default_rng(2).normal(scale=10, size=50), 4)  # per object
    values = candidates.iou + offset
    assert within_object_pearson(candidates, values) == pytest.approx(1)
    assert stats.pearsonr(values, candidates.iou).statistic < 0.2  # the offsets swamp the plain r
    assert within_object_pearson(candidates, -values) == pytest.approx(-1)
    single = candidates.subset(np.arange(0, 200, 4))  # one candidate per object: nothing to rank
    assert np.isnan(within_object_pearson(single, single.iou))


def test_rescoring_blends_confidence_with_predicted_iou():
    result = _scene()
    regressor = IouRegressor().fit(_synthetic())
    regressor.predict_features = lambda features: np.array([0.5, 2.0, -1.0, 0.25, 1.0])[: len(features)]
    np.testing.assert_allclose(rescored(result, regressor, blend=0), result.scores, rtol=1e-6)
    np.testing.assert_allclose(rescored(result, regressor, blend=1), [0.5, 1, 1e-6, 0.25, 1], rtol=1e-5)
    half = rescored(result, regressor, blend=0.5)
    np.testing.assert_allclose(half[0], np.sqrt(result.scores[0] * 0.5), rtol=1e-6)
    with pytest.raises(ValueError, match="blend"):
        blended(result.scores, result.scores, blend=1.5)


def _labelled_by_the_detector(detector, folder, *, shift: float = 0.1, crops: bool = False):
    """Rewrite a dataset's boxes as the detector's 8 best boxes (with `crops`, plus the best box of
    each ViCrop-Det crop's re-detection), shifted by `shift` of their width: every object has
    candidates."""
    coco = json.loads((folder / "annotations.json").read_text())
    annotations = []
    for record in coco["images"]:
        image = load_image(folder / "images" / record["file_name"])
        result = run_inference(detector, image, cache=None)
        boxes = result.boxes_xyxy[np.argsort(-result.scores)[:8]].tolist()
        if crops:
            refined = detect_crops(detector, image, plan_crops(result).crops_xyxy, cache=None)
            for crop, (x0, y0, _, _) in zip(refined.results, refined.crops_xyxy, strict=True):
                boxes.append((crop.boxes_xyxy[crop.scores.argmax()] + [x0, y0, x0, y0]).tolist())
        for x0, y0, x1, y1 in boxes:
            box = [x0 + shift * (x1 - x0), y0, x1 - x0, y1 - y0]
            annotations.append({"id": len(annotations) + 1, "image_id": record["id"], "category_id": 0,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})  # fmt: skip
    coco["annotations"] = annotations
    (folder / "annotations.json").write_text(json.dumps(coco))
    return folder


def test_acs_cli_on_a_tiny_detector(tmp_path, tiny_model_dirs, tiny_detectors, capsys):
    config = SceneConfig(min_side=256, max_side=256)
    fit, test = (
        write_dataset(tmp_path, "val", 3, config=config),
        write_dataset(tmp_path, "test", 2, config=config),
    )
    arguments = ["acs", "--data", str(test / "annotations.json"), "--images", str(test / "images"),
                 "--fit-data", str(fit / "annotations.json"), "--fit-images", str(fit / "images"),
                 "--model", str(tiny_model_dirs["rt_detr"]), "--out", str(tmp_path / "acs")]  # fmt: skip
    assert main(arguments) == 2  # random tiny boxes miss the generated objects: a sentence, no traceback
    assert "nothing to rank" in capsys.readouterr().err
    for folder in (fit, test):
        _labelled_by_the_detector(tiny_detectors["rt_detr"], folder)
    assert main(arguments) == 0
    summary = json.loads((tmp_path / "acs" / "acs.json").read_text())
    assert set(summary["pearson"]) == {"queries"} and len(summary["heads"]) == 4
    assert (
        set(summary["pearson"]["queries"])
        == set(summary["within_pearson"]["queries"])
        == {"ridge", "boosting", "confidence"}
    )
    assert set(summary["bucket_correlations"]) == {"vt", "t", "s", "m"}
    assert summary["with_candidates"] == summary["objects"] == 16
    selection = (tmp_path / "acs" / "selection.csv").read_text().splitlines()
    assert (
        selection[0] == "pool,method,bucket,objects,mean_iou,acc50,vs_reference,ci95_low,ci95_high"
        and len(selection) == 1 + 6 * 5
    )
    for folder in (fit, test):  # objects found only in ViCrop-Det's crops: their queries join the candidates
        _labelled_by_the_detector(tiny_detectors["rt_detr"], folder, crops=True)
    assert main([*arguments[:-1], str(tmp_path / "crops"), "--crops"]) == 0
    summary = json.loads((tmp_path / "crops" / "acs.json").read_text())
    pools = ["queries", "queries + crops", "queries + crops, same objects"]
    assert list(summary["pearson"]) == pools and summary["with_candidates"] == summary["objects"]
    rows = list(csv.DictReader((tmp_path / "crops" / "selection.csv").open()))
    assert [row["pool"] for row in rows[::30]] == pools and len(rows) == 3 * 6 * 5
    objects = {row["pool"]: int(row["objects"]) for row in rows if row["bucket"] == "all"}
    assert objects["queries"] == objects["queries + crops, same objects"] <= objects["queries + crops"]


def test_concatenate_renumbers_objects_and_images():
    truth = np.array([[10, 10, 30, 30], [60, 60, 80, 80]], np.float32)
    part = candidates_for_objects(_scene(), truth)
    both = Candidates.concatenate([part, part])
    assert (
        both.object_index.tolist() == [0, 0, 0, 1, 2, 2, 2, 3]
        and both.image_index.tolist() == [0] * 4 + [1] * 4
    )
    kept = Candidates.concatenate([part, part], renumber=False)
    assert kept.object_index.tolist() == [0, 0, 0, 1] * 2
    empty = candidates_for_objects(_scene(), np.zeros((0, 4), np.float32))
    assert Candidates.concatenate([empty]).features.shape == (0, 1, 2, 3)  # shapes survive


def test_objects_by_size_smallest_first():
    # object 0 is 20 px, object 1 is 10 px (its queries overlap it at IoU >= 0.1 only when small)
    truth = np.array([[10, 10, 30, 30], [65, 65, 75, 75]], np.float32)
    candidates = candidates_for_objects(_scene(), truth)
    assert candidates.objects_by_size() == [1, 0]
    assert candidates.size_of(1) == pytest.approx(10) and candidates.size_of(0) == pytest.approx(20)
    assert candidates_for_objects(_scene(), truth[:0]).objects_by_size() == []  # the empty case


def test_acs_fit_is_keyed_without_the_fusion_settings(tiny_detectors, image):
    from dataclasses import replace

    from sodviz.acs.labelling import fit_acs
    from sodviz.cache import InferenceCache
    from sodviz.crops.fusion import Fusion
    from sodviz.crops.vicrop import ViCropConfig
    from sodviz.evaluation.ground_truth import GroundTruth

    detector, cache = tiny_detectors["rt_detr"], InferenceCache()
    boxes = run_inference(detector, image, cache=None).boxes_xyxy[:6]  # objects the detector proposes
    scenes = [(image, GroundTruth(boxes_xyxy=boxes, class_names=np.array(["vehicle"] * 6)))]
    first = fit_acs(detector, scenes, crops=ViCropConfig(k=1), cache=cache)
    again = fit_acs(
        detector, scenes, crops=replace(ViCropConfig(k=1), fusion=Fusion(threshold=0.3)), cache=cache
    )
    other = fit_acs(detector, scenes, crops=ViCropConfig(k=2), cache=cache)
    assert again is first and other is not first
