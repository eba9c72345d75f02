"""Benchmark the library work the app does after a slider change (the forward pass is cached).

On the embedded demo detector and each sample scene (about 1,100 px, 300 queries), it replays
random slider settings and times what the page script calls after the cache hit:
- Detections page (threshold, classes, top N): `detections_view` (filter, entropy, TP/FP/FN
  matching, table), `detections_figure`, `draw_match` (the PNG download's image);
- Attention page (query, layer, head, opacity): `to_detections`, `query_attention_view` (map
  overlay, sampling points, heads grid), both plotly figures, `aggregate_overlay`.
Prints p50 / p95 / max per page in milliseconds; the target is p95 <= 100 ms.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_app.py [--changes 40]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sodviz.detector.inference import run_inference, to_detections
from sodviz.detector.loading import load_detector
from sodviz.samples import load_sample, sample_names
from sodviz.views.detections import aggregate_overlay, detections_view, query_attention_view
from sodviz.views.figures import detections_figure, sampling_points_figure
from sodviz.views.render import draw_match


def detections_page(result, image, truth, rng) -> None:
    classes = None if rng.random() < 0.5 else sorted(rng.choice(4, size=2, replace=False).tolist())
    view = detections_view(
        result,
        score_threshold=float(rng.uniform(0.05, 0.6)),
        classes=classes,
        top_n=int(rng.integers(20, 301)),
        truth=truth,
    )
    missed = truth.boxes_xyxy[view.match.missed]
    detections_figure(image, view.detections, status=view.match.status, missed_xyxy=missed)
    draw_match(image, view.detections, status=view.match.status, missed_xyxy=missed)


def attention_page(result, image, rng) -> None:
    detections = to_detections(result, score_threshold=0.3)
    query = int(rng.choice(detections.data["query_index"]))
    layer = None if rng.random() < 0.3 else int(rng.integers(result.attention.num_layers))
    head = None if rng.random() < 0.3 else int(rng.integers(result.attention.num_heads))
    opacity = float(rng.uniform(0.2, 0.9))
    view = query_attention_view(result, image, query=query, layer=layer, head=head, opacity=opacity)
    detections_figure(image, detections, selected_query=query)
    points_xy, weights, levels, _ = view.points
    sampling_points_figure(image, points_xy, weights, levels, box_xyxy=result.boxes_xyxy[query : query + 1])
    aggregate_overlay(result, image, detections, layer=layer, opacity=opacity)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=40, help="slider changes per page and scene")
    args = parser.parse_args()
    detector = load_detector("demo")
    rng = np.random.default_rng(0)
    times = {"detections": [], "attention": []}
    for name in sample_names():
        decoded, truth = load_sample(name)
        result = run_inference(detector, decoded.image)
        detections_page(result, decoded.image, truth, rng)  # warm-up: first plotly figure, imports
        attention_page(result, decoded.image, rng)
        for _ in range(args.changes):
            for page in times:
                start = time.perf_counter()
                result = run_inference(detector, decoded.image)  # the cache hit every rerun makes
                if page == "detections":
                    detections_page(result, decoded.image, truth, rng)
                else:
                    attention_page(result, decoded.image, rng)
                times[page].append(1000 * (time.perf_counter() - start))
    print(f"library work per slider change, demo detector, {len(sample_names())} sample scenes:")
    for page, values in times.items():
        p50, p95 = np.percentile(values, [50, 95])
        spread = f"p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  max {max(values):6.1f} ms"
        print(f"  {page:<10} {spread}  ({len(values)} changes)")


if __name__ == "__main__":
    main()
