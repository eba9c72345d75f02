"""Small frozen dataclasses of numpy arrays passed between sodviz layers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True, slots=True)
class InputTransform:
    """The exact resize/pad from an original image to the model input.

    The image (H, W) is resized to `resized_hw` and placed at the top-left of a model input of
    `input_hw` (larger only when the processor padded). Feature grids and normalised sampling
    points span the whole input; predicted boxes are normalised to the resized image.

    Attributes:
        image_hw: (H, W) of the original image, pixels.
        resized_hw: (h, w) of the resized image inside the input, pixels.
        input_hw: (h, w) of the model input tensor, pixels.
        letterboxed: the image was padded before the model saw it (an aspect-keeping letterbox
            for a fixed-size family): its predicted boxes are then normalised to the whole input,
            padding included, not to the resized image.
    """

    image_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    input_hw: tuple[int, int]
    letterboxed: bool = False

    def __post_init__(self) -> None:
        for name in ("image_hw", "resized_hw", "input_hw"):
            value = getattr(self, name)
            _check(len(value) == 2 and min(value) > 0, f"{name} must be two positive ints, got {value}")
        _check(
            self.resized_hw[0] <= self.input_hw[0] and self.resized_hw[1] <= self.input_hw[1],
            f"resized_hw {self.resized_hw} does not fit in input_hw {self.input_hw}",
        )

    @property
    def scale_xy(self) -> tuple[float, float]:
        """Input pixels per original pixel along x and y."""
        return self.resized_hw[1] / self.image_hw[1], self.resized_hw[0] / self.image_hw[0]

    @property
    def length_scale(self) -> float:
        """Input pixels per original pixel for lengths such as sqrt(area): sqrt(scale_x * scale_y)."""
        scale_x, scale_y = self.scale_xy
        return math.sqrt(scale_x * scale_y)

    def input_to_image(self, points_xy: np.ndarray) -> np.ndarray:
        """Map points `(..., 2)` (or xyxy boxes `(..., 4)`) from input pixels to original pixels."""
        scale = np.array(self.scale_xy * (points_xy.shape[-1] // 2), dtype=np.float64)
        return (np.asarray(points_xy, dtype=np.float64) / scale).astype(np.float32)

    def image_to_input(self, points_xy: np.ndarray) -> np.ndarray:
        """Map points `(..., 2)` (or xyxy boxes `(..., 4)`) from original pixels to input pixels."""
        scale = np.array(self.scale_xy * (points_xy.shape[-1] // 2), dtype=np.float64)
        return (np.asarray(points_xy, dtype=np.float64) * scale).astype(np.float32)

    def normalized_to_image(self, points_xy: np.ndarray) -> np.ndarray:
        """Map points `(..., 2)` normalised to the input grid ([0, 1] spans `input_hw`) to original pixels."""
        input_wh = np.array(self.input_hw[::-1], dtype=np.float64)
        return self.input_to_image(np.asarray(points_xy, dtype=np.float64) * input_wh)

    def valid_grid_hw(self, grid_hw: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the top-left part of a grid spanning the input that covers the image, not padding."""
        valid_h = max(1, round(grid_hw[0] * self.resized_hw[0] / self.input_hw[0]))
        valid_w = max(1, round(grid_hw[1] * self.resized_hw[1] / self.input_hw[1]))
        return valid_h, valid_w

    def grid_to_image(self, grid_map: np.ndarray, *, conserve_mass: bool = False) -> np.ndarray:
        """Resample a map `(h, w)` spanning the input grid onto the original image `(H, W)`.

        The part of the grid that covers padding is cut off first. With `conserve_mass` the result
        is rescaled to keep the sum of the cut map (a distribution stays a distribution).
        """
        valid_h, valid_w = self.valid_grid_hw(grid_map.shape)
        valid = np.ascontiguousarray(grid_map[:valid_h, :valid_w], dtype=np.float32)
        image_h, image_w = self.image_hw
        resized = cv2.resize(valid, (image_w, image_h), interpolation=cv2.INTER_LINEAR)
        if conserve_mass:
            total = float(resized.sum())
            if total > 0:
                resized *= float(valid.sum()) / total
        return resized


@dataclass(frozen=True, slots=True)
class DenseAttention:
    """Decoder cross-attention of a DETR-style model over one feature map.

    Attributes:
        weights: float32 `(layers, heads, queries, h, w)`; each `[l, k, q]` sums to 1 over `(h, w)`.
            The `(h, w)` grid spans the model input (see `InputTransform`).
    """

    weights: np.ndarray

    def __post_init__(self) -> None:
        _check(
            self.weights.ndim == 5,
            f"weights must be (layers, heads, queries, h, w), got {self.weights.shape}",
        )

    @property
    def level_shapes(self) -> np.ndarray:
        """int64 `(1, 2)`: the (h, w) of the single feature level."""
        return np.array([self.weights.shape[-2:]], dtype=np.int64)

    @property
    def num_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def num_heads(self) -> int:
        return self.weights.shape[1]

    @property
    def num_queries(self) -> int:
        return self.weights.shape[2]


@dataclass(frozen=True, slots=True)
class DeformableAttention:
    """Decoder cross-attention of a deformable model: sampling points and their weights.

    Attributes:
        locations: float32 `(layers, queries, heads, levels, points, 2)`, normalised (x, y) on the
            input grid ([0, 1] spans `InputTransform.input_hw`).
        weights: float32 `(layers, queries, heads, levels, points)`; each `[l, q, k]` sums to 1.
            Levels with fewer points than `points` (D-FINE point lists) are padded with weight 0.
        level_shapes: int64 `(levels, 2)`, the (h, w) of each feature level.
    """

    locations: np.ndarray
    weights: np.ndarray
    level_shapes: np.ndarray

    def __post_init__(self) -> None:
        _check(
            self.weights.ndim == 5,
            f"weights must be (layers, queries, heads, levels, points), got {self.weights.shape}",
        )
        _check(
            self.locations.shape == (*self.weights.shape, 2),
            f"locations {self.locations.shape} must be weights {self.weights.shape} + (2,)",
        )
        _check(
            self.level_shapes.shape == (self.weights.shape[3], 2),
            f"level_shapes {self.level_shapes.shape} must be (levels={self.weights.shape[3]}, 2)",
        )

    @property
    def num_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def num_heads(self) -> int:
        return self.weights.shape[2]

    @property
    def num_queries(self) -> int:
        return self.weights.shape[1]


Attention = DenseAttention | DeformableAttention


@dataclass(frozen=True, slots=True)
class TextAttention:
    """How each decoder query of an open-vocabulary model attends to the prompt's tokens.

    Attributes:
        weights: float32 `(layers, heads, queries, tokens)`, each `[l, k, q]` summing to 1 over
            the prompt's real tokens (padding gets 0).
        tokens: the token strings, `[CLS]` and `[SEP]` included.
        token_phrase: int64 `(tokens,)`, the prompt phrase (class id) each token belongs to, -1
            for special tokens and the dots between phrases.
    """

    weights: np.ndarray
    tokens: tuple[str, ...]
    token_phrase: np.ndarray

    def __post_init__(self) -> None:
        _check(
            self.weights.ndim == 4,
            f"weights must be (layers, heads, queries, tokens), got {self.weights.shape}",
        )
        _check(
            self.weights.shape[-1] == len(self.tokens) == len(self.token_phrase),
            f"{self.weights.shape[-1]} token weights for {len(self.tokens)} tokens",
        )

    def of_query(self, query: int, *, layer: int = -1) -> np.ndarray:
        """float32 `(tokens,)`: one query's attention over the tokens, averaged over heads."""
        return self.weights[layer, :, query].mean(axis=0)


@dataclass(frozen=True, slots=True)
class InferenceResult:
    """Everything one threshold-free forward pass produced, for every decoder query.

    Attributes:
        boxes_xyxy: float32 `(queries, 4)`, boxes in original-image pixels.
        class_scores: float32 `(queries, classes)`, per-class probabilities (no no-object column).
        attention: the decoder cross-attention of every layer (dense or deformable).
        transform: the resize/pad from the original image to the model input.
        class_names: `classes` names, index = class id.
        family: the model type (`Family.model_type`).
        text_attention: open-vocabulary models only: the queries' attention over the prompt.
    """

    boxes_xyxy: np.ndarray
    class_scores: np.ndarray
    attention: Attention
    transform: InputTransform
    class_names: tuple[str, ...]
    family: str
    text_attention: TextAttention | None = None

    def __post_init__(self) -> None:
        num_queries = self.boxes_xyxy.shape[0]
        _check(
            self.boxes_xyxy.shape == (num_queries, 4),
            f"boxes_xyxy must be (queries, 4), got {self.boxes_xyxy.shape}",
        )
        _check(
            self.class_scores.shape == (num_queries, len(self.class_names)),
            f"class_scores must be (queries={num_queries}, classes={len(self.class_names)}), "
            f"got {self.class_scores.shape}",
        )
        _check(
            self.attention.num_queries == num_queries,
            f"attention has {self.attention.num_queries} queries, boxes have {num_queries}",
        )

    @property
    def num_queries(self) -> int:
        return self.boxes_xyxy.shape[0]

    @property
    def scores(self) -> np.ndarray:
        """float32 `(queries,)`: each query's best class score."""
        return best_class(self.class_scores)[0]

    @property
    def labels(self) -> np.ndarray:
        """int64 `(queries,)`: each query's best class id."""
        return best_class(self.class_scores)[1]

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays, for cache budgets."""
        arrays = [self.boxes_xyxy, self.class_scores, *_attention_arrays(self.attention)]
        if self.text_attention is not None:
            arrays.append(self.text_attention.weights)
        return sum(array.nbytes for array in arrays)


def best_class(class_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(Q,)` best score and `(Q,)` int64 class id of each row of `(Q, classes)` scores (zeros
    without classes)."""
    if not class_scores.size:
        return np.zeros(len(class_scores), np.float32), np.zeros(len(class_scores), np.int64)
    return class_scores.max(axis=1), class_scores.argmax(axis=1)


def _attention_arrays(attention: Attention) -> list[np.ndarray]:
    if isinstance(attention, DenseAttention):
        return [attention.weights]
    return [attention.locations, attention.weights, attention.level_shapes]
