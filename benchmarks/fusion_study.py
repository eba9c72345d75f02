"""The fusion ablation and the SAHI reference (issue 16). Every detection a method needs is computed
once per image (the full pass, ViCrop-Det's crops at the largest budget, each slicing grid), then
fused every way; budgets below the largest take ViCrop-Det's first crops (its greedy selection
picks them in order). Boxes are bucketed in model-input pixels, as in `sodviz benchmark`.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/fusion_study.py --data data/synth/val/annotations.json \
        --images data/synth/val/images --out runs/fusion_val [--sahi] [--max-images N]

Writes `fusion.csv` / `fusion.md` (variant, method, budget, passes used, AP columns), `fusion.png`
(AP50 against passes of the `--full` variant; needs a Chromium for kaleido) and, with
--sahi, `sahi.csv` / `sahi.md`: SAHI's `get_sliced_prediction` (NMS / IoU 0.5, and its default
greedy NMM / IoS forced on) beside our slicing with SAHI-equivalent settings at budgets 5 and 10.
Also prints how many crops ViCrop-Det planned at each budget and why it stopped short.
"""

from __future__ import annotations

import argparse
import multiprocessing
import pickle
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import supervision as sv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sodviz.cache import InferenceCache
from sodviz.crops.budget_report import budget_figure
from sodviz.crops.fusion import Fusion, fuse_detections
from sodviz.crops.redetect import detect_crops
from sodviz.crops.slicing import slice_grid, slices_for_budget
from sodviz.crops.vicrop import ViCropConfig, plan_crops
from sodviz.detector.inference import run_inference, to_detections
from sodviz.detector.loading import load_detector
from sodviz.evaluation.coco import coco_metrics, coco_results, first_images, load_coco
from sodviz.evaluation.tables import write_rows
from sodviz.imageio import load_image

THRESHOLD = 0.01
# name -> (fusion, border factor, sizes in original pixels instead of model-input pixels)
VARIANTS = {
    "before: crops < 32 orig px, full >= 32 kept, border 0.5": (
        Fusion(max_refined_size=32, keep_large=32),
        0.5,
        True,
    ),
    "none (SAHI-equivalent): NMS IoU 0.5": (Fusion(), 1.0, False),
    "default: NMS IoU 0.5, border 0.5": (Fusion(), 0.5, False),
    "crops add < 32 input px": (Fusion(max_refined_size=32), 1.0, False),
    "crops add < 64 input px": (Fusion(max_refined_size=64), 1.0, False),
    "full >= 32 input px kept": (Fusion(keep_large=32), 1.0, False),
    "full >= 64 input px kept": (Fusion(keep_large=64), 1.0, False),
    "NMS IoU 0.4": (Fusion(threshold=0.4), 1.0, False),
    "NMS IoU 0.6": (Fusion(threshold=0.6), 1.0, False),
    "NMS IoS 0.5": (Fusion(metric="ios"), 1.0, False),
    "greedy NMM IoS 0.5, switch off": (Fusion("greedynmm", "ios", low_score_nms=False), 1.0, False),
    "NMM IoU 0.5, switch off": (Fusion("nmm", "iou", low_score_nms=False), 1.0, False),
}
COLUMNS = ["variant", "method", "budget", "passes", "AP", "AP50", "AP_S", "AP_M", "AP_vt", "AP_t", "AP_s",
           "AP_m"]  # fmt: skip


def with_border(crops: sv.Detections, factor: float) -> sv.Detections:
    confidence = crops.confidence * np.where(crops.data["at_border"], factor, 1.0).astype(np.float32)
    kept = crops[confidence > 0]
    kept.confidence = confidence[confidence > 0]
    return kept


def collect(detector, truth, images: Path, budgets: list[int], vicrop: ViCropConfig) -> tuple[list, Counter]:
    """Per image: (id, input scale, base, {plan: (crops planned, their detections)}, {slices: crop
    detections}, image size). Plans: "vicrop" (fill off) and "vicrop_fill" (fill on, the default)."""
    raw, stops = [], Counter()
    top = max(budgets)
    for done, record in enumerate(truth["images"], start=1):
        image = load_image(images / record["file_name"])
        result = run_inference(detector, image, cache=None)
        cache = InferenceCache(max_bytes=4 * 1024**3)  # the crops both plans share run once
        plans = {}
        for name, fill in (("vicrop", False), ("vicrop_fill", True)):
            plan = plan_crops(result, replace(vicrop, k=top - 1, fill=fill))
            stops[(name, len(plan.chosen), plan.shortfall)] += 1
            crops = detect_crops(detector, image, plan.crops_xyxy, score_threshold=THRESHOLD,
                                 border_factor=1.0, cache=cache).detections  # fmt: skip
            plans[name] = (len(plan.crops_xyxy), crops)
        grids = {}
        for budget in budgets:
            slices = slice_grid(image.shape[:2], slices_for_budget(budget))
            if len(slices) > 1 and len(slices) not in grids:
                grids[len(slices)] = detect_crops(detector, image, slices, score_threshold=THRESHOLD,
                                                  border_factor=1.0, cache=None).detections  # fmt: skip
        base = to_detections(result, score_threshold=THRESHOLD)
        raw.append((record["id"], min(result.transform.scale_xy), base, plans, grids, image.shape[:2]))
        print(f"\r{done}/{len(truth['images'])} images", end="", flush=True)
    print()
    return raw, stops


def fused_rows(raw, method: str, budget: int, fusion: Fusion, border: float, original_px: bool):
    found, passes = [], 0
    for image_id, scale, base, plans, grids, hw in raw:
        if method in plans:
            planned, crops = plans[method]
            mine = crops[crops.data["crop_index"] < budget - 1]
            used = 1 + min(budget - 1, planned)
        else:
            count = len(slice_grid(hw, slices_for_budget(budget)))
            mine = grids.get(count, plans["vicrop"][1][:0])
            used = 1 + (count if count > 1 else 0)
        fused = fuse_detections(base, with_border(mine, border), fusion, scale=1.0 if original_px else scale,
                                score_threshold=THRESHOLD)  # fmt: skip
        found += coco_results(fused.xyxy, fused.confidence, fused.class_id, image_id=image_id)
        passes += used
    return found, passes / len(raw)


_SHARED = None  # (raw detections, ground truth, scales), inherited by the forked workers


def _crops_used(raw, method: str, budget: int) -> tuple[int, ...]:
    """Crops each image gets at this budget (ViCrop-Det's first ones, or a slicing grid)."""
    if method == "slicing":
        return tuple(len(slice_grid(hw, slices_for_budget(budget))) for *_, hw in raw)
    return tuple(min(budget - 1, plans[method][0]) for _, _, _, plans, _, _ in raw)


def _evaluate(job) -> dict:
    variant, method, budget = job
    raw, truth, scale = _SHARED
    fusion, border, original_px = VARIANTS[variant]
    found, passes = fused_rows(raw, method, budget, fusion, border, original_px)
    metrics = coco_metrics(truth, found, area_scale=scale)
    row = {"variant": variant, "method": method, "budget": budget, "passes": passes}
    return row | {name: metrics[name] for name in COLUMNS[4:]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--sahi", action="store_true", help="also run SAHI's get_sliced_prediction")
    parser.add_argument("--workers", type=int, default=2, help="processes scoring the fusions")
    parser.add_argument(
        "--full",
        default="default: NMS IoU 0.5, border 0.5",
        help="variant measured at every budget, fill included (also the first variant)",
    )
    parser.add_argument("--budgets", default="3,5,10", help="budgets of the other variants")
    parser.add_argument("--only", nargs="*", default=None, help="variants whose names contain one of these")
    parser.add_argument("--out-name", default="fusion", help="table file name (fusion.csv / .md)")
    args = parser.parse_args()
    detector = load_detector(args.model)
    truth = first_images(load_coco(args.data), args.max_images)
    images, out = Path(args.images), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budgets = list(range(1, 11))
    saved = out / "detections.pkl"  # the forward passes of this split, reused by a rerun
    if saved.exists():
        raw, stops = pickle.loads(saved.read_bytes())
    else:
        raw, stops = collect(detector, truth, images, budgets, ViCropConfig())
        saved.write_bytes(pickle.dumps((raw, stops)))
    print("ViCrop-Det at budget 10 (9 crops asked):")
    for (name, chosen, why), count in sorted(stops.items()):
        print(f"  {name}: {count} images, {chosen} crops{', ' + why if why else ''}")
    scale = {image_id: s for image_id, s, *_ in raw}
    jobs = []
    others = [int(b) for b in args.budgets.split(",")]
    for variant in VARIANTS:
        if args.only is not None and not any(part in variant for part in args.only):
            continue
        chosen = budgets if variant in (args.full, next(iter(VARIANTS))) else others
        methods = ("vicrop", "vicrop_fill", "slicing") if variant == args.full else ("vicrop", "slicing")
        jobs += [(variant, method, budget) for method in methods for budget in chosen]
    global _SHARED
    _SHARED = (raw, truth, scale)
    distinct = {}  # budgets whose crops are the same on every image are scored once
    for job in jobs:
        distinct.setdefault((job[0], job[1], _crops_used(raw, job[1], job[2])), []).append(job)
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        rows = []
        for row, same in zip(pool.imap(_evaluate, [group[0] for group in distinct.values()]),
                             distinct.values(), strict=True):  # fmt: skip
            for _, _, budget in same:
                rows.append(row | {"budget": budget})
                print(" | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in rows[-1].values()),
                      flush=True)  # fmt: skip
    rows.sort(key=lambda row: (list(VARIANTS).index(row["variant"]), row["method"], row["budget"]))
    write_rows(rows, out, args.out_name, COLUMNS)
    write_budget_figure([r for r in rows if r["variant"] == args.full], out / f"{args.out_name}.png")
    if args.sahi:
        sahi_table(detector, truth, images, raw, scale, out)


def write_budget_figure(rows: list[dict], path: Path) -> None:
    """AP50 against passes used: ViCrop-Det (fill on) and slicing with the `--full` fusion."""
    names = {"vicrop_fill": "ViCrop-Det", "slicing": "slicing"}
    points, seen = [], set()
    for row in rows:
        if row["method"] in names and (row["method"], row["passes"]) not in seen:
            seen.add((row["method"], row["passes"]))
            points.append(
                {"method": names[row["method"]], "forward_passes": row["passes"], "AP50": row["AP50"]}
            )
    if not points:
        return
    figure = budget_figure(points)
    figure.update_layout(title=f"AP50 against forward passes ({len(_SHARED[0])} scenes)")
    try:
        figure.write_image(path)
    except Exception as error:  # kaleido raises several kinds when no browser is found
        print(f"{path.name} not written ({type(error).__name__}: {error})")


def sahi_table(detector, truth, images: Path, raw, scale: dict, out: Path) -> None:
    from sodviz.crops.sahi_reference import sahi_sliced

    ours_fusion, _, _ = VARIANTS["none (SAHI-equivalent): NMS IoU 0.5"]
    rows = []
    for budget in (5, 10):
        found, passes = fused_rows(raw, "slicing", budget, ours_fusion, 1.0, False)
        runs = {"our slicing, SAHI-equivalent (NMS IoU 0.5)": (found, passes)}
        for name, merge, metric in (("SAHI NMS IoU 0.5", "NMS", "IOU"), ("SAHI GREEDYNMM IoS 0.5 (forced)",
                                                                         "GREEDYNMM", "IOS")):  # fmt: skip
            found, passes = [], 0
            for record in truth["images"]:
                image = load_image(images / record["file_name"])
                detections, used = sahi_sliced(
                    detector, image, forward_passes=budget, score_threshold=THRESHOLD, postprocess=merge,
                    match_metric=metric, force_postprocess_type=True,
                )  # fmt: skip
                found += coco_results(detections.xyxy, detections.confidence, detections.class_id,
                                      image_id=record["id"])  # fmt: skip
                passes += used
            runs[name] = (found, passes / len(truth["images"]))
        for name, (found, passes) in runs.items():
            metrics = coco_metrics(truth, found, area_scale=scale)
            rows.append({"variant": name, "method": "slicing", "budget": budget, "passes": passes}
                        | {key: metrics[key] for key in COLUMNS[4:]})  # fmt: skip
            print(" | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in rows[-1].values()),
                  flush=True)  # fmt: skip
    write_rows(rows, out, "sahi", COLUMNS)


if __name__ == "__main__":
    main()
