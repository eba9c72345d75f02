"""faster-coco-eval against pycocotools on a real benchmark's detections: same numbers, time ratio.

The embedded demo detector's full-image pass on every image of a COCO dataset (default: the
generated test split, 100 scenes, 10,999 objects; `python -m sodviz synth` writes it), every
query kept as `evaluate` keeps them, boxes bucketed in model-input pixels; then `coco_metrics`
by each backend, alternated A B A B. Prints the largest difference over every metric (AI-TOD
buckets included; target <= 1e-4) and the time of each backend per pair.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_coco.py [--data data/synth/test] [--pairs 2]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sodviz.detector.inference import run_inference  # noqa: E402
from sodviz.detector.loading import load_detector  # noqa: E402
from sodviz.evaluation.coco import coco_metrics, coco_results, load_coco, model_categories  # noqa: E402
from sodviz.imageio import load_image  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "synth" / "test")
    parser.add_argument("--model", default="demo")
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    detector = load_detector(args.model)
    truth, category_of = model_categories(load_coco(args.data / "annotations.json"), detector.class_names)
    detections, scale = [], {}
    started = time.perf_counter()
    for record in truth["images"]:
        result = run_inference(detector, load_image(args.data / "images" / record["file_name"]), cache=None)
        scale[record["id"]] = result.transform.length_scale
        detections += coco_results(
            result.boxes_xyxy, result.scores, category_of[result.labels], image_id=record["id"],
            query_index=np.arange(result.num_queries),
        )  # fmt: skip
    print(
        f"{len(truth['images'])} images, {len(truth['annotations'])} objects, {len(detections)} detections "
        f"(inference {time.perf_counter() - started:.0f} s)"
    )
    times = {"pycocotools": [], "faster": []}
    metrics = {}
    for pair in range(args.pairs):
        for backend in ("pycocotools", "faster") if pair % 2 == 0 else ("faster", "pycocotools"):
            started = time.perf_counter()
            metrics[backend] = coco_metrics(truth, detections, area_scale=scale, backend=backend)
            times[backend].append(time.perf_counter() - started)
    reference, faster = metrics["pycocotools"], metrics["faster"]
    finite = [name for name in reference if not math.isnan(reference[name])]
    worst = max(finite, key=lambda name: abs(reference[name] - faster[name]))
    print(f"largest difference: {worst} {abs(reference[worst] - faster[worst]):.2e} (target <= 1e-4)")
    for name in ("AP", "AP50", "AP_vt", "AP_t", "AP_s", "AP_m"):
        print(f"  {name:<6} pycocotools {reference[name]:.6f}  faster {faster[name]:.6f}")
    for pair, (slow, fast) in enumerate(zip(times["pycocotools"], times["faster"], strict=True)):
        seconds = f"pycocotools {slow:.2f} s, faster-coco-eval {fast:.2f} s"
        print(f"pair {pair + 1}: {seconds}, ratio {fast / slow:.3f}")


if __name__ == "__main__":
    main()
