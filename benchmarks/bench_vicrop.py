"""Benchmark re-detection of K crops in one batched pass against K sequential passes.

On the embedded demo detector and the first sample scene: the K best ViCrop-Det crops, each
resized to the model input, timed (median of interleaved rounds, cache off) as one batch and as
K single-image passes. Prints both times and their ratio for K = 2, 4, 8; the target is
batched <= 0.7x sequential. Then four crops packed onto one canvas of the model input
(`crops.packing`, one pass) against the same four as separate passes at the full input, and
against four separate passes at half the input (what packing saves beyond the pixels); the
target is packed <= 0.5x four separate passes. Also their GFLOPs (torch's counter).

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

from sodviz.crops.packing import detect_packed
from sodviz.crops.redetect import detect_crops
from sodviz.crops.vicrop import ViCropConfig, plan_crops
from sodviz.detector.flops import results_gflops
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
    packing(detector, image, result, args.rounds)


def packing(detector, image, result, rounds: int) -> None:
    crops = plan_crops(result, ViCropConfig(k=4, scales=(0.25,), overlap=0.5, max_overlap=0.5)).crops_xyxy
    half = detector.input_size // 2
    variants = {
        "packed, one pass": lambda: detect_packed(detector, image, crops, per_canvas=4, cache=None),
        "4 passes, full input": lambda: [detect_crops(detector, image, c[None], cache=None) for c in crops],
        "4 passes, half input": lambda: [
            detect_crops(detector, image, c[None], input_size=half, cache=None) for c in crops
        ],
    }
    times = {name: [] for name in variants}
    gflops = {}
    for name, run in variants.items():  # warm-up, and the GFLOPs of what each ran
        out = run()
        found = [out] if not isinstance(out, list) else out
        gflops[name] = sum(results_gflops(detector, f.results) for f in found)
    for round_ in range(rounds):
        order = list(variants) if round_ % 2 == 0 else list(variants)[::-1]
        for name in order:
            started = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - started)
    packed = statistics.median(times["packed, one pass"])
    print(f"four crops ({len(crops)} chosen), input {detector.input_size}, medians of {rounds} rounds:")
    for name in variants:
        median = statistics.median(times[name])
        cost = f"{1000 * median:7.1f} ms  {gflops[name]:6.2f} GFLOPs"
        print(f"  {name:<22} {cost}  packed / this {packed / median:.2f}")


if __name__ == "__main__":
    main()
