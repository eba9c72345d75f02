"""Which instance map is faithful, per object size, over a labelled split: what `explain` reports.

Objects are drawn per AI-TOD size bucket (sqrt(area) in model-input pixels: under 8, 8-16,
16-32, 32 and over), seeded, from every annotated object of the split. An object some detection
matched (pycocotools' matching at IoU 0.5, score >= the threshold) is explained through that
detection; an unmatched one through its nearest query (`missed_target`). Each method's map of
it is scored by deletion and insertion AUC, the pointing game (no tolerance: the usual 15 px
would swallow an 8 px object) and the energy in the box; `study_rows` gives the per-bucket means
with bootstrap 95 % intervals over objects. AUCs are raw (not divided by the unaltered image's
response), as in ODAM and D-RISE, so a missed object's curves start low.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sodviz.boxes import box_size
from sodviz.detector.inference import run_inference, to_detections
from sodviz.detector.loading import Detector
from sodviz.evaluation.buckets import AITOD_BUCKETS, size_bucket
from sodviz.evaluation.coco import first_images, load_coco
from sodviz.evaluation.ground_truth import ground_truth_from_coco, match_ground_truth, truth_class_ids
from sodviz.evaluation.intervals import bootstrap_interval
from sodviz.explain.faithfulness import curve_fractions, energy_in_box, faithfulness_curves, pointing_hit
from sodviz.explain.methods import available_methods, explain
from sodviz.explain.perturb import model_input
from sodviz.explain.targets import ExplainTarget, detection_target, missed_target
from sodviz.imageio import load_image

STUDY_METRICS = ("deletion_auc", "insertion_auc", "pointing", "energy")
# lower deletion AUC is more faithful; higher for the other three
BETTER = {"deletion_auc": "low", "insertion_auc": "high", "pointing": "high", "energy": "high"}


@dataclass(frozen=True, slots=True)
class StudyObject:
    """One sampled object: where it is and how it is explained."""

    file_name: str
    object_index: int  # in its image's annotations
    bucket: str
    size: float  # sqrt(area), model-input pixels
    target: ExplainTarget


def sample_objects(
    detector: Detector,
    annotations: str | Path,
    images: str | Path,
    *,
    per_bucket: int = 12,
    threshold: float = 0.3,
    input_size: int | None = None,
    max_images: int | None = None,
    seed: int = 0,
    on_progress: Callable[[float], None] | None = None,
) -> list[StudyObject]:
    """Up to `per_bucket` objects of each size bucket, drawn with `seed` from every object of
    the split (one pass of the detector per image), grouped by image."""
    coco = first_images(load_coco(annotations), max_images)
    pool: list[StudyObject] = []
    for number, record in enumerate(coco["images"]):
        image = load_image(Path(images) / record["file_name"])
        truth = ground_truth_from_coco(coco, image_id=record["id"])
        if len(truth):
            result = run_inference(detector, image, input_size=input_size, cache=None)
            detections = to_detections(result, score_threshold=threshold)
            match = match_ground_truth(detections, truth, class_names=detector.class_names)
            aware, class_ids = truth_class_ids(truth, detector.class_names)
            sizes = box_size(truth.boxes_xyxy.astype(np.float64)) * result.transform.length_scale
            for index, (box, size, bucket) in enumerate(
                zip(truth.boxes_xyxy, sizes, size_bucket(sizes, AITOD_BUCKETS), strict=True)
            ):
                found = int(match.detection[index])
                if found >= 0:
                    query = int(detections.data["query_index"][found])
                    target = detection_target(result, query, int(detections.class_id[found]))
                else:
                    target = missed_target(result, box, class_ids[index] if aware else None)
                pool.append(StudyObject(record["file_name"], index, str(bucket), float(size), target))
        if on_progress is not None:
            on_progress((number + 1) / len(coco["images"]))
    rng = np.random.default_rng(seed)
    chosen = []
    for bucket in AITOD_BUCKETS:
        members = [i for i, item in enumerate(pool) if item.bucket == bucket]
        chosen += rng.permutation(members)[:per_bucket].tolist()
    return [pool[i] for i in sorted(chosen)]


def score_objects(
    detector: Detector,
    objects: list[StudyObject],
    images: str | Path,
    *,
    methods: tuple[str, ...],
    input_size: int | None = None,
    masks: int = 300,
    steps: int = 16,
    seed: int = 0,
    on_progress: Callable[[float], None] | None = None,
) -> list[dict]:
    """One row per object and method: its bucket, whether it was missed, the four metrics, and
    the seconds the map took (see the module's docstring; `masks`: D-RISE's)."""
    unknown = set(methods) - set(available_methods(detector))
    if unknown:
        raise ValueError(f"{sorted(unknown)} cannot explain {detector.family.name}")
    fractions = curve_fractions(steps)
    rows, image, base, loaded = [], None, None, None
    for number, item in enumerate(objects):
        if item.file_name != loaded:
            image = load_image(Path(images) / item.file_name)
            base = model_input(detector, image, input_size=input_size)
            result = run_inference(detector, image, input_size=input_size, cache=None)
            loaded = item.file_name
        for method in methods:
            maps = explain(
                detector, image, result, item.target, method, input_size=input_size, masks=masks,
                seed=seed, base=base, cache=None,
            )  # fmt: skip
            values = maps.map("score")
            curves = faithfulness_curves(detector, base, values, item.target, fractions=fractions, seed=seed)
            rows.append({
                "file_name": item.file_name, "object": item.object_index, "bucket": item.bucket,
                "size": item.size, "missed": item.target.missed, "method": method,
                "deletion_auc": curves.auc("deletion"), "insertion_auc": curves.auc("insertion"),
                "pointing": float(pointing_hit(values, item.target.box_xyxy)),
                "energy": energy_in_box(values, item.target.box_xyxy), "seconds": maps.seconds,
            })  # fmt: skip
        if on_progress is not None:
            on_progress((number + 1) / len(objects))
    return rows


SUMMARY_COLUMNS = ["bucket", "method", "objects", "missed"] + [
    f"{metric}{part}" for metric in STUDY_METRICS for part in ("", "_low", "_high")
]


def study_rows(rows: list[dict], *, resamples: int = 1000, seed: int = 0) -> list[dict]:
    """Per bucket (and "all") and method: the objects, how many were missed, and each metric's
    mean with its bootstrap 95 % interval over the objects."""
    rng = np.random.default_rng(seed)
    methods = list(dict.fromkeys(row["method"] for row in rows))
    summary = []
    for bucket in (*AITOD_BUCKETS, "all"):
        for method in methods:
            chosen = [r for r in rows if r["method"] == method and bucket in (r["bucket"], "all")]
            if not chosen:
                continue
            out = {"bucket": bucket, "method": method, "objects": len(chosen),
                   "missed": sum(bool(r["missed"]) for r in chosen)}  # fmt: skip
            for metric in STUDY_METRICS:
                values = np.array([r[metric] for r in chosen], np.float64)
                low, high = bootstrap_interval(values, resamples=resamples, rng=rng)
                out |= {metric: float(values.mean()), f"{metric}_low": low, f"{metric}_high": high}
            summary.append(out)
    return summary


def most_faithful(rows: list[dict], *, least: int = 5, resamples: int = 1000, seed: int = 0) -> list[dict]:
    """Per bucket (and "all") and metric: the best method by its mean over the objects, and
    whether it is "clear" (the paired bootstrap 95 % interval of its difference to every other
    method, on the same objects, excludes zero) or "overlaps" (some interval holds zero: no
    honest winner); "too few" under `least` objects. `rows`: `score_objects`'s."""
    rng = np.random.default_rng(seed)
    methods = list(dict.fromkeys(row["method"] for row in rows))
    verdicts = []
    for bucket in (*AITOD_BUCKETS, "all"):
        chosen = [r for r in rows if bucket in (r["bucket"], "all")]
        if not chosen:
            continue
        objects = list(dict.fromkeys((r["file_name"], r["object"]) for r in chosen))
        for metric in STUDY_METRICS:
            sign = -1.0 if BETTER[metric] == "low" else 1.0
            table = np.full((len(methods), len(objects)), np.nan)
            for r in chosen:
                table[methods.index(r["method"]), objects.index((r["file_name"], r["object"]))] = r[metric]
            scored = np.isfinite(table).any(axis=1)
            means = np.array(
                [np.nanmean(sign * r) if ok else -np.inf for r, ok in zip(table, scored, strict=True)]
            )
            best = int(np.argmax(means))
            clear = True
            for other in range(len(methods)):
                if other != best and scored[other]:  # a method scored in this bucket
                    difference = sign * (table[best] - table[other])
                    low, _ = bootstrap_interval(
                        difference[np.isfinite(difference)], resamples=resamples, rng=rng
                    )
                    clear &= bool(low > 0)
            interval = "too few" if len(objects) < least else "clear" if clear else "overlaps"
            verdicts.append({"bucket": bucket, "metric": metric, "best": methods[best],
                             "mean": float(sign * means[best]), "interval": interval})  # fmt: skip
    return verdicts
