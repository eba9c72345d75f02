"""One image analysed: its object, detection, image and method rows (see docs/dataset.md)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import supervision as sv

from sodviz.analysis.errors import false_positive_types, miss_types
from sodviz.analysis.settings import AnalysisSettings, method_name
from sodviz.attention.maps import image_attention, query_attention_entropy
from sodviz.attention.mass import attention_mass_in_box, map_mass_in_box, points_in_box
from sodviz.boxes import box_size, intersection_area, xywh_to_xyxy
from sodviz.cache import InferenceCache
from sodviz.crops.budget import detect_at_budget
from sodviz.crops.vicrop import gate
from sodviz.detector.inference import inference_key, run_inference, to_detections
from sodviz.detector.loading import Detector
from sodviz.detector.preprocess import resolve_input_size
from sodviz.evaluation.buckets import AITOD_BUCKETS, size_bucket
from sodviz.evaluation.ground_truth import GroundTruth, match_ground_truth
from sodviz.types import InferenceResult

ENLARGE = 2.0  # attention shares are taken inside a box twice the object's size


@dataclass(frozen=True, slots=True)
class ImageRows:
    """The rows one image adds to each table: {column: value} dicts, in the store's schema."""

    images: list[dict]
    objects: list[dict]
    detections: list[dict]
    methods: list[dict]
    crowds: list[dict]


def analyze_image(
    detector: Detector, image: np.ndarray, task: dict, settings: AnalysisSettings, *, class_aware: bool
) -> ImageRows:
    """Run the full-image pass and every refinement of `settings` on one image and describe it.

    Args:
        image: uint8 `(H, W, 3)` RGB, as decoded.
        task: `image_key`, `image_id`, `file_name`, and `objects`: a list of {`annotation_id`,
            `category` (name), `label` (the model's class id; any when not class-aware), `bbox`
            (COCO xywh, pixels of `image`)}.
        class_aware: classes must agree for a match (the dataset's names are the model's).
    """
    size = resolve_input_size(detector, settings.input_size)
    started = time.perf_counter()
    result = run_inference(detector, image, input_size=size, cache=None)
    base_seconds = time.perf_counter() - started
    scale = result.transform.length_scale
    objects = task["objects"]
    truth = xywh_to_xyxy(np.array([o["bbox"] for o in objects], np.float64).reshape(-1, 4)).astype(np.float32)
    labels = np.array([o["label"] for o in objects], np.int64)
    entropy = query_attention_entropy(result, normalize=True)
    base = to_detections(result, score_threshold=settings.keep_score)
    kept = base.confidence >= settings.score_threshold
    crowd_rows = task.get("crowds", [])
    crowds = xywh_to_xyxy(np.array([c["bbox"] for c in crowd_rows], np.float64).reshape(-1, 4))
    crowds = (crowds, np.array([c["label"] for c in crowd_rows], np.int64))
    status, missed = _match(base[kept], truth, labels, crowds, class_aware=class_aware)
    nearest, nearest_iou, error = miss_types(
        truth, labels, missed, result.boxes_xyxy, result.class_scores,
        score_threshold=settings.score_threshold, class_aware=class_aware,
    )  # fmt: skip
    found_after = {i: [] for i in range(len(objects))}
    methods = [_method_row(task, "base", 1, 1, base_seconds, missed, status)]
    rows = _detection_rows(task, "base", 1, base, kept, status, truth, labels, entropy, scale, class_aware)
    for method, budget in settings.runs:
        cache = InferenceCache()  # the full-image pass only: each method pays for its own crops
        cache.get_or_compute(inference_key(detector, image, size), lambda: result)
        started = time.perf_counter()
        run = detect_at_budget(
            detector, image, method, budget, settings.vicrop_config(), input_size=size, cache=cache
        )
        refined, passes = run.detections, run.passes
        seconds = time.perf_counter() - started
        on = refined.confidence >= settings.score_threshold
        refined_status, refined_missed = _match(refined[on], truth, labels, crowds, class_aware=class_aware)
        for i in np.flatnonzero(~refined_missed):
            found_after[i].append(method_name(method, budget))
        methods.append(_method_row(task, method, budget, passes, seconds, refined_missed, refined_status))
        rows += _detection_rows(
            task, method, budget, refined, on, refined_status, truth, labels, entropy, scale, class_aware
        )
    heat = image_attention(result, mode="all")
    sizes = box_size(truth)
    buckets = size_bucket(sizes * scale, AITOD_BUCKETS)
    object_rows = [
        {
            "image_key": task["image_key"], "image_id": task["image_id"], "file_name": task["file_name"],
            "annotation_id": objects[i]["annotation_id"], "category": objects[i]["category"],
            **_box(truth[i]),
            "size_image": float(sizes[i]), "size_input": float(sizes[i] * scale), "bucket": str(buckets[i]),
            "matched": bool(not missed[i]),
            "error": str(error[i]),
            **_nearest(result, int(nearest[i]), float(nearest_iou[i]), entropy),
            "attention_share": map_mass_in_box(result, heat, truth[i], enlarge=ENLARGE),
            "points_share": points_in_box(result, truth[i], enlarge=ENLARGE),
            "nearest_attention_share": _query_share(result, int(nearest[i]), truth[i]),
            "found_after": found_after[i],
        }
        for i in range(len(objects))
    ]  # fmt: skip
    return ImageRows(
        images=[_image_row(task, result, settings, base_seconds)], objects=object_rows,
        detections=rows, methods=methods,
        crowds=[
            {"image_key": task["image_key"], "file_name": task["file_name"], "category": row["category"],
             **_box(c)}
            for c, row in zip(crowds[0], crowd_rows, strict=True)
        ],
    )  # fmt: skip


def _match(
    detections: sv.Detections, truth: np.ndarray, labels: np.ndarray, crowds: tuple, *, class_aware: bool
) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools' matching at IoU 0.5 (`match_ground_truth`): "TP" / "FP" per detection, and
    "ignored" for a false one that lies on a crowd region of its class (half its area inside, as
    pycocotools measures crowd overlap); bool `(N,)` missed per object. `crowds`: (boxes `(C, 4)`,
    labels `(C,)`). Classes agree when `class_aware`."""
    crowd_boxes, crowd_labels = crowds
    classes = detections.class_id
    names = tuple(
        str(i) for i in range(max(int(labels.max(initial=0)), int(detections.class_id.max(initial=0))) + 1)
    )
    if not class_aware:
        names, labels = ("object",), np.zeros(len(labels), np.int64)
        detections = sv.Detections(xyxy=detections.xyxy, confidence=detections.confidence,
                                   class_id=np.zeros(len(detections), np.int64))  # fmt: skip
    truth = GroundTruth(boxes_xyxy=truth, class_names=np.array([names[i] for i in labels], dtype=str))
    match = match_ground_truth(detections, truth, class_names=names)
    status = match.status.astype("<U7")
    if len(crowd_boxes) and len(detections):
        areas = np.maximum(box_size(detections.xyxy) ** 2, 1e-9)
        inside = np.stack([intersection_area(c, detections.xyxy) for c in crowd_boxes]) / areas >= 0.5
        if class_aware:
            inside &= crowd_labels[:, None] == classes[None, :]
        status[(status == "FP") & inside.any(axis=0)] = "ignored"
    return status, match.missed


def _box(box) -> dict:
    return dict(zip(("x0", "y0", "x1", "y1"), map(float, box), strict=True))


def _query_share(result: InferenceResult, query: int, box: np.ndarray) -> float:
    return attention_mass_in_box(result, query, box, enlarge=ENLARGE) if query >= 0 else 0.0


def _nearest(result: InferenceResult, query: int, iou: float, entropy: np.ndarray) -> dict:
    if query < 0:
        return {"nearest_query": -1, "nearest_iou": 0.0, "nearest_score": 0.0, "nearest_class": "",
                "nearest_entropy": float("nan")}  # fmt: skip
    return {
        "nearest_query": query, "nearest_iou": iou, "nearest_score": float(result.scores[query]),
        "nearest_class": result.class_names[int(result.labels[query])] if result.class_names else "",
        "nearest_entropy": float(entropy[query]),
    }  # fmt: skip


def _detection_rows(
    task, method, budget, detections, kept, status, truth, labels, entropy, scale, aware
) -> list:
    full = np.full(len(detections), "", dtype=object)
    full[kept] = status
    types = np.full(len(detections), "", dtype=object)
    types[kept] = false_positive_types(
        detections.xyxy[kept], detections.class_id[kept], status == "FP", truth, labels, class_aware=aware
    )
    refined = np.asarray(detections.data.get("refined", np.zeros(len(detections), bool)), bool)
    queries = np.where(refined, -1, detections.data["query_index"]).astype(np.int64)
    sizes = box_size(detections.xyxy)
    return [
        {
            "image_key": task["image_key"], "file_name": task["file_name"],
            "method": method_name(method, budget), "query": int(queries[d]),
            "label": int(detections.class_id[d]),
            "class_name": str(detections.data["class_name"][d]), "score": float(detections.confidence[d]),
            **_box(detections.xyxy[d]),
            "size_input": float(sizes[d] * scale),
            "bucket": str(size_bucket(sizes[d] * scale, AITOD_BUCKETS)[0]),
            "status": full[d] or "below", "fp_type": types[d],
            "entropy": float(entropy[queries[d]]) if queries[d] >= 0 else float("nan"),
        }
        for d in range(len(detections))
    ]  # fmt: skip


def _method_row(task, method, budget, passes, seconds, missed, status) -> dict:
    return {
        "image_key": task["image_key"], "file_name": task["file_name"],
        "method": method_name(method, budget), "passes": int(passes), "seconds": float(seconds),
        "tp": int((status == "TP").sum()),
        "fp": int((status == "FP").sum()), "fn": int(missed.sum()),
    }  # fmt: skip


def _image_row(task, result: InferenceResult, settings: AnalysisSettings, seconds: float) -> dict:
    refine, uncertain = gate(result, settings.vicrop_config())  # the gate only: no windows scored
    height, width = result.transform.image_hw
    return {
        "image_key": task["image_key"], "image_id": task["image_id"], "file_name": task["file_name"],
        "width": width, "height": height, "length_scale": result.transform.length_scale,
        "objects": len(task["objects"]), "gate_refine": refine,
        "uncertain_queries": uncertain, "seconds": float(seconds),
    }  # fmt: skip
