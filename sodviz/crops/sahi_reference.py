"""SAHI, the reference implementation of sliced inference, driving a sodviz detector: the check that
our slicing is as strong as SAHI's on the same crops. Needs `sahi` (a dev requirement)."""

from __future__ import annotations

import numpy as np
import supervision as sv

from sodviz.crops.slicing import slice_grid, slices_for_budget
from sodviz.detector.inference import run_inference, to_detections
from sodviz.detector.loading import Detector


def sahi_model(detector: Detector, *, score_threshold: float, input_size: int | None = None):
    """A `sahi.models.base.DetectionModel` whose predictions are `detector`'s, thresholded at
    `score_threshold` and clamped to the image (as SAHI's own Hugging Face model does)."""
    from sahi.models.base import DetectionModel
    from sahi.prediction import ObjectPrediction
    from sahi.utils.compatibility import fix_full_shape_list, fix_shift_amount_list

    class SodvizModel(DetectionModel):
        def set_model(self, model, **kwargs) -> None:
            self.model = model
            self.category_mapping = {str(i): name for i, name in enumerate(model.class_names)}

        def perform_inference(self, image: np.ndarray) -> None:
            result = run_inference(self.model, np.ascontiguousarray(image), input_size=input_size, cache=None)
            self._original_predictions = (result, image.shape[:2])

        def _create_object_prediction_list_from_original_predictions(
            self, shift_amount_list=None, full_shape_list=None
        ) -> None:
            result, (height, width) = self._original_predictions
            shift = fix_shift_amount_list(shift_amount_list or [0, 0])[0]
            full_shape = (fix_full_shape_list(full_shape_list) or [None])[0]
            found = to_detections(result, score_threshold=self.confidence_threshold)
            boxes = np.clip(found.xyxy.astype(np.float64), 0, [width, height, width, height])
            predictions = []
            for box, label, name, score in zip(
                boxes, found.class_id, found.data["class_name"], found.confidence, strict=True
            ):
                if box[2] > box[0] and box[3] > box[1]:
                    predictions.append(
                        ObjectPrediction(
                            bbox=box.tolist(),
                            category_id=int(label),
                            category_name=str(name),
                            score=float(score),
                            shift_amount=list(shift),
                            full_shape=full_shape,
                        )
                    )
            self._object_prediction_list_per_image = [predictions]

    return SodvizModel(model=detector, confidence_threshold=score_threshold, device="cpu")


def sahi_sliced(
    detector: Detector,
    image: np.ndarray,
    *,
    forward_passes: int,
    overlap: float = 0.2,
    score_threshold: float = 0.01,
    postprocess: str = "NMS",
    match_metric: str = "IOU",
    match_threshold: float = 0.5,
    force_postprocess_type: bool = False,
    input_size: int | None = None,
) -> tuple[sv.Detections, int]:
    """`sahi.predict.get_sliced_prediction` with the slice side of our grid at `forward_passes`
    (full image included): its detections, and the forward passes SAHI ran."""
    from sahi.predict import get_sliced_prediction

    height, width = image.shape[:2]
    crops = slice_grid((height, width), slices_for_budget(forward_passes), overlap=overlap)
    slice_w, slice_h = int(crops[0, 2] - crops[0, 0]), int(crops[0, 3] - crops[0, 1])
    model = sahi_model(detector, score_threshold=score_threshold, input_size=input_size)
    calls = [0]
    inner = model.perform_inference

    def counted(pixels: np.ndarray) -> None:
        calls[0] += 1
        inner(pixels)

    model.perform_inference = counted
    prediction = get_sliced_prediction(
        image, model, slice_height=slice_h, slice_width=slice_w, overlap_height_ratio=overlap,
        overlap_width_ratio=overlap, perform_standard_pred=True, postprocess_type=postprocess,
        postprocess_match_metric=match_metric, postprocess_match_threshold=match_threshold,
        postprocess_class_agnostic=False, verbose=0, force_postprocess_type=force_postprocess_type,
    )  # fmt: skip
    found = prediction.object_prediction_list
    detections = sv.Detections(
        xyxy=np.array([p.bbox.to_xyxy() for p in found], np.float32).reshape(-1, 4),
        confidence=np.array([p.score.value for p in found], np.float32),
        class_id=np.array([p.category.id for p in found], np.int64),
    )
    return detections, calls[0]
