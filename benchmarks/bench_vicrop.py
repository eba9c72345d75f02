"""Benchmark re-detection of K crops in one batched pass against K sequential passes.

On the embedded demo detector and the first sample scene: the K best ViCrop-Det crops, each
resized to the model input, timed (median of interleaved rounds, cache off) as one batch and as
K single-image passes. Prints both times and their ratio for K = 2, 4, 8; the target is
batched <= 0.7x sequential.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_vicrop.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sodviz.crops.redetect import detect_crops
from sodviz.crops.vicrop import ViCropConfig, plan_crops
from sodviz.detector.inference import run_inference
from sodviz.detector.loading import load_detector
from sodviz.samples import load_sample, sample_names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    detector = load_detector("demo")
    decoded, _ = load_sample(sample_names()[0])
    image = decoded.image
    result = run_inference(detector, image, cache=None)
    print(f"demo detector, {image.shape[1]}x{image.shape[0]} scene, torch threads {torch.get_num_threads()}")
    for k in (2, 4, 8):
        crops = plan_crops(result, ViCropConfig(k=k, scales=(0.25,), overlap=0.5, max_overlap=0.5)).crops_xyxy
        batched, sequential = [], []
        detect_crops(detector, image, crops, cache=None)  # warm-up
        for _ in range(args.rounds):
            started = time.perf_counter()
            detect_crops(detector, image, crops, cache=None)
            batched.append(time.perf_counter() - started)
            started = time.perf_counter()
            for crop in crops:
                detect_crops(detector, image, crop[None], cache=None)
            sequential.append(time.perf_counter() - started)
        one, many = statistics.median(batched), statistics.median(sequential)
        times = f"batched {1000 * one:7.1f} ms  sequential {1000 * many:7.1f} ms"
        print(f"  K={len(crops)}: {times}  ratio {one / many:.2f}")


if __name__ == "__main__":
    main()
