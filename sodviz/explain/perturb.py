"""The detector on many altered copies of one image, altered in the model's input space.

D-RISE's masked images and the deletion / insertion curves all change pixels of one image and
run the detector again. The image is preprocessed once (`ModelInput`); each copy mixes its
pixels with a fill (the preprocessed black image, or a blurred copy) by a mask on the input
grid, so the processor's resize and normalisation are not redone per copy. Copies run in
batches without attention capture; the pixel mask and any text inputs are repeated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from sodviz.boxes import overlap_matrix
from sodviz.cache import InferenceCache, cached, image_hash
from sodviz.detector.inference import decode_predictions, uses_sigmoid
from sodviz.detector.loading import Detector
from sodviz.detector.preprocess import prepare_inputs
from sodviz.detector.threads import run_model_work
from sodviz.explain.targets import ExplainTarget
from sodviz.types import InputTransform


@dataclass(frozen=True)
class ModelInput:
    """One image as the model sees it, with what altered copies are mixed from.

    Attributes:
        inputs: the processor's tensors for the image (batch of one).
        transform: the image's `InputTransform`.
        black: `[1, 3, h, w]` the preprocessed black image (what deletion and D-RISE fill with).
        blurred: `[1, 3, h, w]` the preprocessed image blurred (what insertion starts from).
    """

    inputs: dict
    transform: InputTransform
    black: torch.Tensor
    blurred: torch.Tensor

    @property
    def nbytes(self) -> int:  # for `InferenceCache`
        tensors = [*self.inputs.values(), self.black, self.blurred]
        return int(sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor)))

    @property
    def pixels(self) -> torch.Tensor:
        return self.inputs["pixel_values"]

    @property
    def valid_hw(self) -> tuple[int, int]:
        """The input pixels the image covers (the rest is the processor's padding)."""
        return self.transform.resized_hw

    def to_input_grid(self, image_map: np.ndarray) -> np.ndarray:
        """An `(H, W)` map on the original image -> `(valid h, valid w)` on the input grid."""
        height, width = self.valid_hw
        return cv2.resize(np.asarray(image_map, np.float32), (width, height), interpolation=cv2.INTER_AREA)


def model_input(
    detector: Detector, image: np.ndarray, *, input_size: int | None = None, blur_sigma: float = 5.0,
    cache: InferenceCache | None = None,
) -> ModelInput:  # fmt: skip
    """Preprocess `image` once, with its black and blurred fills (Gaussian, `blur_sigma` pixels of
    the original image); kept in `cache` when given (a page reruns on every slider)."""

    def compute() -> ModelInput:
        inputs, (transform,) = prepare_inputs(detector, [image], input_size=input_size)
        black_inputs, _ = prepare_inputs(detector, [np.zeros_like(image)], input_size=input_size)
        blurred_image = cv2.GaussianBlur(image, (0, 0), sigmaX=blur_sigma)
        blurred_inputs, _ = prepare_inputs(detector, [blurred_image], input_size=input_size)
        return ModelInput(inputs, transform, black_inputs["pixel_values"], blurred_inputs["pixel_values"])

    def key() -> tuple:
        return ("model_input", detector.content_hash, image_hash(image), input_size, blur_sigma)

    return cached(cache, key, compute)


def mix(base: ModelInput, keep: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """`[N, 3, h, w]` copies: the image where `keep` (`[N, valid h, valid w]`, in [0, 1]) is 1, `fill`
    where it is 0; the padding as it was."""
    pixels = base.pixels
    full = torch.ones(len(keep), *pixels.shape[-2:], dtype=pixels.dtype)
    height, width = keep.shape[-2:]
    full[:, :height, :width] = keep
    full = full[:, None]
    return full * pixels + (1 - full) * fill


def detect_copies(
    detector: Detector,
    base: ModelInput,
    copies: Callable[[int, int], torch.Tensor],
    count: int,
    *,
    batch_size: int = 8,
    on_progress: Callable[[float], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the detector on `count` altered copies, `copies(start, stop)` making each batch.

    Returns:
        float32 `(count, Q, 4)` boxes in original pixels and float32 `(count, Q, classes)` class
        probabilities (phrases for open-vocabulary models).
    """
    sigmoid = uses_sigmoid(detector.model.config, default=detector.family.sigmoid_scores)
    boxes, probabilities = [], []
    for start in range(0, count, batch_size):
        stop = min(count, start + batch_size)
        pixels = copies(start, stop)
        inputs = {
            name: value.repeat(len(pixels), *([1] * (value.ndim - 1)))
            for name, value in base.inputs.items()
            if name != "pixel_values"
        }

        def forward(pixels=pixels, inputs=inputs):
            with torch.inference_mode():
                return detector.model(pixel_values=pixels, **inputs)

        outputs = run_model_work(detector.lock, forward)
        logits = outputs.logits
        if detector.prompt is not None:
            logits = detector.prompt.phrase_logits(logits)
        for found, scores in decode_predictions(
            logits, outputs.pred_boxes, [base.transform] * len(pixels), sigmoid=sigmoid
        ):
            boxes.append(found)
            probabilities.append(scores)
        if on_progress is not None:
            on_progress(stop / count)
    return np.stack(boxes), np.stack(probabilities)


def matched_response(
    boxes: np.ndarray, probabilities: np.ndarray, target: ExplainTarget
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How strongly each copy still detects the target: per copy, the query maximising IoU with
    the target's box times its score for the target's class (D-RISE's similarity with a one-hot
    class vector, the class score in place of the cosine), that product, its score and its IoU.

    Returns:
        float64 `(N,)` responses, scores and IoUs.
    """
    box = np.asarray(target.box_xyxy, np.float64)[None]
    responses, scores, ious = [], [], []
    for found, probability in zip(boxes, probabilities, strict=True):
        iou = overlap_matrix(box, found.astype(np.float64))[0]
        score = probability[:, target.class_id].astype(np.float64)
        best = int(np.argmax(iou * score))
        responses.append(iou[best] * score[best])
        scores.append(score[best])
        ious.append(iou[best])
    return np.array(responses), np.array(scores), np.array(ious)
