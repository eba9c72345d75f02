"""Tune ViCrop-Det's planning on the val split (never on test): AP50 per config and crop count,
and what each gate statistic buys at a given fraction of refined images.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/tune_vicrop.py --data data/synth/val/annotations.json \
        --images data/synth/val/images --max-images 48 \
        --configs '{"name": "default"}' '{"name": "overlap", "max_overlap": 0.25}'

Each config is JSON: a name plus `ViCropConfig` fields (lists become tuples). Prints one line per
(config, k) and, with --gate, for the first config at k = 1, AP50 of gating at several refine rates.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sodviz.attention.entropy import map_entropy
from sodviz.attention.maps import image_attention
from sodviz.cache import InferenceCache
from sodviz.crops.vicrop import ViCropConfig, run_vicrop
from sodviz.detector.inference import run_inference, to_detections
from sodviz.detector.loading import load_detector
from sodviz.evaluation.coco import coco_metrics, coco_results, first_images, load_coco
from sodviz.imageio import load_image


def gate_statistics(result, config: ViCropConfig, plan) -> dict[str, float]:
    """Candidate image-level 'is refinement worth it' numbers, all from the first pass."""
    low, high = config.score_band
    band = (result.scores >= low) & (result.scores < high)
    uncertain = image_attention(result, mode="uncertain", score_band=config.score_band, layer=config.layer)
    return {
        "uncertain_queries": float(band.sum()),
        "uncertain_score_sum": float(result.scores[band].sum()),
        "uncertain_entropy": map_entropy(uncertain),
        "top_window_score": float(plan.windows.score.max()) if len(plan.windows) else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--model", default="assets/models/sodviz-demo")
    parser.add_argument("--max-images", type=int, default=48)
    parser.add_argument("--ks", default="1,2,4,6")
    parser.add_argument("--configs", nargs="+", default=['{"name": "default"}'])
    parser.add_argument(
        "--gate", action="store_true", help="also compare gate statistics (first config, k=1)"
    )
    args = parser.parse_args()
    detector = load_detector(args.model)
    truth = first_images(load_coco(args.data), args.max_images)
    cache = InferenceCache(max_bytes=16 * 1024**3)
    ks = [int(k) for k in args.ks.split(",")]
    configs = []
    for text in args.configs:
        fields = json.loads(text)
        name = fields.pop("name")
        fields = {key: tuple(v) if isinstance(v, list) else v for key, v in fields.items()}
        configs.append((name, ViCropConfig(**fields)))
    base, found, passes, stats, per_image = [], {}, {}, [], {}
    scale = {}
    for record in truth["images"]:
        image = load_image(Path(args.images) / record["file_name"])
        scale[record["id"]] = detector.input_size / max(image.shape[:2])
        result = run_inference(detector, image, cache=cache)
        detections = to_detections(result, score_threshold=0.01)
        base_rows = coco_results(
            detections.xyxy, detections.confidence, detections.class_id, image_id=record["id"]
        )
        base.extend(base_rows)
        per_image[("base", record["id"])] = base_rows
        for name, config in configs:
            for k in ks:
                outcome = run_vicrop(detector, image, config=replace(config, k=k), cache=cache)
                fused = outcome.fused
                rows = coco_results(fused.xyxy, fused.confidence, fused.class_id, image_id=record["id"])
                found.setdefault((name, k), []).extend(rows)
                per_image[(name, k, record["id"])] = rows
                passes[(name, k)] = passes.get((name, k), 0) + outcome.forward_passes
                if (name, k) == (configs[0][0], 1):
                    stats.append((record["id"], gate_statistics(result, config, outcome.plan)))
    count = len(truth["images"])
    metrics = coco_metrics(truth, base, area_scale=scale)
    print(f"base AP50 {metrics['AP50']:.3f} AP_vt {metrics['AP_vt']:.3f} AP_S {metrics['AP_S']:.3f}")
    for (name, k), rows in found.items():
        metrics = coco_metrics(truth, rows, area_scale=scale)
        print(
            f"{name:>12} k={k} passes {passes[(name, k)] / count:.2f} AP50 {metrics['AP50']:.3f} "
            f"AP_vt {metrics['AP_vt']:.3f} AP_S {metrics['AP_S']:.3f} AP_M {metrics['AP_M']:.3f}",
            flush=True,
        )
    name = configs[0][0]
    for statistic in stats[0][1] if args.gate and 1 in ks else ():
        values = np.array([s[statistic] for _, s in stats])
        for rate in (0.2, 0.3, 0.5):
            threshold = np.quantile(values, 1 - rate)
            rows = []
            for (image_id, _), value in zip(stats, values, strict=True):
                refined = value >= threshold
                rows += per_image[(name, 1, image_id) if refined else ("base", image_id)]
            metrics = coco_metrics(truth, rows, area_scale=scale)
            gate = f"gate {statistic:>20} refine {rate:.0%} (>= {threshold:.3g})"
            print(f"{gate}: AP50 {metrics['AP50']:.3f}", flush=True)


if __name__ == "__main__":
    main()
