"""One forward pass: every query kept, post-processing like transformers', boxes in original pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import requires_shared_data, shared_images
from sodviz.attention.maps import aggregate_attention_map
from sodviz.detector.inference import boxes_to_image, run_inference, run_inference_batch, to_detections
from sodviz.detector.preprocess import prepare_inputs
from sodviz.detector.prompt import with_prompt
from sodviz.imageio import load_image
from sodviz.types import DeformableAttention, DenseAttention


def test_result_keeps_every_query(detector, image):
    result = run_inference(detector, image, cache=None)
    config = detector.model.config
    assert result.num_queries == config.num_queries
    assert result.boxes_xyxy.shape == (config.num_queries, 4)
    assert result.boxes_xyxy.dtype == np.float32
    assert result.class_scores.shape == (config.num_queries, config.num_labels)
    assert result.class_names == ("vehicle", "person", "boat")
    assert result.transform.image_hw == image.shape[:2]
    attention = result.attention
    heads = getattr(config, "decoder_cross_attention_heads", None) or config.decoder_attention_heads
    if detector.family.deformable:
        assert isinstance(attention, DeformableAttention)
        assert attention.weights.shape[:3] == (config.decoder_layers, config.num_queries, heads)
        assert attention.level_shapes.shape == (attention.weights.shape[3], 2)
    else:
        assert isinstance(attention, DenseAttention)
        assert attention.weights.shape[:3] == (config.decoder_layers, heads, config.num_queries)
        np.testing.assert_allclose(attention.weights.sum(axis=(-1, -2)), 1.0, rtol=1e-4)


def test_post_processing_matches_transformers(detector, image):
    """Our per-query scores and boxes agree with the processor's own post-processing."""
    if detector.family.open_vocabulary:
        pytest.skip("open-vocabulary post-processing: test_phrase_scores_are_the_best_token_of_each_phrase")
    inputs, _ = prepare_inputs(detector, [image])
    with torch.no_grad():
        outputs = detector.model(**inputs)
    theirs = detector.processor.post_process_object_detection(
        outputs, threshold=0.0, target_sizes=[image.shape[:2]]
    )[0]
    ours = run_inference(detector, image, cache=None)
    assert len(theirs["scores"]) > 0
    for score, label, box in zip(theirs["scores"], theirs["labels"], theirs["boxes"], strict=True):
        distance = np.abs(ours.boxes_xyxy - box.numpy()).max(axis=1)
        query = int(np.argmin(distance))
        assert distance[query] < 1e-3
        assert ours.class_scores[query, int(label)] == pytest.approx(float(score), abs=1e-5)
    assert float(theirs["scores"].max()) == pytest.approx(float(ours.scores.max()), abs=1e-5)
    if not detector.family.sigmoid_scores:  # softmax: one prediction per query, in query order
        np.testing.assert_allclose(ours.scores, theirs["scores"].numpy(), atol=1e-5)
        np.testing.assert_array_equal(ours.labels, theirs["labels"].numpy())


@pytest.mark.parametrize(
    ("threshold", "classes", "nms"),
    [
        (0.0, None, None),  # every query
        (0.5, None, None),  # a threshold
        (0.0, [1], None),  # one class
        (0.0, None, 0.5),  # with NMS
        (1.1, None, None),  # empty: nothing scores above 1
    ],
)
def test_detections_link_to_their_queries(detector, image, threshold, classes, nms):
    result = run_inference(detector, image, cache=None)
    detections = to_detections(result, score_threshold=threshold, classes=classes, nms=nms)
    queries = detections.data["query_index"]
    assert queries.dtype == np.int64 and len(np.unique(queries)) == len(queries)
    np.testing.assert_array_equal(detections.xyxy, result.boxes_xyxy[queries])
    np.testing.assert_array_equal(detections.confidence, result.scores[queries])
    np.testing.assert_array_equal(detections.class_id, result.labels[queries])
    assert (detections.confidence >= threshold).all()
    assert list(detections.confidence) == sorted(detections.confidence, reverse=True)
    if classes is not None:
        assert set(detections.class_id) <= set(classes)
    if threshold == 0.0 and classes is None and nms is None:
        assert len(detections) == result.num_queries
    if threshold > 1:
        assert len(detections) == 0 and detections.xyxy.shape == (0, 4)


@pytest.mark.parametrize("model_type", ["rt_detr", "detr"])  # square resize, aspect-keeping resize
@pytest.mark.parametrize("image_hw", [(120, 200), (300, 90)])
def test_known_rectangle_maps_back_to_original_pixels(tiny_detectors, model_type, image_hw):
    detector = tiny_detectors[model_type]
    height, width = image_hw
    picture = np.zeros((height, width, 3), np.uint8)
    x0, y0, x1, y1 = int(width * 0.3), int(height * 0.2), int(width * 0.7), int(height * 0.6)
    picture[y0:y1, x0:x1] = 255
    inputs, (transform,) = prepare_inputs(detector, [picture])
    bright = inputs["pixel_values"][0, 0].numpy() > inputs["pixel_values"][0, 0].numpy().mean()
    rows, cols = np.flatnonzero(bright.any(axis=1)), np.flatnonzero(bright.any(axis=0))
    found_input = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)
    mapped = transform.input_to_image(found_input)
    tolerance = 1.5 / min(transform.scale_xy)  # one and a half input pixels
    np.testing.assert_allclose(mapped, [x0, y0, x1, y1], atol=tolerance)
    # a predicted box at that place (normalised cxcywh of the resized image) lands there too
    resized_h, resized_w = transform.resized_hw
    cx, cy = (
        (found_input[0] + found_input[2]) / 2 / resized_w,
        (found_input[1] + found_input[3]) / 2 / resized_h,
    )
    w, h = (found_input[2] - found_input[0]) / resized_w, (found_input[3] - found_input[1]) / resized_h
    np.testing.assert_allclose(
        boxes_to_image(np.array([[cx, cy, w, h]]), transform)[0], [x0, y0, x1, y1], atol=tolerance
    )


@pytest.mark.parametrize("image_hw", [(120, 200), (300, 90)])
def test_letterbox_keeps_the_aspect_and_maps_boxes_points_and_grids_back(tiny_detectors, image_hw):
    """Round trip on a non-square image: the rectangle keeps its aspect in the input (not squashed),
    padding is black, and a box, a sampling point and an attention cell at the rectangle in the
    input all land on it in the original pixels; padding maps to nothing."""
    from sodviz.cache import InferenceCache

    detector = tiny_detectors["rt_detr"]
    height, width = image_hw
    picture = np.zeros((height, width, 3), np.uint8)
    x0, y0, x1, y1 = int(width * 0.3), int(height * 0.2), int(width * 0.7), int(height * 0.6)
    picture[y0:y1, x0:x1] = 255
    inputs, (transform,) = prepare_inputs(detector, [picture], input_size=96, letterbox=True)
    assert transform.letterboxed and transform.input_hw == (96, 96) and max(transform.resized_hw) == 96
    scale_x, scale_y = transform.scale_xy
    assert scale_x == pytest.approx(scale_y, rel=0.02)  # one scale on both axes: the aspect is kept
    pixels = inputs["pixel_values"][0, 0].numpy()
    resized_h, resized_w = transform.resized_hw
    assert pixels[resized_h:, :].max(initial=0) == 0 and pixels[:, resized_w:].max(initial=0) == 0
    bright = pixels > 0.5
    rows, cols = np.flatnonzero(bright.any(axis=1)), np.flatnonzero(bright.any(axis=0))
    found = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)
    tolerance = 1.5 / scale_x
    np.testing.assert_allclose(transform.input_to_image(found), [x0, y0, x1, y1], atol=tolerance)
    box = np.array(
        [[(found[0] + found[2]) / 2, (found[1] + found[3]) / 2, found[2] - found[0], found[3] - found[1]]]
    )
    np.testing.assert_allclose(boxes_to_image(box / 96, transform)[0], [x0, y0, x1, y1], atol=tolerance)
    centre = np.array([(found[0] + found[2]) / 2, (found[1] + found[3]) / 2]) / 96  # normalised to the input
    np.testing.assert_allclose(
        transform.normalized_to_image(centre), [(x0 + x1) / 2, (y0 + y1) / 2], atol=tolerance
    )
    grid = np.zeros((12, 12), np.float32)  # a stride-8 grid over the 96 px input
    grid[int(found[1] + found[3]) // 16, int(found[0] + found[2]) // 16] = 1.0
    on_image = transform.grid_to_image(grid)
    peak_y, peak_x = np.unravel_index(on_image.argmax(), on_image.shape)
    assert x0 - 8 / scale_x <= peak_x <= x1 + 8 / scale_x and y0 - 8 / scale_y <= peak_y <= y1 + 8 / scale_y
    padding = np.zeros((12, 12), np.float32)
    padding[-1, -1] = 1.0  # the bottom-right cell is padding for both shapes
    assert transform.grid_to_image(padding).max() == 0

    cache = InferenceCache()
    squashed = run_inference(detector, picture, input_size=96, cache=cache)
    boxed = run_inference(detector, picture, input_size=96, letterbox=True, cache=cache)
    assert boxed.transform.letterboxed and not squashed.transform.letterboxed and cache.misses == 2
    dense = tiny_detectors["detr"]  # aspect-keeping: the letterbox is theirs already
    plain = run_inference(dense, picture, cache=None)
    assert run_inference(dense, picture, letterbox=True, cache=None).transform == plain.transform


def test_input_size_changes_the_model_input(tiny_detectors, image):
    detector = tiny_detectors["rt_detr"]
    small = run_inference(detector, image, input_size=64, cache=None)
    large = run_inference(detector, image, input_size=128, cache=None)
    assert small.transform.input_hw == (64, 64) and large.transform.input_hw == (128, 128)
    assert (small.attention.level_shapes * 2 == large.attention.level_shapes).all()
    with pytest.raises(ValueError, match="at least 32"):
        run_inference(detector, image, input_size=8, cache=None)


def test_batch_equals_single_images(detector, image):
    other = np.ascontiguousarray(image[::-1, ::-1])
    batch = run_inference_batch(detector, [image, other])
    for picture, batched in zip([image, other], batch, strict=True):
        single = run_inference(detector, picture, cache=None)
        # float32 batched kernels differ from single ones by ~1e-5 relative (D-FINE: 1.3e-3 px at 95 px)
        np.testing.assert_allclose(batched.boxes_xyxy, single.boxes_xyxy, atol=1e-3, rtol=1e-4)
        np.testing.assert_allclose(batched.class_scores, single.class_scores, atol=1e-4)
    assert run_inference_batch(detector, []) == []


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), np.uint8),  # grayscale without a channel axis
        np.zeros((10, 10, 4), np.uint8),  # RGBA
        np.zeros((10, 10, 3), np.float32),  # float
        np.zeros((0, 10, 3), np.uint8),  # empty
    ],
)
def test_bad_images_are_refused_with_a_clear_error(tiny_detectors, bad):
    with pytest.raises(ValueError, match=r"RGB uint8 image|empty"):
        run_inference(tiny_detectors["rt_detr"], bad, cache=None)


def test_tiny_and_extreme_aspect_images(tiny_detectors):
    for picture in (np.full((1, 1, 3), 128, np.uint8), np.full((8, 600, 3), 50, np.uint8)):
        result = run_inference(tiny_detectors["rt_detr"], picture, cache=None)
        assert result.transform.image_hw == picture.shape[:2]
        assert np.isfinite(result.boxes_xyxy).all()


@requires_shared_data
@pytest.mark.parametrize("model_type", ["rt_detr", "d_fine", "deformable_detr", "detr"])
def test_real_aerial_photograph(tiny_detectors, model_type):
    """A real 1920x1080 drone photo: shapes, boxes and maps in original-image pixels."""
    path = next(p for p in shared_images() if "visdrone" in str(p))
    picture = load_image(path)
    assert picture.shape == (1080, 1920, 3)
    detector = tiny_detectors[model_type]
    result = run_inference(detector, picture, cache=None)
    assert result.transform.image_hw == (1080, 1920)
    centers = (result.boxes_xyxy[:, :2] + result.boxes_xyxy[:, 2:]) / 2
    assert (centers >= 0).all() and (centers[:, 0] <= 1920).all() and (centers[:, 1] <= 1080).all()
    heat = result.transform.grid_to_image(aggregate_attention_map(result), conserve_mass=True)
    assert heat.shape == (1080, 1920)
    assert heat.sum() == pytest.approx(1.0, rel=1e-3)


def test_decode_predictions_sigmoid_or_softmax_without_the_no_object_class():
    from sodviz.detector.inference import decode_predictions
    from sodviz.types import InputTransform

    logits = torch.tensor([[[0.0, 2.0, 1.0]]])  # [B=1, Q=1, 3]
    boxes = torch.tensor([[[0.5, 0.25, 0.2, 0.1]]])  # cxcywh of the resized image
    transform = InputTransform(image_hw=(100, 200), resized_hw=(64, 64), input_hw=(64, 64))
    ((xyxy, sigmoid),) = decode_predictions(logits, boxes, [transform], sigmoid=True)
    np.testing.assert_allclose(xyxy, [[80, 20, 120, 30]], atol=1e-4)  # x by 200, y by 100
    np.testing.assert_allclose(sigmoid, torch.sigmoid(logits[0]).numpy(), atol=1e-6)
    ((_, softmax),) = decode_predictions(logits, boxes, [transform], sigmoid=False)
    assert softmax.shape == (1, 2)  # the last (no-object) column is dropped
    np.testing.assert_allclose(softmax, torch.softmax(logits[0], -1)[:, :2].numpy(), atol=1e-6)


def test_letterboxed_detections_in_the_padding_score_zero_and_boxes_are_clipped():
    import torch

    from sodviz.detector.inference import decode_predictions
    from sodviz.types import InputTransform

    transform = InputTransform(image_hw=(108, 192), resized_hw=(54, 96), input_hw=(96, 96), letterboxed=True)
    boxes = torch.tensor(
        [[[0.25, 0.25, 0.1, 0.1], [0.5, 0.8, 0.1, 0.1], [0.5, 0.55, 0.2, 0.2]]]
    )  # cxcywh / input
    logits = torch.full((1, 3, 2), 3.0)
    ((xyxy, probabilities),) = decode_predictions(logits, boxes, [transform], sigmoid=True)
    assert probabilities[0].min() > 0.9 and probabilities[1].max() == 0  # centre in the padding
    assert probabilities[2].min() > 0.9  # centre inside, box reaching into the padding: kept, clipped
    assert xyxy[:, [0, 2]].max() <= 192 and xyxy[:, [1, 3]].max() <= 108 and xyxy[2, 3] == 108
    squashed = InputTransform(image_hw=(108, 192), resized_hw=(96, 96), input_hw=(96, 96))
    ((_, untouched),) = decode_predictions(logits, boxes, [squashed], sigmoid=True)
    assert untouched.min() > 0.9


@pytest.mark.parametrize("model_type", ["grounding-dino", "mm-grounding-dino"])
def test_phrase_scores_are_the_best_token_of_each_phrase(tiny_detectors, model_type, image):
    """Open vocabulary: a phrase's score is the best sigmoid over its own tokens (written here from
    the tokenizer, not from sodviz's token map); boxes are Grounding DINO's own post-processing's."""
    from transformers import GroundingDinoProcessor

    detector = with_prompt(tiny_detectors[model_type], "boat. red car. person")
    assert detector.class_names == ("boat", "red car", "person")
    inputs, _ = prepare_inputs(detector, [image])
    with torch.no_grad():
        outputs = detector.model(**inputs)
    probabilities = outputs.logits[0].sigmoid().numpy()
    tokens = detector.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0].tolist())
    assert tokens == ["[CLS]", "boat", ".", "red", "car", ".", "person", ".", "[SEP]"]
    expected = np.stack(
        [probabilities[:, [1]].max(1), probabilities[:, [3, 4]].max(1), probabilities[:, [6]].max(1)], 1
    )
    ours = run_inference(detector, image, cache=None)
    np.testing.assert_allclose(ours.class_scores, expected, rtol=1e-5, atol=1e-6)
    processor = GroundingDinoProcessor(image_processor=detector.processor, tokenizer=detector.tokenizer)
    theirs = processor.post_process_grounded_object_detection(
        outputs,
        threshold=0.0,
        text_threshold=0.0,
        target_sizes=[image.shape[:2]],
        input_ids=inputs["input_ids"],
    )[0]
    np.testing.assert_allclose(ours.boxes_xyxy, theirs["boxes"].numpy(), atol=1e-3)
    assert ours.text_attention.weights.shape[-1] == len(tokens)
    assert ours.text_attention.tokens == tuple(tokens)


def test_a_prompt_changes_the_classes_and_the_cache_key(tiny_detectors, image):
    detector = tiny_detectors["grounding-dino"]
    other = with_prompt(detector, "truck. bus.")
    assert other.class_names == ("truck", "bus") and other.content_hash != detector.content_hash
    assert with_prompt(other, "vehicle. person. boat.").content_hash == detector.content_hash
    assert run_inference(other, image).class_scores.shape == (20, 2)
    with pytest.raises(ValueError, match="names no class"):
        with_prompt(detector, " . , ")
    with pytest.raises(ValueError, match="fixed set of classes"):
        with_prompt(tiny_detectors["rt_detr"], "car.")
