"""Result types: validation, and the input transform's round trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sodviz.types import DeformableAttention, DenseAttention, InferenceResult, InputTransform

sizes = st.integers(1, 4000)


@given(image_h=sizes, image_w=sizes, side=st.integers(32, 1333), x=st.floats(0, 1), y=st.floats(0, 1))
def test_points_round_trip_between_image_and_input(image_h, image_w, side, x, y):
    transform = InputTransform(image_hw=(image_h, image_w), resized_hw=(side, side), input_hw=(side, side))
    point = np.array([x * image_w, y * image_h])
    np.testing.assert_allclose(
        transform.input_to_image(transform.image_to_input(point)), point, rtol=1e-5, atol=1e-3
    )
    box = np.array([0, 0, image_w, image_h], np.float32)
    np.testing.assert_allclose(transform.image_to_input(box), [0, 0, side, side], rtol=1e-5)


def test_normalised_points_span_the_padded_input():
    # a 100x200 image resized to 50x100 inside a 60x120 padded input
    transform = InputTransform(image_hw=(100, 200), resized_hw=(50, 100), input_hw=(60, 120))
    np.testing.assert_allclose(transform.normalized_to_image(np.array([1.0, 1.0])), [240, 120])
    np.testing.assert_allclose(
        transform.normalized_to_image(np.array([100 / 120, 50 / 60])), [200, 100], rtol=1e-6
    )


def test_grid_to_image_cuts_padding_and_keeps_mass():
    transform = InputTransform(image_hw=(100, 200), resized_hw=(50, 100), input_hw=(60, 120))
    grid = np.zeros((6, 12), np.float32)
    grid[:5, :10] = 1.0  # the valid part
    grid[5:, :] = 7.0  # padding rows: cut off
    heat = transform.grid_to_image(grid, conserve_mass=True)
    assert heat.shape == (100, 200)
    np.testing.assert_allclose(heat, 50 / (100 * 200), rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_hw": (0, 5), "resized_hw": (5, 5), "input_hw": (5, 5)}, "image_hw"),  # empty image
        ({"image_hw": (5, 5), "resized_hw": (9, 5), "input_hw": (5, 5)}, "does not fit"),  # resized > input
    ],
)
def test_transform_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InputTransform(**kwargs)


def test_attention_and_result_validation():
    with pytest.raises(ValueError, match="layers, heads, queries"):
        DenseAttention(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="locations"):
        DeformableAttention(
            np.zeros((1, 2, 1, 1, 1, 3)), np.zeros((1, 2, 1, 1, 1)), np.zeros((1, 2), np.int64)
        )
    with pytest.raises(ValueError, match="level_shapes"):
        DeformableAttention(
            np.zeros((1, 2, 1, 1, 1, 2)), np.zeros((1, 2, 1, 1, 1)), np.zeros((3, 2), np.int64)
        )
    transform = InputTransform(image_hw=(4, 4), resized_hw=(4, 4), input_hw=(4, 4))
    attention = DenseAttention(np.zeros((1, 1, 3, 2, 2), np.float32))
    with pytest.raises(ValueError, match="class_scores"):
        InferenceResult(
            np.zeros((3, 4), np.float32), np.zeros((3, 1)), attention, transform, ("a", "b"), "detr"
        )
    with pytest.raises(ValueError, match="attention has 3 queries"):
        InferenceResult(np.zeros((2, 4), np.float32), np.zeros((2, 1)), attention, transform, ("a",), "detr")
