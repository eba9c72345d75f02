"""Time instance maps against the passes they are made of, on the embedded demo detector.

On the first sample scene and its best detection: ODAM's five maps (class score and four box
corners, one backward each into the decoder's memory) against one forward pass with a graph
plus one backward from the score to the input pixels (the issue's target: ODAM for one
detection <= 2x that), median of interleaved rounds; then D-RISE with `--masks` masks
(default 1,000, batched; target: within a minute on this CPU), timed once, its cost printed.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_explain.py [--rounds 5] [--masks 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sodviz.detector.inference import run_inference
from sodviz.detector.loading import load_detector
from sodviz.detector.preprocess import prepare_inputs
from sodviz.explain.drise import drise_map
from sodviz.explain.odam import odam_maps
from sodviz.explain.targets import detection_target
from sodviz.samples import load_sample, sample_names


def forward_backward(detector, image, target) -> float:
    """One forward pass with a graph and one backward from the target's score to the pixels."""
    inputs, _ = prepare_inputs(detector, [image])
    pixels = inputs["pixel_values"].detach().requires_grad_(True)
    started = time.perf_counter()
    with torch.enable_grad():
        logits = detector.model(**{**inputs, "pixel_values": pixels}).logits
        torch.autograd.grad(logits[0, target.query_index, target.class_id], pixels)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--masks", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    detector = load_detector("demo")
    decoded, _ = load_sample(sample_names()[0])
    image = decoded.image
    result = run_inference(detector, image, cache=None)
    target = detection_target(result, int(np.argmax(result.scores)))
    odam_maps(detector, image, target), forward_backward(detector, image, target)  # warm up
    odam, reference = [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        odam_maps(detector, image, target)
        odam.append(time.perf_counter() - started)
        reference.append(forward_backward(detector, image, target))
    ratio = statistics.median(o / r for o, r in zip(odam, reference, strict=True))
    print(f"ODAM, 5 maps of one detection: {1e3 * statistics.median(odam):.0f} ms (median of {args.rounds})")
    print(f"one forward + backward to the pixels: {1e3 * statistics.median(reference):.0f} ms")
    print(f"ODAM / (forward + backward): {ratio:.2f}x (target <= 2x)")
    maps = drise_map(detector, image, target, masks=args.masks, batch_size=args.batch_size)
    print(f"D-RISE, {args.masks} masks, batch {args.batch_size}: {maps.seconds:.1f} s "
          f"({1e3 * maps.seconds / args.masks:.1f} ms a mask; target: within 60 s)")  # fmt: skip


if __name__ == "__main__":
    main()
