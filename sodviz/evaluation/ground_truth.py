"""Ground truth of one image (from COCO annotations) and how a detector's detections match it."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace

import numpy as np
import supervision as sv

from sodviz.boxes import box_size, xywh_to_xyxy, xyxy_to_xywh
from sodviz.evaluation.buckets import APP_BUCKETS, size_bucket
from sodviz.evaluation.coco import class_aware, coco_results, match_detections
from sodviz.evaluation.validation import check_coco


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """Annotated objects of one image.

    Attributes:
        boxes_xyxy: float32 `(N, 4)` in pixels of the image as decoded (scaled with it).
        class_names: str `(N,)`, each object's category name.
        notices: what reading the annotations left out or changed (see `check_coco`).
    """

    boxes_xyxy: np.ndarray
    class_names: np.ndarray
    notices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.boxes_xyxy.shape != (len(self.class_names), 4):
            raise ValueError(f"boxes_xyxy must be ({len(self.class_names)}, 4), got {self.boxes_xyxy.shape}")

    def __len__(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True, slots=True)
class GroundTruthMatch:
    """Detections against ground truth at one IoU (pycocotools matching, greedy by score).

    Attributes:
        status: str `(D,)`, "TP" or "FP" for each detection.
        missed: bool `(N,)`, True for each object no detection matched (FN).
        counts: {bucket: {"tp", "fp", "fn"}} over `APP_BUCKETS` (objects by their own size,
            false positives by the detection's size).
        class_aware: whether classes had to agree (only when every ground-truth name is one
            of the detector's classes; otherwise any class matches).
        detection: int64 `(N,)`, the index of the detection that matched each object, -1 when
            missed.
    """

    status: np.ndarray
    missed: np.ndarray
    counts: dict[str, dict[str, int]]
    class_aware: bool
    detection: np.ndarray


def app_bucket(boxes_xyxy: np.ndarray) -> np.ndarray:
    """str `(N,)`: the `APP_BUCKETS` name of each box (original pixels) by sqrt of its area."""
    return size_bucket(box_size(boxes_xyxy), APP_BUCKETS)


def ground_truth_from_coco(coco: dict, *, image_id: int, scale: float = 1.0) -> GroundTruth:
    """The objects of one image of a COCO dataset dict, boxes multiplied by `scale`."""
    names = {c["id"]: str(c.get("name", c["id"])) for c in coco.get("categories", [])}
    mine = [a for a in coco["annotations"] if a["image_id"] == image_id]
    boxes = xywh_to_xyxy(np.array([[float(v) for v in a["bbox"]] for a in mine], np.float64).reshape(-1, 4))
    classes = [names.get(a["category_id"], str(a["category_id"])) for a in mine]
    boxes_xyxy = boxes.astype(np.float32) * np.float32(scale)
    return GroundTruth(boxes_xyxy=boxes_xyxy, class_names=np.array(classes, dtype=str))


def parse_annotations(data: bytes, *, file_name: str | None = None, scale: float = 1.0) -> GroundTruth:
    """Ground truth for one image from uploaded COCO-format JSON bytes.

    The image is the file's only image, or the one whose `file_name` matches (by base name).

    Annotations are checked by `check_coco`; what it left out or clipped is in `notices`.

    Raises:
        ValueError: not JSON, not usable COCO, or no matching image.
    """
    try:
        coco = json.loads(data.decode("utf-8-sig") if isinstance(data, bytes) else data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"The annotations are not valid JSON ({error}).") from error
    check = check_coco(coco, source="The annotations", need_files=False, require_objects=False)
    coco = check.coco
    images = coco["images"]
    if len(images) != 1:
        wanted = os.path.basename(file_name or "")
        images = [i for i in images if os.path.basename(str(i.get("file_name", ""))) == wanted]
        if len(images) != 1:
            raise ValueError(
                f"The annotations list {len(coco['images'])} images and none is named {wanted!r}; "
                "give annotations that name this image's file, or hold this image only."
            )
    truth = ground_truth_from_coco(coco, image_id=images[0]["id"], scale=scale)
    return replace(truth, notices=check.notices)


def truth_class_ids(truth: GroundTruth, class_names: tuple[str, ...]) -> tuple[bool, list[int]]:
    """(class-aware, each object's class id into `class_names`): every id 0 when some name is
    not one of the detector's classes (then any class matches, as in `match_ground_truth`)."""
    aware = class_aware(truth.class_names.tolist(), class_names)
    return aware, [class_names.index(n) if aware else 0 for n in truth.class_names.tolist()]


def single_image_coco(truth: GroundTruth, category_ids, categories: list[dict], image: dict) -> dict:
    """`truth` as a COCO dict of one image (`image`, its record with an "id"): annotation i + 1
    is object i, of category `category_ids[i]`."""
    boxes = xyxy_to_xywh(truth.boxes_xyxy).tolist()
    return {
        "images": [image],
        "categories": categories,
        "annotations": [
            {"id": i + 1, "image_id": image["id"], "category_id": int(c), "bbox": box,
             "area": box[2] * box[3], "iscrowd": 0}
            for i, (box, c) in enumerate(zip(boxes, category_ids, strict=True))
        ],
    }  # fmt: skip


def match_ground_truth(
    detections: sv.Detections, truth: GroundTruth, *, class_names: tuple[str, ...], iou: float = 0.5
) -> GroundTruthMatch:
    """Match detections (class ids into `class_names`) to ground truth; see `GroundTruthMatch`."""
    aware, truth_ids = truth_class_ids(truth, class_names)
    detection_ids = detections.class_id if aware else np.zeros(len(detections), np.int64)
    categories = [{"id": i} for i in range(max(len(class_names), 1))]
    coco = single_image_coco(truth, truth_ids, categories, {"id": 0})
    records = coco_results(
        detections.xyxy, detections.confidence, detection_ids, image_id=0, row=np.arange(len(detections))
    )
    _, pairs = match_detections(coco, records, score_threshold=-math.inf, iou=iou)
    status = np.full(len(detections), "FP", dtype="<U2")
    matched = np.full(len(truth), -1, np.int64)
    for detection, annotation in pairs:
        status[detection["row"]] = "TP"
        matched[annotation["id"] - 1] = detection["row"]
    missed = matched < 0
    counts = {name: {"tp": 0, "fp": 0, "fn": 0} for name in APP_BUCKETS}
    for bucket, found in zip(app_bucket(truth.boxes_xyxy), ~missed, strict=True):
        counts[bucket]["tp" if found else "fn"] += 1
    for bucket, label in zip(app_bucket(detections.xyxy), status, strict=True):
        counts[bucket]["fp"] += label == "FP"
    return GroundTruthMatch(status=status, missed=missed, counts=counts, class_aware=aware, detection=matched)
