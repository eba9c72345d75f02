"""Benchmark: ERF maps of the four backbone stages for one 640 px image, against one forward and
backward pass of the same backbone (the target is <= 4x).

The reference pass: the backbone's forward, then the gradient of the deepest stage's sum with
respect to the input, once. Medians over interleaved rounds, on the embedded demo detector and
on the default RT-DETR config (ResNet-50-vd backbone, random weights).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_erf.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sodviz.detector.loading import Detector, load_detector
from sodviz.detector.preprocess import prepare_inputs
from sodviz.erf.fields import BACKBONE_STAGES, _backbone, erf_maps
from sodviz.erf.gaussian import fit_gaussian


def default_rt_detr(demo: Detector) -> Detector:
    """The default `RTDetrConfig()` with random weights, run through the demo's processor."""
    from transformers import RTDetrConfig, RTDetrForObjectDetection

    torch.manual_seed(0)
    model = RTDetrForObjectDetection(RTDetrConfig()).eval()
    model.requires_grad_(False)
    return replace(
        demo, model=model, class_names=tuple(model.config.id2label.values()), input_size=640,
        content_hash="default-rt-detr", source="RTDetrConfig()", lock=threading.Lock(),
    )  # fmt: skip


def reference_pass(detector: Detector, image: np.ndarray) -> None:
    inputs, _ = prepare_inputs(detector, [image], input_size=640)
    pixels = inputs["pixel_values"].detach().clone().requires_grad_(True)
    with torch.enable_grad():
        hidden = _backbone(detector.model)(pixels, output_hidden_states=True).hidden_states
        torch.autograd.grad(hidden[-1].sum(), pixels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    image = (np.random.default_rng(0).random((640, 640, 3)) * 255).astype(np.uint8)
    print(f"640x640 input, torch threads {torch.get_num_threads()}")
    demo = load_detector("demo")
    for name, detector in (("demo detector", demo), ("RTDetrConfig()", default_rt_detr(demo))):
        erf_maps(detector, image, stages=BACKBONE_STAGES, input_size=640)  # warm-up
        reference_pass(detector, image)
        erf_times, once_times = [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            erf_maps(detector, image, stages=BACKBONE_STAGES, input_size=640)
            erf_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            reference_pass(detector, image)
            once_times.append(time.perf_counter() - started)
        maps, _, _ = erf_maps(detector, image, stages=BACKBONE_STAGES, input_size=640)
        started = time.perf_counter()
        for erf_map in maps:
            fit_gaussian(erf_map)
        fits = time.perf_counter() - started
        four, one = statistics.median(erf_times), statistics.median(once_times)
        print(
            f"  {name}: 4 stages {1000 * four:7.1f} ms,"
            f" forward+backward {1000 * one:7.1f} ms, ratio {four / one:.2f};"
            f" the four Gaussian fits {1000 * fits:.0f} ms more"
        )


if __name__ == "__main__":
    main()
