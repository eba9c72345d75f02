"""Attention maps: splatting, mass conservation, aggregation and entropy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sodviz.attention.entropy import attention_entropy
from sodviz.attention.maps import (
    aggregate_attention_map,
    attention_grid_hw,
    query_attention_entropy,
    query_attention_map,
    query_attention_maps,
)
from sodviz.attention.mass import attention_mass_in_box
from sodviz.detector.inference import run_inference
from sodviz.types import DeformableAttention, DenseAttention, InferenceResult, InputTransform


def _result(attention, num_queries: int, image_hw=(64, 64)) -> InferenceResult:
    scores = np.linspace(0.9, 0.1, num_queries, dtype=np.float32)[:, None]
    return InferenceResult(
        boxes_xyxy=np.zeros((num_queries, 4), np.float32),
        class_scores=scores,
        attention=attention,
        transform=InputTransform(image_hw=image_hw, resized_hw=image_hw, input_hw=image_hw),
        class_names=("thing",),
        family="rt_detr",
    )


def _single_point(x: float, y: float, level_shapes=((4, 8),), level: int = 0) -> InferenceResult:
    num_levels = len(level_shapes)
    locations = np.zeros((1, 1, 1, num_levels, 1, 2), np.float32)
    locations[..., 0], locations[..., 1] = x, y
    weights = np.zeros((1, 1, 1, num_levels, 1), np.float32)
    weights[..., level, 0] = 1.0
    attention = DeformableAttention(locations, weights, np.array(level_shapes, np.int64))
    return _result(attention, 1)


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        # centre of cell (row 1, col 2) on a 4x8 grid: all mass there
        ((2 + 0.5) / 8, (1 + 0.5) / 4, {(1, 2): 1.0}),
        # the corner shared by cells (1,2), (1,3), (2,2), (2,3): a quarter each
        (3 / 8, 2 / 4, {(1, 2): 0.25, (1, 3): 0.25, (2, 2): 0.25, (2, 3): 0.25}),
        # a quarter of the way from centre (0,0) to centre (0,1): 3/4 and 1/4
        ((0.5 + 0.25) / 8, 0.5 / 4, {(0, 0): 0.75, (0, 1): 0.25}),
        # outside the image: clamped to the border cell, mass kept
        (1.2, -0.3, {(0, 7): 1.0}),
    ],
)
def test_single_point_splats_onto_the_right_cells(x, y, expected):
    heat = query_attention_map(_single_point(x, y), 0)
    want = np.zeros((4, 8), np.float32)
    for (row, col), value in expected.items():
        want[row, col] = value
    np.testing.assert_allclose(heat, want, atol=1e-6)


def test_coarse_level_is_upsampled_to_the_finest_grid_keeping_mass():
    # level 0 is 8x8 (finest), level 1 is 4x4: a point on level 1 lands in the matching quadrant
    result = _single_point((1 + 0.5) / 4, (2 + 0.5) / 4, level_shapes=((8, 8), (4, 4)), level=1)
    heat = query_attention_map(result, 0, level=1)
    assert heat.shape == (8, 8)
    assert heat.sum() == pytest.approx(1.0, abs=1e-6)
    rows, cols = np.unravel_index(np.argmax(heat), heat.shape)
    assert (rows // 2, cols // 2) == (2, 1)
    assert not query_attention_map(result, 0, level=0).any()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), num_queries=st.integers(1, 5))
def test_deformable_maps_conserve_mass(seed, num_queries):
    rng = np.random.default_rng(seed)
    layers, heads, levels, points = 2, 3, 3, 4
    locations = rng.uniform(-0.2, 1.2, size=(layers, num_queries, heads, levels, points, 2)).astype(
        np.float32
    )
    logits = rng.normal(size=(layers, num_queries, heads, levels * points))
    weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    weights = weights.reshape(layers, num_queries, heads, levels, points).astype(np.float32)
    attention = DeformableAttention(locations, weights, np.array([[12, 16], [6, 8], [3, 4]], np.int64))
    result = _result(attention, num_queries)
    for layer in (None, 0, -1):
        for head in (None, 1):
            maps = query_attention_maps(result, layer=layer, head=head)
            np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    # one level keeps exactly that level's share of the weight (layer 0, head 2)
    for level in range(levels):
        maps = query_attention_maps(result, layer=0, head=2, level=level)
        np.testing.assert_allclose(maps.sum(axis=(1, 2)), weights[0, :, 2, level].sum(-1), rtol=1e-5)


def test_real_model_maps_conserve_mass(detector, image):
    result = run_inference(detector, image, cache=None)
    maps = query_attention_maps(result, layer=None)
    assert maps.shape == (result.num_queries, *attention_grid_hw(result.attention))
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, rtol=1e-4)
    assert (maps >= 0).all()


def test_dense_map_is_the_mean_over_heads():
    rng = np.random.default_rng(0)
    weights = rng.random((2, 3, 4, 5, 6)).astype(np.float32)
    weights /= weights.sum(axis=(-1, -2), keepdims=True)
    result = _result(DenseAttention(weights), 4)
    np.testing.assert_allclose(query_attention_map(result, 2, layer=1), weights[1, :, 2].mean(0), rtol=1e-6)
    np.testing.assert_allclose(
        query_attention_map(result, 2, layer=None, head=0), weights[:, 0, 2].mean(0), rtol=1e-6
    )
    with pytest.raises(ValueError, match="single level"):
        query_attention_map(result, 0, level=1)


@pytest.mark.parametrize(
    ("query_indices", "query_weights"),
    [
        (None, None),  # all queries, weighted by score
        ([0, 2], None),  # a chosen set
        ([1, 3], np.array([1.0, 3.0])),  # user weights
    ],
)
def test_aggregate_is_the_weighted_mean_of_query_maps(detector, image, query_indices, query_weights):
    result = run_inference(detector, image, cache=None)
    queries = np.arange(result.num_queries) if query_indices is None else np.array(query_indices)
    weights = result.scores[queries] if query_weights is None else query_weights
    expected = np.tensordot(weights / weights.sum(), query_attention_maps(result, queries), axes=1)
    heat = aggregate_attention_map(result, query_indices, query_weights=query_weights)
    np.testing.assert_allclose(heat, expected, rtol=1e-4, atol=1e-7)
    assert heat.sum() == pytest.approx(1.0, rel=1e-4)


def test_aggregate_of_no_queries_is_empty(detector, image):
    result = run_inference(detector, image, cache=None)
    heat = aggregate_attention_map(result, [])
    assert heat.shape == attention_grid_hw(result.attention)
    assert not heat.any()


@pytest.mark.parametrize(
    ("maps", "expected"),
    [
        (np.ones((1, 4, 8)), np.log(32)),  # uniform over 32 cells: log N
        (np.array([[[0.0, 5.0, 0.0, 0.0]]]), 0.0),  # all mass in one cell: 0
        (np.array([[[1.0, 1.0], [0.0, 0.0]]]), np.log(2)),  # two equal cells
        (np.zeros((1, 3, 3)), 0.0),  # empty map
    ],
)
def test_entropy_known_values(maps, expected):
    np.testing.assert_allclose(attention_entropy(maps), [expected], atol=1e-6)


def test_normalised_entropy_is_one_for_uniform_and_within_unit_range(detector, image):
    np.testing.assert_allclose(attention_entropy(np.ones((2, 5, 7)), normalize=True), 1.0, rtol=1e-6)
    result = run_inference(detector, image, cache=None)
    entropy = query_attention_entropy(result, normalize=True)
    assert entropy.shape == (result.num_queries,)
    assert ((entropy >= 0) & (entropy <= 1 + 1e-6)).all()


@pytest.mark.parametrize(
    "selection",
    [
        {"layer": 5},  # two layers only
        {"head": -3},  # two heads only
        {"level": 9},  # no such level
    ],
)
def test_out_of_range_selection_is_refused(tiny_detectors, image, selection):
    result = run_inference(tiny_detectors["rt_detr"], image, cache=None)
    with pytest.raises(ValueError, match="must lie in"):
        query_attention_map(result, 0, **selection)
    with pytest.raises(ValueError, match="query indices"):
        query_attention_maps(result, [result.num_queries])


def _in_frame(result: InferenceResult, image_hw=(32, 64)) -> InferenceResult:
    return InferenceResult(
        boxes_xyxy=result.boxes_xyxy,
        class_scores=result.class_scores,
        attention=result.attention,
        transform=InputTransform(image_hw=image_hw, resized_hw=image_hw, input_hw=image_hw),
        class_names=result.class_names,
        family=result.family,
    )


@pytest.mark.parametrize(
    ("box", "enlarge", "expected"),
    [
        ((16, 8, 24, 16), 1.0, 1.0),  # the cell of (row 1, col 2) on a 4x8 grid over 64x32 px
        ((0, 0, 8, 8), 1.0, 0.0),  # another cell
        ((16, 8, 20, 16), 1.0, 0.5),  # half of the cell
        ((18, 10, 22, 14), 2.0, 1.0),  # a quarter-cell box enlarged 2x covers the whole cell
    ],
)
def test_dense_attention_mass_in_box_counts_cells_by_covered_area(box, enlarge, expected):
    weights = np.zeros((1, 1, 1, 4, 8), np.float32)
    weights[..., 1, 2] = 1.0
    result = _in_frame(_result(DenseAttention(weights), 1))
    share = attention_mass_in_box(result, 0, np.array(box, np.float32), enlarge=enlarge)
    assert share == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("box", "enlarge", "expected"),
    [
        ((16, 8, 24, 16), 1.0, 0.75),  # around the heavy point (20, 12); the light one is at (40, 12)
        ((36, 8, 44, 16), 1.0, 0.25),
        ((0, 0, 8, 8), 1.0, 0.0),
        ((19, 11, 21, 13), 1.0, 0.75),  # points count exactly, however small the box
        ((22, 11, 24, 13), 1.0, 0.0),
        ((25, 10, 35, 14), 4.0, 1.0),  # enlarged about its centre (30, 12) to x 10..50
    ],
)
def test_deformable_attention_mass_in_box_counts_sampling_points(box, enlarge, expected):
    locations = np.zeros((1, 1, 2, 1, 2, 2), np.float32)  # two heads, two points each
    locations[0, 0, :, 0] = [(20 / 64, 12 / 32), (40 / 64, 12 / 32)]
    weights = np.zeros((1, 1, 2, 1, 2), np.float32)
    weights[0, 0, :, 0] = [[1.0, 0.0], [0.5, 0.5]]  # heads averaged: 0.75 and 0.25 of the mass
    result = _in_frame(_result(DeformableAttention(locations, weights, np.array([[4, 8]])), 1))
    share = attention_mass_in_box(result, 0, np.array(box, np.float32), enlarge=enlarge)
    assert share == pytest.approx(expected, abs=1e-6)
