"""COCO AP (pycocotools) with COCO and AI-TOD size buckets, and TP/FP/FN counts per bucket."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from pathlib import Path

import numpy as np

from sodviz.boxes import bbox_size, xyxy_to_xywh
from sodviz.evaluation.buckets import AITOD_BUCKETS, COCO_BUCKETS, size_bucket
from sodviz.evaluation.validation import check_coco
from sodviz.notices import name_some, notify

MAX_DETECTIONS = 1500  # per image, as AI-TOD (dense aerial scenes exceed COCO's 100)


BACKENDS = ("pycocotools", "faster")


def load_coco(path: str | Path, *, require_objects: bool = True) -> dict:
    """A COCO-format dataset dict from a JSON file, checked by `check_coco`.

    What was left out or clipped is warned as `DataNotice`s (the CLI prints them on stderr).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, or not usable COCO (the message says why).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no COCO annotations at {path}")
    try:
        coco = json.loads(path.read_bytes().decode("utf-8-sig"))  # a byte-order mark is fine
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    check = check_coco(coco, source=str(path), require_objects=require_objects)
    notify(check.notices)
    return check.coco


def category_names(annotations: str | Path) -> list[str]:
    """The category names of a COCO file, by id, read without checking the rest (an unreadable
    file gives none: the command's own loading says what is wrong with it)."""
    try:
        categories = json.loads(Path(annotations).read_text()).get("categories") or []
        return [str(c.get("name", c.get("id"))) for c in sorted(categories, key=lambda c: c.get("id", 0))]
    except (OSError, ValueError, AttributeError, TypeError):
        return []


def class_aware(names, class_names) -> bool:
    """Whether ground truth with category `names` can be scored per class against a model with
    `class_names`: every name is one of the model's classes (else scores are class-agnostic)."""
    return set(names) <= set(class_names)


def model_categories(coco: dict, class_names: tuple[str, ...] | list[str]) -> tuple[dict, np.ndarray]:
    """The dataset to score a detector against, and the category id each of its class labels
    carries (int64 `(C,)`; -1 for a class the data has no category of: pycocotools leaves those
    detections out, as COCO does).

    Classes are matched by name (a model fine-tuned by sodviz has the categories sorted by id;
    a hub model has its own order and ids). When some annotated category's name is not one of the
    model's classes (`class_aware`, the app's rule), or two annotated categories share a name, the
    scores are class-agnostic: every object and detection counts as one class, as
    the app's TP / FP / FN do, and a `DataNotice` says so.
    """
    used = {a["category_id"] for a in coco["annotations"]}
    categories = sorted(coco["categories"], key=lambda c: c["id"] not in used)  # annotated ones first
    names = [str(c.get("name", c["id"])) for c in categories if c["id"] in used]
    by_name = {}
    for category in categories:
        by_name.setdefault(str(category.get("name", category["id"])), category["id"])
    uncovered = sorted(set(names) - set(class_names))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if class_aware(names, class_names) and not repeated:
        return coco, np.array([by_name.get(name, -1) for name in class_names], np.int64)
    why = (
        f"the annotated categories {name_some(uncovered)} are not among the model's classes"
        if uncovered
        else f"several annotated categories share the names {name_some(repeated)}"
    )
    notify([f"{why}: scored class-agnostically (any class matches any object), as the app does."])
    agnostic = coco | {
        "categories": [{"id": 0, "name": "object"}],
        "annotations": [a | {"category_id": 0} for a in coco["annotations"]],
    }
    return agnostic, np.zeros(len(class_names), np.int64)


def first_images(coco: dict, max_images: int | None) -> dict:
    """The dataset restricted to its first `max_images` images (all when None) and their annotations."""
    if not max_images:
        return coco
    images = coco["images"][:max_images]
    ids = {image["id"] for image in images}
    return coco | {"images": images, "annotations": [a for a in coco["annotations"] if a["image_id"] in ids]}


def coco_results(
    boxes_xyxy: np.ndarray, scores: np.ndarray, labels: np.ndarray, *, image_id: int, **columns: np.ndarray
) -> list[dict]:
    """COCO results records (`bbox` = [x, y, w, h]) for boxes `(N, 4)` xyxy; `columns` add per-row fields."""
    records = []
    for i, bbox in enumerate(xyxy_to_xywh(boxes_xyxy).tolist()):
        record = {
            "image_id": image_id,
            "category_id": int(labels[i]),
            "score": float(scores[i]),
            "bbox": bbox,
        }
        record |= {
            name: values[i].item() if hasattr(values[i], "item") else values[i]
            for name, values in columns.items()
        }
        records.append(record)
    return records


def coco_metrics(
    ground_truth: dict, detections: list[dict], *, area_scale: dict[int, float] | None = None,
    backend: str = "pycocotools",
) -> dict[str, float]:  # fmt: skip
    """AP, AP50, AP75, AP_S/M/L and AI-TOD AP_vt/t/s/m (with AP50 per bucket), by pycocotools
    (or `backend="faster"`: faster-coco-eval's C++ `COCOeval_faster`, the same protocol; a test
    checks the two agree to 1e-4, AI-TOD buckets included).

    Args:
        ground_truth: COCO dataset dict.
        detections: COCO results (`image_id`, `category_id`, `bbox` xywh, `score`).
        area_scale: per image id, a length scale applied to box sizes before bucketing (e.g. model
            input / image size, to bucket in model-input pixels). IoU is unaffected.

    Returns:
        Metric name -> value; NaN where a bucket has no ground truth.
    """
    buckets = {"all": (0, math.inf)} | {f"_{k}": v for k, v in COCO_BUCKETS.items()}
    buckets |= {f"_{k}_aitod": v for k, v in AITOD_BUCKETS.items()}
    evaluator = _evaluator(ground_truth, detections, area_scale=area_scale, buckets=buckets, backend=backend)
    if evaluator is None:
        return _empty_metrics(ground_truth, area_scale)
    precision = evaluator.eval["precision"]  # [iou, recall, class, area, max_dets]
    names = list(buckets)
    metrics = {"AP": _mean_ap(precision[:, :, :, 0, -1]), "AP50": _mean_ap(precision[0, :, :, 0, -1])}
    metrics["AP75"] = _mean_ap(precision[5, :, :, 0, -1])
    for key in COCO_BUCKETS:
        metrics[f"AP_{key}"] = _mean_ap(precision[:, :, :, names.index(f"_{key}"), -1])
    for key in AITOD_BUCKETS:
        index = names.index(f"_{key}_aitod")
        metrics[f"AP_{key}"] = _mean_ap(precision[:, :, :, index, -1])
        metrics[f"AP50_{key}"] = _mean_ap(precision[0, :, :, index, -1])
    return metrics


def match_counts(
    ground_truth: dict,
    detections: list[dict],
    *,
    score_threshold: float,
    iou: float = 0.5,
    area_scale: dict[int, float] | None = None,
) -> dict[str, dict[str, int]]:
    """TP / FP / FN per AI-TOD size bucket at one IoU, matched by pycocotools (per class, greedy by score).

    A ground truth is bucketed by its own size, a false positive by the detection's size.
    """
    return match_detections(
        ground_truth, detections, score_threshold=score_threshold, iou=iou, area_scale=area_scale
    )[0]


def match_detections(
    ground_truth: dict,
    detections: list[dict],
    *,
    score_threshold: float,
    iou: float = 0.5,
    area_scale: dict[int, float] | None = None,
) -> tuple[dict[str, dict[str, int]], list[tuple[dict, dict]]]:
    """`match_counts`, plus the matched (detection, ground truth) pairs; extra detection keys are kept."""
    kept = [d for d in detections if d["score"] >= score_threshold]
    counts = {name: {"tp": 0, "fp": 0, "fn": 0} for name in AITOD_BUCKETS}
    evaluator = _evaluator(ground_truth, kept, area_scale=area_scale, buckets={"all": (0, math.inf)}, iou=iou)
    if evaluator is None:  # no detections: every ground truth is missed
        for annotation in ground_truth["annotations"]:
            if annotation.get("iscrowd", 0) != 1:  # crowd regions are ignored, as pycocotools does
                counts[aitod_bucket(annotation["bbox"], _scale(area_scale, annotation["image_id"]))][
                    "fn"
                ] += 1
        return counts, []
    gts, dts = evaluator.cocoGt.anns, evaluator.cocoDt.anns
    pairs = []
    for record in evaluator.evalImgs:
        if record is None:
            continue
        scale = _scale(area_scale, record["image_id"])
        for gt_id, matched, ignored in zip(
            record["gtIds"], record["gtMatches"][0], record["gtIgnore"], strict=True
        ):
            if not ignored:
                counts[aitod_bucket(gts[gt_id]["bbox"], scale)]["tp" if matched else "fn"] += 1
        for dt_id, matched, ignored in zip(
            record["dtIds"], record["dtMatches"][0], record["dtIgnore"][0], strict=True
        ):
            if matched and not ignored:  # matched to a crowd region: ignored, as in AP
                pairs.append((dts[dt_id], gts[int(matched)]))
            elif not ignored:
                counts[aitod_bucket(dts[dt_id]["bbox"], scale)]["fp"] += 1
    return counts, pairs


def _evaluator(ground_truth, detections, *, area_scale, buckets, iou=None, backend="pycocotools"):
    truth = copy.deepcopy(ground_truth)
    for annotation in truth["annotations"]:
        annotation["area"] = (
            annotation["bbox"][2] * annotation["bbox"][3] * _scale(area_scale, annotation["image_id"]) ** 2
        )
        annotation.setdefault("iscrowd", 0)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "faster":
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = truth
        coco_gt.createIndex()
        if not detections:
            return None
        coco_dt = coco_gt.loadRes(copy.deepcopy(detections))
        for annotation in coco_dt.anns.values():
            annotation["area"] *= _scale(area_scale, annotation["image_id"]) ** 2
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.params.maxDets = [1, 100, MAX_DETECTIONS]
        evaluator.params.areaRng = [[low**2, min(high**2, 1e10)] for low, high in buckets.values()]
        evaluator.params.areaRngLbl = list(buckets)
        if iou is not None:
            evaluator.params.iouThrs = np.array([iou])
        evaluator.evaluate()
        evaluator.accumulate()
    return evaluator


def _mean_ap(precision: np.ndarray) -> float:
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else float("nan")


def _empty_metrics(ground_truth: dict, area_scale: dict[int, float] | None) -> dict[str, float]:
    """No detections: AP 0 where there is ground truth, NaN where a bucket has none."""
    sizes = [
        bbox_size(a["bbox"]) * _scale(area_scale, a["image_id"])
        for a in ground_truth["annotations"]
        if a.get("iscrowd", 0) != 1
    ]
    value = 0.0 if sizes else float("nan")
    metrics = {"AP": value, "AP50": value, "AP75": value}
    for prefix, table in (("AP_", COCO_BUCKETS), ("AP_", AITOD_BUCKETS), ("AP50_", AITOD_BUCKETS)):
        for key, (low, high) in table.items():
            metrics[f"{prefix}{key}"] = 0.0 if any(low <= s < high for s in sizes) else float("nan")
    return metrics


def _scale(area_scale: dict[int, float] | None, image_id: int) -> float:
    return 1.0 if area_scale is None else float(area_scale[image_id])


def aitod_bucket(bbox_xywh, scale: float = 1.0) -> str:
    """The AI-TOD bucket (vt, t, s, m) of a COCO box whose lengths are scaled by `scale`."""
    return str(size_bucket(bbox_size(bbox_xywh) * scale, AITOD_BUCKETS)[0])
